#include "transport.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "tls.h"
#include "util.h"

#define READ_BUF_SIZE (64 * 1024)
/* One TLS record's plaintext at most. */
#define SCRATCH_SIZE (16 * 1024)
/* How long a tunnel command gets between SIGTERM and SIGKILL, and between
 * closing its output and exiting (or the reverse). */
#define TUNNEL_GRACE_MS 5000

struct transport_pool {
    uv_loop_t *loop;
    uv_prepare_t prepare;
    struct uv_transport *flush_head; /* transports with output to send */
    unsigned live;                   /* transports not yet freed */
    bool freeing;
    bool prepare_closed;
    bool read_busy;
    char read_buf[READ_BUF_SIZE];
    char scratch[SCRATCH_SIZE];
};

enum phase {
    PHASE_NEW,
    PHASE_RESOLVING,
    PHASE_CONNECTING,
    PHASE_HANDSHAKING, /* stream up, implicit TLS handshake running */
    PHASE_OPEN,
};

struct tunnel {
    uv_process_t proc;
    uv_pipe_t in;  /* the child's stdin: we write */
    uv_pipe_t out; /* the child's stdout: we read */
    bool proc_open;
    bool pipes_open;
    bool running;
    bool started; /* `connected` was delivered, reading began */
    bool exited;
    bool eof;
    int64_t status;
    int term_signal;
};

/* A uv_write in flight; owns the rest of the output it sends. */
struct write_req {
    uv_write_t req;
    struct uv_transport *t;
    char *data;
    size_t cap;
    bool secret;
};

struct uv_transport {
    struct transport base;
    struct transport_pool *pool;
    struct uv_transport *flush_next, *flush_prev;
    enum phase phase;
    bool queued;     /* on the pool's flush list */
    bool closing;    /* transport_close() was called */
    bool failed;     /* `error` was delivered */
    bool flushing;   /* inside tls_conn_write from flush() */
    bool timer_open;
    bool tcp_open;   /* tcp initialized and uv_close not yet called */
    bool want_tls;   /* writes wait for the TLS handshake */
    bool tls_up;
    bool plain_secret, wire_secret;
    unsigned pending; /* open handles + requests in flight */
    uv_timer_t timer;
    uv_tcp_t tcp;
    struct tunnel *tun;
    uv_getaddrinfo_t *gai;
    uv_connect_t *connect_req;
    struct addrinfo *ai_list, *ai_next;
    struct write_req *wreq;
    struct tls_ctx *tls_ctx; /* implicit TLS */
    struct tls_conn *tls;
    struct buf plain; /* TLS: plaintext not yet encrypted */
    struct buf wire;  /* bytes for the socket or pipe */
    char *host, *tls_host, *tunnel_cmd, *peer;
    uint64_t timeout_ms;
    unsigned keepalive_s;
    uint16_t port;
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

static void
queue_flush(struct uv_transport *t)
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
format_ms(char *out, size_t size, uint64_t ms)
{
    if (ms % 1000 == 0)
        snprintf(out, size, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, size, "%llums", (unsigned long long)ms);
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
static void
out_append(struct buf *b, bool *secret_flag, const void *data, size_t len,
           bool secret)
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

static bool
active(const struct uv_transport *t)
{
    return !t->closing && !t->failed;
}

static void
stop_reading(struct uv_transport *t)
{
    if (t->tcp_open)
        uv_read_stop((uv_stream_t *)&t->tcp);
    if (t->tun != NULL && t->tun->pipes_open)
        uv_read_stop((uv_stream_t *)&t->tun->out);
}

/* Deliver `error` once; afterwards only `closed` may follow. */
static void PRINTF_LIKE(3, 4)
fail(struct uv_transport *t, int err, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (!active(t))
        return;
    t->failed = true;
    unqueue_flush(t);
    if (t->timer_open)
        uv_timer_stop(&t->timer);
    stop_reading(t);
    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    if (t->base.cbs != NULL && t->base.cbs->error != NULL)
        t->base.cbs->error(&t->base, err, msg, t->base.cb_arg);
    free(msg);
}

static void
notify_connected(struct uv_transport *t)
{
    if (active(t) && t->base.cbs != NULL && t->base.cbs->connected != NULL)
        t->base.cbs->connected(&t->base, t->base.cb_arg);
}

static void
notify_read(struct uv_transport *t, const char *data, size_t len)
{
    if (active(t) && t->base.cbs != NULL && t->base.cbs->read != NULL)
        t->base.cbs->read(&t->base, data, len, t->base.cb_arg);
}

static void tunnel_closed_output(struct uv_transport *t);

static void
write_failed(struct uv_transport *t, int err)
{
    /* A tunnel whose command died: report its exit status instead. */
    if (t->tun != NULL && err == UV_EPIPE) {
        tunnel_closed_output(t);
        return;
    }
    fail(t, err, "write to %s: %s", t->peer, uv_strerror(err));
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
static void
release(struct uv_transport *t)
{
    t->pending--;
    if (t->closing && t->pending == 0)
        finish(t);
}

static void
on_handle_closed(uv_handle_t *h)
{
    release(h->data);
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
    if (active(t)) {
        if (status < 0)
            write_failed(t, status);
        else if (t->wire.len > 0 || (t->tls_up && t->plain.len > 0))
            queue_flush(t);
    }
    release(t);
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
    if (!active(t) || !stream_up(t))
        return;
    if (t->tls_up && t->plain.len > 0) {
        int r;

        t->flushing = true;
        r = tls_conn_write(t->tls, t->plain.data, t->plain.len);
        t->flushing = false;
        drop_buf(&t->plain, &t->plain_secret);
        if (r < 0) {
            fail(t, r, "TLS with %s: %s", t->peer, tls_conn_error(t->tls));
            return;
        }
    }
    send_wire(t);
}

/* ---- TLS glue ----------------------------------------------------------- */

static void
tls_write_cipher(void *arg, const void *data, size_t len)
{
    struct uv_transport *t = arg;

    out_append(&t->wire, &t->wire_secret, data, len, false);
    if (!t->flushing)
        queue_flush(t);
}

static bool
tls_read_plain(void *arg, const char *data, size_t len)
{
    struct uv_transport *t = arg;

    notify_read(t, data, len);
    return active(t);
}

static bool
tls_handshake_done(void *arg)
{
    struct uv_transport *t = arg;

    t->tls_up = true;
    uv_timer_stop(&t->timer);
    if (t->phase == PHASE_HANDSHAKING) {
        t->phase = PHASE_OPEN;
        notify_connected(t);
    } else if (active(t) && t->base.cbs != NULL &&
               t->base.cbs->tls_ready != NULL) {
        t->base.cbs->tls_ready(&t->base, t->base.cb_arg);
    }
    if (active(t) && t->plain.len > 0)
        queue_flush(t);
    return active(t);
}

static const struct tls_conn_ops tls_ops = {
    .write_cipher = tls_write_cipher,
    .read_plain = tls_read_plain,
    .handshake_done = tls_handshake_done,
};

static int
begin_tls(struct uv_transport *t, struct tls_ctx *ctx, const char *host)
{
    t->tls = tls_conn_new(ctx, host, &tls_ops, t);
    if (t->tls == NULL)
        return ERR_TLS;
    t->want_tls = true;
    /* The ClientHello goes out through tls_write_cipher. */
    return tls_conn_start(t->tls);
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
        fail(t, (int)nread, "read from %s: %s", t->peer,
             uv_strerror((int)nread));
    } else if (t->tun != NULL) {
        tunnel_closed_output(t);
    } else if (t->tls != NULL && !t->tls_up) {
        fail(t, ERR_CLOSED, "TLS with %s: connection closed during the "
                            "handshake", t->peer);
    } else {
        fail(t, ERR_CLOSED, "connection closed by %s", t->peer);
    }
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct uv_transport *t = s->data;
    struct transport_pool *pool = t->pool;

    if (nread < 0) {
        read_error(t, nread);
    } else if (nread > 0 && active(t)) {
        if (t->tls != NULL) {
            int r = tls_conn_feed(t->tls, buf->base, (size_t)nread,
                                  pool->scratch, sizeof(pool->scratch));

            if (r == ERR_CLOSED)
                fail(t, r, "connection closed by %s (TLS close_notify)",
                     t->peer);
            else if (r < 0)
                fail(t, r, "TLS with %s: %s", t->peer,
                     tls_conn_error(t->tls));
        } else {
            notify_read(t, buf->base, (size_t)nread);
        }
    }
    if (buf->base == pool->read_buf)
        pool->read_busy = false;
    else
        free(buf->base);
}

/* ---- TCP connect ------------------------------------------------------ */

static void try_connect(struct uv_transport *t, int last_err,
                        const char *last_addr);

static void
on_connect_timeout(uv_timer_t *timer)
{
    struct uv_transport *t = timer->data;
    char d[32];

    format_ms(d, sizeof(d), t->timeout_ms);
    fail(t, ERR_TIMEOUT, "connect to %s timed out after %s%s", t->peer, d,
         t->phase == PHASE_RESOLVING     ? " (resolving the name)"
         : t->phase == PHASE_HANDSHAKING ? " (during the TLS handshake)"
                                         : "");
}

static void
on_starttls_timeout(uv_timer_t *timer)
{
    struct uv_transport *t = timer->data;
    char d[32];

    format_ms(d, sizeof(d), t->timeout_ms);
    fail(t, ERR_TIMEOUT, "TLS handshake with %s timed out after %s",
         t->peer, d);
}

static void
stream_connected(struct uv_transport *t, uv_stream_t *rs)
{
    int r = uv_read_start(rs, on_alloc, on_read);

    if (r < 0) {
        fail(t, r, "read from %s: %s", t->peer, uv_strerror(r));
        return;
    }
    if (t->tls_ctx != NULL) {
        const char *host = t->tls_host != NULL ? t->tls_host : t->host;

        t->phase = PHASE_HANDSHAKING;
        r = begin_tls(t, t->tls_ctx, host);
        if (r < 0)
            fail(t, r, "TLS with %s: %s", t->peer,
                 t->tls != NULL ? tls_conn_error(t->tls)
                                : "cannot create a TLS connection");
        return;
    }
    uv_timer_stop(&t->timer);
    t->phase = PHASE_OPEN;
    notify_connected(t);
    if (active(t) && t->wire.len > 0)
        queue_flush(t);
}

static void
on_tcp_retry_closed(uv_handle_t *h)
{
    struct uv_transport *t = h->data;

    if (!active(t)) {
        release(t);
        return;
    }
    t->pending--;
    try_connect(t, 0, NULL);
}

static void
on_connect(uv_connect_t *req, int status)
{
    struct uv_transport *t = req->data;
    char addr[64] = "";

    free(req);
    t->connect_req = NULL;
    if (!active(t)) {
        release(t);
        return;
    }
    if (status < 0) {
        uv_ip_name(t->ai_next->ai_addr, addr, sizeof(addr));
        t->ai_next = t->ai_next->ai_next;
        if (t->ai_next != NULL) {
            /* The handle is reused for the next address once closed. */
            t->tcp_open = false;
            uv_close((uv_handle_t *)&t->tcp, on_tcp_retry_closed);
            release(t);
            return;
        }
        try_connect(t, status, addr);
        release(t);
        return;
    }
    uv_freeaddrinfo(t->ai_list);
    t->ai_list = t->ai_next = NULL;
    uv_tcp_nodelay(&t->tcp, 1);
    if (t->keepalive_s > 0)
        uv_tcp_keepalive(&t->tcp, 1, t->keepalive_s);
    stream_connected(t, (uv_stream_t *)&t->tcp);
    release(t);
}

/* Connect to t->ai_next, skipping addresses that fail at once; with none
 * left, report the last failure. */
static void
try_connect(struct uv_transport *t, int last_err, const char *last_addr)
{
    char addr[64] = "";
    int r;

    if (last_addr != NULL)
        util_strlcpy(addr, last_addr, sizeof(addr));
    while (t->ai_next != NULL && last_err == 0) {
        struct addrinfo *ai = t->ai_next;

        if (!t->tcp_open) {
            uv_tcp_init(t->pool->loop, &t->tcp);
            t->tcp.data = t;
            t->tcp_open = true;
            t->pending++;
        }
        t->connect_req = xmalloc(sizeof(*t->connect_req));
        t->connect_req->data = t;
        r = uv_tcp_connect(t->connect_req, &t->tcp, ai->ai_addr, on_connect);
        if (r == 0) {
            t->pending++;
            return;
        }
        free(t->connect_req);
        t->connect_req = NULL;
        uv_ip_name(ai->ai_addr, addr, sizeof(addr));
        t->ai_next = ai->ai_next;
        last_err = r;
        if (t->ai_next != NULL) {
            t->tcp_open = false;
            uv_close((uv_handle_t *)&t->tcp, on_tcp_retry_closed);
            return;
        }
    }
    if (last_err == 0)
        last_err = UV_EADDRNOTAVAIL;
    if (*addr == '\0' || strcmp(addr, t->host) == 0)
        fail(t, last_err, "connect to %s: %s", t->peer,
             uv_strerror(last_err));
    else
        fail(t, last_err, "connect to %s (%s): %s", t->peer, addr,
             uv_strerror(last_err));
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct uv_transport *t = req->data;

    free(req);
    t->gai = NULL;
    if (!active(t)) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        release(t);
        return;
    }
    if (status < 0) {
        fail(t, status, "cannot resolve %s: %s", t->host,
             uv_strerror(status));
        release(t);
        return;
    }
    t->ai_list = t->ai_next = res;
    t->phase = PHASE_CONNECTING;
    try_connect(t, 0, NULL);
    release(t);
}

static int
tcp_connect(struct uv_transport *t)
{
    struct addrinfo hints;
    char port[8];
    int r;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(port, sizeof(port), "%u", (unsigned)t->port);
    t->gai = xmalloc(sizeof(*t->gai));
    t->gai->data = t;
    r = uv_getaddrinfo(t->pool->loop, t->gai, on_resolved, t->host, port,
                       &hints);
    if (r < 0) {
        free(t->gai);
        t->gai = NULL;
        return r;
    }
    t->pending++;
    t->phase = PHASE_RESOLVING;
    return 0;
}

/* ---- tunnel ----------------------------------------------------------- */

static void
tunnel_report(struct uv_transport *t)
{
    struct tunnel *tun = t->tun;

    if (!tun->exited)
        fail(t, ERR_CLOSED, "tunnel command closed its output");
    else if (tun->term_signal != 0)
        fail(t, ERR_CLOSED, "tunnel command killed by signal %d",
             tun->term_signal);
    else
        fail(t, ERR_CLOSED, "tunnel command exited with status %lld",
             (long long)tun->status);
}

static void
on_tunnel_grace(uv_timer_t *timer)
{
    tunnel_report(timer->data);
}

/* The command's output ended or its input broke: report once it has also
 * exited, so the message carries the exit status. */
static void
tunnel_closed_output(struct uv_transport *t)
{
    if (!active(t) || t->tun->eof)
        return;
    t->tun->eof = true;
    stop_reading(t);
    if (t->tun->exited)
        tunnel_report(t);
    else
        uv_timer_start(&t->timer, on_tunnel_grace, TUNNEL_GRACE_MS, 0);
}

static void
on_tunnel_exit(uv_process_t *proc, int64_t status, int term_signal)
{
    struct uv_transport *t = proc->data;
    struct tunnel *tun = t->tun;

    tun->running = false;
    tun->exited = true;
    tun->status = status;
    tun->term_signal = term_signal;
    tun->proc_open = false;
    uv_close((uv_handle_t *)proc, on_handle_closed);
    if (t->closing) {
        /* transport_close() kept the timer for the SIGKILL escalation. */
        if (t->timer_open) {
            t->timer_open = false;
            uv_close((uv_handle_t *)&t->timer, on_handle_closed);
        }
        return;
    }
    /* Output may still be buffered in the pipe: wait for its EOF (once
     * reading has started; on_tunnel_started handles the rest). */
    if (tun->eof)
        tunnel_report(t);
    else if (active(t) && tun->started)
        uv_timer_start(&t->timer, on_tunnel_grace, TUNNEL_GRACE_MS, 0);
}

static void
on_tunnel_started(uv_timer_t *timer)
{
    struct uv_transport *t = timer->data;

    t->tun->started = true;
    stream_connected(t, (uv_stream_t *)&t->tun->out);
    if (!active(t))
        return;
    if (t->tun->exited)
        uv_timer_start(&t->timer, on_tunnel_grace, TUNNEL_GRACE_MS, 0);
    else if (t->tls_ctx != NULL && t->timeout_ms > 0)
        uv_timer_start(&t->timer, on_connect_timeout, t->timeout_ms, 0);
}

static int
tunnel_spawn(struct uv_transport *t)
{
    struct tunnel *tun = xcalloc(1, sizeof(*tun));
    uv_process_options_t opts;
    uv_stdio_container_t stdio[3];
    uv_file to_child[2], from_child[2];
    char *args[4];
    int r;

    t->tun = tun;
    uv_pipe_init(t->pool->loop, &tun->in, 0);
    uv_pipe_init(t->pool->loop, &tun->out, 0);
    tun->in.data = tun->out.data = tun->proc.data = t;
    tun->pipes_open = true;
    t->pending += 2;

    /* Real pipes, not socketpairs: the command sees what ssh would give
     * it (Dovecot's imap binary refuses a socket on stdin as "inetd"). */
    r = uv_pipe(to_child, 0, UV_NONBLOCK_PIPE);
    if (r < 0)
        return r;
    r = uv_pipe(from_child, UV_NONBLOCK_PIPE, 0);
    if (r < 0) {
        close(to_child[0]);
        close(to_child[1]);
        return r;
    }
    args[0] = "/bin/sh";
    args[1] = "-c";
    args[2] = t->tunnel_cmd;
    args[3] = NULL;
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = to_child[0];
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = from_child[1];
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    memset(&opts, 0, sizeof(opts));
    opts.file = args[0];
    opts.args = args;
    opts.exit_cb = on_tunnel_exit;
    opts.stdio = stdio;
    opts.stdio_count = 3;
    r = uv_spawn(t->pool->loop, &tun->proc, &opts);
    /* The handle is initialized even when the spawn failed. */
    tun->proc_open = true;
    t->pending++;
    close(to_child[0]);
    close(from_child[1]);
    if (r == 0)
        r = uv_pipe_open(&tun->in, to_child[1]);
    else
        close(to_child[1]);
    if (r == 0)
        r = uv_pipe_open(&tun->out, from_child[0]);
    else
        close(from_child[0]);
    if (r < 0)
        return r;
    tun->running = true;
    free(t->peer);
    t->peer = xasprintf("tunnel (pid %d)", tun->proc.pid);
    t->phase = PHASE_HANDSHAKING;
    /* `connected` comes from the loop, never from inside connect. */
    uv_timer_start(&t->timer, on_tunnel_started, 0, 0);
    return 0;
}

static void
on_tunnel_kill_timer(uv_timer_t *timer)
{
    struct uv_transport *t = timer->data;

    if (t->tun->running)
        uv_process_kill(&t->tun->proc, SIGKILL);
}

/* ---- ops -------------------------------------------------------------- */

static int
uvt_connect(struct transport *base)
{
    struct uv_transport *t = uvt(base);
    int r;

    if (!active(t) || t->phase != PHASE_NEW)
        return ERR_BAD_STATE;
    if (t->tunnel_cmd != NULL)
        return tunnel_spawn(t);
    r = tcp_connect(t);
    if (r == 0 && t->timeout_ms > 0)
        uv_timer_start(&t->timer, on_connect_timeout, t->timeout_ms, 0);
    return r;
}

static void
uvt_write(struct transport *base, const void *data, size_t len, bool secret)
{
    struct uv_transport *t = uvt(base);

    if (!active(t) || len == 0)
        return;
    if (t->want_tls)
        out_append(&t->plain, &t->plain_secret, data, len, secret);
    else
        out_append(&t->wire, &t->wire_secret, data, len, secret);
    queue_flush(t);
}

static int
uvt_start_tls(struct transport *base, struct tls_ctx *ctx, const char *host)
{
    struct uv_transport *t = uvt(base);
    int r;

    if (!active(t) || t->phase != PHASE_OPEN || t->want_tls)
        return ERR_BAD_STATE;
    if (host == NULL)
        host = t->tls_host != NULL ? t->tls_host : t->host;
    if (host == NULL)
        return -EINVAL; /* nothing to verify the certificate against */
    r = begin_tls(t, ctx, host);
    if (r < 0) {
        tls_conn_free(t->tls);
        t->tls = NULL;
        t->want_tls = false;
        return r;
    }
    if (t->timeout_ms > 0)
        uv_timer_start(&t->timer, on_starttls_timeout, t->timeout_ms, 0);
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
        uv_close((uv_handle_t *)&t->tcp, on_handle_closed);
    }
    if (tun != NULL && tun->pipes_open) {
        tun->pipes_open = false;
        uv_close((uv_handle_t *)&tun->in, on_handle_closed);
        uv_close((uv_handle_t *)&tun->out, on_handle_closed);
    }
    if (tun != NULL && tun->running) {
        /* Wait for the exit callback; the timer escalates to SIGKILL. */
        uv_process_kill(&tun->proc, SIGTERM);
        uv_timer_start(&t->timer, on_tunnel_kill_timer, TUNNEL_GRACE_MS, 0);
    } else {
        if (tun != NULL && tun->proc_open) {
            tun->proc_open = false;
            uv_close((uv_handle_t *)&tun->proc, on_handle_closed);
        }
        t->timer_open = false;
        uv_close((uv_handle_t *)&t->timer, on_handle_closed);
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
