"""bench.py - the parallel speed-up figure in README.md (the peer benchmarks give the rest).

    python bench.py [--trials 16] [--jobs 2] [--repeats 3]

A random search of CPU-bound trials (each trains nn.MLP on the demo's spirals), run
sequentially and with n_jobs workers, alternating, `--repeats` times. Each process keeps
BLAS and Numba to one thread, so a trial uses one core wherever it runs. Prints the median
wall times and their ratio.
"""
import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"                              # before numpy loads; workers inherit it

import argparse  # noqa: E402
import functools  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import demo  # noqa: E402
import hpopt  # noqa: E402
import nn  # noqa: E402

SPACE = {"batch_size": hpopt.Choice([16, 32]), "lr": hpopt.Real(0.01, 0.1, log=True),
         "epochs": hpopt.Choice([400]), "n_layers": hpopt.Integer(2, 3),
         "dropout": hpopt.Real(0.0, 0.2)}


def main():
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
