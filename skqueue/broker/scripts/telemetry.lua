-- Append finished-attempt records to the telemetry stream: one call per batch instead of one XADD per
-- task. Each record is one JSON document in field "r"; the stream is trimmed to about ARGV[1] entries.
--
-- KEYS[1] stream   ARGV[1] approximate maximum length   ARGV[2..] records (JSON)
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'r', ARGV[i])
end
return #ARGV - 1
