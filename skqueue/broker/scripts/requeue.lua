-- Move deliveries from kombu's unacked structures back to queue lists, one atomic step for all.
-- A tag is only moved while it is still in `unacked` and, when ARGV[2] is a number, while its
-- unacked_index score is still <= ARGV[2] (so a lease refreshed or a message acked since the caller
-- looked is left alone). An index entry whose hash field is gone is dropped, as kombu does.
--
-- KEYS[1] unacked   KEYS[2] unacked_index   KEYS[3] owned set the tags leave (skqueue's; may not exist)
-- KEYS[3 + i] destination list of the i-th message
-- ARGV[1] "head" (RPUSH: next to be consumed) or "tail" (LPUSH)   ARGV[2] score ceiling or "inf"
-- ARGV[2 + 2i - 1] tag, ARGV[2 + 2i] payload to push (already marked redelivered), or '' to drop an
-- index entry whose hash field is gone
-- Returns the number of messages moved.
local push = ARGV[1] == 'head' and 'RPUSH' or 'LPUSH'
local ceiling = ARGV[2] ~= 'inf' and tonumber(ARGV[2]) or nil
local moved = 0
for i = 1, #KEYS - 3 do
  local tag = ARGV[1 + 2 * i]
  local payload = ARGV[2 + 2 * i]
  local eligible = true
  if ceiling then
    local score = redis.call('ZSCORE', KEYS[2], tag)
    eligible = score and tonumber(score) <= ceiling
  end
  if eligible then
    if payload == '' then
      -- only an orphaned index entry to drop, and only if its hash field is really gone
      if redis.call('HEXISTS', KEYS[1], tag) == 0 then
        redis.call('ZREM', KEYS[2], tag)
      end
    else
      if redis.call('HDEL', KEYS[1], tag) == 1 then
        redis.call(push, KEYS[3 + i], payload)
        moved = moved + 1
      end
      redis.call('ZREM', KEYS[2], tag)
      redis.call('SREM', KEYS[3], tag)
    end
  end
end
return moved
