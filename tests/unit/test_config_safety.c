/* Configuration mistakes that must never delete the wrong mail (issue 13):
 * each is refused (or warned about) with its exact FILE:LINE:COLUMN and a
 * hint, the way a user coming from imapfilter, Sieve or a script would
 * write it. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "config.h"
#include "util.h"

/* A valid account (lines 1-2). */
#define ACCOUNT                                                               \
    "accounts:\n"                                                             \
    "  - {name: a, host: h, user: u, password_env: P, mailboxes: INBOX}\n"

static void
print_diag(const struct config_diag *d)
{
    for (size_t i = 0; i < d->n_errors; i++) {
        char *s = config_diag_format(&d->errors[i]);

        print_message("  error:   %s\n", s);
        free(s);
    }
    for (size_t i = 0; i < d->n_warnings; i++) {
        char *s = config_diag_format(&d->warnings[i]);

        print_message("  warning: %s\n", s);
        free(s);
    }
}

static void
check_entries(const struct config_diag *d, const struct config_diag_entry *e,
              size_t n, const char *const *want)
{
    size_t n_want = 0;

    while (want[n_want] != NULL)
        n_want++;
    if (n != n_want)
        print_diag(d);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++) {
        char *s = config_diag_format(&e[i]);

        if (strcmp(s, want[i]) != 0)
            print_diag(d);
        assert_string_equal(s, want[i]);
        free(s);
    }
}

/* Load yaml; its errors and warnings must be exactly these. */
static void
expect_diags(const char *yaml, const char *const *errors,
             const char *const *warnings)
{
    struct config *c = NULL;
    struct config_diag d;
    int ret;

    config_diag_init(&d);
    ret = config_load_buffer("t.yaml", yaml, strlen(yaml), &c, &d);
    check_entries(&d, d.errors, d.n_errors, errors);
    check_entries(&d, d.warnings, d.n_warnings, warnings);
    if (errors[0] != NULL) {
        assert_int_equal(ret, -EINVAL);
        assert_null(c);
    } else {
        assert_int_equal(ret, 0);
        config_unref(c);
    }
    config_diag_free(&d);
}

#define NONE ((const char *const[]){NULL})
#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_ERRORS(yaml, ...) expect_diags((yaml), LIST(__VA_ARGS__), NONE)

/* --- durations ----------------------------------------------------------- */

/* older_than: 14 deleted a 20-hour-old message (14 seconds). */
static void
test_duration_without_unit(void **state)
{
    (void)state;
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: r, match: {subject: \"report from\", "
                  "older_than: 14}, action: delete}\n",
                  "t.yaml:4:59: older_than \"14\" has no unit: did you mean "
                  "14d? (durations are written 30s, 5m, 2h, 14d, 1w)");
    /* quoted, in a nested match, and newer_than */
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - name: r\n"
                  "    match:\n"
                  "      from: reports@example.org\n"
                  "      any: [{newer_than: \"2\"}, {not: {older_than: 0}}]\n"
                  "    action: delete\n",
                  "t.yaml:7:26: newer_than \"2\" has no unit: did you mean "
                  "2d? (durations are written 30s, 5m, 2h, 14d, 1w)",
                  "t.yaml:7:51: older_than \"0\" has no unit: did you mean "
                  "0d? (durations are written 30s, 5m, 2h, 14d, 1w)");
    /* timeouts and intervals: the same refusal, seconds suggested */
    EXPECT_ERRORS("defaults: {command_timeout: 60}\n" ACCOUNT
                  "rules:\n"
                  "  - {name: r, match: {from: x}, action: delete}\n",
                  "t.yaml:1:29: command_timeout \"60\" has no unit: did you "
                  "mean 60s? (durations are written 30s, 5m, 2h, 14d, 1w)");
    /* sizes keep bare numbers as bytes */
    expect_diags(ACCOUNT
                 "rules:\n"
                 "  - {name: r, match: {from: x, larger_than: 512, "
                 "older_than: 14d}, action: delete}\n",
                 NONE, NONE);
}

/* --- flags --------------------------------------------------------------- */

static void
test_flag_spelled_without_backslash(void **state)
{
    (void)state;
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: r, match: {from: x}, action: {flag: Seen}}\n"
                  "  - name: s\n"
                  "    match: {from: y}\n"
                  "    action: {flag: [\"$Label\", flagged, \"\\\\Seen\", "
                  "Recent, \"a b\", \"\\\\Junk\"]}\n",
                  "t.yaml:4:48: flag \"Seen\" would set a keyword, not the "
                  "system flag: did you mean \\Seen? (in YAML '\\Seen' or "
                  "\"\\\\Seen\")",
                  "t.yaml:7:31: flag \"flagged\" would set a keyword, not the "
                  "system flag: did you mean \\Flagged? (in YAML '\\Flagged' "
                  "or \"\\\\Flagged\")",
                  "t.yaml:7:50: flag \"Recent\": \\Recent is set by the "
                  "server only and cannot be stored",
                  "t.yaml:7:58: invalid flag keyword \"a b\" (an IMAP atom: 1 "
                  "to 200 printable ASCII characters, no spaces or "
                  "(){%*\"\\])",
                  "t.yaml:7:65: unknown system flag \"\\Junk\" (expected "
                  "\\Seen, \\Answered, \\Flagged, \\Deleted, \\Draft or a "
                  "keyword without a backslash)");
}

/* --- move targets ---------------------------------------------------------- */

static void
test_create_only_when_asked(void **state)
{
    struct config_diag d;
    struct config *c = NULL;
    const char *yaml = ACCOUNT
        "rules:\n"
        "  - {name: a, match: {from: x}, action: {move: Archive}}\n"
        "  - {name: b, match: {from: y}, action: {move: New, create: true}}\n";

    (void)state;
    config_diag_init(&d);
    assert_int_equal(config_load_buffer("t.yaml", yaml, strlen(yaml), &c, &d),
                     0);
    assert_false(c->rules[0]->create);
    assert_true(c->rules[1]->create);
    config_unref(c);
    config_diag_free(&d);
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: a, match: {from: x}, action: {create: true}}\n"
                  "  - {name: b, match: {from: x}, action: {move: A, create: "
                  "maybe}}\n"
                  "  - {name: c, match: {from: x}, action: {flag: $X, create: "
                  "true}}\n"
                  "  - {name: d, match: {from: x}, action: {move: A, flag: $X}}"
                  "\n"
                  "  - {name: e, match: {from: x}, action: {move: A, craete: "
                  "true}}\n"
                  "  - {name: f, match: {from: x}, action: {}}\n",
                  "t.yaml:4:41: action must have move or flag (or be delete "
                  "or trash)",
                  "t.yaml:5:59: create must be true or false",
                  "t.yaml:6:52: create applies to move only (a missing Trash "
                  "is never created)",
                  "t.yaml:7:51: action must have one of move or flag, not "
                  "both",
                  "t.yaml:8:51: unknown key \"craete\" in action (did you mean "
                  "\"create\"?)",
                  "t.yaml:9:41: action must have move or flag (or be delete "
                  "or trash)");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_without_unit),
        cmocka_unit_test(test_flag_spelled_without_backslash),
        cmocka_unit_test(test_create_only_when_asked),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
