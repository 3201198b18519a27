/* SPDX-License-Identifier: MIT */
/* The account's secret cache: a command runs once for all connections,
 * again after a refusal (drop) or a JWT's exp; other sources are read at
 * each login. On a real loop, with real commands. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "errors.h"
#include "secret.h"
#include "util.h"

struct got {
    int calls;
    int err;
    bool kept;
    char secret[512];
};

static void
on_got(void *arg, int err, const char *msg, char *secret, size_t len,
       bool kept)
{
    struct got *g = arg;

    (void)msg;
    (void)len;
    g->calls++;
    g->err = err;
    g->kept = kept;
    if (secret != NULL) {
        util_strlcpy(g->secret, secret, sizeof(g->secret));
        util_free_secret(secret);
    }
}

static char dir[] = "/tmp/imapsweep-cache-XXXXXX";

/* A command that counts its runs in a file and prints what out says. */
static char *
counting_command(const char *out)
{
    return xasprintf("echo run >> %s/runs; printf '%%s\\n' '%s'", dir, out);
}

static int
runs_in_file(void)
{
    char *path = xasprintf("%s/runs", dir);
    FILE *f = fopen(path, "r");
    int n = 0, c;

    free(path);
    if (f == NULL)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void
reset_runs(void)
{
    char *path = xasprintf("%s/runs", dir);

    unlink(path);
    free(path);
}

/* get n at once, run the loop until all answered */
static void
get_all(uv_loop_t *loop, struct secret_cache *c, struct got *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        secret_cache_get(c, on_got, &g[i]);
        assert_int_equal(g[i].calls, 0); /* never inside the get */
    }
    uv_run(loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(g[i].calls, 1);
}

static void
test_command_runs_once(void **state)
{
    uv_loop_t loop;
    char *cmd = counting_command("t0ken");
    struct config_secret src = {.kind = CONFIG_SECRET_TOKEN_COMMAND,
                                .value = cmd};
    struct secret_cache *c;
    struct got g[8];

    (void)state;
    reset_runs();
    uv_loop_init(&loop);
    c = secret_cache_new(&loop, &src, 5000);
    /* eight connections log in at once: one run */
    get_all(&loop, c, g, 8);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(g[i].err, 0);
        assert_string_equal(g[i].secret, "t0ken");
        assert_false(g[i].kept);
    }
    assert_int_equal(runs_in_file(), 1);
    assert_int_equal(secret_cache_runs(c), 1);
    /* later logins (reconnects): the kept copy */
    get_all(&loop, c, g, 3);
    assert_true(g[0].kept && g[2].kept);
    assert_string_equal(g[1].secret, "t0ken");
    assert_int_equal(runs_in_file(), 1);
    /* refused (expired): dropped, the next login runs it again, once */
    secret_cache_drop(c);
    get_all(&loop, c, g, 2);
    assert_false(g[0].kept);
    assert_int_equal(runs_in_file(), 2);
    secret_cache_unref(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(cmd);
}

static char *
jwt(time_t exp)
{
    struct buf payload, b;
    char *json = xasprintf("{\"aud\":\"imap\",\"exp\":%lld,\"sub\":\"u\"}",
                           (long long)exp);
    char *out;

    buf_init(&payload, BUF_NOCAP);
    buf_init(&b, BUF_NOCAP);
    buf_append_base64(&payload, json, strlen(json));
    /* base64url, no padding */
    for (size_t i = 0; i < payload.len; i++) {
        char ch = payload.data[i];

        if (ch == '=')
            break;
        buf_append_char(&b, ch == '+' ? '-' : ch == '/' ? '_' : ch);
    }
    out = xasprintf("eyJhbGciOiJSUzI1NiJ9.%s.c2ln", buf_cstr(&b));
    buf_free(&payload);
    buf_free(&b);
    free(json);
    return out;
}

/* A JWT is kept until a minute before its exp. */
static void
test_token_expiry(void **state)
{
    uv_loop_t loop;
    char *soon = jwt(time(NULL) + 30), *later = jwt(time(NULL) + 3600);
    char *cmd_soon = counting_command(soon), *cmd_later =
        counting_command(later);
    struct config_secret src = {.kind = CONFIG_SECRET_TOKEN_COMMAND};
    struct secret_cache *c;
    struct got g[2];

    (void)state;
    uv_loop_init(&loop);
    reset_runs();
    src.value = cmd_soon;
    c = secret_cache_new(&loop, &src, 5000);
    get_all(&loop, c, g, 1);
    assert_string_equal(g[0].secret, soon);
    get_all(&loop, c, g, 1);     /* expires within the margin: run again */
    assert_false(g[0].kept);
    assert_int_equal(runs_in_file(), 2);
    secret_cache_unref(c);

    reset_runs();
    src.value = cmd_later;
    c = secret_cache_new(&loop, &src, 5000);
    get_all(&loop, c, g, 1);
    get_all(&loop, c, g, 2);
    assert_true(g[0].kept && g[1].kept);
    assert_int_equal(runs_in_file(), 1);
    secret_cache_unref(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(soon);
    free(later);
    free(cmd_soon);
    free(cmd_later);
}

/* Files, variables, inline passwords: read at every login, never kept. */
static void
test_other_sources_not_kept(void **state)
{
    uv_loop_t loop;
    struct config_secret src = {.kind = CONFIG_SECRET_ENV,
                                .value = "IMAPSWEEP_TEST_CACHE_PW"};
    struct secret_cache *c;
    struct got g[2];

    (void)state;
    uv_loop_init(&loop);
    setenv("IMAPSWEEP_TEST_CACHE_PW", "one", 1);
    c = secret_cache_new(&loop, &src, 5000);
    get_all(&loop, c, g, 1);
    assert_string_equal(g[0].secret, "one");
    setenv("IMAPSWEEP_TEST_CACHE_PW", "two", 1);
    get_all(&loop, c, g, 1);
    assert_string_equal(g[0].secret, "two");
    assert_false(g[0].kept);
    assert_int_equal(secret_cache_runs(c), 2);
    secret_cache_unref(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    unsetenv("IMAPSWEEP_TEST_CACHE_PW");
}

/* A failed run is not kept: each later login tries again. Cancelled gets
 * and a cache freed with a run in flight call nobody. */
static void
test_failure_cancel_and_free(void **state)
{
    uv_loop_t loop;
    struct config_secret bad = {.kind = CONFIG_SECRET_COMMAND,
                                .value = "exit 3"};
    struct config_secret slow = {.kind = CONFIG_SECRET_COMMAND,
                                 .value = "exec sleep 10"};
    struct secret_cache *c;
    struct secret_cache_req *r;
    struct got g[2];

    (void)state;
    uv_loop_init(&loop);
    c = secret_cache_new(&loop, &bad, 5000);
    get_all(&loop, c, g, 2);
    assert_int_equal(g[0].err, ERR_SECRET);
    assert_int_equal(g[1].err, ERR_SECRET);
    get_all(&loop, c, g, 1);
    assert_int_equal(secret_cache_runs(c), 2);
    secret_cache_unref(c);

    c = secret_cache_new(&loop, &slow, 60000);
    memset(g, 0, sizeof(g));
    r = secret_cache_get(c, on_got, &g[0]);
    secret_cache_get(c, on_got, &g[1]);
    secret_cache_cancel(r);
    secret_cache_unref(c);      /* the other waiter's owner went too */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(g[0].calls, 0);
    assert_int_equal(g[1].calls, 0);
}

static int
setup(void **state)
{
    (void)state;
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    reset_runs();
    return rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_runs_once),
        cmocka_unit_test(test_token_expiry),
        cmocka_unit_test(test_other_sources_not_kept),
        cmocka_unit_test(test_failure_cancel_and_free),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
