/* SPDX-License-Identifier: MIT */
/* Transcript assertions for cmocka tests, on the scripted server of
 * testlib.h: wait for the client's next command and assert its exact text,
 * script the usual greeting, login and SELECT, and assert the safety
 * invariant (every UID an action named is one it may act on). A failed
 * assertion fails the running cmocka test. */
#ifndef IMAPSWEEP_TRANSCRIPT_H
#define IMAPSWEEP_TRANSCRIPT_H

#include <stdint.h>

#include "testlib.h"

/* How long a test waits for something the client must do. */
#define EXPECT_TIMEOUT_MS 5000

/* Wait for the client's next command on f (at most EXPECT_TIMEOUT_MS) and
 * assert that the text after its tag is want; returns the tag (caller
 * frees). */
char *expect_cmd(struct fakesrv *f, const char *want);
/* Wait for the client's next line and assert it is want exactly (for
 * untagged lines: DONE, continuation data). */
void expect_line(struct fakesrv *f, const char *want);
/* The same, answering "TAG <reply>" at once. */
void expect_cmd_reply(struct fakesrv *f, const char *want,
                      const char *reply);
/* Settle the loop, then assert that the client sent nothing more. */
void expect_quiet(struct fakesrv *f);
/* Assert that every UID the client named in an action on f (UID STORE,
 * COPY, MOVE, EXPUNGE) is in allowed ("1:5,9"; "" allows none), and that
 * it never sent a plain EXPUNGE unless plain_ok. */
void expect_acted_within(const struct fakesrv *f, const char *allowed,
                         bool plain_ok);

/* Greet with caps ("IMAP4rev1 IDLE ..."; AUTH=PLAIN and SASL-IR are
 * added), expect AUTHENTICATE PLAIN for user/pass and accept it with
 * caps. */
void script_login(struct fakesrv *f, const char *user, const char *pass,
                  const char *caps);
/* Expect "SELECT <mailbox>" and answer it with EXISTS, UIDVALIDITY and
 * UIDNEXT (0: not sent). */
void script_select(struct fakesrv *f, const char *mailbox, uint32_t exists,
                   uint32_t uidvalidity, uint32_t uidnext);

/* Run only the tests whose names match $TEST_FILTER (a cmocka pattern,
 * "*" and "?" allowed), when it is set: one test at a time under ASan,
 * which stops at the first finding. */
void transcript_filter_from_env(void);

#endif
