"""Optuna's side of bench/sweeps: the same functions, budgets and seeds.

Prints one JSON object: {function: {sampler: [best value per seed]}} and,
under "suggest_ms", Optuna TPE's time to suggest with 1,000 finished trials.
For the noisy function the value is the noise-free one at the trial with the
best observed (noisy) value, as on Forge's side.
"""
import json
import math
import sys
import time
import warnings

import numpy as np
import optuna

warnings.filterwarnings("ignore")
optuna.logging.set_verbosity(optuna.logging.ERROR)


def branin(x, y):
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x):
    x = np.asarray(x)
    return float(-np.sum(ALPHA * np.exp(-np.sum(A * (x - P) ** 2, axis=1))))


def objective(fn, rng):
    def f(trial):
        if fn == "hartmann6":
            xs = [trial.suggest_float(f"x{i}", 0, 1) for i in range(6)]
            return hartmann6(xs)
        x = trial.suggest_float("x", -5, 10)
        y = trial.suggest_float("y", 0, 15)
        v = branin(x, y)
        trial.set_user_attr("true", v)
        if fn == "noisy_branin":
            v += rng.normal(0, NOISE)
        return v
    return f


NOISE = 5.0


def run(fn, sampler, trials):
    rng = np.random.RandomState(sampler_seed[0] + 1000)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective(fn, rng), n_trials=trials)
    best = study.best_trial
    return best.user_attrs.get("true", best.value)


sampler_seed = [0]


def main():
    fns, seeds, trials = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
    out = {}
    for fn in fns:
        out[fn] = {"optuna-tpe": [], "optuna-tpe-mv": [], "optuna-random": []}
        for seed in range(seeds):
            sampler_seed[0] = seed
            out[fn]["optuna-tpe"].append(run(fn, optuna.samplers.TPESampler(seed=seed), trials))
            out[fn]["optuna-tpe-mv"].append(run(fn, optuna.samplers.TPESampler(seed=seed, multivariate=True), trials))
            out[fn]["optuna-random"].append(run(fn, optuna.samplers.RandomSampler(seed=seed), trials))
    # Suggest time with 1,000 finished trials (Branin's two parameters).
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    rs = np.random.RandomState(0)
    dists = {"x": optuna.distributions.FloatDistribution(-5, 10), "y": optuna.distributions.FloatDistribution(0, 15)}
    for _ in range(1000):
        x, y = rs.uniform(-5, 10), rs.uniform(0, 15)
        study.add_trial(optuna.trial.create_trial(params={"x": x, "y": y}, distributions=dists, value=branin(x, y)))
    times = []
    for _ in range(10):
        t = study.ask()
        t0 = time.perf_counter()
        t.suggest_float("x", -5, 10)
        t.suggest_float("y", 0, 15)
        times.append((time.perf_counter() - t0) * 1000)
        study.tell(t, state=optuna.trial.TrialState.FAIL)
    out["suggest_ms"] = sorted(times)[len(times) // 2]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
