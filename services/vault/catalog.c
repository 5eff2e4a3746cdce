/*
 * catalog.c - the vault's metadata in Redis (catalog.h): recordings,
 * holds and access requests, every change one Lua script.
 *
 * Invariants the scripts keep (services/vault/CATALOG-KEYS.md has the keys):
 *
 *   - a recording is in bodycam:recordings:expiry exactly while it is
 *     committed and has no active hold. hold_place (and an access request's
 *     inzage hold) takes it out; the release of its last active hold puts
 *     it back with its delete_after; purge_begin takes it out for good.
 *   - bodycam:holds:recording:<ref> holds the ACTIVE hold ids only, so
 *     "may this be purged" is one SCARD.
 *   - purge_begin selects from the expiry index and re-checks status and
 *     holds in the same script, so a hold that lands first wins, and a hold
 *     that comes after finds the recording purging and is refused.
 *   - an open request holds every committed recording that matches it:
 *     those there at registration (request_register) and those committed
 *     while it is open (commit); its matches are kept in
 *     bodycam:request:<id>:matches, with the purge's audit seq for
 *     recordings that were already gone.
 *
 * Scripts return flat arrays {verdict, ...}: 'ok' and the results,
 * 'not_found', 'state' with a code and a time (ms), or 'inval' with a code
 * and a value; the sentences for err are written here in C. Records travel
 * as their field values in the order of the tables below (rec_fields,
 * hold_fields, req_fields); the Lua lists RF, HF and QF are generated from
 * the same tables, so one list names the fields for both sides, and every
 * parser checks the reply's length before it reads an element.
 *
 * Values in Redis are strings; Lua compares numbers with tonumber() (ms
 * times are exact in a double) and formats what it computes with %d
 * (Lua 5.1 prints large numbers in exponent form). Audit seqs are never
 * converted in Lua.
 *
 * Scripts (common/script.h): each call sends EVALSHA; after NOSCRIPT (Redis
 * restarted or SCRIPT FLUSH) it sends EVAL, which also caches the script. A pipeline
 * (bc_catalog_commit_append) cannot fall back, so its caller loads the
 * scripts with bc_catalog_scripts_load once per connection generation.
 */
#include "vault/catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>

#include "common/reply.h"
#include "common/script_set.h"
#include "proto/encoding.h"

/* ---- the record layouts shared by C and Lua ---- */

enum {
    RF_REF,
    RF_DEVICE,
    RF_RECORDING_ID,
    RF_OFFICER,
    RF_RECORDED_AT,
    RF_DURATION_MS,
    RF_WARNINGS,
    RF_EMERGENCY,
    RF_KEY_ID,
    RF_SHA256,
    RF_SIZE,
    RF_COMMITTED_AT,
    RF_DELETE_AFTER,
    RF_STATUS,
    RF_PURGED_AT,
    RF_COMMIT_SEQ,
    RF_PURGE_SEQ,
    RF_COUNT
};

static const char *const rec_fields[RF_COUNT] = {
    [RF_REF] = "ref",
    [RF_DEVICE] = "device",
    [RF_RECORDING_ID] = "recording_id",
    [RF_OFFICER] = "officer",
    [RF_RECORDED_AT] = "recorded_at",
    [RF_DURATION_MS] = "duration_ms",
    [RF_WARNINGS] = "warnings",
    [RF_EMERGENCY] = "emergency",
    [RF_KEY_ID] = "key_id",
    [RF_SHA256] = "sha256",
    [RF_SIZE] = "size",
    [RF_COMMITTED_AT] = "committed_at",
    [RF_DELETE_AFTER] = "delete_after",
    [RF_STATUS] = "status",
    [RF_PURGED_AT] = "purged_at",
    [RF_COMMIT_SEQ] = "commit_audit_seq",
    [RF_PURGE_SEQ] = "purge_audit_seq",
};

#define REC_STRIDE (RF_COUNT + 1) /* the fields, then the active hold count */

enum {
    HF_ID,
    HF_REF,
    HF_REASON,
    HF_CASE_REF,
    HF_PLACED_BY,
    HF_PLACED_AT,
    HF_NOTE,
    HF_ACTIVE,
    HF_RELEASED_AT,
    HF_RELEASED_BY,
    HF_RELEASE_NOTE,
    HF_REQUEST_ID,
    HF_COUNT
};

static const char *const hold_fields[HF_COUNT] = {
    [HF_ID] = "id",
    [HF_REF] = "ref",
    [HF_REASON] = "reason",
    [HF_CASE_REF] = "case_ref",
    [HF_PLACED_BY] = "placed_by",
    [HF_PLACED_AT] = "placed_at",
    [HF_NOTE] = "note",
    [HF_ACTIVE] = "active",
    [HF_RELEASED_AT] = "released_at",
    [HF_RELEASED_BY] = "released_by",
    [HF_RELEASE_NOTE] = "release_note",
    [HF_REQUEST_ID] = "request_id",
};

enum {
    QF_ID,
    QF_REQUESTER,
    QF_CONTACT,
    QF_WINDOW_FROM,
    QF_WINDOW_TO,
    QF_PLACE,
    QF_CAMERAS,
    QF_OFFICER,
    QF_REGISTERED_AT,
    QF_REGISTERED_BY,
    QF_DEADLINE,
    QF_EXTENDED,
    QF_EXTENSION_REASON,
    QF_STATUS,
    QF_CLOSED_AT,
    QF_ANSWER,
    QF_OVERDUE_ALERTED,
    QF_HELD,
    QF_PURGED,
    QF_COUNT
};

static const char *const req_fields[QF_COUNT] = {
    [QF_ID] = "id",
    [QF_REQUESTER] = "requester",
    [QF_CONTACT] = "contact",
    [QF_WINDOW_FROM] = "window_from",
    [QF_WINDOW_TO] = "window_to",
    [QF_PLACE] = "place",
    [QF_CAMERAS] = "cameras",
    [QF_OFFICER] = "officer",
    [QF_REGISTERED_AT] = "registered_at",
    [QF_REGISTERED_BY] = "registered_by",
    [QF_DEADLINE] = "deadline",
    [QF_EXTENDED] = "extended",
    [QF_EXTENSION_REASON] = "extension_reason",
    [QF_STATUS] = "status",
    [QF_CLOSED_AT] = "closed_at",
    [QF_ANSWER] = "answer",
    [QF_OVERDUE_ALERTED] = "overdue_alerted",
    [QF_HELD] = "held",
    [QF_PURGED] = "purged",
};

/* A match: ref, status, hold id, recorded_at, purged_at, purge seq. */
#define MATCH_STRIDE 6

enum {
    KF_KEY_ID,
    KF_PUBLIC,
    KF_CREATED_AT,
    KF_STATUS,
    KF_RETIRED_AT,
    KF_DESTROYED_AT,
    KF_CAMPAIGN,
    KF_CREATED_BY,
    KF_REPLACED,
    KF_ADOPTED,
    KF_DESTROYING,
    KF_AUDIT_SEQ,
    KF_DESTROY_SEQ,
    KF_COUNT
};

static const char *const key_fields[KF_COUNT] = {
    [KF_KEY_ID] = "key_id",
    [KF_PUBLIC] = "public",
    [KF_CREATED_AT] = "created_at",
    [KF_STATUS] = "status",
    [KF_RETIRED_AT] = "retired_at",
    [KF_DESTROYED_AT] = "destroyed_at",
    [KF_CAMPAIGN] = "campaign",
    [KF_CREATED_BY] = "created_by",
    [KF_REPLACED] = "replaced",
    [KF_ADOPTED] = "adopted",
    [KF_DESTROYING] = "destroying",
    [KF_AUDIT_SEQ] = "audit_seq",
    [KF_DESTROY_SEQ] = "destroy_audit_seq",
};

/* ---- the scripts ---- */

/* Shared by every script, after the generated RF/HF/QF lists. */
static const char prelude[] =
    "local P = 'bodycam:'\n"
    "local EXPIRY = P .. 'recordings:expiry'\n"
    "local function s(n) return string.format('%d', n) end\n"
    "local function rk(ref) return P .. 'recording:' .. ref end\n"
    "local function hk(id) return P .. 'hold:' .. id end\n"
    "local function qk(id) return P .. 'request:' .. id end\n"
    "local function hr(ref) return P .. 'holds:recording:' .. ref end\n"
    "local function append(out, v) for i = 1, #v do out[#out + 1] = v[i] end end\n"
    /* one command over a long list, in pieces that fit Lua's stack */
    "local function call_many(cmd, key, list)\n"
    "  for i = 1, #list, 1000 do\n"
    "    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))\n"
    "  end\n"
    "end\n"
    /* a record's fields in list order ('' for a missing one); nil when the
     * key is gone (its first field, the name, is always written) */
    "local function fields(key, F)\n"
    "  local v = redis.call('HMGET', key, unpack(F))\n"
    "  if not v[1] then return nil end\n"
    "  for i = 1, #F do if not v[i] then v[i] = '' end end\n"
    "  return v\n"
    "end\n"
    "local function rec(ref)\n"
    "  local v = fields(rk(ref), RF)\n"
    "  if v then v[#v + 1] = s(redis.call('SCARD', hr(ref))) end\n"
    "  return v\n"
    "end\n"
    "local function hold(id) return fields(hk(id), HF) end\n"
    "local function req(id) return fields(qk(id), QF) end\n"
    "local RK_CURRENT, RK_SET = P .. 'recording-keys:current', P .. 'recording-keys'\n"
    "local function kk(id) return P .. 'recording-key:' .. id end\n"
    "local function rkey(id) return fields(kk(id), KF) end\n"
    "local function by_key(id) return P .. 'recordings:key:' .. id end\n"
    "local function hold_find(ref, reason, case)\n"
    "  for _, id in ipairs(redis.call('SMEMBERS', hr(ref))) do\n"
    "    local h = redis.call('HMGET', hk(id), 'reason', 'case_ref')\n"
    "    if h[1] == reason and h[2] == case then return id end\n"
    "  end\n"
    "  return nil\n"
    "end\n"
    "local function hold_new(ref, reason, case, by, note, now, qid)\n"
    "  local id = 'H' .. s(redis.call('INCR', P .. 'hold:next'))\n"
    "  redis.call('HSET', hk(id), 'id', id, 'ref', ref, 'reason', reason, 'case_ref', case,\n"
    "    'placed_by', by, 'placed_at', now, 'note', note, 'active', '1', 'released_at', '0',\n"
    "    'released_by', '', 'release_note', '', 'request_id', qid)\n"
    "  redis.call('ZADD', P .. 'holds', now, id)\n"
    "  redis.call('SADD', hr(ref), id)\n"
    "  redis.call('SADD', P .. 'holds:case:' .. case, id)\n"
    "  redis.call('ZREM', EXPIRY, ref)\n"
    "  return id\n"
    "end\n"
    /* the last active hold gone: the recording is due again at delete_after */
    "local function hold_end(id, ref, by, note, now)\n"
    "  redis.call('HSET', hk(id), 'active', '0', 'released_at', now, 'released_by', by,\n"
    "    'release_note', note)\n"
    "  redis.call('SREM', hr(ref), id)\n"
    "  if redis.call('SCARD', hr(ref)) == 0 then\n"
    "    local r = redis.call('HMGET', rk(ref), 'status', 'delete_after')\n"
    "    if r[1] == 'committed' then redis.call('ZADD', EXPIRY, r[2], ref) end\n"
    "  end\n"
    "end\n"
    /* q = {window_from, window_to, cameras, officer} */
    "local function q_matches(q, dev, officer, at)\n"
    "  if at < tonumber(q[1]) or at > tonumber(q[2]) then return false end\n"
    "  if q[3] ~= '' and not string.find(',' .. q[3] .. ',', ',' .. dev .. ',', 1, true) then\n"
    "    return false\n"
    "  end\n"
    "  return q[4] == '' or q[4] == officer\n"
    "end\n"
    "local function match_put(qid, ref, st, hid, at, pat, seq)\n"
    "  redis.call('HSET', qk(qid) .. ':matches', ref,\n"
    "    st .. '|' .. hid .. '|' .. at .. '|' .. pat .. '|' .. seq)\n"
    "end\n"
    /* holds ref for request qid (at: its recorded_at as stored); the hold id,
     * or nil when the request has this match already */
    "local function inzage(qid, ref, at, now)\n"
    "  if redis.call('HEXISTS', qk(qid) .. ':matches', ref) == 1 then return nil end\n"
    "  local hid = hold_new(ref, 'inzage', qid, 'vault', 'access request ' .. qid, now, qid)\n"
    "  match_put(qid, ref, 'committed', hid, at, '0', '0')\n"
    "  redis.call('HINCRBY', qk(qid), 'held', 1)\n"
    "  return hid\n"
    "end\n";

/* 1..#RF the record in RF order (officer, status and the numbers after
 * it are set here)  #RF+1 now.
 * {'ok', created, record, n, (hold id, request id) * n} */
static const char commit_src[] =
    "local ref, dev = ARGV[R_REF], ARGV[R_DEVICE]\n"
    "if redis.call('EXISTS', rk(ref)) == 1 then\n"
    "  local out = {'ok', 0}\n"
    "  append(out, rec(ref))\n"
    "  out[#out + 1] = 0\n"
    "  return out\n"
    "end\n"
    "local now = ARGV[#RF + 1]\n"
    "local ak = P .. 'assignment:' .. dev\n"
    "local ty = redis.call('TYPE', ak)['ok']\n"
    "local officer = ''\n"
    "if ty == 'hash' then officer = redis.call('HGET', ak, 'officer') or ''\n"
    "elseif ty == 'string' then officer = redis.call('GET', ak) or '' end\n"
    /* an officer id outside the id alphabet cannot be matched or shown */
    "if #officer > 64 or not string.find(officer, '^[%w_-]*$') then officer = '' end\n"
    "local v, kv = {}, {}\n"
    "for i, f in ipairs(RF) do v[i] = ARGV[i] end\n"
    "v[R_OFFICER] = officer\n"
    "v[R_STATUS] = 'committed'\n"
    "for i, f in ipairs(RF) do kv[2 * i - 1] = f; kv[2 * i] = v[i] end\n"
    "redis.call('HSET', rk(ref), unpack(kv))\n"
    "local at = v[R_RECORDED_AT]\n"
    "redis.call('ZADD', P .. 'recordings', at, ref)\n"
    "redis.call('ZADD', P .. 'recordings:device:' .. dev, at, ref)\n"
    "redis.call('ZADD', EXPIRY, v[R_DELETE_AFTER], ref)\n"
    "redis.call('SADD', P .. 'recordings:unaudited', ref)\n"
    "redis.call('SADD', by_key(v[R_KEY_ID]), ref)\n"
    "local holds = {}\n"
    "for _, qid in ipairs(redis.call('ZRANGE', P .. 'requests:open', 0, -1)) do\n"
    "  local q = redis.call('HMGET', qk(qid), 'window_from', 'window_to', 'cameras', 'officer',\n"
    "    'status')\n"
    "  if q[5] == 'open' and q_matches(q, dev, officer, tonumber(at)) then\n"
    "    local hid = inzage(qid, ref, at, now)\n"
    "    if hid then holds[#holds + 1] = hid; holds[#holds + 1] = qid end\n"
    "  end\n"
    "end\n"
    "local out = {'ok', 1}\n"
    "append(out, v)\n"
    "out[#out + 1] = s(redis.call('SCARD', hr(ref)))\n"
    "out[#out + 1] = #holds / 2\n"
    "append(out, holds)\n"
    "return out\n";

/* 1 ref  2 seq */
static const char commit_audited_src[] =
    "if redis.call('EXISTS', rk(ARGV[1])) == 0 then return {'not_found'} end\n"
    "redis.call('HSET', rk(ARGV[1]), 'commit_audit_seq', ARGV[2])\n"
    "redis.call('SREM', P .. 'recordings:unaudited', ARGV[1])\n"
    "return {'ok'}\n";

/* 1 ref. {'ok', record} */
static const char rec_get_src[] = "local v = rec(ARGV[1])\n"
                                  "if not v then return {'not_found'} end\n"
                                  "local out = {'ok'}\n"
                                  "append(out, v)\n"
                                  "return out\n";

/* 1 device ('' any)  2 officer ('' any)  3 from  4 to ('+inf')  5 status
 * ('' any)  6 held only ('1')  7 offset  8 count.
 * {'ok', more, record...}: one page of the time index, filtered */
static const char rec_list_src[] =
    "local key = P .. 'recordings'\n"
    "if ARGV[1] ~= '' then key = P .. 'recordings:device:' .. ARGV[1] end\n"
    "local refs = redis.call('ZRANGEBYSCORE', key, ARGV[3], ARGV[4], 'LIMIT', ARGV[7], ARGV[8])\n"
    "local out = {'ok', 0}\n"
    "if #refs == tonumber(ARGV[8]) then out[2] = 1 end\n"
    "for _, ref in ipairs(refs) do\n"
    "  local v = rec(ref)\n"
    "  if v and (ARGV[2] == '' or v[R_OFFICER] == ARGV[2]) and\n"
    "     (ARGV[5] == '' or v[R_STATUS] == ARGV[5]) and\n"
    "     (ARGV[6] ~= '1' or v[#RF + 1] ~= '0') then\n"
    "    append(out, v)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* 1 now  2 limit. {'ok', n, record * n}. Entries of the expiry index that
 * are stale (not committed, or held) are dropped on the way. */
static const char purge_begin_src[] =
    "local limit = tonumber(ARGV[2])\n"
    "local out = {'ok', 0}\n"
    "local n = 0\n"
    "while n < limit do\n"
    "  local due = redis.call('ZRANGEBYSCORE', EXPIRY, '-inf', ARGV[1], 'LIMIT', 0, limit - n)\n"
    "  if #due == 0 then break end\n"
    "  call_many('ZREM', EXPIRY, due)\n"
    "  local taken = {}\n"
    "  for _, ref in ipairs(due) do\n"
    "    local v = rec(ref)\n"
    "    if v and v[R_STATUS] == 'committed' and v[#RF + 1] == '0' then\n"
    "      redis.call('HSET', rk(ref), 'status', 'purging')\n"
    "      v[R_STATUS] = 'purging'\n"
    "      taken[#taken + 1] = ref\n"
    "      append(out, v)\n"
    "      n = n + 1\n"
    "    end\n"
    "  end\n"
    "  call_many('SADD', P .. 'recordings:purging', taken)\n"
    "end\n"
    "out[2] = n\n"
    "return out\n";

/* {'ok', n, record * n} */
static const char purging_src[] =
    "local out = {'ok', 0}\n"
    "local n = 0\n"
    "for _, ref in ipairs(redis.call('SMEMBERS', P .. 'recordings:purging')) do\n"
    "  local v = rec(ref)\n"
    "  if v then append(out, v); n = n + 1\n"
    "  else redis.call('SREM', P .. 'recordings:purging', ref) end\n"
    "end\n"
    "out[2] = n\n"
    "return out\n";

/* (ref, seq) pairs */
static const char purge_audited_src[] =
    "for i = 1, #ARGV - 1, 2 do\n"
    "  if redis.call('EXISTS', rk(ARGV[i])) == 1 then\n"
    "    redis.call('HSET', rk(ARGV[i]), 'purge_audit_seq', ARGV[i + 1])\n"
    "  end\n"
    "end\n"
    "return {'ok'}\n";

/* 1 now  2 tombstone ttl (s, '0' = keep)  3 tombstone expiry (ms)  4.. refs */
static const char purge_done_src[] =
    "local refs, tomb = {}, {}\n"
    "for i = 4, #ARGV do\n"
    "  local ref = ARGV[i]\n"
    "  refs[#refs + 1] = ref\n"
    "  local r = redis.call('HMGET', rk(ref), 'status', 'key_id')\n"
    "  if r[1] == 'purging' then\n"
    "    redis.call('HSET', rk(ref), 'status', 'purged', 'purged_at', ARGV[1])\n"
    "    if r[2] then redis.call('SREM', by_key(r[2]), ref) end\n"
    "    if ARGV[2] ~= '0' then\n"
    "      redis.call('EXPIRE', rk(ref), ARGV[2])\n"
    "      tomb[#tomb + 1] = ARGV[3]\n"
    "      tomb[#tomb + 1] = ref\n"
    "    end\n"
    "  end\n"
    "end\n"
    "call_many('ZADD', P .. 'recordings:tombstones', tomb)\n"
    "call_many('SREM', P .. 'recordings:purging', refs)\n"
    "return {'ok'}\n";

/* 1 limit. {'ok', removed}. Tombstones in expiry order: the first one still
 * there ends the pass (the later ones expire later). */
static const char tomb_sweep_src[] =
    "local n = 0\n"
    "local tk = P .. 'recordings:tombstones'\n"
    "for _, ref in ipairs(redis.call('ZRANGE', tk, 0, tonumber(ARGV[1]) - 1)) do\n"
    "  local st = redis.call('HGET', rk(ref), 'status')\n"
    "  if st == 'purged' then break end\n"
    "  redis.call('ZREM', tk, ref)\n"
    /* committed again after its tombstone expired: keep its index entries */
    "  if not st then\n"
    "    local dev = string.match(ref, '^([^/]+)/')\n"
    "    redis.call('ZREM', P .. 'recordings', ref)\n"
    "    if dev then redis.call('ZREM', P .. 'recordings:device:' .. dev, ref) end\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return {'ok', n}\n";

/* 1 ref  2 reason  3 case_ref  4 placed_by  5 note  6 now.
 * {'ok', created, hold}; {'state', status, purged_at} */
static const char hold_place_src[] =
    "local ref = ARGV[1]\n"
    "local r = redis.call('HMGET', rk(ref), 'status', 'purged_at')\n"
    "if not r[1] then return {'not_found'} end\n"
    "if r[1] ~= 'committed' then return {'state', r[1], r[2] or '0'} end\n"
    "local id = hold_find(ref, ARGV[2], ARGV[3])\n"
    "local out = {'ok', 0}\n"
    "if not id then\n"
    "  id = hold_new(ref, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], '')\n"
    "  out[2] = 1\n"
    "end\n"
    "append(out, hold(id))\n"
    "return out\n";

/* 1 id  2 released_by  3 note  4 now. {'ok', hold};
 * {'state', 'released', released_at}; {'state', 'request', request id} */
static const char hold_release_src[] =
    "local id = ARGV[1]\n"
    "local h = redis.call('HMGET', hk(id), 'ref', 'active', 'released_at', 'request_id')\n"
    "if not h[1] then return {'not_found'} end\n"
    "if h[2] ~= '1' then return {'state', 'released', h[3] or '0'} end\n"
    "if h[4] and h[4] ~= '' and redis.call('HGET', qk(h[4]), 'status') == 'open' then\n"
    "  return {'state', 'request', h[4]}\n"
    "end\n"
    "hold_end(id, h[1], ARGV[2], ARGV[3], ARGV[4])\n"
    "local out = {'ok'}\n"
    "append(out, hold(id))\n"
    "return out\n";

/* 1 id. {'ok', hold} */
static const char hold_get_src[] = "local v = hold(ARGV[1])\n"
                                   "if not v then return {'not_found'} end\n"
                                   "local out = {'ok'}\n"
                                   "append(out, v)\n"
                                   "return out\n";

/* 1 ref ('' any)  2 case ('' any)  3 active only ('1')  4 offset  5 count.
 * {'ok', more, hold...}. A case or the active holds of a ref are read whole
 * from their set (sorted by placed_at); otherwise one page of bodycam:holds. */
static const char holds_list_src[] =
    "local ids\n"
    "local more = 0\n"
    "if ARGV[2] ~= '' or (ARGV[1] ~= '' and ARGV[3] == '1') then\n"
    "  if ARGV[2] ~= '' then ids = redis.call('SMEMBERS', P .. 'holds:case:' .. ARGV[2])\n"
    "  else ids = redis.call('SMEMBERS', hr(ARGV[1])) end\n"
    "  local at = {}\n"
    "  for _, id in ipairs(ids) do at[id] = tonumber(redis.call('HGET', hk(id), 'placed_at')) or 0 "
    "end\n"
    "  table.sort(ids, function(a, b)\n"
    "    if at[a] ~= at[b] then return at[a] < at[b] end\n"
    "    return a < b\n"
    "  end)\n"
    "else\n"
    "  local first = tonumber(ARGV[4])\n"
    "  ids = redis.call('ZRANGE', P .. 'holds', first, first + tonumber(ARGV[5]) - 1)\n"
    "  if #ids == tonumber(ARGV[5]) then more = 1 end\n"
    "end\n"
    "local out = {'ok', more}\n"
    "for _, id in ipairs(ids) do\n"
    "  local h = hold(id)\n"
    "  if h and (ARGV[1] == '' or h[H_REF] == ARGV[1]) and\n"
    "     (ARGV[2] == '' or h[H_CASE_REF] == ARGV[2]) and\n"
    "     (ARGV[3] ~= '1' or h[H_ACTIVE] == '1') then\n"
    "    append(out, h)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* 1 requester  2 contact  3 from  4 to  5 place  6 cameras  7 officer
 * 8 registered_by  9 deadline  10 now.
 * {'ok', request, n, match * n} */
static const char req_register_src[] =
    "local id = 'R' .. s(redis.call('INCR', P .. 'request:next'))\n"
    "redis.call('HSET', qk(id), 'id', id, 'requester', ARGV[1], 'contact', ARGV[2],\n"
    "  'window_from', ARGV[3], 'window_to', ARGV[4], 'place', ARGV[5], 'cameras', ARGV[6],\n"
    "  'officer', ARGV[7], 'registered_at', ARGV[10], 'registered_by', ARGV[8],\n"
    "  'deadline', ARGV[9], 'extended', '0', 'extension_reason', '', 'status', 'open',\n"
    "  'closed_at', '0', 'answer', '', 'overdue_alerted', '0', 'held', '0', 'purged', '0')\n"
    "redis.call('ZADD', P .. 'requests', ARGV[10], id)\n"
    "redis.call('ZADD', P .. 'requests:open', ARGV[9], id)\n"
    "local q = {ARGV[3], ARGV[4], ARGV[6], ARGV[7]}\n"
    "local m = {}\n"
    "for _, ref in ipairs(redis.call('ZRANGEBYSCORE', P .. 'recordings', ARGV[3], ARGV[4])) do\n"
    "  local r = redis.call('HMGET', rk(ref), 'device', 'officer', 'status', 'recorded_at',\n"
    "    'purged_at', 'purge_audit_seq')\n"
    "  if r[3] and q_matches(q, r[1], r[2], tonumber(r[4])) then\n"
    "    local hid = ''\n"
    "    if r[3] == 'committed' then\n"
    "      hid = inzage(id, ref, r[4], ARGV[10]) or ''\n"
    "    else\n"
    "      match_put(id, ref, r[3], '', r[4], r[5], r[6])\n"
    "      redis.call('HINCRBY', qk(id), 'purged', 1)\n"
    "    end\n"
    "    append(m, {ref, r[3], hid, r[4], r[5], r[6]})\n"
    "  end\n"
    "end\n"
    "local out = {'ok'}\n"
    "append(out, req(id))\n"
    "out[#out + 1] = #m / 6\n"
    "append(out, m)\n"
    "return out\n";

/* 1 id. {'ok', request} */
static const char req_get_src[] = "local v = req(ARGV[1])\n"
                                  "if not v then return {'not_found'} end\n"
                                  "local out = {'ok'}\n"
                                  "append(out, v)\n"
                                  "return out\n";

/* 1 id. {'ok', n, match * n} in recorded_at order. A match recorded while
 * its recording was purging takes the record's status and purge seq now
 * (the purge finished since). A value that is not a match record is
 * passed on as its status, which the C parser refuses. */
static const char req_matches_src[] =
    "if redis.call('EXISTS', qk(ARGV[1])) == 0 then return {'not_found'} end\n"
    "local all = redis.call('HGETALL', qk(ARGV[1]) .. ':matches')\n"
    "local list = {}\n"
    "for i = 1, #all, 2 do\n"
    "  local st, hid, at, pat, seq =\n"
    "    string.match(all[i + 1], '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')\n"
    "  if not st then st, hid, at, pat, seq = all[i + 1], '', '0', '0', '0' end\n"
    "  if st == 'purging' then\n"
    "    local r = redis.call('HMGET', rk(all[i]), 'status', 'purged_at', 'purge_audit_seq')\n"
    "    if r[1] then st, pat, seq = r[1], r[2], r[3] end\n"
    "  end\n"
    "  list[#list + 1] = {all[i], st, hid, at, pat, seq}\n"
    "end\n"
    "table.sort(list, function(a, b)\n"
    "  local x, y = tonumber(a[4]) or 0, tonumber(b[4]) or 0\n"
    "  if x ~= y then return x < y end\n"
    "  return a[1] < b[1]\n"
    "end)\n"
    "local out = {'ok', #list}\n"
    "for _, m in ipairs(list) do append(out, m) end\n"
    "return out\n";

/* 1 id  2 new deadline  3 reason  4 by  5 now. {'ok', request};
 * {'state', 'closed'|'extended', ms}; {'inval', 'not_later', deadline} */
static const char req_extend_src[] =
    "local id = ARGV[1]\n"
    "local q = redis.call('HMGET', qk(id), 'status', 'extended', 'deadline', 'closed_at')\n"
    "if not q[1] then return {'not_found'} end\n"
    "if q[1] ~= 'open' then return {'state', 'closed', q[4] or '0'} end\n"
    "if q[2] == '1' then return {'state', 'extended', q[3] or '0'} end\n"
    "if tonumber(ARGV[2]) <= (tonumber(q[3]) or 0) then return {'inval', 'not_later', q[3]} end\n"
    "redis.call('HSET', qk(id), 'deadline', ARGV[2], 'extended', '1', 'extension_reason',\n"
    "  ARGV[3], 'extended_by', ARGV[4], 'extended_at', ARGV[5])\n"
    "redis.call('ZADD', P .. 'requests:open', ARGV[2], id)\n"
    "local out = {'ok'}\n"
    "append(out, req(id))\n"
    "return out\n";

/* 1 id  2 answer  3 by  4 now. {'ok', n, hold * n} (the released holds);
 * {'state', 'closed', closed_at} */
static const char req_close_src[] =
    "local id = ARGV[1]\n"
    "local q = redis.call('HMGET', qk(id), 'status', 'closed_at')\n"
    "if not q[1] then return {'not_found'} end\n"
    "if q[1] ~= 'open' then return {'state', 'closed', q[2] or '0'} end\n"
    "local out = {'ok', 0}\n"
    "local n = 0\n"
    "for _, hid in ipairs(redis.call('SMEMBERS', P .. 'holds:case:' .. id)) do\n"
    "  local h = redis.call('HMGET', hk(hid), 'ref', 'reason', 'active', 'request_id')\n"
    "  if h[2] == 'inzage' and h[3] == '1' and h[4] == id then\n"
    "    hold_end(hid, h[1], ARGV[3], 'access request ' .. id .. ' closed', ARGV[4])\n"
    "    append(out, hold(hid))\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', qk(id), 'status', 'closed', 'closed_at', ARGV[4], 'answer', ARGV[2],\n"
    "  'closed_by', ARGV[3])\n"
    "redis.call('ZREM', P .. 'requests:open', id)\n"
    "out[2] = n\n"
    "return out\n";

/* 1 open only ('1')  2 offset  3 count  4 overdue at (ms, '' = no).
 * {'ok', more, request...}. Open ones are read whole from the open index
 * (there are few) and sorted by registration; all of them page by page. */
static const char req_list_src[] =
    "local ids\n"
    "local more = 0\n"
    "if ARGV[1] == '1' or ARGV[4] ~= '' then\n"
    "  if ARGV[4] ~= '' then\n"
    "    ids = redis.call('ZRANGEBYSCORE', P .. 'requests:open', '-inf', '(' .. ARGV[4])\n"
    "  else ids = redis.call('ZRANGE', P .. 'requests:open', 0, -1) end\n"
    "  local at = {}\n"
    "  for _, id in ipairs(ids) do\n"
    "    at[id] = tonumber(redis.call('HGET', qk(id), 'registered_at')) or 0\n"
    "  end\n"
    "  table.sort(ids, function(a, b)\n"
    "    if at[a] ~= at[b] then return at[a] < at[b] end\n"
    "    return a < b\n"
    "  end)\n"
    "else\n"
    "  local first = tonumber(ARGV[2])\n"
    "  ids = redis.call('ZRANGE', P .. 'requests', first, first + tonumber(ARGV[3]) - 1)\n"
    "  if #ids == tonumber(ARGV[3]) then more = 1 end\n"
    "end\n"
    "local out = {'ok', more}\n"
    "for _, id in ipairs(ids) do\n"
    "  local v = req(id)\n"
    "  if v and (ARGV[1] ~= '1' or v[Q_STATUS] == 'open') and\n"
    "     (ARGV[4] == '' or v[Q_OVERDUE_ALERTED] ~= '1') then\n"
    "    append(out, v)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* 1 id  2 alerted ('1'/'0') */
static const char req_alerted_src[] =
    "if redis.call('EXISTS', qk(ARGV[1])) == 0 then return {'not_found'} end\n"
    "redis.call('HSET', qk(ARGV[1]), 'overdue_alerted', ARGV[2])\n"
    "return {'ok'}\n";

/* ---- recording keys (services/key-rotation/README.md) ---- */

/* A new key record: 1 key id  2 public  3 status  4 retired_at  5 campaign
 * 6 created_by  7 replaced  8 adopted, at now. */
static const char key_prelude_src[] =
    "local function key_new(kid, pub, st, rat, cid, by, rep, adopted, now)\n"
    "  redis.call('HSET', kk(kid), 'key_id', kid, 'public', pub, 'created_at', now,\n"
    "    'status', st, 'retired_at', rat, 'destroyed_at', '0', 'campaign', cid,\n"
    "    'created_by', by, 'replaced', rep, 'adopted', adopted, 'destroying', '0',\n"
    "    'audit_seq', '0', 'destroy_audit_seq', '0')\n"
    "  redis.call('SADD', RK_SET, kid)\n"
    "  if st == 'current' then redis.call('SET', RK_CURRENT, kid) end\n"
    "end\n"
    "local function key_out(out, kid) append(out, rkey(kid)); return out end\n";

/* 1 key id  2 public  3 campaign  4 by  5 now.
 * {'ok', created, key}: the campaign's key (made now, or before);
 * {'state', 'exists', status} when the key id is recorded already. The
 * campaign -> key mapping is set in the same script as the key, so a
 * campaign never gets a second key recorded. */
static const char key_record_src[] =
    "local kid, cid, now = ARGV[1], ARGV[3], ARGV[5]\n"
    "local mk = P .. 'recording-keys:campaign:' .. cid\n"
    "local have = redis.call('GET', mk)\n"
    "if have and redis.call('EXISTS', kk(have)) == 1 then return key_out({'ok', 0}, have) end\n"
    "if redis.call('EXISTS', kk(kid)) == 1 then\n"
    "  return {'state', 'exists', redis.call('HGET', kk(kid), 'status') or ''}\n"
    "end\n"
    "local prev = redis.call('GET', RK_CURRENT) or ''\n"
    "if prev ~= '' and redis.call('EXISTS', kk(prev)) == 1 then\n"
    "  redis.call('HSET', kk(prev), 'status', 'retired', 'retired_at', now)\n"
    "end\n"
    "key_new(kid, ARGV[2], 'current', '0', cid, ARGV[4], prev, '0', now)\n"
    "redis.call('SET', mk, kid)\n"
    "return key_out({'ok', 1}, kid)\n";

/* 1 now  2.. (key id, public) pairs of the keys the keystore holds.
 * {'ok', n, key * n, left}: the keys recorded now (they had no record),
 * and how many were left unrecorded (several, and no current key). */
static const char key_adopt_src[] =
    "local now = ARGV[1]\n"
    "local new = {}\n"
    "for i = 2, #ARGV - 1, 2 do\n"
    "  if redis.call('EXISTS', kk(ARGV[i])) == 0 then new[#new + 1] = i end\n"
    "end\n"
    "local cur = redis.call('GET', RK_CURRENT)\n"
    /* no key history and several keys: which is current is not guessed */
    "if not cur and #new > 1 then return {'ok', 0, #new} end\n"
    /* the first start: the one key there is becomes the current one */
    "local first = not cur\n"
    "local out = {'ok', #new}\n"
    "for _, i in ipairs(new) do\n"
    "  if first then key_new(ARGV[i], ARGV[i + 1], 'current', '0', '', 'vault', '', '1', now)\n"
    "  else key_new(ARGV[i], ARGV[i + 1], 'retired', now, '', 'vault', '', '1', now) end\n"
    "  key_out(out, ARGV[i])\n"
    "end\n"
    "out[#out + 1] = 0\n"
    "return out\n";

/* 1 key id. {'ok', key} */
static const char key_get_src[] = "if redis.call('EXISTS', kk(ARGV[1])) == 0 then\n"
                                  "  return {'not_found'}\n"
                                  "end\n"
                                  "return key_out({'ok'}, ARGV[1])\n";

/* 1 campaign. {'ok', key} */
static const char key_campaign_src[] =
    "local kid = redis.call('GET', P .. 'recording-keys:campaign:' .. ARGV[1])\n"
    "if not kid or redis.call('EXISTS', kk(kid)) == 0 then return {'not_found'} end\n"
    "return key_out({'ok'}, kid)\n";

/* {'ok', n, key * n} by created_at */
static const char keys_list_src[] =
    "local recs = {}\n"
    "for _, kid in ipairs(redis.call('SMEMBERS', RK_SET)) do\n"
    "  local v = rkey(kid)\n"
    "  if v then recs[#recs + 1] = v end\n"
    "end\n"
    "table.sort(recs, function(a, b)\n"
    "  local x, y = tonumber(a[K_CREATED_AT]), tonumber(b[K_CREATED_AT])\n"
    "  if x ~= y then return x < y end\n"
    "  return a[1] < b[1]\n"
    "end)\n"
    "local out = {'ok', #recs}\n"
    "for _, v in ipairs(recs) do append(out, v) end\n"
    "return out\n";

/* 1 key id  2 field ('audit_seq', 'destroy_audit_seq')  3 seq */
static const char key_audited_src[] =
    "if redis.call('EXISTS', kk(ARGV[1])) == 0 then return {'not_found'} end\n"
    "redis.call('HSET', kk(ARGV[1]), ARGV[2], ARGV[3])\n"
    "return {'ok'}\n";

/* 1 key id. {'ok', key} once the key may go (destroying is set: from here
 * on it goes, whatever changes); {'state', why, detail} while it must stay:
 * 'current', 'status' (not retired), 'index' (the key index is not built
 * yet), 'recordings' (count), 'camera_key' / 'camera_unknown' /
 * 'camera_pending' (a camera that reports this key, no key, or uploads
 * still to make). A camera whose record was removed (fleet-health README)
 * is no camera any more. */
static const char key_destroy_begin_src[] =
    "local kid = ARGV[1]\n"
    "local v = rkey(kid)\n"
    "if not v then return {'not_found'} end\n"
    "if redis.call('GET', RK_CURRENT) == kid then return {'state', 'current', ''} end\n"
    "if v[K_STATUS] ~= 'retired' then return {'state', 'status', v[K_STATUS]} end\n"
    "if v[K_DESTROYING] ~= '1' then\n"
    "  if redis.call('EXISTS', P .. 'recordings:key-index') == 0 then\n"
    "    return {'state', 'index', ''}\n"
    "  end\n"
    "  local n = redis.call('SCARD', by_key(kid))\n"
    "  if n > 0 then return {'state', 'recordings', s(n)} end\n"
    "  for _, cam in ipairs(redis.call('SMEMBERS', P .. 'cameras')) do\n"
    "    local ck = P .. 'camera:' .. cam\n"
    "    if redis.call('EXISTS', ck) == 1 then\n"
    "      local c = redis.call('HMGET', ck, 'recording_key_id', 'pending_uploads')\n"
    "      if not c[1] or c[1] == '' then return {'state', 'camera_unknown', cam} end\n"
    "      if c[1] == kid then return {'state', 'camera_key', cam} end\n"
    "      if tonumber(c[2] or '') ~= 0 then return {'state', 'camera_pending', cam} end\n"
    "    end\n"
    "  end\n"
    "  redis.call('HSET', kk(kid), 'destroying', '1')\n"
    "end\n"
    "return key_out({'ok'}, kid)\n";

/* 1 key id  2 now. {'ok', key}; {'state', 'status', status} when the
 * destruction was not begun */
static const char key_destroyed_src[] =
    "local kid = ARGV[1]\n"
    "local v = rkey(kid)\n"
    "if not v then return {'not_found'} end\n"
    "if v[K_STATUS] == 'retired' and v[K_DESTROYING] == '1' then\n"
    "  redis.call('HSET', kk(kid), 'status', 'destroyed', 'destroyed_at', ARGV[2])\n"
    "  redis.call('DEL', by_key(kid))\n"
    "elseif v[K_STATUS] ~= 'destroyed' then\n"
    "  return {'state', 'status', v[K_STATUS]}\n"
    "end\n"
    "return key_out({'ok'}, kid)\n";

/* 1 offset  2 count. {'ok', more, built_before}: one page of the time
 * index put into the key index (committed and purging recordings); after
 * the last page the index is marked built. Recordings committed before
 * the key index existed are found this way; later ones index themselves. */
static const char key_index_src[] =
    "local mark = P .. 'recordings:key-index'\n"
    "if redis.call('EXISTS', mark) == 1 then return {'ok', 0, 1} end\n"
    "local from, n = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local refs = redis.call('ZRANGE', P .. 'recordings', s(from), s(from + n - 1))\n"
    "for _, ref in ipairs(refs) do\n"
    "  local r = redis.call('HMGET', rk(ref), 'status', 'key_id')\n"
    "  if (r[1] == 'committed' or r[1] == 'purging') and r[2] and r[2] ~= '' then\n"
    "    redis.call('SADD', by_key(r[2]), ref)\n"
    "  end\n"
    "end\n"
    "if #refs < n then redis.call('SET', mark, '1'); return {'ok', 0, 0} end\n"
    "return {'ok', 1, 0}\n";

typedef enum script_id {
    S_COMMIT,
    S_COMMIT_AUDITED,
    S_REC_GET,
    S_REC_LIST,
    S_PURGE_BEGIN,
    S_PURGING,
    S_PURGE_AUDITED,
    S_PURGE_DONE,
    S_TOMB_SWEEP,
    S_HOLD_PLACE,
    S_HOLD_RELEASE,
    S_HOLD_GET,
    S_HOLDS_LIST,
    S_REQ_REGISTER,
    S_REQ_GET,
    S_REQ_MATCHES,
    S_REQ_EXTEND,
    S_REQ_CLOSE,
    S_REQ_LIST,
    S_REQ_ALERTED,
    S_KEY_RECORD,
    S_KEY_ADOPT,
    S_KEY_GET,
    S_KEY_CAMPAIGN,
    S_KEYS_LIST,
    S_KEY_AUDITED,
    S_KEY_DESTROY_BEGIN,
    S_KEY_DESTROYED,
    S_KEY_INDEX,
    S_COUNT
} script_id;

static const bc_script_src sources[S_COUNT] = {
    [S_COMMIT] = {"commit", commit_src},
    [S_COMMIT_AUDITED] = {"commit_audited", commit_audited_src},
    [S_REC_GET] = {"recording_get", rec_get_src},
    [S_REC_LIST] = {"recordings_list", rec_list_src},
    [S_PURGE_BEGIN] = {"purge_begin", purge_begin_src},
    [S_PURGING] = {"purging", purging_src},
    [S_PURGE_AUDITED] = {"purge_audited", purge_audited_src},
    [S_PURGE_DONE] = {"purge_done", purge_done_src},
    [S_TOMB_SWEEP] = {"tombstones_sweep", tomb_sweep_src},
    [S_HOLD_PLACE] = {"hold_place", hold_place_src},
    [S_HOLD_RELEASE] = {"hold_release", hold_release_src},
    [S_HOLD_GET] = {"hold_get", hold_get_src},
    [S_HOLDS_LIST] = {"holds_list", holds_list_src},
    [S_REQ_REGISTER] = {"request_register", req_register_src},
    [S_REQ_GET] = {"request_get", req_get_src},
    [S_REQ_MATCHES] = {"request_matches", req_matches_src},
    [S_REQ_EXTEND] = {"request_extend", req_extend_src},
    [S_REQ_CLOSE] = {"request_close", req_close_src},
    [S_REQ_LIST] = {"requests_list", req_list_src},
    [S_REQ_ALERTED] = {"request_mark_alerted", req_alerted_src},
    [S_KEY_RECORD] = {"recording_key_record", key_record_src},
    [S_KEY_ADOPT] = {"recording_keys_adopt", key_adopt_src},
    [S_KEY_GET] = {"recording_key_get", key_get_src},
    [S_KEY_CAMPAIGN] = {"recording_key_of_campaign", key_campaign_src},
    [S_KEYS_LIST] = {"recording_keys_list", keys_list_src},
    [S_KEY_AUDITED] = {"recording_key_audited", key_audited_src},
    [S_KEY_DESTROY_BEGIN] = {"recording_key_destroy_begin", key_destroy_begin_src},
    [S_KEY_DESTROYED] = {"recording_key_destroyed", key_destroyed_src},
    [S_KEY_INDEX] = {"key_index_build", key_index_src},
};

/* The field lists and the positions the scripts filter on (Lua counts
 * from 1), then the preludes. */
static void script_prelude(bc_script_text *t)
{
    bc_script_text_list(t, "RF", rec_fields, RF_COUNT);
    bc_script_text_list(t, "HF", hold_fields, HF_COUNT);
    bc_script_text_list(t, "QF", req_fields, QF_COUNT);
    bc_script_text_list(t, "KF", key_fields, KF_COUNT);
    bc_script_text_add(t,
                       "local R_REF, R_DEVICE, R_OFFICER, R_RECORDED_AT = %d, %d, %d, %d\n"
                       "local R_DELETE_AFTER, R_STATUS = %d, %d\n"
                       "local H_REF, H_CASE_REF, H_ACTIVE = %d, %d, %d\n"
                       "local Q_STATUS, Q_OVERDUE_ALERTED = %d, %d\n"
                       "local R_KEY_ID, K_CREATED_AT, K_STATUS, K_DESTROYING = %d, %d, %d, %d\n"
                       "%s%s",
                       RF_REF + 1, RF_DEVICE + 1, RF_OFFICER + 1, RF_RECORDED_AT + 1,
                       RF_DELETE_AFTER + 1, RF_STATUS + 1, HF_REF + 1, HF_CASE_REF + 1,
                       HF_ACTIVE + 1, QF_STATUS + 1, QF_OVERDUE_ALERTED + 1, RF_KEY_ID + 1,
                       KF_CREATED_AT + 1, KF_STATUS + 1, KF_DESTROYING + 1, prelude,
                       key_prelude_src);
}

/* ---- reading replies ---- */

/* Verdicts: bc_script_set_call's index into verdict_words, V_OK being 0. */
enum { V_OK, V_NOT_FOUND, V_STATE, V_INVAL };

static const bc_reply_word verdict_words[] = {
    {"not_found", 0},
    {"state", 3},
    {"inval", 3},
};

static bc_script_set scripts =
    BC_SCRIPT_SET_INIT("catalog", sources, S_COUNT, script_prelude, verdict_words,
                       sizeof(verdict_words) / sizeof(verdict_words[0]));

bc_status bc_catalog_scripts_load(bc_redis *r, bc_error *err)
{
    return bc_script_set_load(&scripts, r, err);
}

/* Frees what a call leaves: its reply (NULL is fine) and its arguments. */
static void call_done(bc_script_args *a, redisReply *rep)
{
    if (rep != NULL)
        freeReplyObject(rep);
    bc_script_args_free(a);
}

/* "2024-05-01T12:00:00Z" */
static void iso_time(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%lld ms", (long long)ms);
}

/* ---- names ---- */

static const char *const rec_status_names[] = {"committed", "purging", "purged"};
static const char *const reason_names[] = {"aangifte", "klacht", "inzage"};
static const char *const req_status_names[] = {"open", "closed"};

const char *bc_recording_status_name(bc_recording_status s)
{
    if ((unsigned)s >= sizeof(rec_status_names) / sizeof(rec_status_names[0]))
        return "unknown";
    return rec_status_names[s];
}

const char *bc_hold_reason_name(bc_hold_reason r)
{
    if ((unsigned)r >= sizeof(reason_names) / sizeof(reason_names[0]))
        return "unknown";
    return reason_names[r];
}

const char *bc_request_status_name(bc_request_status s)
{
    if ((unsigned)s >= sizeof(req_status_names) / sizeof(req_status_names[0]))
        return "unknown";
    return req_status_names[s];
}

bc_status bc_hold_reason_parse(const char *name, bc_hold_reason *out, bc_error *err)
{
    for (int i = 0; name != NULL && i < 3; i++) {
        if (strcmp(name, reason_names[i]) == 0) {
            *out = (bc_hold_reason)i;
            return BC_OK;
        }
    }
    return bc_fail(err, BC_ERR_INVAL, "hold reason '%s' is not aangifte, klacht or inzage",
                   name != NULL ? name : "");
}

/* ---- records from replies ---- */

static bool parse_recording(redisReply *const *e, bc_recording_meta *m)
{
    memset(m, 0, sizeof(*m));
    int status = 0;
    bool emergency = false;
    bool ok =
        bc_reply_str(e[RF_REF], m->ref, sizeof(m->ref)) &&
        bc_reply_str(e[RF_DEVICE], m->device, sizeof(m->device)) &&
        bc_reply_str(e[RF_RECORDING_ID], m->recording_id, sizeof(m->recording_id)) &&
        bc_reply_str(e[RF_OFFICER], m->officer, sizeof(m->officer)) &&
        bc_reply_i64(e[RF_RECORDED_AT], &m->recorded_at) &&
        bc_reply_i64(e[RF_DURATION_MS], &m->duration_ms) &&
        bc_reply_i64(e[RF_WARNINGS], &m->warnings) && bc_reply_bool(e[RF_EMERGENCY], &emergency) &&
        bc_reply_str(e[RF_KEY_ID], m->key_id, sizeof(m->key_id)) &&
        bc_reply_str(e[RF_SHA256], m->sha256, sizeof(m->sha256)) &&
        bc_reply_i64(e[RF_SIZE], &m->size) && bc_reply_i64(e[RF_COMMITTED_AT], &m->committed_at) &&
        bc_reply_i64(e[RF_DELETE_AFTER], &m->delete_after) &&
        bc_reply_name(e[RF_STATUS], rec_status_names, 3, &status) &&
        bc_reply_i64(e[RF_PURGED_AT], &m->purged_at) &&
        bc_reply_u64(e[RF_COMMIT_SEQ], &m->commit_audit_seq) &&
        bc_reply_u64(e[RF_PURGE_SEQ], &m->purge_audit_seq) &&
        bc_reply_i64(e[RF_COUNT], &m->active_holds);
    m->emergency = emergency;
    m->status = (bc_recording_status)status;
    return ok;
}

static bool parse_hold(redisReply *const *e, bc_hold *h)
{
    memset(h, 0, sizeof(*h));
    int reason = 0;
    bool active = false;
    bool ok = bc_reply_str(e[HF_ID], h->id, sizeof(h->id)) &&
              bc_reply_str(e[HF_REF], h->ref, sizeof(h->ref)) &&
              bc_reply_name(e[HF_REASON], reason_names, 3, &reason) &&
              bc_reply_str(e[HF_CASE_REF], h->case_ref, sizeof(h->case_ref)) &&
              bc_reply_str(e[HF_PLACED_BY], h->placed_by, sizeof(h->placed_by)) &&
              bc_reply_i64(e[HF_PLACED_AT], &h->placed_at) &&
              bc_reply_str(e[HF_NOTE], h->note, sizeof(h->note)) &&
              bc_reply_bool(e[HF_ACTIVE], &active) &&
              bc_reply_i64(e[HF_RELEASED_AT], &h->released_at) &&
              bc_reply_str(e[HF_RELEASED_BY], h->released_by, sizeof(h->released_by)) &&
              bc_reply_str(e[HF_RELEASE_NOTE], h->release_note, sizeof(h->release_note)) &&
              bc_reply_str(e[HF_REQUEST_ID], h->request_id, sizeof(h->request_id));
    h->reason = (bc_hold_reason)reason;
    h->active = active;
    return ok;
}

/* "a,b,c" into the request's cameras. */
static bool parse_cameras(const redisReply *e, bc_access_request *q)
{
    char list[BC_REQUEST_CAMERAS_MAX * (BC_DEVICE_ID_MAX + 1) + 1];
    if (!bc_reply_str(e, list, sizeof(list)))
        return false;
    q->camera_count = 0;
    if (list[0] == '\0')
        return true;
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (q->camera_count >= BC_REQUEST_CAMERAS_MAX || strlen(tok) > BC_DEVICE_ID_MAX)
            return false;
        snprintf(q->cameras[q->camera_count++], BC_DEVICE_ID_MAX + 1, "%s", tok);
    }
    return true;
}

static bool parse_request(redisReply *const *e, bc_access_request *q)
{
    memset(q, 0, sizeof(*q));
    int status = 0;
    bool extended = false;
    bool alerted = false;
    bool ok =
        bc_reply_str(e[QF_ID], q->id, sizeof(q->id)) &&
        bc_reply_str(e[QF_REQUESTER], q->requester, sizeof(q->requester)) &&
        bc_reply_str(e[QF_CONTACT], q->contact, sizeof(q->contact)) &&
        bc_reply_i64(e[QF_WINDOW_FROM], &q->window_from) &&
        bc_reply_i64(e[QF_WINDOW_TO], &q->window_to) &&
        bc_reply_str(e[QF_PLACE], q->place, sizeof(q->place)) && parse_cameras(e[QF_CAMERAS], q) &&
        bc_reply_str(e[QF_OFFICER], q->officer, sizeof(q->officer)) &&
        bc_reply_i64(e[QF_REGISTERED_AT], &q->registered_at) &&
        bc_reply_str(e[QF_REGISTERED_BY], q->registered_by, sizeof(q->registered_by)) &&
        bc_reply_i64(e[QF_DEADLINE], &q->deadline) && bc_reply_bool(e[QF_EXTENDED], &extended) &&
        bc_reply_str(e[QF_EXTENSION_REASON], q->extension_reason, sizeof(q->extension_reason)) &&
        bc_reply_name(e[QF_STATUS], req_status_names, 2, &status) &&
        bc_reply_i64(e[QF_CLOSED_AT], &q->closed_at) &&
        bc_reply_str(e[QF_ANSWER], q->answer, sizeof(q->answer)) &&
        bc_reply_bool(e[QF_OVERDUE_ALERTED], &alerted) && bc_reply_i64(e[QF_HELD], &q->held) &&
        bc_reply_i64(e[QF_PURGED], &q->purged);
    q->extended = extended;
    q->overdue_alerted = alerted;
    q->status = (bc_request_status)status;
    return ok;
}

static bool parse_match(redisReply *const *e, bc_request_match *m)
{
    memset(m, 0, sizeof(*m));
    int status = 0;
    bool ok = bc_reply_str(e[0], m->ref, sizeof(m->ref)) &&
              bc_reply_name(e[1], rec_status_names, 3, &status) &&
              bc_reply_str(e[2], m->hold_id, sizeof(m->hold_id)) &&
              bc_reply_i64(e[3], &m->recorded_at) && bc_reply_i64(e[4], &m->purged_at) &&
              bc_reply_u64(e[5], &m->purge_audit_seq);
    m->status = (bc_recording_status)status;
    return ok;
}

/* ---- validation ---- */

bc_status bc_ref_make(const char *device, const char *recording_id, char ref[BC_REF_MAX + 1])
{
    if (!bc_device_id_valid(device) || !bc_id_valid(recording_id))
        return BC_ERR_INVAL;
    snprintf(ref, BC_REF_MAX + 1, "%s/%s", device, recording_id);
    return BC_OK;
}

bc_status bc_ref_split(const char *ref, char device[BC_DEVICE_ID_MAX + 1],
                       char recording_id[BC_ID_MAX + 1])
{
    if (ref == NULL)
        return BC_ERR_INVAL;
    const char *slash = strchr(ref, '/');
    if (slash == NULL || (size_t)(slash - ref) > BC_DEVICE_ID_MAX || strlen(slash + 1) > BC_ID_MAX)
        return BC_ERR_INVAL;
    char dev[BC_DEVICE_ID_MAX + 1];
    memcpy(dev, ref, (size_t)(slash - ref));
    dev[slash - ref] = '\0';
    if (!bc_device_id_valid(dev) || !bc_id_valid(slash + 1))
        return BC_ERR_INVAL;
    if (device != NULL)
        snprintf(device, BC_DEVICE_ID_MAX + 1, "%s", dev);
    if (recording_id != NULL)
        snprintf(recording_id, BC_ID_MAX + 1, "%s", slash + 1);
    return BC_OK;
}

bool bc_catalog_text_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t len = strlen(s);
    if (len == 0 || len > BC_CATALOG_TEXT_MAX)
        return false;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned long cp = p[i];
        int n = 1;
        if (cp >= 0x80) {
            size_t avail = len - i;
            n = UTF8_getc(p + i, avail > 4 ? 4 : (int)avail, &cp);
            if (n <= 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return false;
        }
        /* C0, DEL and C1 controls: a note must not move a terminal's cursor */
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
            return false;
        i += (size_t)n;
    }
    return true;
}

/* Optional free text: "" or valid text. */
static bool text_opt_valid(const char *s)
{
    return s == NULL || s[0] == '\0' || bc_catalog_text_valid(s);
}

bool bc_catalog_case_valid(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '/' || c == ':' || c == '-';
        if (!ok || n >= BC_CATALOG_CASE_MAX)
            return false;
    }
    return true;
}

/* Hold and request ids: "H<n>" / "R<n>". */
static bool catalog_id_valid(const char *id, char prefix)
{
    if (id == NULL || id[0] != prefix || id[1] == '\0' || strlen(id) > BC_CATALOG_ID_MAX)
        return false;
    for (const char *p = id + 1; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
    }
    return true;
}

static bool sha256_hex_valid(const char *s)
{
    if (strlen(s) != BC_SHA256_HEX_LEN)
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

/* ---- recordings ---- */

static bc_status commit_check(bc_recording_meta *m, bc_error *err)
{
    char ref[BC_REF_MAX + 1];
    if (bc_ref_make(m->device, m->recording_id, ref) != BC_OK)
        return bc_fail(err, BC_ERR_INVAL,
                       "recording '%s' of device '%s': an id is outside its "
                       "alphabet",
                       m->recording_id, m->device);
    if (m->ref[0] != '\0' && strcmp(m->ref, ref) != 0)
        return bc_fail(err, BC_ERR_INVAL, "recording ref '%s' is not '%s'", m->ref, ref);
    if (!bc_id_valid(m->key_id) || !sha256_hex_valid(m->sha256))
        return bc_fail(err, BC_ERR_INVAL, "recording %s: bad key id or SHA-256", ref);
    if (m->warnings < 0 || m->warnings > 2 || m->duration_ms < 0 || m->size < 0 ||
        m->recorded_at < 0 || m->committed_at < 0 || m->delete_after < m->recorded_at)
        return bc_fail(err, BC_ERR_INVAL, "recording %s: a number is out of range", ref);
    snprintf(m->ref, sizeof(m->ref), "%s", ref);
    return BC_OK;
}

/* One field of a new record as the commit script takes it. */
static void commit_arg(bc_script_args *a, const bc_recording_meta *m, int field)
{
    switch (field) {
    case RF_REF:
        bc_script_args_str(a, m->ref);
        break;
    case RF_DEVICE:
        bc_script_args_str(a, m->device);
        break;
    case RF_RECORDING_ID:
        bc_script_args_str(a, m->recording_id);
        break;
    case RF_RECORDED_AT:
        bc_script_args_int(a, m->recorded_at);
        break;
    case RF_DURATION_MS:
        bc_script_args_int(a, m->duration_ms);
        break;
    case RF_WARNINGS:
        bc_script_args_int(a, m->warnings);
        break;
    case RF_EMERGENCY:
        bc_script_args_str(a, m->emergency ? "1" : "0");
        break;
    case RF_KEY_ID:
        bc_script_args_str(a, m->key_id);
        break;
    case RF_SHA256:
        bc_script_args_str(a, m->sha256);
        break;
    case RF_SIZE:
        bc_script_args_int(a, m->size);
        break;
    case RF_COMMITTED_AT:
        bc_script_args_int(a, m->committed_at);
        break;
    case RF_DELETE_AFTER:
        bc_script_args_int(a, m->delete_after);
        break;
    case RF_STATUS:
        bc_script_args_str(a, "committed");
        break;
    default:
        bc_script_args_str(a, field == RF_OFFICER ? "" : "0");
        break; /* set by the script, or 0 */
    }
}

/* The record in rec_fields order, then now_ms. */
static void commit_args(bc_script_args *a, const bc_recording_meta *m, int64_t now_ms)
{
    for (int f = 0; f < RF_COUNT; f++)
        commit_arg(a, m, f);
    bc_script_args_int(a, now_ms);
}

#define COMMIT_ARGS (RF_COUNT + 1)

static bc_status commit_parse(const redisReply *rep, bc_recording_meta *m, bool *created,
                              bc_catalog_hold_ref *holds, size_t holds_cap, size_t *hold_count,
                              bc_error *err)
{
    int v = V_OK;
    bc_status st = bc_script_set_verdict(&scripts, S_COMMIT, rep, 2 + REC_STRIDE + 1, &v, err);
    if (st != BC_OK)
        return st;
    size_t n = 0;
    int64_t made = 0;
    if (v != V_OK || !bc_reply_i64(rep->element[1], &made) ||
        !parse_recording(rep->element + 2, m) || !bc_reply_count(rep, 2 + REC_STRIDE, 2, &n))
        return bc_script_set_parse_fail(&scripts, S_COMMIT, err);
    if (created != NULL)
        *created = made == 1;
    size_t kept = 0;
    for (size_t i = 0; i < n && holds != NULL && kept < holds_cap; i++) {
        redisReply *const *e = rep->element + 2 + REC_STRIDE + 1 + 2 * i;
        bc_catalog_hold_ref *h = &holds[kept];
        memset(h, 0, sizeof(*h));
        if (!bc_reply_str(e[0], h->hold_id, sizeof(h->hold_id)) ||
            !bc_reply_str(e[1], h->request_id, sizeof(h->request_id)))
            return bc_script_set_parse_fail(&scripts, S_COMMIT, err);
        snprintf(h->ref, sizeof(h->ref), "%s", m->ref);
        kept++;
    }
    if (hold_count != NULL)
        *hold_count = kept;
    return BC_OK;
}

bc_status bc_catalog_commit(bc_redis *r, bc_recording_meta *m, int64_t now_ms, bool *created,
                            bc_catalog_hold_ref *holds, size_t holds_cap, size_t *hold_count,
                            bc_error *err)
{
    if (hold_count != NULL)
        *hold_count = 0;
    bc_status st = commit_check(m, err);
    if (st != BC_OK)
        return st;
    bc_script_args a;
    redisReply *rep = NULL;
    st = bc_script_args_init(&a, COMMIT_ARGS, err);
    if (st != BC_OK)
        goto cleanup;
    commit_args(&a, m, now_ms);
    st = bc_script_set_run(&scripts, r, S_COMMIT, &a, &rep, err);
    if (st != BC_OK)
        goto cleanup;
    st = commit_parse(rep, m, created, holds, holds_cap, hold_count, err);
cleanup:
    call_done(&a, rep);
    return st;
}

bc_status bc_catalog_commit_append(bc_redis *r, bc_recording_meta *m, int64_t now_ms, bc_error *err)
{
    bc_status st = commit_check(m, err);
    if (st != BC_OK)
        return st;
    bc_script_args a;
    st = bc_script_args_init(&a, COMMIT_ARGS, err);
    if (st != BC_OK)
        goto cleanup;
    commit_args(&a, m, now_ms);
    st = bc_script_set_check(&scripts, S_COMMIT, &a, err);
    if (st != BC_OK)
        goto cleanup;
    st = bc_script_append(r, bc_script_set_get(&scripts, S_COMMIT),
                          (int)(BC_SCRIPT_ARGV_HEAD + a.n), a.v, a.len, err);
cleanup:
    bc_script_args_free(&a);
    return st;
}

bc_status bc_catalog_commit_reply(bc_redis *r, bc_recording_meta *m, bool *created,
                                  bc_catalog_hold_ref *holds, size_t holds_cap, size_t *hold_count,
                                  bc_error *err)
{
    if (hold_count != NULL)
        *hold_count = 0;
    redisReply *rep = NULL;
    bc_status st = bc_redis_reply(r, &rep, err);
    if (st != BC_OK)
        return st;
    st = commit_parse(rep, m, created, holds, holds_cap, hold_count, err);
    freeReplyObject(rep);
    return st;
}

/* Runs a script whose only answers are 'ok' and 'not_found'. */
static bc_status run_simple(bc_redis *r, script_id id, bc_script_args *a, const char *what,
                            bc_error *err)
{
    redisReply *rep = NULL;
    int v = V_OK;
    bc_status st = bc_script_set_call(&scripts, r, id, a, 1, &rep, &v, err);
    if (st == BC_OK && v == V_NOT_FOUND)
        st = bc_fail(err, BC_ERR_NOT_FOUND, "%s does not exist", what);
    else if (st == BC_OK && v != V_OK)
        st = bc_script_set_parse_fail(&scripts, id, err);
    if (rep != NULL)
        freeReplyObject(rep);
    return st;
}

bc_status bc_catalog_commit_audited(bc_redis *r, const char *ref, uint64_t seq, bc_error *err)
{
    if (bc_ref_split(ref, NULL, NULL) != BC_OK)
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a recording ref", ref ? ref : "");
    bc_script_args a;
    bc_status st = bc_script_args_init(&a, 2, err);
    if (st == BC_OK) {
        bc_script_args_str(&a, ref);
        bc_script_args_u64(&a, seq);
        char what[BC_REF_MAX + 16];
        snprintf(what, sizeof(what), "recording %s", ref);
        st = run_simple(r, S_COMMIT_AUDITED, &a, what, err);
    }
    bc_script_args_free(&a);
    return st;
}

bc_status bc_catalog_unaudited(bc_redis *r, bc_catalog_ref_fn fn, void *userdata, bc_error *err)
{
    const char *argv[] = {"SMEMBERS", "bodycam:recordings:unaudited"};
    redisReply *rep = NULL;
    bc_status st = bc_redis_command(r, 2, argv, NULL, &rep, err);
    if (st != BC_OK)
        return st;
    if (rep->type != REDIS_REPLY_ARRAY) {
        st = bc_fail(err, BC_ERR_PARSE, "SMEMBERS of the unaudited set answered no array");
        goto cleanup;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        char ref[BC_REF_MAX + 1];
        if (!bc_reply_str(rep->element[i], ref, sizeof(ref))) {
            st = bc_fail(err, BC_ERR_PARSE, "the unaudited set holds a member that is no ref");
            goto cleanup;
        }
        if (!fn(ref, userdata))
            break;
    }
cleanup:
    freeReplyObject(rep);
    return st;
}

bc_status bc_catalog_recording_get(bc_redis *r, const char *ref, bc_recording_meta *out,
                                   bc_error *err)
{
    if (bc_ref_split(ref, NULL, NULL) != BC_OK)
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a recording ref", ref ? ref : "");
    bc_script_args a;
    redisReply *rep = NULL;
    bc_status st = bc_script_args_init(&a, 1, err);
    if (st != BC_OK)
        goto cleanup;
    bc_script_args_str(&a, ref);
    int v = V_OK;
    st = bc_script_set_call(&scripts, r, S_REC_GET, &a, 1 + REC_STRIDE, &rep, &v, err);
    if (st != BC_OK)
        goto cleanup;
    if (v == V_NOT_FOUND)
        st = bc_fail(err, BC_ERR_NOT_FOUND, "recording %s does not exist", ref);
    else if (v != V_OK || !parse_recording(rep->element + 1, out))
        st = bc_script_set_parse_fail(&scripts, S_REC_GET, err);
cleanup:
    call_done(&a, rep);
    return st;
}

/* Index entries a list script reads per call: Redis is not blocked by one
 * long listing. Pages are offsets into a sorted set, so an entry added or
 * removed during a listing may shift a later page by one (seen twice or
 * not at all): fine for an operator's listing, never used for retention. */
#define LIST_PAGE 500

/* One page of a list: {'ok', more, item * k} with items of stride fields.
 * *more is true when the next page may hold more. */
static bc_status page_check(const redisReply *rep, script_id id, size_t stride, bool *more,
                            size_t *items, bc_error *err)
{
    int v = V_OK;
    bc_status st = bc_script_set_verdict(&scripts, id, rep, 2, &v, err);
    if (st != BC_OK)
        return st;
    int64_t m = 0;
    if (v != V_OK || !bc_reply_i64(rep->element[1], &m) || (rep->elements - 2) % stride != 0)
        return bc_script_set_parse_fail(&scripts, id, err);
    *more = m == 1;
    *items = (rep->elements - 2) / stride;
    return BC_OK;
}

/* A list read page by page: its script, the reply elements of one item,
 * and the two steps that differ from list to list. */
typedef struct pager {
    script_id id;
    size_t stride;
    size_t nargs; /* the script's arguments, the page's two included */
    /* Adds the arguments for the page at offset (args_page among them). */
    bc_status (*add_args)(bc_script_args *a, size_t offset, void *ctx, bc_error *err);
    /* Parses the item at e and hands it on; false when it does not parse,
     * *go_on false to stop the listing. */
    bool (*item)(redisReply *const *e, void *ctx, bool *go_on);
    void *ctx;
} pager;

/* The page's offset and size, as every list script takes them. */
static void args_page(bc_script_args *a, size_t offset)
{
    bc_script_args_int(a, (int64_t)offset);
    bc_script_args_int(a, LIST_PAGE);
}

/* Calls the list script page after page until the list ends or an item
 * handler says stop. */
static bc_status pages_walk(bc_redis *r, const pager *p, bc_error *err)
{
    size_t offset = 0;
    bool more = true;
    bc_status st = BC_OK;
    while (more && st == BC_OK) {
        bc_script_args a;
        redisReply *rep = NULL;
        size_t items = 0;
        bool go_on = true;
        st = bc_script_args_init(&a, p->nargs, err);
        if (st == BC_OK)
            st = p->add_args(&a, offset, p->ctx, err);
        if (st == BC_OK)
            st = bc_script_set_run(&scripts, r, p->id, &a, &rep, err);
        if (st == BC_OK)
            st = page_check(rep, p->id, p->stride, &more, &items, err);
        for (size_t i = 0; st == BC_OK && go_on && i < items; i++) {
            if (!p->item(rep->element + 2 + i * p->stride, p->ctx, &go_on))
                st = bc_script_set_parse_fail(&scripts, p->id, err);
        }
        more = more && go_on;
        offset += LIST_PAGE;
        if (rep != NULL)
            freeReplyObject(rep);
        bc_script_args_free(&a);
    }
    return st;
}

typedef struct rec_lister {
    const bc_recording_filter *f;
    bc_catalog_recording_fn fn;
    void *userdata;
    size_t seen;
} rec_lister;

static bc_status recordings_args(bc_script_args *a, size_t offset, void *ctx, bc_error *err)
{
    const bc_recording_filter *f = ((rec_lister *)ctx)->f;
    if (f->device != NULL && !bc_device_id_valid(f->device))
        return bc_fail(err, BC_ERR_INVAL, "device '%s' is not a device id", f->device);
    if (f->officer != NULL && !bc_id_valid(f->officer))
        return bc_fail(err, BC_ERR_INVAL, "officer '%s' is not an officer id", f->officer);
    if (f->status < -1 || f->status > BC_REC_PURGED)
        return bc_fail(err, BC_ERR_INVAL, "recording status %d does not exist", f->status);
    bc_script_args_str(a, f->device);
    bc_script_args_str(a, f->officer);
    bc_script_args_int(a, f->from);
    if (f->to == 0)
        bc_script_args_str(a, "+inf");
    else
        bc_script_args_int(a, f->to);
    bc_script_args_str(a, f->status < 0 ? ""
                                        : bc_recording_status_name((bc_recording_status)f->status));
    bc_script_args_str(a, f->held_only ? "1" : "0");
    args_page(a, offset);
    return BC_OK;
}

static bool recording_item(redisReply *const *e, void *ctx, bool *go_on)
{
    rec_lister *w = ctx;
    bc_recording_meta m;
    if (!parse_recording(e, &m))
        return false;
    *go_on = w->fn(&m, w->userdata) && (w->f->limit == 0 || ++w->seen < w->f->limit);
    return true;
}

bc_status bc_catalog_recordings_list(bc_redis *r, const bc_recording_filter *f,
                                     bc_catalog_recording_fn fn, void *userdata, bc_error *err)
{
    static const bc_recording_filter everything = {.status = -1};
    rec_lister w = {f != NULL ? f : &everything, fn, userdata, 0};
    pager p = {S_REC_LIST, REC_STRIDE, 8, recordings_args, recording_item, &w};
    return pages_walk(r, &p, err);
}

/* ---- purge ---- */

/* count records of REC_STRIDE after {'ok', count}, into out[cap]. */
static bc_status records_parse(const redisReply *rep, script_id id, bc_recording_meta *out,
                               size_t cap, size_t *count, bc_error *err)
{
    int v = V_OK;
    bc_status st = bc_script_set_verdict(&scripts, id, rep, 2, &v, err);
    if (st != BC_OK)
        return st;
    size_t n = 0;
    if (v != V_OK || !bc_reply_count(rep, 1, REC_STRIDE, &n) || n > cap ||
        rep->elements != 2 + n * REC_STRIDE)
        return bc_script_set_parse_fail(&scripts, id, err);
    for (size_t i = 0; i < n; i++) {
        if (!parse_recording(rep->element + 2 + i * REC_STRIDE, &out[i]))
            return bc_script_set_parse_fail(&scripts, id, err);
    }
    *count = n;
    return BC_OK;
}

bc_status bc_catalog_purge_begin(bc_redis *r, int64_t now_ms, bc_recording_meta *out, size_t limit,
                                 size_t *count, bc_error *err)
{
    *count = 0;
    if (limit == 0)
        return BC_OK;
    bc_script_args a;
    redisReply *rep = NULL;
    bc_status st = bc_script_args_init(&a, 2, err);
    if (st != BC_OK)
        goto cleanup;
    bc_script_args_int(&a, now_ms);
    bc_script_args_int(&a, (int64_t)limit);
    st = bc_script_set_run(&scripts, r, S_PURGE_BEGIN, &a, &rep, err);
    if (st != BC_OK)
        goto cleanup;
    st = records_parse(rep, S_PURGE_BEGIN, out, limit, count, err);
cleanup:
    call_done(&a, rep);
    return st;
}

bc_status bc_catalog_purging(bc_redis *r, bc_catalog_recording_fn fn, void *userdata, bc_error *err)
{
    bc_script_args a;
    redisReply *rep = NULL;
    bc_recording_meta *recs = NULL;
    bc_status st = bc_script_args_init(&a, 0, err);
    if (st != BC_OK)
        goto cleanup;
    st = bc_script_set_run(&scripts, r, S_PURGING, &a, &rep, err);
    if (st != BC_OK)
        goto cleanup;
    size_t n = rep->type == REDIS_REPLY_ARRAY ? rep->elements / REC_STRIDE + 1 : 1;
    recs = calloc(n, sizeof(*recs));
    if (recs == NULL) {
        st = bc_fail(err, BC_ERR_NOMEM, "no memory for %zu purging recordings", n);
        goto cleanup;
    }
    size_t count = 0;
    st = records_parse(rep, S_PURGING, recs, n, &count, err);
    for (size_t i = 0; st == BC_OK && i < count; i++) {
        if (!fn(&recs[i], userdata))
            break;
    }
cleanup:
    free(recs);
    if (rep != NULL)
        freeReplyObject(rep);
    bc_script_args_free(&a);
    return st;
}

static bc_status refs_check(const char *const *refs, size_t count, bc_error *err)
{
    for (size_t i = 0; i < count; i++) {
        if (bc_ref_split(refs[i], NULL, NULL) != BC_OK)
            return bc_fail(err, BC_ERR_INVAL, "'%s' is not a recording ref",
                           refs[i] ? refs[i] : "");
    }
    return BC_OK;
}

bc_status bc_catalog_purge_audited(bc_redis *r, const char *const *refs, const uint64_t *seqs,
                                   size_t count, bc_error *err)
{
    if (count == 0)
        return BC_OK;
    bc_status st = refs_check(refs, count, err);
    if (st != BC_OK)
        return st;
    bc_script_args a;
    st = bc_script_args_init(&a, 2 * count, err);
    if (st == BC_OK) {
        for (size_t i = 0; i < count; i++) {
            bc_script_args_str(&a, refs[i]);
            bc_script_args_u64(&a, seqs[i]);
        }
        st = run_simple(r, S_PURGE_AUDITED, &a, "a recording", err);
    }
    bc_script_args_free(&a);
    return st;
}

bc_status bc_catalog_purge_done(bc_redis *r, const char *const *refs, size_t count, int64_t now_ms,
                                int64_t tombstone_days, bc_error *err)
{
    if (tombstone_days < 0 || tombstone_days > 36500)
        return bc_fail(err, BC_ERR_INVAL, "tombstone days %lld out of 0..36500",
                       (long long)tombstone_days);
    if (count == 0)
        return BC_OK;
    bc_status st = refs_check(refs, count, err);
    if (st != BC_OK)
        return st;
    bc_script_args a;
    st = bc_script_args_init(&a, 3 + count, err);
    if (st == BC_OK) {
        bc_script_args_int(&a, now_ms);
        bc_script_args_int(&a, tombstone_days * 86400);
        bc_script_args_int(&a, now_ms + tombstone_days * BC_CATALOG_DAY_MS);
        for (size_t i = 0; i < count; i++)
            bc_script_args_str(&a, refs[i]);
        st = run_simple(r, S_PURGE_DONE, &a, "a recording", err);
    }
    bc_script_args_free(&a);
    return st;
}

bc_status bc_catalog_tombstones_sweep(bc_redis *r, size_t limit, size_t *removed, bc_error *err)
{
    *removed = 0;
    if (limit == 0)
        return BC_OK;
    bc_script_args a;
    redisReply *rep = NULL;
    bc_status st = bc_script_args_init(&a, 1, err);
    if (st != BC_OK)
        goto cleanup;
    bc_script_args_int(&a, (int64_t)limit);
    int v = V_OK;
    st = bc_script_set_call(&scripts, r, S_TOMB_SWEEP, &a, 2, &rep, &v, err);
    int64_t n = 0;
    if (st == BC_OK && (v != V_OK || !bc_reply_i64(rep->element[1], &n) || n < 0))
        st = bc_script_set_parse_fail(&scripts, S_TOMB_SWEEP, err);
    if (st == BC_OK)
        *removed = (size_t)n;
cleanup:
    call_done(&a, rep);
    return st;
}

/* ---- holds ---- */

/* {'state', code, ms} of a recording that is not committed. */
static bc_status recording_state_fail(const redisReply *rep, const char *ref, bc_error *err)
{
    int64_t at = 0;
    char when[32];
    if (bc_reply_is(rep->element[1], "purged") && bc_reply_i64(rep->element[2], &at)) {
        iso_time(at, when);
        return bc_fail(err, BC_ERR_STATE, "recording %s was purged at %s", ref, when);
    }
    if (bc_reply_is(rep->element[1], "purging"))
        return bc_fail(err, BC_ERR_STATE, "recording %s is being purged (its deadline passed)",
                       ref);
    return bc_fail(err, BC_ERR_STATE, "recording %s is not committed", ref);
}

bc_status bc_catalog_hold_place(bc_redis *r, const char *ref, bc_hold_reason reason,
                                const char *case_ref, const char *placed_by, const char *note,
                                int64_t now_ms, bc_hold *out, bool *created, bc_error *err)
{
    if (bc_ref_split(ref, NULL, NULL) != BC_OK)
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a recording ref", ref ? ref : "");
    if (reason == BC_HOLD_INZAGE)
        return bc_fail(err, BC_ERR_INVAL,
                       "inzage holds come from access requests: register "
                       "one instead");
    if (reason != BC_HOLD_AANGIFTE && reason != BC_HOLD_KLACHT)
        return bc_fail(err, BC_ERR_INVAL, "hold reason %d does not exist", (int)reason);
    if (!bc_catalog_case_valid(case_ref))
        return bc_fail(err, BC_ERR_INVAL, "case reference '%s' is not [A-Za-z0-9_./:-]{1,64}",
                       case_ref ? case_ref : "");
    if (!bc_catalog_text_valid(placed_by) || !text_opt_valid(note))
        return bc_fail(err, BC_ERR_INVAL, "hold on %s: placed_by or note is not valid text", ref);
    bc_hold scratch;
    if (out == NULL)
        out = &scratch;
    bc_script_args a;
    redisReply *rep = NULL;
    bc_status st = bc_script_args_init(&a, 6, err);
    if (st != BC_OK)
        goto cleanup;
    bc_script_args_str(&a, ref);
    bc_script_args_str(&a, bc_hold_reason_name(reason));
    bc_script_args_str(&a, case_ref);
    bc_script_args_str(&a, placed_by);
    bc_script_args_str(&a, note);
    bc_script_args_int(&a, now_ms);
    int v = V_OK;
    st = bc_script_set_call(&scripts, r, S_HOLD_PLACE, &a, 2 + HF_COUNT, &rep, &v, err);
    if (st != BC_OK)
        goto cleanup;
    int64_t made = 0;
    if (v == V_NOT_FOUND)
        st = bc_fail(err, BC_ERR_NOT_FOUND, "recording %s does not exist", ref);
    else if (v == V_STATE)
        st = recording_state_fail(rep, ref, err);
    else if (v != V_OK || !bc_reply_i64(rep->element[1], &made) ||
             !parse_hold(rep->element + 2, out))
        st = bc_script_set_parse_fail(&scripts, S_HOLD_PLACE, err);
    else if (created != NULL)
        *created = made == 1;
cleanup:
    call_done(&a, rep);
    return st;
}

static bc_status release_state_fail(const redisReply *rep, const char *id, bc_error *err)
{
    int64_t at = 0;
    char when[32];
    char rid[BC_CATALOG_ID_MAX + 1];
    if (bc_reply_is(rep->element[1], "released") && bc_reply_i64(rep->element[2], &at)) {
        iso_time(at, when);
        return bc_fail(err, BC_ERR_STATE, "hold %s was released at %s", id, when);
    }
    if (bc_reply_is(rep->element[1], "request") && bc_reply_str(rep->element[2], rid, sizeof(rid)))
        return bc_fail(err, BC_ERR_STATE,
                       "hold %s belongs to open access request %s: closing "
                       "the request releases it",
                       id, rid);
    return bc_script_set_parse_fail(&scripts, S_HOLD_RELEASE, err);
}

bc_status bc_catalog_hold_release(bc_redis *r, const char *hold_id, const char *released_by,
                                  const char *note, int64_t now_ms, bc_hold *out, bc_error *err)
{
    if (!catalog_id_valid(hold_id, 'H'))
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a hold id", hold_id ? hold_id : "");
    if (!bc_catalog_text_valid(released_by) || !text_opt_valid(note))
        return bc_fail(err, BC_ERR_INVAL, "release of %s: released_by or note is not valid text",
                       hold_id);
    bc_hold scratch;
    if (out == NULL)
        out = &scratch;
    bc_script_args a;
    redisReply *rep = NULL;
    bc_status st = bc_script_args_init(&a, 4, err);
    if (st != BC_OK)
        goto cleanup;
    bc_script_args_str(&a, hold_id);
    bc_script_args_str(&a, released_by);
    bc_script_args_str(&a, note);
    bc_script_args_int(&a, now_ms);
    int v = V_OK;
    st = bc_script_set_call(&scripts, r, S_HOLD_RELEASE, &a, 1 + HF_COUNT, &rep, &v, err);
    if (st != BC_OK)
        goto cleanup;
    if (v == V_NOT_FOUND)
        st = bc_fail(err, BC_ERR_NOT_FOUND, "hold %s does not exist", hold_id);
    else if (v == V_STATE)
        st = release_state_fail(rep, hold_id, err);
    else if (v != V_OK || !parse_hold(rep->element + 1, out))
        st = bc_script_set_parse_fail(&scripts, S_HOLD_RELEASE, err);
cleanup:
    call_done(&a, rep);
    return st;
}

bc_status bc_catalog_hold_get(bc_redis *r, const char *hold_id, bc_hold *out, bc_error *err)
{
    if (!catalog_id_valid(hold_id, 'H'))
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a hold id", hold_id ? hold_id : "");
    bc_script_args a;
    redisReply *rep = NULL;
    bc_status st = bc_script_args_init(&a, 1, err);
    if (st != BC_OK)
        goto cleanup;
    bc_script_args_str(&a, hold_id);
    int v = V_OK;
    st = bc_script_set_call(&scripts, r, S_HOLD_GET, &a, 1 + HF_COUNT, &rep, &v, err);
    if (st != BC_OK)
        goto cleanup;
    if (v == V_NOT_FOUND)
        st = bc_fail(err, BC_ERR_NOT_FOUND, "hold %s does not exist", hold_id);
    else if (v != V_OK || !parse_hold(rep->element + 1, out))
        st = bc_script_set_parse_fail(&scripts, S_HOLD_GET, err);
cleanup:
    call_done(&a, rep);
    return st;
}

typedef struct hold_lister {
    const bc_hold_filter *f;
    bc_catalog_hold_fn fn;
    void *userdata;
} hold_lister;

static bc_status holds_args(bc_script_args *a, size_t offset, void *ctx, bc_error *err)
{
    (void)err;
    const bc_hold_filter *f = ((hold_lister *)ctx)->f;
    bc_script_args_str(a, f->ref);
    bc_script_args_str(a, f->case_ref);
    bc_script_args_str(a, f->active_only ? "1" : "0");
    args_page(a, offset);
    return BC_OK;
}

static bool hold_item(redisReply *const *e, void *ctx, bool *go_on)
{
    hold_lister *w = ctx;
    bc_hold h;
    if (!parse_hold(e, &h))
        return false;
    *go_on = w->fn(&h, w->userdata);
    return true;
}

bc_status bc_catalog_holds_list(bc_redis *r, const bc_hold_filter *f, bc_catalog_hold_fn fn,
                                void *userdata, bc_error *err)
{
    static const bc_hold_filter everything = {NULL, NULL, false};
    if (f == NULL)
        f = &everything;
    if (f->ref != NULL && bc_ref_split(f->ref, NULL, NULL) != BC_OK)
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a recording ref", f->ref);
    if (f->case_ref != NULL && !bc_catalog_case_valid(f->case_ref))
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a case reference", f->case_ref);
    hold_lister w = {f, fn, userdata};
    pager p = {S_HOLDS_LIST, HF_COUNT, 5, holds_args, hold_item, &w};
    return pages_walk(r, &p, err);
}

/* ---- access requests ---- */

static bc_status request_check(const bc_access_request *q, int64_t now_ms, bc_error *err)
{
    if (!bc_catalog_text_valid(q->requester) || !text_opt_valid(q->contact) ||
        !text_opt_valid(q->place) || !bc_catalog_text_valid(q->registered_by))
        return bc_fail(err, BC_ERR_INVAL,
                       "access request: requester, contact, place or "
                       "registered_by is not valid text");
    if (q->window_from < 0 || q->window_from >= q->window_to)
        return bc_fail(err, BC_ERR_INVAL, "access request: the window must start before it ends");
    if (q->officer[0] != '\0' && !bc_id_valid(q->officer))
        return bc_fail(err, BC_ERR_INVAL, "access request: officer '%s' is not an officer id",
                       q->officer);
    if (q->camera_count > BC_REQUEST_CAMERAS_MAX)
        return bc_fail(err, BC_ERR_INVAL, "access request: more than %d cameras",
                       BC_REQUEST_CAMERAS_MAX);
    for (size_t i = 0; i < q->camera_count; i++) {
        if (!bc_device_id_valid(q->cameras[i]))
            return bc_fail(err, BC_ERR_INVAL, "access request: camera '%s' is not a device id",
                           q->cameras[i]);
    }
    if (q->deadline <= now_ms)
        return bc_fail(err, BC_ERR_INVAL, "access request: the deadline is not in the future");
    return BC_OK;
}

static void cameras_join(const bc_access_request *q, char *out, size_t cap)
{
    size_t pos = 0;
    out[0] = '\0';
    for (size_t i = 0; i < q->camera_count; i++) {
        int n = snprintf(out + pos, cap - pos, "%s%s", i > 0 ? "," : "", q->cameras[i]);
        if (n < 0 || (size_t)n >= cap - pos)
            return; /* cannot happen: cap holds BC_REQUEST_CAMERAS_MAX ids */
        pos += (size_t)n;
    }
}

static bc_status matches_deliver(const redisReply *rep, size_t at, script_id id,
                                 bc_catalog_match_fn fn, void *userdata, bc_error *err)
{
    size_t n = 0;
    if (!bc_reply_count(rep, at, MATCH_STRIDE, &n) || rep->elements != at + 1 + n * MATCH_STRIDE)
        return bc_script_set_parse_fail(&scripts, id, err);
    bool go_on = fn != NULL;
    for (size_t i = 0; i < n; i++) {
        bc_request_match m;
        if (!parse_match(rep->element + at + 1 + i * MATCH_STRIDE, &m))
            return bc_script_set_parse_fail(&scripts, id, err);
        if (go_on)
            go_on = fn(&m, userdata);
    }
    return BC_OK;
}

bc_status bc_catalog_request_register(bc_redis *r, bc_access_request *req, int64_t now_ms,
                                      bc_catalog_match_fn fn, void *userdata, bc_error *err)
{
    bc_status st = request_check(req, now_ms, err);
    if (st != BC_OK)
        return st;
    char cameras[BC_REQUEST_CAMERAS_MAX * (BC_DEVICE_ID_MAX + 1) + 1];
    cameras_join(req, cameras, sizeof(cameras));
    bc_script_args a;
    redisReply *rep = NULL;
    st = bc_script_args_init(&a, 10, err);
    if (st != BC_OK)
        goto cleanup;
    bc_script_args_str(&a, req->requester);
    bc_script_args_str(&a, req->contact);
    bc_script_args_int(&a, req->window_from);
    bc_script_args_int(&a, req->window_to);
    bc_script_args_str(&a, req->place);
    bc_script_args_str(&a, cameras);
    bc_script_args_str(&a, req->officer);
    bc_script_args_str(&a, req->registered_by);
    bc_script_args_int(&a, req->deadline);
    bc_script_args_int(&a, now_ms);
    int v = V_OK;
    st = bc_script_set_call(&scripts, r, S_REQ_REGISTER, &a, 2 + QF_COUNT, &rep, &v, err);
    if (st != BC_OK)
        goto cleanup;
    if (v != V_OK || !parse_request(rep->element + 1, req)) {
        st = bc_script_set_parse_fail(&scripts, S_REQ_REGISTER, err);
        goto cleanup;
    }
    st = matches_deliver(rep, 1 + QF_COUNT, S_REQ_REGISTER, fn, userdata, err);
cleanup:
    call_done(&a, rep);
    return st;
}

/* A script answering {'ok', request} for one request id. */
static bc_status request_one(bc_redis *r, script_id id, bc_script_args *a, const char *rid,
                             bc_access_request *out, bc_error *err)
{
    redisReply *rep = NULL;
    int v = V_OK;
    int64_t at = 0;
    char when[32];
    bc_status st = bc_script_set_call(&scripts, r, id, a, 1 + QF_COUNT, &rep, &v, err);
    if (st != BC_OK)
        goto cleanup;
    if (v == V_NOT_FOUND) {
        st = bc_fail(err, BC_ERR_NOT_FOUND, "access request %s does not exist", rid);
    } else if (v == V_STATE && bc_reply_i64(rep->element[2], &at)) {
        iso_time(at, when);
        st = bc_reply_is(rep->element[1], "closed")
                 ? bc_fail(err, BC_ERR_STATE, "access request %s was closed at %s", rid, when)
                 : bc_fail(err, BC_ERR_STATE, "access request %s was extended already (to %s)", rid,
                           when);
    } else if (v == V_INVAL && bc_reply_i64(rep->element[2], &at)) {
        iso_time(at, when);
        st = bc_fail(err, BC_ERR_INVAL, "access request %s: the new deadline is not after %s", rid,
                     when);
    } else if (v != V_OK || out == NULL || !parse_request(rep->element + 1, out)) {
        st = bc_script_set_parse_fail(&scripts, id, err);
    }
cleanup:
    if (rep != NULL)
        freeReplyObject(rep);
    return st;
}

static bc_status request_id_check(const char *id, bc_error *err)
{
    if (!catalog_id_valid(id, 'R'))
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not an access request id", id ? id : "");
    return BC_OK;
}

bc_status bc_catalog_request_get(bc_redis *r, const char *id, bc_access_request *out, bc_error *err)
{
    bc_status st = request_id_check(id, err);
    if (st != BC_OK)
        return st;
    bc_script_args a;
    st = bc_script_args_init(&a, 1, err);
    if (st == BC_OK) {
        bc_script_args_str(&a, id);
        st = request_one(r, S_REQ_GET, &a, id, out, err);
    }
    bc_script_args_free(&a);
    return st;
}

bc_status bc_catalog_request_matches(bc_redis *r, const char *id, bc_catalog_match_fn fn,
                                     void *userdata, bc_error *err)
{
    bc_status st = request_id_check(id, err);
    if (st != BC_OK)
        return st;
    bc_script_args a;
    redisReply *rep = NULL;
    st = bc_script_args_init(&a, 1, err);
    if (st != BC_OK)
        goto cleanup;
    bc_script_args_str(&a, id);
    int v = V_OK;
    st = bc_script_set_call(&scripts, r, S_REQ_MATCHES, &a, 2, &rep, &v, err);
    if (st != BC_OK)
        goto cleanup;
    if (v == V_NOT_FOUND)
        st = bc_fail(err, BC_ERR_NOT_FOUND, "access request %s does not exist", id);
    else if (v != V_OK)
        st = bc_script_set_parse_fail(&scripts, S_REQ_MATCHES, err);
    else
        st = matches_deliver(rep, 1, S_REQ_MATCHES, fn, userdata, err);
cleanup:
    call_done(&a, rep);
    return st;
}

bc_status bc_catalog_request_extend(bc_redis *r, const char *id, int64_t new_deadline,
                                    const char *reason, const char *by, int64_t now_ms,
                                    bc_access_request *out, bc_error *err)
{
    bc_status st = request_id_check(id, err);
    if (st != BC_OK)
        return st;
    if (!bc_catalog_text_valid(reason) || !bc_catalog_text_valid(by))
        return bc_fail(err, BC_ERR_INVAL, "extension of %s: reason or by is not valid text", id);
    bc_script_args a;
    st = bc_script_args_init(&a, 5, err);
    if (st == BC_OK) {
        bc_script_args_str(&a, id);
        bc_script_args_int(&a, new_deadline);
        bc_script_args_str(&a, reason);
        bc_script_args_str(&a, by);
        bc_script_args_int(&a, now_ms);
        bc_access_request scratch;
        st = request_one(r, S_REQ_EXTEND, &a, id, out != NULL ? out : &scratch, err);
    }
    bc_script_args_free(&a);
    return st;
}

bc_status bc_catalog_request_close(bc_redis *r, const char *id, const char *answer, const char *by,
                                   int64_t now_ms, bc_catalog_hold_fn fn, void *userdata,
                                   bc_error *err)
{
    bc_status st = request_id_check(id, err);
    if (st != BC_OK)
        return st;
    if (!bc_catalog_text_valid(answer) || !bc_catalog_text_valid(by))
        return bc_fail(err, BC_ERR_INVAL, "closing %s: answer or by is not valid text", id);
    bc_script_args a;
    redisReply *rep = NULL;
    st = bc_script_args_init(&a, 4, err);
    if (st != BC_OK)
        goto cleanup;
    bc_script_args_str(&a, id);
    bc_script_args_str(&a, answer);
    bc_script_args_str(&a, by);
    bc_script_args_int(&a, now_ms);
    int v = V_OK;
    st = bc_script_set_call(&scripts, r, S_REQ_CLOSE, &a, 2, &rep, &v, err);
    if (st != BC_OK)
        goto cleanup;
    int64_t at = 0;
    char when[32];
    size_t n = 0;
    if (v == V_NOT_FOUND) {
        st = bc_fail(err, BC_ERR_NOT_FOUND, "access request %s does not exist", id);
    } else if (v == V_STATE && bc_reply_i64(rep->element[2], &at)) {
        iso_time(at, when);
        st = bc_fail(err, BC_ERR_STATE, "access request %s was closed at %s", id, when);
    } else if (v != V_OK || !bc_reply_count(rep, 1, HF_COUNT, &n) ||
               rep->elements != 2 + n * HF_COUNT) {
        st = bc_script_set_parse_fail(&scripts, S_REQ_CLOSE, err);
    }
    bool go_on = fn != NULL;
    for (size_t i = 0; st == BC_OK && i < n; i++) {
        bc_hold h;
        if (!parse_hold(rep->element + 2 + i * HF_COUNT, &h))
            st = bc_script_set_parse_fail(&scripts, S_REQ_CLOSE, err);
        else if (go_on)
            go_on = fn(&h, userdata);
    }
cleanup:
    call_done(&a, rep);
    return st;
}

typedef struct req_lister {
    bool open_only;
    int64_t overdue_at; /* < 0: not that filter */
    bc_catalog_request_fn fn;
    void *userdata;
} req_lister;

static bc_status requests_args(bc_script_args *a, size_t offset, void *ctx, bc_error *err)
{
    (void)err;
    const req_lister *w = ctx;
    bc_script_args_str(a, w->open_only ? "1" : "0");
    args_page(a, offset);
    if (w->overdue_at >= 0)
        bc_script_args_int(a, w->overdue_at);
    else
        bc_script_args_str(a, "");
    return BC_OK;
}

static bool request_item(redisReply *const *e, void *ctx, bool *go_on)
{
    req_lister *w = ctx;
    bc_access_request q;
    if (!parse_request(e, &q))
        return false;
    *go_on = w->fn(&q, w->userdata);
    return true;
}

/* Lists requests: all by pages, open ones, or those overdue at now_ms
 * (overdue_at < 0: not that filter). */
static bc_status requests_walk(bc_redis *r, bool open_only, int64_t overdue_at,
                               bc_catalog_request_fn fn, void *userdata, bc_error *err)
{
    req_lister w = {open_only, overdue_at, fn, userdata};
    pager p = {S_REQ_LIST, QF_COUNT, 4, requests_args, request_item, &w};
    return pages_walk(r, &p, err);
}

bc_status bc_catalog_requests_list(bc_redis *r, bool open_only, bc_catalog_request_fn fn,
                                   void *userdata, bc_error *err)
{
    return requests_walk(r, open_only, -1, fn, userdata, err);
}

bc_status bc_catalog_requests_overdue(bc_redis *r, int64_t now_ms, bc_catalog_request_fn fn,
                                      void *userdata, bc_error *err)
{
    if (now_ms < 0)
        return bc_fail(err, BC_ERR_INVAL, "a negative time cannot be overdue");
    return requests_walk(r, true, now_ms, fn, userdata, err);
}

bc_status bc_catalog_request_mark_alerted(bc_redis *r, const char *id, bool alerted, bc_error *err)
{
    bc_status st = request_id_check(id, err);
    if (st != BC_OK)
        return st;
    bc_script_args a;
    st = bc_script_args_init(&a, 2, err);
    if (st == BC_OK) {
        bc_script_args_str(&a, id);
        bc_script_args_str(&a, alerted ? "1" : "0");
        char what[BC_CATALOG_ID_MAX + 32];
        snprintf(what, sizeof(what), "access request %s", id);
        st = run_simple(r, S_REQ_ALERTED, &a, what, err);
    }
    bc_script_args_free(&a);
    return st;
}

/* ---- recording keys ---- */

static const char *const key_status_names[] = {"current", "retired", "destroyed"};

const char *bc_key_status_name(bc_key_status s)
{
    if ((unsigned)s >= sizeof(key_status_names) / sizeof(key_status_names[0]))
        return "unknown";
    return key_status_names[s];
}

static bool parse_key(redisReply *const *e, bc_key_record *k)
{
    memset(k, 0, sizeof(*k));
    int status = 0;
    bool adopted = false;
    bool destroying = false;
    bool ok = bc_reply_str(e[KF_KEY_ID], k->key_id, sizeof(k->key_id)) &&
              bc_reply_str(e[KF_PUBLIC], k->public_b64, sizeof(k->public_b64)) &&
              bc_reply_i64(e[KF_CREATED_AT], &k->created_at) &&
              bc_reply_name(e[KF_STATUS], key_status_names, 3, &status) &&
              bc_reply_i64(e[KF_RETIRED_AT], &k->retired_at) &&
              bc_reply_i64(e[KF_DESTROYED_AT], &k->destroyed_at) &&
              bc_reply_str(e[KF_CAMPAIGN], k->campaign, sizeof(k->campaign)) &&
              bc_reply_str(e[KF_CREATED_BY], k->created_by, sizeof(k->created_by)) &&
              bc_reply_str(e[KF_REPLACED], k->replaced, sizeof(k->replaced)) &&
              bc_reply_bool(e[KF_ADOPTED], &adopted) &&
              bc_reply_bool(e[KF_DESTROYING], &destroying) &&
              bc_reply_u64(e[KF_AUDIT_SEQ], &k->audit_seq) &&
              bc_reply_u64(e[KF_DESTROY_SEQ], &k->destroy_audit_seq);
    k->status = (bc_key_status)status;
    k->adopted = adopted;
    k->destroying = destroying;
    return ok;
}

/* 16 lowercase hex digits (proto/README.md "Key ids"). */
static bool key_id_valid(const char *id)
{
    if (id == NULL || strlen(id) != BC_KEY_ID_LEN)
        return false;
    for (const char *p = id; *p != '\0'; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    }
    return true;
}

/* base64 of 32 bytes: 43 characters of the alphabet and one '='. */
static bool public_valid(const char *s)
{
    if (s == NULL || strlen(s) != BC_KEY_PUBLIC_MAX || s[BC_KEY_PUBLIC_MAX - 1] != '=')
        return false;
    for (size_t i = 0; i + 1 < BC_KEY_PUBLIC_MAX; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/';
        if (!ok)
            return false;
    }
    return true;
}

static bc_status key_id_check(const char *key_id, bc_error *err)
{
    if (!key_id_valid(key_id))
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a key id (16 hex digits)",
                       key_id != NULL ? key_id : "");
    return BC_OK;
}

/* A script answering {'ok', [flag,] key} or 'not_found' (what names it). */
static bc_status key_call(bc_redis *r, script_id id, bc_script_args *a, size_t at, const char *what,
                          bc_key_record *out, redisReply **rep, bc_error *err)
{
    int v = V_OK;
    bc_status st = bc_script_set_call(&scripts, r, id, a, at + KF_COUNT, rep, &v, err);
    if (st != BC_OK)
        return st;
    if (v == V_NOT_FOUND)
        return bc_fail(err, BC_ERR_NOT_FOUND, "%s does not exist", what);
    if (v == V_OK && out != NULL && !parse_key((*rep)->element + at, out))
        return bc_script_set_parse_fail(&scripts, id, err);
    return BC_OK;
}

bc_status bc_catalog_recording_key_record(bc_redis *r, const char *key_id, const char *public_b64,
                                          const char *campaign, const char *by, int64_t now_ms,
                                          bc_key_record *out, bool *created, bc_error *err)
{
    bc_status st = key_id_check(key_id, err);
    if (st != BC_OK)
        return st;
    if (!public_valid(public_b64))
        return bc_fail(err, BC_ERR_INVAL, "the public key of %s is not base64 of 32 bytes", key_id);
    if (campaign == NULL || !bc_id_valid(campaign) || strlen(campaign) > BC_CATALOG_ID_MAX)
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a campaign id", campaign ? campaign : "");
    if (!bc_catalog_text_valid(by))
        return bc_fail(err, BC_ERR_INVAL, "who asked for key %s is not a valid name", key_id);
    bc_script_args a;
    redisReply *rep = NULL;
    if ((st = bc_script_args_init(&a, 5, err)) != BC_OK)
        goto cleanup;
    bc_script_args_str(&a, key_id);
    bc_script_args_str(&a, public_b64);
    bc_script_args_str(&a, campaign);
    bc_script_args_str(&a, by);
    bc_script_args_int(&a, now_ms);
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_KEY_RECORD, &a, 2 + KF_COUNT, &rep, &v, err)) !=
        BC_OK)
        goto cleanup;
    if (v == V_STATE) {
        st = bc_fail(err, BC_ERR_STATE, "recording key %s is recorded already", key_id);
        goto cleanup;
    }
    int64_t made = 0;
    if (v != V_OK || !bc_reply_i64(rep->element[1], &made) || !parse_key(rep->element + 2, out)) {
        st = bc_script_set_parse_fail(&scripts, S_KEY_RECORD, err);
        goto cleanup;
    }
    if (created != NULL)
        *created = made == 1;
cleanup:
    call_done(&a, rep);
    return st;
}

/* Delivers n key records from element at on. */
static bc_status keys_deliver(const redisReply *rep, size_t at, script_id id, bc_catalog_key_fn fn,
                              void *userdata, bc_error *err)
{
    size_t n = 0;
    if (!bc_reply_count(rep, at, KF_COUNT, &n))
        return bc_script_set_parse_fail(&scripts, id, err);
    for (size_t i = 0; i < n; i++) {
        bc_key_record k;
        if (!parse_key(rep->element + at + 1 + i * KF_COUNT, &k))
            return bc_script_set_parse_fail(&scripts, id, err);
        if (fn != NULL && !fn(&k, userdata))
            break;
    }
    return BC_OK;
}

bc_status bc_catalog_recording_keys_adopt(bc_redis *r, const char *const *key_ids,
                                          const char *const *publics, size_t count, int64_t now_ms,
                                          bc_catalog_key_fn fn, void *userdata, size_t *left,
                                          bc_error *err)
{
    if (left != NULL)
        *left = 0;
    if (count == 0)
        return BC_OK;
    bc_status st = BC_OK;
    for (size_t i = 0; i < count && st == BC_OK; i++) {
        st = key_id_check(key_ids[i], err);
        if (st == BC_OK && !public_valid(publics[i]))
            st = bc_fail(err, BC_ERR_INVAL, "the public key of %s is not base64 of 32 bytes",
                         key_ids[i]);
    }
    if (st != BC_OK)
        return st;
    bc_script_args a;
    redisReply *rep = NULL;
    if ((st = bc_script_args_init(&a, 1 + 2 * count, err)) != BC_OK)
        goto cleanup;
    bc_script_args_int(&a, now_ms);
    for (size_t i = 0; i < count; i++) {
        bc_script_args_str(&a, key_ids[i]);
        bc_script_args_str(&a, publics[i]);
    }
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_KEY_ADOPT, &a, 3, &rep, &v, err)) != BC_OK)
        goto cleanup;
    int64_t unrecorded = 0;
    if (v != V_OK || !bc_reply_i64(rep->element[rep->elements - 1], &unrecorded) ||
        unrecorded < 0) {
        st = bc_script_set_parse_fail(&scripts, S_KEY_ADOPT, err);
        goto cleanup;
    }
    if (left != NULL)
        *left = (size_t)unrecorded;
    st = keys_deliver(rep, 1, S_KEY_ADOPT, fn, userdata, err);
cleanup:
    call_done(&a, rep);
    return st;
}

bc_status bc_catalog_recording_key_get(bc_redis *r, const char *key_id, bc_key_record *out,
                                       bc_error *err)
{
    bc_status st = key_id_check(key_id, err);
    if (st != BC_OK)
        return st;
    bc_script_args a;
    redisReply *rep = NULL;
    if ((st = bc_script_args_init(&a, 1, err)) == BC_OK) {
        bc_script_args_str(&a, key_id);
        char what[64];
        snprintf(what, sizeof(what), "recording key %s", key_id);
        st = key_call(r, S_KEY_GET, &a, 1, what, out, &rep, err);
    }
    call_done(&a, rep);
    return st;
}

bc_status bc_catalog_recording_key_of_campaign(bc_redis *r, const char *campaign,
                                               bc_key_record *out, bc_error *err)
{
    if (campaign == NULL || !bc_id_valid(campaign) || strlen(campaign) > BC_CATALOG_ID_MAX)
        return bc_fail(err, BC_ERR_INVAL, "'%s' is not a campaign id", campaign ? campaign : "");
    bc_script_args a;
    redisReply *rep = NULL;
    bc_status st = bc_script_args_init(&a, 1, err);
    if (st == BC_OK) {
        bc_script_args_str(&a, campaign);
        char what[BC_CATALOG_ID_MAX + 48];
        snprintf(what, sizeof(what), "a recording key of campaign %s", campaign);
        st = key_call(r, S_KEY_CAMPAIGN, &a, 1, what, out, &rep, err);
    }
    call_done(&a, rep);
    return st;
}

bc_status bc_catalog_recording_keys_list(bc_redis *r, bc_catalog_key_fn fn, void *userdata,
                                         bc_error *err)
{
    bc_script_args a;
    redisReply *rep = NULL;
    bc_status st = bc_script_args_init(&a, 0, err);
    if (st != BC_OK)
        goto cleanup;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_KEYS_LIST, &a, 2, &rep, &v, err)) != BC_OK)
        goto cleanup;
    st = v == V_OK ? keys_deliver(rep, 1, S_KEYS_LIST, fn, userdata, err)
                   : bc_script_set_parse_fail(&scripts, S_KEYS_LIST, err);
cleanup:
    call_done(&a, rep);
    return st;
}

bc_status bc_catalog_recording_key_audited(bc_redis *r, const char *key_id, bool destroyed,
                                           uint64_t seq, bc_error *err)
{
    bc_status st = key_id_check(key_id, err);
    if (st != BC_OK)
        return st;
    bc_script_args a;
    if ((st = bc_script_args_init(&a, 3, err)) == BC_OK) {
        bc_script_args_str(&a, key_id);
        bc_script_args_str(&a, key_fields[destroyed ? KF_DESTROY_SEQ : KF_AUDIT_SEQ]);
        bc_script_args_u64(&a, seq);
        char what[64];
        snprintf(what, sizeof(what), "recording key %s", key_id);
        st = run_simple(r, S_KEY_AUDITED, &a, what, err);
    }
    bc_script_args_free(&a);
    return st;
}

/* The sentence for {'state', why, detail} of destroy_begin. */
static bc_status destroy_blocked(const redisReply *rep, const char *key_id, bc_error *err)
{
    char detail[BC_ID_MAX + 1] = "";
    (void)bc_reply_str(rep->element[2], detail, sizeof(detail));
    const redisReply *why = rep->element[1];
    if (bc_reply_is(why, "current"))
        return bc_fail(err, BC_ERR_STATE, "key %s is the current key", key_id);
    if (bc_reply_is(why, "status"))
        return bc_fail(err, BC_ERR_STATE, "key %s is %s, not retired", key_id, detail);
    if (bc_reply_is(why, "index"))
        return bc_fail(err, BC_ERR_STATE, "the catalog's key index is not built yet");
    if (bc_reply_is(why, "recordings"))
        return bc_fail(err, BC_ERR_STATE, "%s recording(s) sealed for key %s are in the catalog",
                       detail, key_id);
    if (bc_reply_is(why, "camera_key"))
        return bc_fail(err, BC_ERR_STATE, "camera %s still reports key %s", detail, key_id);
    if (bc_reply_is(why, "camera_unknown"))
        return bc_fail(err, BC_ERR_STATE, "camera %s has reported no recording key yet", detail);
    if (bc_reply_is(why, "camera_pending"))
        return bc_fail(err, BC_ERR_STATE, "camera %s has uploads pending", detail);
    return bc_fail(err, BC_ERR_STATE, "key %s may not be destroyed now", key_id);
}

bc_status bc_catalog_recording_key_destroy_begin(bc_redis *r, const char *key_id,
                                                 bc_key_record *out, bc_error *err)
{
    bc_status st = key_id_check(key_id, err);
    if (st != BC_OK)
        return st;
    bc_script_args a;
    redisReply *rep = NULL;
    if ((st = bc_script_args_init(&a, 1, err)) != BC_OK)
        goto cleanup;
    bc_script_args_str(&a, key_id);
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_KEY_DESTROY_BEGIN, &a, 1 + KF_COUNT, &rep, &v,
                                 err)) != BC_OK)
        goto cleanup;
    if (v == V_NOT_FOUND)
        st = bc_fail(err, BC_ERR_NOT_FOUND, "recording key %s does not exist", key_id);
    else if (v == V_STATE)
        st = destroy_blocked(rep, key_id, err);
    else if (v != V_OK || !parse_key(rep->element + 1, out))
        st = bc_script_set_parse_fail(&scripts, S_KEY_DESTROY_BEGIN, err);
cleanup:
    call_done(&a, rep);
    return st;
}

bc_status bc_catalog_recording_key_destroyed(bc_redis *r, const char *key_id, int64_t now_ms,
                                             bc_key_record *out, bc_error *err)
{
    bc_status st = key_id_check(key_id, err);
    if (st != BC_OK)
        return st;
    bc_script_args a;
    redisReply *rep = NULL;
    if ((st = bc_script_args_init(&a, 2, err)) != BC_OK)
        goto cleanup;
    bc_script_args_str(&a, key_id);
    bc_script_args_int(&a, now_ms);
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_KEY_DESTROYED, &a, 1 + KF_COUNT, &rep, &v, err)) !=
        BC_OK)
        goto cleanup;
    if (v == V_NOT_FOUND)
        st = bc_fail(err, BC_ERR_NOT_FOUND, "recording key %s does not exist", key_id);
    else if (v == V_STATE)
        st = bc_fail(err, BC_ERR_STATE, "recording key %s: its destruction was not begun", key_id);
    else if (v != V_OK || (out != NULL && !parse_key(rep->element + 1, out)))
        st = bc_script_set_parse_fail(&scripts, S_KEY_DESTROYED, err);
cleanup:
    call_done(&a, rep);
    return st;
}

#define KEY_INDEX_PAGE 1000

bc_status bc_catalog_key_index_build(bc_redis *r, bool *built, bc_error *err)
{
    if (built != NULL)
        *built = false;
    bc_status st = BC_OK;
    for (size_t offset = 0;; offset += KEY_INDEX_PAGE) {
        bc_script_args a;
        redisReply *rep = NULL;
        if ((st = bc_script_args_init(&a, 2, err)) == BC_OK) {
            bc_script_args_int(&a, (int64_t)offset);
            bc_script_args_int(&a, KEY_INDEX_PAGE);
        }
        int v = V_OK;
        int64_t more = 0, before = 0;
        if (st == BC_OK)
            st = bc_script_set_call(&scripts, r, S_KEY_INDEX, &a, 3, &rep, &v, err);
        if (st == BC_OK && (v != V_OK || !bc_reply_i64(rep->element[1], &more) ||
                            !bc_reply_i64(rep->element[2], &before)))
            st = bc_script_set_parse_fail(&scripts, S_KEY_INDEX, err);
        call_done(&a, rep);
        if (st != BC_OK || before == 1)
            return st;
        if (more == 0)
            break;
    }
    if (built != NULL)
        *built = true;
    return BC_OK;
}

/* ---- calendar ---- */

/* Days since 1970-01-01 of a civil date, and back (proleptic Gregorian,
 * eras of 400 years from March 1st, so February is the year's last month). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int month_days(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

int64_t bc_catalog_add_months(int64_t ms, int months)
{
    int64_t days = ms / BC_CATALOG_DAY_MS;
    int64_t rest = ms % BC_CATALOG_DAY_MS;
    if (rest < 0) {
        days--;
        rest += BC_CATALOG_DAY_MS;
    }
    int64_t y = 0;
    int m = 0;
    int d = 0;
    civil_from_days(days, &y, &m, &d);
    int64_t index = y * 12 + (m - 1) + months;
    int64_t ny = index >= 0 ? index / 12 : (index - 11) / 12;
    int nm = (int)(index - ny * 12) + 1;
    int last = month_days(ny, nm);
    if (d > last)
        d = last;
    return days_from_civil(ny, nm, d) * BC_CATALOG_DAY_MS + rest;
}
