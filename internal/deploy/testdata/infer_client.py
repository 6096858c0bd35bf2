"""Calls a Forge deployment over the Open Inference Protocol with the
standard library only, and checks every complete reference row against the
outputs xgboost computed.

usage: infer_client.py BASE_URL DEPLOYMENT REFERENCE_JSON
"""
import json
import sys
import urllib.error
import urllib.request

base, name, reference = sys.argv[1], sys.argv[2], sys.argv[3]
with open(reference) as f:
    ref = json.load(f)
rows = [(r, o) for r, o in zip(ref["inputs"], ref["outputs"]) if None not in r][:20]

with urllib.request.urlopen(f"{base}/v2/models/{name}") as resp:
    meta = json.load(resp)
inp = meta["inputs"][0]
assert inp["shape"] == [-1, len(rows[0][0])], meta

body = {"inputs": [{"name": inp["name"], "datatype": "FP32", "shape": [len(rows), len(rows[0][0])],
                    "data": [v for r, _ in rows for v in r]}]}
req = urllib.request.Request(f"{base}/v2/models/{name}/infer", data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req) as resp:
    out = json.load(resp)
got = out["outputs"][0]["data"]
assert len(got) == len(rows), out
for g, (_, want) in zip(got, rows):
    assert abs(g - want[0]) <= 1e-3 * max(1, abs(want[0])), (g, want[0])

try:
    urllib.request.urlopen(urllib.request.Request(f"{base}/v2/models/no-such-deployment/infer", data=b"{}"))
    raise SystemExit("an unknown deployment answered")
except urllib.error.HTTPError as e:
    assert e.code == 404, e.code
    assert "error" in json.load(e), "want an {\"error\": ...} body"
print(f"python client: {len(rows)} rows match xgboost's outputs")
