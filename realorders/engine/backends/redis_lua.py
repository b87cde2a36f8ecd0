"""Lua scripts that make each Redis step of the distributed mode atomic.

Redis runs a script without interleaving any other command, so a reservation
of all lines of an order, or the projection of a whole engine batch, is seen
by every other engine and reader either entirely or not at all. Keys are
built inside the scripts from a prefix (``ARGV[1]``): the store is one Redis
database, not a cluster, and the prefix lets several stores (and tests) share it.

Stock holds: ``hold:<order>`` says what an order's lines (``lines:<order>``) do to stock —
``P`` provisional (reserved by an engine batch not yet committed to Kafka),
``R`` reserved (committed), ``C`` consumed (shipped), absent or ``F`` nothing.
Every provisional change is listed in ``prov:<partition>`` so that whoever
owns the partition next can put the holds back in line with what Kafka
committed (see :data:`RECONCILE`).
"""

from __future__ import annotations

# Shared Lua helpers, prepended to the scripts that need them.
_HELPERS = r"""
local P = ARGV[1]
local function hold_effect(code, lines, sign)
  -- add (sign=1) or remove (sign=-1) what a hold code does to stock
  if code == 'P' or code == 'R' then
    for i = 1, #lines, 2 do redis.call('HINCRBY', P..'held', lines[i], sign * lines[i+1]) end
  elseif code == 'C' then
    for i = 1, #lines, 2 do redis.call('HINCRBY', P..'onhand', lines[i], -sign * lines[i+1]) end
  end
end
local function move_hold(oid, lines, target)
  -- the lines a hold took are kept with it: undoing it must give back exactly those
  local key = P..'hold:'..oid
  local current = redis.call('GET', key) or 'F'
  if current == target then return current end
  local taken = redis.call('GET', P..'lines:'..oid)
  if taken then hold_effect(current, cjson.decode(taken), -1) end
  hold_effect(target, lines, 1)
  if target == 'F' then
    redis.call('DEL', key, P..'lines:'..oid)
  else
    redis.call('SET', key, target)
    redis.call('SET', P..'lines:'..oid, cjson.encode(lines))
  end
  return current
end
"""

#: ARGV: prefix, then JSON [[order_id, partition, [pid, qty, pid, qty...]], ...]
#: Returns per request: {1} ok, {0, 'u', pid...} unknown, {0, 's', pid, want, avail, ...}.
RESERVE = (
    _HELPERS
    + r"""
local requests = cjson.decode(ARGV[2])
local out = {}
for r = 1, #requests do
  local oid, part, lines = requests[r][1], requests[r][2], requests[r][3]
  local current = redis.call('GET', P..'hold:'..oid)
  if current == 'P' or current == 'R' or current == 'C' then
    out[r] = {1}
  else
    local unknown, short = {}, {}
    for i = 1, #lines, 2 do
      local on_hand = redis.call('HGET', P..'onhand', lines[i])
      if not on_hand or redis.call('HEXISTS', P..'products', lines[i]) == 0 then
        unknown[#unknown + 1] = lines[i]
      else
        local avail = tonumber(on_hand) - tonumber(redis.call('HGET', P..'held', lines[i]) or '0')
        if avail < lines[i+1] then
          short[#short + 1] = lines[i]; short[#short + 1] = lines[i+1]; short[#short + 1] = avail
        end
      end
    end
    if #unknown > 0 then
      table.insert(unknown, 1, 'u'); table.insert(unknown, 1, 0); out[r] = unknown
    elseif #short > 0 then
      table.insert(short, 1, 's'); table.insert(short, 1, 0); out[r] = short
    else
      move_hold(oid, lines, 'P')
      redis.call('SADD', P..'prov:'..part, oid)
      out[r] = {1}
    end
  end
end
return out
"""
)

#: ARGV: prefix, JSON [[order_id, partition, target, [pid, qty, ...]], ...]
#: Provisional release ('F') or consumption ('C') by an engine batch.
SETTLE = (
    _HELPERS
    + r"""
local requests = cjson.decode(ARGV[2])
for r = 1, #requests do
  local oid, part, target, lines = requests[r][1], requests[r][2], requests[r][3], requests[r][4]
  local current = redis.call('GET', P..'hold:'..oid) or 'F'
  -- only a held order gives stock back or ships it: the port's "no-op if it holds nothing"
  if current == 'P' or current == 'R' or (current == 'C' and target == 'F') then
    if current ~= 'C' then
      move_hold(oid, lines, target)
      redis.call('SADD', P..'prov:'..part, oid)
    end
  end
end
return #requests
"""
)

#: ARGV: prefix, ref ('' for none), product, mode ('add'|'set'), quantity, at.
#: Returns {1, delta} applied, {1, 0} already applied (same ref), {0, reason} refused.
STOCK = r"""
local P, ref, pid, mode, qty = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
if redis.call('HEXISTS', P..'products', pid) == 0 then
  return {0, 'unknown product '..pid}
end
if ref ~= '' and redis.call('SADD', P..'applied', ref) == 0 then return {1, 0} end
local on_hand = tonumber(redis.call('HGET', P..'onhand', pid) or '0')
local delta = qty
if mode == 'set' then
  local held = tonumber(redis.call('HGET', P..'held', pid) or '0')
  if qty < held then
    if ref ~= '' then redis.call('SREM', P..'applied', ref) end
    return {0, pid..': cannot set on hand to '..qty..', '..held..' reserved'}
  end
  delta = qty - on_hand
end
redis.call('HSET', P..'onhand', pid, on_hand + delta)
if delta ~= 0 then redis.call('HINCRBY', P..'ledger', pid, delta) end
return {1, delta}
"""

#: ARGV: prefix, JSON {"orders": [[state_json, partition, old_version_hint], ...],
#:                    "events": [[order_id, seq, event_json], ...],
#:                    "proj": {partition: next_events_offset}, "now": epoch}
#: Projects one committed engine batch: order rows, indexes, counters, history,
#: the global tail, holds made definitive, and how far each partition is projected.
#: Idempotent: an order row or event at or below the stored version is skipped.
PROJECT = (
    _HELPERS
    + r"""
local batch = cjson.decode(ARGV[2])
local open = {pending=true, reserved=true, backordered=true, packed=true, shipped=true}
local target_of = {reserved='R', packed='R', shipped='C', delivered='C'}
local versions = {}
local function flat_lines(items)
  local lines = {}
  for i = 1, #items do
    lines[#lines + 1] = items[i].product_id; lines[#lines + 1] = items[i].quantity
  end
  return lines
end
for i = 1, #batch.orders do
  local raw, part = batch.orders[i][1], batch.orders[i][2]
  local s = cjson.decode(raw)
  local key = P..'o:'..s.id
  local old_raw = redis.call('GET', key)
  local old = old_raw and cjson.decode(old_raw) or nil
  versions[s.id] = old and old.version or 0
  if not old or old.version < s.version then
    redis.call('SET', key, raw)
    local arrival = s.arrival
    if old then
      redis.call('HINCRBY', P..'counts', old.status, -1)
      redis.call('ZREM', P..'st:'..old.status, s.id)
      if open[old.status] then redis.call('ZREM', P..'upd:'..old.status, s.id) end
      if old.status == 'backordered' then
        for j = 1, #old.items do redis.call('ZREM', P..'bo:'..old.items[j].product_id, s.id) end
      end
    else
      redis.call('ZADD', P..'all', arrival, s.id)
      redis.call('ZADD', P..'ids', 0, s.id)
      redis.call('ZADD', P..'cust:'..s.customer_id, arrival, s.id)
      redis.call('ZREM', P..'queued', s.id)
      local first = redis.call('HGET', P..'meta', 'first_created')
      if not first or tonumber(first) > s.created_at then
        redis.call('HSET', P..'meta', 'first_created', s.created_at)
      end
    end
    redis.call('HINCRBY', P..'counts', s.status, 1)
    redis.call('ZADD', P..'st:'..s.status, arrival, s.id)
    if open[s.status] then redis.call('ZADD', P..'upd:'..s.status, s.updated_at, s.id) end
    if s.status == 'backordered' then
      for j = 1, #s.items do redis.call('ZADD', P..'bo:'..s.items[j].product_id, arrival, s.id) end
    end
    if s.terminal_at ~= cjson.null and s.terminal_at ~= nil then
      redis.call('ZADD', P..'fin', s.terminal_at, s.id)
      redis.call('ZADD', P..'lat', s.terminal_at - s.created_at, s.id)
      local last = redis.call('HGET', P..'meta', 'last_terminal')
      if not last or tonumber(last) < s.terminal_at then
        redis.call('HSET', P..'meta', 'last_terminal', s.terminal_at)
      end
    end
    move_hold(s.id, flat_lines(s.items), target_of[s.status] or 'F')
  end
  redis.call('SREM', P..'prov:'..part, s.id)
end
local tail_seq = tonumber(redis.call('GET', P..'tailseq') or '0')
for i = 1, #batch.events do
  local oid, seq, raw = batch.events[i][1], batch.events[i][2], batch.events[i][3]
  if seq > (versions[oid] or 0) then
    redis.call('RPUSH', P..'ev:'..oid, raw)
    tail_seq = tail_seq + 1
    redis.call('XADD', P..'tail', 'MAXLEN', '~', 200000, tail_seq..'-1', 'e', raw)
    redis.call('INCR', P..'evs:'..math.floor(batch.now))
    redis.call('EXPIRE', P..'evs:'..math.floor(batch.now), 7200)
  end
end
redis.call('SET', P..'tailseq', tail_seq)
for part, offset in pairs(batch.proj) do
  local stored = tonumber(redis.call('HGET', P..'proj', part) or '-1')
  if offset > stored then redis.call('HSET', P..'proj', part, offset) end
end
return tail_seq
"""
)

#: ARGV: prefix, partition, JSON [[order_id, target, [pid, qty, ...]], ...]
#: A new owner of a partition puts the holds of orders an earlier owner changed
#: but never committed back in line with their committed status.
RECONCILE = (
    _HELPERS
    + r"""
local part = ARGV[2]
local items = cjson.decode(ARGV[3])
local moved = 0
for i = 1, #items do
  local oid, target, lines = items[i][1], items[i][2], items[i][3]
  if move_hold(oid, lines, target) ~= target then moved = moved + 1 end
  redis.call('SREM', P..'prov:'..part, oid)
end
return moved
"""
)

#: ARGV: prefix, now, JSON [[order_id, digest_hex, body_json, at], ...]
#: Intake: claims ids idempotently and hands out dense positions.
#: Returns per order: {'a', position} accepted, {'d'} duplicate, {'c'} conflict.
CLAIM = r"""
local P, now = ARGV[1], ARGV[2]
local orders = cjson.decode(ARGV[3])
local out = {}
for i = 1, #orders do
  local oid, digest, body = orders[i][1], orders[i][2], orders[i][3]
  local seen = redis.call('HGET', P..'digest', oid)
  if seen then
    out[i] = {seen == digest and 'd' or 'c'}
  else
    local position = redis.call('INCR', P..'seq')
    redis.call('HSET', P..'digest', oid, digest)
    redis.call('HSET', P..'sub', oid, cjson.encode({body, now, position}))
    redis.call('ZADD', P..'queued', position, oid)
    out[i] = {'a', position}
  end
end
return out
"""

#: ARGV: prefix, JSON [[order_id], ...]: forget claims whose produce failed.
UNCLAIM = r"""
local P = ARGV[1]
local ids = cjson.decode(ARGV[2])
for i = 1, #ids do
  redis.call('HDEL', P..'digest', ids[i]); redis.call('HDEL', P..'sub', ids[i])
  redis.call('ZREM', P..'queued', ids[i])
end
return #ids
"""
