"""Non-finite values in an update roll it back; several in a row stop fit cleanly."""

import gymnasium as gym
import numpy as np
import pytest

import keras_trust as kt


def huge_reward_cartpole():
    # Finite rewards whose discounted sums overflow float32: the update sees inf/NaN.
    return gym.wrappers.TransformReward(gym.make("CartPole-v1"), lambda r: r * 3e38)


def _weights(agent):
    return [np.array(w) for w in agent.trainable_weights]


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_nonfinite_updates_are_rolled_back_and_stop_fit(algo, tmp_path):
    agent = (
        kt.PPO(n_steps=64, batch_size=32) if algo == "ppo" else kt.TRPO(n_steps=64, batch_size=32)
    )
    path = tmp_path / "agent.keras"
    ckpt = kt.callbacks.AgentCheckpoint(path)
    agent.fit("CartPole-v1", 64, verbose=0, seed=0, callbacks=[ckpt])
    before = _weights(agent)
    # The first-order optimizer's slots roll back too (TRPO's TrustRegion keeps no slots,
    # and its iteration count rightly counts the rejected steps).
    first_order = agent.optimizer if algo == "ppo" else agent.value_optimizer
    optimizer_state = [np.array(v) for v in first_order.variables]
    seen = []

    class Record(kt.callbacks.AgentCheckpoint.__mro__[1]):  # keras.callbacks.Callback
        def on_epoch_end(self, epoch, logs=None):
            seen.append(logs["nonfinite"])

    with pytest.raises(FloatingPointError, match="non-finite"):
        agent.fit(huge_reward_cartpole, 10 * 64, verbose=0, callbacks=[Record(), ckpt])
    # Three updates were attempted, each flagged and rolled back; fit stopped there.
    assert seen == [1.0, 1.0, 1.0]
    after = _weights(agent)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert all(
        np.array_equal(a, np.array(b)) for a, b in zip(optimizer_state, first_order.variables)
    )
    # The checkpoint saved at the rolled-back epochs holds the same intact weights.
    restored = kt.load_agent(path)
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, restored.trainable_weights))


def test_nonfinite_observation_names_env_and_step():
    class NanAt(gym.Wrapper):
        def __init__(self, env, at):
            super().__init__(env)
            self.at, self.t = at, 0

        def step(self, action):
            obs, r, term, trunc, info = self.env.step(action)
            self.t += 1
            if self.t == self.at:
                obs = np.full_like(obs, np.nan)
            return obs, r, term, trunc, info

    factories = iter([lambda: gym.make("CartPole-v1"), lambda: NanAt(gym.make("CartPole-v1"), 5)])
    envs = gym.vector.SyncVectorEnv([next(factories), next(factories)])
    agent = kt.PPO(n_envs=2, n_steps=16, batch_size=16)
    with pytest.raises(
        ValueError, match=r"Environment 1 returned a non-finite observation at step 5"
    ):
        agent.fit(envs, 32, verbose=0, seed=0)
