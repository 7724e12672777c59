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
