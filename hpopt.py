"""hpopt.py - grid, random and Bayesian hyperparameter search behind one ask/tell loop.

Three answers to "what should I try next?":
  GridSearch      every combination of a few values per dimension;
  RandomSearch    independent draws (Bergstra & Bengio 2012);
  BayesianSearch  a Gaussian-process surrogate (gp.py) and expected improvement
                  (Jones et al. 1998; Snoek et al. 2012), ranked by log EI (Ament et al. 2023);
then successive halving and Hyperband, which spend a budget (epochs, say) on many points
cheaply and on few fully; and one loop (`run`, behind grid_search ... hyperband) that asks,
evaluates (in parallel on any concurrent.futures executor), tells, and writes every trial
to a write-ahead log (JSONL) from which a crashed search resumes through tell.

References:
  J. Bergstra & Y. Bengio, "Random Search for Hyper-Parameter Optimization", JMLR 13, 2012.
  D. R. Jones, M. Schonlau & W. J. Welch, "Efficient Global Optimization of Expensive
    Black-Box Functions", Journal of Global Optimization 13, 1998.
  J. Snoek, H. Larochelle & R. P. Adams, "Practical Bayesian Optimization of Machine
    Learning Algorithms", NeurIPS 2012.
  S. Ament et al., "Unexpected Improvements to Expected Improvement for Bayesian
    Optimization", NeurIPS 2023.
  I.-K. Yeo & R. A. Johnson, "A New Family of Power Transformations to Improve Normality
    or Symmetry", Biometrika 87, 2000.
  A. I. Cowen-Rivers et al., "HEBO: Pushing the Limits of Sample-Efficient Hyperparameter
    Optimisation", JAIR 74, 2022 (power-transformed targets).
  D. Ginsbourger, R. Le Riche & L. Carraro, "Kriging Is Well-Suited to Parallelize
    Optimization", in Computational Intelligence in Expensive Optimization Problems,
    Springer, 2010 (the constant liar).
  K. Jamieson & A. Talwalkar, "Non-stochastic Best Arm Identification and Hyperparameter
    Optimization", AISTATS 2016 (successive halving).
  L. Li, K. Jamieson, G. DeSalvo, A. Rostamizadeh & A. Talwalkar, "Hyperband: A Novel
    Bandit-Based Approach to Hyperparameter Optimization", JMLR 18, 2018.
  M. D. McKay, R. J. Beckman & W. J. Conover, "A Comparison of Three Methods for Selecting
    Values of Input Variables in the Analysis of Output from a Computer Code",
    Technometrics 21, 1979 (Latin hypercube sampling).
Depends on: numpy and gp.py (same folder); Python 3.9 or newer. Licence: MIT.
"""
import copy, inspect, json, math, numbers, os, pickle, re, reprlib, time, warnings
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

import gp

fcntl = None if os.name == "nt" else __import__("fcntl")   # locks the log; not on Windows

# Objectives are minimised: "best" always means lowest.
# u: a point of the unit cube, one coordinate per dimension (log dims through the log,
#    Integer cells widened by +-0.5, a Choice's option k of K at (k + 0.5) / K).
# X: the GP's inputs, the same with each Choice spread into a one-hot block.
# n: observed points  m: candidates  q: dimensions of the space  D: columns of X

# ----------------------------------------------------------------------------- dimensions
# Each dimension maps its values to u in [0, 1] and back. A Real or Integer spans an
# interval [a, b] (the logs of its ends if log=True; an Integer's ends widened by 0.5, so
# that every integer owns a cell of equal width):
#     value -> u = (v - a) / (b - a),     u -> v = (1 - u) a + u b   (then exp if log)


def lerp(a, b, u):
    """(1 - u) a + u b: the point a fraction u of the way from a to b (b - a may overflow
    for bounds near the largest float; this form cannot)."""
    return (1 - u) * a + u * b


def unlerp(a, b, v):
    """(v - a) / (b - a), the inverse of lerp, in halves so that b - a cannot overflow;
    0.5 where a == b (a log span narrower than the floats tell apart)."""
    return (v / 2 - a / 2) / (b / 2 - a / 2) if b != a else 0.5 + 0.0 * v


@dataclass(frozen=True)
class Real:
    """A float in [low, high]; log=True samples and models it on a log scale."""
    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        _check_bounds(self)

    def ends(self):                                   # the [a, b] that u = 0..1 spans
        widen = 0.0 if isinstance(self, Real) else 0.5     # Integer borrows this method:
        # its ends widen by 0.5, so that each integer owns a cell of equal width in u
        a, b = self.low - widen, self.high + widen
        return (math.log(a), math.log(b)) if self.log else (a, b)

    def raw(self, u):                                 # u (scalar or (m,)) -> v, unrounded
        t = lerp(*self.ends(), np.clip(u, 0.0, 1.0))
        with np.errstate(over="ignore"):              # exp may round above the largest
            return np.exp(t) if self.log else t       # float: inf, clipped to high after

    def to_unit(self, value):                         # value (scalar or (m,)) -> u
        return unlerp(*self.ends(), np.log(value) if self.log else value)

    def from_unit(self, u):
        return min(max(float(self.raw(u)), self.low), self.high)

    def snap(self, u):                                # (m,) -> (m,): every u is a valid value
        return np.clip(u, 0.0, 1.0)

    def grid(self, n_points):                         # even in u, with the exact ends
        inner = [self.from_unit(u) for u in np.linspace(0, 1, n_points)[1:-1]]
        return [self.from_unit(0.5)] if n_points == 1 else [self.low] + inner + [self.high]


@dataclass(frozen=True)
class Integer:
    """An int in [low, high], both ends included; log=True samples on a log scale."""
    low: int
    high: int
    log: bool = False

    __post_init__, ends, raw, to_unit = Real.__post_init__, Real.ends, Real.raw, Real.to_unit

    def from_unit(self, u):
        return min(max(int(round(float(self.raw(u)))), self.low), self.high)

    def snap(self, u):                                # (m,) -> (m,) the u of each int
        return self.to_unit(np.clip(np.round(self.raw(u)), self.low, self.high))

    def grid(self, n_points):                         # a Real's grid, rounded: even in
        if n_points > self.high - self.low:           # value or log value, exact ends
            return list(range(self.low, self.high + 1))
        return sorted({round(v) for v in Real(self.low, self.high, self.log).grid(n_points)})


def same_option(a, b):
    """Options are one only if of one type and equal: 1, 1.0, True and "1" are four
    options; NaN is NaN; objects without a truth value of == are compared by identity."""
    try:                                              # (a != a: NaN)
        return type(a) is type(b) and (a is b or bool(np.all(a == b)) or (a != a and b != b))
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Choice:
    """One of a list of options (numbers, strings, None, functions, ...); one-hot for the GP."""
    options: tuple

    def __post_init__(self):
        object.__setattr__(self, "options", _check_options(self.options))

    def index(self, value):
        for k, option in enumerate(self.options):
            if same_option(option, value):
                return k
        raise ValueError(f"{value!r} is not one of the options {list(self.options)}")

    def grid(self, n_points):
        return list(self.options)

    def to_unit(self, value):
        return (self.index(value) + 0.5) / len(self.options)

    def from_unit(self, u):                           # snap(u) = (k + 0.5) / K: option k
        return self.options[int(self.snap(u) * len(self.options))]

    def snap(self, u):
        K = len(self.options)
        return (np.minimum(np.floor(np.clip(u, 0.0, 1.0) * K), K - 1) + 0.5) / K


def to_unit(space, params):
    """params dict -> u (q,)"""
    return np.array([dim.to_unit(params[name]) for name, dim in space.items()])


def from_unit(space, u):
    """u (q,) -> params dict of native Python values"""
    return {name: dim.from_unit(float(ui)) for (name, dim), ui in zip(space.items(), u)}


def gp_inputs(space, U):
    """U (m, q) -> X (m, D): each Choice column becomes its one-hot block."""
    columns = []
    for j, dim in enumerate(space.values()):
        if isinstance(dim, Choice):
            k = np.minimum((U[:, j] * len(dim.options)).astype(int), len(dim.options) - 1)
            columns.append(np.eye(len(dim.options))[k])        # (m, K)
        else:
            columns.append(U[:, j:j + 1])                      # (m, 1)
    return np.hstack(columns)


def snap(space, U):
    """Move each row of U (m, q) to the u of the valid point it decodes to."""
    return np.column_stack([dim.snap(U[:, j]) for j, dim in enumerate(space.values())])


def point_key(space, params):
    """A hashable identity of a point (a Choice by its option's index)."""
    return tuple(dim.index(params[n]) if isinstance(dim, Choice) else params[n]
                 for n, dim in space.items())

# ----------------------------------------------------------------------------- grid and random
# Every searcher has ask(n) -> up to n points (dicts), tell(params, value), `space`, `config`
# (what the log's header records), `size` (how many points it can ask) and `budget` (what
# a point asked now runs with: None but for successive halving). tell() also takes a point
# that was never asked, and counts it as tried: that is how run() resumes from a log.


class GridSearch:
    """Every combination of `n_points` values per Real/Integer and every Choice option.

    Point i is the i-th combination in a fixed order (the first dimension varies slowest);
    ask skips the combinations already told. `size` is the number of points.
    """

    def __init__(self, space, n_points=3):
        _check_space(space)
        n_points = _check_int("n_points", n_points)
        self.space, self.config, self.budget = space, {"n_points": n_points}, None
        self.values = [dim.grid(n_points) for dim in space.values()]
        self.size = math.prod(len(v) for v in self.values)
        self.i, self.tried = 0, set()                 # the next combination; keys told

    def combination(self, i):
        params = {}
        for name, values in reversed(list(zip(self.space, self.values))):
            i, r = divmod(i, len(values))             # mixed-radix digits of i
            params[name] = values[r]
        return {name: params[name] for name in self.space}

    def ask(self, n=1):                               # fewer than n at the grid's end
        asked, n = [], _check_int("n", n)
        while len(asked) < n and self.i < self.size:
            params, self.i = self.combination(self.i), self.i + 1
            if point_key(self.space, params) not in self.tried:   # (told before it was asked)
                asked.append(params)
        return asked

    def tell(self, params, value):
        _check_params(self.space, params, value)
        self.tried.add(point_key(self.space, params))


class RandomSearch:
    """Independent draws from each dimension (Bergstra & Bengio 2012).

    Draw k comes from its own generator seeded with (seed, k): a function of the seed and
    k alone, whatever the results; a point told without being asked counts as a draw.
    """

    def __init__(self, space, seed=None):
        _check_space(space)
        self.space, self.seed, self.budget = space, _check_seed(seed), None
        self.config, self.size, self.n_drawn, self.pending = {"seed": self.seed}, math.inf, 0, []

    def ask(self, n=1):
        asked = []
        for _ in range(_check_int("n", n)):
            rng = np.random.default_rng([self.seed, self.n_drawn])   # draw k from (seed, k)
            asked.append(from_unit(self.space, rng.uniform(size=len(self.space))))
            self.n_drawn += 1
            self.pending.append(point_key(self.space, asked[-1]))   # asked, not yet told
        return asked

    def tell(self, params, value):
        _check_params(self.space, params, value)
        key = point_key(self.space, params)
        if key in self.pending:
            self.pending.remove(key)
        else:                                         # never asked: it counts as a draw
            self.n_drawn += 1

# ----------------------------------------------------------------------------- Bayesian search
# Each number here was chosen on the tuning half of bench.py's test functions (`python
# bench.py ablation` reruns the table in BENCHMARKS.md with one of them changed at a time).
N_CANDIDATES = 250              # uniform candidates scored by log EI at each ask,
N_LOCAL, LOCAL_SCALE = 250, 0.05   # and N_LOCAL at Gaussian steps of this size (in u) from
                                # the best trial: the search refines what it has found
POLISH_STEPS = (0.05, 0.01, 0.002, 0.0005)  # then the best point moves by shrinking steps
POLISH_PARENTS, POLISH_CHILDREN = 1, 10   # the points polished, and the children of each
WARP_LAMBDAS = np.linspace(-1, 3, 41)   # Yeo-Johnson lambdas that warp() chooses from
LOG_PRIOR = gp.bo_log_prior     # the GP's hyperparameters: MAP with this prior (None: ML)
CLIMB_STEPS = 5                 # optimiser steps of one GP fit: the fit to k trials starts
                                # from the fit to k - 1 (tell), so the steps add up


class BayesianSearch:
    """Bayesian optimisation: a GP surrogate and expected improvement (Snoek et al. 2012).

    The first n_initial points (default 2q + 1) form a Latin hypercube (McKay et al. 1979);
    after that each ask fits gp.GP to the trials so far and asks the candidate of highest
    log expected improvement that has not been tried. Each tell moves the GP's
    hyperparameters CLIMB_STEPS optimiser steps on from where the last tell left them, so
    they are a function of the told trials and their order alone; ask k draws its random
    numbers from (seed, k): the same seed and the same results, told in the same order,
    give the same points.
    """

    def __init__(self, space, seed=None, n_initial=None):
        _check_space(space)
        q = len(space)
        n_initial = _check_int("n_initial", 2 * q + 1 if n_initial is None else n_initial)
        self.space, self.seed, self.n_initial = space, _check_seed(seed), n_initial
        self.config = {"seed": self.seed, "n_initial": n_initial}
        self.size, self.budget = math.inf, None
        self.U, self.values = [], []                  # told u (q,) and values (nan: failed)
        self.told_fit = (None, None)                  # (GP, best warped value) of the told (tell)
        self.pending, self.tried, self.gp = {}, set(), None   # asked, not told: key -> u;
        # the keys of every point told or asked; the GP of the last ask
        rng = np.random.default_rng([self.seed, 2 ** 32])   # a stream no ask k uses
        strata = rng.permuted(np.tile(np.arange(n_initial), (q, 1)), axis=1).T  # (n_initial, q)
        self.design = (strata + rng.uniform(size=(n_initial, q))) / n_initial   # one per stratum

    def ask(self, n=1):
        return [self.next_point() for _ in range(_check_int("n", n))]

    def next_point(self):
        """One step of Bayesian optimisation: the next point to evaluate."""
        q, number = len(self.space), len(self.values) + len(self.pending)
        rng = np.random.default_rng([self.seed, number])
        self.gp, best = self.told_fit                                # 1. fit the GP: the
        if self.pending and number >= self.n_initial:                # told, and the pending
            self.gp, best = self.fit(self.values, self.U, list(self.pending.values()), self.gp)
        if number < self.n_initial:
            ranked = self.design[number:number + 1]                  # (1, q) initial design
        elif best is None:
            ranked = rng.uniform(size=(1, q))                        # (1, q) no success yet
        else:
            def log_ei(U):                                           # (m, q) -> (m,)
                mean, std = self.gp.predict(gp_inputs(self.space, U), return_std=True)
                return gp.log_expected_improvement(mean, std, best)  # 2. score: log EI
            ranked, _ = maximize_acquisition(log_ei, self.candidates(rng),  # 3. candidates,
                                             lambda U: snap(self.space, U), rng)  # polished
        for u in list(ranked) + list(rng.uniform(size=(100, q))):    # 4. the best untried
            params = from_unit(self.space, u)                        # (random if all were)
            if point_key(self.space, params) not in self.tried:
                break
        self.tried.add(point_key(self.space, params))
        self.pending[point_key(self.space, params)] = to_unit(self.space, params)   # (q,)
        return params

    def fit(self, values, U, U_pending, start):
        """A GP fitted from start's hyperparameters (None: gp.GP's defaults) to the trials
        (values (n,), U: n of (q,)) and the pending points U_pending, and the best warped
        value; (None, None) before the first success. An ask adds the pending points to
        the fit of the told trials (tell).

        A failed trial counts as the worst value seen, so the search moves away from it; a
        pending one (asked, not yet told) as the best, the "constant liar" (Ginsbourger et
        al. 2010): the mean there is pulled to the best value and the std shrinks (to about
        the fitted noise, not 0), so EI there is small and the next ask tends to go
        elsewhere, though it may be close by.
        """
        y = np.array(values)                          # (n,)
        if not np.isfinite(y).any():
            return None, None
        y = np.where(np.isfinite(y), y, y[np.isfinite(y)].max())      # failed: worst
        y = warp(np.concatenate([y, np.full(len(U_pending), y.min())]))  # pending: best;
        X = gp_inputs(self.space, np.array(U + U_pending))  # (n, D)  warp: nearer a Gaussian
        theta0 = {} if start is None else dict(
            lengthscale=start.lengthscale, variance=start.variance, noise=start.noise)
        return gp.GP("matern52", log_prior=LOG_PRIOR, n_restarts=0, max_iter=CLIMB_STEPS,
                     **theta0).fit(X, y), y.min()

    def candidates(self, rng):
        """Points to score (m, q), each snapped to a valid point: N_CANDIDATES uniform, and
        N_LOCAL at Gaussian steps of LOCAL_SCALE from the best trial so far."""
        q, y = len(self.space), np.array(self.values)
        best_u = self.U[np.nanargmin(y)]                                  # (q,)
        local = best_u + LOCAL_SCALE * rng.standard_normal((N_LOCAL, q))  # (N_LOCAL, q)
        return snap(self.space, np.vstack([rng.uniform(size=(N_CANDIDATES, q)), local]))

    def tell(self, params, value):
        value, key = _check_params(self.space, params, value), point_key(self.space, params)
        self.pending.pop(key, None)
        self.tried.add(key)
        self.U.append(to_unit(self.space, params))    # (q,)
        self.values.append(value if math.isfinite(value) else math.nan)
        self.told_fit = self.fit(self.values, self.U, [], self.told_fit[0])   # climbs from the
        # last fit; (None, None) until a trial succeeds, and never again after one


def maximize_acquisition(score, U_pool, snap_fn, rng):
    """The pool's points, and a local polish of its best: ranked by score, best first.

    score: (m, q) -> (m,) (higher is better); U_pool: (m, q) valid points; snap_fn: (m, q)
    -> (m, q) valid points. Each round moves the POLISH_PARENTS best points, each by
    POLISH_CHILDREN Gaussian steps of the next size in POLISH_STEPS, and keeps the best
    POLISH_PARENTS of parents and children, so the result never scores below the pool's
    best.   returns: U (k, q) and scores (k,)
    """
    U, s = U_pool, score(U_pool)                      # (m, q), (m,)
    parents = np.argsort(s)[::-1][:POLISH_PARENTS]
    P, ps = U[parents], s[parents]                    # (parents, q), (parents,)
    for step in POLISH_STEPS:
        C = snap_fn(np.repeat(P, POLISH_CHILDREN, axis=0)
                    + step * rng.standard_normal((len(P) * POLISH_CHILDREN, U.shape[1])))
        both, both_s = np.vstack([P, C]), np.concatenate([ps, score(C)])
        keep = np.argsort(both_s)[::-1][:POLISH_PARENTS]  # the best of parents and children
        P, ps = both[keep], both_s[keep]
    U, s = np.vstack([P, U]), np.concatenate([ps, s])
    order = np.argsort(s, kind="stable")[::-1]
    return U[order], s[order]


def warp(y):
    """Standardise the targets, then Yeo-Johnson with lambda by maximum likelihood.

    A monotone map: it keeps the order of the values (so the argmin) and makes their
    distribution closer to the Gaussian the GP assumes: a few huge values far above the
    best are compressed (lambda < 1); a plateau of similar values above a few lone good ones
    is spread out (lambda > 1), so that the GP sees the differences within it. The profile
    log-likelihood of lambda is -n/2 log var(t) + (lambda - 1) sum sign(z) log(1 + |z|).
    As in HEBO (Cowen-Rivers et al., JAIR 2022).  y: (n,)  returns: (n,)
    """
    if y.max() == y.min():
        return y                                      # all equal: nothing to warp
    y = y / np.max(np.abs(y))                         # (n,) in [-1, 1]: y.std() of 1e155 or
    if not y.std() > 0:                               # 1e-170 would overflow or underflow;
        return y                                      # the std of near-equal y may round to 0
    z = (y - y.mean()) / y.std()                      # (n,)
    T = yeo_johnson(z, WARP_LAMBDAS[:, None])         # (k, n) every candidate lambda
    loglik = -0.5 * len(z) * np.log(T.var(axis=1)) \
        + (WARP_LAMBDAS - 1) * np.sum(np.sign(z) * np.log1p(np.abs(z)))   # (k,)
    return T[np.argmax(loglik)]


def yeo_johnson(z, lam):
    """The Yeo-Johnson power transform (Yeo & Johnson 2000), elementwise.
    z >= 0: ((z + 1)^lam - 1) / lam  (log(z + 1) at lam = 0)
    z < 0: -((1 - z)^(2 - lam) - 1) / (2 - lam)  (-log(1 - z) at lam = 2); lam = 1: identity
    z: (n,)  lam: float, or (k, 1) for k transforms at once  returns: (n,) or (k, n)"""
    lam = np.asarray(lam, dtype=float)
    pos, a, b = z >= 0, np.log1p(np.abs(z)), np.where(lam == 0, 1.0, lam)
    c = np.where(lam == 2, 1.0, 2 - lam)              # safe divisors at the special points
    up = np.where(lam == 0, a, np.expm1(lam * a) / b)         # (z + 1)^lam - 1 = expm1(lam a)
    down = np.where(lam == 2, -a, -np.expm1(c * a) / c)       # for z < 0, a = log(1 - z)
    return np.where(pos, up, down)


# ----------------------------------------------------------------------------- successive halving
# The budget is what a trial spends (epochs, say): objective(params, budget). With
# min_budget=1, max_budget=27, eta=3, Hyperband runs four brackets (Li et al. 2018, Table 1
# lists them for R = 81), each rung n points at budget r, the best 1/eta going on:
#     bracket 0 (= successive_halving): 27 at 1, 9 at 3, 3 at 9, 1 at 27
#     bracket 1:                        12 at 3, 4 at 9, 1 at 27
#     bracket 2:                         6 at 9, 2 at 27
#     bracket 3:                         4 at 27


def hyperband_brackets(min_budget, max_budget, eta=3):
    """Li et al. (2018), Algorithm 1: for s = s_max, ..., 0 a bracket of s + 1 rungs,
    n_i = floor(n / eta^i) points at budget r_i = floor(R / eta^(s - i)), with
    n = ceil((s_max + 1) eta^s / (s + 1)), R = max_budget, and s_max the largest s with
    min_budget eta^s <= R.   returns: [[(n_0, r_0), ..., (n_s, r_s)] per bracket]
    """
    s_max = 0
    while min_budget * eta ** (s_max + 1) <= max_budget:
        s_max += 1
    return [[(math.ceil((s_max + 1) * eta ** s / (s + 1)) // eta ** i,
              max_budget // eta ** (s - i)) for i in range(s + 1)] for s in range(s_max, -1, -1)]


class HalvingSearch:
    """Successive halving (Jamieson & Talwalkar 2016) as Hyperband's most aggressive
    bracket (Li et al. 2018: budgets max_budget // eta^k, the lowest >= min_budget, the best
    1/eta going on), or with hyperband=True all of Hyperband's brackets.

    A rung is a list of points run at one budget; once all are told, the best n of them
    (failed ones last, ties by their place in the rung) make the next rung. A bracket's
    first rung takes new points, RandomSearch's seeded draws. ask() returns [] while the
    rung waits for its last values; tell() takes a point of the rung, asked or not yet.
    In short, for each rung (n, r) of each bracket:
        points = n new draws if the rung starts a bracket, else the best n of the last rung
        values = [objective(p, r) for p in points]
    """

    def __init__(self, space, min_budget, max_budget, eta=3, seed=None, hyperband=False):
        min_budget = _check_int("min_budget", min_budget)   # 0 < min_budget < max_budget,
        max_budget = _check_int("max_budget", max_budget, min_budget + 1)
        eta = _check_int("eta", eta, 2)                     # eta >= 2
        self.sampler = RandomSearch(space, seed)
        self.space, self.seed = space, self.sampler.seed
        self.config = {"seed": self.seed, "min_budget": min_budget, "max_budget": max_budget,
                       "eta": eta, "hyperband": bool(hyperband)}
        brackets = hyperband_brackets(min_budget, max_budget, eta)[:None if hyperband else 1]
        self.rungs = [(n, r, i == 0) for bracket in brackets   # (points, budget, first of
                      for i, (n, r) in enumerate(bracket)]     # its bracket) per rung
        self.size, self.budget = sum(n for n, _, _ in self.rungs), self.rungs[0][1]
        self.k, self.points, self.told, self.n_asked = -1, [], {}, 0  # rung k: told[j] = value

    def next_rung(self):
        """Start rung k + 1, if this one is complete and another follows; True if started."""
        if len(self.told) < len(self.points) or self.k + 1 == len(self.rungs):
            return False
        self.k += 1
        n, self.budget, first = self.rungs[self.k]
        rank = sorted(self.told, key=lambda j: (self.told[j] if math.isfinite(self.told[j])
                                                else math.inf, j))
        self.points = self.sampler.ask(n) if first else [self.points[j] for j in rank[:n]]
        self.told, self.n_asked = {}, 0
        return True

    def ask(self, n=1):
        asked, n = [], _check_int("n", n)
        while len(asked) < n and (self.n_asked < len(self.points) or self.next_rung()):
            j, self.n_asked = self.n_asked, self.n_asked + 1
            if j not in self.told:                    # (told before it was asked: skip it)
                asked.append(self.points[j])
        return asked

    def tell(self, params, value):
        value, key = _check_params(self.space, params, value), point_key(self.space, params)
        while True:                                   # a resume tells a whole search's trials
            free = [j for j, p in enumerate(self.points)
                    if j not in self.told and point_key(self.space, p) == key]
            if free:                                  # asked ones first
                self.told[min(free, key=lambda j: (j >= self.n_asked, j))] = value
                return
            if not self.next_rung():                  # before any ask: a later rung's point
                raise ValueError(f"params {params!r} are not a point of this rung (budget "
                                 f"{self.budget}) still waiting for its value")


# ----------------------------------------------------------------------------- the searches
# run() (below the banner) is the loop. In its simplest form it is
#     for k in range(n_trials):
#         params = searcher.ask()[0]
#         searcher.tell(params, objective(params))    # objective(params, budget) for halving
# with failed trials, parallel trials on an executor, and a log to resume from added.


def grid_search(objective, space, n_points=3, **run_options):
    """Evaluate every point of GridSearch(space, n_points); returns a Result."""
    return run(GridSearch(space, n_points), objective, method="grid", **run_options)


def random_search(objective, space, n_trials, seed=None, **run_options):
    """n_trials independent draws from the space; returns a Result."""
    return run(RandomSearch(space, seed), objective, n_trials, method="random", **run_options)


def bayesian_search(objective, space, n_trials, seed=None, n_initial=None, **run_options):
    """Bayesian optimisation (GP + expected improvement) for n_trials; returns a Result."""
    return run(BayesianSearch(space, seed, n_initial), objective, n_trials,
               method="bayesian", **run_options)


def successive_halving(objective, space, min_budget, max_budget, eta=3, seed=None,
                       **run_options):
    """One bracket of successive halving, objective(params, budget); returns a Result whose
    best is the best trial at the largest budget reached."""
    return run(HalvingSearch(space, min_budget, max_budget, eta, seed), objective,
               method="successive_halving", **run_options)


def hyperband(objective, space, min_budget, max_budget, eta=3, seed=None, **run_options):
    """Hyperband (Li et al. 2018): successive halving brackets from the most aggressive to
    none, objective(params, budget); returns a Result (best: at the largest budget)."""
    return run(HalvingSearch(space, min_budget, max_budget, eta, seed, hyperband=True),
               objective, method="hyperband", **run_options)

# ---- engineering: safe to skip on a first read ----
# Trial and Result; run(), the loop with its failures, workers and log; the input checks.

# ----------------------------------------------------------------------------- results


@dataclass
class Trial:
    """One finished evaluation. status: "ok" or "failed" (then value is nan, error says why);
    budget: what it ran with, for successive halving (None for the other searches)."""
    number: int
    params: dict
    value: float
    seconds: float
    status: str = "ok"
    error: str = None
    budget: int = None


@dataclass
class Result:
    """The trials of a search, in the order they finished, and the best of them (among
    those at the largest budget, for successive halving)."""
    trials: list = field(default_factory=list)
    method: str = ""
    interrupted: bool = False

    @property
    def best_trial(self):
        ok = [t for t in self.trials if t.status == "ok"]
        if not ok:
            raise ValueError(f"no successful trial: all {len(self.trials)} trials failed"
                             + (f" (first error: {self.trials[0].error})" if self.trials else ""))
        return min(ok, key=lambda t: (-(t.budget or 0), t.value))   # at the largest budget

    best_params = property(lambda self: self.best_trial.params)
    best_value = property(lambda self: self.best_trial.value)

    @property
    def best_so_far(self):
        """Lowest value after each trial, in trial-number order (inf before the first success)."""
        return np.minimum.accumulate([t.value if t.status == "ok" else math.inf for t in
                                      sorted(self.trials, key=lambda t: t.number)]).tolist()

# ----------------------------------------------------------------------------- the loop


def run(searcher, objective, n_trials=None, method="", catch=(), callback=None, verbose=False,
        executor=None, n_jobs=1, log=None, resume=False):
    """Ask, evaluate, tell until n_trials trials (default: searcher.size) have finished, or
    the searcher has no more points; returns a Result.

    Trials run one at a time here (the default), on a process pool of n_jobs workers
    (n_jobs > 1), or on the given executor, as many at once as it has workers; as each
    finishes it is told, and the next is asked. A value that is NaN, inf or not a number,
    or an exception of a type in `catch`, makes a failed trial and the search goes on. Any
    other exception stops asking; the trials still running are waited for, and it
    propagates with the finished trials on its `partial_result`. Ctrl-C returns them at
    once, marked interrupted. When a worker of the n_jobs pool dies (killed, out of memory),
    a fresh pool runs its trials again, unless no trial finished since the last fresh pool
    (the same trial would only kill it again).
    With `log`, a line is written when trial k is asked and another when it finishes.
    resume=True tells the searcher every finished trial of the log, in the order they
    finished, then runs again, under their own numbers, the trials that were asked but
    never finished, and only then asks new points.
    """
    n_trials = searcher.size if n_trials is None else n_trials
    catch = _check_run(objective, searcher.budget, n_trials, catch, callback, executor, n_jobs,
                       log, resume)
    space, header = searcher.space, {"hpopt_log": LOG_VERSION, "method": method,
                                     "space": _describe(searcher.space), **searcher.config}
    log_file, finished, unfinished = (_open_log(log, header, space, resume) if log
                                      else (None, [], []))
    for trial in finished:                            # resume: what the log holds, told
        searcher.tell(trial.params, trial.value)
    result, running, stop, ended = Result(finished, method), {}, None, False
    rerun = {k for k, _, _ in unfinished}
    number = 1 + max([t.number for t in finished] + list(rerun), default=-1)
    client = getattr(executor, "_client", None)       # dask.distributed's ClientExecutor
    workers = (n_jobs if executor is None else getattr(executor, "_max_workers", None)
               or (client and max(1, sum(client.nthreads().values()))) or os.cpu_count())
    own, progress = executor is None and n_jobs > 1, True   # our pool; a trial finished
    init = dict(initializer=os.close, initargs=(log_file.fileno(),)) if log_file else {}
    executor = ProcessPoolExecutor(n_jobs, **init) if own else executor   # (its workers
    # close their copy of the log's file, so that they never hold its lock)

    def submit(k, params, budget):
        future = Future()
        try:                                          # no executor: run now, Ctrl-C passes up
            if executor is None:
                future.set_result(_evaluate(objective, copy.deepcopy(params), catch, budget))
            else:
                future = executor.submit(_evaluate, objective, copy.deepcopy(params), catch, budget)
        except Exception as e:                        # raised here, or a broken executor
            future.set_exception(e)
        running[future] = (k, params, budget, executor)   # and its pool: a trial of a pool
    # already replaced reruns on the new one without replacing it again

    try:
        while True:
            while stop is None and len(running) < workers \
                    and len(result.trials) + len(running) < n_trials:
                if not unfinished:                    # the log's unfinished trials run first;
                    # a new ask waits until they are told, so that a draw count or a rung
                    # stays in the order of the search that never stopped
                    asked = [] if rerun & {e[0] for e in running.values()} else searcher.ask()
                    if not asked:                     # [] if a rung waits, or at the end
                        break
                    _write(log_file, {"number": number, "params": _encode(space, asked[0]),
                                      "budget": searcher.budget})
                    unfinished.append((number, asked[0], searcher.budget))
                    number += 1
                submit(*unfinished.pop(0))
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: running[f][0]):
                k, params, budget, pool = running.pop(future)
                try:
                    value, error, seconds = future.result()
                except Exception as e:                # raised, and not in catch; or a worker
                    if isinstance(e, BrokenExecutor) and own and (pool is not executor or progress):
                        if pool is executor:          # died: not the trial's fault, so it
                            executor.shutdown(wait=False, cancel_futures=True)   # runs again
                            executor, progress = ProcessPoolExecutor(n_jobs, **init), False
                        submit(k, params, budget)     # on a fresh pool
                    else:
                        stop = stop or e
                    continue
                trial = Trial(k, params, value, seconds, "failed" if error else "ok", error, budget)
                searcher.tell(params, value)
                result.trials.append(trial)
                progress = True
                _write(log_file, dict(vars(trial), params=_encode(space, params),
                                      value=None if error else value))   # strict JSON
                if verbose:
                    print(f"{method} trial {len(result.trials)}/{n_trials}  {params}  budget="
                          f"{budget}  -> {error or format(value, '.4g')}  best "
                          f"{result.best_so_far[-1]:.4g}", flush=True)
                if callback is not None:
                    callback(trial)
        if stop is not None:
            raise stop
        ended = True
    except KeyboardInterrupt:
        result.interrupted = True
    except BaseException as e:
        e.partial_result = result                     # the finished trials, logged too
        raise
    finally:
        if own:
            executor.shutdown(wait=ended, cancel_futures=True)
        if log_file:
            log_file.close()
    return result


def _evaluate(objective, params, catch, budget=None):
    """One trial, where it runs (this process or a worker): (value, error, seconds)."""
    t0 = time.perf_counter()
    try:
        value = objective(params) if budget is None else objective(params, budget)
    except catch as e:
        return math.nan, f"{type(e).__name__}: {e}", time.perf_counter() - t0
    except Exception as e:                            # raised where run() is: it must survive
        try:                                          # pickling, or a process pool takes it
            pickle.loads(pickle.dumps(e))             # for a dead worker
        except Exception:
            raise RuntimeError(f"the objective raised {type(e).__name__}: {e} (an exception "
                               "that cannot be pickled, so it is raised as this)") from None
        raise
    try:                                              # numbers, numpy scalars, 0-d arrays
        number = float(value) if _is_real(value) or isinstance(value, np.ndarray) \
            and value.shape == () else math.nan
    except (OverflowError, TypeError, ValueError):    # an int too large for a float, say
        number = math.nan
    error = None if math.isfinite(number) else \
        f"objective returned {reprlib.repr(value)}, which is not a number, or not finite"
    return (math.nan if error else number), error, time.perf_counter() - t0


# ----------------------------------------------------------------------------- the log
# A write-ahead log, one JSON object a line: first the header (what fixes the sequence of
# trials: method, space and the searcher's config: seed, n_points or n_initial, or the
# halving budgets and eta), then {"number", "params", "budget"} (null but for halving) when a
# trial is asked and the whole trial when it finishes. Each line is on disk (fsync) before
# the trial starts or the next is asked. A Choice value is logged as its option's index.
# The search holds a lock on the file while it runs (flock; not on Windows).

LOG_VERSION = 3


def _describe(space):
    """The space as text, in order, without the memory addresses in reprs of functions."""
    return re.sub(r" at 0x[0-9A-Fa-f]+", "", repr(list(space.items())))


def _encode(space, params):
    return {n: d.index(params[n]) if isinstance(d, Choice) else params[n] for n, d in space.items()}


def _decode(space, logged):
    params = {n: d.options[logged[n]] if isinstance(d, Choice) and _is_int(logged[n])
              and 0 <= logged[n] < len(d.options) else logged[n] for n, d in space.items()}
    _check_params(space, params)                      # a damaged line fails here
    return params


def _write(log_file, record):
    if log_file is not None:
        log_file.write((json.dumps(record, allow_nan=False) + "\n").encode())
        log_file.flush()
        os.fsync(log_file.fileno())                   # on disk before the trial goes on


def _open_log(path, header, space, resume):
    """Create the log (exclusively: one search a file) with its header on disk, or with
    resume, lock and read it. Returns the file, the finished trials in the order they
    finished, and (number, params, budget) of each trial asked but never finished."""
    new = not (resume and os.path.exists(path))
    try:
        log_file = open(path, "xb" if new else "r+b")
    except FileExistsError:
        raise ValueError(f"log {path} already exists; pass resume=True to continue it, or "
                         "another path (an existing log is never overwritten)") from None
    try:
        if fcntl is not None:
            fcntl.flock(log_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        if new:
            _write(log_file, header)
            return log_file, [], []
        lines = log_file.read().decode("utf-8", errors="replace").split("\n")
        try:
            logged = json.loads(lines[0])
        except ValueError:
            logged = None
        if not isinstance(logged, dict) or logged.get("hpopt_log") != LOG_VERSION:
            raise ValueError(f"log {path} does not start with the header of an hpopt log "
                             f"(version {LOG_VERSION}); it was left as it is")
        differ = [k for k in {**header, **logged} if logged.get(k) != header.get(k)]
        if differ:
            raise ValueError(f"log {path} records another search: its {differ[0]} is "
                             f"{logged.get(differ[0])!r}, this one's is {header.get(differ[0])!r}")
    except BaseException as e:
        log_file.close()
        raise (ValueError(f"log {path} is in use by another search (it holds the log's lock)")
               if isinstance(e, BlockingIOError) else e) from None
    asked, finished = {}, {}
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            r["params"], number = _decode(space, r["params"]), r["number"]
            if not (_is_int(number) and 0 <= number < len(lines)):   # a line per trial asked
                raise ValueError(f"number {number!r}")
            if "status" in r:                         # value null: a failed trial's nan
                value = math.nan if r["value"] is None else float(r["value"])
                finished.setdefault(number, Trial(**dict(r, value=value)))
            else:
                asked.setdefault(number, (number, r["params"], r["budget"]))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            warnings.warn(f"log {path}: skipped line {i}, which is not a whole record ({e})")
    if lines[-1]:
        log_file.write(b"\n")                         # start after a line cut short
    return log_file, list(finished.values()), [asked[k] for k in sorted(asked) if k not in finished]

# ----------------------------------------------------------------------------- input checks


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_real(x):
    return isinstance(x, (numbers.Real, Decimal)) and not isinstance(x, (bool, np.bool_))


def _check_int(name, value, minimum=1):
    """An int >= minimum (numpy ints too), as a Python int."""
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {name}={value!r}")
    return int(value)


def _check_bounds(dim):
    """Real: finite numbers low < high; Integer: ints |v| <= 2^53 (beyond, a float cannot
    hold every integer), low <= high; log: low > 0. Stores them as float/int and bool."""
    real, cast = isinstance(dim, Real), float if isinstance(dim, Real) else int
    ends = [_is_real(v) and math.isfinite(v) if real else _is_int(v) and abs(v) <= 2 ** 53
            for v in (dim.low, dim.high)]
    if not (all(ends) and (dim.low < dim.high if real else dim.low <= dim.high)
            and isinstance(dim.log, (bool, np.bool_)) and (dim.low > 0 or not dim.log)):
        need = "finite numbers low < high" if real else "int bounds low <= high within +-2**53"
        raise ValueError(f"{type(dim).__name__} needs {need}, log True or False, and low "
                         f"{'> 0' if real else '>= 1'} if log; got low={dim.low!r}, "
                         f"high={dim.high!r}, log={dim.log!r}")
    for name, value in [("low", cast(dim.low)), ("high", cast(dim.high)), ("log", bool(dim.log))]:
        object.__setattr__(dim, name, value)


def _check_options(options):
    if not isinstance(options, (list, tuple, range, np.ndarray)) or len(options) == 0:
        raise ValueError(f"Choice options must be a list or tuple (a set or dict has no fixed "
                         f"order) of at least one option; got options={options!r}")
    options = tuple(o.item() if isinstance(o, np.generic) else o for o in options)
    for i, a in enumerate(options):
        if any(same_option(a, b) for b in options[:i]):
            raise ValueError(f"Choice options must be distinct; {a!r} is repeated")
    return options


def _check_space(space):
    if not (isinstance(space, dict) and space and all(isinstance(k, str) and isinstance(
            d, (Real, Integer, Choice)) for k, d in space.items())):
        raise ValueError(f"space must be a non-empty dict {{name (str): Real | Integer | "
                         f"Choice}}; got {space!r}")


def _check_seed(seed):
    """The seed as an int >= 0: None draws one from fresh entropy, a numpy Generator from
    itself."""
    if seed is None or isinstance(seed, np.random.Generator):
        return int((seed or np.random.default_rng()).integers(2 ** 63))
    return _check_int("seed (None, a numpy Generator or an int)", seed, 0)


def _check_params(space, params, value=0.0):
    """params: a dict with exactly the space's names, each a value of its dimension; value
    (tell's): a real number (nan or inf: failed), returned as a float."""
    if not isinstance(params, dict) or set(params) != set(space):
        given = set(params) if isinstance(params, dict) else set()
        raise ValueError(f"params must be a dict with exactly the names {list(space)}; got "
                         f"{reprlib.repr(params)}: missing {sorted(set(space) - given)}, "
                         f"extra {sorted(map(str, given - set(space)))}")
    for name, dim in space.items():
        v = params[name]
        if not (any(same_option(o, v) for o in dim.options) if isinstance(dim, Choice) else
                (_is_int(v) if isinstance(dim, Integer) else _is_real(v))
                and dim.low <= v <= dim.high):
            raise ValueError(f"params[{name!r}] = {v!r} is not a value of {dim}")
    if not _is_real(value):
        raise TypeError(f"value must be a real number (nan or inf for a failed trial); "
                        f"got value={value!r}")
    return float(value)


def _check_run(objective, budget, n_trials, catch, callback, executor, n_jobs, log, resume):
    """run()'s arguments, checked before any work starts (no log or pool is made)."""
    call = "objective(params)" if budget is None else "objective(params, budget)"
    try:
        inspect.signature(objective).bind(*([{}] if budget is None else [{}, budget]))
    except TypeError:
        raise TypeError(f"objective must be callable as {call} for this search; got "
                        f"{objective!r}") from None
    except ValueError:                                # no signature to read (a builtin)
        pass
    _check_int("n_trials", n_trials), _check_int("n_jobs", n_jobs)
    if executor is not None and (n_jobs != 1 or not callable(getattr(executor, "submit", None))):
        raise TypeError(f"executor must be a concurrent.futures.Executor (with .submit), and "
                        f"not given with n_jobs; got executor={executor!r}, n_jobs={n_jobs!r}")
    catch = () if catch is None else (catch,) if isinstance(catch, type) else catch
    if not (isinstance(catch, (tuple, list)) and all(
            isinstance(c, type) and issubclass(c, BaseException) for c in catch)):
        raise TypeError(f"catch must be an exception type or a tuple of them; got {catch!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable; got {callback!r}")
    if log is not None and not (isinstance(log, (str, os.PathLike)) and os.fspath(log)) \
            or resume and not log:
        raise ValueError(f"log must be a non-empty path (str or os.PathLike), and resume=True "
                         f"needs one; got log={log!r}, resume={resume!r}")
    if n_jobs > 1 or isinstance(executor, ProcessPoolExecutor):
        try:
            pickle.dumps(objective)
        except Exception as e:
            raise TypeError("a process executor needs a picklable objective: define it at "
                            "module top level (or use functools.partial); pickling it "
                            f"failed with {type(e).__name__}: {e}") from None
    return tuple(catch)
