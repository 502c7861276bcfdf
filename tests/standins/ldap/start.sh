#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Starts a fresh slapd under DIR that serves LLDAP's directory layout, loaded
# from the fixture (tests/standins/directory.json by default):
#
#   start.sh --dir DIR --port PORT [--tls-port PORT --cert FILE --key FILE] [--fixture FILE]
#
# Listens on ldap://127.0.0.1:PORT (and ldaps://127.0.0.1:TLSPORT with the
# given certificate), writes DIR/slapd.pid, waits until the fixture's admin can
# bind and search, prints "LDAP ready at ldap://127.0.0.1:PORT" and exits 0.
# Stop it with stop.sh --dir DIR. What it serves and how faithfully:
# tests/standins/README.md.
set -euo pipefail

LDAP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../../scripts/lib/common.sh
source "${LDAP_DIR}/../../../scripts/lib/common.sh"

usage() {
    printf 'usage: %s --dir DIR --port PORT [--tls-port PORT --cert FILE --key FILE] [--fixture FILE]\n' \
        "$(basename "$0")" >&2
    exit 2
}

dir=""
port=""
tls_port=""
cert=""
key=""
fixture="${LDAP_DIR}/../directory.json"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dir) dir="${2:-}"; shift 2 || usage ;;
        --port) port="${2:-}"; shift 2 || usage ;;
        --tls-port) tls_port="${2:-}"; shift 2 || usage ;;
        --cert) cert="${2:-}"; shift 2 || usage ;;
        --key) key="${2:-}"; shift 2 || usage ;;
        --fixture) fixture="${2:-}"; shift 2 || usage ;;
        -h | --help) usage ;;
        *) printf 'unknown argument: %s\n' "$1" >&2; usage ;;
    esac
done

[[ -n "${dir}" && -n "${port}" ]] || usage
[[ "${port}" =~ ^[0-9]+$ ]] || hp_die "--port must be a number, got: ${port}"
if [[ -n "${tls_port}" || -n "${cert}" || -n "${key}" ]]; then
    [[ -n "${tls_port}" && -n "${cert}" && -n "${key}" ]] || hp_die "--tls-port, --cert and --key go together"
    [[ "${tls_port}" =~ ^[0-9]+$ ]] || hp_die "--tls-port must be a number, got: ${tls_port}"
    [[ -r "${cert}" ]] || hp_die "certificate not readable: ${cert}"
    [[ -r "${key}" ]] || hp_die "key not readable: ${key}"
    cert="$(cd "$(dirname "${cert}")" && pwd -P)/$(basename "${cert}")"
    key="$(cd "$(dirname "${key}")" && pwd -P)/$(basename "${key}")"
fi
[[ -r "${fixture}" ]] || hp_die "fixture not readable: ${fixture}"

for tool in slapd slapadd slappasswd ldapwhoami ldapsearch jq; do
    command -v "${tool}" >/dev/null 2>&1 \
        || [[ -x "/usr/sbin/${tool}" ]] \
        || hp_die "${tool} not found (run ensure_standins from scripts/lib/standins.sh)"
done
PATH="${PATH}:/usr/sbin"

schema_dir=/etc/ldap/schema
module_dir=/usr/lib/ldap
[[ -r "${schema_dir}/core.schema" ]] || hp_die "no ${schema_dir}/core.schema (is slapd installed?)"
[[ -e "${module_dir}/back_mdb.la" ]] || hp_die "no back_mdb module in ${module_dir} (is slapd installed?)"

mkdir -p -- "${dir}"
dir="$(cd "${dir}" && pwd -P)"
pid_file="${dir}/slapd.pid"
if [[ -f "${pid_file}" ]] && kill -0 "$(cat "${pid_file}")" 2>/dev/null; then
    hp_die "a slapd is already running from ${dir} (pid $(cat "${pid_file}")); stop.sh --dir ${dir} first"
fi
if hp_port_in_use "${port}"; then
    hp_die "port ${port} on 127.0.0.1 is already in use"
fi
if [[ -n "${tls_port}" ]] && hp_port_in_use "${tls_port}"; then
    hp_die "port ${tls_port} on 127.0.0.1 is already in use"
fi

# A fresh directory every time: nothing survives from an earlier run.
rm -rf -- "${dir}/data" "${dir}/schema" "${dir}/slapd.conf" "${dir}/directory.ldif" \
    "${dir}/slapd.log" "${dir}/slapd.args" "${dir}/slapadd.log" "${pid_file}" "${dir}/admin.password"
mkdir -p -- "${dir}/data" "${dir}/schema"
chmod 0700 "${dir}/data"

base_dn="$(jq -er '.base_dn' "${fixture}")" || hp_die "fixture has no base_dn: ${fixture}"
[[ "${base_dn}" =~ ^dc=([^,]+)(,dc=[^,]+)*$ ]] || hp_die "base_dn must be dc=...,dc=...: ${base_dn}"
base_dc="${BASH_REMATCH[1]}"
people_dn="ou=people,${base_dn}"
groups_dn="ou=groups,${base_dn}"
admin_group="cn=lldap_admin,${groups_dn}"
password_manager_group="cn=lldap_password_manager,${groups_dn}"
readonly_group="cn=lldap_strict_readonly,${groups_dn}"

# LLDAP serves every group with both groupOfNames and groupOfUniqueNames (two
# structural classes, which standard schema forbids) and lets a group lose its
# last member. The stand-in's copy of core.schema therefore makes member
# optional in groupOfNames and groupOfUniqueNames an auxiliary class (with
# optional uniqueMember and uid, which LLDAP serves on groups).
awk '
    /^objectclass/ { cls = "" }
    /^objectclass \( 2\.5\.6\.9 / { cls = "names" }
    /^objectclass \( 2\.5\.6\.17 / { cls = "unique" }
    cls == "names" && /MUST \( member \$ cn \)/ { sub(/MUST \( member \$ cn \)/, "MUST cn"); n++ }
    cls == "names" && /^[ \t]*MAY \(/ { sub(/MAY \(/, "MAY ( member $"); n++ }
    cls == "unique" && /SUP top STRUCTURAL/ { sub(/STRUCTURAL/, "AUXILIARY"); n++ }
    cls == "unique" && /MUST \( uniqueMember \$ cn \)/ { next }
    cls == "unique" && /^[ \t]*MAY \(/ { sub(/MAY \(/, "MAY ( uniqueMember $ uid $ cn $"); n++ }
    { print }
    END { if (n != 4) exit 1 }
' "${schema_dir}/core.schema" >"${dir}/schema/core.schema" \
    || hp_die "could not adapt ${schema_dir}/core.schema for LLDAP's group classes (unexpected format)"

tls_config=""
urls="ldap://127.0.0.1:${port}/"
if [[ -n "${tls_port}" ]]; then
    tls_config="TLSCertificateFile \"${cert}\"
TLSCertificateKeyFile \"${key}\"
TLSProtocolMin 3.3"
    urls="${urls} ldaps://127.0.0.1:${tls_port}/"
fi

# Access rules mirror LLDAP's permissions (crates/access-control, crates/auth):
#   lldap_admin            reads and writes everything, sets any password
#   lldap_password_manager reads everything, sets the passwords of non-admins
#   lldap_strict_readonly  reads everything
#   everybody else         reads their own entry and the groups they belong to,
#                          where `member` shows only themselves; sets their own
#                          password
# Nobody reads a password; anonymous clients may only bind (and LLDAP refuses
# even an anonymous bind).
cat >"${dir}/slapd.conf" <<EOF
# Generated by tests/standins/ldap/start.sh: a test stand-in for LLDAP.
include "${dir}/schema/core.schema"
include "${schema_dir}/cosine.schema"
include "${schema_dir}/inetorgperson.schema"
include "${LDAP_DIR}/lldap.schema"

pidfile "${pid_file}"
argsfile "${dir}/slapd.args"
loglevel none

modulepath "${module_dir}"
moduleload back_mdb
moduleload memberof
moduleload refint

disallow bind_anon
require authc
sizelimit unlimited
password-hash {SSHA}
${tls_config}

database mdb
maxsize 67108864
suffix "${base_dn}"
# Internal operations of the memberof and refint overlays run as this DN; it
# has no password, so nobody can bind as it.
rootdn "cn=slapd-internal,${base_dn}"
directory "${dir}/data"
index objectClass eq
index uid,cn,mail eq,sub
index member,memberOf,entryUUID eq

overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE

overlay refint
refint_attributes member

access to dn.one="${people_dn}" filter=(memberOf=${admin_group}) attrs=userPassword
    by group.exact="${admin_group}" =wx
    by self =wx
    by * auth

access to attrs=userPassword
    by group.exact="${admin_group}" =wx
    by group.exact="${password_manager_group}" =wx
    by self =wx
    by * auth

access to dn.subtree="${base_dn}"
    by group.exact="${admin_group}" write
    by group.exact="${password_manager_group}" read
    by group.exact="${readonly_group}" read
    by * break

access to dn.base="${base_dn}"
    by users search
    by * none

access to dn.base="${people_dn}"
    by users search
    by * none

access to dn.base="${groups_dn}"
    by users search
    by * none

access to dn.one="${people_dn}"
    by self read
    by * none

access to dn.one="${groups_dn}" attrs=member val.regex="^(.+)\$"
    by dn.exact,expand="\${v1}" read
    by * none

access to dn.one="${groups_dn}"
    by dnattr=member read
    by * none
EOF

# The fixture as LDIF. Passwords are stored salted and hashed ({SSHA}); entryUUID
# is the fixture's fixed UUID; memberOf is written here because slapadd does not
# run the memberof overlay (slapd maintains it from then on).
hashes="{}"
while IFS=$'\t' read -r uid password; do
    hash="$(slappasswd -h '{SSHA}' -s "${password}")" || hp_die "slappasswd failed"
    hashes="$(jq -c --arg uid "${uid}" --arg hash "${hash}" '. + {($uid): $hash}' <<<"${hashes}")"
done < <(jq -r '.users[] | [.uid, .password] | @tsv' "${fixture}")

jq -r --arg base "${base_dn}" --arg dc "${base_dc}" --argjson hashes "${hashes}" '
    # One "name: value" line, base64 ("name:: ...") when LDIF needs it.
    def line($name; $value):
        ($value | tostring) as $v
        | if ($v | test("^[!-9;-~][ -~]*$") and (test(" $") | not)) or $v == ""
          then "\($name): \($v)"
          else "\($name):: \($v | @base64)"
          end;
    .groups as $groups
    | ( [ "dn: \($base)", "objectClass: top", "objectClass: dcObject", "objectClass: organization",
          line("dc"; $dc), line("o"; $dc), "" ],
        [ "dn: ou=people,\($base)", "objectClass: top", "objectClass: organizationalUnit", "ou: people", "" ],
        [ "dn: ou=groups,\($base)", "objectClass: top", "objectClass: organizationalUnit", "ou: groups", "" ],
        ( .users[] as $u
          | [ "dn: uid=\($u.uid),ou=people,\($base)",
              "objectClass: inetOrgPerson", "objectClass: posixAccount",
              "objectClass: mailAccount", "objectClass: person",
              line("uid"; $u.uid), line("cn"; $u.display_name),
              line("givenName"; $u.first_name), line("sn"; $u.last_name),
              line("mail"; $u.email), line("userPassword"; $hashes[$u.uid]),
              line("entryUUID"; $u.uuid) ]
            + [ $groups[] | select(.members | index($u.uid)) | "memberOf: cn=\(.name),ou=groups,\($base)" ]
            + [ "" ] ),
        ( $groups[] as $g
          | [ "dn: cn=\($g.name),ou=groups,\($base)",
              "objectClass: groupOfNames", "objectClass: groupOfUniqueNames",
              line("cn"; $g.name), line("uid"; $g.name), line("entryUUID"; $g.uuid) ]
            + [ $g.members[] | "member: uid=\(.),ou=people,\($base)" ]
            + [ "" ] )
      )
    | .[]
' "${fixture}" >"${dir}/directory.ldif" || hp_die "could not turn ${fixture} into LDIF"

if ! slapadd -q -f "${dir}/slapd.conf" -l "${dir}/directory.ldif" >"${dir}/slapadd.log" 2>&1; then
    cat "${dir}/slapadd.log" >&2
    hp_die "slapadd could not load the fixture into ${dir}/data"
fi

admin_dn="uid=admin,${people_dn}"
admin_password_file="${dir}/admin.password"
(umask 077 && jq -j '.users[] | select(.uid == "admin") | .password' "${fixture}" >"${admin_password_file}")
[[ -s "${admin_password_file}" ]] || hp_die "the fixture has no user admin"

# In the foreground (-d) so that its log of connections and operations (stats,
# 256) lands in DIR/slapd.log; it still writes the pid file itself.
slapd -d 256 -f "${dir}/slapd.conf" -h "${urls}" </dev/null >"${dir}/slapd.log" 2>&1 &
slapd_pid=$!

# Ready when the admin can bind and read a user (over TLS too when enabled).
ready=0
for ((attempt = 0; attempt < 200; attempt++)); do
    if ldapsearch -x -LLL -o nettimeout=2 -H "ldap://127.0.0.1:${port}" -D "${admin_dn}" -y "${admin_password_file}" \
        -b "${people_dn}" -s one '(uid=admin)' 1.1 >/dev/null 2>&1; then
        if [[ -z "${tls_port}" ]] \
            || LDAPTLS_REQCERT=never ldapwhoami -x -o nettimeout=2 -H "ldaps://127.0.0.1:${tls_port}" \
                -D "${admin_dn}" -y "${admin_password_file}" >/dev/null 2>&1; then
            ready=1
            break
        fi
    fi
    kill -0 "${slapd_pid}" 2>/dev/null || break
    sleep 0.05
done
if [[ "${ready}" -ne 1 ]]; then
    tail -n 20 "${dir}/slapd.log" >&2 2>/dev/null || true
    kill "${slapd_pid}" 2>/dev/null || true
    rm -f -- "${pid_file}"
    hp_die "slapd in ${dir} did not answer an admin search within 10 s (log: ${dir}/slapd.log)"
fi
[[ -f "${pid_file}" ]] || printf '%s\n' "${slapd_pid}" >"${pid_file}"
printf 'LDAP ready at ldap://127.0.0.1:%s\n' "${port}"
