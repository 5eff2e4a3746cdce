/*
 * registry_lua.h - the device registry (bodycam:devices, the set of
 * registered cameras, and bodycam:device:<id>, their hashes; the broker
 * plugin's registry.h) read from the services' Lua scripts (key rotation
 * campaigns, firmware rollouts), so each does not spell the keys again.
 *
 * BC_REGISTRY_LUA defines two local functions:
 *
 *   reg_status(d) -> status
 *       the camera's registry status ('active', ...); nil when it is not
 *       registered (not in the set or without its hash)
 *   reg_active() -> list
 *       every registered camera whose status is 'active', in the set's
 *       order (SMEMBERS)
 */
#ifndef BC_COMMON_REGISTRY_LUA_H
#define BC_COMMON_REGISTRY_LUA_H

#define BC_REGISTRY_LUA                                                                            \
    "local function reg_status(d)\n"                                                               \
    "  local st = redis.call('HGET', 'bodycam:device:' .. d, 'status')\n"                          \
    "  if not st or redis.call('SISMEMBER', 'bodycam:devices', d) == 0 then return nil end\n"      \
    "  return st\n"                                                                                \
    "end\n"                                                                                        \
    "local function reg_active()\n"                                                                \
    "  local list = {}\n"                                                                          \
    "  for _, d in ipairs(redis.call('SMEMBERS', 'bodycam:devices')) do\n"                         \
    "    if redis.call('HGET', 'bodycam:device:' .. d, 'status') == 'active' then\n"               \
    "      list[#list + 1] = d\n"                                                                  \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  return list\n"                                                                              \
    "end\n"

#endif
