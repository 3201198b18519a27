/* SPDX-License-Identifier: MIT */
#include "metrics.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ctl_proto.h"
#include "util.h"

/* The states a watcher can be in, as the status names them: each is
 * always exported, 0 included, so that a query for one never finds no
 * series. */
static const char *const states[] = {
    "connecting", "authenticating", "selecting", "sweeping",
    "idle", "polling", "backoff", "error",
};

static void
family(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: \ " and newline escaped, the rest as it is (UTF-8). */
static void
label(struct buf *b, const char *name, const char *value, bool first)
{
    buf_printf(b, "%s%s=\"", first ? "" : ",", name);
    for (const char *p = value ? value : ""; *p; p++) {
        if (*p == '\\')
            buf_append_str(b, "\\\\");
        else if (*p == '"')
            buf_append_str(b, "\\\"");
        else if (*p == '\n')
            buf_append_str(b, "\\n");
        else
            buf_append_char(b, *p);
    }
    buf_append_char(b, '"');
}

static void
mailbox_labels(struct buf *b, const struct ctl_result_watcher *w)
{
    label(b, "account", w->account, true);
    label(b, "mailbox", w->mailbox, false);
}

static void
up(struct buf *b, int value)
{
    family(b, "imapsweep_up", "gauge",
           "1 if imapsweepctl read the daemon's status, 0 if no daemon "
           "answered.");
    buf_printf(b, "imapsweep_up %d\n", value);
}

static void
actions(struct buf *b, const struct ctl_result *r, bool dry)
{
    for (size_t i = 0; i < r->n_watchers; i++) {
        const struct ctl_result_watcher *w = &r->watchers[i];

        for (size_t k = 0; k < w->n_counts; k++) {
            const struct ctl_result_count *c = &w->counts[k];
            bool is_dry = strncmp(c->kind, "would_", 6) == 0;

            if (is_dry != dry)
                continue;
            buf_printf(b, "%s{", dry ? "imapsweep_dry_run_actions_total"
                                     : "imapsweep_actions_total");
            mailbox_labels(b, w);
            label(b, "rule", c->rule, false);
            label(b, "action", dry ? c->kind + 6 : c->kind, false);
            buf_printf(b, "} %lld\n", c->n);
        }
    }
}

static void
histogram(struct buf *b, const struct ctl_result *r, const char *type,
          const struct ctl_result_hist *h)
{
    const char *name = "imapsweep_sweep_duration_seconds";

    for (size_t i = 0; i < r->n_bounds; i++)
        buf_printf(b, "%s_bucket{type=\"%s\",le=\"%g\"} %lld\n", name, type,
                   r->bounds[i], h->le[i]);
    buf_printf(b, "%s_bucket{type=\"%s\",le=\"+Inf\"} %lld\n", name, type,
               h->count);
    buf_printf(b, "%s_sum{type=\"%s\"} %.6f\n", name, type, h->sum);
    buf_printf(b, "%s_count{type=\"%s\"} %lld\n", name, type, h->count);
}

char *
metrics_render(const struct ctl_result *r, uint64_t now)
{
    struct buf b;
    size_t n_state[ARRAY_SIZE(states)];

    buf_init(&b, BUF_NOCAP);
    up(&b, 1);
    family(&b, "imapsweep_build_info", "gauge",
           "The daemon's version, in the label; always 1.");
    buf_append_str(&b, "imapsweep_build_info{");
    label(&b, "version", r->version, true);
    buf_append_str(&b, "} 1\n");
    family(&b, "imapsweep_start_time_seconds", "gauge",
           "When the daemon started, in seconds since the epoch.");
    buf_printf(&b, "imapsweep_start_time_seconds %lld\n",
               (long long)now - r->uptime_s);
    family(&b, "imapsweep_config_generation", "gauge",
           "1 at start, one more for each successful reload.");
    buf_printf(&b, "imapsweep_config_generation %lld\n", r->generation);
    family(&b, "imapsweep_dry_run", "gauge",
           "1 if the daemon acts on nothing (--dry-run or daemon.dry_run).");
    buf_printf(&b, "imapsweep_dry_run %d\n", r->dry_run ? 1 : 0);

    memset(n_state, 0, sizeof(n_state));
    for (size_t i = 0; i < r->n_watchers; i++) {
        for (size_t k = 0; k < ARRAY_SIZE(states); k++) {
            if (r->watchers[i].state != NULL &&
                strcmp(r->watchers[i].state, states[k]) == 0)
                n_state[k]++;
        }
    }
    family(&b, "imapsweep_watchers", "gauge",
           "Watched mailboxes by state.");
    for (size_t k = 0; k < ARRAY_SIZE(states); k++)
        buf_printf(&b, "imapsweep_watchers{state=\"%s\"} %zu\n", states[k],
                   n_state[k]);

    family(&b, "imapsweep_actions_total", "counter",
           "Messages acted on, by mailbox, rule and action (delete, trash, "
           "move, flag), since the watcher started.");
    actions(&b, r, false);
    family(&b, "imapsweep_dry_run_actions_total", "counter",
           "Messages a rule in dry run would have acted on.");
    actions(&b, r, true);

    family(&b, "imapsweep_reconnects_total", "counter",
           "Connections lost and made again, by mailbox.");
    for (size_t i = 0; i < r->n_watchers; i++) {
        buf_append_str(&b, "imapsweep_reconnects_total{");
        mailbox_labels(&b, &r->watchers[i]);
        buf_printf(&b, "} %lld\n", r->watchers[i].reconnects);
    }
    family(&b, "imapsweep_watcher_healthy", "gauge",
           "1 if the mailbox is watched without error, 0 in backoff, in "
           "error, or when its last sweep or action failed.");
    for (size_t i = 0; i < r->n_watchers; i++) {
        buf_append_str(&b, "imapsweep_watcher_healthy{");
        mailbox_labels(&b, &r->watchers[i]);
        buf_printf(&b, "} %d\n",
                   ctl_watcher_healthy(&r->watchers[i]) ? 1 : 0);
    }
    family(&b, "imapsweep_last_sweep_timestamp_seconds", "gauge",
           "When the last sweep of the mailbox ended, in seconds since the "
           "epoch (absent before the first).");
    for (size_t i = 0; i < r->n_watchers; i++) {
        if (r->watchers[i].last_sweep_unix == 0)
            continue;
        buf_append_str(&b, "imapsweep_last_sweep_timestamp_seconds{");
        mailbox_labels(&b, &r->watchers[i]);
        buf_printf(&b, "} %lld\n", r->watchers[i].last_sweep_unix);
    }
    if (r->has_hist) {
        family(&b, "imapsweep_sweep_duration_seconds", "histogram",
               "How long sweeps took, full (after SELECT, every "
               "full_sweep_interval, on request) or incremental (new "
               "mail), over every mailbox since the daemon started.");
        histogram(&b, r, "full", &r->full);
        histogram(&b, r, "incremental", &r->incremental);
    }
    return buf_steal(&b);
}

char *
metrics_render_down(void)
{
    struct buf b;

    buf_init(&b, BUF_NOCAP);
    up(&b, 0);
    return buf_steal(&b);
}
