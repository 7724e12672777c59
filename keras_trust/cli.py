"""The `keras-trust` command: train, resume, tune, evaluate, export, plot, list presets.

Examples:
    keras-trust train ppo CartPole-v1 --timesteps 50000 --out runs/cartpole
    keras-trust train --config runs/cartpole/config.json --out runs/again  # the same run
    keras-trust train --resume runs/cartpole        # continue from the last checkpoint
    keras-trust tune ppo CartPole-v1 --trials 20 --timesteps 20000 --out tuning/cartpole
    keras-trust train --config tuning/cartpole/best_preset.json
    keras-trust evaluate runs/cartpole --episodes 10 [--video cartpole.mp4]
    keras-trust export runs/cartpole policy_dir
    keras-trust export runs/cartpole policy.tflite --format tflite
    keras-trust export runs/cartpole policy.onnx --format onnx
    keras-trust plot runs/cartpole-* -o curves.png
    keras-trust presets

A run directory holds `agent.keras`, `best_agent.keras`, `policy/` (SavedModel),
`metrics.csv`, `learning_curve.png`, `config.json` and TensorBoard logs under
`tensorboard/` (see `keras_trust.runs`).

Imports stay inside the handlers, so that `--help` does not load TensorFlow; the
command's start-up logs are quieted by `keras_trust.command`, which the package runs
before TensorFlow loads.
"""

import argparse
import json
import os
import sys
import time

# Kept in step with keras_trust.export.FORMATS (not imported: --help must not load TF).
EXPORT_FORMATS = ("saved_model", "tflite", "onnx")
ALGORITHMS = ("ppo", "ppo_kl", "trpo", "npg")
TUNABLE = ("ppo", "trpo", "npg")
VIDEO_HELP = (
    "Recording a video needs imageio-ffmpeg (pip install imageio-ffmpeg, or the package's "
    "video extra) and the env's rendering "
    "dependencies (pip install 'gymnasium[classic-control]' for pygame, or "
    "'gymnasium[mujoco]' for MuJoCo envs)."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-trust", description="Trust-region reinforcement learning for Keras 3."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="train an agent and write a run directory",
        description="Trains ALGO on ENV_ID from its preset and writes a run directory: "
        "agent.keras, best_agent.keras, policy/ (SavedModel), metrics.csv, "
        "learning_curve.png, config.json and tensorboard/. `--config RUN_DIR/config.json` "
        "repeats a run (bit for bit on CPU); `--resume RUN_DIR` continues one.",
    )
    train.add_argument("algo", nargs="?", help=f"algorithm: {', '.join(ALGORITHMS)}")
    train.add_argument("env_id", nargs="?", help="registered gymnasium id, e.g. CartPole-v1")
    train.add_argument("--timesteps", type=int, default=None, help="env steps (default: preset)")
    train.add_argument("--seed", type=int, default=None, help="random seed (default: drawn)")
    train.add_argument("--n-envs", type=int, default=None, help="parallel envs (default: preset)")
    train.add_argument("--preset", default=None, help="preset env id to borrow (default: ENV_ID)")
    train.add_argument(
        "--config",
        default=None,
        help="a run's config.json or a best_preset.json (repeats it), or a JSON file "
        "overriding parts of the preset",
    )
    train.add_argument("--out", default=None, help="run directory (default: runs/ALGO-ENV-TIME)")
    train.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue RUN_DIR from its last checkpoint to its config's total steps",
    )
    train.add_argument(
        "--eval-freq", type=int, default=None, help="epochs between evaluations (default: 1/10 run)"
    )
    train.add_argument(
        "--eval-episodes", type=int, default=None, help="episodes per evaluation (default: 10)"
    )
    train.add_argument(
        "--stop-at-return", type=float, default=None, help="stop once evaluation reaches this"
    )
    train.add_argument(
        "--save-freq", type=int, default=None, help="epochs between checkpoints (default: 10)"
    )
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])

    tune = sub.add_parser(
        "tune",
        help="search hyperparameters with Optuna",
        description="Runs Optuna trials of ALGO on ENV_ID over rl-baselines3-zoo's search "
        "space, pruning trials whose evaluations fall behind (median rule), and writes "
        "the study (study.db, SQLite) and best_preset.json, which `train --config` "
        "accepts. Needs the `tune` extra (optuna).",
    )
    tune.add_argument("algo", choices=list(TUNABLE), help="algorithm")
    tune.add_argument("env_id", help="registered gymnasium id, e.g. CartPole-v1")
    tune.add_argument("--trials", type=int, default=20, help="trials to run (default: 20)")
    tune.add_argument(
        "--timesteps", type=int, default=None, help="env steps per trial (default: preset)"
    )
    tune.add_argument(
        "--n-envs", type=int, default=None, help="parallel envs per trial (default: preset)"
    )
    tune.add_argument("--seed", type=int, default=0, help="seed of the sampler and trials")
    tune.add_argument(
        "--evaluations", type=int, default=5, help="evaluations per trial (default: 5)"
    )
    tune.add_argument(
        "--eval-episodes", type=int, default=10, help="episodes per evaluation (default: 10)"
    )
    tune.add_argument("--out", default=None, help="output directory (default: tuning/ALGO-ENV)")

    evaluate = sub.add_parser(
        "evaluate",
        help="evaluate a run directory's agent",
        description="Runs whole episodes with the run's agent (deterministic actions) and "
        "prints mean_return, std_return and mean_length as JSON.",
    )
    evaluate.add_argument("run_dir", help="a run directory written by `keras-trust train`")
    evaluate.add_argument("--episodes", type=int, default=10, help="episodes (default: 10)")
    evaluate.add_argument("--seed", type=int, default=None, help="seed of the first reset")
    evaluate.add_argument("--env", default=None, help="env id (default: the run's)")
    evaluate.add_argument(
        "--video",
        default=None,
        metavar="FILE.mp4",
        help="also record the first episode to this MP4 file, one frame per step (needs "
        "imageio-ffmpeg and the env's rendering dependencies, e.g. pygame for classic control)",
    )

    export = sub.add_parser(
        "export",
        help="export a run's policy",
        description="Writes the run's deterministic policy (observation batch -> action "
        "batch) as a SavedModel directory, a .tflite file or an .onnx file.",
    )
    export.add_argument("run_dir", help="a run directory written by `keras-trust train`")
    export.add_argument("out", help="SavedModel directory, or .tflite / .onnx file")
    export.add_argument(
        "--format",
        default="saved_model",
        choices=list(EXPORT_FORMATS),
        help="saved_model (default), tflite, or onnx (needs the `export` extra: tf2onnx)",
    )

    plot = sub.add_parser(
        "plot",
        help="plot learning curves of run directories",
        description="Plots episode return against timesteps from each run's metrics.csv "
        "(plus KL, penalty beta and line-search backtracks where logged). Runs of the same "
        "algorithm and env are drawn as their mean with a min-max band. Needs matplotlib.",
    )
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories")
    plot.add_argument(
        "-o", "--out", default="learning_curves.png", help="image file (default: %(default)s)"
    )
    plot.add_argument("--title", default=None, help="figure title")

    sub.add_parser(
        "presets",
        help="list the shipped presets",
        description="Lists the (env, algorithm) presets shipped with keras_trust.",
    )
    return parser


def _train(args) -> int:
    from keras_trust import runs

    if args.algo is not None and args.algo not in ALGORITHMS:
        print(
            f"keras-trust train: unknown algorithm {args.algo!r} (choose from "
            f"{', '.join(ALGORITHMS)})",
            file=sys.stderr,
        )
        return 2
    try:
        if args.resume is not None:
            config, out = _resume_config(args), args.resume
        else:
            config = runs.run_config(
                args.algo,
                args.env_id,
                timesteps=args.timesteps,
                seed=args.seed,
                n_envs=args.n_envs,
                preset_env=args.preset,
                config_file=args.config,
                eval_freq=args.eval_freq,
                eval_episodes=args.eval_episodes,
                stop_at_return=args.stop_at_return,
                save_freq=args.save_freq,
            )
            out = args.out or os.path.join(
                "runs", f"{config['algo']}-{config['env_id']}-{time.strftime('%Y%m%d-%H%M%S')}"
            )
    except (OSError, ValueError) as e:
        print(f"keras-trust train: {e}", file=sys.stderr)
        return 2
    return runs.train_run(config, out, verbose=args.verbose, resume=args.resume is not None)


def _resume_config(args) -> dict:
    """The config of the run to resume; options that would change the run are refused."""
    from keras_trust import runs

    changed = [
        flag
        for flag, value in (
            ("--timesteps", args.timesteps),
            ("--seed", args.seed),
            ("--n-envs", args.n_envs),
            ("--preset", args.preset),
            ("--config", args.config),
            ("--out", args.out),
            ("--eval-freq", args.eval_freq),
            ("--eval-episodes", args.eval_episodes),
            ("--stop-at-return", args.stop_at_return),
            ("--save-freq", args.save_freq),
        )
        if value is not None
    ]
    if changed:
        raise ValueError(
            f"--resume continues the run as its config.json says; {', '.join(changed)} "
            "cannot be changed (start a new run with --config RUN_DIR/config.json instead)."
        )
    return runs.resume_config(args.resume, args.algo, args.env_id)


def _tune(args) -> int:
    try:
        import optuna

        from keras_trust import tune
    except ImportError:
        print(
            "keras-trust tune: tuning needs Optuna: pip install 'keras-trust[tune]' (or pip "
            "install optuna).",
            file=sys.stderr,
        )
        return 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # tune prints a line per trial
    out = args.out or os.path.join("tuning", f"{args.algo}-{args.env_id}")
    try:
        tune.tune(
            args.algo,
            args.env_id,
            n_trials=args.trials,
            timesteps=args.timesteps,
            n_envs=args.n_envs,
            seed=args.seed,
            n_evaluations=args.evaluations,
            eval_episodes=args.eval_episodes,
            out=out,
        )
    except ValueError as e:
        print(f"keras-trust tune: {e}", file=sys.stderr)
        return 2
    return 0


def _run_env_id(run_dir) -> str:
    with open(os.path.join(run_dir, "config.json")) as f:
        return json.load(f)["env_id"]


def _evaluate(args) -> int:
    if args.video is not None:
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            print(
                f"keras-trust evaluate --video: imageio-ffmpeg is not installed. {VIDEO_HELP}",
                file=sys.stderr,
            )
            return 1
    from keras_trust.agents import load_agent

    agent = load_agent(os.path.join(args.run_dir, "agent.keras"))
    env_id = args.env or _run_env_id(args.run_dir)
    if args.video is None:
        result = agent.evaluate(env_id, episodes=args.episodes, seed=args.seed)
    else:
        from keras_trust.video import VideoError, evaluate_with_video

        try:
            result = evaluate_with_video(agent, env_id, args.video, args.episodes, args.seed)
        except VideoError as e:
            print(f"keras-trust evaluate --video: {e}\n{VIDEO_HELP}", file=sys.stderr)
            return 1
        print(f"Recorded the first episode to {args.video}")
    print(json.dumps({k: result[k] for k in ("mean_return", "std_return", "mean_length")}))
    return 0


def _export(args) -> int:
    from keras_trust.agents import load_agent
    from keras_trust.export import export

    agent = load_agent(os.path.join(args.run_dir, "agent.keras"))
    try:
        export(agent, args.out, format=args.format)
    except ImportError as e:
        print(f"keras-trust export: {e}", file=sys.stderr)
        return 1
    print(f"Exported the policy ({args.format}) to {args.out}")
    return 0


def _plot(args) -> int:
    from keras_trust import plotting

    missing = [d for d in args.run_dirs if not os.path.isfile(os.path.join(d, "metrics.csv"))]
    if missing:
        print(f"keras-trust plot: no metrics.csv in {', '.join(missing)}", file=sys.stderr)
        return 1
    try:
        plotting.plot_runs(args.run_dirs, args.out, title=args.title)
    except ImportError as e:
        print(f"keras-trust plot: {e}", file=sys.stderr)
        return 1
    print(f"Wrote {args.out}")
    return 0


def _presets(args) -> int:
    from keras_trust import presets

    for env_id, algo in presets.available():
        p = presets.get_preset(algo, env_id)
        print(f"{env_id:24s} {algo:7s} {p.get('total_timesteps', '')} steps  {p['agent']}")
    return 0


def main(argv=None) -> int:
    from keras_trust.performance import persistent_compilation_cache, single_threaded_xla_cpu

    # The command owns its process: it opts in to the faster single-threaded XLA CPU
    # matmuls for the agents' small networks and to XLA's on-disk cache of compiled
    # functions, so a second run skips most of the warm-up (a library import does neither).
    single_threaded_xla_cpu()
    try:
        persistent_compilation_cache()
    except OSError:  # no writable cache directory: compile as usual
        pass
    args = _parser().parse_args(argv)
    handlers = {
        "train": _train,
        "tune": _tune,
        "evaluate": _evaluate,
        "export": _export,
        "plot": _plot,
        "presets": _presets,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
