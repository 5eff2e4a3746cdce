/*
 * cmd_firmware.c - bodycamctl firmware: signed firmware images and staged
 * rollouts (services/firmware-rollout/README.md; the library bc_fwrollout).
 *
 *   publish   IMAGE ──► manifest (SHA-256, size, chunks) signed with
 *             firmware_key_file, or a manifest signed offline checked with
 *             firmware_pubkey_file ──► bc_image_publish (chunks, then record)
 *   start     one script creates the rollout (waves fixed at creation);
 *             bodycam-firmware-rollout does the rest
 *   status, list, show     read the rollout hash and its cameras
 *   pause, resume, approve, abort [--rollback]
 *             one script each; abort --rollback signs here, with the
 *             firmware key, a rollback manifest of every version the
 *             cameras that took the new one came from
 *
 * The firmware private key never leaves this tool (the service holds only
 * the command key). A manifest is checked against firmware_pubkey_file,
 * when set, before anything is stored: a wrong signing key would make the
 * cameras refuse the image, so it is refused here first.
 *
 * JSON: a rollout is its Redis hash as an object (numbers as numbers,
 * waves and rollback_manifests as JSON); waves are 0-based there, and
 * 1-based in the text for people.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/cli.h"
#include "common/clock.h"
#include "ctl.h"
#include "firmware-rollout/images.h"
#include "firmware-rollout/rollout.h"
#include "proto/encoding.h"
#include "proto/firmware.h"
#include "proto/topic.h"

#define CHUNK_DEFAULT BC_FIRMWARE_CHUNK_MAX
#define CAMERAS_MAX (CTL_VALUES_MAX - 12)
#define BAR_WIDTH 20
#define DAY_S (24 * 3600)

/* ---- keys and files ---- */

static int config_missing(ctl *c, const char *option, const char *why)
{
    return ctl_fail(c, BC_ERR_INVAL, "configuration: %s is not set in %s (%s)", option,
                    c->config_used[0] ? c->config_used : "the defaults; no config file", why);
}

/* The firmware private key (firmware_key_file). *key the caller's. */
static int load_signing_key(ctl *c, EVP_PKEY **key)
{
    bc_error err = {{0}};
    if (c->cfg.firmware_key_file[0] == '\0')
        return config_missing(c, "firmware_key_file", "the firmware signing key");
    if (bc_key_load_private(c->cfg.firmware_key_file, EVP_PKEY_ED25519, key, &err) != BC_OK)
        return ctl_fail(c, BC_ERR_INVAL, "firmware_key_file %s: %s", c->cfg.firmware_key_file,
                        err.text);
    return CTL_EXIT_OK;
}

/* The firmware public key, or *key NULL when firmware_pubkey_file is not
 * set and not required. */
static int load_public_key(ctl *c, bool required, EVP_PKEY **key)
{
    bc_error err = {{0}};
    *key = NULL;
    if (c->cfg.firmware_pubkey_file[0] == '\0')
        return required ? config_missing(c, "firmware_pubkey_file", "the key to check with")
                        : CTL_EXIT_OK;
    if (bc_key_load_public(c->cfg.firmware_pubkey_file, EVP_PKEY_ED25519, key, &err) != BC_OK)
        return ctl_fail(c, BC_ERR_INVAL, "firmware_pubkey_file %s: %s", c->cfg.firmware_pubkey_file,
                        err.text);
    return CTL_EXIT_OK;
}

/* Reads a whole regular file of 1..max bytes into *data (the caller's,
 * free()). */
static int read_whole(ctl *c, const char *path, int64_t max, uint8_t **data, size_t *len)
{
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ctl_fail(c, BC_ERR_INVAL, "%s: %s", path, strerror(errno));
    struct stat st;
    int code = CTL_EXIT_OK;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        code = ctl_fail(c, BC_ERR_INVAL, "%s: not a regular file", path);
    else if (st.st_size <= 0 || st.st_size > max)
        code = ctl_fail(c, BC_ERR_INVAL, "%s: %lld bytes, not 1..%lld", path, (long long)st.st_size,
                        (long long)max);
    else if ((*data = malloc((size_t)st.st_size + 1)) == NULL)
        code = ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", path);
    else if (fread(*data, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        code = ctl_fail(c, BC_ERR_IO, "%s: short read", path);
    fclose(f);
    if (code != CTL_EXIT_OK) {
        free(*data);
        *data = NULL;
        return code;
    }
    (*data)[st.st_size] = '\0'; /* a manifest is parsed as text */
    *len = (size_t)st.st_size;
    return CTL_EXIT_OK;
}

/* ---- rendering ---- */

static void add_time(cJSON *o, const char *name, int64_t ms)
{
    if (ms > 0)
        cJSON_AddNumberToObject(o, name, (double)ms);
    else
        cJSON_AddNullToObject(o, name);
}

/* Fields of the rollout hash that are text even when they look like a
 * number (a version "2"); the order fields are printed in is
 * bc_rollout_hash_field's. */
static const char *const text_fields[] = {"id",         "version", "state",
                                          "created_by", "target",  "reason"};
static const char *const json_fields[] = {"waves", "rollback_manifests"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(name, list[i]) == 0)
            return true;
    }
    return false;
}

static size_t rank_of(const char *name)
{
    size_t i = 0;
    for (const char *f; (f = bc_rollout_hash_field(i)) != NULL; i++) {
        if (strcmp(name, f) == 0)
            return i;
    }
    return i;
}

/* Sorts pointers to the name elements of an HGETALL reply (each followed
 * by its value). */
static int field_cmp(const void *pa, const void *pb)
{
    const redisReply *a = (*(redisReply * *const *)pa)[0];
    const redisReply *b = (*(redisReply * *const *)pb)[0];
    size_t ra = rank_of(a->str), rb = rank_of(b->str);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    return strcmp(a->str, b->str); /* w0_..., w1_...: the per-wave counters */
}

static bool all_digits(const char *s)
{
    size_t i = s[0] == '-' ? 1 : 0;
    if (s[i] == '\0' || strlen(s) > 18)
        return false;
    for (; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

static cJSON *field_value(const char *name, const char *text)
{
    if (in_list(name, json_fields, COUNT(json_fields))) {
        cJSON *j = cJSON_Parse(text);
        return j != NULL ? j : cJSON_CreateString(text);
    }
    if (!in_list(name, text_fields, COUNT(text_fields)) && all_digits(text))
        return cJSON_CreateNumber((double)strtoll(text, NULL, 10));
    return cJSON_CreateString(text);
}

/* The rollout hash bodycam:rollout:<id> into o (fields in a stable order).
 * BC_ERR_NOT_FOUND when there is none. */
static bc_status hash_into(ctl *c, const char *id, cJSON *o, bc_error *err)
{
    char key[64];
    snprintf(key, sizeof(key), "bodycam:rollout:%s", id);
    const char *argv[] = {"HGETALL", key};
    redisReply *rep = NULL;
    bc_status st = bc_redis_command(&c->redis, 2, argv, NULL, &rep, err);
    if (st != BC_OK)
        return st;
    size_t n = rep->type == REDIS_REPLY_ARRAY ? rep->elements / 2 : 0;
    redisReply ***pairs = n > 0 ? calloc(n, sizeof(*pairs)) : NULL;
    if (n == 0)
        st = bc_fail(err, BC_ERR_NOT_FOUND, "no rollout %s", id);
    else if (pairs == NULL)
        st = bc_fail(err, BC_ERR_NOMEM, "out of memory for rollout %s", id);
    for (size_t i = 0; st == BC_OK && i < n; i++) {
        if (rep->element[2 * i]->type != REDIS_REPLY_STRING ||
            rep->element[2 * i + 1]->type != REDIS_REPLY_STRING)
            st = bc_fail(err, BC_ERR_PARSE, "rollout %s: a field is not text", id);
        pairs[i] = &rep->element[2 * i];
    }
    if (st == BC_OK)
        qsort(pairs, n, sizeof(*pairs), field_cmp);
    for (size_t i = 0; st == BC_OK && i < n; i++) {
        const char *name = pairs[i][0]->str;
        cJSON *v = field_value(name, pairs[i][1]->str);
        if (v == NULL || !cJSON_AddItemToObject(o, name, v)) {
            cJSON_Delete(v);
            st = bc_fail(err, BC_ERR_NOMEM, "out of memory for rollout %s", id);
        }
    }
    free(pairs);
    freeReplyObject(rep);
    return st;
}

/* {"rollout": id, ...the hash}; NULL after reporting the failure. */
static cJSON *rollout_doc(ctl *c, const char *id, bool with_id, int *code)
{
    bc_error err = {{0}};
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || (with_id && cJSON_AddStringToObject(o, "rollout", id) == NULL)) {
        cJSON_Delete(o);
        *code = ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
        return NULL;
    }
    bc_status st = hash_into(c, id, o, &err);
    if (st != BC_OK) {
        cJSON_Delete(o);
        *code = ctl_fail(c, st, "%s: %s", c->what, err.text);
        return NULL;
    }
    *code = CTL_EXIT_OK;
    return o;
}

static void draw_bar(int64_t done, int64_t total)
{
    int percent = total > 0 ? (int)(done * 100 / total) : 0;
    char bar[BAR_WIDTH + 1];
    int filled = percent * BAR_WIDTH / 100;
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    printf("  [%s] %3d%%", bar, percent);
}

static void print_counts_row(const char *label, int64_t total, const int64_t *n, bool rollback,
                             bool bar)
{
    printf("  %-5s %6" PRId64 " %8" PRId64 " %11" PRId64 " %10" PRId64 " %8" PRId64 " %7" PRId64
           " %12" PRId64,
           label, total, n[BC_FW_PENDING], n[BC_FW_OFFERED] + n[BC_FW_DOWNLOADING],
           n[BC_FW_INSTALLED], n[BC_FW_UPDATED], n[BC_FW_FAILED], n[BC_FW_ROLLED_BACK]);
    if (rollback)
        printf(" %10" PRId64 " %9" PRId64, n[BC_FW_REVERTING], n[BC_FW_REVERTED]);
    if (bar)
        draw_bar(n[BC_FW_UPDATED] + n[BC_FW_REVERTED], total);
    printf("\n");
}

static void print_rollout_line(const bc_rollout *r)
{
    char created[40];
    ctl_format_time(r->created_at, created, sizeof(created));
    printf("%-6s %-12s %-17s wave %" PRId64 "/%" PRId64 "  updated %" PRId64 "/%" PRId64
           ", failed %" PRId64 ", rolled back %" PRId64 "  created %s by %s\n",
           r->id, r->version, bc_rollout_state_name(r->state), r->current_wave + 1, r->wave_count,
           r->count[BC_FW_UPDATED], r->total, r->count[BC_FW_FAILED], r->count[BC_FW_ROLLED_BACK],
           created, r->created_by);
}

/* The text status: the record, then one row per wave (a progress bar of
 * updated cameras when stdout is a terminal). */
static void print_rollout(const bc_rollout *r)
{
    char when[40], wait[32];
    ctl_format_time(r->created_at, when, sizeof(when));
    printf("rollout %s: version %s, %s (created %s by %s)\n", r->id, r->version,
           bc_rollout_state_name(r->state), when, r->created_by);
    if (r->reason[0] != '\0')
        printf("  reason: %s\n", r->reason);
    ctl_format_time(r->wave_started_at, when, sizeof(when));
    printf("  target %s: %" PRId64 " camera%s in %" PRId64 " wave%s; wave %" PRId64 " started %s",
           r->target_all ? "all" : "list", r->total, r->total == 1 ? "" : "s", r->wave_count,
           r->wave_count == 1 ? "" : "s", r->current_wave + 1, when);
    if (r->next_wave_at > 0) {
        ctl_format_time(r->next_wave_at, when, sizeof(when));
        printf("; next wave at %s", when);
    }
    if (r->finished_at > 0) {
        ctl_format_time(r->finished_at, when, sizeof(when));
        printf("; finished %s", when);
    }
    ctl_format_duration(r->wait_s * 1000, wait, sizeof(wait));
    printf("\n  wait %s, success %" PRId64 "%%, max failure %" PRId64 "%%, camera timeout %" PRId64
           "s, min battery %" PRId64 "%%%s\n",
           wait, r->success_pct, r->max_failure_pct, r->camera_timeout_s, r->min_battery_pct,
           r->approve ? ", approval after each wave" : "");
    bool bar = isatty(STDOUT_FILENO) != 0;
    printf("  %-5s %6s %8s %11s %10s %8s %7s %12s%s\n", "wave", "total", "pending", "offered+dl",
           "installed", "updated", "failed", "rolled_back",
           r->rollback ? "  reverting  reverted" : "");
    for (int64_t w = 0; w < r->wave_count && w < BC_ROLLOUT_WAVES_MAX; w++) {
        char label[16];
        snprintf(label, sizeof(label), "%" PRId64 "%s", w + 1, w <= r->current_wave ? "" : "-");
        print_counts_row(label, r->waves[w].total, r->waves[w].count, r->rollback, bar);
    }
    print_counts_row("all", r->total, r->count, r->rollback, bar);
    if (r->current_wave + 1 < r->wave_count)
        printf("  (waves marked - have not started)\n");
}

/* ---- firmware publish ---- */

typedef struct publish_opts {
    const char *image;
    const char *version; /* NULL: the manifest's */
    const char *min_version;
    long chunk_size;
    const char *manifest; /* a signed manifest file, or NULL */
} publish_opts;

static int publish_parse(ctl *c, const ctl_args *a, publish_opts *o)
{
    o->image = a->pos[0];
    o->version = ctl_arg(a, "version");
    o->min_version = ctl_arg(a, "min-version");
    o->manifest = ctl_arg(a, "manifest");
    o->chunk_size = CHUNK_DEFAULT;
    const char *chunk = ctl_arg(a, "chunk-size");
    if (o->manifest == NULL && o->version == NULL)
        return ctl_usage(c, "--version is required (or --manifest SIGNED.json)");
    if (o->manifest != NULL && (o->min_version != NULL || chunk != NULL))
        return ctl_usage(c, "--min-version and --chunk-size come from the --manifest");
    if (o->version != NULL && !bc_version_valid(o->version))
        return ctl_usage(c, "--version '%.40s' is not a version (dotted digits)", o->version);
    if (o->min_version != NULL && !bc_version_valid(o->min_version))
        return ctl_usage(c, "--min-version '%.40s' is not a version (dotted digits)",
                         o->min_version);
    if (chunk != NULL &&
        bc_cli_parse_long(chunk, 1, BC_FIRMWARE_CHUNK_MAX, &o->chunk_size) != BC_OK)
        return ctl_usage(c, "--chunk-size is 1..%d bytes", BC_FIRMWARE_CHUNK_MAX);
    return CTL_EXIT_OK;
}

/* The manifest of data, signed with the firmware key and, when the public
 * key is configured, checked against it. */
static int manifest_sign(ctl *c, const publish_opts *o, const uint8_t *data, size_t len,
                         bc_firmware_manifest *m)
{
    EVP_PKEY *key = NULL, *pub = NULL;
    bc_error err = {{0}};
    memset(m, 0, sizeof(*m));
    snprintf(m->version, sizeof(m->version), "%s", o->version);
    snprintf(m->min_version, sizeof(m->min_version), "%s", o->min_version ? o->min_version : "");
    m->size = (int64_t)len;
    m->chunk_size = o->chunk_size;
    m->chunks = (m->size + m->chunk_size - 1) / m->chunk_size;
    if (bc_image_sha256_hex(data, len, m->sha256) != BC_OK)
        return ctl_fail(c, BC_ERR_CRYPTO, "%s: SHA-256 of %s failed", c->what, o->image);
    int code = load_signing_key(c, &key);
    if (code == CTL_EXIT_OK)
        code = load_public_key(c, false, &pub);
    if (code != CTL_EXIT_OK)
        goto cleanup;
    bc_status st = bc_firmware_sign(m, key, &err);
    if (st != BC_OK) {
        code = ctl_fail(c, st, "%s: signing: %s", c->what, err.text);
        goto cleanup;
    }
    if (pub != NULL && bc_firmware_verify(m, pub, &err) != BC_OK)
        code = ctl_fail(c, BC_ERR_SIGNATURE,
                        "%s: the manifest signed with firmware_key_file %s does not verify with "
                        "firmware_pubkey_file %s (the cameras would refuse it); nothing published",
                        c->what, c->cfg.firmware_key_file, c->cfg.firmware_pubkey_file);
cleanup:
    EVP_PKEY_free(key);
    EVP_PKEY_free(pub);
    return code;
}

/* A manifest signed offline: its signature by the firmware public key,
 * then that it describes data. */
static int manifest_check(ctl *c, const publish_opts *o, const uint8_t *data, size_t len,
                          bc_firmware_manifest *m)
{
    uint8_t *text = NULL;
    size_t text_len = 0;
    EVP_PKEY *pub = NULL;
    bc_error err = {{0}};
    char sha[BC_SHA256_HEX_LEN + 1];
    int code = read_whole(c, o->manifest, BC_FIRMWARE_JSON_MAX, &text, &text_len);
    if (code != CTL_EXIT_OK)
        return code;
    if (bc_firmware_decode((const char *)text, text_len, m, &err) != BC_OK) {
        code = ctl_fail(c, BC_ERR_INVAL, "%s: %s is not a firmware manifest: %s", c->what,
                        o->manifest, err.text);
        goto cleanup;
    }
    if ((code = load_public_key(c, true, &pub)) != CTL_EXIT_OK)
        goto cleanup;
    bc_status st = bc_firmware_verify(m, pub, &err);
    if (st != BC_OK) {
        code = ctl_fail(c, st, "%s: %s: %s", c->what, o->manifest, err.text);
        goto cleanup;
    }
    if (m->rollback) {
        code = ctl_fail(c, BC_ERR_INVAL, "%s: %s is a rollback manifest; publish the image's own",
                        c->what, o->manifest);
    } else if (o->version != NULL && strcmp(o->version, m->version) != 0) {
        code = ctl_fail(c, BC_ERR_INVAL, "%s: --version %s, but %s is for version %s", c->what,
                        o->version, o->manifest, m->version);
    } else if (m->size != (int64_t)len) {
        code = ctl_fail(c, BC_ERR_TAMPERED, "%s: %s has %zu bytes, its manifest says %" PRId64,
                        c->what, o->image, len, m->size);
    } else if (bc_image_sha256_hex(data, len, sha) != BC_OK) {
        code = ctl_fail(c, BC_ERR_CRYPTO, "%s: SHA-256 of %s failed", c->what, o->image);
    } else if (strcmp(sha, m->sha256) != 0) {
        code = ctl_fail(c, BC_ERR_TAMPERED, "%s: the SHA-256 of %s is %s, its manifest says %s",
                        c->what, o->image, sha, m->sha256);
    }
cleanup:
    EVP_PKEY_free(pub);
    free(text);
    return code;
}

static int print_published(ctl *c, const bc_firmware_manifest *m, bool already)
{
    if (c->json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "version", m->version);
        cJSON_AddStringToObject(doc, "sha256", m->sha256);
        cJSON_AddNumberToObject(doc, "size", (double)m->size);
        cJSON_AddNumberToObject(doc, "chunks", (double)m->chunks);
        cJSON_AddNumberToObject(doc, "chunk_size", (double)m->chunk_size);
        cJSON_AddStringToObject(doc, "min_version", m->min_version);
        cJSON_AddBoolToObject(doc, "published", !already);
        return ctl_print_json(c, doc);
    }
    printf("firmware %s %s: %" PRId64 " bytes in %" PRId64 " chunk%s of %" PRId64 ", sha256 %s\n",
           m->version, already ? "was published already (the same image)" : "published", m->size,
           m->chunks, m->chunks == 1 ? "" : "s", m->chunk_size, m->sha256);
    return CTL_EXIT_OK;
}

static int fw_publish(ctl *c, const ctl_args *a)
{
    publish_opts o;
    int code = publish_parse(c, a, &o);
    if (code != CTL_EXIT_OK)
        return code;
    uint8_t *data = NULL;
    size_t len = 0;
    if ((code = read_whole(c, o.image, BC_FIRMWARE_SIZE_MAX, &data, &len)) != CTL_EXIT_OK)
        return code;
    bc_firmware_manifest m;
    code = o.manifest != NULL ? manifest_check(c, &o, data, len, &m)
                              : manifest_sign(c, &o, data, len, &m);
    if (code != CTL_EXIT_OK)
        goto cleanup;
    bool already = false;
    bc_error err = {{0}};
    bc_status st =
        bc_image_publish(&c->redis, &m, data, len, c->actor, bc_clock_now_ms(), &already, &err);
    if (st != BC_OK) {
        code = ctl_fail(c, st, "%s: %s", c->what, err.text);
        goto cleanup;
    }
    code = print_published(c, &m, already);
cleanup:
    free(data);
    return code;
}

/* ---- firmware images ---- */

static bool list_image(const bc_image *img, void *userdata)
{
    cJSON *arr = userdata;
    const bc_firmware_manifest *m = &img->manifest;
    if (arr == NULL) {
        char when[40];
        ctl_format_time(img->published_at, when, sizeof(when));
        printf("%-12s %10" PRId64 " bytes  %4" PRId64 " chunks  min %-8s sha256 %.16s...  "
               "published %s by %s\n",
               m->version, m->size, m->chunks, m->min_version[0] ? m->min_version : "-", m->sha256,
               when, img->published_by);
        return true;
    }
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return false;
    cJSON_AddStringToObject(o, "version", m->version);
    cJSON_AddNumberToObject(o, "size", (double)m->size);
    cJSON_AddStringToObject(o, "sha256", m->sha256);
    cJSON_AddNumberToObject(o, "chunk_size", (double)m->chunk_size);
    cJSON_AddNumberToObject(o, "chunks", (double)m->chunks);
    cJSON_AddStringToObject(o, "min_version", m->min_version);
    add_time(o, "published_at", img->published_at);
    cJSON_AddStringToObject(o, "published_by", img->published_by);
    cJSON_AddItemToArray(arr, o);
    return true;
}

static int fw_images(ctl *c, const ctl_args *a)
{
    (void)a;
    bc_error err = {{0}};
    cJSON *doc = c->json ? cJSON_CreateObject() : NULL;
    cJSON *arr = c->json ? cJSON_AddArrayToObject(doc, "images") : NULL;
    if (c->json && arr == NULL) {
        cJSON_Delete(doc);
        return ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
    }
    bc_status st = bc_image_list(&c->redis, list_image, arr, &err);
    if (st != BC_OK) {
        cJSON_Delete(doc);
        return ctl_fail(c, st, "%s: %s", c->what, err.text);
    }
    return c->json ? ctl_print_json(c, doc) : CTL_EXIT_OK;
}

/* ---- firmware start ---- */

/* The waves of --wave lists: wave_of[i] of devs[i]; the ids point into
 * copies of the arguments (bufs). */
typedef struct wave_lists {
    char *bufs[BC_ROLLOUT_WAVES_MAX];
    size_t nbufs;
    const char **devs;
    int64_t *wave_of;
    size_t n, cap;
} wave_lists;

static void wave_lists_free(wave_lists *w)
{
    for (size_t i = 0; i < w->nbufs; i++)
        free(w->bufs[i]);
    free(w->devs);
    free(w->wave_of);
}

static bool wave_lists_add(wave_lists *w, const char *dev, int64_t wave)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        const char **devs = realloc(w->devs, cap * sizeof(*devs));
        if (devs == NULL)
            return false;
        w->devs = devs;
        int64_t *of = realloc(w->wave_of, cap * sizeof(*of));
        if (of == NULL)
            return false;
        w->wave_of = of;
        w->cap = cap;
    }
    w->devs[w->n] = dev;
    w->wave_of[w->n] = wave;
    w->n++;
    return true;
}

static int parse_wave_lists(ctl *c, const ctl_args *a, wave_lists *w)
{
    const char *vals[CTL_VALUES_MAX];
    size_t n = ctl_arg_all(a, "wave", vals, CTL_VALUES_MAX);
    if (n > BC_ROLLOUT_WAVES_MAX)
        return ctl_usage(c, "at most %d --wave", BC_ROLLOUT_WAVES_MAX);
    for (size_t i = 0; i < n; i++) {
        char *buf = strdup(vals[i]);
        if (buf == NULL)
            return ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
        w->bufs[w->nbufs++] = buf;
        char *save = NULL;
        size_t in_wave = 0;
        for (char *dev = strtok_r(buf, ",", &save); dev != NULL; dev = strtok_r(NULL, ",", &save)) {
            if (!bc_device_id_valid(dev))
                return ctl_usage(c, "--wave: '%.40s' is not a device id", dev);
            if (!wave_lists_add(w, dev, (int64_t)i))
                return ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
            in_wave++;
        }
        if (in_wave == 0)
            return ctl_usage(c, "--wave '%s' names no camera", vals[i]);
    }
    return CTL_EXIT_OK;
}

static int parse_pcts(ctl *c, const char *text, int64_t *pcts, size_t *count)
{
    char buf[256];
    if (strlen(text) >= sizeof(buf))
        return ctl_usage(c, "--waves is too long");
    snprintf(buf, sizeof(buf), "%s", text);
    size_t n = 0;
    char *save = NULL;
    for (char *p = strtok_r(buf, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
        long v = 0;
        if (bc_cli_parse_long(p, 1, 100, &v) != BC_OK)
            return ctl_usage(c, "--waves: '%s' is not a percentage 1..100", p);
        if (n >= BC_ROLLOUT_WAVES_MAX)
            return ctl_usage(c, "--waves: at most %d waves", BC_ROLLOUT_WAVES_MAX);
        if (n > 0 && v <= pcts[n - 1])
            return ctl_usage(c, "--waves must increase (cumulative percentages): %s", text);
        pcts[n++] = v;
    }
    if (n == 0 || pcts[n - 1] != 100)
        return ctl_usage(c, "--waves must end at 100 (cumulative percentages): %s", text);
    *count = n;
    return CTL_EXIT_OK;
}

typedef struct num_opt {
    const char *name;
    long min, max, def;
    int64_t *out;
} num_opt;

static int parse_nums(ctl *c, const ctl_args *a, const num_opt *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *text = ctl_arg(a, opts[i].name);
        long v = opts[i].def;
        if (text != NULL && bc_cli_parse_long(text, opts[i].min, opts[i].max, &v) != BC_OK)
            return ctl_usage(c, "--%s is %ld..%ld", opts[i].name, opts[i].min, opts[i].max);
        *opts[i].out = v;
    }
    return CTL_EXIT_OK;
}

static int start_targets(ctl *c, const ctl_args *a, bc_rollout_spec *spec, const char **cams,
                         int64_t *pcts, wave_lists *w)
{
    bool all = ctl_flag(a, "all");
    size_t ncam = ctl_arg_all(a, "camera", cams, CAMERAS_MAX);
    const char *waves = ctl_arg(a, "waves");
    bool lists = ctl_flag(a, "wave");
    if (all && ncam > 0)
        return ctl_usage(c, "give --all or --camera, not both");
    if (lists && (all || ncam > 0))
        return ctl_usage(c, "--wave lists are the target: no --all or --camera with them");
    if (lists && waves != NULL)
        return ctl_usage(c, "give --waves or --wave, not both");
    if (ncam > CAMERAS_MAX)
        return ctl_usage(c, "at most %d --camera (use --wave lists or --all)", CAMERAS_MAX);
    for (size_t i = 0; i < ncam; i++) {
        if (!bc_device_id_valid(cams[i]))
            return ctl_usage(c, "--camera '%.40s' is not a device id", cams[i]);
    }
    if (lists) {
        int code = parse_wave_lists(c, a, w);
        spec->wave_devices = w->devs;
        spec->wave_of = w->wave_of;
        spec->wave_device_count = w->n;
        return code;
    }
    spec->devices = ncam > 0 ? cams : NULL;
    spec->device_count = ncam;
    spec->pcts = pcts;
    return parse_pcts(c, waves != NULL ? waves : "1,10,50,100", pcts, &spec->pct_count);
}

static int print_started(ctl *c, const bc_rollout *r)
{
    if (c->json) {
        int code = CTL_EXIT_OK;
        cJSON *doc = rollout_doc(c, r->id, true, &code);
        return doc != NULL ? ctl_print_json(c, doc) : code;
    }
    printf("rollout %s started: version %s to %" PRId64 " camera%s in %" PRId64 " wave%s (", r->id,
           r->version, r->total, r->total == 1 ? "" : "s", r->wave_count,
           r->wave_count == 1 ? "" : "s");
    for (int64_t w = 0; w < r->wave_count && w < BC_ROLLOUT_WAVES_MAX; w++)
        printf("%s%" PRId64, w > 0 ? ", " : "", r->waves[w].total);
    printf(" cameras); wave 1 is running\n");
    return CTL_EXIT_OK;
}

static int fw_start(ctl *c, const ctl_args *a)
{
    const char *cams[CAMERAS_MAX];
    int64_t pcts[BC_ROLLOUT_WAVES_MAX];
    wave_lists w = {0};
    bc_rollout_spec spec = {.version = a->pos[0], .created_by = c->actor};
    const num_opt nums[] = {
        {"wait", 0, 30L * DAY_S, 60, &spec.wait_s},
        {"success-pct", 1, 100, 90, &spec.success_pct},
        {"max-failure-pct", 0, 100, 10, &spec.max_failure_pct},
        {"camera-timeout", 1, 7L * DAY_S, 1800, &spec.camera_timeout_s},
        {"min-battery", 0, 100, 30, &spec.min_battery_pct},
    };
    bc_rollout *r = NULL;
    int code = CTL_EXIT_OK;
    if (!bc_version_valid(spec.version)) {
        code = ctl_usage(c, "'%.40s' is not a version (dotted digits)", spec.version);
        goto cleanup;
    }
    spec.approve = ctl_flag(a, "approve");
    if ((code = parse_nums(c, a, nums, COUNT(nums))) != CTL_EXIT_OK ||
        (code = start_targets(c, a, &spec, cams, pcts, &w)) != CTL_EXIT_OK)
        goto cleanup;
    if ((r = malloc(sizeof(*r))) == NULL) {
        code = ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
        goto cleanup;
    }
    bc_error err = {{0}};
    bc_status st = bc_rollout_create(&c->redis, &spec, bc_clock_now_ms(), r, &err);
    if (st != BC_OK) {
        code = ctl_fail(c, st, "%s: %s", c->what, err.text);
        goto cleanup;
    }
    code = print_started(c, r);
cleanup:
    free(r);
    wave_lists_free(&w);
    return code;
}

/* ---- status, list, show ---- */

static bool first_id(const char *id, void *userdata)
{
    snprintf(userdata, BC_ROLLOUT_ID_MAX + 1, "%s", id);
    return false;
}

static int check_rollout_id(ctl *c, const char *id)
{
    if (!bc_rollout_id_valid(id))
        return ctl_usage(c, "'%.40s' is not a rollout id (R<n>)", id);
    return CTL_EXIT_OK;
}

/* The rollout named, or the active one when none is. */
static int which_rollout(ctl *c, const ctl_args *a, char id[BC_ROLLOUT_ID_MAX + 1])
{
    if (a->npos > 0) {
        int code = check_rollout_id(c, a->pos[0]);
        snprintf(id, BC_ROLLOUT_ID_MAX + 1, "%s", a->pos[0]);
        return code;
    }
    bc_error err = {{0}};
    id[0] = '\0';
    bc_status st = bc_rollout_active_ids(&c->redis, first_id, id, &err);
    if (st != BC_OK)
        return ctl_fail(c, st, "%s: %s", c->what, err.text);
    if (id[0] == '\0')
        return ctl_fail(c, BC_ERR_NOT_FOUND,
                        "%s: no active rollout (see '" CTL_PROGRAM " firmware list --all')",
                        c->what);
    return CTL_EXIT_OK;
}

static int fw_status(ctl *c, const ctl_args *a)
{
    char id[BC_ROLLOUT_ID_MAX + 1];
    int code = which_rollout(c, a, id);
    if (code != CTL_EXIT_OK)
        return code;
    if (c->json) {
        cJSON *doc = rollout_doc(c, id, false, &code);
        return doc != NULL ? ctl_print_json(c, doc) : code;
    }
    bc_rollout *r = malloc(sizeof(*r));
    if (r == NULL)
        return ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
    bc_error err = {{0}};
    bc_status st = bc_rollout_get(&c->redis, id, r, &err);
    if (st == BC_OK)
        print_rollout(r);
    else
        code = ctl_fail(c, st, "%s: %s", c->what, err.text);
    free(r);
    return code;
}

typedef struct listing {
    ctl *c;
    cJSON *arr; /* --json; NULL for text */
    size_t count;
    bc_status st;
    bc_error err;
} listing;

static bool list_rollout(const bc_rollout *r, void *userdata)
{
    listing *l = userdata;
    l->count++;
    if (l->arr == NULL) {
        print_rollout_line(r);
        return true;
    }
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddItemToArray(l->arr, o)) {
        cJSON_Delete(o);
        l->st = bc_fail(&l->err, BC_ERR_NOMEM, "out of memory");
        return false;
    }
    /* the hash itself, like status --json (its own read: the callback's
     * struct has no waves or manifests) */
    l->st = hash_into(l->c, r->id, o, &l->err);
    return l->st == BC_OK;
}

static int fw_list(ctl *c, const ctl_args *a)
{
    bool all = ctl_flag(a, "all");
    cJSON *doc = c->json ? cJSON_CreateObject() : NULL;
    listing l = {.c = c, .arr = c->json ? cJSON_AddArrayToObject(doc, "rollouts") : NULL};
    if (c->json && l.arr == NULL) {
        cJSON_Delete(doc);
        return ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
    }
    bc_error err = {{0}};
    bc_status st = bc_rollout_list(&c->redis, !all, list_rollout, &l, &err);
    if (st == BC_OK && l.st != BC_OK) {
        st = l.st;
        err = l.err;
    }
    if (st != BC_OK) {
        cJSON_Delete(doc);
        return ctl_fail(c, st, "%s: %s", c->what, err.text);
    }
    if (!c->json && l.count == 0)
        printf("%s\n", all ? "no rollouts" : "no active rollout (--all lists the ended ones)");
    return c->json ? ctl_print_json(c, doc) : CTL_EXIT_OK;
}

static bool show_camera(const bc_rollout_camera *cam, void *userdata)
{
    cJSON *arr = userdata;
    if (arr == NULL) {
        char since[40];
        ctl_format_time(cam->since, since, sizeof(since));
        printf("  %-20s wave %-3" PRId64 " %-12s since %-24s from %-10s", cam->device,
               cam->wave + 1, bc_fw_status_name(cam->status), since,
               cam->from_version[0] ? cam->from_version : "-");
        if (cam->detail[0] != '\0')
            printf("  (%s)", cam->detail);
        printf("\n");
        return true;
    }
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return false;
    cJSON_AddStringToObject(o, "device", cam->device);
    cJSON_AddNumberToObject(o, "wave", (double)cam->wave);
    cJSON_AddStringToObject(o, "status", bc_fw_status_name(cam->status));
    cJSON_AddStringToObject(o, "cmd_id", cam->cmd_id);
    add_time(o, "since", cam->since);
    cJSON_AddStringToObject(o, "from_version", cam->from_version);
    cJSON_AddStringToObject(o, "detail", cam->detail);
    cJSON_AddItemToArray(arr, o);
    return true;
}

static int fw_show(ctl *c, const ctl_args *a)
{
    const char *id = a->pos[0];
    int code = check_rollout_id(c, id);
    if (code != CTL_EXIT_OK)
        return code;
    bc_error err = {{0}};
    cJSON *doc = NULL, *arr = NULL;
    if (c->json) {
        if ((doc = rollout_doc(c, id, true, &code)) == NULL)
            return code;
        if ((arr = cJSON_AddArrayToObject(doc, "cameras")) == NULL) {
            cJSON_Delete(doc);
            return ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
        }
    } else {
        bc_rollout *r = malloc(sizeof(*r));
        bc_status st = r != NULL ? bc_rollout_get(&c->redis, id, r, &err)
                                 : bc_fail(&err, BC_ERR_NOMEM, "out of memory");
        if (st == BC_OK)
            print_rollout(r);
        free(r);
        if (st != BC_OK)
            return ctl_fail(c, st, "%s: %s", c->what, err.text);
        printf("cameras:\n");
    }
    bc_status st = bc_rollout_cameras(&c->redis, id, show_camera, arr, &err);
    if (st != BC_OK) {
        cJSON_Delete(doc);
        return ctl_fail(c, st, "%s: %s", c->what, err.text);
    }
    return c->json ? ctl_print_json(c, doc) : CTL_EXIT_OK;
}

/* ---- pause, resume, approve, abort ---- */

static int print_act(ctl *c, const char *id, const bc_rollout *r, bool changed, const char *verb,
                     const cJSON *rollback_versions)
{
    if (c->json) {
        int code = CTL_EXIT_OK;
        cJSON *doc = rollout_doc(c, id, true, &code);
        if (doc == NULL)
            return code;
        cJSON_AddBoolToObject(doc, "changed", changed);
        if (rollback_versions != NULL)
            cJSON_AddItemToObject(doc, "rollback_versions", cJSON_Duplicate(rollback_versions, 1));
        return ctl_print_json(c, doc);
    }
    printf("rollout %s %s%s (now %s)\n", id, changed ? "" : "already ", verb,
           bc_rollout_state_name(r->state));
    return CTL_EXIT_OK;
}

typedef bc_status (*act_fn)(bc_redis *r, const char *id, int64_t now_ms, bc_rollout *out,
                            bool *changed, bc_error *err);

static int act(ctl *c, const ctl_args *a, act_fn fn, const char *verb)
{
    const char *id = a->pos[0];
    int code = check_rollout_id(c, id);
    if (code != CTL_EXIT_OK)
        return code;
    bc_rollout *r = malloc(sizeof(*r));
    if (r == NULL)
        return ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
    bool changed = false;
    bc_error err = {{0}};
    bc_status st = fn(&c->redis, id, bc_clock_now_ms(), r, &changed, &err);
    code = st == BC_OK ? print_act(c, id, r, changed, verb, NULL)
                       : ctl_fail(c, st, "%s: %s", c->what, err.text);
    free(r);
    return code;
}

static int fw_pause(ctl *c, const ctl_args *a)
{
    return act(c, a, bc_rollout_pause, "paused");
}

static int fw_resume(ctl *c, const ctl_args *a)
{
    return act(c, a, bc_rollout_resume, "resumed");
}

static int fw_approve(ctl *c, const ctl_args *a)
{
    return act(c, a, bc_rollout_approve, "approved: the next wave started");
}

/* The versions to sign rollback manifests for. A camera that took the
 * version (installed, updated) must get one: required. One still updating
 * (offered, downloading) may take it before it answers; it gets one when
 * its version is published, else it fails when it does (the library). */
#define FROM_MAX BC_ROLLOUT_WAVES_MAX

typedef struct from_versions {
    const char *rollout_version;
    size_t n;
    struct {
        char version[BC_VERSION_MAX + 1];
        char device[BC_DEVICE_ID_MAX + 1]; /* one camera that came from it */
        bool required;
    } v[FROM_MAX];
    char problem_device[BC_DEVICE_ID_MAX + 1];
    bc_status problem; /* BC_ERR_STATE: no earlier version; BC_ERR_TOO_BIG */
} from_versions;

static bool collect_from(const bc_rollout_camera *cam, void *userdata)
{
    from_versions *f = userdata;
    bool took = cam->status == BC_FW_INSTALLED || cam->status == BC_FW_UPDATED;
    bool busy = cam->status == BC_FW_OFFERED || cam->status == BC_FW_DOWNLOADING;
    if (!took && !busy)
        return true;
    /* it ran the version before the rollout: nothing to undo (the abort
     * script leaves it alone) */
    if (strcmp(cam->from_version, f->rollout_version) == 0)
        return true;
    if (cam->from_version[0] == '\0') {
        if (!took)
            return true;
        /* nobody knows what it ran: there is nothing to go back to */
        snprintf(f->problem_device, sizeof(f->problem_device), "%s", cam->device);
        f->problem = BC_ERR_STATE;
        return false;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->v[i].version, cam->from_version) == 0) {
            f->v[i].required = f->v[i].required || took;
            return true;
        }
    }
    if (f->n == FROM_MAX) {
        f->problem = BC_ERR_TOO_BIG;
        return false;
    }
    snprintf(f->v[f->n].version, sizeof(f->v[f->n].version), "%s", cam->from_version);
    snprintf(f->v[f->n].device, sizeof(f->v[f->n].device), "%s", cam->device);
    f->v[f->n].required = took;
    f->n++;
    return true;
}

/* The signed rollback manifest of a published version into obj[version]. */
static int sign_rollback(ctl *c, EVP_PKEY *key, EVP_PKEY *pub, const char *version,
                         const char *device, bool required, cJSON *obj)
{
    bc_image img;
    bc_error err = {{0}};
    bc_status st = bc_image_get(&c->redis, version, &img, &err);
    if (st == BC_ERR_NOT_FOUND && !required) {
        fprintf(stderr,
                CTL_PROGRAM ": warning: version %s (camera %s, still updating) is not published: "
                            "that camera fails if it installs before the abort\n",
                version, device);
        return CTL_EXIT_OK;
    }
    if (st == BC_ERR_NOT_FOUND)
        return ctl_fail(c, st,
                        "%s: camera %s came from version %s, which is not published: publish its "
                        "image to roll back to it, or abort without --rollback",
                        c->what, device, version);
    if (st != BC_OK)
        return ctl_fail(c, st, "%s: image %s: %s", c->what, version, err.text);
    bc_firmware_manifest m = img.manifest;
    m.rollback = true;
    m.has_sig = false;
    cJSON *j = NULL;
    if ((st = bc_firmware_sign(&m, key, &err)) != BC_OK)
        return ctl_fail(c, st, "%s: signing the rollback to %s: %s", c->what, version, err.text);
    if (pub != NULL && bc_firmware_verify(&m, pub, &err) != BC_OK)
        return ctl_fail(c, BC_ERR_SIGNATURE,
                        "%s: the rollback manifest signed with firmware_key_file does not verify "
                        "with firmware_pubkey_file; nothing aborted",
                        c->what);
    if ((st = bc_firmware_to_json(&m, &j, &err)) != BC_OK)
        return ctl_fail(c, st, "%s: rollback manifest %s: %s", c->what, version, err.text);
    cJSON_AddItemToObject(obj, version, j);
    return CTL_EXIT_OK;
}

static int collect_rollback(ctl *c, const char *id, from_versions *f, bc_rollout *r)
{
    bc_error err = {{0}};
    bc_status st = bc_rollout_get(&c->redis, id, r, &err);
    if (st == BC_OK) {
        f->rollout_version = r->version;
        st = bc_rollout_cameras(&c->redis, id, collect_from, f, &err);
    }
    if (st != BC_OK)
        return ctl_fail(c, st, "%s: %s", c->what, err.text);
    if (f->problem == BC_ERR_STATE)
        return ctl_fail(c, BC_ERR_STATE,
                        "%s: the version camera %s ran before %s is unknown: there is nothing "
                        "to roll it back to; abort without --rollback",
                        c->what, f->problem_device, r->version);
    if (f->problem != BC_OK)
        return ctl_fail(c, f->problem, "%s: cameras came from more than %d versions", c->what,
                        FROM_MAX);
    return CTL_EXIT_OK;
}

/* The JSON object version -> signed rollback manifest (*json the
 * caller's) and the versions it holds (*versions, the caller's). */
static int build_rollback(ctl *c, const char *id, bc_rollout *r, char **json, cJSON **versions)
{
    from_versions *f = calloc(1, sizeof(*f));
    EVP_PKEY *key = NULL, *pub = NULL;
    cJSON *obj = cJSON_CreateObject();
    int code = CTL_EXIT_OK;
    *versions = cJSON_CreateArray();
    if (f == NULL || obj == NULL || *versions == NULL) {
        code = ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
        goto cleanup;
    }
    if ((code = collect_rollback(c, id, f, r)) != CTL_EXIT_OK)
        goto cleanup;
    if (f->n > 0 && ((code = load_signing_key(c, &key)) != CTL_EXIT_OK ||
                     (code = load_public_key(c, false, &pub)) != CTL_EXIT_OK))
        goto cleanup;
    for (size_t i = 0; i < f->n && code == CTL_EXIT_OK; i++)
        code = sign_rollback(c, key, pub, f->v[i].version, f->v[i].device, f->v[i].required, obj);
    if (code != CTL_EXIT_OK)
        goto cleanup;
    for (cJSON *e = obj->child; e != NULL; e = e->next)
        cJSON_AddItemToArray(*versions, cJSON_CreateString(e->string));
    if ((*json = cJSON_PrintUnformatted(obj)) == NULL)
        code = ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
cleanup:
    if (code != CTL_EXIT_OK) {
        cJSON_Delete(*versions);
        *versions = NULL;
    }
    EVP_PKEY_free(key);
    EVP_PKEY_free(pub);
    cJSON_Delete(obj);
    free(f);
    return code;
}

static int fw_abort(ctl *c, const ctl_args *a)
{
    const char *id = a->pos[0];
    int code = check_rollout_id(c, id);
    if (code != CTL_EXIT_OK)
        return code;
    bool rollback = ctl_flag(a, "rollback");
    char *json = NULL;
    cJSON *versions = NULL;
    bc_rollout *r = malloc(sizeof(*r));
    if (r == NULL)
        return ctl_fail(c, BC_ERR_NOMEM, "%s: out of memory", c->what);
    if (rollback && (code = build_rollback(c, id, r, &json, &versions)) != CTL_EXIT_OK)
        goto cleanup;
    bool changed = false;
    bc_error err = {{0}};
    bc_status st = bc_rollout_abort(&c->redis, id, json, bc_clock_now_ms(), r, &changed, &err);
    if (st != BC_OK) {
        code = ctl_fail(c, st, "%s: %s", c->what, err.text);
        goto cleanup;
    }
    code = print_act(c, id, r, changed,
                     r->state == BC_ROLLOUT_ABORTING ? "aborting: cameras go back" : "aborted",
                     versions);
cleanup:
    cJSON_free(json);
    cJSON_Delete(versions);
    free(r);
    return code;
}

#define READ CTL_NEED_REDIS
#define CHANGE (CTL_NEED_REDIS | CTL_NEED_ACTOR)
#define NO_OPTS                                                                                    \
    {                                                                                              \
        {                                                                                          \
            NULL, false, false, false                                                              \
        }                                                                                          \
    }

static const ctl_leaf leaves[] = {
    {"publish",
     "IMAGE --version X [--min-version V] [--chunk-size N] [--manifest SIGNED.json]",
     "sign a firmware image's manifest and store the image in Redis for rollouts",
     "Builds the manifest of IMAGE (size, SHA-256, chunks of N bytes, default 65536,\n"
     "the most) and signs it with firmware_key_file; when firmware_pubkey_file is set\n"
     "the signature is checked against it first (a wrong key is refused, exit 5).\n"
     "--manifest SIGNED.json takes a manifest signed offline instead: its signature\n"
     "must verify with firmware_pubkey_file (exit 5) and it must describe IMAGE (size\n"
     "and SHA-256, exit 5). The chunks are stored first, the image record last. The same\n"
     "image again changes nothing (published: false); another image under a published\n"
     "version is refused (exit 3). --min-version: the oldest version that may install it.\n",
     1,
     1,
     {{"version", true, false, false},
      {"min-version", true, false, false},
      {"chunk-size", true, false, false},
      {"manifest", true, false, false}},
     CHANGE,
     fw_publish},
    {"images", "", "the published firmware images: version, size, chunks, SHA-256", NULL, 0, 0,
     NO_OPTS, READ, fw_images},
    {"start",
     "VERSION [--all | --camera ID... | --wave IDS...] [--waves 1,10,50,100] [OPTIONS]",
     "start a staged rollout of a published version",
     "Options: --wait S (60), --success-pct N (90), --max-failure-pct N (10), --approve,\n"
     "--camera-timeout S (1800), --min-battery N (30).\n"
     "\n"
     "The target is every active registered camera (--all, the default), the cameras\n"
     "named (--camera, repeated) or the union of explicit waves (--wave ID,ID,...,\n"
     "repeated: one wave each, in order; a camera named twice stays in its first wave).\n"
     "Otherwise --waves gives cumulative percentages of the target (increasing, ending\n"
     "at 100; default 1,10,50,100), each wave at least one camera, in an order fixed\n"
     "at creation. A wave is done when --success-pct (default 90) of its cameras are\n"
     "updated and none is still updating; the next starts --wait seconds later\n"
     "(default 60), or after 'firmware approve' with --approve. More than\n"
     "--max-failure-pct (default 10) failed or rolled back in a wave halts the rollout.\n"
     "A camera is offered the update only when online, docked or standby with at least\n"
     "--min-battery % (default 30); no final answer within --camera-timeout seconds\n"
     "(default 1800) of the offer fails it. An unpublished version or unknown camera\n"
     "is exit 4; another active rollout, or a camera that is not active, is exit 3.\n",
     1,
     1,
     {{"all", false, false, false},
      {"camera", true, true, false},
      {"waves", true, false, false},
      {"wave", true, true, false},
      {"wait", true, false, false},
      {"success-pct", true, false, false},
      {"max-failure-pct", true, false, false},
      {"approve", false, false, false},
      {"camera-timeout", true, false, false},
      {"min-battery", true, false, false}},
     CHANGE,
     fw_start},
    {"status", "[ID]", "one rollout (default: the active one): state, reason, counts per wave",
     "Per wave: cameras in all, pending, offered or downloading, installed (restarting),\n"
     "updated, failed, rolled back (and, after abort --rollback, reverting and\n"
     "reverted); a progress bar of updated cameras when stdout is a terminal. --json\n"
     "prints the rollout's Redis hash as an object (numbers as numbers; waves are\n"
     "0-based there: current_wave, w0_total, ...). No rollout active and no ID: exit 4.\n",
     0, 1, NO_OPTS, READ, fw_status},
    {"list",
     "[--all]",
     "the active rollout (--all: every rollout, oldest first)",
     NULL,
     0,
     0,
     {{"all", false, false, false}},
     READ,
     fw_list},
    {"show", "ID", "one rollout and each of its cameras: wave, status, since, from version, detail",
     NULL, 1, 1, NO_OPTS, READ, fw_show},
    {"pause", "ID", "stop offering the update (cameras already updating finish)",
     "Only a running rollout can be paused (exit 3 otherwise); pausing a paused one\n"
     "changes nothing.\n",
     1, 1, NO_OPTS, CHANGE, fw_pause},
    {"resume", "ID", "offer again: a paused rollout, or a halted one (after looking at why)", NULL,
     1, 1, NO_OPTS, CHANGE, fw_resume},
    {"approve", "ID", "start the next wave of a rollout awaiting approval (--approve)", NULL, 1, 1,
     NO_OPTS, CHANGE, fw_approve},
    {"abort",
     "ID [--rollback]",
     "end a rollout; --rollback sends the cameras that took it back to their version",
     "Nothing more is offered; cameras already updating may finish. With --rollback,\n"
     "a rollback manifest of every version the cameras that installed or confirmed the\n"
     "new version came from is signed here with firmware_key_file (those images must be\n"
     "published, else exit 4); those cameras are sent back, and the rollout is\n"
     "'aborting' until they answered, then 'aborted'. A done or aborted rollout is\n"
     "exit 3.\n",
     1,
     1,
     {{"rollback", false, false, false}},
     CHANGE,
     fw_abort},
};

const ctl_area ctl_area_firmware = {"firmware",
                                    "firmware images and staged rollouts (publish, images, start, "
                                    "status, list, show, pause, resume, approve, abort)",
                                    leaves, COUNT(leaves)};
