/* SPDX-License-Identifier: MIT */
/* The command builder (atom / quoted / literal choice, parts for
 * synchronizing literals) and modified UTF-7 mailbox names. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap_build.h"
#include "imap_utf7.h"

static char *
render(const struct imap_build *b)
{
    struct buf out;

    buf_init(&out, BUF_NOCAP);
    imap_build_render(b, &out);
    return buf_steal(&out);
}

static void
assert_built(struct imap_build *b, const char *want)
{
    char *got = render(b);

    assert_string_equal(got, want);
    free(got);
    imap_build_free(b);
}

static void
test_tokens_and_lists(void **state)
{
    struct imap_build *b = imap_build_new(0);
    struct uidset s;

    (void)state;
    uidset_init(&s);
    uidset_add_range(&s, 1, 5);
    uidset_add(&s, 9);
    imap_build_atom(b, "UID");
    imap_build_atom(b, "FETCH");
    imap_build_uidset(b, &s);
    imap_build_list_open(b);
    imap_build_atom(b, "UID");
    imap_build_atom(b, "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]");
    imap_build_list_open(b);
    imap_build_list_close(b);
    imap_build_number(b, 4294967295u);
    imap_build_list_close(b);
    assert_null(imap_build_error(b));
    assert_int_equal(imap_build_nparts(b), 1);
    assert_built(b, "UID FETCH 1:5,9 (UID BODY.PEEK[HEADER.FIELDS (FROM "
                    "SUBJECT)] () 4294967295)");
    uidset_free(&s);
}

static void
test_quoting(void **state)
{
    static const struct {
        const char *in;
        const char *astring, *string;
    } cases[] = {
        {"Cron", "Cron", "\"Cron\""},
        {"Cron Daemon", "\"Cron Daemon\"", "\"Cron Daemon\""},
        {"a\"b\\c", "\"a\\\"b\\\\c\"", "\"a\\\"b\\\\c\""},
        {"", "\"\"", "\"\""},
        {"NIL", "\"NIL\"", "\"NIL\""},
        {"nil", "\"nil\"", "\"nil\""},
        {"a(b", "\"a(b\"", "\"a(b\""},
        {"a{b", "\"a{b\"", "\"a{b\""},
        {"a%b*", "\"a%b*\"", "\"a%b*\""},
        {"a]b", "a]b", "\"a]b\""},
        {"user@example.org", "user@example.org", "\"user@example.org\""},
        {"x\r\ny", "{4}\r\nx\r\ny", "{4}\r\nx\r\ny"},
        {"caf\xc3\xa9", "{5}\r\ncaf\xc3\xa9", "{5}\r\ncaf\xc3\xa9"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct imap_build *b = imap_build_new(0);

        imap_build_astring(b, cases[i].in, strlen(cases[i].in));
        assert_built(b, cases[i].astring);
        b = imap_build_new(0);
        imap_build_string(b, cases[i].in, strlen(cases[i].in));
        assert_built(b, cases[i].string);
    }
}

static void
test_literal_forms(void **state)
{
    struct imap_build *b;
    const char *part;
    size_t len;
    char big[5000];

    (void)state;
    memset(big, 'x', sizeof(big));
    big[0] = '\n';

    /* synchronizing: two parts, the first ends with the literal header */
    b = imap_build_new(0);
    imap_build_atom(b, "SEARCH");
    imap_build_atom(b, "CHARSET");
    imap_build_atom(b, "UTF-8");
    imap_build_atom(b, "SUBJECT");
    imap_build_string(b, "\xc3\xa9t\xc3\xa9", 5);
    assert_null(imap_build_error(b));
    imap_build_atom(b, "FROM");
    imap_build_string(b, "Cron", 4);
    assert_int_equal(imap_build_nparts(b), 2);
    part = imap_build_part(b, 0, &len);
    assert_int_equal(len, strlen("SEARCH CHARSET UTF-8 SUBJECT {5}\r\n"));
    assert_memory_equal(part, "SEARCH CHARSET UTF-8 SUBJECT {5}\r\n", len);
    part = imap_build_part(b, 1, &len);
    assert_memory_equal(part, "\xc3\xa9t\xc3\xa9 FROM \"Cron\"", len);
    imap_build_free(b);

    /* LITERAL+: one part, non-synchronizing */
    b = imap_build_new(IMAP_BUILD_LITERAL_PLUS);
    imap_build_string(b, big, sizeof(big));
    assert_int_equal(imap_build_nparts(b), 1);
    assert_int_equal(imap_build_len(b), 9 + sizeof(big));
    part = imap_build_part(b, 0, &len);
    assert_memory_equal(part, "{5000+}\r\n\n", 10);
    imap_build_free(b);

    /* LITERAL-: non-synchronizing only up to 4096 bytes */
    b = imap_build_new(IMAP_BUILD_LITERAL_MINUS);
    imap_build_string(b, big, 4096);
    assert_int_equal(imap_build_nparts(b), 1);
    imap_build_string(b, big, 4097);
    assert_int_equal(imap_build_nparts(b), 2);
    part = imap_build_part(b, 0, &len);
    assert_memory_equal(part + 4096 + 9, " {4097}\r\n", 9);
    imap_build_free(b);

    /* long strings become literals even without special bytes */
    b = imap_build_new(0);
    memset(big, 'y', sizeof(big));
    imap_build_string(b, big, IMAP_BUILD_QUOTED_MAX);
    assert_int_equal(imap_build_nparts(b), 1);
    imap_build_string(b, big, IMAP_BUILD_QUOTED_MAX + 1);
    assert_int_equal(imap_build_nparts(b), 2);
    imap_build_free(b);

    /* UTF-8 mode quotes valid UTF-8 */
    b = imap_build_new(IMAP_BUILD_UTF8);
    imap_build_string(b, "caf\xc3\xa9", 5);
    assert_built(b, "\"caf\xc3\xa9\"");
    /* ... but not invalid UTF-8 */
    b = imap_build_new(IMAP_BUILD_UTF8);
    imap_build_string(b, "caf\xe9", 4);
    assert_built(b, "{4}\r\ncaf\xe9");
}

static void
test_errors_and_secret(void **state)
{
    struct imap_build *b = imap_build_new(0);
    struct uidset empty;

    (void)state;
    imap_build_string(b, "a\0b", 3);
    assert_non_null(imap_build_error(b));
    imap_build_free(b);

    b = imap_build_new(0);
    uidset_init(&empty);
    imap_build_uidset(b, &empty);
    assert_non_null(imap_build_error(b));
    imap_build_free(b);

    b = imap_build_new(0);
    assert_false(imap_build_is_secret(b));
    imap_build_atom(b, "LOGIN");
    imap_build_astring(b, "alice", 5);
    imap_build_mark_secret(b);
    imap_build_string(b, "s3cret", 6);
    assert_true(imap_build_is_secret(b));
    assert_built(b, "LOGIN alice \"s3cret\"");
}

static void
test_mailbox_names(void **state)
{
    static const struct {
        const char *utf8, *wire;
    } cases[] = {
        {"INBOX", "INBOX"},
        {"inbox", "INBOX"},
        {"Archive/Alerts", "Archive/Alerts"},
        {"Sent Items", "\"Sent Items\""},
        {"Entw\xc3\xbcrfe", "Entw&APw-rfe"},
        {"A&B", "A&-B"},
        {"\xe5\x8f\xb0\xe5\x8c\x97", "&U,BTFw-"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct imap_build *b = imap_build_new(0);

        imap_build_mailbox(b, cases[i].utf8);
        assert_built(b, cases[i].wire);
    }
    /* in UTF-8 mode names go as they are (quoted when 8-bit) */
    {
        struct imap_build *b = imap_build_new(IMAP_BUILD_UTF8);

        imap_build_mailbox(b, "Entw\xc3\xbcrfe");
        assert_built(b, "\"Entw\xc3\xbcrfe\"");
    }
}

static void
test_utf7(void **state)
{
    static const struct {
        const char *utf8, *mutf7;
    } pairs[] = {
        {"", ""},
        {"INBOX", "INBOX"},
        {"&", "&-"},
        {"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8"
         "\xaa\x9e",
         "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
        {"Entw\xc3\xbcrfe", "Entw&APw-rfe"},
        {"\xf0\x9f\x93\xac mail", "&2D3c7A- mail"}, /* surrogate pair */
        {"a\tb", "a&AAk-b"},
    };
    static const char *const bad[] = {
        "&", "&Jjo", "&U,BTF2-", "a\xc3\xa9", "&AGE-", /* 'a' in base64 */
        "&2D3-", "&3OyJ-", "&*-",
        /* U+0000: a name with a NUL inside (fuzz_imap_utf7) */
        "&AAA-", "a&AAAA6Q-",
    };
    struct buf out;

    (void)state;
    buf_init(&out, BUF_NOCAP);
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        buf_reset(&out);
        assert_int_equal(imap_utf7_encode(pairs[i].utf8,
                                          strlen(pairs[i].utf8), &out), 0);
        assert_string_equal(buf_cstr(&out), pairs[i].mutf7);
        buf_reset(&out);
        assert_int_equal(imap_utf7_decode(pairs[i].mutf7,
                                          strlen(pairs[i].mutf7), &out), 0);
        assert_string_equal(buf_cstr(&out), pairs[i].utf8);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        buf_reset(&out);
        buf_append_str(&out, "keep");
        assert_int_equal(imap_utf7_decode(bad[i], strlen(bad[i]), &out),
                         -EINVAL);
        assert_string_equal(buf_cstr(&out), "keep");
    }
    buf_reset(&out);
    assert_int_equal(imap_utf7_encode("\xff", 1, &out), -EINVAL);
    assert_int_equal(imap_utf7_encode("a\0b", 3, &out), -EINVAL);
    assert_int_equal(out.len, 0);
    assert_true(imap_utf7_is_plain("Sent Items", 10));
    assert_false(imap_utf7_is_plain("A&B", 3));
    buf_free(&out);
}

static void
test_utf7_roundtrip_all_bmp(void **state)
{
    struct buf enc, dec, src;

    (void)state;
    buf_init(&enc, BUF_NOCAP);
    buf_init(&dec, BUF_NOCAP);
    buf_init(&src, BUF_NOCAP);
    /* every BMP code point but surrogates, in runs of mixed lengths */
    for (uint32_t cp = 1; cp < 0x10000; cp++) {
        char u[3];
        size_t n;

        if (cp >= 0xd800 && cp <= 0xdfff)
            continue;
        if (cp < 0x80) {
            u[0] = (char)cp;
            n = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xc0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3f));
            n = 2;
        } else {
            u[0] = (char)(0xe0 | (cp >> 12));
            u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[2] = (char)(0x80 | (cp & 0x3f));
            n = 3;
        }
        buf_append(&src, u, n);
        if (cp % 7 == 0 || cp % 13 == 0) {
            buf_reset(&enc);
            buf_reset(&dec);
            assert_int_equal(imap_utf7_encode(src.data, src.len, &enc), 0);
            assert_true(imap_utf7_is_plain(enc.data, enc.len) ||
                        strchr(enc.data, '&') != NULL);
            assert_int_equal(imap_utf7_decode(enc.data, enc.len, &dec), 0);
            assert_int_equal(dec.len, src.len);
            assert_memory_equal(dec.data, src.data, src.len);
            buf_reset(&src);
        }
    }
    buf_free(&enc);
    buf_free(&dec);
    buf_free(&src);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_and_lists),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_literal_forms),
        cmocka_unit_test(test_errors_and_secret),
        cmocka_unit_test(test_mailbox_names),
        cmocka_unit_test(test_utf7),
        cmocka_unit_test(test_utf7_roundtrip_all_bmp),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
