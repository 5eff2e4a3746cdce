/*
 * campaign.c - key rotation campaigns in Redis (campaign.h), every change
 * one Lua script.
 *
 * The keys (README.md "Campaigns"):
 *
 *   bodycam:campaign:<id>            hash: the record (CF below), plus the
 *                                    pace bucket's send_tat
 *   bodycam:campaign:<id>:devices    hash: device -> state|cmd_id|sent_at|attempts|detail
 *   bodycam:campaign:<id>:pending    zset: device -> not-before (ms)
 *   bodycam:campaign:<id>:inflight   zset: device -> answer deadline (ms)
 *   bodycam:campaign-cmd:<cmd_id>    hash: campaign, device, phase, fingerprint
 *   bodycam:campaigns                zset: id -> created_at
 *   bodycam:campaigns:active         set: awaiting_key, running, paused
 *   bodycam:campaigns:draining       set: aborted with commands still out
 *   bodycam:key-rotation:pace        hash: fleet-wide buckets (<name>_tat)
 *
 * Invariants the scripts keep:
 *
 *   - a camera is in :pending exactly while its entry says pending and the
 *     campaign is active; in :inflight exactly while it says sent or
 *     installing (and the campaign is active or draining);
 *   - done + failed counts the entries that say so; the campaign is done
 *     once done + failed = total (nothing pending, sent or installing);
 *   - a camera is in at most one active campaign of each kind (create
 *     refuses a second);
 *   - an answer changes a camera only when it names the camera's current
 *     command (finish checks cmd_id), so late and repeated answers do
 *     nothing.
 *
 * Pace: a bucket is one number, its "theoretical arrival time" (tat, ms):
 * a send is allowed when tat <= now, and each send moves tat on by
 * 1000 / per_s. A tat that fell behind now is pulled up to now -
 * BC_CAMPAIGN_RATE_SLACK_MS, so an idle campaign does not save up a burst.
 *
 * Replies are flat arrays {verdict, ...}: 'ok' and the results,
 * 'not_found' and what, 'state' with a code and two values; the sentences
 * for err are written here in C. Numbers handed to Redis are formatted
 * with %d (Lua 5.1 prints large numbers in exponent form).
 */
#include "key-rotation/campaign.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rate.h"
#include "common/registry_lua.h"
#include "common/reply.h"
#include "common/script_set.h"

/* ---- names ---- */

static const char *const kind_names[] = {"recording-key", "identity"};
static const char *const state_names[] = {"awaiting_key", "running", "paused", "done", "aborted"};
static const char *const dev_state_names[] = {"pending", "sent", "installing", "done", "failed"};
static const char *const phase_names[] = {"recording-key", "request", "install"};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_of(const char *const *names, int count, int v)
{
    return v >= 0 && v < count ? names[v] : "?";
}

static bool name_index(const char *name, const char *const *names, int count, int *out)
{
    for (int i = 0; name != NULL && i < count; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

const char *bc_campaign_kind_name(bc_campaign_kind k)
{
    return name_of(kind_names, COUNT(kind_names), (int)k);
}

const char *bc_campaign_state_name(bc_campaign_state s)
{
    return name_of(state_names, COUNT(state_names), (int)s);
}

const char *bc_campaign_device_state_name(bc_campaign_device_state s)
{
    return name_of(dev_state_names, COUNT(dev_state_names), (int)s);
}

const char *bc_campaign_phase_name(bc_campaign_phase p)
{
    return name_of(phase_names, COUNT(phase_names), (int)p);
}

bc_status bc_campaign_kind_parse(const char *name, bc_campaign_kind *out)
{
    int i = 0;
    if (!name_index(name, kind_names, COUNT(kind_names), &i))
        return BC_ERR_INVAL;
    *out = (bc_campaign_kind)i;
    return BC_OK;
}

bool bc_campaign_id_valid(const char *id)
{
    if (id == NULL || id[0] != 'C' || id[1] == '\0')
        return false;
    size_t n = 1;
    for (; id[n] != '\0'; n++) {
        if (id[n] < '0' || id[n] > '9' || n >= BC_CAMPAIGN_ID_MAX - 1)
            return false;
    }
    return true;
}

/* ---- the campaign record, shared by C and Lua ---- */

enum {
    CF_ID,
    CF_KIND,
    CF_STATE,
    CF_PACE,
    CF_CREATED_AT,
    CF_CREATED_BY,
    CF_KEY_ID,
    CF_TOTAL,
    CF_DONE,
    CF_FAILED,
    CF_STARTED_AT,
    CF_FINISHED_AT,
    CF_COUNT
};

static const char *const camp_fields[CF_COUNT] = {
    [CF_ID] = "id",
    [CF_KIND] = "kind",
    [CF_STATE] = "state",
    [CF_PACE] = "pace_per_s",
    [CF_CREATED_AT] = "created_at",
    [CF_CREATED_BY] = "created_by",
    [CF_KEY_ID] = "key_id",
    [CF_TOTAL] = "total",
    [CF_DONE] = "done",
    [CF_FAILED] = "failed",
    [CF_STARTED_AT] = "started_at",
    [CF_FINISHED_AT] = "finished_at",
};

#define CAMP_STRIDE (CF_COUNT + 2) /* the fields, then pending and in flight */
#define DEV_STRIDE 7 /* device, state, cmd_id, sent_at, attempts, detail, not_before */
#define EXP_STRIDE 4 /* device, cmd_id, phase, fingerprint */

/* ---- the scripts ---- */

/* Shared by every script, after the generated CF list and constants. */
static const char prelude[] =
    "local P = 'bodycam:'\n"
    "local ACTIVE = P .. 'campaigns:active'\n"
    "local DRAINING = P .. 'campaigns:draining'\n"
    "local PACE = P .. 'key-rotation:pace'\n"
    "local function s(n) return string.format('%d', n) end\n"
    "local function ck(id) return P .. 'campaign:' .. id end\n"
    "local function dk(id) return ck(id) .. ':devices' end\n"
    "local function pk(id) return ck(id) .. ':pending' end\n"
    "local function ik(id) return ck(id) .. ':inflight' end\n"
    "local function xk(cmd) return P .. 'campaign-cmd:' .. cmd end\n"
    "local function append(out, v) for i = 1, #v do out[#out + 1] = v[i] end end\n"
    /* one command over a long list, in pieces that fit Lua's stack */
    "local function call_many(cmd, key, list)\n"
    "  for i = 1, #list, 1000 do\n"
    "    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))\n"
    "  end\n"
    "end\n"
    /* the record in CF order ('' for a missing field), then the pending
     * and in-flight counts; nil when the campaign does not exist */
    "local function camp(id)\n"
    "  local v = redis.call('HMGET', ck(id), unpack(CF))\n"
    "  if not v[1] then return nil end\n"
    "  for i = 1, #CF do if not v[i] then v[i] = '' end end\n"
    "  v[#v + 1] = s(redis.call('ZCARD', pk(id)))\n"
    "  v[#v + 1] = s(redis.call('ZCARD', ik(id)))\n"
    "  return v\n"
    "end\n"
    /* a camera's entry: state|cmd_id|sent_at|attempts|detail (the detail is
     * last and may itself hold '|') */
    "local function dev_get(id, dev)\n"
    "  local raw = redis.call('HGET', dk(id), dev)\n"
    "  if not raw then return nil end\n"
    "  local st, cmd, at, n, detail =\n"
    "    string.match(raw, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')\n"
    "  if not st then return {st = raw, cmd = '', at = 0, n = 0, detail = ''} end\n"
    "  return {st = st, cmd = cmd, at = tonumber(at) or 0, n = tonumber(n) or 0, detail = detail}\n"
    "end\n"
    "local function dev_put(id, dev, e)\n"
    "  redis.call('HSET', dk(id), dev,\n"
    "    e.st .. '|' .. e.cmd .. '|' .. s(e.at) .. '|' .. s(e.n) .. '|' .. e.detail)\n"
    "end\n"
    /* done once no camera is pending, sent or installing; an aborted
     * campaign stops being watched once no command is out */
    "local function settle(id, now)\n"
    "  local c = redis.call('HMGET', ck(id), 'state', 'total', 'done', 'failed')\n"
    "  if (c[1] == 'running' or c[1] == 'paused') and\n"
    "     tonumber(c[3]) + tonumber(c[4]) >= tonumber(c[2]) then\n"
    "    redis.call('HSET', ck(id), 'state', 'done', 'finished_at', now)\n"
    "    redis.call('SREM', ACTIVE, id)\n"
    "    redis.call('DEL', pk(id), ik(id))\n"
    "  elseif c[1] == 'aborted' and redis.call('ZCARD', ik(id)) == 0 then\n"
    "    redis.call('SREM', DRAINING, id)\n"
    "  end\n"
    "end\n"
    /* the pace buckets: peek() and take() (common/rate.h) */
    BC_RATE_LUA BC_SCRIPT_OUTBOX_LUA BC_REGISTRY_LUA;

/* 1 kind  2 pace  3 created_by  4 now  5 initial state  6 vault-control
 * stream ('' = none)  7..9 its field names op, campaign, by  10 op value
 * 11 n (0 = every active registered camera)  12.. the cameras.
 * {'ok', campaign}; {'not_found', device}; {'state', code, a, b} */
static const char create_src[] =
    "local kind, now = ARGV[1], ARGV[4]\n"
    "local n = tonumber(ARGV[11])\n"
    "local list = {}\n"
    "if n == 0 then\n"
    "  list = reg_active()\n"
    "  table.sort(list)\n"
    "else\n"
    "  local seen = {}\n"
    "  for i = 1, n do\n"
    "    local d = ARGV[11 + i]\n"
    "    if not seen[d] then\n"
    "      seen[d] = true\n"
    "      local st = reg_status(d)\n"
    "      if not st then return {'not_found', d} end\n"
    "      if st ~= 'active' then return {'state', 'status', d, st} end\n"
    "      list[#list + 1] = d\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if #list == 0 then return {'state', 'empty', '', ''} end\n"
    "for _, cid in ipairs(redis.call('SMEMBERS', ACTIVE)) do\n"
    "  if redis.call('HGET', ck(cid), 'kind') == kind then\n"
    "    for _, d in ipairs(list) do\n"
    "      if redis.call('HEXISTS', dk(cid), d) == 1 then return {'state', 'busy', d, cid} end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local id = 'C' .. s(redis.call('INCR', P .. 'campaign:next'))\n"
    "local started = '0'\n"
    "if ARGV[5] == 'running' then started = now end\n"
    "redis.call('HSET', ck(id), 'id', id, 'kind', kind, 'state', ARGV[5], 'pace_per_s', ARGV[2],\n"
    "  'created_at', now, 'created_by', ARGV[3], 'key_id', '', 'total', s(#list), 'done', '0',\n"
    "  'failed', '0', 'started_at', started, 'finished_at', '0')\n"
    "local entries, due = {}, {}\n"
    "for _, d in ipairs(list) do\n"
    "  entries[#entries + 1] = d\n"
    "  entries[#entries + 1] = 'pending||0|0|'\n"
    "  due[#due + 1] = now\n"
    "  due[#due + 1] = d\n"
    "end\n"
    "call_many('HSET', dk(id), entries)\n"
    "call_many('ZADD', pk(id), due)\n"
    "redis.call('ZADD', P .. 'campaigns', now, id)\n"
    "redis.call('SADD', ACTIVE, id)\n"
    "if ARGV[6] ~= '' then\n"
    "  redis.call('XADD', ARGV[6], '*', ARGV[7], ARGV[10], ARGV[8], id, ARGV[9], ARGV[3])\n"
    "end\n"
    "local out = {'ok'}\n"
    "append(out, camp(id))\n"
    "return out\n";

/* 1 id. {'ok', campaign} */
static const char get_src[] = "local v = camp(ARGV[1])\n"
                              "if not v then return {'not_found', ARGV[1]} end\n"
                              "local out = {'ok'}\n"
                              "append(out, v)\n"
                              "return out\n";

/* 1 active only ('1'). {'ok', campaign...} in created_at order */
static const char list_src[] =
    "local ids\n"
    "if ARGV[1] == '1' then\n"
    "  ids = redis.call('SMEMBERS', ACTIVE)\n"
    "  local at = {}\n"
    "  for _, id in ipairs(ids) do\n"
    "    at[id] = tonumber(redis.call('ZSCORE', P .. 'campaigns', id)) or 0\n"
    "  end\n"
    "  table.sort(ids, function(a, b)\n"
    "    if at[a] ~= at[b] then return at[a] < at[b] end\n"
    "    return a < b\n"
    "  end)\n"
    "else\n"
    "  ids = redis.call('ZRANGE', P .. 'campaigns', 0, -1)\n"
    "end\n"
    "local out = {'ok'}\n"
    "for _, id in ipairs(ids) do\n"
    "  local v = camp(id)\n"
    "  if v then append(out, v) end\n"
    "end\n"
    "return out\n";

/* 1 id. {'ok', (device, state, cmd, sent_at, attempts, detail, not_before)...} */
static const char devices_src[] =
    "local id = ARGV[1]\n"
    "if redis.call('EXISTS', ck(id)) == 0 then return {'not_found', id} end\n"
    "local names = redis.call('HKEYS', dk(id))\n"
    "table.sort(names)\n"
    "local out = {'ok'}\n"
    "for _, d in ipairs(names) do\n"
    "  local e = dev_get(id, d)\n"
    "  if e then\n"
    "    local nb = '0'\n"
    "    if e.st == 'pending' then nb = redis.call('ZSCORE', pk(id), d) or '0' end\n"
    "    append(out, {d, e.st, e.cmd, s(e.at), s(e.n), e.detail, nb})\n"
    "  end\n"
    "end\n"
    "return out\n";

/* 1 id  2 act (pause|resume|abort)  3 now.
 * {'ok', changed, campaign}; {'state', code, state, ''} */
static const char act_src[] =
    "local id, act, now = ARGV[1], ARGV[2], ARGV[3]\n"
    "local c = redis.call('HMGET', ck(id), 'state', 'kind', 'key_id')\n"
    "if not c[1] then return {'not_found', id} end\n"
    "local st = c[1]\n"
    "local changed = 0\n"
    "if st == 'done' then return {'state', act, st, ''} end\n"
    "if act == 'pause' then\n"
    "  if st == 'aborted' then return {'state', act, st, ''} end\n"
    "  if st ~= 'paused' then\n"
    "    redis.call('HSET', ck(id), 'state', 'paused')\n"
    "    changed = 1\n"
    "  end\n"
    "elseif act == 'resume' then\n"
    "  if st == 'aborted' then return {'state', act, st, ''} end\n"
    "  if st == 'paused' then\n"
    "    local to = 'running'\n"
    "    if c[2] == 'recording-key' and (c[3] or '') == '' then to = 'awaiting_key' end\n"
    "    redis.call('HSET', ck(id), 'state', to)\n"
    "    changed = 1\n"
    "  end\n"
    "else\n"
    "  if st ~= 'aborted' then\n"
    "    redis.call('HSET', ck(id), 'state', 'aborted', 'finished_at', now)\n"
    "    redis.call('SREM', ACTIVE, id)\n"
    "    redis.call('DEL', pk(id))\n"
    "    if redis.call('ZCARD', ik(id)) > 0 then redis.call('SADD', DRAINING, id) end\n"
    "    changed = 1\n"
    "  end\n"
    "end\n"
    "local out = {'ok', changed}\n"
    "append(out, camp(id))\n"
    "return out\n";

/* 1 id  2 key_id  3 now. {'ok', already, key_id}; {'state', code, value, ''} */
static const char key_ready_src[] =
    "local id = ARGV[1]\n"
    "local c = redis.call('HMGET', ck(id), 'kind', 'state', 'key_id')\n"
    "if not c[1] then return {'not_found', id} end\n"
    "if c[1] ~= 'recording-key' then return {'state', 'kind', c[1], ''} end\n"
    "if c[3] and c[3] ~= '' then return {'ok', 1, c[3]} end\n"
    "if c[2] == 'aborted' or c[2] == 'done' then return {'state', 'state', c[2], ''} end\n"
    "local st = c[2]\n"
    "if st == 'awaiting_key' then st = 'running' end\n"
    "redis.call('HSET', ck(id), 'key_id', ARGV[2], 'state', st, 'started_at', ARGV[3])\n"
    "return {'ok', 0, ARGV[2]}\n";

/* 1 id. {'ok', key_id} */
static const char key_of_src[] = "local c = redis.call('HMGET', ck(ARGV[1]), 'id', 'key_id')\n"
                                 "if not c[1] then return {'not_found', ARGV[1]} end\n"
                                 "return {'ok', c[2] or ''}\n";

/* 1 id  2 now  3 want  4 send_max_per_s  5 recheck_ms  6 lease_ms.
 * {'ok', kind, key_id, public, device...}; {'state', code, value, ''} */
static const char next_src[] =
    "local id, now = ARGV[1], tonumber(ARGV[2])\n"
    "local c = redis.call('HMGET', ck(id), 'kind', 'state', 'pace_per_s', 'key_id')\n"
    "if not c[1] then return {'not_found', id} end\n"
    "if c[2] ~= 'running' then return {'state', 'not_running', c[2], ''} end\n"
    "local key_id, pub = c[4] or '', ''\n"
    "if c[1] == 'recording-key' then\n"
    "  if key_id == '' then return {'state', 'no_key', '', ''} end\n"
    "  pub = redis.call('HGET', P .. 'recording-key:' .. key_id, 'public')\n"
    "  if not pub then return {'state', 'no_public', key_id, ''} end\n"
    "end\n"
    "local out = {'ok', c[1], key_id, pub}\n"
    "local n1, tat1, step1 = peek(ck(id), 'send_tat', tonumber(c[3]), now, tonumber(ARGV[3]))\n"
    "local n2, tat2, step2 = peek(PACE, 'send_tat', tonumber(ARGV[4]), now, n1)\n"
    "if n2 == 0 then return out end\n"
    "local cand = redis.call('ZRANGEBYSCORE', pk(id), '-inf', ARGV[2], 'LIMIT', 0, 4 * n2 + 16)\n"
    "local got = {}\n"
    "for _, d in ipairs(cand) do\n"
    "  if #got >= n2 then break end\n"
    "  if redis.call('HGET', P .. 'camera:' .. d, 'online') == '1' then\n"
    "    got[#got + 1] = d\n"
    "    redis.call('ZADD', pk(id), s(now + tonumber(ARGV[6])), d)\n"
    "  else\n"
    "    redis.call('ZADD', pk(id), s(now + tonumber(ARGV[5])), d)\n"
    "  end\n"
    "end\n"
    "take(ck(id), 'send_tat', tat1, step1, #got)\n"
    "take(PACE, 'send_tat', tat2, step2, #got)\n"
    "append(out, got)\n"
    "return out\n";

/* 1 id  2 device  3 phase  4 cmd  5 request cmd  6 fingerprint  7 now
 * 8 deadline  9 cmd ttl (s)  10 outbox stream  11..14 its field names
 * topic payload qos retain  15 topic  16 payload.
 * {'ok'}; {'taken', why} */
static const char mark_src[] =
    "local id, dev, phase, cmd = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
    "local st = redis.call('HGET', ck(id), 'state')\n"
    "if not st then return {'not_found', id} end\n"
    "local e = dev_get(id, dev)\n"
    "if not e then return {'not_found', dev} end\n"
    "if phase == 'install' then\n"
    "  if st == 'aborted' or st == 'done' then return {'taken', st} end\n"
    "  if e.st ~= 'sent' or e.cmd ~= ARGV[5] then return {'taken', e.st} end\n"
    "  e.st = 'installing'\n"
    "else\n"
    "  if st ~= 'running' then return {'taken', st} end\n"
    "  if e.st ~= 'pending' or not redis.call('ZSCORE', pk(id), dev) then\n"
    "    return {'taken', e.st}\n"
    "  end\n"
    "  redis.call('ZREM', pk(id), dev)\n"
    "  e.st = 'sent'\n"
    "  e.n = e.n + 1\n"
    "end\n"
    "e.cmd = cmd\n"
    "e.at = tonumber(ARGV[7])\n"
    "e.detail = ''\n"
    "dev_put(id, dev, e)\n"
    "redis.call('ZADD', ik(id), ARGV[8], dev)\n"
    "redis.call('HSET', xk(cmd), 'campaign', id, 'device', dev, 'phase', phase,\n"
    "  'fingerprint', ARGV[6])\n"
    "redis.call('EXPIRE', xk(cmd), ARGV[9])\n"
    "outbox_add(10)\n"
    "return {'ok'}\n";

/* 1 cmd. {'ok', campaign, device, phase, fingerprint, kind, state, current,
 * device state} */
static const char cmd_get_src[] =
    "local x = redis.call('HMGET', xk(ARGV[1]), 'campaign', 'device', 'phase', 'fingerprint')\n"
    "if not x[1] or not x[2] or not x[3] then return {'not_found', ARGV[1]} end\n"
    "local c = redis.call('HMGET', ck(x[1]), 'kind', 'state')\n"
    "if not c[1] then return {'not_found', x[1]} end\n"
    "local e = dev_get(x[1], x[2])\n"
    "local cur, dst = '0', ''\n"
    "if e then\n"
    "  dst = e.st\n"
    "  if e.cmd == ARGV[1] and (e.st == 'sent' or e.st == 'installing') then cur = '1' end\n"
    "end\n"
    "return {'ok', x[1], x[2], x[3], x[4] or '', c[1], c[2], cur, dst}\n";

/* 1 id  2 device  3 cmd  4 outcome (done|failed|retry)  5 detail  6 now
 * 7 backoff ms  8 backoff max ms  9 attempts max.
 * {'ok', applied, state after} */
static const char finish_src[] =
    "local id, dev, cmd, outcome = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
    "local now = tonumber(ARGV[6])\n"
    "local st = redis.call('HGET', ck(id), 'state')\n"
    "if not st then return {'not_found', id} end\n"
    "local e = dev_get(id, dev)\n"
    "if not e then return {'not_found', dev} end\n"
    "if e.cmd ~= cmd or (e.st ~= 'sent' and e.st ~= 'installing') then\n"
    "  return {'ok', 0, e.st}\n"
    "end\n"
    "redis.call('ZREM', ik(id), dev)\n"
    "if outcome == 'retry' then\n"
    "  if st == 'aborted' or st == 'done' or e.n >= tonumber(ARGV[9]) then\n"
    "    outcome = 'failed'\n"
    "  else\n"
    "    local wait = tonumber(ARGV[7]) * 2 ^ (e.n - 1)\n"
    "    if wait > tonumber(ARGV[8]) then wait = tonumber(ARGV[8]) end\n"
    "    e.st = 'pending'\n"
    "    redis.call('ZADD', pk(id), s(now + wait), dev)\n"
    "  end\n"
    "end\n"
    "if outcome == 'done' then\n"
    "  e.st = 'done'\n"
    "  redis.call('HINCRBY', ck(id), 'done', 1)\n"
    "elseif outcome == 'failed' then\n"
    "  e.st = 'failed'\n"
    "  redis.call('HINCRBY', ck(id), 'failed', 1)\n"
    "end\n"
    "e.detail = ARGV[5]\n"
    "dev_put(id, dev, e)\n"
    "settle(id, ARGV[6])\n"
    "return {'ok', 1, e.st}\n";

/* 1 id  2 now  3 limit. {'ok', (device, cmd, phase, fingerprint)...}.
 * An entry that is no longer out (cannot happen while the invariants hold)
 * is dropped from the set here, so it is not listed for ever. */
static const char expired_src[] =
    "local id = ARGV[1]\n"
    "if redis.call('EXISTS', ck(id)) == 0 then return {'not_found', id} end\n"
    "local out = {'ok'}\n"
    "local due = redis.call('ZRANGEBYSCORE', ik(id), '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])\n"
    "for _, d in ipairs(due) do\n"
    "  local e = dev_get(id, d)\n"
    "  if e and (e.st == 'sent' or e.st == 'installing') then\n"
    "    local x = redis.call('HMGET', xk(e.cmd), 'phase', 'fingerprint')\n"
    "    local phase = x[1]\n"
    "    if not phase then\n"
    "      phase = 'request'\n"
    "      if e.st == 'installing' then phase = 'install' end\n"
    "      if redis.call('HGET', ck(id), 'kind') == 'recording-key' then phase = 'recording-key' "
    "end\n"
    "    end\n"
    "    append(out, {d, e.cmd, phase, x[2] or ''})\n"
    "  else\n"
    "    redis.call('ZREM', ik(id), d)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* {'ok', id...}: active and draining */
static const char watched_src[] = "local out = {'ok'}\n"
                                  "append(out, redis.call('SMEMBERS', ACTIVE))\n"
                                  "append(out, redis.call('SMEMBERS', DRAINING))\n"
                                  "return out\n";

/* 1 name  2 per_s  3 want  4 now. {'ok', granted} */
static const char rate_src[] =
    "local f = ARGV[1] .. '_tat'\n"
    "local n, tat, step = peek(PACE, f, tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[3]))\n"
    "take(PACE, f, tat, step, n)\n"
    "return {'ok', n}\n";

/* {'ok', active, cameras, done, failed} */
static const char totals_src[] =
    "local ids = redis.call('SMEMBERS', ACTIVE)\n"
    "local cams, done, failed = 0, 0, 0\n"
    "for _, id in ipairs(ids) do\n"
    "  local c = redis.call('HMGET', ck(id), 'total', 'done', 'failed')\n"
    "  cams = cams + (tonumber(c[1]) or 0)\n"
    "  done = done + (tonumber(c[2]) or 0)\n"
    "  failed = failed + (tonumber(c[3]) or 0)\n"
    "end\n"
    "return {'ok', #ids, cams, done, failed}\n";

typedef enum script_id {
    S_CREATE,
    S_GET,
    S_LIST,
    S_DEVICES,
    S_ACT,
    S_KEY_READY,
    S_KEY_OF,
    S_NEXT,
    S_MARK,
    S_CMD_GET,
    S_FINISH,
    S_EXPIRED,
    S_WATCHED,
    S_RATE,
    S_TOTALS,
    S_COUNT
} script_id;

static const bc_script_src sources[S_COUNT] = {
    [S_CREATE] = {"create", create_src},
    [S_GET] = {"get", get_src},
    [S_LIST] = {"list", list_src},
    [S_DEVICES] = {"devices", devices_src},
    [S_ACT] = {"act", act_src},
    [S_KEY_READY] = {"key_ready", key_ready_src},
    [S_KEY_OF] = {"key_of", key_of_src},
    [S_NEXT] = {"next", next_src},
    [S_MARK] = {"mark_sent", mark_src},
    [S_CMD_GET] = {"cmd_get", cmd_get_src},
    [S_FINISH] = {"finish", finish_src},
    [S_EXPIRED] = {"expired", expired_src},
    [S_WATCHED] = {"watched", watched_src},
    [S_RATE] = {"rate_take", rate_src},
    [S_TOTALS] = {"totals", totals_src},
};

/* "local CF = {...}\n" and the constants, then the prelude. */
static void script_prelude(bc_script_text *t)
{
    bc_script_text_list(t, "CF", camp_fields, CF_COUNT);
    bc_script_text_add(t, "local SLACK = %d\n%s", BC_CAMPAIGN_RATE_SLACK_MS, prelude);
}

/* ---- reading replies ---- */

/* Verdicts: bc_script_set_call's index into verdict_words, V_OK being 0. */
enum { V_OK, V_NOT_FOUND, V_STATE, V_TAKEN };

static const bc_reply_word verdict_words[] = {
    {"not_found", 2},
    {"state", 4},
    {"taken", 2},
};

static bc_script_set scripts = BC_SCRIPT_SET_INIT("campaign", sources, S_COUNT, script_prelude,
                                                  verdict_words, COUNT(verdict_words));

static bc_status not_found(const redisReply *rep, const char *what, bc_error *err)
{
    char buf[80];
    return bc_fail(err, BC_ERR_NOT_FOUND, "no %s '%s'", what,
                   bc_reply_at(rep, 1, buf, sizeof(buf)));
}

/* A campaign record at e[0 .. CAMP_STRIDE). */
static bool parse_campaign(redisReply *const *e, bc_campaign *c)
{
    int kind = 0, state = 0;
    memset(c, 0, sizeof(*c));
    if (!bc_reply_str(e[CF_ID], c->id, sizeof(c->id)) ||
        !bc_reply_name(e[CF_KIND], kind_names, COUNT(kind_names), &kind) ||
        !bc_reply_name(e[CF_STATE], state_names, COUNT(state_names), &state) ||
        !bc_reply_score(e[CF_PACE], &c->pace_per_s) ||
        !bc_reply_score(e[CF_CREATED_AT], &c->created_at) ||
        !bc_reply_str(e[CF_CREATED_BY], c->created_by, sizeof(c->created_by)) ||
        !bc_reply_str(e[CF_KEY_ID], c->key_id, sizeof(c->key_id)) ||
        !bc_reply_score(e[CF_TOTAL], &c->total) || !bc_reply_score(e[CF_DONE], &c->done) ||
        !bc_reply_score(e[CF_FAILED], &c->failed) ||
        !bc_reply_score(e[CF_STARTED_AT], &c->started_at) ||
        !bc_reply_score(e[CF_FINISHED_AT], &c->finished_at) ||
        !bc_reply_score(e[CF_COUNT], &c->pending) ||
        !bc_reply_score(e[CF_COUNT + 1], &c->in_flight))
        return false;
    c->kind = (bc_campaign_kind)kind;
    c->state = (bc_campaign_state)state;
    return true;
}

/* {'ok', [extra...], campaign}: the campaign at element at. */
static bc_status reply_campaign(const redisReply *rep, size_t at, script_id id, bc_campaign *out,
                                bc_error *err)
{
    bc_campaign scratch;
    if (rep->elements < at + CAMP_STRIDE ||
        !parse_campaign(rep->element + at, out != NULL ? out : &scratch))
        return bc_script_set_parse_fail(&scripts, id, err);
    return BC_OK;
}

/* ---- checks ---- */

static bc_status check_id(const char *id, bc_error *err)
{
    if (!bc_campaign_id_valid(id))
        return bc_fail(err, BC_ERR_INVAL, "'%.40s' is not a campaign id (C<n>)",
                       id != NULL ? id : "");
    return BC_OK;
}

/* ---- creating and reading ---- */

static bc_status create_check(const bc_campaign_spec *spec, bc_error *err)
{
    if (spec == NULL ||
        (spec->kind != BC_CAMPAIGN_RECORDING_KEY && spec->kind != BC_CAMPAIGN_IDENTITY))
        return bc_fail(err, BC_ERR_INVAL, "a campaign needs a kind (recording-key or identity)");
    if (spec->pace_per_s < 1 || spec->pace_per_s > BC_CAMPAIGN_PACE_MAX)
        return bc_fail(err, BC_ERR_INVAL, "pace %lld is outside 1..%d cameras per second",
                       (long long)spec->pace_per_s, BC_CAMPAIGN_PACE_MAX);
    if (!bc_script_line_valid(spec->created_by, BC_CAMPAIGN_ACTOR_MAX))
        return bc_fail(err, BC_ERR_INVAL,
                       "created_by is empty, longer than %d or has a control character",
                       BC_CAMPAIGN_ACTOR_MAX);
    if (spec->device_count > 0 && spec->devices == NULL)
        return bc_fail(err, BC_ERR_INVAL, "no camera list for %zu cameras", spec->device_count);
    for (size_t i = 0; i < spec->device_count; i++) {
        if (!bc_device_id_valid(spec->devices[i]))
            return bc_fail(err, BC_ERR_INVAL, "'%.40s' is not a device id",
                           spec->devices[i] != NULL ? spec->devices[i] : "");
    }
    return BC_OK;
}

/* A 'state' verdict of create as a sentence. */
static bc_status create_refused(const redisReply *rep, bc_error *err)
{
    char code[16], a[80], b[80];
    bc_reply_at(rep, 1, code, sizeof(code));
    bc_reply_at(rep, 2, a, sizeof(a));
    bc_reply_at(rep, 3, b, sizeof(b));
    if (strcmp(code, "busy") == 0)
        return bc_fail(err, BC_ERR_STATE,
                       "camera %s is already in active campaign %s of the same kind", a, b);
    if (strcmp(code, "status") == 0)
        return bc_fail(err, BC_ERR_STATE, "camera %s is %s in the registry, not active", a, b);
    return bc_fail(err, BC_ERR_STATE, "no active registered camera to rotate");
}

bc_status bc_campaign_create(bc_redis *r, const bc_campaign_spec *spec, int64_t now_ms,
                             bc_campaign *out, bc_error *err)
{
    bc_status st = create_check(spec, err);
    if (st != BC_OK)
        return st;
    bool key = spec->kind == BC_CAMPAIGN_RECORDING_KEY;
    bc_script_args a;
    if ((st = bc_script_args_init(&a, 11 + spec->device_count, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, bc_campaign_kind_name(spec->kind));
    bc_script_args_int(&a, spec->pace_per_s);
    bc_script_args_str(&a, spec->created_by);
    bc_script_args_int(&a, now_ms);
    bc_script_args_str(&a, key ? "awaiting_key" : "running");
    bc_script_args_str(&a, key ? BC_VAULT_CONTROL_STREAM : "");
    bc_script_args_str(&a, BC_VAULT_CONTROL_FIELD_OP);
    bc_script_args_str(&a, BC_VAULT_CONTROL_FIELD_CAMPAIGN);
    bc_script_args_str(&a, BC_VAULT_CONTROL_FIELD_BY);
    bc_script_args_str(&a, BC_VAULT_CONTROL_OP_NEW_KEY);
    bc_script_args_int(&a, (int64_t)spec->device_count);
    for (size_t i = 0; i < spec->device_count; i++)
        bc_script_args_str(&a, spec->devices[i]);
    redisReply *rep = NULL;
    int v = V_OK;
    st = bc_script_set_call(&scripts, r, S_CREATE, &a, 1 + CAMP_STRIDE, &rep, &v, err);
    if (st != BC_OK)
        return st;
    if (v == V_OK)
        st = reply_campaign(rep, 1, S_CREATE, out, err);
    else if (v == V_NOT_FOUND)
        st = not_found(rep, "registered camera", err);
    else if (v == V_STATE)
        st = create_refused(rep, err);
    else
        st = bc_script_set_parse_fail(&scripts, S_CREATE, err);
    freeReplyObject(rep);
    return st;
}

bc_status bc_campaign_get(bc_redis *r, const char *campaign_id, bc_campaign *out, bc_error *err)
{
    bc_status st = check_id(campaign_id, err);
    bc_script_args a;
    if (st != BC_OK || (st = bc_script_args_init(&a, 1, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, campaign_id);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_GET, &a, 1 + CAMP_STRIDE, &rep, &v, err)) != BC_OK)
        return st;
    if (v == V_OK)
        st = reply_campaign(rep, 1, S_GET, out, err);
    else if (v == V_NOT_FOUND)
        st = not_found(rep, "campaign", err);
    else
        st = bc_script_set_parse_fail(&scripts, S_GET, err);
    freeReplyObject(rep);
    return st;
}

bc_status bc_campaign_list(bc_redis *r, bool active_only, bc_campaign_fn fn, void *userdata,
                           bc_error *err)
{
    bc_script_args a;
    bc_status st = bc_script_args_init(&a, 1, err);
    if (st != BC_OK)
        return st;
    bc_script_args_str(&a, active_only ? "1" : "0");
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_LIST, &a, 1, &rep, &v, err)) != BC_OK)
        return st;
    if (v != V_OK || (rep->elements - 1) % CAMP_STRIDE != 0)
        st = bc_script_set_parse_fail(&scripts, S_LIST, err);
    for (size_t i = 1; st == BC_OK && i < rep->elements; i += CAMP_STRIDE) {
        bc_campaign c;
        if (!parse_campaign(rep->element + i, &c))
            st = bc_script_set_parse_fail(&scripts, S_LIST, err);
        else if (!fn(&c, userdata))
            break;
    }
    freeReplyObject(rep);
    return st;
}

static bool parse_device(redisReply *const *e, bc_campaign_device *d)
{
    int state = 0;
    memset(d, 0, sizeof(*d));
    if (!bc_reply_str(e[0], d->device, sizeof(d->device)) ||
        !bc_reply_name(e[1], dev_state_names, COUNT(dev_state_names), &state) ||
        !bc_reply_str(e[2], d->cmd_id, sizeof(d->cmd_id)) || !bc_reply_score(e[3], &d->sent_at) ||
        !bc_reply_score(e[4], &d->attempts) || !bc_reply_text(e[5], d->detail, sizeof(d->detail)) ||
        !bc_reply_score(e[6], &d->not_before))
        return false;
    d->state = (bc_campaign_device_state)state;
    return true;
}

bc_status bc_campaign_devices(bc_redis *r, const char *campaign_id, bc_campaign_device_fn fn,
                              void *userdata, bc_error *err)
{
    bc_status st = check_id(campaign_id, err);
    bc_script_args a;
    if (st != BC_OK || (st = bc_script_args_init(&a, 1, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, campaign_id);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_DEVICES, &a, 1, &rep, &v, err)) != BC_OK)
        return st;
    if (v == V_NOT_FOUND)
        st = not_found(rep, "campaign", err);
    else if (v != V_OK || (rep->elements - 1) % DEV_STRIDE != 0)
        st = bc_script_set_parse_fail(&scripts, S_DEVICES, err);
    for (size_t i = 1; st == BC_OK && i < rep->elements; i += DEV_STRIDE) {
        bc_campaign_device d;
        if (!parse_device(rep->element + i, &d))
            st = bc_script_set_parse_fail(&scripts, S_DEVICES, err);
        else if (!fn(&d, userdata))
            break;
    }
    freeReplyObject(rep);
    return st;
}

/* ---- the operator's acts ---- */

static bc_status act(bc_redis *r, const char *campaign_id, const char *what, int64_t now_ms,
                     bc_campaign *out, bool *changed, bc_error *err)
{
    bc_status st = check_id(campaign_id, err);
    bc_script_args a;
    if (st != BC_OK || (st = bc_script_args_init(&a, 3, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, campaign_id);
    bc_script_args_str(&a, what);
    bc_script_args_int(&a, now_ms);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_ACT, &a, 2 + CAMP_STRIDE, &rep, &v, err)) != BC_OK)
        return st;
    char state[16];
    if (v == V_OK) {
        int64_t c = 0;
        if (!bc_reply_score(rep->element[1], &c))
            st = bc_script_set_parse_fail(&scripts, S_ACT, err);
        else
            st = reply_campaign(rep, 2, S_ACT, out, err);
        if (st == BC_OK && changed != NULL)
            *changed = c != 0;
    } else if (v == V_NOT_FOUND) {
        st = not_found(rep, "campaign", err);
    } else if (v == V_STATE) {
        st = bc_fail(err, BC_ERR_STATE, "campaign %s is %s: it cannot be %s", campaign_id,
                     bc_reply_at(rep, 2, state, sizeof(state)),
                     strcmp(what, "pause") == 0    ? "paused"
                     : strcmp(what, "resume") == 0 ? "resumed"
                                                   : "aborted");
    } else {
        st = bc_script_set_parse_fail(&scripts, S_ACT, err);
    }
    freeReplyObject(rep);
    return st;
}

bc_status bc_campaign_pause(bc_redis *r, const char *campaign_id, int64_t now_ms, bc_campaign *out,
                            bool *changed, bc_error *err)
{
    return act(r, campaign_id, "pause", now_ms, out, changed, err);
}

bc_status bc_campaign_resume(bc_redis *r, const char *campaign_id, int64_t now_ms, bc_campaign *out,
                             bool *changed, bc_error *err)
{
    return act(r, campaign_id, "resume", now_ms, out, changed, err);
}

bc_status bc_campaign_abort(bc_redis *r, const char *campaign_id, int64_t now_ms, bc_campaign *out,
                            bool *changed, bc_error *err)
{
    return act(r, campaign_id, "abort", now_ms, out, changed, err);
}

/* ---- the vault's side ---- */

bc_status bc_campaign_key_ready(bc_redis *r, const char *campaign_id, const char *key_id,
                                int64_t now_ms, bool *already, bc_error *err)
{
    bc_status st = check_id(campaign_id, err);
    if (st != BC_OK)
        return st;
    if (!bc_id_valid(key_id))
        return bc_fail(err, BC_ERR_INVAL, "'%.40s' is not a key id", key_id != NULL ? key_id : "");
    bc_script_args a;
    if ((st = bc_script_args_init(&a, 3, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, campaign_id);
    bc_script_args_str(&a, key_id);
    bc_script_args_int(&a, now_ms);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_KEY_READY, &a, 3, &rep, &v, err)) != BC_OK)
        return st;
    char code[16], value[32];
    int64_t was = 0;
    if (v == V_OK && bc_reply_score(rep->element[1], &was)) {
        if (already != NULL)
            *already = was != 0;
    } else if (v == V_NOT_FOUND) {
        st = not_found(rep, "campaign", err);
    } else if (v == V_STATE) {
        bc_reply_at(rep, 1, code, sizeof(code));
        bc_reply_at(rep, 2, value, sizeof(value));
        if (strcmp(code, "kind") == 0)
            st = bc_fail(err, BC_ERR_STATE, "campaign %s is an %s campaign, not recording-key",
                         campaign_id, value);
        else
            st = bc_fail(err, BC_ERR_STATE, "campaign %s is %s without a key", campaign_id, value);
    } else {
        st = bc_script_set_parse_fail(&scripts, S_KEY_READY, err);
    }
    freeReplyObject(rep);
    return st;
}

bc_status bc_campaign_key_of(bc_redis *r, const char *campaign_id, char *key_id, size_t size,
                             bc_error *err)
{
    bc_status st = check_id(campaign_id, err);
    bc_script_args a;
    if (st != BC_OK || (st = bc_script_args_init(&a, 1, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, campaign_id);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_KEY_OF, &a, 2, &rep, &v, err)) != BC_OK)
        return st;
    if (v == V_OK) {
        if (!bc_reply_str(rep->element[1], key_id, size))
            st = bc_script_set_parse_fail(&scripts, S_KEY_OF, err);
    } else if (v == V_NOT_FOUND) {
        st = not_found(rep, "campaign", err);
    } else {
        st = bc_script_set_parse_fail(&scripts, S_KEY_OF, err);
    }
    freeReplyObject(rep);
    return st;
}

/* ---- the service's side ---- */

bc_status bc_campaign_next(bc_redis *r, const char *campaign_id, int64_t now_ms, size_t max,
                           int64_t send_max_per_s, int64_t recheck_ms, bc_campaign_next_result *out,
                           bc_error *err)
{
    bc_status st = check_id(campaign_id, err);
    if (st != BC_OK)
        return st;
    if (max > BC_CAMPAIGN_NEXT_MAX || send_max_per_s < 1 || recheck_ms < 0)
        return bc_fail(err, BC_ERR_INVAL, "next: max, send_max_per_s or recheck_ms out of range");
    bc_script_args a;
    if ((st = bc_script_args_init(&a, 6, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, campaign_id);
    bc_script_args_int(&a, now_ms);
    bc_script_args_int(&a, (int64_t)max);
    bc_script_args_int(&a, send_max_per_s);
    bc_script_args_int(&a, recheck_ms);
    bc_script_args_int(&a, BC_CAMPAIGN_LEASE_MS);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_NEXT, &a, 4, &rep, &v, err)) != BC_OK)
        return st;
    memset(out, 0, sizeof(*out));
    int kind = 0;
    char code[16], value[80];
    if (v == V_OK) {
        if (!bc_reply_name(rep->element[1], kind_names, COUNT(kind_names), &kind) ||
            !bc_reply_str(rep->element[2], out->key_id, sizeof(out->key_id)) ||
            !bc_reply_str(rep->element[3], out->public_b64, sizeof(out->public_b64)) ||
            rep->elements - 4 > max)
            st = bc_script_set_parse_fail(&scripts, S_NEXT, err);
        out->kind = (bc_campaign_kind)kind;
        for (size_t i = 4; st == BC_OK && i < rep->elements; i++) {
            if (!bc_reply_str(rep->element[i], out->devices[out->count], sizeof(out->devices[0])))
                st = bc_script_set_parse_fail(&scripts, S_NEXT, err);
            out->count++;
        }
    } else if (v == V_NOT_FOUND) {
        st = not_found(rep, "campaign", err);
    } else if (v == V_STATE) {
        bc_reply_at(rep, 1, code, sizeof(code));
        bc_reply_at(rep, 2, value, sizeof(value));
        if (strcmp(code, "no_key") == 0)
            st = bc_fail(err, BC_ERR_STATE, "campaign %s has no recording key yet", campaign_id);
        else if (strcmp(code, "no_public") == 0)
            st = bc_fail(err, BC_ERR_STATE, "recording key %s of campaign %s is not in Redis",
                         value, campaign_id);
        else
            st = bc_fail(err, BC_ERR_STATE, "campaign %s is %s", campaign_id, value);
    } else {
        st = bc_script_set_parse_fail(&scripts, S_NEXT, err);
    }
    freeReplyObject(rep);
    return st;
}

bc_status bc_campaign_mark_sent(bc_redis *r, const bc_campaign_send *s, bool *marked, bc_error *err)
{
    *marked = false;
    bc_status st = check_id(s->campaign_id, err);
    if (st != BC_OK)
        return st;
    bool install = s->phase == BC_PHASE_INSTALL;
    if (!bc_device_id_valid(s->device) || !bc_id_valid(s->cmd_id) || s->topic == NULL ||
        s->payload == NULL ||
        (install && (!bc_id_valid(s->request_cmd_id) || s->fingerprint == NULL)))
        return bc_fail(err, BC_ERR_INVAL,
                       "mark_sent: a device, command id, topic or payload is "
                       "missing or bad");
    bc_script_args a;
    if ((st = bc_script_args_init(&a, 16, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, s->campaign_id);
    bc_script_args_str(&a, s->device);
    bc_script_args_str(&a, bc_campaign_phase_name(s->phase));
    bc_script_args_str(&a, s->cmd_id);
    bc_script_args_str(&a, install ? s->request_cmd_id : "");
    bc_script_args_str(&a, install ? s->fingerprint : "");
    bc_script_args_int(&a, s->now_ms);
    bc_script_args_int(&a, s->deadline_ms);
    bc_script_args_int(&a, BC_CAMPAIGN_CMD_TTL_S);
    bc_script_args_outbox(&a, s->topic, s->payload);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_MARK, &a, 1, &rep, &v, err)) != BC_OK)
        return st;
    if (v == V_OK)
        *marked = true;
    else if (v == V_NOT_FOUND)
        st = not_found(rep, "campaign or camera", err);
    else if (v != V_TAKEN)
        st = bc_script_set_parse_fail(&scripts, S_MARK, err);
    freeReplyObject(rep);
    return st;
}

bc_status bc_campaign_cmd_get(bc_redis *r, const char *cmd_id, bc_campaign_cmd *out, bc_error *err)
{
    if (!bc_id_valid(cmd_id))
        return bc_fail(err, BC_ERR_INVAL, "'%.40s' is not a command id",
                       cmd_id != NULL ? cmd_id : "");
    bc_script_args a;
    bc_status st = bc_script_args_init(&a, 1, err);
    if (st != BC_OK)
        return st;
    bc_script_args_str(&a, cmd_id);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_CMD_GET, &a, 9, &rep, &v, err)) != BC_OK)
        return st;
    memset(out, 0, sizeof(*out));
    int phase = 0, kind = 0, state = 0, dstate = 0;
    if (v == V_OK) {
        redisReply *const *e = rep->element;
        bool ok = bc_reply_str(e[1], out->campaign_id, sizeof(out->campaign_id)) &&
                  bc_reply_str(e[2], out->device, sizeof(out->device)) &&
                  bc_reply_name(e[3], phase_names, COUNT(phase_names), &phase) &&
                  bc_reply_str(e[4], out->fingerprint, sizeof(out->fingerprint)) &&
                  bc_reply_name(e[5], kind_names, COUNT(kind_names), &kind) &&
                  bc_reply_name(e[6], state_names, COUNT(state_names), &state) &&
                  (bc_reply_is(e[7], "1") || bc_reply_is(e[7], "0"));
        /* a camera whose entry is gone or garbled is not current */
        if (bc_reply_name(e[8], dev_state_names, COUNT(dev_state_names), &dstate))
            out->device_state = (bc_campaign_device_state)dstate;
        out->phase = (bc_campaign_phase)phase;
        out->kind = (bc_campaign_kind)kind;
        out->campaign_state = (bc_campaign_state)state;
        out->current = ok && bc_reply_is(e[7], "1");
        if (!ok)
            st = bc_script_set_parse_fail(&scripts, S_CMD_GET, err);
    } else if (v == V_NOT_FOUND) {
        st = bc_fail(err, BC_ERR_NOT_FOUND, "no campaign sent command %s", cmd_id);
    } else {
        st = bc_script_set_parse_fail(&scripts, S_CMD_GET, err);
    }
    freeReplyObject(rep);
    return st;
}

bc_status bc_campaign_finish(bc_redis *r, const char *campaign_id, const char *device,
                             const char *cmd_id, bc_campaign_outcome outcome, const char *detail,
                             const bc_campaign_retry *retry, int64_t now_ms,
                             bc_campaign_device_state *result, bool *applied, bc_error *err)
{
    static const char *const outcome_names[] = {"done", "failed", "retry"};
    bc_status st = check_id(campaign_id, err);
    if (st != BC_OK)
        return st;
    if (!bc_device_id_valid(device) || !bc_id_valid(cmd_id) || (int)outcome < 0 ||
        (int)outcome >= COUNT(outcome_names) || (outcome == BC_OUTCOME_RETRY && retry == NULL))
        return bc_fail(err, BC_ERR_INVAL, "finish: bad device, command id or outcome");
    char cut[BC_CAMPAIGN_DETAIL_MAX + 1];
    snprintf(cut, sizeof(cut), "%s", detail != NULL ? detail : "");
    bc_script_args a;
    if ((st = bc_script_args_init(&a, 9, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, campaign_id);
    bc_script_args_str(&a, device);
    bc_script_args_str(&a, cmd_id);
    bc_script_args_str(&a, outcome_names[outcome]);
    bc_script_args_str(&a, cut);
    bc_script_args_int(&a, now_ms);
    bc_script_args_int(&a, retry != NULL ? retry->backoff_ms : 0);
    bc_script_args_int(&a, retry != NULL ? retry->backoff_max_ms : 0);
    bc_script_args_int(&a, retry != NULL ? retry->attempts_max : 1);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_FINISH, &a, 3, &rep, &v, err)) != BC_OK)
        return st;
    int64_t done = 0;
    int state = 0;
    if (v == V_OK && bc_reply_score(rep->element[1], &done) &&
        bc_reply_name(rep->element[2], dev_state_names, COUNT(dev_state_names), &state)) {
        if (applied != NULL)
            *applied = done != 0;
        if (result != NULL)
            *result = (bc_campaign_device_state)state;
    } else if (v == V_NOT_FOUND) {
        st = not_found(rep, "campaign or camera", err);
    } else {
        st = bc_script_set_parse_fail(&scripts, S_FINISH, err);
    }
    freeReplyObject(rep);
    return st;
}

bc_status bc_campaign_expired(bc_redis *r, const char *campaign_id, int64_t now_ms,
                              bc_campaign_expired_cmd *out, size_t cap, size_t *count,
                              bc_error *err)
{
    *count = 0;
    bc_status st = check_id(campaign_id, err);
    bc_script_args a;
    if (st != BC_OK || cap == 0 || (st = bc_script_args_init(&a, 3, err)) != BC_OK)
        return st;
    bc_script_args_str(&a, campaign_id);
    bc_script_args_int(&a, now_ms);
    bc_script_args_int(&a, (int64_t)cap);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_EXPIRED, &a, 1, &rep, &v, err)) != BC_OK)
        return st;
    if (v == V_NOT_FOUND)
        st = not_found(rep, "campaign", err);
    else if (v != V_OK || (rep->elements - 1) % EXP_STRIDE != 0 ||
             (rep->elements - 1) / EXP_STRIDE > cap)
        st = bc_script_set_parse_fail(&scripts, S_EXPIRED, err);
    for (size_t i = 1; st == BC_OK && i < rep->elements; i += EXP_STRIDE) {
        bc_campaign_expired_cmd *x = &out[*count];
        int phase = 0;
        memset(x, 0, sizeof(*x));
        if (!bc_reply_str(rep->element[i], x->device, sizeof(x->device)) ||
            !bc_reply_str(rep->element[i + 1], x->cmd_id, sizeof(x->cmd_id)) ||
            !bc_reply_name(rep->element[i + 2], phase_names, COUNT(phase_names), &phase) ||
            !bc_reply_str(rep->element[i + 3], x->fingerprint, sizeof(x->fingerprint))) {
            st = bc_script_set_parse_fail(&scripts, S_EXPIRED, err);
            break;
        }
        x->phase = (bc_campaign_phase)phase;
        (*count)++;
    }
    freeReplyObject(rep);
    return st;
}

bc_status bc_campaign_watched(bc_redis *r, bc_campaign_id_fn fn, void *userdata, bc_error *err)
{
    bc_script_args a;
    bc_status st = bc_script_args_init(&a, 0, err);
    if (st != BC_OK)
        return st;
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_WATCHED, &a, 1, &rep, &v, err)) != BC_OK)
        return st;
    if (v != V_OK)
        st = bc_script_set_parse_fail(&scripts, S_WATCHED, err);
    for (size_t i = 1; st == BC_OK && i < rep->elements; i++) {
        char id[BC_CAMPAIGN_ID_MAX + 1];
        if (!bc_reply_str(rep->element[i], id, sizeof(id)))
            st = bc_script_set_parse_fail(&scripts, S_WATCHED, err);
        else if (!fn(id, userdata))
            break;
    }
    freeReplyObject(rep);
    return st;
}

bc_status bc_campaign_rate_take(bc_redis *r, const char *name, int64_t per_s, int64_t want,
                                int64_t now_ms, int64_t *granted, bc_error *err)
{
    *granted = 0;
    if (!bc_id_valid(name) || per_s < 1 || want < 0)
        return bc_fail(err, BC_ERR_INVAL, "rate_take: bad bucket name, rate or count");
    bc_script_args a;
    bc_status st = bc_script_args_init(&a, 4, err);
    if (st != BC_OK)
        return st;
    bc_script_args_str(&a, name);
    bc_script_args_int(&a, per_s);
    bc_script_args_int(&a, want);
    bc_script_args_int(&a, now_ms);
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_RATE, &a, 2, &rep, &v, err)) != BC_OK)
        return st;
    if (v != V_OK || !bc_reply_score(rep->element[1], granted))
        st = bc_script_set_parse_fail(&scripts, S_RATE, err);
    freeReplyObject(rep);
    return st;
}

bc_status bc_campaign_totals_get(bc_redis *r, bc_campaign_totals *out, bc_error *err)
{
    bc_script_args a;
    bc_status st = bc_script_args_init(&a, 0, err);
    if (st != BC_OK)
        return st;
    redisReply *rep = NULL;
    int v = V_OK;
    if ((st = bc_script_set_call(&scripts, r, S_TOTALS, &a, 5, &rep, &v, err)) != BC_OK)
        return st;
    memset(out, 0, sizeof(*out));
    if (v != V_OK || !bc_reply_score(rep->element[1], &out->active) ||
        !bc_reply_score(rep->element[2], &out->cameras) ||
        !bc_reply_score(rep->element[3], &out->done) ||
        !bc_reply_score(rep->element[4], &out->failed))
        st = bc_script_set_parse_fail(&scripts, S_TOTALS, err);
    freeReplyObject(rep);
    return st;
}
