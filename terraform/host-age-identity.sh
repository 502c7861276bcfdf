#!/usr/bin/env bash
# extra_files_script of the nixos-anywhere module: runs on the workstation in an empty directory
# whose contents nixos-anywhere copies to / of the new system (ownership root, modes kept).
# Puts the host's age identity where agenix looks for it, readable by root only.
#
#   HUBPLANE_HOST_AGE_IDENTITY         the identity on this workstation (absolute path)
#   HUBPLANE_HOST_AGE_IDENTITY_TARGET  its place in the new system, relative to /
set -euo pipefail

source_file="${HUBPLANE_HOST_AGE_IDENTITY:?HUBPLANE_HOST_AGE_IDENTITY is not set}"
target="${HUBPLANE_HOST_AGE_IDENTITY_TARGET:?HUBPLANE_HOST_AGE_IDENTITY_TARGET is not set}"

if [[ ! -r "${source_file}" ]]; then
    echo "host-age-identity.sh: cannot read the host's age identity ${source_file}; make it first (secrets/README.md, \"Keys\") or restore it from the password manager" >&2
    exit 1
fi
# An age identity (age-keygen) or an OpenSSH private key; anything else would leave the host
# unable to decrypt its secrets at the first boot.
if ! grep -qE '^(AGE-SECRET-KEY-1[0-9A-Z]+|-----BEGIN OPENSSH PRIVATE KEY-----)$' "${source_file}"; then
    echo "host-age-identity.sh: ${source_file} holds no age identity (AGE-SECRET-KEY-1…) or OpenSSH private key" >&2
    exit 1
fi
case "${target}" in
    /* | *..*)
        echo "host-age-identity.sh: the target must be relative to / and stay inside it: ${target}" >&2
        exit 1
        ;;
esac

# The directories keep the usual 0755: tar recreates them on the new system with these modes,
# and /var or /var/lib must stay traversable. Only the identity itself is root-only.
(umask 022 && mkdir -p -- "$(dirname -- "${target}")")
install -m 0600 -- "${source_file}" "${target}"
