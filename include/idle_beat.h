/* SPDX-License-Identifier: MIT */
/* idle_beat: is the server's IDLE a poll?
 *
 * A server whose IDLE only polls (Courier without IMAP_ENHANCEDIDLE,
 * Cyrus without idled, Dovecot without inotify) looks at the mailbox on a
 * fixed beat that starts when IDLE starts, and says what changed only then:
 * every change it announces during IDLE comes a whole number of beats after
 * the IDLE command, to within milliseconds. A server that pushes announces
 * a change when it happens, at no particular time after the IDLE began.
 *
 * The owner feeds the time, from the start of that IDLE, of each change
 * the server announced while idling (EXISTS, EXPUNGE, FETCH: not its
 * keepalives, and never what answers the owner's own commands). Only the
 * owner's clock is used: no server clock, no INTERNALDATE, so clock skew,
 * moved or back-dated messages cannot mislead it; and a quiet mailbox gives
 * no samples, so it never concludes anything from silence.
 *
 * Verdict: the last IDLE_BEAT_SAMPLES changes all lie on one beat: each
 * within IDLE_BEAT_TOLERANCE_MS of a whole number (1 to IDLE_BEAT_MAX_BEATS)
 * of beats, the beat (fitted to all of them) at least IDLE_BEAT_MIN_MS and
 * close to the earliest change divided by 1, 2 or 3 (it may itself have
 * waited a beat or two). Changes at random times (pushed) rarely line up
 * seven times running: of 5,000,000 changes each spread over 0-10 s, 0-60 s
 * or 0-10 min after IDLE starts, none did; over 4-8 s or 4-20 s (every
 * change in a narrow window: the worst case), one did. A real poll is found
 * after about seven changes (60 s beat, mail at random times, 100 ms of
 * jitter), seven when every change waits exactly one beat (simulated in
 * tests/unit/test_idle_beat.c). A pure value type: no allocation, no I/O. */
#ifndef IMAPSWEEP_IDLE_BEAT_H
#define IMAPSWEEP_IDLE_BEAT_H

#include <stdbool.h>
#include <stdint.h>

#define IDLE_BEAT_SAMPLES 7
#define IDLE_BEAT_TOLERANCE_MS 100
#define IDLE_BEAT_MIN_MS 4000
#define IDLE_BEAT_MAX_DIVISOR 3
#define IDLE_BEAT_MAX_BEATS 20

struct idle_beat {
    uint64_t off_ms[IDLE_BEAT_SAMPLES]; /* a ring of the last offsets */
    unsigned n;                         /* samples seen (saturates) */
    unsigned next;
    uint64_t beat_ms;                   /* the beat once found, else 0 */
};

/* Zeroed memory is an empty detector; this is the same. */
void idle_beat_init(struct idle_beat *b);
/* One announced change, off_ms after the server accepted IDLE. Returns
 * true exactly once: when the beat is first found (then b->beat_ms holds
 * it); later samples change nothing. */
bool idle_beat_add(struct idle_beat *b, uint64_t off_ms);

#endif
