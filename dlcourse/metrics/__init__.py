"""Measuring models, one module per job (lessons 03–07).

- :mod:`~dlcourse.metrics.segmentation`: how right a mask is: :func:`pixel_accuracy`,
  :func:`confusion_matrix`, :func:`per_class_iou`, :func:`mean_iou`, :class:`MeanIoU` (a Keras
  metric, registered under ``dlcourse>``), :func:`boundary_f1`;
- :mod:`~dlcourse.metrics.checkerboard`: how checkered an upsampled feature map is:
  :func:`checkerboard_strength`;
- :mod:`~dlcourse.metrics.cost`: what a model costs: :func:`model_cost` (parameters,
  multiply-adds, activation memory);
- :mod:`~dlcourse.metrics.timing`: how long it takes: :func:`time_call`,
  :func:`best_seconds`, :func:`measure_step_time`, :class:`StepTimer`.

Every name is re-exported here, so ``from dlcourse import metrics; metrics.mean_iou(...)`` works.
"""

from dlcourse.metrics.checkerboard import checkerboard_strength
from dlcourse.metrics.cost import model_cost
from dlcourse.metrics.segmentation import (
    MeanIoU,
    boundary_f1,
    confusion_matrix,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
)
from dlcourse.metrics.timing import StepTimer, best_seconds, measure_step_time, time_call

__all__ = [
    "MeanIoU",
    "StepTimer",
    "best_seconds",
    "boundary_f1",
    "checkerboard_strength",
    "confusion_matrix",
    "mean_iou",
    "measure_step_time",
    "model_cost",
    "per_class_iou",
    "pixel_accuracy",
    "time_call",
]
