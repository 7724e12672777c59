"""Conjugate gradient for symmetric positive-definite systems given only a matvec."""

import tensorflow as tf


def conjugate_gradient(matvec, b, max_iters=10, tol=1e-10, return_residual=False):
    """Approximately solves `A x = b` for symmetric positive-definite `A`.

    Runs at most `max_iters` iterations and stops early once the squared residual
    norm falls below `tol` (Nocedal & Wright, "Numerical Optimization", Alg. 5.2).
    Works eagerly and inside `tf.function` (the loop is a `tf.while_loop`).

    Args:
        matvec: callable mapping a 1-D tensor `p` to `A @ p`.
        b: 1-D tensor, the right-hand side.
        max_iters: maximum number of iterations. Defaults to `10`.
        tol: tolerance on the squared residual norm. Defaults to `1e-10`.
        return_residual: also return the residual `r = b - A x`, as CG keeps it (by
            its recurrence, so no extra matvec). Then `A x = b - r`: TRPO's step length
            needs `x^T A x`, which costs one more Fisher-vector product otherwise.
            Defaults to `False`.

    Returns:
        The 1-D tensor `x`, starting from `x = 0`; `(x, r)` if `return_residual`.

    Example:
    >>> A = tf.constant([[4.0, 1.0], [1.0, 3.0]])
    >>> x = conjugate_gradient(lambda p: tf.linalg.matvec(A, p), tf.constant([1.0, 2.0]))
    >>> x.numpy().round(4)
    array([0.0909, 0.6364], dtype=float32)
    """
    if int(max_iters) < 1:
        raise ValueError(f"max_iters must be >= 1. Received: max_iters={max_iters}")
    b = tf.convert_to_tensor(b)
    tol = tf.cast(tol, b.dtype)
    x = tf.zeros_like(b)
    r = b
    p = b
    rr = tf.tensordot(r, r, 1)

    def cond(i, x, r, p, rr):
        return tf.logical_and(i < max_iters, rr > tol)

    def body(i, x, r, p, rr):
        ap = matvec(p)
        alpha = rr / tf.tensordot(p, ap, 1)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = tf.tensordot(r, r, 1)
        p = r + (rr_new / rr) * p
        return i + 1, x, r, p, rr_new

    _, x, r, _, _ = tf.while_loop(cond, body, (tf.constant(0), x, r, p, rr))
    return (x, r) if return_residual else x
