-- Atomically take up to ARGV[2] messages and record each in kombu's unacked structures.
-- There is no moment at which a taken message is neither in a queue list nor in `unacked`.
--
-- KEYS[1] unacked (hash)   KEYS[2] unacked_index (zset)   KEYS[3] dead-letter list
-- KEYS[4] this worker's owned set (skqueue's own: lets a supervisor or reaper return a dead worker's
--         deliveries at once instead of after the visibility timeout)
-- KEYS[5..] band lists, band-major: for band b (0-based) and queue q (1-based) KEYS[4 + b*nq + q]
-- ARGV[1] now (float seconds)   ARGV[2] max messages   ARGV[3] nq   ARGV[4..] queue names (cycle order)
--
-- Inside a band the queues are served round robin, one message each per round, so a busy queue
-- cannot starve its neighbours; a lower band is only touched when every queue of the bands above is
-- empty. Returns a flat array of triples {queue_index, payload, status}: status "ok", or "dead" for a
-- payload that has no delivery tag and was moved to the dead-letter list (with its reason) instead.
local now = ARGV[1]
local want = tonumber(ARGV[2])
local nq = tonumber(ARGV[3])
local nbands = (#KEYS - 4) / nq
local out = {}
local got = 0

local function track(q, key, payload)
  local ok, msg = pcall(cjson.decode, payload)
  local tag, exchange, routing_key
  if ok and type(msg) == 'table' and type(msg['properties']) == 'table' then
    local props = msg['properties']
    tag = props['delivery_tag']
    if type(props['delivery_info']) == 'table' then
      exchange = props['delivery_info']['exchange']
      routing_key = props['delivery_info']['routing_key']
    end
  end
  if type(tag) ~= 'string' or tag == '' then
    local reason = ok and 'message has no properties.delivery_tag' or 'envelope is not valid JSON'
    redis.call('LPUSH', KEYS[3], cjson.encode({reason = reason, queue = ARGV[3 + q], key = key,
                                               payload = payload, time = tonumber(now)}))
    return 'dead'
  end
  if type(exchange) ~= 'string' then exchange = '' end
  if type(routing_key) ~= 'string' then routing_key = ARGV[3 + q] end
  redis.call('HSET', KEYS[1], tag,
             '[' .. payload .. ', ' .. cjson.encode(exchange) .. ', ' .. cjson.encode(routing_key) .. ']')
  redis.call('ZADD', KEYS[2], now, tag)
  redis.call('SADD', KEYS[4], tag)
  return 'ok'
end

for b = 0, nbands - 1 do
  local active = {}
  for q = 1, nq do active[q] = q end
  while got < want and #active > 0 do
    local still = {}
    for _, q in ipairs(active) do
      if got >= want then break end
      local key = KEYS[4 + b * nq + q]
      local payload = redis.call('RPOP', key)
      if payload then
        got = got + 1
        out[#out + 1] = q
        out[#out + 1] = payload
        out[#out + 1] = track(q, key, payload)
        still[#still + 1] = q
      end
    end
    active = still
  end
  if got >= want then break end
end
return out
