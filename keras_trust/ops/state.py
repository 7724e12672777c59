"""Variable state for exact rollback: snapshots, conditional restore, finiteness checks.

An update that meets a non-finite loss, gradient or KL must leave the variables (and
optimizer slots) exactly as they were. These helpers do it inside a graph, without
Python branches on tensors.
"""

import tensorflow as tf


def all_finite(*tensors) -> tf.Tensor:
    """True when every element of every tensor is finite.

    Example:
    >>> bool(all_finite(tf.ones(2), tf.constant([0.0, float("nan")])))
    False
    """
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


def snapshot(variables) -> list:
    """Copies of the variables' current values (for an exact rollback)."""
    return [tf.identity(v) for v in variables]


def rollback(variables, saved, condition) -> None:
    """Restores `saved` values where `condition` holds; otherwise leaves the variables."""
    for v, s in zip(variables, saved):
        v.assign(tf.where(condition, s, v))


def unique(variables) -> list:
    """The variables in order, each once (a torso shared by policy and critic appears twice)."""
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out
