"""Tests of dlcourse.detection.localization: models, multi-task loss, box metrics, evaluation, saving."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlcourse.detection.boxes import box_iou
from dlcourse.detection.localization import (
    BN_MOMENTUM,
    BOX_LOSSES,
    BoxIoUAbove,
    BoxLoss,
    MeanBoxIoU,
    box_loss,
    build_backbone,
    build_localizer,
    build_separate_networks,
    compile_localizer,
    evaluate_localization,
)

SMALL = {"input_shape": (32, 32, 3), "filters": (8, 16), "convs_per_stage": 1}


def random_boxes(rng, n):
    """Valid rel_xywh boxes inside the image."""
    xy = rng.uniform(0, 0.7, (n, 2))
    wh = rng.uniform(0.05, 1 - xy)
    return np.concatenate([xy, wh], axis=-1).astype(np.float32)


def output_shapes(model):
    # model.output_shape of a dict-output model is a list ordered by name: use the dict.
    return {name: tuple(tensor.shape) for name, tensor in model.output.items()}


def random_data(n=24, size=32, num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, size, size, 3)).astype(np.float32)
    y = {"class": rng.integers(0, num_classes, n).astype(np.int32), "box": random_boxes(rng, n)}
    return x, y


# ---------------------------------------------------------------------------------- models


def test_backbone_default_shapes_names_and_batchnorm_momentum():
    backbone = build_backbone()
    assert backbone.name == "backbone"
    assert backbone.output_shape == (None, 4 * 4 * 64)  # 64 / 2**4 = 4
    names = [layer.name for layer in backbone.layers]
    assert all(n.startswith("backbone_") for n in names)
    assert "backbone_conv1_1" in names and "backbone_conv4_2" in names
    bns = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 8 and all(bn.momentum == BN_MOMENTUM == 0.9 for bn in bns)
    assert build_backbone(**SMALL, pooling="avg").output_shape == (None, 16)
    assert build_backbone(**SMALL, pooling="max").output_shape == (None, 16)
    assert build_backbone(**SMALL, pooling=None).output_shape == (None, 8, 8, 16)  # the map


@pytest.mark.parametrize(
    "kwargs",
    [{"pooling": "mean"}, {"filters": ()}, {"filters": (8, 0)}, {"convs_per_stage": 0}],
)
def test_backbone_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Expected"):
        build_backbone(**{**SMALL, **kwargs})


def test_localizer_has_two_named_outputs_and_shares_one_backbone():
    model = build_localizer(5)
    assert model.name == "localizer"
    assert model.input_shape == (None, 64, 64, 3)
    assert output_shapes(model) == {"class": (None, 5), "box": (None, 4)}
    assert model.get_layer("class").activation is keras.activations.softmax
    assert model.get_layer("box").activation is keras.activations.sigmoid
    backbones = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    assert [b.name for b in backbones] == ["backbone"]
    x = np.random.default_rng(0).uniform(size=(3, 64, 64, 3)).astype(np.float32)
    pred = model.predict(x, verbose=0)
    assert set(pred) == {"class", "box"}
    assert pred["class"].shape == (3, 5) and pred["box"].shape == (3, 4)
    np.testing.assert_allclose(pred["class"].sum(axis=-1), 1, rtol=1e-5)
    assert np.all((pred["box"] >= 0) & (pred["box"] <= 1))


def test_localizer_with_a_given_backbone_takes_its_input_and_flattens_a_feature_map():
    inputs = keras.Input((40, 48, 3))
    feature_map = keras.layers.Conv2D(4, 3, strides=4, name="fm_conv")(inputs)
    backbone = keras.Model(inputs, feature_map, name="fm")
    model = build_localizer(3, input_shape=(64, 64, 3), backbone=backbone, head_units=0)
    assert model.input_shape == (None, 40, 48, 3)
    assert output_shapes(model) == {"class": (None, 3), "box": (None, 4)}
    assert "class_flatten" in [layer.name for layer in model.layers]
    with pytest.raises(ValueError, match="num_classes"):
        build_localizer(1, **SMALL)


def test_separate_networks_cost_one_more_backbone():
    shared = build_localizer(3)
    separate = build_separate_networks(3)
    assert output_shapes(separate) == output_shapes(shared)
    names = sorted(layer.name for layer in separate.layers if isinstance(layer, keras.Model))
    assert names == ["box_backbone", "class_backbone"]
    # Same heads, so the difference is exactly one backbone.
    assert separate.count_params() == shared.count_params() + build_backbone().count_params()


# ---------------------------------------------------------------------------------- losses


def numpy_box_loss(y_true, y_pred, kind, delta=0.1):
    error = np.abs(y_pred.astype(np.float64) - y_true)
    if kind == "l1":
        return error.mean(-1)
    if kind == "huber":
        return np.where(error < delta, 0.5 * error**2 / delta, error - 0.5 * delta).mean(-1)
    return 1 - box_iou(y_true, y_pred, "rel_xywh")


@pytest.mark.parametrize("kind", ["l1", "huber", "iou"])
def test_box_loss_against_numpy(kind):
    rng = np.random.default_rng(1)
    y_true, y_pred = random_boxes(rng, 16), random_boxes(rng, 16)
    y_pred[:4] = y_true[:4] + rng.normal(0, 0.02, (4, 4))  # some errors below delta
    got = keras.ops.convert_to_numpy(box_loss(y_true, y_pred, kind))
    np.testing.assert_allclose(got, numpy_box_loss(y_true, y_pred, kind), atol=1e-6)
    reduced = float(BoxLoss(kind)(y_true, y_pred))  # Keras loss: mean over the batch
    assert reduced == pytest.approx(got.mean(), abs=1e-6)


def test_box_loss_is_zero_for_perfect_boxes_and_giou_pulls_disjoint_boxes():
    y = random_boxes(np.random.default_rng(2), 8)
    for kind in BOX_LOSSES:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(box_loss(y, y, kind)), 0, atol=1e-6)
    true = tf.constant([[0.1, 0.1, 0.2, 0.2]])
    pred = tf.Variable([[0.6, 0.6, 0.2, 0.2]])
    with tf.GradientTape(persistent=True) as tape:
        iou_loss, giou_loss = box_loss(true, pred, "iou"), box_loss(true, pred, "giou")
    assert float(giou_loss[0]) > float(iou_loss[0]) == 1.0
    assert np.abs(tape.gradient(iou_loss, pred).numpy()).sum() == 0
    assert np.abs(tape.gradient(giou_loss, pred).numpy()).sum() > 0


def test_box_loss_arguments_and_config():
    with pytest.raises(ValueError, match="kind"):
        BoxLoss("mse")
    with pytest.raises(ValueError, match="delta"):
        BoxLoss("huber", delta=0)
    with pytest.raises(ValueError, match="format"):
        BoxLoss(box_format="yxyx")
    loss = BoxLoss("giou", delta=0.2, box_format="rel_center_xywh")
    again = BoxLoss.from_config(loss.get_config())
    assert (again.kind, again.delta, again.box_format, again.name) == (
        "giou",
        0.2,
        "rel_center_xywh",
        "giou_box_loss",
    )


# ---------------------------------------------------------------------------------- metrics


def test_metrics_against_numpy_over_several_batches():
    rng = np.random.default_rng(3)
    y_true, y_pred = random_boxes(rng, 40), random_boxes(rng, 40)
    y_pred[:15] = np.clip(y_true[:15] + rng.normal(0, 0.03, (15, 4)), 0.01, None)
    iou = box_iou(y_true, y_pred, "rel_xywh")
    assert 0.1 < np.mean(iou >= 0.5) < 0.9  # both outcomes present
    mean, share = MeanBoxIoU(), BoxIoUAbove(0.5)
    for start in range(0, 40, 16):  # uneven batches: 16, 16, 8
        batch = slice(start, start + 16)
        mean.update_state(y_true[batch], y_pred[batch])
        share.update_state(y_true[batch], y_pred[batch])
    assert float(mean.result()) == pytest.approx(iou.mean(), abs=1e-6)
    assert float(share.result()) == pytest.approx(np.mean(iou >= 0.5), abs=1e-6)
    weights = rng.uniform(0, 1, 40)
    mean.reset_state()
    assert float(mean.result()) == 0.0
    mean.update_state(y_true, y_pred, sample_weight=weights)
    assert float(mean.result()) == pytest.approx(np.average(iou, weights=weights), abs=1e-6)


def test_share_counts_iou_equal_to_the_threshold():
    share = BoxIoUAbove(0.5)
    share.update_state([[0, 0, 0.5, 0.25]], [[0, 0, 0.25, 0.25]])  # IoU exactly 0.5
    assert float(share.result()) == 1.0
    assert BoxIoUAbove(0.75).name == "share_iou_75"
    with pytest.raises(ValueError, match="threshold"):
        BoxIoUAbove(1.5)


def test_metric_config_round_trip():
    for metric in (MeanBoxIoU(box_format="xywh", name="iou"), BoxIoUAbove(0.7)):
        again = type(metric).from_config(metric.get_config())
        assert again.get_config() == metric.get_config()


# ---------------------------------------------------------------- compile, fit, evaluate, save


def test_total_loss_is_cross_entropy_plus_weighted_box_loss():
    x, y = random_data(16)
    for weight in (0.0, 1.0, 5.0):
        keras.utils.set_random_seed(0)
        model = compile_localizer(build_localizer(3, **SMALL), box_weight=weight)
        logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
        total = logs["class_loss"] + weight * logs["box_loss"]
        assert logs["loss"] == pytest.approx(total, rel=1e-5)
    with pytest.raises(ValueError, match="box_weight"):
        compile_localizer(model, box_weight=-1)


def test_box_weight_zero_leaves_the_box_head_untrained():
    x, y = random_data(16)
    keras.utils.set_random_seed(0)
    model = compile_localizer(build_localizer(3, **SMALL), box_weight=0.0)
    before = {n: model.get_layer(n).get_weights()[0].copy() for n in ("box", "class")}
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_array_equal(model.get_layer("box").get_weights()[0], before["box"])
    assert not np.array_equal(model.get_layer("class").get_weights()[0], before["class"])


def test_fit_smoke_and_fit_metrics_equal_numpy_evaluation():
    x, y = random_data(32)
    keras.utils.set_random_seed(0)
    model = compile_localizer(build_localizer(3, **SMALL), box_loss="giou")
    history = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0)
    expected = {"loss", "class_loss", "box_loss", "class_accuracy", "box_mean_iou"}
    expected |= {"box_share_iou_50"} | {f"val_{k}" for k in expected | {"box_share_iou_50"}}
    assert expected <= set(history.history)
    assert all(np.isfinite(v).all() for v in history.history.values())
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    ours = evaluate_localization(model, x, y["class"], y["box"])
    assert ours["accuracy"] == pytest.approx(logs["class_accuracy"], abs=1e-6)
    assert ours["mean_iou"] == pytest.approx(logs["box_mean_iou"], abs=1e-5)
    assert ours["share_iou_50"] == pytest.approx(logs["box_share_iou_50"], abs=1e-6)


def test_keras_file_round_trip_keeps_predictions_and_compiled_metrics(tmp_path):
    x, y = random_data(16)
    keras.utils.set_random_seed(0)
    model = compile_localizer(build_localizer(3, **SMALL), box_loss="huber", delta=0.05)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = tmp_path / "localizer.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    before, after = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    for key in ("class", "box"):
        np.testing.assert_allclose(after[key], before[key], atol=1e-6)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(logs)
    assert isinstance(loaded.loss["box"], BoxLoss) and loaded.loss["box"].delta == 0.05


def test_saved_localizer_loads_in_a_new_process_after_importing_the_module(tmp_path):
    # Keras imports only its own packages while loading: the module that registers BoxLoss and
    # the metrics must be imported first (``import dlcourse`` alone imports no subpackage;
    # ``dlcourse.load_model`` imports them all, tests/test_layers_saving.py).
    path = tmp_path / "localizer.keras"
    compile_localizer(build_localizer(3, **SMALL)).save(path)
    code = (
        "import dlcourse.detection.localization, keras, numpy as np; "
        f"m = keras.saving.load_model({str(path)!r}); "
        "print(sorted(m.predict(np.zeros((1, 32, 32, 3)), verbose=0)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("['box', 'class']")


def test_evaluate_localization_inputs_and_errors():
    labels, boxes = np.array([0, 1, 2]), random_boxes(np.random.default_rng(4), 3)
    probs = np.eye(3)[[0, 1, 0]]
    pred_boxes = boxes.copy()
    pred_boxes[2] = [0.9, 0.9, 0.05, 0.05]
    expected_iou = box_iou(boxes, pred_boxes, "rel_xywh")
    for predictions in ({"class": probs, "box": pred_boxes}, (probs.argmax(-1), pred_boxes)):
        result = evaluate_localization(predictions, labels=labels, boxes=boxes)
        assert result["accuracy"] == pytest.approx(2 / 3)
        assert result["mean_iou"] == pytest.approx(expected_iou.mean())
        assert result["share_iou_50"] == pytest.approx(np.mean(expected_iou >= 0.5))
    high = evaluate_localization((probs, pred_boxes), labels=labels, boxes=boxes, threshold=0.9)
    assert set(high) == {"accuracy", "mean_iou", "share_iou_90"}
    bad = pred_boxes.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"predicted boxes\[1\] has a NaN"):
        evaluate_localization((probs, bad), labels=labels, boxes=boxes)
    with pytest.raises(ValueError, match="as many"):
        evaluate_localization((probs[:2], pred_boxes[:2]), labels=labels, boxes=boxes)
    with pytest.raises(TypeError, match="Expected a model"):
        evaluate_localization(probs, labels=labels, boxes=boxes)
    with pytest.raises(ValueError, match="needs the images"):
        evaluate_localization(build_localizer(3, **SMALL), labels=labels, boxes=boxes)
