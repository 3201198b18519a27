/* SPDX-License-Identifier: MIT */
/* imap_build: builds one IMAP command from typed tokens, choosing atom,
 * quoted string or literal for each argument, so that no caller ever splices
 * text into a command. The tag and the final CRLF are added by imap_conn.
 *
 * A command with synchronizing literals is split into parts: every part but
 * the last ends with "{n}\r\n", after which the sender must wait for the
 * server's "+" before sending the next part. */
#ifndef IMAPSWEEP_IMAP_BUILD_H
#define IMAPSWEEP_IMAP_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "uidset.h"

enum imap_build_flags {
    IMAP_BUILD_LITERAL_PLUS = 1 << 0,  /* RFC 7888 LITERAL+: {n+} always */
    IMAP_BUILD_LITERAL_MINUS = 1 << 1, /* LITERAL-: {n+} up to 4096 bytes */
    IMAP_BUILD_UTF8 = 1 << 2,          /* UTF8=ACCEPT enabled (RFC 6855) */
};

/* Quoted strings longer than this are sent as literals. */
#define IMAP_BUILD_QUOTED_MAX 1024

struct imap_build;

struct imap_build *imap_build_new(unsigned flags);
/* NULL-safe; wipes the contents first if the command holds a secret. */
void imap_build_free(struct imap_build *b);
unsigned imap_build_flags(const struct imap_build *b);

/* A raw token the caller guarantees is valid IMAP syntax: a command name,
 * search key, flag, fetch item ("BODY.PEEK[HEADER.FIELDS (FROM)]"). */
void imap_build_atom(struct imap_build *b, const char *atom);
void imap_build_number(struct imap_build *b, uint64_t n);
/* A string argument: quoted, or a literal when it holds CR, LF, 8-bit bytes
 * (outside UTF-8 mode) or is long. NUL bytes cannot be sent: they make the
 * command invalid (see imap_build_error). */
void imap_build_string(struct imap_build *b, const char *s, size_t len);
/* An astring: an atom when the text allows it, else as imap_build_string. */
void imap_build_astring(struct imap_build *b, const char *s, size_t len);
/* A mailbox name given in UTF-8: "INBOX" in any case is sent as INBOX;
 * others are encoded in modified UTF-7, or sent as UTF-8 in UTF-8 mode. */
void imap_build_mailbox(struct imap_build *b, const char *utf8_name);
void imap_build_uidset(struct imap_build *b, const struct uidset *set);
/* "(" and ")": tokens inside a list are separated by single spaces. */
void imap_build_list_open(struct imap_build *b);
void imap_build_list_close(struct imap_build *b);
/* The command holds a secret (a password, a token): its memory is wiped on
 * free, and traces must redact it. */
void imap_build_mark_secret(struct imap_build *b);
bool imap_build_is_secret(const struct imap_build *b);

/* NULL if the command is valid, else why not (e.g. a NUL byte). */
const char *imap_build_error(const struct imap_build *b);

/* The parts to send (see above). Valid until the next change. */
size_t imap_build_nparts(const struct imap_build *b);
const char *imap_build_part(const struct imap_build *b, size_t i,
                            size_t *len_r);
/* The whole command text (parts concatenated) for tests and traces. */
void imap_build_render(const struct imap_build *b, struct buf *out);
/* Total length in bytes (all parts). */
size_t imap_build_len(const struct imap_build *b);

#endif
