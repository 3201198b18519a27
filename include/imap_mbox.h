/* SPDX-License-Identifier: MIT */
/* imap_mbox: what a server says about mailboxes other than the selected
 * one, decoded from untrusted bytes: an untagged STATUS (RFC 3501 7.2.4,
 * as answered to STATUS or sent by NOTIFY, RFC 5465) and an untagged LIST
 * (RFC 3501 7.2.2, with RFC 5258's OLDNAME as NOTIFY sends on a rename).
 *
 * Names are decoded to UTF-8 (modified UTF-7 unless the connection uses
 * UTF8=ACCEPT; a name that is not valid modified UTF-7 is kept as sent),
 * INBOX in any case is spelt "INBOX". The decoded values are the caller's
 * (struct buf members: init with imap_mbox_*_init, free with _free). */
#ifndef IMAPSWEEP_IMAP_MBOX_H
#define IMAPSWEEP_IMAP_MBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "imap_parser.h"

struct imap_mbox_status {
    struct buf name;
    /* a value the line did not carry is false/0 (NOTIFY's STATUS after a
     * delivery has no UIDVALIDITY) */
    bool has_messages, has_uidnext, has_uidvalidity;
    uint32_t messages, uidnext, uidvalidity;
};

enum {
    IMAP_MBOX_NONEXISTENT = 1 << 0,  /* \NonExistent: deleted (or never) */
    IMAP_MBOX_NOSELECT = 1 << 1,     /* \Noselect */
};

struct imap_mbox_list {
    struct buf name;
    struct buf oldname;              /* valid when has_oldname */
    bool has_oldname;
    unsigned flags;                  /* IMAP_MBOX_* */
    char delimiter;                  /* 0: NIL (a flat namespace) */
};

/* Results of the decoders. */
enum imap_mbox_result {
    IMAP_MBOX_OK = 0,
    IMAP_MBOX_OTHER = 1,             /* not a STATUS (LIST) response */
    IMAP_MBOX_MALFORMED = -1,        /* it is one, but not well formed */
};

void imap_mbox_status_init(struct imap_mbox_status *st);
void imap_mbox_status_free(struct imap_mbox_status *st);
/* Decode "* STATUS name (item value ...)". Items other than MESSAGES,
 * UIDNEXT and UIDVALIDITY are skipped (each must still have a value).
 * Malformed: no name, no list, an odd number of items, a known item whose
 * value is not a 32-bit number, an item given twice. */
enum imap_mbox_result imap_mbox_parse_status(const struct imap_response *r,
                                             bool utf8,
                                             struct imap_mbox_status *st);

void imap_mbox_list_init(struct imap_mbox_list *l);
void imap_mbox_list_free(struct imap_mbox_list *l);
/* Decode "* LIST (flags) delimiter name [(extended items)]"; the one
 * extended item understood is OLDNAME ("OLDNAME" (oldname)). */
enum imap_mbox_result imap_mbox_parse_list(const struct imap_response *r,
                                           bool utf8,
                                           struct imap_mbox_list *l);

#endif
