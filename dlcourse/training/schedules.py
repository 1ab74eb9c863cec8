"""The learning-rate schedule the lessons that train longer share: linear warm-up, cosine decay.

Lessons 07, 08 and 09 train from scratch with Adam at a high peak rate. Starting at the peak makes
the first steps of a freshly initialised network jump (BatchNorm's statistics are not there yet);
ending at it leaves the weights bouncing around a minimum. So the rate rises linearly from 0 over
the first tenth of the steps (or a fixed ``warmup_steps``) and then follows half a cosine down to 0
at the last step.

When runs of different lengths are compared, give them the same ``warmup_steps``: a warm-up that
is a tenth of a short run can be too short for a fresh network (lesson 07's separate classifier
stayed at chance with one of 28 steps).

Example:
>>> schedule = warmup_cosine(1e-3, total_steps=100)
>>> [round(float(schedule(step)), 6) for step in (0, 5, 10, 55, 100)]
[0.0, 0.0005, 0.001, 0.0005, 0.0]
"""

from __future__ import annotations

import math

from dlcourse.quiet import import_keras
from dlcourse.validate import positive_int

keras = import_keras()


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Training steps of one epoch over ``n`` examples: ``ceil(n / batch_size)`` (Keras's count).

    >>> steps_per_epoch(3000, 32)
    94
    """
    return math.ceil(positive_int(n, "n") / positive_int(batch_size, "batch_size"))


def warmup_cosine(peak_lr: float, total_steps: int, warmup_steps: int | None = None):
    """Linear warm-up from 0 to ``peak_lr``, then cosine decay to 0 at ``total_steps``.

    Args:
        peak_lr: the rate at the end of the warm-up (> 0).
        total_steps: steps of the whole training, e.g. ``epochs * steps_per_epoch(n, batch)``.
        warmup_steps: steps of the warm-up; default ``total_steps // 10``.

    Returns:
        A ``keras.optimizers.schedules.CosineDecay`` (built into Keras, so a model saved with an
        optimiser using it loads without custom objects).
    """
    if not isinstance(peak_lr, int | float) or isinstance(peak_lr, bool) or not peak_lr > 0:
        raise ValueError(f"Expected peak_lr to be a positive number. Received: {peak_lr!r}")
    total_steps = positive_int(total_steps, "total_steps")
    if warmup_steps is None:
        warmup_steps = total_steps // 10
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int):
        raise ValueError(f"Expected warmup_steps to be an int. Received: {warmup_steps!r}")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"Expected 0 <= warmup_steps < total_steps. Received: warmup_steps={warmup_steps}, "
            f"total_steps={total_steps}"
        )
    return keras.optimizers.schedules.CosineDecay(
        0.0, total_steps - warmup_steps, warmup_target=float(peak_lr), warmup_steps=warmup_steps
    )
