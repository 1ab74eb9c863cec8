"""Segmentation quality (lessons 04–06): how right a predicted mask is, pixel by pixel and at its edges.

:func:`pixel_accuracy`, :func:`confusion_matrix`, :func:`per_class_iou`, :func:`mean_iou` (NumPy,
on whole arrays), :class:`MeanIoU` (the same mean IoU as a Keras metric for ``fit``) and
:func:`boundary_f1` (how crisp a mask is).

Inputs follow the course conventions: ``y_true`` is an integer mask ``(N, H, W)`` (or one ``(H, W)``
mask); ``y_pred`` is either such a mask or per-pixel scores ``(N, H, W, K)`` with ``K >= 2`` —
probabilities or logits, reduced with ``argmax`` over the last axis (the argmax of logits and of
their softmax are the same). A trailing axis of size 1, on either argument, is a channel axis of
labels and is dropped: one score per pixel is not a class distribution, so ``(N, H, W, 1)`` is
always a mask of labels (a single sigmoid channel must be thresholded into labels first).

**Absent classes.** A class that appears neither in the truth nor in the prediction has IoU
0/0: :func:`per_class_iou` returns ``NaN`` for it and :func:`mean_iou` averages over the other
classes only. That is what ``keras.metrics.MeanIoU`` does too (it averages over classes with a
non-zero denominator), so the two agree. A class present in only one of the two has IoU 0.
"""

from __future__ import annotations

import numpy as np

from dlcourse.data.masks import dilate
from dlcourse.quiet import import_keras

keras = import_keras()

__all__ = [
    "MeanIoU",
    "boundary_f1",
    "confusion_matrix",
    "mean_iou",
    "per_class_iou",
    "pixel_accuracy",
]


def _labels(y_true, y_pred):
    """Both arguments as integer label arrays of the same shape (scores are argmax-ed).

    A trailing axis of size 1 is a labels' channel axis (dropped, on either argument); ``y_pred``
    with one more axis than ``y_true`` and at least 2 entries on it is scores (argmax-ed).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim == 4 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    channel = y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1
    if channel:
        y_pred = y_pred[..., 0]
    elif y_pred.ndim == y_true.ndim + 1:
        y_pred = np.argmax(y_pred, axis=-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "Expected y_pred to be labels of the same shape as y_true, or scores with one more "
            f"(class) axis. Received: y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}"
        )
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not (np.issubdtype(y.dtype, np.integer) or np.all(np.equal(np.mod(y, 1), 0))):
            hint = (
                " (a trailing axis of size 1 holds labels; scores need at least 2 classes on "
                "the last axis, and one sigmoid channel must be thresholded into labels first)"
                if name == "y_pred" and channel
                else ""
            )
            raise ValueError(
                f"Expected integer class ids in {name}{hint}. Received dtype={y.dtype}"
            )
    return y_true.astype(np.int64), y_pred.astype(np.int64)


def pixel_accuracy(y_true, y_pred) -> float:
    """Fraction of pixels whose predicted class equals the true class.

    Args:
        y_true: integer mask ``(N, H, W)`` or ``(H, W)``.
        y_pred: mask of the same shape, or scores ``(..., K)``, ``K >= 2`` (argmax over the last
            axis); a trailing axis of size 1 on either is a labels' channel axis.

    Example:
    >>> pixel_accuracy([[0, 1], [1, 1]], [[0, 1], [0, 1]])
    0.75
    """
    y_true, y_pred = _labels(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts: row = true class, column = predicted class (as Keras).

    Example:
    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 1], num_classes=3)
    array([[1, 1, 0],
           [0, 1, 0],
           [0, 1, 0]])
    """
    if not isinstance(num_classes, int | np.integer) or num_classes < 1:
        raise ValueError(f"Expected num_classes >= 1. Received: num_classes={num_classes!r}")
    y_true, y_pred = _labels(y_true, y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(
                f"Expected {name} in [0, {num_classes}). "
                f"Received values from {y.min()} to {y.max()}"
            )
    flat = num_classes * y_true.ravel() + y_pred.ravel()
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def per_class_iou(y_true, y_pred, num_classes: int) -> np.ndarray:
    """IoU of every class, ``TP / (TP + FP + FN)``, as a float64 array of length ``num_classes``.

    A class absent from both ``y_true`` and ``y_pred`` has no IoU (0/0): its entry is ``NaN``,
    so it can neither reward nor punish the model. Present in one only: 0.

    Example:
    >>> per_class_iou([0, 0, 1, 1], [0, 1, 1, 1], num_classes=3)
    array([0.5       , 0.66666667,        nan])
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(y_true, y_pred, num_classes: int) -> float:
    """Mean of :func:`per_class_iou` over the classes present in truth or prediction.

    Equals ``keras.metrics.MeanIoU`` (up to its epsilon of 1e-7). ``NaN`` for empty input.

    Example:
    >>> round(mean_iou([0, 0, 1, 1], [0, 1, 1, 1], num_classes=3), 4)  # (1/2 + 2/3) / 2
    0.5833
    """
    iou = per_class_iou(y_true, y_pred, num_classes)
    present = ~np.isnan(iou)
    return float(iou[present].mean()) if present.any() else float("nan")


@keras.saving.register_keras_serializable(package="dlcourse")
class MeanIoU(keras.metrics.MeanIoU):
    """Mean IoU for ``compile(metrics=[...])``: integer masks in, per-pixel probabilities out.

    ``keras.metrics.MeanIoU`` with the course's defaults: ``sparse_y_pred=False`` (the model outputs
    ``(N, H, W, K)`` probabilities, argmax-ed here) and the name ``"mean_iou"`` (so ``fit`` logs
    ``val_mean_iou``). Classes absent from both truth and prediction are left out of the mean,
    as in :func:`mean_iou`. Registered as ``dlcourse>MeanIoU``.

    Example:
    >>> m = MeanIoU(num_classes=2)
    >>> _ = m.update_state([[0, 1]], [[[0.9, 0.1], [0.8, 0.2]]])
    >>> round(float(m.result()), 4)  # class 0: 1/2, class 1: 0/1
    0.25
    """

    def __init__(
        self,
        num_classes,
        name="mean_iou",
        dtype=None,
        ignore_class=None,
        sparse_y_true=True,
        sparse_y_pred=False,
        axis=-1,
    ):
        super().__init__(
            num_classes=num_classes,
            name=name,
            dtype=dtype,
            ignore_class=ignore_class,
            sparse_y_true=sparse_y_true,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """As Keras, but scores with a single class (their argmax is always 0) are refused."""
        shape = tuple(y_pred.shape) if hasattr(y_pred, "shape") else np.shape(y_pred)
        if not self.sparse_y_pred and shape[-1:] == (1,):
            raise ValueError(
                "Expected per-pixel scores with at least 2 classes on the last axis "
                f"(sparse_y_pred=False). Received: y_pred.shape={shape}; for "
                "labels with a channel axis of size 1 use sparse_y_pred=True"
            )
        return super().update_state(y_true, y_pred, sample_weight)


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another class (both sides of every edge are marked)."""
    b = np.zeros(labels.shape, dtype=bool)
    dv = labels[..., 1:, :] != labels[..., :-1, :]
    dh = labels[..., :, 1:] != labels[..., :, :-1]
    b[..., 1:, :] |= dv
    b[..., :-1, :] |= dv
    b[..., :, 1:] |= dh
    b[..., :, :-1] |= dh
    return b


def boundary_f1(y_true, y_pred, tolerance: int = 1) -> float:
    """Boundary F1 score: how well the class edges of ``y_pred`` match those of ``y_true``.

    The boundary of a mask is the set of pixels with a 4-neighbour of a different class.
    Precision is the fraction of predicted boundary pixels within ``tolerance`` pixels
    (Chebyshev distance) of a true boundary pixel; recall the fraction of true boundary pixels
    within ``tolerance`` of a predicted one; the score is their harmonic mean, computed per image
    and averaged over the batch. An image where neither mask has a boundary scores 1; where only
    one has, 0. Blurry, blocky or shifted edges lower it even when pixel accuracy is high.

    Args:
        y_true: integer masks ``(N, H, W)`` or one ``(H, W)`` mask.
        y_pred: masks of the same shape, or scores ``(..., K)``, ``K >= 2`` (argmax over the last
            axis); a trailing axis of size 1 on either is a labels' channel axis.
        tolerance: non-negative int, in pixels.

    Example:
    >>> t = np.zeros((8, 8), int); t[:, 4:] = 1
    >>> p = np.zeros((8, 8), int); p[:, 5:] = 1  # the edge shifted by one pixel
    >>> boundary_f1(t, p, tolerance=0), boundary_f1(t, p, tolerance=1)
    (0.5, 1.0)
    """
    if not isinstance(tolerance, int | np.integer) or tolerance < 0:
        raise ValueError(
            f"Expected a non-negative int tolerance. Received: tolerance={tolerance!r}"
        )
    y_true, y_pred = _labels(y_true, y_pred)
    if y_true.ndim == 2:
        y_true, y_pred = y_true[None], y_pred[None]
    bt, bp = _boundaries(y_true), _boundaries(y_pred)
    hit_p = (bp & dilate(bt, tolerance)).sum(axis=(-2, -1))
    hit_t = (bt & dilate(bp, tolerance)).sum(axis=(-2, -1))
    n_p, n_t = bp.sum(axis=(-2, -1)), bt.sum(axis=(-2, -1))
    scores = []
    for hp, ht, np_, nt in zip(hit_p, hit_t, n_p, n_t, strict=True):
        if np_ == 0 and nt == 0:
            scores.append(1.0)
            continue
        precision = hp / np_ if np_ else 0.0
        recall = ht / nt if nt else 0.0
        total = precision + recall
        scores.append(2 * precision * recall / total if total else 0.0)
    return float(np.mean(scores))
