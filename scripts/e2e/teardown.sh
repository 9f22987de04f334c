#!/usr/bin/env bash
# Stops what these scripts started under $E2E_DIR, through the PID files only (a pid whose start time
# changed belongs to someone else now and is left alone); unmounts what is left under $E2E_DIR;
# deletes the network namespace, the veth pair and the guard route.
#   teardown.sh [--purge]    --purge also deletes $E2E_DIR (images, registry data, caches)
source "$(dirname "$0")/lib.sh"

purge=0
for arg in "$@"; do case $arg in --purge) purge=1 ;; *) die "usage: teardown.sh [--purge]" ;; esac; done
take_setup_lock

# 1. containers of our containerd, every namespace; then the shims it started (their pids are in its state)
if running containerd; then
  for ns in $(ctr_ namespaces ls -q 2>/dev/null); do
    for task in $(ctr_ -n "$ns" tasks ls -q 2>/dev/null); do ctr_ -n "$ns" tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true; done
    sleep 0.5
    for task in $(ctr_ -n "$ns" tasks ls -q 2>/dev/null); do ctr_ -n "$ns" tasks rm -f "$task" >/dev/null 2>&1 || true; done
    for c in $(ctr_ -n "$ns" containers ls -q 2>/dev/null); do ctr_ -n "$ns" containers rm "$c" >/dev/null 2>&1 && say "removed container $ns/$c"; done
  done
fi
for shim_pid in "$E2E_DIR"/containerd/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
  [[ -s $shim_pid ]] || continue
  pid=$(cat "$shim_pid")
  if live "$pid" && [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *containerd-shim* ]]; then
    kill "$pid" 2>/dev/null && say "stopped shim $pid ($shim_pid)"
  fi
done

# 2. snapshotters before containerd (SIGTERM makes stargz unmount its layers); then everything else
for entry in $E2E_EXTRA_SNAPSHOTTERS; do stop_daemon "${entry%%=*}"; done
for name in stargz containerd ns-proxy ns-registry registry-token token-server registry-basic registry; do stop_daemon "$name"; done
for pid_file in "$PIDS"/*.pid; do [[ -e $pid_file ]] && stop_daemon "$(basename "$pid_file" .pid)"; done

# 3. mounts left under $E2E_DIR (a FUSE mount whose daemon died, overlay, erofs), deepest first
mapfile -t mounts < <(findmnt -rn -o TARGET | awk -v d="$E2E_DIR" 'index($0, d "/") == 1 || $0 == d { print length($0) "\t" $0 }' | sort -rn | cut -f2-)
for m in "${mounts[@]}"; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true
  say "unmounted $m"
done
while read -r dev; do
  [[ -n $dev ]] && losetup -d "$dev" && say "detached $dev"
done < <(losetup -a 2>/dev/null | awk -v d="($E2E_DIR/" 'index($0, d) { sub(/:.*/, ""); print }')

# 4. the shaped network, when this state dir set it up: deleting the namespace deletes the veth pair
if [[ -f $E2E_DIR/netns/registry.yml ]]; then
  if grep -qx "$E2E_NETNS" <<<"$(ip netns list 2>/dev/null | awk '{print $1}')"; then ip netns del "$E2E_NETNS" && say "deleted netns $E2E_NETNS"; fi
  if ip link show "$E2E_VETH_HOST" >/dev/null 2>&1; then ip link del "$E2E_VETH_HOST" && say "deleted $E2E_VETH_HOST"; fi
  if [[ -n $(ip route show type unreachable "$E2E_GUARD_ROUTE" 2>/dev/null) ]]; then
    ip route del unreachable "$E2E_GUARD_ROUTE" metric 9999 && say "removed the guard route $E2E_GUARD_ROUTE"
  fi
  rm -f "$E2E_DIR/netns/registry.yml"
fi

left=$(findmnt -rn -o TARGET | awk -v d="$E2E_DIR" 'index($0, d "/") == 1 || $0 == d' | wc -l)
if ((purge)); then
  ((left == 0)) || die "$left mounts are still under $E2E_DIR; not deleting it"
  # a state dir is a directory of its own: never /, a top-level directory or the home directory
  real=$(realpath -m "$E2E_DIR")
  [[ $real == /*/* && $real != "$(realpath -m ~)" ]] || die "refusing to delete $real"
  rm -rf "$E2E_DIR"
  echo "teardown: deleted $E2E_DIR"
else
  echo "teardown: done, $left mounts left under $E2E_DIR"
fi
