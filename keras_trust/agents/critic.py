"""Fitting the critic: minibatch regression of the value network on the GAE returns."""

import tensorflow as tf

from keras_trust.ops.state import all_finite, rollback, snapshot
from keras_trust.ops.statistics import shuffled_indices, weighted_mean


def fit_critic(
    value_estimate, obs, returns, weights, seed, epochs, batch_size, optimizer, variables
):
    """`epochs` passes of shuffled minibatches of `(V(obs) - returns)^2`, as one loop.

    Written as one `tf.while_loop` over `epochs * n_batches` steps, for use inside a
    compiled update. A non-finite loss or gradient rolls the critic and its optimizer
    back to where they were before the loop.

    Args:
        value_estimate: observation batch -> values `(B,)`.
        obs, returns, weights: the rollout's flat batch (weights 0 on reset steps).
        seed: int64 pair seeding the shuffles.
        epochs: passes over the batch.
        batch_size: minibatch size.
        optimizer: a first-order Keras optimizer, built for `variables`.
        variables: the variables to fit (a torso shared with the policy left out).

    Returns:
        `(mean loss, whether the rollback happened)`.
    """
    n = tf.shape(returns)[0]
    n_batches = n // batch_size
    saved = snapshot(variables + optimizer.variables)
    perms = shuffled_indices(n, seed, 1000, rows=epochs)

    def body(k, total, bad):
        start = (k % n_batches) * batch_size
        idx = tf.slice(perms[k // n_batches], [start], [batch_size])
        mb_obs = tf.nest.map_structure(lambda t: tf.gather(t, idx), obs)
        mb_ret, mb_w = tf.gather(returns, idx), tf.gather(weights, idx)
        with tf.GradientTape() as tape:
            loss = weighted_mean(tf.square(mb_ret - value_estimate(mb_obs)), mb_w)
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
