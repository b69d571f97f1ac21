-- Extend the leader lease KEYS[1] to ARGV[2] milliseconds, only if it still holds our token ARGV[1].
-- Returns 1 if extended, 0 if the lease expired or belongs to another holder.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
