"""`RaySampler`: the rollouts of Ray workers are those of the in-process sampler.

One local Ray (2 CPUs) serves the whole module. The reference for the transitions is the
in-process sampler, which steps the same envs in one `SyncVectorEnv` of this process
(and, for the first observations, gymnasium's own `reset(seed=seed + i)`); the Ray
sampler splits the envs over actors that build their own envs and their own copy of the
agent, so it shares with the reference only `EnvRunner` and the agent's weights.
"""

import os
import subprocess
import sys
from collections import Counter

import gymnasium as gym
import keras
import numpy as np
import pytest

ray = pytest.importorskip("ray")

import keras_trust as kt  # noqa: E402
from keras_trust import presets  # noqa: E402
from keras_trust.distributed import RaySampler  # noqa: E402
from keras_trust.rollout import InProcessSampler  # noqa: E402

ENV = "CartPole-v1"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _trained_agent(n_envs):
    """A PPO agent a little away from its initial weights (one in-process epoch)."""
    agent = kt.PPO(n_envs=n_envs, n_steps=32, batch_size=32)
    agent.fit(ENV, total_timesteps=32 * n_envs, seed=3, verbose=0)
    return agent


def test_same_transitions_as_in_process(local_ray):
    agent = _trained_agent(n_envs=2)
    seed, n_steps, iteration = 7, 64, 5

    reference = InProcessSampler()
    reference.start(ENV, 2, seed)
    expected = reference.collect(agent, n_steps, iteration)
    reference.close()

    sampler = RaySampler(num_workers=2, envs_per_worker=1)
    try:
        spaces = sampler.start(ENV, 2, seed)
        got = sampler.collect(agent, n_steps, iteration)
        logs = sampler.logs()
    finally:
        sampler.close()

    assert spaces == (gym.make(ENV).observation_space, gym.make(ENV).action_space)
    # Env i is reset with seed + i, as gymnasium resets a lone env.
    for i in range(2):
        first_obs, _ = gym.make(ENV).reset(seed=seed + i)
        np.testing.assert_array_equal(got.observations[0, i], first_obs)
    # The rollout ends episodes (so autoreset steps are covered) on both envs.
    assert (~got.valid).any(axis=0).all()
    for name in ("observations", "actions", "rewards", "terminated", "truncated", "valid"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)
    np.testing.assert_array_equal(got.last_observations, expected.last_observations)
    # TF on one thread (workers) vs several (here) may differ in the last bit.
    np.testing.assert_allclose(got.log_probs, expected.log_probs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.values, expected.values, rtol=0, atol=1e-6)
    assert Counter(zip(got.episode_returns, got.episode_lengths)) == Counter(
        zip(expected.episode_returns, expected.episode_lengths)
    )
    assert logs == {"sampler_restarts": 0.0, "sampler_workers": 2.0}


def test_fit_survives_a_killed_worker(local_ray):
    sampler = RaySampler(num_workers=2, envs_per_worker=1, max_restarts=3)

    class KillWorker(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                ray.kill(sampler.workers[0], no_restart=False)

    agent = kt.PPO(n_envs=2, n_steps=32, batch_size=32)
    history = agent.fit(ENV, 4 * 64, seed=0, verbose=0, sampler=sampler, callbacks=[KillWorker()])

    assert history.history["sampler_restarts"][:2] == [0.0, 0.0]
    assert history.history["sampler_restarts"][-1] >= 1
    assert len(history.history["sampler_restarts"]) == 4
    assert agent.num_timesteps == 4 * 64
    assert not sampler.workers  # fit closed the sampler


def test_replaces_a_worker_ray_cannot_restart(local_ray):
    """With max_restarts=0 Ray leaves a dead actor dead; the sampler starts a new one."""
    agent = _trained_agent(n_envs=2)
    sampler = RaySampler(num_workers=2, envs_per_worker=1, max_restarts=0)
    try:
        sampler.start(ENV, 2, seed=1)
        sampler.collect(agent, 16, 0)
        dead = sampler.workers[1]
        ray.kill(dead, no_restart=True)
        rollout = sampler.collect(agent, 16, 1)
        assert sampler.workers[1] is not dead
        assert rollout.rewards.shape == (16, 2)
        assert sampler.logs()["sampler_restarts"] == 1.0
    finally:
        sampler.close()


@pytest.mark.slow
def test_ppo_learns_cartpole_on_two_workers(local_ray):
    """The CartPole PPO preset split over 2 workers: deterministic mean return >= 475.

    The Ray rollouts equal the in-process ones (see above), and in-process the preset
    reaches 500 with seed 0 within its budget (tests/agents/test_learning.py).
    """
    preset = presets.get_preset("ppo", ENV)
    n_envs = preset["agent"]["n_envs"]
    assert n_envs % 2 == 0
    agent = presets.make_agent("ppo", ENV)
    sampler = RaySampler(num_workers=2, envs_per_worker=n_envs // 2)
    agent.fit(ENV, preset["total_timesteps"], seed=0, verbose=0, sampler=sampler)
    assert agent.evaluate(ENV, episodes=10, seed=1000)["mean_return"] >= 475.0


def test_the_contracts_example_takes_the_samplers_env_count():
    """`kt.PPO().fit(..., sampler=RaySampler(num_workers=2, envs_per_worker=1))` as written in
    API.md ("Scale-out"): the default n_envs=1 becomes the sampler's 2; an explicit other
    count stays an error."""
    agent = kt.PPO(n_steps=32, batch_size=32)
    sampler = RaySampler(num_workers=2, envs_per_worker=1)
    history = agent.fit(ENV, 128, seed=0, verbose=0, sampler=sampler)
    assert agent.n_envs == 2 and agent.num_timesteps == 128
    assert history.history["timesteps"] == [64.0, 128.0]
    with pytest.raises(ValueError, match="construct the agent with n_envs"):
        kt.PPO(n_envs=3, n_steps=32, batch_size=32).fit(
            ENV, 96, verbose=0, sampler=RaySampler(num_workers=2, envs_per_worker=1)
        )


def test_n_envs_mismatch():
    with pytest.raises(ValueError, match=r"construct the agent with n_envs=.* = 4"):
        RaySampler(num_workers=2, envs_per_worker=2).start(ENV, 2, seed=0)


@pytest.mark.parametrize(
    "env", [gym.make(ENV), gym.vector.SyncVectorEnv([lambda: gym.make(ENV)] * 2)]
)
def test_env_instance_rejected(env):
    with pytest.raises(ValueError, match="pass a registered gymnasium id or a picklable"):
        RaySampler(num_workers=2, envs_per_worker=1).start(env, 2, seed=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_workers=0"):
        RaySampler(num_workers=0)
    with pytest.raises(ValueError, match="max_restarts=-1"):
        RaySampler(max_restarts=-1)


def test_unknown_env_id_surfaces(local_ray):
    sampler = RaySampler(num_workers=1, envs_per_worker=1)
    with pytest.raises(ValueError, match="Unknown environment id"):
        sampler.start("NoSuchEnv-v0", 1, seed=0)
    assert not sampler.workers


def test_gives_up_on_a_worker_that_keeps_dying(local_ray):
    def crashing():
        class Crashing(gym.Wrapper):  # local: pickled by value for the worker
            def step(self, action):
                os._exit(1)  # the worker process dies at its first step, every time

        return Crashing(gym.make(ENV))

    agent = kt.PPO(n_envs=1, n_steps=16, batch_size=16)
    sampler = RaySampler(num_workers=1, envs_per_worker=1, max_restarts=0)
    with pytest.raises(RuntimeError, match=r"worker 0 \(envs 0..0\) failed 3 times in a row"):
        agent.fit(crashing, 16, seed=0, verbose=0, sampler=sampler)
    assert not sampler.workers


def test_env_error_reaches_fit(local_ray):
    """An exception inside a worker's env is the env's error, not a retried worker death."""

    def exploding():
        class Exploding(gym.Wrapper):  # local: pickled by value for the worker
            def step(self, action):
                raise RuntimeError("boom")

        return Exploding(gym.make(ENV))

    agent = kt.PPO(n_envs=1, n_steps=16, batch_size=16)
    sampler = RaySampler(num_workers=1, envs_per_worker=1)
    with pytest.raises(kt.rollout.EnvError, match="Environment 0 raised RuntimeError in step"):
        agent.fit(exploding, 16, seed=0, verbose=0, sampler=sampler)
    assert sampler.restarts == 0
    assert not sampler.workers


def _python(code):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )


def test_ray_is_optional():
    """Importing keras_trust leaves Ray alone; without Ray, RaySampler says how to get it."""
    done = _python(
        "import sys\n"
        "import keras_trust as kt\n"
        "assert 'ray' not in sys.modules, 'importing keras_trust imported ray'\n"
        "sys.modules['ray'] = None  # as if Ray were not installed\n"
        "try:\n"
        "    kt.distributed.RaySampler()\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'pip install "keras-trust[ray]"' in done.stdout
