"""Tests for gp.py, hpopt.py, nn.py, demo.py and README.md.

Each test checks a claim against an independent computation: a dense numpy.linalg formula,
central finite differences, a Monte-Carlo average, a brute-force search, or the plain
NumPy reference. Run: python -m pytest -q
"""
import collections
import concurrent.futures
import copy
import functools
import json
import math
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import gp
import hpopt
import nn

settings.register_profile("hpopt", deadline=None, max_examples=25, derandomize=True)
settings.load_profile("hpopt")
HERE = os.path.dirname(os.path.abspath(__file__))
finite = dict(allow_nan=False, allow_infinity=False)


# ============================================================================ gp.py

def dense_matern52(X1, X2, lengthscale, variance):
    """Matern 5/2 straight from its formula (GPML eq. 4.17), by Euclidean norms."""
    r = np.linalg.norm((X1[:, None, :] - X2[None, :, :]) / lengthscale, axis=2)
    return variance * (1 + math.sqrt(5) * r + 5 * r ** 2 / 3) * np.exp(-math.sqrt(5) * r)


@given(st.integers(1, 8), st.integers(1, 3), st.integers(0, 10 ** 6),
       st.floats(0.05, 5.0), st.sampled_from(["matern52", "rbf"]))
def test_kernel_matrices_are_symmetric_positive_semidefinite(n, d, seed, ell, name):
    X = np.random.default_rng(seed).uniform(size=(n, d))
    K = getattr(gp, name)(X, X, np.full(d, ell), 2.0)
    assert np.allclose(K, K.T, rtol=0, atol=1e-14)
    assert np.linalg.eigvalsh(K).min() > -1e-10 * n
    assert np.all(np.diag(K) == 2.0)                  # zero distance is exactly the variance


@pytest.mark.parametrize("r", [0.0, 0.3, 1.0, 2.5])
def test_kernels_equal_their_closed_forms(r):
    X1, X2, ell = np.array([[0.0, 0.0]]), np.array([[0.6 * r, 0.8 * r]]), np.array([1.0, 1.0])
    s = math.sqrt(5) * r
    assert gp.matern52(X1, X2, ell, 1.5)[0, 0] == pytest.approx(
        1.5 * (1 + s + s * s / 3) * math.exp(-s), rel=1e-13)
    assert gp.rbf(X1, X2, ell, 1.5)[0, 0] == pytest.approx(1.5 * math.exp(-r * r / 2), rel=1e-13)


@given(st.integers(1, 150), st.integers(0, 10 ** 6))
def test_inverse_of_a_cholesky_factor_matches_numpy_inv(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 3))
    L = np.linalg.cholesky(gp.matern52(X, X, np.full(3, 0.3), 1.0) + 1e-3 * np.eye(n))  # (n, n)
    L_inv = gp.inverse_lower(L)
    assert np.allclose(L_inv, np.linalg.inv(L), rtol=1e-9, atol=1e-9 * np.abs(L_inv).max())
    assert np.array_equal(L_inv, np.tril(L_inv))     # lower-triangular, exact zeros above


@given(st.integers(1, 10), st.integers(1, 3), st.integers(0, 10 ** 6))
def test_fixed_hyperparameter_posterior_matches_dense_inverse_formula(n, d, seed):
    rng = np.random.default_rng(seed)
    X, Xq = rng.uniform(size=(n, d)), rng.uniform(size=(7, d))
    y = rng.standard_normal(n) * 3 + 1
    ell, var, noise = rng.uniform(0.2, 2, size=d), 1.7, 0.05
    model = gp.GP(lengthscale=ell, variance=var, noise=noise, optimize=False).fit(X, y)
    mu, sd = y.mean(), y.std() if y.std() > 0 else 1.0
    ys = (y - mu) / sd
    K_inv = np.linalg.inv(dense_matern52(X, X, ell, var) + noise * np.eye(n))
    Ks = dense_matern52(X, Xq, ell, var)
    mean, std = model.predict(Xq, return_std=True)
    assert np.allclose(mean, mu + sd * Ks.T @ K_inv @ ys, rtol=1e-8, atol=1e-10)
    assert np.allclose(std, sd * np.sqrt(np.maximum(var - np.sum(Ks * (K_inv @ Ks), 0), 0)),
                       rtol=1e-7, atol=1e-7)
    logdet = np.linalg.slogdet(dense_matern52(X, X, ell, var) + noise * np.eye(n))[1]
    lml = -0.5 * ys @ K_inv @ ys - 0.5 * logdet - 0.5 * n * math.log(2 * math.pi)
    assert model.log_marginal_likelihood() == pytest.approx(lml, rel=1e-8, abs=1e-10)


@given(st.integers(2, 12), st.integers(1, 3), st.integers(0, 10 ** 6),
       st.sampled_from(["matern52", "rbf"]))
def test_lml_gradient_matches_central_differences(n, d, seed, kernel):
    rng = np.random.default_rng(seed)
    X, y = rng.uniform(size=(n, d)), rng.standard_normal(n)
    model = gp.GP(kernel, optimize=False).fit(X, y)
    theta = np.concatenate([rng.uniform(-1.5, 1, d), [rng.uniform(-1, 1), rng.uniform(-6, -1)]])
    _, grad = model.log_marginal_likelihood(theta, eval_gradient=True)
    h = 1e-6
    fd = [(model.log_marginal_likelihood(theta + h * e) - model.log_marginal_likelihood(theta - h * e))
          / (2 * h) for e in np.eye(len(theta))]
    assert np.allclose(grad, fd, rtol=1e-5, atol=1e-6)


@given(st.lists(st.floats(-4, 4), min_size=4, max_size=4))
def test_bo_prior_gradient_matches_central_differences(theta):
    theta = np.array(theta)
    _, grad = gp.bo_log_prior(theta)
    h = 1e-6
    fd = [(gp.bo_log_prior(theta + h * e)[0] - gp.bo_log_prior(theta - h * e)[0]) / (2 * h)
          for e in np.eye(4)]
    assert np.allclose(grad, fd, rtol=1e-5, atol=1e-5)


def test_a_map_fit_beats_its_start_and_keeps_length_scales_away_from_zero():
    X, y = _toy_data(n=12, d=5)
    model = gp.GP(log_prior=gp.bo_log_prior)
    start = gp.GP(optimize=False).fit(X, y)
    posterior = lambda m, t: m.log_marginal_likelihood(t) + gp.bo_log_prior(t)[0]
    model.fit(X, y)
    assert posterior(model, model.theta) >= posterior(start, start.theta)
    assert np.all(model.lengthscale > 0.05)


def _toy_data(n=30, d=3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, d))
    return X, np.sin(6 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * rng.standard_normal(n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_never_lowers_the_lml_and_ends_at_a_stationary_point_or_bound(seed):
    X, y = _toy_data(seed=seed)
    start = gp.GP(optimize=False).fit(X, y).log_marginal_likelihood()
    model = gp.GP().fit(X, y)
    assert model.log_marginal_likelihood() >= start
    lml, grad = model.log_marginal_likelihood(model.theta, eval_gradient=True)
    lower, upper = np.log(np.array([gp.BOUNDS["lengthscale"]] * 3
                                   + [gp.BOUNDS["variance"], gp.BOUNDS["noise"]])).T
    on_bound = (np.isclose(model.theta, lower) & (grad < 0)) | (np.isclose(model.theta, upper) & (grad > 0))
    assert np.all(on_bound | (np.abs(grad) < 1e-2 * max(1, abs(lml)) ** 0.5))


def test_the_line_search_steps_back_to_the_minimum_of_a_parabola():
    # f = 100 (x - 0.3)^2 from x = 0: the first trial step overshoots to x = 1 (f = 49); the
    # parabola through f(0) = 9, f'(0) = -60 and f(1) = 49 is f itself, so its minimum 0.3
    # is the next point tried (halving would try 0.5)
    tried = []

    def f(x):
        tried.append(float(x[0]))
        return 100 * (x[0] - 0.3) ** 2, np.array([200 * (x[0] - 0.3)])
    x, fx = gp.minimize_box(f, np.array([0.0]), np.array([-5.0]), np.array([5.0]))
    assert tried[:3] == pytest.approx([0.0, 1.0, 0.3])
    assert x[0] == pytest.approx(0.3) and fx == pytest.approx(0.0, abs=1e-20)


def test_a_gp_refitted_on_more_columns_fits_them_all():
    X, y = _toy_data()
    model = gp.GP().fit(X[:, :1], y)                  # its (1,) length-scale fits any d
    model.fit(X, y)
    assert model.lengthscale.shape == (3,) and np.isfinite(model.log_marginal_likelihood())


def test_noise_free_fit_interpolates_and_variance_stays_below_prior():
    X, y = _toy_data(n=15)
    model = gp.GP(noise=1e-10, optimize=False).fit(X, y)
    mean, std = model.predict(X, return_std=True)
    assert np.allclose(mean, y, atol=1e-5 * y.std())
    assert np.all(std < 1e-3 * y.std())
    _, std_far = model.predict(np.random.default_rng(0).uniform(-2, 3, size=(500, 3)), return_std=True)
    assert np.all(std_far <= math.sqrt(model.variance) * model.y_scale * (1 + 1e-12))


@pytest.mark.parametrize("case", ["duplicates", "single", "constant", "huge", "tiny", "close"])
def test_degenerate_data_fits_with_finite_predictions(case):
    rng = np.random.default_rng(0)
    X, y = _toy_data(n=12)
    if case == "duplicates":
        X, y = np.vstack([X, X]), np.concatenate([y, y])
    elif case == "single":
        X, y = X[:1], y[:1]
    elif case == "constant":
        y = np.full(len(y), 4.2)
    elif case == "huge":
        y = y * 1e9
    elif case == "tiny":
        y = y * 1e-9
    elif case == "close":
        X = np.vstack([X, X[:3] + 1e-12])
        y = np.concatenate([y, y[:3] + 1e-3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")               # a jitter warning is allowed here
        model = gp.GP().fit(X, y)
    mean, std = model.predict(rng.uniform(size=(20, X.shape[1])), return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std >= 0)
    if case == "constant":
        assert np.allclose(mean, 4.2)


def _posterior(X, y, Xq):
    return gp.GP().fit(X, y).predict(Xq, return_std=True)


@pytest.mark.parametrize("c", [1e4, 2000.0, 1e-3])
def test_the_posterior_is_the_same_whatever_the_units_of_x(c):
    X, y = _toy_data(n=15, d=2)                       # a smooth y plus small noise
    Xq = np.random.default_rng(7).uniform(size=(20, 2))
    mean, std = _posterior(X, y, Xq)
    mean_c, std_c = _posterior(c * X, y, c * Xq)      # the same data in other units
    np.testing.assert_allclose(mean_c, mean, rtol=1e-5, atol=1e-5 * np.abs(mean).max())
    np.testing.assert_allclose(std_c, std, rtol=1e-5, atol=1e-5 * std.max())


@pytest.mark.parametrize("s", [1e154, 1e-170])
def test_scaling_y_scales_the_posterior_mean_and_std_by_the_same_factor(s):
    X, y = _toy_data(n=15, d=2)
    Xq = np.random.default_rng(7).uniform(size=(20, 2))
    mean, std = _posterior(X, y, Xq)
    mean_s, std_s = _posterior(X, s * y, Xq)
    np.testing.assert_allclose(mean_s, s * mean, rtol=1e-5, atol=1e-5 * s * np.abs(mean).max())
    np.testing.assert_allclose(std_s, s * std, rtol=1e-5, atol=1e-5 * s * std.max())


def test_cholesky_adds_jitter_with_a_warning_and_fails_with_a_clear_error():
    v = np.array([1.0, 1.0, 1.0])
    with pytest.warns(UserWarning, match="jitter"):
        L, jitter = gp.cholesky(np.outer(v, v))       # rank 1: needs jitter
    assert jitter > 0 and np.allclose(L @ L.T, np.outer(v, v), atol=1e-4)
    with pytest.raises(ValueError, match="n=3"):
        gp.cholesky(-np.eye(3))


@pytest.mark.parametrize("call, match", [
    (lambda: gp.GP().fit(np.ones(3), np.ones(3)), "X must be 2-D"),
    (lambda: gp.GP().fit(np.ones((3, 1)), np.ones(4)), "y must be 1-D"),
    (lambda: gp.GP().fit(np.ones((3, 1)), np.ones((3, 1))), "y must be 1-D"),
    (lambda: gp.GP().fit(np.array([[np.nan]]), np.ones(1)), "NaN"),
    (lambda: gp.GP().fit(np.ones((1, 1)), np.array([np.inf])), "NaN or inf"),
    (lambda: gp.GP().fit(np.ones((0, 2)), np.ones(0)), "at least one row"),
    (lambda: gp.GP().fit(np.ones((2, 2)), np.ones(2)).predict(np.ones((2, 3))), "d=3"),
    (lambda: gp.GP().predict(np.ones((2, 2))), "before fit"),
    (lambda: gp.GP(lengthscale=-1.0), "lengthscale"),
    (lambda: gp.GP(variance=0.0), "variance"),
    (lambda: gp.GP(noise=-1e-3), "noise"),
    (lambda: gp.GP(kernel="cubic"), "kernel"),
])
def test_gp_rejects_bad_input_with_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_expected_improvement_hand_checked_value():
    # mu = 0, sigma = 1, best = -0.5: z = -0.5, EI = -0.5 Phi(-0.5) + phi(-0.5)
    # = -0.5 * 0.3085375387 + 0.3520653268 = 0.1977965574 (normal table)
    assert gp.expected_improvement(0.0, 1.0, -0.5) == pytest.approx(0.1977966, abs=1e-7)


@given(st.floats(-3, 3), st.floats(0.05, 3), st.floats(-3, 3))
def test_expected_improvement_matches_monte_carlo(mean, std, best):
    f = np.random.default_rng(0).normal(mean, std, size=200_000)
    gains = np.maximum(best - f, 0)
    se = gains.std() / math.sqrt(len(f))
    assert abs(gp.expected_improvement(mean, std, best) - gains.mean()) <= 3 * se + 1e-12


@given(st.lists(st.floats(-5, 5, **finite), min_size=2, max_size=20), st.floats(0.01, 3),
       st.floats(-5, 5))
def test_expected_improvement_is_nonnegative_and_falls_as_the_mean_rises(means, std, best):
    means = np.sort(means)
    ei = gp.expected_improvement(means, std, best)
    assert np.all(ei >= 0) and np.all(np.diff(ei) <= 1e-15)
    stds = np.linspace(0.01, 3, 20)
    assert np.all(np.diff(gp.expected_improvement(means[0], stds, best)) >= -1e-15)


def test_expected_improvement_at_zero_std_is_the_plain_gain():
    assert np.allclose(gp.expected_improvement([0.0, 2.0], [0.0, 0.0], 1.0, xi=0.25), [0.75, 0.0])


def test_log_ei_equals_log_of_ei_where_ei_is_accurate():
    z = np.linspace(-5, 8, 2001)                      # EI by its textbook formula is exact here
    assert np.allclose(gp.log_expected_improvement(-z, 1.0, 0.0),
                       np.log(gp.expected_improvement(-z, 1.0, 0.0)), rtol=1e-10, atol=1e-12)
    assert np.allclose(gp.log_expected_improvement([1.0, 2.0], [0.0, 0.0], 3.0), np.log([2.0, 1.0]))


def test_log_ei_matches_high_precision_arithmetic_far_in_the_tail():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 60
    z = np.concatenate([-np.logspace(0, 3, 60), np.linspace(-40, -1, 79)])
    ref = [float(mpmath.log(mpmath.npdf(mpmath.mpf(v)) + mpmath.mpf(v) * mpmath.ncdf(mpmath.mpf(v))))
           for v in z]
    assert np.allclose(gp.log_h(z), ref, rtol=1e-12, atol=1e-12)


def test_log_ei_is_finite_and_strictly_increasing_down_to_z_minus_1000():
    z = np.linspace(-1000, 5, 100_001)
    log_ei = gp.log_expected_improvement(-z, 1.0, 0.0)
    assert np.all(np.isfinite(log_ei)) and np.all(np.diff(log_ei) > 0)
    # asymptotically log h(z) ~ -z^2/2 - log(sqrt(2 pi)) - 2 log|z|
    assert log_ei[0] == pytest.approx(-5e5 - 0.5 * math.log(2 * math.pi) - 2 * math.log(1000), rel=1e-9)


# ============================================================================ hpopt.py: spaces

@st.composite
def dimensions(draw):
    kind = draw(st.sampled_from(["real", "real_log", "int", "int_log", "choice"]))
    if kind == "choice":
        return hpopt.Choice(draw(st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3),
                                                    st.none()), min_size=1, max_size=5,
                                          unique_by=lambda v: (type(v), v))))
    if kind.startswith("real"):
        log = kind == "real_log"
        low = draw(st.floats(1e-6, 1e3) if log else st.floats(-1e6, 1e6))
        high = draw(st.floats(low * (1 + 1e-6) + 1e-9, low * 1e4 + 1e3 if log else 2e6))
        return hpopt.Real(low, high, log=log)
    low = draw(st.integers(1, 1000) if kind == "int_log" else st.integers(-1000, 1000))
    return hpopt.Integer(low, draw(st.integers(low, low + 10 ** draw(st.integers(0, 6)))),
                         log=kind == "int_log")


def in_dimension(dim, value):
    if isinstance(dim, hpopt.Choice):
        return any(type(o) is type(value) and o == value for o in dim.options)
    kind = float if isinstance(dim, hpopt.Real) else int
    return type(value) is kind and dim.low <= value <= dim.high


@given(dimensions(), st.integers(1, 6), st.lists(st.floats(0, 1), min_size=1, max_size=10),
       st.integers(0, 2 ** 32))
def test_every_drawn_grid_and_decoded_value_is_valid_and_native(dim, n_points, us, seed):
    space = {"x": dim}
    values = [p["x"] for p in hpopt.RandomSearch(space, seed).ask(10)]
    values += dim.grid(n_points) + [dim.from_unit(u) for u in us]
    assert all(in_dimension(dim, v) for v in values)
    for v in values:                                  # decode(encode(v)) == v
        back = dim.from_unit(dim.to_unit(v))
        assert back == v if not isinstance(dim, hpopt.Real) else back == pytest.approx(v, rel=1e-9)
    assert np.allclose(dim.snap(dim.snap(np.array(us))), dim.snap(np.array(us)))


FLOAT_MAX = np.finfo(float).max


@given(st.floats(-FLOAT_MAX, FLOAT_MAX), st.floats(-FLOAT_MAX, FLOAT_MAX), st.booleans(),
       st.integers(1, 5), st.integers(0, 2 ** 32))
def test_draws_and_grid_values_are_finite_and_inside_any_finite_bounds(a, b, log, n_points, seed):
    low, high = sorted((abs(a), abs(b)) if log else (a, b))
    if not low < high or (log and low == 0):
        return
    for dim in (hpopt.Real(low, high, log=log),
                hpopt.Integer(*sorted(int(np.clip(v, -2 ** 53, 2 ** 53)) for v in (low, high)),
                              log=log and low >= 1)):
        values = [p["x"] for p in hpopt.RandomSearch({"x": dim}, seed).ask(4)]
        values += dim.grid(n_points) + [dim.from_unit(u) for u in (0.0, 1e-300, 0.5, 1.0)]
        assert all(math.isfinite(v) and dim.low <= v <= dim.high for v in values)
        assert all(0 <= dim.to_unit(v) <= 1 for v in values)


def test_a_grid_of_10_to_the_20_points_counts_them_and_asks_without_listing_them():
    grid = hpopt.GridSearch({f"x{i}": hpopt.Integer(0, 9) for i in range(20)}, n_points=10)
    assert grid.size == 10 ** 20
    assert [list(p.values()) for p in grid.ask(3)] == [[0] * 19 + [k] for k in range(3)]


def test_a_choice_of_numpy_arrays_is_searched_and_told():
    arrays = [np.zeros(2), np.ones(2), np.arange(3.0)]
    result = hpopt.random_search(lambda p: float(p["w"].sum()), {"w": hpopt.Choice(arrays)},
                                 n_trials=3, seed=0)
    assert sorted(t.value for t in result.trials) == [0.0, 2.0, 3.0]


def test_log_dimensions_draw_uniformly_in_the_log():
    space = {"lr": hpopt.Real(1e-5, 1e-1, log=True)}
    draws = np.array([p["lr"] for p in hpopt.RandomSearch(space, seed=0).ask(20_000)])
    counts, _ = np.histogram(np.log10(draws), bins=10, range=(-5, -1))
    chi2 = np.sum((counts - 2000) ** 2 / 2000)
    assert chi2 < 27.88                               # chi-square, 9 dof, p = 0.001


def test_grid_holds_every_combination_once_with_both_ends():
    space = {"a": hpopt.Real(0.1, 10, log=True), "b": hpopt.Integer(1, 9), "c": hpopt.Choice(["x", "y"])}
    search = hpopt.GridSearch(space, n_points=4)
    points = search.ask(1000)
    assert len(points) == search.size == 4 * 4 * 2 and search.ask(1) == []
    assert len({tuple(p.values()) for p in points}) == len(points)
    assert {p["a"] for p in points} >= {0.1, 10.0} and {p["b"] for p in points} >= {1, 9}


def test_grids_are_evenly_spaced_in_value_or_log_value_like_numpy():
    # numpy's linspace / geomspace, rounded half to even for ints, is the independent answer
    for dim, n in [(hpopt.Integer(1, 1000, log=True), 4), (hpopt.Integer(2, 1024, log=True), 7),
                   (hpopt.Integer(10, 150), 4), (hpopt.Integer(10, 80), 7)]:
        spaced = (np.geomspace if dim.log else np.linspace)(dim.low, dim.high, n)
        assert dim.grid(n) == [int(v) for v in np.rint(spaced)]
    assert hpopt.Integer(1, 1000, log=True).grid(4) == [1, 10, 100, 1000]
    real = hpopt.Real(1e-4, 1.0, log=True)
    assert real.grid(5) == pytest.approx(np.geomspace(1e-4, 1.0, 5), rel=1e-12)
    assert hpopt.Real(-1.0, 2.0).grid(4) == pytest.approx(np.linspace(-1.0, 2.0, 4), abs=1e-15)


def test_a_log_integer_grid_keeps_its_exact_ends_and_its_number_of_points():
    dim = hpopt.Integer(1, 10 ** 15, log=True)        # exp(log(1e15)) is not 1e15 exactly
    assert dim.grid(2) == [1, 10 ** 15]
    for n in (3, 5):
        grid = dim.grid(n)
        assert len(grid) == n and grid[0] == 1 and grid[-1] == 10 ** 15


def test_a_choice_of_nan_twice_is_refused_as_repeated():
    with pytest.raises(ValueError, match="repeated"):
        hpopt.Choice([float("nan"), float("nan")])   # two objects, equal to nothing


def test_grid_search_returns_the_argmin_of_its_own_grid():
    space = {"x": hpopt.Real(-2, 2), "y": hpopt.Integer(-3, 3)}
    f = lambda p: (p["x"] - 0.7) ** 2 + (p["y"] + 1.2) ** 2
    result = hpopt.grid_search(f, space, n_points=5)
    ys = [-3, -2, 0, 2, 3]                            # round(linspace(-3, 3, 5)), half to even
    brute = min((f({"x": x, "y": y}), x, y) for x in np.linspace(-2, 2, 5) for y in ys)
    assert result.best_value == pytest.approx(brute[0]) and len(result.trials) == 25


def test_random_draws_are_independent_and_uniform_over_a_discrete_space():
    # Bergstra & Bengio's draws are i.i.d.: in a space of 12 combinations, 6000 draws give
    # each about 500 (a chi-square test at 12 - 1 degrees of freedom, 99.9% quantile 31.3)
    space = {"a": hpopt.Integer(0, 3), "b": hpopt.Choice([True, False, None])}
    points = hpopt.RandomSearch(space, seed=1).ask(6000)
    counts = collections.Counter((p["a"], p["b"]) for p in points)
    assert len(counts) == 12
    assert sum((c - 500) ** 2 / 500 for c in counts.values()) < 31.3


# ============================================================================ hpopt.py: Bayesian search

MIXED = {"lr": hpopt.Real(1e-4, 1e-1, log=True), "layers": hpopt.Integer(1, 4),
         "act": hpopt.Choice(["relu", "tanh"]), "drop": hpopt.Real(0.0, 0.5)}


def mixed_objective(p):
    return ((math.log10(p["lr"]) + 2.3) ** 2 + 0.1 * (p["layers"] - 3) ** 2
            + (p["act"] == "tanh") * 0.2 + (p["drop"] - 0.2) ** 2)


def test_bayesian_search_asks_only_valid_distinct_points():
    search = hpopt.BayesianSearch(MIXED, seed=0, n_initial=4)
    seen = set()
    for _ in range(12):
        asked = search.ask(2)                         # two at a time: the constant liar
        for p in asked:
            assert all(in_dimension(MIXED[k], v) for k, v in p.items())
            key = tuple(p.values())
            assert key not in seen
            seen.add(key)
        for p in asked:
            search.tell(p, mixed_objective(p))
    tight = {"a": hpopt.Integer(0, 2), "b": hpopt.Choice(["x", "y"])}   # 6 points in all
    search = hpopt.BayesianSearch(tight, seed=0, n_initial=2)
    asked = []
    for _ in range(6):
        p = search.ask()[0]
        asked.append(tuple(p.values()))
        search.tell(p, float(p["a"]))
    assert len(set(asked)) == 6


BOWL = {"x": hpopt.Real(0, 1), "y": hpopt.Real(0, 1)}


def bowl(p):
    return (p["x"] - 0.6) ** 2 + (p["y"] - 0.6) ** 2


def bowl_search(seed, n_trials=10):
    """A BayesianSearch after n_trials sequential trials on the bowl, and their params."""
    search, told = hpopt.BayesianSearch(BOWL, seed=seed, n_initial=6), []
    for _ in range(n_trials):
        p = search.ask()[0]
        search.tell(p, bowl(p))
        told.append(p)
    return search, told


def place_in_fit(search, told, points):
    """The searcher's fitted GP mean at points, on a scale where 0 is its lowest and 1 its
    highest mean at the told points (their best and worst values, warped)."""
    def mean(params):
        U = np.array([hpopt.to_unit(search.space, p) for p in params])
        return search.gp.predict(hpopt.gp_inputs(search.space, U))
    at_told = mean(told)
    return (mean(points) - at_told.min()) / (at_told.max() - at_told.min())


def test_a_failed_point_is_modelled_as_the_worst_value_so_the_search_moves_away():
    corner = {"x": 0.05, "y": 0.95}                   # unexplored; a failure there
    for seed in range(3):
        search, told = bowl_search(seed)
        search.tell(corner, math.nan)
        after = search.ask()[0]                       # its fit holds the failure
        assert place_in_fit(search, told, [corner])[0] > 0.9
        assert np.linalg.norm(hpopt.to_unit(BOWL, after) - hpopt.to_unit(BOWL, corner)) > 0.3


def test_a_pending_point_is_modelled_at_the_best_value_seen_the_constant_liar():
    # Checked through the mean, not the spread of a batch: a liar at the best value keeps
    # the next asks near the pending point (one at the worst value pushes them away).
    for seed in range(3):
        search, told = bowl_search(seed)
        batch = search.ask(3)                         # the third fit holds two pending points
        assert np.all(np.abs(place_in_fit(search, told, batch[:2])) < 0.1)


def test_a_point_told_or_asked_is_never_asked_again_across_batches_and_pending_points():
    space = {"a": hpopt.Integer(0, 3), "b": hpopt.Choice(["x", "y", "z"])}   # 12 points
    f = lambda p: (p["a"] - 1.5) ** 2 + (p["b"] == "y")
    search = hpopt.BayesianSearch(space, seed=0, n_initial=6)
    told = [{"a": 0, "b": "x"}, {"a": 1, "b": "y"}, {"a": 3, "b": "z"}]   # never asked
    for p in told:
        search.tell(p, f(p))
    asked = []
    for _ in range(3):
        batch = search.ask(3)                         # each ask sees the earlier ones pending
        asked += batch
        for p in batch:
            search.tell(p, f(p))
    untold = {(a, b) for a in range(4) for b in "xyz"} - {(p["a"], p["b"]) for p in told}
    assert sorted((p["a"], p["b"]) for p in asked) == sorted(untold)


def test_the_initial_design_is_a_latin_hypercube_one_point_per_stratum_in_every_dimension():
    for seed, n in [(0, 5), (1, 7), (2, 12)]:
        space = {"a": hpopt.Real(-3, 3), "lr": hpopt.Real(1e-4, 1e-1, log=True),
                 "k": hpopt.Integer(0, n - 1)}        # n integers: one per stratum
        U = np.array([hpopt.to_unit(space, p)
                      for p in hpopt.BayesianSearch(space, seed, n_initial=n).ask(n)])
        for column in U.T:                            # each of the n equal bins once
            assert sorted(np.floor(column * n).astype(int)) == list(range(n))


def test_acquisition_maximiser_never_returns_less_than_its_best_candidate():
    rng = np.random.default_rng(0)
    score = lambda U: -np.sum((U - 0.37) ** 2, axis=1)
    pool = rng.uniform(size=(200, 3))
    U, s = hpopt.maximize_acquisition(score, pool, lambda U: np.clip(U, 0, 1), rng)
    assert s[0] >= score(pool).max() and np.allclose(score(U[:1]), s[0])
    assert np.all(np.diff(s) <= 0)


def test_the_acquisition_polish_climbs_past_its_pool_to_a_peak_between_the_pool_points():
    peak = np.array([0.5, 0.5])
    score = lambda U: np.exp(-np.sum((U - peak) ** 2, axis=1) / (2 * 0.05 ** 2))
    g = (np.arange(10) + 0.5) / 10                    # a grid pool 0.05 .. 0.95, missing 0.5
    pool = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    U, s = hpopt.maximize_acquisition(score, pool, lambda U: np.clip(U, 0, 1), np.random.default_rng(0))
    assert s[0] > score(pool).max() and np.abs(U[0] - peak).max() < 0.02


def branin(p):
    x, y = p["x"], p["y"]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x ** 2 + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


BRANIN = {"x": hpopt.Real(-5, 10), "y": hpopt.Real(0, 15)}
BRANIN_MIN = 5 / (4 * math.pi)


def test_bayesian_search_beats_random_on_branin_and_its_initial_design_alone_does_not():
    def median_log_regret(search, **kw):
        return np.median([math.log10(search(branin, BRANIN, n_trials=30, seed=s, **kw).best_value
                                     - BRANIN_MIN) for s in range(10)])
    bayes = median_log_regret(hpopt.bayesian_search)
    random = median_log_regret(hpopt.random_search)
    design_only = median_log_regret(hpopt.bayesian_search, n_initial=30)
    assert bayes < random - 1 and design_only > bayes + 1


@pytest.mark.parametrize("scale", [1.0, 1e160, 1e-175])
def test_bayesian_search_improves_on_its_initial_design_at_any_scale_of_the_objective(scale):
    stuck = []                                        # seeds whose GP asks never beat the
    for seed in range(4):                             # 5 points of the initial design
        result = hpopt.bayesian_search(lambda p: scale * branin(p), BRANIN, n_trials=20,
                                       n_initial=5, seed=seed)
        values = [t.value for t in sorted(result.trials, key=lambda t: t.number)]
        if not result.best_value < min(values[:5]):
            stuck.append(seed)
    assert stuck == []


@pytest.mark.parametrize("seed, best", [(0, 3), (1, 0), (2, 5)])
def test_the_local_candidates_are_drawn_around_the_best_trial(seed, best, monkeypatch):
    monkeypatch.setattr(hpopt, "N_CANDIDATES", 0)     # local candidates only, not polished:
    monkeypatch.setattr(hpopt, "POLISH_STEPS", ())    # the next ask is one of them
    monkeypatch.setattr(hpopt, "LOCAL_SCALE", 0.01)
    search = hpopt.BayesianSearch(BRANIN, seed=seed, n_initial=6)
    values = [float(k + 1) for k in range(6)]
    values[best] = 0.0                                # distinct values, the lowest at `best`
    told = []
    for value in values:
        told.append(search.ask()[0])
        search.tell(told[-1], value)
    after = search.ask()[0]

    def unit(p):                                      # (x - low) / (high - low), by hand
        return np.array([(p[k] - BRANIN[k].low) / (BRANIN[k].high - BRANIN[k].low)
                         for k in BRANIN])
    assert np.all(np.abs(unit(after) - unit(told[best])) < 0.05)


def test_bayesian_search_refuses_an_objective_that_needs_a_budget_before_any_trial(tmp_path):
    log = str(tmp_path / "s.jsonl")
    with pytest.raises(TypeError, match="objective"):   # learning_curve takes (params, budget)
        hpopt.bayesian_search(learning_curve, SMALL, n_trials=3, seed=0, log=log)
    assert not os.path.exists(log) or log_records(log) == []   # no trial was asked


def test_seeds_reproduce_the_same_trials():
    for search in (hpopt.random_search, hpopt.bayesian_search):
        a, b, c = (search(mixed_objective, MIXED, n_trials=8, seed=s) for s in (5, 5, 6))
        assert [t.params for t in a.trials] == [t.params for t in b.trials]
        assert [t.params for t in a.trials] != [t.params for t in c.trials]
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    assert hpopt.RandomSearch(MIXED, rng_a).ask(3) == hpopt.RandomSearch(MIXED, rng_b).ask(3)


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=30))
def test_the_target_warp_keeps_the_order_of_the_values(values):
    y = np.array(values)
    w = hpopt.warp(y)
    order = np.argsort(y, kind="stable")
    assert np.all(np.isfinite(w)) and np.all(np.diff(w[order]) >= -1e-12)


def test_the_warp_of_identical_values_is_silent_and_keeps_them():
    y = np.full(7, 0.1234567)                         # its std rounds to 1.4e-17, not 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(hpopt.warp(y), y)


def test_yeo_johnson_special_cases_and_scipy():
    z = np.linspace(-3, 3, 13)
    assert np.allclose(hpopt.yeo_johnson(z, 1.0), z)
    assert np.allclose(hpopt.yeo_johnson(np.abs(z), 0.0), np.log1p(np.abs(z)))
    assert np.allclose(hpopt.yeo_johnson(-np.abs(z), 2.0), -np.log1p(np.abs(z)))
    stats = pytest.importorskip("scipy.stats")
    for lam in (-0.7, 0.0, 0.5, 2.0, 2.6):
        assert np.allclose(hpopt.yeo_johnson(z, lam), stats.yeojohnson(z, lmbda=lam))


# ============================================================================ hpopt.py: the loop

def test_failed_evaluations_are_recorded_and_the_search_goes_on():
    outcomes = iter([1.0, math.nan, math.inf, "oops", ZeroDivisionError("no"), 0.5, -math.inf])

    def objective(p):
        out = next(outcomes)
        if isinstance(out, Exception):
            raise out
        return out

    for search in (hpopt.random_search, hpopt.bayesian_search):
        outcomes = iter([1.0, math.nan, math.inf, "oops", ZeroDivisionError("no"), 0.5, -math.inf])
        result = search(objective, MIXED, n_trials=7, seed=0, catch=ZeroDivisionError)
        assert [t.status for t in result.trials] == ["ok", "failed", "failed", "failed", "failed",
                                                     "ok", "failed"]
        assert "ZeroDivisionError: no" in result.trials[4].error
        assert "not a number" in result.trials[3].error
        assert result.best_value == 0.5 and result.best_so_far == [1, 1, 1, 1, 1, 0.5, 0.5]


def test_an_uncaught_exception_propagates_with_the_finished_trials():
    calls = []

    def objective(p):
        calls.append(p)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return 1.0

    with pytest.raises(RuntimeError, match="boom") as info:
        hpopt.random_search(objective, MIXED, n_trials=10, seed=0)
    assert len(info.value.partial_result.trials) == 2


def test_ctrl_c_returns_the_finished_trials_marked_interrupted():
    def objective(p):
        if objective.calls == 3:
            raise KeyboardInterrupt
        objective.calls += 1
        return 1.0
    objective.calls = 0
    result = hpopt.bayesian_search(objective, MIXED, n_trials=10, seed=0)
    assert result.interrupted and len(result.trials) == 3


def test_all_trials_failing_gives_a_clear_error_not_a_nan_best():
    result = hpopt.random_search(lambda p: math.nan, MIXED, n_trials=3, seed=0)
    with pytest.raises(ValueError, match="all 3 trials failed"):
        result.best_params
    result = hpopt.bayesian_search(lambda p: math.nan, MIXED, n_trials=6, seed=0, n_initial=2)
    assert len(result.trials) == 6


def test_callback_and_verbose_report_every_trial(capsys):
    seen = []
    hpopt.random_search(mixed_objective, MIXED, n_trials=3, seed=0, callback=seen.append,
                        verbose=True)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [t.number for t in seen] == [0, 1, 2] and len(lines) == 3
    assert "trial 3/3" in lines[-1] and "best" in lines[-1]


@pytest.mark.parametrize("call, error, match", [
    (lambda: hpopt.Real(1, 1), ValueError, "low < high"),
    (lambda: hpopt.Real(0, math.inf), ValueError, "finite"),
    (lambda: hpopt.Real(0, 1, log=True), ValueError, "low > 0"),
    (lambda: hpopt.Integer(1.5, 3), ValueError, "int bounds"),
    (lambda: hpopt.Integer(3, 1), ValueError, "low <= high"),
    (lambda: hpopt.Integer(0, 3, log=True), ValueError, "low >= 1"),
    (lambda: hpopt.Choice([]), ValueError, "at least one"),
    (lambda: hpopt.Choice(["a", "a"]), ValueError, "repeated"),
    (lambda: hpopt.GridSearch({}), ValueError, "non-empty dict"),
    (lambda: hpopt.GridSearch({"x": (0, 1)}), ValueError, "Real | Integer | Choice"),
    (lambda: hpopt.GridSearch(MIXED, n_points=0), ValueError, "n_points"),
    (lambda: hpopt.random_search(mixed_objective, MIXED, n_trials=0), ValueError, "n_trials"),
    (lambda: hpopt.BayesianSearch(MIXED, n_initial=0), ValueError, "n_initial"),
    (lambda: hpopt.RandomSearch(MIXED, seed="7"), ValueError, "seed"),
    (lambda: hpopt.RandomSearch(MIXED, seed=-1), ValueError, "seed"),
    (lambda: hpopt.random_search(mixed_objective, MIXED, 2, n_jobs=0), ValueError, "n_jobs"),
    (lambda: hpopt.random_search(mixed_objective, MIXED, 2, catch=[1]), TypeError, "catch"),
    (lambda: hpopt.random_search(mixed_objective, MIXED, 2, resume=True), ValueError, "log="),
    (lambda: hpopt.random_search(mixed_objective, MIXED, 2, catch="ValueError"), TypeError,
     "exception type"),
    (lambda: hpopt.random_search(mixed_objective, MIXED, 2, executor=object()), TypeError,
     "executor must be"),
    (lambda: hpopt.random_search(mixed_objective, MIXED, 2, n_jobs=2,
                                 executor=concurrent.futures.ThreadPoolExecutor(2)), TypeError,
     "not given with n_jobs"),
    (lambda: hpopt.GridSearch(SMALL).tell({"x": 0.0}, 1.0), ValueError, r"missing \['n'\]"),
    (lambda: hpopt.RandomSearch(SMALL, 0).tell({"x": 0.0, "n": 0, "z": 1}, 1.0), ValueError,
     r"extra \['z'\]"),
    (lambda: hpopt.BayesianSearch(SMALL, 0).tell({"x": 2.0, "n": 0}, 1.0), ValueError,
     r"params\['x'\] = 2.0 is not a value"),
    (lambda: hpopt.GridSearch(SMALL).ask(2.5), ValueError, "n must be an int"),
    (lambda: hpopt.Integer(0, 10 ** 400), ValueError, r"2\*\*53"),
    (lambda: hpopt.Choice({1, 2}), ValueError, "list or tuple"),
    (lambda: hpopt.Choice([]), ValueError, "options"),
])
def test_hpopt_rejects_bad_input_with_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


class Weird:
    def __repr__(self):
        raise RuntimeError("no repr")


@pytest.mark.parametrize("returned, value", [
    (np.float32(0.5), 0.5), (np.array(0.25), 0.25), (np.int64(3), 3.0), (Decimal("0.5"), 0.5),
    (Fraction(1, 4), 0.25), (7, 7.0), (10 ** 400, None), (True, None), (np.bool_(False), None),
    ("0.5", None), (None, None), ([1.0], None), (np.array([1.0, 2.0]), None), (Weird(), None),
    (lambda: 1, None), (-math.inf, None), (Decimal("NaN"), None)])
def test_any_return_value_is_a_float_trial_value_or_a_failed_trial(returned, value):
    result = hpopt.random_search(lambda p: returned, SMALL, n_trials=2, seed=0)
    trial = result.trials[0]
    if value is None:
        assert trial.status == "failed" and math.isnan(trial.value) and trial.error
    else:
        assert trial.status == "ok" and type(trial.value) is float and trial.value == value


def unpicklable_value(p):                             # top level: runs in a worker process
    return (x for x in [1.0]) if p["n"] == 0 else 1.0


def test_a_value_that_cannot_travel_back_from_a_worker_is_a_failed_trial():
    result = hpopt.random_search(unpicklable_value, SMALL, n_trials=8, seed=0, n_jobs=2)
    assert len(result.trials) == 8
    assert all((t.status == "failed") == (t.params["n"] == 0) for t in result.trials)


class TwoArgumentError(Exception):                    # pickles, but cannot be unpickled:
    def __init__(self, what, code):                   # its args hold one string, and
        super().__init__(f"{what} {code}")            # __init__ needs two


def raises_two_argument_error(calls, p):              # top level: runs in a worker process
    with open(calls, "a") as f:                       # one line per call, in any process
        f.write(json.dumps(p) + "\n")
    raise TwoArgumentError("bad data", 42)


def test_a_parallel_exception_that_cannot_be_unpickled_keeps_its_message_and_runs_once(tmp_path):
    calls = tmp_path / "calls"
    objective = functools.partial(raises_two_argument_error, str(calls))
    with pytest.raises(Exception) as info:            # not in catch: the search stops
        hpopt.random_search(objective, SMALL, n_trials=4, seed=0, n_jobs=2)
    assert "bad data 42" in str(info.value)
    called = calls.read_text().splitlines()
    assert called and len(called) == len(set(called))  # no trial was run again


def test_an_uncaught_parallel_exception_waits_for_the_trials_beside_it_and_keeps_them(tmp_path):
    log = str(tmp_path / "s.jsonl")
    started = threading.Barrier(2)

    def objective(p):
        if p["n"] == 3:                               # trial 0 of seed 1: slow, healthy
            started.wait()
            time.sleep(0.5)
            return 1.0
        started.wait()
        raise RuntimeError("boom")

    assert [p["n"] for p in hpopt.RandomSearch(SMALL, seed=1).ask(2)][0] == 3
    with concurrent.futures.ThreadPoolExecutor(2) as executor, \
            pytest.raises(RuntimeError, match="boom") as info:
        hpopt.random_search(objective, SMALL, n_trials=6, seed=1, executor=executor, log=log)
    assert [t.value for t in info.value.partial_result.trials] == [1.0]
    assert list(finished_records(log)) == [0]         # logged, and trial 1 left to run again


def dies_once(marker, p):                             # top level: runs in a worker process
    time.sleep(0.2)
    if p["n"] == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)                                   # the worker process dies mid-trial
    return slow_square(p)


def always_dies(p):
    os._exit(1)


def test_a_dead_worker_process_is_not_a_failed_trial(tmp_path):
    objective = functools.partial(dies_once, str(tmp_path / "died"))
    result = hpopt.random_search(objective, SMALL, n_trials=8, seed=0, n_jobs=2, catch=Exception)
    assert os.path.exists(tmp_path / "died")          # a worker did die, and a fresh pool ran on
    assert [t.status for t in result.trials] == ["ok"] * 8
    assert trial_set(result) == trial_set(hpopt.random_search(slow_square, SMALL, 8, seed=0))

    objective = functools.partial(dies_once, str(tmp_path / "died again"))
    with concurrent.futures.ProcessPoolExecutor(2) as executor, \
            pytest.raises(concurrent.futures.process.BrokenProcessPool) as info:
        hpopt.random_search(objective, SMALL, n_trials=8, seed=0, executor=executor,
                            catch=Exception)              # a user's executor: raise, not fail
    assert all(t.status == "ok" for t in info.value.partial_result.trials)
    # a worker that dies on every trial: the pool is not replaced forever. In a process of its
    # own with a time limit, so that a search that never stops fails this test, not CI's clock
    code = ("import hpopt, test_hpopt as t\n"
            "hpopt.random_search(t.always_dies, t.SMALL, 4, seed=0, n_jobs=2, catch=Exception)")
    child = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(__file__),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    assert child.returncode != 0 and b"BrokenProcessPool" in child.stderr


def test_system_exit_propagates_with_the_finished_trials():
    def objective(p):
        objective.calls += 1
        if objective.calls == 3:
            raise SystemExit(3)
        return 1.0
    objective.calls = 0
    with pytest.raises(SystemExit) as info:
        hpopt.random_search(objective, SMALL, n_trials=5, seed=0)
    assert len(info.value.partial_result.trials) == 2


# ============================================================================ hpopt.py: parallel, log, resume

def slow_square(params):                              # top level: picklable for processes
    return (params["x"] - 0.3) ** 2 + params["n"]


SMALL = {"x": hpopt.Real(-1, 1), "n": hpopt.Integer(0, 3)}


def trial_set(result):
    return sorted((t.number, tuple(t.params.items()), t.value, t.budget) for t in result.trials)


def test_executor_runs_give_the_trials_of_a_sequential_run():
    for search, kw in [(hpopt.grid_search, {"n_points": 3}), (hpopt.random_search, {"n_trials": 10, "seed": 4})]:
        sequential = search(slow_square, SMALL, **kw)
        with concurrent.futures.ThreadPoolExecutor(3) as executor:
            threads = search(slow_square, SMALL, executor=executor, **kw)
        processes = search(slow_square, SMALL, n_jobs=2, **kw)
        assert trial_set(sequential) == trial_set(threads) == trial_set(processes)


def test_parallel_bayesian_search_asks_distinct_valid_points_and_finishes():
    result = hpopt.bayesian_search(slow_square, SMALL, n_trials=14, seed=0, n_initial=4, n_jobs=2)
    keys = [tuple(t.params.values()) for t in result.trials]
    assert len(result.trials) == 14 and len(set(keys)) == 14
    assert all(in_dimension(SMALL[k], v) for t in result.trials for k, v in t.params.items())


def test_a_process_executor_needs_a_picklable_objective(tmp_path):
    log = tmp_path / "s.jsonl"
    with pytest.raises(TypeError, match="module top level"):
        hpopt.random_search(lambda p: 1.0, SMALL, n_trials=2, n_jobs=2, log=str(log))
    assert not log.exists()                           # refused before any work started


KILL_KW = dict(grid=dict(n_points=4), random=dict(n_trials=12, seed=7),
               bayesian=dict(n_trials=12, seed=7, n_initial=4),
               hyperband=dict(min_budget=1, max_budget=9, seed=7))
SEARCHES = dict(grid=hpopt.grid_search, random=hpopt.random_search,
                bayesian=hpopt.bayesian_search, hyperband=hpopt.hyperband)
KILL_N = dict(grid=16, random=12, bayesian=12, hyperband=9 + 3 + 1 + 5 + 1 + 3)
KILL_SCRIPT = """
import sys
sys.path.insert(0, {here!r})
import test_hpopt as t
method, log, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
t.SEARCHES[method](t.slow_branin, t.BRANIN, log=log, n_jobs=jobs, **t.KILL_KW[method])
"""


def is_slow(p):                                       # most of the box: a search's path
    return p["y"] >= 7 or p["x"] < 5                  # meets some whatever it learns


def slow_branin(p, budget=None):                      # top level: picklable for processes
    time.sleep(0.4 if is_slow(p) else 0.05)           # slow ones are killed mid-run
    return fast_branin(p, budget)


def fast_branin(p, budget=None):                      # a budget, for successive halving
    return branin(p) + (0.0 if budget is None else 10.0 / budget)


def log_records(path):
    """The log's lines after the header, as dicts, straight from the JSON."""
    return [json.loads(line) for line in open(path).read().splitlines()[1:]]


def finished_records(path):
    return {r["number"]: r for r in log_records(path) if "status" in r}


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("method", ["grid", "random", "bayesian", "hyperband"])
def test_a_search_killed_mid_run_resumes_without_losing_or_repeating_a_trial(method, jobs,
                                                                             tmp_path):
    log = str(tmp_path / "search.jsonl")
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(here=HERE), method, log,
                             str(jobs)], start_new_session=True)  # its own process group
    deadline = time.time() + 60                       # kill once 5 trials have finished and
    while time.time() < deadline:                     # a slow one was asked and is running
        if os.path.exists(log) and open(log).read().endswith("\n"):
            done = finished_records(log)
            if len(done) >= 5 and any(is_slow(r["params"]) and r["number"] not in done
                                      for r in log_records(log) if "status" not in r):
                break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)               # the search and its worker processes
    proc.wait()
    before = finished_records(log)
    asked = {r["number"]: r["params"] for r in log_records(log) if "status" not in r}
    running = {k: p for k, p in asked.items() if k not in before}
    assert len(before) >= 5 and running

    resumed = SEARCHES[method](slow_branin, BRANIN, log=log, resume=True, n_jobs=jobs,
                               **KILL_KW[method])
    n = KILL_N[method]
    finished = [r["number"] for r in log_records(log) if "status" in r]
    assert sorted(finished) == list(range(n))         # each once: none lost, run twice, or skipped
    after = finished_records(log)
    assert all(after[k] == r for k, r in before.items())            # never relabelled
    assert all(after[k]["params"] == p for k, p in running.items())  # run again as asked
    assert sorted(t.number for t in resumed.trials) == list(range(n))
    uninterrupted = SEARCHES[method](fast_branin, BRANIN, **KILL_KW[method])
    if jobs == 1 or method == "hyperband":           # (its rungs wait: parallel = sequential)
        assert trial_set(resumed) == trial_set(uninterrupted)
    elif method != "bayesian":                        # parallel: the same set of points
        assert sorted(p for _, p, _, _ in trial_set(resumed)) == \
            sorted(p for _, p, _, _ in trial_set(uninterrupted))


@pytest.mark.parametrize("method", ["grid", "random", "bayesian"])
def test_a_stopped_search_resumes_to_exactly_the_trials_of_one_that_never_stopped(method,
                                                                                 tmp_path):
    kw = dict(grid=dict(n_points=2), random=dict(n_trials=12, seed=1),
              bayesian=dict(n_trials=12, seed=1, n_initial=4))[method]
    log, calls = str(tmp_path / "s.jsonl"), []

    def stopped_at_5(p):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(p)
        return mixed_objective(p)

    first = SEARCHES[method](stopped_at_5, MIXED, log=log, **kw)
    assert first.interrupted and len(first.trials) == 5
    calls.clear()
    resumed = SEARCHES[method](lambda p: calls.append(p) or mixed_objective(p), MIXED, log=log,
                               resume=True, **kw)
    uninterrupted = SEARCHES[method](mixed_objective, MIXED, **kw)
    assert trial_set(resumed) == trial_set(uninterrupted)
    assert len(calls) == len(uninterrupted.trials) - 5   # the 5 finished ones are not run again


@pytest.mark.parametrize("method", ["random", "bayesian"])
def test_a_damaged_log_line_anywhere_reruns_that_trial_alone_under_its_number(method, tmp_path):
    kw = dict(n_trials=10, seed=3, **(dict(n_initial=4) if method == "bayesian" else {}))
    log = str(tmp_path / "s.jsonl")
    SEARCHES[method](branin, BRANIN, log=log, **kw)
    lines = open(log).read().splitlines()
    middle = next(i for i, line in enumerate(lines) if '"number": 5' in line and "status" in line)
    lines[middle] = lines[middle][:25]                # trial 5's result damaged mid-file
    lines[-1] = lines[-1][:-12]                       # and the last line cut short (no "\n")
    open(log, "w").write("\n".join(lines))
    calls = []
    with pytest.warns(UserWarning, match="skipped line"):
        resumed = SEARCHES[method](lambda p: calls.append(p) or branin(p), BRANIN, log=log,
                                   resume=True, **kw)
    uninterrupted = SEARCHES[method](branin, BRANIN, **kw)
    assert trial_set(resumed) == trial_set(uninterrupted)
    by_number = {t.number: t.params for t in uninterrupted.trials}
    assert calls == [by_number[5], by_number[9]]      # only the two damaged trials run again


def test_a_discrete_random_search_resumes_through_its_repeated_points(tmp_path):
    space = {"a": hpopt.Integer(0, 2), "b": hpopt.Choice(["x", "y"])}   # 6 combinations
    f = lambda p: p["a"] + (p["b"] == "y")
    log = str(tmp_path / "s.jsonl")
    hpopt.random_search(f, space, n_trials=8, seed=2, log=log)
    resumed = hpopt.random_search(f, space, n_trials=14, seed=2, log=log, resume=True)
    assert trial_set(resumed) == trial_set(hpopt.random_search(f, space, n_trials=14, seed=2))


def act_relu(x):                                      # Choice options that JSON cannot hold
    return max(x, 0.0)


def act_tanh(x):
    return math.tanh(x)


class Adam:
    pass


class SGD:
    pass


def test_a_choice_of_functions_classes_and_tuples_is_logged_and_resumed(tmp_path):
    space = {"act": hpopt.Choice([act_relu, act_tanh]), "opt": hpopt.Choice([Adam, SGD]),
             "shape": hpopt.Choice([(64, 64), (128,), None]), "x": hpopt.Real(-1, 1)}
    f = lambda p: p["act"](p["x"]) + (p["opt"] is SGD) + len(p["shape"] or ())
    log = str(tmp_path / "s.jsonl")
    hpopt.random_search(f, space, n_trials=4, seed=5, log=log)
    header = open(log).readline()
    assert "act_relu" in header and " at 0x" not in header
    resumed = hpopt.random_search(f, space, n_trials=8, seed=5, log=log, resume=True)
    assert trial_set(resumed) == trial_set(hpopt.random_search(f, space, n_trials=8, seed=5))
    assert all(t.params["act"] in (act_relu, act_tanh) for t in resumed.trials)


def test_choice_options_that_compare_equal_stay_apart_through_the_log(tmp_path):
    space = {"v": hpopt.Choice([1, 1.0, True, "1"])}
    log = str(tmp_path / "s.jsonl")
    hpopt.grid_search(lambda p: 0.0, space, log=log, catch=None)
    header, kept = open(log).readline(), [r for r in log_records(log) if "status" in r][:2]
    open(log, "w").write(header + "".join(json.dumps(r) + "\n" for r in kept))  # 2 of 4 done
    resumed = hpopt.grid_search(lambda p: 0.0, space, log=log, resume=True)
    assert [repr(t.params["v"]) for t in resumed.trials] == ["1", "1.0", "True", "'1'"]


def test_the_objective_gets_its_own_copy_of_params():
    def rude(p):                                      # edits and pops what it was given
        p["x"] = 99.0
        return p.pop("n") + 0.5

    for options in ({}, {"executor": concurrent.futures.ThreadPoolExecutor(2)}):
        for search in (hpopt.random_search, hpopt.bayesian_search):
            result = search(rude, SMALL, n_trials=6, seed=0, **options)
            assert all(-1 <= t.params["x"] <= 1 and "n" in t.params for t in result.trials)
            assert result.best_value == result.best_params["n"] + 0.5


def test_resume_refuses_a_log_of_other_settings_and_says_which(tmp_path):
    log = str(tmp_path / "g.jsonl")
    hpopt.grid_search(slow_square, SMALL, n_points=3, log=log)
    with pytest.raises(ValueError, match="n_points is 3, this one's is 4"):
        hpopt.grid_search(slow_square, SMALL, n_points=4, log=log, resume=True)
    log = str(tmp_path / "b.jsonl")
    hpopt.bayesian_search(slow_square, SMALL, n_trials=3, seed=1, n_initial=2, log=log)
    with pytest.raises(ValueError, match="n_initial is 2, this one's is 3"):
        hpopt.bayesian_search(slow_square, SMALL, n_trials=4, seed=1, n_initial=3, log=log,
                              resume=True)
    for call, match in [(lambda: hpopt.bayesian_search(slow_square, SMALL, 4, seed=2, n_initial=2,
                                                       log=log, resume=True), "seed is 1"),
                        (lambda: hpopt.random_search(slow_square, SMALL, 4, seed=1, log=log,
                                                     resume=True), "method is 'bayesian'"),
                        (lambda: hpopt.bayesian_search(slow_square, {"x": hpopt.Real(0, 1)}, 4,
                                                       seed=1, log=log, resume=True), "space")]:
        with pytest.raises(ValueError, match=match):
            call()
    assert len(finished_records(log)) == 3            # the refused runs wrote nothing


def test_a_log_belongs_to_one_search_and_holds_its_header_before_the_first_trial(tmp_path):
    log, seen = str(tmp_path / "s.jsonl"), []

    def objective(p):                                 # a second search on the same path
        seen.append(json.loads(open(log).readline())["method"])
        with pytest.raises(ValueError, match="already exists"):
            hpopt.random_search(slow_square, SMALL, n_trials=2, seed=1, log=log)
        with pytest.raises(ValueError, match="already exists"):
            hpopt.grid_search(slow_square, SMALL, log=log)
        return 1.0

    hpopt.random_search(objective, SMALL, n_trials=2, seed=1, log=log)
    assert seen == ["random", "random"] and len(finished_records(log)) == 2


@pytest.mark.parametrize("content", ["", "not json\n", '{"number": 0}\n', '[1, 2]\n'])
def test_a_file_without_a_valid_header_is_refused_and_left_as_it_is(content, tmp_path):
    log = tmp_path / "s.jsonl"
    log.write_text(content)
    with pytest.raises(ValueError, match="header of an hpopt log"):
        hpopt.random_search(slow_square, SMALL, n_trials=2, seed=1, log=str(log), resume=True)
    assert log.read_text() == content


@pytest.mark.parametrize("seed", [None, 1])
@pytest.mark.parametrize("content", ["binary junk", "a BOM before a valid header"])
def test_a_binary_file_or_a_bom_is_refused_as_no_hpopt_log_and_left_as_it_is(content, seed,
                                                                            tmp_path):
    log = tmp_path / "s.jsonl"
    if content == "binary junk":
        data = b"\xff\xfe\x00junk"                    # not UTF-8
    else:
        hpopt.random_search(slow_square, SMALL, n_trials=2, seed=1, log=str(log))
        data = b"\xef\xbb\xbf" + log.read_bytes()    # the UTF-8 byte order mark
    log.write_bytes(data)
    with pytest.raises(ValueError, match="header of an hpopt log") as info:
        hpopt.random_search(slow_square, SMALL, n_trials=2, seed=seed, log=str(log), resume=True)
    assert not isinstance(info.value, UnicodeDecodeError)
    assert log.read_bytes() == data


def test_an_empty_log_path_is_refused_before_any_trial_runs():
    calls = []
    with pytest.raises(ValueError, match="log"):
        hpopt.random_search(lambda p: calls.append(p) or 1.0, SMALL, n_trials=2, seed=0, log="")
    assert calls == []


@pytest.mark.parametrize("method", ["grid", "random", "bayesian"])
def test_resume_refuses_the_same_space_in_another_order(method, tmp_path):
    kw = dict(grid=dict(n_points=2), random=dict(n_trials=4, seed=1),
              bayesian=dict(n_trials=4, seed=1, n_initial=2))[method]
    log = str(tmp_path / "s.jsonl")
    SEARCHES[method](slow_square, SMALL, log=log, **kw)
    before = open(log).read()
    reordered = {"n": SMALL["n"], "x": SMALL["x"]}    # other points at each trial number
    with pytest.raises(ValueError, match="records another search") as info:
        SEARCHES[method](slow_square, reordered, log=log, resume=True, **kw)
    assert "space" in str(info.value)
    assert open(log).read() == before


@pytest.mark.parametrize("method, kw", [
    ("grid", dict(n_points=np.int64(2))),
    ("bayesian", dict(n_trials=4, seed=0, n_initial=np.int64(3))),
    ("successive_halving", dict(min_budget=np.int64(1), max_budget=np.int64(9), seed=0))],
    ids=["grid", "bayesian", "successive_halving"])
def test_numpy_integer_settings_are_logged_as_plain_ints_and_resume(method, kw, tmp_path):
    search = dict(SEARCHES, successive_halving=hpopt.successive_halving)[method]
    log = str(tmp_path / "s.jsonl")
    first = search(fast_branin, BRANIN, log=log, **kw)
    header = json.loads(open(log).readline())
    plain = {k: int(v) if isinstance(v, np.integer) else v for k, v in kw.items()}
    for key in kw:
        if isinstance(kw[key], np.integer):
            assert type(header[key]) is int and header[key] == plain[key]
    for spelling in (kw, plain):                      # either spelling resumes the log
        resumed = search(fast_branin, BRANIN, log=log, resume=True, **spelling)
        assert trial_set(resumed) == trial_set(first)


@pytest.mark.parametrize("damage", ["a finished trial's number", "an asked trial's number"])
def test_a_trial_number_far_past_n_trials_is_skipped_with_a_warning(damage, tmp_path):
    log = str(tmp_path / "s.jsonl")
    hpopt.random_search(slow_square, SMALL, n_trials=6, seed=0, log=log)
    lines = open(log).read().splitlines()
    if damage == "a finished trial's number":
        i = next(i for i, line in enumerate(lines) if '"status"' in line)
        lines[i] = json.dumps(dict(json.loads(lines[i]), number=10 ** 9))
    else:
        asked = json.loads(lines[1])
        lines.append(json.dumps({"number": 10 ** 9, "params": asked["params"], "budget": None}))
    open(log, "w").write("\n".join(lines) + "\n")

    def runaway(trial):                               # a search that would not end
        runaway.calls += 1
        if runaway.calls > 50:
            raise RuntimeError("the resumed search ran 50 trials more than it asked for")
    runaway.calls = 0
    with pytest.warns(UserWarning, match="skipped line"):
        resumed = hpopt.random_search(slow_square, SMALL, n_trials=6, seed=0, log=log,
                                      resume=True, callback=runaway)
    assert sorted(t.number for t in resumed.trials) == list(range(6))
    assert trial_set(resumed) == trial_set(hpopt.random_search(slow_square, SMALL, 6, seed=0))


RESUME_SCRIPT = """
import sys, hpopt
space = {"x": hpopt.Real(-1, 1), "n": hpopt.Integer(0, 3)}
hpopt.random_search(lambda p: 0.0, space, n_trials=5, seed=1, log=sys.argv[1], resume=True)
"""


@pytest.mark.parametrize("where", ["this process", "another process"])
def test_two_searches_cannot_resume_one_log_at_once(where, tmp_path):
    log = str(tmp_path / "s.jsonl")
    hpopt.random_search(slow_square, SMALL, n_trials=2, seed=1, log=log)   # a log to resume
    second = []                                       # how the second search ended

    def objective(p):                                 # the first search is running
        if not second and where == "this process":
            try:
                hpopt.random_search(slow_square, SMALL, n_trials=5, seed=1, log=log,
                                    resume=True)
                second.append("it ran")
            except ValueError as e:
                second.append(f"ValueError: {e}")
        elif not second:
            child = subprocess.run([sys.executable, "-c", RESUME_SCRIPT, log], cwd=HERE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
            second.append(child.stderr.decode() if child.returncode else "it ran")
        return slow_square(p)

    hpopt.random_search(objective, SMALL, n_trials=5, seed=1, log=log, resume=True)
    assert "ValueError" in second[0] and "in use" in second[0]
    finished = [r["number"] for r in log_records(log) if "status" in r]
    assert sorted(finished) == list(range(5))         # each trial finished once, by one search
    hpopt.random_search(slow_square, SMALL, n_trials=5, seed=1, log=log, resume=True)  # free again


def test_the_log_is_strict_json_with_null_for_a_failed_value(tmp_path):
    log = str(tmp_path / "s.jsonl")
    hpopt.random_search(lambda p: math.nan if p["n"] else 1.0, SMALL, n_trials=6, seed=0, log=log)
    text = open(log).read()

    def no_constants(name):
        raise AssertionError(f"{name} in the log")
    records = [json.loads(line, parse_constant=no_constants) for line in text.splitlines()[1:]]
    assert any(r.get("status") == "failed" and r["value"] is None for r in records)


def test_searches_run_on_a_dask_cluster_through_its_executor():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        executor = client.get_executor()
        random = hpopt.random_search(slow_square, SMALL, n_trials=8, seed=2, executor=executor)
        bayes = hpopt.bayesian_search(slow_square, SMALL, n_trials=10, seed=2, n_initial=4,
                                      executor=executor)
    assert trial_set(random) == trial_set(hpopt.random_search(slow_square, SMALL, n_trials=8, seed=2))
    assert len(bayes.trials) == 10 and len({tuple(t.params.values()) for t in bayes.trials}) == 10


# ============================================================================ hpopt.py: successive halving

def test_hyperband_brackets_are_those_of_li_et_al_table_1():
    # Li et al. (2018), Table 1: R = 81, eta = 3; each bracket's (n_i, r_i), typed from the paper
    assert hpopt.hyperband_brackets(1, 81, 3) == [
        [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
        [(34, 3), (11, 9), (3, 27), (1, 81)],
        [(15, 9), (5, 27), (1, 81)],
        [(8, 27), (2, 81)],
        [(5, 81)]]
    assert hpopt.hyperband_brackets(2, 16, 2)[0] == [(8, 2), (4, 4), (2, 8), (1, 16)]
    assert hpopt.hyperband_brackets(1, 10, 3)[0] == [(9, 1), (3, 3), (1, 10)]  # top rung: R


def learning_curve(p, budget):
    """Error falls with the budget towards each point's own final value."""
    final = (p["x"] - 0.3) ** 2 + 0.1 * p["n"]
    return final + (1 + p["x"]) / budget


@pytest.mark.parametrize("search", [hpopt.successive_halving, hpopt.hyperband])
def test_each_rung_promotes_exactly_its_best_1_over_eta(search):
    result = search(learning_curve, SMALL, min_budget=1, max_budget=27, eta=3, seed=4)
    brackets = hpopt.hyperband_brackets(1, 27, 3)[:None if search is hpopt.hyperband else 1]
    trials = sorted(result.trials, key=lambda t: t.number)
    start = 0
    for bracket in brackets:
        previous = None
        for n, r in bracket:
            rung, start = trials[start:start + n], start + n
            assert {t.budget for t in rung} == {r}
            if previous is not None:                  # brute force: the best n by value
                best = sorted(previous, key=lambda t: t.value)[:n]
                assert [tuple(t.params.items()) for t in rung] == \
                    [tuple(t.params.items()) for t in best]
            previous = rung
    assert start == len(trials)
    assert sum(t.budget for t in trials) == sum(n * r for b in brackets for n, r in b)
    top = [t for t in trials if t.budget == 27]
    assert result.best_value == min(t.value for t in top) and result.best_trial.budget == 27


def test_the_best_is_taken_at_the_largest_budget_reached():
    overfits = lambda p, budget: budget + p["x"]      # lowest values at the smallest budget
    result = hpopt.successive_halving(overfits, SMALL, 1, 9, seed=0)
    assert result.best_trial.budget == 9
    assert result.best_value == min(t.value for t in result.trials if t.budget == 9)


def test_failed_trials_are_never_promoted_before_a_success():
    def sometimes_fails(p, budget):
        return math.nan if p["n"] == 0 else learning_curve(p, budget)
    result = hpopt.successive_halving(sometimes_fails, SMALL, 1, 9, seed=1)
    first = [t for t in result.trials if t.budget == 1]
    promoted = [t for t in result.trials if t.budget == 3]
    n_ok = sum(t.status == "ok" for t in first)
    assert all(t.params["n"] != 0 for t in promoted[:n_ok])


def test_a_thread_pool_halving_run_spends_the_same_budget_on_the_same_points():
    sequential = hpopt.hyperband(learning_curve, SMALL, 1, 9, seed=3)
    with concurrent.futures.ThreadPoolExecutor(3) as executor:
        threads = hpopt.hyperband(learning_curve, SMALL, 1, 9, seed=3, executor=executor)
    assert trial_set(threads) == trial_set(sequential)


@pytest.mark.parametrize("method, kw", [
    ("grid", dict(n_points=3)),
    ("successive_halving", dict(min_budget=1, max_budget=9, seed=0)),
    ("hyperband", dict(min_budget=1, max_budget=9, seed=0))], ids=["grid", "halving", "hyperband"])
def test_n_trials_caps_any_search_at_its_first_trials(method, kw):
    search = dict(SEARCHES, successive_halving=hpopt.successive_halving)[method]
    full = search(fast_branin, BRANIN, **kw)
    capped = search(fast_branin, BRANIN, n_trials=5, **kw)
    assert len(capped.trials) == 5
    assert trial_set(capped) == trial_set(full)[:5]   # sorted by number: the first five
    if method == "grid":
        n_all = 3 * 3                                 # 3 values of x times 3 of y
    else:
        brackets = hpopt.hyperband_brackets(1, 9, 3)[:None if method == "hyperband" else 1]
        n_all = sum(n for bracket in brackets for n, _ in bracket)
    assert len(full.trials) == n_all                  # without n_trials: every point


@pytest.mark.parametrize("call, error, match", [
    (lambda: hpopt.successive_halving(learning_curve, SMALL, 3, 3), ValueError,
     "max_budget must be an int >= 4"),
    (lambda: hpopt.hyperband(learning_curve, SMALL, 0, 9), ValueError,
     "min_budget must be an int >= 1"),
    (lambda: hpopt.hyperband(learning_curve, SMALL, 1.0, 9), ValueError,
     "min_budget must be an int"),
    (lambda: hpopt.hyperband(learning_curve, SMALL, 1, 9, eta=1), ValueError, "eta"),
    (lambda: hpopt.hyperband(slow_square, SMALL, 1, 9), TypeError, r"\(params, budget\)"),
])
def test_halving_rejects_bad_input_before_the_first_trial(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ============================================================================ nn.py

def loss_of(theta, sizes, X, y, activation, masks):
    W, b = nn.layer_views(theta, sizes)
    return nn.softmax_cross_entropy(nn.forward(W, b, X, activation, masks)[2], y)[0]


@pytest.mark.parametrize("activation, dropout", [("tanh", 0.0), ("relu", 0.0), ("tanh", 0.3),
                                                 ("relu", 0.3)])
def test_backprop_matches_central_differences_for_every_parameter(activation, dropout):
    sizes = [3, 5, 4, 3]
    model = nn.MLP(sizes, activation=activation, seed=1, dtype=np.float64)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    masks = None if dropout == 0 else [nn.dropout_mask(9, np.arange(6), h, dropout, np.float64)
                                       for h in sizes[1:-1]]
    A, H, logits = nn.forward(model.W, model.b, X, activation, masks)
    dW, db = nn.backward(model.W, A, H, masks, nn.softmax_cross_entropy(logits, y)[1], activation)
    grad = np.concatenate([g.ravel() for pair in zip(dW, db) for g in pair])
    h, theta = 1e-6, model.theta.copy()
    fd = np.array([(loss_of(theta + h * e, sizes, X, y, activation, masks)
                    - loss_of(theta - h * e, sizes, X, y, activation, masks)) / (2 * h)
                   for e in np.eye(len(theta))])
    assert np.allclose(grad, fd, rtol=1e-5, atol=1e-8)


def test_float32_validation_loss_stays_finite_when_a_true_class_probability_underflows():
    model = nn.MLP([2, 8, 3], seed=0)                 # float32
    model.theta *= 300                                # confident: some probabilities are 0
    X = np.random.default_rng(0).standard_normal((20, 2)).astype(np.float32)
    P = model.predict_proba(X)
    assert P.min() == 0.0
    history = nn.train(model, X, P.argmax(axis=1), epochs=1, batch_size=20, lr=1e-12,
                       X_val=X, y_val=P.argmin(axis=1))  # validate on the impossible class
    tiny = np.finfo(np.float32).tiny                  # the floor: -log(tiny) = 87.3
    assert 0 < history["val_loss"][0] <= -np.log(tiny) * (1 + 1e-6)


def test_softmax_cross_entropy_survives_huge_logits():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    loss, G = nn.softmax_cross_entropy(logits, np.array([1, 2]))
    assert loss == pytest.approx(1e4) and np.all(np.isfinite(G))   # row 1 pays 2e4, row 2 pays 0


TWIN_DTYPES = {np.float64: 1e-10, np.float32: 1e-4}              # dtype: relative tolerance


@given(st.integers(1, 9), st.integers(1, 7), st.integers(0, 10 ** 6), st.sampled_from([0, 1]),
       st.sampled_from([0.0, 0.4]), st.sampled_from(list(TWIN_DTYPES)))
def test_hidden_forward_twin_equals_the_reference_and_its_dropout(b, h, seed, act, p, dtype):
    rng = np.random.default_rng(seed)
    Z, bias = rng.standard_normal((b, h)).astype(dtype), rng.standard_normal(h).astype(dtype)
    rows, key = rng.integers(0, 1000, b), np.uint64(rng.integers(2 ** 62))
    H_ref = nn.hidden_forward(Z, bias, ["relu", "tanh"][act])
    M_ref = nn.dropout_mask(key, rows, h, p, dtype)
    H, M, A = Z.copy(), np.ones((b, h), dtype), np.full((b, h), 7, dtype)
    nn.hidden_forward_nb(H, bias, act, rows, key, p, dtype(1 / (1 - p)), M, A)
    assert np.allclose(H, H_ref, rtol=TWIN_DTYPES[dtype], atol=1e-7)
    if p > 0:                                                    # the very same mask
        assert np.array_equal(M, M_ref) and np.array_equal(A, H * M_ref)
    else:                                                        # A is H: A, M untouched
        assert np.all(M == 1) and np.all(A == 7)


@given(st.integers(1, 9), st.integers(1, 7), st.integers(0, 10 ** 6),
       st.sampled_from(list(TWIN_DTYPES)))
def test_softmax_cross_entropy_twin_equals_the_reference(b, c, seed, dtype):
    rng = np.random.default_rng(seed)
    Z, bias = (3 * rng.standard_normal((b, c))).astype(dtype), rng.standard_normal(c).astype(dtype)
    y = rng.integers(0, c, b)
    loss_ref, G_ref = nn.softmax_cross_entropy(Z + bias, y)
    G, db = np.empty((b, c), dtype), np.full(c, 7, dtype)
    loss = nn.softmax_cross_entropy_nb(Z, bias, y, G, db)
    assert loss == pytest.approx(loss_ref, rel=TWIN_DTYPES[dtype])
    assert np.allclose(G, G_ref, rtol=TWIN_DTYPES[dtype], atol=1e-7)
    assert np.allclose(db, G_ref.sum(axis=0), rtol=TWIN_DTYPES[dtype], atol=1e-7)


@given(st.integers(1, 9), st.integers(1, 7), st.integers(0, 10 ** 6), st.sampled_from([0, 1]),
       st.sampled_from([0.0, 0.4]), st.sampled_from(list(TWIN_DTYPES)))
def test_hidden_backward_twin_equals_the_reference(b, h, seed, act, p, dtype):
    rng = np.random.default_rng(seed)
    name = ["relu", "tanh"][act]
    G, H = (rng.standard_normal((b, h)).astype(dtype) for _ in range(2))
    H = nn.hidden_forward(H, np.zeros(h, dtype), name)           # an H that f can produce
    M = nn.dropout_mask(int(rng.integers(2 ** 62)), np.arange(b), h, p, dtype)
    G_ref = nn.hidden_backward(G, H, M if p > 0 else None, name)
    db = np.full(h, 7, dtype)
    nn.hidden_backward_nb(G, H, M, act, db)                      # M all ones when p = 0
    assert np.allclose(G, G_ref, rtol=TWIN_DTYPES[dtype], atol=1e-7)
    assert np.allclose(db, G_ref.sum(axis=0), rtol=TWIN_DTYPES[dtype], atol=1e-6)


@given(st.integers(1, 50), st.integers(0, 10 ** 6), st.sampled_from(list(TWIN_DTYPES)))
def test_sgd_momentum_twin_equals_the_reference(P, seed, dtype):
    rng = np.random.default_rng(seed)
    theta, velocity, grad = (rng.standard_normal(P).astype(dtype) for _ in range(3))
    decay = rng.integers(0, 2, P).astype(dtype)                  # 1 on weights, 0 on biases
    t_ref, v_ref = theta.copy(), velocity.copy()
    nn.sgd_momentum(t_ref, v_ref, grad, 0.1, 0.9, 0.01, decay)
    nn.sgd_momentum_nb(theta, velocity, grad, np.array([0.1, 0.9, 0.01], dtype), decay)
    assert np.allclose(theta, t_ref, rtol=TWIN_DTYPES[dtype], atol=1e-6)
    assert np.allclose(velocity, v_ref, rtol=TWIN_DTYPES[dtype], atol=1e-6)


@given(st.lists(st.integers(1, 6), min_size=2, max_size=4), st.integers(1, 9),
       st.integers(0, 10 ** 6), st.sampled_from(["relu", "tanh"]), st.sampled_from([0.0, 0.4]))
def test_forward_and_backward_twins_equal_the_references(sizes, b, seed, activation, p):
    """The whole batch step on the arrays of _work_arrays: logits, loss, every dW and db."""
    model = nn.MLP(sizes, activation=activation, dropout=p, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((b, sizes[0])), rng.integers(0, sizes[-1], b)
    rows, keys = rng.integers(0, 1000, b), rng.integers(0, 2 ** 62, len(sizes)).astype(np.uint64)
    masks = None if p == 0 else [nn.dropout_mask(k, rows, h, p, np.float64)
                                 for k, h in zip(keys, sizes[1:-1])]
    A_ref, H_ref, logits = nn.forward(model.W, model.b, X, activation, masks)
    loss_ref, G_ref = nn.softmax_cross_entropy(logits, y)
    dW_ref, db_ref = nn.backward(model.W, A_ref, H_ref, masks, G_ref, activation)
    A, H, M, Z, G = nn._work_arrays(sizes, b, p, np.float64)
    A[0] = X
    nn.forward_nb(model.W, model.b, A, H, M, Z, rows, keys, nn.ACTIVATIONS[activation], p,
                  1 / (1 - p))
    dW, db = nn.layer_views(np.full_like(model.theta, 7), sizes)
    loss = nn.softmax_cross_entropy_nb(Z, model.b[-1], y, G[-1], db[-1])
    nn.backward_nb(model.W, A, H, M, G, dW, db, nn.ACTIVATIONS[activation])
    assert np.allclose(Z + model.b[-1], logits) and loss == pytest.approx(loss_ref)
    for ours, ref in zip(dW + db, dW_ref + db_ref):
        assert np.allclose(ours, ref, rtol=1e-9, atol=1e-12)


@pytest.fixture
def spirals():
    X, y = nn.make_spirals(200, 3, 0.2, seed=0)
    return nn.train_val_test_split(X, y, seed=0)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_numba_training_matches_the_numpy_reference(spirals, monkeypatch, dropout):
    if not nn.USE_NUMBA:
        pytest.skip("numba is not installed: only the NumPy path runs here")
    (X, y), _, _ = spirals
    runs = []
    for use_numba in (True, False):
        monkeypatch.setattr(nn, "USE_NUMBA", use_numba)
        model = nn.MLP([2, 16, 16, 3], dropout=dropout, seed=3, dtype=np.float64)
        history = nn.train(model, X, y, epochs=5, batch_size=25, lr=0.05, weight_decay=1e-3)
        runs.append((model.theta.copy(), history["loss"]))
    assert np.allclose(runs[0][0], runs[1][0], rtol=1e-5, atol=1e-8)
    assert np.allclose(runs[0][1], runs[1][1], rtol=1e-5)


def test_twins_run_unchanged_with_the_jit_disabled_and_without_numba():
    code = ("import numpy as np, nn; X, y = nn.make_spirals(20, 3, 0.2, 0);"
            "m = nn.MLP([2, 6, 3], dropout=0.2, dtype=np.float64);"
            "h = nn.train(m, X, y, epochs=2, batch_size=7, lr=0.1); print(nn.USE_NUMBA, repr(h['loss']))")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    jit_off = subprocess.run([sys.executable, "-c", code], cwd=HERE, env=env, capture_output=True,
                             text=True, check=True).stdout.split(" ", 1)
    no_numba = subprocess.run([sys.executable, "-c", "import sys; sys.modules['numba'] = None;" + code],
                              cwd=HERE, capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert no_numba[0] == "False"
    assert np.allclose(eval(jit_off[1]), eval(no_numba[1]), rtol=1e-10)


def test_the_same_seed_gives_the_same_weights_and_another_seed_does_not():
    a, b, c = nn.MLP([4, 8, 2], seed=1), nn.MLP([4, 8, 2], seed=1), nn.MLP([4, 8, 2], seed=2)
    assert np.array_equal(a.theta, b.theta) and not np.array_equal(a.theta, c.theta)
    assert nn.MLP([100, 50, 10], seed=0).W[0].std() == pytest.approx(math.sqrt(2 / 100), rel=0.05)


@pytest.mark.parametrize("use_numba", [True, False])
def test_training_in_pieces_equals_training_at_once(spirals, monkeypatch, use_numba):
    """train keeps the momentum buffer and the epoch count on the model, like an optimiser
    object: four calls of one epoch are the same run as one call of four epochs."""
    if use_numba and not nn.USE_NUMBA:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(nn, "USE_NUMBA", use_numba)
    (X, y), _, _ = spirals
    whole, pieces = (nn.MLP([2, 16, 3], dropout=0.2, seed=4) for _ in range(2))
    losses = nn.train(whole, X, y, epochs=4, batch_size=32, lr=0.05, seed=7)["loss"]
    losses_in_pieces = [nn.train(pieces, X, y, epochs=1, batch_size=32, lr=0.05, seed=7)["loss"][0]
                        for _ in range(4)]
    assert np.array_equal(whole.theta, pieces.theta) and losses == losses_in_pieces
    assert whole.epochs_trained == pieces.epochs_trained == 4
    fresh = nn.MLP([2, 16, 3], dropout=0.2, seed=4)               # a reset optimiser differs
    nn.train(fresh, X, y, epochs=2, batch_size=32, lr=0.05, seed=7)
    fresh.velocity[:], fresh.epochs_trained = 0, 0
    nn.train(fresh, X, y, epochs=2, batch_size=32, lr=0.05, seed=7)
    assert not np.allclose(fresh.theta, whole.theta)


def test_a_sensible_configuration_learns_the_spirals(spirals):
    (X, y), (X_val, y_val), _ = spirals
    model = nn.MLP([2, 64, 64, 3], seed=0)
    history = nn.train(model, X, y, epochs=60, batch_size=32, lr=0.05, X_val=X_val, y_val=y_val)
    assert history["val_accuracy"][-1] >= 0.95 and not history["diverged"]
    assert history["loss"][-1] < history["loss"][0] and len(history["val_loss"]) == 60


def test_a_huge_learning_rate_diverges_cleanly(spirals):
    (X, y), _, _ = spirals
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # no warning spam either
        for use_numba in {nn.USE_NUMBA, False}:
            nn_use, nn.USE_NUMBA = nn.USE_NUMBA, use_numba
            try:
                history = nn.train(nn.MLP([2, 32, 32, 3], seed=0), X, y, epochs=20,
                                   batch_size=16, lr=1e3)
            finally:
                nn.USE_NUMBA = nn_use
            assert history["diverged"] and len(history["loss"]) < 20
            assert not history["loss"][-1] <= nn.DIVERGED * math.log(3)
            overflow = nn.train(nn.MLP([2, 8, 3], seed=0), X * 3e38, y, epochs=3, batch_size=16,
                                lr=0.1)                   # float32 products overflow: NaN loss
            assert overflow["diverged"] and not math.isfinite(overflow["loss"][-1])


@pytest.mark.parametrize("call, error, match", [
    (lambda: nn.MLP([3]), ValueError, "sizes"),
    (lambda: nn.MLP([3, 0, 2]), ValueError, "sizes"),
    (lambda: nn.MLP([3, 2], activation="gelu"), ValueError, "activation"),
    (lambda: nn.MLP([3, 2], dropout=1.0), ValueError, "dropout"),
    (lambda: nn.MLP([3, 2], device="tpu"), ValueError, "device"),
    (lambda: nn.train(nn.MLP([3, 2]), np.ones(3), [0], 1, 1, 0.1), ValueError, "X must be 2-D"),
    (lambda: nn.train(nn.MLP([3, 2]), np.ones((2, 4)), [0, 1], 1, 1, 0.1), ValueError, "3 columns"),
    (lambda: nn.train(nn.MLP([3, 2]), np.ones((2, 3)), [0, 2], 1, 1, 0.1), ValueError, r"\[0, 2\)"),
    (lambda: nn.train(nn.MLP([3, 2]), np.ones((2, 3)), [0.5, 1], 1, 1, 0.1), ValueError, "integer"),
    (lambda: nn.train(nn.MLP([3, 2]), np.ones((2, 3)), [0, 1, 1], 1, 1, 0.1), ValueError, "one label"),
    (lambda: nn.train(nn.MLP([3, 2]), np.full((2, 3), np.nan), [0, 1], 1, 1, 0.1), ValueError, "NaN"),
    (lambda: nn.train(nn.MLP([3, 2]), np.ones((2, 3)), [0, 1], 1, 1, 0.0), ValueError, "lr"),
    (lambda: nn.train(nn.MLP([3, 2]), np.ones((2, 3)), [0, 1], 0, 1, 0.1), ValueError, "epochs"),
    (lambda: nn.train(nn.MLP([3, 2]), np.ones((2, 3)), [0, 1], 1, 0, 0.1), ValueError, "batch_size"),
    (lambda: nn.train(nn.MLP([3, 2]), np.ones((2, 3)), [0, 1], 1, 1, 0.1, momentum=1.0),
     ValueError, "momentum"),
])
def test_nn_rejects_bad_input_with_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_any_seed_trains_and_dropout_masks_agree_across_paths():
    X, y = nn.make_spirals(10, 3, 0.2, 0)
    history = nn.train(nn.MLP([2, 4, 3], dropout=0.3, seed=2 ** 40), X, y, epochs=2,
                       batch_size=8, lr=0.1, seed=2 ** 62)
    assert all(math.isfinite(v) for v in history["loss"])
    with pytest.raises(ValueError, match="seed"):
        nn.train(nn.MLP([2, 4, 3]), X, y, epochs=1, batch_size=8, lr=0.1, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        nn.MLP([2, 4, 3], seed=-1)


def test_a_batch_larger_than_the_data_is_one_full_batch():
    X, y = nn.make_spirals(10, 3, 0.2, 0)
    history = nn.train(nn.MLP([2, 4, 3]), X, y, epochs=2, batch_size=10_000, lr=0.1)
    assert len(history["loss"]) == 2 and all(math.isfinite(v) for v in history["loss"])


def test_the_gpu_path_equals_the_cpu_path(spirals):
    cupy = pytest.importorskip("cupy")
    if not nn._gpu_available():
        pytest.skip("CuPy is installed but no GPU is visible")
    (X, y), (X_val, y_val), _ = spirals
    for dropout in (0.0, 0.2):
        cpu = nn.MLP([2, 32, 32, 3], dropout=dropout, seed=0, dtype=np.float64)
        gpu = nn.MLP([2, 32, 32, 3], dropout=dropout, seed=0, dtype=np.float64, device="gpu")
        h_cpu = nn.train(cpu, X, y, epochs=5, batch_size=32, lr=0.05, X_val=X_val, y_val=y_val)
        h_gpu = nn.train(gpu, X, y, epochs=5, batch_size=32, lr=0.05, X_val=X_val, y_val=y_val)
        assert np.allclose(cupy.asnumpy(gpu.theta), cpu.theta, rtol=1e-4, atol=1e-6)
        assert np.allclose(h_gpu["loss"], h_cpu["loss"], rtol=1e-4)
        assert isinstance(gpu.predict(X_val), np.ndarray)


# ============================================================================ demo.py and README.md

def test_the_quick_demo_prints_a_line_per_trial_a_table_and_a_chart(capsys):
    import demo
    results = demo.main(["--quick", "--budget", "5"])
    out = capsys.readouterr().out
    assert "method" in out and "test accuracy" in out and "best validation error so far" in out
    assert len(re.findall(r"^(grid|random|bayesian|halving) +trial", out, re.M)) == sum(
        len(r.trials) for r in results.values())
    for method in ("random", "bayesian"):
        assert len(results[method].trials) == 5
    assert len(results["grid"].trials) <= 5
    halving = results["halving"].trials                # 9 nets at 9 epochs, 3 at 27, 1 at 81
    assert [t.budget for t in halving] == [9] * 9 + [27] * 3 + [81]
    table = {line.split()[0]: line.split() for line in out.splitlines()
             if line.split()[:1] in (["grid"], ["halving"]) and "trial" not in line}
    assert int(table["halving"][4]) == 9 * 9 + 3 * 27 + 81     # the epochs column
    assert int(table["grid"][4]) == sum(t.params["epochs"] for t in results["grid"].trials)
    spent = max(sum(demo.epochs_of(t) for t in r.trials) for r in results.values())
    assert re.search(rf"^ +0 +{spent}  epochs trained$", out, re.M)   # the chart's x axis


def test_the_full_demo_runs_hyperband_and_names_it_so(capsys):
    import demo
    results = demo.main(["--budget", "1"])
    out = capsys.readouterr().out
    assert list(results) == ["grid", "random", "bayesian", "hyperband"]
    budgets = [t.budget for t in results["hyperband"].trials]   # four brackets, eta = 3
    assert len(budgets) == 69 and sum(budgets) == 2115
    assert len(re.findall(r"^hyperband trial", out, re.M)) == 69 and "halving" not in out


def test_the_chart_draws_each_race_against_the_epochs_it_spent():
    import demo
    chart = demo.ascii_chart({"grid": ([10, 20], [0.5, 0.2]), "random": ([40], [0.3])},
                             width=4, height=4).splitlines()
    assert chart[:4] == ["  0.500 |G   ",                 # one column per 10 epochs:
                         "  0.400 |    ",                 # grid stops when its 20 are spent,
                         "  0.300 |   R",                 # random's one trial ends at 40
                         "  0.200 | G  "]
    assert chart[5] == "         0 40  epochs trained"


def test_the_grid_never_counts_more_values_than_a_dimension_has():
    import demo
    space = demo.blend_space(quick=False)
    grid = demo.grid_space(space, 2000)
    sizes = {name: len(dim.options) for name, dim in grid.items()}
    assert sizes["n_layers"] == 4 and sizes["batch_size"] == 4   # all there are
    assert math.prod(sizes.values()) <= 2000
    assert len(hpopt.run(hpopt.GridSearch(grid, n_points=1), lambda p: 0.0, 10 ** 4).trials) \
        == math.prod(sizes.values())
    for name in ("lr", "dropout", "epochs"):             # as large as the budget allows
        assert math.prod(sizes.values()) // sizes[name] * (sizes[name] + 1) > 2000


def sobol_first_order(f, sample, n, rng):
    """Monte-Carlo first-order Sobol indices Var(E[f | x_i]) / Var(f): the mean of
    f(B) (f(AB_i) - f(A)) over A, B independent samples and AB_i = A with column i from B
    (Saltelli et al. 2010, Variance based sensitivity analysis of model output, Table 2)."""
    A, B = sample(n, rng), sample(n, rng)
    fA, fB = f(A), f(B)
    variance = np.var(np.concatenate([fA, fB]))
    return {i: np.mean(fB * (f({**A, i: B[i]}) - fA)) / variance for i in A}


def test_relevance_ranks_hyperparameters_as_their_sobol_indices_and_an_ignored_one_last():
    import demo
    space = {"x1": hpopt.Real(0.0, 1.0), "x2": hpopt.Real(-1.0, 1.0),
             "c": hpopt.Choice(["a", "b", "c"]), "x3": hpopt.Real(0.0, 2.0),
             "ignored": hpopt.Real(0.0, 1.0)}
    effect = {"a": 0.0, "b": 0.5, "c": -0.5}

    def f(x):                                         # additive, columns of arrays
        return 4 * x["x1"] + np.sin(2 * x["x2"]) + np.vectorize(effect.get)(x["c"]) \
            + 0.4 * x["x3"] + 0 * x["ignored"]

    def sample(n, rng):
        return {"x1": rng.uniform(0, 1, n), "x2": rng.uniform(-1, 1, n),
                "c": rng.choice(["a", "b", "c"], n), "x3": rng.uniform(0, 2, n),
                "ignored": rng.uniform(0, 1, n)}
    sobol = sobol_first_order(f, sample, 200_000, np.random.default_rng(0))
    truth = sorted(sobol, key=sobol.get, reverse=True)
    assert truth == ["x1", "x2", "c", "x3", "ignored"]   # the estimate sees the design
    for seed in range(3):
        trials = hpopt.run(hpopt.RandomSearch(space, seed=seed),
                           lambda p: float(f({k: np.array([v]) for k, v in p.items()})[0]),
                           40).trials
        ranked = demo.relevance(space, trials)
        assert list(ranked) == truth, (seed, ranked, sobol)
        assert 0 < ranked["ignored"] < 0.2 * ranked["x3"]   # next to nothing, not a tie


def test_the_demo_plot_writes_two_pngs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import demo
    path = tmp_path / "race.png"
    demo.main(["--quick", "--budget", "4", "--plot", str(path)])
    for png in (path, tmp_path / "race_steps.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def artist(ax, label):
    """The one line or scatter on ax with this legend label."""
    found = [a for a in ax.lines + ax.collections if a.get_label() == label]
    assert len(found) == 1, f"{label!r}: {[a.get_label() for a in ax.lines + ax.collections]}"
    return found[0]


def test_the_demo_plot_shows_the_race_what_mattered_and_the_gp_of_the_last_choice(tmp_path):
    pytest.importorskip("matplotlib")
    import demo
    space = demo.blend_space(quick=True)

    def objective(p):                                 # cheap: best near lr = 0.03
        return (np.log10(p["lr"]) + 1.5) ** 2 + 0.1 * p["n_layers"] + p["dropout"]
    result = hpopt.run(hpopt.BayesianSearch(space, seed=0, n_initial=5), objective, 10)
    random = hpopt.run(hpopt.RandomSearch(space, seed=0), objective, 6)
    results = {"random": random, "bayesian": result}
    fig, _ = demo.plot(str(tmp_path / "race.png"), results, space)
    ax_race, ax_mattered, ax_gp, ax_ei = fig.axes
    for method, r in results.items():                 # best so far against epochs spent
        x, y = artist(ax_race, method).get_data()
        assert np.array_equal(x, np.cumsum([t.params["epochs"] for t in r.trials]))
        assert np.array_equal(y, r.best_so_far)
    mattered = demo.relevance(space, result.trials)
    assert [t.get_text() for t in ax_mattered.get_yticklabels()] == list(mattered)[::-1]
    assert np.allclose([p.get_width() for p in ax_mattered.patches], list(mattered.values())[::-1])
    seen, last = result.trials[:-1], result.trials[-1]   # the GP as the last trial was chosen
    lr = np.array([t.params["lr"] for t in seen])
    warped = hpopt.warp(np.array([t.value for t in seen]))
    assert np.allclose(artist(ax_gp, "trials").get_offsets(), np.column_stack([lr, warped]))
    star = artist(ax_gp, "chosen (GP mean there)").get_offsets()[0]
    model = gp.GP("matern52", log_prior=gp.bo_log_prior).fit(
        hpopt.gp_inputs(space, np.array([hpopt.to_unit(space, t.params) for t in seen])), warped)
    X = hpopt.gp_inputs(space, hpopt.to_unit(space, last.params)[None, :])
    assert star[0] == last.params["lr"] and np.isclose(star[1], model.predict(X)[0])
    x, mean = artist(ax_gp, "GP mean").get_data()
    assert np.ptp(mean) > 0.5                         # not a flat line
    best_seen = min(seen, key=lambda t: t.value).params["lr"]   # it has seen where lr is
    assert abs(np.log10(x[np.argmin(mean)] / best_seen)) < 0.5   # good (its best trial's)
    log_ei = ax_ei.lines[0].get_ydata()
    assert np.all(np.isfinite(log_ei)) and np.ptp(log_ei) > 1


def test_the_demo_steps_figure_follows_a_1d_search():
    pytest.importorskip("matplotlib")
    import demo
    beliefs = demo.step_beliefs(steps=(3, 4, 5, 6))
    searcher = hpopt.BayesianSearch({"x": hpopt.Real(0.0, 1.0)}, seed=0, n_initial=3)
    xs = []                                           # the same search, replayed here
    for _ in range(7):
        x = searcher.ask()[0]["x"]
        searcher.tell({"x": x}, float((6 * x - 2) ** 2 * np.sin(12 * x - 4)))
        xs.append(x)
    for k, b in beliefs.items():
        assert np.allclose(b["x_seen"], xs[:k]) and b["x_chosen"] == xs[k]
        assert np.array_equal(np.argsort(b["y_seen"]), np.argsort(demo.forrester(np.array(xs[:k]))))
        assert np.interp(xs[k], b["x"], b["log_ei"]) > b["log_ei"].max() - 0.5  # chosen: max EI


def test_the_demo_reads_csv_and_npz_and_names_a_bad_file(tmp_path, capsys):
    import demo
    X, y = nn.make_spirals(20, 2, 0.1, 0)
    np.savetxt(tmp_path / "d.csv", np.column_stack([X, y]), delimiter=",")
    np.savez(tmp_path / "d.npz", X=X, y=y)
    for name in ("d.csv", "d.npz"):
        Xr, yr = demo.load_file(str(tmp_path / name))
        assert np.allclose(Xr, X) and np.array_equal(yr, y)
    (tmp_path / "bad.csv").write_text("1,x,0\n" * 20)     # a word among the inputs
    np.savez(tmp_path / "bad.npz", A=X)
    np.savez(tmp_path / "text.npz", X=np.array([["a", "b"]] * 20), y=np.arange(20) % 2)
    np.savez(tmp_path / "one.npz", X=X, y=np.zeros(len(X)))
    np.savez(tmp_path / "names.npz", X=X, y=np.where(y == 1, "cat", "dog"))
    assert np.array_equal(demo.load_file(str(tmp_path / "names.npz"))[1], 1 - y)
    (tmp_path / "names.csv").write_text("".join(
        f"{a},{b}, {'cat' if c == 1 else 'dog'}\n" for (a, b), c in zip(X, y)))
    Xr, yr = demo.load_file(str(tmp_path / "names.csv"))
    assert np.allclose(Xr, X) and np.array_equal(yr, 1 - y)
    (tmp_path / "halves.csv").write_text("1,2,0.5\n" * 20)
    for name, problem in [("bad.csv", "numbers"), ("bad.npz", "named X and y"),
                          ("missing.csv", "no such file"), ("text.npz", "numbers"),
                          ("one.npz", "at least 2 classes"), ("halves.csv", "whole numbers")]:
        with pytest.raises(SystemExit, match=problem) as info:
            demo.load_file(str(tmp_path / name))
        assert name in str(info.value)


@pytest.mark.parametrize("args, problem", [
    (["--budget", "0"], "--budget 0"), (["--seed", "-1"], "--seed -1"),
    (["--methods", "grid,annealing"], "--methods"),
    (["--plot", "/no/such/folder/race.png"], "cannot write"),
    (["--plot", "{tmp}/a_file/race.png"], "cannot write"),
    (["--plot", "{tmp}/dir.png"], "cannot write"),
    (["--plot", "{tmp}/race.txt"], "must end in .png"),
    (["--plot", "{tmp}/noext"], "must end in .png")])
def test_the_demo_refuses_bad_options_before_the_race(args, problem, tmp_path, capsys):
    import demo
    (tmp_path / "a_file").write_text("")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(SystemExit):
        demo.main(["--quick"] + [a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr()
    assert problem in err.err and "trial" not in err.out
    assert sorted(os.listdir(tmp_path)) == ["a_file", "dir.png"]   # the check wrote nothing


def test_readme_shows_what_the_demo_prints_for_seed_0():
    readme = open(os.path.join(HERE, "README.md")).read()
    shown = re.search(r"```text\n(method .*?)```", readme, re.S).group(1).strip().splitlines()
    out = subprocess.run([sys.executable, "demo.py"], cwd=HERE, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    table = out[out.index(shown[0]):][:len(shown)]
    drop_seconds = lambda line: re.sub(r"^(\S+(?:\s+\S+){4})\s+[0-9.]+", r"\1", line).split()
    assert [drop_seconds(line) for line in table] == [drop_seconds(line) for line in shown]
    ranking = re.findall(r"^  (\w+) +([0-9.]+) +#+$", readme, re.M)
    assert ranking and all(f"  {name:<11s} {value}" in "\n".join(out) for name, value in ranking)


def test_readme_python_snippets_run_as_written(tmp_path, monkeypatch):
    readme = open(os.path.join(HERE, "README.md")).read()
    snippets = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert len(snippets) >= 3
    monkeypatch.chdir(tmp_path)                       # snippets may write logs
    monkeypatch.syspath_prepend(HERE)
    for snippet in snippets:
        if "distributed" in snippet and "Client(" in snippet and "LocalCluster" not in snippet:
            continue                                  # the real-cluster snippet needs a scheduler
        exec(compile(snippet, "README.md", "exec"), {"__name__": "readme"})


def test_ci_runs_exactly_the_readme_test_command():
    readme = open(os.path.join(HERE, "README.md")).read()
    ci = open(os.path.join(HERE, ".ci", "run")).read()
    command = re.search(r"pip install -r requirements.txt && (python -m pytest[^\n`#]*)", readme).group(1)
    assert command.strip() in ci and "pip install -q -r requirements.txt" in ci
