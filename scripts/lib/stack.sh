#!/usr/bin/env bash
# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
#
# The management plane, started from one place for the demo and the suites: a
# test CA, the LDAP and OIDC stand-ins (tests/standins), an OIDC client per
# hub, a fresh PostgreSQL database per hub, the identity-enabled state hub and,
# on top of it, the cluster stand-in and the domain hubs (dev-hub, ops-hub)
# with their capability registrations. Source it; do not execute it.
#
# The state hub alone (what the browser suite runs):
#
#   stack_ensure_deps
#       Installs what the stack needs (the stand-ins' packages, psql, jq, curl).
#   stack_up --dir DIR --hub-port PORT --oidc-port PORT --ldap-port PORT
#            --database NAME --bin-dir DIR [--tls] [--log-format pretty|json]
#            [--log-filter FILTER] [--client NAME=PUBLIC_URL]... [--probe-interval SECONDS]
#            [--allow-cidr CIDR]... [--capability-option KEY=VALUE]...
#       Starts everything under DIR (created, mode 0700; a previous stack
#       there is stopped first) and waits until the state hub answers /readyz:
#         DIR/ca/                test CA (ca.pem) and the 127.0.0.1 server certificate
#         DIR/ldap/, DIR/oidc/   the stand-ins (pid files, logs)
#         DIR/oidc-clients.json  one OIDC client per hub (0600: holds the secrets)
#         DIR/secrets/           NAME.oidc-client-secret per hub, admin.token, and
#                                state-hub.age: the state hub's age identity
#                                (hubctl secret keygen), which seals capability credentials
#         DIR/state-hub.toml     the state hub's config; .log and .pid beside it
#         DIR/stack.env          every STACK_* variable below, for other processes
#       The issuer is http://127.0.0.1:OIDC_PORT (dev mode, loopback), or with
#       --tls https://127.0.0.1:OIDC_PORT signed by the test CA, which the hub
#       trusts through identity.oidc.ca_file. The state hub is the client
#       `state-hub`; --client adds another hub (client_id NAME, redirect
#       PUBLIC_URL/auth/callback, secret in DIR/secrets/NAME.oidc-client-secret).
#       The state hub's [capabilities] trust the test CA and allow 127.0.0.1/32
#       (the cluster stand-in is on loopback) and probe every --probe-interval
#       seconds (default 30). --allow-cidr replaces 127.0.0.1/32 in the SSRF
#       allowlist of every hub (allow_cidrs; the cluster elsewhere, e.g. in a
#       network namespace); --capability-option adds KEY = VALUE to every
#       hub's [capabilities] (connect_timeout_ms=1000, breaker_failures=2, ...;
#       numbers only). BIN_DIR must hold state-hub and hubctl.
#       The database NAME is dropped and created on $HUB_TEST_DATABASE_URL
#       (ensure_postgres). Sets and exports:
#         STACK_DIR STACK_HUB_URL STACK_ISSUER STACK_LDAP_URL STACK_CA_FILE
#         STACK_TOKEN_FILE STACK_DB_NAME STACK_DB_URL STACK_HUB_CONFIG STACK_HUB_LOG
#         STACK_HUB_PID STACK_OIDC_DIR STACK_LDAP_DIR STACK_OIDC_PORT STACK_TLS
#         STACK_BIN_DIR STACK_AGE_IDENTITY STACK_ALLOW_CIDRS STACK_CAPABILITY_OPTIONS
#       On a failure it exits (hp_die); call stack_down from your EXIT trap, so
#       whatever had started is stopped then too.
#   stack_down [DIR]
#       Stops the domain hubs, the state hub, the cluster, the OIDC and the LDAP
#       stand-in of the stack in DIR (default $STACK_DIR), each by its pid file
#       and only if that pid still runs what the stack started. Idempotent;
#       works from any shell.
#   stack_stop_oidc [DIR] / stack_start_oidc [DIR]
#       Stops / starts again only the OIDC stand-in (break-glass needs the
#       provider down). The stand-in makes a new signing key at every start, so
#       a restart is also a key rotation the hub has to follow.
#   stack_oidc_start_command [DIR]
#       Prints the command line that starts the OIDC stand-in again, for people.
#   stack_stop_state_hub [DIR] / stack_start_state_hub [DIR]
#       Stops / starts again the state hub, on the same config and database (its
#       log goes on in the same file). For outages.
#   stack_drop_database
#       Drops $STACK_DB_NAME and the domain hubs' databases (the suites'
#       clean-up; the demo keeps its data).
#   stack_load DIR
#       Sets the STACK_* variables from DIR/stack.env.
#
# For the suites that run a stack (tests/suites/*.sh):
#
#   stack_suite_require BIN_DIR
#       Dies unless BIN_DIR holds state-hub, domain-hub and hubctl and
#       HUB_TEST_DATABASE_URL is set.
#   stack_suite_logs DIR LOG...
#       Prints the last 20 lines of each LOG (relative to DIR) that is not empty,
#       prefixed "#   ", colours stripped: what a failed suite shows.
#   stack_suite_teardown DIR
#       Stops the stack in DIR, loads its stack.env when this shell has not yet
#       (its databases are named there) and drops its databases. Idempotent,
#       never fails: for EXIT traps.
#
# The management plane on top of it (what the demo and tests/suites/demo-stack.sh run):
#
#   stack_plane_up --cluster-port PORT --hub NAME=PORT... --database-prefix PREFIX
#                  [--tick SECONDS] [--poll-seconds N] [--heartbeat-seconds N]
#                  [--callable-refresh-seconds N] [--log-filter FILTER]
#                  [--cluster-host ADDRESS] [--cluster-netns NAME]
#       After stack_up (which must have had --client NAME=http://127.0.0.1:PORT
#       for each hub): stack_cluster_up, stack_seed_plane, stack_domain_hub_up
#       for each --hub (database PREFIX_<name with _>), stack_activate_manifest
#       for each, then waits until every widget of each hub is fresh. The
#       state hub lets only one hub hold an event type, so a later hub's
#       manifest leaves out the event types an earlier one declares (a warning
#       names them; the events are journaled all the same).
#   stack_cluster_up --port PORT [--tick SECONDS] [--host ADDRESS] [--netns NAME]
#       The cluster stand-in (tests/standins/cluster) on https://127.0.0.1:PORT
#       with the test CA's server certificate, under DIR/cluster/, wanting the
#       bearer token in DIR/secrets/cluster.token (new at every stack_cluster_up).
#       --host: on https://ADDRESS:PORT instead, with a certificate for ADDRESS
#       from the test CA (DIR/cluster-tls/, tests/standins/cluster/issue-cert.sh);
#       --netns: the stand-in runs in that network namespace (which must exist
#       and reach ADDRESS; stack_up --allow-cidr must name ADDRESS).
#       Sets STACK_CLUSTER_DIR STACK_CLUSTER_PORT STACK_CLUSTER_URL
#       STACK_CLUSTER_TOKEN_FILE STACK_CLUSTER_TICK STACK_CLUSTER_HOST
#       STACK_CLUSTER_NETNS.
#   stack_stop_cluster [DIR] / stack_start_cluster [DIR]
#       Stops / starts the cluster stand-in again, on the same port and token
#       (an outage and its recovery).
#   stack_cluster_start_command [DIR]
#       Prints the command line that starts the cluster stand-in again, for people.
#   stack_seed_plane
#       Through hubctl against the state hub: human tokens for alice (admin,
#       DIR/secrets/alice.token) and bob (member, DIR/secrets/bob.token); hub
#       kinds dev, ops, fin; the capabilities deployments, nodes and costs of
#       the cluster (base URL STACK_CLUSTER_URL/<name>, health path /healthz,
#       contract path /contract, the contract the stand-in serves), each
#       requested by bob, accepted by alice, built and sent to review by bob,
#       given the cluster's token as its credential (admin) and completed by
#       alice: completing is a human admin's review of someone else's request.
#       Sets STACK_ALICE_TOKEN_FILE STACK_BOB_TOKEN_FILE.
#   stack_domain_hub_up --name NAME --port PORT --database DB [--manifest FILE]
#                       [--poll-seconds N] [--heartbeat-seconds N]
#                       [--callable-refresh-seconds N] [--log-filter FILTER]
#       One domain hub instance (BIN_DIR/domain-hub): its service token in the
#       state hub (subject hub:NAME, member, with the manifest's policy scopes;
#       DIR/secrets/NAME.state-hub.token), a fresh database DB, its config
#       DIR/NAME.toml ([hub] with the manifest, default
#       hubs/domain-hub/manifests/NAME.json — with --poll-seconds a copy
#       DIR/NAME.manifest.json polling that often; [state_hub]; [identity] with
#       its own OIDC client, LDAP and every policy scope of the manifest granted
#       to hub_admins; [capabilities] trusting the test CA and 127.0.0.1/32),
#       started (DIR/NAME.log, DIR/NAME.pid) and waited for (/readyz); then an
#       API token on the hub itself for alice (member, the manifest's scopes)
#       in DIR/secrets/NAME.api.token. The domain hub has no token endpoint:
#       that token is written straight into its api_tokens table.
#   stack_activate_manifest NAME [TIMEOUT]
#       Waits (default 30 s) until hub NAME has submitted its manifest, and
#       activates the draft as admin; prints its id.
#   stack_stop_domain_hub NAME [DIR] / stack_start_domain_hub NAME [DIR]
#       Stops / starts one domain hub again (same config, database, log).
#   stack_domain_hubs [DIR]
#       Prints the names of the stack's domain hubs, one a line.
#   stack_domain_url NAME [DIR]
#       Prints the domain hub's URL.
#   stack_domain_token_file NAME [DIR]
#       Prints the path of the hub's API token file (alice on that hub).
#   stack_widgets NAME
#       Prints GET /api/v1/widgets of the domain hub (JSON), with its API token.
#   stack_wait_widgets NAME STATE TIMEOUT [all|any]
#       Waits until every (all, default) or some (any) widget of hub NAME has
#       freshness.state STATE (fresh, stale, unreachable, no_data); returns 1
#       after TIMEOUT seconds.
#   stack_browser_login HUB_URL USER COOKIE_JAR
#       Logs USER (a fixture user) in to a hub of the stack the way a browser
#       does (the hub's SSO start, the provider's form, the callback), with
#       curl; the session cookie ends up in COOKIE_JAR (0600). Returns 1 (with
#       a warning) when a step does not go as a browser's would.

if [[ -n "${_HP_STACK_SH:-}" ]]; then
    return 0
fi
_HP_STACK_SH=1

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
# shellcheck source=postgres.sh
source "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"
# shellcheck source=standins.sh
source "$(dirname "${BASH_SOURCE[0]}")/standins.sh"

# The fixture's break-glass group (tests/standins/directory.json).
STACK_BREAK_GLASS_GROUP="hub_breakglass"
# The fixture's admins: policy scopes of a domain hub's manifest are granted to them.
STACK_SCOPE_GROUP="hub_admins"
# Where the shipped manifests are.
STACK_MANIFEST_DIR="${HUBPLANE_REPO}/hubs/domain-hub/manifests"
# Every STACK_* variable stack.env carries.
_STACK_ENV_VARS=(STACK_DIR STACK_HUB_URL STACK_ISSUER STACK_LDAP_URL STACK_CA_FILE
    STACK_TOKEN_FILE STACK_DB_NAME STACK_DB_URL STACK_HUB_CONFIG STACK_HUB_LOG
    STACK_HUB_PID STACK_OIDC_DIR STACK_LDAP_DIR STACK_OIDC_PORT STACK_TLS
    STACK_BIN_DIR STACK_AGE_IDENTITY
    STACK_CLUSTER_DIR STACK_CLUSTER_PORT STACK_CLUSTER_URL STACK_CLUSTER_TOKEN_FILE
    STACK_CLUSTER_TICK STACK_ALICE_TOKEN_FILE STACK_BOB_TOKEN_FILE
    STACK_ALLOW_CIDRS STACK_CAPABILITY_OPTIONS STACK_CLUSTER_HOST STACK_CLUSTER_NETNS)
# The scripts' own HUB_* variables are not hub configuration: they are kept out of the hubs'
# environment so they cannot be read as config overrides.
_STACK_ENV_SCRUB=(-u HUB_TEST_DATABASE_URL -u HUB_FORCE_THROWAWAY_PG -u HUB_PG_THROWAWAY
    -u HUB_PG_LOG -u HUB_PG_PORT -u HUB_BIN_DIR -u HUB_SUITE_TIMEOUT -u NOTIFY_SOCKET)

stack_ensure_deps() {
    ensure_standins
    ensure_debian_packages postgresql-client jq curl ca-certificates openssl python3
}

# _stack_toml_str VALUE: VALUE as a TOML basic string.
_stack_toml_str() {
    local s="$1"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '"%s"' "${s}"
}

# _stack_capabilities_toml [SKIP_KEY]: the [capabilities] lines every hub shares: allow_cidrs
# (STACK_ALLOW_CIDRS, default 127.0.0.1/32) and the --capability-option lines, but SKIP_KEY's.
_stack_capabilities_toml() {
    local skip="${1:-}" cidr list="" option
    for cidr in ${STACK_ALLOW_CIDRS:-127.0.0.1/32}; do
        list+="${list:+, }$(_stack_toml_str "${cidr}")"
    done
    printf 'allow_cidrs = [%s]\n' "${list}"
    for option in ${STACK_CAPABILITY_OPTIONS:-}; do
        [[ "${option%%=*}" != "${skip}" ]] || continue
        printf '%s = %s\n' "${option%%=*}" "${option#*=}"
    done
}

# _stack_capabilities_comment: the line above [capabilities] in every hub's config.
_stack_capabilities_comment() {
    if [[ "${STACK_ALLOW_CIDRS:-127.0.0.1/32}" == 127.0.0.1/32 ]]; then
        printf '# The cluster (stand-in) is on loopback with the test CA: the SSRF guard lets 127.0.0.1 through.\n'
    else
        printf '# The cluster (stand-in) has a certificate from the test CA; the SSRF guard lets exactly allow_cidrs through.\n'
    fi
}

# _stack_random: 43 URL-safe random characters (256 bits).
_stack_random() {
    local secret
    secret="$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n')"
    ((${#secret} >= 40)) || hp_die "could not generate a secret"
    printf '%s' "${secret}"
}

# _stack_secret FILE: writes a fresh random secret (43 URL-safe characters) to FILE, mode 0600.
_stack_secret() {
    local file="$1" secret
    secret="$(_stack_random)"
    rm -f -- "${file}"
    (
        umask 077
        printf '%s' "${secret}" >"${file}"
    )
}

# _stack_pid_runs PID NEEDLE: true when PID runs and its command line contains NEEDLE
# (so a pid file left behind never makes us signal an unrelated process).
_stack_pid_runs() {
    local pid="$1" needle="$2"
    [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
    hp_pid_running "${pid}" || return 1
    tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF -- "${needle}"
}

stack_load() {
    [[ $# -eq 1 ]] || hp_die "usage: stack_load DIR"
    [[ -f "$1/stack.env" ]] || hp_die "no stack in $1 (missing stack.env)"
    # shellcheck source=/dev/null
    source "$1/stack.env"
}

# _stack_write_env: DIR/stack.env with every STACK_* variable, shell-quoted.
_stack_write_env() {
    local name
    {
        printf '# Written by scripts/lib/stack.sh: the stack in this directory.\n'
        for name in "${_STACK_ENV_VARS[@]}"; do
            printf 'export %s=%q\n' "${name}" "${!name:-}"
        done
    } >"${STACK_DIR}/stack.env"
}

# _stack_rel PATH: PATH relative to the checkout when it is inside it (for people).
_stack_rel() {
    printf '%s' "${1#"${HUBPLANE_REPO}"/}"
}

# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

# _stack_stop_pid LABEL PID_FILE NEEDLE [SECONDS]: stops the process PID_FILE names, if its
# command line contains NEEDLE: SIGTERM, SIGKILL after SECONDS (default 20). Removes PID_FILE.
_stack_stop_pid() {
    local label="$1" pid_file="$2" needle="$3" seconds="${4:-20}" pid deadline
    [[ -f "${pid_file}" ]] || return 0
    pid="$(cat "${pid_file}" 2>/dev/null || true)"
    if _stack_pid_runs "${pid}" "${needle}"; then
        hp_info "stopping the ${label} (pid ${pid})"
        kill -TERM "${pid}" 2>/dev/null || true
        deadline=$((SECONDS + seconds))
        while hp_pid_running "${pid}" && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if hp_pid_running "${pid}"; then
            hp_warn "the ${label} (pid ${pid}) did not stop within ${seconds} s; killing it"
            kill -KILL "${pid}" 2>/dev/null || true
        fi
    fi
    # Reaps it when this shell started it; harmless otherwise.
    wait "${pid}" 2>/dev/null || true
    rm -f -- "${pid_file}"
}

# _stack_spawn LABEL BIN CONFIG LOG PID_FILE READY_URL MODE: runs `BIN --config CONFIG
# configtest` (MODE fresh: the log starts empty) or appends a restart line to LOG (MODE
# restart), starts `BIN --config CONFIG serve` in the background with its output in LOG,
# writes PID_FILE and waits (60 s) until READY_URL answers 200. Prints nothing; sets
# _STACK_SPAWNED_PID.
_stack_spawn() {
    local label="$1" bin="$2" config="$3" log="$4" pid_file="$5" url="$6" mode="$7" pid deadline
    [[ -x "${bin}" ]] || hp_die "missing ${bin} (build it: cargo build -p $(basename "${bin}"))"
    if [[ "${mode}" == fresh ]]; then
        if ! env "${_STACK_ENV_SCRUB[@]}" "${bin}" --config "${config}" configtest >"${log}" 2>&1 </dev/null; then
            cat "${log}" >&2
            hp_die "$(basename "${bin}") configtest refused ${config}"
        fi
        : >"${log}"
    else
        printf '\n---- %s: started again by scripts/lib/stack.sh ----\n' "$(date -u +%FT%TZ)" >>"${log}"
    fi
    env "${_STACK_ENV_SCRUB[@]}" "${bin}" --config "${config}" serve >>"${log}" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "${pid}" >"${pid_file}"
    _STACK_SPAWNED_PID="${pid}"
    hp_info "started the ${label} (pid ${pid}, log $(_stack_rel "${log}"))"
    deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        if curl -fsS --max-time 2 -o /dev/null "${url}/readyz" 2>/dev/null; then
            hp_info "${label} ready at ${url}"
            return 0
        fi
        if ! hp_pid_running "${pid}"; then
            tail -n 40 "${log}" >&2 || true
            hp_die "the ${label} exited before it became ready (log: ${log})"
        fi
        sleep 0.2
    done
    tail -n 40 "${log}" >&2 || true
    hp_die "the ${label} was not ready at ${url}/readyz within 60 s"
}

# ---------------------------------------------------------------------------
# Identity stand-ins
# ---------------------------------------------------------------------------

# _stack_oidc_args: the arguments of start_oidc_standin for this stack.
_stack_oidc_args() {
    local -n _out="$1"
    _out=("${STACK_OIDC_DIR}" "${STACK_OIDC_PORT}" "${STACK_ISSUER}" "${STACK_DIR}/oidc-clients.json" "${STACK_LDAP_URL}")
    if [[ "${STACK_TLS}" -eq 1 ]]; then
        _out+=(--cert "${STACK_DIR}/ca/server.pem" --key "${STACK_DIR}/ca/server-key.pem")
    fi
}

stack_start_oidc() {
    [[ $# -eq 0 ]] || stack_load "$1"
    _stack_start_oidc
}

_stack_start_oidc() {
    local -a args
    _stack_oidc_args args
    start_oidc_standin "${args[@]}" >&2
}

stack_stop_oidc() {
    local dir="${1:-${STACK_DIR:-}}"
    [[ -n "${dir}" ]] || hp_die "usage: stack_stop_oidc DIR"
    stop_standin "${dir}/oidc"
}

stack_oidc_start_command() {
    [[ $# -eq 0 ]] || stack_load "$1"
    local -a args
    _stack_oidc_args args
    local rel=()
    local a
    for a in "${args[@]}"; do
        rel+=("$(_stack_rel "${a}")")
    done
    printf 'tests/standins/oidc/start.sh --dir %q --port %q --issuer %q --clients %q --ldap-url %q' \
        "${rel[@]:0:5}"
    if [[ "${STACK_TLS}" -eq 1 ]]; then
        printf ' --cert %q --key %q' "${rel[@]:6:1}" "${rel[@]:8:1}"
    fi
    printf '\n'
}

# ---------------------------------------------------------------------------
# The state hub
# ---------------------------------------------------------------------------

# _stack_stop_hub DIR: stops the state hub started from DIR: SIGTERM, SIGKILL after 20 s.
_stack_stop_hub() {
    local dir="$1"
    _stack_stop_pid "state hub" "${dir}/state-hub.pid" "--config ${dir}/state-hub.toml"
}

stack_stop_state_hub() {
    local dir="${1:-${STACK_DIR:-}}"
    [[ -n "${dir}" ]] || hp_die "usage: stack_stop_state_hub DIR"
    _stack_stop_hub "$(cd "${dir}" && pwd -P)"
}

stack_start_state_hub() {
    [[ $# -eq 0 ]] || stack_load "$1"
    _stack_spawn "state hub" "${STACK_BIN_DIR}/state-hub" "${STACK_HUB_CONFIG}" "${STACK_HUB_LOG}" \
        "${STACK_DIR}/state-hub.pid" "${STACK_HUB_URL}" restart
    STACK_HUB_PID="${_STACK_SPAWNED_PID}"
    _stack_write_env
}

# _stack_domain_names DIR: the domain hubs of the stack in DIR, one a line.
_stack_domain_names() {
    local list="$1/domain-hubs.list"
    [[ -f "${list}" ]] || return 0
    awk 'NF >= 4 { print $1 }' "${list}"
}

# _stack_domain_field DIR NAME FIELD: a field of NAME's line in DIR/domain-hubs.list
# (2 kind, 3 port, 4 database).
_stack_domain_field() {
    local list="$1/domain-hubs.list"
    [[ -f "${list}" ]] || hp_die "no domain hubs in $1"
    local value
    value="$(awk -v n="$2" -v f="$3" '$1 == n { print $f; exit }' "${list}")"
    [[ -n "${value}" ]] || hp_die "no domain hub $2 in $1"
    printf '%s' "${value}"
}

stack_down() {
    local dir="${1:-${STACK_DIR:-}}" name
    [[ -n "${dir}" && -d "${dir}" ]] || return 0
    dir="$(cd "${dir}" && pwd -P)"
    # Domain hubs first: at shutdown they hand what is in their outbox to the state hub.
    while IFS= read -r name; do
        _stack_stop_domain "${dir}" "${name}"
    done < <(_stack_domain_names "${dir}")
    _stack_stop_hub "${dir}"
    if [[ -f "${dir}/cluster/cluster.pid" ]]; then
        stop_cluster_standin "${dir}/cluster" || true
    fi
    stop_standin "${dir}/oidc" || true
    stop_standin "${dir}/ldap" || true
}

# _stack_drop_force: " WITH (FORCE)" when the server has it (13+): it also ends the
# connections a leftover run still holds.
_stack_drop_force() {
    local version
    version="$(psql "${HUB_TEST_DATABASE_URL}" -X -A -t -q -c 'show server_version_num')" || return 1
    if ((version >= 130000)); then
        printf ' WITH (FORCE)'
    fi
}

stack_drop_database() {
    [[ -n "${HUB_TEST_DATABASE_URL:-}" ]] || return 0
    local force name
    local -a names=()
    [[ -z "${STACK_DB_NAME:-}" ]] || names+=("${STACK_DB_NAME}")
    if [[ -n "${STACK_DIR:-}" && -f "${STACK_DIR}/domain-hubs.list" ]]; then
        while IFS= read -r name; do
            names+=("${name}")
        done < <(awk 'NF >= 4 { print $4 }' "${STACK_DIR}/domain-hubs.list")
    fi
    [[ ${#names[@]} -gt 0 ]] || return 0
    force="$(_stack_drop_force)" || force=""
    for name in "${names[@]}"; do
        [[ "${name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
        PGOPTIONS="-c client_min_messages=warning" psql "${HUB_TEST_DATABASE_URL}" -X -q \
            -c "DROP DATABASE IF EXISTS \"${name}\"${force}" >/dev/null \
            || hp_warn "could not drop database ${name}"
    done
}

stack_suite_require() {
    [[ $# -eq 1 ]] || hp_die "usage: stack_suite_require BIN_DIR"
    local bin
    for bin in state-hub domain-hub hubctl; do
        [[ -x "$1/${bin}" ]] || hp_die "no ${bin} in $1 (cargo build -p state-hub -p domain-hub -p hubctl)"
    done
    [[ -n "${HUB_TEST_DATABASE_URL:-}" ]] || hp_die "HUB_TEST_DATABASE_URL is not set (tests/suites/README.md)"
}

stack_suite_logs() {
    [[ $# -ge 1 ]] || hp_die "usage: stack_suite_logs DIR LOG..."
    local dir="$1" log
    shift
    for log in "$@"; do
        if [[ -s "${dir}/${log}" ]]; then
            printf '# --- last lines of %s ---\n' "${log}"
            tail -n 20 "${dir}/${log}" | sed -e $'s/\x1b\\[[0-9;]*m//g' -e 's/^/#   /'
        fi
    done
}

stack_suite_teardown() {
    [[ $# -eq 1 ]] || { hp_warn "usage: stack_suite_teardown DIR"; return 0; }
    stack_down "$1" >/dev/null 2>&1 || true
    if [[ -z "${STACK_DB_NAME:-}" && -f "$1/stack.env" ]]; then
        stack_load "$1" || true
    fi
    stack_drop_database || true
}

# _stack_make_database NAME: drops and creates NAME on $HUB_TEST_DATABASE_URL's server (call
# ensure_postgres first); prints its URL.
_stack_make_database() {
    local name="$1" force
    [[ "${name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || hp_die "database name must be an identifier: ${name}"
    [[ -n "${HUB_TEST_DATABASE_URL:-}" ]] || hp_die "HUB_TEST_DATABASE_URL is not set (ensure_postgres)"
    force="$(_stack_drop_force)" || hp_die "cannot query PostgreSQL at ${HUB_TEST_DATABASE_URL}"
    PGOPTIONS="-c client_min_messages=warning" psql "${HUB_TEST_DATABASE_URL}" -X -q -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS \"${name}\"${force}" \
        -c "CREATE DATABASE \"${name}\"" >&2 \
        || hp_die "could not create database ${name}"
    pg_url_with_database "${HUB_TEST_DATABASE_URL}" "${name}"
}

# _stack_create_database NAME: drops and creates NAME on the ensured server for the state hub.
_stack_create_database() {
    local name="$1"
    # ensure_postgres may start a throwaway server: not in a subshell.
    ensure_postgres
    STACK_DB_URL="$(_stack_make_database "${name}")"
    STACK_DB_NAME="${name}"
}

# _stack_write_clients NAME=URL...: DIR/oidc-clients.json, one confidential client per hub.
_stack_write_clients() {
    local entry name url secret_file json='[]'
    mkdir -p -- "${STACK_DIR}/secrets"
    for entry in "$@"; do
        name="${entry%%=*}"
        url="${entry#*=}"
        url="${url%/}"
        [[ "${name}" =~ ^[a-z][a-z0-9-]*$ ]] || hp_die "--client: hub name must be lower-case letters, digits and '-': ${name}"
        [[ "${url}" =~ ^https?:// ]] || hp_die "--client ${name}: not an http(s) URL: ${url}"
        secret_file="${STACK_DIR}/secrets/${name}.oidc-client-secret"
        _stack_secret "${secret_file}"
        json="$(jq --arg id "${name}" --rawfile secret "${secret_file}" --arg uri "${url}/auth/callback" \
            '. + [{client_id: $id, client_secret: $secret, redirect_uris: [$uri]}]' <<<"${json}")"
    done
    (
        umask 077
        printf '%s\n' "${json}" >"${STACK_DIR}/oidc-clients.json"
    )
}

_stack_write_hub_config() {
    local log_format="$1" log_filter="$2" probe_interval="$3" ca_line="" why="and the plain-http issuer on loopback"
    if [[ "${STACK_TLS}" -eq 1 ]]; then
        ca_line="ca_file = $(_stack_toml_str "${STACK_CA_FILE}")"
        why="(the issuer is https, signed by the test CA in ca_file)"
    fi
    cat >"${STACK_HUB_CONFIG}" <<TOML
# Written by scripts/lib/stack.sh; rewritten on every start.
# dev_mode: for the plain-http public_url and redirect on loopback ${why}.
dev_mode = true

[server]
listen = $(_stack_toml_str "127.0.0.1:${STACK_HUB_PORT}")
public_url = $(_stack_toml_str "${STACK_HUB_URL}")
shutdown_grace_seconds = 5

[database]
url = $(_stack_toml_str "${STACK_DB_URL}")
pool_size = 16
health_pool_size = 2

[auth]
bootstrap_admin_token_file = $(_stack_toml_str "${STACK_TOKEN_FILE}")

[identity.oidc]
issuer = $(_stack_toml_str "${STACK_ISSUER}")
client_id = "state-hub"
client_secret_file = $(_stack_toml_str "${STACK_DIR}/secrets/state-hub.oidc-client-secret")
redirect_url = $(_stack_toml_str "${STACK_HUB_URL}/auth/callback")
${ca_line}

[identity.ldap]
url = $(_stack_toml_str "${STACK_LDAP_URL}")
bind_password_file = $(_stack_toml_str "${STACK_LDAP_DIR}/admin.password")

[identity.break_glass]
group = $(_stack_toml_str "${STACK_BREAK_GLASS_GROUP}")

# [identity.roles] defaults: admin = ["hub_admins"], member = ["hub_members"], viewer = ["hub_viewers"]

# Capability credentials are sealed to this identity (made by hubctl secret keygen).
[secrets]
age_identity_files = [$(_stack_toml_str "${STACK_AGE_IDENTITY}")]

$(_stack_capabilities_comment)
[capabilities]
ca_file = $(_stack_toml_str "${STACK_CA_FILE}")
$(_stack_capabilities_toml)
probe_interval_seconds = ${probe_interval}

[log]
format = $(_stack_toml_str "${log_format}")
filter = $(_stack_toml_str "${log_filter}")
TOML
}

# _stack_start_hub BIN_DIR: starts the state hub in the background and waits for /readyz (60 s).
_stack_start_hub() {
    _stack_spawn "state hub" "$1/state-hub" "${STACK_HUB_CONFIG}" "${STACK_HUB_LOG}" \
        "${STACK_DIR}/state-hub.pid" "${STACK_HUB_URL}" fresh
    STACK_HUB_PID="${_STACK_SPAWNED_PID}"
}

stack_up() {
    local dir="" hub_port="" oidc_port="" ldap_port="" database="" bin_dir="" tls=0
    local log_format="pretty" log_filter="info" probe_interval=30 allow_cidrs="" capability_options=""
    local -a clients=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --tls) tls=1; shift; continue ;;
            --dir | --hub-port | --oidc-port | --ldap-port | --database | --bin-dir | --log-format | --log-filter | --client | --probe-interval | --allow-cidr | --capability-option)
                [[ $# -ge 2 ]] || hp_die "stack_up: $1 needs a value" ;;
            *) hp_die "stack_up: unknown argument: $1" ;;
        esac
        case "$1" in
            --dir) dir="$2" ;;
            --hub-port) hub_port="$2" ;;
            --oidc-port) oidc_port="$2" ;;
            --ldap-port) ldap_port="$2" ;;
            --database) database="$2" ;;
            --bin-dir) bin_dir="$2" ;;
            --log-format) log_format="$2" ;;
            --log-filter) log_filter="$2" ;;
            --client) clients+=("$2") ;;
            --probe-interval) probe_interval="$2" ;;
            --allow-cidr)
                [[ "$2" =~ ^[0-9a-fA-F.:]+/[0-9]{1,3}$ ]] || hp_die "--allow-cidr: not a CIDR: $2"
                allow_cidrs+="${allow_cidrs:+ }$2"
                ;;
            --capability-option)
                [[ "$2" =~ ^[a-z_]+=[0-9]+$ ]] || hp_die "--capability-option: not KEY=NUMBER: $2"
                capability_options+="${capability_options:+ }$2"
                ;;
        esac
        shift 2
    done
    [[ -n "${dir}" && -n "${hub_port}" && -n "${oidc_port}" && -n "${ldap_port}" && -n "${database}" && -n "${bin_dir}" ]] \
        || hp_die "usage: stack_up --dir DIR --hub-port PORT --oidc-port PORT --ldap-port PORT --database NAME --bin-dir DIR [--tls] [--log-format F] [--log-filter F] [--client NAME=URL]... [--probe-interval SECONDS] [--allow-cidr CIDR]... [--capability-option KEY=VALUE]..."
    local port
    for port in "${hub_port}" "${oidc_port}" "${ldap_port}"; do
        [[ "${port}" =~ ^[0-9]+$ ]] || hp_die "not a port: ${port}"
    done
    [[ "${probe_interval}" =~ ^[0-9]+$ ]] || hp_die "--probe-interval: not a number of seconds: ${probe_interval}"
    [[ -d "${bin_dir}" ]] || hp_die "--bin-dir: no directory ${bin_dir}"
    [[ -x "${bin_dir}/hubctl" ]] || hp_die "missing ${bin_dir}/hubctl (build it: cargo build -p hubctl)"

    mkdir -p -- "${dir}"
    chmod 0700 "${dir}"
    STACK_DIR="$(cd "${dir}" && pwd -P)"
    # A stack left running from this directory (a demo started with --no-wait) goes first.
    stack_down "${STACK_DIR}"
    for port in "${hub_port}" "${oidc_port}" "${ldap_port}"; do
        if hp_port_in_use "${port}"; then
            hp_die "port ${port} on 127.0.0.1 is already in use"
        fi
    done

    STACK_BIN_DIR="$(cd "${bin_dir}" && pwd -P)"
    STACK_TLS="${tls}"
    STACK_HUB_PORT="${hub_port}"
    STACK_OIDC_PORT="${oidc_port}"
    STACK_HUB_URL="http://127.0.0.1:${hub_port}"
    STACK_LDAP_URL="ldap://127.0.0.1:${ldap_port}"
    STACK_LDAP_DIR="${STACK_DIR}/ldap"
    STACK_OIDC_DIR="${STACK_DIR}/oidc"
    STACK_CA_FILE="${STACK_DIR}/ca/ca.pem"
    STACK_TOKEN_FILE="${STACK_DIR}/secrets/admin.token"
    STACK_AGE_IDENTITY="${STACK_DIR}/secrets/state-hub.age"
    STACK_HUB_CONFIG="${STACK_DIR}/state-hub.toml"
    STACK_HUB_LOG="${STACK_DIR}/state-hub.log"
    STACK_HUB_PID=""
    STACK_CLUSTER_DIR="" STACK_CLUSTER_PORT="" STACK_CLUSTER_URL="" STACK_CLUSTER_TOKEN_FILE=""
    STACK_CLUSTER_TICK="" STACK_ALICE_TOKEN_FILE="" STACK_BOB_TOKEN_FILE=""
    STACK_CLUSTER_HOST="" STACK_CLUSTER_NETNS=""
    STACK_ALLOW_CIDRS="${allow_cidrs:-127.0.0.1/32}"
    STACK_CAPABILITY_OPTIONS="${capability_options}"
    if [[ "${tls}" -eq 1 ]]; then
        STACK_ISSUER="https://127.0.0.1:${oidc_port}"
    else
        STACK_ISSUER="http://127.0.0.1:${oidc_port}"
    fi
    export STACK_DIR STACK_HUB_URL STACK_ISSUER STACK_LDAP_URL STACK_CA_FILE STACK_TOKEN_FILE \
        STACK_DB_NAME STACK_DB_URL STACK_HUB_CONFIG STACK_HUB_LOG STACK_HUB_PID STACK_OIDC_DIR \
        STACK_LDAP_DIR STACK_OIDC_PORT STACK_TLS STACK_BIN_DIR STACK_AGE_IDENTITY \
        STACK_CLUSTER_DIR STACK_CLUSTER_PORT STACK_CLUSTER_URL STACK_CLUSTER_TOKEN_FILE \
        STACK_CLUSTER_TICK STACK_ALICE_TOKEN_FILE STACK_BOB_TOKEN_FILE \
        STACK_ALLOW_CIDRS STACK_CAPABILITY_OPTIONS STACK_CLUSTER_HOST STACK_CLUSTER_NETNS

    hp_step "stack: test CA, stand-ins, database, state hub"
    rm -rf -- "${STACK_DIR}/ca" "${STACK_LDAP_DIR}" "${STACK_OIDC_DIR}" "${STACK_DIR}/secrets" \
        "${STACK_DIR}/cluster" "${STACK_DIR}/cluster-tls" "${STACK_DIR}/contracts" "${STACK_DIR}/domain-hubs.list"
    make_test_ca "${STACK_DIR}/ca"
    mkdir -p -- "${STACK_DIR}/secrets"
    chmod 0700 "${STACK_DIR}/secrets"
    _stack_secret "${STACK_TOKEN_FILE}"
    "${STACK_BIN_DIR}/hubctl" secret keygen --out "${STACK_AGE_IDENTITY}" >/dev/null </dev/null \
        || hp_die "hubctl secret keygen --out ${STACK_AGE_IDENTITY} failed"
    _stack_write_clients "state-hub=${STACK_HUB_URL}" "${clients[@]}"
    _stack_write_env

    start_ldap_standin "${STACK_LDAP_DIR}" "${ldap_port}" >&2 \
        || hp_die "the LDAP stand-in did not start (${STACK_LDAP_DIR})"
    _stack_start_oidc || hp_die "the OIDC stand-in did not start (${STACK_OIDC_DIR})"

    _stack_create_database "${database}"
    hp_info "database ${STACK_DB_NAME} (fresh)"
    _stack_write_hub_config "${log_format}" "${log_filter}" "${probe_interval}"
    _stack_start_hub "${STACK_BIN_DIR}"
    _stack_write_env
}

# ---------------------------------------------------------------------------
# hubctl against the stack's state hub
# ---------------------------------------------------------------------------

# _stack_hubctl TOKEN_FILE ARGS...: prints the output of `hubctl --output json ARGS` run with
# that token against the stack's state hub; on a failure shows the command and its error
# output and exits.
_stack_hubctl() {
    local token_file="$1" out rc=0 err="${STACK_DIR}/hubctl.stderr"
    shift
    out="$("${STACK_BIN_DIR}/hubctl" --url "${STACK_HUB_URL}" --token-file "${token_file}" \
        --output json "$@" 2>"${err}" </dev/null)" || rc=$?
    if ((rc != 0)); then
        {
            printf 'hubctl --output json'
            printf ' %q' "$@"
            printf '\n(as %s) failed with exit %d:\n' "$(_stack_rel "${token_file}")" "${rc}"
            cat "${err}"
            [[ -z "${out}" ]] || printf '%s\n' "${out}"
        } >&2
        hp_die "hubctl failed"
    fi
    printf '%s\n' "${out}"
}

# _stack_hubctl_quiet TOKEN_FILE ARGS...: _stack_hubctl without the output.
_stack_hubctl_quiet() {
    local _out
    _out="$(_stack_hubctl "$@")"
}

# _stack_new_token FILE ARGS...: `hubctl tokens create ARGS` as the bootstrap admin; the secret
# goes to FILE (0600).
_stack_new_token() {
    local file="$1" json token
    shift
    json="$(_stack_hubctl "${STACK_TOKEN_FILE}" tokens create "$@")"
    token="$(jq -er .token <<<"${json}")" || hp_die "no .token in the answer of hubctl tokens create $*"
    rm -f -- "${file}"
    (
        umask 077
        printf '%s\n' "${token}" >"${file}"
    )
}

# ---------------------------------------------------------------------------
# The cluster stand-in
# ---------------------------------------------------------------------------

# _stack_cluster_args: the arguments of start_cluster_standin for this stack.
_stack_cluster_args() {
    local -n _out="$1"
    local tls_dir="${STACK_DIR}/ca"
    [[ -z "${STACK_CLUSTER_HOST:-}" ]] || tls_dir="${STACK_DIR}/cluster-tls"
    _out=("${STACK_CLUSTER_DIR}" "${STACK_CLUSTER_PORT}" --cert "${tls_dir}/server.pem"
        --key "${tls_dir}/server-key.pem" --ca "${STACK_CA_FILE}" --token-file "${STACK_CLUSTER_TOKEN_FILE}")
    if [[ -n "${STACK_CLUSTER_TICK:-}" ]]; then
        _out+=(--tick "${STACK_CLUSTER_TICK}")
    fi
    if [[ -n "${STACK_CLUSTER_HOST:-}" ]]; then
        _out+=(--host "${STACK_CLUSTER_HOST}")
    fi
    if [[ -n "${STACK_CLUSTER_NETNS:-}" ]]; then
        _out+=(--netns "${STACK_CLUSTER_NETNS}")
    fi
}

stack_cluster_up() {
    local port="" tick="" host="" netns=""
    while [[ $# -gt 0 ]]; do
        [[ $# -ge 2 ]] || hp_die "stack_cluster_up: $1 needs a value"
        case "$1" in
            --port) port="$2" ;;
            --tick) tick="$2" ;;
            --host) host="$2" ;;
            --netns) netns="$2" ;;
            *) hp_die "stack_cluster_up: unknown argument: $1" ;;
        esac
        shift 2
    done
    [[ "${port}" =~ ^[0-9]+$ ]] || hp_die "usage: stack_cluster_up --port PORT [--tick SECONDS] [--host ADDRESS] [--netns NAME]"
    [[ -n "${STACK_DIR:-}" && -n "${STACK_HUB_URL:-}" ]] || hp_die "stack_cluster_up: run stack_up first"
    STACK_CLUSTER_DIR="${STACK_DIR}/cluster"
    STACK_CLUSTER_PORT="${port}"
    STACK_CLUSTER_URL="https://${host:-127.0.0.1}:${port}"
    STACK_CLUSTER_TOKEN_FILE="${STACK_DIR}/secrets/cluster.token"
    STACK_CLUSTER_TICK="${tick}"
    STACK_CLUSTER_HOST="${host}"
    STACK_CLUSTER_NETNS="${netns}"
    export STACK_CLUSTER_DIR STACK_CLUSTER_PORT STACK_CLUSTER_URL STACK_CLUSTER_TOKEN_FILE STACK_CLUSTER_TICK \
        STACK_CLUSTER_HOST STACK_CLUSTER_NETNS
    hp_step "stack: the cluster stand-in"
    stop_cluster_standin "${STACK_CLUSTER_DIR}" 2>/dev/null || true
    rm -rf -- "${STACK_CLUSTER_DIR}" "${STACK_DIR}/cluster-tls"
    if [[ -n "${host}" ]]; then
        "${HP_STANDINS_DIR}/cluster/issue-cert.sh" --ca-dir "${STACK_DIR}/ca" \
            --out-dir "${STACK_DIR}/cluster-tls" --ip "${host}" \
            || hp_die "could not issue the cluster stand-in's certificate for ${host}"
    fi
    rm -f -- "${STACK_CLUSTER_TOKEN_FILE}"
    (
        umask 077
        openssl rand -hex 32 >"${STACK_CLUSTER_TOKEN_FILE}"
    ) || hp_die "could not write ${STACK_CLUSTER_TOKEN_FILE}"
    _stack_write_env
    _stack_start_cluster || hp_die "the cluster stand-in did not start (${STACK_CLUSTER_DIR})"
}

_stack_start_cluster() {
    local -a args
    _stack_cluster_args args
    start_cluster_standin "${args[@]}" >&2
}

stack_start_cluster() {
    [[ $# -eq 0 ]] || stack_load "$1"
    [[ -n "${STACK_CLUSTER_DIR:-}" ]] || hp_die "no cluster stand-in in this stack (stack_cluster_up)"
    _stack_start_cluster
}

stack_stop_cluster() {
    local dir="${1:-${STACK_DIR:-}}"
    [[ -n "${dir}" ]] || hp_die "usage: stack_stop_cluster DIR"
    stop_cluster_standin "${dir}/cluster"
}

stack_cluster_start_command() {
    [[ $# -eq 0 ]] || stack_load "$1"
    local -a args
    _stack_cluster_args args
    local a out="tests/standins/cluster/start.sh --dir"
    out+=" $(printf '%q' "$(_stack_rel "${args[0]}")") --port ${args[1]}"
    for a in "${args[@]:2}"; do
        out+=" $(printf '%q' "$(_stack_rel "${a}")")"
    done
    printf '%s\n' "${out}"
}

# _stack_cluster_get PATH: GET PATH on the cluster stand-in with its token (given to curl on
# stdin, never on a command line); prints the body.
_stack_cluster_get() {
    printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"${STACK_CLUSTER_TOKEN_FILE}")" \
        | curl -fsS --cacert "${STACK_CA_FILE}" --max-time 10 -H @- "${STACK_CLUSTER_URL}$1"
}

# ---------------------------------------------------------------------------
# Seeding the registries
# ---------------------------------------------------------------------------

# _stack_register_capability NAME OWNING_SERVICE: the whole lifecycle of one capability of the
# cluster stand-in, to completed with the cluster's token as its credential.
_stack_register_capability() {
    local name="$1" service="$2" contract="${STACK_DIR}/contracts/$1.json" to
    _stack_cluster_get "/${name}/contract" >"${contract}" \
        || hp_die "could not fetch ${STACK_CLUSTER_URL}/${name}/contract"
    _stack_hubctl_quiet "${STACK_BOB_TOKEN_FILE}" capabilities request --name "${name}" \
        --owning-service "${service}" --base-url "${STACK_CLUSTER_URL}/${name}" \
        --health-path /healthz --contract-path /contract --contract "${contract}" --version 1.0.0
    _stack_hubctl_quiet "${STACK_ALICE_TOKEN_FILE}" capabilities transition "${name}" accepted \
        --note "The cluster team serves ${name} over HTTPS; the hubs need it."
    for to in in_progress ready_for_review; do
        _stack_hubctl_quiet "${STACK_BOB_TOKEN_FILE}" capabilities transition "${name}" "${to}" \
            --note "stack.sh: ${to//_/ }"
    done
    _stack_hubctl_quiet "${STACK_TOKEN_FILE}" capabilities set-credential "${name}" \
        --file "${STACK_CLUSTER_TOKEN_FILE}"
    _stack_hubctl_quiet "${STACK_ALICE_TOKEN_FILE}" capabilities transition "${name}" completed \
        --note "Reviewed: contract, health path and credential work against the cluster."
    hp_info "capability ${name}: completed (${STACK_CLUSTER_URL}/${name})"
}

stack_seed_plane() {
    [[ -n "${STACK_CLUSTER_URL:-}" ]] || hp_die "stack_seed_plane: run stack_cluster_up first"
    hp_step "stack: hub kinds, people's tokens and the cluster's capabilities (hubctl)"
    STACK_ALICE_TOKEN_FILE="${STACK_DIR}/secrets/alice.token"
    STACK_BOB_TOKEN_FILE="${STACK_DIR}/secrets/bob.token"
    export STACK_ALICE_TOKEN_FILE STACK_BOB_TOKEN_FILE
    _stack_new_token "${STACK_ALICE_TOKEN_FILE}" --name "alice (stack)" --subject alice --kind human --role admin
    _stack_new_token "${STACK_BOB_TOKEN_FILE}" --name "bob (stack)" --subject bob --kind human --role member
    hp_info "tokens: alice (human admin), bob (human member)"
    _stack_write_env

    _stack_hubctl_quiet "${STACK_TOKEN_FILE}" hubs kinds add dev --description "Development hubs: what is deployed where"
    _stack_hubctl_quiet "${STACK_TOKEN_FILE}" hubs kinds add ops --description "Operations hubs: rollouts, nodes, freezes"
    _stack_hubctl_quiet "${STACK_TOKEN_FILE}" hubs kinds add fin --description "Finance hubs: what the cluster costs"
    hp_info "hub kinds: dev, ops, fin"

    mkdir -p -- "${STACK_DIR}/contracts"
    _stack_register_capability deployments "k3s inventory (deployments)"
    _stack_register_capability nodes "k3s inventory (nodes)"
    _stack_register_capability costs "cost exporter"
}

# ---------------------------------------------------------------------------
# Domain hubs
# ---------------------------------------------------------------------------

# _stack_stop_domain DIR NAME: stops the domain hub NAME started from DIR.
_stack_stop_domain() {
    local dir="$1" name="$2"
    _stack_stop_pid "domain hub ${name}" "${dir}/${name}.pid" "--config ${dir}/${name}.toml" 30
}

stack_stop_domain_hub() {
    [[ $# -ge 1 ]] || hp_die "usage: stack_stop_domain_hub NAME [DIR]"
    local dir="${2:-${STACK_DIR:-}}"
    [[ -n "${dir}" ]] || hp_die "usage: stack_stop_domain_hub NAME [DIR]"
    _stack_stop_domain "$(cd "${dir}" && pwd -P)" "$1"
}

stack_start_domain_hub() {
    [[ $# -ge 1 ]] || hp_die "usage: stack_start_domain_hub NAME [DIR]"
    [[ $# -lt 2 ]] || stack_load "$2"
    local name="$1"
    _stack_spawn "domain hub ${name}" "${STACK_BIN_DIR}/domain-hub" "${STACK_DIR}/${name}.toml" \
        "${STACK_DIR}/${name}.log" "${STACK_DIR}/${name}.pid" "$(stack_domain_url "${name}")" restart
}

stack_domain_hubs() {
    local dir="${1:-${STACK_DIR:-}}"
    [[ -n "${dir}" ]] || hp_die "usage: stack_domain_hubs DIR"
    _stack_domain_names "${dir}"
}

stack_domain_url() {
    [[ $# -ge 1 ]] || hp_die "usage: stack_domain_url NAME [DIR]"
    printf 'http://127.0.0.1:%s\n' "$(_stack_domain_field "${2:-${STACK_DIR}}" "$1" 3)"
}

stack_domain_token_file() {
    [[ $# -ge 1 ]] || hp_die "usage: stack_domain_token_file NAME [DIR]"
    printf '%s/secrets/%s.api.token\n' "${2:-${STACK_DIR}}" "$1"
}

# _stack_domain_api_token NAME DB_URL SUBJECT ROLES SCOPES FILE: a token on the domain hub's
# own API, inserted into its api_tokens table as hub-core stores them (SHA-256 of the secret).
# ROLES and SCOPES are space-separated.
_stack_domain_api_token() {
    local name="$1" db_url="$2" subject="$3" roles="$4" scopes="$5" file="$6" token item
    local roles_sql="" scopes_sql=""
    for item in ${roles}; do
        [[ "${item}" =~ ^[a-z]+$ ]] || hp_die "not a role: ${item}"
        roles_sql+="${roles_sql:+,}'${item}'"
    done
    for item in ${scopes}; do
        [[ "${item}" =~ ^[a-z0-9][a-z0-9._:-]*$ ]] || hp_die "not a scope: ${item}"
        scopes_sql+="${scopes_sql:+,}'${item}'"
    done
    [[ "${subject}" =~ ^[a-z][a-z0-9._:-]*$ ]] || hp_die "not a subject: ${subject}"
    token="hpt_$(_stack_random)"
    # The secret goes to psql on stdin, never on a command line.
    psql "${db_url}" -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL || hp_die "could not create an API token on ${name}"
INSERT INTO api_tokens (id, name, token_hash, token_prefix, subject, kind, roles, scopes, created_by)
VALUES (md5(random()::text || clock_timestamp()::text)::uuid, '${subject} (stack)',
        sha256(convert_to('${token}', 'UTF8')), '${token:0:10}', '${subject}', 'human',
        ARRAY[${roles_sql}]::text[], ARRAY[${scopes_sql}]::text[], 'scripts/lib/stack.sh');
SQL
    rm -f -- "${file}"
    (
        umask 077
        printf '%s\n' "${token}" >"${file}"
    )
}

# _stack_write_domain_config NAME KIND PORT DB_URL MANIFEST HEARTBEAT REFRESH LOG_FILTER
_stack_write_domain_config() {
    local name="$1" kind="$2" port="$3" db_url="$4" manifest="$5" heartbeat="$6" refresh="$7" log_filter="$8"
    local url="http://127.0.0.1:${port}" ca_line="" scope scopes="" breaker_open=10 option
    for option in ${STACK_CAPABILITY_OPTIONS:-}; do
        [[ "${option%%=*}" != breaker_open_seconds ]] || breaker_open="${option#*=}"
    done
    if [[ "${STACK_TLS}" -eq 1 ]]; then
        ca_line="ca_file = $(_stack_toml_str "${STACK_CA_FILE}")"
    fi
    while IFS= read -r scope; do
        [[ -n "${scope}" ]] || continue
        scopes+="$(_stack_toml_str "${scope}") = [$(_stack_toml_str "${STACK_SCOPE_GROUP}")]"$'\n'
    done < <(jq -r '.policy_scopes // [] | .[].name' "${manifest}")
    cat >"${STACK_DIR}/${name}.toml" <<TOML
# Written by scripts/lib/stack.sh; rewritten on every start.
# dev_mode: for the plain-http URLs on loopback (public_url, the state hub, the OIDC issuer).
dev_mode = true

[hub]
name = $(_stack_toml_str "${name}")
kind = $(_stack_toml_str "${kind}")
manifest_file = $(_stack_toml_str "${manifest}")
heartbeat_seconds = ${heartbeat}

[state_hub]
url = $(_stack_toml_str "${STACK_HUB_URL}")
token_file = $(_stack_toml_str "${STACK_DIR}/secrets/${name}.state-hub.token")
timeout_seconds = 5
callable_refresh_seconds = ${refresh}
retry_max_seconds = 5

[server]
listen = $(_stack_toml_str "127.0.0.1:${port}")
public_url = $(_stack_toml_str "${url}")
shutdown_grace_seconds = 5

[database]
url = $(_stack_toml_str "${db_url}")
pool_size = 8
health_pool_size = 2

[identity.oidc]
issuer = $(_stack_toml_str "${STACK_ISSUER}")
client_id = $(_stack_toml_str "${name}")
client_secret_file = $(_stack_toml_str "${STACK_DIR}/secrets/${name}.oidc-client-secret")
redirect_url = $(_stack_toml_str "${url}/auth/callback")
${ca_line}

[identity.ldap]
url = $(_stack_toml_str "${STACK_LDAP_URL}")
bind_password_file = $(_stack_toml_str "${STACK_LDAP_DIR}/admin.password")

# [identity.roles] defaults: admin = ["hub_admins"], member = ["hub_members"], viewer = ["hub_viewers"]

# The manifest's policy scopes, held by the directory's hub admins.
[identity.scopes]
${scopes}
$(_stack_capabilities_comment)
[capabilities]
ca_file = $(_stack_toml_str "${STACK_CA_FILE}")
$(_stack_capabilities_toml breaker_open_seconds)
breaker_open_seconds = ${breaker_open}

[log]
format = "pretty"
filter = $(_stack_toml_str "${log_filter}")
TOML
}

stack_domain_hub_up() {
    local name="" port="" database="" manifest="" poll="" heartbeat=10 refresh=5 log_filter="info"
    while [[ $# -gt 0 ]]; do
        [[ $# -ge 2 ]] || hp_die "stack_domain_hub_up: $1 needs a value"
        case "$1" in
            --name) name="$2" ;;
            --port) port="$2" ;;
            --database) database="$2" ;;
            --manifest) manifest="$2" ;;
            --poll-seconds) poll="$2" ;;
            --heartbeat-seconds) heartbeat="$2" ;;
            --callable-refresh-seconds) refresh="$2" ;;
            --log-filter) log_filter="$2" ;;
            *) hp_die "stack_domain_hub_up: unknown argument: $1" ;;
        esac
        shift 2
    done
    [[ -n "${name}" && -n "${port}" && -n "${database}" ]] \
        || hp_die "usage: stack_domain_hub_up --name NAME --port PORT --database DB [--manifest FILE] [--poll-seconds N] [--heartbeat-seconds N] [--callable-refresh-seconds N] [--log-filter F]"
    [[ "${name}" =~ ^[a-z][a-z0-9-]*$ ]] || hp_die "stack_domain_hub_up: not a hub name: ${name}"
    [[ "${port}" =~ ^[0-9]+$ ]] || hp_die "stack_domain_hub_up: not a port: ${port}"
    [[ -n "${STACK_DIR:-}" && -n "${STACK_HUB_URL:-}" ]] || hp_die "stack_domain_hub_up: run stack_up first"
    [[ -f "${STACK_DIR}/secrets/${name}.oidc-client-secret" ]] \
        || hp_die "no OIDC client for ${name}: give stack_up --client ${name}=http://127.0.0.1:${port}"
    manifest="${manifest:-${STACK_MANIFEST_DIR}/${name}.json}"
    [[ -r "${manifest}" ]] || hp_die "no manifest ${manifest}"
    manifest="$(cd "$(dirname "${manifest}")" && pwd -P)/$(basename "${manifest}")"
    local kind scopes
    kind="$(jq -er .kind "${manifest}")" || hp_die "${manifest}: no kind"
    if [[ -n "${poll}" ]]; then
        [[ "${poll}" =~ ^[0-9]+$ ]] || hp_die "--poll-seconds: not a number: ${poll}"
        jq --arg poll "${poll}" '.capabilities |= map(.poll_seconds = ($poll | tonumber))' \
            <"${manifest}" >"${STACK_DIR}/${name}.manifest.json" \
            || hp_die "could not rewrite ${manifest}"
        manifest="${STACK_DIR}/${name}.manifest.json"
    fi
    scopes="$(jq -r '[.policy_scopes // [] | .[].name] | join(" ")' "${manifest}")"
    if hp_port_in_use "${port}"; then
        hp_die "port ${port} on 127.0.0.1 is already in use"
    fi

    hp_step "stack: domain hub ${name} (kind ${kind}) on port ${port}"
    local -a scope_args=()
    local scope
    for scope in ${scopes}; do
        scope_args+=(--scope "${scope}")
    done
    _stack_new_token "${STACK_DIR}/secrets/${name}.state-hub.token" --name "${name}" \
        --subject "hub:${name}" --kind service --role member "${scope_args[@]}"
    hp_info "state hub token for hub:${name} (service, member${scopes:+, ${scopes}})"

    local db_url
    [[ -n "${HUB_TEST_DATABASE_URL:-}" ]] || ensure_postgres
    db_url="$(_stack_make_database "${database}")"
    hp_info "database ${database} (fresh)"
    # Recorded before the start, so that stack_down finds it whatever happens next.
    printf '%s %s %s %s\n' "${name}" "${kind}" "${port}" "${database}" >>"${STACK_DIR}/domain-hubs.list"
    _stack_write_domain_config "${name}" "${kind}" "${port}" "${db_url}" "${manifest}" \
        "${heartbeat}" "${refresh}" "${log_filter}"
    _stack_spawn "domain hub ${name}" "${STACK_BIN_DIR}/domain-hub" "${STACK_DIR}/${name}.toml" \
        "${STACK_DIR}/${name}.log" "${STACK_DIR}/${name}.pid" "http://127.0.0.1:${port}" fresh
    _stack_domain_api_token "${name}" "${db_url}" alice member "${scopes}" \
        "$(stack_domain_token_file "${name}")"
    hp_info "API token on ${name}: alice (member${scopes:+, ${scopes}})"
}

stack_activate_manifest() {
    [[ $# -ge 1 ]] || hp_die "usage: stack_activate_manifest NAME [TIMEOUT]"
    local name="$1" timeout="${2:-30}" deadline json id
    deadline=$((SECONDS + timeout))
    while true; do
        json="$(_stack_hubctl "${STACK_TOKEN_FILE}" manifests list "${name}")"
        id="$(jq -r '[.[] | select(.status == "draft")][0].id // empty' <<<"${json}")"
        [[ -z "${id}" ]] || break
        if ((SECONDS >= deadline)); then
            tail -n 20 "${STACK_DIR}/${name}.log" >&2 || true
            hp_die "${name} submitted no manifest within ${timeout} s (log: ${STACK_DIR}/${name}.log)"
        fi
        sleep 0.5
    done
    _stack_hubctl_quiet "${STACK_TOKEN_FILE}" manifests activate "${id}"
    hp_info "manifest of ${name} activated: ${id}"
    printf '%s\n' "${id}"
}

stack_widgets() {
    [[ $# -eq 1 ]] || hp_die "usage: stack_widgets NAME"
    local token_file
    token_file="$(stack_domain_token_file "$1")"
    printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"${token_file}")" \
        | curl -fsS --max-time 5 -H @- "$(stack_domain_url "$1")/api/v1/widgets"
}

stack_wait_widgets() {
    [[ $# -ge 3 ]] || hp_die "usage: stack_wait_widgets NAME STATE TIMEOUT [all|any]"
    local name="$1" state="$2" timeout="$3" mode="${4:-all}" deadline json
    deadline=$((SECONDS + timeout))
    while true; do
        if json="$(stack_widgets "${name}" 2>/dev/null)" \
            && jq -e --arg s "${state}" --arg m "${mode}" \
                '.items | length > 0 and (if $m == "any" then any(.freshness.state == $s) else all(.freshness.state == $s) end)' \
                <<<"${json}" >/dev/null; then
            return 0
        fi
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

stack_browser_login() {
    [[ $# -eq 3 ]] || hp_die "usage: stack_browser_login HUB_URL USER COOKIE_JAR"
    local url="${1%/}" user="$2" jar="$3" password next out
    password="$(jq -er --arg u "${user}" '.users[] | select(.uid == $u) | .password' \
        "${HP_STANDINS_DIR}/directory.json")" || hp_die "no user ${user} in the fixture"
    rm -f -- "${jar}"
    (
        umask 077
        : >"${jar}"
    )
    local -a c=(curl -sS --max-time 10 --cacert "${STACK_CA_FILE}" -c "${jar}" -b "${jar}")
    # The hub sends the browser to the provider's authorization endpoint ...
    next="$("${c[@]}" -o /dev/null -w '%{redirect_url}' "${url}/auth/oidc/start?next=%2F")" || return 1
    [[ "${next}" == "${STACK_ISSUER}/"* ]] || { hp_warn "login: ${url} did not send us to the provider (${next})"; return 1; }
    # ... which shows its login form (an interaction) ...
    next="$("${c[@]}" -o /dev/null -w '%{redirect_url}' "${next}")" || return 1
    [[ "${next}" == "${STACK_ISSUER}/interaction/"* ]] || { hp_warn "login: no login form (${next})"; return 1; }
    # ... takes the password ...
    next="$("${c[@]}" -o /dev/null -w '%{redirect_url}' "${next}/login" \
        --data-urlencode "username=${user}" --data-urlencode "password=${password}")" || return 1
    [[ -n "${next}" ]] || { hp_warn "login: the provider refused ${user}"; return 1; }
    # ... and sends the browser back to the hub's callback, which opens the session.
    out="$("${c[@]}" -L -o /dev/null -w '%{http_code} %{url_effective}' "${next}")" || return 1
    [[ "${out}" == "200 ${url}/" ]] || { hp_warn "login: ended at ${out}"; return 1; }
}

stack_plane_up() {
    local cluster_port="" tick="" prefix="" poll="" heartbeat=10 refresh=5 log_filter="info"
    local cluster_host="" cluster_netns=""
    local -a hubs=()
    while [[ $# -gt 0 ]]; do
        [[ $# -ge 2 ]] || hp_die "stack_plane_up: $1 needs a value"
        case "$1" in
            --cluster-port) cluster_port="$2" ;;
            --tick) tick="$2" ;;
            --hub) hubs+=("$2") ;;
            --database-prefix) prefix="$2" ;;
            --poll-seconds) poll="$2" ;;
            --heartbeat-seconds) heartbeat="$2" ;;
            --callable-refresh-seconds) refresh="$2" ;;
            --log-filter) log_filter="$2" ;;
            --cluster-host) cluster_host="$2" ;;
            --cluster-netns) cluster_netns="$2" ;;
            *) hp_die "stack_plane_up: unknown argument: $1" ;;
        esac
        shift 2
    done
    [[ -n "${cluster_port}" && -n "${prefix}" && ${#hubs[@]} -gt 0 ]] \
        || hp_die "usage: stack_plane_up --cluster-port PORT --hub NAME=PORT... --database-prefix PREFIX [--tick S] [--poll-seconds N] [--heartbeat-seconds N] [--callable-refresh-seconds N] [--log-filter F] [--cluster-host ADDRESS] [--cluster-netns NAME]"
    local -a cluster_args=(--port "${cluster_port}")
    [[ -z "${tick}" ]] || cluster_args+=(--tick "${tick}")
    [[ -z "${cluster_host}" ]] || cluster_args+=(--host "${cluster_host}")
    [[ -z "${cluster_netns}" ]] || cluster_args+=(--netns "${cluster_netns}")
    stack_cluster_up "${cluster_args[@]}"
    stack_seed_plane

    local entry name port
    local -a extra=(--heartbeat-seconds "${heartbeat}" --callable-refresh-seconds "${refresh}" --log-filter "${log_filter}")
    [[ -z "${poll}" ]] || extra+=(--poll-seconds "${poll}")
    for entry in "${hubs[@]}"; do
        name="${entry%%=*}"
        port="${entry#*=}"
        stack_domain_hub_up --name "${name}" --port "${port}" --database "${prefix}_${name//-/_}" \
            "${extra[@]}"
    done
    hp_step "stack: activating the domain hubs' manifests (admin)"
    for entry in "${hubs[@]}"; do
        stack_activate_manifest "${entry%%=*}" >/dev/null
    done
    hp_step "stack: waiting for fresh widgets"
    for entry in "${hubs[@]}"; do
        name="${entry%%=*}"
        if ! stack_wait_widgets "${name}" fresh $((refresh + 30)); then
            stack_widgets "${name}" >&2 || true
            tail -n 30 "${STACK_DIR}/${name}.log" >&2 || true
            hp_die "the widgets of ${name} did not turn fresh"
        fi
        hp_info "${name}: every widget fresh"
    done
    _stack_write_env
}
