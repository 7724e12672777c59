"""Trust-region policy optimizer (TRPO; Schulman et al., 2015)."""

import keras
import tensorflow as tf

from keras_trust.ops.flat import unflatten
from keras_trust.ops.line_search import backtracking_line_search
from keras_trust.optimizers.arguments import (
    check_learning_rate_used,
    check_optimizer_arguments,
    drop_unused_learning_rate,
)
from keras_trust.optimizers.base import CurvatureOptimizer, all_finite


@keras.saving.register_keras_serializable(package="keras_trust")
class TrustRegion(CurvatureOptimizer):
    """Natural step scaled to the KL radius, then a backtracking line search.

    Solves `max -loss s.t. mean KL(pi_old || pi) <= max_kl` approximately: the natural
    direction `(F + cg_damping I)^-1 g` by conjugate gradient on Fisher-vector products,
    scaled so its quadratic KL `1/2 s^T F s` is `max_kl` (with `damped_step_length`,
    `1/2 s^T (F + cg_damping I) s`), then shrunk by `backtrack_coeff` until the
    loss improves and the *measured* `kl_fn()` is `<= max_kl` (Schulman et al., 2015,
    "Trust Region Policy Optimization", Sec. 6 and App. C). If no step size passes, or
    any loss, KL, gradient or step is non-finite, the variables are restored exactly.

    Args:
        max_kl: trust-region radius, or a `keras.optimizers.schedules.LearningRateSchedule`
            of the step counter (`iterations`), e.g. `kt.schedules.LinearSchedule`, for
            a radius that shrinks over a run as a learning rate may. Defaults to `0.01`.
        cg_iters: conjugate-gradient iterations. Defaults to `10`.
        cg_damping: Tikhonov damping added to F. Defaults to `0.1`.
        backtrack_iters: step sizes tried by the line search. Defaults to `10`.
        backtrack_coeff: shrink factor of the line search, in (0, 1). Defaults to `0.8`.
        fvp_method: `"forward_over_reverse"` or `"double_backprop"`.
        damped_step_length: scale to `max_kl` the damped quadratic model, as the
            reference TRPO code does (Schulman's modular_rl, OpenAI baselines, Spinning
            Up, sb3-contrib): a shorter first step, and with equal settings the step
            those libraries take. Defaults to `False`.
        **kwargs: passed to `keras.optimizers.Optimizer` (e.g. `name`). A
            `learning_rate` is a `ValueError` (the step length comes from `max_kl`), and so
            are clipping, weight decay, EMA, gradient accumulation and loss scaling, which
            Keras applies in `apply()`, never called by `minimize`.

    Example:
    >>> w = keras.Variable([1.0, -1.0])
    >>> opt = TrustRegion(max_kl=0.01)
    >>> w0 = tf.constant([1.0, -1.0])  # frozen "old" parameters: KL = 1/2 |w - w0|^2
    >>> info = opt.minimize(lambda: tf.reduce_sum(w**2), [w],
    ...                     lambda: 0.5 * tf.reduce_sum((w - w0) ** 2))
    >>> bool(info["accepted"]), float(info["kl"]) <= 0.01
    (True, True)
    """

    def __init__(
        self,
        max_kl=0.01,
        cg_iters=10,
        cg_damping=0.1,
        backtrack_iters=10,
        backtrack_coeff=0.8,
        fvp_method="forward_over_reverse",
        damped_step_length=False,
        name="trust_region",
        **kwargs,
    ):
        if max_kl is None:
            raise ValueError("TrustRegion needs max_kl > 0. Received: max_kl=None")
        if not 0.0 < float(backtrack_coeff) < 1.0:
            raise ValueError(
                f"backtrack_coeff must be in (0, 1). Received: backtrack_coeff={backtrack_coeff}"
            )
        if int(backtrack_iters) < 1:
            raise ValueError(
                f"backtrack_iters must be >= 1. Received: backtrack_iters={backtrack_iters}"
            )
        check_learning_rate_used("TrustRegion", max_kl, kwargs.pop("learning_rate", None))
        check_optimizer_arguments("TrustRegion", kwargs)
        super().__init__(
            max_kl,
            cg_iters,
            cg_damping,
            fvp_method,
            learning_rate=1.0,  # Keras requires one; unused, the step length comes from max_kl
            name=name,
            damped_step_length=damped_step_length,
            **kwargs,
        )
        self.backtrack_iters = int(backtrack_iters)
        self.backtrack_coeff = float(backtrack_coeff)

    def _minimize_graph(self, loss_fn, var_list, kl_fn):
        tvars, old = self._begin(var_list)
        loss, g, x, xhx = self._natural_direction(loss_fn, tvars, kl_fn)
        full_step = unflatten(-self._max_kl_scale(x, xhx) * x, tvars)
        finite = all_finite(loss, g, *full_step)
        # A non-finite direction is never tried: the line search then sees a zero step.
        full_step = [tf.where(finite, s, tf.zeros_like(s)) for s in full_step]

        def evaluate(step_size):
            self._assign(tvars, [o + step_size * s for o, s in zip(old, full_step)])
            return loss_fn(), kl_fn()

        result = backtracking_line_search(
            evaluate,
            loss,
            self.current_max_kl(loss.dtype),
            self.backtrack_iters,
            self.backtrack_coeff,
        )
        accepted = finite & result.accepted
        new = [o + result.step_size * s for o, s in zip(old, full_step)]
        self._assign(tvars, [tf.where(accepted, n, o) for n, o in zip(new, old)])
        self.iterations.assign_add(1)
        return {
            "kl": tf.where(accepted, result.kl, tf.zeros_like(result.kl)),
            "loss_before": loss,
            "loss_after": tf.where(accepted, result.loss, loss),
            "accepted": accepted,
            "backtracks": result.backtracks,
            "step_size": result.step_size,
            "grad_norm": tf.norm(g),
        }

    def get_config(self):
        config = {"backtrack_iters": self.backtrack_iters, "backtrack_coeff": self.backtrack_coeff}
        base_config = super().get_config()
        del base_config["learning_rate"]  # unused: the step length comes from max_kl
        return {**base_config, **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Configs written before get_config dropped the unused learning rate still hold one.
        return super().from_config(drop_unused_learning_rate(config), custom_objects)
