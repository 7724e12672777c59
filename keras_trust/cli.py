"""The `keras-trust` command: train, evaluate, export, plot and list presets.

Examples:
    keras-trust train ppo CartPole-v1 --timesteps 50000 --out runs/cartpole
    keras-trust evaluate runs/cartpole --episodes 10 [--video cartpole.mp4]
    keras-trust export runs/cartpole policy_dir
    keras-trust export runs/cartpole policy.tflite --format tflite
    keras-trust export runs/cartpole policy.onnx --format onnx
    keras-trust plot runs/cartpole-* -o curves.png
    keras-trust presets

A run directory holds `agent.keras`, `policy/` (SavedModel), `metrics.csv`,
`learning_curve.png`, `config.json` and TensorBoard logs under `tensorboard/`.
"""

import argparse
import json
import os
import sys
import time

# Kept in step with keras_trust.export.FORMATS (not imported: --help must not load TF).
EXPORT_FORMATS = ("saved_model", "tflite", "onnx")
VIDEO_HELP = (
    "Recording a video needs moviepy (pip install moviepy) and the env's rendering "
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
        "agent.keras, policy/ (SavedModel), metrics.csv, learning_curve.png, config.json "
        "and tensorboard/.",
    )
    train.add_argument("algo", choices=["ppo", "ppo_kl", "trpo", "npg"], help="algorithm")
    train.add_argument("env_id", help="registered gymnasium id, e.g. CartPole-v1")
    train.add_argument("--timesteps", type=int, default=None, help="env steps (default: preset)")
    train.add_argument("--seed", type=int, default=None, help="random seed")
    train.add_argument("--n-envs", type=int, default=None, help="parallel envs (default: preset)")
    train.add_argument("--preset", default=None, help="preset env id to borrow (default: ENV_ID)")
    train.add_argument("--config", default=None, help="JSON file overriding the preset")
    train.add_argument("--out", default=None, help="run directory (default: runs/ALGO-ENV-TIME)")
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])

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
        help="also record the first episode to this MP4 file (gymnasium RecordVideo; needs "
        "moviepy and the env's rendering dependencies, e.g. pygame for classic control)",
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


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _train(args) -> int:
    import keras

    from keras_trust import presets

    preset_algo = "trpo" if args.algo == "npg" else args.algo
    preset = presets.get_preset(preset_algo, args.preset or args.env_id)
    if args.algo == "npg":
        opt = {
            k: v
            for k, v in preset["optimizer"].items()
            if k not in ("name", "backtrack_iters", "backtrack_coeff")
        }
        preset["optimizer"] = {"name": "natural_gradient", **opt}
    if args.config:
        with open(args.config) as f:
            preset = _merge(preset, json.load(f))
    if args.n_envs is not None:
        preset.setdefault("agent", {})["n_envs"] = args.n_envs
    timesteps = args.timesteps or preset.get("total_timesteps", 100_000)
    out = args.out or os.path.join(
        "runs", f"{args.algo}-{args.env_id}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    os.makedirs(out, exist_ok=True)
    config = {
        "algo": args.algo,
        "env_id": args.env_id,
        "seed": args.seed,
        "total_timesteps": timesteps,
        "preset": preset,
    }
    print("keras-trust train:", json.dumps(config, indent=1))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    agent = presets.make_agent(args.algo, args.env_id, preset=preset)
    callbacks = [
        keras.callbacks.CSVLogger(os.path.join(out, "metrics.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(out, "tensorboard"), write_graph=False),
    ]
    interrupted = False
    try:
        agent.fit(args.env_id, timesteps, callbacks=callbacks, verbose=args.verbose, seed=args.seed)
    except KeyboardInterrupt:
        interrupted = True
        print("\nInterrupted: saving what was trained so far.")
    if agent.built:
        agent.save(os.path.join(out, "agent.keras"))
        agent.export(os.path.join(out, "policy"))
        _learning_curve(out)
        result = agent.evaluate(args.env_id, episodes=10, seed=args.seed)
        print(
            f"Evaluation over 10 episodes: mean return {result['mean_return']:.1f} "
            f"+/- {result['std_return']:.1f}"
        )
    print(f"Run directory: {out}")
    return 130 if interrupted else 0


def _learning_curve(run_dir) -> None:
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


def _run_env_id(run_dir) -> str:
    with open(os.path.join(run_dir, "config.json")) as f:
        return json.load(f)["env_id"]


def _evaluate(args) -> int:
    if args.video is not None:
        try:
            import moviepy  # noqa: F401
        except ImportError:
            print(
                f"keras-trust evaluate --video: moviepy is not installed. {VIDEO_HELP}",
                file=sys.stderr,
            )
            return 1
    from keras_trust.agents import load_agent

    agent = load_agent(os.path.join(args.run_dir, "agent.keras"))
    env_id = args.env or _run_env_id(args.run_dir)
    if args.video is None:
        result = agent.evaluate(env_id, episodes=args.episodes, seed=args.seed)
    else:
        result = _evaluate_with_video(agent, env_id, args)
        if result is None:
            return 1
    print(json.dumps({k: result[k] for k in ("mean_return", "std_return", "mean_length")}))
    return 0


def _evaluate_with_video(agent, env_id, args):
    """`agent.evaluate` on a RecordVideo-wrapped env; None (after a message) on failure."""
    import shutil
    import tempfile
    import warnings

    import gymnasium as gym

    out = os.path.abspath(args.video)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    folder = tempfile.mkdtemp(prefix=".video-", dir=os.path.dirname(out))
    env = None
    try:
        env = gym.make(env_id, render_mode="rgb_array")
        # The first episode only: frames are held in memory until the episode ends.
        env = gym.wrappers.RecordVideo(
            env,
            video_folder=os.path.join(folder, "v"),
            name_prefix="video",
            episode_trigger=lambda k: k == 0,
        )
        result = agent.evaluate(env, episodes=args.episodes, seed=args.seed)
        env.close()
        env = None
        videos = sorted(
            os.path.join(root, f)
            for root, _, files in os.walk(folder)
            for f in files
            if f.endswith(".mp4")
        )
        if not videos:
            raise RuntimeError("the recorder wrote no video (the env rendered no frames)")
        os.replace(videos[0], out)
    except (gym.error.Error, ImportError, OSError, RuntimeError, AttributeError) as e:
        print(
            f"keras-trust evaluate --video: could not record {env_id}: "
            f"{type(e).__name__}: {e}\n{VIDEO_HELP}",
            file=sys.stderr,
        )
        return None
    finally:
        if env is not None:
            with warnings.catch_warnings():  # "zero frames to save" after a failed render
                warnings.simplefilter("ignore")
                try:
                    env.close()
                except Exception:  # the recorder may fail again while closing
                    pass
        shutil.rmtree(folder, ignore_errors=True)
    print(f"Recorded the first episode to {args.video}")
    return result


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
    from keras_trust.performance import single_threaded_xla_cpu

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The command owns its process: it opts in to the faster single-threaded XLA CPU
    # matmuls for the agents' small networks (a library import never does).
    single_threaded_xla_cpu()
    args = _parser().parse_args(argv)
    handlers = {
        "train": _train,
        "evaluate": _evaluate,
        "export": _export,
        "plot": _plot,
        "presets": _presets,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
