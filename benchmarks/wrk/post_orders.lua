-- POST /v1/orders with a new order id per request (thread number + counter).
-- The token comes from the environment (REALORDERS_BENCH_TOKEN); the product
-- from REALORDERS_BENCH_PRODUCT. done() prints one JSON line for the driver.
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

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"non2xx":%d,"errors":%d,"p50_ms":%.2f,"p99_ms":%.2f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
