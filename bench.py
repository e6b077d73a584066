"""bench.py - two figures in README.md that the peer benchmarks do not give.

    python bench.py [--trials 16] [--jobs 2] [--repeats 3]
    python bench.py shapes [--epochs 7]
    python bench.py first [--repeats 3]

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
"""
import os
import sys

if sys.argv[1:2] not in (["shapes"], ["first"]):
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"                          # before numpy loads; workers inherit it

import argparse  # noqa: E402
import functools  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import demo  # noqa: E402
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


def main():
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
