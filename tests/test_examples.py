"""Every example runs as a script (with a tiny budget) and prints what it promises."""

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"

CASES = {
    "ppo_cartpole.py": (["--timesteps", "512"], "evaluation:"),
    "trpo_pendulum.py": (["--timesteps", "8192"], "accepted steps:"),
    "custom_model.py": (["--timesteps", "1024"], "evaluation:"),
    "kl_penalty_ppo.py": (["--timesteps", "1024"], "beta over training:"),
    "export_and_serve.py": (["--timesteps", "512"], "keras_trust imported: False"),
    "optimizers_standalone.py": (["--steps", "10"], "training accuracy:"),
    "ppo_halfcheetah.py": (["--timesteps", "2048"], "evaluation:"),
    "supervised_natural_gradient.py": (["--epochs", "2"], "test accuracy:"),
}


def test_every_example_is_covered():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name, tmp_path):
    args, expected = CASES[name]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout
