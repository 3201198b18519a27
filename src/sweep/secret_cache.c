/* SPDX-License-Identifier: MIT */
/* secret_cache: one account's secret, shared by its connections. A
 * password_command or token_command runs once for all of them (8 mailboxes
 * made 8 runs at start and after every token expiry); the result is kept
 * in memory only, and dropped (wiped) after an authentication failure, at
 * a JWT access token's exp, or at a reload. Other sources are cheap and are
 * read at each login, as before. */
#include "secret.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "util.h"

/* A token is dropped this long before its exp: a login takes a moment. */
#define EXPIRY_MARGIN_S 60

struct secret_cache_req {
    struct secret_cache *c;
    secret_cache_cb *cb;
    void *arg;
    struct secret_cache_req *next;
};

struct secret_cache {
    uv_loop_t *loop;
    unsigned refs;
    struct config_secret src;  /* a copy: the account's config may go */
    uint64_t timeout_ms;
    bool caches;               /* a command: worth keeping */
    char *value;               /* the held secret, or NULL */
    size_t len;
    time_t expires;            /* 0: until refused */
    unsigned runs;             /* reads of the source so far */
    struct secret_req *fetch;  /* the one read in flight */
    struct secret_cache_req *waiting;  /* for the fetch, in order */
    struct secret_cache_req *ready;    /* to get the held copy */
    uv_timer_t timer;          /* delivers the held copy from the loop */
    bool freed;
};

static void
drop_value(struct secret_cache *c)
{
    util_free_secret(c->value);
    c->value = NULL;
    c->len = 0;
    c->expires = 0;
}

/* base64url without padding into out (at most max bytes); -1 if invalid. */
static long
b64url_decode(const char *s, size_t n, char *out, size_t max)
{
    unsigned acc = 0, bits = 0;
    size_t len = 0;

    for (size_t i = 0; i < n; i++) {
        int v = s[i] == '-' ? 62 : s[i] == '_' ? 63
                                               : util_base64_value(s[i], '/');

        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (len == max)
                return -1;
            out[len++] = (char)((acc >> bits) & 0xff);
        }
    }
    return (long)len;
}

/* The exp claim of a JWT access token (header.payload.signature, RFC 7519),
 * or 0. Opaque tokens (Google's) have none: they live until refused. */
static time_t
token_expiry(const char *tok, size_t len)
{
    const char *dot1 = memchr(tok, '.', len), *dot2, *p;
    char payload[8192];
    long n;
    time_t exp = 0;

    if (dot1 == NULL)
        return 0;
    dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok));
    if (dot2 == NULL)
        return 0;
    n = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload,
                      sizeof(payload) - 1);
    if (n <= 0)
        return 0;
    payload[n] = '\0';
    p = strstr(payload, "\"exp\"");
    if (p != NULL) {
        p += 5;
        while (*p == ' ' || *p == ':')
            p++;
        for (; *p >= '0' && *p <= '9' && exp < (time_t)1 << 40; p++)
            exp = exp * 10 + (*p - '0');
    }
    util_wipe(payload, sizeof(payload));
    return exp;
}

static void start_fetch(struct secret_cache *c);

static void
deliver_ready(uv_timer_t *t)
{
    struct secret_cache *c = t->data;

    /* each waiter gets a copy of its own to wipe */
    while (c->ready != NULL && !c->freed) {
        struct secret_cache_req *r = c->ready;

        c->ready = r->next;
        if (c->value == NULL) {
            /* dropped meanwhile: read the source again */
            r->next = c->waiting;
            c->waiting = r;
            continue;
        }
        r->cb(r->arg, 0, NULL, xmemdup(c->value, c->len + 1), c->len, true);
        free(r);
    }
    if (!c->freed && c->waiting != NULL && c->fetch == NULL)
        start_fetch(c);
}

static void
on_fetched(void *arg, int err, const char *msg, char *secret, size_t len)
{
    struct secret_cache *c = arg;
    struct secret_cache_req *list = c->waiting;

    c->fetch = NULL;
    c->waiting = NULL;
    if (err == 0 && c->caches) {
        drop_value(c);
        c->value = xmemdup(secret, len + 1);
        c->len = len;
        if (c->src.kind == CONFIG_SECRET_TOKEN_COMMAND) {
            time_t exp = token_expiry(secret, len);

            c->expires = exp > EXPIRY_MARGIN_S ? exp - EXPIRY_MARGIN_S : 0;
        }
    }
    /* in order; a waiter's callback may cancel the ones after it, which
     * only unlinks them from c->waiting (empty now): mark through arg */
    while (list != NULL) {
        struct secret_cache_req *r = list;

        list = r->next;
        if (r->c == NULL) {     /* cancelled meanwhile */
            free(r);
            continue;
        }
        if (err != 0) {
            r->cb(r->arg, err, msg, NULL, 0, false);
        } else {
            /* a warning about the source (a password_file others can
             * read) is said by the first login that used it */
            r->cb(r->arg, 0, msg, xmemdup(secret, len + 1), len, false);
            msg = NULL;
        }
        free(r);
    }
    util_free_secret(secret);
    if (!c->freed && c->waiting != NULL && c->fetch == NULL)
        start_fetch(c);
}

static void
start_fetch(struct secret_cache *c)
{
    c->runs++;
    c->fetch = secret_fetch(c->loop, &c->src, c->timeout_ms, on_fetched, c);
}

struct secret_cache *
secret_cache_new(uv_loop_t *loop, const struct config_secret *src,
                 uint64_t timeout_ms)
{
    struct secret_cache *c = xcalloc(1, sizeof(*c));

    c->loop = loop;
    c->refs = 1;
    c->src.kind = src->kind;
    c->src.value = src->value != NULL ? xstrdup(src->value) : NULL;
    c->timeout_ms = timeout_ms;
    c->caches = src->kind == CONFIG_SECRET_COMMAND ||
                src->kind == CONFIG_SECRET_TOKEN_COMMAND;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    return c;
}

struct secret_cache *
secret_cache_ref(struct secret_cache *c)
{
    c->refs++;
    return c;
}

static void
on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Unlink r from a list; true if it was there. */
static bool
unlink_req(struct secret_cache_req **list, struct secret_cache_req *r)
{
    for (struct secret_cache_req **p = list; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            return true;
        }
    }
    return false;
}

void
secret_cache_unref(struct secret_cache *c)
{
    if (c == NULL || --c->refs > 0)
        return;
    c->freed = true;
    secret_cancel(c->fetch);
    while (c->waiting != NULL) {
        struct secret_cache_req *r = c->waiting;

        c->waiting = r->next;
        free(r);
    }
    while (c->ready != NULL) {
        struct secret_cache_req *r = c->ready;

        c->ready = r->next;
        free(r);
    }
    drop_value(c);
    util_free_secret(c->src.value);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

struct secret_cache_req *
secret_cache_get(struct secret_cache *c, secret_cache_cb *cb, void *arg)
{
    struct secret_cache_req *r = xcalloc(1, sizeof(*r));
    struct secret_cache_req **tail;

    r->c = c;
    r->cb = cb;
    r->arg = arg;
    if (c->value != NULL && c->expires != 0 && time(NULL) >= c->expires)
        drop_value(c);          /* the token ran out: get a new one */
    if (c->value != NULL) {
        for (tail = &c->ready; *tail != NULL; tail = &(*tail)->next)
            ;
        *tail = r;
        uv_timer_start(&c->timer, deliver_ready, 0, 0);
        return r;
    }
    for (tail = &c->waiting; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = r;
    if (c->fetch == NULL)
        start_fetch(c);
    return r;
}

void
secret_cache_cancel(struct secret_cache_req *r)
{
    struct secret_cache *c;

    if (r == NULL || r->c == NULL)
        return;
    c = r->c;
    if (unlink_req(&c->ready, r) || unlink_req(&c->waiting, r)) {
        free(r);
        return;
    }
    /* being delivered by on_fetched: it frees r when it comes to it */
    r->c = NULL;
}

void
secret_cache_drop(struct secret_cache *c)
{
    if (c != NULL)
        drop_value(c);
}

unsigned
secret_cache_runs(const struct secret_cache *c)
{
    return c->runs;
}
