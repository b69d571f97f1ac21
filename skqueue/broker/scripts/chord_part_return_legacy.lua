-- Celery 5.3-5.6's on_chord_part_return for many finished header tasks at once, made atomic: the keys
-- those versions use (.j .t .s) and nothing else, so Celery <= 5.6 workers can share the chord.
--
-- Part i uses KEYS[3i-2 .. 3i] = .j .t .s of its chord and ARGV[3i] .. ARGV[3i + 2] = task id, encoded
-- [1, id, state, result], score (its group_index, or '+inf').
-- ARGV[1] '1' if .j is a zset ordered by group_index (else a list)   ARGV[2] seconds to keep the keys
--
-- A header task already in .j with the same score is not counted again (a redelivered copy). The part that
-- completes the chord reads the results and deletes the keys in the same call, so only one caller ever
-- sees it complete. Returns one reply per part: {0} counted, or {1, member...} the chord's results.
local ordered = ARGV[1] == '1'
local expires = tonumber(ARGV[2])

local function already_counted(jkey, tid, score)
  local found
  if ordered then
    found = redis.call('ZRANGEBYSCORE', jkey, score, score)
  else
    found = redis.call('LRANGE', jkey, 0, -1)
  end
  for _, member in ipairs(found) do
    local ok, entry = pcall(cjson.decode, member)
    if ok and type(entry) == 'table' and entry[2] == tid then
      return true
    end
  end
  return false
end

local function part_return(base, tid, value, score)
  local jkey, tkey, skey = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3]
  if not already_counted(jkey, tid, score) then
    if ordered then
      redis.call('ZADD', jkey, score, value)
    else
      redis.call('RPUSH', jkey, value)
    end
  end
  if expires > 0 then
    for _, key in ipairs({jkey, tkey, skey}) do
      redis.call('EXPIRE', key, expires)
    end
  end
  local size = redis.call('GET', skey)
  if not size then
    return {0}
  end
  local found
  if ordered then
    found = redis.call('ZRANGE', jkey, 0, -1)
  else
    found = redis.call('LRANGE', jkey, 0, -1)
  end
  if #found < tonumber(size) + tonumber(redis.call('GET', tkey) or 0) then
    return {0}
  end
  redis.call('DEL', jkey, tkey, skey)
  local reply = {1}
  for _, member in ipairs(found) do
    reply[#reply + 1] = member
  end
  return reply
end

local replies = {}
for i = 1, #KEYS / 3 do
  local arg = 2 + 3 * (i - 1)
  replies[i] = part_return(3 * (i - 1), ARGV[arg + 1], ARGV[arg + 2], ARGV[arg + 3])
end
return replies
