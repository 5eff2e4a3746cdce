/*
 * main.c - bodycam-gateway: the option table and the daemon skeleton.
 */
#include <unistd.h>

#include "common/daemon.h"
#include "gateway/gateway.h"
#include "proto/topic.h"

static gateway gw;

#define STR(field) BC_DAEMON_STR(gw.cfg, field)
#define INT(field) BC_DAEMON_INT(gw.cfg, field)

static const bc_config_option options[] = {
    {"instance", BC_CFG_STRING, 0, GW_INSTANCE_MAX, "1", STR(instance), NULL,
     "this gateway's name, fixed across restarts: MQTT client id gateway-<instance> and "
     "outbox consumer; [A-Za-z0-9_-]"},
    {"mqtt_host", BC_CFG_STRING, 0, 0, "127.0.0.1", STR(mqtt_host), NULL, "broker address"},
    {"mqtt_port", BC_CFG_INT, 1, 65535, "8883", INT(mqtt_port), NULL, "broker TLS port"},
    {"ca_file", BC_CFG_STRING, 0, 0, NULL, STR(ca_file), NULL, "the fleet CA certificate (PEM)"},
    {"cert_file", BC_CFG_STRING, 0, 0, NULL, STR(cert_file), NULL,
     "the gateway's service certificate (PEM)"},
    {"key_file", BC_CFG_STRING, 0, 0, NULL, STR(key_file), NULL, "its private key (PEM)"},
    {"share_group", BC_CFG_STRING, 0, 0, "gateway", STR(share_group), NULL,
     "shared subscription group: gateways in one group split the camera messages"},
    {"keepalive_s", BC_CFG_INT, 5, 65535, "30", INT(keepalive_s), "s", "MQTT keepalive"},
    {"session_expiry_s", BC_CFG_INT, 1, 4294967295LL, "604800", INT(session_expiry_s), "s",
     "how long the broker keeps this gateway's session (and queues its messages) while it is "
     "away"},
    {"receive_maximum", BC_CFG_INT, 1, 65535, "100", INT(receive_maximum), NULL,
     "QoS 1 messages the broker may have in flight to us"},
    {"connect_timeout_ms", BC_CFG_INT, 100, 600000, "10000", INT(connect_timeout_ms), "ms",
     "TLS handshake + CONNACK + SUBACK must complete within this"},
    BC_DAEMON_OPTIONS_REDIS(gw.cfg, "2000"),
    {"backoff_min_ms", BC_CFG_INT, 1, 600000, "100", INT(backoff_min_ms), "ms",
     "first reconnection delay cap (broker and Redis; full jitter)"},
    {"backoff_max_ms", BC_CFG_INT, 1, 3600000, "10000", INT(backoff_max_ms), "ms",
     "largest reconnection delay cap"},
    {"health_maxlen", BC_CFG_INT, 0, 1000000000, "100000", INT(health_maxlen), NULL,
     "bodycam:stream:health is trimmed to about this many entries (0 = unbounded)"},
    {"outbox_batch", BC_CFG_INT, 1, 1000, "64", INT(outbox_batch), NULL,
     "outbox entries read at once"},
    {"outbox_window", BC_CFG_INT, 1, 4096, "256", INT(outbox_window), NULL,
     "outbox entries published but not yet acknowledged, at most"},
    {"outbox_block_ms", BC_CFG_INT, 10, 60000, "1000", INT(outbox_block_ms), "ms",
     "how long one outbox read waits for new entries"},
    {"outbox_claim_idle_ms", BC_CFG_INT, 0, 86400000, "30000", INT(outbox_claim_idle_ms), "ms",
     "take over outbox entries another gateway left unacknowledged this long (0 = never)"},
    {"outbox_claim_interval_ms", BC_CFG_INT, 1, 3600000, "5000", INT(outbox_claim_interval_ms),
     "ms", "how often to look for such entries"},
    {"stats_interval_s", BC_CFG_INT, 1, 86400, "60", INT(stats_interval_s), "s",
     "a statistics log line and status update every this long"},
    {"invalid_log_limit", BC_CFG_INT, 0, 1000000, "20", INT(invalid_log_limit), NULL,
     "log lines about dropped invalid messages per statistics period"},
    {"leave_group_on_stop", BC_CFG_BOOL, 0, 0, "false", INT(leave_group_on_stop), NULL,
     "on SIGTERM, unsubscribe from the share group and drain before stopping: for an "
     "instance that is retired, not restarted (a kept subscription has the broker queue a "
     "share of the camera messages for it until it returns)"},
    {"drain_ms", BC_CFG_INT, 0, 600000, "5000", INT(drain_ms), "ms",
     "leaving the group: stop after this at the latest"},
    BC_DAEMON_OPTION_LOG_LEVEL(gw.cfg),
};

static bc_status check(void *ctx, bc_error *err)
{
    gateway *g = ctx;
    bc_status st = bc_daemon_check_instance(g->cfg.instance, GW_INSTANCE_MAX, err);
    if (st != BC_OK)
        return st;
    if (!bc_id_valid(g->cfg.share_group))
        return bc_fail(err, BC_ERR_INVAL, "option 'share_group': '%s' is not [A-Za-z0-9_-]",
                       g->cfg.share_group);
    if ((st = bc_daemon_check_backoff(g->cfg.backoff_min_ms, g->cfg.backoff_max_ms, err)) != BC_OK)
        return st;
    if (g->cfg.outbox_batch > g->cfg.outbox_window)
        return bc_fail(err, BC_ERR_INVAL, "option 'outbox_batch' is above 'outbox_window'");
    const struct {
        const char *name;
        const char *path;
    } files[] = {{"ca_file", g->cfg.ca_file},
                 {"cert_file", g->cfg.cert_file},
                 {"key_file", g->cfg.key_file}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if ((st = bc_daemon_check_access(files[i].name, files[i].path, R_OK, err)) != BC_OK)
            return st;
    }
    return BC_OK;
}

static int run(void *ctx)
{
    return gateway_run(ctx);
}

int main(int argc, char **argv)
{
    const bc_daemon_spec spec = {
        .program = "bodycam-gateway",
        .summary = "Copies camera messages from the broker into Redis streams and publishes "
                   "the outbox stream (services/gateway/README.md).",
        .options = options,
        .option_count = sizeof(options) / sizeof(options[0]),
        .check = check,
        .run = run,
        .ctx = &gw,
    };
    return bc_daemon_main(&spec, argc, argv);
}
