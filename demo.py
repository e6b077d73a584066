"""demo.py - grid, random and Bayesian search and Hyperband race to tune an MLP.

    python demo.py                 # spirals, 30 trials per method
    python demo.py --quick         # a smaller race
    python demo.py --budget 40 --jobs 2 --plot race.png

The story: a seeded data set, an objective (validation error of nn.MLP trained with the
BLEND hyperparameters: Batch size, Learning rate, Epochs, Number of layers, Dropout), three
searches with the same number of trials, and Hyperband (successive halving with --quick),
which spends epochs as its budget (BLEND minus epochs is its space); one line per trial,
then a table (with the epochs each method trained in all) and a chart of the best
validation error so far. --plot also draws what the Bayesian search's GP believes and, in a
second file, a 1-D Bayesian search step by step.
"""
import argparse
import functools
import math
import os
import sys
import time

import numpy as np

import gp
import hpopt
import nn

METHODS = ("grid", "random", "bayesian", "halving")
HALVING = {False: (5, 135, True), True: (9, 81, False)}   # (min, max epochs, Hyperband?)
# eta = 3. The full race runs Hyperband: its four brackets spend 2115 epochs, about what
# random search's 30 trials spend (epochs 10-150), and it starts 69 nets; one bracket of
# successive halving (27 nets at 5 epochs, ..., 1 at 135) spends 540 and picks on noise
# at 5 epochs on this data (median best val error over seeds 0-4: 0.695; Hyperband 0.195,
# random search 0.150; README, "What the demo shows"). --quick: one bracket, 9 nets at
# 9 epochs, 3 at 27, 1 at 81 (243 epochs).


# ----------------------------------------------------------------------------- data

def load_data(name, seed, quick):
    """(X, y) from 'spirals', 'digits' (needs scikit-learn) or a .csv/.npz path."""
    if name == "spirals":
        return nn.make_spirals(120 if quick else 200, 5, noise=0.3, seed=seed)
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            sys.exit("--data digits needs scikit-learn: pip install scikit-learn")
        digits = load_digits()
        return digits.data, digits.target
    return load_file(name)


def load_file(path):
    """A .csv (label in the last column) or .npz (arrays X and y); exits with a message."""
    def fail(problem):
        sys.exit(f"--data {path}: {problem}")
    if not os.path.isfile(path):
        fail("no such file (or use 'spirals' or 'digits')")
    try:
        if path.endswith(".npz"):
            with np.load(path) as f:
                if "X" not in f or "y" not in f:
                    fail(f"a .npz needs arrays named X and y; it has {sorted(f.files)}")
                X, y = f["X"], f["y"]
        elif path.endswith(".csv"):
            table = np.loadtxt(path, delimiter=",", ndmin=2)
            X, y = table[:, :-1], table[:, -1]
        else:
            fail("expected a .csv or .npz file")
        X, y = np.asarray(X, dtype=float), np.asarray(y)
    except (ValueError, TypeError) as e:
        fail(f"cannot be read as numbers ({e})")
    if X.ndim != 2 or X.shape[1] == 0 or y.ndim != 1 or len(X) != len(y) or len(X) < 10:
        fail(f"needs X (n, d) and y (n,) with n >= 10; got X {X.shape}, y {y.shape}")
    if not np.all(np.isfinite(X)):
        fail("X must be finite")
    if y.dtype.kind in "fc" and not np.all(np.equal(np.mod(y, 1), 0)):
        fail("the labels must be whole numbers (or strings)")
    if len(np.unique(y)) < 2:
        fail(f"needs at least 2 classes; every label is {y[0]!r}")
    return X, np.unique(y, return_inverse=True)[1]   # labels -> 0..c-1


def prepare(X, y, seed):
    """Split 60/20/20 and standardise the inputs with the training statistics."""
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = nn.train_val_test_split(X, y, seed=seed)
    mean, std = X_tr.mean(axis=0), X_tr.std(axis=0) + 1e-12
    return [((Xp - mean) / std, yp) for Xp, yp in [(X_tr, y_tr), (X_va, y_va), (X_te, y_te)]]


# ----------------------------------------------------------------------------- objective

def blend_space(quick):
    return {"batch_size": hpopt.Choice([16, 32, 64, 128]),
            "lr": hpopt.Real(1e-3, 1.0, log=True),
            "epochs": hpopt.Integer(10, 80 if quick else 150),
            "n_layers": hpopt.Integer(1, 4),
            "dropout": hpopt.Real(0.0, 0.5)}


def fit_model(params, train, n_classes, seed=0, width=48):
    X, y = train
    model = nn.MLP([X.shape[1]] + [width] * params["n_layers"] + [n_classes],
                   dropout=params["dropout"], seed=seed)
    history = nn.train(model, X, y, epochs=params["epochs"], batch_size=params["batch_size"],
                       lr=params["lr"], seed=seed)
    return model, history


def validation_error(params, train, val, n_classes):
    """The objective: 1 - validation accuracy (nan, a failed trial, if training diverged)."""
    model, history = fit_model(params, train, n_classes)
    return math.nan if history["diverged"] else 1.0 - nn.accuracy(model, *val)


def validation_error_after(params, epochs, train, val, n_classes):
    """Successive halving's objective: the same, with the epochs as the budget."""
    return validation_error({**params, "epochs": epochs}, train, val, n_classes)


def epochs_of(trial):
    return trial.budget if trial.budget is not None else trial.params["epochs"]


def grid_space(space, budget):
    """The largest grid of at most `budget` points: add values to the dimensions in turn
    (learning rate first) while the product stays within the budget."""
    order = ["lr", "n_layers", "dropout", "batch_size", "epochs"]
    counts = dict.fromkeys(order, 1)
    grown = True
    while grown:
        grown = False
        for name in order:
            room = len(space[name].options) if isinstance(space[name], hpopt.Choice) else 99
            if counts[name] < room and math.prod(counts.values()) // counts[name] * (counts[name] + 1) <= budget:
                counts[name] += 1
                grown = True
    def values(name, k):
        dim = space[name]
        if isinstance(dim, hpopt.Choice):
            return [dim.options[i] for i in np.linspace(0, len(dim.options) - 1, k).round().astype(int)]
        return dim.grid(k) if k > 1 else [dim.from_unit(0.5)]
    return {name: hpopt.Choice(values(name, counts[name])) for name in space}, counts


# ----------------------------------------------------------------------------- output

def trial_line(method, n_trials):
    best = [math.inf]

    def callback(trial):
        if trial.status == "ok":
            best[0] = min(best[0], trial.value)
        shown = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in trial.params.items())
        shown += f" epochs={trial.budget}" if trial.budget is not None else ""
        value = f"{trial.value:.3f}" if trial.status == "ok" else "failed"
        print(f"{method:8s} trial {trial.number + 1:2d}/{n_trials}  {shown:62s} "
              f"val error {value}  best {best[0]:.3f}  {trial.seconds:5.2f}s", flush=True)
    return callback


def ascii_chart(curves, height=10):
    """Best-so-far curves as plain characters: one letter per method, '*' where they meet."""
    finite = [v for c in curves.values() for v in c if math.isfinite(v)]
    if not finite:
        return "(no successful trial to chart)"
    lo, hi = min(finite), max(finite)
    hi = hi if hi > lo else lo + 1e-9
    width = max(len(c) for c in curves.values())
    rows = [[" "] * width for _ in range(height)]
    for method, curve in curves.items():
        for k, v in enumerate(curve):
            if math.isfinite(v):
                r = round((hi - v) / (hi - lo) * (height - 1))
                rows[r][k] = method[0].upper() if rows[r][k] in (" ", method[0].upper()) else "*"
    lines = [f"{hi - r * (hi - lo) / (height - 1):7.3f} |{''.join(row)}" for r, row in enumerate(rows)]
    lines.append("        +" + "-" * width)
    lines.append("         1" + str(width).rjust(width - 1) + "  trial")
    lines.append("         best validation error so far: "
                 + ", ".join(f"{m[0].upper()} = {m}" for m in curves) + ", * = tie")
    return "\n".join(lines)


def belief(searcher, chosen, name):
    """What the Bayesian search's own GP believed when it chose `chosen` (its last ask, no
    point pending besides it), along dimension `name` with the others at the best trial.

    The GP is searcher.gp as that ask fitted it: inputs gp_inputs(space, U), targets the
    values (failed -> worst) through hpopt.warp, so every value here is in warped units.
    """
    space, U, y = searcher.space, np.array(searcher.U), np.array(searcher.values)  # (n, q), (n,)
    ok = np.isfinite(y)
    y_seen = hpopt.warp(np.where(ok, y, y[ok].max()))  # (n,) the targets the GP was fitted to
    j, dim = list(space).index(name), space[name]
    U_line = np.repeat(U[np.argmin(y_seen)][None, :], 200, axis=0)  # (200, q) at the best...
    U_line[:, j] = np.linspace(0, 1, 200)                             # ...but `name` varies
    mean, std = searcher.gp.predict(hpopt.gp_inputs(space, U_line), return_std=True)  # (200,)
    u_chosen = hpopt.to_unit(space, chosen)                            # (q,)

    def native(u):                                    # (m,) u -> (m,) values of `name`
        return np.array([dim.from_unit(float(ui)) for ui in u])
    return {"x": native(U_line[:, j]), "mean": mean, "std": std,
            "log_ei": gp.log_expected_improvement(mean, std, y_seen.min()),  # best as _fit
            "x_seen": native(U[:, j]), "y_seen": y_seen, "x_chosen": chosen[name],
            "y_chosen": searcher.gp.predict(hpopt.gp_inputs(space, u_chosen[None, :]))[0],
            "log": getattr(dim, "log", False)}


def draw_belief(ax_gp, ax_ei, b, title):
    """GP mean +- 2 std, the trials as dots, the chosen point as a star; log EI below."""
    ax_gp.plot(b["x"], b["mean"], color="C0", label="GP mean")
    ax_gp.fill_between(b["x"], b["mean"] - 2 * b["std"], b["mean"] + 2 * b["std"],
                       color="C0", alpha=0.2, label="mean +- 2 std")
    ax_gp.scatter(b["x_seen"], b["y_seen"], color="k", zorder=3, label="trials")
    ax_gp.scatter([b["x_chosen"]], [b["y_chosen"]], marker="*", s=200, color="C3", zorder=4,
                  label="chosen next (GP mean there)")
    ax_ei.plot(b["x"], b["log_ei"], color="C2")
    top = b["log_ei"].max()
    ax_ei.set_ylim(max(b["log_ei"].min(), top - 25) - 1, top + 1)  # not the whole abyss
    for ax in (ax_gp, ax_ei):
        ax.axvline(b["x_chosen"], color="C3", linestyle="--", linewidth=1)
        ax.set_xscale("log" if b["log"] else "linear")
    ax_gp.set(title=title, ylabel="warped value (GP units)")
    ax_ei.set(ylabel="log EI")


def forrester(x):
    """A cheap 1-D test function with two minima, the lower at x = 0.757 (Forrester et al.
    2008, Engineering Design via Surrogate Modelling, p. 83)."""
    return (6 * x - 2) ** 2 * np.sin(12 * x - 4)


def step_beliefs(steps=(3, 4, 5, 6), seed=0):
    """A 1-D Bayesian search on forrester: its belief after each of `steps` trials."""
    searcher = hpopt.BayesianSearch({"x": hpopt.Real(0.0, 1.0)}, seed=seed, n_initial=steps[0])
    beliefs = {}
    for k in range(max(steps) + 1):
        params = searcher.ask()[0]                    # after k trials: fits searcher.gp
        if k in steps:
            beliefs[k] = belief(searcher, params, "x")
        searcher.tell(params, float(forrester(params["x"])))
    return beliefs


def plot(path, results, searcher):
    """Convergence curves and, after the race, what the Bayesian search believes when it
    asks one more point; also <path>_steps.png: a 1-D search step by step. Returns the figures."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib: pip install matplotlib")
        return None
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(7, 10))
    for method, result in results.items():
        ax1.plot(range(1, len(result.trials) + 1), result.best_so_far, label=method)
    ax1.set(xlabel="trial", ylabel="best validation error so far")
    ax1.legend()
    if searcher is not None and np.isfinite(searcher.values).sum() >= 2:
        chosen = searcher.ask()[0]                    # trial n + 1: fits the GP to all n
        draw_belief(ax2, ax3, belief(searcher, chosen, "lr"),
                    f"Bayesian search after {len(searcher.values)} trials: its GP along lr "
                    "(others as the best trial)")
        ax2.legend(fontsize=8)
        ax3.set(xlabel="learning rate (trials: their lr; the curve: other settings as the best)")
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")

    beliefs = step_beliefs()
    steps, axes = plt.subplots(2, len(beliefs), figsize=(4 * len(beliefs), 6), sharex=True)
    for col, (k, b) in enumerate(beliefs.items()):
        draw_belief(axes[0, col], axes[1, col], b, f"after {k} trials")
        axes[1, col].set(xlabel="x")
    axes[0, 0].legend(fontsize=8)
    steps.suptitle("1-D Bayesian search on the Forrester function: GP and log EI, step by step")
    steps.tight_layout()
    steps_path = os.path.splitext(path)[0] + "_steps.png"
    steps.savefig(steps_path)
    print(f"wrote {steps_path}")
    plt.close(fig)
    plt.close(steps)
    return fig, steps


# ----------------------------------------------------------------------------- the race

def main(argv=None):
    ap = argparse.ArgumentParser(description="Grid vs random vs Bayesian search on an MLP.")
    ap.add_argument("--budget", type=int, default=None, help="trials per method (default 30; 12 with --quick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of grid,random,bayesian,halving")
    ap.add_argument("--quick", action="store_true", help="a small race for a first look")
    ap.add_argument("--jobs", type=int, default=1, help="trials run in parallel (processes)")
    ap.add_argument("--data", default="spirals", help="spirals, digits, or a .csv/.npz path")
    ap.add_argument("--plot", metavar="FILE.png",
                    help="save curves and the GP pictures to FILE.png and FILE_steps.png (matplotlib)")
    args = ap.parse_args(argv)
    budget = args.budget if args.budget is not None else (12 if args.quick else 30)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if budget < 1 or args.jobs < 1 or args.seed < 0:
        ap.error(f"need --budget >= 1, --jobs >= 1 and --seed >= 0; got --budget {budget}, "
                 f"--jobs {args.jobs}, --seed {args.seed}")
    if not methods or any(m not in METHODS for m in methods):
        ap.error(f"--methods must be a subset of {','.join(METHODS)}; got {args.methods!r}")
    if args.plot and not os.access(os.path.dirname(os.path.abspath(args.plot)), os.W_OK):
        ap.error(f"--plot {args.plot}: cannot write to that folder")

    X, y = load_data(args.data, args.seed, args.quick)
    train, val, test = prepare(X, y, args.seed)
    n_classes = int(y.max()) + 1
    print(f"data: {args.data}, {len(train[0])} train / {len(val[0])} validation / "
          f"{len(test[0])} test points, {X.shape[1]} features, {n_classes} classes")
    objective = functools.partial(validation_error, train=train, val=val, n_classes=n_classes)
    space = blend_space(args.quick)
    options = dict(n_jobs=args.jobs)
    results, walls, notes, bayes = {}, {}, {}, None
    for method in methods:
        t0 = time.perf_counter()
        if method == "grid":
            grid, counts = grid_space(space, budget)
            notes[method] = "grid " + " x ".join(f"{c} {n}" for n, c in counts.items() if c > 1)
            searcher, n_trials = hpopt.GridSearch(grid, n_points=1), math.prod(counts.values())
        elif method == "random":
            searcher, n_trials = hpopt.RandomSearch(space, seed=args.seed), budget
        elif method == "bayesian":
            searcher = bayes = hpopt.BayesianSearch(space, seed=args.seed, n_initial=min(5, budget))
            n_trials = budget
        else:                                         # epochs are the budget, not a dimension
            low, high, hyperband = HALVING[args.quick]
            searcher = hpopt.HalvingSearch({k: d for k, d in space.items() if k != "epochs"},
                                           low, high, eta=3, seed=args.seed, hyperband=hyperband)
            n_trials = searcher.size
        results[method] = hpopt.run(
            searcher, objective if method != "halving" else functools.partial(
                validation_error_after, train=train, val=val, n_classes=n_classes),
            n_trials, method=method, callback=trial_line(method, n_trials), **options)
        walls[method] = time.perf_counter() - t0

    print(f"\n{'method':9s} {'best val error':>14s} {'test accuracy':>13s} {'trials':>7s} "
          f"{'epochs':>7s} {'wall s':>7s}  note")
    for method, result in results.items():
        try:
            best = {**result.best_params, "epochs": epochs_of(result.best_trial)}
        except ValueError:
            print(f"{method:9s} {'all failed':>14s}")
            continue
        model, _ = fit_model(best, train, n_classes)  # retrain the best, score it on test
        epochs = sum(epochs_of(t) for t in result.trials)
        print(f"{method:9s} {result.best_value:14.3f} {nn.accuracy(model, *test):13.3f} "
              f"{len(result.trials):7d} {epochs:7d} {walls[method]:7.1f}  {notes.get(method, '')}")
    print()
    print(ascii_chart({m: r.best_so_far for m, r in results.items()}))
    if args.plot:
        plot(args.plot, results, bayes)
    return results


if __name__ == "__main__":
    main()
