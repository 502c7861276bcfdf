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
