"""`keras-trust tune`: three tiny Optuna trials, a study on disk, and a best_preset.json
that `keras-trust train --config` runs (repeating the best trial); the search spaces and
the pruning callback on their own."""

import json
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

optuna = pytest.importorskip("optuna", reason="tuning needs the `tune` extra")

import keras_trust as kt  # noqa: E402
from keras_trust import presets, tune  # noqa: E402


def _run(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "keras_trust", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def test_three_trials_write_a_best_preset_that_train_runs(tmp_path):
    out = tmp_path / "tuning"
    _run("tune", "ppo", "CartPole-v1", "--trials", 3, "--timesteps", 512, "--n-envs", 2,
         "--evaluations", 2, "--eval-episodes", 2, "--seed", 7, "--out", out)  # fmt: skip
    study = optuna.load_study(study_name="ppo-CartPole-v1", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 3
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete  # the median pruner waits for 5 trials before pruning any
    # Each completed trial reported its evaluations (step = evaluation index) to Optuna.
    assert all(sorted(t.intermediate_values) == [1, 2] for t in complete)

    best = json.loads((out / "best_preset.json").read_text())
    assert (best["algo"], best["env_id"], best["total_timesteps"]) == ("ppo", "CartPole-v1", 512)
    assert best["tuning"]["value"] == study.best_value
    assert best["seed"] == 7 + study.best_trial.number
    assert best["preset"]["agent"]["n_envs"] == 2

    run = tmp_path / "best"
    result = _run("train", "--config", out / "best_preset.json", "--out", run, "--verbose", 0)
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == best["preset"] and config["seed"] == best["seed"]
    assert kt.load_agent(run / "agent.keras").num_timesteps >= 512
    # Same preset, seed and evaluation seeds: the run repeats the best trial's score.
    printed = re.search(r"mean return (-?[\d.]+)", result.stdout).group(1)
    assert float(printed) == pytest.approx(best["tuning"]["value"], abs=0.05)


@pytest.mark.parametrize("algo", ["ppo", "trpo", "npg"])
def test_sampled_presets_build_agents_that_fit_the_budget(algo):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    base, n_envs, timesteps = {"agent": {}}, 3, 600
    for _ in range(25):
        trial = study.ask()
        extra = {} if algo == "ppo" else {"kl_units": 2.0}
        preset = tune.SAMPLERS[algo](trial, base, n_envs, timesteps, **extra)
        agent = presets.make_agent(algo, "CartPole-v1", preset=preset, total_timesteps=timesteps)
        assert agent.n_envs == n_envs and n_envs * agent.n_steps <= timesteps
        assert agent.batch_size <= n_envs * agent.n_steps
        if algo != "ppo":
            # sb3-contrib's per-dimension target_kl, in our units (summed over 2 dims).
            assert preset["optimizer"]["max_kl"] == pytest.approx(2 * trial.params["target_kl"])
            assert preset["optimizer"]["name"] == (
                "natural_gradient" if algo == "npg" else "trust_region"
            )
        study.tell(trial, 0.0)


def test_a_budget_below_one_rollout_is_refused():
    trial = optuna.create_study().ask()
    with pytest.raises(ValueError, match="timesteps"):
        tune.sample_ppo(trial, {"agent": {}}, n_envs=64, timesteps=1000)


class FakeTrial:
    def __init__(self, prune_at):
        self.reports, self.prune_at = [], prune_at

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return len(self.reports) >= self.prune_at


def test_pruning_callback_reports_evaluations_and_stops_training():
    trial = FakeTrial(prune_at=2)
    callback = tune.PruningCallback(trial)
    callback.set_model(SimpleNamespace(stop_training=False))
    callback.on_epoch_end(0, {"kl": 0.1})  # no evaluation this epoch: nothing reported
    callback.on_epoch_end(1, {"eval_return": 10.0})
    assert not callback.model.stop_training
    callback.on_epoch_end(3, {"eval_return": 12.0})
    assert trial.reports == [(1, 10.0), (2, 12.0)]
    assert callback.pruned and callback.model.stop_training
