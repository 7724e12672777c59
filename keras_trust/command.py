"""What the `keras-trust` command does to its own process before TensorFlow loads.

`keras_trust/__init__.py` calls `prepare_command_process()` first thing: both ways of
starting the command (`python -m keras_trust` and the `keras-trust` console script)
import the package, and so TensorFlow, before any of the command's own code runs. The
module uses the standard library only, and does nothing in any other process.
"""

import os
import sys
import tempfile

# `python -m NAME` values that start the command.
COMMAND_MODULES = ("keras_trust", "keras_trust.cli")
# Python options that take a separate value (`python -X importtime -m keras_trust`).
_VALUE_OPTIONS = ("-W", "-X", "--check-hash-based-pycs")


def is_command_process(orig_argv=None, argv0=None) -> bool:
    """Whether this process was started as the `keras-trust` command.

    True for `python [options] -m keras_trust ...` (read from `sys.orig_argv`, since
    `sys.argv` is rewritten by then) and for the `keras-trust` console script; False
    for any other program that imports keras_trust, whose process is its own.
    """
    argv = list(sys.orig_argv if orig_argv is None else orig_argv)
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return i + 1 < len(argv) and argv[i + 1] in COMMAND_MODULES
        if arg.startswith("-m"):
            return arg[2:] in COMMAND_MODULES
        if arg in _VALUE_OPTIONS:
            i += 2
            continue
        if arg == "-c" or not arg.startswith("-"):
            break  # `-c CODE` or a script path
        i += 1
    script = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    for suffix in (".exe", "-script.py", "-script.pyw"):
        script = script.removesuffix(suffix)
    return script == "keras-trust"


def prepare_command_process() -> None:
    """Keeps TensorFlow's start-up logs off the command's output; a no-op elsewhere.

    TensorFlow 2.2x writes ~20 lines to stderr on import and first use (oneDNN, CUDA
    driver probing, XLA service start, "All log messages before absl::InitializeLog()
    is called..."). Most obey `TF_CPP_MIN_LOG_LEVEL` only if it is set before
    TensorFlow loads; the ones written while the native libraries load (before absl's
    logging is initialized) obey nothing. So, in the command's process only and before
    TensorFlow is imported, this sets `TF_CPP_MIN_LOG_LEVEL=3` unless the user set it,
    and imports TensorFlow with file descriptor 2 sent to a temporary file, which is
    replayed if the import fails. A user who sets `TF_CPP_MIN_LOG_LEVEL` below 3 sees
    everything. A library import of keras_trust never gets here (`is_command_process`),
    so it changes neither `os.environ` nor logging.
    """
    if "tensorflow" in sys.modules or not is_command_process():
        return
    user_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if user_level not in (None, "", "3"):
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):
        return  # no usable stderr: nothing to quiet
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
