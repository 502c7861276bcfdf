#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# The cluster stand-in behaves as tests/standins/cluster/README.md says: starts
# it over HTTPS (test CA) on a free loopback port and drives its capability
# interfaces, its freeze action and its control API with curl and jq, then
# stops it and starts it again on the same port.
set -euo pipefail

SUITE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../scripts/lib/common.sh
source "${SUITE_DIR}/../../scripts/lib/common.sh"
# shellcheck source=../../scripts/lib/deps.sh
source "${SUITE_DIR}/../../scripts/lib/deps.sh"
# shellcheck source=../../scripts/lib/standins.sh
source "${SUITE_DIR}/../../scripts/lib/standins.sh"

ensure_debian_packages python3 openssl curl jq

mkdir -p "${HUBPLANE_REPO}/.tmp"
WORK="$(mktemp -d "${HUBPLANE_REPO}/.tmp/cluster-suite.XXXXXX")"
CL="${WORK}/cluster"
CA="${WORK}/ca/ca.pem"

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    stop_cluster_standin "${CL}" || true
    stop_cluster_standin "${WORK}/other" || true
    rm -rf -- "${WORK}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0

# check NAME CMD...: runs CMD in this shell (so it may set variables), its
# output kept aside; prints "ok - NAME", or "not ok - NAME" and that output.
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


PORT="$(hp_free_port)"
URL="https://127.0.0.1:${PORT}"
make_test_ca "${WORK}/ca"

# Tokens travel in header files (curl -H @FILE), never on a command line.
TOKEN_FILE="${WORK}/capability.token"
umask_old="$(umask)"
umask 077
printf 'cap-%s\n' "$(openssl rand -hex 24)" >"${TOKEN_FILE}"
umask "${umask_old}"
printf 'Authorization: Bearer %s\n' "$(cat "${TOKEN_FILE}")" >"${WORK}/cap.hdr"
printf 'Authorization: Bearer %s\n' "wrong-$(openssl rand -hex 24)" >"${WORK}/wrong.hdr"
: >"${WORK}/none.hdr"
write_control_header() {
    printf 'Authorization: Bearer %s\n' "$(cat "${CL}/control.token")" >"${WORK}/control.hdr"
}

# call HDR METHOD PATH [CURLARGS...]: one request with the headers in
# WORK/HDR.hdr; the body in WORK/body, the headers in WORK/headers; prints the
# status (000 when there was no HTTP answer).
call() {
    local hdr="$1" method="$2" path="$3"
    shift 3
    curl -sS --cacert "${CA}" --max-time 20 -X "${method}" -H "@${WORK}/${hdr}.hdr" \
        -o "${WORK}/body" -D "${WORK}/headers" -w '%{http_code}' "$@" "${URL}${path}" || true
}

# header NAME: the value of that response header in WORK/headers.
header() {
    tr -d '\r' <"${WORK}/headers" | sed -n "s/^$1: //Ip" | tail -n 1
}

# post_json HDR PATH JSON [CURLARGS...]
post_json() {
    local hdr="$1" path="$2" json="$3"
    shift 3
    call "${hdr}" POST "${path}" -H 'Content-Type: application/json' --data-binary "${json}" "$@"
}

start_cluster() {
    start_cluster_standin "${CL}" "${PORT}" --cert "${WORK}/ca/server.pem" \
        --key "${WORK}/ca/server-key.pem" --token-file "${TOKEN_FILE}" --tick 1 \
        >"${WORK}/start.out" 2>"${WORK}/start.err"
}

hp_step "cluster stand-in on ${URL}"

starts_fast_and_says_ready() {
    local t0 t1 ms
    t0="$(date +%s%N)"
    start_cluster || { cat "${WORK}/start.err"; return 1; }
    t1="$(date +%s%N)"
    ms=$(((t1 - t0) / 1000000))
    expect_eq "ready line" "$(cat "${WORK}/start.out")" "CLUSTER ready at ${URL}" || return 1
    [[ -s "${CL}/cluster.pid" ]] || { echo "no cluster.pid"; return 1; }
    [[ -s "${CL}/control.token" ]] || { echo "no control.token"; return 1; }
    expect_eq "control.token mode" "$(stat -c %a "${CL}/control.token")" "600" || return 1
    grep -qF "${CL}/control.token" "${WORK}/start.err" || { echo "control token path not printed"; return 1; }
    echo "started in ${ms} ms"
    ((ms < 2000)) || { echo "start-up took ${ms} ms"; return 1; }
}
check "start: ready line after a verified /healthz, pid file, control token (0600), under 2 s" starts_fast_and_says_ready
write_control_header

health_and_status_with_token() {
    local path status
    expect_eq "/healthz" "$(call cap GET /healthz)" 200 || return 1
    expect_eq "/healthz body" "$(jq -c . "${WORK}/body")" '{"status":"ok"}' || return 1
    for path in /deployments/healthz /nodes/healthz /costs/healthz; do
        expect_eq "${path}" "$(call cap GET "${path}")" 200 || return 1
    done
    status="$(call cap GET /deployments/status)"
    expect_eq "/deployments/status" "${status}" 200 || return 1
    jq -e '(.deployments | length) >= 3 and all(.deployments[];
              (.name | type) == "string" and (.namespace | type) == "string" and (.image | type) == "string"
              and .replicas.ready <= .replicas.desired and .replicas.ready >= 0
              and (.updated_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T")))' "${WORK}/body" >/dev/null \
        || { echo "deployments:"; cat "${WORK}/body"; return 1; }
    expect_eq "/nodes/status" "$(call cap GET /nodes/status)" 200 || return 1
    jq -e '(.nodes | length) == 3 and all(.nodes[]; (.ready | type) == "boolean"
              and (.cpu.pressure | type) == "boolean" and (.memory.pressure | type) == "boolean")' \
        "${WORK}/body" >/dev/null || { echo "nodes:"; cat "${WORK}/body"; return 1; }
    expect_eq "/costs/status" "$(call cap GET /costs/status)" 200 || return 1
    jq -e '.currency == "EUR" and (.namespaces | length) >= 3
              and all(.namespaces[]; .month_to_date >= 0 and .month_to_date <= .forecast)' \
        "${WORK}/body" >/dev/null || { echo "costs:"; cat "${WORK}/body"; return 1; }
}
check "health and the three status endpoints answer 200 with the token, in the documented shape" \
    health_and_status_with_token

refused_without_or_with_wrong_token() {
    local path
    for path in /healthz /deployments/status /nodes/status /costs/status \
        /deployments/contract /nodes/contract /costs/contract /deployments/freezes; do
        expect_eq "${path} without a token" "$(call none GET "${path}")" 401 || return 1
        [[ "$(header WWW-Authenticate)" == Bearer* ]] || { echo "${path}: no WWW-Authenticate: Bearer"; return 1; }
        expect_eq "${path} with a wrong token" "$(call wrong GET "${path}")" 403 || return 1
        expect_eq "${path} with the control token" "$(call control GET "${path}")" 403 || return 1
    done
}
check "every capability endpoint: 401 without a bearer, 403 with a wrong one (or the control token)" \
    refused_without_or_with_wrong_token

status_matches_contract() {
    local cap schema list
    for cap in deployments:Deployment:deployments nodes:Node:nodes costs:NamespaceCost:namespaces; do
        IFS=: read -r cap schema list <<<"${cap}"
        expect_eq "${cap} contract" "$(call cap GET "/${cap}/contract")" 200 || return 1
        cp "${WORK}/body" "${WORK}/contract.json"
        jq -e '.openapi == "3.1.0" and (.paths | has("/status")) and .components.securitySchemes.bearer.scheme == "bearer"' \
            "${WORK}/contract.json" >/dev/null || { echo "${cap}: not the OpenAPI 3.1 document expected"; return 1; }
        expect_eq "${cap} status" "$(call cap GET "/${cap}/status")" 200 || return 1
        # Every field the contract requires is in every item, and at the top.
        jq -e --slurpfile c "${WORK}/contract.json" --arg schema "${schema}" --arg list "${list}" '
            ($c[0].components.schemas[$schema].required) as $item_req
            | ($c[0].components.schemas | to_entries | map(select(.key | endswith("Status"))) | .[0].value.required) as $top_req
            | ($top_req - keys) == [] and all(.[$list][]; ($item_req - keys) == [])' "${WORK}/body" >/dev/null \
            || { echo "${cap}: status does not have the fields its contract requires"; return 1; }
    done
}
check "each contract is OpenAPI 3.1 and its status answer has every field the contract requires" \
    status_matches_contract

observations_change_over_time() {
    local first second
    call cap GET /deployments/status >/dev/null
    first="$(jq -c '[.generation, .deployments]' "${WORK}/body")"
    sleep 1.1
    call cap GET /deployments/status >/dev/null
    second="$(jq -c '[.generation, .deployments]' "${WORK}/body")"
    [[ "$(jq '.[0]' <<<"${second}")" -gt "$(jq '.[0]' <<<"${first}")" ]] \
        || { echo "generation did not grow: ${first:0:40} / ${second:0:40}"; return 1; }
    [[ "$(jq -c '.[1]' <<<"${first}")" != "$(jq -c '.[1]' <<<"${second}")" ]] \
        || { echo "the deployments did not change from one tick (1 s) to the next"; return 1; }
}
check "deployments change from one tick to the next (--tick 1): pollers see new observations" \
    observations_change_over_time

contract_sha() {
    call cap GET "/$1/contract" >/dev/null
    sha256sum <"${WORK}/body" | cut -d' ' -f1
}

contracts_stable_then_drift() {
    local a b etag new_sha nodes_before
    a="$(contract_sha deployments)"
    b="$(contract_sha deployments)"
    expect_eq "sha256 of two fetches" "${b}" "${a}" || return 1
    etag="$(header ETag)"
    expect_eq "ETag" "${etag}" "\"sha256:${a}\"" || return 1
    ORIGINAL_DEPLOYMENTS_SHA="${a}"
    nodes_before="$(contract_sha nodes)"
    printf '%s' '{"openapi":"3.1.0","info":{"title":"k3s deployments","version":"2.0.0"},"paths":{}}' \
        >"${WORK}/drifted.json"
    new_sha="$(sha256sum <"${WORK}/drifted.json" | cut -d' ' -f1)"
    expect_eq "control contract update" \
        "$(call control POST /_control/contract/deployments --data-binary "@${WORK}/drifted.json")" 200 || return 1
    expect_eq "sha256 the control API reports" "$(jq -r .sha256 "${WORK}/body")" "${new_sha}" || return 1
    expect_eq "served after the update" "$(contract_sha deployments)" "${new_sha}" || return 1
    expect_eq "nodes contract untouched" "$(contract_sha nodes)" "${nodes_before}" || return 1
    expect_eq "non-JSON contract refused" \
        "$(call control POST /_control/contract/nodes --data-binary 'not json')" 400 || return 1
    expect_eq "reset" "$(call control POST /_control/reset)" 200 || return 1
    expect_eq "served after reset" "$(contract_sha deployments)" "${a}" || return 1
}
check "contract bytes are stable (sha256, ETag), change after a control update, come back on reset" \
    contracts_stable_then_drift

freeze_recorded_once() {
    local id1 id2 lines
    expect_eq "freeze without a token" \
        "$(post_json none /deployments/freeze '{"namespace":"shop","reason":"incident 42"}')" 401 || return 1
    expect_eq "freeze with a wrong token" \
        "$(post_json wrong /deployments/freeze '{"namespace":"shop","reason":"incident 42"}')" 403 || return 1
    expect_eq "first freeze" "$(post_json cap /deployments/freeze '{"namespace":"shop","reason":"incident 42"}' \
        -H 'Idempotency-Key: freeze-shop-1')" 202 || return 1
    id1="$(jq -r .id "${WORK}/body")"
    [[ "${id1}" == frz-* ]] || { echo "no action id: $(cat "${WORK}/body")"; return 1; }
    expect_eq "Location" "$(header Location)" "/deployments/freezes/${id1}" || return 1
    # Same body with another key order and spacing: the same request.
    expect_eq "repeated freeze" "$(post_json cap /deployments/freeze '{ "reason": "incident 42", "namespace": "shop" }' \
        -H 'Idempotency-Key: freeze-shop-1')" 202 || return 1
    id2="$(jq -r .id "${WORK}/body")"
    expect_eq "id of the repeat" "${id2}" "${id1}" || return 1
    expect_eq "Idempotency-Replayed" "$(header Idempotency-Replayed)" "true" || return 1
    expect_eq "same key, other body" "$(post_json cap /deployments/freeze '{"namespace":"shop","reason":"something else"}' \
        -H 'Idempotency-Key: freeze-shop-1')" 409 || return 1
    lines="$(jq -s --arg id "${id1}" '[.[] | select(.id == $id)] | length' "${CL}/actions.jsonl")"
    expect_eq "lines for the action in actions.jsonl" "${lines}" 1 || return 1
    expect_eq "lines in actions.jsonl" "$(wc -l <"${CL}/actions.jsonl")" 1 || return 1
    expect_eq "GET /deployments/freezes" "$(call cap GET /deployments/freezes)" 200 || return 1
    expect_eq "freezes listed" "$(jq -c '[.freezes[] | [.id, .namespace, .reason]]' "${WORK}/body")" \
        "[[\"${id1}\",\"shop\",\"incident 42\"]]" || return 1
    expect_eq "GET the freeze" "$(call cap GET "/deployments/freezes/${id1}")" 200 || return 1
    call cap GET /deployments/status >/dev/null
    jq -e 'all(.deployments[]; .frozen == (.namespace == "shop"))' "${WORK}/body" >/dev/null \
        || { echo "frozen flags wrong: $(jq -c '[.deployments[] | [.namespace, .frozen]]' "${WORK}/body")"; return 1; }
    # Without a key, every request is a new action.
    post_json cap /deployments/freeze '{"namespace":"payments","reason":"audit"}' >/dev/null
    post_json cap /deployments/freeze '{"namespace":"payments","reason":"audit"}' >/dev/null
    expect_eq "lines after two unkeyed freezes" "$(wc -l <"${CL}/actions.jsonl")" 3 || return 1
}
check "freeze: 202 with an id, recorded once under a repeated Idempotency-Key, 409 on another body" freeze_recorded_once

freeze_rejects_bad_input() {
    local body
    for body in '{"namespace":"shop",' '[]' '{"namespace":"shop"}' '{"reason":"x"}' \
        '{"namespace":"Shop_1","reason":"x"}' '{"namespace":"shop","reason":""}' \
        '{"namespace":"shop","reason":"x","force":true}' ''; do
        expect_eq "freeze with body [${body}]" "$(post_json cap /deployments/freeze "${body}")" 400 || return 1
        jq -e '(.error | type) == "string" and (.error | length) > 5' "${WORK}/body" >/dev/null \
            || { echo "no clear error for [${body}]: $(cat "${WORK}/body")"; return 1; }
    done
    expect_eq "bad Idempotency-Key" "$(post_json cap /deployments/freeze '{"namespace":"shop","reason":"x"}' \
        -H 'Idempotency-Key: has space')" 400 || return 1
    expect_eq "GET on the action endpoint" "$(call cap GET /deployments/freeze)" 405 || return 1
    expect_eq "nothing recorded" "$(wc -l <"${CL}/actions.jsonl")" 3 || return 1
}
check "freeze: 400 with a clear error on bad JSON or fields, 405 on GET; nothing recorded" freeze_rejects_bad_input

delay_slows_responses() {
    local took
    expect_eq "set delay" "$(post_json control /_control/delay '{"ms":700}')" 200 || return 1
    took="$(curl -sS --cacert "${CA}" -H "@${WORK}/cap.hdr" -o /dev/null -w '%{time_total}' "${URL}/healthz")"
    echo "took ${took} s with a 700 ms delay"
    awk -v t="${took}" 'BEGIN { exit !(t >= 0.7) }' || return 1
    took="$(curl -sS --cacert "${CA}" -H "@${WORK}/control.hdr" -o /dev/null -w '%{time_total}' "${URL}/_control/state")"
    awk -v t="${took}" 'BEGIN { exit !(t < 0.5) }' || { echo "control endpoint delayed too (${took} s)"; return 1; }
    expect_eq "clear delay" "$(post_json control /_control/delay '{"ms":0}')" 200 || return 1
    took="$(curl -sS --cacert "${CA}" -H "@${WORK}/cap.hdr" -o /dev/null -w '%{time_total}' "${URL}/healthz")"
    awk -v t="${took}" 'BEGIN { exit !(t < 0.5) }' || { echo "still slow after ms=0 (${took} s)"; return 1; }
    expect_eq "bad delay" "$(post_json control /_control/delay '{"ms":"soon"}')" 400 || return 1
}
check "delay control: a request takes longer than the delay; control endpoints and ms=0 are fast" delay_slows_responses

status_control_degrades() {
    expect_eq "set 503" "$(post_json control /_control/status '{"code":503}')" 200 || return 1
    expect_eq "/healthz" "$(call cap GET /healthz)" 503 || return 1
    expect_eq "/costs/status" "$(call cap GET /costs/status)" 503 || return 1
    expect_eq "scoped: nodes only" "$(post_json control /_control/status '{"code":null}')" 200 || return 1
    post_json control /_control/status '{"code":502,"capability":"nodes"}' >/dev/null
    expect_eq "/nodes/status" "$(call cap GET /nodes/status)" 502 || return 1
    expect_eq "/nodes/healthz" "$(call cap GET /nodes/healthz)" 502 || return 1
    expect_eq "/deployments/status" "$(call cap GET /deployments/status)" 200 || return 1
    expect_eq "/healthz" "$(call cap GET /healthz)" 200 || return 1
    expect_eq "reset" "$(call control POST /_control/reset)" 200 || return 1
    expect_eq "/nodes/status after reset" "$(call cap GET /nodes/status)" 200 || return 1
}
check "status control: /healthz and status answer 503; per capability too; reset heals" status_control_degrades

redirect_control() {
    local target="https://169.254.169.254/latest/meta-data/"
    expect_eq "set redirect" "$(post_json control /_control/redirect \
        "{\"path\":\"/deployments/status\",\"to\":\"${target}\"}")" 200 || return 1
    expect_eq "/deployments/status" "$(call cap GET /deployments/status)" 302 || return 1
    expect_eq "Location" "$(header Location)" "${target}" || return 1
    expect_eq "/nodes/status untouched" "$(call cap GET /nodes/status)" 200 || return 1
    expect_eq "redirect into /_control refused" "$(post_json control /_control/redirect \
        '{"path":"/_control/state","to":"https://example.com/"}')" 400 || return 1
    expect_eq "remove redirect" "$(post_json control /_control/redirect '{"path":"/deployments/status","to":null}')" 200 || return 1
    expect_eq "/deployments/status after" "$(call cap GET /deployments/status)" 200 || return 1
}
check "redirect control: the path answers 302 to the given target, and only that path" redirect_control

control_needs_control_token() {
    local hdr
    for hdr in none cap wrong; do
        local want=403
        [[ "${hdr}" == none ]] && want=401
        expect_eq "delay (${hdr})" "$(post_json "${hdr}" /_control/delay '{"ms":5000}')" "${want}" || return 1
        expect_eq "status (${hdr})" "$(post_json "${hdr}" /_control/status '{"code":503}')" "${want}" || return 1
        expect_eq "contract (${hdr})" "$(post_json "${hdr}" /_control/contract/nodes '{}')" "${want}" || return 1
        expect_eq "redirect (${hdr})" "$(post_json "${hdr}" /_control/redirect '{"path":"/healthz","to":"https://x/"}')" "${want}" || return 1
        expect_eq "reset (${hdr})" "$(call "${hdr}" POST /_control/reset)" "${want}" || return 1
    done
    expect_eq "state" "$(call control GET /_control/state)" 200 || return 1
    expect_eq "nothing changed" "$(jq -c '[.delay_ms, .status, .redirects]' "${WORK}/body")" '[{},{},{}]' || return 1
    expect_eq "/healthz still fine" "$(call cap GET /healthz)" 200 || return 1
}
check "control endpoints refuse without the control token (401) or with another (403)" control_needs_control_token

plain_http_fails() {
    local rc=0 code
    code="$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT}/healthz" 2>/dev/null)" || rc=$?
    [[ ${rc} -ne 0 ]] || { echo "plain http got an answer (${code})"; return 1; }
    expect_eq "https afterwards" "$(call cap GET /healthz)" 200 || return 1
    rc=0
    curl -sS --max-time 5 -o /dev/null "${URL}/healthz" 2>/dev/null || rc=$?
    [[ ${rc} -ne 0 ]] || { echo "accepted without the test CA"; return 1; }
}
check "plain http to the port fails; https without the test CA fails" plain_http_fails

keepalive_survives_errors() {
    local out
    # A 401 then two 200s on one connection: error answers keep the connection usable.
    out="$(curl -sS --cacert "${CA}" -o /dev/null -o /dev/null -o /dev/null \
        -w '%{http_code}:%{num_connects} ' -H "@${WORK}/cap.hdr" \
        "${URL}/nope" "${URL}/healthz" "${URL}/nodes/status")"
    expect_eq "statuses and new connections" "${out}" "404:1 200:0 200:0 " || return 1
}
check "keep-alive: several requests on one connection, also after an error answer" keepalive_survives_errors

token_rotation() {
    local old="${WORK}/cap.hdr"
    cp "${old}" "${WORK}/old.hdr"
    printf 'cap-%s\n' "$(openssl rand -hex 24)" >"${TOKEN_FILE}"
    printf 'Authorization: Bearer %s\n' "$(cat "${TOKEN_FILE}")" >"${WORK}/cap.hdr"
    expect_eq "new token" "$(call cap GET /healthz)" 200 || return 1
    expect_eq "old token" "$(call old GET /healthz)" 403 || return 1
}
check "the token file is re-read: after a rotation the new token works and the old one is refused" token_rotation

log_has_a_line_per_request_and_no_secret() {
    local log="${CL}/cluster.log" secret
    grep -qE ' GET /nodes/status 200 bearer=ok [0-9]+ms$' "${log}" || { echo "no bearer=ok line"; return 1; }
    grep -qE ' GET /healthz 401 bearer=none ' "${log}" || { echo "no bearer=none line"; return 1; }
    grep -qE ' GET /healthz 403 bearer=wrong ' "${log}" || { echo "no bearer=wrong line"; return 1; }
    grep -qE ' POST /_control/delay 403 bearer=control-wrong ' "${log}" || { echo "no control-wrong line"; return 1; }
    grep -qE ' POST /deployments/freeze 409 bearer=ok ' "${log}" || { echo "no freeze 409 line"; return 1; }
    grep -q 'tls-handshake-failed' "${log}" || { echo "the plain http attempt is not logged"; return 1; }
    for secret in "$(cat "${TOKEN_FILE}")" "$(cut -d' ' -f3 "${WORK}/old.hdr")" "$(cat "${CL}/control.token")"; do
        if grep -rqF -- "${secret}" "${log}" "${CL}/cluster.out" "${CL}/actions.jsonl"; then
            echo "a token appears in the stand-in's files"
            return 1
        fi
    done
}
check "cluster.log: one line per request with the bearer outcome, never a token" log_has_a_line_per_request_and_no_secret

start_errors_are_clear() {
    local rc=0
    start_cluster_standin "${WORK}/other" "${PORT}" --cert "${WORK}/ca/server.pem" \
        --key "${WORK}/ca/server-key.pem" >/dev/null 2>"${WORK}/err" || rc=$?
    [[ ${rc} -ne 0 ]] || { echo "a second start on a busy port succeeded"; return 1; }
    grep -q "already in use" "${WORK}/err" || { cat "${WORK}/err"; return 1; }
    local other_port
    other_port="$(hp_free_port)"
    rc=0
    # The CA's key does not belong to the server certificate.
    start_cluster_standin "${WORK}/other" "${other_port}" --cert "${WORK}/ca/server.pem" \
        --key "${WORK}/ca/ca-key.pem" >/dev/null 2>"${WORK}/err" || rc=$?
    [[ ${rc} -ne 0 ]] || { echo "started with a key that does not match the certificate"; return 1; }
    grep -q "cannot load the certificate" "${WORK}/err" || { cat "${WORK}/err"; return 1; }
    [[ ! -e "${WORK}/other/cluster.pid" ]] || { echo "pid file left behind"; return 1; }
    ! hp_port_in_use "${other_port}" || { echo "something listens on ${other_port}"; return 1; }
}
check "start fails with a clear error on a busy port and on a key that does not match" start_errors_are_clear

stop_and_start_on_the_same_port() {
    local old_control id_before
    old_control="$(cat "${CL}/control.token")"
    cp "${WORK}/control.hdr" "${WORK}/oldcontrol.hdr"
    call cap GET /deployments/freezes >/dev/null
    id_before="$(jq -r '.freezes[0].id' "${WORK}/body")"
    # The server closes this connection first, which leaves its side of it in
    # TIME_WAIT: binding the port again then needs SO_REUSEADDR.
    expect_eq "Connection: close" "$(call cap GET /healthz -H 'Connection: close')" 200 || return 1
    stop_cluster_standin "${CL}"
    [[ ! -e "${CL}/cluster.pid" ]] || { echo "pid file left behind"; return 1; }
    expect_eq "while stopped" "$(call cap GET /healthz)" 000 || return 1
    start_cluster || { cat "${WORK}/start.err"; return 1; }
    expect_eq "ready line" "$(cat "${WORK}/start.out")" "CLUSTER ready at ${URL}" || return 1
    write_control_header
    expect_eq "/deployments/status after restart" "$(call cap GET /deployments/status)" 200 || return 1
    [[ "$(cat "${CL}/control.token")" != "${old_control}" ]] || { echo "control token not renewed"; return 1; }
    expect_eq "old control token" "$(call oldcontrol GET /_control/state)" 403 || return 1
    expect_eq "contract sha256 across restarts" "$(contract_sha deployments)" "${ORIGINAL_DEPLOYMENTS_SHA}" || return 1
    # Actions and idempotency keys survive the restart (they live in actions.jsonl).
    expect_eq "replay after restart" "$(post_json cap /deployments/freeze '{"namespace":"shop","reason":"incident 42"}' \
        -H 'Idempotency-Key: freeze-shop-1')" 202 || return 1
    expect_eq "same id after restart" "$(jq -r .id "${WORK}/body")" "${id_before}" || return 1
    expect_eq "lines in actions.jsonl" "$(wc -l <"${CL}/actions.jsonl")" 3 || return 1
}
check "stop, then start again on the same port at once: serves again; actions and keys kept" \
    stop_and_start_on_the_same_port

stop_is_idempotent() {
    stop_cluster_standin "${CL}"
    stop_cluster_standin "${CL}"
    ! hp_port_in_use "${PORT}" || { echo "still listening on ${PORT}"; return 1; }
}
check "stop is idempotent and frees the port" stop_is_idempotent

printf '# %d passed, %d failed\n' "${passed}" "${failed}"
[[ ${failed} -eq 0 ]]
