-- wrk script for the Hubplane state hub benchmark (bench/run.sh).
--   BENCH_MODE        post  | batch | page    (POST /api/v1/events, POST .../batch, GET)
--   BENCH_TOKEN_FILE  file holding the bearer token (kept out of argv and env)
--   BENCH_BATCH_SIZE  events per batch body (default 1000)
-- The URL on wrk's command line supplies the path (and ?limit=50 for page).
-- done() prints one machine-readable line: "BENCHJSON {...}".

local mode = os.getenv("BENCH_MODE") or "page"
local token_file = os.getenv("BENCH_TOKEN_FILE")
if not token_file then
  error("BENCH_TOKEN_FILE is not set")
end
local f = assert(io.open(token_file, "r"))
local token = (f:read("*l") or ""):gsub("%s+$", "")
f:close()

local event = '{"event_type":"bench.posted","summary":"bench event","detail":{"n":1}}'

wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Accept"] = "application/json"

if mode == "post" then
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = event
elseif mode == "batch" then
  local n = tonumber(os.getenv("BENCH_BATCH_SIZE") or "1000")
  local parts = {}
  for i = 1, n do
    parts[i] = event
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"events":[' .. table.concat(parts, ",") .. ']}'
elseif mode == "page" then
  wrk.method = "GET"
else
  error("unknown BENCH_MODE " .. mode)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
