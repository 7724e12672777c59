"""Batch statistics of the updates: weighted means, advantage standardization, shuffles."""

import tensorflow as tf


def weighted_mean(x, weights) -> tf.Tensor:
    """Mean of `x` over rows where `weights` is 1 (reset steps have weight 0).

    Example:
    >>> float(weighted_mean(tf.constant([1.0, 3.0, 100.0]), tf.constant([1.0, 1.0, 0.0])))
    2.0
    """
    weights = tf.cast(weights, x.dtype)
    return tf.reduce_sum(x * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


def normalize_advantages(adv, weights) -> tf.Tensor:
    """Zero-mean, unit-std advantages over the weighted rows."""
    mean = weighted_mean(adv, weights)
    std = tf.sqrt(weighted_mean(tf.square(adv - mean), weights))
    return (adv - mean) / (std + 1e-8)


def shuffled_indices(n, seed, salt, rows=None) -> tf.Tensor:
    """A permutation of `range(n)` determined by `seed` (int64 pair) and `salt`.

    With `rows`, a `(rows, n)` tensor of such permutations made by one sort (each
    traced op costs graph-building time; one per epoch added ~0.1 s per agent).
    """
    salt = tf.stack([tf.cast(salt, tf.int64), tf.constant(0, tf.int64)])
    shape = [n] if rows is None else [rows, n]
    return tf.argsort(tf.random.stateless_uniform(shape, seed=seed + salt), axis=-1)
