/* SPDX-License-Identifier: MIT */
/* secret: reads an account's password or token from its source
 * when a connection authenticates: a file, a command's first output line, a
 * systemd credential, an environment variable, the inline value, or a
 * token command. secret_fetch() caches nothing; the account's
 * secret_cache keeps a command's result for all its connections. Every
 * buffer that held the secret is wiped. Commands run through /bin/sh
 * without blocking the loop. */
#ifndef IMAPSWEEP_SECRET_H
#define IMAPSWEEP_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"

/* err is 0 and secret holds len bytes (NUL-terminated; the callee owns it
 * and must release it with util_free_secret), or err is an errors.h code,
 * msg says why (never containing the secret) and secret is NULL. With err
 * 0, msg is NULL or a warning for the log: the password_file is readable
 * by group or others (said once per file and mode in a process). */
typedef void secret_cb(void *arg, int err, const char *msg, char *secret,
                       size_t len);

struct secret_req;

/* Start fetching. cb runs from the loop, never inside this call, exactly
 * once unless the request is cancelled. timeout_ms bounds commands. */
struct secret_req *secret_fetch(uv_loop_t *loop,
                                const struct config_secret *src,
                                uint64_t timeout_ms, secret_cb *cb,
                                void *arg);
/* Cancel: cb will not run; a running command is killed. Only valid
 * before cb ran. NULL-safe. */
void secret_cancel(struct secret_req *req);
/* What kind of source it is, for messages ("password_file"). */
const char *secret_kind_name(enum config_secret_kind kind);

/* --- one account's secret, shared (secret_cache.c) ------------------------
 * A password_command or token_command runs once for all of an account's
 * connections, not once per connection: its result is kept in memory (never
 * written anywhere) until secret_cache_drop() (the server refused it, or a
 * reload), or, for a token that is a JWT, until a minute before its exp
 * claim; it is wiped when dropped. Concurrent gets share one run. Other
 * sources are read at each get, as secret_fetch() does.
 *
 * Reference-counted: the account holds one, and every session that uses
 * it holds its own, so a cache outlives whichever goes first. */
struct secret_cache;
struct secret_cache_req;

/* Like secret_cb; cached is true when the secret is a kept copy (one that
 * a refusal should drop and fetch again), false when it was just read. A
 * warning about the source (err 0, msg set) goes to the first of the gets
 * that shared one read. */
typedef void secret_cache_cb(void *arg, int err, const char *msg,
                             char *secret, size_t len, bool cached);

/* src is copied; timeout_ms bounds commands. One reference. */
struct secret_cache *secret_cache_new(uv_loop_t *loop,
                                      const struct config_secret *src,
                                      uint64_t timeout_ms);
struct secret_cache *secret_cache_ref(struct secret_cache *c);
/* At zero: a read in flight is cancelled, the secret wiped. NULL-safe. */
void secret_cache_unref(struct secret_cache *c);
/* cb runs once from the loop (never inside this call) unless cancelled. */
struct secret_cache_req *secret_cache_get(struct secret_cache *c,
                                          secret_cache_cb *cb, void *arg);
/* cb will not run. Only valid before cb ran. NULL-safe. */
void secret_cache_cancel(struct secret_cache_req *r);
/* Forget (wipe) the kept secret: the next get reads the source. NULL-safe. */
void secret_cache_drop(struct secret_cache *c);
/* How many times the source was read (status, tests). */
unsigned secret_cache_runs(const struct secret_cache *c);

#endif
