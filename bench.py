r"""bench.py - every figure in BENCHMARKS.md, from this repository alone.

    python bench.py machine                 # date, commit, CPU, cores, BLAS, versions
    python bench.py regret [--half tuning|held-out] [--fn NAME ...] [--methods M,...]
                           [--seeds 10] [--budget 40]
    python bench.py ablation [--seeds 30] [--held-out] [--rows 0 3 ...]
    python bench.py bo-step [--n 20 50 100 200] [--cycles 21] [--rounds 3]
    python bench.py gp [--n 50 100 200 500] [--restarts 5] [--repeats 3] [--impls hpopt]
    python bench.py mlp [--frameworks numpy nn torch] [--rounds 3]
    python bench.py shapes [--epochs 7] | first [--repeats 3] | paths [--epochs 150]
    python bench.py tiny [FOLDER ...] [--rounds 3]     # demo-size nets, against other checkouts
    python bench.py batch                   # where a demo-size batch spends its time
    python bench.py halving [--seeds 20] | parallel [--trials 16] [--jobs 2] | lines | inverse

The project needs only requirements.txt. The peers it is compared with are imported only by
the commands that use them; install them, pinned to the versions measured, with

    pip install -r requirements.txt scikit-optimize==0.10.2 optuna==5.0.0 \
        scikit-learn==1.9.1 scipy==1.17.1 torch==2.13.0 botorch==0.18.1 greenlet

(torch 2.13.0 from the CPU index, https://download.pytorch.org/whl/cpu, unless a CUDA
build of several GB is what you want). `regret` needs the peers it names in --methods;
`bo-step` optuna; `gp` scikit-learn; `mlp` torch.

regret: each method minimises each test function (below) for exactly --budget evaluations
on seeds 0..N-1; one row per function: median [25%, 75%] over seeds of log10 regret after
the budget (regret = best found - known minimum, floored at 1e-12) and (seeds with regret
< 1e-3). Regret is deterministic per seed. The peers are called as their documentation
shows, with their defaults (run_skopt, run_optuna, run_botorch say how).
ablation: hpopt's Bayesian search with one of its constants changed at a time.
bo-step, gp, mlp: each library in a fresh process (the thread pools of OpenBLAS and PyTorch
busy-wait and slow each other down inside one), in alternating order, --rounds times; a
ratio is computed per round, and the table gives its median and [min, max] over rounds.
shapes: nn.train against the plain NumPy MLP below, one epoch of each in turn in one
process. first: the first nn.train of a fresh process, empty and warm Numba cache.
paths: nn.train compiled and as the NumPy reference, float32 and float64: how far apart.
halving: successive halving and Hyperband against random search given the same epochs.
parallel: a random search of CPU-bound trials, sequential and with n_jobs workers.
lines: the teaching core's lines of code (above each file's engineering banner).
inverse: gp.inverse_lower's block size (gp.INVERSE_BLOCK) against numpy's solve(L, I).
"""
import os
import sys

if sys.argv[1:2] in (["parallel"], ["tiny"]):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"                          # before numpy loads; workers inherit it

import argparse  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

import hpopt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = ["numpy", "scipy", "scikit-learn", "scikit-optimize", "optuna", "torch", "botorch",
         "gpytorch", "greenlet", "numba"]


# ============================================================================ test functions
# From the Virtual Library of Simulation Experiments (S. Surjanovic & D. Bingham, Simon
# Fraser University, https://www.sfu.ca/~ssurjano/optimization.html; each page named below),
# with its domain and known minimum; mixed_hp and mixed_arch are synthetic network-like
# spaces made for this benchmark. The spaces use the small classes below, not hpopt's, so
# that the peers' rows do not depend on hpopt.

@dataclass(frozen=True)
class Real:
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Integer:
    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    options: tuple


@dataclass(frozen=True)
class Spec:
    space: dict                       # name -> Real | Integer | Choice
    f: object                         # params dict -> float, minimised
    f_min: float                      # the known global minimum


def box(fx, bounds, f_min):
    """A function of x (d,) on a box; params x1..xd."""
    names = [f"x{i + 1}" for i in range(len(bounds))]
    return Spec({n: Real(float(lo), float(hi)) for n, (lo, hi) in zip(names, bounds)},
                lambda p: float(fx(np.array([p[n] for n in names], dtype=float))), f_min)


def branin(x):                        # branin.html; 5 / (4 pi) at (pi, 2.275) and two more
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x[1] - b * x[0] ** 2 + c * x[0] - 6) ** 2 + 10 * (1 - t) * np.cos(x[0]) + 10


def six_hump_camel(x):                # camel6.html; -1.0316 at (0.0898, -0.7126) and its mirror
    x1, x2 = x[0], x[1]
    return (4 - 2.1 * x1 ** 2 + x1 ** 4 / 3) * x1 ** 2 + x1 * x2 + (-4 + 4 * x2 ** 2) * x2 ** 2


H3_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547],
                        [381, 5743, 8828]])


def hartmann3(x):                     # hart3.html; -3.86278 (polished: -3.8627797873327)
    return -H3_ALPHA @ np.exp(-(H3_A * (x - H3_P) ** 2).sum(axis=1))


def rosenbrock(x):                    # rosen.html, on [-5, 10]^d; 0 at (1, ..., 1)
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (x[:-1] - 1) ** 2))


def ackley(x):                        # ackley.html (a=20, b=0.2, c=2 pi); 0 at the origin
    d = len(x)
    return (-20 * np.exp(-0.2 * np.sqrt(np.sum(x ** 2) / d))
            - np.exp(np.sum(np.cos(2 * math.pi * x)) / d) + 20 + math.e)


def goldstein_price(x):               # goldpr.html, on [-2, 2]^2; 3 at (0, -1)
    x1, x2 = x[0], x[1]
    return float((1 + (x1 + x2 + 1) ** 2 * (19 - 14 * x1 + 3 * x1 ** 2 - 14 * x2 + 6 * x1 * x2
                                             + 3 * x2 ** 2))
                 * (30 + (2 * x1 - 3 * x2) ** 2 * (18 - 32 * x1 + 12 * x1 ** 2 + 48 * x2
                                                   - 36 * x1 * x2 + 27 * x2 ** 2)))


SHEKEL_A = np.array([[4, 4, 4, 4], [1, 1, 1, 1], [8, 8, 8, 8], [6, 6, 6, 6], [3, 7, 3, 7],
                     [2, 9, 2, 9], [5, 5, 3, 3], [8, 1, 8, 1], [6, 2, 6, 2], [7, 3.6, 7, 3.6]])
SHEKEL_C = np.array([1, 2, 2, 4, 4, 6, 3, 7, 5, 5]) / 10


def shekel(x):                        # shekel.html, m = 10; -10.536409816692045 near (4, 4, 4, 4)
    return float(-np.sum(1 / (np.sum((x - SHEKEL_A) ** 2, axis=1) + SHEKEL_C)))


def michalewicz(x, m=10):             # michal.html, d = 5; -4.687658179088149
    i = np.arange(1, len(x) + 1)
    return float(-np.sum(np.sin(x) * np.sin(i * x ** 2 / math.pi) ** (2 * m)))


def dixon_price(x):                   # dixonpr.html, on [-10, 10]^d; 0
    i = np.arange(2, len(x) + 1)
    return float((x[0] - 1) ** 2 + np.sum(i * (2 * x[1:] ** 2 - x[:-1]) ** 2))


def powell(x):                        # powell.html, on [-4, 5]^d; 0 at the origin
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return float(np.sum((a + 10 * b) ** 2 + 5 * (c - d) ** 2 + (b - 2 * c) ** 4
                        + 10 * (a - d) ** 4))


# mixed_hp: a made-up validation error over a typical network space. raw = 0.05 + arch +
# terms that are >= 0 and 0 at the per-(layers, activation) optimum; the best learning rate
# moves with depth and activation, the best weight decay with the learning rate, the best
# dropout with depth; the lr valley is asymmetric with ripples a decade apart. Minimum:
# relu, 4 layers, lr = 10^-2.95, weight decay 1e-4, dropout 0.15.
ACT_LR = {"relu": 0.0, "tanh": -0.3, "sigmoid": 0.4}       # shift of the best log10(lr)
ACT_BASE = {"relu": 0.0, "tanh": 0.02, "sigmoid": 0.06}    # extra error of the activation
ACT_DEPTH = {"relu": 0.0, "tanh": 0.01, "sigmoid": 0.02}   # extra error per extra layer


def mixed_hp(p):
    layers, act = int(p["n_layers"]), p["activation"]
    du = math.log10(p["lr"]) - (-2.5 - 0.15 * (layers - 1) + ACT_LR[act])
    lr_term = np.where(du < 0, 0.08, 0.3) * du ** 2 + 0.02 * (1 - np.cos(2 * np.pi * du))
    wd_term = 0.05 * (math.log10(p["weight_decay"]) - (-4.0 + 0.5 * du)) ** 2
    drop_term = 0.4 * (p["dropout"] - 0.05 * (layers - 1)) ** 2
    arch = 0.03 * (layers - 3.6) ** 2 + ACT_BASE[act] + ACT_DEPTH[act] * (layers - 1)
    return float(1 - np.exp(-(0.05 + arch + lr_term + wd_term + drop_term)))


# mixed_arch: a second made-up space, where two Choices move the best learning rate, depth
# and width. Minimum: adamw, batch norm, lr = 10^-2.5, 6 layers, width 256, smoothing 0.1.
ARCH_LR = {"sgd": -1.3, "adam": -3.2, "adamw": -3.0}      # best log10(lr) without norm
ARCH_OPT_BASE = {"sgd": 0.03, "adam": 0.01, "adamw": 0.0}
ARCH_NORM = {"none": (0.0, 3, 7, 0.04), "batch": (0.5, 6, 8, 0.0), "layer": (0.2, 5, 8, 0.01)}
#             norm: (lr shift in log10, best depth, best log2 width, base error)


def mixed_arch(p):
    shift, best_depth, best_width, norm_base = ARCH_NORM[p["norm"]]
    du = math.log10(p["lr"]) - (ARCH_LR[p["optimizer"]] + shift)
    raw = (0.06 + ARCH_OPT_BASE[p["optimizer"]] + norm_base + (0.4 if du > 0 else 0.12) * du ** 2
           + 0.01 * (p["n_layers"] - best_depth) ** 2
           + 0.015 * (math.log2(p["width"]) - best_width) ** 2
           + 0.5 * (p["label_smoothing"] - 0.1) ** 2)
    return float(1 - math.exp(-raw))


FUNCTIONS = {
    "branin": box(branin, [(-5, 10), (0, 15)], 5 / (4 * math.pi)),
    "six_hump_camel": box(six_hump_camel, [(-3, 3), (-2, 2)], -1.0316284534898774),
    "hartmann3": box(hartmann3, [(0, 1)] * 3, -3.862779787332663),
    "rosenbrock4": box(rosenbrock, [(-5, 10)] * 4, 0.0),
    "ackley5": box(ackley, [(-32.768, 32.768)] * 5, 0.0),
    "mixed_hp": Spec({"lr": Real(1e-5, 1e-1, log=True), "weight_decay": Real(1e-6, 1e-2, log=True),
                      "dropout": Real(0.0, 0.6), "n_layers": Integer(1, 6),
                      "activation": Choice(("relu", "tanh", "sigmoid"))},
                     mixed_hp, 1 - math.exp(-(0.05 + 0.03 * 0.4 ** 2))),
    "goldstein_price": box(goldstein_price, [(-2, 2)] * 2, 3.0),
    "shekel4": box(shekel, [(0, 10)] * 4, -10.536409816692045),
    "michalewicz5": box(michalewicz, [(0, math.pi)] * 5, -4.687658179088149),
    "dixon_price6": box(dixon_price, [(-10, 10)] * 6, 0.0),
    "powell4": box(powell, [(-4, 5)] * 4, 0.0),
    "mixed_arch": Spec({"lr": Real(1e-5, 1.0, log=True), "n_layers": Integer(1, 8),
                        "width": Integer(16, 1024, log=True),
                        "optimizer": Choice(("sgd", "adam", "adamw")),
                        "norm": Choice(("none", "batch", "layer")),
                        "label_smoothing": Real(0.0, 0.3)}, mixed_arch, 1 - math.exp(-0.06)),
}
TUNING = ["branin", "six_hump_camel", "hartmann3", "rosenbrock4", "ackley5", "mixed_hp"]
HELD_OUT = ["goldstein_price", "shekel4", "michalewicz5", "dixon_price6", "powell4", "mixed_arch"]
# hpopt's defaults are chosen on TUNING alone; HELD_OUT runs after they are fixed.


def hpopt_space(space):
    return {k: hpopt.Choice(list(d.options)) if isinstance(d, Choice) else
            (hpopt.Integer if isinstance(d, Integer) else hpopt.Real)(d.low, d.high, log=d.log)
            for k, d in space.items()}


def hartmann6(X):
    """Hartmann-6 (hart6.html; minimum -3.32237 in [0, 1]^6).  X: (m, 6)  returns: (m,)"""
    alpha = np.array([1.0, 1.2, 3.0, 3.2])
    A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
    P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
    X = np.atleast_2d(X)
    return -(alpha * np.exp(-(A * (X[:, None, :] - P) ** 2).sum(-1))).sum(-1)


# ============================================================================ regret

REGRET_FLOOR, HIT = 1e-12, 1e-3


class Objective:
    """The function as every method sees it (params dict -> float), with a call log."""

    def __init__(self, spec, budget):
        self.spec, self.budget, self.values = spec, budget, []

    def __call__(self, params):
        if len(self.values) >= self.budget:
            raise RuntimeError(f"asked for more than {self.budget} evaluations")
        self.values.append(float(self.spec.f(params)))
        return self.values[-1]


def _py(x):
    """numpy scalar -> plain Python value (peers hand back np.int64, np.str_, ...)."""
    return x.item() if isinstance(x, np.generic) else x


def run_random(space, objective, budget, seed):
    """numpy uniform in the bounds, log-uniform on log dims."""
    rng = np.random.default_rng(seed)

    def draw(d):
        if isinstance(d, Choice):
            return d.options[rng.integers(len(d.options))]
        if isinstance(d, Integer) and not d.log:
            return int(rng.integers(d.low, d.high + 1))
        x = (math.exp(rng.uniform(math.log(d.low), math.log(d.high))) if d.log
             else rng.uniform(d.low, d.high))
        return int(round(x)) if isinstance(d, Integer) else float(x)

    for _ in range(budget):
        objective({k: draw(d) for k, d in space.items()})


def run_skopt(space, objective, budget, seed):
    """skopt.gp_minimize with its defaults (gp_hedge, 10 random initial points)."""
    import skopt
    from skopt import space as sk
    dims = [sk.Categorical(list(d.options)) if isinstance(d, Choice) else
            (sk.Integer if isinstance(d, Integer) else sk.Real)(
                d.low, d.high, prior="log-uniform" if d.log else "uniform")
            for d in space.values()]
    skopt.gp_minimize(lambda x: objective(dict(zip(space, map(_py, x)))), dims,
                      n_calls=budget, random_state=seed)


def run_optuna(sampler_name, space, objective, budget, seed):
    """optuna's sampler_name (GPSampler, TPESampler) with seed=seed, other settings default."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def suggest(trial, name, d):
        if isinstance(d, Choice):
            return trial.suggest_categorical(name, list(d.options))
        if isinstance(d, Integer):
            return trial.suggest_int(name, d.low, d.high, log=d.log)
        return trial.suggest_float(name, d.low, d.high, log=d.log)

    study = optuna.create_study(sampler=getattr(optuna.samplers, sampler_name)(seed=seed))
    study.optimize(lambda t: objective({k: suggest(t, k, d) for k, d in space.items()}),
                   n_trials=budget)


def run_botorch(space, objective, budget, seed):
    """BoTorch's standard loop (its closed-loop tutorial): a scrambled Sobol design of
    max(5, 2 q) points, then each step SingleTaskGP (its default priors and Standardize)
    fitted by fit_gpytorch_mll, LogExpectedImprovement, optimize_acqf with 10 restarts from
    512 raw samples. Each Real/Integer one column of [0, 1] (log dims through the log,
    Integers rounded to their cell), each Choice a one-hot block decoded by argmax. The GP
    is told the encoding of the point evaluated; a failed fit gives one random point."""
    import torch
    from botorch.acquisition import LogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from torch.quasirandom import SobolEngine

    torch.manual_seed(seed)
    dims = list(space.items())
    widths = [len(d.options) if isinstance(d, Choice) else 1 for _, d in dims]
    D = sum(widths)

    def span(d):
        lo, hi = (d.low - 0.5, d.high + 0.5) if isinstance(d, Integer) else (d.low, d.high)
        return (math.log(max(lo, 1e-300)), math.log(hi)) if d.log else (lo, hi)

    def decode(x):
        params, at = {}, 0
        for (name, d), w in zip(dims, widths):
            block, at = x[at:at + w], at + w
            if isinstance(d, Choice):
                params[name] = _py(d.options[int(np.argmax(block))])
                continue
            lo, hi = span(d)
            v = lo + float(np.clip(block[0], 0, 1)) * (hi - lo)
            v = math.exp(v) if d.log else v
            params[name] = (min(max(int(round(v)), d.low), d.high) if isinstance(d, Integer)
                            else min(max(float(v), d.low), d.high))
        return params

    def encode(params):
        row = []
        for name, d in dims:
            v = params[name]
            if isinstance(d, Choice):
                row += [1.0 if o == v and type(o) is type(v) else 0.0 for o in d.options]
                continue
            lo, hi = span(d)
            row.append(((math.log(v) if d.log else v) - lo) / (hi - lo))
        return row

    n_init = min(budget, max(5, 2 * len(dims)))
    X, Y = [], []
    for x in SobolEngine(D, scramble=True, seed=seed).draw(n_init, dtype=torch.float64).numpy():
        p = decode(x)
        Y.append(-objective(p))
        X.append(encode(p))
    bounds = torch.stack([torch.zeros(D, dtype=torch.float64), torch.ones(D, dtype=torch.float64)])
    for _ in range(budget - n_init):
        tx = torch.tensor(X, dtype=torch.float64)
        ty = torch.tensor(Y, dtype=torch.float64).unsqueeze(-1)
        try:
            model = SingleTaskGP(tx, ty)
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            acq = LogExpectedImprovement(model, best_f=ty.max())
            cand, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=10, raw_samples=512)
            x = cand[0].detach().numpy()
        except Exception:
            x = np.random.default_rng([seed, len(X)]).uniform(size=D)
        p = decode(x)
        Y.append(-objective(p))
        X.append(encode(p))


def run_hpopt(search, space, objective, budget, seed):
    """hpopt.<search>(objective, space, n_trials=budget, seed=seed), checked against the
    evaluations the objective saw."""
    result = getattr(hpopt, search)(objective, hpopt_space(space), n_trials=budget, seed=seed)
    if len(result.trials) != budget or result.best_value != min(objective.values):
        raise RuntimeError(f"Result disagrees with the evaluations: {len(result.trials)} "
                           f"trials, best_value {result.best_value} vs {min(objective.values)}")


METHODS = {
    "hpopt_bayes": functools.partial(run_hpopt, "bayesian_search"),
    "skopt": run_skopt,
    "optuna_gp": functools.partial(run_optuna, "GPSampler"),
    "botorch": run_botorch,
    "optuna_tpe": functools.partial(run_optuna, "TPESampler"),
    "hpopt_random": functools.partial(run_hpopt, "random_search"),
    "random": run_random,
}


def regrets(method, spec, budget, seeds):
    """log10 regret after `budget` evaluations on each seed: (seeds,)"""
    out = []
    for seed in range(seeds):
        objective = Objective(spec, budget)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            METHODS[method](spec.space, objective, budget, seed)
        if len(objective.values) != budget:
            raise RuntimeError(f"{method} made {len(objective.values)} evaluations, not {budget}")
        out.append(math.log10(max(min(objective.values) - spec.f_min, REGRET_FLOOR)))
    return np.array(out)


def cell(values):
    """median [25%, 75%] (hits/seeds) of log10 regrets."""
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    hits = int(np.sum(values < math.log10(HIT)))
    return f"{q50:.2f} [{q25:.2f}, {q75:.2f}] ({hits}/{len(values)})"


def versions():
    found = {}
    for p in PEERS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[p] = importlib.metadata.version(p)
    return ", ".join(f"{p} {v}" for p, v in found.items())


def regret(args):
    functions = args.fn or (HELD_OUT if args.half == "held-out" else TUNING)
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS] + [f for f in functions if f not in FUNCTIONS]
    if unknown:
        sys.exit(f"unknown: {unknown}; methods: {list(METHODS)}; functions: {list(FUNCTIONS)}")
    print(f"median [25%, 75%] of log10 regret after {args.budget} evaluations over "
          f"{args.seeds} seeds, (seeds with regret < {HIT:g}); {versions()}")
    print("| function | " + " | ".join(methods) + " |")
    print("| --- " * (len(methods) + 1) + "|", flush=True)
    for name in functions:
        cells = []
        for m in methods:
            t0 = time.perf_counter()
            values = regrets(m, FUNCTIONS[name], args.budget, args.seeds)
            cells.append(cell(values))
            print(f"  {name} {m}: {time.perf_counter() - t0:.0f} s; each seed: "
                  + " ".join(f"{v:.4f}" for v in values), file=sys.stderr)
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


# ============================================================================ ablation

ABLATION = [                                          # (row, constants of hpopt to set)
    ("defaults", {}),
    ("no local candidates (N_LOCAL = 0)", {"N_LOCAL": 0}),
    ("local steps x2 (LOCAL_SCALE = 0.1)", {"LOCAL_SCALE": 0.1}),
    ("no polish (POLISH_STEPS = ())", {"POLISH_STEPS": ()}),
    ("polish of two steps (0.01, 0.001)", {"POLISH_STEPS": (0.01, 0.001)}),
    ("500 uniform candidates (N_CANDIDATES)", {"N_CANDIDATES": 500}),
    ("n_initial = q + 1 (default 2q + 1)", {"n_initial": "q+1"}),
    ("polish 5 parents (POLISH_PARENTS)", {"POLISH_PARENTS": 5}),
    ("20 children a step (POLISH_CHILDREN)", {"POLISH_CHILDREN": 20}),
    ("no warp (WARP_LAMBDAS = (1.0,))", {"WARP_LAMBDAS": np.array([1.0])}),
    ("max. likelihood (LOG_PRIOR = None)", {"LOG_PRIOR": None}),
    ("climbs of 200 steps (CLIMB_STEPS)", {"CLIMB_STEPS": 200}),
    ("climbs of 3 steps (CLIMB_STEPS)", {"CLIMB_STEPS": 3}),
]


def ablation(args):
    functions = HELD_OUT if args.held_out else TUNING
    rows = [ABLATION[i] for i in args.rows] if args.rows else ABLATION
    print(f"median log10 regret of hpopt.bayesian_search after {args.budget} evaluations over "
          f"{args.seeds} seeds (lower is better)")
    print("| change | " + " | ".join(functions) + " | mean |")
    print("| --- " * (len(functions) + 2) + "|", flush=True)
    for row, changes in rows:
        saved = {k: getattr(hpopt, k) for k in changes if k != "n_initial"}
        for k, v in changes.items():
            if k != "n_initial":
                setattr(hpopt, k, v)
        medians = []
        for name in functions:
            spec = FUNCTIONS[name]
            n_initial = len(spec.space) + 1 if "n_initial" in changes else None
            medians.append(statistics.median(
                math.log10(max(hpopt.bayesian_search(spec.f, hpopt_space(spec.space), args.budget,
                                                     seed=seed, n_initial=n_initial).best_value
                               - spec.f_min, REGRET_FLOOR)) for seed in range(args.seeds)))
        for k, v in saved.items():
            setattr(hpopt, k, v)
        print(f"| {row} | " + " | ".join(f"{m:.2f}" for m in medians)
              + f" | {statistics.fmean(medians):.2f} |", flush=True)


# ============================================================================ fresh processes

def child(argv):
    """Run `bench.py argv...` in a fresh interpreter; its last stdout line is JSON."""
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *map(str, argv)],
                         check=True, capture_output=True, text=True, cwd=HERE).stdout
    return json.loads(out.strip().splitlines()[-1])


def spread(xs):
    """median [min, max]"""
    return f"{statistics.median(xs):.3g} [{min(xs):.3g}, {max(xs):.3g}]"


def rounds_of(tools, rounds, argv_of):
    """{tool: [result of each round]}, tools in alternating order (ABC, CBA, ...)."""
    results = {t: [] for t in tools}
    for r in range(rounds):
        for tool in (tools if r % 2 == 0 else tools[::-1]):
            results[tool].append(child(argv_of(tool)))
            print(f"  round {r + 1}: {tool} done", file=sys.stderr, flush=True)
    return results


# ============================================================================ bo-step

def bo_step_child(tool, ns, cycles, seed=0, d=6):
    """Median ask + tell seconds after n observations, for each n: {n: s}."""
    out = {}
    for n in ns:
        rng = np.random.default_rng(seed + n)
        X = rng.uniform(size=(n, d))                      # (n, d)
        y = hartmann6(X)                                  # (n,)
        keys = [f"x{i}" for i in range(d)]
        if tool == "optuna":
            import optuna
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            dists = {k: optuna.distributions.FloatDistribution(0.0, 1.0) for k in keys}
            study = optuna.create_study(sampler=optuna.samplers.GPSampler(
                seed=seed, n_startup_trials=10))
            study.add_trials([optuna.trial.create_trial(
                params=dict(zip(keys, map(float, x))), distributions=dists, value=float(v))
                for x, v in zip(X, y)])
            ask = lambda: study.ask(dists)                                 # noqa: E731
            tell = study.tell
            vec = lambda t: np.array([t.params[k] for k in keys])          # noqa: E731
        else:
            searcher = hpopt.BayesianSearch({k: hpopt.Real(0.0, 1.0) for k in keys}, seed=seed,
                                            n_initial=10)
            for x, v in zip(X, y):
                searcher.tell(dict(zip(keys, map(float, x))), float(v))
            ask = lambda: searcher.ask(1)[0]                               # noqa: E731
            tell = searcher.tell
            vec = lambda p: np.array([p[k] for k in keys])                 # noqa: E731
        times = []
        for cycle in range(cycles + 1):                   # cycle 0 warms up (lazy imports)
            t0 = time.perf_counter()
            x = ask()
            t1 = time.perf_counter()
            v = float(hartmann6(vec(x))[0])           # not timed: the objective
            t2 = time.perf_counter()
            tell(x, v)
            if cycle:
                times.append(t1 - t0 + time.perf_counter() - t2)
        out[n] = statistics.median(times)
    return out


def bo_step(args):
    tools = ["hpopt", "optuna"]
    res = rounds_of(tools, args.rounds, lambda t: ["bo-step-child", t, args.cycles, *args.n])
    print(f"one ask + tell on Hartmann-6 after n observations, ms: median over {args.rounds} "
          f"rounds [min, max] of each round's median of {args.cycles} cycles; {versions()}")
    print("| n | hpopt ms | Optuna GPSampler ms | hpopt / Optuna |\n| --- | --- | --- | --- |")
    for n in args.n:
        h = [1e3 * r[str(n)] for r in res["hpopt"]]
        o = [1e3 * r[str(n)] for r in res["optuna"]]
        print(f"| {n} | {spread(h)} | {spread(o)} | {spread([a / b for a, b in zip(h, o)])} |")


# ============================================================================ gp

def sklearn_gpr(d, restarts, seed):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    kernel = (ConstantKernel(1.0, (1e-3, 1e3))
              * Matern(length_scale=np.ones(d), length_scale_bounds=(1e-2, 1e2), nu=2.5)
              + WhiteKernel(1e-4, (1e-9, 1e-1)))
    return GaussianProcessRegressor(kernel=kernel, normalize_y=True,
                                    n_restarts_optimizer=restarts, random_state=seed)


def gp_child(impl, ns, restarts, repeats, d=6, seed=0, n_test=10000):
    """Per n: fit seconds (each repeat), test RMSE, log marginal likelihood, predict
    seconds, peak memory (MB)."""
    import resource
    warnings.filterwarnings("ignore")                 # sklearn: ConvergenceWarning at bounds
    import gp
    make = (lambda: sklearn_gpr(d, restarts, seed)) if impl == "sklearn" else gp.GP
    Xt = np.random.default_rng(seed + 1).uniform(size=(n_test, d))   # (n_test, d)
    ft = hartmann6(Xt)                                               # (n_test,) noise-free
    rng = np.random.default_rng(seed)
    make().fit(rng.uniform(size=(20, d)), rng.standard_normal(20))  # lazy imports
    out = {}
    for n in ns:
        rng = np.random.default_rng(seed)
        X = rng.uniform(size=(n, d))                                 # (n, d)
        y = hartmann6(X) + 0.01 * rng.standard_normal(n)             # (n,)
        fits = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model = make().fit(X, y)
            fits.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        mean, _ = model.predict(Xt, return_std=True)
        predict = time.perf_counter() - t0
        lml = (model.log_marginal_likelihood_value_ if impl == "sklearn"
               else model.log_marginal_likelihood())
        out[n] = {"fit": fits, "rmse": float(np.sqrt(np.mean((mean - ft) ** 2))), "lml": float(lml),
                  "predict": predict,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    return out


def gp_bench(args):
    res = {impl: child(["gp-child", impl, args.restarts, args.repeats, *args.n])
           for impl in args.impls}
    print(f"GP regression on Hartmann-6 + noise 0.01 (d = 6): fit s, median [min, max] of "
          f"{args.repeats}; RMSE of the mean against the noise-free function at 10,000 points "
          f"(its std: {hartmann6(np.random.default_rng(1).uniform(size=(10000, 6))).std():.3f}); "
          f"scikit-learn with n_restarts_optimizer={args.restarts}; {versions()}")
    print("| n | gp.GP fit s | scikit-learn fit s | speed-up | gp.GP RMSE | scikit-learn RMSE "
          "| gp.GP LML | scikit-learn LML | gp.GP predict s | scikit-learn predict s "
          "| gp.GP peak MB |")
    print("| --- " * 11 + "|")
    nan = {"fit": [math.nan], "rmse": math.nan, "lml": math.nan, "predict": math.nan,
           "peak_mb": math.nan}
    for n in args.n:
        a, b = (res[i][str(n)] if i in res else nan for i in ("hpopt", "sklearn"))
        print(f"| {n} | {spread(a['fit'])} | {spread(b['fit'])} | "
              f"{statistics.median(b['fit']) / statistics.median(a['fit']):.1f}x | "
              f"{a['rmse']:.3f} | {b['rmse']:.3f} | {a['lml']:.3f} | {b['lml']:.3f} | "
              f"{a['predict']:.3g} | {b['predict']:.3g} | "
              f"{a['peak_mb']:.0f} |")


# ============================================================================ mlp

class NumpyMLP:
    """The MLP a student writes in plain NumPy: matmul + ReLU + softmax, SGD with momentum,
    new arrays at every step. float32."""

    def __init__(self, sizes, X, y, batch, lr=0.01, momentum=0.9, seed=0):
        self.rng = np.random.default_rng(seed)
        self.W = [(self.rng.standard_normal((i, o)) * np.sqrt(2.0 / i)).astype(np.float32)
                  for i, o in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(o, np.float32) for o in sizes[1:]]
        self.vW = [np.zeros_like(w) for w in self.W]
        self.vb = [np.zeros_like(b) for b in self.b]
        self.X, self.y, self.batch, self.lr, self.mu = X, y, batch, lr, momentum

    def step(self, X, y):
        hs = [X]
        for W, b in zip(self.W[:-1], self.b[:-1]):
            hs.append(np.maximum(hs[-1] @ W + b, 0))
        z = hs[-1] @ self.W[-1] + self.b[-1]
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        g = p
        g[rows, y] -= 1
        g /= len(y)
        for i in reversed(range(len(self.W))):
            dW, db = hs[i].T @ g, g.sum(axis=0)
            if i > 0:
                g = (g @ self.W[i].T) * (hs[i] > 0)
            self.vW[i] = self.mu * self.vW[i] - self.lr * dW
            self.vb[i] = self.mu * self.vb[i] - self.lr * db
            self.W[i] += self.vW[i]
            self.b[i] += self.vb[i]

    def epoch(self):
        perm = self.rng.permutation(len(self.X))
        for s in range(0, len(perm) - self.batch + 1, self.batch):
            idx = perm[s:s + self.batch]
            self.step(self.X[idx], self.y[idx])


class TorchMLP:
    """nn.Sequential of Linear and ReLU, cross_entropy, optim.SGD(momentum); PyTorch's
    default threads."""

    def __init__(self, sizes, X, y, batch, lr=0.01, momentum=0.9, seed=0):
        import torch
        self.torch = torch
        torch.manual_seed(seed)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
        self.model = torch.nn.Sequential(*layers)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=momentum)
        self.X, self.y, self.batch = torch.from_numpy(X), torch.from_numpy(y), batch

    def epoch(self):
        F, perm = self.torch.nn.functional, self.torch.randperm(len(self.X))
        for s in range(0, len(perm) - self.batch + 1, self.batch):
            idx = perm[s:s + self.batch]
            self.opt.zero_grad(set_to_none=True)
            F.cross_entropy(self.model(self.X[idx]), self.y[idx]).backward()
            self.opt.step()


class NnMLP:
    """This repository's nn.MLP, one nn.train(..., epochs=1) call per epoch."""

    def __init__(self, sizes, X, y, batch, lr=0.01, momentum=0.9, seed=0):
        import nn
        self.nn, self.model = nn, nn.MLP(sizes, seed=seed, dtype=np.float32)
        self.X, self.y, self.batch, self.lr, self.mu, self.ep = X, y, batch, lr, momentum, 0

    def epoch(self):
        self.ep += 1
        self.nn.train(self.model, self.X, self.y, epochs=1, batch_size=self.batch, lr=self.lr,
                      momentum=self.mu, seed=self.ep)


MLPS = {"numpy": NumpyMLP, "nn": NnMLP, "torch": TorchMLP}
NETS = [([64, 128, 128, 10], (32, 128)), ([784, 512, 512, 10], (32, 128))]
SHAPES = [([64, 128, 128, 10], (32, 128)), ([64, 128, 128, 128, 128, 10], (32, 128)),
          ([20, 256, 256, 256, 5], (64,)), ([64, 256, 256, 10], (32, 128)),
          ([64, 512, 512, 10], (32, 128))]                  # (sizes, batch sizes)


def mlp_data(sizes, n=8192, seed=0):
    """n points of a linear teacher: X (n, sizes[0]) float32, y (n,) int64."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    return X, (X @ rng.standard_normal((sizes[0], sizes[-1]))).argmax(1).astype(np.int64)


def mlp_child(framework, epochs):
    """Median epoch seconds for each net and batch, after one warm-up epoch."""
    out = {}
    for sizes, batches in NETS:
        X, y = mlp_data(sizes)
        for batch in batches:
            trainer = MLPS[framework](sizes, X, y, batch)
            trainer.epoch()                               # warm-up: JIT, lazy set-up
            times = []
            for _ in range(epochs):
                t0 = time.perf_counter()
                trainer.epoch()
                times.append(time.perf_counter() - t0)
            out[f"{'-'.join(map(str, sizes))} {batch}"] = statistics.median(times)
    return out


def mlp(args):
    res = rounds_of(args.frameworks, args.rounds, lambda f: ["mlp-child", f, args.epochs])
    base = args.frameworks[0]
    print(f"training samples/s (float32, SGD with momentum, 8192 samples an epoch), median of "
          f"{args.rounds} fresh processes x {args.epochs} epochs; x {base}: median [min, max] "
          f"over rounds; {versions()}")
    others = args.frameworks[1:]
    print("| net | batch | " + " | ".join(f"{f} samples/s" for f in args.frameworks)
          + "".join(f" | {f} / {base}" for f in others) + " |")
    print("| --- " * (2 + len(args.frameworks) + len(others)) + "|")
    for key in res[base][0]:
        net, batch = key.split()
        n = 8192 - 8192 % int(batch)
        speed = {f: [n / r[key] for r in res[f]] for f in args.frameworks}
        print(f"| {net} | {batch} | "
              + " | ".join(f"{statistics.median(speed[f]):,.0f}" for f in args.frameworks)
              + "".join(f" | {spread([a / b for a, b in zip(speed[f], speed[base])])}"
                        for f in others) + " |")


def shapes(args):
    import nn
    print("| net | batch | plain NumPy ms | nn.py ms | x plain NumPy |\n| --- | --- | --- | --- | --- |")
    for sizes, batches in SHAPES:
        X, y = mlp_data(sizes)
        for batch in batches:
            naive, model = NumpyMLP(sizes, X, y, batch), nn.MLP(sizes, seed=0)
            a, b = [], []
            for epoch in range(args.epochs + 1):              # epoch 0 warms up (and compiles)
                t0 = time.perf_counter()
                naive.epoch()
                t1 = time.perf_counter()
                nn.train(model, X, y, epochs=1, batch_size=batch, lr=0.01, momentum=0.9)
                if epoch:
                    a.append(t1 - t0)
                    b.append(time.perf_counter() - t1)
            a, b = statistics.median(a), statistics.median(b)
            print(f"| {'-'.join(map(str, sizes))} | {batch} | {1e3 * a:.1f} | {1e3 * b:.1f} | "
                  f"{a / b:.2f} |", flush=True)


FIRST_CALL = """
import time
t0 = time.perf_counter()
import numpy as np, nn
t1 = time.perf_counter()
rng = np.random.default_rng(0)
X, y = rng.standard_normal((8192, 64)).astype(np.float32), rng.integers(0, 10, 8192)
model = nn.MLP([64, 128, 128, 10], seed=0)
t2 = time.perf_counter()
nn.train(model, X, y, epochs=1, batch_size=32, lr=0.01)
print(t1 - t0, time.perf_counter() - t2)
"""


def first(args):
    print("| Numba cache | import nn s | first train s |\n| --- | --- | --- |")
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="numba_cache_") as cache:
            for state in ("empty", "warm"):
                out = subprocess.run([sys.executable, "-c", FIRST_CALL], cwd=HERE, check=True,
                                     env=dict(os.environ, NUMBA_CACHE_DIR=cache),
                                     capture_output=True, text=True).stdout.split()
                print(f"| {state} | {float(out[0]):.2f} | {float(out[1]):.2f} |", flush=True)


def paths(args):
    """nn.train's two paths (the compiled twins, and the NumPy reference with
    nn.USE_NUMBA = False) on the same net, data and seed, in float32 and float64."""
    import nn
    X, y = nn.make_spirals(200, 5, noise=0.3, seed=0)
    (X_tr, y_tr), (X_va, y_va), _ = nn.train_val_test_split(X, y, seed=0)
    print(f"2-48-48-5, dropout 0.1, batch 32, lr 0.05, {args.epochs} epochs on 5-arm spirals")
    print("| dtype | val. accuracy, compiled | val. accuracy, NumPy | largest weight difference |"
          "\n| --- | --- | --- | --- |")
    for dtype in (np.float32, np.float64):
        models = []
        for use_numba in (True, False):
            nn.USE_NUMBA = use_numba
            model = nn.MLP([2, 48, 48, 5], dropout=0.1, seed=0, dtype=dtype)
            nn.train(model, X_tr.astype(dtype), y_tr, epochs=args.epochs, batch_size=32,
                     lr=0.05, seed=0)
            models.append(model)
        nn.USE_NUMBA = True
        acc = [nn.accuracy(m, X_va.astype(dtype), y_va) for m in models]
        diff = float(np.max(np.abs(models[0].theta - models[1].theta)))
        print(f"| {np.dtype(dtype).name} | {acc[0]:.3f} | {acc[1]:.3f} | {diff:.2g} |")


TINY = """
import statistics, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, nn
X, y = nn.make_spirals(200, 5, noise=0.3, seed=0)
X = X.astype(np.float32)
for sizes in ([2, 48, 48, 5], [2, 64, 64, 64, 5]):
    for batch in (16, 64):
        times = []
        for _ in range(4):                             # the first compiles
            model = nn.MLP(sizes, dropout=0.1, seed=0)
            t0 = time.perf_counter()
            nn.train(model, X, y, epochs=30, batch_size=batch, lr=0.05)
            times.append(time.perf_counter() - t0)
        print("-".join(map(str, sizes)), batch, statistics.median(times[1:]))
"""


def tiny(args):
    """nn.train on the demo's kind of net (30 epochs of 1000 spiral points, dropout 0.1, one
    BLAS thread), this folder's nn.py and each FOLDER's (a git worktree of another commit),
    each in a fresh process, the folders alternating, --rounds times; median ms."""
    folders = [HERE] + [os.path.abspath(f) for f in args.folders]
    runs = {f: [] for f in folders}
    for _ in range(args.rounds):
        for f in folders:
            out = subprocess.run([sys.executable, "-c", TINY, f], check=True, text=True,
                                 capture_output=True).stdout.split("\n")
            runs[f].append({tuple(line.split()[:2]): float(line.split()[2]) for line in out if line})
    names = ["this nn.py"] + args.folders
    print("| net | batch | " + " | ".join(f"{n} ms" for n in names) + " | "
          + " | ".join(f"{n} / this" for n in args.folders) + " |")
    print("| --- " * (2 + 2 * len(args.folders) + 1) + "|")
    for key in runs[HERE][0]:
        ms = [1e3 * statistics.median(r[key] for r in runs[f]) for f in folders]
        print(f"| {key[0]} | {key[1]} | " + " | ".join(f"{m:.1f}" for m in ms) + " | "
              + " | ".join(f"{m / ms[0]:.2f}" for m in ms[1:]) + " |", flush=True)


BATCH = """
import os
os.environ["OPENBLAS_NUM_THREADS"] = "1"
import sys, time, numpy as np, nn
def per(f, k=20000):                                  # microseconds a call, after one
    f(); t = time.perf_counter()
    for _ in range(k): f()
    return 1e6 * (time.perf_counter() - t) / k
X, y = nn.make_spirals(200, 5, noise=0.3, seed=0)
X, bs, dt = X.astype(np.float32), 16, np.float32
model = nn.MLP([2, 64, 64, 64, 5], dropout=0.1, seed=0)
nn.train(model, X, y, epochs=2, batch_size=bs, lr=0.05)          # compiles
t = time.perf_counter()
nn.train(model, X, y, epochs=20, batch_size=bs, lr=0.05)
print(f"| whole batch (an epoch / its {-(-len(X) // bs)} batches) | "
      f"{1e6 * (time.perf_counter() - t) / 20 / -(-len(X) // bs):.1f} | 1 |")
W, b, rows, yb = model.W, model.b, np.arange(bs), y[:bs].astype(np.int64)
A = [np.ones((bs, h), dt) for h in (2, 64, 64, 64)]
H, M, G = [np.ones((bs, 64), dt) for _ in range(3)], [np.ones((bs, 64), dt) for _ in range(3)], \
    [np.ones((bs, 64), dt) for _ in range(3)] + [np.ones((bs, 5), dt)]
Z, dW, db = np.ones((bs, 5), dt), [np.ones_like(w) for w in W], [np.ones_like(v) for v in b]
v, g, decay = (np.zeros_like(model.theta) for _ in range(3))      # (P,) each
hyper = np.array([0.05, 0.9, 0.0], dt)
for name, f, count in [
        ("np.dot A W (16 x 64, 64 x 64)", lambda: np.dot(A[1], W[1], out=H[1]), 2),
        ("np.dot A W (16 x 2, 2 x 64)", lambda: np.dot(A[0], W[0], out=H[0]), 1),
        ("np.dot A W (16 x 64, 64 x 5)", lambda: np.dot(A[3], W[3], out=Z), 1),
        ("np.dot A^T G (64 x 16, 16 x 64)", lambda: np.dot(A[1].T, G[1], out=dW[1]), 2),
        ("np.dot A^T G (2 x 16, 16 x 64)", lambda: np.dot(A[0].T, G[0], out=dW[0]), 1),
        ("np.dot A^T G (64 x 16, 16 x 5)", lambda: np.dot(A[3].T, G[3], out=dW[3]), 1),
        ("np.dot G W^T (16 x 64, 64 x 64)", lambda: np.dot(G[2], W[2].T, out=G[1]), 2),
        ("np.dot G W^T (16 x 5, 5 x 64)", lambda: np.dot(G[3], W[3].T, out=G[2]), 1),
        ("hidden_forward_nb (p = 0.1)",
         lambda: nn.hidden_forward_nb(H[0], b[0], 0, rows, 12345, 0.1, 1 / 0.9, M[0], A[1]), 3),
        ("softmax_cross_entropy_nb", lambda: nn.softmax_cross_entropy_nb(Z, b[3], yb, G[3], db[3]), 1),
        ("hidden_backward_nb", lambda: nn.hidden_backward_nb(G[1], H[1], M[1], 0, db[1]), 3),
        ("sgd_momentum_nb", lambda: nn.sgd_momentum_nb(model.theta, v, g, hyper, decay), 1)]:
    print(f"| {name} | {per(f):.2f} | {count} |")
"""


def batch(args):
    """Where one batch of 2-64-64-64-5 at batch 16 (dropout 0.1, one BLAS thread) spends
    its time: the whole batch, then each call it makes, timed alone (us a call, and how
    many calls a batch makes)."""
    print("| part | us a call | calls a batch |\n| --- | --- | --- |")
    out = subprocess.run([sys.executable, "-c", BATCH], cwd=HERE, check=True, text=True,
                         capture_output=True).stdout
    print(out, end="")


# ============================================================================ halving

HALVING_SPACE = {"lr": hpopt.Real(1e-3, 1.0, log=True), "width": hpopt.Integer(1, 8),
                 "dropout": hpopt.Real(0.0, 0.5)}


def learning_curve(params, budget):
    """A made-up training run: the error falls with the budget (epochs) towards each
    configuration's own final error, faster with a larger learning rate; small learning
    rates end best but learn slowly, the case where halving can cut a winner early."""
    lr = math.log10(params["lr"])
    final = 0.1 + 0.05 * (lr + 2.0) ** 2 + 0.01 * (params["width"] - 5) ** 2 \
        + 0.2 * (params["dropout"] - 0.2) ** 2
    speed = 0.02 + 0.5 * params["lr"]                       # per epoch
    return final + (1.0 - final) * math.exp(-speed * budget)


def halving(args, min_budget=1, max_budget=27, eta=3):
    brackets = hpopt.hyperband_brackets(min_budget, max_budget, eta)
    print(f"learning-curve objective, budgets {min_budget}..{max_budget}, eta={eta}, "
          f"{args.seeds} seeds; final error = error at {max_budget} of the configuration returned")
    print("| method | epochs | final error, median [25%, 75%] |\n| --- | --- | --- |")
    for name, search, spent in [("successive halving", hpopt.successive_halving, brackets[:1]),
                                ("Hyperband", hpopt.hyperband, brackets)]:
        epochs = sum(n * r for b in spent for n, r in b)
        full = epochs // max_budget                   # random search: as many full trainings
        rows = {name: [], f"random search, {full} full trainings": []}
        for seed in range(args.seeds):
            best = search(learning_curve, HALVING_SPACE, min_budget, max_budget, eta,
                          seed=seed).best_params
            rows[name].append(learning_curve(best, max_budget))
            best = hpopt.random_search(lambda p: learning_curve(p, max_budget), HALVING_SPACE,
                                       n_trials=full, seed=seed).best_params
            rows[f"random search, {full} full trainings"].append(learning_curve(best, max_budget))
        for method, errors in rows.items():
            q1, _, q3 = statistics.quantiles(errors, n=4)
            print(f"| {method} | {epochs} | {statistics.median(errors):.4f} [{q1:.4f}, {q3:.4f}] |")


# ============================================================================ parallel

PARALLEL_SPACE = {"batch_size": hpopt.Choice([16, 32]), "lr": hpopt.Real(0.01, 0.1, log=True),
                  "epochs": hpopt.Choice([400]), "n_layers": hpopt.Integer(2, 3),
                  "dropout": hpopt.Real(0.0, 0.2)}


def spiral_error(params, data):
    """1 - validation accuracy of an MLP (width 48) trained on 5-arm spirals."""
    import nn
    (X, y), (X_val, y_val) = data
    model = nn.MLP([2] + [48] * params["n_layers"] + [5], dropout=params["dropout"], seed=0)
    nn.train(model, X, y, epochs=params["epochs"], batch_size=params["batch_size"],
             lr=params["lr"], seed=0)
    return 1.0 - nn.accuracy(model, X_val, y_val)


def parallel(args):
    import nn
    X, y = nn.make_spirals(200, 5, noise=0.3, seed=0)
    (X_tr, y_tr), (X_va, y_va), _ = nn.train_val_test_split(X, y, seed=0)
    mean, std = X_tr.mean(axis=0), X_tr.std(axis=0)
    data = (((X_tr - mean) / std, y_tr), ((X_va - mean) / std, y_va))
    objective = functools.partial(spiral_error, data=data)
    objective({"batch_size": 16, "lr": 0.05, "epochs": 1, "n_layers": 2, "dropout": 0.1})  # JIT
    times = {1: [], args.jobs: []}
    for repeat in range(args.repeats):
        for jobs in ([1, args.jobs] if repeat % 2 == 0 else [args.jobs, 1]):
            t0 = time.perf_counter()
            hpopt.random_search(objective, PARALLEL_SPACE, n_trials=args.trials, seed=repeat,
                                n_jobs=jobs)
            times[jobs].append(time.perf_counter() - t0)
            print(f"  repeat {repeat}: n_jobs={jobs}: {times[jobs][-1]:.2f} s", file=sys.stderr)
    ratios = [p / s for p, s in zip(times[args.jobs], times[1])]
    print(f"{args.trials} trials, each an MLP trained for 400 epochs, one BLAS thread each, "
          f"{os.cpu_count()} cores; {args.repeats} repeats (seed = repeat)")
    print(f"| sequential s | n_jobs={args.jobs} s | ratio |\n| --- | --- | --- |")
    print(f"| {spread(times[1])} | {spread(times[args.jobs])} | {spread(ratios)} |")


# ============================================================================ inverse

def median_ms(f, repeats=7):
    """Median time of one call of f in ms, timing loops of calls that last 20 ms or more."""
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            f()
        if time.perf_counter() - t0 >= 0.02:
            break
        calls *= 2
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            f()
        times.append((time.perf_counter() - t0) / calls)
    return 1000 * statistics.median(times)


def inverse(args):
    """L^-1 of the Cholesky factor of a Matern 5/2 K (d = 6), ms: gp.inverse_lower with
    diagonal blocks of 16, 32 and 64 (gp.INVERSE_BLOCK) against numpy's solve(L, I)."""
    import gp
    rng, blocks, saved = np.random.default_rng(0), (16, 32, 64), gp.INVERSE_BLOCK
    print("L^-1 of a Cholesky factor, ms, median of 7\n| n | " + " | ".join(
        f"block {b}" for b in blocks) + " | solve(L, I) |\n" + "| --- " * (len(blocks) + 2) + "|")
    for n in (100, 200, 500, 1000):
        X = rng.uniform(size=(n, 6))                  # (n, 6)
        L = np.linalg.cholesky(gp.matern52(X, X, np.full(6, 0.5), 1.0) + 1e-4 * np.eye(n))
        times = []
        for block in blocks:
            gp.INVERSE_BLOCK = block
            times.append(median_ms(lambda: gp.inverse_lower(L)))
        gp.INVERSE_BLOCK = saved
        times.append(median_ms(lambda: np.linalg.solve(L, np.eye(n))))
        print(f"| {n} | " + " | ".join(f"{t:.3f}" for t in times) + " |", flush=True)


# ============================================================================ lines, machine

def core_lines(path):
    """Code lines above the engineering banner: not blank, not comment-only, not docstring."""
    import ast
    src = open(path).read().splitlines()
    banner = next(i for i, line in enumerate(src) if line.startswith("# ---- engineering"))
    docstrings = set()
    for node in ast.walk(ast.parse("\n".join(src))):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            docstrings.update(range(body[0].lineno - 1, body[0].end_lineno))
    return sum(1 for i in range(banner) if src[i].strip()
               and not src[i].strip().startswith("#") and i not in docstrings)


def lines(args):
    counts = {name: core_lines(os.path.join(HERE, name)) for name in ("hpopt.py", "gp.py")}
    for name, n in counts.items():
        print(f"{name}: {n} lines of code in the teaching core")
    print(f"together: {sum(counts.values())}")


def machine(args):
    """What a BENCHMARKS.md table records about where it ran."""
    import platform
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                            capture_output=True, text=True).stdout.strip()
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(x.split(":", 1)[1].strip() for x in open("/proc/cpuinfo")
                   if x.startswith("model name"))
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    kernels = ""
    with contextlib.suppress(ImportError):            # threadpoolctl: what OpenBLAS picked
        from threadpoolctl import threadpool_info
        kernels = ", ".join(f"{p['internal_api']} {p.get('architecture')} kernels, "
                            f"{p['num_threads']} threads" for p in threadpool_info())
    print(f"date {time.strftime('%Y-%m-%d')}; commit {commit}; {cpu}, {os.cpu_count()} cores; "
          f"BLAS {blas.get('name')} {blas.get('version')} ({kernels}); "
          f"Python {platform.python_version()}; {versions()}")


# ============================================================================ main

def main():
    if sys.argv[1:2] == ["bo-step-child"]:
        tool, cycles, ns = sys.argv[2], int(sys.argv[3]), [int(n) for n in sys.argv[4:]]
        return print(json.dumps(bo_step_child(tool, ns, cycles)))
    if sys.argv[1:2] == ["gp-child"]:
        impl, restarts, repeats = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        return print(json.dumps(gp_child(impl, [int(n) for n in sys.argv[5:]], restarts, repeats)))
    if sys.argv[1:2] == ["mlp-child"]:
        return print(json.dumps(mlp_child(sys.argv[2], int(sys.argv[3]))))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("regret")
    s.add_argument("--half", choices=["tuning", "held-out"], default="tuning")
    s.add_argument("--fn", nargs="+", help="functions (default: those of --half)")
    s.add_argument("--methods", default="hpopt_bayes,skopt,optuna_gp,botorch,random",
                   help=f"comma-separated, of {','.join(METHODS)}")
    s.add_argument("--seeds", type=int, default=10)
    s.add_argument("--budget", type=int, default=40)
    s.set_defaults(func=regret)
    s = sub.add_parser("ablation")
    s.add_argument("--seeds", type=int, default=30)
    s.add_argument("--budget", type=int, default=40)
    s.add_argument("--held-out", action="store_true")
    s.add_argument("--rows", type=int, nargs="+", help="row numbers (0: the defaults)")
    s.set_defaults(func=ablation)
    s = sub.add_parser("bo-step")
    s.add_argument("--n", type=int, nargs="+", default=[20, 50, 100, 200])
    s.add_argument("--cycles", type=int, default=21)
    s.add_argument("--rounds", type=int, default=3)
    s.set_defaults(func=bo_step)
    s = sub.add_parser("gp")
    s.add_argument("--n", type=int, nargs="+", default=[50, 100, 200, 500])
    s.add_argument("--restarts", type=int, default=5)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--impls", nargs="+", default=["hpopt", "sklearn"], choices=["hpopt", "sklearn"])
    s.set_defaults(func=gp_bench)
    s = sub.add_parser("mlp")
    s.add_argument("--frameworks", nargs="+", default=["numpy", "nn", "torch"],
                   choices=list(MLPS), help="the first is the base of the ratios")
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--epochs", type=int, default=3)
    s.set_defaults(func=mlp)
    s = sub.add_parser("shapes")
    s.add_argument("--epochs", type=int, default=7)
    s.set_defaults(func=shapes)
    s = sub.add_parser("first")
    s.add_argument("--repeats", type=int, default=3)
    s.set_defaults(func=first)
    s = sub.add_parser("paths")
    s.add_argument("--epochs", type=int, default=150)
    s.set_defaults(func=paths)
    s = sub.add_parser("tiny")
    s.add_argument("folders", nargs="*", help="other checkouts of the project to compare")
    s.add_argument("--rounds", type=int, default=3)
    s.set_defaults(func=tiny)
    s = sub.add_parser("batch")
    s.set_defaults(func=batch)
    s = sub.add_parser("halving")
    s.add_argument("--seeds", type=int, default=20)
    s.set_defaults(func=halving)
    s = sub.add_parser("parallel")
    s.add_argument("--trials", type=int, default=16)
    s.add_argument("--jobs", type=int, default=2)
    s.add_argument("--repeats", type=int, default=3)
    s.set_defaults(func=parallel)
    sub.add_parser("lines").set_defaults(func=lines)
    sub.add_parser("inverse").set_defaults(func=inverse)
    sub.add_parser("machine").set_defaults(func=machine)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
