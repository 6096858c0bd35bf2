"""The Python peer of the serving benchmark: FastAPI (Debian's
python3-fastapi, run by python3-uvicorn) around a scikit-learn
MLPClassifier of the ONNX fixture's shape (4-16-3), trained on random data
at start. It answers the same Open Inference Protocol JSON request.

TCP_NODELAY is set on every connection here: with --workers, uvicorn's
accepted sockets came without it, and Nagle's algorithm against delayed
ACKs held each response about 40 ms."""
import socket
import warnings

import numpy as np
from fastapi import FastAPI, Request
from sklearn.neural_network import MLPClassifier

warnings.filterwarnings("ignore")  # the random data does not converge
rng = np.random.default_rng(0)
clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=50, random_state=0).fit(
    rng.normal(size=(300, 4)), rng.integers(0, 3, 300))
app = FastAPI()


def _nodelay(cls):
    made = cls.connection_made

    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        made(self, transport)
    cls.connection_made = connection_made


from uvicorn.protocols.http import h11_impl  # noqa: E402
_nodelay(h11_impl.H11Protocol)
try:
    from uvicorn.protocols.http import httptools_impl
    _nodelay(httptools_impl.HttpToolsProtocol)
except ImportError:
    pass


@app.get("/v2/health/ready")
async def ready():
    return {}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    body = await request.json()
    t = body["inputs"][0]
    x = np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
    p = clf.predict_proba(x).astype(np.float32)
    return {"model_name": name, "outputs": [
        {"name": "output", "datatype": "FP32", "shape": list(p.shape), "data": p.ravel().tolist()}]}
