/* SPDX-License-Identifier: MIT */
/* The configuration loader: the model built from a valid file, and the
 * exact FILE:LINE:COLUMN text of every kind of diagnostic. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "config.h"
#include "util.h"

/* A valid account line for tests about other sections (lines 1-2). */
#define ACCOUNT                                                               \
    "accounts:\n"                                                             \
    "  - {name: a, host: h, user: u, password_env: P, mailboxes: INBOX}\n"

/* A valid rule (two lines). */
#define RULE                                                                  \
    "rules:\n"                                                                \
    "  - {name: r, match: {from: x}, action: delete}\n"

static char *
data_path(const char *name)
{
    const char *dir = getenv("IMAPSWEEP_TESTDATA");

    return xasprintf("%s/config/%s", dir != NULL && *dir ? dir : "tests/data",
                     name);
}

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

/* Compare formatted entries with a NULL-terminated list, exactly. */
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

static struct config *
load_ok(const char *yaml, struct config_diag *d)
{
    struct config *c = NULL;
    int ret;

    config_diag_init(d);
    ret = config_load_buffer("t.yaml", yaml, strlen(yaml), &c, d);
    if (ret != 0)
        print_diag(d);
    assert_int_equal(ret, 0);
    assert_non_null(c);
    assert_int_equal(d->n_errors, 0);
    return c;
}

static void
expect_diags(const char *yaml, const char *const *errors,
             const char *const *warnings)
{
    struct config *c = (struct config *)(uintptr_t)0x1;  /* must stay */
    struct config_diag d;
    int ret;

    config_diag_init(&d);
    ret = config_load_buffer("t.yaml", yaml, strlen(yaml), &c, &d);
    check_entries(&d, d.errors, d.n_errors, errors);
    if (warnings != NULL)
        check_entries(&d, d.warnings, d.n_warnings, warnings);
    if (errors[0] != NULL) {
        assert_int_equal(ret, -EINVAL);
        assert_ptr_equal(c, (struct config *)(uintptr_t)0x1);
    } else {
        assert_int_equal(ret, 0);
        config_unref(c);
    }
    config_diag_free(&d);
}

#define EXPECT_ERRORS(yaml, ...)                                              \
    expect_diags((yaml), (const char *const[]){__VA_ARGS__, NULL}, NULL)

/* --- the model ----------------------------------------------------------- */

static void
test_valid_file(void **state)
{
    char *path = data_path("valid.yaml");
    const struct config_account *a;
    const struct rule *r;
    const struct rule_node *m, *any, *hdr;
    struct config_diag d;
    struct config *c = NULL;

    (void)state;
    config_diag_init(&d);
    if (config_load(path, &c, &d) != 0)
        print_diag(&d);
    assert_non_null(c);
    assert_int_equal(d.n_errors, 0);
    assert_int_equal(d.n_warnings, 0);
    assert_string_equal(c->path, path);

    /* daemon */
    assert_string_equal(c->daemon.control_socket, "");
    assert_int_equal(c->daemon.control_mode, 0660);
    assert_string_equal(c->daemon.control_group, "mail");
    assert_int_equal(c->daemon.log_level, LL_DEBUG);
    assert_true(c->daemon.dry_run);
    assert_int_equal(c->daemon.audit, CONFIG_AUDIT_COUNTS);

    assert_int_equal(c->n_accounts, 4);
    assert_int_equal(c->n_rules, 4);
    assert_int_equal(config_count_mailboxes(c), 6);

    /* every setting from defaults; port from tls: starttls */
    a = config_find_account(c, "work");
    assert_ptr_equal(a, &c->accounts[0]);
    assert_int_equal(a->line, 24);
    assert_int_equal(a->col, 5);
    assert_string_equal(a->host, "imap.example.org");
    assert_int_equal(a->port, 143);
    assert_int_equal(a->tls, CONFIG_TLS_STARTTLS);
    assert_false(a->tls_verify);
    assert_null(a->ca_file);
    assert_int_equal(a->auth, CONFIG_AUTH_PLAIN);
    assert_int_equal(a->expunge, CONFIG_EXPUNGE_MAILBOX);
    assert_string_equal(a->user, "alice@example.org");
    assert_int_equal(a->secret.kind, CONFIG_SECRET_FILE);
    assert_string_equal(a->secret.value, "/etc/imapsweep/work.pass");
    assert_null(a->tunnel);
    assert_string_equal(a->trash_mailbox, "Deleted");
    assert_int_equal(a->idle_refresh, 25 * 60);
    assert_int_equal(a->max_connections, 4);
    assert_int_equal(a->poll_interval, 120);
    assert_int_equal(a->full_sweep_interval, 7200);
    assert_int_equal(a->command_timeout, 45);
    assert_int_equal(a->connect_timeout, 10);
    assert_int_equal(a->reconnect_min, 2);
    assert_int_equal(a->reconnect_max, 600);
    assert_int_equal(a->n_mailboxes, 2);
    assert_string_equal(a->mailboxes[0], "INBOX");  /* "inbox" */
    assert_string_equal(a->mailboxes[1], "Cron");
    /* [dups, cron] as ascending indices */
    assert_int_equal(a->n_rules, 2);
    assert_int_equal(a->rules[0], 0);
    assert_int_equal(a->rules[1], 1);

    /* account values win; ~ restores the built-in default; yes stays text */
    a = config_find_account(c, "home");
    assert_int_equal(a->tls, CONFIG_TLS_IMPLICIT);
    assert_int_equal(a->port, 993);
    assert_string_equal(a->user, "yes");
    assert_null(a->trash_mailbox);
    assert_int_equal(a->secret.kind, CONFIG_SECRET_CREDENTIAL);
    assert_string_equal(a->secret.value, "home");
    assert_int_equal(a->n_mailboxes, 1);
    assert_string_equal(a->mailboxes[0], "INBOX");
    assert_int_equal(a->n_rules, 4);  /* default: every rule */
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(a->rules[i], i);

    a = config_find_account(c, "gmail");
    assert_int_equal(a->port, 1993);
    assert_int_equal(a->tls, CONFIG_TLS_STARTTLS);
    assert_string_equal(a->user, "on");
    assert_int_equal(a->auth, CONFIG_AUTH_XOAUTH2);
    assert_int_equal(a->secret.kind, CONFIG_SECRET_TOKEN_COMMAND);
    assert_string_equal(a->secret.value, "get-token");
    assert_string_equal(a->mailboxes[1], "[Gmail]/Spam");
    assert_int_equal(a->n_rules, 1);
    assert_int_equal(a->rules[0], 2);

    /* a tunnel needs no host, user or secret and is plain text */
    a = config_find_account(c, "archive");
    assert_null(a->host);
    assert_null(a->user);
    assert_int_equal(a->secret.kind, CONFIG_SECRET_NONE);
    assert_null(a->secret.value);
    assert_string_equal(a->tunnel, "ssh mail /usr/lib/dovecot/imap");
    assert_int_equal(a->tls, CONFIG_TLS_NONE);
    assert_null(config_find_account(c, "nope"));

    /* rules */
    r = config_find_rule(c, "cron");
    assert_ptr_equal(r, c->rules[0]);
    assert_int_equal(r->line, 50);
    assert_int_equal(r->col, 5);
    assert_int_equal(r->n_mailboxes, 1);
    assert_string_equal(r->mailboxes[0], "INBOX");
    assert_int_equal(r->action, RULE_ACTION_DELETE);
    assert_int_equal(r->dry_run, -1);
    m = r->match;
    assert_int_equal(m->key, RULE_AND);
    assert_int_equal(m->line, 52);
    assert_int_equal(m->col, 12);
    assert_int_equal(m->n_children, 1);
    assert_int_equal(m->children[0]->key, RULE_FROM);
    assert_string_equal(m->children[0]->str, "Cron Daemon");

    r = config_find_rule(c, "dups");
    assert_int_equal(r->action, RULE_ACTION_TRASH);
    assert_int_equal(r->dry_run, 0);
    assert_int_equal(r->match->n_children, 2);
    assert_int_equal(r->match->children[1]->key, RULE_DUPLICATE);
    assert_int_equal(r->match->children[1]->dup, RULE_DUP_MESSAGE_ID);

    /* and(older, any(and(subject), and(header, header)), not(and(seen))) */
    r = config_find_rule(c, "old");
    assert_int_equal(r->action, RULE_ACTION_MOVE);
    assert_string_equal(r->target, "Archive/Old");
    m = r->match;
    assert_int_equal(m->key, RULE_AND);
    assert_int_equal(m->n_children, 3);
    assert_int_equal(m->children[0]->key, RULE_OLDER);
    assert_int_equal(m->children[0]->num, 14 * 86400);
    assert_int_equal(m->children[0]->line, 60);
    assert_int_equal(m->children[0]->col, 7);
    any = m->children[1];
    assert_int_equal(any->key, RULE_ANY);
    assert_int_equal(any->n_children, 2);
    assert_int_equal(any->children[0]->key, RULE_AND);
    assert_int_equal(any->children[0]->n_children, 1);
    assert_int_equal(any->children[0]->children[0]->key, RULE_SUBJECT);
    assert_int_equal(any->children[1]->key, RULE_AND);
    assert_int_equal(any->children[1]->n_children, 2);
    hdr = any->children[1]->children[0];
    assert_int_equal(hdr->key, RULE_HEADER);
    assert_string_equal(hdr->name, "X-Auto-Response");
    assert_string_equal(hdr->str, "yes");
    assert_int_equal(hdr->line, 63);
    assert_int_equal(hdr->col, 21);
    hdr = any->children[1]->children[1];
    assert_string_equal(hdr->name, "X-Mailer");
    assert_string_equal(hdr->str, "cron");
    assert_int_equal(m->children[2]->key, RULE_NOT);
    assert_int_equal(m->children[2]->n_children, 1);
    assert_int_equal(m->children[2]->children[0]->key, RULE_AND);
    assert_int_equal(m->children[2]->children[0]->children[0]->key,
                     RULE_SEEN);
    assert_true(m->children[2]->children[0]->children[0]->flag);

    r = config_find_rule(c, "flagit");
    assert_int_equal(r->action, RULE_ACTION_FLAG);
    assert_int_equal(r->keep_newest, 3);
    assert_int_equal(r->n_flags, 2);
    assert_string_equal(r->flags[0], "\\Flagged");
    assert_string_equal(r->flags[1], "$Swept");
    assert_int_equal(r->match->children[0]->key, RULE_ALL);
    assert_null(config_find_rule(c, "nope"));

    /* references */
    assert_ptr_equal(config_ref(c), c);
    config_unref(c);
    assert_int_equal(c->refs, 1);
    config_unref(c);
    config_unref(NULL);
    config_diag_free(&d);
    free(path);
}

static void
test_builtin_defaults(void **state)
{
    struct config_diag d;
    struct config *c = load_ok(ACCOUNT RULE, &d);
    const struct config_account *a = &c->accounts[0];

    (void)state;
    assert_null(c->daemon.control_socket);
    assert_int_equal(c->daemon.control_mode, 0600);
    assert_null(c->daemon.control_group);
    assert_int_equal(c->daemon.log_level, LL_INFO);
    assert_false(c->daemon.dry_run);
    assert_int_equal(c->daemon.audit, CONFIG_AUDIT_MESSAGES);
    assert_int_equal(a->port, 993);
    assert_int_equal(a->tls, CONFIG_TLS_IMPLICIT);
    assert_true(a->tls_verify);
    assert_null(a->ca_file);
    assert_int_equal(a->auth, CONFIG_AUTH_AUTO);
    assert_int_equal(a->expunge, CONFIG_EXPUNGE_UID);
    assert_int_equal(a->idle_refresh, 600);
    assert_int_equal(a->max_connections, 8);
    assert_int_equal(a->poll_interval, 300);
    assert_int_equal(a->full_sweep_interval, 3600);
    assert_int_equal(a->command_timeout, 60);
    assert_int_equal(a->connect_timeout, 30);
    assert_int_equal(a->reconnect_min, 1);
    assert_int_equal(a->reconnect_max, 300);
    assert_null(a->trash_mailbox);
    assert_int_equal(a->notify, CONFIG_NOTIFY_AUTO);
    assert_int_equal(a->on_rename, CONFIG_ON_RENAME_STOP);
    assert_int_equal(a->n_mailboxes, 1);
    assert_int_equal(a->mailbox_idle[0], CONFIG_IDLE_YES);
    assert_int_equal(a->secret.kind, CONFIG_SECRET_ENV);
    assert_int_equal(d.n_warnings, 0);
    config_unref(c);
    config_diag_free(&d);
}

/* A field that takes a string takes the text as written. */
static void
test_yes_stays_string(void **state)
{
    struct config_diag d;
    struct config *c = load_ok(
        "accounts:\n"
        "  - {name: a, host: on, user: yes, password: no, mailboxes: [1]}\n"
        "rules:\n"
        "  - {name: r, match: {subject: yes, header: {X-Y: off}},\n"
        "     action: {move: true}}\n", &d);
    const struct rule *r = c->rules[0];

    (void)state;
    assert_string_equal(c->accounts[0].host, "on");
    assert_string_equal(c->accounts[0].user, "yes");
    assert_int_equal(c->accounts[0].secret.kind, CONFIG_SECRET_INLINE);
    assert_string_equal(c->accounts[0].secret.value, "no");
    assert_string_equal(c->accounts[0].mailboxes[0], "1");
    assert_string_equal(r->match->children[0]->str, "yes");
    assert_string_equal(r->match->children[1]->str, "off");
    assert_string_equal(r->target, "true");
    /* no permission check on a buffer */
    assert_int_equal(d.n_warnings, 0);
    config_unref(c);
    config_diag_free(&d);
}

static void
test_conn_differs(void **state)
{
    struct config_diag d;
    struct config *c = load_ok(
        "accounts:\n"
        "  - {name: a, host: h, user: u, password_env: P, mailboxes: INBOX}\n"
        "  - {name: b, host: h, user: u, password_env: P, mailboxes: [X, Y],\n"
        "     expunge: none, trash_mailbox: T, full_sweep_interval: 2h,\n"
        "     rules: []}\n"
        "  - {name: c, host: h, user: u, password_env: Q, mailboxes: INBOX}\n"
        "  - {name: d, host: h, user: u, password_file: P, mailboxes: INBOX}\n"
        "  - {name: e, host: h, user: u, password_env: P, mailboxes: INBOX,\n"
        "     idle_refresh: 5m}\n"
        "  - {name: f, host: h, user: u, password_env: P, mailboxes: INBOX,\n"
        "     port: 993}\n"
        RULE, &d);

    (void)state;
    assert_false(config_account_conn_differs(&c->accounts[0],
                                             &c->accounts[0]));
    /* mailboxes, rules, expunge, trash, full sweep: same connection */
    assert_false(config_account_conn_differs(&c->accounts[0],
                                             &c->accounts[1]));
    assert_true(config_account_conn_differs(&c->accounts[0],
                                            &c->accounts[2]));
    assert_true(config_account_conn_differs(&c->accounts[0],
                                            &c->accounts[3]));
    assert_true(config_account_conn_differs(&c->accounts[0],
                                            &c->accounts[4]));
    /* the same port, set explicitly */
    assert_false(config_account_conn_differs(&c->accounts[0],
                                             &c->accounts[5]));
    assert_int_equal(c->accounts[1].n_rules, 0);
    assert_int_equal(d.n_warnings, 1);
    assert_string_equal(d.warnings[0].msg,
                        "account \"b\" has an empty rule list: nothing will "
                        "be acted on in its mailboxes");
    config_unref(c);
    config_diag_free(&d);
}

static void
test_names(void **state)
{
    (void)state;
    assert_string_equal(config_tls_name(CONFIG_TLS_IMPLICIT), "implicit");
    assert_string_equal(config_tls_name(CONFIG_TLS_STARTTLS), "starttls");
    assert_string_equal(config_tls_name(CONFIG_TLS_NONE), "none");
    assert_string_equal(config_auth_name(CONFIG_AUTH_AUTO), "auto");
    assert_string_equal(config_auth_name(CONFIG_AUTH_LOGIN), "login");
    assert_string_equal(config_auth_name(CONFIG_AUTH_PLAIN), "plain");
    assert_string_equal(config_auth_name(CONFIG_AUTH_XOAUTH2), "xoauth2");
    assert_string_equal(config_auth_name(CONFIG_AUTH_OAUTHBEARER),
                        "oauthbearer");
    assert_string_equal(config_expunge_name(CONFIG_EXPUNGE_UID), "uid");
    assert_string_equal(config_expunge_name(CONFIG_EXPUNGE_MAILBOX),
                        "mailbox");
    assert_string_equal(config_expunge_name(CONFIG_EXPUNGE_NONE), "none");
}

/* --- one test per kind of error ------------------------------------------ */

static void
test_unknown_key(void **state)
{
    (void)state;
    EXPECT_ERRORS(
        "accounts:\n"
        "  - name: work\n"
        "    hots: imap.example.org\n"
        "    host: imap.example.org\n"
        "    user: u\n"
        "    password_env: P\n"
        "    mailboxes: INBOX\n"
        "    colour: red\n"
        RULE,
        "t.yaml:3:5: unknown key \"hots\" in account (did you mean "
        "\"host\"?)",
        "t.yaml:8:5: unknown key \"colour\" in account");
    EXPECT_ERRORS("acounts: []\n" ACCOUNT RULE,
                  "t.yaml:1:1: unknown key \"acounts\" at top level (did you "
                  "mean \"accounts\"?)");
    EXPECT_ERRORS("daemon: {log_levle: info}\n" ACCOUNT RULE,
                  "t.yaml:1:10: unknown key \"log_levle\" in daemon (did you "
                  "mean \"log_level\"?)");
    EXPECT_ERRORS("defaults: {user: u}\n" ACCOUNT RULE,
                  "t.yaml:1:12: \"user\" is not allowed in defaults (set it "
                  "in each account)");
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: r, match: {form: x, Subject: y}, action: delete,"
                  " keep: 1}\n",
                  "t.yaml:4:23: unknown key \"form\" in match (did you mean "
                  "\"from\"?)",
                  "t.yaml:4:32: unknown key \"Subject\" in match (did you "
                  "mean \"subject\"?)",
                  "t.yaml:4:61: unknown key \"keep\" in rule");
}

static void
test_wrong_type(void **state)
{
    (void)state;
    EXPECT_ERRORS(
        "accounts:\n"
        "  - name: a\n"
        "    host: [imap.example.org]\n"
        "    user: {u: 1}\n"
        "    password_env: P\n"
        "    mailboxes: {INBOX: yes}\n"
        "    port: [993]\n"
        RULE,
        "t.yaml:3:11: host must be a string, not a sequence",
        "t.yaml:4:11: user must be a string, not a mapping",
        "t.yaml:6:16: mailboxes must be a mailbox name or a list of them, "
        "not a mapping",
        "t.yaml:7:11: port must be an integer, not a sequence");
    EXPECT_ERRORS("daemon: [x]\n" ACCOUNT RULE,
                  "t.yaml:1:9: daemon must be a mapping, not a sequence");
    EXPECT_ERRORS("accounts: {name: a}\n" RULE,
                  "t.yaml:1:11: accounts must be a list of accounts, not a "
                  "mapping");
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: r, match: from, action: delete}\n"
                  "  - {name: s, match: {not: x, seen: maybe, any: {a: b}},\n"
                  "     action: delete}\n",
                  "t.yaml:4:22: match must be a mapping, not a string",
                  "t.yaml:5:28: not must be a match mapping, not a string",
                  "t.yaml:5:37: seen must be true or false",
                  "t.yaml:5:49: any must be a list of match mappings, not a "
                  "mapping");
    /* a boolean field takes true/false/yes/no/on/off only */
    EXPECT_ERRORS("daemon: {dry_run: 1}\n" ACCOUNT RULE,
                  "t.yaml:1:19: dry_run must be true or false");
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: r, match: {subject: ~}, action: delete}\n",
                  "t.yaml:4:32: subject must be a string, not null");
}

static void
test_bad_duration(void **state)
{
    (void)state;
    EXPECT_ERRORS("defaults: {idle_refresh: 5x}\n" ACCOUNT RULE,
                  "t.yaml:1:26: invalid duration \"5x\" (expected e.g. 30s, "
                  "5m, 2h, 14d)");
    EXPECT_ERRORS("defaults: {idle_refresh: 30m, poll_interval: 0s}\n"
                  ACCOUNT RULE,
                  "t.yaml:1:26: idle_refresh 30m out of range (1s-29m)",
                  "t.yaml:1:46: poll_interval 0s out of range (at least 1s)");
    EXPECT_ERRORS("defaults: {reconnect_min: 10m}\n"
                  "accounts:\n"
                  "  - {name: a, host: h, user: u, password_env: P,\n"
                  "     mailboxes: INBOX, reconnect_max: 2d}\n"
                  "  - {name: b, host: h, user: u, password_env: P,\n"
                  "     mailboxes: INBOX}\n" RULE,
                  "t.yaml:1:27: reconnect_max (5m) is less than "
                  "reconnect_min (10m)",
                  "t.yaml:4:39: reconnect_max 2d out of range (1s-1d)");
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: r, match: {older_than: 0s, newer_than: 1y},\n"
                  "     action: delete}\n",
                  "t.yaml:4:35: older_than 0s out of range (at least 1s)",
                  "t.yaml:4:51: invalid duration \"1y\" (expected e.g. 30s, "
                  "5m, 2h, 14d)");
}

static void
test_bad_size(void **state)
{
    (void)state;
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: r, match: {larger_than: 10 MB, smaller_than: "
                  "2T}, action: delete}\n",
                  "t.yaml:4:36: invalid size \"10 MB\" (expected e.g. 512, "
                  "10k, 5M, 1G)",
                  "t.yaml:4:57: size \"2T\" is too large (at most 1T)");
}

static void
test_bad_regex(void **state)
{
    (void)state;
    /* PCRE2's message and the offset in the pattern; the position is the
     * pattern's scalar */
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - name: r\n"
                  "    match:\n"
                  "      subject_regex: \"(weekly|daily report\"\n"
                  "      header_regex: {X-Mailer: \"a{2,1}\", X-B: '\\C'}\n"
                  "      from_regex: '\\d+ errors (?i)x \\p{Lu}'\n"
                  "    action: delete\n",
                  "t.yaml:6:22: subject_regex: invalid regular expression at "
                  "offset 20: missing closing parenthesis",
                  "t.yaml:7:32: header_regex: invalid regular expression at "
                  "offset 5: numbers out of order in {} quantifier",
                  "t.yaml:7:47: header_regex: invalid regular expression at "
                  "offset 2: using \\C is disabled by the application");
}

/* Each pattern is bounded by PCRE2's limits; a whole load by a budget that
 * aliases cannot multiply past. */
static void
test_regex_limits(void **state)
{
    char deep[200];
    struct buf yaml, big;

    (void)state;
    memset(deep, '(', 65);
    deep[65] = 'a';
    memset(deep + 66, ')', 65);
    deep[131] = '\0';
    buf_init(&big, BUF_NOCAP);
    for (int i = 0; i < 8193; i++)
        buf_append_char(&big, 'x');
    buf_init(&yaml, BUF_NOCAP);
    buf_printf(&yaml, ACCOUNT
               "rules:\n"
               "  - name: r\n"
               "    match:\n"
               "      subject_regex: \"%s\"\n"
               "      from_regex: %s\n"
               "    action: delete\n", deep, buf_cstr(&big));
    EXPECT_ERRORS(buf_cstr(&yaml),
                  "t.yaml:6:22: subject_regex: invalid regular expression at "
                  "offset 65: parentheses are too deeply nested",
                  "t.yaml:7:19: from_regex: regular expression longer than "
                  "8192 bytes");
    /* 10 patterns, an alias of ten of those, ten of that, ...: 11110 */
    buf_reset(&yaml);
    buf_printf(&yaml, ACCOUNT
               "rules:\n"
               "  - {name: a, action: delete, match: {any: &l1 [");
    for (int i = 0; i < 10; i++)
        buf_printf(&yaml, "%s{subject_regex: x}", i ? ", " : "");
    buf_append_str(&yaml, "]}}\n");
    for (int level = 2; level <= 4; level++) {
        buf_printf(&yaml, "  - {name: l%d, action: delete, match: {any: "
                   "&l%d [", level, level);
        for (int i = 0; i < 10; i++)
            buf_printf(&yaml, "%s{any: *l%d}", i ? ", " : "", level - 1);
        buf_append_str(&yaml, "]}}\n");
    }
    EXPECT_ERRORS(buf_cstr(&yaml),
                  "t.yaml:4:65: subject_regex: too many or too large regular "
                  "expressions in total");
    buf_free(&yaml);
    buf_free(&big);
}

static void
test_bad_digest(void **state)
{
    (void)state;
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - name: r\n"
                  "    match:\n"
                  "      body_md5: 9e107d9d372bb6826bd81d3542a419d\n"
                  "      body_sha256: zz\n"
                  "    action: delete\n"
                  "  - name: s\n"
                  "    match: {body_md5: 9e107d9d372bb6826bd81d3542a419dx}\n"
                  "    action: delete\n",
                  "t.yaml:6:17: body_md5: expected 32 hex digits, got 31",
                  "t.yaml:7:20: body_sha256: expected 64 hex digits, got 2",
                  "t.yaml:10:23: body_md5: not a hex digit at position 32");
}

static void
test_empty_match(void **state)
{
    (void)state;
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - name: r\n"
                  "    match: {}\n"
                  "    action: delete\n"
                  "  - name: s\n"
                  "    match: {any: [], not: {}}\n"
                  "    action: delete\n"
                  "  - name: t\n"
                  "    action: delete\n",
                  "t.yaml:5:12: empty match: give at least one key (all: "
                  "true matches every message)",
                  "t.yaml:8:13: any: needs at least one match",
                  "t.yaml:8:27: empty match: give at least one key (all: "
                  "true matches every message)",
                  "t.yaml:10:5: rule \"t\" has no match");
}

static void
test_duplicate_rule(void **state)
{
    (void)state;
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - name: foo\n"
                  "    match: {from: a}\n"
                  "    action: delete\n"
                  "  - name: foo\n"
                  "    match: {from: b}\n"
                  "    action: delete\n",
                  "t.yaml:7:11: rule \"foo\" is defined twice (first at "
                  "4:11)");
}

static void
test_duplicate_account(void **state)
{
    (void)state;
    EXPECT_ERRORS("accounts:\n"
                  "  - {name: work, host: h, user: u, password_env: P, "
                  "mailboxes: INBOX}\n"
                  "  - {name: home, host: h, user: u, password_env: P, "
                  "mailboxes: INBOX}\n"
                  "  - {name: work, host: h, user: u, password_env: P, "
                  "mailboxes: INBOX}\n" RULE,
                  "t.yaml:4:12: account \"work\" is defined twice (first at "
                  "2:12)");
    EXPECT_ERRORS("accounts:\n"
                  "  - {name: \"a b\", host: h, user: u, password_env: P, "
                  "mailboxes: INBOX}\n"
                  "  - {host: h, user: u, password_env: P, mailboxes: "
                  "INBOX}\n" RULE,
                  "t.yaml:2:12: invalid account name \"a b\" (1 to 64 "
                  "letters, digits, '.', '_' or '-')",
                  "t.yaml:3:5: account #2 has no name");
}

static void
test_unknown_rule(void **state)
{
    (void)state;
    EXPECT_ERRORS("accounts:\n"
                  "  - {name: a, host: h, user: u, password_env: P, "
                  "mailboxes: INBOX,\n"
                  "     rules: [b, cron, a, b]}\n"
                  "rules:\n"
                  "  - {name: a, match: {from: x}, action: delete}\n"
                  "  - {name: b, match: {from: y}, action: delete}\n",
                  "t.yaml:3:17: unknown rule \"cron\" (defined rules: a, b)",
                  "t.yaml:3:26: rule \"b\" is listed twice (first at 3:14)");
    EXPECT_ERRORS("accounts:\n"
                  "  - {name: a, host: h, user: u, password_env: P, "
                  "mailboxes: INBOX,\n"
                  "     rules: [cron]}\n",
                  "t.yaml:3:14: unknown rule \"cron\" (no rules are "
                  "defined)");
}

static void
test_missing_secret(void **state)
{
    (void)state;
    EXPECT_ERRORS("accounts:\n"
                  "  - name: work\n"
                  "    host: h\n"
                  "    user: u\n"
                  "    mailboxes: INBOX\n" RULE,
                  "t.yaml:2:5: account \"work\" has no secret source (give "
                  "one of password_file, password_command, "
                  "password_credential, password_env, password, "
                  "token_command)");
    EXPECT_ERRORS("accounts:\n"
                  "  - {name: work}\n" RULE,
                  "t.yaml:2:5: account \"work\" has no host",
                  "t.yaml:2:5: account \"work\" has no user",
                  "t.yaml:2:5: account \"work\" has no secret source (give "
                  "one of password_file, password_command, "
                  "password_credential, password_env, password, "
                  "token_command)",
                  "t.yaml:2:5: account \"work\" has no mailboxes");
}

static void
test_two_secrets(void **state)
{
    (void)state;
    EXPECT_ERRORS("accounts:\n"
                  "  - name: work\n"
                  "    host: h\n"
                  "    user: u\n"
                  "    password_file: /etc/imapsweep/work.pass\n"
                  "    password_env: WORK_PASSWORD\n"
                  "    token_command: get-token\n"
                  "    mailboxes: INBOX\n" RULE,
                  "t.yaml:6:5: account \"work\" has two secret sources "
                  "(password_file and password_env)",
                  "t.yaml:7:5: account \"work\" has two secret sources "
                  "(password_file and token_command)");
}

static void
test_secret_values(void **state)
{
    (void)state;
    EXPECT_ERRORS("accounts:\n"
                  "  - {name: a, host: h, user: u, password_credential: "
                  "x/y, mailboxes: I}\n"
                  "  - {name: b, host: h, user: u, password_env: 1X, "
                  "mailboxes: I}\n"
                  "  - {name: c, host: h, user: u, token_command: t, auth: "
                  "login, mailboxes: I}\n"
                  "  - {name: d, host: h, user: u, password_file: \"\", "
                  "mailboxes: I}\n"
                  RULE,
                  "t.yaml:2:54: password_credential must be a plain "
                  "credential name without '/'",
                  "t.yaml:3:47: invalid environment variable name \"1X\" "
                  "(letters, digits and '_', not starting with a digit)",
                  "t.yaml:4:33: token_command needs auth xoauth2, "
                  "oauthbearer or auto (not login)",
                  "t.yaml:5:48: password_file must not be empty");
}

static void
test_move_without_target(void **state)
{
    (void)state;
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: a, match: {from: x}, action: {move: ~}}\n"
                  "  - {name: b, match: {from: x}, action: {move: \"\"}}\n"
                  "  - {name: c, match: {from: x}, action: move}\n"
                  "  - {name: d, match: {from: x}, action: {move: }}\n"
                  "  - {name: e, match: {from: x}, action: archive}\n"
                  "  - {name: f, match: {from: x}, action: {flag: \\Gone}}\n",
                  "t.yaml:4:48: move needs a target mailbox",
                  "t.yaml:5:48: move needs a target mailbox",
                  "t.yaml:6:41: move needs a target mailbox",
                  "t.yaml:7:48: move needs a target mailbox",
                  "t.yaml:8:41: action must be delete, trash, {move: "
                  "MAILBOX} or {flag: FLAGS}",
                  "t.yaml:9:48: unknown system flag \"\\Gone\" (expected "
                  "\\Seen, \\Answered, \\Flagged, \\Deleted, \\Draft or a "
                  "keyword without a backslash)");
}

/* notify, on_rename (also from defaults) and a mailbox's idle */
static void
test_notify_keys(void **state)
{
    struct config_diag d;
    struct config *c = load_ok(
        "defaults: {notify: off, on_rename: follow}\n"
        "accounts:\n"
        "  - name: a\n"
        "    host: h\n"
        "    user: u\n"
        "    password_env: P\n"
        "    notify: on\n"
        "    mailboxes:\n"
        "      - Lists\n"
        "      - {name: inbox}\n"
        "      - {name: Hot, idle: true}\n"
        "      - {name: Cold, idle: false}\n"
        "      - {name: INBOX/x, idle: false}\n"
        "  - {name: b, host: h, user: u, password_env: P,\n"
        "     mailboxes: [{name: INBOX, idle: false}, X]}\n" RULE, &d);
    const struct config_account *a = &c->accounts[0], *b = &c->accounts[1];

    (void)state;
    assert_int_equal(a->notify, CONFIG_NOTIFY_ON);
    assert_int_equal(a->on_rename, CONFIG_ON_RENAME_FOLLOW);
    assert_string_equal(config_notify_name(a->notify), "on");
    assert_int_equal(a->n_mailboxes, 5);
    assert_string_equal(a->mailboxes[1], "INBOX");
    assert_int_equal(a->mailbox_idle[0], CONFIG_IDLE_AUTO);
    assert_int_equal(a->mailbox_idle[1], CONFIG_IDLE_YES);
    assert_int_equal(a->mailbox_idle[2], CONFIG_IDLE_YES);
    assert_int_equal(a->mailbox_idle[3], CONFIG_IDLE_NO);
    assert_int_equal(a->mailbox_idle[4], CONFIG_IDLE_NO);
    assert_int_equal(b->notify, CONFIG_NOTIFY_OFF);
    assert_int_equal(b->mailbox_idle[0], CONFIG_IDLE_NO);
    assert_int_equal(b->mailbox_idle[1], CONFIG_IDLE_AUTO);
    assert_true(config_account_conn_differs(a, b) ||
                a->notify != b->notify);
    config_unref(c);
    config_diag_free(&d);

    EXPECT_ERRORS("defaults: {notify: yes}\n" ACCOUNT RULE,
                  "t.yaml:1:20: notify must be auto, on or off");
    EXPECT_ERRORS("accounts:\n"
                  "  - {name: a, host: h, user: u, password_env: P,\n"
                  "     on_rename: keep, mailboxes: [{idle: true},\n"
                  "     {name: A, idle: maybe}, {name: B, idel: true},\n"
                  "     {name: a, idle: false}, {name: A}]}\n" RULE,
                  "t.yaml:3:17: on_rename must be stop or follow",
                  "t.yaml:3:35: a mailbox given as a mapping needs a name",
                  "t.yaml:4:22: idle must be true or false",
                  "t.yaml:4:40: unknown key \"idel\" in mailbox (did you "
                  "mean \"idle\"?)",
                  "t.yaml:5:37: mailbox \"A\" is listed twice (first at "
                  "4:13)");
    /* a rule's mailboxes are names only */
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: r, match: {from: x}, action: delete,\n"
                  "     mailboxes: [{name: INBOX}]}\n",
                  "t.yaml:5:18: mailbox must be a string, not a mapping");
}

static void
test_port_out_of_range(void **state)
{
    (void)state;
    EXPECT_ERRORS("defaults:\n"
                  "  port: 70000\n"
                  "  max_connections: 0\n" ACCOUNT RULE,
                  "t.yaml:2:9: port 70000 out of range (1-65535)",
                  "t.yaml:3:20: max_connections 0 out of range (1-1000)");
    EXPECT_ERRORS("defaults: {port: imap}\n" ACCOUNT RULE,
                  "t.yaml:1:18: invalid port \"imap\" (expected an integer "
                  "1-65535)");
}

static void
test_tls_no(void **state)
{
    (void)state;
    EXPECT_ERRORS("defaults:\n"
                  "  tls: no\n"
                  "accounts:\n"
                  "  - {name: a, host: h, user: u, password_env: P, "
                  "mailboxes: INBOX, tls: None}\n"
                  "  - {name: b, host: h, user: u, password_env: P, "
                  "mailboxes: INBOX, tls: false}\n" RULE,
                  "t.yaml:2:8: tls must be implicit, starttls or none",
                  "t.yaml:4:73: tls must be implicit, starttls or none",
                  "t.yaml:5:73: tls must be implicit, starttls or none");
}

static void
test_duplicate_key(void **state)
{
    (void)state;
    EXPECT_ERRORS("accounts:\n"
                  "  - name: a\n"
                  "    host: h\n"
                  "    user: u\n"
                  "    host: h2\n"
                  "    password_env: P\n"
                  "    mailboxes: [INBOX, Cron, inbox]\n" RULE
                  "rules: []\n",
                  "t.yaml:5:5: duplicate key \"host\" (first at 3:5)",
                  "t.yaml:7:30: mailbox \"inbox\" is listed twice (first "
                  "at 7:17)",
                  "t.yaml:10:1: duplicate key \"rules\" (first at 8:1)");
}

static void
test_syntax_error(void **state)
{
    char *path = data_path("syntax-error.yaml");
    char *want = xasprintf("%s:4:10: YAML syntax error: mapping values are "
                           "not allowed in this context", path);
    struct config_diag d;
    struct config *c = NULL;

    (void)state;
    config_diag_init(&d);
    assert_int_equal(config_load(path, &c, &d), -EINVAL);
    assert_null(c);
    check_entries(&d, d.errors, d.n_errors, (const char *const[]){want, NULL});
    config_diag_free(&d);
    free(want);
    free(path);
    EXPECT_ERRORS("accounts: [\n",
                  "t.yaml:2:1: YAML syntax error: did not find expected node "
                  "content while parsing a flow node");
    EXPECT_ERRORS("a: \"\\q\"\n",
                  "t.yaml:1:5: YAML syntax error: found unknown escape "
                  "character while parsing a quoted scalar");
}

static void
test_empty_file(void **state)
{
    (void)state;
#define EMPTY                                                                 \
    "t.yaml:1:1: empty configuration: no accounts or rules yet (every key "   \
    "is described in imapsweep.yaml(5) and shown in the commented example)"
    EXPECT_ERRORS("", EMPTY);
    EXPECT_ERRORS("# only a comment\n\n", EMPTY);
    EXPECT_ERRORS("---\n...\n", EMPTY);
#undef EMPTY
    EXPECT_ERRORS("[a, b]\n",
                  "t.yaml:1:1: configuration must be a mapping, not a "
                  "sequence");
    EXPECT_ERRORS("rules: []\n",
                  "t.yaml:1:1: no accounts defined (at least one account is "
                  "required)");
    EXPECT_ERRORS("accounts: []\n",
                  "t.yaml:1:11: at least one account is required");
}

static void
test_two_documents(void **state)
{
    (void)state;
    EXPECT_ERRORS(ACCOUNT RULE "---\n" RULE,
                  "t.yaml:5:1: more than one YAML document (a configuration "
                  "is a single document)");
}

static void
test_unreadable(void **state)
{
    struct config_diag d;
    struct config *c = NULL;

    (void)state;
    config_diag_init(&d);
    assert_int_equal(config_load("/nonexistent/imapsweep.yaml", &c, &d),
                     -EINVAL);
    assert_null(c);
    check_entries(&d, d.errors, d.n_errors,
                  (const char *const[]){"/nonexistent/imapsweep.yaml:1:1: "
                                        "cannot read: No such file or "
                                        "directory", NULL});
    assert_int_equal(d.errors[0].line, 0);
    config_diag_free(&d);

    config_diag_init(&d);
    assert_int_equal(config_load("/", &c, &d), -EINVAL);
    check_entries(&d, d.errors, d.n_errors,
                  (const char *const[]){"/:1:1: cannot read: Is a directory",
                                        NULL});
    config_diag_free(&d);
    /* diag may be NULL */
    assert_int_equal(config_load("/nonexistent", &c, NULL), -EINVAL);
}

/* A FIFO with no writer: opening it for reading would wait for ever, and a
 * reload would stop the event loop with it. Refused at once. */
static void
test_fifo(void **state)
{
    char dir[] = "/tmp/imapsweep-fifo-XXXXXX";
    struct config_diag d;
    struct config *c = NULL;
    char *path, *want;

    (void)state;
    assert_non_null(mkdtemp(dir));
    path = xasprintf("%s/imapsweep.yaml", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    config_diag_init(&d);
    assert_int_equal(config_load(path, &c, &d), -EINVAL);
    assert_null(c);
    want = xasprintf("%s:1:1: cannot read: not a regular file", path);
    check_entries(&d, d.errors, d.n_errors,
                  (const char *const[]){want, NULL});
    config_diag_free(&d);
    unlink(path);
    rmdir(dir);
    free(want);
    free(path);
}

static void
test_alias_bomb(void **state)
{
    char *path = data_path("alias-bomb.yaml");
    char *want = xasprintf("%s:10:11: configuration too complex (aliases "
                           "expand to too many nodes)", path);
    struct config_diag d;
    struct config *c = NULL;

    (void)state;
    config_diag_init(&d);
    assert_int_equal(config_load(path, &c, &d), -EINVAL);
    check_entries(&d, d.errors, d.n_errors, (const char *const[]){want, NULL});
    config_diag_free(&d);
    free(want);
    free(path);
    /* a cycle through an alias ends at the depth limit */
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: r, match: &m {not: *m}, action: delete}\n",
                  "t.yaml:4:26: match nested too deeply (at most 32 levels "
                  "of any/not)");
    EXPECT_ERRORS("accounts: &a [*a]\n" RULE,
                  "t.yaml:1:11: account must be a mapping, not a sequence");
}

static void
test_nul_and_utf8(void **state)
{
    (void)state;
    EXPECT_ERRORS("accounts:\n"
                  "  - {name: a, host: \"h\\0st\", user: u, password_env: P,\n"
                  "     mailboxes: [\"IN\\nBOX\"]}\n"
                  "  - {name: b, host: h, user: u, password_env: P, "
                  "mailboxes: INBOX, \"a\\x00b\": 1}\n"
                  RULE,
                  "t.yaml:2:21: host contains a NUL character",
                  "t.yaml:3:18: mailbox name \"IN\\x0aBOX\" is not valid "
                  "UTF-8 text",
                  "t.yaml:4:68: key contains a NUL character");
    EXPECT_ERRORS("accounts: [\xff]\n",
                  "t.yaml:1:12: YAML syntax error: invalid leading UTF-8 "
                  "octet");
}

static void
test_inline_password_mode(void **state)
{
    static const char yaml[] =
        "accounts:\n"
        "  - name: a\n"
        "    host: h\n"
        "    user: u\n"
        "    password: hunter2\n"
        "    mailboxes: INBOX\n" RULE;
    char path[] = "/tmp/test_config_XXXXXX";
    struct config_diag d;
    struct config *c = NULL;
    char *want;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, sizeof(yaml) - 1),
                     (ssize_t)(sizeof(yaml) - 1));
    close(fd);

    assert_int_equal(chmod(path, 0644), 0);
    config_diag_init(&d);
    assert_int_equal(config_load(path, &c, &d), 0);
    want = xasprintf("%s:5:5: inline password in a file readable by group or "
                     "others (mode 0644): use password_file, "
                     "password_credential or chmod 600", path);
    check_entries(&d, d.warnings, d.n_warnings,
                  (const char *const[]){want, NULL});
    assert_string_equal(c->accounts[0].secret.value, "hunter2");
    config_unref(c);
    config_diag_free(&d);
    free(want);

    assert_int_equal(chmod(path, 0640), 0);
    config_diag_init(&d);
    assert_int_equal(config_load(path, &c, &d), 0);
    assert_int_equal(d.n_warnings, 1);
    config_unref(c);
    config_diag_free(&d);

    assert_int_equal(chmod(path, 0600), 0);
    config_diag_init(&d);
    assert_int_equal(config_load(path, &c, &d), 0);
    assert_int_equal(d.n_warnings, 0);
    config_unref(c);
    config_diag_free(&d);
    unlink(path);
}

static void
test_warnings(void **state)
{
    (void)state;
    expect_diags(ACCOUNT,
                 (const char *const[]){NULL},
                 (const char *const[]){"t.yaml:1:1: no rules defined: "
                                       "nothing will be acted on", NULL});
    expect_diags(ACCOUNT "rules: []\n",
                 (const char *const[]){NULL},
                 (const char *const[]){"t.yaml:3:8: no rules defined: "
                                       "nothing will be acted on", NULL});
    expect_diags(ACCOUNT
                 "rules:\n"
                 "  - {name: r, mailboxes: [INBOX, Lists], match: {from: x},"
                 " action: delete}\n",
                 (const char *const[]){NULL},
                 (const char *const[]){"t.yaml:4:34: rule \"r\" applies to "
                                       "mailbox \"Lists\", which no account "
                                       "using the rule watches", NULL});
}

static void
test_daemon_values(void **state)
{
    struct config_diag d;
    struct config *c = load_ok("daemon:\n"
                               "  control_mode: 0o640\n"
                               "  control_socket: ~\n"
                               "  log_level: trace\n"
                               "  dry_run: ON\n" ACCOUNT RULE, &d);

    (void)state;
    assert_int_equal(c->daemon.control_mode, 0640);
    assert_null(c->daemon.control_socket);
    assert_int_equal(c->daemon.log_level, LL_TRACE);
    assert_true(c->daemon.dry_run);
    config_unref(c);
    config_diag_free(&d);
    EXPECT_ERRORS("daemon:\n"
                  "  control_mode: 0800\n"
                  "  log_level: verbose\n"
                  "  audit: all\n"
                  "  control_socket: /run/imapsweep/a-very-long-directory-"
                  "name/another-very-long-directory-name/and-one-more-"
                  "directory-name-to-pass-the-limit/control.sock\n"
                  ACCOUNT RULE,
                  "t.yaml:2:17: control_mode must be an octal mode such as "
                  "0600 (at most 0777)",
                  "t.yaml:3:14: log_level must be error, warning, notice, "
                  "info, debug or trace",
                  "t.yaml:4:10: audit must be messages or counts",
                  "t.yaml:5:19: control_socket path is too long (133 bytes, "
                  "at most 107)");
}

static void
test_multiple_errors(void **state)
{
    char *path = data_path("many-errors.yaml");
    const char *const want[] = {
        "2:8: tls must be implicit, starttls or none",
        "3:17: invalid duration \"5x\" (expected e.g. 30s, 5m, 2h, 14d)",
        "5:5: account \"work\" has no host",
        "6:5: unknown key \"hots\" in account (did you mean \"host\"?)",
        "9:5: account \"work\" has two secret sources (password_file and "
        "password_env)",
        "11:13: unknown rule \"cron\" (defined rules: noise)",
        "14:12: empty match: give at least one key (all: true matches every "
        "message)",
        "15:20: move needs a target mailbox",
    };
    char *full[ARRAY_SIZE(want) + 1];
    struct config_diag d;
    struct config *c = NULL;

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(want); i++)
        full[i] = xasprintf("%s:%s", path, want[i]);
    full[ARRAY_SIZE(want)] = NULL;
    config_diag_init(&d);
    assert_int_equal(config_load(path, &c, &d), -EINVAL);
    assert_null(c);
    check_entries(&d, d.errors, d.n_errors, (const char *const *)full);
    config_diag_free(&d);
    for (size_t i = 0; i < ARRAY_SIZE(want); i++)
        free(full[i]);
    free(path);
}

static void
test_structure_checks(void **state)
{
    (void)state;
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - name: r\n"
                  "    match: {any: [{all: true}], duplicate: body}\n"
                  "    keep_newest: 2\n"
                  "    action: delete\n",
                  "t.yaml:4:5: keep_newest and duplicate cannot be combined "
                  "in one rule",
                  "t.yaml:5:20: all: is only allowed at the top level of "
                  "match");
    EXPECT_ERRORS(ACCOUNT
                  "rules:\n"
                  "  - {name: r, match: {all: false}, action: delete}\n"
                  "  - {name: s, match: {header: {}}, action: delete}\n",
                  "t.yaml:4:28: all must be true (remove the key otherwise)",
                  "t.yaml:5:31: header needs at least one \"Name: value\" "
                  "entry");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_file),
        cmocka_unit_test(test_builtin_defaults),
        cmocka_unit_test(test_yes_stays_string),
        cmocka_unit_test(test_conn_differs),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_bad_duration),
        cmocka_unit_test(test_bad_size),
        cmocka_unit_test(test_bad_regex),
        cmocka_unit_test(test_regex_limits),
        cmocka_unit_test(test_bad_digest),
        cmocka_unit_test(test_empty_match),
        cmocka_unit_test(test_duplicate_rule),
        cmocka_unit_test(test_duplicate_account),
        cmocka_unit_test(test_unknown_rule),
        cmocka_unit_test(test_missing_secret),
        cmocka_unit_test(test_two_secrets),
        cmocka_unit_test(test_secret_values),
        cmocka_unit_test(test_move_without_target),
        cmocka_unit_test(test_port_out_of_range),
        cmocka_unit_test(test_tls_no),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_two_documents),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test(test_nul_and_utf8),
        cmocka_unit_test(test_inline_password_mode),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_daemon_values),
        cmocka_unit_test(test_multiple_errors),
        cmocka_unit_test(test_structure_checks),
        cmocka_unit_test(test_notify_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
