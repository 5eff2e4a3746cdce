/*
 * bodycam-agent - the camera agent (design.md, issue 3).
 *
 *   bodycam-agent --config FILE [--set NAME=VALUE]... [-n]
 *   bodycam-agent --simulate N (--stack stack.json | CAMERA.conf...) [--config FILE]
 *                 [--set NAME=VALUE]... [--script random:SEED[:MEAN_S]]
 *                 [--connect-spread-ms MS] [--report-s S] [-n]
 *
 * One process, one reactor (poll), any number of cameras: one for a real
 * camera, N for simulation and load tests (libmosquitto's non-threaded
 * API, no thread per camera). SIGTERM/SIGINT: every camera closes its
 * recording cleanly, saves its state and ends its MQTT session, then the
 * process exits 0. Exit status: 0 clean, 1 runtime failure, 2 usage or
 * configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/clock.h"
#include "common/log.h"
#include "device-agent/agent_config.h"
#include "device-agent/camera.h"
#include "device-agent/link.h"
#include "device-agent/reactor.h"
#include "device-agent/shift_script.h"
#include "proto/sign.h"

#define PROGRAM "bodycam-agent"
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define MAX_SETS 128
#define SHUTDOWN_GRACE_MS 5000
#define SIMULATE_MAX 100000
#define RESTART_CHECK_MS 100

typedef struct options {
    const char *config;
    const char *sets[MAX_SETS];
    size_t set_count;
    bool check_only;
    long simulate; /* 0: one camera */
    const char *stack;
    const char *script;
    int64_t spread_ms; /* -1: default */
    int64_t report_s;
    char **files; /* camera configuration files (simulation) */
    int file_count;
} options;

/* The cameras of this process. A camera that restarts (a firmware switch)
 * is freed and opened again here, from its configuration: cams[i] is NULL
 * when that failed. */
typedef struct fleet {
    bc_reactor *r;
    bc_camera **cams;
    bc_shift **shifts;
    size_t count;
    bc_timer report_timer;
    const bc_camera_config *cfgs; /* borrowed: one per camera */
    bc_shift_spec spec;           /* when shifts != NULL */
    int64_t *restart_deadline;    /* monotonic ms: stop waiting for a clean stop */
    bc_timer restart_timer;
    bool failed; /* every camera is gone */
} fleet;

static bc_reactor *volatile g_reactor;

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: " PROGRAM " --config FILE [--set NAME=VALUE]... [-n]\n"
        "       " PROGRAM " --simulate N (--stack stack.json | CAMERA.conf...) [--config FILE]\n"
        "                     [--set NAME=VALUE]... [--script random:SEED[:MEAN_S]]\n"
        "                     [--connect-spread-ms MS] [--report-s S] [-n]\n"
        "\n"
        "The body camera agent: the state machine of the buttons, encrypted recordings\n"
        "with a pre-event buffer, the MQTT link (mutual TLS 1.3) with an on-disk outbox,\n"
        "signed commands, health reports and the handoff to the vault.\n"
        "\n"
        "options:\n"
        "  -c, --config FILE        configuration file (NAME = VALUE lines, see below)\n"
        "  -s, --set NAME=VALUE     override one option (repeatable; after the file)\n"
        "  -n, --check              check the configuration (and its files) and exit\n"
        "      --simulate N         run N simulated cameras in this process\n"
        "      --stack FILE         simulation: identities from a stack.json (first N devices)\n"
        "      --script SPEC        a simulated officer: random:SEED[:MEAN_S] presses the buttons\n"
        "      --connect-spread-ms MS  simulation: spread the first connections over MS\n"
        "      --report-s S         simulation: a summary line every S seconds (0: off)\n"
        "  -h, --help               this text\n"
        "\n"
        "exit status: 0 clean stop, 1 runtime failure, 2 usage or configuration error\n"
        "\n"
        "configuration options (name = default  # units; range; meaning):\n");
    bc_agent_config_print(out);
}

static int parse_number(const char *text, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Returns -1 to exit with the usage status, 1 after --help, 0 to go on. */
static int parse_options(int argc, char **argv, options *o)
{
    enum { OPT_SIMULATE = 256, OPT_STACK, OPT_SCRIPT, OPT_SPREAD, OPT_REPORT };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"check", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {"simulate", required_argument, NULL, OPT_SIMULATE},
        {"stack", required_argument, NULL, OPT_STACK},
        {"script", required_argument, NULL, OPT_SCRIPT},
        {"connect-spread-ms", required_argument, NULL, OPT_SPREAD},
        {"report-s", required_argument, NULL, OPT_REPORT},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->spread_ms = -1;
    o->report_s = 10;
    long v = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:s:nh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case 's':
            if (o->set_count == MAX_SETS) {
                fprintf(stderr, PROGRAM ": too many --set options\n");
                return -1;
            }
            o->sets[o->set_count++] = optarg;
            break;
        case 'n':
            o->check_only = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        case OPT_SIMULATE:
            if (parse_number(optarg, 0, SIMULATE_MAX, &v) != 0) {
                fprintf(stderr, PROGRAM ": --simulate wants 0..%d\n", SIMULATE_MAX);
                return -1;
            }
            o->simulate = v == 0 ? -1 : v; /* -1: as many as given */
            break;
        case OPT_STACK:
            o->stack = optarg;
            break;
        case OPT_SCRIPT:
            o->script = optarg;
            break;
        case OPT_SPREAD:
            if (parse_number(optarg, 0, 3600000, &v) != 0) {
                fprintf(stderr, PROGRAM ": --connect-spread-ms wants 0..3600000\n");
                return -1;
            }
            o->spread_ms = v;
            break;
        case OPT_REPORT:
            if (parse_number(optarg, 0, 86400, &v) != 0) {
                fprintf(stderr, PROGRAM ": --report-s wants 0..86400\n");
                return -1;
            }
            o->report_s = v;
            break;
        default:
            usage(stderr);
            return -1;
        }
    }
    o->files = argv + optind;
    o->file_count = argc - optind;
    bool sim = o->simulate != 0;
    if (!sim && (o->config == NULL || o->file_count > 0 || o->stack)) {
        fprintf(stderr, PROGRAM ": one camera needs --config FILE (with --set, --script and -n "
                                "as you like); --stack and camera files need --simulate\n");
        return -1;
    }
    if (sim && (o->stack != NULL) == (o->file_count > 0)) {
        fprintf(stderr, PROGRAM ": --simulate needs either --stack FILE or camera files\n");
        return -1;
    }
    return 0;
}

/* ---- configuration ---- */

static int load_config(const options *o, const char *file, bc_agent_config *cfg)
{
    bc_error err;
    if (bc_agent_config_defaults(cfg, &err) != BC_OK ||
        (o->config != NULL && bc_agent_config_load(cfg, o->config, &err) != BC_OK) ||
        (file != NULL && bc_agent_config_load(cfg, file, &err) != BC_OK)) {
        log_errorx("configuration: %s", err.text);
        return -1;
    }
    for (size_t i = 0; i < o->set_count; i++) {
        if (bc_agent_config_set(cfg, o->sets[i], &err) != BC_OK) {
            log_errorx("--set %s: %s", o->sets[i], err.text);
            return -1;
        }
    }
    return 0;
}

/* The camera configurations to run; -1 on a configuration error. */
static int camera_configs(const options *o, bc_agent_config *base, bc_camera_config **list,
                          size_t *count)
{
    bc_error err;
    *list = NULL;
    *count = 0;
    if (load_config(o, NULL, base) != 0)
        return -1;
    if (o->simulate == 0) {
        *list = malloc(sizeof(**list));
        if (*list == NULL)
            return -1;
        **list = base->camera;
        *count = 1;
        return 0;
    }
    size_t want = o->simulate < 0 ? 0 : (size_t)o->simulate;
    if (o->stack != NULL) {
        if (bc_agent_config_from_stack(o->stack, &base->camera, want, list, count, &err) != BC_OK) {
            log_errorx("%s: %s", o->stack, err.text);
            return -1;
        }
        return 0;
    }
    size_t n = want == 0 || want > (size_t)o->file_count ? (size_t)o->file_count : want;
    if (want > (size_t)o->file_count) {
        log_errorx("--simulate %zu but %d camera files", want, o->file_count);
        return -1;
    }
    *list = calloc(n, sizeof(**list));
    if (*list == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        bc_agent_config one;
        if (load_config(o, o->files[i], &one) != 0)
            return -1;
        (*list)[i] = one.camera;
    }
    *count = n;
    return 0;
}

static int check_file(const char *what, const char *path)
{
    if (access(path, R_OK) == 0)
        return 0;
    log_errorx("%s '%s': %s", what, path, strerror(errno));
    return -1;
}

/* -n: the values, then that every file can be read and every key loaded. */
static int check_camera(const bc_camera_config *c)
{
    bc_error err;
    if (bc_camera_config_check(c, &err) != BC_OK) {
        log_errorx("%s: %s", c->device_id[0] ? c->device_id : "configuration", err.text);
        return -1;
    }
    if (check_file("ca_file", c->ca_file) || check_file("cert_file", c->cert_file) ||
        check_file("key_file", c->key_file))
        return -1;
    const struct {
        const char *name, *path;
        int type;
    } keys[] = {
        {"command_pubkey", c->command_pubkey, EVP_PKEY_ED25519},
        {"receipt_pubkey", c->receipt_pubkey, EVP_PKEY_ED25519},
        {"recording_pubkey", c->recording_pubkey, EVP_PKEY_X25519},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        EVP_PKEY *k = NULL;
        if (bc_key_load_public(keys[i].path, keys[i].type, &k, &err) != BC_OK) {
            log_errorx("%s: %s", keys[i].name, err.text);
            return -1;
        }
        EVP_PKEY_free(k);
    }
    if (c->firmware_pubkey[0] != '\0') {
        EVP_PKEY *k = NULL;
        if (bc_key_load_public(c->firmware_pubkey, EVP_PKEY_ED25519, &k, &err) != BC_OK) {
            log_errorx("firmware_pubkey: %s", err.text);
            return -1;
        }
        EVP_PKEY_free(k);
    }
    return 0;
}

static int check_all(const options *o, const bc_camera_config *cfgs, size_t n)
{
    bc_error err;
    bc_shift_spec spec;
    if (o->script != NULL && bc_shift_parse(o->script, &spec, &err) != BC_OK) {
        log_errorx("--script: %s", err.text);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (o->check_only) {
            if (check_camera(&cfgs[i]) != 0)
                return -1;
        } else if (bc_camera_config_check(&cfgs[i], &err) != BC_OK) {
            log_errorx("%s: %s", cfgs[i].device_id[0] ? cfgs[i].device_id : "configuration",
                       err.text);
            return -1;
        }
    }
    return 0;
}

/* ---- running ---- */

static void on_signal(int sig)
{
    (void)sig;
    bc_reactor *r = g_reactor;
    if (r != NULL)
        bc_reactor_stop(r);
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0) /* a peer that vanished is an error, not a death */
        return -1;
    sa.sa_handler = on_signal;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    return 0;
}

static void on_report(bc_reactor *r, bc_timer *t, void *userdata)
{
    fleet *f = userdata;
    size_t online = 0, recording = 0, outbox = 0, pending = 0;
    uint64_t presses = 0;
    for (size_t i = 0; i < f->count; i++) {
        bc_camera_status s;
        if (f->cams[i] == NULL)
            continue;
        bc_camera_status_get(f->cams[i], &s);
        online += s.online;
        recording += strcmp(s.state, "recording") == 0;
        outbox += s.outbox;
        pending += s.pending;
        if (f->shifts != NULL && f->shifts[i] != NULL)
            presses += bc_shift_presses(f->shifts[i]);
    }
    log_info("simulation | cameras=%zu online=%zu recording=%zu outbox=%zu pending=%zu "
             "presses=%" PRIu64 " fds=%zu",
             f->count, online, recording, outbox, pending, presses, bc_reactor_fd_count(f->r));
}

/* A camera asked to restart (bc_camera_restart_requested): once its
 * session is closed (or after the grace period) it is freed and opened
 * again from its data directory, with its simulated officer. */
static void restart_camera(fleet *f, size_t i)
{
    bc_error err;
    if (f->shifts != NULL) {
        bc_shift_free(f->shifts[i]);
        f->shifts[i] = NULL;
    }
    bc_camera_free(f->cams[i]);
    f->cams[i] = NULL;
    f->restart_deadline[i] = 0;
    if (bc_camera_open(f->r, &f->cfgs[i], 0, &f->cams[i], &err) != BC_OK) {
        log_errorx("%s: cannot restart: %s", f->cfgs[i].device_id, err.text);
        f->cams[i] = NULL;
    } else if (f->shifts != NULL && bc_shift_new(f->r, f->cams[i], &f->spec, (uint64_t)i,
                                                 &f->shifts[i], &err) != BC_OK) {
        log_errorx("%s: script: %s", f->cfgs[i].device_id, err.text);
    }
    size_t alive = 0;
    for (size_t k = 0; k < f->count; k++)
        alive += f->cams[k] != NULL;
    if (alive == 0) {
        f->failed = true;
        bc_reactor_stop(f->r);
    }
}

static void on_restart_check(bc_reactor *r, bc_timer *t, void *userdata)
{
    fleet *f = userdata;
    int64_t now = bc_clock_monotonic_ms();
    for (size_t i = 0; i < f->count; i++) {
        bc_camera *cam = f->cams[i];
        if (cam == NULL || !bc_camera_restart_requested(cam))
            continue;
        if (f->restart_deadline[i] == 0)
            f->restart_deadline[i] = now + SHUTDOWN_GRACE_MS;
        if (bc_camera_stopped(cam) || now >= f->restart_deadline[i])
            restart_camera(f, i);
    }
}

static int open_fleet(fleet *f, const options *o, const bc_camera_config *cfgs, size_t n)
{
    bc_error err;
    bc_shift_spec spec;
    if (o->script != NULL && bc_shift_parse(o->script, &spec, &err) != BC_OK) {
        log_errorx("--script: %s", err.text);
        return -1;
    }
    f->cams = calloc(n, sizeof(*f->cams));
    f->restart_deadline = calloc(n, sizeof(*f->restart_deadline));
    f->shifts = o->script != NULL ? calloc(n, sizeof(*f->shifts)) : NULL;
    if (f->cams == NULL || f->restart_deadline == NULL || (o->script != NULL && f->shifts == NULL))
        return -1;
    f->cfgs = cfgs;
    if (o->script != NULL)
        f->spec = spec;
    int64_t spread = o->spread_ms >= 0 ? o->spread_ms : (n > 1 ? (int64_t)n * 5 : 0);
    for (size_t i = 0; i < n; i++) {
        int64_t delay = n > 1 ? spread * (int64_t)i / (int64_t)n : 0;
        if (bc_camera_open(f->r, &cfgs[i], delay, &f->cams[i], &err) != BC_OK) {
            log_errorx("%s: cannot start: %s", cfgs[i].device_id, err.text);
            return -1;
        }
        f->count = i + 1;
        if (f->shifts != NULL &&
            bc_shift_new(f->r, f->cams[i], &spec, (uint64_t)i, &f->shifts[i], &err) != BC_OK) {
            log_errorx("%s: script: %s", cfgs[i].device_id, err.text);
            return -1;
        }
    }
    if (o->simulate != 0 && o->report_s > 0 &&
        bc_reactor_timer_start(f->r, &f->report_timer, o->report_s * 1000, o->report_s * 1000) !=
            BC_OK)
        return -1;
    if (bc_reactor_timer_start(f->r, &f->restart_timer, RESTART_CHECK_MS, RESTART_CHECK_MS) !=
        BC_OK)
        return -1;
    return 0;
}

/* Clean stop: every camera closes up, then the reactor runs until all
 * sessions ended or the grace period is over. */
static void shutdown_fleet(fleet *f)
{
    bc_error err;
    bc_reactor_timer_stop(f->r, &f->report_timer);
    bc_reactor_timer_stop(f->r, &f->restart_timer);
    for (size_t i = 0; i < f->count; i++) {
        if (f->shifts != NULL) {
            bc_shift_free(f->shifts[i]);
            f->shifts[i] = NULL;
        }
        if (f->cams[i] != NULL)
            bc_camera_shutdown(f->cams[i]);
    }
    int64_t deadline = bc_clock_monotonic_ms() + SHUTDOWN_GRACE_MS;
    while (bc_clock_monotonic_ms() < deadline) {
        size_t open = 0;
        for (size_t i = 0; i < f->count; i++)
            open += f->cams[i] != NULL && !bc_camera_stopped(f->cams[i]);
        if (open == 0)
            break;
        if (bc_reactor_run_once(f->r, 100, &err) != BC_OK) {
            log_errorx("event loop: %s", err.text);
            break;
        }
    }
}

static void free_fleet(fleet *f)
{
    for (size_t i = 0; i < f->count; i++)
        bc_camera_free(f->cams[i]);
    free(f->cams);
    free(f->shifts);
    free(f->restart_deadline);
    f->count = 0;
}

static int run(const options *o, const bc_camera_config *cfgs, size_t n)
{
    bc_error err;
    fleet f;
    memset(&f, 0, sizeof(f));
    /* Before anything can fail: shutdown_fleet() stops this timer. */
    bc_timer_init(&f.report_timer, on_report, &f);
    bc_timer_init(&f.restart_timer, on_restart_check, &f);
    if (install_signals() != 0) {
        log_error("cannot install the signal handlers");
        return EXIT_RUNTIME;
    }
    if (bc_link_lib_init(&err) != BC_OK || bc_reactor_new(&f.r, &err) != BC_OK) {
        log_errorx("cannot start: %s", err.text);
        return EXIT_RUNTIME;
    }
    g_reactor = f.r;
    int rc = open_fleet(&f, o, cfgs, n) == 0 ? 0 : EXIT_RUNTIME;
    if (rc == 0) {
        log_info("running %zu camera(s)", f.count);
        if (bc_reactor_run(f.r, &err) != BC_OK) {
            log_errorx("event loop: %s", err.text);
            rc = EXIT_RUNTIME;
        }
        if (f.failed) {
            log_errorx("no camera is left running");
            rc = EXIT_RUNTIME;
        }
        log_info("stopping");
    }
    shutdown_fleet(&f);
    free_fleet(&f);
    g_reactor = NULL;
    bc_reactor_free(f.r);
    bc_link_lib_cleanup();
    if (rc == 0)
        log_info("stopped cleanly");
    return rc;
}

int main(int argc, char **argv)
{
    options o;
    bc_log_init(PROGRAM, BC_LOG_INFO);
    int p = parse_options(argc, argv, &o);
    if (p != 0)
        return p > 0 ? 0 : EXIT_USAGE;
    bc_agent_config base;
    bc_camera_config *cfgs = NULL;
    size_t n = 0;
    if (camera_configs(&o, &base, &cfgs, &n) != 0) {
        free(cfgs);
        return EXIT_USAGE;
    }
    bc_log_level level = BC_LOG_INFO;
    if (bc_log_level_parse(base.log_level, &level) != 0) {
        log_errorx("option 'log_level': '%s' is not debug, info, warn or error", base.log_level);
        free(cfgs);
        return EXIT_USAGE;
    }
    bc_log_init(PROGRAM, level);
    if (check_all(&o, cfgs, n) != 0) {
        free(cfgs);
        return EXIT_USAGE;
    }
    if (o.check_only) {
        printf("configuration ok (%zu camera%s)\n", n, n == 1 ? "" : "s");
        free(cfgs);
        return 0;
    }
    int rc = run(&o, cfgs, n);
    free(cfgs);
    return rc;
}
