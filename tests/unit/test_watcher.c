/* SPDX-License-Identifier: MIT */
/* Transcript tests of a dedicated watcher over the test library's scripted
 * server: the exact commands its connection sends when it is stopped in
 * each phase (connecting, logging in, selecting, each phase of a sweep,
 * idle, backoff), when a reload changes its rules in each phase of a
 * sweep, when a reload swaps its configuration while it is still
 * connecting, and when the server says BYE in the middle of a fetch.
 * Every case asserts that no action named a UID outside what the rule
 * matched (and none at all once it should have stopped), and runs under
 * ASan in `make unit-san`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"
#include "log.h"
#include "transcript.h"
#include "util.h"
#include "watcher.h"
#include "world.h"

#define CAPS "IMAP4rev1 IDLE UIDPLUS ESEARCH"

#define DEFAULTS                                                             \
    "defaults: {tls: none, port: 143, command_timeout: 5s,"                  \
    " full_sweep_interval: 1h, reconnect_min: 1s, reconnect_max: 2s}\n"
#define ACCOUNT                                                              \
    "accounts:\n"                                                            \
    "  - {name: acct, host: imap.test, user: alice, password: s3cret,"       \
    "     mailboxes: [INBOX]}\n"
/* server-side FROM, then the subject checked here: UIDs 1 and 3 */
#define RULES_CLIENT                                                         \
    "rules:\n"                                                               \
    "  - {name: cron, match: {from: Cron Daemon, subject_regex: '^Cron'},"   \
    "     action: delete}\n"
/* server-side only: the audit lines need a fetch of their own */
#define RULES_SERVER                                                         \
    "rules:\n"                                                               \
    "  - {name: cron, match: {subject: Cron}, action: delete}\n"
#define RULES_NONE                                                           \
    "rules:\n"                                                               \
    "  - {name: cron, match: {from: nobody@example.invalid},"                \
    "     action: delete}\n"

#define SEARCH_CLIENT "UID SEARCH RETURN (ALL) UID 1:* FROM \"Cron Daemon\""
#define SEARCH_SERVER "UID SEARCH RETURN (ALL) UID 1:* SUBJECT \"Cron\""
#define SEARCH_NONE                                                          \
    "UID SEARCH RETURN (ALL) UID 1:* FROM \"nobody@example.invalid\""
#define HEADERS "(UID BODY.PEEK[HEADER.FIELDS (Subject From Message-ID)])"
#define AUDIT "(UID BODY.PEEK[HEADER.FIELDS (From Subject Message-ID)])"
#define MATCHED "1,3"

/* The mailbox: three cron mails, the second without "Cron" in its
 * subject. */
static const char *const subjects[] = {NULL, "Cron <root@h> backup",
                                       "Report", "Cron <root@h> disk"};

enum phase {
    P_CONNECTING,   /* connected, no greeting yet */
    P_GREETED,      /* greeted: the secret is being read */
    P_LOGIN,        /* AUTHENTICATE in flight */
    P_SELECT,       /* SELECT in flight */
    P_SEARCH,       /* UID FETCH * and UID SEARCH in flight */
    P_HEADERS,      /* the header fetch in flight (RULES_CLIENT) */
    P_AUDIT,        /* the audit fetch in flight (RULES_SERVER) */
    P_STORE,        /* UID STORE +FLAGS (\Deleted) in flight */
    P_EXPUNGE,      /* UID EXPUNGE in flight */
    P_IDLE,         /* idling */
    P_BACKOFF,      /* the connection failed; waiting to reconnect */
};

static const char *const phase_names[] = {
    "connecting", "greeted", "login", "select", "search", "headers",
    "audit", "store", "expunge", "idle", "backoff",
};

struct wt {
    struct world w;
    struct watcher *wt;
    struct fakesrv *f;
    bool server_rules;      /* RULES_SERVER instead of RULES_CLIENT */
    /* tags of the commands in flight when the phase was reached */
    char *tags[2];
    int stopped;
};

static void
wt_start(struct wt *t, const char *yaml)
{
    memset(t, 0, sizeof(*t));
    world_init(&t->w, yaml);
    t->wt = watcher_new(&t->w.env, t->w.config, world_account(&t->w, "acct"),
                        NULL, NULL, "INBOX", false);
    watcher_start(t->wt);
    testlib_settle(&t->w.loop);
    assert_int_equal(fakenet_count(t->w.net), 1);
    t->f = fakenet_conn(t->w.net, 0);
}

static void
wt_end(struct wt *t)
{
    watcher_free(t->wt);
    for (size_t i = 0; i < 2; i++)
        free(t->tags[i]);
    world_end(&t->w);
}

static enum watcher_state
wt_state(struct wt *t)
{
    struct watcher_status st;

    watcher_status(t->wt, &st);
    return st.state;
}

/* FETCH responses with the header block of each UID of list, then OK. */
static void
answer_headers(struct fakesrv *f, const char *tag, const char *items,
               const unsigned *uids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *hdr = xasprintf("From: Cron Daemon <root@h>\r\nSubject: %s\r\n"
                              "Message-ID: <%u@h>\r\n\r\n",
                              subjects[uids[i]], uids[i]);

        fakesrv_printf(f, "* %u FETCH (UID %u BODY[HEADER.FIELDS %s] {%zu}"
                          "\r\n%s)\r\n", uids[i], uids[i], items,
                       strlen(hdr), hdr);
        free(hdr);
    }
    fakesrv_reply(f, tag, "OK done");
}

static void
set_tags(struct wt *t, char *a, char *b)
{
    free(t->tags[0]);
    free(t->tags[1]);
    t->tags[0] = a;
    t->tags[1] = b;
}

/* Script the conversation up to phase p. */
static void
advance_to(struct wt *t, enum phase p)
{
    static const unsigned all[] = {1, 2, 3};
    struct fakesrv *f = t->f;
    char *tag;

    if (p == P_CONNECTING)
        return;
    if (p == P_BACKOFF) {
        fakesrv_drop(f, ERR_CLOSED, "connection reset by peer");
        testlib_settle(&t->w.loop);
        assert_int_equal(wt_state(t), WATCHER_BACKOFF);
        return;
    }
    fakesrv_printf(f, "* OK [CAPABILITY %s AUTH=PLAIN SASL-IR] ready\r\n",
                   CAPS);
    if (p == P_GREETED) {
        assert_int_equal(wt_state(t), WATCHER_AUTHENTICATING);
        return;
    }
    tag = expect_cmd(f, "AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==");
    if (p == P_LOGIN) {
        set_tags(t, tag, NULL);
        return;
    }
    fakesrv_reply(f, tag, "OK [CAPABILITY %s] Logged in", CAPS);
    free(tag);
    tag = expect_cmd(f, "SELECT INBOX");
    if (p == P_SELECT) {
        set_tags(t, tag, NULL);
        return;
    }
    fakesrv_send(f, "* 3 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n"
                    "* OK [UIDNEXT 4] x\r\n");
    fakesrv_reply(f, tag, "OK [READ-WRITE] selected");
    free(tag);
    tag = expect_cmd(f, "UID FETCH * (UID)");
    set_tags(t, tag,
             expect_cmd(f, t->server_rules ? SEARCH_SERVER : SEARCH_CLIENT));
    if (p == P_SEARCH)
        return;
    fakesrv_send(f, "* 3 FETCH (UID 3)\r\n");
    fakesrv_reply(f, t->tags[0], "OK done");
    fakesrv_printf(f, "* ESEARCH (TAG \"%s\") UID ALL %s\r\n", t->tags[1],
                   t->server_rules ? MATCHED : "1:3");
    fakesrv_reply(f, t->tags[1], "OK done");
    if (t->server_rules) {
        set_tags(t, expect_cmd(f, "UID FETCH " MATCHED " " AUDIT), NULL);
        if (p == P_AUDIT)
            return;
        answer_headers(f, t->tags[0], "(From Subject Message-ID)",
                       (const unsigned[]){1, 3}, 2);
    } else {
        set_tags(t, expect_cmd(f, "UID FETCH 1:3 " HEADERS), NULL);
        if (p == P_HEADERS)
            return;
        answer_headers(f, t->tags[0], "(Subject From Message-ID)", all, 3);
    }
    set_tags(t, expect_cmd(f, "UID STORE " MATCHED
                              " +FLAGS.SILENT (\\Deleted)"), NULL);
    if (p == P_STORE)
        return;
    fakesrv_reply(f, t->tags[0], "OK stored");
    set_tags(t, expect_cmd(f, "UID EXPUNGE " MATCHED), NULL);
    if (p == P_EXPUNGE)
        return;
    fakesrv_send(f, "* 3 EXPUNGE\r\n* 1 EXPUNGE\r\n");
    fakesrv_reply(f, t->tags[0], "OK expunged");
    set_tags(t, expect_cmd(f, "IDLE"), NULL);
    fakesrv_send(f, "+ idling\r\n");
    assert_int_equal(wt_state(t), WATCHER_IDLE);
}

/* Answer what was in flight at phase p, as the server would. */
static void
answer_inflight(struct wt *t, enum phase p)
{
    static const unsigned all[] = {1, 2, 3};
    struct fakesrv *f = t->f;

    switch (p) {
    case P_LOGIN:
        fakesrv_reply(f, t->tags[0], "OK [CAPABILITY %s] Logged in", CAPS);
        break;
    case P_SELECT:
        fakesrv_send(f, "* 3 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n");
        fakesrv_reply(f, t->tags[0], "OK [READ-WRITE] selected");
        break;
    case P_SEARCH:
        fakesrv_send(f, "* 3 FETCH (UID 3)\r\n");
        fakesrv_reply(f, t->tags[0], "OK done");
        fakesrv_printf(f, "* ESEARCH (TAG \"%s\") UID ALL 1:3\r\n",
                       t->tags[1]);
        fakesrv_reply(f, t->tags[1], "OK done");
        break;
    case P_HEADERS:
        answer_headers(f, t->tags[0], "(Subject From Message-ID)", all, 3);
        break;
    case P_AUDIT:
        answer_headers(f, t->tags[0], "(From Subject Message-ID)",
                       (const unsigned[]){1, 3}, 2);
        break;
    case P_STORE:
        fakesrv_reply(f, t->tags[0], "OK stored");
        break;
    case P_EXPUNGE:
        fakesrv_send(f, "* 3 EXPUNGE\r\n* 1 EXPUNGE\r\n");
        fakesrv_reply(f, t->tags[0], "OK expunged");
        break;
    case P_IDLE:
        expect_line(f, "DONE");
        fakesrv_reply(f, t->tags[0], "OK idle done");
        break;
    case P_CONNECTING:
    case P_GREETED:
    case P_BACKOFF:
        break;
    }
}

static void
on_stopped(struct watcher *w, void *arg)
{
    (void)w;
    ((struct wt *)arg)->stopped++;
}

static bool
is_stopped(void *arg)
{
    return ((struct wt *)arg)->stopped > 0;
}

/* --- stopping in every phase -------------------------------------------- */

static void
stop_in(enum phase p, bool server_rules)
{
    struct wt t;
    char *rest;

    print_message("stop while %s\n", phase_names[p]);
    wt_start(&t, server_rules ? DEFAULTS ACCOUNT RULES_SERVER
                              : DEFAULTS ACCOUNT RULES_CLIENT);
    t.server_rules = server_rules;
    advance_to(&t, p);
    watcher_stop(t.wt, on_stopped, &t);
    answer_inflight(&t, p);
    if (p >= P_SELECT && p <= P_IDLE) {
        /* logged in: the commands in flight end, then LOGOUT */
        char *tag = expect_cmd(t.f, "LOGOUT");

        fakesrv_send(t.f, "* BYE Logging out\r\n");
        fakesrv_reply(t.f, tag, "OK Logout completed.");
        free(tag);
    }
    assert_true(testlib_run_until(&t.w.loop, is_stopped, &t, 5000));
    assert_int_equal(t.stopped, 1);
    assert_int_equal(wt_state(&t), WATCHER_STOPPED);
    assert_true(fakesrv_closed(t.f));
    rest = fakesrv_take(t.f);
    if (*rest != '\0')
        fail_msg("after stopping while %s the client sent \"%s\"",
                 phase_names[p], rest);
    free(rest);
    /* nothing acted on but what was in flight when it stopped */
    expect_acted_within(t.f, p >= P_STORE && p <= P_IDLE ? MATCHED : "",
                        false);
    assert_int_equal(fakenet_count(t.w.net), 1);
    wt_end(&t);
}

static void
test_stop_in_every_phase(void **state)
{
    (void)state;
    for (enum phase p = P_CONNECTING; p <= P_BACKOFF; p++) {
        if (p != P_AUDIT)
            stop_in(p, false);
    }
    stop_in(P_AUDIT, true);
}

/* --- a reload changes the rules in each phase of a sweep ------------------ */

static void
reload_in(enum phase p, bool server_rules)
{
    struct wt t;
    struct config *old;
    char *tag, *t_top, *t_search;

    print_message("rules change while %s\n", phase_names[p]);
    wt_start(&t, server_rules ? DEFAULTS ACCOUNT RULES_SERVER
                              : DEFAULTS ACCOUNT RULES_CLIENT);
    t.server_rules = server_rules;
    advance_to(&t, p);
    old = world_reload(&t.w, DEFAULTS ACCOUNT RULES_NONE);
    watcher_update(t.wt, t.w.config, world_account(&t.w, "acct"));
    config_unref(old);
    answer_inflight(&t, p);
    if (p == P_STORE) {
        /* flagged but not expunged under the old rules: taken back */
        tag = expect_cmd(t.f, "UID STORE " MATCHED
                              " -FLAGS.SILENT (\\Deleted)");
        fakesrv_reply(t.f, tag, "OK stored");
        free(tag);
    }
    /* then a full sweep under the new rules, which match nothing */
    t_top = expect_cmd(t.f, "UID FETCH * (UID)");
    t_search = expect_cmd(t.f, SEARCH_NONE);
    fakesrv_printf(t.f, "* %u FETCH (UID 3)\r\n", p == P_EXPUNGE ? 1 : 3);
    fakesrv_reply(t.f, t_top, "OK done");
    fakesrv_reply(t.f, t_search, "OK done");
    free(t_top);
    free(t_search);
    free(expect_cmd(t.f, "IDLE"));
    fakesrv_send(t.f, "+ idling\r\n");
    assert_int_equal(wt_state(&t), WATCHER_IDLE);
    expect_quiet(t.f);
    /* the only action after the reload is the one in flight (or taking it
     * back) */
    expect_acted_within(t.f, p >= P_STORE ? MATCHED : "", false);
    wt_end(&t);
}

static void
test_reload_in_every_sweep_phase(void **state)
{
    (void)state;
    reload_in(P_SEARCH, false);
    reload_in(P_HEADERS, false);
    reload_in(P_AUDIT, true);
    reload_in(P_STORE, false);
    reload_in(P_EXPUNGE, false);
}

/* --- a reload while the session is still connecting ------------------------ */

/* The session reads the account's settings (the secret source, the user,
 * the mechanism) when the server greets it; a reload before that must
 * not free them under it. */
static void
test_reload_while_connecting(void **state)
{
    struct wt t;
    struct config *old;

    (void)state;
    wt_start(&t, DEFAULTS ACCOUNT RULES_CLIENT);
    old = world_reload(&t.w, DEFAULTS ACCOUNT RULES_SERVER);
    watcher_update(t.wt, t.w.config, world_account(&t.w, "acct"));
    config_unref(old); /* the last reference but the session's */
    t.server_rules = true;
    advance_to(&t, P_IDLE);
    expect_acted_within(t.f, MATCHED, false);
    wt_end(&t);
}

/* --- the server goes away in the middle of a fetch ------------------------- */

static bool
two_conns(void *arg)
{
    return fakenet_count(((struct wt *)arg)->w.net) >= 2;
}

static void
test_bye_mid_fetch(void **state)
{
    struct wt t;

    (void)state;
    wt_start(&t, DEFAULTS ACCOUNT RULES_CLIENT);
    advance_to(&t, P_HEADERS);
    /* one message of the fetch, then BYE */
    fakesrv_send(t.f, "* 1 FETCH (UID 1 BODY[HEADER.FIELDS (Subject From "
                      "Message-ID)] {4}\r\nFr");
    fakesrv_send(t.f, "om)\r\n* BYE server shutting down\r\n");
    testlib_settle(&t.w.loop);
    assert_true(fakesrv_closed(t.f));
    assert_int_equal(wt_state(&t), WATCHER_BACKOFF);
    expect_acted_within(t.f, "", false);
    /* it comes back after the backoff and sweeps in full */
    assert_true(testlib_run_until(&t.w.loop, two_conns, &t, 5000));
    t.f = fakenet_conn(t.w.net, 1);
    advance_to(&t, P_IDLE);
    expect_acted_within(t.f, MATCHED, false);
    wt_end(&t);
}

/* --- a lying server ------------------------------------------------------ */

/* A search result the mailbox cannot hold ends the watcher's connection
 * with a clear log line and a reconnect; nothing is acted on. */
static void
test_lying_server_ends_the_connection(void **state)
{
    struct wt t;
    char *tag;

    (void)state;
    testlog_start(LL_WARNING);
    wt_start(&t, DEFAULTS ACCOUNT RULES_CLIENT);
    advance_to(&t, P_SEARCH);
    fakesrv_send(t.f, "* 3 FETCH (UID 100000000)\r\n");
    fakesrv_reply(t.f, t.tags[0], "OK done");
    fakesrv_printf(t.f, "* ESEARCH (TAG \"%s\") UID ALL 1:100000000\r\n",
                   t.tags[1]);
    fakesrv_reply(t.f, t.tags[1], "OK done");
    testlib_settle(&t.w.loop);
    assert_true(fakesrv_closed(t.f));
    assert_int_equal(wt_state(&t), WATCHER_BACKOFF);
    if (!testlog_has("protocol violation: UID FETCH * (UID) names UID "
                     "100000000, at or above the mailbox's UIDNEXT 4 with no "
                     "new message announced; ending the connection; "
                     "reconnecting in"))
        fail_msg("log:\n%s", testlog_text());
    tag = fakesrv_take(t.f);
    assert_string_equal(tag, "");
    free(tag);
    expect_acted_within(t.f, "", false);
    wt_end(&t);
    testlog_stop();
}

/* A watcher with no connection (a shared one between visits, a dedicated
 * one whose session is being retired) is never swept: news of mail (here
 * EXISTS passed on by the shared connection) only marks a sweep as wanted.
 * The soak saw the daemon die in sweep_start on a NULL connection. */
static void
test_no_sweep_without_a_connection(void **state)
{
    struct world w;
    struct watcher *wt;
    struct watcher_status st;
    struct imap_response r;

    (void)state;
    world_init(&w, DEFAULTS ACCOUNT RULES_SERVER);
    wt = watcher_new(&w.env, w.config, world_account(&w, "acct"), NULL, NULL,
                     "INBOX", true);
    watcher_start(wt);
    testlib_settle(&w.loop);
    assert_int_equal(fakenet_count(w.net), 0);
    memset(&r, 0, sizeof(r));
    r.type = IMAP_RESP_UNTAGGED;
    r.has_number = true;
    r.number = 7;
    r.name = "EXISTS";
    r.line = "* 7 EXISTS";
    watcher_conn_event(wt, &r);
    watcher_sweep_now(wt);
    testlib_settle(&w.loop);
    watcher_status(wt, &st);
    assert_int_equal(st.state, WATCHER_POLLING);
    assert_int_equal(fakenet_count(w.net), 0);
    watcher_free(wt);
    world_end(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_in_every_phase),
        cmocka_unit_test(test_reload_in_every_sweep_phase),
        cmocka_unit_test(test_reload_while_connecting),
        cmocka_unit_test(test_bye_mid_fetch),
        cmocka_unit_test(test_lying_server_ends_the_connection),
        cmocka_unit_test(test_no_sweep_without_a_connection),
    };

    log_set_level(LL_ERROR);
    transcript_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
