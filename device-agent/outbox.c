/*
 * outbox.c - ordered, durable, bounded.
 *
 * Invariants:
 *   - a message is in the index only once its file is durable (append
 *     writes first, then commits to memory), so what the caller publishes
 *     is always something a restart would publish again;
 *   - the index is sorted by seq (appends only grow it; load sorts), and
 *     seqs are never reused while a file with that seq may exist: the next
 *     seq is above every file loaded;
 *   - a file that does not pass every check (name, magic, lengths, seq in
 *     the header equal to the name, SHA-256) is quarantined, not retried:
 *     a corrupt message must not stall every later one forever.
 *
 * Deleting a file on ack does not fsync the directory: if the power goes
 * right after, the message is published once more, which at-least-once
 * delivery allows; an fsync per ack would double the cost of every event.
 */
#include "device-agent/outbox.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/file.h"
#include "common/log.h"
#include "proto/encoding.h"
#include "proto/topic.h"

#define MAGIC "BCOUTBX1"
#define MAGIC_LEN 8
#define HEADER_LEN 28
#define HASH_LEN 32
#define SEQ_DIGITS 16
#define SEQ_MAX 9999999999999999ULL /* what 16 digits can name */
#define MSG_SUFFIX ".msg"
#define BAD_SUFFIX ".bad"
#define FILE_MAX (HEADER_LEN + BC_TOPIC_MAX + BC_OUTBOX_MAX_PAYLOAD + HASH_LEN)

typedef struct outbox_entry {
    uint64_t seq;
    int qos;
    char *topic;      /* one allocation: topic, NUL, then the payload */
    uint8_t *payload; /* points into the same allocation */
    size_t payload_len;
    size_t bytes; /* topic + payload, what max_bytes counts */
} outbox_entry;

struct bc_outbox {
    char dir[PATH_MAX];
    size_t max_messages, max_bytes;
    outbox_entry *entries; /* sorted by seq */
    size_t count, cap;
    size_t bytes;
    uint64_t next_seq;
};

/* ---- encoding ---- */

static int sha256(const uint8_t *data, size_t len, uint8_t out[HASH_LEN])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != HASH_LEN)
        return -1;
    return 0;
}

static bc_status msg_path(const bc_outbox *ob, uint64_t seq, char *out, size_t size, bc_error *err)
{
    int n = snprintf(out, size, "%s/%0*llu%s", ob->dir, SEQ_DIGITS, (unsigned long long)seq,
                     MSG_SUFFIX);
    if (n < 0 || (size_t)n >= size)
        return bc_fail(err, BC_ERR_TOO_BIG, "outbox directory path '%s' is too long", ob->dir);
    return BC_OK;
}

/* Makes an entry holding copies of topic and payload. */
static int entry_make(outbox_entry *e, uint64_t seq, int qos, const char *topic, size_t topic_len,
                      const uint8_t *payload, size_t payload_len)
{
    char *mem = malloc(topic_len + 1 + payload_len + 1);
    if (mem == NULL)
        return -1;
    memcpy(mem, topic, topic_len);
    mem[topic_len] = '\0';
    if (payload_len > 0)
        memcpy(mem + topic_len + 1, payload, payload_len);
    e->seq = seq;
    e->qos = qos;
    e->topic = mem;
    e->payload = (uint8_t *)mem + topic_len + 1;
    e->payload_len = payload_len;
    e->bytes = topic_len + payload_len;
    return 0;
}

static int index_reserve(bc_outbox *ob, size_t need)
{
    if (need <= ob->cap)
        return 0;
    size_t n = ob->cap == 0 ? 64 : ob->cap * 2;
    while (n < need)
        n *= 2;
    outbox_entry *p = realloc(ob->entries, n * sizeof(*p));
    if (p == NULL)
        return -1;
    ob->entries = p;
    ob->cap = n;
    return 0;
}

/* ---- loading ---- */

static int has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcmp(name + n - s, suffix) == 0;
}

/* 1 when name is exactly 16 digits + ".msg"; *seq gets the number. */
static int parse_msg_name(const char *name, uint64_t *seq)
{
    if (strlen(name) != SEQ_DIGITS + strlen(MSG_SUFFIX) || !has_suffix(name, MSG_SUFFIX))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < SEQ_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *seq = v;
    return 1;
}

/* Checks a file's bytes; fills *e on success, err with the reason otherwise. */
static bc_status decode_file(const uint8_t *buf, size_t len, uint64_t name_seq, outbox_entry *e,
                             bc_error *err)
{
    if (len < HEADER_LEN + HASH_LEN)
        return bc_fail(err, BC_ERR_TRUNCATED, "%zu bytes is shorter than a message", len);
    if (memcmp(buf, MAGIC, MAGIC_LEN) != 0)
        return bc_fail(err, BC_ERR_PARSE, "not an outbox message (bad magic)");
    uint64_t seq = bc_be64_load(buf + 8);
    int qos = buf[16];
    uint32_t topic_len = bc_be32_load(buf + 20);
    uint32_t payload_len = bc_be32_load(buf + 24);
    if ((uint64_t)HEADER_LEN + topic_len + payload_len + HASH_LEN != len)
        return bc_fail(err, BC_ERR_TRUNCATED, "lengths in the header do not match the %zu bytes",
                       len);
    uint8_t md[HASH_LEN];
    if (sha256(buf, len - HASH_LEN, md) != 0)
        return bc_fail(err, BC_ERR_CRYPTO, "SHA-256 failed");
    if (memcmp(md, buf + len - HASH_LEN, HASH_LEN) != 0)
        return bc_fail(err, BC_ERR_TAMPERED, "checksum mismatch");
    if (seq != name_seq)
        return bc_fail(err, BC_ERR_PARSE, "header seq %llu does not match the file name",
                       (unsigned long long)seq);
    if (qos > 2 || buf[17] != 0 || buf[18] != 0 || buf[19] != 0)
        return bc_fail(err, BC_ERR_PARSE, "bad qos or flags");
    const char *topic = (const char *)buf + HEADER_LEN;
    if (topic_len == 0 || topic_len >= BC_TOPIC_MAX || memchr(topic, '\0', topic_len) != NULL)
        return bc_fail(err, BC_ERR_PARSE, "bad topic");
    if (payload_len > BC_OUTBOX_MAX_PAYLOAD)
        return bc_fail(err, BC_ERR_TOO_BIG, "payload over the limit");
    if (entry_make(e, seq, qos, topic, topic_len, buf + HEADER_LEN + topic_len, payload_len) != 0)
        return bc_fail(err, BC_ERR_NOMEM, "no memory");
    return BC_OK;
}

static void quarantine(const char *path, const char *why)
{
    char bad[PATH_MAX];
    int n = snprintf(bad, sizeof(bad), "%s%s", path, BAD_SUFFIX);
    if (n < 0 || (size_t)n >= sizeof(bad) || rename(path, bad) != 0) {
        log_error("outbox: '%s' is corrupt (%s) and cannot be quarantined; skipping it", path, why);
        return;
    }
    log_warnx("outbox: '%s' is corrupt (%s); quarantined as '%s'", path, why, bad);
}

/* Loads one "*.msg" file into the index, or quarantines it. */
static bc_status load_one(bc_outbox *ob, const char *name, uint64_t seq, bc_outbox_load_report *rep)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", ob->dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return BC_ERR_TOO_BIG;
    char *buf = NULL;
    size_t len = 0;
    bc_error why;
    bc_error_clear(&why);
    bc_status rc = bc_file_read_all(path, FILE_MAX, &buf, &len, &why);
    if (rc == BC_ERR_NOMEM)
        return rc;
    outbox_entry e;
    if (rc == BC_OK)
        rc = decode_file((const uint8_t *)buf, len, seq, &e, &why);
    free(buf);
    if (rc == BC_ERR_NOMEM)
        return rc;
    if (rc != BC_OK) {
        quarantine(path, why.text);
        rep->quarantined++;
        return BC_OK;
    }
    if (index_reserve(ob, ob->count + 1) != 0) {
        free(e.topic);
        return BC_ERR_NOMEM;
    }
    ob->entries[ob->count++] = e;
    ob->bytes += e.bytes;
    rep->loaded++;
    return BC_OK;
}

static int entry_cmp(const void *a, const void *b)
{
    uint64_t x = ((const outbox_entry *)a)->seq, y = ((const outbox_entry *)b)->seq;
    return x < y ? -1 : x > y;
}

static bc_status load_dir(bc_outbox *ob, bc_outbox_load_report *rep, bc_error *err)
{
    bc_file_dir it;
    bc_status rc = bc_file_dir_open(&it, ob->dir, err);
    if (rc != BC_OK)
        return BC_ERR_IO; /* also when it is missing, as outbox.h says */
    const char *name = NULL;
    while ((rc = bc_file_dir_next(&it, &name, err)) == BC_OK && name != NULL) {
        uint64_t seq;
        if (bc_file_is_tmp(name)) {
            /* an interrupted durable write: never renamed, so never promised */
            if (unlinkat(dirfd(it.d), name, 0) == 0)
                rep->tmp_removed++;
            else
                log_warn("outbox: cannot delete leftover '%s/%s'", ob->dir, name);
        } else if (parse_msg_name(name, &seq)) {
            rc = load_one(ob, name, seq, rep);
            if (rc != BC_OK) {
                bc_fail(err, rc, "cannot load outbox message '%s/%s': %s", ob->dir, name,
                        bc_strerror(rc));
                break;
            }
        }
    }
    bc_file_dir_close(&it);
    if (rc == BC_OK && ob->count > 1)
        qsort(ob->entries, ob->count, sizeof(outbox_entry), entry_cmp);
    return rc;
}

bc_status bc_outbox_open(const char *dir, const bc_outbox_limits *limits, bc_outbox **out,
                         bc_outbox_load_report *report, bc_error *err)
{
    *out = NULL;
    bc_outbox_load_report rep = {0};
    if (dir == NULL || strlen(dir) + SEQ_DIGITS + 16 >= PATH_MAX)
        return bc_fail(err, BC_ERR_INVAL, "outbox directory path is missing or too long");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return bc_fail(err, BC_ERR_IO, "cannot create outbox directory '%s': %s", dir,
                       strerror(errno));
    bc_outbox *ob = calloc(1, sizeof(*ob));
    if (ob == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the outbox");
    snprintf(ob->dir, sizeof(ob->dir), "%s", dir);
    ob->max_messages = BC_OUTBOX_DEFAULT_MAX_MESSAGES;
    ob->max_bytes = BC_OUTBOX_DEFAULT_MAX_BYTES;
    ob->next_seq = 1;
    if (limits != NULL) {
        if (limits->max_messages > 0)
            ob->max_messages = limits->max_messages;
        if (limits->max_bytes > 0)
            ob->max_bytes = limits->max_bytes;
        if (limits->first_seq > 0)
            ob->next_seq = limits->first_seq;
    }
    bc_status rc = load_dir(ob, &rep, err);
    if (rc != BC_OK) {
        bc_outbox_close(ob);
        return rc;
    }
    if (ob->count > 0 && ob->entries[ob->count - 1].seq >= ob->next_seq)
        ob->next_seq = ob->entries[ob->count - 1].seq + 1;
    if (report != NULL)
        *report = rep;
    *out = ob;
    return BC_OK;
}

void bc_outbox_close(bc_outbox *ob)
{
    if (ob == NULL)
        return;
    for (size_t i = 0; i < ob->count; i++)
        free(ob->entries[i].topic);
    free(ob->entries);
    free(ob);
}

/* ---- appending ---- */

bc_status bc_outbox_append(bc_outbox *ob, const char *topic, int qos, const void *payload,
                           size_t payload_len, uint64_t *seq, bc_error *err)
{
    size_t topic_len = topic != NULL ? strlen(topic) : 0;
    if (topic_len == 0 || topic_len >= BC_TOPIC_MAX)
        return bc_fail(err, BC_ERR_INVAL, "outbox: the topic is empty or too long");
    if (qos < 0 || qos > 2)
        return bc_fail(err, BC_ERR_INVAL, "outbox: qos %d is not 0, 1 or 2", qos);
    if (payload == NULL && payload_len > 0)
        return bc_fail(err, BC_ERR_INVAL, "outbox: no payload");
    if (payload_len > BC_OUTBOX_MAX_PAYLOAD)
        return bc_fail(err, BC_ERR_TOO_BIG, "outbox: a payload of %zu bytes is over the limit",
                       payload_len);
    if (ob->count + 1 > ob->max_messages)
        return bc_fail(err, BC_ERR_TOO_BIG, "outbox is full: %zu messages pending", ob->count);
    if (ob->bytes + topic_len + payload_len > ob->max_bytes)
        return bc_fail(err, BC_ERR_TOO_BIG, "outbox is full: %zu of %zu bytes pending", ob->bytes,
                       ob->max_bytes);
    if (ob->next_seq > SEQ_MAX)
        return bc_fail(err, BC_ERR_TOO_BIG, "outbox: sequence numbers are exhausted");

    /* Allocate everything first, write the file, then commit to memory. */
    char path[PATH_MAX];
    bc_status rc = msg_path(ob, ob->next_seq, path, sizeof(path), err);
    if (rc != BC_OK)
        return rc;
    if (index_reserve(ob, ob->count + 1) != 0)
        return bc_fail(err, BC_ERR_NOMEM, "outbox: no memory");
    outbox_entry e;
    if (entry_make(&e, ob->next_seq, qos, topic, topic_len, payload, payload_len) != 0)
        return bc_fail(err, BC_ERR_NOMEM, "outbox: no memory");
    size_t len = HEADER_LEN + topic_len + payload_len + HASH_LEN;
    uint8_t *buf = malloc(len);
    if (buf == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "outbox: no memory");
        goto cleanup;
    }
    memcpy(buf, MAGIC, MAGIC_LEN);
    bc_be64_store(buf + 8, e.seq);
    buf[16] = (uint8_t)qos;
    buf[17] = buf[18] = buf[19] = 0;
    bc_be32_store(buf + 20, (uint32_t)topic_len);
    bc_be32_store(buf + 24, (uint32_t)payload_len);
    memcpy(buf + HEADER_LEN, topic, topic_len);
    if (payload_len > 0)
        memcpy(buf + HEADER_LEN + topic_len, payload, payload_len);
    if (sha256(buf, len - HASH_LEN, buf + len - HASH_LEN) != 0) {
        rc = bc_fail(err, BC_ERR_CRYPTO, "outbox: SHA-256 failed");
        goto cleanup;
    }
    rc = bc_file_write_durable(path, buf, len, 0600, err);
    if (rc != BC_OK)
        goto cleanup;
    ob->entries[ob->count++] = e;
    ob->bytes += e.bytes;
    ob->next_seq++;
    if (seq != NULL)
        *seq = e.seq;
    e.topic = NULL; /* owned by the index now */

cleanup:
    free(buf);
    free(e.topic);
    return rc;
}

/* ---- reading and acking ---- */

size_t bc_outbox_count(const bc_outbox *ob)
{
    return ob->count;
}

size_t bc_outbox_bytes(const bc_outbox *ob)
{
    return ob->bytes;
}

uint64_t bc_outbox_next_seq(const bc_outbox *ob)
{
    return ob->next_seq;
}

static void fill_msg(const outbox_entry *e, bc_outbox_msg *out)
{
    out->seq = e->seq;
    out->qos = e->qos;
    out->topic = e->topic;
    out->payload = e->payload;
    out->payload_len = e->payload_len;
}

bc_status bc_outbox_at(const bc_outbox *ob, size_t index, bc_outbox_msg *out)
{
    if (index >= ob->count)
        return BC_ERR_NOT_FOUND;
    fill_msg(&ob->entries[index], out);
    return BC_OK;
}

bc_status bc_outbox_peek(const bc_outbox *ob, bc_outbox_msg *out)
{
    return bc_outbox_at(ob, 0, out);
}

/* Index of seq in the sorted index, or -1. */
static long find_index(const bc_outbox *ob, uint64_t seq)
{
    size_t lo = 0, hi = ob->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ob->entries[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ob->count && ob->entries[lo].seq == seq ? (long)lo : -1;
}

bc_status bc_outbox_find(const bc_outbox *ob, uint64_t seq, bc_outbox_msg *out)
{
    long i = find_index(ob, seq);
    if (i < 0)
        return BC_ERR_NOT_FOUND;
    fill_msg(&ob->entries[i], out);
    return BC_OK;
}

bc_status bc_outbox_ack(bc_outbox *ob, uint64_t seq, bc_error *err)
{
    long i = find_index(ob, seq);
    if (i < 0)
        return bc_fail(err, BC_ERR_NOT_FOUND, "outbox: no pending message with seq %llu",
                       (unsigned long long)seq);
    char path[PATH_MAX];
    bc_status rc = msg_path(ob, seq, path, sizeof(path), err);
    if (rc == BC_OK && unlink(path) != 0 && errno != ENOENT)
        rc = bc_fail(err, BC_ERR_IO, "outbox: cannot delete '%s': %s", path, strerror(errno));
    outbox_entry *e = &ob->entries[i];
    ob->bytes -= e->bytes;
    free(e->topic);
    memmove(e, e + 1, (ob->count - (size_t)i - 1) * sizeof(*e));
    ob->count--;
    return rc;
}
