/* SPDX-License-Identifier: MIT */
/* imap_conn's login: LOGIN, or AUTHENTICATE PLAIN / XOAUTH2 / OAUTHBEARER
 * (the initial response inline with SASL-IR), chosen from the capabilities;
 * then CAPABILITY if needed and ENABLE UTF8=ACCEPT. The secret lives only
 * in the command, which wipes it. */
#include "imap_conn_private.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"

enum sasl_mech { SASL_PLAIN, SASL_XOAUTH2, SASL_OAUTHBEARER };

struct sasl {
    enum sasl_mech mech;
    char *ir;               /* base64 initial response (secret) */
    bool ir_sent;
};

void
imap_auth_sasl_free(struct sasl *sa)
{
    if (sa == NULL)
        return;
    util_free_secret(sa->ir);
    free(sa);
}

/* login: AUTHENTICATE / LOGIN, then CAPABILITY if the OK did not carry
 * them, then ENABLE UTF8=ACCEPT if offered, then the caller's callback. */
struct login_ctx {
    imap_done_cb *done;
    void *arg;
    char *ok_text;
};

static void
login_finish(struct imap_conn *c, struct login_ctx *lc,
             const struct imap_reply *r)
{
    if (r->status == IMAP_OK)
        imap_state_set(c, IMAP_CONN_AUTH);
    if (lc->done != NULL)
        lc->done(c, r, lc->arg);
    free(lc->ok_text);
    free(lc);
}

static void
login_enable_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct login_ctx *lc = arg;
    struct imap_reply ok = {.status = IMAP_OK, .text = lc->ok_text};

    if (r->status == IMAP_OK)
        c->utf8 = true;
    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED) {
        login_finish(c, lc, r);
        return;
    }
    /* a refused ENABLE is not fatal: names stay in modified UTF-7 */
    login_finish(c, lc, &ok);
}

static void
login_caps_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct login_ctx *lc = arg;
    struct imap_reply ok = {.status = IMAP_OK, .text = lc->ok_text};

    if (r->status != IMAP_OK) {
        login_finish(c, lc, r);
        return;
    }
    if (imap_conn_has_cap(c, "UTF8=ACCEPT") && imap_conn_has_cap(c, "ENABLE")) {
        struct imap_build *b = imap_build_new(0);

        imap_build_atom(b, "ENABLE");
        imap_build_atom(b, "UTF8=ACCEPT");
        imap_conn_submit_internal(c, b, login_enable_done, lc, true);
        return;
    }
    login_finish(c, lc, &ok);
}

static void
login_auth_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct login_ctx *lc = arg;
    struct imap_reply fake = {.status = IMAP_OK, .text = "ok"};

    if (r->status != IMAP_OK) {
        if (r->status == IMAP_NO || r->status == IMAP_BAD)
            imap_state_set(c, IMAP_CONN_NOT_AUTH);
        login_finish(c, lc, r);
        return;
    }
    lc->ok_text = xstrdup(r->text ? r->text : "");
    imap_state_set(c, IMAP_CONN_AUTH);
    if (c->caps_at_auth) {
        login_caps_done(c, &fake, lc);
    } else {
        struct imap_build *b = imap_build_new(0);

        imap_build_atom(b, "CAPABILITY");
        imap_conn_submit_internal(c, b, login_caps_done, lc, true);
    }
}

/* SASL initial responses (RFC 4616, Google XOAUTH2, RFC 7628). */
static char *
sasl_ir(enum sasl_mech mech, const char *user, const char *secret,
        size_t secret_len, const char *host, uint16_t port)
{
    struct buf raw, b64;

    buf_init_secret(&raw, BUF_NOCAP);
    buf_init_secret(&b64, BUF_NOCAP);
    switch (mech) {
    case SASL_PLAIN:
        buf_append_char(&raw, '\0');
        buf_append_str(&raw, user);
        buf_append_char(&raw, '\0');
        buf_append(&raw, secret, secret_len);
        break;
    case SASL_XOAUTH2:
        buf_printf(&raw, "user=%s\001auth=Bearer ", user);
        buf_append(&raw, secret, secret_len);
        buf_append_str(&raw, "\001\001");
        break;
    case SASL_OAUTHBEARER:
        buf_append_str(&raw, "n,a=");
        for (const char *p = user; *p; p++) {
            if (*p == ',')
                buf_append_str(&raw, "=2C");
            else if (*p == '=')
                buf_append_str(&raw, "=3D");
            else
                buf_append_char(&raw, *p);
        }
        buf_printf(&raw, ",\001host=%s\001port=%u\001auth=Bearer ",
                   host ? host : "", port);
        buf_append(&raw, secret, secret_len);
        buf_append_str(&raw, "\001\001");
        break;
    }
    buf_append_base64(&b64, raw.data, raw.len);
    buf_free_secret(&raw);
    return buf_steal(&b64);
}

void
imap_conn_login(struct imap_conn *c, enum imap_auth mech, const char *user,
                const char *secret, size_t secret_len, bool is_token,
                imap_done_cb *done, void *arg)
{
    bool tls_up = c->t != NULL && transport_tls_describe(c->t) != NULL;
    struct login_ctx *lc;
    struct imap_build *b;
    enum sasl_mech sm = SASL_PLAIN;
    bool use_sasl = true;

    if (c->closing)
        return;
    if (!tls_up && !c->s.allow_plaintext_auth) {
        imap_conn_fail_later(c, ERR_UNSUPPORTED,
                             "refusing to send credentials without TLS");
        return;
    }
    switch (mech) {
    case IMAP_AUTH_AUTO:
        if (is_token) {
            if (imap_conn_has_cap(c, "AUTH=OAUTHBEARER")) {
                sm = SASL_OAUTHBEARER;
            } else if (imap_conn_has_cap(c, "AUTH=XOAUTH2")) {
                sm = SASL_XOAUTH2;
            } else {
                imap_conn_fail_later(c, ERR_UNSUPPORTED,
                                     "server offers neither "
                                     "AUTH=OAUTHBEARER nor AUTH=XOAUTH2 "
                                     "for the access token");
                return;
            }
        } else if (imap_conn_has_cap(c, "AUTH=PLAIN")) {
            sm = SASL_PLAIN;
        } else if (!imap_conn_has_cap(c, "LOGINDISABLED")) {
            use_sasl = false;
        } else {
            imap_conn_fail_later(c, ERR_UNSUPPORTED,
                                 "server disables LOGIN (LOGINDISABLED) and "
                                 "offers no AUTH=PLAIN");
            return;
        }
        break;
    case IMAP_AUTH_LOGIN:
        if (imap_conn_has_cap(c, "LOGINDISABLED")) {
            imap_conn_fail_later(c, ERR_UNSUPPORTED,
                                 "server disables LOGIN (LOGINDISABLED); try "
                                 "auth: plain");
            return;
        }
        use_sasl = false;
        break;
    case IMAP_AUTH_PLAIN:
        sm = SASL_PLAIN;
        break;
    case IMAP_AUTH_XOAUTH2:
        sm = SASL_XOAUTH2;
        break;
    case IMAP_AUTH_OAUTHBEARER:
        sm = SASL_OAUTHBEARER;
        break;
    }

    lc = xcalloc(1, sizeof(*lc));
    lc->done = done;
    lc->arg = arg;
    c->caps_at_auth = false;
    b = imap_conn_build(c);
    if (use_sasl) {
        static const char *const names[] = {"PLAIN", "XOAUTH2",
                                            "OAUTHBEARER"};
        struct sasl *sa = xcalloc(1, sizeof(*sa));
        struct imap_cmd *cmd;

        sa->mech = sm;
        sa->ir = sasl_ir(sm, user, secret, secret_len, c->host, c->s.port);
        imap_build_atom(b, "AUTHENTICATE");
        imap_build_atom(b, names[sm]);
        if (imap_conn_has_cap(c, "SASL-IR")) {
            imap_build_mark_secret(b);
            imap_build_atom(b, sa->ir);
            sa->ir_sent = true;
        }
        cmd = imap_cmd_new(b, &(struct imap_cmd_opts){.done = login_auth_done,
                                                 .arg = lc});
        cmd->sasl = sa;
        cmd->early = true;
        imap_cmd_list_push(&c->pending, cmd);
    } else {
        imap_build_atom(b, "LOGIN");
        imap_build_astring(b, user, strlen(user));
        imap_build_mark_secret(b);
        imap_build_string(b, secret, secret_len);
        imap_conn_submit_internal(c, b, login_auth_done, lc, true);
        imap_state_set(c, IMAP_CONN_AUTHENTICATING);
        return;
    }
    imap_state_set(c, IMAP_CONN_AUTHENTICATING);
    imap_conn_pump(c);
}

void
imap_auth_continue(struct imap_conn *c, struct imap_cmd *cmd)
{
    struct sasl *sa = cmd->sasl;

    if (!sa->ir_sent) {
        sa->ir_sent = true;
        imap_trace_line(c, true, "", 0, true);
        imap_conn_write(c, sa->ir, strlen(sa->ir), true);
        imap_conn_write(c, "\r\n", 2, false);
        return;
    }
    /* A challenge after our credentials is an error report (RFC 7628,
     * XOAUTH2): acknowledge it so the server sends the tagged NO. PLAIN has
     * no second step: cancel. */
    switch (sa->mech) {
    case SASL_XOAUTH2:
        imap_trace_line(c, true, "", 0, false);
        imap_conn_write(c, "\r\n", 2, false);
        break;
    case SASL_OAUTHBEARER:
        imap_trace_line(c, true, "AQ==", 4, false);
        imap_conn_write(c, "AQ==\r\n", 6, false);
        break;
    case SASL_PLAIN:
        imap_trace_line(c, true, "*", 1, false);
        imap_conn_write(c, "*\r\n", 3, false);
        break;
    }
}
