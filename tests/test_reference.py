"""dlcourse.reference: the NumPy references against TensorFlow/Keras and against each other."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from dlcourse import reference as R

RNG = np.random.default_rng(1234)

# A max-unpooling example worked by hand (also the docstring example of max_pool_with_switches).
HAND_X = np.array([[1, 2, 5, 3], [4, 0, 1, 6], [7, 8, 2, 2], [3, 9, 0, 1]])
HAND_POOLED = np.array([[4, 6], [9, 2]])
HAND_SWITCHES = np.array([[4, 7], [13, 10]])
HAND_VALUES = np.array([[10, 20], [30, 40]])
HAND_UNPOOLED = np.array([[0, 0, 0, 0], [10, 0, 0, 20], [0, 0, 40, 0], [0, 30, 0, 0]])


def tf_max_pool_with_argmax(x, pool, strides, padding):
    pooled, argmax = tf.nn.max_pool_with_argmax(
        x, pool, strides, padding.upper(), include_batch_in_index=False
    )
    return pooled.numpy(), argmax.numpy()


# --- sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_output_size_agrees_with_keras(padding):
    for size, k, s, d in itertools.product(range(1, 10), (1, 2, 3, 4), (1, 2, 3), (1, 2)):
        span = (k - 1) * d + 1
        if s > 1 and d > 1:  # Keras does not support both
            continue
        if padding == "valid" and size < span:
            with pytest.raises(ValueError, match="at least as long"):
                R.conv_output_size(size, k, s, padding, d)
            continue
        layer = keras.layers.Conv2D(1, k, strides=s, padding=padding, dilation_rate=d)
        expected = layer.compute_output_shape((1, size, size, 1))[1]
        assert R.conv_output_size(size, k, s, padding, d) == expected, (size, k, s, d)
        pool = keras.layers.MaxPooling2D(k, strides=s, padding=padding)
        if d == 1:
            assert (
                R.conv_output_size(size, k, s, padding)
                == pool.compute_output_shape((1, size, size, 1))[1]
            )


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_transpose_output_size_agrees_with_keras(padding):
    for size, k, s in itertools.product(range(1, 8), (1, 2, 3, 4), (1, 2, 3)):
        for op in (None, *range(s)):
            layer = keras.layers.Conv2DTranspose(
                1, k, strides=s, padding=padding, output_padding=op
            )
            expected = layer.compute_output_shape((1, size, size, 1))[1]
            assert R.conv_transpose_output_size(size, k, s, padding, op) == expected


def test_sizes_unknown_and_bad_arguments():
    assert R.conv_output_size(None, 3, 2, "same") is None
    assert R.conv_transpose_output_size(None, 3, 2, "same") is None
    with pytest.raises(ValueError, match='"valid" or "same"'):
        R.conv_output_size(4, 3, 1, "full")
    with pytest.raises(ValueError, match="strides"):
        R.conv_output_size(4, 3, 0, "valid")
    with pytest.raises(ValueError, match="kernel_size"):
        R.conv_transpose_output_size(4, 2.5, 1, "valid")
    with pytest.raises(ValueError, match="output_padding"):
        R.conv_transpose_output_size(4, 3, 2, "same", output_padding=2)


def test_same_padding_puts_the_extra_row_after():
    assert R.same_padding(4, 3, 1) == (1, 1)
    assert R.same_padding(4, 4, 1) == (1, 2)
    assert R.same_padding(5, 2, 2) == (0, 1)
    assert R.same_padding(5, 3, 3) == (0, 1)
    assert R.same_padding(7, 1, 3) == (0, 0)


# --- nearest and bed of nails -------------------------------------------------------------------


def test_nearest_unpool_equals_upsampling2d_and_keeps_rank():
    x = RNG.normal(size=(2, 3, 5, 4)).astype("float32")
    expected = keras.layers.UpSampling2D((2, 3))(x).numpy()
    np.testing.assert_array_equal(R.nearest_unpool(x, (2, 3)), expected)
    np.testing.assert_array_equal(R.nearest_unpool(x[0], (2, 3)), expected[0])
    np.testing.assert_array_equal(R.nearest_unpool(x[0, :, :, 0], (2, 3)), expected[0, :, :, 0])
    assert R.nearest_unpool(np.arange(6).reshape(2, 3), 1).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_bed_of_nails_keeps_corners_and_zeros():
    x = np.arange(1, 7).reshape(2, 3)
    y = R.bed_of_nails_unpool(x, 2)
    assert y.shape == (4, 6) and y.dtype == x.dtype
    np.testing.assert_array_equal(y[::2, ::2], x)
    assert y.sum() == x.sum() and np.count_nonzero(y) == 6
    np.testing.assert_array_equal(
        R.bed_of_nails_unpool(x[None, :, :, None], (2, 1))[0, ::2, :, 0], x
    )


def test_unpool_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        R.nearest_unpool(np.ones((2, 2)), 0)
    with pytest.raises(ValueError, match="size"):
        R.bed_of_nails_unpool(np.ones((2, 2)), (2, 2, 2))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        R.nearest_unpool(np.ones(3), 2)


def test_transposed_convolution_with_fixed_kernels_is_unpooling():
    x = RNG.normal(size=(3, 4))
    np.testing.assert_allclose(R.conv_transpose2d(x, np.ones((2, 2)), 2), R.nearest_unpool(x, 2))
    corner = np.array([[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(R.conv_transpose2d(x, corner, 2), R.bed_of_nails_unpool(x, 2))


# --- max pooling with switches, max unpooling ---------------------------------------------------


def test_max_pool_and_unpool_facts_example():
    pooled, switches = R.max_pool_with_switches(HAND_X, 2)
    np.testing.assert_array_equal(pooled, HAND_POOLED)
    np.testing.assert_array_equal(switches, HAND_SWITCHES)
    np.testing.assert_array_equal(R.max_unpool(HAND_VALUES, switches, (4, 4)), HAND_UNPOOLED)
    tf_pooled, tf_switches = tf_max_pool_with_argmax(
        HAND_X[None, :, :, None].astype("f4"), 2, 2, "valid"
    )
    np.testing.assert_array_equal(tf_switches[0, :, :, 0], HAND_SWITCHES)


def _pool_inputs():
    yield "arange", np.arange(2 * 7 * 6 * 3, dtype="float32").reshape(2, 7, 6, 3)
    yield "arange-reversed", -np.arange(2 * 6 * 7 * 3, dtype="float32").reshape(2, 6, 7, 3)
    yield "random", RNG.normal(size=(2, 9, 8, 3)).astype("float32")
    yield "ties", RNG.integers(0, 2, size=(2, 7, 9, 3)).astype("float32")
    yield "constant", np.zeros((1, 5, 5, 2), "float32")
    yield "minus-inf", np.full((1, 5, 4, 1), -np.inf, "float32")
    nan = RNG.normal(size=(2, 7, 6, 2)).astype("float32")
    nan[RNG.random(nan.shape) < 0.3] = np.nan
    yield "nan", nan


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_max_pool_with_switches_equals_tensorflow(padding):
    """Values and switches equal tf.nn.max_pool_with_argmax: ties, odd sizes, SAME splits."""
    checked = 0
    for (name, x), pool, strides in itertools.product(_pool_inputs(), (1, 2, 3, (2, 3)), (1, 2, 3)):
        if padding == "valid" and min(x.shape[1:3]) < 3:
            continue
        pooled, switches = R.max_pool_with_switches(x, pool, strides, padding)
        tf_pooled, tf_switches = tf_max_pool_with_argmax(x, pool, strides, padding)
        np.testing.assert_array_equal(pooled, tf_pooled, err_msg=f"{name} {pool} {strides}")
        np.testing.assert_array_equal(switches, tf_switches, err_msg=f"{name} {pool} {strides}")
        checked += 1
    assert checked >= 70


def test_max_pool_switch_points_at_the_pooled_value_once_per_window():
    x = RNG.integers(0, 3, size=(2, 7, 7, 2)).astype("float32")
    pooled, switches = R.max_pool_with_switches(x, 3, 2, "same")
    flat = x.reshape(2, -1)
    np.testing.assert_array_equal(
        np.take_along_axis(flat, switches.reshape(2, -1), 1), pooled.reshape(2, -1)
    )
    # Ties: the first position in row-major order of the window wins.
    pooled, switches = R.max_pool_with_switches(np.ones((4, 4)), 2)
    np.testing.assert_array_equal(switches, [[0, 2], [8, 10]])


def test_max_unpool_is_the_transpose_of_max_pooling():
    """<unpool(v, s), x> == <v, pool(x)>: max unpooling is the adjoint of the selection."""
    x = RNG.normal(size=(2, 7, 8, 3))
    for pool, strides, padding in [
        (2, 2, "valid"),
        (3, 2, "same"),
        (3, 1, "valid"),
        (2, 3, "same"),
    ]:
        pooled, switches = R.max_pool_with_switches(x, pool, strides, padding)
        v = RNG.normal(size=pooled.shape)
        unpooled = R.max_unpool(v, switches, x.shape)
        assert unpooled.shape == x.shape
        np.testing.assert_allclose(np.sum(unpooled * x), np.sum(v * pooled))
    # Overlapping windows share switches: their values are summed.
    pooled, switches = R.max_pool_with_switches(np.array([[0, 0, 0], [0, 9, 0], [0, 0, 0]]), 2, 1)
    np.testing.assert_array_equal(switches, [[4, 4], [4, 4]])
    assert R.max_unpool(np.ones((2, 2)), switches, (3, 3))[1, 1] == 4


def test_max_unpool_equals_tensorflow_scatter():
    x = RNG.normal(size=(2, 7, 9, 3)).astype("float32")
    pooled, switches = R.max_pool_with_switches(x, 2, 2, "same")
    # One scatter per sample: the indices are within one sample.
    expected = np.stack(
        [
            tf.scatter_nd(s.reshape(-1, 1), p.ravel(), [7 * 9 * 3])
            for s, p in zip(switches, pooled, strict=True)
        ]
    ).reshape(x.shape)
    np.testing.assert_array_equal(R.max_unpool(pooled, switches, (7, 9)), expected)


def test_max_unpool_rejects_switches_of_another_tensor():
    pooled, switches = R.max_pool_with_switches(RNG.normal(size=(5, 5, 2)), 2)
    with pytest.raises(ValueError, match="do not belong"):
        R.max_unpool(pooled, switches, (3, 3))  # indices beyond a 3x3x2 output
    with pytest.raises(ValueError, match="do not belong"):
        R.max_unpool(pooled, switches + 1, (5, 5))  # points at the other channel
    with pytest.raises(ValueError, match="shape"):
        R.max_unpool(pooled, switches[:1], (5, 5))
    with pytest.raises(ValueError, match="integer"):
        R.max_unpool(pooled, switches.astype(float), (5, 5))
    with pytest.raises(ValueError, match="output_shape"):
        R.max_unpool(pooled, switches, (5, 5, 3))
    assert R.max_unpool(pooled, switches, (5, 5, 2)).shape == (5, 5, 2)


# --- convolution, transposed convolution, matrices ----------------------------------------------


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_equals_keras(padding):
    for h, w, k, s in [(5, 5, 3, 1), (7, 6, 3, 2), (6, 7, 2, 2), (8, 5, 4, 3), (4, 4, 1, 1)]:
        x = RNG.integers(-3, 4, size=(2, h, w, 3)).astype("float32")
        kernel = RNG.integers(-3, 4, size=(k, k, 3, 2)).astype("float32")
        expected = ops.conv(x, kernel, s, padding).numpy()
        np.testing.assert_array_equal(R.conv2d(x, kernel, s, padding), expected)


def test_lecture_2x2_to_4x4_transposed_convolution_equals_conv2dtranspose():
    """The lecture's picture: a 2x2 input, 3x3 kernel, stride 2 gives a 4x4 output, overlaps summed."""
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    kernel = np.arange(1.0, 10.0).reshape(3, 3)
    layer = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same", use_bias=False)
    layer.build((1, 2, 2, 1))
    layer.kernel.assign(kernel[:, :, None, None])
    expected = layer(x[None, :, :, None]).numpy()[0, :, :, 0]
    got = R.conv_transpose2d(x, kernel, strides=2, padding="same")
    assert got.shape == (4, 4)
    np.testing.assert_array_equal(got, expected)
    # Pixel (2, 2) gets a tap from all four inputs: the overlap the lecture warns about.
    assert got[2, 2] == 1 * 9 + 2 * 7 + 3 * 3 + 4 * 1
    # With "valid" padding the full 5x5 scatter is kept.
    assert R.conv_transpose2d(x, kernel, strides=2).shape == (5, 5)


def test_conv_transpose2d_equals_keras_for_every_padding_stride_output_padding():
    checked = 0
    for n, k, s, padding in itertools.product(
        (1, 2, 3), (1, 2, 3, 4), (1, 2, 3), ("valid", "same")
    ):
        for op in (None, *range(s)):
            x = RNG.integers(-3, 4, size=(1, n, n + 1, 2)).astype("float32")
            kernel = RNG.integers(-3, 4, size=(k, k, 3, 2)).astype("float32")
            try:
                expected = ops.conv_transpose(x, kernel, s, padding, output_padding=op).numpy()
            except tf.errors.OpError:  # TensorFlow refuses (same, even kernel, output_padding 0)
                expected = None
            if expected is None or expected.size == 0:
                with pytest.raises(ValueError, match="undefined"):
                    R.conv_transpose2d(x, kernel, s, padding, op)
                continue
            np.testing.assert_array_equal(R.conv_transpose2d(x, kernel, s, padding, op), expected)
            checked += 1
    assert checked > 150


def test_conv_transpose2d_shapes_and_errors():
    assert R.conv_transpose2d(np.ones((2, 3)), np.ones((3, 3, 4, 1)), 2, "same").shape == (4, 6, 4)
    assert R.conv_transpose2d(np.ones((2, 3, 2, 1)), np.ones((3, 3)), 2).shape == (2, 7, 5, 1)
    with pytest.raises(ValueError, match="input channels"):
        R.conv_transpose2d(np.ones((2, 2, 3)), np.ones((3, 3, 1, 2)))
    with pytest.raises(ValueError, match="kernel"):
        R.conv_transpose2d(np.ones((2, 2)), np.ones((3, 3, 1)))
    with pytest.raises(ValueError, match="strides"):
        R.conv_transpose2d(np.ones((2, 2)), np.ones((3, 3)), strides=0)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_matrix_and_its_transpose(padding):
    for shape, k, s in [((5, 5), 3, 1), ((6, 8), 3, 2), ((5, 7, 2), 2, 2), ((7, 7, 3), 4, 3)]:
        kernel = RNG.normal(size=(k, k) if len(shape) == 2 else (k, k, shape[2], 2))
        x = RNG.normal(size=shape)
        matrix = R.conv_matrix(shape, kernel, s, padding)
        y = R.conv2d(x, kernel, s, padding)
        np.testing.assert_allclose(matrix @ x.ravel(), y.ravel())
        # M.T is the transposed convolution (same kernel) that gives back the input's size.
        z = RNG.normal(size=y.shape)
        back = R.conv_transpose2d(
            z, kernel, s, padding, _output_padding(y.shape, shape, k, s, padding)
        )
        assert back.shape == x.shape
        np.testing.assert_allclose(matrix.T @ z.ravel(), back.ravel())


def _output_padding(small, big, k, s, padding):
    """The output_padding with which a transposed convolution maps ``small`` back to ``big``."""
    for op in (None, *range(s)):
        if all(R.conv_transpose_output_size(small[a], k, s, padding, op) == big[a] for a in (0, 1)):
            return op
    raise AssertionError(f"no output_padding maps {small} to {big}")


def test_overlap_count_shows_the_checkerboard():
    count = R.overlap_count(3, 2, input_size=4)
    assert count.shape == (9, 9)
    np.testing.assert_array_equal(count[4], [2, 2, 4, 2, 4, 2, 4, 2, 2])
    # Kernel size a multiple of the stride: even coverage away from the border.
    np.testing.assert_array_equal(R.overlap_count(4, 2, input_size=4)[4, 2:-2], [4] * 6)
    np.testing.assert_array_equal(R.overlap_count(2, 2, input_size=3), np.ones((6, 6)))
    assert R.overlap_count((3, 1), (2, 1), input_size=(2, 3)).shape == (5, 3)
    # Same as Keras' Conv2DTranspose of ones with a kernel of ones.
    layer = keras.layers.Conv2DTranspose(
        1, 3, strides=2, padding="same", use_bias=False, kernel_initializer="ones"
    )
    expected = layer(np.ones((1, 4, 4, 1), "float32")).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(R.overlap_count(3, 2, input_size=4, padding="same"), expected)
