/* SPDX-License-Identifier: MIT */
/* rule: the rule model (a match tree and an action) and its compilation into
 * an IMAP SEARCH plus client-side checks. No I/O, no logging; IMAP syntax is
 * produced only through imap_build.
 *
 * A match tree compiles, for a given server and moment, into:
 *  - one SEARCH key list that selects a superset of the matches (exactly the
 *    matches when every key can be evaluated by the server);
 *  - when needed, auxiliary SEARCHes for server-only keys nested under
 *    any/not next to client-side keys;
 *  - a client-side evaluation over fetched headers, body digests and
 *    INTERNALDATE, run only on the UIDs the SEARCH returned. */
#ifndef IMAPSWEEP_RULE_H
#define IMAPSWEEP_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "uidset.h"

struct imap_build;
/* A compiled regular expression (PCRE2, rule.c); owned by its node. */
struct rule_regex;

enum rule_key {
    RULE_ALL,            /* all: true */
    RULE_AND,            /* a match map: every child holds */
    RULE_ANY,            /* any: [match…] */
    RULE_NOT,            /* not: match (one child) */
    /* server-side, substring (str) */
    RULE_FROM,
    RULE_TO,
    RULE_CC,
    RULE_BCC,
    RULE_SUBJECT,
    RULE_BODY,
    RULE_TEXT,
    RULE_HEADER,         /* header: {Name: substring} (name, str) */
    RULE_OLDER,          /* older_than: duration (num, seconds) */
    RULE_NEWER,          /* newer_than: duration (num, seconds) */
    RULE_LARGER,         /* larger_than: size (num, bytes) */
    RULE_SMALLER,        /* smaller_than: size (num, bytes) */
    RULE_SEEN,           /* bool (flag) */
    RULE_FLAGGED,
    RULE_ANSWERED,
    RULE_DRAFT,
    /* client-side */
    RULE_BODY_MD5,       /* digest (digest, digest_len 16) */
    RULE_BODY_SHA256,    /* digest (digest, digest_len 32) */
    RULE_SUBJECT_REGEX,  /* regex */
    RULE_FROM_REGEX,     /* regex */
    RULE_HEADER_REGEX,   /* header_regex: {Name: regex} (name, regex) */
    RULE_DUPLICATE,      /* duplicate: message_id | body (dup); top level only */
    RULE_KEY_COUNT
};

/* What YAML value a key takes (so the config loader knows what to expect). */
enum rule_value_kind {
    RULE_VALUE_TRUE,       /* all: must be true */
    RULE_VALUE_MATCH,      /* not: a match map */
    RULE_VALUE_MATCH_LIST, /* any: a sequence of match maps */
    RULE_VALUE_STRING,
    RULE_VALUE_HEADER_MAP, /* header / header_regex: {Name: value, …} */
    RULE_VALUE_DURATION,
    RULE_VALUE_SIZE,
    RULE_VALUE_BOOL,
    RULE_VALUE_DIGEST,
    RULE_VALUE_REGEX,
    RULE_VALUE_DUPLICATE,  /* message_id | body */
};

enum rule_dup {
    RULE_DUP_NONE,
    RULE_DUP_MESSAGE_ID,
    RULE_DUP_BODY,
};

struct rule_node {
    enum rule_key key;
    unsigned line, col;     /* where the key appeared (for messages) */
    char *name;             /* HEADER, HEADER_REGEX: the field name */
    char *str;              /* string keys; also the regex source text */
    uint64_t num;           /* seconds or bytes */
    bool flag;              /* bool keys */
    unsigned char digest[32];
    size_t digest_len;
    struct rule_regex *re;  /* regex keys: the compiled pattern */
    enum rule_dup dup;
    struct rule_node **children; /* AND, ANY, NOT */
    size_t n_children, cap_children;
};

enum rule_action {
    RULE_ACTION_DELETE,
    RULE_ACTION_TRASH,
    RULE_ACTION_MOVE,
    RULE_ACTION_FLAG,
};

struct rule {
    char *name;
    unsigned line, col;
    char **mailboxes;       /* restriction; n_mailboxes == 0: every mailbox */
    size_t n_mailboxes;
    struct rule_node *match;
    enum rule_action action;
    char *target;           /* MOVE: destination mailbox (UTF-8) */
    bool create;            /* MOVE: create the target when it is missing
                             * (create: true); otherwise the move fails */
    char **flags;           /* FLAG: "\Seen", "$Label", … */
    size_t n_flags;
    uint32_t keep_newest;   /* 0: keep none */
    int dry_run;            /* -1 inherit, 0 no, 1 yes */
};

/* --- building (used by the config loader) -------------------------------- */

/* Key names as written in YAML ("from", "older_than", …). */
const char *rule_key_name(enum rule_key key);
/* Look up a YAML key; return 0 or -ENOENT. */
int rule_key_lookup(const char *name, enum rule_key *key_r);
enum rule_value_kind rule_key_value_kind(enum rule_key key);
/* True for keys evaluated on the client (digests, regexes, duplicate). */
bool rule_key_is_client(enum rule_key key);

struct rule_node *rule_node_new(enum rule_key key, unsigned line,
                                unsigned col);
/* Takes ownership of child. */
void rule_node_add_child(struct rule_node *parent, struct rule_node *child);
/* NULL-safe; frees children, regex and strings. */
void rule_node_free(struct rule_node *node);

/* Setters that validate. On error they return -EINVAL and set *err_r to a
 * message the caller frees (no position: the caller adds it). */
int rule_node_set_string(struct rule_node *n, const char *s, char **err_r);
int rule_node_set_header_name(struct rule_node *n, const char *name,
                              char **err_r);
/* A regular expression in Perl syntax (PCRE2), matched case-insensitively
 * on UTF-8 text with Unicode properties (\w, \d, \b know letters beyond
 * ASCII), without JIT (the unit sets MemoryDenyWriteExecute). On error
 * *err_r has PCRE2's message and the byte offset in the pattern where it
 * noticed the problem. */
int rule_node_set_regex(struct rule_node *n, const char *pattern,
                        char **err_r);
/* Match text (len bytes). Bytes that are not valid UTF-8 never match but do
 * not fail the match. Returns 1 (matches), 0 (does not) or -1 (PCRE2's
 * match, depth or heap limit was reached: no answer, which callers treat
 * as "no evidence", never as a match nor as a non-match under not:). */
int rule_regex_match(const struct rule_regex *re, const char *text,
                     size_t len);
/* Hex digest of exactly 32 (md5) or 64 (sha256) hex digits. */
int rule_node_set_digest(struct rule_node *n, const char *hex, char **err_r);
int rule_node_set_duplicate(struct rule_node *n, const char *what,
                            char **err_r);
/* An IMAP flag for a flag action: a system flag (\Seen \Answered \Flagged
 * \Deleted \Draft) or a keyword atom. Returns 0 or -EINVAL with *err_r. */
int rule_check_flag(const char *flag, char **err_r);
/* A mailbox name for move / trash_mailbox / watched lists: non-empty valid
 * UTF-8 without CR, LF or NUL. */
int rule_check_mailbox(const char *name, char **err_r);

/* Structural checks of a complete match tree: empty maps, `duplicate`
 * outside the top level, `all: true` mixed into any/not. Calls report() for
 * each problem with the node's position; returns the number of problems. */
typedef void rule_report_cb(void *arg, unsigned line, unsigned col,
                            const char *msg);
unsigned rule_validate(const struct rule *rule, rule_report_cb *report,
                       void *arg);

struct rule *rule_new(const char *name, unsigned line, unsigned col);
/* NULL-safe. */
void rule_free(struct rule *rule);
/* True if the rule applies to this mailbox (INBOX compared without case). */
bool rule_applies_to(const struct rule *rule, const char *mailbox);
/* True if the rule only previews: --dry-run (force) wins, then the rule's
 * own dry_run, then the daemon's (default). */
bool rule_is_dry(const struct rule *rule, bool force, bool default_dry);
/* --- in words (rule_text.c) --------------------------------------------- */

/* A match (sub)tree in words: "whose From contains \"Cron Daemon\" and
 * older than 14d". Caller frees. */
char *rule_describe_match(const struct rule_node *n);
/* What the rule does: "delete messages whose From contains \"Cron
 * Daemon\"", "move messages ... to \"Archive\" (created if missing)",
 * with keep_newest said (not dry runs: the caller knows which apply).
 * Caller frees. */
char *rule_describe(const struct rule *rule);
/* True if the match names no mail, only age, size or flag keys (all: true
 * says that is meant): such a rule acts on whole mailboxes. */
bool rule_match_is_broad(const struct rule *rule);

/* A canonical text of everything that affects behaviour, for comparing
 * rules across reloads. Caller frees. */
char *rule_canonical(const struct rule *rule);
const char *rule_action_name(enum rule_action action);

/* --- compiling ----------------------------------------------------------- */

struct rule_caps {
    bool within;  /* RFC 5032: OLDER / YOUNGER */
};

/* What the client-side evaluation needs fetched for each candidate. */
enum rule_need {
    RULE_NEED_HEADERS = 1 << 0,      /* rule_plan_headers() */
    RULE_NEED_MD5 = 1 << 1,          /* digest of BODY.PEEK[TEXT] */
    RULE_NEED_SHA256 = 1 << 2,
    RULE_NEED_INTERNALDATE = 1 << 3,
};

/* One decoded header field of a message (UTF-8, unfolded, RFC 2047
 * decoded). Several entries may share a name. */
struct rule_header {
    const char *name;
    const char *value;
};

struct rule_msg {
    uint32_t uid;
    const struct rule_header *headers;
    size_t n_headers;
    unsigned char md5[16];
    unsigned char sha256[32];
    bool has_md5, has_sha256;
    int64_t internaldate;   /* seconds since the epoch */
    bool has_internaldate;
};

struct rule_plan;

/* Compile rule for a server with caps at time now. Never fails. */
struct rule_plan *rule_plan_new(const struct rule *rule,
                                const struct rule_caps *caps, time_t now);
void rule_plan_free(struct rule_plan *plan);

/* Append the rule's SEARCH command arguments to b, after the caller's
 * "UID SEARCH": [RETURN (ALL)] [CHARSET UTF-8] [UID lo:*] keys. With
 * uid_lo == 0 there is no UID range; lo:* also matches the highest UID
 * when that is below lo, so the caller clips the result. esearch asks for
 * RETURN (ALL). */
void rule_plan_build_search(const struct rule_plan *plan,
                            struct imap_build *b, uint32_t uid_lo,
                            bool esearch);

/* The same over uid_lo:uid_hi (uid_hi 0: "*"), for a sweep of a known
 * range (explain: one UID). */
void rule_plan_build_search_range(const struct rule_plan *plan,
                                  struct imap_build *b, uint32_t uid_lo,
                                  uint32_t uid_hi, bool esearch);

/* Auxiliary searches (server-only keys nested under any/not beside
 * client-side keys): their count, and the i-th restricted to candidates. */
size_t rule_plan_aux_count(const struct rule_plan *plan);
void rule_plan_build_aux(const struct rule_plan *plan, size_t i,
                         struct imap_build *b, const struct uidset *cands,
                         bool esearch);

/* True if the SEARCH result must be filtered on the client. */
bool rule_plan_client_side(const struct rule_plan *plan);
unsigned rule_plan_needs(const struct rule_plan *plan);  /* rule_need */
/* Header field names to fetch (canonical capitalisation, no duplicates). */
const char *const *rule_plan_headers(const struct rule_plan *plan,
                                     size_t *n_r);
/* Client-side evaluation of one candidate. aux[i] holds the result of the
 * i-th auxiliary search (NULL when there are none). */
bool rule_plan_eval(const struct rule_plan *plan, const struct rule_msg *msg,
                    const struct uidset *aux);
/* The rule's duplicate key (set-level, handled by the caller). */
enum rule_dup rule_plan_duplicate(const struct rule_plan *plan);

/* --- parts (explain) -------------------------------------------------------
 * A match's parts are the keys of its top-level map, all of which must
 * hold. Each is decided either by the server (its own SEARCH) or on the
 * client (fetched data, with the plan's auxiliary searches). */
size_t rule_plan_n_parts(const struct rule_plan *plan);
const struct rule_node *rule_plan_part(const struct rule_plan *plan,
                                       size_t i);
/* True if SEARCH alone decides part i. */
bool rule_plan_part_server(const struct rule_plan *plan, size_t i);
/* For a server part: "[RETURN (ALL)] [CHARSET UTF-8] UID set keys". */
void rule_plan_build_part_search(const struct rule_plan *plan, size_t i,
                                 struct imap_build *b,
                                 const struct uidset *uids, bool esearch);
/* For a client part: 1 holds, 0 does not, -1 no answer (data missing, a
 * regex gave up). aux as for rule_plan_eval (restricted to msg's UID). */
int rule_plan_part_eval(const struct rule_plan *plan, size_t i,
                        const struct rule_msg *msg, const struct uidset *aux);

/* SEARCH keys that select messages lacking at least one of a flag rule's
 * flags, appended to b (for "act only where it changes something"). */
void rule_build_flag_filter(const struct rule *rule, struct imap_build *b);

#endif
