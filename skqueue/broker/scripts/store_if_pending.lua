-- Store a meta only where the task has not got further: the key is missing or its status is one of
-- ARGV[1] (comma-separated, e.g. "PENDING,RECEIVED,RETRY,REJECTED"), then PUBLISH it. This is what
-- Celery >= 5.6 does when a revoke arrives for a task that has not run yet.
--
-- KEYS[i] celery-task-meta-<id>   ARGV[1] states   ARGV[2i] seconds to live (0: none)   ARGV[2i + 1] meta
-- Returns the number of metas written.
local allowed = {}
for state in string.gmatch(ARGV[1], '[^,]+') do allowed[state] = true end
local written = 0
for i, key in ipairs(KEYS) do
  local ttl = tonumber(ARGV[2 * i])
  local meta = ARGV[2 * i + 1]
  local current = redis.call('GET', key)
  local ok = true
  if current then
    local decoded_ok, decoded = pcall(cjson.decode, current)
    ok = decoded_ok and type(decoded) == 'table' and allowed[decoded['status']] == true
  end
  if ok then
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
