/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the mailbox STATUS and LIST decoders (imap_mbox).
 *
 * Input: 1 control byte (bit 0: the connection uses UTF-8 names), then
 * server output. Every response the parser returns goes through both
 * decoders; a decoded name is never empty and holds no NUL, and values
 * are only reported when present. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_mbox.h"
#include "imap_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool cond)
{
    if (!cond)
        abort();
}

static void
check_name(const struct buf *b)
{
    const char *s = buf_cstr(b);

    check(s[0] != '\0' && strlen(s) == b->len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct imap_parser_limits tight = {
        .max_line = 4096, .max_literal = 256, .max_depth = 8,
    };
    struct imap_mbox_status st;
    struct imap_mbox_list l;
    struct imap_parser *p;
    const char *in;
    size_t len, off = 0;
    bool utf8;

    if (size < 1)
        return 0;
    utf8 = (data[0] & 1) != 0;
    in = (const char *)data + 1;
    len = size - 1;
    p = imap_parser_new(&tight, NULL, NULL);
    imap_mbox_status_init(&st);
    imap_mbox_list_init(&l);
    while (off < len) {
        const struct imap_response *r = NULL;
        size_t used = 0;
        enum imap_parse_result res =
            imap_parser_feed(p, in + off, len - off, &used, &r);

        off += used;
        if (res != IMAP_PARSE_DONE)
            break;
        switch (imap_mbox_parse_status(r, utf8, &st)) {
        case IMAP_MBOX_OK:
            check_name(&st.name);
            check(st.has_messages || st.messages == 0);
            check(st.has_uidnext || st.uidnext == 0);
            check(st.has_uidvalidity || st.uidvalidity == 0);
            break;
        case IMAP_MBOX_OTHER:
            check(r->name == NULL || strcmp(r->name, "STATUS") != 0 ||
                  r->has_number || r->type != IMAP_RESP_UNTAGGED);
            break;
        case IMAP_MBOX_MALFORMED:
            break;
        }
        if (imap_mbox_parse_list(r, utf8, &l) == IMAP_MBOX_OK) {
            check_name(&l.name);
            if (l.has_oldname)
                check_name(&l.oldname);
        }
    }
    imap_mbox_status_free(&st);
    imap_mbox_list_free(&l);
    imap_parser_free(p);
    return 0;
}
