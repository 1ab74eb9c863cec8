"""Tests of dlcourse.detection.boxes: hand-worked IoUs, conversions against Keras, NumPy vs keras.ops."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlcourse.detection.boxes import (
    FORMATS,
    box_giou_ops,
    box_iou,
    box_iou_ops,
    clip_boxes,
    convert_boxes,
    validate_boxes,
)

HEIGHT, WIDTH = 48, 80  # not square, so a swapped height/width shows


def random_xywh(rng, n, height=HEIGHT, width=WIDTH, integer=False):
    x = rng.uniform(0, width - 1, n)
    y = rng.uniform(0, height - 1, n)
    w = rng.uniform(1, width - x)
    h = rng.uniform(1, height - y)
    boxes = np.stack([x, y, w, h], axis=-1)
    return np.floor(boxes) if integer else boxes.astype(np.float32)


def rasterise(box, height, width):
    """The pixels of an integer pixel-edge xywh box, as a boolean mask."""
    x, y, w, h = (int(v) for v in box)
    mask = np.zeros((height, width), bool)
    mask[y : y + h, x : x + w] = True
    return mask


# ---------------------------------------------------------------- IoU by hand (pixels, xywh)

HAND_CASES = {
    "identical": ([2, 3, 4, 5], [2, 3, 4, 5], 1.0),
    "disjoint": ([0, 0, 2, 2], [5, 5, 2, 2], 0.0),
    "touching edge": ([0, 0, 2, 2], [2, 0, 2, 2], 0.0),  # columns 0-1 and 2-3: no shared pixel
    "touching corner": ([0, 0, 2, 2], [2, 2, 2, 2], 0.0),
    "one shared column": ([0, 0, 2, 2], [1, 0, 2, 2], 2 / 6),
    "contained": ([0, 0, 4, 4], [1, 1, 2, 2], 4 / 16),
    "half overlap": ([0, 0, 4, 2], [2, 0, 4, 2], 4 / 12),  # shifted by half a width: 1/3, not 1/2
    "cross": ([0, 2, 6, 2], [2, 0, 2, 6], 4 / 20),
    "zero area with itself": ([1, 1, 0, 3], [1, 1, 0, 3], 0.0),
    "zero area inside": ([1, 1, 0, 3], [0, 0, 4, 4], 0.0),
}


@pytest.mark.parametrize("case", HAND_CASES, ids=list(HAND_CASES))
def test_iou_hand_cases(case):
    a, b, expected = HAND_CASES[case]
    assert box_iou(a, b) == pytest.approx(expected)
    assert box_iou(b, a) == pytest.approx(expected)
    got = keras.ops.convert_to_numpy(box_iou_ops(np.float32(a), np.float32(b)))
    assert got == pytest.approx(expected, abs=1e-6)


def test_iou_equals_mask_iou_of_the_rasterised_boxes():
    """Pixel-edge semantics: the box IoU is the IoU of the pixel sets the boxes cover."""
    rng = np.random.default_rng(0)
    a, b = random_xywh(rng, 200, 12, 12, integer=True), random_xywh(rng, 200, 12, 12, integer=True)
    ious = box_iou(a, b)
    for box_a, box_b, iou in zip(a, b, ious, strict=True):
        ma, mb = rasterise(box_a, 12, 12), rasterise(box_b, 12, 12)
        assert iou == pytest.approx((ma & mb).sum() / (ma | mb).sum())


def test_iou_is_scale_invariant_so_relative_boxes_give_the_same_iou():
    rng = np.random.default_rng(1)
    a, b = random_xywh(rng, 50), random_xywh(rng, 50)
    rel = [convert_boxes(x, "xywh", "rel_xywh", (HEIGHT, WIDTH)) for x in (a, b)]
    np.testing.assert_allclose(box_iou(*rel, format="rel_xywh"), box_iou(a, b), atol=1e-6)


def test_iou_shapes_elementwise_broadcast_and_pairwise():
    rng = np.random.default_rng(2)
    a, b = random_xywh(rng, 5), random_xywh(rng, 3)
    pair = box_iou(a, b, pairwise=True)
    assert pair.shape == (5, 3)
    for i, j in itertools.product(range(5), range(3)):
        assert pair[i, j] == pytest.approx(box_iou(a[i], b[j]))
    assert box_iou(a, b[0]).shape == (5,)  # broadcasting
    assert box_iou(a[None], b[None], pairwise=True).shape == (1, 5, 3)  # batched
    assert box_iou(a[0], b[0]).shape == ()
    assert np.all((pair >= 0) & (pair <= 1))


def test_iou_agrees_with_keras_compute_iou():
    rng = np.random.default_rng(3)
    a, b = random_xywh(rng, 6), random_xywh(rng, 4)
    b[0] = a[0]  # one exact match
    ours = box_iou(a, b, pairwise=True)
    theirs = keras.utils.bounding_boxes.compute_iou(a, b, bounding_box_format="xywh")
    # Keras adds epsilon to the union; ours has no bias.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs), ours, atol=1e-5)


# ---------------------------------------------------------------- conversions


def keras_swaps_height_and_width_from_rel_center():
    """Keras 3.13 (Colab's) converts rel_center_xywh to pixels with height and width swapped."""
    box = keras.utils.bounding_boxes.convert_format(
        np.float32([[0.5, 0.5, 0.5, 0.5]]), "rel_center_xywh", "xyxy", height=10, width=20
    )
    return not np.allclose(keras.ops.convert_to_numpy(box), [[5, 2.5, 15, 7.5]])


@pytest.mark.parametrize("source,target", list(itertools.product(FORMATS, FORMATS)))
def test_conversion_agrees_with_keras_and_round_trips(source, target):
    if source == "rel_center_xywh" and not target.startswith("rel_"):
        if keras_swaps_height_and_width_from_rel_center():
            pytest.xfail(f"Keras {keras.__version__} swaps height and width here; ours is right")
    rng = np.random.default_rng(4)
    xywh = random_xywh(rng, 7)
    boxes = convert_boxes(xywh, "xywh", source, image_size=(HEIGHT, WIDTH))
    ours = convert_boxes(boxes, source, target, image_size=(HEIGHT, WIDTH))
    assert ours.dtype == np.float32 and ours.shape == (7, 4)
    theirs = keras.utils.bounding_boxes.convert_format(
        boxes, source=source, target=target, height=HEIGHT, width=WIDTH
    )
    np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(theirs), rtol=1e-5, atol=1e-5)
    back = convert_boxes(ours, target, source, image_size=(HEIGHT, WIDTH))
    np.testing.assert_allclose(back, boxes, rtol=1e-5, atol=1e-5)


def test_conversion_worked_examples():
    box = [8, 4, 16, 12]  # x, y, w, h in a 32 (high) x 64 (wide) image
    np.testing.assert_array_equal(convert_boxes(box, "xywh", "xyxy"), [8, 4, 24, 16])
    np.testing.assert_array_equal(convert_boxes(box, "xywh", "center_xywh"), [16, 10, 16, 12])
    np.testing.assert_array_equal(
        convert_boxes(box, "xywh", "rel_xywh", image_size=(32, 64)), [0.125, 0.125, 0.25, 0.375]
    )
    square = convert_boxes(box, "xywh", "rel_xywh", image_size=64)
    np.testing.assert_array_equal(square, [0.125, 0.0625, 0.25, 0.1875])
    # relative <-> relative needs no image size; batch dimensions are kept
    rel = np.zeros((2, 3, 4), np.float32)
    assert convert_boxes(rel, "rel_xywh", "rel_center_xywh").shape == (2, 3, 4)


def test_conversion_errors():
    with pytest.raises(ValueError, match="image_size"):
        convert_boxes([0, 0, 1, 1], "xywh", "rel_xywh")
    with pytest.raises(ValueError, match="image_size"):
        convert_boxes([0, 0, 1, 1], "xywh", "rel_xywh", image_size=(64, 64, 3))
    with pytest.raises(ValueError, match="image_size"):
        convert_boxes([0, 0, 1, 1], "rel_xywh", "xywh", image_size=(0, 64))
    with pytest.raises(ValueError, match="format"):
        convert_boxes([0, 0, 1, 1], "yxyx", "xywh")
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 4\)"):
        convert_boxes([0, 0, 1], "xywh", "xyxy")


# ---------------------------------------------------------------- clipping


def test_clip_boxes_worked_example_and_keras():
    boxes = np.array([[-2, 50, 10, 30], [70, -5, 20, 10], [100, 100, 5, 5], [1, 2, 3, 4]], float)
    clipped = clip_boxes(boxes, image_size=(HEIGHT, WIDTH))
    expected = [[0, 48, 8, 0], [70, 0, 10, 5], [80, 48, 0, 0], [1, 2, 3, 4]]
    np.testing.assert_array_equal(clipped, expected)
    xyxy = convert_boxes(boxes, "xywh", "xyxy")
    theirs = keras.utils.bounding_boxes.clip_to_image_size(
        {"boxes": xyxy, "labels": np.arange(4)},  # Keras 3.13 requires labels
        height=HEIGHT,
        width=WIDTH,
        bounding_box_format="xyxy",
    )["boxes"]
    np.testing.assert_allclose(
        convert_boxes(clipped, "xywh", "xyxy"), keras.ops.convert_to_numpy(theirs)
    )
    rel = convert_boxes(boxes, "xywh", "rel_center_xywh", image_size=(HEIGHT, WIDTH))
    np.testing.assert_allclose(
        convert_boxes(
            clip_boxes(rel, format="rel_center_xywh"), "rel_center_xywh", "xywh", (HEIGHT, WIDTH)
        ),
        clipped,
        atol=1e-5,
    )
    zero = clipped[[0, 2]]  # clipped to nothing: zero-area boxes on the border
    assert box_iou(zero, zero).tolist() == [0, 0] and box_iou(clipped[1], clipped[1]) == 1
    with pytest.raises(ValueError, match="image_size"):
        clip_boxes(boxes)


# ---------------------------------------------------------------- invalid boxes


def test_validate_names_the_offending_index():
    boxes = np.array([[0, 0, 2, 2], [0, 0, np.nan, 2], [0, 0, -1, 2]])
    with pytest.raises(ValueError, match=r"boxes\[1\] has a NaN"):
        validate_boxes(boxes)
    with pytest.raises(ValueError, match=r"boxes\[1\] has a negative width"):
        validate_boxes(boxes[[0, 2, 2]] * [1, 1, 1, 0] + [0, 0, 0, 2])
    with pytest.raises(ValueError, match=r"pred\[1, 0\] has a NaN or infinite"):
        validate_boxes(np.array([[[0, 0, 1, 1]], [[0, np.inf, 1, 1]]]), name="pred")
    with pytest.raises(ValueError, match=r"boxes\[0\] has a negative width .*'xyxy'"):
        validate_boxes([[5, 0, 3, 2]], format="xyxy")  # x2 < x1
    with pytest.raises(ValueError, match=r"shape"):
        validate_boxes(np.zeros((3, 5)))
    ok = validate_boxes([[0, 0, 0, 0], [1, 2, 3, 4]])  # zero area is valid
    assert ok.dtype == np.float32 and ok.shape == (2, 4)


def test_box_iou_raises_instead_of_a_wrong_iou():
    with pytest.raises(ValueError, match=r"a\[0\] has a negative width"):
        box_iou([[0, 0, -2, 2]], [[0, 0, 2, 2]])
    with pytest.raises(ValueError, match=r"^b has a negative width or height"):
        box_iou([0, 0, 2, 2], [0, 0, 2, -1])  # negative height
    with pytest.raises(ValueError, match=r"b\[1\] has a NaN"):
        box_iou([[0, 0, 2, 2]], [[0, 0, 2, 2], [np.nan, 0, 1, 1]], pairwise=True)


def test_box_iou_ops_on_invalid_boxes_is_documented():
    iou = keras.ops.convert_to_numpy(
        box_iou_ops(np.float32([[0, 0, -2, 2], [0, 0, np.nan, 2]]), np.float32([[0, 0, 2, 2]] * 2))
    )
    assert iou[0] == 0.0  # negative width counts as zero area
    assert np.isnan(iou[1])  # NaN is not hidden


# ---------------------------------------------------------------- keras.ops versions


@pytest.mark.parametrize("fmt", FORMATS)
def test_ops_iou_agrees_with_numpy(fmt):
    rng = np.random.default_rng(5)
    a = convert_boxes(random_xywh(rng, 8), "xywh", fmt, (HEIGHT, WIDTH))
    b = convert_boxes(random_xywh(rng, 6), "xywh", fmt, (HEIGHT, WIDTH))
    b[:3] = a[:3]
    pair = keras.ops.convert_to_numpy(box_iou_ops(a, b, fmt, pairwise=True))
    np.testing.assert_allclose(pair, box_iou(a, b, fmt, pairwise=True), atol=1e-5)
    elem = keras.ops.convert_to_numpy(box_iou_ops(a[:6], b, fmt))
    np.testing.assert_allclose(elem, box_iou(a[:6], b, fmt), atol=1e-5)


def numpy_giou(a, b):
    (ax, ay, aw, ah), (bx, by, bw, bh) = a, b
    hull = (max(ax + aw, bx + bw) - min(ax, bx)) * (max(ay + ah, by + bh) - min(ay, by))
    iou = box_iou(a, b)
    inter = iou * (aw * ah + bw * bh) / (1 + iou)
    union = aw * ah + bw * bh - inter
    return iou - (hull - union) / hull


def test_giou_against_numpy_and_its_range():
    rng = np.random.default_rng(6)
    a, b = random_xywh(rng, 20).astype(np.float64), random_xywh(rng, 20).astype(np.float64)
    b[0] = [WIDTH, HEIGHT, 1, 1]  # far apart: GIoU < 0
    got = keras.ops.convert_to_numpy(box_giou_ops(a, b))
    expected = [numpy_giou(x, y) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got[0] < 0 and np.all(got >= -1) and np.all(got <= 1)
    assert keras.ops.convert_to_numpy(box_giou_ops(a, a)) == pytest.approx(np.ones(20))


def test_ops_iou_is_differentiable_and_finite():
    true = tf.constant([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0]])
    pred = tf.Variable([[0.15, 0.1, 0.3, 0.3], [0.1, 0.1, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0]])
    with tf.GradientTape(persistent=True) as tape:
        iou = box_iou_ops(true, pred, "rel_xywh")
        giou = box_giou_ops(true, pred, "rel_xywh")
    g_iou, g_giou = tape.gradient(iou, pred).numpy(), tape.gradient(giou, pred).numpy()
    assert np.all(np.isfinite(g_iou)) and np.all(np.isfinite(g_giou))
    assert np.abs(g_iou[0]).sum() > 0  # overlapping boxes: IoU moves them
    assert np.abs(g_iou[1]).sum() == 0  # disjoint: IoU gives no gradient ...
    assert np.abs(g_giou[1]).sum() > 0  # ... GIoU does
    assert iou.numpy()[2] == 0.0  # both zero area


def test_box_iou_is_float64_from_the_coordinates_as_given():
    # 1 + 1e-9 and 2**24 + 1 are not float32 numbers: rounded, both pairs would have IoU 1 exactly
    iou = box_iou([[0, 0, 1, 1], [0, 0, 2**24, 1]], [[0, 0, 1 + 1e-9, 1], [0, 0, 2**24 + 1, 1]])
    assert iou.dtype == np.float64
    np.testing.assert_allclose(iou, [1 / (1 + 1e-9), 2**24 / (2**24 + 1)], rtol=1e-12)
    assert np.all(iou < 1)
