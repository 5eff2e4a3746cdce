/*
 * recording_keys.c - reads the vault's recording keys (recording_keys.h)
 * in one script, so the list and the current key are one snapshot.
 */
#include "key-rotation/recording_keys.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/script.h"

#define STRIDE 6 /* key_id, status, created_at, retired_at, destroyed_at, current */

/* {key_id, status, created_at, retired_at, destroyed_at, current}... by
 * created_at, then id */
static const char list_src[] =
    "local P = 'bodycam:'\n"
    "local ids = redis.call('SMEMBERS', P .. 'recording-keys')\n"
    "local cur = redis.call('GET', P .. 'recording-keys:current') or ''\n"
    "if cur ~= '' and redis.call('SISMEMBER', P .. 'recording-keys', cur) == 0 then\n"
    "  ids[#ids + 1] = cur\n"
    "end\n"
    "local rows = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  local v = redis.call('HMGET', P .. 'recording-key:' .. id, 'status', 'created_at',\n"
    "    'retired_at', 'destroyed_at')\n"
    "  local c = '0'\n"
    "  if id == cur then c = '1' end\n"
    "  rows[#rows + 1] = {id, v[1] or '', v[2] or '0', v[3] or '0', v[4] or '0', c}\n"
    "end\n"
    "table.sort(rows, function(a, b)\n"
    "  local x, y = tonumber(a[3]) or 0, tonumber(b[3]) or 0\n"
    "  if x ~= y then return x < y end\n"
    "  return a[1] < b[1]\n"
    "end)\n"
    "local out = {}\n"
    "for _, r in ipairs(rows) do\n"
    "  for i = 1, #r do out[#out + 1] = r[i] end\n"
    "end\n"
    "return out\n";

static bc_script list_script;
static pthread_once_t list_once = PTHREAD_ONCE_INIT;
static bc_status list_ready = BC_ERR_STATE;

static void list_build(void)
{
    list_ready =
        bc_script_init(&list_script, "recording_keys", list_src, sizeof(list_src) - 1, NULL);
}

static bool el_str(const redisReply *e, char *dst, size_t cap)
{
    if (e == NULL || e->type != REDIS_REPLY_STRING || e->len >= cap ||
        memchr(e->str, '\0', e->len) != NULL)
        return false;
    memcpy(dst, e->str, e->len);
    dst[e->len] = '\0';
    return true;
}

/* "" counts as 0: a field the vault has not written (yet). */
static bool el_i64(const redisReply *e, int64_t *v)
{
    char buf[24];
    if (!el_str(e, buf, sizeof(buf)))
        return false;
    if (buf[0] == '\0') {
        *v = 0;
        return true;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *v = x;
    return true;
}

static bool parse_key(redisReply *const *e, bc_recording_key *k)
{
    memset(k, 0, sizeof(*k));
    if (!el_str(e[0], k->key_id, sizeof(k->key_id)) ||
        !el_str(e[1], k->status, sizeof(k->status)) || !el_i64(e[2], &k->created_at) ||
        !el_i64(e[3], &k->retired_at) || !el_i64(e[4], &k->destroyed_at))
        return false;
    k->current = e[5]->type == REDIS_REPLY_STRING && e[5]->len == 1 && e[5]->str[0] == '1';
    return true;
}

bc_status bc_recording_keys_list(bc_redis *r, bc_recording_key_fn fn, void *userdata, bc_error *err)
{
    if (pthread_once(&list_once, list_build) != 0 || list_ready != BC_OK)
        return bc_fail(err, BC_ERR_STATE, "the recording keys script could not be built");
    const char *argv[BC_SCRIPT_ARGV_HEAD];
    size_t lens[BC_SCRIPT_ARGV_HEAD];
    redisReply *rep = NULL;
    bc_status st = bc_script_run(r, &list_script, BC_SCRIPT_ARGV_HEAD, argv, lens, &rep, err);
    if (st != BC_OK)
        return st;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements % STRIDE != 0)
        st = bc_fail(err, BC_ERR_PARSE, "the recording keys script answered an unexpected reply");
    for (size_t i = 0; st == BC_OK && i < rep->elements; i += STRIDE) {
        bc_recording_key k;
        if (!parse_key(rep->element + i, &k))
            st = bc_fail(err, BC_ERR_PARSE, "recording key record %zu does not fit", i / STRIDE);
        else if (!fn(&k, userdata))
            break;
    }
    freeReplyObject(rep);
    return st;
}
