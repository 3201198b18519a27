/* SPDX-License-Identifier: MIT */
#include "imap_build.h"

#include <stdlib.h>
#include <string.h>

#include "imap_utf7.h"
#include "util.h"

struct imap_build {
    struct buf data;
    size_t *splits;      /* offsets just after each "{n}\r\n" to sync on */
    size_t n_splits, cap_splits;
    unsigned flags;
    bool need_space;
    bool secret;
    const char *error;
};

struct imap_build *
imap_build_new(unsigned flags)
{
    struct imap_build *b = xcalloc(1, sizeof(*b));

    buf_init(&b->data, BUF_NOCAP);
    b->flags = flags;
    return b;
}

void
imap_build_free(struct imap_build *b)
{
    if (b == NULL)
        return;
    if (b->secret)
        buf_free_secret(&b->data);
    else
        buf_free(&b->data);
    free(b->splits);
    free(b);
}

unsigned
imap_build_flags(const struct imap_build *b)
{
    return b->flags;
}

static void
sep(struct imap_build *b)
{
    if (b->need_space)
        buf_append_char(&b->data, ' ');
    b->need_space = true;
}

void
imap_build_atom(struct imap_build *b, const char *atom)
{
    sep(b);
    buf_append_str(&b->data, atom);
}

void
imap_build_number(struct imap_build *b, uint64_t n)
{
    sep(b);
    buf_printf(&b->data, "%llu", (unsigned long long)n);
}

static void
literal(struct imap_build *b, const char *s, size_t len)
{
    bool nonsync = (b->flags & IMAP_BUILD_LITERAL_PLUS) ||
                   ((b->flags & IMAP_BUILD_LITERAL_MINUS) && len <= 4096);

    buf_printf(&b->data, "{%zu%s}\r\n", len, nonsync ? "+" : "");
    if (!nonsync) {
        ARRAY_GROW(b->splits, b->cap_splits, b->n_splits + 1);
        b->splits[b->n_splits++] = b->data.len;
    }
    buf_append(&b->data, s, len);
}

void
imap_build_string(struct imap_build *b, const char *s, size_t len)
{
    bool quotable = len <= IMAP_BUILD_QUOTED_MAX;

    sep(b);
    if (memchr(s, '\0', len) != NULL) {
        b->error = "string contains a NUL byte";
        buf_append_str(&b->data, "\"\"");
        return;
    }
    for (size_t i = 0; i < len && quotable; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\r' || c == '\n')
            quotable = false;
        else if (c >= 0x80 && !(b->flags & IMAP_BUILD_UTF8))
            quotable = false;
    }
    if (quotable && (b->flags & IMAP_BUILD_UTF8) && !util_utf8_valid(s, len))
        quotable = false;
    if (!quotable) {
        literal(b, s, len);
        return;
    }
    buf_append_char(&b->data, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            buf_append_char(&b->data, '\\');
        buf_append_char(&b->data, s[i]);
    }
    buf_append_char(&b->data, '"');
}

/* ATOM-CHAR of RFC 3501 plus ']' (allowed in astring). */
static bool
is_astring_char(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f)
        return false;
    return strchr("(){%*\"\\", c) == NULL;
}

void
imap_build_astring(struct imap_build *b, const char *s, size_t len)
{
    bool atom = len > 0 && len <= IMAP_BUILD_QUOTED_MAX &&
                !(len == 3 && util_strncaseeq(s, "NIL", 3));

    for (size_t i = 0; i < len && atom; i++)
        atom = is_astring_char((unsigned char)s[i]);
    if (!atom) {
        imap_build_string(b, s, len);
        return;
    }
    sep(b);
    buf_append(&b->data, s, len);
}

void
imap_build_mailbox(struct imap_build *b, const char *name)
{
    size_t len = strlen(name);
    struct buf enc;

    if (util_strcaseeq(name, "INBOX")) {
        imap_build_atom(b, "INBOX");
        return;
    }
    if ((b->flags & IMAP_BUILD_UTF8) || imap_utf7_is_plain(name, len)) {
        imap_build_astring(b, name, len);
        return;
    }
    buf_init(&enc, BUF_NOCAP);
    if (imap_utf7_encode(name, len, &enc) < 0) {
        b->error = "mailbox name is not valid UTF-8";
        sep(b);
        buf_append_str(&b->data, "\"\"");
    } else {
        imap_build_astring(b, enc.data, enc.len);
    }
    buf_free(&enc);
}

void
imap_build_uidset(struct imap_build *b, const struct uidset *set)
{
    sep(b);
    if (uidset_empty(set))
        b->error = "empty UID set";
    uidset_format(set, &b->data);
}

void
imap_build_list_open(struct imap_build *b)
{
    sep(b);
    buf_append_char(&b->data, '(');
    b->need_space = false;
}

void
imap_build_list_close(struct imap_build *b)
{
    buf_append_char(&b->data, ')');
    b->need_space = true;
}

void
imap_build_mark_secret(struct imap_build *b)
{
    b->secret = true;
    buf_mark_secret(&b->data); /* what is appended from now on */
}

bool
imap_build_is_secret(const struct imap_build *b)
{
    return b->secret;
}

const char *
imap_build_error(const struct imap_build *b)
{
    return b->error;
}

size_t
imap_build_nparts(const struct imap_build *b)
{
    return b->n_splits + 1;
}

const char *
imap_build_part(const struct imap_build *b, size_t i, size_t *len_r)
{
    size_t start = i == 0 ? 0 : b->splits[i - 1];
    size_t end = i < b->n_splits ? b->splits[i] : b->data.len;

    *len_r = end - start;
    return buf_cstr(&b->data) + start;
}

void
imap_build_render(const struct imap_build *b, struct buf *out)
{
    buf_append(out, buf_cstr(&b->data), b->data.len);
}

size_t
imap_build_len(const struct imap_build *b)
{
    return b->data.len;
}
