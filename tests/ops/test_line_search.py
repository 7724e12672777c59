"""Backtracking line search on toy problems whose answer is computed by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_trust as kt


def toy(t):
    """loss(t) = (t - 1/2)^2 (starts at 1/4 for t = 0), kl(t) = t^2."""
    return (t - 0.5) ** 2, t**2


def search(evaluate, loss_before, max_kl, max_backtracks=10, coeff=0.8):
    res = kt.ops.backtracking_line_search(
        evaluate, tf.constant(loss_before, tf.float64), max_kl, max_backtracks, coeff
    )
    return bool(res.accepted), float(res.step_size), int(res.backtracks), res


def test_full_step_rejected_half_step_accepted():
    # t = 1: loss 0.25, not < 0.25 -> reject. t = 0.5: loss 0 < 0.25, kl 0.25 <= 0.5 -> accept.
    accepted, step, backtracks, res = search(toy, 0.25, max_kl=0.5, coeff=0.5)
    assert (accepted, step, backtracks) == (True, 0.5, 1)
    assert float(res.loss) == 0.0 and float(res.kl) == 0.25


def test_kl_constraint_forces_second_backtrack():
    # t = 1: loss not improved. t = 0.5: kl 0.25 > 0.1. t = 0.25: loss 1/16, kl 1/16 -> accept.
    accepted, step, backtracks, res = search(toy, 0.25, max_kl=0.1, coeff=0.5)
    assert (accepted, step, backtracks) == (True, 0.25, 2)
    assert float(res.loss) == 0.0625 and float(res.kl) == 0.0625


def test_coeff_0_8_hand_computed():
    # Need (t - 0.5)^2 < 0.25 (0 < t < 1) and t^2 <= 0.2 (t <= 0.4472):
    # t = 0.8^k: 1, .8, .64, .512, .4096 -> first passing k = 4.
    accepted, step, backtracks, res = search(toy, 0.25, max_kl=0.2, coeff=0.8)
    assert accepted and backtracks == 4
    assert step == pytest.approx(0.8**4, rel=1e-6)
    assert float(res.kl) == pytest.approx(0.8**8, rel=1e-6)


def test_float64_search_keeps_coeff_and_max_kl_in_float64():
    """With float64 losses, the step sizes are float64 powers of `coeff` and the KL bound
    is `max_kl` itself, not their float32 roundings (float32(0.8) = 0.800000011920929,
    float32(0.1) = 0.10000000149011612)."""
    accepted, step, backtracks, _ = search(toy, 0.25, max_kl=0.2, coeff=0.8)
    assert accepted and backtracks == 4
    assert step == pytest.approx(0.8**4, rel=1e-13)
    # kl = 0.1 + 5e-10 exceeds max_kl = 0.1 (in float64) and must be rejected.
    accepted, step, backtracks, _ = search(lambda t: (-t, 0.0 * t + 0.1 + 5e-10), 0.0, 0.1, 3)
    assert (accepted, step, backtracks) == (False, 0.0, 3)


def test_first_step_accepted_when_everything_passes():
    accepted, step, backtracks, _ = search(lambda t: (-t, 0.0 * t), 0.0, max_kl=1.0)
    assert (accepted, step, backtracks) == (True, 1.0, 0)


def test_rejection_when_nothing_passes():
    # The loss only rises along the step: every candidate fails.
    accepted, step, backtracks, _ = search(lambda t: (t + 1.0, 0.0 * t), 1.0, 1.0, 7, 0.5)
    assert (accepted, step, backtracks) == (False, 0.0, 7)


def test_rejection_when_kl_too_large_for_every_step():
    # kl(t) = 100 t^2 > 1e-3 for t = 0.5^k, k < 5 -> with 5 tries nothing passes.
    accepted, step, backtracks, _ = search(lambda t: (-t, 100.0 * t**2), 0.0, 1e-3, 5, 0.5)
    assert (accepted, step, backtracks) == (False, 0.0, 5)
    # With one more try, t = 1/32: kl = 100/1024 ~ 0.098 still > 1e-3; k = 9: 100/4^9 passes.
    accepted, step, backtracks, _ = search(lambda t: (-t, 100.0 * t**2), 0.0, 1e-3, 10, 0.5)
    assert (accepted, backtracks) == (True, 9) and step == 0.5**9


def test_evaluate_is_called_with_the_shrinking_step_sizes():
    seen = []

    def evaluate(t):
        seen.append(float(t))
        return toy(t)

    search(evaluate, 0.25, max_kl=0.2, coeff=0.8)
    np.testing.assert_allclose(seen, [0.8**k for k in range(5)], rtol=1e-6)


@pytest.mark.parametrize("bad", ["loss", "kl"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_never_accepted(bad, value):
    def evaluate(t):
        loss, kl = -t, 0.0 * t  # otherwise always acceptable
        if bad == "loss":
            return loss + value, kl
        return loss, kl + value

    accepted, step, backtracks, _ = search(evaluate, 0.0, max_kl=1.0, max_backtracks=4)
    assert (accepted, step, backtracks) == (False, 0.0, 4)


def test_non_finite_first_step_then_finite_is_accepted_later():
    # NaN for t = 1 and t = 0.5, a valid improvement from t = 0.25 on.
    def evaluate(t):
        loss = tf.where(t > 0.3, tf.constant(math.nan, tf.float64), -t)
        return loss, 0.0 * t

    accepted, step, backtracks, _ = search(evaluate, 0.0, max_kl=1.0, coeff=0.5)
    assert (accepted, step, backtracks) == (True, 0.25, 2)


def test_nan_loss_before_never_accepts():
    accepted, step, backtracks, _ = search(lambda t: (-t, 0.0 * t), math.nan, 1.0, 3)
    assert (accepted, step, backtracks) == (False, 0.0, 3)


def test_inside_tf_function():
    fn = tf.function(
        lambda: kt.ops.backtracking_line_search(toy, tf.constant(0.25, tf.float64), 0.1, 10, 0.5)
    )
    res = fn()
    assert bool(res.accepted) and int(res.backtracks) == 2 and float(res.step_size) == 0.25


@pytest.mark.parametrize("coeff", [0.0, 1.0, -0.5, 1.5])
def test_invalid_coeff_raises(coeff):
    with pytest.raises(ValueError, match="coeff"):
        kt.ops.backtracking_line_search(toy, 0.25, 0.1, 10, coeff)


def test_invalid_max_backtracks_raises():
    with pytest.raises(ValueError, match="max_backtracks"):
        kt.ops.backtracking_line_search(toy, 0.25, 0.1, 0, 0.5)


@settings(max_examples=40, deadline=None)
@given(
    curvature=st.floats(0.01, 100.0),
    minimum=st.floats(-2.0, 2.0),
    kl_scale=st.floats(0.01, 100.0),
    max_kl=st.floats(2**-13, 1.0, width=32),
    # float32-representable, so this test does not depend on the float32 rounding of
    # Python floats (test_float64_search_keeps_coeff_and_max_kl_in_float64 covers that).
    coeff=st.floats(0.125, 0.9375, width=32),
    max_backtracks=st.integers(1, 15),
)
def test_property_random_quadratics(curvature, minimum, kl_scale, max_kl, coeff, max_backtracks):
    """loss(t) = c (t - m)^2, kl(t) = s t^2; the expected k is found by a plain Python loop."""

    def loss_np(t):
        return curvature * (t - minimum) ** 2

    def evaluate(t):
        return curvature * (t - minimum) ** 2, kl_scale * t**2

    loss_before = loss_np(0.0)
    accepted, step, backtracks, res = search(evaluate, loss_before, max_kl, max_backtracks, coeff)
    expected_k = next(
        (
            k
            for k in range(max_backtracks)
            if loss_np(coeff**k) < loss_before and kl_scale * coeff ** (2 * k) <= max_kl
        ),
        None,
    )
    if expected_k is None:
        assert (accepted, step, backtracks) == (False, 0.0, max_backtracks)
        return
    assert accepted and backtracks == expected_k
    assert step == pytest.approx(coeff**backtracks, rel=1e-6)
    assert step == pytest.approx(coeff**expected_k, rel=1e-6)
    assert float(res.loss) < loss_before and float(res.kl) <= max_kl
