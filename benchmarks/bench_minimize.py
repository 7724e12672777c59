"""Eager `TrustRegion.minimize`: the `args` form (traced once) against the zero-argument form
(run eagerly, so it always sees the current data), on a small categorical policy.

The problem: a 64-64 tanh MLP policy over 4 actions on a batch of observations; the loss
is the surrogate `-mean(ratio * adv)` and the KL the mean categorical KL to the logits
frozen before each call, as a TRPO user would write them. Each form runs the same
sequence of calls in a plain Python loop (new old-logits and advantages each call); the
forms alternate round by round. Also reports how many times the `args` form traced.

    python benchmarks/bench_minimize.py [--calls 20] [--rounds 3] [--batch 2048]
"""

import argparse
import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_trust as kt  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def problem(batch, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.layers.Dense(64, activation="tanh"),
            keras.layers.Dense(64, activation="tanh"),
            keras.layers.Dense(4),
        ]
    )
    rng = np.random.default_rng(seed)
    obs = tf.constant(rng.normal(size=(batch, 8)).astype(np.float32))
    model(obs)
    actions = tf.constant(rng.integers(0, 4, batch))
    return model, obs, actions, rng


def log_prob(logits, actions):
    return tf.gather(tf.nn.log_softmax(logits), actions, batch_dims=1)


def run(form, calls, batch):
    model, obs, actions, rng = problem(batch)
    opt = kt.optimizers.TrustRegion(max_kl=0.01)
    traces = {"n": 0}

    def loss_fn(old_logits, adv):
        traces["n"] += 1
        ratio = tf.exp(log_prob(model(obs), actions) - log_prob(old_logits, actions))
        return -tf.reduce_mean(ratio * adv)

    def kl_fn(old_logits, adv):
        p = tf.nn.softmax(old_logits)
        return tf.reduce_mean(
            tf.reduce_sum(p * (tf.nn.log_softmax(old_logits) - tf.nn.log_softmax(model(obs))), -1)
        )

    times, kls = [], []
    for _ in range(calls):
        old = tf.identity(model(obs))
        adv = tf.constant(rng.normal(size=batch).astype(np.float32))
        start = time.perf_counter()
        if form == "args":
            info = opt.minimize(loss_fn, model.trainable_variables, kl_fn, args=(old, adv))
        else:
            # Closures over the loop's current values: the pattern the eager form serves.
            info = opt.minimize(
                lambda: loss_fn(old, adv),  # noqa: B023
                model.trainable_variables,
                lambda: kl_fn(old, adv),  # noqa: B023
            )
        kls.append(float(info["kl"]))
        times.append(time.perf_counter() - start)
    return {
        "first_s": times[0],
        "median_later_s": float(np.median(times[1:])),
        "traces": traces["n"],
        "kl": kls,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2048)
    args = parser.parse_args()
    results = {"args": [], "zero-argument (eager)": []}
    for _ in range(args.rounds):
        for form in results:
            results[form].append(run("args" if form == "args" else "eager", args.calls, args.batch))
    lines = [
        f"# Eager TrustRegion.minimize, {args.calls} calls in a Python loop, batch {args.batch}",
        "",
        "| form | first call (s) | later calls, median (s) | loss_fn bodies run |",
        "|---|---:|---:|---:|",
    ]
    for form, runs in results.items():
        first = np.median([r["first_s"] for r in runs])
        later = np.median([r["median_later_s"] for r in runs])
        lines.append(f"| {form} | {first:.3f} | {later:.4f} | {runs[0]['traces']} |")
    same = all(
        np.allclose(a["kl"], b["kl"], rtol=1e-4)
        for a, b in zip(results["args"], results["zero-argument (eager)"])
    )
    lines += ["", f"Both forms took the same steps (measured KLs equal to 1e-4): {same}."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "minimize.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "minimize.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
