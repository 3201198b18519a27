/* SPDX-License-Identifier: MIT */
/* ctl_proto: the protocol of the control socket, shared by imapsweepd and
 * imapsweepctl; the one place that knows its JSON. A request is one line:
 * words ("sweep work INBOX") or a JSON object {"cmd": …, "args": […]}. A
 * reply is one line holding one JSON object with "ok" (true or false) and,
 * when false, "error". Also the defaults and exit statuses both programs
 * use. All text returned is allocated; the caller frees it. */
#ifndef IMAPSWEEP_CTL_PROTO_H
#define IMAPSWEEP_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct config_diag;
struct explain_report;
struct watcher_stats;
struct watcher_status;

/* --- default paths -------------------------------------------------------
 * Root uses the system's; anyone else the XDG base directories, so that a
 * user's own daemon and imapsweepctl agree without options. */

/* make install compiles SYSCONFDIR in */
#ifndef IMAPSWEEP_SYSCONFDIR
#define IMAPSWEEP_SYSCONFDIR "/etc"
#endif
#define CTL_SYSTEM_CONFIG IMAPSWEEP_SYSCONFDIR "/imapsweep/imapsweep.yaml"
#define CTL_SYSTEM_SOCKET_DIR "/run/imapsweep"
#define CTL_SOCKET_NAME "control"      /* CTL_SYSTEM_SOCKET_DIR/control.sock */

/* The configuration file read when none is named, for a process whose
 * effective uid is euid: CTL_SYSTEM_CONFIG for root, otherwise
 * $XDG_CONFIG_HOME/imapsweep/imapsweep.yaml, or $HOME/.config/... when
 * XDG_CONFIG_HOME is unset, empty or not absolute (the XDG rule), HOME
 * falling back to the password database. Allocated; NULL with *err_r
 * (caller frees) when there is no home directory to be found. */
char *ctl_default_config(uid_t euid, char **err_r);
/* The folder of the control sockets: CTL_SYSTEM_SOCKET_DIR for root or
 * when system is true, otherwise $XDG_RUNTIME_DIR/imapsweep. Allocated;
 * NULL with *err_r when XDG_RUNTIME_DIR is unset or not absolute. */
char *ctl_socket_dir(uid_t euid, bool system, char **err_r);
/* DIR/NAME.sock: the socket of instance NAME (CTL_SOCKET_NAME: the
 * default one). NULL if NAME is not an instance name: 1 to 64 of
 * A-Z a-z 0-9 . _ - @ : not starting with a dot. */
char *ctl_instance_socket(const char *dir, const char *name);

/* Exit statuses of imapsweepd and imapsweepctl (sysexits.h values). */
#define CTL_EXIT_FAILED 1       /* imapsweepd: failed while running;
                                 * imapsweepctl: the daemon said no */
#define CTL_EXIT_USAGE 64       /* bad command line */
#define CTL_EXIT_UNAVAILABLE 69 /* imapsweepctl: no daemon answered */
#define CTL_EXIT_CONFIG 78      /* imapsweepd: the configuration is invalid */
/* imapsweepctl status --check: the monitoring plugins' convention
 * (Nagios, Icinga, monit, Sensu) */
#define CTL_CHECK_OK 0          /* every watcher healthy */
#define CTL_CHECK_WARNING 1     /* some in backoff or error, or failing */
#define CTL_CHECK_CRITICAL 2    /* no daemon answered, or it refused */

/* --- requests ------------------------------------------------------------ */

/* Split a request line into words: double quotes group words, backslash
 * escapes the next character; or a JSON object {"cmd": …, "args": […]}
 * (strings only). Returns the number of words (0 for an empty line) or -1
 * if malformed; the words are allocated in *words_r, NULL-terminated (free
 * each and the array). */
int ctl_request_split(const char *line, size_t len, char ***words_r);
/* The JSON request line for cmd and its args (no newline). NULL if cmd or
 * any argument is not UTF-8. */
char *ctl_request_encode(const char *cmd, const char *const *args,
                         size_t n_args);

/* --- replies (the daemon's side) ----------------------------------------- */

/* The daemon as `status` shows it. */
struct ctl_daemon_info {
    const char *version;
    pid_t pid;
    uint64_t uptime_s;
    const char *config;        /* the configuration file */
    unsigned generation;       /* 1, then one more per reload */
    bool dry_run;
    /* sweep durations ("sweep_seconds"), or NULL to leave them out */
    const struct watcher_stats *stats;
};

/* A reply with a list, built one entry at a time. */
struct ctl_reply;

/* `status`: the daemon, then one entry per watcher. */
struct ctl_reply *ctl_reply_status_new(const struct ctl_daemon_info *info);
/* Add a watcher: its fields are copied (st may go after this). */
void ctl_reply_status_add(struct ctl_reply *r,
                          const struct watcher_status *st);
/* `sweep`: the mailboxes a full sweep was started for. */
struct ctl_reply *ctl_reply_swept_new(void);
void ctl_reply_swept_add(struct ctl_reply *r, const char *account,
                         const char *mailbox);
/* The reply line (no newline); r is freed. */
char *ctl_reply_finish(struct ctl_reply *r);
/* Drop a reply not sent. NULL-safe. */
void ctl_reply_free(struct ctl_reply *r);

/* {"ok": false, "error": msg} */
char *ctl_reply_error(const char *msg);
/* `version`: {"ok": true, "version": …} */
char *ctl_reply_version(const char *version);
/* `reload` done: {"ok": true, "generation": n} */
char *ctl_reply_reloaded(unsigned generation);
/* `reload` refused: the error count and, in "errors", each of diag's
 * errors as FILE:LINE:COLUMN: message. */
char *ctl_reply_reload_failed(const struct config_diag *diag);
/* `explain ACCOUNT MAILBOX UID`: {"ok": true, "explain": {...}} with the
 * report's every member, or {"ok": false, "error": …} when r->error. */
char *ctl_reply_explain(const struct explain_report *r);

/* --- replies (imapsweepctl's side) --------------------------------------- */

/* One rule's count of one kind of action ("delete", or "would_delete" in a
 * dry run). */
struct ctl_result_count {
    char *rule;
    char *kind;
    long long n;
};

/* One watcher of a `status` reply. Strings are NULL when absent. */
struct ctl_result_watcher {
    char *account;
    char *mailbox;
    char *state;
    long long state_s;         /* seconds in that state */
    long long messages;
    struct ctl_result_count *counts;
    size_t n_counts;
    char *last_sweep;          /* UTC, ISO 8601; NULL: never */
    long long last_sweep_ms;
    long long last_sweep_unix; /* last_sweep in seconds since the epoch */
    long long reconnects;
    bool shared;
    char *watched_by;          /* idle, notify or poll (NULL: an older
                                * daemon) */
    long long last_event_s;    /* age of the last event; -1: none */
    char *last_error;          /* NULL when fine */
    char **notes;
    size_t n_notes;
};

/* A histogram of sweep durations: n_bounds finite upper bounds (seconds),
 * the cumulative count at or under each, and the total (the "+Inf"
 * bucket). */
struct ctl_result_hist {
    long long count;
    double sum;                /* seconds */
    long long *le;             /* n_bounds cumulative counts */
};

/* One mailbox of a `sweep` reply. */
struct ctl_result_swept {
    char *account;
    char *mailbox;
};

/* A reply read back: what imapsweepctl shows of it. Members a reply does
 * not have are NULL, 0 or empty. */
struct ctl_result {
    bool ok;
    char *error;               /* when not ok */
    char **errors;             /* reload refused: the configuration's */
    size_t n_errors;
    char *version;             /* status, version */
    long long pid;             /* status */
    long long uptime_s;        /* status */
    long long generation;      /* status, reload */
    bool dry_run;              /* status */
    char *config;              /* status */
    /* status: sweep durations, when the reply has them (has_hist) */
    bool has_hist;
    double *bounds;            /* n_bounds upper bounds, seconds */
    size_t n_bounds;
    struct ctl_result_hist full, incremental;
    struct ctl_result_watcher *watchers;
    size_t n_watchers;
    struct ctl_result_swept *swept;
    size_t n_swept;
    struct explain_report *explain;   /* explain; NULL otherwise */
};

/* Whether `status --check` counts a watcher as healthy: not in backoff
 * or error, and no last error (a failed sweep, a refused action). */
bool ctl_watcher_healthy(const struct ctl_result_watcher *w);

/* Read a reply line. Returns 0 and *result_r (free with
 * ctl_result_free), or -1 if it is not a JSON object and *err_r says why
 * (caller frees). */
int ctl_result_parse(const char *line, size_t len,
                     struct ctl_result **result_r, char **err_r);
/* NULL-safe. */
void ctl_result_free(struct ctl_result *r);

#endif
