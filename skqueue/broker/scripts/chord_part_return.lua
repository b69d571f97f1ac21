-- Celery 5.7's on_chord_part_return (CHORD_PART_RETURN_LUA) for many finished header tasks at once, and
-- the read of the chord's results when this call completes it.
--
-- Part i uses KEYS[6i-5 .. 6i] = .j .t .s .d <group key> .c of its chord and ARGV[4i + 2 .. 4i + 5] =
-- task id, encoded [1, id, state, result], score (its group_index, or '+inf'), claim token.
-- ARGV[1] '1' if .j is a zset ordered by group_index (else a list in finishing order)
-- ARGV[2] seconds to keep .j .t .s .d (0: no expiry)   ARGV[3] seconds to keep the group key (0: leave it)
-- ARGV[4] seconds a claim lasts   ARGV[5] '1': a "done" marker is stale while .s exists
--
-- A header task counts once per "<task id>:<score>", however often it is delivered. The part that
-- completes the chord claims .c for its token (SET NX), so one caller publishes the body. The token names
-- the delivery, so the same delivery finds its claim again: a settlement retried after a lost reply, or
-- the delivery redelivered after its worker died between claiming and publishing.
--
-- Returns one reply per part: {-1} the chord already fired, {0} counted, or {1, member...} this call
-- claimed the chord and these are its results in order.
local ordered = ARGV[1] == '1'
local expires, group_expires = tonumber(ARGV[2]), tonumber(ARGV[3])
local claim_seconds, stale_done = tonumber(ARGV[4]), ARGV[5] == '1'
local claimed_here = {}

local function count(jkey)
  if ordered then
    return redis.call('ZCOUNT', jkey, '-inf', '+inf')
  end
  return redis.call('LLEN', jkey)
end

local function claim(ckey, token)
  if claimed_here[ckey] then
    return false  -- another part in this call already completed this chord
  end
  local won = redis.call('SET', ckey, token, 'NX', 'EX', claim_seconds) or redis.call('GET', ckey) == token
  claimed_here[ckey] = won
  return won
end

local function results(jkey)
  local found
  if ordered then
    found = redis.call('ZRANGE', jkey, 0, -1)
  else
    found = redis.call('LRANGE', jkey, 0, -1)
  end
  local reply = {1}
  for _, member in ipairs(found) do
    reply[#reply + 1] = member
  end
  return reply
end

local function part_return(base, tid, value, score, token)
  local jkey, tkey, skey, dkey = KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4]
  local gkey, ckey = KEYS[base + 5], KEYS[base + 6]
  if redis.call('GET', ckey) == 'done' then
    -- A Celery <= 5.6 client re-applying a frozen chord stores .s again without clearing the marker
    -- (5.7's set_chord_size deletes it): .s existing next to "done" means a new run.
    if stale_done and redis.call('EXISTS', skey) == 1 then
      redis.call('DEL', ckey)
    else
      return {-1}
    end
  end
  if redis.call('SADD', dkey, tid .. ':' .. score) == 1 then
    if ordered then
      redis.call('ZADD', jkey, score, value)
    else
      redis.call('RPUSH', jkey, value)
    end
  end
  local ready = count(jkey)
  if expires > 0 then
    for _, key in ipairs({jkey, tkey, skey, dkey}) do
      redis.call('EXPIRE', key, expires)
    end
    if group_expires > 0 then
      redis.call('EXPIRE', gkey, group_expires)
    end
  end
  local size = redis.call('GET', skey)
  if not size then
    return {0}
  end
  local total = tonumber(size) + tonumber(redis.call('GET', tkey) or 0)
  if ready < total or not claim(ckey, token) then
    return {0}
  end
  return results(jkey)
end

local replies = {}
for i = 1, #KEYS / 6 do
  local arg = 5 + 4 * (i - 1)
  replies[i] = part_return(6 * (i - 1), ARGV[arg + 1], ARGV[arg + 2], ARGV[arg + 3], ARGV[arg + 4])
end
return replies
