"""Ray runs are exact across worker deaths and across save / load.

The reference is the same seeded `fit` on Ray with nothing going wrong. A worker that
dies is restarted by Ray and continues its envs from the state it returned with its last
rollout, so a fit whose workers die (in the middle of a collect, and between two epochs)
must end with bit-identical weights and optimizer state. The same comparison with the
recovery switched off (the restarted worker starts fresh episodes, as the sampler did
before) must differ, which shows the check can fail. Likewise `fit` k epochs, `save`,
`load_agent`, `fit` the rest on Ray equals the straight run, and differs when the saved
episodes are dropped.
"""

import hashlib
import os

import gymnasium as gym
import keras
import numpy as np
import pytest

ray = pytest.importorskip("ray")

import keras_trust as kt  # noqa: E402
from keras_trust.distributed import RaySampler  # noqa: E402

EPOCHS, FIRST = 6, 3  # epochs of 2 envs x 32 steps, so episodes straddle the epochs
N_STEPS = 32
STEPS_PER_EPOCH = 2 * N_STEPS
DIE_AT_STEP = 2 * N_STEPS + 11  # a worker's env step inside epoch 2's collect


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def make_env_fn(marker):
    """CartPole whose worker process dies at its `DIE_AT_STEP`-th step if `marker` exists.

    The first worker to get there takes the marker (an atomic rename), so exactly one
    worker dies, mid-collect; without the marker the env is plain CartPole.
    """

    def cartpole():
        class DiesOnce(gym.Wrapper):  # local: pickled by value for the workers
            steps = 0

            def step(self, action):
                DiesOnce.steps += 1
                if DiesOnce.steps == DIE_AT_STEP:
                    try:
                        os.rename(marker, marker + ".taken")
                    except OSError:
                        pass  # no marker, or the other worker took it
                    else:
                        os._exit(1)
                return self.env.step(action)

        return DiesOnce(gym.make("CartPole-v1"))

    return cartpole


class KillWorkerAfterEpoch(keras.callbacks.Callback):
    """`ray.kill`s a worker (Ray restarts it) when epoch `epoch` ends, between collects."""

    def __init__(self, sampler, epoch, worker):
        super().__init__()
        self.sampler, self.epoch, self.worker = sampler, epoch, worker

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            ray.kill(self.sampler.workers[self.worker], no_restart=False)


def new_agent():
    # Default n_envs: the sampler's 2 workers x 1 env decide it.
    return kt.PPO(n_steps=N_STEPS, batch_size=32, epochs=2, normalize_observations=True)


def digest(agent) -> str:
    parts = [np.asarray(w).tobytes() for w in agent.get_weights()]
    parts += [np.asarray(v).tobytes() for v in agent.optimizer.variables]
    return hashlib.sha256(b"".join(parts)).hexdigest()


def ray_fit(agent, env, epochs, callbacks_for=None, seed=4):
    sampler = RaySampler(num_workers=2, envs_per_worker=1, max_restarts=3)
    callbacks = callbacks_for(sampler) if callbacks_for else []
    history = agent.fit(
        env, epochs * STEPS_PER_EPOCH, seed=seed, verbose=0, sampler=sampler, callbacks=callbacks
    )
    return history.history


@pytest.fixture(scope="module")
def straight(local_ray, tmp_path_factory):
    """The reference: `EPOCHS` epochs on Ray, nothing killed (the marker never exists)."""
    marker = str(tmp_path_factory.mktemp("marker") / "die")
    env = make_env_fn(marker)
    agent = new_agent()
    history = ray_fit(agent, env, EPOCHS)
    assert history["sampler_restarts"] == [0.0] * EPOCHS
    return env, marker, digest(agent)


def killed_fit(env, marker):
    """The reference run with one worker dying inside epoch 2's collect and worker 1
    killed after epoch 3; returns `(digest, history)`."""
    open(marker, "w").close()
    agent = new_agent()
    history = ray_fit(
        agent, env, EPOCHS, callbacks_for=lambda s: [KillWorkerAfterEpoch(s, 3, worker=1)]
    )
    assert not os.path.exists(marker), "no worker reached the step that kills it"
    os.remove(marker + ".taken")
    assert agent.num_timesteps == EPOCHS * STEPS_PER_EPOCH
    return digest(agent), history


def test_killed_workers_continue_exactly(straight):
    env, marker, expected = straight
    got, history = killed_fit(env, marker)
    restarts = history["sampler_restarts"]
    assert restarts[:2] == [0.0, 0.0]
    assert restarts[2] == 1.0  # the worker that died mid-collect in epoch 2
    assert restarts[-1] == 2.0  # and the one killed after epoch 3
    assert history["sampler_workers"] == [2.0] * EPOCHS
    assert got == expected


def test_without_the_recovery_the_killed_run_differs(straight, monkeypatch):
    """The check above can fail: restarted workers that start fresh episodes (what the
    sampler did before) change the run."""
    env, marker, expected = straight
    monkeypatch.setattr(RaySampler, "_recovery", lambda self, k: (None, None))
    got, history = killed_fit(env, marker)
    assert history["sampler_restarts"][-1] == 2.0
    assert got != expected


def test_ray_fit_save_load_fit_equals_fit_straight(straight, tmp_path):
    env, _, expected = straight
    first = new_agent()
    ray_fit(first, env, FIRST)
    state = first.env_state
    assert state is not None  # the Ray sampler's state: both workers' envs
    assert {k.split("/")[0] for k in state if "/" in k} == {"env0", "env1"}
    # Mid-episode for some env, so the resume needs the replay.
    assert any(len(state[f"env{k}/actions"]) > 0 for k in range(2))
    path = tmp_path / "half.keras"
    first.save(path)

    resumed = kt.load_agent(path)
    ray_fit(resumed, env, EPOCHS - FIRST, seed=None)  # the seed comes from the file
    assert resumed.num_timesteps == EPOCHS * STEPS_PER_EPOCH
    assert digest(resumed) == expected

    dropped = kt.load_agent(path)
    dropped.env_state = None  # fresh episodes: the check above can fail
    ray_fit(dropped, env, EPOCHS - FIRST, seed=None)
    assert digest(dropped) != expected
