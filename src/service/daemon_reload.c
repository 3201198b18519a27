/* SPDX-License-Identifier: MIT */
#include "daemon.h"
#include "daemon_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "config.h"
#include "ctl_proto.h"
#include "log.h"
#include "notify.h"
#include "util.h"

/* --- configuration ---------------------------------------------------- */

void
daemon_print_diag(const struct config_diag *diag, FILE *f)
{
    for (size_t i = 0; i < diag->n_errors; i++) {
        char *line = config_diag_format(&diag->errors[i]);

        fprintf(f, "%s\n", line);
        free(line);
    }
}

void
daemon_log_warnings(const struct config_diag *diag)
{
    for (size_t i = 0; i < diag->n_warnings; i++) {
        char *line = config_diag_format(&diag->warnings[i]);

        log_warning("%s", line);
        free(line);
    }
}

int
daemon_check_config(const char *path, bool environment)
{
    struct config_diag diag;
    struct config *c = NULL;
    int ret;

    config_diag_init(&diag);
    ret = config_load(path, &c, &diag);
    /* the file is valid: look at what it names (secret files,
     * credentials) as the service will */
    if (ret == 0 && environment && config_check_environment(c, &diag) > 0) {
        config_unref(c);
        c = NULL;
        ret = -1;
    }
    for (size_t i = 0; i < diag.n_warnings; i++) {
        char *line = config_diag_format(&diag.warnings[i]);

        fprintf(stderr, "warning: %s\n", line);
        free(line);
    }
    if (ret < 0) {
        daemon_print_diag(&diag, stderr);
        config_diag_free(&diag);
        return CTL_EXIT_CONFIG;
    }
    printf("ok: %zu account%s, %zu mailbox%s, %zu rule%s\n", c->n_accounts,
           c->n_accounts == 1 ? "" : "s", config_count_mailboxes(c),
           config_count_mailboxes(c) == 1 ? "" : "es", c->n_rules,
           c->n_rules == 1 ? "" : "s");
    for (size_t i = 0; i < c->n_rules; i++) {
        char *line = config_rule_summary(c, i);

        printf("%s\n", line);
        free(line);
    }
    config_unref(c);
    config_diag_free(&diag);
    return 0;
}

/* --- accounts and reload ---------------------------------------------- */

void
daemon_add_account(struct daemon *d, struct account *a)
{
    ARRAY_GROW(d->accounts, d->cap_accounts, d->n_accounts + 1);
    d->accounts[d->n_accounts++] = a;
}

static void
on_retired(struct account *a, void *arg)
{
    struct daemon *d = arg;

    for (size_t i = 0; i < d->n_retired; i++) {
        if (d->retired[i] == a) {
            d->retired[i] = d->retired[--d->n_retired];
            break;
        }
    }
    account_free(a);
}

static void
retire(struct daemon *d, struct account *a)
{
    ARRAY_GROW(d->retired, d->cap_retired, d->n_retired + 1);
    d->retired[d->n_retired++] = a;
    account_stop(a, on_retired, d);
}

void
daemon_apply_log_level(struct daemon *d)
{
    log_set_level(d->opts.level_set ? d->opts.level
                                    : d->config->daemon.log_level);
}

const char *
daemon_control_socket(const struct daemon *d, const struct config *c)
{
    if (d->opts.control_socket != NULL)
        return d->opts.control_socket;
    if (c->daemon.control_socket != NULL)
        return c->daemon.control_socket;
    return d->default_socket;
}

static bool
str_eq_null(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* The transaction: the new config is complete and valid before anything
 * changes; then only the differences are applied. Returns 0, or -1 with
 * the errors in diag (initialised by the caller, who frees it). */
int
daemon_reload(struct daemon *d, struct config_diag *diag)
{
    struct config *nc = NULL, *old = d->config;
    struct account **keep;
    size_t n_keep = 0;
    char *line;

    notify_reloading(d->notify);
    log_info("reloading %s", d->opts.config_path);
    if (config_load(d->opts.config_path, &nc, diag) < 0) {
        for (size_t i = 0; i < diag->n_errors; i++) {
            char *e = config_diag_format(&diag->errors[i]);

            log_error("%s", e);
            free(e);
        }
        log_error("reload failed: %zu error%s; still running the previous "
                  "configuration", diag->n_errors,
                  diag->n_errors == 1 ? "" : "s");
        line = daemon_status_line(d);
        notify_ready(d->notify, line);
        free(line);
        return -1;
    }
    daemon_log_warnings(diag);

    keep = xcalloc(nc->n_accounts ? nc->n_accounts : 1, sizeof(*keep));
    for (size_t i = 0; i < nc->n_accounts; i++) {
        const struct config_account *na = &nc->accounts[i];
        struct account *a = NULL;

        for (size_t k = 0; k < d->n_accounts; k++) {
            if (d->accounts[k] != NULL &&
                strcmp(account_name(d->accounts[k]), na->name) == 0) {
                a = d->accounts[k];
                d->accounts[k] = NULL;
                break;
            }
        }
        if (a != NULL) {
            const struct config_account *oa =
                config_find_account(old, na->name);

            if (oa != NULL && !config_account_conn_differs(oa, na)) {
                account_update(a, nc, na);
                keep[n_keep++] = a;
                continue;
            }
            log_info("%s: connection settings changed: reconnecting",
                     na->name);
            retire(d, a);
        }
        keep[n_keep++] = account_new(&d->env, nc, na);
    }
    for (size_t k = 0; k < d->n_accounts; k++) {
        if (d->accounts[k] != NULL) {
            log_info("%s: account removed", account_name(d->accounts[k]));
            retire(d, d->accounts[k]);
        }
    }
    free(d->accounts);
    d->accounts = keep;
    d->n_accounts = n_keep;
    d->cap_accounts = nc->n_accounts;
    if (!str_eq_null(daemon_control_socket(d, old),
                     daemon_control_socket(d, nc)) ||
        old->daemon.control_mode != nc->daemon.control_mode)
        log_notice("control socket settings changed: they apply at the "
                   "next restart");
    d->config = nc;
    config_unref(old);
    d->generation++;
    daemon_apply_log_level(d);
    log_info("reloaded (generation %u)", d->generation);
    line = daemon_status_line(d);
    notify_ready(d->notify, line);
    free(line);
    return 0;
}

