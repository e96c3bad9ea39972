-- wrk script: POST signed LiveKit webhooks from a file written by bench/gen-webhooks.mjs
-- (one "<jwt>\t<json body>" per line), as the LiveKit server sends them: the bare JWT in
-- Authorization, Content-Type application/webhook+json.
--   wrk -t2 -c32 -d10s --latency -s webhook.lua http://127.0.0.1:PORT -- FILE NTHREADS
-- Thread k of NTHREADS sends lines k, k+NTHREADS, ... so no two threads send the same event id
-- (and, with the generator's layout, each session's join before its leave). Lines are read
-- lazily, so init stays instant however big the file. done() prints how many lines were sent and
-- how often a thread wrapped around the file (wraps > 0: duplicate ids were sent, which the
-- server acknowledges without storing them again, so the run no longer measures only new events).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  fname = args[1] or "webhooks.txt"
  nthreads = tonumber(args[2] or "1")
  fh = assert(io.open(fname, "r"))
  wraps = 0
  sent = 0
  headers = { ["Content-Type"] = "application/webhook+json" }
end

local function next_line()
  local line = fh:read("*l")
  if line == nil then
    wraps = wraps + 1
    fh:seek("set", 0)
    line = fh:read("*l")
  end
  return line
end

function request()
  local line
  for k = 0, nthreads - 1 do
    local l = next_line()
    if k == tid then line = l end
  end
  local tab = line:find("\t", 1, true)
  sent = sent + 1
  headers["Authorization"] = line:sub(1, tab - 1)
  return wrk.format("POST", "/webhooks/livekit", headers, line:sub(tab + 1))
end

function done(summary, latency, requests)
  local w, s = 0, 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wraps") or 0)
    s = s + (t:get("sent") or 0)
  end
  io.write(string.format("webhook-lua: sent=%d wraps=%d\n", s, w))
end
