/* SPDX-License-Identifier: MIT */
#include "errors.h"

#include <string.h>

#include <uv.h>

const char *
errors_str(int code)
{
    switch (code) {
#define ERRORS_CASE(name, value, msg)                                         \
    case ERR_##name:                                                          \
        return msg;
        ERRORS_MAP(ERRORS_CASE)
#undef ERRORS_CASE
    case 0:
        return "success";
    default:
        return code < 0 ? uv_strerror(code) : "unknown error";
    }
}

const char *
errors_name(int code)
{
    switch (code) {
#define ERRORS_CASE(name, value, msg)                                         \
    case ERR_##name:                                                          \
        return "ERR_" #name;
        ERRORS_MAP(ERRORS_CASE)
#undef ERRORS_CASE
    case 0:
        return "OK";
    default:
        return code < 0 ? uv_err_name(code) : "UNKNOWN";
    }
}
