"""Unpooling, the naive way: nearest neighbour, bed of nails, and max unpooling with switches.

Shapes: every function accepts one image ``(H, W)`` or ``(H, W, C)`` or a batch ``(N, H, W, C)``
and returns the same rank. A *switch* is the flat index, within one sample, of the input element
a pooled value came from: ``(y * W + x) * C + c`` (``C = 1`` for a 2-D image), which is what
``tf.nn.max_pool_with_argmax(..., include_batch_in_index=False)`` returns.
"""

from __future__ import annotations

import numpy as np

from dlcourse.reference._arrays import as_nhwc
from dlcourse.reference.sizes import check_padding, conv_output_size, pair, same_padding


def nearest_unpool(x, size=2):
    """Nearest-neighbour unpooling: copy every pixel into a ``size × size`` block.

    Args:
        x: array (H, W), (H, W, C) or (N, H, W, C).
        size: int or (sh, sw), the upsampling factor.

    Returns:
        Array (H*sh, W*sw[, C]) (batch kept), same dtype as ``x``.

    Example:
        >>> nearest_unpool(np.array([[1, 2], [3, 4]]), 2)
        array([[1, 1, 2, 2],
               [1, 1, 2, 2],
               [3, 3, 4, 4],
               [3, 3, 4, 4]])
    """
    sh, sw = pair(size, "size")
    x4, restore = as_nhwc(x)
    return restore(x4.repeat(sh, axis=1).repeat(sw, axis=2))


def bed_of_nails_unpool(x, size=2):
    """Bed-of-nails unpooling: each pixel goes to the top-left corner of its block, zeros elsewhere.

    Args:
        x: array (H, W), (H, W, C) or (N, H, W, C).
        size: int or (sh, sw), the upsampling factor.

    Returns:
        Array (H*sh, W*sw[, C]) (batch kept), same dtype as ``x``.

    Example:
        >>> bed_of_nails_unpool(np.array([[1, 2], [3, 4]]), 2)
        array([[1, 0, 2, 0],
               [0, 0, 0, 0],
               [3, 0, 4, 0],
               [0, 0, 0, 0]])
    """
    sh, sw = pair(size, "size")
    x4, restore = as_nhwc(x)
    n, h, w, c = x4.shape
    out = np.zeros((n, h * sh, w * sw, c), dtype=x4.dtype)
    out[:, ::sh, ::sw, :] = x4
    return restore(out)


def max_pool_with_switches(x, pool_size=2, strides=None, padding="valid"):
    """Max pooling that also returns *where* each maximum was (the switches).

    Windows are visited like TensorFlow does: with "same" padding the input is padded with
    ``-inf`` (the smaller half of the padding before), so padding never wins; inside a window
    (row-major order) the running maximum starts at the first element in the image and moves
    only to a *strictly* larger one, so the first maximum wins a tie, every window has exactly
    one switch, and a NaN wins only if it comes first (as in ``tf.nn.max_pool_with_argmax``).

    Args:
        x: array (H, W), (H, W, C) or (N, H, W, C).
        pool_size: int or (ph, pw), the window.
        strides: int or (sh, sw); default ``pool_size``.
        padding: "valid" or "same".

    Returns:
        ``(pooled, switches)``, both (Ho, Wo[, C]) (batch kept); ``switches`` are int64 flat
        indices ``(y * W + x) * C + c`` within one sample.

    Example (worked by hand; ``tests/test_reference.py`` checks the same numbers against
    ``tf.nn.max_pool_with_argmax``):
        >>> x = np.array([[1, 2, 5, 3], [4, 0, 1, 6], [7, 8, 2, 2], [3, 9, 0, 1]])
        >>> pooled, switches = max_pool_with_switches(x, 2)
        >>> pooled
        array([[4, 6],
               [9, 2]])
        >>> switches
        array([[ 4,  7],
               [13, 10]])
    """
    ph, pw = pair(pool_size, "pool_size")
    sh, sw = pair(pool_size if strides is None else strides, "strides")
    padding = check_padding(padding)
    x4, restore = as_nhwc(x)
    n, h, w, c = x4.shape
    ho, wo = conv_output_size(h, ph, sh, padding), conv_output_size(w, pw, sw, padding)
    top, left = (
        (same_padding(h, ph, sh)[0], same_padding(w, pw, sw)[0]) if padding == "same" else (0, 0)
    )
    pooled = np.empty((n, ho, wo, c), dtype=x4.dtype)
    switches = np.empty((n, ho, wo, c), dtype=np.int64)
    channel = np.arange(c)
    for i in range(ho):
        for j in range(wo):
            # The window, clipped to the image (TensorFlow's -inf padding never wins).
            y0, x0 = max(i * sh - top, 0), max(j * sw - left, 0)
            y1, x1 = min(i * sh - top + ph, h), min(j * sw - left + pw, w)
            window = x4[:, y0:y1, x0:x1, :].reshape(n, -1, c)  # (N, positions, C)
            # Start from the first element; move only to a strictly larger one.
            best, k = window[:, 0, :], np.zeros((n, c), dtype=np.int64)
            for m in range(1, window.shape[1]):
                larger = window[:, m, :] > best
                best, k = np.where(larger, window[:, m, :], best), np.where(larger, m, k)
            pooled[:, i, j, :] = best
            y, xx = y0 + k // (x1 - x0), x0 + k % (x1 - x0)
            switches[:, i, j, :] = (y * w + xx) * c + channel
    return restore(pooled), restore(switches)


def max_unpool(pooled, switches, output_shape):
    """Max unpooling: put each pooled value back where its switch says, zeros elsewhere.

    Values whose switches coincide (overlapping windows) are summed: max unpooling is the
    transpose of max pooling's selection, the same operation as max pooling's gradient.

    Args:
        pooled: array (Ho, Wo), (Ho, Wo, C) or (N, Ho, Wo, C).
        switches: integer array of the same shape, flat indices ``(y * W + x) * C + c``.
        output_shape: the unpooled shape: (H, W), or the full shape with the rank of ``pooled``.

    Returns:
        Array of ``output_shape`` (full rank), dtype of ``pooled``.

    Raises:
        ValueError: if shapes do not match, or a switch is outside the output or points at a
            different channel than the value's (switches of another tensor).

    Example:
        >>> max_unpool(np.array([[10, 20], [30, 40]]), np.array([[4, 7], [13, 10]]), (4, 4))
        array([[ 0,  0,  0,  0],
               [10,  0,  0, 20],
               [ 0,  0, 40,  0],
               [ 0, 30,  0,  0]])
    """
    pooled, switches = np.asarray(pooled), np.asarray(switches)
    if pooled.shape != switches.shape:
        raise ValueError(
            f"Expected `switches` of the shape of `pooled` {pooled.shape}. Received: {switches.shape}"
        )
    if not np.issubdtype(switches.dtype, np.integer):
        raise ValueError(f"Expected integer `switches`. Received dtype: {switches.dtype}")
    p4, restore = as_nhwc(pooled, "pooled")
    s4, _ = as_nhwc(switches, "switches")
    n, _, _, c = p4.shape
    h, w = _spatial_output_shape(output_shape, pooled.shape)
    if s4.size and (s4.min() < 0 or s4.max() >= h * w * c or np.any(s4 % c != np.arange(c))):
        raise ValueError(
            f"`switches` do not belong to a ({h}, {w}) output with {c} channels: every switch "
            f"must be in [0, {h * w * c}) and point at its own channel."
        )
    out = np.zeros((n, h * w * c), dtype=p4.dtype)
    for sample in range(n):
        # np.add.at sums repeated indices (a plain `out[s] += v` would keep only one of them).
        np.add.at(out[sample], s4[sample].ravel(), p4[sample].ravel())
    return restore(out.reshape(n, h, w, c))


def _spatial_output_shape(output_shape, pooled_shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in output_shape)
    if len(shape) == 2:
        return shape
    if len(shape) == len(pooled_shape) and len(shape) in (3, 4):
        spatial = (1, 2) if len(shape) == 4 else (0, 1)
        others = [d for i, d in enumerate(shape) if i not in spatial]
        if others == [d for i, d in enumerate(pooled_shape) if i not in spatial]:
            return shape[spatial[0]], shape[spatial[1]]
    raise ValueError(
        f"Expected `output_shape` (H, W) or the full shape with the batch size and channels of "
        f"`pooled` {tuple(pooled_shape)}. Received: output_shape={output_shape!r}"
    )
