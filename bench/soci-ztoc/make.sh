#!/bin/sh
# Builds bench/soci-ztoc (soci-snapshotter's ztoc code, Debian's Go in GOPATH mode, no module
# proxy) into $GOWORK_DIR/bin/soci-ztoc, laying out its sources as
# test/fixtures/soci/make-vector/make.sh does (same pinned commits, same Go 1.19 edits).
# Needs the bare git mirrors of awslabs/soci-snapshotter and google/flatbuffers and the Debian
# packages make-vector/make.sh lists. Prints the binary's path.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
GOWORK_DIR=${GOWORK_DIR:-/tmp/socigo}
BIN=$GOWORK_DIR/bin/soci-ztoc
if [ ! -x "$BIN" ]; then
  VECTOR=$HERE/../../test/fixtures/soci/make-vector
  # the vector's script lays out the sources and builds there; its vectors go to a scratch dir
  [ -d "$GOWORK_DIR/src/github.com/awslabs/soci-snapshotter/ztoc" ] || OUT=$(mktemp -d) GOWORK_DIR=$GOWORK_DIR sh "$VECTOR/make.sh" >/dev/null
  export GO111MODULE=off GOPATH="$GOWORK_DIR:/usr/share/gocode" CGO_ENABLED=1 TZ=UTC
  (cd "$HERE" && go build -o "$BIN" .)
fi
echo "$BIN"
