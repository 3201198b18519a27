/* SPDX-License-Identifier: MIT */
/* explain: one message, read-only, over a session of its own: EXAMINE,
 * one FETCH (BODY.PEEK), the sweep's own evaluation of the rules without
 * acting, then one SEARCH per server part (and per auxiliary search) of
 * each rule up to the deciding one, restricted to the UID. The report's
 * text and freeing are in explain_text.c. */
#include "explain.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "errors.h"
#include "imap_build.h"
#include "imap_conn.h"
#include "log.h"
#include "mime.h"
#include "rule.h"
#include "secret.h"
#include "sweep.h"
#include "tls.h"
#include "uidset.h"
#include "util.h"

struct xrule {
    const struct rule *rule;
    struct rule_plan *plan;
    size_t n_aux;
    struct uidset *aux;        /* auxiliary searches, on the one UID */
    size_t n_parts;
    struct uidset *parts;      /* per server part: its SEARCH */
    bool claimed, acting;      /* the sweep's verdict */
};

/* One queued SEARCH and where its answer goes. */
struct xsearch {
    struct explain *e;
    struct imap_build *b;
    struct uidset *dest;
};

enum xstate { X_CONNECTING, X_EXAMINING, X_FETCHING, X_SWEEPING, X_PARTS,
              X_DONE };

struct explain {
    const struct session_env *env;
    struct config *config;
    const struct config_account *acc;
    char *account, *mailbox;
    uint32_t uid;
    bool force_dry;
    struct log_ctx log;
    struct tls_ctx *tls;
    char *tls_error;
    struct secret_cache *secrets;
    struct session *session;
    struct imap_conn *conn;
    struct sweep *sweep;
    struct sweep_memo memo;
    explain_done_cb *cb;
    void *arg;
    enum xstate st;
    const struct rule **applies;
    struct xrule *rules;
    size_t n_rules;
    size_t decider;            /* index of the deciding rule, or n_rules */
    struct xsearch **q;
    size_t n_q, cap_q, next_q;
    /* the message */
    bool found, has_body, has_date;
    struct mime_fields headers;
    struct buf flags;
    uint64_t size;
    int64_t internaldate;
    unsigned char md5[16], sha256[32];
    struct digest *stream;
    bool want_body;
    struct explain_report report;
};

static void finish(struct explain *e);

/* --- lifetime ------------------------------------------------------------ */

static void
explain_free(struct explain *e)
{
    for (size_t i = 0; i < e->n_rules; i++) {
        struct xrule *x = &e->rules[i];

        for (size_t k = 0; k < x->n_aux; k++)
            uidset_free(&x->aux[k]);
        for (size_t k = 0; k < x->n_parts; k++)
            uidset_free(&x->parts[k]);
        free(x->aux);
        free(x->parts);
        rule_plan_free(x->plan);
    }
    free(e->rules);
    free(e->applies);
    for (size_t i = 0; i < e->n_q; i++) {
        if (i >= e->next_q)
            imap_build_free(e->q[i]->b);
        free(e->q[i]);
    }
    free(e->q);
    mime_fields_free(&e->headers);
    buf_free(&e->flags);
    digest_free(e->stream);
    sweep_memo_free(&e->memo);
    explain_report_clear(&e->report);
    tls_ctx_unref(e->tls);
    free(e->tls_error);
    secret_cache_unref(e->secrets);
    config_unref(e->config);
    free(e->account);
    free(e->mailbox);
    free(e);
}

static void fail(struct explain *e, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void
fail(struct explain *e, const char *fmt, ...)
{
    va_list ap;

    if (e->report.error != NULL)
        return;
    va_start(ap, fmt);
    e->report.error = xvasprintf(fmt, ap);
    va_end(ap);
    finish(e);
}

/* The callback, then LOGOUT; the object goes with the session. */
static void
finish(struct explain *e)
{
    if (e->st == X_DONE)
        return;
    e->st = X_DONE;
    log_ctx_msg(&e->log, LL_INFO, "explain UID %u: %s", e->uid,
                e->report.error != NULL ? e->report.error
                : e->report.verdict != NULL ? e->report.verdict
                                            : "?");
    e->cb(&e->report, e->arg);
    if (e->sweep != NULL) {
        sweep_detach(e->sweep);
        e->sweep = NULL;
    }
    if (e->session != NULL)
        session_logout(e->session);   /* `closed` frees */
    else
        explain_free(e);
}

/* --- the verdict and the report ------------------------------------------ */

static char *
copy_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

static int
part_answer(struct explain *e, struct xrule *x, size_t j,
            const struct rule_msg *m)
{
    const struct rule_node *n = rule_plan_part(x->plan, j);

    /* duplicate is decided over the mailbox: the sweep said */
    if (n->key == RULE_DUPLICATE)
        return x->claimed;
    if (rule_plan_part_server(x->plan, j))
        return uidset_contains(&x->parts[j], e->uid);
    return rule_plan_part_eval(x->plan, j, m, x->aux);
}

static void
verdict(struct explain *e)
{
    struct explain_report *r = &e->report;
    const struct xrule *x;
    const struct rule *rule;
    const char *verb;
    char *target = NULL, *flags = NULL;

    if (e->decider == e->n_rules) {
        r->verdict = xstrdup(e->n_rules == 0
                                 ? "no rule applies to this mailbox: it is "
                                   "left alone"
                                 : "no rule matches it: it is left alone");
        return;
    }
    x = &e->rules[e->decider];
    rule = x->rule;
    r->verdict_rule = xstrdup(rule->name);
    r->acts = x->acting;
    switch (rule->action) {
    case RULE_ACTION_DELETE: verb = "delete"; break;
    case RULE_ACTION_TRASH: verb = "move"; target = xstrdup(" to the Trash");
        break;
    case RULE_ACTION_MOVE:
        verb = "move";
        target = xasprintf(" to \"%s\"", rule->target);
        break;
    default: {
        struct buf b;

        buf_init(&b, BUF_NOCAP);
        for (size_t i = 0; i < rule->n_flags; i++)
            buf_printf(&b, " %s", rule->flags[i]);
        flags = buf_steal(&b);
        verb = "flag";
        break;
    }
    }
    if (x->acting && !r->rules[e->decider].dry)
        r->verdict = xasprintf("rule %s %ss it%s%s (the first rule that "
                               "matches)", rule->name, verb,
                               target ? target : "", flags ? flags : "");
    else if (x->acting)
        r->verdict = xasprintf("rule %s would %s it%s%s, but only previews "
                               "(dry run): nothing is done", rule->name, verb,
                               target ? target : "", flags ? flags : "");
    else if (rule->keep_newest == 1)
        r->verdict = xasprintf("rule %s matches it and keeps it: it is the "
                               "newest message the rule matches (keep_newest: "
                               "1)", rule->name);
    else if (rule->keep_newest > 0)
        r->verdict = xasprintf("rule %s matches it and keeps it: it is one "
                               "of the %u newest messages the rule matches",
                               rule->name, rule->keep_newest);
    else if (rule->action == RULE_ACTION_FLAG)
        r->verdict = xasprintf("rule %s matches it; it has the rule's "
                               "flags already, so nothing changes",
                               rule->name);
    else
        r->verdict = xasprintf("rule %s matches it but does not act on it",
                               rule->name);
    free(target);
    free(flags);
}

static void
build_report(struct explain *e)
{
    struct explain_report *r = &e->report;
    struct rule_header *hv;
    struct rule_msg m;
    size_t shown = e->decider < e->n_rules ? e->decider + 1 : e->n_rules;

    hv = xcalloc(e->headers.n + 1, sizeof(*hv));
    for (size_t i = 0; i < e->headers.n; i++) {
        hv[i].name = e->headers.f[i].name;
        hv[i].value = e->headers.f[i].value;
    }
    memset(&m, 0, sizeof(m));
    m.uid = e->uid;
    m.headers = hv;
    m.n_headers = e->headers.n;
    memcpy(m.md5, e->md5, 16);
    memcpy(m.sha256, e->sha256, 32);
    m.has_md5 = m.has_sha256 = e->has_body;
    m.internaldate = e->internaldate;
    m.has_internaldate = e->has_date;

    r->from = copy_or_null(mime_fields_get(&e->headers, "From"));
    r->subject = copy_or_null(mime_fields_get(&e->headers, "Subject"));
    r->date = copy_or_null(mime_fields_get(&e->headers, "Date"));
    r->message_id = copy_or_null(mime_fields_get(&e->headers, "Message-ID"));
    r->flags = xstrdup(buf_cstr(&e->flags));
    r->size = e->size;
    r->rules = xcalloc(shown ? shown : 1, sizeof(*r->rules));
    r->n_rules = shown;
    r->n_later = e->n_rules - shown;
    for (size_t i = 0; i < shown; i++) {
        struct xrule *x = &e->rules[i];
        struct explain_rule *er = &r->rules[i];
        bool all_yes = true, any_no = false;

        er->name = xstrdup(x->rule->name);
        er->does = rule_describe(x->rule);
        er->dry = rule_is_dry(x->rule, e->force_dry,
                              e->config->daemon.dry_run);
        er->parts = xcalloc(x->n_parts ? x->n_parts : 1, sizeof(*er->parts));
        er->n_parts = x->n_parts;
        for (size_t j = 0; j < x->n_parts; j++) {
            struct explain_part *ep = &er->parts[j];

            ep->text = rule_describe_match(rule_plan_part(x->plan, j));
            ep->server = rule_plan_part_server(x->plan, j);
            ep->holds = part_answer(e, x, j, &m);
            all_yes &= ep->holds == 1;
            any_no |= ep->holds == 0;
        }
        er->matches = any_no ? 0 : all_yes ? 1 : -1;
    }
    free(hv);
    verdict(e);
}

/* --- searches, one at a time ---------------------------------------------
 * Plain SEARCH answers cannot be told apart when pipelined (RFC 3501 5.5),
 * and there are a few per rule: one round trip each is fine. */

static void pump(struct explain *e);

static bool
search_untagged(struct imap_conn *c, const struct imap_response *r,
                void *arg)
{
    struct xsearch *x = arg;
    const struct imap_arg *a;

    (void)c;
    if (r->name == NULL)
        return false;
    if (strcmp(r->name, "SEARCH") == 0) {
        for (a = r->args; a != NULL; a = a->next) {
            uint32_t uid;

            if (imap_arg_get_u32(a, &uid))
                uidset_add(x->dest, uid);
        }
        return true;
    }
    if (strcmp(r->name, "ESEARCH") != 0)
        return false;
    a = r->args;
    if (a != NULL && a->type == IMAP_ARG_LIST)
        a = a->next;            /* (TAG "x") */
    if (imap_arg_is_atom(a, "UID"))
        a = a->next;
    for (; a != NULL && a->next != NULL; a = a->next->next) {
        const char *set;
        size_t len;
        struct uidset part;

        if (!imap_arg_is_atom(a, "ALL") ||
            !imap_arg_get_astring(a->next, &set, &len))
            continue;
        uidset_init(&part);
        if (uidset_parse(&part, set, len) == 0)
            uidset_union(x->dest, &part);
        uidset_free(&part);
    }
    return true;
}

static void
search_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct xsearch *x = arg;
    struct explain *e = x->e;

    (void)c;
    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED ||
        e->st == X_DONE)
        return;
    if (r->status != IMAP_OK) {
        fail(e, "UID SEARCH failed: %s %s", imap_status_name(r->status),
             r->text ? r->text : "");
        return;
    }
    pump(e);
}

static void
enqueue(struct explain *e, struct imap_build *b, struct uidset *dest)
{
    struct xsearch *x = xcalloc(1, sizeof(*x));

    x->e = e;
    x->b = b;
    x->dest = dest;
    ARRAY_GROW(e->q, e->cap_q, e->n_q + 1);
    e->q[e->n_q++] = x;
}

static void
pump(struct explain *e)
{
    struct xsearch *x;
    struct imap_cmd_opts o = {.done = search_done,
                              .untagged = search_untagged};
    int ret;

    if (e->next_q == e->n_q) {
        build_report(e);
        finish(e);
        return;
    }
    x = e->q[e->next_q++];
    o.arg = x;
    ret = imap_conn_submit(e->conn, x->b, &o);
    x->b = NULL;                /* the connection's now, whatever happened */
    if (ret < 0)
        fail(e, "cannot send UID SEARCH: %s", errors_str(ret));
}

/* Every server part, and every auxiliary search, of each rule up to the
 * deciding one, on the one UID. */
static void
start_parts(struct explain *e)
{
    bool esearch = imap_conn_has_cap(e->conn, "ESEARCH");
    size_t shown = e->decider < e->n_rules ? e->decider + 1 : e->n_rules;
    struct uidset one;

    e->st = X_PARTS;
    uidset_init(&one);
    uidset_add(&one, e->uid);
    for (size_t i = 0; i < shown; i++) {
        struct xrule *x = &e->rules[i];

        for (size_t k = 0; k < x->n_aux; k++) {
            struct imap_build *b = imap_conn_build(e->conn);

            imap_build_atom(b, "UID");
            imap_build_atom(b, "SEARCH");
            rule_plan_build_aux(x->plan, k, b, &one, esearch);
            enqueue(e, b, &x->aux[k]);
        }
        for (size_t j = 0; j < x->n_parts; j++) {
            struct imap_build *b;

            if (!rule_plan_part_server(x->plan, j))
                continue;
            b = imap_conn_build(e->conn);
            imap_build_atom(b, "UID");
            imap_build_atom(b, "SEARCH");
            rule_plan_build_part_search(x->plan, j, b, &one, esearch);
            enqueue(e, b, &x->parts[j]);
        }
    }
    uidset_free(&one);
    pump(e);
}

/* --- the sweep's verdict ------------------------------------------------- */

static void
sweep_done(struct sweep *s, const struct sweep_result *r, void *arg)
{
    struct explain *e = arg;

    (void)s;
    e->sweep = NULL;
    if (e->st == X_DONE)
        return;
    if (r->err != 0) {
        fail(e, "the rules could not be evaluated: %s",
             r->msg ? r->msg : errors_str(r->err));
        return;
    }
    e->decider = e->n_rules;
    for (size_t i = 0; i < e->n_rules && i < r->n_stats; i++) {
        struct xrule *x = &e->rules[i];

        x->claimed = r->stats[i].claimed != NULL &&
                     uidset_contains(r->stats[i].claimed, e->uid);
        x->acting = r->stats[i].acting != NULL &&
                    uidset_contains(r->stats[i].acting, e->uid);
        if (x->claimed && e->decider == e->n_rules)
            e->decider = i;
    }
    start_parts(e);
}

static void
start_sweep(struct explain *e)
{
    const struct imap_mailbox_info *mb = imap_conn_mailbox(e->conn);
    struct sweep_params p;

    memset(&p, 0, sizeof(p));
    p.conn = e->conn;
    p.config = e->config;
    p.account = e->acc;
    p.mailbox = e->mailbox;
    p.rules = e->applies;
    p.n_rules = e->n_rules;
    p.memo = &e->memo;
    p.uid_lo = e->uid;
    p.uid_hi = e->uid;
    p.uidvalidity = mb->uidvalidity;
    p.force_dry_run = e->force_dry;
    p.default_dry_run = e->config->daemon.dry_run;
    p.audit = CONFIG_AUDIT_COUNTS;
    p.evaluate_only = true;
    e->st = X_SWEEPING;
    e->sweep = sweep_start(&p, sweep_done, e);
    /* NULL: the connection is closing; `closed` follows */
}

/* --- the message ---------------------------------------------------------- */

static bool
fetch_untagged(struct imap_conn *c, const struct imap_response *r, void *arg)
{
    struct explain *e = arg;
    const struct imap_arg *a, *l;
    uint32_t uid = 0;

    (void)c;
    if (r->name == NULL || strcmp(r->name, "FETCH") != 0 || r->args == NULL ||
        r->args->type != IMAP_ARG_LIST)
        return false;
    for (a = r->args->list; a != NULL && a->next != NULL; a = a->next->next) {
        if (imap_arg_is_atom(a, "UID"))
            imap_arg_get_u32(a->next, &uid);
    }
    if (uid != e->uid)
        return false;
    e->found = true;
    for (a = r->args->list; a != NULL && a->next != NULL; a = a->next->next) {
        const struct imap_arg *v = a->next;
        const char *str;
        size_t len;

        if (a->type != IMAP_ARG_ATOM)
            continue;
        if (imap_arg_is_atom(a, "FLAGS") && v->type == IMAP_ARG_LIST) {
            buf_reset(&e->flags);
            for (l = v->list; l != NULL; l = l->next) {
                if (l->type != IMAP_ARG_ATOM ||
                    util_strcaseeq(l->str, "\\Recent"))
                    continue;
                if (e->flags.len > 0)
                    buf_append_char(&e->flags, ' ');
                buf_append(&e->flags, l->str, l->len);
            }
        } else if (imap_arg_is_atom(a, "RFC822.SIZE")) {
            imap_arg_get_u64(v, &e->size);
        } else if (imap_arg_is_atom(a, "INTERNALDATE")) {
            if (imap_arg_get_astring(v, &str, &len) &&
                imap_arg_parse_internaldate(str, len, &e->internaldate))
                e->has_date = true;
        } else if (util_strncaseeq(a->str, "BODY[HEADER]", 12)) {
            if (imap_arg_get_nstring(v, &str, &len) && str != NULL) {
                mime_fields_free(&e->headers);
                mime_fields_parse(str, len, &e->headers);
            }
        } else if (util_strncaseeq(a->str, "BODY[TEXT]", 10)) {
            if (v->type != IMAP_ARG_STREAMED &&
                imap_arg_get_nstring(v, &str, &len)) {
                struct digest *d = digest_new(true, true);

                if (str != NULL)
                    digest_update(d, str, len);
                digest_final(d, e->md5, e->sha256);
                digest_free(d);
                e->has_body = true;
            }
        }
    }
    return true;
}

/* The body streams through the digests: memory does not grow with it. */
static bool
body_start(void *arg, const struct imap_response *partial,
           const struct imap_arg *prev, uint64_t size, unsigned id)
{
    struct explain *e = arg;

    (void)size;
    (void)id;
    if (partial->name == NULL || strcmp(partial->name, "FETCH") != 0 ||
        prev == NULL || prev->type != IMAP_ARG_ATOM ||
        !util_strncaseeq(prev->str, "BODY[TEXT]", 10))
        return false;
    digest_free(e->stream);
    e->stream = digest_new(true, true);
    return true;
}

static void
body_data(void *arg, unsigned id, const void *p, size_t n)
{
    struct explain *e = arg;

    (void)id;
    if (e->stream != NULL)
        digest_update(e->stream, p, n);
}

static void
body_end(void *arg, unsigned id)
{
    struct explain *e = arg;

    (void)id;
    if (e->stream == NULL)
        return;
    digest_final(e->stream, e->md5, e->sha256);
    digest_free(e->stream);
    e->stream = NULL;
    e->has_body = true;
}

static const struct imap_parser_stream_ops body_stream = {
    .start = body_start,
    .data = body_data,
    .end = body_end,
};

static void
fetch_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct explain *e = arg;
    const struct imap_mailbox_info *mb = imap_conn_mailbox(c);

    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED ||
        e->st == X_DONE)
        return;
    if (r->status != IMAP_OK) {
        fail(e, "UID FETCH %u failed: %s %s", e->uid,
             imap_status_name(r->status), r->text ? r->text : "");
        return;
    }
    e->report.found = e->found;
    if (!e->found) {
        e->report.verdict = xasprintf("%s has no message with UID %u "
                                      "(UIDVALIDITY %u): deleted or moved "
                                      "already, or a UID of another mailbox",
                                      e->mailbox, e->uid, mb->uidvalidity);
        finish(e);
        return;
    }
    start_sweep(e);
}

static void
start_fetch(struct explain *e)
{
    struct imap_build *b = imap_conn_build(e->conn);
    struct imap_cmd_opts o = {.done = fetch_done, .untagged = fetch_untagged,
                              .arg = e};
    char uid[16];
    int ret;

    e->st = X_FETCHING;
    snprintf(uid, sizeof(uid), "%u", e->uid);
    imap_build_atom(b, "UID");
    imap_build_atom(b, "FETCH");
    imap_build_atom(b, uid);
    imap_build_list_open(b);
    imap_build_atom(b, "UID");
    imap_build_atom(b, "FLAGS");
    imap_build_atom(b, "INTERNALDATE");
    imap_build_atom(b, "RFC822.SIZE");
    imap_build_atom(b, "BODY.PEEK[HEADER]");
    if (e->want_body) {
        imap_build_atom(b, "BODY.PEEK[TEXT]");
        o.stream = &body_stream;
    }
    imap_build_list_close(b);
    ret = imap_conn_submit(e->conn, b, &o);
    if (ret < 0)
        fail(e, "cannot send UID FETCH: %s", errors_str(ret));
}

/* --- the session ----------------------------------------------------------- */

static void
examine_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct explain *e = arg;
    struct rule_caps caps = {.within = imap_conn_has_cap(c, "WITHIN")};
    time_t now = time(NULL);

    if (r->status == IMAP_CANCELLED || r->status == IMAP_DISCONNECTED ||
        e->st == X_DONE)
        return;
    if (r->status != IMAP_OK) {
        fail(e, "cannot examine \"%s\": %s %s", e->mailbox,
             imap_status_name(r->status), r->text ? r->text : "");
        return;
    }
    e->report.uidvalidity = imap_conn_mailbox(c)->uidvalidity;
    for (size_t i = 0; i < e->n_rules; i++) {
        struct xrule *x = &e->rules[i];

        x->plan = rule_plan_new(x->rule, &caps, now);
        x->n_aux = rule_plan_aux_count(x->plan);
        x->aux = xcalloc(x->n_aux ? x->n_aux : 1, sizeof(*x->aux));
        for (size_t k = 0; k < x->n_aux; k++)
            uidset_init(&x->aux[k]);
        x->n_parts = rule_plan_n_parts(x->plan);
        x->parts = xcalloc(x->n_parts ? x->n_parts : 1, sizeof(*x->parts));
        for (size_t k = 0; k < x->n_parts; k++)
            uidset_init(&x->parts[k]);
        /* a body digest is needed only when a rule checks one */
        if (rule_plan_needs(x->plan) & (RULE_NEED_MD5 | RULE_NEED_SHA256))
            e->want_body = true;
    }
    start_fetch(e);
}

static void
on_ready(struct session *sn, void *arg)
{
    struct explain *e = arg;

    e->conn = session_conn(sn);
    e->st = X_EXAMINING;
    /* read-only: nothing in the mailbox changes, not even \Recent */
    if (imap_conn_select(e->conn, e->mailbox, true, examine_done, e) < 0)
        fail(e, "connection closed while examining \"%s\"", e->mailbox);
}

static void
on_closed(struct session *sn, int err, const char *msg, bool auth,
          void *arg)
{
    struct explain *e = arg;

    (void)err;
    (void)auth;
    session_free(sn);
    e->session = NULL;
    e->conn = NULL;
    if (e->sweep != NULL) {
        sweep_detach(e->sweep);
        e->sweep = NULL;
    }
    if (e->st == X_DONE) {
        explain_free(e);        /* logged out after the answer */
        return;
    }
    if (e->tls_error != NULL)
        fail(e, "cannot reach %s: %s", e->account, e->tls_error);
    else
        fail(e, "cannot reach %s: %s", e->account, msg);
}

static const struct session_events explain_events = {
    .ready = on_ready,
    .closed = on_closed,
};

/* --- public ---------------------------------------------------------------- */

static bool
same_mailbox(const char *a, const char *b)
{
    return strcmp(a, b) == 0 ||
           (util_strcaseeq(a, "INBOX") && util_strcaseeq(b, "INBOX"));
}

struct explain *
explain_start(const struct explain_params *p, explain_done_cb *cb, void *arg)
{
    struct explain *e = xcalloc(1, sizeof(*e));
    const struct config_account *a = p->account;

    e->env = p->env;
    e->config = config_ref(p->config);
    e->acc = a;
    e->account = xstrdup(a->name);
    e->mailbox = xstrdup(p->mailbox);
    e->uid = p->uid;
    e->force_dry = p->force_dry;
    e->log.account = e->account;
    e->log.mailbox = e->mailbox;
    e->cb = cb;
    e->arg = arg;
    buf_init(&e->flags, BUF_NOCAP);
    e->report.account = xstrdup(a->name);
    e->report.mailbox = xstrdup(p->mailbox);
    e->report.uid = p->uid;
    for (size_t i = 0; i < a->n_mailboxes; i++)
        e->report.watched |= same_mailbox(a->mailboxes[i], p->mailbox);
    /* the rules of this account that apply to the mailbox, in order */
    e->applies = xcalloc(a->n_rules ? a->n_rules : 1, sizeof(*e->applies));
    e->rules = xcalloc(a->n_rules ? a->n_rules : 1, sizeof(*e->rules));
    for (size_t i = 0; i < a->n_rules; i++) {
        const struct rule *r = p->config->rules[a->rules[i]];

        if (!rule_applies_to(r, p->mailbox))
            continue;
        e->applies[e->n_rules] = r;
        e->rules[e->n_rules++].rule = r;
    }
    e->decider = e->n_rules;
    if (p->tls != NULL) {
        e->tls = tls_ctx_ref(p->tls);
    } else if (a->tunnel == NULL && a->tls != CONFIG_TLS_NONE) {
        char *err = NULL;

        e->tls = tls_ctx_new(a->ca_file, a->tls_verify, &err);
        if (e->tls == NULL)
            e->tls_error = xasprintf("cannot set up TLS: %s",
                                     err ? err : "unknown error");
        free(err);
    }
    e->secrets = p->secrets ? secret_cache_ref(p->secrets) : NULL;
    e->st = X_CONNECTING;
    e->session = session_new(p->env, e->config, a, e->tls, e->secrets,
                             e->mailbox, &explain_events, e);
    return e;
}

void
explain_cancel(struct explain *e)
{
    struct session *sn;

    if (e == NULL)
        return;
    e->st = X_DONE;             /* no callback, no more commands */
    if (e->sweep != NULL) {
        sweep_detach(e->sweep);
        e->sweep = NULL;
    }
    sn = e->session;
    e->session = NULL;
    session_free(sn);           /* pending callbacks fire (cancelled) now */
    explain_free(e);
}
