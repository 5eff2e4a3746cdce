/*
 * cameras.h - what the broker knows about each camera that authenticated.
 *
 * The registry says what a camera may be; this table says what happened in
 * this broker run: that the camera passed BASIC_AUTH and has not been
 * kicked since (the ones to re-check when the registry changes), the
 * fingerprint of the certificate it used (so removing that fingerprint
 * kicks it, removing another one does not), and its rate buckets (kept
 * across reconnects, so reconnecting does not refill them).
 *
 * A sorted array searched with bsearch(); one entry per device id ever
 * authenticated, dropped when the device leaves the registry. Broker
 * thread only.
 */
#ifndef BC_AUTH_CAMERAS_H
#define BC_AUTH_CAMERAS_H

#include <stddef.h>
#include <stdint.h>

#include "broker-plugins/bodycam-auth/ratelimit.h"
#include "broker-plugins/bodycam-auth/registry.h"
#include "proto/status.h"
#include "proto/topic.h"

typedef struct bc_camera {
    char id[BC_DEVICE_ID_MAX + 1];
    int authenticated; /* passed BASIC_AUTH and not kicked since: re-check on change */
    uint8_t fingerprint[BC_FINGERPRINT_LEN];
    bc_rate_state rate;
} bc_camera;

typedef struct bc_camera_table {
    bc_camera *items;
    size_t count;
    size_t cap;
} bc_camera_table;

/* The entry for id, or NULL. Borrowed: valid until the next insert/prune. */
bc_camera *bc_cameras_find(bc_camera_table *t, const char *id);

/* The entry for id, created (zeroed, not authenticated) when missing.
 * BC_ERR_INVAL for an id outside the device alphabet, BC_ERR_NOMEM. */
bc_status bc_cameras_get(bc_camera_table *t, const char *id, bc_camera **out);

/* Drops every entry whose id is not a device of snapshot s. */
void bc_cameras_prune(bc_camera_table *t, const bc_registry_snapshot *s);

void bc_cameras_free(bc_camera_table *t);

#endif
