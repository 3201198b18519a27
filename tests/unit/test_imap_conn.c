/* SPDX-License-Identifier: MIT */
/* The IMAP session against the test library's scripted server
 * (tests/unit/lib): what goes on the wire, in which order, and what the
 * callbacks see. A real libuv loop runs the timers; the "server" is the
 * test writing bytes into the connection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "errors.h"
#include "imap_conn.h"
#include "log.h"
#include "testlib.h"
#include "util.h"

/* --- the test's view ----------------------------------------------------- */

struct world {
    uv_loop_t loop;
    struct fakenet *net;
    struct fakesrv *f;      /* the server's end; outlives the transport */
    struct imap_conn *c;
    int ready;
    int closed;
    int closed_err;
    char closed_msg[256];
    struct buf events;      /* untagged responses given to the owner */
    bool free_on_close;
};

struct done {
    int calls;
    enum imap_status status;
    char text[128];
    char code[32];
};

static void
on_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct done *d = arg;

    (void)c;
    d->calls++;
    d->status = r->status;
    util_strlcpy(d->text, r->text ? r->text : "", sizeof(d->text));
    util_strlcpy(d->code, r->code ? r->code : "", sizeof(d->code));
}

static void
ev_ready(struct imap_conn *c, void *arg)
{
    (void)c;
    ((struct world *)arg)->ready++;
}

static void
ev_untagged(struct imap_conn *c, const struct imap_response *r, void *arg)
{
    struct world *w = arg;

    (void)c;
    buf_printf(&w->events, "%s%s%u;", r->name ? r->name : "?",
               r->has_number ? ":" : "", r->has_number ? r->number : 0);
}

static void
ev_closed(struct imap_conn *c, int err, const char *msg, void *arg)
{
    struct world *w = arg;

    w->closed++;
    w->closed_err = err;
    util_strlcpy(w->closed_msg, msg, sizeof(w->closed_msg));
    if (w->free_on_close)
        imap_conn_free(c);
}

static const struct imap_conn_events events = {
    .ready = ev_ready,
    .untagged = ev_untagged,
    .closed = ev_closed,
};

static void
world_start(struct world *w, enum imap_tls_mode tls, bool allow_plain,
            uint64_t timeout_ms, uint64_t idle_ms)
{
    struct imap_conn_settings s = {
        .account = "acct",
        .mailbox = "INBOX",
        .host = "imap.example.org",
        .port = 143,
        .tls = tls,
        .command_timeout_ms = timeout_ms,
        .idle_refresh_ms = idle_ms,
        .allow_plaintext_auth = allow_plain,
    };

    memset(w, 0, sizeof(*w));
    uv_loop_init(&w->loop);
    buf_init(&w->events, BUF_NOCAP);
    w->net = fakenet_new(&w->loop);
    w->f = fakenet_open(w->net);
    w->c = imap_conn_new_with_transport(fakesrv_transport(w->f), &w->loop,
                                        &s, &events, w);
    testlib_settle(&w->loop); /* connected */
}

static void
run(struct world *w)
{
    testlib_settle(&w->loop);
}

/* Server bytes arrive (split in two reads, to exercise the parser). */
static void
serve(struct world *w, const char *text)
{
    size_t len = strlen(text), half = len / 2;

    fakesrv_send_bytes(w->f, text, half);
    fakesrv_send_bytes(w->f, text + half, len - half);
}

/* What the client sent since the last call. Caller frees. */
static char *
sent(struct world *w)
{
    return fakesrv_take(w->f);
}

/* Forget what the client sent so far. */
static void
skip_sent(struct world *w)
{
    free(fakesrv_take(w->f));
}

static void
expect_sent(struct world *w, const char *want)
{
    char *got = sent(w);

    assert_string_equal(got, want);
    free(got);
}

static void
world_end(struct world *w)
{
    if (!w->free_on_close || w->closed == 0)
        imap_conn_free(w->c);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_true(fakesrv_closed(w->f)); /* its transport closed with it */
    fakenet_free(w->net);
    buf_free(&w->events);
    assert_int_equal(uv_loop_close(&w->loop), 0);
}

static const char *GREETING_CAPS =
    "* OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS ESEARCH AUTH=PLAIN SASL-IR] hi\r\n";

/* Up to a selected mailbox; clears what was sent. */
static void
login_select(struct world *w)
{
    struct done d = {0};

    serve(w, GREETING_CAPS);
    assert_int_equal(w->ready, 1);
    imap_conn_login(w->c, IMAP_AUTH_AUTO, "alice", "s3cret", 6, false,
                    on_done, &d);
    serve(w, "A1 OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS ESEARCH MOVE] in\r\n");
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, IMAP_OK);
    imap_conn_select(w->c, "INBOX", false, on_done, &d);
    serve(w, "* 3 EXISTS\r\n* OK [UIDVALIDITY 77] x\r\n"
             "* OK [UIDNEXT 4] x\r\nA2 OK [READ-WRITE] done\r\n");
    assert_int_equal(d.calls, 2);
    assert_int_equal(imap_conn_state(w->c), IMAP_CONN_SELECTED);
    skip_sent(w);
    buf_reset(&w->events);
}

/* --- tests --------------------------------------------------------------- */

static void
test_login_plain_sasl_ir(void **state)
{
    struct world w;
    struct done d = {0};
    const struct imap_mailbox_info *mb;

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    serve(&w, GREETING_CAPS);
    assert_int_equal(w.ready, 1);
    assert_true(imap_conn_has_cap(w.c, "sasl-ir"));
    imap_conn_login(w.c, IMAP_AUTH_AUTO, "alice", "s3cret", 6, false,
                    on_done, &d);
    /* \0alice\0s3cret */
    expect_sent(&w, "A1 AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==\r\n");
    serve(&w, "A1 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n");
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, IMAP_OK);
    /* capabilities came with the OK: no CAPABILITY command */
    expect_sent(&w, "");
    assert_true(imap_conn_has_cap(w.c, "MOVE"));
    assert_false(imap_conn_has_cap(w.c, "SASL-IR"));
    imap_conn_select(w.c, "INBOX", false, on_done, &d);
    expect_sent(&w, "A2 SELECT INBOX\r\n");
    serve(&w, "* 3 EXISTS\r\n* OK [UIDVALIDITY 77] x\r\n"
              "* OK [UIDNEXT 4] x\r\nA2 OK [READ-WRITE] done\r\n");
    mb = imap_conn_mailbox(w.c);
    assert_true(mb->selected);
    assert_int_equal(mb->exists, 3);
    assert_int_equal(mb->uidvalidity, 77);
    assert_int_equal(mb->uidnext, 4);
    assert_false(mb->readonly);
    world_end(&w);
}

static void
test_login_command_and_capability(void **state)
{
    struct world w;
    struct done d = {0};

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    serve(&w, "* OK ready\r\n");
    /* no capabilities in the greeting: ask */
    expect_sent(&w, "A1 CAPABILITY\r\n");
    assert_int_equal(w.ready, 0);
    serve(&w, "* CAPABILITY IMAP4rev1 IDLE\r\nA1 OK done\r\n");
    assert_int_equal(w.ready, 1);
    imap_conn_login(w.c, IMAP_AUTH_AUTO, "al ice", "p\"w", 3, false, on_done,
                    &d);
    expect_sent(&w, "A2 LOGIN \"al ice\" \"p\\\"w\"\r\n");
    serve(&w, "A2 OK logged in\r\n");
    /* no capabilities in the OK: refreshed */
    expect_sent(&w, "A3 CAPABILITY\r\n");
    assert_int_equal(d.calls, 0);
    serve(&w, "* CAPABILITY IMAP4rev1 IDLE UIDPLUS\r\nA3 OK done\r\n");
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, IMAP_OK);
    assert_true(imap_conn_has_cap(w.c, "UIDPLUS"));
    world_end(&w);
}

static void
test_login_refused_and_plain_continuation(void **state)
{
    struct world w;
    struct done d = {0};

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    serve(&w, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n");
    imap_conn_login(w.c, IMAP_AUTH_PLAIN, "alice", "s3cret", 6, false,
                    on_done, &d);
    /* no SASL-IR: the credentials wait for the continuation */
    expect_sent(&w, "A1 AUTHENTICATE PLAIN\r\n");
    serve(&w, "+ \r\n");
    expect_sent(&w, "AGFsaWNlAHMzY3JldA==\r\n");
    serve(&w, "A1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, IMAP_NO);
    assert_string_equal(d.code, "AUTHENTICATIONFAILED");
    assert_int_equal(w.closed, 0); /* the session itself is fine */
    world_end(&w);
}

static void
test_xoauth2_error_dance(void **state)
{
    struct world w;
    struct done d = {0};

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    serve(&w, "* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 SASL-IR] hi\r\n");
    imap_conn_login(w.c, IMAP_AUTH_AUTO, "a@b.c", "tok", 3, true, on_done,
                    &d);
    /* user=a@b.c^Aauth=Bearer tok^A^A */
    expect_sent(&w, "A1 AUTHENTICATE XOAUTH2 "
                    "dXNlcj1hQGIuYwFhdXRoPUJlYXJlciB0b2sBAQ==\r\n");
    serve(&w, "+ eyJzdGF0dXMiOiI0MDEifQ==\r\n");
    /* the error challenge is acknowledged with an empty line */
    expect_sent(&w, "\r\n");
    serve(&w, "A1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n");
    assert_int_equal(d.status, IMAP_NO);
    world_end(&w);
}

static void
test_logindisabled_and_no_tls(void **state)
{
    struct world w;
    struct done d = {0};

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    serve(&w, "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi\r\n");
    imap_conn_login(w.c, IMAP_AUTH_AUTO, "alice", "pw", 2, false, on_done,
                    &d);
    assert_int_equal(w.closed, 0); /* reported from the loop */
    run(&w);
    assert_int_equal(w.closed, 1);
    assert_int_equal(w.closed_err, ERR_UNSUPPORTED);
    assert_non_null(strstr(w.closed_msg, "LOGINDISABLED"));
    expect_sent(&w, ""); /* nothing, certainly no password */
    assert_int_equal(d.calls, 0);
    world_end(&w);

    /* without TLS and without permission, credentials never leave */
    world_start(&w, IMAP_TLS_NONE, false, 5000, 60000);
    serve(&w, GREETING_CAPS);
    imap_conn_login(w.c, IMAP_AUTH_AUTO, "alice", "pw", 2, false, on_done,
                    &d);
    run(&w);
    assert_int_equal(w.closed, 1);
    assert_non_null(strstr(w.closed_msg, "without TLS"));
    expect_sent(&w, "");
    world_end(&w);
}

static void
test_starttls(void **state)
{
    struct world w;

    (void)state;
    /* offered: STARTTLS, then capabilities again over TLS */
    world_start(&w, IMAP_TLS_STARTTLS, false, 5000, 60000);
    serve(&w, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n");
    expect_sent(&w, "A1 STARTTLS\r\n");
    assert_int_equal(w.ready, 0);
    serve(&w, "A1 OK Begin TLS negotiation now.\r\n");
    assert_true(fakesrv_tls(w.f));
    expect_sent(&w, "A2 CAPABILITY\r\n");
    serve(&w, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nA2 OK done\r\n");
    assert_int_equal(w.ready, 1);
    assert_false(imap_conn_has_cap(w.c, "LOGINDISABLED"));
    world_end(&w);

    /* not offered: never continue in plaintext */
    world_start(&w, IMAP_TLS_STARTTLS, false, 5000, 60000);
    serve(&w, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n");
    assert_int_equal(w.closed, 1);
    assert_int_equal(w.closed_err, ERR_UNSUPPORTED);
    assert_int_equal(w.ready, 0);
    expect_sent(&w, "");
    world_end(&w);

    /* PREAUTH makes STARTTLS impossible: refuse */
    world_start(&w, IMAP_TLS_STARTTLS, false, 5000, 60000);
    serve(&w, "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n");
    assert_int_equal(w.closed, 1);
    assert_non_null(strstr(w.closed_msg, "PREAUTH"));
    world_end(&w);

    /* bytes sent in plaintext after the OK are an injection attempt */
    world_start(&w, IMAP_TLS_STARTTLS, false, 5000, 60000);
    serve(&w, "* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n");
    skip_sent(&w);
    fakesrv_send(w.f, "A1 OK go\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
    assert_int_equal(w.closed, 1);
    assert_int_equal(w.closed_err, ERR_PROTOCOL);
    world_end(&w);
}

static void
test_preauth(void **state)
{
    struct world w;

    (void)state;
    world_start(&w, IMAP_TLS_NONE, false, 5000, 60000);
    serve(&w, "* PREAUTH [CAPABILITY IMAP4rev1 IDLE] tunnel\r\n");
    assert_int_equal(w.ready, 1);
    assert_int_equal(imap_conn_state(w.c), IMAP_CONN_AUTH);
    world_end(&w);
}

static struct imap_build *
cmd(struct imap_conn *c, const char *text)
{
    struct imap_build *b = imap_conn_build(c);

    imap_build_atom(b, text);
    return b;
}

static void
test_pipelining_and_barriers(void **state)
{
    struct world w;
    struct done d1 = {0}, d2 = {0}, d3 = {0}, d4 = {0};
    struct imap_cmd_opts o1 = {.done = on_done, .arg = &d1};
    struct imap_cmd_opts o2 = {.done = on_done, .arg = &d2};
    struct imap_cmd_opts o3 = {.done = on_done, .arg = &d3};
    struct imap_cmd_opts o4 = {.done = on_done, .arg = &d4};

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    login_select(&w);
    imap_conn_submit(w.c, cmd(w.c, "UID FETCH 1 (FLAGS)"), &o1);
    imap_conn_submit(w.c, cmd(w.c, "UID FETCH 2 (FLAGS)"), &o2);
    imap_conn_submit(w.c, cmd(w.c, "UID EXPUNGE 1"), &o3);
    imap_conn_submit(w.c, cmd(w.c, "NOOP"), &o4);
    /* both fetches go out at once; the expunge waits for them */
    expect_sent(&w, "A3 UID FETCH 1 (FLAGS)\r\nA4 UID FETCH 2 (FLAGS)\r\n");
    serve(&w, "A4 OK done\r\n");
    assert_int_equal(d2.calls, 1);
    expect_sent(&w, "");
    serve(&w, "A3 OK done\r\n");
    expect_sent(&w, "A5 UID EXPUNGE 1\r\n");
    /* and holds the queue until it completes */
    serve(&w, "* 1 EXPUNGE\r\n");
    expect_sent(&w, "");
    serve(&w, "A5 OK done\r\n");
    expect_sent(&w, "A6 NOOP\r\n");
    serve(&w, "A6 OK done\r\n");
    assert_int_equal(d1.calls + d2.calls + d3.calls + d4.calls, 4);
    assert_int_equal(imap_conn_mailbox(w.c)->exists, 2);
    assert_string_equal(buf_cstr(&w.events), "EXPUNGE:1;");
    world_end(&w);
}

static void
test_synchronizing_literal(void **state)
{
    struct world w;
    struct done d1 = {0}, d2 = {0};
    struct imap_cmd_opts o1 = {.done = on_done, .arg = &d1};
    struct imap_cmd_opts o2 = {.done = on_done, .arg = &d2};
    struct imap_build *b;

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    login_select(&w);
    b = imap_conn_build(w.c);
    imap_build_atom(b, "UID");
    imap_build_atom(b, "SEARCH");
    imap_build_atom(b, "CHARSET");
    imap_build_atom(b, "UTF-8");
    imap_build_atom(b, "SUBJECT");
    imap_build_string(b, "caf\xc3\xa9", 5);
    imap_conn_submit(w.c, b, &o1);
    imap_conn_submit(w.c, cmd(w.c, "NOOP"), &o2);
    /* nothing goes behind a command waiting for "+" */
    expect_sent(&w, "A3 UID SEARCH CHARSET UTF-8 SUBJECT {5}\r\n");
    serve(&w, "+ go ahead\r\n");
    expect_sent(&w, "caf\xc3\xa9\r\nA4 NOOP\r\n");
    serve(&w, "* SEARCH 2\r\nA3 OK done\r\nA4 OK done\r\n");
    assert_int_equal(d1.status, IMAP_OK);
    assert_int_equal(d2.status, IMAP_OK);

    /* a literal the server refuses: NO instead of "+" */
    b = imap_conn_build(w.c);
    imap_build_atom(b, "UID");
    imap_build_atom(b, "SEARCH");
    imap_build_atom(b, "SUBJECT");
    imap_build_string(b, "a\r\nb", 4);
    imap_conn_submit(w.c, b, &o1);
    expect_sent(&w, "A5 UID SEARCH SUBJECT {4}\r\n");
    serve(&w, "A5 NO too big\r\n");
    assert_int_equal(d1.status, IMAP_NO);
    imap_conn_submit(w.c, cmd(w.c, "NOOP"), &o2);
    expect_sent(&w, "A6 NOOP\r\n");
    world_end(&w);
}

static void
test_idle_cycle(void **state)
{
    struct world w;
    struct done d = {0};
    struct imap_cmd_opts o = {.done = on_done, .arg = &d};

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    login_select(&w);
    imap_conn_idle(w.c, true);
    expect_sent(&w, "A3 IDLE\r\n");
    assert_false(imap_conn_is_idling(w.c));
    serve(&w, "+ idling\r\n");
    assert_true(imap_conn_is_idling(w.c));
    serve(&w, "* 4 EXISTS\r\n* 1 RECENT\r\n");
    assert_string_equal(buf_cstr(&w.events), "EXISTS:4;RECENT:1;");
    assert_int_equal(imap_conn_mailbox(w.c)->exists, 4);
    /* a command ends IDLE with DONE and follows it at once (no round
     * trip for IDLE's OK); IDLE resumes when the queue is empty */
    imap_conn_submit(w.c, cmd(w.c, "UID FETCH 4 (UID)"), &o);
    expect_sent(&w, "DONE\r\nA4 UID FETCH 4 (UID)\r\n");
    serve(&w, "A3 OK Idle completed.\r\n");
    expect_sent(&w, "");
    serve(&w, "* 4 FETCH (UID 9)\r\nA4 OK done\r\n");
    assert_int_equal(d.calls, 1);
    expect_sent(&w, "A5 IDLE\r\n");
    /* a command submitted before "+" waits for it, then DONE */
    imap_conn_submit(w.c, cmd(w.c, "NOOP"), &o);
    expect_sent(&w, "");
    serve(&w, "+ idling\r\n");
    expect_sent(&w, "DONE\r\nA6 NOOP\r\n");
    serve(&w, "A5 OK done\r\nA6 OK done\r\n");
    expect_sent(&w, "A7 IDLE\r\n");
    serve(&w, "+ idling\r\n");
    /* a barrier waits for IDLE's tagged OK */
    imap_conn_select(w.c, "Archive", false, on_done, &d);
    expect_sent(&w, "DONE\r\n");
    serve(&w, "A7 OK done\r\n");
    expect_sent(&w, "A8 SELECT Archive\r\n");
    world_end(&w);
}

static void
test_idle_refresh(void **state)
{
    struct world w;
    uint64_t start;

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 50);
    login_select(&w);
    imap_conn_idle(w.c, true);
    serve(&w, "+ idling\r\n");
    expect_sent(&w, "A3 IDLE\r\n");
    start = uv_now(&w.loop);
    assert_true(fakesrv_wait_line(w.f, 5000));
    assert_true(uv_now(&w.loop) - start >= 45);
    expect_sent(&w, "DONE\r\n");
    serve(&w, "A3 OK done\r\n");
    expect_sent(&w, "A4 IDLE\r\n");
    world_end(&w);
}

static void
test_done_unanswered_times_out(void **state)
{
    struct world w;

    (void)state;
    /* idle_refresh 50 ms, command_timeout 100 ms: DONE is never answered */
    world_start(&w, IMAP_TLS_NONE, true, 100, 50);
    login_select(&w);
    imap_conn_idle(w.c, true);
    serve(&w, "+ idling\r\n");
    while (w.closed == 0)
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_int_equal(w.closed_err, ERR_TIMEOUT);
    assert_non_null(strstr(w.closed_msg, "DONE"));
    world_end(&w);
}

static void
test_timeout_cancels_everything_once(void **state)
{
    struct world w;
    struct done d1 = {0}, d2 = {0};
    struct imap_cmd_opts o1 = {.done = on_done, .arg = &d1};
    struct imap_cmd_opts o2 = {.done = on_done, .arg = &d2};

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 100, 60000);
    login_select(&w);
    imap_conn_submit(w.c, cmd(w.c, "UID EXPUNGE 1"), &o1);
    imap_conn_submit(w.c, cmd(w.c, "NOOP"), &o2);
    /* data keeps the command alive; silence ends it */
    serve(&w, "* 1 EXPUNGE\r\n");
    while (w.closed == 0)
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_int_equal(w.closed_err, ERR_TIMEOUT);
    assert_int_equal(d1.calls, 1);
    assert_int_equal(d1.status, IMAP_DISCONNECTED);
    assert_int_equal(d2.calls, 1);
    assert_int_equal(d2.status, IMAP_DISCONNECTED);
    /* submitting after the end: refused, no callback */
    assert_true(imap_conn_submit(w.c, cmd(w.c, "NOOP"), &o1) < 0);
    assert_int_equal(d1.calls, 1);
    world_end(&w);
}

static void
test_bye_and_garbage(void **state)
{
    struct world w;
    struct done d = {0};
    struct imap_cmd_opts o = {.done = on_done, .arg = &d};

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    login_select(&w);
    imap_conn_submit(w.c, cmd(w.c, "NOOP"), &o);
    serve(&w, "* BYE shutting down\r\n");
    assert_int_equal(w.closed, 1);
    assert_int_equal(w.closed_err, ERR_BYE);
    assert_non_null(strstr(w.closed_msg, "shutting down"));
    assert_int_equal(d.status, IMAP_DISCONNECTED);
    world_end(&w);

    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    login_select(&w);
    serve(&w, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n");
    assert_int_equal(w.closed, 1);
    assert_int_equal(w.closed_err, ERR_PROTOCOL);
    world_end(&w);

    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    login_select(&w);
    serve(&w, "A99 OK who am I\r\n");
    assert_int_equal(w.closed, 1);
    assert_non_null(strstr(w.closed_msg, "unknown tag"));
    world_end(&w);

    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    serve(&w, "* BYE too many connections\r\n");
    assert_int_equal(w.closed, 1);
    assert_int_equal(w.ready, 0);
    world_end(&w);
}

static void
test_logout(void **state)
{
    struct world w;

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    login_select(&w);
    imap_conn_idle(w.c, true);
    serve(&w, "+ idling\r\n");
    skip_sent(&w);
    imap_conn_logout(w.c);
    expect_sent(&w, "DONE\r\n");
    serve(&w, "A3 OK done\r\n");
    expect_sent(&w, "A4 LOGOUT\r\n");
    serve(&w, "* BYE Logging out\r\nA4 OK Logout completed.\r\n");
    assert_int_equal(w.closed, 1);
    assert_int_equal(w.closed_err, 0);
    world_end(&w);
}

/* Freeing the connection from inside a callback cancels the rest. */
struct free_ctx {
    struct world *w;
    int calls;
};

static void
free_in_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct free_ctx *fc = arg;

    (void)r;
    fc->calls++;
    imap_conn_free(c);
}

static void
test_free_inside_callback(void **state)
{
    struct world w;
    struct free_ctx fc = {0};
    struct done d = {0};
    struct imap_cmd_opts o1 = {.done = free_in_done, .arg = &fc};
    struct imap_cmd_opts o2 = {.done = on_done, .arg = &d};

    (void)state;
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    login_select(&w);
    imap_conn_submit(w.c, cmd(w.c, "NOOP"), &o1);
    imap_conn_submit(w.c, cmd(w.c, "UID EXPUNGE 5"), &o2);
    serve(&w, "A3 OK done\r\n* 1 EXISTS\r\n");
    assert_int_equal(fc.calls, 1);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, IMAP_CANCELLED);
    assert_int_equal(w.closed, 0); /* no event after free */
    w.free_on_close = true;
    w.closed = 1;
    world_end(&w);
}

static bool
search_handler(struct imap_conn *c, const struct imap_response *r,
               void *arg)
{
    struct buf *b = arg;

    (void)c;
    if (r->name == NULL || strcmp(r->name, "ESEARCH") != 0)
        return false;
    for (const struct imap_arg *a = r->args; a != NULL; a = a->next) {
        if (a->type == IMAP_ARG_ATOM)
            buf_printf(b, "%.*s ", (int)a->len, a->str);
    }
    return true;
}

static void
test_esearch_routing(void **state)
{
    struct world w;
    struct buf r1, r2;
    struct imap_cmd_opts o1 = {.untagged = search_handler, .arg = &r1};
    struct imap_cmd_opts o2 = {.untagged = search_handler, .arg = &r2};

    (void)state;
    buf_init(&r1, BUF_NOCAP);
    buf_init(&r2, BUF_NOCAP);
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    login_select(&w);
    imap_conn_submit(w.c, cmd(w.c, "UID SEARCH RETURN (ALL) FROM a"), &o1);
    imap_conn_submit(w.c, cmd(w.c, "UID SEARCH RETURN (ALL) FROM b"), &o2);
    skip_sent(&w);
    /* answers out of order: the TAG correlator decides */
    serve(&w, "* ESEARCH (TAG \"A4\") UID ALL 7:9\r\n"
              "* ESEARCH (TAG \"A3\") UID ALL 1\r\nA3 OK\r\nA4 OK\r\n");
    assert_string_equal(buf_cstr(&r1), "UID ALL 1 ");
    assert_string_equal(buf_cstr(&r2), "UID ALL 7:9 ");
    buf_free(&r1);
    buf_free(&r2);
    world_end(&w);
}

struct streamed {
    struct buf data;
    int starts, ends;
};

static bool
st_start(void *arg, const struct imap_response *p, const struct imap_arg *prev,
         uint64_t size, unsigned id)
{
    struct streamed *s = arg;

    (void)p;
    (void)size;
    (void)id;
    if (prev == NULL || !imap_arg_is_atom(prev, "BODY[TEXT]"))
        return false;
    s->starts++;
    return true;
}

static void
st_data(void *arg, unsigned id, const void *p, size_t n)
{
    (void)id;
    buf_append(&((struct streamed *)arg)->data, p, n);
}

static void
st_end(void *arg, unsigned id)
{
    (void)id;
    ((struct streamed *)arg)->ends++;
}

static const struct imap_parser_stream_ops st_ops = {
    .start = st_start, .data = st_data, .end = st_end,
};

static void
test_streamed_body(void **state)
{
    struct world w;
    struct streamed st = {0};
    struct imap_cmd_opts o = {.stream = &st_ops, .arg = &st};

    (void)state;
    buf_init(&st.data, BUF_NOCAP);
    world_start(&w, IMAP_TLS_NONE, true, 5000, 60000);
    login_select(&w);
    imap_conn_submit(w.c, cmd(w.c, "UID FETCH 1:2 (UID BODY.PEEK[TEXT])"), &o);
    serve(&w, "* 1 FETCH (UID 1 BODY[TEXT] {5}\r\nhello)\r\n"
              "* 2 FETCH (UID 2 BODY[TEXT] {6}\r\n world)\r\nA3 OK\r\n");
    assert_int_equal(st.starts, 2);
    assert_int_equal(st.ends, 2);
    assert_string_equal(buf_cstr(&st.data), "hello world");
    buf_free(&st.data);
    world_end(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_plain_sasl_ir),
        cmocka_unit_test(test_login_command_and_capability),
        cmocka_unit_test(test_login_refused_and_plain_continuation),
        cmocka_unit_test(test_xoauth2_error_dance),
        cmocka_unit_test(test_logindisabled_and_no_tls),
        cmocka_unit_test(test_starttls),
        cmocka_unit_test(test_preauth),
        cmocka_unit_test(test_pipelining_and_barriers),
        cmocka_unit_test(test_synchronizing_literal),
        cmocka_unit_test(test_idle_cycle),
        cmocka_unit_test(test_idle_refresh),
        cmocka_unit_test(test_done_unanswered_times_out),
        cmocka_unit_test(test_timeout_cancels_everything_once),
        cmocka_unit_test(test_bye_and_garbage),
        cmocka_unit_test(test_logout),
        cmocka_unit_test(test_free_inside_callback),
        cmocka_unit_test(test_esearch_routing),
        cmocka_unit_test(test_streamed_body),
    };

    log_set_level(LL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
