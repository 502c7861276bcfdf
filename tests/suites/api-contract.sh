#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# The REST API against its own OpenAPI document, with schemathesis
# (tests/suites/schemathesis/: pinned requirements and hooks). Starts the state
# hub and one domain hub (ops-hub) through scripts/lib/stack.sh from $HUB_BIN_DIR
# on free loopback ports, each on a fresh database — the LDAP and OIDC stand-ins
# come with it because the hubs' configuration requires an identity provider,
# although every call here carries a bearer token — and runs schemathesis
# against each hub's /api/v1/openapi.json:
#   - with a valid admin token: no 5xx (not_a_server_error), and every answer
#     conforms to the document: status code, Content-Type and body schema
#     (status_code_conformance, content_type_conformance,
#     response_schema_conformance);
#   - with no token, with a well-formed token the hub never issued, with a token
#     the OTHER hub issued and, for the state hub, with one of its own tokens
#     revoked: no 2xx on any documented operation (the hook check
#     no_success_without_a_valid_token), no 5xx, and the refusals conform to
#     the document too (401 problem+json);
#   - that check fails a run with a valid token, so it can catch a leak;
#   - in the admin runs, half of the path parameters name resources that exist
#     (a seeded workstream, workplan, task and decision, ops-hub's manifest,
#     the capabilities, ops-hub's action), so handlers do their real work;
#   - the document itself is refused without a token, and /healthz answers.
# Every documented operation is under /api/v1 and needs a token; the public
# routes (/healthz, /readyz, /metrics, /auth/*, /static/*) are not in the
# document. Bounded: the phases examples, coverage and fuzzing (the runs with a
# refused token skip coverage: the no-token run has varied every input already),
# at most HUB_API_CONTRACT_EXAMPLES (default 10) fuzzed examples per operation,
# a fixed seed, 2 workers, 10 s per request (2 s and one event for the live
# stream, which never ends); about 1.5 minutes on 2 cores, 11 schemathesis runs.
# Not run: the stateful phase (chains of calls through links) — its length is
# not bounded by the example count, and the lifecycles it would walk are
# covered step by step by the hubs' Rust API tests (hubs/*/tests/api).
# The admin run may revoke tokens it finds in responses (schemathesis reuses
# ids): the tokens that exist before it are kept (hook before_call), so the run
# cannot lock itself out. Environment: HUB_TEST_DATABASE_URL, HUB_BIN_DIR
# (tests/suites/README.md); HUB_API_CONTRACT_BUDGET (default 600) seconds
# for everything after the installs.
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
BUDGET="${HUB_API_CONTRACT_BUDGET:-600}"
EXAMPLES="${HUB_API_CONTRACT_EXAMPLES:-10}"
SEED=20261123
HOOKS_DIR="${SUITE_DIR}/schemathesis"
REQUIREMENTS="${HOOKS_DIR}/requirements.txt"
VENV="${HUBPLANE_REPO}/.tmp/venv-schemathesis"
ST="${VENV}/bin/schemathesis"

mkdir -p "${HUBPLANE_REPO}/.tmp"
WORK="$(mktemp -d "${HUBPLANE_REPO}/.tmp/api-contract-suite.XXXXXX")"
STACK_DB_NAME=""

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [[ ${rc} -ne 0 ]]; then
        stack_suite_logs "${WORK}/stack" state-hub.log ops-hub.log
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
[[ "${EXAMPLES}" =~ ^[1-9][0-9]*$ ]] || hp_die "HUB_API_CONTRACT_EXAMPLES must be a positive number"

# ---------------------------------------------------------------------------
# Packages: the stack's, and schemathesis in a virtualenv inside the checkout
# ---------------------------------------------------------------------------

hp_step "packages"
stack_ensure_deps

# ensure_schemathesis: $VENV holds exactly $REQUIREMENTS (a stamp file keeps its hash).
ensure_schemathesis() {
    local want have=""
    want="$(sha256sum "${REQUIREMENTS}" | cut -d' ' -f1)"
    [[ ! -f "${VENV}/.requirements.sha256" ]] || have="$(cat "${VENV}/.requirements.sha256")"
    if [[ "${want}" == "${have}" && -x "${ST}" ]]; then
        return 0
    fi
    hp_info "installing schemathesis into $(_stack_rel "${VENV}") ($(grep -m1 '^schemathesis==' "${REQUIREMENTS}"))"
    rm -rf -- "${VENV}"
    # Debian's python3 makes virtualenvs (with pip) only once python3-venv is installed.
    if ! python3 -m venv "${VENV}" >/dev/null 2>&1; then
        rm -rf -- "${VENV}"
        ensure_debian_packages python3-venv
        python3 -m venv "${VENV}" || hp_die "python3 -m venv ${VENV} failed"
    fi
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --requirement "${REQUIREMENTS}" >&2 || hp_die "pip install -r ${REQUIREMENTS} failed"
    printf '%s\n' "${want}" >"${VENV}/.requirements.sha256"
}
ensure_schemathesis
"${ST}" --version

# ---------------------------------------------------------------------------
# Start the state hub and ops-hub
# ---------------------------------------------------------------------------

suite_init "${WORK}" "${BUDGET}"
DB_PREFIX="hubplane_contract_$(date +%s)_${RANDOM}"
hp_step "starting the state hub and ops-hub"
# Another suite may take a port between the check and the bind: then once more on other
# ports. The stack starts in its own bash so that its errexit holds inside this `if`.
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
        dir="$2" prefix="$3" bin_dir="$4" hub="$5" ops="$6" oidc="$7" ldap="$8" cluster="$9"
        stack_up --dir "${dir}" --database "${prefix}_state" --bin-dir "${bin_dir}" \
            --hub-port "${hub}" --oidc-port "${oidc}" --ldap-port "${ldap}" \
            --client "ops-hub=http://127.0.0.1:${ops}" --log-filter warn
        stack_plane_up --cluster-port "${cluster}" --database-prefix "${prefix}" \
            --hub "ops-hub=${ops}" --log-filter warn
    ' stack "${HUBPLANE_REPO}/scripts/lib/stack.sh" "${WORK}/stack" "${DB_PREFIX}" "${BIN_DIR}" \
        "${ports[@]}"; then
        started=1
        break
    fi
    stack_down "${WORK}/stack" || true
    hp_warn "the hubs did not start (attempt ${attempt} of 3)"
    if [[ -f "${WORK}/stack/stack.env" ]]; then
        stack_load "${WORK}/stack"
        stack_drop_database || true
    fi
done
[[ ${started} -eq 1 ]] || hp_die "the hubs did not start; see the errors above"
stack_load "${WORK}/stack"
OPS_URL="$(stack_domain_url ops-hub)"
OPS_DB_URL="$(pg_url_with_database "${HUB_TEST_DATABASE_URL}" "$(_stack_domain_field "${STACK_DIR}" ops-hub 4)")"

# ---------------------------------------------------------------------------
# Tokens: valid ones, and the ones each hub must refuse
# ---------------------------------------------------------------------------

SECRETS="${STACK_DIR}/secrets"
# hubctl_as TOKEN_FILE ARGS...: hubctl --output json against the state hub.
hubctl_as() {
    local token_file="$1"
    shift
    "${STACK_BIN_DIR}/hubctl" --url "${STACK_HUB_URL}" --token-file "${token_file}" \
        --output json --timeout 10 "$@" </dev/null 2>/dev/null
}

# new_state_token FILE ARGS...: a state hub token (hubctl tokens create ARGS), secret in
# FILE (0600); prints its id.
new_state_token() {
    local file="$1" json
    shift
    json="$(hubctl_as "${STACK_TOKEN_FILE}" tokens create "$@")" || return 1
    (
        umask 077
        jq -er .token <<<"${json}" >"${file}"
    ) || return 1
    jq -er .info.id <<<"${json}"
}

# never_issued FILE: a token of the hubs' shape (hpt_ and 43 URL-safe characters) that no
# hub issued.
never_issued() {
    (
        umask 077
        printf 'hpt_%s\n' "$(_stack_random)" >"$1"
    )
}

tokens_ready() {
    # The state hub: an admin token for the run, and one revoked.
    STATE_ADMIN_ID="$(new_state_token "${SECRETS}/contract-admin.token" --name "api-contract admin" \
        --subject contract-admin --kind human --role admin)" || return 1
    local revoked_id
    revoked_id="$(new_state_token "${SECRETS}/contract-revoked.token" --name "api-contract revoked" \
        --subject contract-revoked --kind human --role admin)" || return 1
    hubctl_as "${STACK_TOKEN_FILE}" tokens revoke "${revoked_id}" >/dev/null || return 1
    # ops-hub has no token endpoint: an admin token straight into its table, as stack.sh does.
    _stack_domain_api_token ops-hub "${OPS_DB_URL}" contract-admin admin "" \
        "${SECRETS}/ops-hub.contract-admin.token" || return 1
    never_issued "${SECRETS}/never-issued.token"
    # Each hub must answer its valid token and refuse the rest.
    expect_eq "state hub whoami, admin token" "$(call "${STACK_HUB_URL}" /api/v1/whoami "${SECRETS}/contract-admin.token")" 200 || return 1
    expect_eq "state hub whoami, revoked token" "$(call "${STACK_HUB_URL}" /api/v1/whoami "${SECRETS}/contract-revoked.token")" 401 || return 1
    expect_eq "ops-hub status, admin token" "$(call "${OPS_URL}" /api/v1/status "${SECRETS}/ops-hub.contract-admin.token")" 200 || return 1
    expect_eq "ops-hub status, the state hub's admin token" "$(call "${OPS_URL}" /api/v1/status "${SECRETS}/contract-admin.token")" 401 || return 1
    expect_eq "state hub whoami, ops-hub's token" "$(call "${STACK_HUB_URL}" /api/v1/whoami "${SECRETS}/ops-hub.api.token")" 401 || return 1
}

# call BASE PATH [TOKEN_FILE]: GET BASE/PATH (with the token from the file, given to curl on
# stdin); the body goes to $WORK/body, the Content-Type to $WORK/type; prints the status.
call() {
    local -a auth=()
    if [[ $# -ge 3 ]]; then
        auth=(-H @-)
    fi
    { [[ $# -lt 3 ]] || printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"$3")"; } \
        | curl -sS --max-time 10 "${auth[@]}" -o "${WORK}/body" -w '%{http_code} %{content_type}' "$1$2" \
            >"${WORK}/status"
    cut -d' ' -f2- "${WORK}/status" >"${WORK}/type"
    cut -d' ' -f1 "${WORK}/status"
}

# post BASE PATH TOKEN_FILE JSON: POST JSON to BASE/PATH with the token; the body goes to
# $WORK/body; prints the status.
post() {
    printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"$3")" \
        | curl -sS --max-time 10 -H @- -H 'Content-Type: application/json' --data "$4" \
            -o "${WORK}/body" -w '%{http_code}' "$1$2"
}

check "tokens: admin tokens on both hubs, a revoked one, a never-issued one; each hub refuses the others" \
    tokens_ready

# ---------------------------------------------------------------------------
# The documents
# ---------------------------------------------------------------------------

# operations SPEC: how many operations the document has.
operations() {
    jq '[.paths[] | keys[] | select(IN("get", "put", "post", "delete", "patch"))] | length' "$1"
}

documents_served() {
    local hub base token spec
    for hub in state-hub ops-hub; do
        if [[ "${hub}" == state-hub ]]; then
            base="${STACK_HUB_URL}" token="${SECRETS}/contract-admin.token"
        else
            base="${OPS_URL}" token="${SECRETS}/ops-hub.contract-admin.token"
        fi
        spec="${WORK}/${hub}.openapi.json"
        expect_eq "${hub} /healthz without a token" "$(call "${base}" /healthz)" 200 || return 1
        expect_eq "${hub} openapi.json without a token" "$(call "${base}" /api/v1/openapi.json)" 401 || return 1
        expect_eq "its Content-Type" "$(cat "${WORK}/type")" "application/problem+json" || return 1
        expect_eq "${hub} openapi.json with the admin token" "$(call "${base}" /api/v1/openapi.json "${token}")" 200 || return 1
        cp "${WORK}/body" "${spec}"
        jq -e '.openapi | startswith("3.1")' "${spec}" >/dev/null || { echo "${hub}: not OpenAPI 3.1"; return 1; }
        # Every operation needs the bearer token: the refused runs below cover them all.
        jq -e '[.paths[][] | objects | select(has("responses")) | .security // [] | length > 0] | all' "${spec}" \
            >/dev/null || { echo "${hub}: an operation without security"; return 1; }
        printf '# %s: %s operations in /api/v1/openapi.json\n' "${hub}" "$(operations "${spec}")"
    done
    expect_ge "state hub operations" "$(operations "${WORK}/state-hub.openapi.json")" 50 || return 1
    expect_ge "ops-hub operations" "$(operations "${WORK}/ops-hub.openapi.json")" 10
}
check "each hub serves its OpenAPI 3.1 document to a token only; every operation needs one" documents_served

# ---------------------------------------------------------------------------
# Real resources for the admin runs
# ---------------------------------------------------------------------------

# Path parameters that name nothing only ever reach a handler's 404. The admin runs draw half of
# their path parameters from the resources that exist (schemathesis dictionaries), so the
# handlers' real work is tested against the document too.
seed_resources() {
    local admin="${SECRETS}/contract-admin.token" workplan task decision manifest
    expect_eq "POST /api/v1/workstreams" "$(post "${STACK_HUB_URL}" /api/v1/workstreams "${admin}" \
        '{"slug": "contract", "title": "API contract"}')" 201 || { cat "${WORK}/body"; return 1; }
    expect_eq "POST workplans" "$(post "${STACK_HUB_URL}" /api/v1/workstreams/contract/workplans "${admin}" \
        '{"title": "Schemathesis"}')" 201 || { cat "${WORK}/body"; return 1; }
    workplan="$(jq -er .id "${WORK}/body")" || return 1
    expect_eq "POST tasks" "$(post "${STACK_HUB_URL}" "/api/v1/workplans/${workplan}/tasks" "${admin}" \
        '{"title": "Fuzz the API"}')" 201 || { cat "${WORK}/body"; return 1; }
    task="$(jq -er .id "${WORK}/body")" || return 1
    expect_eq "POST decisions" "$(post "${STACK_HUB_URL}" /api/v1/decisions "${admin}" \
        "$(jq -cn --arg t "${task}" '{title: "Fuzz or not", context: "contract", options: ["fuzz", "wait"], task_ids: [$t]}')")" \
        201 || { cat "${WORK}/body"; return 1; }
    decision="$(jq -er .id "${WORK}/body")" || return 1
    expect_eq "GET ops-hub's manifests" "$(call "${STACK_HUB_URL}" /api/v1/hubs/ops-hub/manifests "${admin}")" 200 || return 1
    manifest="$(jq -er '(if type == "array" then . else .items end)[0].id' "${WORK}/body")" || return 1
    cat "${HOOKS_DIR}/with-token.toml" - >"${WORK}/state-hub.schemathesis.toml" <<TOML

[dictionaries.ids]
values = ["${workplan}", "${task}", "${decision}", "${manifest}"]
[dictionaries.names]
values = ["ops-hub", "deployments", "nodes", "costs"]
[dictionaries.keys]
values = ["contract", "1", "2"]

[parameters]
"path.id" = { dictionary = "ids", probability = 0.5 }
"path.name" = { dictionary = "names", probability = 0.5 }
"path.key" = { dictionary = "keys", probability = 0.5 }
TOML
    cat "${HOOKS_DIR}/with-token.toml" - >"${WORK}/ops-hub.schemathesis.toml" <<TOML

[dictionaries.names]
values = ["freeze"]

[parameters]
"path.name" = { dictionary = "names", probability = 0.5 }
TOML
    printf '# seeded: workstream contract, workplan %s, task %s, decision %s; manifest %s\n' \
        "${workplan}" "${task}" "${decision}" "${manifest}"
}
check "a workstream, workplan, task and decision exist for the admin runs to work on" seed_resources

# ---------------------------------------------------------------------------
# schemathesis
# ---------------------------------------------------------------------------

# contract LABEL MODE HUB TOKEN_FILE|- [ARGS...]: one schemathesis run against HUB (state-hub or
# ops-hub) with the token in TOKEN_FILE (- for none), hooks in MODE (valid or refused), the
# checks for that mode; more schemathesis ARGS may follow. Passes when schemathesis exits 0 and
# its JSON report has every operation tested, no failure and no error; prints a summary line.
contract() {
    local label="$1" mode="$2" hub="$3" token_file="$4" base spec report out rc=0 started
    shift 4
    if [[ "${hub}" == state-hub ]]; then base="${STACK_HUB_URL}"; else base="${OPS_URL}"; fi
    spec="${WORK}/${hub}.openapi.json"
    report="${WORK}/report.${label//[^a-z0-9-]/_}.json"
    out="${WORK}/schemathesis.out"
    local -a checks=(not_a_server_error status_code_conformance content_type_conformance response_schema_conformance)
    [[ "${mode}" == valid ]] || checks=(no_success_without_a_valid_token "${checks[@]}")
    local config="${CONTRACT_CONFIG:-${HOOKS_DIR}/with-token.toml}"
    [[ "${token_file}" != - ]] || config="${HOOKS_DIR}/no-token.toml"
    local phases="${CONTRACT_PHASES:-examples,coverage,fuzzing}" check_list
    check_list="$(IFS=,; printf '%s' "${checks[*]}")"
    local -a args=(--config-file "${config}" run "${spec}" --url "${base}" --checks "${check_list}"
        --phases "${phases}" --max-examples "${EXAMPLES}" --seed "${SEED}" --workers 2
        --request-timeout 10 --max-failures 50 --generation-database none --no-color
        --report json --report-json-path "${report}" "$@")
    # The secret goes in through the environment of schemathesis only, never a command line.
    local header=""
    [[ "${token_file}" == - ]] || header="Bearer $(tr -d '[:space:]' <"${token_file}")"
    started="${SECONDS}"
    # From the scratch directory: whatever schemathesis leaves behind goes with it.
    (
        cd "${WORK}"
        HUBPLANE_CONTRACT_MODE="${mode}" SCHEMATHESIS_HOOKS=hubplane_hooks PYTHONPATH="${HOOKS_DIR}" \
            PYTHONDONTWRITEBYTECODE=1 \
            HUBPLANE_CONTRACT_AUTH="${header}" HUBPLANE_CONTRACT_KEEP_TOKENS="${KEEP_TOKENS:-}" \
            exec timeout --kill-after=10 "$(contract_time_left)" "${ST}" "${args[@]}"
    ) >"${out}" 2>&1 </dev/null || rc=$?
    if [[ ! -s "${report}" ]]; then
        tail -n 40 "${out}"
        echo "${label}: schemathesis exited ${rc} without a report"
        return 1
    fi
    local summary
    summary="$(jq -r '"\(.operations.tested)/\(.operations.total) operations, \(.test_cases.generated) test cases, \(.test_cases.unique_failures) failures, \(.errors | length) errors"' "${report}")"
    printf '# %s: %s (%d s)\n' "${label}" "${summary}" $((SECONDS - started))
    if [[ "${CONTRACT_EXPECT_FAILURE:-0}" -eq 1 ]]; then
        jq -e '.failures | map(.title) | any(contains("no_success_without_a_valid_token"))' "${report}" >/dev/null \
            && [[ ${rc} -ne 0 ]] && return 0
        echo "${label}: expected the check to fail, schemathesis exited ${rc}"
        return 1
    fi
    if [[ ${rc} -ne 0 ]] || ! jq -e '.operations.tested == .operations.total and .operations.total > 0
            and .test_cases.unique_failures == 0 and (.failures | length) == 0 and (.errors | length) == 0' \
            "${report}" >/dev/null; then
        # The failures, each with its reproduction (curl), as schemathesis printed them.
        sed -n '/^=* FAILURES =*$/,/^=* SUMMARY =*$/p' "${out}" | head -n 200
        sed -n '/^=* ERRORS =*$/,/^=* SUMMARY =*$/p' "${out}" | head -n 60
        tail -n 25 "${out}"
        return 1
    fi
}

# contract_time_left: seconds left of the budget for one run (at least 1).
contract_time_left() {
    local left=$((SUITE_DEADLINE - SECONDS))
    ((left > 1)) || left=1
    printf '%s' "${left}"
}

# refused_everywhere HUB TOKEN_FILE...: the refused runs: without a token with every phase (the
# coverage phase varies every parameter and header), then each TOKEN_FILE with examples and
# fuzzing (the variations are the same; the token is what differs).
refused_everywhere() {
    local hub="$1" file
    shift
    contract "${hub}, no token" refused "${hub}" - || return 1
    for file in "$@"; do
        CONTRACT_PHASES=examples,fuzzing contract "${hub}, token ${file##*/}" refused "${hub}" "${file}" \
            || return 1
    done
}

# The refusals first: the admin runs change the hubs (they may revoke what they find).
check "state hub: no 2xx without a valid token (none, never issued, ops-hub's, revoked); refusals conform" \
    refused_everywhere state-hub "${SECRETS}/never-issued.token" "${SECRETS}/ops-hub.api.token" \
    "${SECRETS}/contract-revoked.token"
check "ops-hub: no 2xx without a valid token (none, never issued, the state hub's admin token); refusals conform" \
    refused_everywhere ops-hub "${SECRETS}/never-issued.token" "${SECRETS}/contract-admin.token"

check_bites() {
    CONTRACT_EXPECT_FAILURE=1 contract "ops-hub, a valid token where none should work" refused ops-hub \
        "${SECRETS}/ops-hub.contract-admin.token" --include-path /api/v1/status
}
check "the no-2xx check fails a run whose token is valid (it can catch a leak)" check_bites

ops_hub_admin_run() {
    CONTRACT_CONFIG="${WORK}/ops-hub.schemathesis.toml" \
        contract "ops-hub, admin token" valid ops-hub "${SECRETS}/ops-hub.contract-admin.token"
}
check "ops-hub, admin token: no 5xx; status codes, content types and bodies as documented" ops_hub_admin_run

state_hub_admin_run() {
    # Every token that exists now stays: the run's own, the hubs', the people's.
    KEEP_TOKENS="$(hubctl_as "${STACK_TOKEN_FILE}" tokens list | jq -r '[(if type == "array" then . else .items end)[].id] | join(",")')" \
        || return 1
    [[ "${KEEP_TOKENS}" == *"${STATE_ADMIN_ID}"* ]] || { echo "the admin token is not listed"; return 1; }
    CONTRACT_CONFIG="${WORK}/state-hub.schemathesis.toml" \
        contract "state hub, admin token" valid state-hub "${SECRETS}/contract-admin.token" || return 1
    # Still the same admin afterwards: nothing the run did locked it out.
    expect_eq "state hub whoami after the run" "$(call "${STACK_HUB_URL}" /api/v1/whoami "${SECRETS}/contract-admin.token")" 200
}
check "state hub, admin token: no 5xx; status codes, content types and bodies as documented" state_hub_admin_run

suite_finish
