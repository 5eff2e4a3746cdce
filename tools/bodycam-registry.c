/*
 * bodycam-registry - the device registry and dashboard users in Redis, for
 * operators and tests until bodycamctl exists.
 *
 *   bodycam-registry [--redis HOST:PORT] register ID CERT.pem
 *   bodycam-registry [--redis HOST:PORT] status ID active|lost|revoked
 *   bodycam-registry [--redis HOST:PORT] remove-cert ID FINGERPRINT
 *   bodycam-registry [--redis HOST:PORT] remove ID
 *   bodycam-registry [--redis HOST:PORT] list
 *   bodycam-registry [--redis HOST:PORT] dashboard-user NAME PASSWORD|-
 *   bodycam-registry [--redis HOST:PORT] dashboard-remove NAME
 *
 * The key layout is the broker plugin's (broker-plugins/bodycam-auth/
 * registry.h, documented in broker-plugins/README.md); the changes are
 * registry_admin's, shared with bodycamctl (one MULTI/EXEC per change that
 * also INCRs bodycam:registry:version, so the plugin's worker sees it on
 * its next poll and the broker kicks a revoked camera within a second).
 *
 * Exit codes: 0 done, 1 failure (reason on stderr), 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "broker-plugins/bodycam-auth/password.h"
#include "broker-plugins/bodycam-auth/registry.h"
#include "common/cli.h"
#include "common/stream.h"
#include "proto/encoding.h"
#include "proto/topic.h"
#include "registry_admin.h"

#define PROGRAM "bodycam-registry"

typedef struct options {
    char host[256];
    int port;
    unsigned iterations;
    const char *command;
    char **args;
    int arg_count;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROGRAM " [--redis HOST:PORT] [--iterations N] COMMAND ARGS\n"
            "\n"
            "Commands:\n"
            "  register ID CERT.pem        add the device (status active) or add CERT's\n"
            "                              fingerprint to it (SHA-256 of the DER certificate)\n"
            "  status ID active|lost|revoked\n"
            "                              lost and revoked devices are kicked and refused\n"
            "  remove-cert ID FINGERPRINT  stop accepting one certificate (64 hex digits)\n"
            "  remove ID                   forget the device (it is then unknown: refused)\n"
            "  list                        devices and dashboard users, one per line\n"
            "  dashboard-user NAME PASSWORD|-\n"
            "                              create or reset a dashboard user; '-' reads the\n"
            "                              password from the first line of standard input\n"
            "  dashboard-remove NAME       remove a dashboard user (kicked at once)\n"
            "\n"
            "Options:\n"
            "  --redis HOST:PORT   Redis to use (default 127.0.0.1:6379)\n"
            "  --iterations N      PBKDF2 iterations for dashboard-user (default %u)\n"
            "\n"
            "Exit status: 0 done, 1 failure, 2 usage error.\n",
            BC_PASSWORD_DEFAULT_ITERATIONS);
}

/* ---- commands ------------------------------------------------------------ */

static int check_device_id(const char *id)
{
    if (!bc_device_id_valid(id))
        return bc_cli_usage_error("'%s' is not a device id ([a-z0-9][a-z0-9_-]{0,31})", id);
    return 0;
}

/* Exit status of a failed call, its reason printed. */
static int failed(const bc_error *err)
{
    bc_cli_fail("%s", err->text);
    return EXIT_FAILURE;
}

static void print_change(const char *id, const bc_registry_change *c)
{
    if (!c->changed) {
        printf("%s: unchanged\n", id);
        return;
    }
    printf("%s: %s, fingerprints %s\n", id, bc_device_status_name(c->status),
           c->fingerprints[0] ? c->fingerprints : "(none)");
}

static int cmd_register(bc_redis *r, const options *o)
{
    char hex[BC_REGISTRY_FP_HEX_LEN + 1];
    bc_registry_change c;
    bc_error err = {{0}};
    if (bc_registry_admin_cert_fingerprint(o->args[1], hex, &err) != BC_OK ||
        bc_registry_admin_add_fingerprint(r, o->args[0], hex, &c, &err) != BC_OK)
        return failed(&err);
    print_change(o->args[0], &c);
    return 0;
}

static int cmd_remove_cert(bc_redis *r, const options *o)
{
    bc_registry_change c;
    bc_error err = {{0}};
    bc_status rc = bc_registry_admin_remove_fingerprint(r, o->args[0], o->args[1], &c, &err);
    if (rc == BC_ERR_INVAL)
        return bc_cli_usage_error("FINGERPRINT must be 64 hex digits");
    if (rc != BC_OK)
        return failed(&err);
    print_change(o->args[0], &c);
    return 0;
}

static int cmd_status(bc_redis *r, const options *o)
{
    bc_device_status status;
    bc_registry_change c;
    bc_error err = {{0}};
    if (bc_device_status_parse(o->args[1], &status) != BC_OK)
        return bc_cli_usage_error("status must be active, lost or revoked");
    bc_status rc = bc_registry_admin_set_status(r, o->args[0], status, &c, &err);
    if (rc == BC_ERR_NOT_FOUND)
        return bc_cli_fail("no device '%s' in the registry (register it first)", o->args[0]);
    if (rc != BC_OK)
        return failed(&err);
    printf("%s: %s\n", o->args[0], o->args[1]);
    return 0;
}

static int cmd_remove(bc_redis *r, const options *o)
{
    bc_error err = {{0}};
    if (bc_registry_admin_remove_device(r, o->args[0], NULL, &err) != BC_OK)
        return failed(&err);
    printf("%s: removed\n", o->args[0]);
    return 0;
}

static int read_password(const char *arg, char *out, size_t size)
{
    if (strcmp(arg, "-") != 0) {
        if (strlen(arg) >= size)
            return bc_cli_fail("password is longer than %zu bytes", size - 1);
        snprintf(out, size, "%s", arg);
        return 0;
    }
    if (fgets(out, (int)size, stdin) == NULL)
        return bc_cli_fail("no password on standard input");
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int cmd_dashboard_user(bc_redis *r, const options *o)
{
    const char *name = o->args[0];
    if (!bc_registry_admin_user_valid(name))
        return bc_cli_usage_error("'%s' is not a user name ([A-Za-z0-9_-]{1,64})", name);
    char password[1024], hash[BC_PASSWORD_HASH_MAX];
    bc_error err = {{0}};
    if (read_password(o->args[1], password, sizeof(password)) != 0)
        return EXIT_FAILURE;
    if (password[0] == '\0')
        return bc_cli_fail("the password is empty");
    bc_status rc = bc_password_hash(password, o->iterations, hash, sizeof(hash), &err);
    OPENSSL_cleanse(password, sizeof(password));
    if (rc != BC_OK)
        return bc_cli_fail("cannot hash the password: %s", err.text);
    if (bc_registry_admin_dashboard_set(r, name, hash, &err) != BC_OK)
        return failed(&err);
    printf("dashboard user %s: password set\n", name);
    return 0;
}

static int cmd_dashboard_remove(bc_redis *r, const options *o)
{
    bc_error err = {{0}};
    if (!bc_registry_admin_user_valid(o->args[0]))
        return bc_cli_usage_error("'%s' is not a user name", o->args[0]);
    if (bc_registry_admin_dashboard_remove(r, o->args[0], NULL, &err) != BC_OK)
        return failed(&err);
    printf("dashboard user %s: removed\n", o->args[0]);
    return 0;
}

static int cmd_list(bc_redis *r, const options *o)
{
    (void)o;
    bc_registry_snapshot *s = NULL;
    bc_error err = {{0}};
    if (bc_registry_load(r->ctx, &s, &err) != BC_OK)
        return bc_cli_fail("cannot read the registry: %s", err.text);
    printf("# registry version %llu: %zu devices, %zu dashboard users, %zu entries skipped\n",
           (unsigned long long)s->version, s->device_count, s->user_count, s->skipped);
    for (size_t i = 0; i < s->device_count; i++) {
        const bc_registry_device *d = &s->devices[i];
        printf("device %s %s", d->id, bc_device_status_name(d->status));
        for (size_t k = 0; k < d->fingerprint_count; k++) {
            char hex[BC_REGISTRY_FP_HEX_LEN + 1];
            if (bc_hex_encode(d->fingerprints[k], BC_FINGERPRINT_LEN, hex, sizeof(hex)) == BC_OK)
                printf("%s%s", k ? "," : " ", hex);
        }
        putchar('\n');
    }
    for (size_t i = 0; i < s->user_count; i++)
        printf("dashboard %s\n", s->users[i].name);
    bc_registry_snapshot_free(s);
    return 0;
}

/* ---- main ---------------------------------------------------------------- */

static const struct command {
    const char *name;
    int args;
    int (*run)(bc_redis *r, const options *o);
    int device_arg; /* args[0] is a device id */
} commands[] = {
    {"register", 2, cmd_register, 1},
    {"status", 2, cmd_status, 1},
    {"remove-cert", 2, cmd_remove_cert, 1},
    {"remove", 1, cmd_remove, 1},
    {"list", 0, cmd_list, 0},
    {"dashboard-user", 2, cmd_dashboard_user, 0},
    {"dashboard-remove", 1, cmd_dashboard_remove, 0},
};

static int parse_redis(const char *text, options *o)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || (size_t)(colon - text) >= sizeof(o->host))
        return -1;
    long port = 0;
    if (bc_cli_parse_long(colon + 1, 1, 65535, &port) != BC_OK)
        return -1;
    memcpy(o->host, text, (size_t)(colon - text));
    o->host[colon - text] = '\0';
    o->port = (int)port;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"redis", required_argument, NULL, 'r'},
        {"iterations", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    o->port = 6379;
    o->iterations = BC_PASSWORD_DEFAULT_ITERATIONS;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (parse_redis(optarg, o) != 0)
                return bc_cli_usage_error("--redis wants HOST:PORT, got '%s'", optarg);
            break;
        case 'i': {
            long n = 0;
            if (bc_cli_parse_long(optarg, BC_PASSWORD_MIN_ITERATIONS, BC_PASSWORD_MAX_ITERATIONS,
                                  &n) != BC_OK)
                return bc_cli_usage_error("--iterations wants a number in [%u, %u]",
                                          BC_PASSWORD_MIN_ITERATIONS, BC_PASSWORD_MAX_ITERATIONS);
            o->iterations = (unsigned)n;
            break;
        }
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return bc_cli_option_error(c, argv);
        }
    }
    if (optind >= argc)
        return bc_cli_usage_error("no command given");
    o->command = argv[optind];
    o->args = argv + optind + 1;
    o->arg_count = argc - optind - 1;
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    bc_cli_init(PROGRAM, " (see --help)");
    memset(&o, 0, sizeof(o));
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, o.command) == 0)
            cmd = &commands[i];
    }
    if (cmd == NULL)
        return bc_cli_usage_error("unknown command '%s'", o.command);
    if (o.arg_count != cmd->args)
        return bc_cli_usage_error("'%s' takes %d argument(s)", cmd->name, cmd->args);
    if (cmd->device_arg && check_device_id(o.args[0]) != 0)
        return BC_CLI_EXIT_USAGE;
    bc_redis r;
    bc_redis_config cfg = {
        .port = o.port, .timeout_ms = 5000, .backoff_min_ms = 1, .backoff_max_ms = 1};
    bc_error err = {{0}};
    snprintf(cfg.host, sizeof(cfg.host), "%s", o.host);
    if (bc_redis_init(&r, &cfg, &err) != BC_OK || bc_redis_connect_now(&r, &err) != BC_OK)
        return bc_cli_fail("redis %s:%d: %s", o.host, o.port, err.text);
    rc = cmd->run(&r, &o);
    bc_redis_close(&r);
    return rc;
}
