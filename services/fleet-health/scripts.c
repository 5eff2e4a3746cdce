/*
 * scripts.c - the Lua scripts that change fleet state in Redis.
 *
 * Why scripts: a camera message can be delivered twice (the gateway after
 * a crash, a consumer after a crash or a claim), the four streams are read
 * independently, and several fleet-health instances may handle messages of
 * one camera at the same moment. Each change is therefore "check, then
 * change" in one atomic script, so that the rules below hold whatever the
 * interleaving:
 *
 *   conn    a session lower than the stored one is stale (a late will or
 *           birth of an old connection); a birth of a newer session is
 *           online whatever came before (and ends the previous session: a
 *           disconnect, counted once, if its will was not seen); a will of
 *           the current or a newer session marks the camera offline once.
 *   state   seq < stored state seq: stale; the same seq with the same
 *           state: duplicate (a re-sent retained state).
 *   health  ts <= stored health ts: duplicate or stale.
 *   event   a seq already in the camera's event log: duplicate; new seqs
 *           above the highest leave a recorded gap, late ones fill it.
 *   every   message is a sign of life at its received_at (gateway clock):
 *           last_seen moves forward only; an offline camera comes back
 *           online only by a message received after it went offline.
 *
 * Online time (availability) is credited hour by hour between consecutive
 * signs of life, each step capped at offline_after (a longer silence is
 * an offline period: the scan or a will marks it so). Hourly aggregates
 * are keyed by UTC hour, computed here from milliseconds (a days-to-civil
 * date conversion), so one script can split a period over several hours.
 *
 * Numbers handed to Redis are formatted with %d: Lua 5.1 would print a
 * large number in exponent form.
 *
 * Every apply script returns {verdict, changed, the record as the script
 * left it (the fields the rules need and those it wrote, name/value), HMGET
 * of the camera's five level alerts in bodycam:alerts:open, extra} (extra:
 * the open value of a recording alert field, for events). Each script
 * reads the record once and writes it once (see the prelude).
 */
#include <stdio.h>
#include <string.h>

#include "common/script.h"
#include "fleet-health/fleet.h"

/* Common arguments of the camera scripts (fh_args_common):
 *   1 device  2 received_at  3 now  4 offline_after_ms  5 hourly_ttl_s
 *   6 the docked state's name  7..11 the five level alert fields
 * and each script's own from 12 on.
 *
 * The record is read once (HMGET of the fields the rules need, into
 * `cur`), changed in `cur` (get/num/put/del) and written once (flush: one
 * HSET, one HDEL); what the script returns as the record is `cur`, so the
 * caller sees the record as this script left it without another read. */
static const char prelude[] =
    "local P = 'bodycam:'\n"
    "local dev = ARGV[1]\n"
    "local t = tonumber(ARGV[2])\n"
    "local now = tonumber(ARGV[3])\n"
    "local offline_after = tonumber(ARGV[4])\n"
    "local hourly_ttl = tonumber(ARGV[5])\n"
    "local ck = P .. 'camera:' .. dev\n"
    "local changed = 0\n"
    "local F = {'online', 'online_acc_at', 'offline_at', 'offline_reason', 'last_seen',\n"
    "  'session', 'state', 'warnings', 'state_seq', 'state_ts', 'health_ts', 'battery_pct',\n"
    "  'charging', 'storage_free', 'storage_total', 'temperature_c', 'pending_uploads',\n"
    "  'pending_since', 'assignment', 'officer', 'last_seq', 'log_floor', 'disconnects',\n"
    "  'events', 'missing_seqs', 'gaps_filled', 'offline_session'}\n"
    "local cur, dirty = {}, {}\n"
    "do\n"
    "  local vals = redis.call('HMGET', ck, unpack(F))\n"
    "  for i, f in ipairs(F) do cur[f] = vals[i] end\n"
    "end\n"
    "local function s(n) return string.format('%d', n) end\n"
    "local function fl(x) return math.floor(x) end\n"
    "local function num(f)\n"
    "  local v = cur[f]\n"
    "  if v then return tonumber(v) end\n"
    "  return nil\n"
    "end\n"
    "local function put(f, v) cur[f] = v; dirty[f] = true end\n"
    "local function del(f) if cur[f] then cur[f] = false; dirty[f] = true end end\n"
    "local function add(f, n) put(f, s((num(f) or 0) + n)) end\n"
    "local function flush()\n"
    "  local set, gone = {}, {}\n"
    "  for f, _ in pairs(dirty) do\n"
    "    if cur[f] then set[#set + 1] = f; set[#set + 1] = cur[f]\n"
    "    else gone[#gone + 1] = f end\n"
    "  end\n"
    "  if #set > 0 then redis.call('HSET', ck, unpack(set)) end\n"
    "  if #gone > 0 then redis.call('HDEL', ck, unpack(gone)) end\n"
    "end\n"
    /* yyyymmddhh (UTC) of a time in ms: days since the epoch to a civil
     * date, with 400-year eras starting on March 1st */
    "local function hour_key(ms)\n"
    "  local secs = fl(ms / 1000)\n"
    "  local days = fl(secs / 86400)\n"
    "  local hour = fl((secs - days * 86400) / 3600)\n"
    "  local z = days + 719468\n"
    "  local era = fl(z / 146097)\n"
    "  local doe = z - era * 146097\n"
    "  local yoe = fl((doe - fl(doe / 1460) + fl(doe / 36524) - fl(doe / 146096)) / 365)\n"
    "  local doy = doe - (365 * yoe + fl(yoe / 4) - fl(yoe / 100))\n"
    "  local mp = fl((5 * doy + 2) / 153)\n"
    "  local day = doy - fl((153 * mp + 2) / 5) + 1\n"
    "  local month = mp + 3\n"
    "  if mp >= 10 then month = mp - 9 end\n"
    "  local year = yoe + era * 400\n"
    "  if month <= 2 then year = year + 1 end\n"
    "  return string.format('%04d%02d%02d%02d', year, month, day, hour)\n"
    "end\n"
    "local expiring = {}\n"
    "local function hourly(ms) return P .. 'hourly:' .. dev .. ':' .. hour_key(ms) end\n"
    "local function bump(ms, field, n)\n"
    "  if n == 0 then return end\n"
    "  local k = hourly(ms)\n"
    "  redis.call('HINCRBY', k, field, s(n))\n"
    "  if hourly_ttl > 0 and not expiring[k] then\n"
    "    redis.call('EXPIRE', k, s(hourly_ttl))\n"
    "    expiring[k] = true\n"
    "  end\n"
    "end\n"
    "local function credit(from, to)\n"
    "  if to - from > offline_after then to = from + offline_after end\n"
    "  local guard = 0\n"
    "  while from < to and guard < 1000 do\n"
    "    local hend = (fl(from / 3600000) + 1) * 3600000\n"
    "    local seg = to\n"
    "    if hend < seg then seg = hend end\n"
    "    bump(from, 'online_ms', seg - from)\n"
    "    from = seg\n"
    "    guard = guard + 1\n"
    "  end\n"
    "end\n"
    /* a record always has 'online': its absence is a camera seen first */
    "local function register()\n"
    "  if cur['online'] then return end\n"
    "  redis.call('SADD', P .. 'cameras', dev)\n"
    "  put('device', dev)\n"
    "  put('first_seen', s(t))\n"
    "  put('online', '0')\n"
    "  changed = 1\n"
    "end\n"
    "local function set_online(at)\n"
    "  put('online', '1')\n"
    "  put('online_acc_at', s(at))\n"
    "  put('online_since', s(at))\n"
    "  del('offline_reason')\n"
    "  redis.call('SADD', P .. 'cameras:online', dev)\n"
    "  redis.call('ZADD', P .. 'lastseen', s(num('last_seen') or at), dev)\n"
    "  changed = 1\n"
    "end\n"
    "local function set_offline(at, reason)\n"
    "  local acc = num('online_acc_at') or at\n"
    "  if at > acc then credit(acc, at) end\n"
    "  if acc < at then acc = at end\n"
    "  put('online', '0')\n"
    "  put('offline_at', s(at))\n"
    "  put('offline_reason', reason)\n"
    "  if cur['session'] then put('offline_session', cur['session']) end\n"
    "  put('online_acc_at', s(acc))\n"
    "  add('disconnects', 1)\n"
    "  bump(at, 'disconnects', 1)\n"
    "  redis.call('SREM', P .. 'cameras:online', dev)\n"
    "  redis.call('ZREM', P .. 'lastseen', dev)\n"
    "  changed = 1\n"
    "end\n"
    "local function touch(at)\n"
    "  register()\n"
    "  local last = num('last_seen')\n"
    "  local moved = last == nil or at > last\n"
    "  if moved then\n"
    "    put('last_seen', s(at))\n"
    "    last = at\n"
    "  end\n"
    "  if num('online') == 1 then\n"
    "    local acc = num('online_acc_at') or at\n"
    "    if at > acc then\n"
    "      credit(acc, at)\n"
    "      put('online_acc_at', s(at))\n"
    "    end\n"
    "    if moved then redis.call('ZADD', P .. 'lastseen', s(last), dev) end\n"
    "  else\n"
    "    local off = num('offline_at')\n"
    "    if off == nil or at > off then set_online(at) end\n"
    "  end\n"
    "end\n"
    "local function track_uploads(at)\n"
    "  local docked = cur['state'] == ARGV[6]\n"
    "  local pending = num('pending_uploads') or 0\n"
    "  if docked and pending > 0 then\n"
    "    if num('pending_since') == nil then\n"
    "      put('pending_since', s(at))\n"
    "      redis.call('ZADD', P .. 'uploads:waiting', s(at), dev)\n"
    "    end\n"
    "  elseif num('pending_since') ~= nil then\n"
    "    del('pending_since')\n"
    "    redis.call('ZREM', P .. 'uploads:waiting', dev)\n"
    "  end\n"
    "end\n"
    "local function assignment()\n"
    "  local ak = P .. 'assignment:' .. dev\n"
    "  local ty = redis.call('TYPE', ak)['ok']\n"
    "  local officer, state = '', 'none'\n"
    "  if ty == 'hash' then officer = redis.call('HGET', ak, 'officer') or ''\n"
    "  elseif ty == 'string' then officer = redis.call('GET', ak) or '' end\n"
    "  if ty ~= 'none' then\n"
    "    state = 'unassigned'\n"
    "    if officer ~= '' then state = 'assigned' end\n"
    "  end\n"
    "  if cur['assignment'] ~= state then put('assignment', state) end\n"
    "  if (cur['officer'] or '') ~= officer or not cur['officer'] then put('officer', officer) "
    "end\n"
    "end\n"
    "local function finish(verdict, extra_field)\n"
    "  if verdict == 'applied' then put('updated_at', s(now)) end\n"
    "  if cur['online'] then assignment() end\n"
    "  flush()\n"
    "  local open = redis.call('HMGET', P .. 'alerts:open', ARGV[7], ARGV[8], ARGV[9],\n"
    "                         ARGV[10], ARGV[11])\n"
    "  local extra = false\n"
    "  if extra_field ~= '' then extra = redis.call('HGET', P .. 'alerts:open', extra_field) end\n"
    "  local rec = {}\n"
    "  for f, v in pairs(cur) do\n"
    "    if v then rec[#rec + 1] = f; rec[#rec + 1] = v end\n"
    "  end\n"
    "  return {verdict, changed, rec, open, extra}\n"
    "end\n";

/* 12 online ("1"/"0")  13 session  14 fw  15 recording_key_id  16 ts */
static const char conn_body[] =
    "local up = ARGV[12] == '1'\n"
    "local session = tonumber(ARGV[13])\n"
    "register()\n"
    "local cs = num('session')\n"
    "local verdict = 'applied'\n"
    "if cs ~= nil and session < cs then\n"
    "  verdict = 'stale'\n"
    "elseif up then\n"
    "  local newer = cs == nil or session > cs\n"
    "  if not newer and num('online') == 1 then verdict = 'duplicate' end\n"
    "  if newer and cs ~= nil and num('online') == 1 then\n"
    "    local acc = num('online_acc_at') or t\n"
    "    if t > acc then\n"
    "      credit(acc, t)\n"
    "      put('online_acc_at', s(t))\n"
    "    end\n"
    /* the old session's end is counted unless its offline already was: the
     * new session's state or health, on other streams, may have put the
     * record online before this message */
    "    if cur['offline_session'] ~= cur['session'] then\n"
    "      add('disconnects', 1)\n"
    "      bump(t, 'disconnects', 1)\n"
    "    end\n"
    "  end\n"
    "  if newer then\n"
    "    put('session', ARGV[13])\n"
    "    put('conn_ts', ARGV[16])\n"
    "    if ARGV[14] ~= '' then put('fw', ARGV[14]) end\n"
    "    if ARGV[15] ~= '' then put('recording_key_id', ARGV[15]) end\n"
    "    if num('online') ~= 1 then del('offline_at') end\n"
    "  end\n"
    "  touch(t)\n"
    "else\n"
    "  if cs == nil or session > cs then\n"
    "    put('session', ARGV[13])\n"
    "    put('conn_ts', ARGV[16])\n"
    "  end\n"
    "  if num('online') == 1 then\n"
    "    set_offline(t, 'conn_offline')\n"
    "  else\n"
    "    verdict = 'duplicate'\n"
    "    if num('offline_at') == nil then\n"
    "      put('offline_at', s(t))\n"
    "      put('offline_reason', 'conn_offline')\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return finish(verdict, '')\n";

/* 12 seq  13 state  14 warnings  15 since  16 recording_id  17 ts */
static const char state_body[] =
    "local seq = tonumber(ARGV[12])\n"
    "local st = ARGV[13]\n"
    "local ts = tonumber(ARGV[17])\n"
    "touch(t)\n"
    "local cs = num('state_seq')\n"
    "local verdict = nil\n"
    "if cs ~= nil then\n"
    "  if seq < cs then verdict = 'stale'\n"
    "  elseif seq == cs then\n"
    "    if cur['state'] == st and cur['warnings'] == ARGV[14] then verdict = 'duplicate'\n"
    "    elseif ts <= (num('state_ts') or 0) then verdict = 'stale' end\n"
    "  end\n"
    "end\n"
    "if verdict == nil then\n"
    "  verdict = 'applied'\n"
    "  local old = cur['state']\n"
    "  if old ~= st then\n"
    "    if old then redis.call('SREM', P .. 'cameras:state:' .. old, dev) end\n"
    "    redis.call('SADD', P .. 'cameras:state:' .. st, dev)\n"
    "    changed = 1\n"
    "  end\n"
    "  put('state', st)\n"
    "  put('warnings', ARGV[14])\n"
    "  put('since', ARGV[15])\n"
    "  put('recording_id', ARGV[16])\n"
    "  put('state_seq', ARGV[12])\n"
    "  put('state_ts', ARGV[17])\n"
    "  track_uploads(t)\n"
    "end\n"
    "return finish(verdict, '')\n";

/* 12 ts  13 battery_pct  14 charging ("1"/"0")  15 storage_free
 * 16 storage_total  17 temperature_c  18 signal_dbm  19 uptime_s  20 fw
 * 21 recording_key_id  22 pending_uploads  23 error count */
static const char health_body[] =
    "local ts = tonumber(ARGV[12])\n"
    "local batt = tonumber(ARGV[13])\n"
    "local charging = ARGV[14]\n"
    "touch(t)\n"
    "local hts = num('health_ts')\n"
    "local verdict = 'applied'\n"
    "if hts ~= nil and ts <= hts then\n"
    "  verdict = 'stale'\n"
    "  if ts == hts then verdict = 'duplicate' end\n"
    "else\n"
    "  if hts ~= nil and charging == '0' and cur['charging'] == '0' and\n"
    "     ts - hts <= offline_after then\n"
    "    bump(ts, 'drain_pct', (num('battery_pct') or batt) - batt)\n"
    "    bump(ts, 'drain_ms', ts - hts)\n"
    "  end\n"
    "  put('health_ts', ARGV[12])\n"
    "  put('battery_pct', ARGV[13])\n"
    "  put('charging', charging)\n"
    "  put('storage_free', ARGV[15])\n"
    "  put('storage_total', ARGV[16])\n"
    "  put('temperature_c', ARGV[17])\n"
    "  put('signal_dbm', ARGV[18])\n"
    "  put('uptime_s', ARGV[19])\n"
    "  put('fw', ARGV[20])\n"
    "  put('pending_uploads', ARGV[22])\n"
    "  put('health_errors', ARGV[23])\n"
    "  if ARGV[21] ~= '' then put('recording_key_id', ARGV[21]) end\n"
    "  bump(ts, 'health', 1)\n"
    "  if tonumber(ARGV[23]) > 0 then bump(ts, 'error_reports', 1) end\n"
    "  local hk = hourly(ts)\n"
    "  local low = redis.call('HGET', hk, 'battery_min')\n"
    "  if not low or batt < tonumber(low) then\n"
    "    redis.call('HSET', hk, 'battery_min', ARGV[13], 'battery_last', ARGV[13])\n"
    "  else\n"
    "    redis.call('HSET', hk, 'battery_last', ARGV[13])\n"
    "  end\n"
    "  track_uploads(t)\n"
    "end\n"
    "return finish(verdict, '')\n";

/* 12 seq  13 ts  14 type  15 payload  16 log_max  17 recording alert
 * field ("" for none)  18 number of hourly counters  19.. name, increment */
static const char event_body[] =
    "local seq = tonumber(ARGV[12])\n"
    "local ts = tonumber(ARGV[13])\n"
    "touch(t)\n"
    "local lk = P .. 'events:' .. dev\n"
    "local gk = P .. 'gaps:' .. dev\n"
    "local verdict = 'applied'\n"
    "local floor = num('log_floor')\n"
    "if floor ~= nil and seq < floor then\n"
    "  verdict = 'stale'\n"
    "elseif #redis.call('ZRANGEBYSCORE', lk, ARGV[12], ARGV[12], 'LIMIT', 0, 1) > 0 then\n"
    "  verdict = 'duplicate'\n"
    "else\n"
    "  redis.call('ZADD', lk, ARGV[12], ARGV[15])\n"
    "  local last = num('last_seq')\n"
    "  if last == nil or seq > last then\n"
    "    if last ~= nil and seq > last + 1 then\n"
    "      redis.call('ZADD', gk, s(last + 1), s(last + 1) .. '-' .. s(seq - 1))\n"
    "      add('missing_seqs', seq - last - 1)\n"
    "    end\n"
    "    put('last_seq', ARGV[12])\n"
    "    put('last_event', ARGV[14])\n"
    "    put('last_event_ts', ARGV[13])\n"
    "  else\n"
    "    local g = redis.call('ZREVRANGEBYSCORE', gk, ARGV[12], '-inf', 'LIMIT', 0, 1)\n"
    "    if #g > 0 then\n"
    "      local lo, hi = string.match(g[1], '^(%d+)-(%d+)$')\n"
    "      lo = tonumber(lo)\n"
    "      hi = tonumber(hi)\n"
    "      if lo ~= nil and hi ~= nil and seq <= hi then\n"
    "        redis.call('ZREM', gk, g[1])\n"
    "        if lo < seq then redis.call('ZADD', gk, s(lo), s(lo) .. '-' .. s(seq - 1)) end\n"
    "        if seq < hi then redis.call('ZADD', gk, s(seq + 1), s(seq + 1) .. '-' .. s(hi)) end\n"
    "        add('missing_seqs', -1)\n"
    "        add('gaps_filled', 1)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  add('events', 1)\n"
    "  bump(ts, 'events', 1)\n"
    "  local np = tonumber(ARGV[18])\n"
    "  for i = 0, np - 1 do bump(ts, ARGV[19 + 2 * i], tonumber(ARGV[20 + 2 * i])) end\n"
    "  local max = tonumber(ARGV[16])\n"
    "  if max > 0 then\n"
    "    local n = redis.call('ZCARD', lk)\n"
    "    if n > max then\n"
    "      redis.call('ZREMRANGEBYRANK', lk, '0', s(n - max - 1))\n"
    "      local first = redis.call('ZRANGE', lk, '0', '0', 'WITHSCORES')\n"
    "      put('log_floor', first[2])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return finish(verdict, ARGV[17])\n";

/* 12 cutoff: offline when still online and last_seen <= cutoff */
static const char stale_body[] = "if not cur['online'] then\n"
                                 "  redis.call('ZREM', P .. 'lastseen', dev)\n"
                                 "  return {'stale', 0, {}, {}, false}\n"
                                 "end\n"
                                 "local verdict = 'duplicate'\n"
                                 "local last = num('last_seen')\n"
                                 "if num('online') == 1 then\n"
                                 "  if last ~= nil and last <= tonumber(ARGV[12]) then\n"
                                 "    set_offline(last, 'missed_health')\n"
                                 "    verdict = 'applied'\n"
                                 "  end\n"
                                 "else\n"
                                 "  redis.call('ZREM', P .. 'lastseen', dev)\n"
                                 "end\n"
                                 "return finish(verdict, '')\n";

static const char peek_body[] = "if not cur['online'] then\n"
                                "  return {'stale', 0, {}, {}, false}\n"
                                "end\n"
                                "return finish('duplicate', '')\n";

/* 1 field  2 id  3 payload  4 outbox stream  5 topic  6 now  7 status name
 * (raised)  8..11 the outbox entry's field names: topic payload qos retain */
static const char raise_src[] =
    "local P = 'bodycam:'\n"
    "local ak = P .. 'alert:' .. ARGV[2]\n"
    "if redis.call('EXISTS', ak) == 1 then return 0 end\n"
    "if redis.call('HSETNX', P .. 'alerts:open', ARGV[1], ARGV[3]) == 0 then return 0 end\n"
    "redis.call('HSET', ak, 'field', ARGV[1], 'status', ARGV[7], 'raised_at', ARGV[6],\n"
    "           'raised', ARGV[3])\n"
    "redis.call('XADD', ARGV[4], '*', ARGV[8], ARGV[5], ARGV[9], ARGV[3], ARGV[10], '1',\n"
    "           ARGV[11], '0')\n"
    "return 1\n";

/* 1..11 as raise (7: the cleared status name)  12 history ttl (s, 0 =
 * keep)  13 mark a missing alert cleared ("1"/"0")  14 the raised name.
 * Returns 1 cleared, 0 not open, -1 another alert is open for the field. */
static const char clear_src[] =
    "local P = 'bodycam:'\n"
    "local open = P .. 'alerts:open'\n"
    "local ak = P .. 'alert:' .. ARGV[2]\n"
    "local ttl = tonumber(ARGV[12])\n"
    "if not redis.call('HGET', open, ARGV[1]) then\n"
    "  if ARGV[13] == '1' and redis.call('EXISTS', ak) == 0 then\n"
    "    redis.call('HSET', ak, 'field', ARGV[1], 'status', ARGV[7], 'cleared_at', ARGV[6])\n"
    "    if ttl > 0 then redis.call('EXPIRE', ak, ARGV[12]) end\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "if redis.call('HGET', ak, 'status') ~= ARGV[14] or\n"
    "   redis.call('HGET', ak, 'field') ~= ARGV[1] then return -1 end\n"
    "redis.call('HDEL', open, ARGV[1])\n"
    "redis.call('HSET', ak, 'status', ARGV[7], 'cleared_at', ARGV[6], 'cleared', ARGV[3])\n"
    "if ttl > 0 then redis.call('EXPIRE', ak, ARGV[12]) end\n"
    "redis.call('XADD', ARGV[4], '*', ARGV[8], ARGV[5], ARGV[9], ARGV[3], ARGV[10], '1',\n"
    "           ARGV[11], '0')\n"
    "return 1\n";

/* ARGV: the state names. {cameras, online, alerts open, per state...,
 * rotations active, their cameras, done, failed, rollouts active, their
 * cameras, updated, failed, wave, waves}: the key rotation campaigns of
 * services/key-rotation (bodycam:campaigns:active and each one's total,
 * done and failed) and the firmware rollouts of services/firmware-rollout
 * (bodycam:rollouts:active and each one's total, updated, failed +
 * rolled_back), read only. There is one active rollout at a time; should
 * there be more, the wave is the newest one's (highest R<n>), 1-based. */
static const char counts_src[] =
    "local P = 'bodycam:'\n"
    "local out = {redis.call('SCARD', P .. 'cameras'), redis.call('SCARD', P .. "
    "'cameras:online'),\n"
    "             redis.call('HLEN', P .. 'alerts:open')}\n"
    "for i = 1, #ARGV do out[#out + 1] = redis.call('SCARD', P .. 'cameras:state:' .. ARGV[i]) "
    "end\n"
    "local ids = redis.call('SMEMBERS', P .. 'campaigns:active')\n"
    "local cams, done, failed = 0, 0, 0\n"
    "for _, id in ipairs(ids) do\n"
    "  local c = redis.call('HMGET', P .. 'campaign:' .. id, 'total', 'done', 'failed')\n"
    "  cams = cams + (tonumber(c[1]) or 0)\n"
    "  done = done + (tonumber(c[2]) or 0)\n"
    "  failed = failed + (tonumber(c[3]) or 0)\n"
    "end\n"
    "out[#out + 1] = #ids\n"
    "out[#out + 1] = cams\n"
    "out[#out + 1] = done\n"
    "out[#out + 1] = failed\n"
    "local rids = redis.call('SMEMBERS', P .. 'rollouts:active')\n"
    "local rcams, updated, rfailed, wave, waves, newest = 0, 0, 0, 0, 0, -1\n"
    "for _, id in ipairs(rids) do\n"
    "  local r = redis.call('HMGET', P .. 'rollout:' .. id, 'total', 'updated', 'failed',\n"
    "                       'rolled_back', 'current_wave', 'wave_count')\n"
    "  rcams = rcams + (tonumber(r[1]) or 0)\n"
    "  updated = updated + (tonumber(r[2]) or 0)\n"
    "  rfailed = rfailed + (tonumber(r[3]) or 0) + (tonumber(r[4]) or 0)\n"
    "  local n = tonumber(string.sub(id, 2)) or 0\n"
    "  if n > newest then\n"
    "    newest = n\n"
    "    wave = r[5] and (tonumber(r[5]) or -1) + 1 or 0\n"
    "    waves = tonumber(r[6]) or 0\n"
    "  end\n"
    "end\n"
    "out[#out + 1] = #rids\n"
    "out[#out + 1] = rcams\n"
    "out[#out + 1] = updated\n"
    "out[#out + 1] = rfailed\n"
    "out[#out + 1] = wave\n"
    "out[#out + 1] = waves\n"
    "return out\n";

typedef struct script {
    const char *name;
    const char *body;
    bool with_prelude;
    bc_script run; /* prelude + body, built once */
} script;

static script scripts[FH_SCRIPT_COUNT] = {
    [FH_SCRIPT_CONN] = {.name = "conn", .body = conn_body, .with_prelude = true},
    [FH_SCRIPT_STATE] = {.name = "state", .body = state_body, .with_prelude = true},
    [FH_SCRIPT_HEALTH] = {.name = "health", .body = health_body, .with_prelude = true},
    [FH_SCRIPT_EVENT] = {.name = "event", .body = event_body, .with_prelude = true},
    [FH_SCRIPT_STALE] = {.name = "stale", .body = stale_body, .with_prelude = true},
    [FH_SCRIPT_PEEK] = {.name = "peek", .body = peek_body, .with_prelude = true},
    [FH_SCRIPT_RAISE] = {.name = "raise", .body = raise_src},
    [FH_SCRIPT_CLEAR] = {.name = "clear", .body = clear_src},
    [FH_SCRIPT_COUNTS] = {.name = "counts", .body = counts_src},
};

/* The sources live for the whole process (static storage). */
static char source_store[FH_SCRIPT_COUNT][sizeof(prelude) + 4096];

bc_status fh_scripts_init(bc_error *err)
{
    for (int i = 0; i < FH_SCRIPT_COUNT; i++) {
        script *s = &scripts[i];
        int n = snprintf(source_store[i], sizeof(source_store[i]), "%s%s",
                         s->with_prelude ? prelude : "", s->body);
        if (n < 0 || (size_t)n >= sizeof(source_store[i]))
            return bc_fail(err, BC_ERR_TOO_BIG, "script %s does not fit its buffer", s->name);
        bc_status st = bc_script_init(&s->run, s->name, source_store[i], (size_t)n, err);
        if (st != BC_OK)
            return st;
    }
    return BC_OK;
}

/* ---- arguments ---- */

void fh_args_init(fh_args *a)
{
    a->n = 0;
    a->overflow = false;
}

void fh_args_bytes(fh_args *a, const void *p, size_t len)
{
    if (a->n >= FH_ARGS_MAX) {
        a->overflow = true;
        return;
    }
    a->v[a->n] = p != NULL ? p : "";
    a->len[a->n] = p != NULL ? len : 0;
    a->n++;
}

void fh_args_str(fh_args *a, const char *s)
{
    fh_args_bytes(a, s, s != NULL ? strlen(s) : 0);
}

void fh_args_int(fh_args *a, int64_t v)
{
    if (a->n >= FH_ARGS_MAX) {
        a->overflow = true;
        return;
    }
    int n = snprintf(a->num[a->n], FH_ARG_BUF, "%lld", (long long)v);
    fh_args_bytes(a, a->num[a->n], n > 0 ? (size_t)n : 0);
}

/* args into argv/lens after the script's head (FH_ARGS_MAX +
 * BC_SCRIPT_ARGV_HEAD slots); the argc of the call. */
static int script_argv(const fh_args *args, const char **argv, size_t *lens)
{
    for (int i = 0; i < args->n; i++) {
        argv[BC_SCRIPT_ARGV_HEAD + i] = args->v[i];
        lens[BC_SCRIPT_ARGV_HEAD + i] = args->len[i];
    }
    return args->n + BC_SCRIPT_ARGV_HEAD;
}

static bc_status usable(fh_script_id id, const fh_args *args, bc_error *err)
{
    if (id < 0 || id >= FH_SCRIPT_COUNT || scripts[id].run.source == NULL)
        return bc_fail(err, BC_ERR_STATE, "script %d is not initialised", (int)id);
    if (args->overflow)
        return bc_fail(err, BC_ERR_TOO_BIG, "script %s: more than %d arguments", scripts[id].name,
                       FH_ARGS_MAX);
    return BC_OK;
}

bc_status fh_scripts_load(bc_redis *r, bc_error *err)
{
    bc_status st = BC_OK;
    for (int i = 0; st == BC_OK && i < FH_SCRIPT_COUNT; i++)
        st = bc_script_load(r, &scripts[i].run, err);
    return st;
}

bc_status fh_script_append(bc_redis *r, fh_script_id id, const fh_args *args, bc_error *err)
{
    bc_status st = usable(id, args, err);
    if (st != BC_OK)
        return st;
    const char *argv[FH_ARGS_MAX + BC_SCRIPT_ARGV_HEAD];
    size_t lens[FH_ARGS_MAX + BC_SCRIPT_ARGV_HEAD];
    int argc = script_argv(args, argv, lens);
    return bc_script_append(r, &scripts[id].run, argc, argv, lens, err);
}

bc_status fh_script_run(bc_redis *r, fh_script_id id, const fh_args *args, redisReply **out,
                        bc_error *err)
{
    *out = NULL;
    bc_status st = usable(id, args, err);
    if (st != BC_OK)
        return st;
    const char *argv[FH_ARGS_MAX + BC_SCRIPT_ARGV_HEAD];
    size_t lens[FH_ARGS_MAX + BC_SCRIPT_ARGV_HEAD];
    int argc = script_argv(args, argv, lens);
    bc_error local;
    bc_error_clear(&local);
    st = bc_script_run(r, &scripts[id].run, argc, argv, lens, out, &local);
    if (st != BC_OK)
        bc_fail(err, st, "script %s: %s", scripts[id].name, local.text);
    return st;
}
