"""Course-wide settings: FAST mode, the seed, and the one setup call at the top of every lesson.

``FAST`` is on when the environment variable ``DLCOURSE_FAST`` is true (``1``, ``true``, ``yes``,
``on``, any case: CI, ``dlcourse run --fast``, the test suite) and whenever nbgrader executes a
notebook (autograding, validation), so grading never trains full-size models. ``0``, ``false``,
``no``, ``off`` or empty turn it off; anything else is an error. :func:`env_flag` is the one parser
of such flags: the lessons (``FAST``) and ``dlcourse run`` read FAST through it.
"""

from __future__ import annotations

import os
import platform
import random

import numpy as np

SEED = 42
"""The course's default seed: every lesson and every generated data set starts from it."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_flag(name: str) -> bool:
    """The boolean environment variable ``name``: unset, ``0/false/no/off`` or empty is False,
    ``1/true/yes/on`` True (any case, surrounding spaces ignored); anything else is refused.

    Example:
    >>> os.environ["DLCOURSE_EXAMPLE"] = "Yes"
    >>> env_flag("DLCOURSE_EXAMPLE"), env_flag("DLCOURSE_UNSET_EXAMPLE")
    (True, False)
    >>> del os.environ["DLCOURSE_EXAMPLE"]
    """
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"Expected the environment variable {name} to be one of 1/true/yes/on or "
        f"0/false/no/off/empty (any case). Received: {name}={raw!r}"
    )


def is_autograding() -> bool:
    """True inside nbgrader's execution (it sets ``NBGRADER_EXECUTION``) or ``dlcourse grade``."""
    return bool(os.environ.get("NBGRADER_EXECUTION")) or env_flag("DLCOURSE_GRADING")


def fast_mode() -> bool:
    """Whether FAST mode is requested by the environment right now."""
    return env_flag("DLCOURSE_FAST") or is_autograding()


FAST = fast_mode()
"""FAST mode as the environment set it when ``dlcourse`` was imported (``setup`` may override)."""


def seed_everything(seed: int = SEED) -> None:
    """Seed Python, NumPy, and (if imported) Keras/TensorFlow."""
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"Expected a non-negative integer seed. Received: seed={seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed))  # noqa: NPY002  (students use the legacy global RNG too)
    from dlcourse.quiet import import_keras

    import_keras().utils.set_random_seed(int(seed))


def environment() -> dict:
    """A description of the software and hardware the course runs on (JSON-serialisable)."""
    from dlcourse import __version__
    from dlcourse.quiet import import_keras

    keras = import_keras()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return {
        "dlcourse": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "device": f"GPU x{len(gpus)}" if gpus else "CPU",
        "cpu_count": os.cpu_count(),
        "fast": FAST,
        "colab": in_colab(),
    }


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    import sys

    return "google.colab" in sys.modules


def setup(seed: int = SEED, fast: bool | None = None, report: bool = True) -> dict:
    """Prepare a lesson: quiet TF/Keras import, seeds, FAST mode, one-line environment report.

    Args:
        seed: seed for Python, NumPy and Keras (``keras.utils.set_random_seed``).
        fast: force FAST mode on or off; ``None`` keeps what the environment says.
        report: print the one-line report.

    Returns:
        The ``environment()`` dictionary (with ``seed`` added).
    """
    global FAST
    if fast is not None:
        FAST = bool(fast)
    seed_everything(seed)
    env = environment()
    env["seed"] = seed
    if report:
        print(
            f"dlcourse {env['dlcourse']} | TensorFlow {env['tensorflow']} | Keras {env['keras']} "
            f"({env['backend']}) | {env['device']} | {'FAST' if FAST else 'full'} mode | seed {seed}"
        )
    return env
