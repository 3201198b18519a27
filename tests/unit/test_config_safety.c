/* SPDX-License-Identifier: MIT */
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
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* --- warnings every load gives -------------------------------------------- */

static void
test_port_and_tls_disagree(void **state)
{
    (void)state;
    expect_diags("defaults: {port: 993, tls: starttls}\n"
                 "accounts:\n"
                 "  - {name: a, host: h, user: u, password_env: P, "
                 "mailboxes: INBOX}\n"
                 "  - {name: b, host: h, user: u, password_env: P, "
                 "mailboxes: INBOX, port: 143, tls: implicit}\n"
                 "  - {name: c, host: h, user: u, password_env: P, "
                 "mailboxes: INBOX, tls: none}\n"
                 "  - {name: d, host: h, user: u, password_env: P, "
                 "mailboxes: INBOX, port: 993, tls: implicit}\n"
                 "  - {name: e, tunnel: x, mailboxes: INBOX, port: 993, "
                 "tls: none}\n"
                 "rules:\n"
                 "  - {name: r, match: {from: x}, action: delete}\n",
                 NONE,
                 LIST("t.yaml:1:18: account \"a\": port 993 is the "
                      "implicit TLS port, but tls is starttls: the server "
                      "would wait for a TLS handshake (set tls: implicit, or "
                      "port: 143)",
                      "t.yaml:1:18: account \"c\": port 993 is the "
                      "implicit TLS port, but tls is none: the server would "
                      "wait for a TLS handshake (set tls: implicit, or port: "
                      "143)",
                      "t.yaml:4:74: account \"b\": port 143 is the plain "
                      "and STARTTLS port, but tls is implicit (set tls: "
                      "starttls, or port: 993)"));
}

/* A delete rule with only age, size or flag keys deletes whole mailboxes. */
static void
test_broad_delete_rule(void **state)
{
    (void)state;
    expect_diags(ACCOUNT
                 "rules:\n"
                 "  - {name: old, match: {older_than: 30d}, action: delete}\n"
                 "  - name: read\n"
                 "    match: {seen: true, larger_than: 1M}\n"
                 "    action: trash\n"
                 "  - {name: boss, match: {not: {from: boss}}, action: delete}\n"
                 "  - {name: some, match: {any: [{from: a}, {older_than: 1d}]},"
                 " action: delete}\n"
                 /* these name the mail, or say that everything is meant */
                 "  - {name: ok1, match: {from: x, older_than: 1d}, "
                 "action: delete}\n"
                 "  - {name: ok2, match: {all: true, older_than: 1d}, "
                 "action: delete}\n"
                 "  - {name: ok3, match: {any: [{from: a}, {subject: b}]}, "
                 "action: delete}\n"
                 "  - {name: ok4, match: {older_than: 1d}, action: {move: "
                 "Old}}\n",
                 NONE,
                 LIST("t.yaml:4:24: rule \"old\" would delete all messages "
                      "older than 30d in every mailbox it applies to: its "
                      "match names no mail, only age, size or flags (add a "
                      "key such as from or subject, or all: true if that is "
                      "meant)",
                      "t.yaml:6:12: rule \"read\" would move to the Trash all "
                      "messages that are seen and larger than 1M in every "
                      "mailbox it applies to: its match names no mail, only "
                      "age, size or flags (add a key such as from or subject, "
                      "or all: true if that is meant)",
                      "t.yaml:8:25: rule \"boss\" would delete all messages "
                      "not (whose From contains \"boss\") in every mailbox it "
                      "applies to: its match names no mail, only age, size or "
                      "flags (add a key such as from or subject, or all: true "
                      "if that is meant)",
                      "t.yaml:9:25: rule \"some\" would delete all messages "
                      "(either whose From contains \"a\" or older than 1d) in "
                      "every mailbox it applies to: its match names no mail, "
                      "only age, size or flags (add a key such as from or "
                      "subject, or all: true if that is meant)"));
}

/* A key refused for its value is not then taken for a broad rule. */
static void
test_no_broad_warning_after_an_error(void **state)
{
    (void)state;
    expect_diags(ACCOUNT
                 "rules:\n"
                 "  - {name: old, match: {older_than: 14}, action: delete}\n",
                 LIST("t.yaml:4:37: older_than \"14\" has no unit: did you "
                      "mean 14d? (durations are written 30s, 5m, 2h, 14d, "
                      "1w)"),
                 NONE);
}

/* --- --check-config: beyond the file -------------------------------------- */

static char tmpdir[] = "/tmp/imapsweep-check-XXXXXX";

static void
write_file(const char *name, const char *text, mode_t mode)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    free(path);
}

static void
check_env(const char *yaml, const char *const *errors,
          const char *const *warnings)
{
    struct config_diag d;
    struct config *c = NULL;
    size_t n;

    config_diag_init(&d);
    if (config_load_buffer("t.yaml", yaml, strlen(yaml), &c, &d) != 0)
        print_diag(&d);
    assert_non_null(c);
    n = config_check_environment(c, &d);
    check_entries(&d, d.errors, d.n_errors, errors);
    check_entries(&d, d.warnings, d.n_warnings, warnings);
    assert_int_equal(n, d.n_errors);
    config_unref(c);
    config_diag_free(&d);
}

static void
test_secret_files_and_credentials(void **state)
{
    struct buf y;
    char *e1, *e2, *e3, *w1, *w2, *w3, *w4;
    bool root;

    (void)state;
    assert_non_null(mkdtemp(tmpdir));
    write_file("good.pass", "secret\n", 0600);
    write_file("empty.pass", "", 0600);
    write_file("open.pass", "secret\n", 0644);
    write_file("group.pass", "secret\n", 0640);
    write_file("work", "secret\n", 0600);
    buf_init(&y, BUF_NOCAP);
    buf_printf(&y,
               "accounts:\n"
               "  - {name: a, host: h, user: u, mailboxes: INBOX,\n"
               "     password_file: %s/good.pass}\n"
               "  - {name: b, host: h, user: u, mailboxes: INBOX,\n"
               "     password_file: %s/missing.pass}\n"
               "  - {name: c, host: h, user: u, mailboxes: INBOX,\n"
               "     password_file: %s/empty.pass}\n"
               "  - {name: d, host: h, user: u, mailboxes: INBOX,\n"
               "     password_file: %s/open.pass}\n"
               "  - {name: e, host: h, user: u, mailboxes: INBOX,\n"
               "     password_file: /home/alice/.imap-pass}\n"
               "  - {name: f, host: h, user: u, mailboxes: INBOX,\n"
               "     password_credential: work}\n"
               "  - {name: g, host: h, user: u, mailboxes: INBOX,\n"
               "     password_credential: home}\n"
               "  - {name: h, host: h, user: u, mailboxes: INBOX,\n"
               "     password_file: %s/group.pass}\n"
               "rules:\n"
               "  - {name: r, match: {from: x}, action: delete}\n",
               tmpdir, tmpdir, tmpdir, tmpdir, tmpdir);
    e1 = xasprintf("t.yaml:5:21: password_file %s/missing.pass: No such "
                   "file or directory", tmpdir);
    e2 = xasprintf("t.yaml:7:21: password_file %s/empty.pass is empty",
                   tmpdir);
    e3 = xasprintf("t.yaml:15:27: password_credential home: %s/home (No "
                   "such file or directory); the unit needs "
                   "LoadCredential=home:FILE or "
                   "LoadCredentialEncrypted=home:FILE", tmpdir);
    w1 = xasprintf("t.yaml:9:21: password_file %s/open.pass is readable by "
                   "group or others (mode 0644): make it mode 600, owned by "
                   "the user imapsweepd runs as, or use password_credential",
                   tmpdir);
    /* group-readable is no better (issue 12, defect 5: as ssh does) */
    w4 = xasprintf("t.yaml:17:21: password_file %s/group.pass is readable "
                   "by group or others (mode 0640): make it mode 600, owned "
                   "by the user imapsweepd runs as, or use "
                   "password_credential", tmpdir);
    w2 = xstrdup("t.yaml:11:21: password_file /home/alice/.imap-pass is "
                 "under /home, /root or /run/user, which the systemd unit "
                 "hides (ProtectHome=yes): the service will not find it "
                 "(move it to /etc/imapsweep, or use password_credential)");
    /* root can read a 0600 file; the service's user (DynamicUser, no
     * static user "imapsweep") cannot */
    w3 = xasprintf("t.yaml:3:21: password_file %s/good.pass is readable by "
                   "root, but not by the service's user imapsweep (mode "
                   "0600, owner uid 0): create that user and give the file "
                   "to it with mode 0600, or use password_credential",
                   tmpdir);
    root = geteuid() == 0 && getpwnam("imapsweep") == NULL;
    /* outside the unit: credentials are not looked for */
    unsetenv("CREDENTIALS_DIRECTORY");
    check_env(buf_cstr(&y),
              LIST(e1, e2, "t.yaml:11:21: password_file "
                   "/home/alice/.imap-pass: No such file or directory"),
              root ? LIST(w3, w1, w2, w4) : LIST(w1, w2, w4));
    /* inside it ($CREDENTIALS_DIRECTORY set): each must be there */
    setenv("CREDENTIALS_DIRECTORY", tmpdir, 1);
    check_env(buf_cstr(&y),
              LIST(e1, e2, "t.yaml:11:21: password_file "
                   "/home/alice/.imap-pass: No such file or directory", e3),
              root ? LIST(w3, w1, w2, w4) : LIST(w1, w2, w4));
    unsetenv("CREDENTIALS_DIRECTORY");
    free(e1);
    free(e2);
    free(e3);
    free(w1);
    free(w2);
    free(w3);
    free(w4);
    buf_free(&y);
    for (const char *const *f = (const char *const[]){"good.pass",
             "empty.pass", "open.pass", "group.pass", "work", NULL};
         *f != NULL; f++) {
        char *path = xasprintf("%s/%s", tmpdir, *f);

        unlink(path);
        free(path);
    }
    rmdir(tmpdir);
}

static void
test_rule_summaries(void **state)
{
    struct config_diag d;
    struct config *c = NULL;
    const char *yaml =
        "accounts:\n"
        "  - {name: work, host: h, user: u, password_env: P,\n"
        "     mailboxes: [INBOX, Cron]}\n"
        "  - {name: home, host: h, user: u, password_env: P,\n"
        "     mailboxes: [INBOX], rules: [cron-noise]}\n"
        "rules:\n"
        "  - {name: cron-noise, mailboxes: INBOX,\n"
        "     match: {from: Cron Daemon}, action: delete}\n"
        "  - name: old-alerts\n"
        "    match: {from: alerts@example.org, older_than: 14d,\n"
        "            not: {subject_regex: '^\\[keep\\]'}}\n"
        "    action: {move: Archive/Alerts, create: true}\n"
        "  - {name: reports, match: {subject: \"Disk \\\"usage\\\"\"},\n"
        "     keep_newest: 3, action: trash, dry_run: true}\n"
        "  - {name: receipts, match: {header: {X-Auto-Response: ''}},\n"
        "     action: {flag: [\"\\\\Seen\", $Receipt]}}\n"
        "  - {name: nowhere, mailboxes: Lists, match: {all: true},\n"
        "     action: delete}\n";
    const char *const want[] = {
        "rule cron-noise: delete messages whose From contains \"Cron "
        "Daemon\" in work/INBOX, home/INBOX",
        "rule old-alerts: move messages whose From contains "
        "\"alerts@example.org\" and older than 14d and not (whose Subject "
        "matches /^\\[keep\\]/) to \"Archive/Alerts\" (created if missing) "
        "in work/INBOX, work/Cron",
        "rule reports: move messages whose Subject contains \"Disk "
        "\\\"usage\\\"\" to the Trash, except the 3 newest of them (dry "
        "run: only logged) in work/INBOX, work/Cron",
        "rule receipts: flag messages that have a X-Auto-Response header "
        "with \\Seen $Receipt in work/INBOX, work/Cron",
        "rule nowhere: delete every message in no watched mailbox (it "
        "never acts)",
    };

    (void)state;
    config_diag_init(&d);
    if (config_load_buffer("t.yaml", yaml, strlen(yaml), &c, &d) != 0)
        print_diag(&d);
    assert_non_null(c);
    assert_int_equal(c->n_rules, ARRAY_SIZE(want));
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        char *line = config_rule_summary(c, i);

        assert_string_equal(line, want[i]);
        free(line);
    }
    config_unref(c);
    config_diag_free(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_without_unit),
        cmocka_unit_test(test_flag_spelled_without_backslash),
        cmocka_unit_test(test_create_only_when_asked),
        cmocka_unit_test(test_port_and_tls_disagree),
        cmocka_unit_test(test_broad_delete_rule),
        cmocka_unit_test(test_no_broad_warning_after_an_error),
        cmocka_unit_test(test_secret_files_and_credentials),
        cmocka_unit_test(test_rule_summaries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
