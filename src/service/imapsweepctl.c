/* SPDX-License-Identifier: MIT */
/* imapsweepctl: ask a running imapsweepd over its control socket. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "ctl_proto.h"
#include "explain.h"
#include "metrics.h"
#include "util.h"

#define REPLY_MAX (64 * 1024 * 1024)

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: imapsweepctl [-s SOCKET | -i NAME] [--system] [--json] "
            "COMMAND [ARGS]\n"
            "\n"
            "  status [ACCOUNT [MAILBOX]]  accounts, mailboxes, states, "
            "counts, errors\n"
            "  status --check [ACCOUNT [MAILBOX]]\n"
            "                              one line and a monitoring exit "
            "status:\n"
            "                              0 healthy, 1 warning, 2 critical\n"
            "  reload                      reload the configuration (like "
            "SIGHUP)\n"
            "  sweep [ACCOUNT [MAILBOX]]   full sweep now\n"
            "  explain ACCOUNT MAILBOX UID which rule matches that message "
            "and why the\n"
            "                              rules before it do not "
            "(read-only)\n"
            "  metrics [-o FILE]           Prometheus text exposition "
            "(FILE: written\n"
            "                              atomically, for node_exporter's "
            "textfile collector)\n"
            "  version                     the daemon's version\n"
            "\n"
            "  -s, --socket PATH    control socket (default: "
            "$IMAPSWEEP_SOCKET, else\n"
            "                       %s/%s.sock for root,\n"
            "                       $XDG_RUNTIME_DIR/imapsweep/%s.sock for "
            "others)\n"
            "  -i, --instance NAME  the socket of instance NAME "
            "(imapsweepd@NAME): NAME.sock\n"
            "                       in the same folder\n"
            "      --system         the system daemon's folder, also when "
            "not root\n"
            "      --json           print the daemon's JSON reply as it is\n",
            CTL_SYSTEM_SOCKET_DIR, CTL_SOCKET_NAME, CTL_SOCKET_NAME);
}

static int
connect_socket(const char *path)
{
    struct sockaddr_un sa;
    struct timeval tv = {.tv_sec = 60};
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One reply line. */
static int
read_line(int fd, struct buf *out)
{
    char chunk[4096];

    for (;;) {
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        char *nl;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        if (buf_append(out, chunk, (size_t)n) < 0)
            return -1;
        nl = memchr(out->data, '\n', out->len);
        if (nl != NULL) {
            out->len = (size_t)(nl - out->data);
            out->data[out->len] = '\0';
            return 0;
        }
    }
}

static void
fmt_duration(long long s, char *out, size_t size)
{
    if (s < 60)
        snprintf(out, size, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(out, size, "%lldm%02llds", (long long)(s / 60),
                 (long long)(s % 60));
    else if (s < 86400)
        snprintf(out, size, "%lldh%02lldm", (long long)(s / 3600),
                 (long long)(s % 3600 / 60));
    else
        snprintf(out, size, "%lldd%02lldh", (long long)(s / 86400),
                 (long long)(s % 86400 / 3600));
}

/* Width on a terminal: code points, not bytes. */
static size_t
width(const char *s)
{
    size_t w = 0;

    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

static void
cell(const char *s, size_t w)
{
    size_t n = width(s);

    fputs(s, stdout);
    for (; n < w; n++)
        putchar(' ');
    putchar(' ');
}

struct row {
    char *col[8];
};

static void
print_status(const struct ctl_result *r)
{
    static const char *const head[8] = {
        "ACCOUNT", "MAILBOX", "STATE", "WATCHED BY", "MESSAGES", "ACTED",
        "LAST SWEEP", "LAST ERROR",
    };
    size_t n = r->n_watchers, widths[8], i;
    struct row *rows = xcalloc(n ? n : 1, sizeof(*rows));
    char up[32];

    fmt_duration(r->uptime_s, up, sizeof(up));
    printf("imapsweepd %s, pid %lld, up %s, configuration generation %lld%s\n",
           r->version, r->pid, up, r->generation,
           r->dry_run ? " (dry run)" : "");
    for (i = 0; i < 8; i++)
        widths[i] = strlen(head[i]);
    for (i = 0; i < n; i++) {
        const struct ctl_result_watcher *w = &r->watchers[i];
        char dur[32];
        struct buf b;

        rows[i].col[0] = xstrdup(w->account);
        rows[i].col[1] = xstrdup(w->mailbox);
        fmt_duration(w->state_s, dur, sizeof(dur));
        rows[i].col[2] = xasprintf("%s %s", w->state, dur);
        if (w->last_event_s >= 0) {
            fmt_duration(w->last_event_s, dur, sizeof(dur));
            rows[i].col[3] = xasprintf("%s (event %s ago)",
                                       w->watched_by ? w->watched_by : "-",
                                       dur);
        } else {
            rows[i].col[3] = xstrdup(w->watched_by ? w->watched_by : "-");
        }
        rows[i].col[4] = xasprintf("%lld", w->messages);
        buf_init(&b, BUF_NOCAP);
        for (size_t k = 0; k < w->n_counts; k++) {
            if (b.len > 0)
                buf_append_str(&b, ", ");
            buf_printf(&b, "%s %s %lld", w->counts[k].rule,
                       w->counts[k].kind, w->counts[k].n);
        }
        rows[i].col[5] = b.len ? buf_steal(&b) : xstrdup("-");
        buf_free(&b);
        if (w->last_sweep != NULL)
            rows[i].col[6] = xasprintf("%s (%lld ms)", w->last_sweep,
                                       w->last_sweep_ms);
        else
            rows[i].col[6] = xstrdup("-");
        rows[i].col[7] = xstrdup(w->last_error ? w->last_error : "-");
        for (size_t k = 0; k < 7; k++) {
            if (width(rows[i].col[k]) > widths[k])
                widths[k] = width(rows[i].col[k]);
        }
    }
    for (i = 0; i < 8; i++)
        cell(head[i], i < 7 ? widths[i] : 0);
    putchar('\n');
    for (i = 0; i < n; i++) {
        for (size_t k = 0; k < 8; k++) {
            cell(rows[i].col[k], k < 7 ? widths[k] : 0);
            free(rows[i].col[k]);
        }
        putchar('\n');
    }
    for (i = 0; i < n; i++) {
        const struct ctl_result_watcher *w = &r->watchers[i];

        for (size_t k = 0; k < w->n_notes; k++)
            printf("note: %s/%s: %s\n", w->account, w->mailbox,
                   w->notes[k]);
    }
    free(rows);
}

/* The socket to use: -s, else -i NAME or --system, else $IMAPSWEEP_SOCKET,
 * else the default. NULL with a message on stderr when there is none. */
static char *
socket_path(const char *given, const char *instance, bool system)
{
    const char *env = getenv("IMAPSWEEP_SOCKET");
    char *dir, *path, *err = NULL;

    if (given != NULL)
        return xstrdup(given);
    if (instance == NULL && !system && env != NULL && *env != '\0')
        return xstrdup(env);
    dir = ctl_socket_dir(geteuid(), system, &err);
    if (dir == NULL) {
        fprintf(stderr, "imapsweepctl: %s with -s PATH, or use --system\n",
                err);
        free(err);
        return NULL;
    }
    path = ctl_instance_socket(dir, instance ? instance : CTL_SOCKET_NAME);
    free(dir);
    if (path == NULL)
        fprintf(stderr, "imapsweepctl: \"%s\" is not an instance name "
                        "(letters, digits, . _ - @ :)\n", instance);
    return path;
}

/* Write text to path atomically: a temporary file beside it, renamed over
 * it, so a reader (node_exporter) never sees half a file. Mode 0644:
 * metrics are for others to read. */
static int
write_file(const char *path, const char *text)
{
    char *tmp = xasprintf("%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int e;

    if (f == NULL)
        goto fail;
    if (fchmod(fileno(f), 0644) < 0 || fputs(text, f) == EOF ||
        fflush(f) != 0 || fsync(fileno(f)) < 0) {
        e = errno;
        fclose(f);
        unlink(tmp);
        errno = e;
        goto fail;
    }
    if (fclose(f) != 0 || rename(tmp, path) < 0) {
        e = errno;
        unlink(tmp);
        errno = e;
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    fprintf(stderr, "imapsweepctl: cannot write %s: %s\n", path,
            strerror(errno));
    free(tmp);
    return -1;
}

/* metrics: to stdout, or atomically to out */
static int
emit_metrics(const char *out, char *text)
{
    int ret = 0;

    if (out != NULL)
        ret = write_file(out, text);
    else
        fputs(text, stdout);
    free(text);
    return ret;
}

/* status --check: one line, in the monitoring plugins' form
 * "SERVICE STATE: text | perfdata". */
static int
print_check(const struct ctl_result *r, const char *filter)
{
    size_t bad = 0, first = 0;
    long long acted = 0;

    for (size_t i = 0; i < r->n_watchers; i++) {
        const struct ctl_result_watcher *w = &r->watchers[i];

        if (!ctl_watcher_healthy(w) && bad++ == 0)
            first = i;
        for (size_t k = 0; k < w->n_counts; k++) {
            if (strncmp(w->counts[k].kind, "would_", 6) != 0)
                acted += w->counts[k].n;
        }
    }
    if (bad == 0) {
        printf("IMAPSWEEP OK: %zu mailbox%s watched%s%s%s, %lld message%s "
               "acted on%s | watchers=%zu unhealthy=0 actions=%lldc\n",
               r->n_watchers, r->n_watchers == 1 ? "" : "es",
               filter ? " (" : "", filter ? filter : "", filter ? ")" : "",
               acted, acted == 1 ? "" : "s",
               r->dry_run ? " (dry run)" : "", r->n_watchers, acted);
        return CTL_CHECK_OK;
    }
    {
        const struct ctl_result_watcher *w = &r->watchers[first];

        printf("IMAPSWEEP WARNING: %zu of %zu mailbox%s unhealthy: %s/%s "
               "%s%s%s%s | watchers=%zu unhealthy=%zu actions=%lldc\n",
               bad, r->n_watchers, r->n_watchers == 1 ? "" : "es",
               w->account, w->mailbox, w->state ? w->state : "?",
               w->last_error ? " (" : "",
               w->last_error ? w->last_error : "", w->last_error ? ")" : "",
               r->n_watchers, bad, acted);
    }
    return CTL_CHECK_WARNING;
}

struct opts {
    const char *socket;
    const char *instance;
    const char *output;
    bool system;
    bool raw;
    bool check;
};

/* Usage of COMMAND ARGS (argv from the command on), options included:
 * 0 if fine. */
static int
check_command(int argc, char **argv, struct opts *o)
{
    const char *cmd = argv[0];
    int n = argc - 1;

    if (strcmp(cmd, "status") == 0)
        return n <= 2 ? 0 : -1;
    if (o->check)
        return -1;
    if (strcmp(cmd, "metrics") == 0)
        return n == 0 && !o->raw ? 0 : -1;
    if (o->output != NULL)
        return -1;
    if (strcmp(cmd, "reload") == 0 || strcmp(cmd, "version") == 0)
        return n == 0 ? 0 : -1;
    if (strcmp(cmd, "sweep") == 0)
        return n <= 2 ? 0 : -1;
    if (strcmp(cmd, "explain") == 0)
        return n == 3 ? 0 : -1;
    return -1;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"instance", required_argument, NULL, 'i'},
        {"system", no_argument, NULL, 'S'},
        {"json", no_argument, NULL, 'j'},
        {"check", no_argument, NULL, 'C'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {NULL};
    const char *cmd, *request;
    char *path = NULL, *filter = NULL;
    struct buf reply;
    struct ctl_result *r;
    char *line, *err;
    int fd, c, ret, werr = 0;

    /* options may follow the command too (status --check work) */
    while ((c = getopt_long(argc, argv, "s:i:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o.socket = optarg;
            break;
        case 'i':
            o.instance = optarg;
            break;
        case 'S':
            o.system = true;
            break;
        case 'j':
            o.raw = true;
            break;
        case 'C':
            o.check = true;
            break;
        case 'o':
            o.output = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return CTL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    cmd = argv[optind];
    if (check_command(argc - optind, argv + optind, &o) < 0 ||
        (o.socket != NULL && o.instance != NULL) || (o.check && o.raw)) {
        fprintf(stderr, "imapsweepctl: unknown command or wrong arguments: "
                        "%s\n", cmd);
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    if (argc - optind > 1)
        filter = argc - optind > 2 ? xasprintf("%s/%s", argv[optind + 1],
                                               argv[optind + 2])
                                   : xstrdup(argv[optind + 1]);

    /* metrics come from the status */
    request = strcmp(cmd, "metrics") == 0 ? "status" : cmd;
    line = ctl_request_encode(request,
                              (const char *const *)argv + optind + 1,
                              (size_t)(argc - optind - 1));
    if (line == NULL) {
        fprintf(stderr, "imapsweepctl: arguments are not valid UTF-8\n");
        free(filter);
        return CTL_EXIT_USAGE;
    }
    path = socket_path(o.socket, o.instance, o.system);
    if (path == NULL) {
        free(line);
        free(filter);
        return o.check ? CTL_CHECK_CRITICAL : CTL_EXIT_USAGE;
    }
    fd = connect_socket(path);
    if (fd < 0) {
        if (o.check)
            printf("IMAPSWEEP CRITICAL: no daemon is listening on %s: %s\n",
                   path, strerror(errno));
        else
            fprintf(stderr, "imapsweepctl: no daemon is listening on %s: "
                            "%s\n", path, strerror(errno));
        if (strcmp(cmd, "metrics") == 0)
            emit_metrics(o.output, metrics_render_down());
        free(line);
        free(filter);
        free(path);
        return o.check ? CTL_CHECK_CRITICAL : CTL_EXIT_UNAVAILABLE;
    }
    buf_init(&reply, REPLY_MAX);
    if (write_all(fd, line, strlen(line)) < 0 || write_all(fd, "\n", 1) < 0)
        werr = errno;
    /* a daemon that refuses a client (permission denied, too many clients)
     * answers at once and closes: its answer may be waiting even when the
     * request could not be sent */
    errno = 0;
    if (read_line(fd, &reply) < 0) {
        int e = werr ? werr : errno;

        if (o.check)
            printf("IMAPSWEEP CRITICAL: %s: the daemon did not answer: %s\n",
                   path, e ? strerror(e) : "connection closed");
        else
            fprintf(stderr, "imapsweepctl: %s: the daemon did not answer: "
                            "%s\n", path, e ? strerror(e) : "connection closed");
        if (strcmp(cmd, "metrics") == 0)
            emit_metrics(o.output, metrics_render_down());
        free(line);
        free(filter);
        free(path);
        buf_free(&reply);
        close(fd);
        return o.check ? CTL_CHECK_CRITICAL : CTL_EXIT_UNAVAILABLE;
    }
    free(line);
    close(fd);
    if (ctl_result_parse(reply.data, reply.len, &r, &err) < 0) {
        if (o.check)
            printf("IMAPSWEEP CRITICAL: unreadable reply: %s\n", err);
        else
            fprintf(stderr, "imapsweepctl: unreadable reply: %s\n", err);
        free(err);
        free(filter);
        free(path);
        buf_free(&reply);
        return o.check ? CTL_CHECK_CRITICAL : CTL_EXIT_FAILED;
    }
    ret = r->ok ? 0 : CTL_EXIT_FAILED;
    if (o.check) {
        if (r->ok) {
            ret = print_check(r, filter);
        } else {
            printf("IMAPSWEEP CRITICAL: %s\n", r->error ? r->error : "?");
            ret = CTL_CHECK_CRITICAL;
        }
    } else if (o.raw) {
        printf("%s\n", reply.data);
    } else if (ret != 0) {
        for (size_t i = 0; i < r->n_errors; i++)
            fprintf(stderr, "%s\n", r->errors[i]);
        fprintf(stderr, "imapsweepctl: %s\n", r->error);
        if (strcmp(cmd, "metrics") == 0)
            emit_metrics(o.output, metrics_render_down());
    } else if (strcmp(cmd, "status") == 0) {
        print_status(r);
    } else if (strcmp(cmd, "metrics") == 0) {
        if (emit_metrics(o.output, metrics_render(r, (uint64_t)time(NULL)))
            < 0)
            ret = CTL_EXIT_FAILED;
    } else if (strcmp(cmd, "reload") == 0) {
        printf("reloaded (configuration generation %lld)\n", r->generation);
    } else if (strcmp(cmd, "sweep") == 0) {
        for (size_t i = 0; i < r->n_swept; i++)
            printf("sweeping %s/%s\n", r->swept[i].account,
                   r->swept[i].mailbox);
    } else if (strcmp(cmd, "explain") == 0 && r->explain != NULL) {
        char *text = explain_report_text(r->explain);

        fputs(text, stdout);
        free(text);
        if (!r->explain->found)
            ret = CTL_EXIT_FAILED;  /* no such message: nothing explained */
    } else {
        printf("imapsweepd %s\n", r->version);
    }
    ctl_result_free(r);
    buf_free(&reply);
    free(filter);
    free(path);
    return ret;
}
