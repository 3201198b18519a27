/* SPDX-License-Identifier: MIT */
/* explain_text: an explain report for people, and its freeing. */
#include "explain.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

/* Header text on a terminal: control characters escaped, so a subject
 * cannot move the cursor or fake a line. */
static void
text(struct buf *b, const char *s)
{
    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c < 0x20 || c == 0x7f)
            buf_printf(b, "\\x%02x", c);
        else
            buf_append_char(b, (char)c);
    }
}

static void
field(struct buf *b, const char *name, const char *value)
{
    buf_printf(b, "  %-9s", name);
    if (value != NULL)
        text(b, value);
    else
        buf_append_str(b, "(none)");
    buf_append_char(b, '\n');
}

static const char *
answer(int holds)
{
    return holds == 1 ? "yes" : holds == 0 ? "no " : "?  ";
}

char *
explain_report_text(const struct explain_report *r)
{
    struct buf b;

    buf_init(&b, BUF_NOCAP);
    if (r->error != NULL) {
        buf_append_str(&b, "cannot explain: ");
        text(&b, r->error);
        buf_append_char(&b, '\n');
        return buf_steal(&b);
    }
    text(&b, r->account);
    buf_append_char(&b, '/');
    text(&b, r->mailbox);
    buf_printf(&b, " UID %u (UIDVALIDITY %u)\n", r->uid, r->uidvalidity);
    if (!r->watched) {
        buf_append_str(&b, "  note: the account does not watch this "
                           "mailbox: no sweep runs there; this is what the "
                           "rules would do if it did\n");
    }
    if (!r->found) {
        buf_append_str(&b, "verdict: ");
        text(&b, r->verdict);
        buf_append_char(&b, '\n');
        return buf_steal(&b);
    }
    field(&b, "From:", r->from);
    field(&b, "Subject:", r->subject);
    field(&b, "Date:", r->date);
    field(&b, "Msg-ID:", r->message_id);
    field(&b, "Flags:", r->flags != NULL && *r->flags ? r->flags : NULL);
    buf_printf(&b, "  %-9s%llu bytes\n", "Size:",
               (unsigned long long)r->size);
    for (size_t i = 0; i < r->n_rules; i++) {
        const struct explain_rule *er = &r->rules[i];

        buf_append_str(&b, "rule ");
        text(&b, er->name);
        buf_append_str(&b, ": ");
        text(&b, er->does);
        if (er->dry)
            buf_append_str(&b, " [dry run: only logged]");
        buf_append_char(&b, '\n');
        for (size_t j = 0; j < er->n_parts; j++) {
            const struct explain_part *p = &er->parts[j];

            buf_printf(&b, "  %s  ", answer(p->holds));
            text(&b, p->text);
            buf_printf(&b, "  [%s]\n", p->server ? "server" : "client");
        }
        buf_printf(&b, "  => %s\n",
                   er->matches == 1   ? "matches"
                   : er->matches == 0 ? "does not match"
                                      : "no answer (counted as no match)");
    }
    if (r->n_later > 0)
        buf_printf(&b, "(%zu later rule%s not consulted: the first rule "
                       "that matches decides)\n",
                   r->n_later, r->n_later == 1 ? "" : "s");
    buf_append_str(&b, "verdict: ");
    text(&b, r->verdict);
    buf_append_char(&b, '\n');
    return buf_steal(&b);
}

void
explain_report_clear(struct explain_report *r)
{
    free(r->error);
    free(r->account);
    free(r->mailbox);
    free(r->from);
    free(r->subject);
    free(r->date);
    free(r->message_id);
    free(r->flags);
    for (size_t i = 0; i < r->n_rules; i++) {
        struct explain_rule *er = &r->rules[i];

        free(er->name);
        free(er->does);
        for (size_t j = 0; j < er->n_parts; j++)
            free(er->parts[j].text);
        free(er->parts);
    }
    free(r->rules);
    free(r->verdict_rule);
    free(r->verdict);
    memset(r, 0, sizeof(*r));
}
