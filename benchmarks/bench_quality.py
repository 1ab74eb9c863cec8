"""Benchmark: seconds of CPU training each upsampling method needs to reach a validation mean IoU.

Every method (the encoder–decoder of ``dlcourse.models`` with each of ``UPSAMPLING_METHODS``,
built as lessons 05–06 build it) trains from the same seed on the same generated scenes, with the
same recipe (Adam, batch, learning rate) and the same budget of training seconds. After every
epoch the validation mean IoU (``dlcourse.metrics.mean_iou`` of the argmax prediction) is computed
outside the timed part; the time to a threshold is the training wall time (evaluation excluded;
the one-off tracing of the training step in the first epoch included, as a student pays it too) at
the end of the first epoch that reached it. A method stops when it has reached the highest
threshold or used its budget; a threshold it did not reach within the budget is reported as
``None`` ("not reached").

Seconds depend on the machine and its load; the epochs to a threshold do not (training is
deterministic for a given thread count), so both are reported, with each method's time as a
multiple of the fastest method's in the same run.

Run ``python -m benchmarks.bench_quality [--quick]`` (prints JSON) or call ``run()``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

THRESHOLDS = (0.6, 0.8)
RECIPES = {
    # Lessons 05–06's recipe (batch 16, Adam 3e-3, filters 16/32/64) on 64×64 scenes; 100 steps
    # per epoch, so the threshold is seen every ~100 steps. 5 methods x 60 s ≈ 5–6 min in all.
    "full": {"image_size": 64, "n_train": 1600, "n_val": 300, "batch_size": 16,
             "learning_rate": 3e-3, "filters": (16, 32, 64), "budget_seconds": 60.0},
    "quick": {"image_size": 32, "n_train": 320, "n_val": 64, "batch_size": 16,
              "learning_rate": 3e-3, "filters": (16, 32, 64), "budget_seconds": 6.0},
}  # fmt: skip
MAX_EPOCHS = 1000  # the budget in seconds ends the run long before


def _train_until(method, data, recipe, seed, thresholds) -> dict:
    import keras

    from dlcourse.metrics import mean_iou
    from dlcourse.models import build_encoder_decoder

    (x, y), (xv, yv) = data
    num_classes = int(max(y.max(), yv.max())) + 1
    budget = recipe["budget_seconds"]
    keras.utils.set_random_seed(seed)
    try:
        from dlcourse.experiments import build_segmenter

        model = build_segmenter(method, num_classes, filters=recipe["filters"])
    except ImportError:  # the experiments module is newer than this checkout
        model = build_encoder_decoder(num_classes, filters=recipe["filters"], upsampling=method)
    model.compile(
        optimizer=keras.optimizers.Adam(recipe["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    )
    reached = {t: None for t in thresholds}
    history = {"train_seconds": [], "val_mean_iou": []}

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.start
            elapsed = (history["train_seconds"] or [0.0])[-1] + seconds
            probs = self.model.predict(xv, batch_size=128, verbose=0)
            score = mean_iou(yv, np.argmax(probs, axis=-1), num_classes)
            history["train_seconds"].append(round(elapsed, 2))
            history["val_mean_iou"].append(round(score, 4))
            for t in thresholds:
                if reached[t] is None and score >= t and elapsed <= budget:
                    reached[t] = {"seconds": round(elapsed, 2), "epoch": epoch + 1}
            if reached[max(thresholds)] is not None or elapsed >= budget:
                self.model.stop_training = True

    model.fit(
        x,
        y,
        batch_size=recipe["batch_size"],
        epochs=MAX_EPOCHS,
        shuffle=True,
        verbose=0,
        callbacks=[Evaluate()],
    )
    seconds = history["train_seconds"]
    per_epoch = np.diff([0.0, *seconds])
    return {
        "params": int(model.count_params()),
        "epochs": len(seconds),
        "train_seconds": seconds[-1],
        "first_epoch_seconds": round(float(per_epoch[0]), 2),  # includes tracing the step
        "seconds_per_epoch": round(
            float(np.median(per_epoch[1:] if len(per_epoch) > 1 else per_epoch)), 2
        ),
        "best_mean_iou": max(history["val_mean_iou"]),
        "reached": {str(t): reached[t] for t in thresholds},
        "history": history,
    }


def run(quick: bool = False, methods=None, seed: int = 42) -> dict:
    """Train each method within the budget; time and epochs to each threshold.

    Returns:
        ``{"recipe", "thresholds", "methods": {method: {"params", "epochs", "train_seconds",
        "seconds_per_epoch", "best_mean_iou", "reached": {"0.6": {"seconds", "epoch"} | None,
        ...}, "vs_fastest": {"0.6": ratio | None, ...}, "history"} | {"error"}}}``.
    """
    import dlcourse  # noqa: F401  (quiet TensorFlow import, registered layers)
    from dlcourse.data import make_scenes
    from dlcourse.models import UPSAMPLING_METHODS

    recipe = dict(RECIPES["quick" if quick else "full"])
    size = recipe["image_size"]
    train = make_scenes(recipe["n_train"], image_size=size, seed=seed)
    val = make_scenes(recipe["n_val"], image_size=size, seed=seed + 1)
    data = (
        (train.images, train.masks.astype(np.int32)),
        (val.images, val.masks.astype(np.int32)),
    )
    rows = {}
    for method in methods or UPSAMPLING_METHODS:
        try:
            rows[method] = _train_until(method, data, recipe, seed, THRESHOLDS)
        except Exception as exc:  # one broken method does not hide the others
            rows[method] = {"error": f"{type(exc).__name__}: {exc}"}
    for t in map(str, THRESHOLDS):
        times = [r["reached"][t]["seconds"] for r in rows.values() if r.get("reached", {}).get(t)]
        for row in rows.values():
            if "error" not in row:
                hit = row["reached"][t]
                row.setdefault("vs_fastest", {})[t] = (
                    round(hit["seconds"] / min(times), 2) if hit else None
                )
    recipe["filters"] = list(recipe["filters"])
    return {"recipe": recipe, "seed": seed, "thresholds": list(THRESHOLDS), "methods": rows}


def _reached(row: dict, t: str) -> str:
    hit = row["reached"][t]
    if hit is None:
        return "not reached"
    return f"{hit['seconds']:.1f} s (epoch {hit['epoch']}, ×{row['vs_fastest'][t]:.2f})"


def markdown(result: dict, machine: str) -> str:
    r = result["recipe"]
    thresholds = [str(t) for t in result["thresholds"]]
    lines = [
        f"{r['n_train']} train / {r['n_val']} validation scenes of {r['image_size']}×{r['image_size']}, "
        f"batch {r['batch_size']}, Adam {r['learning_rate']:g}, filters {tuple(r['filters'])}, "
        f"budget {r['budget_seconds']:.0f} s of training per method; seconds are training wall "
        f"time on {machine} (×: multiple of the fastest method to that threshold in this run).",
        "",
        "| method | params | first epoch s | s/epoch | "
        + " | ".join(f"to mIoU {t}" for t in thresholds)
        + " | best mIoU | epochs run |",
        "| --- | ---: | ---: | ---: | "
        + " | ".join("---" for _ in thresholds)
        + " | ---: | ---: |",
    ]
    for name, row in result["methods"].items():
        if "error" in row:
            lines.append(
                f"| {name} | failed: {row['error'][:120]} |" + " |" * (len(thresholds) + 4)
            )
            continue
        cells = " | ".join(_reached(row, t) for t in thresholds)
        lines.append(
            f"| {name} | {row['params']:,} | {row['first_epoch_seconds']:.1f} | "
            f"{row['seconds_per_epoch']:.2f} | {cells} | "
            f"{row['best_mean_iou']:.3f} | {row['epochs']} |"
        )
    return "\n".join(lines)


def headline(result: dict) -> list[tuple[str, str]]:
    rows = []
    for t in map(str, result["thresholds"]):
        hits = {
            m: r["reached"][t]["seconds"]
            for m, r in result["methods"].items()
            if "error" not in r and r["reached"][t]
        }
        missing = [m for m, r in result["methods"].items() if "error" in r or not r["reached"][t]]
        if hits:
            best = min(hits, key=hits.get)
            text = (
                f"fastest {best} {hits[best]:.0f} s; slowest ×{max(hits.values()) / hits[best]:.1f}"
            )
        else:
            text = "no method"
        if missing:
            text += f"; not reached: {', '.join(missing)}"
        rows.append((f"training time to validation mIoU {t}", text))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    parser.add_argument("--methods", nargs="*", default=None)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, args.methods), indent=2))


if __name__ == "__main__":
    main()
