-- Move dead letters back to queues: each record is removed from the dead-letter list and its payload
-- pushed (LPUSH: the tail, like a new message) in one atomic step, so a letter is never both lost and
-- never in two places.
--
-- KEYS[1] dead-letter list   KEYS[1 + i] destination list of the i-th letter
-- ARGV[2i - 1] the record exactly as stored   ARGV[2i] the payload to push
-- Returns the number moved.
local moved = 0
for i = 1, #KEYS - 1 do
  if redis.call('LREM', KEYS[1], 1, ARGV[2 * i - 1]) == 1 then
    redis.call('LPUSH', KEYS[1 + i], ARGV[2 * i])
    moved = moved + 1
  end
end
return moved
