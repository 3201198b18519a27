/* SPDX-License-Identifier: MIT */
/* A world for transcript tests of the sweep layer (sessions, watchers,
 * pollers, accounts): a loop, a transport pool whose every connection is a
 * scripted fakesrv, a gate set, the watcher_env the daemon would give, and
 * configurations loaded from YAML text. Uses cmocka assertions. */
#ifndef IMAPSWEEP_WORLD_H
#define IMAPSWEEP_WORLD_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "config.h"
#include "gate.h"
#include "testlib.h"
#include "transport.h"
#include "watcher.h"

struct world {
    uv_loop_t loop;
    struct transport_pool *pool;
    struct gate_set *gates;
    struct fakenet *net;
    struct watcher_env env;
    struct config *config;      /* the newest configuration (one ref) */
    unsigned changed;           /* env.changed calls */
    unsigned once_ok, once_failed;
};

/* Start a world with the configuration yaml (must be valid). */
void world_init(struct world *w, const char *yaml);
/* Load yaml as the newest configuration and return the previous one: the
 * caller applies the new one (account_update, watcher_update) and then
 * drops the old one with config_unref, as the daemon's reload does. */
struct config *world_reload(struct world *w, const char *yaml);
/* The account called name in the newest configuration. */
const struct config_account *world_account(const struct world *w,
                                           const char *name);
/* After the test freed what it made: run the loop until every handle is
 * closed, free the pool, the gates, the network and the configuration,
 * and assert that the loop has nothing left. */
void world_end(struct world *w);

#endif
