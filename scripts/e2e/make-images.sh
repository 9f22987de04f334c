#!/usr/bin/env bash
# The test images, built offline into the OCI layout $E2E_DIR/images/oci and pushed to $E2E_REGISTRY.
#   make-images.sh [--rebuild] [--no-push]
#
#   layout tag       pushed as          what
#   busybox          busybox:latest     one gzip layer: Debian's busybox-static + applet links, Cmd /bin/sh
#   busybox-tar      busybox:tar        the same layer uncompressed (…layer.v1.tar), pushed byte for byte
#   busybox-multi    busybox:multi      OCI index: linux/amd64 (busybox) + linux/arm64 (same layer, arm64 config)
#   debian-ml        debian-ml:latest   L1 debootstrap bookworm minbase, L2 the odd-files layer below,
#                                       L3 this machine's node + npm under /usr/local
#                    debian-ml:v2s2     the same, Docker schema 2 media types (skopeo converts on push)
#   debian-ml-zstd   debian-ml:zstd     the same layers recompressed with zstd (same diff_ids)
#
# L2 of debian-ml exercises what a converter gets wrong: a directory whiteout (usr/share/.wh.doc), an
# opaque directory (usr/share/locale keeps only README.e2e), file whiteouts (usr/bin/rgrep,
# usr/share/man/man1/ls.1.gz), type changes (etc/os-release symlink->file, srv dir->file, etc/motd
# file->dir), and in etc/e2e: hardlink, relative/absolute/dangling symlinks, empty file, user xattr,
# setuid, uid/gid 1000 mode 640, fifo, char device 1:3, 150-char and UTF-8 names, 4 MiB random and
# 8 MiB zero files, a 1990 mtime, a 0700 dir, SHA256SUMS, and expect.sh which checks all of that
# inside a container and prints ALL OK.
#
# Each image is built under a "-partial" tag and renamed when complete, so an interrupted run never
# leaves a tag that looks done; the debootstrap rootfs is built in a temporary directory and renamed
# into place for the same reason. The setup lock keeps concurrent callers from building at once.
source "$(dirname "$0")/lib.sh"

rebuild=0 push=1
for arg in "$@"; do
  case $arg in --rebuild) rebuild=1 ;; --no-push) push=0 ;; *) die "usage: make-images.sh [--rebuild] [--no-push]" ;; esac
done
take_setup_lock
need umoci umoci
need skopeo skopeo
need debootstrap debootstrap
need jq jq
need zstd zstd
need curl curl
need /bin/busybox busybox-static
need setfattr attr

W="$E2E_DIR/images"
L="$W/oci"
ROOTFS="$E2E_DIR/cache/deb-rootfs"
REF_NAME='org.opencontainers.image.ref.name'
mkdir -p "$W" "$E2E_DIR/cache"

if ((rebuild)); then rm -rf "$L" "$W"/bundle-* "$W"/stage-* "$W/pushed-to"; fi
[[ -f $L/index.json ]] || umoci init --layout "$L"

tag_digest() { jq -r --arg t "$1" --arg k "$REF_NAME" '[(.manifests // [])[] | select(.annotations[$k] == $t) | .digest][0] // empty' "$L/index.json"; }
have_tag() { [[ -n $(tag_digest "$1") ]]; }
blob_path() { echo "$L/blobs/sha256/${1#sha256:}"; }
# add_blob FILE: copy FILE into the layout, print its digest
add_blob() { local d; d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$L/blobs/sha256/$d"; echo "sha256:$d"; }
# add_tag TAG MEDIA-TYPE FILE: FILE (a manifest or an index) becomes TAG
add_tag() {
  local digest; digest=$(add_blob "$3")
  jq --arg t "$1" --arg k "$REF_NAME" --arg mt "$2" --arg d "$digest" --argjson s "$(stat -c%s "$3")" \
    '.manifests += [{mediaType: $mt, digest: $d, size: $s, annotations: {($k): $t}}]' "$L/index.json" >"$L/index.json.new"
  mv "$L/index.json.new" "$L/index.json"
}
# begin TAG: a fresh "-partial" image to build TAG in; finish TAG renames it
begin() { umoci rm --image "$L:$1-partial" 2>/dev/null || true; umoci new --image "$L:$1-partial"; }
finish() { umoci tag --image "$L:$1-partial" "$1"; umoci rm --image "$L:$1-partial"; say "built $1"; }

build_busybox() {
  local bundle="$W/bundle-busybox"
  begin busybox
  rm -rf "$bundle"
  umoci unpack --image "$L:busybox-partial" "$bundle" >/dev/null
  local root="$bundle/rootfs"
  mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  chroot "$root" /bin/busybox --install -s /bin
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  umoci repack --image "$L:busybox-partial" "$bundle"
  umoci config --image "$L:busybox-partial" --config.cmd /bin/sh --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    --config.workingdir / --os linux --architecture amd64
  rm -rf "$bundle"
  finish busybox
}

# an index of the amd64 busybox and an arm64 twin (same layer, config says arm64)
build_busybox_multi() {
  local amd64 config arm64_config arm64 amd64_size
  amd64=$(tag_digest busybox)
  amd64_size=$(stat -c%s "$(blob_path "$amd64")")
  config=$(jq -r .config.digest "$(blob_path "$amd64")")
  jq -c '.architecture = "arm64"' "$(blob_path "$config")" >"$W/arm64-config.json"
  arm64_config=$(add_blob "$W/arm64-config.json")
  jq -c --arg d "$arm64_config" --argjson s "$(stat -c%s "$W/arm64-config.json")" '.config.digest = $d | .config.size = $s' \
    "$(blob_path "$amd64")" >"$W/arm64-manifest.json"
  arm64=$(add_blob "$W/arm64-manifest.json")
  jq -n -c --arg amd "$amd64" --argjson asz "$amd64_size" --arg arm "$arm64" --argjson rsz "$(stat -c%s "$W/arm64-manifest.json")" '{
    schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $amd, size: $asz, platform: {architecture: "amd64", os: "linux"}},
      {mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $arm, size: $rsz, platform: {architecture: "arm64", os: "linux"}}]}' \
    >"$W/index-multi.json"
  add_tag busybox-multi application/vnd.oci.image.index.v1+json "$W/index-multi.json"
  say "built busybox-multi"
}

# debootstrap minbase from the mirror apt already uses, in a temporary directory renamed into place
debootstrap_rootfs() {
  [[ -f $ROOTFS/.e2e-complete ]] && return 0
  local mirror tmp started=$SECONDS
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [[ -n $mirror ]] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n $mirror ]] || die "no Debian mirror in this machine's apt sources"
  rm -rf "$ROOTFS".tmp.*   # left by an interrupted run (we hold the lock: nobody else is building)
  tmp=$(mktemp -d "$ROOTFS.tmp.XXXXXX")
  chmod 755 "$tmp"
  say "debootstrap --variant=minbase bookworm from $mirror (about a minute)"
  debootstrap --variant=minbase bookworm "$tmp" "$mirror" >"$LOGS/debootstrap.log" 2>&1 ||
    die "debootstrap failed, see $LOGS/debootstrap.log"
  # nothing of this machine in the image: its resolv.conf and hostname, apt's downloads and lists
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* "$tmp"/var/log/*.log "$tmp"/var/cache/debconf/*-old
  : >"$tmp/etc/resolv.conf"
  echo e2e >"$tmp/etc/hostname"
  touch "$tmp/.e2e-complete"
  rm -rf "$ROOTFS"
  mv -T "$tmp" "$ROOTFS"
  say "debootstrap took $((SECONDS - started)) s"
}

# the odd-files layer (see the header), as an uncompressed pax tar in $1
write_layer2() {
  local stage="$W/stage-l2" out=$1
  rm -rf "$stage"
  mkdir -p "$stage"/usr/share/locale "$stage"/usr/bin "$stage"/usr/share/man/man1 "$stage"/etc/e2e/private
  chmod 755 "$stage"/usr "$stage"/usr/share "$stage"/usr/share/locale "$stage"/usr/bin "$stage"/usr/share/man \
    "$stage"/usr/share/man/man1 "$stage"/etc "$stage"/etc/e2e
  : >"$stage/usr/share/.wh.doc"
  : >"$stage/usr/share/locale/.wh..wh..opq"
  echo "only file left in /usr/share/locale (opaque whiteout in layer 2)" >"$stage/usr/share/locale/README.e2e"
  : >"$stage/usr/bin/.wh.rgrep"
  : >"$stage/usr/share/man/man1/.wh.ls.1.gz"
  printf 'PRETTY_NAME="e2e debian-ml (layer 2 override)"\nID=debian\n' >"$stage/etc/os-release"
  echo "srv was a directory in layer 1" >"$stage/srv"
  mkdir "$stage/etc/motd"
  echo "motd was a file in layer 1" >"$stage/etc/motd/inside.txt"
  (
    cd "$stage/etc/e2e"
    echo "hello from layer 2" >hello.txt
    ln hello.txt hardlink.txt
    ln -s hello.txt symlink-rel
    ln -s /etc/e2e/hello.txt symlink-abs
    ln -s /nonexistent/target dangling
    : >empty
    echo "has a user xattr" >xattr.txt
    setfattr -n user.e2e -v layer2 xattr.txt
    printf '#!/bin/sh\necho suid\n' >suid.sh
    chmod 4755 suid.sh
    echo "owned by 1000:1000" >owned-1000.txt
    chown 1000:1000 owned-1000.txt
    chmod 640 owned-1000.txt
    mkfifo fifo
    mknod null-dev c 1 3
    echo long >"$(printf 'L%.0s' {1..150})"
    echo "utf-8 name" >"héllo-世界.txt"
    head -c 4194304 /dev/urandom >random-4m.bin
    head -c 8388608 /dev/zero >zeros-8m.bin
    echo old >old-mtime.txt
    touch -h -d '1990-01-02 03:04:05 UTC' old-mtime.txt
    echo secret >private/secret.txt
    chmod 700 private
    find . -type f ! -name SHA256SUMS ! -name expect.sh -print0 | sort -z | xargs -0 sha256sum >SHA256SUMS
    cp "$E2E_HERE/expect-debian-ml.sh" expect.sh
    chmod 755 expect.sh
  )
  (cd "$stage" && tar --format=pax --sort=name --xattrs --xattrs-include='user.*' --numeric-owner -cf "$out" usr srv etc)
  rm -rf "$stage"
}

# node and npm of this machine under /usr/local: one ~95 MB binary and ~2400 small files
write_layer3() {
  local stage="$W/stage-l3" out=$1
  rm -rf "$stage"
  mkdir -p "$stage/usr/local/bin" "$stage/usr/local/lib/node_modules"
  cp -a "$(readlink -f "$(command -v node)")" "$stage/usr/local/bin/node"
  cp -a /usr/lib/node_modules/npm "$stage/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/usr/local/bin/npm"
  (cd "$stage" && tar --format=pax --sort=name --numeric-owner --owner=0 --group=0 -cf "$out" usr)
  rm -rf "$stage"
}

build_debian_ml() {
  local bundle="$W/bundle-debian-ml" started=$SECONDS
  debootstrap_rootfs
  begin debian-ml
  rm -rf "$bundle"
  umoci unpack --image "$L:debian-ml-partial" "$bundle" >/dev/null
  cp -a "$ROOTFS/." "$bundle/rootfs/"
  rm -f "$bundle/rootfs/.e2e-complete"
  umoci repack --image "$L:debian-ml-partial" --history.created_by "debootstrap --variant=minbase bookworm" "$bundle"
  rm -rf "$bundle"
  write_layer2 "$W/layer2.tar"
  umoci raw add-layer --image "$L:debian-ml-partial" --history.created_by "e2e layer 2: whiteouts and odd files" "$W/layer2.tar"
  write_layer3 "$W/layer3.tar"
  umoci raw add-layer --image "$L:debian-ml-partial" --history.created_by "e2e layer 3: node $(node --version) + npm" "$W/layer3.tar"
  umoci config --image "$L:debian-ml-partial" --config.cmd /bin/bash \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --os linux --architecture amd64
  finish debian-ml
  umoci gc --layout "$L"
  say "debian-ml took $((SECONDS - started)) s"
}

# recompress SOURCE-TAG TAG zstd|uncompressed: the same image with its gzip layers as zstd or uncompressed
# (skopeo will not do either toward a registry: it reuses the gzip blobs it knows)
recompress() {
  local kind=$3 manifest="$W/recompress.json" layer="$W/recompress.layer" count i digest media
  cp "$(blob_path "$(tag_digest "$1")")" "$manifest"
  count=$(jq '.layers | length' "$manifest")
  for ((i = 0; i < count; i++)); do
    digest=$(jq -r ".layers[$i].digest" "$manifest")
    if [[ $kind == zstd ]]; then
      gzip -dc "$(blob_path "$digest")" | zstd -q -3 -T0 -f -o "$layer"
      media=application/vnd.oci.image.layer.v1.tar+zstd
    else
      gzip -dc "$(blob_path "$digest")" >"$layer"
      media=application/vnd.oci.image.layer.v1.tar
    fi
    digest=$(add_blob "$layer")
    jq --argjson i "$i" --arg d "$digest" --argjson s "$(stat -c%s "$layer")" --arg mt "$media" \
      '.layers[$i] += {digest: $d, size: $s, mediaType: $mt}' "$manifest" >"$manifest.new"
    mv "$manifest.new" "$manifest"
    rm -f "$layer"
  done
  add_tag "$2" application/vnd.oci.image.manifest.v1+json "$manifest"
  rm -f "$manifest"
  say "built $2 ($kind layers)"
}

have_tag busybox || build_busybox
have_tag busybox-multi || build_busybox_multi
have_tag debian-ml || build_debian_ml
have_tag debian-ml-zstd || recompress debian-ml debian-ml-zstd zstd
have_tag busybox-tar || recompress busybox busybox-tar uncompressed
umoci rm --image "$L:busybox-partial" 2>/dev/null || true
umoci rm --image "$L:debian-ml-partial" 2>/dev/null || true

for tag in busybox busybox-tar debian-ml debian-ml-zstd; do
  echo "$tag $(tag_digest "$tag")"
  jq -r '.layers[] | "  \(.digest) \(.size) \(.mediaType)"' "$(blob_path "$(tag_digest "$tag")")"
done
((push)) || exit 0

# ---------------------------------------------------------------------------------------------- push
PUSHED=(busybox:latest busybox:tar busybox:multi debian-ml:latest debian-ml:v2s2 debian-ml:zstd)
stamp="$W/pushed-to"   # "<registry> <sha256 of index.json>" after a complete push
layout_state="$E2E_REGISTRY $(sha256sum "$L/index.json" | cut -d' ' -f1)"
present() { curl -sf -o /dev/null -I -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' "http://$E2E_REGISTRY/v2/${1%:*}/manifests/${1##*:}"; }
all_present() { local ref; for ref in "${PUSHED[@]}"; do present "$ref" || return 1; done; }

curl -sf -o /dev/null "http://$E2E_REGISTRY/v2/" || die "no registry at $E2E_REGISTRY (run registry-up.sh first)"
if [[ -f $stamp && $(cat "$stamp") == "$layout_state" ]] && all_present; then
  echo "already pushed to $E2E_REGISTRY: ${PUSHED[*]}"
  exit 0
fi

# push_as_is TAG REPO REF-TAG: blobs and manifest byte for byte (skopeo would gzip a tar layer)
push_as_is() {
  local manifest base="http://$E2E_REGISTRY/v2/$2" digest location
  manifest=$(blob_path "$(tag_digest "$1")")
  for digest in $(jq -r '.config.digest, .layers[].digest' "$manifest"); do
    curl -sf -o /dev/null -I "$base/blobs/$digest" && continue
    location=$(curl -sf -D - -o /dev/null -X POST "$base/blobs/uploads/" | tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
    [[ $location == http* ]] || location="http://$E2E_REGISTRY$location"
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$(blob_path "$digest")" "$location&digest=$digest" ||
      die "pushing blob $digest to $2 failed"
  done
  curl -sf -o /dev/null -X PUT -H "Content-Type: $(jq -r '.mediaType // "application/vnd.oci.image.manifest.v1+json"' "$manifest")" \
    --data-binary @"$manifest" "$base/manifests/$3" || die "pushing manifest $2:$3 failed"
}

copy() { skopeo copy -q --dest-tls-verify=false "$@"; }
started=$SECONDS
copy "oci:$L:busybox" "docker://$E2E_REGISTRY/busybox:latest"
copy --all "oci:$L:busybox-multi" "docker://$E2E_REGISTRY/busybox:multi"
copy "oci:$L:debian-ml" "docker://$E2E_REGISTRY/debian-ml:latest"
copy --format v2s2 "oci:$L:debian-ml" "docker://$E2E_REGISTRY/debian-ml:v2s2"
copy "oci:$L:debian-ml-zstd" "docker://$E2E_REGISTRY/debian-ml:zstd"
push_as_is busybox-tar busybox tar
all_present || die "pushed, but not every image answers on $E2E_REGISTRY"
echo "$layout_state" >"$stamp"
echo "pushed to $E2E_REGISTRY in $((SECONDS - started)) s: ${PUSHED[*]}"
