/* SPDX-License-Identifier: MIT */
/* The TCP side of the libuv transport: name lookup, connect to each
 * address in turn, keepalive; and the TLS glue between the stream and
 * tls_conn (implicit TLS, STARTTLS, and TLS over a tunnel). */
#include "transport_private.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "tls.h"
#include "util.h"

/* ---- TLS glue ----------------------------------------------------------- */

static void
tls_write_cipher(void *arg, const void *data, size_t len)
{
    struct uv_transport *t = arg;

    uvt_out_append(&t->wire, &t->wire_secret, data, len, false);
    if (!t->flushing)
        uvt_queue_flush(t);
}

static bool
tls_read_plain(void *arg, const char *data, size_t len)
{
    struct uv_transport *t = arg;

    uvt_notify_read(t, data, len);
    return uvt_active(t);
}

static bool
tls_handshake_done(void *arg)
{
    struct uv_transport *t = arg;

    t->tls_up = true;
    uv_timer_stop(&t->timer);
    if (t->phase == PHASE_HANDSHAKING) {
        t->phase = PHASE_OPEN;
        uvt_notify_connected(t);
    } else if (uvt_active(t) && t->base.cbs != NULL &&
               t->base.cbs->tls_ready != NULL) {
        t->base.cbs->tls_ready(&t->base, t->base.cb_arg);
    }
    if (uvt_active(t) && t->plain.len > 0)
        uvt_queue_flush(t);
    return uvt_active(t);
}

static const struct tls_conn_ops tls_ops = {
    .write_cipher = tls_write_cipher,
    .read_plain = tls_read_plain,
    .handshake_done = tls_handshake_done,
};

int
uvt_begin_tls(struct uv_transport *t, struct tls_ctx *ctx, const char *host)
{
    t->tls = tls_conn_new(ctx, host, &tls_ops, t);
    if (t->tls == NULL)
        return ERR_TLS;
    t->want_tls = true;
    /* The ClientHello goes out through tls_write_cipher. */
    return tls_conn_start(t->tls);
}

/* ---- TCP connect ------------------------------------------------------ */

static void try_connect(struct uv_transport *t, int last_err,
                        const char *last_addr);

static void
format_ms(char *out, size_t size, uint64_t ms)
{
    if (ms % 1000 == 0)
        snprintf(out, size, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, size, "%llums", (unsigned long long)ms);
}

void
uvt_on_connect_timeout(uv_timer_t *timer)
{
    struct uv_transport *t = timer->data;
    char d[32];

    format_ms(d, sizeof(d), t->timeout_ms);
    uvt_fail(t, ERR_TIMEOUT, "connect to %s timed out after %s%s", t->peer, d,
             t->phase == PHASE_RESOLVING     ? " (resolving the name)"
             : t->phase == PHASE_HANDSHAKING ? " (during the TLS handshake)"
                                             : "");
}

void
uvt_on_starttls_timeout(uv_timer_t *timer)
{
    struct uv_transport *t = timer->data;
    char d[32];

    format_ms(d, sizeof(d), t->timeout_ms);
    uvt_fail(t, ERR_TIMEOUT, "TLS handshake with %s timed out after %s",
             t->peer, d);
}

static void
on_tcp_retry_closed(uv_handle_t *h)
{
    struct uv_transport *t = h->data;

    if (!uvt_active(t)) {
        uvt_release(t);
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
    if (!uvt_active(t)) {
        uvt_release(t);
        return;
    }
    if (status < 0) {
        uv_ip_name(t->ai_next->ai_addr, addr, sizeof(addr));
        t->ai_next = t->ai_next->ai_next;
        if (t->ai_next != NULL) {
            /* The handle is reused for the next address once closed. */
            t->tcp_open = false;
            uv_close((uv_handle_t *)&t->tcp, on_tcp_retry_closed);
            uvt_release(t);
            return;
        }
        try_connect(t, status, addr);
        uvt_release(t);
        return;
    }
    uv_freeaddrinfo(t->ai_list);
    t->ai_list = t->ai_next = NULL;
    uv_tcp_nodelay(&t->tcp, 1);
    if (t->keepalive_s > 0)
        uv_tcp_keepalive(&t->tcp, 1, t->keepalive_s);
    uvt_stream_connected(t, (uv_stream_t *)&t->tcp);
    uvt_release(t);
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
        uvt_fail(t, last_err, "connect to %s: %s", t->peer,
                 uv_strerror(last_err));
    else
        uvt_fail(t, last_err, "connect to %s (%s): %s", t->peer, addr,
                 uv_strerror(last_err));
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct uv_transport *t = req->data;

    free(req);
    t->gai = NULL;
    if (!uvt_active(t)) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        uvt_release(t);
        return;
    }
    if (status < 0) {
        uvt_fail(t, status, "cannot resolve %s: %s", t->host,
                 uv_strerror(status));
        uvt_release(t);
        return;
    }
    t->ai_list = t->ai_next = res;
    t->phase = PHASE_CONNECTING;
    try_connect(t, 0, NULL);
    uvt_release(t);
}

int
uvt_tcp_connect(struct uv_transport *t)
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
