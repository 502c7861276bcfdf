#!/usr/bin/env bash
# shellcheck shell=bash
#
# Check helpers for the shell suites (tests/suites/*.sh). Source it; do not execute it.
#
#   suite_init WORK BUDGET
#       Sets the scratch directory (check output goes to WORK/check.out) and the
#       deadline: BUDGET seconds from now. Resets the pass/fail counts.
#   check NAME CMD...
#       Runs CMD in this shell (so it may set variables), its output kept aside;
#       prints "ok - NAME", or "not ok - NAME" and that output. The checks build
#       on each other: after a failure the rest are skipped.
#   expect_eq WHAT ACTUAL EXPECTED
#   expect_le WHAT ACTUAL LIMIT / expect_ge WHAT ACTUAL LIMIT   (integers)
#   within SECONDS WHAT CMD...
#       Runs CMD every second until it succeeds; fails after SECONDS (capped by
#       the deadline), saying WHAT did not happen and what the last try printed.
#   suite_finish
#       Prints "# N passed, M failed (S s)"; returns 1 when a check failed.

if [[ -n "${_HP_SUITE_SH:-}" ]]; then
    return 0
fi
_HP_SUITE_SH=1

SUITE_WORK=""
SUITE_BUDGET=0
SUITE_DEADLINE=0
passed=0
failed=0

suite_init() {
    [[ $# -eq 2 && -d "$1" && "$2" =~ ^[0-9]+$ ]] || { echo "usage: suite_init WORK BUDGET" >&2; return 2; }
    SUITE_WORK="$1"
    SUITE_BUDGET="$2"
    SUITE_DEADLINE=$((SECONDS + $2))
    passed=0
    failed=0
}

check() {
    local name="$1"
    shift
    local rc=0
    if [[ ${failed} -gt 0 ]]; then
        printf 'ok - %s # SKIP an earlier check failed\n' "${name}"
        return 0
    fi
    if ((SECONDS >= SUITE_DEADLINE)); then
        failed=$((failed + 1))
        printf 'not ok - %s\n#   the suite ran out of its %s s budget\n' "${name}" "${SUITE_BUDGET}"
        return 0
    fi
    "$@" >"${SUITE_WORK}/check.out" 2>&1 || rc=$?
    if [[ ${rc} -eq 0 ]]; then
        passed=$((passed + 1))
        printf 'ok - %s\n' "${name}"
        # What a check prints with "# " in front is a figure worth keeping in the run's output.
        grep '^# ' "${SUITE_WORK}/check.out" || true
    else
        failed=$((failed + 1))
        printf 'not ok - %s\n' "${name}"
        sed 's/^/#   /' "${SUITE_WORK}/check.out"
    fi
}

expect_eq() {
    if [[ "$2" != "$3" ]]; then
        printf '%s: expected [%s], got [%s]\n' "$1" "$3" "$2"
        return 1
    fi
}

expect_le() {
    if ! [[ "$2" =~ ^-?[0-9]+$ ]] || (($2 > $3)); then
        printf '%s: expected at most %s, got [%s]\n' "$1" "$3" "$2"
        return 1
    fi
}

expect_ge() {
    if ! [[ "$2" =~ ^-?[0-9]+$ ]] || (($2 < $3)); then
        printf '%s: expected at least %s, got [%s]\n' "$1" "$3" "$2"
        return 1
    fi
}

within() {
    local seconds="$1" what="$2" limit
    shift 2
    limit=$((SECONDS + seconds))
    ((limit <= SUITE_DEADLINE)) || limit="${SUITE_DEADLINE}"
    while true; do
        if "$@" >"${SUITE_WORK}/within.out" 2>&1; then
            return 0
        fi
        if ((SECONDS >= limit)); then
            printf 'not within %s s: %s\n' "${seconds}" "${what}"
            sed 's/^/  last try: /' "${SUITE_WORK}/within.out" | tail -n 15
            return 1
        fi
        sleep 1
    done
}

suite_finish() {
    printf '# %d passed, %d failed (%d s)\n' "${passed}" "${failed}" "${SECONDS}"
    [[ ${failed} -eq 0 ]]
}
