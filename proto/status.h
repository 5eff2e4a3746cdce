/*
 * status.h - the one status enum of the bodycam libraries.
 *
 * Every fallible function returns a bc_status; BC_OK is zero so that
 * "if (rc != BC_OK)" and "if (rc)" read the same. Results travel through
 * out-parameters. Where a caller needs to know *what* was wrong (which
 * field, which segment), the function also fills a caller-provided
 * bc_error, whose text is a complete sentence fit for a log line or an
 * ack's reason. A NULL bc_error pointer is always allowed.
 */
#ifndef BC_PROTO_STATUS_H
#define BC_PROTO_STATUS_H

#include <stddef.h>

typedef enum bc_status {
    BC_OK = 0,
    BC_ERR_INVAL,       /* an argument or a field has a wrong value */
    BC_ERR_NOMEM,       /* allocation failed */
    BC_ERR_PARSE,       /* not well-formed: bad JSON, bad UTF-8, bad encoding */
    BC_ERR_TOO_BIG,     /* over a size or nesting limit */
    BC_ERR_MISSING,     /* a required field is absent */
    BC_ERR_TYPE,        /* a field has the wrong JSON type */
    BC_ERR_VERSION,     /* unsupported schema or format version */
    BC_ERR_CRYPTO,      /* the crypto library failed (not the data) */
    BC_ERR_SIGNATURE,   /* a signature does not verify */
    BC_ERR_EXPIRED,     /* a signed object is past its expiry */
    BC_ERR_REPLAY,      /* a signed object was already seen */
    BC_ERR_TAMPERED,    /* authenticated data failed its check */
    BC_ERR_TRUNCATED,   /* data ends before its authenticated end */
    BC_ERR_WRONG_KEY,   /* data is sealed for another key */
    BC_ERR_IO,          /* a system call failed; errno is preserved */
    BC_ERR_NOT_FOUND,   /* the thing asked for does not exist */
    BC_ERR_STATE,       /* not allowed in the current state */
    BC_ERR_DENIED,      /* refused by policy */
    BC_ERR_EXISTS,      /* already exists */
    BC_ERR_UNAVAILABLE, /* a peer (broker, Redis) is not reachable */
    BC_STATUS_COUNT
} bc_status;

/* Detail for a failure: a sentence such as "field 'battery_pct': expected
 * a number, got a string". Filled only on failure; empty string otherwise. */
typedef struct bc_error {
    char text[256];
} bc_error;

/* A static, never-NULL name for a status ("invalid argument", ...). */
const char *bc_strerror(bc_status status);

/* Formats into err->text (truncating) when err is not NULL; returns status
 * so that a guard clause reads "return bc_fail(err, BC_ERR_TYPE, ...)". */
bc_status bc_fail(bc_error *err, bc_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err->text when err is not NULL. */
void bc_error_clear(bc_error *err);

#endif
