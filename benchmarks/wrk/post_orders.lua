-- POST /v1/orders with a new order id per request (thread number + counter).
-- The token comes from the environment (REALORDERS_BENCH_TOKEN); the product
-- from REALORDERS_BENCH_PRODUCT. done() prints one JSON line for the driver.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua;" .. package.path
local report = require("report")
local threads = {}
local token = os.getenv("REALORDERS_BENCH_TOKEN")
local product = os.getenv("REALORDERS_BENCH_PRODUCT") or "KB-01"
local run = os.getenv("REALORDERS_BENCH_RUN") or "r"

function setup(thread)
  thread:set("number", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. token
end

function request()
  counter = counter + 1
  local id = run .. "-" .. number .. "-" .. counter
  local body = '{"id":"' .. id .. '","customer_id":"bench","items":[{"product_id":"'
    .. product .. '","quantity":1}]}'
  return wrk.format(nil, "/v1/orders", nil, body)
end

done = report.done
