/* SPDX-License-Identifier: MIT */
/* transport: a byte stream to an IMAP server over libuv: TCP (optionally
 * with implicit TLS, or TLS started later for STARTTLS) or a tunnel command's
 * stdin/stdout. It owns the handles, the connect timeout and the deferred
 * close; it knows nothing of IMAP.
 *
 * Buffers: reads land in one buffer shared by every transport of a pool and
 * are handed to the owner at once, so an idle transport holds no read
 * buffer. Writes are appended to a small per-transport queue and flushed
 * once per loop iteration, just before the loop waits for I/O.
 *
 * A transport is an ops table plus callbacks, so tests can script a
 * connection without sockets (see struct transport_ops). */
#ifndef IMAPSWEEP_TRANSPORT_H
#define IMAPSWEEP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct tls_ctx;
struct transport;

/* Per loop: the shared read buffers and the write-flush hook. */
struct transport_pool;

/* libuv writes with write(2): the process must ignore SIGPIPE. */
struct transport_pool *transport_pool_new(uv_loop_t *loop);
uv_loop_t *transport_pool_loop(const struct transport_pool *pool);
/* Close the pool's handles; every transport must be closed first. The pool
 * is freed from a close callback (run the loop afterwards). NULL-safe. */
void transport_pool_free(struct transport_pool *pool);

struct transport_settings;
/* A maker of transports that replaces TCP and tunnels for every
 * transport_new() of the pool: the test library's scripted server
 * (tests/unit/lib) uses it to drive sessions, watchers and accounts
 * without sockets. It returns a transport it made, or NULL like
 * transport_new(). */
typedef struct transport *transport_factory_fn(
    void *arg, const struct transport_settings *s);
/* Set (or with NULL, clear) the pool's factory; arg is passed to it. */
void transport_pool_set_factory(struct transport_pool *pool,
                                transport_factory_fn *fn, void *arg);

struct transport_cbs {
    /* The stream is up: TCP connected and, with implicit TLS, the
     * handshake done and the certificate accepted; or the tunnel started. */
    void (*connected)(struct transport *t, void *arg);
    /* Bytes from the server (plaintext). Valid only during the call. */
    void (*read)(struct transport *t, const char *data, size_t len,
                 void *arg);
    /* transport_start_tls() completed. */
    void (*tls_ready)(struct transport *t, void *arg);
    /* The transport failed (refused, timed out, reset, EOF, TLS error,
     * tunnel exited) and will deliver nothing more but `closed`. err is an
     * errors.h code (ERR_CLOSED for EOF); msg says what happened
     * ("connect to 127.0.0.1:993: connection refused"). The owner then
     * calls transport_close(). */
    void (*error)(struct transport *t, int err, const char *msg, void *arg);
    /* After transport_close(): every handle is closed. The transport is
     * freed right after this returns. */
    void (*closed)(struct transport *t, void *arg);
};

struct transport_ops {
    int (*connect)(struct transport *t);
    void (*write)(struct transport *t, const void *data, size_t len,
                  bool secret);
    int (*start_tls)(struct transport *t, struct tls_ctx *ctx,
                     const char *host);
    void (*close)(struct transport *t);
    const char *(*peer)(const struct transport *t);
    const char *(*tls_describe)(const struct transport *t);
};

/* The common part every implementation embeds first. */
struct transport {
    const struct transport_ops *ops;
    const struct transport_cbs *cbs;
    void *cb_arg;
};

struct transport_settings {
    const char *host;          /* TCP: name or address */
    uint16_t port;
    const char *tunnel;        /* or: a shell command (host/port unused) */
    struct tls_ctx *tls;       /* TCP with implicit TLS (a ref is taken) */
    const char *tls_host;      /* name to verify; default: host */
    uint64_t connect_timeout_ms; /* name lookup + connect + TLS handshake */
    unsigned keepalive_s;      /* TCP keepalive idle time; 0: off */
};

/* Create (not yet connected). Returns NULL only if settings are unusable
 * (no host and no tunnel). */
struct transport *transport_new(struct transport_pool *pool,
                                const struct transport_settings *s);
void transport_set_callbacks(struct transport *t,
                             const struct transport_cbs *cbs, void *arg);

/* Start connecting: `connected` or `error` follows. Returns 0 or an error
 * code if it could not even start. */
int transport_connect(struct transport *t);
/* Queue bytes (copied). With secret, the copies are wiped once sent. */
void transport_write(struct transport *t, const void *data, size_t len,
                     bool secret);
/* Begin TLS on a connected plaintext stream (STARTTLS): `tls_ready` or
 * `error` follows. */
int transport_start_tls(struct transport *t, struct tls_ctx *ctx,
                        const char *host);
/* Stop all I/O and close; `closed` follows from the loop, never from
 * inside this call. Idempotent. */
void transport_close(struct transport *t);
/* "127.0.0.1:993", "tunnel (pid 123)", … for log lines. */
const char *transport_peer(const struct transport *t);
/* The TLS session ("TLSv1.3 TLS_AES_256_GCM_SHA384"), or NULL without
 * TLS. */
const char *transport_tls_describe(const struct transport *t);

#endif
