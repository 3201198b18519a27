/* SPDX-License-Identifier: MIT */
/* The libuv transport's common part: the pool (one read buffer, writes
 * coalesced once per loop turn), writing, reading, freeing, the ops table
 * and the generic dispatch. TCP and TLS: transport_tcp.c; the tunnel:
 * transport_tunnel.c. */
#include "transport_private.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "tls.h"
#include "util.h"

/* A uv_write in flight; owns the rest of the output it sends. */
struct write_req {
    uv_write_t req;
    struct uv_transport *t;
    char *data;
    size_t cap;
    bool secret;
};

static const struct transport_ops uv_transport_ops;

static struct uv_transport *
uvt(struct transport *t)
{
    return container_of(t, struct uv_transport, base);
}

static const struct uv_transport *
cuvt(const struct transport *t)
{
    return container_of(t, const struct uv_transport, base);
}

/* ---- pool ------------------------------------------------------------- */

static void flush(struct uv_transport *t);

static void
on_prepare(uv_prepare_t *h)
{
    struct transport_pool *pool = h->data;

    /* flush() takes each transport off the list; an error callback may
     * queue others, which are handled in the same pass. */
    while (pool->flush_head != NULL)
        flush(pool->flush_head);
    uv_prepare_stop(h);
}

struct transport_pool *
transport_pool_new(uv_loop_t *loop)
{
    struct transport_pool *pool = xcalloc(1, sizeof(*pool));

    pool->loop = loop;
    uv_prepare_init(loop, &pool->prepare);
    pool->prepare.data = pool;
    return pool;
}

uv_loop_t *
transport_pool_loop(const struct transport_pool *pool)
{
    return pool->loop;
}

void
transport_pool_set_factory(struct transport_pool *pool,
                           transport_factory_fn *fn, void *arg)
{
    pool->factory = fn;
    pool->factory_arg = arg;
}

static void
on_pool_closed(uv_handle_t *h)
{
    struct transport_pool *pool = h->data;

    pool->prepare_closed = true;
    if (pool->live == 0)
        free(pool);
}

void
transport_pool_free(struct transport_pool *pool)
{
    if (pool == NULL || pool->freeing)
        return;
    /* Transports still closing free the pool when the last one goes. */
    pool->freeing = true;
    uv_close((uv_handle_t *)&pool->prepare, on_pool_closed);
}

void
uvt_queue_flush(struct uv_transport *t)
{
    struct transport_pool *pool = t->pool;

    if (t->queued || t->closing || t->failed)
        return;
    t->queued = true;
    t->flush_prev = NULL;
    t->flush_next = pool->flush_head;
    if (pool->flush_head != NULL)
        pool->flush_head->flush_prev = t;
    pool->flush_head = t;
    if (!pool->freeing)
        uv_prepare_start(&pool->prepare, on_prepare);
}

static void
unqueue_flush(struct uv_transport *t)
{
    if (!t->queued)
        return;
    if (t->flush_prev != NULL)
        t->flush_prev->flush_next = t->flush_next;
    else
        t->pool->flush_head = t->flush_next;
    if (t->flush_next != NULL)
        t->flush_next->flush_prev = t->flush_prev;
    t->flush_next = t->flush_prev = NULL;
    t->queued = false;
}

/* ---- helpers ------------------------------------------------------------ */

static char *
host_port(const char *host, uint16_t port)
{
    if (strchr(host, ':') != NULL)
        return xasprintf("[%s]:%u", host, (unsigned)port);
    return xasprintf("%s:%u", host, (unsigned)port);
}

static void
drop_buf(struct buf *b, bool *secret)
{
    if (*secret)
        buf_free_secret(b);
    else
        buf_free(b);
    *secret = false;
}

/* Append to an output buffer. Once it holds a secret it grows by hand,
 * wiping the old block, so realloc leaves no stray copy behind. */
void
uvt_out_append(struct buf *b, bool *secret_flag, const void *data,
               size_t len, bool secret)
{
    if ((secret || *secret_flag) && b->data != NULL &&
        len >= b->cap - b->len) {
        size_t cap = b->cap * 2 > b->len + len + 1 ? b->cap * 2
                                                  : b->len + len + 1;
        char *p = xmalloc(cap);

        memcpy(p, b->data, b->len + 1);
        util_wipe(b->data, b->cap);
        free(b->data);
        b->data = p;
        b->cap = cap;
    }
    /* BUF_NOCAP: cannot fail. */
    (void)buf_append(b, data, len);
    if (secret)
        *secret_flag = true;
}

static uv_stream_t *
write_stream(struct uv_transport *t)
{
    return t->tun != NULL ? (uv_stream_t *)&t->tun->in
                          : (uv_stream_t *)&t->tcp;
}

static bool
stream_up(const struct uv_transport *t)
{
    return t->phase >= PHASE_HANDSHAKING;
}

bool
uvt_active(const struct uv_transport *t)
{
    return !t->closing && !t->failed;
}

void
uvt_stop_reading(struct uv_transport *t)
{
    if (t->tcp_open)
        uv_read_stop((uv_stream_t *)&t->tcp);
    if (t->tun != NULL && t->tun->pipes_open)
        uv_read_stop((uv_stream_t *)&t->tun->out);
}

/* Deliver `error` once; afterwards only `closed` may follow. */
void
uvt_fail(struct uv_transport *t, int err, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (!uvt_active(t))
        return;
    t->failed = true;
    unqueue_flush(t);
    if (t->timer_open)
        uv_timer_stop(&t->timer);
    uvt_stop_reading(t);
    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    if (t->base.cbs != NULL && t->base.cbs->error != NULL)
        t->base.cbs->error(&t->base, err, msg, t->base.cb_arg);
    free(msg);
}

void
uvt_notify_connected(struct uv_transport *t)
{
    if (uvt_active(t) && t->base.cbs != NULL && t->base.cbs->connected != NULL)
        t->base.cbs->connected(&t->base, t->base.cb_arg);
}

void
uvt_notify_read(struct uv_transport *t, const char *data, size_t len)
{
    if (uvt_active(t) && t->base.cbs != NULL && t->base.cbs->read != NULL)
        t->base.cbs->read(&t->base, data, len, t->base.cb_arg);
}

static void
write_failed(struct uv_transport *t, int err)
{
    /* A tunnel whose command died: report its exit status instead. */
    if (t->tun != NULL && err == UV_EPIPE) {
        uvt_tunnel_closed_output(t);
        return;
    }
    uvt_fail(t, err, "write to %s: %s", t->peer, uv_strerror(err));
}

/* ---- freeing -------------------------------------------------------- */

static void
finish(struct uv_transport *t)
{
    struct transport_pool *pool = t->pool;

    if (t->base.cbs != NULL && t->base.cbs->closed != NULL)
        t->base.cbs->closed(&t->base, t->base.cb_arg);
    tls_conn_free(t->tls);
    tls_ctx_unref(t->tls_ctx);
    drop_buf(&t->plain, &t->plain_secret);
    drop_buf(&t->wire, &t->wire_secret);
    if (t->ai_list != NULL)
        uv_freeaddrinfo(t->ai_list);
    free(t->host);
    free(t->tls_host);
    free(t->tunnel_cmd);
    free(t->peer);
    free(t->tun);
    free(t);
    pool->live--;
    if (pool->live == 0 && pool->prepare_closed)
        free(pool);
}

/* Every handle close and request completion ends here. */
void
uvt_release(struct uv_transport *t)
{
    t->pending--;
    if (t->closing && t->pending == 0)
        finish(t);
}

void
uvt_on_handle_closed(uv_handle_t *h)
{
    uvt_release(h->data);
}

static void
free_write_req(struct write_req *wr)
{
    if (wr->secret)
        util_wipe(wr->data, wr->cap);
    free(wr->data);
    free(wr);
}

/* ---- writing ---------------------------------------------------------- */

static void
on_write(uv_write_t *req, int status)
{
    struct write_req *wr = container_of(req, struct write_req, req);
    struct uv_transport *t = wr->t;

    t->wreq = NULL;
    free_write_req(wr);
    if (uvt_active(t)) {
        if (status < 0)
            write_failed(t, status);
        else if (t->wire.len > 0 || (t->tls_up && t->plain.len > 0))
            uvt_queue_flush(t);
    }
    uvt_release(t);
}

/* Send the wire buffer: as much as the kernel takes now, the rest through
 * one uv_write that owns it. Nothing is sent while a uv_write is in
 * flight, so later bytes never overtake earlier ones. */
static void
send_wire(struct uv_transport *t)
{
    uv_stream_t *s = write_stream(t);
    struct write_req *wr;
    uv_buf_t b;
    size_t len = t->wire.len;
    int n, r;

    if (len == 0 || t->wreq != NULL)
        return;
    b.base = t->wire.data;
    b.len = len;
    n = uv_try_write(s, &b, 1);
    if (n == UV_EAGAIN || n == UV_ENOSYS) {
        n = 0;
    } else if (n < 0) {
        write_failed(t, n);
        return;
    }
    if ((size_t)n == len) {
        drop_buf(&t->wire, &t->wire_secret);
        return;
    }
    wr = xmalloc(sizeof(*wr));
    wr->t = t;
    wr->cap = t->wire.cap;
    wr->secret = t->wire_secret;
    wr->data = buf_steal(&t->wire);
    t->wire_secret = false;
    b.base = wr->data + n;
    b.len = len - (size_t)n;
    r = uv_write(&wr->req, s, &b, 1, on_write);
    if (r < 0) {
        free_write_req(wr);
        write_failed(t, r);
        return;
    }
    t->wreq = wr;
    t->pending++;
}

static void
flush(struct uv_transport *t)
{
    unqueue_flush(t);
    if (!uvt_active(t) || !stream_up(t))
        return;
    if (t->tls_up && t->plain.len > 0) {
        int r;

        t->flushing = true;
        r = tls_conn_write(t->tls, t->plain.data, t->plain.len);
        t->flushing = false;
        drop_buf(&t->plain, &t->plain_secret);
        if (r < 0) {
            uvt_fail(t, r, "TLS with %s: %s", t->peer, tls_conn_error(t->tls));
            return;
        }
    }
    send_wire(t);
}

/* ---- reading ---------------------------------------------------------- */

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct uv_transport *t = h->data;
    struct transport_pool *pool = t->pool;

    (void)suggested;
    /* Reads are handed on before the next alloc, so one buffer serves
     * every transport; the fallback only guards against nesting. */
    if (!pool->read_busy) {
        pool->read_busy = true;
        buf->base = pool->read_buf;
    } else {
        buf->base = xmalloc(READ_BUF_SIZE);
    }
    buf->len = READ_BUF_SIZE;
}

static void
read_error(struct uv_transport *t, ssize_t nread)
{
    if (nread != UV_EOF) {
        uvt_fail(t, (int)nread, "read from %s: %s", t->peer,
                 uv_strerror((int)nread));
    } else if (t->tun != NULL) {
        uvt_tunnel_closed_output(t);
    } else if (t->tls != NULL && !t->tls_up) {
        uvt_fail(t, ERR_CLOSED,
                 "TLS with %s: connection closed during the handshake",
                 t->peer);
    } else {
        uvt_fail(t, ERR_CLOSED, "connection closed by %s", t->peer);
    }
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct uv_transport *t = s->data;
    struct transport_pool *pool = t->pool;

    if (nread < 0) {
        read_error(t, nread);
    } else if (nread > 0 && uvt_active(t)) {
        /* Before the bytes are handled: the ACK leaves first, so a server
         * holding its next reply for it sends that reply while we work. */
        uvt_tcp_quickack(t);
        if (t->tls != NULL) {
            int r = tls_conn_feed(t->tls, buf->base, (size_t)nread,
                                  pool->scratch, sizeof(pool->scratch));

            if (r == ERR_CLOSED)
                uvt_fail(t, r, "connection closed by %s (TLS close_notify)",
                         t->peer);
            else if (r < 0)
                uvt_fail(t, r, "TLS with %s: %s", t->peer,
                         tls_conn_error(t->tls));
        } else {
            uvt_notify_read(t, buf->base, (size_t)nread);
        }
    }
    if (buf->base == pool->read_buf)
        pool->read_busy = false;
    else
        free(buf->base);
}

void
uvt_stream_connected(struct uv_transport *t, uv_stream_t *rs)
{
    int r = uv_read_start(rs, on_alloc, on_read);

    if (r < 0) {
        uvt_fail(t, r, "read from %s: %s", t->peer, uv_strerror(r));
        return;
    }
    if (t->tls_ctx != NULL) {
        const char *host = t->tls_host != NULL ? t->tls_host : t->host;

        t->phase = PHASE_HANDSHAKING;
        r = uvt_begin_tls(t, t->tls_ctx, host);
        if (r < 0)
            uvt_fail(t, r, "TLS with %s: %s", t->peer,
                     t->tls != NULL ? tls_conn_error(t->tls)
                                    : "cannot create a TLS connection");
        return;
    }
    uv_timer_stop(&t->timer);
    t->phase = PHASE_OPEN;
    uvt_notify_connected(t);
    if (uvt_active(t) && t->wire.len > 0)
        uvt_queue_flush(t);
}

/* ---- ops -------------------------------------------------------------- */

static int
uvt_connect(struct transport *base)
{
    struct uv_transport *t = uvt(base);
    int r;

    if (!uvt_active(t) || t->phase != PHASE_NEW)
        return ERR_BAD_STATE;
    if (t->tunnel_cmd != NULL)
        return uvt_tunnel_spawn(t);
    r = uvt_tcp_connect(t);
    if (r == 0 && t->timeout_ms > 0)
        uv_timer_start(&t->timer, uvt_on_connect_timeout, t->timeout_ms, 0);
    return r;
}

static void
uvt_write(struct transport *base, const void *data, size_t len, bool secret)
{
    struct uv_transport *t = uvt(base);

    if (!uvt_active(t) || len == 0)
        return;
    if (t->want_tls)
        uvt_out_append(&t->plain, &t->plain_secret, data, len, secret);
    else
        uvt_out_append(&t->wire, &t->wire_secret, data, len, secret);
    uvt_queue_flush(t);
}

static int
uvt_start_tls(struct transport *base, struct tls_ctx *ctx, const char *host)
{
    struct uv_transport *t = uvt(base);
    int r;

    if (!uvt_active(t) || t->phase != PHASE_OPEN || t->want_tls)
        return ERR_BAD_STATE;
    if (host == NULL)
        host = t->tls_host != NULL ? t->tls_host : t->host;
    if (host == NULL)
        return -EINVAL; /* nothing to verify the certificate against */
    r = uvt_begin_tls(t, ctx, host);
    if (r < 0) {
        tls_conn_free(t->tls);
        t->tls = NULL;
        t->want_tls = false;
        return r;
    }
    if (t->timeout_ms > 0)
        uv_timer_start(&t->timer, uvt_on_starttls_timeout, t->timeout_ms, 0);
    return 0;
}

/* Best effort on close: send what is queued (and a close_notify) if the
 * kernel takes it now; never wait for it. */
static void
flush_on_close(struct uv_transport *t)
{
    uv_buf_t b;

    if (t->failed || !stream_up(t) || t->wreq != NULL)
        return;
    if (t->tls_up) {
        t->flushing = true;
        if (t->plain.len == 0 ||
            tls_conn_write(t->tls, t->plain.data, t->plain.len) == 0)
            tls_conn_shutdown(t->tls);
        t->flushing = false;
    } else if (t->want_tls) {
        return; /* handshake unfinished: the wire holds only TLS records */
    }
    if (t->wire.len > 0) {
        b.base = t->wire.data;
        b.len = t->wire.len;
        (void)uv_try_write(write_stream(t), &b, 1);
    }
}

static void
uvt_close(struct transport *base)
{
    struct uv_transport *t = uvt(base);
    struct tunnel *tun = t->tun;

    if (t->closing)
        return;
    flush_on_close(t);
    t->closing = true;
    unqueue_flush(t);
    drop_buf(&t->plain, &t->plain_secret);
    drop_buf(&t->wire, &t->wire_secret);
    if (t->gai != NULL)
        uv_cancel((uv_req_t *)t->gai);
    if (t->tcp_open) {
        t->tcp_open = false;
        uv_close((uv_handle_t *)&t->tcp, uvt_on_handle_closed);
    }
    if (tun != NULL && tun->pipes_open) {
        tun->pipes_open = false;
        uv_close((uv_handle_t *)&tun->in, uvt_on_handle_closed);
        uv_close((uv_handle_t *)&tun->out, uvt_on_handle_closed);
    }
    if (tun != NULL && tun->running) {
        /* Wait for the exit callback; the timer escalates to SIGKILL. */
        uv_process_kill(&tun->proc, SIGTERM);
        uv_timer_start(&t->timer, uvt_on_tunnel_kill_timer, TUNNEL_GRACE_MS,
                       0);
    } else {
        if (tun != NULL && tun->proc_open) {
            tun->proc_open = false;
            uv_close((uv_handle_t *)&tun->proc, uvt_on_handle_closed);
        }
        t->timer_open = false;
        uv_close((uv_handle_t *)&t->timer, uvt_on_handle_closed);
    }
}

static const char *
uvt_peer(const struct transport *base)
{
    return cuvt(base)->peer;
}

static const char *
uvt_tls_describe(const struct transport *base)
{
    const struct uv_transport *t = cuvt(base);

    return t->tls != NULL && t->tls_up ? tls_conn_describe(t->tls) : NULL;
}

static const struct transport_ops uv_transport_ops = {
    .connect = uvt_connect,
    .write = uvt_write,
    .start_tls = uvt_start_tls,
    .close = uvt_close,
    .peer = uvt_peer,
    .tls_describe = uvt_tls_describe,
};

struct transport *
transport_new(struct transport_pool *pool, const struct transport_settings *s)
{
    struct uv_transport *t;
    bool tunnel = s->tunnel != NULL && *s->tunnel != '\0';

    if (!tunnel && (s->host == NULL || *s->host == '\0'))
        return NULL;
    if (pool->factory != NULL)
        return pool->factory(pool->factory_arg, s);
    /* Implicit TLS through a tunnel needs a name to verify. */
    if (tunnel && s->tls != NULL && s->tls_host == NULL && s->host == NULL)
        return NULL;
    t = xcalloc(1, sizeof(*t));
    t->base.ops = &uv_transport_ops;
    t->pool = pool;
    pool->live++;
    if (tunnel) {
        t->tunnel_cmd = xstrdup(s->tunnel);
        t->peer = xstrdup("tunnel");
    } else {
        t->peer = host_port(s->host, s->port);
    }
    t->host = s->host != NULL ? xstrdup(s->host) : NULL;
    t->tls_host = s->tls_host != NULL ? xstrdup(s->tls_host) : NULL;
    t->port = s->port;
    t->timeout_ms = s->connect_timeout_ms;
    t->keepalive_s = s->keepalive_s;
    if (s->tls != NULL) {
        t->tls_ctx = tls_ctx_ref(s->tls);
        t->want_tls = true;
    }
    buf_init(&t->plain, BUF_NOCAP);
    buf_init(&t->wire, BUF_NOCAP);
    /* The timer lives as long as the transport, so closing always has a
     * handle to wait for and `closed` always comes from the loop. */
    uv_timer_init(pool->loop, &t->timer);
    t->timer.data = t;
    t->timer_open = true;
    t->pending = 1;
    return &t->base;
}

/* ---- generic dispatch -------------------------------------------------- */

void
transport_set_callbacks(struct transport *t, const struct transport_cbs *cbs,
                        void *arg)
{
    t->cbs = cbs;
    t->cb_arg = arg;
}

int
transport_connect(struct transport *t)
{
    return t->ops->connect(t);
}

void
transport_write(struct transport *t, const void *data, size_t len,
                bool secret)
{
    t->ops->write(t, data, len, secret);
}

int
transport_start_tls(struct transport *t, struct tls_ctx *ctx,
                    const char *host)
{
    return t->ops->start_tls(t, ctx, host);
}

void
transport_close(struct transport *t)
{
    if (t != NULL)
        t->ops->close(t);
}

const char *
transport_peer(const struct transport *t)
{
    return t->ops->peer(t);
}

const char *
transport_tls_describe(const struct transport *t)
{
    return t->ops->tls_describe(t);
}
