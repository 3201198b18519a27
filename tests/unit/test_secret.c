/* SPDX-License-Identifier: MIT */
/* Secret sources, each read on a real loop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "errors.h"
#include "secret.h"
#include "util.h"

struct result {
    int calls;
    int err;
    char msg[256];
    char secret[256];
    size_t len;
};

static void
on_secret(void *arg, int err, const char *msg, char *secret, size_t len)
{
    struct result *r = arg;

    r->calls++;
    r->err = err;
    if (msg != NULL)
        util_strlcpy(r->msg, msg, sizeof(r->msg));
    if (secret != NULL) {
        util_strlcpy(r->secret, secret, sizeof(r->secret));
        r->len = len;
        util_free_secret(secret);
    }
}

static struct result
fetch(enum config_secret_kind kind, const char *value, uint64_t timeout_ms)
{
    uv_loop_t loop;
    struct config_secret src = {.kind = kind, .value = (char *)value};
    struct result r;

    memset(&r, 0, sizeof(r));
    uv_loop_init(&loop);
    secret_fetch(&loop, &src, timeout_ms, on_secret, &r);
    assert_int_equal(r.calls, 0); /* never called inside secret_fetch */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r.calls, 1);
    return r;
}

static void
test_file(void **state)
{
    char path[] = "/tmp/imapsweep-secret-XXXXXX";
    int fd = mkstemp(path);
    struct result r;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hunter2\nsecond line\n", 20), 20);
    close(fd);
    r = fetch(CONFIG_SECRET_FILE, path, 1000);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.secret, "hunter2");
    assert_int_equal(r.len, 7);
    unlink(path);
    r = fetch(CONFIG_SECRET_FILE, path, 1000);
    assert_int_equal(r.err, ERR_SECRET);
    assert_non_null(strstr(r.msg, "No such file"));
}

/* A FIFO (or any file that is not regular) would stop the loop waiting
 * for a writer: refused at once, the secret unread. */
static void
test_file_fifo(void **state)
{
    char dir[] = "/tmp/imapsweep-secret-XXXXXX";
    char path[64];
    struct result r;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/password", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    r = fetch(CONFIG_SECRET_FILE, path, 1000);
    assert_int_equal(r.err, ERR_SECRET);
    assert_non_null(strstr(r.msg, "not a regular file"));
    assert_int_equal(r.len, 0);
    unlink(path);
    rmdir(dir);
}

/* As ssh does for keys: a password file others can read gets a warning
 * naming the mode, once per file and mode, when it is read. */
static void
test_file_mode_warning(void **state)
{
    char path[] = "/tmp/imapsweep-secret-XXXXXX";
    int fd = mkstemp(path);
    char want[512];
    struct result r;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hunter2\n", 8), 8);
    close(fd);
    assert_int_equal(chmod(path, 0644), 0);
    r = fetch(CONFIG_SECRET_FILE, path, 1000);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.secret, "hunter2");
    snprintf(want, sizeof(want), "password_file %s is readable by group or "
             "others (mode 0644): make it mode 600, owned by the user "
             "imapsweepd runs as, or use password_credential", path);
    assert_string_equal(r.msg, want);
    /* said once: the next connection reads it quietly */
    r = fetch(CONFIG_SECRET_FILE, path, 1000);
    assert_string_equal(r.msg, "");
    /* another mode is news */
    assert_int_equal(chmod(path, 0640), 0);
    r = fetch(CONFIG_SECRET_FILE, path, 1000);
    assert_non_null(strstr(r.msg, "(mode 0640)"));
    /* private: nothing to say, and opened up again later it is said */
    assert_int_equal(chmod(path, 0600), 0);
    r = fetch(CONFIG_SECRET_FILE, path, 1000);
    assert_string_equal(r.msg, "");
    assert_int_equal(chmod(path, 0644), 0);
    r = fetch(CONFIG_SECRET_FILE, path, 1000);
    assert_non_null(strstr(r.msg, "(mode 0644)"));
    unlink(path);
}

static void
test_env_inline_credential(void **state)
{
    struct result r;

    (void)state;
    setenv("IMAPSWEEP_TEST_PW", "pw from env\r\n", 1);
    r = fetch(CONFIG_SECRET_ENV, "IMAPSWEEP_TEST_PW", 1000);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.secret, "pw from env");
    r = fetch(CONFIG_SECRET_ENV, "IMAPSWEEP_NO_SUCH_VAR", 1000);
    assert_int_equal(r.err, ERR_SECRET);
    assert_non_null(strstr(r.msg, "IMAPSWEEP_NO_SUCH_VAR is not set"));
    r = fetch(CONFIG_SECRET_INLINE, "inline", 1000);
    assert_string_equal(r.secret, "inline");
    r = fetch(CONFIG_SECRET_INLINE, "", 1000);
    assert_int_equal(r.err, ERR_SECRET);

    unsetenv("CREDENTIALS_DIRECTORY");
    r = fetch(CONFIG_SECRET_CREDENTIAL, "work", 1000);
    assert_int_equal(r.err, ERR_SECRET);
    assert_non_null(strstr(r.msg, "CREDENTIALS_DIRECTORY"));
    {
        char dir[] = "/tmp/imapsweep-cred-XXXXXX";
        char *path;
        FILE *f;

        assert_non_null(mkdtemp(dir));
        path = xasprintf("%s/work", dir);
        f = fopen(path, "w");
        fputs("credential-pw", f);
        fclose(f);
        setenv("CREDENTIALS_DIRECTORY", dir, 1);
        r = fetch(CONFIG_SECRET_CREDENTIAL, "work", 1000);
        assert_int_equal(r.err, 0);
        assert_string_equal(r.secret, "credential-pw");
        unlink(path);
        rmdir(dir);
        free(path);
        unsetenv("CREDENTIALS_DIRECTORY");
    }
}

static void
test_commands(void **state)
{
    struct result r;

    (void)state;
    r = fetch(CONFIG_SECRET_COMMAND, "printf 'from-cmd\\nignored\\n'", 5000);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.secret, "from-cmd");
    r = fetch(CONFIG_SECRET_TOKEN_COMMAND, "echo tok; exit 3", 5000);
    assert_int_equal(r.err, ERR_SECRET);
    assert_non_null(strstr(r.msg, "token_command exited with status 3"));
    r = fetch(CONFIG_SECRET_COMMAND, "exec sleep 10", 200);
    assert_int_equal(r.err, ERR_SECRET);
    assert_non_null(strstr(r.msg, "did not finish in time"));
    r = fetch(CONFIG_SECRET_COMMAND, "true", 5000);
    assert_int_equal(r.err, ERR_SECRET);
    assert_non_null(strstr(r.msg, "empty"));
    r = fetch(CONFIG_SECRET_COMMAND, "kill -9 $$", 5000);
    assert_int_equal(r.err, ERR_SECRET);
    assert_non_null(strstr(r.msg, "signal 9"));
}

static void
test_cancel(void **state)
{
    uv_loop_t loop;
    struct config_secret src = {.kind = CONFIG_SECRET_COMMAND,
                                .value = "exec sleep 10"};
    struct result r;
    struct secret_req *req;

    (void)state;
    memset(&r, 0, sizeof(r));
    uv_loop_init(&loop);
    req = secret_fetch(&loop, &src, 60000, on_secret, &r);
    secret_cancel(req);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns once the child is reaped */
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r.calls, 0);

    src.kind = CONFIG_SECRET_INLINE;
    src.value = "x";
    uv_loop_init(&loop);
    req = secret_fetch(&loop, &src, 60000, on_secret, &r);
    secret_cancel(req);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(r.calls, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_file_fifo),
        cmocka_unit_test(test_file_mode_warning),
        cmocka_unit_test(test_env_inline_credential),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_cancel),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
