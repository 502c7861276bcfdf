#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# The demo's management plane end to end: starts what ./scripts/demo.sh starts
# (scripts/lib/stack.sh: LDAP and OIDC stand-ins, the state hub with its age
# identity, the cluster stand-in over HTTPS with the test CA, the capability
# registrations walked to completed, dev-hub and ops-hub with their manifests
# activated) from $HUB_BIN_DIR on free loopback ports, each hub on a fresh
# database, polling every 10 s and probing every 2 s, then checks with hubctl,
# curl and jq:
#   - both domain hubs are registered and passing, their manifests active, the
#     capabilities completed and healthy, each hub's widgets fresh;
#   - the cluster stops: the widgets say "unreachable since …" and keep their
#     data, the hubs' pages, API and /readyz still answer, the state hub's probe
#     marks the capabilities unhealthy; it starts again: everything is fresh
#     and healthy again, and the journal tells the story once;
#   - the state hub stops: ops-hub takes an annotation into its outbox; the
#     state hub starts again: the annotation.added event is in its journal
#     exactly once, and the hash chain verifies.
# Bounded: about 40 s; everything after the package check ends within
# HUB_DEMO_STACK_BUDGET (default 180) s: the start gets what is left but 60 s,
# every wait is cut at the deadline.
# Environment: HUB_TEST_DATABASE_URL, HUB_BIN_DIR (tests/suites/README.md).
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
BUDGET="${HUB_DEMO_STACK_BUDGET:-180}"
POLL_SECONDS=10
PROBE_SECONDS=2

mkdir -p "${HUBPLANE_REPO}/.tmp"
WORK="$(mktemp -d "${HUBPLANE_REPO}/.tmp/demo-stack-suite.XXXXXX")"
STACK_DB_NAME=""

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [[ ${rc} -ne 0 ]]; then
        stack_suite_logs "${WORK}/stack" state-hub.log dev-hub.log ops-hub.log cluster/cluster.out oidc/oidc.out
    fi
    stack_suite_teardown "${WORK}/stack"
    rm -rf -- "${WORK}"
    rm -f -- "${TMPDIR:-/tmp}/hubplane-ports-$$"
    return "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stack_suite_require "${BIN_DIR}"

hp_step "packages"
stack_ensure_deps

# ---------------------------------------------------------------------------
# Start the plane
# ---------------------------------------------------------------------------

suite_init "${WORK}" "${BUDGET}"
DEADLINE="${SUITE_DEADLINE}"
DB_PREFIX="hubplane_demostack_$(date +%s)_${RANDOM}"
hp_step "starting the management plane"
# Another suite may take a port between the check and the bind: then once more on other
# ports. The stack starts in its own bash so that its errexit holds inside this `if`.
started=0
for attempt in 1 2 3; do
    start_budget=$((DEADLINE - SECONDS - 60))
    ((start_budget >= 30)) || break
    ports=()
    for _ in 1 2 3 4 5 6; do
        ports+=("$(hp_free_port)")
    done
    # shellcheck disable=SC2016 # expanded by the inner bash
    if timeout --kill-after=5 "${start_budget}" bash -c '
        set -euo pipefail
        shopt -s inherit_errexit
        source "$1"
        dir="$2" prefix="$3" bin_dir="$4" poll="$5" probe="$6"
        hub="$7" dev="$8" ops="$9" oidc="${10}" ldap="${11}" cluster="${12}"
        stack_up --dir "${dir}" --database "${prefix}_state" --bin-dir "${bin_dir}" \
            --hub-port "${hub}" --oidc-port "${oidc}" --ldap-port "${ldap}" \
            --client "dev-hub=http://127.0.0.1:${dev}" --client "ops-hub=http://127.0.0.1:${ops}" \
            --probe-interval "${probe}" --log-filter info
        stack_plane_up --cluster-port "${cluster}" --database-prefix "${prefix}" \
            --hub "dev-hub=${dev}" --hub "ops-hub=${ops}" --poll-seconds "${poll}" \
            --heartbeat-seconds 10 --callable-refresh-seconds 2
    ' stack "${HUBPLANE_REPO}/scripts/lib/stack.sh" "${WORK}/stack" "${DB_PREFIX}" "${BIN_DIR}" \
        "${POLL_SECONDS}" "${PROBE_SECONDS}" "${ports[@]}"; then
        started=1
        break
    fi
    stack_down "${WORK}/stack" || true
    hp_warn "the management plane did not start (attempt ${attempt} of 3)"
    [[ ${attempt} -lt 3 ]] || break
    # What the failed attempt created goes before the next one.
    if [[ -f "${WORK}/stack/stack.env" ]]; then
        stack_load "${WORK}/stack"
        stack_drop_database || true
    fi
done
[[ ${started} -eq 1 ]] || hp_die "the management plane did not start; see the errors above"
stack_load "${WORK}/stack"
DEV_URL="$(stack_domain_url dev-hub)"
OPS_URL="$(stack_domain_url ops-hub)"

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

# hubctl_as TOKEN_FILE ARGS...: hubctl --output json against the stack's state hub.
hubctl_as() {
    local token_file="$1"
    shift
    "${STACK_BIN_DIR}/hubctl" --url "${STACK_HUB_URL}" --token-file "${token_file}" \
        --output json --timeout 5 "$@" </dev/null
}

# admin ARGS...: hubctl as the bootstrap admin.
admin() {
    hubctl_as "${STACK_TOKEN_FILE}" "$@"
}

# hub_get HUB PATH [CURLARGS...]: GET on a domain hub with its API token; the body goes to
# WORK/body, the status is printed.
hub_get() {
    local hub="$1" path="$2"
    shift 2
    printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"$(stack_domain_token_file "${hub}")")" \
        | curl -sS --max-time 5 -H @- -o "${WORK}/body" -w '%{http_code}' "$@" \
            "$(stack_domain_url "${hub}")${path}"
}

# page URL JAR: GET a page with the session in JAR; the body goes to WORK/page, the status is
# printed.
page() {
    curl -sS --max-time 5 -b "$2" -o "${WORK}/page" -w '%{http_code}' "$1"
}

# widgets_are HUB STATE: every widget of HUB has freshness STATE and data to show.
widgets_are() {
    local json
    json="$(stack_widgets "$1")" || return 1
    printf '%s: %s\n' "$1" "$(jq -c '[.items[] | {name, state: .freshness.state, text: .freshness.text}]' <<<"${json}")"
    jq -e --arg s "$2" '(.items | length) > 0
        and all(.items[]; .freshness.state == $s and (.data | type == "array" and length > 0))' \
        <<<"${json}" >/dev/null
}

# events TYPE: the journal's events of TYPE (JSON array, oldest first).
events() {
    admin events list --type "$1" --asc --limit 500 | jq -c '.items'
}

# journaled_by_both_hubs TYPE: events of TYPE came from hub:dev-hub and hub:ops-hub.
journaled_by_both_hubs() {
    local authors
    authors="$(events "$1" | jq -c '[.[] | select(.author | startswith("hub:")) | .author] | unique')" || return 1
    expect_eq "authors of $1" "${authors}" '["hub:dev-hub","hub:ops-hub"]'
}

# outbox_drained HUB: nothing pending in the hub's outbox.
outbox_drained() {
    expect_eq "GET /api/v1/outbox" "$(hub_get "$1" '/api/v1/outbox?pending=true')" 200 || return 1
    jq -e '.backlog.pending == 0' "${WORK}/body"
}

# ---------------------------------------------------------------------------
# The plane is up
# ---------------------------------------------------------------------------

hubs_passing_with_active_manifests() {
    local json
    json="$(admin hubs list)" || return 1
    printf '%s\n' "$(jq -c '[.[] | {name, health, active_manifest, base_url}]' <<<"${json}")"
    jq -e --arg dev "${DEV_URL}/" --arg ops "${OPS_URL}/" '
        (map(select(.name == "dev-hub" and .kind == "dev" and .health == "passing"
                    and .active_manifest == "1.0.0" and .base_url == $dev)) | length == 1)
        and (map(select(.name == "ops-hub" and .kind == "ops" and .health == "passing"
                    and .active_manifest == "1.0.0" and .base_url == $ops)) | length == 1)' \
        <<<"${json}" >/dev/null
}
manifests_active() {
    local hub status
    for hub in dev-hub ops-hub; do
        status="$(admin manifests list "${hub}" | jq -r '[.[] | select(.version == "1.0.0")][0].status')" || return 1
        expect_eq "${hub}'s manifest 1.0.0" "${status}" active || return 1
    done
}
registered_and_passing() {
    within 25 "dev-hub and ops-hub passing with manifest 1.0.0 in hubctl hubs list" \
        hubs_passing_with_active_manifests || return 1
    manifests_active
}
check "dev-hub and ops-hub are registered in the state hub, passing, their manifests active" \
    registered_and_passing

capabilities_completed() {
    local json callable
    json="$(admin capabilities list)" || return 1
    jq -c '[(if type == "array" then . else .items end)[] | {name, status, health}]' <<<"${json}"
    jq -e '[(if type == "array" then . else .items end)[]
            | select(.status == "completed" and .health == "healthy") | .name] | sort
           == ["costs", "deployments", "nodes"]' <<<"${json}" >/dev/null || return 1
    # What the state hub hands ops-hub: what its active manifest uses, with the credential.
    callable="$(hubctl_as "${STACK_DIR}/secrets/ops-hub.state-hub.token" capabilities callable)" || return 1
    expect_eq "callable for ops-hub" "$(jq -c '[.items[].name] | sort' <<<"${callable}")" '["deployments","nodes"]' || return 1
    jq -e --rawfile t "${STACK_CLUSTER_TOKEN_FILE}" 'all(.items[]; .credential == ($t | rtrimstr("\n")))' \
        <<<"${callable}" >/dev/null || { echo "ops-hub is not handed the cluster's token"; return 1; }
}
check "deployments, nodes and costs are completed and healthy; ops-hub may call deployments and nodes" \
    capabilities_completed

every_widget_fresh() {
    within 20 "dev-hub's widgets fresh" widgets_are dev-hub fresh || return 1
    within 20 "ops-hub's widgets fresh" widgets_are ops-hub fresh
}
check "every widget of dev-hub and ops-hub is fresh and has data" every_widget_fresh

OPS_JAR="${WORK}/ops.jar"
STATE_JAR="${WORK}/state.jar"
pages_after_sso_login() {
    stack_browser_login "${OPS_URL}" bob "${OPS_JAR}" || return 1
    stack_browser_login "${STACK_HUB_URL}" alice "${STATE_JAR}" || return 1
    expect_eq "ops-hub /" "$(page "${OPS_URL}/" "${OPS_JAR}")" 200 || return 1
    grep -q 'fresh (' "${WORK}/page" || { echo "ops-hub's page says nothing fresh"; return 1; }
    expect_eq "state hub /capabilities" "$(page "${STACK_HUB_URL}/capabilities" "${STATE_JAR}")" 200 || return 1
    grep -q deployments "${WORK}/page" || { echo "no deployments on /capabilities"; return 1; }
    expect_eq "state hub /registry" "$(page "${STACK_HUB_URL}/registry" "${STATE_JAR}")" 200 || return 1
    grep -q ops-hub "${WORK}/page" || { echo "no ops-hub on /registry"; return 1; }
}
check "bob logs in to ops-hub and alice to the state hub through SSO; widgets, registry and capability pages answer" \
    pages_after_sso_login

# ---------------------------------------------------------------------------
# The cluster goes down and comes back
# ---------------------------------------------------------------------------

capability_health_is() {
    local health
    health="$(admin capabilities show deployments | jq -r .health)" || return 1
    expect_eq "deployments' health in the state hub" "${health}" "$1"
}

cluster_down_widgets_unreachable() {
    stop_cluster_standin "${STACK_CLUSTER_DIR}" || return 1
    ! hp_port_in_use "${STACK_CLUSTER_PORT}" || { echo "the cluster still listens"; return 1; }
    # One poll interval, plus the retries of the capability client.
    within $((POLL_SECONDS + 15)) "ops-hub's widgets unreachable" widgets_are ops-hub unreachable || return 1
    within $((POLL_SECONDS + 15)) "dev-hub's widgets unreachable" widgets_are dev-hub unreachable || return 1
    stack_widgets ops-hub | jq -e 'all(.items[]; (.freshness.text | startswith("unreachable since "))
        and .freshness.last_success_at != null and .freshness.unreachable_since != null)' >/dev/null \
        || { echo "the freshness lines do not say since when"; return 1; }
}
check "cluster stopped: within a poll interval every widget says 'unreachable since …' and keeps its last data" \
    cluster_down_widgets_unreachable

hubs_serve_while_cluster_down() {
    local hub
    for hub in dev-hub ops-hub; do
        expect_eq "${hub} /readyz" "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$(stack_domain_url "${hub}")/readyz")" 200 || return 1
        expect_eq "${hub} /api/v1/status" "$(hub_get "${hub}" /api/v1/status)" 200 || return 1
    done
    expect_eq "ops-hub / (bob's session)" "$(page "${OPS_URL}/" "${OPS_JAR}")" 200 || return 1
    grep -q 'unreachable since' "${WORK}/page" || { echo "ops-hub's page does not say unreachable"; return 1; }
    expect_eq "ops-hub /annotations" "$(page "${OPS_URL}/annotations" "${OPS_JAR}")" 200 || return 1
}
check "while the cluster is down the domain hubs' pages, API and /readyz answer 200" hubs_serve_while_cluster_down

state_hub_probe_unhealthy() {
    within $((PROBE_SECONDS * 3 + 10)) "the state hub's probe marks deployments unhealthy" \
        capability_health_is unhealthy || return 1
    expect_eq "state hub /capabilities/deployments" \
        "$(page "${STACK_HUB_URL}/capabilities/deployments" "${STATE_JAR}")" 200 || return 1
    grep -q unhealthy "${WORK}/page" || { echo "the capability page does not say unhealthy"; return 1; }
    expect_eq "capability.unhealthy events for deployments" \
        "$(events capability.unhealthy | jq '[.[] | select(.detail.capability == "deployments")] | length')" 1 || return 1
    # The hubs journal their outage through their outboxes too.
    within 15 "capability.unreachable from hub:dev-hub and hub:ops-hub in the journal" \
        journaled_by_both_hubs capability.unreachable
}
check "the state hub's probe marks the capability unhealthy (page and journal, once); the hubs journal the outage" \
    state_hub_probe_unhealthy

cluster_back_everything_fresh() {
    start_cluster_standin "${STACK_CLUSTER_DIR}" "${STACK_CLUSTER_PORT}" --cert "${STACK_DIR}/ca/server.pem" \
        --key "${STACK_DIR}/ca/server-key.pem" --ca "${STACK_CA_FILE}" \
        --token-file "${STACK_CLUSTER_TOKEN_FILE}" || return 1
    within $((POLL_SECONDS + 20)) "ops-hub's widgets fresh again" widgets_are ops-hub fresh || return 1
    within $((POLL_SECONDS + 20)) "dev-hub's widgets fresh again" widgets_are dev-hub fresh || return 1
    within $((PROBE_SECONDS * 3 + 10)) "deployments healthy again" capability_health_is healthy || return 1
    within 15 "capability.recovered from hub:dev-hub and hub:ops-hub in the journal" \
        journaled_by_both_hubs capability.recovered
}
check "cluster started again: every widget fresh, the capability healthy, the recovery journaled" \
    cluster_back_everything_fresh

# ---------------------------------------------------------------------------
# The state hub goes down: nothing is lost, nothing doubled
# ---------------------------------------------------------------------------

NOTE="demo-stack suite note $(date +%s)-${RANDOM}"
ANNOTATION_ID=""
annotation_waits_in_outbox() {
    stack_stop_state_hub "${STACK_DIR}" || return 1
    ! hp_port_in_use "${STACK_HUB_URL##*:}" || { echo "the state hub still listens"; return 1; }
    local status
    status="$(hub_get ops-hub /api/v1/annotations -H 'Content-Type: application/json' \
        --data "$(jq -cn --arg t "${NOTE}" '{category: "incident", target: "deployments", text: $t}')")"
    expect_eq "POST /api/v1/annotations" "${status}" 201 || { cat "${WORK}/body"; return 1; }
    ANNOTATION_ID="$(jq -r .id "${WORK}/body")"
    expect_eq "ops-hub /readyz" "$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "${OPS_URL}/readyz")" 200 || return 1
    expect_eq "ops-hub widgets" "$(hub_get ops-hub /api/v1/widgets)" 200 || return 1
    sleep 1
    expect_eq "GET /api/v1/outbox" "$(hub_get ops-hub '/api/v1/outbox?pending=true&limit=100')" 200 || return 1
    jq -e --arg id "${ANNOTATION_ID}" '[.items[] | select(.event.detail.annotation_id == $id and .delivered_at == null)] | length == 1' \
        "${WORK}/body" >/dev/null || { echo "the annotation's event is not pending in the outbox:"; jq -c . "${WORK}/body"; return 1; }
}
check "state hub stopped: ops-hub still serves, takes an annotation, its event waits in the outbox" \
    annotation_waits_in_outbox

annotation_arrives_once() {
    stack_start_state_hub "${STACK_DIR}" >/dev/null 2>&1 || { tail -n 20 "${STACK_HUB_LOG}"; return 1; }
    within 30 "ops-hub's outbox drained" outbox_drained ops-hub || return 1
    local mine
    mine="$(events annotation.added | jq -c --arg t "${NOTE}" '[.[] | select(.detail.text == $t)]')" || return 1
    expect_eq "annotation.added events with the note" "$(jq length <<<"${mine}")" 1 || return 1
    expect_eq "its author" "$(jq -r '.[0].author' <<<"${mine}")" "hub:ops-hub" || return 1
    expect_eq "its actor" "$(jq -r '.[0].detail.actor' <<<"${mine}")" alice || return 1
    expect_eq "its annotation id" "$(jq -r '.[0].detail.annotation_id' <<<"${mine}")" "${ANNOTATION_ID}" || return 1
    # Relays keep running: a second look a moment later still finds it once.
    sleep 2
    expect_eq "annotation.added events with the note, later" \
        "$(events annotation.added | jq --arg t "${NOTE}" '[.[] | select(.detail.text == $t)] | length')" 1 || return 1
    admin audit verify >/dev/null || { echo "hubctl audit verify failed"; return 1; }
}
check "state hub started again: the annotation.added event is in its journal exactly once; the chain verifies" \
    annotation_arrives_once

suite_finish
