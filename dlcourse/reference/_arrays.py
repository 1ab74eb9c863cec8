"""Shape plumbing shared by the reference functions: accept (H, W), (H, W, C) or (N, H, W, C)."""

from __future__ import annotations

import numpy as np


def as_nhwc(x, name: str = "x"):
    """View ``x`` as (N, H, W, C) and return it with a function that restores the caller's rank.

    A 2-D array is one single-channel image, a 3-D array one image with channels last, a 4-D
    array a batch. Anything else raises ValueError.
    """
    x = np.asarray(x)
    if x.ndim == 2:
        return x[None, :, :, None], lambda y: y[0, :, :, 0]
    if x.ndim == 3:
        return x[None], lambda y: y[0]
    if x.ndim == 4:
        return x, lambda y: y
    raise ValueError(
        f"Expected `{name}` of shape (H, W), (H, W, C) or (N, H, W, C). Received: shape {x.shape}"
    )
