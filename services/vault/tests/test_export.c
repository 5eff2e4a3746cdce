/* Unit tests for services/vault/export against a real redis-server the test
 * starts itself (free loopback port, temp dir, no persistence), a real
 * store, keystore and audit log in a temp dir, and recordings made with the
 * camera's writer (proto/recording.h). Each test starts from an empty Redis
 * and a fresh vault directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/stream.h"
#include "proto/encoding.h"
#include "proto/recording.h"
#include "proto/sign.h"
#include "test_util.h"
#include "vault/audit.h"
#include "vault/catalog.h"
#include "vault/export.h"
#include "vault/keystore.h"
#include "vault/store.h"

#define NOW_MS 1790000000000LL /* 2026-09-21 */
#define HOUR_MS (3600LL * 1000)
#define SEGMENT 4096u
#define CASE "PV-2026-0042"
#define ACTOR "operator:alice"
#define MAX_RECS 4

static bc_test_redis srv;

static int group_setup(void **state)
{
    (void)state;
    return bc_test_redis_start(&srv, "export-redis") == BC_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    bc_test_redis_stop(&srv);
    return 0;
}

/* ---- the vault of one test ---- */

typedef struct recording {
    char ref[BC_REF_MAX + 1];
    char device[BC_DEVICE_ID_MAX + 1];
    char id[BC_ID_MAX + 1];
    uint8_t *plain;
    size_t plain_len;
    char sha256[BC_SHA256_HEX_LEN + 1];
    uint64_t size;
} recording;

typedef struct fixture {
    char dir[64];
    char store_dir[128], audit_dir[128], key_dir[128], out[128], partial[160];
    bc_redis r;
    bc_store *st;
    bc_audit *a;
    bc_keystore *ks;
    EVP_PKEY *priv, *pub;
    char key_id[BC_KEY_ID_LEN + 1];
    recording recs[MAX_RECS];
    size_t rec_count;
} fixture;

static void write_private_key(const fixture *f)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s.key", f->key_dir, f->key_id);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PrivateKey(fp, f->priv, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, 0600), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || bc_test_tempdir(f->dir, sizeof(f->dir), "export") != BC_OK)
        return -1;
    snprintf(f->store_dir, sizeof(f->store_dir), "%s/vault", f->dir);
    snprintf(f->audit_dir, sizeof(f->audit_dir), "%s/audit", f->dir);
    snprintf(f->key_dir, sizeof(f->key_dir), "%s/keys", f->dir);
    snprintf(f->out, sizeof(f->out), "%s/bundle", f->dir);
    snprintf(f->partial, sizeof(f->partial), "%s" BC_EXPORT_PARTIAL_SUFFIX, f->out);
    if (mkdir(f->key_dir, 0700) != 0 || bc_test_x25519_pair(&f->priv, &f->pub) != BC_OK ||
        bc_key_id(f->pub, f->key_id) != BC_OK)
        return -1;
    *state = f;
    write_private_key(f);
    bc_error err = {{0}};
    bc_test_redis_connect(&srv, 2000, &f->r);
    bc_test_redis_flush(&f->r);
    assert_int_equal(bc_store_open(f->store_dir, &f->st, &err), BC_OK);
    assert_int_equal(bc_audit_open(f->audit_dir, &f->a, &err), BC_OK);
    char master[160];
    snprintf(master, sizeof(master), "%s/master.key", f->dir);
    bc_test_write_file(master, "export test master key\n");
    assert_int_equal(chmod(master, 0600), 0);
    assert_int_equal(bc_keystore_open(f->key_dir, master, NULL, NULL, &f->ks, &err), BC_OK);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f == NULL)
        return 0;
    bc_keystore_close(f->ks);
    bc_audit_close(f->a);
    bc_store_close(f->st);
    bc_redis_close(&f->r);
    EVP_PKEY_free(f->priv);
    EVP_PKEY_free(f->pub);
    for (size_t i = 0; i < f->rec_count; i++)
        free(f->recs[i].plain);
    bc_test_remove_tree(f->dir);
    free(f);
    return 0;
}

/* ---- making recordings, holds and audit entries as the vault does ---- */

static void audit1(fixture *f, const char *actor, const char *action, const char *subject,
                   cJSON *details, uint64_t *seq)
{
    bc_error err = {{0}};
    bc_status rc = bc_audit_append1(f->a, actor, action, subject, details, NOW_MS, seq, &err);
    if (rc != BC_OK)
        fail_msg("audit %s %s: %s", action, subject, err.text);
    cJSON_Delete(details);
}

/* A recording of len bytes written by the camera's writer, committed to
 * the store and the catalog, with its commit audited. */
static recording *make_recording(fixture *f, const char *device, const char *id, size_t len,
                                 int64_t recorded_at)
{
    assert_true(f->rec_count < MAX_RECS);
    recording *rec = &f->recs[f->rec_count++];
    snprintf(rec->device, sizeof(rec->device), "%s", device);
    snprintf(rec->id, sizeof(rec->id), "%s", id);
    assert_int_equal(bc_ref_make(device, id, rec->ref), BC_OK);
    rec->plain = bc_test_pattern(len, (unsigned)(f->rec_count * 7919));
    rec->plain_len = len;

    char path[256];
    bc_error err = {{0}};
    bc_recording_writer *w = NULL;
    bc_recording_info info;
    snprintf(path, sizeof(path), "%s/%s.rec", f->dir, id);
    assert_int_equal(
        bc_recording_writer_open(path, f->pub, NULL, id, device, recorded_at, SEGMENT, &w, &err),
        BC_OK);
    for (size_t off = 0; off < len; off += 1000) {
        size_t n = len - off < 1000 ? len - off : 1000;
        assert_int_equal(bc_recording_writer_write(w, rec->plain + off, n), BC_OK);
    }
    assert_int_equal(bc_recording_writer_close(w, &info), BC_OK);
    assert_int_equal(bc_hex_encode(info.sha256, 32, rec->sha256, sizeof(rec->sha256)), BC_OK);
    rec->size = info.size;
    if (bc_store_commit(f->st, path, rec->sha256, info.size, NULL, &err) != BC_OK)
        fail_msg("store commit: %s", err.text);
    unlink(path);

    bc_recording_meta m = {0};
    snprintf(m.ref, sizeof(m.ref), "%s", rec->ref);
    snprintf(m.device, sizeof(m.device), "%s", device);
    snprintf(m.recording_id, sizeof(m.recording_id), "%s", id);
    snprintf(m.key_id, sizeof(m.key_id), "%s", f->key_id);
    snprintf(m.sha256, sizeof(m.sha256), "%s", rec->sha256);
    m.recorded_at = recorded_at;
    m.duration_ms = 60000;
    m.warnings = 2;
    m.size = (int64_t)info.size;
    m.committed_at = NOW_MS - HOUR_MS;
    m.delete_after = recorded_at + 28 * BC_CATALOG_DAY_MS;
    bool created = false;
    if (bc_catalog_commit(&f->r, &m, NOW_MS - HOUR_MS, &created, NULL, 0, NULL, &err) != BC_OK)
        fail_msg("catalog commit: %s", err.text);
    assert_true(created);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "sha256", rec->sha256);
    uint64_t seq = 0;
    audit1(f, "vault", "commit", rec->ref, d, &seq);
    assert_int_equal(bc_catalog_commit_audited(&f->r, rec->ref, seq, &err), BC_OK);
    return rec;
}

static void place_hold(fixture *f, const char *ref, bc_hold_reason reason, const char *case_ref,
                       bc_hold *out)
{
    bc_error err = {{0}};
    bool created = false;
    if (bc_catalog_hold_place(&f->r, ref, reason, case_ref, ACTOR, NULL, NOW_MS, out, &created,
                              &err) != BC_OK)
        fail_msg("hold: %s", err.text);
    assert_true(created);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "hold_id", out->id);
    cJSON_AddStringToObject(d, "case_ref", case_ref);
    audit1(f, ACTOR, "hold_placed", ref, d, NULL);
}

static bc_export_request request(const fixture *f, const char *purpose, const char *case_ref,
                                 const char *const *refs, size_t count)
{
    bc_export_request req = {.purpose = purpose,
                             .case_ref = case_ref,
                             .actor = ACTOR,
                             .refs = refs,
                             .ref_count = count,
                             .out_dir = f->out};
    return req;
}

/* ---- checking the bundle ---- */

typedef struct action_count {
    const char *action;
    int n;
} action_count;

static bool count_action(const char *line, size_t len, const cJSON *entry, void *userdata)
{
    (void)line;
    (void)len;
    action_count *c = userdata;
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(entry, "action");
    if (cJSON_IsString(action) && strcmp(action->valuestring, c->action) == 0)
        c->n++;
    return true;
}

static int audited(const fixture *f, const char *subject, const char *action)
{
    action_count c = {.action = action, .n = 0};
    bc_error err = {{0}};
    assert_int_equal(bc_audit_scan(f->audit_dir, subject, count_action, &c, &err), BC_OK);
    return c.n;
}

static void sha256_file_hex(const char *path, char hex[BC_SHA256_HEX_LEN + 1])
{
    size_t len = 0;
    uint8_t *data = bc_test_read_file(path, &len);
    unsigned char md[32];
    assert_int_equal(EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL), 1);
    assert_int_equal(bc_hex_encode(md, 32, hex, BC_SHA256_HEX_LEN + 1), BC_OK);
    free(data);
}

/* Every audit-*.log file of the log, concatenated. */
static char *read_audit_log(const fixture *f)
{
    size_t total = 0;
    char *all = calloc(1, 1);
    DIR *d = opendir(f->audit_dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "audit-", 6) != 0)
            continue;
        char path[256];
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/%s", f->audit_dir, e->d_name);
        uint8_t *data = bc_test_read_file(path, &len);
        all = realloc(all, total + len + 1);
        memcpy(all + total, data, len + 1);
        total += len;
        free(data);
    }
    closedir(d);
    return all;
}

static void assert_media(const fixture *f, const recording *rec)
{
    char path[256];
    size_t len = 0;
    struct stat st;
    snprintf(path, sizeof(path), "%s/media/%s_%s.bin", f->out, rec->device, rec->id);
    uint8_t *data = bc_test_read_file(path, &len);
    assert_int_equal(len, rec->plain_len);
    assert_memory_equal(data, rec->plain, len);
    free(data);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

/* manifest.sha256: one correct line per media file, audit.jsonl, export.json. */
static void assert_manifest(const fixture *f, size_t media_files)
{
    char path[256];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/manifest.sha256", f->out);
    char *text = (char *)bc_test_read_file(path, &len);
    size_t lines = 0, media = 0;
    bool have_audit = false, have_info = false;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char hex[BC_SHA256_HEX_LEN + 1];
        assert_true(strlen(line) > BC_SHA256_HEX_LEN + 2);
        assert_memory_equal(line + BC_SHA256_HEX_LEN, "  ", 2);
        const char *name = line + BC_SHA256_HEX_LEN + 2;
        snprintf(path, sizeof(path), "%s/%s", f->out, name);
        sha256_file_hex(path, hex);
        assert_memory_equal(line, hex, BC_SHA256_HEX_LEN);
        media += strncmp(name, "media/", 6) == 0;
        have_audit |= strcmp(name, "audit.jsonl") == 0;
        have_info |= strcmp(name, "export.json") == 0;
        lines++;
    }
    free(text);
    assert_int_equal(media, media_files);
    assert_true(have_audit);
    assert_true(have_info);
    assert_int_equal(lines, media_files + 2);
}

/* audit.jsonl: lines of the log, verbatim, about the refs; each ref has
 * its commit, a hold_placed and its export. */
static void assert_trail(const fixture *f, const char *const *refs, size_t count)
{
    char path[256];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/audit.jsonl", f->out);
    char *text = (char *)bc_test_read_file(path, &len);
    char *log = read_audit_log(f);
    int seen[MAX_RECS][3] = {{0}};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        assert_non_null(strstr(log, line)); /* verbatim: checkable against the log */
        cJSON *e = cJSON_Parse(line);
        assert_non_null(e);
        const char *subject = cJSON_GetObjectItemCaseSensitive(e, "subject")->valuestring;
        const char *action = cJSON_GetObjectItemCaseSensitive(e, "action")->valuestring;
        size_t k = 0;
        while (k < count && strcmp(refs[k], subject) != 0)
            k++;
        assert_true(k < count);
        seen[k][0] += strcmp(action, "commit") == 0;
        seen[k][1] += strcmp(action, "hold_placed") == 0;
        seen[k][2] += strcmp(action, "export") == 0;
        cJSON_Delete(e);
    }
    for (size_t k = 0; k < count; k++) {
        assert_int_equal(seen[k][0], 1);
        assert_true(seen[k][1] >= 1);
        assert_int_equal(seen[k][2], 1);
    }
    free(log);
    free(text);
}

static void assert_nothing_left(const fixture *f)
{
    assert_false(bc_test_exists(NULL, f->out));
    assert_false(bc_test_exists(NULL, f->partial));
}

static void assert_refused(fixture *f, const char *purpose, const char *case_ref,
                           const char *const *refs, size_t count)
{
    bc_export_request req = request(f, purpose, case_ref, refs, count);
    bc_error err = {{0}};
    int before[MAX_RECS];
    for (size_t i = 0; i < count; i++)
        before[i] = audited(f, refs[i], "export_refused");
    assert_int_equal(bc_export_authorize(&f->r, &req, &err), BC_ERR_DENIED);
    assert_int_equal(audited(f, refs[0], "export_refused"), before[0]); /* authorize: no audit */
    bc_status rc = bc_export_run(&f->r, f->st, f->ks, f->a, f->audit_dir, &req, NOW_MS, NULL, NULL,
                                 NULL, &err);
    assert_int_equal(rc, BC_ERR_DENIED);
    assert_true(strlen(err.text) > 0);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(audited(f, refs[i], "export_refused"), before[i] + 1);
        assert_int_equal(audited(f, refs[i], "export"), 0);
    }
    assert_nothing_left(f);
}

/* ---- tests ---- */

typedef struct progress_log {
    uint64_t last_done, total;
    int calls;
    bool monotonic;
} progress_log;

static void on_progress(uint64_t done, uint64_t total, const char *ref, void *userdata)
{
    (void)ref;
    progress_log *p = userdata;
    if (done < p->last_done || done > total)
        p->monotonic = false;
    p->last_done = done;
    p->total = total;
    p->calls++;
}

static void test_authorized_export_is_the_plaintext(void **state)
{
    fixture *f = *state;
    recording *rec = make_recording(f, "cam-001", "rec-1", 3 * SEGMENT + 123, NOW_MS - 2 * HOUR_MS);
    bc_hold h;
    place_hold(f, rec->ref, BC_HOLD_AANGIFTE, CASE, &h);
    const char *refs[] = {rec->ref};
    bc_export_request req = request(f, "aangifte", CASE, refs, 1);
    bc_error err = {{0}};
    assert_int_equal(bc_export_authorize(&f->r, &req, &err), BC_OK);

    progress_log p = {.monotonic = true};
    bc_export_result res = {0};
    bc_status rc = bc_export_run(&f->r, f->st, f->ks, f->a, f->audit_dir, &req, NOW_MS, on_progress,
                                 &p, &res, &err);
    if (rc != BC_OK)
        fail_msg("export: %s", err.text);
    assert_int_equal(res.recordings, 1);
    assert_int_equal(res.plaintext_bytes, rec->plain_len);
    assert_true(res.first_audit_seq > 0);
    assert_true(p.calls >= 4 && p.monotonic);
    assert_int_equal(p.last_done, rec->size);
    assert_int_equal(p.total, rec->size);

    assert_media(f, rec);
    assert_manifest(f, 1);
    assert_trail(f, refs, 1);
    assert_false(bc_test_exists(NULL, f->partial));
    assert_int_equal(audited(f, rec->ref, "export"), 1);
    assert_int_equal(audited(f, rec->ref, "export_refused"), 0);
    assert_int_equal(bc_audit_verify(f->audit_dir, NULL, &err), BC_OK);

    /* export.json names the purpose, case, actor, head and the recording */
    char path[256], hex[BC_SHA256_HEX_LEN + 1];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/export.json", f->out);
    char *text = (char *)bc_test_read_file(path, &len);
    cJSON *info = cJSON_Parse(text);
    free(text);
    assert_non_null(info);
    assert_string_equal(cJSON_GetObjectItem(info, "purpose")->valuestring, "aangifte");
    assert_string_equal(cJSON_GetObjectItem(info, "case_ref")->valuestring, CASE);
    assert_string_equal(cJSON_GetObjectItem(info, "actor")->valuestring, ACTOR);
    assert_int_equal((int64_t)cJSON_GetObjectItem(info, "exported_at")->valuedouble, NOW_MS);
    cJSON *head = cJSON_GetObjectItem(info, "audit_head");
    assert_int_equal((uint64_t)cJSON_GetObjectItem(head, "seq")->valuedouble, res.first_audit_seq);
    cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItem(info, "recordings"), 0);
    assert_string_equal(cJSON_GetObjectItem(r0, "ref")->valuestring, rec->ref);
    assert_string_equal(cJSON_GetObjectItem(r0, "sha256")->valuestring, rec->sha256);
    assert_string_equal(cJSON_GetObjectItem(r0, "key_id")->valuestring, f->key_id);
    assert_string_equal(cJSON_GetObjectItem(r0, "media")->valuestring, "media/cam-001_rec-1.bin");
    assert_int_equal((int64_t)cJSON_GetObjectItem(r0, "plaintext_size")->valuedouble,
                     rec->plain_len);
    snprintf(path, sizeof(path), "%s/media/cam-001_rec-1.bin", f->out);
    sha256_file_hex(path, hex);
    assert_string_equal(cJSON_GetObjectItem(r0, "plaintext_sha256")->valuestring, hex);
    cJSON_Delete(info);

    /* a second export into the same directory is refused, unchanged */
    assert_int_equal(bc_export_run(&f->r, f->st, f->ks, f->a, f->audit_dir, &req, NOW_MS, NULL,
                                   NULL, NULL, &err),
                     BC_ERR_EXISTS);
    assert_media(f, rec);
}

static void test_two_recordings_one_bundle(void **state)
{
    fixture *f = *state;
    recording *a = make_recording(f, "cam-001", "rec-a", 10, NOW_MS - 3 * HOUR_MS);
    recording *b = make_recording(f, "cam-002", "rec-b", 5 * SEGMENT, NOW_MS - 2 * HOUR_MS);
    bc_hold h;
    place_hold(f, a->ref, BC_HOLD_KLACHT, "K-7", &h);
    place_hold(f, b->ref, BC_HOLD_KLACHT, "K-7", &h);
    place_hold(f, b->ref, BC_HOLD_AANGIFTE, CASE, &h); /* another case: not what authorizes */
    const char *refs[] = {a->ref, b->ref};
    bc_export_request req = request(f, "klacht", "K-7", refs, 2);
    bc_export_result res = {0};
    bc_error err = {{0}};
    if (bc_export_run(&f->r, f->st, f->ks, f->a, f->audit_dir, &req, NOW_MS, NULL, NULL, &res,
                      &err) != BC_OK)
        fail_msg("export: %s", err.text);
    assert_int_equal(res.recordings, 2);
    assert_int_equal(res.plaintext_bytes, a->plain_len + b->plain_len);
    assert_media(f, a);
    assert_media(f, b);
    assert_manifest(f, 2);
    assert_trail(f, refs, 2);
}

static void test_no_hold_is_refused(void **state)
{
    fixture *f = *state;
    recording *rec = make_recording(f, "cam-001", "rec-1", 5000, NOW_MS - HOUR_MS);
    const char *refs[] = {rec->ref};
    assert_refused(f, "aangifte", CASE, refs, 1);
}

static void test_wrong_case_is_refused(void **state)
{
    fixture *f = *state;
    recording *rec = make_recording(f, "cam-001", "rec-1", 5000, NOW_MS - HOUR_MS);
    bc_hold h;
    place_hold(f, rec->ref, BC_HOLD_AANGIFTE, CASE, &h);
    const char *refs[] = {rec->ref};
    assert_refused(f, "aangifte", "PV-2026-0043", refs, 1);
    assert_refused(f, "aangifte", NULL, refs, 1);
}

static void test_wrong_purpose_is_refused(void **state)
{
    fixture *f = *state;
    recording *rec = make_recording(f, "cam-001", "rec-1", 5000, NOW_MS - HOUR_MS);
    bc_hold h;
    place_hold(f, rec->ref, BC_HOLD_AANGIFTE, CASE, &h);
    const char *refs[] = {rec->ref};
    assert_refused(f, "klacht", CASE, refs, 1);
    assert_refused(f, "inzage", CASE, refs, 1);
    assert_refused(f, "training", CASE, refs, 1);
    assert_refused(f, NULL, CASE, refs, 1);
}

static void test_released_hold_is_refused(void **state)
{
    fixture *f = *state;
    recording *rec = make_recording(f, "cam-001", "rec-1", 5000, NOW_MS - HOUR_MS);
    bc_hold h, released;
    bc_error err = {{0}};
    place_hold(f, rec->ref, BC_HOLD_AANGIFTE, CASE, &h);
    assert_int_equal(
        bc_catalog_hold_release(&f->r, h.id, ACTOR, "case closed", NOW_MS, &released, &err), BC_OK);
    const char *refs[] = {rec->ref};
    assert_refused(f, "aangifte", CASE, refs, 1);
}

static void test_one_unheld_recording_refuses_all(void **state)
{
    fixture *f = *state;
    recording *a = make_recording(f, "cam-001", "rec-a", 5000, NOW_MS - HOUR_MS);
    recording *b = make_recording(f, "cam-001", "rec-b", 5000, NOW_MS - HOUR_MS);
    bc_hold h;
    place_hold(f, a->ref, BC_HOLD_AANGIFTE, CASE, &h);
    const char *refs[] = {a->ref, b->ref};
    bc_export_request req = request(f, "aangifte", CASE, refs, 2);
    bc_error err = {{0}};
    assert_int_equal(bc_export_run(&f->r, f->st, f->ks, f->a, f->audit_dir, &req, NOW_MS, NULL,
                                   NULL, NULL, &err),
                     BC_ERR_DENIED);
    assert_non_null(strstr(err.text, b->ref)); /* names the recording */
    assert_int_equal(audited(f, a->ref, "export_refused"), 1);
    assert_int_equal(audited(f, b->ref, "export_refused"), 1);
    assert_int_equal(audited(f, a->ref, "export"), 0);
    assert_nothing_left(f);
}

static void test_purged_is_refused(void **state)
{
    fixture *f = *state;
    /* recorded 29 days ago, no hold: the purge takes it */
    recording *rec = make_recording(f, "cam-001", "rec-old", 5000, NOW_MS - 29 * BC_CATALOG_DAY_MS);
    bc_recording_meta purging[2];
    size_t count = 0;
    bc_error err = {{0}};
    assert_int_equal(bc_catalog_purge_begin(&f->r, NOW_MS, purging, 2, &count, &err), BC_OK);
    assert_int_equal(count, 1);
    uint64_t seq = 0;
    audit1(f, "vault", "purge", rec->ref, NULL, &seq);
    const char *refs[] = {rec->ref};
    assert_int_equal(bc_catalog_purge_audited(&f->r, refs, &seq, 1, &err), BC_OK);
    assert_int_equal(bc_store_delete(f->st, rec->sha256, NULL, &err), BC_OK);
    assert_int_equal(bc_catalog_purge_done(&f->r, refs, 1, NOW_MS, 400, &err), BC_OK);

    assert_refused(f, "aangifte", CASE, refs, 1);
    bc_export_request req = request(f, "aangifte", CASE, refs, 1);
    assert_int_equal(bc_export_authorize(&f->r, &req, &err), BC_ERR_DENIED);
    assert_non_null(strstr(err.text, "purged"));
}

static void test_unknown_recording_is_not_found(void **state)
{
    fixture *f = *state;
    const char *refs[] = {"cam-009/nothing"};
    bc_export_request req = request(f, "aangifte", CASE, refs, 1);
    bc_error err = {{0}};
    assert_int_equal(bc_export_run(&f->r, f->st, f->ks, f->a, f->audit_dir, &req, NOW_MS, NULL,
                                   NULL, NULL, &err),
                     BC_ERR_NOT_FOUND);
    assert_int_equal(audited(f, refs[0], "export_refused"), 1);
    assert_nothing_left(f);
}

static void test_bad_requests_are_invalid(void **state)
{
    fixture *f = *state;
    recording *rec = make_recording(f, "cam-001", "rec-1", 100, NOW_MS - HOUR_MS);
    bc_error err = {{0}};
    const char *bad[] = {"not a ref"};
    bc_export_request req = request(f, "aangifte", CASE, bad, 1);
    assert_int_equal(bc_export_authorize(&f->r, &req, &err), BC_ERR_INVAL);
    const char *twice[] = {rec->ref, rec->ref};
    req = request(f, "aangifte", CASE, twice, 2);
    assert_int_equal(bc_export_authorize(&f->r, &req, &err), BC_ERR_INVAL);
    req = request(f, "aangifte", CASE, twice, 0);
    assert_int_equal(bc_export_authorize(&f->r, &req, &err), BC_ERR_INVAL);
    req = request(f, "aangifte", CASE, twice, 1);
    req.actor = NULL;
    assert_int_equal(bc_export_run(&f->r, f->st, f->ks, f->a, f->audit_dir, &req, NOW_MS, NULL,
                                   NULL, NULL, &err),
                     BC_ERR_INVAL);
    assert_nothing_left(f);
}

/* Flips one byte of the stored object at offset from its end. */
static void damage_object(fixture *f, const recording *rec, uint64_t from_end)
{
    char path[512];
    bc_error err = {{0}};
    assert_int_equal(bc_store_path(f->st, rec->sha256, path, sizeof(path), NULL, 0, &err), BC_OK);
    assert_int_equal(chmod(path, 0600), 0);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t byte;
    off_t off = (off_t)(rec->size - from_end);
    assert_int_equal(pread(fd, &byte, 1, off), 1);
    byte ^= 0x5a;
    assert_int_equal(pwrite(fd, &byte, 1, off), 1);
    close(fd);
}

static void test_tampered_object_leaves_nothing(void **state)
{
    fixture *f = *state;
    /* the damage is in the last segment: earlier ones were already written */
    recording *a = make_recording(f, "cam-001", "rec-a", 2 * SEGMENT, NOW_MS - HOUR_MS);
    recording *b = make_recording(f, "cam-001", "rec-b", 6 * SEGMENT + 5, NOW_MS - HOUR_MS);
    bc_hold h;
    place_hold(f, a->ref, BC_HOLD_AANGIFTE, CASE, &h);
    place_hold(f, b->ref, BC_HOLD_AANGIFTE, CASE, &h);
    damage_object(f, b, 3);
    const char *refs[] = {a->ref, b->ref};
    bc_export_request req = request(f, "aangifte", CASE, refs, 2);
    bc_error err = {{0}};
    assert_int_equal(bc_export_authorize(&f->r, &req, &err), BC_OK); /* the policy allows it */
    assert_int_equal(bc_export_run(&f->r, f->st, f->ks, f->a, f->audit_dir, &req, NOW_MS, NULL,
                                   NULL, NULL, &err),
                     BC_ERR_TAMPERED);
    assert_nothing_left(f);
    assert_int_equal(audited(f, b->ref, "export"), 0);
    assert_int_equal(audited(f, a->ref, "export_failed"), 1); /* a's plaintext was made */
    assert_int_equal(audited(f, b->ref, "export_failed"), 1);
}

static void test_truncated_object_leaves_nothing(void **state)
{
    fixture *f = *state;
    recording *rec = make_recording(f, "cam-001", "rec-1", 4 * SEGMENT, NOW_MS - HOUR_MS);
    bc_hold h;
    place_hold(f, rec->ref, BC_HOLD_AANGIFTE, CASE, &h);
    char path[512];
    bc_error err = {{0}};
    assert_int_equal(bc_store_path(f->st, rec->sha256, path, sizeof(path), NULL, 0, &err), BC_OK);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(truncate(path, (off_t)(rec->size - SEGMENT)), 0);
    const char *refs[] = {rec->ref};
    bc_export_request req = request(f, "aangifte", CASE, refs, 1);
    bc_status rc = bc_export_run(&f->r, f->st, f->ks, f->a, f->audit_dir, &req, NOW_MS, NULL, NULL,
                                 NULL, &err);
    assert_true(rc == BC_ERR_TRUNCATED || rc == BC_ERR_TAMPERED);
    assert_nothing_left(f);
}

/* A valid recording under another's name: every segment authenticates,
 * but it is not the object the catalog committed. */
static void test_swapped_object_is_tampered(void **state)
{
    fixture *f = *state;
    recording *a = make_recording(f, "cam-001", "rec-a", 3000, NOW_MS - HOUR_MS);
    recording *b = make_recording(f, "cam-001", "rec-b", 3000, NOW_MS - HOUR_MS);
    bc_hold h;
    place_hold(f, a->ref, BC_HOLD_AANGIFTE, CASE, &h);
    char pa[512], pb[512];
    bc_error err = {{0}};
    assert_int_equal(bc_store_path(f->st, a->sha256, pa, sizeof(pa), NULL, 0, &err), BC_OK);
    assert_int_equal(bc_store_path(f->st, b->sha256, pb, sizeof(pb), NULL, 0, &err), BC_OK);
    size_t len = 0;
    uint8_t *bytes = bc_test_read_file(pb, &len);
    assert_int_equal(chmod(pa, 0600), 0);
    bc_test_write_bytes(pa, bytes, len);
    free(bytes);
    const char *refs[] = {a->ref};
    bc_export_request req = request(f, "aangifte", CASE, refs, 1);
    assert_int_equal(bc_export_run(&f->r, f->st, f->ks, f->a, f->audit_dir, &req, NOW_MS, NULL,
                                   NULL, NULL, &err),
                     BC_ERR_TAMPERED);
    assert_nothing_left(f);
}

/* Another operator releases the hold while the bytes are being decrypted. */
typedef struct release_during {
    fixture *f;
    const char *hold_id;
    bool released;
} release_during;

static void release_on_progress(uint64_t done, uint64_t total, const char *ref, void *userdata)
{
    (void)done;
    (void)total;
    (void)ref;
    release_during *rd = userdata;
    if (rd->released)
        return;
    bc_hold out;
    bc_error err = {{0}};
    assert_int_equal(
        bc_catalog_hold_release(&rd->f->r, rd->hold_id, "operator:bob", NULL, NOW_MS, &out, &err),
        BC_OK);
    rd->released = true;
}

static void test_hold_released_during_export_is_refused(void **state)
{
    fixture *f = *state;
    recording *rec = make_recording(f, "cam-001", "rec-1", 3 * SEGMENT, NOW_MS - HOUR_MS);
    bc_hold h;
    place_hold(f, rec->ref, BC_HOLD_AANGIFTE, CASE, &h);
    const char *refs[] = {rec->ref};
    bc_export_request req = request(f, "aangifte", CASE, refs, 1);
    release_during rd = {.f = f, .hold_id = h.id};
    bc_error err = {{0}};
    assert_int_equal(bc_export_run(&f->r, f->st, f->ks, f->a, f->audit_dir, &req, NOW_MS,
                                   release_on_progress, &rd, NULL, &err),
                     BC_ERR_DENIED);
    assert_true(rd.released);
    assert_int_equal(audited(f, rec->ref, "export_refused"), 1);
    assert_int_equal(audited(f, rec->ref, "export"), 0);
    assert_nothing_left(f);
}

static bool count_match(const bc_request_match *m, void *userdata)
{
    (void)m;
    (*(int *)userdata)++;
    return true;
}

static void test_inzage_needs_the_open_request(void **state)
{
    fixture *f = *state;
    recording *rec = make_recording(f, "cam-001", "rec-1", 2000, NOW_MS - 2 * HOUR_MS);
    bc_access_request q = {0};
    snprintf(q.requester, sizeof(q.requester), "J. Jansen");
    q.window_from = NOW_MS - 3 * HOUR_MS;
    q.window_to = NOW_MS - HOUR_MS;
    q.registered_at = NOW_MS;
    snprintf(q.registered_by, sizeof(q.registered_by), ACTOR);
    q.deadline = bc_catalog_add_months(NOW_MS, 1);
    int matches = 0;
    bc_error err = {{0}};
    if (bc_catalog_request_register(&f->r, &q, NOW_MS, count_match, &matches, &err) != BC_OK)
        fail_msg("request: %s", err.text);
    assert_int_equal(matches, 1);
    audit1(f, ACTOR, "hold_placed", rec->ref, NULL, NULL);

    const char *refs[] = {rec->ref};
    bc_export_request req = request(f, "inzage", q.id, refs, 1);
    assert_int_equal(bc_export_authorize(&f->r, &req, &err), BC_OK);
    assert_refused(f, "aangifte", q.id, refs, 1); /* the inzage hold is for an inzage only */
    assert_int_equal(
        bc_catalog_request_close(&f->r, q.id, "shown", ACTOR, NOW_MS, NULL, NULL, &err), BC_OK);
    assert_refused(f, "inzage", q.id, refs, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_authorized_export_is_the_plaintext, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_recordings_one_bundle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_hold_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_case_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_purpose_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_released_hold_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_unheld_recording_refuses_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purged_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_recording_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests_are_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_object_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_object_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swapped_object_is_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inzage_needs_the_open_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_released_during_export_is_refused, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
