"""Model builders of the segmentation lessons: uncompiled ``keras.Model``s with named layers.

- :mod:`~dlcourse.models.patch` (lesson 03): :func:`build_patch_classifier`,
  :func:`to_fully_convolutional`, :func:`sliding_window_predict`.
- :mod:`~dlcourse.models.fcn` (lesson 04): :func:`build_naive_fcn`, :func:`receptive_field`.
- :mod:`~dlcourse.models.encoder_decoder` (lessons 05–06): :func:`build_encoder_decoder`,
  ``UPSAMPLING_METHODS``, ``DOWNSAMPLING_METHODS``.

Every model outputs per-pixel softmax probabilities ``(N, H, W, C + 1)`` (the patch classifier:
``(N, C + 1)`` for the centre pixel) and trains with ``SparseCategoricalCrossentropy``.
"""

import dlcourse.layers  # noqa: F401  (models built here use them: loading one needs them registered)
from dlcourse.models.encoder_decoder import (
    DOWNSAMPLING_METHODS,
    UPSAMPLING_METHODS,
    build_encoder_decoder,
)
from dlcourse.models.fcn import build_naive_fcn, receptive_field
from dlcourse.models.patch import (
    PADDING_MODES,
    ReflectionPadding2D,
    SlidingWindowResult,
    build_patch_classifier,
    sliding_window_predict,
    to_fully_convolutional,
)

__all__ = [
    "DOWNSAMPLING_METHODS",
    "PADDING_MODES",
    "UPSAMPLING_METHODS",
    "ReflectionPadding2D",
    "SlidingWindowResult",
    "build_encoder_decoder",
    "build_naive_fcn",
    "build_patch_classifier",
    "receptive_field",
    "sliding_window_predict",
    "to_fully_convolutional",
]
