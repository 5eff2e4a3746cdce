/*
 * video_source.h - where a camera's bytes come from, behind a small
 * function table (with the clock, the only thing tests swap out).
 *
 * Two kinds of source:
 *   - timed (synthetic): always has bytes; the caller pulls
 *     bc_video_source_bytes_per_tick() bytes on each tick of its timer, so
 *     the stream has the configured bitrate; fd() is -1;
 *   - pollable (file, stdin): the caller watches fd() in the reactor and
 *     reads when it is readable; bytes_per_tick is 0; reads never block.
 *
 * The synthetic stream is deterministic, so anyone (a test, the benchmark,
 * a Python script with hashlib) can regenerate it and check a decrypted
 * recording byte for byte. It is a sequence of 4096-byte frames:
 *
 *   "BCSYNTH1" | u64 BE frame number | u64 BE seed | payload (4072 bytes)
 *   payload = SHA-256(seed_be8 || frame_be8 || u32 BE block), block = 0, 1, ...
 *             concatenated and cut to 4072 bytes
 *
 * Frame numbers start at 0; the seed is configured per camera.
 */
#ifndef BC_AGENT_VIDEO_SOURCE_H
#define BC_AGENT_VIDEO_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/status.h"

#define BC_SYNTH_FRAME_SIZE 4096
#define BC_SYNTH_MAGIC "BCSYNTH1"
#define BC_SYNTH_HEADER_SIZE 24

typedef struct bc_video_source bc_video_source;

/* The function table an implementation provides. */
typedef struct bc_video_source_ops {
    const char *name;
    /* Reads up to cap bytes into buf; *got = bytes read. *got == 0 with
     * *eof false: nothing available now. *eof true: the stream ended
     * (nothing more will ever come). BC_ERR_IO on a read error. */
    bc_status (*read)(bc_video_source *src, uint8_t *buf, size_t cap, size_t *got, bool *eof,
                      bc_error *err);
    /* The fd to poll for readability, or -1 for a timed source. */
    int (*fd)(const bc_video_source *src);
    /* Bytes one tick of tick_ms is worth (timed sources; 0 for pollable). */
    size_t (*bytes_per_tick)(const bc_video_source *src, int64_t tick_ms);
    /* Releases impl. */
    void (*free)(bc_video_source *src);
} bc_video_source_ops;

struct bc_video_source {
    const bc_video_source_ops *ops;
    void *impl; /* the implementation's state */
};

/* Dispatchers: call the source's function (safe for NULL src in free). */
bc_status bc_video_source_read(bc_video_source *src, uint8_t *buf, size_t cap, size_t *got,
                               bool *eof, bc_error *err);
int bc_video_source_fd(const bc_video_source *src);
size_t bc_video_source_bytes_per_tick(const bc_video_source *src, int64_t tick_ms);
const char *bc_video_source_name(const bc_video_source *src);
void bc_video_source_free(bc_video_source *src);

/* A synthetic source: the stream of the header comment for seed, starting
 * at frame 0, at bitrate_bps bits per second (> 0). BC_ERR_INVAL for a zero
 * bitrate, BC_ERR_NOMEM, BC_ERR_CRYPTO. Free with bc_video_source_free. */
bc_status bc_video_synthetic_new(uint64_t seed, uint64_t bitrate_bps, bc_video_source **out,
                                 bc_error *err);

/* A file source; "-" is stdin (set non-blocking; its flags are restored
 * and it is not closed on free). BC_ERR_IO (errno preserved) if it cannot
 * be opened or configured, BC_ERR_NOMEM. */
bc_status bc_video_file_new(const char *path, bc_video_source **out, bc_error *err);

/* Writes synthetic frame number `frame` of `seed` into out. BC_ERR_CRYPTO
 * if SHA-256 fails. */
bc_status bc_synthetic_frame(uint64_t seed, uint64_t frame, uint8_t out[BC_SYNTH_FRAME_SIZE]);

/* Checks that buf (len bytes) is one contiguous piece of the synthetic
 * stream of seed: whole consecutive frames, where the first and the last
 * may be partial (a recording starts and stops anywhere; the pre-event
 * buffer cuts wherever it wraps). *first_frame gets the number of the
 * frame holding buf[0]; *frames the number of frames buf touches (partial
 * ones included). The first frame header must lie in the first 4096 + 23
 * bytes, so len must reach it. BC_ERR_TAMPERED when any byte differs
 * (err says at which offset), BC_ERR_PARSE when no frame header of this
 * seed is found, BC_ERR_CRYPTO. An empty buf is BC_OK with 0 frames. */
bc_status bc_synthetic_verify(const uint8_t *buf, size_t len, uint64_t seed, uint64_t *first_frame,
                              uint64_t *frames, bc_error *err);

#endif
