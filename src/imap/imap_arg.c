/* SPDX-License-Identifier: MIT */
#include "imap_arg.h"

#include <string.h>
#include <strings.h>
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

/* n digits (the first may be a space when pad is set) at s[0..n): the value, or -1. */
static int
digits(const char *s, size_t n, bool pad)
{
    int v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        if (i == 0 && pad && s[i] == ' ' && n > 1)
            continue;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* RFC 3501 date-time without its quotes:
 * DD-Mon-YYYY HH:MM:SS +HHMM, the day possibly space-padded. Exactly that
 * form: an INTERNALDATE decides older_than, so nothing is guessed. */
bool
imap_arg_parse_internaldate(const char *s, size_t len, int64_t *t_r)
{
    static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int d, mo, y, hh, mm, ss, zh, zm;
    struct tm tm;

    if (len != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' ' ||
        s[14] != ':' || s[17] != ':' || s[20] != ' ' ||
        (s[21] != '+' && s[21] != '-'))
        return false;
    for (mo = 0; mo < 12; mo++) {
        if (strncasecmp(s + 3, mon + mo * 3, 3) == 0)
            break;
    }
    d = digits(s, 2, true);
    y = digits(s + 7, 4, false);
    hh = digits(s + 12, 2, false);
    mm = digits(s + 15, 2, false);
    ss = digits(s + 18, 2, false);
    zh = digits(s + 22, 2, false);
    zm = digits(s + 24, 2, false);
    if (mo == 12 || d < 1 || d > 31 || y < 1900 || hh < 0 || hh > 23 ||
        mm < 0 || mm > 59 || ss < 0 || ss > 60 || zh < 0 || zh > 23 ||
        zm < 0 || zm > 59)
        return false;
    memset(&tm, 0, sizeof(tm));
    tm.tm_mday = d;
    tm.tm_mon = mo;
    tm.tm_year = y - 1900;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    /* the zone is local time minus UTC: subtract it to get UTC */
    *t_r = (int64_t)timegm(&tm) -
           (s[21] == '-' ? -1 : 1) * (int64_t)(zh * 3600 + zm * 60);
    return true;
}
