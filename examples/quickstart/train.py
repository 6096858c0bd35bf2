"""Trains an XGBoost classifier on the dataset Forge materialised for this job
(FORGE_INPUT_TRAIN, a CSV), logging params, per-iteration metrics and the
model file to the job's tracking run through the Forge Python client."""
import argparse
import os

import numpy as np
import pandas as pd
import xgboost as xgb

import forge  # on PYTHONPATH in every Forge job

p = argparse.ArgumentParser()
p.add_argument("--max-depth", type=int, default=4)
p.add_argument("--eta", type=float, default=0.3)
p.add_argument("--rounds", type=int, default=40)
args = p.parse_args()

df = pd.read_csv(os.environ["FORGE_INPUT_TRAIN"])
features = [c for c in df.columns if c not in ("id", "target")]
# A fixed split: every run validates on the same rows.
val = (df["id"] % 5) == 0
dtrain = xgb.DMatrix(df.loc[~val, features].to_numpy(np.float32), label=df.loc[~val, "target"])
dval = xgb.DMatrix(df.loc[val, features].to_numpy(np.float32), label=df.loc[val, "target"])

params = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"],
          "max_depth": args.max_depth, "eta": args.eta, "nthread": 1, "seed": 7}
forge.log_params({"max_depth": args.max_depth, "eta": args.eta, "rounds": args.rounds,
                  "features": len(features)})

history = {}
booster = xgb.train(params, dtrain, args.rounds, evals=[(dtrain, "train"), (dval, "val")],
                    evals_result=history, verbose_eval=False)
for step in range(args.rounds):
    forge.log_metrics({"train_logloss": history["train"]["logloss"][step],
                       "val_logloss": history["val"]["logloss"][step],
                       "val_auc": history["val"]["auc"][step]}, step=step)

os.makedirs("out", exist_ok=True)
booster.save_model("out/model.json")
forge.log_artifact("out/model.json", "model")
print(f"depth={args.max_depth} eta={args.eta}: val_auc={history['val']['auc'][-1]:.4f}")
