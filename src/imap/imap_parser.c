/* SPDX-License-Identifier: MIT */
/* imap_parser: the arena, the input scanner and the API; the grammar of a
 * segment is in imap_parser_grammar.c. */
#include "imap_parser_private.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

/* How it works: the input is cut into line segments, the text before a line
 * end. A segment that ends in a literal marker "{n}" is followed by n bytes
 * of literal data and then by the next segment of the same response. Each
 * byte is checked once as it arrives; only an unfinished segment is copied
 * (into p->line), and each complete segment is tokenized once into the
 * arena, the stack of open lists surviving from one segment to the next. */

#define DEFAULT_MAX_LINE ((size_t)1 << 20)
#define DEFAULT_MAX_LITERAL ((uint64_t)1 << 20)
#define DEFAULT_MAX_STREAM ((uint64_t)4 << 30)
#define DEFAULT_MAX_DEPTH 32u

/* Limits above this could overflow size arithmetic; nobody needs them. */
#define SIZE_LIMIT (SIZE_MAX / 4)

#define ARENA_MIN 1024
#define ARENA_MAX (64 * 1024)

struct chunk {
    struct chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

/* --- arena ---------------------------------------------------------------- */

static void
arena_free(struct imap_parser *p, bool keep_one)
{
    struct chunk *c = p->arena, *keep = NULL;

    while (c != NULL) {
        struct chunk *next = c->next;

        /* keep one small chunk for the next response */
        if (keep_one && keep == NULL && c->size == ARENA_MIN) {
            keep = c;
            keep->used = 0;
            keep->next = NULL;
        } else {
            free(c);
        }
        c = next;
    }
    p->arena = keep;
}

static void *
arena_grow(struct imap_parser *p, size_t size)
{
    size_t csize = ARENA_MIN;
    struct chunk *c;

    if (p->arena != NULL) {
        csize = p->arena->size < ARENA_MAX / 2 ? p->arena->size * 2
                                               : ARENA_MAX;
        if (csize < ARENA_MIN)
            csize = ARENA_MIN;
    }
    if (size > csize / 2) {
        /* A big block (a literal) gets a chunk of its own, put behind the
         * current one so that the free space there stays in use. */
        c = xmalloc(sizeof(*c) + size);
        c->size = c->used = size;
        if (p->arena != NULL) {
            c->next = p->arena->next;
            p->arena->next = c;
        } else {
            c->next = NULL;
            p->arena = c;
        }
        return c->data;
    }
    c = xmalloc(sizeof(*c) + csize);
    c->size = csize;
    c->used = size;
    c->next = p->arena;
    p->arena = c;
    return c->data;
}

/* size is bounded by the limits (at most SIZE_LIMIT + 1), align a power of
 * two not above max_align_t's. */
void *
imap_parser_arena_alloc(struct imap_parser *p, size_t size, size_t align)
{
    struct chunk *c = p->arena;

    if (c != NULL) {
        size_t off = (c->used + align - 1) & ~(align - 1);

        if (off <= c->size && size <= c->size - off) {
            c->used = off + size;
            return (char *)c->data + off;
        }
    }
    return arena_grow(p, size);
}

char *
imap_parser_arena_strndup(struct imap_parser *p, const char *s, size_t n)
{
    char *d = imap_parser_arena_alloc(p, n + 1, 1);

    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *
imap_parser_arena_upper(struct imap_parser *p, const char *s, size_t n)
{
    char *d = imap_parser_arena_alloc(p, n + 1, 1);

    for (size_t i = 0; i < n; i++)
        d[i] = util_toupper(s[i]);
    d[n] = '\0';
    return d;
}

/* --- input ---------------------------------------------------------------- */

enum scan_result {
    SCAN_ERROR,
    SCAN_MORE, /* all input taken, the segment is not complete */
    SCAN_LINE, /* *seg_r holds a complete segment */
};

/* The segment data[start..end) is complete; the next one starts at next.
 * Use it in place unless part of it is already buffered. */
static enum scan_result
segment_found(struct imap_parser *p, const char *data, size_t start,
              size_t end, size_t next, size_t *pos, const char **seg_r,
              size_t *seg_len_r)
{
    if (p->line.len == 0) {
        *seg_r = data + start;
        *seg_len_r = end - start;
    } else {
        buf_append(&p->line, data + start, end - start);
        *seg_r = p->line.data;
        *seg_len_r = p->line.len;
    }
    *pos = next;
    return SCAN_LINE;
}

/* TAB is allowed in quoted strings and text; the tokenizer rejects it
 * elsewhere. 8-bit bytes are allowed. */
static bool
is_plain(unsigned char c)
{
    return (c >= 0x20 && c != 0x7f) || c == '\t';
}

/* Find the end of the current segment in data[*pos..len), checking every
 * byte once. Only an unfinished segment is copied; a complete one that
 * arrived in one piece is used in place. */
static enum scan_result
scan_line(struct imap_parser *p, const char *data, size_t len, size_t *pos,
          const char **seg_r, size_t *seg_len_r)
{
    size_t start = *pos, i = start, stop;
    size_t have = p->line.len;
    size_t room = p->max_line - p->text_total - have;
    unsigned char c;

    if (p->cr_pending) {
        if (i == len)
            return SCAN_MORE;
        if (data[i] != '\n') {
            buf_append_char(&p->line, '\r');
            imap_parser_fail(p, p->line.data, p->line.len, NULL, 0,
                             "unexpected byte 0x0d in line: ");
            return SCAN_ERROR;
        }
        p->cr_pending = false;
        return segment_found(p, data, start, i, i + 1, pos, seg_r,
                             seg_len_r);
    }
    /* plain bytes, the bulk of every line, up to the length limit */
    stop = len - start > room ? start + room : len;
    while (i < stop && is_plain((unsigned char)data[i]))
        i++;
    if (i == len) {
        buf_append(&p->line, data + start, len - start);
        *pos = len;
        return SCAN_MORE;
    }
    c = (unsigned char)data[i];
    if (is_plain(c)) {
        p->error_limit = true;
        imap_parser_fail(p, p->line.data, have, data + start, i - start + 1,
                         "line longer than %zu bytes: ", p->max_line);
        return SCAN_ERROR;
    }
    if (c == '\n') {
        return segment_found(p, data, start, i, i + 1, pos, seg_r,
                             seg_len_r);
    }
    if (c == '\r') {
        if (i + 1 == len) {
            buf_append(&p->line, data + start, i - start);
            p->cr_pending = true;
            *pos = len;
            return SCAN_MORE;
        }
        if (data[i + 1] == '\n')
            return segment_found(p, data, start, i, i + 2, pos, seg_r,
                                 seg_len_r);
    }
    imap_parser_fail(p, p->line.data, have, data + start, i - start + 1,
                     "unexpected byte 0x%02x in line: ", c);
    return SCAN_ERROR;
}

static size_t
literal_data(struct imap_parser *p, const char *data, size_t len)
{
    struct imap_arg *arg = p->lit;
    size_t n = p->lit_left < len ? (size_t)p->lit_left : len;

    if (n == 0)
        return 0;
    if (arg->type == IMAP_ARG_STREAMED) {
        if (p->ops->data != NULL)
            p->ops->data(p->ops_arg, arg->stream_id, data, n);
    } else {
        /* the arena block behind str is ours and writable */
        memcpy((char *)arg->str + (arg->len - (size_t)p->lit_left), data, n);
    }
    p->lit_left -= n;
    return n;
}

static void
literal_end(struct imap_parser *p)
{
    struct imap_arg *arg = p->lit;

    p->lit = NULL;
    if (arg->type == IMAP_ARG_STREAMED && p->ops->end != NULL)
        p->ops->end(p->ops_arg, arg->stream_id);
}

/* --- API ------------------------------------------------------------------ */

struct imap_parser *
imap_parser_new(const struct imap_parser_limits *limits,
                const struct imap_parser_stream_ops *ops, void *ops_arg)
{
    struct imap_parser *p = xcalloc(1, sizeof(*p));

    /* zero fields take the default, so callers may set only some */
    p->max_line = DEFAULT_MAX_LINE;
    p->max_literal = DEFAULT_MAX_LITERAL;
    p->max_stream = DEFAULT_MAX_STREAM;
    p->max_depth = DEFAULT_MAX_DEPTH;
    if (limits != NULL) {
        if (limits->max_line > 0)
            p->max_line = limits->max_line;
        if (limits->max_literal > 0)
            p->max_literal = limits->max_literal;
        if (limits->max_stream > 0)
            p->max_stream = limits->max_stream;
        if (limits->max_depth > 0)
            p->max_depth = limits->max_depth;
    }
    if (p->max_line > SIZE_LIMIT)
        p->max_line = SIZE_LIMIT;
    if (p->max_literal > SIZE_LIMIT)
        p->max_literal = SIZE_LIMIT;
    p->ops = ops;
    p->ops_arg = ops_arg;
    p->arena = NULL;
    p->resp = NULL;
    p->frame = NULL;
    p->lit = NULL;
    p->error = NULL;
    buf_init(&p->line, BUF_NOCAP);
    return p;
}

void
imap_parser_free(struct imap_parser *p)
{
    if (p == NULL)
        return;
    arena_free(p, false);
    buf_free(&p->line);
    free(p->error);
    free(p);
}

enum imap_parse_result
imap_parser_feed(struct imap_parser *p, const char *data, size_t len,
                 size_t *consumed_r, const struct imap_response **resp_r)
{
    size_t pos = 0;

    *consumed_r = 0;
    if (p->error != NULL)
        return IMAP_PARSE_ERROR;
    if (len == 0)
        data = ""; /* no arithmetic on a null pointer */
    if (p->returned) {
        arena_free(p, true);
        p->returned = false;
    }
    for (;;) {
        const char *seg = NULL;
        size_t seg_len = 0;
        enum segment_result res;

        if (p->lit != NULL) {
            pos += literal_data(p, data + pos, len - pos);
            if (p->lit_left > 0)
                break;
            literal_end(p);
            continue;
        }
        switch (scan_line(p, data, len, &pos, &seg, &seg_len)) {
        case SCAN_ERROR:
            *consumed_r = pos;
            return IMAP_PARSE_ERROR;
        case SCAN_MORE:
            *consumed_r = pos;
            return IMAP_PARSE_MORE;
        case SCAN_LINE:
            break;
        }
        p->text_total += seg_len;
        res = imap_parser_segment(p, seg, seg_len);
        buf_reset(&p->line);
        if (res == SEGMENT_ERROR) {
            *consumed_r = pos;
            return IMAP_PARSE_ERROR;
        }
        if (res == SEGMENT_DONE) {
            *resp_r = p->resp;
            p->resp = NULL;
            p->frame = NULL;
            p->depth = 0;
            p->text_total = 0;
            p->literal_total = 0;
            p->returned = true;
            *consumed_r = pos;
            return IMAP_PARSE_DONE;
        }
        if (res == SEGMENT_SKIP)
            p->text_total = 0;
    }
    *consumed_r = pos;
    return IMAP_PARSE_MORE;
}

const char *
imap_parser_error(const struct imap_parser *p)
{
    return p->error != NULL ? p->error : "";
}

bool
imap_parser_error_is_limit(const struct imap_parser *p)
{
    return p->error_limit;
}

void
imap_parser_release(struct imap_parser *p)
{
    if (p == NULL)
        return;
    if (p->returned || p->resp == NULL) {
        arena_free(p, false);
        p->returned = false;
    }
    /* in the middle of a long literal the line buffer is not needed */
    if (p->line.len == 0 && !p->cr_pending)
        buf_free(&p->line);
}

bool
imap_parser_is_idle(const struct imap_parser *p)
{
    return p->resp == NULL && p->lit == NULL && p->line.len == 0 &&
           !p->cr_pending;
}
