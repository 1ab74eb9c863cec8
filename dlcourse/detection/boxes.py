"""Bounding boxes: formats, conversion, clipping, validation and IoU (NumPy and ``keras.ops``).

The course's box is ``(x, y, w, h)`` with ``(x, y)`` the **upper-left corner**, in pixel-edge
coordinates (docs/CONVENTIONS.md): an object covering columns ``x0..x1`` (inclusive) has ``x = x0``
and ``w = x1 - x0 + 1``, so ``w * h`` is the object's pixel count and no ``+ 1`` appears anywhere
below. The formats use Keras's names (``keras.utils.bounding_boxes.convert_format``) and agree with
it (tested):

========================  ==============================================================
``"xywh"``                ``(x, y, w, h)``, upper-left corner and size, pixels (the course's)
``"xyxy"``                ``(x1, y1, x2, y2)`` corners; ``x2 = x + w`` is the right *edge*
``"center_xywh"``         ``(cx, cy, w, h)``, centre and size
``"rel_..."``             the same divided by the image size: x and w by the width, y and h
                          by the height (``"rel_xywh"`` is what the localizer's box head predicts)
========================  ==============================================================

Keras 3.13 (Colab's version in 2026) converts ``"rel_center_xywh"`` to pixel formats with the
height and width swapped (correct in Keras 3.15); ``convert_boxes`` is right in both, which is one
reason it is written here rather than delegated to Keras.

``image_size`` is always ``(height, width)``, the order of ``image.shape[:2]`` (Keras's
``convert_format`` takes ``height=`` and ``width=`` separately), or one int for a square image.

Invalid and degenerate boxes: the NumPy functions that measure boxes (``box_iou``) call
``validate_boxes`` first, which raises ``ValueError`` naming the first offending index for a NaN or
infinite coordinate or a negative width/height. A **zero-area** box is valid and has IoU 0 with
every box (itself included), since no pixel is shared. ``box_iou_ops`` runs inside a graph and
cannot raise: it treats a negative width/height as 0 (IoU 0) and lets NaN propagate to NaN.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

FORMATS = ("xywh", "rel_xywh", "xyxy", "rel_xyxy", "center_xywh", "rel_center_xywh")
"""The box formats this module converts between (a subset of Keras's, same names)."""

__all__ = [
    "FORMATS",
    "box_giou_ops",
    "box_iou",
    "box_iou_ops",
    "clip_boxes",
    "convert_boxes",
    "validate_boxes",
]


def check_format(format: str) -> str:
    if not isinstance(format, str) or format.lower() not in FORMATS:
        raise ValueError(f"Expected a box format in {FORMATS}. Received: {format!r}")
    return format.lower()


def _image_hw(image_size) -> tuple[float, float]:
    if image_size is None:
        raise ValueError(
            "Converting between pixel and relative box formats needs image_size=(height, width)."
        )
    if isinstance(image_size, int | np.integer):
        image_size = (image_size, image_size)
    size = tuple(image_size)
    if len(size) != 2 or not all(float(s) > 0 for s in size):
        raise ValueError(
            "Expected image_size=(height, width) with positive entries (image.shape[:2]) or one "
            f"positive int. Received: image_size={image_size!r}"
        )
    return float(size[0]), float(size[1])


def _as_boxes(boxes, name: str = "boxes") -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(f"Expected {name} of shape (..., 4). Received: shape {arr.shape}")
    return arr


def _corners(arr, fmt: str):
    """(x1, y1, x2, y2) of boxes in ``fmt``, in the same units (pixels or relative)."""
    base = fmt.removeprefix("rel_")
    a, b, c, d = arr[..., 0], arr[..., 1], arr[..., 2], arr[..., 3]
    if base == "xyxy":
        return a, b, c, d
    if base == "xywh":
        return a, b, a + c, b + d
    return a - c / 2, b - d / 2, a + c / 2, b + d / 2  # center_xywh


def _from_corners(x1, y1, x2, y2, fmt: str, xp):
    base = fmt.removeprefix("rel_")
    if base == "xyxy":
        cols = (x1, y1, x2, y2)
    elif base == "xywh":
        cols = (x1, y1, x2 - x1, y2 - y1)
    else:
        cols = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return xp.stack(cols, axis=-1)


def convert_boxes(boxes, source: str, target: str, image_size=None) -> np.ndarray:
    """Convert boxes between formats (see the module docstring), in NumPy.

    Pure arithmetic: it neither validates nor clips (use ``validate_boxes``, ``clip_boxes``).

    Args:
        boxes: array-like of shape ``(..., 4)`` in format ``source``.
        source, target: formats from ``FORMATS``.
        image_size: ``(height, width)`` (``image.shape[:2]``) or an int for a square image;
            needed only between a pixel and a relative format.

    Returns:
        float32 array of shape ``(..., 4)`` in format ``target``.

    Example:
        >>> print(convert_boxes([[10, 20, 30, 40]], "xywh", "xyxy"))
        [[10. 20. 40. 60.]]
        >>> print(convert_boxes([[16, 8, 32, 16]], "xywh", "rel_xywh", image_size=(32, 64)))
        [[0.25 0.25 0.5  0.5 ]]
    """
    source, target = check_format(source), check_format(target)
    arr = _as_boxes(boxes)
    out = _from_corners(*_corners(arr, source), target, np)
    src_rel, tgt_rel = source.startswith("rel_"), target.startswith("rel_")
    if src_rel != tgt_rel:
        height, width = _image_hw(image_size)
        # Every format lists an x-quantity, a y-quantity, an x-quantity, a y-quantity.
        scale = np.array([width, height, width, height])
        out = out * scale if src_rel else out / scale
    return out.astype(np.float32)


def validate_boxes(boxes, format: str = "xywh", name: str = "boxes") -> np.ndarray:
    """Check boxes and return them as a float32 array; raise on anything that has no IoU.

    Args:
        boxes: array-like of shape ``(..., 4)``.
        format: their format (``FORMATS``).
        name: what to call them in the error message.

    Returns:
        The boxes, float32, shape ``(..., 4)``. Zero-area boxes pass (their IoU is 0).

    Raises:
        ValueError: wrong shape; a NaN or infinite coordinate; a negative width or height
            (``x2 < x1`` or ``y2 < y1`` for corner formats). The message names the first
            offending index, e.g. ``boxes[2]``.

    Example:
        >>> validate_boxes([[0, 0, 2, 2], [1, 1, -3, 2]])
        Traceback (most recent call last):
        ...
        ValueError: boxes[1] has a negative width or height (format 'xywh'): [ 1.  1. -3.  2.]
    """
    fmt = check_format(format)
    arr = _as_boxes(boxes, name)

    def where(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        label = f"{name}[{', '.join(map(str, index))}]" if index else name  # one box: no index
        return label, arr[index]

    not_finite = ~np.isfinite(arr).all(axis=-1)
    if not_finite.any():
        label, box = where(not_finite)
        raise ValueError(f"{label} has a NaN or infinite coordinate: {box}")
    x1, y1, x2, y2 = _corners(arr, fmt)
    negative = (x2 < x1) | (y2 < y1)
    if negative.any():
        label, box = where(negative)
        raise ValueError(f"{label} has a negative width or height (format {fmt!r}): {box}")
    return arr.astype(np.float32)


def clip_boxes(boxes, image_size=None, format: str = "xywh") -> np.ndarray:
    """Clip boxes to the image: ``[0, width] x [0, height]`` (``[0, 1]`` for relative formats).

    A box entirely outside the image becomes a zero-area box on the border (IoU 0 with anything),
    like ``keras.utils.bounding_boxes.clip_to_image_size``, which only takes corner formats.

    Args:
        boxes: array-like of shape ``(..., 4)`` in ``format``.
        image_size: ``(height, width)`` or an int; required for pixel formats.
        format: the boxes' format, kept in the result.

    Returns:
        float32 array of shape ``(..., 4)``.

    Example:
        >>> print(clip_boxes([[-2, 50, 10, 30]], image_size=(64, 64)))
        [[ 0. 50.  8. 14.]]
    """
    fmt = check_format(format)
    arr = _as_boxes(boxes)
    height, width = (1.0, 1.0) if fmt.startswith("rel_") else _image_hw(image_size)
    x1, y1, x2, y2 = _corners(arr, fmt)
    x1, x2 = np.clip(x1, 0, width), np.clip(x2, 0, width)
    y1, y2 = np.clip(y1, 0, height), np.clip(y2, 0, height)
    return _from_corners(x1, y1, x2, y2, fmt, np).astype(np.float32)


def _pair_up(a, b, pairwise: bool, expand_dims):
    if pairwise:
        return expand_dims(a, -2), expand_dims(b, -3)  # (..., N, 1, 4) with (..., 1, M, 4)
    return a, b


def box_iou(a, b, format: str = "xywh", pairwise: bool = False) -> np.ndarray:
    """Intersection over union of boxes, in NumPy (float64): the reference the tests trust.

    The coordinates are used in float64 as given (``validate_boxes`` only checks them), so two
    boxes that differ below float32 resolution still get their exact IoU.

    Pixel-edge semantics: boxes that only touch share no pixel and have IoU 0. IoU does not change
    when x and y are scaled, so ``"rel_xywh"`` boxes give the same IoU as their pixel versions.

    Args:
        a, b: array-likes of shape ``(..., 4)`` in ``format``, validated by ``validate_boxes``.
        format: their format (``FORMATS``).
        pairwise: False: elementwise with broadcasting, ``(..., 4), (..., 4) -> (...)``.
            True: every box of ``a`` with every box of ``b``, ``(..., N, 4), (..., M, 4) -> (..., N, M)``.

    Returns:
        float64 array of IoUs in ``[0, 1]``; 0 where a box has zero area.

    Raises:
        ValueError: see ``validate_boxes`` (NaN, infinite, negative width or height).

    Example:
        >>> print(box_iou([0, 0, 2, 2], [1, 0, 2, 2]))  # 2 shared pixels of 6
        0.3333333333333333
        >>> print(box_iou([[0, 0, 2, 2]], [[0, 0, 2, 2], [2, 0, 2, 2]], pairwise=True))
        [[1. 0.]]
    """
    fmt = check_format(format)
    validate_boxes(a, fmt, "a")
    validate_boxes(b, fmt, "b")
    a, b = _as_boxes(a, "a"), _as_boxes(b, "b")  # float64 as given, not rounded to float32
    a, b = _pair_up(a, b, pairwise, np.expand_dims)
    ax1, ay1, ax2, ay2 = _corners(a, fmt)
    bx1, by1, bx2, by2 = _corners(b, fmt)
    inter_w = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    inter_h = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = inter_w * inter_h
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _iou_terms_ops(a, b, format: str, pairwise: bool):
    fmt = check_format(format)
    a = ops.convert_to_tensor(a)
    b = ops.cast(ops.convert_to_tensor(b), a.dtype)
    a, b = _pair_up(a, b, pairwise, ops.expand_dims)
    # max/min/relu may turn NaN into a number: remember where it was, to give NaN back.
    nan = ops.logical_or(ops.any(ops.isnan(a), axis=-1), ops.any(ops.isnan(b), axis=-1))
    ax1, ay1, ax2, ay2 = _corners(a, fmt)
    bx1, by1, bx2, by2 = _corners(b, fmt)
    # A negative width/height cannot raise inside a graph: it counts as zero area (IoU 0).
    ax2, ay2 = ops.maximum(ax2, ax1), ops.maximum(ay2, ay1)
    bx2, by2 = ops.maximum(bx2, bx1), ops.maximum(by2, by1)
    inter_w = ops.relu(ops.minimum(ax2, bx2) - ops.maximum(ax1, bx1))
    inter_h = ops.relu(ops.minimum(ay2, by2) - ops.maximum(ay1, by1))
    inter = inter_w * inter_h
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    hull = (ops.maximum(ax2, bx2) - ops.minimum(ax1, bx1)) * (
        ops.maximum(ay2, by2) - ops.minimum(ay1, by1)
    )
    return inter, union, hull, nan


def _safe_ratio(num, den):
    # max() rather than den + eps: no bias when den > 0 (tiny relative boxes), no inf gradient at 0.
    tiny = keras.config.epsilon() ** 2
    return ops.where(den > 0, num / ops.maximum(den, tiny), ops.zeros_like(num))


def box_iou_ops(a, b, format: str = "xywh", pairwise: bool = False):
    """Intersection over union in ``keras.ops``: differentiable, for metrics and losses.

    Same shapes and semantics as ``box_iou``, except that it cannot raise: a negative width or
    height counts as zero area (IoU 0) and NaN propagates to NaN.

    Args:
        a, b: tensors of shape ``(..., 4)`` in ``format`` (``b`` is cast to ``a``'s dtype).
        format: their format (``FORMATS``).
        pairwise: as in ``box_iou``.

    Returns:
        Tensor of IoUs, shape ``(...)`` or ``(..., N, M)``.

    Example:
        >>> iou = box_iou_ops(np.array([[0.0, 0.0, 0.5, 0.5]]), np.array([[0.25, 0.0, 0.5, 0.5]]), "rel_xywh")
        >>> print(np.round(keras.ops.convert_to_numpy(iou), 4))
        [0.3333]
    """
    inter, union, _, nan = _iou_terms_ops(a, b, format, pairwise)
    return ops.where(nan, float("nan"), _safe_ratio(inter, union))


def box_giou_ops(a, b, format: str = "xywh", pairwise: bool = False):
    """Generalized IoU (Rezatofighi et al., 2019) in ``keras.ops``: ``IoU - (hull - union) / hull``.

    In ``[-1, 1]``; unlike IoU it still decreases as disjoint boxes move apart, so ``1 - GIoU``
    gives a gradient where ``1 - IoU`` gives none. Arguments and shapes as in ``box_iou_ops``.

    Example:
        >>> giou = box_giou_ops(np.array([0.0, 0.0, 2.0, 2.0]), np.array([4.0, 0.0, 2.0, 2.0]))
        >>> print(np.round(keras.ops.convert_to_numpy(giou), 4))  # 0 - (12 - 8) / 12
        -0.3333
    """
    inter, union, hull, nan = _iou_terms_ops(a, b, format, pairwise)
    giou = _safe_ratio(inter, union) - _safe_ratio(hull - union, hull)
    return ops.where(nan, float("nan"), giou)
