#!/usr/bin/env bash
# A registry that is "far away" without leaving this machine: network namespace $E2E_NETNS, reached
# through a veth pair ($E2E_VETH_HOST = $E2E_HOST_IP on this side, $E2E_VETH_NS = $E2E_NS_IP inside).
#   - bandwidth: tc tbf $E2E_RATE on both ends ("none" for unshaped); this kernel has no netem
#   - latency:   delay-proxy.mjs on $E2E_NS_IP:5000 holds every chunk $E2E_DELAY_MS in each direction
#   - behind it: docker-registry on the namespace's own 127.0.0.1:5000, serving the same
#                $E2E_DIR/registry/data as the loopback registry (push to 127.0.0.1:5000, pull here)
# Running it again applies new settings:  E2E_DELAY_MS=25 E2E_RATE=100mbit netns-up.sh
# The namespace has no default route, and an unreachable route for $E2E_GUARD_ROUTE on this side
# keeps these addresses off the default route should the veth disappear.
source "$(dirname "$0")/lib.sh"

take_setup_lock
need docker-registry docker-registry
need ip iproute2
need tc iproute2

in_ns() { ip netns exec "$E2E_NETNS" "$@"; }

grep -qx "$E2E_NETNS" <<<"$(ip netns list | awk '{print $1}')" || { ip netns add "$E2E_NETNS"; say "created netns $E2E_NETNS"; }
if ! ip link show "$E2E_VETH_HOST" >/dev/null 2>&1; then
  ip link add "$E2E_VETH_HOST" type veth peer name "$E2E_VETH_NS"
  ip link set "$E2E_VETH_NS" netns "$E2E_NETNS"
  say "created veth $E2E_VETH_HOST <-> $E2E_NETNS/$E2E_VETH_NS"
fi
grep -qF " $E2E_HOST_IP/30" <<<"$(ip -br addr show dev "$E2E_VETH_HOST")" || ip addr add "$E2E_HOST_IP/30" dev "$E2E_VETH_HOST"
grep -qF " $E2E_NS_IP/30" <<<"$(ip -n "$E2E_NETNS" -br addr show dev "$E2E_VETH_NS")" || ip -n "$E2E_NETNS" addr add "$E2E_NS_IP/30" dev "$E2E_VETH_NS"
ip link set "$E2E_VETH_HOST" up
ip -n "$E2E_NETNS" link set "$E2E_VETH_NS" up
ip -n "$E2E_NETNS" link set lo up
ip route replace unreachable "$E2E_GUARD_ROUTE" metric 9999
[[ $(ip route get "$E2E_NS_IP") == *" dev $E2E_VETH_HOST "* ]] || die "$E2E_NS_IP is not routed through $E2E_VETH_HOST; refusing to go on"

# each end shapes what it sends: together, both directions
shape() {
  if [[ $E2E_RATE == none ]]; then "$@" tc qdisc del dev "$dev" root 2>/dev/null || true
  else "$@" tc qdisc replace dev "$dev" root tbf rate "$E2E_RATE" burst "${E2E_BURST:-512kb}" latency 100ms; fi
}
dev=$E2E_VETH_HOST shape env
dev=$E2E_VETH_NS shape in_ns

NSD="$E2E_DIR/netns"
mkdir -p "$NSD" "$E2E_DIR/registry/data"
cat >"$NSD/registry.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $E2E_DIR/registry/data
  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: 127.0.0.1:5000
  secret: e2e-not-secret
EOF
if ! running ns-registry; then
  start_daemon ns-registry ip netns exec "$E2E_NETNS" /usr/bin/docker-registry serve "$NSD/registry.yml"
  wait_until "the registry in $E2E_NETNS" 15 in_ns curl -sf http://127.0.0.1:5000/v2/
fi
stop_daemon ns-proxy   # restarted: it carries the delay
start_daemon ns-proxy ip netns exec "$E2E_NETNS" node "$E2E_HERE/delay-proxy.mjs" \
  --listen "$E2E_NS_IP:5000" --target 127.0.0.1:5000 --delay-ms "$E2E_DELAY_MS"
wait_until "the delay proxy on $E2E_NS_REGISTRY" 15 curl -sf "http://$E2E_NS_REGISTRY/v2/"

echo "remote registry http://$E2E_NS_REGISTRY: ${E2E_DELAY_MS} ms each way, rate $E2E_RATE (registry pid $(pid_of ns-registry), proxy pid $(pid_of ns-proxy))"
echo "GET /v2/: $(curl -s -o /dev/null -w '%{time_total}' "http://$E2E_NS_REGISTRY/v2/") s"
