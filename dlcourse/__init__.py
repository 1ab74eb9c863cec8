"""dlcourse: the helper package of the dense-prediction course.

``import dlcourse`` imports Keras quietly (no TensorFlow log lines, see ``dlcourse._quiet``) and
registers every Keras object the course defines (layers, initializers, losses, metrics) under the
``dlcourse>`` prefix, so a saved ``.keras`` model that uses them loads again. The rest (data,
plots, reference implementations, the runner, grading) is imported on first use, so
``import dlcourse`` never pulls in tensorflow-datasets, nbclient or nbgrader.
"""

from __future__ import annotations

import importlib

from dlcourse import config, results
from dlcourse._quiet import import_keras as _import_keras
from dlcourse._version import __version__

_import_keras()

# These modules define registered Keras objects; importing them registers them (Keras first).
from dlcourse import grid_detector, layers, localization, metrics, models  # noqa: E402

_LAZY = {
    "boxes",
    "checks",
    "data",
    "detection",
    "grading",
    "grid_targets",
    "notebooks",
    "reference",
    "runner",
    "viz",
}

__all__ = [
    "__version__",
    "config",
    "grid_detector",
    "layers",
    "localization",
    "metrics",
    "models",
    "results",
    *sorted(_LAZY),
]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"dlcourse.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'dlcourse' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY)
