/* imapsweepctl: ask a running imapsweepd over its control socket. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "ctl_proto.h"
#include "explain.h"
#include "util.h"

#define REPLY_MAX (64 * 1024 * 1024)

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: imapsweepctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
            "\n"
            "  status                     accounts, mailboxes, states, "
            "counts, errors\n"
            "  reload                     reload the configuration (like "
            "SIGHUP)\n"
            "  sweep [ACCOUNT [MAILBOX]]  full sweep now\n"
            "  explain ACCOUNT MAILBOX UID\n"
            "                             which rule matches that message "
            "and why the\n"
            "                             rules before it do not "
            "(read-only)\n"
            "  version                    the daemon's version\n"
            "\n"
            "  -s, --socket PATH  control socket (default %s)\n"
            "      --json         print the daemon's JSON reply as it is\n",
            CTL_DEFAULT_SOCKET);
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
    char *col[7];
};

static void
print_status(const struct ctl_result *r)
{
    static const char *const head[7] = {
        "ACCOUNT", "MAILBOX", "STATE", "MESSAGES", "ACTED", "LAST SWEEP",
        "LAST ERROR",
    };
    size_t n = r->n_watchers, widths[7], i;
    struct row *rows = xcalloc(n ? n : 1, sizeof(*rows));
    char up[32];

    fmt_duration(r->uptime_s, up, sizeof(up));
    printf("imapsweepd %s, pid %lld, up %s, configuration generation %lld%s\n",
           r->version, r->pid, up, r->generation,
           r->dry_run ? " (dry run)" : "");
    for (i = 0; i < 7; i++)
        widths[i] = strlen(head[i]);
    for (i = 0; i < n; i++) {
        const struct ctl_result_watcher *w = &r->watchers[i];
        char dur[32];
        struct buf b;

        rows[i].col[0] = xstrdup(w->account);
        rows[i].col[1] = xstrdup(w->mailbox);
        fmt_duration(w->state_s, dur, sizeof(dur));
        rows[i].col[2] = xasprintf("%s %s", w->state, dur);
        rows[i].col[3] = xasprintf("%lld", w->messages);
        buf_init(&b, BUF_NOCAP);
        for (size_t k = 0; k < w->n_counts; k++) {
            if (b.len > 0)
                buf_append_str(&b, ", ");
            buf_printf(&b, "%s %s %lld", w->counts[k].rule,
                       w->counts[k].kind, w->counts[k].n);
        }
        rows[i].col[4] = b.len ? buf_steal(&b) : xstrdup("-");
        buf_free(&b);
        if (w->last_sweep != NULL)
            rows[i].col[5] = xasprintf("%s (%lld ms)", w->last_sweep,
                                       w->last_sweep_ms);
        else
            rows[i].col[5] = xstrdup("-");
        rows[i].col[6] = xstrdup(w->last_error ? w->last_error : "-");
        for (size_t k = 0; k < 6; k++) {
            if (width(rows[i].col[k]) > widths[k])
                widths[k] = width(rows[i].col[k]);
        }
    }
    for (i = 0; i < 7; i++)
        cell(head[i], i < 6 ? widths[i] : 0);
    putchar('\n');
    for (i = 0; i < n; i++) {
        for (size_t k = 0; k < 7; k++) {
            cell(rows[i].col[k], k < 6 ? widths[k] : 0);
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

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = getenv("IMAPSWEEP_SOCKET");
    const char *cmd;
    bool raw = false;
    struct buf reply;
    struct ctl_result *r;
    char *line, *err;
    int fd, c, ret, werr = 0;

    if (path == NULL || *path == '\0')
        path = CTL_DEFAULT_SOCKET;
    while ((c = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            path = optarg;
            break;
        case 'j':
            raw = true;
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
    if ((strcmp(cmd, "status") == 0 || strcmp(cmd, "reload") == 0 ||
         strcmp(cmd, "version") == 0) ? argc - optind != 1
        : strcmp(cmd, "sweep") == 0   ? argc - optind > 3
        : strcmp(cmd, "explain") == 0 ? argc - optind != 4
                                      : true) {
        fprintf(stderr, "imapsweepctl: unknown command or wrong arguments: "
                        "%s\n", cmd);
        usage(stderr);
        return CTL_EXIT_USAGE;
    }

    line = ctl_request_encode(cmd, (const char *const *)argv + optind + 1,
                              (size_t)(argc - optind - 1));
    if (line == NULL) {
        fprintf(stderr, "imapsweepctl: arguments are not valid UTF-8\n");
        return CTL_EXIT_USAGE;
    }
    fd = connect_socket(path);
    if (fd < 0) {
        fprintf(stderr, "imapsweepctl: no daemon is listening on %s: %s\n",
                path, strerror(errno));
        free(line);
        return CTL_EXIT_UNAVAILABLE;
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

        fprintf(stderr, "imapsweepctl: %s: the daemon did not answer: %s\n",
                path, e ? strerror(e) : "connection closed");
        free(line);
        buf_free(&reply);
        close(fd);
        return CTL_EXIT_UNAVAILABLE;
    }
    free(line);
    close(fd);
    if (ctl_result_parse(reply.data, reply.len, &r, &err) < 0) {
        fprintf(stderr, "imapsweepctl: unreadable reply: %s\n", err);
        free(err);
        buf_free(&reply);
        return CTL_EXIT_FAILED;
    }
    ret = r->ok ? 0 : CTL_EXIT_FAILED;
    if (raw) {
        printf("%s\n", reply.data);
    } else if (ret != 0) {
        for (size_t i = 0; i < r->n_errors; i++)
            fprintf(stderr, "%s\n", r->errors[i]);
        fprintf(stderr, "imapsweepctl: %s\n", r->error);
    } else if (strcmp(cmd, "status") == 0) {
        print_status(r);
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
    return ret;
}
