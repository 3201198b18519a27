/* SPDX-License-Identifier: MIT */
/* sweep: one pass of the rules over a selected mailbox on an imap_conn.
 *
 *  1. the top of the range (the highest UID now in the mailbox), fetched
 *     with the searches pipelined right behind it;
 *  2. one UID SEARCH per rule (pipelined with ESEARCH, else one at a time),
 *     over uid_lo:* — or 1:* for rules that need every match (keep_newest,
 *     duplicate, and the rules before them) — then clipped to the top;
 *  3. for rules with client-side keys: auxiliary searches and the fetches
 *     they need (header fields, body digests streamed, INTERNALDATE),
 *     pipelined; flag rules learn which matches lack their flags;
 *  4. local evaluation in rule order: first match wins, keep_newest,
 *     duplicates (oldest copy kept);
 *  5. with audit: messages, one more fetch of From/Subject/Message-ID for
 *     what will be acted on (unless already fetched);
 *  6. the actions, batched over chunked UID sets, the chunks one at a
 *     time with the UIDVALIDITY re-checked before each; never one round
 *     trip per message.
 *
 * Safety: only UIDs; every acted-on set is intersected with what the
 * server's own SEARCH returned for that rule and with the swept range; a
 * UIDVALIDITY change anywhere stops the sweep before acting. */
#ifndef IMAPSWEEP_SWEEP_H
#define IMAPSWEEP_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "imap_conn.h"
#include "log.h"
#include "rule.h"

/* Per watched mailbox, kept across sweeps by the owner. */
struct sweep_memo {
    char *trash;            /* where trash goes (LIST's \Trash, else the one
                             * folder named Trash), or NULL */
    char *trash_none;       /* when none: why (also a note), else NULL */
    bool trash_looked_up;
    char **notes;           /* notes reported so far (each logged once) */
    size_t n_notes, cap_notes;
};

void sweep_memo_free(struct sweep_memo *m);
/* Keep text as a note of this mailbox (status shows it) and log it as a
 * warning, once: false if the memo already had it. */
bool sweep_memo_note(struct sweep_memo *m, const struct log_ctx *log,
                     const char *text);

struct sweep_params {
    struct imap_conn *conn;     /* mailbox selected */
    struct config *config;      /* a reference is held for the sweep */
    const struct config_account *account;
    const char *mailbox;
    const struct rule *const *rules; /* applicable rules, in order */
    size_t n_rules;
    struct sweep_memo *memo;
    uint32_t uid_lo;            /* 1 for a full sweep */
    uint32_t uidvalidity;       /* as seen at SELECT */
    bool force_dry_run;         /* --dry-run: every rule previews */
    bool default_dry_run;       /* daemon.dry_run: rules that do not say */
    enum config_audit audit;
    size_t max_set_len;         /* UID set text per command; 0: 30000 */
    uint32_t uid_hi;            /* 0: every UID from uid_lo up; else the
                                 * sweep decides for uid_lo..uid_hi only
                                 * (rules over the whole mailbox such as
                                 * keep_newest still look at all of it) */
    bool evaluate_only;         /* decide, never act, log nothing: the
                                 * result's claimed/acting sets say what a
                                 * sweep would do (explain) */
};

struct sweep_stat {
    const char *rule;           /* borrowed from the config */
    enum rule_action action;
    bool dry;
    uint64_t matched;           /* final matches */
    uint64_t acted;             /* acted on (or would be, when dry) */
    bool failed;
    const char *why;            /* when failed: what went wrong ("target
                                 * mailbox \"X\" does not exist ..."),
                                 * valid during the done callback */
    /* valid during the done callback: the UIDs the rule decided on (first
     * match wins: acted on, kept by keep_newest, or already flagged), and
     * of those the ones it acts on (or would, dry) */
    const struct uidset *claimed;
    const struct uidset *acting;
};

struct sweep_result {
    int err;                    /* 0, or an errors.h code */
    const char *msg;            /* why, when err != 0 */
    bool full;
    uint32_t uid_top;           /* highest UID covered (0: empty mailbox) */
    const struct sweep_stat *stats;
    size_t n_stats;
    uint64_t duration_ms;
    uint64_t duration_us;       /* the same, finer */
};

struct sweep;

/* Called once when the sweep is over (also after sweep_cancel); the sweep
 * frees itself right after it returns. */
typedef void sweep_done_cb(struct sweep *s, const struct sweep_result *r,
                           void *arg);

/* Start. The callback never runs inside this call. NULL (and no callback)
 * if the connection takes no more commands (it is closing). */
struct sweep *sweep_start(const struct sweep_params *p, sweep_done_cb *cb,
                          void *arg);
/* Stop before any further action: commands in flight complete, then cb
 * runs with err ERR_CANCELLED. */
void sweep_cancel(struct sweep *s);
/* Stop and never call back (the owner is going away): the sweep frees
 * itself once its commands are done or cancelled, and from now on touches
 * nothing the owner gave it but the connection (the memo is forgotten;
 * the config and rules are its own references). */
void sweep_detach(struct sweep *s);

#endif
