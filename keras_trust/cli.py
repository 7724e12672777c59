"""The `keras-trust` command: train, evaluate, export and list presets.

Examples:
    keras-trust train ppo CartPole-v1 --timesteps 50000 --out runs/cartpole
    keras-trust evaluate runs/cartpole --episodes 10
    keras-trust export runs/cartpole policy_dir
    keras-trust presets
"""

import argparse
import json
import os
import sys
import time


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-trust", description="Trust-region reinforcement learning for Keras 3."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an agent and write a run directory")
    train.add_argument("algo", choices=["ppo", "trpo", "npg"], help="algorithm")
    train.add_argument("env_id", help="registered gymnasium id, e.g. CartPole-v1")
    train.add_argument("--timesteps", type=int, default=None, help="env steps (default: preset)")
    train.add_argument("--seed", type=int, default=None, help="random seed")
    train.add_argument("--n-envs", type=int, default=None, help="parallel envs (default: preset)")
    train.add_argument("--preset", default=None, help="preset env id to borrow (default: ENV_ID)")
    train.add_argument("--config", default=None, help="JSON file overriding the preset")
    train.add_argument("--out", default=None, help="run directory (default: runs/ALGO-ENV-TIME)")
    train.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])

    evaluate = sub.add_parser("evaluate", help="evaluate a run directory's agent")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--seed", type=int, default=None)
    evaluate.add_argument("--env", default=None, help="env id (default: the run's)")

    export = sub.add_parser("export", help="export a run's policy")
    export.add_argument("run_dir")
    export.add_argument("out")
    export.add_argument("--format", default="saved_model", choices=["saved_model"])

    sub.add_parser("presets", help="list the shipped presets")
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
        result = agent.evaluate(args.env_id, episodes=10, seed=args.seed)
        print(
            f"Evaluation over 10 episodes: mean return {result['mean_return']:.1f} "
            f"+/- {result['std_return']:.1f}"
        )
    print(f"Run directory: {out}")
    return 130 if interrupted else 0


def _evaluate(args) -> int:
    from keras_trust.agents import load_agent

    agent = load_agent(os.path.join(args.run_dir, "agent.keras"))
    env_id = args.env
    if env_id is None:
        with open(os.path.join(args.run_dir, "config.json")) as f:
            env_id = json.load(f)["env_id"]
    result = agent.evaluate(env_id, episodes=args.episodes, seed=args.seed)
    print(json.dumps({k: result[k] for k in ("mean_return", "std_return", "mean_length")}))
    return 0


def _export(args) -> int:
    from keras_trust.agents import load_agent

    agent = load_agent(os.path.join(args.run_dir, "agent.keras"))
    agent.export(args.out)
    print(f"Exported the policy to {args.out}")
    return 0


def _presets(args) -> int:
    from keras_trust import presets

    for env_id, algo in presets.available():
        p = presets.get_preset(algo, env_id)
        print(f"{env_id:24s} {algo:5s} {p.get('total_timesteps', '')} steps  {p['agent']}")
    return 0


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    handlers = {"train": _train, "evaluate": _evaluate, "export": _export, "presets": _presets}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
