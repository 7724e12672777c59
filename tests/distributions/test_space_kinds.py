"""Bernoulli, any-shape Box, masked categoricals and the squashed Gaussian, against NumPy.

Every log-probability, entropy and KL here is recomputed from its formula in NumPy (or
by Monte Carlo / a histogram for the squashed Gaussian), independently of TFP.
"""

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from keras_trust import distributions as dists


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_bernoulli_log_prob_entropy_kl_against_numpy():
    rng = np.random.default_rng(0)
    dist = dists.for_space(gym.spaces.MultiBinary([2, 3]))
    assert isinstance(dist, dists.Bernoulli) and dist.noise_shape == (6,)
    lp, lq = rng.normal(size=(2, 5, 6))
    a = (rng.random((5, 6)) < 0.5).astype(np.float32)
    p, q = 1 / (1 + np.exp(-lp)), 1 / (1 + np.exp(-lq))
    t = [tf.constant(lp, tf.float32)]
    np.testing.assert_allclose(
        dist.log_prob(t, tf.constant(a)).numpy(),
        np.sum(a * np.log(p) + (1 - a) * np.log(1 - p), -1),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        dist.entropy(t).numpy(), -np.sum(p * np.log(p) + (1 - p) * np.log(1 - p), -1), rtol=1e-5
    )
    kl = np.sum(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)), -1)
    np.testing.assert_allclose(dist.kl(t, [tf.constant(lq, tf.float32)]).numpy(), kl, rtol=1e-4)


def test_bernoulli_samples_match_the_probabilities_and_reshape_for_the_env():
    rng = np.random.default_rng(1)
    dist = dists.for_space(gym.spaces.MultiBinary([2, 2]))
    logits = np.array([[-2.0, 0.0, 1.0, 3.0]], np.float32)
    noise = dist.noise(rng, (20000,)).astype(np.float32)
    samples = dist.sample([tf.constant(np.repeat(logits, 20000, 0))], tf.constant(noise)).numpy()
    np.testing.assert_allclose(samples.mean(0), 1 / (1 + np.exp(-logits[0])), atol=0.012)
    env = dist.env_action(tf.constant(samples[:3])).numpy()
    assert env.shape == (3, 2, 2) and env.dtype == np.int8
    np.testing.assert_array_equal(env.reshape(3, 4), samples[:3])
    np.testing.assert_array_equal(dist.mode([tf.constant(logits)]).numpy(), [[0, 0, 1, 1]])


def test_box_of_any_shape_is_a_flat_gaussian_reshaped_and_clipped_for_the_env():
    rng = np.random.default_rng(2)
    space = gym.spaces.Box(
        np.array([[-1, -2], [0, -1]]), np.array([[1, 2], [1, 3]]), dtype=np.float32
    )
    dist = dists.for_space(space)
    assert dist.dim == 4 and dist.noise_shape == (4,)
    mean = rng.normal(size=(3, 4)).astype(np.float32)
    log_std = np.full((3, 4), -0.3, np.float32)
    a = rng.normal(size=(3, 4)).astype(np.float32)
    std = np.exp(-0.3)
    expected = np.sum(-0.5 * ((a - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi), -1)
    params = [tf.constant(mean), tf.constant(log_std)]
    np.testing.assert_allclose(dist.log_prob(params, tf.constant(a)).numpy(), expected, rtol=1e-5)
    env = dist.env_action(tf.constant(a * 4)).numpy()
    assert env.shape == (3, 2, 2)
    np.testing.assert_allclose(env, np.clip((a * 4).reshape(3, 2, 2), space.low, space.high))


def test_masked_categorical_has_exactly_zero_probability_on_masked_actions():
    rng = np.random.default_rng(3)
    dist = dists.for_space(gym.spaces.Discrete(5))
    logits = rng.normal(size=(4, 5)).astype(np.float32) * 3
    mask = np.array([[1, 0, 1, 0, 1], [0, 0, 0, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 0, 0]], bool)
    params = dist.apply_mask([tf.constant(logits)], tf.constant(mask))
    probs = tf.nn.softmax(params[0]).numpy()
    assert np.all(probs[~mask] == 0.0)
    # Renormalized over the allowed actions, in NumPy.
    allowed = np.where(mask, logits, -np.inf)
    p = np.exp(np_log_softmax(allowed))
    np.testing.assert_allclose(probs, p, rtol=1e-5, atol=1e-7)
    # Sampling with any noise, and the mode, never pick a masked action.
    for _ in range(50):
        noise = dist.noise(rng, (4,)).astype(np.float32)
        a = dist.sample(params, tf.constant(noise)).numpy()
        assert mask[np.arange(4), a].all()
    assert mask[np.arange(4), dist.mode(params).numpy()].all()
    # Log-prob, entropy and KL over the allowed actions only.
    a = np.array([0, 3, 4, 2])
    np.testing.assert_allclose(
        dist.log_prob(params, tf.constant(a)).numpy(), np.log(p[np.arange(4), a]), rtol=1e-5
    )
    ent = -np.sum(np.where(mask, p * np.log(np.where(mask, p, 1.0)), 0.0), -1)
    np.testing.assert_allclose(dist.entropy(params).numpy(), ent, rtol=1e-5, atol=1e-6)
    other = rng.normal(size=(4, 5)).astype(np.float32)
    q_params = dist.apply_mask([tf.constant(other)], tf.constant(mask))
    q = np.exp(np_log_softmax(np.where(mask, other, -np.inf)))
    kl = np.sum(
        np.where(mask, p * (np.log(np.where(mask, p, 1)) - np.log(np.where(mask, q, 1))), 0), -1
    )
    np.testing.assert_allclose(dist.kl(params, q_params).numpy(), kl, rtol=1e-4, atol=1e-6)


def test_multidiscrete_masks_split_per_sub_action():
    rng = np.random.default_rng(4)
    dist = dists.for_space(gym.spaces.MultiDiscrete([3, 2]))
    assert dist.mask_size == 5
    head = dist.make_head(gain=1.0)
    params = head(tf.constant(rng.normal(size=(2, 4)), tf.float32))
    mask = np.array([[0, 1, 0, 1, 1], [1, 0, 1, 1, 0]], bool)
    masked = dist.apply_mask(params, tf.constant(mask))
    for _ in range(30):
        a = dist.sample(masked, tf.constant(dist.noise(rng, (2,)), tf.float32)).numpy()
        assert mask[np.arange(2), a[:, 0]].all() and mask[np.arange(2), 3 + a[:, 1]].all()
    mode = dist.sample(masked, tf.zeros((2, 2, 3))).numpy()
    assert mode[0, 0] == 1 and mode[1, 1] == 0  # the only allowed choices there
    probs = tf.nn.softmax(masked[0]).numpy()
    assert probs[0, 0, 0] == 0 and probs[0, 0, 2] == 0 and probs[0, 0, 1] == 1
    assert probs[1, 1, 1] == 0 and probs[1, 1, 0] == 1


SPACE = gym.spaces.Box(np.array([-2.0, 0.0]), np.array([2.0, 1.0]), dtype=np.float32)


def test_squashed_gaussian_log_prob_matches_a_histogram_of_its_env_actions():
    """Change of variables checked numerically: the density of env actions estimated from
    samples (histogram) equals exp(log_prob) evaluated at the same actions."""
    rng = np.random.default_rng(5)
    dist = dists.for_space(SPACE, action_distribution="squashed_gaussian")
    mean = np.array([[0.3, -0.8]], np.float32)
    log_std = np.array([[-0.2, 0.4]], np.float32)
    n = 400_000
    params = [tf.constant(np.repeat(mean, n, 0)), tf.constant(np.repeat(log_std, n, 0))]
    u = dist.sample(params, tf.constant(dist.noise(rng, (n,)), tf.float32))
    a = dist.env_action(u).numpy()
    assert (a >= SPACE.low).all() and (a <= SPACE.high).all()
    logp = dist.log_prob(params, u).numpy()
    # Each dimension's marginal: integrate out the other via the product form.
    for d in range(2):
        edges = np.linspace(SPACE.low[d], SPACE.high[d], 41)
        hist, _ = np.histogram(a[:, d], bins=edges, density=True)
        centers = (edges[:-1] + edges[1:]) / 2
        # The 1-D density at the centers, from the 1-D change of variables in NumPy.
        half = (SPACE.high[d] - SPACE.low[d]) / 2
        y = (centers - SPACE.low[d]) / half - 1  # tanh(u)
        uu = np.arctanh(y)
        s = np.exp(log_std[0, d])
        dens = np.exp(-0.5 * ((uu - mean[0, d]) / s) ** 2) / (s * np.sqrt(2 * np.pi))
        dens = dens / (1 - y**2) / half
        inner = slice(2, -2)  # the bins next to the bounds are too curved for a midpoint
        np.testing.assert_allclose(hist[inner], dens[inner], rtol=0.06)
    # log_prob itself is that density's log, summed over dimensions.
    y = (a - SPACE.low) / ((SPACE.high - SPACE.low) / 2) - 1
    uu = np.arctanh(np.clip(y, -1 + 1e-7, 1 - 1e-7))
    s = np.exp(log_std[0])
    ref = np.sum(
        -0.5 * ((uu - mean[0]) / s) ** 2
        - np.log(s * np.sqrt(2 * np.pi))
        - np.log(1 - y**2)
        - np.log((SPACE.high - SPACE.low) / 2),
        -1,
    )
    ok = np.abs(y).max(-1) < 0.999  # away from float32 saturation
    np.testing.assert_allclose(logp[ok][:2000], ref[ok][:2000], rtol=2e-3, atol=2e-3)
    # Entropy (Gauss-Hermite) against the Monte-Carlo estimate -E[log p(a)].
    ent = float(dist.entropy([tf.constant(mean), tf.constant(log_std)]).numpy()[0])
    assert ent == pytest.approx(-logp.mean(), abs=0.01)


def test_squashed_gaussian_kl_is_the_pre_squash_gaussians():
    dist = dists.for_space(SPACE, action_distribution="squashed_gaussian")
    p = [tf.constant([[0.1, 0.2]]), tf.constant([[0.0, -0.5]])]
    q = [tf.constant([[0.4, -0.1]]), tf.constant([[0.3, -0.2]])]
    mp, sp, mq, sq = 0.1, 1.0, 0.4, np.exp(0.3)
    kl0 = np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
    mp, sp, mq, sq = 0.2, np.exp(-0.5), -0.1, np.exp(-0.2)
    kl1 = np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
    np.testing.assert_allclose(dist.kl(p, q).numpy(), [kl0 + kl1], rtol=1e-5)
    np.testing.assert_allclose(dist.mode(p).numpy(), [[0.1, 0.2]])
    env = dist.env_action(dist.mode(p)).numpy()
    np.testing.assert_allclose(env, [[2 * np.tanh(0.1), (np.tanh(0.2) + 1) / 2]], rtol=1e-6)


def test_squashed_gaussian_needs_finite_bounds_and_a_known_name():
    with pytest.raises(ValueError, match="finite bounds"):
        dists.for_space(
            gym.spaces.Box(-np.inf, np.inf, (2,)), action_distribution="squashed_gaussian"
        )
    with pytest.raises(ValueError, match="Unknown action_distribution"):
        dists.for_space(SPACE, action_distribution="beta")
    with pytest.raises(ValueError, match="does not support"):
        dists.for_space(gym.spaces.Discrete(3), action_distribution="squashed_gaussian")
