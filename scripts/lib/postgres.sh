#!/usr/bin/env bash
# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
#
# PostgreSQL for Hubplane's tests and demo. Source it; do not execute it.
#
#   ensure_postgres
#       Exports HUB_TEST_DATABASE_URL, a superuser URL of a reachable server:
#         1. $HUB_TEST_DATABASE_URL, if it is set and answers `select 1`;
#         2. postgres://postgres@127.0.0.1:5432/postgres, if it answers;
#         3. otherwise a throwaway cluster started from $HUBPLANE_REPO/.tmp/pg
#            (installs Debian's postgresql packages if needed).
#       HUB_FORCE_THROWAWAY_PG=1 skips 1 and 2. HUB_PG_PORT picks the first port
#       tried for the throwaway cluster (default 55432; the next free one of
#       100 is used).
#   stop_postgres
#       Stops and deletes the throwaway cluster that ensure_postgres started in
#       this shell, and nothing else. Idempotent: call it from an EXIT trap.
#   detach_postgres FILE
#       Leaves the throwaway cluster started in this shell running after the
#       shell exits (stop_postgres no longer stops it) and writes its directory
#       to FILE; does nothing when no throwaway cluster runs. For
#       `demo.sh --no-wait`.
#   stop_detached_postgres DIR
#       Stops and deletes the throwaway cluster in DIR that detach_postgres
#       left running. Idempotent.
#
#   Sets HUB_PG_THROWAWAY=1 when a throwaway cluster is running (0 otherwise),
#   and HUB_PG_LOG to its log file.

if [[ -n "${_HP_POSTGRES_SH:-}" ]]; then
    return 0
fi
_HP_POSTGRES_SH=1

# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=deps.sh
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"

HUB_PG_DEFAULT_URL="postgres://postgres@127.0.0.1:5432/postgres"
HUB_PG_THROWAWAY=0
HUB_PG_LOG=""
_HP_PG_RUN_DIR=""    # the throwaway cluster's directory (data/, postgres.log, owner)
_HP_PG_SOCK_DIR=""   # its socket directory, when it had to live outside the data dir
_HP_PG_BIN=""        # directory with initdb, pg_ctl
_HP_PG_OWNER_PID=""  # the shell that started it: only that shell stops it

# pg_url_works URL: true when URL accepts a connection and runs a query.
pg_url_works() {
    PGCONNECT_TIMEOUT=5 psql "$1" -X -A -t -q -v ON_ERROR_STOP=1 -c 'select 1' >/dev/null 2>&1
}

# pg_url_is_superuser URL
pg_url_is_superuser() {
    local su
    su="$(PGCONNECT_TIMEOUT=5 psql "$1" -X -A -t -q -c "select current_setting('is_superuser')" 2>/dev/null)" || return 1
    [[ "${su}" == "on" ]]
}

# pg_url_with_database URL DBNAME: URL with its database name replaced.
pg_url_with_database() {
    local url="$1" db="$2"
    local re='^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$'
    if [[ "${url}" =~ ${re} ]]; then
        printf '%s/%s%s\n' "${BASH_REMATCH[1]}" "${db}" "${BASH_REMATCH[4]}"
    else
        hp_warn "not a postgres:// URL: ${url}"
        return 1
    fi
}

_hp_pg_find_bin() {
    local dir
    # Newest installed major version first.
    while IFS= read -r dir; do
        if [[ -x "${dir}/initdb" && -x "${dir}/pg_ctl" ]]; then
            _HP_PG_BIN="${dir}"
            return 0
        fi
    done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -rV)
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        _HP_PG_BIN="$(dirname "$(command -v initdb)")"
        return 0
    fi
    return 1
}

# _hp_pg_as_owner CMD...: runs CMD as the cluster's owner (postgres when we are root).
_hp_pg_as_owner() {
    if [[ "${EUID}" -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Removes throwaway clusters left behind by runs that died without cleaning up
# (their starting shell is gone and their postmaster is not running).
_hp_pg_reap_stale() {
    local base="$1" dir owner pm
    for dir in "${base}"/cluster.*; do
        [[ -d "${dir}" ]] || continue
        owner="$(cat "${dir}/owner" 2>/dev/null || true)"
        if [[ -n "${owner}" ]] && kill -0 "${owner}" 2>/dev/null; then
            continue
        fi
        pm="$(head -n 1 "${dir}/data/postmaster.pid" 2>/dev/null || true)"
        if [[ -n "${pm}" ]] && kill -0 "${pm}" 2>/dev/null; then
            hp_warn "a leftover throwaway PostgreSQL (pid ${pm}) still runs from ${dir}; stop it with: pg_ctl -D ${dir}/data stop"
            continue
        fi
        rm -rf -- "${dir}"
    done
}

_hp_pg_start_throwaway() {
    local base="${HUBPLANE_REPO}/.tmp/pg"
    local run_dir data sock_dir port first_port tries conf_dir

    ensure_debian_packages postgresql-client
    if ! _hp_pg_find_bin; then
        ensure_debian_packages postgresql postgresql-client
        _hp_pg_find_bin || hp_die "initdb/pg_ctl not found even after installing postgresql"
    fi

    if [[ "${EUID}" -eq 0 ]] && ! getent passwd postgres >/dev/null; then
        hp_info "creating system user postgres"
        useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
            --shell /usr/sbin/nologin postgres
    fi

    mkdir -p "${base}"
    _hp_pg_reap_stale "${base}"
    run_dir="$(mktemp -d "${base}/cluster.XXXXXX")"
    # The cluster's owner must be able to reach the run dir; a checkout under a
    # private home (mode 0700) is not reachable for the postgres user.
    if [[ "${EUID}" -eq 0 ]]; then
        chown postgres: "${run_dir}"
        if ! runuser -u postgres -- test -w "${run_dir}"; then
            rm -rf -- "${run_dir}"
            hp_warn "user postgres cannot reach ${base}; using a directory under ${TMPDIR:-/tmp} instead"
            run_dir="$(mktemp -d "${TMPDIR:-/tmp}/hubplane-pg.XXXXXX")"
            chown postgres: "${run_dir}"
        fi
    fi
    _HP_PG_RUN_DIR="${run_dir}"
    _HP_PG_OWNER_PID="${BASHPID}"
    printf '%s\n' "$$" >"${run_dir}/owner"
    data="${run_dir}/data"
    HUB_PG_LOG="${run_dir}/postgres.log"

    # Unix socket paths are limited to 107 bytes; keep the socket in the data
    # dir when it fits, else in a short private directory.
    sock_dir="${data}"
    if (( ${#data} + 20 > 107 )); then
        sock_dir="$(mktemp -d /tmp/hp-pgsock.XXXXXX)"
        if [[ "${EUID}" -eq 0 ]]; then
            chown postgres: "${sock_dir}"
        fi
        _HP_PG_SOCK_DIR="${sock_dir}"
    fi

    hp_info "initdb ${data} (PostgreSQL from ${_HP_PG_BIN})"
    if ! _hp_pg_as_owner "${_HP_PG_BIN}/initdb" -D "${data}" --auth=trust -U postgres \
        --encoding=UTF8 --locale=C >"${run_dir}/initdb.log" 2>&1; then
        cat "${run_dir}/initdb.log" >&2
        hp_die "initdb failed"
    fi
    # Settings live in an included file so a port retry only rewrites that file.
    printf "include 'hubplane.conf'\n" | _hp_pg_as_owner tee -a "${data}/postgresql.conf" >/dev/null
    conf_dir="${sock_dir//\'/\'\'}"

    first_port="${HUB_PG_PORT:-55432}"
    port="${first_port}"
    for ((tries = 0; tries < 100; tries++, port++)); do
        if hp_port_in_use "${port}"; then
            continue
        fi
        _hp_pg_as_owner tee "${data}/hubplane.conf" >/dev/null <<CONF
# written by scripts/lib/postgres.sh: a throwaway cluster for tests and the demo
listen_addresses = '127.0.0.1'
port = ${port}
unix_socket_directories = '${conf_dir}'
max_connections = 200
CONF
        hp_info "starting throwaway PostgreSQL on 127.0.0.1:${port} (log: ${HUB_PG_LOG})"
        rm -f -- "${HUB_PG_LOG}"
        if _hp_pg_as_owner "${_HP_PG_BIN}/pg_ctl" -D "${data}" -l "${HUB_PG_LOG}" -w -t 60 start >/dev/null 2>&1; then
            break
        fi
        # Lost a race for the port, or something else: look at the log.
        if grep -q 'could not bind\|Address already in use' "${HUB_PG_LOG}" 2>/dev/null; then
            hp_warn "port ${port} got taken; trying the next one"
            continue
        fi
        tail -n 30 "${HUB_PG_LOG}" >&2 || true
        hp_die "pg_ctl start failed"
    done
    if (( tries >= 100 )); then
        hp_die "no free port in ${first_port}..$((first_port + 99)) for a throwaway PostgreSQL"
    fi
    HUB_PG_THROWAWAY=1

    HUB_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:${port}/postgres"
    local i
    for ((i = 0; i < 60; i++)); do
        if pg_url_works "${HUB_TEST_DATABASE_URL}"; then
            export HUB_TEST_DATABASE_URL HUB_PG_THROWAWAY HUB_PG_LOG
            return 0
        fi
        sleep 0.5
    done
    tail -n 30 "${HUB_PG_LOG}" >&2 || true
    hp_die "throwaway PostgreSQL did not accept connections within 30 s"
}

ensure_postgres() {
    if ! command -v psql >/dev/null 2>&1; then
        ensure_debian_packages postgresql-client
    fi
    if [[ "${HUB_PG_THROWAWAY}" -eq 1 ]] && pg_url_works "${HUB_TEST_DATABASE_URL:-}"; then
        return 0 # already started one in this shell
    fi

    if [[ "${HUB_FORCE_THROWAWAY_PG:-0}" != 1 ]]; then
        local url
        for url in "${HUB_TEST_DATABASE_URL:-}" "${HUB_PG_DEFAULT_URL}"; do
            [[ -n "${url}" ]] || continue
            if pg_url_works "${url}"; then
                if ! pg_url_is_superuser "${url}"; then
                    hp_warn "${url} works but is not a superuser; tests that create databases will fail"
                fi
                HUB_TEST_DATABASE_URL="${url}"
                export HUB_TEST_DATABASE_URL
                hp_info "using PostgreSQL at ${url}"
                return 0
            fi
            hp_info "no PostgreSQL answering at ${url}"
        done
    fi
    _hp_pg_start_throwaway
    hp_info "using throwaway PostgreSQL at ${HUB_TEST_DATABASE_URL}"
}

stop_postgres() {
    local run_dir="${_HP_PG_RUN_DIR}"
    [[ -n "${run_dir}" ]] || return 0
    # Only the shell that started the cluster stops it (not a subshell).
    [[ "${_HP_PG_OWNER_PID}" == "${BASHPID}" ]] || return 0
    _HP_PG_RUN_DIR=""

    if [[ -f "${run_dir}/data/postmaster.pid" ]]; then
        hp_info "stopping throwaway PostgreSQL (${run_dir})"
        if ! _hp_pg_as_owner "${_HP_PG_BIN}/pg_ctl" -D "${run_dir}/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
            local pm
            pm="$(head -n 1 "${run_dir}/data/postmaster.pid" 2>/dev/null || true)"
            if [[ "${pm}" =~ ^[0-9]+$ ]] && kill -0 "${pm}" 2>/dev/null; then
                hp_warn "pg_ctl stop failed; sending SIGQUIT to postmaster ${pm}"
                kill -QUIT "${pm}" 2>/dev/null || true
                sleep 2
            fi
        fi
    fi
    rm -rf -- "${run_dir}"
    if [[ -n "${_HP_PG_SOCK_DIR}" ]]; then
        rm -rf -- "${_HP_PG_SOCK_DIR}"
        _HP_PG_SOCK_DIR=""
    fi
    HUB_PG_THROWAWAY=0
    HUB_PG_LOG=""
    return 0
}

detach_postgres() {
    [[ $# -eq 1 ]] || hp_die "usage: detach_postgres FILE"
    local run_dir="${_HP_PG_RUN_DIR}"
    [[ -n "${run_dir}" && "${_HP_PG_OWNER_PID}" == "${BASHPID}" ]] || return 0
    printf '%s\n' "${run_dir}" >"$1"
    _HP_PG_RUN_DIR=""
    # No owner any more: the next run's reaper leaves a running postmaster alone.
    rm -f -- "${run_dir}/owner"
}

stop_detached_postgres() {
    [[ $# -eq 1 ]] || hp_die "usage: stop_detached_postgres DIR"
    local run_dir="$1"
    [[ -d "${run_dir}/data" ]] || return 0
    _hp_pg_find_bin || hp_die "pg_ctl not found"
    local sock
    sock="$(sed -n "s/^unix_socket_directories = '\\(.*\\)'\$/\\1/p" "${run_dir}/data/hubplane.conf" 2>/dev/null || true)"
    if [[ "${sock}" == /tmp/hp-pgsock.* ]]; then
        _HP_PG_SOCK_DIR="${sock}"
    fi
    _HP_PG_RUN_DIR="${run_dir}"
    _HP_PG_OWNER_PID="${BASHPID}"
    stop_postgres
}
