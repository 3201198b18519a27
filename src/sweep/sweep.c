#include "sweep.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "buf.h"
#include "digest.h"
#include "errors.h"
#include "imap_build.h"
#include "imap_utf7.h"
#include "log.h"
#include "mime.h"
#include "uidset.h"
#include "util.h"

#define DEFAULT_SET_LEN 30000
#define MAX_STREAMS 8

static const char *const audit_fields[] = {"From", "Subject", "Message-ID"};

enum phase {
    PH_TOP,
    PH_SEARCH,
    PH_PREP,
    PH_AUDIT,
    PH_ACT,
    PH_FINAL,
    PH_DONE,
};

/* What was fetched for one message. */
struct sweep_msg {
    uint32_t uid;
    bool has_headers, has_md5, has_sha256, has_date;
    struct mime_fields headers;
    unsigned char md5[16];
    unsigned char sha256[32];
    int64_t internaldate;
};

/* The records of one sweep, sorted by UID. */
struct sweep_store {
    struct sweep_msg *msgs;
    size_t n, cap;
};

struct sweep_rule {
    const struct rule *rule;
    struct rule_plan *plan;
    bool global;            /* needs every match in the mailbox */
    bool claim_all;         /* precedes a global rule: searched from UID 1
                             * so that rule order holds over the whole
                             * mailbox, but acts only on the sweep's range */
    bool dry;
    struct uidset found;    /* the server's SEARCH result */
    struct uidset *aux;     /* auxiliary SEARCH results */
    struct uidset lacking;  /* flag rules: found messages lacking a flag */
    struct uidset final;    /* what the rule acts on */
    struct sweep_stat stat;
};

/* One batched action step over a set, chunked into commands. */
struct batch;
typedef void batch_next_fn(struct sweep *s, struct batch *b);

struct batch {
    struct sweep_rule *sr;
    const char *verb;       /* for messages */
    struct uidset todo;     /* what the step covers */
    struct uidset ok;       /* chunks the server accepted */
    struct uidset retry;    /* chunks refused with TRYCREATE */
    unsigned outstanding;
    bool failed;
    bool created;           /* CREATE already tried once */
    batch_next_fn *next;
};

struct sweep {
    struct sweep_params p;
    struct config *config;
    char *account, *mailbox;
    struct log_ctx log;     /* account, mailbox */
    sweep_done_cb *cb;
    void *cb_arg;
    bool cancelled, detached;
    bool reverting;         /* taking back \Deleted after a cancel */
    unsigned outstanding;   /* commands submitted and not completed */
    enum phase phase;
    uint64_t started_ms;
    bool full;
    uint32_t uid_lo, uid_top;
    bool esearch, uidplus, move, gmail;
    struct sweep_rule *rules;
    size_t n_rules;
    /* searches waiting to be sent: all at once with ESEARCH, else one at
     * a time (RFC 3501 5.5: SEARCH results cannot be told apart) */
    struct queued_search *searchq;
    size_t n_searchq, cap_searchq, searchq_next;
    unsigned searches_inflight;
    struct sweep_store store;   /* fetched data */
    /* body digests being streamed, by stream id within a response */
    struct digest *streams[MAX_STREAMS];
    unsigned char stream_md5[MAX_STREAMS][16];
    unsigned char stream_sha[MAX_STREAMS][32];
    bool stream_done[MAX_STREAMS];
    bool want_md5, want_sha;
    /* actions */
    size_t act_index;
    struct batch *batch;
    bool deleted_flagged;   /* a \Deleted was set: EXPUNGE for mode mailbox */
    char *trash;
    int err;
    char *msg;
    struct sweep_stat *stats;
    struct sweep_result result;
};

static void batch_free(struct batch *b);

struct queued_search {
    struct imap_build *b;
    struct uidset *dest;
};

static void advance(struct sweep *s);
static void sweep_store_free(struct sweep_store *st);
static void sweep_rules_free(struct sweep_rule *rules, size_t n);
static void act_next_rule(struct sweep *s);
static void pump_searches(struct sweep *s);
static void start_searches(struct sweep *s);

/* --- messages ------------------------------------------------------------ */

/* The rule's name for a line about it (NULL: none). */
static const char *
rname(const struct sweep_rule *sr)
{
    return sr != NULL ? sr->rule->name : NULL;
}

static void
set_error(struct sweep *s, int err, const char *fmt, ...) PRINTF_LIKE(3, 4);

static void
set_error(struct sweep *s, int err, const char *fmt, ...)
{
    va_list ap;

    if (s->err != 0)
        return;
    s->err = err;
    va_start(ap, fmt);
    s->msg = xvasprintf(fmt, ap);
    va_end(ap);
}

/* A note is logged once per mailbox and kept for status. */
static void
note(struct sweep *s, const char *text)
{
    struct sweep_memo *m = s->p.memo;

    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_notes; i++) {
        if (strcmp(m->notes[i], text) == 0)
            return;
    }
    ARRAY_GROW(m->notes, m->cap_notes, m->n_notes + 1);
    m->notes[m->n_notes++] = xstrdup(text);
    log_ctx_msg(&s->log, LL_WARNING, "%s", text);
}

void
sweep_memo_free(struct sweep_memo *m)
{
    free(m->trash);
    for (size_t i = 0; i < m->n_notes; i++)
        free(m->notes[i]);
    free(m->notes);
    memset(m, 0, sizeof(*m));
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
        batch_free(s->batch);
    free(s->stats);
    free(s->trash);
    free(s->msg);
    free(s->account);
    free(s->mailbox);
    config_unref(s->config);
    free(s);
}

static bool
stopped(const struct sweep *s)
{
    return (s->cancelled && !s->reverting) || s->detached || s->err != 0;
}

/* Called whenever a command completes: move on once nothing is in flight. */
static void
cmd_finished(struct sweep *s)
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

static int
submit(struct sweep *s, struct imap_build *b, imap_done_cb *done,
       imap_untagged_cb *untagged, const struct imap_parser_stream_ops *st,
       void *arg)
{
    struct imap_cmd_opts o = {
        .done = done, .untagged = untagged, .stream = st, .arg = arg,
    };
    int ret = imap_conn_submit(s->p.conn, b, &o);

    if (ret < 0) {
        set_error(s, ret, "cannot send command: %s", errors_str(ret));
        return ret;
    }
    s->outstanding++;
    return 0;
}

/* A reply that is not OK: record why. DISCONNECTED/CANCELLED end the sweep;
 * NO/BAD are reported by the caller. */
static bool
reply_ok(struct sweep *s, const struct imap_reply *r, const char *what)
{
    if (r->status == IMAP_OK)
        return true;
    if (r->status == IMAP_DISCONNECTED || r->status == IMAP_CANCELLED)
        set_error(s, r->err ? r->err : ERR_CLOSED, "%s", r->text);
    else
        set_error(s, r->status == IMAP_NO ? ERR_CMD_NO : ERR_CMD_BAD,
                  "%s failed: %s %s", what, imap_status_name(r->status),
                  r->text ? r->text : "");
    return false;
}

/* The mailbox must still be the one (and the UIDVALIDITY) we searched. */
static bool
mailbox_unchanged(struct sweep *s)
{
    const struct imap_mailbox_info *mb = imap_conn_mailbox(s->p.conn);

    if (!mb->selected || mb->uidvalidity != s->p.uidvalidity) {
        set_error(s, ERR_UIDVALIDITY,
                  "UIDVALIDITY changed from %u to %u during the sweep: "
                  "nothing acted on, the mailbox will be swept again",
                  s->p.uidvalidity, mb->uidvalidity);
        return false;
    }
    return true;
}

/* --- phase 1: the top of the range -------------------------------------- */

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
            if (uid > s->uid_top)
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
        reply_ok(s, r, "UID FETCH *");
    cmd_finished(s);
}

static void
noop_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct sweep *s = arg;

    (void)c;
    reply_ok(s, r, "NOOP");
    cmd_finished(s);
}

static void
start_top(struct sweep *s)
{
    struct imap_build *b = imap_conn_build(s->p.conn);

    if (imap_conn_mailbox(s->p.conn)->exists == 0) {
        /* nothing to sweep; NOOP keeps callbacks out of sweep_start */
        imap_build_atom(b, "NOOP");
        submit(s, b, noop_done, NULL, NULL, s);
        return;
    }
    imap_build_atom(b, "UID");
    imap_build_atom(b, "FETCH");
    imap_build_atom(b, "*");
    imap_build_list_open(b);
    imap_build_atom(b, "UID");
    imap_build_list_close(b);
    if (submit(s, b, top_done, fetch_uid_untagged, NULL, s) < 0)
        return;
    /* The searches go right behind it over lo:*, and are clipped to the
     * top once both have answered: a round trip saved on every sweep. */
    s->phase = PH_SEARCH;
    start_searches(s);
}

/* --- phase 2: searches --------------------------------------------------- */

struct search_req {
    struct sweep *s;
    struct uidset *dest;
};

static void
add_search_numbers(struct uidset *dest, const struct imap_arg *a)
{
    for (; a != NULL; a = a->next) {
        uint32_t uid;

        if (imap_arg_get_u32(a, &uid))
            uidset_add(dest, uid);
    }
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
        add_search_numbers(req->dest, r->args);
        return true;
    }
    if (strcmp(r->name, "ESEARCH") == 0) {
        const struct imap_arg *a = r->args;

        if (a != NULL && a->type == IMAP_ARG_LIST)
            a = a->next; /* (TAG "x") */
        if (imap_arg_is_atom(a, "UID"))
            a = a->next;
        for (; a != NULL && a->next != NULL; a = a->next->next) {
            const char *set;
            size_t len;
            struct uidset part;

            if (!imap_arg_is_atom(a, "ALL"))
                continue;
            if (!imap_arg_get_astring(a->next, &set, &len))
                continue;
            uidset_init(&part);
            if (uidset_parse(&part, set, len) == 0) {
                uidset_union(req->dest, &part);
            } else {
                set_error(req->s, ERR_PROTOCOL,
                          "unreadable ESEARCH result: %.*s", (int)len, set);
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
    if (!reply_ok(s, r, "UID SEARCH"))
        uidset_clear(req->dest); /* never act on a partial answer */
    free(req);
    s->searches_inflight--;
    if (!s->detached)
        pump_searches(s);
    cmd_finished(s);
}

static void
enqueue_search(struct sweep *s, struct imap_build *b, struct uidset *dest)
{
    ARRAY_GROW(s->searchq, s->cap_searchq, s->n_searchq + 1);
    s->searchq[s->n_searchq].b = b;
    s->searchq[s->n_searchq].dest = dest;
    s->n_searchq++;
}

static void
pump_searches(struct sweep *s)
{
    while (s->searchq_next < s->n_searchq &&
           (s->esearch || s->searches_inflight == 0)) {
        struct queued_search *q = &s->searchq[s->searchq_next++];
        struct search_req *req;

        if (stopped(s)) {
            imap_build_free(q->b);
            continue;
        }
        req = xmalloc(sizeof(*req));
        req->s = s;
        req->dest = q->dest;
        if (submit(s, q->b, search_done, search_untagged, NULL, req) < 0) {
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
    rule_plan_build_search(sr->plan, b, lo, s->esearch);
    enqueue_search(s, b, &sr->found);
}

static void
start_searches(struct sweep *s)
{
    for (size_t i = 0; i < s->n_rules; i++)
        search_rule(s, &s->rules[i]);
    pump_searches(s);
}

/* --- phase 3: client-side data ------------------------------------------- */

static int
cmp_uid(const void *a, const void *b)
{
    uint32_t x = ((const struct sweep_msg *)a)->uid;
    uint32_t y = ((const struct sweep_msg *)b)->uid;

    return x < y ? -1 : x > y;
}

static void
sweep_store_free(struct sweep_store *st)
{
    for (size_t i = 0; i < st->n; i++)
        mime_fields_free(&st->msgs[i].headers);
    free(st->msgs);
    memset(st, 0, sizeof(*st));
}

static struct sweep_msg *
sweep_store_find(const struct sweep_store *st, uint32_t uid)
{
    struct sweep_msg key = {.uid = uid};

    if (st->n == 0)
        return NULL;
    return bsearch(&key, st->msgs, st->n, sizeof(*st->msgs), cmp_uid);
}

/* Make sure every UID of set has a record (kept sorted). */
static void
sweep_store_add(struct sweep_store *st, const struct uidset *set)
{
    size_t before = st->n;

    for (size_t i = 0; i < set->n; i++) {
        for (uint64_t u = set->r[i].lo; u <= set->r[i].hi; u++) {
            if (before > 0 && sweep_store_find(st, (uint32_t)u) != NULL)
                continue;
            ARRAY_GROW(st->msgs, st->cap, st->n + 1);
            memset(&st->msgs[st->n], 0, sizeof(*st->msgs));
            st->msgs[st->n++].uid = (uint32_t)u;
        }
    }
    if (st->n != before)
        qsort(st->msgs, st->n, sizeof(*st->msgs), cmp_uid);
}

static bool
parse_internaldate(const char *s, size_t len, int64_t *t_r)
{
    static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char buf[40];
    char m[4];
    int d, y, hh, mm, ss, zone;
    struct tm tm;
    const char *p;

    if (len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (sscanf(buf, "%d-%3s-%d %d:%d:%d %d", &d, m, &y, &hh, &mm, &ss,
               &zone) != 7)
        return false;
    p = strstr(mon, m);
    if (p == NULL || (p - mon) % 3 != 0 || d < 1 || d > 31 || y < 1900 ||
        hh > 23 || mm > 59 || ss > 60)
        return false;
    memset(&tm, 0, sizeof(tm));
    tm.tm_mday = d;
    tm.tm_mon = (int)((p - mon) / 3);
    tm.tm_year = y - 1900;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    /* zone is +HHMM: subtract it to get UTC */
    *t_r = (int64_t)timegm(&tm) -
           (zone / 100 * 3600 + (zone % 100) * 60);
    return true;
}

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
        if (a->len >= 19 && util_strncaseeq(a->str, "BODY[HEADER.FIELDS", 18)) {
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
                parse_internaldate(str, len, &m->internaldate))
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
    reply_ok(s, r, "UID FETCH");
    cmd_finished(s);
}

/* UID FETCH over set, chunked; items appended by add_items. */
static void
submit_fetches(struct sweep *s, const struct uidset *set, const char *items,
               bool body)
{
    struct uidset chunk;
    size_t pos = 0;

    uidset_init(&chunk);
    while (!stopped(s) &&
           uidset_next_chunk(set, &pos, s->p.max_set_len, &chunk)) {
        struct imap_build *b = imap_conn_build(s->p.conn);

        imap_build_atom(b, "UID");
        imap_build_atom(b, "FETCH");
        imap_build_uidset(b, &chunk);
        imap_build_atom(b, items);
        submit(s, b, fetch_done, fetch_untagged, body ? &body_stream : NULL,
               s);
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

static void
start_prep(struct sweep *s)
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
            enqueue_search(s, b, &sr->aux[k]);
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
                enqueue_search(s, b, &sr->lacking);
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
    if (!uidset_empty(&hdr_set) && !stopped(s)) {
        char *items = header_items(names, n_names, date);

        sweep_store_add(&s->store, &hdr_set);
        submit_fetches(s, &hdr_set, items, false);
        free(items);
    }
    if (!uidset_empty(&body_set) && !stopped(s)) {
        sweep_store_add(&s->store, &body_set);
        submit_fetches(s, &body_set, "(UID BODY.PEEK[TEXT])", true);
    }
    pump_searches(s);
    free(names);
    uidset_free(&hdr_set);
    uidset_free(&body_set);
}

/* --- phase 4: evaluation -------------------------------------------------- */

static struct sweep_rule *
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
        sr->dry = force_dry || sr->rule->dry_run == 1 ||
                  (sr->rule->dry_run == -1 && default_dry);
        uidset_init(&sr->found);
        uidset_init(&sr->lacking);
        uidset_init(&sr->final);
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

static void
sweep_rules_free(struct sweep_rule *rules, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct sweep_rule *sr = &rules[i];

        uidset_free(&sr->found);
        uidset_free(&sr->lacking);
        uidset_free(&sr->final);
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
 * sweep's. Every rule acts within [lo, top] only; global rules and the
 * rules before them searched from 1. */
static void
sweep_eval_clip_found(struct sweep_rule *rules, size_t n, uint32_t uid_lo,
                      uint32_t uid_top)
{
    for (size_t i = 0; i < n; i++) {
        struct sweep_rule *sr = &rules[i];

        uidset_clip(&sr->found, sr->global || sr->claim_all ? 1 : uid_lo,
                    uid_top);
    }
}

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
    size_t n = 0, cap = 0;
    struct uidset dups;

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
    qsort(keys, n, sizeof(*keys), cmp_dupkey);
    uidset_init(&dups);
    for (size_t i = 1; i < n; i++) {
        if (memcmp(keys[i].key, keys[i - 1].key, 32) == 0)
            uidset_add(&dups, keys[i].uid);
    }
    uidset_copy(set, &dups);
    uidset_free(&dups);
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

static void
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

/* --- phase 5: audit headers ---------------------------------------------- */

static void
start_audit(struct sweep *s)
{
    struct uidset need;

    if (s->p.audit != CONFIG_AUDIT_MESSAGES)
        return;
    uidset_init(&need);
    for (size_t i = 0; i < s->n_rules; i++) {
        struct sweep_rule *sr = &s->rules[i];

        for (size_t r = 0; r < sr->final.n; r++) {
            for (uint64_t u = sr->final.r[r].lo; u <= sr->final.r[r].hi;
                 u++) {
                struct sweep_msg *m;

                m = sweep_store_find(&s->store, (uint32_t)u);

                if (m == NULL || !m->has_headers ||
                    mime_fields_get(&m->headers, "From") == NULL)
                    uidset_add(&need, (uint32_t)u);
            }
        }
    }
    if (!uidset_empty(&need)) {
        char *items = header_items(audit_fields, ARRAY_SIZE(audit_fields),
                                   false);

        sweep_store_add(&s->store, &need);
        submit_fetches(s, &need, items, false);
        free(items);
    }
    uidset_free(&need);
}

/* Header text in a log line: quoted, with quotes, backslashes and control
 * characters escaped so a line cannot be forged by a subject. */
static void
append_quoted(struct buf *b, const char *text)
{
    buf_append_char(b, '"');
    for (const char *p = text ? text : ""; *p; p++) {
        unsigned char c = (unsigned char)*p;

        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            buf_printf(b, "\\x%02x", c);
        else
            buf_append_char(b, (char)c);
    }
    buf_append_char(b, '"');
}

static void
audit_set(struct sweep *s, struct sweep_rule *sr, const char *verb,
          const struct uidset *set, bool would)
{
    if (uidset_empty(set))
        return;
    if (s->p.audit == CONFIG_AUDIT_COUNTS) {
        log_ctx_action(&s->log, LL_INFO, rname(sr), verb, 0,
                       "%s: %s%s %llu message%s", sr->rule->name,
                       would ? "would " : "", verb,
                       (unsigned long long)uidset_count(set),
                       uidset_count(set) == 1 ? "" : "s");
        return;
    }
    for (size_t r = 0; r < set->n; r++) {
        for (uint64_t u = set->r[r].lo; u <= set->r[r].hi; u++) {
            struct sweep_msg *m = sweep_store_find(&s->store, (uint32_t)u);
            const char *id = NULL, *from = NULL, *subj = NULL;
            struct buf q;

            if (m != NULL) {
                id = mime_fields_get(&m->headers, "Message-ID");
                from = mime_fields_get(&m->headers, "From");
                subj = mime_fields_get(&m->headers, "Subject");
            }
            buf_init(&q, BUF_NOCAP);
            buf_append_str(&q, " message-id ");
            append_quoted(&q, id);
            buf_append_str(&q, " from ");
            append_quoted(&q, from);
            buf_append_str(&q, " subject ");
            append_quoted(&q, subj);
            log_ctx_action(&s->log, LL_INFO, rname(sr), verb, (uint32_t)u,
                           "%s: %s%s uid %llu%s", sr->rule->name,
                           would ? "would " : "", verb,
                           (unsigned long long)u, buf_cstr(&q));
            buf_free(&q);
        }
    }
}

/* --- phase 6: actions ----------------------------------------------------- */

static void
batch_free(struct batch *b)
{
    uidset_free(&b->todo);
    uidset_free(&b->ok);
    uidset_free(&b->retry);
    free(b);
}

struct chunk_req {
    struct sweep *s;
    struct batch *b;
    struct uidset chunk;
};

static void batch_send(struct sweep *s, struct batch *b,
                       const struct uidset *set);

static void
batch_chunk_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct chunk_req *req = arg;
    struct sweep *s = req->s;
    struct batch *b = req->b;

    (void)c;
    if (r->status == IMAP_OK) {
        uidset_union(&b->ok, &req->chunk);
    } else if (r->status == IMAP_NO && r->code != NULL &&
               strcmp(r->code, "TRYCREATE") == 0) {
        uidset_union(&b->retry, &req->chunk);
    } else if (r->status == IMAP_NO || r->status == IMAP_BAD) {
        b->failed = true;
        log_ctx_action(&s->log, LL_ERROR, rname(b->sr), b->verb, 0,
                       "%s: %s refused: %s %s", b->sr->rule->name, b->verb,
                       imap_status_name(r->status), r->text ? r->text : "");
    } else {
        reply_ok(s, r, b->verb);
    }
    uidset_free(&req->chunk);
    free(req);
    b->outstanding--;
    if (b->outstanding == 0 && s->batch == b && !s->detached)
        b->next(s, b);
    cmd_finished(s);
}

/* Build one command for a chunk: "UID <verb-specific>". */
static struct imap_build *
build_action(struct sweep *s, struct batch *b, const struct uidset *chunk)
{
    struct imap_build *bd = imap_conn_build(s->p.conn);
    const struct rule *rule = b->sr->rule;

    imap_build_atom(bd, "UID");
    if (strcmp(b->verb, "flag deleted") == 0) {
        imap_build_atom(bd, "STORE");
        imap_build_uidset(bd, chunk);
        imap_build_atom(bd, "+FLAGS.SILENT");
        imap_build_list_open(bd);
        imap_build_atom(bd, "\\Deleted");
        imap_build_list_close(bd);
    } else if (strcmp(b->verb, "unflag deleted") == 0) {
        imap_build_atom(bd, "STORE");
        imap_build_uidset(bd, chunk);
        imap_build_atom(bd, "-FLAGS.SILENT");
        imap_build_list_open(bd);
        imap_build_atom(bd, "\\Deleted");
        imap_build_list_close(bd);
    } else if (strcmp(b->verb, "flag") == 0) {
        imap_build_atom(bd, "STORE");
        imap_build_uidset(bd, chunk);
        imap_build_atom(bd, "+FLAGS.SILENT");
        imap_build_list_open(bd);
        for (size_t i = 0; i < rule->n_flags; i++)
            imap_build_atom(bd, rule->flags[i]);
        imap_build_list_close(bd);
    } else if (strcmp(b->verb, "expunge") == 0) {
        imap_build_atom(bd, "EXPUNGE");
        imap_build_uidset(bd, chunk);
    } else if (strcmp(b->verb, "move") == 0) {
        imap_build_atom(bd, "MOVE");
        imap_build_uidset(bd, chunk);
        imap_build_mailbox(bd, s->trash);
    } else { /* copy */
        imap_build_atom(bd, "COPY");
        imap_build_uidset(bd, chunk);
        imap_build_mailbox(bd, s->trash);
    }
    return bd;
}

static void
batch_send(struct sweep *s, struct batch *b, const struct uidset *set)
{
    struct uidset chunk;
    size_t pos = 0;

    uidset_init(&chunk);
    while (!stopped(s) && mailbox_unchanged(s) &&
           uidset_next_chunk(set, &pos, s->p.max_set_len, &chunk)) {
        struct chunk_req *req = xcalloc(1, sizeof(*req));
        struct imap_build *bd = build_action(s, b, &chunk);

        req->s = s;
        req->b = b;
        uidset_init(&req->chunk);
        uidset_copy(&req->chunk, &chunk);
        b->outstanding++;
        if (submit(s, bd, batch_chunk_done, NULL, NULL, req) < 0) {
            b->outstanding--;
            uidset_free(&req->chunk);
            free(req);
        }
    }
    uidset_free(&chunk);
    if (b->outstanding == 0 && s->batch == b)
        b->next(s, b); /* nothing sent: move on (stopped() is checked) */
}

static struct batch *
batch_new(struct sweep *s, struct sweep_rule *sr, const char *verb,
          const struct uidset *set, batch_next_fn *next)
{
    struct batch *b = xcalloc(1, sizeof(*b));

    b->sr = sr;
    b->verb = verb;
    b->next = next;
    uidset_init(&b->todo);
    uidset_init(&b->ok);
    uidset_init(&b->retry);
    uidset_copy(&b->todo, set);
    if (s->batch != NULL)
        batch_free(s->batch);
    s->batch = b;
    return b;
}

/* Where trash/move (and delete on Gmail) put messages. NULL: none. */
static const char *
target_of(const struct sweep *s, const struct sweep_rule *sr)
{
    if (sr->rule->action == RULE_ACTION_MOVE)
        return sr->rule->target;
    if (s->p.account->trash_mailbox != NULL)
        return s->p.account->trash_mailbox;
    return s->p.memo ? s->p.memo->trash : NULL;
}

static bool
same_mailbox(const char *a, const char *b)
{
    return strcmp(a, b) == 0 ||
           (util_strcaseeq(a, "INBOX") && util_strcaseeq(b, "INBOX"));
}

/* On Gmail EXPUNGE only archives, so delete moves to the Trash; in the
 * Trash itself EXPUNGE deletes for good, so there delete stays delete.
 * Before the Trash is looked up it is taken to be another mailbox. */
static bool
gmail_trashes(const struct sweep *s, const struct sweep_rule *sr)
{
    const char *trash;

    if (sr->rule->action != RULE_ACTION_DELETE || !s->gmail)
        return false;
    trash = target_of(s, sr);
    return trash == NULL || !same_mailbox(trash, s->mailbox);
}

/* What the rule does, as logged. */
static const char *
action_verb(const struct sweep *s, const struct sweep_rule *sr)
{
    if (gmail_trashes(s, sr))
        return "trash";
    return rule_action_name(sr->rule->action);
}

static void
rule_done(struct sweep *s, struct sweep_rule *sr, const struct uidset *acted,
          const char *verb)
{
    sr->stat.acted += uidset_count(acted);
    audit_set(s, sr, verb, acted, false);
}

static void after_expunge(struct sweep *s, struct batch *b);

static void
expunge_step(struct sweep *s, struct sweep_rule *sr, const struct uidset *set)
{
    enum config_expunge mode = s->p.account->expunge;

    if (mode == CONFIG_EXPUNGE_UID && s->uidplus && !uidset_empty(set)) {
        batch_send(s, batch_new(s, sr, "expunge", set, after_expunge), set);
        return;
    }
    if (mode == CONFIG_EXPUNGE_UID && !s->uidplus)
        note(s, "server lacks UIDPLUS: matches stay flagged \\Deleted "
                "(set expunge: mailbox to allow a plain EXPUNGE)");
    if (!uidset_empty(set))
        s->deleted_flagged = true;
    act_next_rule(s);
}

static void
after_expunge(struct sweep *s, struct batch *b)
{
    (void)b;
    act_next_rule(s);
}

static void
after_revert(struct sweep *s, struct batch *b)
{
    if (!uidset_empty(&b->ok))
        log_ctx_action(&s->log, LL_NOTICE, rname(b->sr), NULL, 0,
                       "%s: rules changed before the expunge: \\Deleted "
                       "taken back from %llu message%s", b->sr->rule->name,
                       (unsigned long long)uidset_count(&b->ok),
                       uidset_count(&b->ok) == 1 ? "" : "s");
    s->reverting = false;
    act_next_rule(s);
}

static void
after_store_deleted(struct sweep *s, struct batch *b)
{
    struct sweep_rule *sr = b->sr;
    struct uidset ok;

    if (stopped(s)) {
        /* Cancelled (the rules changed) between STORE and EXPUNGE: do not
         * leave messages flagged \Deleted for rules no longer in force. */
        if (s->cancelled && !s->detached && s->err == 0 &&
            !uidset_empty(&b->ok) && mailbox_unchanged(s)) {
            uidset_init(&ok);
            uidset_copy(&ok, &b->ok);
            s->reverting = true;
            batch_send(s, batch_new(s, sr, "unflag deleted", &ok,
                                    after_revert), &ok);
            uidset_free(&ok);
            return;
        }
        act_next_rule(s);
        return;
    }
    uidset_init(&ok);
    uidset_copy(&ok, &b->ok);
    rule_done(s, sr, &ok, action_verb(s, sr));
    if (b->failed)
        sr->stat.failed = true;
    expunge_step(s, sr, &ok);
    uidset_free(&ok);
}

static void
after_copy(struct sweep *s, struct batch *b)
{
    struct sweep_rule *sr = b->sr;
    struct uidset ok;

    if (stopped(s)) {
        act_next_rule(s);
        return;
    }
    if (b->failed)
        sr->stat.failed = true;
    uidset_init(&ok);
    uidset_copy(&ok, &b->ok);
    /* only what was copied may be flagged \Deleted */
    batch_send(s, batch_new(s, sr, "flag deleted", &ok, after_store_deleted),
               &ok);
    uidset_free(&ok);
}

static void after_move(struct sweep *s, struct batch *b);

static void
create_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct sweep *s = arg;
    struct batch *b = s->batch;

    (void)c;
    if (r->status == IMAP_OK) {
        log_ctx_action(&s->log, LL_NOTICE, rname(b->sr), NULL, 0,
                       "created mailbox \"%s\"", s->trash);
    } else if (r->status != IMAP_NO) {
        reply_ok(s, r, "CREATE");
    }
    /* retry the refused chunks once (NO: maybe created meanwhile) */
    if (!stopped(s) && !s->detached) {
        struct uidset retry;

        uidset_init(&retry);
        uidset_copy(&retry, &b->retry);
        uidset_clear(&b->retry);
        batch_send(s, b, &retry);
        uidset_free(&retry);
    }
    cmd_finished(s);
}

static void
after_move(struct sweep *s, struct batch *b)
{
    struct sweep_rule *sr = b->sr;

    if (!uidset_empty(&b->retry) && !b->created && !stopped(s)) {
        struct imap_build *bd = imap_conn_build(s->p.conn);

        b->created = true;
        imap_build_atom(bd, "CREATE");
        imap_build_mailbox(bd, s->trash);
        submit(s, bd, create_done, NULL, NULL, s);
        return;
    }
    if (!uidset_empty(&b->retry)) {
        b->failed = true;
        log_ctx_action(&s->log, LL_ERROR, rname(sr), NULL, 0,
                       "%s: target mailbox \"%s\" does not exist and could "
                       "not be created", sr->rule->name, s->trash);
    }
    if (b->failed)
        sr->stat.failed = true;
    if (strcmp(b->verb, "copy") == 0) {
        after_copy(s, b);
        return;
    }
    rule_done(s, sr, &b->ok, action_verb(s, sr));
    act_next_rule(s);
}

static void
after_flag(struct sweep *s, struct batch *b)
{
    if (b->failed)
        b->sr->stat.failed = true;
    rule_done(s, b->sr, &b->ok, "flag");
    act_next_rule(s);
}

static void
act_rule(struct sweep *s, struct sweep_rule *sr)
{
    const struct uidset *set = &sr->final;
    enum rule_action action = sr->rule->action;
    bool moves = action == RULE_ACTION_TRASH || action == RULE_ACTION_MOVE ||
                 gmail_trashes(s, sr);

    if (sr->dry) {
        sr->stat.acted += uidset_count(set);
        audit_set(s, sr, action_verb(s, sr), set, true);
        act_next_rule(s);
        return;
    }
    if (moves) {
        const char *target = target_of(s, sr);

        if (target == NULL) {
            sr->stat.failed = true;
            note(s, "no \\Trash mailbox found (SPECIAL-USE): set "
                    "trash_mailbox; matching messages are left alone");
            act_next_rule(s);
            return;
        }
        if (same_mailbox(target, s->mailbox)) {
            /* moving a message onto itself is no action: skip, once */
            char *t = xasprintf("rule %s moves to the mailbox it sweeps "
                                "(%s): nothing done", sr->rule->name,
                                target);

            note(s, t);
            free(t);
            act_next_rule(s);
            return;
        }
        free(s->trash);
        s->trash = xstrdup(target);
        batch_send(s, batch_new(s, sr, s->move ? "move" : "copy", set,
                                after_move), set);
        return;
    }
    if (action == RULE_ACTION_FLAG) {
        batch_send(s, batch_new(s, sr, "flag", set, after_flag), set);
        return;
    }
    batch_send(s, batch_new(s, sr, "flag deleted", set, after_store_deleted),
               set);
}

static void
act_next_rule(struct sweep *s)
{
    while (!stopped(s) && s->act_index < s->n_rules) {
        struct sweep_rule *sr = &s->rules[s->act_index++];

        if (uidset_empty(&sr->final))
            continue;
        if (!mailbox_unchanged(s))
            return;
        if (imap_conn_mailbox(s->p.conn)->readonly && !sr->dry) {
            set_error(s, ERR_BAD_STATE, "mailbox is read-only: nothing acted on");
            return;
        }
        act_rule(s, sr);
        return;
    }
}

static bool
needs_trash_lookup(struct sweep *s)
{
    if (s->p.account->trash_mailbox != NULL || s->p.memo == NULL ||
        s->p.memo->trash_looked_up)
        return false;
    for (size_t i = 0; i < s->n_rules; i++) {
        const struct sweep_rule *sr = &s->rules[i];

        /* dry runs too: a read-only LIST tells them what would happen */
        if (uidset_empty(&sr->final))
            continue;
        if (sr->rule->action == RULE_ACTION_TRASH || gmail_trashes(s, sr))
            return true;
    }
    return false;
}

static bool
list_untagged(struct imap_conn *c, const struct imap_response *r, void *arg)
{
    struct sweep *s = arg;
    const struct imap_arg *flags, *a;
    const char *name;
    size_t len;
    bool trash = false;

    if (r->name == NULL || strcmp(r->name, "LIST") != 0)
        return false;
    flags = r->args;
    if (flags == NULL || flags->type != IMAP_ARG_LIST)
        return true;
    for (a = flags->list; a != NULL; a = a->next) {
        if (imap_arg_is_atom(a, "\\TRASH"))
            trash = true;
    }
    if (!trash || flags->next == NULL ||
        !imap_arg_get_astring(flags->next->next, &name, &len))
        return true;
    if (s->p.memo->trash == NULL) {
        struct buf dec;

        buf_init(&dec, BUF_NOCAP);
        if (imap_conn_utf8(c))
            buf_append(&dec, name, len);
        else if (imap_utf7_decode(name, len, &dec) < 0)
            buf_append(&dec, name, len);
        s->p.memo->trash = buf_steal(&dec);
    }
    return true;
}

static void
list_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct sweep *s = arg;

    (void)c;
    if (reply_ok(s, r, "LIST") && s->p.memo != NULL)
        s->p.memo->trash_looked_up = true;
    cmd_finished(s);
}

static void
start_trash_lookup(struct sweep *s)
{
    struct imap_build *b = imap_conn_build(s->p.conn);

    imap_build_atom(b, "LIST");
    if (imap_conn_has_cap(s->p.conn, "LIST-EXTENDED") &&
        imap_conn_has_cap(s->p.conn, "SPECIAL-USE")) {
        imap_build_list_open(b);
        imap_build_atom(b, "SPECIAL-USE");
        imap_build_list_close(b);
    }
    imap_build_string(b, "", 0);
    imap_build_atom(b, "*");
    submit(s, b, list_done, list_untagged, NULL, s);
}

/* --- the phase machine ----------------------------------------------------- */

static void
final_expunge_done(struct imap_conn *c, const struct imap_reply *r,
                   void *arg)
{
    struct sweep *s = arg;

    (void)c;
    reply_ok(s, r, "EXPUNGE");
    cmd_finished(s);
}

static void
finish(struct sweep *s)
{
    s->phase = PH_DONE;
    s->stats = xcalloc(s->n_rules ? s->n_rules : 1, sizeof(*s->stats));
    for (size_t i = 0; i < s->n_rules; i++)
        s->stats[i] = s->rules[i].stat;
    s->result.err = s->cancelled && s->err == 0 ? ERR_CANCELLED : s->err;
    s->result.msg = s->err ? s->msg : s->cancelled ? "cancelled" : NULL;
    s->result.full = s->full;
    s->result.uid_top = s->uid_top;
    s->result.stats = s->stats;
    s->result.n_stats = s->n_rules;
    s->result.duration_ms = (uint64_t)(uv_hrtime() / 1000000) - s->started_ms;
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
        if (stopped(s) && s->phase != PH_DONE) {
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
            sweep_eval_clip_found(s->rules, s->n_rules, s->uid_lo,
                                  s->uid_top);
            s->phase = PH_PREP;
            start_prep(s);
            continue;
        case PH_PREP:
            sweep_eval_rules(s->rules, s->n_rules, &s->store, s->uid_lo,
                             s->uid_top);
            s->phase = PH_AUDIT;
            start_audit(s);
            if (needs_trash_lookup(s))
                start_trash_lookup(s);
            continue;
        case PH_AUDIT:
            s->phase = PH_ACT;
            s->act_index = 0;
            act_next_rule(s);
            continue;
        case PH_ACT:
            if (s->act_index < s->n_rules) {
                act_next_rule(s);
                continue;
            }
            s->phase = PH_FINAL;
            if (s->deleted_flagged &&
                s->p.account->expunge == CONFIG_EXPUNGE_MAILBOX &&
                mailbox_unchanged(s)) {
                struct imap_build *b = imap_conn_build(s->p.conn);

                s->deleted_flagged = false;
                imap_build_atom(b, "EXPUNGE");
                submit(s, b, final_expunge_done, NULL, NULL, s);
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
    s->started_ms = uv_hrtime() / 1000000;
    s->uid_lo = p->uid_lo ? p->uid_lo : 1;
    s->full = s->uid_lo == 1;
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
    if (s->outstanding == 0)
        sweep_free(s);
}
