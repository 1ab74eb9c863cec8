"""Benchmark: the share of a training epoch spent waiting on input.

One encoder–decoder (nearest upsampling, the lessons' model) trains one epoch at a time, fed three
ways with the same scenes and batch size:

- ``memory``: the batches already made, as tensors in memory (a ``tf.data`` dataset that only
  hands out ready batches): no input work at all, the reference;
- ``make_dataset``: ``dlcourse.data.make_dataset`` (shuffle, batch, prefetch), what lessons use
  with ``tf.data``;
- ``arrays``: ``model.fit(x, y, batch_size, shuffle=True)`` on NumPy arrays, what the lessons'
  ``train_segmenter`` does.

Epochs are timed round-robin (one of each in turn), best of ``repeats`` in wall time (on these
shared 2-core machines an epoch's wall time jumps between two modes, e.g. 2.8 s and 5.1 s for the
same work and CPU time: a median of a few can land the reference in the slow mode and give a
negative share, measured; the best of each way compares like with like) and median of ``repeats``
in CPU time; the input-wait share
of a way is ``1 - t_memory / t_way`` in wall time (0: input costs nothing; it can come out
slightly negative from noise), and the input's share of the CPU time the same way in process CPU
seconds (all threads): on a shared machine the wall-time share is noisy, the CPU share much less. Generating the scenes on the fly is measured too: seconds for ``make_scenes`` to make
one batch, against the seconds of one training step on it, and the share of an epoch it would
take if the two ran one after the other (an upper bound: ``tf.data`` could overlap them).

Run ``python -m benchmarks.bench_input [--quick]`` (prints JSON) or call ``run()``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

SIZES = {
    "full": {"image_size": 64, "n": 512, "batch_size": 32, "repeats": 4},
    "quick": {"image_size": 32, "n": 128, "batch_size": 16, "repeats": 2},
}
WAYS = ("memory", "make_dataset", "arrays")


def run(quick: bool = False, seed: int = 0) -> dict:
    """Epoch seconds per way of feeding, input-wait shares, on-the-fly generation cost.

    Returns:
        ``{"config", "epoch_seconds": {way: best}, "epoch_cpu_seconds": {way: median},
        "input_wait_share": {way: share}, "input_cpu_share": {way: share}, "generation":
        {"seconds_per_batch", "step_seconds", "share_if_serial"}}``.
    """
    from dlcourse.quiet import import_keras

    keras = import_keras()  # first: TensorFlow's import without its log lines
    import tensorflow as tf

    from dlcourse.data import make_dataset, make_scenes
    from dlcourse.models import build_encoder_decoder

    cfg = SIZES["quick" if quick else "full"]
    size, n, batch = cfg["image_size"], cfg["n"], cfg["batch_size"]
    scenes = make_scenes(n, image_size=size, seed=seed)
    x, y = scenes.images, scenes.masks.astype(np.int32)
    steps = n // batch
    ready = [(bx, by) for bx, by in make_dataset(scenes, "segmentation", batch_size=batch)]
    in_memory = tf.data.Dataset.from_tensor_slices(
        (tf.stack([b[0] for b in ready]), tf.stack([b[1] for b in ready]))
    )

    keras.utils.set_random_seed(seed)
    model = build_encoder_decoder(int(y.max()) + 1)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy())
    feeds = {
        "memory": lambda: model.fit(in_memory, epochs=1, verbose=0, shuffle=False),
        "make_dataset": lambda: model.fit(
            make_dataset(scenes, "segmentation", batch_size=batch, seed=seed),
            epochs=1,
            verbose=0,
            shuffle=False,
        ),
        "arrays": lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True),
    }
    for feed in feeds.values():
        feed()  # tracing (each way gives the step its own input signature)
    times = {way: [] for way in WAYS}
    cpu_times = {way: [] for way in WAYS}
    for _ in range(cfg["repeats"]):
        for way, feed in feeds.items():
            start, cpu = time.perf_counter(), time.process_time()
            feed()
            times[way].append(time.perf_counter() - start)
            cpu_times[way].append(time.process_time() - cpu)
    epoch = {way: float(np.min(t)) for way, t in times.items()}
    epoch_cpu = {way: float(np.median(t)) for way, t in cpu_times.items()}

    gen = []
    for i in range(max(3, cfg["repeats"])):
        start = time.perf_counter()
        make_scenes(batch, image_size=size, seed=seed + 1 + i)
        gen.append(time.perf_counter() - start)
    per_batch, step = min(gen), epoch["memory"] / steps
    return {
        "config": {**cfg, "steps_per_epoch": steps, "quick": quick},
        "epoch_seconds": {way: round(s, 4) for way, s in epoch.items()},
        "epoch_cpu_seconds": {way: round(s, 4) for way, s in epoch_cpu.items()},
        "input_wait_share": {
            way: round(1 - epoch["memory"] / epoch[way], 4) for way in WAYS if way != "memory"
        },
        "input_cpu_share": {
            way: round(1 - epoch_cpu["memory"] / epoch_cpu[way], 4)
            for way in WAYS
            if way != "memory"
        },
        "generation": {
            "seconds_per_batch": round(per_batch, 5),
            "step_seconds": round(step, 5),
            "share_if_serial": round(per_batch / (per_batch + step), 4),
        },
    }


def markdown(result: dict, machine: str) -> str:
    cfg, epoch, cpu = result["config"], result["epoch_seconds"], result["epoch_cpu_seconds"]
    lines = [
        f"One epoch ({cfg['steps_per_epoch']} steps, batch {cfg['batch_size']}, "
        f"{cfg['image_size']}×{cfg['image_size']}) of the nearest-upsampling encoder–decoder, "
        f"taken round-robin {cfg['repeats']} times: best wall time, median CPU time.",
        "",
        f"| fed from | epoch s ({machine}) | share of the epoch waiting on input | "
        "epoch CPU-s | input's share of CPU time |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| batches already in memory (reference) | {epoch['memory']:.2f} | 0 | "
        f"{cpu['memory']:.2f} | 0 |",
    ]
    labels = {"make_dataset": "`make_dataset` (tf.data)", "arrays": "NumPy arrays, `fit(x, y)`"}
    for way, label in labels.items():
        lines.append(
            f"| {label} | {epoch[way]:.2f} | {result['input_wait_share'][way]:.1%} | "
            f"{cpu[way]:.2f} | {result['input_cpu_share'][way]:.1%} |"
        )
    g = result["generation"]
    lines.append(
        f"| scenes generated on the fly, one batch before each step (estimate) | "
        f"{(g['seconds_per_batch'] + g['step_seconds']) * cfg['steps_per_epoch']:.2f} | "
        f"{g['share_if_serial']:.1%} | | |"
    )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()
