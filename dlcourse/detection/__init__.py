"""Finding objects: boxes, one object per image (localization), then many (detection, masks).

One home for everything about boxes and the objects they frame, in the order the lessons meet it:

- :mod:`~dlcourse.detection.boxes`: the box formats, conversion, clipping, validation and IoU;
- :mod:`~dlcourse.detection.localization` (lesson 07): a shared backbone with a class head and a
  box head, the box loss and the box metrics;
- :mod:`~dlcourse.detection.grid_targets` and :mod:`~dlcourse.detection.grid_detector` (lesson
  08): a one-stage grid detector's targets, model, loss and decoding;
- :mod:`~dlcourse.detection.evaluation`: non-max suppression, matching, AP and mAP (NumPy);
- :mod:`~dlcourse.detection.mask_head` (lesson 08): a mask per detected box.

Importing the package imports Keras (quietly) and registers its Keras objects (losses, metrics,
the grid detector's loss) under ``dlcourse>``.
"""

from dlcourse.quiet import import_keras

import_keras()

from dlcourse.detection import (  # noqa: E402  (Keras first, quietly)
    boxes,
    evaluation,
    grid_detector,
    grid_targets,
    localization,
    mask_head,
)

__all__ = ["boxes", "evaluation", "grid_detector", "grid_targets", "localization", "mask_head"]
