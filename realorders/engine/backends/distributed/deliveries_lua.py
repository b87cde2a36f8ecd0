"""The Lua scripts of the webhook delivery outbox in Redis (``deliveries.py`` has the key layout).

One script per atomic step: an enqueue (its rows and the scan cursor), the
due heads, an attempt's outcome, a page of a replay, a page of
``forget_endpoint``. Each keeps every index of the deliveries it touches in
line with their status, and each order's *head* (its lowest pending seq) in
exactly one of ``dlv_wait`` and ``dlv_ready``. Numbers arrive as Python's
``repr`` and go back to Redis as the same strings; Lua only compares them.
"""

from __future__ import annotations

__all__ = ["DUE", "ENQUEUE", "FORGET", "RECORD", "RELEASE_LEASE", "REQUEUE", "TAKE_LEASE"]

HELPERS = r"""
local P = ARGV[1]
local SEP = '\0'
local function dkey(K) return P..'dlv:'..K end
local function head(G)  -- the lowest pending seq of an (endpoint, order), or nil
  return redis.call('ZRANGE', P..'dlv_pend:'..G, 0, 0)[1]
end
local function unschedule(K)
  redis.call('ZREM', P..'dlv_wait', K)
  redis.call('ZREM', P..'dlv_ready', K)
end
local function schedule(K)  -- a head: ready (by cursor) if due by the clock, else waiting
  local d = dkey(K)
  local at = redis.call('HGET', d, 'next_at')
  local clock = redis.call('GET', P..'dlv_clock')
  if clock and tonumber(at) <= tonumber(clock) then
    redis.call('ZREM', P..'dlv_wait', K)
    redis.call('ZADD', P..'dlv_ready', redis.call('HGET', d, 'cursor'), K)
  else
    redis.call('ZREM', P..'dlv_ready', K)
    redis.call('ZADD', P..'dlv_wait', at, K)
  end
end
local function rehead(G, old)  -- after G's pending seqs changed; old: the head before
  local new = head(G)
  if old and old ~= new then unschedule(G..SEP..old) end
  if new then schedule(G..SEP..new) end
end
local function set_or_del(d, field, v)  -- '' for none, else '=' and the value
  if v == '' then redis.call('HDEL', d, field) else redis.call('HSET', d, field, v:sub(2)) end
end
"""

#: ARGV: prefix, scan cursor, then per delivery key, endpoint, group, seq, cursor, rank,
#: msg_id, attempts, next_at, created_at, updated_at. Returns how many were new.
ENQUEUE = (
    HELPERS
    + r"""
local added = 0
for i = 3, #ARGV, 11 do
  local K, E, G, seq, r, updated = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+5], ARGV[i+10]
  local d = dkey(K)
  if redis.call('EXISTS', d) == 0 then
    redis.call('HSET', d, 'cursor', ARGV[i+4], 'r', r, 'msg_id', ARGV[i+6], 'status', 'pending',
      'attempts', ARGV[i+7], 'next_at', ARGV[i+8], 'created_at', ARGV[i+9], 'updated_at', updated)
    redis.call('SADD', P..'dlv_eps', E)
    redis.call('ZADD', P..'dlv_ep:'..E, updated, r)
    redis.call('ZADD', P..'dlv_grp:'..G, seq, seq)
    redis.call('HINCRBY', P..'dlv_npend', E, 1)
    local old = head(G)
    redis.call('ZADD', P..'dlv_pend:'..G, seq, seq)
    if not old or tonumber(seq) < tonumber(old) then rehead(G, old) end
    added = added + 1
  end
end
local scanned = redis.call('GET', P..'dlv_scan')
if not scanned or tonumber(ARGV[2]) > tonumber(scanned) then
  redis.call('SET', P..'dlv_scan', ARGV[2])
end
return added
"""
)

#: ARGV: prefix, now, limit, the end of the hold ('' for none). Returns key, HGETALL pairs,
#: key, pairs, ... (as they were before a hold).
DUE = (
    HELPERS
    + r"""
local now, limit, held = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local clock = redis.call('GET', P..'dlv_clock')
if not clock or tonumber(now) > tonumber(clock) then redis.call('SET', P..'dlv_clock', now) end
for _, K in ipairs(redis.call('ZRANGEBYSCORE', P..'dlv_wait', '-inf', now)) do
  redis.call('ZREM', P..'dlv_wait', K)
  redis.call('ZADD', P..'dlv_ready', redis.call('HGET', dkey(K), 'cursor'), K)
end
local out, found, start = {}, 0, 0
while found < limit do
  local page = redis.call('ZRANGE', P..'dlv_ready', start, start + limit - 1)
  if #page == 0 then break end
  for _, K in ipairs(page) do
    local d = dkey(K)
    -- ready by another process's later clock, not by this caller's now: leave it there
    if tonumber(redis.call('HGET', d, 'next_at')) <= tonumber(now) then
      out[#out + 1] = K
      out[#out + 1] = redis.call('HGETALL', d)
      found = found + 1
      if found >= limit then break end
    end
  end
  start = start + #page
end
if held ~= '' then  -- claimed: waiting until the hold ends (moved after the walk of ready)
  for i = 1, #out, 2 do
    local K = out[i]
    redis.call('HSET', dkey(K), 'next_at', held)
    redis.call('ZREM', P..'dlv_ready', K)
    redis.call('ZADD', P..'dlv_wait', held, K)
  end
end
return out
"""
)

#: ARGV: prefix, then per outcome: key, endpoint, group, seq, status, attempts, next_at, at,
#: last_code, last_error, last_latency_ms, response_excerpt (next_at and the last four ''
#: for none, else '=' and the value). Returns how many were known (the others: unknown).
RECORD = (
    HELPERS
    + r"""
local function record(i)
  local K, E, G, seq, status, at = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+7]
  local d = dkey(K)
  local before = redis.call('HGET', d, 'status')
  if not before then return 0 end
  local r = redis.call('HGET', d, 'r')
  redis.call('HSET', d, 'status', status, 'attempts', ARGV[i+5], 'updated_at', at)
  set_or_del(d, 'next_at', ARGV[i+6])
  set_or_del(d, 'last_code', ARGV[i+8])
  set_or_del(d, 'last_error', ARGV[i+9])
  set_or_del(d, 'last_latency_ms', ARGV[i+10])
  set_or_del(d, 'response_excerpt', ARGV[i+11])
  redis.call('ZADD', P..'dlv_ep:'..E, at, r)
  if before == 'failed' then redis.call('ZREM', P..'dlv_failed:'..E, r) end
  if status == 'failed' then redis.call('ZADD', P..'dlv_failed:'..E, at, r) end
  local old = head(G)
  if status == 'pending' and before ~= 'pending' then
    redis.call('ZADD', P..'dlv_pend:'..G, seq, seq)
    redis.call('HINCRBY', P..'dlv_npend', E, 1)
  elseif status ~= 'pending' and before == 'pending' then
    redis.call('ZREM', P..'dlv_pend:'..G, seq)
    redis.call('HINCRBY', P..'dlv_npend', E, -1)
    unschedule(K)
  end
  rehead(G, old)
  return 1
end
local n = 0
for i = 2, #ARGV, 12 do n = n + record(i) end
return n
"""
)

#: ARGV: prefix, endpoint, now, failed only ('1'/'0'), since (the least created_at, '' for
#: none), then key, group, seq per delivery. Settled ones matching become pending again;
#: returns how many.
REQUEUE = (
    HELPERS
    + r"""
local E, now, failed_only, since = ARGV[2], ARGV[3], ARGV[4] == '1', ARGV[5]
local n = 0
for i = 6, #ARGV, 3 do
  local K, G, seq = ARGV[i], ARGV[i+1], ARGV[i+2]
  local d = dkey(K)
  local st = redis.call('HGET', d, 'status')
  if (st == 'failed' or (st == 'delivered' and not failed_only))
     and (since == '' or tonumber(redis.call('HGET', d, 'created_at')) >= tonumber(since)) then
    local r = redis.call('HGET', d, 'r')
    redis.call('HSET', d, 'status', 'pending', 'attempts', '0', 'next_at', now, 'updated_at', now)
    redis.call('ZADD', P..'dlv_ep:'..E, now, r)
    redis.call('ZREM', P..'dlv_failed:'..E, r)
    redis.call('HINCRBY', P..'dlv_npend', E, 1)
    local old = head(G)
    redis.call('ZADD', P..'dlv_pend:'..G, seq, seq)
    rehead(G, old)
    n = n + 1
  end
end
return n
"""
)

#: ARGV: prefix, endpoint, then members of dlv_ep:<E>. Deletes them; returns how many.
FORGET = (
    HELPERS
    + r"""
local E = ARGV[2]
local n = 0
for i = 3, #ARGV do
  local r = ARGV[i]
  local K = r:sub(22)
  local G, seq = K:match('^(.*)%z([^%z]*)$')
  local d = dkey(K)
  local st = redis.call('HGET', d, 'status')
  if st then
    if st == 'pending' then
      local old = head(G)
      redis.call('ZREM', P..'dlv_pend:'..G, seq)
      redis.call('HINCRBY', P..'dlv_npend', E, -1)
      unschedule(K)
      rehead(G, old)
    end
    redis.call('DEL', d)
    redis.call('ZREM', P..'dlv_grp:'..G, seq)
    n = n + 1
  end
  redis.call('ZREM', P..'dlv_ep:'..E, r)
  redis.call('ZREM', P..'dlv_failed:'..E, r)
end
if redis.call('EXISTS', P..'dlv_ep:'..E) == 0 then
  redis.call('SREM', P..'dlv_eps', E)
  redis.call('HDEL', P..'dlv_npend', E)
  redis.call('DEL', P..'dlv_failed:'..E)
end
return n
"""
)

#: KEYS: the lease; ARGV: owner, ttl ms. nil when the owner holds it now, else the holder.
TAKE_LEASE = r"""
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

#: KEYS: the lease; ARGV: owner. 1 released, 0 held by another or by no one.
RELEASE_LEASE = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
