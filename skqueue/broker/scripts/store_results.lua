-- Celery's result write for many tasks at once: for each key whose stored state allows it, SET the meta
-- with its expiry and PUBLISH it on the channel named like the key, which is what a client blocked in
-- .get() waits for.
--
-- ARGV[1] the guard: "" = write unless the stored status is SUCCESS (a redelivered copy must never
--         overwrite a success, Celery's rule); otherwise a comma-separated list of states, and the meta is
--         written only where the key is missing or holds one of them (Celery >= 5.6 storing REVOKED at
--         revoke time for tasks that have not got further)
-- KEYS[i] celery-task-meta-<id>   ARGV[2i] seconds to live (0: no expiry)   ARGV[2i + 1] meta JSON
-- Returns the number of metas written.
local allowed = nil
if ARGV[1] ~= '' then
  allowed = {}
  for state in string.gmatch(ARGV[1], '[^,]+') do allowed[state] = true end
end

local function may_write(current)
  if not current then return true end
  local ok, decoded = pcall(cjson.decode, current)
  local status = ok and type(decoded) == 'table' and decoded['status'] or nil
  if allowed then return status ~= nil and allowed[status] == true end
  return status ~= 'SUCCESS'
end

local written = 0
for i, key in ipairs(KEYS) do
  local ttl = tonumber(ARGV[2 * i])
  local meta = ARGV[2 * i + 1]
  if may_write(redis.call('GET', key)) then
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
