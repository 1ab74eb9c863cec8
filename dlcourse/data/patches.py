"""Training patches for a centre-pixel classifier (lesson 03, the sliding window).

The sliding-window idea (Farabet et al. 2013) classifies a pixel from the patch around it. To
train such a classifier, :func:`sample_patches` cuts patches around random pixels of the scenes
(half of them on objects, so the rare object classes are seen often enough) and labels each with
its centre pixel's class.
"""

from __future__ import annotations

import numpy as np

from dlcourse.validate import positive_int

__all__ = ["sample_patches"]


def sample_patches(scenes, patch_size: int, per_scene: int, seed: int):
    """Patches around random pixels, half of them on objects, and the classes of their centres.

    The images are padded by reflection, so a patch around a pixel near the border is whole.

    Args:
        scenes: a ``Scenes`` (``images`` float ``(N, H, W, 3)``, ``masks`` int ``(N, H, W)``).
        patch_size: odd positive int, the side of a patch (its centre is the labelled pixel).
        per_scene: positive int, patches per scene: ``per_scene // 2`` centred on object pixels
            (anywhere if the scene has none), the rest anywhere.
        seed: seed of the random choice.

    Returns:
        ``(patches, labels)``: float ``(N * per_scene, P, P, 3)`` and int32 ``(N * per_scene,)``.

    Example:
    >>> from dlcourse.data import make_scenes
    >>> x, y = sample_patches(make_scenes(2, image_size=16, seed=0), 5, per_scene=4, seed=0)
    >>> x.shape, y.shape, bool((y[[0, 1, 4, 5]] > 0).all())
    ((8, 5, 5, 3), (8,), True)
    """
    positive_int(patch_size, "patch_size")
    positive_int(per_scene, "per_scene")
    if patch_size % 2 == 0:
        raise ValueError(f"Expected an odd patch_size. Received: patch_size={patch_size}")
    rng = np.random.default_rng(seed)
    p = patch_size // 2
    padded = np.pad(scenes.images, [(0, 0), (p, p), (p, p), (0, 0)], mode="reflect")
    _, h, w = scenes.masks.shape
    centres = []
    for i, mask in enumerate(scenes.masks):
        objects = np.flatnonzero(mask)  # flat indices of object pixels
        on_object = rng.choice(objects if objects.size else h * w, per_scene // 2)
        anywhere = rng.integers(h * w, size=per_scene - per_scene // 2)
        centres += [(i, k // w, k % w) for k in np.concatenate([on_object, anywhere])]
    # pixel (y, x) of the image is pixel (y + p, x + p) of the padded image: its patch starts at (y, x)
    patches = np.stack([padded[i, y : y + patch_size, x : x + patch_size] for i, y, x in centres])
    labels = np.array([scenes.masks[i, y, x] for i, y, x in centres], dtype=np.int32)
    return patches, labels
