-- After a chord's body is published (or its failure stored): Celery 5.7's CHORD_CLEANUP_LUA for many
-- chords. Where the claim is still ours, delete the bookkeeping and leave a "done" marker so a late
-- duplicate of a header task cannot fire the chord again.
--
-- Chord i uses KEYS[5i-4 .. 5i] = .c .j .t .s .d and ARGV[i + 1] = its claim token.
-- ARGV[1] seconds the "done" marker lasts. Returns the number of chords released.
local done_seconds = tonumber(ARGV[1])
local released = 0
for i = 1, #KEYS / 5 do
  local base = 5 * (i - 1)
  if redis.call('GET', KEYS[base + 1]) == ARGV[i + 1] then
    redis.call('DEL', KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5])
    redis.call('SET', KEYS[base + 1], 'done', 'EX', done_seconds)
    released = released + 1
  end
end
return released
