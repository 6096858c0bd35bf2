"""Open Inference Protocol client test against a running `forge serve`.

Standard library only (urllib, json, struct), as a user's script would be.
Usage: python3 oip_client_test.py BASE_URL MLP_REFERENCE_JSON
The server must serve mlp.onnx as model "mlp" version 1.
"""
import json
import struct
import sys
import unittest
import urllib.error
import urllib.request

BASE = None
REF = None


def call(method, path, body=None, headers=None):
    req = urllib.request.Request(BASE + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class OIPTest(unittest.TestCase):
    def test_health_and_metadata(self):
        self.assertEqual(call("GET", "/v2/health/live")[0], 200)
        self.assertEqual(call("GET", "/v2/health/ready")[0], 200)
        status, _, body = call("GET", "/v2")
        self.assertIn("binary_tensor_data", json.loads(body)["extensions"])
        status, _, body = call("GET", "/v2/models/mlp")
        md = json.loads(body)
        self.assertEqual(md["platform"], "onnxruntime_onnx")
        self.assertEqual(md["inputs"], [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}])

    def check_outputs(self, got, rows):
        want = [v for r in REF["outputs"][:rows] for v in r]
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertAlmostEqual(g, w, delta=1e-6)

    def test_json(self):
        rows = REF["inputs"][:5]
        body = json.dumps({"id": "py", "inputs": [
            {"name": "input", "shape": [5, 4], "datatype": "FP32", "data": rows}]}).encode()
        status, headers, resp = call("POST", "/v2/models/mlp/versions/1/infer", body,
                                     {"Content-Type": "application/json"})
        self.assertEqual(status, 200, resp)
        out = json.loads(resp)
        self.assertEqual(out["id"], "py")
        self.assertEqual(out["outputs"][0]["shape"], [5, 3])
        self.check_outputs(out["outputs"][0]["data"], 5)

    def test_binary(self):
        rows = REF["inputs"][:8]
        raw = struct.pack("<%df" % 32, *[v for r in rows for v in r])
        header = json.dumps({
            "inputs": [{"name": "input", "shape": [8, 4], "datatype": "FP32",
                        "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}).encode()
        status, headers, resp = call("POST", "/v2/models/mlp/infer", header + raw, {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(len(header))})
        self.assertEqual(status, 200, resp)
        n = int(headers["Inference-Header-Content-Length"])
        out = json.loads(resp[:n])
        size = out["outputs"][0]["parameters"]["binary_data_size"]
        self.assertEqual(size, 8 * 3 * 4)
        self.check_outputs(list(struct.unpack("<%df" % 24, resp[n:n + size])), 8)

    def test_errors(self):
        status, _, body = call("POST", "/v2/models/nope/infer", b'{"inputs":[]}')
        self.assertEqual(status, 404)
        self.assertIn("error", json.loads(body))
        bad = json.dumps({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                                      "data": [1, 2, 3]}]}).encode()
        status, _, body = call("POST", "/v2/models/mlp/infer", bad)
        self.assertEqual(status, 400)
        self.assertIn("want [-1,4]", json.loads(body)["error"])


if __name__ == "__main__":
    BASE = sys.argv[1].rstrip("/")
    with open(sys.argv[2]) as f:
        REF = json.load(f)
    unittest.main(argv=sys.argv[:1], verbosity=2)
