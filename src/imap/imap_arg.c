/* SPDX-License-Identifier: MIT */
#include "imap_arg.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

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

bool
imap_arg_parse_internaldate(const char *s, size_t len, int64_t *t_r)
{
    static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char buf[40];
    char m[4];
    int d, y, hh, mm, ss, zone;
    struct tm tm;
    const char *p;

    if (len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (sscanf(buf, "%d-%3s-%d %d:%d:%d %d", &d, m, &y, &hh, &mm, &ss,
               &zone) != 7)
        return false;
    p = strstr(mon, m);
    if (p == NULL || (p - mon) % 3 != 0 || d < 1 || d > 31 || y < 1900 ||
        hh > 23 || mm > 59 || ss > 60)
        return false;
    memset(&tm, 0, sizeof(tm));
    tm.tm_mday = d;
    tm.tm_mon = (int)((p - mon) / 3);
    tm.tm_year = y - 1900;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    /* zone is +HHMM: subtract it to get UTC */
    *t_r = (int64_t)timegm(&tm) -
           (zone / 100 * 3600 + (zone % 100) * 60);
    return true;
}
