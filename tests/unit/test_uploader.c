/* Unit tests for device-agent/uploader: manifest first, then chunks in
 * order with the window respected; the published chunks reassemble to the
 * file byte for byte (sha256 equal to the manifest's); a pause re-sends
 * from the acknowledged prefix, which also survives a new uploader; an
 * upload request re-sends from an offset; receipts that are forged,
 * mismatched, foreign, unknown or replayed are refused and the file stays;
 * the right one deletes. The publish function is a recorder of messages;
 * PUBACKs are delivered by the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "device-agent/recorder.h"
#include "device-agent/uploader.h"
#include "proto/encoding.h"
#include "proto/message.h"
#include "proto/sign.h"
#include "test_util.h"

#define DEVICE "cam-7"
#define CHUNK 1000
#define WINDOW 3
#define MAX_PUBS 4096

typedef struct pub {
    int mid;
    bool acked;
    bc_message msg; /* decoded upload message */
} pub;

typedef struct fixture {
    char dir[64];
    EVP_PKEY *vault_pub;
    EVP_PKEY *receipt; /* the vault's receipt key (private: signs) */
    EVP_PKEY *forger;  /* any other Ed25519 key */
    bc_recorder *rec;
    bc_recording_meta a, b; /* a recorded before b */
    pub *pubs;
    size_t npubs;
    int next_mid;
    int fail_publish; /* > 0: fail that many calls */
    size_t max_chunks_in_flight;
} fixture;

static size_t chunks_in_flight(const fixture *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->npubs; i++)
        if (!f->pubs[i].acked && f->pubs[i].msg.upload.kind == BC_UPLOAD_CHUNK)
            n++;
    return n;
}

static int publish(void *ud, const char *topic, const char *payload, size_t len, int qos, int *mid)
{
    fixture *f = ud;
    if (f->fail_publish > 0) {
        f->fail_publish--;
        return 14; /* like MOSQ_ERR_NO_CONN... any non-zero */
    }
    assert_string_equal(topic, "bodycam/v1/devices/" DEVICE "/upload");
    assert_int_equal(qos, 1);
    assert_int_equal(strlen(payload), len);
    assert_true(f->npubs < MAX_PUBS);
    pub *p = &f->pubs[f->npubs];
    bc_error e;
    /* decode checks every field and that a chunk's sha256 is its data's */
    if (bc_message_decode(BC_TOPIC_UPLOAD, payload, len, &p->msg, &e) != BC_OK)
        fail_msg("published an invalid upload message: %s", e.text);
    assert_string_equal(p->msg.upload.device, DEVICE);
    p->mid = ++f->next_mid;
    p->acked = false;
    *mid = p->mid;
    f->npubs++;
    size_t n = chunks_in_flight(f);
    if (n > f->max_chunks_in_flight)
        f->max_chunks_in_flight = n;
    return 0;
}

static void record(fixture *f, const char *id, int64_t at, size_t len, unsigned seed,
                   bc_recording_meta *m)
{
    bc_error e;
    uint8_t *data = bc_test_pattern(len, seed);
    assert_int_equal(bc_recorder_start(f->rec, id, at, 2, false, &e), BC_OK);
    assert_int_equal(bc_recorder_feed(f->rec, data, len, &e), BC_OK);
    assert_int_equal(bc_recorder_stop(f->rec, at + 5000, m, &e), BC_OK);
    free(data);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    EVP_PKEY *vault = NULL; /* only its public half stays: the camera's view */
    if (bc_test_tempdir(f->dir, sizeof(f->dir), "uploader") != BC_OK ||
        bc_test_x25519_pair(&vault, &f->vault_pub) != BC_OK)
        return -1;
    EVP_PKEY_free(vault);
    f->receipt = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    f->forger = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    f->pubs = calloc(MAX_PUBS, sizeof(*f->pubs));
    if (f->receipt == NULL || f->forger == NULL || f->pubs == NULL)
        return -1;
    bc_error e;
    if (bc_recorder_open(f->dir, f->vault_pub, NULL, DEVICE, 4096, 0, &f->rec, &e) != BC_OK)
        return -1;
    *state = f;
    /* b is made first but recorded later: order is by recorded_at */
    record(f, "rec-b", 2000000, 9000, 2, &f->b);
    record(f, "rec-a", 1000000, 20000, 1, &f->a);
    return 0;
}

static void clear_pubs(fixture *f)
{
    for (size_t i = 0; i < f->npubs; i++)
        bc_message_free(&f->pubs[i].msg);
    f->npubs = 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    clear_pubs(f);
    free(f->pubs);
    bc_recorder_free(f->rec);
    bc_test_remove_tree(f->dir);
    EVP_PKEY_free(f->vault_pub);
    EVP_PKEY_free(f->receipt);
    EVP_PKEY_free(f->forger);
    free(f);
    return 0;
}

static bc_uploader *new_uploader(fixture *f)
{
    bc_uploader *up = NULL;
    bc_error e;
    if (bc_uploader_new(f->rec, DEVICE, f->receipt, CHUNK, WINDOW, publish, f, &up, &e) != BC_OK)
        fail_msg("uploader: %s", e.text);
    return up;
}

/* Acknowledges the oldest unacknowledged message; 0 when there is none. */
static int ack_oldest(fixture *f, bc_uploader *up)
{
    for (size_t i = 0; i < f->npubs; i++) {
        if (f->pubs[i].acked)
            continue;
        f->pubs[i].acked = true;
        bc_error e;
        assert_int_equal(bc_uploader_on_published(up, f->pubs[i].mid, 0, &e), BC_OK);
        return 1;
    }
    return 0;
}

static void ack_all(fixture *f, bc_uploader *up)
{
    while (ack_oldest(f, up))
        ;
}

static uint8_t *read_file(const fixture *f, const char *id, size_t *len)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/recordings/%s.bcrec", f->dir, id);
    return bc_test_read_file(p, len);
}

static void sha256_hex(const uint8_t *data, size_t len, char hex[65])
{
    uint8_t md[32];
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL), 1);
    assert_int_equal(bc_hex_encode(md, 32, hex, 65), BC_OK);
}

static const bc_msg_upload *upl(const fixture *f, size_t i)
{
    assert_true(i < f->npubs);
    return &f->pubs[i].msg.upload;
}

/* Checks that messages [from, to) are, for recording m: a manifest, then
 * chunks at start, start+CHUNK, ... reaching the end; and that everything
 * from start reassembles to the file. */
static void check_sequence(const fixture *f, size_t from, size_t to, const bc_recording_meta *m,
                           uint64_t start)
{
    const bc_msg_upload *u = upl(f, from);
    assert_int_equal(u->kind, BC_UPLOAD_MANIFEST);
    assert_string_equal(u->recording_id, m->recording_id);
    assert_string_equal(u->sha256, m->sha256);
    assert_int_equal(u->size, m->size);
    assert_string_equal(u->key_id, m->key_id);
    assert_int_equal(u->recorded_at, m->recorded_at);
    assert_int_equal(u->duration_ms, m->duration_ms);
    assert_int_equal(u->warnings, m->warnings);
    assert_int_equal(u->chunk_size, CHUNK);
    size_t flen = 0;
    uint8_t *file = read_file(f, m->recording_id, &flen);
    assert_int_equal(flen, m->size);
    uint8_t *re = calloc(1, flen);
    uint64_t expect = start;
    for (size_t i = from + 1; i < to; i++) {
        u = upl(f, i);
        assert_int_equal(u->kind, BC_UPLOAD_CHUNK);
        assert_string_equal(u->recording_id, m->recording_id);
        assert_int_equal(u->offset, expect);
        assert_true(u->data_len == CHUNK || expect + u->data_len == m->size);
        memcpy(re + u->offset, u->data, u->data_len);
        expect += u->data_len;
    }
    assert_int_equal(expect, m->size);
    assert_memory_equal(re + start, file + start, flen - start);
    if (start == 0) {
        char hex[65];
        sha256_hex(re, flen, hex);
        assert_string_equal(hex, m->sha256); /* byte-identical, as the manifest says */
    }
    free(re);
    free(file);
}

static void sign_receipt(fixture *f, bc_command *cmd, const char *cmd_id,
                         const bc_recording_meta *m, EVP_PKEY *key)
{
    memset(cmd, 0, sizeof(*cmd));
    snprintf(cmd->id, sizeof(cmd->id), "%s", cmd_id);
    snprintf(cmd->device, sizeof(cmd->device), DEVICE);
    cmd->kind = BC_CMD_VAULT_RECEIPT;
    cmd->issued_at = 1000000;
    cmd->expires_at = 1000000 + 3600000;
    snprintf(cmd->params.receipt.recording_id, sizeof(cmd->params.receipt.recording_id), "%s",
             m->recording_id);
    memcpy(cmd->params.receipt.sha256, m->sha256, sizeof(m->sha256));
    cmd->params.receipt.size = (int64_t)m->size;
    cmd->params.receipt.committed_at = 1000500;
    bc_error e;
    assert_int_equal(bc_command_sign(cmd, key, &e), BC_OK);
    (void)f;
}

/* ---- tests ------------------------------------------------------------- */

static void test_manifest_then_chunks_in_window(void **state)
{
    fixture *f = *state;
    bc_uploader *up = new_uploader(f);
    bc_uploader_stats st;
    bc_error e;
    bc_uploader_get_stats(up, &st);
    assert_false(st.active);
    assert_int_equal(st.pending_uploads, 2);
    assert_int_equal(st.bytes_pending, f->a.size + f->b.size);
    assert_int_equal(f->npubs, 0); /* paused until start */

    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    /* the oldest first: its manifest and exactly a window of chunks */
    assert_int_equal(f->npubs, 1 + WINDOW);
    assert_int_equal(upl(f, 0)->kind, BC_UPLOAD_MANIFEST);
    assert_string_equal(upl(f, 0)->recording_id, "rec-a");
    bc_uploader_get_stats(up, &st);
    assert_true(st.active);
    assert_string_equal(st.current_id, "rec-a");
    assert_int_equal(st.in_flight, WINDOW);
    assert_int_equal(st.current_offset, 0);
    /* starting again while active sends nothing more */
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    assert_int_equal(f->npubs, 1 + WINDOW);

    /* each acknowledgement opens the window by one */
    assert_true(ack_oldest(f, up)); /* the manifest: no chunk freed */
    assert_int_equal(f->npubs, 1 + WINDOW);
    assert_true(ack_oldest(f, up));
    assert_int_equal(f->npubs, 2 + WINDOW);
    bc_uploader_get_stats(up, &st);
    assert_int_equal(st.current_offset, CHUNK);

    ack_all(f, up);
    assert_int_equal(f->max_chunks_in_flight, WINDOW);
    size_t a_chunks = (f->a.size + CHUNK - 1) / CHUNK;
    size_t b_chunks = (f->b.size + CHUNK - 1) / CHUNK;
    assert_int_equal(f->npubs, 1 + a_chunks + 1 + b_chunks);
    check_sequence(f, 0, 1 + a_chunks, &f->a, 0);
    check_sequence(f, 1 + a_chunks, f->npubs, &f->b, 0);

    bc_uploader_get_stats(up, &st);
    assert_string_equal(st.current_id, "");
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.bytes_pending, 0);
    assert_int_equal(st.pending_uploads, 2); /* until the receipts */
    assert_int_equal(st.chunks_published, a_chunks + b_chunks);
    assert_int_equal(st.bytes_acked, f->a.size + f->b.size);
    /* nothing is sent twice within a connection */
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    assert_int_equal(f->npubs, 1 + a_chunks + 1 + b_chunks);
    bc_uploader_free(up);
}

static void test_pause_resumes_from_acknowledged_prefix(void **state)
{
    fixture *f = *state;
    bc_uploader *up = new_uploader(f);
    bc_error e;
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    /* manifest, chunk 0, chunk 1, chunk 2 in flight; PUBACKs arrive for
     * the manifest, chunk 0 and chunk 2, not chunk 1 */
    assert_int_equal(f->npubs, 4);
    int mids[4];
    for (int i = 0; i < 4; i++)
        mids[i] = f->pubs[i].mid;
    f->pubs[0].acked = f->pubs[1].acked = f->pubs[3].acked = true;
    assert_int_equal(bc_uploader_on_published(up, mids[0], 0, &e), BC_OK);
    assert_int_equal(bc_uploader_on_published(up, mids[1], 0, &e), BC_OK);
    assert_int_equal(bc_uploader_on_published(up, mids[3], 0, &e), BC_OK);
    bc_uploader_stats st;
    bc_uploader_get_stats(up, &st);
    assert_int_equal(st.current_offset, CHUNK); /* the contiguous prefix only */
    size_t before = f->npubs;

    assert_int_equal(bc_uploader_pause(up, &e), BC_OK);
    bc_uploader_get_stats(up, &st);
    assert_false(st.active);
    assert_int_equal(st.in_flight, 0);
    assert_true(bc_test_exists(f->dir, "upload.json"));
    /* a late PUBACK of the old connection changes nothing, sends nothing */
    assert_int_equal(bc_uploader_on_published(up, mids[2], 0, &e), BC_OK);
    assert_int_equal(f->npubs, before);

    clear_pubs(f);
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    assert_int_equal(upl(f, 0)->kind, BC_UPLOAD_MANIFEST);
    assert_string_equal(upl(f, 0)->recording_id, "rec-a");
    assert_int_equal(upl(f, 1)->kind, BC_UPLOAD_CHUNK);
    assert_int_equal(upl(f, 1)->offset, CHUNK); /* not 0, not 3 * CHUNK */
    ack_all(f, up);
    size_t a_rest = (f->a.size - CHUNK + CHUNK - 1) / CHUNK;
    check_sequence(f, 0, 1 + a_rest, &f->a, CHUNK);
    bc_uploader_free(up);
}

static void test_resume_point_survives_a_new_uploader(void **state)
{
    fixture *f = *state;
    bc_uploader *up = new_uploader(f);
    bc_error e;
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    /* the manifest and BC_UPLOADER_SAVE_EVERY + 1 chunks acknowledged,
     * then the agent dies (no pause) */
    for (unsigned i = 0; i < 1 + BC_UPLOADER_SAVE_EVERY + 1; i++)
        assert_true(ack_oldest(f, up));
    bc_uploader_free(up);

    clear_pubs(f);
    up = new_uploader(f);
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    assert_int_equal(upl(f, 0)->kind, BC_UPLOAD_MANIFEST);
    assert_string_equal(upl(f, 0)->recording_id, "rec-a");
    /* the save after 16 chunks is what survived */
    assert_int_equal(upl(f, 1)->offset, (int64_t)BC_UPLOADER_SAVE_EVERY * CHUNK);
    bc_uploader_free(up);

    /* after a pause, the pause's save is exact */
    clear_pubs(f);
    up = new_uploader(f);
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    assert_true(ack_oldest(f, up)); /* manifest */
    assert_true(ack_oldest(f, up)); /* chunk at 16000 */
    assert_int_equal(bc_uploader_pause(up, &e), BC_OK);
    bc_uploader_free(up);
    clear_pubs(f);
    up = new_uploader(f);
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    assert_int_equal(upl(f, 1)->offset, (int64_t)(BC_UPLOADER_SAVE_EVERY + 1) * CHUNK);
    ack_all(f, up);
    bc_uploader_stats st;
    bc_uploader_get_stats(up, &st);
    assert_int_equal(st.bytes_pending, 0);
    bc_uploader_free(up);
}

static void test_publish_failure_then_retry(void **state)
{
    fixture *f = *state;
    bc_uploader *up = new_uploader(f);
    bc_error e;
    f->fail_publish = 1; /* the manifest fails */
    assert_int_equal(bc_uploader_start(up, &e), BC_ERR_UNAVAILABLE);
    assert_int_equal(f->npubs, 0);
    bc_uploader_stats st;
    bc_uploader_get_stats(up, &st);
    assert_true(st.last_error[0] != '\0');
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    assert_int_equal(f->npubs, 1 + WINDOW);
    /* a chunk fails while the window refills: retried, no gap */
    f->fail_publish = 1;
    f->pubs[0].acked = f->pubs[1].acked = true;
    assert_int_equal(bc_uploader_on_published(up, f->pubs[0].mid, 0, &e), BC_OK);
    assert_int_equal(bc_uploader_on_published(up, f->pubs[1].mid, 0, &e), BC_ERR_UNAVAILABLE);
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    ack_all(f, up);
    size_t a_chunks = (f->a.size + CHUNK - 1) / CHUNK;
    check_sequence(f, 0, 1 + a_chunks, &f->a, 0);
    bc_uploader_free(up);
}

static void test_request_resends_from_offset(void **state)
{
    fixture *f = *state;
    bc_uploader *up = new_uploader(f);
    bc_error e;
    assert_int_equal(bc_uploader_request(up, "nope", 0, &e), BC_ERR_NOT_FOUND);
    assert_int_equal(bc_uploader_request(up, "rec-b", (int64_t)f->b.size + 1, &e), BC_ERR_INVAL);
    assert_int_equal(bc_uploader_request(up, "", 5, &e), BC_ERR_INVAL);
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    ack_all(f, up);
    clear_pubs(f);

    /* the vault found a bad chunk at 3000 of rec-b */
    assert_int_equal(bc_uploader_request(up, "rec-b", 3000, &e), BC_OK);
    assert_int_equal(upl(f, 0)->kind, BC_UPLOAD_MANIFEST);
    assert_string_equal(upl(f, 0)->recording_id, "rec-b");
    assert_int_equal(upl(f, 1)->offset, 3000);
    ack_all(f, up);
    check_sequence(f, 0, f->npubs, &f->b, 3000);
    clear_pubs(f);

    /* a request while paused is served at the next start, first */
    assert_int_equal(bc_uploader_pause(up, &e), BC_OK);
    assert_int_equal(bc_uploader_request(up, "rec-b", 0, &e), BC_OK);
    assert_int_equal(f->npubs, 0);
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    assert_string_equal(upl(f, 0)->recording_id, "rec-b");
    ack_all(f, up);
    size_t b_msgs = 1 + (f->b.size + CHUNK - 1) / CHUNK;
    check_sequence(f, 0, b_msgs, &f->b, 0);
    /* then rec-a, fully sent before: its manifest only */
    assert_int_equal(f->npubs, b_msgs + 1);
    assert_string_equal(upl(f, b_msgs)->recording_id, "rec-a");
    assert_int_equal(upl(f, b_msgs)->kind, BC_UPLOAD_MANIFEST);
    clear_pubs(f);

    /* every recording from 0 */
    assert_int_equal(bc_uploader_request(up, "", 0, &e), BC_OK);
    ack_all(f, up);
    size_t a_msgs = 1 + (f->a.size + CHUNK - 1) / CHUNK;
    assert_int_equal(f->npubs, a_msgs + b_msgs);
    check_sequence(f, 0, a_msgs, &f->a, 0);
    check_sequence(f, a_msgs, f->npubs, &f->b, 0);
    bc_uploader_free(up);
}

static void test_receipts(void **state)
{
    fixture *f = *state;
    bc_uploader *up = new_uploader(f);
    bc_replay_cache *cache = NULL;
    assert_int_equal(bc_replay_cache_new(16, &cache), BC_OK);
    const int64_t now = 1000000 + 60000;
    bc_command cmd;
    bc_error e;

    /* forged: signed by a key that is not the vault's receipt key */
    sign_receipt(f, &cmd, "r-forged", &f->a, f->forger);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, now, cache, &e), BC_ERR_SIGNATURE);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, now, NULL, &e), BC_ERR_SIGNATURE);
    assert_true(bc_test_exists(f->dir, "recordings/rec-a.bcrec"));

    /* mismatched hash, mismatched size, unknown recording (all signed right) */
    bc_recording_meta m = f->a;
    m.sha256[5] = m.sha256[5] == '0' ? '1' : '0';
    sign_receipt(f, &cmd, "r-hash", &m, f->receipt);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, now, cache, &e), BC_ERR_DENIED);
    assert_non_null(strstr(e.text, "sha256"));
    m = f->a;
    m.size++;
    sign_receipt(f, &cmd, "r-size", &m, f->receipt);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, now, cache, &e), BC_ERR_DENIED);
    m = f->a;
    snprintf(m.recording_id, sizeof(m.recording_id), "rec-zzz");
    sign_receipt(f, &cmd, "r-unknown", &m, f->receipt);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, now, cache, &e), BC_ERR_NOT_FOUND);

    /* for another camera; expired; not a receipt */
    sign_receipt(f, &cmd, "r-foreign", &f->a, f->receipt);
    snprintf(cmd.device, sizeof(cmd.device), "cam-8");
    assert_int_equal(bc_command_sign(&cmd, f->receipt, &e), BC_OK);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, now, cache, &e), BC_ERR_DENIED);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, now, NULL, &e), BC_ERR_DENIED);
    sign_receipt(f, &cmd, "r-late", &f->a, f->receipt);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, cmd.expires_at, NULL, &e), BC_ERR_EXPIRED);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, cmd.expires_at, cache, &e), BC_ERR_EXPIRED);
    cmd.kind = BC_CMD_UPLOAD;
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, now, cache, &e), BC_ERR_INVAL);

    assert_true(bc_test_exists(f->dir, "recordings/rec-a.bcrec"));
    assert_true(bc_test_exists(f->dir, "recordings/rec-a.json"));
    bc_uploader_stats st;
    bc_uploader_get_stats(up, &st);
    assert_int_equal(st.receipts_refused, 10);
    assert_int_equal(st.receipts_accepted, 0);
    assert_int_equal(st.pending_uploads, 2);

    /* the right one, while rec-a is being sent: deleted, sending goes on */
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    sign_receipt(f, &cmd, "r-good", &f->a, f->receipt);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, now, cache, &e), BC_OK);
    assert_false(bc_test_exists(f->dir, "recordings/rec-a.bcrec"));
    assert_false(bc_test_exists(f->dir, "recordings/rec-a.json"));
    bc_uploader_get_stats(up, &st);
    assert_int_equal(st.receipts_accepted, 1);
    assert_int_equal(st.pending_uploads, 1);
    assert_string_equal(st.current_id, "rec-b");
    /* replayed: refused by the cache */
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, now, cache, &e), BC_ERR_REPLAY);

    /* a verified-elsewhere receipt for rec-b (cache NULL) */
    sign_receipt(f, &cmd, "r-good-b", &f->b, f->receipt);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, now, NULL, &e), BC_OK);
    assert_false(bc_test_exists(f->dir, "recordings/rec-b.bcrec"));
    bc_uploader_get_stats(up, &st);
    assert_int_equal(st.pending_uploads, 0);
    assert_int_equal(st.bytes_pending, 0);
    assert_string_equal(st.current_id, "");
    /* late PUBACKs of the deleted recordings are ignored */
    ack_all(f, up);
    bc_replay_cache_free(cache);
    bc_uploader_free(up);
}

static void test_new_argument_checks(void **state)
{
    fixture *f = *state;
    bc_uploader *up = NULL;
    bc_error e;
    assert_int_equal(bc_uploader_new(f->rec, DEVICE, f->receipt, BC_UPLOADER_CHUNK_MAX + 1, 0,
                                     publish, f, &up, &e),
                     BC_ERR_INVAL);
    assert_int_equal(bc_uploader_new(f->rec, DEVICE, f->receipt, 0, BC_UPLOADER_WINDOW_MAX + 1,
                                     publish, f, &up, &e),
                     BC_ERR_INVAL);
    assert_int_equal(bc_uploader_new(f->rec, DEVICE, f->vault_pub, 0, 0, publish, f, &up, &e),
                     BC_ERR_INVAL);
    assert_int_equal(bc_uploader_new(f->rec, "Bad", f->receipt, 0, 0, publish, f, &up, &e),
                     BC_ERR_INVAL);
    assert_int_equal(bc_uploader_new(f->rec, DEVICE, f->receipt, 0, 0, NULL, f, &up, &e),
                     BC_ERR_INVAL);
    assert_null(up);
    /* defaults: 32 KiB chunks, window 8 */
    assert_int_equal(bc_uploader_new(f->rec, DEVICE, f->receipt, 0, 0, publish, f, &up, &e), BC_OK);
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    assert_int_equal(upl(f, 0)->chunk_size, BC_UPLOADER_CHUNK_DEFAULT);
    assert_int_equal(f->npubs, 2); /* rec-a (20 KB) fits one chunk */
    bc_uploader_free(up);
}

/* A PUBACK that refuses a chunk (0x97: the broker's upload rate limit) must
 * not count as delivered: the uploader holds, then resends from the
 * acknowledged prefix, so the vault gets every byte without asking. */
static void test_refused_chunk_is_sent_again_after_a_hold(void **state)
{
    fixture *f = *state;
    bc_uploader *up = new_uploader(f);
    bc_error e;
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    assert_true(ack_oldest(f, up)); /* manifest */
    assert_true(ack_oldest(f, up)); /* chunk at 0 */
    size_t before = f->npubs;
    /* the next in-flight chunk (offset CHUNK) is refused */
    size_t victim = 0;
    while (f->pubs[victim].acked || f->pubs[victim].msg.upload.kind != BC_UPLOAD_CHUNK)
        victim++;
    assert_int_equal(upl(f, victim)->offset, CHUNK);
    f->pubs[victim].acked = true;
    assert_int_equal(bc_uploader_on_published(up, f->pubs[victim].mid, 0x97, &e), BC_OK);
    bc_uploader_stats st;
    bc_uploader_get_stats(up, &st);
    assert_int_equal(st.chunks_refused, 1);
    assert_true(bc_uploader_hold_ms(up) > 0);
    /* held: acknowledging the rest of the old window sends nothing */
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    assert_int_equal(f->npubs, before);
    for (size_t i = 0; i < f->npubs; i++)
        f->pubs[i].acked = true;
    while (bc_uploader_hold_ms(up) > 0)
        usleep(10000);
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    /* the manifest again, then the chunk that was refused */
    assert_true(f->npubs > before + 1);
    assert_int_equal(upl(f, before)->kind, BC_UPLOAD_MANIFEST);
    assert_string_equal(upl(f, before)->recording_id, "rec-a");
    assert_int_equal(upl(f, before + 1)->offset, CHUNK);
    ack_all(f, up);
    check_sequence(f, before, before + 1 + (f->a.size - CHUNK + CHUNK - 1) / CHUNK, &f->a, CHUNK);
    bc_uploader_free(up);
}

/* The receipt of a fully sent recording never comes (lost after the vault
 * committed) while the connection stays up: after the wait its manifest
 * alone is offered again, the wait doubles, and a receipt ends it. */
static void test_lost_receipt_manifest_offered_again(void **state)
{
    fixture *f = *state;
    bc_uploader *up = new_uploader(f);
    bc_error e;
    bc_uploader_set_receipt_wait(up, 30);
    assert_int_equal(bc_uploader_receipt_due_ms(up), -1); /* not active: nothing waits */
    assert_int_equal(bc_uploader_start(up, &e), BC_OK);
    ack_all(f, up); /* both recordings fully sent */
    int64_t due = bc_uploader_receipt_due_ms(up);
    assert_true(due > 0 && due <= 30);
    size_t before = f->npubs;
    assert_int_equal(bc_uploader_receipt_retry(up, &e), BC_OK);
    assert_int_equal(f->npubs, before); /* not due yet */
    usleep(40000);
    assert_int_equal(bc_uploader_receipt_due_ms(up), 0);
    assert_int_equal(bc_uploader_receipt_retry(up, &e), BC_OK);
    ack_all(f, up);
    /* two manifests, no chunk: the vault has every byte */
    assert_int_equal(f->npubs, before + 2);
    assert_int_equal(upl(f, before)->kind, BC_UPLOAD_MANIFEST);
    assert_int_equal(upl(f, before + 1)->kind, BC_UPLOAD_MANIFEST);
    due = bc_uploader_receipt_due_ms(up);
    assert_true(due > 30 && due <= 60); /* doubled */
    /* the receipts come: nothing waits any more */
    bc_command cmd;
    sign_receipt(f, &cmd, "r-a", &f->a, f->receipt);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, 1000000 + 60000, NULL, &e), BC_OK);
    sign_receipt(f, &cmd, "r-b", &f->b, f->receipt);
    assert_int_equal(bc_uploader_on_receipt(up, &cmd, 1000000 + 60000, NULL, &e), BC_OK);
    assert_int_equal(bc_uploader_receipt_due_ms(up), -1);
    bc_uploader_free(up);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_manifest_then_chunks_in_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resumes_from_acknowledged_prefix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_resume_point_survives_a_new_uploader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_failure_then_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_resends_from_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_chunk_is_sent_again_after_a_hold, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_receipts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_receipt_manifest_offered_again, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_new_argument_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
