/* SPDX-License-Identifier: MIT */
/* sweep, phase 6: the actions, batched over chunked UID sets sent one
 * chunk at a time, the UIDVALIDITY re-checked before each (a change
 * reported in the reply to one chunk stops the rest); the audit lines for
 * what was acted on. Where trash goes is found by sweep_trash.c. */
#include "sweep_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "imap_build.h"
#include "imap_utf7.h"
#include "log.h"
#include "uidset.h"
#include "util.h"

/* One batched action step over a set, chunked into commands. */
struct batch;
typedef void batch_next_fn(struct sweep *s, struct batch *b);

struct batch {
    struct sweep_rule *sr;
    const char *verb;       /* for messages */
    struct uidset todo;     /* what the step covers */
    struct uidset ok;       /* chunks the server accepted */
    struct uidset retry;    /* chunks refused with TRYCREATE */
    struct uidset sending;  /* what batch_send was given */
    size_t pos;             /* its next chunk (uidset_next_chunk) */
    unsigned outstanding;
    bool failed;
    bool created;           /* CREATE already tried once */
    batch_next_fn *next;
};

/* --- audit lines --------------------------------------------------------- */

/* The rule's name for a line about it (NULL: none). */
static const char *
rname(const struct sweep_rule *sr)
{
    return sr != NULL ? sr->rule->name : NULL;
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

/* One line per message (audit: messages) or per rule (counts). In the
 * journal a preview is ACTION=would_delete with DRY_RUN=1, never the
 * ACTION=delete of a real deletion; Message-ID, From and Subject are
 * fields of their own. */
static void
audit_set(struct sweep *s, struct sweep_rule *sr, const char *verb,
          const struct uidset *set, bool would)
{
    char action[32];
    struct log_fields f = {.rule = rname(sr), .action = action,
                           .dry_run = would};

    if (uidset_empty(set))
        return;
    snprintf(action, sizeof(action), "%s%s", would ? "would_" : "", verb);
    if (s->p.audit == CONFIG_AUDIT_COUNTS) {
        log_ctx_fields(&s->log, LL_INFO, &f, "%s: %s%s %llu message%s",
                       sr->rule->name, would ? "would " : "", verb,
                       (unsigned long long)uidset_count(set),
                       uidset_count(set) == 1 ? "" : "s");
        return;
    }
    /* set is what was acted on, within the rule's found set: bounded by
     * what the mailbox holds (sweep_bound) */
    for (size_t r = 0; r < set->n; r++) {
        for (uint64_t u = set->r[r].lo; u <= set->r[r].hi; u++) {
            struct sweep_msg *m = sweep_store_find(&s->store, (uint32_t)u);
            struct buf q;

            f.uid = (uint32_t)u;
            f.message_id = f.from = f.subject = NULL;
            if (m != NULL) {
                f.message_id = mime_fields_get(&m->headers, "Message-ID");
                f.from = mime_fields_get(&m->headers, "From");
                f.subject = mime_fields_get(&m->headers, "Subject");
            }
            buf_init(&q, BUF_NOCAP);
            buf_append_str(&q, " message-id ");
            append_quoted(&q, f.message_id);
            buf_append_str(&q, " from ");
            append_quoted(&q, f.from);
            buf_append_str(&q, " subject ");
            append_quoted(&q, f.subject);
            log_ctx_fields(&s->log, LL_INFO, &f, "%s: %s%s uid %llu%s",
                           sr->rule->name, would ? "would " : "", verb,
                           (unsigned long long)u, buf_cstr(&q));
            buf_free(&q);
        }
    }
}

/* --- failures ------------------------------------------------------------ */

/* The first reason the rule's action failed, for status and --once. */
static void
set_why(struct sweep_rule *sr, const char *msg)
{
    sr->stat.failed = true;
    if (sr->why == NULL) {
        sr->why = xstrdup(msg);
        sr->stat.why = sr->why;
    }
}

/* The rule's action failed (the mail stays where it is): log why. */
static void rule_failed(struct sweep *s, struct sweep_rule *sr,
                        const char *fmt, ...) PRINTF_LIKE(3, 4);

static void
rule_failed(struct sweep *s, struct sweep_rule *sr, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    log_ctx_action(&s->log, LL_ERROR, rname(sr), NULL, 0, "%s: %s",
                   sr->rule->name, msg);
    set_why(sr, msg);
    free(msg);
}

/* Only `action: {move: X, create: true}` creates a missing target: a typo
 * must not make a new folder that mail then disappears into. */
static bool
may_create(const struct sweep_rule *sr)
{
    return sr->rule->action == RULE_ACTION_MOVE && sr->rule->create;
}

static void
missing_target(struct sweep *s, struct sweep_rule *sr, const char *target,
               bool dry)
{
    if (sr->rule->action == RULE_ACTION_MOVE)
        rule_failed(s, sr, "target mailbox \"%s\" does not exist: %s (add "
                    "create: true to the action to have it created)", target,
                    dry ? "the move would fail" : "nothing moved");
    else
        rule_failed(s, sr, "trash mailbox \"%s\" does not exist: %s (a "
                    "Trash is never created: create it, or set "
                    "trash_mailbox)", target,
                    dry ? "the action would fail" : "nothing moved");
}

/* No trash to move to (sweep_trash.c found none): nothing is sent, so say
 * why, not that the server refused. */
static void
no_trash(struct sweep *s, struct sweep_rule *sr)
{
    const struct sweep_memo *m = s->p.memo;
    const char *why = m != NULL && m->trash_none != NULL
                          ? m->trash_none
                          : "no \\Trash mailbox; set trash_mailbox";
    uint64_t n = uidset_count(&sr->final);

    log_ctx_action(&s->log, LL_WARNING, rname(sr), NULL, 0,
                   "%s: %llu matching message%s %s alone: %s",
                   sr->rule->name, (unsigned long long)n, n == 1 ? "" : "s",
                   sr->dry ? "would be left" : "left", why);
    set_why(sr, why);
}

/* --- phase 6: actions ---------------------------------------------------- */

void
sweep_batch_free(struct batch *b)
{
    uidset_free(&b->todo);
    uidset_free(&b->ok);
    uidset_free(&b->retry);
    uidset_free(&b->sending);
    free(b);
}

struct chunk_req {
    struct sweep *s;
    struct batch *b;
    struct uidset chunk;
};

static void batch_send_next(struct sweep *s, struct batch *b);

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
        rule_failed(s, b->sr, "%s refused: %s %s", b->verb,
                    imap_status_name(r->status), r->text ? r->text : "");
    } else {
        sweep_reply_ok(s, r, b->verb);
    }
    uidset_free(&req->chunk);
    free(req);
    b->outstanding--;
    if (b->outstanding == 0 && s->batch == b && !s->detached)
        batch_send_next(s, b);
    sweep_cmd_finished(s);
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

/* Send the next chunk of b->sending, only once the previous one is
 * answered and the mailbox is still the one searched: a pipelined chunk
 * would name UIDs of another mailbox generation if the reply to the one
 * before it said the UIDVALIDITY changed. With nothing (more) to send,
 * move on (the next step checks sweep_stopped()). */
static void
batch_send_next(struct sweep *s, struct batch *b)
{
    struct chunk_req *req;

    if (!sweep_stopped(s) && sweep_mailbox_unchanged(s)) {
        req = xcalloc(1, sizeof(*req));
        uidset_init(&req->chunk);
        if (uidset_next_chunk(&b->sending, &b->pos, s->p.max_set_len,
                              &req->chunk)) {
            req->s = s;
            req->b = b;
            b->outstanding++;
            if (sweep_submit(s, build_action(s, b, &req->chunk),
                             batch_chunk_done, NULL, NULL, req) == 0)
                return;
            b->outstanding--;
        }
        uidset_free(&req->chunk);
        free(req);
    }
    if (b->outstanding == 0 && s->batch == b)
        b->next(s, b);
}

static void
batch_send(struct sweep *s, struct batch *b, const struct uidset *set)
{
    uidset_copy(&b->sending, set);
    b->pos = 0;
    batch_send_next(s, b);
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
    uidset_init(&b->sending);
    uidset_copy(&b->todo, set);
    if (s->batch != NULL)
        sweep_batch_free(s->batch);
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
        sweep_note(s, "server lacks UIDPLUS: matches stay flagged \\Deleted "
                      "(set expunge: mailbox to allow a plain EXPUNGE)");
    if (!uidset_empty(set))
        s->deleted_flagged = true;
    sweep_act_next_rule(s);
}

static void
after_expunge(struct sweep *s, struct batch *b)
{
    (void)b;
    sweep_act_next_rule(s);
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
    sweep_act_next_rule(s);
}

static void
after_store_deleted(struct sweep *s, struct batch *b)
{
    struct sweep_rule *sr = b->sr;
    struct uidset ok;

    if (sweep_stopped(s)) {
        /* Cancelled (the rules changed) between STORE and EXPUNGE: do not
         * leave messages flagged \Deleted for rules no longer in force. */
        if (s->cancelled && !s->detached && s->err == 0 &&
            !uidset_empty(&b->ok) && sweep_mailbox_unchanged(s)) {
            uidset_init(&ok);
            uidset_copy(&ok, &b->ok);
            s->reverting = true;
            batch_send(s, batch_new(s, sr, "unflag deleted", &ok,
                                    after_revert), &ok);
            uidset_free(&ok);
            return;
        }
        sweep_act_next_rule(s);
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

    if (sweep_stopped(s)) {
        sweep_act_next_rule(s);
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
        sweep_reply_ok(s, r, "CREATE");
    }
    /* retry the refused chunks once (NO: maybe created meanwhile) */
    if (!sweep_stopped(s) && !s->detached) {
        struct uidset retry;

        uidset_init(&retry);
        uidset_copy(&retry, &b->retry);
        uidset_clear(&b->retry);
        batch_send(s, b, &retry);
        uidset_free(&retry);
    }
    sweep_cmd_finished(s);
}

static void
after_move(struct sweep *s, struct batch *b)
{
    struct sweep_rule *sr = b->sr;

    if (!uidset_empty(&b->retry) && !b->created && !sweep_stopped(s) &&
        may_create(sr)) {
        struct imap_build *bd = imap_conn_build(s->p.conn);

        b->created = true;
        imap_build_atom(bd, "CREATE");
        imap_build_mailbox(bd, s->trash);
        sweep_submit(s, bd, create_done, NULL, NULL, s);
        return;
    }
    if (!uidset_empty(&b->retry)) {
        /* [TRYCREATE]: the target is missing; the mail stays */
        b->failed = true;
        if (!may_create(sr))
            missing_target(s, sr, s->trash, false);
        else
            rule_failed(s, sr, "target mailbox \"%s\" does not exist and "
                        "could not be created", s->trash);
    }
    if (b->failed)
        sr->stat.failed = true;
    if (strcmp(b->verb, "copy") == 0) {
        after_copy(s, b);
        return;
    }
    rule_done(s, sr, &b->ok, action_verb(s, sr));
    sweep_act_next_rule(s);
}

static void
after_flag(struct sweep *s, struct batch *b)
{
    if (b->failed)
        b->sr->stat.failed = true;
    rule_done(s, b->sr, &b->ok, "flag");
    sweep_act_next_rule(s);
}

/* --- dry runs -------------------------------------------------------------- */

static void
dry_audit(struct sweep *s, struct sweep_rule *sr)
{
    sr->stat.acted += uidset_count(&sr->final);
    audit_set(s, sr, action_verb(s, sr), &sr->final, true);
}

/* A LIST of a dry run's target: does it exist (and can take mail)? */
struct probe {
    struct sweep *s;
    struct sweep_rule *sr;
    char *target;
    bool exists;
};

static bool
probe_untagged(struct imap_conn *c, const struct imap_response *r, void *arg)
{
    struct probe *p = arg;
    const struct imap_arg *flags, *a;
    const char *name;
    size_t len;
    bool usable = true;
    struct buf dec;

    if (r->name == NULL || strcmp(r->name, "LIST") != 0)
        return false;
    flags = r->args;
    if (flags == NULL || flags->type != IMAP_ARG_LIST || flags->next == NULL ||
        !imap_arg_get_astring(flags->next->next, &name, &len))
        return true;
    for (a = flags->list; a != NULL; a = a->next) {
        if (imap_arg_is_atom(a, "\\NONEXISTENT") ||
            imap_arg_is_atom(a, "\\NOSELECT"))
            usable = false;
    }
    buf_init(&dec, BUF_NOCAP);
    if (imap_conn_utf8(c) || imap_utf7_decode(name, len, &dec) < 0) {
        buf_reset(&dec);
        buf_append(&dec, name, len);
    }
    /* the name is a pattern: % and * in it could list others */
    if (usable && same_mailbox(buf_cstr(&dec), p->target))
        p->exists = true;
    buf_free(&dec);
    return true;
}

static void
probe_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct probe *p = arg;
    struct sweep *s = p->s;
    struct sweep_rule *sr = p->sr;

    (void)c;
    /* a server that will not LIST the name: no answer, preview as usual */
    if (r->status == IMAP_NO || r->status == IMAP_BAD)
        p->exists = true;
    else
        sweep_reply_ok(s, r, "LIST");
    if (!sweep_stopped(s)) {
        if (p->exists) {
            dry_audit(s, sr);
        } else if (may_create(sr)) {
            struct log_fields f = {.rule = rname(sr),
                                   .action = "would_create",
                                   .dry_run = true};

            log_ctx_fields(&s->log, LL_INFO, &f,
                           "%s: would create mailbox \"%s\"",
                           sr->rule->name, p->target);
            dry_audit(s, sr);
        } else {
            missing_target(s, sr, p->target, true);
        }
        sweep_act_next_rule(s);
    }
    free(p->target);
    free(p);
    sweep_cmd_finished(s);
}

static void
probe_target(struct sweep *s, struct sweep_rule *sr, const char *target)
{
    struct imap_build *b = imap_conn_build(s->p.conn);
    struct probe *p = xcalloc(1, sizeof(*p));

    p->s = s;
    p->sr = sr;
    p->target = xstrdup(target);
    imap_build_atom(b, "LIST");
    imap_build_string(b, "", 0);
    imap_build_mailbox(b, target);
    if (sweep_submit(s, b, probe_done, probe_untagged, NULL, p) < 0) {
        free(p->target);
        free(p);
    }
}

static void
act_rule(struct sweep *s, struct sweep_rule *sr)
{
    const struct uidset *set = &sr->final;
    enum rule_action action = sr->rule->action;
    bool moves = action == RULE_ACTION_TRASH || action == RULE_ACTION_MOVE ||
                 gmail_trashes(s, sr);

    if (moves && target_of(s, sr) == NULL) {
        no_trash(s, sr);
        sweep_act_next_rule(s);
        return;
    }
    if (sr->dry) {
        const char *target = moves ? target_of(s, sr) : NULL;

        /* a preview says what would happen to the target too: a read-only
         * LIST tells whether it exists (and would be created) */
        if (target != NULL && !same_mailbox(target, s->mailbox)) {
            probe_target(s, sr, target);
            return;
        }
        dry_audit(s, sr);
        sweep_act_next_rule(s);
        return;
    }
    if (moves) {
        const char *target = target_of(s, sr);

        if (same_mailbox(target, s->mailbox)) {
            /* moving a message onto itself is no action: skip, once */
            char *t = xasprintf("rule %s moves to the mailbox it sweeps "
                                "(%s): nothing done", sr->rule->name,
                                target);

            sweep_note(s, t);
            free(t);
            sweep_act_next_rule(s);
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

void
sweep_act_next_rule(struct sweep *s)
{
    while (!sweep_stopped(s) && s->act_index < s->n_rules) {
        struct sweep_rule *sr = &s->rules[s->act_index++];

        if (uidset_empty(&sr->final))
            continue;
        if (!sweep_mailbox_unchanged(s))
            return;
        if (imap_conn_mailbox(s->p.conn)->readonly && !sr->dry) {
            sweep_set_error(s, ERR_BAD_STATE,
                            "mailbox is read-only: nothing acted on");
            return;
        }
        act_rule(s, sr);
        return;
    }
}
