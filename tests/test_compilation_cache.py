"""`kt.performance.persistent_compilation_cache`: XLA executables reused across processes."""

import json
import os
import subprocess
import sys

CHILD = r"""
import hashlib, json, os, sys
import numpy as np
import keras_trust as kt
used = kt.performance.persistent_compilation_cache(sys.argv[1])
agent = kt.PPO(n_envs=2, n_steps=64, batch_size=64, epochs=2)
agent.fit("CartPole-v1", 2 * 128, verbose=0, seed=3)
digest = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in agent.get_weights()))
print(json.dumps([used, os.environ["TF_XLA_FLAGS"], digest.hexdigest()]))
"""


def _run(directory, env=None):
    full = {k: v for k, v in os.environ.items() if k != "TF_XLA_FLAGS"}
    full.update(TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(directory)],
        capture_output=True,
        text=True,
        env=full,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _entries(directory):
    return {name: os.path.getmtime(directory / name) for name in os.listdir(directory)}


def test_a_second_process_loads_the_compiled_functions_and_trains_identically(tmp_path):
    cache = tmp_path / "xla"
    used, flags, first = _run(cache)
    assert used == str(cache) and flags == f"--tf_xla_persistent_cache_directory={cache}"
    written = _entries(cache)
    assert written and all(name.startswith("xla_compile_cache") for name in written)
    _, _, second = _run(cache)
    # Nothing was compiled again (no new or rewritten entry) and the run is the same.
    assert _entries(cache) == written
    assert second == first


def test_an_explicit_choice_in_tf_xla_flags_is_left_alone(tmp_path):
    mine = f"--tf_xla_persistent_cache_directory={tmp_path / 'mine'}"
    used, flags, _ = _run(tmp_path / "ignored", {"TF_XLA_FLAGS": mine})
    assert used is None and flags == mine
    assert not (tmp_path / "ignored").exists()
