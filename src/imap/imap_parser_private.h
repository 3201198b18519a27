/* SPDX-License-Identifier: MIT */
/* imap_parser internals shared by its files (see "How it works" in
 * imap_parser.c):
 * - imap_parser.c: the arena, the input scanner (segments and literal
 *   data) and the API;
 * - imap_parser_grammar.c: one complete segment into arguments and a
 *   response (tokenizer, response grammar, literal starts), and the error
 *   messages.
 * Not part of the contract (include/imap_parser.h). */
#ifndef IMAPSWEEP_IMAP_PARSER_PRIVATE_H
#define IMAPSWEEP_IMAP_PARSER_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "imap_parser.h"
#include "util.h"

struct chunk;           /* imap_parser.c */
struct frame;           /* imap_parser_grammar.c */

struct imap_parser {
    size_t max_line;
    uint64_t max_literal;
    uint64_t max_stream;
    unsigned max_depth;

    unsigned depth;          /* of p->frame */
    unsigned next_stream_id;
    bool cr_pending;         /* a CR ended the last input, LF must follow */
    bool returned;           /* the arena holds a response handed out */

    const struct imap_parser_stream_ops *ops;
    void *ops_arg;

    struct buf line;         /* the unfinished segment, checked bytes only */
    size_t text_total;       /* segment bytes of this response so far */
    uint64_t literal_total;  /* bytes of buffered literals in it */

    struct chunk *arena;
    struct imap_response *resp; /* being built, NULL between responses */
    struct frame *frame;
    struct imap_arg *lit;       /* literal being received, or NULL */
    uint64_t lit_left;

    char *error;
    bool error_limit;       /* the error broke a size or depth limit */
};

enum segment_result {
    SEGMENT_ERROR,
    SEGMENT_SKIP,    /* an empty line between responses */
    SEGMENT_LITERAL, /* p->lit is set */
    SEGMENT_DONE,    /* p->resp is complete */
};

/* imap_parser.c */
/* Memory for the response being built, from the arena. */
void *imap_parser_arena_alloc(struct imap_parser *p, size_t size,
                              size_t align);
char *imap_parser_arena_strndup(struct imap_parser *p, const char *s,
                                size_t n);
/* The same, upper-cased. */
char *imap_parser_arena_upper(struct imap_parser *p, const char *s,
                              size_t n);

/* imap_parser_grammar.c */
/* Set the error (unless one is set): the message, then an escaped excerpt
 * of the line a + b. */
void imap_parser_fail(struct imap_parser *p, const char *a, size_t alen,
                      const char *b, size_t blen, const char *fmt, ...)
    PRINTF_LIKE(6, 7);
/* One complete segment s[0..n): the start of a response or what follows
 * a literal. */
enum segment_result imap_parser_segment(struct imap_parser *p,
                                        const char *s, size_t n);

#endif
