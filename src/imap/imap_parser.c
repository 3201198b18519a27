#include "imap_parser.h"

#include <inttypes.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
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

/* An error message shows this much of the offending line. */
#define EXCERPT_HEAD 48
#define EXCERPT_TAIL 16

struct chunk {
    struct chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

/* An open list (or the top level): where the next argument goes. */
struct frame {
    struct imap_arg *owner; /* the LIST argument, NULL at the top */
    struct imap_arg *head;
    struct imap_arg *tail;
    struct frame *up;
};

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
static void *
arena_alloc(struct imap_parser *p, size_t size, size_t align)
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

static char *
arena_strndup(struct imap_parser *p, const char *s, size_t n)
{
    char *d = arena_alloc(p, n + 1, 1);

    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *
arena_upper(struct imap_parser *p, const char *s, size_t n)
{
    char *d = arena_alloc(p, n + 1, 1);

    for (size_t i = 0; i < n; i++)
        d[i] = util_toupper(s[i]);
    d[n] = '\0';
    return d;
}

static struct imap_arg *
new_arg(struct imap_parser *p, enum imap_arg_type type)
{
    struct imap_arg *arg = arena_alloc(p, sizeof(*arg),
                                       alignof(struct imap_arg));

    memset(arg, 0, sizeof(*arg));
    arg->type = type;
    return arg;
}

static struct frame *
new_frame(struct imap_parser *p, struct imap_arg *owner, struct frame *up)
{
    struct frame *f = arena_alloc(p, sizeof(*f), alignof(struct frame));

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

static void PRINTF_LIKE(6, 7)
fail(struct imap_parser *p, const char *a, size_t alen, const char *b,
     size_t blen, const char *fmt, ...)
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
        arg->str = arena_strndup(t->p, s + t->i, len);
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
    d = arena_alloc(t->p, len + 1, 1);
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
    code = arena_upper(p, s + start, i - start);
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
    p->resp->text = arena_strndup(p, s + i, n - i);
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
    r->name = arena_upper(p, s + i, w - i);
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
    r->tag = arena_strndup(p, s, w);
    if (w == n) {
        tok_error(t, n, "expected OK, NO or BAD after the tag in line: ");
        return HEADER_ERROR;
    }
    i = w + 1;
    w = word_end(s, n, i);
    r->name = arena_upper(p, s + i, w - i);
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
    struct imap_response *r = arena_alloc(p, sizeof(*r),
                                          alignof(struct imap_response));

    memset(r, 0, sizeof(*r));
    p->resp = r;
    p->next_stream_id = 0;
    r->line_len = n < IMAP_PARSER_TRACE_MAX ? n : IMAP_PARSER_TRACE_MAX;
    r->line_truncated = n > IMAP_PARSER_TRACE_MAX;
    r->line = arena_strndup(p, s, r->line_len);
    *t = (struct tok){.p = p, .s = s, .n = n};
    if (s[0] == '+') {
        size_t i = n > 1 && s[1] == ' ' ? 2 : 1;

        r->type = IMAP_RESP_CONTINUE;
        r->text = arena_strndup(p, s + i, n - i);
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
        fail(p, s, n, NULL, 0,
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
            fail(p, s, n, NULL, 0,
                 "literal of %" PRIu64 " bytes exceeds the %" PRIu64
                 "-byte limit in line: ", size, p->max_literal);
            return false;
        }
        /* the limit also holds for all literals of one response together */
        if (size > p->max_literal - p->literal_total) {
            p->error_limit = true;
            fail(p, s, n, NULL, 0,
                 "literals of one response exceed the %" PRIu64
                 "-byte limit in line: ", p->max_literal);
            return false;
        }
        p->literal_total += size;
        d = arena_alloc(p, (size_t)size + 1, 1);
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

enum segment_result {
    SEGMENT_ERROR,
    SEGMENT_SKIP,    /* an empty line between responses */
    SEGMENT_LITERAL, /* p->lit is set */
    SEGMENT_DONE,    /* p->resp is complete */
};

static enum segment_result
segment(struct imap_parser *p, const char *s, size_t n)
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
            fail(p, p->line.data, p->line.len, NULL, 0,
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
        fail(p, p->line.data, have, data + start, i - start + 1,
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
    fail(p, p->line.data, have, data + start, i - start + 1,
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
        res = segment(p, seg, seg_len);
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
