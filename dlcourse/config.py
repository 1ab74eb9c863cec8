"""Course-wide settings: FAST mode, the seed, and the one setup call at the top of every lesson.

FAST mode (small data, few epochs) is decided by :func:`decide_fast`, in this order: grading
(nbgrader's execution, ``dlcourse grade``) is always FAST; ``DLCOURSE_FAST=1`` / ``0`` (CI,
``dlcourse run --fast``) decides; otherwise FAST unless a GPU is present, because full mode is
sized for a GPU. A notebook's parameters cell may still say ``FAST = False``; the lesson's
choices follow that variable.
:func:`env_flag` is the one parser of such boolean variables (``1/true/yes/on``,
``0/false/no/off`` or empty, any case; anything else is an error).
"""

from __future__ import annotations

import os
import platform
import random
import sys
from pathlib import Path

import numpy as np

SEED = 42
"""The course's default seed: every lesson and every generated data set starts from it."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
FAST_VARIABLE = "DLCOURSE_FAST"


def default_cache_dir() -> Path:
    """``$DLCOURSE_CACHE`` if set, else ``~/.cache/dlcourse``: where lessons share trained rows."""
    return Path(os.environ.get("DLCOURSE_CACHE") or Path.home() / ".cache" / "dlcourse")


def comparison_cache_dir(root=None) -> Path:
    """``<root>/upsampling``, ``root`` defaulting to :func:`default_cache_dir`: the folder where
    lessons 05–06 share their comparison's rows and trained models.

    Example:
    >>> comparison_cache_dir("/tmp/cache").as_posix()
    '/tmp/cache/upsampling'
    """
    return Path(default_cache_dir() if root is None else root) / "upsampling"


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
    if value in _FALSE or not value:
        return False
    raise ValueError(
        f"Expected the environment variable {name} to be one of 1/true/yes/on or "
        f"0/false/no/off/empty (any case). Received: {name}={raw!r}"
    )


def is_autograding() -> bool:
    """True inside nbgrader's execution (it sets ``NBGRADER_EXECUTION``) or ``dlcourse grade``."""
    return bool(os.environ.get("NBGRADER_EXECUTION")) or env_flag("DLCOURSE_GRADING")


def decide_fast(variable: str | None, autograding: bool, gpus: int) -> tuple[bool, str]:
    """``(fast, why)`` from the ``DLCOURSE_FAST`` value, grading, and the number of GPUs.

    >>> decide_fast(None, False, 0)
    (True, 'no GPU; DLCOURSE_FAST=0 or FAST = False for full mode')
    >>> decide_fast("0", False, 0)
    (False, 'DLCOURSE_FAST=0')
    """
    if autograding:
        return True, "grading"
    value = (variable or "").strip().lower()
    if value in _TRUE:
        return True, f"{FAST_VARIABLE}={variable.strip()}"
    if value in _FALSE:
        return False, f"{FAST_VARIABLE}={variable.strip()}"
    if value:
        raise ValueError(
            f"Expected the environment variable {FAST_VARIABLE} to be one of 1/true/yes/on or "
            f"0/false/no/off/empty (any case; unset or empty: FAST without a GPU). "
            f"Received: {FAST_VARIABLE}={variable!r}"
        )
    if gpus:
        return False, f"GPU x{gpus}; {FAST_VARIABLE}=1 or FAST = True for FAST mode"
    return True, f"no GPU; {FAST_VARIABLE}=0 or FAST = False for full mode"


def gpu_count() -> int:
    """The GPUs TensorFlow sees (imports TensorFlow, quietly)."""
    from dlcourse.quiet import import_keras

    import_keras()
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def _nvidia_devices() -> int:
    # Before TensorFlow is imported (``import dlcourse`` stays fast): the NVIDIA device files.
    return len([p for p in Path("/dev").glob("nvidia[0-9]*")])


def fast_mode(gpus: int | None = None) -> bool:
    """Whether FAST mode applies (see :func:`decide_fast`); ``gpus=None`` asks TensorFlow."""
    if gpus is None and (is_autograding() or os.environ.get(FAST_VARIABLE, "").strip()):
        gpus = 0  # decided without looking at the devices
    return decide_fast(
        os.environ.get(FAST_VARIABLE), is_autograding(), gpu_count() if gpus is None else gpus
    )[0]


FAST = decide_fast(os.environ.get(FAST_VARIABLE), is_autograding(), _nvidia_devices())[0]
"""FAST mode as decided when ``dlcourse`` was imported; ``setup`` decides again with the devices
TensorFlow sees (and may be told ``fast=``)."""


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
        fast: force FAST mode on or off; ``None``: :func:`decide_fast` with TensorFlow's GPUs.
        report: print the one-line report.

    Returns:
        The ``environment()`` dictionary (with ``seed`` added).
    """
    global FAST
    seed_everything(seed)
    if fast is not None:
        FAST, why = bool(fast), "setup(fast=...)"
    else:
        FAST, why = decide_fast(os.environ.get(FAST_VARIABLE), is_autograding(), gpu_count())
    env = environment()
    env["seed"] = seed
    # also while grading: the grader's guard takes its snapshot after the setup cells, so the
    # course's own handler is not a change (docs/grading.md)
    install_exception_display()
    if report:
        print(
            f"dlcourse {env['dlcourse']} | TensorFlow {env['tensorflow']} | Keras {env['keras']} "
            f"({env['backend']}) | {env['device']} | {'FAST' if FAST else 'full'} mode ({why}) "
            f"| seed {seed}"
        )
    return env


STUB_MESSAGE = "write your answer here: replace `raise NotImplementedError()` with your code"
"""What an untouched exercise stub says in the notebook instead of a bare NotImplementedError."""


def _raised_in_notebook(tb) -> bool:
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = (
        tb.tb_frame.f_code.co_filename
    )  # a cell: "<ipython-input-...>", ".../ipykernel_N/..."
    return filename.startswith("<") or "ipykernel_" in filename


def _is_check_failure(etype) -> bool:
    # By name: config sits below dlcourse.checks and does not import it (tests/test_layering.py).
    return any(
        c.__module__ == "dlcourse.checks" and c.__name__ == "CheckFailed" for c in etype.__mro__
    )


def _one_line_error(shell, etype, value, tb, tb_offset=None):
    """IPython custom-exception handler: a failed check or an untouched stub in one line."""
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb  # %debug still works
    if _is_check_failure(etype):
        stb = [f"{etype.__name__}: {value}"]
    elif issubclass(etype, NotImplementedError) and not str(value) and _raised_in_notebook(tb):
        stb = [f"{etype.__name__}: {STUB_MESSAGE}"]
    else:  # any other AssertionError or NotImplementedError: the usual traceback
        stb = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    shell._showtraceback(etype, value, stb)  # an error output: the cell fails, Run All stops
    return stb


def install_exception_display() -> bool:
    """In IPython, show a failed check (and an untouched stub) as one line, without library frames.

    The exception is still raised: the cell fails, Run All stops there, and grading scores the
    cell 0. Returns whether an IPython shell was there to install it in.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    # CheckFailed is an AssertionError; other assertions keep their usual traceback
    shell.set_custom_exc((AssertionError, NotImplementedError), _one_line_error)
    return True
