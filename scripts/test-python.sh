#!/usr/bin/env bash
# Runs the Python client's tests, against a fake server and against a real
# `forge server` started here on a free port with a fresh data dir.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
bin/forge server --data-dir "$dir/data" --addr "127.0.0.1:$port" --grpc-addr 127.0.0.1:0 --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
FORGE_TEST_SERVER="http://127.0.0.1:$port" /usr/bin/python3 -m pytest -q -p no:cacheprovider clients/python/tests
