"""TRPO with one torso shared by policy and critic stays inside its trust region.

The critic's epochs run after the trust-region step; were they to move the shared torso,
the policy would leave the region unmeasured. The KL between the policy before the
update and after the *whole* update (trust-region step and critic epochs) is computed
here in NumPy from the logits, over the rollout's valid steps, and must be <= max_kl.
"""

import gymnasium as gym
import numpy as np

import keras_trust as kt
from keras_trust.rollout import InProcessSampler
from keras_trust.rollout.batch import training_batch

MAX_KL = 0.01


def categorical_kl(p_logits, q_logits):
    p = np.exp(p_logits - p_logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    q = np.exp(q_logits - q_logits.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def test_shared_torso_kl_over_the_whole_update_is_within_max_kl():
    torso = kt.networks.mlp((32, 32), name="shared")
    agent = kt.TRPO(policy=torso, value=torso, n_envs=2, n_steps=256, batch_size=64)
    agent.compile(optimizer=kt.optimizers.TrustRegion(max_kl=MAX_KL))
    sampler = InProcessSampler()
    spaces = sampler.start("CartPole-v1", 2, seed=0)
    agent._seed.assign(0)
    agent.prepare(*spaces, seed=0)
    torso_ids = {id(v) for v in torso.trainable_variables}
    critic = agent._value_optimizer_variables()
    assert critic and not any(id(v) in torso_ids for v in critic)
    try:
        for epoch in range(3):
            rollout = sampler.collect(agent, agent.n_steps, epoch)
            batch, _ = training_batch(rollout, rollout.rewards, 0.99, 0.95, [0, epoch])
            before = agent.policy_params(batch["obs"])[0].numpy().astype(np.float64)
            head_before = agent.value_head.get_weights()[0].copy()
            logs = agent.update(batch)
            after = agent.policy_params(batch["obs"])[0].numpy().astype(np.float64)
            valid = batch["weights"].numpy() > 0
            kl = categorical_kl(before, after)[valid].mean()
            assert bool(logs["accepted"])
            assert kl <= MAX_KL * (1 + 1e-5)
            # Nothing after the trust-region step moved the policy: the logged KL is it.
            np.testing.assert_allclose(float(logs["kl"]), kl, rtol=1e-3)
            # The critic still learned: its head moved.
            assert not np.allclose(agent.value_head.get_weights()[0], head_before)
    finally:
        sampler.close()


def test_unshared_critic_keeps_all_its_variables():
    agent = kt.TRPO(n_steps=64, batch_size=32)
    env = gym.make("CartPole-v1")
    agent.prepare(env.observation_space, env.action_space, seed=0)
    assert [id(v) for v in agent._value_optimizer_variables()] == [
        id(v) for v in agent.value_variables
    ]
