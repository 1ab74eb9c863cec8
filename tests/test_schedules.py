"""dlcourse.training.schedules: the warm-up + cosine schedule of lessons 07-09."""

import math

import numpy as np
import pytest

from dlcourse.training import schedules


def test_steps_per_epoch_counts_the_last_partial_batch():
    assert schedules.steps_per_epoch(3000, 32) == 94
    assert schedules.steps_per_epoch(64, 32) == 2
    assert schedules.steps_per_epoch(1, 32) == 1


def test_warmup_cosine_shape():
    peak, total = 4e-3, 200
    s = schedules.warmup_cosine(peak, total)
    values = np.array([float(s(step)) for step in range(total + 1)])
    warm = total // 10
    np.testing.assert_allclose(
        values[: warm + 1], np.linspace(0, peak, warm + 1), rtol=1e-5, atol=1e-9
    )
    assert values.max() == pytest.approx(peak)
    assert np.all(np.diff(values[warm:]) <= 1e-9)  # decays after the warm-up
    mid = warm + (total - warm) // 2
    assert values[mid] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 0.5)), rel=1e-4)
    assert values[-1] == pytest.approx(0.0, abs=1e-9)


def test_warmup_cosine_equals_the_lessons_former_inline_schedule():
    import keras

    total = 8 * schedules.steps_per_epoch(3000, 32)
    inline = keras.optimizers.schedules.CosineDecay(
        0.0, total - total // 10, warmup_target=3e-3, warmup_steps=total // 10
    )
    ours = schedules.warmup_cosine(3e-3, total)
    for step in (0, 1, total // 10, total // 2, total - 1, total):
        assert float(ours(step)) == float(inline(step))


@pytest.mark.parametrize(
    "args, match",
    [((0.0, 10), "peak_lr"), ((1e-3, 0), "total_steps"), ((1e-3, 10, 10), "warmup_steps"),
     ((1e-3, 10, -1), "warmup_steps"), ((1e-3, 10.0), "total_steps")],
)  # fmt: skip
def test_warmup_cosine_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        schedules.warmup_cosine(*args)


def test_steps_per_epoch_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        schedules.steps_per_epoch(10, 0)
