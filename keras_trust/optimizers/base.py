"""Shared machinery of the curvature optimizers: argument checks, compilation, the natural step."""

import keras
import tensorflow as tf

from keras_trust.ops.conjugate_gradient import conjugate_gradient
from keras_trust.ops.fisher import METHODS, fisher_vector_product
from keras_trust.ops.flat import flatten, tf_variables, unflatten
from keras_trust.ops.state import all_finite  # noqa: F401  (re-exported for subclasses)
from keras_trust.schedules import is_schedule, serialize_schedule


def _as_tensors(args):
    """NumPy arrays and Python numbers in a nest -> tensors (graph inputs, not constants)."""

    def convert(x):
        if isinstance(x, tf.Tensor | tf.Variable):
            return x
        if isinstance(x, keras.Variable):
            return x.value
        return tf.convert_to_tensor(x)

    return tf.nest.map_structure(convert, args)


def _key(fn):
    try:
        hash(fn)
    except TypeError:
        return id(fn)
    return fn


def radius_argument(max_kl):
    """`max_kl` as the optimizers keep it: `None`, a float > 0, or a schedule.

    A schedule is a `keras.optimizers.schedules.LearningRateSchedule` (e.g.
    `kt.schedules.LinearSchedule`) of the optimizer's step, as a learning rate may be;
    the dict `get_config` writes for one is deserialized. Its value at step 0 must be
    > 0: a step with radius 0 does not move.
    """
    if isinstance(max_kl, dict):
        max_kl = keras.saving.deserialize_keras_object(max_kl)
    if max_kl is None:
        return None
    if is_schedule(max_kl):
        first = float(max_kl(0))
        if not first > 0:
            raise ValueError(
                f"max_kl's schedule must start > 0. Received: {max_kl!r} with value {first} "
                "at step 0"
            )
        return max_kl
    hint = (
        "max_kl must be a number > 0 or a keras.optimizers.schedules.LearningRateSchedule "
        "(e.g. kt.schedules.LinearSchedule; 'lin_<x>' strings are read by presets and "
        f"configs, which know the run's length). Received: max_kl={max_kl!r}"
    )
    if isinstance(max_kl, bool | str):
        raise ValueError(hint)
    try:
        value = float(max_kl)  # Python and NumPy numbers, 0-d arrays and tensors
    except (TypeError, ValueError) as e:
        raise ValueError(hint) from e
    if not value > 0:
        raise ValueError(f"max_kl must be > 0. Received: max_kl={max_kl}")
    return value


class CurvatureOptimizer(keras.optimizers.Optimizer):
    """Base of `NaturalGradient` and `TrustRegion`: steps preconditioned by the Fisher matrix.

    Subclasses implement `_minimize_graph(loss_fn, variables, kl_fn)`, written with TF ops
    only, so the whole step (gradient, conjugate gradient, scaling, line search) runs as
    one compiled graph. `minimize` calls it directly inside a `tf.function` (e.g. an
    agent's compiled update); eagerly, through a `tf.function` of `args` cached per
    functions and variables, or (zero-argument form) eagerly, so that nothing a
    function reads is ever frozen into a cached graph.
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
        max_kl = radius_argument(max_kl)
        if int(cg_iters) < 1:
            raise ValueError(f"cg_iters must be >= 1. Received: cg_iters={cg_iters}")
        if not float(cg_damping) >= 0:
            raise ValueError(f"cg_damping must be >= 0. Received: cg_damping={cg_damping}")
        if fvp_method not in METHODS:
            raise ValueError(f"fvp_method must be one of {METHODS}. Received: {fvp_method!r}")
        self.max_kl = max_kl
        self.cg_iters = int(cg_iters)
        self.cg_damping = float(cg_damping)
        self.fvp_method = fvp_method
        self.damped_step_length = bool(damped_step_length)
        self._compiled = {}

    def minimize(self, loss_fn, var_list, kl_fn, args=None):
        """Takes one step on `var_list` to reduce `loss_fn()` under the metric of `kl_fn()`.

        What changes from call to call must reach the functions at call time. Inside a
        `tf.function` (e.g. an agent's compiled update) everything does. Eagerly:

        - with `args`, `loss_fn(*args)` and `kl_fn(*args)` run in a graph traced once
          per (functions, variables, structure/shapes/dtypes of `args`) and reused: a
          Python loop passing new data of the same shapes does not retrace. NumPy
          arrays and Python numbers in `args` become tensors, so their values are
          inputs of the graph, never constants baked into it.
        - without `args` (the zero-argument form), the step runs eagerly: the functions
          see the current values of whatever they read (a rebound attribute, a dict, a
          NumPy buffer changed in place, a Python float), at eager speed.

        Args:
            loss_fn: callable, scalar loss to minimize.
            var_list: list of Keras (or TensorFlow) variables to update.
            kl_fn: callable, scalar mean KL(pi_old || pi_theta), 0 at the current
                variables; its Hessian is the Fisher metric.
            args: optional tuple of arguments (tensors, arrays, numbers, or nested
                lists/dicts of them) passed to both functions. Defaults to `None`:
                both take no argument.

        Returns:
            A dict of scalar tensors with at least `kl`, `loss_before`, `loss_after`,
            `accepted` and `backtracks`.

        Example:
        >>> w = keras.Variable([1.0, -1.0])
        >>> opt = kt.optimizers.TrustRegion(max_kl=0.01)   # doctest: +SKIP
        >>> for target in targets:                          # doctest: +SKIP
        ...     old = tf.identity(w.value)
        ...     opt.minimize(lambda old, t: tf.reduce_sum((w - t) ** 2), [w],
        ...                  lambda old, t: 0.5 * tf.reduce_sum((w - old) ** 2),
        ...                  args=(old, target))
        """
        var_list = list(var_list)
        if not var_list:
            raise ValueError("var_list is empty: nothing to optimize.")
        if not self.built:
            self.build(var_list)
        if args is not None and not isinstance(args, tuple | list):
            raise ValueError(
                f"args must be a tuple (or list) of arguments. Received: {type(args).__name__}"
            )
        if not tf.executing_eagerly():
            if args is None:
                return self._minimize_graph(loss_fn, var_list, kl_fn)
            return self._minimize_graph(lambda: loss_fn(*args), var_list, lambda: kl_fn(*args))
        if args is None:
            return self._minimize_graph(loss_fn, var_list, kl_fn)
        return self._traced_step(loss_fn, var_list, kl_fn)(*_as_tensors(tuple(args)))

    def _traced_step(self, loss_fn, var_list, kl_fn):
        """The step as a `tf.function` of the arguments, cached per functions and variables.

        Callables key by value: a bound method is a new object at every attribute access
        but compares equal (same `__self__` and `__func__`), so it is traced once.
        """
        key = (_key(loss_fn), _key(kl_fn), tuple(map(id, var_list)))
        entry = self._compiled.get(key)
        if entry is None:
            if len(self._compiled) >= 8:
                self._compiled.pop(next(iter(self._compiled)))

            def step(*args):
                return self._minimize_graph(lambda: loss_fn(*args), var_list, lambda: kl_fn(*args))

            fn = tf.function(step, autograph=False, reduce_retracing=True)
            # Holding the objects keeps their ids from being reused while cached.
            entry = self._compiled[key] = (fn, loss_fn, kl_fn, var_list)
        return entry[0]

    def apply(self, grads, trainable_variables=None):
        raise NotImplementedError(
            f"{type(self).__name__} needs the KL whose Hessian is its metric: call "
            "`minimize(loss_fn, var_list, kl_fn)` instead of `apply`/`apply_gradients`, "
            "or, to train a Keras model with fit(), wrap it: "
            "kt.supervised.CurvatureModel(model).compile(optimizer=..., loss=...)."
        )

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

    def _max_kl_scale(self, x, xhx):
        """Scale c s.t. the quadratic KL of the step c x, 1/2 c^2 x^T F x, is max_kl.

        `xhx` is x^T (F + dI) x. With `damped_step_length` the damped model
        1/2 c^2 x^T (F + dI) x is scaled to max_kl instead: the damping counts as curvature
        in the step length too, as in the reference TRPO code (Schulman's modular_rl,
        OpenAI baselines, Spinning Up, sb3-contrib), so the step is shorter and equal
        settings give those libraries' step.
        """
        radius = self.current_max_kl(x.dtype)
        return tf.sqrt(2.0 * radius / self._quadratic_form(x, xhx, self.damped_step_length))

    def current_max_kl(self, dtype="float32"):
        """The radius of this step: `max_kl`, or a schedule's value at `iterations`.

        A schedule is read at the optimizer's step counter, which is saved with the
        optimizer, so a resumed run continues along the same schedule.
        """
        if is_schedule(self.max_kl):
            return tf.cast(self.max_kl(self.iterations), dtype)
        return tf.constant(self.max_kl, dtype)

    def _quadratic_form(self, x, xhx, damped):
        """x^T (F + dI) x if `damped`, else x^T F x."""
        return xhx if damped else xhx - self.cg_damping * tf.tensordot(x, x, 1)

    @staticmethod
    def _assign(tvars, values):
        for v, value in zip(tvars, values):
            v.assign(value)

    def _begin(self, var_list):
        tvars = tf_variables(var_list)
        old = [tf.identity(v) for v in tvars]
        return tvars, old

    def get_config(self):
        config = {
            "max_kl": serialize_schedule(self.max_kl),
            "cg_iters": self.cg_iters,
            "cg_damping": self.cg_damping,
            "fvp_method": self.fvp_method,
            "damped_step_length": self.damped_step_length,
        }
        return {**super().get_config(), **config}
