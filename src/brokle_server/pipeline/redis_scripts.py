"""Lua scripts for the Redis Streams queue; each runs atomically on the server.

Keys share one hash tag (``{base}``) so the scripts also run on Redis Cluster. The keys:

    stream    the queue: one entry per enqueued message, field ``d`` = payload
    bytes     payload bytes in the stream (backpressure; the entry count comes from XLEN)
    leases    lease id -> comma-separated entry ids, recorded before the writer inserts
    lease_of  entry id -> lease id, to find a reclaimed entry's whole lease
    attempts  lease id -> failed attempts (failed inserts + reclaims from dead consumers)
    errors    lease id -> last error
    dead      dead-letter stream: fields lease, id, error, attempts, d
"""

from __future__ import annotations

# A helper prepended to scripts: call a command with a fixed prefix and a long id list in
# slices, because unpack() of thousands of values overflows Lua's C stack.
_CHUNKED = """
local function chunked(prefix, ids, suffix)
  local i = 1
  while i <= #ids do
    local args = {}
    for _, v in ipairs(prefix) do args[#args + 1] = v end
    for j = i, math.min(i + 499, #ids) do args[#args + 1] = ids[j] end
    for _, v in ipairs(suffix) do args[#args + 1] = v end
    redis.call(unpack(args))
    i = i + 500
  end
end
"""

# KEYS: stream, bytes. ARGV: max_entries, max_bytes, payload.
# Returns the new entry id, or {entries, bytes} when the queue is full.
ENQUEUE = """
local entries = redis.call('XLEN', KEYS[1])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local size = string.len(ARGV[3])
if entries >= tonumber(ARGV[1]) or used + size > tonumber(ARGV[2]) then
  return {entries, used}
end
redis.call('INCRBY', KEYS[2], size)
return redis.call('XADD', KEYS[1], '*', 'd', ARGV[3])
"""

# KEYS: stream, leases, lease_of. ARGV: group, consumer, lease id prefix, entry ids...
# Records a lease from the entries this consumer still owns and no lease holds yet (another
# consumer may have reclaimed some while they sat in our buffer), resets their idle time,
# and returns the ids kept. The lease id is the prefix + the first kept id.
RECORD_LEASE = (
    _CHUNKED
    + """
local kept = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[3], id) == 0 then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    if p[1] and p[1][2] == ARGV[2] then kept[#kept + 1] = id end
  end
end
if #kept == 0 then return kept end
local lease = ARGV[3] .. kept[1]
redis.call('HSET', KEYS[2], lease, table.concat(kept, ','))
chunked({'XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0'}, kept, {'JUSTID'})
for _, id in ipairs(kept) do redis.call('HSET', KEYS[3], id, lease) end
return kept
"""
)

# KEYS: stream, leases, lease_of, attempts. ARGV: group, consumer, min idle ms, count.
# Claims entries idle longer than the timeout in *other* consumers (theirs died; our own idle
# entries are leases we are still working on or entries in our read buffer). An entry that
# belongs to a recorded lease brings the whole lease along, so it replays as the same group,
# and the lease's attempts go up by one. Returns {{lease, attempts, ...}, {orphan ids...}}.
RECLAIM = (
    _CHUNKED
    + """
local leases, orphans, seen = {}, {}, {}
local start, found, limit = '-', 0, tonumber(ARGV[4])
for _ = 1, 20 do
  local page = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], start, '+', 500)
  for _, p in ipairs(page) do
    local id = p[1]
    if p[2] ~= ARGV[2] then
      local lease = redis.call('HGET', KEYS[3], id)
      local members = lease and redis.call('HGET', KEYS[2], lease)
      if members then
        if not seen[lease] then
          seen[lease] = true
          local ids = {}
          for m in string.gmatch(members, '[^,]+') do ids[#ids + 1] = m end
          chunked({'XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0'}, ids, {'JUSTID'})
          leases[#leases + 1] = lease
          leases[#leases + 1] = redis.call('HINCRBY', KEYS[4], lease, 1)
          found = found + #ids
        end
      else
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0', id, 'JUSTID')
        orphans[#orphans + 1] = id
        found = found + 1
      end
    end
  end
  if #page < 500 or found >= limit then break end
  start = '(' .. page[#page][1]
end
return {leases, orphans}
"""
)

# KEYS: stream, leases, lease_of, attempts. ARGV: group, consumer, entry ids...
# Resets the idle time of a lease's entries if this consumer still owns them.
KEEPALIVE = (
    _CHUNKED
    + """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not (p[1] and p[1][2] == ARGV[2]) then return 0 end
local ids = {}
for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
chunked({'XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0'}, ids, {'JUSTID'})
return 1
"""
)

# KEYS: stream, bytes, leases, lease_of, attempts, errors, dead.
# ARGV: group, lease id, dead-letter flag ('1'/'0'), error, then entry id, size pairs.
# Acknowledges and deletes the entries (the stream holds only unacknowledged work, so XLEN
# is the backlog), copying them to the dead-letter stream first when flagged. Entries that
# another consumer already acknowledged are skipped, so settling twice changes nothing.
SETTLE = """
local freed, settled = 0, 0
local attempts = redis.call('HGET', KEYS[5], ARGV[2]) or '0'
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('XACK', KEYS[1], ARGV[1], id) == 1 then
    if ARGV[3] == '1' then
      local entry = redis.call('XRANGE', KEYS[1], id, id)[1]
      if entry then
        redis.call('XADD', KEYS[7], '*', 'lease', ARGV[2], 'id', id, 'error', ARGV[4],
                   'attempts', attempts, 'd', entry[2][2])
      end
    end
    freed = freed + redis.call('XDEL', KEYS[1], id) * tonumber(ARGV[i + 1])
    settled = settled + 1
  end
  redis.call('HDEL', KEYS[4], id)
end
if freed > 0 then redis.call('DECRBY', KEYS[2], freed) end
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[2])
redis.call('HDEL', KEYS[6], ARGV[2])
return settled
"""

# KEYS: attempts, errors. ARGV: lease id, error. Returns the attempts so far.
NACK = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
"""
