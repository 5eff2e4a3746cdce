/*
 * daemon.h - the main() every bodycam service shares.
 *
 *   bodycam-<name> [--config FILE] [--set NAME=VALUE]... [-n] [--help]
 *
 * Order: defaults of the option table, then FILE, then each --set in the
 * order given; then the table's check pass and the service's own check.
 * -n stops there: "configuration OK" and exit 0. Otherwise the service's
 * run() is called with SIGTERM and SIGINT turned into a stop request
 * (bc_daemon_stopping(), and a descriptor that becomes readable, for a
 * poll() loop); SIGPIPE is ignored.
 *
 * Exit codes: 0 clean stop, 1 runtime failure (run() says so), 2 usage or
 * configuration error (the reason is logged as one line).
 *
 * If the table has a string option named "log_level", its value (debug,
 * info, warn, error) sets the log level before check() runs.
 */
#ifndef BC_COMMON_DAEMON_H
#define BC_COMMON_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "proto/status.h"

#define BC_EXIT_OK 0
#define BC_EXIT_RUNTIME 1
#define BC_EXIT_CONFIG 2

typedef struct bc_daemon_spec {
    const char *program; /* "bodycam-gateway": log prefix and usage */
    const char *summary; /* one sentence for --help */
    const bc_config_option *options;
    size_t option_count;
    /* Extra checks after the table's (files readable, min <= max, ...);
     * may be NULL. A failure is a configuration error (exit 2). */
    bc_status (*check)(void *ctx, bc_error *err);
    /* The service; returns BC_EXIT_OK after a stop request, or
     * BC_EXIT_RUNTIME / BC_EXIT_CONFIG with the reason logged. */
    int (*run)(void *ctx);
    void *ctx;
} bc_daemon_spec;

/* ---- the option rows and checks every service repeats ----
 *
 * A service keeps its own option table in its main.c; the rows below are
 * the ones that read the same in every table. cfg is the service's
 * configuration object (e.g. svc.cfg) with fields of these names:
 * char arrays for the strings, int64_t for the numbers. */

#define BC_DAEMON_STR(cfg, field) (cfg).field, sizeof((cfg).field)
#define BC_DAEMON_INT(cfg, field) &(cfg).field, 0

/* redis_host, redis_port, redis_timeout_ms (default timeout_ms, a string). */
#define BC_DAEMON_OPTIONS_REDIS(cfg, timeout_ms)                                                   \
    {"redis_host", BC_CFG_STRING,  0, 0, "127.0.0.1", BC_DAEMON_STR(cfg, redis_host),              \
     NULL,         "Redis address"},                                                               \
        {"redis_port", BC_CFG_INT,  1, 65535, "6379", BC_DAEMON_INT(cfg, redis_port),              \
         NULL,         "Redis port"},                                                              \
    {                                                                                              \
        "redis_timeout_ms", BC_CFG_INT, 10, 600000, timeout_ms,                                    \
            BC_DAEMON_INT(cfg, redis_timeout_ms), "ms", "Redis connect and command timeout"        \
    }

/* backoff_min_ms, backoff_max_ms: the Redis reconnection delays. */
#define BC_DAEMON_OPTIONS_BACKOFF(cfg)                                                             \
    {"backoff_min_ms",                                                                             \
     BC_CFG_INT,                                                                                   \
     1,                                                                                            \
     600000,                                                                                       \
     "100",                                                                                        \
     BC_DAEMON_INT(cfg, backoff_min_ms),                                                           \
     "ms",                                                                                         \
     "first Redis reconnection delay cap (full jitter)"},                                          \
    {                                                                                              \
        "backoff_max_ms", BC_CFG_INT, 1, 3600000, "10000", BC_DAEMON_INT(cfg, backoff_max_ms),     \
            "ms", "largest Redis reconnection delay cap"                                           \
    }

/* batch, block_ms, claim_idle_ms, claim_interval_ms: a stream consumer's
 * reads and its takeover of what another instance left. */
#define BC_DAEMON_OPTIONS_CONSUMER(cfg)                                                            \
    {"batch", BC_CFG_INT,                                                                          \
     1,       10000,                                                                               \
     "100",   BC_DAEMON_INT(cfg, batch),                                                           \
     NULL,    "stream entries read at once, per stream"},                                          \
        {"block_ms", BC_CFG_INT,                                                                   \
         10,         60000,                                                                        \
         "1000",     BC_DAEMON_INT(cfg, block_ms),                                                 \
         "ms",       "how long one read waits for new entries"},                                   \
        {"claim_idle_ms",                                                                          \
         BC_CFG_INT,                                                                               \
         0,                                                                                        \
         86400000,                                                                                 \
         "30000",                                                                                  \
         BC_DAEMON_INT(cfg, claim_idle_ms),                                                        \
         "ms",                                                                                     \
         "take over entries another instance left unacknowledged this long (0 = never)"},          \
    {                                                                                              \
        "claim_interval_ms", BC_CFG_INT, 1, 3600000, "5000",                                       \
            BC_DAEMON_INT(cfg, claim_interval_ms), "ms", "how often to look for such entries"      \
    }

/* stats_interval_s. */
#define BC_DAEMON_OPTION_STATS(cfg)                                                                \
    {                                                                                              \
        "stats_interval_s", BC_CFG_INT, 1, 86400, "60", BC_DAEMON_INT(cfg, stats_interval_s), "s", \
            "a statistics log line every this long"                                                \
    }

/* log_level (see above: bc_daemon_main applies it). */
#define BC_DAEMON_OPTION_LOG_LEVEL(cfg)                                                            \
    {                                                                                              \
        "log_level", BC_CFG_STRING, 0, 0, "info", BC_DAEMON_STR(cfg, log_level), NULL,             \
            "debug, info, warn or error"                                                           \
    }

/* Option 'instance' is an id ([A-Za-z0-9_-]) of at most max characters.
 * BC_ERR_INVAL with the sentence otherwise. */
bc_status bc_daemon_check_instance(const char *instance, size_t max, bc_error *err);

/* Option 'backoff_max_ms' is not below 'backoff_min_ms'. BC_ERR_INVAL. */
bc_status bc_daemon_check_backoff(int64_t min_ms, int64_t max_ms, bc_error *err);

/* The file or directory path of option may be used as mode says (an
 * access(2) mode: R_OK, R_OK | W_OK | X_OK, ...). BC_ERR_INVAL naming the
 * option otherwise. */
bc_status bc_daemon_check_access(const char *option, const char *path, int mode, bc_error *err);

/* Parses argv, loads the configuration and runs the service; returns the
 * exit code for main() to return. */
int bc_daemon_main(const bc_daemon_spec *spec, int argc, char **argv);

/* True once SIGTERM or SIGINT arrived (or bc_daemon_request_stop ran). */
bool bc_daemon_stopping(void);

/* Asks the service to stop, as a signal would. Async-signal-safe. */
void bc_daemon_request_stop(void);

/* A descriptor that becomes readable (and stays so) once a stop was
 * requested; -1 before bc_daemon_main installed the handlers. */
int bc_daemon_stop_fd(void);

#endif
