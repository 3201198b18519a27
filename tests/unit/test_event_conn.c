/* SPDX-License-Identifier: MIT */
/* Transcript tests of the event connection (the account's shared
 * connection with NOTIFY, RFC 5465) over the scripted server: arming,
 * visits on STATUS events and the check after them, lines that must be
 * ignored or end the connection, NOTIFY SET refused, notify: on without
 * NOTIFY, renames and deletions, the re-arm, and a reload while NOTIFY SET
 * is in flight. Run under ASan in `make unit-san`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "account.h"
#include "errors.h"
#include "log.h"
#include "transcript.h"
#include "util.h"
#include "watcher.h"
#include "world.h"

#define CAPS "IMAP4rev1 IDLE UIDPLUS ESEARCH UNSELECT NOTIFY"
#define CAPS_NO_NOTIFY "IMAP4rev1 IDLE UIDPLUS ESEARCH UNSELECT"

#define DEFAULTS                                                             \
    "defaults: {tls: none, port: 143, command_timeout: 5s,"                  \
    " poll_interval: 1h, full_sweep_interval: 1h, reconnect_min: 1s,"        \
    " reconnect_max: 2s}\n"
#define ACCOUNT(mailboxes, extra)                                            \
    "accounts:\n"                                                            \
    "  - {name: acct, host: imap.test, user: alice, password: s3cret,"       \
    "     mailboxes: " mailboxes ", max_connections: 2" extra "}\n"
#define CRON_DELETE                                                          \
    "rules:\n"                                                               \
    "  - {name: cron, match: {from: Cron Daemon}, action: delete}\n"
#define NOTIFY_SET                                                           \
    "NOTIFY SET STATUS (selected (MessageNew MessageExpunge)) (personal "    \
    "(MessageNew MessageExpunge MailboxName))"

/* --- helpers ------------------------------------------------------------- */

static struct watcher *
find(struct account *a, const char *mailbox)
{
    for (size_t i = 0; i < account_n_watchers(a); i++) {
        struct watcher *w = account_watcher(a, i);

        if (strcmp(watcher_mailbox(w), mailbox) == 0)
            return w;
    }
    fail_msg("no watcher for %s", mailbox);
    return NULL;
}

static struct watcher_status
status_of(struct account *a, const char *mailbox)
{
    struct watcher_status st;

    watcher_status(find(a, mailbox), &st);
    return st;
}

static struct account *
start(struct world *w, const char *yaml)
{
    struct account *a;

    world_init(w, yaml);
    a = account_new(&w->env, w->config, world_account(w, "acct"));
    testlib_settle(&w->loop);
    return a;
}

static void
end(struct world *w, struct account *a)
{
    account_free(a);
    world_end(w);
}

/* INBOX's own connection: login, an empty first sweep, IDLE. */
static void
inbox_idles(struct fakesrv *f)
{
    script_login(f, "alice", "s3cret", CAPS);
    script_select(f, "INBOX", 0, 5, 1);
    expect_cmd_reply(f, "NOOP", "OK done");
    free(expect_cmd(f, "IDLE"));
    fakesrv_send(f, "+ idling\r\n");
}

/* NOTIFY NONE and NOTIFY SET; the SET's tag is returned unanswered. */
static char *
expect_arm(struct fakesrv *f)
{
    expect_cmd_reply(f, "NOTIFY NONE", "OK done");
    return expect_cmd(f, NOTIFY_SET);
}

/* One STATUS line as Dovecot sends it (with UIDVALIDITY at arming). */
static void
send_status(struct fakesrv *f, const char *mailbox, unsigned messages,
            unsigned uidnext, bool uidvalidity)
{
    if (uidvalidity)
        fakesrv_printf(f, "* STATUS %s (MESSAGES %u UIDNEXT %u UIDVALIDITY 5 "
                          "UNSEEN 0)\r\n", mailbox, messages, uidnext);
    else
        fakesrv_printf(f, "* STATUS %s (MESSAGES %u UIDNEXT %u UNSEEN 0)\r\n",
                       mailbox, messages, uidnext);
}

/* A visit of an empty mailbox: SELECT, then the sweep's NOOP. */
static void
visit_empty(struct fakesrv *f, const char *mailbox, unsigned uidnext)
{
    script_select(f, mailbox, 0, 5, uidnext);
    expect_cmd_reply(f, "NOOP", "OK done");
}

/* After visits: UNSELECT, then STATUS for each visited mailbox, answered
 * unchanged. */
static void
check_after(struct fakesrv *f, const char *const *mailboxes, size_t n,
            unsigned uidnext)
{
    char *tags[8];

    expect_cmd_reply(f, "UNSELECT", "OK done");
    for (size_t i = 0; i < n; i++) {
        char *want = xasprintf("STATUS %s (MESSAGES UIDNEXT UIDVALIDITY)",
                               mailboxes[i]);

        tags[i] = expect_cmd(f, want);
        free(want);
    }
    for (size_t i = 0; i < n; i++) {
        send_status(f, mailboxes[i], 0, uidnext, true);
        fakesrv_reply(f, tags[i], "OK done");
        free(tags[i]);
    }
}

/* INBOX idles on its own connection; Cron and Other are armed and swept
 * once on the event connection. */
static void
arm_and_settle(struct world *w, struct fakesrv **inbox, struct fakesrv **ev)
{
    static const char *const both[] = {"Cron", "Other"};
    char *t_set;

    assert_int_equal(fakenet_count(w->net), 2);
    *inbox = fakenet_conn(w->net, 0);
    *ev = fakenet_conn(w->net, 1);
    inbox_idles(*inbox);
    script_login(*ev, "alice", "s3cret", CAPS);
    t_set = expect_arm(*ev);
    send_status(*ev, "Junk", 0, 1, true);
    send_status(*ev, "Cron", 0, 1, true);
    send_status(*ev, "INBOX", 0, 1, true);
    send_status(*ev, "Other", 0, 1, true);
    fakesrv_reply(*ev, t_set, "OK NOTIFY completed");
    free(t_set);
    visit_empty(*ev, "Cron", 1);
    visit_empty(*ev, "Other", 1);
    check_after(*ev, both, 2, 1);
    expect_quiet(*ev);
}

/* --- tests --------------------------------------------------------------- */

/* Armed: the first sweeps, then only a STATUS event that moved UIDNEXT
 * brings a visit; lines for a mailbox not watched here (Junk) or watched
 * on its own connection (INBOX) are ignored. */
static void
test_event_visits_changed(void **state)
{
    static const char *const cron[] = {"Cron"};
    struct world w;
    struct account *a;
    struct fakesrv *inbox, *ev;
    struct watcher_status st;

    (void)state;
    a = start(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", ", notify: on")
                      CRON_DELETE);
    st = status_of(a, "Cron");
    assert_int_equal(st.via, WATCHER_VIA_POLL); /* not armed yet */
    arm_and_settle(&w, &inbox, &ev);
    st = status_of(a, "Cron");
    assert_true(st.shared);
    assert_int_equal(st.via, WATCHER_VIA_NOTIFY);
    assert_int_equal(status_of(a, "INBOX").via, WATCHER_VIA_IDLE);

    /* nothing moved, or not ours */
    send_status(ev, "Cron", 0, 1, false);
    send_status(ev, "Junk", 3, 9, false);
    send_status(ev, "INBOX", 1, 2, false);
    expect_quiet(ev);
    expect_quiet(inbox);
    assert_true(status_of(a, "Cron").last_event > 0);

    /* a delivery to Cron */
    send_status(ev, "Cron", 1, 2, false);
    visit_empty(ev, "Cron", 2);
    check_after(ev, cron, 1, 2);
    expect_quiet(ev);
    expect_acted_within(ev, "", false);
    end(&w, a);
}

/* NOTIFY SET answered NO: the connection polls with STATUS instead, and
 * says so once, also after it reconnects. */
static void
test_notify_set_refused(void **state)
{
    struct world w;
    struct account *a;
    struct fakesrv *ev, *ev2;
    char *t_set, *t1, *t2;
    const char *log, *p;
    int n = 0;

    (void)state;
    testlog_start(LL_WARNING);
    a = start(&w, DEFAULTS ACCOUNT("[Cron, Other]", ", notify: auto")
                      CRON_DELETE);
    /* two mailboxes, two connections: both get their own unless told */
    assert_int_equal(fakenet_count(w.net), 2);
    end(&w, a);

    a = start(&w, DEFAULTS ACCOUNT("[{name: Cron, idle: false}, Other]", "")
                      CRON_DELETE);
    assert_int_equal(fakenet_count(w.net), 2);
    ev = fakenet_conn(w.net, 1);
    script_login(ev, "alice", "s3cret", CAPS);
    t_set = expect_arm(ev);
    fakesrv_reply(ev, t_set, "NO [CANNOT] not here");
    free(t_set);
    t1 = expect_cmd(ev, "STATUS Cron (MESSAGES UIDNEXT UIDVALIDITY)");
    send_status(ev, "Cron", 0, 1, true);
    fakesrv_reply(ev, t1, "OK done");
    free(t1);
    visit_empty(ev, "Cron", 1);
    expect_quiet(ev);
    assert_int_equal(status_of(a, "Cron").via, WATCHER_VIA_POLL);

    /* the connection drops; the next one polls without asking again */
    fakesrv_drop(ev, ERR_CLOSED, "gone");
    testlib_run_for(&w.loop, 1500);
    assert_int_equal(fakenet_count(w.net), 3);
    ev2 = fakenet_conn(w.net, 2);
    script_login(ev2, "alice", "s3cret", CAPS);
    t2 = expect_cmd(ev2, "STATUS Cron (MESSAGES UIDNEXT UIDVALIDITY)");
    send_status(ev2, "Cron", 0, 1, true);
    fakesrv_reply(ev2, t2, "OK done");
    free(t2);
    expect_quiet(ev2);
    log = testlog_text();
    for (p = log; (p = strstr(p, "NOTIFY SET refused")) != NULL; p++)
        n++;
    if (n != 1)
        fail_msg("log:\n%s", log);
    testlog_stop();
    end(&w, a);
}

/* A malformed STATUS line ends the connection; nothing is acted on. */
static void
test_malformed_status(void **state)
{
    struct world w;
    struct account *a;
    struct fakesrv *inbox, *ev;

    (void)state;
    testlog_start(LL_WARNING);
    a = start(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", ", notify: on")
                      CRON_DELETE);
    arm_and_settle(&w, &inbox, &ev);
    send_status(ev, "Cron", 1, 2, false);
    script_select(ev, "Cron", 1, 5, 2);
    /* while the sweep's first commands are out */
    fakesrv_send(ev, "* STATUS Other (MESSAGES 1 UIDNEXT)\r\n");
    testlib_run_for(&w.loop, 200);
    assert_true(fakesrv_closed(ev));
    expect_acted_within(ev, "", false);
    if (!testlog_has("protocol violation: malformed STATUS response"))
        fail_msg("log:\n%s", testlog_text());
    testlog_stop();
    end(&w, a);
}

/* notify: on, and the server has no NOTIFY: the mailboxes it would cover
 * show the error; the connection logs out and does not come back. */
static void
test_notify_on_without_notify(void **state)
{
    struct world w;
    struct account *a;
    struct fakesrv *ev;
    struct watcher_status st;

    (void)state;
    testlog_start(LL_ERROR);
    a = start(&w, DEFAULTS ACCOUNT("[{name: Cron, idle: false}]",
                                   ", notify: on") CRON_DELETE);
    assert_int_equal(fakenet_count(w.net), 1);
    ev = fakenet_conn(w.net, 0);
    script_login(ev, "alice", "s3cret", CAPS_NO_NOTIFY);
    expect_cmd_reply(ev, "LOGOUT", "OK bye");
    testlib_run_for(&w.loop, 2500);
    assert_int_equal(fakenet_count(w.net), 1);
    st = status_of(a, "Cron");
    assert_int_equal(st.state, WATCHER_ERROR);
    assert_non_null(st.last_error);
    assert_non_null(strstr(st.last_error, "does not offer NOTIFY"));
    assert_true(testlog_has("notify: on, but the server does not offer "
                            "NOTIFY"));
    testlog_stop();
    end(&w, a);
}

/* LIST events: a rename (stop), a deletion, then with on_rename: follow
 * the watcher takes the new name and is visited under it. */
static void
test_rename_and_delete(void **state)
{
    static const char *const cron2[] = {"Cron2"};
    struct world w;
    struct account *a;
    struct fakesrv *inbox, *ev;
    struct watcher_status st;

    (void)state;
    testlog_start(LL_WARNING);
    a = start(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", ", notify: on")
                      CRON_DELETE);
    arm_and_settle(&w, &inbox, &ev);
    fakesrv_send(ev, "* LIST () \"/\" Cron2 (\"OLDNAME\" (Cron))\r\n");
    fakesrv_send(ev, "* LIST (\\NonExistent) \"/\" Other\r\n");
    testlib_settle(&w.loop);
    st = status_of(a, "Cron");
    assert_int_equal(st.state, WATCHER_STOPPED);
    assert_string_equal(st.last_error,
                        "renamed to Cron2 on the server; not watched "
                        "(on_rename: stop)");
    st = status_of(a, "Other");
    assert_int_equal(st.state, WATCHER_STOPPED);
    assert_string_equal(st.last_error, "deleted on the server; not watched");
    /* no visit under either name */
    send_status(ev, "Cron2", 1, 2, false);
    send_status(ev, "Other", 1, 2, false);
    expect_quiet(ev);
    expect_quiet(inbox);
    testlog_stop();
    end(&w, a);

    a = start(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]",
                                   ", notify: on, on_rename: follow")
                      CRON_DELETE);
    arm_and_settle(&w, &inbox, &ev);
    fakesrv_send(ev, "* LIST () \"/\" Cron2 (\"OLDNAME\" (Cron))\r\n");
    testlib_settle(&w.loop);
    st = status_of(a, "Cron2");
    assert_int_equal(st.state, WATCHER_POLLING);
    send_status(ev, "Cron2", 1, 2, false);
    visit_empty(ev, "Cron2", 2);
    check_after(ev, cron2, 1, 2);
    expect_quiet(ev);
    end(&w, a);
}

/* Every idle_refresh the connection arms again; the STATUS lines of the
 * new NOTIFY SET bring a visit for what moved meanwhile. */
static void
test_rearm(void **state)
{
    static const char *const cron[] = {"Cron"};
    struct world w;
    struct account *a;
    struct fakesrv *inbox, *ev;
    char *t_set;

    (void)state;
    a = start(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]",
                                   ", notify: on, idle_refresh: 1s")
                      CRON_DELETE);
    arm_and_settle(&w, &inbox, &ev);
    t_set = expect_arm(ev);
    send_status(ev, "Cron", 1, 2, true);
    send_status(ev, "Other", 0, 1, true);
    fakesrv_reply(ev, t_set, "OK NOTIFY completed");
    free(t_set);
    visit_empty(ev, "Cron", 2);
    check_after(ev, cron, 1, 2);
    end(&w, a);
}

/* A reload while NOTIFY SET is in flight drops Cron and changes the
 * rules: the late STATUS line for Cron finds nothing, Other is visited. */
static void
test_reload_while_arming(void **state)
{
    static const char *const other[] = {"Other"};
    struct world w;
    struct account *a;
    struct fakesrv *inbox, *ev;
    struct config *old;
    char *t_set;

    (void)state;
    a = start(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", ", notify: on")
                      CRON_DELETE);
    inbox = fakenet_conn(w.net, 0);
    ev = fakenet_conn(w.net, 1);
    inbox_idles(inbox);
    script_login(ev, "alice", "s3cret", CAPS);
    t_set = expect_arm(ev);
    send_status(ev, "Cron", 0, 1, true);
    testlib_settle(&w.loop);

    old = world_reload(&w, DEFAULTS ACCOUNT("[INBOX, Other]", ", notify: on")
                               "rules:\n"
                               "  - {name: cron, match: {from: Cron}, "
                               "action: delete}\n");
    account_update(a, w.config, world_account(&w, "acct"));
    config_unref(old);
    testlib_settle(&w.loop);

    send_status(ev, "Cron", 0, 1, true);
    send_status(ev, "Other", 0, 1, true);
    fakesrv_reply(ev, t_set, "OK NOTIFY completed");
    free(t_set);
    visit_empty(ev, "Other", 1);
    check_after(ev, other, 1, 1);
    expect_quiet(ev);
    assert_int_equal(account_n_watchers(a), 2);
    end(&w, a);
}

/* A reload adds a mailbox left to the event connection: it arms again at
 * once, and the new mailbox's STATUS line brings its first sweep. */
static void
test_reload_adds_mailbox(void **state)
{
    static const char *const added[] = {"New"};
    struct world w;
    struct account *a;
    struct fakesrv *inbox, *ev;
    struct config *old;
    char *t_set;

    (void)state;
    a = start(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other]", ", notify: on")
                      CRON_DELETE);
    arm_and_settle(&w, &inbox, &ev);
    old = world_reload(&w, DEFAULTS ACCOUNT("[INBOX, Cron, Other, New]",
                                            ", notify: on") CRON_DELETE);
    account_update(a, w.config, world_account(&w, "acct"));
    config_unref(old);
    testlib_settle(&w.loop);
    t_set = expect_arm(ev);
    send_status(ev, "Cron", 0, 1, true);
    send_status(ev, "Other", 0, 1, true);
    send_status(ev, "New", 0, 1, true);
    fakesrv_reply(ev, t_set, "OK NOTIFY completed");
    free(t_set);
    visit_empty(ev, "New", 1);
    check_after(ev, added, 1, 1);
    expect_quiet(ev);
    expect_quiet(inbox);
    end(&w, a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_visits_changed),
        cmocka_unit_test(test_notify_set_refused),
        cmocka_unit_test(test_malformed_status),
        cmocka_unit_test(test_notify_on_without_notify),
        cmocka_unit_test(test_rename_and_delete),
        cmocka_unit_test(test_rearm),
        cmocka_unit_test(test_reload_while_arming),
        cmocka_unit_test(test_reload_adds_mailbox),
    };

    log_set_level(LL_ERROR);
    transcript_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
