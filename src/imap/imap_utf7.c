/* SPDX-License-Identifier: MIT */
#include "imap_utf7.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "util.h"

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

bool
imap_utf7_is_plain(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c > 0x7e || c == '&')
            return false;
    }
    return true;
}

/* Decode one UTF-8 code point at s[*i]; the input was validated. */
static uint32_t
next_cp(const unsigned char *s, size_t *i)
{
    uint32_t c = s[*i], cp;
    size_t n;

    if (c < 0x80) {
        (*i)++;
        return c;
    }
    n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
    cp = c & (0x3f >> n);
    for (size_t k = 1; k <= n; k++)
        cp = (cp << 6) | (s[*i + k] & 0x3f);
    *i += n + 1;
    return cp;
}

struct b64_state {
    uint32_t bits;
    unsigned nbits;
};

static void
push16(struct b64_state *st, uint16_t v, struct buf *out)
{
    st->bits = (st->bits << 16) | v;
    st->nbits += 16;
    while (st->nbits >= 6) {
        st->nbits -= 6;
        buf_append_char(out, b64[(st->bits >> st->nbits) & 0x3f]);
    }
}

static void
flush_run(struct b64_state *st, struct buf *out)
{
    if (st->nbits > 0)
        buf_append_char(out, b64[(st->bits << (6 - st->nbits)) & 0x3f]);
    buf_append_char(out, '-');
    st->bits = 0;
    st->nbits = 0;
}

int
imap_utf7_encode(const char *utf8, size_t len, struct buf *out)
{
    const unsigned char *s = (const unsigned char *)utf8;
    struct b64_state st = {0, 0};
    bool in_run = false;
    size_t i = 0;

    if (!util_utf8_valid(utf8, len) || memchr(utf8, '\0', len) != NULL)
        return -EINVAL;
    while (i < len) {
        uint32_t cp = next_cp(s, &i);

        if (cp >= 0x20 && cp <= 0x7e) {
            if (in_run) {
                flush_run(&st, out);
                in_run = false;
            }
            if (cp == '&')
                buf_append_str(out, "&-");
            else
                buf_append_char(out, (char)cp);
            continue;
        }
        if (!in_run) {
            buf_append_char(out, '&');
            in_run = true;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            push16(&st, (uint16_t)(0xd800 | (cp >> 10)), out);
            push16(&st, (uint16_t)(0xdc00 | (cp & 0x3ff)), out);
        } else {
            push16(&st, (uint16_t)cp, out);
        }
    }
    if (in_run)
        flush_run(&st, out);
    return 0;
}

static void
put_utf8(uint32_t cp, struct buf *out)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    buf_append(out, u, n);
}

/* Decode the base64 run s[0..len) (between '&' and '-'). */
static int
decode_run(const char *s, size_t len, struct buf *out)
{
    uint32_t bits = 0, high = 0;
    unsigned nbits = 0;

    if (len == 0)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        int v = util_base64_value(s[i], ',');

        if (v < 0)
            return -EINVAL;
        bits = (bits << 6) | (uint32_t)v;
        nbits += 6;
        if (nbits >= 16) {
            uint32_t u;

            nbits -= 16;
            u = (bits >> nbits) & 0xffff;
            bits &= (1u << nbits) - 1;
            if (high != 0) {
                if (u < 0xdc00 || u > 0xdfff)
                    return -EINVAL;
                put_utf8(0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00),
                         out);
                high = 0;
            } else if (u >= 0xd800 && u <= 0xdbff) {
                high = u;
            } else if ((u >= 0xdc00 && u <= 0xdfff) ||
                       (u >= 0x20 && u <= 0x7e) || u == 0) {
                /* lone low surrogate, printable ASCII that must be
                 * written directly, or a NUL that would cut the name */
                return -EINVAL;
            } else {
                put_utf8(u, out);
            }
        }
    }
    if (high != 0 || nbits >= 6 || bits != 0)
        return -EINVAL;
    return 0;
}

int
imap_utf7_decode(const char *s, size_t len, struct buf *out)
{
    size_t start = out->len;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c > 0x7e)
            goto bad;
        if (c != '&') {
            buf_append_char(out, (char)c);
            continue;
        }
        size_t j = i + 1;

        while (j < len && s[j] != '-')
            j++;
        if (j == len)
            goto bad;
        if (j == i + 1) {
            buf_append_char(out, '&');
        } else if (decode_run(s + i + 1, j - i - 1, out) < 0) {
            goto bad;
        }
        i = j;
    }
    return 0;
bad:
    out->len = start;
    if (out->data != NULL)
        out->data[start] = '\0';
    return -EINVAL;
}
