/*
 * uploader.c - manifest and chunks with a window, the resume point, and
 * the receipt that alone may delete a recording.
 *
 * The invariant: a camera deletes a recording only after a vault receipt
 * signed by the vault's receipt key names it with its SHA-256 and size.
 * Everything before the receipt (what was sent, what was acknowledged) is
 * only an optimisation of how much is sent again; losing it costs
 * bandwidth, never a recording.
 *
 * Sending one recording:
 *
 *   acked          next_offset                      size
 *     |<- in flight ->|<------ not yet published ------>|
 *     [c][c][c][c]      at most `window` chunks in flight
 *
 * Each published message (the manifest, then chunks in offset order) is a
 * `flight` {mid, offset, len, acked}, kept in publishing order. A PUBACK
 * marks its flight; acknowledged flights at the front are popped and move
 * `acked` to their end, so `acked` is always the end of a contiguous
 * acknowledged prefix even when PUBACKs arrive out of order. A pause
 * forgets all flights and rewinds next_offset to acked.
 *
 * `progress` remembers, per recording touched since the uploader was made,
 * its acknowledged offset and whether it was fully sent during this
 * connection; only the current recording's offset is saved to upload.json.
 */
#include "device-agent/uploader.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/file.h"
#include "common/log.h"
#include "proto/json.h"
#include "proto/message.h"
#include "proto/sign.h"

#define STATE_MAX 1024
#define HOLD_MIN_MS 250   /* first pause after a refused chunk */
#define HOLD_MAX_MS 30000 /* longest pause */
#define PUBACK_NO_SUBSCRIBERS 0x10
#define PUBACK_FAILURE 0x80

typedef struct flight {
    int mid;
    uint64_t offset;
    uint32_t len; /* 0 for the manifest */
    bool acked;
} flight;

typedef struct progress {
    char id[BC_ID_MAX + 1];
    uint64_t acked;
    bool done;            /* fully acknowledged during this connection */
    bool waiting;         /* fully sent: waiting for the receipt */
    int64_t retry_at_ms;  /* waiting: when the manifest is offered again (monotonic) */
    int64_t retry_gap_ms; /* waiting: the wait before that, doubled per retry */
} progress;

struct bc_uploader {
    bc_recorder *rec; /* borrowed */
    char device[BC_DEVICE_ID_MAX + 1];
    EVP_PKEY *receipt_pub; /* our reference */
    size_t chunk_size, window;
    bc_uploader_publish_fn publish;
    void *ud;
    char topic[BC_TOPIC_MAX];
    char state_path[PATH_MAX];
    bool active, pumping;

    /* the recording being sent (has_cur) */
    bool has_cur;
    bc_recording_meta cur;
    int fd;
    uint64_t next_offset, acked;
    bool manifest_sent;
    flight *fl; /* window + 1 (the manifest) */
    size_t nfl, chunks_in_flight;
    unsigned since_save;

    progress *prog;
    size_t nprog, cap_prog;
    char next_id[BC_ID_MAX + 1];  /* requested: sent before anything else */
    char saved_id[BC_ID_MAX + 1]; /* what upload.json names */
    uint8_t *buf;                 /* one chunk */
    char *json;                   /* one chunk's message (bc_message_encode_chunk) */
    size_t json_size;

    int64_t hold_until_ms; /* monotonic: no sending before (after a refused chunk) */
    int64_t receipt_wait_ms; /* first wait for a receipt before the manifest goes again */
    unsigned refusals;     /* consecutive refusals: the backoff exponent */

    uint64_t chunks_published, bytes_acked, receipts_accepted, receipts_refused, chunks_refused;
    bc_error last_error;
};

/* ---- progress ---------------------------------------------------------- */

static progress *prog_find(const bc_uploader *up, const char *id)
{
    for (size_t i = 0; i < up->nprog; i++)
        if (strcmp(up->prog[i].id, id) == 0)
            return &up->prog[i];
    return NULL;
}

static bc_status prog_set(bc_uploader *up, const char *id, uint64_t acked, bool done)
{
    progress *p = prog_find(up, id);
    if (p == NULL) {
        if (up->nprog == up->cap_prog) {
            size_t ncap = up->cap_prog ? up->cap_prog * 2 : 16;
            progress *grown = realloc(up->prog, ncap * sizeof(*grown));
            if (grown == NULL)
                return BC_ERR_NOMEM;
            up->prog = grown;
            up->cap_prog = ncap;
        }
        p = &up->prog[up->nprog++];
        memset(p, 0, sizeof(*p));
        snprintf(p->id, sizeof(p->id), "%s", id);
    }
    p->acked = acked;
    p->done = done;
    return BC_OK;
}

static void prog_remove(bc_uploader *up, const char *id)
{
    progress *p = prog_find(up, id);
    if (p == NULL)
        return;
    size_t i = (size_t)(p - up->prog);
    memmove(&up->prog[i], &up->prog[i + 1], (up->nprog - i - 1) * sizeof(*p));
    up->nprog--;
}

/* Drops entries of recordings that are no longer pending. */
static void prog_prune(bc_uploader *up)
{
    bc_recording_meta m;
    size_t i = 0;
    while (i < up->nprog) {
        if (bc_recorder_find(up->rec, up->prog[i].id, &m) == BC_OK) {
            i++;
            continue;
        }
        memmove(&up->prog[i], &up->prog[i + 1], (up->nprog - i - 1) * sizeof(up->prog[0]));
        up->nprog--;
    }
}

/* ---- upload.json ------------------------------------------------------- */

static bc_status state_save(bc_uploader *up, const char *id, uint64_t offset, bc_error *err)
{
    cJSON *obj = NULL;
    char *text = NULL;
    bc_status rc = bc_json_new_message(&obj);
    if (rc != BC_OK)
        return bc_fail(err, rc, "cannot encode '%s'", up->state_path);
    if ((rc = bc_json_add_string(obj, "recording_id", id)) != BC_OK ||
        (rc = bc_json_add_int(obj, "offset", (int64_t)offset)) != BC_OK ||
        (rc = bc_json_print(obj, &text)) != BC_OK) {
        rc = bc_fail(err, rc, "cannot encode '%s'", up->state_path);
        goto cleanup;
    }
    rc = bc_file_write_durable(up->state_path, text, strlen(text), 0600, err);
    if (rc == BC_OK)
        snprintf(up->saved_id, sizeof(up->saved_id), "%s", id);

cleanup:
    free(text);
    cJSON_Delete(obj);
    return rc;
}

/* Reads upload.json into the progress table; anything wrong means 0. */
static void state_load(bc_uploader *up)
{
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    char id[BC_ID_MAX + 1] = "";
    int64_t offset = 0;
    bc_recording_meta m;
    bc_error e;
    bc_status rc = bc_file_read_all(up->state_path, STATE_MAX, &text, &len, &e);
    if (rc == BC_ERR_NOT_FOUND)
        return;
    if (rc != BC_OK || (rc = bc_json_parse(text, len, STATE_MAX, &root, &e)) != BC_OK ||
        (rc = bc_json_check_version(root, &e)) != BC_OK ||
        (rc = bc_json_get_string(root, "recording_id", BC_JSON_REQUIRED, id, sizeof(id), &e)) !=
            BC_OK ||
        (rc = bc_json_get_int(root, "offset", BC_JSON_REQUIRED, 0, BC_JSON_INT_MAX, &offset, &e)) !=
            BC_OK) {
        log_warnx("uploader | resume_point_unreadable | reason=%s (starting from 0)", e.text);
        goto cleanup;
    }
    snprintf(up->saved_id, sizeof(up->saved_id), "%s", id);
    if (id[0] == '\0' || bc_recorder_find(up->rec, id, &m) != BC_OK || (uint64_t)offset > m.size)
        goto cleanup; /* delivered, deleted or foreign: nothing to resume */
    if (prog_set(up, id, (uint64_t)offset, false) == BC_OK)
        log_info("uploader | resume_point | id=%s offset=%lld", id, (long long)offset);

cleanup:
    cJSON_Delete(root);
    free(text);
}

/* ---- the current recording --------------------------------------------- */

static void note_error(bc_uploader *up, const bc_error *e)
{
    up->last_error = *e;
}

/* Stops sending the current recording, keeping its acknowledged offset. */
static void cur_drop(bc_uploader *up)
{
    if (!up->has_cur)
        return;
    (void)prog_set(up, up->cur.recording_id, up->acked, false); /* NOMEM: resume at 0 */
    if (up->fd >= 0)
        close(up->fd);
    up->fd = -1;
    up->has_cur = false;
    up->nfl = up->chunks_in_flight = 0;
    up->since_save = 0;
}

/* Every byte and the manifest are acknowledged. */
static void cur_complete(bc_uploader *up)
{
    bc_error e;
    (void)prog_set(up, up->cur.recording_id, up->cur.size, true);
    progress *p = prog_find(up, up->cur.recording_id);
    if (p != NULL) {
        /* the receipt may be lost (the vault committed, then Redis went away
         * before the receipt was queued): the manifest alone is offered
         * again later, which the vault answers with a fresh receipt */
        if (!p->waiting) /* a re-offer keeps its doubled wait */
            p->retry_gap_ms = up->receipt_wait_ms;
        p->waiting = true;
        p->retry_at_ms = bc_clock_monotonic_ms() + p->retry_gap_ms;
    }
    if (state_save(up, up->cur.recording_id, up->cur.size, &e) != BC_OK) {
        log_warnx("uploader | save_failed | %s", e.text);
        note_error(up, &e);
    }
    log_info("uploader | sent | id=%s size=%llu (waiting for the vault receipt)",
             up->cur.recording_id, (unsigned long long)up->cur.size);
    if (up->fd >= 0)
        close(up->fd);
    up->fd = -1;
    up->has_cur = false;
    up->nfl = up->chunks_in_flight = 0;
}

/* Marks a recording that cannot be sent now as done for this connection. */
static void skip_recording(bc_uploader *up, const char *id)
{
    progress *p = prog_find(up, id);
    (void)prog_set(up, id, p != NULL ? p->acked : 0, true);
}

/* Makes the next recording to send current: a requested one first, then
 * the first pending one not yet sent in this connection. 1: found; 0:
 * nothing left; on an unreadable recording it is skipped and BC_ERR_IO
 * returned (the caller goes on with the next). */
static int select_next(bc_uploader *up, bc_status *rc, bc_error *e)
{
    bc_recording_meta m;
    bool found = false;
    *rc = BC_OK;
    if (up->next_id[0] != '\0') {
        found = bc_recorder_find(up->rec, up->next_id, &m) == BC_OK;
        up->next_id[0] = '\0';
    }
    for (size_t i = 0; !found && bc_recorder_pending_at(up->rec, i, &m) == BC_OK; i++) {
        const progress *p = prog_find(up, m.recording_id);
        found = p == NULL || !p->done;
    }
    if (!found)
        return 0;

    int fd = -1;
    struct stat st;
    if ((*rc = bc_recorder_open_file(up->rec, m.recording_id, &fd, e)) != BC_OK) {
        skip_recording(up, m.recording_id);
        return -1;
    }
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != m.size) {
        *rc = bc_fail(e, BC_ERR_IO, "recording '%s' is not %llu bytes as its metadata says",
                      m.recording_id, (unsigned long long)m.size);
        close(fd);
        skip_recording(up, m.recording_id);
        return -1;
    }
    const progress *p = prog_find(up, m.recording_id);
    up->cur = m;
    up->fd = fd;
    up->acked = p != NULL && p->acked <= m.size ? p->acked : 0;
    up->next_offset = up->acked;
    up->manifest_sent = false;
    up->nfl = up->chunks_in_flight = 0;
    up->since_save = 0;
    up->has_cur = true;
    return 1;
}

/* Hands an encoded message to the link; records the flight. */
static bc_status publish_text(bc_uploader *up, const char *json, size_t json_len, uint64_t offset,
                              uint32_t len, bc_error *e)
{
    int mid = 0;
    int prc = up->publish(up->ud, up->topic, json, json_len, 1, &mid);
    if (prc != 0)
        return bc_fail(e, BC_ERR_UNAVAILABLE, "publishing on '%s' failed (%d)", up->topic, prc);
    up->fl[up->nfl++] = (flight){.mid = mid, .offset = offset, .len = len, .acked = false};
    return BC_OK;
}

/* Encodes msg and hands it to the link; records the flight. */
static bc_status publish_msg(bc_uploader *up, const bc_message *msg, uint64_t offset, uint32_t len,
                             bc_error *e)
{
    char *json = NULL;
    bc_status rc = bc_message_encode(msg, &json, e);
    if (rc != BC_OK)
        return rc;
    rc = publish_text(up, json, strlen(json), offset, len, e);
    free(json);
    return rc;
}

static bc_status send_manifest(bc_uploader *up, bc_error *e)
{
    bc_message msg;
    memset(&msg, 0, sizeof(msg));
    msg.kind = BC_TOPIC_UPLOAD;
    bc_msg_upload *u = &msg.upload;
    const bc_recording_meta *m = &up->cur;
    snprintf(u->device, sizeof(u->device), "%s", up->device);
    u->kind = BC_UPLOAD_MANIFEST;
    snprintf(u->recording_id, sizeof(u->recording_id), "%s", m->recording_id);
    snprintf(u->sha256, sizeof(u->sha256), "%s", m->sha256);
    snprintf(u->key_id, sizeof(u->key_id), "%s", m->key_id);
    u->ts = bc_clock_now_ms();
    u->size = (int64_t)m->size;
    u->recorded_at = m->recorded_at;
    u->duration_ms = m->duration_ms;
    u->warnings = m->warnings;
    u->emergency = m->emergency;
    u->chunk_size = (int64_t)up->chunk_size;
    bc_status rc = publish_msg(up, &msg, up->next_offset, 0, e);
    if (rc == BC_OK)
        up->manifest_sent = true;
    return rc;
}

/* Reads exactly len bytes at offset. */
static bc_status read_at(bc_uploader *up, uint64_t offset, size_t len, bc_error *e)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(up->fd, up->buf + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return bc_fail(e, BC_ERR_IO, "cannot read recording '%s': %s", up->cur.recording_id,
                           strerror(errno));
        if (n == 0)
            return bc_fail(e, BC_ERR_IO, "recording '%s' ends early at byte %llu",
                           up->cur.recording_id, (unsigned long long)(offset + done));
        done += (size_t)n;
    }
    return BC_OK;
}

/* BC_ERR_UNAVAILABLE: the link; anything else: the file. The message is
 * built in up->json by bc_message_encode_chunk: no allocation of a chunk's
 * size and one SHA-256 per chunk (bench/README.md, bench_vault). */
static bc_status send_chunk(bc_uploader *up, bc_error *e)
{
    uint64_t left = up->cur.size - up->next_offset;
    size_t len = left < up->chunk_size ? (size_t)left : up->chunk_size;
    bc_status rc = read_at(up, up->next_offset, len, e);
    if (rc != BC_OK)
        return rc;
    bc_message msg;
    memset(&msg, 0, sizeof(msg));
    msg.kind = BC_TOPIC_UPLOAD;
    bc_msg_upload *u = &msg.upload;
    snprintf(u->device, sizeof(u->device), "%s", up->device);
    u->kind = BC_UPLOAD_CHUNK;
    snprintf(u->recording_id, sizeof(u->recording_id), "%s", up->cur.recording_id);
    u->offset = (int64_t)up->next_offset;
    size_t json_len = 0;
    if ((rc = bc_message_encode_chunk(&msg, up->buf, len, up->json, up->json_size, &json_len, e)) !=
        BC_OK) {
        char why[sizeof(e->text)];
        snprintf(why, sizeof(why), "%s", e->text);
        return bc_fail(e, rc, "cannot build chunk %llu of '%s': %s",
                       (unsigned long long)up->next_offset, up->cur.recording_id, why);
    }
    if ((rc = publish_text(up, up->json, json_len, up->next_offset, (uint32_t)len, e)) != BC_OK)
        return rc;
    up->next_offset += len;
    up->chunks_in_flight++;
    up->chunks_published++;
    return BC_OK;
}

/* Keeps the first failure of a pump for its caller and every one as
 * last_error. */
static void pump_fail(bc_uploader *up, bc_status rc, const bc_error *e, bc_status *result,
                      bc_error *err)
{
    note_error(up, e);
    if (*result == BC_OK) {
        *result = rc;
        if (err != NULL)
            *err = *e;
    }
}

/* Sends while active and the window allows; see the top of the file. A
 * recording that cannot be read or described is skipped for this
 * connection and the next one is sent; a publish failure (or no memory)
 * stops until the next call. Returns the first failure. */
static bc_status pump(bc_uploader *up, bc_error *err)
{
    if (!up->active || up->pumping || bc_uploader_hold_ms(up) > 0)
        return BC_OK;
    up->pumping = true;
    bc_status result = BC_OK, rc = BC_OK;
    bc_error e;
    bc_error_clear(&e);
    for (;;) {
        rc = BC_OK;
        if (!up->has_cur) {
            int sel = select_next(up, &rc, &e);
            if (sel == 0)
                break;
            if (sel < 0) {
                log_warnx("uploader | skipped | reason=%s", e.text);
                pump_fail(up, rc, &e, &result, err);
                continue;
            }
        }
        if (!up->manifest_sent)
            rc = send_manifest(up, &e);
        while (rc == BC_OK && up->chunks_in_flight < up->window && up->next_offset < up->cur.size)
            rc = send_chunk(up, &e);
        if (rc == BC_ERR_UNAVAILABLE || rc == BC_ERR_NOMEM) {
            pump_fail(up, rc, &e, &result, err); /* the link or memory: retry later */
            break;
        }
        if (rc != BC_OK) { /* the file or its metadata: skip this recording */
            char id[BC_ID_MAX + 1];
            snprintf(id, sizeof(id), "%s", up->cur.recording_id);
            log_warnx("uploader | skipped | reason=%s", e.text);
            cur_drop(up);
            skip_recording(up, id);
            pump_fail(up, rc, &e, &result, err);
            continue;
        }
        if (up->nfl == 0 && up->acked >= up->cur.size) {
            cur_complete(up);
            continue;
        }
        break;
    }
    up->pumping = false;
    return result;
}

/* ---- public ------------------------------------------------------------ */

bc_status bc_uploader_new(bc_recorder *rec, const char *device_id, EVP_PKEY *receipt_pub,
                          size_t chunk_size, size_t window, bc_uploader_publish_fn publish,
                          void *userdata, bc_uploader **out, bc_error *err)
{
    if (out == NULL)
        return bc_fail(err, BC_ERR_INVAL, "out must not be NULL");
    *out = NULL;
    if (rec == NULL || publish == NULL)
        return bc_fail(err, BC_ERR_INVAL, "the uploader needs a recorder and a publish function");
    if (!bc_device_id_valid(device_id))
        return bc_fail(err, BC_ERR_INVAL, "device_id is not a valid device id");
    if (receipt_pub == NULL || EVP_PKEY_get_base_id(receipt_pub) != EVP_PKEY_ED25519)
        return bc_fail(err, BC_ERR_INVAL, "the receipt key must be an Ed25519 key");
    if (chunk_size == 0)
        chunk_size = BC_UPLOADER_CHUNK_DEFAULT;
    if (window == 0)
        window = BC_UPLOADER_WINDOW_DEFAULT;
    if (chunk_size > BC_UPLOADER_CHUNK_MAX)
        return bc_fail(err, BC_ERR_INVAL, "chunk_size %zu is over %u", chunk_size,
                       BC_UPLOADER_CHUNK_MAX);
    if (window > BC_UPLOADER_WINDOW_MAX)
        return bc_fail(err, BC_ERR_INVAL, "window %zu is over %u", window, BC_UPLOADER_WINDOW_MAX);

    bc_status rc = BC_OK;
    bc_uploader *up = calloc(1, sizeof(*up));
    if (up == NULL)
        return bc_fail(err, BC_ERR_NOMEM, "no memory for the uploader");
    up->fd = -1;
    up->receipt_wait_ms = BC_UPLOADER_RECEIPT_WAIT_MS;
    up->rec = rec;
    up->chunk_size = chunk_size;
    up->window = window;
    up->publish = publish;
    up->ud = userdata;
    snprintf(up->device, sizeof(up->device), "%s", device_id);
    if ((rc = bc_topic_device(up->topic, sizeof(up->topic), device_id, BC_TOPIC_UPLOAD)) != BC_OK) {
        rc = bc_fail(err, rc, "cannot build the upload topic");
        goto cleanup;
    }
    int n = snprintf(up->state_path, sizeof(up->state_path), "%s/%s", bc_recorder_data_dir(rec),
                     BC_UPLOADER_STATE_FILE);
    if (n < 0 || (size_t)n >= sizeof(up->state_path)) {
        rc = bc_fail(err, BC_ERR_INVAL, "the data directory path is too long");
        goto cleanup;
    }
    up->fl = calloc(window + 1, sizeof(*up->fl));
    up->buf = malloc(chunk_size);
    up->json_size = bc_message_chunk_json_max(chunk_size);
    up->json = up->json_size > 0 ? malloc(up->json_size) : NULL;
    if (up->fl == NULL || up->buf == NULL || up->json == NULL) {
        rc = bc_fail(err, BC_ERR_NOMEM, "no memory for the upload window");
        goto cleanup;
    }
    if (EVP_PKEY_up_ref(receipt_pub) != 1) {
        rc = bc_fail(err, BC_ERR_CRYPTO, "cannot take a reference to the receipt key");
        goto cleanup;
    }
    up->receipt_pub = receipt_pub;
    state_load(up);
    *out = up;
    return BC_OK;

cleanup:
    bc_uploader_free(up);
    return rc;
}

void bc_uploader_free(bc_uploader *up)
{
    if (up == NULL)
        return;
    if (up->fd >= 0)
        close(up->fd);
    EVP_PKEY_free(up->receipt_pub);
    free(up->fl);
    free(up->buf);
    free(up->json);
    free(up->prog);
    free(up);
}

bc_status bc_uploader_start(bc_uploader *up, bc_error *err)
{
    if (!up->active) {
        /* A new connection: offer again what was sent without a receipt. */
        up->active = true;
        prog_prune(up);
        for (size_t i = 0; i < up->nprog; i++)
            up->prog[i].done = false;
    }
    return pump(up, err);
}

bc_status bc_uploader_pause(bc_uploader *up, bc_error *err)
{
    bc_status rc = BC_OK;
    up->active = false;
    if (up->has_cur) {
        rc = state_save(up, up->cur.recording_id, up->acked, err);
        cur_drop(up);
    }
    return rc;
}

void bc_uploader_set_receipt_wait(bc_uploader *up, int64_t ms)
{
    up->receipt_wait_ms = ms < 1 ? 1 : ms;
}

int64_t bc_uploader_receipt_due_ms(const bc_uploader *up)
{
    int64_t now = bc_clock_monotonic_ms(), due = -1;
    for (size_t i = 0; up->active && i < up->nprog; i++) {
        const progress *p = &up->prog[i];
        if (!p->waiting || !p->done)
            continue;
        int64_t left = p->retry_at_ms > now ? p->retry_at_ms - now : 0;
        if (due < 0 || left < due)
            due = left;
    }
    return due;
}

bc_status bc_uploader_receipt_retry(bc_uploader *up, bc_error *err)
{
    int64_t now = bc_clock_monotonic_ms();
    for (size_t i = 0; up->active && i < up->nprog; i++) {
        progress *p = &up->prog[i];
        if (!p->waiting || !p->done || p->retry_at_ms > now)
            continue;
        log_warnx("uploader | receipt_overdue | id=%s (no receipt %lld s after it was sent: "
                  "the manifest is offered again)",
                  p->id, (long long)(p->retry_gap_ms / 1000));
        p->done = false; /* fully acknowledged: the manifest alone goes out */
        p->retry_gap_ms = p->retry_gap_ms * 2 > BC_UPLOADER_RECEIPT_WAIT_MAX_MS
                              ? BC_UPLOADER_RECEIPT_WAIT_MAX_MS
                              : p->retry_gap_ms * 2;
        p->retry_at_ms = now + p->retry_gap_ms;
    }
    return pump(up, err);
}

int64_t bc_uploader_hold_ms(const bc_uploader *up)
{
    int64_t left = up->hold_until_ms - bc_clock_monotonic_ms();
    return left > 0 ? left : 0;
}

/* The broker did not pass a manifest or chunk on: the bytes are not in the
 * vault's stream. Resume the recording from its acknowledged offset (the
 * in-flight rest is dropped: their PUBACKs are ignored) after a pause, so
 * that a camera over the broker's upload rate limit slows down instead of
 * leaving holes for the vault to ask for. */
static void on_refused(bc_uploader *up, const flight *f, int reason)
{
    unsigned shift = up->refusals < 7 ? up->refusals : 7;
    int64_t delay = (int64_t)HOLD_MIN_MS << shift;
    if (delay > HOLD_MAX_MS)
        delay = HOLD_MAX_MS;
    up->refusals++;
    up->chunks_refused++;
    up->hold_until_ms = bc_clock_monotonic_ms() + delay;
    log_warnx("uploader | refused | id=%s offset=%llu reason=0x%02x resume=%llu in %lld ms",
              up->cur.recording_id, (unsigned long long)f->offset, reason,
              (unsigned long long)up->acked, (long long)delay);
    snprintf(up->next_id, sizeof(up->next_id), "%s", up->cur.recording_id);
    cur_drop(up);
}

bc_status bc_uploader_on_published(bc_uploader *up, int mid, int reason, bc_error *err)
{
    size_t i = 0;
    while (i < up->nfl && (up->fl[i].mid != mid || up->fl[i].acked))
        i++;
    if (!up->has_cur || i == up->nfl)
        return BC_OK; /* not ours, or forgotten */
    if (reason >= PUBACK_FAILURE || reason == PUBACK_NO_SUBSCRIBERS) {
        on_refused(up, &up->fl[i], reason);
        return BC_OK;
    }
    up->refusals = 0;
    up->fl[i].acked = true;
    if (up->fl[i].len > 0) {
        up->chunks_in_flight--;
        up->bytes_acked += up->fl[i].len;
    }
    size_t pop = 0;
    while (pop < up->nfl && up->fl[pop].acked) {
        uint64_t end = up->fl[pop].offset + up->fl[pop].len;
        if (end > up->acked)
            up->acked = end;
        if (up->fl[pop].len > 0)
            up->since_save++;
        pop++;
    }
    memmove(up->fl, up->fl + pop, (up->nfl - pop) * sizeof(*up->fl));
    up->nfl -= pop;
    if (up->since_save >= BC_UPLOADER_SAVE_EVERY) {
        bc_error e;
        up->since_save = 0;
        if (state_save(up, up->cur.recording_id, up->acked, &e) != BC_OK) {
            log_warnx("uploader | save_failed | %s", e.text);
            note_error(up, &e);
        }
    }
    return pump(up, err);
}

bc_status bc_uploader_request(bc_uploader *up, const char *recording_id, int64_t offset,
                              bc_error *err)
{
    bc_status rc;
    bc_error e;
    if (recording_id == NULL || recording_id[0] == '\0') {
        if (offset != 0)
            return bc_fail(err, BC_ERR_INVAL, "offset must be 0 when every recording is asked");
        cur_drop(up);
        up->nprog = 0; /* no entry means "from 0, not sent yet" */
        up->next_id[0] = '\0';
        rc = state_save(up, "", 0, &e);
    } else {
        bc_recording_meta m;
        if (bc_recorder_find(up->rec, recording_id, &m) != BC_OK)
            return bc_fail(err, BC_ERR_NOT_FOUND, "no pending recording '%s' on this camera",
                           recording_id);
        if (offset < 0 || (uint64_t)offset > m.size)
            return bc_fail(err, BC_ERR_INVAL, "offset %lld is outside recording '%s' (%llu bytes)",
                           (long long)offset, recording_id, (unsigned long long)m.size);
        cur_drop(up);
        if (prog_set(up, recording_id, (uint64_t)offset, false) != BC_OK)
            return bc_fail(err, BC_ERR_NOMEM, "no memory for the upload request");
        snprintf(up->next_id, sizeof(up->next_id), "%s", recording_id);
        rc = state_save(up, recording_id, (uint64_t)offset, &e);
    }
    if (rc != BC_OK) {
        log_warnx("uploader | save_failed | %s", e.text);
        note_error(up, &e);
    }
    log_info("uploader | requested | id=%s offset=%lld",
             recording_id != NULL && recording_id[0] ? recording_id : "*", (long long)offset);
    return pump(up, err);
}

/* The checks of bc_command_verify but the replay cache, for a caller that
 * verified already: defence in depth, and the receipt key is ours. */
static bc_status receipt_check(const bc_uploader *up, const bc_command *cmd, int64_t now_ms,
                               bc_error *err)
{
    if (strcmp(cmd->device, up->device) != 0)
        return bc_fail(err, BC_ERR_DENIED, "receipt is addressed to '%s', not to this camera",
                       cmd->device);
    if (!cmd->has_sig)
        return bc_fail(err, BC_ERR_SIGNATURE, "receipt is not signed");
    bc_canon c = {0};
    bc_status rc = bc_command_canonical(cmd, &c);
    if (rc == BC_OK)
        rc = bc_verify(up->receipt_pub, c.data, c.len, cmd->sig);
    bc_canon_free(&c);
    if (rc != BC_OK)
        return bc_fail(err, BC_ERR_SIGNATURE, "receipt '%s' is not signed by the vault receipt key",
                       cmd->id);
    if ((rc = bc_command_validate(cmd, err)) != BC_OK)
        return rc;
    if (cmd->issued_at > now_ms + BC_COMMAND_MAX_SKEW_MS || now_ms >= cmd->expires_at)
        return bc_fail(err, BC_ERR_EXPIRED, "receipt '%s' is outside its time window", cmd->id);
    return BC_OK;
}

bc_status bc_uploader_on_receipt(bc_uploader *up, const bc_command *cmd, int64_t now_ms,
                                 bc_replay_cache *cache, bc_error *err)
{
    bc_error e;
    bc_error_clear(&e);
    bc_status rc;
    if (cmd == NULL || cmd->kind != BC_CMD_VAULT_RECEIPT)
        rc = bc_fail(&e, BC_ERR_INVAL, "the command is not a vault receipt");
    else if (cache != NULL)
        rc = bc_command_verify(cmd, up->device, up->receipt_pub, now_ms, cache, &e);
    else
        rc = receipt_check(up, cmd, now_ms, &e);
    if (rc == BC_OK)
        rc = bc_recorder_delete_with_receipt(up->rec, cmd, &e);
    if (rc != BC_OK) {
        up->receipts_refused++;
        note_error(up, &e);
        log_warnx("uploader | receipt_refused | id=%s cmd=%s reason=%s",
                  cmd != NULL ? cmd->params.receipt.recording_id : "-", cmd != NULL ? cmd->id : "-",
                  e.text);
        if (err != NULL)
            *err = e;
        return rc;
    }

    const char *id = cmd->params.receipt.recording_id;
    up->receipts_accepted++;
    prog_remove(up, id);
    if (strcmp(up->next_id, id) == 0)
        up->next_id[0] = '\0';
    if (up->has_cur && strcmp(up->cur.recording_id, id) == 0) {
        if (up->fd >= 0)
            close(up->fd);
        up->fd = -1;
        up->has_cur = false;
        up->nfl = up->chunks_in_flight = 0;
    }
    if (strcmp(up->saved_id, id) == 0 && state_save(up, "", 0, &e) != BC_OK)
        log_warnx("uploader | save_failed | %s", e.text);
    if (pump(up, &e) != BC_OK)
        log_warnx("uploader | send_failed | %s", e.text);
    return BC_OK;
}

void bc_uploader_get_stats(const bc_uploader *up, bc_uploader_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->active = up->active;
    out->pending_uploads = bc_recorder_pending_count(up->rec);
    bc_recording_meta m;
    for (size_t i = 0; bc_recorder_pending_at(up->rec, i, &m) == BC_OK; i++) {
        uint64_t acked = 0;
        const progress *p = prog_find(up, m.recording_id);
        if (up->has_cur && strcmp(up->cur.recording_id, m.recording_id) == 0)
            acked = up->acked;
        else if (p != NULL)
            acked = p->acked;
        out->bytes_pending += m.size - (acked < m.size ? acked : m.size);
    }
    if (up->has_cur) {
        snprintf(out->current_id, sizeof(out->current_id), "%s", up->cur.recording_id);
        out->current_offset = up->acked;
        out->current_size = up->cur.size;
    }
    out->in_flight = up->chunks_in_flight;
    out->chunks_published = up->chunks_published;
    out->bytes_acked = up->bytes_acked;
    out->receipts_accepted = up->receipts_accepted;
    out->receipts_refused = up->receipts_refused;
    out->chunks_refused = up->chunks_refused;
    snprintf(out->last_error, sizeof(out->last_error), "%s", up->last_error.text);
}
