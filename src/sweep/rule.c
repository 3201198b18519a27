/* SPDX-License-Identifier: MIT */
#include "rule.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "buf.h"
#include "util.h"

/* Regular expressions: PCRE2's own limits bound what one match may cost
 * (a pattern such as (a+)+$ on a long header ends with "no answer"
 * instead of running for minutes); nesting and length bound the compile. */
#define REGEX_MAX_LENGTH 8192
#define REGEX_MAX_PARENS 64
#define REGEX_MATCH_LIMIT 1000000
#define REGEX_DEPTH_LIMIT 10000
#define REGEX_HEAP_LIMIT_KIB 4096

struct rule_regex {
    pcre2_code *code;
    pcre2_match_data *md;      /* one match at a time: the loop is single */
    pcre2_match_context *mctx;
};

static void *
regex_alloc(size_t size, void *arg)
{
    (void)arg;
    return xmalloc(size);
}

static void
regex_release(void *p, void *arg)
{
    (void)arg;
    free(p);
}

/* PCRE2 allocates through xmalloc like the rest of the program: one
 * context for the process, reachable until exit. */
static pcre2_general_context *
regex_memory(void)
{
    static pcre2_general_context *g;

    if (g == NULL) {
        g = pcre2_general_context_create(regex_alloc, regex_release, NULL);
        if (g == NULL)
            g = xmalloc(SIZE_MAX);  /* reports out of memory and aborts */
    }
    return g;
}

static void
regex_free(struct rule_regex *re)
{
    if (re == NULL)
        return;
    pcre2_match_context_free(re->mctx);
    pcre2_match_data_free(re->md);
    pcre2_code_free(re->code);
    free(re);
}

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
    regex_free(n->re);
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
    /* UCP: \w, \d, \b and [[:alpha:]] know Unicode (decoded headers);
     * MATCH_INVALID_UTF: a header that is not valid UTF-8 is matched where
     * it is, never an error; NEVER_BACKSLASH_C: \C could split a character */
    const uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS |
                          PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C;
    size_t len = strlen(pattern);
    pcre2_compile_context *cctx;
    struct rule_regex *re;
    PCRE2_SIZE offset = 0;
    int code = 0;

    if (len > REGEX_MAX_LENGTH) {
        *err_r = xasprintf("%s: regular expression longer than %d bytes",
                           rule_key_name(n->key), REGEX_MAX_LENGTH);
        return -EINVAL;
    }
    cctx = pcre2_compile_context_create(regex_memory());
    pcre2_set_parens_nest_limit(cctx, REGEX_MAX_PARENS);
    pcre2_set_max_pattern_length(cctx, REGEX_MAX_LENGTH);
    re = xcalloc(1, sizeof(*re));
    re->code = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &code, &offset,
                             cctx);
    pcre2_compile_context_free(cctx);
    if (re->code == NULL) {
        PCRE2_UCHAR msg[256];

        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            util_strlcpy((char *)msg, "unknown error", sizeof(msg));
        *err_r = xasprintf("%s: invalid regular expression at offset %zu: "
                           "%s", rule_key_name(n->key), (size_t)offset,
                           (const char *)msg);
        free(re);
        return -EINVAL;
    }
    re->md = pcre2_match_data_create(1, regex_memory());
    re->mctx = pcre2_match_context_create(regex_memory());
    pcre2_set_match_limit(re->mctx, REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(re->mctx, REGEX_DEPTH_LIMIT);
    pcre2_set_heap_limit(re->mctx, REGEX_HEAP_LIMIT_KIB);
    regex_free(n->re);
    n->re = re;
    free(n->str);
    n->str = xstrdup(pattern);
    return 0;
}

int
rule_regex_match(const struct rule_regex *re, const char *text, size_t len)
{
    int r = pcre2_match(re->code, (PCRE2_SPTR)text, len, 0, 0, re->md,
                        re->mctx);

    if (r >= 0)
        return 1;
    if (r == PCRE2_ERROR_NOMATCH)
        return 0;
    return -1;
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
                           "keyword without a backslash)", flag);
        return -EINVAL;
    }
    /* "flag: Seen" would set a keyword named Seen: every client shows the
     * message unread all the same */
    for (size_t i = 0; i < ARRAY_SIZE(system_flags); i++) {
        if (util_strcaseeq(flag, system_flags[i] + 1)) {
            *err_r = xasprintf("flag \"%s\" would set a keyword, not the "
                               "system flag: did you mean %s? (in YAML "
                               "'%s' or \"\\\\%s\")", flag, system_flags[i],
                               system_flags[i], system_flags[i] + 1);
            return -EINVAL;
        }
    }
    if (util_strcaseeq(flag, "Recent")) {
        *err_r = xstrdup("flag \"Recent\": \\Recent is set by the server "
                         "only and cannot be stored");
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
    *err_r = xasprintf("invalid flag keyword \"%s\" (an IMAP atom: 1 to "
                       "200 printable ASCII characters, no spaces or "
                       "(){%%*\"\\])", flag);
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

bool
rule_is_dry(const struct rule *r, bool force, bool default_dry)
{
    return force || r->dry_run == 1 || (r->dry_run == -1 && default_dry);
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
    buf_printf(&out, " create %d", r->create);
    buf_append_str(&out, " flags [");
    for (size_t i = 0; i < r->n_flags; i++) {
        buf_append_char(&out, ' ');
        canon_str(&out, r->flags[i]);
    }
    buf_printf(&out, " ] keep_newest %u dry_run %d", r->keep_newest,
               r->dry_run);
    return buf_steal(&out);
}
