"""keras_trust turns off XLA's multi-threaded CPU matmuls at import, unless the user chose."""

import os
import subprocess
import sys

CHILD = "import os, keras_trust; print(os.environ.get('XLA_FLAGS', ''))"


def _flags_after_import(xla_flags):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def test_flag_is_added_when_unset():
    assert _flags_after_import(None) == "--xla_cpu_multi_thread_eigen=false"


def test_other_flags_are_kept():
    flags = _flags_after_import("--xla_dump_to=/tmp/nowhere")
    assert flags.split() == ["--xla_dump_to=/tmp/nowhere", "--xla_cpu_multi_thread_eigen=false"]


def test_users_own_choice_wins():
    assert _flags_after_import("--xla_cpu_multi_thread_eigen=true") == (
        "--xla_cpu_multi_thread_eigen=true"
    )
