/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the MIME header decoder (header fields fetched
 * from the server, RFC 2047 encoded-words). The input is a header block
 * and, whole, an unfolded value. Checked: every decoded value is valid
 * UTF-8 with no NUL byte; every field name is a field name (printable
 * ASCII, no colon, not empty) and finds its own field again; a value with
 * no "=?" that is already UTF-8 without NUL comes out unchanged. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool cond)
{
    if (!cond)
        abort();
}

static void
check_text(const char *s)
{
    check(s != NULL);
    check(util_utf8_valid(s, strlen(s)));
}

static bool
has_encoded_word(const char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] == '=' && s[i + 1] == '?')
            return true;
    }
    return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    struct mime_fields fields = {0};
    char *v;

    /* one value, as a rule would see it */
    v = mime_decode_words(in, size);
    check_text(v);
    if (!has_encoded_word(in, size) && memchr(in, '\0', size) == NULL &&
        util_utf8_valid(in, size))
        check(strlen(v) == size && memcmp(v, in, size) == 0);
    free(v);

    /* a header block */
    mime_fields_parse(in, size, &fields);
    for (size_t i = 0; i < fields.n; i++) {
        const char *name = fields.f[i].name;
        size_t n = strlen(name);

        check(n > 0);
        for (size_t k = 0; k < n; k++)
            check(name[k] > ' ' && name[k] < 0x7f && name[k] != ':');
        check_text(fields.f[i].value);
        check(mime_fields_get(&fields, name) != NULL);
    }
    mime_fields_free(&fields);
    return 0;
}
