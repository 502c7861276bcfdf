#!/usr/bin/env bash
# Hubplane benchmark: the state hub's journal at 10M events. Loads a synthetic, correctly
# hash-chained journal into a fresh database, times the offline chain verification, then
# measures read latency (p50/p95/p99/max) through the API for every read path, with the
# EXPLAIN (ANALYZE, BUFFERS) of the query behind each, and the table and index sizes.
# Not part of the test suite. See bench/README.md ("Journal at scale") and docs/journal-growth.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

usage() {
  cat <<'EOF'
Usage: bench/journal-scale.sh [--events N] [--duration S] [--keep] [--reuse] [--no-build]
                              [--no-verify] [--api-verify] [--insert-impact]

  --events N     journal size (default 10000000)
  --duration S   wrk run per read path, seconds (default 5), 4 connections
  --keep         keep the database hubplane_bench_journal at the end
  --reuse        measure the kept database again (no load); the hub applies any new migrations
  --no-build     do not run cargo; use the binaries that are already built
  --no-verify    skip `state-hub verify` (offline walk of the whole chain)
  --api-verify   also time `hubctl audit verify` (the whole chain through the API; slow)
  --insert-impact  also compare pgbench single-event INSERT tps (8 clients, 15 s) on the
                 journal table with the indexes of V1 and with those of V5 (A/B/A/B), in a
                 scratch database hubplane_bench_journal_ins

Environment:
  HUB_BENCH_DATABASE_URL  PostgreSQL server, superuser, loopback only
                          (default postgres://postgres@127.0.0.1:5432/postgres)
  BENCH_RESULTS           report file (default bench/results/journal-scale-<UTC date>.txt)
EOF
}

EVENTS=10000000
DURATION=5
KEEP=0
REUSE=0
BUILD=1
VERIFY=1
API_VERIFY=0
INSERT_IMPACT=0
while (($#)); do
  case $1 in
    --events) EVENTS=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --duration) DURATION=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
    --keep) KEEP=1; shift ;;
    --reuse) REUSE=1; KEEP=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --no-verify) VERIFY=0; shift ;;
    --api-verify) API_VERIFY=1; shift ;;
    --insert-impact) INSERT_IMPACT=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "journal-scale.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
if ! [[ $EVENTS =~ ^[0-9]+$ ]] || ((EVENTS < 10000)); then
  echo "--events must be a number >= 10000" >&2
  exit 2
fi
if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 1 || DURATION > 120)); then
  echo "--duration must be 1..120" >&2
  exit 2
fi

BASE_URL=${HUB_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
while read -r var; do unset "$var"; done < <(compgen -e | grep '^HUB_' || true)
unset JOURNAL_STREAM RUST_LOG STATE_HUB_CONFIG

LISTEN=127.0.0.1:18490
HUB_URL=http://$LISTEN
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/state-hub
HUBCTL=$TARGET/release/hubctl
GEN=$TARGET/release/examples/journal_gen
DB=hubplane_bench_journal
CONNS=4
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results/journal-scale-$(date -u +%Y-%m-%d).txt}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'journal-scale.sh: ERROR: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

# ------------------------------------------------------------------ tools
missing=()
for spec in psql:postgresql-client wrk:wrk jq:jq python3:python3 curl:curl; do
  command -v "${spec%%:*}" >/dev/null 2>&1 || missing+=("${spec#*:}")
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "missing tools; install the Debian packages: ${missing[*]}"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "${missing[@]}" >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
fi

exec 9>"${TMPDIR:-/tmp}/hubplane-bench-journal.lock"
flock -n 9 || die "another bench/journal-scale.sh is running"

# ------------------------------------------------------------------ state + cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hubplane-journal.XXXXXX")
HUB_PID=""
DROP_DB=0

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

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  stop_hub
  psql -X -q "$BASE_URL" -c "DROP DATABASE IF EXISTS ${DB}_ins WITH (FORCE)" >/dev/null 2>&1
  if ((DROP_DB && !KEEP)); then
    log "dropping $DB"
    psql -X -q "$BASE_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
      echo "journal-scale.sh: could not drop database $DB" >&2
  elif ((DROP_DB)); then
    log "kept database $DB (drop it with: psql -c 'DROP DATABASE $DB')"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DB_URL=$(python3 "$BENCH_DIR/helper.py" dburl "$BASE_URL" "$DB") || exit 1
HUB_DB_URL=$(python3 "$BENCH_DIR/helper.py" dburl --no-password "$BASE_URL" "$DB") || exit 1
psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$BASE_URL" "$@"; }
psql_db() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$DB_URL" "$@"; }

# ------------------------------------------------------------------ build
if ((BUILD)); then
  log "building state-hub, hubctl and the journal generator (release)"
  (cd "$ROOT" && cargo build --release --locked -q -p state-hub -p hubctl &&
    cargo build --release --locked -q -p hub-core --example journal_gen) || die "cargo build failed"
fi
for b in "$BIN" "$GEN"; do [[ -x $b ]] || die "$b is missing (build it, or drop --no-build)"; done

mkdir -p "$(dirname "$RESULTS")"
exec > >(tee "$RESULTS") 2>&1

PG_VERSION=$(psql_admin -Atc 'SHOW server_version') || die "cannot connect to $BASE_URL"
PG_SETTINGS=$(psql_admin -Atc "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name)
  FROM pg_settings WHERE name IN ('shared_buffers', 'effective_cache_size', 'work_mem', 'random_page_cost', 'synchronous_commit')")
cat <<EOF
Hubplane journal at scale — $(date -u '+%Y-%m-%d %H:%M:%SZ')
host: $(nproc) CPU, $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr); git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
PostgreSQL $PG_VERSION ($PG_SETTINGS)
journal: $EVENTS events; wrk -t2 -c$CONNS -d${DURATION}s per read path; database $DB
migrations in the binary: $(find "$ROOT/migrations/state-hub" -name 'V*.sql' -printf '%f ' | tr ' ' '\n' | sort -V | tr '\n' ' ')
EOF
echo

# ------------------------------------------------------------------ token + config
TOKEN_FILE=$WORK/admin.token
(
  umask 077
  printf 'hpt_%s' "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')" >"$TOKEN_FILE"
  printf 'Authorization: Bearer %s\n' "$(<"$TOKEN_FILE")" >"$WORK/auth.header"
  python3 "$BENCH_DIR/helper.py" dbpassword "$BASE_URL" >"$WORK/db.password"
)
DB_PASSWORD_LINE=""
[[ -s $WORK/db.password ]] && DB_PASSWORD_LINE="password_file = \"$WORK/db.password\""
CONFIG=$WORK/state-hub.toml
cat >"$CONFIG" <<EOF
[server]
listen = "$LISTEN"
public_url = "$HUB_URL"

[database]
url = "$HUB_DB_URL"
$DB_PASSWORD_LINE
pool_size = 16
health_pool_size = 2

[auth]
bootstrap_admin_token_file = "$TOKEN_FILE"

[limits]
api_per_token_per_second = 0

[log]
format = "json"
filter = "warn"
EOF
HUB_LOG=$WORK/state-hub.log

# ------------------------------------------------------------------ database + load
if ((REUSE)); then
  [[ $(psql_admin -Atc "SELECT count(*) FROM pg_database WHERE datname = '$DB'") == 1 ]] ||
    die "--reuse: database $DB does not exist (run once with --keep)"
  DROP_DB=1
  EVENTS=$(psql_db -Atc 'SELECT COALESCE(max(seq), 0) FROM events')
  log "reusing $DB ($EVENTS events): applying any new migration"
  t0=$(now_ms)
  "$BIN" --config "$CONFIG" migrate >>"$HUB_LOG" 2>&1 || { tail -n 20 "$HUB_LOG" >&2; die "state-hub migrate failed"; }
  echo "reused the database of an earlier --keep run: $EVENTS events; state-hub migrate took $(secs_since "$t0") s"
  psql_db -At -c "SELECT '  applied: V' || version || ' ' || name || ' at ' || applied_on FROM refinery_schema_history ORDER BY version DESC LIMIT 2"
else
  log "creating $DB"
  psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
  DROP_DB=1
  "$BIN" --config "$CONFIG" migrate >>"$HUB_LOG" 2>&1 || { tail -n 20 "$HUB_LOG" >&2; die "state-hub migrate failed"; }

  # The things events link to: 20 workstreams, 200 workplans, 4000 tasks, 1000 decisions.
  psql_db <<'SQL'
INSERT INTO workstreams (id, slug, title, created_by)
  SELECT gen_random_uuid(), 'stream-' || g, 'Workstream ' || g, 'user:person002' FROM generate_series(1, 20) g;
INSERT INTO workplans (id, workstream_id, title, created_by)
  SELECT gen_random_uuid(), (SELECT id FROM workstreams ORDER BY slug OFFSET g % 20 LIMIT 1), 'Plan ' || g, 'user:person002'
  FROM generate_series(1, 200) g;
INSERT INTO tasks (id, workplan_id, title, created_by)
  SELECT gen_random_uuid(), p.id, 'Task ' || p.title || '.' || g, 'agent:worker-001'
  FROM workplans p, generate_series(1, 20) g;
INSERT INTO decisions (id, title, decision_type, status, proposed_by)
  SELECT gen_random_uuid(), 'Decision ' || g, 'pending', 'open', 'user:person002' FROM generate_series(1, 1000) g;
SQL
  psql_db -Atc "\\copy (SELECT t.id, p.id, p.workstream_id FROM tasks t JOIN workplans p ON p.id = t.workplan_id) TO '$WORK/tasks.txt' WITH (DELIMITER ' ')"
  psql_db -Atc "\\copy (SELECT id FROM decisions) TO '$WORK/decisions.txt'"

  # Secondary indexes and unique constraints are dropped for the load and rebuilt after it (a
  # bulk build is several times faster than maintaining 9 indexes row by row); the rebuilt
  # indexes have the migrations' definitions. Foreign keys are not checked during the COPY
  # (session_replication_role = replica): every linked row exists by construction.
  psql_db -Atc "SELECT 'ALTER TABLE events ADD CONSTRAINT ' || quote_ident(conname) || ' ' || pg_get_constraintdef(oid) || ';'
      FROM pg_constraint WHERE conrelid = 'events'::regclass AND contype = 'u' ORDER BY conname" >"$WORK/restore.sql"
  psql_db -Atc "SELECT pg_get_indexdef(i.indexrelid) || ';' FROM pg_index i
      WHERE i.indrelid = 'events'::regclass AND NOT i.indisprimary
        AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
      ORDER BY 1" >>"$WORK/restore.sql"
  psql_db -Atc "SELECT 'ALTER TABLE events DROP CONSTRAINT ' || quote_ident(conname) || ';'
      FROM pg_constraint WHERE conrelid = 'events'::regclass AND contype = 'u'
    UNION ALL
    SELECT 'DROP INDEX ' || i.indexrelid::regclass || ';' FROM pg_index i
      WHERE i.indrelid = 'events'::regclass AND NOT i.indisprimary
        AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)" >"$WORK/drop.sql"
  psql_db -f "$WORK/drop.sql" >/dev/null

  log "loading $EVENTS events (generator | COPY)"
  t0=$(now_ms)
  "$GEN" --count "$EVENTS" --end-epoch "$(date +%s)" --span-days 365 \
    --tasks "$WORK/tasks.txt" --decisions "$WORK/decisions.txt" 2>"$WORK/gen.err" |
    psql_db -c 'SET session_replication_role = replica' -c '\copy events FROM STDIN' >/dev/null ||
    { cat "$WORK/gen.err" >&2; die "load failed"; }
  LOAD_S=$(secs_since "$t0")
  GEN_HEAD=$(sed -n 's/^head //p' "$WORK/gen.err")
  t0=$(now_ms)
  psql_db -c "SET maintenance_work_mem = '1GB'" -f "$WORK/restore.sql" >/dev/null
  INDEX_S=$(secs_since "$t0")
  t0=$(now_ms)
  psql_db -c 'VACUUM (ANALYZE) events' >/dev/null
  VACUUM_S=$(secs_since "$t0")
  psql_admin -c CHECKPOINT >/dev/null
  echo "Load"
  printf '  COPY of %s events from the generator: %s s (%s events/s)\n' "$EVENTS" "$LOAD_S" \
    "$(awk -v n="$EVENTS" -v s="$LOAD_S" 'BEGIN { printf "%.0f", n / s }')"
  printf '  rebuilding the secondary indexes and unique constraints: %s s\n' "$INDEX_S"
  printf '  VACUUM (ANALYZE): %s s\n' "$VACUUM_S"
  printf '  generator chain head: %s\n' "$GEN_HEAD"
  echo
fi

# ------------------------------------------------------------------ shape + sizes
echo "Shape"
psql_db -P pager=off -c "SELECT count(*) AS events, min(created_at)::date AS first, max(created_at)::date AS last,
    count(DISTINCT event_type) AS types, count(DISTINCT author) AS authors,
    round(avg(pg_column_size(detail))) AS avg_detail_bytes, round(avg(length(detail::text))) AS avg_detail_json_chars,
    round(100.0 * count(workstream_id) / count(*), 1) AS pct_linked
  FROM events"
psql_db -P pager=off -c "SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC"
echo "Indexes"
psql_db -At -c "SELECT '  ' || pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'events'::regclass ORDER BY 1"
echo "Sizes"
psql_db -P pager=off -c "SELECT c.relname AS relation, c.relkind AS kind, pg_size_pretty(pg_relation_size(c.oid)) AS size,
    pg_relation_size(c.oid) AS bytes
  FROM pg_class c WHERE c.oid = 'events'::regclass
     OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'events'::regclass)
     OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'events'::regclass)
  ORDER BY bytes DESC"
psql_db -At -c "SELECT 'events total (heap + toast + indexes): ' || pg_size_pretty(pg_total_relation_size('events'))
  || ', indexes: ' || pg_size_pretty(pg_indexes_size('events'))"
echo

# ------------------------------------------------------------------ offline verify
if ((VERIFY)); then
  log "state-hub verify (whole chain, offline)"
  t0=$(now_ms)
  if "$BIN" --config "$CONFIG" verify >"$WORK/verify.out" 2>&1; then VERIFY_RC=0; else VERIFY_RC=$?; fi
  VERIFY_S=$(secs_since "$t0")
  echo "Offline verification: state-hub verify, exit $VERIFY_RC, $VERIFY_S s"
  sed 's/^/  | /' "$WORK/verify.out" | grep -v '"level"' | tail -n 20
  echo
  ((VERIFY_RC == 0)) || die "state-hub verify failed on the generated journal"
fi

# ------------------------------------------------------------------ hub
log "starting the state hub"
t0=$(now_ms)
"$BIN" --config "$CONFIG" serve </dev/null >>"$HUB_LOG" 2>&1 &
HUB_PID=$!
if ! secs=$(python3 "$BENCH_DIR/helper.py" wait-ready --listen "$LISTEN" --pid "$HUB_PID" --timeout 600); then
  tail -n 40 "$HUB_LOG" >&2
  die "the state hub did not become ready"
fi
echo "State hub ready after ${secs}s (exec to first 200 from /readyz, includes migrations: $(find "$ROOT/migrations/state-hub" -name 'V*.sql' | wc -l) in the tree)"
curl -fsS -H @"$WORK/auth.header" "$HUB_URL/api/v1/audit/head" >"$WORK/head.json" || die "GET /api/v1/audit/head failed"
echo "  chain head from the API: $(<"$WORK/head.json")"
echo

# ------------------------------------------------------------------ request paths
# Samples from the data: the parameters of the filtered paths, random ids and seqs.
psql_db -At -F ' ' -c "SELECT min(seq), max(seq), extract(epoch FROM min(created_at))::bigint,
  extract(epoch FROM max(created_at))::bigint FROM events" >"$WORK/bounds"
read -r MIN_SEQ MAX_SEQ T_MIN T_MAX <"$WORK/bounds"
psql_db -At -F ' ' -c "SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC" >"$WORK/types"
psql_db -At -F ' ' -c "SELECT author, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC" >"$WORK/authors"
psql_db -At -c "SELECT id FROM events TABLESAMPLE SYSTEM (0.05) LIMIT 2000" >"$WORK/ids"
psql_db -At -c "SELECT DISTINCT workstream_id FROM events WHERE workstream_id IS NOT NULL LIMIT 20" >"$WORK/workstreams"
psql_db -At -c "SELECT id FROM tasks ORDER BY random() LIMIT 500" >"$WORK/tasks"
# "rare" is the least frequent value with at least 0.1 % of the events: the hub's own few events
# (its bootstrap token) are left out.
MIN_RARE=$(((MAX_SEQ - MIN_SEQ) / 1000))
COMMON_TYPE=$(awk 'NR == 1 { print $1 }' "$WORK/types")
RARE_TYPE=$(awk -v m="$MIN_RARE" '$2 >= m { t = $1 } END { print t }' "$WORK/types")
COMMON_AUTHOR=$(awk 'NR == 1 { print $1 }' "$WORK/authors")
RARE_AUTHOR=$(awk -v m="$MIN_RARE" '$2 >= m { t = $1 } END { print t }' "$WORK/authors")
RARE_NOUN=${RARE_TYPE%%.*}

mkdir -p "$WORK/paths"
MIN_SEQ=$MIN_SEQ MAX_SEQ=$MAX_SEQ T_MIN=$T_MIN T_MAX=$T_MAX COMMON_TYPE=$COMMON_TYPE RARE_TYPE=$RARE_TYPE \
  COMMON_AUTHOR=$COMMON_AUTHOR RARE_AUTHOR=$RARE_AUTHOR RARE_NOUN=$RARE_NOUN DIR=$WORK python3 - <<'PY'
import base64, datetime, os, random, urllib.parse

e = os.environ
d = e["DIR"]
random.seed(7)
lo, hi = int(e["MIN_SEQ"]), int(e["MAX_SEQ"])
t_lo, t_hi = int(e["T_MIN"]), int(e["T_MAX"])
ids = [l.strip() for l in open(f"{d}/ids") if l.strip()]
streams = [l.strip() for l in open(f"{d}/workstreams") if l.strip()]
tasks = [l.strip() for l in open(f"{d}/tasks") if l.strip()]
N = 500

def cur(seq):
    return base64.urlsafe_b64encode(f"v1|events|{seq}".encode()).decode().rstrip("=")

def ts(t):
    return urllib.parse.quote(datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

def window(hours):
    start = random.randint(t_lo, t_hi - hours * 3600)
    return f"since={ts(start)}&until={ts(start + hours * 3600)}"

def deep():
    return random.randint(lo + 1000, hi - 5000)

q = urllib.parse.quote
E = "/api/v1/events"
groups = {
    "newest": [f"{E}?limit=50"],
    "oldest_asc": [f"{E}?order=asc&limit=50"],
    "deep_cursor": [f"{E}?limit=50&after={cur(deep())}" for _ in range(N)],
    "deep_cursor_asc": [f"{E}?order=asc&limit=50&after={cur(deep())}" for _ in range(N)],
    "type_common": [f"{E}?limit=50&event_type={q(e['COMMON_TYPE'])}"],
    "type_rare": [f"{E}?limit=50&event_type={q(e['RARE_TYPE'])}"],
    "type_rare_deep": [f"{E}?limit=50&event_type={q(e['RARE_TYPE'])}&after={cur(deep())}" for _ in range(N)],
    "noun_rare": [f"{E}?limit=50&noun={q(e['RARE_NOUN'])}"],
    # the hub's own token.* events: a noun with a handful of events in 10M
    "noun_token": [f"{E}?limit=50&noun=token"],
    "author_common": [f"{E}?limit=50&author={q(e['COMMON_AUTHOR'])}"],
    "author_rare": [f"{E}?limit=50&author={q(e['RARE_AUTHOR'])}"],
    "author_rare_deep": [f"{E}?limit=50&author={q(e['RARE_AUTHOR'])}&after={cur(deep())}" for _ in range(N)],
    "workstream": [f"{E}?limit=50&workstream_id={s}" for s in streams],
    "task": [f"{E}?limit=50&task_id={t}" for t in tasks],
    "time_1h": [f"{E}?limit=50&{window(1)}" for _ in range(N)],
    "time_1d": [f"{E}?limit=50&{window(24)}" for _ in range(N)],
    "time_1d_type_rare": [f"{E}?limit=50&event_type={q(e['RARE_TYPE'])}&{window(24)}" for _ in range(N)],
    "get_by_seq": [f"{E}/{random.randint(lo, hi)}" for _ in range(N)],
    "get_by_id": [f"{E}/{i}" for i in ids],
    "audit_head": ["/api/v1/audit/head"],
    "ui_journal": ["/journal"],
    "ui_journal_type_rare": [f"/journal?event_type={q(e['RARE_TYPE'])}"],
    "ui_journal_author_rare_deep": [f"/journal?author={q(e['RARE_AUTHOR'])}&after={cur(deep())}" for _ in range(N)],
}
with open(f"{d}/paths/order", "w") as order:
    for name, paths in groups.items():
        with open(f"{d}/paths/{name}", "w") as f:
            f.write("\n".join(paths) + "\n")
        order.write(name + "\n")
PY

# ------------------------------------------------------------------ latency
echo "Read latency through the API (wrk -t2 -c$CONNS -d${DURATION}s each; ms)"
count_of() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
echo "  common type: $COMMON_TYPE ($(count_of "$WORK/types" "$COMMON_TYPE") events), rare type: $RARE_TYPE ($(count_of "$WORK/types" "$RARE_TYPE") events), rare noun: $RARE_NOUN"
echo "  common author: $COMMON_AUTHOR ($(count_of "$WORK/authors" "$COMMON_AUTHOR")), rare author: $RARE_AUTHOR ($(count_of "$WORK/authors" "$RARE_AUTHOR"))"
echo "  the machine is shared: the load average is printed per path (load1 before the run)"
printf '  %-28s %9s %9s %8s %8s %8s %8s %8s  %s  %s\n' path requests req/s p50 p95 p99 max mean errors load1
while read -r name; do
  first=$(head -n 1 "$WORK/paths/$name")
  code=$(curl -sS -o "$WORK/check.body" -w '%{http_code}' -H @"$WORK/auth.header" "$HUB_URL$first") || code=000
  if [[ $code != 200 ]]; then
    printf '  %-28s HTTP %s on %s: %s\n' "$name" "$code" "$first" "$(head -c 300 "$WORK/check.body")"
    continue
  fi
  log "wrk $name"
  load1=$(cut -d ' ' -f 1 /proc/loadavg)
  out=$WORK/wrk-$name.log
  BENCH_TOKEN_FILE=$TOKEN_FILE BENCH_PATHS_FILE=$WORK/paths/$name \
    wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 30s -s "$BENCH_DIR/wrk/journal.lua" "$HUB_URL" >"$out" 2>&1 ||
    { cat "$out" >&2; die "wrk $name failed"; }
  json=$(sed -n 's/^BENCHJSON //p' "$out")
  [[ -n $json ]] || { cat "$out" >&2; die "no BENCHJSON from wrk $name"; }
  jq -r --arg n "$name" --arg l "$load1" '[$n, .requests, (.requests / (.duration_us / 1e6)),
      (.lat_p50_us / 1000), (.lat_p95_us / 1000), (.lat_p99_us / 1000), (.lat_max_us / 1000), (.lat_mean_us / 1000),
      (.err_status + .err_timeout + .err_connect + .err_read + .err_write)]
    | "  \(.[0] | . + " " * (28 - length)) \(.[1] | tostring | " " * (9 - length) + .) \(.[2] | floor | tostring | " " * (9 - length) + .) \(.[3:8] | map((. * 100 | round / 100) | tostring | " " * (8 - length) + .) | join(" "))  \(.[8])  \($l)"' <<<"$json"
done <"$WORK/paths/order"
echo "  hub RSS after the reads: $(awk '/^VmRSS:/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$HUB_PID/status")"
echo

# ------------------------------------------------------------------ plans
# The statements of hubs/state-hub/src/journal/store.rs, with parameters like the paths above.
COLS="seq, id, created_at, event_type, summary, author, workstream_id, workplan_id, task_id, decision_id, detail, prev_hash, hash"
DEEP=$((MIN_SEQ + (MAX_SEQ - MIN_SEQ) / 2))
MID_T=$(((T_MIN + T_MAX) / 2))
SOME_ID=$(head -n 1 "$WORK/ids")
SOME_STREAM=$(head -n 1 "$WORK/workstreams")
SOME_TASK=$(head -n 1 "$WORK/tasks")
explain() {
  local title=$1 sql=$2
  echo "--- $title"
  echo "$sql"
  psql_db -P pager=off -At -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $sql" | sed 's/^/    /'
}
echo "Query plans (EXPLAIN (ANALYZE, BUFFERS), warm cache)"
{
  explain "newest page (served from the hub's memory ring; this is the fallback)" \
    "SELECT $COLS FROM events ORDER BY seq DESC LIMIT 51"
  explain "deep cursor" "SELECT $COLS FROM events WHERE seq < $DEEP ORDER BY seq DESC LIMIT 51"
  explain "type, common" "SELECT $COLS FROM events WHERE event_type = '$COMMON_TYPE' ORDER BY seq DESC LIMIT 51"
  explain "type, rare, deep cursor" "SELECT $COLS FROM events WHERE event_type = '$RARE_TYPE' AND seq < $DEEP ORDER BY seq DESC LIMIT 51"
  explain "noun (LIKE prefix), rare" "SELECT $COLS FROM events WHERE event_type LIKE '$RARE_NOUN.%' ORDER BY seq DESC LIMIT 51"
  explain "noun (LIKE prefix), the hub's own token events" "SELECT $COLS FROM events WHERE event_type LIKE 'token.%' ORDER BY seq DESC LIMIT 51"
  explain "author, rare, deep cursor" "SELECT $COLS FROM events WHERE author = '$RARE_AUTHOR' AND seq < $DEEP ORDER BY seq DESC LIMIT 51"
  explain "workstream" "SELECT $COLS FROM events WHERE workstream_id = '$SOME_STREAM' ORDER BY seq DESC LIMIT 51"
  explain "task" "SELECT $COLS FROM events WHERE task_id = '$SOME_TASK' ORDER BY seq DESC LIMIT 51"
  explain "time range, 1 hour in the middle of the year" \
    "SELECT $COLS FROM events WHERE created_at >= to_timestamp($MID_T) AND created_at < to_timestamp($MID_T + 3600) ORDER BY seq DESC LIMIT 51"
  explain "time range, 1 day in the middle of the year" \
    "SELECT $COLS FROM events WHERE created_at >= to_timestamp($MID_T) AND created_at < to_timestamp($MID_T + 86400) ORDER BY seq DESC LIMIT 51"
  explain "time range, 1 day, rare type" \
    "SELECT $COLS FROM events WHERE event_type = '$RARE_TYPE' AND created_at >= to_timestamp($MID_T) AND created_at < to_timestamp($MID_T + 86400) ORDER BY seq DESC LIMIT 51"
  explain "by seq" "SELECT $COLS FROM events WHERE seq = $DEEP"
  explain "by id" "SELECT $COLS FROM events WHERE id = '$SOME_ID'"
  explain "chain head" "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
} 2>&1
echo

# ------------------------------------------------------------------ API verify
if ((API_VERIFY)); then
  [[ -x $HUBCTL ]] || die "$HUBCTL is missing"
  log "hubctl audit verify (whole chain through the API)"
  t0=$(now_ms)
  if "$HUBCTL" --url "$HUB_URL" --token-file "$TOKEN_FILE" --timeout 600 audit verify \
    >"$WORK/hubctl.out" 2>&1; then rc=0; else rc=$?; fi
  echo "hubctl audit verify: exit $rc, $(secs_since "$t0") s"
  sed 's/^/  | /' "$WORK/hubctl.out" | tail -n 5
  echo
fi

stop_hub

# ------------------------------------------------------------------ insert cost of the indexes
# The raw table of bench/run.sh (V1's events without foreign keys, seq from a sequence, filled to
# 1M rows) with V1's indexes (A), then with V5 applied on top (B), alternately.
if ((INSERT_IMPACT)); then
  command -v pgbench >/dev/null 2>&1 || die "pgbench is missing (Debian package postgresql-client)"
  INS_DB=${DB}_ins
  INS_URL=$(python3 "$BENCH_DIR/helper.py" dburl "$BASE_URL" "$INS_DB") || exit 1
  V1=$ROOT/migrations/state-hub/V1__foundation.sql
  V5=$ROOT/migrations/state-hub/V5__journal_indexes.sql
  [[ -r $V5 ]] || die "$V5 is missing"
  ins_schema() {
    printf 'CREATE SEQUENCE events_seq;\n'
    sed -n '/^CREATE TABLE events (/,/^-- Takes the journal/p' "$V1" |
      sed -e '/^-- Takes the journal/d' -e 's/ REFERENCES [a-z_]* (id)//' \
        -e "s/bigint PRIMARY KEY CHECK (seq > 0)/bigint PRIMARY KEY DEFAULT nextval('events_seq') CHECK (seq > 0)/"
  }
  v1_indexes() { grep -E '^CREATE INDEX events_by_(type|time) ' "$V1"; }
  # V5 back to V1: the reverse of its statements
  v6_revert() {
    printf 'DROP INDEX events_by_type; DROP INDEX events_by_created_at;\n'
    v1_indexes
  }
  psql_admin -c "DROP DATABASE IF EXISTS $INS_DB WITH (FORCE)" -c "CREATE DATABASE $INS_DB" >/dev/null
  ins_schema | psql -X -q -v ON_ERROR_STOP=1 "$INS_URL" -f - >/dev/null
  psql -X -q -v ON_ERROR_STOP=1 "$INS_URL" -v target=1000000 -f "$BENCH_DIR/sql/fill.sql" >/dev/null
  psql -X -q "$INS_URL" -c 'VACUUM ANALYZE events' >/dev/null
  echo "INSERT cost of the indexes (pgbench -n -M prepared -c 8 -j 2 -T 15, bench/pgbench/insert.sql, table of 1M rows)"
  for variant in V1 V5 V1 V5; do
    if [[ $variant == V5 ]]; then
      grep -v '^--' "$V5" | psql -X -q -v ON_ERROR_STOP=1 "$INS_URL" -f - >/dev/null
    elif psql -X -At "$INS_URL" -c "SELECT to_regclass('events_by_created_at')" | grep -q events; then
      v6_revert | psql -X -q -v ON_ERROR_STOP=1 "$INS_URL" -f - >/dev/null
    fi
    psql_admin -c CHECKPOINT >/dev/null 2>&1 || true
    load1=$(cut -d ' ' -f 1 /proc/loadavg)
    out=$(pgbench -n -M prepared -c 8 -j 2 -T 15 -f "$BENCH_DIR/pgbench/insert.sql" "$INS_URL" 2>&1) ||
      { echo "$out" >&2; die "pgbench failed"; }
    printf '  indexes of %s: %s tps, latency avg %s ms (load1 %s)\n' "$variant" \
      "$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")" \
      "$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$out")" "$load1"
  done
  psql_admin -c "DROP DATABASE IF EXISTS $INS_DB WITH (FORCE)" >/dev/null
  echo
fi
log "report written to $RESULTS"
