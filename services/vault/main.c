/*
 * main.c - bodycam-vault: the option table and the daemon skeleton.
 */
#include <unistd.h>

#include "common/daemon.h"
#include "vault/vault.h"

static vault v;

#define STR(field) BC_DAEMON_STR(v.cfg, field)
#define INT(field) BC_DAEMON_INT(v.cfg, field)

static const bc_config_option options[] = {
    {"instance", BC_CFG_STRING, 0, VAULT_INSTANCE_MAX, "1", STR(instance), NULL,
     "this instance's name, fixed across restarts: stream consumer vault-<instance> (its "
     "pending entries) and status key; [A-Za-z0-9_-]. Run one vault per vault_dir"},
    BC_DAEMON_OPTIONS_REDIS(v.cfg, "5000"),
    BC_DAEMON_OPTIONS_BACKOFF(v.cfg),
    {"batch", BC_CFG_INT, 1, 10000, "256", INT(batch), NULL,
     "upload stream entries read at once (each up to 64 KiB of recording; one fsync per "
     "batch)"},
    {"block_ms", BC_CFG_INT, 10, 1000, "500", INT(block_ms), "ms",
     "how long one read waits for new entries (also bounds the reaction to SIGTERM)"},
    {"claim_idle_ms", BC_CFG_INT, 0, 86400000, "60000", INT(claim_idle_ms), "ms",
     "take over entries another vault consumer left unacknowledged this long (0 = never)"},
    {"claim_interval_ms", BC_CFG_INT, 1, 3600000, "10000", INT(claim_interval_ms), "ms",
     "how often to look for such entries"},
    {"retry_delay_ms", BC_CFG_INT, 0, 60000, "200", INT(retry_delay_ms), "ms",
     "pause before an entry that failed is tried again"},
    {"vault_dir", BC_CFG_STRING, 0, 0, NULL, STR(vault_dir), NULL,
     "the vault's directory: staging/ (recordings arriving) and objects/ (committed "
     "ciphertext); required"},
    {"audit_dir", BC_CFG_STRING, 0, 0, "", STR(audit_dir), NULL,
     "the audit log's directory (empty: <vault_dir>/audit); keep it on durable storage "
     "and in the backups: it outlives the recordings"},
    {"recording_key_dir", BC_CFG_STRING, 0, 0, NULL, STR(recording_key_dir), NULL,
     "the recording private keys, one <key_id>.key (X25519, PKCS#8 PEM encrypted under "
     "master_key_file; a plain key found at start is encrypted in place); the vault adds "
     "keys on rotation (bodycam:stream:vault-control) and destroys retired ones; required"},
    {"master_key_file", BC_CFG_STRING, 0, 0, NULL, STR(master_key_file), NULL,
     "the passphrase the recording keys are encrypted under at rest (16..512 bytes; a "
     "trailing newline is not part of it), in a file only its owner may read (mode 0600); "
     "keep it out of the key directory's backups; required"},
    {"receipt_key_file", BC_CFG_STRING, 0, 0, NULL, STR(receipt_key_file), NULL,
     "Ed25519 private key that signs vault receipts; required"},
    {"command_key_file", BC_CFG_STRING, 0, 0, NULL, STR(command_key_file), NULL,
     "Ed25519 private key that signs 'upload' commands (asking a camera to send again); "
     "required"},
    {"retention_days", BC_CFG_INT, 1, 3650, "28", INT(retention_days), "days",
     "a recording is purged this long after it was recorded, unless held (policy: 28)"},
    {"tombstone_days", BC_CFG_INT, 1, 36500, "400", INT(tombstone_days), "days",
     "a purged recording's record is kept this long, so an access request for its period "
     "can be answered with the purge's audit entry"},
    {"audit_retention_days", BC_CFG_INT, BC_AUDIT_RETENTION_MIN_DAYS, 36500, "730",
     INT(audit_retention_days), "days", "audit log files older than this are removed"},
    {"receipt_ttl_s", BC_CFG_INT, 60, 86400, "3600", INT(receipt_ttl_s), "s",
     "a receipt command expires after this (the camera asks again by re-sending its "
     "manifest)"},
    {"resend_after_s", BC_CFG_INT, 1, 86400, "30", INT(resend_after_s), "s",
     "an incomplete upload without progress this long is asked for again"},
    {"verify_attempts_max", BC_CFG_INT, 1, 100, "5", INT(verify_attempts_max), NULL,
     "uploads of one recording that fail verification before the vault stops asking (the "
     "camera keeps the recording; an operator looks)"},
    {"scan_interval_ms", BC_CFG_INT, 100, 600000, "1000", INT(scan_interval_ms), "ms",
     "how often the staging area is scanned for stalled or left-over uploads"},
    {"purge_interval_s", BC_CFG_INT, 1, 86400, "60", INT(purge_interval_s), "s",
     "how often the purge worker runs"},
    {"purge_batch", BC_CFG_INT, 1, 10000, "1000", INT(purge_batch), NULL,
     "recordings purged per audit batch (one fsync per batch)"},
    {"request_scan_interval_s", BC_CFG_INT, 1, 86400, "60", INT(request_scan_interval_s), "s",
     "how often access request deadlines are checked"},
    {"staging_open_max", BC_CFG_INT, 1, 4096, "64", INT(staging_open_max), NULL,
     "staged recordings kept open at once (file descriptors)"},
    {"delete_processed", BC_CFG_BOOL, 0, 1, "true", INT(delete_processed), NULL,
     "XDEL upload entries once staged durably (the recording bytes would otherwise stay in "
     "Redis memory)"},
    BC_DAEMON_OPTION_STATS(v.cfg),
    BC_DAEMON_OPTION_LOG_LEVEL(v.cfg),
};

static bc_status check(void *ctx, bc_error *err)
{
    const vault_config *c = &((vault *)ctx)->cfg;
    bc_status st;
    if ((st = bc_daemon_check_instance(c->instance, VAULT_INSTANCE_MAX, err)) != BC_OK ||
        (st = bc_daemon_check_backoff(c->backoff_min_ms, c->backoff_max_ms, err)) != BC_OK)
        return st;
    if (c->tombstone_days < c->retention_days)
        return bc_fail(err, BC_ERR_INVAL,
                       "option 'tombstone_days' is below 'retention_days': an access request "
                       "could find neither the recording nor the proof of its purge");
    int dir_mode = R_OK | W_OK | X_OK; /* the vault adds and destroys recording keys */
    if ((st = bc_daemon_check_access("recording_key_dir", c->recording_key_dir, dir_mode, err)) !=
            BC_OK ||
        (st = bc_daemon_check_access("master_key_file", c->master_key_file, R_OK, err)) != BC_OK ||
        (st = bc_daemon_check_access("receipt_key_file", c->receipt_key_file, R_OK, err)) != BC_OK)
        return st;
    return bc_daemon_check_access("command_key_file", c->command_key_file, R_OK, err);
}

static int run(void *ctx)
{
    return vault_run(ctx);
}

int main(int argc, char **argv)
{
    const bc_daemon_spec spec = {
        .program = "bodycam-vault",
        .summary = "Takes recordings over from docked cameras (verified, content-addressed, "
                   "receipted), purges them after the retention unless held, tracks access "
                   "requests and keeps the hash-chained audit log (services/vault/README.md).",
        .options = options,
        .option_count = sizeof(options) / sizeof(options[0]),
        .check = check,
        .run = run,
        .ctx = &v,
    };
    return bc_daemon_main(&spec, argc, argv);
}
