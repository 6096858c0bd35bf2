"""Forge's Python client: log runs to Forge (or any MLflow tracking server).

Standard library only, so it works in a bare job environment without pip.
The module-level functions mirror mlflow's fluent API; Client underneath
has one method per REST call.

    import forge
    with forge.start_run(run_name="baseline"):
        forge.log_params({"lr": 0.1})
        for step in range(100):
            forge.log_metric("loss", 1 / (step + 1), step=step)
        forge.log_artifact("model.onnx")

Metrics are buffered and sent with runs/log-batch when 1000 are waiting, at
end_run, at flush() and at interpreter exit. Params and tags are sent at
once, so a conflicting value fails at the line that logged it.

Environment: MLFLOW_TRACKING_URI (default http://127.0.0.1:7700),
MLFLOW_TRACKING_TOKEN, MLFLOW_RUN_ID (attach to that run),
MLFLOW_EXPERIMENT_ID, MLFLOW_EXPERIMENT_NAME, MLFLOW_HTTP_REQUEST_MAX_RETRIES,
MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_TIMEOUT.
"""

import atexit
import getpass
import json
import os
import sys
import threading

from .client import (
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    Client,
    ForgeError,
    _metric_value,
    _now_ms,
    split_batch,
)

__all__ = [
    "Client", "ForgeError", "ActiveRun", "split_batch",
    "MAX_METRICS_PER_BATCH", "MAX_PARAMS_TAGS_PER_BATCH", "MAX_ENTITIES_PER_BATCH",
    "set_tracking_uri", "get_tracking_uri", "get_client", "set_experiment",
    "start_run", "end_run", "active_run", "flush",
    "log_param", "log_params", "log_metric", "log_metrics", "set_tag", "set_tags",
    "log_artifact", "log_artifacts", "log_input",
    "get_run", "search_runs", "get_experiment_by_name", "create_experiment",
]

DEFAULT_TRACKING_URI = "http://127.0.0.1:7700"
BUFFER_SIZE = 1000  # metrics waiting before a flush


class ActiveRun:
    """The run being logged to; a context manager that ends it.

    Leaving the with-block normally ends the run FINISHED; an exception
    ends it FAILED (KILLED for Ctrl-C) and propagates.
    """

    def __init__(self, run):
        self.run = run
        self.info = run["info"]

    @property
    def run_id(self):
        return self.info["run_id"]

    @property
    def experiment_id(self):
        return self.info["experiment_id"]

    @property
    def artifact_uri(self):
        return self.info.get("artifact_uri", "")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        if any(r.run_id == self.run_id for r in _state.runs):
            end_run(status)
        return False

    def __repr__(self):
        return f"<ActiveRun run_id={self.run_id!r} experiment_id={self.experiment_id!r}>"


class _State:
    """The fluent API's process-wide state: the one place that reads the
    environment and holds the buffer."""

    def __init__(self):
        self.lock = threading.RLock()
        self.tracking_uri = None
        self.experiment_id = None  # from set_experiment
        self.client = None
        self.runs = []     # stack of ActiveRun; the last is active
        self.buffer = {}   # run_id -> [metric dict]
        self.buffered = 0
        self.hooks = False
        self.uncaught = False


_state = _State()


def _reset_state():
    """Forget all state without talking to the server (for tests)."""
    global _state
    _state = _State()


# --- configuration --------------------------------------------------------

def set_tracking_uri(uri):
    """Use uri (http://host:port) instead of MLFLOW_TRACKING_URI."""
    with _state.lock:
        _state.tracking_uri = uri
        _state.client = None


def get_tracking_uri():
    return _state.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def get_client():
    """The Client the module-level functions use."""
    with _state.lock:
        if _state.client is None:
            env = os.environ
            _state.client = Client(
                get_tracking_uri(),
                token=env.get("MLFLOW_TRACKING_TOKEN") or None,
                max_retries=int(env.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")),
                backoff=float(env.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0.5")),
                timeout=float(env.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")),
            )
        return _state.client


def set_experiment(experiment_name=None, experiment_id=None):
    """Make later start_run calls use this experiment, creating it by name if needed.
    Returns the experiment id."""
    c = get_client()
    eid = str(experiment_id) if experiment_id is not None else c.get_or_create_experiment(experiment_name)
    _state.experiment_id = eid
    return eid


def _experiment_id(experiment_name=None, experiment_id=None):
    if experiment_id is not None:
        return str(experiment_id)
    c = get_client()
    if experiment_name:
        return c.get_or_create_experiment(experiment_name)
    if _state.experiment_id is not None:
        return _state.experiment_id
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    if os.environ.get("MLFLOW_EXPERIMENT_NAME"):
        return c.get_or_create_experiment(os.environ["MLFLOW_EXPERIMENT_NAME"])
    return "0"  # MLflow's Default experiment


# --- runs -----------------------------------------------------------------

def _install_hooks():
    if _state.hooks:
        return
    _state.hooks = True
    atexit.register(_at_exit)
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        # Remembered so that the exit handler ends the run FAILED, not FINISHED.
        _state.uncaught = True
        previous(exc_type, exc, tb)

    sys.excepthook = hook


def _at_exit():
    status = "FAILED" if _state.uncaught else "FINISHED"
    try:
        while _state.runs:
            end_run(status)
        flush()
    except Exception as e:  # an exit handler must not raise
        print(f"forge: could not send the last metrics or end the run: {e}", file=sys.stderr)


def start_run(run_name=None, experiment_name=None, tags=None, *, run_id=None,
              experiment_id=None, nested=False):
    """Start a run, or attach to run_id / MLFLOW_RUN_ID, and make it active.

    Returns an ActiveRun; use it in a with-statement to end the run.
    """
    with _state.lock:
        if _state.runs and not nested:
            raise ForgeError("INVALID_PARAMETER_VALUE",
                             f"run {_state.runs[-1].run_id} is already active; "
                             "end it first or pass nested=True")
        _install_hooks()
        c = get_client()
        tags = {k: str(v) for k, v in (tags or {}).items()}
        if run_id is None and not _state.runs:
            run_id = os.environ.get("MLFLOW_RUN_ID") or None
        if run_id:
            run = c.get_run(run_id)
            info = run["info"]
            if info.get("lifecycle_stage", "active") != "active":
                raise ForgeError("INVALID_PARAMETER_VALUE", f"run {run_id} is deleted")
            if info.get("status") != "RUNNING":
                c.update_run(run_id, status="RUNNING")
                info["status"] = "RUNNING"
            if run_name:
                c.update_run(run_id, run_name=run_name)
            if tags:
                c.log_batch(run_id, tags=[{"key": k, "value": v} for k, v in tags.items()])
        else:
            user = _user()
            defaults = {"mlflow.user": user, "mlflow.source.name": _source_name(),
                        "mlflow.source.type": "LOCAL"}
            if _state.runs:
                defaults["mlflow.parentRunId"] = _state.runs[-1].run_id
            run = c.create_run(_experiment_id(experiment_name, experiment_id), run_name=run_name,
                               tags={**defaults, **tags}, user_id=user)
        active = ActiveRun(run)
        _state.runs.append(active)
        return active


def _user():
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _source_name():
    return os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "<interactive>"


def active_run():
    """The active ActiveRun, or None."""
    return _state.runs[-1] if _state.runs else None


def end_run(status="FINISHED"):
    """Send buffered metrics and end the active run with status."""
    with _state.lock:
        if not _state.runs:
            return
        run = _state.runs[-1]
        err = None
        try:
            flush()
        except ForgeError as e:
            err = e
        get_client().set_terminated(run.run_id, status)
        _state.runs.pop()
        if err is not None:
            raise err


def _run_id():
    run = active_run()
    if run is None:
        run = start_run()
    return run.run_id


# --- logging --------------------------------------------------------------

def log_metric(key, value, step=None, timestamp=None):
    """Buffer one metric value for the active run (starting one if none)."""
    log_metrics({key: value}, step=step, timestamp=timestamp)


def log_metrics(metrics, step=None, timestamp=None):
    """Buffer several metric values taken at the same step."""
    with _state.lock:
        run_id = _run_id()
        ts = int(timestamp) if timestamp is not None else _now_ms()
        entries = [{"key": str(k), "value": _metric_value(v), "timestamp": ts, "step": int(step or 0)}
                   for k, v in metrics.items()]
        _state.buffer.setdefault(run_id, []).extend(entries)
        _state.buffered += len(entries)
        if _state.buffered >= BUFFER_SIZE:
            flush()


def flush():
    """Send all buffered metrics now.

    A batch the server refuses (4xx) is dropped, since it can never succeed;
    one that could not be delivered stays buffered for the next flush.
    """
    with _state.lock:
        c = get_client()
        pending, _state.buffer, _state.buffered = _state.buffer, {}, 0
        items = list(pending.items())
        for i, (run_id, metrics) in enumerate(items):
            sent = 0
            try:
                for m, _, _ in split_batch(metrics):
                    try:
                        c.log_batch(run_id, metrics=m)
                    except ForgeError as e:
                        if e.status and 400 <= e.status < 500 and e.status != 429:
                            sent += len(m)
                        raise
                    sent += len(m)
            except ForgeError:
                for rid, rest in [(run_id, metrics[sent:])] + items[i + 1:]:
                    if rest:
                        _state.buffer.setdefault(rid, []).extend(rest)
                        _state.buffered += len(rest)
                raise


def log_param(key, value):
    log_params({key: value})


def log_params(params):
    """Send params to the active run now (log-batch, 100 to a request)."""
    get_client().log_batch(_run_id(), params=[{"key": str(k), "value": str(v)} for k, v in params.items()])


def set_tag(key, value):
    set_tags({key: value})


def set_tags(tags):
    """Send tags to the active run now (log-batch, 100 to a request)."""
    get_client().log_batch(_run_id(), tags=[{"key": str(k), "value": str(v)} for k, v in tags.items()])


def log_artifact(local_path, artifact_path=None):
    """Upload one file under the run's artifacts, in artifact_path if given."""
    run_id = _run_id()
    dest = os.path.basename(local_path)
    if artifact_path:
        dest = artifact_path.strip("/") + "/" + dest
    get_client().upload_artifact(_artifact_uri(run_id), local_path, dest)


def log_artifacts(local_dir, artifact_path=None):
    """Upload every file under local_dir, keeping the tree, in artifact_path if given."""
    run_id = _run_id()
    uri = _artifact_uri(run_id)
    c = get_client()
    for root, dirs, files in os.walk(local_dir):
        dirs.sort()
        rel_root = os.path.relpath(root, local_dir)
        for name in sorted(files):
            parts = [p for p in (artifact_path and artifact_path.strip("/"),) if p]
            if rel_root != ".":
                parts.extend(rel_root.split(os.sep))
            parts.append(name)
            c.upload_artifact(uri, os.path.join(root, name), "/".join(parts))


def _artifact_uri(run_id):
    run = active_run()
    if run is not None and run.run_id == run_id and run.artifact_uri:
        return run.artifact_uri
    return get_client().get_run(run_id)["info"]["artifact_uri"]


def log_input(name, digest, source, context=None, source_type="local", schema=None, profile=None):
    """Record a dataset used by the active run (runs/log-inputs).

    source is stored as MLflow does, a JSON document; a plain string
    becomes {"uri": source}.
    """
    if isinstance(source, dict):
        source = json.dumps(source)
    elif not str(source).lstrip().startswith("{"):
        source = json.dumps({"uri": str(source)})
    ds = {"name": name, "digest": digest, "source_type": source_type, "source": source}
    if schema is not None:
        ds["schema"] = schema if isinstance(schema, str) else json.dumps(schema)
    if profile is not None:
        ds["profile"] = profile if isinstance(profile, str) else json.dumps(profile)
    tags = [{"key": "mlflow.data.context", "value": context}] if context else []
    get_client().log_inputs(_run_id(), [{"dataset": ds, "tags": tags}])


# --- reading --------------------------------------------------------------

def get_run(run_id):
    """The run as the server returns it: {"info": {...}, "data": {...}, "inputs": {...}}."""
    return get_client().get_run(run_id)


def search_runs(experiment_ids=None, filter_string="", order_by=None, max_results=1000):
    """Run dicts matching filter_string, in order_by order, following pages.

    experiment_ids defaults to the active run's experiment, else the one
    start_run would use.
    """
    if experiment_ids is None:
        run = active_run()
        experiment_ids = [run.experiment_id if run else _experiment_id()]
    elif isinstance(experiment_ids, (str, int)):
        experiment_ids = [experiment_ids]
    return get_client().search_runs(experiment_ids, filter_string, order_by, max_results)


def get_experiment_by_name(name):
    """The experiment dict, or None."""
    return get_client().get_experiment_by_name(name)


def create_experiment(name, artifact_location=None, tags=None):
    """Create an experiment; returns its id."""
    return get_client().create_experiment(name, artifact_location, tags)

