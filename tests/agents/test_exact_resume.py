"""Exact resume: fit N epochs straight == fit k, save, load in a new process, fit N - k.

The envs' episodes in progress are part of the saved agent (`rollout/env_state.py`):
every episode is seeded from the env's base seed and its episode number, and the
actions since its reset are saved, so a loaded agent replays them and goes on in the
same env state. With the optimizers' slots and iterations (schedules), the
normalization statistics, the reward scaler's running returns, the KL beta, the
recurrent state and the counters saved too, the weights come out bit-identical.
"""

import hashlib
import os
import subprocess
import sys

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_trust as kt

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCHS, FIRST = 6, 3  # N and k; epochs of 2 envs x 64 steps, so episodes straddle them


def make(algo):
    """The agents compared: normalization on, schedules on, 2 envs x 64 steps."""
    common = dict(
        n_envs=2, n_steps=64, batch_size=64, normalize_observations=True, normalize_rewards=True
    )
    adam = keras.optimizers.Adam(kt.schedules.LinearSchedule(1e-3, decay_steps=EPOCHS * 2))
    if algo == "ppo":
        agent = kt.PPO(epochs=2, ent_coef=kt.schedules.LinearSchedule(0.01, EPOCHS * 2), **common)
        agent.compile(optimizer=adam)
    elif algo == "ppo_kl":
        penalty = kt.layers.KLPenalty(target_kl=0.002, initial_beta=1.0)
        agent = kt.PPO(epochs=2, clip_ratio=None, kl_penalty=penalty, **common)
        agent.compile(optimizer=adam)
    elif algo in ("trpo", "npg"):
        agent = kt.TRPO(value_epochs=2, **common)
        policy_optimizer = (
            kt.optimizers.TrustRegion(max_kl=0.01)
            if algo == "trpo"
            else kt.optimizers.NaturalGradient(max_kl=0.005)
        )
        agent.compile(optimizer=policy_optimizer, value_optimizer=adam)
    elif algo == "ppo_gru":
        keras.utils.set_random_seed(0)  # Keras draws initializer seeds at construction
        gru = lambda: kt.networks.RecurrentTorso(keras.layers.GRUCell(8))  # noqa: E731
        agent = kt.PPO(policy=gru(), value=gru(), epochs=2, **common)
        agent.compile(optimizer=adam)
    else:
        raise ValueError(algo)
    return agent


ENVS = {"ppo_gru": "Pendulum-v1", "trpo": "Pendulum-v1"}  # continuous actions replayed too


def env_of(algo):
    return ENVS.get(algo, "CartPole-v1")


def weights_digest(agent) -> str:
    parts = [np.asarray(w).tobytes() for w in agent.get_weights()]
    parts += [np.asarray(v).tobytes() for v in agent.optimizer.variables]
    return hashlib.sha256(b"".join(parts)).hexdigest()


ALGOS = ("ppo", "ppo_kl", "trpo", "npg", "ppo_gru")


def second_halves(paths: dict) -> None:
    """Run in a fresh process: load each agent and fit its remaining epochs (seed from the
    file); prints each one's digest and step count."""
    for algo, path in paths.items():
        agent = kt.load_agent(path)
        steps = agent.n_envs * agent.n_steps
        agent.fit(env_of(algo), (EPOCHS - FIRST) * steps, verbose=0)
        print("DIGEST", algo, weights_digest(agent), agent.num_timesteps)


def _in_new_process(paths: dict) -> dict:
    code = f"import sys; sys.path.insert(0, {HERE!r}); import test_exact_resume as t; "
    code += f"t.second_halves({ {a: str(p) for a, p in paths.items()}!r})"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [x.split() for x in out.stdout.splitlines() if x.startswith("DIGEST")]
    return {algo: (digest, int(steps)) for _, algo, digest, steps in lines}


def test_fit_save_load_fit_equals_fit_straight(tmp_path):
    """PPO, PPO-KL, TRPO, NPG and a recurrent PPO; CartPole and Pendulum; one new process
    for all the second halves (a TensorFlow start-up each would double the test's time)."""
    expected, paths = {}, {}
    for algo in ALGOS:
        env = env_of(algo)
        straight = make(algo)
        steps = straight.n_envs * straight.n_steps
        straight.fit(env, EPOCHS * steps, verbose=0, seed=11)
        expected[algo] = (weights_digest(straight), EPOCHS * steps)

        first = make(algo)
        first.fit(env, FIRST * steps, verbose=0, seed=11)
        # Mid-episode for some env: the resume needs the replay.
        assert any(len(first.env_state[f"env{k}/actions"]) > 0 for k in range(2))
        paths[algo] = tmp_path / f"{algo}.keras"
        first.save(paths[algo])
    assert _in_new_process(paths) == expected


def test_without_the_saved_episodes_the_resumed_run_differs(tmp_path):
    """The check above can fail: dropping the env state (fresh episodes) changes the run."""
    straight = make("ppo")
    straight.fit("CartPole-v1", EPOCHS * 128, verbose=0, seed=11)
    resumed = make("ppo")
    resumed.fit("CartPole-v1", FIRST * 128, verbose=0, seed=11)
    resumed.save(tmp_path / "agent.keras")
    loaded = kt.load_agent(tmp_path / "agent.keras")
    assert loaded.env_state is not None
    loaded.env_state = None
    loaded.fit("CartPole-v1", (EPOCHS - FIRST) * 128, verbose=0)
    assert weights_digest(loaded) != weights_digest(straight)


def test_two_fits_in_one_process_equal_one():
    straight = make("ppo")
    straight.fit("CartPole-v1", EPOCHS * 128, verbose=0, seed=4)
    split = make("ppo")
    split.fit("CartPole-v1", FIRST * 128, verbose=0, seed=4)
    split.fit("CartPole-v1", (EPOCHS - FIRST) * 128, verbose=0)
    assert weights_digest(split) == weights_digest(straight)


def test_the_replayed_episode_is_the_saved_one():
    """Independent of fit: an env reset with the episode's seed and stepped with the saved
    actions is in the state the rollout left it (compared observation by observation)."""
    agent = kt.PPO(n_envs=2, n_steps=50, batch_size=50, epochs=1)
    agent.fit("CartPole-v1", 3 * 100, verbose=0, seed=2)
    state = agent.env_state
    for k in range(2):
        env = gym.make("CartPole-v1")
        base, episode = int(state[f"env{k}/base"]), int(state[f"env{k}/episode"])
        seed = kt.rollout.env_state.episode_seed(base, episode)
        obs, _ = env.reset(seed=seed)
        for action in state[f"env{k}/actions"]:
            obs, *_ = env.step(action)
        digest = kt.rollout.env_state.digest([obs[None]], 0)
        assert digest == state[f"env{k}/obs_digest"].tobytes()
        assert int(state[f"env{k}/base"]) == 2 + k  # gymnasium's vector convention: seed + k


class _Unseeded(gym.Wrapper):
    """Ignores reset seeds (draws its start from the global NumPy generator)."""

    def reset(self, *, seed=None, options=None):
        return self.env.reset(seed=int(np.random.randint(2**31)), options=options)


def test_an_env_that_ignores_its_seed_starts_fresh_episodes_with_a_warning():
    agent = kt.PPO(n_envs=1, n_steps=64, batch_size=64, epochs=1)
    make_env = lambda: _Unseeded(gym.make("CartPole-v1"))  # noqa: E731
    agent.fit(make_env, 128, verbose=0, seed=0)
    with pytest.warns(UserWarning, match="not identical to an uninterrupted one"):
        agent.fit(make_env, 64, verbose=0)
    assert agent.num_timesteps == 192


def test_another_env_or_seed_starts_fresh_episodes_silently(recwarn):
    agent = kt.PPO(n_envs=1, n_steps=64, batch_size=64, epochs=1)
    agent.fit("CartPole-v1", 64, verbose=0, seed=0)
    assert str(agent.env_state["env_key"]) == "CartPole-v1"
    agent.fit("CartPole-v1", 64, verbose=0, seed=1)  # another seed: fresh, by choice
    assert int(agent.env_state["env0/base"]) != 0
    assert not [w for w in recwarn if "not identical" in str(w.message)]
