#!/usr/bin/env bash
# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
#
# NATS with JetStream for Hubplane's tests (the state hub's journal fan-out). Source it; do not
# execute it.
#
#   ensure_nats
#       Exports HUB_TEST_NATS_URL, a NATS server with JetStream on loopback:
#         1. $HUB_TEST_NATS_URL, if it is set and answers with JetStream on;
#         2. nats://127.0.0.1:4222, if it answers with JetStream on;
#         3. otherwise Debian's nats-server (`-js`), started on 4222 when that port is free,
#            else on a free port, with its store under a temporary directory.
#       Tests create and delete their own streams; an outage test starts a private
#       nats-server of its own and never touches this one.
#   stop_nats
#       Stops the nats-server that ensure_nats started in this shell (by its pid), and nothing
#       else. Idempotent: call it from an EXIT trap.

if [[ -n "${_HP_NATS_SH:-}" ]]; then
    return 0
fi
_HP_NATS_SH=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=scripts/lib/deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

_HP_NATS_PID=""
_HP_NATS_DIR=""
_HP_NATS_OWNER_PID=""

# _hp_nats_has_jetstream HOST PORT: the server's INFO line says "jetstream":true.
_hp_nats_has_jetstream() {
    local info=""
    # shellcheck disable=SC2016 # expanded by the inner bash
    info="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 2 line <&3 && printf "%s" "${line}"' _ "$1" "$2" 2>/dev/null)" || true
    [[ "${info}" == INFO* && "${info}" == *'"jetstream":true'* ]]
}

# _hp_nats_hostport URL: "HOST PORT" of a nats:// URL on loopback, or nothing.
_hp_nats_hostport() {
    local rest="${1#nats://}"
    rest="${rest%%/*}"
    local host="${rest%:*}" port="${rest##*:}"
    [[ "${port}" =~ ^[0-9]+$ ]] || return 1
    printf '%s %s\n' "${host}" "${port}"
}

ensure_nats() {
    local candidate hp
    for candidate in "${HUB_TEST_NATS_URL:-}" "nats://127.0.0.1:4222"; do
        [[ -n "${candidate}" ]] || continue
        hp="$(_hp_nats_hostport "${candidate}")" || continue
        # shellcheck disable=SC2086 # "HOST PORT" are two words
        if _hp_nats_has_jetstream ${hp}; then
            export HUB_TEST_NATS_URL="${candidate}"
            return 0
        fi
    done

    ensure_debian_packages nats-server
    local bin
    bin="$(command -v nats-server || true)"
    [[ -n "${bin}" ]] || bin=/usr/sbin/nats-server
    [[ -x "${bin}" ]] || hp_die "nats-server is not installed (Debian package nats-server)"
    local port=4222
    if hp_port_in_use "${port}"; then
        port="$(hp_free_port)"
    fi
    _HP_NATS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/hubplane-nats.XXXXXX")"
    "${bin}" -js -a 127.0.0.1 -p "${port}" -sd "${_HP_NATS_DIR}/store" \
        >"${_HP_NATS_DIR}/nats.log" 2>&1 </dev/null &
    _HP_NATS_PID=$!
    _HP_NATS_OWNER_PID="${BASHPID}"
    local i
    for ((i = 0; i < 100; i++)); do
        if _hp_nats_has_jetstream 127.0.0.1 "${port}"; then
            export HUB_TEST_NATS_URL="nats://127.0.0.1:${port}"
            hp_info "started nats-server -js on ${HUB_TEST_NATS_URL} (pid ${_HP_NATS_PID})"
            return 0
        fi
        hp_pid_running "${_HP_NATS_PID}" || break
        sleep 0.1
    done
    tail -n 20 "${_HP_NATS_DIR}/nats.log" >&2 || true
    stop_nats
    hp_die "nats-server with JetStream did not start on 127.0.0.1:${port}"
}

stop_nats() {
    local pid="${_HP_NATS_PID}" i
    [[ -n "${pid}" ]] || return 0
    [[ "${_HP_NATS_OWNER_PID}" == "${BASHPID}" ]] || return 0
    _HP_NATS_PID=""
    if hp_pid_running "${pid}"; then
        kill -TERM "${pid}" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            hp_pid_running "${pid}" || break
            sleep 0.05
        done
        if hp_pid_running "${pid}"; then
            kill -KILL "${pid}" 2>/dev/null || true
        fi
    fi
    wait "${pid}" 2>/dev/null || true
    rm -rf -- "${_HP_NATS_DIR}"
    _HP_NATS_DIR=""
}
