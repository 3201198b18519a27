/* SPDX-License-Identifier: MIT */
/* Rule compilation: rule YAML in, exact SEARCH text out; and client-side
 * evaluation of what SEARCH cannot decide. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "imap_build.h"
#include "rule.h"
#include "util.h"

/* 2026-11-20T12:00:00Z */
#define NOW ((time_t)1795176000)

static struct config *
load_rule(const char *match_yaml, const char *extra)
{
    struct config_diag diag;
    struct config *c = NULL;
    char *yaml = xasprintf(
        "accounts:\n"
        "  - {name: a, host: h, user: u, password: p, mailboxes: [INBOX]}\n"
        "rules:\n"
        "  - name: r\n"
        "    match: %s\n"
        "    action: %s\n",
        match_yaml, extra ? extra : "delete");

    config_diag_init(&diag);
    if (config_load_buffer("t.yaml", yaml, strlen(yaml), &c, &diag) < 0) {
        for (size_t i = 0; i < diag.n_errors; i++) {
            char *e = config_diag_format(&diag.errors[i]);

            fprintf(stderr, "%s\n", e);
            free(e);
        }
        fail_msg("rule did not load: %s", match_yaml);
    }
    config_diag_free(&diag);
    free(yaml);
    return c;
}

static char *
search_text(const struct rule_plan *p, uint32_t lo, bool es, unsigned flags)
{
    struct imap_build *b = imap_build_new(flags);
    struct buf out;

    imap_build_atom(b, "UID");
    imap_build_atom(b, "SEARCH");
    rule_plan_build_search(p, b, lo, es);
    buf_init(&out, BUF_NOCAP);
    imap_build_render(b, &out);
    imap_build_free(b);
    return buf_steal(&out);
}

struct case_ {
    const char *match;
    bool within;
    const char *want;
    bool client;
};

static void
test_search_table(void **state)
{
    static const struct case_ cases[] = {
        {"{from: \"Cron Daemon\"}", true, "UID SEARCH FROM \"Cron Daemon\"",
         false},
        {"{from: cron, subject: backup}", true,
         "UID SEARCH FROM \"cron\" SUBJECT \"backup\"", false},
        {"{to: a, cc: b, bcc: c, body: d, text: e}", true,
         "UID SEARCH TO \"a\" CC \"b\" BCC \"c\" BODY \"d\" TEXT \"e\"",
         false},
        {"{any: [{subject: \"Read:\"}, {header: {X-Auto-Response: yes}}]}",
         true,
         "UID SEARCH OR SUBJECT \"Read:\" HEADER X-Auto-Response \"yes\"",
         false},
        {"{any: [{from: a}, {from: b}, {from: c}]}", true,
         "UID SEARCH OR FROM \"a\" OR FROM \"b\" FROM \"c\"", false},
        {"{any: [{from: a, to: b}, {from: c}]}", true,
         "UID SEARCH OR (FROM \"a\" TO \"b\") FROM \"c\"", false},
        {"{not: {from: boss}}", true, "UID SEARCH NOT FROM \"boss\"", false},
        {"{not: {from: a, to: b}}", true,
         "UID SEARCH NOT (FROM \"a\" TO \"b\")", false},
        {"{older_than: 14d}", true, "UID SEARCH OLDER 1209600", false},
        {"{newer_than: 1h}", true, "UID SEARCH YOUNGER 3600", false},
        /* without WITHIN: a date that over-approximates, refined later */
        {"{older_than: 14d}", false, "UID SEARCH BEFORE 8-Nov-2026", true},
        {"{newer_than: 1h}", false, "UID SEARCH SINCE 18-Nov-2026", true},
        {"{larger_than: 10k, smaller_than: 1M}", true,
         "UID SEARCH LARGER 10240 SMALLER 1048576", false},
        {"{seen: false, flagged: true, answered: no, draft: yes}", true,
         "UID SEARCH UNSEEN FLAGGED UNANSWERED DRAFT", false},
        {"{all: true}", true, "UID SEARCH ALL", false},
        /* an empty header value: the field exists */
        {"{header: {X-Spam-Flag: \"\"}}", true,
         "UID SEARCH HEADER X-Spam-Flag \"\"", false},
        {"{from: 'he said \"hi\" \\ ok'}", true,
         "UID SEARCH FROM \"he said \\\"hi\\\" \\\\ ok\"", false},
        {"{subject: \"caf\xc3\xa9\"}", true,
         "UID SEARCH CHARSET UTF-8 SUBJECT {5}\r\ncaf\xc3\xa9", false},
        /* client-side keys do not narrow the search */
        {"{subject_regex: \"^Backup\"}", true, "UID SEARCH ALL", true},
        {"{subject: x, body_md5: 9e107d9d372bb6826bd81d3542a419d6}", true,
         "UID SEARCH SUBJECT \"x\"", true},
        {"{not: {subject_regex: x}}", true, "UID SEARCH ALL", true},
        {"{from: a, not: {subject_regex: x}}", true, "UID SEARCH FROM \"a\"",
         true},
        {"{any: [{subject_regex: a}, {from: b}]}", true, "UID SEARCH ALL",
         true},
        {"{subject: r, duplicate: message_id}", true,
         "UID SEARCH SUBJECT \"r\"", true},
        {"{any: [{from: a}, {not: {older_than: 1d}}]}", false,
         "UID SEARCH ALL", true},
    };
    struct rule_caps caps;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *c = load_rule(cases[i].match, NULL);
        struct rule_plan *p;
        char *got;

        caps.within = cases[i].within;
        p = rule_plan_new(c->rules[0], &caps, NOW);
        got = search_text(p, 0, false, 0);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i].match, got,
                     cases[i].want);
        assert_int_equal(rule_plan_client_side(p), cases[i].client);
        free(got);
        rule_plan_free(p);
        config_unref(c);
    }
}

static void
test_range_esearch_literal_plus(void **state)
{
    struct config *c = load_rule("{from: \"Cron Daemon\"}", NULL);
    struct rule_caps caps = {.within = true};
    struct rule_plan *p = rule_plan_new(c->rules[0], &caps, NOW);
    char *got;

    (void)state;
    got = search_text(p, 10, false, 0);
    assert_string_equal(got, "UID SEARCH UID 10:* FROM \"Cron Daemon\"");
    free(got);
    got = search_text(p, 7, true, 0);
    assert_string_equal(got, "UID SEARCH RETURN (ALL) UID 7:* FROM "
                             "\"Cron Daemon\"");
    free(got);
    rule_plan_free(p);
    config_unref(c);

    c = load_rule("{all: true}", NULL);
    p = rule_plan_new(c->rules[0], &caps, NOW);
    got = search_text(p, 5, true, 0);
    /* the range alone selects */
    assert_string_equal(got, "UID SEARCH RETURN (ALL) UID 5:*");
    free(got);
    rule_plan_free(p);
    config_unref(c);

    c = load_rule("{subject: \"caf\xc3\xa9\"}", NULL);
    p = rule_plan_new(c->rules[0], &caps, NOW);
    got = search_text(p, 1, true, IMAP_BUILD_LITERAL_PLUS);
    assert_string_equal(got, "UID SEARCH RETURN (ALL) CHARSET UTF-8 UID 1:* "
                             "SUBJECT {5+}\r\ncaf\xc3\xa9");
    free(got);
    rule_plan_free(p);
    config_unref(c);
}

static void
test_aux_searches(void **state)
{
    struct config *c = load_rule(
        "{any: [{subject_regex: \"^R\"}, {from: b, to: c}, {not: {cc: d}}]}",
        NULL);
    struct rule_caps caps = {.within = true};
    struct rule_plan *p = rule_plan_new(c->rules[0], &caps, NOW);
    struct uidset cands;
    struct imap_build *b;
    struct buf out;

    (void)state;
    uidset_init(&cands);
    uidset_add_range(&cands, 1, 5);
    assert_int_equal(rule_plan_aux_count(p), 2);
    buf_init(&out, BUF_NOCAP);
    b = imap_build_new(0);
    rule_plan_build_aux(p, 0, b, &cands, true);
    imap_build_render(b, &out);
    assert_string_equal(buf_cstr(&out),
                        "RETURN (ALL) UID 1:5 FROM \"b\" TO \"c\"");
    imap_build_free(b);
    buf_reset(&out);
    b = imap_build_new(0);
    rule_plan_build_aux(p, 1, b, &cands, false);
    imap_build_render(b, &out);
    assert_string_equal(buf_cstr(&out), "UID 1:5 NOT CC \"d\"");
    imap_build_free(b);
    buf_free(&out);
    uidset_free(&cands);
    rule_plan_free(p);
    config_unref(c);
}

static void
test_needs_and_headers(void **state)
{
    struct config *c = load_rule(
        "{subject_regex: a, from_regex: b, header_regex: {X-Foo: c},"
        " duplicate: message_id}", NULL);
    struct rule_caps caps = {.within = true};
    struct rule_plan *p = rule_plan_new(c->rules[0], &caps, NOW);
    const char *const *h;
    size_t n;

    (void)state;
    assert_int_equal(rule_plan_needs(p), RULE_NEED_HEADERS);
    h = rule_plan_headers(p, &n);
    assert_int_equal(n, 4);
    assert_string_equal(h[0], "Subject");
    assert_string_equal(h[1], "From");
    assert_string_equal(h[2], "X-Foo");
    assert_string_equal(h[3], "Message-ID");
    assert_int_equal(rule_plan_duplicate(p), RULE_DUP_MESSAGE_ID);
    rule_plan_free(p);
    config_unref(c);

    c = load_rule("{duplicate: body}", NULL);
    p = rule_plan_new(c->rules[0], &caps, NOW);
    assert_int_equal(rule_plan_needs(p), RULE_NEED_SHA256);
    rule_plan_free(p);
    config_unref(c);

    /* a pure server rule needs nothing */
    c = load_rule("{from: x}", NULL);
    p = rule_plan_new(c->rules[0], &caps, NOW);
    assert_int_equal(rule_plan_needs(p), 0);
    assert_false(rule_plan_client_side(p));
    rule_plan_free(p);
    config_unref(c);
}

static void
test_eval(void **state)
{
    struct config *c = load_rule(
        "{any: [{subject_regex: \"^nightly backup (ok|done)$\"},"
        " {from: boss}], not: {body_md5: 9e107d9d372bb6826bd81d3542a419d6}}",
        NULL);
    struct rule_caps caps = {.within = true};
    struct rule_plan *p = rule_plan_new(c->rules[0], &caps, NOW);
    struct rule_header h[] = {{"Subject", "Nightly Backup OK"},
                              {"From", "x"}};
    struct rule_msg m = {.uid = 3, .headers = h, .n_headers = 2,
                         .has_md5 = true};
    struct uidset aux[1];

    (void)state;
    uidset_init(&aux[0]);
    assert_int_equal(rule_plan_aux_count(p), 1);
    /* case-insensitive regex on the decoded subject; md5 differs */
    assert_true(rule_plan_eval(p, &m, aux));
    /* the body's digest matches: not() fails */
    memcpy(m.md5, "\x9e\x10\x7d\x9d\x37\x2b\xb6\x82\x6b\xd8\x1d\x35\x42\xa4"
                  "\x19\xd6", 16);
    assert_false(rule_plan_eval(p, &m, aux));
    memset(m.md5, 0, 16);
    /* subject does not match, but the aux search says "from boss" */
    h[0].value = "Nightly backup failed";
    assert_false(rule_plan_eval(p, &m, aux));
    uidset_add(&aux[0], 3);
    assert_true(rule_plan_eval(p, &m, aux));
    /* without the body there is no evidence: never a match, even under not */
    m.has_md5 = false;
    assert_false(rule_plan_eval(p, &m, aux));
    uidset_free(&aux[0]);
    rule_plan_free(p);
    config_unref(c);

    /* dates without WITHIN are decided on INTERNALDATE, to the second */
    c = load_rule("{older_than: 1d}", NULL);
    caps.within = false;
    p = rule_plan_new(c->rules[0], &caps, NOW);
    memset(&m, 0, sizeof(m));
    m.has_internaldate = true;
    m.internaldate = NOW - 86400 - 1;
    assert_true(rule_plan_eval(p, &m, NULL));
    m.internaldate = NOW - 86400 + 1;
    assert_false(rule_plan_eval(p, &m, NULL));
    m.has_internaldate = false;
    assert_false(rule_plan_eval(p, &m, NULL));
    rule_plan_free(p);
    config_unref(c);
}

/* Perl syntax as users of every peer write it (PCRE2): \d, (?i), Unicode
 * letters in decoded headers; bytes that are not UTF-8 are no error; a
 * pattern that backtracks without end gives no answer instead of hanging. */
static int
match(const char *pattern, const char *text)
{
    struct rule_node *n = rule_node_new(RULE_SUBJECT_REGEX, 1, 1);
    char *err = NULL;
    int r;

    if (rule_node_set_regex(n, pattern, &err) < 0)
        fail_msg("%s: %s", pattern, err);
    r = rule_regex_match(n->re, text, strlen(text));
    rule_node_free(n);
    return r;
}

static void
test_regex_perl_syntax(void **state)
{
    char bomb[64];
    struct config *c;
    struct rule_caps caps = {.within = true};
    struct rule_plan *p;
    struct rule_header h[] = {{"Subject", bomb}, {"From", "cron@h"}};
    struct rule_msg m = {.uid = 1, .headers = h, .n_headers = 2};

    (void)state;
    /* under POSIX ERE \d compiled and silently matched nothing */
    assert_int_equal(match("\\d+ errors", "backup: 3 errors"), 1);
    assert_int_equal(match("\\d+ errors", "backup: no errors"), 0);
    assert_int_equal(match("(?i)^re: \\[ticket #\\d{4,}\\]", "RE: [Ticket "
                           "#12345] x"), 1);
    assert_int_equal(match("(?-i)^Backup", "backup done"), 0);
    /* case-insensitive everywhere, Unicode letters included */
    assert_int_equal(match("^über \\w+ ok$", "ÜBER sicherung OK"), 1);
    assert_int_equal(match("^\\w{5}$", "Ärger"), 1);
    assert_int_equal(match("(?<!no )errors", "no errors"), 0);
    /* a header that is not valid UTF-8 is matched where it can be */
    assert_int_equal(match("backup", "\xff\xfe backup \xc3"), 1);
    assert_int_equal(match("^backup", "\xff" "backup"), 0);
    assert_int_equal(match(".", "\xff"), 0);
    /* catastrophic backtracking ends at PCRE2's limits: no answer */
    memset(bomb, 'a', 40);
    memcpy(bomb + 40, "!", 2);
    assert_int_equal(match("^(a+)+$", bomb), -1);

    /* no answer is never a match, not even under not: */
    c = load_rule("{from: cron, not: {subject_regex: \"^(a+)+$\"}}", NULL);
    p = rule_plan_new(c->rules[0], &caps, NOW);
    assert_false(rule_plan_eval(p, &m, NULL));
    h[0].value = "aaaa!";
    assert_true(rule_plan_eval(p, &m, NULL));
    h[0].value = "aaaa";
    assert_false(rule_plan_eval(p, &m, NULL));
    rule_plan_free(p);
    config_unref(c);
}

static void
test_flag_filter_and_canonical(void **state)
{
    struct config *c = load_rule("{from: x}", "{flag: [\"\\\\Seen\", $Done]}");
    struct config *c2 = load_rule("{from: x}", "{flag: [\"\\\\Seen\", $Done]}");
    struct config *c3 = load_rule("{from: y}", "{flag: [\"\\\\Seen\", $Done]}");
    struct imap_build *b = imap_build_new(0);
    struct buf out;
    char *a, *a2, *a3;

    (void)state;
    rule_build_flag_filter(c->rules[0], b);
    buf_init(&out, BUF_NOCAP);
    imap_build_render(b, &out);
    assert_string_equal(buf_cstr(&out), "OR UNSEEN UNKEYWORD $Done");
    buf_free(&out);
    imap_build_free(b);
    a = rule_canonical(c->rules[0]);
    a2 = rule_canonical(c2->rules[0]);
    a3 = rule_canonical(c3->rules[0]);
    assert_string_equal(a, a2);
    assert_string_not_equal(a, a3);
    free(a);
    free(a2);
    free(a3);
    config_unref(c);
    config_unref(c2);
    config_unref(c3);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_table),
        cmocka_unit_test(test_range_esearch_literal_plus),
        cmocka_unit_test(test_aux_searches),
        cmocka_unit_test(test_needs_and_headers),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_regex_perl_syntax),
        cmocka_unit_test(test_flag_filter_and_canonical),
    };

    setenv("TZ", "UTC", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
