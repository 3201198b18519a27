/* SPDX-License-Identifier: MIT */
/* imap_arg: the argument tree of one parsed IMAP response (RFC 3501 section 4
 * data formats). Arguments live in the parser's arena: they are borrowed,
 * valid only until the parser is fed again; copy anything you keep. */
#ifndef IMAPSWEEP_IMAP_ARG_H
#define IMAPSWEEP_IMAP_ARG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum imap_arg_type {
    IMAP_ARG_NIL,      /* NIL */
    IMAP_ARG_ATOM,     /* atom, number, flag ("\Seen"), "BODY[TEXT]<0>" */
    IMAP_ARG_STRING,   /* quoted string (unescaped) */
    IMAP_ARG_LITERAL,  /* {n} / {n+} / ~{n} literal, buffered in full */
    IMAP_ARG_STREAMED, /* literal passed to a stream consumer, not kept */
    IMAP_ARG_LIST,     /* ( … ) */
};

struct imap_arg {
    enum imap_arg_type type;
    /* ATOM/STRING/LITERAL: str points to len bytes followed by a NUL.
     * Literals may contain NULs: use len, not strlen. NIL: str NULL. */
    const char *str;
    size_t len;
    /* STREAMED: the literal's size; stream_id counts streamed literals
     * within the response from 0 (matches imap_parser_stream_cb calls). */
    uint64_t literal_size;
    unsigned stream_id;
    /* LIST: first child (NULL for "()") and number of children. */
    const struct imap_arg *list;
    size_t count;
    /* next sibling, NULL at the end of a list or of the response */
    const struct imap_arg *next;
};

/* Accessors: return true and set the outputs only if the argument has the
 * right type (NULL arg is never a match). */
bool imap_arg_is_atom(const struct imap_arg *arg, const char *upper_name);
/* ATOM, STRING or LITERAL (an IMAP astring/nstring without NIL) */
bool imap_arg_get_astring(const struct imap_arg *arg, const char **s_r,
                          size_t *len_r);
/* ATOM, STRING, LITERAL, or NIL (s_r = NULL, len_r = 0) */
bool imap_arg_get_nstring(const struct imap_arg *arg, const char **s_r,
                          size_t *len_r);
/* ATOM holding a decimal number within range (no sign, no overflow) */
bool imap_arg_get_u32(const struct imap_arg *arg, uint32_t *v_r);
bool imap_arg_get_u64(const struct imap_arg *arg, uint64_t *v_r);
/* LIST: first child (may be NULL) and count */
bool imap_arg_get_list(const struct imap_arg *arg,
                       const struct imap_arg **first_r, size_t *count_r);
/* An INTERNALDATE ("02-Jan-2024 03:04:05 +0100", without the quotes) as
 * seconds since the epoch (UTC); false for anything but RFC 3501's form. */
bool imap_arg_parse_internaldate(const char *s, size_t len, int64_t *t_r);
/* Number of siblings from arg to the end (0 for NULL). */
size_t imap_arg_count(const struct imap_arg *arg);
/* The n-th sibling after arg (n = 0 is arg), or NULL. */
const struct imap_arg *imap_arg_nth(const struct imap_arg *arg, size_t n);

#endif
