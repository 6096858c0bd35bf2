#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library that Forge loads through cgo.
#
# Only the npm registry is reachable on some machines, and onnxruntime-node
# carries the same library that ONNX Runtime releases. We unpack the tarball
# instead of installing it: its install script tries to download CUDA parts.
#
# Idempotent: if the library is already cached with the expected hash, nothing
# is fetched. The library's path is the last line on stdout.
set -euo pipefail

version=1.30.0
want_sha256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
member=package/bin/napi-v6/linux/x64/libonnxruntime.so.1

cache=${FORGE_CACHE:-$HOME/.cache/forge}
dir=$cache/onnxruntime/$version
lib=$dir/libonnxruntime.so.1

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f $lib ]] && [[ $(sha256_of "$lib") == "$want_sha256" ]]; then
	echo "$lib"
	exit 0
fi

command -v npm >/dev/null || { echo "fetch-onnxruntime: npm is required" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# npm pack only downloads the tarball; the install script never runs.
(cd "$tmp" && npm pack --silent --ignore-scripts "onnxruntime-node@$version" >/dev/null)
tarball=$(ls "$tmp"/onnxruntime-node-"$version".tgz)
tar -xzf "$tarball" -C "$tmp" "$member"

got=$(sha256_of "$tmp/$member")
if [[ $got != "$want_sha256" ]]; then
	echo "fetch-onnxruntime: sha256 mismatch for $member in onnxruntime-node@$version" >&2
	echo "  want $want_sha256" >&2
	echo "  got  $got" >&2
	exit 1
fi

mkdir -p "$dir"
# Move into place atomically so a concurrent reader never sees a partial file.
cp "$tmp/$member" "$lib.tmp.$$"
mv -f "$lib.tmp.$$" "$lib"
echo "$lib"
