"""Linear learning-rate schedules: values by hand, serialization, `lin_<x>` in presets,
the decay over a run's optimizer steps, and resuming along the same line."""

import keras
import pytest

import keras_trust as kt
from keras_trust import presets
from keras_trust.schedules import LinearSchedule, schedule_from_spec


def test_values_by_hand():
    s = LinearSchedule(1e-3, decay_steps=100)
    for step, expected in [(0, 1e-3), (25, 7.5e-4), (50, 5e-4), (100, 0.0), (150, 0.0)]:
        assert float(s(step)) == pytest.approx(expected, abs=1e-10)
    to_floor = LinearSchedule(1e-3, decay_steps=10, final_learning_rate=1e-4)
    assert float(to_floor(5)) == pytest.approx(5.5e-4)
    assert float(to_floor(20)) == pytest.approx(1e-4)


def test_serialization_round_trips_alone_and_inside_an_optimizer():
    s = LinearSchedule(3e-4, decay_steps=1234, final_learning_rate=1e-5)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    assert isinstance(again, LinearSchedule) and again.get_config() == s.get_config()
    adam = keras.optimizers.Adam(learning_rate=s, epsilon=1e-5)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(adam))
    assert isinstance(restored._learning_rate, LinearSchedule)
    assert restored._learning_rate.get_config() == s.get_config()


def test_rl_zoo_notation():
    s = schedule_from_spec("lin_3e-4", total_steps=50)
    assert isinstance(s, LinearSchedule)
    assert (s.initial_learning_rate, s.decay_steps, s.final_learning_rate) == (3e-4, 50, 0.0)
    assert schedule_from_spec(1e-3, total_steps=50) == 1e-3
    for bad in ("exp_3e-4", "lin_", "lin_fast", "3e-4"):
        with pytest.raises(ValueError, match="schedule"):
            schedule_from_spec(bad, total_steps=50)
    with pytest.raises(ValueError, match="decay_steps"):
        LinearSchedule(1e-3, decay_steps=0)


def test_optimizer_steps_of_a_run():
    # PPO: 64-step rollouts, 2 minibatches of 32, 3 passes -> 6 steps per epoch; 200 steps
    # round up to 4 epochs.
    ppo = kt.PPO(n_envs=2, n_steps=32, batch_size=32, epochs=3)
    assert presets.optimizer_steps(ppo, "optimizer", 200) == 4 * 3 * 2
    # TRPO: one policy step per epoch; the critic 4 minibatches of 16 x 5 passes.
    trpo = kt.TRPO(n_envs=2, n_steps=32, batch_size=16, value_epochs=5)
    assert presets.optimizer_steps(trpo, "optimizer", 200) == 4
    assert presets.optimizer_steps(trpo, "value_optimizer", 200) == 4 * 5 * 4


PRESET = {
    "agent": {"n_envs": 2, "n_steps": 32, "batch_size": 32, "epochs": 2},
    "optimizer": {"name": "adam", "learning_rate": "lin_1e-3", "epsilon": 1e-5},
    "total_timesteps": 4 * 64,
}


def test_a_preset_schedule_decays_to_zero_over_the_run_and_resumes(tmp_path):
    agent = presets.make_agent("ppo", "CartPole-v1", preset=PRESET)
    schedule = agent.optimizer._learning_rate
    assert isinstance(schedule, LinearSchedule)
    assert schedule.decay_steps == 4 * 2 * 2  # 4 epochs x 2 passes x 2 minibatches
    # After epoch e (4 steps each) the rate is 1e-3 * (1 - 4e / 16).
    expected = [7.5e-4, 5e-4, 2.5e-4, 0.0]
    history = agent.fit("CartPole-v1", 2 * 64, verbose=0, seed=0)
    assert history.history["learning_rate"] == pytest.approx(expected[:2], abs=1e-9)
    agent.save(tmp_path / "half.keras")
    resumed = kt.load_agent(tmp_path / "half.keras")
    assert resumed.optimizer._learning_rate.get_config() == schedule.get_config()
    history = resumed.fit("CartPole-v1", 2 * 64, verbose=0, seed=0)
    assert history.history["learning_rate"] == pytest.approx(expected[2:], abs=1e-9)
    assert int(resumed.optimizer.iterations.numpy()) == 16


def test_a_schedule_needs_the_run_length():
    spec = {"name": "adam", "learning_rate": "lin_1e-3"}
    with pytest.raises(ValueError, match="total_timesteps"):
        presets.make_optimizer(spec)
    assert presets.make_optimizer(spec, total_steps=10)._learning_rate.decay_steps == 10
