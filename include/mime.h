/* SPDX-License-Identifier: MIT */
/* mime: header fields of a message as fetched with
 * BODY.PEEK[HEADER.FIELDS (…)]: unfolded, split into fields, and decoded
 * from RFC 2047 encoded-words into UTF-8, so rules can match what a mail
 * reader shows. Pure functions; output is always valid UTF-8. */
#ifndef IMAPSWEEP_MIME_H
#define IMAPSWEEP_MIME_H

#include <stddef.h>

struct mime_field {
    char *name;    /* as written ("Subject") */
    char *value;   /* unfolded, trimmed, decoded, UTF-8 */
};

struct mime_fields {
    struct mime_field *f;
    size_t n, cap;
};

/* Parse a header block (CRLF or LF line ends; stops at the first empty
 * line). Appends to out; lines that are not fields are skipped. */
void mime_fields_parse(const char *data, size_t len, struct mime_fields *out);
void mime_fields_free(struct mime_fields *fields);
/* The first field with this name (case-insensitive) or NULL. */
const char *mime_fields_get(const struct mime_fields *fields,
                            const char *name);

/* Decode RFC 2047 encoded-words (B and Q, any charset iconv knows; RFC 2231
 * language tags ignored; whitespace between adjacent words dropped) in an
 * unfolded header value. Words that cannot be decoded stay as written;
 * bytes that are not UTF-8 become U+FFFD. Caller frees. */
char *mime_decode_words(const char *value, size_t len);

#endif
