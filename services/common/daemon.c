/*
 * daemon.c - the shared main() of the services: options, configuration,
 * signals, exit codes.
 *
 * Signals: SIGTERM and SIGINT set a flag and write one byte to a
 * non-blocking self-pipe (both async-signal-safe), so a service sleeping in
 * poll() wakes at once by watching bc_daemon_stop_fd(). The handlers are
 * installed without SA_RESTART: a blocking system call returns EINTR and
 * the service looks at the flag.
 */
#include "common/daemon.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fd.h"
#include "common/log.h"
#include "proto/topic.h"

static volatile sig_atomic_t stop_requested;
static int stop_pipe[2] = {-1, -1};

bool bc_daemon_stopping(void)
{
    return stop_requested != 0;
}

void bc_daemon_request_stop(void)
{
    int saved = errno;
    stop_requested = 1;
    if (stop_pipe[1] >= 0) {
        char byte = 1;
        if (write(stop_pipe[1], &byte, 1) < 0) {
            /* full pipe: already readable, which is all that matters */
        }
    }
    errno = saved;
}

int bc_daemon_stop_fd(void)
{
    return stop_pipe[0];
}

static void on_signal(int signo)
{
    (void)signo;
    bc_daemon_request_stop();
}

static int install_signals(void)
{
    if (stop_pipe[0] < 0) {
        if (pipe(stop_pipe) != 0)
            return -1;
        if (bc_fd_set_nonblock_cloexec(stop_pipe[0]) != BC_OK ||
            bc_fd_set_nonblock_cloexec(stop_pipe[1]) != BC_OK)
            return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls return EINTR */
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        return -1;
    return 0;
}

static void usage(const bc_daemon_spec *spec, FILE *out)
{
    fprintf(out,
            "usage: %s [--config FILE] [--set NAME=VALUE]... [-n] [--help]\n"
            "%s\n\n"
            "  -c, --config FILE     read the configuration from FILE (name = value lines)\n"
            "  -s, --set NAME=VALUE  override one option (after FILE; repeatable)\n"
            "  -n                    check the configuration and exit\n"
            "  -h, --help            this text and the option reference\n\n"
            "Exit status: 0 stopped cleanly (SIGTERM/SIGINT), 1 runtime failure, "
            "2 usage or configuration error.\n\n"
            "Options (name = default  # units; range; meaning):\n",
            spec->program, spec->summary);
    bc_config_print_reference(spec->options, spec->option_count, out);
}

static const bc_config_option *find_option(const bc_daemon_spec *spec, const char *name)
{
    for (size_t i = 0; i < spec->option_count; i++) {
        if (strcmp(spec->options[i].name, name) == 0)
            return &spec->options[i];
    }
    return NULL;
}

/* Defaults, file, --set pairs, log level, checks. */
static bc_status load_config(const bc_daemon_spec *spec, const char *config_path,
                             char *const *pairs, size_t npairs, bc_error *err)
{
    bc_status st = bc_config_defaults(spec->options, spec->option_count, err);
    if (st == BC_OK && config_path != NULL)
        st = bc_config_load_file(spec->options, spec->option_count, config_path, err);
    for (size_t i = 0; st == BC_OK && i < npairs; i++)
        st = bc_config_set_pair(spec->options, spec->option_count, pairs[i], err);
    if (st != BC_OK)
        return st;
    const bc_config_option *level = find_option(spec, "log_level");
    if (level != NULL && level->type == BC_CFG_STRING) {
        bc_log_level lv;
        if (bc_log_level_parse((const char *)level->field, &lv) != 0)
            return bc_fail(err, BC_ERR_INVAL,
                           "option 'log_level': '%s' is not debug, info, warn or error",
                           (const char *)level->field);
        bc_log_init(spec->program, lv);
    }
    st = bc_config_check(spec->options, spec->option_count, err);
    if (st == BC_OK && spec->check != NULL)
        st = spec->check(spec->ctx, err);
    return st;
}

int bc_daemon_main(const bc_daemon_spec *spec, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bc_log_init(spec->program, BC_LOG_INFO);
    const char *config_path = NULL;
    bool check_only = false;
    int rc = BC_EXIT_CONFIG;
    char **pairs = calloc((size_t)argc + 1, sizeof(*pairs));
    size_t npairs = 0;
    if (pairs == NULL) {
        log_errorx("out of memory");
        return BC_EXIT_RUNTIME;
    }
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":c:s:nh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 's':
            pairs[npairs++] = optarg;
            break;
        case 'n':
            check_only = true;
            break;
        case 'h':
            usage(spec, stdout);
            rc = BC_EXIT_OK;
            goto cleanup;
        case ':':
            log_errorx("option %s needs a value (see --help)", argv[optind - 1]);
            goto cleanup;
        default:
            log_errorx("unknown option %s (see --help)", argv[optind - 1]);
            goto cleanup;
        }
    }
    if (optind < argc) {
        log_errorx("unexpected argument '%s' (see --help)", argv[optind]);
        goto cleanup;
    }
    bc_error err;
    bc_error_clear(&err);
    if (load_config(spec, config_path, pairs, npairs, &err) != BC_OK) {
        log_errorx("configuration%s%s: %s", config_path != NULL ? " " : "",
                   config_path != NULL ? config_path : "", err.text);
        goto cleanup;
    }
    if (check_only) {
        printf("configuration OK\n");
        rc = BC_EXIT_OK;
        goto cleanup;
    }
    if (install_signals() != 0) {
        log_error("cannot install the signal handlers");
        rc = BC_EXIT_RUNTIME;
        goto cleanup;
    }
    rc = spec->run(spec->ctx);

cleanup:
    free(pairs);
    return rc;
}

bc_status bc_daemon_check_instance(const char *instance, size_t max, bc_error *err)
{
    if (!bc_id_valid(instance) || strlen(instance) > max)
        return bc_fail(err, BC_ERR_INVAL, "option 'instance': '%s' is not [A-Za-z0-9_-]{1,32}",
                       instance != NULL ? instance : "");
    return BC_OK;
}

bc_status bc_daemon_check_backoff(int64_t min_ms, int64_t max_ms, bc_error *err)
{
    if (max_ms < min_ms)
        return bc_fail(err, BC_ERR_INVAL, "option 'backoff_max_ms' is below 'backoff_min_ms'");
    return BC_OK;
}

bc_status bc_daemon_check_access(const char *option, const char *path, int mode, bc_error *err)
{
    if (access(path, mode) != 0)
        return bc_fail(err, BC_ERR_INVAL, "option '%s': '%s' is not %s", option, path,
                       mode == R_OK ? "readable" : "accessible");
    return BC_OK;
}
