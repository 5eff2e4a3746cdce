/*
 * ctl.c - bodycamctl's run context: configuration, what a leaf needs
 * opened, the actor, errors, exit codes, JSON output and times.
 *
 * Configuration: the file named by --config, else $BODYCAM_CTL_CONFIG,
 * else /etc/bodycam/bodycamctl.conf. A file named explicitly (flag or
 * environment) must exist; the default one may be absent (then every
 * option has its default, and a leaf that needs a directory that has no
 * default says which option to set). Directories are never created here:
 * an operator's typo in audit_dir must not start a second, empty audit
 * log beside the vault's.
 */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/config.h"

/* ---- leaf arguments ---- */

const char *ctl_arg(const ctl_args *a, const char *name)
{
    const char *value = NULL;
    for (size_t i = 0; i < a->nset; i++) {
        if (strcmp(a->set[i].name, name) == 0)
            value = a->set[i].value;
    }
    return value;
}

bool ctl_flag(const ctl_args *a, const char *name)
{
    return ctl_arg(a, name) != NULL;
}

size_t ctl_arg_all(const ctl_args *a, const char *name, const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < a->nset; i++) {
        if (strcmp(a->set[i].name, name) == 0) {
            if (n < cap)
                out[n] = a->set[i].value;
            n++;
        }
    }
    return n;
}

/* ---- errors and output ---- */

int ctl_exit_code(bc_status status)
{
    switch (status) {
    case BC_OK:
        return CTL_EXIT_OK;
    case BC_ERR_INVAL:
    case BC_ERR_MISSING:
    case BC_ERR_TYPE:
        return CTL_EXIT_USAGE;
    case BC_ERR_DENIED:
    case BC_ERR_STATE:
        return CTL_EXIT_REFUSED;
    case BC_ERR_NOT_FOUND:
        return CTL_EXIT_NOT_FOUND;
    case BC_ERR_TAMPERED:
    case BC_ERR_TRUNCATED:
    case BC_ERR_SIGNATURE:
        return CTL_EXIT_TAMPERED;
    default:
        return CTL_EXIT_FAILURE;
    }
}

static int report(ctl *c, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static int report(ctl *c, int code, const char *fmt, va_list ap)
{
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    fprintf(stderr, CTL_PROGRAM ": %s\n", c->error);
    c->exit_code = code;
    return code;
}

int ctl_fail(ctl *c, bc_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int code = report(c, ctl_exit_code(status), fmt, ap);
    va_end(ap);
    return code;
}

int ctl_usage(ctl *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->error, sizeof(c->error), "%s%s%s", c->what, c->what[0] ? ": " : "", msg);
    fprintf(stderr, CTL_PROGRAM ": %s\nTry '" CTL_PROGRAM " help%s%s'.\n", c->error,
            c->what[0] ? " " : "", c->what);
    c->exit_code = CTL_EXIT_USAGE;
    return CTL_EXIT_USAGE;
}

int ctl_print_json(ctl *c, cJSON *doc)
{
    char *text = doc != NULL ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    if (text == NULL)
        return ctl_fail(c, BC_ERR_NOMEM, "output: out of memory");
    int ok = printf("%s\n", text) >= 0 && fflush(stdout) == 0;
    cJSON_free(text);
    c->json_done = true;
    if (!ok)
        return ctl_fail(c, BC_ERR_IO, "output: %s", strerror(errno));
    return CTL_EXIT_OK;
}

void ctl_print_json_error(const ctl *c)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(doc, "error");
    if (e == NULL) {
        cJSON_Delete(doc);
        return;
    }
    cJSON_AddNumberToObject(e, "exit", c->exit_code);
    cJSON_AddStringToObject(e, "message", c->error);
    char *text = cJSON_Print(doc);
    if (text != NULL)
        printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(doc);
}

/* ---- configuration ---- */

#define STR(f) c->cfg.f, sizeof(c->cfg.f)
#define INT(f) &c->cfg.f, 0

/* The option table over c's fields; count in *count. */
static size_t config_table(ctl *c, bc_config_option *table, size_t cap)
{
    const bc_config_option options[] = {
        {"redis_host", BC_CFG_STRING, 0, 0, "127.0.0.1", STR(redis_host), NULL,
         "Redis of the fleet (catalog, holds, requests, device registry)"},
        {"redis_port", BC_CFG_INT, 1, 65535, "6379", INT(redis_port), NULL, "Redis port"},
        {"redis_timeout_ms", BC_CFG_INT, 10, 600000, "5000", INT(redis_timeout_ms), "ms",
         "connect and command timeout"},
        {"vault_dir", BC_CFG_STRING, 0, 0, "", STR(vault_dir), NULL,
         "the vault's directory (the store: objects/ under it); export needs it"},
        {"audit_dir", BC_CFG_STRING, 0, 0, "", STR(audit_dir), NULL,
         "the vault's audit log; \"\" = <vault_dir>/audit"},
        {"recording_key_dir", BC_CFG_STRING, 0, 0, "", STR(recording_key_dir), NULL,
         "the vault's recording private keys; export needs them"},
        {"master_key_file", BC_CFG_STRING, 0, 0, "", STR(master_key_file), NULL,
         "the vault's master key file (the recording keys are encrypted under it); export "
         "needs it"},
        {"operator", BC_CFG_STRING, 0, CTL_NAME_MAX, "", STR(operator_name), NULL,
         "the default actor (--as overrides it; else $USER)"},
        {"firmware_key_file", BC_CFG_STRING, 0, 0, "", STR(firmware_key_file), NULL,
         "the firmware signing key (Ed25519 private key, PEM); firmware publish and abort "
         "--rollback need it"},
        {"firmware_pubkey_file", BC_CFG_STRING, 0, 0, "", STR(firmware_pubkey_file), NULL,
         "the firmware public key the cameras pin (PEM): manifests are checked against it; "
         "firmware publish --manifest needs it"},
    };
    size_t count = sizeof(options) / sizeof(options[0]);
    if (count > cap)
        count = cap;
    memcpy(table, options, count * sizeof(options[0]));
    return count;
}

#define CONFIG_OPTIONS_MAX 16

void ctl_print_config_reference(FILE *out)
{
    static ctl scratch;
    bc_config_option table[CONFIG_OPTIONS_MAX];
    size_t count = config_table(&scratch, table, CONFIG_OPTIONS_MAX);
    bc_config_print_reference(table, count, out);
}

static int load_config(ctl *c)
{
    bc_config_option table[CONFIG_OPTIONS_MAX];
    size_t count = config_table(c, table, CONFIG_OPTIONS_MAX);
    bc_error err = {{0}};
    if (bc_config_defaults(table, count, &err) != BC_OK)
        return ctl_fail(c, BC_ERR_INVAL, "configuration: %s", err.text);
    const char *path = c->config_path;
    bool explicit_path = true;
    if (path == NULL)
        path = getenv(CTL_CONFIG_ENV);
    if (path == NULL || path[0] == '\0') {
        path = CTL_DEFAULT_CONFIG;
        explicit_path = false;
    }
    if (!explicit_path && access(path, F_OK) != 0 && errno == ENOENT)
        return CTL_EXIT_OK; /* the defaults */
    if (bc_config_load_file(table, count, path, &err) != BC_OK)
        return ctl_fail(c, BC_ERR_INVAL, "configuration: %s", err.text);
    snprintf(c->config_used, sizeof(c->config_used), "%s", path);
    return CTL_EXIT_OK;
}

/* "what to set" for a missing option, naming the file read. */
static int missing_option(ctl *c, const char *option, const char *why)
{
    return ctl_fail(c, BC_ERR_INVAL, "configuration: %s is not set in %s (%s)", option,
                    c->config_used[0] ? c->config_used : "the defaults; no config file", why);
}

/* Operator names: [A-Za-z0-9_.@-]{1,64}, so the actor cannot be mistaken
 * for another kind ("vault", "device:...") and needs no quoting. */
static bool operator_name_valid(const char *name)
{
    size_t n = 0;
    for (; name[n] != '\0'; n++) {
        char ch = name[n];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '@' || ch == '-';
        if (!ok || n >= CTL_NAME_MAX)
            return false;
    }
    return n > 0;
}

static int resolve_actor(ctl *c)
{
    const char *name = c->as;
    const char *from = "--as";
    if (name == NULL && c->cfg.operator_name[0] != '\0') {
        name = c->cfg.operator_name;
        from = "the configuration's operator";
    }
    if (name == NULL) {
        name = getenv("USER");
        from = "$USER";
    }
    if (name == NULL || name[0] == '\0')
        return ctl_fail(c, BC_ERR_INVAL,
                        "actor: no operator name (give --as NAME or set operator in the "
                        "configuration)");
    if (!operator_name_valid(name))
        return ctl_fail(c, BC_ERR_INVAL,
                        "actor: %s '%.64s' is not an operator name "
                        "([A-Za-z0-9_.@-]{1,64})",
                        from, name);
    snprintf(c->actor, sizeof(c->actor), CTL_ACTOR_PREFIX "%s", name);
    return CTL_EXIT_OK;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int open_redis(ctl *c)
{
    bc_redis_config rc = {.port = (int)c->cfg.redis_port,
                          .timeout_ms = c->cfg.redis_timeout_ms,
                          .backoff_min_ms = 1,
                          .backoff_max_ms = 1};
    bc_error err = {{0}};
    snprintf(rc.host, sizeof(rc.host), "%s", c->cfg.redis_host);
    if (bc_redis_init(&c->redis, &rc, &err) != BC_OK)
        return ctl_fail(c, BC_ERR_INVAL, "configuration: %s", err.text);
    c->redis_open = true;
    if (bc_redis_connect_now(&c->redis, &err) != BC_OK)
        return ctl_fail(c, BC_ERR_UNAVAILABLE, "%s", err.text); /* names host:port */
    return CTL_EXIT_OK;
}

static int open_audit_dir(ctl *c, bool append)
{
    if (c->cfg.audit_dir[0] != '\0')
        snprintf(c->audit_dir, sizeof(c->audit_dir), "%s", c->cfg.audit_dir);
    else if (c->cfg.vault_dir[0] != '\0')
        snprintf(c->audit_dir, sizeof(c->audit_dir), "%s/audit", c->cfg.vault_dir);
    else
        return missing_option(c, "audit_dir", "nor vault_dir");
    if (!is_dir(c->audit_dir))
        return ctl_fail(c, BC_ERR_INVAL, "audit log %s: no such directory (check audit_dir)",
                        c->audit_dir);
    if (!append)
        return CTL_EXIT_OK;
    bc_error err = {{0}};
    bc_status rc = bc_audit_open(c->audit_dir, &c->audit, &err);
    if (rc == BC_ERR_TAMPERED)
        return ctl_fail(c, rc, "audit log %s: %s (see '" CTL_PROGRAM " audit verify')",
                        c->audit_dir, err.text);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "audit log %s: %s", c->audit_dir, err.text);
    return CTL_EXIT_OK;
}

static int open_store(ctl *c)
{
    char objects[CTL_PATH_MAX + 16];
    bc_error err = {{0}};
    if (c->cfg.vault_dir[0] == '\0')
        return missing_option(c, "vault_dir", "the store");
    snprintf(objects, sizeof(objects), "%s/objects", c->cfg.vault_dir);
    if (!is_dir(objects))
        return ctl_fail(c, BC_ERR_INVAL, "store %s: no objects/ directory (check vault_dir)",
                        c->cfg.vault_dir);
    bc_status rc = bc_store_open(c->cfg.vault_dir, &c->store, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "store %s: %s", c->cfg.vault_dir, err.text);
    return CTL_EXIT_OK;
}

static int open_keys(ctl *c)
{
    bc_error err = {{0}};
    if (c->cfg.recording_key_dir[0] == '\0')
        return missing_option(c, "recording_key_dir", "the keys to decrypt with");
    if (c->cfg.master_key_file[0] == '\0')
        return missing_option(c, "master_key_file", "the recording keys are encrypted under it");
    bc_status rc = bc_keystore_open(c->cfg.recording_key_dir, c->cfg.master_key_file, NULL, NULL,
                                    &c->keys, &err);
    if (rc == BC_ERR_NOT_FOUND)
        return ctl_fail(c, BC_ERR_INVAL, "keystore %s: %s", c->cfg.recording_key_dir, err.text);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "keystore %s: %s", c->cfg.recording_key_dir, err.text);
    return CTL_EXIT_OK;
}

/* CTL_WANT_AUDIT: the audit log when audit_dir (or vault_dir) names an
 * existing directory. None configured, or no such directory (said on
 * stderr), runs the leaf unaudited; a log that exists but cannot be
 * appended to stops it, as for CTL_NEED_AUDIT. */
static int open_audit_if_configured(ctl *c)
{
    if (c->cfg.audit_dir[0] == '\0' && c->cfg.vault_dir[0] == '\0')
        return CTL_EXIT_OK;
    char dir[CTL_PATH_MAX];
    if (c->cfg.audit_dir[0] != '\0')
        snprintf(dir, sizeof(dir), "%s", c->cfg.audit_dir);
    else
        snprintf(dir, sizeof(dir), "%s/audit", c->cfg.vault_dir);
    if (!is_dir(dir)) {
        fprintf(stderr, CTL_PROGRAM ": warning: audit log %s: no such directory; not audited\n",
                dir);
        return CTL_EXIT_OK;
    }
    return open_audit_dir(c, true);
}

int ctl_open(ctl *c, unsigned needs)
{
    int code = load_config(c);
    if (code == CTL_EXIT_OK && (needs & (CTL_NEED_AUDIT | CTL_NEED_ACTOR | CTL_WANT_AUDIT)))
        code = resolve_actor(c);
    if (code == CTL_EXIT_OK && (needs & (CTL_NEED_AUDIT_DIR | CTL_NEED_AUDIT)))
        code = open_audit_dir(c, (needs & CTL_NEED_AUDIT) != 0);
    else if (code == CTL_EXIT_OK && (needs & CTL_WANT_AUDIT))
        code = open_audit_if_configured(c);
    if (code == CTL_EXIT_OK && (needs & CTL_NEED_STORE))
        code = open_store(c);
    if (code == CTL_EXIT_OK && (needs & CTL_NEED_KEYS))
        code = open_keys(c);
    if (code == CTL_EXIT_OK && (needs & CTL_NEED_REDIS))
        code = open_redis(c);
    return code;
}

void ctl_close(ctl *c)
{
    if (c->redis_open)
        bc_redis_close(&c->redis);
    c->redis_open = false;
    bc_audit_close(c->audit);
    c->audit = NULL;
    bc_store_close(c->store);
    c->store = NULL;
    bc_keystore_close(c->keys);
    c->keys = NULL;
}

/* ---- audit ---- */

int ctl_audit1(ctl *c, const char *action, const char *subject, const cJSON *details,
               int64_t now_ms, uint64_t *seq)
{
    bc_error err = {{0}};
    bc_status rc =
        bc_audit_append1(c->audit, c->actor, action, subject, details, now_ms, seq, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "audit log %s: %s (%s %s is done but not audited)", c->audit_dir,
                        err.text, action, subject);
    return CTL_EXIT_OK;
}

int ctl_audit(ctl *c, cJSON *const *entries, size_t count, int64_t now_ms, uint64_t *first_seq)
{
    bc_error err = {{0}};
    if (count == 0)
        return CTL_EXIT_OK;
    for (size_t i = 0; i < count; i++) {
        if (cJSON_GetObjectItemCaseSensitive(entries[i], "actor") == NULL &&
            cJSON_AddStringToObject(entries[i], "actor", c->actor) == NULL)
            return ctl_fail(c, BC_ERR_NOMEM, "audit: out of memory");
    }
    bc_status rc = bc_audit_append(c->audit, entries, count, now_ms, first_seq, &err);
    if (rc != BC_OK)
        return ctl_fail(c, rc, "audit log %s: %s (the change is done but not audited)",
                        c->audit_dir, err.text);
    return CTL_EXIT_OK;
}

/* ---- times ---- */

/* Exactly n decimal digits at *s (moved past them). */
static bool digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*s)[i];
        if (ch < '0' || ch > '9')
            return false;
        v = v * 10 + (ch - '0');
    }
    *s += n;
    *out = v;
    return true;
}

static bool expect(const char **s, char ch)
{
    if (**s != ch)
        return false;
    (*s)++;
    return true;
}

bc_status ctl_parse_time(const char *text, int64_t *ms)
{
    long v = 0;
    if (text == NULL || text[0] == '\0')
        return BC_ERR_INVAL;
    if (strchr(text, '-') == NULL) {
        if (bc_cli_parse_long(text, 0, INT64_MAX / 2, &v) != BC_OK)
            return BC_ERR_INVAL;
        *ms = v;
        return BC_OK;
    }
    struct tm tm = {0};
    int year = 0, mon = 0, day = 0, hh = 0, mm = 0, ss = 0, frac = 0;
    const char *s = text;
    if (!digits(&s, 4, &year) || !expect(&s, '-') || !digits(&s, 2, &mon) || !expect(&s, '-') ||
        !digits(&s, 2, &day))
        return BC_ERR_INVAL;
    if (*s == 'T') {
        s++;
        if (!digits(&s, 2, &hh) || !expect(&s, ':') || !digits(&s, 2, &mm) || !expect(&s, ':') ||
            !digits(&s, 2, &ss))
            return BC_ERR_INVAL;
        if (*s == '.' && !(s++, digits(&s, 3, &frac)))
            return BC_ERR_INVAL;
        if (!expect(&s, 'Z'))
            return BC_ERR_INVAL;
    }
    if (*s != '\0' || year < 1970 || mon < 1 || mon > 12 || day < 1 || hh > 23 || mm > 59 ||
        ss > 59)
        return BC_ERR_INVAL;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != day) /* 2026-02-30 normalises to March */
        return BC_ERR_INVAL;
    *ms = (int64_t)t * 1000 + frac;
    return BC_OK;
}

void ctl_format_time(int64_t ms, char *out, size_t size)
{
    if (ms <= 0) {
        snprintf(out, size, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, size, "%" PRId64, ms);
        return;
    }
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    if (ms % 1000 != 0)
        snprintf(out, size, "%s.%03dZ", base, (int)(ms % 1000));
    else
        snprintf(out, size, "%sZ", base);
}

void ctl_format_duration(int64_t ms, char *out, size_t size)
{
    int64_t s = ms / 1000;
    if (s >= 3600)
        snprintf(out, size, "%" PRId64 "h%02dm%02ds", s / 3600, (int)(s % 3600 / 60),
                 (int)(s % 60));
    else if (s >= 60)
        snprintf(out, size, "%dm%02ds", (int)(s / 60), (int)(s % 60));
    else
        snprintf(out, size, "%.1fs", (double)ms / 1000.0);
}
