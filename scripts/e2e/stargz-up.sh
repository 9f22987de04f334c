#!/usr/bin/env bash
# The stargz snapshotter as containerd's reference lazy-pull peer. Debian ships its library
# (golang-github-containerd-stargz-snapshotter-dev) and ctr-remote, not the daemon, so the daemon is
# our own small main (stargz-grpc/main.go), built once, offline, in GOPATH mode against Debian's Go
# packages, into $E2E_DIR/bin/e2e-stargz-grpc (20-60 s on 2 cores). The library's
# service/resolver/cri.go needs k8s.io/cri-api, which Debian does not package: the build uses a copy
# of the library without that file (the CRI keychain is not used here).
#   stargz-up.sh     env: E2E_STARGZ_NO_BG_FETCH=1 (default: no background fetch of whole layers),
#                         E2E_STARGZ_NO_PREFETCH=1 (default: no prefetch), E2E_STARGZ_LOG_LEVEL=info
# Then containerd-up.sh (its config names the "stargz" proxy plugin) and
#   ctr-remote --address $E2E_DIR/containerd/containerd.sock image rpull --plain-http REF
source "$(dirname "$0")/lib.sh"

take_setup_lock
LIBRARY=/usr/share/gocode/src/github.com/containerd/stargz-snapshotter
BIN="$E2E_DIR/bin/e2e-stargz-grpc"

build() {
  need go golang-go
  need ctr-remote stargz-snapshotter
  need "$LIBRARY/go.mod" golang-github-containerd-stargz-snapshotter-dev
  local gopath="$E2E_DIR/gobuild" started=$SECONDS
  rm -rf "$gopath/src"
  mkdir -p "$gopath/src/github.com/containerd" "$gopath/src/e2e-stargz-grpc" "$E2E_DIR/bin"
  cp -a "$LIBRARY" "$gopath/src/github.com/containerd/"
  rm -f "$gopath/src/github.com/containerd/stargz-snapshotter/service/resolver/cri.go"
  cp "$E2E_HERE/stargz-grpc/main.go" "$gopath/src/e2e-stargz-grpc/"
  say "building e2e-stargz-grpc (GOPATH mode, offline)"
  (cd "$gopath/src/e2e-stargz-grpc" && GO111MODULE=off GOFLAGS= GOPATH="$gopath:/usr/share/gocode" GOCACHE="$gopath/cache" \
    go build -o "$BIN.new" .) || die "building e2e-stargz-grpc failed"
  mv "$BIN.new" "$BIN"
  say "built $BIN in $((SECONDS - started)) s"
}
[[ -x $BIN ]] || build

S="$E2E_DIR/stargz"
mkdir -p "$S"
{
  [[ ${E2E_STARGZ_NO_BG_FETCH:-1} == 1 ]] && echo 'no_background_fetch = true'
  [[ ${E2E_STARGZ_NO_PREFETCH:-1} == 1 ]] && echo 'noprefetch = true'
  # stargz takes loopback registries for plain HTTP by itself, not the one in the namespace
  printf '[[resolver.host."%s".mirrors]]\n  host = "%s"\n  insecure = true\n' "$E2E_NS_REGISTRY" "$E2E_NS_REGISTRY"
} >"$S/config.toml"
start_daemon stargz "$BIN" --address "$E2E_STARGZ_SOCK" --root "$S/root" --config "$S/config.toml" \
  --log-level "${E2E_STARGZ_LOG_LEVEL:-info}"
wait_until "the stargz socket $E2E_STARGZ_SOCK" 15 test -S "$E2E_STARGZ_SOCK"
# a containerd that knew an earlier stargz daemon retries its connection with backoff: wait until it
# reaches this one, or the next pull fails with "unavailable"
if running containerd; then
  wait_until "containerd to reach stargz" 60 ctr_ snapshots --snapshotter stargz ls
fi
echo "stargz snapshotter (pid $(pid_of stargz)) on $E2E_STARGZ_SOCK, root $S/root"
