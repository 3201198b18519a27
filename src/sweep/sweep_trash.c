/* SPDX-License-Identifier: MIT */
/* sweep: where trash goes when the account names no trash_mailbox.
 *
 * 1. LIST finds the folder marked \Trash (RFC 6154 SPECIAL-USE); NAMESPACE
 *    (RFC 2342), sent with it, gives the personal namespace's prefix;
 * 2. where no folder is marked \Trash (Courier has no SPECIAL-USE at all),
 *    the one folder named Trash at the top of the personal namespace
 *    ("INBOX.Trash" on Courier and Cyrus, "Trash" where the prefix is
 *    empty), as Thunderbird and most clients do. None, or several (Trash
 *    and trash), and there is no trash: the rules that need one leave
 *    their matches alone and say why.
 *
 * The lookup runs with the first full sweep, pipelined with its searches,
 * so what it found (or why nothing) is said at start-up, once, as a note;
 * the answer is kept in the watcher's memo. A lookup that found nothing is
 * repeated at each full sweep, so a Trash created later is picked up. */
#include "sweep_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "imap_build.h"
#include "imap_utf7.h"
#include "log.h"
#include "util.h"

#define TRASH_NAME "Trash"

struct trash_lookup {
    struct sweep *s;
    unsigned pending;       /* commands of the current step in flight */
    bool special_use;       /* the server offers SPECIAL-USE */
    bool listed_all;        /* the first LIST named every folder */
    bool by_name;           /* the second step (LIST "" prefix%) ran */
    char *prefix_wire;      /* personal namespace prefix as sent (or NULL) */
    char *prefix;           /* the same in UTF-8 ("" when unknown) */
    char *marked;           /* the first folder marked \Trash */
    char **named;           /* folders whose last level is "Trash" */
    char *named_sep;        /* their hierarchy separators (0: none) */
    size_t n_named, cap_named;
    char *error;            /* a LIST refused: why */
};

void
sweep_trash_free(struct trash_lookup *tl)
{
    if (tl == NULL)
        return;
    free(tl->prefix_wire);
    free(tl->prefix);
    free(tl->marked);
    for (size_t i = 0; i < tl->n_named; i++)
        free(tl->named[i]);
    free(tl->named);
    free(tl->named_sep);
    free(tl->error);
    free(tl);
}

bool
sweep_trash_wanted(const struct sweep *s)
{
    const struct sweep_memo *m = s->p.memo;

    /* explain only evaluates: where trash would go is not its question */
    if (m == NULL || s->p.account->trash_mailbox != NULL ||
        s->p.evaluate_only)
        return false;
    /* found: kept; none: looked for again at each full sweep */
    if (m->trash_looked_up && (m->trash != NULL || !s->full))
        return false;
    for (size_t i = 0; i < s->n_rules; i++) {
        enum rule_action a = s->rules[i].rule->action;

        /* dry runs too: the preview should tell where mail would go */
        if (a == RULE_ACTION_TRASH || (a == RULE_ACTION_DELETE && s->gmail))
            return true;
    }
    return false;
}

/* A mailbox name from the wire in UTF-8 (caller frees). */
static char *
decode_name(struct imap_conn *c, const char *name, size_t len)
{
    struct buf dec;

    buf_init(&dec, BUF_NOCAP);
    if (imap_conn_utf8(c) || imap_utf7_decode(name, len, &dec) < 0) {
        buf_reset(&dec);
        buf_append(&dec, name, len);
    }
    return buf_steal(&dec);
}

/* --- NAMESPACE ----------------------------------------------------------- */

/* * NAMESPACE (("INBOX." ".")) NIL NIL: the first personal namespace. */
static bool
namespace_untagged(struct imap_conn *c, const struct imap_response *r,
                   void *arg)
{
    struct trash_lookup *tl = arg;
    const struct imap_arg *personal, *first;
    const char *prefix;
    size_t len, n;

    if (r->name == NULL || strcmp(r->name, "NAMESPACE") != 0)
        return false;
    if (tl->prefix_wire != NULL ||
        !imap_arg_get_list(r->args, &personal, &n) ||
        !imap_arg_get_list(personal, &first, &n) ||
        !imap_arg_get_astring(first, &prefix, &len) ||
        memchr(prefix, '\0', len) != NULL)
        return true;
    tl->prefix_wire = xstrndup(prefix, len);
    tl->prefix = decode_name(c, prefix, len);
    return true;
}

/* --- LIST ---------------------------------------------------------------- */

static bool
list_untagged(struct imap_conn *c, const struct imap_response *r, void *arg)
{
    struct trash_lookup *tl = arg;
    const struct imap_arg *flags = r->args, *a;
    const char *name, *delim = NULL, *leaf;
    size_t len, dlen = 0;
    bool marked = false;
    char *dec;

    if (r->name == NULL || strcmp(r->name, "LIST") != 0)
        return false;
    if (flags == NULL || flags->type != IMAP_ARG_LIST ||
        flags->next == NULL ||
        !imap_arg_get_nstring(flags->next, &delim, &dlen) ||
        !imap_arg_get_astring(flags->next->next, &name, &len) ||
        memchr(name, '\0', len) != NULL)
        return true;
    for (a = flags->list; a != NULL; a = a->next) {
        if (imap_arg_is_atom(a, "\\TRASH"))
            marked = true;
        if (imap_arg_is_atom(a, "\\NOSELECT") ||
            imap_arg_is_atom(a, "\\NONEXISTENT"))
            return true;
    }
    dec = decode_name(c, name, len);
    if (marked && tl->marked == NULL) {
        tl->marked = dec;
        return true;
    }
    leaf = dlen == 1 ? strrchr(dec, delim[0]) : NULL;
    leaf = leaf != NULL ? leaf + 1 : dec;
    if (strcasecmp(leaf, TRASH_NAME) == 0) {
        ARRAY_GROW(tl->named, tl->cap_named, tl->n_named + 1);
        tl->named_sep = xrealloc(tl->named_sep, tl->cap_named);
        tl->named_sep[tl->n_named] = dlen == 1 ? delim[0] : '\0';
        tl->named[tl->n_named++] = dec;
        return true;
    }
    free(dec);
    return true;
}

/* True if name is the personal prefix followed by one level (no
 * separator). INBOX is case-insensitive in the prefix. */
static bool
top_of_personal(const struct trash_lookup *tl, const char *name, char sep)
{
    const char *prefix = tl->prefix != NULL ? tl->prefix : "";
    size_t plen = strlen(prefix);
    const char *rest;

    if (plen >= 5 && strncasecmp(prefix, "INBOX", 5) == 0) {
        if (strncasecmp(name, "INBOX", 5) != 0 ||
            strncmp(name + 5, prefix + 5, plen - 5) != 0)
            return false;
    } else if (strncmp(name, prefix, plen) != 0) {
        return false;
    }
    rest = name + plen;
    return *rest != '\0' && (sep == '\0' || strchr(rest, sep) == NULL);
}

/* What the lookup found: the memo's trash, or a note saying why none. */
static void
decide(struct trash_lookup *tl)
{
    struct sweep *s = tl->s;
    struct sweep_memo *m = s->p.memo;
    const char *candidates[8];
    size_t n = 0;
    char *text;

    free(m->trash);
    m->trash = NULL;
    m->trash_looked_up = true;
    if (tl->marked != NULL) {
        m->trash = xstrdup(tl->marked);
        goto found;
    }
    for (size_t i = 0; i < tl->n_named; i++) {
        if (!top_of_personal(tl, tl->named[i], tl->named_sep[i]))
            continue;
        if (n < ARRAY_SIZE(candidates))
            candidates[n] = tl->named[i];
        n++;
    }
    if (tl->error == NULL && n == 1) {
        m->trash = xstrdup(candidates[0]);
        text = xasprintf("%s: trash goes to \"%s\", the one folder named "
                         "%s (set trash_mailbox to choose another)",
                         tl->special_use
                             ? "no folder is marked \\Trash (SPECIAL-USE)"
                             : "the server has no SPECIAL-USE",
                         m->trash, TRASH_NAME);
        sweep_note(s, text);
        free(text);
        goto found;
    }
    {
        struct buf why;

        buf_init(&why, BUF_NOCAP);
        buf_append_str(&why, "no \\Trash mailbox: ");
        if (tl->error != NULL) {
            buf_printf(&why, "cannot list the folders (%s)", tl->error);
        } else {
            buf_append_str(&why, tl->special_use
                                     ? "no folder is marked \\Trash "
                                       "(SPECIAL-USE)"
                                     : "the server has no SPECIAL-USE");
            if (n == 0) {
                buf_printf(&why, " and no folder is named \"%s%s\"",
                           tl->prefix != NULL ? tl->prefix : "", TRASH_NAME);
            } else {
                buf_printf(&why, " and %zu folders are named %s (", n,
                           TRASH_NAME);
                for (size_t i = 0; i < n && i < ARRAY_SIZE(candidates); i++)
                    buf_printf(&why, "%s\"%s\"", i ? ", " : "",
                               candidates[i]);
                buf_append_str(&why, n > ARRAY_SIZE(candidates) ? ", …)"
                                                                : ")");
            }
        }
        buf_append_str(&why, "; set trash_mailbox");
        free(m->trash_none);
        m->trash_none = buf_steal(&why);
        sweep_note(s, m->trash_none);
        return;
    }
found:
    /* a Trash found after all: the old "none" note no longer holds */
    if (m->trash_none != NULL) {
        sweep_note_drop(s, m->trash_none);
        free(m->trash_none);
        m->trash_none = NULL;
    }
}

static void list_done(struct imap_conn *c, const struct imap_reply *r,
                      void *arg);

static void
submit_list(struct trash_lookup *tl, bool special_use_only,
            const char *pattern)
{
    struct sweep *s = tl->s;
    struct imap_build *b = imap_conn_build(s->p.conn);

    imap_build_atom(b, "LIST");
    if (special_use_only) {
        imap_build_list_open(b);
        imap_build_atom(b, "SPECIAL-USE");
        imap_build_list_close(b);
    }
    imap_build_string(b, "", 0);
    imap_build_string(b, pattern, strlen(pattern));
    if (sweep_submit(s, b, list_done, list_untagged, NULL, tl) == 0)
        tl->pending++;
}

/* The folders named Trash at the top of the personal namespace. */
static void
list_by_name(struct trash_lookup *tl)
{
    char *pattern = xasprintf("%s%%",
                              tl->prefix_wire ? tl->prefix_wire : "");

    tl->by_name = true;
    submit_list(tl, false, pattern);
    free(pattern);
}

/* Both commands of a step answered: the next step, or the answer. */
static void
step_done(struct trash_lookup *tl)
{
    struct sweep *s = tl->s;

    tl->pending--;
    if (tl->pending > 0 || sweep_stopped(s) || s->detached)
        return;
    if (tl->marked == NULL && tl->error == NULL && !tl->listed_all &&
        !tl->by_name)
        list_by_name(tl);
    else
        decide(tl);
}

static void
namespace_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct trash_lookup *tl = arg;
    struct sweep *s = tl->s;

    (void)c;
    /* refused: no prefix, names are taken from the top level */
    if (r->status != IMAP_OK && r->status != IMAP_NO && r->status != IMAP_BAD)
        sweep_reply_ok(s, r, "NAMESPACE");
    step_done(tl);
    sweep_cmd_finished(s);
}

static void
list_done(struct imap_conn *c, const struct imap_reply *r, void *arg)
{
    struct trash_lookup *tl = arg;
    struct sweep *s = tl->s;

    (void)c;
    if (r->status == IMAP_NO || r->status == IMAP_BAD) {
        /* not the sweep's failure: no trash, and the note says why */
        if (tl->error == NULL)
            tl->error = xasprintf("LIST: %s %s", imap_status_name(r->status),
                                  r->text ? r->text : "");
    } else if (r->status != IMAP_OK) {
        sweep_reply_ok(s, r, "LIST");
    }
    step_done(tl);
    sweep_cmd_finished(s);
}

void
sweep_trash_lookup(struct sweep *s)
{
    struct trash_lookup *tl = xcalloc(1, sizeof(*tl));
    struct imap_conn *c = s->p.conn;

    tl->s = s;
    sweep_trash_free(s->trash_lookup);
    s->trash_lookup = tl;
    tl->special_use = imap_conn_has_cap(c, "SPECIAL-USE");
    if (imap_conn_has_cap(c, "NAMESPACE")) {
        struct imap_build *b = imap_conn_build(c);

        imap_build_atom(b, "NAMESPACE");
        if (sweep_submit(s, b, namespace_done, namespace_untagged, NULL,
                         tl) == 0)
            tl->pending++;
    }
    /* With LIST-EXTENDED, only the special-use folders; the folders named
     * Trash are listed afterwards if none is marked. */
    tl->listed_all = !(tl->special_use &&
                       imap_conn_has_cap(c, "LIST-EXTENDED"));
    submit_list(tl, !tl->listed_all, "*");
}
