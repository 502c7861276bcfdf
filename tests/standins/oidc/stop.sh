#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Stops the OIDC stand-in that start.sh started under DIR (by DIR/oidc.pid):
#
#   stop.sh --dir DIR
#
# Exits 0 when nothing runs there (any more). Leaves DIR's files in place.
set -euo pipefail

OIDC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../../scripts/lib/common.sh
source "${OIDC_DIR}/../../../scripts/lib/common.sh"

dir=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dir) dir="${2:-}"; shift 2 || true ;;
        *) printf 'usage: %s --dir DIR\n' "$(basename "$0")" >&2; exit 2 ;;
    esac
done
[[ -n "${dir}" ]] || { printf 'usage: %s --dir DIR\n' "$(basename "$0")" >&2; exit 2; }

pid_file="${dir}/oidc.pid"
[[ -f "${pid_file}" ]] || exit 0
dir="$(cd "${dir}" && pwd -P)"
pid="$(cat "${pid_file}")"
[[ "${pid}" =~ ^[0-9]+$ ]] || hp_die "not a pid in ${pid_file}: ${pid}"

# Only the server started for this directory is ours to stop.
if hp_pid_running "${pid}" \
    && tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF -- "server.mjs --dir ${dir%/} "; then
    kill -TERM "${pid}" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        hp_pid_running "${pid}" || break
        sleep 0.05
    done
    if hp_pid_running "${pid}"; then
        hp_warn "the OIDC stand-in (pid ${pid}) did not stop within 5 s; killing it"
        kill -KILL "${pid}" 2>/dev/null || true
    fi
fi
rm -f -- "${pid_file}"
