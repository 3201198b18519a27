/* SPDX-License-Identifier: MIT */
/* imap_conn's protocol trace: the last RING_LINES lines, credentials
 * redacted, logged when the connection ends unexpectedly; at log level
 * trace every line is logged as it passes. */
#include "imap_conn_private.h"

#include <stdlib.h>

#define RING_LINES 20
#define RING_LINE_MAX 200

struct trace_ring {
    char *lines[RING_LINES];
    unsigned head;
};

/* --- protocol trace ------------------------------------------------------ */

void
imap_trace_line(struct imap_conn *c, bool client, const char *line, size_t len,
                bool secret)
{
    struct buf b;
    char **slot;

    buf_init(&b, BUF_NOCAP);
    buf_append_str(&b, client ? "C: " : "S: ");
    if (secret) {
        buf_append_str(&b, "<redacted>");
    } else {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        imap_trace_redact(line, len, RING_LINE_MAX, &b);
    }
    if (log_enabled(LL_TRACE))
        log_ctx_msg(&c->log, LL_TRACE, "%s", buf_cstr(&b));
    if (c->ring == NULL)
        c->ring = xcalloc(1, sizeof(*c->ring));
    slot = &c->ring->lines[c->ring->head];
    free(*slot);
    *slot = buf_steal(&b);
    c->ring->head = (c->ring->head + 1) % RING_LINES;
}

void
imap_trace_dump(struct imap_conn *c)
{
    if (c->ring == NULL || log_enabled(LL_TRACE))
        return; /* at trace level every line was logged already */
    log_ctx_msg(&c->log, LL_NOTICE, "last protocol lines:");
    for (unsigned i = 0; i < RING_LINES; i++) {
        const char *l = c->ring->lines[(c->ring->head + i) % RING_LINES];

        if (l != NULL)
            log_ctx_msg(&c->log, LL_NOTICE, "  %s", l);
    }
}

void
imap_trace_free(struct trace_ring *ring)
{
    if (ring == NULL)
        return;
    for (unsigned i = 0; i < RING_LINES; i++)
        free(ring->lines[i]);
    free(ring);
}

/* --- redaction ----------------------------------------------------------- */

/* Length of the IMAP token starting at s (a quoted string, a literal
 * marker or an atom), stopping at a space. */
static size_t
token_len(const char *s, size_t len)
{
    size_t i = 0;

    if (len > 0 && s[0] == '"') {
        for (i = 1; i < len; i++) {
            if (s[i] == '\\' && i + 1 < len)
                i++;
            else if (s[i] == '"')
                return i + 1;
        }
        return len;
    }
    while (i < len && s[i] != ' ')
        i++;
    return i;
}

static void
append_printable(struct buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f)
            buf_printf(out, "\\x%02x", c);
        else
            buf_append_char(out, (char)c);
    }
}

bool
imap_trace_redact(const char *line, size_t len, size_t max, struct buf *out)
{
    size_t pos = 0, keep = 0, n;
    bool redact = false;

    /* tag SP command SP ... */
    n = token_len(line, len);
    pos = n;
    if (pos < len && line[pos] == ' ') {
        const char *cmd = line + pos + 1;
        size_t cmdlen = token_len(cmd, len - pos - 1);

        pos += 1 + cmdlen;
        if ((cmdlen == 5 && util_strncaseeq(cmd, "LOGIN", 5)) ||
            (cmdlen == 12 && util_strncaseeq(cmd, "AUTHENTICATE", 12))) {
            /* keep the user name (LOGIN) or the mechanism */
            if (pos < len && line[pos] == ' ')
                pos += 1 + token_len(line + pos + 1, len - pos - 1);
            redact = pos < len;
        }
    }
    keep = redact ? pos : len;
    if (keep > max)
        keep = max;
    append_printable(out, line, keep);
    if (redact)
        buf_append_str(out, " <redacted>");
    else if (len > keep)
        buf_printf(out, "...[%zu more bytes]", len - keep);
    return redact;
}
