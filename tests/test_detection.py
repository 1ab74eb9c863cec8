"""dlcourse.detection.evaluation: NMS against TensorFlow, matching, AP and mAP on hand-worked cases."""

import numpy as np
import pytest

from dlcourse import data
from dlcourse.detection import boxes as box_utils
from dlcourse.detection.evaluation import (
    average_precision,
    match_detections,
    match_indices,
    mean_average_precision,
    non_max_suppression,
)

# --------------------------------------------------------------------------------------- NMS


def test_nms_hand_worked():
    boxes = [[0, 0, 10, 10], [1, 0, 10, 10], [20, 20, 5, 5], [21, 20, 5, 5], [0, 30, 4, 4]]
    scores = [0.6, 0.9, 0.5, 0.7, 0.1]
    # 1 (0.9) hides 0 (IoU 0.82); 3 (0.7) hides 2 (IoU 0.67); 4 is alone
    assert non_max_suppression(boxes, scores).tolist() == [1, 3, 4]
    assert non_max_suppression(boxes, scores, max_outputs=2).tolist() == [1, 3]
    assert non_max_suppression(boxes, scores, score_threshold=0.5).tolist() == [1, 3]
    # a threshold above every overlap keeps everything, by score
    assert non_max_suppression(boxes, scores, iou_threshold=0.9).tolist() == [1, 3, 0, 2, 4]


def test_nms_keeps_a_box_at_exactly_the_threshold_and_ties_in_order():
    # IoU of a 1x2 box and its upper 1x1 half is exactly 0.5
    assert non_max_suppression([[0, 0, 1, 2], [0, 0, 1, 1]], [0.9, 0.8], 0.5).tolist() == [0, 1]
    assert non_max_suppression([[0, 0, 1, 2], [0, 0, 1, 1]], [0.9, 0.8], 0.49).tolist() == [0]
    far = [[0, 0, 1, 1], [5, 5, 1, 1], [10, 10, 1, 1]]
    assert non_max_suppression(far, [0.5, 0.5, 0.5]).tolist() == [0, 1, 2]


def test_nms_empty_and_formats():
    assert non_max_suppression(np.zeros((0, 4)), np.zeros(0)).tolist() == []
    xywh = np.array([[0, 0, 10, 10], [1, 0, 10, 10]], dtype=np.float32)
    xyxy = box_utils.convert_boxes(xywh, "xywh", "xyxy")
    assert non_max_suppression(xyxy, [0.2, 0.3], format="xyxy").tolist() == [1]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("iou_threshold", [0.3, 0.5, 0.7])
def test_nms_equals_tensorflow(seed, iou_threshold):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    n = 60
    xywh = np.concatenate([rng.uniform(0, 40, (n, 2)), rng.uniform(2, 20, (n, 2))], axis=1)
    scores = rng.permutation(n) / n + 0.01  # distinct, so the order is defined
    x1, y1, x2, y2 = box_utils.convert_boxes(xywh, "xywh", "xyxy").T
    yxyx = np.stack([y1, x1, y2, x2], axis=1).astype(np.float32)
    expected = tf.image.non_max_suppression(
        yxyx, scores.astype(np.float32), n, iou_threshold=iou_threshold, score_threshold=0.2
    ).numpy()
    ours = non_max_suppression(xywh, scores, iou_threshold, score_threshold=0.2)
    assert ours.tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"boxes": [[0, 0, 1, 1]], "scores": [0.1, 0.2]}, r"scores of shape \(1,\)"),
        ({"boxes": [[0, 0, 1, 1]], "scores": [np.nan]}, "finite scores"),
        ({"boxes": [[0, 0, -1, 1]], "scores": [0.1]}, "negative"),
        ({"boxes": [[0, 0, 1]], "scores": [0.1]}, r"shape \(N, 4\)"),
        ({"boxes": [[0, 0, 1, 1]], "scores": [0.1], "iou_threshold": 1.5}, "iou_threshold"),
        ({"boxes": [[0, 0, 1, 1]], "scores": [0.1], "max_outputs": 0}, "max_outputs"),
    ],
)
def test_nms_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        non_max_suppression(**kwargs)


# ----------------------------------------------------------------------------------- matching


def test_match_duplicates_are_false_positives_and_the_best_free_truth_wins():
    truth = [[0, 0, 10, 10], [4, 0, 10, 10]]
    pred = [[0, 0, 10, 10], [1, 0, 10, 10], [40, 40, 2, 2]]
    # the best detection (index 1) overlaps truth 0 most (0.82) and takes it; index 0 then takes
    # truth 1 (IoU 0.43 < 0.5): false positive at 0.5, true positive at 0.4
    assert match_detections(pred, [0.5, 0.9, 0.7], truth).tolist() == [False, True, False]
    assert match_detections(pred, [0.5, 0.9, 0.7], truth, 0.4).tolist() == [True, True, False]
    assert match_detections(pred, [0.5, 0.9, 0.7], np.zeros((0, 4))).tolist() == [False] * 3
    assert match_detections(np.zeros((0, 4)), [], truth).tolist() == []


# ---------------------------------------------------------------------------------------- AP


def test_average_precision_hand_worked():
    # precision after each detection: 1, 1/2, 2/3, 2/4; envelope at the hits: 1 and 2/3
    assert average_precision([0.9, 0.8, 0.7, 0.6], [True, False, True, False], 2) == pytest.approx(
        (1 + 2 / 3) / 2
    )
    # the order is the scores', not the arrays'
    assert average_precision([0.6, 0.7, 0.8, 0.9], [False, True, False, True], 2) == pytest.approx(
        (1 + 2 / 3) / 2
    )
    # a missed object caps recall: two of three found, both first
    assert average_precision([0.9, 0.8], [True, True], 3) == pytest.approx(2 / 3)
    # a later, better precision lifts the earlier one (the envelope): hits at 2nd and 3rd
    assert average_precision([0.9, 0.8, 0.7], [False, True, True], 2) == pytest.approx(
        (2 / 3 + 2 / 3) / 2
    )
    assert average_precision([], np.zeros(0, dtype=bool), 4) == 0.0
    assert np.isnan(average_precision([0.5], [False], 0))


def test_average_precision_bad_input():
    with pytest.raises(ValueError, match="booleans"):
        average_precision([0.5], [1], 1)
    with pytest.raises(ValueError, match="at most num_truth"):
        average_precision([0.5, 0.4], [True, True], 1)
    with pytest.raises(ValueError, match="num_truth >= 0"):
        average_precision([0.5], [True], -1)


# --------------------------------------------------------------------------------------- mAP


def test_map_of_the_truth_itself_is_one_on_generated_scenes():
    scenes = data.make_scenes(20, image_size=48, objects=(1, 3), seed=3)
    _, truth = data.task_arrays(scenes, "detection")  # padded with class -1
    rng = np.random.default_rng(0)
    found = {
        "boxes": truth["boxes"],
        "classes": truth["classes"],
        "scores": rng.uniform(0.1, 1, truth["classes"].shape),
    }
    result = mean_average_precision(found, truth, scenes.num_classes, format="rel_xywh")
    assert result["map"] == 1.0
    counts = np.bincount(np.concatenate(scenes.labels), minlength=scenes.num_classes)
    assert result["num_truth"].tolist() == counts.tolist()


def test_map_hand_worked_with_an_absent_class_and_a_missed_one():
    truths = [
        {"boxes": [[0, 0, 10, 10], [20, 20, 10, 10]], "classes": [0, 1]},
        {"boxes": [[5, 5, 10, 10]], "classes": [0]},
    ]
    detections = [
        # class 0: a hit (0.9) and a duplicate (0.8); class 1 not found; a class-2 false alarm
        {
            "boxes": [[0, 0, 10, 10], [0, 1, 10, 10], [30, 0, 5, 5]],
            "scores": [0.9, 0.8, 0.7],
            "classes": [0, 0, 2],
        },
        {"boxes": [[5, 5, 10, 10]], "scores": [0.6], "classes": [0]},
    ]
    result = mean_average_precision(detections, truths, num_classes=4)
    # class 0 by score: hit, duplicate, hit -> precision 1, 1/2, 2/3; AP (1 + 2/3) / 2
    assert result["ap"][0] == pytest.approx((1 + 2 / 3) / 2)
    assert result["ap"][1] == 0.0  # one object, never found
    assert np.isnan(result["ap"][2]) and np.isnan(result["ap"][3])  # no true objects: no AP
    assert result["map"] == pytest.approx(((1 + 2 / 3) / 2 + 0.0) / 2)
    assert result["num_truth"].tolist() == [2, 1, 0, 0]
    # a looser IoU does not rescue the duplicate: the object was already taken
    assert mean_average_precision(detections, truths, 4, iou_threshold=0.1)["ap"][0] == (
        pytest.approx((1 + 2 / 3) / 2)
    )


def test_map_bad_input():
    one = [{"boxes": [[0, 0, 1, 1]], "classes": [0]}]
    found = [{"boxes": [[0, 0, 1, 1]], "scores": [0.5], "classes": [0]}]
    with pytest.raises(ValueError, match="every image"):
        mean_average_precision(found * 2, one, 1)
    with pytest.raises(ValueError, match="below num_classes=1"):
        mean_average_precision([{**found[0], "classes": [3]}], one, 1)
    with pytest.raises(ValueError, match="keys"):
        mean_average_precision([{"boxes": [[0, 0, 1, 1]], "classes": [0]}], one, 1)
    with pytest.raises(ValueError, match="as many boxes as classes"):
        mean_average_precision(found, [{"boxes": [[0, 0, 1, 1]], "classes": [0, 1]}], 2)
    assert np.isnan(mean_average_precision(found, [{"boxes": [], "classes": []}], 1)["map"])


def test_match_indices_agrees_with_match_detections_and_names_the_object():
    rng = np.random.default_rng(11)
    for _ in range(20):
        truth = np.concatenate([rng.uniform(0, 40, (5, 2)), rng.uniform(4, 12, (5, 2))], axis=1)
        pred = truth[rng.integers(0, 5, 8)] + rng.normal(0, 1.5, (8, 4)) * [1, 1, 0.3, 0.3]
        pred[:, 2:] = np.abs(pred[:, 2:]) + 1
        scores = rng.permutation(8) / 8
        idx = match_indices(pred, scores, truth)
        np.testing.assert_array_equal(idx >= 0, match_detections(pred, scores, truth))
        matched = idx[idx >= 0]
        assert len(set(matched.tolist())) == len(matched)  # an object is matched once at most
        iou = box_utils.box_iou(pred[idx >= 0], truth[matched])
        assert np.all(iou >= 0.5)


def test_equal_iou_with_two_truths_takes_the_last_as_cocoeval():
    # the detection sits between two true boxes and overlaps each by exactly 5/15 = 1/3
    truth = [[-5, 0, 10, 10], [5, 0, 10, 10]]
    assert box_utils.box_iou([[0, 0, 10, 10]], truth, pairwise=True).tolist() == [[1 / 3, 1 / 3]]
    # pycocotools COCOeval.evaluateImg replaces its candidate on an equal IoU: the last truth
    assert match_indices([[0, 0, 10, 10]], [0.9], truth, iou_threshold=0.3).tolist() == [1]
    # a second, lower-scoring detection with the same tie gets the one left over
    two = match_indices([[0, 0, 10, 10]] * 2, [0.9, 0.8], truth, iou_threshold=0.3)
    assert two.tolist() == [1, 0]
    # a strictly better overlap still wins, wherever it is
    assert match_indices([[-1, 0, 10, 10]], [0.9], truth, iou_threshold=0.3).tolist() == [0]
