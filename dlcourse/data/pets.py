"""Oxford-IIIT Pet for the course: real photographs with trimaps, and an offline look-alike.

The Oxford-IIIT Pet dataset (Parkhi et al., CVPR 2012; CC BY-SA 4.0) has 7,349 photographs of 37
cat and dog breeds, each with a **trimap**: 1 = pet, 2 = background, 3 = border (the uncertain
band along the outline). ``tensorflow-datasets`` serves it as ``oxford_iiit_pet`` (version 4,
about 811 MB to download; ``train`` 3,680 and ``test`` 3,669 examples).

Classrooms and CI machines are often offline, so the course also has a **look-alike**
(``source="mock"``): generated photographs of a body, a head and two ears on a textured background,
in exactly the features tfds gives (``image`` uint8 of varying size, ``segmentation_mask`` uint8
trimap ``(H, W, 1)``, ``label``, ``species``, ``file_name``, ``head_bbox``). Both go through the
same pipeline (:func:`pets_dataset`, :func:`load_pets`): resize the image bilinearly and the trimap
with nearest neighbour, and turn the trimap into the course's mask convention, 0 = background
(:data:`CLASS_NAMES`: background 0, pet 1, border 2). Figures measured on the look-alike say how
the code behaves, not how well a model does on real photographs.

Which source ``"auto"`` picks (:func:`choose_source`): ``DLCOURSE_PETS_SOURCE`` if set; the
look-alike in FAST mode (CI and grading must be offline and deterministic); the real data when
tfds has it prepared in ``data_dir``, or when its download host can be reached (Colab); otherwise
the look-alike, with the reason. Asking for ``source="tfds"`` with neither data nor network fails
at once with what to do, instead of tfds's own retries (about 200 s offline).

``tensorflow-datasets`` is an optional dependency (``pip install "dlcourse[pets]"``; Colab has it):
only the real photographs need it. Without it ``"auto"`` picks the look-alike and says why, and
``source="tfds"`` fails at once with that install line.
"""

from __future__ import annotations

import dataclasses
import os
import socket

import numpy as np

from dlcourse.data.background import add_noise, paint_background
from dlcourse.data.masks import dilate
from dlcourse.data.shapes import inside_polygon

NAME = "oxford_iiit_pet"
VERSION = "4.*.*"
DOWNLOAD_HOST = "thor.robots.ox.ac.uk"  # tfds 4.9's download address for this dataset
DOWNLOAD_MB = 811
SPLITS = {"train": 3680, "test": 3669}  # examples per split, real data (and the mock's default)
SOURCES = ("auto", "tfds", "mock")
SOURCE_VARIABLE = "DLCOURSE_PETS_SOURCE"
TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3
CLASS_NAMES = ("background", "pet", "border")  # mask ids 0, 1, 2 (course convention)
BACKGROUND, PET, BORDER = 0, 1, 2
# Trimap value -> mask id; index 0 (no trimap value) maps to 255, which the checks reject.
_TRIMAP_LUT = np.array([255, PET, BACKGROUND, BORDER], dtype=np.uint8)
# The 37 breeds in tfds's label order; capitalised names are cats (as in the dataset's files).
BREEDS = (
    "Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle",
    "Bengal", "Birman", "Bombay", "boxer", "British_Shorthair", "chihuahua", "Egyptian_Mau",
    "english_cocker_spaniel", "english_setter", "german_shorthaired", "great_pyrenees",
    "havanese", "japanese_chin", "keeshond", "leonberger", "Maine_Coon", "miniature_pinscher",
    "newfoundland", "Persian", "pomeranian", "pug", "Ragdoll", "Russian_Blue", "saint_bernard",
    "samoyed", "scottish_terrier", "shiba_inu", "Siamese", "Sphynx",
    "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier",
)  # fmt: skip
SPECIES = ("Cat", "Dog")
MOCK_SIZE_RANGE = (72, 160)  # mock photographs' sides in pixels (real ones: mostly 200-500)


def trimap_to_mask(trimap) -> np.ndarray:
    """The course's mask (0 background, 1 pet, 2 border) of an Oxford-IIIT Pet trimap.

    Args:
        trimap: integer array of any shape with values 1 (pet), 2 (background), 3 (border),
            e.g. tfds's ``segmentation_mask`` of shape ``(H, W, 1)``.

    Returns:
        ``uint8`` array of the same shape.

    Raises:
        ValueError: if a value is not 1, 2 or 3 (a mask already converted, or not a trimap).

    Example:
    >>> trimap_to_mask(np.array([[1, 2], [3, 2]], dtype=np.uint8))
    array([[1, 0],
           [2, 0]], dtype=uint8)
    """
    trimap = np.asarray(trimap)
    if not np.issubdtype(trimap.dtype, np.integer):
        raise ValueError(
            f"Expected an integer trimap (values 1, 2, 3). Received dtype {trimap.dtype}"
        )
    values = np.unique(trimap)
    bad = values[(values < 1) | (values > 3)]
    if bad.size:
        raise ValueError(
            "Expected trimap values 1 (pet), 2 (background), 3 (border). "
            f"Received values {values.tolist()[:10]}: is it already a mask (0, 1, 2)?"
        )
    return _TRIMAP_LUT[trimap.astype(np.intp)]


# --- the offline look-alike ---------------------------------------------------------------


def _ellipse(u, v, cx, cy, a, b, angle):
    c, s = np.cos(angle), np.sin(angle)
    du, dv = u - cx, v - cy
    return ((c * du + s * dv) / a) ** 2 + ((-s * du + c * dv) / b) ** 2 <= 1.0


def _band(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels within `width` (chessboard distance) of the mask's outline, on both sides.

    The image frame is no outline: a pet cut by the frame gets no band along it.
    """
    return dilate(mask, width) & dilate(~mask, width)


def mock_example(index: int, seed: int = 0, size_range=MOCK_SIZE_RANGE) -> dict:
    """One generated look-alike of an Oxford-IIIT Pet example, in tfds's features.

    A pet is a body (ellipse), a head (circle), two ears (pointed for cats, drooping for dogs),
    four thin legs and a tail, in a textured fur colour with stripes or spots, on one of the scene
    generator's textured backgrounds with a few objects that are not pets, under one light; the trimap's border is a band of about 1.2 % of the image's shorter side on
    both sides of the outline, as in the real annotations. Deterministic in ``(index, seed)``.

    Returns:
        ``{"image": uint8 (H, W, 3), "segmentation_mask": uint8 (H, W, 1) trimap,
        "label": int, "species": int, "file_name": str, "head_bbox": float32 (4,)
        (ymin, xmin, ymax, xmax) in [0, 1]}``.
    """
    lo, hi = size_range
    if not (isinstance(lo, int) and isinstance(hi, int) and 32 <= lo <= hi):
        raise ValueError(
            f"Expected size_range (lo, hi) of ints with 32 <= lo <= hi. Received: {size_range!r}"
        )
    rng = np.random.default_rng([seed, index, 9])
    height, width = (int(s) for s in rng.integers(lo, hi + 1, size=2))
    image = np.empty((height, width, 3), dtype=np.float32)
    paint_background(rng, image, texture=True)
    label = int(rng.integers(len(BREEDS)))
    species = 0 if BREEDS[label][0].isupper() else 1
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    side = min(height, width)
    # clutter first: a few objects that are not pets (cushions, bowls), in their own colours
    for _ in range(int(rng.integers(1, 4))):
        ox, oy = rng.uniform(0, width), rng.uniform(0, height)
        oa, ob = side * rng.uniform(0.05, 0.18), side * rng.uniform(0.05, 0.18)
        thing = _ellipse(u, v, ox, oy, oa, ob, rng.uniform(0, np.pi))
        if rng.random() < 0.5:
            thing = (np.abs(u - ox) < oa) & (np.abs(v - oy) < ob)
        image[thing] = image[thing] * 0.4 + 0.6 * rng.uniform(0.05, 0.95, size=3)
    # the pet: a body, the head at one end of it, ears, four legs and a tail (thin parts)
    a, b = side * rng.uniform(0.18, 0.3), side * rng.uniform(0.1, 0.17)
    angle = rng.uniform(-0.5, 0.5)
    cx = rng.uniform(0.35, 0.65) * width
    cy = rng.uniform(0.42, 0.6) * height
    c, s_ = np.cos(angle), np.sin(angle)
    body = _ellipse(u, v, cx, cy, a, b, angle)
    direction = rng.choice((-1.0, 1.0))
    r = b * rng.uniform(0.75, 1.0)
    hx = cx + direction * c * a * 0.9
    hy = cy + direction * s_ * a * 0.9 - b * 0.9
    head = (u - hx) ** 2 + (v - hy) ** 2 <= r**2
    ears = np.zeros_like(head)
    for sign in (-1.0, 1.0):
        if species == 0:  # pointed
            base_l, base_r = hx + sign * r * 0.25, hx + sign * r * 0.95
            tip = (hx + sign * r * 0.7, hy - r * rng.uniform(1.3, 1.6))
            ears |= inside_polygon(
                u, v, np.array([(base_l, hy - r * 0.4), (base_r, hy - r * 0.1), tip])
            )
        else:  # drooping
            ears |= _ellipse(u, v, hx + sign * r * 0.9, hy + r * 0.2, r * 0.3, r * 0.65, sign * 0.3)
    limbs = np.zeros_like(head)
    leg_w, leg_h = side * rng.uniform(0.025, 0.045), b * rng.uniform(1.2, 2.0)
    for t in (-0.7, -0.45, 0.45, 0.7):  # along the body's axis; the legs hang straight down
        lx, ly = cx + t * a * c, cy + t * a * s_
        limbs |= (np.abs(u - lx) < leg_w) & (v > ly) & (v < ly + b * 0.6 + leg_h)
    tail_x, tail_y = cx - direction * c * a * 0.95, cy - direction * s_ * a * 0.95
    tail_len, tail_w = a * rng.uniform(0.5, 0.9), side * rng.uniform(0.015, 0.03)
    tail_angle = -direction * rng.uniform(0.3, 1.2)  # up and away from the head
    tail_cx = tail_x - direction * np.cos(tail_angle) * tail_len / 2
    tail_cy = tail_y - np.abs(np.sin(tail_angle)) * tail_len / 2
    limbs |= _ellipse(u, v, tail_cx, tail_cy, tail_len / 2, tail_w, -tail_angle * direction)
    pet = body | head | ears | limbs
    # fur: a colour not too close to what lies behind it, a texture of its own, stripes or spots
    behind = image[pet].mean(axis=0) if pet.any() else image.mean(axis=(0, 1))
    for _ in range(8):
        fur = rng.uniform(0.05, 0.95, size=3).astype(np.float32)
        if np.abs(fur - behind).sum() > 0.3:
            break
    coat = np.empty_like(image)
    paint_background(rng, coat, texture=True)
    coat = fur + 0.6 * (coat - coat.mean(axis=(0, 1)))
    pattern = rng.integers(3)
    shade = np.ones((height, width), dtype=np.float32)
    if pattern == 1:  # stripes
        k = 2 * np.pi / (side * rng.uniform(0.05, 0.1))
        shade = 0.75 + 0.25 * np.sign(
            np.sin(k * (u * np.cos(angle + 1.2) + v * np.sin(angle + 1.2)))
        )
    elif pattern == 2:  # spots
        for _ in range(int(rng.integers(3, 8))):
            sx, sy = rng.uniform(cx - a, cx + a), rng.uniform(cy - b, cy + b)
            shade[(u - sx) ** 2 + (v - sy) ** 2 <= (side * rng.uniform(0.03, 0.07)) ** 2] = 0.6
    image[pet] = coat[pet] * shade[pet, None]
    eye_r = max(1.0, r * 0.12)
    for sign in (-1.0, 1.0):
        eye = (u - hx - sign * r * 0.4) ** 2 + (v - hy + r * 0.1) ** 2 <= eye_r**2
        image[eye & head] = 0.05
    # one light over the whole photograph, then sensor noise
    light = 0.75 + 0.5 * rng.random() * ((u * rng.uniform(-1, 1) + v * rng.uniform(-1, 1)) / side)
    image *= np.clip(light, 0.5, 1.3)[..., None]
    add_noise(rng, image, 0.04)
    np.clip(image, 0.0, 1.0, out=image)
    trimap = np.full((height, width), TRIMAP_BACKGROUND, dtype=np.uint8)
    trimap[pet] = TRIMAP_PET
    trimap[_band(pet, max(1, round(0.012 * side)))] = TRIMAP_BORDER
    head_pixels = np.argwhere(head | ears)
    (y0, x0), (y1, x1) = head_pixels.min(axis=0), head_pixels.max(axis=0) + 1
    return {
        "image": np.round(image * 255).astype(np.uint8),
        "segmentation_mask": trimap[..., None],
        "label": label,
        "species": species,
        "file_name": f"{BREEDS[label]}_{index + 1}.jpg",
        "head_bbox": np.array([y0 / height, x0 / width, y1 / height, x1 / width], np.float32),
    }


CAT_PHOTOGRAPH_OUTLINE = (
    (40, 0), (400, 0), (386, 35), (372, 75), (374, 110), (382, 150), (373, 200),
    (360, 240), (350, 270), (345, 300), (0, 300), (0, 55),
)  # fmt: skip
"""The cat of ``skimage.data.chelsea()`` (451 x 300 px), traced by hand for this course: the
polygon's vertices ``(x, y)`` in pixels, clockwise from the top left. A coarse outline (whiskers,
fur tips and the blurred ear tips are not followed), hence the wide border band of
:data:`CAT_PHOTOGRAPH_BORDER`."""

CAT_PHOTOGRAPH_BORDER = 6
"""Half-width in pixels of the trimap's border band around :data:`CAT_PHOTOGRAPH_OUTLINE` (2 % of
the photograph's height, wider than the real annotations' band: the trace is coarse)."""

INSTALL_SKIMAGE = (
    "The cat photograph comes with scikit-image (skimage.data.chelsea). Install it with "
    '`pip install "dlcourse[pets]"` (Colab has it).'
)


def cat_photograph() -> dict:
    """A real photograph with a trimap, offline: ``skimage.data.chelsea()``, in tfds's features.

    The photograph is scikit-image's sample image of the cat Chelsea (shipped inside the
    scikit-image package, no download); the trimap comes from the hand-traced
    :data:`CAT_PHOTOGRAPH_OUTLINE` with a border band of :data:`CAT_PHOTOGRAPH_BORDER` pixels on
    both sides. It goes through the same pipeline as a tfds example (:func:`preprocess`).

    Returns:
        ``{"image": uint8 (300, 451, 3), "segmentation_mask": uint8 (300, 451, 1) trimap
        (1 pet, 2 background, 3 border), "species": 0 (cat), "file_name": "chelsea.png"}``.

    Raises:
        ImportError: scikit-image is not installed (the message says how to install it).
    """
    try:
        from skimage import data as skimage_data
    except ImportError as error:
        raise ImportError(INSTALL_SKIMAGE) from error
    image = np.asarray(skimage_data.chelsea(), dtype=np.uint8)
    height, width = image.shape[:2]
    v, u = np.mgrid[0:height, 0:width] + 0.5  # pixel centres
    pet = inside_polygon(u, v, np.asarray(CAT_PHOTOGRAPH_OUTLINE, dtype=np.float64))
    trimap = np.full((height, width), TRIMAP_BACKGROUND, dtype=np.uint8)
    trimap[pet] = TRIMAP_PET
    trimap[_band(pet, CAT_PHOTOGRAPH_BORDER)] = TRIMAP_BORDER
    return {
        "image": image,
        "segmentation_mask": trimap[..., None],
        "species": SPECIES.index("Cat"),
        "file_name": "chelsea.png",
    }


def _mock_split_seed(split: str, seed: int) -> int:
    return seed * 2 + (0 if split == "train" else 1)


def mock_tf_dataset(split: str = "train", n: int | None = None, seed: int = 0):
    """A ``tf.data.Dataset`` of :func:`mock_example` dicts, as ``tfds.load`` would give them."""
    import tensorflow as tf

    _check_split(split)
    n = SPLITS[split] if n is None else _check_n(n)
    split_seed = _mock_split_seed(split, seed)
    signature = {
        "image": tf.TensorSpec((None, None, 3), tf.uint8),
        "segmentation_mask": tf.TensorSpec((None, None, 1), tf.uint8),
        "label": tf.TensorSpec((), tf.int64),
        "species": tf.TensorSpec((), tf.int64),
        "file_name": tf.TensorSpec((), tf.string),
        "head_bbox": tf.TensorSpec((4,), tf.float32),
    }
    return tf.data.Dataset.from_generator(
        lambda: (mock_example(i, split_seed) for i in range(n)), output_signature=signature
    )


# --- choosing and loading a source ----------------------------------------------------------


def _check_split(split) -> None:
    if split not in SPLITS:
        raise ValueError(f"Expected split 'train' or 'test'. Received: split={split!r}")


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(
            f"Expected n to be a positive int or None (the whole split). Received: n={n!r}"
        )
    return int(n)


def host_reachable(host: str = DOWNLOAD_HOST, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


INSTALL_TFDS = (
    "The real Oxford-IIIT Pet photographs need tensorflow-datasets, which is not installed: "
    "pip install 'dlcourse[pets]' (Colab has it), or use source='mock' for the offline look-alike."
)


def tfds_installed() -> bool:
    """Whether ``tensorflow_datasets`` can be imported (the real photographs need it)."""
    try:
        import tensorflow_datasets  # noqa: F401
    except ImportError:
        return False
    return True


def tfds_problem() -> str | None:
    """Why ``tensorflow_datasets`` cannot be used here (one line), or None when it can.

    Imports it with its log lines held back: on Colab's own pins the import logs a 77-line
    protobuf error and leaves a module without ``load`` (``python -m dlcourse.course.colab
    repair`` fixes that).
    """
    import contextlib
    import io
    import logging

    from dlcourse.quiet import silenced_stderr_fd

    held = io.StringIO()
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with silenced_stderr_fd(), contextlib.redirect_stderr(held):
            import tensorflow_datasets as tfds
    except Exception as error:  # noqa: BLE001  (any import failure means: use the look-alike)
        return f"import failed: {type(error).__name__}: {str(error)[:120]}"
    finally:
        logging.disable(previous)
    if not hasattr(tfds, "load"):
        lines = [line for line in held.getvalue().splitlines() if "protobuf" in line.lower()]
        why = "protobuf version mismatch" if lines else "its import was incomplete"
        return (
            f"tensorflow_datasets has no load: {why}; "
            "`python -m dlcourse.course.colab repair` fixes Colab's"
        )
    return None


def is_prepared(data_dir=None) -> bool:
    """Whether tfds has Oxford-IIIT Pet downloaded and prepared in ``data_dir``."""
    if not tfds_installed():
        return False  # no tfds, nothing it could read
    import tensorflow_datasets as tfds

    try:
        return bool(tfds.builder(f"{NAME}:{VERSION}", data_dir=data_dir).is_prepared())
    except Exception:  # no such version installed, unreadable directory: not prepared
        return False


def choose_source(source: str = "auto", data_dir=None, fast: bool | None = None):
    """``(source, reason)``: ``"tfds"`` (the real photographs) or ``"mock"`` (the look-alike).

    ``"auto"`` checks, in order: the ``DLCOURSE_PETS_SOURCE`` variable; FAST mode (look-alike);
    tensorflow-datasets not installed (look-alike); data prepared in ``data_dir`` (real); the
    download host reachable (real, a download of about 811 MB); otherwise the look-alike.
    """
    if source not in SOURCES:
        raise ValueError(f"Expected source in {SOURCES}. Received: source={source!r}")
    if source != "auto":
        return source, f"asked for source={source!r}"
    forced = os.environ.get(SOURCE_VARIABLE, "").strip()
    if forced:
        if forced not in ("tfds", "mock"):
            raise ValueError(
                f"Expected {SOURCE_VARIABLE} to be 'tfds' or 'mock'. Received: {forced!r}"
            )
        return forced, f"{SOURCE_VARIABLE}={forced}"
    if fast is None:
        from dlcourse.config import FAST as fast
    if fast:
        return "mock", "FAST mode: the offline look-alike"
    problem = tfds_problem()  # imports tfds with its log lines held back
    if problem:
        if not tfds_installed():
            return "mock", "tensorflow-datasets is not installed (pip install 'dlcourse[pets]')"
        return "mock", f"tensorflow_datasets cannot be used ({problem}): the offline look-alike"
    if is_prepared(data_dir):
        return "tfds", "Oxford-IIIT Pet is prepared in the tfds data directory"
    if host_reachable():
        return "tfds", f"{DOWNLOAD_HOST} is reachable: tfds downloads about {DOWNLOAD_MB} MB"
    return "mock", f"no prepared Oxford-IIIT Pet and {DOWNLOAD_HOST} unreachable: the look-alike"


def examples(split: str = "train", n: int | None = None, source: str = "auto", data_dir=None,
             seed: int = 0):  # fmt: skip
    """``(tf.data.Dataset of feature dicts, source, reason)`` of a split, in tfds's features.

    ``n`` takes the first ``n`` examples (``train[:n]`` for tfds); ``None`` the whole split.
    """
    _check_split(split)
    n = None if n is None else _check_n(n)
    chosen, reason = choose_source(source, data_dir)
    if chosen == "mock":
        return mock_tf_dataset(split, n, seed), chosen, reason
    if not tfds_installed():
        raise ImportError(INSTALL_TFDS)
    import tensorflow_datasets as tfds

    prepared = is_prepared(data_dir)
    if not prepared and not host_reachable():
        raise RuntimeError(
            f"Oxford-IIIT Pet is not prepared in the tfds data directory ({data_dir or 'default'}) "
            f"and {DOWNLOAD_HOST} cannot be reached, so tfds cannot download it. Expected: an "
            f"internet connection (about {DOWNLOAD_MB} MB), or data_dir= pointing at a prepared "
            "copy, or source='mock' for the offline look-alike."
        )
    dataset = tfds.load(
        f"{NAME}:{VERSION}",
        split=split if n is None else f"{split}[:{n}]",
        data_dir=data_dir,
        download=not prepared,
        shuffle_files=False,
    )
    return dataset, chosen, reason


def preprocess(example: dict, image_size: int):
    """``(image, mask)`` tensors of one example: float32 ``(S, S, 3)`` in [0, 1], uint8 ``(S, S)``.

    The image is resized bilinearly (with antialiasing when it shrinks); the trimap with nearest
    neighbour, so no value between two classes appears, then mapped to the course's mask ids.
    """
    import tensorflow as tf

    size = (image_size, image_size)
    image = tf.image.resize(example["image"], size, method="bilinear", antialias=True) / 255.0
    trimap = tf.image.resize(example["segmentation_mask"], size, method="nearest")[..., 0]
    mask = tf.gather(tf.constant(_TRIMAP_LUT), tf.cast(trimap, tf.int32))
    return tf.clip_by_value(image, 0.0, 1.0), mask


def _check_image_size(image_size) -> int:
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, int | np.integer)
        or image_size < 8
    ):
        raise ValueError(f"Expected image_size to be an int >= 8. Received: {image_size!r}")
    return int(image_size)


def pet_targets(masks):
    """``(labels, weights)`` for a pet-versus-background model that ignores the border.

    ``labels``: int32, 1 on pet pixels, 0 elsewhere; ``weights``: float32, 0 on border pixels
    (the annotators' "uncertain"), 1 elsewhere: as ``sample_weight``, the loss skips the border.
    NumPy arrays or tensors (the same kind comes back).

    Example:
    >>> labels, weights = pet_targets(np.array([[0, 1, 2]], dtype=np.uint8))
    >>> labels.tolist(), weights.tolist()
    ([[0, 1, 0]], [[1.0, 1.0, 0.0]])
    """
    if isinstance(masks, np.ndarray):
        return (masks == PET).astype(np.int32), (masks != BORDER).astype(np.float32)
    import tensorflow as tf

    return tf.cast(masks == PET, tf.int32), tf.cast(masks != BORDER, tf.float32)


TARGETS = ("mask", "pet")


def pets_dataset(split: str = "train", image_size: int = 128, batch_size: int = 32, *,
                 n: int | None = None, source: str = "auto", data_dir=None, shuffle: bool | None = None,
                 targets: str = "mask", seed: int = 0):  # fmt: skip
    """Batches for ``model.fit``, streamed from the source (for the full data on a GPU).

    ``targets="mask"`` gives ``(images, masks)``; ``"pet"`` gives ``(images, labels, weights)``
    of :func:`pet_targets`. Shuffles the training split (a 1,000-example buffer) unless
    ``shuffle=False``; resizing runs in parallel in the input pipeline, batches are prefetched.
    """
    import tensorflow as tf

    image_size = _check_image_size(image_size)
    if targets not in TARGETS:
        raise ValueError(f"Expected targets in {TARGETS}. Received: targets={targets!r}")
    dataset, _, _ = examples(split, n, source, data_dir, seed)
    if shuffle if shuffle is not None else split == "train":
        dataset = dataset.shuffle(1000, seed=seed)

    def convert(ex):
        image, mask = preprocess(ex, image_size)
        return (image, mask) if targets == "mask" else (image, *pet_targets(mask))

    dataset = dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass
class Pets:
    """A split in memory: what :func:`load_pets` returns."""

    images: np.ndarray  # float32 (N, S, S, 3) in [0, 1]
    masks: np.ndarray  # uint8 (N, S, S): 0 background, 1 pet, 2 border
    labels: np.ndarray  # int64 (N,): breed, an index into BREEDS
    species: np.ndarray  # int64 (N,): 0 cat, 1 dog
    sizes: np.ndarray  # int (N, 2): each photograph's (height, width) before resizing
    source: str  # "tfds" (real photographs) or "mock" (the look-alike)
    reason: str  # why that source
    split: str
    class_names: tuple = CLASS_NAMES

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        side = self.images.shape[1] if len(self) else 0
        return (
            f"Pets(split={self.split!r}, n={len(self)}, image_size={side}, source={self.source!r})"
        )


def load_pets(split: str = "train", n: int | None = None, image_size: int = 64, *,
              source: str = "auto", data_dir=None, seed: int = 0) -> Pets:  # fmt: skip
    """A split resized to ``image_size`` and held in memory (see :func:`pets_dataset` to stream).

    Example (the look-alike, offline):
    >>> pets = load_pets("train", n=4, image_size=32, source="mock")
    >>> pets.images.shape, pets.masks.dtype, sorted(set(pets.masks.ravel().tolist()))
    ((4, 32, 32, 3), dtype('uint8'), [0, 1, 2])
    """
    import tensorflow as tf

    image_size = _check_image_size(image_size)
    dataset, chosen, reason = examples(split, n, source, data_dir, seed)

    def convert(ex):
        image, mask = preprocess(ex, image_size)
        return image, mask, ex["label"], ex["species"], tf.shape(ex["image"])[:2]

    parts = [[], [], [], [], []]
    for batch in dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE).batch(256):
        for part, value in zip(parts, batch, strict=True):
            part.append(value.numpy())
    if not parts[0]:
        raise ValueError(f"The {split!r} split of source {chosen!r} gave no examples")
    images, masks, labels, species, sizes = (np.concatenate(p) for p in parts)
    if masks.max() > BORDER:
        raise ValueError(
            "Expected trimap values 1, 2, 3 in segmentation_mask; some pixels had none of them"
        )
    return Pets(images, masks, labels, species, sizes, chosen, reason, split)
