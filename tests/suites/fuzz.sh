#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Fuzzing smoke run (docs/fuzzing.md). Builds the cargo-fuzz targets under fuzz/ (optimised,
# debug assertions and overflow checks on) and runs each for a bounded time from the seed
# corpus in fuzz/corpus/<target>:
#   manifest  manifest JSON -> parse -> validate; valid manifests survive a round trip;
#   config    TOML + HUB_* overrides -> load -> validate; refusals carry their reasons;
#   cursor    pagination cursors: decode(encode(x)) == x, other listings refused;
#   ssrf      the SSRF address classifier, the allowlist check and the capability URL check.
# Fails when a target panics, trips an assertion, times out or runs out of memory; the input
# that did it is kept under .tmp/fuzz-suite/artifacts/<target>/ (reproduce with
# `cargo fuzz run <target> <file>` in fuzz/, see docs/fuzzing.md). New corpus entries go to
# .tmp/fuzz-suite/corpus/<target>/, never into the checked-in seeds.
# Stable toolchain only: cargo-fuzz's nightly flags are enabled with RUSTC_BOOTSTRAP=1.
# Environment (all optional):
#   HUB_FUZZ_SECONDS     seconds per target (default 20)
#   HUB_FUZZ_TARGETS     space-separated targets (default: all four)
#   HUB_FUZZ_SANITIZER   address (default) or none
#   HUB_FUZZ_JOBS        cargo build jobs (default: cargo's)
#   HUB_FUZZ_OPT_LEVEL   opt-level of the build (default 1; 3 for long runs)
# Needs neither HUB_TEST_DATABASE_URL nor HUB_BIN_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../../scripts/lib/deps.sh
source "${ROOT}/scripts/lib/deps.sh"

SECONDS_PER_TARGET="${HUB_FUZZ_SECONDS:-20}"
SANITIZER="${HUB_FUZZ_SANITIZER:-address}"
read -r -a TARGETS <<<"${HUB_FUZZ_TARGETS:-manifest config cursor ssrf}"
SCRATCH="${ROOT}/.tmp/fuzz-suite"

[[ "${SECONDS_PER_TARGET}" =~ ^[1-9][0-9]*$ ]] || hp_die "HUB_FUZZ_SECONDS must be a positive integer"
case "${SANITIZER}" in
    address | none) ;;
    *) hp_die "HUB_FUZZ_SANITIZER must be address or none" ;;
esac

ensure_cargo_fuzz || hp_die "cargo-fuzz is not available"

rm -rf -- "${SCRATCH}"
mkdir -p "${SCRATCH}"

# cargo-fuzz passes -Z flags (sanitizer, coverage instrumentation) to the stable compiler.
export RUSTC_BOOTSTRAP=1
FUZZ_FLAGS=(--release --debug-assertions --sanitizer "${SANITIZER}")
# The suite builds from cold on every CI run: at opt-level 1 the build takes about a third of
# the time of level 3 (6 against 21 minutes on a busy 2-core machine) and the targets still run
# at 1,500-25,000 inputs a second. The long runs in docs/fuzzing.md use level 3.
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${HUB_FUZZ_OPT_LEVEL:-1}"
if [[ -n "${HUB_FUZZ_JOBS:-}" ]]; then
    export CARGO_BUILD_JOBS="${HUB_FUZZ_JOBS}"
fi

cd "${ROOT}/fuzz"

hp_step "building the fuzz targets (${TARGETS[*]}; sanitizer ${SANITIZER})"
build_started="$(date +%s)"
for target in "${TARGETS[@]}"; do
    [[ -f "fuzz_targets/${target}.rs" ]] || hp_die "no fuzz target ${target}"
done
if ! cargo fuzz build "${FUZZ_FLAGS[@]}" >"${SCRATCH}/build.log" 2>&1; then
    tail -n 60 "${SCRATCH}/build.log" >&2
    hp_die "building the fuzz targets failed (log: ${SCRATCH}/build.log)"
fi
hp_info "built in $(($(date +%s) - build_started)) s"

failed=()
summary=()
for target in "${TARGETS[@]}"; do
    corpus="${SCRATCH}/corpus/${target}"
    artifacts="${SCRATCH}/artifacts/${target}"
    log="${SCRATCH}/${target}.log"
    mkdir -p "${corpus}" "${artifacts}"
    hp_step "fuzzing ${target} for ${SECONDS_PER_TARGET} s"
    rc=0
    # The scratch corpus comes first: libFuzzer writes what it finds there, and only reads
    # the checked-in seeds. The outer timeout is a backstop for a wedged run.
    timeout --kill-after=10 "$((SECONDS_PER_TARGET + 120))" \
        cargo fuzz run "${FUZZ_FLAGS[@]}" "${target}" "${corpus}" "corpus/${target}" -- \
        -max_total_time="${SECONDS_PER_TARGET}" \
        -timeout=10 \
        -rss_limit_mb=2048 \
        -max_len=16384 \
        -print_final_stats=1 \
        -artifact_prefix="${artifacts}/" \
        </dev/null >"${log}" 2>&1 || rc=$?
    found="$(find "${artifacts}" -type f | sort)"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "${log}" | tail -n 1)"
    cov="$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "${log}" | tail -n 1 || true)"
    units="$(find "${corpus}" -type f | wc -l)"
    line="${target}: rc ${rc}, ${execs:-?} execs, ${rate:-?} exec/s, ${cov:-cov: ?}, ${units} new corpus entries"
    summary+=("${line}")
    if [[ "${rc}" -ne 0 || -n "${found}" ]]; then
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|^==[0-9]+==ERROR|Test unit written' "${log}" | head -n 20 >&2 || true
        tail -n 30 "${log}" >&2
        hp_warn "${target} FAILED (rc ${rc}); log ${log}; inputs kept: ${found:-none}"
        failed+=("${target}")
    elif [[ -z "${execs}" || "${execs}" -eq 0 ]]; then
        tail -n 30 "${log}" >&2
        hp_warn "${target} ran no inputs; log ${log}"
        failed+=("${target}")
    else
        hp_info "${line}"
    fi
done

hp_step "summary"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    hp_die "fuzz targets failed: ${failed[*]} (inputs under ${SCRATCH}/artifacts/)"
fi
hp_info "no crashes in ${#TARGETS[@]} targets"
