/*
 * main.c - bodycam-firmware-rollout: the option table and the daemon
 * skeleton.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/daemon.h"
#include "firmware-rollout/fwrollout.h"
#include "proto/topic.h"

static fw_service svc;

#define STR(field) svc.cfg.field, sizeof(svc.cfg.field)
#define INT(field) &svc.cfg.field, 0

static const bc_config_option options[] = {
    {"instance", BC_CFG_STRING, 0, FW_INSTANCE_MAX, "1", STR(instance), NULL,
     "this instance's name, fixed across restarts: stream consumer firmware-rollout-<instance> "
     "and status key; [A-Za-z0-9_-]"},
    {"redis_host", BC_CFG_STRING, 0, 0, "127.0.0.1", STR(redis_host), NULL, "Redis address"},
    {"redis_port", BC_CFG_INT, 1, 65535, "6379", INT(redis_port), NULL, "Redis port"},
    {"redis_timeout_ms", BC_CFG_INT, 10, 600000, "2000", INT(redis_timeout_ms), "ms",
     "Redis connect and command timeout"},
    {"backoff_min_ms", BC_CFG_INT, 1, 600000, "100", INT(backoff_min_ms), "ms",
     "first Redis reconnection delay cap (full jitter)"},
    {"backoff_max_ms", BC_CFG_INT, 1, 3600000, "10000", INT(backoff_max_ms), "ms",
     "largest Redis reconnection delay cap"},
    {"batch", BC_CFG_INT, 1, 10000, "100", INT(batch), NULL,
     "stream entries read at once, per stream"},
    {"block_ms", BC_CFG_INT, 10, 60000, "1000", INT(block_ms), "ms",
     "how long one read waits for new entries"},
    {"claim_idle_ms", BC_CFG_INT, 0, 86400000, "30000", INT(claim_idle_ms), "ms",
     "take over entries another instance left unacknowledged this long (0 = never)"},
    {"claim_interval_ms", BC_CFG_INT, 1, 3600000, "5000", INT(claim_interval_ms), "ms",
     "how often to look for such entries"},
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
    {"stats_interval_s", BC_CFG_INT, 1, 86400, "60", INT(stats_interval_s), "s",
     "a statistics log line every this long"},
    {"log_level", BC_CFG_STRING, 0, 0, "info", STR(log_level), NULL, "debug, info, warn or error"},
};

static bc_status check(void *ctx, bc_error *err)
{
    const fw_config *c = &((fw_service *)ctx)->cfg;
    if (!bc_id_valid(c->instance) || strlen(c->instance) > FW_INSTANCE_MAX)
        return bc_fail(err, BC_ERR_INVAL, "option 'instance': '%s' is not [A-Za-z0-9_-]{1,32}",
                       c->instance);
    if (c->backoff_max_ms < c->backoff_min_ms)
        return bc_fail(err, BC_ERR_INVAL, "option 'backoff_max_ms' is below 'backoff_min_ms'");
    if (access(c->command_key_file, R_OK) != 0)
        return bc_fail(err, BC_ERR_INVAL, "option 'command_key_file': '%s' is not readable",
                       c->command_key_file);
    return BC_OK;
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
