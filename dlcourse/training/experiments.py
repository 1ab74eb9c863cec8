"""One training recipe for every segmentation model the course compares (lessons 05–06).

Lessons 05 and 06 compare upsampling methods; a comparison means something only when every
method sees the same data, the same optimiser and the same number of steps. This module writes
that recipe down once:

- :func:`build_segmenter` builds the model of one method: an encoder–decoder
  (:func:`dlcourse.models.build_encoder_decoder`) for each of ``UPSAMPLING_METHODS``, or the
  naive same-resolution FCN (:func:`dlcourse.models.build_naive_fcn`, with BatchNorm like the
  others) for ``"naive_fcn"``.
- :func:`train_segmenter` trains a model with that recipe and measures it: validation mean IoU,
  boundary F1, parameters, median seconds per training step; :func:`predict_masks` is the
  validation's prediction (direct model calls).
- :func:`comparison_budget` and :func:`comparison_data`: the data and budget both lessons use.
- :func:`compare_upsampling` does both for a list of methods, each from the same seed, and returns
  one row per method; :func:`format_table` prints the rows, :func:`plot_comparison` draws them.

**Cache.** Training is deterministic (same seed, same data, same thread count: same weights), so
a row is a function of its inputs. ``compare_upsampling(..., cache_dir=...)`` stores each row
under a key made of everything it depends on — the method, the recipe, a fingerprint of the
train and validation arrays, the package's model/layer/metric source code and the library
versions — and returns the stored row (``"cached": True``) when the same key comes again. Lesson
05 trains the fixed unpoolings; lesson 06 reuses those rows for its final table when 05 ran before
on the same machine, and recomputes them (identically) otherwise. The trained model is stored
next to its row (``.keras``: weights and optimizer state); :func:`cached_training` reads both
back, so a benchmark can continue the lessons' training where it stopped.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import time
from pathlib import Path

import numpy as np

from dlcourse.config import SEED, comparison_cache_dir
from dlcourse.config import default_cache_dir as default_cache_dir  # re-exported: lessons use it
from dlcourse.metrics.segmentation import boundary_f1, mean_iou, pixel_accuracy
from dlcourse.metrics.timing import StepTimer
from dlcourse.models import UPSAMPLING_METHODS, build_encoder_decoder, build_naive_fcn
from dlcourse.quiet import import_keras
from dlcourse.training.progress import rows_bar
from dlcourse.validate import positive_int

keras = import_keras()

METHODS = ("naive_fcn", *UPSAMPLING_METHODS, "transpose_k4", "strided_conv")
"""Every method :func:`build_segmenter` knows: the naive FCN, the encoder–decoders with each
upsampling (2×2 max pooling down), ``"transpose_k4"`` (``Conv2DTranspose`` with kernel 4
instead of 3) and ``"strided_conv"`` (strided-convolution downsampling, nearest upsampling: it
differs from ``"nearest"`` only in the way down)."""

METHOD_DESCRIPTIONS = {
    "naive_fcn": "naive FCN: 6 same-resolution 3×3 convs (lesson 04)",
    "nearest": "max pool ↓, nearest-neighbour unpooling ↑",
    "bed_of_nails": "max pool ↓, bed-of-nails unpooling ↑",
    "max_unpool": "max pool ↓, max unpooling (switches) ↑",
    "transpose": "max pool ↓, Conv2DTranspose 3×3 stride 2 ↑",
    "resize_conv": "max pool ↓, nearest resize + 3×3 conv ↑",
    "transpose_k4": "max pool ↓, Conv2DTranspose 4×4 stride 2 ↑",
    "strided_conv": "3×3 conv stride 2 ↓, nearest-neighbour unpooling ↑",
}
"""One line per method: how it goes down and how it comes back up."""

COLUMNS = ("method", "mean_iou", "boundary_f1", "params", "step_seconds")
"""The columns :func:`format_table` prints by default."""


COMPARISON_BUDGETS = {
    "fast": {
        "image_size": 24,
        "size_range": (14, 22),
        "objects": (1, 2),
        "n_train": 640,
        "n_val": 100,
        "epochs": 3,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "filters": (16, 32, 64),
        "seeds": (0, 1, 2),
    },
    "full": {
        "image_size": 64,
        "size_range": (16, 30),
        "objects": (1, 2),
        "n_train": 6000,
        "n_val": 600,
        "epochs": 10,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "filters": (16, 32, 64),
        "seeds": (0, 1, 2),
    },
}
"""The data and training budget every method gets in lessons 05 and 06, FAST and full mode.

The objects (``size_range``, in pixels) are larger than the naive network's receptive field
(13 pixels) and smaller than the encoder–decoders' (32 pixels and more), in both budgets, so the
comparison asks what lesson 04 set up: what does a network that cannot see a whole object get
wrong? Every method is trained once per seed in ``seeds`` (the seed decides
the initial weights and the order of the batches), so a ranking can be held against the
seed-to-seed spread. FAST (CI, grading, a 2-core CPU): 24×24 scenes, 120 training steps, a
few seconds per model.
Full (a GPU): 64×64 scenes with room for more objects of the same kind, more data and epochs."""


def comparison_budget(fast: bool) -> dict:
    """A copy of ``COMPARISON_BUDGETS["fast"]`` or ``["full"]``."""
    return dict(COMPARISON_BUDGETS["fast" if fast else "full"])


def comparison_data(budget: dict, seed: int = SEED):
    """``(train, val)`` scenes of a budget, disjoint seeds; ``size_range`` and ``objects`` of
    the budget when it has them, ``make_scenes``'s defaults otherwise.

    Example:
    >>> train, val = comparison_data({"image_size": 16, "n_train": 3, "n_val": 2})
    >>> train.images.shape, val.masks.shape
    ((3, 16, 16, 3), (2, 16, 16))
    """
    from dlcourse.data import make_scenes

    scene = {"image_size": budget["image_size"]}
    for key in ("size_range", "objects"):
        if budget.get(key) is not None:
            scene[key] = tuple(budget[key])
    train = make_scenes(budget["n_train"], seed=seed, **scene)
    val = make_scenes(budget["n_val"], seed=seed + 1, **scene)
    return train, val


def build_segmenter(
    method: str,
    num_classes: int,
    *,
    filters=(16, 32, 64),
    naive_depth: int = 6,
    naive_width: int = 32,
    input_shape=(None, None, 3),
):
    """The segmentation model of one upsampling ``method`` (uncompiled, softmax output).

    Args:
        method: one of ``METHODS``: ``"naive_fcn"`` (no down- or upsampling at all), an
            ``upsampling=`` value of :func:`dlcourse.models.build_encoder_decoder` (max-pooling
            encoder, no skip connections, BatchNorm momentum 0.9), ``"transpose_k4"`` or
            ``"strided_conv"`` (see ``METHOD_DESCRIPTIONS``).
        num_classes: ``C + 1`` segmentation classes.
        filters: channels per level of the encoder–decoders.
        naive_depth, naive_width: convolutions and filters of the naive FCN (with BatchNorm).
        input_shape: ``(H, W, channels)``.

    Example:
    >>> [build_segmenter(m, 4).count_params() for m in ("naive_fcn", "nearest")]
    [47844, 49588]
    """
    if method not in METHODS:
        raise ValueError(f"Expected method one of {METHODS}. Received: method={method!r}")
    if method == "naive_fcn":
        return build_naive_fcn(naive_depth, naive_width, num_classes, input_shape, batch_norm=True)
    options = {"upsampling": method}
    if method == "transpose_k4":
        options = {"upsampling": "transpose", "up_kernel_size": 4}
    elif method == "strided_conv":
        options = {"upsampling": "nearest", "downsampling": "strided_conv"}
    return build_encoder_decoder(
        num_classes, filters=tuple(filters), input_shape=input_shape, **options
    )


def _arrays(data, what):
    """``(x, y)`` from a ``Scenes`` or an ``(x, y)`` pair; y as int32 masks ``(N, H, W)``."""
    if hasattr(data, "images") and hasattr(data, "masks"):
        x, y = data.images, data.masks
    elif isinstance(data, tuple | list) and len(data) == 2:
        x, y = data
    else:
        raise ValueError(
            f"Expected {what} to be a Scenes or an (images, masks) pair. "
            f"Received: {type(data).__name__}"
        )
    x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
    if x.ndim != 4 or y.shape != x.shape[:3]:
        raise ValueError(
            f"Expected {what} images (N, H, W, C) and masks (N, H, W). "
            f"Received: {x.shape} and {y.shape}"
        )
    return x, y.astype(np.int32)


def train_segmenter(
    model,
    train,
    val,
    *,
    epochs: int,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    seed: int = SEED,
    tolerance: int = 1,
    recompile: bool = True,
) -> dict:
    """Train ``model`` with the course's recipe and measure it on ``val``.

    The recipe: Adam (``learning_rate``), ``SparseCategoricalCrossentropy``, ``epochs`` passes
    over ``train`` in shuffled batches of ``batch_size`` (shuffling seeded with ``seed``),
    validation mean IoU measured after every epoch (:func:`predict_masks`, then
    :func:`dlcourse.metrics.mean_iou`: what ``keras.metrics.MeanIoU`` logs as ``val_mean_iou``,
    without Keras's evaluation machinery per epoch). The model is compiled here (any previous
    compilation is replaced), without metrics.

    Args:
        model: an uncompiled or compiled segmentation ``keras.Model`` with softmax output
            ``(N, H, W, K)``.
        train, val: a ``Scenes`` or an ``(images, masks)`` pair each.
        epochs: positive int.
        batch_size: positive int.
        learning_rate: Adam's learning rate, constant (on these short runs neither a cosine
            decay nor a drop for the last quarter ended reliably higher).
        seed: seeds Keras (shuffling) before ``fit``; build the model after seeding too, for
            reproducible initial weights (:func:`compare_upsampling` does).
        tolerance: pixels of slack of :func:`dlcourse.metrics.boundary_f1`.
        recompile: ``False`` keeps the compilation of a model this function trained before
            (its traced training step is reused: seconds saved per run) after the caller reset
            its weights; the optimizer's state is reset here. Same numbers as a fresh model.

    Returns:
        A dict: ``mean_iou``, ``boundary_f1``, ``pixel_accuracy`` (on ``val``, after the last
        epoch), ``params`` (all weights), ``step_seconds`` (median wall seconds of one training
        step, the first two steps — tracing — left out), ``seconds`` (the whole ``fit``),
        ``history`` (one value per epoch: ``loss``, ``val_mean_iou``, and ``epoch_seconds`` /
        ``epoch_cpu_seconds``, the wall and processor seconds of its training, validation left
        out) and
        ``prediction`` (the ``val`` masks predicted, uint8 ``(N, H, W)``).
    """
    positive_int(epochs, "epochs")
    positive_int(batch_size, "batch_size")
    x, y = _arrays(train, "train")
    xv, yv = _arrays(val, "val")
    num_classes = int(model.output_shape[-1])
    if recompile or not model.compiled:
        # No compiled metric: the validation mean IoU is measured after each epoch below, and
        # a training-batch metric would only cost time.
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(),
        )
    else:
        _reset_optimizer(model.optimizer, learning_rate)
    keras.utils.set_random_seed(int(seed))
    timer = StepTimer()
    validation = _Validation(xv, yv, num_classes)
    start = time.perf_counter()
    history = model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[timer, validation],  # the timer first: an epoch's time leaves validation out
    )
    seconds = time.perf_counter() - start
    predicted = validation.prediction  # after the last epoch
    return {
        "mean_iou": mean_iou(yv, predicted, num_classes),
        "boundary_f1": boundary_f1(yv, predicted, tolerance=tolerance),
        "pixel_accuracy": pixel_accuracy(yv, predicted),
        "params": int(model.count_params()),
        "step_seconds": timer.timing(skip=2)["step_seconds"],  # tracing left out
        "seconds": float(seconds),
        "history": {
            "loss": [float(v) for v in history.history["loss"]],
            "val_mean_iou": [float(v) for v in validation.scores],
            "epoch_seconds": [round(v, 4) for v in timer.epoch_seconds],
            "epoch_cpu_seconds": [round(v, 4) for v in timer.epoch_cpu_seconds],
        },
        "prediction": predicted,
    }


def predict_masks(model, images, batch_size: int = 256) -> np.ndarray:
    """The masks a segmentation ``model`` predicts for ``images``: argmax of its per-pixel
    scores, uint8 ``(N, H, W)``.

    Calls the model directly (inference mode: BatchNorm's moving statistics, no dropout), in
    batches of ``batch_size``, instead of ``model.predict``: no data pipeline or prediction
    function is built per call, which on small validation sets costs more than the forward pass.
    Same masks as ``np.argmax(model.predict(images), -1)``.

    Example:
    >>> model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(4, 1)])
    >>> predict_masks(model, np.zeros((5, 8, 6, 3), "float32"), batch_size=2).shape
    (5, 8, 6)
    """
    positive_int(batch_size, "batch_size")
    images = np.asarray(images, dtype=np.float32)
    parts = [
        np.argmax(np.asarray(model(images[i : i + batch_size], training=False)), axis=-1)
        for i in range(0, len(images), batch_size)
    ]
    if not parts:
        return np.zeros(images.shape[:3], dtype=np.uint8)
    return np.concatenate(parts).astype(np.uint8)


class _Validation(keras.callbacks.Callback):
    """Validation mean IoU after every epoch (:func:`predict_masks`, :func:`mean_iou`); keeps the
    last epoch's predicted masks."""

    def __init__(self, images, masks, num_classes):
        super().__init__()
        self.images, self.masks, self.num_classes = images, masks, num_classes
        self.scores: list[float] = []
        self.prediction = None

    def on_epoch_end(self, epoch, logs=None):
        self.prediction = predict_masks(self.model, self.images)
        self.scores.append(mean_iou(self.masks, self.prediction, self.num_classes))


def _reset_optimizer(optimizer, learning_rate) -> None:
    """Adam as new: step count and moment estimates zero, the learning rate as given."""
    if not optimizer.built:
        return
    for variable in optimizer.variables:
        if variable.path.endswith("learning_rate"):
            variable.assign(learning_rate)
        else:
            variable.assign(np.zeros(variable.shape, dtype=variable.dtype))


def _cache_files(root=None) -> list[Path]:
    """The files of :func:`comparison_cache_dir` that rows, models and their temporary copies
    are written as (``<method>-<key>.json|.npy|.keras``, ``*.<pid>.tmp[.keras]``): nothing else
    in the folder is ever counted or deleted."""
    import re

    folder = comparison_cache_dir(root)
    methods = "|".join(METHODS)
    pattern = re.compile(
        rf"^({methods})-[0-9a-f]{{20}}(\.(json|npy|keras)|.*\.\d+\.tmp(\.keras)?)$"
    )
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and pattern.match(p.name))


def cache_summary(root=None) -> dict:
    """What the comparison cache holds: ``{"folder", "rows", "models", "bytes"}``.

    Example:
    >>> cache_summary("/nonexistent")["rows"]
    0
    """
    files = _cache_files(root)
    return {
        "folder": str(comparison_cache_dir(root)),
        "rows": sum(p.suffix == ".json" for p in files),
        "models": sum(p.suffix == ".keras" and ".tmp" not in p.name for p in files),
        "bytes": sum(p.stat().st_size for p in files),
    }


def clear_cache(root=None) -> int:
    """Delete every row and model of the comparison cache (a later lesson 05 or 06 trains them
    again); other files in the folder are left alone. Returns the bytes freed."""
    freed = 0
    for path in _cache_files(root):
        size = path.stat().st_size
        path.unlink(missing_ok=True)
        freed += size
    return freed


@functools.cache
def _code_fingerprint() -> str:
    """Hash of the source that decides a row: this module, the models, the layers, the metrics.

    Computed once per process (at the first cached comparison), so it describes the code this
    process runs even if the files change on disk later.
    """
    import dlcourse.layers
    import dlcourse.metrics
    import dlcourse.models

    digest = hashlib.sha256()
    files = []
    for package in (dlcourse.layers, dlcourse.metrics, dlcourse.models):
        files += sorted(Path(inspect.getfile(package)).parent.glob("*.py"))
    files.append(Path(__file__))
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _row_key(method, recipe, arrays) -> str:
    import tensorflow as tf

    from dlcourse import __version__

    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(a.tobytes())
    description = {
        "method": method,
        "recipe": recipe,
        "data": digest.hexdigest(),
        "code": _code_fingerprint(),
        "versions": [__version__, keras.__version__, tf.__version__, np.__version__],
        "cpus": os.cpu_count(),
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:20]


def _cache_stem(cache_dir: Path, method: str, key: str) -> Path:
    """``<cache_dir>/<method>-<key>``: a row's files are this plus ``.json``, ``.npy``, ``.keras``."""
    return cache_dir / f"{method}-{key}"


def _load_row(cache_dir: Path, method: str, key: str):
    stem = _cache_stem(cache_dir, method, key)
    try:
        row = json.loads(stem.with_suffix(".json").read_text())
        row["prediction"] = np.load(stem.with_suffix(".npy"))
    except (OSError, ValueError):
        return None
    row["cached"] = True
    return row


def _store_row(cache_dir: Path, method: str, key: str, row: dict) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = _cache_stem(cache_dir, method, key)
    plain = {k: v for k, v in row.items() if k not in ("prediction", "model", "cached")}
    # Written to temporary names and renamed, so a reader never sees half a row.
    for suffix, write in (
        (".npy", lambda f: np.save(f, row["prediction"])),
        (".json", lambda f: f.write(json.dumps(plain).encode())),
    ):
        tmp = stem.with_suffix(f"{suffix}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, stem.with_suffix(suffix))


def _store_model(cache_dir: Path, method: str, key: str, model) -> None:
    """The trained, compiled model (weights and optimizer state) next to its row."""
    stem = _cache_stem(cache_dir, method, key)
    tmp = cache_dir / f"{stem.name}.{os.getpid()}.tmp.keras"  # Keras wants the .keras suffix
    model.save(tmp)
    os.replace(tmp, stem.with_suffix(".keras"))


def _recipe(train, val, epochs, num_classes, batch_size, learning_rate, seed, filters, tolerance):
    """``(x, y, xv, yv, recipe)``: the arrays and the recipe dict a row's key is made of."""
    x, y = _arrays(train, "train")
    xv, yv = _arrays(val, "val")
    if num_classes is None:
        num_classes = int(max(y.max(), yv.max())) + 1
    recipe = {
        "epochs": epochs,
        "num_classes": num_classes,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "filters": list(filters),
        "tolerance": tolerance,
    }
    return x, y, xv, yv, recipe


def cached_training(
    method,
    train,
    val,
    *,
    epochs: int,
    cache_dir,
    num_classes: int | None = None,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    seed: int = SEED,
    filters=(16, 32, 64),
    tolerance: int = 1,
):
    """``(row, model)`` that :func:`compare_upsampling` stored in ``cache_dir`` for the same
    arguments, or ``None`` when there is none (or it cannot be read).

    ``model`` is the trained model as it was saved after its last epoch, compiled, with its
    optimizer's state, so training can go on where the row stopped: ``model.fit(...,
    initial_epoch=len(row["history"]["loss"]))``. ``benchmarks/bench_quality`` continues
    lessons 05–06's training this way instead of repeating it.
    """
    x, y, xv, yv, recipe = _recipe(
        train, val, epochs, num_classes, batch_size, learning_rate, seed, filters, tolerance
    )
    cache_dir = Path(cache_dir)
    key = _row_key(method, recipe, (x, y, xv, yv))
    row = _load_row(cache_dir, method, key)
    path = _cache_stem(cache_dir, method, key).with_suffix(".keras")
    if row is None or not path.is_file():
        return None
    try:
        model = keras.models.load_model(path)
    except Exception:  # a damaged or foreign file is a miss, as for rows
        return None
    return row, model


def compare_upsampling(
    methods,
    train,
    val,
    *,
    epochs: int,
    num_classes: int | None = None,
    batch_size: int = 16,
    learning_rate: float = 3e-3,
    seed: int = SEED,
    filters=(16, 32, 64),
    tolerance: int = 1,
    keep_models: bool = False,
    cache_dir=None,
    show_progress: bool = True,
    seeds=None,
) -> list[dict]:
    """Build and train every method the same way; one row (dict) per method and seed.

    Each method starts from ``keras.utils.set_random_seed(seed)``, is built with
    :func:`build_segmenter` and trained with :func:`train_segmenter`: same data, same optimiser,
    same number of steps, same seed.

    Args:
        methods: names from ``METHODS``.
        train, val: a ``Scenes`` or an ``(images, masks)`` pair each.
        epochs, batch_size, learning_rate, seed, tolerance: as in :func:`train_segmenter`.
        num_classes: ``C + 1``; default: the largest class id in ``train`` and ``val``, plus one.
        filters: channels per level of the encoder–decoders.
        keep_models: add the trained model to each row under ``"model"`` (then every method
            is trained: a cached row has no model).
        cache_dir: a folder (e.g. :func:`default_cache_dir`) to reuse and store rows in (see
            the module docstring); ``None``: always train.
        show_progress: one progress line over the methods (which one is training, how long).
        seeds: train every method once per seed (method-major order) instead of once with
            ``seed``; the seeds of one method share one compiled model (weights reset to the
            seed's own initial weights, optimizer reset), which saves the tracing of its
            training step and gives the same numbers as separate models.

    Returns:
        A list of dicts: ``method``, ``seed``, ``cached`` (whether the row was read from
        ``cache_dir``) plus everything :func:`train_segmenter` returns.
    """
    methods = list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"Expected methods from {METHODS}. Received: methods={methods!r}")
    seeds = [seed] if seeds is None else [int(s) for s in seeds]
    if not seeds:
        raise ValueError(f"Expected at least one seed. Received: seeds={seeds!r}")
    x, y, xv, yv, recipe = _recipe(
        train, val, epochs, num_classes, batch_size, learning_rate, seed, filters, tolerance
    )
    num_classes = recipe["num_classes"]
    cache_dir = None if cache_dir is None else Path(cache_dir)
    rows = []
    runs = [(m, s) for m in methods for s in seeds]
    bar = rows_bar(runs, desc="comparison", unit="model", disable=not show_progress)
    trainers = {}  # method -> a model compiled and trained before in this call
    for method, run_seed in bar:
        bar.set_postfix_str(f"{method} seed {run_seed}")
        recipe["seed"] = run_seed
        key = None
        if cache_dir is not None:
            key = _row_key(method, recipe, (x, y, xv, yv))
            row = None if keep_models else _load_row(cache_dir, method, key)
            if row is not None:
                rows.append({"seed": run_seed, **row})
                continue
        keras.utils.set_random_seed(run_seed)
        model = build_segmenter(method, num_classes, filters=filters)
        trainer = None if keep_models else trainers.get(method)
        if trainer is not None:
            trainer.set_weights(model.get_weights())
            model = trainer
        row = {"method": method, "seed": run_seed, "cached": False}
        row.update(
            train_segmenter(
                model,
                (x, y),
                (xv, yv),
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                seed=run_seed,
                tolerance=tolerance,
                recompile=trainer is None,
            )
        )
        trainers[method] = model
        if key is not None:
            _store_row(cache_dir, method, key, row)
            _store_model(cache_dir, method, key, model)
        if keep_models:
            row["model"] = model
        rows.append(row)
    return rows


def seed_summary(rows, metric: str = "mean_iou") -> dict:
    """Per method, how ``metric`` varies over the seeds of :func:`compare_upsampling` rows.

    Returns:
        ``{method: {"mean", "std", "min", "max", "spread", "n", "seeds"}}`` in the order the
        methods first appear; ``spread`` is ``max - min`` over the seeds (``std`` uses
        ``ddof=0``).

    Example:
    >>> rows = [{"method": "a", "seed": s, "mean_iou": v} for s, v in enumerate([0.5, 0.7])]
    >>> {k: round(v, 3) for k, v in seed_summary(rows)["a"].items() if k != "seeds"}
    {'mean': 0.6, 'std': 0.1, 'min': 0.5, 'max': 0.7, 'spread': 0.2, 'n': 2}
    """
    values: dict[str, list] = {}
    seeds: dict[str, list] = {}
    for row in rows:
        values.setdefault(row["method"], []).append(float(row[metric]))
        seeds.setdefault(row["method"], []).append(row.get("seed"))
    summary = {}
    for method, v in values.items():
        a = np.asarray(v)
        summary[method] = {
            "mean": float(a.mean()),
            "std": float(a.std()),
            "min": float(a.min()),
            "max": float(a.max()),
            "spread": float(a.max() - a.min()),
            "n": len(v),
            "seeds": seeds[method],
        }
    return summary


def beats(summary: dict, a: str, b: str) -> bool:
    """Whether method ``a`` is better than ``b`` beyond the seed-to-seed spread: the worst seed
    of ``a`` is above the best seed of ``b`` (needs at least 2 seeds each).

    Example:
    >>> s = {"a": {"min": 0.7, "max": 0.8, "n": 3}, "b": {"min": 0.5, "max": 0.69, "n": 3}}
    >>> beats(s, "a", "b"), beats(s, "b", "a")
    (True, False)
    """
    for m in (a, b):
        if summary[m]["n"] < 2:
            raise ValueError(f"Expected at least 2 seeds of {m!r}. Received: n={summary[m]['n']}")
    return summary[a]["min"] > summary[b]["max"]


def ranking_tiers(summary: dict) -> list[list[str]]:
    """The methods in tiers, best first: a method starts a new tier only when every method of
    the tier above :func:`beats` it; inside a tier the order (by mean) is within the spread.

    Example:
    >>> s = {"a": {"mean": .75, "min": .7, "max": .8, "n": 3},
    ...      "b": {"mean": .72, "min": .69, "max": .74, "n": 3},
    ...      "c": {"mean": .3, "min": .2, "max": .4, "n": 3}}
    >>> ranking_tiers(s)
    [['a', 'b'], ['c']]
    """
    order = sorted(summary, key=lambda m: -summary[m]["mean"])
    tiers: list[list[str]] = []
    for method in order:
        if tiers and not all(beats(summary, m, method) for m in tiers[-1]):
            tiers[-1].append(method)
        else:
            tiers.append([method])
    return tiers


def format_summary(summary: dict, extra: dict | None = None) -> str:
    """A table of :func:`seed_summary`: ``mean ± std`` and ``min–max`` per method, plus
    ``extra`` columns (``{column: {method: text}}``).

    Example:
    >>> print(format_summary({"a": {"mean": .6, "std": .1, "min": .5, "max": .7, "n": 2}}))
    method  mean ± std (seeds)    min–max
    a        0.600 ± 0.100 (2)  0.50–0.70
    """
    extra = extra or {}
    header = ["method", "mean ± std (seeds)", "min–max", *extra]
    body = [
        [
            m,
            f"{s['mean']:.3f} ± {s['std']:.3f} ({s['n']})",
            f"{s['min']:.2f}–{s['max']:.2f}",
            *(str(extra[c].get(m, "")) for c in extra),
        ]
        for m, s in summary.items()
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *body]
    )


def _cell(value, column):
    if column == "params":
        return f"{value:,}"
    if column == "step_seconds":
        return f"{value * 1000:.1f} ms"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def format_table(rows, columns=COLUMNS) -> str:
    """The rows of :func:`compare_upsampling` as a plain-text table (scores to 2 decimals).

    Example:
    >>> print(format_table([{"method": "nearest", "mean_iou": 0.8123, "boundary_f1": 0.9,
    ...                      "params": 49588, "step_seconds": 0.0123}]))
    method   mean_iou  boundary_f1  params  step_seconds
    nearest      0.81         0.90  49,588       12.3 ms
    """
    header = [str(c) for c in columns]
    body = [[_cell(row[c], c) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(columns))]

    def line(cells):
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join(line(r) for r in [header, *body])


def plot_comparison(rows, title: str | None = None):
    """Three panels: mean IoU and boundary F1 per method; mean IoU against step time (marker
    area grows with the parameter count); validation mean IoU after every epoch.

    Returns the figure.
    """
    import matplotlib.pyplot as plt

    names = [r["method"] for r in rows]
    fig, (bars, cost, curves) = plt.subplots(1, 3, figsize=(15, 3.8), constrained_layout=True)
    pos = np.arange(len(rows))
    bars.bar(pos - 0.2, [r["mean_iou"] for r in rows], 0.4, label="mean IoU")
    bars.bar(pos + 0.2, [r["boundary_f1"] for r in rows], 0.4, label="boundary F1")
    bars.set_xticks(pos, names, rotation=30, ha="right")
    bars.set_ylim(0, 1)
    bars.legend(loc="lower right", fontsize=8)
    bars.set_title("quality on the validation scenes")
    most = max(r["params"] for r in rows)
    for r in rows:
        ms = r["step_seconds"] * 1000
        cost.scatter(ms, r["mean_iou"], s=40 + 200 * r["params"] / most)
        cost.annotate(
            r["method"], (ms, r["mean_iou"]), textcoords="offset points", xytext=(5, 4), fontsize=8
        )
    cost.set_xlabel("median training step (ms)")
    cost.set_ylabel("mean IoU")
    cost.set_title("quality vs cost (marker area ~ parameters)")
    for r in rows:
        values = r["history"]["val_mean_iou"]
        curves.plot(np.arange(1, len(values) + 1), values, marker=".", label=r["method"])
    curves.set_xlabel("epoch")
    curves.set_ylabel("validation mean IoU")
    curves.set_title("learning curves")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
