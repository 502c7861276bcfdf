#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Restore a hub database: ./scripts/restore.sh --input FILE --url URL [--create [--owner ROLE]]
#                                              [--no-owner] [--verify HUB] [--bin-dir DIR]
#
# Restores FILE into the database URL names, in one transaction (all or nothing):
#   *.dump                        pg_dump -Fc, as scripts/backup.sh writes it: pg_restore
#   *.sql, *.sql.zstd, *.sql.gz   plain pg_dump, as services.postgresqlBackup writes it on the
#                                 management host (with -C): psql, without the dump's own
#                                 CREATE DATABASE / \connect, so any target name works
# A FILE.sha256 beside the file is checked first. The target database must be empty.
#
#   --create       create the target database (refused when it exists), through the
#                  server's `postgres` database on the same URL
#   --owner ROLE   with --create: the owner of the new database (on the management host the
#                  hub's user, e.g. state-hub, which the dump's tables belong to as well)
#   --no-owner     give every object to the restoring user instead of the dump's owners
#                  (for drills on a server without the hubs' roles)
#   --verify HUB   state-hub or domain-hub: after the restore run `HUB verify` on the target
#                  (state hub: schema version and the journal's hash chain; domain hub: schema
#                  version and the outbox) and fail if it fails
#   --bin-dir DIR  where HUB is (default: PATH)
#
# Run it as a user that may create databases (on the management host: sudo -u postgres, with
# URL postgresql:///<db>?host=/run/postgresql). docs/operations/backup-restore.md has the whole
# procedure, including stopping the hub first and what to do with the damaged database.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/postgres.sh
source "${SCRIPT_DIR}/lib/postgres.sh"

usage() {
    sed -n '4,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

INPUT=""
URL=""
CREATE=0
OWNER=""
NO_OWNER=0
VERIFY=""
BIN_DIR=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --create) CREATE=1; shift; continue ;;
        --no-owner) NO_OWNER=1; shift; continue ;;
        -h | --help) usage; exit 0 ;;
        --input | --url | --owner | --verify | --bin-dir)
            [[ $# -ge 2 ]] || { usage >&2; hp_die "$1 needs a value"; } ;;
        *) usage >&2; hp_die "unknown argument: $1" ;;
    esac
    case "$1" in
        --input) INPUT="$2" ;;
        --url) URL="$2" ;;
        --owner) OWNER="$2" ;;
        --verify) VERIFY="$2" ;;
        --bin-dir) BIN_DIR="$2" ;;
    esac
    shift 2
done
[[ -n "${INPUT}" && -n "${URL}" ]] || { usage >&2; hp_die "--input and --url are required"; }
[[ -f "${INPUT}" ]] || hp_die "no such file: ${INPUT}"
[[ -z "${OWNER}" || "${CREATE}" -eq 1 ]] || hp_die "--owner goes with --create"
case "${VERIFY}" in
    "" | state-hub | domain-hub) ;;
    *) hp_die "--verify must be state-hub or domain-hub, got: ${VERIFY}" ;;
esac

# The target's name, from the URL's path (libpq URLs: postgres[ql]://…/NAME?…).
db_re='^postgres(ql)?://[^/?]*/([^?]+)'
[[ "${URL}" =~ ${db_re} ]] || hp_die "--url must name the target database: postgres://…/NAME"
DB_NAME="${BASH_REMATCH[2]}"
[[ "${DB_NAME}" =~ ^[A-Za-z0-9_-]+$ ]] || hp_die "unexpected database name in --url: ${DB_NAME}"

# What to restore with.
case "${INPUT}" in
    *.dump) KIND=custom; DECOMPRESS=() ;;
    *.sql) KIND=plain; DECOMPRESS=(cat --) ;;
    *.sql.zstd | *.sql.zst) KIND=plain; DECOMPRESS=(zstd -dc --) ;;
    *.sql.gz) KIND=plain; DECOMPRESS=(gzip -dc --) ;;
    *) hp_die "unknown kind of dump: ${INPUT} (expected .dump, .sql, .sql.zstd or .sql.gz)" ;;
esac
tools=(psql)
if [[ "${KIND}" == custom ]]; then tools+=(pg_restore); else tools+=("${DECOMPRESS[0]}"); fi
for tool in "${tools[@]}"; do
    command -v "${tool}" >/dev/null 2>&1 || hp_die "${tool} not found (Debian: apt-get install postgresql-client zstd)"
done
if [[ -n "${VERIFY}" ]]; then
    HUB_BIN="${VERIFY}"
    [[ -z "${BIN_DIR}" ]] || HUB_BIN="${BIN_DIR}/${VERIFY}"
    command -v "${HUB_BIN}" >/dev/null 2>&1 || hp_die "${HUB_BIN} not found (--bin-dir)"
fi

if [[ -f "${INPUT}.sha256" ]]; then
    (cd "$(dirname "${INPUT}")" && sha256sum --check --status -- "$(basename "${INPUT}").sha256") \
        || hp_die "${INPUT} does not match ${INPUT}.sha256: corrupted or truncated"
    hp_info "checksum ok: ${INPUT}.sha256"
fi

psql_q() {
    PGOPTIONS="-c client_min_messages=warning" psql "$1" -X -A -t -q -v ON_ERROR_STOP=1 "${@:2}"
}

if [[ "${CREATE}" -eq 1 ]]; then
    MAINTENANCE="$(pg_url_with_database "${URL}" postgres)"
    exists="$(psql_q "${MAINTENANCE}" -v name="${DB_NAME}" <<<"SELECT count(*) FROM pg_database WHERE datname = :'name'")" \
        || hp_die "cannot reach the server through ${MAINTENANCE}"
    [[ "${exists}" == 0 ]] || hp_die "database ${DB_NAME} exists; restore into a new name, or drop it first (without --create, an existing empty database is used)"
    owner_sql=""
    [[ -z "${OWNER}" ]] || owner_sql=" OWNER :\"owner\""
    psql_q "${MAINTENANCE}" -v name="${DB_NAME}" -v owner="${OWNER}" <<<"CREATE DATABASE :\"name\"${owner_sql}" \
        || hp_die "could not create database ${DB_NAME}"
    hp_info "created database ${DB_NAME}"
fi

# Only into an empty database: a restore on top of data would mix two histories.
held="$(psql_q "${URL}" <<'SQL'
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
   AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
SQL
)" || hp_die "cannot reach the target database ${DB_NAME}"
[[ "${held}" == 0 ]] || hp_die "database ${DB_NAME} is not empty (${held} relations); restore into a new, empty database"

# strip_database_header: a plain dump made with -C starts by creating and connecting to its
# own database; those lines go, so the dump lands in the target. Only the header is touched:
# the first table, schema or COPY ends it.
strip_database_header() {
    awk '
        header && /^(CREATE|ALTER|COMMENT ON) DATABASE / { next }
        header && /^\\connect / { header = 0; next }
        header && /^(CREATE (TABLE|SCHEMA|FUNCTION|SEQUENCE|TYPE|EXTENSION)|COPY) / { header = 0 }
        { print }
    ' header=1
}

hp_info "restoring ${INPUT} into ${DB_NAME} (one transaction)"
if [[ "${KIND}" == custom ]]; then
    owner_args=()
    [[ "${NO_OWNER}" -eq 0 ]] || owner_args=(--no-owner --no-privileges)
    pg_restore --exit-on-error --single-transaction "${owner_args[@]}" --dbname="${URL}" -- "${INPUT}" \
        || hp_die "pg_restore failed; nothing was restored into ${DB_NAME}"
else
    filter=(cat)
    # Ownership statements name roles; --no-owner drops them for servers without those roles.
    [[ "${NO_OWNER}" -eq 0 ]] || filter=(grep -v -E '^ALTER [A-Z ]+ .* OWNER TO ')
    "${DECOMPRESS[@]}" "${INPUT}" | strip_database_header | "${filter[@]}" \
        | PGOPTIONS="-c client_min_messages=warning" psql "${URL}" -X -q -v ON_ERROR_STOP=1 --single-transaction >/dev/null \
        || hp_die "psql failed; nothing was restored into ${DB_NAME}"
fi
psql_q "${URL}" -c ANALYZE >/dev/null || hp_warn "ANALYZE failed (the restore itself succeeded)"
hp_info "restored ${DB_NAME}"

if [[ -n "${VERIFY}" ]]; then
    hp_info "${VERIFY} verify"
    # --database-url: the check reads no config file, so it needs none of the hub's secrets.
    "${HUB_BIN}" verify --database-url "${URL}" \
        || hp_die "${VERIFY} verify failed on ${DB_NAME}: do not start the hub on it"
fi
