/* SPDX-License-Identifier: MIT */
/* session: an authenticated IMAP connection for an account. It waits for
 * an admission slot for the host, connects (implicit TLS, STARTTLS, plain
 * or a tunnel), fetches the secret from its source, logs in and wipes the
 * secret. Watchers and the account's poller build on it.
 *
 * Lifetime: the owner (a watcher or a poller) frees the session; no event
 * fires after session_free(). The session holds a reference to the
 * configuration its account settings come from until it is logged in (the
 * only time it reads them), so a reload that swaps the owner's
 * configuration cannot free them under a session still connecting. */
#ifndef IMAPSWEEP_SESSION_H
#define IMAPSWEEP_SESSION_H

#include <stdbool.h>

#include <uv.h>

#include "config.h"
#include "gate.h"
#include "imap_conn.h"

struct secret_cache;
struct tls_ctx;
struct transport_pool;
struct session;

struct session_env {
    uv_loop_t *loop;
    struct transport_pool *pool;
    struct gate_set *gates;
};

struct session_events {
    /* The server greeted; the secret is being fetched for the login. */
    void (*authenticating)(struct session *s, void *arg);
    /* Logged in (or PREAUTH): session_conn() is ready for commands. */
    void (*ready)(struct session *s, void *arg);
    /* Unsolicited data (EXISTS, EXPUNGE, UIDVALIDITY, NO/BAD alerts). */
    void (*untagged)(struct session *s, const struct imap_response *r,
                     void *arg);
    /* The session is over: err 0 after session_logout(), else why. auth is
     * true when the login was refused or the secret could not be read.
     * Runs at most once; the owner frees the session (also from here). */
    void (*closed)(struct session *s, int err, const char *msg, bool auth,
                   void *arg);
};

/* Start; events follow from the loop. acc belongs to config (a reference
 * is taken until the login is done). mailbox only labels log lines.
 * secrets: the account's secret cache (a reference is taken), or NULL to
 * read the source for this login only. A login refused with a kept secret
 * drops it and tries once more, on the same connection, with the source
 * read anew (an access token expired since it was kept). */
struct session *session_new(const struct session_env *env,
                            struct config *config,
                            const struct config_account *acc,
                            struct tls_ctx *tls,
                            struct secret_cache *secrets,
                            const char *mailbox,
                            const struct session_events *ev, void *arg);
/* The connection (NULL before it exists or after it closed). */
struct imap_conn *session_conn(const struct session *s);
/* A reload kept the account with the same connection settings: acc (in
 * config, the new configuration) replaces the one given to session_new()
 * (the reference moves with it). Nothing changes once the session is
 * logged in: it does not read its settings any more. NULL-safe. */
void session_set_account(struct session *s, struct config *config,
                         const struct config_account *acc);
/* LOGOUT after what is queued; `closed` follows with err 0. If the session
 * is not logged in yet it just ends (closed with err 0, from the loop). */
void session_logout(struct session *s);
/* End now; no event afterwards. NULL-safe, also from inside an event. */
void session_free(struct session *s);

#endif
