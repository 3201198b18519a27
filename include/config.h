/* SPDX-License-Identifier: MIT */
/* config: load the YAML configuration into an immutable,
 * validated model. Never logs: every problem becomes a diagnostic with
 * FILE:LINE:COLUMN (both from 1). The loaded model is reference-counted so a
 * sweep that started under an old config can finish with it after a reload.
 *
 * Secrets are not resolved here: an account names its secret source and the
 * secret module reads it when a connection authenticates. Only an inline
 * `password:` is kept (it is part of the file); it is wiped on free. */
#ifndef IMAPSWEEP_CONFIG_H
#define IMAPSWEEP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"
#include "rule.h"

enum config_tls {
    CONFIG_TLS_IMPLICIT,
    CONFIG_TLS_STARTTLS,
    CONFIG_TLS_NONE,
};

enum config_auth {
    CONFIG_AUTH_AUTO,
    CONFIG_AUTH_LOGIN,       /* the IMAP LOGIN command */
    CONFIG_AUTH_PLAIN,       /* AUTHENTICATE PLAIN */
    CONFIG_AUTH_XOAUTH2,
    CONFIG_AUTH_OAUTHBEARER,
};

enum config_expunge {
    CONFIG_EXPUNGE_UID,      /* UID EXPUNGE on exactly our set (UIDPLUS) */
    CONFIG_EXPUNGE_MAILBOX,  /* plain EXPUNGE allowed */
    CONFIG_EXPUNGE_NONE,     /* only flag \Deleted */
};

enum config_audit {
    CONFIG_AUDIT_MESSAGES,   /* one line per acted-on message */
    CONFIG_AUDIT_COUNTS,     /* one line per rule per sweep */
};

enum config_secret_kind {
    CONFIG_SECRET_NONE,      /* only valid with a tunnel (PREAUTH) */
    CONFIG_SECRET_FILE,      /* password_file: path */
    CONFIG_SECRET_COMMAND,   /* password_command: shell command */
    CONFIG_SECRET_CREDENTIAL,/* password_credential: $CREDENTIALS_DIRECTORY/x */
    CONFIG_SECRET_ENV,       /* password_env: variable name */
    CONFIG_SECRET_INLINE,    /* password: the secret itself */
    CONFIG_SECRET_TOKEN_COMMAND, /* token_command: OAuth access token */
};

/* notify: when the account's shared connection uses NOTIFY (RFC 5465) */
enum config_notify {
    CONFIG_NOTIFY_AUTO,      /* when the server lists NOTIFY after login */
    CONFIG_NOTIFY_ON,        /* required: without it the account stops */
    CONFIG_NOTIFY_OFF,       /* never: poll with STATUS */
};

/* on_rename: a watched mailbox renamed on the server (a NOTIFY event) */
enum config_on_rename {
    CONFIG_ON_RENAME_STOP,   /* report it and stop watching it */
    CONFIG_ON_RENAME_FOLLOW, /* report it and watch the new name */
};

/* A mailbox's `idle`: who gets one of the account's IDLE connections. */
enum config_idle {
    CONFIG_IDLE_AUTO,        /* not given: in order, as the budget allows */
    CONFIG_IDLE_YES,         /* first in line (INBOX unless told) */
    CONFIG_IDLE_NO,          /* never: NOTIFY or polling covers it */
};

struct config_secret {
    enum config_secret_kind kind;
    char *value;             /* path, command, name, variable or password */
    unsigned line, col;      /* where the value is written */
};

struct config_account {
    char *name;
    unsigned line, col;
    char *host;              /* NULL only with a tunnel */
    uint16_t port;           /* 993 for implicit TLS, else 143, unless set */
    enum config_tls tls;
    bool tls_verify;
    char *ca_file;           /* NULL: the system store */
    enum config_auth auth;
    enum config_expunge expunge;
    char *user;              /* NULL only with a tunnel */
    struct config_secret secret;
    char *tunnel;            /* shell command, or NULL */
    char *trash_mailbox;     /* NULL: SPECIAL-USE \Trash */
    uint64_t idle_refresh;   /* durations in seconds */
    uint64_t poll_interval;
    uint64_t full_sweep_interval;
    uint64_t command_timeout;
    uint64_t connect_timeout;
    uint64_t reconnect_min;
    uint64_t reconnect_max;
    unsigned max_connections;
    enum config_notify notify;
    enum config_on_rename on_rename;
    char **mailboxes;        /* watched, in order, no duplicates */
    enum config_idle *mailbox_idle; /* parallel to mailboxes */
    size_t n_mailboxes;
    size_t *rules;           /* indices into config->rules, ascending */
    size_t n_rules;
};

struct config_daemon {
    char *control_socket;    /* NULL: not set (the service picks the path);
                              * "" disables */
    mode_t control_mode;
    char *control_group;     /* NULL: none */
    enum log_level log_level;
    bool dry_run;
    enum config_audit audit;
};

struct config {
    unsigned refs;
    char *path;
    struct config_daemon daemon;
    struct config_account *accounts;
    size_t n_accounts;
    struct rule **rules;     /* in file order */
    size_t n_rules;
};

/* One diagnostic: "FILE:LINE:COLUMN: message". */
struct config_diag_entry {
    char *file;
    unsigned line, col;
    char *msg;
};

struct config_diag {
    struct config_diag_entry *errors;
    size_t n_errors, cap_errors;
    struct config_diag_entry *warnings;
    size_t n_warnings, cap_warnings;
};

void config_diag_init(struct config_diag *d);
void config_diag_free(struct config_diag *d);
/* "FILE:LINE:COLUMN: message" (caller frees). */
char *config_diag_format(const struct config_diag_entry *e);

/* Load and validate path. Returns 0 and a config with one reference, or
 * -EINVAL with every error found in diag (an unreadable file is an error
 * at 0:0 — reported as FILE:1:1). Warnings (e.g. an inline password in a
 * group-readable file) are added to diag in both cases. */
int config_load(const char *path, struct config **config_r,
                struct config_diag *diag);
/* The same for a buffer; `name` is used in diagnostics. No file checks
 * (permissions) are made. */
int config_load_buffer(const char *name, const char *data, size_t len,
                       struct config **config_r, struct config_diag *diag);

/* --check-config's look beyond the file (config_check.c): every
 * password_file exists and can be read (errors), is not readable by others,
 * and, when run as root (the system unit's case), is not under /home, /root
 * or /run/user, which the unit hides (ProtectHome=yes), and can be read by
 * the service's user "imapsweep" (warnings); with $CREDENTIALS_DIRECTORY
 * set, every password_credential exists there (errors). Adds to diag;
 * returns the number of errors added. */
size_t config_check_environment(const struct config *c,
                                struct config_diag *diag);
/* One line per rule for --check-config: "rule cron-noise: delete messages
 * whose From contains \"Cron Daemon\" in work/INBOX, home/INBOX"
 * (caller frees). */
char *config_rule_summary(const struct config *c, size_t rule_index);

struct config *config_ref(struct config *c);
/* Drop a reference; frees at zero, wiping inline passwords. NULL-safe. */
void config_unref(struct config *c);

/* Lookups; NULL when absent. */
const struct config_account *config_find_account(const struct config *c,
                                                 const char *name);
const struct rule *config_find_rule(const struct config *c, const char *name);
/* Number of watched mailboxes over all accounts. */
size_t config_count_mailboxes(const struct config *c);

/* True if two accounts differ in anything that needs a new connection
 * (host, port, TLS, auth, user, secret source, tunnel, timeouts, …). */
bool config_account_conn_differs(const struct config_account *a,
                                 const struct config_account *b);

const char *config_tls_name(enum config_tls t);
const char *config_auth_name(enum config_auth a);
const char *config_expunge_name(enum config_expunge e);
const char *config_notify_name(enum config_notify n);

#endif
