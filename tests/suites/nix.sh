#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# The NixOS deployment (flake.nix, nixos-modules/, secrets/), checked without Nix builds:
# every .nix file parses with Debian's nix-instantiate and passes nixpkgs-fmt and deadnix; the
# shared hardening attrset, rendered into the units of both hubs, scores exposure <= 1.5 in
# `systemd-analyze security --offline`; the settings the profile and the modules give each hub
# (nixos-modules/lib.nix, evaluated without nixpkgs) render to TOML that the hubs' own
# `configtest` accepts; the modules' assertions catch contradictory settings; secrets.nix lists
# exactly the secrets the profile expects. What needs a Nix host (building the packages, the
# real module system, the VM test) is listed in docs/deploy.md.
#
# Installs what it needs: Debian's nix-bin, openssl and python3; nixpkgs-fmt and deadnix with
# `cargo install --locked` into .tmp/tools in the checkout (kept between runs, git-ignored).
set -euo pipefail

SUITE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../scripts/lib/common.sh
source "${SUITE_DIR}/../../scripts/lib/common.sh"
# shellcheck source=../../scripts/lib/deps.sh
source "${SUITE_DIR}/../../scripts/lib/deps.sh"

REPO="${HUBPLANE_REPO}"
SUPPORT="${REPO}/tests/support/nix"
BIN_DIR="${HUB_BIN_DIR:-${REPO}/target/debug}"
TOOLS="${REPO}/.tmp/tools"
NIXPKGS_FMT_VERSION="1.3.0"
DEADNIX_VERSION="1.3.1"

ensure_debian_packages nix-bin openssl python3 systemd git
for bin in state-hub domain-hub hubctl; do
    [[ -x "${BIN_DIR}/${bin}" ]] || hp_die "${BIN_DIR}/${bin} is missing; build first (cargo build) or set HUB_BIN_DIR"
done

mkdir -p "${REPO}/.tmp"
WORK="$(mktemp -d "${REPO}/.tmp/nix-suite.XXXXXX")"

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    rm -rf -- "${WORK}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ensure_tool NAME VERSION: NAME from crates.io into .tmp/tools, unless that version is there.
ensure_tool() {
    local name="$1" version="$2" installed=""
    if [[ -x "${TOOLS}/bin/${name}" ]]; then
        installed="$("${TOOLS}/bin/${name}" --version 2>/dev/null || true)"
    fi
    if [[ "${installed}" == *" ${version}"* ]]; then
        return 0
    fi
    hp_info "installing ${name} ${version} into ${TOOLS} (cargo install --locked)"
    CARGO_TARGET_DIR="${WORK}/cargo-target" cargo install --locked --quiet --root "${TOOLS}" "${name}@${version}" >&2 \
        || hp_die "cargo install ${name}@${version} failed"
}
ensure_tool nixpkgs-fmt "${NIXPKGS_FMT_VERSION}"
ensure_tool deadnix "${DEADNIX_VERSION}"

# Debian's nix.conf names a `nixbld` build group that does not exist here; nothing is built.
export NIX_CONFIG="build-users-group ="
# The hubs must not pick up a HUB_* override or credentials from whoever runs the suite.
while IFS= read -r var; do unset "${var}"; done < <(compgen -e | grep -E '^(HUB_|CREDENTIALS_DIRECTORY$)' | grep -v '^HUB_BIN_DIR$' || true)

passed=0
failed=0

# check NAME CMD...: runs CMD in this shell (so it may set variables), its output kept aside;
# prints "ok - NAME", or "not ok - NAME" and that output.
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

# nix_json EXPR: evaluates a Nix expression (strictly) to JSON on stdout.
nix_json() {
    nix-instantiate --eval --strict --json --expr "$1"
}

cd "${REPO}"
mapfile -t NIX_FILES < <(git ls-files --cached --others --exclude-standard -- '*.nix' | sort)

# --- syntax and style -----------------------------------------------------------------------

every_file_parses() {
    [[ ${#NIX_FILES[@]} -ge 10 ]] || {
        echo "found only ${#NIX_FILES[@]} .nix files: ${NIX_FILES[*]}"
        return 1
    }
    local file bad=0
    for file in "${NIX_FILES[@]}"; do
        nix-instantiate --parse "${file}" >/dev/null || bad=1
    done
    return "${bad}"
}
check "every .nix file parses with nix-instantiate --parse (${#NIX_FILES[@]} files)" every_file_parses
check "nixpkgs-fmt --check passes on every .nix file" "${TOOLS}/bin/nixpkgs-fmt" --check "${NIX_FILES[@]}"
check "deadnix --fail finds no unused binding in any .nix file" "${TOOLS}/bin/deadnix" --fail "${NIX_FILES[@]}"

flake_shape() {
    local shape
    shape="$(nix_json 'let f = import ./flake.nix; in {
        inputs = builtins.attrNames f.inputs;
        nixpkgs = f.inputs.nixpkgs.url;
        follows = [ f.inputs.agenix.inputs.nixpkgs.follows f.inputs.disko.inputs.nixpkgs.follows ];
        outputArgs = builtins.attrNames (builtins.functionArgs f.outputs);
        vmTestArgs = builtins.attrNames (builtins.functionArgs (import ./tests/nixos/management-plane.nix));
      }')"
    SHAPE="${shape}" python3 - <<'EOF'
import json, os, re
s = json.loads(os.environ["SHAPE"])
assert s["inputs"] == ["agenix", "disko", "nixpkgs"], s["inputs"]
assert re.fullmatch(r"github:NixOS/nixpkgs/nixos-\d\d\.\d\d", s["nixpkgs"]), s["nixpkgs"]
assert s["follows"] == ["nixpkgs", "nixpkgs"], s["follows"]
assert s["outputArgs"] == ["agenix", "disko", "nixpkgs", "self"], s["outputArgs"]
assert s["vmTestArgs"] == ["pkgs", "self"], s["vmTestArgs"]
EOF
}
check "flake.nix: inputs nixpkgs (a NixOS release branch), agenix and disko following it" flake_shape

# --- hardening ------------------------------------------------------------------------------

hardening_is_plain_data() {
    nix-instantiate --eval --strict --json nixos-modules/hardening.nix >"${WORK}/hardening.json"
    python3 - "${WORK}/hardening.json" <<'EOF'
import json, sys
h = json.load(open(sys.argv[1]))
assert isinstance(h, dict) and h, h
for k, v in h.items():
    ok = isinstance(v, (bool, str, int)) or (isinstance(v, list) and all(isinstance(i, str) for i in v))
    assert ok, f"{k} = {v!r}: a unit setting must be a scalar or a list of strings"
for must in ["DynamicUser", "NoNewPrivileges", "ProtectSystem", "SystemCallFilter", "RestrictAddressFamilies"]:
    assert must in h, f"{must} missing"
EOF
    # Both hub modules build their unit through common.service, which starts from this attrset.
    grep -q 'serviceConfig = hubLib.hardening // {' nixos-modules/common.nix
    [[ "$(grep -c 'common.service {' nixos-modules/state-hub.nix nixos-modules/domain-hub.nix | awk -F: '{ s += $2 } END { print s }')" -eq 2 ]]
}
check "hardening.nix evaluates (nix-instantiate --eval --strict --json) to one attrset both hub units use" hardening_is_plain_data

# exposure UNIT BINARY CREDENTIAL...: renders the unit and requires exposure <= 1.5.
exposure() {
    local unit="$1" binary="$2"
    shift 2
    python3 "${SUPPORT}/render_unit.py" "${WORK}/hardening.json" "${unit}" "${binary}" "$@" \
        >"${WORK}/${unit}.service"
    systemd-analyze security --offline=true --threshold=15 "${WORK}/${unit}.service" \
        >"${WORK}/${unit}.security" 2>&1 || {
        cat "${WORK}/${unit}.security"
        return 1
    }
    local level
    level="$(grep -o 'Overall exposure level for [^:]*: [0-9.]*' "${WORK}/${unit}.security" | awk '{ print $NF }')"
    [[ -n "${level}" ]] || {
        cat "${WORK}/${unit}.security"
        return 1
    }
    printf '%s' "${level}" >"${WORK}/${unit}.level"
}
for spec in "state-hub:state-hub:bootstrap-admin-token database-password oidc-client-secret ldap-bind-password age-identity" \
    "domain-hub-ops-hub:domain-hub:state-hub-token database-password oidc-client-secret ldap-bind-password"; do
    IFS=: read -r unit binary credentials <<<"${spec}"
    # shellcheck disable=SC2086 # the credential names are words
    check "systemd-analyze security --offline --threshold=15 passes for ${unit}.service" \
        exposure "${unit}" "/nix/store/00000000000000000000000000000000-${binary}/bin/${binary}" ${credentials}
    if [[ -f "${WORK}/${unit}.level" ]]; then
        printf '# %s.service exposure: %s (threshold 1.5)\n' "${unit}" "$(cat "${WORK}/${unit}.level")"
    fi
done

# --- module logic (nixos-modules/lib.nix, no nixpkgs needed) ---------------------------------

SAMPLES="import ./tests/support/nix/samples.nix { caFile = \"${WORK}/ca.pem\"; clusterCaFile = \"${WORK}/ca.pem\"; manifestDir = \"${REPO}/hubs/domain-hub/manifests\"; credentialsDir = \"${WORK}/credentials\"; }"

assertions_catch_contradictions() {
    nix_json "(${SAMPLES}).problems" >"${WORK}/problems.json"
    python3 - "${WORK}/problems.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
expect = {
    "profile-state-hub": [],
    "profile-ops-hub": [],
    "http-issuer-outside-dev-mode": ["identity.oidc.issuer is plain http"],
    "break-glass-without-ldap": ["break_glass.group is set, but break-glass logins bind to LDAP"],
    "open-firewall-on-loopback": ["openFirewall is set, but settings.server.listen (127.0.0.1:8080) is a loopback address"],
    "oidc-without-client-secret": ["oidcClientSecretFile"],
    "domain-hub-without-token": ["stateHubTokenFile is not set"],
    "nats-without-url": ["settings.nats.enabled is set but settings.nats.url is not"],
    "nats-user-without-password": ["natsPasswordFile"],
}
for case, needles in expect.items():
    got = p[case]
    assert len(got) == len(needles), f"{case}: expected {len(needles)} problem(s), got {got}"
    for needle, message in zip(needles, got):
        assert needle in message, f"{case}: {message!r} does not say {needle!r}"
        assert message.startswith("services.sample"), f"{case}: {message!r} does not name the option"
EOF
}
check "the modules' assertions refuse contradictory settings, each with a message naming the option" assertions_catch_contradictions

warnings_name_inline_secrets() {
    nix_json "(${SAMPLES}).warnings" >"${WORK}/warnings.json"
    python3 - "${WORK}/warnings.json" <<'EOF'
import json, sys
w = json.load(open(sys.argv[1]))
assert w["profile-state-hub"] == [], w["profile-state-hub"]
text = "\n".join(w["inline-secrets"])
for needle in ["bootstrapAdminTokenFile is (or is copied into) the Nix store", "database.url contains a password",
               "auth.bootstrap_admin_token_file names a secret file directly"]:
    assert needle in text, f"no warning says {needle!r}:\n{text}"
EOF
}
check "the modules warn about secrets in the Nix store, inline passwords and *_file keys that bypass LoadCredential" warnings_name_inline_secrets

secrets_nix_matches_the_profile() {
    local listed expected
    listed="$(nix_json 'builtins.attrNames (import ./secrets/secrets.nix)')"
    # shellcheck disable=SC2016 # ${s.name} is Nix interpolation
    expected="$(nix_json 'let l = import ./nixos-modules/lib.nix; in map (s: "${s.name}.age") (l.managementPlaneSecrets { domainHubs = builtins.attrNames (import ./nixos-modules/hosts/mgmt/hubs.nix); })')"
    LISTED="${listed}" EXPECTED="${expected}" python3 - <<'EOF'
import json, os
listed, expected = json.loads(os.environ["LISTED"]), json.loads(os.environ["EXPECTED"])
assert sorted(listed) == sorted(expected), f"secrets.nix {sorted(listed)} != profile {sorted(expected)}"
assert len(expected) == len(set(expected)), "a secret is listed twice"
EOF
    nix_json 'builtins.all (s: builtins.length s.publicKeys >= 2) (builtins.attrValues (import ./secrets/secrets.nix))' | grep -qx true
}
check "secrets/secrets.nix lists exactly the profile's secrets, each for operators and the host" secrets_nix_matches_the_profile

# --- the rendered settings load with the hubs' own parsers -----------------------------------

make_fixtures() {
    mkdir -p "${WORK}/credentials"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 -subj "/CN=Hubplane nix suite CA" \
        -keyout "${WORK}/ca-key.pem" -out "${WORK}/ca.pem" 2>/dev/null
    (
        umask 077
        cd "${WORK}/credentials"
        printf 'hpt_%s\n' "$(openssl rand -hex 24)" >bootstrap-admin-token
        printf 'hpt_%s\n' "$(openssl rand -hex 24)" >state-hub-token
        openssl rand -hex 24 >oidc-client-secret
        openssl rand -hex 16 >ldap-bind-password
        "${BIN_DIR}/hubctl" secret keygen --out age-identity >/dev/null
        "${BIN_DIR}/hubctl" secret keygen --out age-identity-retired-1 >/dev/null
    )
    local hub
    for hub in state-hub state-hub-rotating dev-hub ops-hub; do
        nix_json "(${SAMPLES}).settings.${hub}" >"${WORK}/${hub}.json"
        python3 "${SUPPORT}/json_to_toml.py" <"${WORK}/${hub}.json" >"${WORK}/${hub}.toml"
    done
}
check "the settings the profile gives each hub render to TOML (state-hub, dev-hub, ops-hub)" make_fixtures

# configtest BINARY TOML: the hub's own parser and validation, with the credentials a unit gets.
configtest() {
    local out
    out="$(CREDENTIALS_DIRECTORY="${WORK}/credentials" "${BIN_DIR}/$1" --config "$2" configtest 2>&1)" || {
        printf '%s\n' "${out}"
        return 1
    }
    printf '%s\n' "${out}"
    grep -qx 'config ok' <<<"${out}"
}
check "state-hub configtest accepts the profile's state hub settings (config ok)" configtest state-hub "${WORK}/state-hub.toml"
check "state-hub configtest accepts them during an age identity rotation (config ok)" configtest state-hub "${WORK}/state-hub-rotating.toml"
check "domain-hub configtest accepts the profile's dev-hub settings (config ok)" configtest domain-hub "${WORK}/dev-hub.toml"
check "domain-hub configtest accepts the profile's ops-hub settings (config ok)" configtest domain-hub "${WORK}/ops-hub.toml"

configtest_refuses_unknown_keys() {
    local hub bad out rc
    for hub in state-hub:state-hub ops-hub:domain-hub; do
        bad="${WORK}/${hub%%:*}-typo.toml"
        sed 's/^listen = /listen_address = /' "${WORK}/${hub%%:*}.toml" >"${bad}"
        rc=0
        out="$(CREDENTIALS_DIRECTORY="${WORK}/credentials" "${BIN_DIR}/${hub##*:}" --config "${bad}" configtest 2>&1)" || rc=$?
        if [[ ${rc} -eq 0 ]] || ! grep -q 'listen_address' <<<"${out}"; then
            printf '%s: expected a refusal naming listen_address, got exit %s: %s\n' "${hub}" "${rc}" "${out}"
            return 1
        fi
    done
}
check "configtest refuses a key the hubs do not know (the check above has teeth)" configtest_refuses_unknown_keys

configtest_needs_the_credentials() {
    local out rc=0
    out="$(CREDENTIALS_DIRECTORY="${WORK}/no-credentials" "${BIN_DIR}/domain-hub" --config "${WORK}/ops-hub.toml" configtest 2>&1)" || rc=$?
    if [[ ${rc} -eq 0 ]] || ! grep -q 'state-hub-token' <<<"${out}" || ! grep -q 'oidc-client-secret' <<<"${out}"; then
        printf 'expected a refusal naming the missing credentials, got exit %s: %s\n' "${rc}" "${out}"
        return 1
    fi
}
check "without its LoadCredential files a hub's configtest names each missing credential" configtest_needs_the_credentials

printf '%s passed, %s failed\n' "${passed}" "${failed}"
[[ ${failed} -eq 0 ]]
