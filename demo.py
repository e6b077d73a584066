"""demo.py - grid, random and Bayesian search and Hyperband race to tune an MLP.

    python demo.py                 # spirals, 30 trials per method
    python demo.py --quick         # a smaller race
    python demo.py --budget 40 --jobs 2 --plot race.png

The story: a seeded data set, an objective (validation error of nn.MLP trained with the
BLEND hyperparameters: Batch size, Learning rate, Epochs, Number of layers, Dropout), three
searches with the same number of trials, and Hyperband (one bracket of it, successive
halving, with --quick), which spends epochs as its budget (BLEND minus epochs is its
space); one line per trial, then a table and a chart of the race: the best validation error
against the epochs each method has trained, so methods compare at equal compute. Last,
which hyperparameters mattered, as the Bayesian search's GP sees them. --plot draws the
race, that ranking and the GP, and in a second file a 1-D Bayesian search step by step.
"""
import argparse
import functools
import importlib.util
import math
import os
import sys
import time

import numpy as np

import gp
import hpopt
import nn

METHODS = {"grid": "G", "random": "R", "bayesian": "B", "hyperband": "H", "halving": "S"}
HALVING = {False: (5, 135), True: (9, 81)}    # epochs (min, max) for hyperband and halving
# eta = 3. Full race: Hyperband's four brackets train 69 nets for 2115 epochs in all, about
# what random search's 30 trials spend; its first bracket alone (successive halving: 27 nets
# at 5 epochs, ..., 1 at 135) ranks 5-epoch nets, on this data noise. --quick: 9 at 9, ..., 1 at 81.


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
            table = np.char.strip(np.loadtxt(path, delimiter=",", dtype=str, ndmin=2))
            X, y = table[:, :-1], table[:, -1]        # (n, d), (n,) text
            try:
                y = y.astype(float)                   # numbers: "1.0" and "1" are one class
            except ValueError:
                pass                                  # words: each is a class
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
    """The largest grid of at most `budget` points, as a space of Choices: add a value to
    each dimension in turn (learning rate first) while it has one more and the product of
    the counts stays within the budget."""
    order = ["lr", "n_layers", "dropout", "batch_size", "epochs"]

    def values(name, k):                              # k values of `name`, fewer if it has fewer
        dim = space[name]
        if isinstance(dim, hpopt.Choice):
            K = len(dim.options)
            return [dim.options[i] for i in np.linspace(0, K - 1, min(k, K)).round().astype(int)]
        return dim.grid(k)
    counts, grown = dict.fromkeys(order, 1), True
    while grown:
        grown = False
        for name in order:
            k = counts[name] + 1
            if len(values(name, k)) == k and math.prod(counts.values()) // (k - 1) * k <= budget:
                counts[name], grown = k, True
    return {name: hpopt.Choice(values(name, counts[name])) for name in space}


# ----------------------------------------------------------------------------- the race

def race(result):
    """Epochs trained after each trial (n,) and the best validation error so far (n,), in
    trial-number order: the x and y of one method's curve."""
    trials = sorted(result.trials, key=lambda t: t.number)
    return np.cumsum([epochs_of(t) for t in trials]), np.array(result.best_so_far)


def trial_line(method, n_trials):
    best = [math.inf]

    def callback(trial):
        if trial.status == "ok":
            best[0] = min(best[0], trial.value)
        shown = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in trial.params.items())
        shown += f" epochs={trial.budget}" if trial.budget is not None else ""
        value = f"{trial.value:.3f}" if trial.status == "ok" else "failed"
        print(f"{method:9s} trial {trial.number + 1:2d}/{n_trials}  {shown:62s} "
              f"val error {value}  best {best[0]:.3f}  {trial.seconds:5.2f}s", flush=True)
    return callback


def ascii_chart(curves, width=70, height=10):
    """The race in plain characters. curves: {method: race(result)}. Column c holds, for
    each method still training then (its letter in METHODS, '*' where two meet), its best
    after the trials done by c + 1 columns' worth of epochs."""
    finite = [v for _, best in curves.values() for v in best if math.isfinite(v)]
    if not finite:
        return "(no successful trial to chart)"
    lo, hi = min(finite), max(finite)
    hi = hi if hi > lo else lo + 1e-9
    spent = max(epochs[-1] for epochs, _ in curves.values())
    rows = [[" "] * width for _ in range(height)]
    for method, (epochs, best) in curves.items():
        for c in range(width):
            k = np.searchsorted(epochs, (c + 1) * spent / width, side="right") - 1  # last done
            if k >= 0 and epochs[-1] > c * spent / width and math.isfinite(best[k]):
                r = round((hi - best[k]) / (hi - lo) * (height - 1))
                rows[r][c] = METHODS[method] if rows[r][c] in (" ", METHODS[method]) else "*"
    lines = [f"{hi - r * (hi - lo) / (height - 1):7.3f} |{''.join(row)}"
             for r, row in enumerate(rows)]
    lines.append("        +" + "-" * width)
    lines.append("         0" + str(spent).rjust(width - 1) + "  epochs trained")
    lines.append("         best validation error so far: "
                 + ", ".join(f"{METHODS[m]} = {m}" for m in curves) + ", * = tie")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the GP's view

def fit_gp(space, trials):
    """A GP fitted as the Bayesian search fits its own: the trials' points in the unit cube
    (each Choice one-hot: hpopt.gp_inputs), values through hpopt.warp, a failed trial as
    the worst.   returns: the gp.GP, U (n, q) and the warped values y (n,)"""
    U = np.array([hpopt.to_unit(space, t.params) for t in trials])     # (n, q)
    y = np.array([t.value if t.status == "ok" else np.nan for t in trials])  # (n,)
    y = hpopt.warp(np.where(np.isfinite(y), y, np.nanmax(y)))           # (n,) failed: worst
    return gp.GP("matern52", log_prior=gp.bo_log_prior).fit(hpopt.gp_inputs(space, U), y), U, y


LINE = (np.arange(24) + 0.5) / 24   # (24,) u along a dimension: mid-points, so that each
                                    # option of a Choice of 2, 3, 4, 6 or 8 gets equal weight


def relevance(space, trials):
    """Which hyperparameters mattered, as a GP fitted to the trials (fit_gp) sees them.

    Move one hyperparameter across its range (LINE in the unit cube) with the others held
    at a trial's values; the variance of the GP mean along that line, averaged over the
    trials, is the surrogate's main effect (for an additive function, the numerator of its
    first-order Sobol index). Its root, in warped units, is the relevance. Why not the ARD
    length-scales l (GPML section 5.1)? 1/l says how quickly the mean bends, not how far it
    moves: a steep straight effect gets a long l and would rank below a gentle bump.
    This is a property of the surrogate near the trials (for a Bayesian search, mostly near
    its best), not a causal effect: a hyperparameter the search hardly varied, or whose
    effect another one masks, can look unimportant.   returns: {name: relevance}, highest first
    """
    model, U, _ = fit_gp(space, trials)                                 # (n, q)
    scores = {}
    for j, name in enumerate(space):
        U_lines = np.repeat(U, len(LINE), axis=0)    # (n * 24, q) each trial 24 times...
        U_lines[:, j] = np.tile(LINE, len(U))        # ...with dimension j along its range
        mean = model.predict(hpopt.gp_inputs(space, U_lines)).reshape(len(U), len(LINE))  # (n, 24)
        scores[name] = float(np.sqrt(mean.var(axis=1).mean()))
    return dict(sorted(scores.items(), key=lambda item: -item[1]))


def belief(space, seen, chosen, name):
    """What a Bayesian search believed when, having seen the trials `seen`, it chose the
    point `chosen`: a GP fitted as it fits its own (fit_gp; the search's own fit may stop
    at a slightly different optimum), along dimension `name` with the others at the best
    trial seen. Every value here is in warped units."""
    model, U, y_seen = fit_gp(space, seen)                             # (n, q), (n,)
    j, dim = list(space).index(name), space[name]
    U_line = np.repeat(U[np.argmin(y_seen)][None, :], 200, axis=0)     # (200, q) at the best...
    U_line[:, j] = np.linspace(0, 1, 200)                              # ...but `name` varies
    mean, std = model.predict(hpopt.gp_inputs(space, U_line), return_std=True)  # (200,)
    u_chosen = hpopt.to_unit(space, chosen)                            # (q,)

    def native(u):                                    # (m,) u -> (m,) values of `name`
        return np.array([dim.from_unit(float(ui)) for ui in u])
    return {"x": native(U_line[:, j]), "mean": mean, "std": std,
            "log_ei": gp.log_expected_improvement(mean, std, y_seen.min()),
            "x_seen": native(U[:, j]), "y_seen": y_seen, "x_chosen": chosen[name],
            "y_chosen": model.predict(hpopt.gp_inputs(space, u_chosen[None, :]))[0],
            "log": getattr(dim, "log", False)}


def draw_belief(ax_gp, ax_ei, b, title):
    """GP mean +- 2 std, the trials as dots, the chosen point as a star; log EI below."""
    ax_gp.plot(b["x"], b["mean"], color="C0", label="GP mean")
    ax_gp.fill_between(b["x"], b["mean"] - 2 * b["std"], b["mean"] + 2 * b["std"],
                       color="C0", alpha=0.2, label="mean +- 2 std")
    ax_gp.scatter(b["x_seen"], b["y_seen"], color="k", zorder=3, label="trials")
    ax_gp.scatter([b["x_chosen"]], [b["y_chosen"]], marker="*", s=200, color="C3", zorder=4,
                  label="chosen (GP mean there)")
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
    space = {"x": hpopt.Real(0.0, 1.0)}
    trials = hpopt.run(hpopt.BayesianSearch(space, seed=seed, n_initial=steps[0]),
                       lambda p: float(forrester(p["x"])), max(steps) + 1).trials
    return {k: belief(space, trials[:k], trials[k].params, "x") for k in steps}


def plot(path, results, space):
    """The race against epochs trained and which hyperparameters mattered; below, the
    Bayesian search's GP along lr as it chose its last trial. Also <path>_steps.png: a 1-D
    search step by step. Returns the two figures."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplot_mosaic([["race", "mattered"], ["gp", "gp"], ["ei", "ei"]],
                                 figsize=(11, 10))
    for method, result in results.items():
        ax["race"].step(*race(result), where="post", label=method)
    ax["race"].set(xlabel="epochs trained (all trials so far)",
                   ylabel="best validation error so far")
    ax["race"].legend()
    trials = results["bayesian"].trials if "bayesian" in results else []
    trials = sorted(trials, key=lambda t: t.number)   # in the order they were chosen
    if sum(t.status == "ok" for t in trials[:-1]) >= 2:
        mattered = relevance(space, trials)
        ax["mattered"].barh(list(mattered)[::-1], list(mattered.values())[::-1])
        ax["mattered"].set(title="which mattered to the Bayesian search's GP",
                           xlabel="std of its mean along each (warped units)")
        draw_belief(ax["gp"], ax["ei"], belief(space, trials[:-1], trials[-1].params, "lr"),
                    f"Bayesian search's GP after {len(trials) - 1} trials, along lr (others as "
                    "the best trial): star = its last trial")
        ax["gp"].legend(fontsize=8, loc="lower right")
        ax["ei"].set(xlabel="learning rate")
    else:                                             # no Bayesian search in this race
        for name in ("mattered", "gp", "ei"):
            ax[name].set_axis_off()
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
    steps.savefig(steps_path(path))
    print(f"wrote {steps_path(path)}")
    plt.close(fig)
    plt.close(steps)
    return fig, steps


def steps_path(path):
    return path[:-len(".png")] + "_steps.png"


def can_write(path):
    """Whether a file can be written at `path`, found by trying (os.access says yes to root
    everywhere); a file created to try is removed."""
    existed = os.path.exists(path)
    try:
        open(path, "ab").close()
    except OSError:
        return False
    if not existed:
        os.remove(path)
    return True


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description="Grid, random, Bayesian search, Hyperband on an MLP.")
    ap.add_argument("--budget", type=int, help="trials per method (default 30; 12 with --quick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", help=f"comma-separated subset of {','.join(METHODS)} (default: "
                    "the first four; halving, one bracket of hyperband, instead with --quick)")
    ap.add_argument("--quick", action="store_true", help="a small race for a first look")
    ap.add_argument("--jobs", type=int, default=1, help="trials run in parallel (processes)")
    ap.add_argument("--data", default="spirals", help="spirals, digits, or a .csv/.npz path")
    ap.add_argument("--plot", metavar="FILE.png",
                    help="draw the race and the GP to FILE.png and FILE_steps.png (matplotlib)")
    args = ap.parse_args(argv)
    budget = args.budget if args.budget is not None else (12 if args.quick else 30)
    default = "grid,random,bayesian," + ("halving" if args.quick else "hyperband")
    methods = [m.strip() for m in (args.methods or default).split(",") if m.strip()]
    if budget < 1 or args.jobs < 1 or args.seed < 0:
        ap.error(f"need --budget >= 1, --jobs >= 1 and --seed >= 0; got --budget {budget}, "
                 f"--jobs {args.jobs}, --seed {args.seed}")
    if not methods or any(m not in METHODS for m in methods):
        ap.error(f"--methods must be a subset of {','.join(METHODS)}; got {args.methods!r}")
    if args.plot and not args.plot.endswith(".png"):
        ap.error(f"--plot {args.plot}: the file name must end in .png")
    if args.plot and not (can_write(args.plot) and can_write(steps_path(args.plot))):
        ap.error(f"--plot {args.plot}: cannot write there")
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        ap.error("--plot needs matplotlib: pip install matplotlib")

    X, y = load_data(args.data, args.seed, args.quick)
    train, val, test = prepare(X, y, args.seed)
    n_classes = int(y.max()) + 1
    print(f"data: {args.data}, {len(train[0])} train / {len(val[0])} validation / "
          f"{len(test[0])} test points, {X.shape[1]} features, {n_classes} classes")
    data = dict(train=train, val=val, n_classes=n_classes)
    space = blend_space(args.quick)
    results, walls, notes = {}, {}, {}
    for method in methods:
        t0, objective = time.perf_counter(), functools.partial(validation_error, **data)
        if method == "grid":
            grid = grid_space(space, budget)
            sizes = {name: len(dim.options) for name, dim in grid.items()}
            notes[method] = "grid " + " x ".join(f"{k} {n}" for n, k in sizes.items() if k > 1)
            searcher, n_trials = hpopt.GridSearch(grid, n_points=1), math.prod(sizes.values())
        elif method == "random":
            searcher, n_trials = hpopt.RandomSearch(space, seed=args.seed), budget
        elif method == "bayesian":
            searcher = hpopt.BayesianSearch(space, seed=args.seed, n_initial=min(5, budget))
            n_trials = budget
        else:                                         # epochs are the budget, not a dimension
            searcher = hpopt.HalvingSearch({k: d for k, d in space.items() if k != "epochs"},
                                           *HALVING[args.quick], eta=3, seed=args.seed,
                                           hyperband=method == "hyperband")
            n_trials, objective = searcher.size, functools.partial(validation_error_after, **data)
        results[method] = hpopt.run(searcher, objective, n_trials, method=method,
                                    callback=trial_line(method, n_trials), n_jobs=args.jobs)
        walls[method] = time.perf_counter() - t0

    print(f"\n{'method':9s} {'best val error':>14s} {'test accuracy':>13s} {'trials':>7s} "
          f"{'epochs':>7s} {'wall s':>7s}  note")
    for method, result in results.items():
        ok = [t for t in result.trials if t.status == "ok"]
        if not ok:
            print(f"{method:9s} {'all failed':>14s}")
            continue
        # hyperband's and halving's params have no epochs: their best is at the most trained
        best = {"epochs": max(epochs_of(t) for t in ok), **result.best_params}
        model, _ = fit_model(best, train, n_classes)  # retrain the best, score it on test
        print(f"{method:9s} {result.best_value:14.3f} {nn.accuracy(model, *test):13.3f} "
              f"{len(result.trials):7d} {race(result)[0][-1]:7d} {walls[method]:7.1f}  "
              f"{notes.get(method, '')}")
    print()
    print(ascii_chart({m: race(r) for m, r in results.items()}))
    if "bayesian" in results and sum(t.status == "ok" for t in results["bayesian"].trials) >= 2:
        mattered = relevance(space, results["bayesian"].trials)
        print("\nwhich hyperparameters mattered to the Bayesian search's GP (how far its mean "
              "moves along each;\na property of the surrogate near its trials, not a cause):")
        for name, r in mattered.items():
            print(f"  {name:10s} {r:5.2f}  " + "#" * round(30 * r / max(mattered.values())))
    if args.plot:
        plot(args.plot, results, space)
    return results


if __name__ == "__main__":
    main()
