/*
 * rollout.c - firmware rollouts in Redis (rollout.h), every change one Lua
 * script.
 *
 * The keys (README.md "Rollouts"):
 *
 *   bodycam:rollout:<id>             hash: the record and its counters
 *   bodycam:rollout:<id>:cameras     hash: device -> wave|status|cmd_id|since|from_version|detail
 *   bodycam:rollout:<id>:inflight    zset: offered, downloading, installed, reverting
 *                                    (with a command) -> deadline (ms)
 *   bodycam:rollout:<id>:pending     zset: cameras that may be offered (pending of a
 *                                    started wave; aborting: reverting without a
 *                                    command) -> not-before (ms)
 *   bodycam:rollout-cmd:<cmd_id>     hash: rollout, device
 *   bodycam:rollouts                 zset: id -> created_at
 *   bodycam:rollouts:active          set: running, paused, awaiting_approval, halted, aborting
 *   bodycam:rollouts:retained        set: rollouts whose chunks are published, until cleared
 *
 * Invariants the scripts keep:
 *
 *   - the counter of a status (and w<n>_<status>) is the number of
 *     cameras in it: only move() changes a camera's status, and it moves
 *     the counters with it;
 *   - a camera is in :inflight exactly while a command of it awaits its
 *     final answer; in :pending only while it may be offered;
 *   - at most one rollout is active (create refuses a second);
 *   - an answer changes a camera only when it names the camera's current
 *     command (acks) or fits its status and the version (events), so late
 *     and repeated answers do nothing.
 *
 * After every change progress() applies the wave rules: the error
 * threshold halts, the success threshold schedules the next wave (or asks
 * for approval), the last wave with nothing open is done, an aborting
 * rollout with nothing reverting is aborted. What it did comes back as
 * happenings (kind, device, wave, detail) at the end of the reply.
 */
#include "firmware-rollout/rollout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rate.h"
#include "common/registry_lua.h"
#include "common/reply.h"
#include "common/script_set.h"

/* ---- names ---- */

static const char *const state_names[] = {
    "running", "paused", "awaiting_approval", "halted", "aborting", "done", "aborted"};
static const char *const status_names[] = {"pending",     "offered",   "downloading",
                                           "installed",   "updated",   "failed",
                                           "rolled_back", "reverting", "reverted"};
static const char *const happen_names[] = {"wave_started", "wave_done", "awaiting_approval",
                                           "halted",       "done",      "aborted",
                                           "updated",      "failed",    "joined"};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_of(const char *const *names, int count, int v)
{
    return v >= 0 && v < count ? names[v] : "?";
}

const char *bc_rollout_state_name(bc_rollout_state s)
{
    return name_of(state_names, COUNT(state_names), (int)s);
}

const char *bc_fw_status_name(bc_fw_status s)
{
    return name_of(status_names, COUNT(status_names), (int)s);
}

const char *bc_rollout_happening_name(bc_rollout_happening_kind k)
{
    return name_of(happen_names, COUNT(happen_names), (int)k);
}

bool bc_rollout_state_active(bc_rollout_state s)
{
    return s == BC_ROLLOUT_RUNNING || s == BC_ROLLOUT_PAUSED || s == BC_ROLLOUT_AWAITING_APPROVAL ||
           s == BC_ROLLOUT_HALTED || s == BC_ROLLOUT_ABORTING;
}

bool bc_rollout_id_valid(const char *id)
{
    if (id == NULL || id[0] != 'R' || id[1] == '\0')
        return false;
    for (size_t n = 1; id[n] != '\0'; n++) {
        if (id[n] < '0' || id[n] > '9' || n >= BC_ROLLOUT_ID_MAX - 1)
            return false;
    }
    return true;
}

/* ---- the record, shared by C and Lua ---- */

enum {
    RF_ID,
    RF_VERSION,
    RF_STATE,
    RF_REASON,
    RF_CREATED_AT,
    RF_CREATED_BY,
    RF_TARGET,
    RF_WAVE_COUNT,
    RF_CURRENT_WAVE,
    RF_WAVE_STARTED_AT,
    RF_NEXT_WAVE_AT,
    RF_WAIT_S,
    RF_SUCCESS_PCT,
    RF_MAX_FAILURE_PCT,
    RF_APPROVE,
    RF_CAMERA_TIMEOUT_S,
    RF_MIN_BATTERY_PCT,
    RF_ROLLBACK,
    RF_FINISHED_AT,
    RF_CHUNKS_PUBLISHED_AT,
    RF_TOTAL,
    RF_COUNTERS, /* then one per status */
    RF_COUNT = RF_COUNTERS + BC_FW_STATUS_COUNT
};

/* in the order bodycamctl shows them (bc_rollout_hash_field) */
static const char *const rec_fields[RF_COUNTERS] = {"id",
                                                    "version",
                                                    "state",
                                                    "reason",
                                                    "created_at",
                                                    "created_by",
                                                    "target",
                                                    "wave_count",
                                                    "current_wave",
                                                    "wave_started_at",
                                                    "next_wave_at",
                                                    "wait_s",
                                                    "success_pct",
                                                    "max_failure_pct",
                                                    "approve",
                                                    "camera_timeout_s",
                                                    "min_battery_pct",
                                                    "rollback",
                                                    "finished_at",
                                                    "chunks_published_at",
                                                    "total"};

#define WAVE_STRIDE (1 + BC_FW_STATUS_COUNT) /* total, then one per status */
#define CAM_STRIDE 7                         /* device, wave, status, cmd, since, from, detail */
#define HAPPEN_STRIDE 4

/* ---- the scripts ---- */

static const char prelude[] =
    "local P = 'bodycam:'\n"
    "local ACTIVE = P .. 'rollouts:active'\n"
    "local ALL = P .. 'rollouts'\n"
    "local RETAINED = P .. 'rollouts:retained'\n"
    "local BUSY = {offered = true, downloading = true, installed = true}\n"
    "local H = {}\n"
    "local function s(n) return string.format('%d', n) end\n"
    "local function rk(id) return P .. 'rollout:' .. id end\n"
    "local function ck(id) return rk(id) .. ':cameras' end\n"
    "local function ik(id) return rk(id) .. ':inflight' end\n"
    "local function pk(id) return rk(id) .. ':pending' end\n"
    "local function xk(cmd) return P .. 'rollout-cmd:' .. cmd end\n"
    "local function append(out, v) for i = 1, #v do out[#out + 1] = v[i] end end\n"
    "local function num(id, f) return tonumber(redis.call('HGET', rk(id), f)) or 0 end\n"
    "local function wn(w, st) return 'w' .. s(w) .. '_' .. st end\n"
    "local function happen(k, d, w, detail) append(H, {k, d, s(w), detail}) end\n"
    "local function with_h(out) out[#out + 1] = #H / 4; append(out, H); return out end\n"
    /* wave|status|cmd_id|since|from_version|detail (detail last, may hold '|') */
    "local function parse(raw)\n"
    "  local w, st, cmd, since, from, detail =\n"
    "    string.match(raw, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')\n"
    "  if not w then return nil end\n"
    "  return {w = tonumber(w) or 0, st = st, cmd = cmd, since = tonumber(since) or 0,\n"
    "    from = from, detail = detail}\n"
    "end\n"
    "local function cam_get(id, dev)\n"
    "  local raw = redis.call('HGET', ck(id), dev)\n"
    "  if not raw then return nil end\n"
    "  return parse(raw)\n"
    "end\n"
    "local function cam_put(id, dev, e)\n"
    "  redis.call('HSET', ck(id), dev, s(e.w) .. '|' .. e.st .. '|' .. e.cmd .. '|' ..\n"
    "    s(e.since) .. '|' .. e.from .. '|' .. e.detail)\n"
    "end\n"
    /* the one place a camera changes status: the counters move with it */
    "local function move(id, dev, e, st, now, detail)\n"
    "  if e.st ~= st then\n"
    "    redis.call('HINCRBY', rk(id), e.st, -1)\n"
    "    redis.call('HINCRBY', rk(id), wn(e.w, e.st), -1)\n"
    "    redis.call('HINCRBY', rk(id), st, 1)\n"
    "    redis.call('HINCRBY', rk(id), wn(e.w, st), 1)\n"
    "  end\n"
    "  e.st = st\n"
    "  e.since = now\n"
    "  if detail then e.detail = detail end\n"
    "  if not BUSY[st] and not (st == 'reverting' and e.cmd ~= '') then\n"
    "    redis.call('ZREM', ik(id), dev)\n"
    "  end\n"
    "  cam_put(id, dev, e)\n"
    "end\n"
    "local function finish(id, st, now)\n"
    "  redis.call('HSET', rk(id), 'state', st, 'finished_at', s(now), 'next_wave_at', '0')\n"
    "  redis.call('SREM', ACTIVE, id)\n"
    "  redis.call('DEL', pk(id), ik(id))\n"
    "  happen(st, '', num(id, 'current_wave'), '')\n"
    "end\n"
    "local function start_wave(id, w, now)\n"
    "  redis.call('HSET', rk(id), 'current_wave', s(w), 'wave_started_at', s(now),\n"
    "    'next_wave_at', '0')\n"
    "  local all = redis.call('HGETALL', ck(id))\n"
    "  for i = 1, #all, 2 do\n"
    "    local e = parse(all[i + 1])\n"
    "    if e and e.w == w and e.st == 'pending' then redis.call('ZADD', pk(id), now, all[i]) end\n"
    "  end\n"
    "  happen('wave_started', '', w, '')\n"
    "end\n"
    /* the error threshold of wave w, after dev failed or rolled back */
    "local function halt_check(id, w, dev, now)\n"
    "  local st = redis.call('HGET', rk(id), 'state')\n"
    "  if st ~= 'running' and st ~= 'paused' and st ~= 'awaiting_approval' then return end\n"
    "  local total = num(id, wn(w, 'total'))\n"
    "  local bad = num(id, wn(w, 'failed')) + num(id, wn(w, 'rolled_back'))\n"
    "  local maxp = num(id, 'max_failure_pct')\n"
    "  if total == 0 or bad * 100 <= maxp * total then return end\n"
    "  local reason = string.format(\n"
    "    'wave %d: %d of %d cameras failed or rolled back (more than %d%%)',\n"
    "    w + 1, bad, total, maxp)\n"
    "  redis.call('HSET', rk(id), 'state', 'halted', 'reason', reason, 'next_wave_at', '0')\n"
    "  happen('halted', dev, w, reason)\n"
    "end\n"
    "local function open_count(id)\n"
    "  return num(id, 'pending') + num(id, 'offered') + num(id, 'downloading') +\n"
    "    num(id, 'installed')\n"
    "end\n"
    /* the success threshold, the next wave, done and aborted */
    "local function progress(id, now)\n"
    "  local c = redis.call('HMGET', rk(id), 'state', 'current_wave', 'wave_count',\n"
    "    'next_wave_at', 'approve', 'success_pct', 'wait_s')\n"
    "  local st, cw, wc = c[1], tonumber(c[2]) or 0, tonumber(c[3]) or 0\n"
    "  local nwa = tonumber(c[4]) or 0\n"
    "  if st == 'aborting' then\n"
    "    if num(id, 'reverting') + num(id, 'offered') + num(id, 'downloading') +\n"
    "       num(id, 'installed') == 0 then finish(id, 'aborted', now) end\n"
    "    return\n"
    "  end\n"
    "  if st ~= 'running' then return end\n"
    "  if cw >= wc - 1 then\n"
    "    if open_count(id) == 0 then finish(id, 'done', now) end\n"
    "    return\n"
    "  end\n"
    "  if nwa > 0 then\n"
    "    if now >= nwa then start_wave(id, cw + 1, now) end\n"
    "    return\n"
    "  end\n"
    "  local total = num(id, wn(cw, 'total'))\n"
    "  local busy = num(id, wn(cw, 'offered')) + num(id, wn(cw, 'downloading')) +\n"
    "    num(id, wn(cw, 'installed'))\n"
    "  if busy > 0 or num(id, wn(cw, 'updated')) * 100 < tonumber(c[6]) * total then return end\n"
    "  if c[5] == '1' then\n"
    "    redis.call('HSET', rk(id), 'state', 'awaiting_approval')\n"
    "    happen('awaiting_approval', '', cw, '')\n"
    "    return\n"
    "  end\n"
    "  local at = now + tonumber(c[7]) * 1000\n"
    "  redis.call('HSET', rk(id), 'next_wave_at', s(at))\n"
    "  happen('wave_done', '', cw, '')\n"
    "  if at <= now then start_wave(id, cw + 1, now) end\n"
    "end\n"
    /* a camera that took the version while the rollout aborts with rollback
     * goes back to its from_version, if a manifest for it was signed */
    /* whether the camera took the version in this rollout (one that ran it
     * already is updated with from_version = version: nothing to undo) */
    "local function took(id, e)\n"
    "  return (e.st == 'updated' or e.st == 'installed') and\n"
    "    e.from ~= redis.call('HGET', rk(id), 'version')\n"
    "end\n"
    "local function revert(id, dev, e, now)\n"
    "  local m = cjson.decode(redis.call('HGET', rk(id), 'rollback_manifests') or '{}')\n"
    "  if e.from ~= '' and m[e.from] then\n"
    "    e.cmd = ''\n"
    "    move(id, dev, e, 'reverting', now, '')\n"
    "    redis.call('ZADD', pk(id), now, dev)\n"
    "  else\n"
    "    local why = 'no rollback manifest for version ' .. e.from\n"
    "    move(id, dev, e, 'failed', now, why)\n"
    "    happen('failed', dev, e.w, why)\n"
    "  end\n"
    "end\n"
    "local function after(id, dev, e, now)\n"
    "  if took(id, e) and redis.call('HGET', rk(id), 'state') == 'aborting' then\n"
    "    revert(id, dev, e, now)\n"
    "  end\n"
    "  if e.st == 'failed' or e.st == 'rolled_back' then halt_check(id, e.w, dev, now) end\n"
    "  progress(id, now)\n"
    "end\n"
    /* the record in RF order, then per wave its total and status counters */
    "local function rec(id)\n"
    "  local v = redis.call('HMGET', rk(id), unpack(RF))\n"
    "  if not v[1] then return nil end\n"
    "  for i = 1, #RF do if not v[i] then v[i] = '0' end end\n"
    "  local wc = tonumber(redis.call('HGET', rk(id), 'wave_count')) or 0\n"
    "  for w = 0, wc - 1 do\n"
    "    local f = {wn(w, 'total')}\n"
    "    for _, st in ipairs(ST) do f[#f + 1] = wn(w, st) end\n"
    "    local c = redis.call('HMGET', rk(id), unpack(f))\n"
    "    for i = 1, #c do v[#v + 1] = c[i] or '0' end\n"
    "  end\n"
    "  return v\n"
    "end\n" BC_RATE_LUA BC_SCRIPT_OUTBOX_LUA BC_REGISTRY_LUA;

/* 1 version  2 created_by  3 now  4 target (all|list)  5 mode (pct|lists)
 * 6 wait_s  7 success_pct  8 max_failure_pct  9 approve  10 camera_timeout_s
 * 11 min_battery_pct  12 npct  13.. pcts, then ndev and the cameras (lists:
 * device, wave pairs). {'ok', id}; {'not_found', what, name};
 * {'state', code, a, b} */
static const char create_src[] =
    "local version, by, now = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "if not redis.call('HGET', P .. 'firmware:' .. version, 'manifest') then\n"
    "  return {'not_found', 'published firmware image', version}\n"
    "end\n"
    "for _, r in ipairs(redis.call('SMEMBERS', ACTIVE)) do\n"
    "  return {'state', 'busy', r, redis.call('HGET', rk(r), 'state') or ''}\n"
    "end\n"
    "local npct = tonumber(ARGV[12])\n"
    "local at = 13 + npct\n"
    "local ndev = tonumber(ARGV[at])\n"
    "local list, waveof, seen = {}, {}, {}\n"
    "local function check(d)\n"
    "  local st = reg_status(d)\n"
    "  if not st then return {'not_found', 'registered camera', d} end\n"
    "  if st ~= 'active' then return {'state', 'status', d, st} end\n"
    "end\n"
    "local function take_dev(d, w)\n"
    "  if seen[d] then return nil end\n"
    "  seen[d] = true\n"
    "  local bad = check(d)\n"
    "  if bad then return bad end\n"
    "  list[#list + 1] = d\n"
    "  waveof[d] = w\n"
    "end\n"
    "if ARGV[5] == 'lists' then\n"
    "  for i = 1, ndev do\n"
    "    local bad = take_dev(ARGV[at + 2 * i - 1], tonumber(ARGV[at + 2 * i]))\n"
    "    if bad then return bad end\n"
    "  end\n"
    "elseif ARGV[4] == 'list' then\n"
    "  for i = 1, ndev do\n"
    "    local bad = take_dev(ARGV[at + i], 0)\n"
    "    if bad then return bad end\n"
    "  end\n"
    "else\n"
    "  list = reg_active()\n"
    "end\n"
    "if #list == 0 then return {'state', 'empty', '', ''} end\n"
    "local id = 'R' .. s(redis.call('INCR', P .. 'rollout:next'))\n"
    "local waves = {}\n"
    "if ARGV[5] == 'lists' then\n"
    "  local byw, maxw = {}, 0\n"
    "  for _, d in ipairs(list) do\n"
    "    local w = waveof[d]\n"
    "    byw[w] = byw[w] or {}\n"
    "    table.insert(byw[w], d)\n"
    "    if w > maxw then maxw = w end\n"
    "  end\n"
    "  for w = 0, maxw do if byw[w] then waves[#waves + 1] = byw[w] end end\n"
    "else\n"
    "  local key = {}\n"
    /* online cameras first: a canary that is away would hold the first
     * wave until it is back */
    "  for _, d in ipairs(list) do\n"
    "    local on = redis.call('HGET', P .. 'camera:' .. d, 'online') == '1'\n"
    "    key[d] = (on and '0' or '1') .. redis.sha1hex(id .. '|' .. d)\n"
    "  end\n"
    "  table.sort(list, function(a, b) return key[a] < key[b] end)\n"
    "  local n, prev = #list, 0\n"
    "  for i = 1, npct do\n"
    "    local upto = math.floor((tonumber(ARGV[12 + i]) * n + 99) / 100)\n"
    "    if upto < prev + 1 then upto = prev + 1 end\n"
    "    if upto > n then upto = n end\n"
    "    if upto > prev then\n"
    "      local w = {}\n"
    "      for k = prev + 1, upto do w[#w + 1] = list[k] end\n"
    "      waves[#waves + 1] = w\n"
    "      prev = upto\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local r = {'id', id, 'version', version, 'state', 'running', 'created_at', s(now),\n"
    "  'created_by', by, 'target', ARGV[4], 'waves', cjson.encode(waves),\n"
    "  'wave_count', s(#waves), 'current_wave', '0', 'wave_started_at', s(now),\n"
    "  'next_wave_at', '0', 'wait_s', ARGV[6], 'success_pct', ARGV[7],\n"
    "  'max_failure_pct', ARGV[8], 'approve', ARGV[9], 'camera_timeout_s', ARGV[10],\n"
    "  'min_battery_pct', ARGV[11], 'rollback', '0', 'reason', '', 'finished_at', '0',\n"
    "  'chunks_published_at', '0', 'total', s(#list)}\n"
    "for _, st in ipairs(ST) do\n"
    "  local v = '0'\n"
    "  if st == 'pending' then v = s(#list) end\n"
    "  append(r, {st, v})\n"
    "end\n"
    "redis.call('HSET', rk(id), unpack(r))\n"
    "for w, cams in ipairs(waves) do\n"
    "  local i = w - 1\n"
    "  redis.call('HSET', rk(id), wn(i, 'total'), s(#cams))\n"
    "  for _, st in ipairs(ST) do\n"
    "    local v = '0'\n"
    "    if st == 'pending' then v = s(#cams) end\n"
    "    redis.call('HSET', rk(id), wn(i, st), v)\n"
    "  end\n"
    "  for _, d in ipairs(cams) do\n"
    "    redis.call('HSET', ck(id), d, s(i) .. '|pending||' .. s(now) .. '||')\n"
    "    if i == 0 then redis.call('ZADD', pk(id), now, d) end\n"
    "  end\n"
    "end\n"
    "redis.call('ZADD', ALL, now, id)\n"
    "redis.call('SADD', ACTIVE, id)\n"
    "return {'ok', id}\n";

/* 1 id. {'ok', record} */
static const char get_src[] = "local v = rec(ARGV[1])\n"
                              "if not v then return {'not_found', 'rollout', ARGV[1]} end\n"
                              "local out = {'ok'}\n"
                              "append(out, v)\n"
                              "return out\n";

/* 1 active only ('1'). {'ok', (n, record)...} in creation order */
static const char list_src[] =
    "local ids = redis.call('ZRANGE', ALL, 0, -1)\n"
    "local out = {'ok'}\n"
    "for _, id in ipairs(ids) do\n"
    "  if ARGV[1] ~= '1' or redis.call('SISMEMBER', ACTIVE, id) == 1 then\n"
    "    local v = rec(id)\n"
    "    if v then\n"
    "      out[#out + 1] = #v\n"
    "      append(out, v)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* 1 id. {'ok', (device, wave, status, cmd, since, from, detail)...} */
static const char cameras_src[] =
    "local id = ARGV[1]\n"
    "if redis.call('EXISTS', rk(id)) == 0 then return {'not_found', 'rollout', id} end\n"
    "local names = redis.call('HKEYS', ck(id))\n"
    "table.sort(names)\n"
    "local out = {'ok'}\n"
    "for _, d in ipairs(names) do\n"
    "  local e = cam_get(id, d)\n"
    "  if e then append(out, {d, s(e.w), e.st, e.cmd, s(e.since), e.from, e.detail}) end\n"
    "end\n"
    "return out\n";

/* 1 id  2 act (pause|resume|approve|abort)  3 now  4 rollback manifests
 * JSON ('' = none). {'ok', changed, record}; {'state', code, a, b} */
static const char act_src[] =
    "local id, act, now = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local st = redis.call('HGET', rk(id), 'state')\n"
    "if not st then return {'not_found', 'rollout', id} end\n"
    "local changed = 0\n"
    "if act == 'pause' then\n"
    "  if st == 'running' then\n"
    "    redis.call('HSET', rk(id), 'state', 'paused')\n"
    "    changed = 1\n"
    "  elseif st ~= 'paused' then return {'state', act, st, ''} end\n"
    "elseif act == 'resume' then\n"
    "  if st == 'paused' or st == 'halted' then\n"
    "    redis.call('HSET', rk(id), 'state', 'running', 'reason', '')\n"
    "    changed = 1\n"
    "    progress(id, now)\n"
    "  elseif st ~= 'running' then return {'state', act, st, ''} end\n"
    "elseif act == 'approve' then\n"
    "  if st ~= 'awaiting_approval' then return {'state', act, st, ''} end\n"
    "  redis.call('HSET', rk(id), 'state', 'running')\n"
    "  start_wave(id, num(id, 'current_wave') + 1, now)\n"
    "  changed = 1\n"
    "else\n"
    "  if st == 'done' or st == 'aborted' then return {'state', act, st, ''} end\n"
    "  if st ~= 'aborting' then\n"
    "    changed = 1\n"
    "    local rb = ARGV[4]\n"
    "    if rb == '' then\n"
    "      redis.call('HSET', rk(id), 'reason', 'aborted')\n"
    "      finish(id, 'aborted', now)\n"
    "    else\n"
    "      local m = cjson.decode(rb)\n"
    "      local all = redis.call('HGETALL', ck(id))\n"
    "      for i = 1, #all, 2 do\n"
    "        local e = parse(all[i + 1])\n"
    "        if e and took(id, e) and not m[e.from] then\n"
    "          return {'state', 'no_manifest', all[i], e.from}\n"
    "        end\n"
    "      end\n"
    "      redis.call('DEL', pk(id))\n"
    "      redis.call('HSET', rk(id), 'state', 'aborting', 'rollback', '1', 'reason',\n"
    "        'aborted with rollback', 'rollback_manifests', rb, 'next_wave_at', '0')\n"
    "      for i = 1, #all, 2 do\n"
    "        local e = parse(all[i + 1])\n"
    "        if e and took(id, e) then revert(id, all[i], e, now) end\n"
    "      end\n"
    "      progress(id, now)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local out = {'ok', changed}\n"
    "append(out, rec(id))\n"
    "return out\n";

/* 1 id. {'ok', json} */
static const char manifests_src[] =
    "if redis.call('EXISTS', rk(ARGV[1])) == 0 then return {'not_found', 'rollout', ARGV[1]} end\n"
    "return {'ok', redis.call('HGET', rk(ARGV[1]), 'rollback_manifests') or '{}'}\n";

/* 1 id  2 now  3 want  4 per_s  5 recheck_ms  6 lease_ms.
 * {'ok', state, version, n, (device, from)..., nh, H...} */
static const char next_src[] =
    "local id, now = ARGV[1], tonumber(ARGV[2])\n"
    "local c = redis.call('HMGET', rk(id), 'state', 'version', 'current_wave', 'min_battery_pct')\n"
    "if not c[1] then return {'not_found', 'rollout', id} end\n"
    "if c[1] ~= 'running' and c[1] ~= 'aborting' then return {'state', 'not_running', c[1], ''} "
    "end\n"
    "local cw, minb = tonumber(c[3]) or 0, tonumber(c[4]) or 0\n"
    "local lease, recheck = s(now + tonumber(ARGV[6])), s(now + tonumber(ARGV[5]))\n"
    "local got, moved = {}, false\n"
    "local n, tat, step = peek(PACE, 'offer_tat', tonumber(ARGV[4]), now, tonumber(ARGV[3]))\n"
    "if n > 0 then\n"
    "  local cand = redis.call('ZRANGEBYSCORE', pk(id), '-inf', s(now), 'LIMIT', 0, 4 * n + 16)\n"
    "  for _, d in ipairs(cand) do\n"
    "    if #got >= 2 * n then break end\n"
    "    local e = cam_get(id, d)\n"
    "    local cam = redis.call('HMGET', P .. 'camera:' .. d, 'online', 'state', 'battery_pct', "
    "'fw')\n"
    "    if not e then\n"
    "      redis.call('ZREM', pk(id), d)\n"
    "    elseif c[1] == 'aborting' then\n"
    "      if e.st ~= 'reverting' or e.cmd ~= '' then redis.call('ZREM', pk(id), d)\n"
    "      elseif cam[1] == '1' then\n"
    "        append(got, {d, e.from})\n"
    "        redis.call('ZADD', pk(id), lease, d)\n"
    "      else redis.call('ZADD', pk(id), recheck, d) end\n"
    "    elseif e.st ~= 'pending' or e.w > cw then\n"
    "      redis.call('ZREM', pk(id), d)\n"
    "    elseif cam[4] == c[2] then\n"
    "      local why = 'already running ' .. c[2]\n"
    "      redis.call('ZREM', pk(id), d)\n"
    "      e.from = c[2]\n"
    "      move(id, d, e, 'updated', now, why)\n"
    "      happen('updated', d, e.w, why)\n"
    "      moved = true\n"
    "    elseif cam[1] == '1' and ((cam[2] == 'standby' and (tonumber(cam[3]) or -1) >= minb)\n"
    "                           or cam[2] == 'docked') then\n"
    "      append(got, {d, cam[4] or ''})\n"
    "      redis.call('ZADD', pk(id), lease, d)\n"
    "    else\n"
    "      redis.call('ZADD', pk(id), recheck, d)\n"
    "    end\n"
    "  end\n"
    "  take(PACE, 'offer_tat', tat, step, #got / 2)\n"
    "end\n"
    "if moved then progress(id, now) end\n"
    "local out = {'ok', c[1], c[2], #got / 2}\n"
    "append(out, got)\n"
    "return with_h(out)\n";

/* 1 id  2 device  3 cmd  4 now  5 deadline  6 cmd ttl (s)  7 outbox
 * 8..11 its field names topic payload qos retain  12 topic  13 payload.
 * {'ok'}; {'taken', status} */
static const char mark_src[] =
    "local id, dev, cmd, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])\n"
    "local st = redis.call('HGET', rk(id), 'state')\n"
    "if not st then return {'not_found', 'rollout', id} end\n"
    "local e = cam_get(id, dev)\n"
    "if not e then return {'not_found', 'camera', dev} end\n"
    "if not redis.call('ZSCORE', pk(id), dev) then return {'taken', e.st} end\n"
    "if st == 'running' and e.st == 'pending' then\n"
    "  redis.call('ZREM', pk(id), dev)\n"
    "  e.cmd = cmd\n"
    "  e.from = redis.call('HGET', P .. 'camera:' .. dev, 'fw') or ''\n"
    "  move(id, dev, e, 'offered', now, '')\n"
    "elseif st == 'aborting' and e.st == 'reverting' and e.cmd == '' then\n"
    "  redis.call('ZREM', pk(id), dev)\n"
    "  e.cmd = cmd\n"
    "  e.since = now\n"
    "  cam_put(id, dev, e)\n"
    "else\n"
    "  return {'taken', e.st}\n"
    "end\n"
    "redis.call('ZADD', ik(id), ARGV[5], dev)\n"
    "redis.call('HSET', xk(cmd), 'rollout', id, 'device', dev)\n"
    "redis.call('EXPIRE', xk(cmd), ARGV[6])\n"
    "outbox_add(7)\n"
    "return {'ok'}\n";

/* 1 device  2 type  3 version  4 detail  5 now.
 * {'ok', applied, status, wave, rollout, detail, nh, H...} */
static const char event_src[] =
    "local dev, ty, ver, detail, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])\n"
    "local id\n"
    "for _, r in ipairs(redis.call('SMEMBERS', ACTIVE)) do\n"
    "  if redis.call('HEXISTS', ck(r), dev) == 1 then id = r break end\n"
    "end\n"
    "if not id then return with_h({'ok', 0, 'pending', '0', '', ''}) end\n"
    "local e = cam_get(id, dev)\n"
    "if not e then return with_h({'ok', 0, 'pending', '0', id, ''}) end\n"
    "local rv = redis.call('HGET', rk(id), 'version')\n"
    "local new\n"
    "if e.st == 'reverting' then\n"
    "  if e.cmd ~= '' and ver == e.from then\n"
    "    if ty == 'fw_confirmed' then new = 'reverted'\n"
    "    elseif ty == 'fw_failed' or ty == 'fw_refused' or ty == 'fw_rolled_back' then\n"
    "      new = 'failed'\n"
    "    end\n"
    "  end\n"
    "elseif BUSY[e.st] then\n"
    /* a camera back on its previous slot may name either version */
    "  if ty == 'fw_rolled_back' then new = 'rolled_back'\n"
    "  elseif ver == rv then\n"
    "    if ty == 'fw_downloading' and e.st == 'offered' then new = 'downloading'\n"
    "    elseif ty == 'fw_installed' and e.st ~= 'installed' then new = 'installed'\n"
    "    elseif ty == 'fw_confirmed' then new = 'updated'\n"
    "    elseif ty == 'fw_failed' or ty == 'fw_refused' then new = 'failed' end\n"
    "  end\n"
    "end\n"
    "if not new then return with_h({'ok', 0, e.st, s(e.w), id, e.detail}) end\n"
    "local d = nil\n"
    "if new == 'failed' or new == 'rolled_back' then\n"
    "  d = detail\n"
    "  if d == '' then d = ty end\n"
    "end\n"
    "move(id, dev, e, new, now, d)\n"
    "after(id, dev, e, now)\n"
    "return with_h({'ok', 1, e.st, s(e.w), id, e.detail})\n";

/* 1 cmd  2 device  3 ok ('1')  4 error  5 now.
 * {'ok', applied, status, wave, rollout, detail, nh, H...};
 * {'not_found', 'command', cmd}; {'state', 'device', owner, ''} */
static const char ack_src[] =
    "local cmd, now = ARGV[1], tonumber(ARGV[5])\n"
    "local x = redis.call('HMGET', xk(cmd), 'rollout', 'device')\n"
    "if not x[1] or not x[2] then return {'not_found', 'command', cmd} end\n"
    "if x[2] ~= ARGV[2] then return {'state', 'device', x[2], ''} end\n"
    "local id, dev = x[1], x[2]\n"
    "local e = cam_get(id, dev)\n"
    "if not e then return with_h({'ok', 0, 'pending', '0', id, ''}) end\n"
    "if redis.call('SISMEMBER', ACTIVE, id) == 0 or e.cmd ~= cmd or\n"
    "   (e.st ~= 'offered' and e.st ~= 'reverting') or ARGV[3] == '1' then\n"
    "  return with_h({'ok', 0, e.st, s(e.w), id, e.detail})\n"
    "end\n"
    "move(id, dev, e, 'failed', now, ARGV[4])\n"
    "after(id, dev, e, now)\n"
    "return with_h({'ok', 1, e.st, s(e.w), id, e.detail})\n";

/* 1 id  2 now  3 limit. {'ok', nh, H...} */
static const char tick_src[] =
    "local id, now = ARGV[1], tonumber(ARGV[2])\n"
    "local c = redis.call('HMGET', rk(id), 'state', 'camera_timeout_s', 'target',\n"
    "  'current_wave', 'wave_count')\n"
    "if not c[1] then return {'not_found', 'rollout', id} end\n"
    "if redis.call('SISMEMBER', ACTIVE, id) == 0 then return with_h({'ok'}) end\n"
    "local due = redis.call('ZRANGEBYSCORE', ik(id), '-inf', s(now), 'LIMIT', 0, ARGV[3])\n"
    "for _, d in ipairs(due) do\n"
    "  if redis.call('SISMEMBER', ACTIVE, id) == 0 then break end\n"
    "  local e = cam_get(id, d)\n"
    "  if e and (BUSY[e.st] or (e.st == 'reverting' and e.cmd ~= '')) then\n"
    "    local why = 'no final answer within ' .. c[2] .. ' s of the offer'\n"
    "    move(id, d, e, 'failed', now, why)\n"
    "    happen('failed', d, e.w, why)\n"
    "    after(id, d, e, now)\n"
    "  else\n"
    "    redis.call('ZREM', ik(id), d)\n"
    "  end\n"
    "end\n"
    "local st = redis.call('HGET', rk(id), 'state')\n"
    "if c[3] == 'all' and redis.call('SISMEMBER', ACTIVE, id) == 1 and st ~= 'aborting' then\n"
    "  local cw, wc = num(id, 'current_wave'), num(id, 'wave_count')\n"
    "  local w = cw + 1\n"
    "  if w > wc - 1 then w = wc - 1 end\n"
    "  for _, d in ipairs(reg_active()) do\n"
    "    if redis.call('HEXISTS', ck(id), d) == 0 then\n"
    "      redis.call('HSET', ck(id), d, s(w) .. '|pending||' .. s(now) .. '||')\n"
    "      for _, f in ipairs({'total', 'pending', wn(w, 'total'), wn(w, 'pending')}) do\n"
    "        redis.call('HINCRBY', rk(id), f, 1)\n"
    "      end\n"
    "      if w <= cw then redis.call('ZADD', pk(id), now, d) end\n"
    "      happen('joined', d, w, '')\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if redis.call('SISMEMBER', ACTIVE, id) == 1 then progress(id, now) end\n"
    "return with_h({'ok'})\n";

/* {'ok', id...} */
static const char active_src[] = "local out = {'ok'}\n"
                                 "append(out, redis.call('SMEMBERS', ACTIVE))\n"
                                 "return out\n";

/* {'ok', (id, active, chunks_published_at, n, version...)...} */
static const char retained_src[] =
    "local ids, seen = {}, {}\n"
    "for _, set in ipairs({ACTIVE, RETAINED}) do\n"
    "  for _, id in ipairs(redis.call('SMEMBERS', set)) do\n"
    "    if not seen[id] then seen[id] = true; ids[#ids + 1] = id end\n"
    "  end\n"
    "end\n"
    "table.sort(ids)\n"
    "local out = {'ok'}\n"
    "for _, id in ipairs(ids) do\n"
    "  local c = redis.call('HMGET', rk(id), 'version', 'chunks_published_at', "
    "'rollback_manifests')\n"
    "  if c[1] then\n"
    "    local vs = {c[1]}\n"
    "    for v, _ in pairs(cjson.decode(c[3] or '{}')) do\n"
    "      if v ~= c[1] then vs[#vs + 1] = v end\n"
    "    end\n"
    "    append(out, {id, redis.call('SISMEMBER', ACTIVE, id), c[2] or '0', #vs})\n"
    "    append(out, vs)\n"
    "  else\n"
    "    redis.call('SREM', RETAINED, id)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* 1 id  2 now ('' = cleared). {'ok'} */
static const char chunks_src[] =
    "if ARGV[2] == '' then\n"
    "  redis.call('SREM', RETAINED, ARGV[1])\n"
    "elseif redis.call('EXISTS', rk(ARGV[1])) == 1 then\n"
    "  redis.call('HSET', rk(ARGV[1]), 'chunks_published_at', ARGV[2])\n"
    "  redis.call('SADD', RETAINED, ARGV[1])\n"
    "end\n"
    "return {'ok'}\n";

typedef enum script_id {
    S_CREATE,
    S_GET,
    S_LIST,
    S_CAMERAS,
    S_ACT,
    S_MANIFESTS,
    S_NEXT,
    S_MARK,
    S_EVENT,
    S_ACK,
    S_TICK,
    S_ACTIVE,
    S_RETAINED,
    S_CHUNKS,
    S_COUNT
} script_id;

static const bc_script_src sources[S_COUNT] = {
    [S_CREATE] = {"create", create_src},
    [S_GET] = {"get", get_src},
    [S_LIST] = {"list", list_src},
    [S_CAMERAS] = {"cameras", cameras_src},
    [S_ACT] = {"act", act_src},
    [S_MANIFESTS] = {"manifests", manifests_src},
    [S_NEXT] = {"next", next_src},
    [S_MARK] = {"mark_offered", mark_src},
    [S_EVENT] = {"event", event_src},
    [S_ACK] = {"ack", ack_src},
    [S_TICK] = {"tick", tick_src},
    [S_ACTIVE] = {"active", active_src},
    [S_RETAINED] = {"retained", retained_src},
    [S_CHUNKS] = {"chunks", chunks_src},
};

/* "local RF = {...}\nlocal ST = {...}\n" and the constants, then the
 * prelude. */
static void script_prelude(bc_script_text *t)
{
    const char *rf[RF_COUNT];
    for (int i = 0; i < RF_COUNT; i++)
        rf[i] = i < RF_COUNTERS ? rec_fields[i] : status_names[i - RF_COUNTERS];
    bc_script_text_list(t, "RF", rf, RF_COUNT);
    bc_script_text_list(t, "ST", status_names, BC_FW_STATUS_COUNT);
    bc_script_text_add(t, "local SLACK = %d\nlocal PACE = '%s'\n%s", BC_ROLLOUT_RATE_SLACK_MS,
                       BC_ROLLOUT_PACE_KEY, prelude);
}

const char *bc_rollout_hash_field(size_t i)
{
    static const char *const json[] = {"waves", "rollback_manifests"};
    if (i < RF_COUNTERS)
        return rec_fields[i];
    i -= RF_COUNTERS;
    if (i < BC_FW_STATUS_COUNT)
        return status_names[i];
    i -= BC_FW_STATUS_COUNT;
    return i < COUNT(json) ? json[i] : NULL;
}

/* ---- reading replies ---- */

/* Verdicts: bc_script_set_call's index into verdict_words, V_OK being 0. */
enum { V_OK, V_NOT_FOUND, V_STATE, V_TAKEN };

static const bc_reply_word verdict_words[] = {
    {"not_found", 3},
    {"state", 4},
    {"taken", 2},
};

static bc_script_set scripts = BC_SCRIPT_SET_INIT("rollout", sources, S_COUNT, script_prelude,
                                                  verdict_words, COUNT(verdict_words));

static bc_status not_found(const redisReply *rep, bc_error *err)
{
    char what[64], name[80];
    return bc_fail(err, BC_ERR_NOT_FOUND, "no %s '%s'", bc_reply_at(rep, 1, what, sizeof(what)),
                   bc_reply_at(rep, 2, name, sizeof(name)));
}

static bc_status check_id(const char *id, bc_error *err)
{
    if (!bc_rollout_id_valid(id))
        return bc_fail(err, BC_ERR_INVAL, "'%.40s' is not a rollout id (R<n>)",
                       id != NULL ? id : "");
    return BC_OK;
}

/* Runs script sid for a reader that takes only 'ok' (at least min_ok
 * elements): 'not_found' is not_found(), any other verdict a record that
 * does not fit. On BC_OK the caller frees *rep; otherwise it is NULL. a is
 * freed here. */
static bc_status call_ok(bc_redis *r, script_id sid, bc_script_args *a, size_t min_ok,
                         redisReply **rep, bc_error *err)
{
    int v = V_OK;
    bc_status st = bc_script_set_call(&scripts, r, sid, a, min_ok, rep, &v, err);
    if (st != BC_OK)
        return st;
    if (v == V_NOT_FOUND)
        st = not_found(*rep, err);
    else if (v != V_OK)
        st = bc_script_set_parse_fail(&scripts, sid, err);
    if (st != BC_OK) {
        freeReplyObject(*rep);
        *rep = NULL;
    }
    return st;
}

/* call_ok of a script whose arguments are a rollout id (checked here) and,
 * when more is not NULL, one more. */
static bc_status call_on(bc_redis *r, script_id sid, const char *id, const char *more,
                         size_t min_ok, redisReply **rep, bc_error *err)
{
    *rep = NULL;
    bc_status st = check_id(id, err);
    bc_script_args a;
    if (st != BC_OK || (st = bc_script_args_init(&a, more != NULL ? 2 : 1, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, id);
    if (more != NULL)
        bc_script_args_str(&a, more);
    return call_ok(r, sid, &a, min_ok, rep, err);
}

/* call_ok of a script with no arguments. */
static bc_status call_bare(bc_redis *r, script_id sid, redisReply **rep, bc_error *err)
{
    *rep = NULL;
    bc_script_args a;
    bc_status st = bc_script_args_init(&a, 0, err);
    if (st != BC_OK)
        return st;
    return call_ok(r, sid, &a, 1, rep, err);
}

/* A record at e[0 .. n): RF_COUNT fields, then WAVE_STRIDE per wave. */
static bool parse_rollout(redisReply *const *e, size_t n, bc_rollout *o)
{
    int state = 0;
    int64_t approve = 0, rollback = 0;
    memset(o, 0, sizeof(*o));
    if (n < RF_COUNT || !bc_reply_str(e[RF_ID], o->id, sizeof(o->id)) ||
        !bc_reply_str(e[RF_VERSION], o->version, sizeof(o->version)) ||
        !bc_reply_name(e[RF_STATE], state_names, COUNT(state_names), &state) ||
        !bc_reply_i64(e[RF_CREATED_AT], &o->created_at) ||
        !bc_reply_text(e[RF_CREATED_BY], o->created_by, sizeof(o->created_by)) ||
        !bc_reply_i64(e[RF_WAVE_COUNT], &o->wave_count) ||
        !bc_reply_i64(e[RF_CURRENT_WAVE], &o->current_wave) ||
        !bc_reply_i64(e[RF_WAVE_STARTED_AT], &o->wave_started_at) ||
        !bc_reply_i64(e[RF_NEXT_WAVE_AT], &o->next_wave_at) ||
        !bc_reply_i64(e[RF_WAIT_S], &o->wait_s) ||
        !bc_reply_i64(e[RF_SUCCESS_PCT], &o->success_pct) ||
        !bc_reply_i64(e[RF_MAX_FAILURE_PCT], &o->max_failure_pct) ||
        !bc_reply_i64(e[RF_APPROVE], &approve) ||
        !bc_reply_i64(e[RF_CAMERA_TIMEOUT_S], &o->camera_timeout_s) ||
        !bc_reply_i64(e[RF_MIN_BATTERY_PCT], &o->min_battery_pct) ||
        !bc_reply_i64(e[RF_ROLLBACK], &rollback) ||
        !bc_reply_text(e[RF_REASON], o->reason, sizeof(o->reason)) ||
        !bc_reply_i64(e[RF_FINISHED_AT], &o->finished_at) ||
        !bc_reply_i64(e[RF_CHUNKS_PUBLISHED_AT], &o->chunks_published_at) ||
        !bc_reply_i64(e[RF_TOTAL], &o->total))
        return false;
    if (strcmp(o->reason, "0") == 0)
        o->reason[0] = '\0';
    o->state = (bc_rollout_state)state;
    o->target_all = bc_reply_is(e[RF_TARGET], "all");
    o->approve = approve != 0;
    o->rollback = rollback != 0;
    for (int i = 0; i < BC_FW_STATUS_COUNT; i++) {
        if (!bc_reply_i64(e[RF_COUNTERS + i], &o->count[i]))
            return false;
    }
    if (o->wave_count < 0 || o->wave_count > BC_ROLLOUT_WAVES_MAX ||
        n != RF_COUNT + (size_t)o->wave_count * WAVE_STRIDE)
        return false;
    for (int64_t w = 0; w < o->wave_count; w++) {
        redisReply *const *we = e + RF_COUNT + w * WAVE_STRIDE;
        if (!bc_reply_i64(we[0], &o->waves[w].total))
            return false;
        for (int i = 0; i < BC_FW_STATUS_COUNT; i++) {
            if (!bc_reply_i64(we[1 + i], &o->waves[w].count[i]))
                return false;
        }
    }
    return true;
}

/* The happenings at e[at]: a count, then HAPPEN_STRIDE each. */
static bool parse_happenings(const redisReply *rep, size_t at, bc_rollout_happenings *h)
{
    size_t n = 0;
    if (!bc_reply_count(rep, at, HAPPEN_STRIDE, &n))
        return false;
    for (size_t i = 0; i < n; i++) {
        redisReply *const *e = rep->element + at + 1 + i * HAPPEN_STRIDE;
        int kind = 0;
        bc_rollout_happening x;
        memset(&x, 0, sizeof(x));
        if (!bc_reply_name(e[0], happen_names, COUNT(happen_names), &kind) ||
            !bc_reply_str(e[1], x.device, sizeof(x.device)) || !bc_reply_i64(e[2], &x.wave) ||
            !bc_reply_text(e[3], x.detail, sizeof(x.detail)))
            return false;
        x.kind = (bc_rollout_happening_kind)kind;
        if (h->count < BC_ROLLOUT_HAPPEN_MAX)
            h->items[h->count++] = x;
    }
    return true;
}

/* ---- creating and reading ---- */

static bc_status check_pcts(const bc_rollout_spec *s, bc_error *err)
{
    if (s->pct_count < 1 || s->pct_count > BC_ROLLOUT_WAVES_MAX || s->pcts == NULL)
        return bc_fail(err, BC_ERR_INVAL, "give 1..%d wave percentages", BC_ROLLOUT_WAVES_MAX);
    for (size_t i = 0; i < s->pct_count; i++) {
        if (s->pcts[i] < 1 || s->pcts[i] > 100 || (i > 0 && s->pcts[i] <= s->pcts[i - 1]))
            return bc_fail(err, BC_ERR_INVAL, "wave percentages are increasing, each 1..100 (%lld)",
                           (long long)s->pcts[i]);
    }
    if (s->pcts[s->pct_count - 1] != 100)
        return bc_fail(err, BC_ERR_INVAL,
                       "the last wave percentage must be 100: every target "
                       "camera is in a wave");
    return BC_OK;
}

static bc_status check_lists(const bc_rollout_spec *s, bc_error *err)
{
    for (size_t i = 0; i < s->wave_device_count; i++) {
        if (!bc_device_id_valid(s->wave_devices[i]) || s->wave_of[i] < 0 ||
            s->wave_of[i] >= BC_ROLLOUT_WAVES_MAX)
            return bc_fail(err, BC_ERR_INVAL,
                           "'%.40s' in wave %lld: not a device id, or more "
                           "than %d waves",
                           s->wave_devices[i] ? s->wave_devices[i] : "",
                           (long long)s->wave_of[i] + 1, BC_ROLLOUT_WAVES_MAX);
    }
    return BC_OK;
}

static bc_status create_check(const bc_rollout_spec *s, bc_error *err)
{
    if (s == NULL || s->version == NULL || !bc_version_valid(s->version))
        return bc_fail(err, BC_ERR_INVAL, "a rollout needs a firmware version (dotted digits)");
    if (!bc_script_line_valid(s->created_by, BC_ROLLOUT_ACTOR_MAX))
        return bc_fail(err, BC_ERR_INVAL,
                       "created_by is empty, too long or has a control "
                       "character");
    if (s->wait_s < 0 || s->wait_s > 30 * 86400 || s->success_pct < 1 || s->success_pct > 100 ||
        s->max_failure_pct < 0 || s->max_failure_pct > 100 || s->camera_timeout_s < 1 ||
        s->camera_timeout_s > 7 * 86400 || s->min_battery_pct < 0 || s->min_battery_pct > 100)
        return bc_fail(err, BC_ERR_INVAL,
                       "wait 0..30 days, success 1..100 %%, max failure "
                       "0..100 %%, camera timeout 1 s..7 days, battery "
                       "0..100 %%");
    if (s->wave_device_count > 0)
        return check_lists(s, err);
    for (size_t i = 0; i < s->device_count; i++) {
        if (!bc_device_id_valid(s->devices[i]))
            return bc_fail(err, BC_ERR_INVAL, "'%.40s' is not a device id",
                           s->devices[i] ? s->devices[i] : "");
    }
    return check_pcts(s, err);
}

static bc_status create_refused(const redisReply *rep, bc_error *err)
{
    char code[16], a[80], b[80];
    bc_reply_at(rep, 1, code, sizeof(code));
    bc_reply_at(rep, 2, a, sizeof(a));
    bc_reply_at(rep, 3, b, sizeof(b));
    if (strcmp(code, "busy") == 0)
        return bc_fail(err, BC_ERR_STATE, "rollout %s is active (%s): one rollout at a time", a, b);
    if (strcmp(code, "status") == 0)
        return bc_fail(err, BC_ERR_STATE, "camera %s is %s in the registry, not active", a, b);
    return bc_fail(err, BC_ERR_STATE, "no active registered camera to update");
}

bc_status bc_rollout_create(bc_redis *r, const bc_rollout_spec *spec, int64_t now_ms,
                            bc_rollout *out, bc_error *err)
{
    bc_status st = create_check(spec, err);
    if (st != BC_OK)
        return st;
    bool lists = spec->wave_device_count > 0;
    size_t npct = lists ? 0 : spec->pct_count;
    size_t ndev = lists ? spec->wave_device_count : spec->device_count;
    bc_script_args a;
    if ((st = bc_script_args_init(&a, 13 + npct + 2 * ndev, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, spec->version);
    bc_script_args_str(&a, spec->created_by);
    bc_script_args_int(&a, now_ms);
    bc_script_args_str(&a, lists || spec->device_count > 0 ? "list" : "all");
    bc_script_args_str(&a, lists ? "lists" : "pct");
    bc_script_args_int(&a, spec->wait_s);
    bc_script_args_int(&a, spec->success_pct);
    bc_script_args_int(&a, spec->max_failure_pct);
    bc_script_args_str(&a, spec->approve ? "1" : "0");
    bc_script_args_int(&a, spec->camera_timeout_s);
    bc_script_args_int(&a, spec->min_battery_pct);
    bc_script_args_int(&a, (int64_t)npct);
    for (size_t i = 0; i < npct; i++)
        bc_script_args_int(&a, spec->pcts[i]);
    bc_script_args_int(&a, (int64_t)ndev);
    for (size_t i = 0; i < ndev; i++) {
        bc_script_args_str(&a, lists ? spec->wave_devices[i] : spec->devices[i]);
        if (lists)
            bc_script_args_int(&a, spec->wave_of[i]);
    }
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_CREATE, &a, 2, &rep, &v, err)) != BC_OK)
        return st;
    char id[BC_ROLLOUT_ID_MAX + 1];
    if (v == V_OK && !bc_reply_str(rep->element[1], id, sizeof(id)))
        st = bc_script_set_parse_fail(&scripts, S_CREATE, err);
    else if (v == V_NOT_FOUND)
        st = not_found(rep, err);
    else if (v == V_STATE)
        st = create_refused(rep, err);
    else if (v != V_OK)
        st = bc_script_set_parse_fail(&scripts, S_CREATE, err);
    freeReplyObject(rep);
    if (st == BC_OK && out != NULL)
        st = bc_rollout_get(r, id, out, err);
    return st;
}

bc_status bc_rollout_get(bc_redis *r, const char *id, bc_rollout *out, bc_error *err)
{
    redisReply *rep = NULL;
    bc_status st = call_on(r, S_GET, id, NULL, 1 + RF_COUNT, &rep, err);
    if (st != BC_OK)
        return st;
    if (!parse_rollout(rep->element + 1, rep->elements - 1, out))
        st = bc_script_set_parse_fail(&scripts, S_GET, err);
    freeReplyObject(rep);
    return st;
}

bc_status bc_rollout_list(bc_redis *r, bool active_only, bc_rollout_fn fn, void *userdata,
                          bc_error *err)
{
    bc_script_args a;
    bc_status st = bc_script_args_init(&a, 1, err);
    if (st != BC_OK)
        return st;
    bc_script_args_str(&a, active_only ? "1" : "0");
    redisReply *rep = NULL;
    if ((st = call_ok(r, S_LIST, &a, 1, &rep, err)) != BC_OK)
        return st;
    bc_rollout *ro = malloc(sizeof(*ro));
    if (ro == NULL)
        st = bc_fail(err, BC_ERR_NOMEM, "out of memory for a rollout");
    for (size_t i = 1; st == BC_OK && i < rep->elements;) {
        size_t n = 0;
        if (!bc_reply_count(rep, i, 1, &n) || !parse_rollout(rep->element + i + 1, n, ro)) {
            st = bc_script_set_parse_fail(&scripts, S_LIST, err);
            break;
        }
        i += 1 + n;
        if (!fn(ro, userdata))
            break;
    }
    free(ro);
    freeReplyObject(rep);
    return st;
}

bc_status bc_rollout_cameras(bc_redis *r, const char *id, bc_rollout_camera_fn fn, void *userdata,
                             bc_error *err)
{
    redisReply *rep = NULL;
    bc_status st = call_on(r, S_CAMERAS, id, NULL, 1, &rep, err);
    if (st != BC_OK)
        return st;
    if ((rep->elements - 1) % CAM_STRIDE != 0)
        st = bc_script_set_parse_fail(&scripts, S_CAMERAS, err);
    for (size_t i = 1; st == BC_OK && i < rep->elements; i += CAM_STRIDE) {
        redisReply *const *e = rep->element + i;
        bc_rollout_camera c;
        int status = 0;
        memset(&c, 0, sizeof(c));
        if (!bc_reply_str(e[0], c.device, sizeof(c.device)) || !bc_reply_i64(e[1], &c.wave) ||
            !bc_reply_name(e[2], status_names, COUNT(status_names), &status) ||
            !bc_reply_str(e[3], c.cmd_id, sizeof(c.cmd_id)) || !bc_reply_i64(e[4], &c.since) ||
            !bc_reply_str(e[5], c.from_version, sizeof(c.from_version)) ||
            !bc_reply_text(e[6], c.detail, sizeof(c.detail))) {
            st = bc_script_set_parse_fail(&scripts, S_CAMERAS, err);
            break;
        }
        c.status = (bc_fw_status)status;
        if (!fn(&c, userdata))
            break;
    }
    freeReplyObject(rep);
    return st;
}

/* ---- the operator's acts ---- */

static bc_status act(bc_redis *r, const char *id, const char *what, const char *rollback,
                     int64_t now_ms, bc_rollout *out, bool *changed, bc_error *err)
{
    bc_status st = check_id(id, err);
    bc_script_args a;
    if (st != BC_OK || (st = bc_script_args_init(&a, 4, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, id);
    bc_script_args_str(&a, what);
    bc_script_args_int(&a, now_ms);
    bc_script_args_str(&a, rollback != NULL ? rollback : "");
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_ACT, &a, 2 + RF_COUNT, &rep, &v, err)) != BC_OK)
        return st;
    char code[16], x[80], y[80];
    bc_rollout scratch;
    int64_t c = 0;
    if (v == V_OK) {
        if (!bc_reply_i64(rep->element[1], &c) ||
            !parse_rollout(rep->element + 2, rep->elements - 2, out != NULL ? out : &scratch))
            st = bc_script_set_parse_fail(&scripts, S_ACT, err);
        else if (changed != NULL)
            *changed = c != 0;
    } else if (v == V_NOT_FOUND) {
        st = not_found(rep, err);
    } else if (v == V_STATE) {
        bc_reply_at(rep, 1, code, sizeof(code));
        bc_reply_at(rep, 2, x, sizeof(x));
        bc_reply_at(rep, 3, y, sizeof(y));
        if (strcmp(code, "no_manifest") == 0)
            st = bc_fail(err, BC_ERR_STATE,
                         "camera %s came from version '%s': no rollback manifest for it", x, y);
        else
            st = bc_fail(err, BC_ERR_STATE, "rollout %s is %s: cannot %s it", id, x, what);
    } else {
        st = bc_script_set_parse_fail(&scripts, S_ACT, err);
    }
    freeReplyObject(rep);
    return st;
}

bc_status bc_rollout_pause(bc_redis *r, const char *id, int64_t now_ms, bc_rollout *out,
                           bool *changed, bc_error *err)
{
    return act(r, id, "pause", NULL, now_ms, out, changed, err);
}

bc_status bc_rollout_resume(bc_redis *r, const char *id, int64_t now_ms, bc_rollout *out,
                            bool *changed, bc_error *err)
{
    return act(r, id, "resume", NULL, now_ms, out, changed, err);
}

bc_status bc_rollout_approve(bc_redis *r, const char *id, int64_t now_ms, bc_rollout *out,
                             bool *changed, bc_error *err)
{
    return act(r, id, "approve", NULL, now_ms, out, changed, err);
}

bc_status bc_rollout_abort(bc_redis *r, const char *id, const char *rollback_json, int64_t now_ms,
                           bc_rollout *out, bool *changed, bc_error *err)
{
    if (rollback_json != NULL && rollback_json[0] != '{')
        return bc_fail(err, BC_ERR_INVAL, "rollback manifests are a JSON object");
    return act(r, id, "abort", rollback_json, now_ms, out, changed, err);
}

bc_status bc_rollout_rollback_manifests(bc_redis *r, const char *id, char **json, bc_error *err)
{
    *json = NULL;
    redisReply *rep = NULL;
    bc_status st = call_on(r, S_MANIFESTS, id, NULL, 2, &rep, err);
    if (st != BC_OK)
        return st;
    if (rep->element[1]->type != REDIS_REPLY_STRING)
        st = bc_script_set_parse_fail(&scripts, S_MANIFESTS, err);
    else if ((*json = strdup(rep->element[1]->str)) == NULL)
        st = bc_fail(err, BC_ERR_NOMEM, "out of memory for rollback manifests");
    freeReplyObject(rep);
    return st;
}

/* ---- the service's side ---- */

bc_status bc_rollout_next(bc_redis *r, const char *id, int64_t now_ms, size_t max,
                          int64_t offer_max_per_s, int64_t recheck_ms, bc_rollout_next_result *out,
                          bc_error *err)
{
    bc_status st = check_id(id, err);
    if (st != BC_OK)
        return st;
    if (max > BC_ROLLOUT_NEXT_MAX || offer_max_per_s < 1 || recheck_ms < 0)
        return bc_fail(err, BC_ERR_INVAL, "next: max, offer_max_per_s or recheck_ms out of range");
    bc_script_args a;
    if ((st = bc_script_args_init(&a, 6, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, id);
    bc_script_args_int(&a, now_ms);
    bc_script_args_int(&a, (int64_t)max);
    bc_script_args_int(&a, offer_max_per_s);
    bc_script_args_int(&a, recheck_ms);
    bc_script_args_int(&a, BC_ROLLOUT_LEASE_MS);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_NEXT, &a, 5, &rep, &v, err)) != BC_OK)
        return st;
    memset(out, 0, sizeof(*out));
    snprintf(out->happened.rollout, sizeof(out->happened.rollout), "%s", id);
    int state = 0;
    size_t n = 0;
    char why[32];
    if (v == V_OK) {
        bool ok = bc_reply_name(rep->element[1], state_names, COUNT(state_names), &state) &&
                  bc_reply_str(rep->element[2], out->version, sizeof(out->version)) &&
                  bc_reply_count(rep, 3, 2, &n) && n <= max;
        for (size_t i = 0; ok && i < n; i++) {
            ok = bc_reply_str(rep->element[4 + 2 * i], out->cams[i].device,
                              sizeof(out->cams[i].device)) &&
                 bc_reply_str(rep->element[5 + 2 * i], out->cams[i].from_version,
                              sizeof(out->cams[i].from_version));
        }
        ok = ok && parse_happenings(rep, 4 + 2 * n, &out->happened);
        out->state = (bc_rollout_state)state;
        out->count = ok ? n : 0;
        if (!ok)
            st = bc_script_set_parse_fail(&scripts, S_NEXT, err);
    } else if (v == V_NOT_FOUND) {
        st = not_found(rep, err);
    } else if (v == V_STATE) {
        st = bc_fail(err, BC_ERR_STATE, "rollout %s is %s", id,
                     bc_reply_at(rep, 2, why, sizeof(why)));
    } else {
        st = bc_script_set_parse_fail(&scripts, S_NEXT, err);
    }
    freeReplyObject(rep);
    return st;
}

bc_status bc_rollout_mark_offered(bc_redis *r, const bc_rollout_offer *o, bool *marked,
                                  bc_error *err)
{
    *marked = false;
    bc_status st = check_id(o->rollout, err);
    if (st != BC_OK)
        return st;
    if (!bc_device_id_valid(o->device) || !bc_id_valid(o->cmd_id) || o->topic == NULL ||
        o->payload == NULL)
        return bc_fail(err, BC_ERR_INVAL,
                       "mark_offered: a device, command id, topic or payload "
                       "is missing or bad");
    bc_script_args a;
    if ((st = bc_script_args_init(&a, 13, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, o->rollout);
    bc_script_args_str(&a, o->device);
    bc_script_args_str(&a, o->cmd_id);
    bc_script_args_int(&a, o->now_ms);
    bc_script_args_int(&a, o->deadline_ms);
    bc_script_args_int(&a, BC_ROLLOUT_CMD_TTL_S);
    bc_script_args_outbox(&a, o->topic, o->payload);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_MARK, &a, 1, &rep, &v, err)) != BC_OK)
        return st;
    if (v == V_OK)
        *marked = true;
    else if (v == V_NOT_FOUND)
        st = not_found(rep, err);
    else if (v != V_TAKEN)
        st = bc_script_set_parse_fail(&scripts, S_MARK, err);
    freeReplyObject(rep);
    return st;
}

/* {'ok', applied, status, wave, rollout, detail, nh, H...} */
static bc_status read_answer(const redisReply *rep, script_id id, bc_rollout_answer *out,
                             bc_error *err)
{
    int64_t applied = 0;
    int status = 0;
    bool ok = rep->elements >= 7 && bc_reply_i64(rep->element[1], &applied) &&
              bc_reply_name(rep->element[2], status_names, COUNT(status_names), &status) &&
              bc_reply_i64(rep->element[3], &out->wave) &&
              bc_reply_str(rep->element[4], out->happened.rollout, sizeof(out->happened.rollout)) &&
              bc_reply_text(rep->element[5], out->detail, sizeof(out->detail)) &&
              parse_happenings(rep, 6, &out->happened);
    out->applied = applied != 0;
    out->status = (bc_fw_status)status;
    return ok ? BC_OK : bc_script_set_parse_fail(&scripts, id, err);
}

bc_status bc_rollout_event(bc_redis *r, const char *device, const char *type, const char *version,
                           const char *detail, int64_t now_ms, bc_rollout_answer *out,
                           bc_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!bc_device_id_valid(device) || type == NULL || version == NULL)
        return bc_fail(err, BC_ERR_INVAL, "event: bad device, type or version");
    char cut[BC_ROLLOUT_DETAIL_MAX + 1];
    snprintf(cut, sizeof(cut), "%s", detail != NULL ? detail : "");
    bc_script_args a;
    bc_status st = bc_script_args_init(&a, 5, err);
    if (st != BC_OK)
        return st;
    bc_script_args_str(&a, device);
    bc_script_args_str(&a, type);
    bc_script_args_str(&a, version);
    bc_script_args_str(&a, cut);
    bc_script_args_int(&a, now_ms);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_EVENT, &a, 7, &rep, &v, err)) != BC_OK)
        return st;
    st = v == V_OK ? read_answer(rep, S_EVENT, out, err)
                   : bc_script_set_parse_fail(&scripts, S_EVENT, err);
    freeReplyObject(rep);
    return st;
}

bc_status bc_rollout_ack(bc_redis *r, const char *cmd_id, const char *device, bool ok,
                         const char *error, int64_t now_ms, bc_rollout_answer *out, bc_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!bc_id_valid(cmd_id) || !bc_device_id_valid(device))
        return bc_fail(err, BC_ERR_INVAL, "ack: bad command id or device");
    char cut[BC_ROLLOUT_DETAIL_MAX + 1];
    snprintf(cut, sizeof(cut), "%s", error != NULL && error[0] ? error : "refused");
    bc_script_args a;
    bc_status st = bc_script_args_init(&a, 5, err);
    if (st != BC_OK)
        return st;
    bc_script_args_str(&a, cmd_id);
    bc_script_args_str(&a, device);
    bc_script_args_str(&a, ok ? "1" : "0");
    bc_script_args_str(&a, cut);
    bc_script_args_int(&a, now_ms);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_ACK, &a, 7, &rep, &v, err)) != BC_OK)
        return st;
    char owner[80];
    if (v == V_OK)
        st = read_answer(rep, S_ACK, out, err);
    else if (v == V_NOT_FOUND)
        st = bc_fail(err, BC_ERR_NOT_FOUND, "no rollout sent command %s", cmd_id);
    else if (v == V_STATE)
        st = bc_fail(err, BC_ERR_DENIED, "command %s was for %s, not %s", cmd_id,
                     bc_reply_at(rep, 2, owner, sizeof(owner)), device);
    else
        st = bc_script_set_parse_fail(&scripts, S_ACK, err);
    freeReplyObject(rep);
    return st;
}

bc_status bc_rollout_tick(bc_redis *r, const char *id, int64_t now_ms, bc_rollout_happenings *out,
                          bc_error *err)
{
    memset(out, 0, sizeof(*out));
    bc_status st = check_id(id, err);
    bc_script_args a;
    if (st != BC_OK || (st = bc_script_args_init(&a, 3, err)) != BC_OK)
        return st;
    snprintf(out->rollout, sizeof(out->rollout), "%s", id);
    bc_script_args_str(&a, id);
    bc_script_args_int(&a, now_ms);
    bc_script_args_int(&a, BC_ROLLOUT_HAPPEN_MAX);
    redisReply *rep = NULL;
    if ((st = call_ok(r, S_TICK, &a, 2, &rep, err)) != BC_OK)
        return st;
    if (!parse_happenings(rep, 1, out))
        st = bc_script_set_parse_fail(&scripts, S_TICK, err);
    freeReplyObject(rep);
    return st;
}

bc_status bc_rollout_active_ids(bc_redis *r, bc_rollout_id_fn fn, void *userdata, bc_error *err)
{
    redisReply *rep = NULL;
    bc_status st = call_bare(r, S_ACTIVE, &rep, err);
    if (st != BC_OK)
        return st;
    for (size_t i = 1; st == BC_OK && i < rep->elements; i++) {
        char id[BC_ROLLOUT_ID_MAX + 1];
        if (!bc_reply_str(rep->element[i], id, sizeof(id)))
            st = bc_script_set_parse_fail(&scripts, S_ACTIVE, err);
        else if (!fn(id, userdata))
            break;
    }
    freeReplyObject(rep);
    return st;
}

bc_status bc_rollout_retained_list(bc_redis *r, bc_rollout_retained_fn fn, void *userdata,
                                   bc_error *err)
{
    redisReply *rep = NULL;
    bc_status st = call_bare(r, S_RETAINED, &rep, err);
    if (st != BC_OK)
        return st;
    for (size_t i = 1; st == BC_OK && i < rep->elements;) {
        bc_rollout_retained x;
        int64_t active = 0;
        size_t n = 0;
        memset(&x, 0, sizeof(x));
        if (i + 4 > rep->elements || !bc_reply_str(rep->element[i], x.id, sizeof(x.id)) ||
            !bc_reply_i64(rep->element[i + 1], &active) ||
            !bc_reply_i64(rep->element[i + 2], &x.chunks_published_at) ||
            !bc_reply_count(rep, i + 3, 1, &n)) {
            st = bc_script_set_parse_fail(&scripts, S_RETAINED, err);
            break;
        }
        for (size_t k = 0; k < n; k++) {
            if (x.version_count < BC_ROLLOUT_WAVES_MAX &&
                bc_reply_str(rep->element[i + 4 + k], x.versions[x.version_count],
                             sizeof(x.versions[0])))
                x.version_count++;
        }
        x.active = active != 0;
        i += 4 + n;
        if (!fn(&x, userdata))
            break;
    }
    freeReplyObject(rep);
    return st;
}

static bc_status chunks_mark(bc_redis *r, const char *id, int64_t now_ms, bc_error *err)
{
    char when[BC_SCRIPT_ARG_NUM] = "";
    if (now_ms > 0)
        snprintf(when, sizeof(when), "%lld", (long long)now_ms);
    redisReply *rep = NULL;
    bc_status st = call_on(r, S_CHUNKS, id, when, 1, &rep, err);
    if (st == BC_OK)
        freeReplyObject(rep);
    return st;
}

bc_status bc_rollout_chunks_published(bc_redis *r, const char *id, int64_t now_ms, bc_error *err)
{
    return chunks_mark(r, id, now_ms > 0 ? now_ms : 1, err);
}

bc_status bc_rollout_chunks_cleared(bc_redis *r, const char *id, bc_error *err)
{
    return chunks_mark(r, id, 0, err);
}
