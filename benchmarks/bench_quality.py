"""Benchmark: CPU training each upsampling method needs to reach a validation mean IoU.

Every method (the encoder–decoder of ``dlcourse.models`` with each of ``UPSAMPLING_METHODS``,
built as lessons 05–06 build it) trains from the same seed on the same generated scenes, with the
same recipe (Adam, batch, learning rate) and the same budget. The full run uses the lessons' own
comparison (``experiments.comparison_budget(fast=True)`` and ``experiments.comparison_data``: the
same scenes, object sizes, batch, Adam learning rate and filters; the training seed is the
lessons' first seed), so it answers what the lessons cannot in their few epochs: how long each
method takes to reach a quality on that very data. After every epoch the validation
mean IoU (``dlcourse.metrics.mean_iou`` of the argmax prediction) is computed outside the timed
part; the time to a threshold is the training time (evaluation excluded; the one-off tracing of
the training step in the first epoch included, as a student pays it too) at the end of the first
epoch that reached it. A method stops when it has reached the highest threshold or used its
budget; a threshold not reached within the budget is reported as ``None`` ("not reached").

**The budget is CPU seconds** (the process's, all threads), not wall seconds: on a shared machine
wall time stretches with the other work, CPU time much less, so the same methods reach the same
thresholds whatever the load (2 busy cores: 1 wall second ≈ 2 CPU seconds). Both are reported;
the multiples of the fastest method are taken on CPU seconds. A wall-time guard (``wall_guard``)
still bounds a method on a badly overloaded machine; a method it stopped says so. The epochs to a
threshold do not depend on the machine at all (training is deterministic for a thread count).

**Continuing the lessons' training.** Lessons 05–06 train every method for their epochs with
this very recipe (``experiments.train_segmenter``, which times each epoch's training and logs the
validation mean IoU), and ``compare_upsampling`` stores each trained model with its optimizer
state in the experiments cache. When ``python -m benchmarks`` ran the course section first,
``run(continue_from=<its cache>)`` takes those epochs as they were measured (seconds, CPU
seconds, validation mean IoU, in the lesson's kernel) and trains on from the saved model, instead
of repeating them (on 2026-12-06: 15 of the 106 epochs the five methods needed). What
differs from one uninterrupted run: the shuffles after the lessons' last epoch (seeded, but not
the ones a longer lesson would have drawn) and one more tracing of the training step, in the
first continued epoch (about 2–3 s, included). Without that cache (``--only quality``, ``--quick``, another recipe)
every method trains from scratch, compiled and seeded as the lessons do, so its first epochs
are the lesson's. Each method says which: ``lesson_epochs`` (the lessons' epochs, or 0).

Run ``python -m benchmarks.bench_quality [--quick]`` (prints JSON) or call ``run()``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

THRESHOLDS = (0.6, 0.8)
RECIPES = {
    # Lessons 05–06's comparison in FAST mode (image size, scenes, batch 16, Adam 3e-3, filters
    # 16/32/64: ``experiments.COMPARISON_BUDGETS["fast"]``); a threshold is checked after every
    # epoch (n_train / batch_size steps). At most 5 x 80 CPU-s (≈ 5 x 50 s on 2 quiet cores) of
    # training;
    # methods that reach 0.8 stop sooner (2026-12-06, idle 2-core Intel Xeon: epochs 12-44,
    # 10-27 s each). 64×64 scenes (1,600 train) took twice as long for the same finding.
    "full": {"budget_cpu_seconds": 80.0, "wall_guard": 100.0},
    "quick": {"image_size": 32, "n_train": 192, "n_val": 64, "batch_size": 16,
              "learning_rate": 3e-3, "filters": (16, 32, 64), "budget_cpu_seconds": 5.0,
              "wall_guard": 10.0},
}  # fmt: skip
MAX_EPOCHS = 1000  # the budget ends the run long before


def _recipe(quick: bool) -> dict:
    """The recipe of a run: the lessons' FAST comparison budget plus this benchmark's budget."""
    if quick:
        return dict(RECIPES["quick"])
    from dlcourse.training.experiments import comparison_budget

    lesson = comparison_budget(True)
    # the lessons' scenes (a cached row's key holds the data) and recipe
    keys = ("image_size", "size_range", "objects", "n_train", "n_val")
    keys += ("batch_size", "learning_rate", "filters")
    return {**{k: lesson[k] for k in keys}, **RECIPES["full"]}


def _build(method, num_classes, filters):
    try:
        from dlcourse.training.experiments import build_segmenter
    except ImportError:  # the experiments module is newer than this checkout
        from dlcourse.models import build_encoder_decoder

        return build_encoder_decoder(num_classes, filters=filters, upsampling=method)
    return build_segmenter(method, num_classes, filters=filters)


def _train_until(method, data, recipe, seed, thresholds, start=None) -> dict:
    """Train one method until it reaches the highest threshold or its budget.

    ``start``: ``(row, model)`` from ``experiments.cached_training`` -- a lesson's trained model
    and its per-epoch record; those epochs count as they were measured, then training goes on.
    """
    import keras

    from dlcourse.metrics import mean_iou

    (x, y), (xv, yv) = data
    num_classes = int(max(y.max(), yv.max())) + 1
    budget, guard = recipe["budget_cpu_seconds"], recipe["wall_guard"]
    reached = {t: None for t in thresholds}
    history = {"wall_seconds": [], "cpu_seconds": [], "val_mean_iou": []}
    stopped = {"by": "budget"}

    def record(epoch, wall, cpu, score) -> bool:
        """Add one epoch (cumulative seconds); True when training should stop."""
        history["wall_seconds"].append(round(wall, 2))
        history["cpu_seconds"].append(round(cpu, 2))
        history["val_mean_iou"].append(round(score, 4))
        for t in thresholds:
            if reached[t] is None and score >= t and cpu <= budget:
                reached[t] = {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                              "epoch": epoch + 1}  # fmt: skip
        if reached[max(thresholds)] is not None:
            stopped["by"] = "reached"
        elif wall >= guard and cpu < budget:
            stopped["by"] = "wall guard"
        return reached[max(thresholds)] is not None or cpu >= budget or wall >= guard

    done, first_epoch = False, 0
    if start is not None:
        row, model = start
        h = row["history"]
        walls, cpus = np.cumsum(h["epoch_seconds"]), np.cumsum(h["epoch_cpu_seconds"])
        for epoch, (wall, cpu, score) in enumerate(
            zip(walls, cpus, h["val_mean_iou"], strict=True)
        ):
            done = record(epoch, float(wall), float(cpu), float(score))
            if done:
                break
        first_epoch = len(h["loss"])
    else:
        keras.utils.set_random_seed(seed)
        model = _build(method, num_classes, tuple(recipe["filters"]))
        # the lessons' compilation (experiments.train_segmenter): no compiled metric
        model.compile(
            optimizer=keras.optimizers.Adam(recipe["learning_rate"]),
            loss=keras.losses.SparseCategoricalCrossentropy(),
        )

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.wall, self.cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            wall = (history["wall_seconds"] or [0.0])[-1] + time.perf_counter() - self.wall
            cpu = (history["cpu_seconds"] or [0.0])[-1] + time.process_time() - self.cpu
            probs = self.model.predict(xv, batch_size=128, verbose=0)
            score = mean_iou(yv, np.argmax(probs, axis=-1), num_classes)
            if record(epoch, wall, cpu, score):
                self.model.stop_training = True

    if not done:
        keras.utils.set_random_seed(seed + first_epoch)  # the continued shuffles, reproducible
        model.fit(
            x,
            y,
            batch_size=recipe["batch_size"],
            epochs=MAX_EPOCHS,
            initial_epoch=first_epoch,
            shuffle=True,
            verbose=0,
            callbacks=[Evaluate()],
        )
    walls = history["wall_seconds"]
    per_epoch = np.diff([0.0, *walls])
    return {
        "params": int(model.count_params()),
        "epochs": len(walls),
        "train_seconds": walls[-1],
        "train_cpu_seconds": history["cpu_seconds"][-1],
        "cores_busy": round(history["cpu_seconds"][-1] / walls[-1], 2),
        "first_epoch_seconds": round(float(per_epoch[0]), 2),  # includes tracing the step
        "seconds_per_epoch": round(
            float(np.median(per_epoch[1:] if len(per_epoch) > 1 else per_epoch)), 2
        ),
        "best_mean_iou": max(history["val_mean_iou"]),
        "stopped_by": stopped["by"],
        "reached": {str(t): reached[t] for t in thresholds},
        "history": history,
        "lesson_epochs": first_epoch,  # epochs read from lessons 05-06's training (0: none)
    }


def run(quick: bool = False, methods=None, seed: int | None = None, continue_from=None) -> dict:
    """Train each method within the budget; time and epochs to each threshold.

    ``seed``: the training seed (initial weights, shuffles); default the first of the lessons'
    ``seeds`` (``experiments.comparison_budget(True)["seeds"][0]``), whose trained models the
    lessons store. The scenes are always the lessons' (``comparison_data``'s own data seed).
    ``continue_from``: an experiments cache (the course section's) holding lessons 05–06's
    trained models; a method found there starts from the lesson's epochs (see the module
    docstring). Ignored with ``quick`` (other sizes than the lessons').

    Returns:
        ``{"recipe", "thresholds", "methods": {method: {"params", "epochs", "train_seconds",
        "train_cpu_seconds", "cores_busy", "first_epoch_seconds", "seconds_per_epoch",
        "best_mean_iou", "stopped_by", "reached": {"0.6": {"seconds", "cpu_seconds", "epoch"} |
        None, ...}, "vs_fastest": {"0.6": ratio | None, ...}, "history"} | {"error"}}}``.
    """
    import dlcourse

    dlcourse.register_keras_objects()  # and the quiet TensorFlow import
    from dlcourse.models import UPSAMPLING_METHODS
    from dlcourse.training.experiments import comparison_budget, comparison_data

    budget = comparison_budget(True)  # the lessons' FAST comparison
    if seed is None:  # the lessons train seeds 0, 1, 2 (not the data seed): continue the first
        seed = int(budget["seeds"][0])
    recipe = _recipe(quick)
    train, val = comparison_data(recipe)  # the lessons' scenes: comparison_data's data seed
    data = (
        (train.images, train.masks.astype(np.int32)),
        (val.images, val.masks.astype(np.int32)),
    )
    continuing = continue_from is not None and not quick
    if continuing:
        from dlcourse.training.experiments import cached_training

        lesson = {k: budget[k] for k in ("epochs", "batch_size", "learning_rate", "filters")}
    rows = {}
    for method in methods or UPSAMPLING_METHODS:
        try:
            start = None
            if continuing:  # rows of older code have other keys: none lacks the epoch timings
                start = cached_training(
                    method, data[0], data[1], cache_dir=continue_from, seed=seed, **lesson
                )
            rows[method] = _train_until(method, data, recipe, seed, THRESHOLDS, start)
        except Exception as exc:  # one broken method does not hide the others
            rows[method] = {"error": f"{type(exc).__name__}: {exc}"}
    for t in map(str, THRESHOLDS):
        times = [
            r["reached"][t]["cpu_seconds"] for r in rows.values() if r.get("reached", {}).get(t)
        ]
        for row in rows.values():
            if "error" not in row:
                hit = row["reached"][t]
                row.setdefault("vs_fastest", {})[t] = (
                    round(hit["cpu_seconds"] / min(times), 2) if hit else None
                )
    recipe["filters"] = list(recipe["filters"])
    return {"recipe": recipe, "seed": seed, "thresholds": list(THRESHOLDS), "methods": rows}


def _reached(row: dict, t: str) -> str:
    hit = row["reached"][t]
    if hit is None:
        return "not reached" + (" (wall guard)" if row["stopped_by"] == "wall guard" else "")
    return (
        f"{hit['seconds']:.1f} s / {hit['cpu_seconds']:.0f} CPU-s "
        f"(epoch {hit['epoch']}, ×{row['vs_fastest'][t]:.2f})"
    )


def _continued(result: dict) -> str:
    """Where the first epochs came from, for the table's preamble."""
    rows = [r for r in result["methods"].values() if "error" not in r]
    counts = sorted({r.get("lesson_epochs", 0) for r in rows})
    if counts == [0] or not rows:
        return ""
    if len(counts) == 1:
        return (
            f": epochs 1–{counts[0]} are the lessons' own, measured in the course section, "
            "and training went on from their saved models"
        )
    return ": some methods go on from the lessons' saved models (their first epochs measured there)"


def markdown(result: dict, machine: str) -> str:
    r = result["recipe"]
    thresholds = [str(t) for t in result["thresholds"]]
    lines = [
        f"{r['n_train']} train / {r['n_val']} validation {r['image_size']}×{r['image_size']} "
        "scenes (lessons 05–06's comparison data in FAST mode, trained past their epochs"
        + _continued(result)
        + "), "
        f"batch {r['batch_size']}, Adam {r['learning_rate']:g}, filters "
        f"{tuple(r['filters'])}, same seed; budget {r['budget_cpu_seconds']:.0f} CPU-seconds of "
        f"training per method. Time to a threshold: wall seconds / CPU seconds of training on "
        f"{machine} (first epoch's tracing included, evaluation excluded); ×: multiple of the "
        "fastest method's CPU seconds in this run; epochs do not depend on the machine.",
        "",
        "| method | params | first epoch s | s/epoch | cores busy | "
        + " | ".join(f"to mIoU {t}" for t in thresholds)
        + " | best mIoU | epochs run |",
        "| --- | ---: | ---: | ---: | ---: | "
        + " | ".join("---" for _ in thresholds)
        + " | ---: | ---: |",
    ]
    for name, row in result["methods"].items():
        if "error" in row:
            lines.append(
                f"| {name} | failed: {row['error'][:120]} |" + " |" * (len(thresholds) + 5)
            )
            continue
        cells = " | ".join(_reached(row, t) for t in thresholds)
        lines.append(
            f"| {name} | {row['params']:,} | {row['first_epoch_seconds']:.1f} | "
            f"{row['seconds_per_epoch']:.2f} | {row['cores_busy']:.1f} | {cells} | "
            f"{row['best_mean_iou']:.3f} | {row['epochs']} |"
        )
    return "\n".join(lines)


def headline(result: dict) -> list[tuple[str, str]]:
    rows = []
    for t in map(str, result["thresholds"]):
        hits = {
            m: r["reached"][t]
            for m, r in result["methods"].items()
            if "error" not in r and r["reached"][t]
        }
        missing = [m for m, r in result["methods"].items() if "error" in r or not r["reached"][t]]
        if hits:
            best = min(hits, key=lambda m: hits[m]["cpu_seconds"])
            slowest = max(h["cpu_seconds"] for h in hits.values()) / hits[best]["cpu_seconds"]
            text = (
                f"fastest {best}: {hits[best]['seconds']:.0f} s ({hits[best]['cpu_seconds']:.0f} "
                f"CPU-s, epoch {hits[best]['epoch']}); slowest ×{slowest:.1f}"
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
