"""Generated scenes: coloured shapes on noisy, textured backgrounds, with every annotation.

One call gives, for the same images, the targets of every task the course teaches: a class id
(single-object scenes), a semantic mask, boxes, and instance masks. Generation is pure NumPy and
deterministic: scene ``i`` depends only on ``seed`` and ``i`` (each scene has its own child of
``np.random.SeedSequence(seed)``), so ``make_scenes(100)`` starts with the same scenes as
``make_scenes(10_000)`` and FAST mode sees the first scenes of the full data set.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers

import numpy as np

from dlcourse.data.background import add_noise, paint_background
from dlcourse.data.collection import Scene, Scenes
from dlcourse.data.shapes import CLASS_NAMES, MIN_OBJECT_SIZE, shape_template

MIN_VISIBLE_PIXELS = 4
"""An occluded object keeps at least this many visible pixels (or is hidden completely)."""

MIN_CONTRAST = 0.45
"""Smallest RGB distance between an object's colour and the mean colour of what it covers."""

_PLACEMENT_TRIES = 20
_COLOUR_CANDIDATES = 8
_MIN_IMAGE_SIDE = 8


@dataclasses.dataclass(frozen=True)
class _Spec:
    height: int
    width: int
    min_objects: int
    max_objects: int
    min_size: int
    max_size: int
    num_classes: int
    noise: float
    texture: bool
    max_occlusion: float


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _pair(value, name: str, rule: str) -> tuple[int, int]:
    """An int or a pair of ints, as a pair; ValueError that names the argument otherwise."""
    if _is_int(value):
        return int(value), int(value)
    if (
        isinstance(value, tuple | list | np.ndarray)
        and len(value) == 2
        and all(_is_int(v) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"Expected {name} to be {rule}. Received: {name}={value!r}")


def _check_args(n, image_size, objects, size_range, num_classes, noise, texture, seed, occlusion):
    if not _is_int(n) or n < 0:
        raise ValueError(f"Expected n to be a non-negative integer. Received: n={n!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"Expected seed to be a non-negative integer. Received: seed={seed!r}")
    height, width = _pair(image_size, "image_size", "an int or a pair (height, width) of ints")
    if min(height, width) < _MIN_IMAGE_SIDE:
        raise ValueError(
            f"Expected image sides >= {_MIN_IMAGE_SIDE} pixels. Received: image_size={image_size!r}"
        )
    lo, hi = _pair(objects, "objects", "an int or a pair (min, max) of ints")
    if not 0 <= lo <= hi <= 255:
        raise ValueError(
            f"Expected 0 <= min objects <= max objects <= 255. Received: objects={objects!r}"
        )
    short = min(height, width)
    if size_range is None:
        # Objects between a quarter and a half of the shorter side: large enough to recognise,
        # small enough that a few fit and the background stays visible.
        size_range = (max(MIN_OBJECT_SIZE, round(0.25 * short)), max(MIN_OBJECT_SIZE, short // 2))
    smin, smax = _pair(size_range, "size_range", "a pair (min, max) of ints, in pixels")
    if not MIN_OBJECT_SIZE <= smin <= smax <= short:
        raise ValueError(
            f"Expected {MIN_OBJECT_SIZE} <= size_range[0] <= size_range[1] <= the shorter image "
            f"side ({short}), so that every object fits the image. Received: size_range={size_range!r}"
        )
    if hi * smin * smin > height * width:
        raise ValueError(
            f"Expected {hi} objects of at least {smin}×{smin} pixels to fit into a "
            f"{height}×{width} image. Received: objects={objects!r}, size_range={size_range!r}"
        )
    if not _is_int(num_classes) or not 1 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(
            f"Expected 1 <= num_classes <= {len(CLASS_NAMES)} (the shapes in CLASS_NAMES). "
            f"Received: num_classes={num_classes!r}"
        )
    if not isinstance(noise, numbers.Real) or isinstance(noise, bool) or not 0 <= noise <= 1:
        raise ValueError(f"Expected 0 <= noise <= 1. Received: noise={noise!r}")
    if not isinstance(texture, bool | np.bool_):
        raise ValueError(f"Expected texture to be True or False. Received: texture={texture!r}")
    if (
        not isinstance(occlusion, numbers.Real)
        or isinstance(occlusion, bool)
        or not 0 <= occlusion <= 1
    ):
        raise ValueError(f"Expected 0 <= max_occlusion <= 1. Received: max_occlusion={occlusion!r}")
    return _Spec(
        height,
        width,
        lo,
        hi,
        smin,
        smax,
        int(num_classes),
        float(noise),
        bool(texture),
        float(occlusion),
    )


def _pick_colour(rng: np.random.Generator, covered_mean: np.ndarray) -> np.ndarray:
    """A uniformly random colour at least ``MIN_CONTRAST`` away from `covered_mean` if possible.

    Eight candidates are drawn at once (a fixed number of draws per object); the first one far
    enough from the mean colour of what the object covers wins, else the farthest.
    """
    candidates = rng.random((_COLOUR_CANDIDATES, 3), dtype=np.float32)
    difference = candidates - covered_mean
    difference *= difference
    distance2 = difference.sum(axis=1)
    far = distance2 >= MIN_CONTRAST**2
    first = int(far.argmax())  # 0 when none is far enough: then the farthest
    return candidates[first if far[first] else int(distance2.argmax())]


@functools.lru_cache(maxsize=4096)
def _template_info(label: int, size: int):
    """Cached per (class, size): template (s, s), its (s, s, 1) view, area, averaging weights
    (s * s,), and its tight box (x, y, w, h) relative to the window."""
    template = shape_template(label, size)
    area = int(np.count_nonzero(template))
    rows, cols = np.flatnonzero(template.any(axis=1)), np.flatnonzero(template.any(axis=0))
    box = (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))
    weights = (template.ravel() / area).astype(np.float32)
    return template, template[:, :, None], area, weights, box


@functools.lru_cache(maxsize=4096)
def _template_offsets(label: int, size: int, width: int) -> np.ndarray:
    """Flat pixel offsets ``row * width + column`` of a template's pixels in an image `width`
    wide, from the window's top-left pixel (cached, read-only).

    Painting an object is then one indexed assignment per array: the same pixels get the same
    values as ``np.copyto(window, value, where=template)``, which walks the mask element by
    element (with the colour broadcast over channels, three floats at a time) and took about
    15 % of a scene's instructions (valgrind).
    """
    rows, cols = np.nonzero(shape_template(label, size))
    offsets = rows.astype(np.intp) * width + cols
    offsets.setflags(write=False)
    return offsets


def _generate(rng: np.random.Generator, spec: _Spec, image, mask, ids):
    """Draw one scene into `image` (H, W, 3), its semantic `mask` and instance-id map `ids`
    (H, W, both zeros on entry).

    Returns:
        labels (int64 (k,)) and boxes (float32 (k, 4), pixel xywh) of the visible objects; the
        instance ``j`` covers exactly the pixels where ``ids == j + 1``.
    """
    paint_background(rng, image, spec.texture)
    # Flat views of the C-contiguous arrays (make_scenes passes rows of its own arrays).
    flat_image, flat_ids, flat_mask = image.reshape(-1, 3), ids.reshape(-1), mask.reshape(-1)
    count = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    allow_hidden = spec.max_occlusion >= 1.0
    labels, windows, full_area, visible = [], [], [], []
    for _ in range(count):
        label = int(rng.integers(spec.num_classes))
        size = int(rng.integers(spec.min_size, spec.max_size + 1))
        template, _, area, weights, _ = _template_info(label, size)
        # Upper-left corners for every try, drawn at once: floor(u * m) is uniform on 0..m-1.
        u = rng.random(2 * _PLACEMENT_TRIES).tolist()
        rows, cols = spec.height - size + 1, spec.width - size + 1
        if visible:
            keep_share = 1.0 - spec.max_occlusion
            need = np.array([max(MIN_VISIBLE_PIXELS, math.ceil(keep_share * a)) for a in full_area])
        placed = None
        for t in range(_PLACEMENT_TRIES):
            y0, x0 = int(u[2 * t] * rows), int(u[2 * t + 1] * cols)
            window_ids = ids[y0 : y0 + size, x0 : x0 + size]
            if not window_ids.any():
                placed, lost = (y0, x0), None
                break
            lost = np.bincount(window_ids[template], minlength=len(visible) + 1)[1:]
            remaining = np.array(visible) - lost
            # A placement may hide an earlier object entirely (only if max_occlusion == 1) but
            # never leave a remnant too small to annotate: the image would show an object that
            # no annotation mentions.
            if np.all((remaining >= need) | (allow_hidden & (remaining == 0))):
                placed = (y0, x0)
                break
        if placed is None:
            continue  # no room for this object: skip it rather than break an annotation rule
        y0, x0 = placed
        if lost is not None:
            visible = (np.array(visible) - lost).tolist()
        window = image[y0 : y0 + size, x0 : x0 + size]
        colour = _pick_colour(rng, weights @ window.reshape(size * size, 3))
        pixels = _template_offsets(label, size, spec.width) + (y0 * spec.width + x0)
        flat_image[pixels] = colour
        flat_ids[pixels] = len(labels) + 1
        # Painting the semantic mask in the same order keeps it equal to the merged instances.
        flat_mask[pixels] = label + 1
        labels.append(label)
        windows.append((y0, x0, size))
        full_area.append(area)
        visible.append(area)
    if spec.noise > 0:
        add_noise(rng, image, spec.noise)
    # np.clip's result (NaN and signed zeros included) in two ufunc calls, without its overhead
    np.minimum(1.0, np.maximum(0.0, image, out=image), out=image)

    keep = [j for j, v in enumerate(visible) if v > 0]
    if len(keep) < len(labels):  # fully hidden objects leave the annotation; renumber the rest
        renumber = np.zeros(256, dtype=np.uint8)
        renumber[np.array(keep, dtype=np.intp) + 1] = np.arange(1, len(keep) + 1)
        ids[:] = renumber[ids]
    boxes = np.empty((len(keep), 4), dtype=np.float32)
    for new, old in enumerate(keep):
        y0, x0, size = windows[old]
        if visible[old] == full_area[old]:  # nothing covers it: the template's own box
            bx, by, bw, bh = _template_info(labels[old], size)[-1]
            boxes[new] = (x0 + bx, y0 + by, bw, bh)
            continue
        rows, cols = np.nonzero(ids[y0 : y0 + size, x0 : x0 + size] == new + 1)
        top, left = int(rows.min()), int(cols.min())
        boxes[new] = (x0 + left, y0 + top, int(cols.max()) - left + 1, int(rows.max()) - top + 1)
    return np.array([labels[j] for j in keep], dtype=np.int64), boxes


def make_scenes(
    n: int,
    *,
    image_size=64,
    objects=(1, 3),
    size_range=None,
    num_classes: int = 3,
    noise: float = 0.08,
    texture: bool = True,
    max_occlusion: float = 0.5,
    seed: int = 0,
) -> Scenes:
    """Generate `n` scenes of coloured shapes on noisy, textured backgrounds, fully annotated.

    Each scene has a random background (base colour; with `texture`, smooth colour blobs and
    stripes), then ``k`` objects painted one after the other, then per-pixel noise, clipped to
    ``[0, 1]``. An object's class is drawn uniformly from the first `num_classes` entries of
    ``CLASS_NAMES`` and its colour uniformly from RGB, independently of the class (the *shape*
    decides the class), but at least ``MIN_CONTRAST`` away from the mean colour it covers.

    Occlusion: later objects are painted on top of earlier ones. A position that would cover more
    than `max_occlusion` of an earlier object's area, or leave it fewer than
    ``MIN_VISIBLE_PIXELS`` visible pixels, is rejected and another one drawn (20 tries; then the
    new object is skipped: 0.7 % of 64×64 scenes asked for 3 objects get 2 at the default sizes). With
    ``max_occlusion=1`` objects may disappear completely; they are then dropped from the
    annotation. So every pixel of the image that shows an object belongs to exactly one annotated
    instance: the semantic mask is the instance masks merged, and each box is the tight box
    (pixel-edge ``xywh``) of its instance's *visible* pixels.

    Args:
        n: number of scenes, ``>= 0``.
        image_size: ``int`` or ``(height, width)``, each side ``>= 8``.
        objects: objects per scene, ``int`` or ``(min, max)`` inclusive; ``1`` for
            classification and localization. A scene can hold fewer than ``min`` when the
            objects do not fit without breaking the occlusion rule above.
        size_range: ``(min, max)`` object size (side of its square window) in pixels; default
            a quarter to a half of the shorter image side.
        num_classes: number of classes, ``1 <= num_classes <= len(CLASS_NAMES)``.
        noise: standard deviation of the per-pixel noise, in ``[0, 1]``.
        texture: textured (True) or flat (False) backgrounds.
        max_occlusion: largest fraction of an object's area that later objects may cover, in
            ``[0, 1]`` (``0``: objects never overlap).
        seed: non-negative int; scene ``i`` depends only on ``seed`` and ``i``.

    Determinism: scene ``i`` is drawn from ``np.random.default_rng(SeedSequence(seed).spawn(n)[i])``
    alone, so the result does not depend on `n` (a shorter run is a prefix of a longer one),
    on the thread count, or on anything else in the process. Annotations are identical on every
    machine; image values are bit-identical on one machine and may differ in the last float bits
    between CPU types (vectorised ``sin``/``cos`` and BLAS kernels differ).

    Returns:
        A ``Scenes`` object (``images`` float32 ``(n, H, W, 3)``, ``masks`` uint8 ``(n, H, W)``,
        per-scene ``labels``, ``boxes`` and ``instance_masks``).

    Example:

    >>> scenes = make_scenes(4, image_size=32, objects=1, seed=1)
    >>> scenes.images.shape, scenes.images.dtype, scenes.masks.shape, scenes.label.shape
    ((4, 32, 32, 3), dtype('float32'), (4, 32, 32), (4,))
    >>> scene = scenes[0]
    >>> scene.names, scene.box.tolist(), sorted(np.unique(scene.mask).tolist())
    (['circle'], [10.0, 10.0, 8.0, 8.0], [0, 1])
    >>> np.array_equal(make_scenes(2, image_size=32, objects=1, seed=1).images, scenes.images[:2])
    True
    """
    spec = _check_args(
        n, image_size, objects, size_range, num_classes, noise, texture, seed, max_occlusion
    )
    images = np.empty((n, spec.height, spec.width, 3), dtype=np.float32)
    ids = np.zeros((n, spec.height, spec.width), dtype=np.uint8)
    masks = np.zeros((n, spec.height, spec.width), dtype=np.uint8)
    labels, boxes = [], []
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        rng = np.random.default_rng(child)
        scene_labels, scene_boxes = _generate(rng, spec, images[i], masks[i], ids[i])
        labels.append(scene_labels)
        boxes.append(scene_boxes)
    return Scenes(
        images,
        masks,
        ids,
        labels,
        boxes,
        class_names=CLASS_NAMES[: spec.num_classes],
        max_objects=spec.max_objects,
    )


__all__ = ["MIN_CONTRAST", "MIN_VISIBLE_PIXELS", "Scene", "Scenes", "make_scenes"]
