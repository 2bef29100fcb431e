-- POST /insert of 10 points per request, a JSON array as bench.rolling's clients send (one host, ten cores, gauges
-- rounded to a tenth): wrk -s insert_batch.lua URL -- <first timestamp ms>
-- Timestamps step by 64 per request and are offset by the thread id, so no two requests write the same point.
expected = 201
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function init(args)
  base = tonumber(args[1]) or 1700000000000
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local points = {}
  for core = 0, 9 do
    points[#points + 1] = string.format('{"series":"writes,host=h%d,core=%d","timestamp":%d,"value":%.1f}',
                                        (id or 0) % 40, core, base + counter * 64 + (id or 0),
                                        20 + (counter + core * 3) % 600 / 10)
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(points, ",") .. "]")
end
