-- GET of one path (wrk's default request) with the bearer token; done() prints JSON.
local token = os.getenv("REALORDERS_BENCH_TOKEN")

function init(args)
  if token then wrk.headers["Authorization"] = "Bearer " .. token end
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"non2xx":%d,"errors":%d,"p50_ms":%.2f,"p99_ms":%.2f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
