-- wrk script for bench/journal-scale.sh: GET requests spread over a list of paths.
--   BENCH_TOKEN_FILE  file holding the bearer token (kept out of argv and env)
--   BENCH_PATHS_FILE  one request path per line (e.g. /api/v1/events?event_type=x&limit=50);
--                     each request takes a random line
-- done() prints one machine-readable line: "BENCHJSON {...}" (latencies in microseconds).

local token_file = os.getenv("BENCH_TOKEN_FILE")
local paths_file = os.getenv("BENCH_PATHS_FILE")
if not token_file or not paths_file then
  error("BENCH_TOKEN_FILE and BENCH_PATHS_FILE must be set")
end
local f = assert(io.open(token_file, "r"))
local token = (f:read("*l") or ""):gsub("%s+$", "")
f:close()

local paths = {}
for line in io.lines(paths_file) do
  if line ~= "" then
    paths[#paths + 1] = line
  end
end
if #paths == 0 then
  error("no paths in " .. paths_file)
end

wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Accept"] = "application/json"

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() + (seed or 0) * 7919)
end

function request()
  return wrk.format(nil, paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p95_us":%d,"lat_p99_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
