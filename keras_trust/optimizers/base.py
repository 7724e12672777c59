"""Shared machinery of the curvature optimizers: argument checks, compilation, the natural step."""

import keras
import numpy as np
import tensorflow as tf

from keras_trust._graph import straight_line
from keras_trust.ops.conjugate_gradient import conjugate_gradient
from keras_trust.ops.fisher import METHODS, fisher_vector_product
from keras_trust.ops.flat import flatten, tf_variables, unflatten


@straight_line
def all_finite(*tensors) -> tf.Tensor:
    """True when every element of every tensor is finite."""
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


def _captured_tensors(fn) -> list:
    """Tensors and arrays a function reads through its closure or global names.

    Eager `minimize` traces the step once and reuses the graph, into which such tensors
    are baked as constants. Keying the cache on them makes rebinding a name to a new
    tensor (the usual "freeze pi_old" pattern) trigger a retrace instead of a stale step.
    Data held in variables is read live and needs no retrace.
    """
    values = [
        cell.cell_contents
        for cell in (getattr(fn, "__closure__", None) or ())
        if _cell_filled(cell)
    ]
    names = getattr(getattr(fn, "__code__", None), "co_names", ())
    module = getattr(fn, "__globals__", {})
    values += [module[n] for n in names if n in module]
    kept = [v for v in values if isinstance(v, list | tuple | tf.Tensor | np.ndarray)]
    leaves = [
        leaf for v in kept for leaf in (tf.nest.flatten(v) if isinstance(v, list | tuple) else [v])
    ]
    return [v for v in leaves if isinstance(v, tf.Tensor | np.ndarray)]


def _key(fn):
    try:
        hash(fn)
    except TypeError:
        return id(fn)
    return fn


def _cell_filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


class CurvatureOptimizer(keras.optimizers.Optimizer):
    """Base of `NaturalGradient` and `TrustRegion`: steps preconditioned by the Fisher matrix.

    Subclasses implement `_minimize_graph(loss_fn, variables, kl_fn)`, written with TF ops
    only, so the whole step (gradient, conjugate gradient, scaling, line search) runs as
    one compiled graph. `minimize` calls it directly inside a `tf.function` (e.g. an
    agent's compiled update) and through a cached `tf.function` when called eagerly.
    """

    def __init__(
        self,
        max_kl,
        cg_iters,
        cg_damping,
        fvp_method,
        learning_rate,
        name,
        damped_step_length=False,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if max_kl is not None and not float(max_kl) > 0:
            raise ValueError(f"max_kl must be > 0. Received: max_kl={max_kl}")
        if int(cg_iters) < 1:
            raise ValueError(f"cg_iters must be >= 1. Received: cg_iters={cg_iters}")
        if not float(cg_damping) >= 0:
            raise ValueError(f"cg_damping must be >= 0. Received: cg_damping={cg_damping}")
        if fvp_method not in METHODS:
            raise ValueError(f"fvp_method must be one of {METHODS}. Received: {fvp_method!r}")
        self.max_kl = None if max_kl is None else float(max_kl)
        self.cg_iters = int(cg_iters)
        self.cg_damping = float(cg_damping)
        self.fvp_method = fvp_method
        self.damped_step_length = bool(damped_step_length)
        self._compiled = {}

    @straight_line
    def minimize(self, loss_fn, var_list, kl_fn):
        """Takes one step on `var_list` to reduce `loss_fn()` under the metric of `kl_fn()`.

        Args:
            loss_fn: zero-argument callable, scalar loss to minimize.
            var_list: list of Keras (or TensorFlow) variables to update.
            kl_fn: zero-argument callable, scalar mean KL(pi_old || pi_theta), 0 at the
                current variables; its Hessian is the Fisher metric.

        Returns:
            A dict of scalar tensors with at least `kl`, `loss_before`, `loss_after`,
            `accepted` and `backtracks`.
        """
        var_list = list(var_list)
        if not var_list:
            raise ValueError("var_list is empty: nothing to optimize.")
        if not self.built:
            self.build(var_list)
        if not tf.executing_eagerly():
            return self._minimize_graph(loss_fn, var_list, kl_fn)
        captured = _captured_tensors(loss_fn) + _captured_tensors(kl_fn)
        # Callables key by value: a bound method is a new object at every attribute access
        # but compares equal (same __self__ and __func__), so it is traced once.
        key = (_key(loss_fn), _key(kl_fn), tuple(map(id, var_list)), tuple(map(id, captured)))
        entry = self._compiled.get(key)
        if entry is None:
            if len(self._compiled) >= 8:
                self._compiled.pop(next(iter(self._compiled)))
            fn = tf.function(
                lambda: self._minimize_graph(loss_fn, var_list, kl_fn), autograph=False
            )
            # Holding the objects keeps their ids from being reused while cached.
            entry = self._compiled[key] = (fn, loss_fn, kl_fn, var_list, captured)
        return entry[0]()

    def apply(self, grads, trainable_variables=None):
        raise NotImplementedError(
            f"{type(self).__name__} needs the KL whose Hessian is its metric: call "
            "`minimize(loss_fn, var_list, kl_fn)` instead of `apply`/`apply_gradients`."
        )

    @straight_line
    def _natural_direction(self, loss_fn, tvars, kl_fn):
        """Loss, gradient, x = (F + damping I)^-1 g by CG, and x^T (F + damping I) x.

        The quadratic form comes from CG's residual r = g - (F + dI) x, as x^T (g - r):
        no Fisher-vector product beyond CG's own, so the product is traced into the
        graph once (tracing a forward-over-reverse product costs ~0.25 s) and run
        `cg_iters` times per step rather than `cg_iters + 1`.
        """
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(tvars)
            loss = loss_fn()
        grads = tape.gradient(loss, tvars, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        g = flatten(grads)

        def matvec(p):
            fvp = fisher_vector_product(
                kl_fn, tvars, unflatten(p, tvars), self.cg_damping, self.fvp_method
            )
            return flatten(fvp)

        x, r = conjugate_gradient(matvec, g, self.cg_iters, return_residual=True)
        return loss, g, x, tf.tensordot(x, g - r, 1)

    @straight_line
    def _max_kl_scale(self, x, xhx):
        """Scale c s.t. the quadratic KL of the step c x, 1/2 c^2 x^T F x, is max_kl.

        `xhx` is x^T (F + dI) x. With `damped_step_length` the damped model
        1/2 c^2 x^T (F + dI) x is scaled to max_kl instead: the damping counts as curvature
        in the step length too, as in the reference TRPO code (Schulman's modular_rl,
        OpenAI baselines, Spinning Up, sb3-contrib), so the step is shorter and equal
        settings give those libraries' step.
        """
        return tf.sqrt(2.0 * self.max_kl / self._quadratic_form(x, xhx, self.damped_step_length))

    @straight_line
    def _quadratic_form(self, x, xhx, damped):
        """x^T (F + dI) x if `damped`, else x^T F x."""
        return xhx if damped else xhx - self.cg_damping * tf.tensordot(x, x, 1)

    @staticmethod
    @straight_line
    def _assign(tvars, values):
        for v, value in zip(tvars, values):
            v.assign(value)

    @straight_line
    def _begin(self, var_list):
        tvars = tf_variables(var_list)
        old = [tf.identity(v) for v in tvars]
        return tvars, old

    def get_config(self):
        config = {
            "max_kl": self.max_kl,
            "cg_iters": self.cg_iters,
            "cg_damping": self.cg_damping,
            "fvp_method": self.fvp_method,
            "damped_step_length": self.damped_step_length,
        }
        return {**super().get_config(), **config}
