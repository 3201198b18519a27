#include "daemon.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "account.h"
#include "config.h"
#include "control.h"
#include "gate.h"
#include "notify.h"
#include "transport.h"
#include "util.h"
#include "watcher.h"

/* SIGTERM: commands in flight get this long before everything is cut. */
#define STOP_GRACE_MS 5000
/* After state changes settle, give freed memory back to the system. */
#define TRIM_DELAY_MS 2000
#define DEFAULT_CONTROL_SOCKET "/run/imapsweep/control.sock"

struct daemon {
    struct daemon_opts opts;
    uv_loop_t loop;
    struct transport_pool *pool;
    struct gate_set *gates;
    struct watcher_env env;
    struct config *config;
    struct account **accounts;
    size_t n_accounts, cap_accounts;
    struct account **retired;      /* stopping after a reload */
    size_t n_retired, cap_retired;
    struct control *control;
    struct notify *notify;
    uv_signal_t sig_hup, sig_term, sig_int;
    uv_timer_t status_timer;
    uv_timer_t stop_timer;
    uv_timer_t trim_timer;
    unsigned generation;
    uint64_t started;
    bool stopping;
    size_t stop_pending;
    int exit_code;
    size_t once_pending;
    bool once_failed;
};

/* --- configuration ---------------------------------------------------- */

static void
print_diag(const struct config_diag *diag, FILE *f)
{
    for (size_t i = 0; i < diag->n_errors; i++) {
        char *line = config_diag_format(&diag->errors[i]);

        fprintf(f, "%s\n", line);
        free(line);
    }
}

static void
log_warnings(const struct config_diag *diag)
{
    for (size_t i = 0; i < diag->n_warnings; i++) {
        char *line = config_diag_format(&diag->warnings[i]);

        log_warning("%s", line);
        free(line);
    }
}

int
daemon_check_config(const char *path)
{
    struct config_diag diag;
    struct config *c = NULL;
    int ret;

    config_diag_init(&diag);
    ret = config_load(path, &c, &diag);
    for (size_t i = 0; i < diag.n_warnings; i++) {
        char *line = config_diag_format(&diag.warnings[i]);

        fprintf(stderr, "warning: %s\n", line);
        free(line);
    }
    if (ret < 0) {
        print_diag(&diag, stderr);
        config_diag_free(&diag);
        return EXIT_CONFIG;
    }
    printf("ok: %zu account%s, %zu mailbox%s, %zu rule%s\n", c->n_accounts,
           c->n_accounts == 1 ? "" : "s", config_count_mailboxes(c),
           config_count_mailboxes(c) == 1 ? "" : "es", c->n_rules,
           c->n_rules == 1 ? "" : "s");
    config_unref(c);
    config_diag_free(&diag);
    return 0;
}

/* --- status -------------------------------------------------------------- */

static void
for_each_watcher(struct daemon *d,
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
static char *
status_line(struct daemon *d)
{
    static const char *const past[] = {"deleted", "trashed", "moved",
                                       "flagged"};
    struct totals t;
    struct buf b;

    memset(&t, 0, sizeof(t));
    for_each_watcher(d, add_totals, &t);
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
    line = status_line(d);
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

static void
schedule_trim(struct daemon *d)
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
    schedule_trim(d);
}

static char *
iso_time(uint64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char s[32];

    gmtime_r(&tt, &tm);
    strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return xstrdup(s);
}

static void
add_watcher_json(struct daemon *d, struct watcher *w, void *arg)
{
    json_t *list = arg;
    struct watcher_status st;
    json_t *o = json_object(), *caps = json_array(), *actions, *notes;
    char *copy, *tok, *save = NULL;
    uint64_t now = (uint64_t)time(NULL);

    (void)d;
    watcher_status(w, &st);
    json_object_set_new(o, "account", json_string(st.account));
    json_object_set_new(o, "mailbox", json_string(st.mailbox));
    json_object_set_new(o, "state", json_string(watcher_state_name(st.state)));
    json_object_set_new(o, "state_s", json_integer(
        (json_int_t)(now > st.state_since ? now - st.state_since : 0)));
    json_object_set_new(o, "shared", json_boolean(st.shared));
    copy = xstrdup(st.capabilities);
    for (tok = strtok_r(copy, " ", &save); tok != NULL;
         tok = strtok_r(NULL, " ", &save))
        json_array_append_new(caps, json_string(tok));
    free(copy);
    json_object_set_new(o, "capabilities", caps);
    json_object_set_new(o, "uidvalidity", json_integer(st.uidvalidity));
    json_object_set_new(o, "messages", json_integer(st.messages));
    json_object_set_new(o, "uid_swept", json_integer(st.uid_swept));
    actions = json_object();
    for (size_t i = 0; i < st.n_counts; i++) {
        const struct watcher_count *c = &st.counts[i];
        json_t *r = json_object_get(actions, c->rule);
        char *key = c->dry ? xasprintf("would_%s", c->action)
                           : xstrdup(c->action);

        if (r == NULL) {
            r = json_object();
            json_object_set_new(actions, c->rule, r);
        }
        json_object_set_new(r, key, json_integer((json_int_t)c->n));
        free(key);
    }
    json_object_set_new(o, "actions", actions);
    if (st.last_sweep != 0) {
        char *t = iso_time(st.last_sweep);

        json_object_set_new(o, "last_sweep", json_string(t));
        free(t);
    } else {
        json_object_set_new(o, "last_sweep", json_null());
    }
    json_object_set_new(o, "last_sweep_ms",
                        json_integer((json_int_t)st.last_sweep_ms));
    json_object_set_new(o, "reconnects", json_integer(st.reconnects));
    json_object_set_new(o, "last_error", st.last_error
                                             ? json_string(st.last_error)
                                             : json_null());
    notes = json_array();
    for (size_t i = 0; i < st.n_notes; i++)
        json_array_append_new(notes, json_string(st.notes[i]));
    json_object_set_new(o, "notes", notes);
    json_array_append_new(list, o);
}

static json_t *
cmd_status(void *arg, const char *const *args, size_t n)
{
    struct daemon *d = arg;
    json_t *o = json_object(), *list = json_array();

    (void)args;
    (void)n;
    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "version", json_string(IMAPSWEEP_VERSION));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "uptime_s", json_integer(
        (json_int_t)((uint64_t)time(NULL) - d->started)));
    json_object_set_new(o, "config", json_string(d->opts.config_path));
    json_object_set_new(o, "generation", json_integer(d->generation));
    json_object_set_new(o, "dry_run", json_boolean(d->opts.dry_run ||
                                                   d->config->daemon.dry_run));
    for_each_watcher(d, add_watcher_json, list);
    json_object_set_new(o, "watchers", list);
    /* the reply is a few hundred bytes per watcher in small blocks: with
     * 10,000 watchers one status doubled the resident size for good */
    schedule_trim(d);
    return o;
}

static json_t *
cmd_version(void *arg, const char *const *args, size_t n)
{
    (void)arg;
    (void)args;
    (void)n;
    return json_pack("{s:b, s:s}", "ok", 1, "version", IMAPSWEEP_VERSION);
}

static json_t *
cmd_sweep(void *arg, const char *const *args, size_t n)
{
    struct daemon *d = arg;
    json_t *swept = json_array(), *o;
    bool found = n == 0;

    for (size_t i = 0; i < d->n_accounts; i++) {
        struct account *a = d->accounts[i];

        if (n >= 1 && strcmp(args[0], account_name(a)) != 0)
            continue;
        if (!account_sweep_now(a, n >= 2 ? args[1] : NULL)) {
            char *msg = xasprintf("account %s watches no mailbox \"%s\"",
                                  args[0], args[1]);

            json_decref(swept);
            o = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
            free(msg);
            return o;
        }
        found = true;
        for (size_t k = 0; k < account_n_watchers(a); k++) {
            const char *mb = watcher_mailbox(account_watcher(a, k));

            if (n < 2 || strcmp(mb, args[1]) == 0)
                json_array_append_new(swept, json_pack("{s:s, s:s}",
                                                       "account",
                                                       account_name(a),
                                                       "mailbox", mb));
        }
    }
    if (!found) {
        char *msg = xasprintf("no account \"%s\"", args[0]);

        json_decref(swept);
        o = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
        free(msg);
        return o;
    }
    o = json_pack("{s:b, s:o}", "ok", 1, "swept", swept);
    return o;
}

/* --- accounts and reload ---------------------------------------------- */

static void
add_account(struct daemon *d, struct account *a)
{
    ARRAY_GROW(d->accounts, d->cap_accounts, d->n_accounts + 1);
    d->accounts[d->n_accounts++] = a;
}

static void
on_retired(struct account *a, void *arg)
{
    struct daemon *d = arg;

    for (size_t i = 0; i < d->n_retired; i++) {
        if (d->retired[i] == a) {
            d->retired[i] = d->retired[--d->n_retired];
            break;
        }
    }
    account_free(a);
}

static void
retire(struct daemon *d, struct account *a)
{
    ARRAY_GROW(d->retired, d->cap_retired, d->n_retired + 1);
    d->retired[d->n_retired++] = a;
    account_stop(a, on_retired, d);
}

static void
apply_log_level(struct daemon *d)
{
    log_set_level(d->opts.level_set ? d->opts.level
                                    : d->config->daemon.log_level);
}

/* The configured control socket path, the default when the file sets none
 * ("" disables). */
static const char *
control_path(const struct config *c)
{
    return c->daemon.control_socket != NULL ? c->daemon.control_socket
                                            : DEFAULT_CONTROL_SOCKET;
}

/* The transaction: the new config is complete and valid before anything
 * changes; then only the differences are applied. */
static int
reload(struct daemon *d, json_t **errors_r)
{
    struct config_diag diag;
    struct config *nc = NULL, *old = d->config;
    struct account **keep;
    size_t n_keep = 0;
    char *line;

    notify_reloading(d->notify);
    log_info("reloading %s", d->opts.config_path);
    config_diag_init(&diag);
    if (config_load(d->opts.config_path, &nc, &diag) < 0) {
        json_t *errs = json_array();

        for (size_t i = 0; i < diag.n_errors; i++) {
            char *e = config_diag_format(&diag.errors[i]);

            log_error("%s", e);
            json_array_append_new(errs, json_string(e));
            free(e);
        }
        log_error("reload failed: %zu error%s; still running the previous "
                  "configuration", diag.n_errors,
                  diag.n_errors == 1 ? "" : "s");
        config_diag_free(&diag);
        line = status_line(d);
        notify_ready(d->notify, line);
        free(line);
        *errors_r = errs;
        return -1;
    }
    log_warnings(&diag);
    config_diag_free(&diag);

    keep = xcalloc(nc->n_accounts ? nc->n_accounts : 1, sizeof(*keep));
    for (size_t i = 0; i < nc->n_accounts; i++) {
        const struct config_account *na = &nc->accounts[i];
        struct account *a = NULL;

        for (size_t k = 0; k < d->n_accounts; k++) {
            if (d->accounts[k] != NULL &&
                strcmp(account_name(d->accounts[k]), na->name) == 0) {
                a = d->accounts[k];
                d->accounts[k] = NULL;
                break;
            }
        }
        if (a != NULL) {
            const struct config_account *oa =
                config_find_account(old, na->name);

            if (oa != NULL && !config_account_conn_differs(oa, na)) {
                account_update(a, nc, na);
                keep[n_keep++] = a;
                continue;
            }
            log_info("%s: connection settings changed: reconnecting",
                     na->name);
            retire(d, a);
        }
        keep[n_keep++] = account_new(&d->env, nc, na);
    }
    for (size_t k = 0; k < d->n_accounts; k++) {
        if (d->accounts[k] != NULL) {
            log_info("%s: account removed", account_name(d->accounts[k]));
            retire(d, d->accounts[k]);
        }
    }
    free(d->accounts);
    d->accounts = keep;
    d->n_accounts = n_keep;
    d->cap_accounts = nc->n_accounts;
    if (strcmp(control_path(old), control_path(nc)) != 0 ||
        old->daemon.control_mode != nc->daemon.control_mode)
        log_notice("control socket settings changed: they apply at the "
                   "next restart");
    d->config = nc;
    config_unref(old);
    d->generation++;
    apply_log_level(d);
    log_info("reloaded (generation %u)", d->generation);
    line = status_line(d);
    notify_ready(d->notify, line);
    free(line);
    return 0;
}

static json_t *
cmd_reload(void *arg, const char *const *args, size_t n)
{
    struct daemon *d = arg;
    json_t *errors = NULL;

    (void)args;
    (void)n;
    if (reload(d, &errors) < 0) {
        char *msg = xasprintf("configuration has %zu error%s; the previous "
                              "one stays in force",
                              json_array_size(errors),
                              json_array_size(errors) == 1 ? "" : "s");
        json_t *o = json_pack("{s:b, s:s, s:o}", "ok", 0, "error", msg,
                              "errors", errors);

        free(msg);
        return o;
    }
    return json_pack("{s:b, s:i}", "ok", 1, "generation", d->generation);
}

static const struct control_cmd commands[] = {
    {"status", cmd_status, 0, 0},
    {"reload", cmd_reload, 0, 0},
    {"sweep", cmd_sweep, 0, 2},
    {"version", cmd_version, 0, 0},
};

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
        json_t *errors = NULL;

        if (d->opts.once || d->stopping)
            return;
        reload(d, &errors);
        json_decref(errors);
        return;
    }
    if (d->stopping) {
        /* a second signal: stop waiting for LOGOUTs */
        uv_timer_stop(&d->stop_timer);
        finish(d);
        return;
    }
    log_info("%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    stop(d, d->opts.once ? EXIT_RUNTIME : 0);
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

    for_each_watcher(d, print_summary_one, NULL);
    fflush(stdout);
    stop(d, d->once_failed ? EXIT_RUNTIME : 0);
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
        print_diag(&diag, stderr);
        config_diag_free(&diag);
        free(d);
        return EXIT_CONFIG;
    }
    apply_log_level(d);
    log_warnings(&diag);
    config_diag_free(&diag);
    raise_nofile();

    uv_loop_init(&d->loop);
    d->pool = transport_pool_new(&d->loop);
    d->gates = gate_set_new(GATE_DEFAULT_SLOTS);
    d->env.session.loop = &d->loop;
    d->env.session.pool = d->pool;
    d->env.session.gates = d->gates;
    d->env.cli_dry_run = opts->dry_run;
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
        const char *path = control_path(d->config);

        d->notify = notify_new(&d->loop);
        if (fd < -1) {
            log_error("socket activation: %s",
                      fd == -2 ? "more than one socket passed; expected "
                                 "the control socket only"
                               : "the passed fd is not a listening Unix "
                                 "stream socket");
            d->exit_code = EXIT_RUNTIME;
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
                .cmds = commands,
                .n_cmds = ARRAY_SIZE(commands),
                .arg = d,
            };
            char *err = NULL;

            d->control = control_new(&d->loop, &cs, &err);
            if (d->control == NULL) {
                log_error("control socket%s: %s",
                          fd >= 0 ? " from systemd" : "", err);
                free(err);
                d->exit_code = EXIT_RUNTIME;
                finish(d);
                uv_run(&d->loop, UV_RUN_DEFAULT);
                goto out;
            }
            log_info("control socket %s", fd >= 0 ? "from systemd" : path);
        }
    }
    d->once_pending = opts->once ? config_count_mailboxes(d->config) : 0;
    for (size_t i = 0; i < d->config->n_accounts; i++)
        add_account(d, account_new(&d->env, d->config,
                                   &d->config->accounts[i]));
    if (!opts->once) {
        char *line = status_line(d);

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
    free(d);
    return ret;
}
