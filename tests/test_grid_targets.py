"""dlcourse.detection.grid_targets: the grid detector's targets, and decoding them back."""

import numpy as np
import pytest

from dlcourse import data
from dlcourse.detection.evaluation import mean_average_precision
from dlcourse.detection.grid_targets import decode_grid_predictions, encode_grid_targets


def test_hand_worked_cells_offsets_and_sizes():
    # 64x32 image (height 64, width 32), grid 4: cells are 8 wide and 16 tall
    boxes = [[[0, 0, 8, 16], [20, 40, 10, 20], [0, 0, 0, 0]]]
    t = encode_grid_targets(boxes, [[1, 0, -1]], image_size=(64, 32), grid=4)
    assert t["dropped"] == 0
    assert np.argwhere(t["objectness"][0]).tolist() == [[0, 0], [3, 3]]
    assert t["class"][0, 0, 0] == 1 and t["class"][0, 3, 3] == 0
    assert (t["class"][0] == -1).sum() == 14
    # centre (4, 8) is the middle of cell (0, 0); centre (25, 50): col 3.125, row 3.125
    np.testing.assert_allclose(t["box"][0, 0, 0], [0.5, 0.5, 0.25, 0.25])
    np.testing.assert_allclose(t["box"][0, 3, 3], [0.125, 0.125, 10 / 32, 20 / 64])
    assert not t["box"][0][t["objectness"][0] == 0].any()


def test_collision_keeps_the_larger_object_and_counts_the_other():
    boxes = [[[2, 2, 4, 4], [0, 0, 8, 8], [1, 1, 6, 6]]]  # all three centres in cell (0, 0)
    t = encode_grid_targets(boxes, [[0, 1, 2]], image_size=16, grid=2)
    assert t["dropped"] == 2 and t["objectness"][0].sum() == 1
    assert t["class"][0, 0, 0] == 1  # the 8x8 one


@pytest.mark.parametrize("grid", [6, 12])
def test_round_trip_on_generated_scenes(grid):
    scenes = data.make_scenes(40, image_size=48, objects=(1, 3), seed=5)
    _, y = data.task_arrays(scenes, "detection")
    t = encode_grid_targets(y["boxes"], y["classes"], 48, grid, box_format="rel_xywh")
    assert t["objectness"].sum() + t["dropped"] == (y["classes"] >= 0).sum()
    found = decode_grid_predictions(
        t["objectness"], t["class"], t["box"], 48, iou_threshold=1.0, box_format="rel_xywh"
    )
    for i, image in enumerate(found):
        real = y["classes"][i] >= 0
        truth = {tuple(np.round(b, 3)) for b in y["boxes"][i][real]}
        decoded = {tuple(np.round(b, 3)) for b in image["boxes"]}
        assert decoded <= truth  # every decoded box is a true one, exactly
        assert len(decoded) == int(t["objectness"][i].sum())
    if t["dropped"] == 0:
        assert mean_average_precision(found, y, scenes.num_classes, format="rel_xywh")["map"] == 1.0


def test_decode_scores_threshold_and_per_class_nms():
    objectness = np.zeros((1, 2, 2))
    objectness[0, 0, 0], objectness[0, 0, 1], objectness[0, 1, 1] = 0.9, 0.8, 0.2
    probs = np.zeros((1, 2, 2, 2))
    probs[0, ..., 0] = 1.0  # every cell says class 0
    probs[0, 1, 1] = [0.3, 0.7]
    box = np.zeros((1, 2, 2, 4))
    box[0, 0, 0] = [0.9, 0.5, 0.5, 0.5]  # cells 16 wide, 8 tall: centre (14.4, 4), 16x8
    box[0, 0, 1] = [0.1, 0.5, 0.5, 0.5]  # centre (17.6, 4): IoU 0.67 with the first
    box[0, 1, 1] = [0.5, 0.5, 0.1, 0.1]
    found = decode_grid_predictions(objectness, probs, box, (16, 32), score_threshold=0.1)[0]
    # the 0.8 cell is suppressed by the 0.9 one (same class, IoU 0.67); the last cell scores
    # 0.2 * 0.7 = 0.14, class 1
    np.testing.assert_allclose(found["scores"], [0.9, 0.14])
    assert found["classes"].tolist() == [0, 1]
    np.testing.assert_allclose(found["boxes"][0], [6.4, 0, 16, 8], rtol=1e-6)
    strict = decode_grid_predictions(objectness, probs, box, (16, 32), score_threshold=0.5)[0]
    assert strict["classes"].tolist() == [0]
    loose = decode_grid_predictions(
        objectness, probs, box, (16, 32), score_threshold=0.1, iou_threshold=0.7
    )[0]
    np.testing.assert_allclose(loose["scores"], [0.9, 0.8, 0.14])
    assert (
        len(decode_grid_predictions(objectness, probs, box, (16, 32), max_per_image=1)[0]["scores"])
        == 1
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"grid": 0}, "positive integer grid"),
        ({"grid": 40}, "grid <= the image side"),
        ({"classes": [[0]]}, r"classes \(N, M\)"),
        ({"boxes": [[[0, 0, 0, 4]]]}, "positive box sizes"),
        ({"boxes": [[[40, 0, 4, 4]]]}, "centres inside the image"),
    ],
)
def test_encode_bad_input(kwargs, match):
    args = {"boxes": [[[0, 0, 4, 4]]], "classes": [[0]], "image_size": 32, "grid": 4}
    if "classes" in kwargs and "boxes" not in kwargs:
        args["boxes"] = [[[0, 0, 4, 4], [1, 1, 4, 4]]]
    with pytest.raises(ValueError, match=match):
        encode_grid_targets(**{**args, **kwargs})


def test_pixel_and_relative_formats_agree():
    pixels = [[[4, 8, 12, 6]]]
    rel = [[[4 / 32, 8 / 16, 12 / 32, 6 / 16]]]
    a = encode_grid_targets(pixels, [[1]], (16, 32), 4)
    b = encode_grid_targets(rel, [[1]], (16, 32), 4, box_format="rel_xywh")
    np.testing.assert_allclose(a["box"], b["box"], atol=1e-6)
    found = decode_grid_predictions(a["objectness"], a["class"], a["box"], (16, 32))
    np.testing.assert_allclose(found[0]["boxes"], pixels[0], atol=1e-5)
    found = decode_grid_predictions(
        a["objectness"], a["class"], a["box"], (16, 32), box_format="rel_xywh"
    )
    np.testing.assert_allclose(found[0]["boxes"], rel[0], atol=1e-6)
    with pytest.raises(ValueError, match="box_format"):
        encode_grid_targets(pixels, [[1]], (16, 32), 4, box_format="xyxy")


def test_decode_bad_input():
    with pytest.raises(ValueError, match=r"objectness \(N, G, G\)"):
        decode_grid_predictions(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)), np.zeros((1, 2, 3, 4)), 8)
    with pytest.raises(ValueError, match="Expected box"):
        decode_grid_predictions(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), np.zeros((1, 2, 2, 3)), 8)
    with pytest.raises(ValueError, match="class_probs"):
        decode_grid_predictions(np.zeros((1, 2, 2)), np.zeros((1, 3, 3)), np.zeros((1, 2, 2, 4)), 8)


def test_float32_relative_boxes_on_a_cell_edge_fall_into_the_pixel_boxes_cell():
    # 34 / 48 in float32, times 48, is 33.99999...: the centre (40, 42) must stay in column 5
    pixels = np.array([[[34.0, 36.0, 12.0, 12.0]]])
    rel = (pixels / 48).astype(np.float32)
    a = encode_grid_targets(pixels, [[0]], 48, 6)
    b = encode_grid_targets(rel, [[0]], 48, 6, box_format="rel_xywh")
    assert np.argwhere(a["objectness"][0]).tolist() == [[5, 5]]
    assert np.argwhere(b["objectness"][0]).tolist() == [[5, 5]]
    np.testing.assert_allclose(b["box"][0, 5, 5], [0.0, 0.25, 0.25, 0.25], atol=1e-6)
