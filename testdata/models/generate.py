#!/usr/bin/python3
"""Regenerate the model fixtures in this folder.

Run with Debian's interpreter (it has the pinned libraries):

    /usr/bin/python3 testdata/models/generate.py

Every model is trained with fixed seeds on one thread, and every reference
output is computed by the library that made the model, so the Go evaluators
are checked against the real thing, not against numbers typed by hand.
"""

import json
import os
import sys

import numpy as np
import sklearn
import torch
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine, make_classification

HERE = os.path.dirname(os.path.abspath(__file__))

if xgb.__version__ != "1.7.4":
    sys.exit(f"need xgboost 1.7.4 (found {xgb.__version__}): the fixtures pin its JSON format and semantics")


def f32(v):
    """Shortest decimal that parses back to the same float32; NaN becomes null."""
    v = np.float32(v)
    if np.isnan(v):
        return "null"
    if np.isinf(v):
        raise ValueError("infinite value in fixture")
    return str(v)


def matrix(rows):
    return "[\n" + ",\n".join("  [" + ",".join(f32(v) for v in row) + "]" for row in rows) + "\n ]"


def write_reference(name, meta, inputs, outputs, margins=None):
    """Write NAME.reference.json: meta fields, then inputs/outputs as row lists."""
    parts = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in meta.items()]
    parts.append(f' "inputs": {matrix(inputs)}')
    if margins is not None:
        parts.append(f' "margins": {matrix(margins)}')
    parts.append(f' "outputs": {matrix(outputs)}')
    path = os.path.join(HERE, name + ".reference.json")
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(parts) + "\n}\n")
    return path


def punch_nans(rng, X, frac):
    """Blank out a fraction of the cells so that default directions get used."""
    X = X.astype(np.float32).copy()
    X[rng.random(X.shape) < frac] = np.nan
    return X


def hit_thresholds(rng, booster, X, nrows):
    """Copy split thresholds into some rows verbatim.

    A value equal to a threshold must go right (XGBoost tests x < threshold);
    evaluators that test x <= threshold pass ordinary rows and fail these.
    """
    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    splits = [
        (t["split_indices"][i], t["split_conditions"][i])
        for t in trees
        for i in range(len(t["left_children"]))
        if t["left_children"][i] != -1
    ]
    X = X.copy()
    for r in rng.choice(len(X), size=min(nrows, len(X)), replace=False):
        for _ in range(5):
            feat, thr = splits[rng.integers(len(splits))]
            X[r, feat] = np.float32(thr)
    return X


def xgb_fixture(name, params, X, y, rounds, nref, seed, nan_frac=0.05):
    rng = np.random.default_rng(seed)
    X = punch_nans(rng, X, nan_frac)
    params = {"seed": 0, "nthread": 1, **params}
    booster = xgb.train(params, xgb.DMatrix(X, label=y, missing=np.nan), rounds)
    model_path = os.path.join(HERE, name + ".json")
    booster.save_model(model_path)

    # Reload from the file, so the reference is what the saved model predicts.
    booster = xgb.Booster(model_file=model_path)
    idx = rng.choice(len(X), size=min(nref, len(X)), replace=False)
    ref = hit_thresholds(rng, booster, X[idx], max(1, len(idx) // 4))
    ref = punch_nans(rng, ref, nan_frac)
    dm = xgb.DMatrix(ref, missing=np.nan)
    out = booster.predict(dm, output_margin=False).astype(np.float32)
    margin = booster.predict(dm, output_margin=True).astype(np.float32)
    out = out.reshape(len(ref), -1)
    margin = margin.reshape(len(ref), -1)
    cfg = json.loads(booster.save_config())["learner"]
    meta = {
        "model": name + ".json",
        "library": f"xgboost {xgb.__version__}",
        "objective": cfg["objective"]["name"],
        "num_features": int(X.shape[1]),
        "num_trees": len(booster.get_dump()),
        "outputs_per_row": int(out.shape[1]),
    }
    write_reference(name, meta, ref, out, margin)
    print(f"{name}: {meta['objective']} {meta['num_trees']} trees, {len(ref)} reference rows, "
          f"{os.path.getsize(model_path)} bytes")


def xgb_fixtures():
    X, y = load_breast_cancer(return_X_y=True)
    xgb_fixture("xgb_binary", {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3,
                               "tree_method": "hist"}, X, y, 20, 300, seed=1)

    X, y = load_wine(return_X_y=True)
    xgb_fixture("xgb_multiclass", {"objective": "multi:softprob", "num_class": 3, "max_depth": 3,
                                   "eta": 0.3}, X, y, 10, 178, seed=2, nan_frac=0.08)

    X, y = load_iris(return_X_y=True)
    xgb_fixture("xgb_softmax", {"objective": "multi:softmax", "num_class": 3, "max_depth": 2,
                                "eta": 0.3}, X, y, 5, 150, seed=3, nan_frac=0.1)

    X, y = load_diabetes(return_X_y=True)
    xgb_fixture("xgb_regression", {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.1,
                                   "base_score": 152.5, "tree_method": "hist"}, X, y, 30, 300, seed=4)

    # Smaller models for the other output transforms and for random forests
    # (several trees per round), so each code path is checked against XGBoost.
    X, y = load_breast_cancer(return_X_y=True)
    xgb_fixture("xgb_logitraw", {"objective": "binary:logitraw", "max_depth": 3, "base_score": 0.3},
                X, y, 8, 100, seed=5)
    xgb_fixture("xgb_reg_logistic", {"objective": "reg:logistic", "max_depth": 3, "base_score": 0.7},
                X, y, 8, 100, seed=6)
    X, y = load_diabetes(return_X_y=True)
    xgb_fixture("xgb_poisson", {"objective": "count:poisson", "max_depth": 3, "base_score": 100.0},
                X, y, 8, 100, seed=7)
    X, y = load_iris(return_X_y=True)
    xgb_fixture("xgb_forest", {"objective": "multi:softprob", "num_class": 3, "max_depth": 3,
                               "num_parallel_tree": 4, "subsample": 0.8, "colsample_bynode": 0.8},
                X, y, 3, 150, seed=8, nan_frac=0.1)

    # Tiny models, one per remaining objective, for base_score links and transforms.
    X, y = load_diabetes(return_X_y=True)
    for short, obj, base, label in [
        ("gamma", "reg:gamma", 100.0, y),
        ("tweedie", "reg:tweedie", 100.0, y),
        ("hinge", "binary:hinge", 0.5, (y > 140).astype(float)),
        ("pseudohuber", "reg:pseudohubererror", 150.0, y),
        ("absoluteerror", "reg:absoluteerror", 150.0, y),
        ("pairwise", "rank:pairwise", 0.5, y),
    ]:
        xgb_fixture("xgb_obj_" + short, {"objective": obj, "base_score": base, "max_depth": 2},
                    X, label, 3, 40, seed=20)

    # The benchmark model: 100 trees of depth 6, dense enough that most are full.
    X, y = make_classification(n_samples=20000, n_features=40, n_informative=20, random_state=9)
    xgb_fixture("xgb_bench_100x6", {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1,
                                    "tree_method": "hist"}, X, y, 100, 100, seed=9, nan_frac=0.02)


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


def mlp_fixture():
    torch.manual_seed(0)
    X, y = load_iris(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(model(X)), y)
        loss.backward()
        opt.step()
    model.eval()
    path = os.path.join(HERE, "mlp.onnx")
    torch.onnx.export(model, X[:1], path, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=13)

    rng = np.random.default_rng(10)
    ref = np.concatenate([X.numpy(), rng.normal(3.5, 2.0, size=(150, 4)).astype(np.float32)])
    with torch.no_grad():
        out = model(torch.tensor(ref)).numpy()
    meta = {"model": "mlp.onnx", "library": f"torch {torch.__version__}", "input_name": "input",
            "output_name": "output", "num_features": 4, "outputs_per_row": 3}
    write_reference("mlp", meta, ref, out)
    print(f"mlp: {len(ref)} reference rows, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    print(f"numpy {np.__version__}, sklearn {sklearn.__version__}, xgboost {xgb.__version__}, torch {torch.__version__}")
    xgb_fixtures()
    mlp_fixture()
