"""Fisher-vector products as Hessian-vector products of the mean KL divergence."""

import tensorflow as tf

from keras_trust.ops.flat import tf_variables

_ZERO = tf.UnconnectedGradients.ZERO
METHODS = ("forward_over_reverse", "double_backprop")


def fisher_vector_product(kl_fn, variables, vector, damping=0.0, method="forward_over_reverse"):
    """Returns `(H + damping * I) @ vector`, H the Hessian of `kl_fn` at `variables`.

    When `kl_fn()` is the mean KL(pi_old || pi_theta) with pi_old frozen at the current
    variables, its Hessian there is the Fisher information matrix of the policy, so this
    is the Fisher-vector product used by natural-gradient methods, without ever forming
    the matrix (Schulman et al., 2015, "Trust Region Policy Optimization", App. C.1).

    Args:
        kl_fn: zero-argument callable returning a scalar (the mean KL).
        variables: list of Keras or TensorFlow variables.
        vector: list of tensors shaped like `variables`.
        damping: non-negative float; adds `damping * vector`. Defaults to `0.0`.
        method: `"forward_over_reverse"` (a forward-mode JVP of the reverse-mode
            gradient) or `"double_backprop"` (gradient of `grad . vector`).
            Defaults to `"forward_over_reverse"`.

    Returns:
        A list of tensors shaped like `variables`.

    Example:
    >>> v = tf.Variable([1.0, 2.0])
    >>> fisher_vector_product(lambda: tf.reduce_sum(v**2), [v], [tf.ones([2])])[0].numpy()
    array([2., 2.], dtype=float32)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}. Received: method={method!r}")
    tvars = tf_variables(variables)
    vector = [tf.cast(t, v.dtype) for t, v in zip(vector, tvars)]
    if method == "forward_over_reverse":
        with tf.autodiff.ForwardAccumulator(tvars, vector) as acc:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(tvars)
                kl = kl_fn()
            grads = tape.gradient(kl, tvars, unconnected_gradients=_ZERO)
        products = acc.jvp(grads, unconnected_gradients=_ZERO)
    else:
        with tf.GradientTape(watch_accessed_variables=False) as outer:
            outer.watch(tvars)
            with tf.GradientTape(watch_accessed_variables=False) as inner:
                inner.watch(tvars)
                kl = kl_fn()
            grads = inner.gradient(kl, tvars, unconnected_gradients=_ZERO)
            grad_dot_v = tf.add_n([tf.reduce_sum(g * t) for g, t in zip(grads, vector)])
        products = outer.gradient(grad_dot_v, tvars, unconnected_gradients=_ZERO)
    if isinstance(damping, int | float) and damping == 0:
        return list(products)
    return [p + damping * t for p, t in zip(products, vector)]
