/* SPDX-License-Identifier: MIT */
/* imap_parser: a pure, resumable, bounded parser of IMAP server responses
 * (RFC 3501 / 9051). It never reads sockets and never logs: feed it bytes as
 * they arrive, split anywhere (inside a literal's {n}, between CR and LF, …),
 * and it hands back one complete response at a time.
 *
 * Memory: the parser keeps only the unfinished part of the current response
 * (bounded by the limits) and the arena of the last response returned;
 * imap_parser_release() frees both when nothing is pending, so an idle
 * connection's parser holds no buffers. */
#ifndef IMAPSWEEP_IMAP_PARSER_H
#define IMAPSWEEP_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_arg.h"

enum imap_resp_type {
    IMAP_RESP_UNTAGGED, /* "* …" */
    IMAP_RESP_TAGGED,   /* "A12 OK …" */
    IMAP_RESP_CONTINUE, /* "+ …" */
};

/* The condition of a status response (tagged, or untagged OK/NO/BAD/BYE/
 * PREAUTH); IMAP_COND_NONE for data responses and continuations. */
enum imap_cond {
    IMAP_COND_NONE,
    IMAP_COND_OK,
    IMAP_COND_NO,
    IMAP_COND_BAD,
    IMAP_COND_BYE,
    IMAP_COND_PREAUTH,
};

struct imap_response {
    enum imap_resp_type type;
    const char *tag;     /* TAGGED: the tag as sent; otherwise NULL */
    bool has_number;     /* "* 12 EXISTS" / "* 3 FETCH (…)" */
    uint32_t number;
    /* UNTAGGED and TAGGED: the keyword in upper case ("OK", "NO", "BYE",
     * "CAPABILITY", "FETCH", "EXISTS", "SEARCH", "ESEARCH", …).
     * CONTINUE: NULL. */
    const char *name;
    enum imap_cond cond;
    /* Status responses: the response code inside [ ], upper-cased
     * ("UIDVALIDITY", "CAPABILITY", "COPYUID", "ALERT", …) or NULL, and
     * the arguments that follow it inside the brackets (NULL if none). */
    const char *code;
    const struct imap_arg *code_args;
    /* Status responses and continuations: the human-readable text after
     * the code ("" when absent). Data responses: NULL. */
    const char *text;
    /* Data responses: the arguments after the name (FETCH's list,
     * SEARCH's numbers, CAPABILITY's atoms, …), NULL when there are none.
     * Status responses and continuations: NULL. */
    const struct imap_arg *args;
    /* The first line of the response as received, without CRLF and cut at
     * IMAP_PARSER_TRACE_MAX bytes (literal contents never included), for
     * protocol traces. */
    const char *line;
    size_t line_len;
    bool line_truncated;
};

#define IMAP_PARSER_TRACE_MAX 512

/* A zero field means the default. */
struct imap_parser_limits {
    size_t max_line;       /* longest response text outside literals (all
                              its line segments together), e.g. 1 MiB */
    uint64_t max_literal;  /* literals kept in memory, per response */
    uint64_t max_stream;   /* largest literal passed to a stream consumer */
    unsigned max_depth;    /* deepest list nesting, e.g. 32 */
};

/* Consumer of literals the caller wants streamed (message bodies). */
struct imap_parser_stream_ops {
    /* A literal of `size` bytes begins. `partial` is the response so far
     * (type, tag, number, name are valid; args are not); `prev` is the
     * argument just before the literal in its list (for FETCH, the item
     * name such as the atom "BODY[TEXT]"), or NULL. Return true to receive
     * the bytes through data(); the literal then appears in the response as
     * IMAP_ARG_STREAMED with this stream_id. Return false to keep it. */
    bool (*start)(void *arg, const struct imap_response *partial,
                  const struct imap_arg *prev, uint64_t size,
                  unsigned stream_id);
    /* Bytes of the streamed literal, in order, in pieces of any size. */
    void (*data)(void *arg, unsigned stream_id, const void *p, size_t n);
    /* The literal is complete (called once, also for size 0). */
    void (*end)(void *arg, unsigned stream_id);
};

enum imap_parse_result {
    IMAP_PARSE_MORE,  /* all input consumed, response not complete yet */
    IMAP_PARSE_DONE,  /* one response complete: see *resp_r, *consumed_r */
    IMAP_PARSE_ERROR, /* the input is not IMAP, or breaks a limit */
};

struct imap_parser;

/* limits may be NULL for the defaults (1 MiB lines, 1 MiB literals, 4 GiB
 * streams, depth 32). ops may be NULL (every literal is kept). */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits,
                                    const struct imap_parser_stream_ops *ops,
                                    void *ops_arg);
/* NULL-safe. */
void imap_parser_free(struct imap_parser *p);

/* Feed up to len bytes. Sets *consumed_r to the bytes used; on DONE the
 * caller feeds the rest (data + *consumed_r) again. On DONE, *resp_r is
 * valid until the next imap_parser_feed() or imap_parser_release(). After
 * ERROR the parser is unusable (the connection should end); see
 * imap_parser_error(). Stream callbacks run inside this call. */
enum imap_parse_result imap_parser_feed(struct imap_parser *p,
                                        const char *data, size_t len,
                                        size_t *consumed_r,
                                        const struct imap_response **resp_r);

/* What went wrong, with what arrived ("line longer than 1048576 bytes",
 * "literal of 99999999999 bytes exceeds the 1048576-byte limit",
 * "unexpected byte 0x00 in line: * OK \x00…"). Valid after ERROR. */
const char *imap_parser_error(const struct imap_parser *p);
/* True if the error was a broken limit (line, literal, nesting) rather
 * than bytes that are not IMAP. */
bool imap_parser_error_is_limit(const struct imap_parser *p);

/* Drop the last response's arena (invalidating it) and, when no response
 * is partly received, every buffer. */
void imap_parser_release(struct imap_parser *p);

/* True if no partial response is buffered. */
bool imap_parser_is_idle(const struct imap_parser *p);

#endif
