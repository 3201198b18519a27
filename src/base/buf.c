/* SPDX-License-Identifier: MIT */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void
buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->secret = false;
}

void
buf_init_secret(struct buf *b, size_t max)
{
    buf_init(b, max);
    b->secret = true;
}

void
buf_mark_secret(struct buf *b)
{
    b->secret = true;
}

void
buf_free(struct buf *b)
{
    if (b->secret && b->data != NULL)
        util_wipe(b->data, b->cap);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void
buf_free_secret(struct buf *b)
{
    util_wipe(b->data, b->cap);
    buf_free(b);
}

void
buf_reset(struct buf *b)
{
    if (b->secret && b->data != NULL)
        util_wipe(b->data, b->len);
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

static int
reserve(struct buf *b, size_t n)
{
    size_t need;

    if (n > b->max - b->len || n > SIZE_MAX - b->len - 1)
        return -ENOBUFS;
    need = b->len + n + 1;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;

        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        if (b->secret && b->data != NULL) {
            /* move by hand: realloc would free the old copy unwiped */
            char *p = xmalloc(cap);

            memcpy(p, b->data, b->len + 1);
            util_wipe(b->data, b->cap);
            free(b->data);
            b->data = p;
        } else {
            b->data = xrealloc(b->data, cap);
        }
        b->cap = cap;
    }
    return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
    if (reserve(b, n) < 0)
        return -ENOBUFS;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int
buf_append_char(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

int
buf_append_utf8(struct buf *b, const char *s, size_t len)
{
    size_t i = 0, start = b->len;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2
                               : (c & 0xf0) == 0xe0 ? 3
                               : (c & 0xf8) == 0xf0 ? 4 : 0;
        int ret;

        if (n > 0 && c != 0 && n <= len - i && util_utf8_valid(s + i, n)) {
            ret = buf_append(b, s + i, n);
            i += n;
        } else {
            ret = buf_append_str(b, "\xef\xbf\xbd");
            i++;
        }
        if (ret < 0) {
            b->len = start;
            if (b->data != NULL)
                b->data[start] = '\0';
            return ret;
        }
    }
    return 0;
}

int
buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    if (reserve(b, (size_t)n) < 0)
        return -ENOBUFS;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int ret;

    va_start(ap, fmt);
    ret = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return ret;
}

int
buf_append_base64(struct buf *b, const void *data, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    size_t i;

    if (n > (SIZE_MAX / 4) * 3 - 3 || reserve(b, (n + 2) / 3 * 4) < 0)
        return -ENOBUFS;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        b->data[b->len++] = tab[v >> 18];
        b->data[b->len++] = tab[(v >> 12) & 63];
        b->data[b->len++] = tab[(v >> 6) & 63];
        b->data[b->len++] = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16;

        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        b->data[b->len++] = tab[v >> 18];
        b->data[b->len++] = tab[(v >> 12) & 63];
        b->data[b->len++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        b->data[b->len++] = '=';
    }
    b->data[b->len] = '\0';
    return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    if (b->secret)
        util_wipe(b->data + b->len, n);
    b->data[b->len] = '\0';
}

char *
buf_steal(struct buf *b)
{
    char *s = b->data ? b->data : xstrdup("");

    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

const char *
buf_cstr(const struct buf *b)
{
    return b->data ? b->data : "";
}
