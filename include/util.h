/* SPDX-License-Identifier: MIT */
/* util: allocation that never fails, container_of, strict number parsing,
 * secret wiping. Depends on libc only. */
#ifndef IMAPSWEEP_UTIL_H
#define IMAPSWEEP_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The struct that embeds `ptr` as `member`. The pointer comparison makes the
 * compiler check that ptr has the member's type. */
#define container_of(ptr, type, member)                                       \
    ((type *)((char *)(1 ? (ptr) : &((type *)0)->member) -                   \
              offsetof(type, member)))

#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* Allocation: these abort with a message on out-of-memory; they never return
 * NULL (a daemon that half-fails an allocation is worse than one that stops
 * and is restarted by systemd). xmalloc(0) returns a valid pointer. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
/* xrealloc for arrays, checking n * size for overflow. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);
char *xvasprintf(const char *fmt, va_list ap) PRINTF_LIKE(1, 0);

/* Grow an array so that index `need - 1` is valid; doubles the capacity. */
#define ARRAY_GROW(arr, cap, need)                                            \
    do {                                                                      \
        if ((need) > (cap)) {                                                 \
            size_t new_cap_ = (cap) ? (cap) : 8;                              \
            while (new_cap_ < (need))                                         \
                new_cap_ *= 2;                                                \
            (arr) = xreallocarray((arr), new_cap_, sizeof(*(arr)));           \
            (cap) = new_cap_;                                                 \
        }                                                                     \
    } while (0)

/* Overwrite memory in a way the compiler may not elide. */
void util_wipe(void *p, size_t n);
/* Wipe a NUL-terminated secret and free it. NULL-safe. */
void util_free_secret(char *s);

/* Strict unsigned decimal parsing of exactly `len` bytes: digits only (no
 * sign, no spaces), value <= max. Return 0 and set *r, or -EINVAL (not a
 * number) / -ERANGE (above max), leaving *r untouched. */
int util_parse_u64(const char *s, size_t len, uint64_t max, uint64_t *r);
int util_parse_u32(const char *s, size_t len, uint32_t *r);

/* ASCII case-insensitive comparisons (locale-independent). */
bool util_strcaseeq(const char *a, const char *b);
bool util_strncaseeq(const char *a, const char *b, size_t n);
char util_toupper(char c);

/* The value of a hex digit (either case), or -1. */
int util_hex_value(char c);
/* The value of a base64 digit, or -1. c63 is the 64th digit: '/' in
 * RFC 4648 base64, ',' in IMAP's modified base64 (RFC 3501 5.1.3). */
int util_base64_value(char c, char c63);

/* True if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool util_utf8_valid(const char *s, size_t len);

/* Copy with truncation; always NUL-terminates when size > 0. Returns
 * strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t size);

#endif
