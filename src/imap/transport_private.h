/* SPDX-License-Identifier: MIT */
/* transport internals shared by its files: the libuv transport
 * (struct uv_transport, helpers prefixed uvt_):
 * - transport.c: the pool (shared read buffer, write coalescing), writing,
 *   reading, freeing, the ops table and the generic dispatch;
 * - transport_tcp.c: name lookup, connect (each address in turn),
 *   keepalive, and the TLS glue (also used over a tunnel);
 * - transport_tunnel.c: the tunnel command as a child process.
 * Not part of the contract (include/transport.h). */
#ifndef IMAPSWEEP_TRANSPORT_PRIVATE_H
#define IMAPSWEEP_TRANSPORT_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "transport.h"
#include "util.h"

struct addrinfo;
struct tls_conn;
struct write_req;       /* transport.c */

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
    transport_factory_fn *factory;   /* tests: scripted transports */
    void *factory_arg;
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

/* transport.c */
/* Neither closing nor failed: callbacks may still be delivered. */
bool uvt_active(const struct uv_transport *t);
/* Deliver `error` once; afterwards only `closed` may follow. */
void uvt_fail(struct uv_transport *t, int err, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
/* A handle closed or a request completed: the last one frees t once it is
 * closing. */
void uvt_release(struct uv_transport *t);
/* uv_close callback for a handle whose data is t: uvt_release(). */
void uvt_on_handle_closed(uv_handle_t *h);
void uvt_stop_reading(struct uv_transport *t);
void uvt_notify_connected(struct uv_transport *t);
void uvt_notify_read(struct uv_transport *t, const char *data, size_t len);
/* Flush t's output just before the loop next waits for I/O. */
void uvt_queue_flush(struct uv_transport *t);
/* Append to an output buffer, wiping old blocks once it holds a secret. */
void uvt_out_append(struct buf *b, bool *secret_flag, const void *data,
                    size_t len, bool secret);
/* The stream (TCP or the tunnel's output) is up: start reading, then the
 * implicit TLS handshake, or `connected`. */
void uvt_stream_connected(struct uv_transport *t, uv_stream_t *rs);

/* transport_tcp.c */
/* Start TLS on the stream; the ClientHello goes out at once. */
int uvt_begin_tls(struct uv_transport *t, struct tls_ctx *ctx,
                  const char *host);
/* Acknowledge now what was just read (TCP_QUICKACK, Linux); no-op over a
 * tunnel or where the option does not exist. */
void uvt_tcp_quickack(struct uv_transport *t);
/* Resolve t->host, then connect to each address in turn. */
int uvt_tcp_connect(struct uv_transport *t);
/* Timer callbacks: connect (lookup, connect, implicit TLS) and STARTTLS
 * handshake timeouts. */
void uvt_on_connect_timeout(uv_timer_t *timer);
void uvt_on_starttls_timeout(uv_timer_t *timer);

/* transport_tunnel.c */
/* Run the tunnel command with its stdin and stdout as our stream. */
int uvt_tunnel_spawn(struct uv_transport *t);
/* The command's output ended or its input broke. */
void uvt_tunnel_closed_output(struct uv_transport *t);
/* Timer callback: SIGKILL for a command that outlived its grace. */
void uvt_on_tunnel_kill_timer(uv_timer_t *timer);

#endif
