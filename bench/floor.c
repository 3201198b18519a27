/* SPDX-License-Identifier: MIT */
/* floor: the protocol lower bound for bench/run.py.
 *
 * As little client-side work as IMAP allows, so that what the benchmark
 * compares against is the server's own cost plus the unavoidable round
 * trips. Plain TCP only (no TLS), libc only, no parsing beyond what the
 * commands need.
 *
 *   floor purge HOST PORT USER PASS MAILBOX FROM
 *       LOGIN, SELECT, one UID SEARCH FROM "FROM", one UID STORE over the
 *       whole set (+FLAGS.SILENT (\Deleted)), one UID EXPUNGE over it,
 *       LOGOUT. The server must accept lines as long as the set (raise
 *       Dovecot's imap_max_line_length). Prints "found N" and exits 0.
 *
 *   floor watch HOST PORT FROM < SPEC
 *       SPEC has one "USER PASS MAILBOX" per line. One connection per line,
 *       all on one epoll loop: LOGIN, SELECT, IDLE. On an EXISTS that raises
 *       the count: DONE and, right behind it, UID SEARCH UID lo:* FROM
 *       "FROM" (lo = UIDNEXT at SELECT); then UID STORE and UID EXPUNGE over
 *       the matches, each after the previous tagged reply (the EXPUNGE
 *       depends on the STORE), and IDLE again. Prints "ready N" once
 *       every connection is idling, "done N" for each sweep that removed
 *       N messages, and runs until killed.
 *
 *   floor hold HOST PORT < SPEC
 *       LOGIN, SELECT, IDLE on every line, then nothing: the memory of the
 *       cheapest possible idle session. Prints "ready N".
 *
 * Not part of the product; built by bench/run.py with `cc -O2`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("floor: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *
xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL)
        die("out of memory");
    return p;
}

static int
dial(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai;
    int fd, one = 1;

    if (getaddrinfo(host, port, &hints, &ai) != 0)
        die("cannot resolve %s", host);
    fd = socket(ai->ai_family, ai->ai_socktype, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("connect %s:%s: %s", host, port, strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    freeaddrinfo(ai);
    return fd;
}

static void
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            /* watch mode: commands are tiny, the socket buffer has room */
            continue;
        }
        if (w <= 0)
            die("write: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* A growable set of UIDs, kept as ascending ranges. */
struct uids {
    uint32_t (*r)[2];
    size_t n, cap;
    size_t count;
};

static void
uids_add(struct uids *u, uint32_t v)
{
    u->count++;
    if (u->n > 0 && u->r[u->n - 1][1] + 1 == v) {
        u->r[u->n - 1][1] = v;
        return;
    }
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 64;
        u->r = xrealloc(u->r, u->cap * sizeof(*u->r));
    }
    u->r[u->n][0] = u->r[u->n][1] = v;
    u->n++;
}

/* "1:5,9" into *out (grown as needed); returns the length. */
static size_t
uids_format(const struct uids *u, char **out, size_t *cap)
{
    size_t len = 0;

    for (size_t i = 0; i < u->n; i++) {
        if (*cap - len < 32) {
            *cap = *cap * 2 + 64;
            *out = xrealloc(*out, *cap);
        }
        if (u->r[i][0] == u->r[i][1])
            len += (size_t)snprintf(*out + len, *cap - len, "%s%u",
                                    i ? "," : "", u->r[i][0]);
        else
            len += (size_t)snprintf(*out + len, *cap - len, "%s%u:%u",
                                    i ? "," : "", u->r[i][0], u->r[i][1]);
    }
    return len;
}

/* "* SEARCH 1 2 3" (line without CRLF) into u, keeping UIDs >= lo. */
static void
parse_search(const char *line, size_t len, struct uids *u, uint32_t lo)
{
    const char *p = line + 8, *end = line + len;

    while (p < end) {
        uint32_t v = 0;

        while (p < end && *p == ' ')
            p++;
        if (p >= end || *p < '0' || *p > '9')
            break;
        while (p < end && *p >= '0' && *p <= '9')
            v = v * 10 + (uint32_t)(*p++ - '0');
        if (v >= lo)
            uids_add(u, v);
    }
}

/* ------------------------------------------------------------------ purge */

struct rd {
    int fd;
    char *buf;
    size_t len, cap, start;
};

/* Next line (without CRLF) from a blocking socket; NULL at EOF. */
static char *
read_line(struct rd *r, size_t *len_r)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->len - r->start);

        if (nl != NULL) {
            char *line = r->buf + r->start;
            size_t n = (size_t)(nl - line);

            r->start += n + 1;
            if (n > 0 && line[n - 1] == '\r')
                n--;
            line[n] = '\0';
            *len_r = n;
            return line;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->len - r->start);
            r->len -= r->start;
            r->start = 0;
        }
        if (r->cap - r->len < 65536) {
            r->cap = r->cap * 2 + 65536;
            r->buf = xrealloc(r->buf, r->cap);
        }
        ssize_t got = read(r->fd, r->buf + r->len, r->cap - r->len - 1);
        if (got <= 0)
            return NULL;
        r->len += (size_t)got;
    }
}

/* Send "TAG text" and read to the tagged reply; SEARCH results go to u. */
static void
command(struct rd *r, const char *tag, const char *text, size_t tlen,
        struct uids *u)
{
    char *line;
    size_t len, taglen = strlen(tag);

    send_all(r->fd, tag, taglen);
    send_all(r->fd, " ", 1);
    send_all(r->fd, text, tlen);
    send_all(r->fd, "\r\n", 2);
    while ((line = read_line(r, &len)) != NULL) {
        if (u != NULL && len >= 8 && memcmp(line, "* SEARCH", 8) == 0) {
            parse_search(line, len, u, 0);
            continue;
        }
        if (len > taglen && memcmp(line, tag, taglen) == 0 &&
            line[taglen] == ' ') {
            if (strncmp(line + taglen + 1, "OK", 2) != 0)
                die("%s failed: %s", tag, line);
            fprintf(stderr, "%s\n", line); /* Dovecot's own timing */
            return;
        }
    }
    die("connection closed during %s", tag);
}

static int
purge(int argc, char **argv)
{
    struct rd r = {0};
    struct uids u = {0};
    char *cmd = NULL, *set = NULL, *line;
    size_t cap = 0, setcap = 0, len, n;

    if (argc != 8)
        die("usage: floor purge HOST PORT USER PASS MAILBOX FROM");
    r.fd = dial(argv[2], argv[3]);
    if (read_line(&r, &len) == NULL)
        die("no greeting");
    cmd = xrealloc(cmd, cap = 4096);
    n = (size_t)snprintf(cmd, cap, "LOGIN \"%s\" \"%s\"", argv[4], argv[5]);
    command(&r, "a", cmd, n, NULL);
    n = (size_t)snprintf(cmd, cap, "SELECT \"%s\"", argv[6]);
    command(&r, "b", cmd, n, NULL);
    n = (size_t)snprintf(cmd, cap, "UID SEARCH FROM \"%s\"", argv[7]);
    command(&r, "c", cmd, n, &u);
    if (u.count > 0) {
        len = uids_format(&u, &set, &setcap);
        cmd = xrealloc(cmd, cap = len + 64);
        n = (size_t)snprintf(cmd, cap, "UID STORE %s +FLAGS.SILENT (\\Deleted)",
                             set);
        command(&r, "d", cmd, n, NULL);
        n = (size_t)snprintf(cmd, cap, "UID EXPUNGE %s", set);
        command(&r, "e", cmd, n, NULL);
    }
    send_all(r.fd, "f LOGOUT\r\n", 10);
    while ((line = read_line(&r, &len)) != NULL) {
        if (strncmp(line, "f ", 2) == 0)
            break;
    }
    close(r.fd);
    printf("found %zu\n", u.count);
    return 0;
}

/* ------------------------------------------------------------ watch, hold */

enum st {
    S_GREETING, S_LOGIN, S_SELECT, S_IDLE_SENT, S_IDLING,
    S_SEARCH, S_STORE, S_EXPUNGE,
};

struct conn {
    int fd;
    enum st st;
    char *user, *pass, *mailbox;
    char *buf;
    size_t len, cap;
    uint32_t exists, lo;
    bool again;             /* EXISTS during a sweep: sweep once more */
    struct uids found;
    unsigned tag;
};

static const char *from_text;
static bool hold_only;
static unsigned n_conns, n_ready;
static bool all_ready_said;
static char *scratch;
static size_t scratch_cap;

static void
csend(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(scratch, scratch_cap, fmt, ap);
        va_end(ap);
        if ((size_t)n < scratch_cap)
            break;
        scratch_cap = (size_t)n + 64;
        scratch = xrealloc(scratch, scratch_cap);
    }
    send_all(c->fd, scratch, (size_t)n);
}

static void
start_idle(struct conn *c)
{
    c->tag++;
    csend(c, "i%u IDLE\r\n", c->tag);
    c->st = S_IDLE_SENT;
}

/* DONE, if IDLE is on, and the search right behind it: commands may
 * follow DONE at once (RFC 2177), IDLE's own tagged OK is skipped. */
static void
start_search(struct conn *c, bool done)
{
    if (done)
        send_all(c->fd, "DONE\r\n", 6);
    c->again = false;
    c->found.n = c->found.count = 0;
    c->tag++;
    csend(c, "s%u UID SEARCH UID %u:* FROM \"%s\"\r\n", c->tag, c->lo,
          from_text);
    c->st = S_SEARCH;
}

static bool
is_tagged(const char *line, size_t len)
{
    (void)len;
    return line[0] != '*' && line[0] != '+';
}

static bool
tagged_ok(const char *line)
{
    const char *sp = strchr(line, ' ');

    return sp != NULL && strncmp(sp + 1, "OK", 2) == 0;
}

/* A count from "* N EXISTS", or -1. */
static long
exists_of(const char *line, size_t len)
{
    char *end;
    long v;

    if (len < 10 || line[0] != '*' || line[1] != ' ')
        return -1;
    v = strtol(line + 2, &end, 10);
    if (end == line + 2 || strcmp(end, " EXISTS") != 0)
        return -1;
    return v;
}

static void
got_ready(struct conn *c)
{
    (void)c;
    n_ready++;
    if (!all_ready_said && n_ready == n_conns) {
        all_ready_said = true;
        printf("ready %u\n", n_conns);
        fflush(stdout);
    }
}

static void
handle_line(struct conn *c, char *line, size_t len)
{
    long ex = exists_of(line, len);

    if (len > 10 && line[0] == '*' && strcmp(line + len - 8, " EXPUNGE") == 0) {
        if (c->exists > 0)
            c->exists--;
        return;
    }

    if (ex >= 0) {
        bool more = (uint32_t)ex > c->exists;

        c->exists = (uint32_t)ex;
        if (!more || hold_only || c->st < S_IDLE_SENT)
            return;
        if (c->st == S_IDLING) {
            start_search(c, true);
        } else {
            c->again = true;
        }
        return;
    }
    switch (c->st) {
    case S_GREETING:
        c->tag++;
        csend(c, "l%u LOGIN \"%s\" \"%s\"\r\n", c->tag, c->user, c->pass);
        c->st = S_LOGIN;
        return;
    case S_LOGIN:
        if (!is_tagged(line, len))
            return;
        if (!tagged_ok(line))
            die("%s: %s", c->user, line);
        c->tag++;
        csend(c, "x%u SELECT \"%s\"\r\n", c->tag, c->mailbox);
        c->st = S_SELECT;
        return;
    case S_SELECT: {
        const char *p = strstr(line, "[UIDNEXT ");

        if (p != NULL)
            c->lo = (uint32_t)strtoul(p + 9, NULL, 10);
        if (!is_tagged(line, len))
            return;
        if (!tagged_ok(line))
            die("%s %s: %s", c->user, c->mailbox, line);
        if (c->lo == 0)
            c->lo = 1;
        start_idle(c);
        return;
    }
    case S_IDLE_SENT:
        if (line[0] == '+') {
            c->st = S_IDLING;
            if (c->again && !hold_only) {
                start_search(c, true);
                return;
            }
            if (!all_ready_said || n_ready < n_conns)
                got_ready(c);
        }
        return;
    case S_IDLING:
        return;
    case S_SEARCH:
        if (len >= 8 && memcmp(line, "* SEARCH", 8) == 0) {
            parse_search(line, len, &c->found, c->lo);
            return;
        }
        if (!is_tagged(line, len) || line[0] == 'i')    /* IDLE's OK */
            return;
        if (!tagged_ok(line))
            die("search: %s", line);
        if (c->found.count == 0) {
            start_idle(c);
            return;
        }
        {
            size_t n = uids_format(&c->found, &scratch, &scratch_cap);
            char *set = strndup(scratch, n);

            c->tag++;
            csend(c, "t%u UID STORE %s +FLAGS.SILENT (\\Deleted)\r\n",
                  c->tag, set);
            free(set);
        }
        c->st = S_STORE;
        return;
    case S_STORE:
        if (!is_tagged(line, len))
            return;
        if (!tagged_ok(line))
            die("store: %s", line);
        {
            size_t n = uids_format(&c->found, &scratch, &scratch_cap);
            char *set = strndup(scratch, n);

            c->tag++;
            csend(c, "e%u UID EXPUNGE %s\r\n", c->tag, set);
            free(set);
        }
        c->st = S_EXPUNGE;
        return;
    case S_EXPUNGE:
        if (!is_tagged(line, len))
            return;
        if (!tagged_ok(line))
            die("expunge: %s", line);
        printf("done %zu\n", c->found.count);
        fflush(stdout);
        if (c->again)
            start_search(c, false);
        else
            start_idle(c);
        return;
    }
}

static void
on_readable(struct conn *c)
{
    for (;;) {
        ssize_t got;
        size_t start = 0;

        if (c->cap - c->len < 4096) {
            c->cap = c->cap * 2 + 4096;
            c->buf = xrealloc(c->buf, c->cap);
        }
        got = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
        if (got < 0 && errno == EAGAIN)
            return;
        if (got <= 0)
            die("%s %s: connection closed", c->user, c->mailbox);
        c->len += (size_t)got;
        for (;;) {
            char *nl = memchr(c->buf + start, '\n', c->len - start);
            char *line = c->buf + start;
            size_t n;

            if (nl == NULL)
                break;
            n = (size_t)(nl - line);
            start += n + 1;
            if (n > 0 && line[n - 1] == '\r')
                n--;
            line[n] = '\0';
            handle_line(c, line, n);
        }
        memmove(c->buf, c->buf + start, c->len - start);
        c->len -= start;
    }
}

static int
watch(int argc, char **argv, bool hold)
{
    struct conn *conns = NULL;
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    int ep;

    if (argc != (hold ? 4 : 5))
        die("usage: floor watch HOST PORT FROM < SPEC | floor hold HOST PORT "
            "< SPEC");
    hold_only = hold;
    from_text = hold ? "" : argv[4];
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(0);
    while (getline(&line, &lcap, stdin) > 0) {
        char u[256], p[256], m[256];
        struct conn *c;

        if (sscanf(line, "%255s %255s %255s", u, p, m) != 3)
            continue;
        if (n_conns == cap) {
            cap = cap ? cap * 2 : 64;
            conns = xrealloc(conns, cap * sizeof(*conns));
        }
        c = &conns[n_conns++];
        memset(c, 0, sizeof(*c));
        c->user = strdup(u);
        c->pass = strdup(p);
        c->mailbox = strdup(m);
    }
    free(line);
    for (unsigned i = 0; i < n_conns; i++) {
        struct epoll_event ev = {.events = EPOLLIN};
        struct conn *c = &conns[i];

        c->fd = dial(argv[2], argv[3]);
        if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0)
            die("fcntl: %s", strerror(errno));
        ev.data.ptr = c;
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++)
            on_readable(evs[i].data.ptr);
    }
}

int
main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "purge") == 0)
        return purge(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "watch") == 0)
        return watch(argc, argv, false);
    if (argc >= 2 && strcmp(argv[1], "hold") == 0)
        return watch(argc, argv, true);
    die("usage: floor purge|watch|hold ...");
    return 64;
}
