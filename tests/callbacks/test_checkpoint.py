"""AgentCheckpoint: atomic saves that survive kill -9, and resuming from them."""

import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import keras_trust as kt

TRAIN_FOREVER = """
import sys
import keras_trust as kt
agent = kt.PPO(n_steps=32, batch_size=32, epochs=1)
ckpt = kt.callbacks.AgentCheckpoint(sys.argv[1], save_freq=1)
agent.fit("CartPole-v1", 10**9, callbacks=[ckpt], verbose=0, seed=0)
"""


def _wait_for(path, proc, timeout=120.0):
    start = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early with code {proc.returncode}")
        if time.monotonic() - start > timeout:
            raise AssertionError("no checkpoint appeared")
        time.sleep(0.05)


def test_kill9_at_random_moments_always_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "agent.keras"
    rng = random.Random(1234)
    loaded_steps = []
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", TRAIN_FOREVER, str(path)])
        try:
            _wait_for(path, proc)
            # The trainer saves every ~0.1 s, so random kills land inside writes too.
            time.sleep(rng.uniform(0.2, 1.5))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        agent = kt.load_agent(path)
        assert agent.num_timesteps > 0 and agent.num_timesteps % 32 == 0
        loaded_steps.append(agent.num_timesteps)
        # At most the one temporary file of the interrupted write is left behind.
        others = [p for p in tmp_path.iterdir() if p.name != "agent.keras"]
        assert len(others) <= 1 and all(p.name.startswith(".tmp-") for p in others)
        for p in others:
            p.unlink()
        path.unlink()
    assert len(loaded_steps) == 4


def test_checkpoint_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match=".keras"):
        kt.callbacks.AgentCheckpoint(tmp_path / "agent.h5")
    with pytest.raises(ValueError, match="save_freq"):
        kt.callbacks.AgentCheckpoint(tmp_path / "agent.keras", save_freq=0)


def test_resume_from_checkpoint_continues_counters(tmp_path):
    penalty = kt.layers.KLPenalty(target_kl=0.001, initial_beta=1.0)
    agent = kt.PPO(
        n_steps=64,
        batch_size=32,
        epochs=2,
        kl_penalty=penalty,
        normalize_observations=True,
        normalize_rewards=True,
    )
    path = tmp_path / "agent.keras"
    agent.fit(
        "CartPole-v1",
        3 * 64,
        callbacks=[kt.callbacks.AgentCheckpoint(path, save_freq=1)],
        verbose=0,
        seed=3,
    )
    resumed = kt.load_agent(path)
    assert resumed.num_timesteps == 3 * 64
    iterations = int(resumed.optimizer.iterations.numpy())
    # 3 epochs x 2 passes x (64 // 32) minibatches of Adam steps.
    assert iterations == 3 * 2 * 2
    beta = float(resumed.kl_penalty.beta.numpy())
    assert beta == float(agent.kl_penalty.beta.numpy())
    count = float(resumed.obs_normalizer.count.numpy())
    # Every valid observation of the 3 rollouts was folded into the statistics.
    assert 0 < count <= 3 * 64
    history = resumed.fit("CartPole-v1", 64, verbose=0, seed=3)
    assert resumed.num_timesteps == 4 * 64
    assert int(resumed.optimizer.iterations.numpy()) == iterations + 2 * 2
    assert float(resumed.obs_normalizer.count.numpy()) > count
    # The beta rule continued from the restored value: x2, /2 or unchanged.
    new_beta = history.history["beta"][-1]
    assert np.isclose(new_beta, [beta * 2, beta / 2, beta]).any()
    # The epoch counter continued too: History's epochs are numbered from 3.
    assert history.epoch == [3]
