/*
 * main.c - bodycam-firmware-rollout: the option table and the daemon
 * skeleton.
 */
#include <unistd.h>

#include "common/daemon.h"
#include "firmware-rollout/fwrollout.h"

static fw_service svc;

#define STR(field) BC_DAEMON_STR(svc.cfg, field)
#define INT(field) BC_DAEMON_INT(svc.cfg, field)

static const bc_config_option options[] = {
    {"instance", BC_CFG_STRING, 0, FW_INSTANCE_MAX, "1", STR(instance), NULL,
     "this instance's name, fixed across restarts: stream consumer firmware-rollout-<instance> "
     "and status key; [A-Za-z0-9_-]"},
    BC_DAEMON_OPTIONS_REDIS(svc.cfg, "2000"),
    BC_DAEMON_OPTIONS_BACKOFF(svc.cfg),
    BC_DAEMON_OPTIONS_CONSUMER(svc.cfg),
    {"retry_delay_ms", BC_CFG_INT, 0, 60000, "100", INT(retry_delay_ms), "ms",
     "pause before an entry is tried again after Redis failed"},
    {"command_key_file", BC_CFG_STRING, 0, 0, NULL, STR(command_key_file), NULL,
     "Ed25519 private key that signs the firmware commands; required"},
    {"command_ttl_s", BC_CFG_INT, 10, 86400, "3600", INT(command_ttl_s), "s",
     "a firmware command expires this long after it was issued"},
    {"offer_max_per_s", BC_CFG_INT, 1, 100000, "20", INT(offer_max_per_s), NULL,
     "firmware commands per second, all instances together"},
    {"offer_interval_ms", BC_CFG_INT, 10, 10000, "100", INT(offer_interval_ms), "ms",
     "how often the offer pass runs while a rollout runs"},
    {"scan_interval_ms", BC_CFG_INT, 50, 600000, "1000", INT(scan_interval_ms), "ms",
     "how often the deadlines, late cameras and waves are looked at; an ineligible camera "
     "is looked at again after this"},
    {"chunk_refresh_s", BC_CFG_INT, 1, 86400, "600", INT(chunk_refresh_s), "s",
     "the retained chunks are published again this often while a rollout is active"},
    BC_DAEMON_OPTION_STATS(svc.cfg),
    BC_DAEMON_OPTION_LOG_LEVEL(svc.cfg),
};

static bc_status check(void *ctx, bc_error *err)
{
    const fw_config *c = &((fw_service *)ctx)->cfg;
    bc_status st;
    if ((st = bc_daemon_check_instance(c->instance, FW_INSTANCE_MAX, err)) != BC_OK ||
        (st = bc_daemon_check_backoff(c->backoff_min_ms, c->backoff_max_ms, err)) != BC_OK)
        return st;
    return bc_daemon_check_access("command_key_file", c->command_key_file, R_OK, err);
}

static int run(void *ctx)
{
    return fw_service_run(ctx);
}

int main(int argc, char **argv)
{
    const bc_daemon_spec spec = {
        .program = "bodycam-firmware-rollout",
        .summary = "Rolls firmware out to the fleet in staged waves: signed firmware commands "
                   "and retained image chunks through the outbox, the cameras' fw_* events and "
                   "acks from their streams, thresholds that halt a bad version "
                   "(services/firmware-rollout/README.md).",
        .options = options,
        .option_count = sizeof(options) / sizeof(options[0]),
        .check = check,
        .run = run,
        .ctx = &svc,
    };
    return bc_daemon_main(&spec, argc, argv);
}
