#!/usr/bin/env bash
# Everything the project needs, installed by the project itself, and quick when already done:
# Debian packages, npm ci, the offline cargo build of the native module, the TypeScript build.
# Used by `npm run demo`, `npm test`, `npm run bench` and CI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '[setup] %s\n' "$*" >&2; }

# Build the addon offline from Debian's crates and call the C codec libraries directly.
BUILD_PACKAGES=(pkg-config librust-sha2-dev librust-blake3-dev librust-libc-dev libzstd-dev liblz4-dev libdeflate-dev zlib1g-dev)
# Real tools the tests and benchmarks compare against (chromium: a real browser draws the report page;
# binutils: readelf reads programs' ELF headers independently of ours).
TOOL_PACKAGES=(zstd lz4 gzip b3sum openssl coreutils tar attr erofs-utils python3 util-linux squashfuse squashfs-tools chromium binutils)
# The real parts scripts/e2e starts for the end-to-end tests and benchmarks: registries, image
# building, containerd + runc, the stargz peer (built from Debian's Go sources), the shaped netns.
E2E_PACKAGES=(docker-registry apache2-utils skopeo umoci busybox-static debootstrap containerd runc stargz-snapshotter
  golang-go golang-github-containerd-stargz-snapshotter-dev fuse3 jq curl iproute2
  libnbd-bin nbdfuse qemu-utils tinyproxy)

apt_missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || printf '%s\n' "$p"
  done
}

install_packages() {
  local missing
  mapfile -t missing < <(apt_missing "$@")
  ((${#missing[@]})) || return 0
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ensure_cargo() {
  command -v cargo >/dev/null && return 0
  if [[ -x $HOME/.cargo/bin/cargo ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    install_packages cargo rustc
  fi
}

ensure_node_modules() {
  local stamp=node_modules/.setup-stamp want
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  [[ -f $stamp && $(cat "$stamp") == "$want" ]] && return 0
  say "npm ci"
  npm ci --no-audit --no-fund >&2
  echo "$want" >"$stamp"
}

# newer_than TARGET PATH...: true when TARGET is missing or any file under PATH is newer
newer_than() {
  local target=$1; shift
  [[ -e $target ]] || return 0
  [[ -n $(find "$@" -newer "$target" -type f -print -quit 2>/dev/null) ]]
}

build_native() {
  local addon=native/nydusify-native.linux-x64-gnu.node
  newer_than "$addon" native/src native/Cargo.toml Cargo.toml .cargo/config.toml || return 0
  say "building the native module (cargo, offline)"
  npm run --silent build:native >&2
  touch "$addon"
}

build_ts() {
  local stamp=dist/.build-stamp
  newer_than "$stamp" src tsconfig.json tsconfig.build.json package.json || return 0
  say "building TypeScript"
  npm run --silent build:ts >&2
  chmod +x dist/cli/main.js 2>/dev/null || true
  touch "$stamp"
}

install_packages "${BUILD_PACKAGES[@]}" "${TOOL_PACKAGES[@]}" "${E2E_PACKAGES[@]}"
ensure_cargo
ensure_node_modules
build_native
build_ts
