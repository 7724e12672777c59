"""Package metadata and the TensorFlow-backend guard."""

import os
import subprocess
import sys

import pytest

import keras_trust as kt
from keras_trust import _backend


def test_version_is_a_string():
    assert isinstance(kt.__version__, str)
    assert kt.__version__.count(".") >= 2


def test_public_names():
    for name in kt.__all__:
        assert hasattr(kt, name), name
    for name in ("NaturalGradient", "TrustRegion"):
        assert hasattr(kt.optimizers, name)
    for name in ("fisher_vector_product", "conjugate_gradient", "backtracking_line_search"):
        assert hasattr(kt.ops, name)
    for name in ("KLPenalty", "RunningNormalization"):
        assert hasattr(kt.layers, name)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_import_fails_with_another_backend(backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", "import keras_trust"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "TensorFlow backend" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("backend", ["jax", "torch", "numpy"])
def test_check_backend_raises_value_error_naming_tensorflow(backend):
    with pytest.raises(ValueError, match="TensorFlow backend") as excinfo:
        _backend.check_backend(backend)
    assert isinstance(excinfo.value, ImportError)
    assert backend in str(excinfo.value)


def test_check_backend_accepts_tensorflow():
    _backend.check_backend("tensorflow")
