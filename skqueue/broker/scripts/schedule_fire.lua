-- Publish one firing of a schedule entry, at most once, and only from the lease holder: check the lease
-- token, claim the firing key, push the Celery message and update the entry's state, all in one step.
--
-- KEYS[1] leader lease   KEYS[2] firing key   KEYS[3] queue (band) list   KEYS[4] entry state hash
-- ARGV[1] our lease token; '' for an operator's trigger (no lease, no firing key, no pause check)
-- ARGV[2] firing key TTL (s)   ARGV[3] message   ARGV[4] task id   ARGV[5] fire time (epoch s)
-- ARGV[6] next run (epoch s; '' keeps it)   ARGV[7] missed firings to add   ARGV[8] status
-- ARGV[9] now (epoch s)
-- Returns 1 pushed, 0 already fired (the state still advances), -1 not the lease holder (nothing
-- changed), -2 the entry is paused (not pushed; the state advances).
local manual = ARGV[1] == ''
if not manual and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end

local function advance()
  if ARGV[6] ~= '' then
    -- next_run only moves forward, whoever writes it
    local current = tonumber(redis.call('HGET', KEYS[4], 'next_run'))
    if not current or tonumber(ARGV[6]) > current then
      redis.call('HSET', KEYS[4], 'next_run', ARGV[6])
    end
  end
  if tonumber(ARGV[7]) > 0 then
    redis.call('HINCRBY', KEYS[4], 'missed', ARGV[7])
  end
end

if not manual then
  if redis.call('HGET', KEYS[4], 'paused') == '1' then
    redis.call('HINCRBY', KEYS[4], 'skipped', 1)
    advance()
    return -2
  end
  if not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'EX', ARGV[2]) then
    advance()
    return 0
  end
end
redis.call('LPUSH', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[4], 'last_run', ARGV[5], 'last_sent', ARGV[9], 'last_status', ARGV[8],
           'last_task_id', ARGV[4])
redis.call('HINCRBY', KEYS[4], 'run_count', 1)
advance()
return 1
