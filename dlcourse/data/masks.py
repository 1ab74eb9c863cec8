"""Semantic masks: class names, the course's fixed colormap, colouring, and nearest resizing.

A semantic mask holds ``0`` for background and ``c + 1`` for an object of class ``c``
(``docs/CONVENTIONS.md``), so its values index ``segmentation_names(C)`` and ``COLORMAP`` directly.
"""

from __future__ import annotations

import numpy as np

from dlcourse.data.shapes import CLASS_NAMES

COLORMAP = np.array(
    [
        [0, 0, 0],  # background
        [230, 25, 75],  # circle: red
        [60, 180, 75],  # square: green
        [0, 130, 200],  # triangle: blue
        [255, 225, 25],  # diamond: yellow
        [145, 30, 180],  # cross: purple
        [70, 240, 240],  # ring: cyan
        [245, 130, 48],  # star: orange
        [240, 50, 230],  # crescent: magenta
    ],
    dtype=np.uint8,
)
"""uint8 ``(len(CLASS_NAMES) + 1, 3)``: one RGB row per segmentation id, row 0 = background.

Fixed for the whole course (colours from Sasha Trubetskoy's list of distinct colours), so a class
has the same colour in every lesson and plot."""
COLORMAP.setflags(write=False)
assert len(COLORMAP) == len(CLASS_NAMES) + 1


def segmentation_names(num_classes: int = 3) -> tuple[str, ...]:
    """Names of the ``num_classes + 1`` segmentation ids: ``("background", *CLASS_NAMES[:C])``.

    Example:

    >>> segmentation_names(3)
    ('background', 'circle', 'square', 'triangle')
    """
    if not isinstance(num_classes, int | np.integer) or not 1 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(
            f"Expected 1 <= num_classes <= {len(CLASS_NAMES)}. Received: num_classes={num_classes!r}"
        )
    return ("background", *CLASS_NAMES[:num_classes])


def colorize_mask(mask) -> np.ndarray:
    """Colour a semantic mask with ``COLORMAP``.

    Args:
        mask: integer array or tensor of segmentation ids, any shape ``(...)``, values in
            ``0 .. len(CLASS_NAMES)``.

    Returns:
        uint8 array of shape ``(..., 3)``.

    Example:

    >>> colorize_mask(np.array([[0, 1]]))
    array([[[  0,   0,   0],
            [230,  25,  75]]], dtype=uint8)
    """
    mask = np.asarray(mask)
    if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool):
        raise ValueError(
            f"Expected an integer mask of segmentation ids. Received: mask with dtype {mask.dtype}"
        )
    if mask.size and (mask.min() < 0 or mask.max() >= len(COLORMAP)):
        raise ValueError(
            f"Expected mask values in 0..{len(COLORMAP) - 1}. "
            f"Received: values from {mask.min()} to {mask.max()}"
        )
    return COLORMAP[mask.astype(np.intp)]


def _nearest_indices(source: int, target: int) -> np.ndarray:
    """Source index of each target pixel: the pixel whose area contains the target's centre.

    Integer arithmetic for floor((i + 0.5) * source / target): no rounding surprises.
    """
    return (2 * np.arange(target) + 1) * source // (2 * target)


def resize_mask(mask, size):
    """Resize masks with nearest neighbour only, so no new (interpolated) ids ever appear.

    Args:
        mask: NumPy array or tensor of shape ``(H, W)``, ``(N, H, W)``, ``(H, W, 1)`` or
            ``(N, H, W, 1)``. A last axis of size 1 is taken as a channel axis.
        size: ``int`` or ``(height, width)`` of the output.

    Returns:
        The same kind (NumPy or tensor) and dtype, with ``H, W`` replaced by ``size``. Each output
        pixel copies the input pixel under its centre; enlarging by an integer factor repeats
        every pixel, shrinking by one keeps every factor-th pixel.

    Example:

    >>> resize_mask(np.array([[0, 1], [2, 3]], dtype=np.uint8), 4)
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [2, 2, 3, 3],
           [2, 2, 3, 3]], dtype=uint8)
    """
    given = size
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(
            isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0 for s in size
        )
    ):
        raise ValueError(
            f"Expected size to be a positive int or (height, width). Received: size={given!r}"
        )
    if not hasattr(mask, "shape"):  # a nested list
        mask = np.asarray(mask)
    shape = tuple(mask.shape)
    channel = len(shape) >= 3 and shape[-1] == 1
    spatial = len(shape) - (1 if channel else 0)
    if spatial not in (2, 3):
        raise ValueError(
            "Expected a mask of shape (H, W), (N, H, W), (H, W, 1) or (N, H, W, 1). "
            f"Received: shape={shape}"
        )
    h_axis = spatial - 2
    height, width = shape[h_axis], shape[h_axis + 1]
    if height is None or width is None:
        raise ValueError(f"Expected a mask with known height and width. Received: shape={shape}")
    rows = _nearest_indices(int(height), int(size[0]))
    cols = _nearest_indices(int(width), int(size[1]))
    if isinstance(mask, np.ndarray):
        return mask.take(rows, axis=h_axis).take(cols, axis=h_axis + 1)
    from keras import ops

    return ops.take(ops.take(mask, rows, axis=h_axis), cols, axis=h_axis + 1)


def dilate(mask, radius: int) -> np.ndarray:
    """Binary dilation by a ``(2r+1) × (2r+1)`` square over the last two axes (NumPy only).

    A pixel is set when any pixel within Chebyshev distance ``radius`` is set: boundary F1's
    tolerance band (:func:`dlcourse.metrics.boundary_f1`) and the pet trimap's border band
    (:mod:`dlcourse.data.pets`). Separable: one pass per axis.

    Args:
        mask: boolean array ``(..., H, W)``.
        radius: non-negative int, in pixels; 0 returns a copy.

    Returns:
        A new boolean array of the same shape.

    Example:
    >>> m = np.zeros((5, 5), bool); m[2, 2] = True
    >>> dilate(m, 1).astype(int)
    array([[0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]])
    """
    if not isinstance(radius, int | np.integer) or radius < 0:
        raise ValueError(f"Expected a non-negative int radius. Received: radius={radius!r}")
    mask = np.asarray(mask)
    if mask.dtype != bool or mask.ndim < 2:
        raise ValueError(
            "Expected a boolean mask with at least 2 axes (..., H, W). "
            f"Received: dtype={mask.dtype}, shape={mask.shape}"
        )
    out = mask.copy()
    for axis in (-2, -1):
        src, out = out, out.copy()
        n = src.shape[axis]
        for shift in range(1, min(radius, n - 1) + 1):
            lo = [slice(None)] * src.ndim
            hi = [slice(None)] * src.ndim
            lo[axis], hi[axis] = slice(0, n - shift), slice(shift, n)
            out[tuple(lo)] |= src[tuple(hi)]
            out[tuple(hi)] |= src[tuple(lo)]
    return out


def outline_distance(masks, max_radius: int) -> np.ndarray:
    """Radius of the largest square window around each pixel that holds one class only.

    Pixel ``(y, x)`` gets ``d`` when the ``(2d + 1) × (2d + 1)`` window centred on it contains no
    pixel of another class (outside the image does not count), capped at ``max_radius``; a pixel
    with a 4- or 8-neighbour of another class gets 0. Lesson 04 compares it with a network's
    receptive field: a pixel whose window of the receptive field's size holds one class only
    cannot see any outline.

    Args:
        masks: integer masks ``(N, H, W)``.
        max_radius: non-negative int, the cap (and the farthest distance looked at).

    Returns:
        int32 ``(N, H, W)``.

    Example:
    >>> outline_distance(np.array([[[0, 0, 0, 0, 1]]]), 3)
    array([[[3, 2, 1, 0, 0]]], dtype=int32)
    """
    if not isinstance(max_radius, int | np.integer) or max_radius < 0:
        raise ValueError(
            f"Expected a non-negative int max_radius. Received: max_radius={max_radius!r}"
        )
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.dtype.kind not in "iub":
        raise ValueError(
            f"Expected integer masks (N, H, W). Received: dtype={masks.dtype}, shape={masks.shape}"
        )
    masks = masks.astype(np.int64)
    n, h, w = masks.shape
    r = int(max_radius)
    padded = np.pad(masks, [(0, 0), (r, r), (r, r)], constant_values=-1)
    distance = np.full(masks.shape, r, dtype=np.int32)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            other = padded[:, r + dy : r + dy + h, r + dx : r + dx + w]
            differs = (other >= 0) & (other != masks)
            distance = np.where(differs, np.minimum(distance, max(abs(dy), abs(dx)) - 1), distance)
    return distance


def count_regions(binary) -> np.ndarray:
    """Number of 4-connected regions in each boolean mask of a batch.

    Lesson 02 counts the objects a semantic mask seems to hold this way: touching instances of
    one class merge into one region. Labels spread by repeated minimum over the 4-neighbours
    until nothing changes (NumPy only).

    Args:
        binary: boolean masks ``(N, H, W)``.

    Returns:
        int ``(N,)``.

    Example:
    >>> count_regions(np.array([[[1, 1, 0, 1], [0, 0, 0, 1], [1, 0, 1, 1]]], dtype=bool))
    array([3])
    """
    binary = np.asarray(binary)
    if binary.dtype != bool or binary.ndim != 3:
        raise ValueError(
            "Expected boolean masks (N, H, W). "
            f"Received: dtype={binary.dtype}, shape={binary.shape}"
        )
    index = np.arange(binary.size).reshape(binary.shape)
    outside = binary.size
    labels = np.where(binary, index, outside)
    while True:
        p = np.pad(labels, [(0, 0), (1, 1), (1, 1)], constant_values=outside)
        neighbours = [p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:]]
        smallest = np.where(binary, np.minimum.reduce([labels, *neighbours]), outside)
        if np.array_equal(smallest, labels):
            return (labels == index).sum(axis=(1, 2))
        labels = smallest
