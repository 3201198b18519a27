/* SPDX-License-Identifier: MIT */
/* The scripted server of the unit-test library: see testlib.h. */
#include "testlib.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "util.h"

struct fake_transport;

struct fakesrv {
    struct fakenet *net;
    struct fake_transport *t;   /* NULL once the transport is freed */
    char *host;
    uint16_t port;
    struct buf out;             /* every byte the client wrote */
    size_t seen;                /* consumed by take/line */
    bool connected;
    bool tls;
    bool closed;                /* the client closed the transport */
    bool dropped;               /* the server side failed it */
};

struct fakenet {
    uv_loop_t *loop;
    struct fakesrv **conns;
    size_t n, cap;
    bool refuse;
    int refuse_err;
    char *refuse_msg;
};

struct fake_transport {
    struct transport base;
    struct fakesrv *srv;
    uv_timer_t timer;           /* reports connect from the loop */
    bool closing;
};

/* --- the transport --------------------------------------------------------- */

static void
on_connect_timer(uv_timer_t *timer)
{
    struct fake_transport *t = timer->data;
    struct fakesrv *f = t->srv;

    if (t->closing || f == NULL)
        return;
    if (f->net->refuse) {
        f->dropped = true;
        t->base.cbs->error(&t->base, f->net->refuse_err,
                           f->net->refuse_msg ? f->net->refuse_msg
                                              : "connection refused",
                           t->base.cb_arg);
        return;
    }
    f->connected = true;
    t->base.cbs->connected(&t->base, t->base.cb_arg);
}

static int
ft_connect(struct transport *base)
{
    struct fake_transport *t = (struct fake_transport *)base;

    uv_timer_start(&t->timer, on_connect_timer, 0, 0);
    return 0;
}

static void
ft_write(struct transport *base, const void *data, size_t len, bool secret)
{
    struct fake_transport *t = (struct fake_transport *)base;

    (void)secret;
    if (t->closing || t->srv == NULL)
        return;
    buf_append(&t->srv->out, data, len);
}

static int
ft_start_tls(struct transport *base, struct tls_ctx *ctx, const char *host)
{
    struct fake_transport *t = (struct fake_transport *)base;

    (void)ctx;
    (void)host;
    if (t->srv != NULL)
        t->srv->tls = true;
    t->base.cbs->tls_ready(&t->base, t->base.cb_arg);
    return 0;
}

static void
ft_closed(uv_handle_t *h)
{
    struct fake_transport *t = h->data;

    if (t->srv != NULL)
        t->srv->t = NULL;
    t->base.cbs->closed(&t->base, t->base.cb_arg);
    free(t);
}

static void
ft_close(struct transport *base)
{
    struct fake_transport *t = (struct fake_transport *)base;

    if (t->closing)
        return;
    t->closing = true;
    if (t->srv != NULL)
        t->srv->closed = true;
    uv_close((uv_handle_t *)&t->timer, ft_closed);
}

static const char *
ft_peer(const struct transport *base)
{
    (void)base;
    return "fake";
}

static const char *
ft_tls_describe(const struct transport *base)
{
    const struct fake_transport *t = (const struct fake_transport *)base;

    return t->srv != NULL && t->srv->tls ? "TLS (fake)" : NULL;
}

static const struct transport_ops fake_ops = {
    .connect = ft_connect,
    .write = ft_write,
    .start_tls = ft_start_tls,
    .close = ft_close,
    .peer = ft_peer,
    .tls_describe = ft_tls_describe,
};

/* --- the network ------------------------------------------------------------ */

struct fakenet *
fakenet_new(uv_loop_t *loop)
{
    struct fakenet *net = xcalloc(1, sizeof(*net));

    net->loop = loop;
    return net;
}

static struct fakesrv *
new_conn(struct fakenet *net, const struct transport_settings *s)
{
    struct fakesrv *f = xcalloc(1, sizeof(*f));
    struct fake_transport *t = xcalloc(1, sizeof(*t));

    f->net = net;
    f->t = t;
    buf_init(&f->out, BUF_NOCAP);
    if (s != NULL) {
        f->host = s->host ? xstrdup(s->host)
                          : s->tunnel ? xstrdup(s->tunnel) : NULL;
        f->port = s->port;
    }
    t->base.ops = &fake_ops;
    t->srv = f;
    uv_timer_init(net->loop, &t->timer);
    t->timer.data = t;
    ARRAY_GROW(net->conns, net->cap, net->n + 1);
    net->conns[net->n++] = f;
    return f;
}

static struct transport *
factory(void *arg, const struct transport_settings *s)
{
    return &new_conn(arg, s)->t->base;
}

void
fakenet_attach(struct fakenet *net, struct transport_pool *pool)
{
    transport_pool_set_factory(pool, factory, net);
}

void
fakenet_free(struct fakenet *net)
{
    if (net == NULL)
        return;
    for (size_t i = 0; i < net->n; i++) {
        struct fakesrv *f = net->conns[i];

        /* a transport still open belongs to a leaked connection: let the
         * sanitizer report that, not a use after free here */
        if (f->t != NULL)
            f->t->srv = NULL;
        buf_free(&f->out);
        free(f->host);
        free(f);
    }
    free(net->conns);
    free(net->refuse_msg);
    free(net);
}

void
fakenet_refuse(struct fakenet *net, bool refuse, int err, const char *msg)
{
    net->refuse = refuse;
    net->refuse_err = err ? err : ERR_CLOSED;
    free(net->refuse_msg);
    net->refuse_msg = msg ? xstrdup(msg) : NULL;
}

size_t
fakenet_count(const struct fakenet *net)
{
    return net->n;
}

struct fakesrv *
fakenet_conn(const struct fakenet *net, size_t i)
{
    return i < net->n ? net->conns[i] : NULL;
}

struct fakesrv *
fakenet_last(const struct fakenet *net)
{
    return net->n > 0 ? net->conns[net->n - 1] : NULL;
}

struct fakesrv *
fakenet_open(struct fakenet *net)
{
    return new_conn(net, NULL);
}

/* --- the server's side -------------------------------------------------------- */

struct transport *
fakesrv_transport(struct fakesrv *f)
{
    return f->t != NULL ? &f->t->base : NULL;
}

uv_loop_t *
fakesrv_loop(const struct fakesrv *f)
{
    return f->net->loop;
}

const char *
fakesrv_host(const struct fakesrv *f)
{
    return f->host;
}

uint16_t
fakesrv_port(const struct fakesrv *f)
{
    return f->port;
}

bool
fakesrv_closed(const struct fakesrv *f)
{
    return f->closed || f->t == NULL;
}

bool
fakesrv_open(const struct fakesrv *f)
{
    return f->t != NULL && !f->t->closing && f->connected && !f->dropped;
}

bool
fakesrv_tls(const struct fakesrv *f)
{
    return f->tls;
}

void
fakesrv_send_bytes(struct fakesrv *f, const void *data, size_t len)
{
    struct fake_transport *t = f->t;

    if (!fakesrv_open(f))
        return;
    t->base.cbs->read(&t->base, data, len, t->base.cb_arg);
}

void
fakesrv_send(struct fakesrv *f, const char *text)
{
    fakesrv_send_bytes(f, text, strlen(text));
}

void
fakesrv_printf(struct fakesrv *f, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = xvasprintf(fmt, ap);
    va_end(ap);
    fakesrv_send(f, s);
    free(s);
}

void
fakesrv_reply(struct fakesrv *f, const char *tag, const char *fmt, ...)
{
    va_list ap;
    struct buf b;

    buf_init(&b, BUF_NOCAP);
    buf_printf(&b, "%s ", tag);
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    buf_append_str(&b, "\r\n");
    fakesrv_send_bytes(f, b.data, b.len);
    buf_free(&b);
}

void
fakesrv_drop(struct fakesrv *f, int err, const char *msg)
{
    struct fake_transport *t = f->t;

    if (!fakesrv_open(f))
        return;
    f->dropped = true;
    t->base.cbs->error(&t->base, err ? err : ERR_CLOSED,
                       msg ? msg : "connection reset by the server",
                       t->base.cb_arg);
}

const char *
fakesrv_all(const struct fakesrv *f)
{
    return buf_cstr(&f->out);
}

char *
fakesrv_take(struct fakesrv *f)
{
    char *s = xstrndup(buf_cstr(&f->out) + f->seen, f->out.len - f->seen);

    f->seen = f->out.len;
    return s;
}

char *
fakesrv_line(struct fakesrv *f)
{
    const char *start = buf_cstr(&f->out) + f->seen;
    const char *nl = memchr(start, '\n', f->out.len - f->seen);
    size_t len;
    char *line;

    if (nl == NULL)
        return NULL;
    len = (size_t)(nl - start);
    f->seen += len + 1;
    if (len > 0 && start[len - 1] == '\r')
        len--;
    line = xstrndup(start, len);
    return line;
}

bool
fakesrv_next_cmd(struct fakesrv *f, struct fakesrv_cmd *c)
{
    char *line = fakesrv_line(f);
    char *sp;

    c->tag = NULL;
    c->text = NULL;
    if (line == NULL)
        return false;
    sp = strchr(line, ' ');
    if (sp == NULL) {
        c->tag = xstrdup("");
        c->text = line;
        return true;
    }
    c->tag = xstrndup(line, (size_t)(sp - line));
    c->text = xstrdup(sp + 1);
    free(line);
    return true;
}

void
fakesrv_cmd_free(struct fakesrv_cmd *c)
{
    free(c->tag);
    free(c->text);
    c->tag = c->text = NULL;
}

static bool
has_line(void *arg)
{
    struct fakesrv *f = arg;

    return memchr(buf_cstr(&f->out) + f->seen, '\n',
                  f->out.len - f->seen) != NULL;
}

bool
fakesrv_wait_line(struct fakesrv *f, uint64_t timeout_ms)
{
    return testlib_run_until(f->net->loop, has_line, f, timeout_ms);
}

void
fakesrv_acted(const struct fakesrv *f, struct uidset *set)
{
    const char *p = buf_cstr(&f->out);

    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *line = xstrndup(p, len);

        testlib_action_uids(line, set, NULL);
        free(line);
        p += len + (nl ? 1 : 0);
    }
}
