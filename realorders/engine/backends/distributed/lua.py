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

Longer than 400 lines on purpose: it is the Lua text itself, one script per
atomic step, kept together so that the key layout is read in one place.
"""

from __future__ import annotations

# Shared Lua helpers, prepended to the scripts that need them. A script reads each
# key it needs once (MGET/HMGET or a cached HGET) and writes what changed once at
# the end, in chunks: a batch of N orders costs a few bulk commands rather than
# ~10 N single ones, which is what Redis's CPU (not the network) spends per order.
_HELPERS = r"""
local P = ARGV[1]
local unpack = unpack or table.unpack
local CHUNK = 1000  -- arguments per bulk command stay far below Lua's stack limit
local function each_chunk(list, step, fn)
  for i = 1, #list, step do fn(unpack(list, i, math.min(i + step - 1, #list))) end
end
local function add_member(sets, key, ...)
  local s = sets[key]
  if not s then s = {}; sets[key] = s end
  for _, v in ipairs({...}) do s[#s + 1] = v end
end
local function each_key(cmd, sets, step)
  for key, args in pairs(sets) do
    each_chunk(args, step, function(...) redis.call(cmd, key, ...) end)
  end
end

local stock, stock_dirty = {held = {}, onhand = {}}, {held = {}, onhand = {}}
local function stock_of(field, pid)
  local v = stock[field][pid]
  if v == nil then
    v = tonumber(redis.call('HGET', P..field, pid) or '0')
    stock[field][pid] = v
  end
  return v
end
local function add_stock(field, pid, delta)
  stock[field][pid] = stock_of(field, pid) + delta
  stock_dirty[field][pid] = true
end

local hold_code, hold_lines, hold_dirty = {}, {}, {}
local function load_holds(oids)
  local todo = {}
  for i = 1, #oids do if hold_code[oids[i]] == nil then todo[#todo + 1] = oids[i] end end
  for i = 1, #todo, CHUNK do
    local last, keys = math.min(i + CHUNK - 1, #todo), {}
    for j = i, last do
      keys[#keys + 1] = P..'hold:'..todo[j]; keys[#keys + 1] = P..'lines:'..todo[j]
    end
    local values = redis.call('MGET', unpack(keys))
    for j = i, last do
      local k = (j - i) * 2
      hold_code[todo[j]] = values[k + 1] or 'F'
      hold_lines[todo[j]] = values[k + 2] and cjson.decode(values[k + 2]) or false
    end
  end
end
local function hold_of(oid)
  if hold_code[oid] == nil then load_holds({oid}) end
  return hold_code[oid]
end
local function hold_effect(code, lines, sign)
  -- add (sign=1) or remove (sign=-1) what a hold code does to stock
  if code == 'P' or code == 'R' then
    for i = 1, #lines, 2 do add_stock('held', lines[i], sign * lines[i+1]) end
  elseif code == 'C' then
    for i = 1, #lines, 2 do add_stock('onhand', lines[i], -sign * lines[i+1]) end
  end
end
local function move_hold(oid, lines, target)
  -- the lines a hold took are kept with it: undoing it must give back exactly those
  local current = hold_of(oid)
  if current == target then return current end
  if hold_lines[oid] then hold_effect(current, hold_lines[oid], -1) end
  hold_effect(target, lines, 1)
  hold_code[oid] = target
  hold_lines[oid] = target ~= 'F' and lines or false
  hold_dirty[oid] = true
  return current
end
local function save_holds()
  for field, pids in pairs(stock_dirty) do
    local args = {}
    for pid in pairs(pids) do args[#args + 1] = pid; args[#args + 1] = stock[field][pid] end
    each_chunk(args, 2 * CHUNK, function(...) redis.call('HSET', P..field, ...) end)
  end
  local sets, dels = {}, {}
  for oid in pairs(hold_dirty) do
    if hold_code[oid] == 'F' then
      dels[#dels + 1] = P..'hold:'..oid; dels[#dels + 1] = P..'lines:'..oid
    else
      sets[#sets + 1] = P..'hold:'..oid; sets[#sets + 1] = hold_code[oid]
      sets[#sets + 1] = P..'lines:'..oid; sets[#sets + 1] = cjson.encode(hold_lines[oid])
    end
  end
  each_chunk(sets, 2 * CHUNK, function(...) redis.call('MSET', ...) end)
  each_chunk(dels, 2 * CHUNK, function(...) redis.call('DEL', ...) end)
end
local function ids_of(list)
  local ids = {}
  for i = 1, #list do ids[i] = list[i][1] end
  return ids
end
"""

#: ARGV: prefix, then JSON [[order_id, partition, [pid, qty, pid, qty...]], ...]
#: Returns per request: {1} ok, {0, 'u', pid...} unknown, {0, 's', pid, want, avail, ...}.
RESERVE = (
    _HELPERS
    + r"""
local requests = cjson.decode(ARGV[2])
load_holds(ids_of(requests))
local known = {}
local function is_known(pid)
  if known[pid] == nil then
    known[pid] = redis.call('HEXISTS', P..'products', pid) == 1
      and redis.call('HEXISTS', P..'onhand', pid) == 1
  end
  return known[pid]
end
local out, prov = {}, {}
for r = 1, #requests do
  local oid, part, lines = requests[r][1], requests[r][2], requests[r][3]
  local current = hold_of(oid)
  if current == 'P' or current == 'R' or current == 'C' then
    out[r] = {1}
  else
    local unknown, short = {}, {}
    for i = 1, #lines, 2 do
      if not is_known(lines[i]) then
        unknown[#unknown + 1] = lines[i]
      else
        local avail = stock_of('onhand', lines[i]) - stock_of('held', lines[i])
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
      add_member(prov, P..'prov:'..part, oid)
      out[r] = {1}
    end
  end
end
save_holds()
each_key('SADD', prov, CHUNK)
return out
"""
)

#: ARGV: prefix, JSON [[order_id, partition, target, [pid, qty, ...]], ...]
#: Provisional release ('F') or consumption ('C') by an engine batch. Only a
#: held order ('P' or 'R') gives stock back or ships it: the port's "no-op if
#: it holds nothing", and a consumed order is never released.
SETTLE = (
    _HELPERS
    + r"""
local requests = cjson.decode(ARGV[2])
load_holds(ids_of(requests))
local prov = {}
for r = 1, #requests do
  local oid, part, target, lines = requests[r][1], requests[r][2], requests[r][3], requests[r][4]
  local current = hold_of(oid)
  if current == 'P' or current == 'R' then
    move_hold(oid, lines, target)
    add_member(prov, P..'prov:'..part, oid)
  end
end
save_holds()
each_key('SADD', prov, CHUNK)
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

#: ARGV: prefix, JSON {"orders": [[partition, id, status, version, arrival, customer_id,
#:                                   created_at, updated_at, terminal_at, [pid, qty, ...]], ...],
#:                       "events": [[order_id, seq], ...],
#:                       "proj": {partition: next_events_offset}, "now": epoch},
#:       then each order's row (JSON), then each event (JSON), in the same order.
#: Projects one committed engine batch: order rows, indexes, counters, history,
#: the global tail, holds made definitive, and how far each partition is projected.
#: Idempotent: an order row or event at or below the stored version is skipped.
#: Rows and events are stored as given (never parsed here); ``ver`` keeps each
#: order's "version:status", all the projection needs of the row it replaces.
#: An event's JSON carries no order id (``records.encode_event``): a tail entry
#: keeps its chunk's ids beside the events (``o``, one ``cjson.encode`` per chunk).
PROJECT = (
    _HELPERS
    + r"""
local batch = cjson.decode(ARGV[2])
local open = {pending=true, reserved=true, backordered=true, packed=true, shipped=true}
local target_of = {reserved='R', packed='R', shipped='C', delivered='C'}
local n, ids, olds = #batch.orders, {}, {}
for i = 1, n do ids[i] = batch.orders[i][2] end
for i = 1, n, CHUNK do
  local last = math.min(i + CHUNK - 1, n)
  local values = redis.call('HMGET', P..'ver', unpack(ids, i, last))
  for k = 1, last - i + 1 do olds[i + k - 1] = values[k] end
end
load_holds(ids)
local versions, rows, vers, zadd, zrem, srem, counts = {}, {}, {}, {}, {}, {}, {}
local first_created, last_terminal
for i = 1, n do
  local part, id, status, version, arrival, customer, created, updated, terminal, lines =
    unpack(batch.orders[i])
  local old_version, old_status = 0, nil
  if olds[i] then
    local sep = string.find(olds[i], ':', 1, true)
    old_version = tonumber(string.sub(olds[i], 1, sep - 1))
    old_status = string.sub(olds[i], sep + 1)
  end
  versions[id] = old_version
  if not old_status or old_version < version then
    rows[#rows + 1] = P..'o:'..id; rows[#rows + 1] = ARGV[2 + i]
    vers[#vers + 1] = id; vers[#vers + 1] = version..':'..status
    if old_status then
      counts[old_status] = (counts[old_status] or 0) - 1
      add_member(zrem, P..'st:'..old_status, id)
      if open[old_status] then add_member(zrem, P..'upd:'..old_status, id) end
      if old_status == 'backordered' then
        for j = 1, #lines, 2 do add_member(zrem, P..'bo:'..lines[j], id) end
      end
    else
      add_member(zadd, P..'all', arrival, id)
      add_member(zadd, P..'ids', 0, id)
      add_member(zadd, P..'cust:'..customer, arrival, id)
      add_member(zrem, P..'queued', id)
      if not first_created or created < first_created then first_created = created end
    end
    counts[status] = (counts[status] or 0) + 1
    add_member(zadd, P..'st:'..status, arrival, id)
    if open[status] then add_member(zadd, P..'upd:'..status, updated, id) end
    if status == 'backordered' then
      for j = 1, #lines, 2 do add_member(zadd, P..'bo:'..lines[j], arrival, id) end
    end
    if terminal ~= cjson.null and terminal ~= nil then
      add_member(zadd, P..'fin', terminal, id)
      add_member(zadd, P..'lat', terminal - created, id)
      if not last_terminal or terminal > last_terminal then last_terminal = terminal end
    end
    move_hold(id, lines, target_of[status] or 'F')
  end
  add_member(srem, P..'prov:'..part, id)
end
each_chunk(rows, 2 * CHUNK, function(...) redis.call('MSET', ...) end)
each_chunk(vers, 2 * CHUNK, function(...) redis.call('HSET', P..'ver', ...) end)
-- removals first: an order that keeps its status is removed, then added back
each_key('ZREM', zrem, CHUNK)
each_key('ZADD', zadd, 2 * CHUNK)
each_key('SREM', srem, CHUNK)
for status, delta in pairs(counts) do
  if delta ~= 0 then redis.call('HINCRBY', P..'counts', status, delta) end
end
local meta = redis.call('HMGET', P..'meta', 'first_created', 'last_terminal')
if first_created and (not meta[1] or tonumber(meta[1]) > first_created) then
  redis.call('HSET', P..'meta', 'first_created', first_created)
end
if last_terminal and (not meta[2] or tonumber(meta[2]) < last_terminal) then
  redis.call('HSET', P..'meta', 'last_terminal', last_terminal)
end
save_holds()
-- history per order and the global tail: entry <last seq>-1 holds a chunk of events
local tail_seq = tonumber(redis.call('GET', P..'tailseq') or '0')
local pushes, chunk, chunk_ids, projected = {}, {}, {}, 0
local function add_tail_entry()
  tail_seq = tail_seq + #chunk
  redis.call('XADD', P..'tail', 'MINID', '~', math.max(0, tail_seq - 200000),
    tail_seq..'-1', 'e', '['..table.concat(chunk, ',')..']', 'o', cjson.encode(chunk_ids))
  chunk, chunk_ids = {}, {}
end
for i = 1, #batch.events do
  local oid, seq, raw = batch.events[i][1], batch.events[i][2], ARGV[2 + n + i]
  if seq > (versions[oid] or 0) then
    add_member(pushes, P..'ev:'..oid, raw)
    chunk[#chunk + 1] = raw
    chunk_ids[#chunk] = oid
    projected = projected + 1
    if #chunk == 200 then add_tail_entry() end
  end
end
if #chunk > 0 then add_tail_entry() end
each_key('RPUSH', pushes, CHUNK)
redis.call('SET', P..'tailseq', tail_seq)
if projected > 0 then
  local second = P..'evs:'..math.floor(batch.now)
  redis.call('INCRBY', second, projected)
  redis.call('EXPIRE', second, 7200)
end
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
load_holds(ids_of(items))
local moved, done = 0, {}
for i = 1, #items do
  local oid, target, lines = items[i][1], items[i][2], items[i][3]
  if move_hold(oid, lines, target) ~= target then moved = moved + 1 end
  done[#done + 1] = oid
end
save_holds()
each_chunk(done, CHUNK, function(...) redis.call('SREM', P..'prov:'..part, ...) end)
return moved
"""
)

#: ARGV: prefix, now, JSON [[order_id, digest_hex], ...], then each order's body (JSON).
#: Intake: claims ids idempotently and hands out dense positions; ``sub`` keeps
#: ``[position, at, body]`` for what no engine has projected yet. Bodies travel as
#: arguments of their own so that Lua never parses or re-escapes them.
#: Returns per order: {'a', position} accepted, {'d'} duplicate, {'c'} conflict.
CLAIM = r"""
local P, now = ARGV[1], ARGV[2]
local unpack = unpack or table.unpack
local orders = cjson.decode(ARGV[3])
local n, seen = #orders, {}
for i = 1, n, 1000 do
  local ids = {}
  for j = i, math.min(i + 999, n) do ids[#ids + 1] = orders[j][1] end
  local digests = redis.call('HMGET', P..'digest', unpack(ids))
  for k = 1, #ids do
    if digests[k] then seen[ids[k]] = digests[k] end
  end
end
local out, accepted = {}, {}
for i = 1, n do
  local oid, digest = orders[i][1], orders[i][2]
  if seen[oid] then
    out[i] = {seen[oid] == digest and 'd' or 'c'}
  else
    seen[oid] = digest
    accepted[#accepted + 1] = i
  end
end
if #accepted > 0 then
  local position = redis.call('INCRBY', P..'seq', #accepted) - #accepted
  local digest_args, sub_args, queued_args = {}, {}, {}
  for k = 1, #accepted do
    local i = accepted[k]
    local oid, digest = orders[i][1], orders[i][2]
    position = position + 1
    out[i] = {'a', position}
    digest_args[#digest_args + 1] = oid; digest_args[#digest_args + 1] = digest
    sub_args[#sub_args + 1] = oid
    sub_args[#sub_args + 1] = '['..position..','..now..','..ARGV[3 + i]..']'
    queued_args[#queued_args + 1] = position; queued_args[#queued_args + 1] = oid
  end
  for i = 1, #digest_args, 2000 do
    local last = math.min(i + 1999, #digest_args)
    redis.call('HSET', P..'digest', unpack(digest_args, i, last))
    redis.call('HSET', P..'sub', unpack(sub_args, i, last))
    redis.call('ZADD', P..'queued', unpack(queued_args, i, last))
    redis.call('HSET', P..'unsent', unpack(digest_args, i, last))
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
  redis.call('ZREM', P..'queued', ids[i]); redis.call('HDEL', P..'unsent', ids[i])
end
return #ids
"""
