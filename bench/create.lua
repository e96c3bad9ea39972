-- wrk script: POST /v1/calls, every request a new call between fresh users (durable writes).
--   wrk -t2 -c32 -d10s --latency -s create.lua http://127.0.0.1:PORT -- BEARER
-- ring_timeout_s is the maximum so that no timer fires while later benchmarks run.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. args[1],
  }
  n = 0
end

function request()
  n = n + 1
  local body = string.format(
    '{"caller":"bc-%d-%d","callees":["be-%d-%d"],"kind":"video","chat_id":"bench-%d","ring_timeout_s":300}',
    tid, n, tid, n, n % 50)
  return wrk.format("POST", "/v1/calls", headers, body)
end
