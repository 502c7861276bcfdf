#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Back up hub databases: ./scripts/backup.sh --dir DIR [--url URL] [--keep N] DATABASE...
#
# Dumps each DATABASE with `pg_dump -Fc` (custom format: compressed, restored selectively and
# in one transaction by pg_restore) into DIR/DATABASE-<UTC time>.dump, written as .partial and
# renamed once complete, readable by its owner only. Each archive is read back with
# `pg_restore --list` (a truncated file fails here, not on the day of the restore) and gets a
# DIR/<file>.sha256 beside it. Prints the path of every dump on stdout, one per line.
#
#   --dir DIR    where the dumps go (created, mode 0700)
#   --url URL    a libpq URL whose database is replaced by each DATABASE; default
#                postgresql:///?host=/run/postgresql: the local socket with peer
#                authentication, so run it as the postgres user (sudo -u postgres ...)
#   --keep N     after a dump succeeded, delete all but the N newest dumps of that
#                database in DIR (default: keep everything)
#
# On the management host the profile's services.postgresqlBackup already dumps every hub
# database nightly; this script is for on-demand backups (before an update, a migration, a
# restore drill) and for hosts without the profile. docs/operations/backup-restore.md has the
# whole procedure. Exits 1 if any database could not be backed up (the others still are).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=lib/common.sh
source "${SCRIPT_DIR}/lib/common.sh"
# shellcheck source=lib/postgres.sh
source "${SCRIPT_DIR}/lib/postgres.sh"

usage() {
    sed -n '4,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

DIR=""
URL="postgresql:///?host=/run/postgresql"
KEEP=0
DATABASES=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dir | --url | --keep)
            [[ $# -ge 2 ]] || { usage >&2; hp_die "$1 needs a value"; }
            case "$1" in
                --dir) DIR="$2" ;;
                --url) URL="$2" ;;
                --keep) KEEP="$2" ;;
            esac
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*)
            usage >&2
            hp_die "unknown option: $1"
            ;;
        *)
            DATABASES+=("$1")
            shift
            ;;
    esac
done
[[ -n "${DIR}" && ${#DATABASES[@]} -gt 0 ]] || { usage >&2; hp_die "--dir and at least one DATABASE are required"; }
[[ "${KEEP}" =~ ^[0-9]+$ ]] || hp_die "--keep must be a number, got: ${KEEP}"
for tool in pg_dump pg_restore sha256sum; do
    command -v "${tool}" >/dev/null 2>&1 || hp_die "${tool} not found (Debian: apt-get install postgresql-client; NixOS: nix shell nixpkgs#postgresql)"
done

mkdir -p -- "${DIR}"
chmod 0700 "${DIR}"
DIR="$(cd "${DIR}" && pwd -P)"
umask 077

# prune DATABASE: deletes all but the KEEP newest dumps of DATABASE (names sort by time).
prune() {
    local db="$1" old
    ((KEEP > 0)) || return 0
    # The time stamp starts with a digit, so `state` never matches `state-hub-…` dumps.
    while IFS= read -r old; do
        [[ -n "${old}" ]] || continue
        rm -f -- "${DIR}/${old}" "${DIR}/${old}.sha256"
        hp_info "deleted ${old} (--keep ${KEEP})"
    done < <(cd "${DIR}" && find . -maxdepth 1 -name "${db}-[0-9]*Z.dump" -printf '%f\n' | sort -r | tail -n +"$((KEEP + 1))")
}

# backup DATABASE: one dump, checked, with its checksum; prints its path.
backup() {
    local db="$1" url file partial
    url="$(pg_url_with_database "${URL}" "${db}")" || return 1
    file="${db}-$(date -u +%Y%m%dT%H%M%SZ).dump"
    partial="${DIR}/${file}.partial"
    hp_info "pg_dump ${db} -> ${DIR}/${file}"
    if ! pg_dump --format=custom --dbname="${url}" --file="${partial}"; then
        rm -f -- "${partial}"
        hp_warn "pg_dump of ${db} failed"
        return 1
    fi
    if ! pg_restore --list "${partial}" >/dev/null; then
        rm -f -- "${partial}"
        hp_warn "the dump of ${db} does not read back; deleted"
        return 1
    fi
    mv -- "${partial}" "${DIR}/${file}"
    (cd "${DIR}" && sha256sum -- "${file}" >"${file}.sha256")
    prune "${db}"
    printf '%s\n' "${DIR}/${file}"
}

failed=()
for db in "${DATABASES[@]}"; do
    backup "${db}" || failed+=("${db}")
done
if [[ ${#failed[@]} -gt 0 ]]; then
    hp_die "not backed up: ${failed[*]}"
fi
