-- embed.lua: wrk script posting one short sentence to /v1/embed.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"texts":["今天天气怎么样，我们出去走走吧"]}'

done = function(summary, latency, requests)
  io.write(string.format('{"requests":%d,"seconds":%.2f,"req_per_s":%.1f,"p50_ms":%.1f,"p99_ms":%.1f,"errors":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
