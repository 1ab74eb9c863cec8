"""dlcourse.metrics.checkerboard: phase spread against a loop, and the lesson-06 facts it shows."""

import numpy as np
import pytest

from dlcourse import layers
from dlcourse.metrics.checkerboard import checkerboard_strength
from dlcourse.quiet import import_keras

keras = import_keras()


def _loop(y, stride, border):
    y = np.asarray(y, dtype=np.float64)
    n, h, w, c = y.shape
    scores = []
    for i in range(n):
        for ch in range(c):
            inner = y[i, border : h - border, border : w - border, ch]
            means = [
                inner[a::stride, b::stride].mean() for a in range(stride) for b in range(stride)
            ]
            scores.append((max(means) - min(means)) / (np.abs(inner).mean() + 1e-12))
    return float(np.mean(scores))


@pytest.mark.parametrize("stride, border", [(2, 4), (3, 2), (2, 0)])
def test_equals_the_loop(stride, border):
    y = np.random.default_rng(stride + border).normal(size=(3, 20, 18, 4))
    assert checkerboard_strength(y, stride, border) == pytest.approx(_loop(y, stride, border))


def test_transposed_kernel_3_checkers_and_resize_conv_does_not():
    keras.utils.set_random_seed(0)
    flat = np.ones((1, 16, 16, 8), "float32")
    transposed = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same")(flat)
    resized = layers.ResizeConv2D(8, 3, size=2)(flat)
    assert checkerboard_strength(transposed) > 0.1
    assert checkerboard_strength(resized) < 1e-5


@pytest.mark.parametrize(
    "y, kwargs, match",
    [
        (np.ones((1, 8, 8)), {}, r"\(N, H, W, C\)"),
        (np.ones((1, 8, 8, 1)), {"border": 4}, "larger than"),
        (np.ones((1, 16, 16, 1)), {"stride": 0}, "stride to be a positive integer"),
        (np.ones((1, 16, 16, 1)), {"border": -1}, "non-negative int border"),
    ],
)
def test_bad_input(y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        checkerboard_strength(y, **kwargs)
