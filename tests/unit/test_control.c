/* SPDX-License-Identifier: MIT */
/* The control socket's clients on a real loop: a client that says
 * nothing, stops in the middle of a request, or trickles one byte by byte
 * is dropped after the idle timeout (issue 12, defect 6); one that keeps
 * sending complete requests is served for as long as it likes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "control.h"
#include "ctl_proto.h"
#include "testlib.h"
#include "util.h"

#define TIMEOUT_MS 1000

static char *
cmd_version(void *arg, const char *const *args, size_t n,
            struct control_req *req)
{
    (void)arg;
    (void)args;
    (void)n;
    (void)req;
    return xstrdup("{\"ok\": true, \"version\": \"test\"}");
}

static const struct control_cmd cmds[] = {
    {"version", cmd_version, 0, 0},
};

struct client {
    uv_pipe_t pipe;
    uv_connect_t conn;
    struct buf got;
    bool connected, eof, closed;
    uv_timer_t tick;
    const char *trickle;    /* sent one byte per tick */
    int repeat;             /* or: "version\n" this many times, per tick */
};

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char mem[4096];

    (void)h;
    (void)hint;
    *b = uv_buf_init(mem, sizeof(mem));
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct client *c = s->data;

    if (n > 0)
        buf_append(&c->got, b->base, (size_t)n);
    else if (n < 0)
        c->eof = true;
}

static void
on_connect(uv_connect_t *req, int status)
{
    struct client *c = req->data;

    assert_int_equal(status, 0);
    c->connected = true;
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

static void
on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void
send_text(struct client *c, const char *text, size_t len)
{
    uv_write_t *req = xcalloc(1, sizeof(*req));
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)len);

    uv_write(req, (uv_stream_t *)&c->pipe, &b, 1, on_written);
}

static void
on_tick(uv_timer_t *t)
{
    struct client *c = t->data;

    if (c->eof)
        return;
    if (c->trickle != NULL && *c->trickle != '\0') {
        send_text(c, c->trickle, 1);
        c->trickle++;
    } else if (c->repeat > 0) {
        send_text(c, "version\n", 8);
        c->repeat--;
    }
}

static void
client_start(struct client *c, uv_loop_t *loop, const char *path)
{
    memset(c, 0, sizeof(*c));
    buf_init(&c->got, BUF_NOCAP);
    uv_pipe_init(loop, &c->pipe, 0);
    c->pipe.data = c;
    c->conn.data = c;
    uv_pipe_connect(&c->conn, &c->pipe, path, on_connect);
    uv_timer_init(loop, &c->tick);
    c->tick.data = c;
}

static void
on_closed(uv_handle_t *h)
{
    (void)h;
}

static void
client_end(struct client *c)
{
    uv_close((uv_handle_t *)&c->pipe, on_closed);
    uv_close((uv_handle_t *)&c->tick, on_closed);
    buf_free(&c->got);
}

static bool
all_eof(void *arg)
{
    struct client **cs = arg;

    for (; *cs != NULL; cs++) {
        if (!(*cs)->eof)
            return false;
    }
    return true;
}

static bool
steady_done(void *arg)
{
    struct client *c = arg;

    return c->repeat == 0 && strstr(buf_cstr(&c->got), "test") != NULL &&
           c->got.len >= 6 * strlen("{\"ok\": true, \"version\": \"test\"}\n");
}

static void
test_idle_clients_are_dropped(void **state)
{
    uv_loop_t loop;
    char path[] = "/tmp/imapsweep-ctl-XXXXXX";
    char *sock;
    struct control *ctl;
    struct control_settings cs = {
        .fd = -1, .mode = 0600, .cmds = cmds, .n_cmds = 1,
        .idle_timeout_ms = TIMEOUT_MS,
    };
    char *err = NULL;
    struct client silent, partial, trickle, steady;
    struct client *dropped[] = {&silent, &partial, &trickle, NULL};

    (void)state;
    assert_non_null(mkdtemp(path));
    sock = xasprintf("%s/ctl.sock", path);
    cs.path = sock;
    uv_loop_init(&loop);
    ctl = control_new(&loop, &cs, &err);
    assert_non_null(ctl);
    client_start(&silent, &loop, sock);
    client_start(&partial, &loop, sock);
    client_start(&trickle, &loop, sock);
    client_start(&steady, &loop, sock);
    testlib_run_for(&loop, 50);
    assert_int_equal(control_clients(ctl), 4);
    send_text(&partial, "vers", 4);
    /* a byte every 300 ms: never a whole request within the timeout */
    trickle.trickle = "version\n";
    uv_timer_start(&trickle.tick, on_tick, 300, 300);
    /* a whole request every 250 ms, six times: 1.5 s, longer than the
     * timeout, and never dropped */
    steady.repeat = 6;
    uv_timer_start(&steady.tick, on_tick, 0, 250);
    assert_true(testlib_run_until(&loop, steady_done, &steady, 10000));
    assert_false(steady.eof);
    assert_true(testlib_run_until(&loop, all_eof, dropped, 10000));
    /* nothing was answered to the partial or trickled requests */
    assert_int_equal(partial.got.len, 0);
    assert_int_equal(trickle.got.len, 0);
    assert_int_equal(silent.got.len, 0);
    testlib_run_for(&loop, 50);
    assert_int_equal(control_clients(ctl), 1);
    /* the steady client, silent now, goes too */
    uv_timer_stop(&steady.tick);
    dropped[0] = &steady;
    dropped[1] = NULL;
    assert_true(testlib_run_until(&loop, all_eof, dropped, 10000));
    client_end(&silent);
    client_end(&partial);
    client_end(&trickle);
    client_end(&steady);
    control_free(ctl);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    rmdir(path);
    free(sock);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_clients_are_dropped),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
