/* SPDX-License-Identifier: MIT */
/* config_rule: rules as the loader reads them: match trees built through
 * the rule module's setters (rule_validate() then checks their structure)
 * and actions. */
#include "config_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"
#include "util.h"

#define MAX_MATCH_DEPTH 32

static const char *const rule_keys[] = {"name", "mailboxes", "match",
                                        "action", "keep_newest", "dry_run"};
static const char *const action_keys[] = {"move", "flag", "create"};

/* Regular expressions are PCRE2's (rule.c): its own compile and match
 * limits bound each pattern. What stays here bounds a whole load: aliases
 * can make one pattern stand for thousands of match keys, each compiled. */
#define REGEX_LOAD_BYTES ((uint64_t)1 << 20)  /* pattern bytes per load */
#define REGEX_LOAD_COUNT 10000                 /* patterns per load */

static int
set_regex(struct loader *l, struct rule_node *node, const char *pattern,
          char **err_r)
{
    uint64_t len = strlen(pattern) + 1;

    if (l->regex_bytes + len > REGEX_LOAD_BYTES ||
        l->regex_count + 1 > REGEX_LOAD_COUNT) {
        /* said once, where the budget ran out */
        if (l->regex_bytes <= REGEX_LOAD_BYTES)
            *err_r = xasprintf("%s: too many or too large regular "
                               "expressions in total",
                               rule_key_name(node->key));
        l->regex_bytes = REGEX_LOAD_BYTES + 1;
        return -EINVAL;
    }
    l->regex_bytes += len;
    l->regex_count++;
    return rule_node_set_regex(node, pattern, err_r);
}

/* --- match trees --------------------------------------------------------- */

/* Stands in for a match key whose value was bad, so that the structural
 * checks of rule_validate() still run and report only real problems. */
static struct rule_node *
placeholder(const yaml_node_t *at)
{
    struct pos p = config_node_pos(at);

    return rule_node_new(RULE_SEEN, p.line, p.col);
}

static void build_match(struct loader *l, const yaml_node_t *map,
                        struct rule_node *and_node, unsigned depth);

/* A leaf that sets one value from a text scalar. */
static bool
build_leaf(struct loader *l, enum rule_key k, const struct entry *e,
           struct rule_node *and_node)
{
    const char *name = rule_key_name(k);
    const yaml_node_t *v = e->vnode;
    struct pos p = config_node_pos(e->knode);
    struct rule_node *node = rule_node_new(k, p.line, p.col);
    const char *s = NULL;
    char *err = NULL;
    uint64_t x = 0;
    bool b = false;
    int r = 0;

    switch (rule_key_value_kind(k)) {
    case RULE_VALUE_TRUE:
        r = config_get_bool(l, name, v, &b);
        if (r == 1)
            config_error_at(l, v, "%s must be true, not null", name);
        else if (r == 0 && !b)
            config_error_at(l, v, "%s must be true (remove the key otherwise)",
                            name);
        r = r == 0 && b ? 0 : -1;
        break;
    case RULE_VALUE_STRING:
        r = config_need_text(l, name, "a string", v, &s);
        if (r == 0)
            r = rule_node_set_string(node, s, &err);
        break;
    case RULE_VALUE_DURATION:
        /* an age: older_than: 14 means 14 days to everyone who wrote it */
        r = config_get_duration(l, name, v, 1, UNITS_DURATION_MAX,
                                "at least 1s", 'd', &x);
        if (r == 1)
            config_error_at(l, v, "%s must be a duration, not null", name);
        node->num = x;
        break;
    case RULE_VALUE_SIZE:
        r = config_get_size(l, name, v, &x);
        if (r == 1)
            config_error_at(l, v, "%s must be a size, not null", name);
        node->num = x;
        break;
    case RULE_VALUE_BOOL:
        r = config_get_bool(l, name, v, &b);
        if (r == 1)
            config_error_at(l, v, "%s must be true or false, not null", name);
        node->flag = b;
        break;
    case RULE_VALUE_DIGEST:
        r = config_need_text(l, name, "a hex digest", v, &s);
        if (r == 0)
            r = rule_node_set_digest(node, s, &err);
        break;
    case RULE_VALUE_REGEX:
        r = config_need_text(l, name, "a regular expression", v, &s);
        if (r == 0)
            r = set_regex(l, node, s, &err);
        break;
    case RULE_VALUE_DUPLICATE:
        r = config_need_text(l, name, "message_id or body", v, &s);
        if (r == 0)
            r = rule_node_set_duplicate(node, s, &err);
        break;
    default:
        r = -1;
        break;
    }
    if (err != NULL) {
        config_error_at(l, v, "%s", err);
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
        config_error_at(
            l, v, "%s must be a mapping of header names to %s, not %s", name,
            k == RULE_HEADER ? "strings" : "regular expressions",
            config_node_kind(v));
        return false;
    }
    n = config_map_entries(l, v, &he);
    if (n == 0 && v->data.mapping.pairs.top == v->data.mapping.pairs.start) {
        config_error_at(l, v, "%s needs at least one \"Name: value\" entry",
                        name);
        free(he);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        struct pos p = config_node_pos(he[i].knode);
        struct rule_node *node = rule_node_new(k, p.line, p.col);
        char *err = NULL;
        const char *s;
        int r;

        if (rule_node_set_header_name(node, he[i].key, &err) < 0) {
            config_error_at(l, he[i].knode, "%s", err);
            free(err);
            err = NULL;
            ok = false;
        }
        r = config_need_text(
            l, name, k == RULE_HEADER ? "a string" : "a regular expression",
            he[i].vnode, &s);
        if (r == 0) {
            if (k == RULE_HEADER)
                r = rule_node_set_string(node, s, &err);
            else
                r = set_regex(l, node, s, &err);
        }
        if (err != NULL) {
            config_error_at(l, he[i].vnode, "%s", err);
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
    struct pos p = config_node_pos(e->knode);
    struct rule_node *node;

    if (depth + 1 > MAX_MATCH_DEPTH) {
        config_error_at(l, e->knode,
                        "match nested too deeply (at most %d levels "
                        "of any/not)",
                        MAX_MATCH_DEPTH);
        return false;
    }
    if (k == RULE_NOT) {
        struct rule_node *child;
        struct pos mp;

        if (v->type != YAML_MAPPING_NODE) {
            config_error_at(l, v, "not must be a match mapping, not %s",
                            config_node_kind(v));
            return false;
        }
        mp = config_node_pos(v);
        node = rule_node_new(RULE_NOT, p.line, p.col);
        child = rule_node_new(RULE_AND, mp.line, mp.col);
        build_match(l, v, child, depth + 1);
        rule_node_add_child(node, child);
    } else {
        const yaml_node_item_t *items;
        size_t n_items;

        if (v->type != YAML_SEQUENCE_NODE) {
            config_error_at(l, v,
                            "any must be a list of match mappings, not %s",
                            config_node_kind(v));
            return false;
        }
        node = rule_node_new(RULE_ANY, p.line, p.col);
        items = v->data.sequence.items.start;
        n_items = (size_t)(v->data.sequence.items.top - items);
        for (size_t i = 0; i < n_items && !l->aborted; i++) {
            const yaml_node_t *item = config_visit(l, items[i]);
            struct rule_node *child;
            struct pos ip;

            if (item == NULL)
                break;
            if (item->type != YAML_MAPPING_NODE) {
                config_error_at(l, item,
                                "any items must be match mappings, not %s",
                                config_node_kind(item));
                rule_node_add_child(node, placeholder(item));
                continue;
            }
            ip = config_node_pos(item);
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
    n = config_map_entries(l, map, &e);
    for (size_t i = 0; i < n && !l->aborted; i++) {
        enum rule_key k;
        bool ok;

        if (rule_key_lookup(e[i].key, &k) < 0) {
            config_unknown_key(l, &e[i], "in match", names, RULE_KEY_COUNT);
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

/* --- rules --------------------------------------------------------------- */

static bool
get_flags(struct loader *l, struct rule *r, const yaml_node_t *v)
{
    const yaml_node_item_t *items = NULL;
    size_t n_items = 1;
    bool ok = true;

    if (v->type == YAML_MAPPING_NODE) {
        config_error_at(l, v, "flag must be a flag or a list of flags, not a "
                              "mapping");
        return false;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        items = v->data.sequence.items.start;
        n_items = (size_t)(v->data.sequence.items.top - items);
    }
    if (config_is_null(v) || n_items == 0) {
        config_error_at(l, v, "flag needs at least one flag");
        return false;
    }
    r->flags = xcalloc(n_items, sizeof(*r->flags));
    for (size_t i = 0; i < n_items; i++) {
        const yaml_node_t *item =
            items == NULL ? v : config_visit(l, items[i]);
        const char *s;
        char *err = NULL;
        size_t j;

        if (item == NULL)
            return false;
        if (config_need_text(l, "flag", "a string", item, &s) != 0) {
            ok = false;
            continue;
        }
        if (rule_check_flag(s, &err) < 0) {
            config_error_at(l, item, "%s", err);
            free(err);
            ok = false;
            continue;
        }
        for (j = 0; j < r->n_flags && !util_strcaseeq(r->flags[j], s); j++)
            ;
        if (j < r->n_flags) {
            config_error_at(l, item, "flag \"%s\" is listed twice",
                            config_show(l, s));
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
    const struct entry *kind_e = NULL, *create_e = NULL;
    bool unknown = false;
    struct entry *e;
    const char *s;
    size_t n;

    if (v->type == YAML_SCALAR_NODE && !config_is_null(v)) {
        if (config_get_text(l, "action", "a string", v, &s) != 0)
            return;
        if (strcmp(s, "delete") == 0)
            r->action = RULE_ACTION_DELETE;
        else if (strcmp(s, "trash") == 0)
            r->action = RULE_ACTION_TRASH;
        else if (strcmp(s, "move") == 0)
            config_error_at(l, v, "move needs a target mailbox");
        else if (strcmp(s, "flag") == 0)
            config_error_at(l, v, "flag needs at least one flag");
        else
            config_error_at(l, v, "%s", must);
        return;
    }
    if (v->type != YAML_MAPPING_NODE) {
        config_error_at(l, v, "%s, not %s", must, config_node_kind(v));
        return;
    }
    n = config_map_entries(l, v, &e);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *tv = e[i].vnode;

        if (strcmp(e[i].key, "move") == 0 || strcmp(e[i].key, "flag") == 0) {
            if (kind_e != NULL) {
                config_error_at(l, e[i].knode, "action must have one of "
                                "move or flag, not both");
                continue;
            }
            kind_e = &e[i];
        }
        if (strcmp(e[i].key, "move") == 0) {
            r->action = RULE_ACTION_MOVE;
            if (tv->type == YAML_SCALAR_NODE &&
                (config_is_null(tv) || tv->data.scalar.length == 0))
                config_error_at(l, tv, "move needs a target mailbox");
            else
                config_get_mailbox(l, "move", tv, false, &r->target);
        } else if (strcmp(e[i].key, "flag") == 0) {
            r->action = RULE_ACTION_FLAG;
            get_flags(l, r, tv);
        } else if (strcmp(e[i].key, "create") == 0) {
            create_e = &e[i];
            if (config_get_bool(l, "create", tv, &r->create) == 1)
                config_error_at(l, tv, "create must be true or false, not "
                                "null");
        } else {
            config_unknown_key(l, &e[i], "in action", action_keys,
                               ARRAY_SIZE(action_keys));
            unknown = true;
        }
    }
    if (kind_e == NULL && !unknown && !l->aborted)
        config_error_at(l, v, "action must have move or flag (or be delete "
                        "or trash)");
    else if (create_e != NULL && r->action != RULE_ACTION_MOVE)
        config_error_at(l, create_e->knode, "create applies to move only "
                        "(a missing Trash is never created)");
    free(e);
}

static void
validate_report(void *arg, unsigned line, unsigned col, const char *msg)
{
    config_error_pos(arg, line, col, "%s", msg);
}

static void
parse_rule(struct loader *l, const yaml_node_t *map, size_t index)
{
    struct config *c = l->c;
    struct rule_info *ri = &l->rinfo[c->n_rules];
    struct pos mp = config_node_pos(map);
    const yaml_node_t *name_v = NULL;
    const char *name = NULL;
    struct rule *r;
    struct entry *e;
    char label[320];
    bool has_match = false, has_action = false;
    size_t n, errors_before = l->diag->n_errors;

    n = config_map_entries(l, map, &e);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].key, "name") == 0)
            name_v = e[i].vnode;
    }
    if (name_v == NULL) {
        config_error_at(l, map, "rule #%zu has no name", index + 1);
    } else if (config_need_text(l, "name", "a string", name_v, &name) == 0) {
        ri->name_pos = config_node_pos(name_v);
        if (!config_valid_name(name)) {
            config_error_at(l, name_v,
                            "invalid rule name \"%s\" (1 to %d letters, "
                            "digits, '.', '_' or '-')",
                            config_show(l, name), MAX_NAME_LEN);
        }
        for (size_t j = 0; j < c->n_rules; j++) {
            if (l->rinfo[j].has_name && strcmp(c->rules[j]->name, name) == 0) {
                config_error_at(l, name_v,
                                "rule \"%s\" is defined twice (first at "
                                "%u:%u)",
                                config_show(l, name),
                                l->rinfo[j].name_pos.line,
                                l->rinfo[j].name_pos.col);
                break;
            }
        }
        ri->has_name = true;
    }
    if (ri->has_name)
        snprintf(label, sizeof(label), "rule \"%s\"", config_show(l, name));
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
            config_get_mailbox_list(l, v, &r->mailboxes, &r->n_mailboxes,
                                    &ri->mb_pos, NULL);
        } else if (strcmp(key, "match") == 0) {
            struct pos p = config_node_pos(v);

            has_match = true;
            if (v->type != YAML_MAPPING_NODE) {
                config_error_at(l, v, "match must be a mapping, not %s",
                                config_node_kind(v));
                continue;
            }
            r->match = rule_node_new(RULE_AND, p.line, p.col);
            build_match(l, v, r->match, 0);
        } else if (strcmp(key, "action") == 0) {
            has_action = true;
            parse_action(l, r, v);
        } else if (strcmp(key, "keep_newest") == 0) {
            uint64_t x;

            if (config_get_uint(l, key, v, 1, UINT32_MAX, "1 or more",
                                &x) == 0)
                r->keep_newest = (uint32_t)x;
        } else if (strcmp(key, "dry_run") == 0) {
            bool b;

            if (config_get_bool(l, key, v, &b) == 0)
                r->dry_run = b;
        } else {
            config_unknown_key(l, &e[i], "in rule", rule_keys,
                               ARRAY_SIZE(rule_keys));
        }
    }
    free(e);
    if (l->aborted)
        return;
    if (!has_match)
        config_error_at(l, map, "%s has no match", label);
    if (!has_action)
        config_error_at(l, map, "%s has no action", label);
    /* (a key refused above left a placeholder: say nothing about it) */
    if (r->match != NULL && rule_validate(r, validate_report, l) == 0 &&
        l->diag->n_errors == errors_before &&
        (r->action == RULE_ACTION_DELETE || r->action == RULE_ACTION_TRASH) &&
        rule_match_is_broad(r)) {
        char *m = rule_describe_match(r->match);

        /* {older_than: 30d} alone, or {not: {from: boss}}: whole mailboxes */
        config_warning_pos(l, r->match->line, r->match->col,
                           "%s would %s all messages %s in every mailbox it "
                           "applies to: its match names no mail, only age, "
                           "size or flags (add a key such as from or subject, "
                           "or all: true if that is meant)", label,
                           r->action == RULE_ACTION_DELETE
                               ? "delete"
                               : "move to the Trash",
                           m);
        free(m);
    }
}

void
config_parse_rules(struct loader *l, const yaml_node_t *seq)
{
    const yaml_node_item_t *items;
    size_t n_items;

    if (seq->type != YAML_SEQUENCE_NODE) {
        config_error_at(l, seq, "rules must be a list of rules, not %s",
                        config_node_kind(seq));
        return;
    }
    items = seq->data.sequence.items.start;
    n_items = (size_t)(seq->data.sequence.items.top - items);
    l->c->rules = xcalloc(n_items, sizeof(*l->c->rules));
    l->rinfo = xcalloc(n_items, sizeof(*l->rinfo));
    for (size_t i = 0; i < n_items && !l->aborted; i++) {
        const yaml_node_t *item = config_visit(l, items[i]);

        if (item == NULL)
            break;
        if (item->type != YAML_MAPPING_NODE) {
            config_error_at(l, item, "rule must be a mapping, not %s",
                            config_node_kind(item));
            continue;
        }
        parse_rule(l, item, i);
    }
}
