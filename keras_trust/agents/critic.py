"""Fitting the critic: minibatch regression of the value network on the GAE returns."""

import tensorflow as tf

from keras_trust.agents import recurrence
from keras_trust.ops.state import all_finite, rollback, snapshot
from keras_trust.ops.statistics import shuffled_indices, weighted_mean


def fit_critic(value_fn, data, seed, epochs, units_per_minibatch, optimizer, variables):
    """`epochs` passes of shuffled minibatches of `(V - returns)^2`, as one loop.

    Written as one `tf.while_loop` over `epochs * n_batches` steps, for use inside a
    compiled update. A non-finite loss or gradient rolls the critic and its optimizer
    back to where they were before the loop.

    Args:
        value_fn: minibatch -> flat values (`recurrence.batch_values`).
        data: the training batch (`obs`, `returns`, `weights`, ...): flat rows, or whole
            sequences for recurrent critics (minibatches are then whole sequences).
        seed: int64 pair seeding the shuffles.
        epochs: passes over the batch.
        units_per_minibatch: rows (or sequences) per minibatch.
        optimizer: a first-order Keras optimizer, built for `variables`.
        variables: the variables to fit (a torso shared with the policy left out).

    Returns:
        `(mean loss, whether the rollback happened)`.
    """
    n = recurrence.units(data)
    n_batches = n // units_per_minibatch
    saved = snapshot(variables + optimizer.variables)
    perms = shuffled_indices(n, seed, 1000, rows=epochs)

    def body(k, total, bad):
        start = (k % n_batches) * units_per_minibatch
        idx = tf.slice(perms[k // n_batches], [start], [units_per_minibatch])
        mb = recurrence.gather(data, idx)
        with tf.GradientTape() as tape:
            error = recurrence.flat(mb, "returns") - value_fn(mb)
            loss = weighted_mean(tf.square(error), recurrence.flat(mb, "weights"))
        grads = tape.gradient(loss, variables)
        ok = all_finite(loss, *grads)
        grads = [tf.where(ok, g, tf.zeros_like(g)) for g in grads]
        optimizer.apply(grads, variables)
        return k + 1, total + loss, bad | ~ok

    steps, total, bad = tf.while_loop(
        lambda k, total, bad: k < epochs * n_batches,
        body,
        (tf.constant(0), tf.constant(0.0), tf.constant(False)),
    )
    rollback(variables + optimizer.variables, saved, bad)
    return total / tf.maximum(tf.cast(steps, tf.float32), 1.0), bad
