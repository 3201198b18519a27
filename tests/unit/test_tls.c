/* SPDX-License-Identifier: MIT */
/* tls: a tls_conn paired with an in-memory OpenSSL server, no sockets.
 * Ciphertext is pumped both ways, whole or one byte at a time. */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "errors.h"
#include "testcert.h"
#include "testlib.h"
#include "tls.h"
#include "util.h"

static struct testcert ca, good, self_signed, expired, wrong_name;
static char *ca_path;

struct pair {
    struct tls_conn *c;
    SSL *s;
    BIO *s_in, *s_out;
    struct buf to_server;  /* client ciphertext not yet given to s */
    struct buf plain;      /* plaintext the client received */
    struct buf s_plain;    /* plaintext the server received */
    unsigned reads;        /* read_plain calls */
    unsigned stop_after;   /* read_plain returns false after this many */
    bool handshake;
    int rc;                /* first error from tls_conn_feed */
};

static void
on_write_cipher(void *arg, const void *data, size_t len)
{
    struct pair *p = arg;

    assert_int_equal(buf_append(&p->to_server, data, len), 0);
}

static bool
on_read_plain(void *arg, const char *data, size_t len)
{
    struct pair *p = arg;

    assert_int_equal(buf_append(&p->plain, data, len), 0);
    p->reads++;
    return p->stop_after == 0 || p->reads < p->stop_after;
}

static bool
on_handshake_done(void *arg)
{
    struct pair *p = arg;

    p->handshake = true;
    return true;
}

static const struct tls_conn_ops pair_ops = {
    .write_cipher = on_write_cipher,
    .read_plain = on_read_plain,
    .handshake_done = on_handshake_done,
};

static void
pair_init(struct pair *p, struct tls_ctx *ctx, const char *host,
          SSL_CTX *server_ctx)
{
    memset(p, 0, sizeof(*p));
    buf_init(&p->to_server, BUF_NOCAP);
    buf_init(&p->plain, BUF_NOCAP);
    buf_init(&p->s_plain, BUF_NOCAP);
    p->c = tls_conn_new(ctx, host, &pair_ops, p);
    assert_non_null(p->c);
    p->s = SSL_new(server_ctx);
    p->s_in = BIO_new(BIO_s_mem());
    p->s_out = BIO_new(BIO_s_mem());
    SSL_set_bio(p->s, p->s_in, p->s_out);
    SSL_set_accept_state(p->s);
}

static void
pair_free_server(struct pair *p)
{
    SSL_free(p->s);
    p->s = NULL;
    ERR_clear_error();
}

static void
pair_free(struct pair *p)
{
    tls_conn_free(p->c);
    pair_free_server(p);
    buf_free(&p->to_server);
    buf_free(&p->plain);
    buf_free(&p->s_plain);
}

/* Move bytes until neither side has anything to say. `step` 0: hand the
 * server's output to the client whole, otherwise `step` bytes per feed. */
static void
pump(struct pair *p, size_t step)
{
    char scratch[16384];
    bool progress = true;

    while (progress && p->rc == 0) {
        char out[4096];
        int n;

        progress = false;
        if (p->to_server.len > 0) {
            assert_int_equal(BIO_write(p->s_in, p->to_server.data,
                                       (int)p->to_server.len),
                             (int)p->to_server.len);
            buf_reset(&p->to_server);
            progress = true;
        }
        if (!SSL_is_init_finished(p->s)) {
            (void)SSL_do_handshake(p->s);
        }
        if (SSL_is_init_finished(p->s)) {
            size_t got;

            while (SSL_read_ex(p->s, out, sizeof(out), &got) == 1) {
                assert_int_equal(buf_append(&p->s_plain, out, got), 0);
                progress = true;
            }
        }
        while (p->rc == 0 && (n = BIO_read(p->s_out, out, sizeof(out))) > 0) {
            size_t chunk = step == 0 ? (size_t)n : step;

            progress = true;
            for (size_t off = 0; off < (size_t)n && p->rc == 0; off += chunk) {
                size_t len = (size_t)n - off < chunk ? (size_t)n - off : chunk;

                p->rc = tls_conn_feed(p->c, out + off, len, scratch,
                                      sizeof(scratch));
            }
        }
    }
}

static void
server_write(struct pair *p, const char *s)
{
    size_t n;

    assert_int_equal(SSL_write_ex(p->s, s, strlen(s), &n), 1);
}

static struct tls_ctx *
ctx_new(const char *ca_file, bool verify)
{
    char *err = NULL;
    struct tls_ctx *ctx = tls_ctx_new(ca_file, verify, &err);

    assert_non_null(ctx);
    assert_null(err);
    return ctx;
}

/* Handshake and data both ways, delivering ciphertext in `step`-byte
 * pieces. */
static void
exchange(const char *host, size_t step)
{
    struct tls_ctx *ctx = ctx_new(ca_path, true);
    SSL_CTX *sctx = testcert_server_ctx(&good, 0, 0);
    struct pair p;

    pair_init(&p, ctx, host, sctx);
    assert_false(tls_conn_handshake_done(p.c));
    assert_int_equal(tls_conn_write(p.c, "x", 1), ERR_TLS);
    assert_int_equal(tls_conn_start(p.c), 0);
    assert_true(p.to_server.len > 0); /* the ClientHello */
    pump(&p, step);
    assert_int_equal(p.rc, 0);
    assert_true(p.handshake);
    assert_true(tls_conn_handshake_done(p.c));
    assert_non_null(strstr(tls_conn_describe(p.c), "TLSv1.3 TLS_"));
    assert_null(strstr(tls_conn_describe(p.c), "resumed"));

    assert_int_equal(tls_conn_write(p.c, "a1 NOOP\r\n", 9), 0);
    server_write(&p, "* OK hello\r\n");
    server_write(&p, "a1 OK done\r\n");
    pump(&p, step);
    assert_int_equal(p.rc, 0);
    assert_string_equal(buf_cstr(&p.s_plain), "a1 NOOP\r\n");
    assert_string_equal(buf_cstr(&p.plain), "* OK hello\r\na1 OK done\r\n");

    /* More than one record's worth in one go. */
    {
        char *big = xmalloc(100001);

        for (size_t i = 0; i < 100000; i++)
            big[i] = (char)('a' + i % 26);
        big[100000] = '\0';
        buf_reset(&p.plain);
        server_write(&p, big);
        pump(&p, step == 0 ? 0 : 1000);
        assert_int_equal(p.plain.len, 100000);
        assert_memory_equal(p.plain.data, big, 100000);
        free(big);
    }
    assert_int_equal(ERR_peek_error(), 0);
    pair_free(&p);
    SSL_CTX_free(sctx);
    tls_ctx_unref(ctx);
}

static void
test_handshake_and_data(void **state)
{
    (void)state;
    exchange("localhost", 0);
}

static void
test_one_byte_at_a_time(void **state)
{
    (void)state;
    exchange("localhost", 1);
}

static void
test_ip_literal(void **state)
{
    (void)state;
    exchange("127.0.0.1", 0);
}

/* Run a handshake that must fail with want_rc and want_msg. */
static void
expect_refused_ca(const struct testcert *server, const char *host,
                  const char *ca_file, int want_rc, const char *want_msg)
{
    struct tls_ctx *ctx = ctx_new(ca_file, true);
    SSL_CTX *sctx = testcert_server_ctx(server, 0, 0);
    struct pair p;

    pair_init(&p, ctx, host, sctx);
    assert_int_equal(tls_conn_start(p.c), 0);
    pump(&p, 0);
    assert_int_equal(p.rc, want_rc);
    assert_false(p.handshake);
    if (want_msg != NULL && strstr(tls_conn_error(p.c), want_msg) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", tls_conn_error(p.c), want_msg);
    assert_int_equal(ERR_peek_error(), 0);
    /* A failed connection must not be offered for resumption. */
    pair_free(&p);
    assert_false(tls_ctx_has_session(ctx));
    SSL_CTX_free(sctx);
    tls_ctx_unref(ctx);
}

static void
expect_refused(const struct testcert *server, const char *host, int want_rc,
               const char *want_msg)
{
    expect_refused_ca(server, host, ca_path, want_rc, want_msg);
}

static void
test_self_signed(void **state)
{
    (void)state;
    expect_refused(&self_signed, "localhost", ERR_TLS_VERIFY,
                   "certificate verify failed: self-signed certificate");
}

static void
test_wrong_host(void **state)
{
    (void)state;
    expect_refused(&wrong_name, "localhost", ERR_TLS_VERIFY,
                   "certificate verify failed: hostname mismatch");
    expect_refused(&good, "imap.example.org", ERR_TLS_VERIFY,
                   "hostname mismatch");
    expect_refused(&good, "127.0.0.2", ERR_TLS_VERIFY,
                   "IP address mismatch");
    /* No partial wildcards, and the name is not a prefix match. */
    expect_refused(&good, "localhost.example.org", ERR_TLS_VERIFY,
                   "hostname mismatch");
}

static void
test_expired(void **state)
{
    (void)state;
    expect_refused(&expired, "localhost", ERR_TLS_VERIFY,
                   "certificate has expired");
}

static void
test_system_store_refuses_test_ca(void **state)
{
    (void)state;
    expect_refused_ca(&good, "localhost", NULL, ERR_TLS_VERIFY,
                      "certificate verify failed");
}

static void
test_verify_false_accepts(void **state)
{
    struct tls_ctx *ctx = ctx_new(NULL, false);
    const struct testcert *certs[] = { &self_signed, &expired, &wrong_name };

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(certs); i++) {
        SSL_CTX *sctx = testcert_server_ctx(certs[i], 0, 0);
        struct pair p;

        pair_init(&p, ctx, "localhost", sctx);
        assert_int_equal(tls_conn_start(p.c), 0);
        pump(&p, 0);
        assert_int_equal(p.rc, 0);
        assert_true(p.handshake);
        pair_free(&p);
        SSL_CTX_free(sctx);
    }
    tls_ctx_unref(ctx);
}

static void
resume(int max_version, const char *version)
{
    struct tls_ctx *ctx = ctx_new(ca_path, true);
    SSL_CTX *sctx = testcert_server_ctx(&good, 0, max_version);
    struct pair p;

    assert_false(tls_ctx_has_session(ctx));
    for (int round = 0; round < 3; round++) {
        pair_init(&p, ctx, "localhost", sctx);
        assert_int_equal(tls_conn_start(p.c), 0);
        pump(&p, 0);
        assert_int_equal(p.rc, 0);
        assert_true(p.handshake);
        /* TLS 1.3 tickets arrive after the handshake, read with data. */
        server_write(&p, "* OK\r\n");
        pump(&p, 0);
        assert_string_equal(buf_cstr(&p.plain), "* OK\r\n");
        assert_true(tls_ctx_has_session(ctx));
        assert_non_null(strstr(tls_conn_describe(p.c), version));
        if (round == 0) {
            assert_null(strstr(tls_conn_describe(p.c), "(resumed)"));
            assert_false(SSL_session_reused(p.s));
        } else {
            assert_non_null(strstr(tls_conn_describe(p.c), "(resumed)"));
            assert_true(SSL_session_reused(p.s));
        }
        pair_free(&p);
    }
    SSL_CTX_free(sctx);
    tls_ctx_unref(ctx);
}

static void
test_resumption_tls13(void **state)
{
    (void)state;
    resume(0, "TLSv1.3 ");
}

static void
test_resumption_tls12(void **state)
{
    (void)state;
    resume(TLS1_2_VERSION, "TLSv1.2 ");
}

static void
test_no_resumption_across_names(void **state)
{
    struct tls_ctx *ctx = ctx_new(ca_path, true);
    SSL_CTX *sctx = testcert_server_ctx(&good, 0, 0);
    const char *hosts[] = { "localhost", "127.0.0.1", "127.0.0.1" };
    struct pair p;

    (void)state;
    /* The certificate is good for both names, but a session verified for
     * one is never offered to the other. */
    for (size_t i = 0; i < ARRAY_SIZE(hosts); i++) {
        pair_init(&p, ctx, hosts[i], sctx);
        assert_int_equal(tls_conn_start(p.c), 0);
        pump(&p, 0);
        server_write(&p, "* OK\r\n");
        pump(&p, 0);
        assert_int_equal(p.rc, 0);
        assert_true(p.handshake);
        if (i == 2)
            assert_non_null(strstr(tls_conn_describe(p.c), "(resumed)"));
        else
            assert_null(strstr(tls_conn_describe(p.c), "(resumed)"));
        pair_free(&p);
    }
    SSL_CTX_free(sctx);
    tls_ctx_unref(ctx);
}

static void
test_tls11_refused(void **state)
{
    struct tls_ctx *ctx = ctx_new(ca_path, true);
    SSL_CTX *sctx = testcert_server_ctx(&good, TLS1_1_VERSION, TLS1_1_VERSION);
    struct pair p;

    (void)state;
    pair_init(&p, ctx, "localhost", sctx);
    assert_int_equal(tls_conn_start(p.c), 0);
    pump(&p, 0);
    assert_int_equal(p.rc, ERR_TLS);
    assert_false(p.handshake);
    assert_non_null(strstr(tls_conn_error(p.c), "handshake failed: error:"));
    assert_int_equal(ERR_peek_error(), 0);
    pair_free(&p);
    SSL_CTX_free(sctx);
    tls_ctx_unref(ctx);
}

static void
test_read_plain_false_stops(void **state)
{
    struct tls_ctx *ctx = ctx_new(ca_path, true);
    SSL_CTX *sctx = testcert_server_ctx(&good, 0, 0);
    struct pair p;

    (void)state;
    pair_init(&p, ctx, "localhost", sctx);
    assert_int_equal(tls_conn_start(p.c), 0);
    pump(&p, 0);
    assert_true(p.handshake);
    p.stop_after = 1;
    /* Three records reach the client in one feed. */
    server_write(&p, "one ");
    server_write(&p, "two ");
    server_write(&p, "three");
    pump(&p, 0);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.reads, 1);
    assert_string_equal(buf_cstr(&p.plain), "one ");
    pair_free(&p);
    SSL_CTX_free(sctx);
    tls_ctx_unref(ctx);
}

static bool
stop_in_handshake(void *arg)
{
    (void)arg;
    return false;
}

static void
test_handshake_done_false_stops(void **state)
{
    static const struct tls_conn_ops ops = {
        .write_cipher = on_write_cipher,
        .read_plain = on_read_plain,
        .handshake_done = stop_in_handshake,
    };
    struct tls_ctx *ctx = ctx_new(ca_path, true);
    SSL_CTX *sctx = testcert_server_ctx(&good, 0, 0);
    struct pair p;

    (void)state;
    pair_init(&p, ctx, "localhost", sctx);
    tls_conn_free(p.c);
    p.c = tls_conn_new(ctx, "localhost", &ops, &p);
    assert_int_equal(tls_conn_start(p.c), 0);
    pump(&p, 0);
    assert_int_equal(p.rc, 0);
    assert_true(tls_conn_handshake_done(p.c));
    assert_int_equal(p.reads, 0);
    pair_free(&p);
    SSL_CTX_free(sctx);
    tls_ctx_unref(ctx);
}

static void
test_close_notify(void **state)
{
    struct tls_ctx *ctx = ctx_new(ca_path, true);
    SSL_CTX *sctx = testcert_server_ctx(&good, 0, 0);
    struct pair p;

    (void)state;
    pair_init(&p, ctx, "localhost", sctx);
    assert_int_equal(tls_conn_start(p.c), 0);
    pump(&p, 0);
    assert_true(p.handshake);
    server_write(&p, "* BYE\r\n");
    assert_int_equal(SSL_shutdown(p.s), 0);
    pump(&p, 0);
    assert_int_equal(p.rc, ERR_CLOSED);
    assert_string_equal(buf_cstr(&p.plain), "* BYE\r\n");
    assert_non_null(strstr(tls_conn_error(p.c), "close_notify"));

    /* Our own close_notify reaches the server. */
    tls_conn_shutdown(p.c);
    assert_true(p.to_server.len > 0);
    assert_int_equal(BIO_write(p.s_in, p.to_server.data,
                               (int)p.to_server.len),
                     (int)p.to_server.len);
    assert_int_equal(SSL_shutdown(p.s), 1);
    pair_free(&p);
    /* A clean close keeps the session. */
    assert_true(tls_ctx_has_session(ctx));
    SSL_CTX_free(sctx);
    tls_ctx_unref(ctx);
}

static void
test_corrupt_record(void **state)
{
    /* A complete application-data record of 32 bytes that fails to
     * decrypt. */
    static const char junk[] = "\x17\x03\x03\x00\x20"
                               "0123456789abcdef0123456789abcdef";
    struct tls_ctx *ctx = ctx_new(ca_path, true);
    SSL_CTX *sctx = testcert_server_ctx(&good, 0, 0);
    struct pair p;
    char scratch[16384];
    int rc;

    (void)state;
    pair_init(&p, ctx, "localhost", sctx);
    assert_int_equal(tls_conn_start(p.c), 0);
    pump(&p, 0);
    assert_true(p.handshake);
    rc = tls_conn_feed(p.c, junk, sizeof(junk) - 1, scratch, sizeof(scratch));
    assert_int_equal(rc, ERR_TLS);
    assert_non_null(strstr(tls_conn_error(p.c), "read failed: error:"));
    assert_int_equal(ERR_peek_error(), 0);
    /* Later calls keep failing rather than half-working. */
    assert_int_equal(tls_conn_feed(p.c, "x", 1, scratch, sizeof(scratch)),
                     ERR_TLS);
    assert_int_equal(tls_conn_write(p.c, "x", 1), ERR_TLS);
    pair_free(&p);
    SSL_CTX_free(sctx);
    tls_ctx_unref(ctx);
}

static void
test_bad_ca_file(void **state)
{
    char *err = NULL;
    struct tls_ctx *ctx;

    (void)state;
    ctx = tls_ctx_new("/nonexistent/ca.pem", true, &err);
    assert_null(ctx);
    assert_non_null(err);
    assert_non_null(strstr(err, "cannot load CA file /nonexistent/ca.pem"));
    assert_int_equal(ERR_peek_error(), 0);
    free(err);
}

/* Heap held by `n` idle client connections after the handshake and a
 * little data, the servers freed. */
static size_t
measure(size_t n, bool tickets)
{
    struct tls_ctx *ctx = ctx_new(ca_path, true);
    SSL_CTX *sctx = testcert_server_ctx(&good, 0, 0);
    struct pair *pairs = xcalloc(n, sizeof(*pairs));
    struct mallinfo2 before, after;

    if (!tickets) {
        SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(sctx, 0);
    }
    /* Warm up lazily allocated OpenSSL state outside the measurement. */
    pair_init(&pairs[0], ctx, "localhost", sctx);
    assert_int_equal(tls_conn_start(pairs[0].c), 0);
    pump(&pairs[0], 0);
    server_write(&pairs[0], "* OK\r\n");
    pump(&pairs[0], 0);
    pair_free(&pairs[0]);

    malloc_trim(0);
    before = mallinfo2();
    for (size_t i = 0; i < n; i++) {
        struct pair *p = &pairs[i];

        pair_init(p, ctx, "localhost", sctx);
        assert_int_equal(tls_conn_start(p->c), 0);
        pump(p, 0);
        assert_true(p->handshake);
        assert_int_equal(tls_conn_write(p->c, "a1 NOOP\r\n", 9), 0);
        server_write(p, "* OK\r\n");
        pump(p, 0);
        assert_int_equal(p->rc, 0);
        if (tickets && i > 0)
            assert_non_null(strstr(tls_conn_describe(p->c), "resumed"));
        pair_free_server(p);
        buf_free(&p->to_server);
        buf_free(&p->plain);
        buf_free(&p->s_plain);
    }
    after = mallinfo2();
    for (size_t i = 0; i < n; i++)
        tls_conn_free(pairs[i].c);
    free(pairs);
    SSL_CTX_free(sctx);
    tls_ctx_unref(ctx);
    return after.uordblks > before.uordblks
               ? (after.uordblks - before.uordblks) / n
               : 0;
}

static void
test_memory_per_idle_conn(void **state)
{
    const char *env = getenv("TEST_TLS_MEASURE_N");
    size_t n = UNDER_ASAN ? 50 : 1000, full, resumed;

    (void)state;
    if (env != NULL) {
        uint64_t v;

        if (util_parse_u64(env, strlen(env), 100000, &v) == 0 && v > 0)
            n = (size_t)v;
    }
    full = measure(n, false);
    resumed = measure(n, true);
    print_message("idle tls_conn after handshake (%zu connections): "
                  "%zu bytes each (full handshake), %zu bytes (resumed)\n",
                  n, full, resumed);
    /* mallinfo2 means nothing under a sanitizer's or valgrind's
     * allocator; there the figure is 0 or meaningless. */
    if (!UNDER_ASAN && full > 0 && getenv("TEST_TLS_NO_MEMCHECK") == NULL)
        assert_true(full <= 40 * 1024);
}

static int
setup(void **state)
{
    (void)state;
    ca = testcert_make("imapsweep test CA", NULL, NULL, true, -TESTCERT_DAY,
                       30 * TESTCERT_DAY);
    good = testcert_make("localhost", "DNS:localhost,IP:127.0.0.1", &ca,
                         false, -TESTCERT_DAY, 30 * TESTCERT_DAY);
    self_signed = testcert_make("localhost", "DNS:localhost", NULL, false,
                                -TESTCERT_DAY, 30 * TESTCERT_DAY);
    expired = testcert_make("localhost", "DNS:localhost", &ca, false,
                            -10 * TESTCERT_DAY, -TESTCERT_DAY);
    wrong_name = testcert_make("wrong.example.org", "DNS:wrong.example.org",
                               &ca, false, -TESTCERT_DAY, 30 * TESTCERT_DAY);
    ca_path = testcert_write_tmp(&ca);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    unlink(ca_path);
    free(ca_path);
    testcert_free(&ca);
    testcert_free(&good);
    testcert_free(&self_signed);
    testcert_free(&expired);
    testcert_free(&wrong_name);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_data),
        cmocka_unit_test(test_one_byte_at_a_time),
        cmocka_unit_test(test_ip_literal),
        cmocka_unit_test(test_self_signed),
        cmocka_unit_test(test_wrong_host),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_system_store_refuses_test_ca),
        cmocka_unit_test(test_verify_false_accepts),
        cmocka_unit_test(test_resumption_tls13),
        cmocka_unit_test(test_resumption_tls12),
        cmocka_unit_test(test_no_resumption_across_names),
        cmocka_unit_test(test_tls11_refused),
        cmocka_unit_test(test_read_plain_false_stops),
        cmocka_unit_test(test_handshake_done_false_stops),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_corrupt_record),
        cmocka_unit_test(test_bad_ca_file),
        cmocka_unit_test(test_memory_per_idle_conn),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);

    OPENSSL_cleanup();
    return rc;
}
