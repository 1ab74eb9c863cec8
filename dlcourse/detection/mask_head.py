"""A mask per detected box: the second stage of instance segmentation, in miniature.

Detection finds and separates the objects, one box each; instance segmentation also draws each
of them. Mask R-CNN (He et al., ICCV 2017) does it with a small fully convolutional network that
predicts, inside every box, which pixels belong to the object. This module is that idea at the
course's scale:

- :func:`crop_boxes` cuts every box out of its image and resizes it to ``size × size``
  (bilinear sampling at the crop's pixel centres, as RoIAlign with one sample per bin; Mask R-CNN
  crops backbone features with RoIAlign, this crops pixels, so the head does not depend on the
  detector);
- :func:`mask_head_data` makes training pairs from true boxes, jittered like a detector's boxes,
  with the object's own visible pixels (its instance mask, cropped the same way) as the target;
- :func:`build_mask_head` is lesson 09's U-Net at 16×16 with two outputs (not the object, the
  object);
- :func:`paste_masks` puts the predicted crop masks back into the image, inside their boxes;
- :func:`mask_iou` compares masks.

Boxes are pixel ``xywh`` (upper-left corner, pixel edges; ``docs/CONVENTIONS.md``).
"""

from __future__ import annotations

import numpy as np

from dlcourse.detection.boxes import validate_boxes

MASK_SIZE = 16


def _boxes(boxes, name: str = "boxes") -> np.ndarray:
    """Pixel ``xywh`` boxes as float64 ``(K, 4)``, checked by ``boxes.validate_boxes``, and with a
    positive width and height (a crop divides by them)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2:
        raise ValueError(f"Expected {name} of shape (K, 4). Received: shape {boxes.shape}")
    validate_boxes(boxes, "xywh", name)  # shape, finite, no negative size; names the index
    if np.any(boxes[:, 2:] <= 0):
        first = int(np.argmax(boxes[:, 2:].min(axis=1) <= 0))
        raise ValueError(
            f"Expected {name} with positive width and height. Received: {name}[{first}] = "
            f"{boxes[first].tolist()}"
        )
    return boxes


def _size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 2:
        raise ValueError(f"Expected size to be an int >= 2. Received: size={size!r}")
    return int(size)


def _sample_axis(start, length, size: int, limit: int, method: str):
    """Where the ``size`` crop pixel centres of boxes ``(start, length)`` read along one axis.

    Crop pixel ``i`` of a box ``(x, w)`` covers ``x + i w / size .. x + (i + 1) w / size`` (pixel
    edges); it samples the image at its centre ``u = x + (i + 0.5) w / size``, which in
    pixel-centre coordinates is ``c = u - 0.5``. Returns ``(low, high, weight of high, inside)``,
    each ``(K, size)``: the two pixels to blend (the same one for ``"nearest"``) and whether ``u``
    lies inside the image, ``0 <= u <= limit``.
    """
    u = start[:, None] + (np.arange(size) + 0.5) * length[:, None] / size
    inside = (u >= 0) & (u <= limit)
    if method == "nearest":  # the pixel the sample falls in
        low = np.clip(np.floor(u), 0, limit - 1).astype(np.int64)
        return low, low, np.zeros(u.shape), inside
    c = np.clip(u - 0.5, 0, limit - 1)  # clamped to the outermost pixel centres
    low = np.floor(c).astype(np.int64)
    high = np.minimum(low + 1, limit - 1)
    return low, high, c - low, inside


def crop_boxes(images, boxes, image_index, size: int = MASK_SIZE, method: str = "bilinear"):
    """Every box cut out of its image and resized to ``(size, size)``: float32 ``(K, size, size, C)``.

    Crop pixel ``(i, j)`` samples the image at its own centre (a box ``(x, y, w, h)`` split into
    ``size × size`` cells, pixel-edge coordinates). Bilinear sampling blends the four nearest
    pixel centres, **clamped to the outermost pixel centres**: a point in the half-pixel border
    of the image reads the edge pixel, so a crop of a box inside the image never reads a zero
    the image does not have. A point outside the image reads 0. This is RoIAlign
    (``torchvision.ops.roi_align(..., aligned=True, sampling_ratio=1)``) inside the image; it
    differs only outside, where RoIAlign still reads the edge pixel up to half a pixel beyond.

    Args:
        images: ``(N, H, W, C)`` (or ``(N, H, W)`` masks, given a channel axis and returned with it).
        boxes: ``(K, 4)`` pixel ``xywh`` boxes; parts outside the image read as 0.
        image_index: ``(K,)`` the image of each box.
        size: crop side in pixels.
        method: ``"bilinear"`` (images, soft masks) or ``"nearest"`` (the pixel each crop pixel's
            centre falls in).

    Example:
    >>> image = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    >>> crop_boxes(image, [[0, 0, 2, 2]], [0], size=2)[0, ..., 0]  # the top-left 2×2, exactly
    array([[0., 1.],
           [4., 5.]], dtype=float32)
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"Expected images of shape (N, H, W, C). Received: {images.shape}")
    boxes, size = _boxes(boxes), _size(size)
    index = np.asarray(image_index, dtype=np.int32).reshape(-1)
    if len(index) != len(boxes) or (len(index) and (index.min() < 0 or index.max() >= len(images))):
        raise ValueError(
            f"Expected one image_index in 0..{len(images) - 1} per box. Received {len(index)} "
            f"indices for {len(boxes)} boxes"
        )
    if method not in ("bilinear", "nearest"):
        raise ValueError(f"Expected method 'bilinear' or 'nearest'. Received: {method!r}")
    if len(boxes) == 0:
        return np.zeros((0, size, size, images.shape[-1]), np.float32)
    height, width = images.shape[1:3]
    r0, r1, fr, in_r = _sample_axis(boxes[:, 1], boxes[:, 3], size, height, method)
    c0, c1, fc, in_c = _sample_axis(boxes[:, 0], boxes[:, 2], size, width, method)
    n = index[:, None, None]
    fr, fc = fr[:, :, None, None], fc[:, None, :, None]

    def at(rows, cols):  # (K, size, size, C): image n, rows × cols of each box
        return images[n, rows[:, :, None], cols[:, None, :]].astype(np.float64)

    crops = (at(r0, c0) * (1 - fr) * (1 - fc) + at(r0, c1) * (1 - fr) * fc
             + at(r1, c0) * fr * (1 - fc) + at(r1, c1) * fr * fc)  # fmt: skip
    crops *= (in_r[:, :, None] & in_c[:, None, :])[..., None]
    return crops.astype(np.float32)


def jitter_boxes(boxes, rng: np.random.Generator, amount: float = 0.1) -> np.ndarray:
    """Boxes moved and rescaled at random by up to ``amount`` of their size, like a detector's."""
    boxes = _boxes(boxes)
    w, h = boxes[:, 2:3], boxes[:, 3:4]
    shift = rng.uniform(-amount, amount, (len(boxes), 2)) * np.concatenate([w, h], 1)
    scale = np.exp(rng.uniform(-amount, amount, (len(boxes), 2)))
    centre = boxes[:, :2] + boxes[:, 2:] / 2 + shift
    wh = boxes[:, 2:] * scale
    return np.concatenate([centre - wh / 2, wh], axis=1)


def mask_head_data(scenes, size: int = MASK_SIZE, jitter: float = 0.1, seed: int = 0):
    """Training pairs for a mask head: crops of jittered true boxes and each object's mask in them.

    Args:
        scenes: a ``dlcourse.data.Scenes`` (boxes and instance masks of every object).
        size: crop side; jitter: see :func:`jitter_boxes` (0: the exact boxes); seed: of the jitter.

    Returns:
        ``(crops float32 (K, size, size, 3), targets int32 (K, size, size), labels (K,))``: a target
        pixel is 1 where the crop shows the object of its box (its visible pixels, not the other
        objects' that the box also covers), 0 elsewhere.
    """
    rng = np.random.default_rng(seed)
    boxes, index, masks, labels = [], [], [], []
    for i, scene in enumerate(scenes):
        if scene.num_objects == 0:
            continue
        boxes.append(scene.boxes)
        index.append(np.full(scene.num_objects, i))
        masks.append(scene.instance_masks)
        labels.append(scene.labels)
    if not boxes:
        raise ValueError("Expected scenes with at least one object. Received: none has any")
    boxes, index = np.concatenate(boxes), np.concatenate(index)
    if jitter:
        boxes = jitter_boxes(boxes, rng, jitter)
    crops = crop_boxes(scenes.images, boxes, index, size)
    # each object's own mask, cropped with its (jittered) box: one mask image per object
    own = np.concatenate(masks).astype(np.float32)[..., None]
    targets = crop_boxes(own, boxes, np.arange(len(boxes)), size)[..., 0] >= 0.5
    return crops, targets.astype(np.int32), np.concatenate(labels)


def build_mask_head(size: int = MASK_SIZE, filters=(16, 32, 64)):
    """A U-Net (``dlcourse.models.build_encoder_decoder``, skips) from a crop to 2-class masks."""
    from dlcourse.models import build_encoder_decoder

    size = _size(size)
    if size % 2 ** (len(filters) - 1):
        raise ValueError(
            f"Expected size divisible by 2 ** (len(filters) - 1) = {2 ** (len(filters) - 1)}. "
            f"Received: size={size}, filters={tuple(filters)}"
        )
    return build_encoder_decoder(2, filters=filters, skips=True, input_shape=(size, size, 3))


def paste_masks(mask_probs, boxes, image_size, threshold: float = 0.5) -> np.ndarray:
    """Crop masks put back into their boxes: bool ``(K, H, W)``.

    Each image pixel whose centre lies inside a box reads the crop mask there (bilinear between
    the crop's pixel centres, clamped at its edges) and is the object if that is at least
    ``threshold``; pixels outside the box never are.

    Args:
        mask_probs: ``(K, S, S)`` probabilities of the object (or ``(K, S, S, 2)`` softmax
            outputs, whose channel 1 is used).
        boxes: ``(K, 4)`` pixel ``xywh`` boxes the crops were cut from.
        image_size: ``(H, W)`` or ``H`` of a square image.
    """
    probs = np.asarray(mask_probs, dtype=np.float64)
    if probs.ndim == 4:
        probs = probs[..., 1]
    boxes = _boxes(boxes)
    if (
        probs.ndim != 3
        or probs.shape[0] != len(boxes)
        or probs.shape[1] != probs.shape[2]
        or probs.shape[1] < 2
    ):
        raise ValueError(
            f"Expected mask_probs of shape (K, S, S), S >= 2, with K = {len(boxes)} boxes. "
            f"Received: {probs.shape}"
        )
    height, width = (image_size, image_size) if np.isscalar(image_size) else image_size
    size = probs.shape[1]
    out = np.zeros((len(boxes), int(height), int(width)), dtype=bool)
    rows, cols = np.arange(height) + 0.5, np.arange(width) + 0.5
    for k, (x, y, w, h) in enumerate(boxes):
        inside_r, inside_c = (rows >= y) & (rows < y + h), (cols >= x) & (cols < x + w)
        if not inside_r.any() or not inside_c.any():
            continue
        v = np.clip((rows[inside_r] - y) / h * size - 0.5, 0, size - 1)
        u = np.clip((cols[inside_c] - x) / w * size - 0.5, 0, size - 1)
        v0, u0 = np.minimum(v.astype(int), size - 2), np.minimum(u.astype(int), size - 2)
        fv, fu = (v - v0)[:, None], (u - u0)[None, :]
        p = probs[k]
        value = (
            p[np.ix_(v0, u0)] * (1 - fv) * (1 - fu) + p[np.ix_(v0, u0 + 1)] * (1 - fv) * fu
            + p[np.ix_(v0 + 1, u0)] * fv * (1 - fu) + p[np.ix_(v0 + 1, u0 + 1)] * fv * fu
        )  # fmt: skip
        out[k][np.ix_(inside_r, inside_c)] = value >= threshold
    return out


def box_masks(boxes, image_size) -> np.ndarray:
    """Each box filled as a mask (the pixels whose centres lie inside it): bool ``(K, H, W)``."""
    boxes = _boxes(boxes)
    height, width = (image_size, image_size) if np.isscalar(image_size) else image_size
    rows, cols = np.arange(int(height)) + 0.5, np.arange(int(width)) + 0.5
    x, y, w, h = (boxes[:, i, None] for i in range(4))
    inside_r = (rows >= y) & (rows < y + h)
    inside_c = (cols >= x) & (cols < x + w)
    return inside_r[:, :, None] & inside_c[:, None, :]


def mask_iou(a, b) -> np.ndarray:
    """IoU of paired masks ``(K, H, W)`` (or one pair ``(H, W)``); 1 where both are empty."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"Expected masks of the same shape. Received: {a.shape} and {b.shape}")
    axes = (-2, -1)
    inter, union = (a & b).sum(axis=axes), (a | b).sum(axis=axes)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)
