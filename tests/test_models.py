"""dlcourse.models: shapes, names, unknown sizes, every up/downsampling trains, the exact twin."""

import numpy as np
import pytest

import dlcourse
from dlcourse import models
from dlcourse.quiet import import_keras

keras = import_keras()

COMBINATIONS = [
    (down, up)
    for down in models.DOWNSAMPLING_METHODS
    for up in models.UPSAMPLING_METHODS
    if not (up == "max_unpool" and down != "pool")
]


def rng_images(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype("float32")


# ------------------------------------------------------------------ patch classifier and twin


def small_patch_model(**kwargs):
    keras.utils.set_random_seed(1)
    kwargs = {"patch_size": 9, "num_classes": 4, "filters": (4, 8), "dense_units": 8, **kwargs}
    return models.build_patch_classifier(**kwargs)


def test_patch_classifier_shapes_and_names():
    m = small_patch_model()
    assert m.input_shape == (None, 9, 9, 3) and m.output_shape == (None, 4)
    assert [layer.name for layer in m.layers] == [
        "patch",
        "conv1",
        "conv2",
        "flatten",
        "dense",
        "classifier",
    ]
    assert models.receptive_field(m) == 9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"patch_size": 8}, "odd positive patch_size"),
        ({"kernel_size": 2}, "odd positive kernel_size"),
        ({"patch_size": 5, "filters": (4, 4, 4)}, "leave a feature map"),
        ({"num_classes": 1}, "num_classes >= 2"),
    ],
)
def test_patch_classifier_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_patch_model(**kwargs)


@pytest.mark.parametrize("padding", models.PADDING_MODES)
def test_fully_convolutional_twin_equals_sliding_window(padding):
    m = small_patch_model()
    images = rng_images((2, 13, 11, 3))
    slow = models.sliding_window_predict(m, images, batch_size=64, padding=padding)
    twin = models.to_fully_convolutional(m, padding=padding)
    fast = keras.ops.convert_to_numpy(twin(images))
    assert fast.shape == slow.probabilities.shape == (2, 13, 11, 4)
    np.testing.assert_allclose(fast, slow.probabilities, atol=1e-6)
    assert slow.forward_passes == 2 * 13 * 11
    assert slow.model_calls == int(np.ceil(2 * 13 * 11 / 64))
    # the same weights: the first dense kernel, reshaped
    dense_kernel = m.get_layer("dense").get_weights()[0]
    conv_kernel = twin.get_layer("dense_as_conv").get_weights()[0]
    assert conv_kernel.shape == (5, 5, 8, 8)
    np.testing.assert_array_equal(conv_kernel.reshape(dense_kernel.shape), dense_kernel)
    assert models.receptive_field(twin) == 9


def test_sliding_window_single_image_and_padding_makes_a_difference():
    m = small_patch_model()
    image = rng_images((10, 12, 3), seed=2)
    reflect = models.sliding_window_predict(m, image, batch_size=1000)
    zero = models.sliding_window_predict(m, image, padding="zero")
    assert reflect.probabilities.shape == (10, 12, 4) and reflect.model_calls == 1
    np.testing.assert_allclose(reflect.probabilities.sum(-1), 1.0, atol=1e-5)
    centre = (slice(4, 6), slice(4, 8))  # the patches there never reach the padding
    np.testing.assert_allclose(reflect.probabilities[centre], zero.probabilities[centre], atol=1e-6)
    assert not np.allclose(reflect.probabilities[0, 0], zero.probabilities[0, 0])
    with pytest.raises(ValueError, match="padding one of"):
        models.sliding_window_predict(m, image, padding="same")
    with pytest.raises(ValueError, match="batch_size"):
        models.sliding_window_predict(m, image, batch_size=0)


def test_twin_of_a_patch_model_with_batchnorm_and_dropout():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((7, 7, 3))
    x = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.Dense(6, activation="relu", name="d1")(x)
    x = keras.layers.Dense(5, activation="relu", name="d2")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(x)
    m = keras.Model(inputs, outputs)
    bn = m.get_layer("bn")
    bn.set_weights([w + np.linspace(0.1, 0.9, 4).astype("float32") for w in bn.get_weights()])
    images = rng_images((1, 9, 8, 3))
    twin = models.to_fully_convolutional(m, padding="zero")
    expected = models.sliding_window_predict(m, images, padding="zero").probabilities
    np.testing.assert_allclose(keras.ops.convert_to_numpy(twin(images)), expected, atol=1e-6)


def test_twin_refuses_what_it_cannot_convert():
    inputs = keras.Input((9, 9, 3))
    x = keras.layers.Conv2D(4, 3, name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    with pytest.raises(ValueError, match="layer 'pool' of type MaxPooling2D"):
        models.to_fully_convolutional(keras.Model(inputs, outputs))
    inputs = keras.Input((9, 9, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    with pytest.raises(ValueError, match="VALID stride-1"):
        models.to_fully_convolutional(keras.Model(inputs, outputs))
    with pytest.raises(ValueError, match="padding one of"):
        models.to_fully_convolutional(small_patch_model(), padding="same")


def test_reflection_padding_layer_matches_numpy_and_round_trips():
    x = rng_images((1, 5, 6, 2))
    layer = models.ReflectionPadding2D(2)
    expected = np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected)
    assert layer.compute_output_shape((None, None, 6, 2)) == (None, None, 10, 2)
    assert models.ReflectionPadding2D.from_config(layer.get_config()).padding == 2
    with pytest.raises(ValueError, match="padding"):
        models.ReflectionPadding2D(-1)


# ------------------------------------------------------------------ naive FCN, receptive field


def test_naive_fcn_shapes_names_and_params():
    m = models.build_naive_fcn(depth=3, width=8, num_classes=4)
    assert [layer.name for layer in m.layers] == ["image", "conv1", "conv2", "conv3", "classifier"]
    # (3·9·8 + 8) + 2·(8·9·8 + 8) + (8·4 + 4)
    assert m.count_params() == 224 + 2 * 584 + 36
    out = m(rng_images((2, 13, 21, 3)))
    assert out.shape == (2, 13, 21, 4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out).sum(-1), 1.0, atol=1e-5)
    assert models.build_naive_fcn().count_params() == 47268  # the default: 6 convs, 32 filters


def test_naive_fcn_batch_norm_and_bad_arguments():
    m = models.build_naive_fcn(depth=2, width=4, batch_norm=True)
    assert m.get_layer("conv1_bn").momentum == 0.9
    assert [layer.name for layer in m.layers][1:4] == ["conv1_conv", "conv1_bn", "conv1_relu"]
    for kwargs, match in [
        ({"depth": 0}, "depth >= 1"),
        ({"width": 0}, "width >= 1"),
        ({"kernel_size": 4}, "kernel_size"),
        ({"num_classes": 1}, "num_classes >= 2"),
    ]:
        with pytest.raises(ValueError, match=match):
            models.build_naive_fcn(**kwargs)


@pytest.mark.parametrize("depth", [1, 3, 6])
def test_receptive_field_of_naive_fcn(depth):
    m = models.build_naive_fcn(depth=depth, width=2)
    assert models.receptive_field(m) == 2 * depth + 1
    assert models.receptive_field([(3, 1)] * depth) == 2 * depth + 1
    assert models.build_naive_fcn(depth=depth, width=2, kernel_size=5).layers[1].kernel_size == (
        5,
        5,
    )
    assert models.receptive_field(models.build_naive_fcn(depth=depth, width=2, kernel_size=5)) == (
        4 * depth + 1
    )


def test_receptive_field_hand_cases():
    assert models.receptive_field([(3, 1), (3, 1), (3, 1)]) == 7
    # conv3, pool2, conv3: 3 -> 4 (jump 2) -> 8
    assert models.receptive_field([(3, 1), (2, 2), (3, 1)]) == 8
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 3, padding="same", dilation_rate=2)(inputs)  # 5
    x = keras.layers.Conv2D(2, 3, strides=2, padding="same")(x)  # 7, jump 2
    x = keras.layers.UpSampling2D(2)(x)  # jump 1
    x = keras.layers.Conv2D(2, 3, padding="same")(x)  # 9
    assert models.receptive_field(keras.Model(inputs, x)) == 9


def test_receptive_field_through_a_nested_model():
    inner_in = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 3, padding="same")(inner_in)  # 3
    backbone = keras.Model(inner_in, keras.layers.MaxPooling2D(2)(x))  # 4, jump 2
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(3, 3, padding="same")(inputs)  # 3
    x = backbone(x)  # 3 + (4 - 1) = 6, jump 2
    outputs = keras.layers.Conv2D(2, 3, padding="same")(x)  # 6 + 2·2 = 10
    assert models.receptive_field(keras.Model(inputs, outputs)) == 10


def test_receptive_field_of_encoder_decoder_by_hand():
    m = models.build_encoder_decoder(4, upsampling="transpose", filters=(4, 8, 16))
    # enc1 3, pool 4 (j2), enc2 8, pool 10 (j4), bottleneck 18, dec2 26,
    # transpose k3 s2 (2 inputs per output) 30 (j2), dec1 34, transpose 36 (j1), head 38
    assert models.receptive_field(m) == 38


# ------------------------------------------------------------------ encoder–decoder


def test_encoder_decoder_names_and_shapes():
    m = models.build_encoder_decoder(4, upsampling="transpose", skips=True)
    names = [layer.name for layer in m.layers]
    for name in [
        "image",
        "enc1_conv",
        "enc1_bn",
        "enc1_relu",
        "down1_pool",
        "enc2_conv",
        "down2_pool",
        "bottleneck_conv",
        "dec2_conv",
        "up2_transpose",
        "up2_bn",
        "up2_relu",
        "skip2_concat",
        "dec1_conv",
        "up1_transpose",
        "skip1_concat",
        "head_conv",
        "classifier",
    ]:
        assert name in names
    assert len(names) == len(set(names))
    assert m.get_layer("enc1_bn").momentum == 0.9
    assert m.get_layer("up2_transpose").output.shape == (None, None, None, 32)
    assert m.get_layer("skip2_concat").output.shape == (None, None, None, 64)
    assert m(rng_images((1, 32, 48, 3))).shape == (1, 32, 48, 4)
    assert m(rng_images((1, 16, 16, 3))).shape == (1, 16, 16, 4)
    plain = models.build_encoder_decoder(
        4, downsampling="strided_conv", upsampling="transpose", batch_norm=False
    )
    assert "down1_conv" in [layer.name for layer in plain.layers]
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"upsampling": "foo"},
            r"Expected upsampling one of \('nearest', 'bed_of_nails', 'max_unpool', "
            r"'transpose', 'resize_conv'\)\. Received: upsampling='foo'",
        ),
        (
            {"downsampling": "avg"},
            r"Expected downsampling one of \('pool', 'strided_conv'\)\. Received: downsampling='avg'",
        ),
        ({"upsampling": "max_unpool", "downsampling": "strided_conv"}, "downsampling='pool'"),
        ({"filters": (16,)}, "at least two"),
        ({"input_shape": (30, 32, 3)}, "divisible by 4"),
    ],
)
def test_encoder_decoder_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.build_encoder_decoder(4, **kwargs)
    with pytest.raises(ValueError, match="num_classes"):
        models.build_encoder_decoder(1)


@pytest.mark.parametrize("down, up", COMBINATIONS)
def test_every_combination_builds_and_trains_one_step(down, up):
    keras.utils.set_random_seed(0)
    skips = down == "pool"  # both settings covered across the parametrisation
    m = models.build_encoder_decoder(
        3, filters=(4, 8, 8), downsampling=down, upsampling=up, skips=skips
    )
    assert f"up2_{up}" in [layer.name for layer in m.layers]
    # Eagerly: tracing a train step costs ~10 s per model on the shared 2 cores, one eager step
    # under 1 s; graph mode of the course layers is exercised by predict in the round trip below.
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    x = rng_images((2, 16, 16, 3))
    y = np.random.default_rng(0).integers(0, 3, size=(2, 16, 16))
    before = [w.copy() for w in m.get_weights()]
    loss = float(m.train_on_batch(x, y))
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, m.get_weights(), strict=True))
    out = keras.ops.convert_to_numpy(m(x, training=False))
    assert out.shape == (2, 16, 16, 3)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)


def test_max_unpool_odd_and_unknown_sizes_and_keras_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    m = models.build_encoder_decoder(3, filters=(4, 8, 8), upsampling="max_unpool", skips=True)
    assert isinstance(m.get_layer("up2_max_unpool"), dlcourse.layers.MaxUnpooling2D)
    assert isinstance(m.get_layer("down1_pool"), dlcourse.layers.MaxPoolingWithArgmax2D)
    x = rng_images((1, 15, 21, 3))  # odd sizes: `like` restores them
    assert m(x).shape == (1, 15, 21, 3)
    path = tmp_path / "max_unpool.keras"
    m.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6)
    assert [layer.name for layer in restored.layers] == [layer.name for layer in m.layers]
