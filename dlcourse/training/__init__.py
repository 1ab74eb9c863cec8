"""Training recipes the lessons share.

- :mod:`~dlcourse.training.schedules` (lessons 07–09): the warm-up + cosine learning-rate schedule;
- :mod:`~dlcourse.training.experiments` (lessons 05–06): one recipe, data and budget for every
  segmentation model the course compares, and the cache of trained rows they share.

The modules are imported on first use (``from dlcourse.training import experiments``).
"""
