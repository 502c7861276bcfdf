#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Replicas on one database, as DESIGN.md's "Scale and replicas" promises: two
# state hubs (A, B) on the state hub's database and two instances of dev-hub
# (r1 → A, r2 → B) on dev-hub's database, with the cluster stand-in, probing
# every 2 s and polling every 10 s. Checks, with the real binaries:
#   - each capability is probed once per due interval across both state hubs,
#     and each poll path polled once per interval across both dev-hub replicas
#     (counted at the cluster and in each replica's capability_requests_total);
#   - expired rows (idempotency records, delivered outbox rows) are purged once
#     between the two replicas of each hub (their purge counters add up);
#   - annotations taken by both dev-hub replicas reach the journal exactly once
#     each, through both relays;
#   - state hub A is killed (SIGKILL): r1 can no longer deliver, and the events
#     r1 takes are relayed by r2 through B, exactly once;
#   - dev-hub r1 is killed too: r2 polls alone at the same rate and keeps its
#     widgets fresh, B probes alone at the same rate; the chain verifies.
# Bounded: about 150 s; everything after the package check ends within
# HUB_REPLICAS_BUDGET (default 240) s.
# Environment: HUB_TEST_DATABASE_URL, HUB_BIN_DIR (tests/suites/README.md).
set -euo pipefail

SUITE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../scripts/lib/common.sh
source "${SUITE_DIR}/../../scripts/lib/common.sh"
# shellcheck source=../../scripts/lib/stack.sh
source "${SUITE_DIR}/../../scripts/lib/stack.sh"
# shellcheck source=../../scripts/lib/suite.sh
source "${SUITE_DIR}/../../scripts/lib/suite.sh"

BIN_DIR="${HUB_BIN_DIR:-${HUBPLANE_REPO}/target/debug}"
BUDGET="${HUB_REPLICAS_BUDGET:-240}"
PROBE_SECONDS=2   # the state hubs' probe interval
PROBE_WINDOW=16   # how long probes are counted
POLL_SECONDS=10   # dev-hub's poll interval (the manifest's least)
POLL_WINDOW=30    # how long polls are counted
PURGE_SECONDS=10  # both hubs' retention purge interval

mkdir -p "${HUBPLANE_REPO}/.tmp"
WORK="$(mktemp -d "${HUBPLANE_REPO}/.tmp/replicas-suite.XXXXXX")"
STACK_DB_NAME=""
HUB_B_PID=""
DEV_R2_PID=""

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [[ ${rc} -ne 0 ]]; then
        stack_suite_logs "${WORK}/stack" state-hub.log state-hub-b.log dev-hub.log dev-hub-r2.log
    fi
    local pid
    for pid in "${HUB_B_PID}" "${DEV_R2_PID}"; do
        if [[ -n "${pid}" ]] && hp_pid_running "${pid}"; then
            kill -KILL "${pid}" 2>/dev/null || true
            wait "${pid}" 2>/dev/null || true
        fi
    done
    stack_suite_teardown "${WORK}/stack"
    rm -rf -- "${WORK}"
    return "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stack_suite_require "${BIN_DIR}"

hp_step "packages"
stack_ensure_deps
suite_init "${WORK}" "${BUDGET}"

# ---------------------------------------------------------------------------
# Start the plane, then the second replica of each hub
# ---------------------------------------------------------------------------

DB_PREFIX="hubplane_replicas_$(date +%s)_${RANDOM}"
hp_step "starting the management plane (state hub A, dev-hub r1)"
started=0
for attempt in 1 2 3; do
    ports=()
    for _ in 1 2 3 4 5; do
        ports+=("$(hp_free_port)")
    done
    # shellcheck disable=SC2016 # expanded by the inner bash
    if timeout --kill-after=5 120 bash -c '
        set -euo pipefail
        shopt -s inherit_errexit
        source "$1"
        dir="$2" prefix="$3" bin_dir="$4" probe="$5" poll="$6" hub="$7" dev="$8" oidc="$9" ldap="${10}" cluster="${11}"
        stack_up --dir "${dir}" --database "${prefix}_state" --bin-dir "${bin_dir}" \
            --hub-port "${hub}" --oidc-port "${oidc}" --ldap-port "${ldap}" \
            --client "dev-hub=http://127.0.0.1:${dev}" --probe-interval "${probe}" --log-filter info
        stack_plane_up --cluster-port "${cluster}" --database-prefix "${prefix}" \
            --hub "dev-hub=${dev}" --poll-seconds "${poll}" \
            --heartbeat-seconds 10 --callable-refresh-seconds 2
    ' stack "${HUBPLANE_REPO}/scripts/lib/stack.sh" "${WORK}/stack" "${DB_PREFIX}" "${BIN_DIR}" \
        "${PROBE_SECONDS}" "${POLL_SECONDS}" "${ports[@]}"; then
        started=1
        break
    fi
    stack_down "${WORK}/stack" || true
    hp_warn "the management plane did not start (attempt ${attempt} of 3)"
    if [[ -f "${WORK}/stack/stack.env" ]]; then
        stack_load "${WORK}/stack"
        stack_drop_database || true
    fi
done
[[ ${started} -eq 1 ]] || hp_die "the management plane did not start; see the errors above"
stack_load "${WORK}/stack"

HUB_A_URL="${STACK_HUB_URL}"
DEV_R1_URL="$(stack_domain_url dev-hub)"
DEV_DB_URL="$(pg_url_with_database "${HUB_TEST_DATABASE_URL}" "$(awk '$1 == "dev-hub" { print $4 }' "${STACK_DIR}/domain-hubs.list")")"
DEV_TOKEN_FILE="$(stack_domain_token_file dev-hub)"
CLUSTER_LOG="${STACK_CLUSTER_DIR}/cluster.log"
[[ -f "${CLUSTER_LOG}" ]] || hp_die "the cluster stand-in keeps no request log at ${CLUSTER_LOG}"

# Purge every 10 s in small batches, so that both replicas of each hub purge while the suite
# watches; A and r1 start again on it (same databases), B and r2 get it through the copies.
printf '\n[retention]\npurge_interval_seconds = %d\nbatch_size = 50\n' "${PURGE_SECONDS}" \
    | tee -a "${STACK_HUB_CONFIG}" >>"${STACK_DIR}/dev-hub.toml"
stack_stop_state_hub "${STACK_DIR}"
stack_start_state_hub "${STACK_DIR}"
stack_stop_domain_hub dev-hub "${STACK_DIR}"
stack_start_domain_hub dev-hub "${STACK_DIR}"
HUB_A_PID="$(cat "${STACK_DIR}/state-hub.pid")"
DEV_R1_PID="$(cat "${STACK_DIR}/dev-hub.pid")"

# The second replicas: the same config files but for their own listen address (and r2 talks to B).
hp_step "starting state hub B and dev-hub r2 on the same databases"
port_b="$(hp_free_port)"
HUB_B_URL="http://127.0.0.1:${port_b}"
sed -e "s|^listen = .*|listen = \"127.0.0.1:${port_b}\"|" \
    -e "s|^public_url = .*|public_url = \"${HUB_B_URL}\"|" \
    "${STACK_HUB_CONFIG}" >"${STACK_DIR}/state-hub-b.toml"
_stack_spawn "state hub B" "${BIN_DIR}/state-hub" "${STACK_DIR}/state-hub-b.toml" \
    "${STACK_DIR}/state-hub-b.log" "${STACK_DIR}/state-hub-b.pid" "${HUB_B_URL}" fresh
HUB_B_PID="${_STACK_SPAWNED_PID}"

port_r2="$(hp_free_port)"
DEV_R2_URL="http://127.0.0.1:${port_r2}"
awk -v listen="listen = \"127.0.0.1:${port_r2}\"" -v public="public_url = \"${DEV_R2_URL}\"" \
    -v hub="url = \"${HUB_B_URL}\"" '
    /^\[/ { section = $0 }
    section == "[server]" && /^listen = / { print listen; next }
    section == "[server]" && /^public_url = / { print public; next }
    section == "[state_hub]" && /^url = / { print hub; next }
    { print }' "${STACK_DIR}/dev-hub.toml" >"${STACK_DIR}/dev-hub-r2.toml"
grep -q "^url = \"${HUB_B_URL}\"" "${STACK_DIR}/dev-hub-r2.toml" || hp_die "could not point dev-hub r2 at state hub B"
_stack_spawn "dev-hub r2" "${BIN_DIR}/domain-hub" "${STACK_DIR}/dev-hub-r2.toml" \
    "${STACK_DIR}/dev-hub-r2.log" "${STACK_DIR}/dev-hub-r2.pid" "${DEV_R2_URL}" fresh
DEV_R2_PID="${_STACK_SPAWNED_PID}"

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

psql_state() {
    psql "${STACK_DB_URL}" -X -A -t -q -v ON_ERROR_STOP=1 -c "$1"
}

# metric URL NAME LABEL_MATCH: the sum of NAME's samples whose labels contain LABEL_MATCH.
metric() {
    curl -fsS --max-time 5 "$1/metrics" \
        | awk -v name="$2" -v match_="$3" '
            index($0, name "{") == 1 && index($0, match_) > 0 { sum += $NF }
            END { printf "%d\n", sum }'
}

# polls: GETs of dev-hub's poll path the cluster has served so far.
polls() {
    grep -c ' GET /deployments/status ' "${CLUSTER_LOG}" || true
}

# probes: probe rows of the deployments capability so far (both state hubs write them).
probes() {
    psql_state "SELECT count(*) FROM capability_probes p JOIN capabilities c ON c.id = p.capability_id
                WHERE c.name = 'deployments'"
}

# requests URL: capability calls of deployments that the replica at URL made so far.
requests() {
    metric "$1" capability_requests_total 'capability="deployments"'
}

# annotate URL TEXT: one annotation through the dev-hub replica at URL (201 expected).
annotate() {
    local status
    status="$(printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"${DEV_TOKEN_FILE}")" \
        | curl -sS --max-time 10 -H @- -H 'Content-Type: application/json' -o /dev/null -w '%{http_code}' \
            --data "$(jq -cn --arg t "$2" '{category: "release-note", target: "deployments", text: $t}')" \
            "$1/api/v1/annotations")"
    [[ "${status}" == 201 ]] || { echo "POST $1/api/v1/annotations: ${status}"; return 1; }
}

# journaled PREFIX: "TOTAL DISTINCT" annotation.added events whose text starts with PREFIX.
journaled() {
    psql_state "SELECT count(*) || ' ' || count(DISTINCT detail->>'text') FROM events
                WHERE event_type = 'annotation.added' AND detail->>'text' LIKE '$1%'"
}

# journaled_exactly PREFIX N: N such events, all distinct.
journaled_exactly() {
    expect_eq "annotation.added events (total distinct) for ${1}*" "$(journaled "$1")" "$2 $2"
}

# rate_window NAME COUNTER_FN INTERVAL WINDOW: counts COUNTER_FN over WINDOW seconds; prints
# the figure and checks it is one per INTERVAL (not one per replica per INTERVAL).
rate_window() {
    local name="$1" fn="$2" interval="$3" window="$4" before after n expected
    before="$("${fn}")"
    sleep "${window}"
    after="$("${fn}")"
    n=$((after - before))
    expected=$((window / interval))
    printf '# %s: %d in %d s (one per %d s = %d)\n' "${name}" "${n}" "${window}" "${interval}" "${expected}"
    # A replica that did not claim would double the count; a stalled scheduler would halve it.
    expect_le "${name} in ${window} s" "${n}" $((expected + expected / 3 + 1)) || return 1
    expect_ge "${name} in ${window} s" "${n}" $(((expected + 1) / 2)) || return 1
}

# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

all_four_answer() {
    local url
    for url in "${HUB_A_URL}" "${HUB_B_URL}" "${DEV_R1_URL}" "${DEV_R2_URL}"; do
        expect_eq "${url}/readyz" "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "${url}/readyz")" 200 || return 1
    done
}
check "two state hubs and two dev-hub replicas answer /readyz on shared databases" all_four_answer

# purged_once URL_1 URL_2 TABLE DB_URL INSERT_SQL COUNT_SQL N: inserts N expired rows into TABLE
# with INSERT_SQL, waits until COUNT_SQL finds none, and checks that the two replicas' purge
# counters for TABLE grew by N together: every row purged once, by one of them.
purged_once() {
    local url1="$1" url2="$2" table="$3" db="$4" insert="$5" count="$6" n="$7" b1 b2 d1 d2
    b1="$(metric "${url1}" hub_purge_rows_total "table=\"${table}\"")"
    b2="$(metric "${url2}" hub_purge_rows_total "table=\"${table}\"")"
    psql "${db}" -X -q -v ON_ERROR_STOP=1 -c "${insert}" || return 1
    # shellcheck disable=SC2016 # expanded by the inner bash
    within $((PURGE_SECONDS * 3 + 10)) "the ${n} expired ${table} rows purged" \
        bash -c '[[ "$(psql "$1" -X -A -t -q -c "$2")" == 0 ]]' _ "${db}" "${count}" || return 1
    # The counters move after the batch commits; give the replicas' metrics a moment.
    sleep 1
    d1=$(($(metric "${url1}" hub_purge_rows_total "table=\"${table}\"") - b1))
    d2=$(($(metric "${url2}" hub_purge_rows_total "table=\"${table}\"") - b2))
    printf '# %s: %d expired rows purged, %d by one replica and %d by the other\n' "${table}" "${n}" "${d1}" "${d2}"
    expect_eq "${table} rows the two replicas report purged" $((d1 + d2)) "${n}"
}

state_hubs_purge_once() {
    purged_once "${HUB_A_URL}" "${HUB_B_URL}" idempotency_keys "${STACK_DB_URL}" \
        "INSERT INTO idempotency_keys (principal, key, request_hash, event_seqs, created_at)
         SELECT 'replicas-suite', 'k' || g, '\\x00', '{}', now() - interval '30 days'
         FROM generate_series(1, 500) g" \
        "SELECT count(*) FROM idempotency_keys WHERE principal = 'replicas-suite'" 500 || return 1
    local journal
    journal="$(psql_state "SELECT count(*) FROM events")"
    expect_ge "journal events after the purges" "${journal}" 1
}
check "state hubs A and B purge 500 expired idempotency records once between them (the journal untouched)" \
    state_hubs_purge_once

dev_replicas_purge_once() {
    purged_once "${DEV_R1_URL}" "${DEV_R2_URL}" outbox "${DEV_DB_URL}" \
        "INSERT INTO outbox (id, event, idempotency_key, created_at, delivered_at)
         SELECT gen_random_uuid(), '{}', 'replicas-suite-' || g, now() - interval '40 days',
                now() - interval '40 days'
         FROM generate_series(1, 300) g" \
        "SELECT count(*) FROM outbox WHERE idempotency_key LIKE 'replicas-suite-%'" 300
}
check "dev-hub r1 and r2 purge 300 long-delivered outbox rows once between them" dev_replicas_purge_once

both_poll_once() {
    local r1_before r2_before
    r1_before="$(requests "${DEV_R1_URL}")"
    r2_before="$(requests "${DEV_R2_URL}")"
    rate_window "polls of /deployments/status by both dev-hub replicas" polls "${POLL_SECONDS}" "${POLL_WINDOW}" || return 1
    printf '# dev-hub capability calls in the window: r1 %d, r2 %d\n' \
        $(($(requests "${DEV_R1_URL}") - r1_before)) $(($(requests "${DEV_R2_URL}") - r2_before))
}
check "each poll path is polled once per interval across both dev-hub replicas" both_poll_once

both_probe_once() {
    local a_before b_before
    a_before="$(requests "${HUB_A_URL}")"
    b_before="$(requests "${HUB_B_URL}")"
    rate_window "probes of deployments by both state hubs" probes "${PROBE_SECONDS}" "${PROBE_WINDOW}" || return 1
    printf '# state hub capability calls in the window: A %d, B %d\n' \
        $(($(requests "${HUB_A_URL}") - a_before)) $(($(requests "${HUB_B_URL}") - b_before))
}
check "each capability is probed once per interval across both state hubs" both_probe_once

RUN="replicas-$(date +%s)-${RANDOM}"
relays_once() {
    local i
    local -a pids=()
    for i in $(seq 1 20); do
        annotate "${DEV_R1_URL}" "${RUN}-both-r1-${i}" &
        pids+=($!)
        annotate "${DEV_R2_URL}" "${RUN}-both-r2-${i}" &
        pids+=($!)
    done
    local pid
    for pid in "${pids[@]}"; do
        wait "${pid}" || return 1
    done
    within 30 "40 annotations journaled once each" journaled_exactly "${RUN}-both-" 40 || return 1
    sleep 2
    journaled_exactly "${RUN}-both-" 40
}
check "annotations taken by both replicas reach the journal exactly once each" relays_once

kill_state_hub_a() {
    kill -KILL "${HUB_A_PID}"
    wait "${HUB_A_PID}" 2>/dev/null || true
    ! hp_pid_running "${HUB_A_PID}" || { echo "state hub A still runs"; return 1; }
    local i
    for i in $(seq 1 15); do
        annotate "${DEV_R1_URL}" "${RUN}-after-a-${i}" || return 1
    done
    # r1's relay cannot reach A; r2 claims the same outbox rows and delivers them through B.
    within 40 "the events r1 took relayed by r2 through B, once each" \
        journaled_exactly "${RUN}-after-a-" 15 || return 1
    sleep 2
    journaled_exactly "${RUN}-after-a-" 15
}
check "state hub A killed (SIGKILL): events dev-hub r1 takes are relayed by r2 through B, once each" \
    kill_state_hub_a

kill_dev_r1() {
    kill -KILL "${DEV_R1_PID}"
    wait "${DEV_R1_PID}" 2>/dev/null || true
    ! hp_pid_running "${DEV_R1_PID}" || { echo "dev-hub r1 still runs"; return 1; }
    # A poll r1 had claimed when it died is due again at once; give the schedule one interval.
    sleep "${POLL_SECONDS}"
    local r2_before
    r2_before="$(requests "${DEV_R2_URL}")"
    rate_window "polls of /deployments/status by r2 alone" polls "${POLL_SECONDS}" "${POLL_WINDOW}" || return 1
    expect_ge "r2's capability calls while alone" $(($(requests "${DEV_R2_URL}") - r2_before)) \
        $((POLL_WINDOW / POLL_SECONDS / 2)) || return 1
    local widgets
    widgets="$(printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"${DEV_TOKEN_FILE}")" \
        | curl -fsS --max-time 5 -H @- "${DEV_R2_URL}/api/v1/widgets")" || return 1
    jq -e '(.items | length) > 0 and all(.items[]; .freshness.state == "fresh")' <<<"${widgets}" >/dev/null \
        || { echo "r2's widgets are not fresh: $(jq -c '[.items[] | .freshness]' <<<"${widgets}")"; return 1; }
}
check "dev-hub r1 killed too: r2 polls alone, once per interval, its widgets fresh" kill_dev_r1

b_probes_alone() {
    rate_window "probes of deployments by B alone" probes "${PROBE_SECONDS}" "${PROBE_WINDOW}" || return 1
    annotate "${DEV_R2_URL}" "${RUN}-last" || return 1
    within 20 "the last annotation journaled" journaled_exactly "${RUN}-last" 1 || return 1
    "${BIN_DIR}/hubctl" --url "${HUB_B_URL}" --token-file "${STACK_TOKEN_FILE}" --timeout 10 \
        audit verify </dev/null || { echo "hubctl audit verify failed against B"; return 1; }
}
check "B probes alone once per interval; the journal's chain verifies" b_probes_alone

suite_finish
