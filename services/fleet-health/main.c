/*
 * main.c - bodycam-fleet-health: the option table and the daemon skeleton.
 */

#include "common/daemon.h"
#include "fleet-health/fleet.h"

static fleet fh;

#define STR(field) BC_DAEMON_STR(fh.cfg, field)
#define INT(field) BC_DAEMON_INT(fh.cfg, field)

static const bc_config_option options[] = {
    {"instance", BC_CFG_STRING, 0, FH_INSTANCE_MAX, "1", STR(instance), NULL,
     "this instance's name, fixed across restarts: stream consumer fleet-health-<instance> "
     "(its pending entries) and status key; [A-Za-z0-9_-]"},
    BC_DAEMON_OPTIONS_REDIS(fh.cfg, "2000"),
    BC_DAEMON_OPTIONS_BACKOFF(fh.cfg),
    BC_DAEMON_OPTIONS_CONSUMER(fh.cfg),
    {"retry_delay_ms", BC_CFG_INT, 0, 60000, "200", INT(retry_delay_ms), "ms",
     "pause before an entry that failed on Redis is tried again"},
    {"health_interval_s", BC_CFG_INT, 1, 86400, "60", INT(health_interval_s), "s",
     "the cameras' health reporting interval"},
    {"offline_after_s", BC_CFG_INT, 0, 86400, "0", INT(offline_after_s), "s",
     "a camera silent this long (no conn, state, health or event) is offline; "
     "0 = 3 x health_interval_s"},
    {"scan_interval_ms", BC_CFG_INT, 50, 600000, "1000", INT(scan_interval_ms), "ms",
     "how often to look for silent cameras and overdue uploads"},
    {"full_scan_interval_s", BC_CFG_INT, 1, 86400, "60", INT(full_scan_interval_s), "s",
     "how often to run every camera's alert rules again"},
    {"summary_min_interval_ms", BC_CFG_INT, 0, 3600000, "1000", INT(summary_min_interval_ms), "ms",
     "the fleet summary is published on change at most this often"},
    {"summary_interval_s", BC_CFG_INT, 1, 86400, "30", INT(summary_interval_s), "s",
     "and at least this often"},
    {"battery_low_raise_pct", BC_CFG_INT, 0, 100, "15", INT(battery_low_raise_pct), "%",
     "low_battery is raised below this"},
    {"battery_low_clear_pct", BC_CFG_INT, 0, 100, "20", INT(battery_low_clear_pct), "%",
     "and cleared above this"},
    {"storage_low_raise_pct", BC_CFG_INT, 0, 100, "10", INT(storage_low_raise_pct), "%",
     "storage_low is raised below this much free space"},
    {"storage_low_clear_pct", BC_CFG_INT, 0, 100, "15", INT(storage_low_clear_pct), "%",
     "and cleared above this"},
    {"overheat_raise_c", BC_CFG_INT, -100, 200, "60", INT(overheat_raise_c), "degrees C",
     "overheating is raised above this"},
    {"overheat_clear_c", BC_CFG_INT, -100, 200, "55", INT(overheat_clear_c), "degrees C",
     "and cleared below this"},
    {"upload_overdue_s", BC_CFG_INT, 1, 604800, "3600", INT(upload_overdue_s), "s",
     "upload_overdue is raised when a docked camera has had uploads waiting this long"},
    {"short_recording_s", BC_CFG_INT, 0, 86400, "10", INT(short_recording_s), "s",
     "a recording shorter than this counts as short_recordings (ease of use)"},
    {"event_log_max", BC_CFG_INT, 0, 100000000, "100000", INT(event_log_max), NULL,
     "events kept per camera in bodycam:events:<id> (0 = all); older seqs are then "
     "treated as seen"},
    {"hourly_ttl_days", BC_CFG_INT, 0, 36500, "400", INT(hourly_ttl_days), "days",
     "hourly aggregates expire after this (0 = never)"},
    {"alert_history_days", BC_CFG_INT, 0, 36500, "30", INT(alert_history_days), "days",
     "a cleared alert's bodycam:alert:<id> is kept this long (0 = forever)"},
    BC_DAEMON_OPTION_STATS(fh.cfg),
    BC_DAEMON_OPTION_LOG_LEVEL(fh.cfg),
};

static bc_status check(void *ctx, bc_error *err)
{
    const fh_config *c = &((fleet *)ctx)->cfg;
    bc_status st;
    if ((st = bc_daemon_check_instance(c->instance, FH_INSTANCE_MAX, err)) != BC_OK ||
        (st = bc_daemon_check_backoff(c->backoff_min_ms, c->backoff_max_ms, err)) != BC_OK)
        return st;
    if (c->battery_low_clear_pct <= c->battery_low_raise_pct)
        return bc_fail(err, BC_ERR_INVAL,
                       "option 'battery_low_clear_pct' must be above 'battery_low_raise_pct' "
                       "(hysteresis)");
    if (c->storage_low_clear_pct <= c->storage_low_raise_pct)
        return bc_fail(err, BC_ERR_INVAL,
                       "option 'storage_low_clear_pct' must be above 'storage_low_raise_pct' "
                       "(hysteresis)");
    if (c->overheat_clear_c >= c->overheat_raise_c)
        return bc_fail(err, BC_ERR_INVAL,
                       "option 'overheat_clear_c' must be below 'overheat_raise_c' (hysteresis)");
    if (c->offline_after_s > 0 && c->offline_after_s < c->health_interval_s)
        return bc_fail(err, BC_ERR_INVAL,
                       "option 'offline_after_s' is below 'health_interval_s': every camera "
                       "would be offline between two reports");
    return BC_OK;
}

static int run(void *ctx)
{
    return fleet_run(ctx);
}

int main(int argc, char **argv)
{
    const bc_daemon_spec spec = {
        .program = "bodycam-fleet-health",
        .summary = "Keeps the live record of every camera, detects offline cameras, raises and "
                   "clears alerts, publishes the fleet summary and keeps hourly aggregates "
                   "(services/fleet-health/README.md).",
        .options = options,
        .option_count = sizeof(options) / sizeof(options[0]),
        .check = check,
        .run = run,
        .ctx = &fh,
    };
    return bc_daemon_main(&spec, argc, argv);
}
