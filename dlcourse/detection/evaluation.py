"""Object detection's evaluation pieces, in NumPy: non-max suppression, matching, AP and mAP.

A detector predicts many overlapping, scored boxes per image; **non-max suppression** keeps the
best-scoring box of each cluster (:func:`non_max_suppression`, the same rule as
``tf.image.non_max_suppression``, tested against it). Detections are then judged against the true
objects: a detection is a **true positive** when it overlaps a true box of its class that no
higher-scoring detection took, by IoU at least ``iou_threshold`` (:func:`match_detections`, the
COCO rule: the best still-unmatched true box wins, the last one on an exact tie as in pycocotools;
a second detection of the same object is a false positive). Sorting all detections of a class by score gives a precision–recall curve, and
**average precision** is the area under its upper envelope (:func:`average_precision`,
all-point interpolation, PASCAL VOC 2010 onwards). **mAP** is the mean over the classes
(:func:`mean_average_precision`); mAP@0.5 is the lectures' figure.

Boxes are in any format of :mod:`dlcourse.detection.boxes` (default the course's ``"xywh"``, upper-left
corner). Classes that have no true object in the data have no AP (``nan``) and do not enter the
mean; a class with true objects and no detections has AP 0.
"""

from __future__ import annotations

import numbers

import numpy as np

from dlcourse.detection.boxes import box_iou, validate_boxes

__all__ = [
    "average_precision",
    "match_detections",
    "match_indices",
    "mean_average_precision",
    "non_max_suppression",
]


def _scores(scores, n: int, name: str = "scores") -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n,):
        raise ValueError(f"Expected {name} of shape ({n},), one per box. Received: {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"Expected finite {name}. Received: {scores[~np.isfinite(scores)][:3]}")
    return scores


def _threshold(value, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"Expected 0 <= {name} <= 1. Received: {name}={value!r}")
    return float(value)


def _box_array(boxes, format: str, name: str) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"Expected {name} of shape (N, 4). Received: {boxes.shape}")
    validate_boxes(boxes, format, name)
    return boxes


def _by_score(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score; equal scores keep their order (as TensorFlow does)."""
    return np.argsort(-scores, kind="stable")


def non_max_suppression(
    boxes,
    scores,
    iou_threshold: float = 0.5,
    *,
    score_threshold: float | None = None,
    max_outputs: int | None = None,
    format: str = "xywh",
) -> np.ndarray:
    """Greedy non-max suppression: the indices of the boxes kept, best score first.

    Repeatedly keep the best-scoring remaining box and drop every remaining box whose IoU with it
    is **greater than** ``iou_threshold`` (a box at exactly the threshold stays), as
    ``tf.image.non_max_suppression`` does.

    Args:
        boxes: ``(N, 4)`` boxes in ``format``.
        scores: ``(N,)`` finite scores.
        iou_threshold: in ``[0, 1]``.
        score_threshold: if given, only boxes with a score **above** it take part.
        max_outputs: keep at most this many (positive int); all by default.
        format: a box format of :mod:`dlcourse.detection.boxes`.

    Returns:
        int64 array ``(K,)`` of indices into ``boxes``, by descending score.

    Example:
    >>> boxes = [[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 5, 5]]
    >>> non_max_suppression(boxes, [0.9, 0.8, 0.7]).tolist()
    [0, 2]
    """
    boxes = _box_array(boxes, format, "boxes")
    scores = _scores(scores, len(boxes))
    iou_threshold = _threshold(iou_threshold, "iou_threshold")
    if max_outputs is not None and (
        not isinstance(max_outputs, numbers.Integral) or isinstance(max_outputs, bool)
        or max_outputs < 1
    ):  # fmt: skip
        raise ValueError(f"Expected max_outputs >= 1 or None. Received: {max_outputs!r}")
    order = _by_score(scores)
    if score_threshold is not None:
        order = order[scores[order] > float(score_threshold)]
    limit = len(order) if max_outputs is None else int(max_outputs)
    iou = box_iou(boxes[order], boxes[order], format, pairwise=True) if len(order) else None
    alive = np.ones(len(order), dtype=bool)
    kept = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        kept.append(order[i])
        if len(kept) == limit:
            break
        alive[i + 1 :] &= iou[i, i + 1 :] <= iou_threshold
    return np.array(kept, dtype=np.int64)


def match_detections(
    pred_boxes, pred_scores, true_boxes, iou_threshold: float = 0.5, format: str = "xywh"
) -> np.ndarray:
    """Which detections of one class in one image are true positives (the COCO rule).

    Detections are taken by descending score (equal scores in their given order); each takes the
    still-unmatched true box it overlaps most, if that IoU is at least ``iou_threshold``, and is a
    false positive otherwise (a second detection of an object already found is one). A detection
    overlapping two free true boxes by exactly the same IoU takes the **last** of them, as
    pycocotools' ``COCOeval.evaluateImg`` does (it replaces its candidate on an equal IoU).

    Args:
        pred_boxes: ``(N, 4)`` detected boxes; pred_scores: ``(N,)``.
        true_boxes: ``(M, 4)`` true boxes of the same class and image.
        iou_threshold: in ``[0, 1]``.
        format: a box format of :mod:`dlcourse.detection.boxes`.

    Returns:
        bool array ``(N,)``, in the order of ``pred_boxes``.

    Example:
    >>> truth = [[0, 0, 10, 10]]
    >>> match_detections([[0, 0, 10, 9], [0, 0, 10, 10], [30, 30, 4, 4]], [0.6, 0.9, 0.8], truth)
    array([False,  True, False])
    """
    return match_indices(pred_boxes, pred_scores, true_boxes, iou_threshold, format) >= 0


def match_indices(
    pred_boxes, pred_scores, true_boxes, iou_threshold: float = 0.5, format: str = "xywh"
) -> np.ndarray:
    """:func:`match_detections` with the matched true box of each detection: its index, or -1.

    Example:
    >>> match_indices([[0, 0, 10, 9], [0, 0, 10, 10], [30, 30, 4, 4]], [0.6, 0.9, 0.8],
    ...               [[30, 30, 4, 4], [0, 0, 10, 10]])
    array([-1,  1,  0])
    """
    pred = _box_array(pred_boxes, format, "pred_boxes")
    true = _box_array(true_boxes, format, "true_boxes")
    scores = _scores(pred_scores, len(pred), "pred_scores")
    iou_threshold = _threshold(iou_threshold, "iou_threshold")
    matched = np.full(len(pred), -1, dtype=np.int64)
    if len(pred) == 0 or len(true) == 0:
        return matched
    iou = box_iou(pred, true, format, pairwise=True)
    free = np.ones(len(true), dtype=bool)
    for i in _by_score(scores):
        candidates = np.where(free, iou[i], -1.0)
        j = len(candidates) - 1 - int(np.argmax(candidates[::-1]))  # ties: the last, as COCO
        if candidates[j] >= iou_threshold:
            matched[i], free[j] = j, False
    return matched


def average_precision(scores, true_positive, num_truth: int) -> float:
    """Area under the precision–recall curve of one class (all-point interpolation).

    The detections are sorted by descending score; after each one, recall = true positives so far
    ÷ ``num_truth`` and precision = true positives so far ÷ detections so far. Each precision is
    replaced by the best precision at that recall or higher (the curve's upper envelope), and AP
    sums precision × the recall gained at every true positive.

    Args:
        scores: ``(N,)`` scores of every detection of the class (all images together).
        true_positive: ``(N,)`` bools from :func:`match_detections`.
        num_truth: how many true objects of the class there are (``>= 0``).

    Returns:
        AP in ``[0, 1]``; ``nan`` when ``num_truth == 0`` (nothing to find: no AP).

    Example:
    >>> round(average_precision([0.9, 0.8, 0.7, 0.6], [True, False, True, False], 2), 4)
    0.8333
    """
    if not isinstance(num_truth, numbers.Integral) or isinstance(num_truth, bool) or num_truth < 0:
        raise ValueError(f"Expected an integer num_truth >= 0. Received: {num_truth!r}")
    tp = np.asarray(true_positive)
    if tp.dtype != bool:
        raise ValueError(f"Expected true_positive to be booleans. Received dtype {tp.dtype}")
    scores = _scores(scores, len(tp))
    if int(tp.sum()) > num_truth:
        raise ValueError(
            f"Expected at most num_truth={num_truth} true positives. Received: {int(tp.sum())}"
        )
    if num_truth == 0:
        return float("nan")
    tp = tp[_by_score(scores)]
    hits = np.cumsum(tp)
    precision = hits / np.arange(1, len(tp) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(envelope[tp].sum() / num_truth)


def _images(data, name: str, with_scores: bool) -> list[dict]:
    """Per-image dicts from a list of dicts or one dict of padded arrays (class < 0 = padding)."""
    keys = ("boxes", "classes", "scores") if with_scores else ("boxes", "classes")
    if isinstance(data, dict):
        if not all(k in data for k in keys):
            raise ValueError(f"Expected {name} with the keys {keys}. Received: {sorted(data)}")
        data = [{k: data[k][i] for k in keys} for i in range(len(data["classes"]))]
    images = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not all(k in item for k in keys):
            raise ValueError(f"Expected {name}[{i}] to be a dict with the keys {keys}.")
        classes = np.asarray(item["classes"]).reshape(-1)
        boxes = np.asarray(item["boxes"], dtype=np.float64).reshape(-1, 4)
        if len(boxes) != len(classes):
            raise ValueError(
                f"Expected as many boxes as classes in {name}[{i}]. "
                f"Received: {len(boxes)} boxes, {len(classes)} classes"
            )
        real = classes >= 0
        image = {"boxes": boxes[real], "classes": classes[real].astype(np.int64)}
        if with_scores:
            image["scores"] = _scores(
                np.asarray(item["scores"]).reshape(-1), len(classes), f"{name}[{i}] scores"
            )[real]
        images.append(image)
    return images


def mean_average_precision(
    detections, truths, num_classes: int, iou_threshold: float = 0.5, format: str = "xywh"
) -> dict:
    """mAP over a data set: AP per class (:func:`average_precision`), then the mean.

    Args:
        detections: one entry per image, a dict ``{"boxes": (k, 4), "scores": (k,),
            "classes": (k,)}`` (after non-max suppression), or one dict of such arrays padded to
            ``(N, K, ...)`` with class ``-1`` for empty slots.
        truths: the same per image without ``"scores"``; e.g. the ``"detection"`` targets of
            ``dlcourse.data.task_arrays`` (padded with class ``-1``).
        num_classes: object classes ``0 .. num_classes - 1``.
        iou_threshold: the IoU a detection needs (0.5 for mAP@0.5).
        format: the box format of both.

    Returns:
        ``{"map": mean AP over the classes that have true objects, "ap": float64 (num_classes,)
        with nan for classes without any, "num_truth": int64 (num_classes,)}``; ``map`` is nan
        when no class has a true object.

    Example:
    >>> truth = [{"boxes": [[0, 0, 8, 8]], "classes": [1]}]
    >>> found = [{"boxes": [[0, 0, 8, 8], [9, 9, 4, 4]], "scores": [0.9, 0.3], "classes": [1, 0]}]
    >>> result = mean_average_precision(found, truth, num_classes=3)
    >>> result["map"], result["ap"].tolist()
    (1.0, [nan, 1.0, nan])
    """
    if not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"Expected num_classes >= 1. Received: {num_classes!r}")
    found = _images(detections, "detections", with_scores=True)
    true = _images(truths, "truths", with_scores=False)
    if len(found) != len(true):
        raise ValueError(
            f"Expected detections for every image. Received: {len(found)} detections, "
            f"{len(true)} truths"
        )
    for name, images in (("detections", found), ("truths", true)):
        for i, image in enumerate(images):
            if len(image["classes"]) and image["classes"].max() >= num_classes:
                raise ValueError(
                    f"Expected classes below num_classes={num_classes} in {name}[{i}]. "
                    f"Received: {image['classes'].max()}"
                )
    ap = np.full(num_classes, np.nan)
    num_truth = np.zeros(num_classes, dtype=np.int64)
    for c in range(num_classes):
        scores, hits = [], []
        for f, t in zip(found, true, strict=True):
            mine, theirs = f["classes"] == c, t["boxes"][t["classes"] == c]
            num_truth[c] += len(theirs)
            scores.append(f["scores"][mine])
            hits.append(
                match_detections(f["boxes"][mine], f["scores"][mine], theirs, iou_threshold, format)
            )
        ap[c] = average_precision(np.concatenate(scores), np.concatenate(hits), int(num_truth[c]))
    present = num_truth > 0
    return {
        "map": float(ap[present].mean()) if present.any() else float("nan"),
        "ap": ap,
        "num_truth": num_truth,
    }
