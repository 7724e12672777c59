"""The `keras-trust` command end to end, run as `python -m keras_trust` in subprocesses.

One short PPO CartPole run (2048 steps) is trained once per module and shared; a
second, shorter run with another seed joins it for the plot.
"""

import csv
import glob
import importlib.util
import json
import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_trust as kt
from keras_trust import cli, plotting

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
    _ok(_run("train", "ppo", "CartPole-v1", "--timesteps", TIMESTEPS, "--seed", 0,
             "--out", out, "--verbose", 0))  # fmt: skip
    return out


def _observations(n=256):
    rng = np.random.default_rng(0)
    scale = np.array([1.0, 2.0, 0.2, 2.0], np.float32)  # position, speed, angle, spin
    return (rng.uniform(-1.0, 1.0, (n, 4)) * scale).astype(np.float32)


def test_train_writes_the_run_directory(run_dir):
    for name in ("agent.keras", "policy", "metrics.csv", "config.json"):
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
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == epochs
    assert "episode_return" in rows[0]
    assert [float(r["timesteps"]) for r in rows] == [per_epoch * (k + 1) for k in range(epochs)]
    # CartPole pays 1 per step, so the mean return equals the mean episode length.
    assert float(rows[-1]["episode_return"]) == pytest.approx(float(rows[-1]["episode_length"]))

    config = json.loads((run_dir / "config.json").read_text())
    assert (config["algo"], config["env_id"], config["seed"]) == ("ppo", "CartPole-v1", 0)
    assert config["total_timesteps"] == TIMESTEPS

    assert glob.glob(str(run_dir / "tensorboard" / "**" / "events.out.tfevents.*"), recursive=True)
    if HAVE_MATPLOTLIB:
        # Two panels (return, KL) at 100 dpi: 700 x (2 * 260 + 60) pixels.
        assert _png_size(run_dir / "learning_curve.png") == (700, 580)
    else:
        assert not (run_dir / "learning_curve.png").exists()


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


def test_video_without_moviepy_says_what_to_install(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "moviepy", None)  # makes `import moviepy` fail
    video = tmp_path / "v.mp4"
    args = ["evaluate", str(run_dir), "--episodes", "1", "--video", str(video)]
    assert cli.main(args) != 0  # a message and an exit status, not an exception
    err = capsys.readouterr().err
    assert "moviepy is not installed" in err and "pip install moviepy" in err
    assert not video.exists()


def test_video_records_the_first_episode_frame_by_frame(run_dir, tmp_path):
    moviepy = pytest.importorskip("moviepy")
    pytest.importorskip("pygame")  # CartPole's rgb_array renderer
    video = tmp_path / "clips" / "cartpole.mp4"
    args = ["evaluate", run_dir, "--episodes", "1", "--seed", 3, "--video", video]
    result = _ok(_run(*args))
    length = json.loads(result.stdout.strip().splitlines()[-1])["mean_length"]
    with open(video, "rb") as f:
        assert f.read(12)[4:8] == b"ftyp"  # an MP4 container
    clip = moviepy.VideoFileClip(str(video))
    try:
        # RecordVideo keeps the reset frame and one frame per step.
        assert clip.n_frames == length + 1
        assert clip.size == [600, 400]  # CartPole's screen
    finally:
        clip.close()
    assert [p.name for p in video.parent.iterdir()] == ["cartpole.mp4"]  # no leftovers


@pytest.mark.parametrize("command", ["train", "evaluate", "export", "plot", "presets"])
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
    for command in ("train", "evaluate", "export", "plot", "presets"):
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
