"""A sweep's trial: the Branin function of --x and --y (minimum 0.397887),
logged as `loss` to the trial's own MLflow run through the REST API and the
MLFLOW_* variables every Forge job gets."""
import argparse, json, math, os, time, urllib.request

p = argparse.ArgumentParser()
p.add_argument("--x", type=float, required=True)
p.add_argument("--y", type=float, required=True)
a = p.parse_args()
b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
loss = (a.y - b * a.x ** 2 + c * a.x - 6) ** 2 + 10 * (1 - t) * math.cos(a.x) + 10

headers = {"Content-Type": "application/json"}
if os.environ.get("MLFLOW_TRACKING_TOKEN"):
    headers["Authorization"] = "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]
body = {"run_id": os.environ["MLFLOW_RUN_ID"], "key": "loss", "value": loss,
        "timestamp": int(time.time() * 1000), "step": 0}
req = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-metric",
                             data=json.dumps(body).encode(), headers=headers)
urllib.request.urlopen(req).read()
print(f"x={a.x} y={a.y} loss={loss:.6f}")
