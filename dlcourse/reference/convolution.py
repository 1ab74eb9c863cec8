"""Convolution and transposed convolution, the naive way, with TensorFlow's padding rules.

``conv2d`` slides the kernel over the input (a cross-correlation, like every deep-learning
library); ``conv_transpose2d`` does the opposite bookkeeping: every *input* pixel scatters a copy
of the kernel, scaled by its value, into the output, and where copies overlap they are summed.
``conv_matrix`` writes the convolution as a matrix ``M``; the transposed convolution is then
literally ``M.T``. ``overlap_count`` counts the copies that land on each output pixel: where that
count is uneven, a transposed convolution draws a checkerboard.

Kernels use Keras' layouts: ``(kh, kw, Cin, Cout)`` for ``Conv2D`` and ``(kh, kw, Cout, Cin)`` for
``Conv2DTranspose`` (the same array serves both directions), or ``(kh, kw)`` for one channel.
"""

from __future__ import annotations

import numpy as np

from dlcourse.reference._arrays import as_nhwc
from dlcourse.reference.sizes import (
    check_padding,
    conv_output_size,
    conv_transpose_output_size,
    pair,
    same_padding,
)


def conv2d(x, kernel, strides=1, padding="valid"):
    """2-D convolution (cross-correlation) without bias, as ``keras.layers.Conv2D`` computes it.

    Args:
        x: array (H, W), (H, W, Cin) or (N, H, W, Cin).
        kernel: (kh, kw) for one channel, or (kh, kw, Cin, Cout).
        strides: int or (sh, sw).
        padding: "valid", or "same" (zeros, the smaller half before, as TensorFlow does).

    Returns:
        (Ho, Wo) for a 2-D ``x`` and a 2-D kernel, else (Ho, Wo, Cout) (batch kept).

    Example:
        >>> conv2d(np.arange(16).reshape(4, 4), np.ones((2, 2), int), strides=2)
        array([[10, 18],
               [42, 50]])
    """
    x4, k4, restore = _prepare(x, kernel, channel_axis=2)
    sh, sw = pair(strides, "strides")
    padding = check_padding(padding)
    n, h, w, _ = x4.shape
    kh, kw, _, cout = k4.shape
    ho, wo = conv_output_size(h, kh, sh, padding), conv_output_size(w, kw, sw, padding)
    if padding == "same":
        x4 = np.pad(x4, ((0, 0), same_padding(h, kh, sh), same_padding(w, kw, sw), (0, 0)))
    out = np.zeros((n, ho, wo, cout), dtype=np.result_type(x4, k4))
    for i in range(ho):
        for j in range(wo):
            patch = x4[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :]
            out[:, i, j, :] = np.einsum("nhwc,hwcd->nd", patch, k4)
    return restore(out)


def conv_transpose2d(x, kernel, strides=1, padding="valid", output_padding=None):
    """Transposed convolution by scatter-add, as ``keras.layers.Conv2DTranspose`` computes it.

    Every input pixel ``x[i, j]`` adds ``x[i, j] * kernel`` to the output window that starts at
    ``(i * sh, j * sw)``; overlapping windows add up. The result is then cropped the way the
    matching convolution was padded (nothing for "valid", TensorFlow's SAME split for "same").

    Args:
        x: array (H, W), (H, W, Cin) or (N, H, W, Cin).
        kernel: (kh, kw) for one channel, or Keras' ``Conv2DTranspose`` layout (kh, kw, Cout, Cin).
        strides: int or (sh, sw).
        padding: "valid" or "same".
        output_padding: None, int or pair, as in Keras (picks the output size; must be < strides).

    Returns:
        (Ho, Wo) for a 2-D ``x`` and a 2-D kernel, else (Ho, Wo, Cout) (batch kept), with
        ``Ho = conv_transpose_output_size(H, kh, sh, padding, output_padding)``.

    Example (the lecture's 2×2 input, 3×3 kernel, stride 2 → 4×4; overlaps add up):
        >>> conv_transpose2d(np.array([[1, 2], [3, 4]]), np.ones((3, 3), int), 2, "same")
        array([[ 1,  1,  3,  2],
               [ 1,  1,  3,  2],
               [ 4,  4, 10,  6],
               [ 3,  3,  7,  4]])
    """
    x4, k4, restore = _prepare(x, kernel, channel_axis=3)
    sh, sw = pair(strides, "strides")
    padding = check_padding(padding)
    oph, opw = (None, None) if output_padding is None else pair(output_padding, "output_padding", 0)
    n, h, w, _ = x4.shape
    kh, kw, cout, _ = k4.shape
    out_h = conv_transpose_output_size(h, kh, sh, padding, oph)
    out_w = conv_transpose_output_size(w, kw, sw, padding, opw)
    for size, out, k, s in ((h, out_h, kh, sh), (w, out_w, kw, sw)):
        if out < 1 or conv_output_size(out, k, s, padding) != size:
            # TensorFlow refuses these too (e.g. "same", even kernel, output_padding=0).
            raise ValueError(
                f"No {padding} convolution (kernel {k}, stride {s}) maps size {out} to {size}, so "
                f"this transposed convolution is undefined. Received: output_padding={output_padding!r}"
            )
    full = np.zeros((n, (h - 1) * sh + kh, (w - 1) * sw + kw, cout), dtype=np.result_type(x4, k4))
    for i in range(h):
        for j in range(w):
            # One kernel copy per input pixel (and per output channel), added where it lands.
            full[:, i * sh : i * sh + kh, j * sw : j * sw + kw, :] += np.einsum(
                "nc,hwdc->nhwd", x4[:, i, j, :], k4
            )
    top = _transpose_crop(h, out_h, kh, sh, padding)
    left = _transpose_crop(w, out_w, kw, sw, padding)
    full = np.pad(
        full,
        (
            (0, 0),
            (0, max(top + out_h - full.shape[1], 0)),
            (0, max(left + out_w - full.shape[2], 0)),
            (0, 0),
        ),
    )
    return restore(full[:, top : top + out_h, left : left + out_w, :])


def conv_matrix(input_shape, kernel, strides=1, padding="valid"):
    """The convolution as a matrix: ``conv2d(x).ravel() == conv_matrix(x.shape, kernel) @ x.ravel()``.

    Row ``(i * Wo + j) * Cout + d`` holds the kernel taps that output pixel ``(i, j, d)`` reads.
    Its transpose maps an output back to the input's shape: ``M.T @ y.ravel()`` is the transposed
    convolution of ``y`` with the *same* kernel, i.e. ``conv_transpose2d(y, kernel, strides,
    padding, output_padding)`` with the ``output_padding`` that gives back ``input_shape``.

    Args:
        input_shape: (H, W) or (H, W, Cin).
        kernel: (kh, kw) or (kh, kw, Cin, Cout).
        strides: int or (sh, sw).
        padding: "valid" or "same".

    Returns:
        Array (Ho * Wo * Cout, H * W * Cin).

    Example:
        >>> conv_matrix((3, 3), np.array([[1, 2], [3, 4]]), strides=1).shape
        (4, 9)
        >>> conv_matrix((3, 3), np.array([[1, 2], [3, 4]]), strides=1)[0]
        array([1, 2, 0, 3, 4, 0, 0, 0, 0])
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"Expected `input_shape` (H, W) or (H, W, Cin). Received: {input_shape!r}")
    h, w, cin = shape if len(shape) == 3 else (*shape, 1)
    _, k4, _ = _prepare(np.zeros((h, w, cin)), kernel, channel_axis=2)
    sh, sw = pair(strides, "strides")
    padding = check_padding(padding)
    kh, kw, _, cout = k4.shape
    ho, wo = conv_output_size(h, kh, sh, padding), conv_output_size(w, kw, sw, padding)
    top, left = (
        (same_padding(h, kh, sh)[0], same_padding(w, kw, sw)[0]) if padding == "same" else (0, 0)
    )
    matrix = np.zeros((ho * wo * cout, h * w * cin), dtype=k4.dtype)
    for i in range(ho):
        for j in range(wo):
            rows = (i * wo + j) * cout + np.arange(cout)
            for a in range(kh):
                for b in range(kw):
                    y, x = i * sh - top + a, j * sw - left + b
                    if 0 <= y < h and 0 <= x < w:  # taps on the zero padding read nothing
                        cols = (y * w + x) * cin + np.arange(cin)
                        matrix[np.ix_(rows, cols)] += k4[a, b].T
    return matrix


def overlap_count(kernel_size, strides, input_size=4, padding="valid", output_padding=None):
    """How many kernel copies of a transposed convolution land on each output pixel.

    This is ``conv_transpose2d`` of an all-ones input with an all-ones kernel. When
    ``kernel_size`` is not a multiple of ``strides`` the count alternates between neighbouring
    pixels — the checkerboard that transposed convolutions draw (Odena et al., 2016).

    Args:
        kernel_size: int or (kh, kw).
        strides: int or (sh, sw).
        input_size: int or (H, W), the size of the transposed convolution's input.
        padding, output_padding: as in ``conv_transpose2d``.

    Returns:
        Integer array (Ho, Wo).

    Example:
        >>> overlap_count(3, 2, input_size=3)[0], overlap_count(4, 2, input_size=3)[0]
        (array([1, 1, 2, 1, 2, 1, 1]), array([1, 1, 2, 2, 2, 2, 1, 1]))
    """
    kh, kw = pair(kernel_size, "kernel_size")
    ih, iw = pair(input_size, "input_size")
    ones = np.ones((ih, iw), dtype=np.int64)
    return conv_transpose2d(
        ones, np.ones((kh, kw), dtype=np.int64), strides, padding, output_padding
    )


def _transpose_crop(size, out_size, kernel_size, strides, padding) -> int:
    """Rows cut before a transposed convolution's output: the matching convolution's top padding."""
    if padding == "valid":
        return 0
    return max((size - 1) * strides + kernel_size - out_size, 0) // 2


def _prepare(x, kernel, channel_axis):
    """(N, H, W, C) input, 4-D kernel and the function restoring the caller's rank."""
    kernel = np.asarray(kernel)
    if kernel.ndim not in (2, 4):
        raise ValueError(
            f"Expected a kernel of shape (kh, kw) or 4-D Keras layout. Received: shape {kernel.shape}"
        )
    x = np.asarray(x)
    x4, restore = as_nhwc(x)
    k4 = kernel[:, :, None, None] if kernel.ndim == 2 else kernel
    if x.ndim == 2 and kernel.ndim == 4:
        restore = lambda y: y[0]  # noqa: E731  (one image, channels from the kernel)
    if k4.shape[channel_axis] != x4.shape[3]:
        raise ValueError(
            f"The kernel expects {k4.shape[channel_axis]} input channels (axis {channel_axis} of "
            f"shape {kernel.shape}); `x` has {x4.shape[3]}."
        )
    return x4, k4, restore
