#!/usr/bin/env bash
# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
#
# The identity-enabled state hub, started from one place for the demo and the
# browser suite: a test CA, the LDAP and OIDC stand-ins (tests/standins), an
# OIDC client per hub, a fresh PostgreSQL database, the state hub's config, and
# the state hub itself. Source it; do not execute it.
#
#   stack_ensure_deps
#       Installs what the stack needs (the stand-ins' packages, psql, jq, curl).
#   stack_up --dir DIR --hub-port PORT --oidc-port PORT --ldap-port PORT
#            --database NAME --bin-dir DIR [--tls] [--log-format pretty|json]
#            [--log-filter FILTER] [--client NAME=PUBLIC_URL]...
#       Starts everything under DIR (created, mode 0700; a previous stack
#       there is stopped first) and waits until the state hub answers /readyz:
#         DIR/ca/                test CA (ca.pem) and the 127.0.0.1 server certificate
#         DIR/ldap/, DIR/oidc/   the stand-ins (pid files, logs)
#         DIR/oidc-clients.json  one OIDC client per hub (0600: holds the secrets)
#         DIR/secrets/           NAME.oidc-client-secret per hub, admin.token
#         DIR/state-hub.toml     the state hub's config; .log and .pid beside it
#         DIR/stack.env          every STACK_* variable below, for other processes
#       The issuer is http://127.0.0.1:OIDC_PORT (dev mode, loopback), or with
#       --tls https://127.0.0.1:OIDC_PORT signed by the test CA, which the hub
#       trusts through identity.oidc.ca_file. The state hub is the client
#       `state-hub`; --client adds another hub (client_id NAME, redirect
#       PUBLIC_URL/auth/callback, secret in DIR/secrets/NAME.oidc-client-secret).
#       The database NAME is dropped and created on $HUB_TEST_DATABASE_URL
#       (ensure_postgres). Sets and exports:
#         STACK_DIR STACK_HUB_URL STACK_ISSUER STACK_LDAP_URL STACK_CA_FILE
#         STACK_TOKEN_FILE STACK_DB_NAME STACK_DB_URL STACK_HUB_CONFIG STACK_HUB_LOG
#         STACK_HUB_PID STACK_OIDC_DIR STACK_LDAP_DIR STACK_OIDC_PORT STACK_TLS
#       On a failure it exits (hp_die); call stack_down from your EXIT trap, so
#       whatever had started is stopped then too.
#   stack_down [DIR]
#       Stops the state hub, the OIDC and the LDAP stand-in of the stack in DIR
#       (default $STACK_DIR), each by its pid file and only if that pid still
#       runs what the stack started. Idempotent; works from any shell.
#   stack_stop_oidc [DIR] / stack_start_oidc [DIR]
#       Stops / starts again only the OIDC stand-in (break-glass needs the
#       provider down). The stand-in makes a new signing key at every start, so
#       a restart is also a key rotation the hub has to follow.
#   stack_oidc_start_command [DIR]
#       Prints the command line that starts the OIDC stand-in again, for people.
#   stack_drop_database
#       Drops $STACK_DB_NAME (the suite's clean-up; the demo keeps its data).
#   stack_load DIR
#       Sets the STACK_* variables from DIR/stack.env.

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

stack_ensure_deps() {
    ensure_standins
    ensure_debian_packages postgresql-client jq curl ca-certificates openssl
}

# _stack_toml_str VALUE: VALUE as a TOML basic string.
_stack_toml_str() {
    local s="$1"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '"%s"' "${s}"
}

# _stack_secret FILE: writes a fresh random secret (43 URL-safe characters) to FILE, mode 0600.
_stack_secret() {
    local file="$1" secret
    secret="$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n')"
    ((${#secret} >= 40)) || hp_die "could not generate a secret"
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
    kill -0 "${pid}" 2>/dev/null || return 1
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
        for name in STACK_DIR STACK_HUB_URL STACK_ISSUER STACK_LDAP_URL STACK_CA_FILE \
            STACK_TOKEN_FILE STACK_DB_NAME STACK_DB_URL STACK_HUB_CONFIG STACK_HUB_LOG \
            STACK_HUB_PID STACK_OIDC_DIR STACK_LDAP_DIR STACK_OIDC_PORT STACK_TLS; do
            printf 'export %s=%q\n' "${name}" "${!name}"
        done
    } >"${STACK_DIR}/stack.env"
}

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
        rel+=("${a#"${HUBPLANE_REPO}"/}")
    done
    printf 'tests/standins/oidc/start.sh --dir %q --port %q --issuer %q --clients %q --ldap-url %q' \
        "${rel[@]:0:5}"
    if [[ "${STACK_TLS}" -eq 1 ]]; then
        printf ' --cert %q --key %q' "${rel[@]:6:1}" "${rel[@]:8:1}"
    fi
    printf '\n'
}

# _stack_stop_hub DIR: stops the state hub started from DIR: SIGTERM, SIGKILL after 20 s.
_stack_stop_hub() {
    local dir="$1" pid_file="$1/state-hub.pid" pid deadline
    [[ -f "${pid_file}" ]] || return 0
    pid="$(cat "${pid_file}" 2>/dev/null || true)"
    if _stack_pid_runs "${pid}" "--config ${dir}/state-hub.toml"; then
        hp_info "stopping the state hub (pid ${pid})"
        kill -TERM "${pid}" 2>/dev/null || true
        deadline=$((SECONDS + 20))
        while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        if kill -0 "${pid}" 2>/dev/null; then
            hp_warn "the state hub (pid ${pid}) did not stop within 20 s; killing it"
            kill -KILL "${pid}" 2>/dev/null || true
        fi
    fi
    # Reaps it when this shell started it; harmless otherwise.
    wait "${pid}" 2>/dev/null || true
    rm -f -- "${pid_file}"
}

stack_down() {
    local dir="${1:-${STACK_DIR:-}}"
    [[ -n "${dir}" && -d "${dir}" ]] || return 0
    dir="$(cd "${dir}" && pwd -P)"
    _stack_stop_hub "${dir}"
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
    [[ -n "${STACK_DB_NAME:-}" && -n "${HUB_TEST_DATABASE_URL:-}" ]] || return 0
    local force
    force="$(_stack_drop_force)" || force=""
    PGOPTIONS="-c client_min_messages=warning" psql "${HUB_TEST_DATABASE_URL}" -X -q \
        -c "DROP DATABASE IF EXISTS \"${STACK_DB_NAME}\"${force}" >/dev/null \
        || hp_warn "could not drop database ${STACK_DB_NAME}"
}

# _stack_create_database NAME: drops and creates NAME on the ensured server.
_stack_create_database() {
    local name="$1" force
    [[ "${name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || hp_die "database name must be an identifier: ${name}"
    ensure_postgres
    force="$(_stack_drop_force)" || hp_die "cannot query PostgreSQL at ${HUB_TEST_DATABASE_URL}"
    PGOPTIONS="-c client_min_messages=warning" psql "${HUB_TEST_DATABASE_URL}" -X -q -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS \"${name}\"${force}" \
        -c "CREATE DATABASE \"${name}\"" \
        || hp_die "could not create database ${name}"
    STACK_DB_NAME="${name}"
    STACK_DB_URL="$(pg_url_with_database "${HUB_TEST_DATABASE_URL}" "${name}")"
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
    local log_format="$1" log_filter="$2" ca_line="" why="and the plain-http issuer on loopback"
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

[log]
format = $(_stack_toml_str "${log_format}")
filter = $(_stack_toml_str "${log_filter}")
TOML
}

# _stack_start_hub BIN_DIR: starts the state hub in the background and waits for /readyz (60 s).
_stack_start_hub() {
    local bin="$1/state-hub" pid deadline
    [[ -x "${bin}" ]] || hp_die "missing ${bin} (build it: cargo build -p state-hub)"
    if ! "${bin}" --config "${STACK_HUB_CONFIG}" configtest >"${STACK_HUB_LOG}" 2>&1; then
        cat "${STACK_HUB_LOG}" >&2
        hp_die "state-hub configtest refused ${STACK_HUB_CONFIG}"
    fi
    : >"${STACK_HUB_LOG}"
    # The scripts' own HUB_* variables are not hub configuration: keep them out of the
    # hub's environment so they cannot be read as config overrides.
    env -u HUB_TEST_DATABASE_URL -u HUB_FORCE_THROWAWAY_PG -u HUB_PG_THROWAWAY \
        -u HUB_PG_LOG -u HUB_PG_PORT -u HUB_BIN_DIR -u HUB_SUITE_TIMEOUT \
        "${bin}" --config "${STACK_HUB_CONFIG}" serve >>"${STACK_HUB_LOG}" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "${pid}" >"${STACK_DIR}/state-hub.pid"
    STACK_HUB_PID="${pid}"
    hp_info "started the state hub (pid ${pid}, log ${STACK_HUB_LOG#"${HUBPLANE_REPO}"/})"
    deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        if curl -fsS --max-time 2 -o /dev/null "${STACK_HUB_URL}/readyz" 2>/dev/null; then
            hp_info "state hub ready at ${STACK_HUB_URL}"
            return 0
        fi
        if ! kill -0 "${pid}" 2>/dev/null; then
            tail -n 40 "${STACK_HUB_LOG}" >&2 || true
            hp_die "the state hub exited before it became ready (log: ${STACK_HUB_LOG})"
        fi
        sleep 0.2
    done
    tail -n 40 "${STACK_HUB_LOG}" >&2 || true
    hp_die "the state hub was not ready at ${STACK_HUB_URL}/readyz within 60 s"
}

stack_up() {
    local dir="" hub_port="" oidc_port="" ldap_port="" database="" bin_dir="" tls=0
    local log_format="pretty" log_filter="info"
    local -a clients=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --tls) tls=1; shift; continue ;;
            --dir | --hub-port | --oidc-port | --ldap-port | --database | --bin-dir | --log-format | --log-filter | --client)
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
        esac
        shift 2
    done
    [[ -n "${dir}" && -n "${hub_port}" && -n "${oidc_port}" && -n "${ldap_port}" && -n "${database}" && -n "${bin_dir}" ]] \
        || hp_die "usage: stack_up --dir DIR --hub-port PORT --oidc-port PORT --ldap-port PORT --database NAME --bin-dir DIR [--tls] [--log-format F] [--log-filter F] [--client NAME=URL]..."
    local port
    for port in "${hub_port}" "${oidc_port}" "${ldap_port}"; do
        [[ "${port}" =~ ^[0-9]+$ ]] || hp_die "not a port: ${port}"
    done

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

    STACK_TLS="${tls}"
    STACK_HUB_PORT="${hub_port}"
    STACK_OIDC_PORT="${oidc_port}"
    STACK_HUB_URL="http://127.0.0.1:${hub_port}"
    STACK_LDAP_URL="ldap://127.0.0.1:${ldap_port}"
    STACK_LDAP_DIR="${STACK_DIR}/ldap"
    STACK_OIDC_DIR="${STACK_DIR}/oidc"
    STACK_CA_FILE="${STACK_DIR}/ca/ca.pem"
    STACK_TOKEN_FILE="${STACK_DIR}/secrets/admin.token"
    STACK_HUB_CONFIG="${STACK_DIR}/state-hub.toml"
    STACK_HUB_LOG="${STACK_DIR}/state-hub.log"
    STACK_HUB_PID=""
    if [[ "${tls}" -eq 1 ]]; then
        STACK_ISSUER="https://127.0.0.1:${oidc_port}"
    else
        STACK_ISSUER="http://127.0.0.1:${oidc_port}"
    fi
    export STACK_DIR STACK_HUB_URL STACK_ISSUER STACK_LDAP_URL STACK_CA_FILE STACK_TOKEN_FILE \
        STACK_DB_NAME STACK_DB_URL STACK_HUB_CONFIG STACK_HUB_LOG STACK_HUB_PID STACK_OIDC_DIR \
        STACK_LDAP_DIR STACK_OIDC_PORT STACK_TLS

    hp_step "stack: test CA, stand-ins, database, state hub"
    rm -rf -- "${STACK_DIR}/ca" "${STACK_LDAP_DIR}" "${STACK_OIDC_DIR}" "${STACK_DIR}/secrets"
    make_test_ca "${STACK_DIR}/ca"
    mkdir -p -- "${STACK_DIR}/secrets"
    chmod 0700 "${STACK_DIR}/secrets"
    _stack_secret "${STACK_TOKEN_FILE}"
    _stack_write_clients "state-hub=${STACK_HUB_URL}" "${clients[@]}"

    start_ldap_standin "${STACK_LDAP_DIR}" "${ldap_port}" >&2 \
        || hp_die "the LDAP stand-in did not start (${STACK_LDAP_DIR})"
    _stack_start_oidc || hp_die "the OIDC stand-in did not start (${STACK_OIDC_DIR})"

    _stack_create_database "${database}"
    hp_info "database ${STACK_DB_NAME} (fresh)"
    _stack_write_hub_config "${log_format}" "${log_filter}"
    _stack_start_hub "${bin_dir}"
    _stack_write_env
}
