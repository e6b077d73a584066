"""bench.py - figures in README.md that the peer benchmarks do not give.

    python bench.py [--trials 16] [--jobs 2] [--repeats 3]
    python bench.py shapes [--epochs 7]
    python bench.py first [--repeats 3]
    python bench.py lines | halving [--seeds 20] | ablation [--seeds 30] [--held-out]
    python bench.py tiny [DIR ...] | inverse

The first: a random search of CPU-bound trials (each trains nn.MLP on the demo's spirals),
run sequentially and with n_jobs workers, alternating, `--repeats` times. Each process
keeps BLAS and Numba to one thread, so a trial uses one core wherever it runs. Prints the
median wall times and their ratio.

`shapes`: nn.train against the plain NumPy MLP of ../shared/peers/speed_bench.py on
deeper and wider versions of its small net, at batch 32 and 128 (and a deeper, narrower
net at batch 64), with the same data, learning rate and momentum, and BLAS on its default
threads. One epoch of each in turn, `--epochs` times, in one process; prints median epoch
times and the ratio.

`first`: the first nn.train call of a fresh process (small net, batch 32, one epoch of
8192 samples), with an empty Numba cache and then with the cache that run left; also the
time of `import nn` (which imports numba). `--repeats` fresh cache folders; prints each.

`lines`: the teaching core's lines of code. `halving`: successive halving and Hyperband
against random search given the same total epochs, on a learning-curve objective.
`ablation`: the Bayesian search with one of its numbers changed at a time, on the tuning
half of ../shared/peers/functions.py (`--held-out`: the other half). `tiny`: nn.train on
the demo's kind of net (2-48-48-5, 1000 spiral points, 100 epochs) at batch 16 and 64, for
this folder's nn.py and each DIR's (say a `git worktree` of an older commit), one BLAS thread.
`inverse`: gp.inverse_lower with diagonal blocks of 16, 32 and 64 against numpy's
solve(L, I), BLAS on its default threads.
"""
import os
import sys

if sys.argv[1:2] not in (["shapes"], ["first"], ["lines"], ["halving"], ["ablation"],
                         ["inverse"]):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"                          # before numpy loads; workers inherit it

import argparse  # noqa: E402
import functools  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import demo  # noqa: E402
import gp  # noqa: E402
import hpopt  # noqa: E402
import nn  # noqa: E402

SPACE = {"batch_size": hpopt.Choice([16, 32]), "lr": hpopt.Real(0.01, 0.1, log=True),
         "epochs": hpopt.Choice([400]), "n_layers": hpopt.Integer(2, 3),
         "dropout": hpopt.Real(0.0, 0.2)}


SHAPES = [([64, 128, 128, 10], (32, 128)), ([64, 128, 128, 128, 128, 10], (32, 128)),
          ([20, 256, 256, 256, 5], (64,)), ([64, 256, 256, 10], (32, 128)),
          ([64, 512, 512, 10], (32, 128))]                  # (sizes, batch sizes)


def shapes(epochs):
    peers = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "shared", "peers")
    sys.path.insert(0, peers)
    try:
        from speed_bench import NaiveNumpyMLP, mlp_data
    except ImportError:
        sys.exit(f"bench.py shapes needs speed_bench.py in {os.path.normpath(peers)}")
    print("net                   batch  plain NumPy ms  nn.py ms  x plain NumPy")
    for sizes, batches in SHAPES:
        X, y = mlp_data(sizes, 8192)
        for batch in batches:
            naive = NaiveNumpyMLP(sizes, X, y, batch, 0.01, 0.9, 0)
            model = nn.MLP(sizes, seed=0)
            times = {"naive": [], "nn": []}
            for epoch in range(epochs + 1):                 # epoch 0 warms up (and compiles)
                t0 = time.perf_counter()
                naive.epoch()
                t1 = time.perf_counter()
                nn.train(model, X, y, epochs=1, batch_size=batch, lr=0.01, momentum=0.9)
                t2 = time.perf_counter()
                if epoch:
                    times["naive"].append(t1 - t0)
                    times["nn"].append(t2 - t1)
            a, b = statistics.median(times["naive"]), statistics.median(times["nn"])
            print(f"{'-'.join(map(str, sizes)):22s} {batch:5d} {1e3 * a:15.1f} {1e3 * b:9.1f}"
                  f" {a / b:14.2f}", flush=True)


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


def first(repeats):
    here = os.path.dirname(os.path.abspath(__file__))
    print("Numba cache  import nn s  first train s")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="numba_cache_") as cache:
            for state in ("empty", "warm"):
                out = subprocess.run([sys.executable, "-c", FIRST_CALL], cwd=here, check=True,
                                     env=dict(os.environ, NUMBA_CACHE_DIR=cache),
                                     capture_output=True, text=True).stdout.split()
                print(f"{state:11s} {float(out[0]):11.2f} {float(out[1]):14.2f}", flush=True)



# ----------------------------------------------------------------------------- lines

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


def lines():
    here = os.path.dirname(os.path.abspath(__file__))
    counts = {name: core_lines(os.path.join(here, name)) for name in ("hpopt.py", "gp.py")}
    for name, n in counts.items():
        print(f"{name}: {n} lines of code in the teaching core")
    print(f"together: {sum(counts.values())}")


# ----------------------------------------------------------------------------- halving

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


def halving(seeds, min_budget=1, max_budget=27, eta=3):
    brackets = hpopt.hyperband_brackets(min_budget, max_budget, eta)
    print(f"learning-curve objective, budgets {min_budget}..{max_budget}, eta={eta}, "
          f"{seeds} seeds; final error = error at {max_budget} of the configuration returned")
    print(f"{'method':26s} {'epochs':>7s} {'median':>8s} {'[25%, 75%]':>18s}")
    for name, search, spent in [
            ("successive_halving", hpopt.successive_halving, brackets[:1]),
            ("hyperband", hpopt.hyperband, brackets)]:
        epochs = sum(n * r for b in spent for n, r in b)
        full = epochs // max_budget                   # random search: as many full trainings
        rows = {name: [], f"random x{full} (same epochs)": []}
        for seed in range(seeds):
            best = search(learning_curve, HALVING_SPACE, min_budget, max_budget, eta,
                          seed=seed).best_params
            rows[name].append(learning_curve(best, max_budget))
            best = hpopt.random_search(lambda p: learning_curve(p, max_budget), HALVING_SPACE,
                                       n_trials=full, seed=seed).best_params
            rows[f"random x{full} (same epochs)"].append(learning_curve(best, max_budget))
        for method, errors in rows.items():
            q1, q2, q3 = statistics.quantiles(errors, n=4)
            print(f"{method:26s} {epochs:7d} {statistics.median(errors):8.4f} "
                  f"  [{q1:.4f}, {q3:.4f}]")


# ----------------------------------------------------------------------------- ablation

ABLATION = [                                          # (row, constants of hpopt to set)
    ("defaults", {}),
    ("no local candidates", {"N_LOCAL": 0}),
    ("no polish", {"POLISH_STEPS": ()}),
    ("polish of two steps", {"POLISH_STEPS": (0.01, 0.001)}),
    ("500 uniform candidates", {"N_CANDIDATES": 500}),
    ("n_initial = q + 1", {"n_initial": "q+1"}),
    ("polish 5 parents", {"POLISH_PARENTS": 5}),
    ("polish 10 children", {"POLISH_CHILDREN": 10}),
    ("no warp", {"WARP_LAMBDAS": np.array([1.0])}),
    ("no prior (max. lik.)", {"LOG_PRIOR": None}),
]
TUNING = ["branin", "six_hump_camel", "hartmann3", "rosenbrock4", "ackley5", "mixed_hp"]
HELD_OUT = ["goldstein_price", "shekel4", "michalewicz5", "dixon_price6", "powell4", "mixed_arch"]


def ablation(seeds, budget, functions):
    peers = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "shared", "peers")
    sys.path.insert(0, peers)
    try:
        import functions as peer_functions
    except ImportError:
        sys.exit(f"bench.py ablation needs functions.py in {os.path.normpath(peers)}")
    print(f"median log10 regret after {budget} evaluations over {seeds} seeds "
          f"(regret = best - known minimum, floored at 1e-12; lower is better)")
    print(f"{'':24s}" + "".join(f"{name[:10]:>11s}" for name in functions) + "       mean")
    saved = {k: getattr(hpopt, k) for _, changes in ABLATION for k in changes if k != "n_initial"}
    for row, changes in ABLATION:
        for name, value in changes.items():
            if name != "n_initial":
                setattr(hpopt, name, value)
        medians = []
        for name in functions:
            spec = peer_functions.FUNCTIONS[name]
            space = {k: hpopt.Choice(list(d.options)) if isinstance(d, peer_functions.Choice)
                     else (hpopt.Integer if isinstance(d, peer_functions.Integer) else hpopt.Real)(
                         d.low, d.high, log=d.log) for k, d in spec.space.items()}
            n_initial = len(space) + 1 if changes.get("n_initial") else None
            regrets = [math.log10(max(hpopt.bayesian_search(
                spec.f, space, budget, seed=seed, n_initial=n_initial).best_value
                - spec.f_min, 1e-12)) for seed in range(seeds)]
            medians.append(statistics.median(regrets))
        for name, value in saved.items():
            setattr(hpopt, name, value)
        print(f"{row:24s}" + "".join(f"{m:11.2f}" for m in medians)
              + f"{statistics.fmean(medians):11.2f}", flush=True)


TINY = """
import statistics, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, nn
X, y = nn.make_spirals(200, 5, noise=0.3, seed=0)
for batch in (16, 64):
    times = []
    for _ in range(4):                                 # the first compiles
        model = nn.MLP([2, 48, 48, 5], dropout=0.1, seed=0)
        t0 = time.perf_counter()
        nn.train(model, X.astype(np.float32), y, epochs=100, batch_size=batch, lr=0.05)
        times.append(time.perf_counter() - t0)
    print(f"{sys.argv[1]}: batch {batch}: {statistics.median(times[1:]):.3f} s")
"""


def tiny(folders):
    for folder in [os.path.dirname(os.path.abspath(__file__))] + folders:
        subprocess.run([sys.executable, "-c", TINY, os.path.abspath(folder)], check=True)


# ----------------------------------------------------------------------------- inverse


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


def inverse():
    """L^-1 of the Cholesky factor of a Matern 5/2 K (d = 6), ms: the block sizes and
    numpy's dense solve, medians of 7."""
    rng, blocks, saved = np.random.default_rng(0), (16, 32, 64), gp.INVERSE_BLOCK
    print(f"{'n':>5s}" + "".join(f"{'block ' + str(b):>10s}" for b in blocks) + "  solve(L, I)")
    for n in (100, 200, 500, 1000):
        X = rng.uniform(size=(n, 6))                  # (n, 6)
        L = np.linalg.cholesky(gp.matern52(X, X, np.full(6, 0.5), 1.0) + 1e-4 * np.eye(n))
        times = []
        for block in blocks:
            gp.INVERSE_BLOCK = block
            times.append(median_ms(lambda: gp.inverse_lower(L)))
        gp.INVERSE_BLOCK = saved
        times.append(median_ms(lambda: np.linalg.solve(L, np.eye(n))))
        print(f"{n:5d}" + "".join(f"{t:10.3f}" for t in times[:-1]) + f"{times[-1]:13.3f}")


def main():
    if sys.argv[1:2] == ["tiny"]:
        return tiny(sys.argv[2:])
    if sys.argv[1:2] == ["lines"]:
        return lines()
    if sys.argv[1:2] == ["inverse"]:
        return inverse()
    if sys.argv[1:2] in (["halving"], ["ablation"]):
        ap = argparse.ArgumentParser(description=f"bench.py {sys.argv[1]}")
        ap.add_argument("--seeds", type=int, default=20 if sys.argv[1] == "halving" else 30)
        ap.add_argument("--budget", type=int, default=40)
        ap.add_argument("--held-out", action="store_true", help="ablation: the held-out half")
        args = ap.parse_args(sys.argv[2:])
        if sys.argv[1] == "halving":
            return halving(args.seeds)
        return ablation(args.seeds, args.budget, HELD_OUT if args.held_out else TUNING)
    if sys.argv[1:2] in (["shapes"], ["first"]):
        ap = argparse.ArgumentParser(description=f"bench.py {sys.argv[1]}")
        ap.add_argument("--epochs", type=int, default=7)
        ap.add_argument("--repeats", type=int, default=3)
        args = ap.parse_args(sys.argv[2:])
        return shapes(args.epochs) if sys.argv[1] == "shapes" else first(args.repeats)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    train, val, _ = demo.prepare(*nn.make_spirals(200, 5, noise=0.3, seed=0), seed=0)
    objective = functools.partial(demo.validation_error, train=train, val=val, n_classes=5)
    objective({"batch_size": 16, "lr": 0.05, "epochs": 1, "n_layers": 2, "dropout": 0.1})  # JIT
    times = {1: [], args.jobs: []}
    for repeat in range(args.repeats):
        for jobs in ([1, args.jobs] if repeat % 2 == 0 else [args.jobs, 1]):
            t0 = time.perf_counter()
            result = hpopt.random_search(objective, SPACE, n_trials=args.trials, seed=repeat,
                                         n_jobs=jobs)
            times[jobs].append(time.perf_counter() - t0)
            print(f"repeat {repeat}: n_jobs={jobs}: {times[jobs][-1]:.2f} s "
                  f"({len(result.trials)} trials, best {result.best_value:.3f})", flush=True)
    seq, par = statistics.median(times[1]), statistics.median(times[args.jobs])
    print(f"\n{args.trials} trials on {os.cpu_count()} cores: sequential {seq:.2f} s, "
          f"n_jobs={args.jobs} {par:.2f} s (medians of {args.repeats}); ratio {par / seq:.2f}")


if __name__ == "__main__":
    main()
