/*
 * access.h - the broker callbacks that decide what may pass: ACL_CHECK
 * (every publish, delivery, subscribe and unsubscribe) and MESSAGE (every
 * accepted publish, where a camera's payload is rate-limited and checked).
 *
 * Both run for every message, so they only do in-memory work: a bsearch
 * in the registry snapshot and the camera table, acl.c's string rules,
 * and for camera payloads proto's decoder. Refusals are counted by reason
 * (metrics.h) and logged within a log budget, so a flood cannot flood the
 * log as well.
 */
#ifndef BC_AUTH_ACCESS_H
#define BC_AUTH_ACCESS_H

/* MOSQ_EVT_ACL_CHECK: MOSQ_ERR_SUCCESS or MOSQ_ERR_ACL_DENIED. For a
 * camera's publish on its conn topic the payload is validated here too,
 * because the broker publishes a client's will without a MESSAGE event. */
int bc_access_on_acl_check(int event, void *event_data, void *userdata);

/* MOSQ_EVT_MESSAGE: a camera's message is refused (MOSQ_ERR_ACL_DENIED:
 * dropped, an MQTT v5 QoS 1 publisher gets PUBACK 135) when over its rate
 * or invalid; every other message passes untouched. */
int bc_access_on_message(int event, void *event_data, void *userdata);

#endif
