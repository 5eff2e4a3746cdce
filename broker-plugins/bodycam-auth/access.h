/*
 * access.h - the broker callback that decides what may pass: ACL_CHECK
 * (every publish and will, every delivery, subscribe and unsubscribe; for
 * a camera's publish also its rate and its payload).
 *
 * It runs for every message, so it only does in-memory work: a bsearch
 * in the registry snapshot and the camera table, acl.c's string rules,
 * and for camera payloads proto's decoder. Refusals are counted by reason
 * (metrics.h) and logged within a log budget, so a flood cannot flood the
 * log as well.
 */
#ifndef BC_AUTH_ACCESS_H
#define BC_AUTH_ACCESS_H

/* MOSQ_EVT_ACL_CHECK: MOSQ_ERR_SUCCESS or MOSQ_ERR_ACL_DENIED. A camera's
 * publish (and will) that the topic rules allow is also rate-limited and
 * its payload validated here (see access.c for why not in MESSAGE). */
int bc_access_on_acl_check(int event, void *event_data, void *userdata);

#endif
