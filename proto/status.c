#include "proto/status.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const status_names[BC_STATUS_COUNT] = {
    [BC_OK] = "ok",
    [BC_ERR_INVAL] = "invalid argument",
    [BC_ERR_NOMEM] = "out of memory",
    [BC_ERR_PARSE] = "malformed input",
    [BC_ERR_TOO_BIG] = "over a size or depth limit",
    [BC_ERR_MISSING] = "required field missing",
    [BC_ERR_TYPE] = "wrong field type",
    [BC_ERR_VERSION] = "unsupported version",
    [BC_ERR_CRYPTO] = "crypto library failure",
    [BC_ERR_SIGNATURE] = "bad signature",
    [BC_ERR_EXPIRED] = "expired",
    [BC_ERR_REPLAY] = "replayed",
    [BC_ERR_TAMPERED] = "authentication failed (tampered)",
    [BC_ERR_TRUNCATED] = "truncated",
    [BC_ERR_WRONG_KEY] = "sealed for another key",
    [BC_ERR_IO] = "I/O error",
    [BC_ERR_NOT_FOUND] = "not found",
    [BC_ERR_STATE] = "not allowed in this state",
    [BC_ERR_DENIED] = "denied by policy",
    [BC_ERR_EXISTS] = "already exists",
    [BC_ERR_UNAVAILABLE] = "peer unavailable",
};

const char *bc_strerror(bc_status status)
{
    if ((unsigned)status >= BC_STATUS_COUNT || status_names[status] == NULL)
        return "unknown status";
    return status_names[status];
}

bc_status bc_fail(bc_error *err, bc_status status, const char *fmt, ...)
{
    if (err == NULL)
        return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return status;
}

void bc_error_clear(bc_error *err)
{
    if (err != NULL)
        err->text[0] = '\0';
}
