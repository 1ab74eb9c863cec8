"""Argument checks the whole package shares, with errors that say what was expected.

Example:
>>> positive_int(3, "epochs")
3
>>> positive_int(0, "epochs")
Traceback (most recent call last):
...
ValueError: Expected epochs to be a positive integer. Received: epochs=0
"""

from __future__ import annotations

import numbers

__all__ = ["positive_int"]


def positive_int(value, name: str) -> int:
    """``value`` as an ``int`` when it is an integer ``>= 1``; a ``ValueError`` naming it otherwise.

    NumPy integers are integers; ``True``/``False`` and floats such as ``2.0`` are not.

    Args:
        value: what the caller received.
        name: the argument's name, for the message.

    Returns:
        ``int(value)``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"Expected {name} to be a positive integer. Received: {name}={value!r}")
    return int(value)
