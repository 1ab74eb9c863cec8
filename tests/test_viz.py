"""Tests of dlcourse.viz: every plot returns a Figure with the expected axes, text and legend."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from dlcourse import viz  # noqa: E402
from dlcourse.data import CLASS_NAMES, make_scenes  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(6, image_size=32, objects=(1, 3), seed=1)


@pytest.fixture(scope="module")
def single():
    return make_scenes(5, image_size=32, objects=1, seed=2)


def legend_texts(fig):
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_show_images_titles_and_scores(single):
    fig = viz.show_images(single.images, titles=[f"#{i}" for i in range(5)], ncols=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 5
    assert fig.axes[4].get_title() == "#4"
    scores = np.zeros((5, 3))
    scores[:, 1] = 0.9
    scores[:, 0] = 0.1
    fig = viz.show_images(single.images, scores=scores, class_names=single.class_names, top_k=2)
    assert fig.axes[0].get_title() == "square 0.90\ncircle 0.10"
    # One image alone, as a tensor.
    import tensorflow as tf

    assert len(viz.show_images(tf.constant(single.images[0])).axes) == 1


def test_show_images_errors(single):
    with pytest.raises(ValueError, match="Expected 5 titles"):
        viz.show_images(single.images, titles=["a"])
    with pytest.raises(ValueError, match=r"scores of shape \(5, C\)"):
        viz.show_images(single.images, scores=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="images of shape"):
        viz.show_images(np.zeros((2, 8, 8, 5)))


def test_show_masks_overlay_and_legend(scenes):
    fig = viz.show_masks(scenes.images, scenes.masks, class_names=scenes.class_names)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert legend_texts(fig) == list(CLASS_NAMES[:3])
    probabilities = np.eye(5, dtype=np.float32)[scenes.masks[:2]]  # (2, H, W, 5), one-hot
    fig = viz.show_masks(
        scenes.images[:2],
        {"true": scenes.masks[:2, :, :, None], "predicted": probabilities},
        class_names=("background", *CLASS_NAMES[:4]),
    )
    assert len(fig.axes) == 2 * 3 and fig.axes[2].get_title() == "predicted"
    np.testing.assert_array_equal(
        fig.axes[1].images[0].get_array(), fig.axes[2].images[0].get_array()
    )
    assert legend_texts(fig) == list(CLASS_NAMES[:4])


def test_show_masks_errors(scenes):
    with pytest.raises(ValueError, match="to match the images"):
        viz.show_masks(scenes.images, scenes.masks[:3])
    with pytest.raises(ValueError, match="alpha"):
        viz.show_masks(scenes.images, scenes.masks, alpha=2)


def test_show_boxes_predicted_and_true(scenes, single):
    fig = viz.show_boxes(
        single.images,
        single.box,
        labels=single.label,
        scores=np.full(5, 0.75),
        true_boxes=single.box,
        class_names=single.class_names,
    )
    assert len(fig.axes) == 5
    rectangles = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    assert len(rectangles) == 2
    assert fig.axes[0].texts[0].get_text() == f"{single.class_names[single.label[0]]} 0.75"
    assert legend_texts(fig) == ["true", "predicted (class colour)"]
    # Several boxes per image, normalised, padded with class -1 (detection targets).
    from dlcourse.data import task_arrays

    _, y = task_arrays(scenes, "detection")
    fig = viz.show_boxes(scenes.images, y["boxes"], labels=y["classes"], box_format="rel_xywh")
    drawn = [len(ax.patches) for ax in fig.axes]
    assert drawn == list(scenes.num_objects)
    x, _, w, _ = fig.axes[0].patches[0].get_bbox().bounds
    assert (x + 0.5, w) == (scenes.boxes[0][0][0], scenes.boxes[0][0][2])


def test_show_boxes_errors(single):
    with pytest.raises(ValueError, match="Expected 5 box sets"):
        viz.show_boxes(single.images, single.box[:2])
    with pytest.raises(ValueError, match="box_format"):
        viz.show_boxes(single.images, single.box, box_format="xyxy")
    with pytest.raises(ValueError, match="labels"):
        viz.show_boxes(single.images, single.box, labels=[0, 1])


def test_plot_history():
    logs = {"loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6], "accuracy": [0.4, 0.7, 0.9]}
    fig = viz.plot_history(logs)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1

    class History:
        history = logs

    assert len(viz.plot_history(History(), metrics="accuracy").axes) == 1
    with pytest.raises(ValueError, match="Expected metrics among"):
        viz.plot_history(logs, metrics=["iou"])
    with pytest.raises(ValueError, match="History"):
        viz.plot_history({})


def test_show_scene_tasks(scenes):
    scene = scenes[int(np.argmax(scenes.num_objects))]
    fig = viz.show_scene_tasks(scene)
    assert len(fig.axes) == 4
    titles = [ax.get_title().split("\n")[0] for ax in fig.axes]
    assert titles == [
        "classification",
        "semantic segmentation",
        "localization / detection",
        "instance segmentation",
    ]
    assert len(fig.axes[2].patches) == scene.num_objects
    assert legend_texts(fig) == list(scene.class_names)


def test_functions_do_not_show(monkeypatch, single):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() was called"))
    viz.show_images(single.images)
    viz.show_masks(single.images, single.masks)
    viz.show_boxes(single.images, single.box)
    viz.plot_history({"loss": [1.0]})
    viz.show_scene_tasks(single[0])


def test_model_stages_and_draw_model():
    from dlcourse.models import build_encoder_decoder, build_naive_fcn

    model = build_encoder_decoder(4, upsampling="max_unpool")
    stages = viz.model_stages(model, (32, 32))
    names = [s["name"] for s in stages]
    assert names[:3] == ["image", "enc1", "down1"] and names[-1] == "classifier"
    shapes = {s["name"]: s["shape"] for s in stages}
    assert shapes["bottleneck"] == (8, 8, 64) and shapes["classifier"] == (32, 32, 4)
    # the max unpooling reads the switches of its own pooling: an edge that jumps over stages
    assert "down2" in next(s for s in stages if s["name"] == "up2")["inputs"]
    assert sum(s["params"] for s in stages) == model.count_params()
    fig = viz.draw_model(model, (32, 32))
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == len(stages)
    heights = {s["name"]: b.get_height() for s, b in zip(stages, boxes, strict=True)}
    assert heights["bottleneck"] == heights["enc1"] / 4  # height follows the resolution
    assert ax.get_title() == model.name
    naive = viz.model_stages(build_naive_fcn(3, 8, 4), (16, 16))
    assert {s["shape"][:2] for s in naive} == {(16, 16)}
    with pytest.raises(ValueError, match="functional"):
        viz.model_stages(keras_sequential_without_layers())


def keras_sequential_without_layers():
    import keras

    return keras.Sequential()
