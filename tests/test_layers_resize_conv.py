"""ResizeConv2D and BilinearUpsamplingInitializer: references, checkerboards, Keras equivalents."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlcourse import reference as R
from dlcourse.layers import BilinearUpsamplingInitializer, ResizeConv2D

RNG = np.random.default_rng(5)


def _set_weights(layer, input_shape):
    layer.build(input_shape)
    kernel = RNG.integers(-2, 3, size=layer.conv.kernel.shape).astype("float32")
    bias = RNG.integers(-2, 3, size=layer.conv.bias.shape).astype("float32")
    layer.conv.kernel.assign(kernel)
    layer.conv.bias.assign(bias)
    return kernel, bias


@pytest.mark.parametrize(
    "size, kernel_size, padding", [(2, 3, "same"), ((2, 3), 2, "valid"), (3, 1, "same")]
)
def test_nearest_resize_conv_equals_reference(size, kernel_size, padding):
    layer = ResizeConv2D(4, kernel_size, size=size, padding=padding)
    x = RNG.integers(-3, 4, size=(2, 5, 3, 2)).astype("float32")
    kernel, bias = _set_weights(layer, x.shape)
    expected = R.conv2d(R.nearest_unpool(x, size), kernel, 1, padding) + bias
    np.testing.assert_array_equal(layer(x), expected)
    assert layer.compute_output_shape(x.shape) == expected.shape


def test_bilinear_resize_equals_upsampling2d_then_conv2d():
    x = RNG.normal(size=(2, 5, 4, 3)).astype("float32")
    for size in (2, (3, 2), 1):
        layer = ResizeConv2D(2, 3, size=size, interpolation="bilinear")
        kernel, bias = _set_weights(layer, x.shape)
        upsampled = keras.layers.UpSampling2D(size, interpolation="bilinear")(x)
        expected = keras.ops.conv(upsampled, kernel, 1, "same") + bias
        np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_unknown_height_and_width(interpolation):
    inputs = keras.Input((None, None, 2))
    layer = ResizeConv2D(3, 3, interpolation=interpolation, name="up")
    outputs = layer(inputs)
    assert tuple(outputs.shape) == (None, None, None, 3)
    model = keras.Model(inputs, outputs)
    graph = tf.function(model, input_signature=[tf.TensorSpec((None, None, None, 2))])
    for h, w in [(3, 5), (4, 4)]:
        x = RNG.normal(size=(2, h, w, 2)).astype("float32")
        upsampled = keras.layers.UpSampling2D(2, interpolation=interpolation)(x)
        expected = keras.ops.conv(upsampled, layer.conv.kernel, 1, "same") + layer.conv.bias
        np.testing.assert_allclose(graph(x), expected, rtol=1e-5, atol=1e-5)


def test_resize_conv_has_no_checkerboard_but_transposed_convolution_has():
    """A constant image and an all-ones 3x3 kernel, upsampling by 2 (Odena et al., 2016)."""
    x = np.ones((1, 6, 6, 1), "float32")
    resize = ResizeConv2D(1, 3, kernel_initializer="ones", use_bias=False)(x).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(resize[1:-1, 1:-1], 9.0)  # every interior pixel: 9 taps
    transposed = keras.layers.Conv2DTranspose(
        1, 3, strides=2, padding="same", kernel_initializer="ones", use_bias=False
    )(x).numpy()[0, :, :, 0]
    count = R.overlap_count(3, 2, input_size=6, padding="same")
    np.testing.assert_array_equal(transposed, count)
    assert set(np.unique(transposed[1:-1, 1:-1])) == {1.0, 2.0, 4.0}  # the checkerboard


def test_gradient_reaches_the_kernel():
    layer = ResizeConv2D(2, 3, interpolation="bilinear")
    x = tf.constant(RNG.normal(size=(1, 4, 4, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) ** 2)
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    assert len(layer.trainable_weights) == 2
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)


def test_config_keeps_conv_arguments_and_round_trips(tmp_path):
    layer = ResizeConv2D(
        4,
        (3, 1),
        size=(2, 1),
        interpolation="bilinear",
        activation="relu",
        use_bias=False,
        kernel_initializer=keras.initializers.HeNormal(seed=1),
        kernel_regularizer=keras.regularizers.L2(1e-3),
        name="up",
    )
    config = layer.get_config()
    assert config["activation"] == "relu" and config["use_bias"] is False
    assert config["kernel_size"] == (3, 1) and config["size"] == (2, 1)
    clone = ResizeConv2D.from_config(config)
    assert clone.conv.activation is keras.activations.relu and not clone.conv.use_bias
    assert isinstance(clone.conv.kernel_initializer, keras.initializers.HeNormal)
    model = keras.Sequential([keras.Input((None, None, 2)), layer])
    model.save(tmp_path / "resize.keras")
    loaded = keras.saving.load_model(tmp_path / "resize.keras")
    assert isinstance(loaded.layers[0], ResizeConv2D) and len(loaded.losses) == 1
    x = RNG.normal(size=(1, 3, 5, 2)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filters": 0}, "filters"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"size": 0}, "size"),
        ({"interpolation": "bicubic"}, "interpolation"),
        ({"padding": "causal"}, "padding"),
        ({"data_format": "channels_first"}, "channels-last"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"filters": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        ResizeConv2D(**args)


# --- BilinearUpsamplingInitializer --------------------------------------------------------------


def test_bilinear_kernel_values():
    kernel = BilinearUpsamplingInitializer()((4, 4, 2, 2)).numpy()
    one_d = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(kernel[:, :, 0, 0], np.outer(one_d, one_d))
    np.testing.assert_array_equal(kernel[:, :, 0, 1], 0)  # no mixing of channels
    odd = BilinearUpsamplingInitializer()((3, 5, 1, 1), dtype="float64").numpy()
    assert odd.dtype == np.float64
    np.testing.assert_allclose(odd[:, 2, 0, 0], [0.5, 1, 0.5])
    np.testing.assert_allclose(odd[1, :, 0, 0], [1 / 3, 2 / 3, 1, 2 / 3, 1 / 3])


@pytest.mark.parametrize("stride", [2, 3, 4, 5])
def test_bilinear_transposed_convolution_equals_bilinear_upsampling_inside(stride):
    x = RNG.normal(size=(2, 5, 6, 3)).astype("float32")
    up = keras.layers.Conv2DTranspose(
        3,
        2 * stride - stride % 2,
        strides=stride,
        padding="same",
        use_bias=False,
        kernel_initializer=BilinearUpsamplingInitializer(),
    )
    expected = keras.layers.UpSampling2D(stride, interpolation="bilinear")(x).numpy()
    got = up(x).numpy()
    assert got.shape == expected.shape
    # the border, stride // 2 pixels wide, sees zero padding instead of repeated edges
    border = stride // 2
    inner = slice(border, -border)
    np.testing.assert_allclose(
        got[:, inner, inner], expected[:, inner, inner], rtol=1e-5, atol=1e-5
    )
    off = np.abs(got - expected).max(axis=(0, 3)) > 1e-3  # (H, W): where they differ
    height, width = off.shape
    rows, cols = np.flatnonzero(off[:, width // 2]), np.flatnonzero(off[height // 2])
    assert rows.tolist() == [*range(border), *range(height - border, height)]
    assert cols.tolist() == [*range(border), *range(width - border, width)]
    # The transposed convolution is the reference scatter-add with that kernel.
    np.testing.assert_allclose(
        got, R.conv_transpose2d(x, up.kernel.numpy(), stride, "same"), rtol=1e-5, atol=1e-5
    )


def test_initializer_errors_and_round_trip(tmp_path):
    with pytest.raises(ValueError, match="as many filters"):
        BilinearUpsamplingInitializer()((4, 4, 3, 2))
    with pytest.raises(ValueError, match="kh, kw"):
        BilinearUpsamplingInitializer()((4, 4))
    init = keras.initializers.get(
        keras.saving.serialize_keras_object(BilinearUpsamplingInitializer())
    )
    assert isinstance(init, BilinearUpsamplingInitializer)
    model = keras.Sequential(
        [
            keras.Input((None, None, 2)),
            keras.layers.Conv2DTranspose(
                2, 4, strides=2, padding="same", kernel_initializer=BilinearUpsamplingInitializer()
            ),
        ]
    )
    model.save(tmp_path / "bilinear.keras")
    loaded = keras.saving.load_model(tmp_path / "bilinear.keras")
    assert isinstance(loaded.layers[0].kernel_initializer, BilinearUpsamplingInitializer)
    x = RNG.normal(size=(1, 3, 3, 2)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))
