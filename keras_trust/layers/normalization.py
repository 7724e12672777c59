"""Running mean/variance normalization that lives inside the model (saved and exported)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_trust")
class RunningNormalization(keras.layers.Layer):
    """Normalizes inputs by running statistics: `clip((x - mean) / sqrt(var + eps))`.

    The statistics are non-trainable weights updated only by `update(batch)` (Chan et
    al.'s parallel algorithm), never by calling the layer, so the layer is a pure
    function during a rollout and an update. Being weights, they are saved with the
    model and baked into exported SavedModels.

    Args:
        center: subtract the running mean. With `center=False` only the scale is used
            (reward scaling). Defaults to `True`.
        epsilon: added to the variance. Defaults to `1e-8`.
        clip: clip the normalized value to `[-clip, clip]`; `None` for no clipping.
            Defaults to `10.0`.

    Example:
    >>> norm = RunningNormalization()
    >>> norm.build((None, 1))
    >>> norm.update(tf.constant([[1.0], [3.0]]))
    >>> norm(tf.constant([[3.0]])).numpy().round(3)
    array([[1.]], dtype=float32)
    """

    def __init__(
        self, center: bool = True, epsilon: float = 1e-8, clip: float | None = 10.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.center = bool(center)
        self.epsilon = float(epsilon)
        self.clip = None if clip is None else float(clip)

    def build(self, input_shape):
        shape = tuple(input_shape[1:])
        zeros = keras.initializers.Zeros()
        self.mean = self.add_weight(
            shape=shape, initializer=zeros, trainable=False, dtype="float64", name="mean"
        )
        self.var = self.add_weight(
            shape=shape, initializer="ones", trainable=False, dtype="float64", name="var"
        )
        self.count = self.add_weight(
            shape=(), initializer=zeros, trainable=False, dtype="float64", name="count"
        )

    def call(self, x):
        x = tf.cast(x, self.compute_dtype)
        std = tf.cast(tf.sqrt(self.var + self.epsilon), x.dtype)
        if self.center:
            x = x - tf.cast(self.mean, x.dtype)
        x = x / std
        if self.clip is not None:
            x = tf.clip_by_value(x, -self.clip, self.clip)
        return x

    @property
    def std(self):
        """The current scale, `sqrt(var + epsilon)`."""
        return tf.sqrt(self.var + self.epsilon)

    def update(self, batch):
        """Merges the statistics of `batch` (first axis = samples) into the running ones."""
        batch = tf.cast(tf.convert_to_tensor(batch), tf.float64)
        n = tf.cast(tf.shape(batch)[0], tf.float64)
        batch_mean = tf.reduce_mean(batch, axis=0)
        batch_var = tf.reduce_mean(tf.square(batch - batch_mean), axis=0)
        count = tf.convert_to_tensor(self.count)
        total = count + n
        delta = batch_mean - self.mean
        mean = self.mean + delta * n / total
        m2 = self.var * count + batch_var * n + tf.square(delta) * count * n / total
        # With no history (count 0) the prior var of 1 gets weight 0: var = batch_var.
        # An empty batch leaves the statistics untouched (its moments are NaN).
        empty = n == 0
        self.mean.assign(tf.where(empty, self.mean, mean))
        self.var.assign(tf.where(empty, self.var, m2 / tf.maximum(total, 1.0)))
        self.count.assign(total)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {"center": self.center, "epsilon": self.epsilon, "clip": self.clip}
        return {**super().get_config(), **config}
