/* SPDX-License-Identifier: MIT */
/* rule_text: rules in words, for --check-config's summary, explain and
 * warnings: "delete messages whose From contains "Cron Daemon"". */
#include "rule.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "units.h"
#include "util.h"

/* User text between q's: control characters escaped so a line cannot be
 * forged by a pattern; in "strings" quotes and backslashes too, in
 * /regexes/ nothing else (they read as written). */
static void
quoted(struct buf *b, const char *s, char q)
{
    buf_append_char(b, q);
    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (q == '"' && (c == '"' || c == '\\'))
            buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            buf_printf(b, "\\x%02x", c);
        else
            buf_append_char(b, (char)c);
    }
    buf_append_char(b, q);
}

static void describe(struct buf *b, const struct rule_node *n);

/* The clauses of a match map, joined with "and". */
static void
describe_and(struct buf *b, const struct rule_node *n)
{
    size_t said = 0;

    for (size_t i = 0; i < n->n_children; i++) {
        /* all: true beside other keys adds nothing to say */
        if (n->children[i]->key == RULE_ALL && n->n_children > 1)
            continue;
        if (said++ > 0)
            buf_append_str(b, " and ");
        describe(b, n->children[i]);
    }
}

static void
flag_clause(struct buf *b, bool set, const char *what)
{
    buf_printf(b, "that are %s%s", set ? "" : "not ", what);
}

static void
describe(struct buf *b, const struct rule_node *n)
{
    static const char *const header_of[] = {
        [RULE_FROM] = "From", [RULE_TO] = "To", [RULE_CC] = "Cc",
        [RULE_BCC] = "Bcc", [RULE_SUBJECT] = "Subject",
    };
    char num[32];

    switch (n->key) {
    case RULE_ALL:
        buf_append_str(b, "whatever they are");
        return;
    case RULE_AND:
        describe_and(b, n);
        return;
    case RULE_ANY:
        buf_append_str(b, "(either ");
        for (size_t i = 0; i < n->n_children; i++) {
            if (i > 0)
                buf_append_str(b, " or ");
            describe(b, n->children[i]);
        }
        buf_append_char(b, ')');
        return;
    case RULE_NOT:
        buf_append_str(b, "not (");
        if (n->n_children > 0)
            describe(b, n->children[0]);
        buf_append_char(b, ')');
        return;
    case RULE_FROM: case RULE_TO: case RULE_CC: case RULE_BCC:
    case RULE_SUBJECT:
        buf_printf(b, "whose %s contains ", header_of[n->key]);
        quoted(b, n->str, '"');
        return;
    case RULE_BODY:
        buf_append_str(b, "whose body contains ");
        quoted(b, n->str, '"');
        return;
    case RULE_TEXT:
        buf_append_str(b, "whose header or body contains ");
        quoted(b, n->str, '"');
        return;
    case RULE_HEADER:
        if (n->str == NULL || *n->str == '\0') {
            buf_printf(b, "that have a %s header", n->name);
            return;
        }
        buf_printf(b, "whose %s header contains ", n->name);
        quoted(b, n->str, '"');
        return;
    case RULE_OLDER:
        buf_printf(b, "older than %s",
                   units_format_duration(n->num, num, sizeof(num)));
        return;
    case RULE_NEWER:
        buf_printf(b, "newer than %s",
                   units_format_duration(n->num, num, sizeof(num)));
        return;
    case RULE_LARGER:
        buf_printf(b, "larger than %s",
                   units_format_size(n->num, num, sizeof(num)));
        return;
    case RULE_SMALLER:
        buf_printf(b, "smaller than %s",
                   units_format_size(n->num, num, sizeof(num)));
        return;
    case RULE_SEEN: flag_clause(b, n->flag, "seen"); return;
    case RULE_FLAGGED: flag_clause(b, n->flag, "flagged"); return;
    case RULE_ANSWERED: flag_clause(b, n->flag, "answered"); return;
    case RULE_DRAFT: flag_clause(b, n->flag, "drafts"); return;
    case RULE_BODY_MD5:
    case RULE_BODY_SHA256:
        buf_printf(b, "whose body's %s is ",
                   n->key == RULE_BODY_MD5 ? "MD5" : "SHA-256");
        for (size_t i = 0; i < n->digest_len; i++)
            buf_printf(b, "%02x", n->digest[i]);
        return;
    case RULE_SUBJECT_REGEX:
    case RULE_FROM_REGEX:
        buf_printf(b, "whose %s matches ",
                   n->key == RULE_SUBJECT_REGEX ? "Subject" : "From");
        quoted(b, n->str, '/');
        return;
    case RULE_HEADER_REGEX:
        buf_printf(b, "whose %s header matches ", n->name);
        quoted(b, n->str, '/');
        return;
    case RULE_DUPLICATE:
        buf_append_str(b, n->dup == RULE_DUP_BODY
                              ? "whose body repeats an older message's"
                              : "whose Message-ID repeats an older "
                                "message's");
        return;
    case RULE_KEY_COUNT:
        break;
    }
    buf_append_str(b, "?");
}

char *
rule_describe_match(const struct rule_node *n)
{
    struct buf b;

    buf_init(&b, BUF_NOCAP);
    if (n != NULL)
        describe(&b, n);
    return buf_steal(&b);
}

/* all: true alone: "every message" */
static bool
is_all(const struct rule_node *n)
{
    if (n == NULL)
        return false;
    if (n->key == RULE_ALL)
        return true;
    return n->key == RULE_AND && n->n_children == 1 &&
           n->children[0]->key == RULE_ALL;
}

char *
rule_describe(const struct rule *r)
{
    struct buf b;
    char *m;

    buf_init(&b, BUF_NOCAP);
    switch (r->action) {
    case RULE_ACTION_DELETE: buf_append_str(&b, "delete "); break;
    case RULE_ACTION_TRASH: buf_append_str(&b, "move "); break;
    case RULE_ACTION_MOVE: buf_append_str(&b, "move "); break;
    case RULE_ACTION_FLAG: buf_append_str(&b, "flag "); break;
    }
    if (is_all(r->match)) {
        buf_append_str(&b, "every message");
    } else {
        m = rule_describe_match(r->match);
        buf_printf(&b, "messages %s", m);
        free(m);
    }
    switch (r->action) {
    case RULE_ACTION_TRASH:
        buf_append_str(&b, " to the Trash");
        break;
    case RULE_ACTION_MOVE:
        buf_append_str(&b, " to ");
        quoted(&b, r->target, '"');
        if (r->create)
            buf_append_str(&b, " (created if missing)");
        break;
    case RULE_ACTION_FLAG:
        buf_append_str(&b, " with");
        for (size_t i = 0; i < r->n_flags; i++)
            buf_printf(&b, " %s", r->flags[i]);
        break;
    case RULE_ACTION_DELETE:
        break;
    }
    if (r->keep_newest > 0)
        buf_printf(&b, ", except the %u newest of them", r->keep_newest);
    return buf_steal(&b);
}

/* True when the subtree narrows to mail by what it is (sender, subject,
 * header, body, digest, duplicate), not only by age, size or flags. A
 * negation never does: not: {from: boss} is nearly everything. */
static bool
names_mail(const struct rule_node *n)
{
    switch (n->key) {
    case RULE_AND:
        for (size_t i = 0; i < n->n_children; i++) {
            if (names_mail(n->children[i]))
                return true;
        }
        return false;
    case RULE_ANY:
        for (size_t i = 0; i < n->n_children; i++) {
            if (!names_mail(n->children[i]))
                return false;
        }
        return n->n_children > 0;
    case RULE_ALL:
    case RULE_NOT:
    case RULE_OLDER:
    case RULE_NEWER:
    case RULE_LARGER:
    case RULE_SMALLER:
    case RULE_SEEN:
    case RULE_FLAGGED:
    case RULE_ANSWERED:
    case RULE_DRAFT:
        return false;
    default:
        return true;
    }
}

static bool
has_all(const struct rule_node *n)
{
    if (n->key == RULE_ALL)
        return true;
    for (size_t i = 0; n->key == RULE_AND && i < n->n_children; i++) {
        if (n->children[i]->key == RULE_ALL)
            return true;
    }
    return false;
}

bool
rule_match_is_broad(const struct rule *r)
{
    return r->match != NULL && !has_all(r->match) && !names_mail(r->match);
}
