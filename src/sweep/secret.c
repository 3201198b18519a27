/* SPDX-License-Identifier: MIT */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "errors.h"
#include "spawn.h"
#include "util.h"

/* Secrets are short; anything longer is a mistake (or not a secret). */
#define SECRET_MAX (64 * 1024)

struct secret_req {
    uv_loop_t *loop;
    secret_cb *cb;
    void *arg;
    bool cancelled;
    bool done;              /* cb ran (or will not) */
    unsigned open_handles;
    /* immediate result, delivered from a zero timer */
    uv_timer_t timer;
    int err;
    char *msg;
    char *warning;          /* delivered with the secret */
    struct buf out;         /* the secret being read */
    /* command */
    bool is_command;
    uv_process_t proc;
    uv_pipe_t pipe;
    bool proc_running;      /* spawned, not yet reaped */
    bool exited, eof;
    int64_t exit_status;
    int term_signal;
    bool timed_out;
    const char *what;
};

const char *
secret_kind_name(enum config_secret_kind kind)
{
    switch (kind) {
    case CONFIG_SECRET_NONE: return "none";
    case CONFIG_SECRET_FILE: return "password_file";
    case CONFIG_SECRET_COMMAND: return "password_command";
    case CONFIG_SECRET_CREDENTIAL: return "password_credential";
    case CONFIG_SECRET_ENV: return "password_env";
    case CONFIG_SECRET_INLINE: return "password";
    case CONFIG_SECRET_TOKEN_COMMAND: return "token_command";
    }
    return "?";
}

static void
req_free(struct secret_req *r)
{
    buf_free_secret(&r->out);
    free(r->msg);
    free(r->warning);
    free(r);
}

/* Password files found readable by group or others, and the mode they
 * had: each is reported once per process and mode (a thousand
 * connections reading the same file need not say it a thousand times). */
struct warned {
    char *path;
    mode_t mode;
};
static struct warned *warned;
static size_t n_warned, cap_warned;

static bool
first_warning(const char *path, mode_t mode)
{
    for (size_t i = 0; i < n_warned; i++) {
        if (strcmp(warned[i].path, path) == 0) {
            if (warned[i].mode == mode)
                return false;
            warned[i].mode = mode;
            return true;
        }
    }
    ARRAY_GROW(warned, cap_warned, n_warned + 1);
    warned[n_warned].path = xstrdup(path);
    warned[n_warned].mode = mode;
    n_warned++;
    return true;
}

/* As ssh does for keys: a password others may read is no secret. */
static void
check_mode(struct secret_req *r, int fd, const char *path)
{
    struct stat st;
    mode_t mode;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    mode = st.st_mode & 07777;
    if ((mode & (S_IRGRP | S_IROTH)) == 0) {
        first_warning(path, mode); /* fixed: a later change is news */
        return;
    }
    if (!first_warning(path, mode))
        return;
    free(r->warning);
    r->warning = xasprintf("password_file %s is readable by group or others "
                           "(mode %04o): make it mode 600, owned by the user "
                           "imapsweepd runs as, or use password_credential",
                           path, (unsigned)mode);
}

static void
on_handle_closed(uv_handle_t *h)
{
    struct secret_req *r = h->data;

    if (--r->open_handles == 0 && r->done)
        req_free(r);
}

static void
close_handles(struct secret_req *r)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&r->timer, (uv_handle_t *)&r->pipe,
                         (uv_handle_t *)&r->proc};

    for (size_t i = 0; i < ARRAY_SIZE(hs); i++) {
        /* a running child's handle stays open until it is reaped */
        if (hs[i] == (uv_handle_t *)&r->proc && r->proc_running &&
            !r->exited)
            continue;
        if (hs[i]->loop != NULL && !uv_is_closing(hs[i]))
            uv_close(hs[i], on_handle_closed);
    }
}

/* Keep only the first line, without its line end. */
static size_t
first_line(struct buf *b)
{
    size_t n = 0;

    while (n < b->len && b->data[n] != '\n' && b->data[n] != '\r')
        n++;
    if (b->data != NULL) {
        util_wipe(b->data + n, b->len - n);
        b->data[n] = '\0';
    }
    b->len = n;
    return n;
}

static void
deliver(struct secret_req *r)
{
    if (r->done)
        return;
    r->done = true;
    if (!r->cancelled) {
        if (r->err == 0) {
            size_t len = first_line(&r->out);
            char *s = xmemdup(buf_cstr(&r->out), len + 1);

            buf_free_secret(&r->out);
            if (len == 0) {
                util_free_secret(s);
                r->cb(r->arg, ERR_SECRET, r->msg ? r->msg : "the secret is "
                                                            "empty",
                      NULL, 0);
            } else {
                r->cb(r->arg, 0, r->warning, s, len);
            }
        } else {
            r->cb(r->arg, r->err, r->msg, NULL, 0);
        }
    }
    buf_free_secret(&r->out);
    close_handles(r);
}

static void
on_timer(uv_timer_t *t)
{
    struct secret_req *r = t->data;

    if (r->is_command) {
        /* the command took too long */
        r->timed_out = true;
        r->err = ERR_SECRET;
        free(r->msg);
        r->msg = xasprintf("%s did not finish in time", r->what);
        if (!r->exited)
            uv_process_kill(&r->proc, SIGKILL);
    }
    deliver(r);
}

static void
fail(struct secret_req *r, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
fail(struct secret_req *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    free(r->msg);
    r->msg = xvasprintf(fmt, ap);
    va_end(ap);
    r->err = ERR_SECRET;
}

static void
read_file(struct secret_req *r, const char *path, const char *what,
          bool mode_matters)
{
    char chunk[4096];
    struct stat st;
    ssize_t n;
    /* O_NONBLOCK: a FIFO must not stop the event loop waiting for a
     * writer; only a regular file is read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        fail(r, "%s %s: %s", what, path, strerror(errno));
        return;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fail(r, "%s %s: not a regular file", what, path);
        close(fd);
        return;
    }
    if (mode_matters)
        check_mode(r, fd, path);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
        if (buf_append(&r->out, chunk, (size_t)n) < 0) {
            fail(r, "%s %s is larger than %d bytes", what, path, SECRET_MAX);
            break;
        }
    }
    if (n < 0)
        fail(r, "%s %s: %s", what, path, strerror(errno));
    util_wipe(chunk, sizeof(chunk));
    close(fd);
}

static void
maybe_finish_command(struct secret_req *r)
{
    if (!r->exited || !r->eof || r->done)
        return;
    if (r->err == 0) {
        if (r->term_signal != 0)
            fail(r, "%s was killed by signal %d", r->what, r->term_signal);
        else if (r->exit_status != 0)
            fail(r, "%s exited with status %lld", r->what,
                 (long long)r->exit_status);
    }
    deliver(r);
}

static void
on_child_exit(uv_process_t *p, int64_t status, int sig)
{
    struct secret_req *r = p->data;

    r->exited = true;
    r->exit_status = status;
    r->term_signal = sig;
    if (r->done)
        close_handles(r); /* cancelled or timed out: only reaping was left */
    else
        maybe_finish_command(r);
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char scratch[4096];

    (void)h;
    (void)hint;
    b->base = scratch;
    b->len = sizeof(scratch);
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct secret_req *r = s->data;

    if (n > 0 && r->err == 0 && buf_append(&r->out, b->base, (size_t)n) < 0)
        fail(r, "%s printed more than %d bytes", r->what, SECRET_MAX);
    if (n > 0)
        util_wipe(b->base, (size_t)n);
    if (n < 0) {
        r->eof = true;
        uv_read_stop(s);
        maybe_finish_command(r);
    }
}

static void
start_command(struct secret_req *r, const char *cmd, uint64_t timeout_ms)
{
    int ret;

    r->is_command = true;
    uv_pipe_init(r->loop, &r->pipe, 0);
    r->pipe.data = r;
    r->open_handles++;
    r->proc.data = r;
    ret = spawn_shell(r->loop, &r->proc, cmd, NULL, &r->pipe, on_child_exit);
    if (ret < 0) {
        fail(r, "cannot run %s: %s", r->what, uv_strerror(ret));
        /* uv_spawn initialised the handle even on failure: close it */
        if (r->proc.loop != NULL)
            r->open_handles++;
        uv_timer_start(&r->timer, on_timer, 0, 0);
        r->is_command = false;
        return;
    }
    r->open_handles++;
    r->proc_running = true;
    uv_read_start((uv_stream_t *)&r->pipe, on_alloc, on_read);
    uv_timer_start(&r->timer, on_timer, timeout_ms ? timeout_ms : 30000, 0);
}

struct secret_req *
secret_fetch(uv_loop_t *loop, const struct config_secret *src,
             uint64_t timeout_ms, secret_cb *cb, void *arg)
{
    struct secret_req *r = xcalloc(1, sizeof(*r));
    const char *v = src->value ? src->value : "";

    r->loop = loop;
    r->cb = cb;
    r->arg = arg;
    r->what = secret_kind_name(src->kind);
    buf_init_secret(&r->out, SECRET_MAX);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->open_handles = 1;

    switch (src->kind) {
    case CONFIG_SECRET_FILE:
        read_file(r, v, "password_file", true);
        break;
    case CONFIG_SECRET_CREDENTIAL: {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");

        if (dir == NULL || *dir == '\0') {
            fail(r, "password_credential %s: $CREDENTIALS_DIRECTORY is not "
                    "set (use LoadCredential= in the systemd unit)", v);
        } else {
            char *path = xasprintf("%s/%s", dir, v);

            /* systemd makes credentials readable by the service only */
            read_file(r, path, "credential", false);
            free(path);
        }
        break;
    }
    case CONFIG_SECRET_ENV: {
        const char *e = getenv(v);

        if (e == NULL)
            fail(r, "password_env: $%s is not set", v);
        else
            buf_append_str(&r->out, e);
        break;
    }
    case CONFIG_SECRET_INLINE:
        buf_append_str(&r->out, v);
        break;
    case CONFIG_SECRET_COMMAND:
    case CONFIG_SECRET_TOKEN_COMMAND:
        start_command(r, v, timeout_ms);
        return r;
    case CONFIG_SECRET_NONE:
        fail(r, "no secret source is configured");
        break;
    }
    uv_timer_start(&r->timer, on_timer, 0, 0);
    return r;
}

void
secret_cancel(struct secret_req *r)
{
    if (r == NULL)
        return;
    r->cancelled = true;
    if (r->is_command && !r->exited)
        uv_process_kill(&r->proc, SIGKILL);
    if (!r->done) {
        r->done = true;
        close_handles(r);
    }
}
