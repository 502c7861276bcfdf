#!/usr/bin/env bash
# Hubplane benchmark: raw PostgreSQL limits vs the state hub's API, on loopback.
# Prints every figure as it is measured, then a table (figure, value, baseline,
# ratio, target, PASS/MISS), also written to bench/results/latest.txt.
# See bench/README.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

usage() {
  cat <<'EOF'
Usage: bench/run.sh [--duration SECONDS] [--quick] [--raw-only] [--no-build] [--no-fanout]

  --duration S   length of every pgbench/wrk run (default 15; 5 with --quick)
  --quick        smoke run: 5 s runs, 200k events instead of 1M, 3 cold starts
  --raw-only     only the raw PostgreSQL baselines (no build, no state hub)
  --no-build     do not run cargo; use the existing target/release/state-hub
  --no-fanout    skip the journal fan-out to NATS JetStream (needs Debian's nats-server)

Environment:
  HUB_BENCH_DATABASE_URL  PostgreSQL server to use, superuser, loopback only
                          (default postgres://postgres@127.0.0.1:5432/postgres)
  BENCH_STATE_HUB_BIN     state-hub binary (default <target>/release/state-hub)
EOF
}

DURATION=""
QUICK=0
RAW_ONLY=0
BUILD=1
FANOUT=1
while (($#)); do
  case $1 in
    --duration) DURATION=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --duration=*) DURATION=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --raw-only) RAW_ONLY=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --no-fanout) FANOUT=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
if ((QUICK)); then
  DURATION=${DURATION:-5}; EVENTS=200000; COLD_RUNS=3; FANOUT_LIVE=50000
else
  DURATION=${DURATION:-15}; EVENTS=1000000; COLD_RUNS=5; FANOUT_LIVE=200000
fi
# events queued while NATS is away, then published by a freshly started hub
FANOUT_QUEUED=100000
((RAW_ONLY)) && FANOUT=0
if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 1 || DURATION > 600)); then
  echo "run.sh: --duration must be a whole number of seconds, 1..600" >&2
  exit 2
fi

BASE_URL=${HUB_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# The hub takes HUB_* overrides from its environment: keep ours (and any
# others) away from it so it runs on exactly the config written below.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^HUB_' || true)
unset JOURNAL_STREAM RUST_LOG STATE_HUB_CONFIG

LISTEN=127.0.0.1:18480
HUB_URL=http://$LISTEN
BIN=${BENCH_STATE_HUB_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/state-hub}
RAW_DB=hubplane_bench_raw
API_DB=hubplane_bench_api
FANOUT_DB=hubplane_bench_fanout
NATS_PORT=18422
COPY_ROWS=100000
BATCH_SIZE=1000
BATCH_CONNS=4
RSS_TARGET_KB=$((20 * 1024))

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'run.sh: ERROR: %s\n' "$*" >&2; exit 1; }
# figure lines, printed as they are measured
say() { printf '  %s\n' "$*"; }

# ------------------------------------------------------------------ tools
ensure_tools() {
  local spec missing=()
  local specs=(pgbench:postgresql-client psql:postgresql-client wrk:wrk jq:jq python3:python3 curl:curl)
  ((FANOUT)) && specs+=(nats-server:nats-server)
  for spec in "${specs[@]}"; do
    command -v "${spec%%:*}" >/dev/null 2>&1 || missing+=("${spec#*:}")
  done
  ((${#missing[@]})) || return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  [[ $(id -u) == 0 ]] || die "missing tools; install the Debian packages: ${missing[*]}"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "${missing[@]}" >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
}
ensure_tools

# one run at a time: the scratch databases and the port are fixed
exec 9>"${TMPDIR:-/tmp}/hubplane-bench.lock"
flock -n 9 || die "another bench/run.sh is running"

# ------------------------------------------------------------------ state + cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hubplane-bench.XXXXXX")
HUB_PID=""
NATS_PID=""
CREATED_DBS=()

proc_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

stop_hub() {
  local pid=$HUB_PID i
  [[ -n $pid ]] || return 0
  HUB_PID=""
  if proc_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      proc_alive "$pid" || break
      sleep 0.1
    done
    if proc_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  wait "$pid" 2>/dev/null || true
}

stop_nats() {
  local pid=$NATS_PID i
  [[ -n $pid ]] || return 0
  NATS_PID=""
  if proc_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      proc_alive "$pid" || break
      sleep 0.1
    done
    if proc_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid db
  trap - EXIT INT TERM
  set +e
  stop_hub
  stop_nats
  if [[ -s $WORK/coldstart.pid ]]; then
    pid=$(<"$WORK/coldstart.pid")
    if [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid"; then kill -TERM "$pid" 2>/dev/null; fi
  fi
  for db in "${CREATED_DBS[@]}"; do
    psql -X -q "$BASE_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 ||
      echo "run.sh: could not drop database $db" >&2
  done
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ helpers
RAW_URL=$(python3 "$BENCH_DIR/helper.py" dburl "$BASE_URL" "$RAW_DB") || exit 1
API_URL=$(python3 "$BENCH_DIR/helper.py" dburl "$BASE_URL" "$API_DB") || exit 1
FANOUT_URL=$(python3 "$BENCH_DIR/helper.py" dburl "$BASE_URL" "$FANOUT_DB") || exit 1
HUB_FANOUT_DB_URL=$(python3 "$BENCH_DIR/helper.py" dburl --no-password "$BASE_URL" "$FANOUT_DB") || exit 1
# the hub refuses a password inside database.url: it gets the URL without one, plus a file
HUB_DB_URL=$(python3 "$BENCH_DIR/helper.py" dburl --no-password "$BASE_URL" "$API_DB") || exit 1

psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$BASE_URL" "$@"; }
psql_raw() { psql -X -q -v ON_ERROR_STOP=1 "$RAW_URL" "$@"; }
checkpoint() { psql_admin -c CHECKPOINT >/dev/null 2>&1 || true; }

fresh_db() {
  psql_admin -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
  CREATED_DBS+=("$1")
}

# awk arithmetic
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
# verdict VALUE OP LIMIT -> PASS | MISS | -  (OP is >= or <)
verdict() {
  [[ -n $1 && $1 != n/a ]] || { echo -; return; }
  if awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN { exit !(op == ">=" ? a >= b : a < b) }'; then
    echo PASS
  else
    echo MISS
  fi
}

declare -A R=()   # measured numbers
NOTES=()          # warnings for the report

# run_pgbench NAME CLIENTS SCRIPT [pgbench args...] -> R[NAME.tps], R[NAME.lat]
run_pgbench() {
  local name=$1 clients=$2 script=$3 out tps lat failed
  shift 3
  out=$WORK/pgbench-$name.log
  checkpoint
  if ! pgbench -n -M prepared -c "$clients" -j 2 -T "$DURATION" -f "$script" "$@" "$RAW_URL" >"$out" 2>&1; then
    tail -n 20 "$out" >&2
    die "pgbench $name failed"
  fi
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out")
  [[ -z $tps ]] || tps=$(calc "$tps" 1)
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
  [[ -n $tps && -n $lat ]] || { cat "$out" >&2; die "could not read pgbench output for $name"; }
  [[ ${failed:-0} == 0 ]] || NOTES+=("pgbench $name: $failed failed transactions")
  R[$name.tps]=$tps
  R[$name.lat]=$lat
}

# run_wrk NAME MODE CONNS PATH [wrk args...] -> R[NAME.rps], R[NAME.p50], R[NAME.p99] (ms), ...
run_wrk() {
  local name=$1 mode=$2 conns=$3 path=$4 out json errs
  shift 4
  out=$WORK/wrk-$name.log
  checkpoint
  if ! BENCH_MODE=$mode BENCH_TOKEN_FILE=$TOKEN_FILE BENCH_BATCH_SIZE=$BATCH_SIZE \
    wrk -t2 -c"$conns" -d"${DURATION}s" --latency -s "$BENCH_DIR/wrk/hub.lua" "$@" \
    "$HUB_URL$path" >"$out" 2>&1; then
    cat "$out" >&2
    die "wrk $name failed"
  fi
  json=$(sed -n 's/^BENCHJSON //p' "$out")
  [[ -n $json ]] || { cat "$out" >&2; die "no BENCHJSON line from wrk $name"; }
  # wrk stops early and exits 0 on SIGINT, which hides a Ctrl-C from bash
  if [[ $(jq -r ".duration_us < ($DURATION - 0.5) * 1e6" <<<"$json") == true ]]; then
    die "wrk $name stopped before ${DURATION}s (interrupted?)"
  fi
  R[$name.ok]=$(jq -r '.requests - .err_status' <<<"$json")
  R[$name.rps]=$(jq -r '((.requests - .err_status) / (.duration_us / 1e6)) * 10 | round / 10' <<<"$json")
  R[$name.mean]=$(jq -r '.lat_mean_us / 1000 * 100 | round / 100' <<<"$json")
  R[$name.p50]=$(jq -r '.lat_p50_us / 1000 * 100 | round / 100' <<<"$json")
  R[$name.p99]=$(jq -r '.lat_p99_us / 1000 * 100 | round / 100' <<<"$json")
  errs=$(jq -r '"\(.err_status) non-2xx, \(.err_timeout) timeouts, \(.err_connect + .err_read + .err_write) socket errors"' <<<"$json")
  if [[ $(jq -r '.err_status + .err_timeout + .err_connect + .err_read + .err_write' <<<"$json") != 0 ]]; then
    NOTES+=("wrk $name: $errs (rates count successful requests only)")
    log "WARNING: wrk $name: $errs"
    # one more request of the same kind, to show what the errors look like (429 = rate limited)
    case $mode in
      post) probe POST "$path" "$WORK/event.json" ;;
      batch) probe POST "$path" "$WORK/batch.json" ;;
      *) probe GET "$path" "" ;;
    esac
  fi
  [[ ${R[$name.ok]} -gt 0 ]] || { cat "$out" >&2; die "wrk $name: no successful request"; }
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# ================================================================== header
PG_VERSION=$(psql_admin -Atc 'SHOW server_version') || die "cannot connect to $BASE_URL"
PG_SETTINGS=$(psql_admin -Atc "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name)
  FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections', 'wal_level')")
QUICK_NOTE=""
if ((QUICK)); then QUICK_NOTE="; --quick"; fi
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
HEADER=$(
  cat <<EOF
Hubplane benchmark — $(date -u '+%Y-%m-%d %H:%M:%SZ')
host: $(nproc) CPU, $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr); git $GIT_REV
PostgreSQL $PG_VERSION ($PG_SETTINGS)
runs: ${DURATION}s each; $EVENTS events for page reads; COPY $COPY_ROWS rows; batches of $BATCH_SIZE$QUICK_NOTE
EOF
)
echo "$HEADER"
echo

# The raw baseline's table is the hub's own journal, taken from its migration so the two cannot
# drift: same columns, checks, indexes and triggers, with a sequence default for seq (the hub
# assigns seq itself) and without the foreign keys (the baseline has no parent tables; those
# columns are NULL in every row anyway).
raw_schema() {
    local migration="$BENCH_DIR/../migrations/state-hub/V1__foundation.sql"
    [[ -r $migration ]] || die "cannot read $migration"
    printf 'CREATE SEQUENCE events_seq;\n'
    sed -n '/^CREATE TABLE events (/,/^-- Takes the journal/p' "$migration" |
        sed -e '/^-- Takes the journal/d' \
            -e 's/ REFERENCES [a-z_]* (id)//' \
            -e "s/bigint PRIMARY KEY CHECK (seq > 0)/bigint PRIMARY KEY DEFAULT nextval('events_seq') CHECK (seq > 0)/"
    printf 'ALTER SEQUENCE events_seq OWNED BY events.seq;\n'
}

# ================================================================== raw PostgreSQL
log "raw: creating $RAW_DB"
fresh_db "$RAW_DB"
raw_schema | psql_raw -f - >/dev/null

echo "Raw PostgreSQL (pgbench -n -M prepared -j 2 -T $DURATION, table events in $RAW_DB)"
for c in 8 32; do
  log "raw: single-row INSERT, $c clients, ${DURATION}s"
  run_pgbench "raw_insert_c$c" "$c" "$BENCH_DIR/pgbench/insert.sql"
  say "INSERT one event, $c clients: ${R[raw_insert_c$c.tps]} tps, latency avg ${R[raw_insert_c$c.lat]} ms"
done

log "raw: COPY $COPY_ROWS rows"
psql_raw -c "\\copy (SELECT gen_random_uuid(), now(), 'bench.copied', 'bench event', 'bench', '{\"n\":1}'::jsonb, sha256(int8send(g)), sha256(uuid_send(gen_random_uuid())) FROM generate_series(1, $COPY_ROWS) AS g) TO '$WORK/copy.tsv'"
checkpoint
copy_out=$(psql_raw <<EOF
\\timing on
\\copy events (id, created_at, event_type, summary, author, detail, prev_hash, hash) FROM '$WORK/copy.tsv'
EOF
)
copy_ms=$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$copy_out" | tail -n 1)
[[ -n $copy_ms ]] || { echo "$copy_out" >&2; die "could not time COPY"; }
R[raw_copy.s]=$(calc "$copy_ms / 1000" 3)
R[raw_copy.rps]=$(calc "$COPY_ROWS / ($copy_ms / 1000)" 0)
say "COPY $COPY_ROWS rows: ${R[raw_copy.s]} s, ${R[raw_copy.rps]} rows/s"

log "raw: filling events up to $EVENTS rows"
psql_raw -v target="$EVENTS" -f "$BENCH_DIR/sql/fill.sql" >/dev/null
psql_raw -c 'VACUUM ANALYZE events' >/dev/null
read -r RAW_ROWS RAW_MAXSEQ < <(psql_raw -At -F ' ' -c 'SELECT count(*), max(seq) FROM events')
say "table holds $RAW_ROWS rows (max seq $RAW_MAXSEQ)"

log "raw: keyset SELECT, 8 clients"
run_pgbench raw_select_c8 8 "$BENCH_DIR/pgbench/select_newest.sql"
say "SELECT 50 newest, 8 clients: ${R[raw_select_c8.tps]} tps, latency avg ${R[raw_select_c8.lat]} ms"
run_pgbench raw_cursor_c8 8 "$BENCH_DIR/pgbench/select_cursor.sql" -D maxseq="$RAW_MAXSEQ"
say "SELECT 50 before a random cursor, 8 clients: ${R[raw_cursor_c8.tps]} tps, latency avg ${R[raw_cursor_c8.lat]} ms"

psql_admin -c "DROP DATABASE IF EXISTS $RAW_DB WITH (FORCE)" >/dev/null
echo

# ================================================================== state hub API
if ((!RAW_ONLY)); then
  if ((BUILD)); then
    log "building state-hub and hubctl (cargo build --release --locked)"
    (cd "$ROOT" && cargo build --release --locked -p state-hub -p hubctl) || die "cargo build failed"
  fi
  [[ -x $BIN ]] || die "no state-hub binary at $BIN (build it, or drop --no-build)"
  if (exec 3<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}") 2>/dev/null; then
    die "something already listens on $LISTEN; stop it first"
  fi

  log "api: creating $API_DB, token and config"
  fresh_db "$API_DB"
  TOKEN_FILE=$WORK/admin.token
  (
    umask 077
    printf 'hpt_%s' "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')" >"$TOKEN_FILE"
    printf 'Authorization: Bearer %s\n' "$(<"$TOKEN_FILE")" >"$WORK/auth.header"
  )
  chmod 600 "$TOKEN_FILE"
  [[ $(wc -c <"$TOKEN_FILE") == 47 ]] || die "token generation failed"
  DB_PASSWORD_LINE=""
  (
    umask 077
    python3 "$BENCH_DIR/helper.py" dbpassword "$BASE_URL" >"$WORK/db.password"
  )
  if [[ -s $WORK/db.password ]]; then
    DB_PASSWORD_LINE="password_file = \"$WORK/db.password\""
  fi
  CONFIG=$WORK/state-hub.toml
  cat >"$CONFIG" <<EOF
[server]
listen = "$LISTEN"
public_url = "$HUB_URL"

[database]
url = "$HUB_DB_URL"
$DB_PASSWORD_LINE
pool_size = 32
health_pool_size = 2

[auth]
bootstrap_admin_token_file = "$TOKEN_FILE"

[limits]
# The per-token limit (2000 requests/s by default) would measure the limiter, not the hub.
api_per_token_per_second = 0

[log]
format = "json"
filter = "warn"
EOF
  HUB_CMD=("$BIN" --config "$CONFIG" serve)
  HUB_LOG=$WORK/state-hub.log

  start_hub() {
    "${HUB_CMD[@]}" </dev/null >>"$HUB_LOG" 2>&1 &
    HUB_PID=$!
    local secs
    if ! secs=$(python3 "$BENCH_DIR/helper.py" wait-ready --listen "$LISTEN" --pid "$HUB_PID" --timeout "$1"); then
      echo "--- last lines of the state hub log:" >&2
      tail -n 40 "$HUB_LOG" >&2
      die "the state hub did not become ready (GET /readyz != 200)"
    fi
    log "api: state hub pid $HUB_PID ready after ${secs}s"
  }

  # check METHOD PATH BODYFILE EXPECTED: one request, abort on any other status
  check() {
    local code
    code=$(curl -sS -o "$WORK/check.body" -w '%{http_code}' -X "$1" -H @"$WORK/auth.header" \
      -H 'Content-Type: application/json' -H 'Accept: application/json' \
      ${3:+--data-binary "@$3"} "$HUB_URL$2") || die "$1 $2: request failed"
    if [[ $code != "$4" ]]; then
      echo "--- response body:" >&2
      head -c 1000 "$WORK/check.body" >&2
      echo >&2
      die "$1 $2 returned HTTP $code, expected $4; fix the hub (or the benchmark's request) first"
    fi
  }

  # probe METHOD PATH BODYFILE: one request right after a run with errors; log its status
  probe() {
    local code
    code=$(curl -sS -o "$WORK/probe.body" -w '%{http_code}' -X "$1" -H @"$WORK/auth.header" \
      -H 'Content-Type: application/json' -H 'Accept: application/json' \
      ${3:+--data-binary "@$3"} "$HUB_URL$2" 2>&1) || true
    if [[ $code == 2* ]]; then
      log "  a single $1 $2 right after: HTTP $code"
    else
      log "  a single $1 $2 right after: HTTP $code $(head -c 300 "$WORK/probe.body" 2>/dev/null | tr '\n' ' ')"
    fi
    NOTES+=("  a single $1 $2 right after it: HTTP $code")
  }

  echo "State hub API ($HUB_URL, pool_size 32)"
  log "api: first start (runs the migrations)"
  start_hub 180
  stop_hub

  log "api: cold start to ready, $COLD_RUNS runs"
  cold=$(python3 "$BENCH_DIR/helper.py" coldstart --listen "$LISTEN" --runs "$COLD_RUNS" \
    --log "$HUB_LOG" --pidfile "$WORK/coldstart.pid" -- "${HUB_CMD[@]}") ||
    { tail -n 40 "$HUB_LOG" >&2; die "cold start measurement failed"; }
  R[ready.min]=$(jq -r .min_ms <<<"$cold")
  R[ready.median]=$(jq -r .median_ms <<<"$cold")
  R[ready.runs]=$(jq -r '.runs_ms | map(tostring) | join(", ")' <<<"$cold")
  say "exec -> first 200 of /readyz: min ${R[ready.min]} ms, median ${R[ready.median]} ms (${R[ready.runs]})"

  log "api: start for the load runs"
  start_hub 60
  sleep 2
  R[rss_start.kb]=$(rss_kb "$HUB_PID")
  say "idle RSS after start: $(calc "${R[rss_start.kb]} / 1024") MiB"

  log "api: single requests first"
  jq -cn '{event_type: "bench.posted", summary: "bench event", detail: {n: 1}}' >"$WORK/event.json"
  jq -cn --argjson n "$BATCH_SIZE" \
    '{events: [range($n) | {event_type: "bench.posted", summary: "bench event", detail: {n: 1}}]}' >"$WORK/batch.json"
  check POST /api/v1/events "$WORK/event.json" 201
  check POST /api/v1/events/batch "$WORK/batch.json" 201
  check GET '/api/v1/events?limit=50' "" 200
  jq -e . "$WORK/check.body" >/dev/null 2>&1 || die "GET /api/v1/events?limit=50 did not return JSON"

  for c in 8 32; do
    log "api: POST /api/v1/events, $c connections, ${DURATION}s"
    run_wrk "api_post_c$c" post "$c" /api/v1/events
    R[api_post_c$c.ratio]=$(ratio "${R[api_post_c$c.rps]}" "${R[raw_insert_c$c.tps]}")
    say "POST /api/v1/events, $c conns: ${R[api_post_c$c.rps]} req/s, p50 ${R[api_post_c$c.p50]} ms, p99 ${R[api_post_c$c.p99]} ms — ${R[api_post_c$c.ratio]}x raw INSERT"
  done

  log "api: POST /api/v1/events/batch ($BATCH_SIZE events), $BATCH_CONNS connections, ${DURATION}s"
  run_wrk api_batch batch "$BATCH_CONNS" /api/v1/events/batch --timeout 60s
  R[api_batch.eps]=$(calc "${R[api_batch.rps]} * $BATCH_SIZE" 0)
  R[api_batch.ratio]=$(ratio "${R[api_batch.eps]}" "${R[raw_copy.rps]}")
  say "batch ingest, $BATCH_CONNS conns: ${R[api_batch.eps]} events/s (${R[api_batch.rps]} batches/s, p99 ${R[api_batch.p99]} ms) — ${R[api_batch.ratio]}x COPY"

  log "api: loading $EVENTS events through the batch endpoint"
  checkpoint
  load=$(python3 "$BENCH_DIR/helper.py" load --listen "$LISTEN" --token-file "$TOKEN_FILE" \
    --batches $((EVENTS / BATCH_SIZE)) --batch-size "$BATCH_SIZE" --concurrency "$BATCH_CONNS" --progress) ||
    { echo "$load" >&2; die "bulk load failed"; }
  R[api_load.events]=$(jq -r .events <<<"$load")
  R[api_load.s]=$(jq -r .seconds <<<"$load")
  R[api_load.eps]=$(jq -r '.events_per_s | round' <<<"$load")
  R[api_load.ratio]=$(ratio "${R[api_load.eps]}" "${R[raw_copy.rps]}")
  [[ $(jq -r .batches_failed <<<"$load") == 0 ]] ||
    NOTES+=("bulk load: $(jq -r '"\(.batches_failed) failed batches, statuses \(.statuses), first: \(.first_error)"' <<<"$load")")
  say "bulk load: ${R[api_load.events]} events in ${R[api_load.s]} s = ${R[api_load.eps]} events/s — ${R[api_load.ratio]}x COPY"
  if api_rows=$(psql -X -At "$API_URL" -c 'SELECT count(*) FROM events' 2>/dev/null); then
    say "the hub's events table holds $api_rows rows"
  fi

  log "api: GET /api/v1/events?limit=50, 8 connections, ${DURATION}s"
  run_wrk api_page_c8 page 8 '/api/v1/events?limit=50'
  R[api_page_c8.ratio]=$(ratio "${R[api_page_c8.rps]}" "${R[raw_select_c8.tps]}")
  say "GET /api/v1/events?limit=50, 8 conns: ${R[api_page_c8.rps]} req/s, p50 ${R[api_page_c8.p50]} ms, p99 ${R[api_page_c8.p99]} ms — ${R[api_page_c8.ratio]}x raw SELECT"

  log "api: idle 5 s after load"
  sleep 5
  R[rss_load.kb]=$(rss_kb "$HUB_PID")
  say "idle RSS after load: $(calc "${R[rss_load.kb]} / 1024") MiB"
  proc_alive "$HUB_PID" || die "the state hub exited during the run"
  stop_hub
  echo
fi

# ================================================================== journal fan-out to NATS
# A fresh database and hub (the API run's million events would otherwise all be published),
# and a private nats-server with JetStream on loopback, its store under $WORK.
if ((FANOUT)); then
  if (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null; then
    die "something already listens on 127.0.0.1:$NATS_PORT; stop it first (or use --no-fanout)"
  fi
  NATS_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)
  [[ -x $NATS_BIN ]] || die "nats-server is missing (Debian package nats-server), or run with --no-fanout"
  start_nats() {
    "$NATS_BIN" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$WORK/nats" </dev/null >>"$WORK/nats.log" 2>&1 &
    NATS_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
      (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && return 0
      proc_alive "$NATS_PID" || break
      sleep 0.05
    done
    tail -n 20 "$WORK/nats.log" >&2
    die "nats-server did not start on 127.0.0.1:$NATS_PORT"
  }
  fanout_config() { # $1: true|false (publish or not)
    awk -v old="url = \"$HUB_DB_URL\"" -v new="url = \"$HUB_FANOUT_DB_URL\"" \
      '$0 == old { print new; next } { print }' "$CONFIG"
    printf '\n[nats]\nenabled = %s\nurl = "nats://127.0.0.1:%s"\nstream = "BENCH"\nsubject_prefix = "bench.statehub"\n' \
      "$1" "$NATS_PORT"
  }
  fanout_head() { psql -X -At "$FANOUT_URL" -c 'SELECT COALESCE(max(seq), 0) FROM events'; }

  echo "Journal fan-out to NATS JetStream (nats-server $("$NATS_BIN" --version 2>/dev/null | awk '{print $NF}'), 127.0.0.1:$NATS_PORT, file storage)"
  log "fanout: creating $FANOUT_DB and starting nats-server"
  fresh_db "$FANOUT_DB"
  start_nats
  fanout_config true >"$WORK/fanout-on.toml"
  fanout_config false >"$WORK/fanout-off.toml"
  HUB_CMD=("$BIN" --config "$WORK/fanout-on.toml" serve)
  start_hub 180

  # 1. Live: batches go in at full speed while the publisher follows; the rate is journal ->
  #    acknowledged by JetStream, from the first write until the cursor reaches the head.
  log "fanout: $FANOUT_LIVE events through the batch endpoint, publisher live"
  checkpoint
  since=$(date +%s.%N)
  load=$(python3 "$BENCH_DIR/helper.py" load --listen "$LISTEN" --token-file "$TOKEN_FILE" \
    --batches $((FANOUT_LIVE / BATCH_SIZE)) --batch-size "$BATCH_SIZE" --concurrency "$BATCH_CONNS") ||
    { echo "$load" >&2; die "fan-out load failed"; }
  R[fan_ingest.eps]=$(jq -r '.events_per_s | round' <<<"$load")
  R[fan_ingest.ratio]=$(ratio "${R[fan_ingest.eps]}" "${R[api_load.eps]}")
  head=$(fanout_head)
  live=$(python3 "$BENCH_DIR/helper.py" fanout-wait --listen "$LISTEN" --target "$head" \
    --events "$FANOUT_LIVE" --since "$since" --timeout 600) || die "the fan-out did not catch up"
  R[fan_live.s]=$(jq -r .seconds <<<"$live")
  R[fan_live.eps]=$(jq -r '.events_per_s | round' <<<"$live")
  R[fan_live.ratio]=$(ratio "${R[fan_live.eps]}" "${R[fan_ingest.eps]}")
  say "ingest with the publisher live: ${R[fan_ingest.eps]} events/s — ${R[fan_ingest.ratio]}x the bulk load without it"
  say "published and acknowledged: $FANOUT_LIVE events in ${R[fan_live.s]} s = ${R[fan_live.eps]} events/s — ${R[fan_live.ratio]}x ingest"
  stop_hub

  # 2. Catch-up: events queued with the fan-out off, then a hub with it on starts; timed from
  #    its exec until the cursor reaches the head.
  log "fanout: queueing $FANOUT_QUEUED events with the fan-out off"
  HUB_CMD=("$BIN" --config "$WORK/fanout-off.toml" serve)
  start_hub 60
  load=$(python3 "$BENCH_DIR/helper.py" load --listen "$LISTEN" --token-file "$TOKEN_FILE" \
    --batches $((FANOUT_QUEUED / BATCH_SIZE)) --batch-size "$BATCH_SIZE" --concurrency "$BATCH_CONNS") ||
    { echo "$load" >&2; die "fan-out queue load failed"; }
  stop_hub
  head=$(fanout_head)
  checkpoint
  log "fanout: starting the hub with the fan-out on; $FANOUT_QUEUED events to publish"
  HUB_CMD=("$BIN" --config "$WORK/fanout-on.toml" serve)
  since=$(date +%s.%N)
  start_hub 60
  catch=$(python3 "$BENCH_DIR/helper.py" fanout-wait --listen "$LISTEN" --target "$head" \
    --events "$FANOUT_QUEUED" --since "$since" --timeout 600) || die "the fan-out did not catch up"
  R[fan_catch.s]=$(jq -r .seconds <<<"$catch")
  R[fan_catch.eps]=$(jq -r '.events_per_s | round' <<<"$catch")
  say "catch-up of $FANOUT_QUEUED queued events: ${R[fan_catch.s]} s from exec (${R[fan_catch.eps]} events/s)"
  R[fan_failures]=$(jq -r '.failures_total // 0' <<<"$catch")
  stop_hub
  stop_nats
  psql_admin -c "DROP DATABASE IF EXISTS $FANOUT_DB WITH (FORCE)" >/dev/null
  echo
fi

# ================================================================== report
row() { printf '%-42s %-24s %-22s %-7s %-14s %s\n' "$@"; }

{
  echo "$HEADER"
  echo
  row FIGURE VALUE BASELINE RATIO TARGET RESULT
  row "raw INSERT 1 event, 8 clients" "${R[raw_insert_c8.tps]} tps" "avg ${R[raw_insert_c8.lat]} ms" - - -
  row "raw INSERT 1 event, 32 clients" "${R[raw_insert_c32.tps]} tps" "avg ${R[raw_insert_c32.lat]} ms" - - -
  row "raw COPY $COPY_ROWS rows" "${R[raw_copy.rps]} rows/s" "${R[raw_copy.s]} s" - - -
  row "raw SELECT 50 newest, 8 clients" "${R[raw_select_c8.tps]} tps" "avg ${R[raw_select_c8.lat]} ms" - - -
  row "raw SELECT 50 at random cursor, 8 cl." "${R[raw_cursor_c8.tps]} tps" "avg ${R[raw_cursor_c8.lat]} ms" - - -
  if ((RAW_ONLY)); then
    row "state hub API" "not run (--raw-only)" - - - -
  else
    for c in 8 32; do
      row "API POST /events, $c conns" "${R[api_post_c$c.rps]} req/s" "${R[raw_insert_c$c.tps]} tps INSERT" \
        "${R[api_post_c$c.ratio]}x" ">= 1.0x" "$(verdict "${R[api_post_c$c.ratio]}" '>=' 1.0)"
    done
    row "API batch ingest, $BATCH_CONNS conns x $BATCH_SIZE" "${R[api_batch.eps]} events/s" "${R[raw_copy.rps]} rows/s COPY" \
      "${R[api_batch.ratio]}x" ">= 0.7x" "$(verdict "${R[api_batch.ratio]}" '>=' 0.7)"
    row "API bulk load ${R[api_load.events]} events" "${R[api_load.eps]} events/s" "${R[raw_copy.rps]} rows/s COPY" \
      "${R[api_load.ratio]}x" ">= 0.7x" "$(verdict "${R[api_load.ratio]}" '>=' 0.7)"
    row "API GET /events?limit=50, 8 conns" "${R[api_page_c8.rps]} req/s" "${R[raw_select_c8.tps]} tps SELECT" \
      "${R[api_page_c8.ratio]}x" ">= 0.5x" "$(verdict "${R[api_page_c8.ratio]}" '>=' 0.5)"
    row "API GET page p99 (p50 ${R[api_page_c8.p50]} ms)" "${R[api_page_c8.p99]} ms" - - "< 5 ms" \
      "$(verdict "${R[api_page_c8.p99]}" '<' 5)"
    row "idle RSS after start" "$(calc "${R[rss_start.kb]} / 1024") MiB" - - "< 20 MiB" \
      "$(verdict "${R[rss_start.kb]}" '<' "$RSS_TARGET_KB")"
    row "idle RSS after load" "$(calc "${R[rss_load.kb]} / 1024") MiB" - - "< 20 MiB" \
      "$(verdict "${R[rss_load.kb]}" '<' "$RSS_TARGET_KB")"
    row "ready after exec, median of $COLD_RUNS" "${R[ready.median]} ms" "min ${R[ready.min]} ms" - "< 100 ms" \
      "$(verdict "${R[ready.median]}" '<' 100)"
  fi
  if ((FANOUT)); then
    row "fan-out: ingest, publisher live" "${R[fan_ingest.eps]} events/s" "${R[api_load.eps]} events/s load" \
      "${R[fan_ingest.ratio]}x" ">= 0.8x" "$(verdict "${R[fan_ingest.ratio]}" '>=' 0.8)"
    row "fan-out: published, live ($FANOUT_LIVE ev)" "${R[fan_live.eps]} events/s" "${R[fan_ingest.eps]} events/s ingest" \
      "${R[fan_live.ratio]}x" ">= 0.8x" "$(verdict "${R[fan_live.ratio]}" '>=' 0.8)"
    row "fan-out: catch-up of $FANOUT_QUEUED queued" "${R[fan_catch.s]} s" "${R[fan_catch.eps]} events/s" - "< 10 s" \
      "$(verdict "${R[fan_catch.s]}" '<' 10)"
  elif ((!RAW_ONLY)); then
    row "journal fan-out to NATS" "not run (--no-fanout)" - - - -
  fi
  if ((${#NOTES[@]})); then
    echo
    printf 'note: %s\n' "${NOTES[@]}"
  fi
} >"$WORK/report.txt"

mkdir -p "$BENCH_DIR/results"
cp "$WORK/report.txt" "$BENCH_DIR/results/latest.txt"
echo "=================================================================================================="
cat "$WORK/report.txt"
echo
echo "(written to bench/results/latest.txt)"
