/* SPDX-License-Identifier: MIT */
#include "gate.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

struct gate {
    struct gate *next;
    char *host;
    unsigned active;
    unsigned waiting;
    struct gate_waiter *head, **tailp;
    unsigned slots;
};

struct gate_set {
    struct gate *gates;
    unsigned slots;
};

struct gate_set *
gate_set_new(unsigned slots)
{
    struct gate_set *gs = xcalloc(1, sizeof(*gs));

    gs->slots = slots ? slots : GATE_DEFAULT_SLOTS;
    return gs;
}

void
gate_set_free(struct gate_set *gs)
{
    struct gate *g, *next;

    if (gs == NULL)
        return;
    for (g = gs->gates; g != NULL; g = next) {
        next = g->next;
        free(g->host);
        free(g);
    }
    free(gs);
}

static struct gate *
find(const struct gate_set *gs, const char *host)
{
    for (struct gate *g = gs->gates; g != NULL; g = g->next) {
        if (strcmp(g->host, host) == 0)
            return g;
    }
    return NULL;
}

static void
admit_next(struct gate *g)
{
    while (g->active < g->slots && g->head != NULL) {
        struct gate_waiter *w = g->head;

        g->head = w->next;
        if (g->head == NULL)
            g->tailp = &g->head;
        w->next = NULL;
        w->queued = false;
        w->admitted = true;
        g->waiting--;
        g->active++;
        w->cb(w, w->arg);
    }
}

void
gate_acquire(struct gate_set *gs, const char *host, struct gate_waiter *w,
             gate_cb *cb, void *arg)
{
    struct gate *g = find(gs, host ? host : "");

    if (g == NULL) {
        g = xcalloc(1, sizeof(*g));
        g->host = xstrdup(host ? host : "");
        g->tailp = &g->head;
        g->slots = gs->slots;
        g->next = gs->gates;
        gs->gates = g;
    }
    gate_release(w);
    w->gate = g;
    w->cb = cb;
    w->arg = arg;
    w->queued = true;
    w->next = NULL;
    *g->tailp = w;
    g->tailp = &w->next;
    g->waiting++;
    admit_next(g);
}

void
gate_release(struct gate_waiter *w)
{
    struct gate *g = w->gate;

    if (g == NULL)
        return;
    if (w->queued) {
        struct gate_waiter **pp = &g->head;

        while (*pp != NULL && *pp != w)
            pp = &(*pp)->next;
        if (*pp == w) {
            *pp = w->next;
            if (g->tailp == &w->next)
                g->tailp = pp;
            g->waiting--;
        }
        w->queued = false;
        w->gate = NULL;
        return;
    }
    if (w->admitted) {
        w->admitted = false;
        w->gate = NULL;
        g->active--;
        admit_next(g);
    }
}

void
gate_counts(const struct gate_set *gs, const char *host, unsigned *active_r,
            unsigned *waiting_r)
{
    const struct gate *g = find(gs, host ? host : "");

    *active_r = g ? g->active : 0;
    *waiting_r = g ? g->waiting : 0;
}
