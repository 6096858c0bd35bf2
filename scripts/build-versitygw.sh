#!/usr/bin/env bash
# Builds versitygw (an S3 server with a POSIX backend, Apache-2.0) from the Go
# module proxy for the S3 blob store's tests, and caches the binary outside
# the clone, keyed by version. Idempotent: prints the binary's path, building
# only when it is missing. About 2 minutes on 2 cores.
set -euo pipefail

VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"
CACHE="${FORGE_CACHE:-$HOME/.cache/forge}/versitygw/$VERSITYGW_VERSION"
BIN="$CACHE/versitygw"

if [[ -x "$BIN" ]]; then
	echo "$BIN"
	exit 0
fi
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
GOBIN="$tmp" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
mkdir -p "$CACHE"
mv "$tmp/versitygw" "$BIN"
echo "built versitygw $VERSITYGW_VERSION in $((SECONDS - start))s" >&2
echo "$BIN"
