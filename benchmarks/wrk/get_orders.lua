-- GET /v1/orders/{id} of a random order among REALORDERS_BENCH_N orders named
-- REALORDERS_BENCH_PREFIX + 9 digits (the benchmarks' workload ids); done() prints JSON.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua;" .. package.path
local report = require("report")
local token = os.getenv("REALORDERS_BENCH_TOKEN")
local n = tonumber(os.getenv("REALORDERS_BENCH_N") or "1000")
local prefix = os.getenv("REALORDERS_BENCH_PREFIX") or "B"

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  return wrk.format("GET", string.format("/v1/orders/%s%09d", prefix, math.random(0, n - 1)))
end

done = report.done
