#!/usr/bin/env bash
# Starts forge server on embedded defaults in the background (data in
# ./forge-data, log in ./forge-data/server.log) and waits until it is ready.
set -euo pipefail
cd "$(dirname "$0")/.."
addr=${ADDR:-127.0.0.1:7700}
data=${DATA:-./forge-data}
mkdir -p "$data"
if curl -sf "http://$addr/readyz" >/dev/null 2>&1; then
	echo "quickstart: a forge server already answers at http://$addr"
else
	nohup bin/forge server --addr "$addr" --data-dir "$data" >"$data/server.log" 2>&1 &
	echo $! >"$data/server.pid"
	for _ in $(seq 100); do curl -sf "http://$addr/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
	curl -sf "http://$addr/readyz" >/dev/null || { echo "quickstart: server did not start; see $data/server.log" >&2; exit 1; }
	echo "quickstart: forge server ready at http://$addr (pid $!, data in $data, log in $data/server.log)"
fi
bin/forge version --server "http://$addr"
cat <<TXT

Next:
  export MLFLOW_TRACKING_URI=http://$addr    # your mlflow code now logs to Forge
  bin/forge experiments ls
  bin/forge runs ls --experiment NAME --order-by "metrics.acc DESC"
  make stop                                  # stop the server
TXT
