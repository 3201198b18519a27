/* SPDX-License-Identifier: MIT */
/* imap_arg_parse_internaldate: the RFC 3501 date-time form and nothing else.
 * A misread INTERNALDATE decides older_than/newer_than, so a lenient parse
 * could make a fresh message look old. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "imap_arg.h"

static bool
parse(const char *s, int64_t *t_r)
{
    return imap_arg_parse_internaldate(s, strlen(s), t_r);
}

static void
test_valid(void **state)
{
    int64_t t;

    (void)state;
    assert_true(parse("01-Jan-1970 00:00:00 +0000", &t));
    assert_true(t == 0);
    assert_true(parse(" 1-Jan-1970 00:00:00 +0000", &t)); /* SP DIGIT */
    assert_true(t == 0);
    assert_true(parse("17-Jul-1996 02:44:25 -0700", &t));
    assert_true(t == 837596665);
    assert_true(parse("17-Jul-1996 02:44:25 +0530", &t));
    assert_true(t == 837551665);
    assert_true(parse("29-Feb-2024 23:59:60 +0000", &t)); /* leap second */
    assert_true(parse("31-Dec-2099 23:59:59 -1200", &t));
}

static void
test_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "01-Ja-1970 00:00:00 +0000",    /* partial month name */
        "01-an-1970 00:00:00 +0000",
        "01-jan-1970 00:00:00 +0000x",  /* trailing garbage */
        "01-Jan-1970 -1:00:00 +0000",   /* negative fields */
        "01-Jan-1970 00:-5:00 +0000",
        "01-Jan-1970 00:00:-3 +0000",
        "-1-Jan-1970 00:00:00 +0000",
        "00-Jan-1970 00:00:00 +0000",
        "32-Jan-1970 00:00:00 +0000",
        "01-Jan-70 00:00:00 +0000",     /* two-digit year */
        "01-Jan-1970 24:00:00 +0000",
        "01-Jan-1970 00:60:00 +0000",
        "01-Jan-1970 00:00:61 +0000",
        "01-Jan-1970 0:00:00 +0000",
        "01-Jan-1970 00:00:00 0000",    /* zone without sign */
        "01-Jan-1970 00:00:00 +000",
        "01-Jan-1970 00:00:00 +0060",   /* minutes of zone */
        "01-Jan-1970 00:00:00 +2400",
        "01-Jan-1970  00:00:00 +0000",
        "1-Jan-1970 00:00:00 +0000",
        "01-Jan-1970 00:00:00 +0000 ",
    };
    int64_t t;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &t))
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* ABNF literals are case-insensitive: "JAN" is January */
    assert_true(parse("01-JAN-1970 00:00:00 +0000", &t));
    assert_true(t == 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
