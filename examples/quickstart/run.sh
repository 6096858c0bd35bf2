#!/usr/bin/env bash
# The whole lifecycle on a running Forge server: data -> training jobs ->
# best run -> registered model -> live endpoint -> its monitor. Run it with `make quickstart`
# (which starts the server first), or by hand with FORGE_SERVER set.
# Running it again adds nothing twice: the same data is the same version,
# and new runs and a new model version are made.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
forge=${FORGE:-$here/../../bin/forge}
export FORGE_SERVER=${FORGE_SERVER:-http://127.0.0.1:7700}
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json() { $py -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

step "1/6 Add a dataset: the Wisconsin breast-cancer table that scikit-learn ships"
$py "$here/make_data.py" "$work/cancer.csv"
$forge data add cancer "$work/cancer.csv" --description "Wisconsin diagnostic breast cancer (UCI, CC BY 4.0); target 1 = benign"
$forge data profile cancer | sed -n '1,8p'
echo "..."
$forge data query "SELECT target, COUNT(*) AS cases, ROUND(AVG(mean_radius), 2) AS avg_radius, ROUND(AVG(worst_area), 1) AS avg_worst_area FROM cancer GROUP BY target ORDER BY target"

step "2/6 Train: four XGBoost jobs with different hyperparameters"
ids=()
for hp in "3 0.3" "4 0.1" "6 0.3" "2 0.5"; do
	set -- $hp
	id=$(cd "$here" && $forge run --experiment quickstart --name "xgb-depth$1-eta$2" -i train=cancer:csv -o json \
		-- /usr/bin/python3 train.py --max-depth "$1" --eta "$2" | json 'd["id"]')
	echo "submitted job $id (max_depth=$1 eta=$2)"
	ids+=("$id")
done
for id in "${ids[@]}"; do
	for _ in $(seq 600); do
		state=$($forge jobs show "$id" -o json | json 'd["state"]')
		case $state in succeeded) break ;; failed|cancelled|lost) echo "job $id $state:"; $forge jobs logs "$id"; exit 1 ;; esac
		sleep 0.5
	done
	[ "$state" = succeeded ] || { echo "job $id still $state"; exit 1; }
done
$forge jobs ls | sed -n '1,6p'

step "3/6 Pick the best run by validation AUC and register its model as cancer-xgb@champion"
$forge runs ls --experiment quickstart --order-by "metrics.val_auc DESC" --limit 5
best=$($forge runs ls --experiment quickstart --order-by "metrics.val_auc DESC" --limit 1 -o json | json 'd[0]["info"]["run_id"]')
version=$($forge model register cancer-xgb --run "$best" --path model/model.json -o json | json 'd["model_version"]["version"]')
$forge model alias cancer-xgb champion "$version"
$forge model show cancer-xgb@champion | sed -n '1,12p'

step "4/6 Deploy cancer-xgb@champion as the endpoint 'cancer', logging its requests, and ask it about five patients"
# The monitor's reference: the training table's feature columns, in the model's input order
# (its run's input, cancer, starts with an id column the model does not take).
$forge data query "SELECT * EXCLUDE (id) FROM cancer" -o csv --out "$work/features.csv" >/dev/null
ref=$($forge data add cancer-features "$work/features.csv" --description "cancer without its id: the endpoint's reference" -o json |
	json 'd["version"]["name"] + "@" + str(d["version"]["version"])')
$forge deploy cancer cancer-xgb@champion --log-payloads 1 --reference "$ref"
$forge data query "SELECT * FROM cancer WHERE id % 5 = 0 ORDER BY id LIMIT 5" -o json > "$work/rows.jsonl"
$py - "$work/rows.jsonl" "$work/request.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
features = [k for k in rows[0] if k not in ("id", "target")]
req = {"inputs": [{"name": "input__0", "datatype": "FP32", "shape": [len(rows), len(features)],
                   "data": [[float(r[k]) for k in features] for r in rows]}]}
json.dump(req, open(sys.argv[2], "w"))
json.dump([r["target"] for r in rows], open(sys.argv[2] + ".labels", "w"))
PY
curl -sf -X POST "$FORGE_SERVER/v2/models/cancer/infer" -H 'Content-Type: application/json' --data @"$work/request.json" > "$work/response.json"
$py - "$work/response.json" "$work/request.json.labels" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))["outputs"][0]["data"]
labels = json.load(open(sys.argv[2]))
print(f"{'patient':>8}  {'P(benign)':>9}  {'predicted':>9}  {'true':>6}")
right = 0
for i, (p, y) in enumerate(zip(out, labels)):
    pred = int(p >= 0.5)
    right += pred == y
    print(f"{i:>8}  {p:>9.4f}  {['malignant','benign'][pred]:>9}  {['malignant','benign'][y]:>6}")
print(f"{right}/{len(labels)} right")
PY

step "5/6 Monitor the endpoint: every patient as traffic, the true diagnoses as feedback"
rid="quickstart-$(date +%s)"
$forge data query "SELECT * EXCLUDE (id) FROM cancer ORDER BY id" -o json > "$work/all.jsonl"
$py - "$work/all.jsonl" "$work/all.json" "$work/labels.jsonl" "$rid" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
features = [k for k in rows[0] if k != "target"]
json.dump({"id": sys.argv[4], "inputs": [{"name": "input__0", "datatype": "FP32", "shape": [len(rows), len(features)],
           "data": [[float(r[k]) for k in features] for r in rows]}]}, open(sys.argv[2], "w"))
with open(sys.argv[3], "w") as f:
    f.write(json.dumps({"request_id": sys.argv[4], "labels": [r["target"] for r in rows]}) + "\n")
PY
curl -sf -X POST "$FORGE_SERVER/v2/models/cancer/infer" -H 'Content-Type: application/json' --data @"$work/all.json" >/dev/null
$forge feedback cancer --file "$work/labels.jsonl"
$forge monitor cancer --window 1h | sed -n '1,6p'
echo "..."
$forge monitor cancer --window 1h | sed -n '/^Quality/,$p'

step "6/6 Where to look next"
cat <<TXT
Server:       $FORGE_SERVER   (metrics at $FORGE_SERVER/metrics)
Runs:         $forge runs ls --experiment quickstart --order-by "metrics.val_auc DESC"
Jobs:         $forge jobs ls        logs: $forge jobs logs JOB_ID
Models:       $forge model show cancer-xgb@champion
Endpoint:     curl -X POST $FORGE_SERVER/v2/models/cancer/infer -d @request.json
Monitor:      $forge monitor cancer   (drift and live quality; gauges on /metrics)
Your mlflow:  export MLFLOW_TRACKING_URI=$FORGE_SERVER
Stop:         make stop
TXT
