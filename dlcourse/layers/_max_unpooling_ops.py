"""The computation behind ``MaxPoolingWithArgmax2D`` and ``MaxUnpooling2D``, on tensors.

``keras.ops`` only, so it also compiles with XLA (which Keras switches on by default on a GPU and
which cannot compile ``tf.nn.max_pool_with_argmax``), and it works when height and width are
unknown (sizes are then scalar tensors; see ``_geometry``).

Pooling views the input as blocks ``(N, Hb, sh, Wb, sw, C)``, so that the candidates for one
window position are a plain slice, and keeps a running maximum over the window positions that
moves only to a strictly larger value, recording where it moved (TensorFlow's rule: the first
maximum wins a tie). Unpooling selects, for every window position, the values whose switch points
there, and interleaves them back into the block layout: no scatter, no transpose. The gradient of
the pooled values is defined as unpooling the upstream gradient with the same switches, so it
reaches exactly the one input per window that the switch names (``ops.max_pool``'s own gradient
may split ties or pick another maximum, depending on the device).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from dlcourse.layers._geometry import (
    flat_index_base,
    is_static,
    maximum0,
    pad_before,
    pooled_size,
    spatial_dims,
)

INDEX_DTYPES = ("int32", "int64")


def _window_positions(pool_size):
    return [(a, b) for a in range(pool_size[0]) for b in range(pool_size[1])]


def _pad_or_crop(x, before, total, axis, value=0.0):
    """Along spatial ``axis`` (1 or 2): pad ``before`` in front, then pad or crop to ``total``."""
    size = ops.shape(x)[axis]
    after = total - before - size
    if is_static(before, after) and before == 0 and after == 0:
        return x
    widths = [[0, 0], [0, 0], [0, 0], [0, 0]]
    widths[axis] = [before, maximum0(after)]
    if not (is_static(before, after) and before == 0 and after <= 0):
        x = ops.pad(x, widths, constant_values=value)
    if is_static(after) and after >= 0:
        return x
    return x[:, :total] if axis == 1 else x[:, :, :total]


def _geometry(h, w, ho, wo, pool_size, strides, padding):
    """Padding before the input and the block grid (Hb, Wb) that holds every window."""
    pads = (
        pad_before(h, ho, pool_size[0], strides[0], padding),
        pad_before(w, wo, pool_size[1], strides[1], padding),
    )
    # A window spans ceil(pool / stride) blocks; Hb blocks of `stride` rows cover all windows.
    extra = ((pool_size[0] - 1) // strides[0], (pool_size[1] - 1) // strides[1])
    return pads, extra, (ho + extra[0], wo + extra[1])


def _first_valid_masks(ho, wo, pads, pool_size, strides):
    """``first(a, b)``: (Ho, Wo, 1) mask of the windows whose first position inside the image is
    (a, b), or None when every window starts inside (no padding before the input)."""
    if is_static(*pads) and pads == (0, 0):
        return None
    # Window i starts at row i * stride - pad; its first row inside the image is max(0, pad - i * s).
    rows = ops.maximum(ops.cast(pads[0], "int32") - ops.arange(ho, dtype="int32") * strides[0], 0)
    cols = ops.maximum(ops.cast(pads[1], "int32") - ops.arange(wo, dtype="int32") * strides[1], 0)

    def first(a, b):
        mask = ops.logical_and(ops.equal(rows, a)[:, None], ops.equal(cols, b)[None, :])
        return mask[:, :, None]

    return first


def _windows(x, size, pooled, pool_size, strides, padding, fill, dtype):
    """Yield ``(offset, candidates)`` for every window position ``(a, b)`` in row-major order.

    ``candidates`` (N, Ho, Wo, C) holds the element of ``x`` (N, H, W, C) at position ``(a, b)``
    of every window (``fill`` where that is padding); ``offset`` is the position's flat-index
    offset ``(a * W + b) * C`` from the window's top-left corner.
    """
    (h, w), (ho, wo), c = size, pooled, ops.shape(x)[3]
    pads, extra, blocks = _geometry(h, w, ho, wo, pool_size, strides, padding)
    padded = _pad_or_crop(x, pads[0], blocks[0] * strides[0], axis=1, value=fill)
    padded = _pad_or_crop(padded, pads[1], blocks[1] * strides[1], axis=2, value=fill)
    grid = ops.reshape(padded, (-1, blocks[0], strides[0], blocks[1], strides[1], c))
    w_c, c_ = ops.cast(w, dtype) * ops.cast(c, dtype), ops.cast(c, dtype)
    for a, b in _window_positions(pool_size):
        (qa, ra), (qb, rb) = divmod(a, strides[0]), divmod(b, strides[1])
        candidates = grid[:, :, ra, :, rb, :]
        if extra != (0, 0):  # overlapping windows: position (a, b) of window i is block i + qa
            candidates = candidates[:, qa : qa + ho, qb : qb + wo, :]
        yield ops.cast(a, dtype) * w_c + ops.cast(b, dtype) * c_, candidates


def _window_offsets(switches, size, pool_size, strides, padding):
    """``switches`` minus the flat index of their window's top-left corner: (N, Ho, Wo, C)."""
    (h, w), (ho, wo, c) = size, spatial_dims(switches)
    pads, _, _ = _geometry(h, w, ho, wo, pool_size, strides, padding)
    dtype = keras.backend.standardize_dtype(switches.dtype)
    return switches - flat_index_base(ho, wo, w, c, strides, pads, dtype)


def max_pool_with_switches(x, pool_size, strides, padding, index_dtype="int32"):
    """``(pooled, switches)`` of a channels-last 4-D tensor (the layer's computation).

    ``pool_size`` and ``strides`` are pairs, ``padding`` is "valid" or "same".
    """
    h, w, c = spatial_dims(x)
    ho = pooled_size(h, pool_size[0], strides[0], padding)
    wo = pooled_size(w, pool_size[1], strides[1], padding)
    pads, _, _ = _geometry(h, w, ho, wo, pool_size, strides, padding)

    @ops.custom_gradient
    def pool(x):
        first = _first_valid_masks(ho, wo, pads, pool_size, strides)
        positions = _window_positions(pool_size)
        windows = _windows(x, (h, w), (ho, wo), pool_size, strides, padding, -np.inf, index_dtype)
        # TensorFlow's rule: start from the window's first element inside the image and move
        # only to a strictly larger one, so the first maximum wins a tie (and a NaN only wins
        # if it comes first, as in tf.nn.max_pool_with_argmax). Padding is -inf: never larger.
        _, best = next(windows)
        offsets = ops.zeros_like(best, dtype=index_dtype)
        for (a, b), (offset, candidates) in zip(positions[1:], windows, strict=True):
            better = ops.greater(candidates, best)
            if first is not None:  # windows cut by the top/left padding start further in
                better = ops.logical_or(better, first(a, b))
            best = ops.where(better, candidates, best)
            offsets = ops.where(better, offset, offsets)
        base = flat_index_base(ho, wo, w, c, strides, pads, index_dtype)
        switches = offsets + base

        def grad(*args, upstream=None):
            g = _first_upstream(args, upstream)
            if g is None:
                return ops.zeros_like(x)
            return max_unpool(g, switches, (h, w), pool_size, strides, padding)

        return (best, switches), grad

    return pool(x)


def max_unpool(values, switches, output_size, pool_size, strides, padding):
    """Write ``values`` (N, Ho, Wo, C) back at their ``switches``: (N, H, W, C), zeros elsewhere.

    ``output_size`` is ``(H, W)`` (ints or scalar tensors). Values of overlapping windows that
    share a switch are summed (the transpose of pooling, like ``tf.scatter_nd``). The gradient
    with respect to ``values`` reads the upstream gradient at the switches, window position by
    window position (no autodiff through the interleaving, which would hold more memory).
    """
    offsets = _window_offsets(switches, output_size, pool_size, strides, padding)

    @ops.custom_gradient
    def unpool(values):
        def grad(*args, upstream=None):
            g = _first_upstream(args, upstream)
            pooled = spatial_dims(values)[:2]
            gathered = ops.zeros_like(values)
            windows = _windows(
                g, output_size, pooled, pool_size, strides, padding, 0.0, offsets.dtype
            )
            for offset, candidates in windows:
                gathered = ops.where(ops.equal(offsets, offset), candidates, gathered)
            return gathered

        return _interleave(values, offsets, output_size, pool_size, strides, padding), grad

    return unpool(values)


def _interleave(values, offsets, output_size, pool_size, strides, padding):
    """Each value at the window position its offset names, interleaved into (N, H, W, C)."""
    h, w = output_size
    ho, wo, c = spatial_dims(values)
    pads, extra, blocks = _geometry(h, w, ho, wo, pool_size, strides, padding)
    dtype = offsets.dtype
    w_c = ops.cast(w, dtype) * ops.cast(c, dtype)
    zero = ops.zeros((), values.dtype)
    slots = {}  # (row, column) inside a block -> values that land there, (N, Hb, Wb, C)
    for a, b in _window_positions(pool_size):
        target = ops.cast(a, dtype) * w_c + ops.cast(b, dtype) * ops.cast(c, dtype)
        part = ops.where(ops.equal(offsets, target), values, zero)
        (qa, ra), (qb, rb) = divmod(a, strides[0]), divmod(b, strides[1])
        if extra != (0, 0):
            part = ops.pad(part, [[0, 0], [qa, extra[0] - qa], [qb, extra[1] - qb], [0, 0]])
        slots[ra, rb] = part if (ra, rb) not in slots else slots[ra, rb] + part
    empty = None
    rows = []
    for ra in range(strides[0]):
        row = []
        for rb in range(strides[1]):
            if (ra, rb) not in slots:  # strides larger than the window: gaps stay zero
                empty = ops.zeros_like(slots[0, 0]) if empty is None else empty
            row.append(slots.get((ra, rb), empty))
        rows.append(ops.stack(row, axis=3))
    grid = ops.stack(rows, axis=2)  # (N, Hb, sh, Wb, sw, C)
    full = ops.reshape(grid, (-1, blocks[0] * strides[0], blocks[1] * strides[1], c))
    # `full` starts `pads` before the output; cut that, and pad or crop to (H, W).
    full = _pad_or_crop(full, 0, pads[0] + h, axis=1)
    full = _pad_or_crop(full, 0, pads[1] + w, axis=2)
    if not (is_static(*pads) and pads == (0, 0)):
        full = full[:, pads[0] :, pads[1] :, :]
    return full


def _first_upstream(args, upstream):
    """The upstream gradient of a custom gradient's first output (backends pass it differently)."""
    upstream = args if upstream is None else upstream
    return upstream[0] if isinstance(upstream, list | tuple) else upstream


def check_switches(switches, output_size, channels, pool_size, strides, padding):
    """Raise ValueError unless every switch points into its own window and channel (NumPy)."""
    s = np.asarray(switches).astype(np.int64)
    h, w = (int(v) for v in output_size)
    _, ho, wo, c = s.shape
    if c != channels:
        raise ValueError(f"Expected switches with {channels} channels. Received shape {s.shape}")
    if ho != pooled_size(h, pool_size[0], strides[0], padding) or wo != pooled_size(
        w, pool_size[1], strides[1], padding
    ):
        raise ValueError(
            f"Pooling a {h}×{w} tensor (pool_size={pool_size}, strides={strides}, "
            f"padding={padding!r}) does not give the {ho}×{wo} grid of the values to unpool."
        )
    y, rest = np.divmod(s, w * c)
    x, channel = np.divmod(rest, c)
    y0 = np.arange(ho)[:, None, None] * strides[0] - pad_before(
        h, ho, pool_size[0], strides[0], padding
    )
    x0 = np.arange(wo)[None, :, None] * strides[1] - pad_before(
        w, wo, pool_size[1], strides[1], padding
    )
    inside = (
        (s >= 0)
        & (s < h * w * c)
        & (channel == np.arange(c))
        & (y >= y0)
        & (y < y0 + pool_size[0])
        & (x >= x0)
        & (x < x0 + pool_size[1])
    )
    if not inside.all():
        raise ValueError(
            f"{int((~inside).sum())} of {s.size} switches do not point into their own pooling "
            f"window of a {h}×{w}×{c} tensor, so they do not belong to the tensor being unpooled. "
            "Use the switches of the MaxPoolingWithArgmax2D (same pool_size, strides, padding) "
            "whose output you unpool, indices within one sample (include_batch_in_index=False), "
            "and pass the pooled layer's input as third input `like` when its size is odd."
        )


def executing_eagerly(tensor) -> bool:
    """True when tensor values are available now (not inside a traced or compiled function)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if backend == "jax":
        import jax

        return not isinstance(tensor, jax.core.Tracer)
    return True
