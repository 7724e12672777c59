"""`import keras_trust` changes nothing process-wide; the XLA threading flag is opt-in.

Each check runs in a fresh interpreter: the state is recorded after importing TensorFlow,
Keras, NumPy and gymnasium (which keras_trust imports anyway; gymnasium itself sets
`PYGAME_HIDE_SUPPORT_PROMPT`), then keras_trust is imported and
the state recorded again.
"""

import json
import os
import subprocess
import sys

import pytest

STATE = r"""
import json, os, random, sys
import numpy as np
import tensorflow as tf
import keras
import gymnasium

def state():
    gen = tf.random.get_global_generator()
    return {
        "environ": dict(os.environ),
        "python_random": repr(random.getstate()),
        "numpy_random": repr(np.random.get_state()),
        "tf_generator": gen.state.numpy().tolist(),
        "tf_random_draw_after": None,
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        "jit": tf.config.optimizer.get_jit(),
        "soft_placement": tf.config.get_soft_device_placement(),
        "run_eagerly": tf.config.functions_run_eagerly(),
        "matplotlib_imported": "matplotlib" in sys.modules,
        "keras_floatx": keras.config.floatx(),
        "keras_backend": keras.config.backend(),
    }
"""

CHILD = (
    STATE
    + r"""
before = state()
import keras_trust
after = state()
print(json.dumps({"before": before, "after": after}))
"""
)


def _run(code, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra_env or {})
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def states():
    return _run(CHILD)


@pytest.mark.parametrize(
    "key",
    [
        "environ",
        "python_random",
        "numpy_random",
        "tf_generator",
        "intra_op",
        "inter_op",
        "jit",
        "soft_placement",
        "run_eagerly",
        "matplotlib_imported",
        "keras_floatx",
    ],
)
def test_import_leaves_process_state_unchanged(states, key):
    assert states["after"][key] == states["before"][key]


def test_import_does_not_set_xla_flags(states):
    assert "XLA_FLAGS" not in states["after"]["environ"]


def test_random_streams_continue_as_without_keras_trust():
    """Draws after the import equal draws in a process that never imported it.

    Both processes import keras_trust's dependencies first (importing TensorFlow and Keras
    draws from Python's `random` itself), then seed.
    """
    draw = "print(json.dumps([random.random(), np.random.rand()]))"
    seeded = (
        "import json, random, numpy as np, tensorflow, keras, gymnasium\n"
        "random.seed(1); np.random.seed(1)\n"
    )
    with_kt = _run(seeded + "import keras_trust\n" + draw)
    without = _run(seeded + draw)
    assert with_kt == without


OPT_IN = r"""
import json, os
import keras_trust as kt
added = kt.performance.single_threaded_xla_cpu()
print(json.dumps([added, os.environ.get("XLA_FLAGS", "")]))
"""


def test_opt_in_adds_the_flag():
    assert _run(OPT_IN) == [True, "--xla_cpu_multi_thread_eigen=false"]


def test_opt_in_keeps_other_flags():
    added, flags = _run(OPT_IN, {"XLA_FLAGS": "--xla_dump_to=/tmp/nowhere"})
    assert added and flags.split() == [
        "--xla_dump_to=/tmp/nowhere",
        "--xla_cpu_multi_thread_eigen=false",
    ]


def test_opt_in_leaves_the_users_own_choice():
    assert _run(OPT_IN, {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true"}) == [
        False,
        "--xla_cpu_multi_thread_eigen=true",
    ]


def test_cli_opts_in():
    code = (
        "import json, os\nfrom keras_trust import cli\n"
        "cli.main(['presets'])\nprint(json.dumps(os.environ.get('XLA_FLAGS', '')))"
    )
    assert _run(code) == "--xla_cpu_multi_thread_eigen=false"
