"""Backtracking line search under a KL constraint, as used by TRPO."""

from typing import NamedTuple

import tensorflow as tf


class LineSearchResult(NamedTuple):
    """Outcome of `backtracking_line_search`.

    Attributes:
        accepted: bool tensor, whether some step size satisfied the conditions.
        step_size: the accepted fraction of the full step (`coeff ** backtracks`),
            or 0 when nothing was accepted.
        backtracks: number of shrinks before acceptance (`max_backtracks` if none).
        loss: loss at the accepted point (at the last tried point otherwise).
        kl: KL at the accepted point (at the last tried point otherwise).
    """

    accepted: tf.Tensor
    step_size: tf.Tensor
    backtracks: tf.Tensor
    loss: tf.Tensor
    kl: tf.Tensor


def backtracking_line_search(evaluate, loss_before, max_kl, max_backtracks=10, coeff=0.8):
    """Shrinks a step until the loss improves and the KL stays within `max_kl`.

    Tries step sizes `1, coeff, coeff**2, ...` (at most `max_backtracks` of them) and
    accepts the first whose loss is finite and below `loss_before` and whose KL is
    finite and `<= max_kl` (Schulman et al., 2015, Sec. 6).

    Args:
        evaluate: callable `step_size -> (loss, kl)`, evaluating the objective and the
            constraint at `params + step_size * full_step` (it may assign variables).
        loss_before: scalar loss at the starting point.
        max_kl: the trust-region radius.
        max_backtracks: how many step sizes to try. Defaults to `10`.
        coeff: shrink factor in (0, 1). Defaults to `0.8`.

    Returns:
        A `LineSearchResult`.

    Example:
    >>> res = backtracking_line_search(lambda t: ((t - 0.5) ** 2, t**2), 0.25, 0.5, 10, 0.5)
    >>> float(res.step_size), int(res.backtracks)
    (0.5, 1)
    """
    if not 0.0 < float(coeff) < 1.0:
        raise ValueError(f"coeff must be in (0, 1). Received: coeff={coeff}")
    if int(max_backtracks) < 1:
        raise ValueError(f"max_backtracks must be >= 1. Received: max_backtracks={max_backtracks}")
    loss_before = tf.convert_to_tensor(loss_before)
    dtype = loss_before.dtype
    # dtype_hint keeps Python floats exact in float64 (a bare cast rounds via float32).
    max_kl = tf.cast(tf.convert_to_tensor(max_kl, dtype_hint=dtype), dtype)
    coeff = tf.cast(tf.convert_to_tensor(coeff, dtype_hint=dtype), dtype)

    def cond(i, accepted, step, loss, kl):
        return tf.logical_and(i < max_backtracks, tf.logical_not(accepted))

    def body(i, accepted, step, loss, kl):
        step = coeff ** tf.cast(i, dtype)
        loss, kl = evaluate(step)
        loss = tf.cast(loss, dtype)
        kl = tf.cast(kl, dtype)
        ok = tf.math.is_finite(loss) & tf.math.is_finite(kl) & (loss < loss_before) & (kl <= max_kl)
        return tf.where(ok, i, i + 1), ok, step, loss, kl

    zero = tf.zeros([], dtype)
    i, accepted, step, loss, kl = tf.while_loop(
        cond, body, (tf.constant(0), tf.constant(False), zero, loss_before, zero)
    )
    return LineSearchResult(accepted, tf.where(accepted, step, zero), i, loss, kl)
