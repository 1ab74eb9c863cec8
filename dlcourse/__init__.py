"""dlcourse: the helper package of the dense-prediction course.

Layout, one home per idea (lower layers never import higher ones, see ``tests/test_layering.py``):

- ``config``: FAST mode, the seed, and ``setup()``, the first call of every lesson;
- ``data``: the generated scenes (and the Oxford-IIIT Pet photographs) with every annotation;
  ``reference``: plain NumPy versions of the lecture's operations; ``checks``: exercise checks;
- ``layers``, ``models``: the course's Keras layers and model builders; ``metrics``: segmentation
  quality, model cost, timing; ``viz``: plots;
- ``detection``: boxes, localization, the grid detector, NMS/AP, the mask head; ``training``: the
  shared training recipes and schedules;
- ``grading``: the instructor's release/grade/check; ``course``: results, the lesson runner, the
  notebook tool and the ``dlcourse`` command.

``import dlcourse`` imports none of them, and no TensorFlow (it installs an import hook that keeps
a later first import of TensorFlow or Keras quiet, see ``dlcourse.quiet``): every subpackage is imported on first
use (``dlcourse.metrics``, ``from dlcourse import data``), so the command line, the notebook hook
and the grader start fast. A subpackage that uses Keras imports it quietly (no TensorFlow log
lines, see ``dlcourse.quiet``) and registers the Keras objects it defines under ``dlcourse>``.
To load a saved ``.keras`` model that uses course objects, use :func:`load_model` (or import the
defining subpackage first).
"""

from __future__ import annotations

import importlib

from dlcourse._version import __version__
from dlcourse.quiet import install_import_hook

install_import_hook()  # a later first `import keras` / `import tensorflow` prints no log lines

_SUBPACKAGES = frozenset(
    {
        "checks",
        "config",
        "course",
        "data",
        "detection",
        "grading",
        "layers",
        "metrics",
        "models",
        "reference",
        "training",
        "viz",
    }
)

KERAS_OBJECT_MODULES = (
    "dlcourse.layers",
    "dlcourse.models",
    "dlcourse.metrics",
    "dlcourse.detection",
)
"""The subpackages that define registered Keras objects; importing one registers its objects."""

__all__ = ["KERAS_OBJECT_MODULES", "__version__", "load_model", "register_keras_objects"]
__all__ += sorted(_SUBPACKAGES)


def register_keras_objects() -> None:
    """Register every Keras object the course defines (layers, initializers, losses, metrics).

    Imports the subpackages of :data:`KERAS_OBJECT_MODULES` (and Keras, quietly); a saved model
    that uses a course object loads with plain ``keras.saving.load_model`` afterwards.
    """
    for name in KERAS_OBJECT_MODULES:
        importlib.import_module(name)


def load_model(filepath, **kwargs):
    """``keras.saving.load_model`` after :func:`register_keras_objects`: loads any course model.

    Args:
        filepath: a ``.keras`` file.
        **kwargs: passed on to ``keras.saving.load_model`` (``compile``, ``safe_mode``, ...).
    """
    register_keras_objects()
    from dlcourse.quiet import import_keras

    return import_keras().saving.load_model(filepath, **kwargs)


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"dlcourse.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'dlcourse' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBPACKAGES)
