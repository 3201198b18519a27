/* SPDX-License-Identifier: MIT */
#include "imap_arg.h"

#include <string.h>

#include "util.h"

bool
imap_arg_is_atom(const struct imap_arg *arg, const char *upper_name)
{
    size_t n;

    if (arg == NULL || arg->type != IMAP_ARG_ATOM)
        return false;
    n = strlen(upper_name);
    /* an atom never holds a NUL, so comparing len bytes is enough */
    return arg->len == n && util_strncaseeq(arg->str, upper_name, n);
}

bool
imap_arg_get_astring(const struct imap_arg *arg, const char **s_r,
                     size_t *len_r)
{
    if (arg == NULL)
        return false;
    switch (arg->type) {
    case IMAP_ARG_ATOM:
    case IMAP_ARG_STRING:
    case IMAP_ARG_LITERAL:
        *s_r = arg->str;
        *len_r = arg->len;
        return true;
    default:
        return false;
    }
}

bool
imap_arg_get_nstring(const struct imap_arg *arg, const char **s_r,
                     size_t *len_r)
{
    if (arg != NULL && arg->type == IMAP_ARG_NIL) {
        *s_r = NULL;
        *len_r = 0;
        return true;
    }
    return imap_arg_get_astring(arg, s_r, len_r);
}

bool
imap_arg_get_u32(const struct imap_arg *arg, uint32_t *v_r)
{
    if (arg == NULL || arg->type != IMAP_ARG_ATOM)
        return false;
    return util_parse_u32(arg->str, arg->len, v_r) == 0;
}

bool
imap_arg_get_u64(const struct imap_arg *arg, uint64_t *v_r)
{
    if (arg == NULL || arg->type != IMAP_ARG_ATOM)
        return false;
    return util_parse_u64(arg->str, arg->len, UINT64_MAX, v_r) == 0;
}

bool
imap_arg_get_list(const struct imap_arg *arg,
                  const struct imap_arg **first_r, size_t *count_r)
{
    if (arg == NULL || arg->type != IMAP_ARG_LIST)
        return false;
    *first_r = arg->list;
    *count_r = arg->count;
    return true;
}

size_t
imap_arg_count(const struct imap_arg *arg)
{
    size_t n = 0;

    for (; arg != NULL; arg = arg->next)
        n++;
    return n;
}

const struct imap_arg *
imap_arg_nth(const struct imap_arg *arg, size_t n)
{
    while (arg != NULL && n > 0) {
        arg = arg->next;
        n--;
    }
    return arg;
}
