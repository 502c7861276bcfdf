#!/usr/bin/env bash
# shellcheck shell=bash
#
# Shared helpers for Hubplane's shell scripts. Source it; do not execute it.
#
#   HUBPLANE_REPO   absolute path of the checkout (derived from this file's location)
#   hp_step TEXT    prints a "==> TEXT" step header
#   hp_info/hp_warn/hp_die TEXT
#                   messages on stderr; hp_die exits with status 1
#   hp_as_root CMD  runs CMD as root (directly when already root, else with sudo)
#   hp_port_in_use PORT
#                   true when something accepts TCP connections on 127.0.0.1:PORT

if [[ -n "${_HP_COMMON_SH:-}" ]]; then
    return 0
fi
_HP_COMMON_SH=1

HUBPLANE_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
export HUBPLANE_REPO

hp_step() {
    printf '\n==> %s\n' "$*"
}

hp_info() {
    printf '    %s\n' "$*" >&2
}

hp_warn() {
    printf 'warning: %s\n' "$*" >&2
}

hp_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

hp_as_root() {
    if [[ "${EUID}" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        hp_warn "needs root to run: $* (not root and no sudo)"
        return 1
    fi
}

hp_port_in_use() {
    # A successful connect means somebody listens there.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# hp_pid_running PID: true while PID is alive and not a zombie. A stand-in's server is
# re-parented when its start script exits; how soon the new parent reaps it is not ours to
# decide, and a zombie holds no port, so `kill -0` alone would wait for nothing.
hp_pid_running() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

# hp_stop_standin NAME PID_FILE MARK: stops the process a stand-in's pid file names, but only
# if its command line contains MARK (the stand-in started for that directory — a recycled pid
# is somebody else's); TERM, then KILL after 5 s; removes the pid file. 0 when nothing runs.
hp_stop_standin() {
    local name="$1" pid_file="$2" mark="$3" pid i
    [[ -f "${pid_file}" ]] || return 0
    pid="$(cat "${pid_file}")"
    [[ "${pid}" =~ ^[0-9]+$ ]] || hp_die "not a pid in ${pid_file}: ${pid}"
    if hp_pid_running "${pid}" \
        && tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF -- "${mark}"; then
        kill -TERM "${pid}" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            hp_pid_running "${pid}" || break
            sleep 0.05
        done
        if hp_pid_running "${pid}"; then
            hp_warn "the ${name} (pid ${pid}) did not stop within 5 s; killing it"
            kill -KILL "${pid}" 2>/dev/null || true
            for ((i = 0; i < 40; i++)); do
                hp_pid_running "${pid}" || break
                sleep 0.05
            done
        fi
    fi
    rm -f -- "${pid_file}"
}

# hp_stop_main NAME PID_FILE_NAME MARK_FORMAT "$@": the whole of a stand-in's stop.sh: parses
# `--dir DIR`, then stops by DIR/PID_FILE_NAME; MARK_FORMAT is a printf format given DIR.
hp_stop_main() {
    local name="$1" pid_name="$2" mark_format="$3" dir=""
    shift 3
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dir) dir="${2:-}"; shift 2 || true ;;
            *) printf 'usage: stop.sh --dir DIR\n' >&2; exit 2 ;;
        esac
    done
    [[ -n "${dir}" ]] || { printf 'usage: stop.sh --dir DIR\n' >&2; exit 2; }
    [[ -f "${dir}/${pid_name}" ]] || return 0
    dir="$(cd "${dir}" && pwd -P)"
    # shellcheck disable=SC2059 # the format is the caller's, by design
    hp_stop_standin "${name}" "${dir}/${pid_name}" "$(printf "${mark_format}" "${dir%/}")"
}

# hp_free_port: a loopback port nobody listens on, below Linux's ephemeral range (32768-60999)
# so that other processes' outgoing connections cannot take it between choosing and binding,
# and not handed out before by this script (remembered in a file: `$(hp_free_port)` runs in a
# subshell, where a variable would be forgotten).
hp_free_port() {
    local port used_file="${TMPDIR:-/tmp}/hubplane-ports-$$"
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 12000))
        if ! grep -qx "${port}" "${used_file}" 2>/dev/null && ! hp_port_in_use "${port}"; then
            printf '%s\n' "${port}" >>"${used_file}"
            printf '%s\n' "${port}"
            return 0
        fi
    done
    hp_die "no free port found"
}
