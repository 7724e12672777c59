"""Hyperparameter search with Optuna (`pip install "keras-trust[tune]"`): `keras-trust tune`.

Each trial samples a preset from a search space modelled on rl-baselines3-zoo's
(`rl_zoo3/hyperparams_opt.py`, PPO and TRPO), trains it for `timesteps` env steps with
an `EvalCallback` that evaluates `n_evaluations` times, reports each evaluation to
Optuna and stops early when the median pruner says the trial is behind the others at
the same evaluation. A trial's value is its last evaluation (at the end of training).
The study lives in `OUT/study.db` (SQLite; running again continues it), and
`OUT/best_preset.json` is the best trial as a whole run config: `keras-trust train
--config OUT/best_preset.json` trains it again, with the trial's seed, so it repeats the
trial.

Example:
>>> study = tune("ppo", "CartPole-v1", n_trials=20, timesteps=20_000)  # doctest: +SKIP
>>> study.best_value  # doctest: +SKIP
"""

import copy
import json
import math
import os

import gymnasium as gym
import keras

try:
    import optuna
except ImportError as e:  # the `tune` extra
    raise ImportError(
        "Tuning needs Optuna: pip install 'keras-trust[tune]' (or pip install optuna)."
    ) from e

from keras_trust import presets, runs
from keras_trust.callbacks import EvalCallback

# rl-zoo's `net_arch` choices, as our MLP's hidden sizes (policy and critic alike).
NET_ARCHS = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}


def _fitting(choices, n_envs, timesteps):
    """The `n_steps` choices whose rollout (`n_envs * n_steps`) fits in `timesteps`."""
    fit = [n for n in choices if n_envs * n <= timesteps]
    if not fit:
        raise ValueError(
            f"timesteps={timesteps} is less than one rollout of the smallest n_steps "
            f"({choices[0]}) with n_envs={n_envs}: raise --timesteps or lower --n-envs."
        )
    return fit


def sample_ppo(trial, base: dict, n_envs: int, timesteps: int) -> dict:
    """A PPO preset from rl-zoo's PPO space (`sample_ppo_params`).

    rl-zoo also samples the activation (tanh/relu); the agents' default MLP is tanh
    only, so that choice is left out. As in rl-zoo, a batch larger than the rollout is
    cut to the rollout.
    """
    n_steps = trial.suggest_categorical(
        "n_steps", _fitting([32, 64, 128, 256, 512, 1024, 2048], n_envs, timesteps)
    )
    batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512])
    agent = {
        "n_envs": n_envs,
        "n_steps": n_steps,
        "batch_size": min(batch_size, n_envs * n_steps),
        "gamma": 1.0 - trial.suggest_float("one_minus_gamma", 1e-4, 0.03, log=True),
        "gae_lambda": 1.0 - trial.suggest_float("one_minus_gae_lambda", 1e-4, 0.1, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "clip_ratio": trial.suggest_categorical("clip_ratio", [0.1, 0.2, 0.3, 0.4]),
        "epochs": trial.suggest_categorical("epochs", [1, 5, 10, 20]),
        "max_grad_norm": trial.suggest_float("max_grad_norm", 0.3, 2.0),
        "hidden_sizes": NET_ARCHS[trial.suggest_categorical("net_arch", list(NET_ARCHS))],
    }
    learning_rate = trial.suggest_float("learning_rate", 1e-5, 2e-3, log=True)
    preset = copy.deepcopy(base)
    preset["agent"] = {**preset.get("agent", {}), **agent}
    preset.pop("kl_penalty", None)
    preset["optimizer"] = {"name": "adam", "learning_rate": learning_rate, "epsilon": 1e-5}
    return preset


def sample_trpo(trial, base: dict, n_envs: int, timesteps: int, kl_units: float = 1.0) -> dict:
    """A TRPO preset from rl-zoo's TRPO space (`sample_trpo_params`).

    sb3-contrib's `target_kl` is a KL averaged over a Box action's `d` dimensions,
    ours is their sum, so the sampled value is multiplied by `kl_units` (`d` for Box
    actions). rl-zoo samples the critic's learning rate up to 1; Adam on a critic
    diverges well below that, so the range here ends at 1e-2. The activation choice
    is left out (the default MLP is tanh).
    """
    n_steps = trial.suggest_categorical(
        "n_steps", _fitting([8, 16, 32, 64, 128, 256, 512, 1024, 2048], n_envs, timesteps)
    )
    batch_size = trial.suggest_categorical("batch_size", [8, 16, 32, 64, 128, 256, 512])
    gammas = [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]
    lambdas = [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]
    agent = {
        "n_envs": n_envs,
        "n_steps": n_steps,
        "batch_size": min(batch_size, n_envs * n_steps),
        "gamma": trial.suggest_categorical("gamma", gammas),
        "gae_lambda": trial.suggest_categorical("gae_lambda", lambdas),
        "value_epochs": trial.suggest_categorical("value_epochs", [5, 10, 20, 25, 30]),
        "hidden_sizes": NET_ARCHS[
            trial.suggest_categorical("net_arch", ["small", "medium"])  # rl-zoo's TRPO pair
        ],
    }
    target_kl = trial.suggest_categorical("target_kl", [0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.001])
    optimizer = {
        "name": "trust_region",
        "max_kl": target_kl * kl_units,
        "cg_iters": trial.suggest_categorical("cg_iters", [5, 10, 20, 25, 30]),
        "cg_damping": base.get("optimizer", {}).get("cg_damping", 0.1),
    }
    learning_rate = trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True)
    preset = copy.deepcopy(base)
    preset["agent"] = {**preset.get("agent", {}), **agent}
    preset["optimizer"] = optimizer
    preset["value_optimizer"] = {"name": "adam", "learning_rate": learning_rate, "epsilon": 1e-5}
    return preset


def sample_npg(trial, base: dict, n_envs: int, timesteps: int, kl_units: float = 1.0) -> dict:
    """TRPO's space with the natural-gradient step (no line search)."""
    preset = sample_trpo(trial, base, n_envs, timesteps, kl_units)
    preset["optimizer"]["name"] = "natural_gradient"
    return preset


SAMPLERS = {"ppo": sample_ppo, "trpo": sample_trpo, "npg": sample_npg}


class PruningCallback(keras.callbacks.Callback):
    """Reports each `eval_return` to an Optuna trial; stops training if it should prune.

    The step reported is the evaluation's index (1, 2, ...), so that the median pruner
    compares trials at the same fraction of their budget whatever their rollout size.
    """

    def __init__(self, trial):
        super().__init__()
        self.trial = trial
        self.reports = 0
        self.pruned = False

    def on_epoch_end(self, epoch, logs=None):
        if not logs or "eval_return" not in logs:
            return
        self.reports += 1
        self.trial.report(float(logs["eval_return"]), self.reports)
        if self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True


def _base_preset(algo, env_id, n_envs, timesteps):
    """The shipped preset where there is one (normalization flags, n_envs), else none."""
    try:
        base, _ = presets.preset_for(algo, env_id)
    except ValueError:
        base = {"agent": {}}
    n_envs = int(n_envs or base.get("agent", {}).get("n_envs", 1))
    timesteps = int(timesteps or base.get("total_timesteps", 100_000))
    base["total_timesteps"] = timesteps
    return base, n_envs, timesteps


def _kl_units(env_id) -> float:
    env = gym.make(env_id)
    try:
        space = env.action_space
        return float(math.prod(space.shape)) if isinstance(space, gym.spaces.Box) else 1.0
    finally:
        env.close()


def objective(algo, env_id, base, n_envs, timesteps, seed, n_evaluations, eval_episodes):
    """The Optuna objective: sample, train, evaluate; the last evaluation's mean return."""
    # TRPO/NPG's max_kl is in our units (summed over a Box action's dimensions).
    extra = {} if algo == "ppo" else {"kl_units": _kl_units(env_id)}

    def run(trial):
        preset = SAMPLERS[algo](trial, base, n_envs, timesteps, **extra)
        trial_seed = int(seed) + trial.number
        trial.set_user_attr("preset", preset)
        trial.set_user_attr("seed", trial_seed)
        agent = presets.make_agent(algo, env_id, preset=preset, total_timesteps=timesteps)
        epochs = math.ceil(timesteps / (agent.n_envs * agent.n_steps))
        evaluation = EvalCallback(
            env_id,
            eval_freq=max(1, epochs // n_evaluations),
            n_episodes=eval_episodes,
            seed=trial_seed,
        )
        pruning = PruningCallback(trial)
        try:
            agent.fit(
                env_id, timesteps, callbacks=[evaluation, pruning], verbose=0, seed=trial_seed
            )
            if pruning.pruned:
                raise optuna.TrialPruned()
            last = evaluation.results[-1] if evaluation.results else None
            if last is None or last.timesteps != agent.num_timesteps:
                last = evaluation.evaluate()
            return last.mean_return
        except FloatingPointError as e:  # diverged: as rl-zoo does, prune it
            trial.set_user_attr("error", str(e))
            raise optuna.TrialPruned() from e
        finally:
            evaluation.close()
            keras.backend.clear_session()

    return run


def best_run_config(study, algo, env_id, timesteps, eval_episodes, storage) -> dict:
    """The best trial as a run config that `keras-trust train --config` accepts."""
    best = study.best_trial
    return {
        "algo": algo,
        "env_id": env_id,
        "seed": best.user_attrs["seed"],
        "total_timesteps": timesteps,
        "preset_source": f"tune: trial {best.number} of study {study.study_name!r}",
        "preset": best.user_attrs["preset"],
        "eval_freq": None,
        "eval_episodes": eval_episodes,
        "stop_at_return": None,
        "save_freq": None,
        "tuning": {
            "value": best.value,
            "trial": best.number,
            "params": best.params,
            "study_name": study.study_name,
            "storage": storage,
        },
    }


def tune(
    algo: str,
    env_id: str,
    n_trials: int = 20,
    timesteps: int | None = None,
    n_envs: int | None = None,
    seed: int = 0,
    n_evaluations: int = 5,
    eval_episodes: int = 10,
    out="tuning",
    n_startup_trials: int = 5,
):
    """Runs `n_trials` Optuna trials of `algo` on `env_id`; writes the study and best preset.

    Sampler: TPE seeded with `seed`, random for the first `n_startup_trials`; pruner:
    median, after `n_startup_trials` trials and from the `n_evaluations // 3`-th
    evaluation on (rl-zoo's settings). Trial `k` trains with seed `seed + k`.

    Args:
        algo: `"ppo"`, `"trpo"` or `"npg"`.
        env_id: a registered gymnasium id.
        n_trials: trials to run (more, if the study in `out` already has some).
        timesteps: env steps per trial. Defaults to the preset's (else 100k).
        n_envs: envs per trial. Defaults to the preset's (else 1).
        seed: seed of the sampler and the trials. Defaults to `0`.
        n_evaluations: evaluations per trial (each reported to the pruner).
        eval_episodes: episodes per evaluation.
        out: directory of `study.db` and `best_preset.json`.

    Returns:
        The `optuna.Study`.
    """
    if algo not in SAMPLERS:
        raise ValueError(f"tune supports {sorted(SAMPLERS)}. Received: algo={algo!r}")
    base, n_envs, timesteps = _base_preset(algo, env_id, n_envs, timesteps)
    os.makedirs(out, exist_ok=True)
    storage = f"sqlite:///{os.path.abspath(os.path.join(out, 'study.db'))}"
    study = optuna.create_study(
        study_name=f"{algo}-{env_id}",
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(
            n_startup_trials=n_startup_trials, seed=seed, multivariate=True
        ),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=n_startup_trials, n_warmup_steps=n_evaluations // 3
        ),
    )
    run = objective(algo, env_id, base, n_envs, timesteps, seed, n_evaluations, eval_episodes)
    study.optimize(run, n_trials=n_trials, callbacks=[_report])
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise ValueError(f"No trial of {study.study_name} completed (all pruned or failed).")
    config = best_run_config(study, algo, env_id, timesteps, eval_episodes, storage)
    runs.write_config(out, config, name="best_preset.json")
    print(
        f"Best: trial {config['tuning']['trial']}, evaluation return "
        f"{config['tuning']['value']:.1f}. Wrote {os.path.join(out, 'best_preset.json')} "
        f"(keras-trust train --config {os.path.join(out, 'best_preset.json')})."
    )
    return study


def _report(study, trial) -> None:
    """One line per finished trial (Optuna's own log is left to its verbosity setting)."""
    value = "pruned" if trial.value is None else f"{trial.value:.1f}"
    print(f"trial {trial.number}: {trial.state.name.lower()}, evaluation return {value}")
    print("  " + json.dumps(trial.params))
