"""Window geometry for the layers, on Python ints (static shapes) or scalar tensors (unknown H/W).

The formulas are those of ``dlcourse.reference.sizes`` (tests check that both agree); they are
repeated here only because the reference is plain Python while a layer traced with an unknown
height must compute the same numbers on tensors, without ``if`` on their values.
"""

from __future__ import annotations

from keras import ops


def is_static(*values) -> bool:
    return all(isinstance(v, int) for v in values)


def maximum0(value):
    """``max(value, 0)`` for an int or a scalar tensor."""
    return max(value, 0) if isinstance(value, int) else ops.maximum(value, 0)


def pooled_size(size, pool: int, stride: int, padding: str):
    """Number of windows along one axis (``reference.conv_output_size``)."""
    if padding == "same":
        return (size + stride - 1) // stride
    return (size - pool) // stride + 1


def pad_before(size, pooled, pool: int, stride: int, padding: str):
    """Rows (or columns) TensorFlow pads before the input: the smaller half of the SAME total."""
    if padding == "valid":
        return 0
    return maximum0((pooled - 1) * stride + pool - size) // 2


def unpooled_size(pooled, pool: int, stride: int, padding: str):
    """Default size of an unpooled axis (``reference.conv_transpose_output_size``)."""
    if padding == "same":
        return pooled * stride
    return (pooled - 1) * stride + max(pool, stride)


def spatial_dims(x):
    """``(H, W, C)`` of a channels-last 4-D tensor: ints where known, scalar tensors otherwise."""
    shape = ops.shape(x)
    return shape[1], shape[2], shape[3]


def flat_index_base(ho, wo, w, c, strides, pads, dtype):
    """Flat index ``(y * W + x) * C + c`` of each window's top-left position, shape (Ho, Wo, C).

    Adding ``(a * W + b) * C`` gives the index of position ``(a, b)`` inside the window.
    """
    rows = (ops.arange(ho, dtype=dtype) * strides[0] - ops.cast(pads[0], dtype)) * ops.cast(
        w, dtype
    )
    cols = ops.arange(wo, dtype=dtype) * strides[1] - ops.cast(pads[1], dtype)
    cells = ops.reshape(rows, (-1, 1)) + ops.reshape(cols, (1, -1))
    channels = ops.arange(c, dtype=dtype)
    return ops.expand_dims(cells, -1) * ops.cast(c, dtype) + channels
