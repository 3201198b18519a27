/* SPDX-License-Identifier: MIT */
/* The sweep-layer test world: see world.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "world.h"

#include "config.h"
#include "util.h"

static void
on_changed(void *arg)
{
    ((struct world *)arg)->changed++;
}

static void
on_once_done(struct watcher *wt, bool ok, void *arg)
{
    struct world *w = arg;

    (void)wt;
    if (ok)
        w->once_ok++;
    else
        w->once_failed++;
}

static struct config *
load(const char *yaml)
{
    struct config *c = NULL;
    struct config_diag diag;

    config_diag_init(&diag);
    if (config_load_buffer("test.yaml", yaml, strlen(yaml), &c, &diag) < 0) {
        char *e = diag.n_errors ? config_diag_format(&diag.errors[0])
                                : xstrdup("?");

        fail_msg("bad test configuration: %s", e);
    }
    config_diag_free(&diag);
    return c;
}

void
world_init(struct world *w, const char *yaml)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->pool = transport_pool_new(&w->loop);
    w->net = fakenet_new(&w->loop);
    fakenet_attach(w->net, w->pool);
    w->gates = gate_set_new(GATE_DEFAULT_SLOTS);
    w->env.session.loop = &w->loop;
    w->env.session.pool = w->pool;
    w->env.session.gates = w->gates;
    w->env.changed = on_changed;
    w->env.once_done = on_once_done;
    w->env.arg = w;
    w->config = load(yaml);
}

struct config *
world_reload(struct world *w, const char *yaml)
{
    struct config *old = w->config;

    w->config = load(yaml);
    return old;
}

const struct config_account *
world_account(const struct world *w, const char *name)
{
    const struct config_account *a = config_find_account(w->config, name);

    assert_non_null(a);
    return a;
}

void
world_end(struct world *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
    transport_pool_free(w->pool);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    fakenet_free(w->net);
    gate_set_free(w->gates);
    config_unref(w->config);
    assert_int_equal(uv_loop_close(&w->loop), 0);
}
