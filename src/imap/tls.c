/* SPDX-License-Identifier: MIT */
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "errors.h"
#include "util.h"

struct tls_ctx {
    unsigned refs;
    bool verify;
    SSL_CTX *ssl_ctx;
    SSL_SESSION *session; /* newest resumable session, or NULL */
    char *session_host;   /* the name it was verified for */
};

struct tls_conn {
    struct tls_ctx *ctx;
    SSL *ssl;
    const struct tls_conn_ops *ops;
    void *arg;
    /* Ciphertext being fed: the BIO reads from here during tls_conn_feed
     * only, so nothing is buffered between calls. */
    const unsigned char *in;
    size_t in_len;
    char *host;
    char *error;          /* last failure, heap */
    bool handshake_done;
    bool failed;          /* a TLS-level failure: do not resume */
    char describe[80];
};

/* One BIO method for every connection; it holds no per-connection state. */
static BIO_METHOD *bio_method;
static CRYPTO_ONCE bio_once = CRYPTO_ONCE_STATIC_INIT;

static int
bio_read(BIO *b, char *out, int outl)
{
    struct tls_conn *tc = BIO_get_data(b);
    size_t n;

    BIO_clear_retry_flags(b);
    if (outl <= 0)
        return 0;
    if (tc->in_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    n = tc->in_len < (size_t)outl ? tc->in_len : (size_t)outl;
    memcpy(out, tc->in, n);
    tc->in += n;
    tc->in_len -= n;
    return (int)n;
}

static int
bio_write(BIO *b, const char *data, int len)
{
    struct tls_conn *tc = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    tc->ops->write_cipher(tc->arg, data, (size_t)len);
    return len;
}

static long
bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* Writes are handed on at once, so there is never anything to flush
     * and nothing pending. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void
bio_method_free(void)
{
    BIO_meth_free(bio_method);
    bio_method = NULL;
}

static void
bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                 "imapsweep");

    if (m == NULL)
        return;
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    bio_method = m;
    /* Freed by OPENSSL_cleanup(), so leak checkers see a clean exit. */
    OPENSSL_atexit(bio_method_free);
}

/* The OpenSSL error queue as one line; the queue is left empty. */
static char *
openssl_errors(const char *what)
{
    unsigned long e = ERR_get_error();
    char text[256];
    char *msg;

    if (e == 0)
        return xasprintf("%s", what);
    ERR_error_string_n(e, text, sizeof(text));
    msg = xasprintf("%s: %s", what, text);
    ERR_clear_error();
    return msg;
}

/* Keep sess (taking over the caller's reference) as the one to resume. */
static void
store_session(struct tls_ctx *ctx, SSL_SESSION *sess, const char *host)
{
    SSL_SESSION_free(ctx->session);
    free(ctx->session_host);
    ctx->session = sess;
    ctx->session_host = host != NULL ? xstrdup(host) : NULL;
}

static int
new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
    struct tls_ctx *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    struct tls_conn *tc = BIO_get_data(SSL_get_rbio(ssl));

    if (!SSL_SESSION_is_resumable(sess))
        return 0;
    store_session(ctx, sess, tc->host);
    return 1; /* we keep the reference */
}

struct tls_ctx *
tls_ctx_new(const char *ca_file, bool verify, char **err_r)
{
    struct tls_ctx *ctx;
    SSL_CTX *sc;

    ERR_clear_error();
    sc = SSL_CTX_new(TLS_client_method());
    if (sc == NULL) {
        *err_r = openssl_errors("cannot create a TLS context");
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION) != 1) {
        *err_r = openssl_errors("cannot require TLS 1.2");
        SSL_CTX_free(sc);
        return NULL;
    }
    SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
    if (verify) {
        SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
        if (ca_file != NULL) {
            if (SSL_CTX_load_verify_locations(sc, ca_file, NULL) != 1) {
                char *what = xasprintf("cannot load CA file %s", ca_file);

                *err_r = openssl_errors(what);
                free(what);
                SSL_CTX_free(sc);
                return NULL;
            }
        } else if (SSL_CTX_set_default_verify_paths(sc) != 1) {
            *err_r = openssl_errors("cannot load the system CA store");
            SSL_CTX_free(sc);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(sc, SSL_VERIFY_NONE, NULL);
    }
    /* Client-side cache without OpenSSL's own store: the callback keeps
     * just the newest session in the tls_ctx. */
    SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_CLIENT |
                                           SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(sc, new_session_cb);

    ctx = xcalloc(1, sizeof(*ctx));
    ctx->refs = 1;
    ctx->verify = verify;
    ctx->ssl_ctx = sc;
    SSL_CTX_set_app_data(sc, ctx);
    ERR_clear_error();
    return ctx;
}

struct tls_ctx *
tls_ctx_ref(struct tls_ctx *ctx)
{
    ctx->refs++;
    return ctx;
}

void
tls_ctx_unref(struct tls_ctx *ctx)
{
    if (ctx == NULL || --ctx->refs > 0)
        return;
    store_session(ctx, NULL, NULL);
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

bool
tls_ctx_has_session(const struct tls_ctx *ctx)
{
    return ctx->session != NULL;
}

static void
set_error(struct tls_conn *tc, char *msg)
{
    free(tc->error);
    tc->error = msg;
}

struct tls_conn *
tls_conn_new(struct tls_ctx *ctx, const char *host,
             const struct tls_conn_ops *ops, void *arg)
{
    struct tls_conn *tc;
    SSL *ssl;
    BIO *bio;

    CRYPTO_THREAD_run_once(&bio_once, bio_method_init);
    if (bio_method == NULL)
        return NULL;
    ERR_clear_error();
    ssl = SSL_new(ctx->ssl_ctx);
    if (ssl == NULL)
        goto fail;
    bio = BIO_new(bio_method);
    if (bio == NULL) {
        SSL_free(ssl);
        goto fail;
    }
    tc = xcalloc(1, sizeof(*tc));
    tc->ctx = tls_ctx_ref(ctx);
    tc->ssl = ssl;
    tc->ops = ops;
    tc->arg = arg;
    tc->host = host != NULL ? xstrdup(host) : NULL;
    BIO_set_data(bio, tc);
    /* One BIO for both directions: SSL_set_bio takes a single reference. */
    SSL_set_bio(ssl, bio, bio);
    SSL_set_connect_state(ssl);

    if (host != NULL && *host != '\0') {
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
        bool is_ip = ip != NULL;

        ASN1_OCTET_STRING_free(ip);
        /* No SNI for IP literals (RFC 6066); the certificate must name the
         * address instead. */
        if (!is_ip && SSL_set_tlsext_host_name(ssl, host) != 1)
            goto fail_conn;
        if (ctx->verify && is_ip) {
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)
                goto fail_conn;
        } else if (ctx->verify) {
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (SSL_set1_host(ssl, host) != 1)
                goto fail_conn;
        }
    }
    /* A session is only as good as the name it was verified for. */
    if (ctx->session != NULL && SSL_SESSION_is_resumable(ctx->session) &&
        ctx->session_host != NULL && host != NULL &&
        strcmp(ctx->session_host, host) == 0)
        SSL_set_session(ssl, ctx->session);
    ERR_clear_error();
    return tc;

fail_conn:
    tls_conn_free(tc);
fail:
    ERR_clear_error();
    return NULL;
}

void
tls_conn_free(struct tls_conn *tc)
{
    if (tc == NULL)
        return;
    if (tc->handshake_done && !tc->failed) {
        SSL_SESSION *sess = SSL_get1_session(tc->ssl);

        /* A connection that merely ended (reset, EOF after LOGOUT) leaves
         * the session sound; without this mark SSL_free would make it
         * unresumable. */
        SSL_set_shutdown(tc->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        if (sess != NULL && tc->ctx->session == NULL &&
            SSL_SESSION_is_resumable(sess)) {
            store_session(tc->ctx, sess, tc->host);
            sess = NULL;
        }
        SSL_SESSION_free(sess);
    }
    SSL_free(tc->ssl);
    ERR_clear_error();
    tls_ctx_unref(tc->ctx);
    free(tc->host);
    free(tc->error);
    free(tc);
}

/* Record why the last SSL call failed; returns the code to report. */
static int
conn_fail(struct tls_conn *tc, const char *what)
{
    long v = SSL_get_verify_result(tc->ssl);

    tc->failed = true;
    if (tc->ctx->verify && v != X509_V_OK) {
        set_error(tc, xasprintf("certificate verify failed: %s",
                                X509_verify_cert_error_string(v)));
        ERR_clear_error();
        return ERR_TLS_VERIFY;
    }
    set_error(tc, openssl_errors(what));
    return ERR_TLS;
}

int
tls_conn_start(struct tls_conn *tc)
{
    int r, e;

    ERR_clear_error();
    r = SSL_do_handshake(tc->ssl);
    if (r == 1)
        return 0; /* not possible before the server answers */
    e = SSL_get_error(tc->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return 0;
    }
    return conn_fail(tc, "handshake failed");
}

static int
pump(struct tls_conn *tc, char *scratch, size_t scratch_len)
{
    int r, e;
    size_t n;

    if (!tc->handshake_done) {
        r = SSL_do_handshake(tc->ssl);
        if (r != 1) {
            e = SSL_get_error(tc->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            return conn_fail(tc, "handshake failed");
        }
        tc->handshake_done = true;
        snprintf(tc->describe, sizeof(tc->describe), "%s %s%s",
                 SSL_get_version(tc->ssl), SSL_get_cipher_name(tc->ssl),
                 SSL_session_reused(tc->ssl) ? " (resumed)" : "");
        if (tc->ops->handshake_done != NULL &&
            !tc->ops->handshake_done(tc->arg))
            return 0;
    }
    for (;;) {
        r = SSL_read_ex(tc->ssl, scratch, scratch_len, &n);
        if (r == 1) {
            if (!tc->ops->read_plain(tc->arg, scratch, n))
                return 0;
            continue;
        }
        e = SSL_get_error(tc->ssl, r);
        switch (e) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return 0;
        case SSL_ERROR_ZERO_RETURN:
            set_error(tc, xstrdup("connection closed by peer (close_notify)"));
            return ERR_CLOSED;
        default:
            return conn_fail(tc, "read failed");
        }
    }
}

int
tls_conn_feed(struct tls_conn *tc, const void *data, size_t len,
              char *scratch, size_t scratch_len)
{
    int ret;

    if (tc->failed)
        return tc->ctx->verify && SSL_get_verify_result(tc->ssl) != X509_V_OK
                   ? ERR_TLS_VERIFY
                   : ERR_TLS;
    ERR_clear_error();
    tc->in = data;
    tc->in_len = len;
    ret = pump(tc, scratch, scratch_len);
    /* Unread input is dropped only when the owner stopped the feed. */
    tc->in = NULL;
    tc->in_len = 0;
    ERR_clear_error();
    return ret;
}

int
tls_conn_write(struct tls_conn *tc, const void *data, size_t len)
{
    size_t n;

    if (!tc->handshake_done || tc->failed) {
        set_error(tc, xstrdup("write before the handshake completed"));
        return ERR_TLS;
    }
    if (len == 0)
        return 0;
    ERR_clear_error();
    /* The BIO never blocks, so SSL_write_ex takes everything at once. */
    if (SSL_write_ex(tc->ssl, data, len, &n) != 1 || n != len)
        return conn_fail(tc, "write failed");
    return 0;
}

void
tls_conn_shutdown(struct tls_conn *tc)
{
    if (!tc->handshake_done || tc->failed)
        return;
    ERR_clear_error();
    (void)SSL_shutdown(tc->ssl);
    ERR_clear_error();
}

bool
tls_conn_handshake_done(const struct tls_conn *tc)
{
    return tc->handshake_done;
}

const char *
tls_conn_describe(const struct tls_conn *tc)
{
    return tc->handshake_done ? tc->describe : "TLS handshake not complete";
}

const char *
tls_conn_error(const struct tls_conn *tc)
{
    return tc->error != NULL ? tc->error : "no TLS error";
}
