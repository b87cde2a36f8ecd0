-- What every script's done() prints: one JSON line the Python driver reads.
-- Loaded with require("report") after the script puts its own folder on package.path.
local report = {}

function report.done(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"non2xx":%d,"errors":%d,"p50_ms":%.2f,"p99_ms":%.2f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end

return report
