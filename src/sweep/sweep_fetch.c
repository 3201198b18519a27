/* SPDX-License-Identifier: MIT */
/* sweep, phase 3 (and 5): the client-side data the rules need. Auxiliary
 * and flag searches are queued with the sweep's own; header fields and
 * INTERNALDATE are fetched in chunks, and BODY.PEEK[TEXT] is streamed
 * through digests so memory does not grow with message size. */
#include "sweep_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "digest.h"
#include "imap_build.h"
#include "mime.h"
#include "uidset.h"
#include "util.h"

static const char *const audit_fields[] = {"From", "Subject", "Message-ID"};

/* --- phase 3: client-side data ------------------------------------------- */

static bool
fetch_untagged(struct imap_conn *c, const struct imap_response *r, void *arg)
{
    struct sweep *s = arg;
    const struct imap_arg *a;
    struct sweep_msg *m = NULL;
    uint32_t uid = 0;

    (void)c;
    if (r->name == NULL || strcmp(r->name, "FETCH") != 0 || r->args == NULL ||
        r->args->type != IMAP_ARG_LIST)
        return false;
    for (a = r->args->list; a != NULL && a->next != NULL; a = a->next->next) {
        if (imap_arg_is_atom(a, "UID"))
            imap_arg_get_u32(a->next, &uid);
    }
    if (uid == 0 || (m = sweep_store_find(&s->store, uid)) == NULL)
        return false; /* not ours: flag updates go to the owner */
    for (a = r->args->list; a != NULL && a->next != NULL; a = a->next->next) {
        const struct imap_arg *v = a->next;
        const char *str;
        size_t len;

        if (a->type != IMAP_ARG_ATOM)
            continue;
        if (a->len >= 19 &&
            util_strncaseeq(a->str, "BODY[HEADER.FIELDS", 18)) {
            if (imap_arg_get_nstring(v, &str, &len)) {
                if (str != NULL)
                    mime_fields_parse(str, len, &m->headers);
                m->has_headers = true;
            }
        } else if (util_strncaseeq(a->str, "BODY[TEXT]", 10)) {
            if (v->type == IMAP_ARG_STREAMED && v->stream_id < MAX_STREAMS &&
                s->stream_done[v->stream_id]) {
                memcpy(m->md5, s->stream_md5[v->stream_id], 16);
                memcpy(m->sha256, s->stream_sha[v->stream_id], 32);
                m->has_md5 = s->want_md5;
                m->has_sha256 = s->want_sha;
                s->stream_done[v->stream_id] = false;
            } else if (imap_arg_get_nstring(v, &str, &len)) {
                struct digest *d = digest_new(s->want_md5, s->want_sha);

                if (str != NULL)
                    digest_update(d, str, len);
                digest_final(d, m->md5, m->sha256);
                digest_free(d);
                m->has_md5 = s->want_md5;
                m->has_sha256 = s->want_sha;
            }
        } else if (imap_arg_is_atom(a, "INTERNALDATE")) {
            if (imap_arg_get_astring(v, &str, &len) &&
                imap_arg_parse_internaldate(str, len, &m->internaldate))
                m->has_date = true;
        }
    }
    return true;
}

static bool
body_start(void *arg, const struct imap_response *partial,
           const struct imap_arg *prev, uint64_t size, unsigned id)
{
    struct sweep *s = arg;

    (void)size;
    if (partial->name == NULL || strcmp(partial->name, "FETCH") != 0 ||
        prev == NULL || prev->type != IMAP_ARG_ATOM ||
        !util_strncaseeq(prev->str, "BODY[TEXT]", 10) || id >= MAX_STREAMS)
        return false;
    digest_free(s->streams[id]);
    s->streams[id] = digest_new(s->want_md5, s->want_sha);
    s->stream_done[id] = false;
    return true;
}

static void
body_data(void *arg, unsigned id, const void *p, size_t n)
{
    struct sweep *s = arg;

    if (id < MAX_STREAMS && s->streams[id] != NULL)
        digest_update(s->streams[id], p, n);
}

static void
body_end(void *arg, unsigned id)
{
    struct sweep *s = arg;

    if (id >= MAX_STREAMS || s->streams[id] == NULL)
        return;
    digest_final(s->streams[id], s->stream_md5[id], s->stream_sha[id]);
    digest_free(s->streams[id]);
    s->streams[id] = NULL;
    s->stream_done[id] = true;
}

static const struct imap_parser_stream_ops body_stream = {
    .start = body_start,
    .data = body_data,
    .end = body_end,
};

static void
fetch_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct sweep *s = arg;

    (void)c;
    sweep_reply_ok(s, r, "UID FETCH");
    sweep_cmd_finished(s);
}

/* UID FETCH over set, chunked; items as given, e.g. "(UID BODY.PEEK[TEXT])";
 * body: BODY[TEXT] is streamed into digests. */
static void
submit_fetches(struct sweep *s, const struct uidset *set, const char *items,
               bool body)
{
    struct uidset chunk;
    size_t pos = 0;

    uidset_init(&chunk);
    while (!sweep_stopped(s) &&
           uidset_next_chunk(set, &pos, s->p.max_set_len, &chunk)) {
        struct imap_build *b = imap_conn_build(s->p.conn);

        imap_build_atom(b, "UID");
        imap_build_atom(b, "FETCH");
        imap_build_uidset(b, &chunk);
        imap_build_atom(b, items);
        sweep_submit(s, b, fetch_done, fetch_untagged,
                     body ? &body_stream : NULL, s);
    }
    uidset_free(&chunk);
}

/* "(UID BODY.PEEK[HEADER.FIELDS (A B)])" */
static char *
header_items(const char *const *names, size_t n, bool date)
{
    struct buf b;

    buf_init(&b, BUF_NOCAP);
    buf_append_str(&b, "(UID");
    if (date)
        buf_append_str(&b, " INTERNALDATE");
    if (n > 0) {
        buf_append_str(&b, " BODY.PEEK[HEADER.FIELDS (");
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                buf_append_char(&b, ' ');
            buf_append_str(&b, names[i]);
        }
        buf_append_str(&b, ")]");
    }
    buf_append_char(&b, ')');
    return buf_steal(&b);
}

static void
add_name(const char ***names, size_t *n, size_t *cap, const char *name)
{
    for (size_t i = 0; i < *n; i++) {
        if (util_strcaseeq((*names)[i], name))
            return;
    }
    ARRAY_GROW(*names, *cap, *n + 1);
    (*names)[(*n)++] = name;
}

/* Records for set, at most as many as the mailbox has held (every found
 * set was checked against that as it arrived; together they are below
 * the top, so they name messages that existed together). */
static bool
store_add(struct sweep *s, const struct uidset *set)
{
    if (sweep_store_add(&s->store, set, sweep_bound(s)) == 0)
        return true;
    sweep_violation(s, "the searches name more messages than the %u the "
                       "mailbox has", sweep_bound(s));
    return false;
}

void
sweep_fetch_prep(struct sweep *s)
{
    struct uidset hdr_set, body_set;
    const char **names = NULL;
    size_t n_names = 0, cap_names = 0;
    bool date = false;

    uidset_init(&hdr_set);
    uidset_init(&body_set);
    for (size_t i = 0; i < s->n_rules; i++) {
        struct sweep_rule *sr = &s->rules[i];
        unsigned needs = rule_plan_needs(sr->plan);
        size_t n_aux = rule_plan_aux_count(sr->plan);

        if (uidset_empty(&sr->found))
            continue;
        for (size_t k = 0; k < n_aux; k++) {
            struct imap_build *b = imap_conn_build(s->p.conn);

            imap_build_atom(b, "UID");
            imap_build_atom(b, "SEARCH");
            rule_plan_build_aux(sr->plan, k, b, &sr->found, s->esearch);
            sweep_enqueue_search(s, b, &sr->aux[k]);
        }
        if (sr->rule->action == RULE_ACTION_FLAG && !sr->dry) {
            struct uidset chunk;
            size_t pos = 0;

            /* which matches lack a flag: only those are stored to */
            uidset_init(&chunk);
            while (uidset_next_chunk(&sr->found, &pos, s->p.max_set_len,
                                     &chunk)) {
                struct imap_build *b = imap_conn_build(s->p.conn);

                imap_build_atom(b, "UID");
                imap_build_atom(b, "SEARCH");
                if (s->esearch) {
                    imap_build_atom(b, "RETURN");
                    imap_build_list_open(b);
                    imap_build_atom(b, "ALL");
                    imap_build_list_close(b);
                }
                imap_build_atom(b, "UID");
                imap_build_uidset(b, &chunk);
                rule_build_flag_filter(sr->rule, b);
                sweep_enqueue_search(s, b, &sr->lacking);
            }
            uidset_free(&chunk);
        }
        if (!rule_plan_client_side(sr->plan))
            continue;
        if (needs & (RULE_NEED_HEADERS | RULE_NEED_INTERNALDATE)) {
            size_t nh;
            const char *const *h = rule_plan_headers(sr->plan, &nh);

            for (size_t k = 0; k < nh; k++)
                add_name(&names, &n_names, &cap_names, h[k]);
            if (needs & RULE_NEED_INTERNALDATE)
                date = true;
            uidset_union(&hdr_set, &sr->found);
        }
        if (needs & (RULE_NEED_MD5 | RULE_NEED_SHA256)) {
            s->want_md5 |= (needs & RULE_NEED_MD5) != 0;
            s->want_sha |= (needs & RULE_NEED_SHA256) != 0;
            uidset_union(&body_set, &sr->found);
        }
    }
    if (!uidset_empty(&hdr_set) && s->p.audit == CONFIG_AUDIT_MESSAGES) {
        for (size_t k = 0; k < ARRAY_SIZE(audit_fields); k++)
            add_name(&names, &n_names, &cap_names, audit_fields[k]);
    }
    if (!uidset_empty(&hdr_set) && !sweep_stopped(s) &&
        store_add(s, &hdr_set)) {
        char *items = header_items(names, n_names, date);

        submit_fetches(s, &hdr_set, items, false);
        free(items);
    }
    if (!uidset_empty(&body_set) && !sweep_stopped(s) &&
        store_add(s, &body_set))
        submit_fetches(s, &body_set, "(UID BODY.PEEK[TEXT])", true);
    sweep_pump_searches(s);
    free(names);
    uidset_free(&hdr_set);
    uidset_free(&body_set);
}

/* --- phase 5: audit headers ---------------------------------------------- */

void
sweep_fetch_audit(struct sweep *s)
{
    struct uidset need, part;

    if (s->p.audit != CONFIG_AUDIT_MESSAGES)
        return;
    uidset_init(&need);
    uidset_init(&part);
    for (size_t i = 0; i < s->n_rules; i++) {
        struct sweep_rule *sr = &s->rules[i];

        /* final is within found: bounded by what the mailbox holds */
        uidset_clear(&part);
        for (size_t r = 0; r < sr->final.n; r++) {
            for (uint64_t u = sr->final.r[r].lo; u <= sr->final.r[r].hi;
                 u++) {
                struct sweep_msg *m;

                m = sweep_store_find(&s->store, (uint32_t)u);
                if (m == NULL || !m->has_headers ||
                    mime_fields_get(&m->headers, "From") == NULL)
                    uidset_add(&part, (uint32_t)u); /* ascending */
            }
        }
        uidset_union(&need, &part); /* rules in any order: merged */
    }
    if (!uidset_empty(&need) && store_add(s, &need)) {
        char *items = header_items(audit_fields, ARRAY_SIZE(audit_fields),
                                   false);

        submit_fetches(s, &need, items, false);
        free(items);
    }
    uidset_free(&part);
    uidset_free(&need);
}
