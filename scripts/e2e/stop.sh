#!/usr/bin/env bash
# Stops daemons these scripts started, by name, through their PID files (see lib.sh):
#   stop.sh stargz containerd        names are those of $E2E_DIR/pids/NAME.pid
# teardown.sh stops everything; this is for restarting one part (e.g. stargz with cold caches).
source "$(dirname "$0")/lib.sh"

(($#)) || die "usage: stop.sh NAME..."
take_setup_lock
for name in "$@"; do stop_daemon "$name"; done
