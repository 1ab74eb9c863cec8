"""Instant-feedback checks for exercises: strict about types, shapes and values.

A student's answer is compared with an expected array after checking that it *is* a numeric array
(NumPy array or tensor) of the right shape, so a hard-coded value of the wrong kind, or an object
whose ``__eq__`` always returns True, fails with a message that says what was expected. Types are
checked exactly (``type(x) is np.ndarray``, not ``isinstance``): an array subclass or an object
that fakes ``__class__`` could override what the comparison does.

When grading, these checks run in the trusted interpreter on plain data (see
``dlcourse.grading.trusted``); the exact types are the defence in the student's own kernel.
"""

from __future__ import annotations

import numpy as np


class CheckFailed(AssertionError):
    """An exercise check failed; the message says what was expected."""


def _as_numeric_array(value, what: str) -> np.ndarray:
    # exact types: a subclass (or an object that sets ``__class__``) can override comparisons
    if type(value) is np.ndarray:
        arr = value
    elif type(value).__module__.split(".")[0] in {
        "tensorflow",
        "keras",
        "jax",
        "torch",
    } and hasattr(value, "shape"):
        arr = np.asarray(value)
    else:
        raise CheckFailed(
            f"{what}: expected a NumPy array or a tensor. Received: {type(value).__name__}"
        )
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise CheckFailed(f"{what}: expected a numeric array. Received dtype: {arr.dtype}")
    return arr


def check_array(
    actual,
    expected,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    name: str = "answer",
    exact: bool = False,
    quiet: bool = False,
) -> None:
    """Check that ``actual`` is a numeric array equal (or close) to ``expected``.

    Args:
        actual: the student's answer (NumPy array or tensor).
        expected: the reference answer.
        rtol, atol: tolerances for floating-point answers (ignored when ``exact``).
        name: what the answer is, for the message.
        exact: require exact equality (integer results, indices, masks).
        quiet: do not print the success line.

    Raises:
        CheckFailed: with what was expected and what was received.
    """
    arr = _as_numeric_array(actual, name)
    exp = np.asarray(expected)
    if arr.shape != exp.shape:
        raise CheckFailed(f"{name}: expected shape {exp.shape}. Received: shape {arr.shape}")
    if exact:
        ok = np.array_equal(arr, exp)
    else:
        ok = np.allclose(arr.astype(np.float64), exp.astype(np.float64), rtol=rtol, atol=atol)
    if not ok:
        diff = np.abs(arr.astype(np.float64) - exp.astype(np.float64))
        worst = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
        raise CheckFailed(
            f"{name}: values differ from the expected answer (largest difference {diff.max():.4g} "
            f"at index {tuple(int(i) for i in worst)}: expected {exp[worst]!r}, got {arr[worst]!r})"
        )
    if not quiet:
        print(f"✔ {name}: correct (shape {arr.shape})")


def check_scalar(
    actual,
    expected,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    name: str = "answer",
    quiet: bool = False,
) -> None:
    """Check that ``actual`` is a real number (Python, NumPy, or 0-d array/tensor) close to ``expected``."""
    value = actual
    if isinstance(value, np.generic) and type(value).__module__ == "numpy":
        value = value.item()  # NumPy's own scalar types only, never a subclass
    elif hasattr(value, "shape") and tuple(value.shape) == ():
        value = _as_numeric_array(value, name).item()
    if type(value) not in (int, float):
        raise CheckFailed(f"{name}: expected a number. Received: {type(actual).__name__}")
    value = float(value)
    if not np.isclose(value, float(expected), rtol=rtol, atol=atol):
        raise CheckFailed(f"{name}: expected {float(expected):.6g}. Received: {value:.6g}")
    if not quiet:
        print(f"✔ {name}: correct ({value:.6g})")


def check_true(condition, message: str, *, name: str = "answer", quiet: bool = False) -> None:
    """Check a boolean property (a real ``bool``/``np.bool_``, not just something truthy)."""
    if type(condition) not in (bool, np.bool_):
        raise CheckFailed(
            f"{name}: the check did not evaluate to a bool ({type(condition).__name__})"
        )
    if not condition:
        raise CheckFailed(f"{name}: {message}")
    if not quiet:
        print(f"✔ {name}: correct")
