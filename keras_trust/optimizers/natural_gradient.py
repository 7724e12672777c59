"""Natural policy gradient optimizer (Kakade, 2001)."""

import keras
import tensorflow as tf

from keras_trust.ops.flat import unflatten
from keras_trust.optimizers.arguments import (
    check_learning_rate_used,
    check_optimizer_arguments,
    drop_unused_learning_rate,
)
from keras_trust.optimizers.base import CurvatureOptimizer, all_finite


@keras.saving.register_keras_serializable(package="keras_trust")
class NaturalGradient(CurvatureOptimizer):
    """Steps along the natural gradient `-F^-1 g`, found by conjugate gradient.

    F is the Hessian of `kl_fn` (the Fisher matrix of the policy), applied through
    Fisher-vector products and never formed. With `max_kl`, the step is scaled so that
    the quadratic model of the KL, `1/2 s^T F s`, equals `max_kl` (the natural policy
    gradient of Kakade, 2001, with the step rule of Schulman et al., 2015), or with
    `damped_step_length=True` the damped model `1/2 s^T (F + cg_damping I) s` does; without it
    the step is `learning_rate * (F + cg_damping I)^-1 g`. There is no line search: use
    `TrustRegion` for that. A non-finite loss, gradient, step, or measured KL or loss after
    the step leaves the variables exactly as they were.

    Args:
        max_kl: trust-region radius of the quadratic KL model (a number, or a
            `keras.optimizers.schedules.LearningRateSchedule` of `iterations`), or `None`
            to use `learning_rate`. Defaults to `None`.
        learning_rate: step size when `max_kl` is `None`. Defaults to `0.01`. Giving it
            together with `max_kl` (which sets the step length) is a `ValueError`.
        cg_iters: conjugate-gradient iterations. Defaults to `10`.
        cg_damping: Tikhonov damping added to F. Defaults to `0.1`.
        fvp_method: `"forward_over_reverse"` or `"double_backprop"`.
        damped_step_length: scale to `max_kl` the damped quadratic model, as the
            reference TRPO code does (a shorter step). Defaults to `False`.
        **kwargs: passed to `keras.optimizers.Optimizer` (e.g. `name`). Its clipping,
            weight decay, EMA, gradient accumulation and loss scaling act in `apply()`,
            which `minimize` never calls: setting them is a `ValueError`.

    Example:
    >>> w = keras.Variable([1.0, -1.0])
    >>> opt = NaturalGradient(max_kl=0.01)
    >>> w0 = tf.constant([1.0, -1.0])  # frozen "old" parameters: KL = 1/2 |w - w0|^2
    >>> info = opt.minimize(lambda: tf.reduce_sum(w**2), [w],
    ...                     lambda: 0.5 * tf.reduce_sum((w - w0) ** 2))
    >>> bool(info["accepted"])
    True
    """

    def __init__(
        self,
        max_kl=None,
        learning_rate=None,
        cg_iters=10,
        cg_damping=0.1,
        fvp_method="forward_over_reverse",
        damped_step_length=False,
        name="natural_gradient",
        **kwargs,
    ):
        check_learning_rate_used("NaturalGradient", max_kl, learning_rate)
        check_optimizer_arguments("NaturalGradient", kwargs)
        if learning_rate is None:
            learning_rate = 0.01  # the documented default; only a placeholder with max_kl
        super().__init__(
            max_kl,
            cg_iters,
            cg_damping,
            fvp_method,
            learning_rate,
            name,
            damped_step_length=damped_step_length,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        if self.max_kl is not None:
            del config["learning_rate"]  # unused: the step length comes from max_kl
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # Configs written before get_config dropped the unused learning rate still hold one.
        return super().from_config(drop_unused_learning_rate(config), custom_objects)

    def _minimize_graph(self, loss_fn, var_list, kl_fn):
        tvars, old = self._begin(var_list)
        loss, g, x, xhx = self._natural_direction(loss_fn, tvars, kl_fn)
        if self.max_kl is None:
            scale = tf.cast(self.learning_rate, x.dtype)
        else:
            scale = self._max_kl_scale(x, xhx)
        step = -scale * x
        finite = all_finite(loss, g, step)
        step = tf.where(finite, step, tf.zeros_like(step))
        new = [o + s for o, s in zip(old, unflatten(step, tvars))]
        self._assign(tvars, [tf.where(finite, n, o) for n, o in zip(new, old)])
        kl = kl_fn()
        loss_after = loss_fn()
        # A step whose measured KL or loss is non-finite is undone as well.
        accepted = finite & all_finite(kl, loss_after)
        self._assign(tvars, [tf.where(accepted, n, o) for n, o in zip(new, old)])
        kl = tf.where(accepted, kl, tf.zeros_like(kl))
        loss_after = tf.where(accepted, loss_after, loss)
        self.iterations.assign_add(1)
        return {
            "kl": kl,
            "loss_before": loss,
            "loss_after": loss_after,
            "accepted": accepted,
            "backtracks": tf.constant(0),
            "quadratic_kl": 0.5 * scale**2 * self._quadratic_form(x, xhx, damped=False),
            "grad_norm": tf.norm(g),
        }
