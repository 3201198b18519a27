/* SPDX-License-Identifier: MIT */
#include "units.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>

static int
parse_number(const char **sp, uint64_t *v_r)
{
    const char *s = *sp;
    uint64_t v = 0;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -ERANGE;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *sp = s;
    *v_r = v;
    return 0;
}

int
units_parse_duration(const char *s, uint64_t *seconds_r)
{
    uint64_t total = 0;
    int last_rank = 5; /* units must go from large to small, once each */

    if (s == NULL || *s == '\0')
        return -EINVAL;
    while (*s != '\0') {
        uint64_t v, mult;
        int rank, ret;

        if ((ret = parse_number(&s, &v)) < 0)
            return ret;
        switch (*s) {
        case 'w': mult = 7 * 86400; rank = 4; break;
        case 'd': mult = 86400; rank = 3; break;
        case 'h': mult = 3600; rank = 2; break;
        case 'm': mult = 60; rank = 1; break;
        case 's': mult = 1; rank = 0; break;
        case '\0':
            /* "14": seconds? days? A unit is required (older_than: 14 once
             * deleted mail 20 hours old) */
            return last_rank == 5 ? -EDOM : -EINVAL;
        default:
            return -EINVAL;
        }
        if (rank >= last_rank)
            return -EINVAL;
        last_rank = rank;
        if (*s != '\0')
            s++;
        if (v > UNITS_DURATION_MAX / mult)
            return -ERANGE;
        total += v * mult;
        if (total > UNITS_DURATION_MAX)
            return -ERANGE;
    }
    *seconds_r = total;
    return 0;
}

int
units_parse_size(const char *s, uint64_t *bytes_r)
{
    uint64_t v, mult = 1;
    int ret;

    if (s == NULL)
        return -EINVAL;
    if ((ret = parse_number(&s, &v)) < 0)
        return ret;
    switch (*s) {
    case 'k': case 'K': mult = (uint64_t)1 << 10; s++; break;
    case 'm': case 'M': mult = (uint64_t)1 << 20; s++; break;
    case 'g': case 'G': mult = (uint64_t)1 << 30; s++; break;
    case 't': case 'T': mult = (uint64_t)1 << 40; s++; break;
    default: break;
    }
    if (mult > 1 && *s == 'i')
        s++;
    if (*s == 'B' || *s == 'b')
        s++;
    if (*s != '\0')
        return -EINVAL;
    if (v > UNITS_SIZE_MAX / mult)
        return -ERANGE;
    *bytes_r = v * mult;
    return 0;
}

char *
units_format_duration(uint64_t s, char *out, size_t size)
{
    /* no weeks: "14d" reads better than "2w" */
    static const struct {
        char unit;
        uint64_t secs;
    } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
    size_t len = 0;

    if (size == 0)
        return out;
    snprintf(out, size, "0s");
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && s > 0; i++) {
        if (s >= units[i].secs && len < size) {
            int n = snprintf(out + len, size - len, "%llu%c",
                             (unsigned long long)(s / units[i].secs),
                             units[i].unit);

            if (n < 0)
                break;
            len += (size_t)n;
            s %= units[i].secs;
        }
    }
    return out;
}

char *
units_format_size(uint64_t b, char *out, size_t size)
{
    static const char suffix[] = "kMGT";
    unsigned k = 0;

    while (k < 4 && b != 0 && b % 1024 == 0) {
        b /= 1024;
        k++;
    }
    if (k == 0)
        snprintf(out, size, "%llu", (unsigned long long)b);
    else
        snprintf(out, size, "%llu%c", (unsigned long long)b, suffix[k - 1]);
    return out;
}
