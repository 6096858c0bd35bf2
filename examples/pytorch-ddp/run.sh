#!/usr/bin/env bash
# PyTorch DDP on 2 processes through `forge run`, then register the exported
# ONNX model, deploy it, and classify a few wines. Needs a running server
# (make quickstart) or FORGE_SERVER.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
forge=${FORGE:-$here/../../bin/forge}
export FORGE_SERVER=${FORGE_SERVER:-http://127.0.0.1:7700}
py=/usr/bin/python3
json() { $py -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

echo "== train on 2 processes (DDP, gloo)"
(cd "$here" && $forge run --experiment pytorch-ddp --name wine-ddp --procs-per-node 2 --wait -- $py train.py)
run=$($forge runs ls --experiment pytorch-ddp --order-by "attributes.start_time DESC" --limit 1 -o json | json 'd[0]["info"]["run_id"]')
$forge runs show "$run" | sed -n '1,20p'

echo "== register and deploy"
version=$($forge model register wine-mlp --run "$run" --path model/model.onnx -o json | json 'd["model_version"]["version"]')
$forge model alias wine-mlp champion "$version"
$forge deploy wine wine-mlp@champion

echo "== classify three wines"
$py - "$FORGE_SERVER" <<'PY'
import json, sys, urllib.request
import numpy as np
from sklearn.datasets import load_wine
X, y = load_wine(return_X_y=True)
X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
rows = [0, 70, 140]
req = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 13], "data": X[rows].flatten().tolist()}]}
r = urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/v2/models/wine/infer", json.dumps(req).encode(),
                                                  {"Content-Type": "application/json"}))
p = np.array(json.load(r)["outputs"][0]["data"]).reshape(3, 3)
for i, row in enumerate(rows):
    print(f"wine {row:>3}: predicted class {p[i].argmax()} (p={p[i].max():.3f}), true class {y[row]}")
PY
