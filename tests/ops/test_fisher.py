"""Fisher-vector products against the explicit Fisher matrix mean_i J_i^T H_i J_i.

J_i is the Jacobian of sample i's distribution parameters (logits, or mean and log-std)
with respect to all weights, from `tape.jacobian`; H_i is the Fisher of the distribution
in those parameters, written by hand: diag(p) - p p^T for a Categorical's logits, and
diag(1 / sigma^2) (mean block), 2 (each log-std) for a diagonal Gaussian.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_trust as kt
from keras_trust.distributions import CategoricalHead, DiagGaussianHead, kl_divergence

METHODS = ["forward_over_reverse", "double_backprop"]
N_OBS, OBS_DIM = 12, 4


@pytest.fixture
def float64():
    """Runs the test with float64 layers and weights, restoring the defaults after."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx(floatx)
    keras.config.set_dtype_policy(policy)


class Policy:
    """Dense 8 tanh -> Dense 8 tanh -> distribution head, with its trainable variables."""

    def __init__(self, head, seed=0):
        keras.utils.set_random_seed(seed)
        self.head = head
        self.trunk = keras.Sequential(
            [
                keras.Input((OBS_DIM,)),
                keras.layers.Dense(8, activation="tanh"),
                keras.layers.Dense(8, activation="tanh"),
            ]
        )
        self(np.zeros((1, OBS_DIM), keras.config.floatx()))  # creates the head's weights
        self.variables = self.trunk.trainable_variables + head.trainable_variables

    def __call__(self, obs):
        return self.head(self.trunk(obs))


def explicit_fisher(policy, obs, kind):
    """F = mean_i J_i^T H_i J_i as a dense (P, P) numpy array."""
    tvars = kt.ops.tf_variables(policy.variables)
    with tf.GradientTape(persistent=True) as tape:
        params = policy(obs)
    n = obs.shape[0]

    def jac(out):
        parts = tape.jacobian(
            out,
            tvars,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
            experimental_use_pfor=False,
        )
        return np.concatenate([j.numpy().reshape(n, out.shape[1], -1) for j in parts], axis=2)

    if kind == "categorical":
        jacobian = jac(params[0])
        p = tf.nn.softmax(params[0]).numpy().astype(np.float64)
        h = np.stack([np.diag(pi) - np.outer(pi, pi) for pi in p])
    else:
        mean, log_std = params
        jacobian = np.concatenate([jac(mean), jac(log_std)], axis=1)
        inv_var = np.exp(-2.0 * log_std.numpy().astype(np.float64))
        h = np.stack([np.diag(np.concatenate([iv, np.full_like(iv, 2.0)])) for iv in inv_var])
    jacobian = jacobian.astype(np.float64)
    assert jacobian.shape[2] == sum(int(np.prod(v.shape)) for v in policy.variables)
    return np.einsum("nap,nab,nbq->pq", jacobian, h, jacobian) / n


def make_problem(kind, seed=0):
    if kind == "categorical":
        head = CategoricalHead(3, gain=1.0)
    else:
        head = DiagGaussianHead(2, log_std_init=-0.4, gain=1.0)
    policy = Policy(head, seed)
    rng = np.random.default_rng(seed)
    obs = tf.constant(rng.normal(size=(N_OBS, OBS_DIM)), keras.config.floatx())
    old = [tf.constant(p) for p in policy(obs)]

    def kl_fn():
        return tf.reduce_mean(kl_divergence(kind, old, policy(obs)))

    vector = [rng.normal(size=v.shape).astype(keras.config.floatx()) for v in policy.variables]
    return policy, obs, kl_fn, vector


def flat(tensors):
    return np.concatenate([np.asarray(t, np.float64).ravel() for t in tensors])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["categorical", "diag_gaussian"])
def test_fvp_matches_explicit_fisher_float64(float64, kind, method):
    policy, obs, kl_fn, vector = make_problem(kind)
    fisher = explicit_fisher(policy, obs, kind)
    expected = fisher @ flat(vector)
    fvp = kt.ops.fisher_vector_product(kl_fn, policy.variables, vector, 0.0, method)
    assert [tuple(f.shape) for f in fvp] == [tuple(v.shape) for v in policy.variables]
    got = flat(fvp)
    assert np.abs(expected).max() > 1e-2  # a non-trivial product
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["categorical", "diag_gaussian"])
def test_fvp_matches_explicit_fisher_float32(kind, method):
    policy, obs, kl_fn, vector = make_problem(kind, seed=1)
    fisher = explicit_fisher(policy, obs, kind)
    expected = fisher @ flat(vector)
    got = flat(kt.ops.fisher_vector_product(kl_fn, policy.variables, vector, 0.0, method))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_gaussian_fisher_in_distribution_parameters(float64):
    """With the head alone as the 'network' (J = identity on mean bias and log-std), F is
    exactly diag(1/sigma^2) on the mean bias and 2 on each log-std, as stated in closed form."""
    head = DiagGaussianHead(3, log_std_init=0.0, gain=1.0)
    features = tf.zeros((5, 2), tf.float64)  # kernel gets no gradient: only the bias moves
    head(features)
    head.log_std.assign(np.array([-0.5, 0.2, 1.0]))
    old = [tf.constant(p) for p in head(features)]

    def kl_fn():
        return tf.reduce_mean(kl_divergence("diag_gaussian", old, head(features)))

    variables = [head.dense.bias, head.log_std]
    v_bias, v_log_std = np.array([1.0, -2.0, 0.5]), np.array([0.3, 1.0, -1.0])
    for method in METHODS:
        fvp = kt.ops.fisher_vector_product(kl_fn, variables, [v_bias, v_log_std], 0.0, method)
        sigma2 = np.exp(2 * np.array([-0.5, 0.2, 1.0]))
        np.testing.assert_allclose(fvp[0].numpy(), v_bias / sigma2, rtol=1e-12)
        np.testing.assert_allclose(fvp[1].numpy(), 2.0 * v_log_std, rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_damping_adds_exactly_damping_times_vector(float64, method):
    policy, obs, kl_fn, vector = make_problem("categorical", seed=2)
    damping = 0.37
    plain = flat(kt.ops.fisher_vector_product(kl_fn, policy.variables, vector, 0.0, method))
    damped = kt.ops.fisher_vector_product(kl_fn, policy.variables, vector, damping, method)
    np.testing.assert_allclose(flat(damped) - plain, damping * flat(vector), rtol=1e-10, atol=1e-14)


def test_fvp_of_quadratic_is_matrix_times_vector(float64):
    """kl = 1/2 w^T A w has Hessian A: a case computable entirely by hand."""
    a = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]])
    w = keras.Variable(np.array([0.1, -0.2, 0.3]))
    v = np.array([1.0, 2.0, -1.0])
    for method in METHODS:
        fvp = kt.ops.fisher_vector_product(
            lambda: 0.5 * tf.tensordot(w, tf.linalg.matvec(a, w), 1), [w], [v], 0.5, method
        )
        np.testing.assert_allclose(fvp[0].numpy(), a @ v + 0.5 * v, rtol=1e-12)


def test_fvp_inside_tf_function_matches_eager(float64):
    policy, obs, kl_fn, vector = make_problem("diag_gaussian", seed=3)
    expected = explicit_fisher(policy, obs, "diag_gaussian") @ flat(vector)
    for method in METHODS:
        compiled = tf.function(
            lambda m=method: kt.ops.fisher_vector_product(kl_fn, policy.variables, vector, 0.0, m)
        )
        np.testing.assert_allclose(flat(compiled()), expected, rtol=1e-9, atol=1e-12)


def test_bad_method_raises_value_error():
    w = keras.Variable([1.0])
    with pytest.raises(ValueError, match="method"):
        kt.ops.fisher_vector_product(
            lambda: tf.reduce_sum(w**2), [w], [tf.ones([1])], method="gauss_newton"
        )
