"""A user's predictor as the process runtime runs it: the Open Inference
Protocol over HTTP/1.1 on $PORT, standard library only. Model "double":
input "x" FP32 [-1, 3], output "y" = 2 * x.

MODE=never_ready says why on stderr and answers 503 to readiness forever.
PID_FILE, if set, gets this process's id (so a test can kill it)."""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = os.environ.get("MODE", "ok")
NAME = os.environ.get("FORGE_MODEL_NAME", "double")
META = {"name": NAME, "versions": [os.environ.get("FORGE_MODEL_VERSION", "1")], "platform": "python",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def send(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v2/health/ready":
            self.send(503 if MODE == "never_ready" else 200, {})
        elif self.path == "/v2/models/" + NAME:
            self.send(200, META)
        else:
            self.send(404, {"error": "unknown path " + self.path})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v2/models/" + NAME + "/infer":
            self.send(404, {"error": "unknown path " + self.path})
            return
        req = json.loads(body)
        x = [t for t in req["inputs"] if t["name"] == "x"]
        if not x:
            self.send(400, {"error": "input x is missing"})
            return
        x = x[0]
        self.send(200, {"model_name": NAME, "outputs": [
            {"name": "y", "datatype": "FP32", "shape": x["shape"], "data": [2 * v for v in x["data"]]}]})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    if os.environ.get("PID_FILE"):
        with open(os.environ["PID_FILE"], "w") as f:
            f.write(str(os.getpid()))
    if MODE == "never_ready":
        print("loading weights failed: checkpoint.bin is missing", file=sys.stderr, flush=True)
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
