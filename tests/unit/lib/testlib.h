/* SPDX-License-Identifier: MIT */
/* The unit-test library (tests/unit/lib, built into libtest.a and linked
 * into every tests/unit/test_*.c; the fuzz targets may link it too). Apart
 * from expect.c (cmocka assertions, see transcript.h) nothing in it uses
 * cmocka: failures are returned, never longjmp'd.
 *
 *  - the loop: run_until a condition holds (with a deadline), settle (run
 *    what is due now without waiting for I/O);
 *  - a scripted IMAP server: `fakenet` makes every transport of a
 *    transport_pool a `fakesrv` (no sockets): the test reads the exact
 *    bytes the client sent and writes the server's, or drops the
 *    connection. Works below imap_conn (imap_conn_new_with_transport) and
 *    below sessions, watchers, pollers and accounts (the pool's factory);
 *  - the actions a client sent (UID STORE/COPY/MOVE/EXPUNGE) as UID sets,
 *    for the safety invariant;
 *  - a log capture;
 *  - UNDER_ASAN, for tests that scale their work down under the sanitizer.
 *
 * Examples: test_imap_conn.c (a fakesrv under one imap_conn), test_sweep.c
 * (one sweep over an imap_conn, lying servers), test_watcher.c and
 * test_account.c (whole sessions through a pool's factory, with world.h
 * and the assertions of transcript.h).
 *
 * Lifetimes: a fakenet owns its fakesrvs; a fakesrv outlives its transport
 * (the transport belongs to the imap_conn, which frees it after closing),
 * so a test can read what was sent after the connection is gone. Free the
 * fakenet after the loop has closed every transport. */
#ifndef IMAPSWEEP_TESTLIB_H
#define IMAPSWEEP_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "buf.h"
#include "log.h"
#include "transport.h"
#include "uidset.h"
#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* --- the loop ------------------------------------------------------------ */

/* Run loop until cond(arg) holds. Returns false if timeout_ms passed
 * first (the caller fails the test). */
bool testlib_run_until(uv_loop_t *loop, bool (*cond)(void *), void *arg,
                       uint64_t timeout_ms);
/* Run everything that is due now (zero-delay timers, closing handles,
 * pending callbacks), repeatedly, without waiting for I/O or later
 * timers. */
void testlib_settle(uv_loop_t *loop);
/* Run the loop for ms of loop time (timers due meanwhile fire). */
void testlib_run_for(uv_loop_t *loop, uint64_t ms);

/* --- the scripted server ------------------------------------------------- */

struct fakenet;
struct fakesrv;

struct fakenet *fakenet_new(uv_loop_t *loop);
/* Every transport_new() on pool now makes a fakesrv of net. */
void fakenet_attach(struct fakenet *net, struct transport_pool *pool);
/* Free net and its fakesrvs. Every transport must be closed (run the loop
 * after freeing the connections). NULL-safe. */
void fakenet_free(struct fakenet *net);
/* New connections: by default they connect (reported from the loop).
 * With refuse, they fail instead with err and msg. */
void fakenet_refuse(struct fakenet *net, bool refuse, int err,
                    const char *msg);
/* Connections made so far, in order; fakenet_conn(net, i) is the i-th
 * (from 0), NULL past the end. */
size_t fakenet_count(const struct fakenet *net);
struct fakesrv *fakenet_conn(const struct fakenet *net, size_t i);
/* The newest connection, NULL if none. */
struct fakesrv *fakenet_last(const struct fakenet *net);
/* A connection for imap_conn_new_with_transport(): give it
 * fakesrv_transport(f) (the imap_conn owns the transport). */
struct fakesrv *fakenet_open(struct fakenet *net);

struct transport *fakesrv_transport(struct fakesrv *f);
uv_loop_t *fakesrv_loop(const struct fakesrv *f);
/* Where the client wanted to connect (host, port, tunnel; NULL if
 * none). */
const char *fakesrv_host(const struct fakesrv *f);
uint16_t fakesrv_port(const struct fakesrv *f);
/* True once the client has closed the transport (or it was freed). */
bool fakesrv_closed(const struct fakesrv *f);
/* True while the server can still send (connected, not dropped or
 * closed). */
bool fakesrv_open(const struct fakesrv *f);
/* STARTTLS took place (the fake "handshake" succeeds at once). */
bool fakesrv_tls(const struct fakesrv *f);

/* Server bytes, delivered now as one read (the client's callbacks run
 * inside this call). Ignored once the connection is not open. */
void fakesrv_send(struct fakesrv *f, const char *text);
void fakesrv_send_bytes(struct fakesrv *f, const void *data, size_t len);
void fakesrv_printf(struct fakesrv *f, const char *fmt, ...)
    PRINTF_LIKE(2, 3);
/* "TAG <fmt>\r\n". */
void fakesrv_reply(struct fakesrv *f, const char *tag, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
/* The server side fails: the transport reports err (ERR_CLOSED: EOF) with
 * msg, as a reset or an EOF would. */
void fakesrv_drop(struct fakesrv *f, int err, const char *msg);

/* Everything the client sent, from the start (NUL-terminated). */
const char *fakesrv_all(const struct fakesrv *f);
/* What the client sent since the last take or line (caller frees). */
char *fakesrv_take(struct fakesrv *f);
/* The next complete line the client sent, without its CRLF (caller
 * frees), or NULL if there is none yet. */
char *fakesrv_line(struct fakesrv *f);
/* A tagged command: the next line split at its first space. False (and
 * nothing consumed) if no complete line is there. */
struct fakesrv_cmd {
    char *tag;
    char *text;           /* the command after "TAG " */
};
bool fakesrv_next_cmd(struct fakesrv *f, struct fakesrv_cmd *c);
void fakesrv_cmd_free(struct fakesrv_cmd *c);
/* Wait (running loop) until the client sent a complete line, at most
 * timeout_ms; false if none came. */
bool fakesrv_wait_line(struct fakesrv *f, uint64_t timeout_ms);

/* --- actions ------------------------------------------------------------- */

/* If line (a client command with or without its tag) acts on messages —
 * UID STORE, UID COPY, UID MOVE, UID EXPUNGE — add its UIDs to set and
 * return true. "*" or a malformed set counts as UID 4294967295 (never in
 * any allowed set). Plain EXPUNGE sets *plain_expunge when not NULL. */
bool testlib_action_uids(const char *line, struct uidset *set,
                         bool *plain_expunge);
/* Every UID the client named in an action on f so far. */
void fakesrv_acted(const struct fakesrv *f, struct uidset *set);

/* --- memory --------------------------------------------------------------- */

/* Copy n bytes at addr of this process's memory into out through
 * /proc/self/mem: the kernel reads them, so a block already freed can be
 * inspected (to check that a secret was wiped before it went) without
 * the sanitizers or the C rules about freed objects getting in the way.
 * False if the memory cannot be read. */
bool testlib_peek(const void *addr, void *out, size_t n);

/* --- logs ---------------------------------------------------------------- */

/* Capture log lines at level and above ("LEVEL message\n" each) instead
 * of writing them to stderr; testlog_stop() restores stderr and the level. */
void testlog_start(enum log_level level);
void testlog_stop(void);
/* The captured text so far. */
const char *testlog_text(void);
bool testlog_has(const char *needle);
void testlog_clear(void);

#endif
