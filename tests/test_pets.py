"""dlcourse.data.pets: trimaps, the offline look-alike, source choice and the tfds path (mocked)."""

import sys
import types

import numpy as np
import pytest

from dlcourse.data import pets


def test_trimap_to_mask_maps_every_value_and_keeps_the_shape():
    trimap = np.array([[[1], [2]], [[3], [1]]], dtype=np.uint8)
    mask = pets.trimap_to_mask(trimap)
    assert mask.shape == trimap.shape and mask.dtype == np.uint8
    assert mask[..., 0].tolist() == [[pets.PET, pets.BACKGROUND], [pets.BORDER, pets.PET]]
    assert pets.CLASS_NAMES[pets.BACKGROUND] == "background"  # 0 = background, the convention


@pytest.mark.parametrize("bad", [np.array([[0, 1]]), np.array([[1, 4]]), np.array([[0.5, 1.0]])])
def test_trimap_to_mask_rejects_what_is_not_a_trimap(bad):
    with pytest.raises(ValueError, match="Expected"):
        pets.trimap_to_mask(bad)


def test_breeds_and_species_follow_the_dataset():
    assert len(pets.BREEDS) == 37 and len(set(pets.BREEDS)) == 37
    cats = [b for b in pets.BREEDS if b[0].isupper()]
    assert len(cats) == 12  # the dataset's 12 cat breeds and 25 dog breeds
    assert list(pets.BREEDS) == sorted(pets.BREEDS, key=str.lower)  # tfds's label order


def test_breeds_equal_the_installed_tfds_builder():
    tfds = pytest.importorskip("tensorflow_datasets")
    builder_cls = tfds.builder_cls(pets.NAME)
    from tensorflow_datasets.datasets.oxford_iiit_pet import oxford_iiit_pet_dataset_builder as b

    assert builder_cls.VERSION.major == 4
    assert tuple(b._LABEL_CLASSES) == pets.BREEDS
    assert tuple(b._SPECIES_CLASSES) == pets.SPECIES


def test_mock_example_has_tfds_features_and_a_real_trimap():
    ex = pets.mock_example(3, seed=1)
    h, w, c = ex["image"].shape
    assert c == 3 and ex["image"].dtype == np.uint8
    lo, hi = pets.MOCK_SIZE_RANGE
    assert lo <= h <= hi and lo <= w <= hi
    assert ex["segmentation_mask"].shape == (h, w, 1) and ex["segmentation_mask"].dtype == np.uint8
    values, counts = np.unique(ex["segmentation_mask"], return_counts=True)
    assert values.tolist() == [1, 2, 3]
    share = dict(zip(values.tolist(), (counts / counts.sum()).tolist(), strict=True))
    assert 0.05 < share[1] < 0.6 and share[3] < share[1]  # a pet, a thin border
    assert ex["species"] == (0 if pets.BREEDS[ex["label"]][0].isupper() else 1)
    assert ex["file_name"] == f"{pets.BREEDS[ex['label']]}_4.jpg"
    ymin, xmin, ymax, xmax = ex["head_bbox"]
    assert 0 <= ymin < ymax <= 1 and 0 <= xmin < xmax <= 1


def test_mock_border_separates_pet_from_background():
    trimap = pets.mock_example(0)["segmentation_mask"][..., 0]
    pet, background = trimap == 1, trimap == 2
    # no pet pixel touches a background pixel: the border band lies between them
    assert not np.any(pet[:, 1:] & background[:, :-1]) and not np.any(
        pet[:, :-1] & background[:, 1:]
    )
    assert not np.any(pet[1:] & background[:-1]) and not np.any(pet[:-1] & background[1:])


def test_mock_is_deterministic_and_varies():
    a, b = pets.mock_example(5, seed=2), pets.mock_example(5, seed=2)
    np.testing.assert_array_equal(a["image"], b["image"])
    sizes = {pets.mock_example(i)["image"].shape[:2] for i in range(8)}
    assert len(sizes) > 4  # photographs of many sizes, as the real ones
    assert len({pets.mock_example(i)["label"] for i in range(20)}) > 5


def test_mock_example_rejects_a_bad_size_range():
    with pytest.raises(ValueError, match="size_range"):
        pets.mock_example(0, size_range=(10, 5))


def test_load_pets_mock_resizes_and_converts():
    data = pets.load_pets("train", n=6, image_size=40, source="mock")
    assert len(data) == 6 and data.source == "mock" and data.split == "train"
    assert data.images.shape == (6, 40, 40, 3) and data.images.dtype == np.float32
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    assert data.masks.shape == (6, 40, 40) and set(np.unique(data.masks)) == {0, 1, 2}
    for i in range(6):  # the original sizes, before resizing
        assert tuple(data.sizes[i]) == pets.mock_example(i, seed=0)["image"].shape[:2]
    test = pets.load_pets("test", n=2, image_size=40, source="mock")
    assert not np.array_equal(test.images[0], data.images[0])  # another split, other examples
    assert "source='mock'" in repr(data)


def test_preprocess_resizes_the_trimap_with_nearest_neighbour_only():
    import tensorflow as tf

    ex = pets.mock_example(1)
    image, mask = pets.preprocess({k: tf.constant(v) for k, v in ex.items()}, 50)
    assert tuple(image.shape) == (50, 50, 3) and tuple(mask.shape) == (50, 50)
    assert set(np.unique(mask.numpy())) <= {0, 1, 2}
    expected = tf.image.resize(ex["segmentation_mask"], (50, 50), method="nearest")[..., 0]
    np.testing.assert_array_equal(mask.numpy(), pets.trimap_to_mask(expected.numpy()))


def test_pets_dataset_batches_for_fit():
    batches = list(pets.pets_dataset("train", 32, 4, n=10, source="mock", seed=1))
    assert [int(x.shape[0]) for x, _ in batches] == [4, 4, 2]
    x, y = batches[0]
    assert tuple(x.shape) == (4, 32, 32, 3) and tuple(y.shape) == (4, 32, 32)
    again = list(pets.pets_dataset("train", 32, 4, n=10, source="mock", seed=1))
    np.testing.assert_array_equal(again[0][1].numpy(), y.numpy())  # the shuffle is seeded


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "validation"}, "split"),
        ({"n": 0}, "n to be"),
        ({"image_size": 4}, "image_size"),
        ({"source": "web"}, "source"),
    ],
)
def test_load_pets_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pets.load_pets(**{"n": 2, "source": "mock", **kwargs})


def test_choose_source(monkeypatch):
    monkeypatch.delenv(pets.SOURCE_VARIABLE, raising=False)
    assert pets.choose_source("mock")[0] == "mock" and pets.choose_source("tfds")[0] == "tfds"
    assert pets.choose_source("auto", fast=True)[0] == "mock"
    monkeypatch.setattr(pets, "is_prepared", lambda data_dir=None: False)
    monkeypatch.setattr(pets, "host_reachable", lambda *a, **k: False)
    source, reason = pets.choose_source("auto", fast=False)
    assert source == "mock" and "unreachable" in reason
    monkeypatch.setattr(pets, "host_reachable", lambda *a, **k: True)
    source, reason = pets.choose_source("auto", fast=False)
    assert source == "tfds" and "MB" in reason
    monkeypatch.setattr(pets, "is_prepared", lambda data_dir=None: True)
    assert "prepared" in pets.choose_source("auto", fast=False)[1]
    monkeypatch.setenv(pets.SOURCE_VARIABLE, "mock")
    assert pets.choose_source("auto", fast=False)[0] == "mock"
    monkeypatch.setenv(pets.SOURCE_VARIABLE, "kaggle")
    with pytest.raises(ValueError, match=pets.SOURCE_VARIABLE):
        pets.choose_source("auto")


def test_auto_falls_back_to_the_look_alike_when_tfds_cannot_be_used(monkeypatch):
    monkeypatch.delenv(pets.SOURCE_VARIABLE, raising=False)
    monkeypatch.setattr(pets, "is_prepared", lambda data_dir=None: True)
    monkeypatch.setattr(pets, "host_reachable", lambda *a, **k: True)
    assert pets.choose_source("auto", fast=False)[0] == "tfds"
    # Colab's own pins: tensorflow_datasets imports, but without load (protobuf mismatch)
    broken = types.ModuleType("tensorflow_datasets")
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", broken)
    source, reason = pets.choose_source("auto", fast=False)
    assert source == "mock" and "\n" not in reason
    assert "tensorflow_datasets" in reason and "look-alike" in reason and "repair" in reason
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails: not installed
    source, reason = pets.choose_source("auto", fast=False)
    assert source == "mock" and "not installed" in reason and "dlcourse[pets]" in reason


def test_offline_machine_has_no_prepared_pets(tmp_path):
    assert pets.is_prepared(tmp_path) is False  # an empty data directory, no network needed


def test_tfds_without_data_or_network_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(pets, "host_reachable", lambda *a, **k: False)
    with pytest.raises(RuntimeError, match="source='mock'"):
        pets.load_pets("train", n=2, source="tfds", data_dir=tmp_path)


def test_tfds_path_on_mocked_tfds(tmp_path, monkeypatch):
    """The real-data path, with tfds mocked to serve look-alike examples in its own features."""
    tfds = pytest.importorskip("tensorflow_datasets")
    calls = []

    def as_dataset(self, split, *args, **kwargs):
        calls.append((self.name, str(self.version), str(split)))
        return pets.mock_tf_dataset("train", 5, seed=7)

    monkeypatch.setattr(pets, "host_reachable", lambda *a, **k: True)
    with tfds.testing.mock_data(as_dataset_fn=as_dataset, data_dir=str(tmp_path)):
        data = pets.load_pets("train", n=5, image_size=24, source="tfds", data_dir=tmp_path)
    assert calls and calls[0][0] == pets.NAME and calls[0][1].startswith("4.")
    assert data.source == "tfds" and data.images.shape == (5, 24, 24, 3)
    mock = pets.load_pets("train", n=5, image_size=24, source="mock", seed=7)
    np.testing.assert_array_equal(data.masks, mock.masks)  # one pipeline for both sources


def test_pet_targets_numpy_and_tensor_agree():
    import tensorflow as tf

    masks = np.array([[[0, 1], [2, 1]]], dtype=np.uint8)
    labels, weights = pets.pet_targets(masks)
    assert labels.dtype == np.int32 and weights.dtype == np.float32
    assert labels.tolist() == [[[0, 1], [0, 1]]] and weights.tolist() == [[[1, 1], [0, 1]]]
    t_labels, t_weights = pets.pet_targets(tf.constant(masks))
    np.testing.assert_array_equal(t_labels.numpy(), labels)
    np.testing.assert_array_equal(t_weights.numpy(), weights)


def test_pets_dataset_pet_targets_match_the_arrays():
    stream = pets.pets_dataset("train", 24, 3, n=3, source="mock", shuffle=False, targets="pet")
    x, labels, weights = next(iter(stream))
    arrays = pets.load_pets("train", n=3, image_size=24, source="mock")
    np.testing.assert_allclose(x.numpy(), arrays.images)
    expected = pets.pet_targets(arrays.masks)
    np.testing.assert_array_equal(labels.numpy(), expected[0])
    np.testing.assert_array_equal(weights.numpy(), expected[1])
    with pytest.raises(ValueError, match="targets"):
        pets.pets_dataset("train", 24, 3, n=3, source="mock", targets="boxes")


def test_without_tfds_the_look_alike_works_and_the_real_path_says_what_to_install(monkeypatch):
    # None in sys.modules makes `import tensorflow_datasets` raise ImportError, as if not installed
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    monkeypatch.delenv(pets.SOURCE_VARIABLE, raising=False)
    assert pets.tfds_installed() is False and pets.is_prepared() is False
    assert pets.choose_source("auto", fast=True)[0] == "mock"  # FAST, CI, grading: offline
    monkeypatch.setattr(pets, "host_reachable", lambda *a, **k: True)  # even online
    source, reason = pets.choose_source("auto", fast=False)
    assert source == "mock" and "dlcourse[pets]" in reason
    data = pets.load_pets("train", n=3, image_size=24, source="auto", seed=1)
    assert data.source == "mock" and data.images.shape == (3, 24, 24, 3)
    with pytest.raises(ImportError, match=r"pip install 'dlcourse\[pets\]'") as error:
        pets.load_pets("train", n=3, image_size=24, source="tfds")
    assert "\n" not in str(error.value)  # one line


def test_cat_photograph_is_a_real_photo_with_a_traced_trimap():
    example = pets.cat_photograph()
    image, trimap = example["image"], example["segmentation_mask"]
    assert image.shape == (300, 451, 3) and image.dtype == np.uint8
    assert trimap.shape == (300, 451, 1) and trimap.dtype == np.uint8
    assert set(np.unique(trimap).tolist()) == {
        pets.TRIMAP_PET,
        pets.TRIMAP_BACKGROUND,
        pets.TRIMAP_BORDER,
    }
    assert pets.SPECIES[example["species"]] == "Cat"
    # the cat fills most of its photograph; the top right corner (behind the ear) is background
    assert 0.7 < np.mean(trimap == pets.TRIMAP_PET) < 0.9
    assert trimap[5, 445, 0] == pets.TRIMAP_BACKGROUND and trimap[150, 200, 0] == pets.TRIMAP_PET
    # the band lies on the outline only: at most its two sides' width across a row
    assert 0 < (trimap[150, :, 0] == pets.TRIMAP_BORDER).sum() <= 2 * pets.CAT_PHOTOGRAPH_BORDER + 1
    resized, mask = (t.numpy() for t in pets.preprocess(example, 40))
    assert resized.shape == (40, 40, 3) and set(np.unique(mask).tolist()) <= {0, 1, 2}
    # a photograph, not a drawing: many distinct colours
    colours = image.reshape(-1, 3).astype(np.int64) @ np.array([65536, 256, 1])
    assert len(np.unique(colours)) > 10_000


def test_cat_photograph_without_scikit_image_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(ImportError, match=r"dlcourse\[pets\]"):
        pets.cat_photograph()
