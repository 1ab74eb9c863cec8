"""Timing a training run: the median step of ``train_on_batch`` and a ``fit`` callback.

:func:`measure_step_time` times single steps on one batch (the model trains while it is timed);
:class:`StepTimer` times every step and each epoch's training part of a real ``fit``.
"""

from __future__ import annotations

import time

import numpy as np

from dlcourse.quiet import import_keras

keras = import_keras()

__all__ = ["StepTimer", "measure_step_time"]


def measure_step_time(model, x, y, steps: int = 10, warmup: int = 2) -> float:
    """Median wall seconds of one training step (``train_on_batch``) on the batch ``(x, y)``.

    An uncompiled model is compiled with Adam and ``SparseCategoricalCrossentropy`` first. The
    model **trains** for ``warmup + steps`` steps: its weights change; time a fresh model or a
    clone. The first ``warmup`` steps (tracing, memory allocation) are not timed.
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"Expected steps >= 1, warmup >= 0. Received: {steps=}, {warmup=}")
    if not model.compiled:
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy())
    for _ in range(warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


class StepTimer(keras.callbacks.Callback):
    """Times a ``fit``: every training step, and each epoch's training part (validation left out).

    Attributes after ``fit(..., callbacks=[timer])``:

    - ``seconds``: wall seconds of every training step (``fit`` runs a step synchronously on the
      host's call, so the time between a batch's begin and end is that step's);
    - ``epoch_seconds`` / ``epoch_cpu_seconds``: wall and processor seconds (the process's, all
      threads) of each epoch's training, up to its validation if it has one.

    Example:
    >>> timer = StepTimer()
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> _ = model.fit(np.zeros((8, 2)), np.zeros(8), batch_size=4, epochs=3, verbose=0,
    ...               callbacks=[timer])
    >>> len(timer.seconds), len(timer.epoch_seconds), sorted(timer.timing())
    (6, 3, ['cpu_step_seconds', 'step_seconds'])
    """

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.epoch_seconds: list[float] = []
        self.epoch_cpu_seconds: list[float] = []
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = (time.perf_counter(), time.process_time())

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)

    def _end_of_training_part(self):
        if self._epoch is not None:  # the epoch's validation begins, or the epoch ends
            wall, cpu = self._epoch
            self.epoch_seconds.append(time.perf_counter() - wall)
            self.epoch_cpu_seconds.append(time.process_time() - cpu)
            self._epoch = None

    def on_test_begin(self, logs=None):  # fit hands its callbacks to the validation too
        self._end_of_training_part()

    def on_epoch_end(self, epoch, logs=None):
        self._end_of_training_part()

    def timing(self, skip: int = 0) -> dict:
        """``{"step_seconds": median wall seconds of a step, "cpu_step_seconds": processor
        seconds of training per step}``; ``skip``: first steps left out of the median (tracing).
        """
        if not self.seconds:
            raise ValueError("Expected a StepTimer that has timed a fit. Received: no steps yet")
        steps = self.seconds[skip:] or self.seconds
        return {
            "step_seconds": float(np.median(steps)),
            "cpu_step_seconds": float(sum(self.epoch_cpu_seconds) / len(self.seconds)),
        }
