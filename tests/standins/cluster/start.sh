#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Starts the cluster stand-in (a small k3s application cluster behind HTTPS,
# Python 3 standard library only) in the background:
#
#   start.sh --dir DIR --port PORT --cert FILE --key FILE [--ca FILE]
#            [--token-file FILE] [--contract [NAME=]FILE]... [--tick SECONDS]
#            [--host ADDRESS] [--netns NAME]
#
# Listens on https://127.0.0.1:PORT with the given certificate (made by
# make_test_ca in scripts/lib/standins.sh). --host: another IPv4 address to
# listen on (the certificate must name it: issue-cert.sh). --netns: run the
# server inside that network namespace (`ip netns exec`, needs root), e.g.
# behind a veth pair a test can cut; the readiness check still runs from here,
# so ADDRESS must be reachable from this namespace. --token-file: every capability
# endpoint then wants "Authorization: Bearer <the file's content>". --ca: the
# CA that signed --cert, used for the readiness check (default: ca.pem next to
# --cert). Writes DIR/cluster.pid, a fresh control token DIR/control.token,
# the request log DIR/cluster.log; waits (at most 10 s) until an HTTPS request
# to /healthz, verified with the CA, answers 200, prints
# "CLUSTER ready at https://ADDRESS:PORT" and exits 0. Stop it with
# stop.sh --dir DIR. What it serves: README.md next to this script.
set -euo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../../scripts/lib/common.sh
source "${CLUSTER_DIR}/../../../scripts/lib/common.sh"

usage() {
    printf 'usage: %s --dir DIR --port PORT --cert FILE --key FILE [--ca FILE] [--token-file FILE] [--contract [NAME=]FILE]... [--tick SECONDS] [--host ADDRESS] [--netns NAME]\n' \
        "$(basename "$0")" >&2
    exit 2
}

# absolute PATH: the server runs with another working directory in mind.
absolute() {
    printf '%s/%s\n' "$(cd "$(dirname "$1")" && pwd -P)" "$(basename "$1")"
}

dir=""
port=""
cert=""
key=""
ca=""
token_file=""
host="127.0.0.1"
netns=""
server_args=()
while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || usage
    case "$1" in
        --dir) dir="$2" ;;
        --port) port="$2" ;;
        --cert) cert="$2" ;;
        --key) key="$2" ;;
        --ca) ca="$2" ;;
        --token-file) token_file="$2" ;;
        --tick) server_args+=(--tick "$2") ;;
        --host) host="$2" ;;
        --netns) netns="$2" ;;
        --contract)
            spec="$2"
            name=""
            file="${spec}"
            if [[ "${spec}" =~ ^(deployments|nodes|costs)=(.+)$ ]]; then
                name="${BASH_REMATCH[1]}="
                file="${BASH_REMATCH[2]}"
            fi
            [[ -r "${file}" ]] || hp_die "contract not readable: ${file}"
            server_args+=(--contract "${name}$(absolute "${file}")")
            ;;
        *) printf 'unknown argument: %s\n' "$1" >&2; usage ;;
    esac
    shift 2
done
[[ -n "${dir}" && -n "${port}" && -n "${cert}" && -n "${key}" ]] || usage
if ! [[ "${port}" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    hp_die "--port must be a number from 1 to 65535, got: ${port}"
fi
if ! [[ "${host}" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
    hp_die "--host must be an IPv4 address, got: ${host}"
fi
if [[ -n "${netns}" ]]; then
    [[ "${netns}" =~ ^[A-Za-z0-9_.-]+$ ]] || hp_die "--netns: not a namespace name: ${netns}"
    command -v ip >/dev/null 2>&1 || hp_die "--netns needs ip (iproute2)"
    ip netns exec "${netns}" true 2>/dev/null \
        || hp_die "--netns ${netns}: cannot enter that network namespace (does it exist? are we root?)"
fi
[[ -r "${cert}" ]] || hp_die "certificate not readable: ${cert}"
[[ -r "${key}" ]] || hp_die "key not readable: ${key}"
cert="$(absolute "${cert}")"
key="$(absolute "${key}")"
if [[ -z "${ca}" ]]; then
    ca="$(dirname "${cert}")/ca.pem"
    [[ -r "${ca}" ]] || hp_die "no --ca given and no ca.pem next to ${cert}: need the CA to check the server"
fi
[[ -r "${ca}" ]] || hp_die "CA not readable: ${ca}"
if [[ -n "${token_file}" ]]; then
    [[ -r "${token_file}" ]] || hp_die "token file not readable: ${token_file}"
    [[ -n "$(tr -d '[:space:]' <"${token_file}")" ]] || hp_die "token file is empty: ${token_file}"
    token_file="$(absolute "${token_file}")"
    server_args+=(--token-file "${token_file}")
fi

command -v python3 >/dev/null 2>&1 || hp_die "python3 not found (the cluster stand-in needs Python 3)"
command -v curl >/dev/null 2>&1 || hp_die "curl not found (run ensure_standins from scripts/lib/standins.sh)"

mkdir -p -- "${dir}"
dir="$(cd "${dir}" && pwd -P)"
pid_file="${dir}/cluster.pid"
if [[ -f "${pid_file}" ]] && kill -0 "$(cat "${pid_file}")" 2>/dev/null; then
    hp_die "a cluster stand-in is already running from ${dir} (pid $(cat "${pid_file}")); stop.sh --dir ${dir} first"
fi
# In a namespace the address is looked at from inside it, where the server will bind.
in_netns=()
[[ -z "${netns}" ]] || in_netns=(ip netns exec "${netns}")
# shellcheck disable=SC2016 # expanded by the inner bash
if "${in_netns[@]}" bash -c '(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null' port-check "${host}" "${port}"; then
    hp_die "port ${port} on ${host} is already in use"
fi
rm -f -- "${pid_file}" "${dir}/cluster.out"

# `ip netns exec` execs the command, so the pid is the server's either way. The interpreter is
# resolved here: PATH inside `ip netns exec` is the same, but shims need not be.
python="$(command -v python3)"
"${in_netns[@]}" "${python}" "${CLUSTER_DIR}/server.py" --dir "${dir}" --port "${port}" --host "${host}" \
    --cert "${cert}" --key "${key}" "${server_args[@]}" </dev/null >>"${dir}/cluster.out" 2>&1 &
server_pid=$!
printf '%s\n' "${server_pid}" >"${pid_file}"

url="https://${host}:${port}"
auth=()
if [[ -n "${token_file}" ]]; then
    # The token goes to curl on stdin as a header line, never on a command line.
    auth=(-H @-)
fi
health() {
    if [[ -n "${token_file}" ]]; then
        printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"${token_file}")" \
            | curl -fsS --cacert "${ca}" --max-time 2 "${auth[@]}" -o /dev/null "${url}/healthz" 2>"${dir}/start.curl"
    else
        curl -fsS --cacert "${ca}" --max-time 2 -o /dev/null "${url}/healthz" 2>"${dir}/start.curl" </dev/null
    fi
}
for ((attempt = 0; attempt < 200; attempt++)); do
    if ! kill -0 "${server_pid}" 2>/dev/null; then
        cat "${dir}/cluster.out" >&2 2>/dev/null || true
        rm -f -- "${pid_file}" "${dir}/start.curl"
        hp_die "the cluster stand-in exited during start-up (output: ${dir}/cluster.out)"
    fi
    if [[ -f "${dir}/control.token" ]] && health; then
        rm -f -- "${dir}/start.curl"
        printf 'CLUSTER ready at %s\n' "${url}"
        hp_info "control token: ${dir}/control.token"
        exit 0
    fi
    sleep 0.05
done
kill -TERM "${server_pid}" 2>/dev/null || true
rm -f -- "${pid_file}"
cat "${dir}/cluster.out" >&2 2>/dev/null || true
last="$(cat "${dir}/start.curl" 2>/dev/null || true)"
rm -f -- "${dir}/start.curl"
hp_die "the cluster stand-in did not answer ${url}/healthz with 200 (checked against ${ca}) within 10 s${last:+: ${last}}"
