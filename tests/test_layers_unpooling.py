"""NearestUnpooling2D and BedOfNailsUnpooling2D: against dlcourse.reference and UpSampling2D."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlcourse import reference as R
from dlcourse.layers import BedOfNailsUnpooling2D, NearestUnpooling2D

RNG = np.random.default_rng(3)
LAYERS = [(NearestUnpooling2D, R.nearest_unpool), (BedOfNailsUnpooling2D, R.bed_of_nails_unpool)]


def _inputs():
    yield np.arange(2 * 3 * 4 * 2, dtype="float32").reshape(2, 3, 4, 2)
    yield RNG.normal(size=(1, 5, 3, 3)).astype("float32")  # odd sizes
    yield np.ones((1, 1, 1, 1), "float32")


@pytest.mark.parametrize("layer_cls, reference", LAYERS)
@pytest.mark.parametrize("size", [2, 3, (2, 3), (1, 2)])
def test_equals_reference(layer_cls, reference, size):
    layer = layer_cls(size)
    for x in _inputs():
        np.testing.assert_array_equal(layer(x), reference(x, size))


def test_nearest_equals_upsampling2d():
    x = RNG.normal(size=(2, 5, 3, 4)).astype("float32")
    for size in (2, (3, 2)):
        np.testing.assert_array_equal(
            NearestUnpooling2D(size)(x), keras.layers.UpSampling2D(size)(x)
        )


@pytest.mark.parametrize("layer_cls, reference", LAYERS)
def test_unknown_height_and_width(layer_cls, reference):
    inputs = keras.Input((None, None, 2))
    outputs = layer_cls((2, 3), name="up")(inputs)
    assert tuple(outputs.shape) == (None, None, None, 2)
    model = keras.Model(inputs, outputs)
    graph = tf.function(model, input_signature=[tf.TensorSpec((None, None, None, 2))])
    for h, w in [(3, 5), (4, 4)]:
        x = RNG.normal(size=(2, h, w, 2)).astype("float32")
        np.testing.assert_array_equal(graph(x), reference(x, (2, 3)))


def test_gradients():
    x = tf.constant(RNG.normal(size=(1, 3, 4, 2)), tf.float32)
    upstream = RNG.normal(size=(1, 6, 8, 2)).astype("float32")
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        nearest = tf.reduce_sum(NearestUnpooling2D(2)(x) * upstream)
        nails = tf.reduce_sum(BedOfNailsUnpooling2D(2)(x) * upstream)
    # Nearest: the sum over each block; bed of nails: the block's top-left corner.
    block_sums = upstream.reshape(1, 3, 2, 4, 2, 2).sum(axis=(2, 4))
    np.testing.assert_allclose(tape.gradient(nearest, x), block_sums, rtol=1e-5)
    np.testing.assert_array_equal(tape.gradient(nails, x), upstream[:, ::2, ::2, :])


@pytest.mark.parametrize("layer_cls, reference", LAYERS)
def test_config_shape_and_round_trip(layer_cls, reference, tmp_path):
    layer = layer_cls((2, 3), name="up")
    assert layer.compute_output_shape((None, 4, None, 5)) == (None, 8, None, 5)
    clone = layer_cls.from_config(layer.get_config())
    assert clone.size == (2, 3) and clone.name == "up"
    model = keras.Sequential([keras.Input((None, None, 1)), layer])
    model.save(tmp_path / "up.keras")
    loaded = keras.saving.load_model(tmp_path / "up.keras")
    assert isinstance(loaded.layers[0], layer_cls)
    x = RNG.normal(size=(1, 3, 2, 1)).astype("float32")
    np.testing.assert_array_equal(loaded(x), reference(x, (2, 3)))


@pytest.mark.parametrize("layer_cls", [NearestUnpooling2D, BedOfNailsUnpooling2D])
def test_bad_arguments_and_inputs(layer_cls):
    for size in (0, -1, (2, 0), (2, 2, 2), 1.5, "2"):
        with pytest.raises(ValueError, match="size"):
            layer_cls(size)
    with pytest.raises(ValueError):
        layer_cls(2)(np.zeros((3, 3, 1), "float32"))  # not 4-D
    with pytest.raises(ValueError, match="4-D"):
        layer_cls(2).compute_output_shape((3, 3, 1))
