#!/usr/bin/env bash
# The README's first command (make quickstart): install what is missing,
# build forge, start `forge server` on embedded defaults in the background
# (data in ./forge-data), and run the whole lifecycle in examples/quickstart.
# Exits 0 only if every step succeeded; running it again works.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
addr=${ADDR:-127.0.0.1:7700}
data=${DATA:-./forge-data}
now() { date +%s%3N; }
secs() { local ms=$(($2 - $1)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }

t0=$(now)
scripts/setup.sh run
t1=$(now)
go build -ldflags "-X github.com/forge-mlops/forge/internal/version.commit=$(git rev-parse --short=12 HEAD 2>/dev/null)" -o bin/forge ./cmd/forge
t2=$(now)

mkdir -p "$data"
if curl -sf "http://$addr/readyz" >/dev/null 2>&1; then
	echo "quickstart: a forge server already answers at http://$addr"
else
	nohup bin/forge server --addr "$addr" --data-dir "$data" >"$data/server.log" 2>&1 &
	echo $! >"$data/server.pid"
	for _ in $(seq 100); do curl -sf "http://$addr/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
	curl -sf "http://$addr/readyz" >/dev/null || { echo "quickstart: server did not start; see $data/server.log" >&2; exit 1; }
	echo "quickstart: forge server ready at http://$addr (pid $(cat "$data/server.pid"), data in $data, log in $data/server.log)"
fi
FORGE="$PWD/bin/forge" FORGE_SERVER="http://$addr" examples/quickstart/run.sh
t3=$(now)
echo
echo "quickstart: done in $(secs "$t0" "$t3")s (install $(secs "$t0" "$t1")s, build $(secs "$t1" "$t2")s, pipeline $(secs "$t2" "$t3")s)"
