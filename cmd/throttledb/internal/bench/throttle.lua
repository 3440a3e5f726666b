-- THROTTLE.ACQUIRE for a plain Redis: the baseline of
-- `throttledb bench --target redis-lua`. It implements throttledb's rule and
-- reply (fsm/throttle.go, server/cmd_throttle.go), so the two are compared
-- doing the same work.
--
--   EVALSHA <sha> 1 key interval max [SLOP ms]
--
-- Reply: granted, wait_ms, valid_at, expires_at, pending (integers).
-- State: a hash per key, {last = newest granted slot, interval = the interval
-- it was granted with}, with PEXPIREAT last + interval so an expired key
-- vanishes as it does in throttledb.
--
-- Differences from throttledb, none of which a benchmark run meets:
--   * "now" is this Redis's wall clock (TIME), which may step backwards;
--     throttledb never lets cluster time run backwards. Spacing still holds:
--     a "go now" grant needs now >= last + interval.
--   * Lua numbers are doubles, so numbers and slot times are limited to
--     2^53 - 1 instead of int64.
--   * It takes SLOP only: COST and ID are a syntax error here.

-- Redis 5 and 6 need this before a write that follows TIME; Redis 7
-- always replicates a script's effects and keeps it as a no-op.
if redis.replicate_commands then redis.replicate_commands() end

local LIMIT = 9007199254740991 -- 2^53 - 1: larger doubles are not exact
local ERR_INT = 'ERR value is not an integer or out of range'
local ERR_OVERFLOW = 'ERR interval, max or SLOP too large: the slot time would exceed 2^53-1 milliseconds'

-- int parses a decimal integer as strconv.ParseInt does (optional sign,
-- digits only), or returns nil.
local function int(s)
  if not string.match(s, '^[+-]?%d+$') then return nil end
  local v = tonumber(s)
  if v == nil or v > LIMIT or v < -LIMIT then return nil end
  return v
end

-- ceildiv is ceil(a/b) for a >= 0, b > 0, corrected for the rounding of the
-- floating-point division.
local function ceildiv(a, b)
  local q = math.floor(a / b)
  while q * b < a do q = q + 1 end
  while q > 0 and (q - 1) * b >= a do q = q - 1 end
  return q
end

-- The checks run in the order throttledb's parseAcquire and Validate run
-- them, so a bad call gets the same error.
if #KEYS ~= 1 or #ARGV < 2 then
  return redis.error_reply("ERR wrong number of arguments for 'throttle.acquire' command")
end
local key = KEYS[1]
local interval = int(ARGV[1])
if interval == nil then return redis.error_reply(ERR_INT) end
local max = int(ARGV[2])
if max == nil then return redis.error_reply(ERR_INT) end
local slop = math.max(1, math.floor(interval / 10))
if #ARGV > 2 then
  if #ARGV ~= 4 or string.upper(ARGV[3]) ~= 'SLOP' then return redis.error_reply('ERR syntax error') end
  slop = int(ARGV[4])
  if slop == nil then return redis.error_reply(ERR_INT) end
end
if #key < 1 or #key > 65536 then
  return redis.error_reply('ERR invalid key: keys must be 1 to 65536 bytes')
end
if interval < 1 then return redis.error_reply('ERR interval must be a positive integer (milliseconds)') end
if max < 0 then return redis.error_reply('ERR max must be zero or a positive integer') end
if slop < 0 then return redis.error_reply('ERR SLOP must be zero or a positive integer (milliseconds)') end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local st = redis.call('HMGET', key, 'last', 'interval')
local last, stored = tonumber(st[1]), tonumber(st[2])
-- Redis expires keys lazily, and a script sees the clock of its start:
-- test the deadline here rather than trust that the key is gone.
if last == nil or stored == nil or now >= last + stored then last = nil end

-- grant records slot as the key's newest and replies with it. Like
-- throttledb it first checks that every later step on the key fits.
local function grant(slot, wait, pending)
  if slot + interval + slop > LIMIT then return redis.error_reply(ERR_OVERFLOW) end
  -- %d: a plain tostring would print large numbers in exponent form.
  redis.call('HSET', key, 'last', string.format('%d', slot), 'interval', string.format('%d', interval))
  redis.call('PEXPIREAT', key, string.format('%d', slot + interval))
  return {1, wait, slot, slot + slop, pending}
end

if last == nil or now >= last + interval then
  return grant(now, 0, 0)
end
local pending = 0
if last > now then pending = ceildiv(last - now, interval) end
if pending < max then
  local slot = last + interval
  return grant(slot, slot - now, ceildiv(slot - now, interval))
end
local wait = last + interval - now
if max >= 1 then
  if (max - 1) * interval > LIMIT then return redis.error_reply(ERR_OVERFLOW) end
  wait = last - (max - 1) * interval - now
end
return {0, wait, -1, -1, pending}
