"""How long things take: one home for the course's timers (lessons 03, 04, 06, 07; benchmarks).

- :func:`time_call`: wall and processor seconds of one call;
- :func:`best_seconds`: the fastest of repeated calls after a warm-up (the least disturbed by
  other work on a shared machine);
- :func:`measure_step_time`: the median training step of ``train_on_batch`` on one batch;
- :class:`StepTimer`: a ``fit`` callback that times every step and each epoch's training part.
"""

from __future__ import annotations

import time

import numpy as np

from dlcourse.quiet import import_keras
from dlcourse.validate import positive_int

keras = import_keras()

__all__ = ["StepTimer", "best_seconds", "measure_step_time", "time_call"]


def time_call(fn):
    """Call ``fn()`` once: ``(result, wall seconds, processor seconds)``.

    Processor seconds are the whole process's (all threads), so ``cpu / wall`` says how many
    cores the call kept busy.

    Example:
    >>> result, wall, cpu = time_call(lambda: sum(range(1000)))
    >>> result, wall >= 0, cpu >= 0
    (499500, True, True)
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def best_seconds(fn, repeats: int = 3, budget: float = 0.0, warmup: int = 1):
    """Wall seconds of the fastest call of ``fn()``, and the last call's result.

    ``fn`` is called ``warmup`` times untimed (tracing, caches), then timed at least ``repeats``
    times and until the timed calls add up to ``budget`` seconds. The minimum is what the call
    costs when nothing else gets in the way; on a shared machine the others only add.

    Args:
        fn: a function of no arguments.
        repeats: positive int, the fewest timed calls.
        budget: non-negative seconds the timed calls should add up to, at least.
        warmup: non-negative int, untimed calls first.

    Returns:
        ``(seconds, result)``.

    Example:
    >>> seconds, result = best_seconds(lambda: sorted(range(100, 0, -1)), repeats=5)
    >>> seconds > 0, result[:3]
    (True, [1, 2, 3])
    """
    positive_int(repeats, "repeats")
    if not budget >= 0 or isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(
            "Expected budget >= 0 seconds and a non-negative int warmup. "
            f"Received: budget={budget!r}, warmup={warmup!r}"
        )
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    while len(times) < repeats or sum(times) < budget:
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


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
