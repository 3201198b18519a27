/* SPDX-License-Identifier: MIT */
/* gate: admits connection set-ups a few at a time per host, so that a start
 * or a reload with hundreds of watchers does not stampede a server (and
 * does not trip per-IP login limits). Waiters are served in FIFO order. */
#ifndef IMAPSWEEP_GATE_H
#define IMAPSWEEP_GATE_H

#include <stdbool.h>
#include <stddef.h>

#define GATE_DEFAULT_SLOTS 8

struct gate_set;
struct gate_waiter;

typedef void gate_cb(struct gate_waiter *w, void *arg);

/* Embedded in the waiting object; zero-initialise it. */
struct gate_waiter {
    struct gate_waiter *next;
    struct gate *gate;       /* set while queued or admitted */
    bool queued, admitted;
    gate_cb *cb;
    void *arg;
};

struct gate_set *gate_set_new(unsigned slots_per_host);
/* All waiters must have been released or cancelled. NULL-safe. */
void gate_set_free(struct gate_set *gs);

/* Ask for a slot for host; cb runs when admitted — possibly inside this
 * call, when a slot is free. */
void gate_acquire(struct gate_set *gs, const char *host,
                  struct gate_waiter *w, gate_cb *cb, void *arg);
/* Give the slot back (admitted) or leave the queue (waiting); the next
 * waiter may be admitted inside this call. Safe on an idle waiter. */
void gate_release(struct gate_waiter *w);
/* Number of set-ups in progress and waiting for host. */
void gate_counts(const struct gate_set *gs, const char *host,
                 unsigned *active_r, unsigned *waiting_r);

#endif
