#!/usr/bin/env bash
# Installs what Forge needs on a fresh Debian 12 machine, idempotently:
#   scripts/setup.sh            what building and running Forge needs
#   scripts/setup.sh test       plus what the test suite needs
#   scripts/setup.sh bench      plus the benchmarks' peers (wrk, FastAPI, uvicorn)
# Debian packages come from apt, Go modules from the module proxy, and the
# ONNX Runtime library from the npm registry (scripts/fetch-onnxruntime.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

want=(gcc make ca-certificates curl)
case "${1:-run}" in
run) want+=(python3-xgboost python3-sklearn python3-pandas python3-numpy) ;;
test) want+=(postgresql python3-pytest python3-numpy python3-pandas python3-sklearn python3-xgboost python3-torch python3-onnx
	slurm-wlm munge etcd-server perl chromium nats-server
	python3-click python3-cloudpickle python3-entrypoints python3-git python3-protobuf python3-tz python3-requests
	python3-packaging python3-importlib-metadata python3-sqlparse python3-cachetools python3-alembic python3-flask
	python3-sqlalchemy python3-gunicorn python3-markdown python3-jinja2 python3-graphene python3-scipy) ;;
bench) want+=(wrk python3-fastapi python3-uvicorn python3-sklearn python3-torch python3-xgboost python3-optuna) ;;
*) echo "usage: scripts/setup.sh [run|test|bench]" >&2; exit 2 ;;
esac

# npm often comes with a nodejs package from elsewhere; only install it when absent.
command -v npm >/dev/null || want+=(npm)

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "setup: installing Debian packages: ${missing[*]}" >&2
	sudo=""
	[[ $(id -u) == 0 ]] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A server running as root runs local jobs as this user (run_as), so a job
# cannot read the server's data dir. Not root: jobs run as the server's user.
if [[ $(id -u) == 0 ]] && ! id forge-job >/dev/null 2>&1; then
	echo "setup: creating the system user forge-job (local jobs run as it)" >&2
	useradd --system --no-create-home --shell /usr/sbin/nologin forge-job
fi

command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
go mod download
scripts/fetch-onnxruntime.sh >/dev/null
# The S3 blob store's tests run against a real S3 server, built once.
[[ "${1:-run}" != test ]] || scripts/build-versitygw.sh >/dev/null
