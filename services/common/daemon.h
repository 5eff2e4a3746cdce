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
