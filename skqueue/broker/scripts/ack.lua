-- Ack deliveries this worker still owns: remove them from kombu's unacked structures and the owned set.
-- A delivery a reaper already returned to its queue (its worker was thought dead: a blocked event loop, a
-- network cut) has left the owned set; acking it now would delete the unacked entry of whoever took it
-- next, and a crash of that worker would then lose the message. Such a tag is left alone.
--
-- KEYS[1] unacked   KEYS[2] unacked_index   KEYS[3] owned set   ARGV delivery tags
-- Returns the number acked.
local acked = 0
for _, tag in ipairs(ARGV) do
  if redis.call('SREM', KEYS[3], tag) == 1 then
    redis.call('ZREM', KEYS[2], tag)
    redis.call('HDEL', KEYS[1], tag)
    acked = acked + 1
  end
end
return acked
