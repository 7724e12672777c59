"""The `keras-trust` command end to end, run as `python -m keras_trust` in subprocesses.

One short PPO CartPole run (2048 steps, no seed given, evaluated every epoch) is trained
once per module and shared; it is repeated from its config.json, and a second, shorter
run with another seed joins it for the plot.
"""

import csv
import glob
import importlib.util
import json
import math
import os
import random
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import keras_trust as kt
from keras_trust import cli, plotting, presets, runs
from keras_trust.command import is_command_process

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:tensorflow.lite.python.interpreter")

TIMESTEPS = 2048
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _run(*args, cwd=None, env=None, timeout=300):
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "keras_trust", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=full_env,
    )


def _ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def _png_size(path):
    """(width, height) from the PNG header, after checking the signature."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ppo-cartpole"
    _ok(_run("train", "ppo", "CartPole-v1", "--timesteps", TIMESTEPS, "--out", out,
             "--eval-freq", 1, "--eval-episodes", 3, "--verbose", 0))  # fmt: skip
    return out


def _metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def _observations(n=256):
    rng = np.random.default_rng(0)
    scale = np.array([1.0, 2.0, 0.2, 2.0], np.float32)  # position, speed, angle, spin
    return (rng.uniform(-1.0, 1.0, (n, 4)) * scale).astype(np.float32)


def test_train_writes_the_run_directory(run_dir):
    for name in ("agent.keras", "best_agent.keras", "policy", "metrics.csv", "config.json"):
        assert os.path.exists(run_dir / name), name

    agent = kt.load_agent(run_dir / "agent.keras")
    preset = kt.presets.get_preset("ppo", "CartPole-v1")["agent"]
    per_epoch = preset["n_envs"] * preset["n_steps"]
    epochs = math.ceil(TIMESTEPS / per_epoch)
    assert agent.num_timesteps == epochs * per_epoch

    # The SavedModel serves the agent's deterministic actions.
    obs = _observations()
    policy = tf.saved_model.load(str(run_dir / "policy"))
    np.testing.assert_array_equal(policy.serving_default(obs).numpy(), agent.predict(obs))

    # One metrics row per epoch, with the episode return and the step count.
    fields, rows = _metrics(run_dir)
    assert len(rows) == epochs
    assert "episode_return" in rows[0]
    assert [float(r["timesteps"]) for r in rows] == [per_epoch * (k + 1) for k in range(epochs)]
    # CartPole pays 1 per step, so the mean return equals the mean episode length.
    assert float(rows[-1]["episode_return"]) == pytest.approx(float(rows[-1]["episode_length"]))
    # The evaluation's columns, and only columns that hold values (no empty val_*).
    assert {"eval_return", "eval_return_std", "eval_length"} <= set(fields)
    assert not [k for k in fields if k.startswith("val_")]
    assert all(any(r[k] not in ("", "NA") for r in rows) for k in fields)
    assert all(float(r["eval_return"]) == float(r["eval_length"]) for r in rows)

    # A seed was drawn and recorded; the shipped preset is recorded with its name.
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["algo"], config["env_id"]) == ("ppo", "CartPole-v1")
    assert isinstance(config["seed"], int)
    assert config["total_timesteps"] == TIMESTEPS
    assert config["preset"] == presets.get_preset("ppo", "CartPole-v1")
    assert config["preset_source"] == "CartPole-v1/ppo"
    assert (config["eval_freq"], config["eval_episodes"]) == (1, 3)

    assert glob.glob(str(run_dir / "tensorboard" / "**" / "events.out.tfevents.*"), recursive=True)
    if HAVE_MATPLOTLIB:
        # Two panels (return, KL) at 100 dpi: 700 x (2 * 260 + 60) pixels.
        assert _png_size(run_dir / "learning_curve.png") == (700, 580)
    else:
        assert not (run_dir / "learning_curve.png").exists()


def _weights(path):
    return [np.asarray(w) for w in kt.load_agent(path).get_weights()]


def test_config_json_repeats_the_run_bit_for_bit(run_dir, tmp_path):
    again = tmp_path / "again"
    _ok(_run("train", "--config", run_dir / "config.json", "--out", again, "--verbose", 0))
    first, second = _weights(run_dir / "agent.keras"), _weights(again / "agent.keras")
    assert len(first) == len(second) > 4
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    config = json.loads((again / "config.json").read_text())
    assert config["seed"] == json.loads((run_dir / "config.json").read_text())["seed"]
    # The logs agree too, except the wall-clock ones.
    clock = {"fps", "rollout_time", "update_time"}
    (fields, rows), (_, rows_again) = _metrics(run_dir), _metrics(again)
    for row, row_again in zip(rows, rows_again, strict=True):
        assert {k: row[k] for k in fields if k not in clock} == {
            k: row_again[k] for k in fields if k not in clock
        }


def test_the_last_evaluation_is_the_printed_one(run_dir):
    # Same seeds, one episode per env: the final evaluate() repeats the last evaluation.
    _, rows = _metrics(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    result = kt.load_agent(run_dir / "agent.keras").evaluate(
        "CartPole-v1", episodes=3, seed=config["seed"]
    )
    assert result["mean_return"] == float(rows[-1]["eval_return"])


def test_evaluate_prints_json(run_dir):
    result = _ok(_run("evaluate", run_dir, "--episodes", 2, "--seed", 3))
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(stats) == {"mean_return", "std_return", "mean_length"}
    assert stats["mean_return"] == pytest.approx(stats["mean_length"])  # 1 per step
    expected = kt.load_agent(run_dir / "agent.keras").evaluate("CartPole-v1", episodes=2, seed=3)
    assert stats["mean_return"] == pytest.approx(expected["mean_return"])


def _load_actions(fmt, path, obs):
    if fmt == "saved_model":
        loaded = tf.saved_model.load(str(path))  # kept alive while its function runs
        return loaded.serving_default(obs).numpy()
    if fmt == "tflite":
        runner = tf.lite.Interpreter(model_path=str(path)).get_signature_runner()
        return runner(observation=obs)["action"]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["action"], {"observation": obs})[0]


@pytest.mark.parametrize("fmt", ["saved_model", "tflite", "onnx"])
def test_export_matches_the_agent(run_dir, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("tf2onnx", reason="ONNX export needs the `export` extra")
        pytest.importorskip("onnxruntime", reason="running ONNX needs onnxruntime")
    out = tmp_path / {"saved_model": "policy", "tflite": "p.tflite", "onnx": "p.onnx"}[fmt]
    _ok(_run("export", run_dir, out, "--format", fmt))
    obs = _observations()
    expected = kt.load_agent(run_dir / "agent.keras").predict(obs)
    actions = _load_actions(fmt, out, obs)
    assert set(np.unique(expected)) == {0, 1}  # the comparison covers both actions
    np.testing.assert_array_equal(actions, expected)


def test_plot_two_runs(run_dir, tmp_path):
    pytest.importorskip("matplotlib", reason="plotting needs the `plot` extra")
    second = tmp_path / "second"
    _ok(_run("train", "ppo", "CartPole-v1", "--timesteps", 512, "--seed", 1, "--out", second,
             "--verbose", 0))  # fmt: skip
    out = tmp_path / "plots" / "both.png"
    result = _ok(_run("plot", run_dir, second, "-o", out))
    assert str(out) in result.stdout
    assert out.stat().st_size > 0
    assert _png_size(out) == (700, 580)


def test_plot_without_metrics_fails_cleanly(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path), "-o", str(tmp_path / "x.png")]) != 0
    assert "no metrics.csv" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_presets_lists_cartpole():
    result = _ok(_run("presets"))
    assert any(line.split()[:2] == ["CartPole-v1", "ppo"] for line in result.stdout.splitlines())


def test_video_without_imageio_ffmpeg_says_what_to_install(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # makes the import fail
    video = tmp_path / "v.mp4"
    args = ["evaluate", str(run_dir), "--episodes", "1", "--video", str(video)]
    assert cli.main(args) != 0  # a message and an exit status, not an exception
    err = capsys.readouterr().err
    assert "imageio-ffmpeg is not installed" in err and "pip install imageio-ffmpeg" in err
    assert not video.exists()


def test_video_records_the_first_episode_frame_by_frame(run_dir, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    pytest.importorskip("pygame")  # CartPole's rgb_array renderer
    video = tmp_path / "clips" / "cartpole.mp4"
    args = ["evaluate", run_dir, "--episodes", "1", "--seed", 3, "--video", video]
    result = _ok(_run(*args))
    length = json.loads(result.stdout.strip().splitlines()[-1])["mean_length"]
    with open(video, "rb") as f:
        assert f.read(12)[4:8] == b"ftyp"  # an MP4 container
    # ffmpeg decodes every frame: the reset frame and one per step.
    n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert n_frames == length + 1
    reader = imageio_ffmpeg.read_frames(str(video))
    assert reader.__next__()["size"] == (600, 400)  # CartPole's screen
    reader.close()
    assert [p.name for p in video.parent.iterdir()] == ["cartpole.mp4"]  # no leftovers


def test_train_npg_uses_the_npg_preset(tmp_path):
    out = tmp_path / "npg"
    _ok(_run("train", "npg", "CartPole-v1", "--timesteps", 1, "--out", out, "--eval-episodes",
             1, "--verbose", 0))  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == presets.get_preset("npg", "CartPole-v1")
    assert config["preset_source"] == "CartPole-v1/npg"
    agent = kt.load_agent(out / "agent.keras")
    assert isinstance(agent.optimizer, kt.optimizers.NaturalGradient)
    assert agent.optimizer.max_kl == presets.get_preset("npg", "CartPole-v1")["optimizer"]["max_kl"]
    assert (agent.n_envs, agent.n_steps) == (64, 32)  # npg's preset, not trpo's (32 x 32)


def test_npg_without_its_own_preset_borrows_trpos():
    config = runs.run_config("npg", "Pendulum-v1", seed=3)
    assert config["preset_source"] == "Pendulum-v1/trpo as npg"
    trpo = presets.get_preset("trpo", "Pendulum-v1")
    assert config["preset"]["agent"] == trpo["agent"]
    assert config["preset"]["optimizer"]["name"] == "natural_gradient"
    assert config["preset"]["optimizer"]["max_kl"] == trpo["optimizer"]["max_kl"]


def _wait_until(condition, proc, timeout=180.0):
    start = time.monotonic()
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early with code {proc.returncode}")
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_kill9_at_random_moments_then_resume_ends_as_an_uninterrupted_run(tmp_path):
    """`keras-trust train` killed (no chance to save) at random moments, resumed each time:
    the run directory always loads, and the finished run has each epoch once in its
    metrics and the same weights as the run repeated uninterrupted from its config."""
    out, reference = tmp_path / "run", tmp_path / "reference"
    override = tmp_path / "small.json"
    override.write_text(json.dumps({"agent": {"n_envs": 4, "n_steps": 32, "batch_size": 64}}))
    per_epoch, epochs = 4 * 32, 40
    command = ["train", "ppo", "CartPole-v1", "--config", override, "--timesteps",
               epochs * per_epoch, "--seed", 5, "--save-freq", 1, "--eval-freq", 10,
               "--eval-episodes", 2, "--out", out, "--verbose", 0]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    rng = random.Random(19)
    kills = []
    for attempt in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "keras_trust", *map(str, command)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            _wait_until(lambda: (out / "config.json").exists(), proc)
            if attempt == 2:  # at least one kill after a checkpoint
                _wait_until(lambda: (out / "agent.keras").exists(), proc)
            time.sleep(rng.uniform(0.0, 4.0))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        if (out / "agent.keras").exists():  # the run directory always loads
            kills.append(kt.load_agent(out / "agent.keras").num_timesteps)
        command = ["train", "--resume", out, "--verbose", 0]
    assert kills and 0 < max(kills) < epochs * per_epoch, kills

    result = _ok(_run(*command))
    assert f"Resuming {out} at step {kills[-1]}" in result.stdout
    finished = kt.load_agent(out / "agent.keras")
    assert finished.num_timesteps == epochs * per_epoch
    _, rows = _metrics(out)  # each epoch once, whatever was logged after each checkpoint
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    assert [float(r["timesteps"]) for r in rows] == [per_epoch * (k + 1) for k in range(epochs)]
    assert [k for k, r in enumerate(rows) if r["eval_return"]] == [9, 19, 29, 39]

    _ok(_run("train", "--config", out / "config.json", "--out", reference, "--verbose", 0))
    uninterrupted = kt.load_agent(reference / "agent.keras")
    for mine, theirs in zip(finished.get_weights(), uninterrupted.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_resume_refuses_options_that_change_the_run(run_dir, capsys):
    assert cli.main(["train", "--resume", str(run_dir), "--timesteps", "99"]) == 2
    assert "--timesteps" in capsys.readouterr().err
    assert cli.main(["train", "trpo", "--resume", str(run_dir)]) == 2
    assert "algo='ppo'" in capsys.readouterr().err


def test_train_needs_an_algorithm_and_env_or_a_run_config(capsys):
    assert cli.main(["train"]) == 2
    assert "ALGO and ENV_ID" in capsys.readouterr().err
    assert cli.main(["train", "a2c", "CartPole-v1"]) == 2
    assert "unknown algorithm" in capsys.readouterr().err


def test_tune_without_optuna_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # makes `import optuna` fail
    monkeypatch.delitem(sys.modules, "keras_trust.tune", raising=False)
    monkeypatch.delattr(kt, "tune", raising=False)
    assert cli.main(["tune", "ppo", "CartPole-v1", "--trials", "1"]) == 1
    assert "keras-trust[tune]" in capsys.readouterr().err


# ------------------------------------------------------------------- start-up output
@pytest.mark.parametrize("how", ["module", "console_script"])
def test_the_command_prints_no_tensorflow_start_up_logs(how, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if how == "module":
        cmd = [sys.executable, "-m", "keras_trust"]
    else:
        script = os.path.join(os.path.dirname(sys.executable), "keras-trust")
        if not os.path.exists(script):
            pytest.skip("the keras-trust console script is not installed here")
        cmd = [script]
    out = tmp_path / "run"
    result = subprocess.run(
        [*cmd, "train", "ppo", "CartPole-v1", "--timesteps", "1", "--out", str(out),
         "--eval-episodes", "1", "--verbose", "0"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""  # no oneDNN / CUDA / XLA / absl lines
    assert result.stdout.startswith("keras-trust train:")


def test_only_the_command_counts_as_the_command():
    python = sys.executable
    assert is_command_process([python, "-m", "keras_trust", "train"], "-m")
    assert is_command_process([python, "-X", "importtime", "-m", "keras_trust"], "-m")
    assert is_command_process([python, "-mkeras_trust"], "-m")
    assert is_command_process([python, "/venv/bin/keras-trust", "train"], "/venv/bin/keras-trust")
    assert not is_command_process([python, "-m", "pytest"], "-m")
    assert not is_command_process([python, "-c", "import keras_trust"], "-c")
    assert not is_command_process([python, "train.py"], "train.py")


@pytest.mark.parametrize("command", ["train", "tune", "evaluate", "export", "plot", "presets"])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"keras-trust {command}" in capsys.readouterr().out


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "tune", "evaluate", "export", "plot", "presets"):
        assert command in out


def test_export_format_choices_match_the_exporter():
    from keras_trust.export import FORMATS

    assert tuple(cli.EXPORT_FORMATS) == tuple(FORMATS)


# ---------------------------------------------------------------------- plotting helpers
def test_aggregate_mean_and_envelope():
    x = np.array([100.0, 200.0, 300.0, 400.0])
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([3.0, 6.0, np.nan, 10.0])  # a missing point is interpolated over
    c_x = np.array([100.0, 300.0])  # a shorter run on a coarser grid
    c = np.array([5.0, 1.0])
    band = plotting.aggregate([(x, a), (x, b), (c_x, c)])
    np.testing.assert_array_equal(band.x, [100.0, 200.0, 300.0])  # cut to the common range
    # By hand: b at 300 is (6 + 10) / 2 = 8; c at 200 is (5 + 1) / 2 = 3.
    np.testing.assert_allclose(band.mean, [(1 + 3 + 5) / 3, (2 + 6 + 3) / 3, (3 + 8 + 1) / 3])
    np.testing.assert_allclose(band.low, [1.0, 2.0, 1.0])
    np.testing.assert_allclose(band.high, [5.0, 6.0, 8.0])
    assert band.count == 3


def test_aggregate_before_the_first_episode_is_nan():
    x = np.array([1.0, 2.0, 3.0])
    band = plotting.aggregate([(x, np.array([np.nan, 2.0, 4.0])), (x, np.array([1.0, 1.0, 1.0]))])
    np.testing.assert_allclose(band.mean, [1.0, 1.5, 2.5])
    np.testing.assert_allclose(band.high, [1.0, 2.0, 4.0])


def test_read_metrics_turns_missing_cells_into_nan(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,episode_return,kl\n0,NA,0.5\n1,7.5,\n")
    metrics = plotting.read_metrics(tmp_path)
    np.testing.assert_array_equal(metrics["epoch"], [0.0, 1.0])
    assert np.isnan(metrics["episode_return"][0]) and metrics["episode_return"][1] == 7.5
    assert metrics["kl"][0] == 0.5 and np.isnan(metrics["kl"][1])
    np.testing.assert_array_equal(plotting.timesteps_of(metrics), [1.0, 2.0])
