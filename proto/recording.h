/*
 * recording.h - the recording file format (version 1): a streaming writer
 * for the camera, crash sealing, and a streaming reader for the vault.
 *
 * The byte layout is specified in proto/README.md ("Recording file format").
 * In short: a header (all of it authenticated) that carries the data key
 * wrapped for the vault's X25519 recording key, then one record per
 * fixed-size plaintext segment (AES-256-GCM, the index and a last flag in
 * nonce and AAD), and - only on a file recovered after a crash - a trailer
 * authenticated by a seal key that can mark an end but decrypt nothing.
 *
 * The writer holds the data key only in memory; no private key that opens
 * a recording is ever needed on the camera. Memory use is constant in the
 * length of a recording for the writer, the sealer and the reader.
 *
 * A function that takes a bc_error fills it (it may be NULL) with a sentence
 * on failure; the writer keeps its first failure (bc_recording_writer_error).
 */
#ifndef BC_PROTO_RECORDING_H
#define BC_PROTO_RECORDING_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto/status.h"
#include "proto/topic.h"

#define BC_RECORDING_VERSION 1
#define BC_RECORDING_SEGMENT_DEFAULT (64u * 1024u)
#define BC_RECORDING_SEGMENT_MIN 16u
#define BC_RECORDING_SEGMENT_MAX (16u * 1024u * 1024u)
#define BC_RECORDING_TAG_LEN 16
#define BC_RECORDING_SEAL_SUFFIX ".seal" /* the crash-sealing sidecar: "<file>.seal" */

/* The clear fields of a recording's header (the wrapped key is internal). */
typedef struct bc_recording_header {
    uint32_t segment_size; /* plaintext bytes per segment */
    char key_id[BC_ID_MAX + 1];
    char recording_id[BC_ID_MAX + 1];
    char device[BC_DEVICE_ID_MAX + 1];
    int64_t created_at_ms;
} bc_recording_header;

/* What a finished writer, a seal or a complete read learned about a file. */
typedef struct bc_recording_info {
    uint64_t size;           /* bytes of the recording file */
    uint64_t segments;       /* records in the file, the final one included */
    uint8_t sha256[32];      /* SHA-256 of the whole file, as stored */
    uint64_t plaintext_size; /* content bytes (writer, reader); 0 from seal (unknown there) */
    int interrupted;         /* 1: the file ends with a crash trailer, not a last segment */
    int sealed_now;          /* bc_recording_seal only: 1 when this call appended the trailer */
    uint64_t dropped;        /* bc_recording_seal only: bytes of a torn tail it removed */
} bc_recording_info;

/* ---- Writer (camera side) ---------------------------------------------- */

typedef struct bc_recording_writer bc_recording_writer;

/* Creates path exclusively (O_CREAT|O_EXCL, mode 0600), makes a fresh data
 * key, wraps it for vault_pub (an X25519 public key; borrowed), makes the
 * sidecar "<path>.seal" durable (tmp, fsync, rename, fsync of the directory),
 * then writes and fsyncs the header. key_id must be bc_key_id(vault_pub) or
 * NULL (then it is computed); recording_id must match the id alphabet,
 * device the device-id alphabet; segment_size 0 means the default, otherwise
 * BC_RECORDING_SEGMENT_MIN..MAX.
 * Failures: BC_ERR_INVAL (argument), BC_ERR_EXISTS (path exists),
 * BC_ERR_IO (errno preserved), BC_ERR_CRYPTO, BC_ERR_NOMEM. On failure no
 * writer is returned; a file already created is removed with its sidecar.
 * The caller owns *out and ends it with _close() or _abort(). */
bc_status bc_recording_writer_open(const char *path, EVP_PKEY *vault_pub, const char *key_id,
                                   const char *recording_id, const char *device,
                                   int64_t created_at_ms, uint32_t segment_size,
                                   bc_recording_writer **out, bc_error *err);

/* Appends plaintext. Buffers at most one segment; every segment that fills
 * up is encrypted and written as one record at once. Failures: BC_ERR_IO
 * (errno preserved), BC_ERR_CRYPTO, BC_ERR_INVAL (NULL data with len > 0).
 * After any failure the writer is sticky-failed, like a redisContext:
 * later writes, flushes and close return BC_ERR_STATE and
 * bc_recording_writer_error() says what went wrong first (the file can
 * still be recovered with bc_recording_seal). */
bc_status bc_recording_writer_write(bc_recording_writer *w, const void *data, size_t len);

/* fdatasync()s the records written so far (not the buffered partial
 * segment): after a crash, bc_recording_seal keeps at least them.
 * BC_ERR_IO or BC_ERR_STATE (sticky, as for write). */
bc_status bc_recording_writer_flush(bc_recording_writer *w);

/* The sentence describing the writer's first failure, "" while none.
 * Borrowed: valid until close or abort. */
const char *bc_recording_writer_error(const bc_recording_writer *w);

/* Writes the final segment (last = 1; it holds the buffered rest, possibly
 * nothing, and is always shorter than segment_size), fsyncs, deletes the
 * sidecar and fills info (may be NULL) with size, segments, sha256 (hashed
 * while writing, not re-read) and plaintext_size. Always frees w and wipes
 * its keys; on failure (BC_ERR_IO, BC_ERR_CRYPTO, BC_ERR_STATE after an
 * earlier failure) the file and its sidecar stay and the file can be sealed. */
bc_status bc_recording_writer_close(bc_recording_writer *w, bc_recording_info *info);

/* Frees w without finishing, exactly as a crash would leave things: the
 * buffered partial segment is lost, the file and the sidecar stay.
 * Wipes key material. NULL is allowed. */
void bc_recording_writer_abort(bc_recording_writer *w);

/* ---- Crash sealing (camera side, no private key needed) ---------------- */

/* Makes a recording left behind by a crash readable up to its last whole
 * record: drops a torn tail record, appends the trailer
 * (u32 0xFFFFFFFF | u64 count | HMAC), fsyncs, deletes the sidecar.
 * Idempotent: an already sealed or complete file returns BC_OK with info
 * and is not changed (a complete file whose sidecar survived a crash in
 * close only loses the sidecar). info (may be NULL) gets size, segments,
 * sha256, interrupted, sealed_now and dropped.
 * Failures: BC_ERR_TRUNCATED when the header itself is incomplete (a crash
 * before the header was durable: the file holds no content; the caller
 * decides what to do with it and its sidecar); BC_ERR_STATE when the file
 * is unfinished but its sidecar is gone; BC_ERR_PARSE for a header or
 * framing that is not this format; BC_ERR_IO; BC_ERR_CRYPTO. */
bc_status bc_recording_seal(const char *path, bc_recording_info *info, bc_error *err);

/* ---- Header ------------------------------------------------------------ */

/* Reads and parses only the header (no key needed). BC_ERR_TRUNCATED if the
 * file ends inside the header, BC_ERR_PARSE if it is not a recording,
 * BC_ERR_VERSION for another format version, BC_ERR_IO. */
bc_status bc_recording_info_read(const char *path, bc_recording_header *hdr, bc_error *err);

/* ---- Reader (vault side) ----------------------------------------------- */

typedef struct bc_recording_reader bc_recording_reader;

/* Opens a recording for reading with the vault's X25519 private key
 * (borrowed) and unwraps its data key. BC_ERR_WRONG_KEY when the header
 * names another key id or the unwrap fails; BC_ERR_TRUNCATED, BC_ERR_PARSE,
 * BC_ERR_VERSION for the header; BC_ERR_IO; BC_ERR_CRYPTO; BC_ERR_NOMEM.
 * The caller owns *out and frees it with bc_recording_reader_close(). */
bc_status bc_recording_reader_open(const char *path, EVP_PKEY *vault_priv,
                                   bc_recording_reader **out, bc_error *err);

/* The same on an open descriptor positioned at the start of the file; the
 * reader reads it sequentially and does not close it (fd stays the caller's). */
bc_status bc_recording_reader_open_fd(int fd, EVP_PKEY *vault_priv, bc_recording_reader **out,
                                      bc_error *err);

/* The header of an open reader; valid until bc_recording_reader_close(). */
const bc_recording_header *bc_recording_reader_header(const bc_recording_reader *r);

/* Reads, authenticates and decrypts the next segment into buf (cap must be
 * at least the header's segment_size) and sets *len. When the recording's
 * authenticated end has been reached, *done is 1 (the final call may also
 * carry data). Each segment is authenticated before it is returned, but
 * the end only at the final call: plaintext is provisional until *done.
 * Failures (sticky: every later call returns the same status):
 * BC_ERR_TAMPERED (a segment, the order of segments, the header or the
 * trailer fails authentication), BC_ERR_TRUNCATED (the data ends without a
 * last segment or a valid trailer), BC_ERR_PARSE (framing: a length over
 * segment_size + 16, bytes after the end), BC_ERR_INVAL (cap too small),
 * BC_ERR_IO. On failure buf holds nothing usable (it is wiped). */
bc_status bc_recording_reader_next(bc_recording_reader *r, uint8_t *buf, size_t cap, size_t *len,
                                   int *done, bc_error *err);

/* After *done: size, segments, sha256 of the file read, plaintext_size and
 * whether it ended with a crash trailer. BC_ERR_STATE before the end. */
bc_status bc_recording_reader_info(const bc_recording_reader *r, bc_recording_info *info);

/* Wipes the data key and frees r (and closes the file if it opened it).
 * NULL is allowed. */
void bc_recording_reader_close(bc_recording_reader *r);

/* Decrypts in_path into out_path, created exclusively with mode 0600 and
 * fsynced; on any failure out_path is removed, so no unauthenticated
 * plaintext is left behind. info may be NULL. Errors as for the reader,
 * plus BC_ERR_EXISTS when out_path exists. */
bc_status bc_recording_decrypt_file(const char *in_path, const char *out_path, EVP_PKEY *vault_priv,
                                    bc_recording_info *info, bc_error *err);

/* Authenticates the whole file and writes nothing: BC_OK only if every
 * segment and the end (last segment or trailer) authenticate. */
bc_status bc_recording_verify(const char *path, EVP_PKEY *vault_priv, bc_error *err);

/* ---- Low level --------------------------------------------------------- */

/* Encrypts one segment into one record, as the writer does: out receives
 * u32 len | ciphertext | tag (4 + len + 16 bytes). ctx must already be an
 * AES-256-GCM context keyed with the data key (it is re-initialised with
 * the segment nonce only). Exposed for the benchmark and fuzzers.
 * BC_ERR_INVAL when len > BC_RECORDING_SEGMENT_MAX, BC_ERR_CRYPTO. */
bc_status bc_recording_segment_encrypt(EVP_CIPHER_CTX *ctx, const uint8_t header_hash[32],
                                       uint64_t index, int last, const uint8_t *in, size_t len,
                                       uint8_t *out);

#endif
