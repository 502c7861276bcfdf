#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Restore drill, for real: the state hub binary on a fresh database (no identity stand-ins),
# plans, decisions and events written through hubctl, scripts/backup.sh while it serves, more
# writes, the database dropped, scripts/restore.sh into a new database (state-hub verify), the
# hub started on it: the journal verifies (hubctl audit verify), what was written before the
# backup is there and what came after is not. The dump services.postgresqlBackup makes on the
# management host (plain pg_dump -C, zstd) restores and verifies too. Then the same for a domain
# hub database: migrated by the domain-hub binary, outbox rows backed up, dropped, restored,
# domain-hub verify counts them, and the domain hub starts on it.
# docs/operations/backup-restore.md is the procedure this drill follows.
set -euo pipefail

SUITE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../scripts/lib/common.sh
source "${SUITE_DIR}/../../scripts/lib/common.sh"
# shellcheck source=../../scripts/lib/deps.sh
source "${SUITE_DIR}/../../scripts/lib/deps.sh"
# shellcheck source=../../scripts/lib/postgres.sh
source "${SUITE_DIR}/../../scripts/lib/postgres.sh"

ensure_debian_packages postgresql-client jq curl zstd
ensure_postgres

BIN_DIR="${HUB_BIN_DIR:-${CARGO_TARGET_DIR:-${HUBPLANE_REPO}/target}/debug}"
for bin in state-hub hubctl domain-hub; do
    [[ -x "${BIN_DIR}/${bin}" ]] || hp_die "missing ${BIN_DIR}/${bin} (cargo build --workspace)"
done
BACKUP="${HUBPLANE_REPO}/scripts/backup.sh"
RESTORE="${HUBPLANE_REPO}/scripts/restore.sh"

mkdir -p "${HUBPLANE_REPO}/.tmp"
WORK="$(mktemp -d "${HUBPLANE_REPO}/.tmp/restore-drill.XXXXXX")"
PREFIX="drill_$(basename "${WORK}" | tr -dc '[:alnum:]' | tr '[:upper:]' '[:lower:]')"
STATE_DB="${PREFIX}_state"
STATE_RESTORED="${PREFIX}_state_restored"
STATE_NIXOS="${PREFIX}_state_nixos"
OPS_DB="${PREFIX}_ops"
OPS_RESTORED="${PREFIX}_ops_restored"
ALL_DBS=("${STATE_DB}" "${STATE_RESTORED}" "${STATE_NIXOS}" "${OPS_DB}" "${OPS_RESTORED}" "${PREFIX}_refused")
PIDS=()

db_url() {
    pg_url_with_database "${HUB_TEST_DATABASE_URL}" "$1"
}

# sql DB STATEMENT: one statement as the superuser, unaligned output without headers.
sql() {
    PGOPTIONS="-c client_min_messages=warning" psql "$(db_url "$1")" -X -A -t -q -v ON_ERROR_STOP=1 -c "$2"
}

drop_db() {
    sql postgres "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
}

# stop_pid PID: TERM, then KILL after 20 s; only processes this suite started.
stop_pid() {
    local pid="$1" i
    kill -TERM "${pid}" 2>/dev/null || return 0
    for ((i = 0; i < 200; i++)); do
        kill -0 "${pid}" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local pid db
    for pid in "${PIDS[@]}"; do
        stop_pid "${pid}"
    done
    for db in "${ALL_DBS[@]}"; do
        drop_db "${db}" || true
    done
    rm -rf -- "${WORK}"
    stop_postgres
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0

# check NAME CMD...: runs CMD in this shell (so it may set variables), its output kept aside;
# prints "ok - NAME", or "not ok - NAME" and that output. CMD runs where `set -e` does not
# apply, so each step of a check function ends in `|| return 1` (or is its last command).
check() {
    local name="$1"
    shift
    local rc=0
    "$@" >"${WORK}/check.out" 2>&1 || rc=$?
    if [[ ${rc} -eq 0 ]]; then
        passed=$((passed + 1))
        printf 'ok - %s\n' "${name}"
    else
        failed=$((failed + 1))
        printf 'not ok - %s\n' "${name}"
        sed 's/^/#   /' "${WORK}/check.out"
    fi
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
    if [[ "$2" != "$3" ]]; then
        printf '%s: expected [%s], got [%s]\n' "$1" "$3" "$2"
        return 1
    fi
}

# wait_ready URL PID LOG: until URL/readyz answers 200 (60 s), or the process exits.
wait_ready() {
    local url="$1" pid="$2" log="$3" deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        if curl -fsS --max-time 2 -o /dev/null "${url}/readyz" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "${pid}" 2>/dev/null; then
            tail -n 30 "${log}"
            printf 'exited before it was ready\n'
            return 1
        fi
        sleep 0.2
    done
    tail -n 30 "${log}"
    printf 'not ready at %s/readyz within 60 s\n' "${url}"
    return 1
}

# The bootstrap admin token, as the runbook makes one; every state hub of the drill reads it.
TOKEN_FILE="${WORK}/admin.token"
(umask 077 && "${BIN_DIR}/hubctl" token generate >"${TOKEN_FILE}")

# start_state_hub NAME DB: a state hub configured like scripts/lib/stack.sh does, without the
# identity stand-ins (API tokens only); sets HUB_URL and HUB_PID.
start_state_hub() {
    local name="$1" db="$2" port config log
    port="$(hp_free_port)"
    config="${WORK}/${name}.toml"
    log="${WORK}/${name}.log"
    cat >"${config}" <<TOML
dev_mode = true

[server]
listen = "127.0.0.1:${port}"
public_url = "http://127.0.0.1:${port}"
workers = 2
shutdown_grace_seconds = 2

[database]
url = "$(db_url "${db}")"
pool_size = 4
health_pool_size = 1

[auth]
bootstrap_admin_token_file = "${TOKEN_FILE}"

[log]
filter = "warn"
TOML
    env -u HUB_TEST_DATABASE_URL -u HUB_BIN_DIR -u HUB_SUITE_TIMEOUT -u HUB_PG_THROWAWAY -u HUB_PG_LOG \
        "${BIN_DIR}/state-hub" --config "${config}" serve >"${log}" 2>&1 </dev/null &
    HUB_PID=$!
    PIDS+=("${HUB_PID}")
    HUB_URL="http://127.0.0.1:${port}"
    wait_ready "${HUB_URL}" "${HUB_PID}" "${log}"
}

# ctl ARGS...: hubctl --output json against the current state hub, as the bootstrap admin.
ctl() {
    HUBCTL_URL="${HUB_URL}" HUBCTL_TOKEN_FILE="${TOKEN_FILE}" "${BIN_DIR}/hubctl" --output json "$@"
}

# ------------------------------------------------------------------------------------------
# State hub
# ------------------------------------------------------------------------------------------

start_first_hub() {
    sql postgres "CREATE DATABASE \"${STATE_DB}\"" >/dev/null || return 1
    start_state_hub first "${STATE_DB}"
}
check "the state hub starts on a fresh database" start_first_hub

write_before_backup() {
    local ws wp
    ws="$(ctl workstreams create --slug drill --title 'Restore drill' | jq -er .id)" || return 1
    wp="$(ctl workplans create --workstream "${ws}" --title 'Before the backup' | jq -er .id)" || return 1
    TASK_BEFORE="$(ctl tasks create --workplan "${wp}" --title 'Written before the backup' | jq -er .id)" || return 1
    DECISION_BEFORE="$(ctl decisions propose --title 'Decided before the backup' \
        --option keep --option drop --task "${TASK_BEFORE}" | jq -er .id)" || return 1
    ctl decisions escalate "${DECISION_BEFORE}" --reason 'Needs a second person' >/dev/null || return 1
    SEQ_BEFORE="$(ctl events post --type drill.marked --summary 'before the backup' \
        --detail '{"phase":"before"}' | jq -er .seq)"
}
check "plans, an escalated decision and events are written through hubctl" write_before_backup

backup_state() {
    STATE_DUMP="$("${BACKUP}" --dir "${WORK}/backups" --url "${HUB_TEST_DATABASE_URL}" "${STATE_DB}")" || return 1
    [[ -s "${STATE_DUMP}" && -s "${STATE_DUMP}.sha256" ]] || return 1
    pg_restore --list "${STATE_DUMP}" >"${WORK}/state.list" || return 1
    grep -q 'TABLE DATA public events' "${WORK}/state.list" || return 1
    # What services.postgresqlBackup runs on the management host, for the same database.
    mkdir -p "${WORK}/nixos" || return 1
    pg_dump -C "$(db_url "${STATE_DB}")" | zstd -q -c >"${WORK}/nixos/${STATE_DB}.sql.zstd"
}
check "scripts/backup.sh dumps the serving hub's database (and a services.postgresqlBackup-style dump is taken)" backup_state

write_after_backup() {
    ctl events post --type drill.marked --summary 'after the backup' >/dev/null || return 1
    DECISION_AFTER="$(ctl decisions propose --title 'Decided after the backup' | jq -er .id)"
}
check "more is written after the backup" write_after_backup

lose_database() {
    stop_pid "${HUB_PID}"
    drop_db "${STATE_DB}" || return 1
    expect_eq "database gone" "$(sql postgres "SELECT count(*) FROM pg_database WHERE datname = '${STATE_DB}'")" 0
}
check "the hub stops and its database is lost" lose_database

restore_state() {
    "${RESTORE}" --input "${STATE_DUMP}" --url "$(db_url "${STATE_RESTORED}")" --create \
        --verify state-hub --bin-dir "${BIN_DIR}"
}
check "scripts/restore.sh restores the dump into a new database and state-hub verify passes" restore_state

start_restored_hub() {
    start_state_hub restored "${STATE_RESTORED}"
}
check "the state hub starts on the restored database" start_restored_hub

audit_restored() {
    local report
    report="$(ctl audit verify)" || return 1
    expect_eq "chain verified" "$(jq -r .ok <<<"${report}")" true || return 1
    # The bootstrap token was restored too, so the restarted hub wrote no event of its own.
    expect_eq "events checked" "$(jq -r .events_checked <<<"${report}")" "${SEQ_BEFORE}"
}
check "hubctl audit verify passes on the restored hub, up to the last event before the backup" audit_restored

before_is_there() {
    local d t
    d="$(ctl decisions show "${DECISION_BEFORE}")" || return 1
    expect_eq "decision status" "$(jq -r .status <<<"${d}")" escalated || return 1
    t="$(ctl tasks show "${TASK_BEFORE}")" || return 1
    expect_eq "task blocked by the decision" "$(jq -r '.blocked_by[0]' <<<"${t}")" "${DECISION_BEFORE}" || return 1
    expect_eq "marker before" \
        "$(ctl events list --type drill.marked --all | jq -r '[.items[].summary] | join(",")')" \
        "before the backup" || return 1
    expect_eq "workstream" "$(ctl workstreams show drill | jq -r .title)" "Restore drill"
}
check "what was written before the backup is there" before_is_there

after_is_not() {
    local out rc=0
    out="$(ctl decisions show "${DECISION_AFTER}" 2>&1)" || rc=$?
    expect_eq "decision written after the backup" "${rc}" 1 || return 1
    grep -q '404' <<<"${out}" || return 1
    expect_eq "newest event" "$(ctl events list --limit 1 | jq -r '.items[0].seq')" "${SEQ_BEFORE}"
}
check "what was written after the backup is not" after_is_not

restore_nixos_dump() {
    "${RESTORE}" --input "${WORK}/nixos/${STATE_DB}.sql.zstd" --url "$(db_url "${STATE_NIXOS}")" \
        --create --verify state-hub --bin-dir "${BIN_DIR}" || return 1
    expect_eq "events" "$(sql "${STATE_NIXOS}" 'SELECT count(*) FROM events')" "${SEQ_BEFORE}"
}
check "the services.postgresqlBackup dump (plain, -C, zstd) restores under another name and verifies" restore_nixos_dump

refuse_damaged_dump() {
    local damaged rc=0
    damaged="${WORK}/damaged/$(basename "${STATE_DUMP}")" || return 1
    mkdir -p "${WORK}/damaged" || return 1
    cp -- "${STATE_DUMP}" "${STATE_DUMP}.sha256" "${WORK}/damaged/" || return 1
    truncate -s -100 "${damaged}" || return 1
    "${RESTORE}" --input "${damaged}" --url "$(db_url "${PREFIX}_refused")" --create >"${WORK}/refused.out" 2>&1 || rc=$?
    cat "${WORK}/refused.out"
    expect_eq "exit" "${rc}" 1 || return 1
    grep -q 'does not match' "${WORK}/refused.out" || return 1
    expect_eq "no database created" "$(sql postgres "SELECT count(*) FROM pg_database WHERE datname = '${PREFIX}_refused'")" 0
}
check "a damaged dump is refused by its checksum before anything is created" refuse_damaged_dump

refuse_occupied_target() {
    local rc=0
    "${RESTORE}" --input "${STATE_DUMP}" --url "$(db_url "${STATE_RESTORED}")" >"${WORK}/occupied.out" 2>&1 || rc=$?
    cat "${WORK}/occupied.out"
    expect_eq "exit" "${rc}" 1 || return 1
    grep -q 'is not empty' "${WORK}/occupied.out"
}
check "a restore onto a database that holds data is refused" refuse_occupied_target

# ------------------------------------------------------------------------------------------
# Domain hub (ops-hub), talking to the restored state hub
# ------------------------------------------------------------------------------------------

OPS_TOKEN_FILE="${WORK}/ops-hub.token"
OPS_CONFIG="${WORK}/ops-hub.toml"
OPS_LOG="${WORK}/ops-hub.log"

# write_ops_config DB: the domain hub's config, the way the profile renders it, on DB.
write_ops_config() {
    OPS_PORT="$(hp_free_port)"
    cat >"${OPS_CONFIG}" <<TOML
dev_mode = true

[hub]
name = "ops-hub"
kind = "ops"
manifest_file = "${HUBPLANE_REPO}/hubs/domain-hub/manifests/ops-hub.json"

[state_hub]
url = "${HUB_URL}"
token_file = "${OPS_TOKEN_FILE}"
timeout_seconds = 2
retry_max_seconds = 1

[server]
listen = "127.0.0.1:${OPS_PORT}"
public_url = "http://127.0.0.1:${OPS_PORT}"
workers = 2
shutdown_grace_seconds = 2

[database]
url = "$(db_url "$1")"
pool_size = 4
health_pool_size = 1

[identity.scopes]
"ops-hub:freeze.request" = ["hub_admins"]

[log]
filter = "warn"
TOML
}

migrate_ops() {
    ctl hubs kinds add ops --description 'Operations' >/dev/null || return 1
    (umask 077 && ctl tokens create --name 'ops-hub relay' --subject hub:ops-hub --kind service \
        --role member | jq -er .token >"${OPS_TOKEN_FILE}") || return 1
    sql postgres "CREATE DATABASE \"${OPS_DB}\"" >/dev/null || return 1
    write_ops_config "${OPS_DB}" || return 1
    env -u HUB_TEST_DATABASE_URL -u HUB_BIN_DIR -u HUB_SUITE_TIMEOUT -u HUB_PG_THROWAWAY -u HUB_PG_LOG \
        "${BIN_DIR}/domain-hub" --config "${OPS_CONFIG}" migrate
}
check "the domain hub migrates its own database" migrate_ops

# outbox_row DB KEY STATE: one outbox row as the hub writes it; STATE delivered|pending|rejected.
outbox_row() {
    local delivered=NULL rejected=NULL
    case "$3" in
        delivered) delivered='now()' ;;
        rejected) rejected='now()' ;;
    esac
    sql "$1" "INSERT INTO outbox (id, event, idempotency_key, delivered_at, rejected_at) VALUES \
        (gen_random_uuid(), '{\"event_type\":\"annotation.added\",\"summary\":\"$2\"}', '$2', ${delivered}, ${rejected})" >/dev/null
}

backup_ops() {
    outbox_row "${OPS_DB}" drill-1 delivered || return 1
    outbox_row "${OPS_DB}" drill-2 delivered || return 1
    outbox_row "${OPS_DB}" drill-3 pending || return 1
    outbox_row "${OPS_DB}" drill-4 rejected || return 1
    sql "${OPS_DB}" "INSERT INTO annotations (id, category, target, text, author) VALUES \
        (gen_random_uuid(), 'note', 'widget:deployments', 'Written before the backup', 'alice')" >/dev/null || return 1
    OPS_DUMP="$("${BACKUP}" --dir "${WORK}/backups" --url "${HUB_TEST_DATABASE_URL}" --keep 1 "${OPS_DB}")" || return 1
    [[ -s "${OPS_DUMP}" ]] || return 1
    outbox_row "${OPS_DB}" drill-5 pending
}
check "outbox rows and an annotation are backed up with scripts/backup.sh, then one more row is written" backup_ops

restore_ops() {
    drop_db "${OPS_DB}" || return 1
    "${RESTORE}" --input "${OPS_DUMP}" --url "$(db_url "${OPS_RESTORED}")" --create \
        --verify domain-hub --bin-dir "${BIN_DIR}"
}
check "the lost domain hub database restores and domain-hub verify passes" restore_ops

count_ops() {
    local report
    report="$("${BIN_DIR}/domain-hub" verify --json --database-url "$(db_url "${OPS_RESTORED}")")" || return 1
    expect_eq "outbox" "$(jq -c '.outbox | [.total, .delivered, .pending, .rejected, .sequence_ok]' <<<"${report}")" \
        '[4,2,1,1,true]' || return 1
    expect_eq "annotations" "$(jq -r .annotations <<<"${report}")" 1 || return 1
    expect_eq "schema current" "$(jq -r '[.schema[] | .applied == .expected] | all' <<<"${report}")" true
}
check "the restored outbox holds the rows from before the backup, by state, and not the one after" count_ops

start_restored_ops() {
    write_ops_config "${OPS_RESTORED}" || return 1
    env -u HUB_TEST_DATABASE_URL -u HUB_BIN_DIR -u HUB_SUITE_TIMEOUT -u HUB_PG_THROWAWAY -u HUB_PG_LOG \
        "${BIN_DIR}/domain-hub" --config "${OPS_CONFIG}" serve >"${OPS_LOG}" 2>&1 </dev/null &
    local pid=$!
    PIDS+=("${pid}")
    wait_ready "http://127.0.0.1:${OPS_PORT}" "${pid}" "${OPS_LOG}" || return 1
    # A new row sorts after the restored ones: the sequence came back with the data.
    outbox_row "${OPS_RESTORED}" drill-6 delivered || return 1
    expect_eq "newest row" "$(sql "${OPS_RESTORED}" "SELECT idempotency_key FROM outbox ORDER BY seq DESC LIMIT 1")" drill-6 || return 1
    stop_pid "${pid}"
}
check "the domain hub starts on the restored database" start_restored_ops

printf '%d passed, %d failed\n' "${passed}" "${failed}"
[[ ${failed} -eq 0 ]]
