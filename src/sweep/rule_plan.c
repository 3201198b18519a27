/* SPDX-License-Identifier: MIT */
/* rule_plan: compiling a rule's match tree into its SEARCH plan (the main
 * search, auxiliary searches) and evaluating the rest on the client. */
#include "rule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_build.h"
#include "util.h"

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
rule_plan_build_search_range(const struct rule_plan *p, struct imap_build *b,
                             uint32_t uid_lo, uint32_t uid_hi, bool esearch)
{
    emit_prefix(b, esearch, needs_charset(&p->root));
    if (uid_lo != 0) {
        char range[32];

        /* lo:* also matches the highest UID when it is below lo (RFC
         * 3501 9, seq-range): the caller clips the result */
        if (uid_hi != 0)
            snprintf(range, sizeof(range), "%u:%u", uid_lo, uid_hi);
        else
            snprintf(range, sizeof(range), "%u:*", uid_lo);
        imap_build_atom(b, "UID");
        imap_build_atom(b, range);
    }
    emit_keys(p, &p->root, b, uid_lo != 0);
}

void
rule_plan_build_search(const struct rule_plan *p, struct imap_build *b,
                       uint32_t uid_lo, bool esearch)
{
    rule_plan_build_search_range(p, b, uid_lo, 0, esearch);
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

/* 1: some field of that name matches, 0: none, -1: a regex reached its
 * limits on a field that did not match otherwise (no answer). */
static int
header_matches(const struct rule_msg *m, const char *name,
               const struct rule_regex *re)
{
    int ret = 0;

    for (size_t i = 0; i < m->n_headers; i++) {
        if (util_strcaseeq(m->headers[i].name, name)) {
            int r = rule_regex_match(re, m->headers[i].value,
                                     strlen(m->headers[i].value));

            if (r == 1)
                return 1;
            if (r < 0)
                ret = -1;
        }
    }
    return ret;
}

/* Evaluation of a subtree; *unknown is set when a regex gave no answer,
 * which makes the whole rule "no evidence" (never a match: a regex that
 * gives up under not: must not turn into a match). */
static bool
eval(const struct rule_plan *p, const struct pnode *pn,
     const struct rule_msg *m, const struct uidset *aux, bool *unknown)
{
    const struct rule_node *n = pn->n;
    int r;

    if (pn->aux >= 0)
        return uidset_contains(&aux[pn->aux], m->uid);
    if (pn->exact && pn->approx_true)
        return true;
    switch (n->key) {
    case RULE_AND:
        for (size_t i = 0; i < pn->nkids; i++) {
            if (!eval(p, &pn->kids[i], m, aux, unknown))
                return false;
        }
        return true;
    case RULE_ANY:
        for (size_t i = 0; i < pn->nkids; i++) {
            if (eval(p, &pn->kids[i], m, aux, unknown))
                return true;
        }
        return false;
    case RULE_NOT:
        return !eval(p, &pn->kids[0], m, aux, unknown);
    case RULE_OLDER:
        return m->internaldate < (int64_t)p->now - (int64_t)n->num;
    case RULE_NEWER:
        return m->internaldate > (int64_t)p->now - (int64_t)n->num;
    case RULE_BODY_MD5:
        return memcmp(m->md5, n->digest, 16) == 0;
    case RULE_BODY_SHA256:
        return memcmp(m->sha256, n->digest, 32) == 0;
    case RULE_SUBJECT_REGEX:
    case RULE_FROM_REGEX:
    case RULE_HEADER_REGEX:
        r = header_matches(m, n->key == RULE_SUBJECT_REGEX ? "Subject"
                              : n->key == RULE_FROM_REGEX  ? "From"
                                                           : n->name,
                           n->re);
        if (r < 0)
            *unknown = true;
        return r == 1;
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
    bool unknown = false;

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
            if (!root->kids[i].exact &&
                !eval(p, &root->kids[i], m, aux, &unknown))
                return false;
        }
        return !unknown;
    }
    return root->exact || (eval(p, root, m, aux, &unknown) && !unknown);
}

/* --- parts --------------------------------------------------------------- */

/* The parts: a top-level AND's children, or the root itself. */
static const struct pnode *
part(const struct rule_plan *p, size_t i)
{
    const struct pnode *root = &p->root;

    return root->n->key == RULE_AND ? &root->kids[i] : root;
}

size_t
rule_plan_n_parts(const struct rule_plan *p)
{
    return p->root.n->key == RULE_AND ? p->root.nkids : 1;
}

const struct rule_node *
rule_plan_part(const struct rule_plan *p, size_t i)
{
    return part(p, i)->n;
}

bool
rule_plan_part_server(const struct rule_plan *p, size_t i)
{
    const struct pnode *pn = part(p, i);

    /* duplicate is "exact" as a key, but decided over the set */
    return pn->exact && pn->n->key != RULE_DUPLICATE;
}

void
rule_plan_build_part_search(const struct rule_plan *p, size_t i,
                            struct imap_build *b, const struct uidset *uids,
                            bool esearch)
{
    const struct pnode *pn = part(p, i);

    emit_prefix(b, esearch, needs_charset(pn));
    imap_build_atom(b, "UID");
    imap_build_uidset(b, uids);
    emit_keys(p, pn, b, true);
}

int
rule_plan_part_eval(const struct rule_plan *p, size_t i,
                    const struct rule_msg *m, const struct uidset *aux)
{
    bool unknown = false, r;

    if (((p->needs & RULE_NEED_MD5) && !m->has_md5) ||
        ((p->needs & RULE_NEED_SHA256) && !m->has_sha256) ||
        ((p->needs & RULE_NEED_INTERNALDATE) && !m->has_internaldate) ||
        (p->n_aux > 0 && aux == NULL))
        return -1;
    r = eval(p, part(p, i), m, aux, &unknown);
    return unknown ? -1 : r;
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
