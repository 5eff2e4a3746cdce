/*
 * chunks.c - the retained chunk topics bodycam/v1/firmware/<version>/chunk/<n>
 * (QoS 1, retained, through the outbox).
 *
 * The chunks of an active rollout's version (and of its rollback
 * versions) are published when it starts and again every chunk_refresh_s
 * (a broker restarted without persistence lost them); once the rollout
 * ended they are cleared with an empty retained payload. Which rollouts
 * have chunks out is kept in Redis (bodycam:rollouts:retained), so another
 * instance or a restart clears what this one published.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "firmware-rollout/fwrollout.h"
#include "firmware-rollout/images.h"

#define RETAINED_MAX 16

typedef struct retained_list {
    bc_rollout_retained items[RETAINED_MAX];
    size_t n;
} retained_list;

static bool collect(const bc_rollout_retained *x, void *userdata)
{
    retained_list *l = userdata;
    if (l->n < RETAINED_MAX)
        l->items[l->n++] = *x;
    return l->n < RETAINED_MAX;
}

/* Every chunk of version: its bytes (publish) or an empty payload (clear). */
static bc_status chunks_out(fw_service *s, const char *version, bool clear, bc_error *err)
{
    bc_image img;
    bc_status st = bc_image_get(&s->loop.cmd, version, &img, err);
    if (st != BC_OK)
        return st;
    for (int64_t n = 0; st == BC_OK && n < img.manifest.chunks; n++) {
        char topic[BC_TOPIC_MAX + 1];
        uint8_t *data = NULL;
        size_t len = 0;
        st = bc_topic_firmware_chunk(topic, sizeof(topic), version, (unsigned)n);
        if (st == BC_OK && !clear)
            st = bc_image_chunk(&s->loop.cmd, version, n, &data, &len, err);
        if (st == BC_OK)
            st = bc_outbox_add_bin(&s->loop.cmd, topic, data, len, 1, true, err);
        free(data);
    }
    return st;
}

static bc_status one(fw_service *s, const bc_rollout_retained *x, int64_t now)
{
    bool clear = !x->active;
    if (!clear && x->chunks_published_at > 0 &&
        now < x->chunks_published_at + s->cfg.chunk_refresh_s * 1000)
        return BC_OK;
    bc_error err;
    bc_error_clear(&err);
    bc_status st = BC_OK;
    for (size_t i = 0; i < x->version_count && st == BC_OK; i++) {
        st = chunks_out(s, x->versions[i], clear, &err);
        if (st == BC_ERR_NOT_FOUND) {
            log_warnx("rollout | chunks_missing | rollout=%s version=%s reason=%s", x->id,
                      x->versions[i], err.text);
            st = BC_OK;
        }
    }
    if (st == BC_OK)
        st = clear ? bc_rollout_chunks_cleared(&s->loop.cmd, x->id, &err)
                   : bc_rollout_chunks_published(&s->loop.cmd, x->id, now, &err);
    if (st == BC_ERR_UNAVAILABLE) {
        fw_redis_failed(s, "chunks", &err);
        return st;
    }
    if (st != BC_OK) {
        log_warnx("rollout | chunks_failed | rollout=%s reason=%s", x->id, err.text);
        return st;
    }
    if (clear)
        s->stats.chunks_cleared++;
    else
        s->stats.chunks_published++;
    log_info("rollout | %s | rollout=%s versions=%zu",
             clear ? "chunks_cleared" : "chunks_published", x->id, x->version_count);
    return BC_OK;
}

void fw_chunks_pass(fw_service *s)
{
    static retained_list l;
    memset(&l, 0, sizeof(l));
    bc_error err;
    bc_error_clear(&err);
    if (bc_rollout_retained_list(&s->loop.cmd, collect, &l, &err) != BC_OK) {
        fw_redis_failed(s, "chunks", &err);
        return;
    }
    int64_t now = bc_clock_now_ms();
    for (size_t i = 0; i < l.n; i++) {
        if (one(s, &l.items[i], now) == BC_ERR_UNAVAILABLE)
            return;
    }
}
