#!/usr/bin/env bash
# A screenshot of an access trace's lazy-load report, as headless Chromium (Debian's chromium)
# draws it: `scripts/report-screenshot.sh TRACE OUT.png` (docs/report.png is made this way; the
# README shows it). Needs dist/ (npm run build:ts). Prints nothing but errors.
set -euo pipefail
if (($# != 2)); then
  echo "usage: $0 TRACE OUT.png" >&2
  exit 2
fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
trace=$(realpath "$1")
out=$(realpath -m "$2")
[[ -f $repo/dist/cli/main.js ]] || { echo "$0: no $repo/dist/cli/main.js: run npm run build:ts first" >&2; exit 1; }
command -v chromium >/dev/null || { echo "$0: no chromium: apt-get install chromium (scripts/setup.sh does)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
node "$repo/dist/cli/main.js" report "$trace" --html "$work/report.html"
# its own profile directory: runs side by side do not share a profile lock; stderr only has D-Bus noise
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/profile" \
  --window-size=1280,1600 --screenshot="$out" "file://$work/report.html" >/dev/null 2>"$work/chromium.log" \
  || { cat "$work/chromium.log" >&2; exit 1; }
[[ -s $out ]] || { cat "$work/chromium.log" >&2; echo "$0: chromium wrote no $out" >&2; exit 1; }
