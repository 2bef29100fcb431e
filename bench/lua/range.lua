-- One-hour range queries on random series and hours: wrk -s range.lua URL -- <file of request paths, one a line>
expected = 200
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

function init(args)
  paths = {}
  for line in io.lines(args[1]) do table.insert(paths, line) end
  math.randomseed(2000 + (id or 0))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
