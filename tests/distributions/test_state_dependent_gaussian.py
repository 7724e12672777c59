"""gSDE (`action_distribution="gsde"`) against NumPy, Monte Carlo and a real rollout.

The head's per-state std, the sample made from the exploration matrix, the log-prob, KL
and entropy are each recomputed in NumPy from the formulas of Raffin et al. (2021); the
law of the actions is checked by sampling many exploration matrices; the rollout noise
is checked to hold each env's matrix for exactly `sde_sample_freq` steps.
"""

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

import keras_trust as kt
from keras_trust import distributions as dists

SPACE = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)


def built(k=3, log_std_init=0.0, sample_freq=4, seed=0):
    """A gSDE distribution whose head is built on `k` features, with random log-sigma."""
    dist = dists.for_space(
        SPACE, action_distribution="gsde", log_std_init=log_std_init, sde_sample_freq=sample_freq
    )
    head = dist.make_head()
    head.build((None, k))
    rng = np.random.default_rng(seed)
    head.log_std.assign(rng.normal(-0.5, 0.4, (k, 2)).astype(np.float32))
    head.dense.kernel.assign(rng.normal(0, 0.5, (k, 2)).astype(np.float32))
    return dist, head


def np_head(head, z):
    """mean, log_std per row, from the head's weights, in float64."""
    kernel, bias = (np.asarray(w.numpy(), np.float64) for w in (head.dense.kernel, head.dense.bias))
    sigma = np.exp(np.asarray(head.log_std.numpy(), np.float64))
    mean = z @ kernel + bias
    var = (z**2) @ (sigma**2) + 1e-6
    return mean, 0.5 * np.log(var), sigma


def test_head_std_sample_log_prob_entropy_and_kl_against_numpy():
    dist, head = built()
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5, 3))
    mean, log_std, params = *np_head(head, z)[:2], head(tf.constant(z, tf.float32))
    np.testing.assert_allclose(params[0].numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(params[1].numpy(), log_std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(params[2].numpy(), z, rtol=1e-6)
    # The sample: mean + z @ (eps * sigma), one eps matrix per row.
    sigma = np_head(head, z)[2]
    eps = rng.standard_normal((5, 3, 2))
    sample = dist.sample(params, tf.constant(eps, tf.float32)).numpy()
    expected = mean + np.einsum("bk,bkd->bd", z, eps * sigma)
    np.testing.assert_allclose(sample, expected, rtol=1e-5, atol=1e-5)
    # log N(sample; mean, exp(log_std)) summed over action dims.
    std = np.exp(log_std)
    ref = np.sum(-0.5 * ((expected - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi), -1)
    np.testing.assert_allclose(dist.log_prob(params, sample).numpy(), ref, rtol=1e-4)
    ent = np.sum(0.5 * np.log(2 * np.pi * np.e) + log_std, -1)
    np.testing.assert_allclose(dist.entropy(params).numpy(), ent, rtol=1e-5)
    # KL between the laws of two states' actions, per dimension in closed form.
    q = [params[0] + 0.3, params[1] - 0.2, params[2]]
    sq = std * np.exp(-0.2)
    kl = np.sum(np.log(sq / std) + (std**2 + 0.09) / (2 * sq**2) - 0.5, -1)
    np.testing.assert_allclose(dist.kl(params, q).numpy(), kl, rtol=1e-4)
    np.testing.assert_allclose(dists.kl_divergence("gsde", params, q).numpy(), kl, rtol=1e-4)
    assert dists.infer_kind(params) == "gsde"
    np.testing.assert_allclose(dist.mode(params).numpy(), mean, rtol=1e-5, atol=1e-6)


def test_actions_over_many_exploration_matrices_have_the_heads_law():
    """Monte Carlo: for a fixed state, actions over 200k draws of E are N(mean, std(s))."""
    dist, head = built(k=4, seed=3)
    z = np.array([[0.9, -0.4, 0.2, 0.7]], np.float32)
    params = head(tf.constant(z))
    n = 200_000
    eps = np.random.default_rng(7).standard_normal((n, 4, 2)).astype(np.float32)
    tiled = [tf.repeat(p, n, axis=0) for p in params]
    actions = dist.sample(tiled, tf.constant(eps)).numpy()
    mean, log_std, _ = np_head(head, z.astype(np.float64))
    np.testing.assert_allclose(
        actions.mean(0), mean[0], atol=4 * np.exp(log_std[0]).max() / np.sqrt(n)
    )
    # std: sqrt(sum_i z_i^2 sigma_ij^2) (the 1e-6 of the head is below the MC error).
    np.testing.assert_allclose(actions.std(0), np.exp(log_std[0]), rtol=0.01)
    # The two action dims use independent columns of E: uncorrelated.
    assert abs(np.corrcoef(actions.T)[0, 1]) < 0.01


def test_features_enter_the_std_without_gradient_and_log_sigma_with_it():
    _, head = built()
    z = tf.Variable(np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        mean, log_std, _ = head(z)
        s, m = tf.reduce_sum(log_std), tf.reduce_sum(mean)
    assert tape.gradient(s, z) is None  # as SB3 with learn_features=False
    assert np.abs(tape.gradient(m, z).numpy()).sum() > 0
    # d sum(log_std) / d log_sigma_ij = sum_b z_bi^2 sigma_ij^2 / var_bj, checked in NumPy.
    zz = z.numpy().astype(np.float64)
    _, ls, sigma = np_head(head, zz)
    expected = np.einsum("bi,bj->ij", zz**2, 1.0 / np.exp(2 * ls)) * sigma**2
    np.testing.assert_allclose(tape.gradient(s, head.log_std).numpy(), expected, rtol=1e-4)


@pytest.mark.parametrize("freq,blocks", [(4, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]), (-1, [0] * 10)])
def test_rollout_noise_holds_each_matrix_for_sample_freq_steps(freq, blocks):
    dist, _ = built(sample_freq=freq)
    noise = dist.rollout_noise(np.random.default_rng(0), 10)
    assert noise.shape == (10, 3, 2)
    for t, b in enumerate(blocks):
        first = blocks.index(b)
        np.testing.assert_array_equal(noise[t], noise[first])
        if first != 0 or b != 0:
            assert not np.array_equal(noise[first], noise[0])
    # The draws themselves are standard normal, one per block.
    draws = np.random.default_rng(0).standard_normal((max(blocks) + 1, 3, 2))
    np.testing.assert_allclose(noise[blocks.index(max(blocks))], draws[-1])


def test_an_agents_rollout_keeps_its_exploration_matrix_for_the_block():
    """Through the agent's compiled act: the same observation gets the same action within a
    block of `sde_sample_freq` steps and another one in the next block; envs differ."""
    agent = kt.PPO(
        n_envs=2, n_steps=8, batch_size=16, action_distribution="gsde", sde_sample_freq=3
    )
    env = gym.make("Pendulum-v1")
    agent.build_for(env.observation_space, env.action_space)
    policy = agent.acting
    noise = policy.sampling_noise(seed=0, n_steps=8, env_ids=[0, 1], iteration=0)
    assert noise.shape == (8, 2, 64, 1)
    stepper = policy.rollout(noise)
    obs = np.tile(np.array([[0.3, -0.9, 0.5]], np.float32), (2, 1))
    actions = np.stack([stepper.act(obs)[0] for _ in range(8)])  # (8, 2, 1)
    for start in (0, 3, 6):
        block = actions[start : start + 3]
        np.testing.assert_allclose(block, np.broadcast_to(block[0], block.shape), rtol=1e-6)
    assert not np.allclose(actions[0], actions[3]) and not np.allclose(actions[3], actions[6])
    assert not np.allclose(actions[0, 0], actions[0, 1])  # each env its own matrix
    # And the action is mean + z @ (eps * sigma) with the env's own matrix (NumPy).
    mean, _, z = (p.numpy().astype(np.float64) for p in agent.policy_params(obs[:1]))
    sigma = np.exp(agent.policy_head.log_std.numpy().astype(np.float64))
    np.testing.assert_allclose(
        actions[3, 1], (mean + z @ (noise[3, 1] * sigma))[0], rtol=1e-4, atol=1e-5
    )


def test_gsde_agent_saves_loads_and_rejects_bad_settings(tmp_path):
    agent = kt.TRPO(n_envs=2, n_steps=64, action_distribution="gsde", sde_sample_freq=4)
    agent.fit("Pendulum-v1", total_timesteps=128, seed=0, verbose=0)
    assert agent.get_config()["sde_sample_freq"] == 4
    path = str(tmp_path / "gsde.keras")
    agent.save(path)
    loaded = kt.load_agent(path)
    assert type(loaded.action_distribution).__name__ == "StateDependentGaussian"
    assert loaded.action_distribution.sample_freq == 4
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(obs), agent.predict(obs), rtol=1e-6)
    np.testing.assert_allclose(
        loaded.policy_head.log_std.numpy(), agent.policy_head.log_std.numpy()
    )
    # The SavedModel serves the mean action, without keras_trust.
    agent.export(str(tmp_path / "policy"))
    served = tf.saved_model.load(str(tmp_path / "policy")).signatures["serving_default"]
    np.testing.assert_allclose(
        list(served(tf.constant(obs)).values())[0].numpy(), agent.predict(obs), atol=1e-6
    )
    with pytest.raises(ValueError, match="sde_sample_freq must be an integer"):
        kt.PPO(action_distribution="gsde", sde_sample_freq=2.5)
    with pytest.raises(ValueError, match="does not support"):
        kt.PPO(action_distribution="gsde").fit("CartPole-v1", total_timesteps=64, verbose=0)
