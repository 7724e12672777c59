"""Flatten a list of tensors into one vector and back."""

import tensorflow as tf


def _as_tf(x):
    """The tensor or `tf.Variable` behind a Keras variable (Keras 3 variables wrap one)."""
    return getattr(x, "value", x) if not isinstance(x, tf.Tensor | tf.Variable) else x


def flatten(tensors) -> tf.Tensor:
    """Concatenates tensors into a single 1-D tensor.

    Example:
    >>> flatten([tf.ones([2, 2]), tf.zeros([3])]).shape
    TensorShape([7])
    """
    return tf.concat([tf.reshape(_as_tf(t), [-1]) for t in tensors], axis=0)


def unflatten(vector: tf.Tensor, like) -> list[tf.Tensor]:
    """Splits a 1-D tensor into tensors shaped like `like` (tensors or variables).

    Example:
    >>> [t.shape for t in unflatten(tf.range(7.0), [tf.ones([2, 2]), tf.zeros([3])])]
    [TensorShape([2, 2]), TensorShape([3])]
    """
    shapes = [tuple(t.shape) for t in like]
    sizes = [int(tf.TensorShape(s).num_elements()) for s in shapes]
    parts = tf.split(vector, sizes)
    return [tf.reshape(p, s) for p, s in zip(parts, shapes)]


def tf_variables(variables) -> list:
    """The `tf.Variable`s behind a list of Keras (or TensorFlow) variables."""
    return [_as_tf(v) for v in variables]
