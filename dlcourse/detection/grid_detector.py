"""A small one-stage grid detector: a convolutional backbone, and one prediction per cell.

The backbone halves the resolution once per stage, so a ``48 × 48`` image and three stages give a
``6 × 6`` feature map: one cell per ``8 × 8`` patch. Three ``1 × 1`` convolutions read every
cell's features — the same weights at every position, so the head does not care how many objects
there are — and predict, per cell:

- objectness (sigmoid): does an object's box centre fall in this cell?
- class probabilities (softmax over ``C`` classes);
- the box ``(dx, dy, w, h)`` (sigmoid): centre offset inside the cell and size as fractions of
  the image, the encoding of :func:`dlcourse.detection.grid_targets.encode_grid_targets`.

They are concatenated into one output ``"grid"`` of shape ``(N, G, G, 1 + C + 4)``.
:class:`GridDetectorLoss` trains it against :func:`pack_grid_targets`'s ``(N, G, G, 6)`` targets:
binary cross-entropy of the objectness on every cell, plus cross-entropy of the class and
``box_weight`` × the Huber loss of the box on the cells that hold an object (an empty cell has
no class or box to learn). :func:`split_grid_output` cuts the output back into its three parts for
:func:`dlcourse.detection.grid_targets.decode_grid_predictions`.

``GridDetectorLoss`` is registered as ``dlcourse>GridDetectorLoss``, so a saved model loads once
:mod:`dlcourse.detection` is imported (or with ``dlcourse.load_model``).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from dlcourse.detection.localization import BN_MOMENTUM, box_loss, build_backbone

__all__ = ["GridDetectorLoss", "build_grid_detector", "pack_grid_targets", "split_grid_output"]


def build_grid_detector(
    num_classes: int,
    input_shape=(48, 48, 3),
    filters=(16, 32, 64),
    head_filters: int = 64,
) -> keras.Model:
    """Backbone of (conv 3x3, BatchNorm, ReLU, max-pool) stages, then per-cell heads.

    Args:
        num_classes: object classes ``C >= 1``.
        input_shape: ``(H, W, 3)``; ``H`` and ``W`` divisible by ``2 ** len(filters)``.
        filters: channels of each stage; each stage halves the resolution.
        head_filters: channels of the shared 3x3 convolution before the 1x1 heads.

    Returns:
        An uncompiled ``keras.Model`` from images to ``"grid"`` ``(N, G, G, 1 + C + 4)``.

    Example:
    >>> build_grid_detector(3, (48, 48, 3)).output_shape
    (None, 6, 6, 8)
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"Expected num_classes >= 1. Received: {num_classes!r}")
    height, width = input_shape[:2]
    step = 2 ** len(filters)
    for side in (height, width):
        if side is not None and side % step:
            raise ValueError(
                f"Expected image sides divisible by 2 ** len(filters) = {step}. "
                f"Received: input_shape={tuple(input_shape)}"
            )
    inputs = keras.Input(tuple(input_shape), name="image")
    backbone = build_backbone(input_shape, filters, convs_per_stage=1, pooling=None)
    x = layers.Conv2D(int(head_filters), 3, padding="same", use_bias=False, name="head_conv")(
        backbone(inputs)
    )
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="head_bn")(x)
    x = layers.ReLU(name="head_relu")(x)
    objectness = layers.Conv2D(1, 1, activation="sigmoid", name="objectness")(x)
    classes = layers.Conv2D(num_classes, 1, activation="softmax", name="classes")(x)
    box = layers.Conv2D(4, 1, activation="sigmoid", name="box")(x)
    outputs = layers.Concatenate(name="grid")([objectness, classes, box])
    return keras.Model(inputs, outputs, name="grid_detector")


def pack_grid_targets(targets: dict) -> np.ndarray:
    """``(N, G, G, 6)`` float32 ``[objectness, class, dx, dy, w, h]`` from
    :func:`dlcourse.detection.grid_targets.encode_grid_targets`'s dict (empty cells: class 0, masked)."""
    try:
        objectness, cls, box = targets["objectness"], targets["class"], targets["box"]
    except (KeyError, TypeError):
        raise ValueError(
            "Expected the dict of encode_grid_targets (objectness, class, box)."
        ) from None
    cls = np.maximum(np.asarray(cls), 0).astype(np.float32)
    return np.concatenate(
        [
            np.asarray(objectness, np.float32)[..., None],
            cls[..., None],
            np.asarray(box, np.float32),
        ],
        axis=-1,
    )


def split_grid_output(grid, num_classes: int):
    """``(objectness (N, G, G), class_probs (N, G, G, C), box (N, G, G, 4))`` of a model output."""
    grid = np.asarray(grid)
    if grid.ndim != 4 or grid.shape[-1] != 1 + num_classes + 4:
        raise ValueError(
            f"Expected a grid output (N, G, G, {1 + num_classes + 4}) for {num_classes} classes. "
            f"Received: {grid.shape}"
        )
    return grid[..., 0], grid[..., 1 : 1 + num_classes], grid[..., 1 + num_classes :]


@keras.saving.register_keras_serializable(package="dlcourse")
class GridDetectorLoss(keras.losses.Loss):
    """Objectness BCE on every cell + (class CE + ``box_weight`` × box Huber) on object cells.

    Args:
        num_classes: object classes ``C``.
        box_weight: weight of the box term (``>= 0``).
        delta: Huber threshold (fractions of a cell or of the image).

    ``y_true``: ``(N, G, G, 6)`` from :func:`pack_grid_targets`; ``y_pred``: the model's ``"grid"``.
    The class and box terms are averaged over the object cells of the batch (at least one).

    Example:
    >>> import numpy as np
    >>> y = np.zeros((1, 2, 2, 6), "float32"); y[0, 0, 0] = [1, 2, 0.5, 0.5, 0.25, 0.25]
    >>> perfect = np.zeros((1, 2, 2, 8), "float32")
    >>> perfect[0, 0, 0] = [1, 0, 0, 1, 0.5, 0.5, 0.25, 0.25]
    >>> float(GridDetectorLoss(3)(y, perfect)) < 1e-5
    True
    """

    def __init__(self, num_classes: int, box_weight: float = 5.0, delta: float = 0.1, **kwargs):
        kwargs.setdefault("name", "grid_detector_loss")
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"Expected num_classes >= 1. Received: {num_classes!r}")
        if not box_weight >= 0 or not delta > 0:
            raise ValueError(
                f"Expected box_weight >= 0 and delta > 0. Received: {box_weight!r}, {delta!r}"
            )
        self.num_classes, self.box_weight, self.delta = num_classes, float(box_weight), float(delta)

    def call(self, y_true, y_pred):
        c = self.num_classes
        y_true = ops.cast(y_true, y_pred.dtype)
        eps = keras.config.epsilon()
        present = y_true[..., 0]
        obj = ops.clip(y_pred[..., 0], eps, 1 - eps)
        bce = -(present * ops.log(obj) + (1 - present) * ops.log(1 - obj))
        labels = ops.cast(y_true[..., 1], "int32")
        probs = ops.clip(y_pred[..., 1 : 1 + c], eps, 1.0)
        ce = -ops.sum(ops.one_hot(labels, c) * ops.log(probs), axis=-1)
        huber = box_loss(y_true[..., 2:], y_pred[..., 1 + c :], "huber", self.delta)
        cells = ops.maximum(ops.sum(present), 1.0)
        per_object = ops.sum(present * (ce + self.box_weight * huber)) / cells
        # one number per batch (Loss averages per-sample values: give every sample the same)
        total = ops.mean(bce) + per_object
        return ops.ones_like(y_pred[:, 0, 0, 0]) * total

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "box_weight": self.box_weight,
            "delta": self.delta,
        }
