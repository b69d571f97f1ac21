-- Celery's result write for many tasks at once: for each key, unless the stored status is already
-- SUCCESS (a redelivered copy must never overwrite a success), SET the meta with its expiry and
-- PUBLISH it on the channel named like the key, which is what a client blocked in .get() waits for.
--
-- KEYS[i] celery-task-meta-<id>   ARGV[2i - 1] seconds to live (0: no expiry)   ARGV[2i] meta JSON
-- Returns the number of metas written.
local written = 0
for i, key in ipairs(KEYS) do
  local ttl = tonumber(ARGV[2 * i - 1])
  local meta = ARGV[2 * i]
  local current = redis.call('GET', key)
  local keep = false
  if current then
    local ok, decoded = pcall(cjson.decode, current)
    keep = ok and type(decoded) == 'table' and decoded['status'] == 'SUCCESS'
  end
  if not keep then
    if ttl > 0 then
      redis.call('SET', key, meta, 'EX', ttl)
    else
      redis.call('SET', key, meta)
    end
    redis.call('PUBLISH', key, meta)
    written = written + 1
  end
end
return written
