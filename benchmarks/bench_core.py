"""Cost of the curvature core: Fisher-vector products and one TrustRegion step.

For a 64-64 tanh policy on 2048 samples, at two sizes:

- CartPole-sized: 4 observations, Discrete(2) actions, Categorical head.
- HalfCheetah-sized: 17 observations, Box(6) actions, diagonal Gaussian head.

it measures

(a) one Fisher-vector product (both methods) relative to one gradient of the mean KL,
    each compiled in its own `tf.function`, timed call by call with the three
    interleaved (round-robin in a shuffled order), median over the repeats;
(b) one full `TrustRegion.minimize`, compiled (the normal path: an eager call that
    runs the optimizer's cached `tf.function`) versus eager (`_minimize_graph` called
    directly without `tf.function`), median over repeats, with the weights reset
    before every repeat so each one solves the same problem.

Run: `python benchmarks/bench_core.py` (about two minutes on 2 CPU cores). Writes
`benchmarks/results/core.json` and `benchmarks/results/core.md`.
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_trust as kt  # noqa: E402
from keras_trust.distributions import (  # noqa: E402
    CategoricalHead,
    DiagGaussianHead,
    kl_divergence,
    make_distribution,
)

RESULTS = Path(__file__).resolve().parent / "results"
N_SAMPLES = 2048
SIZES = {
    "CartPole (obs 4, Discrete(2))": {"obs_dim": 4, "kind": "categorical", "n_actions": 2},
    "HalfCheetah (obs 17, Box(6))": {"obs_dim": 17, "kind": "diag_gaussian", "n_actions": 6},
}


def build_problem(obs_dim, kind, n_actions, seed=0):
    """A 64-64 tanh policy, a batch of 2048 samples, and the TRPO loss_fn / kl_fn."""
    keras.utils.set_random_seed(seed)
    head = CategoricalHead(n_actions) if kind == "categorical" else DiagGaussianHead(n_actions)
    policy = keras.Sequential(
        [
            keras.Input((obs_dim,)),
            keras.layers.Dense(64, activation="tanh"),
            keras.layers.Dense(64, activation="tanh"),
            head,
        ]
    )
    rng = np.random.default_rng(seed)
    obs = tf.constant(rng.normal(size=(N_SAMPLES, obs_dim)), tf.float32)
    old_params = [tf.constant(p) for p in tf.nest.flatten(policy(obs))]
    old_dist = make_distribution(kind, old_params)
    actions = old_dist.sample(seed=seed)
    old_log_prob = old_dist.log_prob(actions)
    advantages = tf.constant(rng.normal(size=N_SAMPLES), tf.float32)

    def loss_fn():
        dist = make_distribution(kind, tf.nest.flatten(policy(obs)))
        return -tf.reduce_mean(tf.exp(dist.log_prob(actions) - old_log_prob) * advantages)

    def kl_fn():
        return tf.reduce_mean(kl_divergence(kind, old_params, tf.nest.flatten(policy(obs))))

    return policy, loss_fn, kl_fn


def timed(fn):
    start = time.perf_counter()
    out = fn()
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
    return time.perf_counter() - start


def bench_fvp(kl_fn, variables, repeats, rng):
    """(a): median seconds of one KL gradient and one FVP per method, interleaved."""
    tvars = kt.ops.tf_variables(variables)
    vector = [tf.constant(rng.normal(size=v.shape), v.dtype) for v in tvars]

    @tf.function
    def kl_gradient():
        with tf.GradientTape() as tape:
            kl = kl_fn()
        return kt.ops.flatten(tape.gradient(kl, tvars))

    def make_fvp(method):
        return tf.function(
            lambda: kt.ops.flatten(
                kt.ops.fisher_vector_product(kl_fn, variables, vector, 0.1, method)
            )
        )

    fns = {
        "kl_gradient": kl_gradient,
        "fvp_forward_over_reverse": make_fvp("forward_over_reverse"),
        "fvp_double_backprop": make_fvp("double_backprop"),
    }
    for fn in fns.values():  # trace and warm up
        timed(fn)
        timed(fn)
    times = {name: [] for name in fns}
    names = list(fns)
    for _ in range(repeats):
        rng.shuffle(names)
        for name in names:
            times[name].append(timed(fns[name]))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    return {
        "median_s": medians,
        "ratio_to_kl_gradient": {
            name: medians[name] / medians["kl_gradient"] for name in names if name != "kl_gradient"
        },
        "repeats": repeats,
    }


def bench_minimize(loss_fn, kl_fn, variables, compiled_repeats, eager_repeats):
    """(b): median seconds of one TrustRegion step, compiled vs eager."""
    opt = kt.optimizers.TrustRegion(max_kl=0.01, cg_iters=10)
    initial = [v.numpy().copy() for v in variables]

    def reset():
        for v, value in zip(variables, initial):
            v.assign(value)

    def compiled():
        return opt.minimize(loss_fn, variables, kl_fn)

    def eager():
        return opt._minimize_graph(loss_fn, variables, kl_fn)

    reset()
    first_call = timed(compiled)  # builds, traces and runs once
    times = {"compiled": [], "eager": []}
    for i in range(max(compiled_repeats, eager_repeats)):
        for name, fn, n in (
            ("compiled", compiled, compiled_repeats),
            ("eager", eager, eager_repeats),
        ):
            if i < n:
                reset()
                times[name].append(timed(fn))
    # The two paths run the same computation: record both outcomes side by side.
    reset()
    compiled_info = {k: float(v) for k, v in compiled().items()}
    reset()
    eager_info = {k: float(v) for k, v in eager().items()}
    reset()
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    return {
        "median_s": medians,
        "eager_over_compiled": medians["eager"] / medians["compiled"],
        "first_compiled_call_s": first_call,
        "repeats": {"compiled": compiled_repeats, "eager": eager_repeats},
        "step_info": {
            path: {k: info[k] for k in ("accepted", "backtracks", "kl", "loss_after")}
            for path, info in (("compiled", compiled_info), ("eager", eager_info))
        },
    }


def markdown(results):
    lines = [
        "# keras_trust core benchmark",
        "",
        f"64-64 tanh policy, {N_SAMPLES} samples, float32, CPU only. "
        f"TensorFlow {results['env']['tensorflow']}, Keras {results['env']['keras']}, "
        f"{results['env']['cpu_count']} CPU cores, load average "
        f"{results['env']['loadavg_start']} at start and {results['env']['loadavg_end']} at end "
        "(other jobs shared the machine: compare ratios, not absolute times).",
        "",
        "## (a) One Fisher-vector product vs one gradient of the mean KL (tf.function each)",
        "",
        "| problem | params | KL gradient (ms) | FVP fwd-over-rev (ms) | ratio | "
        "FVP double-backprop (ms) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["sizes"].items():
        a = r["fvp"]
        m, q = a["median_s"], a["ratio_to_kl_gradient"]
        lines.append(
            f"| {name} | {r['n_params']} | {1e3 * m['kl_gradient']:.2f} | "
            f"{1e3 * m['fvp_forward_over_reverse']:.2f} | {q['fvp_forward_over_reverse']:.2f}x | "
            f"{1e3 * m['fvp_double_backprop']:.2f} | {q['fvp_double_backprop']:.2f}x |"
        )
    lines += [
        "",
        "## (b) One TrustRegion.minimize step (max_kl=0.01, cg_iters=10, 10 backtracks max)",
        "",
        "| problem | compiled (ms) | eager (ms) | eager / compiled | first compiled call (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results["sizes"].items():
        b = r["minimize"]
        lines.append(
            f"| {name} | {1e3 * b['median_s']['compiled']:.1f} | "
            f"{1e3 * b['median_s']['eager']:.1f} | {b['eager_over_compiled']:.1f}x | "
            f"{b['first_compiled_call_s']:.2f} |"
        )
    lines += [
        "",
        "Medians over "
        + ", ".join(
            f"{r['fvp']['repeats']} interleaved FVP/gradient rounds and "
            f"{r['minimize']['repeats']['compiled']} compiled / "
            f"{r['minimize']['repeats']['eager']} eager steps ({name.split(' ')[0]})"
            for name, r in results["sizes"].items()
        )
        + ". 'compiled' is `opt.minimize(...)` called eagerly (it runs the optimizer's cached "
        "`tf.function`); 'eager' is `opt._minimize_graph(...)` without `tf.function`. The "
        "first compiled call includes tracing.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fvp-repeats", type=int, default=200)
    parser.add_argument("--compiled-repeats", type=int, default=30)
    parser.add_argument("--eager-repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    results = {
        "env": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "keras_trust": kt.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "n_samples": N_SAMPLES,
        },
        "sizes": {},
    }
    start = time.perf_counter()
    for name, size in SIZES.items():
        policy, loss_fn, kl_fn = build_problem(**size)
        variables = policy.trainable_variables
        n_params = int(sum(np.prod(v.shape) for v in variables))
        print(f"{name}: {n_params} parameters", flush=True)
        fvp = bench_fvp(kl_fn, variables, args.fvp_repeats, rng)
        minimize = bench_minimize(
            loss_fn, kl_fn, variables, args.compiled_repeats, args.eager_repeats
        )
        results["sizes"][name] = {"n_params": n_params, "fvp": fvp, "minimize": minimize}
    results["env"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["env"]["wall_s"] = round(time.perf_counter() - start, 1)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "core.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "core.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'core.json'} and {args.out / 'core.md'}")


if __name__ == "__main__":
    main()
