"""How checkered an upsampled feature map is: the spread between its stride phases.

A stride-``s`` upsampling writes output pixel ``(y, x)`` from kernel taps chosen by
``(y mod s, x mod s)``, the pixel's *phase*. When the phases get different taps (a transposed
convolution whose kernel size the stride does not divide, and even when it does), a flat input
gives an output that alternates from phase to phase: a checkerboard (Odena et al., Distill 2016).
:func:`checkerboard_strength` splits an output into its ``s × s`` phases and compares their mean
values (lesson 06).
"""

from __future__ import annotations

import numpy as np

from dlcourse.validate import positive_int

__all__ = ["checkerboard_strength"]


def checkerboard_strength(y, stride: int = 2, border: int = 4) -> float:
    """Spread of the mean of the ``stride × stride`` phases, relative to the mean magnitude.

    Per image and channel: (largest phase mean - smallest phase mean) / mean absolute value,
    averaged over the batch and the channels. 0 means no checkerboard; a flat input through a
    transposed convolution with kernel 3 and stride 2 gives about 2.

    Args:
        y: feature maps ``(N, H, W, C)`` (NumPy array or tensor).
        stride: positive int, the upsampling's stride.
        border: non-negative int, pixels left out on every side (padding effects).

    Returns:
        A non-negative float.

    Example:
    >>> flat = np.ones((1, 12, 12, 1))
    >>> checkered = flat.copy(); checkered[:, ::2, ::2] = 3.0
    >>> checkerboard_strength(flat), round(checkerboard_strength(checkered), 3)
    (0.0, 1.333)
    """
    positive_int(stride, "stride")
    if isinstance(border, bool) or not isinstance(border, int | np.integer) or border < 0:
        raise ValueError(f"Expected a non-negative int border. Received: border={border!r}")
    y = np.asarray(y)
    if y.ndim != 4 or min(y.shape[1:3]) <= 2 * border + stride:
        raise ValueError(
            f"Expected feature maps (N, H, W, C) larger than 2 * border + stride = "
            f"{2 * border + stride} pixels. Received: shape={y.shape}"
        )
    if border:
        y = y[:, border:-border, border:-border, :]
    phases = np.stack(
        [
            y[:, a::stride, b::stride, :].mean(axis=(1, 2))
            for a in range(stride)
            for b in range(stride)
        ]
    )
    return float(((phases.max(0) - phases.min(0)) / (np.abs(y).mean(axis=(1, 2)) + 1e-12)).mean())
