/*
 * rate.h - pace buckets kept in Redis, as Lua for the services' scripts
 * (key rotation campaigns, firmware rollout offers), so every instance of
 * a service shares one pace.
 *
 * A bucket is one number in a hash field, its "theoretical arrival time"
 * (tat, ms): a send is allowed when tat <= now, and each send moves tat on
 * by 1000 / per_s. A tat that fell behind now is pulled up to now - SLACK,
 * so a pass that comes late catches up at most SLACK ms worth and an idle
 * bucket saves up no burst.
 *
 * BC_RATE_LUA defines two local functions; the script that includes it
 * defines `SLACK` (ms) before it:
 *
 *   peek(key, field, per_s, now, want) -> n, tat, step
 *       how many sends the bucket allows now (at most want)
 *   take(key, field, tat, step, k)
 *       moves the bucket on by k sends (after peek, in the same script)
 */
#ifndef BC_COMMON_RATE_H
#define BC_COMMON_RATE_H

#define BC_RATE_LUA                                                                                \
    "local function peek(key, field, per_s, now, want)\n"                                          \
    "  local step = 1000 / per_s\n"                                                                \
    "  local tat = tonumber(redis.call('HGET', key, field)) or now\n"                              \
    "  if tat < now - SLACK then tat = now - SLACK end\n"                                          \
    "  if tat > now or want <= 0 then return 0, tat, step end\n"                                   \
    "  local n = math.floor((now - tat) / step) + 1\n"                                             \
    "  if n > want then n = want end\n"                                                            \
    "  return n, tat, step\n"                                                                      \
    "end\n"                                                                                        \
    "local function take(key, field, tat, step, k)\n"                                              \
    "  if k > 0 then redis.call('HSET', key, field, string.format('%.3f', tat + k * step)) end\n"  \
    "end\n"

#endif
