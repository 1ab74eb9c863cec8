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


QUIET_PACKAGES = ("tensorflow", "keras")
"""Top-level packages whose first import :func:`install_import_hook` silences."""


class _QuietLoader:
    """Runs another loader's ``exec_module`` with descriptor 2 silenced, then steps aside."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            with silenced_stderr_fd():
                self._loader.exec_module(module)
        finally:  # the module keeps its real loader (importlib.resources, reloads, pickling)
            module.__loader__ = self._loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._loader
        _lower_python_logging()


class _QuietImportFinder:
    """A ``sys.meta_path`` finder: the first import of TensorFlow or Keras runs silenced."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in QUIET_PACKAGES or fullname in sys.modules:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _QuietLoader(spec.loader)
        return spec


def _lower_python_logging() -> None:
    if "absl.logging" in sys.modules:
        sys.modules["absl.logging"].set_verbosity(sys.modules["absl.logging"].ERROR)
    if "tensorflow" in sys.modules and hasattr(sys.modules["tensorflow"], "get_logger"):
        sys.modules["tensorflow"].get_logger().setLevel("ERROR")


def install_import_hook() -> None:
    """Make a later first ``import keras`` / ``import tensorflow`` quiet, whoever writes it.

    ``import dlcourse`` calls this, so a lesson whose setup cell imports ``dlcourse`` first stays
    silent in a plain Jupyter kernel whatever order its other imports (or the student's) take.
    Installing twice is harmless; nothing changes once both packages are imported.
    """
    if not any(isinstance(finder, _QuietImportFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImportFinder())
