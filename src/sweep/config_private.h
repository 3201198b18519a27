/* SPDX-License-Identifier: MIT */
/* config_private.h: what the files of the config loader share (config.c,
 * config_yaml.c, config_account.c, config_rule.c): the loader's state and
 * the typed YAML access of config_yaml.c. The only header with yaml.h. */
#ifndef IMAPSWEEP_CONFIG_PRIVATE_H
#define IMAPSWEEP_CONFIG_PRIVATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <yaml.h>

#include "buf.h"
#include "config.h"
#include "config_diag_private.h"
#include "util.h"

#define MAX_NAME_LEN 64
#define SHOW_SLOTS 4

/* Connection settings: indices into config_account.c's conn_fields. */
enum conn_key {
    CK_PORT,
    CK_TLS,
    CK_TLS_VERIFY,
    CK_CA_FILE,
    CK_AUTH,
    CK_EXPUNGE,
    CK_IDLE_REFRESH,
    CK_MAX_CONNECTIONS,
    CK_POLL_INTERVAL,
    CK_FULL_SWEEP_INTERVAL,
    CK_COMMAND_TIMEOUT,
    CK_CONNECT_TIMEOUT,
    CK_RECONNECT_MIN,
    CK_RECONNECT_MAX,
    CK_TRASH_MAILBOX,
    CK_NOTIFY,
    CK_ON_RENAME,
    CK_COUNT
};

/* Connection settings as written in `defaults` or in one account. */
struct conn {
    bool set[CK_COUNT];
    bool null[CK_COUNT];        /* given as ~ (or invalid): built-in default */
    unsigned line[CK_COUNT], col[CK_COUNT];
    uint64_t num[CK_COUNT];
    char *str[CK_COUNT];
};

struct pos {
    unsigned line, col;
};

/* What the loader remembers of a rule beyond struct rule. */
struct rule_info {
    struct pos name_pos;
    bool has_name;              /* a usable name (for account lists) */
    struct pos *mb_pos;         /* positions of the mailboxes items */
};

struct loader {
    const char *file;
    const char *data;
    size_t len;
    yaml_document_t *doc;
    struct config_diag *diag;
    struct diag_set seen;
    const char **unknown_where; /* per node: reported as an unknown key */
    size_t first_error;
    size_t visits, max_visits;
    uint64_t regex_bytes;       /* regex pattern bytes compiled so far */
    size_t regex_count;         /* and patterns */
    bool aborted;
    bool check_mode;            /* config_load: warn about readable files */
    mode_t mode;
    struct config *c;
    struct conn defaults;
    struct rule_info *rinfo;    /* parallel to c->rules */
    struct pos *apos;           /* account name positions */
    struct buf show[SHOW_SLOTS];
    unsigned show_next;
};

/* One key/value pair of a mapping whose key is usable text. */
struct entry {
    const char *key;
    yaml_node_t *knode, *vnode;
    size_t idx;
    bool dup;
};

/* --- config_yaml.c ---------------------------------------------------------
 * Messages go to the load's diagnostics at a position or a node. Getters
 * return 0 (value stored), 1 (null: the caller's default) or -1
 * (reported). `what` names the field in messages. */

struct pos config_node_pos(const yaml_node_t *n);
void config_error_pos(struct loader *l, unsigned line, unsigned col,
                      const char *fmt, ...) PRINTF_LIKE(4, 5);
void config_error_at(struct loader *l, const yaml_node_t *n, const char *fmt,
                     ...) PRINTF_LIKE(3, 4);
void config_warning_pos(struct loader *l, unsigned line, unsigned col,
                        const char *fmt, ...) PRINTF_LIKE(4, 5);
/* User text for a message: quoted characters escaped, long text cut. The
 * result lives until SHOW_SLOTS more calls. */
const char *config_show(struct loader *l, const char *s);
/* The node with this id, counted against the visit limit (aliases). NULL
 * once the load is aborted, for no such node, or past the limit (reported;
 * the load is then aborted). */
yaml_node_t *config_visit(struct loader *l, int id);
/* A YAML null: tagged !!null, or a plain ~, null, Null, NULL or nothing. */
bool config_is_null(const yaml_node_t *n);
/* "a mapping", "a sequence", "null" or "a string", for messages. */
const char *config_node_kind(const yaml_node_t *n);
/* Report e's key as unknown `where` ("in daemon"), suggesting the closest
 * of names[] (NULL entries skipped). */
void config_unknown_key(struct loader *l, const struct entry *e,
                        const char *where, const char *const *names,
                        size_t n_names);
/* The pairs of a mapping, in order. Keys that are not text and repeated
 * keys are reported and left out. Caller frees *out. */
size_t config_map_entries(struct loader *l, const yaml_node_t *map,
                          struct entry **out);

/* Text (valid UTF-8, no NUL); *text_r points into the document. */
int config_get_text(struct loader *l, const char *what, const char *expect,
                    const yaml_node_t *v, const char **text_r);
/* Like config_get_text, but null is an error too. */
int config_need_text(struct loader *l, const char *what, const char *expect,
                     const yaml_node_t *v, const char **text_r);
enum {
    STR_NULLABLE = 1 << 0,
    STR_EMPTY_OK = 1 << 1,
};
/* A copy of the text in *out (caller frees). Null and "" are errors unless
 * flags has STR_NULLABLE (null returns 1) or STR_EMPTY_OK. */
int config_get_string(struct loader *l, const char *what, const yaml_node_t *v,
                      unsigned flags, char **out);
int config_get_bool(struct loader *l, const char *what, const yaml_node_t *v,
                    bool *out);
/* The index of v in the NULL-terminated words; expect lists them. */
int config_get_word(struct loader *l, const char *what,
                    const char *const *words, const char *expect,
                    const yaml_node_t *v, unsigned *out);
/* Integers and durations (seconds) within min..max, described by range. */
int config_get_uint(struct loader *l, const char *what, const yaml_node_t *v,
                    uint64_t min, uint64_t max, const char *range,
                    uint64_t *out);
/* A number without a unit is refused with "did you mean N<unit_hint>?". */
int config_get_duration(struct loader *l, const char *what,
                        const yaml_node_t *v, uint64_t min, uint64_t max,
                        const char *range, char unit_hint, uint64_t *out);
/* A size in bytes. */
int config_get_size(struct loader *l, const char *what, const yaml_node_t *v,
                    uint64_t *out);
/* A mailbox name (rule_check_mailbox()); caller frees *out. */
int config_get_mailbox(struct loader *l, const char *what,
                       const yaml_node_t *v, bool nullable, char **out);
/* A mailbox name or a sequence of them, without repeats (INBOX in any case
 * stored as INBOX); an empty sequence is an error. Positions go to *pos_r
 * when asked for (caller frees). With idle_r (an account's list), an item
 * may also be a mapping {name: X, idle: true|false}; *idle_r gets each
 * mailbox's setting (INBOX yes unless told; caller frees). */
int config_get_mailbox_list(struct loader *l, const yaml_node_t *v,
                            char ***list_r, size_t *n_r, struct pos **pos_r,
                            enum config_idle **idle_r);
/* An account or rule name: 1 to MAX_NAME_LEN of [A-Za-z0-9._-]. */
bool config_valid_name(const char *s);
/* Mailbox names equal, INBOX in any case. */
bool config_mailbox_eq(const char *a, const char *b);

/* --- config_account.c ---------------------------------------------------- */

/* Free the strings of a connection settings record. */
void config_conn_free(struct conn *cn);
/* The `defaults` section, into l->defaults. */
void config_parse_defaults(struct loader *l, const yaml_node_t *map);
/* The `accounts` section; rules must be parsed already. */
void config_parse_accounts(struct loader *l, const yaml_node_t *seq);
/* Warn about rule mailboxes that no account using the rule watches. */
void config_check_rule_mailboxes(struct loader *l);

/* --- config_rule.c ------------------------------------------------------- */

/* The `rules` section, into l->c->rules and l->rinfo. */
void config_parse_rules(struct loader *l, const yaml_node_t *seq);

#endif
