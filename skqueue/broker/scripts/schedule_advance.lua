-- Move a schedule entry on without publishing: first sight, a changed schedule, missed or skipped
-- firings, pause and resume.
--
-- KEYS[1] leader lease   KEYS[2] entry state hash
-- ARGV[1] our lease token; '' for an operator command (no lease check)
-- ARGV[2] next run (epoch s; '' keeps it). It only moves forward, unless ARGV[6] names a schedule
--         different from the stored one: then the entry starts over from ARGV[2].
-- ARGV[3] missed firings to add   ARGV[4] skipped firings to add   ARGV[5] status ('' keeps it)
-- ARGV[6] the schedule's description ('' keeps it)   ARGV[7] paused: '1', '0' or '' (keeps it)
-- Returns 1, or -1 if ARGV[1] is not the lease holder (nothing changed).
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local restart = ARGV[6] ~= '' and redis.call('HGET', KEYS[2], 'schedule') ~= ARGV[6]
if restart then
  redis.call('HSET', KEYS[2], 'schedule', ARGV[6])
end
if ARGV[2] ~= '' then
  local current = tonumber(redis.call('HGET', KEYS[2], 'next_run'))
  if restart or not current or tonumber(ARGV[2]) > current then
    redis.call('HSET', KEYS[2], 'next_run', ARGV[2])
  end
end
if tonumber(ARGV[3]) > 0 then
  redis.call('HINCRBY', KEYS[2], 'missed', ARGV[3])
end
if tonumber(ARGV[4]) > 0 then
  redis.call('HINCRBY', KEYS[2], 'skipped', ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], 'last_status', ARGV[5])
end
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[2], 'paused', ARGV[7])
end
return 1
