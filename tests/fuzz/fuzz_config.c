/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the configuration loader: any input must give either
 * a config or diagnostics, never a crash, a leak or an endless walk. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_diag diag;
    struct config *c = NULL;

    config_diag_init(&diag);
    if (config_load_buffer("fuzz.yaml", (const char *)data, size, &c,
                           &diag) == 0) {
        /* exercise the accessors on what was accepted */
        for (size_t i = 0; i < c->n_accounts; i++) {
            (void)config_find_account(c, c->accounts[i].name);
            (void)config_account_conn_differs(&c->accounts[i],
                                              &c->accounts[0]);
        }
        for (size_t i = 0; i < c->n_rules; i++)
            free(rule_canonical(c->rules[i]));
        (void)config_count_mailboxes(c);
        config_unref(config_ref(c));
        config_unref(c);
    } else if (c != NULL) {
        abort();  /* config_r must be untouched on failure */
    }
    for (size_t i = 0; i < diag.n_errors; i++)
        free(config_diag_format(&diag.errors[i]));
    for (size_t i = 0; i < diag.n_warnings; i++)
        free(config_diag_format(&diag.warnings[i]));
    config_diag_free(&diag);
    return 0;
}
