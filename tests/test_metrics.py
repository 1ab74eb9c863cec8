"""dlcourse.metrics: hand cases, agreement with Keras, use in fit, and the cost counter."""

import math
import time

import numpy as np
import pytest

import dlcourse
from dlcourse import metrics
from dlcourse.quiet import import_keras

keras = import_keras()


def one_hot_scores(labels, k, logits=False):
    scores = np.eye(k, dtype="float32")[labels] * 0.7 + 0.1
    return np.log(scores) + 3.0 if logits else scores


# ------------------------------------------------------------------ accuracy, confusion, IoU


def test_pixel_accuracy_labels_probabilities_and_logits():
    t = np.array([[[0, 1], [2, 2]]])
    p = np.array([[[0, 1], [1, 2]]])
    assert metrics.pixel_accuracy(t, p) == 0.75
    assert metrics.pixel_accuracy(t, one_hot_scores(p, 3)) == 0.75
    assert metrics.pixel_accuracy(t, one_hot_scores(p, 3, logits=True)) == 0.75
    assert metrics.pixel_accuracy(t[..., None], p) == 0.75  # (N, H, W, 1) truth


def test_shape_and_dtype_errors():
    with pytest.raises(ValueError, match="same shape"):
        metrics.pixel_accuracy(np.zeros((2, 4, 4), int), np.zeros((2, 4, 5), int))
    with pytest.raises(ValueError, match="integer class ids"):
        metrics.pixel_accuracy(np.zeros((4, 4)) + 0.5, np.zeros((4, 4), int))
    with pytest.raises(ValueError, match=r"y_pred in \[0, 3\)"):
        metrics.confusion_matrix([0, 1], [0, 3], num_classes=3)
    with pytest.raises(ValueError, match="num_classes"):
        metrics.confusion_matrix([0, 1], [0, 1], num_classes=0)


def test_confusion_matrix_hand():
    cm = metrics.confusion_matrix([[0, 0, 1], [1, 2, 2]], [[0, 1, 1], [1, 2, 0]], num_classes=4)
    expected = np.array([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64


def test_per_class_iou_absent_classes():
    t = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0, 0, 1, 1, 1, 2])
    iou = metrics.per_class_iou(t, p, num_classes=4)
    # class 0: 2 / 3; class 1: 2 / 4; class 2: predicted only -> 0; class 3: absent -> NaN
    np.testing.assert_allclose(iou[:3], [2 / 3, 1 / 2, 0.0])
    assert np.isnan(iou[3])
    assert math.isclose(metrics.mean_iou(t, p, 4), (2 / 3 + 1 / 2 + 0) / 3)


def test_mean_iou_perfect_and_empty():
    masks = np.random.default_rng(0).integers(0, 3, size=(2, 5, 5))
    assert metrics.mean_iou(masks, masks, num_classes=10) == 1.0
    assert math.isnan(metrics.mean_iou(np.zeros((0, 4, 4), int), np.zeros((0, 4, 4), int), 3))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_iou_agrees_with_keras(seed):
    rng = np.random.default_rng(seed)
    k = 5  # class 4 never appears, class 3 only in the prediction for some seeds
    t = rng.integers(0, 3, size=(3, 8, 8))
    p = rng.integers(0, 4, size=(3, 8, 8))
    ref = keras.metrics.MeanIoU(num_classes=k)
    ref.update_state(t, p)
    assert metrics.mean_iou(t, p, k) == pytest.approx(float(ref.result()), abs=1e-6)
    ours = metrics.MeanIoU(num_classes=k)
    ours.update_state(t, one_hot_scores(p, k))
    assert float(ours.result()) == pytest.approx(float(ref.result()), abs=1e-6)


def test_keras_mean_iou_metric_accumulates_over_batches():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 4, size=(4, 6, 6))
    p = rng.integers(0, 4, size=(4, 6, 6))
    m = metrics.MeanIoU(num_classes=4)
    for i in range(4):
        m.update_state(t[i : i + 1], one_hot_scores(p[i : i + 1], 4, logits=True))
    assert float(m.result()) == pytest.approx(metrics.mean_iou(t, p, 4), abs=1e-6)


def test_keras_mean_iou_config_and_registration():
    m = metrics.MeanIoU(num_classes=4)
    assert m.name == "mean_iou" and m.sparse_y_pred is False
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(m))
    assert type(restored) is metrics.MeanIoU
    assert restored.get_config() == m.get_config()
    assert keras.saving.get_registered_name(metrics.MeanIoU) == "dlcourse>MeanIoU"


def test_keras_mean_iou_in_fit():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(4, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=[metrics.MeanIoU(4)])
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 4, size=(4, 8, 8))
    history = model.fit(x, y, validation_data=(x, y), epochs=1, batch_size=4, verbose=0)
    val = history.history["val_mean_iou"][0]
    assert val == pytest.approx(metrics.mean_iou(y, model.predict(x, verbose=0), 4), abs=1e-5)


# ------------------------------------------------------------------ boundary F1


def test_boundary_f1_hand_cases():
    t = np.zeros((8, 8), int)
    t[:, 4:] = 1
    shifted = np.zeros((8, 8), int)
    shifted[:, 5:] = 1
    assert metrics.boundary_f1(t, t) == 1.0
    # boundaries: columns {3, 4} and {4, 5}; one column in common
    assert metrics.boundary_f1(t, shifted, tolerance=0) == 0.5
    assert metrics.boundary_f1(t, shifted, tolerance=1) == 1.0
    far = np.zeros((8, 8), int)
    far[:, 7:] = 1  # boundary columns {6, 7}: two away from column 4
    assert metrics.boundary_f1(t, far, tolerance=1) == 0.0
    # tolerance 2: predicted column 6 and true column 4 match, 7 and 3 do not
    assert metrics.boundary_f1(t, far, tolerance=2) == 0.5


def test_boundary_f1_uniform_masks_and_batches():
    uniform = np.zeros((8, 8), int)
    square = uniform.copy()
    square[2:5, 2:5] = 2
    assert metrics.boundary_f1(uniform, uniform) == 1.0  # no boundary anywhere
    assert metrics.boundary_f1(square, uniform) == 0.0  # missed every edge
    assert metrics.boundary_f1(uniform, square) == 0.0  # invented every edge
    batch_t = np.stack([uniform, square])
    batch_p = np.stack([uniform, uniform])
    assert metrics.boundary_f1(batch_t, batch_p) == 0.5  # the mean over images
    assert metrics.boundary_f1(batch_t, one_hot_scores(batch_t, 3)) == 1.0
    with pytest.raises(ValueError, match="tolerance"):
        metrics.boundary_f1(square, square, tolerance=-1)


def test_boundary_f1_blocky_mask_scores_lower():
    yy, xx = np.mgrid[:32, :32]
    disc = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2 < 10**2).astype(int)
    blocky = disc[2::4, 2::4].repeat(4, axis=0).repeat(4, axis=1)  # nearest-upsampled 8×8
    assert metrics.pixel_accuracy(disc, blocky) > 0.92  # measured 0.926
    assert metrics.boundary_f1(disc, blocky, tolerance=1) < 0.85  # measured 0.819


# ------------------------------------------------------------------ cost


def test_model_cost_hand_computed():
    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)  # 112 params
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(2, 3, padding="same", name="conv2")(x)  # 74 params
    x = keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same", name="up")(x)  # 95
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)  # 50
    outputs = keras.layers.Conv2D(3, 1, activation="softmax", name="classifier")(x)  # 18
    cost = metrics.model_cost(keras.Model(inputs, outputs), (8, 8, 3))
    rows = {r["name"]: r for r in cost["layers"]}
    assert rows["conv1"]["multiply_adds"] == 8 * 8 * 9 * 3 * 4
    assert rows["pool"]["multiply_adds"] == 0
    assert rows["conv2"]["multiply_adds"] == 4 * 4 * 9 * 4 * 2
    assert rows["up"]["multiply_adds"] == 4 * 4 * 9 * 2 * 5  # each input pixel scatters k×k×5
    assert rows["dw"]["multiply_adds"] == 8 * 8 * 9 * 5
    assert rows["classifier"]["multiply_adds"] == 8 * 8 * 5 * 3
    assert rows["up"]["output_shape"] == (8, 8, 5)
    assert cost["params"] == 112 + 74 + 95 + 50 + 18
    assert cost["multiply_adds"] == 6912 + 0 + 1152 + 1440 + 2880 + 960
    # float32 outputs: image 192, conv1 256, pool 64, conv2 32, up 320, dw 320, classifier 192
    assert cost["activation_bytes"] == 4 * (192 + 256 + 64 + 32 + 320 + 320 + 192)


def test_model_cost_dense_head():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)  # VALID: 4×4×3
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(5, name="dense")(x)
    cost = metrics.model_cost(keras.Model(inputs, outputs), (6, 6, 2))
    assert cost["multiply_adds"] == 16 * 9 * 2 * 3 + 48 * 5
    assert cost["params"] == (18 * 3 + 3) + (48 * 5 + 5)
    assert cost["activation_bytes"] == 4 * (72 + 48 + 48 + 5)


def test_model_cost_of_a_nested_model():
    inner_in = keras.Input((None, None, 3))
    backbone = keras.Model(inner_in, keras.layers.Conv2D(4, 3, padding="same")(inner_in))
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(2, 1)(backbone(inputs))
    cost = metrics.model_cost(keras.Model(inputs, outputs), (8, 8, 3))
    assert cost["multiply_adds"] == 64 * 27 * 4 + 64 * 4 * 2
    assert cost["activation_bytes"] == 4 * (192 + 256 + 128)  # the inner input is the outer one
    assert cost["params"] == 112 + 10


def test_model_cost_of_a_layer_called_twice():
    inputs = keras.Input((None, None, 2))
    shared = keras.layers.Conv2D(2, 3, padding="same", name="shared")
    outputs = shared(shared(inputs))
    cost = metrics.model_cost(keras.Model(inputs, outputs), (4, 4, 2))
    assert [r["name"] for r in cost["layers"]][1:] == ["shared", "shared"]
    assert cost["params"] == 9 * 2 * 2 + 2  # the weights exist once
    assert cost["multiply_adds"] == 2 * (16 * 9 * 2 * 2)  # the work is done twice


def test_model_cost_counts_the_convolution_inside_resize_conv():
    inputs = keras.Input((4, 4, 2))
    outputs = dlcourse.layers.ResizeConv2D(5, 3, size=2, name="up")(inputs)
    cost = metrics.model_cost(keras.Model(inputs, outputs), (4, 4, 2))
    assert cost["multiply_adds"] == 8 * 8 * 9 * 2 * 5  # the 3×3 conv at the upsampled size
    assert cost["params"] == 9 * 2 * 5 + 5
    assert cost["activation_bytes"] == 4 * (32 + 320)


def test_model_cost_depth_multiplier_hand_counted():
    inputs = keras.Input((None, None, 3))
    x = keras.layers.SeparableConv2D(5, 3, padding="same", depth_multiplier=2, name="sep")(inputs)
    outputs = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=3, name="dw")(x)
    cost = metrics.model_cost(keras.Model(inputs, outputs), (8, 8, 3))
    rows = {r["name"]: r for r in cost["layers"]}
    # separable: a 3×3 filter per each of 3 × 2 = 6 intermediate channels, then 6 -> 5 pointwise
    assert rows["sep"]["multiply_adds"] == 8 * 8 * (9 * 6 + 6 * 5)
    assert rows["sep"]["params"] == 9 * 6 + 6 * 5 + 5
    # depthwise: a 3×3 filter per each of 5 × 3 = 15 output channels
    assert rows["dw"]["multiply_adds"] == 8 * 8 * 9 * 15
    assert rows["dw"]["output_shape"] == (8, 8, 15)


def test_measure_step_time():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1, activation="softmax")(inputs))
    x = np.zeros((2, 8, 8, 3), "float32")
    y = np.zeros((2, 8, 8), "int32")
    seconds = metrics.measure_step_time(model, x, y, steps=3, warmup=1)
    assert 0 < seconds < 5
    with pytest.raises(ValueError, match="steps"):
        metrics.measure_step_time(model, x, y, steps=0)


def test_step_timer_times_steps_and_training_part_of_epochs():
    timer = metrics.StepTimer()
    with pytest.raises(ValueError, match="StepTimer"):
        timer.timing()
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 1, activation="softmax")(inputs))
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy())
    x = np.zeros((12, 8, 8, 3), "float32")
    y = np.zeros((12, 8, 8), "int32")
    start = time.perf_counter()
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y), verbose=0, callbacks=[timer])
    whole = time.perf_counter() - start
    assert len(timer.seconds) == 6 and min(timer.seconds) > 0  # 3 steps per epoch
    # one value per epoch, not one more for the validation (fit hands it the callbacks too)
    assert len(timer.epoch_seconds) == len(timer.epoch_cpu_seconds) == 2
    assert sum(timer.seconds) <= sum(timer.epoch_seconds) < whole
    timing = timer.timing(skip=2)
    assert timing["step_seconds"] == float(np.median(timer.seconds[2:]))
    assert timing["cpu_step_seconds"] == sum(timer.epoch_cpu_seconds) / 6


# ------------------------------------------------------------------ labels with a channel axis


def test_masks_with_a_channel_axis_of_size_one_are_labels_not_scores():
    rng = np.random.default_rng(0)
    m = rng.integers(0, 3, (2, 6, 6, 1))
    assert metrics.pixel_accuracy(m, m) == 1.0
    assert (
        metrics.pixel_accuracy(m[..., 0], m) == 1.0 and metrics.pixel_accuracy(m, m[..., 0]) == 1.0
    )
    np.testing.assert_array_equal(
        metrics.confusion_matrix(m, m, 3), np.diag(np.bincount(m.ravel(), minlength=3))
    )
    np.testing.assert_array_equal(metrics.per_class_iou(m, m, 3), [1.0, 1.0, 1.0])
    assert metrics.mean_iou(m, m, 3) == 1.0
    assert metrics.boundary_f1(m, m) == 1.0
    other = (m + 1) % 3
    assert metrics.pixel_accuracy(m, other) == 0.0 and metrics.mean_iou(m, other, 3) == 0.0
    # scores with two or more classes are still argmax-ed
    assert metrics.pixel_accuracy(m, one_hot_scores(m[..., 0], 3)) == 1.0


def test_one_score_per_pixel_is_refused_with_a_clear_error():
    m = np.zeros((2, 4, 4, 1), int)
    sigmoid = np.full((2, 4, 4, 1), 0.7, np.float32)
    with pytest.raises(ValueError, match="scores need at least 2 classes"):
        metrics.pixel_accuracy(m, sigmoid)
    metric = metrics.MeanIoU(num_classes=2)
    with pytest.raises(ValueError, match="at least 2 classes on the last axis"):
        metric.update_state(m, sigmoid)
    metric = metrics.MeanIoU(num_classes=2, sparse_y_pred=True)
    metric.update_state(m, m)  # labels with a channel axis: fine with sparse_y_pred
    assert float(metric.result()) == pytest.approx(1.0)  # Keras adds 1e-7 to the union
