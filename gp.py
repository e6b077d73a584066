"""gp.py - Gaussian-process regression and expected improvement, from scratch in NumPy.

What is here, in reading order (the teaching core, then the engineering behind a banner):
  1. kernels: Matern 5/2 and squared exponential (RBF), one length-scale per input (ARD);
  2. GP: fit (GPML Algorithm 2.1) and predict (GPML eqs. 2.25-2.26), with the
     hyperparameters fitted by maximising the log marginal likelihood (GPML eq. 2.30),
     whose gradient is GPML eq. 5.9;
  3. expected improvement for minimisation, and its logarithm;
  below the banner: input checks, the inverse of a triangular L, a Cholesky that adds
  jitter only when it must, a small box-bounded L-BFGS (scipy is not a dependency), a prior
  on the hyperparameters for Bayesian optimisation (bo_log_prior), the normal cdf, and the
  tail series that keeps log EI finite.

References:
  C. E. Rasmussen & C. K. I. Williams, "Gaussian Processes for Machine Learning",
    MIT Press, 2006 ("GPML"). Chapter 2 (regression), Chapter 4 (kernels), Chapter 5.
  D. R. Jones, M. Schonlau & W. J. Welch, "Efficient Global Optimization of Expensive
    Black-Box Functions", Journal of Global Optimization 13, 455-492, 1998.
  S. Ament, S. Daulton, D. Eriksson, M. Balandat & E. Bakshy, "Unexpected Improvements
    to Expected Improvement for Bayesian Optimization", NeurIPS 2023.
  J. Nocedal & S. J. Wright, "Numerical Optimization", 2nd ed., Springer, 2006 (L-BFGS).
Depends on: numpy and the Python standard library only. Licence: MIT.
"""
import math
import warnings

import numpy as np

# A GP in words. A Gaussian process is a distribution over functions f: any finite set of
# values f(x_1..x_n) is jointly Gaussian, with mean 0 and covariance k(x_i, x_j), the kernel.
# The kernel says how alike f is at two points: their covariance is near the variance when
# they are close on the scale of the length-scales, near 0 when far apart. y = f(X) + noise;
# conditioning the Gaussian on y gives, at new points, a Gaussian with the mean and variance
# of GPML eqs. 2.25-2.26 (predict). The length-scales, variance and noise are fitted by
# maximising how probable y is under them, the marginal likelihood (eq. 2.30), over their
# logs (they stay positive, and steps are relative). All of it needs K^-1, done through its
# Cholesky factor L: cheaper and more accurate than an inverse.

# n: observed points  m: query points  d: input dims  p = d + 2: hyperparameters
# X (n, d): observed inputs.  y (n,): observed targets.
# theta (p,) = log([lengthscale_1 .. lengthscale_d, variance, noise]): what the optimiser moves.
# K (n, n) = k(X, X) + noise I = L L^T (Cholesky, L lower-triangular).  alpha (n,) = K^-1 y.
# Ks (n, m) = k(X, X*): the "k*" of GPML, one column per query point.  v (n, m) = L \ Ks.
# mean, std (m,): the posterior of f at the queries.  best: the lowest y so far.
# gain = best - mean - xi (xi >= 0 demands a margin),  z = gain / std.
# Phi, phi: the standard normal cdf and pdf.  "A \ b" means the solution x of A x = b.
# Unlike GPML's Algorithm 2.1, fit first scales the data: each column of X to [0, 1] (by its
# smallest and largest value, as BoTorch's Normalize does) and y to mean 0, std 1, so that
# the BOUNDS and the default hyperparameters below suit data of any units; lengthscale is
# reported in X's units, variance and noise in those of the standardised y.

BOUNDS = {"lengthscale": (1e-3, 1e3), "variance": (1e-3, 1e3), "noise": (1e-6, 1.0)}
# Box for the fitted hyperparameters (the optimiser moves their logs), in the scaled units:
# 1e-3 .. 1e3 is wide on both sides (a judgement, not tuned); the noise floor 1e-6 is
# Optuna's (DEFAULT_MINIMUM_NOISE_VAR) and keeps K conditioned.
N_RESTARTS, N_CANDIDATES, MAX_ITER = 1, 32, 200
# Defaults of the fit: one restart from the best of 32 random draws; `python bench.py gp`
# compares the likelihood and test error reached with scikit-learn's (BENCHMARKS.md).

# ----------------------------------------------------------------------------- kernels
# A stationary kernel depends on x and x' only through r2, their squared distance after
# dividing each input dim by its length-scale (scaled_sq_dist, below the banner).


def matern52_of_r2(r2, derivative=True):
    """Matern 5/2 with unit variance as a function of r2, and its derivative d k / d r2.

    k = (1 + s + s^2/3) exp(-s),  s = sqrt(5 r2)          GPML eq. 4.17 with nu = 5/2
    dk/dr2 = -(5/6) (1 + s) exp(-s)   (finite at r2 = 0: no division by r)
    r2: an array of any shape  returns: k (shape of r2), and dk/dr2 (None unless derivative)
    """
    s = np.sqrt(5.0 * r2)                             # (shape of r2)
    e = np.exp(-s)                                    # (shape of r2)
    k = (1.0 + s * (1.0 + s / 3.0)) * e               # 1 + s + s^2/3, Horner form
    return k, (-(5.0 / 6.0) * (1.0 + s) * e if derivative else None)


def rbf_of_r2(r2, derivative=True):
    """Squared exponential with unit variance: k = exp(-r2 / 2) (GPML eq. 4.9), dk/dr2 = -k/2."""
    k = np.exp(-0.5 * r2)                             # (shape of r2)
    return k, (-0.5 * k if derivative else None)


KERNEL_OF_R2 = {"matern52": matern52_of_r2, "rbf": rbf_of_r2}


def matern52(X1, X2, lengthscale, variance):
    """Matern 5/2 ARD kernel matrix. X1: (n1, d)  X2: (n2, d)  returns: (n1, n2)"""
    return variance * matern52_of_r2(scaled_sq_dist(X1, X2, lengthscale), False)[0]


def rbf(X1, X2, lengthscale, variance):
    """Squared-exponential ARD kernel matrix. X1: (n1, d)  X2: (n2, d)  returns: (n1, n2)"""
    return variance * rbf_of_r2(scaled_sq_dist(X1, X2, lengthscale), False)[0]

# ----------------------------------------------------------------------------- the GP


class GP:
    """Gaussian-process regression: exact inference by Cholesky (GPML Algorithm 2.1).

    kernel: "matern52" or "rbf" (ARD); lengthscale (scalar or (d,), in X's units; default:
    the span of each column), variance, noise (in standardised-y units: defaults 1 and the
    noise floor): the starting (or, with optimize=False, fixed) hyperparameters.
    After fit, the fitted values sit in the same attributes (lengthscale is then (d,)), so
    a second fit of the same GP starts from them: a fit is a function of the data, the
    starting values and fit's rng alone (hpopt makes a new GP for each fit).
    n_restarts: extra optimiser starts, chosen as the best of n_candidates random draws.
    log_prior: None (maximum likelihood), or a function theta -> (log density, gradient)
    to fit by maximum a posteriori instead, such as bo_log_prior.
    """

    def __init__(self, kernel="matern52", lengthscale=None, variance=1.0, noise=BOUNDS["noise"][0],
                 optimize=True, n_restarts=N_RESTARTS, n_candidates=N_CANDIDATES,
                 log_prior=None, max_iter=MAX_ITER):
        _check_hyperparameters(kernel, lengthscale, variance, noise, n_restarts)
        self.lengthscale = None if lengthscale is None else np.asarray(lengthscale, dtype=float)
        self.variance, self.noise = float(variance), float(noise)   # lengthscale: () or (d,)
        self.kernel, self.optimize = kernel, optimize
        self.n_restarts, self.n_candidates = n_restarts, n_candidates
        self.log_prior, self.max_iter, self.X = log_prior, max_iter, None

    def fit(self, X, y, rng=None):
        """Scale X and y, fit theta (if optimize), factor K: GPML Alg. 2.1, lines 2-3.

        theta maximises the log marginal likelihood (plus log_prior, if given): _fit_theta.
        rng: a numpy Generator for the random restarts (None: a Generator seeded with 0).
        X: (n, d)  y: (n,)  returns: self, holding L (n, n), L_inv = L^-1 and alpha (n,)
        """
        X, y = _check_X(X), _check_y(y, X, self.lengthscale)  # (n, d), (n,)
        n, d = X.shape
        self.x_low, x_span = X.min(axis=0), np.ptp(X, axis=0)  # (d,), (d,)
        self.x_span = np.where(x_span > 0, x_span, 1.0)  # (d,) a constant column: 1
        X = (X - self.x_low) / self.x_span            # (n, d) in the unit cube of the data
        y_max = np.max(np.abs(y)) or 1.0              # divide by y_max first: the std of
        mean, std = np.mean(y / y_max), np.std(y / y_max)  # y ~ 1e154 overflows, 1e-170 underflows
        self.y_mean, self.y_scale = mean * y_max, std * y_max if std > 0 else 1.0  # constant y
        y_std = (y - self.y_mean) / self.y_scale      # (n,) mean 0, std 1
        sq_diffs = (X[:, None, :] - X[None, :, :]) ** 2  # (n, n, d) reused by every LML call
        kernel_of_r2 = KERNEL_OF_R2[self.kernel]
        ell = self.x_span if self.lengthscale is None else self.lengthscale  # () or (d,)
        theta = np.log(np.concatenate([np.broadcast_to(ell, d) / self.x_span,
                                       [self.variance, self.noise]]))  # (p,) scaled units
        if self.optimize:
            theta = self._fit_theta(theta, sq_diffs, y_std, kernel_of_r2, rng)
        self.lengthscale, self.variance, self.noise = (
            np.exp(theta[:d]) * self.x_span, float(np.exp(theta[d])), float(np.exp(theta[d + 1])))
        r2 = sq_diffs @ np.exp(-2 * theta[:d])        # (n, n) r2 from sq_diffs, as the LML
        # computes it; predict has no sq_diffs and uses scaled_sq_dist (the same r2)
        K = self.variance * kernel_of_r2(r2, False)[0]  # (n, n)
        # cholesky adds jitter to the diagonal only if K + noise I is not numerically
        # positive definite (see below the banner); self.jitter says how much it added.
        self.L, self.jitter = cholesky(K + self.noise * np.eye(n))  # (n, n)  Alg. 2.1, line 2
        self.L_inv = inverse_lower(self.L)            # (n, n) kept: predict's line 5 is a product
        # (an inverse, not GPML's solves: NumPy has no triangular solve; see inverse_lower)
        self.alpha = self.L_inv.T @ (self.L_inv @ y_std)  # (n,)  line 3: L^T \ (L \ y)
        self.X, self.y_std, self.theta = X, y_std, theta
        return self

    def _fit_theta(self, theta0, sq_diffs, y, kernel_of_r2, rng):
        """Maximise the LML (plus log_prior) over theta inside BOUNDS, from several starts.

        Starts: theta0 and the n_restarts best of n_candidates random draws, ranked by
        their LML; each is climbed by L-BFGS (minimize_box, below).
        sq_diffs: (n, n, d)  y: (n,)  theta0: (p,)  returns: the best theta (p,)
        """
        d = sq_diffs.shape[2]
        bounds = [BOUNDS["lengthscale"]] * d + [BOUNDS["variance"], BOUNDS["noise"]]
        lower, upper = np.log(np.array(bounds)).T    # (p,), (p,)
        rng = np.random.default_rng(0) if rng is None else rng
        candidates = rng.uniform(lower, upper, size=(self.n_candidates, len(lower)))  # (n_cand, p)
        candidates[:, d] = 0.0                        # y is standardised: start variance at 1
        screened = [log_marginal_likelihood(c, sq_diffs, y, kernel_of_r2, False)[0]
                    + (self.log_prior(c)[0] if self.log_prior else 0.0)
                    for c in candidates] if self.n_restarts else []
        starts = [theta0] + [candidates[i] for i in np.argsort(screened)[::-1][:self.n_restarts]]

        def negative_lml(t):                          # (plus the prior's log density)
            lml, grad = log_marginal_likelihood(t, sq_diffs, y, kernel_of_r2)
            if self.log_prior is not None:
                lp, lp_grad = self.log_prior(t)
                lml, grad = lml + lp, grad + lp_grad
            return (-lml, -grad) if np.isfinite(lml) else (np.inf, grad)

        fits = [minimize_box(negative_lml, s, lower, upper, self.max_iter) for s in starts]
        return min(fits, key=lambda fit: fit[1])[0]

    def predict(self, X, return_std=False):
        """Posterior mean (and std) of the latent f at X, in y's units.

        mean = k*^T alpha                      GPML eq. 2.25 (Alg. 2.1, line 4)
        var  = k(x*, x*) - v^T v,  v = L \\ k*   GPML eq. 2.26 (lines 5-6); no noise term
        X: (m, d)  returns: mean (m,), or (mean (m,), std (m,))
        """
        if self.X is None:
            raise ValueError("predict called before fit")
        X = (_check_X(X, self.X.shape[1]) - self.x_low) / self.x_span  # (m, d) as in fit
        r2 = scaled_sq_dist(self.X, X, self.lengthscale / self.x_span)  # (n, m)
        Ks = self.variance * KERNEL_OF_R2[self.kernel](r2, False)[0]  # (n, m)  k* per column
        mean = Ks.T @ self.alpha                      # (m,)  line 4: k*^T alpha
        if not return_std:
            return mean * self.y_scale + self.y_mean  # (m,) back in y's units
        v = self.L_inv @ Ks                           # (n, m)  line 5: L \ k*, by the kept L^-1
        # line 6, with k(x*, x*) = variance; rounding can take it just below 0
        var = np.maximum(self.variance - np.einsum("ij,ij->j", v, v), 0.0)  # (m,)
        return mean * self.y_scale + self.y_mean, np.sqrt(var) * self.y_scale  # (m,), (m,)

    def log_marginal_likelihood(self, theta=None, eval_gradient=False):
        """LML of the fitted (standardised) data at the fitted theta, or at `theta` (p,).

        log p(y | X) = -1/2 y^T alpha - sum_i log L_ii - n/2 log 2 pi   (GPML eq. 2.30;
        computed by the function log_marginal_likelihood just below, with its gradient).
        With eval_gradient=True returns (lml, gradient (p,)), the optimiser's objective.
        """
        if self.X is None:
            raise ValueError("log_marginal_likelihood called before fit")
        theta = self.theta if theta is None else np.asarray(theta, dtype=float)  # (p,)
        sq_diffs = (self.X[:, None, :] - self.X[None, :, :]) ** 2  # (n, n, d)
        lml, grad = log_marginal_likelihood(theta, sq_diffs, self.y_std,
                                            KERNEL_OF_R2[self.kernel], eval_gradient)
        return (lml, grad) if eval_gradient else lml

# ----------------------------------------------------------------------------- likelihood


def log_marginal_likelihood(theta, sq_diffs, y, kernel_of_r2, eval_gradient=True):
    """log p(y | X, theta) and its gradient with respect to theta (log hyperparameters).

    log p = -1/2 y^T alpha - sum_i log L_ii - n/2 log 2 pi     GPML eq. 2.30 (Alg. 2.1, l. 7)
    d log p / d theta_j = 1/2 tr((alpha alpha^T - K^-1) dK/dtheta_j)        GPML eq. 5.9
    sq_diffs: (n, n, d) squared input differences (X_ik - X_jk)^2, computed once per fit
    y: (n,)  returns: lml (float; -inf if K cannot be factored), gradient (p,) or None
    """
    n, d = len(y), sq_diffs.shape[2]
    lengthscale, variance, noise = np.exp(theta[:d]), np.exp(theta[d]), np.exp(theta[d + 1])
    k, dk_dr2 = kernel_of_r2(sq_diffs @ (1 / lengthscale ** 2), eval_gradient)  # (n, n) each
    try:
        L = np.linalg.cholesky(variance * k + noise * np.eye(n))  # (n, n)  Alg. 2.1, line 2
    except np.linalg.LinAlgError:                     # the optimiser stepped where K is not
        return -np.inf, np.zeros(len(theta))          # positive definite: reject that theta
    L_inv = inverse_lower(L)                          # (n, n)  eq. 5.9 needs K^-1 = L^-T L^-1
    alpha = L_inv.T @ (L_inv @ y)                     # (n,)  line 3: L^T \ (L \ y)
    lml = -0.5 * y @ alpha - np.log(np.diag(L)).sum() - 0.5 * n * math.log(2 * math.pi)  # l. 7
    if not eval_gradient:
        return lml, None
    W = np.outer(alpha, alpha) - L_inv.T @ L_inv      # (n, n)  alpha alpha^T - K^-1
    # dK/dlog(l_k) = variance * dk/dr2 * dr2/dlog(l_k),  dr2/dlog(l_k) = -2 (x_ik-x_jk)^2 / l_k^2;
    # eq. 5.9's 1/2 times that -2 is the -1 below, and tr(W dK) = sum_ij W_ij dK_ij, one
    # product over the flattened (n, n) pairs for all d length-scales at once
    grad_lengthscale = -variance * ((W * dk_dr2).reshape(-1) @ sq_diffs.reshape(-1, d)) \
        / lengthscale ** 2                            # (d,)
    grad_variance = 0.5 * variance * np.sum(W * k)    # dK/dlog(variance) = variance * k
    grad_noise = 0.5 * noise * np.trace(W)            # dK/dlog(noise) = noise * I
    return lml, np.concatenate([grad_lengthscale, [grad_variance, grad_noise]])  # (p,)

# ----------------------------------------------------------------------------- acquisition


def expected_improvement(mean, std, best, xi=0.0):
    """How much a point is expected to beat `best` (lower is better).

    EI = gain * Phi(z) + std * phi(z),  gain = best - mean - xi,  z = gain / std
    Source: Jones, Schonlau & Welch (1998), eq. 15 (written there for minimisation), which
    is xi = 0; xi > 0, a margin the gain must exceed, is a later addition for exploration.
    mean, std: (m,) (or broadcastable)   best, xi: float   returns: (m,)
    """
    mean, std = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(std, dtype=float))
    gain = best - mean - xi                           # (m,)
    safe_std = np.where(std > 0, std, 1.0)            # (m,) 1 where std = 0: no 0 / 0
    z = gain / safe_std                               # (m,)
    exploit = gain * normal_cdf(z)                    # (m,) the mean's expected gain
    explore = safe_std * normal_pdf(z)                # (m,) the uncertainty's share
    ei = np.maximum(exploit + explore, 0.0)           # (m,) rounding can dip below 0 far out
    return np.where(std > 0, ei, np.maximum(gain, 0.0))  # (m,) std -> 0 limit


def log_expected_improvement(mean, std, best, xi=0.0):
    """log EI, finite where EI itself underflows to 0 (Ament et al. 2023, "LogEI").

    log EI = log(std) + log h(z),  h(z) = phi(z) + z Phi(z),  z = (best - mean - xi) / std
    (EI = std * h(z) is the formula above.) std = 0 gives log(max(gain, 0)), -inf if no gain.
    mean, std: (m,)   best, xi: float   returns: (m,)
    """
    mean, std = np.broadcast_arrays(np.asarray(mean, dtype=float), np.asarray(std, dtype=float))
    gain = best - mean - xi                           # (m,)
    safe_std = np.where(std > 0, std, 1.0)            # (m,)
    with np.errstate(divide="ignore"):                # log(0) = -inf is the right answer
        return np.where(std > 0, np.log(safe_std) + log_h(gain / safe_std),
                        np.log(np.maximum(gain, 0.0)))  # (m,)


LOG_H_DIRECT_ABOVE = -1.0
# Above z = -1, phi + z Phi barely cancels (h(-1) = 0.083, phi(-1) = 0.24): log h as written
# equals 50-digit mpmath at z = -1. Below, log_h_tail, which avoids the cancellation.


def log_h(z):
    """log h(z) = log(phi(z) + z Phi(z)), finite and accurate for every z.

    Above LOG_H_DIRECT_ABOVE as written; below, phi(z) and z Phi(z) nearly cancel and both
    underflow (z < -38), so log_h_tail rewrites h (Ament et al. 2023, below the banner).
    z: (m,)  returns: (m,)
    """
    z = np.asarray(z, dtype=float)                    # (m,)
    out, direct = np.empty_like(z), z > LOG_H_DIRECT_ABOVE  # (m,), (m,)
    out[direct] = np.log(normal_pdf(z[direct]) + z[direct] * normal_cdf(z[direct]))
    out[~direct] = log_h_tail(z[~direct])
    return out


# ---- engineering: safe to skip on a first read ----


def _check_hyperparameters(kernel, lengthscale, variance, noise, n_restarts):
    """GP's constructor arguments: raise ValueError naming the bad one."""
    if kernel not in KERNEL_OF_R2:
        raise ValueError(f"kernel must be one of {list(KERNEL_OF_R2)}; got {kernel!r}")
    for name, value in [("lengthscale", lengthscale), ("variance", variance), ("noise", noise)]:
        v = np.asarray(1.0 if value is None else value, dtype=float)  # () or (d,)
        if v.ndim > 1 or not np.all(np.isfinite(v)) or not np.all(v > 0):
            raise ValueError(f"{name} must be positive and finite; got {value!r}")
    if not isinstance(n_restarts, int) or n_restarts < 0:
        raise ValueError(f"n_restarts must be an int >= 0; got {n_restarts!r}")


def _check_X(X, d=None):
    """X as a finite float array (n, d), n, d >= 1 (d columns, if given), or a ValueError."""
    X = np.asarray(X, dtype=float)                    # (n, d)
    if X.ndim != 2 or 0 in X.shape or X.shape[1] != (d or X.shape[1]):
        raise ValueError(f"X must be 2-D (n, d) with at least one row and one column"
                         f"{f', and d={d} as fitted' if d else ''}; got shape {X.shape}, "
                         f"d={X.shape[-1] if X.ndim else 0}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or inf")
    return X


def _check_y(y, X, lengthscale):
    """fit's y (n,), one finite value per row of X (n, d), for a lengthscale of 1 or d entries."""
    y = np.asarray(y, dtype=float)                    # (n,)
    if y.ndim != 1 or len(y) != len(X) or not np.all(np.isfinite(y)):
        raise ValueError(f"y must be 1-D with one value per row of X ({len(X)}), without NaN "
                         f"or inf; got shape {y.shape}")
    if lengthscale is not None and np.size(lengthscale) not in (1, X.shape[1]):
        raise ValueError(f"lengthscale has {len(lengthscale)} entries but X has "
                         f"d={X.shape[1]} columns")
    return y


CANCELLATION_RTOL = 1e-6
# In scaled_sq_dist, entries below this fraction of max |a|^2 + max |b|^2 are recomputed:
# the product form's rounding error there is ~1e-16 of it, so every entry keeps ~10 digits.


def scaled_sq_dist(X1, X2, lengthscale):
    """Squared distance after dividing each input dim by its length-scale.

    r2_ij = sum_k (X1_ik - X2_jk)^2 / lengthscale_k^2 = |a_i|^2 + |b_j|^2 - 2 a_i . b_j,
    the last form as one matrix product (fast for predict's large m). Nearby points lose
    digits to cancellation in it, so they are recomputed from the differences: identical
    points give exactly 0.
    X1: (n1, d)  X2: (n2, d)  lengthscale: (d,)  returns: (n1, n2)
    """
    A, B = X1 / lengthscale, X2 / lengthscale         # (n1, d), (n2, d)
    a2, b2 = np.einsum("ij,ij->i", A, A), np.einsum("ij,ij->i", B, B)  # (n1,), (n2,)
    r2 = (-2 * A) @ B.T                               # (n1, n2)
    r2 += a2[:, None]
    r2 += b2[None, :]
    i, j = np.nonzero(r2 < CANCELLATION_RTOL * (a2.max() + b2.max()))  # (k,), (k,)
    r2[i, j] = np.sum((A[i] - B[j]) ** 2, axis=1)
    return r2


INVERSE_BLOCK = 32
# At or below this size inverse_lower inverts densely: dense inverses of small blocks cost
# less than more levels of halving; `python bench.py inverse` times blocks of 16, 32 and 64.


def inverse_lower(L):
    """L^-1 for lower-triangular L, by halves: with L = [A 0; C D] (A, D square),

        L^-1 = [A^-1 0; -D^-1 C A^-1  D^-1]      (multiply it out: L L^-1 = I)

    so two half-size inverses and two products; blocks of INVERSE_BLOCK or less are
    inverted densely. About 2 n^3 / 3 flops, twice a textbook substitution's (the products
    do not skip the zeros), nearly all in matrix products at BLAS speed (numpy has no
    triangular solve; scipy is not a dependency). A product with L^-1 has a forward error
    of the order of substitution's, cond(L) times the rounding unit; the noise floor in
    BOUNDS keeps cond(K) = cond(L)^2 below about n x 1e9.
    L: (n, n)  returns: L^-1 (n, n), lower-triangular
    """
    n = len(L)
    if n <= INVERSE_BLOCK:
        return np.tril(np.linalg.inv(L))             # (n, n) tril: exact zeros above
    h = n // 2
    A_inv, D_inv = inverse_lower(L[:h, :h]), inverse_lower(L[h:, h:])  # (h, h), (n-h, n-h)
    L_inv = np.zeros_like(L)                          # (n, n) below: the blocks of L^-1
    L_inv[:h, :h], L_inv[h:, h:], L_inv[h:, :h] = A_inv, D_inv, -D_inv @ (L[h:, :h] @ A_inv)
    return L_inv


FIRST_JITTER, MAX_JITTER = 1e-10, 1e-4
# Relative to mean(diag K), as GPy's jitchol does (it starts at 1e-6). Not tuned: 1e-10 barely
# changes a well-posed K, and beyond 1e-4 the added "noise" would change the model itself.


def cholesky(K, max_jitter=MAX_JITTER):
    """Lower Cholesky factor of K, adding jitter * mean(diag K) to the diagonal if needed.

    Jitter tries 0, then FIRST_JITTER, 10 x that, ... up to max_jitter, warning if used.
    We differ from GPML Alg. 2.1 (no jitter) so that a K singular to rounding still factors:
    duplicate points, or a very long length-scale, with a noise near the rounding unit of
    the variance (BOUNDS keep a fitted theta far from that; a fixed noise with
    optimize=False need not).
    The likelihood the fit maximises (log_marginal_likelihood) adds none: it rejects such
    theta.
    K: (n, n)  returns: L (n, n), the jitter used (relative)
    """
    scale = np.mean(np.diag(K))
    exponents = range(round(math.log10(FIRST_JITTER)), 1 + round(math.log10(max_jitter)))
    for jitter in [0.0] + [10.0 ** e for e in exponents]:
        try:
            L = np.linalg.cholesky(K + jitter * scale * np.eye(len(K)))  # (n, n)
        except np.linalg.LinAlgError:
            continue
        if jitter:
            warnings.warn(f"K was not positive definite; added jitter {jitter:g} x mean(diag K)")
        return L, jitter
    raise ValueError(f"Cholesky failed for n={len(K)} points even with jitter "
                     f"{max_jitter:g} x mean(diag K); are there NaNs or huge values?")


LBFGS_MEMORY, GRAD_TOL, F_RTOL = 10, 1e-5, 1e-7
# memory and the projected-gradient tolerance are scipy's L-BFGS-B defaults (m, pgtol). Stop
# when a step improves f by under 1e-7 relative (`python bench.py gp` compares the LML reached).
ARMIJO_C1, MIN_STEP, MIN_CURVATURE = 1e-4, 1e-10, 1e-12
# c1 = 1e-4 as Nocedal & Wright suggest (Sec. 3.1); a step below 1e-10 makes no progress;
# a pair (s, y) is kept only if s^T y > 1e-12, so the L-BFGS matrix stays positive definite.


def minimize_box(f, x0, lower, upper, max_iter=MAX_ITER):
    """Minimise f(x) -> (value, gradient) over the box lower <= x <= upper.

    L-BFGS direction (Nocedal & Wright Alg. 7.4, the two-loop recursion) on the variables
    that are not held at a bound, a projected step and a backtracking (Armijo) line search
    that steps back to the minimiser of a parabola (N&W Sec. 3.5).
    Pairs with s^T y > 0 keep the L-BFGS matrix positive definite, so the direction is one
    of descent; the check below (start over without pairs) is for rounding.
    x0, lower, upper: (p,)  returns: x (p,), f(x)
    """
    x = np.clip(x0, lower, upper)                     # (p,)
    fx, g = f(x)
    pairs = []                                        # (step s, gradient change y): (p,) each
    for _ in range(max_iter):
        held = ((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0))  # (p,)
        pg = np.where(held, 0.0, g)                   # (p,) projected gradient
        if np.max(np.abs(pg)) < GRAD_TOL:
            break
        q, coeffs = pg.copy(), []                     # (p,) two-loop recursion: q -> H q
        for s, yv in reversed(pairs):
            a = (s @ q) / (yv @ s)
            q -= a * yv
            coeffs.append(a)
        if pairs:
            s, yv = pairs[-1]
            q *= (s @ yv) / (yv @ yv)                 # initial Hessian scale, N&W eq. 7.20
        for (s, yv), a in zip(pairs, reversed(coeffs)):
            q += s * (a - (yv @ q) / (yv @ s))
        direction = np.where(held, 0.0, -q)           # (p,)
        if direction @ pg >= 0:                       # not a descent direction: restart
            direction, pairs = -pg, []
        step = 1.0 if pairs else min(1.0, 1.0 / np.max(np.abs(pg)))
        while step > MIN_STEP:
            x_new = np.clip(x + step * direction, lower, upper)  # (p,)
            f_new, g_new = f(x_new)
            slope = g @ (x_new - x)                   # f's first-order change: < 0 unless
            if f_new <= fx + ARMIJO_C1 * slope:       # the box clipped the step's downhill part
                break                                 # Armijo sufficient decrease
            # minimiser of the parabola through f(x), slope and f_new (N&W eqs. 3.57-3.58)
            step *= np.clip(-slope / (2 * (f_new - fx - slope)), 0.1, 0.5)
        else:
            break                                     # no progress possible
        s, yv = x_new - x, g_new - g                  # (p,), (p,)
        if s @ yv > MIN_CURVATURE:                    # keep the pair only if curvature > 0
            pairs = (pairs + [(s, yv)])[-LBFGS_MEMORY:]
        done = fx - f_new < F_RTOL * max(1.0, abs(fx))
        x, fx, g = x_new, f_new, g_new
        if done:
            break
    return x, fx


LENGTHSCALE_PRIOR_WEIGHT, VARIANCE_GAMMA, NOISE_GAMMA = 0.1, (2.0, 1.0), (1.1, 30.0)
# Optuna's GPSampler prior (optuna/_gp/prior.py): weight of (lambda + 1/lambda) on each
# length-scale, and (shape, rate) of the Gamma priors on the variance and the noise.


def bo_log_prior(theta):
    """A prior for Bayesian optimisation: log density up to a constant, and its gradient.

    Each length-scale l: -0.1 (lambda + 1 / lambda) with lambda = 1 / l^2 (peaks at l = 1,
    the span of the data, which fit scales to [0, 1], and forbids tiny l); variance ~ Gamma(2, 1); noise ~
    Gamma(1.1, 30): the defaults of Optuna's GPSampler (optuna/_gp/prior.py). As there,
    these are log densities of lambda, variance and noise themselves, added to the LML
    over theta = their logs without the change-of-variables term, so the implied prior on
    theta is not exactly these Gammas.
    With few points in several dims, maximum likelihood often explains the data as
    independent values (a tiny l, or all noise); the prior keeps the fit to a smooth trend.
    theta: (p,) = log([lengthscales (d,), variance, noise])  returns: float, (p,)
    """
    d = len(theta) - 2
    lam = np.exp(-2 * theta[:d])                      # (d,) inverse squared length-scales
    value = -LENGTHSCALE_PRIOR_WEIGHT * float(np.sum(lam + 1 / lam))
    grad = np.concatenate([2 * LENGTHSCALE_PRIOR_WEIGHT * (lam - 1 / lam), [0.0, 0.0]])  # (p,)
    for i, (shape, rate) in [(d, VARIANCE_GAMMA), (d + 1, NOISE_GAMMA)]:
        x = math.exp(theta[i])                        # Gamma: (shape - 1) log x - rate x
        value += (shape - 1) * theta[i] - rate * x
        grad[i] = (shape - 1) - rate * x              # d / d log x
    return value, grad


_erfc_object = np.frompyfunc(math.erfc, 1, 1)   # numpy has no erf; math.erfc is ~1 ulp


def erfc(x):
    """Complementary error function, elementwise, through math.erfc. x: any shape"""
    return np.asarray(_erfc_object(np.asarray(x, dtype=float)), dtype=float)  # shape of x


def normal_cdf(z):
    """Phi(z) = erfc(-z / sqrt 2) / 2, accurate in both tails. z: any shape"""
    return 0.5 * erfc(-np.asarray(z, dtype=float) / math.sqrt(2))  # shape of z


def normal_pdf(z):
    """phi(z) = exp(-z^2 / 2) / sqrt(2 pi). z: any shape"""
    return np.exp(-0.5 * np.asarray(z, dtype=float) ** 2) / math.sqrt(2 * math.pi)  # shape of z


SERIES_ABOVE_X, SERIES_TERMS = 10.0, 24
# log_h_tail uses the series for x >= 10: there t = 1/(2x^2) <= 0.005 and the first omitted
# term (k = 25) is at most 2e-26 in size, 3.5e-24 relative to the sum; on both sides log_h
# agrees with 60-digit mpmath to 1e-12 for z in [-1000, -1] (a test checks it).


def log_h_tail(z):
    """log(phi(z) + z Phi(z)) for z <= -1, without cancellation (after Ament et al. 2023).

    h = phi(z) (1 - x sqrt(pi) erfcx(x)) with x = -z / sqrt 2 and erfcx(x) = exp(x^2) erfc(x);
    the bracket is computed directly for x < SERIES_ABOVE_X and from its asymptotic series
    sum_{k>=1} (-1)^(k+1) (2k-1)!! / (2x^2)^k beyond (no 1 - 1 loss, no overflow of exp).
    z: (k,)  returns: (k,)
    """
    x = -z / math.sqrt(2)                             # (k,) all >= 0.707
    bracket = np.empty_like(x)                        # (k,)
    near = x < SERIES_ABOVE_X                         # (k,)
    xn = x[near]                                      # (k1,)
    bracket[near] = 1 - math.sqrt(math.pi) * xn * np.exp(xn * xn) * erfc(xn)
    t = 1 / (2 * x[~near] ** 2)                       # (k2,) <= 0.005; the series is asymptotic:
    # its terms shrink while k < x^2 (>= 100 here) and grow after, so SERIES_TERMS suffice
    term, series = t.copy(), t.copy()                 # (k2,), (k2,)
    for k in range(2, SERIES_TERMS + 1):
        term = -term * (2 * k - 1) * t
        series += term
    bracket[~near] = series
    return -x * x - 0.5 * math.log(2 * math.pi) + np.log(bracket)  # (k,) log phi(z) = -x^2 - ...
