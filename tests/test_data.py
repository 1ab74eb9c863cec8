"""Tests of dlcourse.data: scene generation, annotation invariants, masks, and task pipelines."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from dlcourse.data import (
    CLASS_NAMES,
    COLORMAP,
    MIN_VISIBLE_PIXELS,
    TASKS,
    Scenes,
    colorize_mask,
    make_dataset,
    make_scenes,
    resize_mask,
    segmentation_names,
    shape_template,
    task_arrays,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digest(scenes: Scenes) -> str:
    h = hashlib.sha256()
    for array in (scenes.images, scenes.masks, scenes.instance_ids, *scenes.labels, *scenes.boxes):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def tight_box(pixels):
    ys, xs = np.nonzero(pixels)
    return np.array([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])


def assert_consistent(scenes: Scenes, objects, num_classes):
    """Every invariant of the annotations, checked independently of Scenes.check()."""
    n, height, width = scenes.masks.shape
    assert scenes.images.shape == (n, height, width, 3) and scenes.images.dtype == np.float32
    assert scenes.images.min() >= 0 and scenes.images.max() <= 1
    assert scenes.masks.dtype == np.uint8 and scenes.instance_ids.dtype == np.uint8
    lo, hi = (objects, objects) if isinstance(objects, int) else objects
    for i in range(n):
        labels, boxes, inst = scenes.labels[i], scenes.boxes[i], scenes.instance_masks[i]
        k = len(labels)
        assert labels.dtype == np.int64 and labels.shape == (k,)
        assert boxes.dtype == np.float32 and boxes.shape == (k, 4)
        assert inst.dtype == bool and inst.shape == (k, height, width)
        assert k <= hi
        assert np.all((labels >= 0) & (labels < num_classes))
        assert np.all(inst.sum(axis=(1, 2)) >= MIN_VISIBLE_PIXELS), "empty or tiny instance"
        assert np.all(inst.sum(axis=0) <= 1), "instance masks overlap"
        merged = np.zeros((height, width), dtype=np.uint8)
        for j in range(k):
            merged[inst[j]] = labels[j] + 1
            np.testing.assert_array_equal(boxes[j], tight_box(inst[j]))
        np.testing.assert_array_equal(merged, scenes.masks[i])
    scenes.check()


# --- generation -------------------------------------------------------------------------------


def test_shapes_dtypes_and_defaults():
    scenes = make_scenes(5)
    assert scenes.images.shape == (5, 64, 64, 3)
    assert scenes.num_classes == 3 and scenes.class_names == CLASS_NAMES[:3]
    assert scenes.max_objects == 3
    assert len(scenes) == 5 and scenes.image_size == (64, 64)
    assert len(CLASS_NAMES) >= 6 and len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    assert "Scenes(n=5" in repr(scenes)


def test_determinism_and_prefix_stability():
    a = make_scenes(12, seed=3)
    assert digest(a) == digest(make_scenes(12, seed=3))
    assert digest(a) != digest(make_scenes(12, seed=4))
    # Scene i depends only on (seed, i): a shorter run is a prefix of a longer one.
    assert digest(make_scenes(5, seed=3)) == digest(a[:5])
    assert not np.array_equal(a.images[0], a.images[1])


def test_same_bytes_with_one_thread_and_without_tensorflow_or_matplotlib():
    # A fresh process with one thread everywhere; the data package imports neither Keras nor
    # matplotlib (and `import dlcourse` imports no subpackage).
    code = (
        "import sys\n"
        "from dlcourse.data import make_scenes\n"
        "import hashlib, numpy as np\n"
        "h = hashlib.sha256()\n"
        "for size, n in (((48, 40), 40), (160, 8)):\n"
        "    s = make_scenes(n, image_size=size, seed=9)\n"
        "    for a in (s.images, s.masks, s.instance_ids, *s.labels, *s.boxes):\n"
        "        h.update(a.tobytes())\n"
        "bad = [m for m in ('matplotlib', 'tensorflow', 'keras') if m in sys.modules]\n"
        "print(bad, h.hexdigest())\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # Here: the default thread count (160×160 backgrounds are large enough for BLAS to thread).
    parts = [make_scenes(40, image_size=(48, 40), seed=9), make_scenes(8, image_size=160, seed=9)]
    h = hashlib.sha256()
    for s in parts:
        for array in (s.images, s.masks, s.instance_ids, *s.labels, *s.boxes):
            h.update(array.tobytes())
    assert out.stdout.split() == ["[]", h.hexdigest()]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"objects": 1, "num_classes": 8},
        {"image_size": (48, 80), "objects": (0, 5), "max_occlusion": 1.0},
        {"image_size": 32, "objects": (2, 4), "max_occlusion": 0.0, "size_range": (4, 10)},
        {"image_size": 24, "objects": (3, 8), "size_range": (4, 12), "max_occlusion": 0.9},
        {"objects": (1, 2), "num_classes": 1, "texture": False, "noise": 0.0},
        {"image_size": 128, "objects": (1, 4), "noise": 0.3},
    ],
)
def test_annotations_consistent(kwargs):
    scenes = make_scenes(20 if kwargs.get("image_size") == 128 else 150, seed=11, **kwargs)
    assert_consistent(scenes, kwargs.get("objects", (1, 3)), kwargs.get("num_classes", 3))


def test_counts_within_range_with_defaults():
    counts = make_scenes(300, seed=1).num_objects
    assert counts.min() == 1 and counts.max() == 3
    assert set(np.unique(counts)) == {1, 2, 3}


def _whole_shapes(scenes: Scenes, size_range) -> np.ndarray:
    """For every instance: is it a whole shape (its class's template of some size in the range,
    cropped to its box), i.e. not covered anywhere by a later object?"""
    whole = []
    for labels, inst in zip(scenes.labels, scenes.instance_masks, strict=True):
        for label, pixels in zip(labels, inst, strict=True):
            x, y, w, h = tight_box(pixels)
            crop = pixels[y : y + h, x : x + w]
            templates = [
                shape_template(int(label), s) for s in range(size_range[0], size_range[1] + 1)
            ]
            whole.append(
                any(np.array_equal(crop, t[np.ix_(t.any(1), t.any(0))]) for t in templates)
            )
    return np.array(whole)


def test_no_overlap_when_max_occlusion_is_zero():
    kwargs = {"image_size": 48, "objects": (3, 4), "size_range": (12, 20), "seed": 2}
    # With no occlusion every object keeps every pixel of its shape ...
    assert _whole_shapes(make_scenes(60, max_occlusion=0.0, **kwargs), (12, 20)).all()
    # ... which the same scenes with occlusion allowed do not: the check can tell them apart.
    occluded = _whole_shapes(make_scenes(60, max_occlusion=0.5, **kwargs), (12, 20))
    assert (~occluded).sum() >= 10


def test_full_occlusion_drops_hidden_objects():
    scenes = make_scenes(300, image_size=32, objects=(6, 6), max_occlusion=1.0, seed=5)
    assert scenes.num_objects.min() < 6  # some objects were hidden completely ...
    assert_consistent(scenes, (0, 6), 3)  # ... and left no trace in the annotation


def test_classes_balanced_and_colour_not_class_specific():
    scenes = make_scenes(900, objects=1, num_classes=3, noise=0.0, seed=7)
    labels = scenes.label
    assert np.all(np.bincount(labels, minlength=3) > 240)
    colours = np.stack(
        [scenes.images[i][scenes.instance_masks[i][0]].mean(axis=0) for i in range(len(scenes))]
    )
    means = np.stack([colours[labels == c].mean(axis=0) for c in range(3)])
    assert np.abs(means - means.mean(axis=0)).max() < 0.06  # about 0.5 for every class


def test_objects_stand_out_from_background():
    scenes = make_scenes(200, objects=1, noise=0.0, seed=8)
    for i in range(len(scenes)):
        inside = scenes.images[i][scenes.masks[i] > 0].mean(axis=0)
        x, y, w, h = scenes.box[i].astype(int)
        ring = np.zeros(scenes.masks[i].shape, dtype=bool)
        ring[max(y - 3, 0) : y + h + 3, max(x - 3, 0) : x + w + 3] = True
        ring &= scenes.masks[i] == 0
        if ring.sum() > 20:
            assert np.linalg.norm(inside - scenes.images[i][ring].mean(axis=0)) > 0.15


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": -1}, r"Received: n=-1"),
        ({"n": 2.5}, r"n=2.5"),
        ({"image_size": 4}, r"image_size=4"),
        ({"image_size": (64, "a")}, r"image_size"),
        ({"objects": (3, 1)}, r"objects=\(3, 1\)"),
        ({"objects": -1}, r"objects=-1"),
        ({"size_range": (10, 100)}, r"size_range=\(10, 100\)"),
        ({"size_range": (2, 10)}, r"size_range"),
        ({"objects": 200, "size_range": (20, 30)}, r"fit"),
        ({"num_classes": 0}, r"num_classes=0"),
        ({"num_classes": len(CLASS_NAMES) + 1}, r"num_classes="),
        ({"noise": 1.5}, r"noise=1.5"),
        ({"noise": -0.1}, r"noise=-0.1"),
        ({"texture": "yes"}, r"texture='yes'"),
        ({"max_occlusion": 2}, r"max_occlusion=2"),
        ({"seed": -3}, r"seed=-3"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"n": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_scenes(kwargs.pop("n"), **kwargs)


# --- Scenes and Scene ---------------------------------------------------------------------------


def test_single_object_accessors():
    scenes = make_scenes(6, objects=1, seed=4)
    assert scenes.label.dtype == np.int64 and scenes.label.shape == (6,)
    assert scenes.box.dtype == np.float32 and scenes.box.shape == (6, 4)
    scene = scenes[2]
    assert scene.label == scenes.label[2] and scene.names == [CLASS_NAMES[scene.label]]
    np.testing.assert_array_equal(scene.box, scenes.box[2])
    rel = scenes.normalized_boxes()[2][0]
    np.testing.assert_allclose(rel, scene.box / 64)
    np.testing.assert_allclose(scene.normalized_boxes()[0], rel)
    assert scenes[-1].index == 5


def test_multi_object_accessors_raise():
    scenes = make_scenes(5, objects=(2, 3), seed=4)
    with pytest.raises(ValueError, match="single-object scenes.*scene 0 has"):
        _ = scenes.label
    with pytest.raises(ValueError, match="single-object"):
        _ = scenes.box
    with pytest.raises(ValueError, match="single-object"):
        _ = scenes[0].label
    with pytest.raises(IndexError):
        scenes[5]


def test_subset_slicing_and_split():
    scenes = make_scenes(10, seed=6)
    part = scenes[[7, 2]]
    np.testing.assert_array_equal(part.images[0], scenes.images[7])
    np.testing.assert_array_equal(part.boxes[1], scenes.boxes[2])
    assert len(scenes[2:5]) == 3 and scenes[2:5].max_objects == scenes.max_objects
    assert len(scenes[np.arange(10) % 2 == 0]) == 5
    train, val = scenes.split(0.8)
    assert (len(train), len(val)) == (8, 2)
    np.testing.assert_array_equal(val.images, scenes.images[8:])
    assert [len(p) for p in scenes.split([5, 3])] == [5, 3]
    assert [len(p) for p in scenes.split((0.5, 0.3, 0.2))] == [5, 3, 2]
    with pytest.raises(ValueError, match="sizes"):
        scenes.split([8, 8])
    with pytest.raises(ValueError, match="sizes"):
        scenes.split([0.8, 0.5])


def test_check_detects_inconsistency():
    scenes = make_scenes(3, objects=1, seed=1)
    scenes.boxes[1] = scenes.boxes[1] + 1
    with pytest.raises(ValueError, match="Scene 1: box"):
        scenes.check()


# --- masks ---------------------------------------------------------------------------------------


def test_colormap_and_names():
    assert COLORMAP.dtype == np.uint8 and COLORMAP.shape == (len(CLASS_NAMES) + 1, 3)
    assert len({tuple(row) for row in COLORMAP}) == len(COLORMAP)
    assert segmentation_names(3) == ("background", "circle", "square", "triangle")
    with pytest.raises(ValueError, match="num_classes=0"):
        segmentation_names(0)
    mask = make_scenes(2).masks
    rgb = colorize_mask(mask)
    assert rgb.shape == (2, 64, 64, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[mask == 0], 0)
    with pytest.raises(ValueError, match="values"):
        colorize_mask(np.array([0, len(COLORMAP)]))
    with pytest.raises(ValueError, match="dtype"):
        colorize_mask(np.array([0.5]))


@pytest.mark.parametrize(
    ("shape", "size", "expected"),
    [
        ((64, 64), 32, (32, 32)),
        ((5, 64, 48), (16, 20), (5, 16, 20)),
        ((30, 20, 1), (60, 7), (60, 7, 1)),
        ((2, 9, 9, 1), 4, (2, 4, 4, 1)),
    ],
)
def test_resize_mask_shapes_and_ids(shape, size, expected):
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 3, 7], dtype=np.uint8), size=shape)
    out = resize_mask(mask, size)
    assert out.shape == expected and out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 3, 7}


def test_resize_mask_values_and_tensors():
    import tensorflow as tf

    mask = np.arange(6, dtype=np.int32).reshape(2, 3)
    np.testing.assert_array_equal(resize_mask(mask, (4, 6)), mask.repeat(2, 0).repeat(2, 1))
    np.testing.assert_array_equal(resize_mask(resize_mask(mask, (4, 6)), (2, 3)), mask)
    rng = np.random.default_rng(1)
    big = rng.integers(0, 4, size=(3, 17, 23)).astype(np.int32)
    # Same pixels as TensorFlow's nearest resize, for any factor.
    expected = tf.image.resize(big[..., None], (10, 31), method="nearest")[..., 0].numpy()
    out = resize_mask(tf.constant(big), (10, 31))
    assert tf.is_tensor(out) and out.dtype == tf.int32
    np.testing.assert_array_equal(out.numpy(), expected)
    with pytest.raises(ValueError, match="size=0"):
        resize_mask(mask, 0)
    with pytest.raises(ValueError, match="shape"):
        resize_mask(np.zeros((2, 2, 2, 2, 2)), 4)


# --- task arrays and datasets -------------------------------------------------------------------


def stamped(scenes: Scenes) -> Scenes:
    """A copy whose image i carries i in its first pixel, to find its scene after shuffling."""
    images = scenes.images.copy()
    images[:, 0, 0, 0] = np.arange(len(scenes)) / 1000
    return Scenes(
        images,
        scenes.masks,
        scenes.instance_ids,
        scenes.labels,
        scenes.boxes,
        class_names=scenes.class_names,
        max_objects=scenes.max_objects,
    )


@pytest.mark.parametrize("task", TASKS)
def test_dataset_pairs_images_and_targets(task):
    single = task in ("classification", "localization")
    scenes = stamped(make_scenes(20, image_size=32, objects=1 if single else (0, 3), seed=3))
    x, y = task_arrays(scenes, task)
    ds = make_dataset(scenes, task, batch_size=8, seed=1)
    batches = list(ds)
    assert [len(b[0]) for b in batches] == [8, 8, 4]
    order = np.concatenate([np.round(b[0][:, 0, 0, 0].numpy() * 1000).astype(int) for b in batches])
    assert sorted(order) == list(range(20)) and list(order) != list(range(20))
    images, target = batches[0]
    assert images.dtype.name == "float32" and tuple(images.shape) == (8, 32, 32, 3)
    idx = order[:8]
    if isinstance(y, dict):
        assert set(target) == set(y)
        for key in y:
            assert target[key].dtype.name == y[key].dtype.name
            np.testing.assert_array_equal(target[key].numpy(), y[key][idx])
    else:
        assert target.dtype.name == "int32"
        np.testing.assert_array_equal(target.numpy(), y[idx])


def test_task_arrays_formats():
    scenes = make_scenes(6, image_size=32, objects=(0, 3), seed=2)
    _, seg = task_arrays(scenes, "segmentation")
    assert seg.dtype == np.int32 and seg.shape == (6, 32, 32)
    _, det = task_arrays(scenes, "instance")
    assert det["classes"].shape == (6, 3) and det["boxes"].shape == (6, 3, 4)
    assert det["masks"].shape == (6, 3, 32, 32) and det["masks"].dtype == np.uint8
    for i, k in enumerate(scenes.num_objects):
        np.testing.assert_array_equal(det["classes"][i, :k], scenes.labels[i])
        assert np.all(det["classes"][i, k:] == -1) and np.all(det["boxes"][i, k:] == 0)
        np.testing.assert_allclose(det["boxes"][i, :k] * 32, scenes.boxes[i])
        np.testing.assert_array_equal(det["masks"][i, :k].astype(bool), scenes.instance_masks[i])
    _, wide = task_arrays(scenes, "detection", max_objects=5)
    assert wide["classes"].shape == (6, 5)
    single = make_scenes(4, image_size=32, objects=1)
    _, loc = task_arrays(single, "localization")
    np.testing.assert_allclose(loc["box"] * 32, single.box)
    assert loc["class"].dtype == np.int32 and loc["box"].dtype == np.float32


def test_task_errors():
    scenes = make_scenes(4, image_size=32, objects=(2, 3))
    with pytest.raises(ValueError, match="'classification', 'segmentation'"):
        task_arrays(scenes, "depth")
    with pytest.raises(ValueError, match="single-object"):
        task_arrays(scenes, "classification")
    with pytest.raises(ValueError, match="max_objects"):
        task_arrays(scenes, "detection", max_objects=1)
    with pytest.raises(ValueError, match="batch_size=0"):
        make_dataset(scenes, "segmentation", batch_size=0)


def test_dataset_shuffle_is_seeded_and_repeats():
    scenes = stamped(make_scenes(16, image_size=16, objects=1, seed=0))

    def order(ds):
        return [round(v * 1000) for b in ds for v in b[0][:, 0, 0, 0].numpy()]

    first = order(make_dataset(scenes, "classification", batch_size=4, seed=5))
    assert first == order(make_dataset(scenes, "classification", batch_size=4, seed=5))
    assert first != order(make_dataset(scenes, "classification", batch_size=4, seed=6))
    plain = order(make_dataset(scenes, "classification", batch_size=4, shuffle=False))
    assert plain == list(range(16))
    twice = order(make_dataset(scenes, "classification", batch_size=4, seed=5, repeat=2))
    assert len(twice) == 32 and sorted(twice) == sorted(list(range(16)) * 2)
    forever = make_dataset(scenes, "classification", batch_size=4, repeat=True)
    assert len(list(forever.take(10))) == 10


# Digests of the scenes as generated before the speed work of issue 17 (commit 6cd0736):
# annotations (masks, instance ids, labels, boxes), the same on every machine, and the image
# bytes, whose last float bits depend on the CPU's vector width (the background's matrix
# products go through BLAS): one digest per CPU the old generator was run on (an Intel Xeon with
# AVX-512; an AMD EPYC, family 25, with AVX2), and for any other CPU the images' float64 sum and
# sum of squares, which a real change moves far more than rounding does (relative 1e-7: even
# if every pixel rounded the same way by a float32 ulp, they would move by 6e-8).
PINNED = [
    (
        dict(n=300, seed=0), "a613099575fa17bbd43d",
        {"cf8753e8e0296db2ca89", "87508898030b4018ed97"}, (1840759.12663178, 1122737.44810635),
    ),
    (
        dict(n=60, seed=7, image_size=128), "e9f274e8ee1b7af31ef8",
        {"fbfa66b5adece4a07389", "63c184d2502cdb174bbf"}, (1445649.19429952, 865809.627892596),
    ),
    (
        dict(n=80, seed=9, image_size=32, max_occlusion=1.0, objects=(2, 5)),
        "1b7245bbe73d52da9590",
        {"2fd95f5d9831cc0e6fad", "2a0e77c732dc07fcf7ed"}, (120177.517688586, 73478.9468977057),
    ),
    (
        dict(n=60, seed=11, image_size=(9, 31), objects=(0, 1), noise=0.3, num_classes=8),
        "dd3fb4b6e3091472f93b",
        {"8a451f763f55bd41395e", "7127ba855cb71e1a208a"}, (24919.7648825217, 17265.5244670953),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "annotations", "images", "moments"), PINNED)
def test_generation_is_bit_identical_to_the_pinned_scenes(kwargs, annotations, images, moments):
    scenes = make_scenes(**kwargs)
    h = hashlib.sha256()
    h.update(scenes.masks.tobytes())
    h.update(scenes.instance_ids.tobytes())
    for labels, boxes in zip(scenes.labels, scenes.boxes, strict=True):
        h.update(labels.tobytes())
        h.update(boxes.tobytes())
    assert h.hexdigest()[:20] == annotations  # the same on every machine
    if hashlib.sha256(scenes.images.tobytes()).hexdigest()[:20] in images:
        return  # bit-identical to the old generator's output on a CPU it was run on
    pixels = scenes.images.astype(np.float64)
    np.testing.assert_allclose([pixels.sum(), (pixels**2).sum()], moments, rtol=1e-7)
