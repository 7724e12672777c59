"""Adaptive KL penalty of PPO (Schulman et al., 2017, Sec. 4)."""

import keras
import tensorflow as tf

from keras_trust.distributions import KINDS, infer_kind, kl_divergence


@keras.saving.register_keras_serializable(package="keras_trust")
class KLPenalty(keras.layers.Layer):
    """Adds `beta * mean KL(old || new)` to the layer's losses; `beta` adapts to a target.

    Call it on the old and new distribution parameters (the lists a distribution head
    returns); it returns the mean KL. After each policy update call `update_beta(kl)`
    with the measured KL: beta halves when `kl < target_kl / 1.5` and doubles when
    `kl > 1.5 * target_kl` (Schulman et al., 2017, "Proximal Policy Optimization
    Algorithms", Sec. 4), clipped to `[min_beta, max_beta]` so it can neither vanish
    nor overflow. `beta` is a non-trainable weight, so it is saved with the model.

    Args:
        target_kl: the KL the penalty steers towards. Defaults to `0.01`.
        initial_beta: starting penalty coefficient. Defaults to `1.0`.
        min_beta: lower bound of beta. Defaults to `1e-6`.
        max_beta: upper bound of beta. Defaults to `1e6`.
        distribution: distribution kind (`"categorical"`, `"multi_categorical"`,
            `"diag_gaussian"`), or `None` to infer it from the parameters.

    Example:
    >>> pen = KLPenalty(target_kl=0.01)
    >>> kl = pen([tf.zeros([2, 3])], [tf.zeros([2, 3])])
    >>> float(kl), float(pen.update_beta(0.0))
    (0.0, 0.5)
    """

    def __init__(
        self,
        target_kl: float = 0.01,
        initial_beta: float = 1.0,
        min_beta: float = 1e-6,
        max_beta: float = 1e6,
        distribution: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not float(target_kl) > 0:
            raise ValueError(f"target_kl must be > 0. Received: target_kl={target_kl}")
        if not 0 < float(min_beta) <= float(max_beta):
            raise ValueError(
                f"Need 0 < min_beta <= max_beta. Received: min_beta={min_beta}, max_beta={max_beta}"
            )
        if not float(min_beta) <= float(initial_beta) <= float(max_beta):
            raise ValueError(
                f"initial_beta must be in [min_beta, max_beta] = [{min_beta}, {max_beta}]. "
                f"Received: initial_beta={initial_beta}"
            )
        if distribution is not None and distribution not in KINDS:
            raise ValueError(
                f"distribution must be one of {KINDS} or None. Received: {distribution!r}"
            )
        self.target_kl = float(target_kl)
        self.initial_beta = float(initial_beta)
        self.min_beta = float(min_beta)
        self.max_beta = float(max_beta)
        self.distribution = distribution
        self.beta = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_beta),
            trainable=False,
            name="beta",
        )

    def call(self, old_params, new_params):
        kl = self.mean_kl(old_params, new_params)
        self.add_loss(self.penalty(kl))
        return kl

    def mean_kl(self, old_params, new_params, weights=None):
        """Mean KL(old || new) over the batch (rows weighted by `weights` if given).

        Gradients flow into `new_params` only.
        """
        old_params = [tf.stop_gradient(p) for p in tf.nest.flatten(old_params)]
        new_params = tf.nest.flatten(new_params)
        kind = self.distribution or infer_kind(new_params)
        kl = kl_divergence(kind, old_params, new_params)
        if weights is None:
            return tf.reduce_mean(kl)
        weights = tf.cast(weights, kl.dtype)
        return tf.reduce_sum(kl * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)

    def penalty(self, kl):
        """`beta * kl` (what the call adds to `losses`)."""
        return tf.cast(self.beta, kl.dtype) * kl

    def update_beta(self, kl):
        """Applies the adaptive rule for a measured KL and returns the new beta."""
        kl = tf.cast(kl, self.beta.dtype)
        beta = tf.convert_to_tensor(self.beta)
        beta = tf.where(
            kl < self.target_kl / 1.5,
            beta / 2.0,
            tf.where(kl > self.target_kl * 1.5, beta * 2.0, beta),
        )
        # A non-finite KL carries no information: keep beta as it is.
        beta = tf.where(tf.math.is_finite(kl), beta, tf.convert_to_tensor(self.beta))
        self.beta.assign(tf.clip_by_value(beta, self.min_beta, self.max_beta))
        return tf.convert_to_tensor(self.beta)

    def compute_output_spec(self, old_params, new_params):
        return keras.KerasTensor((), dtype=self.compute_dtype)

    def get_config(self):
        config = {
            "target_kl": self.target_kl,
            "initial_beta": self.initial_beta,
            "min_beta": self.min_beta,
            "max_beta": self.max_beta,
            "distribution": self.distribution,
        }
        return {**super().get_config(), **config}
