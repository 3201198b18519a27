#include "rule.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "imap_build.h"
#include "util.h"

/* --- keys ---------------------------------------------------------------- */

static const struct {
    const char *name;
    enum rule_value_kind kind;
    bool client;
} keys[RULE_KEY_COUNT] = {
    [RULE_ALL] = {"all", RULE_VALUE_TRUE, false},
    [RULE_AND] = {"(match)", RULE_VALUE_MATCH, false},
    [RULE_ANY] = {"any", RULE_VALUE_MATCH_LIST, false},
    [RULE_NOT] = {"not", RULE_VALUE_MATCH, false},
    [RULE_FROM] = {"from", RULE_VALUE_STRING, false},
    [RULE_TO] = {"to", RULE_VALUE_STRING, false},
    [RULE_CC] = {"cc", RULE_VALUE_STRING, false},
    [RULE_BCC] = {"bcc", RULE_VALUE_STRING, false},
    [RULE_SUBJECT] = {"subject", RULE_VALUE_STRING, false},
    [RULE_BODY] = {"body", RULE_VALUE_STRING, false},
    [RULE_TEXT] = {"text", RULE_VALUE_STRING, false},
    [RULE_HEADER] = {"header", RULE_VALUE_HEADER_MAP, false},
    [RULE_OLDER] = {"older_than", RULE_VALUE_DURATION, false},
    [RULE_NEWER] = {"newer_than", RULE_VALUE_DURATION, false},
    [RULE_LARGER] = {"larger_than", RULE_VALUE_SIZE, false},
    [RULE_SMALLER] = {"smaller_than", RULE_VALUE_SIZE, false},
    [RULE_SEEN] = {"seen", RULE_VALUE_BOOL, false},
    [RULE_FLAGGED] = {"flagged", RULE_VALUE_BOOL, false},
    [RULE_ANSWERED] = {"answered", RULE_VALUE_BOOL, false},
    [RULE_DRAFT] = {"draft", RULE_VALUE_BOOL, false},
    [RULE_BODY_MD5] = {"body_md5", RULE_VALUE_DIGEST, true},
    [RULE_BODY_SHA256] = {"body_sha256", RULE_VALUE_DIGEST, true},
    [RULE_SUBJECT_REGEX] = {"subject_regex", RULE_VALUE_REGEX, true},
    [RULE_FROM_REGEX] = {"from_regex", RULE_VALUE_REGEX, true},
    [RULE_HEADER_REGEX] = {"header_regex", RULE_VALUE_HEADER_MAP, true},
    [RULE_DUPLICATE] = {"duplicate", RULE_VALUE_DUPLICATE, true},
};

const char *
rule_key_name(enum rule_key key)
{
    return (unsigned)key < RULE_KEY_COUNT ? keys[key].name : "?";
}

int
rule_key_lookup(const char *name, enum rule_key *key_r)
{
    for (unsigned k = 0; k < RULE_KEY_COUNT; k++) {
        if (k != RULE_AND && strcmp(keys[k].name, name) == 0) {
            *key_r = (enum rule_key)k;
            return 0;
        }
    }
    return -ENOENT;
}

enum rule_value_kind
rule_key_value_kind(enum rule_key key)
{
    return keys[key].kind;
}

bool
rule_key_is_client(enum rule_key key)
{
    return keys[key].client;
}

/* --- nodes --------------------------------------------------------------- */

struct rule_node *
rule_node_new(enum rule_key key, unsigned line, unsigned col)
{
    struct rule_node *n = xcalloc(1, sizeof(*n));

    n->key = key;
    n->line = line;
    n->col = col;
    return n;
}

void
rule_node_add_child(struct rule_node *parent, struct rule_node *child)
{
    ARRAY_GROW(parent->children, parent->cap_children,
               parent->n_children + 1);
    parent->children[parent->n_children++] = child;
}

void
rule_node_free(struct rule_node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n_children; i++)
        rule_node_free(n->children[i]);
    free(n->children);
    if (n->has_re)
        regfree(&n->re);
    free(n->name);
    free(n->str);
    free(n);
}

int
rule_node_set_string(struct rule_node *n, const char *s, char **err_r)
{
    /* HEADER X "" means "has the field"; elsewhere "" matches everything */
    if (*s == '\0' && n->key != RULE_HEADER) {
        *err_r = xasprintf("%s: an empty string matches every message "
                           "(use all: true for that)", rule_key_name(n->key));
        return -EINVAL;
    }
    if (!util_utf8_valid(s, strlen(s))) {
        *err_r = xasprintf("%s: not valid UTF-8", rule_key_name(n->key));
        return -EINVAL;
    }
    free(n->str);
    n->str = xstrdup(s);
    return 0;
}

int
rule_node_set_header_name(struct rule_node *n, const char *name,
                          char **err_r)
{
    size_t len = strlen(name);

    if (len == 0 || len > 200) {
        *err_r = xasprintf("%s: header name must be 1 to 200 characters",
                           rule_key_name(n->key));
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c < 33 || c > 126 || c == ':') {
            *err_r = xasprintf("%s: invalid header name \"%s\" (printable "
                               "ASCII without ':' or spaces)",
                               rule_key_name(n->key), name);
            return -EINVAL;
        }
    }
    free(n->name);
    n->name = xstrdup(name);
    return 0;
}

int
rule_node_set_regex(struct rule_node *n, const char *pattern, char **err_r)
{
    int ret;

    if (n->has_re) {
        regfree(&n->re);
        n->has_re = false;
    }
    ret = regcomp(&n->re, pattern, REG_EXTENDED | REG_ICASE | REG_NOSUB);
    if (ret != 0) {
        char msg[256];

        regerror(ret, &n->re, msg, sizeof(msg));
        *err_r = xasprintf("%s: invalid regular expression: %s",
                           rule_key_name(n->key), msg);
        return -EINVAL;
    }
    n->has_re = true;
    free(n->str);
    n->str = xstrdup(pattern);
    return 0;
}

int
rule_node_set_digest(struct rule_node *n, const char *hex, char **err_r)
{
    size_t want = n->key == RULE_BODY_SHA256 ? 32 : 16;
    size_t len = strlen(hex);

    if (len != want * 2) {
        *err_r = xasprintf("%s: expected %zu hex digits, got %zu",
                           rule_key_name(n->key), want * 2, len);
        return -EINVAL;
    }
    for (size_t i = 0; i < want; i++) {
        int hi = util_hex_value(hex[2 * i]);
        int lo = util_hex_value(hex[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            *err_r = xasprintf("%s: not a hex digit at position %zu",
                               rule_key_name(n->key),
                               2 * i + (hi < 0 ? 1 : 2));
            return -EINVAL;
        }
        n->digest[i] = (unsigned char)(hi << 4 | lo);
    }
    n->digest_len = want;
    return 0;
}

int
rule_node_set_duplicate(struct rule_node *n, const char *what, char **err_r)
{
    if (strcmp(what, "message_id") == 0) {
        n->dup = RULE_DUP_MESSAGE_ID;
    } else if (strcmp(what, "body") == 0) {
        n->dup = RULE_DUP_BODY;
    } else {
        *err_r = xasprintf("duplicate: expected message_id or body, "
                           "got \"%s\"", what);
        return -EINVAL;
    }
    return 0;
}

static const char *const system_flags[] = {
    "\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft",
};

int
rule_check_flag(const char *flag, char **err_r)
{
    size_t len = strlen(flag);

    if (flag[0] == '\\') {
        for (size_t i = 0; i < ARRAY_SIZE(system_flags); i++) {
            if (util_strcaseeq(flag, system_flags[i]))
                return 0;
        }
        *err_r = xasprintf("unknown system flag \"%s\" (expected \\Seen, "
                           "\\Answered, \\Flagged, \\Deleted, \\Draft or a "
                           "keyword)", flag);
        return -EINVAL;
    }
    if (len == 0 || len > 200)
        goto bad;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)flag[i];

        if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
            goto bad;
    }
    return 0;
bad:
    *err_r = xasprintf("invalid flag keyword \"%s\" (1 to 200 printable "
                       "ASCII characters, no spaces or (){%%*\"\\])", flag);
    return -EINVAL;
}

int
rule_check_mailbox(const char *name, char **err_r)
{
    size_t len = strlen(name);

    if (len == 0) {
        *err_r = xstrdup("mailbox name is empty");
        return -EINVAL;
    }
    if (len > 1000) {
        *err_r = xstrdup("mailbox name is longer than 1000 bytes");
        return -EINVAL;
    }
    if (!util_utf8_valid(name, len) || strpbrk(name, "\r\n") != NULL) {
        *err_r = xasprintf("mailbox name \"%s\" is not valid UTF-8 text",
                           name);
        return -EINVAL;
    }
    return 0;
}

/* --- rules --------------------------------------------------------------- */

struct rule *
rule_new(const char *name, unsigned line, unsigned col)
{
    struct rule *r = xcalloc(1, sizeof(*r));

    r->name = xstrdup(name);
    r->line = line;
    r->col = col;
    r->dry_run = -1;
    return r;
}

void
rule_free(struct rule *r)
{
    if (r == NULL)
        return;
    free(r->name);
    for (size_t i = 0; i < r->n_mailboxes; i++)
        free(r->mailboxes[i]);
    free(r->mailboxes);
    rule_node_free(r->match);
    free(r->target);
    for (size_t i = 0; i < r->n_flags; i++)
        free(r->flags[i]);
    free(r->flags);
    free(r);
}

bool
rule_applies_to(const struct rule *r, const char *mailbox)
{
    if (r->n_mailboxes == 0)
        return true;
    for (size_t i = 0; i < r->n_mailboxes; i++) {
        if (strcmp(r->mailboxes[i], mailbox) == 0 ||
            (util_strcaseeq(mailbox, "INBOX") &&
             util_strcaseeq(r->mailboxes[i], "INBOX")))
            return true;
    }
    return false;
}

const char *
rule_action_name(enum rule_action a)
{
    switch (a) {
    case RULE_ACTION_DELETE: return "delete";
    case RULE_ACTION_TRASH: return "trash";
    case RULE_ACTION_MOVE: return "move";
    case RULE_ACTION_FLAG: return "flag";
    }
    return "?";
}

static void
validate_node(const struct rule_node *n, int depth, rule_report_cb *report,
              void *arg, unsigned *count)
{
    char *msg = NULL;

    switch (n->key) {
    case RULE_AND:
        if (n->n_children == 0)
            msg = xstrdup("empty match: give at least one key "
                          "(all: true matches every message)");
        break;
    case RULE_ANY:
        if (n->n_children == 0)
            msg = xstrdup("any: needs at least one match");
        break;
    case RULE_NOT:
        if (n->n_children != 1)
            msg = xstrdup("not: needs exactly one match");
        break;
    case RULE_ALL:
        if (depth > 1)
            msg = xstrdup("all: is only allowed at the top level of match");
        break;
    case RULE_DUPLICATE:
        if (depth > 1)
            msg = xstrdup("duplicate: is only allowed at the top level of "
                          "match");
        break;
    default:
        break;
    }
    if (msg != NULL) {
        report(arg, n->line, n->col, msg);
        free(msg);
        (*count)++;
    }
    for (size_t i = 0; i < n->n_children; i++) {
        /* a top-level AND's children are top level too */
        int d = (n->key == RULE_AND && depth == 0) ? 1 : depth + 1;

        validate_node(n->children[i], d, report, arg, count);
    }
}

unsigned
rule_validate(const struct rule *r, rule_report_cb *report, void *arg)
{
    unsigned count = 0, dups = 0;
    const struct rule_node *root = r->match;

    if (root == NULL) {
        report(arg, r->line, r->col, "rule has no match");
        return 1;
    }
    validate_node(root, root->key == RULE_AND ? 0 : 1, report, arg, &count);
    if (root->key == RULE_DUPLICATE)
        dups = 1;
    for (size_t i = 0; root->key == RULE_AND && i < root->n_children; i++)
        dups += root->children[i]->key == RULE_DUPLICATE;
    if (dups > 1) {
        report(arg, root->line, root->col,
               "duplicate: may appear only once in a match");
        count++;
    }
    if (dups > 0 && r->keep_newest > 0) {
        report(arg, r->line, r->col,
               "keep_newest and duplicate cannot be combined in one rule");
        count++;
    }
    return count;
}

static void
canon_str(struct buf *out, const char *s)
{
    buf_append_char(out, '"');
    for (; s != NULL && *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_append_char(out, '\\');
        buf_append_char(out, *s);
    }
    buf_append_char(out, '"');
}

static void
canon_node(struct buf *out, const struct rule_node *n)
{
    buf_append_str(out, rule_key_name(n->key));
    buf_append_char(out, '(');
    if (n->name != NULL) {
        canon_str(out, n->name);
        buf_append_char(out, ' ');
    }
    switch (keys[n->key].kind) {
    case RULE_VALUE_STRING:
    case RULE_VALUE_REGEX:
    case RULE_VALUE_HEADER_MAP:
        canon_str(out, n->str);
        break;
    case RULE_VALUE_DURATION:
    case RULE_VALUE_SIZE:
        buf_printf(out, "%llu", (unsigned long long)n->num);
        break;
    case RULE_VALUE_BOOL:
        buf_append_str(out, n->flag ? "true" : "false");
        break;
    case RULE_VALUE_DIGEST:
        for (size_t i = 0; i < n->digest_len; i++)
            buf_printf(out, "%02x", n->digest[i]);
        break;
    case RULE_VALUE_DUPLICATE:
        buf_printf(out, "%d", (int)n->dup);
        break;
    default:
        break;
    }
    for (size_t i = 0; i < n->n_children; i++) {
        if (i > 0)
            buf_append_char(out, ' ');
        canon_node(out, n->children[i]);
    }
    buf_append_char(out, ')');
}

char *
rule_canonical(const struct rule *r)
{
    struct buf out;

    buf_init(&out, BUF_NOCAP);
    buf_append_str(&out, "rule ");
    canon_str(&out, r->name);
    buf_append_str(&out, " mailboxes [");
    for (size_t i = 0; i < r->n_mailboxes; i++) {
        buf_append_char(&out, ' ');
        canon_str(&out, r->mailboxes[i]);
    }
    buf_append_str(&out, " ] match ");
    if (r->match != NULL)
        canon_node(&out, r->match);
    buf_printf(&out, " action %s ", rule_action_name(r->action));
    canon_str(&out, r->target);
    buf_append_str(&out, " flags [");
    for (size_t i = 0; i < r->n_flags; i++) {
        buf_append_char(&out, ' ');
        canon_str(&out, r->flags[i]);
    }
    buf_printf(&out, " ] keep_newest %u dry_run %d", r->keep_newest,
               r->dry_run);
    return buf_steal(&out);
}

/* --- compiling ----------------------------------------------------------- */

struct pnode {
    const struct rule_node *n;
    bool exact;        /* the server-side key selects exactly the matches */
    bool approx_true;  /* the server-side key is "everything" */
    int aux;           /* auxiliary search index, or -1 */
    struct pnode *kids;
    size_t nkids;
};

struct rule_plan {
    const struct rule *rule;
    struct rule_caps caps;
    time_t now;
    struct pnode root;
    const struct pnode **aux;  /* aux[i]: the subtree of search i */
    size_t n_aux, cap_aux;
    bool client_side;
    unsigned needs;
    const char **headers;
    size_t n_headers, cap_headers;
    enum rule_dup dup;
};

static void
add_header(struct rule_plan *p, const char *name)
{
    for (size_t i = 0; i < p->n_headers; i++) {
        if (util_strcaseeq(p->headers[i], name))
            return;
    }
    ARRAY_GROW(p->headers, p->cap_headers, p->n_headers + 1);
    p->headers[p->n_headers++] = name;
}

static void
build_pnode(struct rule_plan *p, struct pnode *pn, const struct rule_node *n)
{
    pn->n = n;
    pn->aux = -1;
    pn->nkids = n->n_children;
    pn->kids = pn->nkids ? xcalloc(pn->nkids, sizeof(*pn->kids)) : NULL;
    for (size_t i = 0; i < pn->nkids; i++)
        build_pnode(p, &pn->kids[i], n->children[i]);

    switch (n->key) {
    case RULE_ALL:
        pn->exact = true;
        pn->approx_true = true;
        break;
    case RULE_AND:
        pn->exact = true;
        pn->approx_true = true;
        for (size_t i = 0; i < pn->nkids; i++) {
            pn->exact &= pn->kids[i].exact;
            pn->approx_true &= pn->kids[i].approx_true;
        }
        break;
    case RULE_ANY:
        pn->exact = true;
        pn->approx_true = false;
        for (size_t i = 0; i < pn->nkids; i++) {
            pn->exact &= pn->kids[i].exact;
            pn->approx_true |= pn->kids[i].approx_true;
        }
        break;
    case RULE_NOT:
        pn->exact = pn->nkids == 1 && pn->kids[0].exact;
        /* NOT of an inexact key cannot narrow the search */
        pn->approx_true = !pn->exact;
        break;
    case RULE_OLDER:
    case RULE_NEWER:
        pn->exact = p->caps.within;
        pn->approx_true = false;
        if (!pn->exact)
            p->needs |= RULE_NEED_INTERNALDATE;
        break;
    case RULE_BODY_MD5:
        pn->approx_true = true;
        p->needs |= RULE_NEED_MD5;
        break;
    case RULE_BODY_SHA256:
        pn->approx_true = true;
        p->needs |= RULE_NEED_SHA256;
        break;
    case RULE_SUBJECT_REGEX:
        pn->approx_true = true;
        p->needs |= RULE_NEED_HEADERS;
        add_header(p, "Subject");
        break;
    case RULE_FROM_REGEX:
        pn->approx_true = true;
        p->needs |= RULE_NEED_HEADERS;
        add_header(p, "From");
        break;
    case RULE_HEADER_REGEX:
        pn->approx_true = true;
        p->needs |= RULE_NEED_HEADERS;
        add_header(p, n->name);
        break;
    case RULE_DUPLICATE:
        /* set-level: the caller groups candidates; as a key it is "all" */
        pn->exact = true;
        pn->approx_true = true;
        p->dup = n->dup;
        if (n->dup == RULE_DUP_MESSAGE_ID) {
            p->needs |= RULE_NEED_HEADERS;
            add_header(p, "Message-ID");
        } else {
            p->needs |= RULE_NEED_SHA256;
        }
        break;
    default:
        /* server-side keys */
        pn->exact = true;
        pn->approx_true = false;
        break;
    }
}

/* Assign auxiliary searches to the exact subtrees below a node that is
 * evaluated on the client. */
static void
assign_aux(struct rule_plan *p, struct pnode *pn)
{
    for (size_t i = 0; i < pn->nkids; i++) {
        struct pnode *k = &pn->kids[i];

        if (k->exact) {
            if (!k->approx_true) {
                k->aux = (int)p->n_aux;
                ARRAY_GROW(p->aux, p->cap_aux, p->n_aux + 1);
                p->aux[p->n_aux++] = k;
            }
        } else {
            assign_aux(p, k);
        }
    }
}

static void
free_pnode(struct pnode *pn)
{
    for (size_t i = 0; i < pn->nkids; i++)
        free_pnode(&pn->kids[i]);
    free(pn->kids);
}

struct rule_plan *
rule_plan_new(const struct rule *rule, const struct rule_caps *caps,
              time_t now)
{
    struct rule_plan *p = xcalloc(1, sizeof(*p));
    struct pnode *root = &p->root;

    p->rule = rule;
    p->caps = *caps;
    p->now = now;
    build_pnode(p, root, rule->match);

    /* The top level: a top-level AND's exact children are enforced by the
     * SEARCH itself; everything else inexact is evaluated here. */
    if (root->n->key == RULE_AND) {
        for (size_t i = 0; i < root->nkids; i++) {
            if (!root->kids[i].exact) {
                p->client_side = true;
                assign_aux(p, &root->kids[i]);
            }
        }
    } else if (!root->exact) {
        p->client_side = true;
        assign_aux(p, root);
    }
    if (p->dup != RULE_DUP_NONE)
        p->client_side = true;
    if (!p->client_side)
        p->needs = 0;
    return p;
}

void
rule_plan_free(struct rule_plan *p)
{
    if (p == NULL)
        return;
    free_pnode(&p->root);
    free(p->aux);
    free(p->headers);
    free(p);
}

static bool
is_ascii(const char *s)
{
    for (; s != NULL && *s; s++) {
        if ((unsigned char)*s >= 0x80)
            return false;
    }
    return true;
}

/* True if the server-side keys of pn use a non-ASCII string. */
static bool
needs_charset(const struct pnode *pn)
{
    const struct rule_node *n = pn->n;

    if (pn->approx_true)
        return false;
    switch (n->key) {
    case RULE_FROM: case RULE_TO: case RULE_CC: case RULE_BCC:
    case RULE_SUBJECT: case RULE_BODY: case RULE_TEXT: case RULE_HEADER:
        return !is_ascii(n->str) || !is_ascii(n->name);
    default:
        break;
    }
    for (size_t i = 0; i < pn->nkids; i++) {
        if (needs_charset(&pn->kids[i]))
            return true;
    }
    return false;
}

static void
emit_date(struct imap_build *b, const char *key, time_t t)
{
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr",
                                      "May", "Jun", "Jul", "Aug",
                                      "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    char date[32];

    gmtime_r(&t, &tm);
    snprintf(date, sizeof(date), "%d-%s-%04d", tm.tm_mday, mon[tm.tm_mon],
             tm.tm_year + 1900);
    imap_build_atom(b, key);
    imap_build_atom(b, date);
}

static void emit_key(const struct rule_plan *p, const struct pnode *pn,
                     struct imap_build *b);

static size_t
count_narrowing(const struct pnode *pn)
{
    size_t c = 0;

    for (size_t i = 0; i < pn->nkids; i++)
        c += !pn->kids[i].approx_true;
    return c;
}

/* OR chain over kids[i..]: OR a OR b c */
static void
emit_or(const struct rule_plan *p, const struct pnode *pn, size_t i,
        struct imap_build *b)
{
    if (i + 1 == pn->nkids) {
        emit_key(p, &pn->kids[i], b);
        return;
    }
    imap_build_atom(b, "OR");
    emit_key(p, &pn->kids[i], b);
    emit_or(p, pn, i + 1, b);
}

static void
emit_flag(struct imap_build *b, bool set, const char *yes, const char *no)
{
    imap_build_atom(b, set ? yes : no);
}

/* Exactly one search-key for a node whose approximation narrows. */
static void
emit_key(const struct rule_plan *p, const struct pnode *pn,
         struct imap_build *b)
{
    const struct rule_node *n = pn->n;
    /* two extra days either side cover every time zone */
    const time_t margin = 2 * 86400;

    switch (n->key) {
    case RULE_AND:
        if (count_narrowing(pn) == 0) {
            imap_build_atom(b, "ALL");
            return;
        }
        if (count_narrowing(pn) == 1) {
            for (size_t i = 0; i < pn->nkids; i++) {
                if (!pn->kids[i].approx_true)
                    emit_key(p, &pn->kids[i], b);
            }
            return;
        }
        imap_build_list_open(b);
        for (size_t i = 0; i < pn->nkids; i++) {
            if (!pn->kids[i].approx_true)
                emit_key(p, &pn->kids[i], b);
        }
        imap_build_list_close(b);
        return;
    case RULE_ANY:
        emit_or(p, pn, 0, b);
        return;
    case RULE_NOT:
        imap_build_atom(b, "NOT");
        emit_key(p, &pn->kids[0], b);
        return;
    case RULE_FROM: imap_build_atom(b, "FROM"); break;
    case RULE_TO: imap_build_atom(b, "TO"); break;
    case RULE_CC: imap_build_atom(b, "CC"); break;
    case RULE_BCC: imap_build_atom(b, "BCC"); break;
    case RULE_SUBJECT: imap_build_atom(b, "SUBJECT"); break;
    case RULE_BODY: imap_build_atom(b, "BODY"); break;
    case RULE_TEXT: imap_build_atom(b, "TEXT"); break;
    case RULE_HEADER:
        imap_build_atom(b, "HEADER");
        imap_build_astring(b, n->name, strlen(n->name));
        break;
    case RULE_OLDER:
        if (p->caps.within) {
            imap_build_atom(b, "OLDER");
            imap_build_number(b, n->num ? n->num : 1);
        } else {
            emit_date(b, "BEFORE", p->now - (time_t)n->num + margin);
        }
        return;
    case RULE_NEWER:
        if (p->caps.within) {
            imap_build_atom(b, "YOUNGER");
            imap_build_number(b, n->num ? n->num : 1);
        } else {
            emit_date(b, "SINCE", p->now - (time_t)n->num - margin);
        }
        return;
    case RULE_LARGER:
        imap_build_atom(b, "LARGER");
        imap_build_number(b, n->num);
        return;
    case RULE_SMALLER:
        imap_build_atom(b, "SMALLER");
        imap_build_number(b, n->num);
        return;
    case RULE_SEEN: emit_flag(b, n->flag, "SEEN", "UNSEEN"); return;
    case RULE_FLAGGED: emit_flag(b, n->flag, "FLAGGED", "UNFLAGGED"); return;
    case RULE_ANSWERED:
        emit_flag(b, n->flag, "ANSWERED", "UNANSWERED");
        return;
    case RULE_DRAFT: emit_flag(b, n->flag, "DRAFT", "UNDRAFT"); return;
    default:
        /* client-side keys and ALL never narrow: not reached */
        imap_build_atom(b, "ALL");
        return;
    }
    imap_build_string(b, n->str, strlen(n->str));
}

/* The search keys of a subtree, juxtaposed (AND) at its top. */
static void
emit_keys(const struct rule_plan *p, const struct pnode *pn,
          struct imap_build *b, bool have_other_keys)
{
    if (pn->approx_true) {
        if (!have_other_keys)
            imap_build_atom(b, "ALL");
        return;
    }
    if (pn->n->key == RULE_AND) {
        for (size_t i = 0; i < pn->nkids; i++) {
            if (!pn->kids[i].approx_true)
                emit_key(p, &pn->kids[i], b);
        }
        return;
    }
    emit_key(p, pn, b);
}

static void
emit_prefix(struct imap_build *b, bool esearch, bool charset)
{
    if (esearch) {
        imap_build_atom(b, "RETURN");
        imap_build_list_open(b);
        imap_build_atom(b, "ALL");
        imap_build_list_close(b);
    }
    if (charset) {
        imap_build_atom(b, "CHARSET");
        imap_build_atom(b, "UTF-8");
    }
}

void
rule_plan_build_search(const struct rule_plan *p, struct imap_build *b,
                       uint32_t uid_lo, bool esearch)
{
    emit_prefix(b, esearch, needs_charset(&p->root));
    if (uid_lo != 0) {
        char range[32];

        /* lo:* also matches the highest UID when it is below lo (RFC
         * 3501 9, seq-range): the caller clips the result */
        snprintf(range, sizeof(range), "%u:*", uid_lo);
        imap_build_atom(b, "UID");
        imap_build_atom(b, range);
    }
    emit_keys(p, &p->root, b, uid_lo != 0);
}

size_t
rule_plan_aux_count(const struct rule_plan *p)
{
    return p->n_aux;
}

void
rule_plan_build_aux(const struct rule_plan *p, size_t i,
                    struct imap_build *b, const struct uidset *cands,
                    bool esearch)
{
    const struct pnode *pn = p->aux[i];

    emit_prefix(b, esearch, needs_charset(pn));
    imap_build_atom(b, "UID");
    imap_build_uidset(b, cands);
    emit_keys(p, pn, b, true);
}

bool
rule_plan_client_side(const struct rule_plan *p)
{
    return p->client_side;
}

unsigned
rule_plan_needs(const struct rule_plan *p)
{
    return p->needs;
}

const char *const *
rule_plan_headers(const struct rule_plan *p, size_t *n_r)
{
    *n_r = p->n_headers;
    return p->headers;
}

enum rule_dup
rule_plan_duplicate(const struct rule_plan *p)
{
    return p->dup;
}

static bool
header_matches(const struct rule_msg *m, const char *name, const regex_t *re)
{
    for (size_t i = 0; i < m->n_headers; i++) {
        if (util_strcaseeq(m->headers[i].name, name) &&
            regexec(re, m->headers[i].value, 0, NULL, 0) == 0)
            return true;
    }
    return false;
}

static bool
eval(const struct rule_plan *p, const struct pnode *pn,
     const struct rule_msg *m, const struct uidset *aux)
{
    const struct rule_node *n = pn->n;

    if (pn->aux >= 0)
        return uidset_contains(&aux[pn->aux], m->uid);
    if (pn->exact && pn->approx_true)
        return true;
    switch (n->key) {
    case RULE_AND:
        for (size_t i = 0; i < pn->nkids; i++) {
            if (!eval(p, &pn->kids[i], m, aux))
                return false;
        }
        return true;
    case RULE_ANY:
        for (size_t i = 0; i < pn->nkids; i++) {
            if (eval(p, &pn->kids[i], m, aux))
                return true;
        }
        return false;
    case RULE_NOT:
        return !eval(p, &pn->kids[0], m, aux);
    case RULE_OLDER:
        return m->internaldate < (int64_t)p->now - (int64_t)n->num;
    case RULE_NEWER:
        return m->internaldate > (int64_t)p->now - (int64_t)n->num;
    case RULE_BODY_MD5:
        return memcmp(m->md5, n->digest, 16) == 0;
    case RULE_BODY_SHA256:
        return memcmp(m->sha256, n->digest, 32) == 0;
    case RULE_SUBJECT_REGEX:
        return header_matches(m, "Subject", &n->re);
    case RULE_FROM_REGEX:
        return header_matches(m, "From", &n->re);
    case RULE_HEADER_REGEX:
        return header_matches(m, n->name, &n->re);
    default:
        /* an exact server-side key below an inexact node always has an
         * aux search; reaching here would be a compiler bug: never match */
        return false;
    }
}

bool
rule_plan_eval(const struct rule_plan *p, const struct rule_msg *m,
               const struct uidset *aux)
{
    const struct pnode *root = &p->root;

    /* Without the data a key needs there is no evidence: never match (a
     * missing body under `not:` must not turn into a match). */
    if (((p->needs & RULE_NEED_MD5) && !m->has_md5) ||
        ((p->needs & RULE_NEED_SHA256) && !m->has_sha256) ||
        ((p->needs & RULE_NEED_INTERNALDATE) && !m->has_internaldate))
        return false;
    if (p->n_aux > 0 && aux == NULL)
        return false;
    if (root->n->key == RULE_AND) {
        for (size_t i = 0; i < root->nkids; i++) {
            if (!root->kids[i].exact && !eval(p, &root->kids[i], m, aux))
                return false;
        }
        return true;
    }
    return root->exact || eval(p, root, m, aux);
}

void
rule_build_flag_filter(const struct rule *r, struct imap_build *b)
{
    static const struct {
        const char *flag, *unset;
    } map[] = {
        {"\\Seen", "UNSEEN"},         {"\\Answered", "UNANSWERED"},
        {"\\Flagged", "UNFLAGGED"},   {"\\Deleted", "UNDELETED"},
        {"\\Draft", "UNDRAFT"},
    };

    for (size_t i = 0; i < r->n_flags; i++) {
        const char *unset = NULL;

        if (i + 1 < r->n_flags)
            imap_build_atom(b, "OR");
        for (size_t k = 0; k < ARRAY_SIZE(map); k++) {
            if (util_strcaseeq(r->flags[i], map[k].flag))
                unset = map[k].unset;
        }
        if (unset != NULL) {
            imap_build_atom(b, unset);
        } else {
            imap_build_atom(b, "UNKEYWORD");
            imap_build_atom(b, r->flags[i]);
        }
    }
}
