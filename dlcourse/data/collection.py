"""``Scenes``: a set of annotated images, and ``Scene``: one of them.

The annotations of a scene with ``k`` objects: ``labels`` int64 ``(k,)`` class ids, ``boxes``
float32 ``(k, 4)`` pixel ``xywh`` (upper-left corner, pixel-edge convention), an instance-id map
uint8 ``(H, W)`` (``0`` background, ``j + 1`` on the visible pixels of object ``j``), and the
semantic mask uint8 ``(H, W)`` (``0`` background, ``c + 1`` for class ``c``). Instance masks are
derived from the id map on demand, so they are disjoint by construction and cost no memory until
used.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers

import numpy as np


def _tight_box(pixels: np.ndarray) -> np.ndarray:
    """Pixel-edge ``xywh`` box of a non-empty boolean ``(H, W)`` mask."""
    rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
    return np.array(
        [cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], dtype=np.float32
    )


def _normalize(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    return (boxes / np.array([width, height, width, height], dtype=np.float32)).astype(np.float32)


def _single(counts: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(counts != 1)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"`{what}` is defined for single-object scenes only (make_scenes(..., objects=1)); use "
            f"`labels`/`boxes` for several objects. Received: scene {i} has {counts[i]} objects"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class Scene:
    """One annotated scene (views into its ``Scenes``; see the module docstring for the fields)."""

    index: int
    image: np.ndarray
    mask: np.ndarray
    instance_ids: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_objects(self) -> int:
        return len(self.labels)

    @property
    def instance_masks(self) -> np.ndarray:
        """bool ``(k, H, W)``: one mask of visible pixels per object."""
        return (
            self.instance_ids == np.arange(1, self.num_objects + 1, dtype=np.uint8)[:, None, None]
        )

    @property
    def label(self) -> int:
        """The class id of a single-object scene (ValueError otherwise)."""
        _single(np.array([self.num_objects]), "Scene.label")
        return int(self.labels[0])

    @property
    def box(self) -> np.ndarray:
        """float32 ``(4,)`` pixel ``xywh`` box of a single-object scene (ValueError otherwise)."""
        _single(np.array([self.num_objects]), "Scene.box")
        return self.boxes[0]

    @property
    def names(self) -> list[str]:
        """The class names of the objects, in painting order."""
        return [self.class_names[c] for c in self.labels]

    def normalized_boxes(self) -> np.ndarray:
        """float32 ``(k, 4)`` ``rel_xywh`` boxes (x, w divided by the width; y, h by the height)."""
        return _normalize(self.boxes, *self.mask.shape)


class Scenes:
    """A set of annotated scenes, usually made by ``make_scenes``.

    Attributes:
        images: float32 ``(n, H, W, 3)`` in ``[0, 1]``.
        masks: uint8 ``(n, H, W)`` semantic masks, ``0`` background, ``c + 1`` for class ``c``.
        instance_ids: uint8 ``(n, H, W)``, ``0`` background, ``j + 1`` on object ``j``'s pixels.
        labels: list of ``n`` int64 arrays ``(k_i,)`` of class ids.
        boxes: list of ``n`` float32 arrays ``(k_i, 4)``, pixel ``xywh`` tight boxes.
        class_names: names of the ``num_classes`` classes.
        max_objects: the most objects a scene of this kind may hold (the padded length of the
            detection targets, shared by every split of one data set).

    ``len(scenes)``, ``scenes[i]`` (a ``Scene``), ``scenes[a:b]`` and ``scenes[[i, j]]`` (a new
    ``Scenes``) and iteration work as for a sequence.
    """

    def __init__(
        self, images, masks, instance_ids, labels, boxes, *, class_names, max_objects=None
    ):
        n = len(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"Expected images of shape (n, H, W, 3). Received: {images.shape}")
        if masks.shape != images.shape[:3] or instance_ids.shape != images.shape[:3]:
            raise ValueError(
                f"Expected masks and instance_ids of shape {images.shape[:3]}. "
                f"Received: {masks.shape} and {instance_ids.shape}"
            )
        if len(labels) != n or len(boxes) != n:
            raise ValueError(
                f"Expected {n} label and box arrays. Received: {len(labels)} and {len(boxes)}"
            )
        self.images = images
        self.masks = masks
        self.instance_ids = instance_ids
        self.labels = list(labels)
        self.boxes = list(boxes)
        self.class_names = tuple(class_names)
        counts = self.num_objects
        most = int(counts.max()) if n else 0
        self.max_objects = most if max_objects is None else int(max_objects)
        if self.max_objects < most:
            raise ValueError(
                f"Expected max_objects >= the most objects in a scene ({most}). "
                f"Received: max_objects={max_objects}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return tuple(self.images.shape[1:3])

    @property
    def num_objects(self) -> np.ndarray:
        """int64 ``(n,)``: objects per scene."""
        return np.array([len(x) for x in self.labels], dtype=np.int64)

    @functools.cached_property
    def instance_masks(self) -> list[np.ndarray]:
        """List of ``n`` bool arrays ``(k_i, H, W)`` (computed on first use, then kept)."""
        return [self[i].instance_masks for i in range(len(self))]

    @property
    def label(self) -> np.ndarray:
        """int64 ``(n,)`` class ids of single-object scenes (ValueError otherwise)."""
        _single(self.num_objects, "Scenes.label")
        return np.array([x[0] for x in self.labels], dtype=np.int64).reshape(len(self))

    @property
    def box(self) -> np.ndarray:
        """float32 ``(n, 4)`` pixel ``xywh`` boxes of single-object scenes (ValueError otherwise)."""
        _single(self.num_objects, "Scenes.box")
        return np.stack(self.boxes).reshape(len(self), 4)

    def normalized_boxes(self) -> list[np.ndarray]:
        """List of float32 ``(k_i, 4)`` ``rel_xywh`` boxes (x, w / width; y, h / height)."""
        return [_normalize(b, *self.image_size) for b in self.boxes]

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index):
        if isinstance(index, numbers.Integral):
            i = int(index) + (len(self) if index < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"Scene index {index} out of range for {len(self)} scenes")
            return Scene(
                i,
                self.images[i],
                self.masks[i],
                self.instance_ids[i],
                self.labels[i],
                self.boxes[i],
                self.class_names,
            )
        return self.subset(index)

    def subset(self, indices) -> Scenes:
        """A new ``Scenes`` with the scenes at `indices` (a slice, or ints / a bool mask)."""
        if isinstance(indices, slice):
            picked = range(len(self))[indices]
        else:
            picked = np.arange(len(self))[np.asarray(indices)]
            if picked.ndim != 1:
                raise ValueError(f"Expected 1-D indices. Received: shape {np.shape(indices)}")
        picked = np.asarray(picked, dtype=np.intp)
        return Scenes(
            self.images[picked],
            self.masks[picked],
            self.instance_ids[picked],
            [self.labels[i] for i in picked],
            [self.boxes[i] for i in picked],
            class_names=self.class_names,
            max_objects=self.max_objects,
        )

    def split(self, sizes) -> tuple[Scenes, ...]:
        """Split into consecutive parts (the scenes are independent draws already).

        Args:
            sizes: fractions or counts. A single number gives two parts: that many (or that
                fraction) first, the rest second. A sequence gives one part per entry.

        Returns:
            A tuple of ``Scenes``.

        Example:

        >>> from dlcourse.data import make_scenes
        >>> train, val = make_scenes(10, image_size=16, objects=1).split(0.8)
        >>> len(train), len(val)
        (8, 2)
        """
        n = len(self)
        rest = isinstance(sizes, numbers.Real)
        parts = [sizes] if rest else list(sizes)
        if all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in parts):
            counts = [int(p) for p in parts]
        elif (
            all(isinstance(p, numbers.Real) and 0 <= p <= 1 for p in parts)
            and sum(parts) <= 1 + 1e-9
        ):
            ends = np.round(np.cumsum(parts) * n).astype(int)
            counts = list(np.diff(ends, prepend=0))
        else:
            raise ValueError(
                "Expected counts (ints) or fractions in [0, 1] summing to at most 1. "
                f"Received: sizes={sizes!r}"
            )
        if min(counts) < 0 or sum(counts) > n:
            raise ValueError(
                f"Expected non-negative counts summing to at most {n}. Received: sizes={sizes!r}"
            )
        if rest:
            counts.append(n - counts[0])
        ends = np.cumsum([0, *counts])
        return tuple(self.subset(slice(a, b)) for a, b in zip(ends[:-1], ends[1:], strict=True))

    def check(self) -> None:
        """Raise ValueError unless every annotation is consistent with the others.

        Checked per scene: image values in ``[0, 1]``; instance ids ``0..k``, each instance
        non-empty; the semantic mask is the instances merged (label + 1); each box is the tight
        box of its instance; labels in ``0 .. num_classes - 1``.
        """
        if self.images.dtype != np.float32 or (
            self.images.size and not 0 <= self.images.min() <= self.images.max() <= 1
        ):
            raise ValueError("Expected float32 images in [0, 1].")
        for scene in self:
            i, k = scene.index, scene.num_objects
            if scene.labels.shape != (k,) or scene.boxes.shape != (k, 4):
                raise ValueError(
                    f"Scene {i}: labels/boxes of shapes {scene.labels.shape}, {scene.boxes.shape}"
                )
            if k and not 0 <= scene.labels.min() <= scene.labels.max() < self.num_classes:
                raise ValueError(
                    f"Scene {i}: labels {scene.labels} outside 0..{self.num_classes - 1}"
                )
            if scene.instance_ids.max(initial=0) > k:
                raise ValueError(f"Scene {i}: instance ids above the object count {k}")
            merged = np.concatenate([[0], scene.labels + 1]).astype(np.uint8)[scene.instance_ids]
            if not np.array_equal(merged, scene.mask):
                raise ValueError(f"Scene {i}: the semantic mask is not the instances merged")
            for j, pixels in enumerate(scene.instance_masks):
                if not pixels.any():
                    raise ValueError(f"Scene {i}: instance {j} has no visible pixel")
                if not np.array_equal(_tight_box(pixels), scene.boxes[j]):
                    raise ValueError(
                        f"Scene {i}: box {scene.boxes[j]} of instance {j} is not its tight box "
                        f"{_tight_box(pixels)}"
                    )

    def __repr__(self) -> str:
        counts = self.num_objects
        objects = f"{counts.min()}–{counts.max()}" if len(self) else "0"
        return (
            f"Scenes(n={len(self)}, image_size={self.image_size}, classes={self.class_names}, "
            f"objects per scene {objects})"
        )
