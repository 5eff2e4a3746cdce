/*
 * tick.h - the broker-thread housekeeping, run from MOSQ_EVT_TICK (every
 * pass of the broker's loop, at least every 100 ms in 2.0.11).
 *
 * On every tick: take over a new registry snapshot if the worker made one
 * (one atomic load when there is none), which kicks revoked clients. At
 * most every 100 ms: notice Redis going down or up and worker errors, and
 * when metrics_interval_s has passed, publish the counters as a retained
 * message on bodycam/v1/broker/metrics and log them.
 */
#ifndef BC_AUTH_TICK_H
#define BC_AUTH_TICK_H

/* MOSQ_EVT_TICK. Always MOSQ_ERR_SUCCESS. */
int bc_tick_on_tick(int event, void *event_data, void *userdata);

#endif
