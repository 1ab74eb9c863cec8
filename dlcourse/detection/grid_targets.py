"""Targets and predictions of a one-stage grid detector (YOLO, Redmon et al., CVPR 2016).

A fixed-size head cannot say how many objects there are. A grid detector sidesteps that: the
image is cut into ``G × G`` cells (one per position of the backbone's feature map), and every cell
predicts one (objectness, class, box). The cell that contains an object's box **centre** is
responsible for it; every other cell should say "no object".

:func:`encode_grid_targets` turns the course's annotations (boxes ``(x, y, w, h)``, upper-left
corner, pixels; class ids, padded with ``-1``) into the three targets of such a head:

- ``"objectness"`` float32 ``(N, G, G)``: 1 in a responsible cell, else 0;
- ``"class"`` int32 ``(N, G, G)``: the object's class, ``-1`` in an empty cell;
- ``"box"`` float32 ``(N, G, G, 4)``: ``(dx, dy, w, h)``: the centre's offset inside its cell
  (fractions of a cell, in ``[0, 1)``) and the size as fractions of the image (0 in empty cells).

Two centres in one cell collide: the cell keeps the larger object and the other one is counted
in ``"dropped"`` (the targets cannot hold it; the grid's resolution is the detector's limit).
:func:`decode_grid_predictions` inverts the encoding for a head's output, scores every cell
(objectness × class probability), keeps scores above a threshold and applies per-class non-max
suppression (:func:`dlcourse.detection.evaluation.non_max_suppression`), giving the per-image detections that
:func:`dlcourse.detection.evaluation.mean_average_precision` takes.
"""

from __future__ import annotations

import numbers

import numpy as np

from dlcourse.detection.evaluation import non_max_suppression

__all__ = ["BOX_FORMATS", "decode_grid_predictions", "encode_grid_targets"]

BOX_FORMATS = ("xywh", "rel_xywh")
"""Box formats taken and returned: pixels, or normalised as in ``dlcourse.data.task_arrays``."""


def _size(image_size) -> tuple[int, int]:
    if isinstance(image_size, numbers.Integral):
        image_size = (image_size, image_size)
    height, width = (int(v) for v in image_size)
    if height < 1 or width < 1:
        raise ValueError(f"Expected a positive image size. Received: {image_size!r}")
    return height, width


def _grid(grid: int, height: int, width: int) -> int:
    if not isinstance(grid, numbers.Integral) or isinstance(grid, bool) or grid < 1:
        raise ValueError(f"Expected a positive integer grid. Received: grid={grid!r}")
    if grid > min(height, width):
        raise ValueError(
            f"Expected grid <= the image side ({min(height, width)}): a cell must hold a pixel. "
            f"Received: grid={grid}"
        )
    return int(grid)


def _box_format(box_format) -> str:
    if box_format not in BOX_FORMATS:
        raise ValueError(f"Expected box_format in {BOX_FORMATS}. Received: {box_format!r}")
    return box_format


def encode_grid_targets(boxes, classes, image_size, grid: int, box_format: str = "xywh") -> dict:
    """Grid-detector targets of a batch of images (see the module docstring).

    Args:
        boxes: float ``(N, M, 4)`` boxes ``(x, y, w, h)``, upper-left corner, in ``box_format``
            (the ``"detection"`` targets of ``dlcourse.data.task_arrays`` are ``"rel_xywh"``).
        classes: int ``(N, M)`` class ids, ``-1`` for an empty slot.
        image_size: ``(height, width)`` or one int.
        grid: cells per side ``G``.
        box_format: ``"xywh"`` (pixels) or ``"rel_xywh"`` (fractions of the image).

    Returns:
        ``{"objectness": (N, G, G) float32, "class": (N, G, G) int32, "box": (N, G, G, 4)
        float32, "dropped": int}``.

    Example:
    >>> t = encode_grid_targets([[[8, 8, 16, 16]]], [[2]], image_size=32, grid=2)
    >>> t["objectness"][0].tolist(), t["class"][0].tolist(), t["box"][0, 1, 1].tolist()
    ([[0.0, 0.0], [0.0, 1.0]], [[-1, -1], [-1, 2]], [0.0, 0.0, 0.5, 0.5])
    """
    height, width = _size(image_size)
    grid = _grid(grid, height, width)
    boxes = np.asarray(boxes, dtype=np.float64)
    if _box_format(box_format) == "rel_xywh" and boxes.ndim == 3 and boxes.shape[-1] == 4:
        boxes = boxes * (width, height, width, height)
    classes = np.asarray(classes)
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or classes.shape != boxes.shape[:2]:
        raise ValueError(
            "Expected boxes (N, M, 4) and classes (N, M). "
            f"Received: {boxes.shape} and {classes.shape}"
        )
    n = len(boxes)
    objectness = np.zeros((n, grid, grid), dtype=np.float32)
    cls = np.full((n, grid, grid), -1, dtype=np.int32)
    box = np.zeros((n, grid, grid, 4), dtype=np.float32)
    area = np.zeros((n, grid, grid))
    dropped = 0
    for i, j in zip(*np.nonzero(classes >= 0), strict=True):
        x, y, w, h = boxes[i, j]
        if not (w > 0 and h > 0):
            raise ValueError(f"Expected positive box sizes. Received: image {i}, slot {j}: {w}x{h}")
        # centre in cell units, rounded to 1e-6 so that float32 rel_xywh boxes (34/48 * 48 =
        # 33.99999...) fall into the same cell as their pixel boxes; a centre on the far edge
        # belongs to the last cell
        cx = round((x + w / 2) / width * grid, 6)
        cy = round((y + h / 2) / height * grid, 6)
        col, row = min(int(cx), grid - 1), min(int(cy), grid - 1)
        if not (0 <= cx <= grid and 0 <= cy <= grid):
            raise ValueError(f"Expected box centres inside the image. Received: {boxes[i, j]}")
        if objectness[i, row, col]:
            dropped += 1
            if w * h <= area[i, row, col]:
                continue
        objectness[i, row, col] = 1.0
        cls[i, row, col] = classes[i, j]
        box[i, row, col] = (cx - col, cy - row, w / width, h / height)
        area[i, row, col] = w * h
    return {"objectness": objectness, "class": cls, "box": box, "dropped": dropped}


def decode_grid_predictions(
    objectness,
    class_probs,
    box,
    image_size,
    *,
    score_threshold: float = 0.3,
    iou_threshold: float = 0.5,
    max_per_image: int | None = None,
    box_format: str = "xywh",
) -> list[dict]:
    """Per-image detections from a grid head's outputs (inverse of the encoding, then NMS).

    Args:
        objectness: ``(N, G, G)`` probabilities that a cell holds an object centre.
        class_probs: ``(N, G, G, C)`` class probabilities per cell; or int ``(N, G, G)`` class
            ids (e.g. the targets, to decode them back).
        box: ``(N, G, G, 4)`` ``(dx, dy, w, h)`` as in the targets.
        image_size: ``(height, width)`` or one int.
        score_threshold: keep cells whose score (objectness × probability of the best class) is
            above it.
        iou_threshold: per-class non-max suppression threshold.
        max_per_image: keep at most this many detections per image (best first).
        box_format: of the returned boxes, ``"xywh"`` (pixels) or ``"rel_xywh"``.

    Returns:
        One dict per image, ``{"boxes": float32 (k, 4) in box_format, "scores": (k,),
        "classes": int64 (k,)}``, best score first.

    Example:
    >>> t = encode_grid_targets([[[8, 8, 16, 16]]], [[2]], image_size=32, grid=2)
    >>> found = decode_grid_predictions(t["objectness"], t["class"], t["box"], 32)
    >>> found[0]["boxes"].tolist(), found[0]["classes"].tolist()
    ([[8.0, 8.0, 16.0, 16.0]], [2])
    """
    height, width = _size(image_size)
    scale = (width, height, width, height) if _box_format(box_format) == "xywh" else 1.0
    objectness = np.asarray(objectness, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    if objectness.ndim != 3 or objectness.shape[1] != objectness.shape[2]:
        raise ValueError(f"Expected objectness (N, G, G). Received: {objectness.shape}")
    n, grid, _ = objectness.shape
    if box.shape != (n, grid, grid, 4):
        raise ValueError(f"Expected box {(n, grid, grid, 4)}. Received: {box.shape}")
    probs = np.asarray(class_probs)
    if probs.shape == objectness.shape:  # class ids
        classes, confidence = probs.astype(np.int64), (probs >= 0).astype(np.float64)
    elif probs.shape[:3] == objectness.shape and probs.ndim == 4:
        classes, confidence = probs.argmax(axis=-1), probs.max(axis=-1)
    else:
        raise ValueError(
            f"Expected class_probs (N, G, G, C) or class ids (N, G, G) with N, G = {n}, {grid}. "
            f"Received: {probs.shape}"
        )
    scores = objectness * confidence
    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    w, h = np.clip(box[..., 2], 0, None), np.clip(box[..., 3], 0, None)  # fractions of the image
    cx, cy = (cols + box[..., 0]) / grid, (rows + box[..., 1]) / grid
    xywh = np.stack([cx - w / 2, cy - h / 2, w, h], axis=-1) * scale
    found = []
    for i in range(n):
        keep = scores[i] > score_threshold
        b, s, c = xywh[i][keep], scores[i][keep], classes[i][keep]
        chosen = np.concatenate(
            [np.flatnonzero(c == k)[non_max_suppression(b[c == k], s[c == k], iou_threshold)]
             for k in np.unique(c)] or [np.zeros(0, dtype=np.int64)]
        )  # fmt: skip
        chosen = chosen[np.argsort(-s[chosen], kind="stable")][:max_per_image]
        found.append(
            {"boxes": b[chosen].astype(np.float32), "scores": s[chosen], "classes": c[chosen]}
        )
    return found
