#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# The state hub in a real browser: starts the identity-enabled stack the demo
# runs (scripts/lib/stack.sh: LDAP and OIDC stand-ins, the issuer over HTTPS
# with a throwaway CA, a fresh database, the state hub from $HUB_BIN_DIR) on
# free loopback ports, then runs tests/browser with node's test runner, which
# drives Debian's Chromium through playwright-core: SSO login and the session
# cookie, decisions and the two-person rule, CSRF, refused and ended sessions,
# the CSP and the live feed, break-glass while the provider is down.
#
# Installs what it needs: the stand-ins' packages, chromium (Debian), the npm
# packages of tests/browser (npm ci). Never downloads a browser of its own.
# Environment: HUB_TEST_DATABASE_URL, HUB_BIN_DIR (tests/suites/README.md);
# HUB_BROWSER_TEST_TIMEOUT (seconds for the browser tests, default 120).
set -euo pipefail

SUITE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../scripts/lib/common.sh
source "${SUITE_DIR}/../../scripts/lib/common.sh"
# shellcheck source=../../scripts/lib/deps.sh
source "${SUITE_DIR}/../../scripts/lib/deps.sh"
# shellcheck source=../../scripts/lib/stack.sh
source "${SUITE_DIR}/../../scripts/lib/stack.sh"

BROWSER_DIR="${HUBPLANE_REPO}/tests/browser"
BIN_DIR="${HUB_BIN_DIR:-${HUBPLANE_REPO}/target/debug}"
TEST_TIMEOUT="${HUB_BROWSER_TEST_TIMEOUT:-120}"

mkdir -p "${HUBPLANE_REPO}/.tmp"
WORK="$(mktemp -d "${HUBPLANE_REPO}/.tmp/browser-suite.XXXXXX")"
STACK_DB_NAME=""

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [[ ${rc} -ne 0 && -d "${WORK}" ]]; then
        local log
        for log in "${WORK}/stack/state-hub.log" "${WORK}/stack/oidc/oidc.out"; do
            if [[ -s "${log}" ]]; then
                printf '# --- last lines of %s ---\n' "${log#"${WORK}"/}"
                tail -n 25 "${log}" | sed 's/^/#   /'
            fi
        done
    fi
    stop_leftover_browsers
    stack_down "${WORK}/stack" || true
    stack_drop_database || true
    rm -rf -- "${WORK}"
    return "${rc}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# stop_leftover_browsers: Chromium processes of this run that outlived node (killed by the
# time-out): they are the ones whose profile is under this run's TMPDIR, ${WORK}/tmp.
stop_leftover_browsers() {
    local cmdline pid
    for cmdline in /proc/[0-9]*/cmdline; do
        pid="${cmdline#/proc/}"
        pid="${pid%/cmdline}"
        if tr '\0' ' ' <"${cmdline}" 2>/dev/null | grep -qF -- "--user-data-dir=${WORK}/tmp/"; then
            kill -KILL "${pid}" 2>/dev/null || true
        fi
    done
}


# ensure_browser_tests: Debian's chromium, and tests/browser's npm packages when
# node_modules is missing or older than package-lock.json.
ensure_browser_tests() {
    ensure_debian_packages chromium
    [[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]] || hp_die "no chromium at ${CHROMIUM_PATH:-/usr/bin/chromium}"
    local stamp="${BROWSER_DIR}/node_modules/.package-lock.json"
    if [[ ! -f "${stamp}" || "${BROWSER_DIR}/package-lock.json" -nt "${stamp}" ]]; then
        hp_info "installing the browser tests' npm packages (npm ci)"
        local log="${WORK}/npm.log"
        if ! (cd "${BROWSER_DIR}" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
            npm ci --no-audit --no-fund --loglevel=error) >"${log}" 2>&1; then
            tail -n 40 "${log}" >&2
            hp_die "npm ci failed in ${BROWSER_DIR}"
        fi
    fi
}

[[ -x "${BIN_DIR}/state-hub" ]] || hp_die "no state-hub in ${BIN_DIR} (cargo build -p state-hub)"
[[ -n "${HUB_TEST_DATABASE_URL:-}" ]] || hp_die "HUB_TEST_DATABASE_URL is not set (tests/suites/README.md)"

hp_step "packages"
stack_ensure_deps
ensure_browser_tests
hp_info "$(chromium --version 2>/dev/null || true), playwright-core $(jq -r .version "${BROWSER_DIR}/node_modules/playwright-core/package.json")"

STACK_DB_NAME="hubplane_browser_$(date +%s)_${RANDOM}"
# Another suite may take a port between the check and the bind: then once more on other ports.
# stack_up runs in its own bash so that its errexit holds inside this `if`.
started=0
for attempt in 1 2 3; do
    if bash -c 'set -euo pipefail; source "$0"; stack_up "$@"' "${HUBPLANE_REPO}/scripts/lib/stack.sh" \
        --dir "${WORK}/stack" --tls \
        --hub-port "$(hp_free_port)" --oidc-port "$(hp_free_port)" --ldap-port "$(hp_free_port)" \
        --database "${STACK_DB_NAME}" --bin-dir "${BIN_DIR}" --log-filter "info"; then
        started=1
        break
    fi
    stack_down "${WORK}/stack"
    hp_warn "the stack did not start (attempt ${attempt} of 3)"
done
[[ ${started} -eq 1 ]] || hp_die "the stack did not start; see the errors above"
stack_load "${WORK}/stack"

hp_step "browser tests (node --test, at most ${TEST_TIMEOUT} s)"
# Chromium's profile goes to node's TMPDIR: under WORK, so a leftover is found and removed.
mkdir -p "${WORK}/tmp"
rc=0
(
    cd "${BROWSER_DIR}"
    TMPDIR="${WORK}/tmp" timeout --kill-after=10 "${TEST_TIMEOUT}" \
        node --test --test-reporter=tap --test-concurrency=1 hub.test.mjs
) >"${WORK}/tap.txt" 2>&1 || rc=$?
cat "${WORK}/tap.txt"

passed="$(grep -cE '^ok [0-9]+ ' "${WORK}/tap.txt" || true)"
failed="$(grep -cE '^not ok [0-9]+ ' "${WORK}/tap.txt" || true)"
if [[ ${rc} -eq 124 || ${rc} -eq 137 ]]; then
    printf 'not ok - the browser tests did not finish within %s s\n' "${TEST_TIMEOUT}"
    failed=$((failed + 1))
fi
printf '# browser: %d ok, %d not ok\n' "${passed}" "${failed}"
[[ ${rc} -eq 0 && ${failed} -eq 0 ]]
