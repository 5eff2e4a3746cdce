/*
 * audit.c - the hash-chained, append-only audit log (format: audit.h).
 *
 * Invariants kept here:
 *   - a line is written only by build_line(): cJSON prints the object in a
 *     fixed member order and escapes every control character, so an entry
 *     is exactly one line; its hash covers the printed bytes, and every
 *     check recomputes it from the raw bytes read back (never from a
 *     re-serialisation, which could normalise an edit away);
 *   - only the newest month file grows: an entry goes to the file of its ts
 *     month, or to the newest file when the clock went back, so the names
 *     sort in seq order and expiry can remove a prefix of whole files;
 *   - every change (append, repair, expiry) runs under flock(DIR/lock) and
 *     starts with sync_tail(), which re-reads DIR/head and checks the end of
 *     the newest file against it. A process that crashed mid-append is thus
 *     cleaned up by whichever process appends next, not only by an open:
 *       torn last line (no '\n')            -> cut off (never acknowledged)
 *       whole entries beyond the head       -> adopted if they chain on from
 *                                              it (crash between the fsync of
 *                                              the file and the head write)
 *       anything else                       -> BC_ERR_TAMPERED, no append;
 *   - a batch costs one write(2), one fsync of the file (plus one of the
 *     directory for a new file) and one durable head write, whatever its
 *     size: the vault's purge writes hundreds of entries per batch;
 *   - DIR/anchor is written before any expired file is unlinked; a file
 *     whose name sorts at or before the anchor's is a leftover of an
 *     interrupted expiry and is ignored by readers and removed by the next
 *     expiry.
 *
 * Readers (verify, scan) go through a line reader with a fixed buffer, so
 * their memory does not grow with the log. verify takes a shared lock when
 * it can (a read-only copy of the log has no usable lock file), so it never
 * sees an append half done.
 */
#include "vault/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/file.h"
#include "common/log.h"
#include "proto/encoding.h"

#define HEAD_NAME "head"
#define ANCHOR_NAME "anchor"
#define LOCK_NAME "lock"
#define NAME_LEN 17 /* "audit-YYYY-MM.log" */
#define HASH_MEMBER ",\"hash\":\""
#define HASH_MEMBER_LEN 9
#define HASH_TAIL_LEN (HASH_MEMBER_LEN + BC_AUDIT_HASH_HEX + 2) /* ,"hash":"<hex>"} */
#define REF_MAX 1024                                            /* bytes of head or anchor */
#define CHUNK_SIZE 65536
#define MS_PER_DAY 86400000LL
#define FILE_MODE 0600
#define DIR_MODE 0700
#define EXACT_DOUBLE_MAX 9007199254740992.0 /* 2^53: integers a double holds exactly */
#define EXPIRE_ACTOR "vault"
#define EXPIRE_ACTION "audit_expired"
#define EXPIRE_SUBJECT "audit"

static const char ZERO_HASH[BC_AUDIT_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

struct bc_audit {
    char dir[PATH_MAX];
    int lock_fd; /* DIR/lock, ours alone: flock is per open file description */
};

/* seq and hash of one entry: what DIR/head and DIR/anchor record. */
typedef struct audit_ref {
    uint64_t seq;
    char hash[BC_AUDIT_HASH_HEX + 1];
} audit_ref;

typedef struct audit_anchor {
    bool present;
    audit_ref ref;
    char file[NAME_LEN + 1]; /* the newest file removed */
} audit_anchor;

typedef struct log_files {
    char (*names)[NAME_LEN + 1]; /* sorted, so in seq order */
    size_t count;
} log_files;

/* What check_line() takes from a line that is a well-formed entry. */
typedef struct entry_info {
    uint64_t seq;
    int64_t ts;
    char prev[BC_AUDIT_HASH_HEX + 1];
    char hash[BC_AUDIT_HASH_HEX + 1];
} entry_info;

/* ---- names and paths ---- */

static bc_status join(const char *dir, const char *name, char *out, size_t size, bc_error *err)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return bc_fail(err, BC_ERR_TOO_BIG, "audit path '%s/%s' is too long", dir, name);
    return BC_OK;
}

static bool is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

static bool is_log_name(const char *name)
{
    if (strlen(name) != NAME_LEN || strncmp(name, "audit-", 6) != 0 ||
        strcmp(name + 13, ".log") != 0)
        return false;
    if (!is_digits(name + 6, 4) || name[10] != '-' || !is_digits(name + 11, 2))
        return false;
    int month = (name[11] - '0') * 10 + (name[12] - '0');
    return month >= 1 && month <= 12;
}

static bool is_hex64(const char *s)
{
    for (size_t i = 0; i < BC_AUDIT_HASH_HEX; i++) {
        bool digit = s[i] >= '0' && s[i] <= '9';
        bool letter = s[i] >= 'a' && s[i] <= 'f';
        if (!digit && !letter)
            return false;
    }
    return s[BC_AUDIT_HASH_HEX] == '\0';
}

/* The name of the month file for a time (UTC). */
static bc_status month_name(int64_t ms, char out[NAME_LEN + 1], bc_error *err)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999)
        return bc_fail(err, BC_ERR_INVAL, "audit time %" PRId64 " ms is out of range", ms);
    char buf[64];
    snprintf(buf, sizeof(buf), "audit-%04d-%02d.log", tm.tm_year + 1900, tm.tm_mon + 1);
    memcpy(out, buf, NAME_LEN + 1);
    return BC_OK;
}

static int compare_names(const void *x, const void *y)
{
    return strcmp(x, y);
}

/* The month files in dir, sorted; with anchor, only those after its file
 * (the others are leftovers of an interrupted expiry). */
static bc_status list_files(const char *dir, const audit_anchor *anchor, log_files *out,
                            bc_error *err)
{
    out->names = NULL;
    out->count = 0;
    bc_file_dir it;
    bc_status rc = bc_file_dir_open(&it, dir, err);
    if (rc != BC_OK)
        return BC_ERR_IO; /* also when it is missing, as audit.h says */
    size_t cap = 0;
    const char *name = NULL;
    while ((rc = bc_file_dir_next(&it, &name, err)) == BC_OK && name != NULL) {
        if (!is_log_name(name))
            continue;
        if (anchor != NULL && anchor->present && strcmp(name, anchor->file) <= 0)
            continue;
        if (out->count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            void *p = realloc(out->names, ncap * sizeof(*out->names));
            if (p == NULL) {
                rc = bc_fail(err, BC_ERR_NOMEM, "no memory to list the audit directory");
                break;
            }
            out->names = p;
            cap = ncap;
        }
        memcpy(out->names[out->count++], name, NAME_LEN + 1);
    }
    bc_file_dir_close(&it);
    if (rc != BC_OK) {
        free(out->names);
        out->names = NULL;
        out->count = 0;
        return rc;
    }
    if (out->count > 1)
        qsort(out->names, out->count, sizeof(*out->names), compare_names);
    return BC_OK;
}

/* ---- head and anchor ---- */

/* An integer member in 0..2^53 (what a JSON number holds exactly). */
static bool get_u64(const cJSON *obj, const char *name, uint64_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0) || it->valuedouble > EXACT_DOUBLE_MAX)
        return false;
    uint64_t v = (uint64_t)it->valuedouble;
    if ((double)v != it->valuedouble)
        return false;
    *out = v;
    return true;
}

/* Reads DIR/head or DIR/anchor (file != NULL: the anchor, with its file).
 * *present is false when it does not exist. */
static bc_status read_ref(const char *dir, const char *name, audit_ref *ref, bool *present,
                          char *file, bc_error *err)
{
    char path[PATH_MAX];
    char *text = NULL;
    size_t len = 0;
    cJSON *json = NULL;
    *present = false;
    bc_status rc = join(dir, name, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    rc = bc_file_read_all(path, REF_MAX, &text, &len, err);
    if (rc == BC_ERR_NOT_FOUND) {
        bc_error_clear(err);
        return BC_OK;
    }
    if (rc == BC_ERR_TOO_BIG)
        return bc_fail(err, BC_ERR_TAMPERED, "'%s' is damaged: over %d bytes", path, REF_MAX);
    if (rc != BC_OK)
        return rc;
    json = cJSON_ParseWithLength(text, len);
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(json, "hash");
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(json, "file");
    bool ok = cJSON_IsObject(json) && get_u64(json, "seq", &ref->seq) && cJSON_IsString(hash) &&
              is_hex64(hash->valuestring);
    if (ok && file != NULL)
        ok = cJSON_IsString(fl) && is_log_name(fl->valuestring);
    if (!ok) {
        rc = bc_fail(err, BC_ERR_TAMPERED, "'%s' is damaged: not {\"seq\":N,\"hash\":\"<hex>\"%s}",
                     path, file != NULL ? ",\"file\":\"audit-YYYY-MM.log\",..." : "");
        goto cleanup;
    }
    memcpy(ref->hash, hash->valuestring, BC_AUDIT_HASH_HEX + 1);
    if (file != NULL)
        memcpy(file, fl->valuestring, NAME_LEN + 1);
    *present = true;

cleanup:
    cJSON_Delete(json);
    free(text);
    return rc;
}

static bc_status read_anchor(const char *dir, audit_anchor *anchor, bc_error *err)
{
    memset(anchor, 0, sizeof(*anchor));
    return read_ref(dir, ANCHOR_NAME, &anchor->ref, &anchor->present, anchor->file, err);
}

/* Where the chain starts: the anchor, or seq 0 with 64 zeros. */
static audit_ref chain_base(const audit_anchor *anchor)
{
    audit_ref base = {0};
    if (anchor->present)
        return anchor->ref;
    memcpy(base.hash, ZERO_HASH, sizeof(base.hash));
    return base;
}

/* Writes DIR/head, or DIR/anchor when file is not NULL, durably. */
static bc_status write_ref(const char *dir, const char *name, const audit_ref *ref,
                           const char *file, int64_t removed_at, bc_error *err)
{
    char path[PATH_MAX];
    char num[32];
    char *text = NULL;
    bc_status rc = join(dir, name, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    cJSON *json = cJSON_CreateObject();
    snprintf(num, sizeof(num), "%" PRIu64, ref->seq);
    bool ok = json != NULL && cJSON_AddRawToObject(json, "seq", num) != NULL &&
              cJSON_AddStringToObject(json, "hash", ref->hash) != NULL;
    if (ok && file != NULL) {
        snprintf(num, sizeof(num), "%" PRId64, removed_at);
        ok = cJSON_AddStringToObject(json, "file", file) != NULL &&
             cJSON_AddRawToObject(json, "removed_at", num) != NULL;
    }
    if (ok)
        text = cJSON_PrintUnformatted(json);
    if (text == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory to write '%s'", path);
        goto cleanup;
    }
    rc = bc_file_write_durable(path, text, strlen(text), FILE_MODE, err);

cleanup:
    cJSON_free(text);
    cJSON_Delete(json);
    return rc;
}

/* ---- entries: building and checking lines ---- */

/* Lowercase hex SHA-256 of a followed by b. */
static bc_status sha256_hex(const void *a, size_t alen, const void *b, size_t blen,
                            char hex[BC_AUDIT_HASH_HEX + 1], bc_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, a, alen) == 1 && EVP_DigestUpdate(ctx, b, blen) == 1 &&
              EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == BC_AUDIT_HASH_HEX / 2;
    EVP_MD_CTX_free(ctx);
    if (!ok || bc_hex_encode(md, mdlen, hex, BC_AUDIT_HASH_HEX + 1) != BC_OK)
        return bc_fail(err, BC_ERR_CRYPTO, "SHA-256 of an audit entry failed");
    return BC_OK;
}

/* Parses a line (without '\n') as an entry and checks its hash against the
 * raw bytes. BC_ERR_PARSE: not an entry; BC_ERR_TAMPERED: the hash does not
 * match (e->seq is still filled when it could be read). err gets the bare
 * reason; callers add the file and the line. */
static bc_status check_line(const char *line, size_t len, entry_info *e, bc_error *err)
{
    memset(e, 0, sizeof(*e));
    if (len <= HASH_TAIL_LEN || line[0] != '{' ||
        memcmp(line + len - HASH_TAIL_LEN, HASH_MEMBER, HASH_MEMBER_LEN) != 0 ||
        memcmp(line + len - 2, "\"}", 2) != 0)
        return bc_fail(err, BC_ERR_PARSE, "it does not end with the \"hash\" member");
    const char *tail = line + len - HASH_TAIL_LEN + HASH_MEMBER_LEN;
    memcpy(e->hash, tail, BC_AUDIT_HASH_HEX);
    e->hash[BC_AUDIT_HASH_HEX] = '\0';
    if (!is_hex64(e->hash))
        return bc_fail(err, BC_ERR_PARSE, "its hash is not 64 lowercase hex digits");

    bc_status rc = BC_OK;
    cJSON *json = cJSON_ParseWithLength(line, len);
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(json, "prev");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(json, "hash");
    uint64_t ts = 0;
    if (!cJSON_IsObject(json)) {
        rc = bc_fail(err, BC_ERR_PARSE, "it is not a JSON object");
        goto cleanup;
    }
    if (!get_u64(json, "seq", &e->seq) || e->seq == 0 || !get_u64(json, "ts", &ts) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(json, "actor")) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(json, "action")) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(json, "subject")) ||
        !cJSON_IsString(prev) || !is_hex64(prev->valuestring) || !cJSON_IsString(hash) ||
        strcmp(hash->valuestring, e->hash) != 0) {
        rc = bc_fail(err, BC_ERR_PARSE,
                     "it lacks seq, ts, actor, action, subject, prev or hash, or one has the "
                     "wrong type");
        goto cleanup;
    }
    e->ts = (int64_t)ts;
    memcpy(e->prev, prev->valuestring, BC_AUDIT_HASH_HEX + 1);

    char computed[BC_AUDIT_HASH_HEX + 1];
    rc = sha256_hex(line, len - HASH_TAIL_LEN, "}", 1, computed, err);
    if (rc != BC_OK)
        goto cleanup;
    if (memcmp(computed, e->hash, BC_AUDIT_HASH_HEX) != 0)
        rc = bc_fail(err, BC_ERR_TAMPERED, "its hash does not match its bytes");

cleanup:
    cJSON_Delete(json);
    return rc;
}

static bool is_reserved(const char *name)
{
    return strcmp(name, "seq") == 0 || strcmp(name, "ts") == 0 || strcmp(name, "prev") == 0 ||
           strcmp(name, "hash") == 0;
}

static bool is_core(const char *name)
{
    return strcmp(name, "actor") == 0 || strcmp(name, "action") == 0 ||
           strcmp(name, "subject") == 0;
}

/* A detail value: string, integer or boolean. */
static bool is_scalar_detail(const cJSON *v)
{
    if (cJSON_IsString(v) || cJSON_IsBool(v))
        return true;
    if (!cJSON_IsNumber(v) || v->valuedouble > EXACT_DOUBLE_MAX ||
        v->valuedouble < -EXACT_DOUBLE_MAX)
        return false;
    return (double)(int64_t)v->valuedouble == v->valuedouble;
}

static bool is_detail(const cJSON *v)
{
    if (!cJSON_IsArray(v))
        return is_scalar_detail(v);
    for (const cJSON *it = v->child; it != NULL; it = it->next) {
        if (!is_scalar_detail(it))
            return false;
    }
    return true;
}

/* Checks one caller entry before anything is locked or written. */
static bc_status validate_entry(const cJSON *entry, size_t index, bc_error *err)
{
    if (!cJSON_IsObject(entry))
        return bc_fail(err, BC_ERR_TYPE, "audit entry %zu is not a JSON object", index);
    const char *core[] = {"actor", "action", "subject"};
    for (size_t i = 0; i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(entry, core[i]);
        if (v == NULL)
            return bc_fail(err, BC_ERR_MISSING, "audit entry %zu has no \"%s\"", index, core[i]);
        if (!cJSON_IsString(v) || (i < 2 && v->valuestring[0] == '\0'))
            return bc_fail(err, BC_ERR_TYPE, "audit entry %zu: \"%s\" is not a%s string", index,
                           core[i], i < 2 ? " non-empty" : "");
    }
    for (const cJSON *m = entry->child; m != NULL; m = m->next) {
        if (m->string == NULL || is_reserved(m->string))
            return bc_fail(err, BC_ERR_INVAL,
                           "audit entry %zu: member \"%s\" is reserved for the log itself", index,
                           m->string != NULL ? m->string : "");
        for (const cJSON *o = entry->child; o != m; o = o->next) {
            if (strcmp(o->string, m->string) == 0)
                return bc_fail(err, BC_ERR_INVAL, "audit entry %zu: member \"%s\" appears twice",
                               index, m->string);
        }
        if (!is_core(m->string) && !is_detail(m))
            return bc_fail(err, BC_ERR_TYPE,
                           "audit entry %zu: detail \"%s\" is not a string, integer, boolean or "
                           "array of those",
                           index, m->string);
    }
    return BC_OK;
}

/* A growing byte buffer for a batch of lines. */
typedef struct batch_buf {
    char *data;
    size_t len, cap;
} batch_buf;

static bool buf_reserve(batch_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return true;
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap - b->len < more)
        ncap *= 2;
    char *p = realloc(b->data, ncap);
    if (p == NULL)
        return false;
    b->data = p;
    b->cap = ncap;
    return true;
}

/* Prints one entry as its line (with '\n') onto b, and its hash into hash. */
static bc_status build_line(const cJSON *entry, uint64_t seq, int64_t ts, const char *prev,
                            batch_buf *b, char hash[BC_AUDIT_HASH_HEX + 1], bc_error *err)
{
    char num[32];
    char *text = NULL;
    bc_status rc = BC_ERR_NOMEM;
    cJSON *obj = cJSON_CreateObject();
    snprintf(num, sizeof(num), "%" PRIu64, seq);
    bool ok = obj != NULL && cJSON_AddRawToObject(obj, "seq", num) != NULL;
    snprintf(num, sizeof(num), "%" PRId64, ts);
    ok = ok && cJSON_AddRawToObject(obj, "ts", num) != NULL;
    const char *core[] = {"actor", "action", "subject"};
    for (size_t i = 0; ok && i < 3; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(entry, core[i]);
        ok = cJSON_AddStringToObject(obj, core[i], v->valuestring) != NULL;
    }
    for (const cJSON *m = entry->child; ok && m != NULL; m = m->next) {
        if (is_core(m->string))
            continue;
        cJSON *copy = cJSON_Duplicate(m, true);
        ok = copy != NULL && cJSON_AddItemToObject(obj, m->string, copy); /* takes copy */
        if (!ok)
            cJSON_Delete(copy);
    }
    ok = ok && cJSON_AddStringToObject(obj, "prev", prev) != NULL;
    if (ok)
        text = cJSON_PrintUnformatted(obj);
    if (text == NULL) {
        bc_fail(err, rc, "no memory to print audit entry %" PRIu64, seq);
        goto cleanup;
    }
    /* text is {...,"prev":"<hex>"}: hash it, then splice the hash in before
     * its closing brace. */
    size_t tlen = strlen(text);
    size_t line_len = tlen - 1 + HASH_TAIL_LEN + 1;
    if (line_len > BC_AUDIT_LINE_MAX) {
        rc = bc_fail(err, BC_ERR_TOO_BIG,
                     "audit entry %" PRIu64 " would be %zu bytes, over the limit of %d", seq,
                     line_len, BC_AUDIT_LINE_MAX);
        goto cleanup;
    }
    rc = sha256_hex(text, tlen, "", 0, hash, err);
    if (rc != BC_OK)
        goto cleanup;
    if (!buf_reserve(b, line_len)) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory for a batch of audit entries");
        goto cleanup;
    }
    char *out = b->data + b->len;
    memcpy(out, text, tlen - 1);
    out += tlen - 1;
    memcpy(out, HASH_MEMBER, HASH_MEMBER_LEN);
    out += HASH_MEMBER_LEN;
    memcpy(out, hash, BC_AUDIT_HASH_HEX);
    out += BC_AUDIT_HASH_HEX;
    memcpy(out, "\"}\n", 3);
    b->len += line_len;

cleanup:
    cJSON_free(text);
    cJSON_Delete(obj);
    return rc;
}

/* ---- reading files ---- */

typedef enum read_result {
    READ_LINE,     /* a complete line */
    READ_EOF,      /* nothing more */
    READ_TORN,     /* bytes after the last '\n' */
    READ_TOO_LONG, /* a line over BC_AUDIT_LINE_MAX (its start is in line) */
    READ_ERROR     /* read(2) failed, errno set */
} read_result;

/* Line by line through fixed buffers: memory stays the same for any file. */
typedef struct line_reader {
    int fd;
    size_t pos, end; /* unread bytes: chunk[pos..end) */
    bool eof;
    uint64_t lineno; /* of the line last returned, from 1 */
    size_t len;      /* its length without '\n' */
    char chunk[CHUNK_SIZE];
    char line[BC_AUDIT_LINE_MAX + 1];
} line_reader;

static void reader_reset(line_reader *r, int fd)
{
    r->fd = fd;
    r->pos = r->end = 0;
    r->eof = false;
    r->lineno = 0;
    r->len = 0;
}

/* Opens dir/name (its path into path[size]) and resets r on it; the
 * caller closes r->fd. BC_ERR_IO when it cannot be opened (errno kept:
 * ENOENT when it is gone), BC_ERR_TOO_BIG for a path over size. */
static bc_status reader_open(line_reader *r, const char *dir, const char *name, char *path,
                             size_t size, bc_error *err)
{
    bc_status rc = join(dir, name, path, size, err);
    if (rc != BC_OK)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int saved = errno;
        bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", path, strerror(saved));
        errno = saved;
        return BC_ERR_IO;
    }
    reader_reset(r, fd);
    return BC_OK;
}

static read_result reader_next(line_reader *r)
{
    size_t len = 0;
    bool too_long = false;
    for (;;) {
        if (r->pos == r->end) {
            if (r->eof)
                break;
            ssize_t n = read(r->fd, r->chunk, sizeof(r->chunk));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return READ_ERROR;
            if (n == 0) {
                r->eof = true;
                break;
            }
            r->pos = 0;
            r->end = (size_t)n;
        }
        const char *start = r->chunk + r->pos;
        const char *nl = memchr(start, '\n', r->end - r->pos);
        size_t take = nl != NULL ? (size_t)(nl - start) : r->end - r->pos;
        /* The line and its '\n' must fit in BC_AUDIT_LINE_MAX. */
        if (!too_long && len + take + 1 <= BC_AUDIT_LINE_MAX) {
            memcpy(r->line + len, start, take);
            len += take;
        } else {
            too_long = true;
        }
        r->pos += take + (nl != NULL);
        if (nl != NULL) {
            r->lineno++;
            r->len = len;
            r->line[len] = '\0';
            return too_long ? READ_TOO_LONG : READ_LINE;
        }
    }
    if (len == 0 && !too_long)
        return READ_EOF;
    r->lineno++;
    r->len = len;
    r->line[len] = '\0';
    return READ_TORN;
}

static bc_status pread_all(int fd, void *buf, size_t len, off_t off, const char *path,
                           bc_error *err)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return bc_fail(err, BC_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
        if (n == 0)
            return bc_fail(err, BC_ERR_IO, "'%s' shrank while being read", path);
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return BC_OK;
}

/* The offset just after the last '\n' in the first size bytes (0: none). */
static bc_status end_of_last_line(int fd, off_t size, const char *path, off_t *out, bc_error *err)
{
    char buf[4096];
    off_t end = size;
    while (end > 0) {
        size_t n = end > (off_t)sizeof(buf) ? sizeof(buf) : (size_t)end;
        bc_status rc = pread_all(fd, buf, n, end - (off_t)n, path, err);
        if (rc != BC_OK)
            return rc;
        for (size_t i = n; i-- > 0;) {
            if (buf[i] == '\n') {
                *out = end - (off_t)n + (off_t)i + 1;
                return BC_OK;
            }
        }
        end -= (off_t)n;
    }
    *out = 0;
    return BC_OK;
}

/* Reads the last line of a file of size bytes that ends with '\n' into
 * buf (BC_AUDIT_LINE_MAX + 2 bytes); *line points into buf. */
static bc_status read_last_line(int fd, off_t size, const char *path, char *buf, const char **line,
                                size_t *len, bc_error *err)
{
    size_t window = size > BC_AUDIT_LINE_MAX + 1 ? BC_AUDIT_LINE_MAX + 1 : (size_t)size;
    bc_status rc = pread_all(fd, buf, window, size - (off_t)window, path, err);
    if (rc != BC_OK)
        return rc;
    buf[window] = '\0';
    size_t start = 0;
    bool found = false;
    for (size_t i = window - 1; i-- > 0;) {
        if (buf[i] == '\n') {
            start = i + 1;
            found = true;
            break;
        }
    }
    if (!found && (off_t)window < size)
        return bc_fail(err, BC_ERR_TAMPERED, "the last line of '%s' is over %d bytes", path,
                       BC_AUDIT_LINE_MAX);
    *line = buf + start;
    *len = window - 1 - start;
    return BC_OK;
}

/* ---- the end of the log against its head (under the lock) ---- */

/* Checks that the entries of path chain on from head up to its last entry,
 * last (an append that crashed after its fsync and before its head write). */
static bc_status can_adopt(const char *path, const audit_ref *head, const entry_info *last,
                           bool *ok, bc_error *err)
{
    *ok = false;
    line_reader *r = malloc(sizeof(*r));
    if (r == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory to read '%s'", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        free(r);
        return bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    }
    reader_reset(r, fd);
    bc_status rc = BC_OK;
    bool found = false;
    entry_info cur = {0};
    for (;;) {
        read_result res = reader_next(r);
        if (res == READ_EOF)
            break;
        if (res == READ_ERROR) {
            rc = bc_fail(err, BC_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
            goto cleanup;
        }
        entry_info e;
        bc_error why;
        if (res != READ_LINE || check_line(r->line, r->len, &e, &why) != BC_OK)
            goto cleanup; /* not adoptable; the caller reports the mismatch */
        if (!found) {
            found = (e.seq == head->seq && strcmp(e.hash, head->hash) == 0) ||
                    (e.seq == head->seq + 1 && strcmp(e.prev, head->hash) == 0);
            cur = e;
            continue;
        }
        if (e.seq != cur.seq + 1 || strcmp(e.prev, cur.hash) != 0)
            goto cleanup;
        cur = e;
    }
    *ok = found && cur.seq == last->seq && strcmp(cur.hash, last->hash) == 0;

cleanup:
    close(fd);
    free(r);
    return rc;
}

/* Cuts a final line without '\n' off the file at path (it was never
 * acknowledged: the head is written only after the fsync). *size gets the
 * size after the cut. */
static bc_status cut_torn_line(int fd, const char *path, off_t *size, bc_error *err)
{
    char last = '\n';
    bc_status rc = pread_all(fd, &last, 1, *size - 1, path, err);
    if (rc != BC_OK || last == '\n')
        return rc;
    off_t keep = 0;
    rc = end_of_last_line(fd, *size, path, &keep, err);
    if (rc != BC_OK)
        return rc;
    if (ftruncate(fd, keep) != 0 || fsync(fd) != 0)
        return bc_fail(err, BC_ERR_IO, "cannot cut the torn last line off '%s': %s", path,
                       strerror(errno));
    log_warnx("audit | torn_line_cut | file=%s bytes=%jd", path, (intmax_t)(*size - keep));
    *size = keep;
    return BC_OK;
}

/* The last entry of the log: of the newest file that holds one, after a
 * torn line was cut off. *found is false when no file holds an entry;
 * where (PATH_MAX bytes) gets its file's path. */
static bc_status last_entry(const char *dir, const log_files *files, entry_info *last, bool *found,
                            char *where, bc_error *err)
{
    *found = false;
    char *buf = malloc(BC_AUDIT_LINE_MAX + 2);
    if (buf == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory to read the audit log's tail");
    bc_status rc = BC_OK;
    for (size_t i = files->count; i-- > 0 && !*found;) {
        rc = join(dir, files->names[i], where, PATH_MAX, err);
        if (rc != BC_OK)
            break;
        int fd = open(where, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            rc = bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", where, strerror(errno));
            break;
        }
        struct stat st;
        const char *line = NULL;
        size_t len = 0;
        off_t size = 0;
        if (fstat(fd, &st) == 0)
            size = st.st_size;
        else
            rc = bc_fail(err, BC_ERR_IO, "cannot stat '%s': %s", where, strerror(errno));
        if (rc == BC_OK && size > 0)
            rc = cut_torn_line(fd, where, &size, err);
        if (rc == BC_OK && size > 0)
            rc = read_last_line(fd, size, where, buf, &line, &len, err);
        close(fd);
        if (rc != BC_OK)
            break;
        if (size == 0)
            continue; /* a file made by a batch that did not complete */
        bc_error why;
        if (check_line(line, len, last, &why) != BC_OK) {
            rc = bc_fail(err, BC_ERR_TAMPERED, "the last line of '%s' is damaged (%s): run verify",
                         where, why.text);
            break;
        }
        *found = true;
    }
    free(buf);
    return rc;
}

/* Brings the log into a state an append may follow (see the top of the
 * file); *head gets the head, newest the newest file's name ("" if none). */
static bc_status sync_tail(bc_audit *a, audit_ref *head, char newest[NAME_LEN + 1],
                           audit_anchor *anchor, bc_error *err)
{
    log_files files = {0};
    bool head_present = false;
    bool found = false;
    entry_info last;
    char where[PATH_MAX];
    newest[0] = '\0';
    bc_status rc = read_anchor(a->dir, anchor, err);
    if (rc == BC_OK)
        rc = read_ref(a->dir, HEAD_NAME, head, &head_present, NULL, err);
    if (rc == BC_OK)
        rc = list_files(a->dir, anchor, &files, err);
    if (rc == BC_OK)
        rc = last_entry(a->dir, &files, &last, &found, where, err);
    if (rc != BC_OK)
        goto cleanup;
    if (!head_present)
        *head = chain_base(anchor);
    if (files.count > 0)
        memcpy(newest, files.names[files.count - 1], NAME_LEN + 1);
    if (!found) {
        audit_ref base = chain_base(anchor);
        if (head->seq != base.seq || strcmp(head->hash, base.hash) != 0)
            rc = bc_fail(err, BC_ERR_TAMPERED,
                         "the audit log in '%s' holds no entry after %" PRIu64
                         " but its head says %" PRIu64 ": run verify",
                         a->dir, base.seq, head->seq);
        goto cleanup;
    }
    if (last.seq == head->seq && strcmp(last.hash, head->hash) == 0)
        goto cleanup;
    bool adopt = false;
    if (last.seq > head->seq)
        rc = can_adopt(where, head, &last, &adopt, err);
    if (rc != BC_OK)
        goto cleanup;
    if (!adopt) {
        rc = bc_fail(err, BC_ERR_TAMPERED,
                     "the audit log ends at entry %" PRIu64 " in '%s' but its head says %" PRIu64
                     "%s: run verify",
                     last.seq, where, head->seq, last.seq == head->seq ? " with another hash" : "");
        goto cleanup;
    }
    audit_ref adopted = {.seq = last.seq};
    memcpy(adopted.hash, last.hash, sizeof(adopted.hash));
    rc = write_ref(a->dir, HEAD_NAME, &adopted, NULL, 0, err);
    if (rc != BC_OK)
        goto cleanup;
    log_warnx("audit | head_adopted | dir=%s from=%" PRIu64 " to=%" PRIu64
              " (entries written by an append that stopped before its head write)",
              a->dir, head->seq, last.seq);
    *head = adopted;

cleanup:
    free(files.names);
    return rc;
}

/* ---- locking ---- */

static bc_status lock_log(int fd, int op, const char *dir, bc_error *err)
{
    while (flock(fd, op) != 0) {
        if (errno != EINTR)
            return bc_fail(err, BC_ERR_IO, "cannot lock the audit log in '%s': %s", dir,
                           strerror(errno));
    }
    return BC_OK;
}

static void unlock_log(int fd)
{
    (void)flock(fd, LOCK_UN); /* closing the descriptor would release it too */
}

/* ---- open, close, head ---- */

/* Removes temporary files of head or anchor writes that a crash left
 * behind (under the lock, so none is in progress). */
static void remove_stale_tmp(const char *dir)
{
    bc_file_dir it;
    if (bc_file_dir_open(&it, dir, NULL) != BC_OK)
        return;
    const char *name = NULL;
    while (bc_file_dir_next(&it, &name, NULL) == BC_OK && name != NULL) {
        bool ours = strncmp(name, HEAD_NAME ".", 5) == 0 || strncmp(name, ANCHOR_NAME ".", 7) == 0;
        if (!ours || !bc_file_is_tmp(name))
            continue;
        char path[PATH_MAX];
        if (join(dir, name, path, sizeof(path), NULL) == BC_OK && unlink(path) == 0)
            log_info("audit | stale_tmp_removed | file=%s", path);
    }
    bc_file_dir_close(&it);
}

bc_status bc_audit_open(const char *dir, bc_audit **out, bc_error *err)
{
    if (out != NULL)
        *out = NULL;
    if (dir == NULL || dir[0] == '\0' || out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "audit open: no directory");
    if (strlen(dir) + NAME_LEN + 32 >= PATH_MAX)
        return bc_fail(err, BC_ERR_TOO_BIG, "audit directory '%s' is too long", dir);
    if (mkdir(dir, DIR_MODE) != 0 && errno != EEXIST)
        return bc_fail(err, BC_ERR_IO, "cannot create the audit directory '%s': %s", dir,
                       strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return bc_fail(err, BC_ERR_IO, "audit directory '%s' is not a directory", dir);

    bc_audit *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the audit log");
    snprintf(a->dir, sizeof(a->dir), "%s", dir);
    char path[PATH_MAX];
    bc_status rc = join(dir, LOCK_NAME, path, sizeof(path), err);
    a->lock_fd = rc == BC_OK ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE) : -1;
    if (rc == BC_OK && a->lock_fd < 0)
        rc = bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    if (rc == BC_OK)
        rc = lock_log(a->lock_fd, LOCK_EX, dir, err);
    if (rc != BC_OK)
        goto cleanup;
    remove_stale_tmp(dir);
    audit_ref head;
    audit_anchor anchor;
    char newest[NAME_LEN + 1];
    rc = sync_tail(a, &head, newest, &anchor, err);
    unlock_log(a->lock_fd);

cleanup:
    if (rc != BC_OK) {
        bc_audit_close(a);
        return rc;
    }
    *out = a;
    return BC_OK;
}

void bc_audit_close(bc_audit *a)
{
    if (a == NULL)
        return;
    if (a->lock_fd >= 0)
        close(a->lock_fd);
    free(a);
}

bc_status bc_audit_head(bc_audit *a, uint64_t *seq, char hash[BC_AUDIT_HASH_HEX + 1], bc_error *err)
{
    if (a == NULL)
        return bc_fail(err, BC_ERR_INVAL, "audit head: no log");
    audit_anchor anchor;
    audit_ref head;
    bool present = false;
    /* No lock: the head is replaced by rename, so it is read whole. */
    bc_status rc = read_anchor(a->dir, &anchor, err);
    if (rc == BC_OK)
        rc = read_ref(a->dir, HEAD_NAME, &head, &present, NULL, err);
    if (rc != BC_OK)
        return rc;
    if (!present)
        head = chain_base(&anchor);
    if (seq != NULL)
        *seq = head.seq;
    if (hash != NULL)
        memcpy(hash, head.hash, BC_AUDIT_HASH_HEX + 1);
    return BC_OK;
}

/* ---- append ---- */

/* Takes back a batch that did not complete: the file as it was (or gone,
 * if the batch made it), and the head as it was. Best effort: what is
 * left is cut by the next sync_tail. */
static void rollback(bc_audit *a, const char *path, int fd, off_t old_size, bool made,
                     const audit_ref *old_head)
{
    if (made) {
        if (unlink(path) != 0 || bc_file_fsync_dir(a->dir, NULL) != BC_OK)
            log_warn("audit | rollback_failed | file=%s", path);
    } else if (fd >= 0 && (ftruncate(fd, old_size) != 0 || fsync(fd) != 0)) {
        log_warn("audit | rollback_failed | file=%s", path);
    }
    audit_ref now;
    bool present = false;
    if (read_ref(a->dir, HEAD_NAME, &now, &present, NULL, NULL) != BC_OK || !present ||
        now.seq != old_head->seq) {
        /* The head write got as far as its rename: put the old one back. */
        if (present && write_ref(a->dir, HEAD_NAME, old_head, NULL, 0, NULL) != BC_OK)
            log_warn("audit | rollback_failed | file=%s/head", a->dir);
    }
}

/* The append itself, under the lock. entries were validated. */
static bc_status append_locked(bc_audit *a, cJSON *const *entries, size_t count, int64_t now_ms,
                               uint64_t *first_seq, bc_error *err)
{
    audit_ref head, new_head;
    audit_anchor anchor;
    char newest[NAME_LEN + 1], target[NAME_LEN + 1], path[PATH_MAX];
    batch_buf b = {0};
    int fd = -1;
    off_t old_size = 0;
    bool made = false, written = false;
    bc_status rc = month_name(now_ms, target, err);
    if (rc == BC_OK)
        rc = sync_tail(a, &head, newest, &anchor, err);
    if (rc != BC_OK)
        goto cleanup;
    /* Never back into an older month file when the clock went back. */
    made = newest[0] == '\0' || strcmp(target, newest) > 0;
    if (!made)
        memcpy(target, newest, sizeof(target));
    if (anchor.present && strcmp(target, anchor.file) <= 0) {
        rc = bc_fail(err, BC_ERR_STATE,
                     "cannot append to the audit log at %" PRId64
                     " ms: that month was already expired",
                     now_ms);
        goto cleanup;
    }
    new_head = head;
    for (size_t i = 0; i < count && rc == BC_OK; i++) {
        char prev[BC_AUDIT_HASH_HEX + 1];
        memcpy(prev, new_head.hash, sizeof(prev));
        new_head.seq = head.seq + 1 + i;
        rc = build_line(entries[i], new_head.seq, now_ms, prev, &b, new_head.hash, err);
    }
    if (rc == BC_OK)
        rc = join(a->dir, target, path, sizeof(path), err);
    if (rc != BC_OK)
        goto cleanup;

    fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | (made ? O_CREAT | O_EXCL : 0), FILE_MODE);
    if (fd < 0) {
        made = false; /* nothing of ours to remove */
        rc = bc_fail(err, BC_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = bc_fail(err, BC_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
        goto cleanup;
    }
    old_size = st.st_size;
    written = true;
    /* One write, one fsync (and one of the directory for a new file), one
     * head write: the cost of a batch does not grow with its size. */
    rc = bc_file_write_all(fd, b.data, b.len, path, err);
    if (rc == BC_OK && fsync(fd) != 0)
        rc = bc_fail(err, BC_ERR_IO, "cannot fsync '%s': %s", path, strerror(errno));
    if (rc == BC_OK && made)
        rc = bc_file_fsync_dir(a->dir, err);
    if (rc == BC_OK)
        rc = write_ref(a->dir, HEAD_NAME, &new_head, NULL, 0, err);
    if (rc == BC_OK && first_seq != NULL)
        *first_seq = head.seq + 1;

cleanup:
    if (rc != BC_OK && written)
        rollback(a, path, fd, old_size, made, &head);
    if (fd >= 0)
        close(fd);
    free(b.data);
    return rc;
}

bc_status bc_audit_append(bc_audit *a, cJSON *const *entries, size_t count, int64_t now_ms,
                          uint64_t *first_seq, bc_error *err)
{
    if (first_seq != NULL)
        *first_seq = 0;
    if (a == NULL || (entries == NULL && count > 0))
        return bc_fail(err, BC_ERR_INVAL, "audit append: no log or no entries");
    if (count == 0)
        return BC_OK;
    char month[NAME_LEN + 1];
    bc_status rc = month_name(now_ms, month, err);
    for (size_t i = 0; i < count && rc == BC_OK; i++)
        rc = validate_entry(entries[i], i, err);
    if (rc == BC_OK)
        rc = lock_log(a->lock_fd, LOCK_EX, a->dir, err);
    if (rc != BC_OK)
        return rc;
    rc = append_locked(a, entries, count, now_ms, first_seq, err);
    unlock_log(a->lock_fd);
    return rc;
}

bc_status bc_audit_append1(bc_audit *a, const char *actor, const char *action, const char *subject,
                           const cJSON *details, int64_t now_ms, uint64_t *seq, bc_error *err)
{
    if (seq != NULL)
        *seq = 0;
    if (actor == NULL || action == NULL || subject == NULL)
        return bc_fail(err, BC_ERR_INVAL, "audit append: actor, action and subject are needed");
    if (details != NULL && !cJSON_IsObject(details))
        return bc_fail(err, BC_ERR_TYPE, "audit append: details are not a JSON object");
    bc_status rc = BC_OK;
    cJSON *entry = cJSON_CreateObject();
    bool ok = entry != NULL && cJSON_AddStringToObject(entry, "actor", actor) != NULL &&
              cJSON_AddStringToObject(entry, "action", action) != NULL &&
              cJSON_AddStringToObject(entry, "subject", subject) != NULL;
    for (const cJSON *m = details != NULL ? details->child : NULL; ok && m != NULL; m = m->next) {
        cJSON *copy = cJSON_Duplicate(m, true);
        ok = copy != NULL && m->string != NULL &&
             cJSON_AddItemToObject(entry, m->string, copy); /* takes copy */
        if (!ok)
            cJSON_Delete(copy);
    }
    if (!ok)
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory for an audit entry");
    if (rc == BC_OK)
        rc = bc_audit_append(a, &entry, 1, now_ms, seq, err);
    cJSON_Delete(entry);
    return rc;
}

/* ---- verify ---- */

typedef struct verifier {
    uint64_t expect;                  /* the seq the next entry must carry */
    char prev[BC_AUDIT_HASH_HEX + 1]; /* and the hash it must name as prev */
    bool anchored;                    /* expect - 1 is the anchor */
    bc_audit_verify_result res;
    /* An entry with a seq too high waits for the next line to tell a gap
     * (entries missing) from a swap (entries out of order). */
    bool gap;
    char gap_file[NAME_LEN + 1];
    uint64_t gap_line, gap_seq;
    char last_file[NAME_LEN + 1]; /* where the last entry accepted is */
    uint64_t last_line;
} verifier;

static bc_status report_gap(const verifier *v, bc_error *err)
{
    if (v->gap_seq == v->expect + 1)
        return bc_fail(err, BC_ERR_TAMPERED,
                       "%s line %" PRIu64 ": entry %" PRIu64 " is missing (entry %" PRIu64
                       " follows entry %" PRIu64 ")",
                       v->gap_file, v->gap_line, v->expect, v->gap_seq, v->expect - 1);
    return bc_fail(err, BC_ERR_TAMPERED,
                   "%s line %" PRIu64 ": entries %" PRIu64 " to %" PRIu64 " are missing",
                   v->gap_file, v->gap_line, v->expect, v->gap_seq - 1);
}

static void accept_entry(verifier *v, const entry_info *e, const char *file, uint64_t lineno)
{
    memcpy(v->last_file, file, sizeof(v->last_file));
    v->last_line = lineno;
    if (v->res.entries == 0)
        v->res.first_seq = e->seq;
    v->res.entries++;
    v->res.last_seq = e->seq;
    v->expect = e->seq + 1;
    v->anchored = false;
    memcpy(v->prev, e->hash, sizeof(v->prev));
    memcpy(v->res.last_hash, e->hash, sizeof(v->res.last_hash));
}

static bc_status verify_line(verifier *v, const char *file, uint64_t lineno, const char *line,
                             size_t len, bc_error *err)
{
    entry_info e;
    bc_error why;
    bc_status rc = check_line(line, len, &e, &why);
    if (rc != BC_OK && v->gap)
        return report_gap(v, err); /* the earlier problem first */
    if (rc == BC_ERR_PARSE)
        return bc_fail(err, rc, "%s line %" PRIu64 ": not an audit entry: %s", file, lineno,
                       why.text);
    if (rc == BC_ERR_TAMPERED)
        return bc_fail(err, rc,
                       "%s line %" PRIu64 ": entry %" PRIu64 " was edited: its hash does not match",
                       file, lineno, e.seq);
    if (rc != BC_OK)
        return bc_fail(err, rc, "%s", why.text);
    if (v->gap) {
        if (e.seq == v->expect)
            return bc_fail(err, BC_ERR_TAMPERED,
                           "%s line %" PRIu64 ": entries out of order: entry %" PRIu64
                           " comes before entry %" PRIu64 " (line %" PRIu64 ")",
                           v->gap_file, v->gap_line, v->gap_seq, e.seq, lineno);
        return report_gap(v, err);
    }
    if (e.seq > v->expect) {
        v->gap = true;
        memcpy(v->gap_file, file, sizeof(v->gap_file));
        v->gap_line = lineno;
        v->gap_seq = e.seq;
        return BC_OK;
    }
    if (e.seq < v->expect)
        return bc_fail(err, BC_ERR_TAMPERED,
                       "%s line %" PRIu64 ": entries out of order: entry %" PRIu64
                       " comes after entry %" PRIu64,
                       file, lineno, e.seq, v->expect - 1);
    if (strcmp(e.prev, v->prev) != 0)
        return bc_fail(err, BC_ERR_TAMPERED,
                       "%s line %" PRIu64 ": entry %" PRIu64 " does not chain to %s %" PRIu64
                       ": its prev is another hash (an entry was replaced)",
                       file, lineno, e.seq, v->anchored ? "the anchor's entry" : "entry",
                       v->expect - 1);
    accept_entry(v, &e, file, lineno);
    return BC_OK;
}

static bc_status verify_file(verifier *v, line_reader *r, const char *dir, const char *name,
                             bool newest, bc_error *err)
{
    char path[PATH_MAX];
    bc_status rc = reader_open(r, dir, name, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    v->res.files++;
    for (;;) {
        read_result res = reader_next(r);
        if (res == READ_EOF)
            break;
        if (res == READ_ERROR) {
            rc = bc_fail(err, BC_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
        if (res == READ_TOO_LONG) {
            rc = bc_fail(err, BC_ERR_PARSE,
                         "%s line %" PRIu64 ": not an audit entry: over %d "
                         "bytes",
                         name, r->lineno, BC_AUDIT_LINE_MAX);
            break;
        }
        if (res == READ_TORN) {
            rc = bc_fail(err, BC_ERR_PARSE,
                         "%s line %" PRIu64 ": the line is incomplete (no "
                         "newline)%s",
                         name, r->lineno,
                         newest ? ": a write cut short by a crash, which the next open cuts off"
                                : "");
            break;
        }
        rc = verify_line(v, name, r->lineno, r->line, r->len, err);
        if (rc != BC_OK)
            break;
    }
    close(r->fd);
    return rc;
}

/* The last entry against DIR/head. */
static bc_status verify_end(const verifier *v, bool head_present, const audit_ref *head,
                            bc_error *err)
{
    uint64_t last = v->expect - 1;
    const char *file = v->last_file[0] != '\0' ? v->last_file : "(no entry)";
    if (!head_present) {
        if (v->res.entries == 0)
            return BC_OK;
        return bc_fail(err, BC_ERR_TAMPERED,
                       "%s line %" PRIu64 ": the log goes on to entry %" PRIu64
                       " but it has no head file",
                       file, v->last_line, last);
    }
    if (last < head->seq)
        return bc_fail(err, BC_ERR_TAMPERED,
                       "%s line %" PRIu64 ": the log ends at %" PRIu64 " but its head says %" PRIu64
                       " (its tail was removed)",
                       file, v->last_line, last, head->seq);
    if (last > head->seq)
        return bc_fail(err, BC_ERR_TAMPERED,
                       "%s line %" PRIu64 ": the log goes on to %" PRIu64
                       " but its head says %" PRIu64
                       " (an append stopped before its head write, which the next open "
                       "adopts, or entries were added)",
                       file, v->last_line, last, head->seq);
    if (strcmp(v->prev, head->hash) != 0)
        return bc_fail(err, BC_ERR_TAMPERED,
                       "%s line %" PRIu64 ": entry %" PRIu64
                       " is not the one its head names (it was replaced)",
                       file, v->last_line, last);
    return BC_OK;
}

bc_status bc_audit_verify(const char *dir, bc_audit_verify_result *res, bc_error *err)
{
    if (res != NULL)
        memset(res, 0, sizeof(*res));
    if (dir == NULL)
        return bc_fail(err, BC_ERR_INVAL, "audit verify: no directory");
    verifier *v = calloc(1, sizeof(*v));
    line_reader *r = malloc(sizeof(*r));
    log_files files = {0};
    audit_anchor anchor;
    audit_ref head;
    bool head_present = false;
    char path[PATH_MAX];
    int lock_fd = -1;
    bc_status rc = BC_OK;
    if (v == NULL || r == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory to verify the audit log");
        goto cleanup;
    }
    /* A shared lock keeps appenders out while we read, when there is a lock
     * file we may open; a read-only copy of a log is verified without. */
    if (join(dir, LOCK_NAME, path, sizeof(path), NULL) == BC_OK)
        lock_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (lock_fd >= 0)
        rc = lock_log(lock_fd, LOCK_SH, dir, err);
    if (rc == BC_OK)
        rc = read_anchor(dir, &anchor, err);
    if (rc == BC_OK)
        rc = read_ref(dir, HEAD_NAME, &head, &head_present, NULL, err);
    if (rc == BC_OK)
        rc = list_files(dir, &anchor, &files, err);
    if (rc != BC_OK)
        goto cleanup;
    audit_ref base = chain_base(&anchor);
    v->expect = base.seq + 1;
    v->anchored = anchor.present;
    memcpy(v->prev, base.hash, sizeof(v->prev));
    memcpy(v->res.last_hash, base.hash, sizeof(v->res.last_hash));
    v->res.last_seq = base.seq;
    for (size_t i = 0; i < files.count && rc == BC_OK; i++)
        rc = verify_file(v, r, dir, files.names[i], i + 1 == files.count, err);
    if (rc == BC_OK && v->gap)
        rc = report_gap(v, err);
    if (rc == BC_OK)
        rc = verify_end(v, head_present, &head, err);
    if (res != NULL)
        *res = v->res;

cleanup:
    if (lock_fd >= 0)
        close(lock_fd);
    free(files.names);
    free(r);
    free(v);
    return rc;
}

/* ---- scan ---- */

/* `"subject":<subject as JSON>`, what a line of that subject contains. */
static char *subject_needle(const char *subject)
{
    cJSON *s = cJSON_CreateString(subject);
    char *printed = s != NULL ? cJSON_PrintUnformatted(s) : NULL;
    char *needle = NULL;
    if (printed != NULL) {
        size_t n = strlen("\"subject\":") + strlen(printed) + 1;
        needle = malloc(n);
        if (needle != NULL)
            snprintf(needle, n, "\"subject\":%s", printed);
    }
    cJSON_free(printed);
    cJSON_Delete(s);
    return needle;
}

/* Visits the entries of one file; *stop when fn asked to stop. */
static bc_status scan_file(line_reader *r, const char *dir, const char *name, bool newest,
                           const char *subject, const char *needle, bc_audit_visit_fn fn,
                           void *userdata, bool *stop, bc_error *err)
{
    char path[PATH_MAX];
    bc_status rc = reader_open(r, dir, name, path, sizeof(path), err);
    if (rc == BC_ERR_IO && errno == ENOENT)
        return BC_OK; /* expired since the listing */
    if (rc != BC_OK)
        return rc;
    while (!*stop) {
        read_result res = reader_next(r);
        if (res == READ_EOF || (res == READ_TORN && newest))
            break; /* an append in progress, or a crash's torn line: not an entry */
        if (res == READ_ERROR) {
            rc = bc_fail(err, BC_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
        if (res != READ_LINE) {
            rc = bc_fail(err, BC_ERR_PARSE, "%s line %" PRIu64 ": not an audit entry", name,
                         r->lineno);
            break;
        }
        /* Cheap pre-filter on the bytes; the parsed subject decides. */
        bool plain = strlen(r->line) == r->len;
        if (needle != NULL && plain && strstr(r->line, needle) == NULL)
            continue;
        cJSON *entry = cJSON_ParseWithLength(r->line, r->len);
        const cJSON *subj = cJSON_GetObjectItemCaseSensitive(entry, "subject");
        if (!cJSON_IsObject(entry) || !cJSON_IsString(subj)) {
            cJSON_Delete(entry);
            rc = bc_fail(err, BC_ERR_PARSE, "%s line %" PRIu64 ": not an audit entry", name,
                         r->lineno);
            break;
        }
        if (subject == NULL || strcmp(subj->valuestring, subject) == 0)
            *stop = !fn(r->line, r->len, entry, userdata);
        cJSON_Delete(entry);
    }
    close(r->fd);
    return rc;
}

bc_status bc_audit_scan(const char *dir, const char *subject, bc_audit_visit_fn fn, void *userdata,
                        bc_error *err)
{
    if (dir == NULL || fn == NULL)
        return bc_fail(err, BC_ERR_INVAL, "audit scan: no directory or no visitor");
    audit_anchor anchor;
    log_files files = {0};
    char *needle = NULL;
    line_reader *r = malloc(sizeof(*r));
    bc_status rc = BC_OK;
    if (r == NULL || (subject != NULL && (needle = subject_needle(subject)) == NULL)) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory to scan the audit log");
        goto cleanup;
    }
    rc = read_anchor(dir, &anchor, err);
    if (rc == BC_OK)
        rc = list_files(dir, &anchor, &files, err);
    bool stop = false;
    for (size_t i = 0; rc == BC_OK && !stop && i < files.count; i++)
        rc = scan_file(r, dir, files.names[i], i + 1 == files.count, subject, needle, fn, userdata,
                       &stop, err);

cleanup:
    free(files.names);
    free(needle);
    free(r);
    return rc;
}

/* ---- expire ---- */

/* Reads one candidate file: every line must be an entry that chains on;
 * *old is true when every entry is older than cutoff. */
static bc_status expire_read_file(line_reader *r, const char *dir, const char *name, int64_t cutoff,
                                  audit_ref *chain, bool *old, bc_error *err)
{
    char path[PATH_MAX];
    bc_status rc = reader_open(r, dir, name, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    *old = true;
    for (;;) {
        read_result res = reader_next(r);
        if (res == READ_EOF)
            break;
        entry_info e;
        bc_error why;
        if (res == READ_ERROR) {
            rc = bc_fail(err, BC_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
            break;
        }
        if (res != READ_LINE || check_line(r->line, r->len, &e, &why) != BC_OK ||
            e.seq != chain->seq + 1 || strcmp(e.prev, chain->hash) != 0) {
            rc = bc_fail(err, BC_ERR_TAMPERED,
                         "will not expire a damaged audit log: %s line %" PRIu64
                         " does not check (run verify)",
                         name, r->lineno);
            break;
        }
        if (e.ts >= cutoff)
            *old = false;
        chain->seq = e.seq;
        memcpy(chain->hash, e.hash, sizeof(chain->hash));
    }
    close(r->fd);
    return rc;
}

/* Unlinks files at or before the anchor's: an earlier expiry wrote the
 * anchor and stopped before it removed them. */
static bc_status remove_leftovers(const char *dir, const audit_anchor *anchor, bc_error *err)
{
    if (!anchor->present)
        return BC_OK;
    log_files all = {0};
    bc_status rc = list_files(dir, NULL, &all, err);
    bool any = false;
    for (size_t i = 0; rc == BC_OK && i < all.count; i++) {
        if (strcmp(all.names[i], anchor->file) > 0)
            break;
        char path[PATH_MAX];
        rc = join(dir, all.names[i], path, sizeof(path), err);
        if (rc == BC_OK && unlink(path) != 0 && errno != ENOENT)
            rc = bc_fail(err, BC_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
        any = true;
    }
    if (rc == BC_OK && any)
        rc = bc_file_fsync_dir(dir, err);
    free(all.names);
    return rc;
}

/* Appends the "audit_expired" entry naming the files removed. */
static bc_status append_expired(bc_audit *a, const log_files *files, size_t removed,
                                const audit_ref *anchor, int retention_days, int64_t now_ms,
                                bc_error *err)
{
    bc_status rc = BC_OK;
    cJSON *entry = cJSON_CreateObject();
    cJSON *list = cJSON_CreateArray();
    bool ok = entry != NULL && list != NULL;
    for (size_t i = 0; ok && i < removed; i++) {
        cJSON *s = cJSON_CreateString(files->names[i]);
        ok = s != NULL && cJSON_AddItemToArray(list, s); /* takes s */
    }
    ok = ok && cJSON_AddStringToObject(entry, "actor", EXPIRE_ACTOR) != NULL &&
         cJSON_AddStringToObject(entry, "action", EXPIRE_ACTION) != NULL &&
         cJSON_AddStringToObject(entry, "subject", EXPIRE_SUBJECT) != NULL &&
         cJSON_AddItemToObject(entry, "files", list); /* takes list */
    if (ok)
        list = NULL;
    ok = ok && cJSON_AddNumberToObject(entry, "anchor_seq", (double)anchor->seq) != NULL &&
         cJSON_AddStringToObject(entry, "anchor_hash", anchor->hash) != NULL &&
         cJSON_AddNumberToObject(entry, "retention_days", retention_days) != NULL;
    if (!ok)
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory for the audit_expired entry");
    if (rc == BC_OK)
        rc = append_locked(a, &entry, 1, now_ms, NULL, err);
    cJSON_Delete(list);
    cJSON_Delete(entry);
    return rc;
}

static bc_status expire_locked(bc_audit *a, int retention_days, int64_t now_ms, size_t *removed,
                               bc_error *err)
{
    int64_t cutoff = now_ms - (int64_t)retention_days * MS_PER_DAY;
    audit_ref head;
    audit_anchor anchor;
    char newest[NAME_LEN + 1];
    char stamp[NAME_LEN + 1];
    log_files files = {0};
    line_reader *r = NULL;
    bc_status rc = month_name(now_ms, stamp, err); /* now_ms must be a usable time */
    if (rc == BC_OK)
        rc = sync_tail(a, &head, newest, &anchor, err);
    if (rc == BC_OK)
        rc = remove_leftovers(a->dir, &anchor, err);
    if (rc == BC_OK)
        rc = list_files(a->dir, &anchor, &files, err);
    if (rc != BC_OK)
        goto cleanup;
    r = malloc(sizeof(*r));
    if (r == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory to expire the audit log");
        goto cleanup;
    }
    /* Only a run of whole files from the oldest on, so that what is left
     * still chains on from the anchor; never the file with the head entry. */
    audit_ref chain = chain_base(&anchor), kept = chain;
    size_t n = 0;
    for (size_t i = 0; i < files.count; i++) {
        bool old = false;
        rc = expire_read_file(r, a->dir, files.names[i], cutoff, &chain, &old, err);
        if (rc != BC_OK)
            goto cleanup;
        if (!old || chain.seq == head.seq)
            break;
        n = i + 1;
        kept = chain;
    }
    if (n == 0)
        goto cleanup;
    rc = write_ref(a->dir, ANCHOR_NAME, &kept, files.names[n - 1], now_ms, err);
    for (size_t i = 0; rc == BC_OK && i < n; i++) {
        char path[PATH_MAX];
        rc = join(a->dir, files.names[i], path, sizeof(path), err);
        if (rc == BC_OK && unlink(path) != 0)
            rc = bc_fail(err, BC_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
    }
    if (rc == BC_OK)
        rc = bc_file_fsync_dir(a->dir, err);
    if (rc != BC_OK)
        goto cleanup;
    *removed = n;
    log_info("audit | expired | dir=%s files=%zu first=%s last=%s anchor_seq=%" PRIu64, a->dir, n,
             files.names[0], files.names[n - 1], kept.seq);
    rc = append_expired(a, &files, n, &kept, retention_days, now_ms, err);

cleanup:
    free(r);
    free(files.names);
    return rc;
}

bc_status bc_audit_expire(bc_audit *a, int retention_days, int64_t now_ms, size_t *removed,
                          bc_error *err)
{
    size_t n = 0;
    if (removed != NULL)
        *removed = 0;
    if (a == NULL)
        return bc_fail(err, BC_ERR_INVAL, "audit expire: no log");
    if (retention_days < BC_AUDIT_RETENTION_MIN_DAYS)
        return bc_fail(err, BC_ERR_INVAL,
                       "audit retention of %d days is under the minimum of %d days", retention_days,
                       BC_AUDIT_RETENTION_MIN_DAYS);
    bc_status rc = lock_log(a->lock_fd, LOCK_EX, a->dir, err);
    if (rc != BC_OK)
        return rc;
    rc = expire_locked(a, retention_days, now_ms, &n, err);
    unlock_log(a->lock_fd);
    if (removed != NULL)
        *removed = n;
    return rc;
}
