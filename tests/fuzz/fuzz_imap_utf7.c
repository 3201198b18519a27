/* SPDX-License-Identifier: MIT */
/* libFuzzer target for modified UTF-7 (mailbox names the server sends in
 * LIST replies, and names from the configuration). Checked: whatever
 * decodes is UTF-8 with no NUL byte and encodes back to a name that
 * decodes to the same text; whatever encodes is printable ASCII and
 * decodes back to the input exactly; a failed call appends nothing; a
 * plain name decodes to itself. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imap_utf7.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool cond)
{
    if (!cond)
        abort();
}

static bool
printable_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    }
    return true;
}

static void
check_decoded(const char *in, size_t size)
{
    struct buf dec, enc, again;

    buf_init(&dec, BUF_NOCAP);
    buf_init(&enc, BUF_NOCAP);
    buf_init(&again, BUF_NOCAP);
    /* a prefix that a failed call must leave alone */
    buf_append_str(&dec, "p");
    if (imap_utf7_decode(in, size, &dec) == 0) {
        const char *text = buf_cstr(&dec) + 1;
        size_t len = dec.len - 1;

        check(util_utf8_valid(text, len));
        check(memchr(text, '\0', len) == NULL);
        if (imap_utf7_is_plain(in, size))
            check(len == size && memcmp(text, in, size) == 0);
        check(imap_utf7_encode(text, len, &enc) == 0);
        check(printable_ascii(buf_cstr(&enc), enc.len));
        check(imap_utf7_decode(buf_cstr(&enc), enc.len, &again) == 0);
        check(again.len == len && memcmp(buf_cstr(&again), text, len) == 0);
    } else {
        check(dec.len == 1 && strcmp(buf_cstr(&dec), "p") == 0);
    }
    buf_free(&dec);
    buf_free(&enc);
    buf_free(&again);
}

static void
check_encoded(const char *in, size_t size)
{
    struct buf enc, dec;
    bool ok = util_utf8_valid(in, size) && memchr(in, '\0', size) == NULL;

    buf_init(&enc, BUF_NOCAP);
    buf_init(&dec, BUF_NOCAP);
    if (imap_utf7_encode(in, size, &enc) == 0) {
        check(ok);
        check(printable_ascii(buf_cstr(&enc), enc.len));
        check(imap_utf7_decode(buf_cstr(&enc), enc.len, &dec) == 0);
        check(dec.len == size && memcmp(buf_cstr(&dec), in, size) == 0);
    } else {
        check(!ok && enc.len == 0);
    }
    buf_free(&enc);
    buf_free(&dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_decoded((const char *)data, size);
    check_encoded((const char *)data, size);
    return 0;
}
