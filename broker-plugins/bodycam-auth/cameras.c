/*
 * cameras.c - the sorted table of authenticated cameras.
 *
 * Inserts shift the tail (one memmove per camera per broker run); lookups
 * are bsearch() on the hot path (every message a camera sends).
 */
#include "broker-plugins/bodycam-auth/cameras.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int id_cmp(const void *key, const void *item)
{
    return strcmp(key, ((const bc_camera *)item)->id);
}

bc_camera *bc_cameras_find(bc_camera_table *t, const char *id)
{
    if (t == NULL || id == NULL || t->count == 0)
        return NULL;
    return bsearch(id, t->items, t->count, sizeof(*t->items), id_cmp);
}

/* Index where id belongs in the sorted array. */
static size_t insert_position(const bc_camera_table *t, const char *id)
{
    size_t lo = 0, hi = t->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->items[mid].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bc_status bc_cameras_get(bc_camera_table *t, const char *id, bc_camera **out)
{
    if (!bc_device_id_valid(id))
        return BC_ERR_INVAL;
    bc_camera *found = bc_cameras_find(t, id);
    if (found != NULL) {
        *out = found;
        return BC_OK;
    }
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        bc_camera *items = realloc(t->items, cap * sizeof(*items));
        if (items == NULL)
            return BC_ERR_NOMEM;
        t->items = items;
        t->cap = cap;
    }
    size_t at = insert_position(t, id);
    memmove(&t->items[at + 1], &t->items[at], (t->count - at) * sizeof(*t->items));
    memset(&t->items[at], 0, sizeof(*t->items));
    snprintf(t->items[at].id, sizeof(t->items[at].id), "%s", id);
    t->count++;
    *out = &t->items[at];
    return BC_OK;
}

void bc_cameras_prune(bc_camera_table *t, const bc_registry_snapshot *s)
{
    size_t kept = 0;
    for (size_t i = 0; i < t->count; i++) {
        if (bc_registry_find_device(s, t->items[i].id) == NULL)
            continue;
        if (kept != i)
            t->items[kept] = t->items[i];
        kept++;
    }
    t->count = kept;
}

void bc_cameras_free(bc_camera_table *t)
{
    free(t->items);
    t->items = NULL;
    t->count = t->cap = 0;
}
