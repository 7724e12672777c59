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


# TensorFlow's persistent XLA cache: compiled `jit_compile=True` functions are written
# to this directory and loaded by later processes instead of being compiled again. Read
# when XLA first compiles, like `XLA_CPU_FLAG`.
CACHE_FLAG = "--tf_xla_persistent_cache_directory"


def default_cache_directory() -> str:
    """`$XDG_CACHE_HOME/keras_trust/xla-<TF version>` (or under `~/.cache`).

    Per TensorFlow version, so an upgrade never loads executables compiled by another.
    """
    import tensorflow as tf

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keras_trust", f"xla-{tf.__version__}")


def persistent_compilation_cache(directory=None):
    """Keeps XLA's compiled functions on disk, so later processes skip their compilation.

    A fresh process traces its functions again (tracing is per process), but the XLA
    compilation of the act step and of PPO's minibatch step, most of the warm-up, is
    loaded from the cache. The cached executables give the same results as compiled
    ones. Call it before the first XLA compilation (before the first `fit`); it leaves
    an explicit choice in `$TF_XLA_FLAGS` alone.

    Args:
        directory: where the cache lives. Defaults to `default_cache_directory()`.

    Returns:
        The cache directory in use, or None if `$TF_XLA_FLAGS` already chose one.

    Example:
    >>> import keras_trust as kt
    >>> kt.performance.persistent_compilation_cache()  # doctest: +SKIP
    '/home/me/.cache/keras_trust/xla-2.21.0'
    """
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if CACHE_FLAG in flags:
        return None
    directory = os.fspath(directory) if directory is not None else default_cache_directory()
    os.makedirs(directory, exist_ok=True)
    os.environ["TF_XLA_FLAGS"] = f"{flags} {CACHE_FLAG}={directory}".strip()
    return directory
