/* secret: reads an account's password or token from its source
 * when a connection authenticates: a file, a command's first output line, a
 * systemd credential, an environment variable, the inline value, or a
 * token command. Nothing is cached; every buffer that held the secret is
 * wiped. Commands run through /bin/sh without blocking the loop. */
#ifndef IMAPSWEEP_SECRET_H
#define IMAPSWEEP_SECRET_H

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

#endif
