/* SPDX-License-Identifier: MIT */
/* sweep: lifetime, the top of the range, the searches, and the phase
 * machine that drives fetching (sweep_fetch.c), evaluation (sweep_eval.c)
 * and the actions (sweep_act.c). */
#include "sweep_private.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "digest.h"
#include "errors.h"
#include "imap_build.h"
#include "log.h"
#include "uidset.h"
#include "util.h"

#define DEFAULT_SET_LEN 30000

static void advance(struct sweep *s);
static void start_searches(struct sweep *s);

/* --- messages ------------------------------------------------------------ */

void
sweep_set_error(struct sweep *s, int err, const char *fmt, ...)
{
    va_list ap;

    if (s->err != 0)
        return;
    s->err = err;
    va_start(ap, fmt);
    s->msg = xvasprintf(fmt, ap);
    va_end(ap);
}

bool
sweep_memo_note(struct sweep_memo *m, const struct log_ctx *log,
                const char *text)
{
    for (size_t i = 0; i < m->n_notes; i++) {
        if (strcmp(m->notes[i], text) == 0)
            return false;
    }
    ARRAY_GROW(m->notes, m->cap_notes, m->n_notes + 1);
    m->notes[m->n_notes++] = xstrdup(text);
    log_ctx_msg(log, LL_WARNING, "%s", text);
    return true;
}

/* A note is logged once per mailbox and kept for status. */
void
sweep_note(struct sweep *s, const char *text)
{
    if (s->p.memo != NULL)
        (void)sweep_memo_note(s->p.memo, &s->log, text);
}

void
sweep_note_drop(struct sweep *s, const char *text)
{
    struct sweep_memo *m = s->p.memo;

    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_notes; i++) {
        if (strcmp(m->notes[i], text) == 0) {
            free(m->notes[i]);
            memmove(&m->notes[i], &m->notes[i + 1],
                    (m->n_notes - i - 1) * sizeof(*m->notes));
            m->n_notes--;
            return;
        }
    }
}

void
sweep_memo_free(struct sweep_memo *m)
{
    free(m->trash);
    free(m->trash_none);
    for (size_t i = 0; i < m->n_notes; i++)
        free(m->notes[i]);
    free(m->notes);
    memset(m, 0, sizeof(*m));
}

/* --- what the server may say about the mailbox ---------------------------- */

uint32_t
sweep_bound(struct sweep *s)
{
    uint32_t exists = imap_conn_mailbox(s->p.conn)->exists;

    if (exists > s->exists_max)
        s->exists_max = exists;
    return s->exists_max < SWEEP_MAX_MESSAGES ? s->exists_max
                                              : SWEEP_MAX_MESSAGES;
}

void
sweep_violation(struct sweep *s, const char *fmt, ...)
{
    va_list ap;
    char *what, *msg;

    va_start(ap, fmt);
    what = xvasprintf(fmt, ap);
    va_end(ap);
    msg = xasprintf("protocol violation: %s; ending the connection", what);
    sweep_set_error(s, ERR_PROTOCOL, "%s", msg);
    imap_conn_abort(s->p.conn, ERR_PROTOCOL, msg);
    free(msg);
    free(what);
}

bool
sweep_uids_plausible(struct sweep *s, uint64_t n, uint32_t max,
                     const char *what)
{
    uint32_t bound = sweep_bound(s);
    uint32_t uidnext = imap_conn_mailbox(s->p.conn)->uidnext;

    if (n > bound && bound == SWEEP_MAX_MESSAGES) {
        sweep_violation(s, "%s holds %llu UIDs, more than the %u messages "
                           "a sweep handles in one mailbox", what,
                        (unsigned long long)n, bound);
        return false;
    }
    if (n > bound) {
        sweep_violation(s, "%s holds %llu UIDs, more than the %u message%s "
                           "the mailbox has", what, (unsigned long long)n,
                        bound, bound == 1 ? "" : "s");
        return false;
    }
    if (uidnext != 0 && max >= uidnext) {
        sweep_violation(s, "%s names UID %u, at or above the mailbox's "
                           "UIDNEXT %u with no new message announced",
                        what, max, uidnext);
        return false;
    }
    return true;
}

/* --- lifetime ------------------------------------------------------------ */

static void
sweep_free(struct sweep *s)
{
    sweep_rules_free(s->rules, s->n_rules);
    sweep_store_free(&s->store);
    for (size_t i = 0; i < MAX_STREAMS; i++)
        digest_free(s->streams[i]);
    for (size_t i = s->searchq_next; i < s->n_searchq; i++)
        imap_build_free(s->searchq[i].b);
    free(s->searchq);
    if (s->batch != NULL)
        sweep_batch_free(s->batch);
    free(s->stats);
    free(s->trash);
    sweep_trash_free(s->trash_lookup);
    free(s->msg);
    free(s->account);
    free(s->mailbox);
    config_unref(s->config);
    free(s);
}

/* Called whenever a command completes: move on once nothing is in flight. */
void
sweep_cmd_finished(struct sweep *s)
{
    s->outstanding--;
    if (s->outstanding > 0)
        return;
    if (s->detached) {
        sweep_free(s);
        return;
    }
    advance(s);
}

int
sweep_submit(struct sweep *s, struct imap_build *b, imap_done_cb *done,
             imap_untagged_cb *untagged,
             const struct imap_parser_stream_ops *st, void *arg)
{
    struct imap_cmd_opts o = {
        .done = done, .untagged = untagged, .stream = st, .arg = arg,
    };
    int ret = imap_conn_submit(s->p.conn, b, &o);

    if (ret < 0) {
        sweep_set_error(s, ret, "cannot send command: %s", errors_str(ret));
        return ret;
    }
    s->outstanding++;
    return 0;
}

/* A reply that is not OK: record why. DISCONNECTED/CANCELLED end the sweep;
 * NO/BAD are reported by the caller. */
bool
sweep_reply_ok(struct sweep *s, const struct imap_reply *r, const char *what)
{
    if (r->status == IMAP_OK)
        return true;
    if (r->status == IMAP_DISCONNECTED || r->status == IMAP_CANCELLED)
        sweep_set_error(s, r->err ? r->err : ERR_CLOSED, "%s", r->text);
    else
        sweep_set_error(s, r->status == IMAP_NO ? ERR_CMD_NO : ERR_CMD_BAD,
                        "%s failed: %s %s", what,
                        imap_status_name(r->status), r->text ? r->text : "");
    return false;
}

/* The mailbox must still be the one (and the UIDVALIDITY) we searched. */
bool
sweep_mailbox_unchanged(struct sweep *s)
{
    const struct imap_mailbox_info *mb = imap_conn_mailbox(s->p.conn);

    if (!mb->selected || mb->uidvalidity != s->p.uidvalidity ||
        mb->uidvalidity_changes != s->uidvalidity_changes) {
        sweep_set_error(s, ERR_UIDVALIDITY,
                        "UIDVALIDITY changed from %u to %u%s during the "
                        "sweep: nothing acted on, the mailbox will be swept "
                        "again", s->p.uidvalidity, mb->uidvalidity,
                        mb->uidvalidity == s->p.uidvalidity ? " and back"
                                                            : "");
        return false;
    }
    return true;
}

/* --- phase 1: the top of the range --------------------------------------- */

static bool
fetch_uid_untagged(struct imap_conn *c, const struct imap_response *r,
                   void *arg)
{
    struct sweep *s = arg;
    const struct imap_arg *a;
    uint32_t uid;

    (void)c;
    if (r->name == NULL || strcmp(r->name, "FETCH") != 0 || r->args == NULL ||
        r->args->type != IMAP_ARG_LIST)
        return false;
    for (a = r->args->list; a != NULL && a->next != NULL; a = a->next->next) {
        if (imap_arg_is_atom(a, "UID") && imap_arg_get_u32(a->next, &uid)) {
            if (s->err == 0 &&
                sweep_uids_plausible(s, 1, uid, "UID FETCH * (UID)") &&
                uid > s->uid_top)
                s->uid_top = uid;
            return true;
        }
    }
    return false;
}

static void
top_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct sweep *s = arg;

    (void)c;
    /* a NO for "*" on a mailbox emptied meanwhile just means empty */
    if (r->status != IMAP_NO)
        sweep_reply_ok(s, r, "UID FETCH *");
    sweep_cmd_finished(s);
}

static void
noop_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct sweep *s = arg;

    (void)c;
    sweep_reply_ok(s, r, "NOOP");
    sweep_cmd_finished(s);
}

static void
start_top(struct sweep *s)
{
    struct imap_build *b = imap_conn_build(s->p.conn);

    if (imap_conn_mailbox(s->p.conn)->exists == 0) {
        /* nothing to sweep; NOOP keeps callbacks out of sweep_start */
        imap_build_atom(b, "NOOP");
        sweep_submit(s, b, noop_done, NULL, NULL, s);
    } else {
        imap_build_atom(b, "UID");
        imap_build_atom(b, "FETCH");
        imap_build_atom(b, "*");
        imap_build_list_open(b);
        imap_build_atom(b, "UID");
        imap_build_list_close(b);
        if (sweep_submit(s, b, top_done, fetch_uid_untagged, NULL, s) < 0)
            return;
        /* The searches go right behind it over lo:*, and are clipped to
         * the top once both have answered: a round trip saved on every
         * sweep. */
        s->phase = PH_SEARCH;
        start_searches(s);
    }
    /* Where trash goes, behind them: said at start-up even when nothing
     * matches (and before any action, which waits for every answer). */
    if (!sweep_stopped(s) && sweep_trash_wanted(s))
        sweep_trash_lookup(s);
}

/* --- phase 2: searches --------------------------------------------------- */

struct search_req {
    struct sweep *s;
    struct uidset *dest;
};

/* SEARCH numbers, in whatever order the server lists them: counted
 * first (no more than the mailbox holds), then collected, sorted and built
 * in one pass (adding them one by one out of order costs a memmove each:
 * 150,000 descending UIDs stalled the loop for 1.6 s). */
static void
add_search_numbers(struct search_req *req, const struct imap_arg *args)
{
    struct sweep *s = req->s;
    uint32_t *uids, max = 0, uid;
    size_t n = 0, k = 0;
    struct uidset part;

    for (const struct imap_arg *a = args; a != NULL; a = a->next) {
        if (imap_arg_get_u32(a, &uid) && uid != 0)
            n++;
    }
    if (n == 0 || !sweep_uids_plausible(s, uidset_count(req->dest) + n, 0,
                                        "a UID SEARCH result"))
        return;
    uids = xmalloc(n * sizeof(*uids));
    for (const struct imap_arg *a = args; a != NULL; a = a->next) {
        if (imap_arg_get_u32(a, &uid) && uid != 0) {
            uids[k++] = uid;
            if (uid > max)
                max = uid;
        }
    }
    uidset_init(&part);
    uidset_from_array(&part, uids, k);
    free(uids);
    uidset_union(req->dest, &part);
    uidset_free(&part);
    sweep_uids_plausible(s, uidset_count(req->dest), max,
                         "a UID SEARCH result");
}

static bool
search_untagged(struct imap_conn *c, const struct imap_response *r,
                void *arg)
{
    struct search_req *req = arg;

    (void)c;
    if (r->name == NULL)
        return false;
    if (strcmp(r->name, "SEARCH") == 0) {
        if (req->s->err != ERR_PROTOCOL)
            add_search_numbers(req, r->args);
        return true;
    }
    if (strcmp(r->name, "ESEARCH") == 0) {
        const struct imap_arg *a = r->args;

        if (a != NULL && a->type == IMAP_ARG_LIST)
            a = a->next; /* (TAG "x") */
        if (imap_arg_is_atom(a, "UID"))
            a = a->next;
        for (; a != NULL && a->next != NULL && req->s->err != ERR_PROTOCOL;
             a = a->next->next) {
            const char *set;
            size_t len;
            struct uidset part;

            if (!imap_arg_is_atom(a, "ALL"))
                continue;
            if (!imap_arg_get_astring(a->next, &set, &len))
                continue;
            uidset_init(&part);
            if (uidset_parse(&part, set, len) == 0) {
                /* ranges: counted without expanding them */
                uidset_union(req->dest, &part);
                sweep_uids_plausible(req->s, uidset_count(req->dest),
                                     uidset_max(req->dest),
                                     "a UID SEARCH result");
            } else {
                sweep_violation(req->s, "unreadable ESEARCH result: %.*s",
                                len > 200 ? 200 : (int)len, set);
            }
            uidset_free(&part);
        }
        return true;
    }
    return false;
}

static void
search_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct search_req *req = arg;
    struct sweep *s = req->s;

    (void)c;
    if (!sweep_reply_ok(s, r, "UID SEARCH") || s->err == ERR_PROTOCOL)
        uidset_clear(req->dest); /* never act on a partial answer */
    free(req);
    s->searches_inflight--;
    if (!s->detached)
        sweep_pump_searches(s);
    sweep_cmd_finished(s);
}

void
sweep_enqueue_search(struct sweep *s, struct imap_build *b,
                     struct uidset *dest)
{
    ARRAY_GROW(s->searchq, s->cap_searchq, s->n_searchq + 1);
    s->searchq[s->n_searchq].b = b;
    s->searchq[s->n_searchq].dest = dest;
    s->n_searchq++;
}

void
sweep_pump_searches(struct sweep *s)
{
    while (s->searchq_next < s->n_searchq &&
           (s->esearch || s->searches_inflight == 0)) {
        struct queued_search *q = &s->searchq[s->searchq_next++];
        struct search_req *req;

        if (sweep_stopped(s)) {
            imap_build_free(q->b);
            continue;
        }
        req = xmalloc(sizeof(*req));
        req->s = s;
        req->dest = q->dest;
        if (sweep_submit(s, q->b, search_done, search_untagged, NULL,
                         req) < 0) {
            free(req);
            continue;
        }
        s->searches_inflight++;
    }
}

static void
search_rule(struct sweep *s, struct sweep_rule *sr)
{
    struct imap_build *b = imap_conn_build(s->p.conn);
    uint32_t lo = sr->global || sr->claim_all ? 1 : s->uid_lo;

    imap_build_atom(b, "UID");
    imap_build_atom(b, "SEARCH");
    rule_plan_build_search_range(sr->plan, b, lo,
                                 sr->global || sr->claim_all ? 0
                                                             : s->p.uid_hi,
                                 s->esearch);
    sweep_enqueue_search(s, b, &sr->found);
}

static void
start_searches(struct sweep *s)
{
    for (size_t i = 0; i < s->n_rules; i++)
        search_rule(s, &s->rules[i]);
    sweep_pump_searches(s);
}

/* --- the phase machine --------------------------------------------------- */

static void
final_expunge_done(struct imap_conn *c, const struct imap_reply *r,
                   void *arg)
{
    struct sweep *s = arg;

    (void)c;
    sweep_reply_ok(s, r, "EXPUNGE");
    sweep_cmd_finished(s);
}

static void
finish(struct sweep *s)
{
    s->phase = PH_DONE;
    s->stats = xcalloc(s->n_rules ? s->n_rules : 1, sizeof(*s->stats));
    for (size_t i = 0; i < s->n_rules; i++) {
        s->stats[i] = s->rules[i].stat;
        s->stats[i].claimed = &s->rules[i].claimed;
        s->stats[i].acting = &s->rules[i].final;
    }
    s->result.err = s->cancelled && s->err == 0 ? ERR_CANCELLED : s->err;
    s->result.msg = s->err ? s->msg : s->cancelled ? "cancelled" : NULL;
    s->result.full = s->full;
    s->result.uid_top = s->uid_top;
    s->result.stats = s->stats;
    s->result.n_stats = s->n_rules;
    s->result.duration_us = (uv_hrtime() - s->started_ns) / 1000;
    s->result.duration_ms = s->result.duration_us / 1000;
    s->cb(s, &s->result, s->cb_arg);
    sweep_free(s);
}

/* Run the next phase; called when no command is in flight. */
static void
advance(struct sweep *s)
{
    for (;;) {
        if (s->outstanding > 0)
            return;
        if (sweep_stopped(s) && s->phase != PH_DONE) {
            finish(s);
            return;
        }
        switch (s->phase) {
        case PH_TOP:
            /* the mailbox was empty: only a NOOP was sent */
            s->phase = PH_FINAL;
            continue;
        case PH_SEARCH:
            if (s->uid_top < s->uid_lo) {
                /* emptied meanwhile, or nothing new since the last sweep */
                s->phase = PH_FINAL;
                continue;
            }
            /* lo:* also finds mail that arrived after the FETCH */
            sweep_eval_clip_found(s->rules, s->n_rules, s->uid_lo,
                                  s->uid_top);
            s->uid_end = s->p.uid_hi != 0 && s->p.uid_hi < s->uid_top
                             ? s->p.uid_hi
                             : s->uid_top;
            for (size_t i = 0; i < s->n_rules; i++) {
                if (!s->rules[i].global && !s->rules[i].claim_all)
                    uidset_clip(&s->rules[i].found, s->uid_lo, s->uid_end);
            }
            s->phase = PH_PREP;
            sweep_fetch_prep(s);
            continue;
        case PH_PREP:
            sweep_eval_rules(s->rules, s->n_rules, &s->store, s->uid_lo,
                             s->uid_end);
            if (s->p.evaluate_only) {
                s->phase = PH_FINAL;
                continue;
            }
            s->phase = PH_AUDIT;
            sweep_fetch_audit(s);
            continue;
        case PH_AUDIT:
            s->phase = PH_ACT;
            s->act_index = 0;
            sweep_act_next_rule(s);
            continue;
        case PH_ACT:
            if (s->act_index < s->n_rules) {
                sweep_act_next_rule(s);
                continue;
            }
            s->phase = PH_FINAL;
            if (s->deleted_flagged &&
                s->p.account->expunge == CONFIG_EXPUNGE_MAILBOX &&
                sweep_mailbox_unchanged(s)) {
                struct imap_build *b = imap_conn_build(s->p.conn);

                s->deleted_flagged = false;
                imap_build_atom(b, "EXPUNGE");
                sweep_submit(s, b, final_expunge_done, NULL, NULL, s);
            }
            continue;
        case PH_FINAL:
        case PH_DONE:
            finish(s);
            return;
        }
    }
}

struct sweep *
sweep_start(const struct sweep_params *p, sweep_done_cb *cb, void *arg)
{
    struct sweep *s = xcalloc(1, sizeof(*s));
    struct rule_caps caps;
    time_t now = time(NULL);

    s->p = *p;
    s->uidvalidity_changes = imap_conn_mailbox(p->conn)->uidvalidity_changes;
    s->config = config_ref(p->config);
    s->account = xstrdup(p->account->name);
    s->mailbox = xstrdup(p->mailbox);
    s->p.mailbox = s->mailbox;
    s->log.account = s->account;
    s->log.mailbox = s->mailbox;
    if (s->p.max_set_len == 0)
        s->p.max_set_len = DEFAULT_SET_LEN;
    s->cb = cb;
    s->cb_arg = arg;
    s->started_ns = uv_hrtime();
    s->uid_lo = p->uid_lo ? p->uid_lo : 1;
    s->full = s->uid_lo == 1;
    s->exists_max = imap_conn_mailbox(p->conn)->exists;
    s->esearch = imap_conn_has_cap(p->conn, "ESEARCH");
    s->uidplus = imap_conn_has_cap(p->conn, "UIDPLUS");
    s->move = imap_conn_has_cap(p->conn, "MOVE");
    s->gmail = imap_conn_has_cap(p->conn, "X-GM-EXT-1");
    caps.within = imap_conn_has_cap(p->conn, "WITHIN");
    s->n_rules = p->n_rules;
    s->rules = sweep_rules_new(p->rules, p->n_rules, &caps, now,
                               p->force_dry_run, p->default_dry_run);
    s->phase = PH_TOP;
    start_top(s);
    if (s->outstanding == 0) {
        /* the connection refused the command: it is closing */
        sweep_free(s);
        return NULL;
    }
    return s;
}

void
sweep_cancel(struct sweep *s)
{
    s->cancelled = true;
}

void
sweep_detach(struct sweep *s)
{
    s->detached = true;
    s->cancelled = true;
    /* the memo is the owner's, who is going away: a LIST still in flight
     * must not write into it */
    s->p.memo = NULL;
    if (s->outstanding == 0)
        sweep_free(s);
}
