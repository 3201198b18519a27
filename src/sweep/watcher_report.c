/* SPDX-License-Identifier: MIT */
/* What a watcher reports: state names, counts, the status, the sweep
 * duration histogram, and the note that the server's IDLE only polls
 * (idle_beat.h says how that is found). */
#include "watcher_private.h"

#include <stdlib.h>
#include <string.h>

#include "units.h"
#include "util.h"

static const char *const state_names[] = {
    [WATCHER_CONNECTING] = "connecting",
    [WATCHER_AUTHENTICATING] = "authenticating",
    [WATCHER_SELECTING] = "selecting",
    [WATCHER_SWEEPING] = "sweeping",
    [WATCHER_IDLE] = "idle",
    [WATCHER_POLLING] = "polling",
    [WATCHER_BACKOFF] = "backoff",
    [WATCHER_ERROR] = "error",
    [WATCHER_STOPPED] = "stopped",
};

const char *
watcher_state_name(enum watcher_state s)
{
    return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

const uint64_t watcher_sweep_bounds_us[WATCHER_SWEEP_BUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000, UINT64_MAX,
};

void
watcher_sweep_hist_add(struct watcher_sweep_hist *h, uint64_t us)
{
    h->count++;
    h->sum_us += us;
    for (size_t i = 0; i < WATCHER_SWEEP_BUCKETS; i++) {
        if (us <= watcher_sweep_bounds_us[i])
            h->le[i]++;
    }
}

void
watcher_add_count(struct watcher *w, const struct sweep_stat *st)
{
    const char *action = rule_action_name(st->action);

    if (st->acted == 0)
        return;
    for (size_t i = 0; i < w->n_counts; i++) {
        struct watcher_count *c = &w->counts[i];

        if (strcmp(c->rule, st->rule) == 0 && strcmp(c->action, action) == 0
            && c->dry == st->dry) {
            c->n += st->acted;
            return;
        }
    }
    ARRAY_GROW(w->counts, w->cap_counts, w->n_counts + 1);
    w->counts[w->n_counts].rule = xstrdup(st->rule);
    util_strlcpy(w->counts[w->n_counts].action, action,
                 sizeof(w->counts[w->n_counts].action));
    w->counts[w->n_counts].dry = st->dry;
    w->counts[w->n_counts].n = st->acted;
    w->n_counts++;
}

/* A change the server announced while idling (not in answer to one of
 * our commands): when, after that IDLE began, tells a polling IDLE from a
 * pushing one (idle_beat.h). One sample per IDLE: an EXISTS often comes
 * with a RECENT or FETCH in the same breath. */
void
watcher_sample_idle_change(struct watcher *w, const struct imap_response *r)
{
    uint64_t since, now;

    if (w->session == NULL || w->conn == NULL || w->visiting ||
        (strcmp(r->name, "EXISTS") != 0 && strcmp(r->name, "EXPUNGE") != 0 &&
         strcmp(r->name, "FETCH") != 0) ||
        !imap_conn_idle_since(w->conn, &since) ||
        since == w->beat_idle_since)
        return;
    w->beat_idle_since = since;
    now = uv_now(w->env->session.loop);
    log_ctx_msg(&w->log, LL_DEBUG, "%s announced %.3f s into IDLE", r->name,
                (double)(now - since) / 1000.0);
    if (idle_beat_add(&w->beat, now - since)) {
        char refresh[32];
        char *text = xasprintf(
            "IDLE on this server polls: changes arrive only every %.1f s "
            "(on a beat from the start of IDLE), so new mail can wait that "
            "long; idle_refresh (now %s) bounds the wait: set it lower",
            (double)w->beat.beat_ms / 1000.0,
            units_format_duration(w->acc->idle_refresh, refresh,
                                  sizeof(refresh)));

        (void)sweep_memo_note(&w->memo, &w->log, text);
        free(text);
        watcher_changed(w);
    }
}

const char *
watcher_mailbox(const struct watcher *w)
{
    return w->mailbox;
}

bool
watcher_is_shared(const struct watcher *w)
{
    return w->shared;
}

void
watcher_status(const struct watcher *w, struct watcher_status *st)
{
    memset(st, 0, sizeof(*st));
    st->account = w->account;
    st->mailbox = w->mailbox;
    st->state = w->state;
    st->state_since = w->state_since;
    st->shared = w->shared;
    st->capabilities = w->caps ? w->caps : "";
    st->uidvalidity = w->uidvalidity;
    st->messages = w->exists;
    st->uid_swept = w->uid_swept;
    st->counts = w->counts;
    st->n_counts = w->n_counts;
    st->last_sweep = w->last_sweep;
    st->last_sweep_ms = w->last_sweep_ms;
    st->reconnects = w->reconnects;
    st->last_error = w->last_error;
    st->notes = (const char *const *)w->memo.notes;
    st->n_notes = w->memo.n_notes;
}

uint64_t
watcher_total_actions(const struct watcher *w)
{
    uint64_t n = 0;

    for (size_t i = 0; i < w->n_counts; i++) {
        if (!w->counts[i].dry)
            n += w->counts[i].n;
    }
    return n;
}

bool
watcher_is_watching(const struct watcher *w)
{
    return w->state == WATCHER_IDLE || w->state == WATCHER_POLLING ||
           w->state == WATCHER_SWEEPING;
}
