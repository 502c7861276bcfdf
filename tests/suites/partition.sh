#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# A real network partition between the hubs and the cluster. The cluster
# stand-in (tests/standins/cluster) runs in its own network namespace behind a
# veth pair, on a private /30 (10.231.N.2, the host side 10.231.N.1), with a
# certificate from the test CA for that address; the hubs' SSRF guard allows
# exactly that /32. On top of it (scripts/lib/stack.sh, real PostgreSQL) the
# state hub probing every 2 s and ops-hub polling every 10 s, with short
# capability time-outs (connect 1 s, request 2 s, one retry) and a breaker that
# opens after 2 failed calls for 3 s. Then:
#   - healthy: ops-hub's widgets are fresh, its breakers closed, the state
#     hub's probe says healthy;
#   - cut: nftables in the namespace DROPS every packet on the veth, so calls
#     hang rather than fail (a curl to the stand-in, and even to a closed port
#     there, times out instead of being refused). While cut, every page and API
#     request to ops-hub (and its /readyz) answers 200 within 2 s; the widgets
#     turn "unreachable since …" and keep their last data; the breaker opens
#     (/api/v1/status, the capability_breaker_open gauge, the log); the state
#     hub's probe marks the capability unhealthy;
#   - heal: the rules go; the widgets are fresh again, the breaker goes
#     half-open, then closed, the probe says healthy again.
# Prints the time to detect, the time to recover and the slowest answer while
# cut. Needs root and `ip netns` (fails, saying so, where either is missing).
# Bounded: about 90 s after the packages, at most HUB_PARTITION_BUDGET (default
# 170) s. Environment: HUB_TEST_DATABASE_URL, HUB_BIN_DIR (tests/suites/README.md).
set -euo pipefail

SUITE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../scripts/lib/common.sh
source "${SUITE_DIR}/../../scripts/lib/common.sh"
# shellcheck source=../../scripts/lib/deps.sh
source "${SUITE_DIR}/../../scripts/lib/deps.sh"
# shellcheck source=../../scripts/lib/stack.sh
source "${SUITE_DIR}/../../scripts/lib/stack.sh"
# shellcheck source=../../scripts/lib/suite.sh
source "${SUITE_DIR}/../../scripts/lib/suite.sh"

BIN_DIR="${HUB_BIN_DIR:-${HUBPLANE_REPO}/target/debug}"
BUDGET="${HUB_PARTITION_BUDGET:-170}"
POLL_SECONDS=10
PROBE_SECONDS=2
BREAKER_FAILURES=2
BREAKER_OPEN_SECONDS=3
# Every page and API answer while cut must come within this.
LATENCY_BOUND_MS=2000
HUB=ops-hub

# Names are per run, so that two runs (or a leftover) never share them; veth names have at
# most 15 characters.
NETNS="hubplane-partition-$$"
VETH_HOST="hpp$$h"
VETH_NS="hpp$$n"
NFT_TABLE="hubplane_partition"
NETNS_CREATED=0

mkdir -p "${HUBPLANE_REPO}/.tmp"
WORK="$(mktemp -d "${HUBPLANE_REPO}/.tmp/partition-suite.XXXXXX")"
STACK_DB_NAME=""

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [[ ${rc} -ne 0 ]]; then
        stack_suite_logs "${WORK}/stack" state-hub.log "${HUB}.log" cluster/cluster.out cluster/cluster.log
    fi
    stack_suite_teardown "${WORK}/stack"
    # Deleting the namespace takes its end of the veth pair, and with it the other end, and
    # its nftables table.
    if [[ ${NETNS_CREATED} -eq 1 ]]; then
        ip netns del "${NETNS}" 2>/dev/null || hp_warn "could not delete network namespace ${NETNS}"
    fi
    if ip link show "${VETH_HOST}" >/dev/null 2>&1; then
        ip link del "${VETH_HOST}" 2>/dev/null || hp_warn "could not delete ${VETH_HOST}"
    fi
    rm -rf -- "${WORK}"
    rm -f -- "${TMPDIR:-/tmp}/hubplane-ports-$$"
    return "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stack_suite_require "${BIN_DIR}"
[[ "${EUID}" -eq 0 ]] \
    || hp_die "this suite needs root: it creates a network namespace, a veth pair and nftables rules (run it as root; CI does)"

hp_step "packages"
stack_ensure_deps
ensure_debian_packages iproute2 nftables
command -v ip >/dev/null 2>&1 || hp_die "ip (iproute2) not found"
command -v nft >/dev/null 2>&1 || hp_die "nft (nftables) not found"

# ---------------------------------------------------------------------------
# The namespace and the link
# ---------------------------------------------------------------------------

hp_step "network namespace ${NETNS} and veth ${VETH_HOST} <-> ${VETH_NS}"
# A run killed with SIGKILL could not clean up: its namespace (named after its pid) goes now.
while IFS= read -r leftover; do
    leftover="${leftover%% *}"
    if [[ "${leftover}" =~ ^hubplane-partition-([0-9]+)$ ]] && ! kill -0 "${BASH_REMATCH[1]}" 2>/dev/null; then
        hp_info "removing the namespace ${leftover} of a run that is gone"
        ip netns del "${leftover}" 2>/dev/null || true
    fi
done < <(ip netns list 2>/dev/null || true)
if ! ip netns add "${NETNS}" 2>"${WORK}/netns.err"; then
    hp_die "ip netns add is not permitted here ($(tr '\n' ' ' <"${WORK}/netns.err")): this suite needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN; it cannot run in this environment"
fi
NETNS_CREATED=1
# A /30 nobody on this host uses yet.
SUBNET=""
for _ in $(seq 1 50); do
    candidate="10.231.$((RANDOM % 256))"
    if ! ip -4 -o addr show | grep -qF " ${candidate}." && [[ -z "$(ip -4 route show "${candidate}.0/30")" ]]; then
        SUBNET="${candidate}"
        break
    fi
done
[[ -n "${SUBNET}" ]] || hp_die "no free 10.231.N.0/30 on this host"
HOST_IP="${SUBNET}.1"
CLUSTER_IP="${SUBNET}.2"
{
    ip link add "${VETH_HOST}" type veth peer name "${VETH_NS}"
    ip link set "${VETH_NS}" netns "${NETNS}"
    ip addr add "${HOST_IP}/30" dev "${VETH_HOST}"
    ip link set "${VETH_HOST}" up
    ip netns exec "${NETNS}" ip addr add "${CLUSTER_IP}/30" dev "${VETH_NS}"
    ip netns exec "${NETNS}" ip link set "${VETH_NS}" up
    ip netns exec "${NETNS}" ip link set lo up
} 2>"${WORK}/veth.err" || hp_die "could not set up the veth pair: $(tr '\n' ' ' <"${WORK}/veth.err")"
hp_info "host ${HOST_IP} (${VETH_HOST}), cluster ${CLUSTER_IP} (${VETH_NS} in ${NETNS})"

# cut_link: every packet on the veth, both ways, is dropped inside the namespace (the host's
# own firewall is left alone). heal_link: the rules go.
cut_link() {
    ip netns exec "${NETNS}" nft -f - <<NFT
table inet ${NFT_TABLE} {
    chain input {
        type filter hook input priority -300; policy accept;
        iifname "${VETH_NS}" drop
    }
    chain output {
        type filter hook output priority -300; policy accept;
        oifname "${VETH_NS}" drop
    }
}
NFT
}
heal_link() {
    ip netns exec "${NETNS}" nft delete table inet "${NFT_TABLE}"
}

# ---------------------------------------------------------------------------
# Start the plane
# ---------------------------------------------------------------------------

suite_init "${WORK}" "${BUDGET}"
DEADLINE="${SUITE_DEADLINE}"
DB_PREFIX="hubplane_partition_$(date +%s)_${RANDOM}"
hp_step "starting the state hub, the cluster stand-in in ${NETNS} and ${HUB}"
# Another suite may take a port between the check and the bind: then once more on other
# ports. The stack starts in its own bash so that its errexit holds inside this `if`.
started=0
for attempt in 1 2; do
    start_budget=$((DEADLINE - SECONDS - 90))
    ((start_budget >= 30)) || break
    ports=()
    for _ in 1 2 3 4 5; do
        ports+=("$(hp_free_port)")
    done
    # shellcheck disable=SC2016 # expanded by the inner bash
    if timeout --kill-after=5 "${start_budget}" bash -c '
        set -euo pipefail
        shopt -s inherit_errexit
        source "$1"
        dir="$2" prefix="$3" bin_dir="$4" poll="$5" probe="$6" hub="$7" ip="$8" netns="$9"
        failures="${10}" open="${11}" hub_port="${12}" ops="${13}" oidc="${14}" ldap="${15}" cluster="${16}"
        stack_up --dir "${dir}" --database "${prefix}_state" --bin-dir "${bin_dir}" \
            --hub-port "${hub_port}" --oidc-port "${oidc}" --ldap-port "${ldap}" \
            --client "${hub}=http://127.0.0.1:${ops}" --probe-interval "${probe}" --log-filter info \
            --allow-cidr "${ip}/32" \
            --capability-option connect_timeout_ms=1000 --capability-option request_timeout_ms=2000 \
            --capability-option max_retries=1 --capability-option "breaker_failures=${failures}" \
            --capability-option "breaker_open_seconds=${open}"
        stack_plane_up --cluster-port "${cluster}" --cluster-host "${ip}" --cluster-netns "${netns}" \
            --database-prefix "${prefix}" --hub "${hub}=${ops}" --poll-seconds "${poll}" \
            --heartbeat-seconds 10 --callable-refresh-seconds 2
    ' stack "${HUBPLANE_REPO}/scripts/lib/stack.sh" "${WORK}/stack" "${DB_PREFIX}" "${BIN_DIR}" \
        "${POLL_SECONDS}" "${PROBE_SECONDS}" "${HUB}" "${CLUSTER_IP}" "${NETNS}" \
        "${BREAKER_FAILURES}" "${BREAKER_OPEN_SECONDS}" "${ports[@]}"; then
        started=1
        break
    fi
    stack_down "${WORK}/stack" || true
    hp_warn "the management plane did not start (attempt ${attempt} of 2)"
    [[ ${attempt} -lt 2 ]] || break
    if [[ -f "${WORK}/stack/stack.env" ]]; then
        stack_load "${WORK}/stack"
        stack_drop_database || true
    fi
done
[[ ${started} -eq 1 ]] || hp_die "the management plane did not start; see the errors above"
stack_load "${WORK}/stack"
HUB_URL="$(stack_domain_url "${HUB}")"
HUB_TOKEN_FILE="$(stack_domain_token_file "${HUB}")"
CLUSTER_BASE="https://${CLUSTER_IP}:${STACK_CLUSTER_PORT}"
JAR="${WORK}/bob.jar"

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

# now_ms: wall clock in milliseconds.
now_ms() {
    local t="${EPOCHREALTIME/[.,]/}"
    printf '%s' "$((t / 1000))"
}

# secs MS: MS as seconds with one decimal.
secs() {
    printf '%d.%d' "$(($1 / 1000))" "$((($1 % 1000) / 100))"
}

admin() {
    "${STACK_BIN_DIR}/hubctl" --url "${STACK_HUB_URL}" --token-file "${STACK_TOKEN_FILE}" \
        --output json --timeout 5 "$@" </dev/null
}

# hub_api PATH: GET PATH on the hub with its API token; body in WORK/body, prints
# "STATUS SECONDS".
hub_api() {
    printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"${HUB_TOKEN_FILE}")" \
        | curl -sS --max-time 10 -H @- -o "${WORK}/body" -w '%{http_code} %{time_total}' "${HUB_URL}$1"
}

# hub_page PATH: GET PATH with bob's browser session; body in WORK/page, prints "STATUS SECONDS".
hub_page() {
    curl -sS --max-time 10 -b "${JAR}" -o "${WORK}/page" -w '%{http_code} %{time_total}' "${HUB_URL}$1"
}

# hub_plain PATH: GET PATH without credentials (health, metrics); body in WORK/plain.
hub_plain() {
    curl -sS --max-time 10 -o "${WORK}/plain" -w '%{http_code} %{time_total}' "${HUB_URL}$1"
}

# cluster_curl PORT PATH: an HTTPS GET to the stand-in's address straight from the host,
# given at most 3 s; prints "CURL_EXIT HTTP_CODE MILLISECONDS".
cluster_curl() {
    local out rc=0 started
    started="$(now_ms)"
    out="$(curl -sS --max-time 3 --cacert "${STACK_CA_FILE}" -o /dev/null -w '%{http_code}' \
        "https://${CLUSTER_IP}:$1$2" 2>/dev/null)" || rc=$?
    printf '%s %s %s' "${rc}" "${out:-000}" "$(($(now_ms) - started))"
}

# breaker STATUS_JSON CAPABILITY: the breaker state /api/v1/status shows.
breaker_in() {
    jq -r --arg c "$2" '.capabilities[] | select(.name == $c) | .breaker.state' <<<"$1"
}

# gauge NAME: the capability_breaker_open gauge of NAME on the hub's /metrics (0 when absent).
breaker_gauge() {
    local code
    code="$(hub_plain /metrics)"
    [[ "${code%% *}" == 200 ]] || return 1
    awk -v n="capability_breaker_open{capability=\"$1\"}" '$1 == n { v = $2 } END { print v + 0 }' "${WORK}/plain"
}

probe_health() {
    admin capabilities show deployments | jq -r .health
}

probe_is() {
    expect_eq "deployments' health in the state hub" "$(probe_health)" "$1"
}

# widgets_are STATE: every widget of the hub has freshness STATE and data to show.
widgets_are() {
    local json
    json="$(stack_widgets "${HUB}")" || return 1
    printf '%s\n' "$(jq -c '[.items[] | {name, state: .freshness.state, text: .freshness.text}]' <<<"${json}")"
    jq -e --arg s "$1" '(.items | length) > 0
        and all(.items[]; .freshness.state == $s and (.data | type == "array" and length > 0))' \
        <<<"${json}" >/dev/null
}

# Figures.
MAX_CUT_MS=0
MAX_CUT_WHAT=""
CUT_SAMPLES=0
CUT_AT=0
HEAL_AT=0
T_UNREACHABLE=""
T_BREAKER_OPEN=""
T_PROBE_UNHEALTHY=""
T_FRESH=""
T_BREAKER_CLOSED=""
T_PROBE_HEALTHY=""
HEAL_BREAKER_STATES=""

# timed WHAT OUTPUT: OUTPUT is "STATUS SECONDS" of one request made while cut; it must be 200
# within the bound. Keeps the slowest. Returns 2 (final, not "not yet") when it is not.
timed() {
    local what="$1" code="${2%% *}" seconds="${2#* }" ms
    ms="$(awk -v s="${seconds}" 'BEGIN { printf "%d", s * 1000 }')"
    CUT_SAMPLES=$((CUT_SAMPLES + 1))
    if ((ms > MAX_CUT_MS)); then
        MAX_CUT_MS="${ms}"
        MAX_CUT_WHAT="${what}"
    fi
    expect_eq "${what} while cut" "${code}" 200 || return 2
    expect_le "${what} while cut (ms)" "${ms}" "${LATENCY_BOUND_MS}" || return 2
}

# ---------------------------------------------------------------------------
# Healthy
# ---------------------------------------------------------------------------

in_its_own_namespace() {
    local pid ns_ino own_ino base cidrs
    pid="$(cat "${STACK_CLUSTER_DIR}/cluster.pid")"
    ns_ino="$(stat -L -c %i "/run/netns/${NETNS}")" || return 1
    own_ino="$(stat -L -c %i /proc/self/ns/net)" || return 1
    expect_eq "network namespace of the stand-in (pid ${pid})" "$(stat -L -c %i "/proc/${pid}/ns/net")" "${ns_ino}" || return 1
    [[ "${ns_ino}" != "${own_ino}" ]] || { echo "the namespace is the host's"; return 1; }
    # Not on the host's loopback: nothing answers the stand-in's port there.
    ! hp_port_in_use "${STACK_CLUSTER_PORT}" || { echo "something listens on 127.0.0.1:${STACK_CLUSTER_PORT}"; return 1; }
    base="$(admin capabilities show deployments | jq -r .base_url)" || return 1
    expect_eq "deployments' base URL" "${base}" "${CLUSTER_BASE}/deployments" || return 1
    # The SSRF guard lets exactly the stand-in's address through, nothing else.
    for cidrs in "${STACK_HUB_CONFIG}" "${STACK_DIR}/${HUB}.toml"; do
        expect_eq "allow_cidrs in $(basename "${cidrs}")" "$(grep '^allow_cidrs' "${cidrs}")" \
            "allow_cidrs = [\"${CLUSTER_IP}/32\"]" || return 1
    done
    # Its certificate names the address: curl checks it against the test CA.
    local r
    r="$(cluster_curl "${STACK_CLUSTER_PORT}" /healthz)"
    expect_eq "curl to ${CLUSTER_BASE}/healthz (exit, HTTP)" "${r% *}" "0 401" || return 1
}
check "the cluster stand-in runs in ${NETNS} on ${CLUSTER_IP} with a certificate for it; the SSRF guard allows exactly ${CLUSTER_IP}/32" \
    in_its_own_namespace

REFUSED_BEFORE=""
healthy() {
    within 20 "${HUB}'s widgets fresh" widgets_are fresh || return 1
    local status cap
    status="$(stack_widgets "${HUB}" >/dev/null && hub_api /api/v1/status)" || return 1
    expect_eq "GET /api/v1/status" "${status%% *}" 200 || return 1
    for cap in deployments nodes; do
        expect_eq "${cap}'s breaker" "$(breaker_in "$(cat "${WORK}/body")" "${cap}")" closed || return 1
        expect_eq "capability_breaker_open{${cap}}" "$(breaker_gauge "${cap}")" 0 || return 1
    done
    within $((PROBE_SECONDS * 3 + 10)) "the state hub's probe says deployments is healthy" \
        probe_is healthy || return 1
    # Before the cut a closed port in the namespace refuses at once (RST).
    REFUSED_BEFORE="$(cluster_curl 9 /)"
    expect_eq "curl to ${CLUSTER_IP}:9 before the cut (exit)" "${REFUSED_BEFORE%% *}" 7 || return 1
    stack_browser_login "${HUB_URL}" bob "${JAR}" || return 1
    local page
    page="$(hub_page /)"
    expect_eq "${HUB} / (bob's session)" "${page%% *}" 200 || return 1
    grep -q 'fresh (' "${WORK}/page" || { echo "${HUB}'s page says nothing fresh"; return 1; }
}
check "healthy: ${HUB}'s widgets fresh with data, breakers closed, the probe healthy, bob's page answers" healthy

# ---------------------------------------------------------------------------
# Cut
# ---------------------------------------------------------------------------

cut_is_a_drop() {
    cut_link || return 1
    CUT_AT="$(now_ms)"
    local r
    r="$(cluster_curl "${STACK_CLUSTER_PORT}" /healthz)"
    # 28: curl's time-out. A reset or an ICMP error would be 7 and come at once.
    expect_eq "curl to ${CLUSTER_BASE}/healthz while cut (exit, HTTP)" "${r% *}" "28 000" || return 1
    expect_ge "its wait (ms)" "${r##* }" 2900 || return 1
    r="$(cluster_curl 9 /)"
    expect_eq "curl to ${CLUSTER_IP}:9 while cut (exit; it was ${REFUSED_BEFORE%% *}, refused, before)" "${r%% *}" 28 || return 1
    printf '# cut at %s: curl to the stand-in hangs until its 3 s time-out (a closed port too)\n' \
        "$(date -u +%T)"
}
check "cut: packets on the veth are dropped (curl times out instead of being refused)" cut_is_a_drop

# while_cut_sample: one round of the requests a user and an operator make while cut, each timed
# (returns 2 when one fails or is too slow); notes when the widgets, the breaker and the probe
# first show the cut. 0 once all three have.
while_cut_sample() {
    local out
    out="$(hub_page /)" || return 2
    timed "GET / (bob)" "${out}" || return 2
    out="$(hub_page /annotations)" || return 2
    timed "GET /annotations (bob)" "${out}" || return 2
    out="$(hub_api /api/v1/widgets)" || return 2
    timed "GET /api/v1/widgets" "${out}" || return 2
    if [[ -z "${T_UNREACHABLE}" ]] && jq -e '(.items | length) > 0 and all(.items[];
            .freshness.state == "unreachable" and (.data | length > 0))' "${WORK}/body" >/dev/null; then
        T_UNREACHABLE=$(($(now_ms) - CUT_AT))
    fi
    out="$(hub_api /api/v1/status)" || return 2
    timed "GET /api/v1/status" "${out}" || return 2
    if [[ -z "${T_BREAKER_OPEN}" && "$(breaker_in "$(cat "${WORK}/body")" deployments)" == open ]]; then
        T_BREAKER_OPEN=$(($(now_ms) - CUT_AT))
    fi
    out="$(hub_api "/api/v1/observations?capability=deployments&path=/status&limit=5")" || return 2
    timed "GET /api/v1/observations?capability=deployments" "${out}" || return 2
    out="$(hub_plain /readyz)" || return 2
    timed "GET /readyz" "${out}" || return 2
    out="$(hub_plain /metrics)" || return 2
    timed "GET /metrics" "${out}" || return 2
    if [[ -z "${T_PROBE_UNHEALTHY}" && "$(probe_health)" == unhealthy ]]; then
        T_PROBE_UNHEALTHY=$(($(now_ms) - CUT_AT))
    fi
    [[ -n "${T_UNREACHABLE}" && -n "${T_BREAKER_OPEN}" && -n "${T_PROBE_UNHEALTHY}" ]]
}

while_cut() {
    # Two failed polls open the breaker: two poll intervals, the retries, and some slack.
    local bound=$((2 * POLL_SECONDS + 20)) limit rc
    limit=$((SECONDS + bound))
    while true; do
        rc=0
        while_cut_sample || rc=$?
        ((rc != 0)) || break
        ((rc != 2)) || return 1
        if ((SECONDS >= limit || SECONDS >= DEADLINE)); then
            printf 'not within %s s of the cut: widgets unreachable (%s ms), breaker open (%s ms), probe unhealthy (%s ms)\n' \
                "${bound}" "${T_UNREACHABLE:-no}" "${T_BREAKER_OPEN:-no}" "${T_PROBE_UNHEALTHY:-no}"
            stack_widgets "${HUB}" | jq -c '[.items[] | {name, freshness}]' || true
            if hub_api /api/v1/status >/dev/null; then
                jq -c '.capabilities' "${WORK}/body" || true
            fi
            return 1
        fi
        sleep 0.5
    done
    printf '# while cut: %d requests to %s answered 200, the slowest in %d ms (%s); bound %d ms\n' \
        "${CUT_SAMPLES}" "${HUB}" "${MAX_CUT_MS}" "${MAX_CUT_WHAT}" "${LATENCY_BOUND_MS}"
    printf '# detected after the cut: widgets unreachable %s s, breaker open %s s, probe unhealthy %s s\n' \
        "$(secs "${T_UNREACHABLE}")" "$(secs "${T_BREAKER_OPEN}")" "$(secs "${T_PROBE_UNHEALTHY}")"
}
check "while cut: every page and API request to ${HUB} and its /readyz answer 200 within ${LATENCY_BOUND_MS} ms until the widgets, the breaker and the probe all show the cut" \
    while_cut

# cut_shown_everywhere: what the widgets, the breaker and the probe say, in detail.
cut_shown_everywhere() {
    local json cut_iso cap state
    json="$(stack_widgets "${HUB}")" || return 1
    cut_iso="$(date -u -d "@$((CUT_AT / 1000))" +%FT%TZ)"
    # Still unreachable (not fresh again), with the data from before the cut, said so.
    jq -e --arg cut "${cut_iso}" '(.items | length) == 2 and all(.items[];
            .freshness.state == "unreachable"
            and (.freshness.text | startswith("unreachable since ") and contains("showing data from"))
            and .freshness.unreachable_since != null
            and (.freshness.last_success_at | sub("\\.[0-9]+"; "") | sub("\\+00:00$"; "Z")) <= $cut
            and (.data | type == "array" and length > 0))' <<<"${json}" >/dev/null \
        || { echo "the widgets do not say unreachable with their last data:"; jq -c '[.items[] | {name, freshness, n: (.data | length)}]' <<<"${json}"; return 1; }
    local out
    out="$(hub_page /)"
    expect_eq "${HUB} / (bob)" "${out%% *}" 200 || return 1
    grep -q 'unreachable since' "${WORK}/page" || { echo "bob's page does not say unreachable"; return 1; }
    # The breakers: open or half-open (a trial is due), never closed, while cut.
    out="$(hub_api /api/v1/status)"
    for cap in deployments nodes; do
        state="$(breaker_in "$(cat "${WORK}/body")" "${cap}")"
        [[ "${state}" == open || "${state}" == half_open ]] || { echo "${cap}'s breaker is ${state} while cut"; return 1; }
        expect_eq "capability_breaker_open{${cap}}" "$(breaker_gauge "${cap}")" 1 || return 1
    done
    grep -q 'capability circuit breaker opened' "${STACK_DIR}/${HUB}.log" \
        || { echo "no 'capability circuit breaker opened' in ${HUB}'s log"; return 1; }
    # The state hub's probe: unhealthy, with the time-out as its error.
    json="$(admin capabilities show deployments)" || return 1
    jq -e '.health == "unhealthy" and (.last_error | type == "string" and length > 0)' <<<"${json}" >/dev/null \
        || { echo "the probe's verdict:"; jq -c '{health, last_error}' <<<"${json}"; return 1; }
    printf '# probe error while cut: %s\n' "$(jq -r .last_error <<<"${json}" | cut -c1-120)"
}
check "while cut: the widgets say 'unreachable since … showing data from' the time before the cut; both breakers are open (status, gauge, log); the probe says unhealthy" \
    cut_shown_everywhere

# ---------------------------------------------------------------------------
# Heal
# ---------------------------------------------------------------------------

heal_sample() {
    local json state
    if [[ -z "${T_FRESH}" ]] && widgets_are fresh >/dev/null 2>&1; then
        T_FRESH=$(($(now_ms) - HEAL_AT))
    fi
    if hub_api /api/v1/status >/dev/null; then
        json="$(cat "${WORK}/body")"
        state="$(breaker_in "${json}" deployments)"
        [[ "${HEAL_BREAKER_STATES##* }" == "${state}" ]] || HEAL_BREAKER_STATES+="${HEAL_BREAKER_STATES:+ }${state}"
        if [[ -z "${T_BREAKER_CLOSED}" && "${state}" == closed && "$(breaker_in "${json}" nodes)" == closed ]]; then
            T_BREAKER_CLOSED=$(($(now_ms) - HEAL_AT))
        fi
    fi
    if [[ -z "${T_PROBE_HEALTHY}" && "$(probe_health)" == healthy ]]; then
        T_PROBE_HEALTHY=$(($(now_ms) - HEAL_AT))
    fi
    [[ -n "${T_FRESH}" && -n "${T_BREAKER_CLOSED}" && -n "${T_PROBE_HEALTHY}" ]]
}

healed() {
    heal_link || return 1
    HEAL_AT="$(now_ms)"
    local r bound=$((2 * POLL_SECONDS + 15)) limit
    r="$(cluster_curl "${STACK_CLUSTER_PORT}" /healthz)"
    expect_eq "curl to ${CLUSTER_BASE}/healthz after the heal (exit, HTTP)" "${r% *}" "0 401" || return 1
    limit=$((SECONDS + bound))
    until heal_sample; do
        if ((SECONDS >= limit || SECONDS >= DEADLINE)); then
            printf 'not within %s s of the heal: widgets fresh (%s ms), breakers closed (%s ms), probe healthy (%s ms); breaker states seen: %s\n' \
                "${bound}" "${T_FRESH:-no}" "${T_BREAKER_CLOSED:-no}" "${T_PROBE_HEALTHY:-no}" "${HEAL_BREAKER_STATES}"
            return 1
        fi
        sleep 0.5
    done
    # From open through a trial (half-open) to closed: the trial call closed it.
    [[ " ${HEAL_BREAKER_STATES} " == *" half_open "*closed" " ]] \
        || { echo "deployments' breaker went ${HEAL_BREAKER_STATES}, not through half_open to closed"; return 1; }
    expect_eq "deployments' breaker now" "${HEAL_BREAKER_STATES##* }" closed || return 1
    local cap
    for cap in deployments nodes; do
        expect_eq "capability_breaker_open{${cap}}" "$(breaker_gauge "${cap}")" 0 || return 1
    done
    grep -q 'capability circuit breaker closed' "${STACK_DIR}/${HUB}.log" \
        || { echo "no 'capability circuit breaker closed' in ${HUB}'s log"; return 1; }
    widgets_are fresh >/dev/null || { echo "the widgets are not fresh any more"; return 1; }
    printf '# recovered after the heal: widgets fresh %s s, breakers closed %s s (deployments: %s), probe healthy %s s\n' \
        "$(secs "${T_FRESH}")" "$(secs "${T_BREAKER_CLOSED}")" "${HEAL_BREAKER_STATES// / -> }" "$(secs "${T_PROBE_HEALTHY}")"
}
check "heal: the widgets are fresh again, the breakers go half-open then closed, the probe says healthy" healed

# journaled TYPE AUTHOR: the journal holds an event of TYPE by AUTHOR.
journaled() {
    local n
    n="$(admin events list --type "$1" --asc --limit 500 \
        | jq --arg a "$2" '[.items[] | select(.author == $a)] | length')" || return 1
    expect_ge "$1 events by $2" "${n}" 1
}
outage_journaled() {
    within 15 "capability.unreachable from hub:${HUB}" journaled capability.unreachable "hub:${HUB}" || return 1
    within 15 "capability.recovered from hub:${HUB}" journaled capability.recovered "hub:${HUB}" || return 1
    journaled capability.unhealthy state-hub || return 1
    journaled capability.recovered state-hub
}
check "the journal tells the story: ${HUB}'s capability.unreachable and .recovered, the probe's capability.unhealthy and .recovered" \
    outage_journaled

printf '\n# partition figures (poll every %s s, probe every %s s, connect 1 s / request 2 s time-outs, breaker %s failures / %s s):\n' \
    "${POLL_SECONDS}" "${PROBE_SECONDS}" "${BREAKER_FAILURES}" "${BREAKER_OPEN_SECONDS}"
printf '#   time to detect:  widgets unreachable %s s, breaker open %s s, probe unhealthy %s s\n' \
    "$(secs "${T_UNREACHABLE:-0}")" "$(secs "${T_BREAKER_OPEN:-0}")" "$(secs "${T_PROBE_UNHEALTHY:-0}")"
printf '#   time to recover: widgets fresh %s s, breakers closed %s s, probe healthy %s s\n' \
    "$(secs "${T_FRESH:-0}")" "$(secs "${T_BREAKER_CLOSED:-0}")" "$(secs "${T_PROBE_HEALTHY:-0}")"
printf '#   max latency while cut: %d ms (%s) over %d requests\n' "${MAX_CUT_MS}" "${MAX_CUT_WHAT:-none}" "${CUT_SAMPLES}"
suite_finish
