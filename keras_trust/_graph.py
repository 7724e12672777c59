"""`straight_line`: marks graph code that AutoGraph need not rewrite.

`tf.function` runs every Python function it meets through AutoGraph, which parses and
rewrites its source: about a second per agent for the ~30 helpers of an update. Helpers
whose Python control flow never depends on a tensor (loops are explicit `tf.while_loop`s,
branches test Python values) gain nothing from that, so they carry this decorator and run
as written. TRPO's whole update is written this way (its loops are `tf.while_loop`s); PPO's
epoch loop (`PPO._train`) and minibatch step still go through AutoGraph.
"""

import os

import tensorflow as tf

straight_line = tf.autograph.experimental.do_not_convert

# XLA on CPU splits each matmul across the intra-op thread pool; for the agents' small
# networks the hand-off costs more than the work: an XLA-compiled act step on a batch of 2
# observations took ~170 us with it and ~70 us without (`benchmarks/bench_xla_threads.py`). The
# flag is read when XLA first compiles, and only XLA-compiled code is affected.
XLA_CPU_FLAG = "--xla_cpu_multi_thread_eigen=false"


def single_threaded_xla_cpu() -> None:
    """Adds `XLA_CPU_FLAG` to `$XLA_FLAGS` unless the user already set that option.

    Set `XLA_FLAGS=--xla_cpu_multi_thread_eigen=true` before importing keras_trust to keep
    XLA's multi-threaded CPU matmuls.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_FLAG}".strip()


def flat_caller(concrete):
    """A caller of a concrete function's graph that skips its Python argument binding.

    `concrete(x)` binds `x` to the traced signature (inspect-style binding, a type check
    and a cast per argument, the captured variables collected anew) before it runs the
    graph: ~30 of the ~72 us that one call of the per-env-step act function costs
    (`benchmarks/bench_act.py`). The rollout always passes the same kinds of tensors, so
    this calls the graph (`concrete.inference_fn`, the `tf.types.experimental.
    AtomicFunction` that `concrete` itself runs) with the tensors and the captured
    variable handles, taken once here, directly. Variables keep their handles when
    assigned, so the captures stay valid for the life of `concrete`.

    Returns a function of tensors (exactly the signature's, in order, right dtype) that
    returns the flat list of output tensors. Under a `GradientTape` use `concrete` itself:
    this path records nothing for gradients. Falls back to `concrete` where a TensorFlow
    version lacks `inference_fn.call_flat`.
    """
    call_flat = getattr(getattr(concrete, "inference_fn", None), "call_flat", None)
    if call_flat is None:
        return lambda *tensors: tf.nest.flatten(concrete(*tensors))
    captures = tuple(concrete.captured_inputs)
    return lambda *tensors: call_flat(*tensors, *captures)
