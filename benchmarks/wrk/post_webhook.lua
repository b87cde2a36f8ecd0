-- POST a webhook-sized body (about 450 bytes, signed-header sized headers) to the
-- receiver: its own rate, the ceiling the deliverer is compared with.
package.path = debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "?.lua;" .. package.path
local report = require("report")

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["webhook-id"] = "msg_0123456789abcdef0123456789abcdef"
  wrk.headers["webhook-timestamp"] = "1796000000"
  wrk.headers["webhook-signature"] = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
  wrk.body = '{"type":"order.shipped","timestamp":"2026-12-03T09:12:44.120000Z","data":'
    .. '{"order_id":"W-000001","customer_id":"c1","status":"shipped",'
    .. '"previous_status":"packed","seq":4,"items":[{"product_id":"KB-01","quantity":1,'
    .. '"price":89.0}],"total":89.0,"reason":null}}'
end

done = report.done
