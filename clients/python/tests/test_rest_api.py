"""Every tracking endpoint of the MLflow REST API 2.0, called with raw HTTP
(urllib only) against a real Forge server: FORGE_TEST_SERVER=http://host:port.
scripts/test-python.sh starts one and runs this file."""

import json
import math
import os
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

SERVER = os.environ.get("FORGE_TEST_SERVER", "")
API = SERVER + "/api/2.0/mlflow/"
ARTIFACTS = SERVER + "/api/2.0/mlflow-artifacts/artifacts"


def call(method, url, body=None, raw=None, headers=None):
    """Returns (status, parsed JSON or bytes)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, payload = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload


def post(path, body):
    return call("POST", API + path, body)


def get(endpoint, **params):
    return call("GET", API + endpoint + "?" + urllib.parse.urlencode(params, doseq=True))


def ok(test, result):
    status, body = result
    test.assertEqual(status, 200, body)
    return body


def refused(test, result, status, code):
    got, body = result
    test.assertEqual(got, status, body)
    test.assertEqual(body["error_code"], code, body)
    test.assertTrue(body["message"])


@unittest.skipUnless(SERVER or os.environ.get("CI"), "set FORGE_TEST_SERVER=http://host:port (scripts/test-python.sh does)")
class RESTAPITest(unittest.TestCase):
    def setUp(self):
        self.assertTrue(SERVER, "FORGE_TEST_SERVER must be set in CI")
        self.name = "rest-" + uuid.uuid4().hex[:8]

    def test_health_and_version(self):
        status, body = call("GET", SERVER + "/health")
        self.assertEqual((status, body), (200, b"OK"))
        status, body = call("GET", SERVER + "/version")
        self.assertEqual(status, 200)
        self.assertTrue(body)

    def test_experiments(self):
        exp = ok(self, post("experiments/create", {"name": self.name, "tags": [{"key": "team", "value": "ml"}]}))["experiment_id"]
        refused(self, post("experiments/create", {"name": self.name}), 400, "RESOURCE_ALREADY_EXISTS")
        refused(self, post("experiments/create", {"name": 5}), 400, "INVALID_PARAMETER_VALUE")
        e = ok(self, get("experiments/get", experiment_id=exp))["experiment"]
        self.assertEqual((e["name"], e["lifecycle_stage"], e["artifact_location"]), (self.name, "active", "mlflow-artifacts:/" + exp))
        self.assertEqual(ok(self, get("experiments/get-by-name", experiment_name=self.name))["experiment"]["experiment_id"], exp)
        refused(self, get("experiments/get-by-name", experiment_name="no-" + self.name), 404, "RESOURCE_DOES_NOT_EXIST")
        refused(self, get("experiments/get", experiment_id="987654"), 404, "RESOURCE_DOES_NOT_EXIST")
        self.assertEqual(ok(self, get("experiments/get", experiment_id="0"))["experiment"]["name"], "Default")

        ok(self, post("experiments/update", {"experiment_id": exp, "new_name": self.name + "-2"}))
        ok(self, post("experiments/set-experiment-tag", {"experiment_id": exp, "key": "team", "value": "vision"}))
        found = ok(self, post("experiments/search", {"filter": f"name = '{self.name}-2' AND tags.team = 'vision'"}))["experiments"]
        self.assertEqual([x["experiment_id"] for x in found], [exp])
        found = ok(self, get("experiments/search", filter=f"name LIKE '{self.name}%'", max_results="10"))["experiments"]
        self.assertEqual(len(found), 1)
        refused(self, post("experiments/search", {"filter": "name = "}), 400, "INVALID_PARAMETER_VALUE")

        ok(self, post("experiments/delete", {"experiment_id": exp}))
        self.assertEqual(ok(self, get("experiments/get", experiment_id=exp))["experiment"]["lifecycle_stage"], "deleted")
        refused(self, post("runs/create", {"experiment_id": exp}), 400, "INVALID_PARAMETER_VALUE")
        deleted = ok(self, post("experiments/search", {"view_type": "DELETED_ONLY", "filter": f"name = '{self.name}-2'"}))["experiments"]
        self.assertEqual(len(deleted), 1)
        ok(self, post("experiments/restore", {"experiment_id": exp}))
        self.assertEqual(ok(self, get("experiments/get", experiment_id=exp))["experiment"]["lifecycle_stage"], "active")

    def new_run(self, exp, **extra):
        body = {"experiment_id": exp, "start_time": 1700000000000}
        body.update(extra)
        return ok(self, post("runs/create", body))["run"]

    def test_runs_and_logging(self):
        exp = ok(self, post("experiments/create", {"name": self.name}))["experiment_id"]
        run = self.new_run(exp, run_name="first", tags=[{"key": "k", "value": "v"}])
        rid = run["info"]["run_id"]
        self.assertEqual(run["info"]["status"], "RUNNING")
        self.assertEqual(run["info"]["artifact_uri"], f"mlflow-artifacts:/{exp}/{rid}/artifacts")

        ok(self, post("runs/log-metric", {"run_id": rid, "key": "loss", "value": 0.5, "timestamp": 1, "step": 0}))
        ok(self, post("runs/log-metric", {"run_id": rid, "key": "loss", "value": "NaN", "timestamp": 2, "step": 1}))
        ok(self, post("runs/log-metric", {"run_id": rid, "key": "big", "value": "Infinity", "timestamp": "3", "step": "0"}))
        ok(self, post("runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.1"}))
        ok(self, post("runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.1"}))
        refused(self, post("runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.2"}), 400, "INVALID_PARAMETER_VALUE")
        ok(self, post("runs/set-tag", {"run_id": rid, "key": "stage", "value": "dev"}))
        ok(self, post("runs/delete-tag", {"run_id": rid, "key": "stage"}))
        refused(self, post("runs/delete-tag", {"run_id": rid, "key": "stage"}), 404, "RESOURCE_DOES_NOT_EXIST")
        ok(self, post("runs/log-batch", {"run_id": rid,
                                          "metrics": [{"key": "acc", "value": 0.9, "timestamp": 5, "step": s} for s in range(3)],
                                          "params": [{"key": "depth", "value": "6"}],
                                          "tags": [{"key": "note", "value": "batch"}]}))
        ok(self, post("runs/log-model", {"run_id": rid, "model_json": json.dumps({"artifact_path": "model", "flavors": {}})}))
        ok(self, post("runs/log-inputs", {"run_id": rid, "datasets": [
            {"tags": [{"key": "mlflow.data.context", "value": "training"}],
             "dataset": {"name": "sales", "digest": "d1g3st", "source_type": "local", "source": "/data/sales.csv"}}]}))

        got = ok(self, get("runs/get", run_id=rid))["run"]
        metrics = {m["key"]: m["value"] for m in got["data"]["metrics"]}
        self.assertEqual(metrics["acc"], 0.9)
        self.assertEqual(metrics["loss"], "NaN")  # the latest point (step 1) is NaN
        self.assertEqual(metrics["big"], "Infinity")
        params = {p["key"]: p["value"] for p in got["data"]["params"]}
        self.assertEqual(params, {"lr": "0.1", "depth": "6"})
        tags = {t["key"]: t["value"] for t in got["data"]["tags"]}
        self.assertEqual(tags["mlflow.runName"], "first")
        self.assertNotIn("stage", tags)
        self.assertIn("mlflow.log-model.history", tags)
        self.assertEqual(got["inputs"]["dataset_inputs"][0]["dataset"]["digest"], "d1g3st")

        history = ok(self, get("metrics/get-history", run_id=rid, metric_key="loss"))["metrics"]
        self.assertEqual([(m["step"], m["value"]) for m in history], [(0, 0.5), (1, "NaN")])
        refused(self, get("runs/get", run_id="nope"), 404, "RESOURCE_DOES_NOT_EXIST")

        # A batch over the limits is refused whole.
        too_many = [{"key": "m", "value": 1, "timestamp": 1, "step": i} for i in range(1001)]
        refused(self, post("runs/log-batch", {"run_id": rid, "metrics": too_many}), 400, "INVALID_PARAMETER_VALUE")
        refused(self, post("runs/log-batch", {"run_id": rid, "metrics": too_many[:5], "params": [{"key": "lr", "value": "9"}]}), 400, "INVALID_PARAMETER_VALUE")
        refused(self, post("runs/log-batch", {"run_id": rid, "params": [{"key": "x" * 251, "value": "1"}]}), 400, "INVALID_PARAMETER_VALUE")
        self.assertEqual(ok(self, get("metrics/get-history", run_id=rid, metric_key="m")).get("metrics", []), [])
        refused(self, post("runs/log-metric", {"run_id": rid, "key": "m", "value": "abc", "timestamp": 1}), 400, "INVALID_PARAMETER_VALUE")
        refused(self, call("POST", API + "runs/log-batch", raw=b'{"run_id": "x",'), 400, "INVALID_PARAMETER_VALUE")

        info = ok(self, post("runs/update", {"run_id": rid, "status": "FINISHED", "end_time": 1700000001000}))["run_info"]
        self.assertEqual((info["status"], info["end_time"]), ("FINISHED", 1700000001000))
        ok(self, post("runs/delete", {"run_id": rid}))
        refused(self, post("runs/log-metric", {"run_id": rid, "key": "late", "value": 1, "timestamp": 1}), 400, "INVALID_PARAMETER_VALUE")
        self.assertEqual(ok(self, get("runs/get", run_id=rid))["run"]["info"]["lifecycle_stage"], "deleted")
        ok(self, post("runs/restore", {"run_id": rid}))
        ok(self, post("runs/log-metric", {"run_id": rid, "key": "late", "value": 1, "timestamp": 1}))

    def test_search_and_bulk_history(self):
        exp = ok(self, post("experiments/create", {"name": self.name}))["experiment_id"]
        ids = []
        for i in range(150):
            rid = self.new_run(exp, run_name=f"r{i}")["info"]["run_id"]
            ok(self, post("runs/log-batch", {"run_id": rid, "params": [{"key": "i", "value": str(i)}],
                                              "metrics": [{"key": "score", "value": i / 150, "timestamp": 1, "step": s} for s in range(3)]}))
            ids.append(rid)
        found = ok(self, post("runs/search", {"experiment_ids": [exp], "filter": "metrics.score >= 0.98 AND params.i != '149'",
                                               "order_by": ["metrics.score DESC"]}))["runs"]
        self.assertEqual([r["info"]["run_name"] for r in found], ["r148", "r147"])
        seen, token = set(), None
        while True:
            body = {"experiment_ids": [exp], "max_results": 40, "order_by": ["attributes.run_name"]}
            if token:
                body["page_token"] = token
            page = ok(self, post("runs/search", body))
            seen.update(r["info"]["run_id"] for r in page.get("runs", []))
            token = page.get("next_page_token")
            if not token:
                break
        self.assertEqual(seen, set(ids))
        refused(self, post("runs/search", {"experiment_ids": [exp], "filter": "metrics.score >"}), 400, "INVALID_PARAMETER_VALUE")

        # A GET with 150 run ids in its query string.
        bulk = ok(self, get("metrics/get-history-bulk-interval", run_ids=ids, metric_key="score", max_results="2"))["metrics"]
        self.assertEqual({m["run_id"] for m in bulk}, set(ids))
        self.assertEqual(len(bulk), 2 * len(ids))
        self.assertEqual({m["step"] for m in bulk}, {0, 2})

    def test_artifacts(self):
        exp = ok(self, post("experiments/create", {"name": self.name}))["experiment_id"]
        rid = self.new_run(exp)["info"]["run_id"]
        base = f"{ARTIFACTS}/{exp}/{rid}/artifacts"
        payload = os.urandom(100_000)
        self.assertEqual(call("PUT", base + "/model/model.bin", raw=payload, headers={})[0], 200)
        self.assertEqual(call("PUT", base + "/notes.txt", raw=b"hello", headers={})[0], 200)
        status, body = call("GET", base + "/model/model.bin")
        self.assertEqual((status, body), (200, payload))
        listing = ok(self, get("artifacts/list", run_id=rid))
        self.assertEqual(sorted((f["path"], f["is_dir"]) for f in listing["files"]), [("model", True), ("notes.txt", False)])
        inner = ok(self, get("artifacts/list", run_id=rid, path="model"))["files"]
        self.assertEqual([(f["path"], f["file_size"]) for f in inner], [("model/model.bin", 100_000)])
        bare = ok(self, call("GET", ARTIFACTS + "?" + urllib.parse.urlencode({"path": f"{exp}/{rid}/artifacts"})))["files"]
        self.assertEqual(sorted(f["path"] for f in bare), ["model", "notes.txt"])
        self.assertEqual(call("DELETE", base + "/notes.txt")[0], 200)
        self.assertEqual(call("GET", base + "/notes.txt")[0], 404)
        for bad in ("/../../../etc/passwd", "/a/../../b", "//etc/passwd"):
            status, body = call("PUT", base + bad, raw=b"x", headers={})  # urllib sends the dots as they are
            self.assertEqual(status, 400, body)


if __name__ == "__main__":
    unittest.main()
