/* SPDX-License-Identifier: MIT */
/* daemon_private: what the daemon's files share. daemon.c runs the loop,
 * the signals, stopping and --once; daemon_reload.c loads configurations
 * (--check-config, the reload transaction); daemon_control.c answers the
 * control socket's commands. */
#ifndef IMAPSWEEP_DAEMON_PRIVATE_H
#define IMAPSWEEP_DAEMON_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "control.h"
#include "daemon.h"
#include "watcher.h"

struct account;
struct config;
struct config_diag;
struct daemon_explain;
struct gate_set;
struct notify;
struct transport_pool;

struct daemon {
    struct daemon_opts opts;
    /* the control socket when neither --control-socket nor the
     * configuration names one (ctl_socket_dir); NULL when there is none
     * to be had (no XDG_RUNTIME_DIR) */
    char *default_socket;
    struct watcher_stats stats;    /* every watcher's sweeps, since start */
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
    struct daemon_explain *explains;   /* answering the control socket */
};
/* --- daemon.c ------------------------------------------------------------ */

/* Call fn for every watcher of every current account. */
void daemon_for_each_watcher(struct daemon *d,
                             void (*fn)(struct daemon *, struct watcher *,
                                        void *),
                             void *arg);
/* The STATUS= line: "watching 12/12 mailboxes, 340 deleted, 2 moved"
 * (caller frees). */
char *daemon_status_line(struct daemon *d);
/* Give freed memory back to the system a little later. */
void daemon_schedule_trim(struct daemon *d);

/* --- daemon_reload.c ----------------------------------------------------- */

/* Every error of diag, one line each. */
void daemon_print_diag(const struct config_diag *diag, FILE *f);
/* Log every warning of diag. */
void daemon_log_warnings(const struct config_diag *diag);
void daemon_add_account(struct daemon *d, struct account *a);
/* --log-level if given, else the configuration's. */
void daemon_apply_log_level(struct daemon *d);
/* The control socket under configuration c: --control-socket if given,
 * else what c names, else d->default_socket; "" when disabled, NULL when
 * the default is wanted but there is none. */
const char *daemon_control_socket(const struct daemon *d,
                                  const struct config *c);
/* The transaction: load d's configuration file again; if valid, switch to
 * it, restarting only what changed. Returns 0, or -1 with the errors in
 * diag (the caller initialises and frees diag; warnings go there too). */
int daemon_reload(struct daemon *d, struct config_diag *diag);

/* --- daemon_control.c ---------------------------------------------------- */

/* The control socket's commands; their arg is the daemon. */
extern const struct control_cmd daemon_commands[];
extern const size_t daemon_n_commands;

/* --- daemon_explain.c ---------------------------------------------------- */

/* `explain ACCOUNT MAILBOX UID`: answered when the explanation is done,
 * over a session of its own (the watchers are not disturbed). */
char *daemon_cmd_explain(void *arg, const char *const *args, size_t n,
                         struct control_req *req);
/* Stopping: every explanation still running ends, its client told so. */
void daemon_cancel_explains(struct daemon *d);

#endif
