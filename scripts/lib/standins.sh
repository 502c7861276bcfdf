#!/usr/bin/env bash
# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
#
# The identity stand-ins for tests and the demo: an LDAP directory laid out
# like LLDAP (Debian's slapd) and an OIDC provider configured like Authelia
# (oidc-provider on Node.js). See tests/standins/README.md. Source it; do not
# execute it.
#
#   ensure_standins
#       Installs what the stand-ins need: slapd and ldap-utils (without letting
#       the package start or configure the system's slapd service), openssl,
#       curl, jq; checks for Node.js >= 20.18 and npm; runs `npm ci` in
#       tests/standins/oidc when node_modules is missing or older than
#       package-lock.json.
#   start_ldap_standin DIR PORT [ARGS...]
#       A fresh slapd under DIR on ldap://127.0.0.1:PORT, loaded from
#       tests/standins/directory.json. ARGS go to tests/standins/ldap/start.sh
#       (--tls-port, --cert, --key, --fixture).
#   start_oidc_standin DIR PORT ISSUER CLIENTS LDAP_URL [ARGS...]
#       The OIDC provider under DIR on 127.0.0.1:PORT with that issuer, the
#       clients file and the LDAP stand-in's URL. ARGS go to
#       tests/standins/oidc/start.sh (--cert, --key, --ldap-ca, --keys, ...).
#   stop_standin DIR
#       Stops the stand-in whose pid file (slapd.pid or oidc.pid) is in DIR.
#       Idempotent: call it from an EXIT trap.
#   make_test_ca DIR
#       Writes a throwaway CA and a server certificate for 127.0.0.1, ::1 and
#       localhost under DIR: ca.pem, ca-key.pem, server.pem, server-key.pem.
#       Does nothing when DIR/server.pem already exists.

if [[ -n "${_HP_STANDINS_SH:-}" ]]; then
    return 0
fi
_HP_STANDINS_SH=1

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

HP_STANDINS_DIR="${HUBPLANE_REPO}/tests/standins"

# _hp_install_slapd: installs slapd so that the package neither configures a
# directory of its own nor starts (or enables) the system service: the stand-in
# runs its own slapd from a generated slapd.conf, and port 389 stays free.
_hp_install_slapd() {
    if debian_package_installed slapd; then
        return 0
    fi
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        hp_warn "no dpkg/apt-get here; not installing slapd"
        return 0
    fi
    hp_info "installing slapd without configuring or starting the system service"
    printf '%s\n' \
        'slapd slapd/no_configuration boolean true' \
        'slapd slapd/move_old_database boolean false' \
        | hp_as_root debconf-set-selections \
        || hp_die "debconf-set-selections failed"
    # A subshell, so that the EXIT trap restoring policy-rc.d also runs when
    # ensure_debian_packages gives up with hp_die.
    (
        policy=/usr/sbin/policy-rc.d
        saved=""
        if [[ -e "${policy}" ]]; then
            saved="$(mktemp "${TMPDIR:-/tmp}/hubplane-policy-rc.d.XXXXXX")"
            hp_as_root cp -p -- "${policy}" "${saved}"
        fi
        # shellcheck disable=SC2317 # invoked by the EXIT trap
        restore_policy() {
            if [[ -n "${saved}" ]]; then
                hp_as_root cp -p -- "${saved}" "${policy}"
                rm -f -- "${saved}"
            else
                hp_as_root rm -f -- "${policy}"
            fi
        }
        trap restore_policy EXIT
        # 101: "action forbidden by policy"; invoke-rc.d and deb-systemd-invoke
        # then leave the service alone.
        printf '#!/bin/sh\nexit 101\n' | hp_as_root tee "${policy}" >/dev/null
        hp_as_root chmod 0755 "${policy}"
        ensure_debian_packages slapd ldap-utils
    ) || exit 1
    # Keep the unconfigured system service from starting at the next boot.
    if [[ -d /run/systemd/system ]]; then
        hp_as_root systemctl disable --now slapd >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1; then
        hp_as_root update-rc.d slapd disable >/dev/null 2>&1 || true
    fi
}

ensure_standins() {
    _hp_install_slapd
    ensure_debian_packages ldap-utils openssl curl jq ca-certificates

    # oidc-provider and the server use URL.parse and crypto.hash: Node.js 20.18 or later.
    command -v node >/dev/null 2>&1 || hp_die "node not found on PATH (the OIDC stand-in needs Node.js >= 20.18)"
    command -v npm >/dev/null 2>&1 || hp_die "npm not found on PATH (the OIDC stand-in needs it)"
    if ! node -e 'const [major, minor] = process.versions.node.split(".").map(Number);
                  process.exit(major > 20 || (major === 20 && minor >= 18) ? 0 : 1)'; then
        hp_die "the OIDC stand-in needs Node.js >= 20.18; found $(node --version)"
    fi

    local oidc_dir="${HP_STANDINS_DIR}/oidc"
    local stamp="${oidc_dir}/node_modules/.package-lock.json"
    if [[ ! -f "${stamp}" || "${oidc_dir}/package-lock.json" -nt "${stamp}" ]]; then
        hp_info "installing the OIDC stand-in's npm packages (npm ci)"
        local log
        log="$(mktemp "${TMPDIR:-/tmp}/hubplane-npm.XXXXXX")"
        if ! (cd "${oidc_dir}" && npm ci --no-audit --no-fund --loglevel=error) >"${log}" 2>&1; then
            tail -n 40 "${log}" >&2
            rm -f -- "${log}"
            hp_die "npm ci failed in ${oidc_dir}"
        fi
        rm -f -- "${log}"
    fi
}

start_ldap_standin() {
    [[ $# -ge 2 ]] || hp_die "usage: start_ldap_standin DIR PORT [ARGS...]"
    local dir="$1" port="$2"
    shift 2
    "${HP_STANDINS_DIR}/ldap/start.sh" --dir "${dir}" --port "${port}" "$@"
}

start_oidc_standin() {
    [[ $# -ge 5 ]] || hp_die "usage: start_oidc_standin DIR PORT ISSUER CLIENTS LDAP_URL [ARGS...]"
    local dir="$1" port="$2" issuer="$3" clients="$4" ldap_url="$5"
    shift 5
    "${HP_STANDINS_DIR}/oidc/start.sh" --dir "${dir}" --port "${port}" --issuer "${issuer}" \
        --clients "${clients}" --ldap-url "${ldap_url}" "$@"
}

stop_standin() {
    [[ $# -eq 1 ]] || hp_die "usage: stop_standin DIR"
    local dir="$1"
    if [[ -f "${dir}/slapd.pid" ]]; then
        "${HP_STANDINS_DIR}/ldap/stop.sh" --dir "${dir}"
    fi
    if [[ -f "${dir}/oidc.pid" ]]; then
        "${HP_STANDINS_DIR}/oidc/stop.sh" --dir "${dir}"
    fi
}

make_test_ca() {
    [[ $# -eq 1 ]] || hp_die "usage: make_test_ca DIR"
    local dir="$1"
    if [[ -f "${dir}/server.pem" && -f "${dir}/server-key.pem" && -f "${dir}/ca.pem" ]]; then
        return 0
    fi
    mkdir -p -- "${dir}"
    local ext="${dir}/server.ext" csr="${dir}/server.csr"
    (
        set -e
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -sha256 \
            -keyout "${dir}/ca-key.pem" -out "${dir}/ca.pem" \
            -subj "/CN=Hubplane test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -sha256 \
            -keyout "${dir}/server-key.pem" -out "${csr}" -subj "/CN=localhost" 2>/dev/null
        printf '%s\n' \
            'basicConstraints=critical,CA:FALSE' \
            'keyUsage=critical,digitalSignature,keyEncipherment' \
            'extendedKeyUsage=serverAuth' \
            'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost' >"${ext}"
        openssl x509 -req -in "${csr}" -CA "${dir}/ca.pem" -CAkey "${dir}/ca-key.pem" \
            -CAcreateserial -days 30 -sha256 -extfile "${ext}" -out "${dir}/server.pem" 2>/dev/null
        rm -f -- "${csr}" "${ext}" "${dir}/ca.srl"
        chmod 0644 "${dir}/ca.pem" "${dir}/server.pem"
    ) || hp_die "could not create the test CA under ${dir}"
}

# The cluster stand-in: a small k3s application cluster behind HTTPS (Python 3
# standard library only; nothing to install). See tests/standins/cluster/README.md.
#
#   start_cluster_standin DIR PORT [ARGS...]
#       The stand-in under DIR on https://127.0.0.1:PORT. ARGS go to
#       tests/standins/cluster/start.sh: --cert FILE --key FILE (required; e.g.
#       from make_test_ca), --ca FILE, --token-file FILE, --contract [NAME=]FILE,
#       --tick SECONDS. Its control token is DIR/control.token.
#   stop_cluster_standin DIR
#       Stops it (by DIR/cluster.pid). Idempotent: call it from an EXIT trap.
#       The port is free again when it returns, so a start on the same port
#       may follow at once (an outage and its recovery).
start_cluster_standin() {
    [[ $# -ge 2 ]] || hp_die "usage: start_cluster_standin DIR PORT [ARGS...]"
    local dir="$1" port="$2"
    shift 2
    "${HP_STANDINS_DIR}/cluster/start.sh" --dir "${dir}" --port "${port}" "$@"
}

stop_cluster_standin() {
    [[ $# -eq 1 ]] || hp_die "usage: stop_cluster_standin DIR"
    "${HP_STANDINS_DIR}/cluster/stop.sh" --dir "$1"
}
