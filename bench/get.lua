-- wrk script: GET a list, optionally cycling a user id through the path.
--   wrk ... -s get.lua URL -- BEARER PATH [NUSERS]
-- PATH may contain %s, replaced by "user-%05d" for user (tid*7919 + n) % NUSERS (the ids that
-- bench/seed.sql gives its 10k users).
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  headers = { ["Authorization"] = "Bearer " .. args[1] }
  path = args[2]
  nusers = tonumber(args[3] or "0")
  n = tid * 7919
  fixed = nil
  if not path:find("%%s") then fixed = wrk.format("GET", path, headers) end
end

function request()
  if fixed then return fixed end
  n = n + 1
  return wrk.format("GET", string.format(path, string.format("user-%05d", n % nusers)), headers)
end
