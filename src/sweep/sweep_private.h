/* SPDX-License-Identifier: MIT */
/* sweep internals shared by its files:
 *  sweep.c        lifetime, the top of the range, searches, phase machine;
 *  sweep_fetch.c  client-side data: auxiliary and flag searches, header,
 *                 INTERNALDATE and body-digest fetches, audit headers;
 *  sweep_eval.c   pure evaluation: the message store and which UIDs each
 *                 rule acts on (no connection: unit-tested on data);
 *  sweep_act.c    the batched actions and audit lines;
 *  sweep_trash.c  where trash goes: SPECIAL-USE, else the folder named
 *                 Trash (with NAMESPACE's prefix). */
#ifndef IMAPSWEEP_SWEEP_PRIVATE_H
#define IMAPSWEEP_SWEEP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imap_build.h"
#include "imap_conn.h"
#include "log.h"
#include "mime.h"
#include "rule.h"
#include "sweep.h"
#include "uidset.h"
#include "util.h"

#define MAX_STREAMS 8

enum sweep_phase {
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
    struct uidset claimed;  /* what it decided on (first match) */
    struct sweep_stat stat;
    char *why;              /* stat.why */
};

struct queued_search {
    struct imap_build *b;
    struct uidset *dest;
};

struct batch;   /* one batched action step (sweep_act.c) */
struct trash_lookup;    /* the \Trash lookup in progress (sweep_trash.c) */
struct digest;

struct sweep {
    struct sweep_params p;
    struct config *config;
    char *account, *mailbox;
    struct log_ctx log;     /* account, mailbox */
    sweep_done_cb *cb;
    void *cb_arg;
    bool cancelled, detached;
    /* the most messages the mailbox has held since the sweep began: no
     * UID set the server sends can honestly be larger (sweep_bound) */
    uint32_t exists_max;
    /* imap_mailbox_info.uidvalidity_changes when the sweep began */
    uint32_t uidvalidity_changes;
    bool reverting;         /* taking back \Deleted after a cancel */
    unsigned outstanding;   /* commands submitted and not completed */
    enum sweep_phase phase;
    uint64_t started_ns;        /* uv_hrtime() at the start */
    bool full;
    uint32_t uid_lo, uid_top;
    uint32_t uid_end;       /* uid_hi or uid_top: the range decided on */
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
    struct trash_lookup *trash_lookup;
    int err;
    char *msg;
    struct sweep_stat *stats;
    struct sweep_result result;
};

/* --- sweep.c: commands and errors ---------------------------------------- */

/* True once nothing more may be sent: cancelled (unless taking \Deleted
 * back), detached, or failed. */
static inline bool
sweep_stopped(const struct sweep *s)
{
    return (s->cancelled && !s->reverting) || s->detached || s->err != 0;
}

/* The most messages a sweep handles in one mailbox. The EXISTS is the
 * server's word: a liar's "* 4294967295 EXISTS" must not let it name four
 * billion UIDs (records of 3 GB, loops of minutes). */
#define SWEEP_MAX_MESSAGES 1000000u

/* The most messages the mailbox has held since the sweep began (the
 * connection's EXISTS, as it rose), at most SWEEP_MAX_MESSAGES. Every UID
 * set from the server is checked against it as it arrives, so that every
 * later expansion of a set UID by UID (records, evaluation, audit lines)
 * is bounded by what the mailbox can hold. */
uint32_t sweep_bound(struct sweep *s);
/* The server said something the mailbox cannot hold: record
 * ERR_PROTOCOL and end the connection (imap_conn_abort: from the loop,
 * with the trace and this message); nothing more is acted on. */
void sweep_violation(struct sweep *s, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* n UIDs from the server (what: for the message), the highest max (0:
 * not known): true if the mailbox can hold them (n <= sweep_bound(), max
 * below a known UIDNEXT); otherwise a violation. */
bool sweep_uids_plausible(struct sweep *s, uint64_t n, uint32_t max,
                          const char *what);
/* Record the sweep's error; only the first one is kept. */
void sweep_set_error(struct sweep *s, int err, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
/* Log text as a warning once per mailbox (kept in the memo for status). */
void sweep_note(struct sweep *s, const char *text);
/* Forget a note that no longer holds (status stops showing it). */
void sweep_note_drop(struct sweep *s, const char *text);
/* Submit b (ownership passes, whatever the outcome) with the sweep as the
 * one waiting for it. Returns 0, or an errors.h code after setting the
 * sweep's error; done is then never called. */
int sweep_submit(struct sweep *s, struct imap_build *b, imap_done_cb *done,
                 imap_untagged_cb *untagged,
                 const struct imap_parser_stream_ops *st, void *arg);
/* Every done callback of sweep_submit ends with this: it moves on once
 * nothing is in flight, and may free the sweep (detached). */
void sweep_cmd_finished(struct sweep *s);
/* True for OK; otherwise records why as the sweep's error. */
bool sweep_reply_ok(struct sweep *s, const struct imap_reply *r,
                    const char *what);
/* True if the mailbox and its UIDVALIDITY are still the searched ones;
 * otherwise sets ERR_UIDVALIDITY. */
bool sweep_mailbox_unchanged(struct sweep *s);
/* Queue a UID SEARCH (b owned) whose results are added to dest, and send
 * what the pipelining allows. */
void sweep_enqueue_search(struct sweep *s, struct imap_build *b,
                          struct uidset *dest);
void sweep_pump_searches(struct sweep *s);

/* --- sweep_fetch.c: client-side data ------------------------------------- */

/* Phase 3: auxiliary searches, flag rules' "lacking" searches, and the
 * header, INTERNALDATE and body fetches the rules' plans need. */
void sweep_fetch_prep(struct sweep *s);
/* Phase 5: with audit messages, fetch From/Subject/Message-ID of what will
 * be acted on and was not fetched yet. */
void sweep_fetch_audit(struct sweep *s);

/* --- sweep_eval.c: pure evaluation --------------------------------------- */

void sweep_store_free(struct sweep_store *st);
/* The record of uid, or NULL. */
struct sweep_msg *sweep_store_find(const struct sweep_store *st,
                                   uint32_t uid);
/* Make sure every UID of set has a record (new ones zeroed, no data).
 * Returns 0, or -E2BIG (nothing added) if the store would hold more than
 * limit records: the sweep passes the most messages the mailbox has held,
 * so a lying server cannot make it allocate a record per UID it names. */
int sweep_store_add(struct sweep_store *st, const struct uidset *set,
                    size_t limit);

/* The sweep's rules for the n rules of src, in order (src borrowed for the
 * array's life): plans compiled for caps at now, dry runs decided
 * (force_dry, else the rule's own setting, else default_dry), global rules
 * (keep_newest, duplicate) marked, and claim_all set on the non-global
 * rules before the last global one. Never NULL; free with
 * sweep_rules_free. */
struct sweep_rule *sweep_rules_new(const struct rule *const *src, size_t n,
                                   const struct rule_caps *caps, time_t now,
                                   bool force_dry, bool default_dry);
void sweep_rules_free(struct sweep_rule *rules, size_t n);
/* Clip each rule's found (the SEARCH over lo:*, or 1:* for global and
 * claim_all rules) to [lo, top], [1, top] for those. */
void sweep_eval_clip_found(struct sweep_rule *rules, size_t n,
                           uint32_t uid_lo, uint32_t uid_top);
/* Decide, in rule order, each rule's final set and stat.matched from
 * found, aux, lacking and the records in st: first match wins (whatever
 * the rule then does, keeping and dry runs included); client-side keys
 * checked on the records (no headers fetched: no match); duplicates keep
 * the oldest copy; keep_newest spares the highest UIDs; claim_all rules
 * act only within [uid_lo, uid_top]; flag rules that are not dry act only
 * on the matches lacking a flag. */
void sweep_eval_rules(struct sweep_rule *rules, size_t n_rules,
                      const struct sweep_store *st, uint32_t uid_lo,
                      uint32_t uid_top);

/* --- sweep_act.c: actions ------------------------------------------------ */

/* Act on the next rule with something to act on (from s->act_index);
 * phase 6 runs it until every rule is done. */
void sweep_act_next_rule(struct sweep *s);
void sweep_batch_free(struct batch *b);

/* --- sweep_trash.c: where trash goes ------------------------------------- */

/* True if a rule may move to the trash (trash; delete on Gmail; dry runs
 * too) and where it goes is not known: never looked up, or nothing found
 * and this is a full sweep. False with trash_mailbox set. */
bool sweep_trash_wanted(const struct sweep *s);
/* Look it up (NAMESPACE and LIST, pipelined with the sweep's commands;
 * one more LIST where no folder is marked \Trash) and keep the answer in
 * the memo: its trash, or trash_none and a note saying why. A LIST the
 * server refuses is not the sweep's failure: it is the reason there is no
 * trash. */
void sweep_trash_lookup(struct sweep *s);
/* NULL-safe. */
void sweep_trash_free(struct trash_lookup *tl);

#endif
