"""dlcourse.training.experiments: one recipe for every method, measured the same way."""

import numpy as np
import pytest

from dlcourse.data import make_scenes
from dlcourse.training.experiments import (
    COLUMNS,
    METHODS,
    build_segmenter,
    compare_upsampling,
    format_table,
    plot_comparison,
    predict_masks,
    train_segmenter,
)


@pytest.fixture(scope="module")
def tiny():
    train = make_scenes(12, image_size=16, objects=1, seed=3)
    val = make_scenes(4, image_size=16, objects=1, seed=4)
    return train, val


@pytest.mark.parametrize("method", METHODS)
def test_build_segmenter_every_method(method):
    model = build_segmenter(method, 4, filters=(4, 8))
    out = model(np.zeros((2, 8, 8, 3), "float32"))
    assert tuple(out.shape) == (2, 8, 8, 4)
    np.testing.assert_allclose(np.asarray(out).sum(-1), 1.0, rtol=1e-5)


def test_build_segmenter_naive_has_no_resolution_change():
    model = build_segmenter("naive_fcn", 4)
    assert all(layer.output.shape[1] is None for layer in model.layers)
    assert not any("pool" in layer.name for layer in model.layers)


def test_build_segmenter_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        build_segmenter("bilinear", 4)


def test_train_segmenter_measures(tiny):
    train, val = tiny
    model = build_segmenter("nearest", 4, filters=(4, 8))
    row = train_segmenter(model, train, val, epochs=2, batch_size=4)
    assert {
        "mean_iou",
        "boundary_f1",
        "pixel_accuracy",
        "params",
        "step_seconds",
        "seconds",
        "history",
        "prediction",
    } <= set(row)
    assert 0.0 <= row["mean_iou"] <= 1.0 and 0.0 <= row["boundary_f1"] <= 1.0
    assert row["params"] == model.count_params()
    assert 0 < row["step_seconds"] < row["seconds"]
    assert len(row["history"]["loss"]) == len(row["history"]["val_mean_iou"]) == 2
    # training time per epoch, validation left out: within the whole fit, positive
    epoch_seconds, epoch_cpu = row["history"]["epoch_seconds"], row["history"]["epoch_cpu_seconds"]
    assert len(epoch_seconds) == len(epoch_cpu) == 2 and min(epoch_seconds) > 0
    assert sum(epoch_seconds) < row["seconds"] and min(epoch_cpu) > 0
    assert row["prediction"].shape == val.masks.shape and row["prediction"].dtype == np.uint8


def test_train_segmenter_accepts_arrays_and_checks_them(tiny):
    train, val = tiny
    model = build_segmenter("nearest", 4, filters=(4, 8))
    row = train_segmenter(model, (train.images, train.masks), (val.images, val.masks), epochs=1)
    assert row["prediction"].shape == (4, 16, 16)
    with pytest.raises(ValueError, match="images"):
        train_segmenter(model, (train.images, train.masks[:, :8]), val, epochs=1)
    with pytest.raises(ValueError, match="Scenes"):
        train_segmenter(model, train.images, val, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        train_segmenter(model, train, val, epochs=0)


def test_predict_masks_equals_the_argmax_of_predict(tiny):
    _, val = tiny
    import keras

    model = build_segmenter("max_unpool", 4, filters=(4, 8))
    rng = np.random.default_rng(0)
    for layer in model.layers:  # moving statistics away from (0, 1): inference mode matters
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.2, 2.0, size=layer.moving_variance.shape))
    expected = np.argmax(model.predict(val.images, verbose=0), axis=-1)
    for batch_size in (1, 3, 256):  # 4 scenes: batches of one, a partial last batch, one batch
        got = predict_masks(model, val.images, batch_size=batch_size)
        assert got.dtype == np.uint8 and got.shape == val.masks.shape
        np.testing.assert_array_equal(got, expected)
    assert predict_masks(model, val.images[:0]).shape == (0, 16, 16)
    with pytest.raises(ValueError, match="batch_size"):
        predict_masks(model, val.images, batch_size=0)


def test_train_segmenter_validates_without_keras_evaluation(tiny, monkeypatch):
    """Validation calls the model directly: no evaluate/predict per epoch, and the logged
    validation mean IoU is what keras.metrics.MeanIoU says of the same predictions."""
    from dlcourse.metrics import MeanIoU

    train, val = tiny
    model = build_segmenter("nearest", 4, filters=(4, 8))

    def refuse(*args, **kwargs):
        raise AssertionError("train_segmenter should not need Keras's evaluation loops")

    for name in ("predict", "evaluate", "predict_on_batch", "test_on_batch"):
        monkeypatch.setattr(model, name, refuse)
    row = train_segmenter(model, train, val, epochs=2, batch_size=4)
    monkeypatch.undo()
    assert model.metrics_names == ["loss"]  # no training-batch metric to pay for
    probabilities = model.predict(val.images, verbose=0)
    np.testing.assert_array_equal(row["prediction"], np.argmax(probabilities, axis=-1))
    keras_miou = MeanIoU(4)
    keras_miou.update_state(val.masks, probabilities)
    assert len(row["history"]["val_mean_iou"]) == 2
    assert row["history"]["val_mean_iou"][-1] == pytest.approx(float(keras_miou.result()), abs=1e-5)
    assert row["mean_iou"] == row["history"]["val_mean_iou"][-1]


def test_compare_upsampling_is_reproducible_and_ordered(tiny):
    train, val = tiny
    kwargs = {"epochs": 1, "batch_size": 4, "filters": (4, 8), "seed": 5}
    first = compare_upsampling(["transpose", "naive_fcn"], train, val, **kwargs)
    again = compare_upsampling(["transpose"], train, val, **kwargs)
    assert [r["method"] for r in first] == ["transpose", "naive_fcn"]
    assert first[0]["history"]["loss"] == again[0]["history"]["loss"]
    np.testing.assert_array_equal(first[0]["prediction"], again[0]["prediction"])
    assert "model" not in first[0] and not first[0]["cached"]


def test_compare_upsampling_rejects_unknown_methods(tiny):
    with pytest.raises(ValueError, match="methods"):
        compare_upsampling(["nearest", "magic"], *tiny, epochs=1)
    with pytest.raises(ValueError, match="methods"):
        compare_upsampling([], *tiny, epochs=1)


def test_format_table_and_plot():
    history = {"loss": [1.0, 0.5], "val_mean_iou": [0.3, 0.5]}
    rows = [
        {
            "method": "nearest",
            "mean_iou": 0.5,
            "boundary_f1": 0.25,
            "params": 1234,
            "step_seconds": 0.002,
            "history": history,
        },
        {
            "method": "naive_fcn",
            "mean_iou": 0.75,
            "boundary_f1": 0.5,
            "params": 99,
            "step_seconds": 0.01,
            "history": history,
        },
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == list(COLUMNS)
    assert lines[1].split() == ["nearest", "0.50", "0.25", "1,234", "2.0", "ms"]
    assert len({len(line) for line in lines}) == 1  # aligned columns
    fig = plot_comparison(rows, title="t")
    assert len(fig.axes) == 3
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_compare_upsampling_cache(tiny, tmp_path):
    train, val = tiny
    kwargs = {"epochs": 1, "batch_size": 4, "filters": (4, 8), "cache_dir": tmp_path}
    (fresh,) = compare_upsampling(["bed_of_nails"], train, val, **kwargs)
    (again,) = compare_upsampling(["bed_of_nails"], train, val, **kwargs)
    assert not fresh["cached"] and again["cached"]
    for key in ("mean_iou", "boundary_f1", "params", "step_seconds", "history"):
        assert again[key] == fresh[key]
    np.testing.assert_array_equal(again["prediction"], fresh["prediction"])
    # Anything the row depends on changes the key: here the recipe and the data.
    (other,) = compare_upsampling(["bed_of_nails"], train, val, **{**kwargs, "seed": 1})
    assert not other["cached"]
    shifted = (train.images[::-1], train.masks[::-1])
    (moved,) = compare_upsampling(["bed_of_nails"], shifted, val, **kwargs)
    assert not moved["cached"]
    # keep_models needs a model, so it trains even when a row is cached.
    (kept,) = compare_upsampling(["bed_of_nails"], train, val, keep_models=True, **kwargs)
    assert not kept["cached"] and kept["model"].count_params() == kept["params"]
    # A damaged file is a miss, not an error.
    for path in tmp_path.glob("*.json"):
        path.write_text("{")
    (redone,) = compare_upsampling(["bed_of_nails"], train, val, **kwargs)
    assert not redone["cached"]


def test_default_cache_dir(monkeypatch, tmp_path):
    from dlcourse.training.experiments import default_cache_dir

    monkeypatch.setenv("DLCOURSE_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("DLCOURSE_CACHE")
    assert default_cache_dir().parts[-2:] == (".cache", "dlcourse")


def test_comparison_budget_and_data():
    from dlcourse.training.experiments import COMPARISON_BUDGETS, comparison_budget, comparison_data

    fast = comparison_budget(True)
    assert fast == COMPARISON_BUDGETS["fast"] and fast is not COMPARISON_BUDGETS["fast"]
    assert comparison_budget(False)["image_size"] > fast["image_size"]
    budget = {**fast, "image_size": 16, "size_range": (4, 8), "n_train": 4, "n_val": 3}
    train, val = comparison_data(budget)
    again, _ = comparison_data(budget)
    assert train.images.shape == (4, 16, 16, 3) and val.images.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(train.images, again.images)
    assert not np.array_equal(train.images[:3], val.images)


@pytest.mark.parametrize("fast", [True, False])
def test_comparison_objects_between_the_receptive_fields(fast):
    """Lesson 05 asserts this of its budget, FAST and full: every object is larger than the naive
    network's receptive field and smaller than every encoder-decoder's."""
    from dlcourse.models import receptive_field
    from dlcourse.training.experiments import build_segmenter, comparison_budget

    budget = comparison_budget(fast)
    low, high = budget["size_range"]
    fields = {
        m: receptive_field(build_segmenter(m, 4, filters=budget["filters"]))
        for m in ("naive_fcn", "nearest", "max_unpool", "strided_conv")
    }
    assert fields.pop("naive_fcn") < low, fields
    assert min(fields.values()) > high and high < budget["image_size"], (fields, high)


# the layers with state of their own (switches, a resize) and the plain convolutions; lessons 05–06
# store every method's model through compare_upsampling under nbval
@pytest.mark.parametrize("method", ["max_unpool", "resize_conv", "naive_fcn"])
def test_cached_training_continues_where_the_row_stopped(tiny, tmp_path, method):
    import keras

    from dlcourse.training.experiments import cached_training

    train, val = tiny
    kwargs = {"epochs": 2, "batch_size": 4, "filters": (4, 8), "cache_dir": tmp_path}
    assert cached_training(method, train, val, **kwargs) is None  # nothing stored yet
    (row,) = compare_upsampling([method], train, val, keep_models=True, **kwargs)
    found = cached_training(method, train, val, **kwargs)
    assert found is not None
    cached_row, model = found
    assert cached_row["cached"] and cached_row["history"] == row["history"]
    # the same weights and optimizer state as the model the row was measured on
    trained = row["model"]
    for a, b in zip(model.weights, trained.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(model.optimizer.iterations) == int(trained.optimizer.iterations) == 2 * 3
    pred = np.argmax(model.predict(val.images, verbose=0), axis=-1)
    np.testing.assert_array_equal(pred, row["prediction"])
    keras.utils.set_random_seed(0)
    more = model.fit(train.images, train.masks, batch_size=4, epochs=3, initial_epoch=2, verbose=0)
    assert more.epoch == [2] and int(model.optimizer.iterations) == 3 * 3
    # another recipe is another key; a damaged model file is a miss, not an error
    assert cached_training(method, train, val, **{**kwargs, "epochs": 3}) is None
    for path in tmp_path.glob("*.keras"):
        path.write_bytes(b"not a zip")
    assert cached_training(method, train, val, **kwargs) is None


def test_cache_summary_and_clear_touch_only_the_caches_files(tmp_path, monkeypatch, capsys):
    from dlcourse.course import cli
    from dlcourse.training.experiments import cache_summary, clear_cache, comparison_cache_dir

    folder = comparison_cache_dir(tmp_path)
    folder.mkdir(parents=True)
    key = "0123456789abcdef0123"
    ours = [f"nearest-{key}.json", f"nearest-{key}.npy", f"nearest-{key}.keras",
            f"max_unpool-{key}.json", f"max_unpool-{key}.npy.4242.tmp",
            f"transpose-{key}.4242.tmp.keras"]  # fmt: skip
    theirs = ["notes.json", f"magic-{key}.json", f"nearest-{key[:-1]}.json", "nearest.keras"]
    for name in ours + theirs:
        (folder / name).write_bytes(b"x" * 10)
    summary = cache_summary(tmp_path)
    assert summary == {"folder": str(folder), "rows": 2, "models": 1, "bytes": 60}
    assert clear_cache(tmp_path) == 60
    assert sorted(p.name for p in folder.iterdir()) == sorted(theirs)  # nothing else deleted
    assert cache_summary(tmp_path)["rows"] == 0 and clear_cache(tmp_path) == 0
    # the command line: DLCOURSE_CACHE chooses the folder
    (folder / f"nearest-{key}.json").write_text("{}")
    monkeypatch.setenv("DLCOURSE_CACHE", str(tmp_path))
    assert cli.main(["cache"]) == 0
    assert "1 trained rows, 0 models" in capsys.readouterr().out
    assert cli.main(["cache", "--clear"]) == 0
    assert "cleared" in capsys.readouterr().out and cache_summary(tmp_path)["rows"] == 0


def test_new_methods_are_the_variants_they_name():
    k4 = build_segmenter("transpose_k4", 4, filters=(4, 8))
    assert k4.get_layer("up1_transpose").get_config()["kernel_size"] == (4, 4)
    k3 = build_segmenter("transpose", 4, filters=(4, 8))
    assert k3.get_layer("up1_transpose").get_config()["kernel_size"] == (3, 3)
    strided = build_segmenter("strided_conv", 4, filters=(4, 8))
    assert strided.get_layer("down1_conv").get_config()["strides"] == (2, 2)
    assert not any("pool" in layer.name for layer in strided.layers)
    assert any(layer.name == "up1_nearest" for layer in strided.layers)


def test_seeds_share_a_compiled_model_and_match_separate_runs(tiny, tmp_path):
    train, val = tiny
    kwargs = {"epochs": 2, "batch_size": 4, "filters": (4, 8), "show_progress": False}
    both = compare_upsampling(["nearest"], train, val, seeds=[1, 2], **kwargs)
    assert [(r["method"], r["seed"]) for r in both] == [("nearest", 1), ("nearest", 2)]
    (alone,) = compare_upsampling(["nearest"], train, val, seed=2, **kwargs)
    # the second seed ran on the first one's compiled model: same numbers as a fresh model
    assert both[1]["history"]["loss"] == alone["history"]["loss"]
    np.testing.assert_array_equal(both[1]["prediction"], alone["prediction"])
    assert both[0]["history"]["loss"] != both[1]["history"]["loss"]
    # each seed is its own cache row
    cached = compare_upsampling(["nearest"], train, val, seeds=[1, 2], cache_dir=tmp_path, **kwargs)
    again = compare_upsampling(["nearest"], train, val, seeds=[2], cache_dir=tmp_path, **kwargs)
    assert again[0]["cached"] and again[0]["seed"] == 2
    assert again[0]["history"] == cached[1]["history"]
    assert cached[1]["history"]["loss"] == both[1]["history"]["loss"]
    with pytest.raises(ValueError, match="seed"):
        compare_upsampling(["nearest"], train, val, seeds=[], **kwargs)


def test_seed_summary_beats_and_tiers():
    from dlcourse.training.experiments import beats, format_summary, ranking_tiers, seed_summary

    rows = [
        {"method": m, "seed": s, "mean_iou": v}
        for m, values in {"ed": [0.7, 0.72, 0.74], "naive": [0.3, 0.4, 0.35]}.items()
        for s, v in enumerate(values)
    ]
    summary = seed_summary(rows)
    assert list(summary) == ["ed", "naive"]
    assert summary["ed"]["seeds"] == [0, 1, 2] and summary["ed"]["n"] == 3
    assert abs(summary["naive"]["spread"] - 0.1) < 1e-9
    assert beats(summary, "ed", "naive") and not beats(summary, "naive", "ed")
    assert ranking_tiers(summary) == [["ed"], ["naive"]]
    # overlapping seeds: one tier, whatever the means say
    close = seed_summary(rows + [{"method": "naive", "seed": 3, "mean_iou": 0.71}])
    assert ranking_tiers(close) == [["ed", "naive"]]
    assert "± " in format_summary(summary, {"rf": {"ed": 32, "naive": 13}}).splitlines()[1]
    with pytest.raises(ValueError, match="2 seeds"):
        beats(seed_summary(rows[:1] + rows[3:]), "ed", "naive")


def test_comparison_data_takes_object_sizes_from_the_budget():
    from dlcourse.training.experiments import comparison_budget, comparison_data

    budget = {**comparison_budget(True), "n_train": 6, "n_val": 2}
    train, _ = comparison_data(budget)
    smallest = min(int(b[2:].max()) for boxes in train.boxes for b in boxes)
    assert smallest >= budget["size_range"][0] // 2  # occlusion may hide part of an object
    assert max(len(boxes) for boxes in train.boxes) <= budget["objects"][1]
