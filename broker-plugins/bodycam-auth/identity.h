/*
 * identity.h - who a client is: decided once in BASIC_AUTH, looked up on
 * every later operation, and withdrawn when the registry changes.
 *
 * Mosquitto 2.0.11 has no CONNECT event and skips BASIC_AUTH entirely on a
 * listener with use_identity_as_username, so the TLS listener must have
 * `require_certificate true` and NOT use_identity_as_username: then
 * BASIC_AUTH runs for every client, mosquitto_client_certificate() gives
 * the verified certificate, and this module sets the broker username
 * itself (mosquitto_set_username):
 *
 *   certificate, CN a configured service  -> "service:<name>"     role service
 *   certificate, CN a device id           -> "camera:<device id>" role camera
 *   no certificate, username + password   -> "dashboard:<user>"   role dashboard
 *
 * Every later callback maps the username back to a principal
 * (bc_identity_principal). A principal exists only for a username of that
 * form whose identity the current registry snapshot still allows (a camera
 * that is active, a configured service, a dashboard user whose stored hash
 * is the one its password was checked against in this run). The same
 * mapping serves the broker's `check_retain_source` re-check, which asks
 * with the original publisher's username: a retained message of a camera
 * revoked since is no longer delivered. Experiment (2.0.11): on a listener
 * with use_identity_as_username the broker never calls BASIC_AUTH and sets
 * the bare CN as username; such a client has no principal here and is
 * refused everything.
 */
#ifndef BC_AUTH_IDENTITY_H
#define BC_AUTH_IDENTITY_H

#include <stddef.h>

#include "broker-plugins/bodycam-auth/acl.h"
#include "broker-plugins/bodycam-auth/auth.h"

/* MOSQ_EVT_BASIC_AUTH: MOSQ_ERR_SUCCESS, or MOSQ_ERR_AUTH with the reason
 * counted and logged. Runs a slow password hash for dashboard users (see
 * password.h), within the slow-check budget. */
int bc_identity_on_basic_auth(int event, void *event_data, void *userdata);

/* The principal of a broker username (NULL: none). name points into
 * username or into the state (borrowed). Returns the role. */
bc_role bc_identity_principal(bc_auth *a, const char *username, bc_principal *out);

/* Takes over a new registry snapshot (ownership passes to a): kicks every
 * camera that is no longer active or whose certificate fingerprint was
 * removed, and every dashboard user who was removed or whose password
 * changed; then frees the old snapshot. Broker thread (TICK) only. */
void bc_identity_apply_registry(bc_auth *a, bc_registry_snapshot *next);

/* Prepares the dashboard state (random MAC key, dummy hash). BC_ERR_CRYPTO
 * or BC_ERR_NOMEM on failure. */
bc_status bc_identity_init(bc_auth *a, bc_error *err);
void bc_identity_cleanup(bc_auth *a);

/* Copies s into out for a log line: bytes outside printable ASCII become
 * '?', at most size - 1 bytes. A NULL s gives "(none)". */
const char *bc_identity_printable(const char *s, char *out, size_t size);

#endif
