/*
 * registry_admin.h - changing the device registry and the dashboard users
 * in Redis: what the operator tools (bodycamctl, bodycam-registry) share.
 *
 * The key layout is the broker plugin's (broker-plugins/bodycam-auth/
 * registry.h, documented in broker-plugins/README.md); the plugin only
 * reads it. Every change here is one MULTI/EXEC that also INCRs
 * bodycam:registry:version, so the plugin's worker sees it on its next poll
 * and the broker kicks a camera that is no longer allowed within a second.
 * Read-modify-write changes WATCH the key they read and start again when
 * someone else changed it in between (at most BC_REGISTRY_ADMIN_RETRIES
 * times, then BC_ERR_STATE).
 *
 * Statuses: those of bc_redis_command (BC_ERR_UNAVAILABLE when Redis is
 * down, BC_ERR_STATE for an error reply), BC_ERR_NOT_FOUND for a device or
 * user that is not there, BC_ERR_INVAL for a bad id, BC_ERR_TOO_BIG for a
 * device that already has BC_REGISTRY_MAX_FINGERPRINTS fingerprints.
 * Nothing is printed: err says what went wrong.
 */
#ifndef BC_TOOLS_REGISTRY_ADMIN_H
#define BC_TOOLS_REGISTRY_ADMIN_H

#include <stdbool.h>

#include "broker-plugins/bodycam-auth/registry.h"
#include "common/stream.h"
#include "proto/status.h"

#define BC_REGISTRY_ADMIN_RETRIES 10
#define BC_REGISTRY_FP_HEX_LEN (2 * BC_FINGERPRINT_LEN)
#define BC_REGISTRY_FP_LIST_MAX (BC_REGISTRY_MAX_FINGERPRINTS * (BC_REGISTRY_FP_HEX_LEN + 1))

/* What a device change found and left. */
typedef struct bc_registry_change {
    bool existed;              /* the device was in the registry before */
    bool changed;              /* something was written (and the version bumped) */
    bc_device_status previous; /* when existed */
    bc_device_status status;   /* as left */
    char fingerprints[BC_REGISTRY_FP_LIST_MAX + 1]; /* as left: comma list of lowercase hex */
} bc_registry_change;

/* The registry's fingerprint of a certificate (SHA-256 of the DER, 64
 * lowercase hex digits), as bodycam-pki prints it. BC_ERR_IO, BC_ERR_PARSE. */
bc_status bc_registry_admin_cert_fingerprint(const char *pem_path,
                                             char hex[BC_REGISTRY_FP_HEX_LEN + 1], bc_error *err);

/* Adds a fingerprint (64 hex digits, either case) to a device, creating the
 * device with status active when it is not registered. A fingerprint it
 * already has changes nothing (out->changed false). */
bc_status bc_registry_admin_add_fingerprint(bc_redis *r, const char *id, const char *hex,
                                            bc_registry_change *out, bc_error *err);

/* Removes a fingerprint from a device (BC_ERR_NOT_FOUND without the device). */
bc_status bc_registry_admin_remove_fingerprint(bc_redis *r, const char *id, const char *hex,
                                               bc_registry_change *out, bc_error *err);

/* Sets a registered device's status; the same status changes nothing. */
bc_status bc_registry_admin_set_status(bc_redis *r, const char *id, bc_device_status status,
                                       bc_registry_change *out, bc_error *err);

/* Forgets a device (it is then unknown to the broker: refused).
 * *existed (may be NULL) tells whether it was there. */
bc_status bc_registry_admin_remove_device(bc_redis *r, const char *id, bool *existed,
                                          bc_error *err);

/* One device as the registry holds it (fingerprints parsed). A device whose
 * entry the broker would skip (bad status or fingerprints) is BC_ERR_PARSE. */
bc_status bc_registry_admin_device_get(bc_redis *r, const char *id, bc_registry_device *out,
                                       bc_error *err);

/* Creates or replaces a dashboard user's password hash (password.h format). */
bc_status bc_registry_admin_dashboard_set(bc_redis *r, const char *name, const char *hash,
                                          bc_error *err);

/* Removes a dashboard user; *existed (may be NULL) as above. */
bc_status bc_registry_admin_dashboard_remove(bc_redis *r, const char *name, bool *existed,
                                             bc_error *err);

/* Whether name is a dashboard user name ([A-Za-z0-9_-]{1,64}). */
bool bc_registry_admin_user_valid(const char *name);

#endif
