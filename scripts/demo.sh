#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Hubplane demo: ./scripts/demo.sh [--port BASE] [--no-wait] [--skip-build] [--bin-dir DIR] [--tls] | --stop
#
# Builds the release binaries and starts the whole management plane from
# scripts/lib/stack.sh (the setup tests/suites/demo-stack.sh and the browser
# suite test): the LDAP stand-in (LLDAP's layout, the fixture users of
# tests/standins/directory.json), the OIDC stand-in (configured like Authelia)
# with a client per hub, a fresh database per hub, the state hub with web login
# (SSO, break-glass) and an age identity for capability credentials, the
# cluster stand-in (the k3s application cluster behind HTTPS, signed by the
# test CA), and the domain hubs dev-hub and ops-hub. Through hubctl it
# registers the hub kinds, the hubs' service tokens and the cluster's
# capabilities (deployments, nodes, costs: requested by bob, completed by
# alice, with the cluster's token as credential), activates the hubs'
# manifests once they submitted them, and waits until their widgets show fresh
# data. Then it seeds the state hub with a workstream, a workplan, tasks,
# decisions and events, checks the journal's hash chain (hubctl audit verify),
# prints the URLs, the logins and what to try, and keeps running until Ctrl-C /
# SIGTERM, reporting the cluster and the OIDC provider going down and coming
# back (with --no-wait: exits and leaves everything running until
# ./scripts/demo.sh --stop). Everything it writes lives in .tmp/demo/.
#
# The issuer is plain http on loopback (the hubs' dev_mode allows that): the
# browser shows the provider's login form without a certificate warning.
# --tls serves it over https with the stand-ins' test CA instead (the hubs
# trust it through identity.oidc.ca_file; the browser warns).
#
# Ports, from BASE (default 8480):
#   BASE      state hub (web UI and API)
#   BASE+1    dev-hub
#   BASE+2    ops-hub
#   BASE+10   OIDC stand-in (Authelia)
#   BASE+11   LDAP stand-in (LLDAP)
#   BASE+12   cluster stand-in (https)
#
# Adding a service: start it from scripts/lib/stack.sh, so the demo and the
# suites run the same setup; stack_down stops it.
set -euo pipefail
shopt -s inherit_errexit

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/deps.sh
source "${SCRIPT_DIR}/lib/deps.sh"
# shellcheck source=lib/postgres.sh
source "${SCRIPT_DIR}/lib/postgres.sh"
# shellcheck source=lib/stack.sh
source "${SCRIPT_DIR}/lib/stack.sh"

cd "${HUBPLANE_REPO}"

usage() {
    cat <<'USAGE'
Usage: ./scripts/demo.sh [--port BASE] [--no-wait] [--skip-build] [--bin-dir DIR] [--tls]
       ./scripts/demo.sh --stop

  --port BASE    first port to use (default 8480): the state hub listens on BASE,
                 dev-hub on BASE+1, ops-hub on BASE+2, the OIDC stand-in on BASE+10,
                 the LDAP stand-in on BASE+11, the cluster stand-in on BASE+12
  --no-wait      start, seed, print the summary, then exit 0 and leave the demo
                 running (stop it with ./scripts/demo.sh --stop)
  --skip-build   use the release binaries already in target/release
  --bin-dir DIR  use the binaries in DIR (state-hub, domain-hub, hubctl; e.g.
                 target/debug) and build nothing
  --tls          serve the OIDC stand-in over https with the test CA (the browser
                 will warn about its certificate) instead of plain http on loopback
  --stop         stop a demo left running by --no-wait, and exit
  -h, --help     this text

Environment: HUB_TEST_DATABASE_URL (a PostgreSQL superuser URL to use),
HUB_FORCE_THROWAWAY_PG=1 (start a private PostgreSQL), CARGO_TARGET_DIR.
USAGE
}

BASE_PORT=8480
WAIT=1
BUILD=1
TLS=0
STOP=0
BIN_DIR_ARG=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --port)
            [[ $# -ge 2 ]] || { usage >&2; hp_die "--port needs a value"; }
            BASE_PORT="$2"
            shift 2
            ;;
        --port=*)
            BASE_PORT="${1#--port=}"
            shift
            ;;
        --no-wait)
            WAIT=0
            shift
            ;;
        --skip-build)
            BUILD=0
            shift
            ;;
        --bin-dir)
            [[ $# -ge 2 ]] || { usage >&2; hp_die "--bin-dir needs a value"; }
            BIN_DIR_ARG="$2"
            BUILD=0
            shift 2
            ;;
        --bin-dir=*)
            BIN_DIR_ARG="${1#--bin-dir=}"
            BUILD=0
            shift
            ;;
        --tls)
            TLS=1
            shift
            ;;
        --stop)
            STOP=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            hp_die "unknown argument: $1"
            ;;
    esac
done
if ! [[ "${BASE_PORT}" =~ ^[0-9]+$ ]] || ((BASE_PORT < 1024 || BASE_PORT > 65000)); then
    hp_die "--port must be a number between 1024 and 65000, got: ${BASE_PORT}"
fi

DEMO_DIR="${HUBPLANE_REPO}/.tmp/demo"
TARGET_DIR="${CARGO_TARGET_DIR:-${HUBPLANE_REPO}/target}"
[[ "${TARGET_DIR}" == /* ]] || TARGET_DIR="${HUBPLANE_REPO}/${TARGET_DIR}"
BIN_DIR="${TARGET_DIR}/release"
if [[ -n "${BIN_DIR_ARG}" ]]; then
    [[ -d "${BIN_DIR_ARG}" ]] || hp_die "--bin-dir: no directory ${BIN_DIR_ARG}"
    BIN_DIR="$(cd "${BIN_DIR_ARG}" && pwd -P)"
fi
STATE_HUB_BIN="${BIN_DIR}/state-hub"
DOMAIN_HUB_BIN="${BIN_DIR}/domain-hub"
HUBCTL_BIN="${BIN_DIR}/hubctl"

STATE_HUB_PORT="${BASE_PORT}"
DEV_HUB_PORT=$((BASE_PORT + 1))
OPS_HUB_PORT=$((BASE_PORT + 2))
OIDC_PORT=$((BASE_PORT + 10))
LDAP_PORT=$((BASE_PORT + 11))
CLUSTER_PORT=$((BASE_PORT + 12))
STATE_DB_NAME="hubplane_demo_state"
# The domain hubs' databases: hubplane_demo_dev_hub, hubplane_demo_ops_hub.
DOMAIN_DB_PREFIX="hubplane_demo"
DOMAIN_HUBS=(dev-hub ops-hub)
# Seconds between the state hub's capability probes.
PROBE_INTERVAL=10
# Written by --no-wait: the throwaway PostgreSQL's directory, when the demo started one.
DETACHED_PG_FILE="${DEMO_DIR}/postgres.dir"

# rel PATH: PATH relative to the checkout when it is inside it.
rel() {
    printf '%s\n' "${1#"${HUBPLANE_REPO}"/}"
}

# stop_demo: stops a demo that --no-wait left running (the stack in .tmp/demo, and the
# throwaway PostgreSQL if it started one). Idempotent.
stop_demo() {
    stack_down "${DEMO_DIR}"
    if [[ -f "${DETACHED_PG_FILE}" ]]; then
        stop_detached_postgres "$(cat "${DETACHED_PG_FILE}")"
        rm -f -- "${DETACHED_PG_FILE}"
    fi
}

DETACH=0
CLEANED_UP=0
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [[ "${CLEANED_UP}" -eq 1 || "${DETACH}" -eq 1 ]]; then
        return "${rc}"
    fi
    CLEANED_UP=1
    hp_step "stopping the demo"
    stack_down "${DEMO_DIR}"
    stop_postgres
    return "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# hubctl helpers
# ---------------------------------------------------------------------------

# hubctl_json ARGS...: prints the output of `hubctl --output json ARGS`; on a
# failure shows the command and its error output and exits.
hubctl_json() {
    local out rc=0 err="${DEMO_DIR}/hubctl.stderr"
    out="$("${HUBCTL_BIN}" --output json "$@" 2>"${err}")" || rc=$?
    if ((rc != 0)); then
        {
            printf 'hubctl --output json'
            printf ' %q' "$@"
            printf '\nfailed with exit %d:\n' "${rc}"
            cat "${err}"
            [[ -z "${out}" ]] || printf '%s\n' "${out}"
        } >&2
        hp_die "seeding the demo failed"
    fi
    printf '%s\n' "${out}"
}

# hubctl_quiet ARGS...: runs hubctl_json ARGS and discards its output. (Not
# `hubctl_json ... >/dev/null`: an exit under that redirection would also
# silence the cleanup trap's output.)
hubctl_quiet() {
    local _out
    _out="$(hubctl_json "$@")"
}

# hubctl_id ARGS...: runs hubctl_json ARGS and prints the .id of its result.
hubctl_id() {
    local json id
    json="$(hubctl_json "$@")"
    if ! id="$(jq -er '.id' <<<"${json}")" || [[ "${id}" == "null" ]]; then
        printf 'no .id in the output of hubctl %s:\n%s\n' "$*" "${json}" >&2
        hp_die "seeding the demo failed"
    fi
    printf '%s\n' "${id}"
}

# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------

prepare_packages() {
    hp_step "packages"
    stack_ensure_deps
}

prepare_postgres() {
    hp_step "postgres"
    ensure_postgres
}

build_binaries() {
    if [[ "${BUILD}" -eq 1 ]]; then
        hp_step "build (release)"
        cargo build --release --locked -p state-hub -p domain-hub -p hubctl
    elif [[ -n "${BIN_DIR_ARG}" ]]; then
        hp_step "build skipped (--bin-dir $(rel "${BIN_DIR}"))"
    else
        hp_step "build skipped (--skip-build)"
    fi
    local bin
    for bin in "${STATE_HUB_BIN}" "${DOMAIN_HUB_BIN}" "${HUBCTL_BIN}"; do
        [[ -x "${bin}" ]] || hp_die "missing ${bin}; run without --skip-build / --bin-dir"
    done
}

start_stack() {
    local tls=() port
    [[ "${TLS}" -eq 0 ]] || tls=(--tls)
    # Every port first, so that a busy one stops the demo before anything starts.
    for port in "${STATE_HUB_PORT}" "${DEV_HUB_PORT}" "${OPS_HUB_PORT}" "${OIDC_PORT}" "${LDAP_PORT}" "${CLUSTER_PORT}"; do
        if hp_port_in_use "${port}"; then
            hp_die "port ${port} on 127.0.0.1 is already in use (the demo uses BASE..BASE+2 and BASE+10..BASE+12; pick another BASE with --port)"
        fi
    done
    stack_up --dir "${DEMO_DIR}" --hub-port "${STATE_HUB_PORT}" --oidc-port "${OIDC_PORT}" \
        --ldap-port "${LDAP_PORT}" --database "${STATE_DB_NAME}" --bin-dir "${BIN_DIR}" \
        --client "dev-hub=http://127.0.0.1:${DEV_HUB_PORT}" \
        --client "ops-hub=http://127.0.0.1:${OPS_HUB_PORT}" \
        --probe-interval "${PROBE_INTERVAL}" "${tls[@]}"
    # The cluster, the registrations, dev-hub and ops-hub with their manifests activated;
    # returns once every widget shows fresh data. The shipped manifests poll every 60 s
    # (dev-hub) and 30 s (ops-hub).
    stack_plane_up --cluster-port "${CLUSTER_PORT}" --database-prefix "${DOMAIN_DB_PREFIX}" \
        --hub "dev-hub=${DEV_HUB_PORT}" --hub "ops-hub=${OPS_HUB_PORT}" \
        --heartbeat-seconds 10 --callable-refresh-seconds 5
}

seed_state_hub() {
    hp_step "seeding the state hub with hubctl"
    export HUBCTL_URL="${STACK_HUB_URL}"
    export HUBCTL_TOKEN_FILE="${STACK_TOKEN_FILE}"

    local ws wp t_host t_lldap t_caps t_runbooks t_backups d_sso d_caps d_db

    ws="$(hubctl_id workstreams create --slug platform --title "Platform foundation" \
        --description "Everything the platform team needs before the first application runs on the cluster: the management host, its own directory and SSO, and the capability contracts with the cluster.")"
    hp_info "workstream platform: ${ws}"

    wp="$(hubctl_id workplans create --workstream "${ws}" --title "Stand up the management plane" \
        --description "Provision the management host, wire LLDAP and Authelia, register the cluster's capability interfaces, and write the runbooks operators need on a bad day.")"
    hp_info "workplan: ${wp}"

    t_host="$(hubctl_id tasks create --workplan "${wp}" \
        --title "Provision the management host with Terraform and nixos-anywhere" \
        --assignee alice --status progress)"
    t_lldap="$(hubctl_id tasks create --workplan "${wp}" \
        --title "Configure LLDAP groups and the break-glass account" \
        --assignee bob --status todo)"
    t_caps="$(hubctl_id tasks create --workplan "${wp}" \
        --title "Register the k3s cluster's capability interfaces" \
        --status wait --blocking-reason "Waiting for the cluster team to publish the OpenAPI contracts" \
        --needs-human)"
    t_runbooks="$(hubctl_id tasks create --workplan "${wp}" \
        --title "Write runbooks S0-S6 for operators" \
        --assignee alice --status todo)"
    t_backups="$(hubctl_id tasks create --workplan "${wp}" \
        --title "Schedule nightly PostgreSQL backups off the host" \
        --status todo)"
    hp_info "tasks: ${t_host} ${t_lldap} ${t_caps} ${t_runbooks} ${t_backups}"

    d_sso="$(hubctl_id decisions propose --title "Which SSO provider fronts the management plane?" \
        --context "Hub users log in against the management host's own directory, never the cluster's. Authelia is small and reads LLDAP directly; Keycloak brings its own user store and a JVM." \
        --option "Authelia" --option "Keycloak" --task "${t_lldap}")"
    hubctl_quiet decisions resolve "${d_sso}" --choice "Authelia" \
        --rationale "Fits the 2-core host, keeps LLDAP the only user store, and NixOS has a maintained module for it."
    hp_info "decision (resolved): ${d_sso}"

    d_caps="$(hubctl_id decisions propose --title "One capability gateway or one registration per service?" \
        --context "Hubs reach the cluster only through registered capability interfaces. A single gateway is one contract to review; per-service registrations keep failures and ownership separate." \
        --option "Single capability gateway" --option "One registration per service" --task "${t_caps}")"
    hubctl_quiet decisions escalate "${d_caps}" \
        --reason "Changes what the cluster team has to run and be on call for; needs a human sign-off from both teams."
    hp_info "decision (escalated): ${d_caps}"

    d_db="$(hubctl_id decisions propose --title "Where does the hubs' PostgreSQL run?" \
        --context "Every hub keeps its state in PostgreSQL. The governor must not run on the governed, so the cluster's databases are out." \
        --option "Local PostgreSQL on the management host" --option "Managed database outside the host" \
        --made --choice "Local PostgreSQL on the management host" \
        --rationale "Keeps the management plane self-contained: it works while the cluster and any outside service are down; backups leave the host nightly.")"
    hp_info "decision (made): ${d_db}"

    hubctl_quiet events post --type deploy.started \
        --summary "Staging deploy of state-hub 0.1.0 started" \
        --detail '{"env":"staging","service":"state-hub","version":"0.1.0"}'
    hubctl_quiet events post --type note.added \
        --summary "LLDAP layout checked: people in ou=people, groups in ou=groups" \
        --detail '{"topic":"lldap","by":"bob"}'
    hubctl_quiet events post --type review.requested \
        --summary "Review requested: runbook S1 (host provisioning)" \
        --detail '{"document":"docs/runbooks/S1.md","reviewer":"bob"}'
    hubctl_quiet events post --type note.added \
        --summary "Cluster team expects the capability contracts next week" \
        --detail '{"topic":"capabilities","by":"alice"}'
    hp_info "events: deploy.started, note.added x2, review.requested"

    # The architecture's open decisions (docs/architecture.md, Open decisions), once each: a
    # decision titled `OA-Dnn: …` counts as imported, so seeding again proposes nothing twice.
    hubctl_quiet decisions import "${HUBPLANE_REPO}/docs/decisions/open-decisions.json"
    hp_info "open decisions: OA-D01 … OA-D05 (docs/decisions/open-decisions.json)"

    # Escalated decisions are approved by someone other than their proposer: alice's token
    # (stack_seed_plane made it) for the walkthrough.
    ESCALATED_DECISION="${d_caps}"

    hp_step "hubctl audit verify"
    "${HUBCTL_BIN}" audit verify || hp_die "hubctl audit verify failed"
}

# login_rows: one line per fixture user: uid, password, groups, and the role the hubs' default
# mapping gives (admin = hub_admins, member = hub_members, viewer = hub_viewers; the same on
# every hub), plus what the demo's config adds (break-glass; ops-hub's freeze scope).
login_rows() {
    jq -r '
        . as $d
        | $d.users[]
        | .uid as $u
        | [$d.groups[] | select(.members | index($u)) | .name] as $g
        | ([if ($g | index("hub_admins")) then "admin"
            elif ($g | index("hub_members")) then "member"
            elif ($g | index("hub_viewers")) then "viewer"
            else empty end]
           + (if ($g | index("hub_admins")) then ["may freeze on ops-hub"] else [] end)
           + (if ($g | index("hub_breakglass")) then ["may use break-glass"] else [] end)) as $r
        | [$u, .password, (if ($g | length) == 0 then "(none)" else ($g | join(", ")) end),
           (if ($r | length) == 0 then "no access (gets the 403 page)" else ($r | join(", ")) end)]
        | @tsv' "${HUBPLANE_REPO}/tests/standins/directory.json" \
        | sort -t$'\t' -k1,1 \
        | awk -F'\t' '{ printf "   %-7s %-18s %-29s %s\n", $1, $2, $3, $4 }'
}

# poll_seconds HUB: how often the hub polls (the shortest interval of its manifest).
poll_seconds() {
    jq -r '[.capabilities[].poll_seconds] | min' "${HUBPLANE_REPO}/hubs/domain-hub/manifests/$1.json"
}

print_banner() {
    local hubctl_rel issuer_note stop_line dev_url ops_url dev_token ops_token alice bob admin
    local dev_poll ops_poll
    hubctl_rel="$(rel "${HUBCTL_BIN}")"
    dev_poll="$(poll_seconds dev-hub)"
    ops_poll="$(poll_seconds ops-hub)"
    dev_url="$(stack_domain_url dev-hub)"
    ops_url="$(stack_domain_url ops-hub)"
    dev_token="$(rel "$(stack_domain_token_file dev-hub)")"
    ops_token="$(rel "$(stack_domain_token_file ops-hub)")"
    alice="$(rel "${STACK_ALICE_TOKEN_FILE}")"
    bob="$(rel "${STACK_BOB_TOKEN_FILE}")"
    admin="$(rel "${STACK_TOKEN_FILE}")"
    if [[ "${STACK_TLS}" -eq 1 ]]; then
        issuer_note="https with the test CA below (--tls): the hubs trust it through ca_file; your
                    browser does not, so it warns on the provider's login page (or import ca.pem)."
    else
        issuer_note="plain http on loopback (dev_mode), so the browser shows the provider's login
                    form without a certificate warning; --tls serves it over https with the test CA."
    fi
    if [[ "${WAIT}" -eq 1 ]]; then
        stop_line="Ctrl-C (or SIGTERM)"
    else
        stop_line="./scripts/demo.sh --stop"
    fi
    cat <<BANNER

================================================================================
 Hubplane demo is up: the state hub, dev-hub and ops-hub against the cluster
--------------------------------------------------------------------------------
 state hub          ${STACK_HUB_URL}/            (log in with single sign-on)
   hub registry     ${STACK_HUB_URL}/registry    (dev-hub, ops-hub: health, manifests)
   capabilities     ${STACK_HUB_URL}/capabilities (deployments, nodes, costs: probes every ${PROBE_INTERVAL} s)
   API, OpenAPI     ${STACK_HUB_URL}/api/v1, ${STACK_HUB_URL}/api/v1/openapi.json
   health           ${STACK_HUB_URL}/healthz, /readyz, /metrics
 dev-hub            ${dev_url}/            (widget: deployed versions; polls every ${dev_poll} s)
 ops-hub            ${ops_url}/            (widgets: deployments, nodes; polls every ${ops_poll} s;
                                                   the freeze action on /actions)
 cluster (k3s)      ${STACK_CLUSTER_URL}   (stand-in; capabilities under /deployments, /nodes, /costs;
                    bearer token in $(rel "${STACK_CLUSTER_TOKEN_FILE}"), CA $(rel "${STACK_CA_FILE}"))
 OIDC provider      ${STACK_ISSUER}   (stand-in for Authelia; log: $(rel "${STACK_OIDC_DIR}")/oidc.log)
 LDAP directory     ${STACK_LDAP_URL}   (stand-in for LLDAP; bind uid=admin,ou=people,dc=example,dc=com,
                    password in $(rel "${STACK_LDAP_DIR}")/admin.password)

 issuer             ${issuer_note}
 configs, logs      $(rel "${DEMO_DIR}")/{state-hub,dev-hub,ops-hub}.{toml,log}, cluster/cluster.log
 databases          ${STACK_DB_NAME}, ${DOMAIN_DB_PREFIX}_dev_hub, ${DOMAIN_DB_PREFIX}_ops_hub

 Web logins, the same on every hub (tests/standins/directory.json; test passwords only)
   user    password           groups                        role
$(login_rows)

 API tokens
   state hub        admin (bootstrap) ${admin}
                    alice (admin)     ${alice}
                    bob (member)      ${bob}
   dev-hub          alice             ${dev_token}
   ops-hub          alice (+ freeze)  ${ops_token}

 Try it
   export HUBCTL_URL=${STACK_HUB_URL} HUBCTL_TOKEN_FILE=${admin}
   ${hubctl_rel} hubs list                      # dev-hub, ops-hub: passing, manifest 1.0.0
   ${hubctl_rel} capabilities list              # completed, healthy
   ${hubctl_rel} events tail                    # in a second terminal: everything below lands here
   curl -H "Authorization: Bearer \$(cat ${ops_token})" ${ops_url}/api/v1/widgets

 Annotate: on ${ops_url}/annotations (or under a widget) as alice or bob, or
   curl -H "Authorization: Bearer \$(cat ${ops_token})" -H 'Content-Type: application/json' \\
     -d '{"category":"incident","target":"deployments","text":"shop/web is one replica short"}' \\
     ${ops_url}/api/v1/annotations
   -> the state hub's journal gets annotation.added from hub:ops-hub (also while the
      state hub is down: it waits in ops-hub's outbox and arrives once it is back)

 Freeze a namespace on ops-hub: it needs a decision someone else approved.
   In the state hub as bob: propose "Freeze shop during incident 42" (options freeze, wait),
   escalate it; as alice: resolve it (choice freeze). Or with hubctl:
   D=\$(HUBCTL_TOKEN_FILE=${bob} ${hubctl_rel} -o json decisions propose \\
       --title "Freeze shop during incident 42" --option freeze --option wait | jq -r .id)
   HUBCTL_TOKEN_FILE=${bob} ${hubctl_rel} decisions escalate "\$D" --reason "changes the cluster"
   HUBCTL_TOKEN_FILE=${alice} ${hubctl_rel} decisions resolve "\$D" --choice freeze --rationale "incident 42"
   then on ${ops_url}/actions as alice: parameters {"namespace":"shop","reason":"incident 42"},
   decision id \$D, "Run freeze"; or
   curl -H "Authorization: Bearer \$(cat ${ops_token})" -H 'Content-Type: application/json' \\
     -d "{\\"params\\":{\\"namespace\\":\\"shop\\",\\"reason\\":\\"incident 42\\"},\\"decision_id\\":\\"\$D\\"}" \\
     ${ops_url}/api/v1/actions/freeze
   -> 202, action.executed in the journal; the deployments widget shows shop frozen

 Stop the cluster and watch:
   tests/standins/cluster/stop.sh --dir $(rel "${STACK_CLUSTER_DIR}")
   -> the widgets turn "unreachable since …" within a poll interval (ops-hub ${ops_poll} s, dev-hub ${dev_poll} s)
      and keep showing the last data; the hubs' pages and /readyz still answer; the state hub's
      ${STACK_HUB_URL}/capabilities page shows unhealthy within ${PROBE_INTERVAL} s; the journal gets
      capability.unhealthy and capability.unreachable
   start it again with:
   $(stack_cluster_start_command "${DEMO_DIR}")

 Break-glass (logging in while single sign-on is down):
   tests/standins/oidc/stop.sh --dir $(rel "${STACK_OIDC_DIR}")   # stops the pid in $(rel "${STACK_OIDC_DIR}")/oidc.pid
   open ${STACK_HUB_URL}/auth/break-glass, log in as erin / erin-standin-pw
     -> the dashboard with a "break-glass" badge, and an escalated decision
        "Review break-glass login of erin" for someone else (alice) to resolve;
        bob is refused (not in hub_breakglass), and so is everyone while SSO answers
   bring single sign-on back (it gets a new signing key, as after a key rotation):
   $(stack_oidc_start_command "${DEMO_DIR}")

 Two-person approval in the state hub:
   ${hubctl_rel} decisions resolve ${ESCALATED_DECISION} --choice "One registration per service" --rationale "ok"
       # refused: admin proposed it; approve as alice (or as alice in the web UI):
   HUBCTL_TOKEN_FILE=${alice} ${hubctl_rel} decisions resolve ${ESCALATED_DECISION} \\
       --choice "One registration per service" --rationale "Separate failure domains"
   ${hubctl_rel} audit verify
--------------------------------------------------------------------------------
 stop with: ${stop_line}
================================================================================
BANNER
}

# pid_in FILE: the pid written in FILE, or nothing.
pid_in() {
    cat "$1" 2>/dev/null || true
}

# alive FILE: true while the pid in FILE runs.
alive() {
    local pid
    pid="$(pid_in "$1")"
    [[ -n "${pid}" ]] && hp_pid_running "${pid}"
}

# widget_states HUB: "name=state ..." of the hub's widgets, or "unknown".
widget_states() {
    stack_widgets "$1" 2>/dev/null \
        | jq -r '[.items[] | "\(.name): \(.freshness.text)"] | join("; ")' 2>/dev/null \
        || printf 'unknown'
}

# widget_summary HUB: the states only (what changes when the cluster comes and goes).
widget_summary() {
    stack_widgets "$1" 2>/dev/null | jq -r '[.items[].freshness.state] | join(",")' 2>/dev/null \
        || printf 'unknown'
}

# capability_health: "name=health ..." of the state hub's registrations.
capability_health() {
    "${HUBCTL_BIN}" --url "${STACK_HUB_URL}" --token-file "${STACK_TOKEN_FILE}" --output json \
        --timeout 5 capabilities list 2>/dev/null </dev/null \
        | jq -r '[(if type == "array" then . else .items end)[] | "\(.name)=\(.health)"] | join(" ")' 2>/dev/null \
        || printf 'unknown'
}

# Runs until Ctrl-C / SIGTERM (the traps stop everything), or until a hub or the directory
# dies. The OIDC and the cluster stand-in may come and go: stopping them is the point.
wait_forever() {
    printf '\nRunning. Press Ctrl-C to stop.\n'
    local oidc_up=1 cluster_up=1 now_up hub tick=0 caps="" now_caps
    local -A widgets=()
    for hub in "${DOMAIN_HUBS[@]}"; do
        widgets[${hub}]="$(widget_summary "${hub}")"
    done
    caps="$(capability_health)"
    while true; do
        if ! alive "${DEMO_DIR}/state-hub.pid"; then
            tail -n 40 "${STACK_HUB_LOG}" >&2 || true
            hp_die "the state hub exited unexpectedly (log: $(rel "${STACK_HUB_LOG}"))"
        fi
        for hub in "${DOMAIN_HUBS[@]}"; do
            if ! alive "${DEMO_DIR}/${hub}.pid"; then
                tail -n 40 "${DEMO_DIR}/${hub}.log" >&2 || true
                hp_die "${hub} exited unexpectedly (log: $(rel "${DEMO_DIR}/${hub}.log"))"
            fi
        done
        if ! alive "${STACK_LDAP_DIR}/slapd.pid"; then
            hp_die "the LDAP stand-in exited unexpectedly (log: $(rel "${STACK_LDAP_DIR}")/slapd.log)"
        fi
        now_up=0
        alive "${STACK_OIDC_DIR}/oidc.pid" && now_up=1
        if [[ "${now_up}" -ne "${oidc_up}" ]]; then
            if [[ "${now_up}" -eq 1 ]]; then
                hp_info "$(date +%T) the OIDC stand-in is back: single sign-on works again"
            else
                hp_info "$(date +%T) the OIDC stand-in is down: break-glass login is possible now"
            fi
            oidc_up="${now_up}"
        fi
        now_up=0
        alive "${STACK_CLUSTER_DIR}/cluster.pid" && now_up=1
        if [[ "${now_up}" -ne "${cluster_up}" ]]; then
            if [[ "${now_up}" -eq 1 ]]; then
                hp_info "$(date +%T) the cluster stand-in is back: the widgets turn fresh at their next poll"
            else
                hp_info "$(date +%T) the cluster stand-in is down: watch the widgets turn 'unreachable since …'"
                hp_info "  start it again with: $(stack_cluster_start_command "${DEMO_DIR}")"
            fi
            cluster_up="${now_up}"
        fi
        # What the hubs show, every 3 s: report changes.
        if ((tick % 3 == 0)); then
            for hub in "${DOMAIN_HUBS[@]}"; do
                now_caps="$(widget_summary "${hub}")"
                if [[ "${now_caps}" != "${widgets[${hub}]}" ]]; then
                    widgets[${hub}]="${now_caps}"
                    hp_info "$(date +%T) ${hub} widgets: $(widget_states "${hub}")"
                fi
            done
            now_caps="$(capability_health)"
            if [[ "${now_caps}" != "${caps}" ]]; then
                caps="${now_caps}"
                hp_info "$(date +%T) state hub capabilities: ${caps}"
            fi
        fi
        tick=$((tick + 1))
        sleep 1 &
        wait $! || true
    done
}

main() {
    if [[ "${STOP}" -eq 1 ]]; then
        DETACH=1 # nothing of this run to clean up
        hp_step "stopping the demo in $(rel "${DEMO_DIR}")"
        stop_demo
        exit 0
    fi
    mkdir -p "${DEMO_DIR}"
    chmod 0700 "${DEMO_DIR}"
    command -v cargo >/dev/null 2>&1 || [[ "${BUILD}" -eq 0 ]] || hp_die "cargo not found on PATH"

    # A demo left running by --no-wait goes first: same ports, same directory.
    stop_demo
    prepare_packages
    prepare_postgres
    build_binaries
    start_stack
    seed_state_hub
    print_banner

    if [[ "${WAIT}" -eq 0 ]]; then
        detach_postgres "${DETACHED_PG_FILE}"
        DETACH=1
        printf '\n--no-wait: the demo keeps running; stop it with: ./scripts/demo.sh --stop\n'
        exit 0
    fi
    wait_forever
}

main
