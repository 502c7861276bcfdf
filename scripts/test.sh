#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Hubplane's full test suite: ./scripts/test.sh
#
#   1. Debian packages the tests need (postgresql-client, jq, curl, age), and the
#      identity stand-ins (slapd, the OIDC stand-in's npm packages: lib/standins.sh)
#   2. a PostgreSQL superuser URL in HUB_TEST_DATABASE_URL (scripts/lib/postgres.sh:
#      the given one, the local server on 127.0.0.1:5432, or a throwaway cluster)
#      and a NATS server with JetStream in HUB_TEST_NATS_URL (scripts/lib/nats.sh: the given
#      one, the local one on 127.0.0.1:4222, or Debian's nats-server started for the run)
#   3. cargo fmt --check, clippy -D warnings, build
#   4. cargo nextest (cargo test when nextest cannot be had), plus doc tests
#   5. every executable tests/suites/*.sh, each with HUB_TEST_DATABASE_URL and
#      HUB_BIN_DIR (the debug binaries); the last line is "N passed, M failed"
#
# Exits non-zero if any step or suite failed.
# Environment: HUB_TEST_DATABASE_URL, HUB_FORCE_THROWAWAY_PG=1 (see lib/postgres.sh),
# HUB_SUITE_TIMEOUT (seconds per shell suite, default 1200), CI=true.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/deps.sh
source "${SCRIPT_DIR}/lib/deps.sh"
# shellcheck source=lib/postgres.sh
source "${SCRIPT_DIR}/lib/postgres.sh"
# shellcheck source=lib/standins.sh
source "${SCRIPT_DIR}/lib/standins.sh"
# shellcheck source=lib/nats.sh
source "${SCRIPT_DIR}/lib/nats.sh"

cd "${HUBPLANE_REPO}"

if [[ "${CI:-}" == "true" ]]; then
    export CARGO_TERM_COLOR=never
fi

failed_steps=()

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    stop_nats
    stop_postgres
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_step NAME CMD...: runs CMD under a step header; records a failure and goes on.
run_step() {
    local name="$1"
    shift
    hp_step "${name}"
    printf '$ %s\n' "$*"
    local rc=0
    "$@" || rc=$?
    if [[ ${rc} -ne 0 ]]; then
        printf -- '--- step "%s" failed (exit %d)\n' "${name}" "${rc}"
        failed_steps+=("${name}")
        return 1
    fi
}

command -v cargo >/dev/null 2>&1 || hp_die "cargo not found on PATH"

hp_step "packages"
ensure_debian_packages postgresql-client jq curl ca-certificates age nats-server
ensure_rust_components rustfmt clippy
ensure_standins

hp_step "postgres"
ensure_postgres
export HUB_TEST_DATABASE_URL
printf 'HUB_TEST_DATABASE_URL=%s\n' "${HUB_TEST_DATABASE_URL}"

hp_step "nats"
ensure_nats
printf 'HUB_TEST_NATS_URL=%s\n' "${HUB_TEST_NATS_URL}"

run_step "fmt" cargo fmt --all -- --check || true
run_step "clippy" cargo clippy --workspace --all-targets --locked -- -D warnings || true
if ! run_step "build" cargo build --workspace --all-targets --locked; then
    hp_die "build failed; not running the tests"
fi

# Rust test counts, parsed from the runner's summary, for the closing "N passed, M failed" line.
rust_passed=0
rust_failed=0
test_log="$(mktemp)"

# run_tests CMD...: runs a test command, shows and keeps its output for the counts.
# shellcheck disable=SC2317 # invoked through run_step
run_tests() {
    local rc=0
    "$@" 2>&1 | tee "${test_log}" || rc=$?
    return "${rc}"
}

if ensure_cargo_nextest; then
    # nextest does not run doc tests; they run first so the closing summary is nextest's.
    run_step "doc tests" cargo test --workspace --locked --doc || true
    run_step "tests (nextest)" run_tests cargo nextest run --workspace --locked --no-fail-fast --no-tests=fail || true
    summary_line="$(grep -E '^ *Summary .* tests? run:' "${test_log}" | tail -n 1 || true)"
    rust_passed="$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"${summary_line}")"
    rust_failed="$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"${summary_line}")"
else
    hp_warn "cargo-nextest unavailable; falling back to cargo test"
    run_step "tests (cargo test)" run_tests cargo test --workspace --locked --no-fail-fast || true
    rust_passed="$(sed -nE 's/^test result: .* ([0-9]+) passed;.*/\1/p' "${test_log}" | awk '{ s += $1 } END { print s + 0 }')"
    rust_failed="$(sed -nE 's/^test result: .* ([0-9]+) failed;.*/\1/p' "${test_log}" | awk '{ s += $1 } END { print s + 0 }')"
fi
rust_passed="${rust_passed:-0}"
rust_failed="${rust_failed:-0}"
rm -f "${test_log}"

# Shell end-to-end suites.
suite_dir="${HUBPLANE_REPO}/tests/suites"
suites=()
if [[ -d "${suite_dir}" ]]; then
    for f in "${suite_dir}"/*.sh; do
        [[ -e "${f}" ]] || continue
        if [[ -x "${f}" ]]; then
            suites+=("${f}")
        else
            hp_warn "skipping ${f#"${HUBPLANE_REPO}"/}: not executable (chmod +x it)"
        fi
    done
fi

passed=0
failed=0
failed_suites=()
if [[ ${#suites[@]} -gt 0 ]]; then
    bin_dir="${CARGO_TARGET_DIR:-${HUBPLANE_REPO}/target}/debug"
    suite_timeout="${HUB_SUITE_TIMEOUT:-1200}"
    for suite in "${suites[@]}"; do
        name="${suite#"${HUBPLANE_REPO}"/}"
        hp_step "suite ${name}"
        start=${SECONDS}
        rc=0
        HUB_TEST_DATABASE_URL="${HUB_TEST_DATABASE_URL}" HUB_BIN_DIR="${bin_dir}" \
            timeout --kill-after=15 "${suite_timeout}" "${suite}" </dev/null || rc=$?
        elapsed=$((SECONDS - start))
        if [[ ${rc} -eq 0 ]]; then
            passed=$((passed + 1))
            printf -- '--- PASS %s (%ds)\n' "${name}" "${elapsed}"
        else
            failed=$((failed + 1))
            failed_suites+=("${name}")
            if [[ ${rc} -eq 124 ]]; then
                printf -- '--- FAIL %s (timed out after %ss)\n' "${name}" "${suite_timeout}"
            else
                printf -- '--- FAIL %s (exit %d, %ds)\n' "${name}" "${rc}" "${elapsed}"
            fi
        fi
    done
fi

hp_step "summary"
status=0
if [[ ${#failed_steps[@]} -gt 0 ]]; then
    printf 'failed steps: %s\n' "${failed_steps[*]}"
    status=1
else
    printf 'all cargo steps passed\n'
fi
if [[ ${#failed_suites[@]} -gt 0 ]]; then
    printf 'failed suites: %s\n' "${failed_suites[*]}"
    status=1
fi
if [[ ${#suites[@]} -gt 0 ]]; then
    printf 'shell suites: %d passed, %d failed\n' "${passed}" "${failed}"
fi
# The closing line: every Rust test and shell suite.
printf '%d passed, %d failed\n' "$((rust_passed + passed))" "$((rust_failed + failed))"
exit "${status}"
