/* SPDX-License-Identifier: MIT */
/* config: loading and lifetime: reading the file, the YAML stream, the
 * top-level sections and `daemon`, freeing, references and lookups. The
 * rest of the loader: config_yaml.c (typed access), config_account.c,
 * config_rule.c; the diagnostics store: config_diag.c. */
#include "config_private.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

/* Node visits allowed beyond the document's own node count. Without aliases
 * every node is visited once; aliases are references in libyaml's document
 * model, so nested ones ("billion laughs") would make the walk exponential.
 * Counting on top of the node count keeps big alias-free files (thousands
 * of accounts) valid. */
#define MAX_EXTRA_VISITS 100000
#define MAX_FILE_SIZE ((size_t)64 << 20)

static const char *const audit_words[] = {"messages", "counts", NULL};
static const char *const level_words[] = {"error", "warning", "notice",
                                          "info", "debug", "trace", NULL};

static const char *const top_keys[] = {"daemon", "defaults", "accounts",
                                       "rules"};
static const char *const daemon_keys[] = {"control_socket", "control_mode",
                                          "control_group", "log_level",
                                          "dry_run", "audit"};

static bool
has_errors(const struct loader *l)
{
    return l->diag->n_errors > l->first_error;
}

/* --- top-level sections -------------------------------------------------- */

static void
parse_daemon(struct loader *l, const yaml_node_t *map)
{
    struct config_daemon *d = &l->c->daemon;
    struct entry *e;
    size_t n;

    if (config_is_null(map))
        return;
    if (map->type != YAML_MAPPING_NODE) {
        config_error_at(l, map, "daemon must be a mapping, not %s",
                        config_node_kind(map));
        return;
    }
    n = config_map_entries(l, map, &e);
    for (size_t i = 0; i < n; i++) {
        const char *key = e[i].key;
        const yaml_node_t *v = e[i].vnode;
        char *s = NULL;
        unsigned w;
        bool b;

        if (strcmp(key, "control_socket") == 0) {
            if (config_get_string(l, key, v, STR_NULLABLE | STR_EMPTY_OK,
                                  &s) != 0)
                continue;
            if (strlen(s) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
                config_error_at(
                    l, v, "control_socket path is too long (%zu bytes, "
                    "at most %zu)", strlen(s),
                    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
                free(s);
                continue;
            }
            free(d->control_socket);
            d->control_socket = s;
        } else if (strcmp(key, "control_mode") == 0) {
            const char *t;
            uint64_t mode = 0;
            int r =
                config_get_text(l, key, "an octal mode such as 0600", v, &t);
            size_t len;

            if (r != 0)
                continue;
            if (t[0] == '0' && (t[1] == 'o' || t[1] == 'O'))
                t += 2;
            len = strlen(t);
            r = len > 0 && len <= 4 ? 0 : -1;
            for (size_t j = 0; r == 0 && j < len; j++) {
                if (t[j] < '0' || t[j] > '7')
                    r = -1;
                else
                    mode = mode * 8 + (uint64_t)(t[j] - '0');
            }
            if (r < 0 || mode > 0777) {
                config_error_at(l, v,
                                "control_mode must be an octal mode such as "
                                "0600 (at most 0777)");
                continue;
            }
            d->control_mode = (mode_t)mode;
        } else if (strcmp(key, "control_group") == 0) {
            if (config_get_string(l, key, v, STR_NULLABLE, &s) != 0)
                continue;
            free(d->control_group);
            d->control_group = s;
        } else if (strcmp(key, "log_level") == 0) {
            if (config_get_word(l, key, level_words,
                                "error, warning, notice, info, debug or trace",
                                v, &w) != 0)
                continue;
            if (log_level_parse(level_words[w], &d->log_level) < 0)
                d->log_level = LL_INFO;
        } else if (strcmp(key, "dry_run") == 0) {
            if (config_get_bool(l, key, v, &b) == 0)
                d->dry_run = b;
        } else if (strcmp(key, "audit") == 0) {
            if (config_get_word(l, key, audit_words, "messages or counts", v,
                                &w) == 0)
                d->audit = (enum config_audit)w;
        } else {
            config_unknown_key(l, &e[i], "in daemon", daemon_keys,
                               ARRAY_SIZE(daemon_keys));
        }
    }
    free(e);
}

static void
parse_top(struct loader *l, const yaml_node_t *root)
{
    const yaml_node_t *daemon = NULL, *defaults = NULL, *accounts = NULL;
    const yaml_node_t *rules = NULL;
    struct entry *e;
    size_t n;

    if (root->type != YAML_MAPPING_NODE) {
        config_error_at(l, root, "configuration must be a mapping, not %s",
                        config_node_kind(root));
        return;
    }
    n = config_map_entries(l, root, &e);
    for (size_t i = 0; i < n; i++) {
        const char *key = e[i].key;

        if (strcmp(key, "daemon") == 0)
            daemon = e[i].vnode;
        else if (strcmp(key, "defaults") == 0)
            defaults = e[i].vnode;
        else if (strcmp(key, "accounts") == 0)
            accounts = e[i].vnode;
        else if (strcmp(key, "rules") == 0)
            rules = e[i].vnode;
        else
            config_unknown_key(l, &e[i], "at top level", top_keys,
                               ARRAY_SIZE(top_keys));
    }
    free(e);
    /* rules before accounts: account rule lists refer to them */
    if (daemon != NULL && !l->aborted)
        parse_daemon(l, daemon);
    if (defaults != NULL && !l->aborted)
        config_parse_defaults(l, defaults);
    if (rules != NULL && !config_is_null(rules) && !l->aborted)
        config_parse_rules(l, rules);
    if (accounts == NULL) {
        struct pos p = config_node_pos(root);

        config_error_pos(l, p.line, p.col, "no accounts defined (at least one "
                         "account is required)");
    } else if (!l->aborted) {
        config_parse_accounts(l, accounts);
    }
    if (l->aborted)
        return;
    /* (a rules value of the wrong type was reported already) */
    if (l->c->n_rules == 0 && (rules == NULL || config_is_null(rules) ||
                               rules->type == YAML_SEQUENCE_NODE)) {
        struct pos p = config_node_pos(rules != NULL ? rules : root);

        config_warning_pos(l, p.line, p.col,
                           "no rules defined: nothing will be acted on");
    }
    if (!has_errors(l))
        config_check_rule_mailboxes(l);
}

/* --- loading ------------------------------------------------------------- */

/* libyaml reports reader errors (bad UTF-8, control characters) as a byte
 * offset only. */
static struct pos
offset_pos(const struct loader *l, size_t offset)
{
    struct pos p = {1, 1};
    size_t i = 0;

    if (l->len >= 3 && memcmp(l->data, "\xef\xbb\xbf", 3) == 0)
        i = 3;  /* a byte order mark takes no column */
    for (; i < offset && i < l->len; i++) {
        unsigned char ch = (unsigned char)l->data[i];

        if (ch == '\n' ||
            (ch == '\r' && (i + 1 >= l->len || l->data[i + 1] != '\n'))) {
            p.line++;
            p.col = 1;
        } else if ((ch & 0xc0) != 0x80 && ch != '\r') {
            p.col++;
        }
    }
    return p;
}

static void
syntax_error(struct loader *l, const yaml_parser_t *parser)
{
    struct pos p;

    if (parser->error == YAML_MEMORY_ERROR) {
        config_error_pos(l, 1, 1, "out of memory while parsing");
        return;
    }
    if (parser->error == YAML_READER_ERROR) {
        p = offset_pos(l, parser->problem_offset);
    } else {
        p.line = (unsigned)parser->problem_mark.line + 1;
        p.col = (unsigned)parser->problem_mark.column + 1;
    }
    config_error_pos(l, p.line, p.col, "YAML syntax error: %s%s%s",
                     parser->problem != NULL ? parser->problem
                                             : "unknown problem",
                     parser->context != NULL ? " " : "",
                     parser->context != NULL ? parser->context : "");
}

/* The account's fields; the account is an element of config->accounts. */
static void
config_account_clear(struct config_account *a)
{
    free(a->name);
    free(a->host);
    free(a->ca_file);
    free(a->user);
    util_free_secret(a->secret.value);
    free(a->tunnel);
    free(a->trash_mailbox);
    for (size_t i = 0; i < a->n_mailboxes; i++)
        free(a->mailboxes[i]);
    free(a->mailboxes);
    free(a->mailbox_idle);
    free(a->rules);
}

static void
config_free(struct config *c)
{
    for (size_t i = 0; i < c->n_accounts; i++)
        config_account_clear(&c->accounts[i]);
    free(c->accounts);
    for (size_t i = 0; i < c->n_rules; i++)
        rule_free(c->rules[i]);
    free(c->rules);
    free(c->daemon.control_socket);
    free(c->daemon.control_group);
    free(c->path);
    free(c);
}

/* The document holds the inline passwords too. */
static void
wipe_document(yaml_document_t *doc)
{
    for (yaml_node_t *n = doc->nodes.start; n < doc->nodes.top; n++) {
        if (n->type == YAML_SCALAR_NODE)
            util_wipe(n->data.scalar.value, n->data.scalar.length);
    }
}

static void
parse_stream(struct loader *l)
{
    yaml_parser_t parser;
    yaml_document_t doc, doc2;
    const yaml_node_t *root;

    if (!yaml_parser_initialize(&parser)) {
        config_error_pos(l, 1, 1, "out of memory while parsing");
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)l->data,
                                 l->len);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(l, &parser);
        yaml_parser_delete(&parser);
        return;
    }
    l->doc = &doc;
    l->max_visits = MAX_EXTRA_VISITS + (size_t)(doc.nodes.top -
                                                doc.nodes.start);
    l->unknown_where = xcalloc((size_t)(doc.nodes.top - doc.nodes.start),
                               sizeof(*l->unknown_where));
    root = yaml_document_get_root_node(&doc);
    /* a second document is a mistake (a stray "---") or a syntax error */
    if (!yaml_parser_load(&parser, &doc2)) {
        syntax_error(l, &parser);
    } else {
        if (yaml_document_get_root_node(&doc2) != NULL)
            config_error_pos(
                l, (unsigned)doc2.start_mark.line + 1,
                (unsigned)doc2.start_mark.column + 1,
                "more than one YAML document (a configuration is a "
                "single document)");
        wipe_document(&doc2);
        yaml_document_delete(&doc2);
    }
    if (root == NULL || config_is_null(root))
        config_error_pos(l, 1, 1, "empty configuration: no accounts or "
                         "rules yet (every key is described in "
                         "imapsweep.yaml(5) and shown in the commented "
                         "example)");
    else
        parse_top(l, root);
    l->doc = NULL;
    free(l->unknown_where);
    l->unknown_where = NULL;
    wipe_document(&doc);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

static int
load(const char *name, const char *data, size_t len, const mode_t *mode,
     struct config **config_r, struct config_diag *diag)
{
    struct config_diag local;
    struct config_diag *d = diag;
    size_t first_warning;
    struct loader l;
    struct config *c;
    int ret = 0;

    if (d == NULL) {
        config_diag_init(&local);
        d = &local;
    }
    if (name == NULL)
        name = "(buffer)";
    memset(&l, 0, sizeof(l));
    l.file = name;
    l.data = data != NULL ? data : "";
    l.len = data != NULL ? len : 0;
    l.diag = d;
    l.first_error = d->n_errors;
    first_warning = d->n_warnings;
    if (mode != NULL) {
        l.check_mode = true;
        l.mode = *mode;
    }
    for (size_t i = 0; i < SHOW_SLOTS; i++)
        buf_init(&l.show[i], BUF_NOCAP);

    c = xcalloc(1, sizeof(*c));
    c->refs = 1;
    c->path = xstrdup(name);
    c->daemon.control_mode = 0600;
    c->daemon.log_level = LL_INFO;
    c->daemon.audit = CONFIG_AUDIT_MESSAGES;
    l.c = c;

    parse_stream(&l);

    config_conn_free(&l.defaults);
    for (size_t i = 0; l.rinfo != NULL && i < c->n_rules; i++)
        free(l.rinfo[i].mb_pos);
    free(l.rinfo);
    free(l.apos);
    for (size_t i = 0; i < SHOW_SLOTS; i++)
        buf_free(&l.show[i]);
    free(l.seen.slot);
    config_diag_sort(d->errors, l.first_error, d->n_errors);
    config_diag_sort(d->warnings, first_warning, d->n_warnings);
    if (d->n_errors > l.first_error) {
        config_free(c);
        ret = -EINVAL;
    } else {
        *config_r = c;
    }
    if (d == &local)
        config_diag_free(&local);
    return ret;
}

int
config_load_buffer(const char *name, const char *data, size_t len,
                   struct config **config_r, struct config_diag *diag)
{
    return load(name, data, len, NULL, config_r, diag);
}

static int
file_error(const char *path, int err, struct config_diag *diag)
{
    if (diag != NULL) {
        char *msg = err == EINVAL ?
                    xstrdup("cannot read: not a regular file") :
                    xasprintf("cannot read: %s", strerror(err));

        config_diag_add(diag, false, path, 0, 0, msg);
        free(msg);
    }
    return -EINVAL;
}

int
config_load(const char *path, struct config **config_r,
            struct config_diag *diag)
{
    struct stat st;
    struct buf data;
    char chunk[8192];
    mode_t mode;
    int fd, ret;

    /* O_NONBLOCK: opening a FIFO must not wait for a writer (a reload
     * runs on the event loop); only a regular file is read. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return file_error(path, errno, diag);
    if (fstat(fd, &st) < 0) {
        ret = errno;
        close(fd);
        return file_error(path, ret, diag);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return file_error(path, S_ISDIR(st.st_mode) ? EISDIR : EINVAL,
                          diag);
    }
    mode = st.st_mode;
    buf_init_secret(&data, MAX_FILE_SIZE); /* inline passwords */
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = errno;
            break;
        }
        if (n == 0) {
            ret = 0;
            break;
        }
        if (buf_append(&data, chunk, (size_t)n) < 0) {
            ret = EFBIG;
            break;
        }
    }
    util_wipe(chunk, sizeof(chunk));
    close(fd);
    if (ret != 0) {
        buf_free_secret(&data);
        return file_error(path, ret, diag);
    }
    ret = load(path, data.data, data.len, &mode, config_r, diag);
    buf_free_secret(&data);
    return ret;
}

/* --- references and lookups ---------------------------------------------- */

struct config *
config_ref(struct config *c)
{
    c->refs++;
    return c;
}

void
config_unref(struct config *c)
{
    if (c == NULL || --c->refs > 0)
        return;
    config_free(c);
}

const struct config_account *
config_find_account(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->n_accounts; i++) {
        if (strcmp(c->accounts[i].name, name) == 0)
            return &c->accounts[i];
    }
    return NULL;
}

const struct rule *
config_find_rule(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->n_rules; i++) {
        if (strcmp(c->rules[i]->name, name) == 0)
            return c->rules[i];
    }
    return NULL;
}

size_t
config_count_mailboxes(const struct config *c)
{
    size_t n = 0;

    for (size_t i = 0; i < c->n_accounts; i++)
        n += c->accounts[i].n_mailboxes;
    return n;
}

static bool
str_differs(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a != b;
    return strcmp(a, b) != 0;
}

bool
config_account_conn_differs(const struct config_account *a,
                            const struct config_account *b)
{
    return str_differs(a->host, b->host) || a->port != b->port ||
           a->tls != b->tls || a->tls_verify != b->tls_verify ||
           str_differs(a->ca_file, b->ca_file) || a->auth != b->auth ||
           str_differs(a->user, b->user) ||
           a->secret.kind != b->secret.kind ||
           str_differs(a->secret.value, b->secret.value) ||
           str_differs(a->tunnel, b->tunnel) ||
           a->connect_timeout != b->connect_timeout ||
           a->command_timeout != b->command_timeout ||
           a->idle_refresh != b->idle_refresh ||
           a->poll_interval != b->poll_interval ||
           a->max_connections != b->max_connections ||
           a->notify != b->notify ||
           a->reconnect_min != b->reconnect_min ||
           a->reconnect_max != b->reconnect_max;
}
