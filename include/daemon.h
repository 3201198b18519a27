/* SPDX-License-Identifier: MIT */
/* daemon: wires everything together. It owns the loop, the signal handlers
 * (SIGHUP reloads; SIGTERM and SIGINT stop), the accounts, the reload
 * transaction (a new config is built and validated first; only a valid one
 * replaces the old, and only what changed is restarted), the control socket
 * commands, systemd notifications and the one-shot mode. */
#ifndef IMAPSWEEP_DAEMON_H
#define IMAPSWEEP_DAEMON_H

#include <stdbool.h>

#include "log.h"

struct daemon_opts {
    const char *config_path;
    /* --control-socket: overrides daemon.control_socket ("" disables the
     * socket); NULL when not given */
    const char *control_socket;
    bool once;
    bool dry_run;
    bool level_set;            /* --log-level given: overrides the config */
    enum log_level level;
};

/* Keep secrets out of core dumps, first thing at start: no core file
 * (RLIMIT_CORE 0, soft and hard) and the process not dumpable
 * (PR_SET_DUMPABLE 0, which also keeps debuggers of other non-root users
 * out and makes /proc/PID readable by root only). Returns 0, or a negative
 * errno when either could not be set (the caller warns and goes on). */
int daemon_protect_secrets(void);
/* --check-config: print the summary and each rule in words (stdout), or
 * every error (stderr); warnings go to stderr. With environment, also what
 * the file names (config_check_environment()). Returns 0 or
 * CTL_EXIT_CONFIG. */
int daemon_check_config(const char *path, bool environment);
/* --explain ACCOUNT MAILBOX UID without a running daemon: load the
 * configuration, explain (read-only, over a session of its own), print the
 * report (stdout, or stderr when it could not be had). Returns 0,
 * CTL_EXIT_FAILED, CTL_EXIT_USAGE (unknown account, bad UID) or
 * CTL_EXIT_CONFIG. */
int daemon_explain(const struct daemon_opts *opts, const char *account,
                   const char *mailbox, const char *uid);
/* Run until stopped (or, with once, until every mailbox was swept).
 * Returns the process exit status: 0, CTL_EXIT_FAILED or CTL_EXIT_CONFIG
 * (ctl_proto.h). */
int daemon_run(const struct daemon_opts *opts);

#endif
