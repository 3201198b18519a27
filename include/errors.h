/* SPDX-License-Identifier: MIT */
/* errors: the project's error codes. Functions return 0 or a negative code:
 * either -errno (as libuv does, so UV_E* values mix freely) or one of the
 * ERR_* codes below, which lie outside the errno range. */
#ifndef IMAPSWEEP_ERRORS_H
#define IMAPSWEEP_ERRORS_H

/* X(name, value, message) */
#define ERRORS_MAP(X)                                                         \
    X(PROTOCOL, -5001, "server sent something that is not valid IMAP")      \
    X(LIMIT, -5002, "server response exceeds a limit")                       \
    X(TLS, -5003, "TLS error")                                               \
    X(TLS_VERIFY, -5004, "server certificate not trusted")                   \
    X(AUTH, -5005, "authentication failed")                                  \
    X(TIMEOUT, -5006, "timed out")                                           \
    X(BYE, -5007, "server closed the connection (BYE)")                      \
    X(CMD_NO, -5008, "server refused the command")                           \
    X(CMD_BAD, -5009, "server rejected the command as invalid")              \
    X(CANCELLED, -5010, "cancelled")                                         \
    X(CLOSED, -5011, "connection closed by server")                          \
    X(UIDVALIDITY, -5012, "UIDVALIDITY changed")                             \
    X(SECRET, -5013, "could not obtain the secret")                          \
    X(UNSUPPORTED, -5014, "server lacks a required capability")              \
    X(CONFIG, -5015, "invalid configuration")                                \
    X(BAD_STATE, -5016, "operation not valid in this state")

enum errors_code {
#define ERRORS_ENUM(name, value, msg) ERR_##name = (value),
    ERRORS_MAP(ERRORS_ENUM)
#undef ERRORS_ENUM
};

/* Human-readable message for any code (ERR_* or -errno). Never NULL. */
const char *errors_str(int code);
/* Short symbolic name ("ERR_TIMEOUT", "ECONNREFUSED"). Never NULL. */
const char *errors_name(int code);

#endif
