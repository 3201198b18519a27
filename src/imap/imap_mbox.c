/* SPDX-License-Identifier: MIT */
#include "imap_mbox.h"

#include <string.h>

#include "imap_utf7.h"
#include "util.h"

static int
decode_name(const struct imap_arg *a, bool utf8, struct buf *out)
{
    const char *s;
    size_t len;

    buf_reset(out);
    if (!imap_arg_get_astring(a, &s, &len) || len == 0 ||
        memchr(s, '\0', len) != NULL)
        return -1;
    if (utf8 || imap_utf7_decode(s, len, out) < 0) {
        buf_reset(out);
        buf_append(out, s, len);
    }
    if (util_strcaseeq(buf_cstr(out), "INBOX")) {
        buf_reset(out);
        buf_append_str(out, "INBOX");
    }
    return 0;
}

void
imap_mbox_status_init(struct imap_mbox_status *st)
{
    memset(st, 0, sizeof(*st));
    buf_init(&st->name, BUF_NOCAP);
}

void
imap_mbox_status_free(struct imap_mbox_status *st)
{
    buf_free(&st->name);
}

static int
take_u32(const struct imap_arg *v, bool *has, uint32_t *out)
{
    if (*has || !imap_arg_get_u32(v, out))
        return -1;
    *has = true;
    return 0;
}

enum imap_mbox_result
imap_mbox_parse_status(const struct imap_response *r, bool utf8,
                       struct imap_mbox_status *st)
{
    const struct imap_arg *items, *it;
    int bad = 0;

    if (r->type != IMAP_RESP_UNTAGGED || r->name == NULL ||
        strcmp(r->name, "STATUS") != 0 || r->has_number)
        return IMAP_MBOX_OTHER;
    st->has_messages = st->has_uidnext = st->has_uidvalidity = false;
    st->messages = st->uidnext = st->uidvalidity = 0;
    if (r->args == NULL || decode_name(r->args, utf8, &st->name) < 0)
        return IMAP_MBOX_MALFORMED;
    items = r->args->next;
    if (items == NULL || items->type != IMAP_ARG_LIST ||
        items->next != NULL || items->count % 2 != 0)
        return IMAP_MBOX_MALFORMED;
    for (it = items->list; it != NULL && bad == 0; it = it->next->next) {
        if (it->type != IMAP_ARG_ATOM || it->next->type == IMAP_ARG_LIST)
            return IMAP_MBOX_MALFORMED;
        if (imap_arg_is_atom(it, "MESSAGES"))
            bad = take_u32(it->next, &st->has_messages, &st->messages);
        else if (imap_arg_is_atom(it, "UIDNEXT"))
            bad = take_u32(it->next, &st->has_uidnext, &st->uidnext);
        else if (imap_arg_is_atom(it, "UIDVALIDITY"))
            bad = take_u32(it->next, &st->has_uidvalidity,
                           &st->uidvalidity);
    }
    return bad == 0 ? IMAP_MBOX_OK : IMAP_MBOX_MALFORMED;
}

void
imap_mbox_list_init(struct imap_mbox_list *l)
{
    memset(l, 0, sizeof(*l));
    buf_init(&l->name, BUF_NOCAP);
    buf_init(&l->oldname, BUF_NOCAP);
}

void
imap_mbox_list_free(struct imap_mbox_list *l)
{
    buf_free(&l->name);
    buf_free(&l->oldname);
}

/* The extended items: pairs of a tag and a value; OLDNAME's value is a
 * list holding one name. Unknown tags are skipped. */
static int
parse_extended(const struct imap_arg *ext, bool utf8,
               struct imap_mbox_list *l)
{
    const struct imap_arg *it;
    const char *tag;
    size_t len;

    if (ext->type != IMAP_ARG_LIST || ext->count % 2 != 0)
        return -1;
    for (it = ext->list; it != NULL; it = it->next->next) {
        if (!imap_arg_get_astring(it, &tag, &len))
            return -1;
        if (len != 7 || !util_strncaseeq(tag, "OLDNAME", 7))
            continue;
        if (l->has_oldname || it->next->type != IMAP_ARG_LIST ||
            it->next->count != 1 ||
            decode_name(it->next->list, utf8, &l->oldname) < 0)
            return -1;
        l->has_oldname = true;
    }
    return 0;
}

enum imap_mbox_result
imap_mbox_parse_list(const struct imap_response *r, bool utf8,
                     struct imap_mbox_list *l)
{
    const struct imap_arg *flags, *delim, *name, *f;

    if (r->type != IMAP_RESP_UNTAGGED || r->name == NULL ||
        strcmp(r->name, "LIST") != 0 || r->has_number)
        return IMAP_MBOX_OTHER;
    l->flags = 0;
    l->delimiter = 0;
    l->has_oldname = false;
    flags = r->args;
    if (flags == NULL || flags->type != IMAP_ARG_LIST)
        return IMAP_MBOX_MALFORMED;
    for (f = flags->list; f != NULL; f = f->next) {
        if (f->type != IMAP_ARG_ATOM || f->str[0] != '\\')
            return IMAP_MBOX_MALFORMED;
        if (imap_arg_is_atom(f, "\\NONEXISTENT"))
            l->flags |= IMAP_MBOX_NONEXISTENT;
        else if (imap_arg_is_atom(f, "\\NOSELECT"))
            l->flags |= IMAP_MBOX_NOSELECT;
    }
    delim = flags->next;
    if (delim == NULL)
        return IMAP_MBOX_MALFORMED;
    if (delim->type != IMAP_ARG_NIL) {
        if (delim->type != IMAP_ARG_STRING || delim->len != 1)
            return IMAP_MBOX_MALFORMED;
        l->delimiter = delim->str[0];
    }
    name = delim->next;
    if (name == NULL || decode_name(name, utf8, &l->name) < 0)
        return IMAP_MBOX_MALFORMED;
    if (name->next != NULL &&
        (name->next->next != NULL ||
         parse_extended(name->next, utf8, l) < 0))
        return IMAP_MBOX_MALFORMED;
    return IMAP_MBOX_OK;
}
