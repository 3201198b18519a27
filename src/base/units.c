/* SPDX-License-Identifier: MIT */
#include "units.h"

#include <errno.h>
#include <stddef.h>

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
            /* a bare number is seconds, only on its own */
            if (last_rank != 5)
                return -EINVAL;
            mult = 1;
            rank = -1;
            break;
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
