#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Issues a server certificate for the cluster stand-in on an address other than
# loopback, signed by an existing test CA (make_test_ca in scripts/lib/standins.sh):
#
#   issue-cert.sh --ca-dir DIR --out-dir DIR --ip ADDRESS [--ip ADDRESS]...
#
# Reads DIR/ca.pem and DIR/ca-key.pem; writes OUT/server.pem (0644) and
# OUT/server-key.pem (0600), valid 30 days for every --ip plus 127.0.0.1, ::1
# and localhost, so the stand-in may listen on any of them with the same
# certificate. Give it to start.sh as --cert/--key (and --ca DIR/ca.pem).
set -euo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../../scripts/lib/common.sh
source "${CLUSTER_DIR}/../../../scripts/lib/common.sh"

usage() {
    printf 'usage: %s --ca-dir DIR --out-dir DIR --ip ADDRESS [--ip ADDRESS]...\n' "$(basename "$0")" >&2
    exit 2
}

ca_dir=""
out_dir=""
sans="IP:127.0.0.1,IP:::1,DNS:localhost"
ips=0
while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || usage
    case "$1" in
        --ca-dir) ca_dir="$2" ;;
        --out-dir) out_dir="$2" ;;
        --ip)
            [[ "$2" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || "$2" =~ ^[0-9A-Fa-f:]+$ ]] \
                || hp_die "--ip: not an IP address: $2"
            sans+=",IP:$2"
            ips=$((ips + 1))
            ;;
        *) printf 'unknown argument: %s\n' "$1" >&2; usage ;;
    esac
    shift 2
done
[[ -n "${ca_dir}" && -n "${out_dir}" && ${ips} -gt 0 ]] || usage
[[ -r "${ca_dir}/ca.pem" && -r "${ca_dir}/ca-key.pem" ]] \
    || hp_die "no ca.pem and ca-key.pem in ${ca_dir} (make_test_ca in scripts/lib/standins.sh)"
command -v openssl >/dev/null 2>&1 || hp_die "openssl not found"

mkdir -p -- "${out_dir}"
ext="${out_dir}/server.ext"
csr="${out_dir}/server.csr"
serial="${out_dir}/ca.srl"
(
    set -e
    umask 077
    openssl req -newkey rsa:2048 -nodes -sha256 \
        -keyout "${out_dir}/server-key.pem" -out "${csr}" -subj "/CN=cluster stand-in" 2>/dev/null
    printf '%s\n' \
        'basicConstraints=critical,CA:FALSE' \
        'keyUsage=critical,digitalSignature,keyEncipherment' \
        'extendedKeyUsage=serverAuth' \
        "subjectAltName=${sans}" >"${ext}"
    openssl x509 -req -in "${csr}" -CA "${ca_dir}/ca.pem" -CAkey "${ca_dir}/ca-key.pem" \
        -CAserial "${serial}" -CAcreateserial -days 30 -sha256 -extfile "${ext}" \
        -out "${out_dir}/server.pem" 2>/dev/null
    chmod 0644 "${out_dir}/server.pem"
) || {
    rm -f -- "${csr}" "${ext}" "${serial}"
    hp_die "could not issue a certificate for ${sans} in ${out_dir}"
}
rm -f -- "${csr}" "${ext}" "${serial}"
openssl verify -CAfile "${ca_dir}/ca.pem" "${out_dir}/server.pem" >/dev/null \
    || hp_die "the new certificate does not verify against ${ca_dir}/ca.pem"
