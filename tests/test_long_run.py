"""Short CI version of `benchmarks/bench_long_run.py`: resources stay flat over a `fit`.

The 1M-step measurement (benchmarks/results/long_run_ppo.json, docs/reliability.md) takes
minutes; this test trains a small PPO for 60 epochs and checks, after 20 epochs of
warm-up (tracing, allocator pools, TensorFlow's lazily started thread pools), that
nothing grows per epoch: a per-epoch leak of a `tf.function` retrace, a file, a thread
or a few kB of Python objects would show within 40 epochs.

Measured on the 2-core dev machine, 3 runs (sample after epoch 20 -> after epoch 60):
RSS +0.4, +0.3 and +0.1 MB (about 1150 MB in all); gc objects 580332 -> 582153 in all
three (+1821 once, between epochs 20 and 30, then not one more through epoch 60); OS
threads 26, Python threads 1, fds 6, tf/keras variables 84 and eager-context functions
32, all unchanged; 32-36 s of training. The RSS and whole-window object bounds are
generous (75x and 10x the measured growth) so that allocator noise and one-off lazy
initialisation cannot fail them; the object bound from epoch 30 on (measured: 0) catches
any per-epoch leak of 34 or more objects (1000 over 30 epochs); threads, fds, variables
and functions must not move at all, since they do not once warm (a retrace per epoch adds
eager functions, a file or thread left open per epoch adds fds or threads).
"""

import gc
import os
import threading

import keras
import pytest
import tensorflow as tf
from tensorflow.python.eager import context

import keras_trust as kt

EPOCHS = 60
WARMUP = 20
RSS_BOUND_MB = 30.0
OBJECTS_BOUND = 20_000  # sample after epoch 20 -> after epoch 60; measured +1821
STEADY_OBJECTS_BOUND = 1_000  # after epoch 30 -> after epoch 60; measured 0


def _status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_mb"] = int(line.split()[1]) / 1024.0
            elif line.startswith("Threads:"):
                out["threads_os"] = int(line.split()[1])
    return out


def _sample():
    gc.collect()
    objects = gc.get_objects()
    row = {
        "gc_objects": len(objects),
        "variables": sum(isinstance(o, tf.Variable | keras.Variable) for o in objects),
        "threads_py": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
        "eager_functions": len(context.context().list_function_names()),
    }
    del objects
    row.update(_status())
    return row


class _Monitor(keras.callbacks.Callback):
    """Samples at the end of warm-up and every 10 epochs after, like the benchmark."""

    def __init__(self):
        super().__init__()
        self.samples = {}

    def on_train_begin(self, logs=None):
        # The first isinstance scan over the heap itself leaves ~67k objects behind
        # (weakrefs and builtins cached by the ABC checks of tf/keras.Variable); a
        # throwaway sample here keeps that one-off out of the warm-up sample.
        _sample()

    def on_epoch_end(self, epoch, logs=None):
        if epoch >= WARMUP - 1 and (epoch - (WARMUP - 1)) % 10 == 0 or epoch == EPOCHS - 1:
            self.samples[epoch] = _sample()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_resources_stay_flat_over_60_epochs():
    agent = kt.PPO(n_envs=4, n_steps=64, batch_size=128, epochs=2)
    agent.compile(optimizer=keras.optimizers.Adam(1e-3))
    monitor = _Monitor()
    agent.fit("CartPole-v1", EPOCHS * 4 * 64, seed=0, verbose=0, callbacks=[monitor])
    warm, last = monitor.samples[WARMUP - 1], monitor.samples[EPOCHS - 1]
    report = {k: (warm[k], last[k]) for k in warm}
    assert last["rss_mb"] - warm["rss_mb"] < RSS_BOUND_MB, report
    assert last["gc_objects"] - warm["gc_objects"] < OBJECTS_BOUND, report
    steady = monitor.samples[WARMUP + 9]["gc_objects"]
    assert last["gc_objects"] - steady < STEADY_OBJECTS_BOUND, report
    for key in ("threads_os", "threads_py", "fds", "variables", "eager_functions"):
        assert last[key] <= warm[key], (key, report)
