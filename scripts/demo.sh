#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Hubplane demo: ./scripts/demo.sh [--port BASE] [--no-wait] [--skip-build]
#
# Builds the release binaries, starts the state hub on a fresh database, seeds
# it with a workstream, a workplan, tasks, decisions and events through hubctl,
# checks the journal's hash chain (hubctl audit verify), prints where everything
# is, and keeps running until Ctrl-C / SIGTERM. Everything it writes lives in
# .tmp/demo/ (token, config, logs).
#
# Ports, from BASE (default 8480):
#   BASE      state hub
#   BASE+1..  reserved for the domain hubs (dev-hub, ops-hub)
#   BASE+10.. reserved for the LDAP and OIDC stand-ins
#
# Adding a service: write a start_<name> function that writes its config,
# calls `start_service NAME CMD...` and `wait_ready NAME URL`, and call it from
# main. The cleanup trap stops every started service in reverse order, then
# the throwaway PostgreSQL if one was started.
set -euo pipefail
shopt -s inherit_errexit

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/deps.sh
source "${SCRIPT_DIR}/lib/deps.sh"
# shellcheck source=lib/postgres.sh
source "${SCRIPT_DIR}/lib/postgres.sh"

cd "${HUBPLANE_REPO}"

usage() {
    cat <<'USAGE'
Usage: ./scripts/demo.sh [--port BASE] [--no-wait] [--skip-build]

  --port BASE    first port to use (default 8480): the state hub listens on BASE
  --no-wait      seed, print the summary, then stop everything and exit 0
  --skip-build   use the release binaries already in target/release
  -h, --help     this text

Environment: HUB_TEST_DATABASE_URL (a PostgreSQL superuser URL to use),
HUB_FORCE_THROWAWAY_PG=1 (start a private PostgreSQL), CARGO_TARGET_DIR.
USAGE
}

BASE_PORT=8480
WAIT=1
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --port)
            [[ $# -ge 2 ]] || { usage >&2; hp_die "--port needs a value"; }
            BASE_PORT="$2"
            shift 2
            ;;
        --port=*)
            BASE_PORT="${1#--port=}"
            shift
            ;;
        --no-wait)
            WAIT=0
            shift
            ;;
        --skip-build)
            BUILD=0
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            hp_die "unknown argument: $1"
            ;;
    esac
done
if ! [[ "${BASE_PORT}" =~ ^[0-9]+$ ]] || ((BASE_PORT < 1024 || BASE_PORT > 65000)); then
    hp_die "--port must be a number between 1024 and 65000, got: ${BASE_PORT}"
fi

DEMO_DIR="${HUBPLANE_REPO}/.tmp/demo"
TARGET_DIR="${CARGO_TARGET_DIR:-${HUBPLANE_REPO}/target}"
[[ "${TARGET_DIR}" == /* ]] || TARGET_DIR="${HUBPLANE_REPO}/${TARGET_DIR}"
BIN_DIR="${TARGET_DIR}/release"
STATE_HUB_BIN="${BIN_DIR}/state-hub"
HUBCTL_BIN="${BIN_DIR}/hubctl"

STATE_HUB_PORT="${BASE_PORT}"
STATE_HUB_URL="http://127.0.0.1:${STATE_HUB_PORT}"
STATE_DB_NAME="hubplane_demo_state"
TOKEN_FILE="${DEMO_DIR}/admin.token"
STATE_HUB_CONFIG="${DEMO_DIR}/state-hub.toml"

# ---------------------------------------------------------------------------
# Service helpers
# ---------------------------------------------------------------------------

SERVICE_NAMES=()
SERVICE_PIDS=()

service_log() {
    printf '%s/%s.log\n' "${DEMO_DIR}" "$1"
}

# rel PATH: PATH relative to the checkout when it is inside it.
rel() {
    printf '%s\n' "${1#"${HUBPLANE_REPO}"/}"
}

# start_service NAME CMD...: starts CMD in the background with its output in
# .tmp/demo/NAME.log and remembers its pid for the cleanup trap.
start_service() {
    local name="$1"
    shift
    local log
    log="$(service_log "${name}")"
    : >"${log}"
    # The scripts' own HUB_* variables are not hub configuration: keep them out
    # of the services' environment so they cannot be read as config overrides.
    env -u HUB_TEST_DATABASE_URL -u HUB_FORCE_THROWAWAY_PG -u HUB_PG_THROWAWAY \
        -u HUB_PG_LOG -u HUB_PG_PORT -u HUB_BIN_DIR \
        "$@" >>"${log}" 2>&1 </dev/null &
    local pid=$!
    SERVICE_NAMES+=("${name}")
    SERVICE_PIDS+=("${pid}")
    hp_info "started ${name} (pid ${pid}, log $(rel "${log}"))"
}

service_pid() {
    local i
    for i in "${!SERVICE_NAMES[@]}"; do
        if [[ "${SERVICE_NAMES[i]}" == "$1" ]]; then
            printf '%s\n' "${SERVICE_PIDS[i]}"
            return 0
        fi
    done
    return 1
}

show_log_tail() {
    local log
    log="$(service_log "$1")"
    printf -- '--- last lines of %s ---\n' "$(rel "${log}")" >&2
    tail -n 40 "${log}" >&2 || true
    printf -- '---\n' >&2
}

# wait_ready NAME URL [TIMEOUT_SECONDS]: waits until URL answers 2xx, the
# service exits, or the time-out (default 30 s) passes.
wait_ready() {
    local name="$1" url="$2" timeout="${3:-30}"
    local pid deadline
    pid="$(service_pid "${name}")" || hp_die "wait_ready: unknown service ${name}"
    deadline=$((SECONDS + timeout))
    hp_info "waiting for ${url}"
    while ((SECONDS < deadline)); do
        if curl -fsS --max-time 2 -o /dev/null "${url}" 2>/dev/null; then
            hp_info "${name} is ready"
            return 0
        fi
        if ! kill -0 "${pid}" 2>/dev/null; then
            show_log_tail "${name}"
            hp_die "${name} exited before it became ready"
        fi
        sleep 0.5
    done
    curl -sS --max-time 2 -o /dev/null "${url}" || true
    show_log_tail "${name}"
    hp_die "${name} was not ready at ${url} within ${timeout} s"
}

# Stops the services in reverse start order: SIGTERM, then SIGKILL after 20 s.
stop_services() {
    local i pid name deadline
    for ((i = ${#SERVICE_PIDS[@]} - 1; i >= 0; i--)); do
        pid="${SERVICE_PIDS[i]}"
        name="${SERVICE_NAMES[i]}"
        if kill -0 "${pid}" 2>/dev/null; then
            hp_info "stopping ${name} (pid ${pid})"
            kill -TERM "${pid}" 2>/dev/null || true
            deadline=$((SECONDS + 20))
            while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do
                sleep 0.2
            done
            if kill -0 "${pid}" 2>/dev/null; then
                hp_warn "${name} did not stop within 20 s; killing it"
                kill -KILL "${pid}" 2>/dev/null || true
            fi
        fi
        wait "${pid}" 2>/dev/null || true
    done
    SERVICE_NAMES=()
    SERVICE_PIDS=()
}

CLEANED_UP=0
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [[ "${CLEANED_UP}" -eq 1 ]]; then
        return 0
    fi
    CLEANED_UP=1
    if [[ ${#SERVICE_PIDS[@]} -gt 0 ]] || [[ "${HUB_PG_THROWAWAY}" -eq 1 ]]; then
        hp_step "stopping the demo"
    fi
    stop_services
    stop_postgres
    return "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

require_port_free() {
    if hp_port_in_use "$1"; then
        hp_die "port $1 is already in use (is another demo running?); pick other ports with --port BASE"
    fi
}

# toml_str VALUE: VALUE as a TOML basic string.
toml_str() {
    local s="$1"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '"%s"' "${s}"
}

# ---------------------------------------------------------------------------
# hubctl helpers
# ---------------------------------------------------------------------------

# hubctl_json ARGS...: prints the output of `hubctl --output json ARGS`; on a
# failure shows the command and its error output and exits.
hubctl_json() {
    local out rc=0 err="${DEMO_DIR}/hubctl.stderr"
    out="$("${HUBCTL_BIN}" --output json "$@" 2>"${err}")" || rc=$?
    if ((rc != 0)); then
        {
            printf 'hubctl --output json'
            printf ' %q' "$@"
            printf '\nfailed with exit %d:\n' "${rc}"
            cat "${err}"
            [[ -z "${out}" ]] || printf '%s\n' "${out}"
        } >&2
        hp_die "seeding the demo failed"
    fi
    printf '%s\n' "${out}"
}

# hubctl_quiet ARGS...: runs hubctl_json ARGS and discards its output. (Not
# `hubctl_json ... >/dev/null`: an exit under that redirection would also
# silence the cleanup trap's output.)
hubctl_quiet() {
    local _out
    _out="$(hubctl_json "$@")"
}

# hubctl_id ARGS...: runs hubctl_json ARGS and prints the .id of its result.
hubctl_id() {
    local json id
    json="$(hubctl_json "$@")"
    if ! id="$(jq -er '.id' <<<"${json}")" || [[ "${id}" == "null" ]]; then
        printf 'no .id in the output of hubctl %s:\n%s\n' "$*" "${json}" >&2
        hp_die "seeding the demo failed"
    fi
    printf '%s\n' "${id}"
}

# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------

prepare_packages() {
    hp_step "packages"
    ensure_debian_packages postgresql-client jq curl ca-certificates
}

prepare_postgres() {
    hp_step "postgres"
    ensure_postgres
    ADMIN_DB_URL="${HUB_TEST_DATABASE_URL}"
    STATE_DB_URL="$(pg_url_with_database "${ADMIN_DB_URL}" "${STATE_DB_NAME}")"
}

# create_database NAME: drops and creates database NAME on the ensured server.
create_database() {
    local name="$1" version force=""
    hp_step "database ${name}"
    version="$(psql "${ADMIN_DB_URL}" -X -A -t -q -c 'show server_version_num')"
    if ((version >= 130000)); then
        force=" WITH (FORCE)" # also ends connections a leftover demo still holds
    fi
    PGOPTIONS="-c client_min_messages=warning" psql "${ADMIN_DB_URL}" -X -q -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS \"${name}\"${force}" \
        -c "CREATE DATABASE \"${name}\""
    hp_info "created a fresh ${name}"
}

build_binaries() {
    if [[ "${BUILD}" -eq 1 ]]; then
        hp_step "build (release)"
        cargo build --release --locked -p state-hub -p hubctl
    else
        hp_step "build skipped (--skip-build)"
    fi
    local bin
    for bin in "${STATE_HUB_BIN}" "${HUBCTL_BIN}"; do
        [[ -x "${bin}" ]] || hp_die "missing ${bin}; run without --skip-build"
    done
}

write_admin_token() {
    local token
    token="hpt_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    ((${#token} >= 40)) || hp_die "generated token is too short"
    rm -f -- "${TOKEN_FILE}"
    (
        umask 077
        printf '%s' "${token}" >"${TOKEN_FILE}"
    )
    chmod 0600 "${TOKEN_FILE}"
    hp_info "bootstrap admin token: $(rel "${TOKEN_FILE}")"
}

start_state_hub() {
    hp_step "state hub on ${STATE_HUB_URL}"
    cat >"${STATE_HUB_CONFIG}" <<TOML
# Written by scripts/demo.sh; rewritten on every run.
dev_mode = true

[server]
listen = $(toml_str "127.0.0.1:${STATE_HUB_PORT}")
public_url = $(toml_str "${STATE_HUB_URL}")

[database]
url = $(toml_str "${STATE_DB_URL}")
pool_size = 16
health_pool_size = 2

[auth]
bootstrap_admin_token_file = $(toml_str "${TOKEN_FILE}")

[log]
format = "pretty"
filter = "info"
TOML
    hp_info "config: $(rel "${STATE_HUB_CONFIG}")"
    require_port_free "${STATE_HUB_PORT}"
    start_service state-hub "${STATE_HUB_BIN}" --config "${STATE_HUB_CONFIG}" serve
    wait_ready state-hub "${STATE_HUB_URL}/readyz" 30
}

seed_state_hub() {
    hp_step "seeding the state hub with hubctl"
    export HUBCTL_URL="${STATE_HUB_URL}"
    export HUBCTL_TOKEN_FILE="${TOKEN_FILE}"

    local ws wp t_host t_lldap t_caps t_runbooks t_backups d_sso d_caps d_db

    ws="$(hubctl_id workstreams create --slug platform --title "Platform foundation" \
        --description "Everything the platform team needs before the first application runs on the cluster: the management host, its own directory and SSO, and the capability contracts with the cluster.")"
    hp_info "workstream platform: ${ws}"

    wp="$(hubctl_id workplans create --workstream "${ws}" --title "Stand up the management plane" \
        --description "Provision the management host, wire LLDAP and Authelia, register the cluster's capability interfaces, and write the runbooks operators need on a bad day.")"
    hp_info "workplan: ${wp}"

    t_host="$(hubctl_id tasks create --workplan "${wp}" \
        --title "Provision the management host with Terraform and nixos-anywhere" \
        --assignee alice --status progress)"
    t_lldap="$(hubctl_id tasks create --workplan "${wp}" \
        --title "Configure LLDAP groups and the break-glass account" \
        --assignee bob --status todo)"
    t_caps="$(hubctl_id tasks create --workplan "${wp}" \
        --title "Register the k3s cluster's capability interfaces" \
        --status wait --blocking-reason "Waiting for the cluster team to publish the OpenAPI contracts" \
        --needs-human)"
    t_runbooks="$(hubctl_id tasks create --workplan "${wp}" \
        --title "Write runbooks S0-S6 for operators" \
        --assignee alice --status todo)"
    t_backups="$(hubctl_id tasks create --workplan "${wp}" \
        --title "Schedule nightly PostgreSQL backups off the host" \
        --status todo)"
    hp_info "tasks: ${t_host} ${t_lldap} ${t_caps} ${t_runbooks} ${t_backups}"

    d_sso="$(hubctl_id decisions propose --title "Which SSO provider fronts the management plane?" \
        --context "Hub users log in against the management host's own directory, never the cluster's. Authelia is small and reads LLDAP directly; Keycloak brings its own user store and a JVM." \
        --option "Authelia" --option "Keycloak" --task "${t_lldap}")"
    hubctl_quiet decisions resolve "${d_sso}" --choice "Authelia" \
        --rationale "Fits the 2-core host, keeps LLDAP the only user store, and NixOS has a maintained module for it."
    hp_info "decision (resolved): ${d_sso}"

    d_caps="$(hubctl_id decisions propose --title "One capability gateway or one registration per service?" \
        --context "Hubs reach the cluster only through registered capability interfaces. A single gateway is one contract to review; per-service registrations keep failures and ownership separate." \
        --option "Single capability gateway" --option "One registration per service" --task "${t_caps}")"
    hubctl_quiet decisions escalate "${d_caps}" \
        --reason "Changes what the cluster team has to run and be on call for; needs a human sign-off from both teams."
    hp_info "decision (escalated): ${d_caps}"

    d_db="$(hubctl_id decisions propose --title "Where does the hubs' PostgreSQL run?" \
        --context "Every hub keeps its state in PostgreSQL. The governor must not run on the governed, so the cluster's databases are out." \
        --option "Local PostgreSQL on the management host" --option "Managed database outside the host" \
        --made --choice "Local PostgreSQL on the management host" \
        --rationale "Keeps the management plane self-contained: it works while the cluster and any outside service are down; backups leave the host nightly.")"
    hp_info "decision (made): ${d_db}"

    hubctl_quiet events post --type deploy.started \
        --summary "Staging deploy of state-hub 0.1.0 started" \
        --detail '{"env":"staging","service":"state-hub","version":"0.1.0"}'
    hubctl_quiet events post --type note.added \
        --summary "LLDAP layout checked: people in ou=people, groups in ou=groups" \
        --detail '{"topic":"lldap","by":"bob"}'
    hubctl_quiet events post --type review.requested \
        --summary "Review requested: runbook S1 (host provisioning)" \
        --detail '{"document":"docs/runbooks/S1.md","reviewer":"bob"}'
    hubctl_quiet events post --type note.added \
        --summary "Cluster team expects the capability contracts next week" \
        --detail '{"topic":"capabilities","by":"alice"}'
    hp_info "events: deploy.started, note.added x2, review.requested"

    # A second person: escalated decisions are approved by someone other than their proposer.
    REVIEWER_TOKEN_FILE="${DEMO_DIR}/reviewer.token"
    ( umask 077; "${HUBCTL_BIN}" --output json tokens create --name "demo reviewer" --subject reviewer \
        --kind human --role member | jq -er .token > "${REVIEWER_TOKEN_FILE}" ) \
        || hp_die "could not create the reviewer token"
    ESCALATED_DECISION="${d_caps}"
    hp_info "reviewer token: $(rel "${REVIEWER_TOKEN_FILE}")"

    hp_step "hubctl audit verify"
    "${HUBCTL_BIN}" audit verify || hp_die "hubctl audit verify failed"
}

print_banner() {
    local hubctl_rel
    hubctl_rel="$(rel "${HUBCTL_BIN}")"
    cat <<BANNER

================================================================================
 Hubplane demo is up
--------------------------------------------------------------------------------
 state hub API      ${STATE_HUB_URL}/api/v1
 liveness           ${STATE_HUB_URL}/healthz
 readiness          ${STATE_HUB_URL}/readyz
 metrics            ${STATE_HUB_URL}/metrics
 OpenAPI document   ${STATE_HUB_URL}/api/v1/openapi.json

 admin token file   ${TOKEN_FILE}
 config             $(rel "${STATE_HUB_CONFIG}")
 log                $(rel "$(service_log state-hub)")
 database           ${STATE_DB_URL}

 logins (API tokens; web login arrives with the identity milestone)
   admin            ${TOKEN_FILE}
   reviewer         ${REVIEWER_TOKEN_FILE}

 Try it:
   export HUBCTL_URL=${STATE_HUB_URL} HUBCTL_TOKEN_FILE=${TOKEN_FILE}
   ${hubctl_rel} events tail                       # in a second terminal
   ${hubctl_rel} decisions list --status escalated
   ${hubctl_rel} decisions resolve ${ESCALATED_DECISION} --choice "One registration per service" --rationale "ok"
       # refused: admin proposed it; approve as the reviewer:
   HUBCTL_TOKEN_FILE=${REVIEWER_TOKEN_FILE} ${hubctl_rel} decisions resolve ${ESCALATED_DECISION} \\
       --choice "One registration per service" --rationale "Separate failure domains"
   ${hubctl_rel} audit verify
================================================================================
BANNER
}

# Runs until Ctrl-C / SIGTERM (the traps stop everything), or until a service dies.
wait_forever() {
    printf '\nRunning. Press Ctrl-C to stop.\n'
    local i
    while true; do
        for i in "${!SERVICE_PIDS[@]}"; do
            if ! kill -0 "${SERVICE_PIDS[i]}" 2>/dev/null; then
                show_log_tail "${SERVICE_NAMES[i]}"
                hp_die "${SERVICE_NAMES[i]} exited unexpectedly"
            fi
        done
        sleep 1 &
        wait $! || true
    done
}

main() {
    mkdir -p "${DEMO_DIR}"
    chmod 0700 "${DEMO_DIR}"
    command -v cargo >/dev/null 2>&1 || [[ "${BUILD}" -eq 0 ]] || hp_die "cargo not found on PATH"

    prepare_packages
    prepare_postgres
    create_database "${STATE_DB_NAME}"
    build_binaries
    write_admin_token

    start_state_hub
    # Later: start_ldap_stand_in, start_oidc_stand_in, start_domain_hub dev-hub, ...

    seed_state_hub
    print_banner

    if [[ "${WAIT}" -eq 0 ]]; then
        printf '\n--no-wait: stopping the demo.\n'
        exit 0
    fi
    wait_forever
}

main
