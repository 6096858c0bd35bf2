"""Scenarios a-d driven by the real mlflow client (MLflow 2.12.2), timed here.

usage: mlflow_client.py TRACKING_URI TAG   (PYTHONPATH must hold the MLflow peer's lib)
Prints one JSON object: scenario id -> seconds. Run by bench/tracking -client.
"""
import json
import sys
import time

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient


def main():
    uri, tag = sys.argv[1], sys.argv[2]
    mlflow.set_tracking_uri(uri)
    c = MlflowClient(uri)
    out = {}

    exp = c.create_experiment("client-a-" + tag)
    run = c.create_run(exp).info.run_id
    t = time.perf_counter()
    for i in range(1000):
        c.log_metric(run, "loss", 1 / (i + 1), step=i)
    out["a"] = time.perf_counter() - t

    exp = c.create_experiment("client-b-" + tag)
    run = c.create_run(exp).info.run_id
    now = int(time.time() * 1000)
    points = [Metric("loss", 1 / (i + 1), now, i) for i in range(10000)]
    t = time.perf_counter()
    c.log_batch(run, metrics=points)  # the client sends 10 requests of 1,000
    out["b"] = time.perf_counter() - t

    exp = c.create_experiment("client-c-" + tag)
    t = time.perf_counter()
    for i in range(1000):
        r = c.create_run(exp, tags={"mlflow.user": "bench"}).info.run_id
        now = int(time.time() * 1000)
        c.log_batch(r, metrics=[Metric(k, i / 1000, now, 0) for k in ("acc", "loss", "f1")],
                    params=[Param(k, str(i)) for k in ("lr", "depth", "seed")],
                    tags=[RunTag("team", "bench"), RunTag("i", str(i))])
        c.set_terminated(r)
    out["c"] = time.perf_counter() - t

    t = time.perf_counter()
    df = mlflow.search_runs(experiment_ids=[exp], max_results=1000)
    out["d"] = time.perf_counter() - t
    if len(df) != 1000 and "null" not in tag:
        raise SystemExit("search_runs returned %d runs, want 1000" % len(df))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
