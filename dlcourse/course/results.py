"""The figures a lesson reaches, published for ``dlcourse run`` and the README table.

A lesson calls ``record("test_accuracy", acc)`` in the cell that computes the figure. Inside
``dlcourse run`` the environment variable ``DLCOURSE_RESULTS_FILE`` names a JSON file that every
call rewrites, so the runner reads the figures even when a later cell fails.
"""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np

RESULTS_FILE_ENV = "DLCOURSE_RESULTS_FILE"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_figures: dict[str, float | int | str | bool] = {}


def _plain(name: str, value):
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"Expected a finite number for figure {name!r}. Received: {value!r}")
        return value
    if isinstance(value, str):
        return value
    if hasattr(value, "numpy") and getattr(value, "shape", None) == ():
        return _plain(name, value.numpy())
    if isinstance(value, np.ndarray) and value.shape == ():
        return _plain(name, value.item())
    raise ValueError(
        f"Expected a number, bool or string for figure {name!r}. "
        f"Received: {type(value).__name__} {value!r}"
    )


def record(name: str, value):
    """Publish one figure of the lesson and return ``value`` unchanged.

    Args:
        name: snake_case identifier such as ``"test_accuracy"``.
        value: a finite number (Python, NumPy or 0-d tensor), bool or string.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"Expected a snake_case figure name like 'test_accuracy'. Received: {name!r}"
        )
    _figures[name] = _plain(name, value)
    path = os.environ.get(RESULTS_FILE_ENV)
    if path:
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(_figures, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    return value


def recorded() -> dict:
    """A copy of every figure recorded in this process so far."""
    return dict(_figures)


def clear() -> None:
    """Forget the recorded figures (tests use it)."""
    _figures.clear()
