/* SPDX-License-Identifier: MIT */
/* imap_parser's grammar: one complete segment into arguments (the
 * tokenizer) and a response (tagged, untagged, continuation, response
 * codes), the start of each literal, and the error messages with their
 * excerpts of the line. */
#include "imap_parser_private.h"

#include <inttypes.h>
#include <stdalign.h>
#include <stdarg.h>
#include <string.h>

#include "buf.h"
#include "util.h"

/* An error message shows this much of the offending line. */
#define EXCERPT_HEAD 48
#define EXCERPT_TAIL 16

/* An open list (or the top level): where the next argument goes. */
struct frame {
    struct imap_arg *owner; /* the LIST argument, NULL at the top */
    struct imap_arg *head;
    struct imap_arg *tail;
    struct frame *up;
};

/* --- arguments ------------------------------------------------------------ */

static struct imap_arg *
new_arg(struct imap_parser *p, enum imap_arg_type type)
{
    struct imap_arg *arg = imap_parser_arena_alloc(p, sizeof(*arg),
                                                   alignof(struct imap_arg));

    memset(arg, 0, sizeof(*arg));
    arg->type = type;
    return arg;
}

static struct frame *
new_frame(struct imap_parser *p, struct imap_arg *owner, struct frame *up)
{
    struct frame *f = imap_parser_arena_alloc(p, sizeof(*f),
                                              alignof(struct frame));

    f->owner = owner;
    f->head = f->tail = NULL;
    f->up = up;
    return f;
}

static void
append(struct frame *f, struct imap_arg *arg)
{
    if (f->tail != NULL)
        f->tail->next = arg;
    else
        f->head = arg;
    f->tail = arg;
    if (f->owner != NULL) {
        f->owner->list = f->head;
        f->owner->count++;
    }
}

/* --- errors --------------------------------------------------------------- */

/* Escape bytes [off, off + n) of the concatenation a + b. */
static void
escape_range(struct buf *out, const char *a, size_t alen, const char *b,
             size_t off, size_t n)
{
    for (size_t k = off; k < off + n; k++) {
        unsigned char c = (unsigned char)(k < alen ? a[k] : b[k - alen]);

        if (c == '\\')
            buf_append_str(out, "\\\\");
        else if (c >= 0x20 && c < 0x7f)
            buf_append_char(out, (char)c);
        else
            buf_printf(out, "\\x%02x", c);
    }
}

/* Set the error: the formatted message, then an escaped excerpt of the
 * line a + b (its start, and its end when it is long). */
static void PRINTF_LIKE(6, 0)
vfail(struct imap_parser *p, const char *a, size_t alen, const char *b,
      size_t blen, const char *fmt, va_list ap)
{
    struct buf out;
    size_t total = alen + blen;

    if (p->error != NULL)
        return;
    buf_init(&out, BUF_NOCAP);
    buf_vprintf(&out, fmt, ap);
    if (total <= EXCERPT_HEAD + EXCERPT_TAIL) {
        escape_range(&out, a, alen, b, 0, total);
    } else {
        escape_range(&out, a, alen, b, 0, EXCERPT_HEAD);
        buf_append_str(&out, "...");
        escape_range(&out, a, alen, b, total - EXCERPT_TAIL, EXCERPT_TAIL);
    }
    p->error = buf_steal(&out);
}

void
imap_parser_fail(struct imap_parser *p, const char *a, size_t alen,
                 const char *b, size_t blen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(p, a, alen, b, blen, fmt, ap);
    va_end(ap);
}

/* --- tokenizer ------------------------------------------------------------ */

/* A cursor over one complete segment s[0..n), which holds no CR, LF or
 * control byte other than TAB (the scanner rejected those). */
struct tok {
    struct imap_parser *p;
    const char *s;
    size_t n;
    size_t i;
    struct frame *frame;
    unsigned depth;
    bool code; /* inside "[…]": ']' ends, failures are quiet */
};

enum args_end {
    ARGS_ERROR,
    ARGS_LINE_END,
    ARGS_LITERAL,
    ARGS_CODE_END,
};

/* Fail with an excerpt of the segment up to end (the whole first line when
 * the segment is empty). Quiet in a response code, which falls back to
 * plain text instead. */
static void PRINTF_LIKE(3, 4)
tok_error(const struct tok *t, size_t end, const char *fmt, ...)
{
    const char *s = t->s;
    va_list ap;

    if (t->code)
        return;
    if (end == 0 && t->p->resp != NULL && t->p->resp->line != NULL) {
        s = t->p->resp->line;
        end = t->p->resp->line_len;
    }
    va_start(ap, fmt);
    vfail(t->p, s, end, NULL, 0, fmt, ap);
    va_end(ap);
}

static bool
is_atom_char(unsigned char c)
{
    /* 8-bit bytes are accepted: some servers send them unencoded */
    if (c <= 0x20 || c == 0x7f)
        return false;
    return strchr("(){%*\"\\]", c) == NULL;
}

static bool
is_tag_char(unsigned char c)
{
    return c < 0x80 && c != '+' && (c == ']' || is_atom_char(c));
}

static size_t
word_end(const char *s, size_t n, size_t i)
{
    while (i < n && s[i] != ' ')
        i++;
    return i;
}

/* An atom, a flag or a fetch item: inside "[…]" everything up to the
 * matching ']' belongs to it ("BODY[HEADER.FIELDS (FROM)]<0>"). */
static bool
read_atom(struct tok *t)
{
    const char *s = t->s;
    size_t i = t->i, brackets = 0, len;
    struct imap_arg *arg;

    for (; i < t->n; i++) {
        unsigned char c = (unsigned char)s[i];

        /* the common case: letters, digits, 8-bit bytes */
        if (c > ')' && c != '[' && c != ']')
            continue;
        if (c == '\t') {
            tok_error(t, i + 1, "unexpected byte 0x09 in line: ");
            return false;
        }
        if (brackets > 0) {
            if (c == '[')
                brackets++;
            else if (c == ']')
                brackets--;
            continue;
        }
        if (c == ' ' || c == '(' || c == ')' || c == '"')
            break;
        if (c == ']') {
            if (t->code)
                break;
        } else if (c == '[' && !t->code) {
            brackets++;
        }
    }
    if (brackets > 0) {
        tok_error(t, t->n, "missing ] in atom in line: ");
        return false;
    }
    len = i - t->i;
    if (len == 3 && util_strncaseeq(s + t->i, "NIL", 3)) {
        arg = new_arg(t->p, IMAP_ARG_NIL);
    } else {
        arg = new_arg(t->p, IMAP_ARG_ATOM);
        arg->str = imap_parser_arena_strndup(t->p, s + t->i, len);
        arg->len = len;
    }
    append(t->frame, arg);
    t->i = i;
    return true;
}

static bool
read_quoted(struct tok *t)
{
    const char *s = t->s;
    size_t i, len = 0;
    struct imap_arg *arg;
    char *d;

    /* first pass: find the end and the unescaped length */
    for (i = t->i + 1; i < t->n && s[i] != '"'; i++) {
        if (s[i] == '\\' && ++i == t->n)
            break;
        len++;
    }
    if (i >= t->n) {
        tok_error(t, t->n, "unterminated quoted string in line: ");
        return false;
    }
    d = imap_parser_arena_alloc(t->p, len + 1, 1);
    len = 0;
    for (size_t k = t->i + 1; k < i; k++) {
        if (s[k] == '\\')
            k++;
        d[len++] = s[k];
    }
    d[len] = '\0';
    arg = new_arg(t->p, IMAP_ARG_STRING);
    arg->str = d;
    arg->len = len;
    append(t->frame, arg);
    t->i = i + 1;
    return true;
}

/* "{n}", "{n+}" or "~{n}", which must end the segment. */
static enum args_end
read_literal(struct tok *t, uint64_t *size_r)
{
    const char *s = t->s;
    size_t i = t->i, digits;

    if (t->code)
        return ARGS_ERROR;
    if (s[i] == '~')
        i++;
    digits = ++i;
    while (i < t->n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == digits) {
        tok_error(t, t->n, "bad literal size in line: ");
        return ARGS_ERROR;
    }
    if (util_parse_u64(s + digits, i - digits, UINT64_MAX, size_r) < 0) {
        tok_error(t, t->n, "literal size out of range in line: ");
        return ARGS_ERROR;
    }
    if (i < t->n && s[i] == '+')
        i++;
    if (i == t->n || s[i] != '}') {
        tok_error(t, t->n, "bad literal size in line: ");
        return ARGS_ERROR;
    }
    if (i + 1 != t->n) {
        tok_error(t, t->n, "literal not at the end of line: ");
        return ARGS_ERROR;
    }
    t->i = t->n;
    return ARGS_LITERAL;
}

static bool
open_list(struct tok *t)
{
    struct imap_arg *arg;

    if (t->depth >= t->p->max_depth) {
        t->p->error_limit = true;
        tok_error(t, t->i + 1, "lists nested deeper than %u in line: ",
                  t->p->max_depth);
        return false;
    }
    arg = new_arg(t->p, IMAP_ARG_LIST);
    append(t->frame, arg);
    t->frame = new_frame(t->p, arg, t->frame);
    t->depth++;
    t->i++;
    return true;
}

/* Arguments until the segment ends (or, in a code, until its ']'). */
static enum args_end
parse_args(struct tok *t, uint64_t *size_r)
{
    const char *s = t->s;

    for (;;) {
        bool ok;

        while (t->i < t->n && s[t->i] == ' ')
            t->i++;
        if (t->i == t->n)
            return t->code ? ARGS_ERROR : ARGS_LINE_END;
        switch (s[t->i]) {
        case '(':
            ok = open_list(t);
            break;
        case ')':
            ok = t->frame->owner != NULL;
            if (ok) {
                t->frame = t->frame->up;
                t->depth--;
                t->i++;
            } else {
                tok_error(t, t->i + 1, "unbalanced ) in line: ");
            }
            break;
        case '"':
            ok = read_quoted(t);
            break;
        case '{':
            return read_literal(t, size_r);
        case '~':
            if (t->i + 1 < t->n && s[t->i + 1] == '{')
                return read_literal(t, size_r);
            ok = read_atom(t);
            break;
        case ']':
            if (t->code) {
                if (t->depth > 0)
                    return ARGS_ERROR;
                t->i++;
                return ARGS_CODE_END;
            }
            ok = read_atom(t);
            break;
        default:
            ok = read_atom(t);
            break;
        }
        if (!ok)
            return ARGS_ERROR;
    }
}

/* --- responses ------------------------------------------------------------ */

static enum imap_cond
status_cond(const char *name, bool tagged)
{
    if (strcmp(name, "OK") == 0)
        return IMAP_COND_OK;
    if (strcmp(name, "NO") == 0)
        return IMAP_COND_NO;
    if (strcmp(name, "BAD") == 0)
        return IMAP_COND_BAD;
    if (tagged)
        return IMAP_COND_NONE;
    if (strcmp(name, "BYE") == 0)
        return IMAP_COND_BYE;
    if (strcmp(name, "PREAUTH") == 0)
        return IMAP_COND_PREAUTH;
    return IMAP_COND_NONE;
}

/* "[CODE args]" at s[*pos]; on success set the code and move *pos past the
 * ']' and one SP. Anything that is not a well-formed code stays text. */
static void
parse_code(struct imap_parser *p, const char *s, size_t n, size_t *pos)
{
    size_t start = *pos + 1, i = start;
    const struct imap_arg *args = NULL;
    const char *code;

    while (i < n && s[i] != ' ' && s[i] != ']') {
        if (!is_atom_char((unsigned char)s[i]))
            return;
        i++;
    }
    if (i == start || i == n)
        return;
    code = imap_parser_arena_upper(p, s + start, i - start);
    if (s[i] == ' ') {
        struct tok t = {
            .p = p, .s = s, .n = n, .i = i + 1, .code = true,
            .frame = new_frame(p, NULL, NULL),
        };
        uint64_t unused;

        if (parse_args(&t, &unused) != ARGS_CODE_END)
            return;
        args = t.frame->head;
        i = t.i;
    } else {
        i++;
    }
    if (i < n && s[i] == ' ')
        i++;
    p->resp->code = code;
    p->resp->code_args = args;
    *pos = i;
}

/* resp-text after the status word that ends at i (at SP or the end). */
static void
resp_text(struct imap_parser *p, const char *s, size_t n, size_t i)
{
    if (i < n)
        i++;
    if (i < n && s[i] == '[')
        parse_code(p, s, n, &i);
    p->resp->text = imap_parser_arena_strndup(p, s + i, n - i);
}

enum header_result {
    HEADER_ERROR,
    HEADER_DONE, /* the response is complete */
    HEADER_ARGS, /* data arguments follow at t->i */
};

static enum header_result
untagged(struct tok *t)
{
    struct imap_parser *p = t->p;
    struct imap_response *r = p->resp;
    const char *s = t->s;
    size_t n = t->n, i = 2, w;

    r->type = IMAP_RESP_UNTAGGED;
    if (n < 2 || s[1] != ' ') {
        tok_error(t, n, "expected SP after * in line: ");
        return HEADER_ERROR;
    }
    w = word_end(s, n, i);
    if (w > i && s[i] >= '0' && s[i] <= '9') {
        size_t k = i;

        while (k < w && s[k] >= '0' && s[k] <= '9')
            k++;
        if (k == w) {
            if (util_parse_u32(s + i, w - i, &r->number) < 0) {
                tok_error(t, n, "number out of range in line: ");
                return HEADER_ERROR;
            }
            r->has_number = true;
            if (w == n) {
                tok_error(t, n, "missing response name in line: ");
                return HEADER_ERROR;
            }
            i = w + 1;
            w = word_end(s, n, i);
        }
    }
    if (w == i) {
        tok_error(t, n, "missing response name in line: ");
        return HEADER_ERROR;
    }
    for (size_t k = i; k < w; k++) {
        if (!is_atom_char((unsigned char)s[k])) {
            tok_error(t, k + 1, "bad response name in line: ");
            return HEADER_ERROR;
        }
    }
    r->name = imap_parser_arena_upper(p, s + i, w - i);
    if (!r->has_number) {
        r->cond = status_cond(r->name, false);
        if (r->cond != IMAP_COND_NONE) {
            resp_text(p, s, n, w);
            return HEADER_DONE;
        }
    }
    if (w == n)
        return HEADER_DONE;
    t->frame = new_frame(p, NULL, NULL);
    t->depth = 0;
    t->i = w + 1;
    return HEADER_ARGS;
}

static enum header_result
tagged(struct tok *t)
{
    struct imap_parser *p = t->p;
    struct imap_response *r = p->resp;
    const char *s = t->s;
    size_t n = t->n, w = word_end(s, n, 0), i;

    r->type = IMAP_RESP_TAGGED;
    if (w == 0) {
        tok_error(t, n, "bad tag in line: ");
        return HEADER_ERROR;
    }
    for (size_t k = 0; k < w; k++) {
        if (!is_tag_char((unsigned char)s[k])) {
            tok_error(t, k + 1, "bad tag in line: ");
            return HEADER_ERROR;
        }
    }
    r->tag = imap_parser_arena_strndup(p, s, w);
    if (w == n) {
        tok_error(t, n, "expected OK, NO or BAD after the tag in line: ");
        return HEADER_ERROR;
    }
    i = w + 1;
    w = word_end(s, n, i);
    r->name = imap_parser_arena_upper(p, s + i, w - i);
    r->cond = status_cond(r->name, true);
    if (r->cond == IMAP_COND_NONE) {
        tok_error(t, n, "expected OK, NO or BAD after the tag in line: ");
        return HEADER_ERROR;
    }
    resp_text(p, s, n, w);
    return HEADER_DONE;
}

/* The first segment of a response: s[0..n), n > 0. */
static enum header_result
begin_response(struct imap_parser *p, const char *s, size_t n, struct tok *t)
{
    struct imap_response *r =
        imap_parser_arena_alloc(p, sizeof(*r), alignof(struct imap_response));

    memset(r, 0, sizeof(*r));
    p->resp = r;
    p->next_stream_id = 0;
    r->line_len = n < IMAP_PARSER_TRACE_MAX ? n : IMAP_PARSER_TRACE_MAX;
    r->line_truncated = n > IMAP_PARSER_TRACE_MAX;
    r->line = imap_parser_arena_strndup(p, s, r->line_len);
    *t = (struct tok){.p = p, .s = s, .n = n};
    if (s[0] == '+') {
        size_t i = n > 1 && s[1] == ' ' ? 2 : 1;

        r->type = IMAP_RESP_CONTINUE;
        r->text = imap_parser_arena_strndup(p, s + i, n - i);
        return HEADER_DONE;
    }
    if (s[0] == '*')
        return untagged(t);
    return tagged(t);
}

/* A literal of `size` bytes follows the segment s[0..n). */
static bool
literal_begin(struct imap_parser *p, uint64_t size, const char *s, size_t n)
{
    bool can_stream = p->ops != NULL && p->ops->start != NULL;
    uint64_t limit = p->max_literal;
    struct imap_arg *prev = p->frame->tail, *arg;

    if (can_stream && p->max_stream > limit)
        limit = p->max_stream;
    if (size > limit) {
        p->error_limit = true;
        imap_parser_fail(p, s, n, NULL, 0,
                         "literal of %" PRIu64 " bytes exceeds the %" PRIu64
                         "-byte limit in line: ", size, limit);
        return false;
    }
    arg = new_arg(p, IMAP_ARG_STREAMED);
    if (can_stream && size <= p->max_stream &&
        p->ops->start(p->ops_arg, p->resp, prev, size, p->next_stream_id)) {
        arg->literal_size = size;
        arg->stream_id = p->next_stream_id++;
    } else {
        char *d;

        if (size > p->max_literal) {
            p->error_limit = true;
            imap_parser_fail(p, s, n, NULL, 0,
                             "literal of %" PRIu64 " bytes exceeds the %"
                             PRIu64 "-byte limit in line: ", size,
                             p->max_literal);
            return false;
        }
        /* the limit also holds for all literals of one response together */
        if (size > p->max_literal - p->literal_total) {
            p->error_limit = true;
            imap_parser_fail(p, s, n, NULL, 0,
                             "literals of one response exceed the %" PRIu64
                             "-byte limit in line: ", p->max_literal);
            return false;
        }
        p->literal_total += size;
        d = imap_parser_arena_alloc(p, (size_t)size + 1, 1);
        d[size] = '\0';
        arg->type = IMAP_ARG_LITERAL;
        arg->str = d;
        arg->len = (size_t)size;
    }
    append(p->frame, arg);
    p->lit = arg;
    p->lit_left = size;
    return true;
}

enum segment_result
imap_parser_segment(struct imap_parser *p, const char *s, size_t n)
{
    struct tok t;
    enum args_end end;
    uint64_t size = 0;

    if (p->resp == NULL) {
        if (n == 0)
            return SEGMENT_SKIP;
        switch (begin_response(p, s, n, &t)) {
        case HEADER_ERROR:
            return SEGMENT_ERROR;
        case HEADER_DONE:
            return SEGMENT_DONE;
        case HEADER_ARGS:
            break;
        }
    } else {
        t = (struct tok){
            .p = p, .s = s, .n = n, .frame = p->frame, .depth = p->depth,
        };
    }
    end = parse_args(&t, &size);
    p->frame = t.frame;
    p->depth = t.depth;
    if (end == ARGS_ERROR)
        return SEGMENT_ERROR;
    if (end == ARGS_LITERAL)
        return literal_begin(p, size, s, n) ? SEGMENT_LITERAL : SEGMENT_ERROR;
    if (t.depth > 0) {
        tok_error(&t, n, "missing ) at the end of response: ");
        return SEGMENT_ERROR;
    }
    p->resp->args = t.frame->head;
    return SEGMENT_DONE;
}
