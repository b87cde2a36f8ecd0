-- GET of one path (wrk's default request) with the bearer token; done() prints JSON.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua;" .. package.path
local report = require("report")
local token = os.getenv("REALORDERS_BENCH_TOKEN")

function init(args)
  if token then wrk.headers["Authorization"] = "Bearer " .. token end
end

done = report.done
