/* SPDX-License-Identifier: MIT */
#include "mime.h"

#include <errno.h>
#include <iconv.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

static bool
is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static int
decode_b(const char *s, size_t len, struct buf *out)
{
    uint32_t bits = 0;
    unsigned nbits = 0;
    size_t i;

    for (i = 0; i < len && s[i] != '='; i++) {
        int v = util_base64_value(s[i], '/');

        if (v < 0)
            return -EINVAL;
        bits = (bits << 6) | (uint32_t)v;
        nbits += 6;
        if (nbits >= 8) {
            nbits -= 8;
            buf_append_char(out, (char)((bits >> nbits) & 0xff));
        }
    }
    for (; i < len; i++) {
        if (s[i] != '=')
            return -EINVAL;
    }
    return 0;
}

static int
decode_q(const char *s, size_t len, struct buf *out)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '_') {
            buf_append_char(out, ' ');
        } else if (s[i] == '=') {
            int hi, lo;

            if (i + 2 >= len)
                return -EINVAL;
            hi = util_hex_value(s[i + 1]);
            lo = util_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            buf_append_char(out, (char)(hi << 4 | lo));
            i += 2;
        } else {
            buf_append_char(out, s[i]);
        }
    }
    return 0;
}

static bool
charset_is_utf8(const char *cs)
{
    return util_strcaseeq(cs, "UTF-8") || util_strcaseeq(cs, "UTF8") ||
           util_strcaseeq(cs, "US-ASCII") || util_strcaseeq(cs, "ASCII");
}

/* Convert bytes in charset to UTF-8, appending to out. */
static int
convert(const char *charset, const char *in, size_t len, struct buf *out)
{
    iconv_t cd;
    char *ip = (char *)in;
    size_t ileft = len;

    if (charset_is_utf8(charset))
        return buf_append(out, in, len);
    cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1)
        return -EINVAL;
    while (ileft > 0) {
        char chunk[256];
        char *op = chunk;
        size_t oleft = sizeof(chunk);
        size_t r = iconv(cd, &ip, &ileft, &op, &oleft);

        buf_append(out, chunk, sizeof(chunk) - oleft);
        if (r == (size_t)-1) {
            if (errno == E2BIG)
                continue;
            /* invalid or incomplete input: mark it and go on */
            buf_append_str(out, "\xef\xbf\xbd");
            ip++;
            ileft--;
        }
    }
    iconv_close(cd);
    return 0;
}

/* Try to decode an encoded-word at s (which starts with "=?"). On success
 * append the UTF-8 text and return the word's length; else return 0. */
static size_t
decode_word(const char *s, size_t len, struct buf *out)
{
    const char *cs, *enc, *text, *end;
    char charset[64];
    size_t cslen;
    struct buf raw;
    int ret;

    cs = s + 2;
    enc = memchr(cs, '?', len - 2);
    if (enc == NULL || enc + 2 >= s + len || enc[2] != '?')
        return 0;
    text = enc + 3;
    end = NULL;
    for (const char *p = text; p + 1 < s + len; p++) {
        if (p[0] == '?' && p[1] == '=') {
            end = p;
            break;
        }
        if (is_wsp(*p))
            return 0;
    }
    if (end == NULL)
        return 0;
    cslen = (size_t)(enc - cs);
    if (cslen == 0 || cslen >= sizeof(charset))
        return 0;
    memcpy(charset, cs, cslen);
    charset[cslen] = '\0';
    /* RFC 2231: charset*language */
    if (strchr(charset, '*') != NULL)
        *strchr(charset, '*') = '\0';
    buf_init(&raw, BUF_NOCAP);
    if (enc[1] == 'B' || enc[1] == 'b')
        ret = decode_b(text, (size_t)(end - text), &raw);
    else if (enc[1] == 'Q' || enc[1] == 'q')
        ret = decode_q(text, (size_t)(end - text), &raw);
    else
        ret = -EINVAL;
    if (ret == 0)
        ret = convert(charset, buf_cstr(&raw), raw.len, out);
    buf_free(&raw);
    return ret == 0 ? (size_t)(end + 2 - s) : 0;
}

char *
mime_decode_words(const char *value, size_t len)
{
    struct buf tmp, out;
    size_t i = 0, ws_start = 0, ws_len = 0;
    bool last_encoded = false;

    buf_init(&tmp, BUF_NOCAP);
    while (i < len) {
        if (value[i] == '=' && i + 1 < len && value[i + 1] == '?') {
            size_t mark = tmp.len, n;

            /* whitespace between two encoded-words is not text */
            if (!last_encoded)
                buf_append(&tmp, value + ws_start, ws_len);
            n = decode_word(value + i, len - i, &tmp);
            if (n > 0) {
                i += n;
                ws_len = 0;
                last_encoded = true;
                continue;
            }
            tmp.len = mark;
        }
        if (is_wsp(value[i])) {
            if (ws_len == 0)
                ws_start = i;
            ws_len++;
            i++;
            continue;
        }
        buf_append(&tmp, value + ws_start, ws_len);
        ws_len = 0;
        buf_append_char(&tmp, value[i]);
        last_encoded = false;
        i++;
    }
    buf_append(&tmp, value + ws_start, ws_len);
    buf_init(&out, BUF_NOCAP);
    buf_append_utf8(&out, buf_cstr(&tmp), tmp.len);
    buf_free(&tmp);
    return buf_steal(&out);
}

/* RFC 5322 field name: one or more printable ASCII characters but the
 * colon (a NUL, for one, would cut "Subject\0X" to "Subject") */
static bool
is_field_name(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == ':')
            return false;
    }
    return true;
}

void
mime_fields_parse(const char *data, size_t len, struct mime_fields *out)
{
    size_t pos = 0;
    struct buf line;

    buf_init(&line, BUF_NOCAP);
    while (pos < len) {
        const char *colon;
        size_t name_len, v;

        buf_reset(&line);
        /* one logical line: a physical line plus its continuations */
        do {
            const char *nl = memchr(data + pos, '\n', len - pos);
            size_t end = nl ? (size_t)(nl - data) : len;
            size_t content = end;

            if (content > pos && data[content - 1] == '\r')
                content--;
            if (line.len == 0 && content == pos) {
                pos = len; /* empty line: end of the header */
                break;
            }
            buf_append(&line, data + pos, content - pos);
            pos = nl ? end + 1 : len;
        } while (pos < len && is_wsp(data[pos]));
        if (line.len == 0)
            break;
        colon = memchr(line.data, ':', line.len);
        if (colon == NULL)
            continue;
        name_len = (size_t)(colon - line.data);
        while (name_len > 0 && is_wsp(line.data[name_len - 1]))
            name_len--;
        if (!is_field_name(line.data, name_len))
            continue;
        v = (size_t)(colon - line.data) + 1;
        while (v < line.len && is_wsp(line.data[v]))
            v++;
        while (line.len > v && is_wsp(line.data[line.len - 1]))
            line.len--;
        ARRAY_GROW(out->f, out->cap, out->n + 1);
        out->f[out->n].name = xstrndup(line.data, name_len);
        out->f[out->n].value = mime_decode_words(line.data + v, line.len - v);
        out->n++;
    }
    buf_free(&line);
}

void
mime_fields_free(struct mime_fields *fields)
{
    for (size_t i = 0; i < fields->n; i++) {
        free(fields->f[i].name);
        free(fields->f[i].value);
    }
    free(fields->f);
    fields->f = NULL;
    fields->n = fields->cap = 0;
}

const char *
mime_fields_get(const struct mime_fields *fields, const char *name)
{
    for (size_t i = 0; i < fields->n; i++) {
        if (util_strcaseeq(fields->f[i].name, name))
            return fields->f[i].value;
    }
    return NULL;
}
