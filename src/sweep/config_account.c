/* SPDX-License-Identifier: MIT */
/* config_account: accounts and their connection settings: the settings
 * table with built-in defaults, the `defaults` section, the merge (account,
 * else defaults, else built in), secret sources, account rule lists, and
 * the names of the enums those settings take. */
#include "config_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "imap_conn.h"
#include "units.h"
#include "util.h"

enum field_type {
    FT_INT,
    FT_DURATION,
    FT_BOOL,
    FT_WORD,
    FT_PATH,
    FT_MAILBOX,
};

struct conn_field {
    const char *name;
    enum field_type type;
    uint64_t min, max;          /* FT_INT, FT_DURATION */
    const char *range;          /* shown in range errors */
    const char *const *words;   /* FT_WORD, NULL-terminated, enum order */
    const char *expect;         /* FT_WORD: the allowed words */
    uint64_t def;               /* built-in default */
};

static const char *const tls_words[] = {"implicit", "starttls", "none",
                                        NULL};
static const char *const auth_words[] = {"auto", "login", "plain",
                                         "xoauth2", "oauthbearer", NULL};
static const char *const expunge_words[] = {"uid", "mailbox", "none", NULL};
static const char *const notify_words[] = {"auto", "on", "off", NULL};
static const char *const on_rename_words[] = {"stop", "follow", NULL};

static const struct conn_field conn_fields[CK_COUNT] = {
    [CK_PORT] = {.name = "port", .type = FT_INT, .min = 1, .max = 65535,
                 .range = "1-65535"},
    [CK_TLS] = {.name = "tls", .type = FT_WORD, .words = tls_words,
                .expect = "implicit, starttls or none",
                .def = CONFIG_TLS_IMPLICIT},
    [CK_TLS_VERIFY] = {.name = "tls_verify", .type = FT_BOOL, .def = 1},
    [CK_CA_FILE] = {.name = "ca_file", .type = FT_PATH},
    [CK_AUTH] = {.name = "auth", .type = FT_WORD, .words = auth_words,
                 .expect = "auto, login, plain, xoauth2 or oauthbearer",
                 .def = CONFIG_AUTH_AUTO},
    [CK_EXPUNGE] = {.name = "expunge", .type = FT_WORD,
                    .words = expunge_words, .expect = "uid, mailbox or none",
                    .def = CONFIG_EXPUNGE_UID},
    /* RFC 2177: servers may drop an IDLE after 30 minutes */
    [CK_IDLE_REFRESH] = {.name = "idle_refresh", .type = FT_DURATION,
                         .min = 1, .max = 29 * 60, .range = "1s-29m",
                         .def = IMAP_CONN_DEFAULT_IDLE_REFRESH_S},
    [CK_MAX_CONNECTIONS] = {.name = "max_connections", .type = FT_INT,
                            .min = 1, .max = 1000, .range = "1-1000",
                            .def = 8},
    [CK_POLL_INTERVAL] = {.name = "poll_interval", .type = FT_DURATION,
                          .min = 1, .max = UNITS_DURATION_MAX,
                          .range = "at least 1s", .def = 5 * 60},
    [CK_FULL_SWEEP_INTERVAL] = {.name = "full_sweep_interval",
                                .type = FT_DURATION, .min = 1,
                                .max = UNITS_DURATION_MAX,
                                .range = "at least 1s", .def = 3600},
    [CK_COMMAND_TIMEOUT] = {.name = "command_timeout", .type = FT_DURATION,
                            .min = 1, .max = UNITS_DURATION_MAX,
                            .range = "at least 1s",
                            .def = IMAP_CONN_DEFAULT_COMMAND_TIMEOUT_S},
    [CK_CONNECT_TIMEOUT] = {.name = "connect_timeout", .type = FT_DURATION,
                            .min = 1, .max = UNITS_DURATION_MAX,
                            .range = "at least 1s", .def = 30},
    [CK_RECONNECT_MIN] = {.name = "reconnect_min", .type = FT_DURATION,
                          .min = 1, .max = UNITS_DURATION_MAX,
                          .range = "at least 1s", .def = 1},
    [CK_RECONNECT_MAX] = {.name = "reconnect_max", .type = FT_DURATION,
                          .min = 1, .max = 86400, .range = "1s-1d",
                          .def = 5 * 60},
    [CK_TRASH_MAILBOX] = {.name = "trash_mailbox", .type = FT_MAILBOX},
    [CK_NOTIFY] = {.name = "notify", .type = FT_WORD, .words = notify_words,
                   .expect = "auto, on or off", .def = CONFIG_NOTIFY_AUTO},
    [CK_ON_RENAME] = {.name = "on_rename", .type = FT_WORD,
                      .words = on_rename_words, .expect = "stop or follow",
                      .def = CONFIG_ON_RENAME_STOP},
};

/* Secret keys, indexed by enum config_secret_kind. */
static const char *const secret_keys[] = {
    [CONFIG_SECRET_NONE] = NULL,
    [CONFIG_SECRET_FILE] = "password_file",
    [CONFIG_SECRET_COMMAND] = "password_command",
    [CONFIG_SECRET_CREDENTIAL] = "password_credential",
    [CONFIG_SECRET_ENV] = "password_env",
    [CONFIG_SECRET_INLINE] = "password",
    [CONFIG_SECRET_TOKEN_COMMAND] = "token_command",
};

static const char *const account_keys[] = {
    "name", "host", "user", "tunnel", "mailboxes", "rules",
};

/* --- connection settings ------------------------------------------------- */

void
config_conn_free(struct conn *cn)
{
    for (size_t k = 0; k < CK_COUNT; k++)
        free(cn->str[k]);
}

static int
conn_lookup(const char *key)
{
    for (int k = 0; k < CK_COUNT; k++) {
        if (strcmp(conn_fields[k].name, key) == 0)
            return k;
    }
    return -1;
}

static void
conn_parse(struct loader *l, struct conn *cn, enum conn_key k,
           const yaml_node_t *v)
{
    const struct conn_field *f = &conn_fields[k];
    struct pos p = config_node_pos(v);
    uint64_t x = 0;
    unsigned w = 0;
    bool b = false;
    char *s = NULL;
    int r = -1;

    switch (f->type) {
    case FT_INT:
        r = config_get_uint(l, f->name, v, f->min, f->max, f->range, &x);
        break;
    case FT_DURATION:
        /* timeouts and intervals: a bare 60 most likely meant seconds */
        r = config_get_duration(l, f->name, v, f->min, f->max, f->range, 's',
                                &x);
        break;
    case FT_BOOL:
        r = config_get_bool(l, f->name, v, &b);
        x = b;
        break;
    case FT_WORD:
        r = config_get_word(l, f->name, f->words, f->expect, v, &w);
        x = w;
        break;
    case FT_PATH:
        r = config_get_string(l, f->name, v, STR_NULLABLE, &s);
        break;
    case FT_MAILBOX:
        r = config_get_mailbox(l, f->name, v, true, &s);
        break;
    }
    cn->set[k] = true;
    cn->line[k] = p.line;
    cn->col[k] = p.col;
    free(cn->str[k]);
    cn->str[k] = s;
    cn->num[k] = x;
    /* an invalid value was reported: fall back to the built-in default so
     * nothing else complains about it */
    cn->null[k] = r != 0;
}

/* The effective setting: the account's, else the defaults', else built in.
 * Returns the source (NULL: built in). */
static const struct conn *
conn_source(const struct conn *acc, const struct conn *def, enum conn_key k)
{
    const struct conn *src = acc->set[k] ? acc : def->set[k] ? def : NULL;

    return src != NULL && !src->null[k] ? src : NULL;
}

static uint64_t
conn_num(const struct conn *acc, const struct conn *def, enum conn_key k)
{
    const struct conn *src = conn_source(acc, def, k);

    return src != NULL ? src->num[k] : conn_fields[k].def;
}

static char *
conn_str(const struct conn *acc, const struct conn *def, enum conn_key k)
{
    const struct conn *src = conn_source(acc, def, k);

    return src != NULL && src->str[k] != NULL ? xstrdup(src->str[k]) : NULL;
}

/* --- defaults ------------------------------------------------------------ */

static bool
is_account_only_key(const char *key)
{
    for (size_t i = 0; i < ARRAY_SIZE(account_keys); i++) {
        if (strcmp(key, account_keys[i]) == 0)
            return true;
    }
    for (size_t i = 1; i < ARRAY_SIZE(secret_keys); i++) {
        if (strcmp(key, secret_keys[i]) == 0)
            return true;
    }
    return false;
}

void
config_parse_defaults(struct loader *l, const yaml_node_t *map)
{
    const char *names[CK_COUNT];
    struct entry *e;
    size_t n;

    if (config_is_null(map))
        return;
    if (map->type != YAML_MAPPING_NODE) {
        config_error_at(l, map, "defaults must be a mapping, not %s",
                        config_node_kind(map));
        return;
    }
    for (size_t k = 0; k < CK_COUNT; k++)
        names[k] = conn_fields[k].name;
    n = config_map_entries(l, map, &e);
    for (size_t i = 0; i < n; i++) {
        int k = conn_lookup(e[i].key);

        if (k >= 0)
            conn_parse(l, &l->defaults, (enum conn_key)k, e[i].vnode);
        else if (is_account_only_key(e[i].key))
            config_error_at(l, e[i].knode,
                            "\"%s\" is not allowed in defaults (set "
                            "it in each account)",
                            e[i].key);
        else
            config_unknown_key(l, &e[i], "in defaults", names, CK_COUNT);
    }
    free(e);
}

/* --- accounts ------------------------------------------------------------ */

static int
size_cmp(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;

    return a < b ? -1 : a > b;
}

static void
unknown_rule(struct loader *l, const yaml_node_t *at, const char *name)
{
    const struct config *c = l->c;
    struct buf list;
    size_t shown = 0;

    buf_init(&list, BUF_NOCAP);
    for (size_t i = 0; i < c->n_rules; i++) {
        size_t j;

        if (!l->rinfo[i].has_name)
            continue;
        for (j = 0; j < i && (!l->rinfo[j].has_name ||
                              strcmp(c->rules[j]->name, c->rules[i]->name));
             j++)
            ;
        if (j < i)
            continue;  /* defined twice: listed once */
        if (shown == 10) {
            buf_append_str(&list, ", ...");
            break;
        }
        buf_printf(&list, "%s%s", shown > 0 ? ", " : "",
                   config_show(l, c->rules[i]->name));
        shown++;
    }
    if (shown == 0)
        config_error_at(l, at, "unknown rule \"%s\" (no rules are defined)",
                        config_show(l, name));
    else
        config_error_at(l, at, "unknown rule \"%s\" (defined rules: %s)",
                        config_show(l, name), buf_cstr(&list));
    buf_free(&list);
}

static void
parse_account_rules(struct loader *l, struct config_account *a,
                    const char *label, const yaml_node_t *v)
{
    const struct config *c = l->c;
    const yaml_node_item_t *items = NULL;
    size_t n_items = 1;
    struct pos *pos;

    if (v->type == YAML_SCALAR_NODE && config_is_null(v))
        return;  /* every rule: filled in by the caller */
    if (v->type == YAML_MAPPING_NODE) {
        config_error_at(l, v,
                        "rules must be a list of rule names, not a mapping");
        return;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        items = v->data.sequence.items.start;
        n_items = (size_t)(v->data.sequence.items.top - items);
    }
    a->rules = xcalloc(n_items, sizeof(*a->rules));
    pos = xcalloc(n_items, sizeof(*pos));
    if (n_items == 0) {
        struct pos p = config_node_pos(v);

        config_warning_pos(l, p.line, p.col,
                           "%s has an empty rule list: nothing "
                           "will be acted on in its mailboxes",
                           label);
    }
    for (size_t i = 0; i < n_items; i++) {
        const yaml_node_t *item =
            items == NULL ? v : config_visit(l, items[i]);
        const char *s;
        size_t j, k;

        if (item == NULL)
            break;
        if (config_need_text(l, "rule name", "a string", item, &s) != 0)
            continue;
        for (j = 0; j < c->n_rules; j++) {
            if (l->rinfo[j].has_name && strcmp(c->rules[j]->name, s) == 0)
                break;
        }
        if (j == c->n_rules) {
            unknown_rule(l, item, s);
            continue;
        }
        for (k = 0; k < a->n_rules && a->rules[k] != j; k++)
            ;
        if (k < a->n_rules) {
            config_error_at(l, item,
                            "rule \"%s\" is listed twice (first at %u:%u)",
                            config_show(l, s), pos[k].line, pos[k].col);
            continue;
        }
        pos[a->n_rules] = config_node_pos(item);
        a->rules[a->n_rules++] = j;
    }
    free(pos);
    qsort(a->rules, a->n_rules, sizeof(*a->rules), size_cmp);
}

static bool
valid_env_name(const char *s)
{
    if (*s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s != '\0'; s++) {
        char c = *s;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}


static void
check_secret(struct loader *l, enum config_secret_kind kind,
             const struct entry *e, const char *value)
{
    const char *key = secret_keys[kind];

    if (kind == CONFIG_SECRET_CREDENTIAL &&
        (strchr(value, '/') != NULL || strcmp(value, ".") == 0 ||
         strcmp(value, "..") == 0))
        config_error_at(l, e->vnode, "password_credential must be a plain "
                        "credential name without '/'");
    if (kind == CONFIG_SECRET_ENV && !valid_env_name(value))
        config_error_at(l, e->vnode,
                        "invalid environment variable name \"%s\" "
                        "(letters, digits and '_', not starting with a digit)",
                        config_show(l, value));
    if (kind == CONFIG_SECRET_INLINE && l->check_mode &&
        (l->mode & (S_IRGRP | S_IROTH)) != 0) {
        struct pos p = config_node_pos(e->knode);

        config_warning_pos(l, p.line, p.col, "inline %s in a file readable by "
                           "group or others (mode %04o): use password_file, "
                           "password_credential or chmod 600", key,
                           (unsigned)(l->mode & 07777));
    }
}

/* 993 is implicit TLS, 143 plain/STARTTLS: the other mode there fails with
 * a timeout or an obscure TLS error at run time. */
static void
port_tls_mismatch(struct loader *l, const struct config_account *a,
                  const char *label, const struct conn *acc)
{
    const struct conn *src = conn_source(acc, &l->defaults, CK_PORT);

    if (a->tunnel != NULL || src == NULL)
        return;
    if (a->port == 993 && a->tls != CONFIG_TLS_IMPLICIT)
        config_warning_pos(l, src->line[CK_PORT], src->col[CK_PORT],
                           "%s: port 993 is the implicit TLS port, but tls "
                           "is %s: the server would wait for a TLS handshake "
                           "(set tls: implicit, or port: 143)", label,
                           tls_words[a->tls]);
    else if (a->port == 143 && a->tls == CONFIG_TLS_IMPLICIT)
        config_warning_pos(l, src->line[CK_PORT], src->col[CK_PORT],
                           "%s: port 143 is the plain and STARTTLS port, "
                           "but tls is implicit (set tls: starttls, or port: "
                           "993)", label);
}

static void
parse_account(struct loader *l, const yaml_node_t *map, size_t index)
{
    struct config *c = l->c;
    struct config_account *a = &c->accounts[c->n_accounts];
    struct pos mp = config_node_pos(map), *apos = &l->apos[c->n_accounts];
    const char *names[ARRAY_SIZE(account_keys) + ARRAY_SIZE(secret_keys) +
                      CK_COUNT];
    const yaml_node_t *name_v = NULL, *mailboxes_v = NULL, *rules_v = NULL;
    const struct entry *secret_e = NULL, *token_e = NULL;
    bool host_given = false, user_given = false;
    struct conn acc;
    char label[320];
    size_t n, n_names = 0;
    struct entry *e;

    memset(&acc, 0, sizeof(acc));
    a->line = mp.line;
    a->col = mp.col;
    c->n_accounts++;
    for (size_t i = 0; i < ARRAY_SIZE(account_keys); i++)
        names[n_names++] = account_keys[i];
    for (size_t i = 0; i < ARRAY_SIZE(secret_keys); i++)
        names[n_names++] = secret_keys[i];
    for (size_t k = 0; k < CK_COUNT; k++)
        names[n_names++] = conn_fields[k].name;

    n = config_map_entries(l, map, &e);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].key, "name") == 0)
            name_v = e[i].vnode;
    }
    if (name_v == NULL) {
        config_error_at(l, map, "account #%zu has no name", index + 1);
    } else if (config_get_string(l, "name", name_v, STR_EMPTY_OK,
                                 &a->name) == 0) {
        *apos = config_node_pos(name_v);
        if (!config_valid_name(a->name))
            config_error_at(l, name_v,
                            "invalid account name \"%s\" (1 to %d "
                            "letters, digits, '.', '_' or '-')",
                            config_show(l, a->name), MAX_NAME_LEN);
        for (size_t j = 0; j + 1 < c->n_accounts; j++) {
            if (c->accounts[j].name != NULL &&
                strcmp(c->accounts[j].name, a->name) == 0) {
                config_error_at(l, name_v,
                                "account \"%s\" is defined twice (first "
                                "at %u:%u)",
                                config_show(l, a->name), l->apos[j].line,
                                l->apos[j].col);
                break;
            }
        }
    }
    if (a->name != NULL)
        snprintf(label, sizeof(label), "account \"%s\"",
                 config_show(l, a->name));
    else
        snprintf(label, sizeof(label), "account #%zu", index + 1);

    for (size_t i = 0; i < n && !l->aborted; i++) {
        const char *key = e[i].key;
        const yaml_node_t *v = e[i].vnode;
        unsigned kind;
        int k;

        if (strcmp(key, "name") == 0)
            continue;
        if (strcmp(key, "host") == 0) {
            host_given = true;
            config_get_string(l, key, v, 0, &a->host);
            continue;
        }
        if (strcmp(key, "user") == 0) {
            user_given = true;
            config_get_string(l, key, v, 0, &a->user);
            continue;
        }
        if (strcmp(key, "tunnel") == 0) {
            config_get_string(l, key, v, 0, &a->tunnel);
            continue;
        }
        if (strcmp(key, "mailboxes") == 0) {
            mailboxes_v = v;
            continue;
        }
        if (strcmp(key, "rules") == 0) {
            rules_v = v;
            continue;
        }
        if ((k = conn_lookup(key)) >= 0) {
            conn_parse(l, &acc, (enum conn_key)k, v);
            continue;
        }
        for (kind = 1; kind < ARRAY_SIZE(secret_keys); kind++) {
            if (strcmp(key, secret_keys[kind]) == 0)
                break;
        }
        if (kind == ARRAY_SIZE(secret_keys)) {
            config_unknown_key(l, &e[i], "in account", names, n_names);
            continue;
        }
        if (secret_e != NULL) {
            config_error_at(l, e[i].knode,
                            "%s has two secret sources (%s and %s)", label,
                            secret_e->key, key);
            continue;
        }
        secret_e = &e[i];
        a->secret.kind = (enum config_secret_kind)kind;
        if (kind == CONFIG_SECRET_TOKEN_COMMAND)
            token_e = &e[i];
        if (config_get_string(l, key, v, 0, &a->secret.value) == 0) {
            struct pos sp = config_node_pos(v);

            a->secret.line = sp.line;
            a->secret.col = sp.col;
            check_secret(l, a->secret.kind, &e[i], a->secret.value);
        }
    }
    if (l->aborted) {
        free(e);
        config_conn_free(&acc);
        return;
    }

    /* merge: the account's setting, else the defaults', else built in */
    a->port = (uint16_t)conn_num(&acc, &l->defaults, CK_PORT);
    a->tls = (enum config_tls)conn_num(&acc, &l->defaults, CK_TLS);
    /* a tunnel is a local command (ssh, a PREAUTH imap binary): plain text
     * unless the account itself asks for TLS */
    if (a->tunnel != NULL)
        a->tls = acc.set[CK_TLS] && !acc.null[CK_TLS]
                     ? (enum config_tls)acc.num[CK_TLS]
                     : CONFIG_TLS_NONE;
    if (a->port == 0)
        a->port = a->tls == CONFIG_TLS_IMPLICIT ? 993 : 143;
    a->tls_verify = conn_num(&acc, &l->defaults, CK_TLS_VERIFY) != 0;
    a->ca_file = conn_str(&acc, &l->defaults, CK_CA_FILE);
    a->auth = (enum config_auth)conn_num(&acc, &l->defaults, CK_AUTH);
    a->expunge = (enum config_expunge)conn_num(&acc, &l->defaults,
                                               CK_EXPUNGE);
    a->idle_refresh = conn_num(&acc, &l->defaults, CK_IDLE_REFRESH);
    a->max_connections =
        (unsigned)conn_num(&acc, &l->defaults, CK_MAX_CONNECTIONS);
    a->poll_interval = conn_num(&acc, &l->defaults, CK_POLL_INTERVAL);
    a->full_sweep_interval =
        conn_num(&acc, &l->defaults, CK_FULL_SWEEP_INTERVAL);
    a->command_timeout = conn_num(&acc, &l->defaults, CK_COMMAND_TIMEOUT);
    a->connect_timeout = conn_num(&acc, &l->defaults, CK_CONNECT_TIMEOUT);
    a->reconnect_min = conn_num(&acc, &l->defaults, CK_RECONNECT_MIN);
    a->reconnect_max = conn_num(&acc, &l->defaults, CK_RECONNECT_MAX);
    a->trash_mailbox = conn_str(&acc, &l->defaults, CK_TRASH_MAILBOX);
    a->notify = (enum config_notify)conn_num(&acc, &l->defaults, CK_NOTIFY);
    a->on_rename =
        (enum config_on_rename)conn_num(&acc, &l->defaults, CK_ON_RENAME);

    if (a->reconnect_min > a->reconnect_max) {
        const struct conn *src =
            conn_source(&acc, &l->defaults, CK_RECONNECT_MAX);
        enum conn_key at = CK_RECONNECT_MAX;
        char d1[32], d2[32];
        struct buf t;

        if (src == NULL) {
            at = CK_RECONNECT_MIN;
            src = conn_source(&acc, &l->defaults, CK_RECONNECT_MIN);
        }
        buf_init(&t, BUF_NOCAP);
        buf_printf(&t, "reconnect_max (%s) is less than reconnect_min (%s)",
                   units_format_duration(a->reconnect_max, d1, sizeof(d1)),
                   units_format_duration(a->reconnect_min, d2, sizeof(d2)));
        if (src != NULL)
            config_error_pos(l, src->line[at], src->col[at], "%s",
                             buf_cstr(&t));
        else
            config_error_pos(l, mp.line, mp.col, "%s", buf_cstr(&t));
        buf_free(&t);
    }

    port_tls_mismatch(l, a, label, &acc);
    if (a->tunnel == NULL) {
        if (!host_given)
            config_error_at(l, map, "%s has no host", label);
        if (!user_given)
            config_error_at(l, map, "%s has no user", label);
        if (secret_e == NULL)
            config_error_at(
                l, map,
                "%s has no secret source (give one of "
                "password_file, password_command, password_credential, "
                "password_env, password, token_command)",
                label);
    }
    if (token_e != NULL && a->auth != CONFIG_AUTH_AUTO &&
        a->auth != CONFIG_AUTH_XOAUTH2 && a->auth != CONFIG_AUTH_OAUTHBEARER)
        config_error_at(l, token_e->knode, "token_command needs auth xoauth2, "
                        "oauthbearer or auto (not %s)", auth_words[a->auth]);

    if (mailboxes_v == NULL)
        config_error_at(l, map, "%s has no mailboxes", label);
    else if (config_get_mailbox_list(l, mailboxes_v, &a->mailboxes,
                                     &a->n_mailboxes, NULL,
                                     &a->mailbox_idle) == 1)
        config_error_at(l, mailboxes_v,
                        "mailboxes must list at least one mailbox");

    if (rules_v != NULL)
        parse_account_rules(l, a, label, rules_v);
    if (a->rules == NULL) {
        a->rules = xcalloc(c->n_rules, sizeof(*a->rules));
        for (size_t i = 0; i < c->n_rules; i++)
            a->rules[i] = i;
        a->n_rules = c->n_rules;
    }
    free(e);
    config_conn_free(&acc);
}

void
config_parse_accounts(struct loader *l, const yaml_node_t *seq)
{
    const yaml_node_item_t *items;
    size_t n_items;

    if (seq->type == YAML_SCALAR_NODE && config_is_null(seq)) {
        config_error_at(l, seq, "at least one account is required");
        return;
    }
    if (seq->type != YAML_SEQUENCE_NODE) {
        config_error_at(l, seq, "accounts must be a list of accounts, not %s",
                        config_node_kind(seq));
        return;
    }
    items = seq->data.sequence.items.start;
    n_items = (size_t)(seq->data.sequence.items.top - items);
    if (n_items == 0) {
        config_error_at(l, seq, "at least one account is required");
        return;
    }
    l->c->accounts = xcalloc(n_items, sizeof(*l->c->accounts));
    l->apos = xcalloc(n_items, sizeof(*l->apos));
    for (size_t i = 0; i < n_items && !l->aborted; i++) {
        const yaml_node_t *item = config_visit(l, items[i]);

        if (item == NULL)
            break;
        if (item->type != YAML_MAPPING_NODE) {
            config_error_at(l, item, "account must be a mapping, not %s",
                            config_node_kind(item));
            continue;
        }
        parse_account(l, item, i);
    }
}

/* A rule restricted to a mailbox that no account using it watches never
 * acts there: most likely a typo. */
void
config_check_rule_mailboxes(struct loader *l)
{
    const struct config *c = l->c;

    for (size_t r = 0; r < c->n_rules; r++) {
        const struct rule *rule = c->rules[r];

        for (size_t m = 0; m < rule->n_mailboxes; m++) {
            bool watched = false;

            for (size_t a = 0; a < c->n_accounts && !watched; a++) {
                const struct config_account *acc = &c->accounts[a];
                /* acc->rules is ascending */
                bool uses = bsearch(&r, acc->rules, acc->n_rules,
                                    sizeof(*acc->rules), size_cmp) != NULL;

                for (size_t i = 0; uses && i < acc->n_mailboxes; i++) {
                    if (config_mailbox_eq(acc->mailboxes[i],
                                          rule->mailboxes[m]))
                        watched = true;
                }
            }
            if (!watched)
                config_warning_pos(
                    l, l->rinfo[r].mb_pos[m].line, l->rinfo[r].mb_pos[m].col,
                    "rule \"%s\" applies to mailbox \"%s\", which "
                    "no account using the rule watches",
                    config_show(l, rule->name),
                    config_show(l, rule->mailboxes[m]));
        }
    }
}

/* --- names --------------------------------------------------------------- */

const char *
config_tls_name(enum config_tls t)
{
    return (unsigned)t < ARRAY_SIZE(tls_words) - 1 ? tls_words[t] : "?";
}

const char *
config_auth_name(enum config_auth a)
{
    return (unsigned)a < ARRAY_SIZE(auth_words) - 1 ? auth_words[a] : "?";
}

const char *
config_notify_name(enum config_notify n)
{
    return (unsigned)n < ARRAY_SIZE(notify_words) - 1 ? notify_words[n] : "?";
}

const char *
config_expunge_name(enum config_expunge e)
{
    return (unsigned)e < ARRAY_SIZE(expunge_words) - 1 ? expunge_words[e]
                                                        : "?";
}
