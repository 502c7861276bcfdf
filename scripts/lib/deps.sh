#!/usr/bin/env bash
# shellcheck shell=bash
#
# Dependency helpers for Hubplane's scripts. Source it; do not execute it.
#
#   ensure_debian_packages PKG...
#       Installs the Debian packages that are not installed yet (checked with
#       dpkg-query). Runs `apt-get update` once per script run, and only when
#       something is missing; does nothing when everything is there.
#   ensure_cargo_nextest
#       Makes `cargo nextest` available (cargo install cargo-nextest --locked).
#       Returns non-zero when it is missing and cannot be installed.
#   ensure_cargo_fuzz
#       Makes cargo-fuzz (pinned: HP_CARGO_FUZZ_VERSION) available as `cargo fuzz`:
#       installs it with `cargo install --locked --root .tmp/cargo-tools` inside the
#       checkout when missing and puts that bin directory first on PATH.
#   ensure_rust_components COMPONENT...
#       rustup component add for rustfmt / clippy when `cargo fmt` / `cargo clippy`
#       are missing (only when rustup is there).

if [[ -n "${_HP_DEPS_SH:-}" ]]; then
    return 0
fi
_HP_DEPS_SH=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

_HP_APT_UPDATED=0

# debian_package_installed PKG: true when dpkg says PKG is installed.
debian_package_installed() {
    local status
    # shellcheck disable=SC2016 # ${Status} is a dpkg-query format field, not a shell expansion
    status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" || return 1
    [[ "${status}" == "install ok installed" ]]
}

ensure_debian_packages() {
    local pkg
    local -a missing=()

    if [[ $# -eq 0 ]]; then
        return 0
    fi
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        # Not a Debian-like system: we cannot check; the caller's own probes will
        # fail with a clearer message if something is really missing.
        hp_warn "no dpkg/apt-get here; not checking packages: $*"
        return 0
    fi
    for pkg in "$@"; do
        if ! debian_package_installed "${pkg}"; then
            missing+=("${pkg}")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi

    hp_info "installing Debian packages: ${missing[*]}"
    if [[ "${_HP_APT_UPDATED}" -eq 0 ]]; then
        hp_as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get -o DPkg::Lock::Timeout=600 -qq update >&2 \
            || hp_die "apt-get update failed"
        _HP_APT_UPDATED=1
    fi
    local log
    log="$(mktemp "${TMPDIR:-/tmp}/hubplane-apt.XXXXXX")"
    if ! hp_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 -q install -y --no-install-recommends "${missing[@]}" \
        >"${log}" 2>&1; then
        tail -n 40 "${log}" >&2
        rm -f -- "${log}"
        hp_die "apt-get install failed for: ${missing[*]}"
    fi
    rm -f -- "${log}"
}

ensure_cargo_nextest() {
    if cargo nextest --version >/dev/null 2>&1; then
        return 0
    fi
    hp_info "cargo-nextest is missing; installing it with cargo install (this takes a while)"
    if ! cargo install cargo-nextest --locked; then
        hp_warn "could not install cargo-nextest"
        return 1
    fi
    cargo nextest --version >/dev/null 2>&1
}

HP_CARGO_FUZZ_VERSION="${HP_CARGO_FUZZ_VERSION:-0.13.1}"

ensure_cargo_fuzz() {
    local root bin
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.tmp/cargo-tools"
    bin="${root}/bin"
    case ":${PATH}:" in
        *":${bin}:"*) ;;
        *) PATH="${bin}:${PATH}" && export PATH ;;
    esac
    if cargo fuzz --version 2>/dev/null | grep -qF "${HP_CARGO_FUZZ_VERSION}"; then
        return 0
    fi
    hp_info "installing cargo-fuzz ${HP_CARGO_FUZZ_VERSION} into ${root} (this takes a while)"
    if ! cargo install cargo-fuzz --locked --version "${HP_CARGO_FUZZ_VERSION}" --root "${root}"; then
        hp_warn "could not install cargo-fuzz ${HP_CARGO_FUZZ_VERSION}"
        return 1
    fi
    cargo fuzz --version >/dev/null 2>&1
}

ensure_rust_components() {
    local component
    for component in "$@"; do
        case "${component}" in
            rustfmt) cargo fmt --version >/dev/null 2>&1 && continue ;;
            clippy) cargo clippy --version >/dev/null 2>&1 && continue ;;
            *) ;;
        esac
        if command -v rustup >/dev/null 2>&1; then
            hp_info "adding rust component ${component}"
            rustup component add "${component}" || hp_die "rustup component add ${component} failed"
        else
            hp_die "cargo ${component} is missing and rustup is not available to add it"
        fi
    done
}
