/* SPDX-License-Identifier: MIT */
/* Header unfolding and RFC 2047 decoding. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "digest.h"
#include "mime.h"
#include "util.h"

static void
check_decode(const char *in, const char *want)
{
    char *got = mime_decode_words(in, strlen(in));

    assert_string_equal(got, want);
    assert_true(util_utf8_valid(got, strlen(got)));
    free(got);
}

static void
test_rfc2047(void **state)
{
    (void)state;
    /* RFC 2047 section 8 examples */
    check_decode("=?ISO-8859-1?Q?a?=", "a");
    check_decode("=?ISO-8859-1?Q?a?= b", "a b");
    check_decode("=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab");
    check_decode("=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=", "ab");
    check_decode("=?ISO-8859-1?Q?a_b?=", "a b");
    check_decode("=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=", "a b");
    check_decode("(=?ISO-8859-1?Q?a?=)", "(a)");
    /* B encoding, UTF-8 */
    check_decode("=?UTF-8?B?Q3JvbiDDqXTDqQ==?=", "Cron \xc3\xa9t\xc3\xa9");
    check_decode("=?utf-8?b?Q3JvbiDDqXTDqQ?=", "Cron \xc3\xa9t\xc3\xa9");
    /* Latin-1 converted to UTF-8, lower-case q */
    check_decode("Re: =?iso-8859-1?q?Sauvegarde_r=E9ussie?=",
                 "Re: Sauvegarde r\xc3\xa9ussie");
    /* RFC 2231 language tag */
    check_decode("=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore");
    /* not encoded-words: kept as written */
    check_decode("=?UTF-8?X?abc?=", "=?UTF-8?X?abc?=");
    check_decode("=?NO-SUCH-CHARSET?Q?abc?=", "=?NO-SUCH-CHARSET?Q?abc?=");
    check_decode("=?UTF-8?B?###?=", "=?UTF-8?B?###?=");
    check_decode("=?UTF-8?Q?a=Z?=", "=?UTF-8?Q?a=Z?=");
    check_decode("=?UTF-8?Q?a=", "=?UTF-8?Q?a=");
    check_decode("a =? b", "a =? b");
    check_decode("plain text", "plain text");
    check_decode("", "");
    /* raw bytes that are not UTF-8 become U+FFFD; UTF-8 stays */
    check_decode("caf\xe9", "caf\xef\xbf\xbd");
    check_decode("caf\xc3\xa9", "caf\xc3\xa9");
    /* encoded invalid UTF-8 is sanitized too */
    check_decode("=?UTF-8?B?/w==?=", "\xef\xbf\xbd");
    /* text then encoded word keeps the space */
    check_decode("Backup =?UTF-8?Q?OK?= today", "Backup OK today");
}

static void
test_fields(void **state)
{
    const char *hdr = "From: Cron Daemon <root@host>\r\n"
                      "Subject: =?UTF-8?Q?Nightly_?=\r\n"
                      " =?UTF-8?Q?backup?= done\r\n"
                      "X-Empty:\r\n"
                      "not a field\r\n"
                      "Message-ID:\t<abc@host>  \r\n"
                      "\r\n"
                      "Body: not a header\r\n";
    struct mime_fields f = {0};

    (void)state;
    mime_fields_parse(hdr, strlen(hdr), &f);
    assert_int_equal(f.n, 4);
    assert_string_equal(f.f[0].name, "From");
    assert_string_equal(f.f[0].value, "Cron Daemon <root@host>");
    assert_string_equal(mime_fields_get(&f, "subject"),
                        "Nightly backup done");
    assert_string_equal(mime_fields_get(&f, "X-EMPTY"), "");
    assert_string_equal(mime_fields_get(&f, "message-id"), "<abc@host>");
    assert_null(mime_fields_get(&f, "Body"));
    mime_fields_free(&f);

    /* LF-only line ends, folding with a tab, no trailing newline */
    hdr = "Subject: a\n\tb\nFrom: x";
    mime_fields_parse(hdr, strlen(hdr), &f);
    assert_int_equal(f.n, 2);
    assert_string_equal(f.f[0].value, "a\tb");
    assert_string_equal(f.f[1].value, "x");
    mime_fields_free(&f);
    mime_fields_parse("", 0, &f);
    assert_int_equal(f.n, 0);
    mime_fields_free(&f);
}

/* A name with a NUL or another control byte is no field: "Subject\0X"
 * must not pass for the Subject (found by fuzz_mime). */
static void
test_field_name_bytes(void **state)
{
    static const char hdr[] = "Subject\0X: spoofed\r\n"
                              "\x03Subject: spoofed\r\n"
                              "Sub ject: spoofed\r\n"
                              "Subject: real\r\n";
    struct mime_fields f = {0};

    (void)state;
    mime_fields_parse(hdr, sizeof(hdr) - 1, &f);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.f[0].name, "Subject");
    assert_string_equal(mime_fields_get(&f, "Subject"), "real");
    mime_fields_free(&f);
}

static void
test_digest(void **state)
{
    struct digest *d;
    unsigned char md5[16], sha[32];
    char hex[65];
    const char *text = "The quick brown fox jumps over the lazy dog";

    (void)state;
    d = digest_new(true, true);
    /* fed in pieces, as a streamed literal is */
    digest_update(d, text, 10);
    digest_update(d, text + 10, strlen(text) - 10);
    digest_final(d, md5, sha);
    digest_free(d);
    digest_hex(md5, 16, hex);
    assert_string_equal(hex, "9e107d9d372bb6826bd81d3542a419d6");
    digest_hex(sha, 32, hex);
    assert_string_equal(hex, "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cd"
                             "b762d02d0bf37c9e592");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc2047),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_field_name_bytes),
        cmocka_unit_test(test_digest),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
