#!/usr/bin/env bash
# Debian's containerd with runc, started by hand: root, state and sockets under $E2E_DIR/containerd,
# the CRI plugin off, and proxy snapshotters: "stargz" on $E2E_STARGZ_SOCK (stargz-up.sh) and each
# "name=/abs/socket" of $E2E_EXTRA_SNAPSHOTTERS (the project's own snapshotter, say). containerd
# dials them when first used, so it may start before they do.
#   containerd-up.sh [--restart]    a running containerd with another config is an error unless --restart
# Then: ctr --address $E2E_DIR/containerd/containerd.sock …  (or export CONTAINERD_ADDRESS)
source "$(dirname "$0")/lib.sh"

restart=0
for arg in "$@"; do case $arg in --restart) restart=1 ;; *) die "usage: containerd-up.sh [--restart]" ;; esac; done
take_setup_lock
need containerd containerd
need runc runc

C="$E2E_DIR/containerd"
mkdir -p "$C"
proxy_plugin() { printf '  [proxy_plugins.%s]\n    type = "snapshot"\n    address = "%s"\n' "$1" "$2"; }
{
  cat <<EOF
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$C/containerd.sock"
[ttrpc]
  address = "$C/containerd.sock.ttrpc"
[debug]
  address = "$C/debug.sock"
  level = "${E2E_CONTAINERD_LOG_LEVEL:-info}"

[proxy_plugins]
EOF
  proxy_plugin stargz "$E2E_STARGZ_SOCK"
  for entry in $E2E_EXTRA_SNAPSHOTTERS; do proxy_plugin "${entry%%=*}" "${entry#*=}"; done
} >"$C/config.toml.new"

if running containerd; then
  if ((restart)); then stop_daemon containerd
  elif ! cmp -s "$C/config.toml.new" "$C/config.toml"; then die "containerd runs with another config ($C/config.toml); rerun with --restart"; fi
fi
mv "$C/config.toml.new" "$C/config.toml"
if ! running containerd; then
  start_daemon containerd containerd --config "$C/config.toml"
  wait_until "containerd on $E2E_CONTAINERD_SOCK" 30 ctr_ version
fi
ctr_ plugins ls | awk 'NR == 1 || /snapshotter/'
echo "containerd (pid $(pid_of containerd)): export CONTAINERD_ADDRESS=$E2E_CONTAINERD_SOCK"
