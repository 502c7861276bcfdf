#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
#
# Stops the cluster stand-in that start.sh started under DIR (by DIR/cluster.pid):
#
#   stop.sh --dir DIR
#
# Exits 0 when nothing runs there (any more). Leaves DIR's files in place; the port is free
# again as soon as this returns.
set -euo pipefail

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=../../../scripts/lib/common.sh
source "${CLUSTER_DIR}/../../../scripts/lib/common.sh"

hp_stop_main "cluster stand-in" cluster.pid "server.py --dir %s " "$@"
