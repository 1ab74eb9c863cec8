"""Classification + localization: a shared backbone with a class head and a box head.

The lecture's idea: keep the classifier's feature extractor and add a small second head that
regresses the box ``(x, y, w, h)`` (upper-left corner). The model has two named outputs,

- ``"class"``: softmax probabilities, shape ``(N, C)``, trained with sparse cross-entropy against
  the class id;
- ``"box"``: sigmoid ``rel_xywh`` box, shape ``(N, 4)``, each number in ``[0, 1]``, trained with
  a box regression loss (``BoxLoss``) against the normalised true box (float32, docs/CONVENTIONS.md),

and one multi-task loss, ``cross-entropy + box_weight * box loss`` (``compile_localizer``). The
metrics (``MeanBoxIoU``, ``BoxIoUAbove``) work inside ``fit``; ``evaluate_localization`` computes
the same figures in NumPy. ``build_separate_networks`` is the alternative the lecture compares
against: one whole network per task, twice the backbone cost.

``BoxLoss``, ``MeanBoxIoU`` and ``BoxIoUAbove`` are registered as ``dlcourse>...``: a saved ``.keras``
localizer loads with ``keras.saving.load_model`` once this module is imported (``import
dlcourse.detection``; Keras itself imports only its own packages while loading), or with
``dlcourse.load_model``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from dlcourse.detection.boxes import (
    box_giou_ops,
    box_iou,
    box_iou_ops,
    check_format,
    validate_boxes,
)

__all__ = [
    "BOX_LOSSES",
    "BoxIoUAbove",
    "BoxLoss",
    "MeanBoxIoU",
    "box_loss",
    "build_backbone",
    "build_localizer",
    "build_separate_networks",
    "compile_localizer",
    "evaluate_localization",
]

BN_MOMENTUM = 0.9
"""Keras's 0.99 leaves BatchNorm's moving statistics behind on short runs: after ``n`` updates a
fraction ``momentum ** n`` of the initial statistics is left (0.37 after 100 steps at 0.99)."""

BOX_LOSSES = ("l1", "huber", "iou", "giou")
"""The box regression losses ``box_loss`` knows."""

_POOLING = {
    "flatten": layers.Flatten,
    "avg": layers.GlobalAveragePooling2D,
    "max": layers.GlobalMaxPooling2D,
}


# ---------------------------------------------------------------------------------------- models


def build_backbone(
    input_shape=(64, 64, 3),
    filters=(16, 32, 64, 64),
    name: str = "backbone",
    *,
    convs_per_stage: int = 2,
    pooling: str | None = "flatten",
) -> keras.Model:
    """A small convolutional feature extractor: stages of (conv 3x3, BatchNorm, ReLU) x k + max-pool.

    The defaults suit 64x64 single-object scenes: four stages leave a 4x4 map, so the flattened
    features (1,024) keep coarse position without making the heads' dense layers dominate the
    parameter count; two convolutions per stage recognise the shapes several times faster than
    one (docs/MEASUREMENTS.md).

    Args:
        input_shape: ``(H, W, 3)``.
        filters: channels of each stage; each stage halves the resolution.
        name: the model's name, also the prefix of its layers' names.
        convs_per_stage: convolutions before each pooling.
        pooling: how the feature map becomes a vector: ``"flatten"`` keeps *where* (what the box
            head needs); ``"avg"`` / ``"max"`` (global pooling) throw it away; ``None`` returns
            the feature map itself ``(N, H / 2^k, W / 2^k, filters[-1])`` (a grid detector's).

    Returns:
        An uncompiled ``keras.Model`` from images ``(N, H, W, 3)`` to features ``(N, D)`` (or
        the feature map, for ``pooling=None``).

    Example:
        >>> build_backbone((64, 64, 3), filters=(8, 16), convs_per_stage=1).output_shape
        (None, 4096)
    """
    if not isinstance(convs_per_stage, int) or convs_per_stage < 1:
        raise ValueError(f"Expected convs_per_stage >= 1. Received: {convs_per_stage!r}")
    if pooling is not None and pooling not in _POOLING:
        raise ValueError(f"Expected pooling in {(*_POOLING, None)}. Received: pooling={pooling!r}")
    if not filters or any(int(f) < 1 for f in filters):
        raise ValueError(f"Expected a non-empty list of positive filters. Received: {filters!r}")
    inputs = keras.Input(tuple(input_shape), name=f"{name}_image")
    x = inputs
    for i, f in enumerate(filters, start=1):
        for j in range(1, convs_per_stage + 1):
            tag = f"{i}_{j}" if convs_per_stage > 1 else f"{i}"
            x = layers.Conv2D(int(f), 3, padding="same", use_bias=False, name=f"{name}_conv{tag}")(
                x
            )
            x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn{tag}")(x)
            x = layers.ReLU(name=f"{name}_relu{tag}")(x)
        x = layers.MaxPooling2D(2, name=f"{name}_pool{i}")(x)
    if pooling is not None:
        x = _POOLING[pooling](name=f"{name}_{pooling}")(x)
    return keras.Model(inputs, x, name=name)


def _head(features, units: int, size: int, activation: str, name: str):
    x = features
    if len(x.shape) > 2:  # a backbone that ends in a feature map
        x = layers.Flatten(name=f"{name}_flatten")(x)
    if units:
        x = layers.Dense(units, activation="relu", name=f"{name}_hidden")(x)
    return layers.Dense(size, activation=activation, name=name)(x)


def _check_classes(num_classes) -> int:
    if not isinstance(num_classes, int | np.integer) or num_classes < 2:
        raise ValueError(f"Expected num_classes >= 2. Received: num_classes={num_classes!r}")
    return int(num_classes)


def build_localizer(
    num_classes: int,
    input_shape=(64, 64, 3),
    backbone: keras.Model | None = None,
    *,
    filters=(16, 32, 64, 64),
    convs_per_stage: int = 2,
    head_units: int = 64,
    name: str = "localizer",
) -> keras.Model:
    """Backbone + class head + box head, sharing the backbone (uncompiled).

    Args:
        num_classes: number of object classes ``C``.
        input_shape: ``(H, W, 3)``; ignored when ``backbone`` is given (its input shape is used).
        backbone: a model from images to features (a feature map is flattened); default
            ``build_backbone(input_shape, filters, convs_per_stage=convs_per_stage)``.
        filters, convs_per_stage: the default backbone's stages.
        head_units: width of each head's hidden ReLU layer (0: the heads are linear in the features).
        name: the model's name.

    Returns:
        ``keras.Model`` from ``"image"`` ``(N, H, W, 3)`` to ``{"class": (N, C) softmax,
        "box": (N, 4) sigmoid rel_xywh}``; ``model.predict`` returns that dict.

    Example:
        >>> model = build_localizer(3, filters=(8, 16), convs_per_stage=1)
        >>> {k: v.shape for k, v in model.output.items()}
        {'class': (None, 3), 'box': (None, 4)}
    """
    num_classes = _check_classes(num_classes)
    if backbone is None:
        backbone = build_backbone(input_shape, filters, convs_per_stage=convs_per_stage)
    inputs = keras.Input(backbone.input_shape[1:], name="image")
    features = backbone(inputs)
    outputs = {
        "class": _head(features, head_units, num_classes, "softmax", "class"),
        "box": _head(features, head_units, 4, "sigmoid", "box"),
    }
    return keras.Model(inputs, outputs, name=name)


def build_separate_networks(
    num_classes: int,
    input_shape=(64, 64, 3),
    *,
    filters=(16, 32, 64, 64),
    convs_per_stage: int = 2,
    head_units: int = 64,
    name: str = "separate_networks",
) -> keras.Model:
    """The alternative to sharing: a whole network per task (two backbones), same outputs.

    Same inputs, outputs, losses and metrics as ``build_localizer``, so the two compare directly
    (parameters, step time, quality).

    Example:
        >>> shared = build_localizer(3, filters=(8, 16), convs_per_stage=1)
        >>> separate = build_separate_networks(3, filters=(8, 16), convs_per_stage=1)
        >>> sorted(layer.name for layer in separate.layers if isinstance(layer, keras.Model))
        ['box_backbone', 'class_backbone']
        >>> separate.count_params() > shared.count_params()
        True
    """
    num_classes = _check_classes(num_classes)
    inputs = keras.Input(tuple(input_shape), name="image")
    outputs = {}
    for task, size, activation in (("class", num_classes, "softmax"), ("box", 4, "sigmoid")):
        backbone = build_backbone(
            input_shape, filters, f"{task}_backbone", convs_per_stage=convs_per_stage
        )
        outputs[task] = _head(backbone(inputs), head_units, size, activation, task)
    return keras.Model(inputs, outputs, name=name)


# ---------------------------------------------------------------------------------------- losses


def box_loss(y_true, y_pred, kind: str = "huber", delta: float = 0.1, box_format="rel_xywh"):
    """Box regression loss per box, in ``keras.ops``: shape ``(..., 4), (..., 4) -> (...)``.

    - ``"l1"``: mean absolute error of the four numbers.
    - ``"huber"``: Huber loss divided by ``delta`` (the smooth L1 of Fast R-CNN): quadratic for
      errors below ``delta``, ``|error| - delta / 2`` above, so large errors cost what they cost
      in L1 whatever ``delta`` is (Keras's ``Huber`` would scale them by ``delta``).
    - ``"iou"``: ``1 - IoU``. No gradient while the boxes do not overlap.
    - ``"giou"``: ``1 - GIoU``, which still pulls disjoint boxes together.

    The coordinate losses compare numbers in ``box_format``'s units (``rel_xywh``: fractions of
    the image); IoU losses do not depend on the units.

    Example:
        >>> y_true = np.array([[0.25, 0.25, 0.5, 0.5]])
        >>> y_pred = np.array([[0.25, 0.25, 0.5, 0.1]])  # height error 0.4
        >>> [round(float(box_loss(y_true, y_pred, k)[0]), 4) for k in BOX_LOSSES]
        [0.1, 0.0875, 0.8, 0.8]
    """
    if kind not in BOX_LOSSES:
        raise ValueError(f"Expected kind in {BOX_LOSSES}. Received: kind={kind!r}")
    if not delta > 0:
        raise ValueError(f"Expected delta > 0. Received: delta={delta!r}")
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    if kind == "iou":
        return 1.0 - box_iou_ops(y_true, y_pred, box_format)
    if kind == "giou":
        return 1.0 - box_giou_ops(y_true, y_pred, box_format)
    error = ops.abs(y_pred - y_true)
    if kind == "huber":
        error = ops.where(error < delta, 0.5 * error * error / delta, error - 0.5 * delta)
    return ops.mean(error, axis=-1)


@keras.saving.register_keras_serializable(package="dlcourse")
class BoxLoss(keras.losses.Loss):
    """``box_loss`` as a Keras loss (mean over the batch), for ``compile(loss={"box": ...})``.

    Args:
        kind: one of ``BOX_LOSSES``.
        delta: the Huber threshold (``kind="huber"``), in the boxes' units.
        box_format: the boxes' format (``rel_xywh`` for the localizer's box head).
    """

    def __init__(self, kind="huber", delta=0.1, box_format="rel_xywh", name=None, **kwargs):
        super().__init__(name=name or f"{kind}_box_loss", **kwargs)
        box_loss(np.zeros((1, 4)), np.zeros((1, 4)), kind, delta, box_format)  # check arguments
        self.kind, self.delta, self.box_format = kind, float(delta), check_format(box_format)

    def call(self, y_true, y_pred):
        return box_loss(y_true, y_pred, self.kind, self.delta, self.box_format)

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "delta": self.delta,
            "box_format": self.box_format,
        }


# ---------------------------------------------------------------------------------------- metrics


def _share_name(threshold: float) -> str:
    return f"share_iou_{round(100 * threshold)}"


@keras.saving.register_keras_serializable(package="dlcourse")
class MeanBoxIoU(keras.metrics.Metric):
    """Mean IoU between true and predicted boxes, over every box seen (for ``fit``/``evaluate``).

    Not ``keras.metrics.MeanIoU``, which is the segmentation metric (IoU per class of pixels).
    A negative predicted width or height counts as IoU 0 (``box_iou_ops``).

    Args:
        box_format: format of both true and predicted boxes.
        name: the metric's name (Keras logs it as ``box_<name>`` on the ``"box"`` output).

    Example:
        >>> metric = MeanBoxIoU()
        >>> metric.update_state([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]], [[0, 0, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]])
        >>> float(metric.result())
        0.5
    """

    def __init__(self, box_format="rel_xywh", name="mean_iou", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.box_format = check_format(box_format)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def _values(self, iou):
        return iou

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.cast(y_pred, self.dtype)
        values = self._values(box_iou_ops(ops.cast(y_true, self.dtype), y_pred, self.box_format))
        weight = ops.ones_like(values)
        if sample_weight is not None:
            weight = weight * ops.reshape(ops.cast(sample_weight, self.dtype), ops.shape(values))
        self.total.assign_add(ops.sum(values * weight))
        self.count.assign_add(ops.sum(weight))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)

    def get_config(self):
        return {**super().get_config(), "box_format": self.box_format}


@keras.saving.register_keras_serializable(package="dlcourse")
class BoxIoUAbove(MeanBoxIoU):
    """Share of boxes whose IoU with the true box is at least ``threshold`` (``>=``).

    Args:
        threshold: the IoU a box needs to count as found (0.5: the usual "correct localization").
        box_format: format of both true and predicted boxes.
        name: default ``share_iou_50`` for 0.5 (``box_share_iou_50`` in the logs).

    Example:
        >>> metric = BoxIoUAbove(0.5)
        >>> metric.update_state([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]], [[0, 0, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]])
        >>> metric.name, float(metric.result())
        ('share_iou_50', 0.5)
    """

    def __init__(self, threshold=0.5, box_format="rel_xywh", name=None, dtype=None):
        if not 0 <= threshold <= 1:
            raise ValueError(f"Expected 0 <= threshold <= 1. Received: threshold={threshold!r}")
        super().__init__(box_format=box_format, name=name or _share_name(threshold), dtype=dtype)
        self.threshold = float(threshold)

    def _values(self, iou):
        return ops.cast(iou >= self.threshold, self.dtype)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


# ----------------------------------------------------------------------------- compile, evaluate


def compile_localizer(
    model: keras.Model,
    box_weight: float = 5.0,
    learning_rate: float = 1e-3,
    box_loss: str = "huber",
    delta: float = 0.1,
    iou_threshold: float = 0.5,
) -> keras.Model:
    """Compile a two-output model with the multi-task loss ``CE + box_weight * box loss``.

    Adam; sparse cross-entropy on ``"class"``; ``BoxLoss(box_loss, delta)`` on ``"box"``; metrics
    ``class_accuracy``, ``box_mean_iou`` and ``box_share_iou_50`` in the logs. Targets:
    ``{"class": (N,) int ids, "box": (N, 4) float32 rel_xywh}``.

    Args:
        model: from ``build_localizer`` or ``build_separate_networks``.
        box_weight: the box loss's weight (the class loss has weight 1); ``>= 0``. The untrained
            Huber box loss is about 0.12 (errors are fractions of the image) against a
            cross-entropy of ln 3 = 1.1, so the box needs a weight well above 1 to count; a
            large weight finds the box sooner but learns the class later (lesson 07 sweeps it;
            the measurement behind the default: docs/MEASUREMENTS.md).
        learning_rate: Adam's learning rate.
        box_loss: one of ``BOX_LOSSES``.
        delta: the Huber threshold for ``box_loss="huber"``.
        iou_threshold: the IoU for the share metric.

    Returns:
        The same model, compiled.
    """
    if not box_weight >= 0:
        raise ValueError(f"Expected box_weight >= 0. Received: box_weight={box_weight!r}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss={
            "class": keras.losses.SparseCategoricalCrossentropy(),
            "box": BoxLoss(box_loss, delta),
        },
        loss_weights={"class": 1.0, "box": float(box_weight)},
        metrics={
            "class": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            "box": [MeanBoxIoU(), BoxIoUAbove(iou_threshold)],
        },
    )
    return model


def _split_predictions(predictions):
    if isinstance(predictions, dict):
        return predictions["class"], predictions["box"]
    if isinstance(predictions, list | tuple) and len(predictions) == 2:
        return predictions
    raise TypeError(
        "Expected a model, a dict {'class': ..., 'box': ...} or a pair (classes, boxes). "
        f"Received: {type(predictions).__name__}"
    )


def evaluate_localization(
    model_or_predictions,
    images=None,
    labels=None,
    boxes=None,
    box_format: str = "rel_xywh",
    threshold: float = 0.5,
    batch_size: int = 64,
) -> dict:
    """Accuracy, mean box IoU and share of boxes with IoU >= ``threshold``, in NumPy.

    Args:
        model_or_predictions: a model (its ``predict`` runs on ``images``), or its predictions:
            a dict ``{"class": probabilities (N, C) or ids (N,), "box": (N, 4)}`` or such a pair.
        images: ``(N, H, W, 3)``; needed only with a model.
        labels: ``(N,)`` true class ids.
        boxes: ``(N, 4)`` true boxes in ``box_format``.
        box_format: format of true and predicted boxes.
        threshold: IoU threshold for the share.
        batch_size: for ``predict``.

    Returns:
        ``{"accuracy": float, "mean_iou": float, "share_iou_50": float}`` (the last key follows
        ``threshold``), the same figures as the ``fit`` metrics.

    Raises:
        ValueError: a true or predicted box is NaN or has a negative size (``validate_boxes``).

    Example:
        >>> predictions = {"class": np.array([[0.9, 0.1], [0.2, 0.8]]),
        ...                "box": np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]])}
        >>> evaluate_localization(predictions, labels=[0, 0], boxes=[[0, 0, 0.5, 0.5]] * 2)
        {'accuracy': 0.5, 'mean_iou': 0.5, 'share_iou_50': 0.5}
    """
    if hasattr(model_or_predictions, "predict"):
        if images is None:
            raise ValueError("evaluate_localization(model, ...) needs the images.")
        predictions = model_or_predictions.predict(images, batch_size=batch_size, verbose=0)
    else:
        predictions = model_or_predictions
    classes, pred_boxes = (np.asarray(p) for p in _split_predictions(predictions))
    if classes.ndim == 2:
        classes = classes.argmax(axis=-1)
    labels = np.asarray(labels)
    true_boxes = validate_boxes(boxes, box_format, "boxes")
    pred_boxes = validate_boxes(pred_boxes, box_format, "predicted boxes")
    if not (len(classes) == len(labels) == len(true_boxes) == len(pred_boxes)):
        raise ValueError(
            f"Expected as many predictions as labels and boxes. Received: {len(classes)} "
            f"classes, {len(labels)} labels, {len(pred_boxes)} predicted and {len(true_boxes)} true boxes"
        )
    iou = box_iou(true_boxes, pred_boxes, box_format)
    return {
        "accuracy": float(np.mean(classes == labels)),
        "mean_iou": float(np.mean(iou)),
        _share_name(threshold): float(np.mean(iou >= threshold)),
    }
