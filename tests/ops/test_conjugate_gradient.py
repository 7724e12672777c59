"""Conjugate gradient against numpy.linalg.solve and CG's textbook convergence facts."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_trust as kt


def random_spd(rng, n, low=0.1, high=10.0, eigenvalues=None):
    """A = Q diag(eig) Q^T with a random orthogonal Q."""
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = rng.uniform(low, high, size=n) if eigenvalues is None else np.asarray(eigenvalues)
    return (q * eig) @ q.T


class CountingMatvec:
    """A @ p that counts its calls (the CG loop runs Python per iteration when eager)."""

    def __init__(self, a):
        self.a = tf.constant(a)
        self.calls = 0

    def __call__(self, p):
        self.calls += 1
        return tf.linalg.matvec(self.a, p)


@pytest.mark.parametrize("n", [1, 2, 5, 12, 30])
def test_matches_numpy_solve_in_n_iterations(n):
    rng = np.random.default_rng(n)
    a = random_spd(rng, n)
    b = rng.normal(size=n)
    x = kt.ops.conjugate_gradient(CountingMatvec(a), tf.constant(b), max_iters=n, tol=0.0)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-8, atol=1e-10)


def test_float32_matches_solve():
    rng = np.random.default_rng(7)
    a = random_spd(rng, 8, 1.0, 4.0)
    b = rng.normal(size=8)
    matvec = CountingMatvec(a.astype(np.float32))
    x = kt.ops.conjugate_gradient(matvec, tf.constant(b, tf.float32), max_iters=8)
    assert x.dtype == tf.float32
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)


def test_inside_tf_function():
    rng = np.random.default_rng(3)
    a = random_spd(rng, 6)
    b = rng.normal(size=6)
    solve = tf.function(lambda rhs: kt.ops.conjugate_gradient(CountingMatvec(a), rhs, 6, 0.0))
    np.testing.assert_allclose(solve(tf.constant(b)).numpy(), np.linalg.solve(a, b), rtol=1e-8)


@pytest.mark.parametrize("iters", [1, 3, 10])
def test_returned_residual_is_b_minus_a_x_and_gives_the_quadratic_form(iters):
    """Stopped early too: the recurrence's r is b - A x, so x^T (b - r) = x^T A x."""
    rng = np.random.default_rng(iters)
    a = random_spd(rng, 10, 0.5, 20.0)
    b = rng.normal(size=10)
    matvec = CountingMatvec(a)
    x, r = kt.ops.conjugate_gradient(matvec, tf.constant(b), iters, 0.0, return_residual=True)
    assert matvec.calls == iters
    x = x.numpy()
    np.testing.assert_allclose(r.numpy(), b - a @ x, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x @ (b - r.numpy()), x @ a @ x, rtol=1e-10)


def test_stops_after_k_iterations_for_k_distinct_eigenvalues():
    """In exact arithmetic CG terminates in as many steps as A has distinct eigenvalues."""
    rng = np.random.default_rng(11)
    a = random_spd(rng, 9, eigenvalues=[1.0, 1.0, 1.0, 4.0, 4.0, 4.0, 9.0, 9.0, 9.0])
    b = rng.normal(size=9)
    matvec = CountingMatvec(a)
    x = kt.ops.conjugate_gradient(matvec, tf.constant(b), max_iters=50, tol=1e-20)
    assert matvec.calls == 3
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-9)


def test_identity_converges_in_one_iteration():
    b = np.array([3.0, -4.0, 12.0])
    matvec = CountingMatvec(2.0 * np.eye(3))
    x = kt.ops.conjugate_gradient(matvec, tf.constant(b), max_iters=10)
    assert matvec.calls == 1
    np.testing.assert_allclose(x.numpy(), b / 2.0, rtol=1e-14)


def test_tol_stops_early_on_squared_residual():
    """The first iterate of CG is x1 = (b.b / b.Ab) b; the loop stops once |r|^2 <= tol."""
    a = np.diag([1.0, 2.0])
    b = np.array([1.0, 1.0])
    x1 = (b @ b) / (b @ a @ b) * b  # = 2/3 b
    r1 = b - a @ x1
    rr1 = r1 @ r1  # = 2/9
    # tol just above |r1|^2: exactly one iteration, the answer is x1.
    matvec = CountingMatvec(a)
    x = kt.ops.conjugate_gradient(matvec, tf.constant(b), max_iters=10, tol=rr1 * 1.01)
    assert matvec.calls == 1
    np.testing.assert_allclose(x.numpy(), x1, rtol=1e-14)
    # tol just below: a second iteration runs and (n = 2) the system is solved.
    matvec = CountingMatvec(a)
    x = kt.ops.conjugate_gradient(matvec, tf.constant(b), max_iters=10, tol=rr1 * 0.99)
    assert matvec.calls == 2
    np.testing.assert_allclose(x.numpy(), [1.0, 0.5], rtol=1e-12)
    # tol above |b|^2: no iteration at all, x = 0.
    matvec = CountingMatvec(a)
    x = kt.ops.conjugate_gradient(matvec, tf.constant(b), max_iters=10, tol=2.5)
    assert matvec.calls == 0
    np.testing.assert_array_equal(x.numpy(), [0.0, 0.0])


def test_max_iters_caps_the_iterations():
    rng = np.random.default_rng(5)
    a = random_spd(rng, 10)
    b = rng.normal(size=10)
    matvec = CountingMatvec(a)
    kt.ops.conjugate_gradient(matvec, tf.constant(b), max_iters=3, tol=0.0)
    assert matvec.calls == 3


def test_zero_rhs_gives_zero():
    matvec = CountingMatvec(np.eye(4))
    x = kt.ops.conjugate_gradient(matvec, tf.zeros([4], tf.float64), max_iters=4)
    np.testing.assert_array_equal(x.numpy(), np.zeros(4))
    assert np.all(np.isfinite(x.numpy()))


@pytest.mark.parametrize("max_iters", [0, -1])
def test_max_iters_below_one_raises(max_iters):
    with pytest.raises(ValueError, match="max_iters"):
        kt.ops.conjugate_gradient(lambda p: p, tf.ones([2]), max_iters=max_iters)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_property_random_well_conditioned_spd(n, seed):
    rng = np.random.default_rng(seed)
    a = random_spd(rng, n)
    b = rng.normal(size=n) * rng.uniform(0.01, 100.0)
    x = kt.ops.conjugate_gradient(CountingMatvec(a), tf.constant(b), max_iters=n, tol=0.0)
    x = x.numpy()
    assert np.all(np.isfinite(x))
    expected = np.linalg.solve(a, b)
    np.testing.assert_allclose(x, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())
