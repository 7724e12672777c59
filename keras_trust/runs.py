"""Run directories of the `keras-trust` command: the config that repeats a run, training
into a directory, and resuming one.

A run directory holds `config.json` (everything needed to repeat the run, the seed
actually used included), `agent.keras` (checkpointed during training, final at the
end), `best_agent.keras` (the best evaluation so far), `policy/` (SavedModel),
`metrics.csv`, `learning_curve.png` and `tensorboard/`.

Example:
>>> config = run_config("ppo", "CartPole-v1", timesteps=20_000)  # doctest: +SKIP
>>> train_run(config, "runs/cartpole")  # doctest: +SKIP
"""

import json
import math
import os
import secrets

CONFIG_FILE = "config.json"
# Evaluations per run when the config does not say how often (the `eval_freq` default).
EVALUATIONS_PER_RUN = 10
# Epochs between checkpoints (agent.keras) when the config does not say.
SAVE_FREQ = 10
EVAL_EPISODES = 10


def draw_seed() -> int:
    """A fresh seed for a run given none (recorded in its config, so it can be repeated)."""
    return secrets.randbelow(2**31)


def merge(base: dict, override: dict) -> dict:
    """`base` with `override`'s entries, nested dicts merged key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def is_run_config(data: dict) -> bool:
    """Whether a JSON document is a whole run config (`config.json`, `best_preset.json`)
    rather than a partial preset to merge over the shipped one."""
    return isinstance(data, dict) and "preset" in data and "algo" in data and "env_id" in data


def run_config(
    algo=None,
    env_id=None,
    *,
    timesteps=None,
    seed=None,
    n_envs=None,
    preset_env=None,
    config_file=None,
    eval_freq=None,
    eval_episodes=None,
    stop_at_return=None,
    save_freq=None,
) -> dict:
    """The complete config of a training run, from the command's arguments.

    `config_file` is either a whole run config (a run's `config.json` or `tune`'s
    `best_preset.json`: its preset is used as is, its seed and length unless given
    here) or a partial preset merged over the shipped one. The preset for `algo` on
    `env_id` is the algorithm's own where it has one (`npg` uses the `npg` preset), see
    `kt.presets.preset_for`. A seed is drawn when none is given or recorded.

    Returns:
        A JSON-able dict: `algo`, `env_id`, `seed`, `total_timesteps`, `preset`,
        `preset_source` and the callbacks' settings (`eval_freq`, `eval_episodes`,
        `stop_at_return`, `save_freq`; `None` = decided from the run's length).

    Raises:
        ValueError: missing or contradicting algorithm/env, or no preset.
    """
    from keras_trust import presets

    data = {}
    if config_file is not None:
        with open(config_file) as f:
            data = json.load(f)
    if is_run_config(data):
        for name, given in (("algo", algo), ("env_id", env_id)):
            if given is not None and given != data[name]:
                raise ValueError(
                    f"{config_file} is a run config for {name}={data[name]!r}, but "
                    f"{name}={given!r} was given."
                )
        config = dict(data)
        config["preset_source"] = data.get("preset_source", os.fspath(config_file))
    else:
        if algo is None or env_id is None:
            raise ValueError(
                "Give ALGO and ENV_ID, or --config with a run's config.json or a "
                "best_preset.json (which name them)."
            )
        preset, source = presets.preset_for(algo, preset_env or env_id)
        if data:
            preset = merge(preset, data)
            source = f"{source} + {config_file}"
        config = {"algo": algo, "env_id": env_id, "preset": preset, "preset_source": source}
        config["total_timesteps"] = preset.get("total_timesteps", 100_000)
        config["seed"] = None
    if n_envs is not None:
        config["preset"] = merge(config["preset"], {"agent": {"n_envs": int(n_envs)}})
    if timesteps is not None:
        config["total_timesteps"] = int(timesteps)
    if seed is not None:
        config["seed"] = int(seed)
    if config.get("seed") is None:
        config["seed"] = draw_seed()
    for key, value in (
        ("eval_freq", eval_freq),
        ("eval_episodes", eval_episodes),
        ("stop_at_return", stop_at_return),
        ("save_freq", save_freq),
    ):
        if value is not None:
            config[key] = value
        config.setdefault(key, None)
    first = ("algo", "env_id", "seed", "total_timesteps", "preset_source", "preset")
    return {**{k: config[k] for k in first}, **config}


def read_config(run_dir) -> dict:
    """A run directory's `config.json`."""
    with open(os.path.join(run_dir, CONFIG_FILE)) as f:
        return json.load(f)


def resume_config(run_dir, algo=None, env_id=None) -> dict:
    """The config of the run in `run_dir`, checked against an `algo` / `env_id` given."""
    config = read_config(run_dir)
    for name, given in (("algo", algo), ("env_id", env_id)):
        if given is not None and given != config[name]:
            raise ValueError(f"{run_dir} is a run of {name}={config[name]!r}, not {given!r}.")
    return config


def write_config(run_dir, config, name: str = CONFIG_FILE) -> None:
    """Writes `config` as `run_dir/name` (atomically)."""
    from keras_trust.callbacks.metrics import write_text_atomically

    write_text_atomically(os.path.join(run_dir, name), json.dumps(config, indent=2) + "\n")


def _settle_frequencies(config, agent) -> None:
    """Fills in the evaluation and checkpoint frequencies from the run's epoch count."""
    epochs = math.ceil(config["total_timesteps"] / (agent.n_envs * agent.n_steps))
    if config.get("eval_freq") is None:
        config["eval_freq"] = max(1, math.ceil(epochs / EVALUATIONS_PER_RUN))
    if config.get("eval_episodes") is None:
        config["eval_episodes"] = EVAL_EPISODES
    if config.get("save_freq") is None:
        config["save_freq"] = SAVE_FREQ


def run_env(config):
    """The env a run trains on: its id, wrapped as its preset's `env_wrappers` say."""
    from keras_trust.env_wrappers import env_factory

    return env_factory(config["env_id"], config.get("preset", {}).get("env_wrappers"))


def _callbacks(config, out, resume):
    import keras
    import numpy as np

    from keras_trust import callbacks, plotting

    evaluation = callbacks.EvalCallback(
        run_env(config),
        eval_freq=int(config["eval_freq"]),
        n_episodes=int(config["eval_episodes"]),
        best_model_path=os.path.join(out, "best_agent.keras"),
        seed=config["seed"],
        stop_at_return=config.get("stop_at_return"),
    )
    metrics_path = os.path.join(out, "metrics.csv")
    if resume and os.path.exists(metrics_path):
        # The best evaluation before the interruption stays the one to beat.
        returns = plotting.read_metrics(metrics_path).get("eval_return", np.array([]))
        if np.isfinite(returns).any():
            evaluation.best_return = float(np.nanmax(returns))
    return [
        evaluation,
        callbacks.MetricsLogger(metrics_path, append=resume),
        keras.callbacks.TensorBoard(os.path.join(out, "tensorboard"), write_graph=False),
        callbacks.AgentCheckpoint(
            os.path.join(out, "agent.keras"), save_freq=int(config["save_freq"])
        ),
    ]


def train_run(config, out, verbose=1, resume=False) -> int:
    """Trains as `config` says into the run directory `out`; the command's exit status.

    With `resume`, the agent continues from `out/agent.keras` (the last checkpoint) to
    the run's `total_timesteps`, and `metrics.csv` continues too. Ctrl-C stops training
    and still saves, exports and evaluates what was trained (exit status 130).
    """
    from keras_trust import presets
    from keras_trust.agents import load_agent

    os.makedirs(out, exist_ok=True)
    checkpoint = os.path.join(out, "agent.keras")
    if resume and os.path.exists(checkpoint):
        agent = load_agent(checkpoint)
        print(f"Resuming {out} at step {agent.num_timesteps} of {config['total_timesteps']}.")
    else:
        agent = presets.make_agent(
            config["algo"],
            config["env_id"],
            preset=config["preset"],
            total_timesteps=config["total_timesteps"],
        )
    _settle_frequencies(config, agent)
    if not resume:
        print("keras-trust train:", json.dumps(config, indent=1))
        write_config(out, config)
    remaining = config["total_timesteps"] - agent.num_timesteps
    interrupted = False
    if remaining > 0:
        try:
            agent.fit(
                run_env(config),
                remaining,
                callbacks=_callbacks(config, out, resume),
                verbose=verbose,
                seed=config["seed"],
            )
        except KeyboardInterrupt:
            interrupted = True
            print("\nInterrupted: saving what was trained so far.")
    if agent.built:
        finish_run(agent, config, out)
    print(f"Run directory: {out}")
    return 130 if interrupted else 0


def finish_run(agent, config, out) -> None:
    """Saves and exports the agent, draws the learning curve, prints an evaluation."""
    agent.save(os.path.join(out, "agent.keras"))
    agent.export(os.path.join(out, "policy"))
    learning_curve(out)
    episodes = int(config.get("eval_episodes") or EVAL_EPISODES)
    result = agent.evaluate(run_env(config), episodes=episodes, seed=config["seed"])
    print(
        f"Evaluation over {episodes} episodes: mean return {result['mean_return']:.1f} "
        f"+/- {result['std_return']:.1f}"
    )


def learning_curve(run_dir) -> None:
    """Draws `run_dir/learning_curve.png`, or says why not (matplotlib is optional)."""
    from keras_trust import plotting

    path = os.path.join(run_dir, "learning_curve.png")
    try:
        plotting.plot_runs([run_dir], path, title=plotting.run_label(run_dir))
    except ImportError:
        print(
            "Note: matplotlib is not installed, so no learning_curve.png was drawn "
            "(pip install 'keras-trust[plot]')."
        )
    except (OSError, ValueError) as e:
        print(f"Note: could not draw learning_curve.png: {e}")
