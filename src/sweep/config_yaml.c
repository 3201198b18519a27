/* SPDX-License-Identifier: MIT */
/* config_yaml: the loader's typed access to the YAML document: node
 * positions, diagnostics at a node, alias-bounded visits, mapping entries
 * with "did you mean" suggestions for unknown keys, and getters for text,
 * booleans, words, integers, durations, sizes and mailbox names. */
#include "config_private.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"
#include "util.h"

#define SHOW_MAX 60

/* --- nodes and messages -------------------------------------------------- */

struct pos
config_node_pos(const yaml_node_t *n)
{
    struct pos p;

    p.line = n->start_mark.line >= UINT_MAX ? UINT_MAX
                                            : (unsigned)n->start_mark.line + 1;
    p.col = n->start_mark.column >= UINT_MAX
                ? UINT_MAX
                : (unsigned)n->start_mark.column + 1;
    return p;
}

void PRINTF_LIKE(4, 5)
config_error_pos(struct loader *l, unsigned line, unsigned col,
                 const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_diag_report_v(l->diag, &l->seen, l->file, false, line, col,
                         fmt, ap);
    va_end(ap);
}

void PRINTF_LIKE(3, 4)
config_error_at(struct loader *l, const yaml_node_t *n, const char *fmt, ...)
{
    struct pos p = config_node_pos(n);
    va_list ap;

    va_start(ap, fmt);
    config_diag_report_v(l->diag, &l->seen, l->file, false, p.line,
                         p.col, fmt, ap);
    va_end(ap);
}

void PRINTF_LIKE(4, 5)
config_warning_pos(struct loader *l, unsigned line, unsigned col,
                   const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_diag_report_v(l->diag, &l->seen, l->file, true, line, col,
                         fmt, ap);
    va_end(ap);
}

const char *
config_show(struct loader *l, const char *s)
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

yaml_node_t *
config_visit(struct loader *l, int id)
{
    yaml_node_t *n;

    if (l->aborted)
        return NULL;
    n = yaml_document_get_node(l->doc, id);
    if (n == NULL)
        return NULL;
    if (++l->visits > l->max_visits) {
        config_error_at(l, n,
                        "configuration too complex (aliases expand to too "
                        "many nodes)");
        l->aborted = true;
        return NULL;
    }
    return n;
}

bool
config_is_null(const yaml_node_t *n)
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

const char *
config_node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a sequence";
    case YAML_SCALAR_NODE: return config_is_null(n) ? "null" : "a string";
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

void
config_unknown_key(struct loader *l, const struct entry *e, const char *where,
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
        config_error_at(l, e->knode,
                        "unknown key \"%s\" %s (did you mean \"%s\"?)",
                        config_show(l, e->key), where, best);
    else
        config_error_at(l, e->knode, "unknown key \"%s\" %s",
                        config_show(l, e->key), where);
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

/* Keys that are not text and repeated keys are reported and left out. */
size_t
config_map_entries(struct loader *l, const yaml_node_t *map,
                   struct entry **out)
{
    const yaml_node_pair_t *p = map->data.mapping.pairs.start;
    size_t n_pairs = (size_t)(map->data.mapping.pairs.top - p), n = 0, k;
    struct entry *e = xcalloc(n_pairs, sizeof(*e));
    struct entry **sorted;

    for (size_t i = 0; i < n_pairs; i++) {
        yaml_node_t *kn = config_visit(l, p[i].key),
                    *vn = config_visit(l, p[i].value);

        if (kn == NULL || vn == NULL)
            break;
        if (kn->type != YAML_SCALAR_NODE) {
            config_error_at(l, kn, "mapping key must be a string, not %s",
                            config_node_kind(kn));
            continue;
        }
        if (memchr(kn->data.scalar.value, '\0', kn->data.scalar.length)) {
            config_error_at(l, kn, "key contains a NUL character");
            continue;
        }
        if (!util_utf8_valid((const char *)kn->data.scalar.value,
                             kn->data.scalar.length)) {
            config_error_at(l, kn, "key is not valid UTF-8");
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
        struct pos first = config_node_pos(sorted[head]->knode);

        if (strcmp(sorted[i]->key, sorted[head]->key) != 0) {
            head = i;
            continue;
        }
        sorted[i]->dup = true;
        config_error_at(l, sorted[i]->knode,
                        "duplicate key \"%s\" (first at %u:%u)",
                        config_show(l, sorted[i]->key), first.line, first.col);
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

/* --- typed values -------------------------------------------------------- */

int
config_get_text(struct loader *l, const char *what, const char *expect,
                const yaml_node_t *v, const char **text_r)
{
    if (v->type != YAML_SCALAR_NODE) {
        config_error_at(l, v, "%s must be %s, not %s", what, expect,
                        config_node_kind(v));
        return -1;
    }
    if (config_is_null(v))
        return 1;
    if (memchr(v->data.scalar.value, '\0', v->data.scalar.length)) {
        config_error_at(l, v, "%s contains a NUL character", what);
        return -1;
    }
    if (!util_utf8_valid((const char *)v->data.scalar.value,
                         v->data.scalar.length)) {
        config_error_at(l, v, "%s is not valid UTF-8", what);
        return -1;
    }
    *text_r = (const char *)v->data.scalar.value;
    return 0;
}

int
config_need_text(struct loader *l, const char *what, const char *expect,
                 const yaml_node_t *v, const char **text_r)
{
    int r = config_get_text(l, what, expect, v, text_r);

    if (r == 1) {
        config_error_at(l, v, "%s must be %s, not null", what, expect);
        return -1;
    }
    return r;
}

int
config_get_string(struct loader *l, const char *what, const yaml_node_t *v,
                  unsigned flags, char **out)
{
    const char *s;
    int r = (flags & STR_NULLABLE)
                ? config_get_text(l, what, "a string", v, &s)
                : config_need_text(l, what, "a string", v, &s);

    if (r != 0)
        return r;
    if (*s == '\0' && !(flags & STR_EMPTY_OK)) {
        config_error_at(l, v, "%s must not be empty", what);
        return -1;
    }
    *out = xstrdup(s);
    return 0;
}

int
config_get_bool(struct loader *l, const char *what, const yaml_node_t *v,
                bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    const char *s;
    int r = config_get_text(l, what, "true or false", v, &s);

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
    config_error_at(l, v, "%s must be true or false", what);
    return -1;
}

int
config_get_word(struct loader *l, const char *what, const char *const *words,
                const char *expect, const yaml_node_t *v, unsigned *out)
{
    const char *s;
    int r = config_get_text(l, what, expect, v, &s);

    if (r != 0)
        return r;
    for (unsigned i = 0; words[i] != NULL; i++) {
        if (strcmp(s, words[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    config_error_at(l, v, "%s must be %s", what, expect);
    return -1;
}

int
config_get_uint(struct loader *l, const char *what, const yaml_node_t *v,
                uint64_t min, uint64_t max, const char *range, uint64_t *out)
{
    const char *s;
    uint64_t x;
    int r = config_get_text(l, what, "an integer", v, &s);

    if (r != 0)
        return r;
    r = util_parse_u64(s, strlen(s), UINT64_MAX, &x);
    if (r == -EINVAL) {
        config_error_at(l, v, "invalid %s \"%s\" (expected an integer %s)",
                        what, config_show(l, s), range);
        return -1;
    }
    if (r < 0 || x < min || x > max) {
        config_error_at(l, v, "%s %s out of range (%s)", what,
                        config_show(l, s), range);
        return -1;
    }
    *out = x;
    return 0;
}

int
config_get_duration(struct loader *l, const char *what, const yaml_node_t *v,
                    uint64_t min, uint64_t max, const char *range,
                    char unit_hint, uint64_t *out)
{
    const char *s;
    uint64_t x;
    int r = config_get_text(l, what, "a duration", v, &s);

    if (r != 0)
        return r;
    r = units_parse_duration(s, &x);
    if (r == -EDOM) {
        /* imapfilter's is_older(14) and archivemail's --days mean days;
         * seconds would be the worst guess for an age */
        config_error_at(l, v,
                        "%s \"%s\" has no unit: did you mean %s%c? "
                        "(durations are written 30s, 5m, 2h, 14d, 1w)",
                        what, config_show(l, s), config_show(l, s),
                        unit_hint);
        return -1;
    }
    if (r == -ERANGE) {
        config_error_at(l, v,
                        "duration \"%s\" is too large (at most 100 years)",
                        config_show(l, s));
        return -1;
    }
    if (r < 0) {
        config_error_at(l, v,
                        "invalid duration \"%s\" (expected e.g. 30s, 5m, 2h, "
                        "14d)",
                        config_show(l, s));
        return -1;
    }
    if (x < min || x > max) {
        config_error_at(l, v, "%s %s out of range (%s)", what,
                        config_show(l, s), range);
        return -1;
    }
    *out = x;
    return 0;
}

int
config_get_size(struct loader *l, const char *what, const yaml_node_t *v,
                uint64_t *out)
{
    const char *s;
    uint64_t x;
    int r = config_get_text(l, what, "a size", v, &s);

    if (r != 0)
        return r;
    r = units_parse_size(s, &x);
    if (r == -ERANGE) {
        config_error_at(l, v, "size \"%s\" is too large (at most 1T)",
                        config_show(l, s));
        return -1;
    }
    if (r < 0) {
        config_error_at(l, v,
                        "invalid size \"%s\" (expected e.g. 512, 10k, 5M, 1G)",
                        config_show(l, s));
        return -1;
    }
    *out = x;
    return 0;
}

int
config_get_mailbox(struct loader *l, const char *what, const yaml_node_t *v,
                   bool nullable, char **out)
{
    char *s = NULL, *err = NULL;
    int r = config_get_string(
        l, what, v, nullable ? STR_NULLABLE | STR_EMPTY_OK : STR_EMPTY_OK, &s);

    if (r != 0)
        return r;
    if (rule_check_mailbox(s, &err) < 0) {
        config_error_at(l, v, "%s", err);
        free(err);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

bool
config_valid_name(const char *s)
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

bool
config_mailbox_eq(const char *a, const char *b)
{
    return strcmp(a, b) == 0 ||
           (util_strcaseeq(a, "INBOX") && util_strcaseeq(b, "INBOX"));
}

/* An account's mailbox given as a mapping: {name: X, idle: B}. Returns
 * the name node (NULL: reported) and sets *idle. */
static const yaml_node_t *
mailbox_item(struct loader *l, const yaml_node_t *map, enum config_idle *idle)
{
    static const char *const keys[] = {"name", "idle"};
    const yaml_node_t *name = NULL;
    struct entry *e;
    size_t n = config_map_entries(l, map, &e);
    bool b;

    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].key, "name") == 0)
            name = e[i].vnode;
        else if (strcmp(e[i].key, "idle") == 0) {
            if (config_get_bool(l, "idle", e[i].vnode, &b) == 0)
                *idle = b ? CONFIG_IDLE_YES : CONFIG_IDLE_NO;
        } else
            config_unknown_key(l, &e[i], "in mailbox", keys,
                               ARRAY_SIZE(keys));
    }
    free(e);
    if (name == NULL)
        config_error_at(l, map, "a mailbox given as a mapping needs a name");
    return name;
}

int
config_get_mailbox_list(struct loader *l, const yaml_node_t *v, char ***list_r,
                        size_t *n_r, struct pos **pos_r,
                        enum config_idle **idle_r)
{
    const yaml_node_item_t *items;
    size_t n_items;
    char **list;
    struct pos *pos;
    enum config_idle *idle;
    size_t n = 0;
    bool bad = false;

    if (v->type == YAML_SCALAR_NODE && config_is_null(v))
        return 1;
    if (v->type == YAML_MAPPING_NODE) {
        config_error_at(l, v,
                        "mailboxes must be a mailbox name or a list of them, "
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
            config_error_at(l, v, "mailboxes must list at least one mailbox");
            return -1;
        }
    }
    list = xcalloc(n_items, sizeof(*list));
    pos = xcalloc(n_items, sizeof(*pos));
    idle = xcalloc(n_items, sizeof(*idle));
    for (size_t i = 0; i < n_items; i++) {
        const yaml_node_t *item =
            items == NULL ? v : config_visit(l, items[i]);
        enum config_idle ix = CONFIG_IDLE_AUTO;
        char *name = NULL;
        size_t j;

        if (item == NULL) {
            bad = true;
            break;
        }
        if (idle_r != NULL && item->type == YAML_MAPPING_NODE &&
            (item = mailbox_item(l, item, &ix)) == NULL) {
            bad = true;
            continue;
        }
        if (config_get_mailbox(l, "mailbox", item, false, &name) < 0) {
            bad = true;
            continue;
        }
        for (j = 0; j < n && !config_mailbox_eq(list[j], name); j++)
            ;
        if (j < n) {
            struct pos at = config_node_pos(item);

            config_error_pos(l, at.line, at.col,
                             "mailbox \"%s\" is listed twice (first at %u:%u)",
                             config_show(l, name), pos[j].line, pos[j].col);
            free(name);
            bad = true;
            continue;
        }
        /* INBOX is case-insensitive (RFC 3501): one spelling downstream */
        if (util_strcaseeq(name, "INBOX")) {
            memcpy(name, "INBOX", 5);
            if (ix == CONFIG_IDLE_AUTO)
                ix = CONFIG_IDLE_YES;
        }
        pos[n] = config_node_pos(item);
        idle[n] = ix;
        list[n++] = name;
    }
    if (bad) {
        for (size_t i = 0; i < n; i++)
            free(list[i]);
        free(list);
        free(pos);
        free(idle);
        return -1;
    }
    *list_r = list;
    *n_r = n;
    if (pos_r != NULL)
        *pos_r = pos;
    else
        free(pos);
    if (idle_r != NULL)
        *idle_r = idle;
    else
        free(idle);
    return 0;
}
