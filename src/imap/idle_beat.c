/* SPDX-License-Identifier: MIT */
/* idle_beat: a polling IDLE told from a pushing one by the timing of what
 * it announces (see include/idle_beat.h for the reasoning). */
#include "idle_beat.h"

#include <string.h>

void
idle_beat_init(struct idle_beat *b)
{
    memset(b, 0, sizeof(*b));
}

/* Try the beat least/m: each sample's number of beats, the beat that fits
 * them best (a line through the origin, so a long wait does not multiply
 * the first sample's jitter), then every sample within the tolerance. */
static uint64_t
fit(const struct idle_beat *b, uint64_t least, uint64_t m)
{
    uint64_t k[IDLE_BEAT_SAMPLES], sum_o = 0, sum_k = 0, beat;

    for (unsigned i = 0; i < IDLE_BEAT_SAMPLES; i++) {
        uint64_t o = b->off_ms[i];

        /* round(o / (least / m)) */
        k[i] = (2 * o * m + least) / (2 * least);
        if (k[i] == 0 || k[i] > IDLE_BEAT_MAX_BEATS)
            return 0;
        sum_o += o;
        sum_k += k[i];
    }
    beat = (sum_o + sum_k / 2) / sum_k;
    if (beat < IDLE_BEAT_MIN_MS)
        return 0;
    for (unsigned i = 0; i < IDLE_BEAT_SAMPLES; i++) {
        uint64_t at = k[i] * beat, o = b->off_ms[i];

        if ((o > at ? o - at : at - o) > IDLE_BEAT_TOLERANCE_MS)
            return 0;
    }
    return beat;
}

bool
idle_beat_add(struct idle_beat *b, uint64_t off_ms)
{
    uint64_t least;

    if (b->beat_ms != 0)
        return false;
    b->off_ms[b->next] = off_ms;
    b->next = (b->next + 1) % IDLE_BEAT_SAMPLES;
    if (b->n < IDLE_BEAT_SAMPLES)
        b->n++;
    if (b->n < IDLE_BEAT_SAMPLES)
        return false;
    least = b->off_ms[0];
    for (unsigned i = 1; i < IDLE_BEAT_SAMPLES; i++) {
        if (b->off_ms[i] < least)
            least = b->off_ms[i];
    }
    /* The earliest change may itself have waited two or three beats. */
    for (uint64_t m = 1; m <= IDLE_BEAT_MAX_DIVISOR; m++) {
        uint64_t beat;

        if (least / m < IDLE_BEAT_MIN_MS)
            break;
        beat = fit(b, least, m);
        if (beat != 0) {
            b->beat_ms = beat;
            return true;
        }
    }
    return false;
}
