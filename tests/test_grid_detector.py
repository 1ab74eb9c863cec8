"""dlcourse.detection.grid_detector: the model's shapes, the loss against NumPy, saving, a training smoke."""

import keras
import numpy as np
import pytest

from dlcourse import data
from dlcourse.detection.grid_detector import (
    GridDetectorLoss,
    build_grid_detector,
    pack_grid_targets,
    split_grid_output,
)
from dlcourse.detection.grid_targets import encode_grid_targets


def test_shapes_unknown_size_and_bad_arguments():
    model = build_grid_detector(4, (32, 64, 3), filters=(8, 16))
    assert model.output_shape == (None, 8, 16, 1 + 4 + 4)
    assert build_grid_detector(3, (None, None, 3)).output_shape == (None, None, None, 8)
    out = model.predict(np.zeros((2, 32, 64, 3), "float32"), verbose=0)
    obj, probs, box = split_grid_output(out, 4)
    assert obj.shape == (2, 8, 16) and probs.shape == (2, 8, 16, 4) and box.shape == (2, 8, 16, 4)
    np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-5)
    assert 0 <= obj.min() and obj.max() <= 1 and 0 <= box.min() and box.max() <= 1
    with pytest.raises(ValueError, match="divisible by 2 \\*\\* len\\(filters\\) = 8"):
        build_grid_detector(3, (44, 48, 3))
    with pytest.raises(ValueError, match="num_classes"):
        build_grid_detector(0)
    with pytest.raises(ValueError, match=r"\(N, G, G, 8\) for 3 classes"):
        split_grid_output(np.zeros((1, 2, 2, 7)), 3)
    with pytest.raises(ValueError, match="encode_grid_targets"):
        pack_grid_targets({"objectness": 1})


def _numpy_loss(y, p, c, box_weight, delta, eps=1e-7):
    present = y[..., 0]
    obj = np.clip(p[..., 0], eps, 1 - eps)
    bce = -(present * np.log(obj) + (1 - present) * np.log(1 - obj)).mean()
    labels = y[..., 1].astype(int)
    probs = np.clip(p[..., 1 : 1 + c], eps, 1)
    ce = -np.log(np.take_along_axis(probs, labels[..., None], -1)[..., 0])
    err = np.abs(p[..., 1 + c :] - y[..., 2:])
    huber = np.where(err < delta, 0.5 * err**2 / delta, err - 0.5 * delta).mean(-1)
    return bce + (present * (ce + box_weight * huber)).sum() / max(present.sum(), 1)


def test_loss_equals_numpy_and_ignores_empty_cells():
    rng = np.random.default_rng(0)
    c = 3
    t = encode_grid_targets(
        [[[2, 2, 10, 10], [20, 20, 8, 8]], [[5, 5, 4, 4], [0, 0, 0, 0]]], [[0, 2], [1, -1]], 32, 4
    )
    y = pack_grid_targets(t)
    assert y.shape == (2, 4, 4, 6) and y[..., 0].sum() == 3
    logits = rng.normal(size=(2, 4, 4, c))
    p = np.concatenate(
        [
            rng.uniform(0.05, 0.95, (2, 4, 4, 1)),
            np.exp(logits) / np.exp(logits).sum(-1, keepdims=True),
            rng.uniform(0, 1, (2, 4, 4, 4)),
        ],
        axis=-1,
    ).astype("float32")
    loss = GridDetectorLoss(c, box_weight=5.0, delta=0.1)
    value = float(keras.ops.convert_to_numpy(loss(y, p)))
    assert value == pytest.approx(_numpy_loss(y, p, c, 5.0, 0.1), rel=1e-5)
    # class and box predictions of cells without an object do not count
    q = p.copy()
    empty = y[..., 0] == 0
    q[empty, 1:] = rng.uniform(0, 1, (int(empty.sum()), c + 4))
    assert float(keras.ops.convert_to_numpy(loss(y, q))) == pytest.approx(value, rel=1e-6)
    with pytest.raises(ValueError, match="box_weight >= 0"):
        GridDetectorLoss(3, box_weight=-1)


def test_keras_round_trip_and_a_short_fit_lowers_the_loss(tmp_path):
    scenes = data.make_scenes(64, image_size=32, objects=(1, 2), seed=1)
    x, y = data.task_arrays(scenes, "detection")
    targets = pack_grid_targets(
        encode_grid_targets(y["boxes"], y["classes"], 32, 4, box_format="rel_xywh")
    )
    keras.utils.set_random_seed(0)
    model = build_grid_detector(3, (32, 32, 3), filters=(8, 16, 16), head_filters=16)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=GridDetectorLoss(3, box_weight=2.0))
    history = model.fit(x, targets, batch_size=16, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "detector.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0), atol=1e-6
    )
    assert loaded.loss.get_config()["box_weight"] == 2.0
