"""Refuse to run on a Keras backend other than TensorFlow, before Keras is imported."""

import os


class BackendError(ImportError, ValueError):
    """Raised when Keras is configured for a backend other than TensorFlow."""


def check_backend(backend: str | None = None) -> None:
    """Raises `BackendError` unless the Keras backend is TensorFlow.

    Args:
        backend: backend name to check. Defaults to `$KERAS_BACKEND`, then the
            backend Keras itself reports.
    """
    if backend is None:
        backend = os.environ.get("KERAS_BACKEND") or None
    if backend is None:
        import keras

        backend = keras.backend.backend()
    if backend != "tensorflow":
        raise BackendError(
            "keras_trust needs the TensorFlow backend of Keras, but the Keras backend is "
            f"'{backend}'. Set KERAS_BACKEND=tensorflow (or unset it). Received: "
            f"backend={backend!r}"
        )
