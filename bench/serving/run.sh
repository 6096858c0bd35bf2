#!/usr/bin/env bash
# Serving benchmark against its peers, in one run on this machine, loopback
# only: single-row JSON requests to /v2/models/mlp/infer on the small MLP
# (testdata/models/mlp.onnx) at 16 and 64 keep-alive connections, against
#   forge    forge serve --model-repo (the ONNX model through ONNX Runtime)
#   bare     a net/http handler that decodes the same JSON and answers a fixed response
#   fastapi2 / fastapi1  FastAPI + uvicorn (Debian) around scikit-learn's MLPClassifier, 2 and 1 workers
# then Forge's p99 at half its peak throughput (open loop, fixed rate), and
# the in-process Go benchmarks: ONNX compute overhead at batch 1 and the
# batching gain on the 256-1024-1024-10 MLP.
#
# With TEAM=1 (or TEAM=only: that alone), also the replicas of a forge server
# in a team's setup against one on SQLite and the local folder
# (bench/serving/team): `forge serve --server URL` replicas of a server on
# PostgreSQL + S3 (reading the model from the bucket) and of a server on
# SQLite + the local blob folder, alternating, ROUNDS rounds.
#
# Usage: [ROUNDS=3] [TEAM=1|only] bench/serving/run.sh [SECONDS_PER_POINT]   (default 6; the whole run takes about 3 minutes)
# Needs: wrk (apt-get install wrk; without it a Go closed-loop generator is
# used), python3-fastapi python3-uvicorn python3-sklearn, torch (for the
# large MLP), and the ONNX Runtime library (scripts/fetch-onnxruntime.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh bench
D=${1:-6}
ROUNDS=${ROUNDS:-3}
PY=/usr/bin/python3
export FORGE_ONNXRUNTIME_LIB=${FORGE_ONNXRUNTIME_LIB:-$HOME/.cache/forge/onnxruntime/1.30.0/libonnxruntime.so.1}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "building..." >&2
go build -o "$tmp/forge" ./cmd/forge
go build -o "$tmp/bare" ./bench/serving/bare
go build -o "$tmp/loadgen" ./bench/serving/loadgen
go build -o "$tmp/team" ./bench/serving/team
mkdir -p "$tmp/repo/mlp/1"
cp testdata/models/mlp.onnx "$tmp/repo/mlp/1/model.onnx"
body='{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
printf '%s' "$body" >"$tmp/body.json"
cat >"$tmp/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA

declare -A url
url[forge]=http://127.0.0.1:18000
url[bare]=http://127.0.0.1:18001
url[fastapi2]=http://127.0.0.1:18002
url[fastapi1]=http://127.0.0.1:18003
# measure NAME CONNS: prints "rps p50_ms p99_ms"
measure() {
	local u="${url[$1]}/v2/models/mlp/infer"
	if command -v wrk >/dev/null; then
		wrk -t2 -c"$2" -d"${D}s" --latency -s "$tmp/post.lua" "$u" | awk '
			function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
			$1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } $1 == "Requests/sec:" { rps = $2 }
			/Non-2xx/ { print "wrk: " $0 > "/dev/stderr" }
			END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
	else
		"$tmp/loadgen" -url "$u" -body "$tmp/body.json" -c "$2" -d "${D}s" |
			$PY -c 'import json,sys; r=json.load(sys.stdin); print("%.0f %.3f %.3f" % (r["rps"], r["p50_ms"], r["p99_ms"]))'
	fi
}

# team: the replicas of the SQLite + local and the PostgreSQL + S3 servers,
# alternating, median of ROUNDS rounds, and their ratio.
team() {
	"$tmp/team" -forge "$tmp/forge" -model testdata/models/mlp.onnx -local-addr 127.0.0.1:18020 -team-addr 127.0.0.1:18021 >"$tmp/team.out" 2>"$tmp/team.log" &
	local tpid=$!
	pids+=($tpid)
	for _ in $(seq 1200); do
		grep -q '^local=' "$tmp/team.out" && break
		kill -0 "$tpid" 2>/dev/null || { echo "bench/serving/team failed:" >&2; cat "$tmp/team.log" >&2; exit 1; }
		sleep 0.1
	done
	url[local-replica]=http://127.0.0.1:18020 url[team-replica]=http://127.0.0.1:18021
	echo "replicas (forge serve --server URL) of a server on SQLite + local folder and of one on PostgreSQL (fsync on) + S3 (versitygw; the replica reads the model from the bucket): $ROUNDS alternating rounds, median kept"
	printf '%-13s %6s %10s %9s %9s\n' replica conns req/s p50_ms p99_ms
	for c in 16 64; do
		declare -A tr=()
		for i in $(seq "$ROUNDS"); do
			order="local-replica team-replica"
			[ $((i % 2)) -eq 0 ] && order="team-replica local-replica"
			for s in $order; do
				tr[$s]+="$(measure "$s" "$c")"$'\n'
			done
		done
		for s in local-replica team-replica; do
			echo -n "${tr[$s]}" | awk '{ printf "%-13s %6d %10s %9s %9s   (round %d)\n", s, c, $1, $2, $3, NR }' s="$s" c="$c" >&2
			read -r r a b < <(echo -n "${tr[$s]}" | sort -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }')
			rps[$s,$c]=$r p50[$s,$c]=$a p99[$s,$c]=$b
			printf '%-13s %6d %10s %9s %9s   (median)\n' "$s" "$c" "$r" "$a" "$b"
		done
		awk -v l="${rps[local-replica,$c]}" -v t="${rps[team-replica,$c]}" -v c="$c" 'BEGIN { printf "c%d ratio: PostgreSQL+S3 / SQLite+local replica req/s %.2f\n", c, t/l }'
	done
	kill "$tpid" 2>/dev/null || true
	wait "$tpid" 2>/dev/null || true
}

declare -A rps p50 p99
if [ "${TEAM:-}" = only ]; then
	team
	exit 0
fi
"$tmp/forge" serve --model-repo "$tmp/repo" --addr 127.0.0.1:18000 --grpc-addr "" --log-level warn 2>"$tmp/forge.log" & pids+=($!)
"$tmp/bare" -addr 127.0.0.1:18001 & pids+=($!)
(cd bench/serving && exec $PY -m uvicorn fastapi_mlp:app --host 127.0.0.1 --port 18002 --workers 2 --log-level warning --no-access-log) 2>"$tmp/fastapi2.log" & pids+=($!)
(cd bench/serving && exec $PY -m uvicorn fastapi_mlp:app --host 127.0.0.1 --port 18003 --workers 1 --log-level warning --no-access-log) 2>"$tmp/fastapi1.log" & pids+=($!)
for s in forge bare fastapi2 fastapi1; do
	for _ in $(seq 300); do
		curl -sf -o /dev/null "${url[$s]}/v2/health/ready" && break
		sleep 0.1
	done
	curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' -d "$body" "${url[$s]}/v2/models/mlp/infer" ||
		{ echo "$s does not answer; its log:" >&2; cat "$tmp/$s.log" >&2 2>/dev/null; exit 1; }
done

gen=$(command -v wrk >/dev/null && echo "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}') -t2" || echo "Go closed-loop loadgen")
echo "load generator: $gen; ${D}s per point; $(nproc) CPUs shared by servers and load generator"
# Forge and bare alternate for ROUNDS rounds and each keeps its median round:
# on a small shared machine one point varies by 10% or more between runs.
echo "forge and bare: $ROUNDS alternating rounds, median kept; the FastAPI peers: one round"
printf '%-10s %6s %10s %9s %9s\n' server conns req/s p50_ms p99_ms
for c in 16 64; do
	declare -A rounds=()
	for i in $(seq "$ROUNDS"); do
		for s in forge bare; do
			rounds[$s]+="$(measure "$s" "$c")"$'\n'
		done
	done
	for s in forge bare; do
		echo -n "${rounds[$s]}" | awk '{ printf "%-10s %6d %10s %9s %9s   (round %d)\n", s, c, $1, $2, $3, NR }' s="$s" c="$c" >&2
		read -r r a b < <(echo -n "${rounds[$s]}" | sort -n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }')
		rps[$s,$c]=$r p50[$s,$c]=$a p99[$s,$c]=$b
		printf '%-10s %6d %10s %9s %9s   (median)\n' "$s" "$c" "$r" "$a" "$b"
	done
	for s in fastapi2 fastapi1; do
		read -r r a b < <(measure "$s" "$c")
		rps[$s,$c]=$r p50[$s,$c]=$a p99[$s,$c]=$b
		printf '%-10s %6d %10s %9s %9s\n' "$s" "$c" "$r" "$a" "$b"
	done
done
for c in 16 64; do
	awk -v f="${rps[forge,$c]}" -v b="${rps[bare,$c]}" -v p2="${rps[fastapi2,$c]}" -v p1="${rps[fastapi1,$c]}" -v c="$c" \
		'BEGIN { printf "c%d ratios: forge/bare %.2f  forge/fastapi-2w %.1fx  forge/fastapi-1w %.1fx\n", c, f/b, f/p2, f/p1 }'
done

peak=$(( rps[forge,16] > rps[forge,64] ? rps[forge,16] : rps[forge,64] ))
half=$(( peak / 2 ))
# Latency is measured twice at that rate, forge and the bare handler each:
# shared, as above (the load generator and the server on the same CPUs), and
# pinned, the server on CPU 0 and the load generator on CPU 1 (fresh
# processes, so the Go runtime sizes itself to its one CPU), which keeps the
# generator's own scheduling delays out of the server's p99. The bare
# handler at the same rate is the floor the machine gives.
echo "at half of forge's peak ($half req/s, open loop, 16 conns, latency from each request's due time):"
for s in forge bare; do
	printf '%-6s shared ' "$s"
	"$tmp/loadgen" -url "${url[$s]}/v2/models/mlp/infer" -body "$tmp/body.json" -c 16 -rate "$half" -d "${D}s"
done
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	taskset -c 0 "$tmp/forge" serve --model-repo "$tmp/repo" --addr 127.0.0.1:18010 --grpc-addr "" --log-level warn 2>"$tmp/forge-pinned.log" & pids+=($!)
	taskset -c 0 "$tmp/bare" -addr 127.0.0.1:18011 & pids+=($!)
	url[forge-pinned]=http://127.0.0.1:18010 url[bare-pinned]=http://127.0.0.1:18011
	for s in forge-pinned bare-pinned; do
		for _ in $(seq 300); do
			curl -sf -o /dev/null "${url[$s]}/v2/health/ready" && break
			sleep 0.1
		done
	done
	for s in forge bare; do
		printf '%-6s pinned ' "$s"
		taskset -c 1 "$tmp/loadgen" -url "${url[$s-pinned]}/v2/models/mlp/infer" -body "$tmp/body.json" -c 16 -rate "$half" -d "${D}s"
	done
fi

for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

if [ "${TEAM:-}" = 1 ]; then
	team
fi

echo "in-process Go benchmarks (internal/serve/bench_test.go):"
go test -run XXX -bench 'Overhead' -benchtime 20000x ./internal/serve | grep -E '^Benchmark' | awk '{print}
	/Overhead\/model/ { m = $3 } /Overhead\/server/ { s = $3 } /Overhead\/handler/ { h = $3 }
	END { printf "ONNX compute overhead at batch 1: Server.Infer - model = %.1f us; REST handler (JSON both ways, no network) - model = %.1f us\n", (s-m)/1000, (h-m)/1000 }'
go test -run XXX -bench 'Batching' -benchtime 20000x ./internal/serve | grep -E '^Benchmark' | awk '{print}
	$1 ~ /^BenchmarkBatching\/off(-[0-9]+)?$/ { off = $5 } $1 ~ /^BenchmarkBatching\/on-1worker/ { one = $5 } $1 ~ /^BenchmarkBatching\/on(-[0-9]+)?$/ { on = $5 }
	END { printf "batching gain, 256-1024-1024-10 MLP, 64 single-row clients: %.1fx (2 workers), %.1fx (1 worker)\n", on/off, one/off }'
