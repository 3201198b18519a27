/* SPDX-License-Identifier: MIT */
/* explain: why one message was (or would be) acted on, or left alone: "why
 * was this deleted?" and "why does my rule never match?".
 *
 * Read-only, over a short-lived session of its own (a busy watcher is not
 * disturbed): the mailbox is opened with EXAMINE, the message read with
 * BODY.PEEK, nothing is ever stored. The verdict is what a sweep would
 * decide, from the sweep's own evaluation (sweep_params.evaluate_only) of
 * the account's rules for that mailbox: the first rule that matches,
 * keep_newest and duplicates over the whole mailbox included. For each
 * rule up to that one, each part of its match is answered: the server's
 * parts by the SEARCH of that part restricted to the one UID, the client's
 * (regexes, digests, dates without WITHIN) on the fetched message.
 *
 * Ownership: explain_start() returns an object the caller may cancel until
 * the callback has run; after the callback (exactly once, from the loop)
 * the object logs out and frees itself, and the caller must forget it. */
#ifndef IMAPSWEEP_EXPLAIN_H
#define IMAPSWEEP_EXPLAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "session.h"

struct explain;
struct secret_cache;
struct tls_ctx;

/* One part of a rule's match, answered for the message. */
struct explain_part {
    char *text;            /* "whose From contains \"Cron Daemon\"" */
    bool server;           /* decided by SEARCH (else on the client) */
    int holds;             /* 1 yes, 0 no, -1 no answer */
};

struct explain_rule {
    char *name;
    char *does;            /* rule_describe(): "delete messages whose ..." */
    bool dry;              /* it only previews */
    int matches;           /* every part holds: 1, 0, -1 (no answer) */
    struct explain_part *parts;
    size_t n_parts;
};

/* The answer. Strings are NULL when unknown (a message without Subject). */
struct explain_report {
    char *error;           /* non-NULL: no explanation (and why) */
    char *account;
    char *mailbox;
    uint32_t uid;
    uint32_t uidvalidity;
    bool watched;          /* the account watches this mailbox */
    bool found;            /* the UID is in the mailbox */
    char *from, *subject, *date, *message_id;
    char *flags;           /* "\Seen $Label", "" for none */
    uint64_t size;
    /* the rules that apply to the mailbox, in order, up to and including
     * the one that decides (all of them when none does) */
    struct explain_rule *rules;
    size_t n_rules;
    size_t n_later;        /* rules after the deciding one, not shown */
    char *verdict_rule;    /* the deciding rule, or NULL */
    bool acts;             /* it acts on the message (or would, dry) */
    char *verdict;         /* one sentence */
};

struct explain_params {
    const struct session_env *env;
    struct config *config;          /* referenced while it runs */
    const struct config_account *account; /* in config */
    struct tls_ctx *tls;            /* NULL: made here if the account
                                     * needs TLS */
    struct secret_cache *secrets;   /* the account's, or NULL */
    const char *mailbox;
    uint32_t uid;
    bool force_dry;                 /* --dry-run: every rule previews */
};

/* The report is borrowed for the call. */
typedef void explain_done_cb(const struct explain_report *r, void *arg);

/* Start; cb runs once from the loop (also on errors: r->error). Never
 * NULL. */
struct explain *explain_start(const struct explain_params *p,
                              explain_done_cb *cb, void *arg);
/* Before the callback ran: stop at once, the callback will not run.
 * NULL-safe. */
void explain_cancel(struct explain *e);

/* The report for people, several lines ending with a newline (caller
 * frees): the message, each rule with each part's answer, the verdict. */
char *explain_report_text(const struct explain_report *r);
/* Free the members of a report (one built by hand or read back from
 * JSON: every string allocated); the struct itself is the caller's. */
void explain_report_clear(struct explain_report *r);

#endif
