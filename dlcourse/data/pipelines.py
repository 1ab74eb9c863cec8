"""Inputs and targets of each vision task, as arrays (for ``model.fit(x, y)``) or a ``tf.data``
pipeline.

| task | target of one image |
| --- | --- |
| ``"classification"`` | int32 class id (single-object scenes) |
| ``"segmentation"`` | int32 ``(H, W)`` semantic mask, 0 = background |
| ``"localization"`` | ``{"class": int32, "box": float32 (4,)}``, box in ``rel_xywh`` |
| ``"detection"`` | ``{"classes": int32 (M,), "boxes": float32 (M, 4)}``, padded to ``M`` objects |
| ``"instance"`` | detection's targets plus ``"masks"``: uint8 ``(M, H, W)`` of 0/1 |

Detection and instance targets are padded to ``M = scenes.max_objects`` (the generator's
``objects`` maximum, so that train and validation splits share one shape): classes with ``-1``,
boxes and masks with zeros. Boxes are normalised (``rel_xywh``) in every target.
"""

from __future__ import annotations

import numbers

import numpy as np

from dlcourse.validate import positive_int

TASKS = ("classification", "segmentation", "localization", "detection", "instance")
"""The tasks ``task_arrays`` and ``make_dataset`` know."""


def _check_task(task) -> None:
    if task not in TASKS:
        raise ValueError(f"Expected task to be one of {TASKS}. Received: task={task!r}")


def task_arrays(scenes, task: str, *, max_objects: int | None = None):
    """Inputs and targets of `task` as NumPy arrays, ready for ``model.fit(x, y)``.

    Args:
        scenes: a ``Scenes`` (see ``make_scenes``).
        task: one of ``TASKS`` (see the module docstring for each target).
        max_objects: padded length ``M`` of detection/instance targets; default
            ``scenes.max_objects``.

    Returns:
        ``(x, y)``: ``x`` float32 ``(n, H, W, 3)``; ``y`` an array or a dict of arrays whose first
        axis is ``n``.

    Example:

    >>> from dlcourse.data import make_scenes
    >>> scenes = make_scenes(5, image_size=32, objects=(1, 2))
    >>> x, y = task_arrays(scenes, "detection")
    >>> x.shape, y["classes"].shape, y["boxes"].shape, y["classes"].dtype
    ((5, 32, 32, 3), (5, 2), (5, 2, 4), dtype('int32'))
    """
    _check_task(task)
    x = scenes.images
    n, height, width = scenes.masks.shape
    if task == "classification":
        return x, scenes.label.astype(np.int32)
    if task == "segmentation":
        return x, scenes.masks.astype(np.int32)
    if task == "localization":
        return x, {
            "class": scenes.label.astype(np.int32),
            "box": np.stack(scenes.normalized_boxes()).reshape(n, 4),
        }
    most = int(scenes.num_objects.max(initial=0))
    m = scenes.max_objects if max_objects is None else max_objects
    if not isinstance(m, numbers.Integral) or m < most:
        raise ValueError(
            f"Expected max_objects to be an int >= the most objects in a scene ({most}). "
            f"Received: max_objects={max_objects!r}"
        )
    classes = np.full((n, m), -1, dtype=np.int32)
    boxes = np.zeros((n, m, 4), dtype=np.float32)
    for i, (labels, rel) in enumerate(zip(scenes.labels, scenes.normalized_boxes(), strict=True)):
        classes[i, : len(labels)] = labels
        boxes[i, : len(labels)] = rel
    y = {"classes": classes, "boxes": boxes}
    if task == "instance":
        # Object j of scene i covers the pixels whose instance id is j + 1: one comparison.
        ids = np.arange(1, m + 1, dtype=np.uint8)[None, :, None, None]
        y["masks"] = (scenes.instance_ids[:, None] == ids).astype(np.uint8)
    return x, y


def make_dataset(
    scenes,
    task: str,
    *,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int = 0,
    repeat=False,
    max_objects: int | None = None,
):
    """A batched, prefetched ``tf.data.Dataset`` of ``(image, target)`` pairs for `task`.

    Images and targets are sliced from the same arrays and shuffled as pairs, so they always
    match.

    Args:
        scenes: a ``Scenes`` (see ``make_scenes``).
        task: one of ``TASKS``.
        batch_size: positive int; the last batch may be smaller.
        shuffle: shuffle the whole set, differently each epoch, reproducibly for a `seed`.
        seed: shuffle seed.
        repeat: ``False``, ``True`` (forever) or a number of epochs.
        max_objects: see ``task_arrays``.

    Returns:
        A ``tf.data.Dataset`` of batches ``(images (B, H, W, 3), targets)``, targets as in
        ``task_arrays`` with a leading batch axis.

    Example:

    >>> from dlcourse.data import make_scenes
    >>> ds = make_dataset(make_scenes(6, image_size=32), "segmentation", batch_size=4)
    >>> [tuple(x.shape) + tuple(y.shape) for x, y in ds]
    [(4, 32, 32, 3, 4, 32, 32), (2, 32, 32, 3, 2, 32, 32)]
    """
    _check_task(task)
    positive_int(batch_size, "batch_size")
    if not isinstance(repeat, bool | numbers.Integral) or (
        not isinstance(repeat, bool) and repeat < 1
    ):
        raise ValueError(
            f"Expected repeat to be True, False or a positive int. Received: repeat={repeat!r}"
        )
    x, y = task_arrays(scenes, task, max_objects=max_objects)
    from dlcourse.quiet import import_keras

    import_keras()  # TensorFlow, imported quietly
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle and len(x) > 1:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat is True:
        dataset = dataset.repeat()
    elif repeat is not False:
        dataset = dataset.repeat(int(repeat))
    return dataset.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)
