/*
 * main.c - bodycam-key-rotation: the option table and the daemon skeleton.
 */
#include <unistd.h>

#include "common/daemon.h"
#include "key-rotation/rotation.h"

static rotation rot;

#define STR(field) BC_DAEMON_STR(rot.cfg, field)
#define INT(field) BC_DAEMON_INT(rot.cfg, field)

static const bc_config_option options[] = {
    {"instance", BC_CFG_STRING, 0, ROT_INSTANCE_MAX, "1", STR(instance), NULL,
     "this instance's name, fixed across restarts: stream consumer key-rotation-<instance> "
     "(its pending entries) and status key; [A-Za-z0-9_-]"},
    BC_DAEMON_OPTIONS_REDIS(rot.cfg, "2000"),
    BC_DAEMON_OPTIONS_BACKOFF(rot.cfg),
    BC_DAEMON_OPTIONS_CONSUMER(rot.cfg),
    {"retry_delay_ms", BC_CFG_INT, 0, 60000, "100", INT(retry_delay_ms), "ms",
     "pause before an entry is tried again (Redis failed, or a CSR waits for the "
     "reconnect budget)"},
    {"command_key_file", BC_CFG_STRING, 0, 0, NULL, STR(command_key_file), NULL,
     "Ed25519 private key that signs rotate-recording-key and rotate-identity; required"},
    {"ca_cert_file", BC_CFG_STRING, 0, 0, NULL, STR(ca_cert_file), NULL,
     "the fleet's device CA certificate (PEM); required"},
    {"ca_key_file", BC_CFG_STRING, 0, 0, NULL, STR(ca_key_file), NULL,
     "the device CA's private key (PEM), which signs the cameras' new certificates; required"},
    {"cert_days", BC_CFG_INT, 1, 3650, "397", INT(cert_days), "days",
     "validity of a camera certificate issued in an identity rotation"},
    {"command_ttl_s", BC_CFG_INT, 10, 86400, "3600", INT(command_ttl_s), "s",
     "a command expires this long after it was issued (a camera refuses it after)"},
    {"ack_timeout_s", BC_CFG_INT, 1, 86400, "120", INT(ack_timeout_s), "s",
     "a command without its answer this long (ack, or the CSR of an identity request) is "
     "sent again"},
    {"attempts_max", BC_CFG_INT, 1, 100, "5", INT(attempts_max), NULL,
     "commands sent to a camera before it is marked failed"},
    {"retry_backoff_s", BC_CFG_INT, 0, 86400, "30", INT(retry_backoff_s), "s",
     "wait before sending again after a failed attempt; doubled per attempt"},
    {"retry_backoff_max_s", BC_CFG_INT, 0, 86400, "600", INT(retry_backoff_max_s), "s",
     "the longest such wait"},
    {"send_max_per_s", BC_CFG_INT, 1, 100000, "100", INT(send_max_per_s), NULL,
     "commands sent per second across all campaigns (each campaign also keeps its own pace)"},
    {"reconnects_max_per_s", BC_CFG_INT, 1, 100000, "20", INT(reconnects_max_per_s), NULL,
     "identity installs (each makes a camera reconnect) per second across all campaigns"},
    {"offline_recheck_s", BC_CFG_INT, 1, 3600, "10", INT(offline_recheck_s), "s",
     "an offline camera of a campaign is looked at again after this"},
    {"send_interval_ms", BC_CFG_INT, 10, 10000, "50", INT(send_interval_ms), "ms",
     "how often the send pass runs while a campaign is running"},
    {"scan_interval_ms", BC_CFG_INT, 50, 600000, "1000", INT(scan_interval_ms), "ms",
     "how often to look for new campaigns and for answers past their deadline"},
    BC_DAEMON_OPTION_STATS(rot.cfg),
    BC_DAEMON_OPTION_LOG_LEVEL(rot.cfg),
};

static bc_status check(void *ctx, bc_error *err)
{
    const rot_config *c = &((rotation *)ctx)->cfg;
    bc_status st;
    if ((st = bc_daemon_check_instance(c->instance, ROT_INSTANCE_MAX, err)) != BC_OK ||
        (st = bc_daemon_check_backoff(c->backoff_min_ms, c->backoff_max_ms, err)) != BC_OK)
        return st;
    if (c->retry_backoff_max_s < c->retry_backoff_s)
        return bc_fail(err, BC_ERR_INVAL,
                       "option 'retry_backoff_max_s' is below 'retry_backoff_s'");
    if (c->command_ttl_s < c->ack_timeout_s)
        return bc_fail(err, BC_ERR_INVAL,
                       "option 'command_ttl_s' is below 'ack_timeout_s': a camera would refuse "
                       "a command the service still waits for");
    if ((st = bc_daemon_check_access("command_key_file", c->command_key_file, R_OK, err)) !=
            BC_OK ||
        (st = bc_daemon_check_access("ca_cert_file", c->ca_cert_file, R_OK, err)) != BC_OK)
        return st;
    return bc_daemon_check_access("ca_key_file", c->ca_key_file, R_OK, err);
}

static int run(void *ctx)
{
    return rotation_run(ctx);
}

int main(int argc, char **argv)
{
    const bc_daemon_spec spec = {
        .program = "bodycam-key-rotation",
        .summary = "Rotates the fleet's recording keys and device identities in paced "
                   "campaigns: signed commands through the outbox, the cameras' acks and CSRs "
                   "from their streams, the CA and the registry for new certificates "
                   "(services/key-rotation/README.md).",
        .options = options,
        .option_count = sizeof(options) / sizeof(options[0]),
        .check = check,
        .run = run,
        .ctx = &rot,
    };
    return bc_daemon_main(&spec, argc, argv);
}
