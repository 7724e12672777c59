"""Eager `minimize` sees the caller's current data, and its `args` form does not retrace.

The toy: loss = c . w, kl = 1/2 |w - old|^2 - 0.1 sum (w - old)^4 with `old` frozen at
the current w before each call. At w = old the KL's Hessian is I, so the trust-region
step is, by hand, s = -sqrt(2 max_kl) c / |c| whatever the damping (x = c / (1 + d) is
rescaled to the radius), and the quartic term keeps the measured KL below the quadratic
model's, so the full step is accepted. After k calls w = w0 + k s. A step computed
against stale data (`old` from the first call) would measure a KL far from the model and
fail or shrink: the second call is where such a bug shows.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_trust as kt

MAX_KL = 0.01
C = np.array([3.0, 4.0])
W0 = np.array([0.5, -0.25])
STEP = -np.sqrt(2 * MAX_KL) * C / np.linalg.norm(C)


def kl_between(w, old):
    d = w - old
    return 0.5 * tf.reduce_sum(d**2) - 0.1 * tf.reduce_sum(d**4)


def expected_kl():
    return 0.5 * STEP @ STEP - 0.1 * np.sum(STEP**4)


def check(w, infos):
    np.testing.assert_allclose(w.numpy(), W0 + len(infos) * STEP, rtol=1e-10, atol=1e-12)
    for info in infos:
        assert bool(info["accepted"]) and int(info["backtracks"]) == 0
        assert float(info["kl"]) == pytest.approx(expected_kl(), rel=1e-9)


def variable():
    return keras.Variable(W0.copy(), dtype="float64")


class Frozen:
    """pi_old held as an attribute that the caller rebinds; read through bound methods."""

    def __init__(self, w):
        self.w = w
        self.old = tf.identity(w.value)

    def loss(self):
        return tf.tensordot(self.w.value, C, 1)

    def kl(self):
        return kl_between(self.w.value, self.old)


def test_rebound_attribute_through_bound_methods():
    w = variable()
    problem = Frozen(w)
    opt = kt.optimizers.TrustRegion(max_kl=MAX_KL)
    infos = []
    for _ in range(3):
        problem.old = tf.identity(w.value)
        infos.append(opt.minimize(problem.loss, [w], problem.kl))
    check(w, infos)


def test_dict_of_tensors_updated_between_calls():
    w = variable()
    state = {"old": tf.identity(w.value)}
    opt = kt.optimizers.TrustRegion(max_kl=MAX_KL)
    infos = []
    for _ in range(3):
        state["old"] = tf.identity(w.value)
        infos.append(
            opt.minimize(
                lambda: tf.tensordot(w.value, C, 1), [w], lambda: kl_between(w.value, state["old"])
            )
        )
    check(w, infos)


def test_numpy_buffer_changed_in_place():
    w = variable()
    old = w.numpy().copy()
    opt = kt.optimizers.TrustRegion(max_kl=MAX_KL)

    def loss_fn():
        return tf.tensordot(w.value, C, 1)

    def kl_fn():
        return kl_between(w.value, tf.constant(old))

    infos = []
    for _ in range(3):
        old[:] = w.numpy()
        infos.append(opt.minimize(loss_fn, [w], kl_fn))
    check(w, infos)


def test_python_float_read_at_call_time():
    w = variable()
    scale = {"value": 1.0}
    opt = kt.optimizers.TrustRegion(max_kl=MAX_KL)
    old = {"w": None}
    for k, value in enumerate([1.0, 2.0, 5.0]):
        scale["value"] = value
        old["w"] = tf.identity(w.value)
        info = opt.minimize(
            lambda: scale["value"] * tf.tensordot(w.value, C, 1),
            [w],
            lambda: kl_between(w.value, old["w"]),
        )
        start = W0 + k * STEP
        assert float(info["loss_before"]) == pytest.approx(value * start @ C, rel=1e-12)
    np.testing.assert_allclose(w.numpy(), W0 + 3 * STEP, rtol=1e-10)


@pytest.mark.parametrize("kind", ["tensor", "numpy", "float"])
def test_args_form_gives_the_same_steps_and_traces_once(kind):
    """The data passed as `args`: the same steps as the hand computation, and a Python
    loop with new values of the same shapes traces the step once (the functions' bodies
    run only while being traced)."""
    w = variable()
    opt = kt.optimizers.TrustRegion(max_kl=MAX_KL)
    traces = {"n": 0}

    def loss_fn(old, scale):
        traces["n"] += 1
        return tf.cast(scale, tf.float64) * tf.tensordot(w.value, C, 1)

    def kl_fn(old, scale):
        return kl_between(w.value, old)

    convert = {
        "tensor": lambda x: tf.constant(x),
        "numpy": lambda x: np.array(x),
        "float": lambda x: np.array(x),
    }[kind]
    infos = []
    for k in range(4):
        scale = float(k + 1) if kind == "float" else tf.constant(float(k + 1), tf.float64)
        info = opt.minimize(loss_fn, [w], kl_fn, args=(convert(w.numpy()), scale))
        start = W0 + k * STEP
        assert float(info["loss_before"]) == pytest.approx((k + 1) * start @ C, rel=1e-12)
        infos.append(info)
        if k == 0:
            after_first = traces["n"]
    check(w, infos)
    assert after_first >= 1 and traces["n"] == after_first


def test_args_form_inside_a_tf_function():
    w = variable()
    opt = kt.optimizers.NaturalGradient(learning_rate=0.5, cg_damping=0.0, cg_iters=5)

    @tf.function
    def step(old):
        return opt.minimize(
            lambda o: tf.tensordot(w.value, C, 1),
            [w],
            lambda o: kl_between(w.value, o),
            args=(old,),
        )

    step(tf.identity(w.value))
    # F = I at w = old, no damping: the step is -learning_rate * g = -0.5 c.
    np.testing.assert_allclose(w.numpy(), W0 - 0.5 * C, rtol=1e-10)


def test_args_must_be_a_tuple():
    w = variable()
    opt = kt.optimizers.TrustRegion(max_kl=MAX_KL)
    with pytest.raises(ValueError, match="args"):
        opt.minimize(lambda x: tf.reduce_sum(w.value), [w], lambda x: 0.0 * w.value[0], args=1.0)
