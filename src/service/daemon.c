/* SPDX-License-Identifier: MIT */
#include "daemon.h"
#include "daemon_private.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "account.h"
#include "config.h"
#include "control.h"
#include "ctl_proto.h"
#include "gate.h"
#include "notify.h"
#include "transport.h"
#include "util.h"
#include "watcher.h"

/* SIGTERM: commands in flight get this long before everything is cut. */
#define STOP_GRACE_MS 5000
/* After state changes settle, give freed memory back to the system. */
#define TRIM_DELAY_MS 2000

/* --- status -------------------------------------------------------------- */

void
daemon_for_each_watcher(struct daemon *d,
                        void (*fn)(struct daemon *, struct watcher *, void *),
                        void *arg)
{
    for (size_t i = 0; i < d->n_accounts; i++) {
        for (size_t k = 0; k < account_n_watchers(d->accounts[i]); k++)
            fn(d, account_watcher(d->accounts[i], k), arg);
    }
}

struct totals {
    size_t watching, total;
    uint64_t by_action[4];
};

static void
add_totals(struct daemon *d, struct watcher *w, void *arg)
{
    struct totals *t = arg;
    struct watcher_status st;

    (void)d;
    watcher_status(w, &st);
    t->total++;
    if (watcher_is_watching(w))
        t->watching++;
    for (size_t i = 0; i < st.n_counts; i++) {
        static const char *const names[] = {"delete", "trash", "move",
                                            "flag"};

        for (size_t k = 0; k < 4; k++) {
            if (!st.counts[i].dry && strcmp(st.counts[i].action, names[k]) == 0)
                t->by_action[k] += st.counts[i].n;
        }
    }
}

/* "watching 12/12 mailboxes, 340 deleted, 2 moved" */
char *
daemon_status_line(struct daemon *d)
{
    static const char *const past[] = {"deleted", "trashed", "moved",
                                       "flagged"};
    struct totals t;
    struct buf b;

    memset(&t, 0, sizeof(t));
    daemon_for_each_watcher(d, add_totals, &t);
    buf_init(&b, BUF_NOCAP);
    buf_printf(&b, "watching %zu/%zu mailbox%s", t.watching, t.total,
               t.total == 1 ? "" : "es");
    for (size_t k = 0; k < 4; k++) {
        if (t.by_action[k] > 0)
            buf_printf(&b, ", %llu %s", (unsigned long long)t.by_action[k],
                       past[k]);
    }
    if (d->config->daemon.dry_run || d->opts.dry_run)
        buf_append_str(&b, " (dry run)");
    return buf_steal(&b);
}

static void
on_status_timer(uv_timer_t *t)
{
    struct daemon *d = t->data;
    char *line;

    if (d->stopping)
        return;
    line = daemon_status_line(d);
    notify_status(d->notify, line);
    free(line);
}

/* TLS handshakes and sweeps free a lot of small blocks that glibc keeps;
 * with thousands of idle connections that doubles the resident size. */
static void
on_trim_timer(uv_timer_t *t)
{
    (void)t;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

void
daemon_schedule_trim(struct daemon *d)
{
    if (!uv_is_active((uv_handle_t *)&d->trim_timer))
        uv_timer_start(&d->trim_timer, on_trim_timer, TRIM_DELAY_MS, 0);
}

static void
on_changed(void *arg)
{
    struct daemon *d = arg;

    /* coalesce: at most one STATUS= per half second */
    if (d->notify != NULL && !uv_is_active((uv_handle_t *)&d->status_timer))
        uv_timer_start(&d->status_timer, on_status_timer, 500, 0);
    daemon_schedule_trim(d);
}

/* --- stopping ------------------------------------------------------------- */

static void
close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void
finish(struct daemon *d)
{
    for (size_t i = 0; i < d->n_accounts; i++)
        account_free(d->accounts[i]);
    d->n_accounts = 0;
    for (size_t i = 0; i < d->n_retired; i++)
        account_free(d->retired[i]);
    d->n_retired = 0;
    control_free(d->control);
    d->control = NULL;
    notify_free(d->notify);
    d->notify = NULL;
    transport_pool_free(d->pool);
    d->pool = NULL;
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->status_timer, NULL);
    uv_close((uv_handle_t *)&d->stop_timer, NULL);
    uv_close((uv_handle_t *)&d->trim_timer, NULL);
}

static void
on_stop_deadline(uv_timer_t *t)
{
    struct daemon *d = t->data;

    log_notice("stop: giving up on %zu connection%s still logging out",
               d->stop_pending, d->stop_pending == 1 ? "" : "s");
    finish(d);
}

static void
on_account_stopped(struct account *a, void *arg)
{
    struct daemon *d = arg;

    (void)a;
    if (--d->stop_pending == 0) {
        uv_timer_stop(&d->stop_timer);
        finish(d);
    }
}

static void
stop(struct daemon *d, int exit_code)
{
    if (d->stopping)
        return;
    d->stopping = true;
    d->exit_code = exit_code;
    notify_stopping(d->notify);
    daemon_cancel_explains(d);
    control_free(d->control);
    d->control = NULL;
    uv_timer_stop(&d->status_timer);
    d->stop_pending = d->n_accounts;
    if (d->stop_pending == 0) {
        finish(d);
        return;
    }
    uv_timer_start(&d->stop_timer, on_stop_deadline, STOP_GRACE_MS, 0);
    for (size_t i = 0; i < d->n_accounts; i++)
        account_stop(d->accounts[i], on_account_stopped, d);
}

static void
on_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;

    if (signum == SIGHUP) {
        struct config_diag diag;

        if (d->opts.once || d->stopping)
            return;
        config_diag_init(&diag);
        daemon_reload(d, &diag);
        config_diag_free(&diag);
        return;
    }
    if (d->stopping) {
        /* a second signal: stop waiting for LOGOUTs */
        uv_timer_stop(&d->stop_timer);
        finish(d);
        return;
    }
    log_info("%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    stop(d, d->opts.once ? CTL_EXIT_FAILED : 0);
}

/* --- once --------------------------------------------------------------- */

static void
print_summary_one(struct daemon *d, struct watcher *w, void *arg)
{
    struct watcher_status st;

    (void)d;
    (void)arg;
    watcher_status(w, &st);
    if (st.state == WATCHER_ERROR || st.last_error != NULL) {
        printf("%s/%s: failed: %s\n", st.account, st.mailbox,
               st.last_error ? st.last_error : "unknown error");
        return;
    }
    printf("%s/%s: ok, %u message%s, swept up to UID %u\n", st.account,
           st.mailbox, st.messages, st.messages == 1 ? "" : "s",
           st.uid_swept);
    for (size_t i = 0; i < st.n_counts; i++) {
        printf("  %s: %s%s %llu\n", st.counts[i].rule,
               st.counts[i].dry ? "would " : "", st.counts[i].action,
               (unsigned long long)st.counts[i].n);
    }
    for (size_t i = 0; i < st.n_notes; i++)
        printf("  note: %s\n", st.notes[i]);
}

static void
on_once_finished(uv_timer_t *t)
{
    struct daemon *d = t->data;

    daemon_for_each_watcher(d, print_summary_one, NULL);
    fflush(stdout);
    stop(d, d->once_failed ? CTL_EXIT_FAILED : 0);
}

static void
on_once_done(struct watcher *w, bool ok, void *arg)
{
    struct daemon *d = arg;

    (void)w;
    if (!ok)
        d->once_failed = true;
    /* stop from the loop, not from deep inside a sweep's callback (the
     * status timer is free: --once sends no STATUS=) */
    if (d->once_pending > 0 && --d->once_pending == 0)
        uv_timer_start(&d->status_timer, on_once_finished, 0, 0);
}

/* --- run -------------------------------------------------------------------- */

int
daemon_protect_secrets(void)
{
    struct rlimit none = {0, 0};
    int ret = 0;

    /* inline passwords, secret command output and login commands pass
     * through memory: a core file would keep them */
    if (setrlimit(RLIMIT_CORE, &none) < 0)
        ret = -errno;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 && ret == 0)
        ret = -errno;
    return ret;
}

/* A user's default socket lives in $XDG_RUNTIME_DIR/imapsweep, which
 * nobody else creates (the system's, /run/imapsweep, is systemd's
 * RuntimeDirectory=). Only that one level, private to the user. */
static int
make_user_socket_dir(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0700) == 0) {
        log_info("created %s", dir);
        return 0;
    }
    if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (errno == EEXIST)
        errno = ENOTDIR;
    log_error("control socket: cannot create %s: %s", dir, strerror(errno));
    return -1;
}

/* The default socket: CTL_SOCKET_NAME in ctl_socket_dir(); for a user,
 * its folder is made. NULL (and why in *err_r) if there is none. */
static char *
default_socket(bool make_dir, char **err_r)
{
    char *dir = ctl_socket_dir(geteuid(), false, err_r), *path;

    if (dir == NULL)
        return NULL;
    if (make_dir && geteuid() != 0 && make_user_socket_dir(dir) < 0) {
        *err_r = xasprintf("cannot create %s", dir);
        free(dir);
        return NULL;
    }
    path = ctl_instance_socket(dir, CTL_SOCKET_NAME);
    free(dir);
    return path;
}

static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warning("cannot raise the open-file limit: %s",
                        strerror(errno));
    }
}

int
daemon_run(const struct daemon_opts *opts)
{
    struct daemon *d = xcalloc(1, sizeof(*d));
    struct config_diag diag;
    /* before anything opens a descriptor: passed sockets start at fd 3 */
    int listen_fd = opts->once ? -1 : notify_listen_fd();
    int ret;

    d->opts = *opts;
    config_diag_init(&diag);
    if (config_load(opts->config_path, &d->config, &diag) < 0) {
        daemon_print_diag(&diag, stderr);
        config_diag_free(&diag);
        free(d);
        return CTL_EXIT_CONFIG;
    }
    daemon_apply_log_level(d);
    daemon_log_warnings(&diag);
    config_diag_free(&diag);
    raise_nofile();

    uv_loop_init(&d->loop);
    d->pool = transport_pool_new(&d->loop);
    d->gates = gate_set_new(GATE_DEFAULT_SLOTS);
    d->env.session.loop = &d->loop;
    d->env.session.pool = d->pool;
    d->env.session.gates = d->gates;
    d->env.cli_dry_run = opts->dry_run;
    d->env.stats = &d->stats;
    d->env.once = opts->once;
    d->env.changed = on_changed;
    d->env.once_done = on_once_done;
    d->env.arg = d;
    d->started = (uint64_t)time(NULL);
    d->generation = 1;
    uv_timer_init(&d->loop, &d->status_timer);
    d->status_timer.data = d;
    uv_timer_init(&d->loop, &d->stop_timer);
    d->stop_timer.data = d;
    uv_timer_init(&d->loop, &d->trim_timer);
    d->trim_timer.data = d;
    uv_signal_init(&d->loop, &d->sig_hup);
    uv_signal_init(&d->loop, &d->sig_term);
    uv_signal_init(&d->loop, &d->sig_int);
    d->sig_hup.data = d->sig_term.data = d->sig_int.data = d;
    uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);

    if (!opts->once) {
        int fd = listen_fd;
        const char *path;
        char *err = NULL;

        /* only made when it is the one used (and no socket was passed) */
        if (opts->control_socket == NULL &&
            d->config->daemon.control_socket == NULL && fd == -1) {
            d->default_socket = default_socket(true, &err);
            if (d->default_socket == NULL) {
                log_error("control socket: %s", err);
                free(err);
                d->exit_code = CTL_EXIT_FAILED;
                finish(d);
                uv_run(&d->loop, UV_RUN_DEFAULT);
                goto out;
            }
        } else {
            d->default_socket = default_socket(false, &err);
            free(err);
        }
        path = daemon_control_socket(d, d->config);
        d->notify = notify_new(&d->loop);
        if (fd < -1) {
            log_error("socket activation: %s",
                      fd == -2 ? "more than one socket passed; expected "
                                 "the control socket only"
                               : "the passed fd is not a listening Unix "
                                 "stream socket");
            d->exit_code = CTL_EXIT_FAILED;
            finish(d);
            uv_run(&d->loop, UV_RUN_DEFAULT);
            goto out;
        }
        if (fd >= 0 || (path != NULL && *path != '\0')) {
            struct control_settings cs = {
                .path = path,
                .fd = fd,
                .mode = d->config->daemon.control_mode,
                .group = d->config->daemon.control_group,
                .cmds = daemon_commands,
                .n_cmds = daemon_n_commands,
                .arg = d,
            };

            d->control = control_new(&d->loop, &cs, &err);
            if (d->control == NULL) {
                log_error("control socket%s: %s",
                          fd >= 0 ? " from systemd" : "", err);
                free(err);
                d->exit_code = CTL_EXIT_FAILED;
                finish(d);
                uv_run(&d->loop, UV_RUN_DEFAULT);
                goto out;
            }
            log_info("control socket %s", fd >= 0 ? "from systemd" : path);
        }
    }
    d->once_pending = opts->once ? config_count_mailboxes(d->config) : 0;
    for (size_t i = 0; i < d->config->n_accounts; i++)
        daemon_add_account(d, account_new(&d->env, d->config,
                                   &d->config->accounts[i]));
    if (!opts->once) {
        char *line = daemon_status_line(d);

        log_info("imapsweepd %s started: %zu account%s, %zu mailbox%s%s",
                 IMAPSWEEP_VERSION, d->config->n_accounts,
                 d->config->n_accounts == 1 ? "" : "s",
                 config_count_mailboxes(d->config),
                 config_count_mailboxes(d->config) == 1 ? "" : "es",
                 opts->dry_run || d->config->daemon.dry_run ? " (dry run)"
                                                            : "");
        notify_ready(d->notify, line);
        free(line);
    }
    uv_run(&d->loop, UV_RUN_DEFAULT);
    /* anything left (should be nothing) is closed before the loop goes */
    uv_walk(&d->loop, close_walk, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
out:
    ret = d->exit_code;
    gate_set_free(d->gates);
    if (uv_loop_close(&d->loop) != 0)
        log_debug("loop closed with handles left");
    config_unref(d->config);
    free(d->accounts);
    free(d->retired);
    free(d->default_socket);
    free(d);
    return ret;
}
