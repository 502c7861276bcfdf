#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# The identity stand-ins behave like LLDAP and Authelia where Hubplane relies
# on them: starts the LDAP stand-in (plain and LDAPS) and the OIDC stand-in on
# free loopback ports, then drives them with ldapsearch, curl and jq the way
# hub-core's LDAP client and OIDC relying party will. See tests/standins/README.md.
set -euo pipefail

SUITE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../scripts/lib/common.sh
source "${SUITE_DIR}/../../scripts/lib/common.sh"
# shellcheck source=../../scripts/lib/standins.sh
source "${SUITE_DIR}/../../scripts/lib/standins.sh"

ensure_standins

FIXTURE="${HUBPLANE_REPO}/tests/standins/directory.json"
BASE_DN="dc=example,dc=com"
PEOPLE_DN="ou=people,${BASE_DN}"
GROUPS_DN="ou=groups,${BASE_DN}"
ADMIN_DN="uid=admin,${PEOPLE_DN}"
CLIENT_ID="state-hub"
CLIENT_SECRET="state-hub-standin-client-secret"

mkdir -p "${HUBPLANE_REPO}/.tmp"
WORK="$(mktemp -d "${HUBPLANE_REPO}/.tmp/standins-suite.XXXXXX")"

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    stop_standin "${WORK}/oidc" || true
    stop_standin "${WORK}/ldap" || true
    rm -rf -- "${WORK}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0

# check NAME CMD...: runs CMD in this shell (so it may set variables), its
# output kept aside; prints "ok - NAME", or "not ok - NAME" and that output.
check() {
    local name="$1"
    shift
    local rc=0
    "$@" >"${WORK}/check.out" 2>&1 || rc=$?
    if [[ ${rc} -eq 0 ]]; then
        passed=$((passed + 1))
        printf 'ok - %s\n' "${name}"
    else
        failed=$((failed + 1))
        printf 'not ok - %s\n' "${name}"
        sed 's/^/#   /' "${WORK}/check.out"
    fi
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
    if [[ "$2" != "$3" ]]; then
        printf '%s: expected [%s], got [%s]\n' "$1" "$3" "$2"
        return 1
    fi
}

fixture_password() {
    jq -r --arg uid "$1" '.users[] | select(.uid == $uid) | .password' "${FIXTURE}"
}

fixture_uuid() {
    jq -r --arg uid "$1" '.users[] | select(.uid == $uid) | .uuid' "${FIXTURE}"
}


ldap_port="$(hp_free_port)"
ldaps_port="$(hp_free_port)"
oidc_port="$(hp_free_port)"
client_port="$(hp_free_port)" # nothing listens here: the code is read off the redirect
LDAP_URL="ldap://127.0.0.1:${ldap_port}"
LDAPS_URL="ldaps://127.0.0.1:${ldaps_port}"
REDIRECT_URI="http://127.0.0.1:${client_port}/auth/callback"

make_test_ca "${WORK}/ca"
jq -n --arg id "${CLIENT_ID}" --arg secret "${CLIENT_SECRET}" --arg uri "${REDIRECT_URI}" \
    '[{client_id: $id, client_secret: $secret, redirect_uris: [$uri]}]' >"${WORK}/clients.json"

hp_step "LDAP stand-in"
start_ldap_standin "${WORK}/ldap" "${ldap_port}" --tls-port "${ldaps_port}" \
    --cert "${WORK}/ca/server.pem" --key "${WORK}/ca/server-key.pem"
ADMIN_PW_FILE="${WORK}/ldap/admin.password"

# as_admin LDAPTOOL ARGS...: the tool against the plain listener, bound as admin.
as_admin() {
    local tool="$1"
    shift
    "${tool}" -x -H "${LDAP_URL}" -D "${ADMIN_DN}" -y "${ADMIN_PW_FILE}" "$@"
}

# values ATTR: the values of ATTR in an LDIF on stdin, sorted, comma-separated.
values() {
    sed -n "s/^$1: //p" | sort | paste -sd, -
}

admin_lists_users_and_groups() {
    local users groups
    users="$(as_admin ldapsearch -LLL -b "${PEOPLE_DN}" -s one '(objectClass=person)' uid | values uid)"
    expect_eq "users" "${users}" "admin,alice,bob,carol,dave,erin" || return 1
    groups="$(as_admin ldapsearch -LLL -b "${GROUPS_DN}" -s one '(objectClass=groupOfUniqueNames)' cn | values cn)"
    expect_eq "groups" "${groups}" \
        "hub_admins,hub_breakglass,hub_members,hub_viewers,lldap_admin,lldap_password_manager,lldap_strict_readonly"
}
check "ldap: admin lists the fixture's users and groups" admin_lists_users_and_groups

alice_entry_is_lldap_shaped() {
    local entry
    entry="$(as_admin ldapsearch -LLL -b "${PEOPLE_DN}" '(uid=alice)' '*' entryUUID memberOf)"
    expect_eq "dn" "$(values dn <<<"${entry}")" "uid=alice,${PEOPLE_DN}" || return 1
    expect_eq "memberOf" "$(values memberOf <<<"${entry}")" "cn=hub_admins,${GROUPS_DN}" || return 1
    expect_eq "entryUUID" "$(values entryUUID <<<"${entry}")" "$(fixture_uuid alice)" || return 1
    expect_eq "objectClass" "$(values objectClass <<<"${entry}")" "inetOrgPerson,mailAccount,person,posixAccount" || return 1
    expect_eq "cn,givenName,sn,mail" \
        "$(values cn <<<"${entry}"),$(values givenName <<<"${entry}"),$(values sn <<<"${entry}"),$(values mail <<<"${entry}")" \
        "Alice Adams,Alice,Adams,alice@example.com" || return 1
    if grep -qi '^userPassword' <<<"${entry}"; then
        echo "userPassword is readable"
        return 1
    fi
}
check "ldap: alice has LLDAP's attributes, the fixed entryUUID and memberOf=hub_admins" alice_entry_is_lldap_shaped

memberof_filter_works() {
    local found
    found="$(as_admin ldapsearch -LLL -b "${PEOPLE_DN}" "(memberOf=cn=hub_members,${GROUPS_DN})" uid | values uid)"
    expect_eq "members of hub_members" "${found}" "bob,erin"
}
check "ldap: (memberOf=cn=hub_members,...) finds bob and erin" memberof_filter_works

anonymous_reads_nothing() {
    local out rc=0
    out="$(ldapsearch -x -LLL -H "${LDAP_URL}" -b "${BASE_DN}" '(objectClass=*)' dn 2>&1)" || rc=$?
    if [[ ${rc} -eq 0 ]] || grep -q '^dn:' <<<"${out}"; then
        printf 'anonymous search succeeded (rc=%s):\n%s\n' "${rc}" "${out}"
        return 1
    fi
}
check "ldap: an anonymous search is refused" anonymous_reads_nothing

bob_binds() {
    ldapwhoami -x -H "${LDAP_URL}" -D "uid=bob,${PEOPLE_DN}" -w "$(fixture_password bob)"
}
check "ldap: bob binds with his password" bob_binds

bob_wrong_password_refused() {
    local rc=0
    ldapwhoami -x -H "${LDAP_URL}" -D "uid=bob,${PEOPLE_DN}" -w "not-bobs-password" || rc=$?
    expect_eq "ldapwhoami exit status (49: invalid credentials)" "${rc}" "49"
}
check "ldap: bob cannot bind with a wrong password" bob_wrong_password_refused

bob_sees_what_lldap_shows_him() {
    local out
    out="$(ldapsearch -x -LLL -H "${LDAP_URL}" -D "uid=bob,${PEOPLE_DN}" -w "$(fixture_password bob)" \
        -b "${BASE_DN}" '(objectClass=*)' member)"
    expect_eq "entries" "$(values dn <<<"${out}")" "cn=hub_members,${GROUPS_DN},uid=bob,${PEOPLE_DN}" || return 1
    expect_eq "member values" "$(values member <<<"${out}")" "uid=bob,${PEOPLE_DN}"
}
check "ldap: bob sees only himself and his group, whose member list shows only him" bob_sees_what_lldap_shows_him

ldaps_with_test_ca() {
    LDAPTLS_CACERT="${WORK}/ca/ca.pem" ldapsearch -x -LLL -H "${LDAPS_URL}" -D "${ADMIN_DN}" -y "${ADMIN_PW_FILE}" \
        -b "${PEOPLE_DN}" '(uid=carol)' uid | grep -qx 'uid: carol' || { echo "no carol over LDAPS"; return 1; }
    if LDAPTLS_CACERT=/dev/null LDAPTLS_REQCERT=demand ldapwhoami -x -H "${LDAPS_URL}" -D "${ADMIN_DN}" \
        -y "${ADMIN_PW_FILE}" >/dev/null 2>&1; then
        echo "LDAPS accepted without trusting the test CA"
        return 1
    fi
}
check "ldap: LDAPS works with the test CA (and not without it)" ldaps_with_test_ca

membership_changes_maintain_memberof() {
    as_admin ldapmodify >/dev/null <<EOF || return 1
dn: cn=hub_viewers,${GROUPS_DN}
changetype: modify
delete: member
member: uid=carol,${PEOPLE_DN}
EOF
    expect_eq "carol's memberOf after removal" \
        "$(as_admin ldapsearch -LLL -b "${PEOPLE_DN}" '(uid=carol)' memberOf | values memberOf)" "" || return 1
    as_admin ldapmodify >/dev/null <<EOF || return 1
dn: cn=hub_viewers,${GROUPS_DN}
changetype: modify
add: member
member: uid=carol,${PEOPLE_DN}
EOF
    expect_eq "carol's memberOf after adding her back" \
        "$(as_admin ldapsearch -LLL -b "${PEOPLE_DN}" '(uid=carol)' memberOf | values memberOf)" "cn=hub_viewers,${GROUPS_DN}"
}
check "ldap: admin removes and re-adds a member (even the last one); memberOf follows" membership_changes_maintain_memberof

user_lifecycle_keeps_groups_consistent() {
    as_admin ldapadd >/dev/null <<EOF || return 1
dn: uid=frank,${PEOPLE_DN}
objectClass: inetOrgPerson
objectClass: posixAccount
objectClass: mailAccount
objectClass: person
uid: frank
cn: Frank Fox
givenName: Frank
sn: Fox
mail: frank@example.com
userPassword: frank-standin-pw

dn: cn=hub_members,${GROUPS_DN}
changetype: modify
add: member
member: uid=frank,${PEOPLE_DN}
EOF
    expect_eq "frank's memberOf" \
        "$(as_admin ldapsearch -LLL -b "${PEOPLE_DN}" '(uid=frank)' memberOf | values memberOf)" "cn=hub_members,${GROUPS_DN}" || return 1
    as_admin ldapdelete "uid=frank,${PEOPLE_DN}" || return 1
    expect_eq "hub_members after deleting frank" \
        "$(as_admin ldapsearch -LLL -b "${GROUPS_DN}" '(cn=hub_members)' member | values member)" \
        "uid=bob,${PEOPLE_DN},uid=erin,${PEOPLE_DN}"
}
check "ldap: admin adds a user to a group and deletes him; the group forgets him" user_lifecycle_keeps_groups_consistent

regular_user_cannot_write() {
    local rc=0
    ldapmodify -x -H "${LDAP_URL}" -D "uid=bob,${PEOPLE_DN}" -w "$(fixture_password bob)" >/dev/null <<EOF || rc=$?
dn: cn=hub_admins,${GROUPS_DN}
changetype: modify
add: member
member: uid=bob,${PEOPLE_DN}
EOF
    expect_eq "ldapmodify exit status (50: insufficient access)" "${rc}" "50"
}
check "ldap: bob cannot add himself to hub_admins" regular_user_cannot_write

# ---------------------------------------------------------------- OIDC

hp_step "OIDC stand-in"
ISSUER="http://127.0.0.1:${oidc_port}"
CURL_TLS=()
start_oidc_standin "${WORK}/oidc" "${oidc_port}" "${ISSUER}" "${WORK}/clients.json" "${LDAP_URL}"

# b64url_json: decodes one base64url JWT segment from stdin.
b64url_json() {
    local s
    s="$(tr -d '\n' | tr '_-' '/+')"
    while (($(printf '%s' "${s}" | wc -c) % 4)); do s+="="; done
    printf '%s' "${s}" | base64 -d
}

ocurl() {
    curl -sS --max-time 10 "${CURL_TLS[@]}" "$@"
}

# Authorization request state, set by new_authorization.
VERIFIER=""
NONCE=""
STATE=""
LOCATION=""
STATUS=""

# hop JAR CURLARGS...: one request; sets STATUS and LOCATION, body in WORK/body.
hop() {
    local jar="$1" meta
    shift
    meta="$(ocurl -o "${WORK}/body" -w '%{http_code} %{redirect_url}' -b "${jar}" -c "${jar}" "$@")" || return 1
    STATUS="${meta%% *}"
    LOCATION="${meta#* }"
}

# new_authorization JAR [PARAM=VALUE...]: a fresh PKCE S256 authorization
# request (extra or overriding parameters appended); leaves STATUS/LOCATION.
new_authorization() {
    local jar="$1"
    shift
    VERIFIER="$(openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n')"
    NONCE="n-$(openssl rand -hex 8)"
    STATE="s-$(openssl rand -hex 8)"
    local challenge
    challenge="$(printf '%s' "${VERIFIER}" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')"
    local -a params=(
        "response_type=code" "client_id=${CLIENT_ID}" "redirect_uri=${REDIRECT_URI}"
        "scope=openid profile email groups" "state=${STATE}" "nonce=${NONCE}"
        "code_challenge=${challenge}" "code_challenge_method=S256"
    )
    local -a args=()
    local p override name
    for p in "${params[@]}"; do
        name="${p%%=*}"
        for override in "$@"; do
            if [[ "${override%%=*}" == "${name}" ]]; then
                continue 2
            fi
        done
        args+=(--data-urlencode "${p}")
    done
    for override in "$@"; do
        # NAME= (empty) drops the parameter.
        [[ -n "${override#*=}" ]] && args+=(--data-urlencode "${override}")
    done
    hop "${jar}" -G "${ISSUER}/api/oidc/authorization" "${args[@]}"
}

# follow JAR: follows redirects from LOCATION until one leaves for the client's
# redirect URI (LOCATION then holds it) or a page is shown.
follow() {
    local jar="$1"
    for _ in $(seq 1 10); do
        case "${LOCATION}" in
            "${REDIRECT_URI}"*) return 0 ;;
            "") return 1 ;;
            *) hop "${jar}" "${LOCATION}" || return 1 ;;
        esac
    done
    return 1
}

query_param() {
    sed -nE "s/.*[?&]$1=([^&#]*).*/\1/p" <<<"${LOCATION}"
}

# login JAR USER PASSWORD: a full browser login; CODE holds the code at the end.
CODE=""
login() {
    local jar="$1" user="$2" password="$3"
    CODE=""
    new_authorization "${jar}" || return 1
    [[ "${STATUS}" == 303 && "${LOCATION}" == "${ISSUER}/interaction/"* ]] \
        || { echo "authorize: ${STATUS} ${LOCATION}"; return 1; }
    local interaction="${LOCATION}"
    hop "${jar}" "${interaction}" || return 1
    if [[ "${STATUS}" != 200 ]] || ! grep -q '<form method="post"' "${WORK}/body"; then
        echo "login form: ${STATUS}"
        return 1
    fi
    hop "${jar}" "${interaction}/login" --data-urlencode "username=${user}" --data-urlencode "password=${password}" \
        || return 1
    [[ "${STATUS}" == 303 ]] || { echo "login POST: ${STATUS}"; return 1; }
    follow "${jar}" || { echo "redirects ended at ${STATUS} ${LOCATION}"; return 1; }
    expect_eq "state" "$(query_param state)" "${STATE}" || return 1
    CODE="$(query_param code)"
    [[ -n "${CODE}" ]] || { echo "no code in ${LOCATION}"; return 1; }
}

# redeem CODE [CURLARGS...]: token request (client_secret_basic unless CURLARGS
# say otherwise); the response in WORK/token.json, its status in STATUS.
redeem() {
    local code="$1"
    shift
    local -a auth=(-u "${CLIENT_ID}:${CLIENT_SECRET}")
    [[ $# -gt 0 ]] && auth=("$@")
    STATUS="$(ocurl -o "${WORK}/token.json" -w '%{http_code}' "${auth[@]}" "${ISSUER}/api/oidc/token" \
        --data-urlencode grant_type=authorization_code --data-urlencode "code=${code}" \
        --data-urlencode "redirect_uri=${REDIRECT_URI}" --data-urlencode "code_verifier=${VERIFIER}")"
}

userinfo() {
    ocurl -f -H "Authorization: Bearer $(jq -r .access_token "${WORK}/token.json")" "${ISSUER}/api/oidc/userinfo"
}

discovery_is_authelias() {
    local d
    d="$(ocurl -f "${ISSUER}/.well-known/openid-configuration")" || return 1
    expect_eq "endpoints" "$(jq -c '[.issuer, .authorization_endpoint, .token_endpoint, .userinfo_endpoint, .jwks_uri, .introspection_endpoint, .revocation_endpoint]' <<<"${d}")" \
        "$(jq -nc --arg i "${ISSUER}" '[$i, "\($i)/api/oidc/authorization", "\($i)/api/oidc/token", "\($i)/api/oidc/userinfo", "\($i)/jwks.json", "\($i)/api/oidc/introspection", "\($i)/api/oidc/revocation"]')" || return 1
    expect_eq "code_challenge_methods_supported" "$(jq -c .code_challenge_methods_supported <<<"${d}")" '["S256"]' || return 1
    expect_eq "client_secret_basic supported" \
        "$(jq '.token_endpoint_auth_methods_supported | index("client_secret_basic") != null' <<<"${d}")" true || return 1
    expect_eq "response_types_supported" "$(jq -c .response_types_supported <<<"${d}")" '["code"]' || return 1
    expect_eq "scopes" "$(jq -c '.scopes_supported | sort' <<<"${d}")" '["email","groups","offline_access","openid","profile"]' || return 1
    expect_eq "end_session_endpoint" "$(jq -r '.end_session_endpoint // "none"' <<<"${d}")" none
}
check "oidc: discovery has Authelia's endpoint paths, S256 only, client_secret_basic" discovery_is_authelias

BOB_JAR="${WORK}/bob.jar"
bob_logs_in() {
    login "${BOB_JAR}" bob "$(fixture_password bob)" || return 1
    expect_eq "iss in the redirect" "$(query_param iss | sed 's/%3A/:/g; s/%2F/\//g')" "${ISSUER}"
}
check "oidc: bob logs in through the form over plain HTTP; the code arrives at the redirect URI" bob_logs_in
BOB_CODE="${CODE}"
BOB_NONCE="${NONCE}"

token_with_client_secret_basic() {
    redeem "${BOB_CODE}"
    expect_eq "token status" "${STATUS}" 200 || { cat "${WORK}/token.json"; return 1; }
    jq -e '.access_token and .id_token and .token_type == "Bearer"' "${WORK}/token.json" >/dev/null
}
check "oidc: the code is redeemed with client_secret_basic and the PKCE verifier" token_with_client_secret_basic
cp "${WORK}/token.json" "${WORK}/bob-token.json" 2>/dev/null || true

id_token_is_minimal_and_signed() {
    local id_token header claims jwks
    id_token="$(jq -r .id_token "${WORK}/bob-token.json")"
    header="$(cut -d. -f1 <<<"${id_token}" | b64url_json)"
    claims="$(cut -d. -f2 <<<"${id_token}" | b64url_json)"
    expect_eq "alg" "$(jq -r .alg <<<"${header}")" RS256 || return 1
    jq -e '.kid | length > 0' <<<"${header}" >/dev/null || { echo "no kid: ${header}"; return 1; }
    expect_eq "sub" "$(jq -r .sub <<<"${claims}")" "$(fixture_uuid bob)" || return 1
    expect_eq "nonce" "$(jq -r .nonce <<<"${claims}")" "${BOB_NONCE}" || return 1
    expect_eq "aud" "$(jq -r '.aud | if type == "array" then .[0] else . end' <<<"${claims}")" "${CLIENT_ID}" || return 1
    expect_eq "iss" "$(jq -r .iss <<<"${claims}")" "${ISSUER}" || return 1
    expect_eq "amr" "$(jq -c .amr <<<"${claims}")" '["pwd"]' || return 1
    jq -e '.auth_time > 0 and .exp > .iat' <<<"${claims}" >/dev/null || { echo "auth_time/exp/iat: ${claims}"; return 1; }
    expect_eq "profile/email/groups claims in the id_token" \
        "$(jq -c '[keys[] | select(. == "email" or . == "email_verified" or . == "groups" or . == "name" or . == "preferred_username")]' <<<"${claims}")" "[]" || return 1
    jwks="$(ocurl -f "${ISSUER}/jwks.json")" || return 1
    # The signature, checked with the JWKS key named by kid.
    # shellcheck disable=SC2016 # JavaScript template literals, not shell
    ID_TOKEN="${id_token}" JWKS="${jwks}" node --input-type=module -e '
        import * as crypto from "node:crypto";
        const [h, p, s] = process.env.ID_TOKEN.split(".");
        const { kid } = JSON.parse(Buffer.from(h, "base64url"));
        const jwk = JSON.parse(process.env.JWKS).keys.find((k) => k.kid === kid);
        if (!jwk) { console.log(`kid ${kid} not in the JWKS`); process.exit(1); }
        const ok = crypto.verify("RSA-SHA256", Buffer.from(`${h}.${p}`), crypto.createPublicKey({ key: jwk, format: "jwk" }), Buffer.from(s, "base64url"));
        if (!ok) { console.log("bad signature"); process.exit(1); }
    '
}
check "oidc: the id_token is RS256 with a JWKS kid, sub = bob's fixed UUID, and no profile/email/groups claims" id_token_is_minimal_and_signed

userinfo_has_the_claims() {
    local info
    cp "${WORK}/bob-token.json" "${WORK}/token.json"
    info="$(userinfo)" || return 1
    expect_eq "sub" "$(jq -r .sub <<<"${info}")" "$(fixture_uuid bob)" || return 1
    expect_eq "preferred_username" "$(jq -r .preferred_username <<<"${info}")" bob || return 1
    expect_eq "name" "$(jq -r .name <<<"${info}")" "Bob Baker" || return 1
    expect_eq "email" "$(jq -r .email <<<"${info}")" bob@example.com || return 1
    expect_eq "email_verified" "$(jq -r .email_verified <<<"${info}")" true || return 1
    expect_eq "groups" "$(jq -c .groups <<<"${info}")" '["hub_members"]'
}
check "oidc: userinfo has sub = fixed UUID, preferred_username, name, email and groups as an array" userinfo_has_the_claims

code_redeemed_twice_refused() {
    redeem "${BOB_CODE}"
    expect_eq "second redemption status" "${STATUS}" 400 || return 1
    expect_eq "error" "$(jq -r .error "${WORK}/token.json")" invalid_grant
}
check "oidc: a code redeemed twice is refused" code_redeemed_twice_refused

client_secret_post_refused() {
    login "${WORK}/post.jar" carol "$(fixture_password carol)" || return 1
    redeem "${CODE}" --data-urlencode "client_id=${CLIENT_ID}" --data-urlencode "client_secret=${CLIENT_SECRET}"
    expect_eq "client_secret_post status" "${STATUS}" 401 || { cat "${WORK}/token.json"; return 1; }
    expect_eq "error" "$(jq -r .error "${WORK}/token.json")" invalid_client || return 1
    # The same code with the registered method works: the refusal was the method.
    redeem "${CODE}"
    expect_eq "client_secret_basic status" "${STATUS}" 200
}
check "oidc: the token endpoint refuses client_secret_post" client_secret_post_refused

wrong_client_secret_refused() {
    login "${WORK}/secret.jar" carol "$(fixture_password carol)" || return 1
    redeem "${CODE}" -u "${CLIENT_ID}:not-the-secret"
    expect_eq "status" "${STATUS}" 401
}
check "oidc: the token endpoint refuses a wrong client secret" wrong_client_secret_refused

authorize_without_pkce_refused() {
    new_authorization "${WORK}/nopkce.jar" "code_challenge=" "code_challenge_method=" || return 1
    [[ "${STATUS}" == 303 && "${LOCATION}" == "${REDIRECT_URI}"* ]] || { echo "got ${STATUS} ${LOCATION}"; return 1; }
    expect_eq "error" "$(query_param error)" invalid_request || return 1
    expect_eq "code" "$(query_param code)" ""
}
check "oidc: an authorization request without code_challenge is refused" authorize_without_pkce_refused

authorize_plain_pkce_refused() {
    new_authorization "${WORK}/plain.jar" "code_challenge=$(openssl rand -hex 32)" "code_challenge_method=plain" || return 1
    [[ "${STATUS}" == 303 && "${LOCATION}" == "${REDIRECT_URI}"* ]] || { echo "got ${STATUS} ${LOCATION}"; return 1; }
    expect_eq "error" "$(query_param error)" invalid_request
}
check "oidc: code_challenge_method=plain is refused" authorize_plain_pkce_refused

wrong_password_shows_form_again() {
    local jar="${WORK}/wrong.jar"
    new_authorization "${jar}" || return 1
    local interaction="${LOCATION}"
    hop "${jar}" "${interaction}" || return 1
    hop "${jar}" "${interaction}/login" --data-urlencode username=bob --data-urlencode password=not-bobs-password || return 1
    expect_eq "status" "${STATUS}" 200 || return 1
    grep -q 'Incorrect username or password' "${WORK}/body" || { echo "no error message"; return 1; }
    grep -q "<form method=\"post\" action=\"${interaction#"${ISSUER}"}/login\"" "${WORK}/body" || { echo "no form"; return 1; }
    if grep -qi '<script' "${WORK}/body"; then
        echo "inline script in the login page"
        return 1
    fi
    # The same interaction still accepts the right password afterwards.
    hop "${jar}" "${interaction}/login" --data-urlencode username=bob --data-urlencode "password=$(fixture_password bob)" || return 1
    follow "${jar}" && [[ -n "$(query_param code)" ]]
}
check "oidc: a wrong password shows the form again with an error; the right one then succeeds" wrong_password_shows_form_again

group_change_shows_at_next_login() {
    as_admin ldapmodify >/dev/null <<EOF || return 1
dn: cn=hub_members,${GROUPS_DN}
changetype: modify
delete: member
member: uid=bob,${PEOPLE_DN}
-

dn: cn=hub_viewers,${GROUPS_DN}
changetype: modify
add: member
member: uid=bob,${PEOPLE_DN}
EOF
    login "${WORK}/bob2.jar" bob "$(fixture_password bob)" || return 1
    redeem "${CODE}"
    expect_eq "token status" "${STATUS}" 200 || return 1
    expect_eq "groups" "$(userinfo | jq -c .groups)" '["hub_viewers"]'
}
check "oidc: a group change in LDAP shows in userinfo at the next login" group_change_shows_at_next_login

secrets_stay_out_of_the_log() {
    local secret
    for secret in "$(fixture_password bob)" "$(fixture_password carol)" "${CLIENT_SECRET}" "${BOB_CODE}"; do
        if grep -qF -- "${secret}" "${WORK}/oidc/oidc.log"; then
            echo "a secret is in oidc.log"
            return 1
        fi
    done
    grep -q 'POST /api/oidc/token' "${WORK}/oidc/oidc.log" || { echo "no request lines in oidc.log"; return 1; }
}
check "oidc: the request log has request lines and no passwords, secrets or codes" secrets_stay_out_of_the_log

first_kid="$(ocurl -f "${ISSUER}/jwks.json" | jq -r '.keys[0].kid')"

hp_step "OIDC stand-in restarted: HTTPS, against LDAPS"
stop_standin "${WORK}/oidc"
ISSUER="https://127.0.0.1:${oidc_port}"
CURL_TLS=(--cacert "${WORK}/ca/ca.pem")
start_oidc_standin "${WORK}/oidc" "${oidc_port}" "${ISSUER}" "${WORK}/clients.json" "${LDAPS_URL}" \
    --cert "${WORK}/ca/server.pem" --key "${WORK}/ca/server-key.pem" --ldap-ca "${WORK}/ca/ca.pem"

kid_rotates_on_restart() {
    local second_kid
    second_kid="$(ocurl -f "${ISSUER}/jwks.json" | jq -r '.keys[0].kid')" || return 1
    [[ -n "${first_kid}" && -n "${second_kid}" && "${first_kid}" != "${second_kid}" ]] \
        || { echo "kid before: ${first_kid}, after: ${second_kid}"; return 1; }
}
check "oidc: after a restart the JWKS kid differs" kid_rotates_on_restart

https_login_against_ldaps() {
    login "${WORK}/erin.jar" erin "$(fixture_password erin)" || return 1
    redeem "${CODE}"
    expect_eq "token status" "${STATUS}" 200 || return 1
    local info
    info="$(userinfo)" || return 1
    expect_eq "sub" "$(jq -r .sub <<<"${info}")" "$(fixture_uuid erin)" || return 1
    expect_eq "groups" "$(jq -c .groups <<<"${info}")" '["hub_breakglass","hub_members"]' || return 1
    # Netscape cookie-jar lines: the fourth field says "secure".
    awk -F'\t' '$4 == "TRUE" { found = 1 } END { exit !found }' "${WORK}/erin.jar" \
        || { echo "no secure cookie over HTTPS"; return 1; }
}
check "oidc: erin logs in over HTTPS with the LDAP stand-in reached over LDAPS" https_login_against_ldaps

printf '# standins: %d ok, %d not ok\n' "${passed}" "${failed}"
[[ ${failed} -eq 0 ]]
