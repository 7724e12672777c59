"""Keras callbacks in an agent's `fit`: the stock ones (History, CSVLogger, TensorBoard,
EarlyStopping, TerminateOnNaN) get the logs they expect, and `AgentCheckpoint` saves."""

import csv
import glob
import os

import keras
import numpy as np
import pytest
from agent_helpers import (
    REQUIRED_LOGS,
    LogRecorder,
    cartpole_observations,
    constant_env,
    same_weights,
    small_ppo,
)

import keras_trust as kt

# ----------------------------------------------------------------- callbacks


@pytest.mark.parametrize("variant", ["ppo_clip", "ppo_kl", "trpo"])
def test_stock_keras_callbacks_receive_the_logs(variant, tmp_path):
    if variant == "trpo":
        agent = kt.TRPO(n_steps=16, batch_size=16, value_epochs=2, hidden_sizes=(8,))
        extra = {"backtracks", "accepted"}
    elif variant == "ppo_kl":
        agent = small_ppo(
            n_steps=16, batch_size=16, clip_ratio=None, kl_penalty=kt.layers.KLPenalty()
        )
        extra = {"beta"}
    else:
        agent = small_ppo(n_steps=16, batch_size=16)
        extra = {"clip_fraction"}
    recorder = LogRecorder()
    csv_path = tmp_path / "metrics.csv"
    history = agent.fit(
        lambda: constant_env(10),
        3 * 16,
        verbose=0,
        seed=0,
        callbacks=[
            keras.callbacks.CSVLogger(str(csv_path)),
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.ModelCheckpoint(str(tmp_path / "stock.keras")),
            recorder,
        ],
    )
    assert isinstance(history, keras.callbacks.History)
    assert history.epoch == [0, 1, 2]
    logs = history.history
    assert REQUIRED_LOGS | extra <= set(logs)
    others = {"clip_fraction", "beta", "backtracks", "accepted"} - extra
    assert not (others & set(logs)), others & set(logs)
    # Every episode of the env lasts 10 steps and returns 10.
    assert logs["episode_return"] == [10.0, 10.0, 10.0]
    assert logs["episode_length"] == [10.0, 10.0, 10.0]
    assert logs["timesteps"] == [16.0, 32.0, 48.0]
    assert all(f > 0 for f in logs["fps"])
    assert all(0.0 <= e <= np.log(2) + 1e-6 for e in logs["entropy"])
    assert all(k >= -1e-6 for k in logs["kl"])
    # The custom callback saw the same numbers, once per epoch.
    assert recorder.epochs == [0, 1, 2]
    for i, seen in enumerate(recorder.logs):
        for key in REQUIRED_LOGS | extra:
            assert seen[key] == logs[key][i]
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert REQUIRED_LOGS | extra <= set(rows[0])
    assert [float(r["episode_return"]) for r in rows] == [10.0, 10.0, 10.0]
    assert [float(r["policy_loss"]) for r in rows] == pytest.approx(logs["policy_loss"])
    # Keras' own ModelCheckpoint saved a file that loads as the same agent.
    saved = kt.load_agent(tmp_path / "stock.keras")
    assert type(saved) is type(agent)
    assert saved.num_timesteps == 48
    assert same_weights(saved, agent)
    if variant == "trpo":
        assert all(b == int(b) and 0 <= b <= 10 for b in logs["backtracks"])
        assert all(a in (0.0, 1.0) for a in logs["accepted"])
        # An accepted trust-region step satisfies the KL constraint (max_kl = 0.01).
        assert all(k <= 0.01 + 1e-6 for k, a in zip(logs["kl"], logs["accepted"]) if a)
    if variant == "ppo_kl":
        # The adaptive rule applied to the measured KL, from beta = 1, target 0.01.
        beta = 1.0
        for kl, logged in zip(logs["kl"], logs["beta"]):
            if kl < 0.01 / 1.5:
                beta /= 2
            elif kl > 0.01 * 1.5:
                beta *= 2
            assert logged == pytest.approx(beta)


def test_tensorboard_callback_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed")
    agent = small_ppo(n_steps=16, batch_size=16)
    log_dir = tmp_path / "tb"
    agent.fit(
        lambda: constant_env(10),
        32,
        verbose=0,
        seed=0,
        callbacks=[keras.callbacks.TensorBoard(str(log_dir), write_graph=False)],
    )
    assert glob.glob(str(log_dir / "**" / "events.out.tfevents*"), recursive=True)


def test_early_stopping_on_episode_return_stops_fit(capsys):
    agent = small_ppo(n_steps=16, batch_size=16)
    stop = keras.callbacks.EarlyStopping(monitor="episode_return", mode="max", patience=0)
    history = agent.fit(lambda: constant_env(10), 5 * 16, verbose=2, seed=0, callbacks=[stop])
    # The return is 10 every epoch: no improvement after the first, so it stops after 2.
    assert history.epoch == [0, 1]
    assert agent.num_timesteps == 2 * 16
    # verbose=2 prints one line per epoch.
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "episode_return=10" in lines[0]


def test_terminate_on_nan_stops_on_a_nan_loss():
    # A callback that turns the loss into NaN: TerminateOnNaN must read our logs' "loss".
    class PoisonLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            logs["loss"] = float("nan")

    agent = small_ppo(n_steps=16, batch_size=16)
    history = agent.fit(
        lambda: constant_env(10),
        4 * 16,
        verbose=0,
        seed=0,
        callbacks=[PoisonLoss(), keras.callbacks.TerminateOnNaN()],
    )
    assert history.epoch == [0]
    assert agent.num_timesteps == 16


# ------------------------------------------------------------- checkpoints


def test_agent_checkpoint_saves_every_second_epoch_without_leftovers(tmp_path):
    path = tmp_path / "agent.keras"
    seen = []

    class Exists(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(path.exists())

    agent = small_ppo(n_steps=16, batch_size=16)
    callbacks = [
        kt.callbacks.AgentCheckpoint(path, save_freq=2),
        kt.callbacks.AgentCheckpoint(tmp_path / "agent-{epoch}.keras", save_freq=2),
        Exists(),
    ]
    agent.fit("CartPole-v1", 3 * 16, verbose=0, seed=0, callbacks=callbacks)
    assert seen == [False, True, True]
    # Only the files themselves: no temporary files left behind.
    assert sorted(os.listdir(tmp_path)) == ["agent-2.keras", "agent.keras"]
    loaded = kt.load_agent(path)
    # Saved at the end of the second epoch, not the third.
    assert loaded.num_timesteps == 2 * 16
    assert agent.num_timesteps == 3 * 16
    obs = cartpole_observations()
    assert kt.load_agent(tmp_path / "agent-2.keras").num_timesteps == 32
    assert loaded.predict(obs).shape == (len(obs),)
