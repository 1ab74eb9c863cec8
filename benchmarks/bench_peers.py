"""Benchmark: the course's best segmentation model against the models of the tutorials students use.

Peers, each written here from its tutorial's published architecture (no code copied, no
pretrained weights: none can be downloaded offline, and the course trains from scratch too):

- ``tf_mobilenet_pix2pix``: the TensorFlow segmentation tutorial ("Image segmentation",
  tensorflow.org/tutorials/images/segmentation): a ``keras.applications.MobileNetV2`` encoder
  (``weights=None``, trainable; skips taken at ``block_1/3/6/13_expand_relu`` and
  ``block_16_project``) and a pix2pix decoder (``Conv2DTranspose`` 4× stride 2 with 512/256/128/64
  filters, ``random_normal(0, 0.02)`` kernels, no bias, BatchNorm, ReLU, concatenated skips), then a
  stride-2 ``Conv2DTranspose`` to logits (``from_logits=True`` loss, as the tutorial compiles it).
- ``keras_io_xception_unet``: keras.io's "Image segmentation with a U-Net-like architecture"
  (Oxford Pets): a stride-2 convolution, three Xception-style blocks (two ``SeparableConv2D`` +
  BatchNorm, max pooling, a strided 1×1 residual) and four ``Conv2DTranspose`` blocks with
  upsampling and a 1×1 residual, softmax head.
- ``dlwp_convnet``: *Deep Learning with Python* (Chollet, chapter on image segmentation): three
  stride-2 convolutions (64/128/256, each followed by a same-size one) and six ``Conv2DTranspose``
  mirroring them, ReLU, no normalisation, softmax head. Its ``Rescaling(1/255)`` is left out: it is
  there for uint8 photographs and the scenes are already in [0, 1].

**The course's model** is its best segmentation model: the U-Net of lesson 09
(``dlcourse.models.build_encoder_decoder(skips=True)``, nearest upsampling, BatchNorm momentum
0.9) with three poolings and filters 16/32/64/128 (223 k parameters). Measured on this recipe
(2026-12-06): 16/32/64 (two poolings) reached at best 0.75 in 120 CPU-seconds and 8/16/32/64
0.78 in 60, never 0.8; 16/32/64/128 reached 0.8 in epoch 8 (57 CPU-seconds).

**BatchNorm momentum.** Keras's default momentum is 0.99 (0.999 inside its MobileNetV2); on short
runs the moving statistics that evaluation uses then lag far behind the weights, and validation
predicts "all background" for many epochs while the training loss is already low. Each peer with
BatchNorm is therefore trained twice: as published, and with the one-line fix (every
``BatchNormalization`` layer's ``momentum = 0.9``, set before compiling), the value the course
uses. The DLwP model has no BatchNorm, so it has no fixed variant.

**The recipe**, the same for all: the same generated 64×64 scenes (``make_scenes``, default
settings: up to 3 objects of 3 classes), the same seed, batch 32, Adam 1e-3 (the tutorials use
Adam or RMSprop at their own rates; one optimizer budget for all is the fair comparison), shuffled
epochs, each model trained for ``budget_cpu_seconds`` (120) CPU seconds of training, what 60 s
of training on 2 busy cores costs (a CPU budget, as in ``bench_quality``: on a shared machine
wall time stretches with the other work, CPU time much less; a wall guard still bounds a run),
evaluation excluded; validation mean IoU (``dlcourse.metrics.mean_iou`` of the argmax prediction) after every epoch.
A model that has not reached the threshold when its budget is spent trains on until it does or
until a limit, so that every ratio to the course can be decided on a slower CPU too (the budget is
CPU seconds, and a CPU with a lower peak fits fewer epochs into it): the course model until
``COURSE_LIMIT_FACTOR`` (4) times the budget; a published peer until ``TARGET_RATIO`` (3) times
the course model's CPU seconds to the threshold (only then is "the course reaches 0.8 at least 3x
sooner than the best published peer" decided); a fixed peer until the course's CPU seconds to it
(only then is "no fixed peer is faster" decided). A peer that still has not reached it gives a
lower bound on its ratio (shown as ``≥ ×r``), never infinity. The best mIoU "within the budget"
stays the budget's.
Time to a threshold: the training seconds (wall and CPU, the first epoch's tracing included) at
the end of the first epoch that reached it. The ratios divide by the course model's figures in the
same run: time ratios > 1 mean the peer is slower. On a shared machine wall seconds stretch with
the other work; CPU seconds much less; both are reported.

Run ``python -m benchmarks.bench_peers [--quick]`` (prints JSON) or call ``run()``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

THRESHOLD = 0.8
TARGET_RATIO = 3.0  # the target: the best published peer takes >= 3x the course's time
COURSE_LIMIT_FACTOR = 4.0  # the course model trains on to the threshold for up to 4x the budget
FIXED_MOMENTUM = 0.9
COURSE = "course_unet"
RECIPES = {
    # 120 CPU-seconds: 60 s of training on 2 busy cores (a quiet 2-core machine)
    "full": {"image_size": 64, "n_train": 1200, "n_val": 200, "batch_size": 32,
             "learning_rate": 1e-3, "budget_cpu_seconds": 120.0, "wall_guard": 400.0},
    "quick": {"image_size": 32, "n_train": 64, "n_val": 32, "batch_size": 32,
              "learning_rate": 1e-3, "budget_cpu_seconds": 4.0, "wall_guard": 30.0},
}  # fmt: skip
PEERS = {
    # name: (the tutorial it comes from, whether it has BatchNorm layers)
    "tf_mobilenet_pix2pix": ("TensorFlow tutorial: MobileNetV2 encoder + pix2pix decoder", True),
    "keras_io_xception_unet": ("keras.io Oxford Pets: Xception-style U-Net", True),
    "dlwp_convnet": ("Deep Learning with Python: strided convs + Conv2DTranspose", False),
}


# ------------------------------------------------------------------------------------ the models


def build_course(num_classes: int, size: int):
    """The course's best segmentation model: lesson 09's U-Net (BatchNorm momentum 0.9)."""
    from dlcourse.models import build_encoder_decoder

    return build_encoder_decoder(
        num_classes, filters=(16, 32, 64, 128), upsampling="nearest", skips=True,
        input_shape=(size, size, 3),
    )  # fmt: skip


def _pix2pix_upsample(filters: int, size: int):
    """pix2pix's decoder block: Conv2DTranspose (stride 2, N(0, 0.02), no bias), BatchNorm, ReLU."""
    import keras

    return keras.Sequential(
        [
            keras.layers.Conv2DTranspose(
                filters,
                size,
                strides=2,
                padding="same",
                use_bias=False,
                kernel_initializer=keras.initializers.RandomNormal(0.0, 0.02),
            ),  # fmt: skip
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
        ]
    )


def build_tf_mobilenet_pix2pix(num_classes: int, size: int):
    """The TensorFlow segmentation tutorial's model, without pretrained weights (all trainable)."""
    import keras

    base = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), include_top=False, weights=None
    )
    names = [
        "block_1_expand_relu",  # size / 2
        "block_3_expand_relu",  # size / 4
        "block_6_expand_relu",  # size / 8
        "block_13_expand_relu",  # size / 16
        "block_16_project",  # size / 32
    ]
    down_stack = keras.Model(base.input, [base.get_layer(n).output for n in names])
    up_stack = [_pix2pix_upsample(f, 3) for f in (512, 256, 128, 64)]
    inputs = keras.Input((size, size, 3))
    skips = down_stack(inputs)
    x = skips[-1]
    for up, skip in zip(up_stack, reversed(skips[:-1]), strict=True):
        x = keras.layers.Concatenate()([up(x), skip])
    outputs = keras.layers.Conv2DTranspose(num_classes, 3, strides=2, padding="same")(x)
    return keras.Model(inputs, outputs, name="tf_mobilenet_pix2pix")


def build_keras_io_xception_unet(num_classes: int, size: int):
    """keras.io's Oxford Pets U-Net-like model (Xception-style encoder)."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(32, 3, strides=2, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous = x
    for filters in (64, 128, 256):
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(filters, 1, strides=2, padding="same")(previous)
        x = layers.add([x, residual])
        previous = x
    for filters in (256, 128, 64, 32):
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2DTranspose(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.UpSampling2D(2)(x)
        residual = layers.UpSampling2D(2)(previous)
        residual = layers.Conv2D(filters, 1, padding="same")(residual)
        x = layers.add([x, residual])
        previous = x
    outputs = layers.Conv2D(num_classes, 3, activation="softmax", padding="same")(x)
    return keras.Model(inputs, outputs, name="keras_io_xception_unet")


def build_dlwp_convnet(num_classes: int, size: int):
    """Deep Learning with Python's segmentation convnet (its Rescaling(1/255) left out)."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 3))
    x = inputs
    for filters in (64, 128, 256):
        x = layers.Conv2D(filters, 3, strides=2, activation="relu", padding="same")(x)
        x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
    for filters in (256, 128, 64):
        x = layers.Conv2DTranspose(filters, 3, activation="relu", padding="same")(x)
        x = layers.Conv2DTranspose(filters, 3, strides=2, activation="relu", padding="same")(x)
    outputs = layers.Conv2D(num_classes, 3, activation="softmax", padding="same")(x)
    return keras.Model(inputs, outputs, name="dlwp_convnet")


BUILDERS = {
    COURSE: build_course,
    "tf_mobilenet_pix2pix": build_tf_mobilenet_pix2pix,
    "keras_io_xception_unet": build_keras_io_xception_unet,
    "dlwp_convnet": build_dlwp_convnet,
}
FROM_LOGITS = {"tf_mobilenet_pix2pix"}


def batchnorm_layers(model) -> list:
    """Every BatchNormalization layer of ``model``, nested models included."""
    import keras

    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def set_bn_momentum(model, momentum: float) -> int:
    """The one-line fix: every BatchNorm layer's momentum; returns how many were changed."""
    found = batchnorm_layers(model)
    for layer in found:
        layer.momentum = momentum
    return len(found)


def variants() -> list[tuple[str, str, float | None]]:
    """``(variant, model, momentum)``: the course first, then each peer as published and fixed."""
    rows = [(COURSE, COURSE, None)]
    for name, (_, has_batchnorm) in PEERS.items():
        rows.append((name, name, None))
        if has_batchnorm:
            rows.append((f"{name}+bn{FIXED_MOMENTUM:g}", name, FIXED_MOMENTUM))
    return rows


# ------------------------------------------------------------------------------------ training


def _train(model_name, momentum, data, recipe, seed, limit_cpu_seconds=None) -> dict:
    """Train one variant for the recipe's CPU budget; with ``limit_cpu_seconds`` above the
    budget, one that has not reached the threshold when the budget runs out trains on until it
    does or until that many CPU seconds (see the module's docstring for each model's limit)."""
    import keras

    from dlcourse.metrics import mean_iou

    (x, y), (xv, yv) = data
    num_classes = int(max(y.max(), yv.max())) + 1
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = BUILDERS[model_name](num_classes, recipe["image_size"])
    momenta = sorted({float(layer.momentum) for layer in batchnorm_layers(model)})
    if momentum is not None:
        set_bn_momentum(model, momentum)
    model.compile(
        optimizer=keras.optimizers.Adam(recipe["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=model_name in FROM_LOGITS),
    )
    budget, guard = recipe["budget_cpu_seconds"], recipe["wall_guard"]
    limit = max(budget, limit_cpu_seconds or 0.0)
    guard *= limit / budget
    history = {"wall_seconds": [], "cpu_seconds": [], "val_mean_iou": []}
    reached = None

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.wall, self.cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            nonlocal reached
            wall = (history["wall_seconds"] or [0.0])[-1] + time.perf_counter() - self.wall
            cpu = (history["cpu_seconds"] or [0.0])[-1] + time.process_time() - self.cpu
            probs = self.model.predict(xv, batch_size=100, verbose=0)
            score = float(mean_iou(yv, np.argmax(probs, axis=-1), num_classes))
            history["wall_seconds"].append(round(wall, 2))
            history["cpu_seconds"].append(round(cpu, 2))
            history["val_mean_iou"].append(round(score, 4))
            if reached is None and score >= THRESHOLD:
                reached = {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                           "epoch": epoch + 1}  # fmt: skip
            if (cpu >= budget and reached is not None) or cpu >= limit or wall >= guard:
                self.model.stop_training = True

    keras.utils.set_random_seed(seed)
    model.fit(
        x, y, batch_size=recipe["batch_size"], epochs=100_000, shuffle=True, verbose=0,
        callbacks=[Evaluate()],
    )  # fmt: skip
    walls, cpus, scores = (np.array(history[k]) for k in history)
    within = cpus <= budget
    per_epoch = np.diff([0.0, *walls])
    return {
        "params": int(model.count_params()),
        "bn_momentum_published": momenta,
        "bn_momentum": momentum if momentum is not None else (momenta or None),
        "epochs": len(walls),
        "train_seconds": float(walls[-1]),
        "train_cpu_seconds": float(cpus[-1]),
        "cores_busy": round(float(cpus[-1] / walls[-1]), 2),
        "seconds_per_epoch": round(
            float(np.median(per_epoch[1:] if len(walls) > 1 else per_epoch)), 2
        ),
        "reached": reached,
        "stopped_by": _stopped_by(reached, float(cpus[-1]), budget, limit),
        "limit_cpu_seconds": limit,
        # the epoch that crosses the budget counts when it is the first one (a slow model)
        "best_mean_iou_within_budget": float(scores[within].max() if within.any() else scores[0]),
        "history": history,
    }


def _stopped_by(reached, cpu: float, budget: float, limit: float) -> str:
    """Why a training ended: its CPU budget, the threshold reached after the budget (a model
    trained on past it), its limit, or the wall guard."""
    if reached is not None and cpu >= budget:
        return "budget" if reached["cpu_seconds"] <= budget else "reached the threshold"
    if cpu >= limit:
        return "budget" if limit == budget else "limit"
    return "wall guard"


def run(quick: bool = False, seed: int = 42, only=None) -> dict:
    """Train the course's model and every peer variant on the same scenes, one after another.

    Returns:
        ``{"recipe", "threshold", "course", "variants": {name: {"model", "params",
        "bn_momentum", "reached": {"seconds", "cpu_seconds", "epoch"} | None,
        "best_mean_iou_within_budget", "vs_course": {"seconds", "cpu_seconds", "best_mean_iou"},
        "history", ...} | {"error"}}, "targets": {...}}``.
    """
    import dlcourse

    dlcourse.register_keras_objects()  # and the quiet TensorFlow import
    from dlcourse.data import make_scenes

    recipe = dict(RECIPES["quick" if quick else "full"])
    size = recipe["image_size"]
    train = make_scenes(recipe["n_train"], image_size=size, seed=seed)
    val = make_scenes(recipe["n_val"], image_size=size, seed=seed + 1)
    data = (
        (train.images.astype(np.float32), train.masks.astype(np.int32)),
        (val.images.astype(np.float32), val.masks.astype(np.int32)),
    )
    rows = {}
    mine = None  # the course's CPU seconds to the threshold, once known
    for variant, model_name, momentum in variants():
        if only and variant not in only and variant != COURSE:
            continue
        print(f"[peers] {variant} ...", file=sys.stderr, flush=True)
        limit = _limit(variant, momentum, mine, recipe["budget_cpu_seconds"])
        try:
            rows[variant] = {
                "model": model_name,
                **_train(model_name, momentum, data, recipe, seed, limit),
            }
            if variant == COURSE and rows[variant]["reached"]:
                mine = rows[variant]["reached"]["cpu_seconds"]
            # the whole row in the log: a run killed at its timeout keeps what it measured
            summary = {k: v for k, v in rows[variant].items() if k != "history"}
            print(f"[peers] {variant}: {json.dumps(summary)}", file=sys.stderr, flush=True)
        except Exception as exc:  # one broken peer does not hide the others
            rows[variant] = {"model": model_name, "error": f"{type(exc).__name__}: {exc}"}
    course = rows.get(COURSE, {})
    for row in rows.values():
        if "error" in row or "error" in course:
            continue
        ratio = {}
        for key in ("seconds", "cpu_seconds"):
            ratio[key] = (
                round(row["reached"][key] / course["reached"][key], 2)
                if row["reached"] and course.get("reached")
                else None
            )
        ratio["best_mean_iou"] = round(
            row["best_mean_iou_within_budget"] / course["best_mean_iou_within_budget"], 3
        )
        row["vs_course"] = ratio
    return {
        "recipe": recipe,
        "seed": seed,
        "threshold": THRESHOLD,
        "course": COURSE,
        "variants": rows,
        "targets": _targets(rows),
    }


def _limit(variant: str, momentum, course_cpu_seconds, budget: float) -> float:
    """How long ``variant`` may train on past its budget to reach the threshold (CPU seconds):
    the course until ``COURSE_LIMIT_FACTOR`` x the budget, a published peer until
    ``TARGET_RATIO`` x the course's time to the threshold, a fixed peer until the course's time
    (nothing past the budget while the course's time is unknown)."""
    if variant == COURSE:
        return COURSE_LIMIT_FACTOR * budget
    if course_cpu_seconds is None:
        return budget
    factor = TARGET_RATIO if momentum is None else 1.0
    return max(budget, factor * course_cpu_seconds)


def _targets(rows: dict) -> dict:
    """The issue's two targets, from CPU seconds to the threshold (None: cannot be decided).

    A peer that never reached the threshold took *more* than the CPU seconds it trained; so the
    best published peer's ratio is exact when the smallest figure is a peer's time to the
    threshold, and a lower bound (``published_is_lower_bound``) when it is what a peer that
    never got there trained. The target is met when that figure is >= ``TARGET_RATIO``, not met
    when an exact ratio is below it, and undecided (None) when only a bound below it is known.
    Likewise a fixed peer is no faster than the course when it reached the threshold no sooner,
    or trained at least the course's time without reaching it; one that stopped earlier without
    reaching it leaves that target undecided."""
    course = rows.get(COURSE, {})
    undecided = {"published_best_peer_over_course": None, "published_is_lower_bound": None,
                 "published_target_met": None, "fixed_peers_not_faster": None}  # fmt: skip
    if "error" in course or not course.get("reached"):
        return undecided
    mine = course["reached"]["cpu_seconds"]
    published = [r for v, r in rows.items() if v != COURSE and "+bn" not in v and "error" not in r]
    fixed = [r for v, r in rows.items() if "+bn" in v and "error" not in r]
    verdicts = [
        r["reached"]["cpu_seconds"] >= mine if r["reached"]
        else (True if r["train_cpu_seconds"] >= mine else None)
        for r in fixed
    ]  # fmt: skip
    fixed_ok = False if False in verdicts else None if None in verdicts else True
    if not published:
        return {**undecided, "fixed_peers_not_faster": fixed_ok}
    # (CPU seconds, whether that is only a bound): exact figures first on a tie
    best, bound = min(
        (r["reached"]["cpu_seconds"], False) if r["reached"] else (r["train_cpu_seconds"], True)
        for r in published
    )
    ratio = round(best / mine, 2)
    met = True if ratio >= TARGET_RATIO else None if bound else False
    return {
        "published_best_peer_over_course": ratio,
        "published_is_lower_bound": bound,
        "published_target_met": met,
        "fixed_peers_not_faster": fixed_ok,
    }


# ------------------------------------------------------------------------------------- report


def _time(row: dict, key: str) -> str:
    hit = row["reached"]
    if hit is None:
        return "not reached"
    unit = "s" if key == "seconds" else "CPU-s"
    ratio = row.get("vs_course", {}).get(key)
    return f"{hit[key]:.0f} {unit} (epoch {hit['epoch']}" + (
        f", ×{ratio:.2f})" if ratio is not None else ")"
    )


def markdown(result: dict, machine: str) -> str:
    r = result["recipe"]
    lines = [
        f"{r['n_train']} train / {r['n_val']} validation {r['image_size']}×{r['image_size']} "
        f"scenes, batch {r['batch_size']}, Adam {r['learning_rate']:g}, same seed, "
        f"{r['budget_cpu_seconds']:.0f} CPU-seconds of training each (60 s on 2 busy cores), one after another in this run on "
        f"{machine}. Time to validation mIoU {result['threshold']}: training seconds (wall / "
        "CPU, first epoch's tracing included, evaluation excluded); ×: multiple of the course "
        "model's in this run (> 1: slower than the course). `+bn0.9`: the peer with every "
        "BatchNorm momentum set to 0.9 (the course's value) instead of its published one.",
        "",
        f"| model | params | BatchNorm momentum | s/epoch | to mIoU {result['threshold']} (wall) | "
        f"to mIoU {result['threshold']} (CPU) | best mIoU in {r['budget_cpu_seconds']:.0f} CPU-s | "
        "÷ course |",
        "| --- | ---: | --- | ---: | --- | --- | ---: | ---: |",
    ]
    for name, row in result["variants"].items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error'][:120]} | | | | | | |")
            continue
        momentum = row["bn_momentum"]
        if isinstance(momentum, list):
            momentum = "/".join(f"{m:g}" for m in momentum)
        momentum = "none" if momentum is None else f"{momentum}"
        ratio = row.get("vs_course", {}).get("best_mean_iou")
        lines.append(
            f"| {'**' + name + '**' if name == result['course'] else name} | {row['params']:,} | "
            f"{momentum} | {row['seconds_per_epoch']:.1f} | {_time(row, 'seconds')} | "
            f"{_time(row, 'cpu_seconds')} | {row['best_mean_iou_within_budget']:.3f} | "
            f"{'—' if ratio is None else f'{ratio:.2f}'} |"
        )
    t = result["targets"]
    fixed = {True: "yes", False: "no", None: "undecided"}[t["fixed_peers_not_faster"]]
    lines += [
        "",
        "Targets (CPU seconds to the threshold): best peer as published ÷ course = "
        f"{_ratio_text(t)} (target ≥ {TARGET_RATIO:g}: {_verdict(t['published_target_met'])}); "
        f"every peer with the fix no faster than the course: {fixed}. A model that has not "
        "reached the threshold when its budget is spent trains on until it does or until a "
        f"limit: the course {COURSE_LIMIT_FACTOR:g}× the budget, a published peer "
        f"{TARGET_RATIO:g}× the course's CPU seconds to the threshold, a fixed peer the "
        "course's; the best mIoU stays the budget's.",
    ]
    return "\n".join(lines)


def _verdict(met) -> str:
    return {True: "met", False: "not met", None: "undecided"}[met]


def _ratio_text(targets: dict) -> str:
    value = targets["published_best_peer_over_course"]
    if value is None:
        return "undecided (the course model did not reach the threshold, or no peer ran)"
    if targets["published_is_lower_bound"]:
        return f"≥ ×{value:.2f} (no published peer reached it in the CPU seconds it trained)"
    return f"×{value:.2f}"


def headline(result: dict) -> list[tuple[str, str]]:
    rows = result["variants"]
    course = rows.get(result["course"], {})
    if "error" in course:
        return [("course vs peers", f"course model failed: {course['error'][:100]}")]
    hit = course.get("reached")
    mine = (
        f"{hit['seconds']:.0f} s / {hit['cpu_seconds']:.0f} CPU-s (epoch {hit['epoch']})"
        if hit
        else "not reached"
    )
    parts = []
    for name, row in rows.items():
        if name == result["course"] or "error" in row:
            continue
        ratio = row.get("vs_course", {}).get("cpu_seconds")
        parts.append(
            f"{name} "
            + (
                f"not reached in {row['train_cpu_seconds']:.0f} CPU-s"
                if ratio is None and "train_cpu_seconds" in row
                else "not reached"
                if ratio is None
                else f"×{ratio:.1f}"
            )
        )
    t = result["targets"]
    return [
        (
            f"course U-Net to validation mIoU {result['threshold']}",
            f"{mine}; best mIoU in {result['recipe']['budget_cpu_seconds']:.0f} CPU-s "
            f"{course.get('best_mean_iou_within_budget', float('nan')):.3f}",
        ),
        (
            f"peers' CPU seconds to mIoU {result['threshold']} ÷ the course's",
            "; ".join(parts) + f" (best published peer {_ratio_text(t)})",
        ),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    parser.add_argument("--only", nargs="*", default=None, help="variants (the course always runs)")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, only=args.only), indent=2, default=str))


if __name__ == "__main__":
    main()
