#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Stops the OIDC provider that start.sh started under DIR (by DIR/oidc.pid):
#
#   stop.sh --dir DIR
#
# Exits 0 when nothing runs there (any more). Leaves DIR's files in place; the port is free
# again as soon as this returns.
set -euo pipefail

OIDC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../../scripts/lib/common.sh
source "${OIDC_DIR}/../../../scripts/lib/common.sh"

hp_stop_main "OIDC stand-in" oidc.pid "server.mjs --dir %s " "$@"
