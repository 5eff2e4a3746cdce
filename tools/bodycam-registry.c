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
 * registry.h, documented in broker-plugins/README.md). Every change is one
 * MULTI/EXEC transaction that also INCRs bodycam:registry:version, so the
 * plugin's worker sees it on its next poll (200 ms by default) and the
 * broker kicks a revoked camera within a second. Read-modify-write changes
 * (adding or removing a fingerprint) WATCH the device's key and retry if
 * someone else changed it in between.
 *
 * Exit codes: 0 done, 1 failure (reason on stderr), 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "broker-plugins/bodycam-auth/password.h"
#include "broker-plugins/bodycam-auth/registry.h"
#include "common/ca.h"
#include "common/cli.h"
#include "proto/encoding.h"
#include "proto/topic.h"

#define PROGRAM "bodycam-registry"
#define WATCH_RETRIES 10
#define FP_HEX_LEN (2 * BC_FINGERPRINT_LEN)
#define FP_LIST_MAX (BC_REGISTRY_MAX_FINGERPRINTS * (FP_HEX_LEN + 1))
_Static_assert(FP_HEX_LEN == BC_CERT_FINGERPRINT_LEN, "the registry keeps the CA's fingerprints");

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

/* ---- Redis -------------------------------------------------------------- */

static redisContext *connect_redis(const options *o)
{
    struct timeval tv = {5, 0};
    redisContext *ctx = redisConnectWithTimeout(o->host, o->port, tv);
    if (ctx == NULL) {
        bc_cli_fail("cannot allocate a Redis connection");
        return NULL;
    }
    if (ctx->err != 0 || redisSetTimeout(ctx, tv) != REDIS_OK) {
        bc_cli_fail("redis %s:%d: %s", o->host, o->port, ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    return ctx;
}

/* Runs a command and checks the reply type; 0 on success (reply stored in
 * *out when out is not NULL, else freed), -1 with the reason printed. */
static int run(redisContext *ctx, redisReply **out, int want_type, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    if (r == NULL)
        return bc_cli_fail("redis: %s", ctx->errstr), -1;
    if (r->type == REDIS_REPLY_ERROR || (want_type >= 0 && r->type != want_type)) {
        bc_cli_fail("redis %s: %s", argv[0],
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return -1;
    }
    if (out != NULL)
        *out = r;
    else
        freeReplyObject(r);
    return 0;
}

#define RUN(ctx, out, type, ...)                                                                   \
    run(ctx, out, type, (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),       \
        (const char *[]){__VA_ARGS__})

/* EXEC's reply: 1 committed, 0 aborted by WATCH (retry), -1 error. */
static int exec_transaction(redisContext *ctx)
{
    redisReply *r = NULL;
    if (RUN(ctx, &r, -1, "EXEC") != 0)
        return -1;
    int rc = r->type == REDIS_REPLY_ARRAY ? 1 : (r->type == REDIS_REPLY_NIL ? 0 : -1);
    if (rc < 0)
        bc_cli_fail("redis EXEC: unexpected reply");
    freeReplyObject(r);
    return rc;
}

static void device_key(char *out, size_t size, const char *id)
{
    snprintf(out, size, BC_REGISTRY_KEY_DEVICE "%s", id);
}

/* Reads a field of a hash into out ("" when absent). */
static int read_field(redisContext *ctx, const char *key, const char *field, char *out, size_t size)
{
    redisReply *r = NULL;
    if (RUN(ctx, &r, -1, "HGET", key, field) != 0)
        return -1;
    out[0] = '\0';
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING) {
        if (r->len >= size)
            rc = bc_cli_fail("%s %s is too long", key, field);
        else
            memcpy(out, r->str, r->len + 1);
    } else if (r->type != REDIS_REPLY_NIL) {
        rc = bc_cli_fail("%s %s has the wrong type", key, field);
    }
    freeReplyObject(r);
    return rc ? -1 : 0;
}

/* ---- fingerprints -------------------------------------------------------- */

/* The registry's fingerprint is the CA's (SHA-256 of the DER certificate,
 * lower-case hex), so bodycam-pki's output can be pasted in. */
static int certificate_fingerprint(const char *path, char hex[FP_HEX_LEN + 1])
{
    X509 *cert = NULL;
    bc_error err = {{0}};
    if (bc_ca_load_cert(path, &cert, &err) != BC_OK)
        return bc_cli_fail("%s", err.text);
    int rc = 0;
    if (bc_ca_fingerprint(cert, hex) != BC_OK)
        rc = bc_cli_fail("cannot hash %s", path);
    X509_free(cert);
    return rc;
}

/* Edits a comma list: adds hex (when add) unless present, or removes it.
 * Sets *changed. -1 when the result would exceed the maximum. */
static int edit_list(const char *list, const char *hex, int add, char *out, size_t size,
                     int *changed)
{
    char copy[FP_LIST_MAX + 1];
    snprintf(copy, sizeof(copy), "%s", list);
    out[0] = '\0';
    *changed = 0;
    int count = 0, present = 0;
    char *save = NULL;
    for (char *fp = strtok_r(copy, ",", &save); fp; fp = strtok_r(NULL, ",", &save)) {
        if (strcasecmp(fp, hex) == 0) {
            present = 1;
            if (!add) {
                *changed = 1;
                continue;
            }
        }
        snprintf(out + strlen(out), size - strlen(out), "%s%s", count ? "," : "", fp);
        count++;
    }
    if (add && !present) {
        if (count == BC_REGISTRY_MAX_FINGERPRINTS)
            return bc_cli_fail("the device already has %d fingerprints; remove one first",
                               BC_REGISTRY_MAX_FINGERPRINTS);
        snprintf(out + strlen(out), size - strlen(out), "%s%s", count ? "," : "", hex);
        *changed = 1;
    }
    return 0;
}

/* WATCH the device, edit its fingerprint list, commit with a version bump.
 * create: a missing device is created active (register); otherwise it
 * must exist. */
static int change_fingerprints(redisContext *ctx, const char *id, const char *hex, int add)
{
    char key[sizeof(BC_REGISTRY_KEY_DEVICE) + BC_DEVICE_ID_MAX];
    char status[32], list[FP_LIST_MAX + 1], next[FP_LIST_MAX + 1];
    device_key(key, sizeof(key), id);
    for (int attempt = 0; attempt < WATCH_RETRIES; attempt++) {
        int changed = 0;
        if (RUN(ctx, NULL, REDIS_REPLY_STATUS, "WATCH", key) != 0 ||
            read_field(ctx, key, BC_REGISTRY_FIELD_STATUS, status, sizeof(status)) != 0 ||
            read_field(ctx, key, BC_REGISTRY_FIELD_FINGERPRINTS, list, sizeof(list)) != 0)
            return -1;
        if (!add && status[0] == '\0')
            return bc_cli_fail("no device '%s' in the registry", id);
        if (edit_list(list, hex, add, next, sizeof(next), &changed) != 0)
            return -1;
        if (!changed && status[0] != '\0') {
            RUN(ctx, NULL, -1, "UNWATCH");
            printf("%s: unchanged\n", id);
            return 0;
        }
        const char *new_status = status[0] ? status : bc_device_status_name(BC_DEVICE_ACTIVE);
        if (RUN(ctx, NULL, REDIS_REPLY_STATUS, "MULTI") != 0 ||
            RUN(ctx, NULL, REDIS_REPLY_STATUS, "HSET", key, BC_REGISTRY_FIELD_STATUS, new_status,
                BC_REGISTRY_FIELD_FINGERPRINTS, next) != 0 ||
            RUN(ctx, NULL, REDIS_REPLY_STATUS, "SADD", BC_REGISTRY_KEY_DEVICES, id) != 0 ||
            RUN(ctx, NULL, REDIS_REPLY_STATUS, "INCR", BC_REGISTRY_KEY_VERSION) != 0)
            return -1;
        int rc = exec_transaction(ctx);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            printf("%s: %s, fingerprints %s\n", id, new_status, next[0] ? next : "(none)");
            return 0;
        }
    }
    return bc_cli_fail("%s kept changing under us; try again", key);
}

/* ---- commands ------------------------------------------------------------ */

static int check_device_id(const char *id)
{
    if (!bc_device_id_valid(id))
        return bc_cli_usage_error("'%s' is not a device id ([a-z0-9][a-z0-9_-]{0,31})", id);
    return 0;
}

static int cmd_register(redisContext *ctx, const options *o)
{
    char hex[FP_HEX_LEN + 1];
    if (certificate_fingerprint(o->args[1], hex) != 0)
        return EXIT_FAILURE;
    return change_fingerprints(ctx, o->args[0], hex, 1) ? EXIT_FAILURE : 0;
}

static int cmd_remove_cert(redisContext *ctx, const options *o)
{
    uint8_t raw[BC_FINGERPRINT_LEN];
    char hex[FP_HEX_LEN + 1];
    if (strlen(o->args[1]) != FP_HEX_LEN || bc_hex_decode(o->args[1], raw, sizeof(raw)) != BC_OK)
        return bc_cli_usage_error("FINGERPRINT must be 64 hex digits");
    if (bc_hex_encode(raw, sizeof(raw), hex, sizeof(hex)) != BC_OK)
        return bc_cli_fail("hex encoding failed");
    return change_fingerprints(ctx, o->args[0], hex, 0) ? EXIT_FAILURE : 0;
}

static int cmd_status(redisContext *ctx, const options *o)
{
    bc_device_status status;
    if (bc_device_status_parse(o->args[1], &status) != BC_OK)
        return bc_cli_usage_error("status must be active, lost or revoked");
    char key[sizeof(BC_REGISTRY_KEY_DEVICE) + BC_DEVICE_ID_MAX];
    redisReply *r = NULL;
    device_key(key, sizeof(key), o->args[0]);
    if (RUN(ctx, &r, REDIS_REPLY_INTEGER, "EXISTS", key) != 0)
        return EXIT_FAILURE;
    long long exists = r->integer;
    freeReplyObject(r);
    if (!exists)
        return bc_cli_fail("no device '%s' in the registry (register it first)", o->args[0]);
    if (RUN(ctx, NULL, REDIS_REPLY_STATUS, "MULTI") != 0 ||
        RUN(ctx, NULL, REDIS_REPLY_STATUS, "HSET", key, BC_REGISTRY_FIELD_STATUS, o->args[1]) !=
            0 ||
        RUN(ctx, NULL, REDIS_REPLY_STATUS, "INCR", BC_REGISTRY_KEY_VERSION) != 0 ||
        exec_transaction(ctx) != 1)
        return EXIT_FAILURE;
    printf("%s: %s\n", o->args[0], o->args[1]);
    return 0;
}

static int cmd_remove(redisContext *ctx, const options *o)
{
    char key[sizeof(BC_REGISTRY_KEY_DEVICE) + BC_DEVICE_ID_MAX];
    device_key(key, sizeof(key), o->args[0]);
    if (RUN(ctx, NULL, REDIS_REPLY_STATUS, "MULTI") != 0 ||
        RUN(ctx, NULL, REDIS_REPLY_STATUS, "DEL", key) != 0 ||
        RUN(ctx, NULL, REDIS_REPLY_STATUS, "SREM", BC_REGISTRY_KEY_DEVICES, o->args[0]) != 0 ||
        RUN(ctx, NULL, REDIS_REPLY_STATUS, "INCR", BC_REGISTRY_KEY_VERSION) != 0 ||
        exec_transaction(ctx) != 1)
        return EXIT_FAILURE;
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

static int cmd_dashboard_user(redisContext *ctx, const options *o)
{
    const char *name = o->args[0];
    if (!bc_id_valid(name) || strlen(name) > BC_DASHBOARD_USER_MAX)
        return bc_cli_usage_error("'%s' is not a user name ([A-Za-z0-9_-]{1,64})", name);
    char password[1024], hash[BC_PASSWORD_HASH_MAX];
    char key[sizeof(BC_REGISTRY_KEY_DASHBOARD) + BC_DASHBOARD_USER_MAX];
    bc_error err = {{0}};
    if (read_password(o->args[1], password, sizeof(password)) != 0)
        return EXIT_FAILURE;
    if (password[0] == '\0')
        return bc_cli_fail("the password is empty");
    bc_status rc = bc_password_hash(password, o->iterations, hash, sizeof(hash), &err);
    OPENSSL_cleanse(password, sizeof(password));
    if (rc != BC_OK)
        return bc_cli_fail("cannot hash the password: %s", err.text);
    snprintf(key, sizeof(key), BC_REGISTRY_KEY_DASHBOARD "%s", name);
    if (RUN(ctx, NULL, REDIS_REPLY_STATUS, "MULTI") != 0 ||
        RUN(ctx, NULL, REDIS_REPLY_STATUS, "HSET", key, BC_REGISTRY_FIELD_HASH, hash) != 0 ||
        RUN(ctx, NULL, REDIS_REPLY_STATUS, "SADD", BC_REGISTRY_KEY_DASHBOARDS, name) != 0 ||
        RUN(ctx, NULL, REDIS_REPLY_STATUS, "INCR", BC_REGISTRY_KEY_VERSION) != 0 ||
        exec_transaction(ctx) != 1)
        return EXIT_FAILURE;
    printf("dashboard user %s: password set\n", name);
    return 0;
}

static int cmd_dashboard_remove(redisContext *ctx, const options *o)
{
    char key[sizeof(BC_REGISTRY_KEY_DASHBOARD) + BC_DASHBOARD_USER_MAX];
    if (!bc_id_valid(o->args[0]) || strlen(o->args[0]) > BC_DASHBOARD_USER_MAX)
        return bc_cli_usage_error("'%s' is not a user name", o->args[0]);
    snprintf(key, sizeof(key), BC_REGISTRY_KEY_DASHBOARD "%s", o->args[0]);
    if (RUN(ctx, NULL, REDIS_REPLY_STATUS, "MULTI") != 0 ||
        RUN(ctx, NULL, REDIS_REPLY_STATUS, "DEL", key) != 0 ||
        RUN(ctx, NULL, REDIS_REPLY_STATUS, "SREM", BC_REGISTRY_KEY_DASHBOARDS, o->args[0]) != 0 ||
        RUN(ctx, NULL, REDIS_REPLY_STATUS, "INCR", BC_REGISTRY_KEY_VERSION) != 0 ||
        exec_transaction(ctx) != 1)
        return EXIT_FAILURE;
    printf("dashboard user %s: removed\n", o->args[0]);
    return 0;
}

static int cmd_list(redisContext *ctx, const options *o)
{
    (void)o;
    bc_registry_snapshot *s = NULL;
    bc_error err = {{0}};
    if (bc_registry_load(ctx, &s, &err) != BC_OK)
        return bc_cli_fail("cannot read the registry: %s", err.text);
    printf("# registry version %llu: %zu devices, %zu dashboard users, %zu entries skipped\n",
           (unsigned long long)s->version, s->device_count, s->user_count, s->skipped);
    for (size_t i = 0; i < s->device_count; i++) {
        const bc_registry_device *d = &s->devices[i];
        printf("device %s %s", d->id, bc_device_status_name(d->status));
        for (size_t k = 0; k < d->fingerprint_count; k++) {
            char hex[FP_HEX_LEN + 1];
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
    int (*run)(redisContext *ctx, const options *o);
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
    redisContext *ctx = connect_redis(&o);
    if (ctx == NULL)
        return EXIT_FAILURE;
    rc = cmd->run(ctx, &o);
    redisFree(ctx);
    return rc;
}
