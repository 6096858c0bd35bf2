#!/usr/bin/env bash
# Vendors the web UI's one third-party library, uPlot, from npm into
# internal/webui/static/vendor/. The vendored files are committed, so
# `go build` alone needs neither npm nor the network; run this only to
# change the version.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${UPLOT_VERSION:-1.6.32}
dst=internal/webui/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null && tar -xzf "uplot-$version.tgz")
mkdir -p "$dst"
cp "$tmp/package/dist/uPlot.esm.js" "$dst/uPlot.esm.js"
cp "$tmp/package/dist/uPlot.min.css" "$dst/uPlot.min.css"
cp "$tmp/package/LICENSE" "$dst/uPlot.LICENSE"
echo "uPlot $version (MIT, https://github.com/leeoniya/uPlot), from npm: scripts/vendor-ui.sh" >"$dst/VERSION"
echo "vendored uPlot $version into $dst" >&2
