#!/usr/bin/env bash
# Builds kube-apiserver from the Go module proxy (Debian does not package it)
# for the Kubernetes executor's tests, and caches the binary outside the clone,
# keyed by version. Idempotent: prints the binary's path, building only when it
# is missing. About 12 minutes and 2.8 GB of Go build cache on 2 cores.
#
#   scripts/build-kube-apiserver.sh            # prints the path
#   KUBE_VERSION=v1.37.2 scripts/build-kube-apiserver.sh
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
# Staging modules are published as v0.MINOR.PATCH for kubernetes v1.MINOR.PATCH.
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"
CACHE="${FORGE_CACHE:-$HOME/.cache/forge}/kube-apiserver/$KUBE_VERSION"
BIN="$CACHE/kube-apiserver"

if [[ -x "$BIN" ]]; then
	echo "$BIN"
	exit 0
fi

export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

go mod init forge.local/kube-apiserver-build >/dev/null 2>&1
modfile="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
[[ -f "$modfile" ]] || { echo "cannot download k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }

# kubernetes' go.mod replaces each staging module with ./staging/src/...,
# which a dependent module cannot use: point each at its published release.
# Staging modules that are not on the proxy at this version (e.g. samples)
# are left out; kube-apiserver does not import them.
edits=(-require "k8s.io/kubernetes@$KUBE_VERSION")
while read -r mod; do
	if go mod download "$mod@$STAGING_VERSION" >/dev/null 2>&1; then
		edits+=(-replace "$mod=$mod@$STAGING_VERSION")
	else
		echo "note: $mod@$STAGING_VERSION is not served; not replaced" >&2
	fi
done < <(sed -n '/^replace (/,/^)/p' "$modfile" | awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}')
go mod edit "${edits[@]}"

cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
go mod tidy -e >/dev/null 2>&1 || true

mkdir -p "$CACHE"
start=$SECONDS
minor="${KUBE_VERSION#v1.}"
minor="${minor%%.*}"
pkg=k8s.io/component-base/version
CGO_ENABLED=0 go build -trimpath -o "$BIN.tmp" \
	-ldflags "-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
	k8s.io/kubernetes/cmd/kube-apiserver
mv "$BIN.tmp" "$BIN"
echo "built kube-apiserver $KUBE_VERSION in $((SECONDS - start))s" >&2
echo "$BIN"
