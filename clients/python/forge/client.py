"""Client: one method per MLflow REST API 2.0 call, over keep-alive HTTP.

Standard library only. Every method returns the server's JSON as plain dicts
(the same shapes MLflow's REST API documents), so this works against Forge
and against a real MLflow tracking server.
"""

import http.client
import json
import math
import os
import random
import shutil
import threading
import time
import urllib.parse

__all__ = ["Client", "ForgeError", "split_batch",
           "MAX_METRICS_PER_BATCH", "MAX_PARAMS_TAGS_PER_BATCH", "MAX_ENTITIES_PER_BATCH"]

# MLflow's runs/log-batch limits (mlflow.utils.validation).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000

_RETRY_STATUSES = {429, 502, 503, 504}

# Error codes for answers without an MLflow error body (a proxy's 502 page,
# a bare 404), chosen as MLflow's server would.
_STATUS_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "ENDPOINT_NOT_FOUND",
    409: "RESOURCE_ALREADY_EXISTS",
    413: "INVALID_PARAMETER_VALUE",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}


class ForgeError(Exception):
    """An error answered by the server, or the server could not be reached.

    error_code is MLflow's code (RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE,
    ...); status is the HTTP status, or None when no answer came.
    """

    def __init__(self, error_code, message, status=None):
        super().__init__(f"{error_code}: {message}" + (f" (HTTP {status})" if status else ""))
        self.error_code = error_code
        self.message = message
        self.status = status


def _now_ms():
    return int(time.time() * 1000)


def _metric_value(v):
    # JSON has no NaN or infinities; protobuf's JSON mapping (which MLflow's
    # server parses) spells them as strings.
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def split_batch(metrics=(), params=(), tags=()):
    """Split entities into log-batch payloads within MLflow's limits.

    Params and tags go first, 100 to a batch, each batch topped up with
    metrics to 1000 entities; the remaining metrics follow 1000 to a batch.
    Yields (metrics, params, tags) lists.
    """
    metrics, params, tags = list(metrics), list(params), list(tags)
    pt = [("p", x) for x in params] + [("t", x) for x in tags]
    mi = 0
    for i in range(0, len(pt), MAX_PARAMS_TAGS_PER_BATCH):
        chunk = pt[i:i + MAX_PARAMS_TAGS_PER_BATCH]
        room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(chunk))
        m = metrics[mi:mi + room]
        mi += len(m)
        yield m, [x for k, x in chunk if k == "p"], [x for k, x in chunk if k == "t"]
    while mi < len(metrics):
        m = metrics[mi:mi + MAX_METRICS_PER_BATCH]
        mi += len(m)
        yield m, [], []


class Client:
    """A connection to a tracking server speaking MLflow's REST API 2.0.

    Thread-safe: each thread keeps its own keep-alive connection.
    """

    def __init__(self, tracking_uri, token=None, max_retries=5, backoff=0.5,
                 timeout=120.0):
        u = urllib.parse.urlsplit(tracking_uri.rstrip("/"))
        if u.scheme not in ("http", "https"):
            raise ValueError(f"tracking URI must be http:// or https://, got {tracking_uri!r}")
        self.tracking_uri = tracking_uri.rstrip("/")
        self._scheme = u.scheme
        self._netloc = u.netloc
        self._base_path = u.path
        self.token = token
        self.max_retries = max_retries
        self.backoff = backoff
        self.timeout = timeout
        self._local = threading.local()

    # --- HTTP -----------------------------------------------------------

    def _conn(self, scheme, netloc):
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        c = conns.get((scheme, netloc))
        if c is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            c = conns[(scheme, netloc)] = cls(netloc, timeout=self.timeout)
            c._forge_used = False
        return c

    def _drop(self, scheme, netloc):
        c = getattr(self._local, "conns", {}).pop((scheme, netloc), None)
        if c is not None:
            c.close()

    def close(self):
        """Close this thread's connections."""
        for key in list(getattr(self._local, "conns", {})):
            self._drop(*key)

    def request(self, method, path, body=None, query=None, *, raw_body=None,
                headers=None, scheme=None, netloc=None, absolute=False):
        """Send one request and return the decoded JSON answer ({} when empty).

        Retries with exponential backoff on connection errors and on 429,
        502, 503 and 504, honouring Retry-After. raw_body may be bytes or a
        seekable file; it is rewound for each try. absolute means path
        already holds the server's base path.
        """
        scheme, netloc = scheme or self._scheme, netloc or self._netloc
        url = path if absolute else self._base_path + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        hdrs = {"Accept": "application/json", "User-Agent": "forge-python-client"}
        if self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            hdrs["Content-Type"] = "application/json"
        elif raw_body is not None:
            data = raw_body
            hdrs["Content-Type"] = "application/octet-stream"
        hdrs.update(headers or {})
        if hasattr(data, "seek"):
            data.seek(0, os.SEEK_END)
            hdrs["Content-Length"] = str(data.tell())
        elif data is not None:
            hdrs["Content-Length"] = str(len(data))

        attempt = 0
        while True:
            if hasattr(data, "seek"):
                data.seek(0)
            conn = self._conn(scheme, netloc)
            reused = conn._forge_used
            try:
                conn.request(method, url, body=data, headers=hdrs)
                resp = conn.getresponse()
                payload = resp.read()
                conn._forge_used = True
            except (OSError, http.client.HTTPException) as e:
                self._drop(scheme, netloc)
                # A kept-alive connection the server closed while idle fails
                # on first use: retry at once on a fresh one, without counting.
                if reused and isinstance(e, (http.client.RemoteDisconnected,
                                             ConnectionResetError, BrokenPipeError)):
                    continue
                if attempt >= self.max_retries:
                    raise ForgeError("TEMPORARILY_UNAVAILABLE",
                                     f"{method} {scheme}://{netloc}{url}: {e}") from e
                self._sleep(attempt, None)
                attempt += 1
                continue
            if resp.getheader("Connection", "").lower() == "close":
                self._drop(scheme, netloc)
            if resp.status in _RETRY_STATUSES and attempt < self.max_retries:
                self._sleep(attempt, resp.getheader("Retry-After"))
                attempt += 1
                continue
            return self._decode(resp.status, payload, method, url)

    def _sleep(self, attempt, retry_after):
        delay = None
        if retry_after:
            try:
                delay = float(retry_after)
            except ValueError:
                delay = None
        if delay is None:
            delay = self.backoff * (2 ** attempt) * (0.5 + random.random() / 2)
        time.sleep(min(delay, 60.0))

    @staticmethod
    def _decode(status, payload, method, url):
        try:
            doc = json.loads(payload) if payload else {}
        except ValueError:
            doc = None
        if 200 <= status < 300:
            if doc is None:
                raise ForgeError("INTERNAL_ERROR", f"{method} {url}: answer is not JSON", status)
            return doc
        if isinstance(doc, dict) and "error_code" in doc:
            raise ForgeError(doc["error_code"], doc.get("message", ""), status)
        text = payload[:200].decode("utf-8", "replace").strip()
        raise ForgeError(_STATUS_CODES.get(status, "INTERNAL_ERROR"),
                         f"{method} {url}: {text or 'HTTP ' + str(status)}", status)

    def _post(self, endpoint, body):
        return self.request("POST", "/api/2.0/mlflow/" + endpoint, body=body)

    def _get(self, endpoint, **query):
        return self.request("GET", "/api/2.0/mlflow/" + endpoint, query=query)

    # --- experiments ----------------------------------------------------

    def create_experiment(self, name, artifact_location=None, tags=None):
        """Create an experiment and return its id."""
        body = {"name": name}
        if artifact_location:
            body["artifact_location"] = artifact_location
        if tags:
            body["tags"] = [{"key": k, "value": str(v)} for k, v in tags.items()]
        return self._post("experiments/create", body)["experiment_id"]

    def get_experiment(self, experiment_id):
        return self._get("experiments/get", experiment_id=experiment_id)["experiment"]

    def get_experiment_by_name(self, name):
        """Return the experiment dict, or None when there is none by that name."""
        try:
            return self._get("experiments/get-by-name", experiment_name=name)["experiment"]
        except ForgeError as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def get_or_create_experiment(self, name):
        """Return the id of the experiment named name, creating it if needed."""
        exp = self.get_experiment_by_name(name)
        if exp is not None:
            return exp["experiment_id"]
        try:
            return self.create_experiment(name)
        except ForgeError as e:
            # Another process (a sweep's sibling) created it first.
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.get_experiment_by_name(name)["experiment_id"]

    # --- runs -----------------------------------------------------------

    def create_run(self, experiment_id, run_name=None, tags=None, start_time=None, user_id=None):
        """Create a run and return its dict ({"info": ..., "data": ...})."""
        tags = dict(tags or {})
        if run_name:
            tags.setdefault("mlflow.runName", run_name)
        body = {
            "experiment_id": str(experiment_id),
            "start_time": start_time or _now_ms(),
            "tags": [{"key": k, "value": str(v)} for k, v in tags.items()],
        }
        if run_name:
            body["run_name"] = run_name
        if user_id:
            body["user_id"] = user_id
        return self._post("runs/create", body)["run"]

    def get_run(self, run_id):
        """Return the run dict: {"info": {...}, "data": {"metrics": [...], "params": [...], "tags": [...]}}."""
        return self._get("runs/get", run_id=run_id)["run"]

    def update_run(self, run_id, status=None, end_time=None, run_name=None):
        body = {"run_id": run_id, "run_uuid": run_id}
        if status:
            body["status"] = status
        if end_time:
            body["end_time"] = end_time
        if run_name:
            body["run_name"] = run_name
        return self._post("runs/update", body).get("run_info", {})

    def set_terminated(self, run_id, status="FINISHED", end_time=None):
        return self.update_run(run_id, status=status, end_time=end_time or _now_ms())

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        """Send entities with runs/log-batch, split over MLflow's limits.

        metrics are dicts {key, value, timestamp, step}; params and tags
        dicts {key, value}.
        """
        for m, p, t in split_batch(metrics, params, tags):
            self._post("runs/log-batch", {"run_id": run_id, "metrics": m, "params": p, "tags": t})

    def set_tag(self, run_id, key, value):
        self._post("runs/set-tag", {"run_id": run_id, "run_uuid": run_id, "key": key, "value": str(value)})

    def log_inputs(self, run_id, datasets):
        """datasets: [{"dataset": {...}, "tags": [{key, value}]}], as runs/log-inputs takes."""
        self._post("runs/log-inputs", {"run_id": run_id, "datasets": datasets})

    def search_runs(self, experiment_ids, filter_string="", order_by=None, max_results=1000,
                    run_view_type="ACTIVE_ONLY"):
        """Return up to max_results run dicts, following next_page_token."""
        runs, token = [], None
        while len(runs) < max_results:
            body = {
                "experiment_ids": [str(e) for e in experiment_ids],
                "filter": filter_string or "",
                "run_view_type": run_view_type,
                "max_results": min(max_results - len(runs), 1000),
                "order_by": list(order_by or []),
            }
            if token:
                body["page_token"] = token
            page = self._post("runs/search", body)
            runs.extend(page.get("runs", []))
            token = page.get("next_page_token")
            if not token:
                break
        return runs[:max_results]

    # --- artifacts ------------------------------------------------------

    def artifact_target(self, artifact_uri):
        """Resolve a run's artifact_uri to (scheme, netloc, url path prefix) for
        the artifact proxy, or ("file", "", dir) for a local directory."""
        u = urllib.parse.urlsplit(artifact_uri)
        if u.scheme == "mlflow-artifacts":
            netloc = u.netloc or self._netloc
            base = self._base_path if not u.netloc else ""
            path = "/" + u.path.lstrip("/")
            return self._scheme, netloc, base + "/api/2.0/mlflow-artifacts/artifacts" + path.rstrip("/")
        if u.scheme in ("file", ""):
            return "file", "", urllib.parse.unquote(u.path)
        raise ForgeError("INVALID_PARAMETER_VALUE",
                         f"cannot upload to artifact URI {artifact_uri!r}: "
                         "only mlflow-artifacts: (the server's proxy) and local paths are supported")

    def upload_artifact(self, artifact_uri, local_file, artifact_path):
        """Upload local_file to <artifact_uri>/<artifact_path> (a relative path with its file name)."""
        scheme, netloc, prefix = self.artifact_target(artifact_uri)
        rel = artifact_path.strip("/")
        if scheme == "file":
            dst = os.path.join(prefix, *rel.split("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(local_file, dst)
            return
        url = prefix + "/" + urllib.parse.quote(rel)
        with open(local_file, "rb") as f:
            self.request("PUT", url, raw_body=f, scheme=scheme, netloc=netloc, absolute=True)
