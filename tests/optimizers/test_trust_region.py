"""TrustRegion on random surrogate problems, checked against numpy recomputations.

For each random problem the numpy reference builds F and g explicitly, the full step
-sqrt(2 max_kl / x^T F x) x with x = (F + d I)^-1 g, and runs the backtracking rule on
the numpy loss and KL; the optimizer must land on the same step size and weights, and
every accepted step must satisfy the constraint and improve the loss as measured in numpy.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from policy_reference import SurrogateProblem, reference_line_search

import keras_trust as kt

DAMPING = 0.1
MAX_KLS = [0.01, 1.0]
ITERS, COEFF = 8, 0.5


def numpy_line_search(problem, max_kl, damped_step_length=False):
    """Expected (accepted, backtracks, new flat weights) from explicit F and g."""
    return reference_line_search(
        problem, max_kl, DAMPING, ITERS, COEFF, damped_step_length=damped_step_length
    )


@pytest.fixture(scope="module")
def categorical_problem():
    problem = SurrogateProblem("categorical")
    # Bound methods are fresh objects on each attribute access; keep one of each so the
    # optimizers' compile cache is hit (see test_bound_methods_are_compiled_once).
    problem.loss_fn, problem.kl_fn = problem.loss_fn, problem.kl_fn
    return problem


@pytest.fixture(scope="module")
def optimizers(categorical_problem):
    # One optimizer per radius; the problem's loss_fn/kl_fn/variables never change, so
    # each optimizer compiles its step once for all seeds.
    return {
        max_kl: kt.optimizers.TrustRegion(
            max_kl=max_kl,
            cg_iters=categorical_problem.size,
            cg_damping=DAMPING,
            backtrack_iters=ITERS,
            backtrack_coeff=COEFF,
        )
        for max_kl in MAX_KLS
    }


def assert_unchanged(problem, before):
    for old, var in zip(before, problem.variables):
        assert np.array_equal(old, var.numpy())


def test_random_problems_respect_the_trust_region(categorical_problem, optimizers):
    problem = categorical_problem
    outcomes = []
    for seed in range(20):
        max_kl = MAX_KLS[seed % len(MAX_KLS)]
        problem.reset(seed).freeze()
        before = problem.get_weights()
        loss0 = problem.numpy_loss(before)
        info = optimizers[max_kl].minimize(problem.loss_fn, problem.variables, problem.kl_fn)
        accepted, backtracks = bool(info["accepted"]), int(info["backtracks"])
        after = problem.get_weights()
        measured_kl, loss1 = problem.numpy_kl(after), problem.numpy_loss(after)
        outcomes.append((accepted, backtracks))
        assert float(info["loss_before"]) == pytest.approx(loss0, rel=1e-9, abs=1e-12)
        if accepted:
            assert measured_kl <= max_kl
            assert loss1 < loss0
            assert 0 <= backtracks < ITERS
            assert float(info["step_size"]) == pytest.approx(COEFF**backtracks, rel=1e-6)
            assert float(info["kl"]) == pytest.approx(measured_kl, rel=1e-6, abs=1e-12)
            assert float(info["loss_after"]) == pytest.approx(loss1, rel=1e-6, abs=1e-12)
        else:
            assert backtracks == ITERS
            assert_unchanged(problem, before)
    # The set of problems exercises both the first step and backtracking.
    assert any(a and b == 0 for a, b in outcomes)
    assert any(a and b > 0 for a, b in outcomes)


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_line_search_matches_numpy_reference(categorical_problem, optimizers, seed):
    problem = categorical_problem
    max_kl = MAX_KLS[seed % len(MAX_KLS)]
    problem.reset(seed).freeze()
    accepted, backtracks, theta = numpy_line_search(problem, max_kl)
    info = optimizers[max_kl].minimize(problem.loss_fn, problem.variables, problem.kl_fn)
    assert bool(info["accepted"]) == accepted
    assert int(info["backtracks"]) == backtracks
    step = problem.flat_weights() - np.concatenate([w.ravel() for w in problem.initial_weights])
    expected = theta - np.concatenate([w.ravel() for w in problem.initial_weights])
    # CG stops at |r|^2 <= 1e-10, so the step matches to ~1e-4 relative, not to 1e-15.
    assert np.linalg.norm(step - expected) <= 1e-3 * max(np.linalg.norm(expected), 1e-12)


@pytest.mark.parametrize("kind", ["categorical", "diag_gaussian"])
def test_damped_step_length_matches_numpy_reference(kind):
    """`damped_step_length=True`: the full step is -sqrt(2 max_kl / x^T (F + dI) x) x, the
    rule of the reference TRPO code; shorter than the default rule's by the damping."""
    problem = SurrogateProblem(kind).reset(seed=3).freeze()
    max_kl = 0.05
    kwargs = dict(max_kl=max_kl, cg_iters=problem.size, cg_damping=DAMPING)
    damped = kt.optimizers.TrustRegion(damped_step_length=True, backtrack_iters=1, **kwargs)
    accepted, backtracks, theta = numpy_line_search(problem, max_kl, damped_step_length=True)
    assert accepted and backtracks == 0
    # The default rule's full step, -sqrt(2 max_kl / x^T F x) x, at the same weights.
    fisher, grad = problem.fisher_and_gradient()
    x = np.linalg.solve(fisher + DAMPING * np.eye(problem.size), grad)
    plain_step = -np.sqrt(2 * max_kl / (x @ fisher @ x)) * x
    info = damped.minimize(problem.loss_fn, problem.variables, problem.kl_fn)
    assert bool(info["accepted"]) and int(info["backtracks"]) == 0
    theta0 = np.concatenate([w.ravel() for w in problem.initial_weights])
    damped_step = theta - theta0
    # CG stops at |r|^2 <= 1e-10, so the step matches to ~1e-4 relative.
    error = np.linalg.norm(problem.flat_weights() - theta0 - damped_step)
    assert error <= 1e-3 * np.linalg.norm(damped_step)
    # Same direction as the default rule's step, and strictly shorter.
    cosine = damped_step @ plain_step / np.linalg.norm(damped_step) / np.linalg.norm(plain_step)
    assert cosine == pytest.approx(1.0, abs=1e-6)
    assert np.linalg.norm(damped_step) < 0.999 * np.linalg.norm(plain_step)


def test_gaussian_policy(categorical_problem):
    problem = SurrogateProblem("diag_gaussian").reset(seed=4).freeze()
    max_kl = 0.05
    opt = kt.optimizers.TrustRegion(
        max_kl=max_kl, cg_iters=problem.size, backtrack_iters=ITERS, backtrack_coeff=COEFF
    )
    accepted, backtracks, theta = numpy_line_search(problem, max_kl)
    info = opt.minimize(problem.loss_fn, problem.variables, problem.kl_fn)
    assert accepted and bool(info["accepted"]) and int(info["backtracks"]) == backtracks
    after = problem.get_weights()
    assert problem.numpy_kl(after) <= max_kl
    assert problem.numpy_loss(after) < problem.numpy_loss(problem.initial_weights)
    np.testing.assert_allclose(problem.flat_weights(), theta, rtol=1e-3, atol=1e-6)


# ---- rejection restores the variables bit for bit -----------------------------------------


@pytest.fixture(scope="module")
def small_problem():
    return SurrogateProblem("categorical", n=8, hidden=4)


def _moved(problem):
    return tf.reduce_any(
        [tf.reduce_any(v != w) for v, w in zip(problem.variables, problem.initial_weights)]
    )


def rejecting_case(problem, case):
    """(loss_fn, kl_fn) pairs that no step may pass."""
    loss_fn, kl_fn = problem.loss_fn, problem.kl_fn
    nan = tf.constant(np.nan, tf.float64)
    if case == "loss_never_decreases":
        # Same gradient, but a huge curvature: every tried step raises the loss.
        def loss_fn():
            dist2 = tf.add_n(
                [
                    tf.reduce_sum((v - w) ** 2)
                    for v, w in zip(problem.variables, problem.initial_weights)
                ]
            )
            return problem.loss_fn() + 1e8 * dist2
    elif case == "nan_loss":

        def loss_fn():
            return problem.loss_fn() + nan
    elif case == "nan_loss_after_step":

        def loss_fn():
            return tf.where(_moved(problem), nan, problem.loss_fn())
    elif case == "nan_kl":

        def kl_fn():
            return problem.kl_fn() * nan
    elif case == "nan_measured_kl":
        # The Hessian at the start is finite, the KL measured at every trial point is NaN.
        def kl_fn():
            return tf.where(_moved(problem), nan, problem.kl_fn())
    elif case == "inf_measured_kl":

        def kl_fn():
            inf = tf.constant(np.inf, tf.float64)
            return problem.kl_fn() + tf.where(_moved(problem), inf, tf.zeros_like(inf))

    return loss_fn, kl_fn


@pytest.mark.parametrize(
    "case",
    [
        "loss_never_decreases",
        "nan_loss",
        "nan_loss_after_step",
        "nan_kl",
        "nan_measured_kl",
        "inf_measured_kl",
    ],
)
def test_rejection_restores_variables_exactly(small_problem, case):
    problem = small_problem.reset(seed=7).freeze()
    before = problem.get_weights()
    loss_fn, kl_fn = rejecting_case(problem, case)
    opt = kt.optimizers.TrustRegion(max_kl=0.01, backtrack_iters=3, backtrack_coeff=0.5)
    info = opt.minimize(loss_fn, problem.variables, kl_fn)
    assert not bool(info["accepted"])
    assert_unchanged(problem, before)
    if case in ("loss_never_decreases", "nan_loss_after_step", "nan_measured_kl"):
        assert int(info["backtracks"]) == 3


def test_unpoisoned_small_problem_is_accepted(small_problem):
    """The control for the rejection cases: without the poison the same step passes."""
    problem = small_problem.reset(seed=7).freeze()
    opt = kt.optimizers.TrustRegion(max_kl=0.01, backtrack_iters=3, backtrack_coeff=0.5)
    info = opt.minimize(problem.loss_fn, problem.variables, problem.kl_fn)
    assert bool(info["accepted"])
    assert problem.numpy_kl(problem.get_weights()) <= 0.01


def test_minimize_inside_user_tf_function(categorical_problem, optimizers):
    problem = categorical_problem
    max_kl = MAX_KLS[1]
    problem.reset(seed=5).freeze()
    accepted, backtracks, theta = numpy_line_search(problem, max_kl)
    opt = kt.optimizers.TrustRegion(
        max_kl=max_kl,
        cg_iters=problem.size,
        cg_damping=DAMPING,
        backtrack_iters=ITERS,
        backtrack_coeff=COEFF,
    )

    @tf.function
    def update():
        info = opt.minimize(problem.loss_fn, problem.variables, problem.kl_fn)
        return info["accepted"], info["backtracks"]

    got_accepted, got_backtracks = update()
    assert (bool(got_accepted), int(got_backtracks)) == (accepted, backtracks)
    np.testing.assert_allclose(problem.flat_weights(), theta, rtol=1e-3, atol=1e-6)
    assert int(opt.iterations) == 1
    # A second call reuses the graph on a new problem drawn into the same variables.
    problem.reset(seed=9).freeze()
    accepted, backtracks, theta = numpy_line_search(problem, max_kl)
    got_accepted, got_backtracks = update()
    assert (bool(got_accepted), int(got_backtracks)) == (accepted, backtracks)
    np.testing.assert_allclose(problem.flat_weights(), theta, rtol=1e-3, atol=1e-6)


def test_toy_quadratic_by_hand():
    """loss = w . c, kl = 1/2 |w - w0|^2 (F = I): x = g / (1 + d), full step scaled to
    |s| = sqrt(2 max_kl); the quadratic KL is exact, so the first step is accepted."""
    w = keras.Variable(np.array([0.0, 0.0]), dtype="float64")
    c = np.array([3.0, 4.0])
    opt = kt.optimizers.TrustRegion(max_kl=0.02, cg_damping=0.5)

    def kl_fn():  # Hessian I at w = 0; the quartic term keeps the KL below the model's.
        return 0.5 * tf.reduce_sum(w**2) - 0.1 * tf.reduce_sum(w**4)

    info = opt.minimize(lambda: tf.tensordot(w, c, 1), [w], kl_fn)
    expected = -np.sqrt(2 * 0.02) * c / 5.0
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-12)
    assert bool(info["accepted"]) and int(info["backtracks"]) == 0
    expected_kl = 0.5 * expected @ expected - 0.1 * np.sum(expected**4)
    assert float(info["kl"]) == pytest.approx(expected_kl, rel=1e-12)
    assert float(info["loss_after"]) == pytest.approx(expected @ c, rel=1e-12)


def test_toy_quadratic_damped_step_length_by_hand():
    """The same toy with `damped_step_length`: 1/2 (1 + d) |s|^2 = max_kl, so the step is
    sqrt(2 * 0.02 / 1.5) along -c / |c|."""
    w = keras.Variable(np.array([0.0, 0.0]), dtype="float64")
    c = np.array([3.0, 4.0])
    opt = kt.optimizers.TrustRegion(max_kl=0.02, cg_damping=0.5, damped_step_length=True)
    info = opt.minimize(lambda: tf.tensordot(w, c, 1), [w], lambda: 0.5 * tf.reduce_sum(w**2))
    np.testing.assert_allclose(w.numpy(), -np.sqrt(2 * 0.02 / 1.5) * c / 5.0, rtol=1e-12)
    assert float(info["kl"]) == pytest.approx(0.02 / 1.5, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"backtrack_coeff": 0.0}, "backtrack_coeff"),
        ({"backtrack_coeff": 1.0}, "backtrack_coeff"),
        ({"backtrack_coeff": 1.5}, "backtrack_coeff"),
        ({"max_kl": 0.0}, "max_kl"),
        ({"max_kl": -0.01}, "max_kl"),
        ({"max_kl": None}, "max_kl"),
        ({"cg_iters": 0}, "cg_iters"),
        ({"cg_damping": -1.0}, "cg_damping"),
        ({"backtrack_iters": 0}, "backtrack_iters"),
    ],
)
def test_invalid_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        kt.optimizers.TrustRegion(**kwargs)


def test_serialization_round_trip():
    opt = kt.optimizers.TrustRegion(
        max_kl=0.02,
        cg_iters=12,
        cg_damping=0.01,
        backtrack_iters=5,
        backtrack_coeff=0.6,
        damped_step_length=True,
    )
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(clone) is kt.optimizers.TrustRegion
    assert clone.get_config() == opt.get_config()
    assert (clone.max_kl, clone.cg_iters, clone.cg_damping) == (0.02, 12, 0.01)
    assert clone.damped_step_length is True
    assert (clone.backtrack_iters, clone.backtrack_coeff) == (5, 0.6)


def test_apply_gradients_raises_not_implemented():
    w = keras.Variable([1.0])
    with pytest.raises(NotImplementedError):
        kt.optimizers.TrustRegion().apply_gradients([(tf.ones([1]), w)])
