#!/bin/sh
# Runs each fuzz target for a short fixed time (FUZZTIME, default 5s);
# longer by hand: FUZZTIME=10m scripts/fuzz.sh. Seeds are in each target
# and in its package's testdata/fuzz/TARGET; a failure found is saved there.
set -e
FUZZTIME=${FUZZTIME:-5s}
while read -r pkg target; do
	echo "fuzz $pkg $target ($FUZZTIME)"
	go test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" "$pkg"
done <<LIST
./internal/filter FuzzParse
./internal/tracking FuzzLogBatch
./internal/serve FuzzDecodeInferRequest
./internal/serve FuzzFastHeader
./internal/bundle FuzzExtract
./internal/config FuzzLoadFile
./internal/onnx FuzzParseSignature
./internal/datasets FuzzUploadParquet
./internal/datasets FuzzImportCSV
LIST
