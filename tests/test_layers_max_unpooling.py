"""MaxPoolingWithArgmax2D + MaxUnpooling2D: against dlcourse.reference and TensorFlow's own ops."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlcourse import reference as R
from dlcourse.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D, _geometry

RNG = np.random.default_rng(7)

# (pool_size, strides, padding): non-overlapping, overlapping, gaps, odd windows, rectangles.
GEOMETRIES = [
    (2, None, "valid"),
    (2, None, "same"),
    (3, 2, "same"),
    (3, 2, "valid"),
    (3, 1, "same"),
    (2, 3, "same"),
    ((2, 3), (1, 2), "valid"),
    (1, 1, "valid"),
]


def _inputs():
    yield "arange", np.arange(2 * 8 * 6 * 3, dtype="float32").reshape(2, 8, 6, 3)
    yield "arange-reversed", -np.arange(1 * 6 * 8 * 2, dtype="float32").reshape(1, 6, 8, 2)
    yield "random-odd", RNG.normal(size=(2, 7, 5, 3)).astype("float32")
    yield "ties", RNG.integers(0, 2, size=(2, 9, 7, 2)).astype("float32")
    yield "constant", np.ones((1, 5, 6, 1), "float32")
    yield "minus-inf", np.full((1, 5, 5, 2), -np.inf, "float32")
    nan = RNG.normal(size=(2, 7, 6, 2)).astype("float32")
    nan[RNG.random(nan.shape) < 0.3] = np.nan
    yield "nan", nan


def _strides(pool, strides):
    return pool if strides is None else strides


@pytest.mark.parametrize("pool, strides, padding", GEOMETRIES)
def test_pool_equals_reference_and_tensorflow(pool, strides, padding):
    layer = MaxPoolingWithArgmax2D(pool, strides, padding)
    for name, x in _inputs():
        pooled, switches = layer(x)
        assert switches.dtype == tf.int32
        ref_pooled, ref_switches = R.max_pool_with_switches(
            x, pool, _strides(pool, strides), padding
        )
        np.testing.assert_array_equal(pooled, ref_pooled, err_msg=name)
        np.testing.assert_array_equal(switches, ref_switches, err_msg=name)
        tf_pooled, tf_switches = tf.nn.max_pool_with_argmax(
            x, pool, _strides(pool, strides), padding.upper(), include_batch_in_index=False
        )
        np.testing.assert_array_equal(switches, tf_switches, err_msg=name)


@pytest.mark.parametrize("pool, strides, padding", GEOMETRIES)
def test_unpool_equals_reference(pool, strides, padding):
    unpool = MaxUnpooling2D(pool, strides, padding)
    for name, x in _inputs():
        _, switches = MaxPoolingWithArgmax2D(pool, strides, padding)(x)
        # Small integers: sums of overlapping windows are exact in float32.
        values = RNG.integers(-9, 10, size=switches.shape).astype("float32")
        expected = R.max_unpool(values, np.asarray(switches), x.shape)
        np.testing.assert_array_equal(unpool([values, switches, x]), expected, err_msg=name)


def test_facts_hand_example():
    x = np.array([[1, 2, 5, 3], [4, 0, 1, 6], [7, 8, 2, 2], [3, 9, 0, 1]], "float32")
    pooled, switches = MaxPoolingWithArgmax2D(2)(x[None, :, :, None])
    np.testing.assert_array_equal(np.asarray(pooled)[0, :, :, 0], [[4, 6], [9, 2]])
    np.testing.assert_array_equal(np.asarray(switches)[0, :, :, 0], [[4, 7], [13, 10]])
    values = np.array([[10, 20], [30, 40]], "float32")[None, :, :, None]
    unpooled = MaxUnpooling2D(2)([values, switches])
    expected = [[0, 0, 0, 0], [10, 0, 0, 20], [0, 0, 40, 0], [0, 30, 0, 0]]
    np.testing.assert_array_equal(np.asarray(unpooled)[0, :, :, 0], expected)


def test_one_switch_per_window_on_ties():
    x = np.zeros((1, 6, 6, 2), "float32")
    for padding in ("valid", "same"):
        pooled, switches = MaxPoolingWithArgmax2D(3, 2, padding)(x)
        s = np.asarray(switches)
        assert s.shape == pooled.shape
        # The first position of each window (inside the image) wins.
        _, ref = R.max_pool_with_switches(x, 3, 2, padding)
        np.testing.assert_array_equal(s, ref)
        unpooled = MaxUnpooling2D(3, 2, padding)([np.ones_like(pooled), switches, x])
        assert np.asarray(unpooled).sum() == s.size


def test_unpool_without_like_uses_the_transposed_convolution_size():
    for pool, strides, padding in GEOMETRIES:
        layer = MaxUnpooling2D(pool, strides, padding)
        (ph, pw), (sh, sw) = layer.pool_size, layer.strides
        h = R.conv_transpose_output_size(3, ph, sh, padding)
        w = R.conv_transpose_output_size(4, pw, sw, padding)
        x = RNG.normal(size=(2, h, w, 3)).astype("float32")
        pooled, switches = MaxPoolingWithArgmax2D(pool, strides, padding)(x)
        assert tuple(pooled.shape) == (2, 3, 4, 3)  # so (h, w) is a size that pools to (3, 4)
        y = layer([pooled, switches])
        assert tuple(y.shape) == layer.compute_output_shape([pooled.shape] * 2) == x.shape
        np.testing.assert_allclose(y, R.max_unpool(pooled, np.asarray(switches), x.shape))


@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
def test_functional_model_with_unknown_height_and_width(index_dtype):
    inputs = keras.Input((None, None, 3))
    pooled, switches = MaxPoolingWithArgmax2D(3, 2, "same", index_dtype, name="pool")(inputs)
    assert tuple(pooled.shape) == (None, None, None, 3) and switches.dtype == index_dtype
    outputs = MaxUnpooling2D(3, 2, "same", name="unpool")([pooled, switches, inputs])
    assert tuple(outputs.shape) == (None, None, None, 3)
    model = keras.Model(inputs, [outputs, switches])
    # One graph for every size: height and width are unknown while it is traced.
    graph = tf.function(model, input_signature=[tf.TensorSpec((None, None, None, 3))])
    for h, w in [(7, 5), (8, 8), (1, 3)]:
        x = RNG.normal(size=(2, h, w, 3)).astype("float32")
        y, s = graph(x)
        ref_pooled, ref_switches = R.max_pool_with_switches(x, 3, 2, "same")
        np.testing.assert_array_equal(s, ref_switches)
        np.testing.assert_allclose(y, R.max_unpool(ref_pooled, ref_switches, (h, w)), atol=1e-6)


def test_compiles_with_xla_and_trains():
    """Keras turns on XLA on a GPU (jit_compile="auto"): the pair must compile and train there."""
    inputs = keras.Input((None, None, 2))
    features = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    pooled, switches = MaxPoolingWithArgmax2D(2, name="pool")(features)
    outputs = MaxUnpooling2D(2, name="unpool")([pooled, switches, features])
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    x = RNG.normal(size=(4, 7, 6, 2)).astype("float32")
    expected = model(x).numpy()  # eager, no XLA
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    before = model.get_layer("conv").kernel.numpy()
    loss = model.train_on_batch(x, np.zeros_like(expected))
    assert np.isfinite(loss) and not np.allclose(before, model.get_layer("conv").kernel.numpy())
    assert all(layer.supports_jit for layer in model.layers)


def test_layer_geometry_agrees_with_the_reference():
    for size, pool, stride, padding in itertools.product(
        range(1, 12), (1, 2, 3, 4, 5), (1, 2, 3), ("valid", "same")
    ):
        if padding == "valid" and size < pool:
            continue
        out = _geometry.pooled_size(size, pool, stride, padding)
        assert out == R.conv_output_size(size, pool, stride, padding)
        before = R.same_padding(size, pool, stride)[0] if padding == "same" else 0
        assert _geometry.pad_before(size, out, pool, stride, padding) == before
        assert _geometry.unpooled_size(out, pool, stride, padding) == (
            R.conv_transpose_output_size(out, pool, stride, padding)
        )


# --- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pool, strides, padding", GEOMETRIES[:6])
def test_pool_gradient_goes_to_the_switch(pool, strides, padding):
    for x in (RNG.normal(size=(2, 7, 6, 2)), RNG.integers(0, 2, size=(2, 7, 6, 2))):
        x = tf.constant(x, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            pooled, switches = MaxPoolingWithArgmax2D(pool, strides, padding)(x)
            upstream = tf.constant(RNG.integers(1, 9, size=pooled.shape), tf.float32)
            loss = tf.reduce_sum(pooled * upstream)
        grad = tape.gradient(loss, x).numpy()
        np.testing.assert_array_equal(
            grad, R.max_unpool(upstream.numpy(), switches.numpy(), x.shape)
        )
        # TensorFlow's own op routes its gradient the same way.
        with tf.GradientTape() as tape:
            tape.watch(x)
            tf_pooled, _ = tf.nn.max_pool_with_argmax(
                x, pool, _strides(pool, strides), padding.upper()
            )
            tf_loss = tf.reduce_sum(tf_pooled * upstream)
        np.testing.assert_array_equal(grad, tape.gradient(tf_loss, x).numpy())


def test_unpool_gradient_gathers_at_the_switches():
    x = RNG.normal(size=(2, 7, 5, 3)).astype("float32")
    _, switches = MaxPoolingWithArgmax2D(3, 2, "same")(x)
    values = tf.constant(RNG.normal(size=switches.shape), tf.float32)
    upstream = RNG.normal(size=x.shape).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch(values)
        loss = tf.reduce_sum(MaxUnpooling2D(3, 2, "same")([values, switches, x]) * upstream)
    grad = tape.gradient(loss, values).numpy()
    expected = np.take_along_axis(upstream.reshape(2, -1), switches.numpy().reshape(2, -1), axis=1)
    np.testing.assert_allclose(grad, expected.reshape(grad.shape), rtol=1e-6)


# --- basics: shapes, config, arguments, mismatched inputs ----------------------------------------


def test_compute_output_shape_and_config():
    pool = MaxPoolingWithArgmax2D(3, 2, "same", index_dtype="int64", name="p")
    assert pool.compute_output_shape((None, 7, None, 4)) == ((None, 4, None, 4),) * 2
    assert pool.strides == (2, 2)
    clone = MaxPoolingWithArgmax2D.from_config(pool.get_config())
    assert (clone.pool_size, clone.strides, clone.padding, clone.index_dtype) == (
        (3, 3),
        (2, 2),
        "same",
        "int64",
    )
    _, switches = clone(np.zeros((1, 5, 5, 1), "float32"))
    assert switches.dtype == tf.int64
    unpool = MaxUnpooling2D((2, 3), padding="same")
    assert unpool.strides == (2, 3)
    assert unpool.compute_output_shape([(None, 4, 3, 2)] * 2) == (None, 8, 9, 2)
    assert unpool.compute_output_shape([(None, 4, 3, 2)] * 2 + [(None, 7, 9, 2)]) == (
        None,
        7,
        9,
        2,
    )
    assert unpool.compute_output_shape([(None, None, 3, 2)] * 2) == (None, None, 9, 2)
    clone = MaxUnpooling2D.from_config(unpool.get_config())
    assert (clone.pool_size, clone.strides, clone.padding) == ((2, 3), (2, 3), "same")


def test_unpool_accepts_int64_switches_from_tensorflow():
    x = RNG.normal(size=(2, 6, 6, 3)).astype("float32")
    pooled, argmax = tf.nn.max_pool_with_argmax(x, 2, 2, "VALID")  # int64 by default
    expected = R.max_unpool(pooled.numpy(), argmax.numpy(), x.shape)
    np.testing.assert_array_equal(MaxUnpooling2D(2)([pooled, argmax]), expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": (2, 2, 2)}, "pool_size"),
        ({"strides": -1}, "strides"),
        ({"padding": "full"}, "padding"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaxPoolingWithArgmax2D(**kwargs)
    with pytest.raises(ValueError, match=match):
        MaxUnpooling2D(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="index_dtype"):
        MaxPoolingWithArgmax2D(index_dtype="float32")
    with pytest.raises(ValueError):  # 3-D input
        MaxPoolingWithArgmax2D()(np.zeros((4, 4, 1), "float32"))
    x = np.zeros((1, 4, 4, 2), "float32")
    pooled, switches = MaxPoolingWithArgmax2D()(x)
    with pytest.raises(ValueError, match=r"list \[pooled, switches\]"):
        MaxUnpooling2D()(pooled)
    with pytest.raises(ValueError, match=r"list \[pooled, switches\]"):
        MaxUnpooling2D()([pooled])
    with pytest.raises(ValueError, match="integer switches"):
        MaxUnpooling2D()([pooled, tf.cast(switches, tf.float32)])


def test_mismatched_inputs_are_rejected_symbolically():
    inputs = keras.Input((8, 8, 3))
    pooled, switches = MaxPoolingWithArgmax2D(2)(inputs)
    other_pooled, other_switches = MaxPoolingWithArgmax2D(2)(pooled)
    with pytest.raises(ValueError, match="do not match"):
        MaxUnpooling2D(2)([pooled, other_switches])
    with pytest.raises(ValueError, match="channels"):
        MaxUnpooling2D(2)([pooled, switches, keras.Input((8, 8, 5))])
    with pytest.raises(ValueError, match="gives size"):
        MaxUnpooling2D(2)([pooled, switches, keras.Input((6, 8, 3))])
    with pytest.raises(ValueError, match="integer switches"):
        MaxUnpooling2D(2)([pooled, pooled])
    with pytest.raises(ValueError, match="4-D"):
        MaxUnpooling2D(2)([pooled, switches, keras.Input((8, 3))])
    one = MaxPoolingWithArgmax2D(2)(keras.Input((8, 8, 3), batch_size=1))
    with pytest.raises(ValueError, match="batch size"):
        MaxUnpooling2D(2)([*one, keras.Input((8, 8, 3), batch_size=2)])
    assert MaxUnpooling2D(2)([other_pooled, other_switches, pooled]).shape == (None, 4, 4, 3)


def test_switches_that_do_not_belong_are_rejected_eagerly():
    x = RNG.normal(size=(2, 5, 5, 3)).astype("float32")
    pooled, switches = MaxPoolingWithArgmax2D(2)(x)
    # The batch folded into the index (include_batch_in_index=True): sample 1 points past its end.
    _, with_batch = tf.nn.max_pool_with_argmax(x, 2, 2, "VALID", include_batch_in_index=True)
    with pytest.raises(ValueError, match="do not belong"):
        MaxUnpooling2D(2)([pooled, with_batch, x])
    # Flat indices of a 5-wide tensor decoded as if it were 4 wide (no `like` for an odd size).
    with pytest.raises(ValueError, match="do not belong"):
        MaxUnpooling2D(2)([pooled, switches])
    # Another channel's switches.
    with pytest.raises(ValueError, match="do not belong"):
        MaxUnpooling2D(2)([pooled, tf.roll(switches, 1, axis=3), x])
    # Switches of another window (a different pooling geometry).
    _, shifted = MaxPoolingWithArgmax2D(2, 1)(x[:, :3, :3])
    with pytest.raises(ValueError, match="do not belong"):
        MaxUnpooling2D(2)([pooled, tf.cast(shifted, tf.int32), x[:, :4, :4]])
    assert MaxUnpooling2D(2)([pooled, switches, x]).shape == x.shape


def test_round_trip_through_a_keras_file(tmp_path):
    inputs = keras.Input((None, None, 2))
    pooled, switches = MaxPoolingWithArgmax2D(3, 2, "same", name="pool")(inputs)
    outputs = MaxUnpooling2D(3, 2, "same", name="unpool")([pooled, switches, inputs])
    model = keras.Model(inputs, outputs)
    path = tmp_path / "max_unpool.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("unpool"), MaxUnpooling2D)
    assert loaded.get_layer("pool").get_config() == model.get_layer("pool").get_config()
    x = RNG.normal(size=(1, 7, 9, 2)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))


def test_many_sizes_against_reference():
    """Odd and even sizes, every geometry, one functional model per geometry (unknown H/W)."""
    for pool, strides, padding in GEOMETRIES:
        inputs = keras.Input((None, None, 1))
        pooled, switches = MaxPoolingWithArgmax2D(pool, strides, padding)(inputs)
        outputs = MaxUnpooling2D(pool, strides, padding)([pooled, switches, inputs])
        model = keras.Model(inputs, [pooled, switches, outputs])
        for h, w in itertools.product((3, 4, 5), (3, 6)):
            x = RNG.integers(0, 4, size=(1, h, w, 1)).astype("float32")
            p, s, y = model(x)
            ref_p, ref_s = R.max_pool_with_switches(x, pool, _strides(pool, strides), padding)
            np.testing.assert_array_equal(s, ref_s)
            np.testing.assert_array_equal(y, R.max_unpool(ref_p, ref_s, x.shape))
