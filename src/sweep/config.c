#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml.h>

#include "buf.h"
#include "imap_conn.h"
#include "units.h"
#include "util.h"

/* Node visits allowed beyond the document's own node count. Without aliases
 * every node is visited once; aliases are references in libyaml's document
 * model, so nested ones ("billion laughs") would make the walk exponential.
 * Counting on top of the node count keeps big alias-free files (thousands
 * of accounts) valid. */
#define MAX_EXTRA_VISITS 100000
#define MAX_MATCH_DEPTH 32
#define MAX_FILE_SIZE ((size_t)64 << 20)
#define MAX_NAME_LEN 64
#define SHOW_MAX 60
#define SHOW_SLOTS 4
/* Regular expressions: see regex_size(). */
#define REGEX_MAX_DEPTH 32
#define REGEX_MAX_SIZE 2000
#define REGEX_BUDGET ((uint64_t)10000000)  /* sum of size^2 over a load */

/* --- diagnostics --------------------------------------------------------- */

void
config_diag_init(struct config_diag *d)
{
    memset(d, 0, sizeof(*d));
}

static void
diag_entries_free(struct config_diag_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].file);
        free(e[i].msg);
    }
    free(e);
}

void
config_diag_free(struct config_diag *d)
{
    if (d == NULL)
        return;
    diag_entries_free(d->errors, d->n_errors);
    diag_entries_free(d->warnings, d->n_warnings);
    config_diag_init(d);
}

char *
config_diag_format(const struct config_diag_entry *e)
{
    return xasprintf("%s:%u:%u: %s", e->file, e->line ? e->line : 1,
                     e->col ? e->col : 1, e->msg);
}

/* Messages must stay one printable line whatever the file contained. */
static char *
clean_message(const char *msg)
{
    size_t len = strlen(msg);
    bool utf8 = util_utf8_valid(msg, len);
    struct buf out;

    buf_init(&out, BUF_NOCAP);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];

        if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8))
            buf_printf(&out, "\\x%02x", c);
        else
            buf_append_char(&out, (char)c);
    }
    return buf_steal(&out);
}

static void
diag_add(struct config_diag *d, bool warning, const char *file,
         unsigned line, unsigned col, const char *msg)
{
    struct config_diag_entry *e;

    if (warning) {
        ARRAY_GROW(d->warnings, d->cap_warnings, d->n_warnings + 1);
        e = &d->warnings[d->n_warnings++];
    } else {
        ARRAY_GROW(d->errors, d->cap_errors, d->n_errors + 1);
        e = &d->errors[d->n_errors++];
    }
    e->file = xstrdup(file);
    e->line = line;
    e->col = col;
    e->msg = clean_message(msg);
}

struct sort_item {
    struct config_diag_entry e;
    size_t seq;
};

static int
sort_item_cmp(const void *pa, const void *pb)
{
    const struct sort_item *a = pa, *b = pb;

    if (a->e.line != b->e.line)
        return a->e.line < b->e.line ? -1 : 1;
    if (a->e.col != b->e.col)
        return a->e.col < b->e.col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Put the entries from `first` on in file order (stable). */
static void
diag_sort(struct config_diag_entry *e, size_t first, size_t n_all)
{
    size_t n = n_all - first;
    struct sort_item *items;

    if (n < 2)
        return;
    items = xreallocarray(NULL, n, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        items[i].e = e[first + i];
        items[i].seq = i;
    }
    qsort(items, n, sizeof(*items), sort_item_cmp);
    for (size_t i = 0; i < n; i++)
        e[first + i] = items[i].e;
    free(items);
}

/* --- the loader ---------------------------------------------------------- */

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
    CK_COUNT
};

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
static const char *const audit_words[] = {"messages", "counts", NULL};
static const char *const level_words[] = {"error", "warning", "notice",
                                          "info", "debug", "trace", NULL};

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
static const char *const top_keys[] = {"daemon", "defaults", "accounts",
                                       "rules"};
static const char *const daemon_keys[] = {"control_socket", "control_mode",
                                          "control_group", "log_level",
                                          "dry_run", "audit"};
static const char *const rule_keys[] = {"name", "mailboxes", "match",
                                        "action", "keep_newest", "dry_run"};
static const char *const action_keys[] = {"move", "flag"};

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

/* The diagnostics of one load, to drop exact repeats as they come: a node
 * reached through many aliases reports the same problem each time. */
struct diag_set {
    size_t *slot;    /* 0: empty, else 1 + (index << 1 | warning) */
    size_t cap, n;
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
    uint64_t regex_cost;
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

static struct pos
node_pos(const yaml_node_t *n)
{
    struct pos p;

    p.line = n->start_mark.line >= UINT_MAX ? UINT_MAX
                                            : (unsigned)n->start_mark.line + 1;
    p.col = n->start_mark.column >= UINT_MAX
                ? UINT_MAX
                : (unsigned)n->start_mark.column + 1;
    return p;
}

static size_t
diag_hash(bool warning, unsigned line, unsigned col, const char *msg)
{
    uint64_t h = 1469598103934665603ULL;  /* FNV-1a */

    h = (h ^ (uint64_t)warning) * 1099511628211ULL;
    h = (h ^ line) * 1099511628211ULL;
    h = (h ^ col) * 1099511628211ULL;
    for (; *msg != '\0'; msg++)
        h = (h ^ (unsigned char)*msg) * 1099511628211ULL;
    return (size_t)h;
}

static const struct config_diag_entry *
diag_set_entry(const struct loader *l, size_t slot)
{
    size_t idx = (slot - 1) >> 1;

    return (slot - 1) & 1 ? &l->diag->warnings[idx] : &l->diag->errors[idx];
}

/* Find the slot of an equal entry, or the empty slot where it belongs. */
static size_t *
diag_set_find(struct loader *l, bool warning, unsigned line, unsigned col,
              const char *msg)
{
    size_t mask = l->seen.cap - 1;
    size_t i = diag_hash(warning, line, col, msg) & mask;

    for (;; i = (i + 1) & mask) {
        size_t *slot = &l->seen.slot[i];
        const struct config_diag_entry *e;

        if (*slot == 0)
            return slot;
        e = diag_set_entry(l, *slot);
        if ((bool)((*slot - 1) & 1) == warning && e->line == line &&
            e->col == col && strcmp(e->msg, msg) == 0)
            return slot;
    }
}

static void
diag_set_grow(struct loader *l)
{
    struct diag_set old = l->seen;

    l->seen.cap = old.cap ? old.cap * 2 : 64;
    l->seen.slot = xcalloc(l->seen.cap, sizeof(*l->seen.slot));
    for (size_t i = 0; i < old.cap; i++) {
        const struct config_diag_entry *e;

        if (old.slot[i] == 0)
            continue;
        e = diag_set_entry(l, old.slot[i]);
        *diag_set_find(l, (old.slot[i] - 1) & 1, e->line, e->col, e->msg) =
            old.slot[i];
    }
    free(old.slot);
}

static void PRINTF_LIKE(5, 0)
report_v(struct loader *l, bool warning, unsigned line, unsigned col,
         const char *fmt, va_list ap)
{
    char *raw = xvasprintf(fmt, ap), *msg = clean_message(raw);
    struct config_diag *d = l->diag;
    size_t *slot;

    free(raw);
    if (2 * (l->seen.n + 1) > l->seen.cap)
        diag_set_grow(l);
    slot = diag_set_find(l, warning, line, col, msg);
    if (*slot != 0) {
        free(msg);
        return;
    }
    diag_add(d, warning, l->file, line, col, msg);
    free(msg);
    *slot = 1 + ((warning ? d->n_warnings - 1 : d->n_errors - 1) << 1 |
                 (warning ? 1 : 0));
    l->seen.n++;
}

static void PRINTF_LIKE(4, 5)
error_pos(struct loader *l, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report_v(l, false, line, col, fmt, ap);
    va_end(ap);
}

static void PRINTF_LIKE(3, 4)
error_at(struct loader *l, const yaml_node_t *n, const char *fmt, ...)
{
    struct pos p = node_pos(n);
    va_list ap;

    va_start(ap, fmt);
    report_v(l, false, p.line, p.col, fmt, ap);
    va_end(ap);
}

static void PRINTF_LIKE(4, 5)
warning_pos(struct loader *l, unsigned line, unsigned col, const char *fmt,
            ...)
{
    va_list ap;

    va_start(ap, fmt);
    report_v(l, true, line, col, fmt, ap);
    va_end(ap);
}

static bool
has_errors(const struct loader *l)
{
    return l->diag->n_errors > l->first_error;
}

/* User text for a message: quoted characters escaped, long text cut. The
 * result lives until SHOW_SLOTS more calls. */
static const char *
show(struct loader *l, const char *s)
{
    struct buf *b = &l->show[l->show_next++ % SHOW_SLOTS];
    size_t len = strlen(s), n = 0;

    buf_reset(b);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        /* cut at a character boundary */
        if (n >= SHOW_MAX && (c & 0xc0) != 0x80) {
            buf_append_str(b, "...");
            break;
        }
        if (c == '"')
            buf_append_str(b, "\\\"");
        else if (c < 0x20 || c == 0x7f)
            buf_printf(b, "\\x%02x", c);
        else
            buf_append_char(b, (char)c);
        n++;
    }
    return buf_cstr(b);
}

static yaml_node_t *
visit(struct loader *l, int id)
{
    yaml_node_t *n;

    if (l->aborted)
        return NULL;
    n = yaml_document_get_node(l->doc, id);
    if (n == NULL)
        return NULL;
    if (++l->visits > l->max_visits) {
        error_at(l, n, "configuration too complex (aliases expand to too "
                       "many nodes)");
        l->aborted = true;
        return NULL;
    }
    return n;
}

static bool
is_null(const yaml_node_t *n)
{
    const char *v;

    if (n->type != YAML_SCALAR_NODE)
        return false;
    if (n->tag != NULL && strcmp((const char *)n->tag, YAML_NULL_TAG) == 0)
        return true;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    v = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || strcmp(v, "~") == 0 ||
           strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static const char *
node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a sequence";
    case YAML_SCALAR_NODE: return is_null(n) ? "null" : "a string";
    default: return "empty";
    }
}

/* Optimal string alignment distance, case-insensitive; large when either
 * string is long (no keyword is). */
static unsigned
edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned d[34][34];

    /* the answer only matters up to 2 */
    if (la > 32 || lb > 32 || la > lb + 2 || lb > la + 2)
        return 99;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = util_toupper(a[i - 1]) != util_toupper(b[j - 1]);
            unsigned v = d[i - 1][j] + 1;

            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 &&
                util_toupper(a[i - 1]) == util_toupper(b[j - 2]) &&
                util_toupper(a[i - 2]) == util_toupper(b[j - 1]) &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

static void
unknown_key(struct loader *l, const struct entry *e, const char *where,
            const char *const *names, size_t n_names)
{
    size_t id = (size_t)(e->knode - l->doc->nodes.start);
    const char *best = NULL;
    unsigned best_d = 3, len = (unsigned)strnlen(e->key, 64);

    /* reached again through an alias: reported already, and looking for
     * a suggestion every time would make alias expansion costly */
    if (l->unknown_where[id] == where)
        return;
    l->unknown_where[id] = where;
    for (size_t i = 0; i < n_names; i++) {
        unsigned d;

        if (names[i] == NULL)
            continue;
        d = edit_distance(e->key, names[i]);
        if (d < best_d && d < len) {
            best_d = d;
            best = names[i];
        }
    }
    if (best != NULL)
        error_at(l, e->knode, "unknown key \"%s\" %s (did you mean \"%s\"?)",
                 show(l, e->key), where, best);
    else
        error_at(l, e->knode, "unknown key \"%s\" %s", show(l, e->key),
                 where);
}

static int
entry_cmp(const void *pa, const void *pb)
{
    const struct entry *a = *(const struct entry *const *)pa;
    const struct entry *b = *(const struct entry *const *)pb;
    int r = strcmp(a->key, b->key);

    if (r != 0)
        return r;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* The pairs of a mapping. Keys that are not text and repeated keys are
 * reported and left out. Caller frees *out. */
static size_t
map_entries(struct loader *l, const yaml_node_t *map, struct entry **out)
{
    const yaml_node_pair_t *p = map->data.mapping.pairs.start;
    size_t n_pairs = (size_t)(map->data.mapping.pairs.top - p), n = 0, k;
    struct entry *e = xcalloc(n_pairs, sizeof(*e));
    struct entry **sorted;

    for (size_t i = 0; i < n_pairs; i++) {
        yaml_node_t *kn = visit(l, p[i].key), *vn = visit(l, p[i].value);

        if (kn == NULL || vn == NULL)
            break;
        if (kn->type != YAML_SCALAR_NODE) {
            error_at(l, kn, "mapping key must be a string, not %s",
                     node_kind(kn));
            continue;
        }
        if (memchr(kn->data.scalar.value, '\0', kn->data.scalar.length)) {
            error_at(l, kn, "key contains a NUL character");
            continue;
        }
        if (!util_utf8_valid((const char *)kn->data.scalar.value,
                             kn->data.scalar.length)) {
            error_at(l, kn, "key is not valid UTF-8");
            continue;
        }
        e[n].key = (const char *)kn->data.scalar.value;
        e[n].knode = kn;
        e[n].vnode = vn;
        e[n].idx = n;
        n++;
    }
    /* repeated keys: sort by (key, order), then every entry equal to the
     * head of its run is a repeat */
    sorted = xreallocarray(NULL, n, sizeof(*sorted));
    for (size_t i = 0; i < n; i++)
        sorted[i] = &e[i];
    qsort(sorted, n, sizeof(*sorted), entry_cmp);
    for (size_t i = 1, head = 0; i < n; i++) {
        struct pos first = node_pos(sorted[head]->knode);

        if (strcmp(sorted[i]->key, sorted[head]->key) != 0) {
            head = i;
            continue;
        }
        sorted[i]->dup = true;
        error_at(l, sorted[i]->knode, "duplicate key \"%s\" (first at %u:%u)",
                 show(l, sorted[i]->key), first.line, first.col);
    }
    free(sorted);
    k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!e[i].dup)
            e[k++] = e[i];
    }
    *out = e;
    return k;
}

/* --- typed values ----------------------------------------------------------
 * Getters return 0 (value stored), 1 (null: the caller's default) or -1
 * (reported). `what` names the field in messages. */

static int
get_text(struct loader *l, const char *what, const char *expect,
         const yaml_node_t *v, const char **text_r)
{
    if (v->type != YAML_SCALAR_NODE) {
        error_at(l, v, "%s must be %s, not %s", what, expect, node_kind(v));
        return -1;
    }
    if (is_null(v))
        return 1;
    if (memchr(v->data.scalar.value, '\0', v->data.scalar.length)) {
        error_at(l, v, "%s contains a NUL character", what);
        return -1;
    }
    if (!util_utf8_valid((const char *)v->data.scalar.value,
                         v->data.scalar.length)) {
        error_at(l, v, "%s is not valid UTF-8", what);
        return -1;
    }
    *text_r = (const char *)v->data.scalar.value;
    return 0;
}

/* Like get_text, but null is an error too. */
static int
need_text(struct loader *l, const char *what, const char *expect,
          const yaml_node_t *v, const char **text_r)
{
    int r = get_text(l, what, expect, v, text_r);

    if (r == 1) {
        error_at(l, v, "%s must be %s, not null", what, expect);
        return -1;
    }
    return r;
}

enum {
    STR_NULLABLE = 1 << 0,
    STR_EMPTY_OK = 1 << 1,
};

static int
get_string(struct loader *l, const char *what, const yaml_node_t *v,
           unsigned flags, char **out)
{
    const char *s;
    int r = (flags & STR_NULLABLE) ? get_text(l, what, "a string", v, &s)
                                   : need_text(l, what, "a string", v, &s);

    if (r != 0)
        return r;
    if (*s == '\0' && !(flags & STR_EMPTY_OK)) {
        error_at(l, v, "%s must not be empty", what);
        return -1;
    }
    *out = xstrdup(s);
    return 0;
}

static int
get_bool(struct loader *l, const char *what, const yaml_node_t *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    const char *s;
    int r = get_text(l, what, "true or false", v, &s);

    if (r != 0)
        return r;
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (util_strcaseeq(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (util_strcaseeq(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    error_at(l, v, "%s must be true or false", what);
    return -1;
}

static int
get_word(struct loader *l, const char *what, const char *const *words,
         const char *expect, const yaml_node_t *v, unsigned *out)
{
    const char *s;
    int r = get_text(l, what, expect, v, &s);

    if (r != 0)
        return r;
    for (unsigned i = 0; words[i] != NULL; i++) {
        if (strcmp(s, words[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    error_at(l, v, "%s must be %s", what, expect);
    return -1;
}

static int
get_uint(struct loader *l, const char *what, const yaml_node_t *v,
         uint64_t min, uint64_t max, const char *range, uint64_t *out)
{
    const char *s;
    uint64_t x;
    int r = get_text(l, what, "an integer", v, &s);

    if (r != 0)
        return r;
    r = util_parse_u64(s, strlen(s), UINT64_MAX, &x);
    if (r == -EINVAL) {
        error_at(l, v, "invalid %s \"%s\" (expected an integer %s)", what,
                 show(l, s), range);
        return -1;
    }
    if (r < 0 || x < min || x > max) {
        error_at(l, v, "%s %s out of range (%s)", what, show(l, s), range);
        return -1;
    }
    *out = x;
    return 0;
}

static int
get_duration(struct loader *l, const char *what, const yaml_node_t *v,
             uint64_t min, uint64_t max, const char *range, uint64_t *out)
{
    const char *s;
    uint64_t x;
    int r = get_text(l, what, "a duration", v, &s);

    if (r != 0)
        return r;
    r = units_parse_duration(s, &x);
    if (r == -ERANGE) {
        error_at(l, v, "duration \"%s\" is too large (at most 100 years)",
                 show(l, s));
        return -1;
    }
    if (r < 0) {
        error_at(l, v, "invalid duration \"%s\" (expected e.g. 30s, 5m, 2h, "
                       "14d)", show(l, s));
        return -1;
    }
    if (x < min || x > max) {
        error_at(l, v, "%s %s out of range (%s)", what, show(l, s), range);
        return -1;
    }
    *out = x;
    return 0;
}

static int
get_size(struct loader *l, const char *what, const yaml_node_t *v,
         uint64_t *out)
{
    const char *s;
    uint64_t x;
    int r = get_text(l, what, "a size", v, &s);

    if (r != 0)
        return r;
    r = units_parse_size(s, &x);
    if (r == -ERANGE) {
        error_at(l, v, "size \"%s\" is too large (at most 1T)", show(l, s));
        return -1;
    }
    if (r < 0) {
        error_at(l, v, "invalid size \"%s\" (expected e.g. 512, 10k, 5M, 1G)",
                 show(l, s));
        return -1;
    }
    *out = x;
    return 0;
}

static int
get_mailbox(struct loader *l, const char *what, const yaml_node_t *v,
            bool nullable, char **out)
{
    char *s = NULL, *err = NULL;
    int r = get_string(l, what, v, nullable ? STR_NULLABLE | STR_EMPTY_OK
                                            : STR_EMPTY_OK, &s);

    if (r != 0)
        return r;
    if (rule_check_mailbox(s, &err) < 0) {
        error_at(l, v, "%s", err);
        free(err);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

static bool
valid_name(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > MAX_NAME_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
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

static bool
mailbox_eq(const char *a, const char *b)
{
    return strcmp(a, b) == 0 ||
           (util_strcaseeq(a, "INBOX") && util_strcaseeq(b, "INBOX"));
}

/* A mailbox name or a sequence of them. Returns 0, 1 (null) or -1; an
 * empty sequence is an error. Positions go to *pos_r when asked for. */
static int
get_mailbox_list(struct loader *l, const yaml_node_t *v, char ***list_r,
                 size_t *n_r, struct pos **pos_r)
{
    const yaml_node_item_t *items;
    size_t n_items;
    char **list;
    struct pos *pos;
    size_t n = 0;
    bool bad = false;

    if (v->type == YAML_SCALAR_NODE && is_null(v))
        return 1;
    if (v->type == YAML_MAPPING_NODE) {
        error_at(l, v, "mailboxes must be a mailbox name or a list of them, "
                       "not a mapping");
        return -1;
    }
    if (v->type == YAML_SCALAR_NODE) {
        items = NULL;
        n_items = 1;
    } else {
        items = v->data.sequence.items.start;
        n_items = (size_t)(v->data.sequence.items.top - items);
        if (n_items == 0) {
            error_at(l, v, "mailboxes must list at least one mailbox");
            return -1;
        }
    }
    list = xcalloc(n_items, sizeof(*list));
    pos = xcalloc(n_items, sizeof(*pos));
    for (size_t i = 0; i < n_items; i++) {
        const yaml_node_t *item = items == NULL ? v : visit(l, items[i]);
        char *name = NULL;
        size_t j;

        if (item == NULL) {
            bad = true;
            break;
        }
        if (get_mailbox(l, "mailbox", item, false, &name) < 0) {
            bad = true;
            continue;
        }
        for (j = 0; j < n && !mailbox_eq(list[j], name); j++)
            ;
        if (j < n) {
            struct pos at = node_pos(item);

            error_pos(l, at.line, at.col,
                      "mailbox \"%s\" is listed twice (first at %u:%u)",
                      show(l, name), pos[j].line, pos[j].col);
            free(name);
            bad = true;
            continue;
        }
        /* INBOX is case-insensitive (RFC 3501): one spelling downstream */
        if (util_strcaseeq(name, "INBOX"))
            memcpy(name, "INBOX", 5);
        pos[n] = node_pos(item);
        list[n++] = name;
    }
    if (bad) {
        for (size_t i = 0; i < n; i++)
            free(list[i]);
        free(list);
        free(pos);
        return -1;
    }
    *list_r = list;
    *n_r = n;
    if (pos_r != NULL)
        *pos_r = pos;
    else
        free(pos);
    return 0;
}

/* --- connection settings ------------------------------------------------- */

static void
conn_free(struct conn *cn)
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
    struct pos p = node_pos(v);
    uint64_t x = 0;
    unsigned w = 0;
    bool b = false;
    char *s = NULL;
    int r = -1;

    switch (f->type) {
    case FT_INT:
        r = get_uint(l, f->name, v, f->min, f->max, f->range, &x);
        break;
    case FT_DURATION:
        r = get_duration(l, f->name, v, f->min, f->max, f->range, &x);
        break;
    case FT_BOOL:
        r = get_bool(l, f->name, v, &b);
        x = b;
        break;
    case FT_WORD:
        r = get_word(l, f->name, f->words, f->expect, v, &w);
        x = w;
        break;
    case FT_PATH:
        r = get_string(l, f->name, v, STR_NULLABLE, &s);
        break;
    case FT_MAILBOX:
        r = get_mailbox(l, f->name, v, true, &s);
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

static void
format_duration(struct buf *b, uint64_t s)
{
    static const struct {
        char unit;
        uint64_t secs;
    } units[] = {{'w', 604800}, {'d', 86400}, {'h', 3600}, {'m', 60},
                 {'s', 1}};

    if (s == 0) {
        buf_append_str(b, "0s");
        return;
    }
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (s >= units[i].secs) {
            buf_printf(b, "%llu%c",
                       (unsigned long long)(s / units[i].secs), units[i].unit);
            s %= units[i].secs;
        }
    }
}

/* --- top-level sections -------------------------------------------------- */

static void
parse_daemon(struct loader *l, const yaml_node_t *map)
{
    struct config_daemon *d = &l->c->daemon;
    struct entry *e;
    size_t n;

    if (is_null(map))
        return;
    if (map->type != YAML_MAPPING_NODE) {
        error_at(l, map, "daemon must be a mapping, not %s", node_kind(map));
        return;
    }
    n = map_entries(l, map, &e);
    for (size_t i = 0; i < n; i++) {
        const char *key = e[i].key;
        const yaml_node_t *v = e[i].vnode;
        char *s = NULL;
        unsigned w;
        bool b;

        if (strcmp(key, "control_socket") == 0) {
            if (get_string(l, key, v, STR_NULLABLE | STR_EMPTY_OK, &s) != 0)
                continue;
            if (strlen(s) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
                error_at(l, v, "control_socket path is too long (%zu bytes, "
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
            int r = get_text(l, key, "an octal mode such as 0600", v, &t);
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
                error_at(l, v, "control_mode must be an octal mode such as "
                               "0600 (at most 0777)");
                continue;
            }
            d->control_mode = (mode_t)mode;
        } else if (strcmp(key, "control_group") == 0) {
            if (get_string(l, key, v, STR_NULLABLE, &s) != 0)
                continue;
            free(d->control_group);
            d->control_group = s;
        } else if (strcmp(key, "log_level") == 0) {
            if (get_word(l, key, level_words,
                         "error, warning, notice, info, debug or trace", v,
                         &w) != 0)
                continue;
            if (log_level_parse(level_words[w], &d->log_level) < 0)
                d->log_level = LL_INFO;
        } else if (strcmp(key, "dry_run") == 0) {
            if (get_bool(l, key, v, &b) == 0)
                d->dry_run = b;
        } else if (strcmp(key, "audit") == 0) {
            if (get_word(l, key, audit_words, "messages or counts", v,
                         &w) == 0)
                d->audit = (enum config_audit)w;
        } else {
            unknown_key(l, &e[i], "in daemon", daemon_keys,
                        ARRAY_SIZE(daemon_keys));
        }
    }
    free(e);
}

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

static void
parse_defaults(struct loader *l, const yaml_node_t *map)
{
    const char *names[CK_COUNT];
    struct entry *e;
    size_t n;

    if (is_null(map))
        return;
    if (map->type != YAML_MAPPING_NODE) {
        error_at(l, map, "defaults must be a mapping, not %s",
                 node_kind(map));
        return;
    }
    for (size_t k = 0; k < CK_COUNT; k++)
        names[k] = conn_fields[k].name;
    n = map_entries(l, map, &e);
    for (size_t i = 0; i < n; i++) {
        int k = conn_lookup(e[i].key);

        if (k >= 0)
            conn_parse(l, &l->defaults, (enum conn_key)k, e[i].vnode);
        else if (is_account_only_key(e[i].key))
            error_at(l, e[i].knode, "\"%s\" is not allowed in defaults (set "
                     "it in each account)", e[i].key);
        else
            unknown_key(l, &e[i], "in defaults", names, CK_COUNT);
    }
    free(e);
}

/* --- rules --------------------------------------------------------------- */

/* Stands in for a match key whose value was bad, so that the structural
 * checks of rule_validate() still run and report only real problems. */
static struct rule_node *
placeholder(const yaml_node_t *at)
{
    struct pos p = node_pos(at);

    return rule_node_new(RULE_SEEN, p.line, p.col);
}

static void build_match(struct loader *l, const yaml_node_t *map,
                        struct rule_node *and_node, unsigned depth);

/* The index of the last character of the bracket expression at p[i]. */
static size_t
bracket_end(const char *p, size_t i)
{
    size_t j = i + 1;

    if (p[j] == '^')
        j++;
    if (p[j] == ']')
        j++;
    while (p[j] != '\0' && p[j] != ']') {
        if (p[j] == '[' && (p[j + 1] == ':' || p[j + 1] == '=' ||
                            p[j + 1] == '.')) {
            char end = p[j + 1];
            size_t k = j + 2;

            while (p[k] != '\0' && !(p[k] == end && p[k + 1] == ']'))
                k++;
            j = p[k] != '\0' ? k + 2 : k;
            continue;
        }
        j++;
    }
    return p[j] != '\0' ? j : j - 1;
}

static size_t
cap_size(size_t v)
{
    return v > REGEX_MAX_SIZE ? REGEX_MAX_SIZE + 1 : v;
}

/* glibc's regcomp() recurses once per level of parentheses (deep nesting
 * overflows the stack) and expands bounded repetitions, taking time that
 * grows with about the square of the expanded size. Estimate that size
 * (each {n,m} multiplies what it repeats by its largest count) and refuse
 * what would crash or stall; also back-references, a GNU extension to EREs
 * that makes matching exponential. Returns the size, or 0 and *err_r. */
static size_t
regex_size(const char *what, const char *p, char **err_r)
{
    struct {
        size_t sum;   /* positions in this group so far */
        size_t last;  /* size of the last atom, for a following {n,m} */
    } st[REGEX_MAX_DEPTH + 1];
    unsigned depth = 0;

    st[0].sum = st[0].last = 0;
    for (size_t i = 0; p[i] != '\0'; i++) {
        size_t atom = 1;

        switch (p[i]) {
        case '\\':
            if (p[i + 1] >= '1' && p[i + 1] <= '9') {
                *err_r = xasprintf("%s: back-references (\\%c) are not "
                                   "supported", what, p[i + 1]);
                return 0;
            }
            if (p[i + 1] != '\0')
                i++;
            break;
        case '[':
            i = bracket_end(p, i);
            break;
        case '(':
            if (depth == REGEX_MAX_DEPTH) {
                *err_r = xasprintf("%s: nested too deeply (at most %d "
                                   "levels of parentheses)", what,
                                   REGEX_MAX_DEPTH);
                return 0;
            }
            depth++;
            st[depth].sum = st[depth].last = 0;
            continue;
        case ')':
            if (depth == 0)
                break;
            atom = st[depth].sum > 0 ? st[depth].sum : 1;
            depth--;
            break;
        case '|':
            st[depth].last = 0;
            continue;
        case '*':
        case '+':
        case '?':
            continue;
        case '{': {
            size_t j = i + 1, lo = 0, hi = 0, count;
            bool has_lo = false, has_hi = false, comma = false;

            for (; p[j] >= '0' && p[j] <= '9'; j++, has_lo = true)
                lo = lo > 100000 ? lo : lo * 10 + (size_t)(p[j] - '0');
            if (p[j] == ',') {
                comma = true;
                for (j++; p[j] >= '0' && p[j] <= '9'; j++, has_hi = true)
                    hi = hi > 100000 ? hi : hi * 10 + (size_t)(p[j] - '0');
            }
            if (p[j] != '}' || (!has_lo && !has_hi))
                break;  /* not an interval: regcomp() decides */
            count = !comma ? lo : has_hi ? hi : lo + 1;
            if (count == 0)
                count = 1;
            st[depth].sum = cap_size(st[depth].sum +
                                     st[depth].last * (count - 1));
            st[depth].last = cap_size(st[depth].last * count);
            i = j;
            continue;
        }
        default:
            break;
        }
        st[depth].sum = cap_size(st[depth].sum + atom);
        st[depth].last = atom;
    }
    /* unclosed groups: regcomp() reports them; count their contents */
    for (; depth > 0; depth--)
        st[depth - 1].sum = cap_size(st[depth - 1].sum + st[depth].sum);
    if (st[0].sum > REGEX_MAX_SIZE) {
        *err_r = xasprintf("%s: regular expression too large (more than %d "
                           "positions once {n,m} are expanded)", what,
                           REGEX_MAX_SIZE);
        return 0;
    }
    return st[0].sum > 0 ? st[0].sum : 1;
}

static int
set_regex(struct loader *l, struct rule_node *node, const char *pattern,
          char **err_r)
{
    const char *what = rule_key_name(node->key);
    size_t size = regex_size(what, pattern, err_r);
    uint64_t cost = (uint64_t)size * size;

    if (size == 0)
        return -EINVAL;
    /* bounds the compile time of the whole file, aliases included */
    if (l->regex_cost + cost > REGEX_BUDGET) {
        *err_r = xasprintf("%s: too many or too large regular expressions "
                           "in total", what);
        return -EINVAL;
    }
    l->regex_cost += cost;
    return rule_node_set_regex(node, pattern, err_r);
}

/* A leaf that sets one value from a text scalar. */
static bool
build_leaf(struct loader *l, enum rule_key k, const struct entry *e,
           struct rule_node *and_node)
{
    const char *name = rule_key_name(k);
    const yaml_node_t *v = e->vnode;
    struct pos p = node_pos(e->knode);
    struct rule_node *node = rule_node_new(k, p.line, p.col);
    const char *s = NULL;
    char *err = NULL;
    uint64_t x = 0;
    bool b = false;
    int r = 0;

    switch (rule_key_value_kind(k)) {
    case RULE_VALUE_TRUE:
        r = get_bool(l, name, v, &b);
        if (r == 1)
            error_at(l, v, "%s must be true, not null", name);
        else if (r == 0 && !b)
            error_at(l, v, "%s must be true (remove the key otherwise)",
                     name);
        r = r == 0 && b ? 0 : -1;
        break;
    case RULE_VALUE_STRING:
        r = need_text(l, name, "a string", v, &s);
        if (r == 0)
            r = rule_node_set_string(node, s, &err);
        break;
    case RULE_VALUE_DURATION:
        r = get_duration(l, name, v, 1, UNITS_DURATION_MAX, "at least 1s",
                         &x);
        if (r == 1)
            error_at(l, v, "%s must be a duration, not null", name);
        node->num = x;
        break;
    case RULE_VALUE_SIZE:
        r = get_size(l, name, v, &x);
        if (r == 1)
            error_at(l, v, "%s must be a size, not null", name);
        node->num = x;
        break;
    case RULE_VALUE_BOOL:
        r = get_bool(l, name, v, &b);
        if (r == 1)
            error_at(l, v, "%s must be true or false, not null", name);
        node->flag = b;
        break;
    case RULE_VALUE_DIGEST:
        r = need_text(l, name, "a hex digest", v, &s);
        if (r == 0)
            r = rule_node_set_digest(node, s, &err);
        break;
    case RULE_VALUE_REGEX:
        r = need_text(l, name, "a regular expression", v, &s);
        if (r == 0)
            r = set_regex(l, node, s, &err);
        break;
    case RULE_VALUE_DUPLICATE:
        r = need_text(l, name, "message_id or body", v, &s);
        if (r == 0)
            r = rule_node_set_duplicate(node, s, &err);
        break;
    default:
        r = -1;
        break;
    }
    if (err != NULL) {
        error_at(l, v, "%s", err);
        free(err);
    }
    if (r != 0) {
        rule_node_free(node);
        return false;
    }
    rule_node_add_child(and_node, node);
    return true;
}

/* header / header_regex: one node per "Name: value" entry. */
static bool
build_header_map(struct loader *l, enum rule_key k, const struct entry *e,
                 struct rule_node *and_node)
{
    const char *name = rule_key_name(k);
    const yaml_node_t *v = e->vnode;
    struct entry *he;
    size_t n;
    bool ok = true;

    if (v->type != YAML_MAPPING_NODE) {
        error_at(l, v, "%s must be a mapping of header names to %s, not %s",
                 name, k == RULE_HEADER ? "strings" : "regular expressions",
                 node_kind(v));
        return false;
    }
    n = map_entries(l, v, &he);
    if (n == 0 && v->data.mapping.pairs.top == v->data.mapping.pairs.start) {
        error_at(l, v, "%s needs at least one \"Name: value\" entry", name);
        free(he);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        struct pos p = node_pos(he[i].knode);
        struct rule_node *node = rule_node_new(k, p.line, p.col);
        char *err = NULL;
        const char *s;
        int r;

        if (rule_node_set_header_name(node, he[i].key, &err) < 0) {
            error_at(l, he[i].knode, "%s", err);
            free(err);
            err = NULL;
            ok = false;
        }
        r = need_text(l, name, k == RULE_HEADER ? "a string"
                                                : "a regular expression",
                      he[i].vnode, &s);
        if (r == 0) {
            if (k == RULE_HEADER)
                r = rule_node_set_string(node, s, &err);
            else
                r = set_regex(l, node, s, &err);
        }
        if (err != NULL) {
            error_at(l, he[i].vnode, "%s", err);
            free(err);
        }
        if (r != 0)
            ok = false;
        rule_node_add_child(and_node, node);
    }
    free(he);
    return ok && n > 0;
}

static bool
build_nested(struct loader *l, enum rule_key k, const struct entry *e,
             struct rule_node *and_node, unsigned depth)
{
    const yaml_node_t *v = e->vnode;
    struct pos p = node_pos(e->knode);
    struct rule_node *node;

    if (depth + 1 > MAX_MATCH_DEPTH) {
        error_at(l, e->knode, "match nested too deeply (at most %d levels "
                 "of any/not)", MAX_MATCH_DEPTH);
        return false;
    }
    if (k == RULE_NOT) {
        struct rule_node *child;
        struct pos mp;

        if (v->type != YAML_MAPPING_NODE) {
            error_at(l, v, "not must be a match mapping, not %s",
                     node_kind(v));
            return false;
        }
        mp = node_pos(v);
        node = rule_node_new(RULE_NOT, p.line, p.col);
        child = rule_node_new(RULE_AND, mp.line, mp.col);
        build_match(l, v, child, depth + 1);
        rule_node_add_child(node, child);
    } else {
        const yaml_node_item_t *items;
        size_t n_items;

        if (v->type != YAML_SEQUENCE_NODE) {
            error_at(l, v, "any must be a list of match mappings, not %s",
                     node_kind(v));
            return false;
        }
        node = rule_node_new(RULE_ANY, p.line, p.col);
        items = v->data.sequence.items.start;
        n_items = (size_t)(v->data.sequence.items.top - items);
        for (size_t i = 0; i < n_items && !l->aborted; i++) {
            const yaml_node_t *item = visit(l, items[i]);
            struct rule_node *child;
            struct pos ip;

            if (item == NULL)
                break;
            if (item->type != YAML_MAPPING_NODE) {
                error_at(l, item, "any items must be match mappings, not %s",
                         node_kind(item));
                rule_node_add_child(node, placeholder(item));
                continue;
            }
            ip = node_pos(item);
            child = rule_node_new(RULE_AND, ip.line, ip.col);
            build_match(l, item, child, depth + 1);
            rule_node_add_child(node, child);
        }
    }
    rule_node_add_child(and_node, node);
    return true;
}

static void
build_match(struct loader *l, const yaml_node_t *map,
            struct rule_node *and_node, unsigned depth)
{
    const char *names[RULE_KEY_COUNT];
    struct entry *e;
    size_t n;

    for (unsigned k = 0; k < RULE_KEY_COUNT; k++)
        names[k] = k == RULE_AND ? NULL : rule_key_name((enum rule_key)k);
    n = map_entries(l, map, &e);
    for (size_t i = 0; i < n && !l->aborted; i++) {
        enum rule_key k;
        bool ok;

        if (rule_key_lookup(e[i].key, &k) < 0) {
            unknown_key(l, &e[i], "in match", names, RULE_KEY_COUNT);
            ok = false;
        } else {
            switch (rule_key_value_kind(k)) {
            case RULE_VALUE_MATCH:
            case RULE_VALUE_MATCH_LIST:
                ok = build_nested(l, k, &e[i], and_node, depth);
                break;
            case RULE_VALUE_HEADER_MAP:
                ok = build_header_map(l, k, &e[i], and_node);
                break;
            default:
                ok = build_leaf(l, k, &e[i], and_node);
                break;
            }
        }
        if (!ok)
            rule_node_add_child(and_node, placeholder(e[i].knode));
    }
    /* keys left out by map_entries were reported: not an empty match */
    if (and_node->n_children == 0 &&
        map->data.mapping.pairs.top != map->data.mapping.pairs.start)
        rule_node_add_child(and_node, placeholder(map));
    free(e);
}

static bool
get_flags(struct loader *l, struct rule *r, const yaml_node_t *v)
{
    const yaml_node_item_t *items = NULL;
    size_t n_items = 1;
    bool ok = true;

    if (v->type == YAML_MAPPING_NODE) {
        error_at(l, v, "flag must be a flag or a list of flags, not a "
                       "mapping");
        return false;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        items = v->data.sequence.items.start;
        n_items = (size_t)(v->data.sequence.items.top - items);
    }
    if (is_null(v) || n_items == 0) {
        error_at(l, v, "flag needs at least one flag");
        return false;
    }
    r->flags = xcalloc(n_items, sizeof(*r->flags));
    for (size_t i = 0; i < n_items; i++) {
        const yaml_node_t *item = items == NULL ? v : visit(l, items[i]);
        const char *s;
        char *err = NULL;
        size_t j;

        if (item == NULL)
            return false;
        if (need_text(l, "flag", "a string", item, &s) != 0) {
            ok = false;
            continue;
        }
        if (rule_check_flag(s, &err) < 0) {
            error_at(l, item, "%s", err);
            free(err);
            ok = false;
            continue;
        }
        for (j = 0; j < r->n_flags && !util_strcaseeq(r->flags[j], s); j++)
            ;
        if (j < r->n_flags) {
            error_at(l, item, "flag \"%s\" is listed twice", show(l, s));
            ok = false;
            continue;
        }
        r->flags[r->n_flags++] = xstrdup(s);
    }
    return ok;
}

static void
parse_action(struct loader *l, struct rule *r, const yaml_node_t *v)
{
    static const char must[] = "action must be delete, trash, "
                               "{move: MAILBOX} or {flag: FLAGS}";
    struct entry *e;
    const char *s;
    size_t n;

    if (v->type == YAML_SCALAR_NODE && !is_null(v)) {
        if (get_text(l, "action", "a string", v, &s) != 0)
            return;
        if (strcmp(s, "delete") == 0)
            r->action = RULE_ACTION_DELETE;
        else if (strcmp(s, "trash") == 0)
            r->action = RULE_ACTION_TRASH;
        else if (strcmp(s, "move") == 0)
            error_at(l, v, "move needs a target mailbox");
        else if (strcmp(s, "flag") == 0)
            error_at(l, v, "flag needs at least one flag");
        else
            error_at(l, v, "%s", must);
        return;
    }
    if (v->type != YAML_MAPPING_NODE) {
        error_at(l, v, "%s, not %s", must, node_kind(v));
        return;
    }
    n = map_entries(l, v, &e);
    if (v->data.mapping.pairs.top - v->data.mapping.pairs.start != 1) {
        error_at(l, v, "action must have exactly one key: move or flag");
        free(e);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *tv = e[i].vnode;

        if (strcmp(e[i].key, "move") == 0) {
            r->action = RULE_ACTION_MOVE;
            if (tv->type == YAML_SCALAR_NODE &&
                (is_null(tv) || tv->data.scalar.length == 0))
                error_at(l, tv, "move needs a target mailbox");
            else
                get_mailbox(l, "move", tv, false, &r->target);
        } else if (strcmp(e[i].key, "flag") == 0) {
            r->action = RULE_ACTION_FLAG;
            get_flags(l, r, tv);
        } else {
            unknown_key(l, &e[i], "in action", action_keys,
                        ARRAY_SIZE(action_keys));
        }
    }
    free(e);
}

static void
validate_report(void *arg, unsigned line, unsigned col, const char *msg)
{
    error_pos(arg, line, col, "%s", msg);
}

static void
parse_rule(struct loader *l, const yaml_node_t *map, size_t index)
{
    struct config *c = l->c;
    struct rule_info *ri = &l->rinfo[c->n_rules];
    struct pos mp = node_pos(map);
    const yaml_node_t *name_v = NULL;
    const char *name = NULL;
    struct rule *r;
    struct entry *e;
    char label[320];
    bool has_match = false, has_action = false;
    size_t n;

    n = map_entries(l, map, &e);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].key, "name") == 0)
            name_v = e[i].vnode;
    }
    if (name_v == NULL) {
        error_at(l, map, "rule #%zu has no name", index + 1);
    } else if (need_text(l, "name", "a string", name_v, &name) == 0) {
        ri->name_pos = node_pos(name_v);
        if (!valid_name(name)) {
            error_at(l, name_v, "invalid rule name \"%s\" (1 to %d letters, "
                     "digits, '.', '_' or '-')", show(l, name), MAX_NAME_LEN);
        }
        for (size_t j = 0; j < c->n_rules; j++) {
            if (l->rinfo[j].has_name && strcmp(c->rules[j]->name, name) == 0) {
                error_at(l, name_v, "rule \"%s\" is defined twice (first at "
                         "%u:%u)", show(l, name), l->rinfo[j].name_pos.line,
                         l->rinfo[j].name_pos.col);
                break;
            }
        }
        ri->has_name = true;
    }
    if (ri->has_name)
        snprintf(label, sizeof(label), "rule \"%s\"", show(l, name));
    else
        snprintf(label, sizeof(label), "rule #%zu", index + 1);
    r = rule_new(ri->has_name ? name : "", mp.line, mp.col);
    c->rules[c->n_rules++] = r;

    for (size_t i = 0; i < n && !l->aborted; i++) {
        const char *key = e[i].key;
        const yaml_node_t *v = e[i].vnode;

        if (strcmp(key, "name") == 0) {
            continue;
        } else if (strcmp(key, "mailboxes") == 0) {
            get_mailbox_list(l, v, &r->mailboxes, &r->n_mailboxes,
                             &ri->mb_pos);
        } else if (strcmp(key, "match") == 0) {
            struct pos p = node_pos(v);

            has_match = true;
            if (v->type != YAML_MAPPING_NODE) {
                error_at(l, v, "match must be a mapping, not %s",
                         node_kind(v));
                continue;
            }
            r->match = rule_node_new(RULE_AND, p.line, p.col);
            build_match(l, v, r->match, 0);
        } else if (strcmp(key, "action") == 0) {
            has_action = true;
            parse_action(l, r, v);
        } else if (strcmp(key, "keep_newest") == 0) {
            uint64_t x;

            if (get_uint(l, key, v, 1, UINT32_MAX, "1 or more", &x) == 0)
                r->keep_newest = (uint32_t)x;
        } else if (strcmp(key, "dry_run") == 0) {
            bool b;

            if (get_bool(l, key, v, &b) == 0)
                r->dry_run = b;
        } else {
            unknown_key(l, &e[i], "in rule", rule_keys,
                        ARRAY_SIZE(rule_keys));
        }
    }
    free(e);
    if (l->aborted)
        return;
    if (!has_match)
        error_at(l, map, "%s has no match", label);
    if (!has_action)
        error_at(l, map, "%s has no action", label);
    if (r->match != NULL)
        rule_validate(r, validate_report, l);
}

static void
parse_rules(struct loader *l, const yaml_node_t *seq)
{
    const yaml_node_item_t *items;
    size_t n_items;

    if (seq->type != YAML_SEQUENCE_NODE) {
        error_at(l, seq, "rules must be a list of rules, not %s",
                 node_kind(seq));
        return;
    }
    items = seq->data.sequence.items.start;
    n_items = (size_t)(seq->data.sequence.items.top - items);
    l->c->rules = xcalloc(n_items, sizeof(*l->c->rules));
    l->rinfo = xcalloc(n_items, sizeof(*l->rinfo));
    for (size_t i = 0; i < n_items && !l->aborted; i++) {
        const yaml_node_t *item = visit(l, items[i]);

        if (item == NULL)
            break;
        if (item->type != YAML_MAPPING_NODE) {
            error_at(l, item, "rule must be a mapping, not %s",
                     node_kind(item));
            continue;
        }
        parse_rule(l, item, i);
    }
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
                   show(l, c->rules[i]->name));
        shown++;
    }
    if (shown == 0)
        error_at(l, at, "unknown rule \"%s\" (no rules are defined)",
                 show(l, name));
    else
        error_at(l, at, "unknown rule \"%s\" (defined rules: %s)",
                 show(l, name), buf_cstr(&list));
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

    if (v->type == YAML_SCALAR_NODE && is_null(v))
        return;  /* every rule: filled in by the caller */
    if (v->type == YAML_MAPPING_NODE) {
        error_at(l, v, "rules must be a list of rule names, not a mapping");
        return;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        items = v->data.sequence.items.start;
        n_items = (size_t)(v->data.sequence.items.top - items);
    }
    a->rules = xcalloc(n_items, sizeof(*a->rules));
    pos = xcalloc(n_items, sizeof(*pos));
    if (n_items == 0) {
        struct pos p = node_pos(v);

        warning_pos(l, p.line, p.col, "%s has an empty rule list: nothing "
                    "will be acted on in its mailboxes", label);
    }
    for (size_t i = 0; i < n_items; i++) {
        const yaml_node_t *item = items == NULL ? v : visit(l, items[i]);
        const char *s;
        size_t j, k;

        if (item == NULL)
            break;
        if (need_text(l, "rule name", "a string", item, &s) != 0)
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
            error_at(l, item, "rule \"%s\" is listed twice (first at %u:%u)",
                     show(l, s), pos[k].line, pos[k].col);
            continue;
        }
        pos[a->n_rules] = node_pos(item);
        a->rules[a->n_rules++] = j;
    }
    free(pos);
    qsort(a->rules, a->n_rules, sizeof(*a->rules), size_cmp);
}

static void
check_secret(struct loader *l, enum config_secret_kind kind,
             const struct entry *e, const char *value)
{
    const char *key = secret_keys[kind];

    if (kind == CONFIG_SECRET_CREDENTIAL &&
        (strchr(value, '/') != NULL || strcmp(value, ".") == 0 ||
         strcmp(value, "..") == 0))
        error_at(l, e->vnode, "password_credential must be a plain "
                 "credential name without '/'");
    if (kind == CONFIG_SECRET_ENV && !valid_env_name(value))
        error_at(l, e->vnode, "invalid environment variable name \"%s\" "
                 "(letters, digits and '_', not starting with a digit)",
                 show(l, value));
    if (kind == CONFIG_SECRET_INLINE && l->check_mode &&
        (l->mode & (S_IRGRP | S_IROTH)) != 0) {
        struct pos p = node_pos(e->knode);

        warning_pos(l, p.line, p.col, "inline %s in a file readable by "
                    "group or others (mode %04o): use password_file, "
                    "password_credential or chmod 600", key,
                    (unsigned)(l->mode & 07777));
    }
}

static void
parse_account(struct loader *l, const yaml_node_t *map, size_t index)
{
    struct config *c = l->c;
    struct config_account *a = &c->accounts[c->n_accounts];
    struct pos mp = node_pos(map), *apos = &l->apos[c->n_accounts];
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

    n = map_entries(l, map, &e);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].key, "name") == 0)
            name_v = e[i].vnode;
    }
    if (name_v == NULL) {
        error_at(l, map, "account #%zu has no name", index + 1);
    } else if (get_string(l, "name", name_v, STR_EMPTY_OK, &a->name) == 0) {
        *apos = node_pos(name_v);
        if (!valid_name(a->name))
            error_at(l, name_v, "invalid account name \"%s\" (1 to %d "
                     "letters, digits, '.', '_' or '-')", show(l, a->name),
                     MAX_NAME_LEN);
        for (size_t j = 0; j + 1 < c->n_accounts; j++) {
            if (c->accounts[j].name != NULL &&
                strcmp(c->accounts[j].name, a->name) == 0) {
                error_at(l, name_v, "account \"%s\" is defined twice (first "
                         "at %u:%u)", show(l, a->name), l->apos[j].line,
                         l->apos[j].col);
                break;
            }
        }
    }
    if (a->name != NULL)
        snprintf(label, sizeof(label), "account \"%s\"", show(l, a->name));
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
            get_string(l, key, v, 0, &a->host);
            continue;
        }
        if (strcmp(key, "user") == 0) {
            user_given = true;
            get_string(l, key, v, 0, &a->user);
            continue;
        }
        if (strcmp(key, "tunnel") == 0) {
            get_string(l, key, v, 0, &a->tunnel);
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
            unknown_key(l, &e[i], "in account", names, n_names);
            continue;
        }
        if (secret_e != NULL) {
            error_at(l, e[i].knode, "%s has two secret sources (%s and %s)",
                     label, secret_e->key, key);
            continue;
        }
        secret_e = &e[i];
        a->secret.kind = (enum config_secret_kind)kind;
        if (kind == CONFIG_SECRET_TOKEN_COMMAND)
            token_e = &e[i];
        if (get_string(l, key, v, 0, &a->secret.value) == 0)
            check_secret(l, a->secret.kind, &e[i], a->secret.value);
    }
    if (l->aborted) {
        free(e);
        conn_free(&acc);
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

    if (a->reconnect_min > a->reconnect_max) {
        const struct conn *src =
            conn_source(&acc, &l->defaults, CK_RECONNECT_MAX);
        enum conn_key at = CK_RECONNECT_MAX;
        struct buf t;

        if (src == NULL) {
            at = CK_RECONNECT_MIN;
            src = conn_source(&acc, &l->defaults, CK_RECONNECT_MIN);
        }
        buf_init(&t, BUF_NOCAP);
        buf_append_str(&t, "reconnect_max (");
        format_duration(&t, a->reconnect_max);
        buf_append_str(&t, ") is less than reconnect_min (");
        format_duration(&t, a->reconnect_min);
        buf_append_char(&t, ')');
        if (src != NULL)
            error_pos(l, src->line[at], src->col[at], "%s", buf_cstr(&t));
        else
            error_pos(l, mp.line, mp.col, "%s", buf_cstr(&t));
        buf_free(&t);
    }

    if (a->tunnel == NULL) {
        if (!host_given)
            error_at(l, map, "%s has no host", label);
        if (!user_given)
            error_at(l, map, "%s has no user", label);
        if (secret_e == NULL)
            error_at(l, map, "%s has no secret source (give one of "
                     "password_file, password_command, password_credential, "
                     "password_env, password, token_command)", label);
    }
    if (token_e != NULL && a->auth != CONFIG_AUTH_AUTO &&
        a->auth != CONFIG_AUTH_XOAUTH2 && a->auth != CONFIG_AUTH_OAUTHBEARER)
        error_at(l, token_e->knode, "token_command needs auth xoauth2, "
                 "oauthbearer or auto (not %s)", auth_words[a->auth]);

    if (mailboxes_v == NULL)
        error_at(l, map, "%s has no mailboxes", label);
    else if (get_mailbox_list(l, mailboxes_v, &a->mailboxes,
                              &a->n_mailboxes, NULL) == 1)
        error_at(l, mailboxes_v, "mailboxes must list at least one mailbox");

    if (rules_v != NULL)
        parse_account_rules(l, a, label, rules_v);
    if (a->rules == NULL) {
        a->rules = xcalloc(c->n_rules, sizeof(*a->rules));
        for (size_t i = 0; i < c->n_rules; i++)
            a->rules[i] = i;
        a->n_rules = c->n_rules;
    }
    free(e);
    conn_free(&acc);
}

static void
parse_accounts(struct loader *l, const yaml_node_t *seq)
{
    const yaml_node_item_t *items;
    size_t n_items;

    if (seq->type == YAML_SCALAR_NODE && is_null(seq)) {
        error_at(l, seq, "at least one account is required");
        return;
    }
    if (seq->type != YAML_SEQUENCE_NODE) {
        error_at(l, seq, "accounts must be a list of accounts, not %s",
                 node_kind(seq));
        return;
    }
    items = seq->data.sequence.items.start;
    n_items = (size_t)(seq->data.sequence.items.top - items);
    if (n_items == 0) {
        error_at(l, seq, "at least one account is required");
        return;
    }
    l->c->accounts = xcalloc(n_items, sizeof(*l->c->accounts));
    l->apos = xcalloc(n_items, sizeof(*l->apos));
    for (size_t i = 0; i < n_items && !l->aborted; i++) {
        const yaml_node_t *item = visit(l, items[i]);

        if (item == NULL)
            break;
        if (item->type != YAML_MAPPING_NODE) {
            error_at(l, item, "account must be a mapping, not %s",
                     node_kind(item));
            continue;
        }
        parse_account(l, item, i);
    }
}

/* A rule restricted to a mailbox that no account using it watches never
 * acts there: most likely a typo. */
static void
check_rule_mailboxes(struct loader *l)
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
                    if (mailbox_eq(acc->mailboxes[i], rule->mailboxes[m]))
                        watched = true;
                }
            }
            if (!watched)
                warning_pos(l, l->rinfo[r].mb_pos[m].line,
                            l->rinfo[r].mb_pos[m].col,
                            "rule \"%s\" applies to mailbox \"%s\", which "
                            "no account using the rule watches",
                            show(l, rule->name), show(l, rule->mailboxes[m]));
        }
    }
}

static void
parse_top(struct loader *l, const yaml_node_t *root)
{
    const yaml_node_t *daemon = NULL, *defaults = NULL, *accounts = NULL;
    const yaml_node_t *rules = NULL;
    struct entry *e;
    size_t n;

    if (root->type != YAML_MAPPING_NODE) {
        error_at(l, root, "configuration must be a mapping, not %s",
                 node_kind(root));
        return;
    }
    n = map_entries(l, root, &e);
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
            unknown_key(l, &e[i], "at top level", top_keys,
                        ARRAY_SIZE(top_keys));
    }
    free(e);
    /* rules before accounts: account rule lists refer to them */
    if (daemon != NULL && !l->aborted)
        parse_daemon(l, daemon);
    if (defaults != NULL && !l->aborted)
        parse_defaults(l, defaults);
    if (rules != NULL && !is_null(rules) && !l->aborted)
        parse_rules(l, rules);
    if (accounts == NULL) {
        struct pos p = node_pos(root);

        error_pos(l, p.line, p.col, "no accounts defined (at least one "
                  "account is required)");
    } else if (!l->aborted) {
        parse_accounts(l, accounts);
    }
    if (l->aborted)
        return;
    /* (a rules value of the wrong type was reported already) */
    if (l->c->n_rules == 0 && (rules == NULL || is_null(rules) ||
                               rules->type == YAML_SEQUENCE_NODE)) {
        struct pos p = node_pos(rules != NULL ? rules : root);

        warning_pos(l, p.line, p.col,
                    "no rules defined: nothing will be acted on");
    }
    if (!has_errors(l))
        check_rule_mailboxes(l);
}

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
        error_pos(l, 1, 1, "out of memory while parsing");
        return;
    }
    if (parser->error == YAML_READER_ERROR) {
        p = offset_pos(l, parser->problem_offset);
    } else {
        p.line = (unsigned)parser->problem_mark.line + 1;
        p.col = (unsigned)parser->problem_mark.column + 1;
    }
    error_pos(l, p.line, p.col, "YAML syntax error: %s%s%s",
              parser->problem != NULL ? parser->problem : "unknown problem",
              parser->context != NULL ? " " : "",
              parser->context != NULL ? parser->context : "");
}

static void
account_free(struct config_account *a)
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
    free(a->rules);
}

static void
config_free(struct config *c)
{
    for (size_t i = 0; i < c->n_accounts; i++)
        account_free(&c->accounts[i]);
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
        error_pos(l, 1, 1, "out of memory while parsing");
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
            error_pos(l, (unsigned)doc2.start_mark.line + 1,
                      (unsigned)doc2.start_mark.column + 1,
                      "more than one YAML document (a configuration is a "
                      "single document)");
        wipe_document(&doc2);
        yaml_document_delete(&doc2);
    }
    if (root == NULL || is_null(root))
        error_pos(l, 1, 1, "empty configuration");
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
    c->daemon.control_socket = xstrdup(CONFIG_DEFAULT_SOCKET);
    c->daemon.control_mode = 0600;
    c->daemon.log_level = LL_INFO;
    c->daemon.audit = CONFIG_AUDIT_MESSAGES;
    l.c = c;

    parse_stream(&l);

    conn_free(&l.defaults);
    for (size_t i = 0; l.rinfo != NULL && i < c->n_rules; i++)
        free(l.rinfo[i].mb_pos);
    free(l.rinfo);
    free(l.apos);
    for (size_t i = 0; i < SHOW_SLOTS; i++)
        buf_free(&l.show[i]);
    free(l.seen.slot);
    diag_sort(d->errors, l.first_error, d->n_errors);
    diag_sort(d->warnings, first_warning, d->n_warnings);
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
        char *msg = xasprintf("cannot read: %s", strerror(err));

        diag_add(diag, false, path, 0, 0, msg);
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

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return file_error(path, errno, diag);
    if (fstat(fd, &st) < 0) {
        ret = errno;
        close(fd);
        return file_error(path, ret, diag);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return file_error(path, EISDIR, diag);
    }
    mode = st.st_mode;
    buf_init(&data, MAX_FILE_SIZE);
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
           a->reconnect_min != b->reconnect_min ||
           a->reconnect_max != b->reconnect_max;
}

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
config_expunge_name(enum config_expunge e)
{
    return (unsigned)e < ARRAY_SIZE(expunge_words) - 1 ? expunge_words[e]
                                                        : "?";
}
