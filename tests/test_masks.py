"""dlcourse.data.masks: dilation, outline distance and region counting against plain loops."""

import itertools

import numpy as np
import pytest

from dlcourse.data import make_scenes
from dlcourse.data.masks import count_regions, dilate, outline_distance

RNG = np.random.default_rng(5)


def _dilate_loop(mask, radius):
    h, w = mask.shape[-2:]
    out = np.zeros_like(mask)
    for y, x in itertools.product(range(h), range(w)):
        window = mask[..., max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1]
        out[..., y, x] = window.any(axis=(-2, -1))
    return out


@pytest.mark.parametrize("radius", [0, 1, 2, 5])
def test_dilate_equals_the_window_loop(radius):
    mask = RNG.random((3, 9, 7)) < 0.1
    np.testing.assert_array_equal(dilate(mask, radius), _dilate_loop(mask, radius))


@pytest.mark.parametrize(
    "mask, radius, match",
    [
        (np.zeros((4, 4), bool), -1, "non-negative int radius"),
        (np.zeros((4, 4), bool), 1.5, "non-negative int radius"),
        (np.zeros((4, 4), int), 1, "boolean mask"),
        (np.zeros(4, bool), 1, "at least 2 axes"),
    ],
)
def test_dilate_refuses_bad_input(mask, radius, match):
    with pytest.raises(ValueError, match=match):
        dilate(mask, radius)


def test_outline_distance_agrees_with_dilation_on_scenes():
    """``distance >= d`` exactly where no pixel of another class lies within Chebyshev ``d``."""
    masks = make_scenes(4, image_size=24, seed=3).masks
    r = 4
    distance = outline_distance(masks, r)
    assert distance.dtype == np.int32 and distance.shape == masks.shape
    for d in range(r + 1):
        sees_other = np.zeros(masks.shape, bool)
        for c in np.unique(masks):
            sees_other |= (masks == c) & dilate(masks != c, d)
        np.testing.assert_array_equal(distance >= d, ~sees_other, err_msg=f"d={d}")


def test_outline_distance_ignores_the_image_frame_and_caps():
    assert (outline_distance(np.zeros((1, 5, 5), int), 3) == 3).all()
    with pytest.raises(ValueError, match="integer masks"):
        outline_distance(np.zeros((5, 5), int), 2)
    with pytest.raises(ValueError, match="max_radius"):
        outline_distance(np.zeros((1, 5, 5), int), -1)


def _count_loop(binary):
    """Flood fill, one region at a time."""
    seen = np.zeros_like(binary)
    count = 0
    h, w = binary.shape
    for start in zip(*np.nonzero(binary), strict=True):
        if seen[start]:
            continue
        count += 1
        stack = [start]
        while stack:
            y, x = stack.pop()
            if 0 <= y < h and 0 <= x < w and binary[y, x] and not seen[y, x]:
                seen[y, x] = True
                stack += [(y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)]
    return count


def test_count_regions_equals_a_flood_fill():
    binary = RNG.random((6, 12, 10)) < 0.45
    expected = [_count_loop(b) for b in binary]
    np.testing.assert_array_equal(count_regions(binary), expected)
    assert count_regions(np.zeros((2, 3, 3), bool)).tolist() == [0, 0]
    with pytest.raises(ValueError, match="boolean masks"):
        count_regions(np.ones((3, 3), bool))
