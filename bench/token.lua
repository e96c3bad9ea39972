-- wrk script: POST /v1/calls/{id}/token for real calls and their members.
--   wrk -t2 -c32 -d10s --latency -s token.lua http://127.0.0.1:PORT -- MEMBERS_FILE BEARER
-- MEMBERS_FILE has one "<call id>\t<user>" per line (bench/run.sh writes it from the API's answers).
-- Every request is pre-formatted in init(); each thread starts at its own offset.
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  local fname, bearer = args[1], args[2]
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. bearer,
  }
  reqs = {}
  for line in io.lines(fname) do
    local id, user = line:match("^([^\t]+)\t(.+)$")
    if id then
      reqs[#reqs + 1] = wrk.format("POST", "/v1/calls/" .. id .. "/token", headers,
        '{"user":"' .. user .. '","name":"Bench ' .. user .. '"}')
    end
  end
  assert(#reqs > 0, "no members in " .. fname)
  idx = (tid * 7919) % #reqs
end

function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end
