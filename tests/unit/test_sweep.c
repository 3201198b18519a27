/* SPDX-License-Identifier: MIT */
/* Transcript tests of one sweep over an imap_conn and the test library's
 * scripted server, against servers that lie: a search result with more
 * UIDs than the mailbox has messages, a UID at or above the UIDNEXT the
 * server announced, an ESEARCH range of a hundred million UIDs. Each must
 * end the connection with a clear message, act on nothing, and never
 * allocate per UID it names (under ASan such an allocation fails the
 * test). Honest servers with new mail arriving mid-sweep, and long
 * results in descending order, still sweep normally; and the commands of a
 * purge by server-side matching alone are pinned (issue 16). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "config.h"
#include "errors.h"
#include "imap_conn.h"
#include "log.h"
#include "sweep.h"
#include "transcript.h"
#include "util.h"

#define RULES_CRON                                                           \
    "rules:\n"                                                               \
    "  - {name: cron, match: {from: Cron Daemon}, action: delete}\n"
#define RULES_REGEX                                                          \
    "rules:\n"                                                               \
    "  - {name: cron, match: {from: Cron Daemon, subject_regex: '^Cron'},"   \
    "     action: delete}\n"
#define ACCOUNT                                                              \
    "accounts:\n"                                                            \
    "  - {name: acct, host: imap.test, user: alice, password: s3cret,"       \
    "     tls: none, mailboxes: [INBOX]}\n"

struct st {
    uv_loop_t loop;
    struct fakenet *net;
    struct fakesrv *f;
    struct imap_conn *c;
    struct config *config;
    struct sweep_memo memo;
    const struct rule *rules[4];
    int ready, closed, closed_err;
    char closed_msg[512];
    int done;
    int result_err;
    char result_msg[512];
};

static void
ev_ready(struct imap_conn *c, void *arg)
{
    (void)c;
    ((struct st *)arg)->ready++;
}

static void
ev_closed(struct imap_conn *c, int err, const char *msg, void *arg)
{
    struct st *t = arg;

    (void)c;
    t->closed++;
    t->closed_err = err;
    util_strlcpy(t->closed_msg, msg, sizeof(t->closed_msg));
}

static const struct imap_conn_events events = {
    .ready = ev_ready,
    .closed = ev_closed,
};

static void
on_login(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    (void)c;
    (void)arg;
    assert_int_equal(r->status, IMAP_OK);
}

/* Connected, logged in, mailbox selected with exists and uidnext (0: not
 * announced); caps without ESEARCH make the sweep use plain SEARCH. */
static void
st_start(struct st *t, const char *rules, const char *caps, uint32_t exists,
         uint32_t uidnext)
{
    struct imap_conn_settings s = {
        .account = "acct", .mailbox = "INBOX", .host = "imap.test",
        .port = 143, .tls = IMAP_TLS_NONE, .command_timeout_ms = 5000,
        .allow_plaintext_auth = true,
    };
    char *yaml = xasprintf(ACCOUNT "%s", rules);
    struct config_diag diag;
    char *tag;

    memset(t, 0, sizeof(*t));
    config_diag_init(&diag);
    assert_int_equal(config_load_buffer("t.yaml", yaml, strlen(yaml),
                                        &t->config, &diag), 0);
    config_diag_free(&diag);
    free(yaml);
    for (size_t i = 0; i < t->config->n_rules && i < 4; i++)
        t->rules[i] = t->config->rules[i];
    assert_int_equal(uv_loop_init(&t->loop), 0);
    t->net = fakenet_new(&t->loop);
    t->f = fakenet_open(t->net);
    t->c = imap_conn_new_with_transport(fakesrv_transport(t->f), &t->loop,
                                        &s, &events, t);
    testlib_settle(&t->loop);
    fakesrv_printf(t->f, "* OK [CAPABILITY %s AUTH=PLAIN SASL-IR] hi\r\n",
                   caps);
    assert_int_equal(t->ready, 1);
    imap_conn_login(t->c, IMAP_AUTH_AUTO, "alice", "s3cret", 6, false,
                    on_login, t);
    tag = expect_cmd(t->f, "AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==");
    fakesrv_reply(t->f, tag, "OK [CAPABILITY %s] in", caps);
    free(tag);
    imap_conn_select(t->c, "INBOX", false, on_login, t);
    tag = expect_cmd(t->f, "SELECT INBOX");
    fakesrv_printf(t->f, "* %u EXISTS\r\n* OK [UIDVALIDITY 5] x\r\n", exists);
    if (uidnext != 0)
        fakesrv_printf(t->f, "* OK [UIDNEXT %u] x\r\n", uidnext);
    fakesrv_reply(t->f, tag, "OK [READ-WRITE] selected");
    free(tag);
}

static void
on_done(struct sweep *s, const struct sweep_result *r, void *arg)
{
    struct st *t = arg;

    (void)s;
    t->done++;
    t->result_err = r->err;
    util_strlcpy(t->result_msg, r->msg ? r->msg : "", sizeof(t->result_msg));
}

static struct sweep *
st_sweep_with(struct st *t, enum config_audit audit, size_t max_set_len)
{
    struct sweep_params p = {
        .conn = t->c,
        .config = t->config,
        .account = &t->config->accounts[0],
        .mailbox = "INBOX",
        .rules = t->rules,
        .n_rules = t->config->n_rules,
        .memo = &t->memo,
        .uid_lo = 1,
        .uidvalidity = 5,
        .audit = audit,
        .max_set_len = max_set_len,
    };
    struct sweep *s = sweep_start(&p, on_done, t);

    assert_non_null(s);
    return s;
}

static struct sweep *
st_sweep(struct st *t)
{
    return st_sweep_with(t, CONFIG_AUDIT_MESSAGES, 0);
}

static bool
is_closed(void *arg)
{
    return ((struct st *)arg)->closed > 0;
}

static void
st_end(struct st *t)
{
    imap_conn_free(t->c);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    fakenet_free(t->net);
    sweep_memo_free(&t->memo);
    config_unref(t->config);
    assert_int_equal(uv_loop_close(&t->loop), 0);
}

/* The liar ends its connection: a clear reason, no action, the sweep
 * reports the violation. */
static void
expect_violation(struct st *t, const char *why)
{
    assert_true(testlib_run_until(&t->loop, is_closed, t, 5000));
    assert_int_equal(t->closed_err, ERR_PROTOCOL);
    if (strstr(t->closed_msg, why) == NULL)
        fail_msg("closed with \"%s\", expected it to say \"%s\"",
                 t->closed_msg, why);
    assert_int_equal(t->done, 1);
    assert_int_equal(t->result_err, ERR_PROTOCOL);
    expect_acted_within(t->f, "", false);
}

/* The liar: "UID 100000000" for the top and "ALL 1:100000000" for
 * every search in a mailbox of 3 messages. */
static void
test_esearch_range_larger_than_mailbox(void **state)
{
    struct st t;
    char *t_top, *t_search;

    (void)state;
    st_start(&t, RULES_REGEX, "IMAP4rev1 IDLE UIDPLUS ESEARCH", 3, 0);
    st_sweep(&t);
    t_top = expect_cmd(t.f, "UID FETCH * (UID)");
    t_search = expect_cmd(t.f, "UID SEARCH RETURN (ALL) UID 1:* FROM "
                               "\"Cron Daemon\"");
    fakesrv_send(t.f, "* 3 FETCH (UID 100000000)\r\n");
    fakesrv_reply(t.f, t_top, "OK done");
    fakesrv_printf(t.f, "* ESEARCH (TAG \"%s\") UID ALL 1:100000000\r\n",
                   t_search);
    fakesrv_reply(t.f, t_search, "OK done");
    expect_violation(&t, "more than the 3 messages");
    /* no header fetch of a hundred million messages either */
    expect_quiet(t.f);
    free(t_top);
    free(t_search);
    st_end(&t);
}

/* Plain SEARCH (no ESEARCH): more numbers than messages. */
static void
test_search_numbers_larger_than_mailbox(void **state)
{
    struct st t;
    char *t_top, *t_search;
    struct buf line;

    (void)state;
    st_start(&t, RULES_CRON, "IMAP4rev1 IDLE UIDPLUS", 3, 0);
    st_sweep(&t);
    t_top = expect_cmd(t.f, "UID FETCH * (UID)");
    fakesrv_send(t.f, "* 3 FETCH (UID 3)\r\n");
    fakesrv_reply(t.f, t_top, "OK done");
    t_search = expect_cmd(t.f, "UID SEARCH UID 1:* FROM \"Cron Daemon\"");
    buf_init(&line, BUF_NOCAP);
    buf_append_str(&line, "* SEARCH");
    for (unsigned u = 1000; u > 0; u--)
        buf_printf(&line, " %u", u);
    buf_append_str(&line, "\r\n");
    fakesrv_send(t.f, line.data);
    buf_free(&line);
    fakesrv_reply(t.f, t_search, "OK done");
    expect_violation(&t, "holds 1000 UIDs, more than the 3 messages");
    free(t_top);
    free(t_search);
    st_end(&t);
}

/* A UID at or above the UIDNEXT the server gave, with no new message
 * announced since. */
static void
test_uid_beyond_uidnext(void **state)
{
    struct st t;
    char *t_top, *t_search;

    (void)state;
    st_start(&t, RULES_CRON, "IMAP4rev1 IDLE UIDPLUS ESEARCH", 3, 4);
    st_sweep(&t);
    t_top = expect_cmd(t.f, "UID FETCH * (UID)");
    t_search = expect_cmd(t.f, "UID SEARCH RETURN (ALL) UID 1:* FROM "
                               "\"Cron Daemon\"");
    fakesrv_send(t.f, "* 3 FETCH (UID 3)\r\n");
    fakesrv_reply(t.f, t_top, "OK done");
    fakesrv_printf(t.f, "* ESEARCH (TAG \"%s\") UID ALL 2,9\r\n", t_search);
    fakesrv_reply(t.f, t_search, "OK done");
    expect_violation(&t, "names UID 9, at or above the mailbox's UIDNEXT 4");
    free(t_top);
    free(t_search);
    st_end(&t);
}

/* Honest: new mail arrives between the top and the search (EXISTS first,
 * as RFC 3501 requires); its UIDs are beyond UIDNEXT and the top, and
 * are left for the next sweep. */
static void
test_new_mail_during_sweep_is_fine(void **state)
{
    struct st t;
    char *t_top, *t_search, *tag;

    (void)state;
    st_start(&t, RULES_CRON, "IMAP4rev1 IDLE UIDPLUS ESEARCH", 3, 4);
    st_sweep(&t);
    t_top = expect_cmd(t.f, "UID FETCH * (UID)");
    t_search = expect_cmd(t.f, "UID SEARCH RETURN (ALL) UID 1:* FROM "
                               "\"Cron Daemon\"");
    fakesrv_send(t.f, "* 3 FETCH (UID 3)\r\n");
    fakesrv_reply(t.f, t_top, "OK done");
    fakesrv_send(t.f, "* 5 EXISTS\r\n");
    fakesrv_printf(t.f, "* ESEARCH (TAG \"%s\") UID ALL 1:5\r\n", t_search);
    fakesrv_reply(t.f, t_search, "OK done");
    tag = expect_cmd(t.f, "UID FETCH 1:3 (UID BODY.PEEK[HEADER.FIELDS "
                          "(From Subject Message-ID)])");
    fakesrv_reply(t.f, tag, "OK done");
    free(tag);
    expect_cmd_reply(t.f, "UID STORE 1:3 +FLAGS.SILENT (\\Deleted)", "OK");
    expect_cmd_reply(t.f, "UID EXPUNGE 1:3", "OK");
    testlib_settle(&t.loop);
    assert_int_equal(t.done, 1);
    assert_int_equal(t.result_err, 0);
    assert_int_equal(t.closed, 0);
    expect_acted_within(t.f, "1:3", false);
    free(t_top);
    free(t_search);
    st_end(&t);
}

/* 150,000 UIDs in one SEARCH line, in descending order, in a mailbox that
 * has them: accepted, and acted on in one command. */
static void
test_long_descending_search(void **state)
{
    struct st t;
    char *t_top, *t_search, *tag;
    struct buf line;

    (void)state;
    st_start(&t, RULES_CRON, "IMAP4rev1 IDLE UIDPLUS", 150000, 150001);
    st_sweep(&t);
    t_top = expect_cmd(t.f, "UID FETCH * (UID)");
    fakesrv_send(t.f, "* 150000 FETCH (UID 150000)\r\n");
    fakesrv_reply(t.f, t_top, "OK done");
    t_search = expect_cmd(t.f, "UID SEARCH UID 1:* FROM \"Cron Daemon\"");
    buf_init(&line, BUF_NOCAP);
    buf_append_str(&line, "* SEARCH");
    for (unsigned u = 150000; u > 0; u--)
        buf_printf(&line, " %u", u);
    buf_append_str(&line, "\r\n");
    fakesrv_send(t.f, line.data);
    buf_free(&line);
    fakesrv_reply(t.f, t_search, "OK done");
    tag = expect_cmd(t.f, "UID FETCH 1:150000 (UID BODY.PEEK[HEADER.FIELDS "
                          "(From Subject Message-ID)])");
    fakesrv_reply(t.f, tag, "OK done");
    free(tag);
    expect_cmd_reply(t.f, "UID STORE 1:150000 +FLAGS.SILENT (\\Deleted)",
                     "OK");
    expect_cmd_reply(t.f, "UID EXPUNGE 1:150000", "OK");
    testlib_settle(&t.loop);
    assert_int_equal(t.result_err, 0);
    assert_int_equal(t.closed, 0);
    free(t_top);
    free(t_search);
    st_end(&t);
}

/* The release blocker of issue 12: with the actions in several chunks, a
 * UIDVALIDITY change reported in the reply to the first chunk must stop
 * the rest. The chunks used to be pipelined all at once, so the later
 * ones named UIDs of another mailbox generation. */
static void
test_uidvalidity_change_between_chunks(void **state)
{
    struct st t;
    char *t_top, *t_search, *tag;

    (void)state;
    st_start(&t, RULES_CRON, "IMAP4rev1 IDLE UIDPLUS ESEARCH", 5, 6);
    /* one range a command: "1", "3", "5" */
    st_sweep_with(&t, CONFIG_AUDIT_MESSAGES, 1);
    t_top = expect_cmd(t.f, "UID FETCH * (UID)");
    t_search = expect_cmd(t.f, "UID SEARCH RETURN (ALL) UID 1:* FROM "
                               "\"Cron Daemon\"");
    fakesrv_send(t.f, "* 5 FETCH (UID 5)\r\n");
    fakesrv_reply(t.f, t_top, "OK done");
    fakesrv_printf(t.f, "* ESEARCH (TAG \"%s\") UID ALL 1,3,5\r\n",
                   t_search);
    fakesrv_reply(t.f, t_search, "OK done");
    for (unsigned u = 1; u <= 5; u += 2) {
        char *want = xasprintf("UID FETCH %u (UID BODY.PEEK[HEADER.FIELDS "
                               "(From Subject Message-ID)])", u);

        tag = expect_cmd(t.f, want);
        fakesrv_reply(t.f, tag, "OK done");
        free(tag);
        free(want);
    }
    tag = expect_cmd(t.f, "UID STORE 1 +FLAGS.SILENT (\\Deleted)");
    fakesrv_send(t.f, "* OK [UIDVALIDITY 6] the mailbox was recreated\r\n");
    fakesrv_reply(t.f, tag, "OK");
    free(tag);
    testlib_settle(&t.loop);
    /* nothing after the first chunk: no STORE 3 or 5, no EXPUNGE */
    expect_acted_within(t.f, "1", false);
    assert_null(strstr(fakesrv_all(t.f), "EXPUNGE"));
    assert_int_equal(t.done, 1);
    assert_int_equal(t.result_err, ERR_UIDVALIDITY);
    free(t_top);
    free(t_search);
    st_end(&t);
}

/* Sent one at a time, the chunks give a stop a new place to land: between
 * two of them. The rest is not sent, and what the first flagged \Deleted
 * is taken back, as for a stop between STORE and EXPUNGE. */
static void
test_cancel_between_chunks(void **state)
{
    struct st t;
    struct sweep *s;
    char *t_top, *t_search, *tag;

    (void)state;
    st_start(&t, RULES_CRON, "IMAP4rev1 IDLE UIDPLUS ESEARCH", 5, 6);
    s = st_sweep_with(&t, CONFIG_AUDIT_MESSAGES, 1);
    t_top = expect_cmd(t.f, "UID FETCH * (UID)");
    t_search = expect_cmd(t.f, "UID SEARCH RETURN (ALL) UID 1:* FROM "
                               "\"Cron Daemon\"");
    fakesrv_send(t.f, "* 5 FETCH (UID 5)\r\n");
    fakesrv_reply(t.f, t_top, "OK done");
    fakesrv_printf(t.f, "* ESEARCH (TAG \"%s\") UID ALL 1,3,5\r\n",
                   t_search);
    fakesrv_reply(t.f, t_search, "OK done");
    for (unsigned u = 1; u <= 5; u += 2) {
        char *want = xasprintf("UID FETCH %u (UID BODY.PEEK[HEADER.FIELDS "
                               "(From Subject Message-ID)])", u);

        tag = expect_cmd(t.f, want);
        fakesrv_reply(t.f, tag, "OK done");
        free(tag);
        free(want);
    }
    tag = expect_cmd(t.f, "UID STORE 1 +FLAGS.SILENT (\\Deleted)");
    sweep_cancel(s);
    fakesrv_reply(t.f, tag, "OK");
    free(tag);
    expect_cmd_reply(t.f, "UID STORE 1 -FLAGS.SILENT (\\Deleted)", "OK");
    expect_quiet(t.f);
    assert_int_equal(t.done, 1);
    assert_int_equal(t.result_err, ERR_CANCELLED);
    expect_acted_within(t.f, "1", false);
    free(t_top);
    free(t_search);
    st_end(&t);
}

/* A UIDVALIDITY that changes and comes back before the actions (found by
 * fuzz_sweep): the search that ran meanwhile ran in another mailbox
 * generation, and the value alone, 5 again at the check, did not show it.
 * The connection counts the changes; the sweep compares the count. */
static void
test_uidvalidity_change_and_back(void **state)
{
    struct st t;
    char *t_top, *t_search, *tag;

    (void)state;
    st_start(&t, RULES_CRON, "IMAP4rev1 IDLE UIDPLUS ESEARCH", 5, 6);
    st_sweep(&t);
    t_top = expect_cmd(t.f, "UID FETCH * (UID)");
    t_search = expect_cmd(t.f, "UID SEARCH RETURN (ALL) UID 1:* FROM "
                               "\"Cron Daemon\"");
    fakesrv_send(t.f, "* OK [UIDVALIDITY 6] recreated\r\n");
    fakesrv_send(t.f, "* 5 FETCH (UID 5)\r\n");
    fakesrv_reply(t.f, t_top, "OK done");
    fakesrv_printf(t.f, "* ESEARCH (TAG \"%s\") UID ALL 1:5\r\n",
                   t_search);
    fakesrv_reply(t.f, t_search, "OK [UIDVALIDITY 5] done");
    tag = expect_cmd(t.f, "UID FETCH 1:5 (UID BODY.PEEK[HEADER.FIELDS "
                          "(From Subject Message-ID)])");
    fakesrv_reply(t.f, tag, "OK done");
    free(tag);
    testlib_settle(&t.loop);
    expect_acted_within(t.f, "", false);
    assert_int_equal(t.done, 1);
    assert_int_equal(t.result_err, ERR_UIDVALIDITY);
    free(t_top);
    free(t_search);
    st_end(&t);
}

/* A liar whose claims agree: 4294967295 messages, the top UID 4294967295,
 * every search ALL 1:4294967295 (found by fuzz_sweep, an EXISTS of
 * 4294967295 sent mid-sweep: the bound of every per-UID expansion was the
 * EXISTS, so it allocated 3 GB). A sweep handles at most
 * SWEEP_MAX_MESSAGES in one mailbox, whatever the EXISTS says. */
static void
test_exists_beyond_what_a_sweep_handles(void **state)
{
    struct st t;
    char *t_top, *t_search;

    (void)state;
    st_start(&t, RULES_REGEX, "IMAP4rev1 IDLE UIDPLUS ESEARCH", 3, 0);
    st_sweep(&t);
    t_top = expect_cmd(t.f, "UID FETCH * (UID)");
    t_search = expect_cmd(t.f, "UID SEARCH RETURN (ALL) UID 1:* FROM "
                               "\"Cron Daemon\"");
    fakesrv_send(t.f, "* 4294967295 EXISTS\r\n");
    fakesrv_send(t.f, "* 4294967295 FETCH (UID 4294967295)\r\n");
    fakesrv_reply(t.f, t_top, "OK done");
    fakesrv_printf(t.f, "* ESEARCH (TAG \"%s\") UID ALL 1:4294967295\r\n",
                   t_search);
    fakesrv_reply(t.f, t_search, "OK done");
    expect_violation(&t, "more than the 1000000 messages a sweep handles");
    expect_quiet(t.f);
    free(t_top);
    free(t_search);
    st_end(&t);
}

/* The purge of issue 16, pinned: a delete rule matched by the server
 * alone, audit counts. The top and one search go out together; no FETCH
 * of anything else; the STOREs (chunked by set length), then the UID
 * EXPUNGEs over the same chunks, each after the previous reply (every
 * action chunk waits for the one before and the UIDVALIDITY check: see
 * test_uidvalidity_change_between_chunks). What the server costs is
 * measured by bench/purge_cost.py. */
static void
test_server_side_delete_sequence(void **state)
{
    struct st t;
    char *t_top, *t_search, *t_s1, *t_s2, *t_e1;

    (void)state;
    st_start(&t, RULES_CRON, "IMAP4rev1 IDLE UIDPLUS ESEARCH", 12, 13);
    st_sweep_with(&t, CONFIG_AUDIT_COUNTS, 8);
    t_top = expect_cmd(t.f, "UID FETCH * (UID)");
    t_search = expect_cmd(t.f, "UID SEARCH RETURN (ALL) UID 1:* FROM "
                               "\"Cron Daemon\"");
    fakesrv_send(t.f, "* 12 FETCH (UID 12)\r\n");
    fakesrv_reply(t.f, t_top, "OK done");
    fakesrv_printf(t.f, "* ESEARCH (TAG \"%s\") UID ALL 1:3,5,7,9,11\r\n",
                   t_search);
    fakesrv_reply(t.f, t_search, "OK done");
    t_s1 = expect_cmd(t.f, "UID STORE 1:3,5,7 +FLAGS.SILENT (\\Deleted)");
    expect_quiet(t.f);
    fakesrv_reply(t.f, t_s1, "OK done");
    t_s2 = expect_cmd(t.f, "UID STORE 9,11 +FLAGS.SILENT (\\Deleted)");
    expect_quiet(t.f);
    fakesrv_reply(t.f, t_s2, "OK done");
    t_e1 = expect_cmd(t.f, "UID EXPUNGE 1:3,5,7");
    expect_quiet(t.f);
    fakesrv_reply(t.f, t_e1, "OK done");
    expect_cmd_reply(t.f, "UID EXPUNGE 9,11", "OK done");
    expect_quiet(t.f);
    assert_int_equal(t.done, 1);
    assert_int_equal(t.result_err, 0);
    assert_int_equal(t.closed, 0);
    expect_acted_within(t.f, "1:3,5,7,9,11", false);
    free(t_top);
    free(t_search);
    free(t_s1);
    free(t_s2);
    free(t_e1);
    st_end(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_esearch_range_larger_than_mailbox),
        cmocka_unit_test(test_search_numbers_larger_than_mailbox),
        cmocka_unit_test(test_uid_beyond_uidnext),
        cmocka_unit_test(test_new_mail_during_sweep_is_fine),
        cmocka_unit_test(test_long_descending_search),
        cmocka_unit_test(test_uidvalidity_change_between_chunks),
        cmocka_unit_test(test_cancel_between_chunks),
        cmocka_unit_test(test_uidvalidity_change_and_back),
        cmocka_unit_test(test_exists_beyond_what_a_sweep_handles),
        cmocka_unit_test(test_server_side_delete_sequence),
    };

    log_set_level(LL_ERROR);
    transcript_filter_from_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
