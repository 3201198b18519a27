/* SPDX-License-Identifier: MIT */
/* Transcript tests of an account, its watchers and its shared poller over
 * the test library's scripted server: the exact commands each connection
 * sends while reloads add, remove and reorder mailboxes in the middle of a
 * poll (a STATUS, a SELECT or a sweep's command in flight), and while the
 * account stops in each of the poller's phases. Run under ASan in
 * `make unit-san`: nothing may be used after a reload freed it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "account.h"
#include "buf.h"
#include "errors.h"
#include "log.h"
#include "transcript.h"
#include "util.h"
#include "watcher.h"
#include "world.h"

#define CAPS "IMAP4rev1 IDLE UIDPLUS ESEARCH"

#define DEFAULTS                                                             \
    "defaults: {tls: none, port: 143, command_timeout: 5s,"                  \
    " poll_interval: 1h, full_sweep_interval: 1h, reconnect_min: 1s,"        \
    " reconnect_max: 2s}\n"
#define ACCOUNT(mailboxes, max)                                              \
    "accounts:\n"                                                            \
    "  - {name: acct, host: imap.test, user: alice, password: s3cret,"       \
    "     mailboxes: " mailboxes ", max_connections: " max "}\n"
#define CRON_DELETE                                                          \
    "rules:\n"                                                               \
    "  - {name: cron, match: {from: Cron Daemon}, action: delete}\n"
#define CRON_TRASH                                                           \
    "rules:\n"                                                               \
    "  - {name: cron, match: {from: Cron Daemon}, action: trash}\n"

#define SEARCH_CRON "UID SEARCH RETURN (ALL) UID 1:* FROM \"Cron Daemon\""
#define AUDIT_FETCH(set)                                                     \
    "UID FETCH " set                                                         \
    " (UID BODY.PEEK[HEADER.FIELDS (From Subject Message-ID)])"

/* --- helpers ------------------------------------------------------------- */

static char *
expect_status(struct fakesrv *f, const char *mailbox)
{
    char *want = xasprintf("STATUS %s (MESSAGES UIDNEXT UIDVALIDITY)",
                           mailbox);
    char *tag = expect_cmd(f, want);

    free(want);
    return tag;
}

static void
answer_status(struct fakesrv *f, const char *tag, const char *mailbox,
              unsigned messages, unsigned uidnext)
{
    fakesrv_printf(f, "* STATUS %s (MESSAGES %u UIDNEXT %u UIDVALIDITY 5)"
                      "\r\n", mailbox, messages, uidnext);
    fakesrv_reply(f, tag, "OK done");
}

/* The poller's first round: STATUS for each mailbox, all answered. */
static void
status_round(struct fakesrv *f, const char *const *mailboxes, size_t n)
{
    char *tags[8];

    for (size_t i = 0; i < n; i++)
        tags[i] = expect_status(f, mailboxes[i]);
    for (size_t i = 0; i < n; i++) {
        answer_status(f, tags[i], mailboxes[i], 0, 1);
        free(tags[i]);
    }
}

/* A visit of an empty mailbox: SELECT, then the sweep's NOOP. */
static void
visit_empty(struct fakesrv *f, const char *mailbox)
{
    script_select(f, mailbox, 0, 5, 1);
    expect_cmd_reply(f, "NOOP", "OK done");
}

/* The first visit of an empty mailbox when a rule trashes: SELECT, the
 * sweep's NOOP, and the \Trash lookup sent behind it (a plain LIST: no
 * LIST-EXTENDED here), which finds Trash. */
static void
visit_empty_trash(struct fakesrv *f, const char *mailbox)
{
    char *t_list;

    script_select(f, mailbox, 0, 5, 1);
    expect_cmd_reply(f, "NOOP", "OK done");
    t_list = expect_cmd(f, "LIST \"\" \"*\"");
    fakesrv_send(f, "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n");
    fakesrv_reply(f, t_list, "OK done");
    free(t_list);
}

/* FETCH responses with a From header for each UID of uids, then OK. */
static void
answer_headers(struct fakesrv *f, const char *tag, const unsigned *uids,
               size_t n, const char *from)
{
    for (size_t i = 0; i < n; i++) {
        char *hdr = xasprintf("From: %s\r\nSubject: test %u\r\n\r\n", from,
                              uids[i]);

        fakesrv_printf(f, "* %u FETCH (UID %u BODY[HEADER.FIELDS (From "
                          "Subject Message-ID)] {%zu}\r\n%s)\r\n",
                       uids[i], uids[i], strlen(hdr), hdr);
        free(hdr);
    }
    fakesrv_reply(f, tag, "OK done");
}

static struct watcher *
find_watcher(struct account *a, const char *mailbox)
{
    for (size_t i = 0; i < account_n_watchers(a); i++) {
        struct watcher *w = account_watcher(a, i);

        if (strcmp(watcher_mailbox(w), mailbox) == 0)
            return w;
    }
    fail_msg("no watcher for %s", mailbox);
    return NULL;
}

static enum watcher_state
state_of(struct account *a, const char *mailbox)
{
    struct watcher_status st;

    watcher_status(find_watcher(a, mailbox), &st);
    return st.state;
}

/* Apply a reload to a, as daemon_reload does for kept settings. */
static void
reload(struct world *w, struct account *a, const char *yaml)
{
    struct config *old = world_reload(w, yaml);

    account_update(a, w->config, world_account(w, "acct"));
    config_unref(old);
    testlib_settle(&w->loop);
}

static struct account *
start_account(struct world *w)
{
    struct account *a = account_new(&w->env, w->config,
                                    world_account(w, "acct"));

    testlib_settle(&w->loop);
    return a;
}

static void
end_account(struct world *w, struct account *a)
{
    account_free(a);
    world_end(w);
}

struct stopped {
    int calls;
};

static void
on_account_stopped(struct account *a, void *arg)
{
    (void)a;
    ((struct stopped *)arg)->calls++;
}

static bool
is_stopped(void *arg)
{
    return ((struct stopped *)arg)->calls > 0;
}

/* --- reload in the middle of a poll ---------------------------------------- */

/* A STATUS is in flight for a mailbox the reload removes; its late NO
 * must not reach the freed watcher, and the cycle goes on without it. */
static void
test_reload_removes_mailbox_with_status_in_flight(void **state)
{
    struct world w;
    struct account *a;
    struct fakesrv *f;
    char *t_inbox, *t_cron, *t_other;

    (void)state;
    world_init(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", "1")
                       CRON_DELETE);
    a = start_account(&w);
    assert_int_equal(fakenet_count(w.net), 1);
    f = fakenet_conn(w.net, 0);
    script_login(f, "alice", "s3cret", CAPS);
    t_inbox = expect_status(f, "INBOX");
    t_cron = expect_status(f, "Cron");
    t_other = expect_status(f, "Other");
    answer_status(f, t_inbox, "INBOX", 0, 1);
    answer_status(f, t_other, "Other", 0, 1);
    reload(&w, a, DEFAULTS ACCOUNT("[INBOX, Other]", "1") CRON_DELETE);
    assert_int_equal(account_n_watchers(a), 2);
    /* the removed mailbox's STATUS comes back late, refused */
    fakesrv_reply(f, t_cron, "NO [NONEXISTENT] Mailbox doesn't exist");
    visit_empty(f, "INBOX");
    visit_empty(f, "Other");
    expect_quiet(f);
    assert_int_equal(state_of(a, "INBOX"), WATCHER_POLLING);
    assert_int_equal(state_of(a, "Other"), WATCHER_POLLING);
    free(t_inbox);
    free(t_cron);
    free(t_other);
    end_account(&w, a);
}

/* The poller is selecting a mailbox the reload removes: the late OK must
 * start no sweep on it, and the poller goes on to the next mailbox
 * instead of waiting for its connection to close. */
static void
test_reload_removes_mailbox_with_select_in_flight(void **state)
{
    static const char *const all[] = {"INBOX", "Cron", "Other"};
    struct world w;
    struct account *a;
    struct fakesrv *f;
    char *t_select;

    (void)state;
    world_init(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", "1")
                       CRON_DELETE);
    a = start_account(&w);
    f = fakenet_conn(w.net, 0);
    script_login(f, "alice", "s3cret", CAPS);
    status_round(f, all, 3);
    visit_empty(f, "INBOX");
    t_select = expect_cmd(f, "SELECT Cron");
    reload(&w, a, DEFAULTS ACCOUNT("[INBOX, Other]", "1") CRON_DELETE);
    /* the SELECT of the abandoned visit completes: nothing follows it
     * but the next visit's SELECT */
    fakesrv_send(f, "* 3 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n"
                    "* OK [UIDNEXT 4] x\r\n");
    fakesrv_reply(f, t_select, "OK [READ-WRITE] selected");
    visit_empty(f, "Other");
    expect_quiet(f);
    expect_acted_within(f, "", false);
    free(t_select);
    end_account(&w, a);
}

/* A sweep of a shared mailbox waits for its LIST (the \Trash lookup, sent
 * with the first sweep's searches) when a reload removes the mailbox: the
 * late LIST must not write into the freed watcher, and nothing is moved. */
static void
test_reload_removes_mailbox_with_list_in_flight(void **state)
{
    static const char *const all[] = {"INBOX", "Cron", "Other"};
    struct world w;
    struct account *a;
    struct fakesrv *f;
    char *t_fetch, *t_search, *t_list;

    (void)state;
    world_init(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", "1")
                       CRON_TRASH);
    a = start_account(&w);
    f = fakenet_conn(w.net, 0);
    script_login(f, "alice", "s3cret", CAPS);
    status_round(f, all, 3);
    visit_empty_trash(f, "INBOX");
    script_select(f, "Cron", 2, 5, 3);
    t_fetch = expect_cmd(f, "UID FETCH * (UID)");
    t_search = expect_cmd(f, SEARCH_CRON);
    t_list = expect_cmd(f, "LIST \"\" \"*\"");
    fakesrv_send(f, "* 2 FETCH (UID 2)\r\n");
    fakesrv_reply(f, t_fetch, "OK done");
    fakesrv_printf(f, "* ESEARCH (TAG \"%s\") UID ALL 1:2\r\n", t_search);
    fakesrv_reply(f, t_search, "OK done");
    reload(&w, a, DEFAULTS ACCOUNT("[INBOX, Other]", "1") CRON_TRASH);
    fakesrv_send(f, "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n");
    fakesrv_reply(f, t_list, "OK done");
    visit_empty_trash(f, "Other");
    expect_quiet(f);
    expect_acted_within(f, "", false);
    free(t_fetch);
    free(t_search);
    free(t_list);
    end_account(&w, a);
}

/* A reload that reorders the mailboxes makes the one being visited a
 * dedicated watcher (the first max_connections - 1 get their own
 * connection): the poller lets go of it at once and moves on; the
 * mailbox gets its own connection, SELECT, sweep and IDLE; the mailbox
 * that became shared gives its connection back with LOGOUT. */
static void
test_reload_makes_visited_mailbox_dedicated(void **state)
{
    static const char *const shared[] = {"Cron", "Other"};
    static const char *const now_shared[] = {"INBOX", "Other"};
    struct world w;
    struct account *a;
    struct fakesrv *inbox, *poll, *cron;
    char *t_fetch, *t_search, *tag;

    (void)state;
    world_init(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", "2")
                       CRON_DELETE);
    a = start_account(&w);
    assert_int_equal(fakenet_count(w.net), 2);
    inbox = fakenet_conn(w.net, 0);
    poll = fakenet_conn(w.net, 1);
    script_login(inbox, "alice", "s3cret", CAPS);
    visit_empty(inbox, "INBOX");
    tag = expect_cmd(inbox, "IDLE");
    fakesrv_send(inbox, "+ idling\r\n");
    assert_int_equal(state_of(a, "INBOX"), WATCHER_IDLE);

    script_login(poll, "alice", "s3cret", CAPS);
    status_round(poll, shared, 2);
    script_select(poll, "Cron", 1, 5, 2);
    t_fetch = expect_cmd(poll, "UID FETCH * (UID)");
    t_search = expect_cmd(poll, SEARCH_CRON);

    /* INBOX (first in line for a connection of its own unless told) is
     * told idle: false */
    reload(&w, a, DEFAULTS ACCOUNT("[Cron, {name: INBOX, idle: false}, "
                                   "Other]", "2")
                      CRON_DELETE);
    /* INBOX is shared now: its connection logs out */
    expect_line(inbox, "DONE");
    fakesrv_reply(inbox, tag, "OK idle done");
    free(tag);
    expect_cmd_reply(inbox, "LOGOUT", "OK bye");
    /* the abandoned visit's commands complete; nothing acts on them */
    fakesrv_send(poll, "* 1 FETCH (UID 1)\r\n");
    fakesrv_reply(poll, t_fetch, "OK done");
    fakesrv_printf(poll, "* ESEARCH (TAG \"%s\") UID ALL 1\r\n", t_search);
    fakesrv_reply(poll, t_search, "OK done");
    visit_empty(poll, "Other");
    /* and INBOX, polled now, is visited at once, not a poll_interval
     * later */
    status_round(poll, now_shared, 2);
    visit_empty(poll, "INBOX");
    expect_quiet(poll);
    expect_acted_within(poll, "", false);

    /* Cron's own connection */
    assert_int_equal(fakenet_count(w.net), 3);
    cron = fakenet_conn(w.net, 2);
    script_login(cron, "alice", "s3cret", CAPS);
    visit_empty(cron, "Cron");
    free(expect_cmd(cron, "IDLE"));
    fakesrv_send(cron, "+ idling\r\n");
    assert_int_equal(state_of(a, "Cron"), WATCHER_IDLE);
    free(t_fetch);
    free(t_search);
    end_account(&w, a);
}

/* The shared connection is still waiting for its greeting when a reload
 * (same connection settings, other rules) swaps the account's
 * configuration: the session must not read the old one's settings after
 * it was freed. */
static void
test_reload_while_poller_connects(void **state)
{
    static const char *const all[] = {"INBOX", "Cron", "Other"};
    struct world w;
    struct account *a;
    struct fakesrv *f;

    (void)state;
    world_init(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", "1")
                       CRON_DELETE);
    a = start_account(&w);
    f = fakenet_conn(w.net, 0);
    reload(&w, a, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", "1") CRON_TRASH);
    script_login(f, "alice", "s3cret", CAPS);
    status_round(f, all, 3);
    visit_empty_trash(f, "INBOX");
    visit_empty_trash(f, "Cron");
    visit_empty_trash(f, "Other");
    expect_quiet(f);
    end_account(&w, a);
}

/* A reload leaves no mailbox beyond the budget while the poller is
 * selecting one: that mailbox gets its own connection, and the shared
 * connection logs out once its SELECT is answered, without sweeping. */
static void
test_reload_leaves_nothing_to_poll(void **state)
{
    static const char *const shared[] = {"Cron", "Other"};
    struct world w;
    struct account *a;
    struct fakesrv *inbox, *poll, *other;
    char *t_select;

    (void)state;
    world_init(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", "2")
                       CRON_DELETE);
    a = start_account(&w);
    inbox = fakenet_conn(w.net, 0);
    poll = fakenet_conn(w.net, 1);
    script_login(inbox, "alice", "s3cret", CAPS);
    visit_empty(inbox, "INBOX");
    free(expect_cmd(inbox, "IDLE"));
    fakesrv_send(inbox, "+ idling\r\n");
    script_login(poll, "alice", "s3cret", CAPS);
    status_round(poll, shared, 2);
    visit_empty(poll, "Cron");
    t_select = expect_cmd(poll, "SELECT Other");
    reload(&w, a, DEFAULTS ACCOUNT("[INBOX, Other]", "2") CRON_DELETE);
    fakesrv_send(poll, "* 2 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n");
    fakesrv_reply(poll, t_select, "OK [READ-WRITE] selected");
    free(t_select);
    expect_cmd_reply(poll, "LOGOUT", "OK bye");
    testlib_settle(&w.loop);
    assert_true(fakesrv_closed(poll));
    expect_quiet(poll);
    assert_int_equal(fakenet_count(w.net), 3);
    other = fakenet_conn(w.net, 2);
    script_login(other, "alice", "s3cret", CAPS);
    visit_empty(other, "Other");
    free(expect_cmd(other, "IDLE"));
    fakesrv_send(other, "+ idling\r\n");
    assert_int_equal(state_of(a, "Other"), WATCHER_IDLE);
    expect_quiet(inbox);
    end_account(&w, a);
}

/* --- stopping ----------------------------------------------------------- */

/* SIGTERM while a visit's UID STORE is in flight on the shared
 * connection: nothing more is sent for it (no EXPUNGE), then LOGOUT. */
static void
test_stop_while_visit_acts(void **state)
{
    static const char *const all[] = {"INBOX", "Cron", "Other"};
    static const unsigned uids[] = {1, 2};
    struct world w;
    struct account *a;
    struct fakesrv *f;
    struct stopped st = {0};
    char *t_fetch, *t_search, *t_audit, *t_store;

    (void)state;
    world_init(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", "1")
                       CRON_DELETE);
    a = start_account(&w);
    f = fakenet_conn(w.net, 0);
    script_login(f, "alice", "s3cret", CAPS);
    status_round(f, all, 3);
    visit_empty(f, "INBOX");
    script_select(f, "Cron", 2, 5, 3);
    t_fetch = expect_cmd(f, "UID FETCH * (UID)");
    t_search = expect_cmd(f, SEARCH_CRON);
    fakesrv_send(f, "* 2 FETCH (UID 2)\r\n");
    fakesrv_reply(f, t_fetch, "OK done");
    fakesrv_printf(f, "* ESEARCH (TAG \"%s\") UID ALL 1:2\r\n", t_search);
    fakesrv_reply(f, t_search, "OK done");
    t_audit = expect_cmd(f, AUDIT_FETCH("1:2"));
    answer_headers(f, t_audit, uids, 2, "Cron Daemon");
    t_store = expect_cmd(f, "UID STORE 1:2 +FLAGS.SILENT (\\Deleted)");
    account_stop(a, on_account_stopped, &st);
    fakesrv_reply(f, t_store, "OK stored");
    expect_cmd_reply(f, "LOGOUT", "OK bye");
    assert_true(testlib_run_until(&w.loop, is_stopped, &st, 5000));
    expect_quiet(f);
    expect_acted_within(f, "1:2", false);
    free(t_fetch);
    free(t_search);
    free(t_audit);
    free(t_store);
    end_account(&w, a);
}

/* SIGTERM while the poller's STATUS commands are in flight: they finish,
 * then LOGOUT; the account reports stopped once the connection closed. */
static void
test_stop_with_status_in_flight(void **state)
{
    struct world w;
    struct account *a;
    struct fakesrv *f;
    struct stopped st = {0};
    char *t[3];

    (void)state;
    world_init(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", "1")
                       CRON_DELETE);
    a = start_account(&w);
    f = fakenet_conn(w.net, 0);
    script_login(f, "alice", "s3cret", CAPS);
    t[0] = expect_status(f, "INBOX");
    t[1] = expect_status(f, "Cron");
    t[2] = expect_status(f, "Other");
    account_stop(a, on_account_stopped, &st);
    answer_status(f, t[0], "INBOX", 0, 1);
    fakesrv_reply(f, t[1], "NO [NONEXISTENT] gone");
    answer_status(f, t[2], "Other", 0, 1);
    expect_cmd_reply(f, "LOGOUT", "OK bye");
    assert_true(testlib_run_until(&w.loop, is_stopped, &st, 5000));
    assert_int_equal(st.calls, 1);
    expect_quiet(f);
    for (size_t i = 0; i < 3; i++)
        free(t[i]);
    end_account(&w, a);
}

/* SIGTERM in each of the poller's other phases: connecting (nothing to
 * log out of), selecting a mailbox to visit (the SELECT ends, no sweep
 * follows, LOGOUT), waiting for the next cycle (LOGOUT), and backing off
 * after its connection failed (no connection: stopped at once). */
enum poller_phase { PP_CONNECTING, PP_SELECTING, PP_WAITING, PP_BACKOFF };

static void
stop_poller_in(enum poller_phase ph)
{
    static const char *const all[] = {"INBOX", "Cron", "Other"};
    struct world w;
    struct account *a;
    struct fakesrv *f;
    struct stopped st = {0};
    char *tag = NULL;

    world_init(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", "1")
                       CRON_DELETE);
    a = start_account(&w);
    f = fakenet_conn(w.net, 0);
    if (ph != PP_CONNECTING && ph != PP_BACKOFF) {
        script_login(f, "alice", "s3cret", CAPS);
        status_round(f, all, 3);
        if (ph == PP_SELECTING) {
            tag = expect_cmd(f, "SELECT INBOX");
        } else {
            visit_empty(f, "INBOX");
            visit_empty(f, "Cron");
            visit_empty(f, "Other");
        }
    }
    if (ph == PP_BACKOFF) {
        fakesrv_drop(f, ERR_CLOSED, "connection refused");
        testlib_settle(&w.loop);
        assert_int_equal(state_of(a, "Cron"), WATCHER_BACKOFF);
    }
    account_stop(a, on_account_stopped, &st);
    if (ph == PP_SELECTING) {
        fakesrv_send(f, "* 2 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n");
        fakesrv_reply(f, tag, "OK [READ-WRITE] selected");
        free(tag);
    }
    if (ph == PP_SELECTING || ph == PP_WAITING)
        expect_cmd_reply(f, "LOGOUT", "OK bye");
    assert_true(testlib_run_until(&w.loop, is_stopped, &st, 5000));
    assert_int_equal(st.calls, 1);
    assert_true(fakesrv_closed(f));
    expect_quiet(f);
    expect_acted_within(f, "", false);
    assert_int_equal(fakenet_count(w.net), 1);
    end_account(&w, a);
}

static void
test_stop_in_every_poller_phase(void **state)
{
    (void)state;
    stop_poller_in(PP_CONNECTING);
    stop_poller_in(PP_SELECTING);
    stop_poller_in(PP_WAITING);
    stop_poller_in(PP_BACKOFF);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reload_removes_mailbox_with_status_in_flight),
        cmocka_unit_test(test_reload_removes_mailbox_with_select_in_flight),
        cmocka_unit_test(test_reload_removes_mailbox_with_list_in_flight),
        cmocka_unit_test(test_reload_makes_visited_mailbox_dedicated),
        cmocka_unit_test(test_reload_while_poller_connects),
        cmocka_unit_test(test_reload_leaves_nothing_to_poll),
        cmocka_unit_test(test_stop_with_status_in_flight),
        cmocka_unit_test(test_stop_while_visit_acts),
        cmocka_unit_test(test_stop_in_every_poller_phase),
    };

    log_set_level(LL_ERROR);
    transcript_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
