/* SPDX-License-Identifier: MIT */
/* sweep, phase 4: evaluation. Pure: it works on the rules' search results
 * and the fetched records only, never on the connection. */
#include "sweep_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "mime.h"
#include "rule.h"
#include "uidset.h"
#include "util.h"

/* --- the message store --------------------------------------------------- */

static int
cmp_uid(const void *a, const void *b)
{
    uint32_t x = ((const struct sweep_msg *)a)->uid;
    uint32_t y = ((const struct sweep_msg *)b)->uid;

    return x < y ? -1 : x > y;
}

void
sweep_store_free(struct sweep_store *st)
{
    for (size_t i = 0; i < st->n; i++)
        mime_fields_free(&st->msgs[i].headers);
    free(st->msgs);
    memset(st, 0, sizeof(*st));
}

struct sweep_msg *
sweep_store_find(const struct sweep_store *st, uint32_t uid)
{
    struct sweep_msg key = {.uid = uid};

    if (st->n == 0)
        return NULL;
    return bsearch(&key, st->msgs, st->n, sizeof(*st->msgs), cmp_uid);
}

/* Make sure every UID of set has a record (kept sorted). The records
 * there and the set are both in ascending order: one walk over both finds
 * the missing UIDs (a lookup in the records appended meanwhile, unsorted,
 * used to miss and add a second record), bounded by limit. */
int
sweep_store_add(struct sweep_store *st, const struct uidset *set,
                size_t limit)
{
    size_t before = st->n, k = 0;

    /* first the bound, before expanding a single range */
    if (uidset_count(set) > limit)
        return -E2BIG;
    for (size_t i = 0; i < set->n; i++) {
        for (uint64_t u = set->r[i].lo; u <= set->r[i].hi; u++) {
            while (k < before && st->msgs[k].uid < u)
                k++;
            if (k < before && st->msgs[k].uid == u)
                continue;
            if (st->n >= limit) {
                st->n = before; /* nothing added */
                return -E2BIG;
            }
            ARRAY_GROW(st->msgs, st->cap, st->n + 1);
            memset(&st->msgs[st->n], 0, sizeof(*st->msgs));
            st->msgs[st->n++].uid = (uint32_t)u;
        }
    }
    if (st->n != before)
        qsort(st->msgs, st->n, sizeof(*st->msgs), cmp_uid);
    return 0;
}

/* --- the rules as swept -------------------------------------------------- */

struct sweep_rule *
sweep_rules_new(const struct rule *const *src, size_t n,
                const struct rule_caps *caps, time_t now, bool force_dry,
                bool default_dry)
{
    struct sweep_rule *rules = xcalloc(n ? n : 1, sizeof(*rules));

    for (size_t i = 0; i < n; i++) {
        struct sweep_rule *sr = &rules[i];
        size_t n_aux;

        sr->rule = src[i];
        sr->plan = rule_plan_new(sr->rule, caps, now);
        sr->global = sr->rule->keep_newest > 0 ||
                     rule_plan_duplicate(sr->plan) != RULE_DUP_NONE;
        /* --dry-run wins; then the rule's own setting; then the daemon's */
        sr->dry = rule_is_dry(sr->rule, force_dry, default_dry);
        uidset_init(&sr->found);
        uidset_init(&sr->lacking);
        uidset_init(&sr->final);
        uidset_init(&sr->claimed);
        n_aux = rule_plan_aux_count(sr->plan);
        sr->aux = n_aux ? xcalloc(n_aux, sizeof(*sr->aux)) : NULL;
        sr->stat.rule = sr->rule->name;
        sr->stat.action = sr->rule->action;
        sr->stat.dry = sr->dry;
    }
    /* In an incremental sweep a global rule sees old mail: the rules
     * before it must claim their old matches too, or it would act on
     * messages that an earlier rule decided on (flagged, kept, previewed) */
    for (size_t i = n; i-- > 0;) {
        if (rules[i].global) {
            for (size_t k = 0; k < i; k++)
                rules[k].claim_all = !rules[k].global;
            break;
        }
    }
    return rules;
}

void
sweep_rules_free(struct sweep_rule *rules, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct sweep_rule *sr = &rules[i];

        uidset_free(&sr->found);
        uidset_free(&sr->lacking);
        uidset_free(&sr->final);
        uidset_free(&sr->claimed);
        free(sr->why);
        if (sr->aux != NULL) {
            for (size_t k = 0; k < rule_plan_aux_count(sr->plan); k++)
                uidset_free(&sr->aux[k]);
            free(sr->aux);
        }
        /* last: the aux count above comes from the plan */
        rule_plan_free(sr->plan);
    }
    free(rules);
}

/* lo:* also finds mail that arrived after the FETCH: that is the next
 * sweep's. Global and claim_all rules searched from 1, the others from lo. */
void
sweep_eval_clip_found(struct sweep_rule *rules, size_t n, uint32_t uid_lo,
                      uint32_t uid_top)
{
    for (size_t i = 0; i < n; i++) {
        struct sweep_rule *sr = &rules[i];

        uidset_clip(&sr->found, sr->global || sr->claim_all ? 1 : uid_lo,
                    uid_top);
    }
}

/* --- evaluation ---------------------------------------------------------- */

static void
msg_view(const struct sweep_msg *m, struct rule_header *hv, struct rule_msg *v)
{
    memset(v, 0, sizeof(*v));
    v->uid = m->uid;
    for (size_t i = 0; i < m->headers.n; i++) {
        hv[i].name = m->headers.f[i].name;
        hv[i].value = m->headers.f[i].value;
    }
    v->headers = hv;
    v->n_headers = m->headers.n;
    memcpy(v->md5, m->md5, 16);
    memcpy(v->sha256, m->sha256, 32);
    v->has_md5 = m->has_md5;
    v->has_sha256 = m->has_sha256;
    v->internaldate = m->internaldate;
    v->has_internaldate = m->has_date;
}

struct dupkey {
    uint32_t uid;
    unsigned char key[32];
};

static int
cmp_dupkey(const void *a, const void *b)
{
    const struct dupkey *x = a, *y = b;
    int c = memcmp(x->key, y->key, 32);

    if (c != 0)
        return c;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* Keep the oldest (lowest UID) of each group of equal keys; the others
 * are the matches. Messages without a key are never duplicates. */
static void
apply_duplicates(const struct sweep_store *st, const struct sweep_rule *sr,
                 struct uidset *set)
{
    enum rule_dup dup = rule_plan_duplicate(sr->plan);
    struct dupkey *keys = NULL;
    size_t n = 0, cap = 0, n_dups = 0;
    uint32_t *dups;

    /* set is within the rule's found set: bounded by what the mailbox
     * holds (sweep_bound) */
    for (size_t i = 0; i < set->n; i++) {
        for (uint64_t u = set->r[i].lo; u <= set->r[i].hi; u++) {
            struct sweep_msg *m = sweep_store_find(st, (uint32_t)u);
            struct dupkey k = {.uid = (uint32_t)u};

            if (m == NULL)
                continue;
            if (dup == RULE_DUP_BODY) {
                if (!m->has_sha256)
                    continue;
                memcpy(k.key, m->sha256, 32);
            } else {
                const char *id = mime_fields_get(&m->headers, "Message-ID");
                struct digest *d;
                unsigned char md5[16];

                if (id == NULL || *id == '\0')
                    continue;
                d = digest_new(false, true);
                digest_update(d, id, strlen(id));
                digest_final(d, md5, k.key);
                digest_free(d);
            }
            ARRAY_GROW(keys, cap, n + 1);
            keys[n++] = k;
        }
    }
    if (n > 1) /* keys is NULL when no message has a key */
        qsort(keys, n, sizeof(*keys), cmp_dupkey);
    /* in key order, not UID order: collected, then built sorted */
    dups = xmalloc((n ? n : 1) * sizeof(*dups));
    for (size_t i = 1; i < n; i++) {
        if (memcmp(keys[i].key, keys[i - 1].key, 32) == 0)
            dups[n_dups++] = keys[i].uid;
    }
    uidset_from_array(set, dups, n_dups);
    free(dups);
    free(keys);
}

/* Drop the `keep` highest UIDs of set. */
static void
apply_keep_newest(struct uidset *set, uint32_t keep)
{
    uint64_t count = uidset_count(set);
    uint64_t drop = 0;
    struct uidset kept;

    if (count <= keep) {
        uidset_clear(set);
        return;
    }
    uidset_init(&kept);
    for (size_t i = set->n; i-- > 0 && drop < keep;) {
        uint64_t len = (uint64_t)set->r[i].hi - set->r[i].lo + 1;
        uint64_t take = len < keep - drop ? len : keep - drop;

        uidset_add_range(&kept, (uint32_t)(set->r[i].hi - take + 1),
                         set->r[i].hi);
        drop += take;
    }
    uidset_subtract(set, &kept);
    uidset_free(&kept);
}

void
sweep_eval_rules(struct sweep_rule *rules, size_t n_rules,
                 const struct sweep_store *st, uint32_t uid_lo,
                 uint32_t uid_top)
{
    struct uidset claimed, cand;
    struct rule_header *hv = NULL;
    size_t hv_cap = 0;

    uidset_init(&claimed);
    uidset_init(&cand);
    for (size_t i = 0; i < n_rules; i++) {
        struct sweep_rule *sr = &rules[i];

        uidset_copy(&cand, &sr->found);     /* clipped to the sweep's range */
        uidset_subtract(&cand, &claimed);
        if (rule_plan_client_side(sr->plan)) {
            struct uidset pass;

            uidset_init(&pass);
            /* cand is within found: bounded by what the mailbox holds */
            for (size_t r = 0; r < cand.n; r++) {
                for (uint64_t u = cand.r[r].lo; u <= cand.r[r].hi; u++) {
                    struct sweep_msg *m = sweep_store_find(st, (uint32_t)u);
                    struct rule_msg v;

                    if (m == NULL)
                        continue;
                    ARRAY_GROW(hv, hv_cap, m->headers.n + 1);
                    msg_view(m, hv, &v);
                    /* a header fetch that did not answer: no evidence */
                    if ((rule_plan_needs(sr->plan) & RULE_NEED_HEADERS) &&
                        !m->has_headers)
                        continue;
                    if (rule_plan_eval(sr->plan, &v, sr->aux))
                        uidset_add(&pass, (uint32_t)u);
                }
            }
            uidset_copy(&cand, &pass);
            uidset_free(&pass);
            if (rule_plan_duplicate(sr->plan) != RULE_DUP_NONE)
                apply_duplicates(st, sr, &cand);
        }
        /* the rule owns these now, whatever it does with them: the
         * newest it keeps too (first match decides, keeping included) */
        uidset_union(&claimed, &cand);
        uidset_copy(&sr->claimed, &cand);
        if (sr->rule->keep_newest > 0)
            apply_keep_newest(&cand, sr->rule->keep_newest);
        /* global rules searched the whole mailbox; act only where the
         * sweep is allowed to (incremental sweeps: new mail, but the
         * survivors of keep_newest/duplicate may be older) */
        uidset_copy(&sr->final, &cand);
        uidset_intersect(&sr->final, &sr->found);
        if (sr->claim_all)
            uidset_clip(&sr->final, uid_lo, uid_top);
        if (sr->rule->action == RULE_ACTION_FLAG && !sr->dry)
            uidset_intersect(&sr->final, &sr->lacking);
        sr->stat.matched = uidset_count(&cand);
    }
    free(hv);
    uidset_free(&claimed);
    uidset_free(&cand);
}
