/* SPDX-License-Identifier: MIT */
#include "control.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "ctl_proto.h"
#include "log.h"
#include "util.h"

/* Replies queued to a client that does not read: beyond this, drop it. */
#define MAX_QUEUED (1024 * 1024)

struct client {
    struct control *ctl;
    uv_pipe_t pipe;
    uv_timer_t idle;           /* the time left for a complete request */
    unsigned open_handles;     /* freed when both have closed */
    struct buf in;
    struct client *prev, *next;
    bool closing;
    uid_t uid;
    struct control_req *pending;   /* a deferred reply is awaited */
    struct buf held;               /* input read meanwhile, not handled */
};

/* Outlives its client: the handler replies whenever it is done. */
struct control_req {
    struct client *cl;             /* NULL once the client went away */
};

struct control {
    uv_loop_t *loop;
    uv_pipe_t server;
    bool server_closed;
    char *path;                /* to unlink on close; NULL when inherited */
    gid_t gid;
    bool has_group;
    const struct control_cmd *cmds;
    size_t n_cmds;
    void *arg;
    struct client *clients;
    size_t n_clients;
    uint64_t idle_timeout_ms;
    bool freeing;
    char rbuf[CONTROL_MAX_REQUEST + 1];
};

struct write_req {
    uv_write_t req;
    char *data;
};

static void maybe_free(struct control *c);

/* --- clients ------------------------------------------------------------- */

static void
on_client_closed(uv_handle_t *h)
{
    struct client *cl = h->data;
    struct control *c = cl->ctl;

    if (--cl->open_handles > 0)
        return;
    if (cl->prev != NULL)
        cl->prev->next = cl->next;
    else
        c->clients = cl->next;
    if (cl->next != NULL)
        cl->next->prev = cl->prev;
    c->n_clients--;
    buf_free(&cl->in);
    buf_free(&cl->held);
    free(cl);
    maybe_free(c);
}

static void
client_close(struct client *cl)
{
    if (cl->closing)
        return;
    cl->closing = true;
    if (cl->pending != NULL) {
        cl->pending->cl = NULL;   /* its reply will be dropped */
        cl->pending = NULL;
    }
    uv_close((uv_handle_t *)&cl->idle, on_client_closed);
    uv_close((uv_handle_t *)&cl->pipe, on_client_closed);
}

static void
on_idle(uv_timer_t *t)
{
    struct client *cl = t->data;

    log_info("control: closing a client (uid %u) that sent no complete "
             "request for %llu s", (unsigned)cl->uid,
             (unsigned long long)(cl->ctl->idle_timeout_ms / 1000));
    client_close(cl);
}

/* A new request may take up to the idle timeout, from now. */
static void
idle_restart(struct client *cl)
{
    if (!cl->closing)
        uv_timer_start(&cl->idle, on_idle, cl->ctl->idle_timeout_ms, 0);
}

static void
on_write(uv_write_t *req, int status)
{
    struct write_req *wr = container_of(req, struct write_req, req);

    (void)status;
    free(wr->data);
    free(wr);
}

/* Send one reply line; takes text (a reply without its newline). */
static void
send_reply(struct client *cl, char *text)
{
    struct write_req *wr;
    uv_buf_t b;

    if (cl->closing) {
        free(text);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&cl->pipe) >
        MAX_QUEUED) {
        log_warning("control: dropping a client that does not read its "
                    "replies");
        client_close(cl);
        free(text);
        return;
    }
    wr = xcalloc(1, sizeof(*wr));
    wr->data = xasprintf("%s\n", text);
    free(text);
    b = uv_buf_init(wr->data, (unsigned)strlen(wr->data));
    if (uv_write(&wr->req, (uv_stream_t *)&cl->pipe, &b, 1, on_write) < 0) {
        free(wr->data);
        free(wr);
        client_close(cl);
    }
}

static void
send_error(struct client *cl, const char *msg)
{
    send_reply(cl, ctl_reply_error(msg));
}

static void
handle_line(struct client *cl, const char *line, size_t len)
{
    struct control *c = cl->ctl;
    char **words = NULL;
    int n;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return;
    if (!util_utf8_valid(line, len) || memchr(line, '\0', len) != NULL) {
        send_error(cl, "request is not UTF-8 text");
        client_close(cl);
        return;
    }
    n = ctl_request_split(line, len, &words);
    if (n < 0) {
        send_error(cl, "malformed request (unbalanced quotes or bad JSON)");
        return;
    }
    if (n > 0) {
        const struct control_cmd *cmd = NULL;
        size_t nargs = (size_t)n - 1;

        for (size_t i = 0; i < c->n_cmds; i++) {
            if (strcmp(c->cmds[i].name, words[0]) == 0)
                cmd = &c->cmds[i];
        }
        if (cmd == NULL) {
            char *msg = xasprintf("unknown request \"%s\" (try status, "
                                  "reload, sweep, explain or version)",
                                  words[0]);

            send_error(cl, msg);
            free(msg);
        } else if (nargs < cmd->min_args || nargs > cmd->max_args) {
            char *msg = xasprintf("%s takes %zu to %zu arguments, got %zu",
                                  cmd->name, cmd->min_args, cmd->max_args,
                                  nargs);

            send_error(cl, msg);
            free(msg);
        } else {
            struct control_req *req = xcalloc(1, sizeof(*req));
            char *reply;

            req->cl = cl;
            reply = cmd->fn(c->arg, (const char *const *)words + 1, nargs,
                            req);
            if (reply != NULL) {
                free(req);
                send_reply(cl, reply);
            } else if (req->cl != NULL) {
                /* answered later: hold further input until then */
                cl->pending = req;
                uv_read_stop((uv_stream_t *)&cl->pipe);
            }
        }
    }
    for (int i = 0; i < n; i++)
        free(words[i]);
    free(words);
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct client *cl = h->data;

    (void)hint;
    b->base = cl->ctl->rbuf;
    b->len = sizeof(cl->ctl->rbuf);
}

/* Line by line: only one request is ever held, so a client may send many
 * short requests at once; a single line over the limit ends it. What comes
 * after a request answered later is kept (one read's worth) until then. */
static void
handle_input(struct client *cl, const char *p, const char *end)
{
    while (p < end && !cl->closing) {
        const char *nl;
        size_t len;

        if (cl->pending != NULL) {
            buf_append(&cl->held, p, (size_t)(end - p));
            return;
        }
        nl = memchr(p, '\n', (size_t)(end - p));
        len = (size_t)((nl != NULL ? nl : end) - p);
        if (buf_append(&cl->in, p, len) < 0) {
            send_error(cl, "request longer than 4096 bytes");
            client_close(cl);
            return;
        }
        if (nl == NULL)
            break;
        handle_line(cl, buf_cstr(&cl->in), cl->in.len);
        buf_reset(&cl->in);
        if (cl->pending != NULL)
            uv_timer_stop(&cl->idle); /* we owe the reply: no clock */
        else
            idle_restart(cl);
        p = nl + 1;
    }
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct client *cl = s->data;

    if (n < 0) {
        client_close(cl);
        return;
    }
    if (n == 0 || cl->closing)
        return;
    handle_input(cl, b->base, b->base + n);
}

void
control_req_reply(struct control_req *req, char *text)
{
    struct client *cl = req->cl;
    char *held;
    size_t len;

    free(req);
    if (cl == NULL) {
        free(text);
        return;
    }
    cl->pending = NULL;
    send_reply(cl, text);
    if (cl->closing)
        return;
    idle_restart(cl); /* the next request's time counts from the reply */
    /* what the client sent meanwhile, then reading again */
    len = cl->held.len;
    held = xmemdup(cl->held.data != NULL ? cl->held.data : "", len + 1);
    buf_reset(&cl->held);
    handle_input(cl, held, held + len);
    free(held);
    if (cl->pending == NULL && !cl->closing)
        uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read);
}

static bool
peer_allowed(const struct control *c, uid_t uid, gid_t gid)
{
    struct passwd *pw;
    gid_t groups[256];
    int ng = (int)ARRAY_SIZE(groups);

    if (uid == 0 || uid == geteuid())
        return true;
    if (!c->has_group)
        return false;
    if (gid == c->gid)
        return true;
    pw = getpwuid(uid);
    if (pw == NULL || getgrouplist(pw->pw_name, gid, groups, &ng) < 0)
        return false;
    for (int i = 0; i < ng; i++) {
        if (groups[i] == c->gid)
            return true;
    }
    return false;
}

static void
on_connection(uv_stream_t *server, int status)
{
    struct control *c = server->data;
    struct client *cl;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    uv_os_fd_t fd;

    if (status < 0)
        return;
    cl = xcalloc(1, sizeof(*cl));
    cl->ctl = c;
    buf_init(&cl->in, CONTROL_MAX_REQUEST);
    buf_init(&cl->held, CONTROL_MAX_REQUEST + 1);
    uv_pipe_init(c->loop, &cl->pipe, 0);
    cl->pipe.data = cl;
    uv_timer_init(c->loop, &cl->idle);
    cl->idle.data = cl;
    cl->open_handles = 2;
    cl->next = c->clients;
    if (c->clients != NULL)
        c->clients->prev = cl;
    c->clients = cl;
    c->n_clients++;
    if (uv_accept(server, (uv_stream_t *)&cl->pipe) < 0) {
        client_close(cl);
        return;
    }
    if (uv_fileno((uv_handle_t *)&cl->pipe, &fd) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        client_close(cl);
        return;
    }
    cl->uid = cred.uid;
    if (!peer_allowed(c, cred.uid, cred.gid)) {
        log_notice("control: refused a client with uid %u", cred.uid);
        send_error(cl, "permission denied");
        client_close(cl);
        return;
    }
    if (c->n_clients > CONTROL_MAX_CLIENTS) {
        send_error(cl, "too many clients");
        client_close(cl);
        return;
    }
    uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read);
    idle_restart(cl);
}

/* --- the server ------------------------------------------------------------ */

/* A socket file left behind by a daemon that died may be reused; one that
 * answers belongs to a running daemon. */
static int
check_stale(const char *path, char **err_r)
{
    struct stat st;
    struct sockaddr_un sa;
    int fd, ret;

    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        *err_r = xasprintf("%s exists and is not a socket", path);
        return -EEXIST;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        *err_r = xasprintf("socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    if (ret == 0) {
        *err_r = xasprintf("%s is in use by a running daemon", path);
        return -EADDRINUSE;
    }
    unlink(path);
    return 0;
}

struct control *
control_new(uv_loop_t *loop, const struct control_settings *s, char **err_r)
{
    struct control *c = xcalloc(1, sizeof(*c));
    int ret;

    c->loop = loop;
    c->cmds = s->cmds;
    c->n_cmds = s->n_cmds;
    c->arg = s->arg;
    c->idle_timeout_ms = s->idle_timeout_ms ? s->idle_timeout_ms
                                            : CONTROL_IDLE_TIMEOUT_MS;
    if (s->group != NULL) {
        struct group *gr = getgrnam(s->group);

        if (gr == NULL) {
            *err_r = xasprintf("control_group \"%s\" does not exist",
                               s->group);
            free(c);
            return NULL;
        }
        c->gid = gr->gr_gid;
        c->has_group = true;
    }
    uv_pipe_init(loop, &c->server, 0);
    c->server.data = c;
    if (s->fd >= 0) {
        ret = uv_pipe_open(&c->server, s->fd);
        if (ret < 0) {
            *err_r = xasprintf("cannot use the socket from systemd: %s",
                               uv_strerror(ret));
            goto fail;
        }
    } else {
        mode_t old;

        *err_r = NULL;
        ret = check_stale(s->path, err_r);
        if (ret < 0) {
            if (*err_r == NULL)
                *err_r = xasprintf("%s: %s", s->path, strerror(-ret));
            goto fail;
        }
        /* bind under a tight umask, then open up to the configured mode */
        old = umask(0177);
        ret = uv_pipe_bind(&c->server, s->path);
        umask(old);
        if (ret < 0) {
            *err_r = xasprintf("cannot bind %s: %s", s->path,
                               uv_strerror(ret));
            goto fail;
        }
        c->path = xstrdup(s->path);
        if (chmod(s->path, s->mode) < 0 ||
            (c->has_group && chown(s->path, (uid_t)-1, c->gid) < 0)) {
            *err_r = xasprintf("cannot set the mode of %s: %s", s->path,
                               strerror(errno));
            goto fail;
        }
    }
    ret = uv_listen((uv_stream_t *)&c->server, SOMAXCONN, on_connection);
    if (ret < 0) {
        *err_r = xasprintf("cannot listen on %s: %s",
                           s->path ? s->path : "the socket",
                           uv_strerror(ret));
        goto fail;
    }
    return c;
fail:
    control_free(c);
    return NULL;
}

static void
on_server_closed(uv_handle_t *h)
{
    struct control *c = h->data;

    c->server_closed = true;
    maybe_free(c);
}

static void
maybe_free(struct control *c)
{
    if (c->freeing && c->server_closed && c->clients == NULL) {
        free(c->path);
        free(c);
    }
}

void
control_free(struct control *c)
{
    if (c == NULL || c->freeing)
        return;
    c->freeing = true;
    if (c->path != NULL)
        unlink(c->path);
    for (struct client *cl = c->clients; cl != NULL; cl = cl->next)
        client_close(cl);
    uv_close((uv_handle_t *)&c->server, on_server_closed);
}

size_t
control_clients(const struct control *c)
{
    return c->n_clients;
}
