"""PPO's clip range and entropy coefficient as schedules (rl-zoo's `lin_` notation).

Checked against the schedule's own formula at the optimizer's step after each update,
through save/load, and from a preset string.
"""

import numpy as np
import pytest

import keras_trust as kt
from keras_trust import presets


def test_schedules_follow_the_optimizer_steps_and_survive_save_load(tmp_path):
    clip = kt.schedules.LinearSchedule(0.2, decay_steps=40)
    ent = kt.schedules.LinearSchedule(0.01, decay_steps=40)
    agent = kt.PPO(n_steps=64, batch_size=32, epochs=2, clip_ratio=clip, ent_coef=ent)
    history = agent.fit("CartPole-v1", 128, verbose=0, seed=0)
    # Logged at the end of each update: 2 epochs x 2 minibatches = 4 steps per update.
    steps = np.array([4.0, 8.0])
    np.testing.assert_allclose(history.history["clip_ratio"], 0.2 * (1 - steps / 40), rtol=1e-6)
    np.testing.assert_allclose(history.history["ent_coef"], 0.01 * (1 - steps / 40), rtol=1e-6)
    agent.save(tmp_path / "a.keras")
    loaded = kt.load_agent(tmp_path / "a.keras")
    assert isinstance(loaded.clip_ratio, kt.schedules.LinearSchedule)
    more = loaded.fit("CartPole-v1", 64, verbose=0, seed=0).history
    np.testing.assert_allclose(more["clip_ratio"], [0.2 * (1 - 12 / 40)], rtol=1e-6)


def test_preset_strings_become_schedules_over_the_run():
    preset = presets.get_preset("ppo", "CartPole-v1")
    preset = {
        **preset,
        "agent": {**preset["agent"], "clip_ratio": "lin_0.2", "ent_coef": "lin_0.01"},
    }
    agent = presets.make_agent(
        "ppo", "CartPole-v1", preset=preset, total_timesteps=preset["total_timesteps"]
    )
    steps = presets.optimizer_steps(agent, "optimizer", preset["total_timesteps"])
    assert isinstance(agent.clip_ratio, kt.schedules.LinearSchedule)
    assert agent.clip_ratio.decay_steps == steps and agent.clip_ratio.initial_learning_rate == 0.2
    assert float(agent.ent_coef(steps)) == 0.0


def test_bad_values_still_raise():
    with pytest.raises(ValueError, match="clip_ratio must be > 0"):
        kt.PPO(clip_ratio=-0.1)
    with pytest.raises(ValueError, match="ent_coef must be >= 0"):
        kt.PPO(ent_coef=-1.0)
