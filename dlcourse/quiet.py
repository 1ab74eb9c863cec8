"""Import TensorFlow and Keras without their C-level log lines.

TensorFlow 2.21 prints oneDNN/cudart/absl lines from C++ straight to file descriptor 2 while it is
imported; ``TF_CPP_MIN_LOG_LEVEL=3`` does not remove all of them, and Jupyter turns them into stderr
outputs (nbval, which captures differently, never sees them). Pointing descriptor 2 at /dev/null
for the duration of the import is what silences them in both (how that was checked:
docs/MEASUREMENTS.md; ``tests/test_packaging.py`` keeps checking it, with plain ``import tensorflow``
as the control that still prints).
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def silenced_stderr_fd():
    """Point file descriptor 2 at /dev/null inside the block, then restore it."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (some embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_keras():
    """Import TensorFlow and Keras quietly (once) and return the ``keras`` module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "keras" not in sys.modules or "tensorflow" not in sys.modules:
        with silenced_stderr_fd():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    import absl.logging
    import keras
    import tensorflow as tf

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")
    return keras
