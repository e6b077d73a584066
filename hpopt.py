"""hpopt.py - grid, random and Bayesian hyperparameter search behind one ask/tell loop.

Three answers to "what should I try next?":
  GridSearch      every combination of a few values per dimension;
  RandomSearch    independent draws (Bergstra & Bengio 2012);
  BayesianSearch  a Gaussian-process surrogate (gp.py) and expected improvement
                  (Jones et al. 1998; Snoek et al. 2012), ranked by log EI (Ament et al. 2023).
and one loop (`run`, behind grid_search / random_search / bayesian_search) that asks,
evaluates (in parallel on any concurrent.futures executor), tells, logs each finished
trial to a JSONL file that survives a crash, and resumes from it.

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
  M. D. McKay, R. J. Beckman & W. J. Conover, "A Comparison of Three Methods for Selecting
    Values of Input Variables in the Analysis of Output from a Computer Code",
    Technometrics 21, 1979 (Latin hypercube sampling).
Depends on: numpy and gp.py (same folder). Licence: MIT.
"""
import json
import math
import os
import pickle
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np

import gp

# Objectives are minimised: "best" always means lowest.
# u: a point of the unit cube, one coordinate per dimension (log dims through the log,
#    Integer cells widened by +-0.5, a Choice's option k of K at (k + 0.5) / K).
# X: the GP's inputs, the same with each Choice spread into a one-hot block.
# n: observed points  m: candidates  q: dimensions of the space  D: columns of X

# ----------------------------------------------------------------------------- dimensions


def _is_number(x):
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _span(dim):
    """(a, b), the interval that u = 0..1 spans: in log space for a log dimension, and an
    Integer's bounds widened by 0.5 so that every integer owns a cell of equal width."""
    a, b = (dim.low - 0.5, dim.high + 0.5) if isinstance(dim, Integer) else (dim.low, dim.high)
    return (math.log(a), math.log(b)) if dim.log else (a, b)


def _number_to_unit(dim, value):
    """value (scalar or (m,)) -> u; the to_unit of Real and Integer."""
    a, b = _span(dim)
    return ((np.log(value) if dim.log else value) - a) / (b - a)


def _unit_to_number(dim, u):
    """u (scalar or (m,)) -> the value, before rounding or clipping to the bounds."""
    a, b = _span(dim)
    t = a + np.clip(u, 0.0, 1.0) * (b - a)
    return np.exp(t) if dim.log else t


def _check_bounds(dim, kinds, what, ok, log_floor):
    if not (all(isinstance(v, kinds) and not isinstance(v, bool) for v in (dim.low, dim.high))
            and all(math.isfinite(v) for v in (dim.low, dim.high)) and ok(dim.low, dim.high)):
        raise ValueError(f"{type(dim).__name__} needs {what}; got low={dim.low!r}, "
                         f"high={dim.high!r}")
    if dim.log and not dim.low >= log_floor:
        raise ValueError(f"{type(dim).__name__}(log=True) needs low "
                         f"{'> 0' if log_floor < 1 else '>= 1'}; got low={dim.low!r}")


@dataclass(frozen=True)
class Real:
    """A float in [low, high]; log=True samples and models it on a log scale."""
    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        _check_bounds(self, (int, float, np.integer, np.floating), "finite numbers low < high",
                      lambda lo, hi: lo < hi, log_floor=np.nextafter(0, 1))
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))

    def grid(self, n_points):
        if n_points == 1:
            return [self.from_unit(0.5)]
        values = (np.geomspace if self.log else np.linspace)(self.low, self.high, n_points)
        return [self.low] + [float(v) for v in values[1:-1]] + [self.high]  # exact ends

    to_unit = _number_to_unit

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
        _check_bounds(self, (int, np.integer), "int bounds low <= high",
                      lambda lo, hi: lo <= hi, log_floor=1)
        object.__setattr__(self, "low", int(self.low))
        object.__setattr__(self, "high", int(self.high))

    def grid(self, n_points):
        if n_points > self.high - self.low:
            return list(range(self.low, self.high + 1))
        if n_points == 1:
            return [self.from_unit(0.5)]
        values = (np.geomspace if self.log else np.linspace)(self.low, self.high, n_points)
        return sorted({self.low, self.high, *(int(round(v)) for v in values)})

    to_unit = _number_to_unit

    def from_unit(self, u):
        return min(max(int(round(float(_unit_to_number(self, u)))), self.low), self.high)

    def snap(self, u):                                # (m,) -> (m,) centre of each int's cell
        return _number_to_unit(self, np.clip(np.round(_unit_to_number(self, u)), self.low,
                                             self.high))


@dataclass(frozen=True)
class Choice:
    """One of a list of options (numbers, strings, None, ...); one-hot for the GP."""
    options: tuple

    def __post_init__(self):
        if isinstance(self.options, (str, bytes)) or not hasattr(self.options, "__len__"):
            raise ValueError(f"Choice needs a list of options; got {self.options!r}")
        options = tuple(o.item() if isinstance(o, np.generic) else o for o in self.options)
        if not options:
            raise ValueError("Choice needs at least one option; got an empty list")
        for i, a in enumerate(options):
            if any(type(a) is type(b) and a == b for b in options[:i]):
                raise ValueError(f"Choice options must be distinct; {a!r} is repeated")
        object.__setattr__(self, "options", options)

    def index(self, value):
        for k, option in enumerate(self.options):
            if type(option) is type(value) and option == value:
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


def _check_space(space):
    if not isinstance(space, dict) or not space:
        raise ValueError(f"space must be a non-empty dict {{name: Real | Integer | Choice}}; "
                         f"got {space!r}")
    for name, dim in space.items():
        if not isinstance(name, str) or not isinstance(dim, (Real, Integer, Choice)):
            raise ValueError(f"space entries must be str: Real | Integer | Choice; got "
                             f"{name!r}: {dim!r}")


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


def _key(space, params):
    """A hashable identity of a point (Choice by option index)."""
    return tuple(dim.index(params[n]) if isinstance(dim, Choice) else params[n]
                 for n, dim in space.items())


def _seed(seed):
    if seed is None:
        return int(np.random.SeedSequence().entropy % 2 ** 63)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2 ** 63))
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return int(seed)
    raise TypeError(f"seed must be None, an int >= 0 or a numpy Generator; got {seed!r}")

# ----------------------------------------------------------------------------- searchers


class GridSearch:
    """Every combination of `n_points` values per Real/Integer and every Choice option.

    Enumerated lazily in a fixed order (the first dimension varies slowest); points told
    from elsewhere (a resumed log) are skipped. len() is the grid size.
    """

    def __init__(self, space, n_points=3):
        _check_space(space)
        if not isinstance(n_points, int) or n_points < 1:
            raise ValueError(f"n_points must be an int >= 1; got {n_points!r}")
        self.space, self.n_points = space, n_points
        self.values = [dim.grid(n_points) for dim in space.values()]
        self.cursor, self.seen = 0, set()

    def __len__(self):
        return math.prod(len(v) for v in self.values)

    def _combination(self, i):
        params = {}
        for name, values in reversed(list(zip(self.space, self.values))):
            i, r = divmod(i, len(values))             # mixed-radix digits of i
            params[name] = values[r]
        return {name: params[name] for name in self.space}

    def ask(self, n=1):
        out = []
        while len(out) < n and self.cursor < len(self):
            params = self._combination(self.cursor)
            self.cursor += 1
            if _key(self.space, params) not in self.seen:
                self.seen.add(_key(self.space, params))
                out.append(params)
        return out

    def tell(self, params, value):
        self.seen.add(_key(self.space, params))


class RandomSearch:
    """Independent draws from each dimension (Bergstra & Bengio 2012).

    Draw number i uses its own generator seeded with (seed, i), so a resumed search makes
    the same draws. In a space of Integer/Choice dimensions only, no combination repeats
    until all have been tried.
    """

    def __init__(self, space, seed=None):
        _check_space(space)
        self.space, self.seed = space, _seed(seed)
        self.count, self.seen, self.pending = 0, set(), set()
        discrete = all(not isinstance(d, Real) for d in space.values())
        self.size = (math.prod(d.high - d.low + 1 if isinstance(d, Integer)
                               else len(d.options) for d in space.values())
                     if discrete else math.inf)

    def _draw(self, rng):
        return from_unit(self.space, rng.uniform(size=len(self.space)))

    def _untried(self, params, rng):
        """Draw again until the combination is new; when crowded, pick among the untried."""
        for _ in range(100):
            if _key(self.space, params) not in self.seen:
                return params
            params = self._draw(rng)
        grid = GridSearch(self.space, n_points=2 ** 62)   # every value of every dimension
        free = [i for i in range(len(grid))
                if _key(self.space, grid._combination(i)) not in self.seen]
        return grid._combination(free[rng.integers(len(free))])

    def ask(self, n=1):
        out = []
        for _ in range(n):
            rng = np.random.default_rng([self.seed, self.count])   # draw i from (seed, i)
            if len(self.seen) >= self.size:           # every combination tried: start over
                self.seen = set()
            params = self._draw(rng)
            if self.size < math.inf:                  # Integer/Choice only: no repeats
                params = self._untried(params, rng)
            self.count += 1
            self.seen.add(_key(self.space, params))
            self.pending.add(_key(self.space, params))
            out.append(params)
        return out

    def tell(self, params, value):
        key = _key(self.space, params)
        if key in self.pending:
            self.pending.discard(key)
        else:                                         # told without asking (a resumed log)
            self.count += 1
            self.seen.add(key)


def snap(space, U):
    """Move each row of U (m, q) to the u of the valid point it decodes to."""
    return np.column_stack([dim.snap(U[:, j]) for j, dim in enumerate(space.values())])


def maximize_acquisition(score, U_pool, snap_fn, rng, n_parents=5, n_children=20,
                         steps=(0.05, 0.01, 0.002, 0.0005)):
    """Best points of a candidate pool, then a local polish by shrinking random steps.

    score: (m, q) -> (m,) acquisition (higher is better); U_pool: (m, q) snapped points.
    Each round moves the n_parents best points by Gaussian steps of the next size and keeps
    the best of parents and children, so the result never scores below the pool's best.
    returns: U (k, q) and scores (k,), best first
    """
    U, s = U_pool, score(U_pool)                      # (m, q), (m,)
    parents = np.argsort(s)[::-1][:n_parents]
    P, ps = U[parents], s[parents]                    # (n_parents, q), (n_parents,)
    for step in steps:
        C = snap_fn(np.repeat(P, n_children, axis=0)
                    + step * rng.standard_normal((len(P) * n_children, U.shape[1])))
        both, both_s = np.vstack([P, C]), np.concatenate([ps, score(C)])
        keep = np.argsort(both_s)[::-1][:n_parents]
        P, ps = both[keep], both_s[keep]
    U, s = np.vstack([P, U]), np.concatenate([ps, s])
    order = np.argsort(s, kind="stable")[::-1]
    return U[order], s[order]


WARM_ITERS = 3           # L-BFGS iterations of a warm-started GP fit (a full fit every 5th ask)


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


def warp(y, lambdas=np.linspace(-1, 3, 41)):
    """Standardise the targets, then Yeo-Johnson with lambda by maximum likelihood.

    A monotone map: it keeps the order of the values (so the argmin) and makes their
    distribution closer to the Gaussian the GP assumes: a few huge values far above the
    best are compressed (lambda < 1), a few lone good values below a plateau spread out
    (lambda > 1). The profile log-likelihood of lambda is
    -n/2 log var(t) + (lambda - 1) sum sign(z) log(1 + |z|).  As in HEBO (Cowen-Rivers et
    al., JAIR 2022).  y: (n,)  returns: (n,)
    """
    if not y.std() > 0:
        return y
    z = (y - y.mean()) / y.std()                      # (n,)
    T = yeo_johnson(z, lambdas[:, None])              # (k, n) every candidate lambda
    loglik = -0.5 * len(z) * np.log(T.var(axis=1)) \
        + (lambdas - 1) * np.sum(np.sign(z) * np.log1p(np.abs(z)))   # (k,)
    return T[np.argmax(loglik)]


class BayesianSearch:
    """Bayesian optimisation: a GP surrogate and expected improvement.

    1. The first n_initial points form a Latin hypercube in u (McKay et al. 1979).
    2. Then each ask fits gp.GP (Matern 5/2, ARD, MAP under gp.bo_log_prior; warm-started
       from the previous fit) to the observations in X (values through `warp`), failed
       trials at the worst finite value seen and pending points at the best one (the
       "constant liar" for parallel asks),
    3. scores a pool of candidates (uniform, and near the best points; snapped to valid
       values first) by log EI (Ament et al. 2023), polishes the best few, and
    4. asks the best point not already evaluated or pending.
    Ask number i draws from a generator seeded with (seed, i): a resumed search repeats.
    """

    def __init__(self, space, seed=None, n_initial=None, n_candidates=500):
        _check_space(space)
        q = len(space)
        n_initial = 2 * q + 1 if n_initial is None else n_initial
        if not isinstance(n_initial, int) or n_initial < 1:
            raise ValueError(f"n_initial must be an int >= 1; got {n_initial!r}")
        self.space, self.seed, self.n_initial = space, _seed(seed), n_initial
        self.n_candidates = n_candidates
        self.U, self.values = [], []                  # observed u (q,) and values (nan: failed)
        self.pending, self.seen = {}, set()           # key -> u; keys of every point asked/told
        self.gp = gp.GP("matern52", log_prior=gp.bo_log_prior)
        self.n_fits, self.warned = 0, False
        rng = np.random.default_rng([self.seed, 2 ** 32])
        strata = rng.permuted(np.tile(np.arange(n_initial), (q, 1)), axis=1).T  # (n_initial, q)
        self.design = (strata + rng.uniform(size=(n_initial, q))) / n_initial   # LHS in u

    def _fit(self, n_obs, number, with_pending=True):
        """Fit the GP to the first n_obs observations (and the pending points)."""
        y = np.array(self.values[:n_obs])             # (n,)
        ok = np.isfinite(y)
        if not ok.any():
            raise ValueError("no successful trial yet")
        y = np.where(ok, y, y[ok].max())              # failed -> worst finite value
        U = self.U[:n_obs]
        if with_pending and self.pending:             # constant liar: pending -> best value
            U = U + list(self.pending.values())
            y = np.concatenate([y, np.full(len(self.pending), y.min())])
        restart = self.n_fits == 0 or number % 5 == 0  # a full multi-start fit now and then
        self.gp.n_restarts, self.gp.n_candidates, self.gp.max_iter = \
            (1, 16, 200) if restart else (0, 0, WARM_ITERS)  # warm: a few steps from the last fit
        y = warp(y)                                   # (n,) closer to Gaussian, same order
        self.gp.fit(gp_inputs(self.space, np.array(U)), y,
                    rng=np.random.default_rng([self.seed, number, 1]))
        self.n_fits += 1
        return y.min()

    def catch_up(self):
        """Redo the GP fits an uninterrupted sequential run made (after telling a log),
        so that the warm start, and so every later ask, is the same as without the stop."""
        for n_obs in range(self.n_initial, len(self.values)):
            try:
                self._fit(n_obs, n_obs, with_pending=False)
            except (ValueError, np.linalg.LinAlgError):
                pass

    def _suggest(self, rng, number):
        """Ranked candidate points u (k, q), best first."""
        try:
            best = self._fit(len(self.values), number)
        except (ValueError, np.linalg.LinAlgError) as e:
            if not self.warned and "no successful trial" not in str(e):
                warnings.warn(f"BayesianSearch: GP fit failed ({e}); asking random points")
                self.warned = True
            return rng.uniform(size=(1, len(self.space)))
        q = len(self.space)
        U_obs, y = np.array(self.U), np.array(self.values)  # (n, q), (n,)
        top = U_obs[np.argsort(np.where(np.isfinite(y), y, np.inf))[:5]]  # (<= 5, q)
        n_local = self.n_candidates // 2
        scale = rng.choice([0.2, 0.05, 0.01, 0.002], size=(n_local, 1))
        local = top[rng.integers(len(top), size=n_local)] + scale * rng.standard_normal((n_local, q))
        pool = snap(self.space, np.vstack([rng.uniform(size=(self.n_candidates, q)), local]))

        def score(U):                                 # (m, q) -> log EI (m,)
            mean, std = self.gp.predict(gp_inputs(self.space, U), return_std=True)
            return gp.log_expected_improvement(mean, std, best)

        return maximize_acquisition(score, pool, lambda U: snap(self.space, U), rng)[0]

    def ask(self, n=1):
        out = []
        for _ in range(n):
            number = len(self.values) + len(self.pending)
            rng = np.random.default_rng([self.seed, number])
            ranked = (self.design[number:number + 1] if number < self.n_initial
                      else self._suggest(rng, number))
            for u in list(ranked[:50]) + list(rng.uniform(size=(100, len(self.space)))):
                params = from_unit(self.space, u)     # the first point not yet evaluated
                if _key(self.space, params) not in self.seen:
                    break
            key = _key(self.space, params)
            self.seen.add(key)
            self.pending[key] = to_unit(self.space, params)
            out.append(params)
        return out

    def tell(self, params, value):
        missing = set(self.space) - set(params)
        if missing:
            raise ValueError(f"params lacks {sorted(missing)}; got {params!r}")
        key = _key(self.space, params)
        u = self.pending.pop(key, None)
        self.seen.add(key)
        self.U.append(to_unit(self.space, params) if u is None else u)
        self.values.append(_as_value(value)[0])

# ----------------------------------------------------------------------------- results


@dataclass
class Trial:
    """One finished evaluation. status: "ok" or "failed" (then value is nan, error says why)."""
    number: int
    params: dict
    value: float
    seconds: float
    status: str = "ok"
    error: str = None


@dataclass
class Result:
    """The trials of a search, in the order they finished, and the best of them."""
    trials: list = field(default_factory=list)
    method: str = ""
    interrupted: bool = False

    @property
    def best_trial(self):
        ok = [t for t in self.trials if t.status == "ok"]
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


def _as_value(value):
    """(float, None) for a finite real number; (nan, why) for anything else."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if not _is_number(value):
        return math.nan, f"objective returned {value!r} ({type(value).__name__}), not a number"
    if not math.isfinite(value):
        return math.nan, f"objective returned {value}"
    return float(value), None

# ----------------------------------------------------------------------------- the loop


def _timed_call(objective, params):
    """Runs in a worker: the value and the seconds it took."""
    t0 = time.perf_counter()
    value = objective(params)
    return value, time.perf_counter() - t0


def _describe(space):
    def dim(d):
        if isinstance(d, Choice):
            return {"Choice": [o if isinstance(o, (str, int, float, bool, type(None))) else repr(o)
                               for o in d.options]}
        return {type(d).__name__: [d.low, d.high], "log": d.log}
    return {name: dim(d) for name, d in space.items()}


def _read_log(path, header, space):
    """The trials recorded in a log, after checking that it is the same search, and
    whether its last line was cut short."""
    with open(path) as f:
        text = f.read()
    lines = text.split("\n")
    if not lines[0].strip():
        return [], False
    logged = json.loads(lines[0])
    for what in ("method", "space"):
        if logged.get(what) != header[what]:
            raise ValueError(f"log {path} records another search: its {what} is "
                             f"{logged.get(what)!r}, this one's is {header[what]!r}")
    if logged["seed"] != header["seed"]:
        raise ValueError(f"log {path} was made with seed={logged['seed']}, not {header['seed']}")
    trials = []
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            trials.append(Trial(**json.loads(line)))
        except (ValueError, TypeError) as e:          # a line cut short by a crash
            warnings.warn(f"log {path}: skipped line {i}, which is not a whole record ({e})")

    def option(d, logged_value):                      # JSON turned tuples into lists etc.
        as_json = [json.loads(json.dumps(o, default=repr)) for o in d.options]
        return d.options[as_json.index(logged_value)]

    for t in trials:
        t.params = {n: option(d, t.params[n]) if isinstance(d, Choice)
                    else type(d.low)(t.params[n]) for n, d in space.items()}
    return trials, not text.endswith("\n")


def _open_log(path, searcher, method, resume, result):
    """Open the log for appending; with resume, tell the searcher every logged trial."""
    header = {"hpopt_log": 1, "method": method, "space": _describe(searcher.space),
              "seed": getattr(searcher, "seed", None)}
    exists = os.path.exists(path) and os.path.getsize(path) > 0
    if exists and not resume:
        raise ValueError(f"log {path} already exists; pass resume=True to continue it, "
                         f"or another path (an existing log is never overwritten)")
    cut_short = False
    if exists:
        result.trials, cut_short = _read_log(path, header, searcher.space)
        for t in sorted(result.trials, key=lambda t: t.number):
            searcher.tell(t.params, t.value)
        if hasattr(searcher, "catch_up"):
            searcher.catch_up()
    log_file = open(path, "a")
    if not exists:
        log_file.write(json.dumps(header) + "\n")
    elif cut_short:                                   # start after a line cut short
        log_file.write("\n")
    return log_file


def run(searcher, objective, n_trials, method="", catch=(), callback=None, verbose=False,
        executor=None, n_jobs=1, log=None, resume=False):
    """Ask, evaluate, tell until n_trials trials have finished; returns a Result.

    A value that is NaN, inf or not a number, or an exception of a type in `catch`, makes
    a failed trial and the search goes on. Another exception propagates, with the finished
    trials on its `partial_result`; Ctrl-C returns them, marked interrupted.
    """
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be an int >= 1; got {n_trials!r}")
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be an int >= 1; got {n_jobs!r}")
    catch = (catch,) if isinstance(catch, type) else tuple(catch)
    if not all(isinstance(c, type) and issubclass(c, BaseException) for c in catch):
        raise TypeError(f"catch must be exception types; got {catch!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable; got {callback!r}")
    if resume and not log:
        raise ValueError("resume=True needs log= (the path of the log to resume)")
    if (executor is None and n_jobs > 1) or isinstance(executor, ProcessPoolExecutor):
        try:
            pickle.dumps(objective)
        except Exception as e:
            raise TypeError("a process executor needs a picklable objective: define it at "
                            "module top level (or use functools.partial); pickling it "
                            f"failed with {type(e).__name__}: {e}") from None
    result = Result(method=method)
    log_file = _open_log(log, searcher, method, resume, result) if log else None
    pool = ProcessPoolExecutor(n_jobs) if executor is None and n_jobs > 1 else None

    def finish(number, params, outcome, seconds):
        value, error = (math.nan, outcome.message) if isinstance(outcome, _Failure) \
            else _as_value(outcome)
        trial = Trial(number, params, value, seconds, "ok" if error is None else "failed", error)
        searcher.tell(params, value)
        result.trials.append(trial)
        if log_file:
            log_file.write(json.dumps(trial.__dict__) + "\n")
            log_file.flush()
            os.fsync(log_file.fileno())               # on disk before the next trial starts
        if verbose:
            _print_trial(trial, result, n_trials, method)
        if callback is not None:
            callback(trial)

    first = max((t.number for t in result.trials), default=-1) + 1
    try:
        if executor is None and pool is None:
            _loop(searcher, objective, n_trials - len(result.trials), first, catch, finish)
        else:
            workers = n_jobs if pool is not None or n_jobs > 1 else _n_workers(executor)
            _parallel_loop(searcher, objective, n_trials - len(result.trials), first, catch,
                           finish, executor or pool, workers)
    except KeyboardInterrupt:
        result.interrupted = True
    except Exception as e:
        e.partial_result = result
        e.add_note(f"hpopt: the {len(result.trials)} finished trials are on this "
                   "exception's .partial_result")
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=not result.interrupted, cancel_futures=True)
        if log_file:
            log_file.close()
    return result


def _loop(searcher, objective, n_left, number, catch, finish):
    """One trial at a time: ask, evaluate, tell (through finish)."""
    for number in range(number, number + n_left):
        asked = searcher.ask(1)
        if not asked:
            return                                    # a grid has no more points
        t0 = time.perf_counter()
        try:
            outcome = objective(asked[0])
        except catch as e:
            outcome = _Failure(f"{type(e).__name__}: {e}")
        finish(number, asked[0], outcome, time.perf_counter() - t0)


def _parallel_loop(searcher, objective, n_left, number, catch, finish, executor, workers):
    """Keep `workers` trials running: as each finishes, tell it and ask one more."""
    running, exhausted, done_count = {}, False, 0
    while done_count < n_left and (running or not exhausted):
        while not exhausted and len(running) < workers and done_count + len(running) < n_left:
            asked = searcher.ask(1)
            if not asked:
                exhausted = True
                break
            future = executor.submit(_timed_call, objective, asked[0])
            running[future] = (number, asked[0], time.perf_counter())
            number += 1
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: running[f][0]):
            trial_number, params, t0 = running.pop(future)
            try:
                outcome, seconds = future.result()
            except catch as e:
                outcome, seconds = _Failure(f"{type(e).__name__}: {e}"), time.perf_counter() - t0
            finish(trial_number, params, outcome, seconds)
            done_count += 1


@dataclass
class _Failure:
    """An exception caught from the objective, carried to finish() as its message."""
    message: str


def _n_workers(executor):
    if hasattr(executor, "_max_workers"):             # ThreadPool / ProcessPool executors
        return executor._max_workers
    client = getattr(executor, "_client", None)       # dask.distributed's ClientExecutor
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return os.cpu_count() or 1


def _print_trial(trial, result, n_trials, method):
    shown = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in trial.params.items())
    value = f"{trial.value:.4g}" if trial.status == "ok" else f"failed ({trial.error})"
    best = min([t.value for t in result.trials if t.status == "ok"], default=math.inf)
    print(f"{method + ' ' if method else ''}trial {len(result.trials)}/{n_trials}  {shown}  "
          f"-> {value}  best {best:.4g}  {trial.seconds:.2f}s", flush=True)

# ----------------------------------------------------------------------------- conveniences


def grid_search(objective, space, n_points=3, **run_options):
    """Evaluate every point of GridSearch(space, n_points); returns a Result."""
    searcher = GridSearch(space, n_points)
    return run(searcher, objective, len(searcher), method="grid", **run_options)


def _logged_seed(seed, run_options):
    """With resume=True and no seed given, continue with the seed recorded in the log."""
    log = run_options.get("log")
    if seed is not None or not run_options.get("resume") or not log or not os.path.exists(log):
        return seed
    with open(log) as f:
        first = f.readline()
    return json.loads(first).get("seed") if first.strip() else None


def random_search(objective, space, n_trials, seed=None, **run_options):
    """n_trials independent draws from the space; returns a Result."""
    seed = _logged_seed(seed, run_options)
    return run(RandomSearch(space, seed), objective, n_trials, method="random", **run_options)


def bayesian_search(objective, space, n_trials, seed=None, n_initial=None, **run_options):
    """Bayesian optimisation (GP + expected improvement) for n_trials; returns a Result."""
    seed = _logged_seed(seed, run_options)
    return run(BayesianSearch(space, seed, n_initial), objective, n_trials,
               method="bayesian", **run_options)
