/* SPDX-License-Identifier: MIT */
/* transport: a real libuv loop on 127.0.0.1 against servers written here
 * with libuv (plain, TLS with OpenSSL memory BIOs, STARTTLS, silent, EOF)
 * and tunnel commands run through /bin/sh. No sleeps: the tests wait for
 * events, with a timer only as a failure deadline. */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "buf.h"
#include "errors.h"
#include "testcert.h"
#include "testlib.h"
#include "tls.h"
#include "transport.h"
#include "util.h"

#define DEADLINE_MS 20000

static struct testcert ca, good, self_signed;
static char *ca_path;

static uv_loop_t loop;
static struct transport_pool *pool;

/* ---- test server ------------------------------------------------------ */

enum smode {
    S_ECHO,      /* greeting, then echo */
    S_SILENT,    /* read and record, never answer */
    S_EOF,       /* greeting, then close */
    S_TLS_ECHO,  /* implicit TLS: greeting, then echo */
    S_TLS_BURST, /* implicit TLS: three records in one write */
    S_STARTTLS,  /* greeting; "a STARTTLS" switches to TLS, then echo */
};

struct server;

struct sconn {
    uv_tcp_t tcp;
    struct server *srv;
    struct sconn *next, **pprev;
    SSL *ssl;
    BIO *rbio, *wbio;
    bool tls;
    struct buf line;
};

struct server {
    uv_tcp_t listener;
    enum smode mode;
    SSL_CTX *ssl_ctx;
    uint16_t port;
    bool no_accept;
    bool listening;
    struct sconn *conns;
    unsigned accepted;
    unsigned reads;
    struct buf received; /* plaintext from clients */
    bool got_plain_after_starttls;
};

/* Global so that a failed test's teardown can still close it. */
static struct server srv;

struct swreq {
    uv_write_t req;
    char data[];
};

static void
on_swrite(uv_write_t *req, int status)
{
    (void)status;
    free(container_of(req, struct swreq, req));
}

static void
sconn_send_raw(struct sconn *c, const void *data, size_t len)
{
    struct swreq *wr;
    uv_buf_t b;

    if (uv_is_closing((uv_handle_t *)&c->tcp) || len == 0)
        return;
    wr = xmalloc(sizeof(*wr) + len);
    memcpy(wr->data, data, len);
    b = uv_buf_init(wr->data, (unsigned)len);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_swrite) != 0)
        free(wr);
}

static void
sconn_drain(struct sconn *c)
{
    char tmp[16384];
    int n;

    while ((n = BIO_read(c->wbio, tmp, sizeof(tmp))) > 0)
        sconn_send_raw(c, tmp, (size_t)n);
}

static void
sconn_send(struct sconn *c, const char *s)
{
    size_t n;

    if (!c->tls) {
        sconn_send_raw(c, s, strlen(s));
        return;
    }
    assert_int_equal(SSL_write_ex(c->ssl, s, strlen(s), &n), 1);
    sconn_drain(c);
}

static void
on_sconn_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;

    SSL_free(c->ssl);
    buf_free(&c->line);
    free(c);
}

static void
sconn_close(struct sconn *c)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    *c->pprev = c->next;
    if (c->next != NULL)
        c->next->pprev = c->pprev;
    uv_close((uv_handle_t *)&c->tcp, on_sconn_closed);
}

static void
sconn_start_tls(struct sconn *c)
{
    c->ssl = SSL_new(c->srv->ssl_ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    c->tls = true;
}

static void
server_tls_input(struct sconn *c, const char *data, size_t len)
{
    struct server *sv = c->srv;
    char tmp[16384];
    size_t n;

    BIO_write(c->rbio, data, (int)len);
    if (!SSL_is_init_finished(c->ssl)) {
        if (SSL_do_handshake(c->ssl) != 1) {
            sconn_drain(c);
            if (ERR_peek_error() != 0) {
                ERR_clear_error();
                sconn_close(c);
            }
            return;
        }
        if (sv->mode == S_TLS_ECHO) {
            sconn_send(c, "* OK tls hello\r\n");
        } else if (sv->mode == S_TLS_BURST) {
            /* Three records, one TCP write. */
            assert_int_equal(SSL_write_ex(c->ssl, "* OK one\r\n", 10, &n), 1);
            assert_int_equal(SSL_write_ex(c->ssl, "* OK two\r\n", 10, &n), 1);
            assert_int_equal(SSL_write_ex(c->ssl, "* OK six\r\n", 10, &n), 1);
        }
    }
    while (SSL_read_ex(c->ssl, tmp, sizeof(tmp), &n) == 1) {
        assert_int_equal(buf_append(&sv->received, tmp, n), 0);
        if (sv->mode != S_TLS_BURST) {
            size_t w;

            assert_int_equal(SSL_write_ex(c->ssl, tmp, n, &w), 1);
        }
    }
    ERR_clear_error();
    sconn_drain(c);
}

static void
server_plain_input(struct sconn *c, const char *data, size_t len)
{
    struct server *sv = c->srv;

    if (sv->mode == S_STARTTLS) {
        assert_int_equal(buf_append(&c->line, data, len), 0);
        while (!c->tls) {
            char *eol = memchr(c->line.data, '\n', c->line.len);
            size_t n;

            if (eol == NULL)
                return;
            n = (size_t)(eol - c->line.data) + 1;
            if (n == 12 && memcmp(c->line.data, "a STARTTLS\r\n", 12) == 0) {
                sconn_send(c, "a OK begin TLS\r\n");
                sconn_start_tls(c);
            } else {
                assert_int_equal(buf_append(&sv->received, c->line.data, n),
                                 0);
                sconn_send_raw(c, c->line.data, n);
            }
            buf_consume(&c->line, n);
        }
        /* Anything after the STARTTLS line must be TLS. */
        if (c->line.len > 0) {
            struct buf rest = c->line;

            buf_init(&c->line, BUF_NOCAP);
            server_tls_input(c, rest.data, rest.len);
            buf_free(&rest);
        }
        return;
    }
    assert_int_equal(buf_append(&sv->received, data, len), 0);
    if (sv->mode == S_ECHO)
        sconn_send_raw(c, data, len);
}

static void
on_salloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = xmalloc(65536);
    buf->len = 65536;
}

static void
on_sread(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct sconn *c = s->data;

    if (nread < 0) {
        sconn_close(c);
    } else if (nread > 0) {
        c->srv->reads++;
        if (c->tls)
            server_tls_input(c, buf->base, (size_t)nread);
        else
            server_plain_input(c, buf->base, (size_t)nread);
    }
    free(buf->base);
}

static void
on_sconnection(uv_stream_t *listener, int status)
{
    struct server *sv = listener->data;
    struct sconn *c;

    assert_int_equal(status, 0);
    if (sv->no_accept)
        return;
    c = xcalloc(1, sizeof(*c));
    c->srv = sv;
    buf_init(&c->line, BUF_NOCAP);
    uv_tcp_init(&loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(listener, (uv_stream_t *)&c->tcp), 0);
    c->next = sv->conns;
    c->pprev = &sv->conns;
    if (c->next != NULL)
        c->next->pprev = &c->next;
    sv->conns = c;
    sv->accepted++;
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, on_salloc,
                                   on_sread), 0);
    switch (sv->mode) {
    case S_ECHO:
    case S_STARTTLS:
        sconn_send(c, "* OK hello\r\n");
        break;
    case S_EOF:
        sconn_send(c, "* OK bye now\r\n");
        sconn_close(c);
        break;
    case S_TLS_ECHO:
    case S_TLS_BURST:
        sconn_start_tls(c);
        break;
    case S_SILENT:
        break;
    }
}

static void
server_start(struct server *sv, enum smode mode, const struct testcert *cert)
{
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int len = sizeof(name);

    memset(sv, 0, sizeof(*sv));
    sv->mode = mode;
    buf_init(&sv->received, BUF_NOCAP);
    if (cert != NULL)
        sv->ssl_ctx = testcert_server_ctx(cert, 0, 0);
    uv_tcp_init(&loop, &sv->listener);
    sv->listener.data = sv;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&sv->listener,
                                 (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&sv->listener, 2048,
                               on_sconnection), 0);
    assert_int_equal(uv_tcp_getsockname(&sv->listener,
                                        (struct sockaddr *)&name, &len), 0);
    sv->port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    sv->listening = true;
}

static void
server_stop(struct server *sv)
{
    while (sv->conns != NULL)
        sconn_close(sv->conns);
    if (sv->listening)
        uv_close((uv_handle_t *)&sv->listener, NULL);
    sv->listening = false;
    buf_free(&sv->received);
    SSL_CTX_free(sv->ssl_ctx);
    sv->ssl_ctx = NULL;
    /* Run the close callbacks now: the next test may reuse srv. */
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- client harness ---------------------------------------------------- */

struct client {
    struct transport *t;
    struct buf got;
    unsigned connected, reads, tls_ready, errors, closed;
    unsigned calls_after_close;
    bool close_requested;
    int err;
    char *msg;
    /* Hooks: called after the event is recorded. */
    void (*on_connected)(struct client *c);
    void (*on_read)(struct client *c);
    void (*on_tls_ready)(struct client *c);
    void *user;
};

static void
client_close(struct client *c)
{
    c->close_requested = true;
    transport_close(c->t);
}

static void
cb_connected(struct transport *t, void *arg)
{
    struct client *c = arg;

    assert_ptr_equal(t, c->t);
    if (c->close_requested)
        c->calls_after_close++;
    c->connected++;
    if (c->on_connected != NULL)
        c->on_connected(c);
}

static void
cb_read(struct transport *t, const char *data, size_t len, void *arg)
{
    struct client *c = arg;

    assert_ptr_equal(t, c->t);
    assert_true(len > 0);
    if (c->close_requested)
        c->calls_after_close++;
    assert_int_equal(buf_append(&c->got, data, len), 0);
    c->reads++;
    if (c->on_read != NULL)
        c->on_read(c);
}

static void
cb_tls_ready(struct transport *t, void *arg)
{
    struct client *c = arg;

    assert_ptr_equal(t, c->t);
    if (c->close_requested)
        c->calls_after_close++;
    c->tls_ready++;
    if (c->on_tls_ready != NULL)
        c->on_tls_ready(c);
}

static void
cb_error(struct transport *t, int err, const char *msg, void *arg)
{
    struct client *c = arg;

    assert_ptr_equal(t, c->t);
    if (c->close_requested)
        c->calls_after_close++;
    c->errors++;
    c->err = err;
    free(c->msg);
    c->msg = xstrdup(msg);
    /* The owner closes from inside the callback. */
    client_close(c);
}

static void
cb_closed(struct transport *t, void *arg)
{
    struct client *c = arg;

    assert_ptr_equal(t, c->t);
    assert_true(c->close_requested);
    c->closed++;
}

static const struct transport_cbs client_cbs = {
    .connected = cb_connected,
    .read = cb_read,
    .tls_ready = cb_tls_ready,
    .error = cb_error,
    .closed = cb_closed,
};

static void
client_init(struct client *c, const struct transport_settings *s)
{
    memset(c, 0, sizeof(*c));
    buf_init(&c->got, BUF_NOCAP);
    c->t = transport_new(pool, s);
    assert_non_null(c->t);
    transport_set_callbacks(c->t, &client_cbs, c);
}

static void
client_free(struct client *c)
{
    assert_int_equal(c->closed, 1);
    assert_int_equal(c->calls_after_close, 0);
    buf_free(&c->got);
    free(c->msg);
}

/* Run the loop until cond(arg) holds; fail after DEADLINE_MS. */
static void
run_until(bool (*cond)(void *), void *arg)
{
    if (!testlib_run_until(&loop, cond, arg, DEADLINE_MS))
        fail_msg("deadline: the awaited event never came");
}

static bool
is_closed(void *arg)
{
    return ((struct client *)arg)->closed > 0;
}

static bool
is_connected(void *arg)
{
    struct client *c = arg;

    return c->connected > 0 || c->errors > 0;
}

struct want {
    struct buf *b;
    const char *s;
    size_t len;
};

static bool
buf_has(void *arg)
{
    struct want *w = arg;

    if (w->len != 0)
        return w->b->len >= w->len;
    return w->b->data != NULL && strstr(w->b->data, w->s) != NULL;
}

static void
wait_for_text(struct buf *b, const char *s)
{
    struct want w = { b, s, 0 };

    run_until(buf_has, &w);
}

static void
wait_for_len(struct buf *b, size_t len)
{
    struct want w = { b, NULL, len };

    run_until(buf_has, &w);
}

static void
close_and_wait(struct client *c)
{
    transport_close(c->t);
    c->close_requested = true;
    /* Never from inside transport_close. */
    assert_int_equal(c->closed, 0);
    transport_close(c->t); /* idempotent */
    run_until(is_closed, c);
    client_free(c);
}

static struct transport_settings
tcp_settings(uint16_t port)
{
    struct transport_settings s;

    memset(&s, 0, sizeof(s));
    s.host = "127.0.0.1";
    s.port = port;
    s.connect_timeout_ms = 10000;
    s.keepalive_s = 60;
    return s;
}

static struct tls_ctx *
ctx_new(void)
{
    char *err = NULL;
    struct tls_ctx *ctx = tls_ctx_new(ca_path, true, &err);

    assert_non_null(ctx);
    return ctx;
}

static int
setup_loop(void **state)
{
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    pool = transport_pool_new(&loop);
    assert_ptr_equal(transport_pool_loop(pool), &loop);
    return 0;
}

static int
teardown_loop(void **state)
{
    (void)state;
    server_stop(&srv);
    transport_pool_free(pool);
    pool = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

/* ---- tests: plain TCP --------------------------------------------------- */

static void
test_plain_echo(void **state)
{
    struct transport_settings s;
    struct client c;
    char peer[32];

    (void)state;
    server_start(&srv, S_ECHO, NULL);
    s = tcp_settings(srv.port);
    client_init(&c, &s);
    /* Written before connecting: sent once connected. */
    transport_write(c.t, "a0 EARLY\r\n", 10, false);
    assert_int_equal(transport_connect(c.t), 0);
    assert_int_equal(transport_connect(c.t), ERR_BAD_STATE);
    run_until(is_connected, &c);
    assert_int_equal(c.connected, 1);
    assert_int_equal(c.errors, 0);
    snprintf(peer, sizeof(peer), "127.0.0.1:%u", (unsigned)srv.port);
    assert_string_equal(transport_peer(c.t), peer);
    assert_null(transport_tls_describe(c.t));
    wait_for_text(&c.got, "* OK hello\r\na0 EARLY\r\n");
    transport_write(c.t, "a1 NOOP\r\n", 9, false);
    transport_write(c.t, "a2 LOGIN user pass\r\n", 20, true);
    wait_for_text(&c.got, "a2 LOGIN user pass\r\n");
    assert_string_equal(buf_cstr(&c.got),
                        "* OK hello\r\na0 EARLY\r\na1 NOOP\r\n"
                        "a2 LOGIN user pass\r\n");
    close_and_wait(&c);
    server_stop(&srv);
}

static void
coalesce_hook(struct client *c)
{
    char line[32];

    /* 2000 writes from one callback: one loop iteration. */
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(line, sizeof(line), "a%d NOOP\r\n", i);

        transport_write(c->t, line, (size_t)n, false);
    }
    c->on_connected = NULL;
}

static void
test_coalesced_writes(void **state)
{
    struct transport_settings s;
    struct client c;
    struct buf want;
    char line[32];

    (void)state;
    server_start(&srv, S_SILENT, NULL);
    s = tcp_settings(srv.port);
    client_init(&c, &s);
    c.on_connected = coalesce_hook;
    buf_init(&want, BUF_NOCAP);
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(line, sizeof(line), "a%d NOOP\r\n", i);

        buf_append(&want, line, (size_t)n);
    }
    assert_int_equal(transport_connect(c.t), 0);
    wait_for_len(&srv.received, want.len);
    assert_int_equal(srv.received.len, want.len);
    assert_memory_equal(srv.received.data, want.data, want.len);
    /* ~25 KB from 2000 writes: one try_write, so a read or two. */
    print_message("2000 writes arrived in %u server reads\n", srv.reads);
    assert_true(srv.reads <= 3);
    buf_free(&want);
    close_and_wait(&c);
    server_stop(&srv);
}

static void
large_write(enum smode mode, size_t size)
{
    struct transport_settings s;
    struct client c;
    struct tls_ctx *ctx = NULL;
    char *data = xmalloc(size);

    for (size_t i = 0; i < size; i++)
        data[i] = (char)(i * 7 + i / 4096);
    server_start(&srv, mode, mode == S_TLS_BURST ? &good : NULL);
    s = tcp_settings(srv.port);
    if (mode == S_TLS_BURST) {
        ctx = ctx_new();
        s.tls = ctx;
        s.tls_host = "localhost";
    }
    client_init(&c, &s);
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_connected, &c);
    assert_int_equal(c.errors, 0);
    /* In three pieces, one of them secret, in one loop iteration. */
    transport_write(c.t, data, size / 2, false);
    transport_write(c.t, data + size / 2, 100, true);
    transport_write(c.t, data + size / 2 + 100, size - size / 2 - 100, false);
    wait_for_len(&srv.received, size);
    assert_int_equal(srv.received.len, size);
    assert_memory_equal(srv.received.data, data, size);
    /* Written while the first uv_write may still be in flight. */
    transport_write(c.t, "tail", 4, false);
    wait_for_len(&srv.received, size + 4);
    assert_memory_equal(srv.received.data + size, "tail", 4);
    free(data);
    close_and_wait(&c);
    tls_ctx_unref(ctx);
    server_stop(&srv);
}

static void
test_large_write(void **state)
{
    (void)state;
    large_write(S_SILENT, 8 << 20);
}

static void
test_large_write_tls(void **state)
{
    (void)state;
    large_write(S_TLS_BURST, 2 << 20);
}

static void
test_refused(void **state)
{
    struct transport_settings s;
    struct client c;
    uint16_t port;

    (void)state;
    /* A port that was just free: bind it, then close it. */
    server_start(&srv, S_SILENT, NULL);
    port = srv.port;
    server_stop(&srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    s = tcp_settings(port);
    client_init(&c, &s);
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_closed, &c);
    assert_int_equal(c.connected, 0);
    assert_int_equal(c.errors, 1);
    assert_int_equal(c.err, UV_ECONNREFUSED);
    print_message("%s\n", c.msg);
    assert_non_null(strstr(c.msg, "refused"));
    assert_non_null(strstr(c.msg, "connect to 127.0.0.1:"));
    client_free(&c);
}

static void
test_refused_by_name(void **state)
{
    struct transport_settings s;
    struct client c;
    uint16_t port;

    (void)state;
    server_start(&srv, S_SILENT, NULL);
    port = srv.port;
    server_stop(&srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    s = tcp_settings(port);
    s.host = "localhost"; /* maybe ::1 and 127.0.0.1: each is tried */
    client_init(&c, &s);
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_closed, &c);
    assert_int_equal(c.errors, 1);
    print_message("%s\n", c.msg);
    assert_non_null(strstr(c.msg, "connect to localhost:"));
    client_free(&c);
}

static void
test_resolve_failure(void **state)
{
    struct transport_settings s = tcp_settings(993);
    struct client c;

    (void)state;
    s.host = "nonexistent.invalid";
    client_init(&c, &s);
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_closed, &c);
    assert_int_equal(c.errors, 1);
    print_message("%s\n", c.msg);
    assert_non_null(strstr(c.msg, "cannot resolve nonexistent.invalid: "));
    client_free(&c);
}

static void
test_connect_timeout(void **state)
{
    struct transport_settings s;
    struct client c;
    struct tls_ctx *ctx = ctx_new();
    uint64_t start, elapsed;

    (void)state;
    /* Accepts TCP, never answers the ClientHello. */
    server_start(&srv, S_SILENT, NULL);
    s = tcp_settings(srv.port);
    s.tls = ctx;
    s.connect_timeout_ms = 300;
    client_init(&c, &s);
    uv_update_time(&loop);
    start = uv_now(&loop);
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_closed, &c);
    uv_update_time(&loop);
    elapsed = uv_now(&loop) - start;
    assert_int_equal(c.connected, 0);
    assert_int_equal(c.err, ERR_TIMEOUT);
    print_message("%s (after %llu ms)\n", c.msg, (unsigned long long)elapsed);
    assert_non_null(strstr(c.msg, "timed out after 300ms"));
    assert_true(elapsed >= 290);
    assert_true(srv.received.len > 0); /* the ClientHello came */
    client_free(&c);
    tls_ctx_unref(ctx);
    server_stop(&srv);
}

static void
test_eof(void **state)
{
    struct transport_settings s;
    struct client c;
    char want[64];

    (void)state;
    server_start(&srv, S_EOF, NULL);
    s = tcp_settings(srv.port);
    client_init(&c, &s);
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_closed, &c);
    assert_int_equal(c.connected, 1);
    assert_string_equal(buf_cstr(&c.got), "* OK bye now\r\n");
    assert_int_equal(c.errors, 1);
    assert_int_equal(c.err, ERR_CLOSED);
    snprintf(want, sizeof(want), "connection closed by 127.0.0.1:%u",
             (unsigned)srv.port);
    assert_string_equal(c.msg, want);
    client_free(&c);
    server_stop(&srv);
}

static void
close_on_read(struct client *c)
{
    client_close(c);
    /* Writes after close are dropped, not queued. */
    transport_write(c->t, "late\r\n", 6, false);
}

static void
test_close_in_read(void **state)
{
    struct transport_settings s;
    struct client c;

    (void)state;
    server_start(&srv, S_EOF, NULL);
    s = tcp_settings(srv.port);
    client_init(&c, &s);
    c.on_read = close_on_read;
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_closed, &c);
    assert_int_equal(c.reads, 1);
    assert_int_equal(c.errors, 0);
    client_free(&c);
    server_stop(&srv);
}

/* ---- tests: TLS ------------------------------------------------------- */

static void
test_implicit_tls(void **state)
{
    struct transport_settings s;
    struct client c;
    struct tls_ctx *ctx = ctx_new();
    const char *desc;

    (void)state;
    server_start(&srv, S_TLS_ECHO, &good);
    s = tcp_settings(srv.port);
    s.tls = ctx;
    s.tls_host = "localhost";
    client_init(&c, &s);
    tls_ctx_unref(ctx); /* the transport holds its own reference */
    transport_write(c.t, "a0 EARLY\r\n", 10, false);
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_connected, &c);
    assert_int_equal(c.errors, 0);
    desc = transport_tls_describe(c.t);
    assert_non_null(desc);
    print_message("%s\n", desc);
    assert_non_null(strstr(desc, "TLSv1.3 "));
    wait_for_text(&c.got, "a0 EARLY\r\n");
    assert_string_equal(buf_cstr(&c.got), "* OK tls hello\r\na0 EARLY\r\n");
    transport_write(c.t, "a1 LOGIN u p\r\n", 14, true);
    wait_for_text(&c.got, "a1 LOGIN u p\r\n");
    assert_string_equal(buf_cstr(&srv.received),
                        "a0 EARLY\r\na1 LOGIN u p\r\n");
    close_and_wait(&c);
    server_stop(&srv);
}

static void
test_implicit_tls_ip_and_resume(void **state)
{
    struct transport_settings s;
    struct tls_ctx *ctx = ctx_new();

    (void)state;
    server_start(&srv, S_TLS_ECHO, &good);
    s = tcp_settings(srv.port);
    s.tls = ctx; /* verified against 127.0.0.1, the IP in the cert */
    for (int round = 0; round < 2; round++) {
        struct client c;

        client_init(&c, &s);
        assert_int_equal(transport_connect(c.t), 0);
        run_until(is_connected, &c);
        assert_int_equal(c.errors, 0);
        wait_for_text(&c.got, "* OK tls hello\r\n");
        if (round == 1)
            assert_non_null(strstr(transport_tls_describe(c.t), "resumed"));
        close_and_wait(&c);
    }
    tls_ctx_unref(ctx);
    server_stop(&srv);
}

static void
test_tls_verify_failure(void **state)
{
    struct transport_settings s;
    struct client c;
    struct tls_ctx *ctx = ctx_new();
    char want[128];

    (void)state;
    server_start(&srv, S_TLS_ECHO, &self_signed);
    s = tcp_settings(srv.port);
    s.tls = ctx;
    client_init(&c, &s);
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_closed, &c);
    assert_int_equal(c.connected, 0);
    assert_int_equal(c.err, ERR_TLS_VERIFY);
    snprintf(want, sizeof(want), "TLS with 127.0.0.1:%u: certificate verify "
             "failed: self-signed certificate", (unsigned)srv.port);
    assert_string_equal(c.msg, want);
    client_free(&c);
    tls_ctx_unref(ctx);
    server_stop(&srv);
}

static void
test_tls_close_in_read(void **state)
{
    struct transport_settings s;
    struct client c;
    struct tls_ctx *ctx = ctx_new();

    (void)state;
    /* Three records reach one tls_conn_feed; the first read closes. */
    server_start(&srv, S_TLS_BURST, &good);
    s = tcp_settings(srv.port);
    s.tls = ctx;
    client_init(&c, &s);
    c.on_read = close_on_read;
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_closed, &c);
    assert_int_equal(c.connected, 1);
    assert_int_equal(c.reads, 1);
    assert_string_equal(buf_cstr(&c.got), "* OK one\r\n");
    client_free(&c);
    tls_ctx_unref(ctx);
    server_stop(&srv);
}

static void
close_on_connected(struct client *c)
{
    client_close(c);
}

static void
test_tls_close_in_connected(void **state)
{
    struct transport_settings s;
    struct client c;
    struct tls_ctx *ctx = ctx_new();

    (void)state;
    server_start(&srv, S_TLS_BURST, &good);
    s = tcp_settings(srv.port);
    s.tls = ctx;
    client_init(&c, &s);
    c.on_connected = close_on_connected;
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_closed, &c);
    assert_int_equal(c.connected, 1);
    assert_int_equal(c.reads, 0);
    client_free(&c);
    tls_ctx_unref(ctx);
    server_stop(&srv);
}

static void
starttls_on_read(struct client *c)
{
    struct tls_ctx *ctx = c->user;

    if (strstr(buf_cstr(&c->got), "a OK begin TLS\r\n") == NULL)
        return;
    c->on_read = NULL;
    assert_int_equal(transport_start_tls(c->t, ctx, "localhost"), 0);
    assert_int_equal(transport_start_tls(c->t, ctx, "localhost"), ERR_BAD_STATE);
    /* Queued now, sent only once TLS is up. */
    transport_write(c->t, "a2 LOGIN u secret\r\n", 19, true);
}

static void
test_starttls(void **state)
{
    struct transport_settings s;
    struct client c;
    struct tls_ctx *ctx = ctx_new();

    (void)state;
    server_start(&srv, S_STARTTLS, &good);
    s = tcp_settings(srv.port);
    client_init(&c, &s);
    c.user = ctx;
    /* Not before the stream is up. */
    assert_int_equal(transport_start_tls(c.t, ctx, "localhost"), ERR_BAD_STATE);
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_connected, &c);
    wait_for_text(&c.got, "* OK hello\r\n");
    transport_write(c.t, "a1 CAPABILITY\r\n", 15, false);
    transport_write(c.t, "a STARTTLS\r\n", 12, false);
    c.on_read = starttls_on_read;
    wait_for_text(&c.got, "a2 LOGIN u secret\r\n");
    assert_int_equal(c.tls_ready, 1);
    assert_int_equal(c.errors, 0);
    assert_non_null(transport_tls_describe(c.t));
    assert_string_equal(buf_cstr(&c.got),
                        "* OK hello\r\na1 CAPABILITY\r\na OK begin TLS\r\n"
                        "a2 LOGIN u secret\r\n");
    /* The server got the login through TLS only. */
    assert_string_equal(buf_cstr(&srv.received),
                        "a1 CAPABILITY\r\na2 LOGIN u secret\r\n");
    close_and_wait(&c);
    tls_ctx_unref(ctx);
    server_stop(&srv);
}

/* ---- tests: closing in every state -------------------------------------- */

static void
test_close_before_connect(void **state)
{
    struct transport_settings s = tcp_settings(1);
    struct client c;

    (void)state;
    client_init(&c, &s);
    close_and_wait(&c);
}

static void
test_close_while_resolving(void **state)
{
    struct transport_settings s = tcp_settings(1);
    struct client c;

    (void)state;
    s.host = "localhost";
    client_init(&c, &s);
    assert_int_equal(transport_connect(c.t), 0);
    close_and_wait(&c);
    assert_int_equal(c.errors, 0);
    assert_int_equal(c.connected, 0);
}

/* Close after k loop iterations, for every k until the connection is up:
 * covers resolving, connecting, handshaking and connected. */
static void
test_close_at_every_step(void **state)
{
    struct tls_ctx *ctx = ctx_new();
    bool reached_open = false;

    (void)state;
    server_start(&srv, S_TLS_ECHO, &good);
    for (int k = 0; k < 40 && !reached_open; k++) {
        struct transport_settings s = tcp_settings(srv.port);
        struct client c;

        s.tls = ctx;
        client_init(&c, &s);
        assert_int_equal(transport_connect(c.t), 0);
        transport_write(c.t, "a1 NOOP\r\n", 9, true);
        for (int i = 0; i < k && c.errors == 0; i++)
            uv_run(&loop, UV_RUN_ONCE);
        reached_open = c.reads > 0;
        assert_int_equal(c.errors, 0);
        close_and_wait(&c);
    }
    assert_true(reached_open);
    tls_ctx_unref(ctx);
    server_stop(&srv);
}

/* ---- tests: tunnel ---------------------------------------------------- */

static void
test_tunnel_echo(void **state)
{
    struct transport_settings s;
    struct client c;

    (void)state;
    memset(&s, 0, sizeof(s));
    s.tunnel = "printf '* PREAUTH hello\\r\\n'; cat";
    client_init(&c, &s);
    assert_string_equal(transport_peer(c.t), "tunnel");
    assert_int_equal(transport_connect(c.t), 0);
    assert_int_equal(c.connected, 0); /* from the loop, not from connect */
    run_until(is_connected, &c);
    assert_int_equal(c.connected, 1);
    assert_non_null(strstr(transport_peer(c.t), "tunnel (pid "));
    wait_for_text(&c.got, "* PREAUTH hello\r\n");
    transport_write(c.t, "a1 NOOP\r\n", 9, false);
    wait_for_text(&c.got, "a1 NOOP\r\n");
    assert_string_equal(buf_cstr(&c.got), "* PREAUTH hello\r\na1 NOOP\r\n");
    /* Close kills the command and waits for it. */
    close_and_wait(&c);
}

static void
tunnel_exit(const char *cmd, const char *want_out, const char *want_msg)
{
    struct transport_settings s;
    struct client c;

    memset(&s, 0, sizeof(s));
    s.tunnel = cmd;
    client_init(&c, &s);
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_closed, &c);
    assert_int_equal(c.connected, 1);
    assert_int_equal(c.errors, 1);
    assert_int_equal(c.err, ERR_CLOSED);
    assert_string_equal(buf_cstr(&c.got), want_out);
    assert_string_equal(c.msg, want_msg);
    client_free(&c);
}

static void
test_tunnel_exits(void **state)
{
    (void)state;
    tunnel_exit("printf '* BYE\\r\\n'; exit 3", "* BYE\r\n",
                "tunnel command exited with status 3");
    tunnel_exit("exit 0", "", "tunnel command exited with status 0");
    tunnel_exit("printf 'x'; kill -9 $$", "x",
                "tunnel command killed by signal 9");
}

static void
test_tunnel_close_in_read(void **state)
{
    struct transport_settings s;
    struct client c;

    (void)state;
    memset(&s, 0, sizeof(s));
    s.tunnel = "printf '* PREAUTH hi\\r\\n'; exec sleep 60";
    client_init(&c, &s);
    c.on_read = close_on_read;
    assert_int_equal(transport_connect(c.t), 0);
    run_until(is_closed, &c);
    assert_int_equal(c.reads, 1);
    client_free(&c);
}

/* ---- tests: the ops seam ---------------------------------------------- */

struct fake {
    struct transport base;
    int connects, writes, start_tls, closes;
    size_t written;
};

static int
fake_connect(struct transport *t)
{
    container_of(t, struct fake, base)->connects++;
    return 0;
}

static void
fake_write(struct transport *t, const void *data, size_t len, bool secret)
{
    struct fake *f = container_of(t, struct fake, base);

    (void)data;
    (void)secret;
    f->writes++;
    f->written += len;
}

static int
fake_start_tls(struct transport *t, struct tls_ctx *ctx, const char *host)
{
    (void)ctx;
    (void)host;
    container_of(t, struct fake, base)->start_tls++;
    return 0;
}

static void
fake_close(struct transport *t)
{
    container_of(t, struct fake, base)->closes++;
}

static const char *
fake_peer(const struct transport *t)
{
    (void)t;
    return "fake";
}

static const char *
fake_tls_describe(const struct transport *t)
{
    (void)t;
    return "fake TLS";
}

static void
test_ops_seam(void **state)
{
    static const struct transport_ops ops = {
        .connect = fake_connect,
        .write = fake_write,
        .start_tls = fake_start_tls,
        .close = fake_close,
        .peer = fake_peer,
        .tls_describe = fake_tls_describe,
    };
    struct fake f;
    int arg;

    (void)state;
    memset(&f, 0, sizeof(f));
    f.base.ops = &ops;
    transport_set_callbacks(&f.base, &client_cbs, &arg);
    assert_ptr_equal(f.base.cbs, &client_cbs);
    assert_ptr_equal(f.base.cb_arg, &arg);
    assert_int_equal(transport_connect(&f.base), 0);
    transport_write(&f.base, "abc", 3, false);
    assert_int_equal(transport_start_tls(&f.base, NULL, "x"), 0);
    transport_close(&f.base);
    transport_close(NULL);
    assert_string_equal(transport_peer(&f.base), "fake");
    assert_string_equal(transport_tls_describe(&f.base), "fake TLS");
    assert_int_equal(f.connects, 1);
    assert_int_equal(f.writes, 1);
    assert_int_equal(f.written, 3);
    assert_int_equal(f.start_tls, 1);
    assert_int_equal(f.closes, 1);
}

static void
test_bad_settings(void **state)
{
    struct transport_settings s;

    (void)state;
    memset(&s, 0, sizeof(s));
    assert_null(transport_new(pool, &s));
    s.host = "";
    assert_null(transport_new(pool, &s));
}

/* ---- memory ----------------------------------------------------------- */

struct many {
    struct client *c;
    size_t n;
};

static bool
all_connected(void *arg)
{
    struct many *m = arg;

    for (size_t i = 0; i < m->n; i++)
        if (!is_connected(&m->c[i]))
            return false;
    return true;
}

static bool
all_closed(void *arg)
{
    struct many *m = arg;

    for (size_t i = 0; i < m->n; i++)
        if (m->c[i].closed == 0)
            return false;
    return true;
}

static void
test_memory_per_idle_transport(void **state)
{
    struct transport_settings s;
    struct many m;
    struct mallinfo2 before, after;
    size_t per;

    (void)state;
    /* The kernel completes the connects; the server never accepts, so
     * nothing of the server side is allocated in this process. */
    server_start(&srv, S_SILENT, NULL);
    srv.no_accept = true;
    s = tcp_settings(srv.port);
    m.n = 1000;
    m.c = xcalloc(m.n, sizeof(*m.c));
    malloc_trim(0);
    before = mallinfo2();
    for (size_t i = 0; i < m.n; i++) {
        m.c[i].t = transport_new(pool, &s);
        transport_set_callbacks(m.c[i].t, &client_cbs, &m.c[i]);
        assert_int_equal(transport_connect(m.c[i].t), 0);
    }
    run_until(all_connected, &m);
    after = mallinfo2();
    for (size_t i = 0; i < m.n; i++)
        assert_int_equal(m.c[i].errors, 0);
    per = after.uordblks > before.uordblks
              ? (after.uordblks - before.uordblks) / m.n
              : 0;
    print_message("idle plaintext transport: %zu bytes each (%zu "
                  "connections, heap only; uv_tcp_t + uv_timer_t: %zu)\n",
                  per, m.n, sizeof(uv_tcp_t) + sizeof(uv_timer_t));
    if (!UNDER_ASAN && per > 0)
        assert_true(per <= 4096);
    for (size_t i = 0; i < m.n; i++) {
        m.c[i].close_requested = true;
        transport_close(m.c[i].t);
    }
    run_until(all_closed, &m);
    for (size_t i = 0; i < m.n; i++)
        client_free(&m.c[i]);
    free(m.c);
    server_stop(&srv);
}

static int
group_setup(void **state)
{
    (void)state;
    /* Writes to a peer that is gone must fail with EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    ca = testcert_make("imapsweep test CA", NULL, NULL, true, -TESTCERT_DAY,
                       30 * TESTCERT_DAY);
    good = testcert_make("localhost", "DNS:localhost,IP:127.0.0.1", &ca,
                         false, -TESTCERT_DAY, 30 * TESTCERT_DAY);
    self_signed = testcert_make("localhost", "DNS:localhost", NULL, false,
                                -TESTCERT_DAY, 30 * TESTCERT_DAY);
    ca_path = testcert_write_tmp(&ca);
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    unlink(ca_path);
    free(ca_path);
    testcert_free(&ca);
    testcert_free(&good);
    testcert_free(&self_signed);
    return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_loop, teardown_loop)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_plain_echo),
        T(test_coalesced_writes),
        T(test_large_write),
        T(test_large_write_tls),
        T(test_refused),
        T(test_refused_by_name),
        T(test_resolve_failure),
        T(test_connect_timeout),
        T(test_eof),
        T(test_close_in_read),
        T(test_implicit_tls),
        T(test_implicit_tls_ip_and_resume),
        T(test_tls_verify_failure),
        T(test_tls_close_in_read),
        T(test_tls_close_in_connected),
        T(test_starttls),
        T(test_close_before_connect),
        T(test_close_while_resolving),
        T(test_close_at_every_step),
        T(test_tunnel_echo),
        T(test_tunnel_exits),
        T(test_tunnel_close_in_read),
        T(test_ops_seam),
        T(test_bad_settings),
        T(test_memory_per_idle_transport),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);

    OPENSSL_cleanup();
    return rc;
}
