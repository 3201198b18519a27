/* SPDX-License-Identifier: MIT */
/* control: the control socket, a Unix stream socket. One request line in,
 * one reply line out (their form is ctl_proto.h's); the connection stays
 * open for more. Peers are checked with SO_PEERCRED (root, the daemon's own
 * user, or members of control_group). A request over 4 KiB or not UTF-8
 * gets an error and the connection is closed; an unknown request keeps it
 * usable. All I/O is non-blocking on the loop; a client that does not read
 * its replies is dropped rather than allowed to make the daemon buffer
 * without bound, and so is a client that sends no complete request for
 * CONTROL_IDLE_TIMEOUT_MS (after connecting, or after its last reply;
 * the clock stops while a deferred reply is owed to it):
 * one that says nothing, stops in the middle of a request or trickles it
 * byte by byte would otherwise hold one of the CONTROL_MAX_CLIENTS slots
 * for ever. Knows nothing of IMAP: the daemon supplies the commands. */
#ifndef IMAPSWEEP_CONTROL_H
#define IMAPSWEEP_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

struct control;

#define CONTROL_MAX_REQUEST 4096
#define CONTROL_MAX_CLIENTS 256
/* A client gets this long for each complete request line. */
#define CONTROL_IDLE_TIMEOUT_MS 60000

/* A request whose reply comes later (a command that talks to a server). */
struct control_req;

/* A command handler: args are the request's words after the command.
 * Returns the reply line without its newline (a ctl_reply_*() text), which
 * the caller frees; or NULL to answer later through req with
 * control_req_reply(). Until then the client's further requests wait, so
 * replies stay in order. */
typedef char *control_cmd_fn(void *arg, const char *const *args,
                             size_t n_args, struct control_req *req);

/* Send the deferred reply (text is taken) and free req. Exactly once per
 * deferred request; if the client went away meanwhile the text is dropped.
 * Valid after control_free() too. */
void control_req_reply(struct control_req *req, char *text);

struct control_cmd {
    const char *name;
    control_cmd_fn *fn;
    size_t min_args, max_args;
};

struct control_settings {
    const char *path;          /* socket to create (when fd < 0) */
    int fd;                    /* a listening socket from systemd, or -1 */
    mode_t mode;
    const char *group;         /* NULL: none */
    const struct control_cmd *cmds;
    size_t n_cmds;
    void *arg;
    uint64_t idle_timeout_ms;  /* 0: CONTROL_IDLE_TIMEOUT_MS */
};

/* Listen. Returns NULL and sets *err_r (caller frees) on failure: the path
 * is in use by a running daemon, the group is unknown, bind failed, … */
struct control *control_new(uv_loop_t *loop, const struct control_settings *s,
                            char **err_r);
/* Close every client and the socket (the path is removed). NULL-safe. */
void control_free(struct control *c);
/* Number of connected clients. */
size_t control_clients(const struct control *c);

#endif
