"""dlcourse.data.patches: the patches a centre-pixel classifier trains on (lesson 03)."""

import numpy as np
import pytest

from dlcourse.data import make_scenes
from dlcourse.data.patches import sample_patches


def test_each_patch_is_the_window_around_its_labelled_centre():
    scenes = make_scenes(3, image_size=20, seed=1)
    size, p = 7, 3
    patches, labels = sample_patches(scenes, size, per_scene=10, seed=2)
    assert patches.shape == (30, size, size, 3) and labels.dtype == np.int32
    padded = np.pad(scenes.images, [(0, 0), (p, p), (p, p), (0, 0)], mode="reflect")
    for k, (patch, label) in enumerate(zip(patches, labels, strict=True)):
        i = k // 10
        # the patch occurs in its scene's padded image at some (y, x) whose mask value is label
        hits = [
            (y, x)
            for y in range(20)
            for x in range(20)
            if np.array_equal(padded[i, y : y + size, x : x + size], patch)
        ]
        assert hits and any(scenes.masks[i, y, x] == label for y, x in hits)


def test_half_of_the_patches_are_on_objects_and_the_seed_decides():
    scenes = make_scenes(4, image_size=32, seed=0)
    _, labels = sample_patches(scenes, 5, per_scene=8, seed=0)
    assert (labels.reshape(4, 8)[:, :4] > 0).all()
    again = sample_patches(scenes, 5, per_scene=8, seed=0)
    np.testing.assert_array_equal(again[1], labels)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"patch_size": 4}, "odd patch_size"), ({"per_scene": 0}, "per_scene to be a positive")],
)
def test_bad_arguments(kwargs, match):
    scenes = make_scenes(1, image_size=16, seed=0)
    with pytest.raises(ValueError, match=match):
        sample_patches(scenes, **{"patch_size": 5, "per_scene": 2, "seed": 0, **kwargs})
