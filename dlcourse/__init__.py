"""dlcourse: the helper package of the dense-prediction course.

``import dlcourse`` imports Keras quietly (no TensorFlow log lines, see ``dlcourse._quiet``) and
registers the course's layers under the ``dlcourse>`` prefix, so a saved ``.keras`` model that
uses them loads again. Everything else (data, plots, models, grading) is imported on first use:
``dlcourse.data`` works without importing matplotlib, and the grading tools never import tfds.
"""

from __future__ import annotations

import importlib

from dlcourse import config, results
from dlcourse._quiet import import_keras as _import_keras
from dlcourse._version import __version__

_import_keras()

from dlcourse import layers  # noqa: E402  (registers the Keras layers; needs Keras first)

_LAZY = {
    "boxes",
    "data",
    "grading",
    "localization",
    "metrics",
    "models",
    "reference",
    "runner",
    "viz",
    "checks",
}

__all__ = ["__version__", "config", "layers", "results", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"dlcourse.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'dlcourse' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY)
