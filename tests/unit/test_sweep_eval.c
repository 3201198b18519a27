/* SPDX-License-Identifier: MIT */
/* The sweep's pure evaluation: which UIDs each rule acts on, from rules
 * compiled by the config loader, hand-made SEARCH results (found, aux,
 * lacking) and fetched records (headers, body digests). Every case asserts
 * each rule's exact final set and match count. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/sweep/sweep_private.h"
#include "buf.h"
#include "config.h"
#include "digest.h"
#include "mime.h"
#include "uidset.h"
#include "util.h"

/* 2026-11-20T12:00:00Z */
#define NOW ((time_t)1795176000)
#define MAX_RULES 4
#define MAX_MSGS 12

/* One fetched message. */
struct msg_spec {
    uint32_t uid;               /* 0 ends the list */
    const char *headers;        /* header block as fetched; NULL: no answer */
    const char *body;           /* body text digested; NULL: no digest */
};

struct eval_case {
    const char *name;
    const char *rules;          /* YAML items of the rules: list */
    uint32_t lo, top;
    /* per rule, as the server answered (NULL: empty) */
    const char *found[MAX_RULES];
    const char *aux[MAX_RULES];     /* the rule's first auxiliary SEARCH */
    const char *lacking[MAX_RULES];
    struct msg_spec msgs[MAX_MSGS];
    /* per rule */
    const char *want[MAX_RULES];    /* final ("" or NULL: nothing) */
    uint64_t matched[MAX_RULES];
};

#define FLAGGED "action: {flag: '\\Flagged'}"
#define SEEN "action: {flag: '\\Seen'}"

static const struct eval_case cases[] = {
    {
        "first match wins across rules; a client-side rule claims only "
        "what it matched",
        "  - {name: r1, match: {from: boss}, action: delete}\n"
        "  - {name: r2, match: {subject_regex: '^drop'}, action: delete}\n"
        "  - {name: r3, match: {all: true}, action: delete}\n",
        1, 6,
        {"2,4", "1:6", "1:6"},
        {NULL},
        {NULL},
        {{1, "Subject: drop 1\r\n", NULL},
         {2, "Subject: drop 2\r\n", NULL},
         {3, "Subject: keep 3\r\n", NULL},
         {4, "Subject: drop 4\r\n", NULL},
         {5, "Subject: drop 5\r\n", NULL},
         {6, NULL, NULL}},
        {"2,4", "1,5", "3,6"},
        {2, 2, 2},
    },
    {
        "a keep_newest survivor is claimed: a later rule never gets it",
        "  - {name: r1, match: {subject: report}, action: delete,"
        " keep_newest: 2}\n"
        "  - {name: r2, match: {all: true}, " FLAGGED "}\n",
        1, 6,
        {"1:4", "1:6"},
        {NULL},
        {NULL, "1:6"},
        {{0}},
        {"1:2", "5:6"},
        {2, 2},
    },
    {
        "a dry run claims what it previews",
        "  - {name: r1, match: {from: boss}, action: delete,"
        " dry_run: true}\n"
        "  - {name: r2, match: {all: true}, action: delete}\n",
        1, 4,
        {"1,3", "1:4"},
        {NULL},
        {NULL},
        {{0}},
        {"1,3", "2,4"},
        {2, 2},
    },
    {
        "keep_newest keeps the N highest UIDs, splitting a range",
        "  - {name: r1, match: {all: true}, action: delete,"
        " keep_newest: 3}\n",
        1, 20,
        {"1:5,9:12,20"},
        {NULL},
        {NULL},
        {{0}},
        {"1:5,9:10"},
        {7},
    },
    {
        "keep_newest with no more matches than it keeps acts on nothing",
        "  - {name: r1, match: {all: true}, action: delete,"
        " keep_newest: 5}\n",
        1, 9,
        {"2,4:5,9"},
        {NULL},
        {NULL},
        {{0}},
        {""},
        {0},
    },
    {
        "duplicates by body keep the oldest copy; no digest, no duplicate",
        "  - {name: r1, match: {duplicate: body}, action: delete}\n",
        1, 8,
        {"1:8"},
        {NULL},
        {NULL},
        {{1, NULL, "a\r\n"},
         {2, NULL, "b\r\n"},
         {3, NULL, "a\r\n"},
         {4, NULL, "a\r\n"},
         {5, NULL, NULL},
         {6, NULL, NULL},
         {7, NULL, "b\r\n"},
         {8, NULL, "c\r\n"}},
        {"3:4,7"},
        {3},
    },
    {
        /* no keys at all: nothing to sort (qsort(NULL, 0) was undefined
         * behaviour, caught by UBSan under make unit-san) */
        "a duplicate rule over messages with no digest finds nothing",
        "  - {name: r1, match: {duplicate: body}, action: delete}\n",
        1, 3,
        {"1:3"},
        {NULL},
        {NULL},
        {{1, NULL, NULL},
         {2, NULL, NULL},
         {3, NULL, NULL}},
        {""},
        {0},
    },
    {
        "duplicates are looked for among what earlier rules left",
        "  - {name: r1, match: {from: boss}, action: delete}\n"
        "  - {name: r2, match: {duplicate: body}, action: delete}\n",
        1, 8,
        {"1", "1:8"},
        {NULL},
        {NULL},
        {{1, NULL, "a\r\n"},
         {2, NULL, "b\r\n"},
         {3, NULL, "a\r\n"},
         {4, NULL, "a\r\n"},
         {7, NULL, "b\r\n"}},
        {"1", "4,7"},
        {1, 2},
    },
    {
        "duplicates by Message-ID keep the oldest copy; none or an empty "
        "one is never a duplicate",
        "  - {name: r1, match: {duplicate: message_id}, action: delete}\n",
        1, 10,
        {"1:10"},
        {NULL},
        {NULL},
        {{1, "Message-ID: <a@x>\r\n", NULL},
         {2, "Message-ID: <b@x>\r\n", NULL},
         {3, "Message-ID: <a@x>\r\n", NULL},
         {4, "Subject: no id\r\n", NULL},
         {5, "Subject: no id\r\n", NULL},
         {6, "Message-ID:\r\n", NULL},
         {7, "Message-ID:\r\n", NULL},
         {8, "Message-ID: <b@x>\r\n", NULL},
         {9, NULL, NULL},
         {10, "message-id: <a@x>\r\n", NULL}},
        {"3,8,10"},
        {3},
    },
    {
        "incremental: the rules before a keep_newest rule claim over the "
        "whole mailbox but act within [lo, top]; it acts on old mail too",
        "  - {name: r1, match: {from: boss}, " FLAGGED "}\n"
        "  - {name: r2, match: {subject: spam}, action: delete,"
        " keep_newest: 2}\n"
        "  - {name: r3, match: {from: x}, action: delete}\n",
        6, 8,
        {"1,6,9", "1:4,6:7,9", "8:9"},
        {NULL},
        {"1,6,9"},
        {{0}},
        {"6", "2:3", "8"},
        {2, 2, 1},
    },
    {
        "incremental: the same for a duplicate rule",
        "  - {name: r1, match: {from: boss}, action: delete}\n"
        "  - {name: r2, match: {duplicate: message_id}, action: delete}\n",
        5, 6,
        {"1,5", "1:6"},
        {NULL},
        {NULL},
        {{1, "Message-ID: <c@x>\r\n", NULL},
         {2, "Message-ID: <c@x>\r\n", NULL},
         {3, "Message-ID: <c@x>\r\n", NULL},
         {4, "Message-ID: <b@x>\r\n", NULL},
         {5, "Message-ID: <a@x>\r\n", NULL},
         {6, "Message-ID: <b@x>\r\n", NULL}},
        {"5", "3,6"},
        {2, 2},
    },
    {
        "nothing above the top, nor below lo for an ordinary rule",
        "  - {name: r1, match: {from: x}, action: delete}\n",
        3, 6,
        {"1,3:9"},
        {NULL},
        {NULL},
        {{0}},
        {"3:6"},
        {4},
    },
    {
        "a flag rule acts only on the matches lacking its flag, and "
        "claims them all",
        "  - {name: r1, match: {from: boss}, " SEEN "}\n"
        "  - {name: r2, match: {all: true}, action: delete}\n",
        1, 5,
        {"1:4", "1:5"},
        {NULL},
        {"2,4,7"},
        {{0}},
        {"2,4", "5"},
        {4, 1},
    },
    {
        "a dry flag rule previews every match (no lacking search)",
        "  - {name: r1, match: {from: boss}, " SEEN ", dry_run: true}\n"
        "  - {name: r2, match: {all: true}, action: delete}\n",
        1, 5,
        {"1:4", "1:5"},
        {NULL},
        {NULL},
        {{0}},
        {"1:4", "5"},
        {4, 1},
    },
    {
        "client-side keys without header data give no match",
        "  - {name: r1, match: {not: {subject_regex: '^keep'}},"
        " action: delete}\n"
        "  - {name: r2, match: {all: true}, action: delete}\n",
        1, 4,
        {"1:4", "1:4"},
        {NULL},
        {NULL},
        {{1, "Subject: keep me\r\n", NULL},
         {2, "Subject: drop me\r\n", NULL},
         {3, NULL, NULL}},
        {"2", "1,3:4"},
        {1, 3},
    },
    {
        "server keys beside client keys come from the auxiliary search",
        "  - {name: r1, match: {any: [{subject_regex: '^a'},"
        " {from: boss}]}, action: delete}\n",
        1, 4,
        {"1:4"},
        {"3:4"},
        {NULL},
        {{1, "Subject: a1\r\n", NULL},
         {2, "Subject: b2\r\n", NULL},
         {3, "Subject: c3\r\n", NULL},
         {4, NULL, NULL}},
        {"1,3"},
        {2},
    },
};

static struct config *
load_rules(const char *rules_yaml)
{
    struct config_diag diag;
    struct config *c = NULL;
    char *yaml = xasprintf(
        "accounts:\n"
        "  - {name: a, host: h, user: u, password: p, mailboxes: [INBOX]}\n"
        "rules:\n%s",
        rules_yaml);

    config_diag_init(&diag);
    if (config_load_buffer("t.yaml", yaml, strlen(yaml), &c, &diag) < 0) {
        for (size_t i = 0; i < diag.n_errors; i++) {
            char *e = config_diag_format(&diag.errors[i]);

            fprintf(stderr, "%s\n", e);
            free(e);
        }
        fail_msg("rules did not load:\n%s", rules_yaml);
    }
    config_diag_free(&diag);
    free(yaml);
    return c;
}

static struct sweep_rule *
rules_new(const struct config *c, bool force_dry, bool default_dry)
{
    struct rule_caps caps = {.within = true};

    return sweep_rules_new((const struct rule *const *)c->rules, c->n_rules,
                           &caps, NOW, force_dry, default_dry);
}

static void
set_parse(struct uidset *s, const char *text)
{
    if (text == NULL)
        return;
    if (uidset_parse(s, text, strlen(text)) < 0)
        fail_msg("bad UID set in a case: %s", text);
}

static char *
set_text(const struct uidset *s)
{
    struct buf b;

    buf_init(&b, BUF_NOCAP);
    uidset_format(s, &b);
    return buf_steal(&b);
}

/* A record for each message, as the fetches would leave it. */
static void
store_fill(struct sweep_store *st, const struct msg_spec *msgs)
{
    for (size_t i = 0; i < MAX_MSGS && msgs[i].uid != 0; i++) {
        const struct msg_spec *ms = &msgs[i];
        struct uidset one;
        struct sweep_msg *m;

        uidset_init(&one);
        uidset_add(&one, ms->uid);
        assert_int_equal(sweep_store_add(st, &one, MAX_MSGS), 0);
        uidset_free(&one);
        m = sweep_store_find(st, ms->uid);
        assert_non_null(m);
        if (ms->headers != NULL) {
            mime_fields_parse(ms->headers, strlen(ms->headers),
                              &m->headers);
            m->has_headers = true;
        }
        if (ms->body != NULL) {
            struct digest *d = digest_new(true, true);

            digest_update(d, ms->body, strlen(ms->body));
            digest_final(d, m->md5, m->sha256);
            digest_free(d);
            m->has_md5 = true;
            m->has_sha256 = true;
        }
    }
}

static void
run_case(const struct eval_case *tc)
{
    struct config *c = load_rules(tc->rules);
    struct sweep_rule *rules;
    struct sweep_store st;
    size_t n = c->n_rules;

    assert_true(n <= MAX_RULES);
    rules = rules_new(c, false, false);
    memset(&st, 0, sizeof(st));
    for (size_t i = 0; i < n; i++) {
        set_parse(&rules[i].found, tc->found[i]);
        set_parse(&rules[i].lacking, tc->lacking[i]);
        if (tc->aux[i] != NULL) {
            if (rules[i].aux == NULL)
                fail_msg("%s: rule %zu has no auxiliary search", tc->name,
                         i + 1);
            set_parse(&rules[i].aux[0], tc->aux[i]);
        }
    }
    store_fill(&st, tc->msgs);

    /* as the sweep does: clip where the searches arrive, then evaluate */
    sweep_eval_clip_found(rules, n, tc->lo, tc->top);
    sweep_eval_rules(rules, n, &st, tc->lo, tc->top);

    for (size_t i = 0; i < n; i++) {
        char *got = set_text(&rules[i].final);
        const char *want = tc->want[i] ? tc->want[i] : "";

        if (strcmp(got, want) != 0)
            fail_msg("%s: rule %zu acts on \"%s\", want \"%s\"", tc->name,
                     i + 1, got, want);
        if (rules[i].stat.matched != tc->matched[i])
            fail_msg("%s: rule %zu matched %llu, want %llu", tc->name,
                     i + 1, (unsigned long long)rules[i].stat.matched,
                     (unsigned long long)tc->matched[i]);
        free(got);
    }
    sweep_rules_free(rules, n);
    sweep_store_free(&st);
    config_unref(c);
}

static void
test_eval_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        run_case(&cases[i]);
}

/* The marks evaluation relies on: global rules (keep_newest, duplicate),
 * claim_all on the others before the last global one, and dry runs. */
static void
test_rules_new_marks(void **state)
{
    static const char *const yaml =
        "  - {name: r1, match: {from: a}, action: delete, dry_run: true}\n"
        "  - {name: r2, match: {from: b}, action: delete, keep_newest: 1,"
        " dry_run: false}\n"
        "  - {name: r3, match: {from: c}, action: delete}\n"
        "  - {name: r4, match: {duplicate: body}, action: delete}\n"
        "  - {name: r5, match: {from: e}, action: delete}\n";
    static const struct {
        bool force_dry, default_dry;
        const char *dry;        /* per rule: 1 dry, 0 not */
    } dry_cases[] = {
        {false, false, "10000"},
        {false, true, "10111"},
        {true, false, "11111"},
    };
    struct config *c = load_rules(yaml);

    (void)state;
    assert_int_equal(c->n_rules, 5);
    for (size_t k = 0; k < ARRAY_SIZE(dry_cases); k++) {
        struct sweep_rule *rules = rules_new(c, dry_cases[k].force_dry,
                                             dry_cases[k].default_dry);

        for (size_t i = 0; i < 5; i++) {
            assert_int_equal(rules[i].dry, dry_cases[k].dry[i] == '1');
            assert_int_equal(rules[i].stat.dry, rules[i].dry);
        }
        assert_false(rules[0].global);
        assert_true(rules[1].global);
        assert_false(rules[2].global);
        assert_true(rules[3].global);
        assert_false(rules[4].global);
        assert_true(rules[0].claim_all);
        assert_false(rules[1].claim_all);
        assert_true(rules[2].claim_all);
        assert_false(rules[3].claim_all);
        assert_false(rules[4].claim_all);
        assert_string_equal(rules[2].stat.rule, "r3");
        sweep_rules_free(rules, c->n_rules);
    }
    config_unref(c);
}

/* The store: records kept sorted whatever the order they are added in,
 * added once, found by UID. */
static void
test_store(void **state)
{
    struct sweep_store st;
    struct uidset s;

    (void)state;
    memset(&st, 0, sizeof(st));
    assert_null(sweep_store_find(&st, 1));
    uidset_init(&s);
    set_parse(&s, "7:9");
    assert_int_equal(sweep_store_add(&st, &s, 100), 0);
    sweep_store_find(&st, 8)->has_headers = true;
    set_parse(&s, "2,8,12");
    assert_int_equal(sweep_store_add(&st, &s, 100), 0);
    assert_int_equal(st.n, 5);
    for (size_t i = 1; i < st.n; i++)
        assert_true(st.msgs[i - 1].uid < st.msgs[i].uid);
    assert_true(sweep_store_find(&st, 8)->has_headers);
    assert_int_equal(sweep_store_find(&st, 12)->uid, 12);
    assert_null(sweep_store_find(&st, 10));
    sweep_store_free(&st);

    /* issue 12, defect 4: the records {5, 10} and the set 1:12 make 12
     * records, once each (the search must not look into the unsorted
     * tail it appends to: it made 14) */
    set_parse(&s, "5,10");
    assert_int_equal(sweep_store_add(&st, &s, 100), 0);
    sweep_store_find(&st, 10)->has_md5 = true;
    set_parse(&s, "1:12");
    assert_int_equal(sweep_store_add(&st, &s, 100), 0);
    assert_int_equal(st.n, 12);
    for (size_t i = 0; i < st.n; i++)
        assert_int_equal(st.msgs[i].uid, i + 1);
    assert_true(sweep_store_find(&st, 10)->has_md5);
    /* more records than the mailbox can hold: refused, nothing added */
    set_parse(&s, "20:30");
    assert_int_equal(sweep_store_add(&st, &s, 20), -E2BIG);
    assert_int_equal(st.n, 12);
    set_parse(&s, "1:100000000");
    assert_int_equal(sweep_store_add(&st, &s, 1000), -E2BIG);
    assert_int_equal(st.n, 12);
    uidset_free(&s);
    sweep_store_free(&st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_table),
        cmocka_unit_test(test_rules_new_marks),
        cmocka_unit_test(test_store),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
