"""EvalCallback in `fit`: its entries reach every callback and the progress bar, the best
model is saved, and `stop_at_return` stops training."""

import csv
import math

import keras
import numpy as np
import pytest

import keras_trust as kt

STEPS = 2 * 32  # one epoch of the tiny agent


def _agent():
    return kt.PPO(n_envs=2, n_steps=32, batch_size=32, epochs=1)


class Seen(keras.callbacks.Callback):
    """Records the `eval_*` entries each epoch's logs had when this callback ran."""

    def __init__(self):
        super().__init__()
        self.seen = {}

    def on_epoch_end(self, epoch, logs=None):
        self.seen[epoch] = {k: v for k, v in logs.items() if k.startswith("eval_")}


def test_entries_reach_callbacks_listed_before_it(tmp_path):
    seen = Seen()
    csv_path = tmp_path / "metrics.csv"
    evaluation = kt.callbacks.EvalCallback(
        "CartPole-v1", eval_freq=2, n_episodes=3, seed=4, best_model_path=tmp_path / "best.keras"
    )
    # EvalCallback last: Keras would call the others first, with logs it has not filled.
    history = _agent().fit(
        "CartPole-v1",
        4 * STEPS,
        callbacks=[seen, kt.callbacks.MetricsLogger(csv_path), evaluation],
        verbose=0,
        seed=0,
    )
    assert [r.epoch for r in evaluation.results] == [1, 3]
    r1, r3 = evaluation.results
    assert set(seen.seen[0]) == set() and set(seen.seen[2]) == set()
    for epoch, result in zip((1, 3), evaluation.results):
        assert seen.seen[epoch] == {
            "eval_return": result.mean_return,
            "eval_return_std": result.std_return,
            "eval_length": result.mean_length,
        }
    # History gets the entries of the epochs that evaluated (as Keras does for val_*).
    assert history.history["eval_return"] == [r.mean_return for r in evaluation.results]
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["eval_return"] for r in rows] == ["", repr(r1.mean_return), "", repr(r3.mean_return)]
    # CartPole pays 1 per step: the mean return is the mean length.
    assert all(r.mean_return == r.mean_length for r in evaluation.results)
    assert [r.timesteps for r in evaluation.results] == [2 * STEPS, 4 * STEPS]


def test_best_model_is_saved_when_the_return_improves(tmp_path, monkeypatch):
    best = tmp_path / "best.keras"
    agent = _agent()
    evaluation = kt.callbacks.EvalCallback(
        "CartPole-v1", eval_freq=1, n_episodes=2, seed=1, best_model_path=best
    )
    saved = []
    # Scripted returns: improve, worsen, tie, improve.
    script = iter([10.0, 5.0, 10.0, 20.0])

    def scripted(*args, **kwargs):
        r = next(script)
        return {"mean_return": r, "std_return": 0.0, "mean_length": r, "returns": [r]}

    monkeypatch.setattr(kt.callbacks.evaluation, "run_vectorized_episodes", scripted)
    original_save = kt.PPO.save

    def recording_save(self, path, *args, **kwargs):
        saved.append((self.num_timesteps, str(path)))
        return original_save(self, path, *args, **kwargs)

    monkeypatch.setattr(kt.PPO, "save", recording_save)
    agent.fit("CartPole-v1", 4 * STEPS, callbacks=[evaluation], verbose=0, seed=0)
    assert saved == [(STEPS, str(best)), (4 * STEPS, str(best))]
    assert evaluation.best_return == 20.0
    loaded = kt.load_agent(best)
    assert loaded.num_timesteps == 4 * STEPS
    obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))


def test_stop_at_return_stops_training(monkeypatch):
    evaluation = kt.callbacks.EvalCallback(
        "CartPole-v1", eval_freq=1, n_episodes=1, stop_at_return=15.0
    )
    script = iter([10.0, 15.0, 30.0, 40.0])

    def scripted(*args, **kwargs):
        r = next(script)
        return {"mean_return": r, "std_return": 0.0, "mean_length": r, "returns": [r]}

    monkeypatch.setattr(kt.callbacks.evaluation, "run_vectorized_episodes", scripted)
    agent = _agent()
    history = agent.fit("CartPole-v1", 10 * STEPS, callbacks=[evaluation], verbose=0, seed=0)
    assert history.history["eval_return"] == [10.0, 15.0]  # reached at the second epoch
    assert agent.num_timesteps == 2 * STEPS


def test_progress_bar_shows_the_latest_values(capsys):
    evaluation = kt.callbacks.EvalCallback("CartPole-v1", eval_freq=1, n_episodes=2, seed=0)
    history = _agent().fit("CartPole-v1", 3 * STEPS, callbacks=[evaluation], verbose=1, seed=0)
    out = capsys.readouterr().out
    last_update = out.split("\r")[-1] if "\r" in out else out.splitlines()[-1]
    shown = float(last_update.split("episode_return: ")[1].split()[0])
    # The last epoch's value (mean of the last 100 episodes), not an average over epochs.
    assert shown == pytest.approx(history.history["episode_return"][-1], rel=1e-4)
    assert float(last_update.split("eval_return: ")[1].split()[0]) == pytest.approx(
        history.history["eval_return"][-1], rel=1e-4
    )


def test_an_agent_trained_under_masks_is_evaluated_under_them(monkeypatch):
    # Taxi-v4 gives info["action_mask"]; the agent is built masked, and so is evaluated.
    real = kt.callbacks.evaluation.run_vectorized_episodes
    sizes = []

    def recording(*args):
        sizes.append(args[6])  # mask_size (the 7th positional argument)
        return real(*args)

    monkeypatch.setattr(kt.callbacks.evaluation, "run_vectorized_episodes", recording)
    evaluation = kt.callbacks.EvalCallback("Taxi-v4", eval_freq=1, n_episodes=2, seed=0)
    agent = _agent()
    agent.fit("Taxi-v4", STEPS, callbacks=[evaluation], verbose=0, seed=0)
    assert agent.masked and sizes == [6]
    assert evaluation.results[0].mean_length <= 200


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eval_freq": 0}, "eval_freq"),
        ({"n_episodes": -1}, "n_episodes"),
        ({"best_model_path": "best.h5"}, ".keras"),
        ({"stop_at_return": math.nan}, "stop_at_return"),
        ({"n_envs": 0}, "n_envs"),
    ],
)
def test_validates_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kt.callbacks.EvalCallback("CartPole-v1", **kwargs)
