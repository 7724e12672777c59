"""Opt-in settings that speed keras_trust up but act on the whole process.

Importing keras_trust changes no process-wide setting; these calls do, when a program
(the `keras-trust` command does) asks for them.
"""

import os

# XLA on CPU splits each matmul across the intra-op thread pool; for the agents' small
# networks the hand-off costs more than the work (`benchmarks/bench_xla_threads.py`
# measures the per-step act call both ways). The flag is read when XLA first compiles,
# and affects every XLA-compiled computation of the process, the user's own included.
XLA_CPU_FLAG = "--xla_cpu_multi_thread_eigen=false"


def single_threaded_xla_cpu() -> bool:
    """Makes XLA's CPU matmuls single-threaded for this process (adds `XLA_CPU_FLAG`).

    Call it before the first XLA compilation (before the first `fit`): the flag is
    read once. It leaves an explicit choice in `$XLA_FLAGS` alone.

    Returns:
        True if the flag was added, False if `$XLA_FLAGS` already chose.

    Example:
    >>> import keras_trust as kt
    >>> kt.performance.single_threaded_xla_cpu()  # doctest: +SKIP
    True
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" in flags:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_FLAG}".strip()
    return True
