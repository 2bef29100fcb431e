-- Single-point POST /insert, one new point per request: wrk -s insert.lua URL -- <first timestamp ms>
-- Timestamps step by 64 per request and are offset by the thread id, so no two requests write the same point.
expected = 201
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function init(args)
  base = tonumber(args[1]) or 1700000000000
  counter = 0
  math.randomseed(1000 + (id or 0))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format('{"series":"bench.single","timestamp":%d,"value":%.3f}',
                             base + counter * 64 + (id or 0), math.random() * 100)
  return wrk.format(nil, nil, nil, body)
end
