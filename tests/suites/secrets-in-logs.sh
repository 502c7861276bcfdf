#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Secrets never reach our logs. Starts the whole management plane the demo runs
# (scripts/lib/stack.sh: LDAP and OIDC stand-ins, the cluster stand-in over HTTPS, the
# state hub, dev-hub and ops-hub) with every hub logging at debug level, the
# libraries' debug lines included (RUST_LOG=debug: actix, hyper, reqwest, rustls,
# tokio-postgres, async-nats; ldap3 and openidconnect have none of their own), the
# state hub with a database password file and fanning its journal out to a private
# NATS server that wants a user and password. Then it uses every secret the plane has,
# the way people and hubs do:
#   - the seeding: the bootstrap admin token, people's and hubs' API tokens, the OIDC
#     client secrets, the capability credential sealed to the state hub's age identity;
#   - SSO logins through the OIDC stand-in (PKCE verifier, nonce and state, read from
#     the hub's login_flows; authorization code; flow and session cookies),
#     CSRF-protected forms with the session (an API token created on /admin/tokens, the
#     capability credential replaced on its page, an annotation on ops-hub, a logout),
#     directory look-ups through LDAP, break-glass while the provider is down (a
#     directory password, bound to LDAP; a wrong one too);
#   - bearer-token API calls, a token issued, used and revoked, a wrong one refused, the
#     domain hubs calling the cluster with the credential the state hub hands them, an
#     age key rotation (new identity first, `hubctl secret rotate --hub`), a forged
#     authorization code and a forged session cookie, a wrong capability credential the
#     cluster refuses, the NATS fan-out.
# Every secret value it created or used goes to a list; tests/suites/secrets/scan.py
# looks for each in the output of our processes (the state hub, the domain hubs,
# hubctl's error output and the answers that must not hold secrets), verbatim and in
# the forms a log line could carry it (without its prefix, its tail, percent- and
# form-encoded, hex, base64 at any alignment, as in a Basic header), and for things
# that are secret whatever their value (JWTs, age identities, API tokens,
# Authorization headers, __Host- cookies, fields named like secrets: pkce_verifier,
# password, nonce, …). Each hit is listed as file:line with the secret masked. Before
# the verdict a self-check plants secrets into a copy of a log and makes sure the
# scanner reports each, so the suite can fail. The stand-ins' logs are not ours and are
# not scanned.
# Bounded: about 60 s, within HUB_SECRETS_IN_LOGS_BUDGET (default 300) s.
# Environment: HUB_TEST_DATABASE_URL, HUB_BIN_DIR (tests/suites/README.md);
# HUB_SECRETS_LOG_FILTER (default debug; trace works too, and logs a lot);
# HUB_SECRETS_LOG_FORMAT (pretty, the default, or json);
# HUB_SECRETS_KEEP_LOGS=1 keeps the scratch directory (logs, and the secrets list: 0600).
set -euo pipefail

SUITE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../scripts/lib/common.sh
source "${SUITE_DIR}/../../scripts/lib/common.sh"
# shellcheck source=../../scripts/lib/deps.sh
source "${SUITE_DIR}/../../scripts/lib/deps.sh"
# shellcheck source=../../scripts/lib/stack.sh
source "${SUITE_DIR}/../../scripts/lib/stack.sh"
# shellcheck source=../../scripts/lib/suite.sh
source "${SUITE_DIR}/../../scripts/lib/suite.sh"

BIN_DIR="${HUB_BIN_DIR:-${HUBPLANE_REPO}/target/debug}"
BUDGET="${HUB_SECRETS_IN_LOGS_BUDGET:-300}"
LOG_FILTER="${HUB_SECRETS_LOG_FILTER:-debug}"
LOG_FORMAT="${HUB_SECRETS_LOG_FORMAT:-pretty}"
KEEP_LOGS="${HUB_SECRETS_KEEP_LOGS:-}"
# The hubs would take them for config overrides (and warn).
unset HUB_SECRETS_IN_LOGS_BUDGET HUB_SECRETS_LOG_FILTER HUB_SECRETS_LOG_FORMAT HUB_SECRETS_KEEP_LOGS
[[ "${LOG_FORMAT}" == pretty || "${LOG_FORMAT}" == json ]] \
    || hp_die "HUB_SECRETS_LOG_FORMAT: pretty or json, not ${LOG_FORMAT}"
# Every hub's [log] format (the config's environment override).
export HUB_LOG__FORMAT="${LOG_FORMAT}"
SCAN="${SUITE_DIR}/secrets/scan.py"
FORM="${SUITE_DIR}/secrets/form.py"
# The hubs read RUST_LOG before their [log] filter: the libraries' debug lines too.
export RUST_LOG="${LOG_FILTER}"

mkdir -p "${HUBPLANE_REPO}/.tmp"
WORK="$(mktemp -d "${HUBPLANE_REPO}/.tmp/secrets-in-logs.XXXXXX")"
chmod 0700 "${WORK}"
STACK_DB_NAME=""
NATS_PID=""
# Every secret of the run, `label<TAB>value` (0600).
SECRETS="${WORK}/secrets.tsv"
(
    umask 077
    : >"${SECRETS}"
)
# hubctl's error output (its log), and the answers of calls that must not hold secrets.
HUBCTL_LOG="${WORK}/hubctl.log"
: >"${HUBCTL_LOG}"

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    stack_suite_teardown "${WORK}/stack"
    if [[ -n "${NATS_PID}" ]] && hp_pid_running "${NATS_PID}"; then
        kill -TERM "${NATS_PID}" 2>/dev/null || true
        wait "${NATS_PID}" 2>/dev/null || true
    fi
    rm -f -- "${TMPDIR:-/tmp}/hubplane-ports-$$"
    if [[ -n "${KEEP_LOGS}" ]]; then
        hp_warn "kept ${WORK} (HUB_SECRETS_KEEP_LOGS)"
    else
        rm -rf -- "${WORK}"
    fi
    return "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stack_suite_require "${BIN_DIR}"

hp_step "packages"
stack_ensure_deps
ensure_debian_packages nats-server
NATS_BIN="$(command -v nats-server || true)"
[[ -n "${NATS_BIN}" ]] || NATS_BIN=/usr/sbin/nats-server
[[ -x "${NATS_BIN}" ]] || hp_die "nats-server is not installed (Debian package nats-server)"

suite_init "${WORK}" "${BUDGET}"

# ---------------------------------------------------------------------------
# Secrets and helpers
# ---------------------------------------------------------------------------

# add_secret LABEL VALUE: one more value the logs must not hold (whitespace trimmed; a value
# listed already is not listed again).
add_secret() {
    local label="$1" value
    value="$(printf '%s' "$2" | tr -d '\r\n' | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')"
    [[ -n "${value}" ]] || hp_die "add_secret ${label}: empty value"
    ((${#value} >= 12)) || hp_die "add_secret ${label}: a secret of ${#value} characters is too short to look for"
    if V="${value}" awk -F'\t' '$2 == ENVIRON["V"] { found = 1 } END { exit !found }' "${SECRETS}"; then
        return 0
    fi
    printf '%s\t%s\n' "${label}" "${value}" >>"${SECRETS}"
}

# add_secret_file LABEL FILE
add_secret_file() {
    [[ -s "$2" ]] || hp_die "add_secret_file $1: no file $2"
    add_secret "$1" "$(cat "$2")"
}

# add_cookie_secrets LABEL JAR: every cookie value in a curl cookie jar.
add_cookie_secrets() {
    local label="$1" jar="$2" name value
    while IFS=$'\t' read -r name value; do
        [[ ${#value} -ge 12 ]] || continue
        add_secret "${label}: cookie ${name}" "${value}"
    done < <(awk -F'\t' 'NF >= 7 && ($1 !~ /^#/ || $1 ~ /^#HttpOnly_/) { print $6 "\t" $7 }' "${jar}")
}

# hubctl_as TOKEN_FILE ARGS...: hubctl --output json against the state hub; its error output
# goes to the scanned hubctl log.
hubctl_as() {
    local token_file="$1"
    shift
    "${STACK_BIN_DIR}/hubctl" --url "${STACK_HUB_URL}" --token-file "${token_file}" \
        --output json --timeout 10 "$@" </dev/null 2>>"${HUBCTL_LOG}"
}

# hubctl_logged TOKEN_FILE ARGS...: hubctl_as for answers that must hold no secret either:
# they go to the scanned log too.
hubctl_logged() {
    hubctl_as "$@" | tee -a "${HUBCTL_LOG}"
}

# bearer TOKEN_FILE: the Authorization header line for curl -H @- (never on a command line).
bearer() {
    printf 'Authorization: Bearer %s\n' "$(tr -d '[:space:]' <"$1")"
}

# api TOKEN_FILE METHOD URL [CURLARGS...]: an API call with a bearer token; the body goes to
# WORK/body, the status is printed.
api() {
    local token_file="$1" method="$2" url="$3"
    shift 3
    bearer "${token_file}" | curl -sS --max-time 10 -X "${method}" -H @- -o "${WORK}/body" \
        -w '%{http_code}' "$@" "${url}"
}

# fixture_password USER: the directory password of a fixture user.
fixture_password() {
    jq -er --arg u "$1" '.users[] | select(.uid == $u) | .password' "${HP_STANDINS_DIR}/directory.json"
}

# ---------------------------------------------------------------------------
# NATS with a password, the plane at debug level
# ---------------------------------------------------------------------------

hp_step "a private NATS server with JetStream and a user/password"
NATS_DIR="${WORK}/nats"
mkdir -p "${NATS_DIR}"
NATS_PORT="$(hp_free_port)"
NATS_USER="hubplane"
NATS_PASSWORD="$(openssl rand -hex 24)"
(
    umask 077
    printf '%s\n' "${NATS_PASSWORD}" >"${NATS_DIR}/password"
    cat >"${NATS_DIR}/nats.conf" <<CONF
listen: "127.0.0.1:${NATS_PORT}"
jetstream { store_dir: "${NATS_DIR}/store" }
authorization { user: "${NATS_USER}", password: "${NATS_PASSWORD}" }
CONF
)
add_secret "NATS password" "${NATS_PASSWORD}"
"${NATS_BIN}" -c "${NATS_DIR}/nats.conf" >"${NATS_DIR}/nats.log" 2>&1 </dev/null &
NATS_PID=$!
for _ in $(seq 1 100); do
    hp_port_in_use "${NATS_PORT}" && break
    hp_pid_running "${NATS_PID}" || break
    sleep 0.1
done
hp_port_in_use "${NATS_PORT}" || { cat "${NATS_DIR}/nats.log" >&2; hp_die "nats-server did not start"; }
hp_info "nats-server on 127.0.0.1:${NATS_PORT} (pid ${NATS_PID})"

# start_plane HUB DEV OPS OIDC LDAP CLUSTER: the stack on these ports (run in a subshell: a
# failure exits it).
start_plane() {
    local hub_port="$1" dev_port="$2" ops_port="$3" oidc_port="$4" ldap_port="$5" cluster_port="$6"
    stack_up --dir "${WORK}/stack" --database "${DB_PREFIX}_state" --bin-dir "${BIN_DIR}" \
        --hub-port "${hub_port}" --oidc-port "${oidc_port}" --ldap-port "${ldap_port}" \
        --client "dev-hub=http://127.0.0.1:${dev_port}" --client "ops-hub=http://127.0.0.1:${ops_port}" \
        --probe-interval 2 --log-filter "${LOG_FILTER}"

    # The journal fans out to the private NATS server: the state hub again, with [nats]; and with
    # a database password (the test server trusts loopback, so it is never asked for, but the hub
    # reads and carries it all the same).
    stack_stop_state_hub "${STACK_DIR}" >/dev/null
    (
        umask 077
        openssl rand -hex 24 >"${STACK_DIR}/secrets/database.password"
    )
    add_secret_file "the state hub's database password" "${STACK_DIR}/secrets/database.password"
    sed -i "/^\[database\]\$/a password_file = $(_stack_toml_str "${STACK_DIR}/secrets/database.password")" \
        "${STACK_HUB_CONFIG}"
    grep -q '^password_file = ' "${STACK_HUB_CONFIG}" || hp_die "could not add [database] password_file"
    cat >>"${STACK_HUB_CONFIG}" <<TOML

[nats]
enabled = true
url = $(_stack_toml_str "nats://127.0.0.1:${NATS_PORT}")
stream = "HUBPLANE_SECRETS_SUITE"
user = $(_stack_toml_str "${NATS_USER}")
password_file = $(_stack_toml_str "${NATS_DIR}/password")
TOML
    stack_start_state_hub "${STACK_DIR}" >/dev/null

    stack_plane_up --cluster-port "${cluster_port}" --database-prefix "${DB_PREFIX}" \
        --hub "dev-hub=${dev_port}" --hub "ops-hub=${ops_port}" --poll-seconds 10 \
        --heartbeat-seconds 10 --callable-refresh-seconds 2 --log-filter "${LOG_FILTER}"
}

hp_step "starting the management plane, every hub at log level ${LOG_FILTER}"
DB_PREFIX="hubplane_secretlogs_$(date +%s)_${RANDOM}"
# Another suite may take a port between the check and the bind: then once more on other ports.
# In the background, so that errexit holds inside the subshell.
started=0
for attempt in 1 2 3; do
    ports=()
    for _ in 1 2 3 4 5 6; do
        ports+=("$(hp_free_port)")
    done
    start_plane "${ports[@]}" &
    if wait "$!"; then
        started=1
        break
    fi
    hp_warn "the management plane did not start (attempt ${attempt} of 3)"
    stack_down "${WORK}/stack" >/dev/null 2>&1 || true
    if [[ -f "${WORK}/stack/stack.env" ]]; then
        stack_load "${WORK}/stack"
        stack_drop_database || true
    fi
done
[[ ${started} -eq 1 ]] || hp_die "the management plane did not start; see the errors above"
stack_load "${WORK}/stack"
DEV_URL="$(stack_domain_url dev-hub)"
OPS_URL="$(stack_domain_url ops-hub)"

hp_step "the secrets the stack made"
add_secret_file "bootstrap admin token" "${STACK_TOKEN_FILE}"
add_secret_file "alice's state hub token" "${STACK_ALICE_TOKEN_FILE}"
add_secret_file "bob's state hub token" "${STACK_BOB_TOKEN_FILE}"
for hub in state-hub dev-hub ops-hub; do
    add_secret_file "${hub}'s OIDC client secret" "${STACK_DIR}/secrets/${hub}.oidc-client-secret"
done
for hub in dev-hub ops-hub; do
    add_secret_file "${hub}'s state hub token" "${STACK_DIR}/secrets/${hub}.state-hub.token"
    add_secret_file "alice's API token on ${hub}" "$(stack_domain_token_file "${hub}")"
done
add_secret_file "the cluster's bearer token (capability credential)" "${STACK_CLUSTER_TOKEN_FILE}"
[[ ! -s "${STACK_CLUSTER_DIR}/control.token" ]] \
    || add_secret_file "the cluster stand-in's control token" "${STACK_CLUSTER_DIR}/control.token"
add_secret "the state hub's age identity" "$(grep -m1 '^AGE-SECRET-KEY-' "${STACK_AGE_IDENTITY}")"
add_secret_file "the LDAP bind password" "${STACK_LDAP_DIR}/admin.password"
for user in admin alice bob carol dave erin; do
    add_secret "${user}'s directory password" "$(fixture_password "${user}")"
done
hp_info "$(wc -l <"${SECRETS}") secrets so far"

# ---------------------------------------------------------------------------
# The flow
# ---------------------------------------------------------------------------

# hub_db_url HUB_URL: the database URL of a hub of the stack.
hub_db_url() {
    local hub
    if [[ "$1" == "${STACK_HUB_URL}" ]]; then
        printf '%s\n' "${STACK_DB_URL}"
        return 0
    fi
    for hub in $(stack_domain_hubs "${STACK_DIR}"); do
        if [[ "$1" == "$(stack_domain_url "${hub}")" ]]; then
            pg_url_with_database "${HUB_TEST_DATABASE_URL}" "$(_stack_domain_field "${STACK_DIR}" "${hub}" 4)"
            return 0
        fi
    done
    return 1
}

# add_flow_secrets LABEL HUB_URL: what the hub keeps of the logins under way (PKCE verifier,
# nonce, state), read from its login_flows table.
add_flow_secrets() {
    local label="$1" db key value
    db="$(hub_db_url "$2")" || { echo "no database for $2"; return 1; }
    while IFS=$'\t' read -r key value; do
        [[ ${#value} -ge 12 ]] || continue
        add_secret "${label}: ${key}" "${value}"
    done < <(psql "${db}" -X -A -t -q -F $'\t' -c \
        "SELECT e.key, e.value FROM login_flows f, jsonb_each_text(f.pending::jsonb) e
         WHERE e.key IN ('pkce_verifier', 'nonce', 'state', 'csrf', 'csrf_token')")
}

# sso_login HUB_URL USER JAR: the browser's way through the provider (as stack_browser_login),
# keeping the authorization code, the state and the cookies as secrets.
sso_login() {
    local url="${1%/}" user="$2" jar="$3" password next out code
    password="$(fixture_password "${user}")" || return 1
    rm -f -- "${jar}"
    (
        umask 077
        : >"${jar}"
    )
    local -a c=(curl -sS --max-time 10 --cacert "${STACK_CA_FILE}" -c "${jar}" -b "${jar}")
    next="$("${c[@]}" -o /dev/null -w '%{redirect_url}' "${url}/auth/oidc/start?next=%2F")" || return 1
    [[ "${next}" == "${STACK_ISSUER}/"* ]] || { echo "${url} did not send us to the provider (${next})"; return 1; }
    add_cookie_secrets "${user}'s login flow at ${url}" "${jar}"
    add_flow_secrets "${user}'s login flow at ${url}" "${url}" || return 1
    grep -qF "login flow at ${url}: pkce_verifier" "${SECRETS}" || { echo "no PKCE verifier in login_flows"; return 1; }
    next="$("${c[@]}" -o /dev/null -w '%{redirect_url}' "${next}")" || return 1
    [[ "${next}" == "${STACK_ISSUER}/interaction/"* ]] || { echo "no login form (${next})"; return 1; }
    next="$("${c[@]}" -o /dev/null -w '%{redirect_url}' "${next}/login" \
        --data-urlencode "username=${user}" --data-urlencode "password=${password}")" || return 1
    [[ -n "${next}" ]] || { echo "the provider refused ${user}"; return 1; }
    # Through the provider's consent redirects, up to the hub's callback with the code.
    local i
    for i in 1 2 3 4 5 6; do
        [[ "${next}" != "${url}/auth/callback"* ]] || break
        next="$("${c[@]}" -o /dev/null -w '%{redirect_url}' "${next}")" || return 1
        [[ -n "${next}" && ${i} -lt 6 ]] || { echo "no redirect to ${url}/auth/callback"; return 1; }
    done
    code="$(sed -n 's/.*[?&]code=\([^&]*\).*/\1/p' <<<"${next}")"
    [[ -n "${code}" ]] || { echo "no code in the callback URL"; return 1; }
    add_secret "${user}'s authorization code for ${url}" "$(printf '%b' "${code//%/\\x}")"
    out="$("${c[@]}" -L -o /dev/null -w '%{http_code} %{url_effective}' "${next}")" || return 1
    expect_eq "${user}'s login at ${url} ends at" "${out}" "200 ${url}/" || return 1
    add_cookie_secrets "${user}'s session at ${url}" "${jar}"
    grep -q '__Host-' "${jar}" || { echo "no __Host- session cookie for ${user}"; return 1; }
}

# page URL JAR: GET with the session; the body goes to WORK/page, the status is printed.
page() {
    curl -sS --max-time 10 -b "$2" -c "$2" -o "${WORK}/page" -w '%{http_code}' "$1"
}

# form_post URL ACTION JAR [FIELD=VALUE|FIELD@FILE...]: the hidden fields of the form with ACTION on
# WORK/page (the CSRF token among them, kept as a secret) plus the given fields, posted with
# the session. The body goes to WORK/page, the status is printed.
form_post() {
    local url="$1" action="$2" jar="$3" line
    shift 3
    local -a data=()
    while IFS= read -r line; do
        data+=(--data-urlencode "${line}")
        if [[ "${line}" == csrf_token=* ]]; then
            add_secret "CSRF token (${action})" "${line#csrf_token=}"
        fi
    done < <(python3 "${FORM}" "${WORK}/page" "${action}")
    [[ ${#data[@]} -gt 0 ]] || { echo "no form ${action}" >&2; return 1; }
    for line in "$@"; do
        data+=(--data-urlencode "${line}")
    done
    curl -sS --max-time 10 -b "${jar}" -c "${jar}" -o "${WORK}/page" -w '%{http_code}' \
        "${data[@]}" "${url}${action}"
}

STATE_JAR="${WORK}/alice-state.jar"
OPS_JAR="${WORK}/bob-ops.jar"
DEV_JAR="${WORK}/carol-dev.jar"
sso_logins() {
    sso_login "${STACK_HUB_URL}" alice "${STATE_JAR}" || return 1
    sso_login "${OPS_URL}" bob "${OPS_JAR}" || return 1
    sso_login "${DEV_URL}" carol "${DEV_JAR}" || return 1
    expect_eq "state hub / as alice" "$(page "${STACK_HUB_URL}/" "${STATE_JAR}")" 200
}
check "SSO logins through the OIDC stand-in: alice on the state hub, bob on ops-hub, carol on dev-hub" \
    sso_logins

UI_TOKEN=""
csrf_forms() {
    # An API token made on /admin/tokens: shown once, on the page.
    expect_eq "GET /admin/tokens" "$(page "${STACK_HUB_URL}/admin/tokens" "${STATE_JAR}")" 200 || return 1
    expect_eq "POST /admin/tokens" "$(form_post "${STACK_HUB_URL}" /admin/tokens "${STATE_JAR}" \
        "name=secrets suite (ui)" subject=dave kind=human role_viewer=on scopes= expires_in_days=1)" 200 || return 1
    UI_TOKEN="$(sed -n 's/.*id="new-token-secret">\(hpt_[A-Za-z0-9_-]*\)<.*/\1/p' "${WORK}/page")"
    [[ -n "${UI_TOKEN}" ]] || { echo "no token secret on the created page"; return 1; }
    add_secret "dave's token made on /admin/tokens" "${UI_TOKEN}"
    # The capability credential, replaced (by the same value) through its page.
    expect_eq "GET /capabilities/deployments" \
        "$(page "${STACK_HUB_URL}/capabilities/deployments" "${STATE_JAR}")" 200 || return 1
    # From a file (curl's name@file), not on a command line.
    (
        umask 077
        tr -d '[:space:]' <"${STACK_CLUSTER_TOKEN_FILE}" >"${WORK}/credential.form"
    )
    expect_eq "POST /capabilities/deployments/credential" "$(form_post "${STACK_HUB_URL}" \
        /capabilities/deployments/credential "${STATE_JAR}" "credential@${WORK}/credential.form")" 303 || return 1
    # An annotation on ops-hub, with bob's session.
    expect_eq "GET ops-hub /annotations" "$(page "${OPS_URL}/annotations" "${OPS_JAR}")" 200 || return 1
    expect_eq "POST ops-hub /annotations" "$(form_post "${OPS_URL}" /annotations "${OPS_JAR}" \
        category=note target=deployments "text=secrets suite: a note")" 303 || return 1
    # The same form without its token is refused.
    expect_eq "POST ops-hub /annotations without csrf_token" "$(curl -sS --max-time 10 -b "${OPS_JAR}" \
        -o /dev/null -w '%{http_code}' --data 'category=note&target=deployments&text=x' "${OPS_URL}/annotations")" 403
}
check "CSRF-protected forms with the session: a token on /admin/tokens, the credential on its page, an annotation" \
    csrf_forms

api_calls() {
    local json token_file="${WORK}/issued.token" id
    # LDAP: directory look-ups with bearer tokens, on the state hub and on a domain hub.
    expect_eq "GET /api/v1/directory/users?prefix=a" \
        "$(api "${STACK_ALICE_TOKEN_FILE}" GET "${STACK_HUB_URL}/api/v1/directory/users?prefix=a")" 200 || return 1
    jq -e '[.. | .uid? // empty] | index("alice") != null' "${WORK}/body" >/dev/null \
        || jq -e 'tostring | contains("alice")' "${WORK}/body" >/dev/null \
        || { echo "alice is not in the directory answer"; return 1; }
    expect_eq "GET /api/v1/directory/groups" \
        "$(api "${STACK_ALICE_TOKEN_FILE}" GET "${STACK_HUB_URL}/api/v1/directory/groups")" 200 || return 1
    # A token issued through the API, used, revoked.
    json="$(hubctl_as "${STACK_TOKEN_FILE}" tokens create --name "secrets suite (api)" --subject erin \
        --kind human --role member)" || return 1
    id="$(jq -er .info.id <<<"${json}")" || { echo "no .info.id in the created token"; return 1; }
    jq -er .token <<<"${json}" >"${token_file}" || return 1
    chmod 0600 "${token_file}"
    add_secret_file "erin's token issued by the API" "${token_file}"
    expect_eq "whoami with the issued token" "$(hubctl_logged "${token_file}" whoami | jq -r .subject)" erin || return 1
    hubctl_logged "${STACK_TOKEN_FILE}" tokens revoke "${id}" >/dev/null || return 1
    if hubctl_as "${token_file}" whoami >/dev/null; then
        echo "the revoked token still works"
        return 1
    fi
    # The UI's token works too.
    printf '%s\n' "${UI_TOKEN}" >"${WORK}/ui.token"
    expect_eq "whoami with the UI's token" "$(hubctl_logged "${WORK}/ui.token" whoami | jq -r .subject)" dave || return 1
    # A wrong token is refused (and must not be logged either).
    printf 'hpt_%s\n' "$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n')" >"${WORK}/wrong.token"
    add_secret_file "a wrong token" "${WORK}/wrong.token"
    expect_eq "a wrong bearer token" "$(api "${WORK}/wrong.token" GET "${STACK_HUB_URL}/api/v1/whoami")" 401 || return 1
    # The domain hubs' APIs with their tokens; ops-hub takes an annotation over the API.
    expect_eq "ops-hub GET /api/v1/widgets" \
        "$(api "$(stack_domain_token_file ops-hub)" GET "${OPS_URL}/api/v1/widgets")" 200 || return 1
    expect_eq "ops-hub POST /api/v1/annotations" "$(api "$(stack_domain_token_file ops-hub)" POST \
        "${OPS_URL}/api/v1/annotations" -H 'Content-Type: application/json' \
        --data '{"category": "note", "target": "nodes", "text": "secrets suite over the API"}')" 201 || return 1
    expect_eq "dev-hub GET /api/v1/status" \
        "$(api "$(stack_domain_token_file dev-hub)" GET "${DEV_URL}/api/v1/status")" 200 || return 1
    # What hubs and people read about capabilities and the registry (answers scanned too).
    hubctl_logged "${STACK_ALICE_TOKEN_FILE}" capabilities show deployments >/dev/null || return 1
    hubctl_logged "${STACK_BOB_TOKEN_FILE}" hubs list >/dev/null || return 1
    hubctl_logged "${STACK_ALICE_TOKEN_FILE}" events list --limit 200 >/dev/null || return 1
    # The state hub hands ops-hub the credential (by design: not scanned).
    hubctl_as "${STACK_DIR}/secrets/ops-hub.state-hub.token" capabilities callable \
        | jq -e --rawfile t "${STACK_CLUSTER_TOKEN_FILE}" \
            '(.items | length) > 0 and all(.items[]; .credential == ($t | rtrimstr("\n")))' >/dev/null \
        || { echo "ops-hub is not handed the cluster's token"; return 1; }
}
check "bearer-token API calls: directory look-ups (LDAP), a token issued, used and revoked, a wrong one refused" \
    api_calls

widgets_fresh() {
    local hub
    for hub in dev-hub ops-hub; do
        stack_widgets "${hub}" | jq -e '(.items | length) > 0 and all(.items[]; .freshness.state == "fresh")' \
            >/dev/null || { echo "${hub}'s widgets are not all fresh"; return 1; }
    done
}
capability_calls() {
    within 20 "every widget of dev-hub and ops-hub fresh (polled with the credential)" widgets_fresh || return 1
    hubctl_logged "${STACK_ALICE_TOKEN_FILE}" capabilities show deployments | jq -e '.health == "healthy"' \
        >/dev/null || { echo "deployments is not healthy"; return 1; }
}
check "the domain hubs call the cluster with the credential; the state hub's probe finds it healthy" \
    capability_calls

NEW_AGE="${STACK_DIR}/secrets/state-hub.new.age"
key_rotation() {
    local report identities
    "${STACK_BIN_DIR}/hubctl" secret keygen --out "${NEW_AGE}" >/dev/null 2>>"${HUBCTL_LOG}" </dev/null || return 1
    add_secret "the state hub's new age identity" "$(grep -m1 '^AGE-SECRET-KEY-' "${NEW_AGE}")"
    # The new identity first, the old one still able to open what is stored.
    identities="age_identity_files = [$(_stack_toml_str "${NEW_AGE}"), $(_stack_toml_str "${STACK_AGE_IDENTITY}")]"
    stack_stop_state_hub "${STACK_DIR}" || return 1
    sed -i "s|^age_identity_files = .*|${identities//|/\\|}|" "${STACK_HUB_CONFIG}"
    grep -qF "${NEW_AGE}" "${STACK_HUB_CONFIG}" || { echo "the config does not name the new identity"; return 1; }
    stack_start_state_hub "${STACK_DIR}" || return 1
    report="$(hubctl_logged "${STACK_TOKEN_FILE}" secret rotate --hub)" || return 1
    jq -e '.resealed == 3 and (.failed | length) == 0' <<<"${report}" >/dev/null \
        || { echo "rotation report: ${report}"; return 1; }
    within 20 "every widget fresh after the rotation" widgets_fresh
}
check "age key rotation: a new identity first, hubctl secret rotate --hub re-seals the 3 credentials" \
    key_rotation

# forged_login_attempts: a made-up authorization code at the callback (with a real state, so the
# hub does send it to the provider), a made-up session cookie, both refused.
forged_login_attempts() {
    local jar="${WORK}/forged.jar" next state code cookie_name status
    rm -f -- "${jar}"
    next="$(curl -sS --max-time 10 -c "${jar}" -b "${jar}" -o /dev/null -w '%{redirect_url}' \
        "${STACK_HUB_URL}/auth/oidc/start?next=%2F")" || return 1
    add_cookie_secrets "the forged login's flow" "${jar}"
    add_flow_secrets "the forged login's flow" "${STACK_HUB_URL}" || return 1
    state="$(sed -n 's/.*[?&]state=\([^&]*\).*/\1/p' <<<"${next}")"
    [[ -n "${state}" ]] || { echo "no state in ${next%%\?*}?…"; return 1; }
    code="$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n')"
    add_secret "a forged authorization code" "${code}"
    status="$(curl -sS --max-time 15 -c "${jar}" -b "${jar}" -o "${WORK}/page" -w '%{http_code}' \
        "${STACK_HUB_URL}/auth/callback?code=${code}&state=${state}")" || return 1
    [[ "${status}" == 4* || "${status}" == 5* ]] || { echo "a forged code got ${status}"; return 1; }
    if grep -q -- '-session' "${jar}"; then
        echo "a forged code opened a session"
        return 1
    fi
    cookie_name="$(awk -F'\t' 'NF >= 7 && $6 ~ /^__Host-.*-session$/ { print $6; exit }' "${STATE_JAR}")"
    [[ -n "${cookie_name}" ]] || { echo "no __Host- cookie in alice's jar"; return 1; }
    printf 'forged-%s' "$(openssl rand -hex 20)" >"${WORK}/forged.cookie"
    add_secret_file "a forged session cookie" "${WORK}/forged.cookie"
    printf 'Cookie: %s=%s\n' "${cookie_name}" "$(cat "${WORK}/forged.cookie")" \
        | curl -sS --max-time 10 -H @- -o /dev/null -w '%{http_code}\n' "${STACK_HUB_URL}/admin/tokens" \
        >"${WORK}/forged.status" || return 1
    expect_eq "GET /admin/tokens with a forged session cookie" "$(cat "${WORK}/forged.status")" 303
}
check "a forged authorization code and a forged session cookie are refused" forged_login_attempts

capability_health_of() {
    expect_eq "health of $1" "$(hubctl_as "${STACK_ALICE_TOKEN_FILE}" capabilities show "$1" | jq -r .health)" "$2"
}
# wrong_credential: the costs capability gets a wrong credential (the cluster answers 403 to the
# state hub's probe), then the right one again.
wrong_credential() {
    local wrong="${WORK}/wrong-credential"
    (
        umask 077
        openssl rand -hex 32 >"${wrong}"
    )
    add_secret_file "a wrong capability credential" "${wrong}"
    hubctl_logged "${STACK_TOKEN_FILE}" capabilities set-credential costs --file "${wrong}" >/dev/null || return 1
    within 20 "costs unhealthy with a wrong credential" capability_health_of costs unhealthy || return 1
    hubctl_logged "${STACK_TOKEN_FILE}" capabilities set-credential costs --file "${STACK_CLUSTER_TOKEN_FILE}" \
        >/dev/null || return 1
    within 20 "costs healthy again" capability_health_of costs healthy
}
check "a wrong capability credential: the cluster refuses the probe, the right one heals it" wrong_credential

BREAK_JAR="${WORK}/erin-breakglass.jar"
break_glass() {
    local status
    stack_stop_oidc "${STACK_DIR}" >/dev/null 2>&1 || return 1
    rm -f -- "${BREAK_JAR}"
    expect_eq "GET /auth/break-glass" "$(page "${STACK_HUB_URL}/auth/break-glass" "${BREAK_JAR}")" 200 || return 1
    add_cookie_secrets "erin's break-glass flow" "${BREAK_JAR}"
    status="$(form_post "${STACK_HUB_URL}" /auth/break-glass "${BREAK_JAR}" username=erin \
        "password=$(fixture_password erin)")" || return 1
    expect_eq "POST /auth/break-glass as erin" "${status}" 303 || { sed -n '/<main/,/<\/main>/p' "${WORK}/page" | head -20; return 1; }
    add_cookie_secrets "erin's break-glass session" "${BREAK_JAR}"
    expect_eq "state hub / as erin" "$(page "${STACK_HUB_URL}/" "${BREAK_JAR}")" 200 || return 1
    grep -q 'break-glass' "${WORK}/page" || { echo "no break-glass badge"; return 1; }
    # A wrong password is refused and must not be logged either.
    expect_eq "GET /auth/break-glass (again)" "$(page "${STACK_HUB_URL}/auth/break-glass" "${WORK}/wrong.jar")" 200 || return 1
    add_secret "a wrong break-glass password" "wrong-$(openssl rand -hex 12)"
    status="$(form_post "${STACK_HUB_URL}" /auth/break-glass "${WORK}/wrong.jar" username=erin \
        "password=$(tail -n 1 "${SECRETS}" | cut -f2)")" || return 1
    [[ "${status}" == 4* ]] || { echo "a wrong break-glass password got ${status}"; return 1; }
    stack_start_oidc "${STACK_DIR}" >/dev/null 2>&1
}
check "break-glass while the provider is down: erin binds to LDAP with her directory password" \
    break_glass

logout_and_fanout() {
    expect_eq "GET / (alice)" "$(page "${STACK_HUB_URL}/" "${STATE_JAR}")" 200 || return 1
    local status
    status="$(form_post "${STACK_HUB_URL}" /auth/logout "${STATE_JAR}")" || return 1
    [[ "${status}" == 200 || "${status}" == 303 ]] || { echo "POST /auth/logout: ${status}"; return 1; }
    expect_eq "GET / after logout" "$(curl -sS --max-time 10 -b "${STATE_JAR}" -o /dev/null -w '%{http_code}' \
        "${STACK_HUB_URL}/")" 303 || return 1
    # The journal reached NATS, through the password-protected connection.
    # shellcheck disable=SC2016 # expanded by the inner bash
    within 20 "the state hub published to NATS" bash -c \
        'curl -fsS --max-time 5 "$1/metrics" | grep -E "^[a-z_]*fanout_published_total(\{[^}]*\})? [1-9]"' \
        _ "${STACK_HUB_URL}"
}
check "logout with the CSRF token; the journal fans out to NATS (user and password)" logout_and_fanout

# ---------------------------------------------------------------------------
# The scan
# ---------------------------------------------------------------------------

# The hubs stop (their shutdown lines are output too); the logs are complete.
stop_hubs() {
    local hub
    while IFS= read -r hub; do
        stack_stop_domain_hub "${hub}" "${STACK_DIR}" >/dev/null 2>&1
    done < <(stack_domain_hubs "${STACK_DIR}")
    stack_stop_state_hub "${STACK_DIR}" >/dev/null 2>&1
}
check "the hubs stop" stop_hubs

LOGS=("${STACK_HUB_LOG}" "${STACK_DIR}/dev-hub.log" "${STACK_DIR}/ops-hub.log" "${HUBCTL_LOG}")
[[ ! -f "${STACK_DIR}/hubctl.stderr" ]] || LOGS+=("${STACK_DIR}/hubctl.stderr")

# debug_lines_of LOG: the DEBUG lines of LOG as ` DEBUG target: message`, whatever its format.
debug_lines_of() {
    if [[ "${LOG_FORMAT}" == json ]]; then
        jq -R -r 'fromjson? | select(.level == "DEBUG") | " DEBUG \(.target): \(.fields.message // "")"' "$1"
    else
        sed $'s/\x1b\\[[0-9;]*m//g' "$1" | grep ' DEBUG ' || true
    fi
}

# The logs must be at debug level, with the libraries' lines, or the scan proves little.
debug_lines() {
    local log target absent=""
    for log in "${STACK_HUB_LOG}" "${STACK_DIR}/dev-hub.log" "${STACK_DIR}/ops-hub.log"; do
        printf '%s: %s lines, %s DEBUG\n' "${log##*/}" "$(wc -l <"${log}")" "$(debug_lines_of "${log}" | wc -l)"
    done
    # ldap3 and openidconnect have no debug lines of their own: what they do shows in the
    # hubs' own lines and in hyper's and rustls'.
    debug_lines_of "${STACK_HUB_LOG}" >"${WORK}/state-hub.debug"
    for target in tokio_postgres hyper_util reqwest rustls actix_server async_nats; do
        grep -qE " ${target}(::[a-z0-9_:]+)?: " "${WORK}/state-hub.debug" || absent+=" ${target}"
    done
    [[ -z "${absent}" ]] || { echo "no debug lines in the state hub's log from:${absent}"; return 1; }
}
check "every hub logged at debug level, with the libraries' debug lines (postgres, HTTP, TLS, NATS)" \
    debug_lines

SCAN_OUT="${WORK}/scan.out"
# The scanner finds what is planted in a copy of a log, in the forms it looks for.
scanner_self_check() {
    local copy="${WORK}/planted.log" out="${WORK}/planted.out" token client rc=0 lines
    token="$(tr -d '[:space:]' <"${STACK_ALICE_TOKEN_FILE}")"
    client="$(tr -d '[:space:]' <"${STACK_DIR}/secrets/dev-hub.oidc-client-secret")"
    cp -- "${STACK_HUB_LOG}" "${copy}"
    lines="$(wc -l <"${copy}")"
    {
        printf 'DEBUG planted: request headers authorization=Bearer %s\n' "${token}"
        printf 'DEBUG planted: basic %s\n' "$(printf 'dev-hub:%s' "${client}" | base64 -w0)"
        printf 'DEBUG planted: truncated ...%s\n' "${token: -20}"
        printf 'DEBUG planted: %s\n' "$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' \
            "$(fixture_password alice)")"
        # A value the list does not hold, under a secret's name.
        printf 'DEBUG planted: parameters: [Object {"pkce_verifier": String("%s")}]\n' \
            "$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n')"
        # A JSON web token nobody listed (an id_token in a response body).
        printf 'TRACE planted: body {"x":"%s.%s.%s"}\n' "$(printf '{"alg":"RS256","kid":"k1"}' | base64 -w0 | tr '+/' '-_' | tr -d '=')" \
            "$(printf '{"sub":"alice","aud":"state-hub"}' | base64 -w0 | tr '+/' '-_' | tr -d '=')" \
            "$(openssl rand -base64 64 | tr '+/' '-_' | tr -d '=\n')"
    } >>"${copy}"
    python3 "${SCAN}" "${SECRETS}" "${copy}" >"${out}" 2>&1 || rc=$?
    cat "${out}"
    expect_eq "scanner exit status with planted secrets" "${rc}" 1 || return 1
    local n want
    for n in 1 2 3 4 5 6; do
        want="${copy}:$((lines + n)):"
        grep -qF -- "${want}" "${out}" || { echo "the scanner missed the secret planted at ${want}"; return 1; }
    done
    grep -F -- "${copy}:$((lines + 2)):" "${out}" | grep -q "dev-hub's OIDC client secret (base64)" \
        || { echo "the base64 Basic credential was not named"; return 1; }
    # The report masks what it finds.
    if grep -qF -- "${token}" "${out}" || grep -qF -- "${client}" "${out}"; then
        echo "the scanner printed a secret"
        return 1
    fi
}
check "self-check: secrets planted in a copy of the state hub's log (bearer, base64 Basic, tail, percent-encoded, an unknown PKCE verifier, a JWT) are found and masked" \
    scanner_self_check

no_secret_in_logs() {
    local rc=0 label value
    python3 "${SCAN}" "${SECRETS}" "${LOGS[@]}" >"${SCAN_OUT}" 2>&1 || rc=$?
    # The report itself must hold no secret.
    while IFS=$'\t' read -r label value; do
        if grep -qF -- "${value}" "${SCAN_OUT}"; then
            echo "the scan report holds ${label}"
            return 1
        fi
    done <"${SECRETS}"
    sed "s|${WORK}/||g" "${SCAN_OUT}" | head -n 200
    expect_eq "scanner exit status" "${rc}" 0
}
check "no secret of the run ($(wc -l <"${SECRETS}") values, each in many forms) in the hubs' and hubctl's output" \
    no_secret_in_logs

printf '# %d passed, %d failed (%d s); %s secrets; logs: %s\n' "${passed}" "${failed}" "${SECONDS}" \
    "$(wc -l <"${SECRETS}")" "$(du -ch "${LOGS[@]}" | tail -n 1 | cut -f1)"
[[ ${failed} -eq 0 ]]
