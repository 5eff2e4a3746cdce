/*
 * bodycam-pki - makes and extends the fleet's test PKI in one directory.
 *
 *   DIR/ca.crt ca.key                      the fleet CA (EC P-256)
 *   DIR/broker.crt broker.key              the broker (serverAuth, SAN 127.0.0.1, localhost, ...)
 *   DIR/devices/<id>.crt .key              one per camera (clientAuth, OU=device, CN=id)
 *   DIR/services/<name>.crt .key           one per service (clientAuth, OU=service, CN=name)
 *   DIR/keys/command.key .pub              Ed25519: signs commands to cameras
 *   DIR/keys/receipt.key .pub              Ed25519: the vault's receipts
 *   DIR/keys/firmware.key .pub             Ed25519: firmware manifests
 *   DIR/keys/recording.key .pub .id        X25519: the vault's recording key and its key id
 *
 * `sign-csr DIR ID CSR.pem OUT.crt` has the CA sign a camera's certificate
 * signing request, as the key-rotation service does in an identity
 * rotation (bc_ca_sign_csr: self-signature, CN = ID, EC P-256 or Ed25519;
 * role device); it writes OUT.crt (replacing it) and prints its fingerprint.
 *
 * Every other command is idempotent and never overwrites a key: an identity whose
 * key and certificate both exist is kept (after checking they belong
 * together and to this CA); a key without its certificate gets one; a
 * certificate without its key is an error (someone lost a key: a human
 * decides). Files are written durably (services/common/file).
 *
 * Exit codes: 0 done, 1 failure (reason on stderr), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/ca.h"
#include "common/cli.h"
#include "common/file.h"
#include "proto/sign.h"
#include "proto/topic.h"

#define PROGRAM "bodycam-pki"
#define DEFAULT_DAYS 365
#define CA_MIN_DAYS 3650
#define CA_NAME "bodycam fleet CA"
#define CSR_FILE_MAX (64 * 1024)

static const char *const default_services =
    "gateway,fleet-health,vault,key-rotation,firmware-rollout";

/* The signing keys of the design, by file stem and OpenSSL key type. */
static const struct signing_key {
    const char *name;
    const char *type; /* for EVP_PKEY_Q_keygen and EVP_PKEY_is_a */
    int write_id;     /* also write <name>.id (the key id of proto/sign.h) */
} signing_keys[] = {
    {"command", "ED25519", 0},
    {"receipt", "ED25519", 0},
    {"firmware", "ED25519", 0},
    {"recording", "X25519", 1},
};

typedef struct name_list {
    char **items;
    size_t count;
} name_list;

typedef struct options {
    const char *command;
    const char *dir;
    const char *name; /* device id or service name for `device` / `service` / `sign-csr` */
    const char *csr;  /* sign-csr: the request and the certificate to write */
    const char *out;
    int days;
    const char *devices; /* comma lists, borrowed from argv */
    const char *services;
    const char *broker_names;
} options;

typedef struct pki {
    const char *dir;
    int days;
    bc_ca ca;
} pki;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROGRAM " init DIR [--devices ID,...] [--services NAME,...]\n"
            "                        [--broker-names NAME,...] [--days N]\n"
            "       " PROGRAM " device DIR ID [--days N]\n"
            "       " PROGRAM " service DIR NAME [--days N]\n"
            "       " PROGRAM " ca DIR [--days N]\n"
            "       " PROGRAM " sign-csr DIR ID CSR.pem OUT.crt [--days N]\n"
            "       " PROGRAM " --help\n"
            "\n"
            "Makes the fleet's test PKI in DIR, never overwriting a key:\n"
            "  init     the CA, the broker certificate, the given devices and services\n"
            "           (default services: %s)\n"
            "           and the signing keys in DIR/keys (command, receipt, firmware:\n"
            "           Ed25519; recording: X25519, with its key id in recording.id)\n"
            "  device   adds one camera identity to an existing PKI (ID as in topics:\n"
            "           [a-z0-9][a-z0-9_-]{0,31})\n"
            "  service  adds one service identity to an existing PKI\n"
            "  ca       makes only a CA (e.g. a foreign one for tests)\n"
            "  sign-csr the CA signs camera ID's certificate signing request (identity\n"
            "           rotation): CN must be ID, the key EC P-256 or Ed25519; writes\n"
            "           OUT.crt and prints its SHA-256 fingerprint\n"
            "\n"
            "Options:\n"
            "  --days N             validity of new leaf certificates (default %d);\n"
            "                       a new CA gets max(N, %d) days\n"
            "  --broker-names LIST  extra broker names (IP or DNS) besides 127.0.0.1, localhost\n"
            "\n"
            "Exit status: 0 done, 1 failure, 2 usage error.\n",
            default_services, DEFAULT_DAYS, CA_MIN_DAYS);
}

static void names_free(name_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static int names_contains(const name_list *l, const char *name)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i], name) == 0)
            return 1;
    }
    return 0;
}

/* Splits "a,b,c" into l (duplicates dropped, empty items refused).
 * Returns 0, or -1 with a message on stderr. */
static int names_parse(const char *text, const char *what, name_list *l)
{
    const char *p = text;
    while (1) {
        size_t n = strcspn(p, ",");
        if (n == 0)
            return bc_cli_usage_error("empty name in the %s list '%s'", what, text), -1;
        char *item = strndup(p, n);
        if (item == NULL)
            return bc_cli_fail("out of memory"), -1;
        if (names_contains(l, item)) {
            free(item);
        } else {
            char **grown = realloc(l->items, (l->count + 1) * sizeof(*grown));
            if (grown == NULL) {
                free(item);
                return bc_cli_fail("out of memory"), -1;
            }
            l->items = grown;
            l->items[l->count++] = item;
        }
        if (p[n] == '\0')
            return 0;
        p += n + 1;
    }
}

static int path_join(char *out, size_t size, const char *dir, const char *sub, const char *name,
                     const char *suffix)
{
    int n = snprintf(out, size, "%s%s%s/%s%s", dir, sub[0] ? "/" : "", sub, name, suffix);
    if (n < 0 || (size_t)n >= size)
        return bc_cli_fail("path under '%s' is too long", dir), -1;
    return 0;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* mkdir -p with the given mode for every directory it makes. */
static int make_dirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return bc_cli_fail("path '%s' is too long", path), -1;
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return bc_cli_fail("cannot create directory '%s': %s", buf, strerror(errno)), -1;
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return bc_cli_fail("'%s' is not a directory", path), -1;
    return 0;
}

/* Loads the CA of DIR, or makes one when create is set and neither file
 * exists. Half a CA (one file without the other) is an error. */
static int pki_open(pki *p, int create)
{
    char crt[PATH_MAX], key[PATH_MAX];
    bc_error err = {""};
    if (path_join(crt, sizeof(crt), p->dir, "", "ca", ".crt") != 0 ||
        path_join(key, sizeof(key), p->dir, "", "ca", ".key") != 0)
        return -1;
    int have_crt = file_exists(crt), have_key = file_exists(key);
    if (have_crt && have_key) {
        if (bc_ca_load(crt, key, &p->ca, &err) != BC_OK)
            return bc_cli_fail("%s", err.text), -1;
        return 0;
    }
    if (have_crt || have_key)
        return bc_cli_fail("'%s' has only half a CA (%s is missing); refusing to replace it",
                           p->dir, have_crt ? key : crt),
               -1;
    if (!create)
        return bc_cli_fail("no CA in '%s' (expected ca.crt and ca.key); "
                           "run '" PROGRAM " init %s' first",
                           p->dir, p->dir),
               -1;
    int days = p->days > CA_MIN_DAYS ? p->days : CA_MIN_DAYS;
    if (bc_ca_create(CA_NAME, days, &p->ca, &err) != BC_OK ||
        bc_ca_write_key(key, p->ca.key, &err) != BC_OK ||
        bc_ca_write_cert(crt, p->ca.cert, &err) != BC_OK)
        return bc_cli_fail("making the CA: %s", err.text), -1;
    printf("ca: created %s\n", crt);
    return 0;
}

/* Checks that an existing identity is whole: key matches, CA signed it. */
static int identity_check(const pki *p, const char *crt, EVP_PKEY *key, X509 **cert_out)
{
    bc_error err = {""};
    if (bc_ca_load_cert(crt, cert_out, &err) != BC_OK)
        return bc_cli_fail("%s", err.text), -1;
    if (X509_check_private_key(*cert_out, key) != 1) {
        ERR_clear_error();
        return bc_cli_fail("'%s' does not match its key; remove both files to reissue", crt), -1;
    }
    if (X509_verify(*cert_out, p->ca.key) != 1) {
        ERR_clear_error();
        return bc_cli_fail("'%s' was not issued by the CA in '%s'", crt, p->dir), -1;
    }
    return 0;
}

/* Makes (or keeps) sub/<name>.key and .crt. */
static int identity_ensure(const pki *p, const char *sub, const char *name, bc_cert_role role,
                           const char *const *extra)
{
    char crt[PATH_MAX], keypath[PATH_MAX], dir[PATH_MAX];
    if (path_join(crt, sizeof(crt), p->dir, sub, name, ".crt") != 0 ||
        path_join(keypath, sizeof(keypath), p->dir, sub, name, ".key") != 0)
        return -1;
    snprintf(dir, sizeof(dir), "%s/%s", p->dir, sub);
    if (sub[0] != '\0' && make_dirs(dir, 0755) != 0)
        return -1;

    int rc = -1;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    bc_error err = {""};
    const char *what = "kept";
    int have_crt = file_exists(crt), have_key = file_exists(keypath);
    if (have_crt && !have_key) {
        bc_cli_fail("'%s' exists but its key '%s' does not; remove the certificate to reissue", crt,
                    keypath);
        goto cleanup;
    }
    if (have_key) {
        if (bc_ca_load_key(keypath, &key, &err) != BC_OK) {
            bc_cli_fail("%s", err.text);
            goto cleanup;
        }
    } else if (bc_ca_new_key(&key, &err) != BC_OK || bc_ca_write_key(keypath, key, &err) != BC_OK) {
        bc_cli_fail("%s: %s", name, err.text);
        goto cleanup;
    }
    if (have_crt) {
        if (identity_check(p, crt, key, &cert) != 0)
            goto cleanup;
    } else {
        if (bc_ca_issue(&p->ca, key, name, role, p->days, extra, &cert, &err) != BC_OK ||
            bc_ca_write_cert(crt, cert, &err) != BC_OK) {
            bc_cli_fail("%s: %s", name, err.text);
            goto cleanup;
        }
        what = "created";
    }
    char fp[BC_CERT_FINGERPRINT_LEN + 1];
    if (bc_ca_fingerprint(cert, fp) != BC_OK) {
        bc_cli_fail("%s: cannot compute the certificate fingerprint", name);
        goto cleanup;
    }
    const char *kind = role == BC_CERT_DEVICE ? "device" : role == BC_CERT_SERVICE ? "service" : "";
    printf("%s%s%s: %s %s sha256=%s\n", kind, kind[0] ? " " : "", name, what, crt, fp);
    rc = 0;
cleanup:
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

/* A device id and a service name share the broker's username space (the
 * certificate CN): refuse a name that is already taken by the other kind. */
static int name_taken_by_other_kind(const pki *p, const char *other_sub, const char *name)
{
    char crt[PATH_MAX];
    if (path_join(crt, sizeof(crt), p->dir, other_sub, name, ".crt") != 0)
        return 1;
    if (file_exists(crt))
        return bc_cli_fail("'%s' is already a %s identity in '%s'", name,
                           strcmp(other_sub, "devices") == 0 ? "device" : "service", p->dir),
               1;
    return 0;
}

static int device_id_check(const char *id)
{
    if (!bc_device_id_valid(id))
        return bc_cli_fail("device id '%s' is not valid: expected [a-z0-9][a-z0-9_-]{0,31} "
                           "(lower case letters, digits, '-' and '_')",
                           id),
               -1;
    return 0;
}

static int service_name_check(const char *name)
{
    if (!bc_device_id_valid(name))
        return bc_cli_fail("service name '%s' is not valid: expected [a-z0-9][a-z0-9_-]{0,31}",
                           name),
               -1;
    return 0;
}

static int device_ensure(const pki *p, const char *id)
{
    if (device_id_check(id) != 0 || name_taken_by_other_kind(p, "services", id))
        return -1;
    return identity_ensure(p, "devices", id, BC_CERT_DEVICE, NULL);
}

static int service_ensure(const pki *p, const char *name)
{
    if (service_name_check(name) != 0 || name_taken_by_other_kind(p, "devices", name))
        return -1;
    return identity_ensure(p, "services", name, BC_CERT_SERVICE, NULL);
}

static int public_matches(const char *pub_path, EVP_PKEY *key)
{
    BIO *bio = BIO_new_file(pub_path, "r");
    if (bio == NULL) {
        ERR_clear_error();
        return 0;
    }
    EVP_PKEY *pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    int same = pub != NULL && EVP_PKEY_eq(pub, key) == 1;
    EVP_PKEY_free(pub);
    ERR_clear_error();
    return same;
}

static int write_key_id(const char *path, EVP_PKEY *key)
{
    char id[BC_KEY_ID_LEN + 2];
    bc_error err = {""};
    if (bc_key_id(key, id) != BC_OK)
        return bc_cli_fail("cannot compute the key id for '%s'", path), -1;
    strcat(id, "\n");
    if (bc_file_write_durable(path, id, strlen(id), 0644, &err) != BC_OK)
        return bc_cli_fail("%s", err.text), -1;
    return 0;
}

/* Makes (or keeps) keys/<name>.key, .pub and, for the recording key, .id. */
static int signing_key_ensure(const pki *p, const struct signing_key *sk)
{
    char dir[PATH_MAX], priv[PATH_MAX], pub[PATH_MAX], idpath[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/keys", p->dir);
    if (make_dirs(dir, 0700) != 0 ||
        path_join(priv, sizeof(priv), p->dir, "keys", sk->name, ".key") != 0 ||
        path_join(pub, sizeof(pub), p->dir, "keys", sk->name, ".pub") != 0 ||
        path_join(idpath, sizeof(idpath), p->dir, "keys", sk->name, ".id") != 0)
        return -1;

    int rc = -1;
    EVP_PKEY *key = NULL;
    bc_error err = {""};
    const char *what = "kept";
    if (file_exists(priv)) {
        if (bc_ca_load_key(priv, &key, &err) != BC_OK) {
            bc_cli_fail("%s", err.text);
            goto cleanup;
        }
        if (!EVP_PKEY_is_a(key, sk->type)) {
            bc_cli_fail("'%s' holds a %s key, expected %s", priv, EVP_PKEY_get0_type_name(key),
                        sk->type);
            goto cleanup;
        }
    } else if (file_exists(pub)) {
        bc_cli_fail("'%s' exists but its private key '%s' does not; refusing to replace it", pub,
                    priv);
        goto cleanup;
    } else {
        key = EVP_PKEY_Q_keygen(NULL, NULL, sk->type);
        if (key == NULL) {
            bc_cli_fail("generating the %s key failed", sk->name);
            goto cleanup;
        }
        if (bc_ca_write_key(priv, key, &err) != BC_OK) {
            bc_cli_fail("%s", err.text);
            goto cleanup;
        }
        what = "created";
    }
    if (!public_matches(pub, key) && bc_ca_write_public_key(pub, key, &err) != BC_OK) {
        bc_cli_fail("%s", err.text);
        goto cleanup;
    }
    if (sk->write_id && write_key_id(idpath, key) != 0)
        goto cleanup;
    printf("key %s: %s %s\n", sk->name, what, priv);
    rc = 0;
cleanup:
    EVP_PKEY_free(key);
    return rc;
}

static int run_init(pki *p, const options *o)
{
    name_list devices = {0}, services = {0}, broker = {0};
    const char **extra = NULL;
    int rc = -1;
    if ((o->devices != NULL && names_parse(o->devices, "devices", &devices) != 0) ||
        names_parse(o->services ? o->services : default_services, "services", &services) != 0 ||
        (o->broker_names != NULL && names_parse(o->broker_names, "broker names", &broker) != 0))
        goto cleanup;
    /* every name is checked before anything is written */
    for (size_t i = 0; i < devices.count; i++) {
        if (device_id_check(devices.items[i]) != 0)
            goto cleanup;
        if (names_contains(&services, devices.items[i])) {
            bc_cli_fail("'%s' is both a device and a service name", devices.items[i]);
            goto cleanup;
        }
    }
    for (size_t i = 0; i < services.count; i++) {
        if (service_name_check(services.items[i]) != 0)
            goto cleanup;
    }
    extra = calloc(broker.count + 1, sizeof(*extra));
    if (extra == NULL) {
        bc_cli_fail("out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < broker.count; i++)
        extra[i] = broker.items[i];

    if (make_dirs(p->dir, 0755) != 0 || pki_open(p, 1) != 0 ||
        identity_ensure(p, "", "broker", BC_CERT_BROKER, extra) != 0)
        goto cleanup;
    for (size_t i = 0; i < devices.count; i++) {
        if (device_ensure(p, devices.items[i]) != 0)
            goto cleanup;
    }
    for (size_t i = 0; i < services.count; i++) {
        if (service_ensure(p, services.items[i]) != 0)
            goto cleanup;
    }
    for (size_t i = 0; i < sizeof(signing_keys) / sizeof(signing_keys[0]); i++) {
        if (signing_key_ensure(p, &signing_keys[i]) != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    free(extra);
    names_free(&devices);
    names_free(&services);
    names_free(&broker);
    return rc;
}

/* The CA of DIR signs camera id's CSR into out (identity rotation). */
static int sign_csr(const pki *p, const char *id, const char *csr_path, const char *out)
{
    char *pem = NULL;
    size_t len = 0;
    X509 *cert = NULL;
    bc_error err = {""};
    char fp[BC_CERT_FINGERPRINT_LEN + 1];
    int rc = -1;
    if (bc_file_read_all(csr_path, CSR_FILE_MAX, &pem, &len, &err) != BC_OK) {
        bc_cli_fail("%s", err.text);
        goto cleanup;
    }
    if (bc_ca_sign_csr(&p->ca, pem, len, id, BC_CERT_DEVICE, p->days, &cert, &err) != BC_OK ||
        bc_ca_write_cert(out, cert, &err) != BC_OK) {
        bc_cli_fail("%s: %s", csr_path, err.text);
        goto cleanup;
    }
    if (bc_ca_fingerprint(cert, fp) != BC_OK) {
        bc_cli_fail("%s: cannot compute the certificate fingerprint", out);
        goto cleanup;
    }
    printf("device %s: signed %s sha256=%s\n", id, out, fp);
    rc = 0;
cleanup:
    X509_free(cert);
    free(pem);
    return rc;
}

static int run_command(const options *o)
{
    pki p = {.dir = o->dir, .days = o->days};
    int rc = -1;
    if (strcmp(o->command, "init") == 0) {
        rc = run_init(&p, o);
    } else if (strcmp(o->command, "ca") == 0) {
        rc = make_dirs(p.dir, 0755) == 0 ? pki_open(&p, 1) : -1;
    } else if (strcmp(o->command, "sign-csr") == 0) {
        if (device_id_check(o->name) == 0 && pki_open(&p, 0) == 0)
            rc = sign_csr(&p, o->name, o->csr, o->out);
    } else if (strcmp(o->command, "device") == 0) {
        /* the id is checked before the CA is even looked for */
        if (device_id_check(o->name) == 0 && pki_open(&p, 0) == 0)
            rc = device_ensure(&p, o->name);
    } else {
        if (service_name_check(o->name) == 0 && pki_open(&p, 0) == 0)
            rc = service_ensure(&p, o->name);
    }
    bc_ca_free(&p.ca);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Options may come anywhere (GNU getopt permutes); the positionals are
 * COMMAND DIR [NAME]. Returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, options *o)
{
    enum { OPT_DEVICES = 256, OPT_SERVICES, OPT_DAYS, OPT_BROKER_NAMES };
    static const struct option long_opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"devices", required_argument, NULL, OPT_DEVICES},
        {"services", required_argument, NULL, OPT_SERVICES},
        {"broker-names", required_argument, NULL, OPT_BROKER_NAMES},
        {"days", required_argument, NULL, OPT_DAYS},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->days = DEFAULT_DAYS;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        case OPT_DEVICES:
            o->devices = optarg;
            break;
        case OPT_SERVICES:
            o->services = optarg;
            break;
        case OPT_BROKER_NAMES:
            o->broker_names = optarg;
            break;
        case OPT_DAYS: {
            long days = 0;
            if (bc_cli_parse_long(optarg, 1, BC_CA_DAYS_MAX, &days) != BC_OK)
                return bc_cli_usage_error("--days wants a whole number of days in 1..%d, got '%s'",
                                          BC_CA_DAYS_MAX, optarg);
            o->days = (int)days;
            break;
        }
        default:
            return bc_cli_option_error(c, argv);
        }
    }
    return -1;
}

static int check_args(options *o, int npos, char **pos)
{
    if (npos == 0)
        return bc_cli_usage_error("no command given");
    o->command = pos[0];
    int is_init = strcmp(o->command, "init") == 0, is_ca = strcmp(o->command, "ca") == 0;
    int is_one = strcmp(o->command, "device") == 0 || strcmp(o->command, "service") == 0;
    int is_sign = strcmp(o->command, "sign-csr") == 0;
    if (!is_init && !is_ca && !is_one && !is_sign)
        return bc_cli_usage_error("unknown command '%s'", o->command);
    int want = is_sign ? 4 : is_one ? 2 : 1;
    if (npos - 1 != want)
        return bc_cli_usage_error("'%s' takes %s", o->command,
                                  is_sign  ? "DIR, ID, CSR.pem and OUT.crt"
                                  : is_one ? "DIR and a name"
                                           : "one DIR");
    if (!is_init && (o->devices || o->services || o->broker_names))
        return bc_cli_usage_error("--devices, --services and --broker-names go with 'init' only");
    o->dir = pos[1];
    o->name = is_one || is_sign ? pos[2] : NULL;
    o->csr = is_sign ? pos[3] : NULL;
    o->out = is_sign ? pos[4] : NULL;
    if (o->dir[0] == '\0')
        return bc_cli_usage_error("DIR is empty");
    return -1;
}

int main(int argc, char **argv)
{
    options o;
    bc_cli_init(PROGRAM, "\nTry '" PROGRAM " --help'.");
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    rc = check_args(&o, argc - optind, argv + optind);
    if (rc >= 0)
        return rc;
    umask(022);
    return run_command(&o);
}
