"""Tests of the forge client against an in-process fake MLflow server.

The fake answers like MLflow's REST API 2.0 and records every request, so
the tests assert on what went over the wire. Set FORGE_TEST_SERVER to a
server's URL to also run the end-to-end scenario against it.

    /usr/bin/python3 -m pytest clients/python/tests
    /usr/bin/python3 -m unittest discover -s clients/python/tests
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)
sys.path.insert(0, PKG_ROOT)

import forge  # noqa: E402

ENV_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_RUN_ID",
            "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID")


class FakeMLflow:
    """A tiny MLflow tracking server: enough state to answer the client."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []       # dicts: method, path, query, body, headers, port
        self.experiments = {"0": {"experiment_id": "0", "name": "Default", "lifecycle_stage": "active"}}
        self.runs = {}
        self.artifacts = {}      # url path -> bytes
        self.fail_next = []      # (status, headers, body) answered before real handling
        self.page_size = None    # cap on runs per search page
        self.close_after_reply = False  # drop keep-alive connections without saying so
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._handle(self)

            do_POST = do_PUT = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def calls(self, endpoint):
        return [r for r in self.requests if r["path"].endswith(endpoint)]

    def _handle(self, h):
        u = urllib.parse.urlsplit(h.path)
        n = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(n) if n else b""
        body = raw
        if h.headers.get("Content-Type") == "application/json":
            body = json.loads(raw)
        req = {"method": h.command, "path": u.path, "query": urllib.parse.parse_qs(u.query),
               "body": body, "headers": dict(h.headers), "port": h.client_address[1]}
        with self.lock:
            self.requests.append(req)
            fail = self.fail_next.pop(0) if self.fail_next else None
        if fail:
            status, headers, text = fail
            return self._reply(h, status, text, headers)
        try:
            with self.lock:
                out = self._route(req)
            self._reply(h, 200, json.dumps(out))
        except _Err as e:
            self._reply(h, e.status, json.dumps({"error_code": e.code, "message": e.msg}))

    def _reply(self, h, status, text, headers=None):
        data = text.encode() if isinstance(text, str) else text
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        if self.close_after_reply:
            h.close_connection = True

    def _run(self, run_id):
        if run_id not in self.runs:
            raise _Err(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found")
        return self.runs[run_id]

    def _route(self, req):
        p, b, q = req["path"], req["body"], req["query"]
        if req["method"] == "PUT" and p.startswith("/api/2.0/mlflow-artifacts/artifacts/"):
            self.artifacts[p] = b
            return {}
        ep = p.replace("/api/2.0/mlflow/", "")
        if ep == "experiments/get-by-name":
            for e in self.experiments.values():
                if e["name"] == q["experiment_name"][0]:
                    return {"experiment": e}
            raise _Err(404, "RESOURCE_DOES_NOT_EXIST", "Could not find experiment")
        if ep == "experiments/create":
            eid = str(len(self.experiments))
            self.experiments[eid] = {"experiment_id": eid, "name": b["name"], "lifecycle_stage": "active"}
            return {"experiment_id": eid}
        if ep == "runs/create":
            rid = uuid.uuid4().hex
            eid = b["experiment_id"]
            info = {"run_id": rid, "run_uuid": rid, "experiment_id": eid, "status": "RUNNING",
                    "run_name": b.get("run_name", ""), "start_time": b["start_time"],
                    "lifecycle_stage": "active", "user_id": b.get("user_id", ""),
                    "artifact_uri": f"mlflow-artifacts:/{eid}/{rid}/artifacts"}
            self.runs[rid] = {"info": info, "data": {"metrics": {}, "params": {}, "tags": {
                t["key"]: t["value"] for t in b.get("tags", [])}}, "inputs": []}
            return {"run": self._render(self.runs[rid])}
        if ep == "runs/get":
            return {"run": self._render(self._run(q["run_id"][0]))}
        if ep == "runs/update":
            info = self._run(b["run_id"])["info"]
            for k in ("status", "end_time", "run_name"):
                if k in b:
                    info[k] = b[k]
            return {"run_info": info}
        if ep == "runs/log-batch":
            run = self._run(b["run_id"])
            m, pa, t = b.get("metrics", []), b.get("params", []), b.get("tags", [])
            if len(m) > 1000 or len(pa) + len(t) > 100 or len(m) + len(pa) + len(t) > 1000:
                raise _Err(400, "INVALID_PARAMETER_VALUE", "batch over MLflow's limits")
            for x in m:
                run["data"]["metrics"][x["key"]] = x
            for x in pa:
                old = run["data"]["params"].get(x["key"])
                if old is not None and old != x["value"]:
                    raise _Err(400, "INVALID_PARAMETER_VALUE", f"Changing param values is not allowed: {x['key']}")
                run["data"]["params"][x["key"]] = x["value"]
            for x in t:
                run["data"]["tags"][x["key"]] = x["value"]
            return {}
        if ep == "runs/set-tag":
            self._run(b["run_id"])["data"]["tags"][b["key"]] = b["value"]
            return {}
        if ep == "runs/log-inputs":
            self._run(b["run_id"])["inputs"].extend(b["datasets"])
            return {}
        if ep == "runs/search":
            runs = sorted((r for r in self.runs.values() if r["info"]["experiment_id"] in b["experiment_ids"]),
                          key=lambda r: r["info"]["run_id"])
            start = int(b.get("page_token") or 0)
            size = min(b["max_results"], self.page_size or b["max_results"])
            page = runs[start:start + size]
            out = {"runs": [self._render(r) for r in page]}
            if start + size < len(runs):
                out["next_page_token"] = str(start + size)
            return out
        raise _Err(404, "ENDPOINT_NOT_FOUND", f"no endpoint {p}")

    @staticmethod
    def _render(run):
        d = run["data"]
        return {"info": dict(run["info"]), "data": {
            "metrics": list(d["metrics"].values()),
            "params": [{"key": k, "value": v} for k, v in d["params"].items()],
            "tags": [{"key": k, "value": v} for k, v in d["tags"].items()]},
            "inputs": {"dataset_inputs": list(run["inputs"])}}


class _Err(Exception):
    def __init__(self, status, code, msg):
        self.status, self.code, self.msg = status, code, msg


def as_dict(entries):
    return {e["key"]: e["value"] for e in entries}


def scenario(test, uri):
    """Log a small run end to end and read it back: the same steps run
    against the fake and, with FORGE_TEST_SERVER, against a real server."""
    forge._reset_state()
    forge.set_tracking_uri(uri)
    name = "forge-client-" + uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.bin")
        with open(model, "wb") as f:
            f.write(b"\x00weights\xff")
        with forge.start_run(run_name="scenario", experiment_name=name, tags={"team": "ml"}) as run:
            forge.log_params({"lr": 0.1, "layers": 3})
            forge.set_tag("phase", "test")
            for step in range(25):
                forge.log_metric("loss", 1.0 / (step + 1), step=step)
            forge.log_metrics({"acc": 0.9, "f1": 0.75}, step=25)
            forge.log_artifact(model, "models")
            forge.log_input("iris", "abc123", "s3://bucket/iris.csv", context="train")
    got = forge.get_run(run.run_id)
    test.assertEqual(got["info"]["status"], "FINISHED")
    metrics = {m["key"]: m for m in got["data"]["metrics"]}
    test.assertAlmostEqual(metrics["loss"]["value"], 1.0 / 25)
    test.assertEqual(metrics["loss"]["step"], 24)
    test.assertAlmostEqual(metrics["acc"]["value"], 0.9)
    test.assertEqual(as_dict(got["data"]["params"]), {"lr": "0.1", "layers": "3"})
    tags = as_dict(got["data"]["tags"])
    test.assertEqual((tags["team"], tags["phase"], tags["mlflow.runName"]), ("ml", "test", "scenario"))
    inputs = got.get("inputs", {}).get("dataset_inputs", [])
    test.assertEqual([i["dataset"]["name"] for i in inputs], ["iris"])
    exp = forge.get_experiment_by_name(name)
    test.assertEqual(exp["experiment_id"], run.experiment_id)
    found = forge.search_runs([run.experiment_id], "metrics.acc > 0.5 and params.lr = '0.1'",
                              order_by=["metrics.acc DESC"])
    test.assertEqual([r["info"]["run_id"] for r in found], [run.run_id])
    return run


class FakeServerTest(unittest.TestCase):
    def setUp(self):
        self.saved_env = {k: os.environ.pop(k) for k in ENV_KEYS if k in os.environ}
        self.fake = FakeMLflow()
        os.environ["MLFLOW_TRACKING_URI"] = self.fake.url
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "0.01"
        forge._reset_state()

    def tearDown(self):
        forge._reset_state()
        for k in ENV_KEYS + ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",):
            os.environ.pop(k, None)
        os.environ.update(self.saved_env)
        self.fake.close()

    def run_script(self, code, **env):
        full = dict(os.environ, PYTHONPATH=PKG_ROOT, **env)
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full,
                              capture_output=True, text=True, timeout=60)

    def test_scenario(self):
        run = scenario(self, self.fake.url)
        path = f"/api/2.0/mlflow-artifacts/artifacts/{run.experiment_id}/{run.run_id}/artifacts/models/model.bin"
        self.assertEqual(self.fake.artifacts[path], b"\x00weights\xff")
        search = self.fake.calls("runs/search")[0]["body"]
        self.assertEqual(search["filter"], "metrics.acc > 0.5 and params.lr = '0.1'")
        self.assertEqual(search["order_by"], ["metrics.acc DESC"])

    def test_metrics_are_buffered_into_one_batch(self):
        run = forge.start_run()
        for i in range(50):
            forge.log_metric("m", i, step=i)
        self.assertEqual(self.fake.calls("runs/log-batch"), [])
        forge.end_run()
        batches = self.fake.calls("runs/log-batch")
        self.assertEqual(len(batches), 1)
        self.assertEqual([m["value"] for m in batches[0]["body"]["metrics"]], list(range(50)))
        self.assertEqual([m["step"] for m in batches[0]["body"]["metrics"]], list(range(50)))
        self.assertEqual(batches[0]["body"]["run_id"], run.run_id)
        update = self.fake.calls("runs/update")[-1]["body"]
        self.assertEqual(update["status"], "FINISHED")
        # The batch went before the run was ended.
        order = [r["path"].rsplit("/", 1)[-1] for r in self.fake.requests]
        self.assertLess(order.index("log-batch"), order.index("update"))

    def test_buffer_flushes_at_1000_and_on_flush(self):
        forge.start_run()
        for i in range(2500):
            forge.log_metric("m", i)
        self.assertEqual([len(b["body"]["metrics"]) for b in self.fake.calls("runs/log-batch")], [1000, 1000])
        forge.flush()
        self.assertEqual([len(b["body"]["metrics"]) for b in self.fake.calls("runs/log-batch")], [1000, 1000, 500])
        forge.end_run()
        self.assertEqual(len(self.fake.calls("runs/log-batch")), 3)

    def test_log_metrics_and_nan(self):
        forge.start_run()
        forge.log_metrics({"a": 1, "b": float("nan"), "c": float("inf"), "d": -math.inf}, step=7, timestamp=123)
        forge.end_run()
        sent = self.fake.calls("runs/log-batch")[0]["body"]["metrics"]
        self.assertEqual([(m["key"], m["value"], m["step"], m["timestamp"]) for m in sent],
                         [("a", 1.0, 7, 123), ("b", "NaN", 7, 123), ("c", "Infinity", 7, 123),
                          ("d", "-Infinity", 7, 123)])

    def test_split_batch_limits(self):
        metrics = [{"key": "m", "value": i, "timestamp": 0, "step": i} for i in range(2345)]
        params = [{"key": f"p{i}", "value": "v"} for i in range(150)]
        tags = [{"key": f"t{i}", "value": "v"} for i in range(70)]
        run = forge.start_run()
        forge.get_client().log_batch(run.run_id, metrics, params, tags)
        batches = [b["body"] for b in self.fake.calls("runs/log-batch")]
        for b in batches:
            self.assertLessEqual(len(b["metrics"]), 1000)
            self.assertLessEqual(len(b["params"]) + len(b["tags"]), 100)
            self.assertLessEqual(len(b["metrics"]) + len(b["params"]) + len(b["tags"]), 1000)
        self.assertEqual([m for b in batches for m in b["metrics"]], metrics)
        self.assertEqual([p for b in batches for p in b["params"]], params)
        self.assertEqual([t for b in batches for t in b["tags"]], tags)
        # 220 params and tags need 3 batches; the metrics fill the room left in them.
        self.assertEqual([(len(b["params"]), len(b["tags"]), len(b["metrics"])) for b in batches],
                         [(100, 0, 900), (50, 50, 900), (0, 20, 545)])

    def test_log_params_split_at_100(self):
        forge.start_run()
        forge.log_params({f"p{i}": i for i in range(250)})
        sizes = [len(b["body"]["params"]) for b in self.fake.calls("runs/log-batch")]
        self.assertEqual(sizes, [100, 100, 50])

    def test_flush_at_exit(self):
        out = self.run_script("""
            import forge
            forge.start_run(run_name="exiting")
            for i in range(10):
                forge.log_metric("loss", i / 10, step=i)
        """)
        self.assertEqual(out.returncode, 0, out.stderr)
        batches = self.fake.calls("runs/log-batch")
        self.assertEqual(len(batches), 1)
        self.assertEqual(len(batches[0]["body"]["metrics"]), 10)
        self.assertEqual(self.fake.calls("runs/update")[-1]["body"]["status"], "FINISHED")

    def test_uncaught_exception_ends_run_failed(self):
        out = self.run_script("""
            import forge
            forge.log_metric("loss", 1.0)
            raise SystemError("boom")
        """)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("boom", out.stderr)
        self.assertEqual(len(self.fake.calls("runs/create")), 1)
        self.assertEqual(len(self.fake.calls("runs/log-batch")), 1)
        self.assertEqual(self.fake.calls("runs/update")[-1]["body"]["status"], "FAILED")

    def test_context_manager_status(self):
        with forge.start_run() as run:
            pass
        self.assertEqual(self.fake.runs[run.run_id]["info"]["status"], "FINISHED")
        with self.assertRaises(ValueError):
            with forge.start_run() as run:
                raise ValueError("x")
        self.assertEqual(self.fake.runs[run.run_id]["info"]["status"], "FAILED")
        self.assertIsNone(forge.active_run())

    def test_run_id_env_attaches(self):
        run = forge.get_client().create_run("0", run_name="from-job")
        run_id = run["info"]["run_id"]
        forge._reset_state()
        os.environ["MLFLOW_RUN_ID"] = run_id
        with forge.start_run() as active:
            self.assertEqual(active.run_id, run_id)
            forge.log_metric("x", 1)
            forge.log_param("p", "v")
        self.assertEqual(len(self.fake.calls("runs/create")), 1)  # only ours above
        self.assertTrue(all(b["body"]["run_id"] == run_id for b in self.fake.calls("runs/log-batch")))
        self.assertEqual(self.fake.runs[run_id]["info"]["status"], "FINISHED")

    def test_run_id_env_in_subprocess(self):
        run_id = forge.get_client().create_run("0")["info"]["run_id"]
        out = self.run_script("""
            import forge
            forge.log_metric("acc", 0.5)
        """, MLFLOW_RUN_ID=run_id)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(self.fake.calls("runs/create")), 1)
        self.assertEqual(self.fake.runs[run_id]["data"]["metrics"]["acc"]["value"], 0.5)

    def test_experiment_from_env(self):
        os.environ["MLFLOW_EXPERIMENT_NAME"] = "from-env"
        run = forge.start_run()
        exp = forge.get_experiment_by_name("from-env")
        self.assertEqual(run.experiment_id, exp["experiment_id"])
        forge.end_run()
        forge._reset_state()
        os.environ["MLFLOW_EXPERIMENT_NAME"] = ""
        os.environ["MLFLOW_EXPERIMENT_ID"] = exp["experiment_id"]
        run = forge.start_run()
        self.assertEqual(run.experiment_id, exp["experiment_id"])
        self.assertEqual(len(self.fake.calls("experiments/create")), 1)

    def test_token_and_keep_alive(self):
        os.environ["MLFLOW_TRACKING_TOKEN"] = "s3cret"
        forge.start_run()
        forge.set_tag("a", "b")
        forge.end_run()
        reqs = self.fake.requests
        self.assertGreaterEqual(len(reqs), 3)
        self.assertTrue(all(r["headers"].get("Authorization") == "Bearer s3cret" for r in reqs))
        self.assertEqual(len({r["port"] for r in reqs}), 1, "requests did not share one connection")

    def test_server_closing_idle_connection(self):
        self.fake.close_after_reply = True
        forge.start_run()
        forge.set_tag("a", "b")
        forge.end_run()
        self.assertEqual(self.fake.calls("runs/update")[-1]["body"]["status"], "FINISHED")

    def test_artifact_paths(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "a.txt"), "w") as f:
                f.write("A")
            os.makedirs(os.path.join(tmp, "sub", "deep"))
            with open(os.path.join(tmp, "sub", "deep", "b c.txt"), "w") as f:
                f.write("B")
            run = forge.start_run()
            forge.log_artifact(os.path.join(tmp, "a.txt"))
            forge.log_artifacts(tmp, "out/dir")
        base = f"/api/2.0/mlflow-artifacts/artifacts/{run.experiment_id}/{run.run_id}/artifacts/"
        self.assertEqual(self.fake.artifacts, {
            base + "a.txt": b"A",
            base + "out/dir/a.txt": b"A",
            base + "out/dir/sub/deep/b%20c.txt": b"B",
        })
        self.assertTrue(all(r["method"] == "PUT" for r in self.fake.requests if "artifacts/" in r["path"]))

    def test_artifact_uri_forms(self):
        c = forge.Client("https://forge.example:7700/base")
        self.assertEqual(c.artifact_target("mlflow-artifacts:/1/r/artifacts"),
                         ("https", "forge.example:7700", "/base/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts"))
        self.assertEqual(c.artifact_target("mlflow-artifacts://other:5000/1/r/artifacts/"),
                         ("https", "other:5000", "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts"))
        self.assertEqual(c.artifact_target("file:///tmp/x/artifacts"), ("file", "", "/tmp/x/artifacts"))
        with self.assertRaises(forge.ForgeError):
            c.artifact_target("s3://bucket/x")
        # A host in the URI is where the upload goes.
        run = forge.get_client().create_run("0")
        host = self.fake.url.split("//")[1]
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"z")
            f.flush()
            forge.get_client().upload_artifact(f"mlflow-artifacts://{host}/0/{run['info']['run_id']}/artifacts",
                                               f.name, "x/y.bin")
        self.assertEqual(self.fake.artifacts[f"/api/2.0/mlflow-artifacts/artifacts/0/{run['info']['run_id']}/artifacts/x/y.bin"], b"z")

    def test_error_mapping(self):
        with self.assertRaises(forge.ForgeError) as cm:
            forge.get_run("nope")
        self.assertEqual((cm.exception.error_code, cm.exception.status), ("RESOURCE_DOES_NOT_EXIST", 404))
        self.assertIn("nope", cm.exception.message)
        self.fake.fail_next = [(500, {}, "<html>oops</html>")]
        with self.assertRaises(forge.ForgeError) as cm:
            forge.get_experiment_by_name("x")
        self.assertEqual((cm.exception.error_code, cm.exception.status), ("INTERNAL_ERROR", 500))
        self.assertIsNone(forge.get_experiment_by_name("missing"))
        forge.start_run()
        forge.log_param("p", "1")
        with self.assertRaises(forge.ForgeError) as cm:
            forge.log_param("p", "2")
        self.assertEqual(cm.exception.error_code, "INVALID_PARAMETER_VALUE")

    def test_retries_on_503_and_429(self):
        self.fake.fail_next = [(503, {}, "{}"), (429, {"Retry-After": "0"}, "{}")]
        exp_id = forge.create_experiment("retried")
        self.assertEqual(self.fake.experiments[exp_id]["name"], "retried")
        self.assertEqual(len(self.fake.calls("experiments/create")), 3)
        self.fake.fail_next = [(503, {}, "{}")] * 10
        c = forge.Client(self.fake.url, max_retries=2, backoff=0.001)
        with self.assertRaises(forge.ForgeError) as cm:
            c.create_experiment("never")
        self.assertEqual((cm.exception.error_code, cm.exception.status), ("TEMPORARILY_UNAVAILABLE", 503))

    def test_connection_refused(self):
        port = self.fake.server.server_address[1]
        self.fake.close()
        c = forge.Client(f"http://127.0.0.1:{port}", max_retries=2, backoff=0.001)
        with self.assertRaises(forge.ForgeError) as cm:
            c.get_run("x")
        self.assertEqual(cm.exception.error_code, "TEMPORARILY_UNAVAILABLE")
        self.assertIsNone(cm.exception.status)
        self.fake = FakeMLflow()  # for tearDown

    def test_failed_flush_keeps_metrics(self):
        forge.start_run()
        forge.log_metric("m", 1)
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
        try:
            forge._state.client = None
            self.fake.fail_next = [(503, {}, "{}")]
            with self.assertRaises(forge.ForgeError):
                forge.flush()
            forge.flush()
        finally:
            del os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        sent = [b["body"]["metrics"] for b in self.fake.calls("runs/log-batch") if b["body"].get("metrics")]
        self.assertEqual([[m["value"] for m in s] for s in sent], [[1], [1]])  # refused once, then delivered
        self.assertEqual(forge._state.buffered, 0)

    def test_search_runs_pages(self):
        exp = forge.create_experiment("many")
        ids = sorted(forge.get_client().create_run(exp)["info"]["run_id"] for _ in range(5))
        self.fake.page_size = 2
        got = forge.search_runs([exp], "attributes.status = 'RUNNING'")
        self.assertEqual([r["info"]["run_id"] for r in got], ids)
        bodies = [r["body"] for r in self.fake.calls("runs/search")]
        self.assertEqual([b.get("page_token") for b in bodies], [None, "2", "4"])
        self.assertEqual([r["info"]["run_id"] for r in forge.search_runs(exp, max_results=3)], ids[:3])

    def test_nested_requires_flag(self):
        forge.start_run()
        with self.assertRaises(forge.ForgeError):
            forge.start_run()
        child = forge.start_run(nested=True)
        parent = forge._state.runs[0]
        self.assertEqual(self.fake.runs[child.run_id]["data"]["tags"]["mlflow.parentRunId"], parent.run_id)
        forge.end_run()
        self.assertIs(forge.active_run(), parent)


@unittest.skipUnless(os.environ.get("FORGE_TEST_SERVER"), "set FORGE_TEST_SERVER=http://host:port to run")
class RealServerTest(unittest.TestCase):
    def test_scenario(self):
        saved = {k: os.environ.pop(k) for k in ENV_KEYS if k in os.environ}
        try:
            scenario(self, os.environ["FORGE_TEST_SERVER"])
        finally:
            forge._reset_state()
            os.environ.update(saved)


if __name__ == "__main__":
    unittest.main()
