"""hpopt.py - grid, random and Bayesian hyperparameter search behind one ask/tell loop.

Three answers to "what should I try next?":
  GridSearch      every combination of a few values per dimension;
  RandomSearch    independent draws (Bergstra & Bengio 2012);
  BayesianSearch  a Gaussian-process surrogate (gp.py) and expected improvement
                  (Jones et al. 1998; Snoek et al. 2012), ranked by log EI (Ament et al. 2023).
and one loop (`run`, behind grid_search / random_search / bayesian_search) that asks,
evaluates (in parallel on any concurrent.futures executor), tells, and writes every trial
to a write-ahead log (JSONL) from which a crashed search resumes.

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
import copy
import inspect
import json
import math
import numbers
import os
import pickle
import re
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

import gp

# Objectives are minimised: "best" always means lowest.
# u: a point of the unit cube, one coordinate per dimension (log dims through the log,
#    Integer cells widened by +-0.5, a Choice's option k of K at (k + 0.5) / K).
# X: the GP's inputs, the same with each Choice spread into a one-hot block.
# n: observed points  m: candidates  q: dimensions of the space  D: columns of X

# ----------------------------------------------------------------------------- dimensions


@dataclass(frozen=True)
class Real:
    """A float in [low, high]; log=True samples and models it on a log scale."""
    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        _check_bounds(self)

    def grid(self, n_points):
        if n_points == 1:
            return [self.from_unit(0.5)]
        inner = [self.from_unit(u) for u in np.linspace(0, 1, n_points)[1:-1]]  # even in u
        return [self.low] + inner + [self.high]       # exact ends

    def to_unit(self, value):                         # value (scalar or (m,)) -> u
        a, b = _span(self)
        return _unlerp(a, b, np.log(value) if self.log else value)

    def from_unit(self, u):
        return min(max(float(_unit_to_number(self, u)), self.low), self.high)

    def snap(self, u):                                # (m,) -> (m,): every u is a valid value
        return np.clip(u, 0.0, 1.0)


@dataclass(frozen=True)
class Integer:
    """An int in [low, high], both ends included; log=True samples on a log scale."""
    low: int
    high: int
    log: bool = False

    def __post_init__(self):
        _check_bounds(self)

    def grid(self, n_points):
        if n_points > self.high - self.low:
            return list(range(self.low, self.high + 1))
        if n_points == 1:
            return [self.from_unit(0.5)]
        a, b = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        values = np.linspace(a, b, n_points)          # (n_points,) even in value or log value
        values = np.rint(np.exp(values) if self.log else values)  # 1, 10, 100, 1000 for log
        values = np.clip(values, self.low, self.high)
        return sorted({self.low, self.high, *(int(v) for v in values)})

    to_unit = Real.to_unit

    def from_unit(self, u):
        return min(max(int(round(float(_unit_to_number(self, u)))), self.low), self.high)

    def snap(self, u):                                # (m,) -> (m,) the u of each int
        return self.to_unit(np.clip(np.round(_unit_to_number(self, u)), self.low, self.high))


@dataclass(frozen=True)
class Choice:
    """One of a list of options (numbers, strings, None, functions, ...); one-hot for the GP.

    Options are told apart by type and value: 1, 1.0, True and "1" are four options.
    """
    options: tuple

    def __post_init__(self):
        object.__setattr__(self, "options", _check_options(self.options))

    def index(self, value):
        for k, option in enumerate(self.options):
            if _same(option, value):
                return k
        raise ValueError(f"{value!r} is not one of the options {list(self.options)}")

    def grid(self, n_points):
        return list(self.options)

    def to_unit(self, value):
        return (self.index(value) + 0.5) / len(self.options)

    def from_unit(self, u):
        return self.options[min(int(min(max(u, 0.0), 1.0) * len(self.options)),
                                len(self.options) - 1)]

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

# ----------------------------------------------------------------------------- grid and random
# Every searcher has the same parts: ask(n) -> up to n points (dicts), tell(params, value),
# `space`, and `config` (what the log's header records). ask(n) calls _next() n times, and
# _next(given) takes one step of the searcher and returns its point. run() calls _next
# itself so that on resume it can pass `given`, the point the log says was asked at that
# step: the searcher returns it instead of its own pick, but moves its state on (counters,
# random draws, the GP) as it did the first time, so that later steps match.


class GridSearch:
    """Every combination of `n_points` values per Real/Integer and every Choice option.

    Point i is the i-th combination in a fixed order (the first dimension varies slowest),
    whatever the results: tell() only checks its input. `size` is the number of points.
    """

    def __init__(self, space, n_points=3):
        _check_space(space)
        if not _is_int(n_points) or n_points < 1:
            raise ValueError(f"n_points must be an int >= 1; got {n_points!r}")
        self.space, self.config = space, {"n_points": n_points}
        self.values = [dim.grid(n_points) for dim in space.values()]
        self.size = math.prod(len(v) for v in self.values)
        self.n_asked = 0

    def combination(self, i):
        params = {}
        for name, values in reversed(list(zip(self.space, self.values))):
            i, r = divmod(i, len(values))             # mixed-radix digits of i
            params[name] = values[r]
        return {name: params[name] for name in self.space}

    def ask(self, n=1):
        _check_n(n)
        asked = (self._next() for _ in range(n))
        return [p for p in asked if p is not None]   # fewer than n at the grid's end

    def _next(self, given=None):                     # run() passes `given` on resume
        if self.n_asked >= self.size:
            return None
        self.n_asked += 1
        return self.combination(self.n_asked - 1) if given is None else given

    def tell(self, params, value):
        _check_params(self.space, params)

    def __len__(self):
        if self.size > sys.maxsize:
            raise OverflowError(f"the grid has {self.size} points, more than len() can return; "
                                "read .size instead")
        return self.size


class RandomSearch:
    """Independent draws from each dimension (Bergstra & Bengio 2012).

    Draw k comes from its own generator seeded with (seed, k): a function of the seed and
    k alone, whatever the results. In a space of Integer/Choice dimensions only, no
    combination repeats until every one has been drawn; then the draws start over.
    """

    def __init__(self, space, seed=None):
        _check_space(space)
        self.space, self.seed = space, _seed(seed)
        self.config = {"seed": self.seed}
        self.n_asked, self.drawn = 0, set()
        discrete = all(not isinstance(d, Real) for d in space.values())
        self.size = (math.prod(d.high - d.low + 1 if isinstance(d, Integer)
                               else len(d.options) for d in space.values())
                     if discrete else math.inf)

    def ask(self, n=1):
        _check_n(n)
        return [self._next() for _ in range(n)]

    def _next(self, given=None):                     # run() passes `given` on resume
        rng = np.random.default_rng([self.seed, self.n_asked])   # draw k from (seed, k)
        self.n_asked += 1
        params = from_unit(self.space, rng.uniform(size=len(self.space)))
        if self.size < math.inf:                      # Integer/Choice only: no repeats
            if len(self.drawn) >= self.size:          # every combination drawn: start over
                self.drawn = set()
            params = self._untried(params, rng)
            self.drawn.add(_key(self.space, params))
        return params if given is None else given

    def _untried(self, params, rng):
        """Draw again until the combination is new; when crowded, pick among the undrawn."""
        for _ in range(100):
            if _key(self.space, params) not in self.drawn:
                return params
            params = from_unit(self.space, rng.uniform(size=len(self.space)))
        grid = GridSearch(self.space, n_points=2 ** 62)   # every value of every dimension
        free = [i for i in range(grid.size)
                if _key(self.space, grid.combination(i)) not in self.drawn]
        return grid.combination(free[rng.integers(len(free))])

    def tell(self, params, value):
        _check_params(self.space, params)

# ----------------------------------------------------------------------------- Bayesian search
# Each number here was chosen on the tuning half of ../shared/peers/functions.py: "worse"
# below is the rise of the mean over its six functions of the median log10 regret after 40
# evaluations, 30 seeds (README.md, "What each number buys", has the table and the rule;
# python bench.py ablation reruns it).
N_CANDIDATES = 250              # uniform candidates scored by log EI at each ask (500:
                                # 0.02 worse),
N_LOCAL, LOCAL_SCALE = 250, 0.05   # and N_LOCAL at Gaussian steps of this size (in u)
                                # from the best trial: without them, 0.87 worse
POLISH_STEPS = (0.05, 0.01, 0.002, 0.0005)  # then the best point moves by shrinking
                                # steps: without, 0.53 worse; two small steps 0.09 worse,
                                # and they miss a peak between pool points (a test)
POLISH_PARENTS, POLISH_CHILDREN = 1, 20   # the points polished, and the children of each
                                # (5 parents: 0.02 better, within 0.1; 10 children:
                                # hartmann3 0.53 worse)
WARP_LAMBDAS = np.linspace(-1, 3, 41)   # Yeo-Johnson lambdas warp() chooses from; without
                                # the warp (lambda 1 alone), 0.64 worse
LOG_PRIOR = gp.bo_log_prior     # the GP's hyperparameters: MAP with this prior; maximum
                                # likelihood (None), 1.05 worse


class BayesianSearch:
    """Bayesian optimisation: a GP surrogate and expected improvement (Snoek et al. 2012).

    The first n_initial points (default 2q + 1) form a Latin hypercube (McKay et al. 1979);
    after that each ask fits gp.GP to the trials so far and asks the candidate of highest
    log expected improvement that has not been asked before. Ask k draws its random numbers
    from (seed, k), so the same seed and the same results give the same points.
    """

    def __init__(self, space, seed=None, n_initial=None):
        _check_space(space)
        q = len(space)
        n_initial = 2 * q + 1 if n_initial is None else n_initial
        if not _is_int(n_initial) or n_initial < 1:
            raise ValueError(f"n_initial must be an int >= 1; got {n_initial!r}")
        self.space, self.seed, self.n_initial = space, _seed(seed), n_initial
        self.config = {"seed": self.seed, "n_initial": n_initial}
        self.U, self.values = [], []                  # told u (q,) and values (nan: failed)
        self.pending, self.seen = {}, set()           # asked, not told: key -> u; every key
        self.gp = gp.GP("matern52", log_prior=LOG_PRIOR, n_restarts=0, n_candidates=0)
        rng = np.random.default_rng([self.seed, 2 ** 32])   # a stream no ask k uses
        strata = rng.permuted(np.tile(np.arange(n_initial), (q, 1)), axis=1).T  # (n_initial, q)
        self.design = (strata + rng.uniform(size=(n_initial, q))) / n_initial   # one per stratum

    def ask(self, n=1):
        _check_n(n)
        return [self._next() for _ in range(n)]

    def _next(self, given=None):
        """One step of Bayesian optimisation: the next point to evaluate.

        run() passes `given`, the point a log says was asked, on resume: the GP is fitted to
        the trials replayed so far (as the searcher's state moves on), and the point is taken
        rather than chosen.
        """
        q, number = len(self.space), len(self.values) + len(self.pending)
        rng = np.random.default_rng([self.seed, number])
        if number < self.n_initial:
            ranked = self.design[number:number + 1]              # (1, q) 1. initial design
        elif (best := self._fit_gp(number)) is None:             # 2. fit the GP to the trials
            ranked = rng.uniform(size=(1, q))                    # (1, q) no success yet
        elif given is None:
            def log_ei(U):                                       # (m, q) -> (m,)
                mean, std = self.gp.predict(gp_inputs(self.space, U), return_std=True)
                return gp.log_expected_improvement(mean, std, best)   # 3. score: log EI
            ranked, _ = maximize_acquisition(log_ei, self._candidates(rng),  # 4. candidates,
                                             lambda U: snap(self.space, U), rng)  # polished
        if given is None:                                        # 5. the best one not asked
            for u in list(ranked) + list(rng.uniform(size=(100, q))):  # (random if all were)
                given = from_unit(self.space, u)
                if _key(self.space, given) not in self.seen:
                    break
        self.seen.add(_key(self.space, given))
        self.pending[_key(self.space, given)] = to_unit(self.space, given)   # (q,)
        return given

    def _fit_gp(self, number):
        """Fit self.gp to every trial told and pending; the best (warped) value, or None.

        A failed trial counts as the worst value seen, so the search moves away from it; a
        pending one (asked, not yet told) as the best, the "constant liar" (Ginsbourger et
        al. 2010): its std there drops to about 0, so EI there does too and the next ask goes
        elsewhere, though it may be close by.
        Each fit is one climb: the first from gp.GP's default theta, each later one from
        the last fit's theta and L-BFGS curvature (gp.GP keeps both) until it converges.
        """
        y = np.array(self.values)                     # (n,)
        if not np.isfinite(y).any():
            return None
        y = np.where(np.isfinite(y), y, y[np.isfinite(y)].max())          # failed: worst
        y = np.concatenate([y, np.full(len(self.pending), y.min())])      # pending: best
        X = gp_inputs(self.space, np.array(self.U + list(self.pending.values())))  # (n, D)
        y = warp(y)                                   # (n,) nearer a Gaussian, same order
        try:
            self.gp.fit(X, y, rng=np.random.default_rng([self.seed, number, 1]))  # own stream
        except (ValueError, np.linalg.LinAlgError) as e:
            warnings.warn(f"BayesianSearch: GP fit failed ({e}); asking a random point")
            return None
        return y.min()

    def _candidates(self, rng):
        """Points to score (m, q), each snapped to a valid point: N_CANDIDATES uniform, and
        N_LOCAL at Gaussian steps of LOCAL_SCALE from the best trial so far."""
        q, y = len(self.space), np.array(self.values)
        best_u = self.U[np.nanargmin(y)]                                  # (q,)
        local = best_u + LOCAL_SCALE * rng.standard_normal((N_LOCAL, q))  # (N_LOCAL, q)
        return snap(self.space, np.vstack([rng.uniform(size=(N_CANDIDATES, q)), local]))

    def tell(self, params, value):
        _check_params(self.space, params)
        key = _key(self.space, params)
        u = self.pending.pop(key, None)
        self.seen.add(key)
        self.U.append(to_unit(self.space, params) if u is None else u)
        self.values.append(_as_value(value)[0])


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
    if y.max() == y.min() or not y.std() > 0:        # all equal (std may round to 3e-17,
        return y                                      # or underflow to 0): nothing to warp
    z = (y - y.mean()) / y.std()                      # (n,)
    T = yeo_johnson(z, WARP_LAMBDAS[:, None])         # (k, n) every candidate lambda
    loglik = -0.5 * len(z) * np.log(T.var(axis=1)) \
        + (WARP_LAMBDAS - 1) * np.sum(np.sign(z) * np.log1p(np.abs(z)))   # (k,)
    return T[np.argmax(loglik)]


# ----------------------------------------------------------------------------- successive halving
# The budget is what a trial spends (epochs, say): objective(params, budget). With
# min_budget=1, max_budget=27, eta=3, Hyperband runs four brackets (Li et al. 2018, Table 1
# lists them for R = 81), each rung n points at budget r, the best 1/eta going on:
#     bracket 0 (= successive_halving): 27 at 1, 9 at 3, 3 at 9, 1 at 27
#     bracket 1:                        12 at 3, 4 at 9, 1 at 27
#     bracket 2:                         6 at 9, 2 at 27
#     bracket 3:                         4 at 27
WAIT = "wait for the rung's stragglers"       # what _next says until a rung is all told


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

    A rung runs its points at one budget; once all are told, the best n of them (failed ones
    last, ties by asking order) run again at the next rung's budget. A bracket's first rung
    takes new points, RandomSearch's seeded draws. `budget` is that of the point last asked.
    """

    def __init__(self, space, min_budget, max_budget, eta=3, seed=None, hyperband=False):
        _check_budgets(min_budget, max_budget, eta)
        self.sampler = RandomSearch(space, seed)
        self.space, self.seed = space, self.sampler.seed
        self.config = {"seed": self.seed, "min_budget": min_budget, "max_budget": max_budget,
                       "eta": eta, "hyperband": hyperband}
        brackets = hyperband_brackets(min_budget, max_budget, eta)[:None if hyperband else 1]
        self.rungs = [(n, r, i == 0) for bracket in brackets for i, (n, r) in enumerate(bracket)]
        self.size = sum(n for n, _, _ in self.rungs)             # trials in all
        self.k, self.todo, self.asked, self.told, self.budget = -1, [], [], {}, None

    def ask(self, n=1):                               # [] while a rung waits, and at the end
        _check_n(n)
        asked = []
        while len(asked) < n and (params := self._next()) not in (None, WAIT):
            asked.append(params)
        return asked

    def _next(self, given=None):                     # run() passes `given` on resume
        if not self.todo:                             # every point of this rung was asked
            if len(self.told) < len(self.asked):
                return WAIT
            if self.k + 1 == len(self.rungs):
                return None                           # every bracket is done
            self.k += 1
            n, self.budget, first = self.rungs[self.k]
            if first:                                 # a bracket starts: new points
                self.todo = [self.sampler._next() for _ in range(n)]
            else:                                     # the best n of the rung just run
                rank = sorted(self.told, key=lambda j: (_nan_last(self.told[j]), j))
                self.todo = [self.asked[j] for j in rank[:n]]
            self.asked, self.told = [], {}
        params = self.todo.pop(0)
        self.asked.append(params if given is None else given)
        return self.asked[-1]

    def tell(self, params, value):
        _check_params(self.space, params)
        key = _key(self.space, params)
        free = [j for j, p in enumerate(self.asked) if j not in self.told
                and _key(self.space, p) == key]
        if not free:
            raise ValueError(f"params {params!r} were not asked at this rung (budget "
                             f"{self.budget}), or were told already")
        self.told[free[0]] = _as_value(value)[0]


# ----------------------------------------------------------------------------- the searches
# run() (below the banner) is the loop. In its simplest form (successive halving also
# passes searcher.budget to the objective) it is
#     for k in range(n_trials):
#         params = searcher.ask()[0]
#         searcher.tell(params, objective(params))
# with failed trials, parallel trials on an executor, and a log to resume from added.


def grid_search(objective, space, n_points=3, **run_options):
    """Evaluate every point of GridSearch(space, n_points); returns a Result."""
    searcher = GridSearch(space, n_points)
    return run(searcher, objective, searcher.size, method="grid", **run_options)


def random_search(objective, space, n_trials, seed=None, **run_options):
    """n_trials independent draws from the space; returns a Result."""
    seed = _logged_seed(seed, run_options)
    return run(RandomSearch(space, seed), objective, n_trials, method="random", **run_options)


def bayesian_search(objective, space, n_trials, seed=None, n_initial=None, **run_options):
    """Bayesian optimisation (GP + expected improvement) for n_trials; returns a Result."""
    seed = _logged_seed(seed, run_options)
    return run(BayesianSearch(space, seed, n_initial), objective, n_trials,
               method="bayesian", **run_options)


def successive_halving(objective, space, min_budget, max_budget, eta=3, seed=None,
                       **run_options):
    """One bracket of successive halving, objective(params, budget); returns a Result whose
    best is the best trial at the largest budget reached."""
    seed = _logged_seed(seed, run_options)
    searcher = HalvingSearch(space, min_budget, max_budget, eta, seed)
    _check_takes_budget(objective)
    return run(searcher, objective, searcher.size, method="successive_halving", **run_options)


def hyperband(objective, space, min_budget, max_budget, eta=3, seed=None, **run_options):
    """Hyperband (Li et al. 2018): successive halving brackets from the most aggressive to
    none, objective(params, budget); returns a Result (best: at the largest budget)."""
    seed = _logged_seed(seed, run_options)
    searcher = HalvingSearch(space, min_budget, max_budget, eta, seed, hyperband=True)
    _check_takes_budget(objective)
    return run(searcher, objective, searcher.size, method="hyperband", **run_options)

# ---- engineering: safe to skip on a first read ----
# Trial and Result; run(), the loop with its failures, workers and log; the input checks;
# the mapping of extreme bounds; the Yeo-Johnson transform behind warp().


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
        top = max((t.budget for t in ok if t.budget is not None), default=None)
        ok = [t for t in ok if t.budget == top]       # multi-fidelity: the largest budget
        if not ok:
            raise ValueError(f"no successful trial: all {len(self.trials)} trials failed"
                             + (f" (first error: {self.trials[0].error})" if self.trials else ""))
        return min(ok, key=lambda t: t.value)

    @property
    def best_params(self):
        return self.best_trial.params

    @property
    def best_value(self):
        return self.best_trial.value

    @property
    def best_so_far(self):
        """Lowest value after each trial, in trial-number order (inf before the first success)."""
        values = [t.value if t.status == "ok" else math.inf
                  for t in sorted(self.trials, key=lambda t: t.number)]
        return np.minimum.accumulate(values).tolist() if values else []

# ----------------------------------------------------------------------------- the loop


def run(searcher, objective, n_trials, method="", catch=(), callback=None, verbose=False,
        executor=None, n_jobs=1, log=None, resume=False):
    """Ask, evaluate, tell until n_trials trials have finished; returns a Result.

    Trial k is the searcher's k-th point. Trials run one at a time here (the default), on
    a process pool of n_jobs workers (n_jobs > 1), or on the given executor, as many at once
    as it has workers; as each finishes it is told, and the next is asked. With `log`, a line
    is written when trial k is asked and another when it finishes; resume replays the log
    through the searcher, reusing every finished trial and running again, under the same
    number, each trial that was asked but never finished. A value that is NaN, inf or not
    a number, or an exception of a type in `catch`, makes a failed trial and the search
    goes on. Any other exception stops asking; the trials still running are waited for,
    and it propagates with the finished trials on its `partial_result`. Ctrl-C returns
    them at once, marked interrupted.
    """
    catch = _check_run(objective, n_trials, catch, callback, executor, n_jobs, log, resume)
    header = {"hpopt_log": LOG_VERSION, "method": method,
              "space": _describe(searcher.space), **searcher.config}
    log_file, logged = _open_log(log, header, searcher.space, resume) if log else (None, {})
    pool = _Pool(executor, n_jobs)
    result, running = Result(method=method), {}   # future -> (number, params, budget)
    n_total = max([n_trials] + [k + 1 for k in logged])
    number, stop, ended = 0, None, False

    def finish(trial, replayed=False):
        searcher.tell(trial.params, trial.value)
        result.trials.append(trial)
        pool.progress = True
        if not replayed:
            _write(log_file, _encode_trial(searcher.space, trial))
            if verbose:
                _print_trial(trial, result, n_total, method)
            if callback is not None:
                callback(trial)

    try:
        while True:
            while stop is None and number < n_total and len(running) < pool.workers:
                params, trial = logged.get(number, (None, None))
                params = searcher._next(params)       # the logged point, or a new one
                if params is WAIT:                    # a rung of successive halving waits
                    break
                if params is None:                    # a grid has no more points
                    n_total = number
                    break
                budget = getattr(searcher, "budget", None)   # HalvingSearch's alone
                if trial is not None:                 # finished before the stop: reused
                    finish(trial, replayed=True)
                else:
                    _write(log_file, {"number": number, "params": _encode(searcher.space, params),
                                      "budget": budget})
                    running[pool.submit(objective, copy.deepcopy(params), catch, budget)] = \
                        (number, params, budget)
                number += 1
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: running[f][0]):
                trial_number, params, budget = running.pop(future)
                try:
                    value, error, seconds = future.result()
                except BrokenExecutor as e:           # a worker died: not the trial's fault
                    if pool.restart(future):          # run it again on a fresh pool
                        running[pool.submit(objective, copy.deepcopy(params), catch, budget)] \
                            = (trial_number, params, budget)
                    elif stop is None:
                        stop = e
                    continue
                except Exception as e:                # raised, and not in catch
                    stop = e if stop is None else stop
                    continue
                finish(Trial(trial_number, params, value, seconds,
                             "ok" if error is None else "failed", error, budget))
        if stop is not None:
            raise stop
        ended = True
    except KeyboardInterrupt:
        result.interrupted = True
    except BaseException as e:
        e.partial_result = result                     # the finished trials, logged too
        raise
    finally:
        pool.shutdown(wait=ended)
        if log_file:
            log_file.close()
    return result

def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_real(x):
    return isinstance(x, (numbers.Real, Decimal)) and not isinstance(x, (bool, np.bool_))


MAX_INT = 2 ** 53        # Integer bounds: beyond this a float cannot hold every integer


def _check_bounds(dim):
    """Real: finite numbers low < high; Integer: ints |v| <= 2^53, low <= high; log: low > 0."""
    kind = type(dim).__name__
    if kind == "Real":
        ok = (all(_is_real(v) and math.isfinite(v) for v in (dim.low, dim.high))
              and dim.low < dim.high)
        need = "finite numbers low < high"
    else:
        ok = (all(_is_int(v) and abs(v) <= MAX_INT for v in (dim.low, dim.high))
              and dim.low <= dim.high)
        need = f"int bounds low <= high, each within +-2**53"
    if not ok:
        raise ValueError(f"{kind} needs {need}; got low={dim.low!r}, high={dim.high!r}")
    if dim.log and not dim.low > 0:
        raise ValueError(f"{kind}(log=True) needs low {'> 0' if kind == 'Real' else '>= 1'}; "
                         f"got low={dim.low!r}")
    if not isinstance(dim.log, (bool, np.bool_)):
        raise ValueError(f"{kind} needs log=True or False; got log={dim.log!r}")
    cast = float if kind == "Real" else int
    object.__setattr__(dim, "low", cast(dim.low))
    object.__setattr__(dim, "high", cast(dim.high))
    object.__setattr__(dim, "log", bool(dim.log))


def _span(dim):
    """(a, b), the interval that u = 0..1 spans: in log space for a log dimension, and an
    Integer's bounds widened by 0.5 so that every integer owns a cell of equal width."""
    a, b = (dim.low - 0.5, dim.high + 0.5) if isinstance(dim, Integer) else (dim.low, dim.high)
    return (math.log(a), math.log(b)) if dim.log else (a, b)


def _lerp(a, b, t):
    """a + t (b - a), also where b - a overflows (bounds near the largest float)."""
    return a + t * (b - a) if math.isfinite(b - a) else a * (1 - t) + b * t


def _unlerp(a, b, x):
    """The inverse of _lerp: (x - a) / (b - a); 0.5 where b == a (a log span narrower than
    the floats can tell apart, as in Real(1e16, 1e16 + 2, log=True))."""
    if a == b:
        return 0.5 + 0.0 * x
    return (x - a) / (b - a) if math.isfinite(b - a) else (x / 2 - a / 2) / (b / 2 - a / 2)


def _unit_to_number(dim, u):
    """u (scalar or (m,)) -> the value, before rounding or clipping to the bounds."""
    a, b = _span(dim)
    t = _lerp(a, b, np.clip(u, 0.0, 1.0))
    with np.errstate(over="ignore"):                  # t may round above log(largest float):
        return np.exp(t) if dim.log else t            # inf, which the caller clips to high


def _same(a, b):
    """Options are the same only if of one type and equal: 1, 1.0, True and "1" differ."""
    if type(a) is not type(b):
        return False
    if a is b:
        return True
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and bool(np.all(a == b))
    try:
        return bool(a == b)
    except (TypeError, ValueError):                   # no truth value: compare by identity
        return False


def _check_options(options):
    if not isinstance(options, (list, tuple, range, np.ndarray)):
        raise ValueError(f"Choice options must be a list or tuple (a set or dict has no fixed "
                         f"order); got options={options!r}")
    options = tuple(o.item() if isinstance(o, np.generic) else o for o in options)
    if not options:
        raise ValueError("Choice options must hold at least one option; got options=[]")
    for i, a in enumerate(options):
        if any(_same(a, b) for b in options[:i]):
            raise ValueError(f"Choice options must be distinct; {a!r} is repeated")
    return options


def _check_space(space):
    if not isinstance(space, dict) or not space:
        raise ValueError(f"space must be a non-empty dict {{name: Real | Integer | Choice}}; "
                         f"got {space!r}")
    for name, dim in space.items():
        if not isinstance(name, str) or not isinstance(dim, (Real, Integer, Choice)):
            raise ValueError(f"space entries must be str: Real | Integer | Choice; got "
                             f"{name!r}: {dim!r}")


def _in(dim, value):
    if isinstance(dim, Choice):
        return any(_same(o, value) for o in dim.options)
    ok = _is_int(value) if isinstance(dim, Integer) else _is_real(value)
    return ok and dim.low <= value <= dim.high


def _check_params(space, params):
    """tell() takes a dict with exactly the space's names, each a value of its dimension."""
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict {{name: value}}; got {params!r}")
    missing, extra = set(space) - set(params), set(params) - set(space)
    if missing or extra:
        raise ValueError(f"params must have exactly the names {list(space)}; missing "
                         f"{sorted(missing)}, extra {sorted(map(str, extra))}")
    for name, dim in space.items():
        if not _in(dim, params[name]):
            raise ValueError(f"params[{name!r}] = {params[name]!r} is not a value of {dim}")


def _nan_last(value):
    return math.inf if math.isnan(value) else value


def _check_budgets(min_budget, max_budget, eta):
    if not (_is_int(min_budget) and _is_int(max_budget) and 0 < min_budget < max_budget):
        raise ValueError(f"min_budget and max_budget must be ints with 0 < min_budget < "
                         f"max_budget; got min_budget={min_budget!r}, max_budget={max_budget!r}")
    if not _is_int(eta) or eta < 2:
        raise ValueError(f"eta must be an int >= 2; got eta={eta!r}")


def _check_takes_budget(objective):
    """Successive halving calls objective(params, budget): say so now if it cannot."""
    try:
        inspect.signature(objective).bind({}, 1)
    except TypeError:
        raise TypeError(f"objective must take (params, budget) for successive halving; "
                        f"{objective!r} takes {inspect.signature(objective)}") from None
    except ValueError:                                # no signature to read (a builtin)
        pass


def _check_n(n):
    if not _is_int(n) or n < 1:
        raise ValueError(f"n must be an int >= 1; got {n!r}")


def _key(space, params):
    """A hashable identity of a point (Choice by option index)."""
    return tuple(dim.index(params[n]) if isinstance(dim, Choice) else params[n]
                 for n, dim in space.items())


def _seed(seed):
    if seed is None:
        return int(np.random.SeedSequence().entropy % 2 ** 63)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2 ** 63))
    if _is_int(seed) and seed >= 0:
        return int(seed)
    raise TypeError(f"seed must be None, an int >= 0 or a numpy Generator; got {seed!r}")


def _short_repr(x):
    try:
        text = repr(x)
    except Exception:                                 # a broken __repr__ is no reason to stop
        text = f"<{type(x).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _as_value(value):
    """(float, None) for a finite real number; (nan, why) for anything else."""
    if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) == 0:
        value = value.item()                          # numpy scalars and 0-d arrays
    if not _is_real(value):
        return math.nan, (f"objective returned {_short_repr(value)} "
                          f"({type(value).__name__}), not a number")
    try:
        value = float(value)
    except (OverflowError, ValueError) as e:          # an int too large for a float, say
        return math.nan, f"objective returned a number that is no float ({e})"
    if not math.isfinite(value):
        return math.nan, f"objective returned {value}"
    return value, None


def _evaluate(objective, params, catch, budget=None):
    """One trial, where it runs (this process or a worker): (value, error, seconds)."""
    t0 = time.perf_counter()
    try:
        value, error = _as_value(objective(params) if budget is None
                                 else objective(params, budget))
    except catch as e:
        value, error = math.nan, f"{type(e).__name__}: {e}"
    return value, error, time.perf_counter() - t0


class _Pool:
    """Where trials run: here, one at a time (no executor); on the user's executor; or on a
    process pool of n_jobs, replaced by a fresh one when a worker dies (killed, out of
    memory) so that the trials it ran run again, unless no trial has finished since the
    last replacement (then the same trial would only kill it again)."""

    def __init__(self, executor, n_jobs):
        self.own = executor is None and n_jobs > 1
        self.executor = ProcessPoolExecutor(n_jobs) if self.own else executor
        self.workers = 1 if executor is None and not self.own else (
            n_jobs if self.own else _n_workers(executor))
        self.live, self.progress = set(), True        # futures of the current pool

    def submit(self, objective, params, catch, budget):
        if self.executor is None:                     # run now; Ctrl-C passes straight up
            future = Future()
            try:
                future.set_result(_evaluate(objective, params, catch, budget))
            except Exception as e:
                future.set_exception(e)
            return future
        try:
            future = self.executor.submit(_evaluate, objective, params, catch, budget)
        except Exception as e:                        # a broken executor refuses work
            future = Future()
            future.set_exception(e)
        self.live.add(future)
        return future

    def restart(self, future):
        if future not in self.live:                   # from a pool already replaced
            return True
        if not self.own or not self.progress:
            return False
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = ProcessPoolExecutor(self.workers)
        self.live, self.progress = set(), False
        return True

    def shutdown(self, wait):
        if self.own:
            self.executor.shutdown(wait=wait, cancel_futures=True)


def _n_workers(executor):
    if hasattr(executor, "_max_workers"):             # ThreadPool / ProcessPool executors
        return executor._max_workers
    client = getattr(executor, "_client", None)       # dask.distributed's ClientExecutor
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return os.cpu_count() or 1


def _check_run(objective, n_trials, catch, callback, executor, n_jobs, log, resume):
    """run()'s arguments, checked before any work starts (no log or pool is made)."""
    if not callable(objective):
        raise TypeError(f"objective must be callable; got {objective!r}")
    if not _is_int(n_trials) or n_trials < 1:
        raise ValueError(f"n_trials must be an int >= 1; got {n_trials!r}")
    if not _is_int(n_jobs) or n_jobs < 1:
        raise ValueError(f"n_jobs must be an int >= 1; got {n_jobs!r}")
    if executor is not None and n_jobs != 1:
        raise ValueError(f"give executor= or n_jobs=, not both; got n_jobs={n_jobs!r}")
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor must be a concurrent.futures.Executor (with .submit); "
                        f"got {executor!r}")
    catch = () if catch is None else (catch,) if isinstance(catch, type) else catch
    if not (isinstance(catch, (tuple, list)) and all(
            isinstance(c, type) and issubclass(c, BaseException) for c in catch)):
        raise TypeError(f"catch must be an exception type or a tuple of them; got {catch!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable; got {callback!r}")
    if log is not None and not isinstance(log, (str, os.PathLike)):
        raise TypeError(f"log must be a path (str or os.PathLike); got {log!r}")
    if resume and not log:
        raise ValueError("resume=True needs log= (the path of the log to resume)")
    if n_jobs > 1 or isinstance(executor, ProcessPoolExecutor):
        try:
            pickle.dumps(objective)
        except Exception as e:
            raise TypeError("a process executor needs a picklable objective: define it at "
                            "module top level (or use functools.partial); pickling it "
                            f"failed with {type(e).__name__}: {e}") from None
    return tuple(catch)


def _print_trial(trial, result, n_trials, method):
    shown = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in trial.params.items())
    shown += f"  budget={trial.budget}" if trial.budget is not None else ""
    value = f"{trial.value:.4g}" if trial.status == "ok" else f"failed ({trial.error})"
    best = min([t.value for t in result.trials if t.status == "ok"], default=math.inf)
    print(f"{method + ' ' if method else ''}trial {len(result.trials)}/{n_trials}  {shown}  "
          f"-> {value}  best {best:.4g}  {trial.seconds:.2f}s", flush=True)

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


# ----------------------------------------------------------------------------- the log
# A write-ahead log, one JSON object a line: first the header (what fixes the sequence of
# trials: method, space and the searcher's config: seed, n_points or n_initial, or the
# halving budgets and eta), then {"number", "params", "budget"} (null but for halving) when a
# trial is asked and the whole trial when it finishes. Each line is on disk (fsync) before
# the trial starts or the next is asked. A Choice value is logged as its option's index.

LOG_VERSION = 2


def _describe(space):
    """The space as JSON: bounds, and each Choice option by type and repr (no addresses)."""
    def option(o):
        name = getattr(o, "__qualname__", None) if callable(o) else None
        text = f"{o.__module__}.{name}" if name else re.sub(r" at 0x[0-9A-Fa-f]+", "", repr(o))
        return f"{type(o).__name__}: {text}"

    return {name: {"Choice": [option(o) for o in d.options]} if isinstance(d, Choice)
            else {type(d).__name__: [d.low, d.high], "log": d.log} for name, d in space.items()}


def _encode(space, params):
    return {n: d.index(params[n]) if isinstance(d, Choice) else params[n] for n, d in space.items()}


def _decode(space, logged):
    params = {n: d.options[logged[n]] if isinstance(d, Choice) and _is_int(logged[n])
              and 0 <= logged[n] < len(d.options) else logged[n] for n, d in space.items()}
    _check_params(space, params)                      # a damaged line fails here
    return params


def _encode_trial(space, trial):
    record = dict(vars(trial), params=_encode(space, trial.params))
    record["value"] = None if math.isnan(trial.value) else trial.value    # strict JSON
    return record


def _write(log_file, record):
    if log_file is not None:
        log_file.write(json.dumps(record, allow_nan=False) + "\n")
        log_file.flush()
        os.fsync(log_file.fileno())                   # on disk before the trial goes on


def _open_log(path, header, space, resume):
    """Create the log (exclusively: one search a file) with its header on disk, or with
    resume, check and read it. Returns the file and {number: (params, Trial or None)}."""
    if resume and os.path.exists(path):
        logged, cut_short = _read_log(path, header, space)
        log_file = open(path, "a")
        if cut_short:
            log_file.write("\n")                      # start after a line cut short
        return log_file, logged
    try:
        log_file = open(path, "x")
    except FileExistsError:
        raise ValueError(f"log {path} already exists; pass resume=True to continue it, or "
                         "another path (an existing log is never overwritten)") from None
    _write(log_file, header)
    return log_file, {}


def _read_log(path, header, space):
    with open(path) as f:
        text = f.read()
    lines = text.split("\n")
    try:
        logged = json.loads(lines[0])
        version = logged.get("hpopt_log")
    except (ValueError, AttributeError):
        version = None
    if version != LOG_VERSION:
        raise ValueError(f"log {path} does not start with the header of an hpopt log "
                         f"(version {LOG_VERSION}); it was left as it is")
    for key in list(header) + [k for k in logged if k not in header]:
        if logged.get(key) != header.get(key):
            raise ValueError(f"log {path} records another search: its {key} is "
                             f"{logged.get(key)!r}, this one's is {header.get(key)!r}")
    records = {}
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            number, params = r["number"], _decode(space, r["params"])
            if not _is_int(number) or number < 0:
                raise ValueError(f"number {number!r}")
            trial = None
            if "status" in r:
                value = math.nan if r["value"] is None else float(r["value"])
                trial = Trial(number, params, value, float(r["seconds"]), r["status"],
                              r["error"], r.get("budget"))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            warnings.warn(f"log {path}: skipped line {i}, which is not a whole record ({e})")
            continue
        if number not in records or records[number][1] is None:
            records[number] = (params, trial)
    return records, not text.endswith("\n")


def _logged_seed(seed, run_options):
    """With resume=True and no seed given, continue with the seed recorded in the log."""
    log = run_options.get("log")
    if seed is not None or not run_options.get("resume") or not log or not os.path.exists(log):
        return seed
    with open(log) as f:
        first = f.readline()
    try:
        return json.loads(first).get("seed")
    except (ValueError, AttributeError):
        return None                                   # _read_log says what is wrong
