/* SPDX-License-Identifier: MIT */
#include "session.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "secret.h"
#include "tls.h"
#include "util.h"

struct session {
    struct session_env env;
    struct config *config;   /* a reference until logged in, then NULL */
    const struct config_account *acc; /* in config; NULL with it */
    struct tls_ctx *tls;
    char *account, *mailbox;
    struct log_ctx log;      /* account, mailbox */
    const struct session_events *ev;
    void *arg;
    struct gate_waiter gw;
    struct imap_conn *conn;
    struct secret_req *secret;
    struct secret_cache *secrets;   /* the account's, referenced; or NULL */
    struct secret_cache_req *creq;  /* a get from it in flight */
    bool secret_kept;        /* the secret logged in with was a kept copy */
    bool retried;            /* ... and was refused once already */
    uv_timer_t timer;        /* delivers a `closed` without a connection */
    bool logged_in;
    bool logout;
    bool closed;             /* `closed` was delivered */
    bool freed;
    int pending_err;
    char *pending_msg;
};

/* Logged in: the account settings are not read again. */
static void
drop_settings(struct session *s)
{
    config_unref(s->config);
    s->config = NULL;
    s->acc = NULL;
}

static void
deliver_closed(struct session *s, int err, const char *msg, bool auth)
{
    struct imap_conn *c = s->conn;

    if (s->closed || s->freed)
        return;
    s->closed = true;
    s->conn = NULL;
    secret_cancel(s->secret);
    s->secret = NULL;
    secret_cache_cancel(s->creq);
    s->creq = NULL;
    gate_release(&s->gw);
    imap_conn_free(c);
    s->ev->closed(s, err, msg, auth, s->arg);
}

static void
on_timer(uv_timer_t *t)
{
    struct session *s = t->data;

    deliver_closed(s, s->pending_err, s->pending_msg ? s->pending_msg : "",
                   s->pending_err == ERR_SECRET);
}

/* Report from the loop, never from inside a caller's call. */
static void
close_later(struct session *s, int err, const char *msg)
{
    s->pending_err = err;
    free(s->pending_msg);
    s->pending_msg = xstrdup(msg);
    uv_timer_start(&s->timer, on_timer, 0, 0);
}

/* True if a refused login says "not now" rather than "not you": a limit
 * on connections or a busy server (RFC 5530 LIMIT, UNAVAILABLE, INUSE,
 * SERVERBUG; Gmail's "[ALERT] Too many simultaneous connections";
 * Microsoft 365's "Request is throttled"). Such a login is retried with
 * the ordinary backoff, not held off as a wrong password is. */
static bool
login_refused_for_now(const struct imap_reply *r)
{
    static const char *const codes[] = {"LIMIT", "UNAVAILABLE", "INUSE",
                                        "SERVERBUG"};
    static const char *const texts[] = {"too many simultaneous connections",
                                        "too many connections",
                                        "request is throttled"};

    for (size_t i = 0; r->code != NULL && i < ARRAY_SIZE(codes); i++) {
        if (util_strcaseeq(r->code, codes[i]))
            return true;
    }
    for (size_t i = 0; r->text != NULL && i < ARRAY_SIZE(texts); i++) {
        if (strcasestr(r->text, texts[i]) != NULL)
            return true;
    }
    return false;
}

static void get_secret(struct session *s);

static void
login_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct session *s = arg;
    char *msg;

    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED)
        return;
    if (r->status == IMAP_OK) {
        s->logged_in = true;
        drop_settings(s);
        gate_release(&s->gw);
        s->ev->ready(s, s->arg);
        return;
    }
    if (login_refused_for_now(r)) {
        msg = xasprintf("the server refuses the login for now (not the "
                        "password): %s %s%s%s%s", imap_status_name(r->status),
                        r->code ? "[" : "", r->code ? r->code : "",
                        r->code ? "] " : "", r->text ? r->text : "");
        deliver_closed(s, ERR_CMD_NO, msg, false);
        free(msg);
        return;
    }
    /* refused: whatever was kept is no good (the next login reads the
     * source); a kept token has most likely expired: try a fresh one now,
     * rather than after reconnect_max */
    secret_cache_drop(s->secrets);
    if (s->secret_kept && !s->retried &&
        imap_conn_state(c) == IMAP_CONN_NOT_AUTH) {
        s->retried = true;
        log_ctx_msg(&s->log, LL_INFO, "the kept %s was refused (%s): "
                    "getting a new one", secret_kind_name(s->acc->secret.kind),
                    r->text ? r->text : "");
        get_secret(s);
        return;
    }
    msg = xasprintf("authentication failed: %s %s",
                    imap_status_name(r->status), r->text ? r->text : "");
    deliver_closed(s, ERR_AUTH, msg, true);
    free(msg);
}

static void
on_secret(void *arg, int err, const char *msg, char *secret, size_t len);

static void
on_kept_secret(void *arg, int err, const char *msg, char *secret, size_t len,
               bool kept)
{
    struct session *s = arg;

    s->creq = NULL;
    s->secret_kept = kept;
    on_secret(s, err, msg, secret, len);
}

/* fetched for every login, or from the account's cache */
static void
get_secret(struct session *s)
{
    if (s->secrets != NULL)
        s->creq = secret_cache_get(s->secrets, on_kept_secret, s);
    else
        s->secret = secret_fetch(s->env.loop, &s->acc->secret,
                                 s->acc->command_timeout * 1000, on_secret,
                                 s);
}

static void
on_secret(void *arg, int err, const char *msg, char *secret, size_t len)
{
    static const enum imap_auth mechs[] = {
        [CONFIG_AUTH_AUTO] = IMAP_AUTH_AUTO,
        [CONFIG_AUTH_LOGIN] = IMAP_AUTH_LOGIN,
        [CONFIG_AUTH_PLAIN] = IMAP_AUTH_PLAIN,
        [CONFIG_AUTH_XOAUTH2] = IMAP_AUTH_XOAUTH2,
        [CONFIG_AUTH_OAUTHBEARER] = IMAP_AUTH_OAUTHBEARER,
    };
    struct session *s = arg;

    s->secret = NULL;
    if (err != 0) {
        char *m = xasprintf("cannot get the secret: %s", msg);

        deliver_closed(s, ERR_SECRET, m, true);
        free(m);
        return;
    }
    if (msg != NULL)
        log_ctx_msg(&s->log, LL_WARNING, "%s", msg);
    imap_conn_login(s->conn, mechs[s->acc->auth], s->acc->user, secret, len,
                    s->acc->secret.kind == CONFIG_SECRET_TOKEN_COMMAND,
                    login_done, s);
    util_free_secret(secret);
}

static void
on_ready(struct imap_conn *c, void *arg)
{
    struct session *s = arg;

    if (imap_conn_state(c) == IMAP_CONN_AUTH) {
        /* PREAUTH (a tunnel) */
        s->logged_in = true;
        drop_settings(s);
        gate_release(&s->gw);
        s->ev->ready(s, s->arg);
        return;
    }
    if (s->logout) {
        imap_conn_logout(c);
        return;
    }
    if (s->ev->authenticating != NULL)
        s->ev->authenticating(s, s->arg);
    get_secret(s);
}

static void
on_untagged(struct imap_conn *c, const struct imap_response *r, void *arg)
{
    struct session *s = arg;

    (void)c;
    if (s->ev->untagged != NULL)
        s->ev->untagged(s, r, s->arg);
}

/* A TLS mode that does not fit the port shows as a silent server or an
 * obscure TLS error: say what is likely wrong. NULL: nothing to add. */
static char *
mode_hint(const struct session *s, const struct imap_conn *c, int err,
          const char *msg)
{
    const struct config_account *a = s->acc;

    /* after a greeting (and so after the login, when the settings are
     * dropped) the TLS mode was right */
    if (a == NULL || imap_conn_greeted(c) || a->tunnel != NULL)
        return NULL;
    /* a TLS port says nothing until it hears a ClientHello */
    if (err == ERR_TIMEOUT && a->tls != CONFIG_TLS_IMPLICIT)
        return xasprintf("%s: is this port implicit TLS? try tls: implicit",
                         msg);
    /* a plain port's "* OK" is no TLS record */
    if (err == ERR_TLS && a->tls == CONFIG_TLS_IMPLICIT &&
        (strstr(msg, "wrong version number") != NULL ||
         strstr(msg, "packet length too long") != NULL))
        return xasprintf("%s: the server does not speak TLS on this port: "
                         "is it a STARTTLS port? try tls: starttls", msg);
    return NULL;
}

static void
on_closed(struct imap_conn *c, int err, const char *msg, void *arg)
{
    struct session *s = arg;
    char *hinted = mode_hint(s, c, err, msg);

    deliver_closed(s, err, hinted != NULL ? hinted : msg, false);
    free(hinted);
}

static const struct imap_conn_events conn_events = {
    .ready = on_ready,
    .untagged = on_untagged,
    .closed = on_closed,
};

static void
on_admitted(struct gate_waiter *gw, void *arg)
{
    struct session *s = arg;
    const struct config_account *a = s->acc;
    struct imap_conn_settings cs = {
        .account = s->account,
        .mailbox = s->mailbox,
        .host = a->host,
        .port = a->port,
        .tunnel = a->tunnel,
        .tls = a->tunnel ? IMAP_TLS_NONE
               : a->tls == CONFIG_TLS_IMPLICIT ? IMAP_TLS_IMPLICIT
               : a->tls == CONFIG_TLS_STARTTLS ? IMAP_TLS_STARTTLS
                                               : IMAP_TLS_NONE,
        .tls_ctx = s->tls,
        .connect_timeout_ms = a->connect_timeout * 1000,
        .command_timeout_ms = a->command_timeout * 1000,
        .idle_refresh_ms = a->idle_refresh * 1000,
        .keepalive_s = 60,
        .allow_plaintext_auth = a->tunnel != NULL || a->tls == CONFIG_TLS_NONE,
    };

    (void)gw;
    if (cs.tls != IMAP_TLS_NONE && !a->tls_verify)
        log_ctx_msg(&s->log, LL_WARNING,
                    "TLS certificate verification is disabled "
                    "(tls_verify: false)");
    s->conn = imap_conn_new(s->env.pool, &cs, &conn_events, s);
}

struct session *
session_new(const struct session_env *env, struct config *config,
            const struct config_account *acc, struct tls_ctx *tls,
            struct secret_cache *secrets, const char *mailbox,
            const struct session_events *ev, void *arg)
{
    struct session *s = xcalloc(1, sizeof(*s));

    s->env = *env;
    s->config = config_ref(config);
    s->acc = acc;
    s->tls = tls ? tls_ctx_ref(tls) : NULL;
    s->secrets = secrets ? secret_cache_ref(secrets) : NULL;
    s->account = xstrdup(acc->name);
    s->mailbox = mailbox ? xstrdup(mailbox) : NULL;
    s->log.account = s->account;
    s->log.mailbox = s->mailbox;
    s->ev = ev;
    s->arg = arg;
    uv_timer_init(env->loop, &s->timer);
    s->timer.data = s;
    if (acc->tls != CONFIG_TLS_NONE && acc->tunnel == NULL && tls == NULL) {
        close_later(s, ERR_TLS, "no TLS context (ca_file could not be "
                                "loaded)");
        return s;
    }
    gate_acquire(env->gates, acc->tunnel ? "(tunnel)" : acc->host, &s->gw,
                 on_admitted, s);
    return s;
}

struct imap_conn *
session_conn(const struct session *s)
{
    return s->conn;
}

void
session_set_account(struct session *s, struct config *config,
                    const struct config_account *acc)
{
    if (s == NULL || s->acc == NULL)
        return; /* logged in: the settings are not read again */
    config_ref(config);
    config_unref(s->config);
    s->config = config;
    s->acc = acc;
}

void
session_logout(struct session *s)
{
    s->logout = true;
    if (s->conn != NULL && s->logged_in) {
        imap_conn_logout(s->conn);
        return;
    }
    /* not logged in yet: there is nothing to log out of */
    secret_cancel(s->secret);
    s->secret = NULL;
    secret_cache_cancel(s->creq);
    s->creq = NULL;
    gate_release(&s->gw);
    if (s->conn != NULL) {
        struct imap_conn *c = s->conn;

        s->conn = NULL;
        imap_conn_free(c);
    }
    close_later(s, 0, "logged out");
}

static void
on_timer_closed(uv_handle_t *h)
{
    struct session *s = h->data;

    free(s->pending_msg);
    free(s);
}

void
session_free(struct session *s)
{
    struct imap_conn *c;

    if (s == NULL || s->freed)
        return;
    s->freed = true;
    c = s->conn;
    s->conn = NULL;
    secret_cancel(s->secret);
    secret_cache_cancel(s->creq);
    gate_release(&s->gw);
    imap_conn_free(c);
    drop_settings(s);
    tls_ctx_unref(s->tls);
    secret_cache_unref(s->secrets);
    free(s->account);
    free(s->mailbox);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
