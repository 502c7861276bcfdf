#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Starts the OIDC stand-in (Authelia-like, on oidc-provider) in the background:
#
#   start.sh --dir DIR --port PORT --issuer URL --clients FILE --ldap-url URL
#            [--cert FILE --key FILE] [--ldap-ca FILE] [--keys FILE] [--fixture FILE]
#            [--ldap-bind-dn DN --ldap-bind-password-file FILE]
#
# Listens on 127.0.0.1:PORT, over HTTPS with --cert/--key, plain HTTP otherwise.
# --keys FILE: signing keys (JWKS with private parts) loaded from FILE, or
# generated and written there when FILE does not exist; without it, fresh keys
# (a new kid) at every start. Writes DIR/oidc.pid and the request log
# DIR/oidc.log, waits until discovery answers with the issuer, prints
# "OIDC ready at ISSUER" and exits 0. Stop it with stop.sh --dir DIR.
set -euo pipefail

OIDC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../../scripts/lib/common.sh
source "${OIDC_DIR}/../../../scripts/lib/common.sh"

usage() {
    printf 'usage: %s --dir DIR --port PORT --issuer URL --clients FILE --ldap-url URL [--cert FILE --key FILE] [--ldap-ca FILE] [--keys FILE] [--fixture FILE] [--ldap-bind-dn DN --ldap-bind-password-file FILE]\n' \
        "$(basename "$0")" >&2
    exit 2
}

# absolute PATH: the server runs from another working directory.
absolute() {
    printf '%s/%s\n' "$(cd "$(dirname "$1")" && pwd -P)" "$(basename "$1")"
}

dir=""
port=""
issuer=""
cert=""
server_args=()
while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || usage
    case "$1" in
        --dir) dir="$2" ;;
        --port) port="$2" ;;
        --issuer) issuer="$2"; server_args+=(--issuer "$2") ;;
        --ldap-url | --ldap-bind-dn) server_args+=("$1" "$2") ;;
        --cert) cert="$2"; [[ -r "$2" ]] || hp_die "not readable: $2"; server_args+=(--cert "$(absolute "$2")") ;;
        --clients | --key | --ldap-ca | --fixture | --ldap-bind-password-file)
            [[ -r "$2" ]] || hp_die "not readable: $2"
            server_args+=("$1" "$(absolute "$2")")
            ;;
        --keys) server_args+=(--keys "$(absolute "$2")") ;;
        *) printf 'unknown argument: %s\n' "$1" >&2; usage ;;
    esac
    shift 2
done
[[ -n "${dir}" && -n "${port}" && -n "${issuer}" ]] || usage
[[ "${port}" =~ ^[0-9]+$ ]] || hp_die "--port must be a number, got: ${port}"
[[ " ${server_args[*]} " == *" --clients "* && " ${server_args[*]} " == *" --ldap-url "* ]] || usage

command -v node >/dev/null 2>&1 || hp_die "node not found (run ensure_standins from scripts/lib/standins.sh)"
command -v curl >/dev/null 2>&1 || hp_die "curl not found (run ensure_standins from scripts/lib/standins.sh)"
[[ -d "${OIDC_DIR}/node_modules/oidc-provider" && -d "${OIDC_DIR}/node_modules/ldapts" ]] \
    || hp_die "npm packages missing in ${OIDC_DIR} (run ensure_standins from scripts/lib/standins.sh)"

mkdir -p -- "${dir}"
dir="$(cd "${dir}" && pwd -P)"
pid_file="${dir}/oidc.pid"
if [[ -f "${pid_file}" ]] && kill -0 "$(cat "${pid_file}")" 2>/dev/null; then
    hp_die "an OIDC stand-in is already running from ${dir} (pid $(cat "${pid_file}")); stop.sh --dir ${dir} first"
fi
if hp_port_in_use "${port}"; then
    hp_die "port ${port} on 127.0.0.1 is already in use"
fi
rm -f -- "${pid_file}" "${dir}/oidc.out"

node "${OIDC_DIR}/server.mjs" --dir "${dir}" --port "${port}" "${server_args[@]}" \
    </dev/null >>"${dir}/oidc.out" 2>&1 &
server_pid=$!
printf '%s\n' "${server_pid}" >"${pid_file}"

scheme=http
[[ -n "${cert}" ]] && scheme=https
discovery="${scheme}://127.0.0.1:${port}/.well-known/openid-configuration"
expected_issuer="${issuer%/}"
for ((attempt = 0; attempt < 200; attempt++)); do
    if ! kill -0 "${server_pid}" 2>/dev/null; then
        cat "${dir}/oidc.out" >&2 2>/dev/null || true
        rm -f -- "${pid_file}"
        hp_die "the OIDC stand-in exited during start-up (output: ${dir}/oidc.out)"
    fi
    # -k: this only asks whether it answers; clients check the certificate.
    if answered="$(curl -fsS -k --max-time 2 "${discovery}" 2>/dev/null)" \
        && [[ "$(jq -r '.issuer' <<<"${answered}" 2>/dev/null)" == "${expected_issuer}" ]]; then
        printf 'OIDC ready at %s\n' "${expected_issuer}"
        exit 0
    fi
    sleep 0.05
done
kill "${server_pid}" 2>/dev/null || true
rm -f -- "${pid_file}"
cat "${dir}/oidc.out" >&2 2>/dev/null || true
hp_die "the OIDC stand-in did not answer ${discovery} with issuer ${expected_issuer} within 10 s"
