/* SPDX-License-Identifier: MIT */
/* tls: OpenSSL as a byte pump with no socket code. Ciphertext goes in with
 * tls_conn_feed() and comes out through a callback; plaintext likewise. A
 * custom BIO reads straight from the caller's buffer and writes straight to
 * the callback, so an idle connection keeps no I/O buffers (OpenSSL runs
 * with SSL_MODE_RELEASE_BUFFERS). OpenSSL headers appear only in tls.c. */
#ifndef IMAPSWEEP_TLS_H
#define IMAPSWEEP_TLS_H

#include <stdbool.h>
#include <stddef.h>

/* Per account: the SSL_CTX (TLS 1.2 minimum, verification settings, CA
 * store) and the last session, reused to resume on reconnect. */
struct tls_ctx;

/* ca_file NULL: the system store. verify false: no chain or host-name
 * check (the caller warns). Returns NULL and sets *err_r (caller frees) if
 * the CA file cannot be loaded. */
struct tls_ctx *tls_ctx_new(const char *ca_file, bool verify, char **err_r);
struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx);
/* NULL-safe. Connections hold their own reference. */
void tls_ctx_unref(struct tls_ctx *ctx);
/* True once a session was saved for resumption. */
bool tls_ctx_has_session(const struct tls_ctx *ctx);

struct tls_conn_ops {
    /* Ciphertext to send to the peer (called from any tls_conn_* call). */
    void (*write_cipher)(void *arg, const void *data, size_t len);
    /* Decrypted bytes from the peer. Return false to stop: the owner is
     * closing; tls_conn_feed then returns at once. */
    bool (*read_plain)(void *arg, const char *data, size_t len);
    /* The handshake completed and the certificate was accepted. Return
     * false to stop, as above. */
    bool (*handshake_done)(void *arg);
};

struct tls_conn;

/* host: used for SNI (not for IP literals) and host-name verification.
 * Returns NULL only if OpenSSL cannot allocate the connection. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, const char *host,
                              const struct tls_conn_ops *ops, void *arg);
/* NULL-safe. Stores the session in the ctx for resumption if one was
 * negotiated. */
void tls_conn_free(struct tls_conn *tc);

/* Start the handshake (the ClientHello goes out through write_cipher).
 * Returns 0 or ERR_TLS. */
int tls_conn_start(struct tls_conn *tc);
/* Process ciphertext from the peer. `scratch` is a caller-owned buffer for
 * decrypted data (16 KiB or more is best). Returns 0, ERR_TLS_VERIFY (the
 * certificate was refused), ERR_CLOSED (the peer sent close_notify) or
 * ERR_TLS (any other TLS failure); then tls_conn_error() says why. */
int tls_conn_feed(struct tls_conn *tc, const void *data, size_t len,
                  char *scratch, size_t scratch_len);
/* Encrypt plaintext; only after the handshake. Returns 0 or ERR_TLS. */
int tls_conn_write(struct tls_conn *tc, const void *data, size_t len);
/* Queue a close_notify alert (best effort). */
void tls_conn_shutdown(struct tls_conn *tc);

bool tls_conn_handshake_done(const struct tls_conn *tc);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384 (resumed)" after the handshake. */
const char *tls_conn_describe(const struct tls_conn *tc);
/* Why the last call failed: "certificate verify failed: certificate has
 * expired", "… self-signed certificate", "… hostname mismatch", or the
 * OpenSSL error text. Never NULL. */
const char *tls_conn_error(const struct tls_conn *tc);

#endif
