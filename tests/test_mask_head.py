"""dlcourse.detection.mask_head: crops, training pairs, the head, pasting back, mask IoU."""

import numpy as np
import pytest

from dlcourse.data import make_scenes
from dlcourse.detection import mask_head


def test_crop_at_the_box_size_is_the_box_itself():
    rng = np.random.default_rng(0)
    images = rng.random((3, 20, 24, 3)).astype(np.float32)
    boxes = [[2, 3, 8, 8], [10, 0, 8, 8], [16, 12, 8, 8]]
    crops = mask_head.crop_boxes(images, boxes, [0, 2, 1], size=8)
    for crop, (x, y, w, h), i in zip(crops, boxes, [0, 2, 1], strict=True):
        np.testing.assert_allclose(crop, images[i, y : y + h, x : x + w], atol=1e-5)


def test_crop_half_size_averages_pixel_pairs():
    image = np.arange(36, dtype=np.float32).reshape(1, 6, 6, 1)
    crop = mask_head.crop_boxes(image, [[0, 0, 4, 4]], [0], size=2)[0, ..., 0]
    expected = [[image[0, :2, :2].mean(), image[0, :2, 2:4].mean()],
                [image[0, 2:4, :2].mean(), image[0, 2:4, 2:4].mean()]]  # fmt: skip
    np.testing.assert_allclose(crop, expected, atol=1e-5)


def test_crop_outside_the_image_reads_zero_and_bad_input_is_refused():
    image = np.ones((1, 8, 8, 1), np.float32)
    crop = mask_head.crop_boxes(image, [[-4, 0, 8, 8]], [0], size=8)[0, ..., 0]
    assert np.all(crop[:, :4] == 0) and np.all(crop[:, 4:] == 1)
    with pytest.raises(ValueError, match="image_index"):
        mask_head.crop_boxes(image, [[0, 0, 4, 4]], [1])
    with pytest.raises(ValueError, match="positive width"):
        mask_head.crop_boxes(image, [[0, 0, 0, 4]], [0])
    with pytest.raises(ValueError, match="method"):
        mask_head.crop_boxes(image, [[0, 0, 4, 4]], [0], method="area")
    assert mask_head.crop_boxes(image, np.zeros((0, 4)), [], size=4).shape == (0, 4, 4, 1)


def _bilinear_reference(image, x, y, w, h, size):
    """Plain loops: each crop pixel samples its centre, bilinear between pixel centres clamped to
    the outermost ones; a centre outside the image (pixel-edge coordinates) reads 0."""
    height, width, channels = image.shape
    out = np.zeros((size, size, channels))
    for i in range(size):
        for j in range(size):
            v, u = y + (i + 0.5) * h / size, x + (j + 0.5) * w / size  # pixel edges
            if not (0 <= v <= height and 0 <= u <= width):
                continue
            cy, cx = min(max(v - 0.5, 0), height - 1), min(max(u - 0.5, 0), width - 1)
            y0, x0 = int(np.floor(cy)), int(np.floor(cx))
            y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
            fy, fx = cy - y0, cx - x0
            out[i, j] = (image[y0, x0] * (1 - fy) * (1 - fx) + image[y0, x1] * (1 - fy) * fx
                         + image[y1, x0] * fy * (1 - fx) + image[y1, x1] * fy * fx)  # fmt: skip
    return out


def test_whole_image_upsampled_has_no_ring_of_zeros():
    image = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4, 1)
    crop = mask_head.crop_boxes(image, [[0, 0, 4, 4]], [0], size=8)[0]
    assert crop.min() == 1.0 and crop.max() == 16.0  # the corners read the corner pixels
    np.testing.assert_allclose(crop, _bilinear_reference(image[0], 0, 0, 4, 4, 8), atol=1e-5)


def test_crop_matches_a_numpy_reference_at_the_edges_and_outside():
    rng = np.random.default_rng(4)
    images = rng.random((2, 9, 12, 2)).astype(np.float32)
    boxes = [
        [0, 0, 12, 9],  # the whole image, upsampled
        [7.5, 5.25, 4.5, 3.75],  # touches the right and bottom edges, smaller than the crop
        [0, 0, 3, 2],  # the top-left corner
        [-2.5, 6, 5, 6],  # partly outside, left and bottom
        [10, -3, 6, 5],  # partly outside, right and top
        [2.3, 1.7, 6.4, 5.9],  # inside, fractional
    ]
    index = [0, 1, 0, 1, 0, 1]
    crops = mask_head.crop_boxes(images, boxes, index, size=8)
    for crop, box, i in zip(crops, boxes, index, strict=True):
        np.testing.assert_allclose(crop, _bilinear_reference(images[i], *box, 8), atol=1e-5)


def test_mask_targets_of_an_object_at_the_image_edge_reach_the_edge():
    mask = np.zeros((1, 12, 12), np.float32)
    mask[0, 8:, 8:] = 1  # a 4×4 object in the bottom-right corner, its box smaller than the crop
    target = mask_head.crop_boxes(mask, [[8, 8, 4, 4]], [0], size=16)[0, ..., 0]
    # the first two rows and columns blend with the background pixels above and left of the box
    np.testing.assert_array_equal(target[2:, 2:], np.ones((14, 14)))
    assert target[0, 0] == 0.625**2  # a quarter-and-an-eighth pixel from the box's corner
    nearest = mask_head.crop_boxes(mask, [[8, 8, 4, 4]], [0], size=16, method="nearest")
    np.testing.assert_array_equal(nearest[0, ..., 0], np.ones((16, 16)))


def test_paste_inverts_crop_at_the_box_size():
    rng = np.random.default_rng(1)
    masks = rng.random((2, 16, 16)) < 0.5
    boxes = np.array([[3, 2, 8, 8], [6, 5, 10, 10]], dtype=float)
    crops = mask_head.crop_boxes(masks.astype(np.float32), boxes, [0, 1], size=8)[..., 0]
    pasted = mask_head.paste_masks(crops, boxes[:, :], (16, 16))
    x, y = 3, 2
    np.testing.assert_array_equal(pasted[0][y : y + 8, x : x + 8], masks[0][y : y + 8, x : x + 8])
    assert not pasted[0][:y].any() and not pasted[0][:, :x].any()  # nothing outside the box
    assert pasted.shape == (2, 16, 16)


def test_paste_accepts_softmax_outputs_and_checks_shapes():
    probs = np.zeros((1, 4, 4, 2))
    probs[..., 1] = 1.0
    pasted = mask_head.paste_masks(probs, [[1, 1, 2, 2]], 5)
    assert pasted.sum() == 4 and pasted[0, 1:3, 1:3].all()
    with pytest.raises(ValueError, match="mask_probs"):
        mask_head.paste_masks(np.zeros((2, 4, 4)), [[1, 1, 2, 2]], 5)
    with pytest.raises(ValueError, match="S >= 2"):
        mask_head.paste_masks(np.zeros((1, 1, 1)), [[1, 1, 2, 2]], 5)


def test_box_masks_fill_the_pixels_of_the_box():
    filled = mask_head.box_masks([[1, 2, 3, 2]], (6, 6))[0]
    expected = np.zeros((6, 6), bool)
    expected[2:4, 1:4] = True
    np.testing.assert_array_equal(filled, expected)


def test_mask_iou():
    a = np.zeros((2, 4, 4), bool)
    b = a.copy()
    a[0, :2] = True
    b[0, :1] = True
    np.testing.assert_allclose(mask_head.mask_iou(a, b), [0.5, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        mask_head.mask_iou(a, b[0])


def test_jitter_boxes():
    rng = np.random.default_rng(2)
    boxes = np.array([[10.0, 10.0, 20.0, 10.0]] * 200)
    np.testing.assert_allclose(mask_head.jitter_boxes(boxes, rng, 0.0), boxes)
    moved = mask_head.jitter_boxes(boxes, rng, 0.1)
    centres = moved[:, :2] + moved[:, 2:] / 2
    assert np.all(np.abs(centres - [20.0, 15.0]) <= [2.0 + 1e-9, 1.0 + 1e-9])
    assert np.all(
        (moved[:, 2] > 20 * np.exp(-0.1) - 1e-9) & (moved[:, 2] < 20 * np.exp(0.1) + 1e-9)
    )
    assert moved[:, 0].std() > 0.5


def test_mask_head_data_targets_are_the_objects_own_pixels():
    scenes = make_scenes(20, image_size=48, objects=(1, 3), seed=3)
    crops, targets, labels = mask_head.mask_head_data(scenes, size=16, jitter=0.0)
    n = sum(s.num_objects for s in scenes)
    assert crops.shape == (n, 16, 16, 3) and targets.shape == (n, 16, 16) and labels.shape == (n,)
    assert set(np.unique(targets)) <= {0, 1}
    # pasted back into the exact boxes, the targets are close to the instance masks
    boxes = np.concatenate([s.boxes for s in scenes])
    masks = np.concatenate([s.instance_masks for s in scenes])
    pasted = mask_head.paste_masks(targets.astype(float), boxes, (48, 48))
    assert np.mean(mask_head.mask_iou(pasted, masks)) > 0.85
    # where a box also covers another object, the target leaves that object's pixels out
    other = np.stack([s.mask > 0 for s in scenes for _ in range(s.num_objects)]) & ~masks
    in_box = mask_head.box_masks(boxes, (48, 48))
    crowded = (other & in_box).sum((1, 2)) >= 10
    assert crowded.sum() >= 3  # the scenes have such boxes
    taken = (pasted & other).sum((1, 2))[crowded] / (other & in_box).sum((1, 2))[crowded]
    assert np.all(taken < 0.35) and taken.mean() < 0.1, (
        taken
    )  # a filled box: 1 (resampling blurs edges)
    jittered = mask_head.mask_head_data(scenes, size=16, jitter=0.15, seed=1)[1]
    assert not np.array_equal(jittered, targets)


def test_mask_head_data_needs_objects():
    scenes = make_scenes(2, image_size=32, objects=0, seed=0)
    with pytest.raises(ValueError, match="at least one object"):
        mask_head.mask_head_data(scenes)


def test_build_mask_head():
    model = mask_head.build_mask_head(16)
    assert model.output_shape == (None, 16, 16, 2)
    assert any(layer.name.startswith("skip") for layer in model.layers)
    with pytest.raises(ValueError, match="divisible"):
        mask_head.build_mask_head(10)


def test_boxes_are_checked_with_the_packages_validator():
    image = np.ones((1, 8, 8, 1), np.float32)
    with pytest.raises(ValueError, match=r"boxes\[1\] has a NaN"):
        mask_head.crop_boxes(image, [[0, 0, 4, 4], [0, np.nan, 4, 4]], [0, 0])
    with pytest.raises(ValueError, match=r"shape \(K, 4\)"):
        mask_head.crop_boxes(image, [[[0, 0, 4, 4]]], [0])
