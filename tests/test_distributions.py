"""Distributions and heads against numpy formulas and Monte-Carlo estimates."""

import warnings

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keras_trust import distributions as dists
from keras_trust.distributions import (
    CategoricalHead,
    DiagGaussianHead,
    MultiCategoricalHead,
    deterministic_action,
    distribution_kind,
    head_for_space,
    kl_divergence,
    make_distribution,
)

HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


# ---- numpy references -------------------------------------------------------------------


def log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def categorical_kl_np(p_logits, q_logits):
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return (np.exp(lp) * (lp - lq)).sum(-1)


def categorical_entropy_np(logits):
    lp = log_softmax(logits)
    return -(np.exp(lp) * lp).sum(-1)


def gaussian_kl_np(mu_p, log_std_p, mu_q, log_std_q):
    var_p, var_q = np.exp(2 * log_std_p), np.exp(2 * log_std_q)
    per_dim = log_std_q - log_std_p + (var_p + (mu_p - mu_q) ** 2) / (2 * var_q) - 0.5
    return per_dim.sum(-1)


def gaussian_log_prob_np(x, mu, log_std):
    z = (x - mu) / np.exp(log_std)
    return (-0.5 * z**2 - log_std - HALF_LOG_2PI).sum(-1)


def gaussian_entropy_np(log_std):
    return (0.5 + HALF_LOG_2PI + log_std).sum(-1)


def kl(kind, p, q):
    p = [tf.constant(np.asarray(t)) for t in p]
    q = [tf.constant(np.asarray(t)) for t in q]
    return kl_divergence(kind, p, q).numpy()


# ---- closed forms and Monte Carlo ---------------------------------------------------------


def test_categorical_kl_matches_numpy_and_monte_carlo():
    rng = np.random.default_rng(0)
    p_logits, q_logits = rng.normal(size=(3, 5)), rng.normal(size=(3, 5)) * 2.0
    got = kl("categorical", [p_logits], [q_logits])
    np.testing.assert_allclose(got, categorical_kl_np(p_logits, q_logits), rtol=1e-12)
    # Monte Carlo: x ~ P by inverse-CDF sampling in numpy, mean of log p(x) - log q(x).
    n = 200_000
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    for row in range(3):
        x = rng.choice(5, size=n, p=np.exp(lp[row]))
        ratio = lp[row, x] - lq[row, x]
        stderr = ratio.std() / np.sqrt(n)
        assert abs(ratio.mean() - got[row]) < 5 * stderr, (row, ratio.mean(), got[row])


def test_diag_gaussian_kl_matches_numpy_and_monte_carlo():
    rng = np.random.default_rng(1)
    mu_p, mu_q = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    ls_p, ls_q = rng.uniform(-1, 0.5, size=(2, 3)), rng.uniform(-0.5, 0.5, size=(2, 3))
    got = kl("diag_gaussian", [mu_p, ls_p], [mu_q, ls_q])
    np.testing.assert_allclose(got, gaussian_kl_np(mu_p, ls_p, mu_q, ls_q), rtol=1e-12)
    n = 200_000
    for row in range(2):
        x = mu_p[row] + np.exp(ls_p[row]) * rng.standard_normal(size=(n, 3))
        ratio = gaussian_log_prob_np(x, mu_p[row], ls_p[row]) - gaussian_log_prob_np(
            x, mu_q[row], ls_q[row]
        )
        stderr = ratio.std() / np.sqrt(n)
        assert abs(ratio.mean() - got[row]) < 5 * stderr, (row, ratio.mean(), got[row])


def test_kl_monte_carlo_with_tfp_samples():
    """Same check with the TFP distribution's own sampler and log_prob (float32)."""
    p = [tf.constant([[0.3, -0.2]]), tf.constant([[-0.5, 0.1]])]
    q = [tf.constant([[-0.1, 0.4]]), tf.constant([[0.2, -0.3]])]
    dp, dq = make_distribution("diag_gaussian", p), make_distribution("diag_gaussian", q)
    x = dp.sample(100_000, seed=3)
    ratio = (dp.log_prob(x) - dq.log_prob(x)).numpy()[:, 0].astype(np.float64)
    expected = gaussian_kl_np(*(np.asarray(t, np.float64) for t in p + q))[0]
    assert abs(ratio.mean() - expected) < 5 * ratio.std() / np.sqrt(ratio.size)
    np.testing.assert_allclose(kl_divergence("diag_gaussian", p, q).numpy(), [expected], 1e-5)


# ---- properties -------------------------------------------------------------------------

logit_arrays = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 4), st.integers(2, 6)),
    elements=st.one_of(st.floats(-50, 50), st.sampled_from([-50.0, 50.0, 0.0])),
)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), p=logit_arrays)
def test_property_categorical_kl_nonnegative_and_zero_on_self(data, p):
    q = data.draw(hnp.arrays(np.float64, p.shape, elements=st.floats(-50, 50)))
    got = kl("categorical", [p], [q])
    assert np.all(np.isfinite(got)) and np.all(got >= -1e-6)
    np.testing.assert_allclose(got, categorical_kl_np(p, q), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(kl("categorical", [p], [p]), 0.0, atol=1e-9)
    np.testing.assert_array_equal(
        kl("categorical", [p.astype(np.float32)], [p.astype(np.float32)]), 0.0
    )


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shape=st.tuples(st.integers(1, 4), st.integers(1, 4)))
def test_property_gaussian_kl_nonnegative_and_zero_on_self(data, shape):
    def arr(lo, hi):
        return data.draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi)))

    mu_p, mu_q, ls_p, ls_q = arr(-10, 10), arr(-10, 10), arr(-5, 3), arr(-5, 3)
    got = kl("diag_gaussian", [mu_p, ls_p], [mu_q, ls_q])
    assert np.all(np.isfinite(got)) and np.all(got >= -1e-6)
    np.testing.assert_allclose(got, gaussian_kl_np(mu_p, ls_p, mu_q, ls_q), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(kl("diag_gaussian", [mu_p, ls_p], [mu_p, ls_p]), 0.0, atol=1e-9)


# ---- log_prob and entropy ---------------------------------------------------------------


def test_categorical_log_prob_and_entropy():
    logits = np.array([[1.0, 2.0, -1.0], [0.0, 0.0, 0.0], [50.0, -50.0, 3.0]])
    actions = np.array([1, 2, 0])
    d = make_distribution("categorical", [tf.constant(logits)])
    expected = log_softmax(logits)[np.arange(3), actions]
    np.testing.assert_allclose(d.log_prob(actions).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(d.entropy().numpy(), categorical_entropy_np(logits), rtol=1e-12)
    np.testing.assert_allclose(d.entropy().numpy()[1], np.log(3.0), rtol=1e-12)


def test_diag_gaussian_log_prob_and_entropy():
    rng = np.random.default_rng(2)
    mu, ls = rng.normal(size=(4, 3)), rng.uniform(-2, 1, size=(4, 3))
    x = rng.normal(size=(4, 3))
    d = make_distribution("diag_gaussian", [tf.constant(mu), tf.constant(ls)])
    assert d.log_prob(x).shape == (4,)
    np.testing.assert_allclose(d.log_prob(x).numpy(), gaussian_log_prob_np(x, mu, ls), 1e-12)
    np.testing.assert_allclose(d.entropy().numpy(), gaussian_entropy_np(ls), rtol=1e-12)


# ---- MultiDiscrete ----------------------------------------------------------------------


def multi_head(seed, nvec=(2, 3)):
    keras.utils.set_random_seed(seed)
    head = MultiCategoricalHead(list(nvec), gain=1.0)
    features = tf.constant(np.random.default_rng(seed).normal(size=(6, 5)), tf.float32)
    params = head(features)
    raw = head.dense(features).numpy().astype(np.float64)
    return params, np.split(raw, np.cumsum(nvec)[:-1], axis=1)


def test_multi_discrete_padding_has_zero_probability():
    (logits,), _ = multi_head(0)
    assert logits.shape == (6, 2, 3)
    probs = tf.nn.softmax(logits).numpy()
    np.testing.assert_array_equal(probs[:, 0, 2], 0.0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    d = make_distribution("multi_categorical", [logits])
    samples = d.sample(2000, seed=1).numpy()
    assert samples[..., 0].max() == 1 and samples[..., 1].max() == 2


def test_multi_discrete_log_prob_entropy_kl_are_sums_over_sub_actions():
    (p_logits,), (p1, p2) = multi_head(0)
    (q_logits,), (q1, q2) = multi_head(1)
    actions = np.array([[0, 2], [1, 0], [1, 1], [0, 0], [1, 2], [0, 1]])
    d = make_distribution("multi_categorical", [p_logits])
    expected_lp = (
        log_softmax(p1)[np.arange(6), actions[:, 0]] + log_softmax(p2)[np.arange(6), actions[:, 1]]
    )
    np.testing.assert_allclose(d.log_prob(actions).numpy(), expected_lp, rtol=1e-5)
    expected_h = categorical_entropy_np(p1) + categorical_entropy_np(p2)
    np.testing.assert_allclose(d.entropy().numpy(), expected_h, rtol=1e-5)
    expected_kl = categorical_kl_np(p1, q1) + categorical_kl_np(p2, q2)
    got_kl = kl_divergence("multi_categorical", [p_logits], [q_logits]).numpy()
    np.testing.assert_allclose(got_kl, expected_kl, rtol=1e-4, atol=1e-7)
    assert np.all(np.isfinite(got_kl))


# ---- heads and spaces ---------------------------------------------------------------------


def test_head_for_space_types_and_shapes():
    features = tf.zeros((7, 5))
    head = head_for_space(gym.spaces.Discrete(4))
    assert isinstance(head, CategoricalHead) and head.distribution == "categorical"
    (logits,) = head(features)
    assert logits.shape == (7, 4)

    head = head_for_space(gym.spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32))
    assert isinstance(head, DiagGaussianHead) and head.distribution == "diag_gaussian"
    mean, log_std = head(features)
    assert mean.shape == (7, 3) and log_std.shape == (7, 3)
    np.testing.assert_array_equal(log_std.numpy(), 0.0)  # log_std_init default

    head = head_for_space(gym.spaces.MultiDiscrete([2, 3, 4]))
    assert isinstance(head, MultiCategoricalHead) and head.distribution == "multi_categorical"
    (logits,) = head(features)
    assert logits.shape == (7, 3, 4)


def test_gaussian_log_std_is_a_trainable_state_independent_weight():
    head = DiagGaussianHead(2, log_std_init=-0.7)
    _, log_std = head(tf.random.normal((3, 4)))
    np.testing.assert_allclose(log_std.numpy(), -0.7, rtol=1e-6)
    assert any(w is head.log_std for w in head.trainable_weights)


@pytest.mark.parametrize(
    "space, name",
    [
        (gym.spaces.Dict({"a": gym.spaces.Discrete(2)}), "Dict"),
        (gym.spaces.Tuple([gym.spaces.Discrete(2)]), "Tuple"),
        (gym.spaces.Text(5), "Text"),
        (gym.spaces.Box(-1, 1, shape=(2, 2), dtype=np.int64), "Box actions must be float"),
        (gym.spaces.Box(-1.0, 1.0, shape=()), "Box action needs a shape"),
    ],
)
def test_distribution_kind_rejects_unsupported_spaces(space, name):
    with pytest.raises(ValueError, match=name):
        distribution_kind(space)
    with pytest.raises(ValueError, match=name):
        head_for_space(space)


def test_distribution_kind_of_supported_spaces():
    assert distribution_kind(gym.spaces.Discrete(3)) == "categorical"
    assert distribution_kind(gym.spaces.MultiDiscrete([2, 2])) == "multi_categorical"
    assert distribution_kind(gym.spaces.Box(-1, 1, (2,), np.float32)) == "diag_gaussian"
    assert distribution_kind(gym.spaces.Box(-1, 1, (2, 2), np.float32)) == "diag_gaussian"
    assert distribution_kind(gym.spaces.MultiBinary([2, 3])) == "bernoulli"


def test_deterministic_action_is_argmax_or_mean():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(5, 4))
    np.testing.assert_array_equal(
        deterministic_action("categorical", [tf.constant(logits)]).numpy(), logits.argmax(-1)
    )
    multi = rng.normal(size=(5, 2, 3))
    np.testing.assert_array_equal(
        deterministic_action("multi_categorical", [tf.constant(multi)]).numpy(),
        multi.argmax(-1),
    )
    mean, log_std = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    got = deterministic_action("diag_gaussian", [tf.constant(mean), tf.constant(log_std)])
    np.testing.assert_array_equal(got.numpy(), mean)


def test_multi_discrete_deterministic_action_never_picks_padding():
    (logits,), (p1, p2) = multi_head(3)
    got = deterministic_action("multi_categorical", [logits]).numpy()
    np.testing.assert_array_equal(got[:, 0], p1.argmax(-1))
    np.testing.assert_array_equal(got[:, 1], p2.argmax(-1))


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="Unknown distribution kind"):
        make_distribution("beta", [tf.zeros([1, 2])])
    with pytest.raises(ValueError, match="Unknown distribution kind"):
        deterministic_action("beta", [tf.zeros([1, 2])])


def test_heads_round_trip_through_keras_serialization():
    heads = [
        CategoricalHead(3, gain=0.5),
        MultiCategoricalHead([2, 3]),
        DiagGaussianHead(2),
        dists.BernoulliHead(4),
        dists.StateDependentGaussianHead(2, log_std_init=-1.0, epsilon=1e-5),
    ]
    for head in heads:
        clone = keras.layers.deserialize(keras.layers.serialize(head))
        assert type(clone) is type(head)
        assert clone.get_config() == head.get_config()
    assert dists.KINDS == (
        "categorical",
        "multi_categorical",
        "bernoulli",
        "diag_gaussian",
        "squashed_gaussian",
        "gsde",
    )


HEAD_FACTORIES = {
    "categorical": (lambda: CategoricalHead(3), 2),
    "multi_categorical": (lambda: MultiCategoricalHead([2, 3]), 2),
    "diag_gaussian": (lambda: DiagGaussianHead(2), 3),
}


@pytest.mark.parametrize("kind", list(HEAD_FACTORIES))
def test_heads_build_creates_their_weights(kind):
    """`build(input_shape)` creates every weight, without Keras' 'unbuilt state' warning
    (which every first call of a head without `build()` emits)."""
    make, n_weights = HEAD_FACTORIES[kind]
    head = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        head.build((None, 5))
    assert len(head.weights) == n_weights


@pytest.mark.parametrize("kind", list(HEAD_FACTORIES))
def test_heads_respect_their_dtype_policy(kind):
    """A head built with dtype='float64' computes in float64 and holds float64 weights."""
    head = HEAD_FACTORIES[kind][0]()
    head64 = type(head).from_config({**head.get_config(), "dtype": "float64"})
    outputs = head64(tf.zeros((2, 5), tf.float64))
    assert [w.dtype for w in head64.weights] == ["float64"] * len(head64.weights)
    assert all(o.dtype == tf.float64 for o in outputs)


def test_distribution_objects_sample_mode_and_env_action_against_numpy():
    """Each kind's `sample` from given noise, `mode` and env mapping, in NumPy."""
    rng = np.random.default_rng(3)
    # Discrete with start: Gumbel-max, then the offset.
    cat = dists.for_space(gym.spaces.Discrete(4, start=2))
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    noise = cat.noise(rng, (5,)).astype(np.float32)
    assert noise.shape == (5, *cat.noise_shape) == (5, 4)
    sample = cat.sample([tf.constant(logits)], tf.constant(noise)).numpy()
    np.testing.assert_array_equal(sample, np.argmax(logits + noise, -1))
    np.testing.assert_array_equal(cat.env_action(tf.constant(sample)).numpy(), sample + 2)
    np.testing.assert_array_equal(cat.mode([tf.constant(logits)]).numpy(), logits.argmax(-1))
    # MultiDiscrete with starts.
    multi = dists.for_space(gym.spaces.MultiDiscrete([2, 3], start=[1, -1]))
    assert multi.noise_shape == (2, 3)
    action = tf.constant([[0, 2], [1, 0]], tf.int64)
    np.testing.assert_array_equal(multi.env_action(action).numpy(), [[1, 1], [2, -1]])
    # Box: mean + std * eps, clipped to the bounds for the env.
    box = dists.for_space(gym.spaces.Box(-1.0, 2.0, (3,), np.float32), log_std_init=-1.0)
    mean = rng.normal(size=(4, 3)).astype(np.float32)
    log_std = np.full((4, 3), -1.0, np.float32)
    eps = box.noise(rng, (4,)).astype(np.float32)
    raw = box.sample([tf.constant(mean), tf.constant(log_std)], tf.constant(eps)).numpy()
    np.testing.assert_allclose(raw, mean + np.exp(-1.0) * eps, rtol=1e-6)
    np.testing.assert_allclose(
        box.env_action(tf.constant(raw * 5)).numpy(), np.clip(raw * 5, -1, 2)
    )
    assert box.make_head().log_std_init == -1.0
    # Unbounded Box: no clipping.
    free = dists.for_space(gym.spaces.Box(-np.inf, np.inf, (2,), np.float32))
    big = tf.constant([[1e6, -1e6]])
    np.testing.assert_array_equal(free.env_action(big).numpy(), big.numpy())


def test_for_space_names_unsupported_spaces():
    with pytest.raises(ValueError, match="Text"):
        dists.for_space(gym.spaces.Text(5))
    assert [cls.name for cls in dists.DISTRIBUTIONS] == list(dists.KINDS)
