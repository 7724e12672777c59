"""NaturalGradient against the explicit Fisher matrix and gradient built in numpy."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from policy_reference import SurrogateProblem

import keras_trust as kt

KINDS = ["categorical", "diag_gaussian"]


# CG stops once |r|^2 <= 1e-10 (its default tol), so the step solves the damped system up
# to a residual of 1e-5, not to machine precision: the checks below use that bound.
CG_RESIDUAL = 1e-5


def assert_solves_damped_system(x, fisher, grad, damping):
    """x = (F + damping I)^-1 g up to CG's residual, with F and g explicit."""
    residual = (fisher + damping * np.eye(len(x))) @ x - grad
    assert np.linalg.norm(residual) <= 1.01 * CG_RESIDUAL
    expected = np.linalg.solve(fisher + damping * np.eye(len(x)), grad)
    assert np.linalg.norm(x - expected) <= 1.01 * CG_RESIDUAL / damping
    assert np.linalg.norm(x - expected) <= 1e-2 * np.linalg.norm(expected)


def natural_step_np(problem, damping):
    """-(F + damping I)^-1 g with F, g explicit, and the undamped F."""
    fisher, grad = problem.fisher_and_gradient()
    x = np.linalg.solve(fisher + damping * np.eye(problem.size), grad)
    return -x, fisher, grad


@pytest.mark.parametrize("kind", KINDS)
def test_learning_rate_step_is_lr_times_damped_natural_direction(kind):
    problem = SurrogateProblem(kind).reset(seed=0).freeze()
    lr, damping = 0.05, 0.1
    direction, fisher, grad = natural_step_np(problem, damping)
    before = problem.flat_weights()
    opt = kt.optimizers.NaturalGradient(learning_rate=lr, cg_iters=problem.size, cg_damping=damping)
    info = opt.minimize(problem.loss_fn, problem.variables, problem.kl_fn)
    step = problem.flat_weights() - before
    cosine = step @ direction / (np.linalg.norm(step) * np.linalg.norm(direction))
    assert cosine > 0.999
    # step = -lr x with x = (F + d I)^-1 g.
    assert_solves_damped_system(-step / lr, fisher, grad, damping)
    assert np.linalg.norm(step - lr * direction) <= 1e-3 * np.linalg.norm(lr * direction)
    assert bool(info["accepted"])
    assert float(info["loss_before"]) == pytest.approx(problem.numpy_loss(problem.initial_weights))
    assert float(info["loss_after"]) == pytest.approx(problem.numpy_loss(problem.get_weights()))
    assert float(info["kl"]) == pytest.approx(problem.numpy_kl(problem.get_weights()), rel=1e-8)
    assert float(info["grad_norm"]) == pytest.approx(np.linalg.norm(grad), rel=1e-8)
    for key in ("kl", "loss_before", "loss_after", "accepted", "backtracks"):
        assert key in info
    assert int(opt.iterations) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_max_kl_step_has_quadratic_kl_equal_to_max_kl(kind):
    problem = SurrogateProblem(kind).reset(seed=1).freeze()
    damping, max_kl = 0.1, 0.02
    direction, fisher, _ = natural_step_np(problem, damping)
    before = problem.flat_weights()
    opt = kt.optimizers.NaturalGradient(max_kl=max_kl, cg_iters=problem.size, cg_damping=damping)
    info = opt.minimize(problem.loss_fn, problem.variables, problem.kl_fn)
    step = problem.flat_weights() - before
    assert 0.5 * step @ fisher @ step == pytest.approx(max_kl, rel=1e-3)
    cosine = step @ direction / (np.linalg.norm(step) * np.linalg.norm(direction))
    assert cosine > 0.999
    expected = np.sqrt(2 * max_kl / (direction @ fisher @ direction)) * direction
    assert np.linalg.norm(step - expected) <= 1e-3 * np.linalg.norm(expected)
    assert float(info["quadratic_kl"]) == pytest.approx(max_kl, rel=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_damped_step_length_scales_the_damped_quadratic_kl(kind):
    """With `damped_step_length`, 1/2 s^T (F + dI) s = max_kl; `quadratic_kl` still reports
    the undamped 1/2 s^T F s, which is then below max_kl."""
    problem = SurrogateProblem(kind).reset(seed=1).freeze()
    damping, max_kl = 0.1, 0.02
    direction, fisher, _ = natural_step_np(problem, damping)
    damped = fisher + damping * np.eye(problem.size)
    before = problem.flat_weights()
    opt = kt.optimizers.NaturalGradient(
        max_kl=max_kl, cg_iters=problem.size, cg_damping=damping, damped_step_length=True
    )
    info = opt.minimize(problem.loss_fn, problem.variables, problem.kl_fn)
    step = problem.flat_weights() - before
    expected = np.sqrt(2 * max_kl / (direction @ damped @ direction)) * direction
    assert np.linalg.norm(step - expected) <= 1e-3 * np.linalg.norm(expected)
    assert 0.5 * step @ damped @ step == pytest.approx(max_kl, rel=1e-3)
    assert float(info["quadratic_kl"]) == pytest.approx(0.5 * step @ fisher @ step, rel=1e-3)
    assert float(info["quadratic_kl"]) < max_kl


def test_float32_policy_quadratic_kl():
    """The same check with the default float32 policy (looser tolerance)."""
    problem = SurrogateProblem("categorical", dtype="float32").reset(seed=2).freeze()
    direction, fisher, _ = natural_step_np(problem, 0.1)
    before = problem.flat_weights()
    opt = kt.optimizers.NaturalGradient(max_kl=0.01, cg_iters=problem.size)
    opt.minimize(problem.loss_fn, problem.variables, problem.kl_fn)
    step = problem.flat_weights() - before
    assert 0.5 * step @ fisher @ step == pytest.approx(0.01, rel=1e-3)
    assert step @ direction / (np.linalg.norm(step) * np.linalg.norm(direction)) > 0.999


@pytest.mark.parametrize("poison", ["loss", "kl"])
@pytest.mark.parametrize("max_kl", [None, 0.01])
def test_non_finite_leaves_variables_bit_for_bit(poison, max_kl):
    problem = SurrogateProblem("categorical").reset(seed=3).freeze()
    before = problem.get_weights()

    def loss_fn():
        loss = problem.loss_fn()
        return loss * np.nan if poison == "loss" else loss

    def kl_fn():
        kl = problem.kl_fn()
        return kl * np.nan if poison == "kl" else kl  # NaN Hessian -> NaN step

    step_length = {"learning_rate": 0.1} if max_kl is None else {"max_kl": max_kl}
    opt = kt.optimizers.NaturalGradient(**step_length)
    info = opt.minimize(loss_fn, problem.variables, kl_fn)
    assert not bool(info["accepted"])
    for old, var in zip(before, problem.variables):
        assert np.array_equal(old, var.numpy())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"max_kl": 0.0}, "max_kl"),
        ({"max_kl": -1.0}, "max_kl"),
        ({"cg_iters": 0}, "cg_iters"),
        ({"cg_damping": -0.1}, "cg_damping"),
        ({"fvp_method": "exact"}, "fvp_method"),
    ],
)
def test_invalid_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        kt.optimizers.NaturalGradient(**kwargs)


def test_serialization_round_trip():
    opt = kt.optimizers.NaturalGradient(
        max_kl=0.03,
        cg_iters=7,
        cg_damping=0.05,
        fvp_method="double_backprop",
        damped_step_length=True,
    )
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(clone) is kt.optimizers.NaturalGradient
    assert clone.get_config() == opt.get_config()
    assert (clone.max_kl, clone.cg_iters, clone.cg_damping) == (0.03, 7, 0.05)
    assert clone.fvp_method == "double_backprop" and clone.damped_step_length is True
    lr_only = keras.optimizers.deserialize(
        keras.optimizers.serialize(kt.optimizers.NaturalGradient(learning_rate=0.2))
    )
    assert lr_only.max_kl is None
    assert float(lr_only.learning_rate) == pytest.approx(0.2)


def test_apply_gradients_raises_not_implemented():
    w = keras.Variable([1.0, 2.0])
    opt = kt.optimizers.NaturalGradient()
    with pytest.raises(NotImplementedError, match="minimize"):
        opt.apply_gradients([(tf.ones([2]), w)])
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])


# ---- eager compile cache ------------------------------------------------------------------
# A quadratic toy where everything is known by hand: loss = |w - TARGET|^2 (g = 2 (w - T)),
# kl = 1/2 (w - W_OLD)^T A (w - W_OLD) (F = A), so the step is -lr (A + d I)^-1 g.

A = np.array([[2.0, 0.3], [0.3, 1.0]])
TARGET = None
W_OLD = None


def cache_loss_fn(w):
    return lambda: tf.reduce_sum((w - TARGET) ** 2)


def cache_kl_fn(w):
    return lambda: 0.5 * tf.tensordot(w - W_OLD, tf.linalg.matvec(A, w - W_OLD), 1)


def expected_next(w, target, lr=0.5, damping=0.1):
    g = 2 * (np.asarray(w) - np.asarray(target))
    return w - lr * np.linalg.solve(A + damping * np.eye(2), g)


@pytest.mark.parametrize("as_numpy", [False, True], ids=["tensor", "numpy"])
def test_eager_cache_sees_rebound_global_data(as_numpy):
    """`minimize` compiles its step once per (loss_fn, kl_fn, variables, captured data):
    rebinding a global that loss_fn/kl_fn read must give the step for the new data.

    The numpy case fails: `_captured_tensors` (optimizers/base.py) drops bare np.ndarray
    values, so the second call reuses the graph with the first arrays baked in."""
    global TARGET, W_OLD
    convert = np.asarray if as_numpy else tf.constant
    w = keras.Variable(np.array([0.5, -0.5]), dtype="float64")
    loss_fn, kl_fn = cache_loss_fn(w), cache_kl_fn(w)

    opt = kt.optimizers.NaturalGradient(learning_rate=0.5, cg_iters=2, cg_damping=0.1)
    TARGET, W_OLD = convert(np.array([1.0, 2.0])), convert(w.numpy().copy())
    opt.minimize(loss_fn, [w], kl_fn)
    np.testing.assert_allclose(w.numpy(), expected_next([0.5, -0.5], [1.0, 2.0]), rtol=1e-10)

    start = w.numpy().copy()
    TARGET, W_OLD = convert(np.array([-3.0, 4.0])), convert(start)
    info = opt.minimize(loss_fn, [w], kl_fn)
    assert float(info["loss_before"]) == pytest.approx(np.sum((start - [-3.0, 4.0]) ** 2))
    np.testing.assert_allclose(w.numpy(), expected_next(start, [-3.0, 4.0]), rtol=1e-10)
    TARGET = W_OLD = None
