"""Benchmark: max pooling with switches + max unpooling, forward and backward, time and peak memory.

Three ways to pool 2×2 and unpool again, each as one ``tf.function`` computing
``d/dx sum(unpool(pool(x)) * w)`` (graph mode without XLA, as Keras trains on a CPU):

- ``dlcourse``: ``MaxPoolingWithArgmax2D`` + ``MaxUnpooling2D`` (``keras.ops`` only);
- ``tf_native``: ``tf.nn.max_pool_with_argmax(include_batch_in_index=True)`` + ``tf.scatter_nd``,
  the composition SegNet ports use (``tf.nn.max_pool_with_argmax`` cannot be compiled by XLA);
- ``pool_upsample``: ``MaxPooling2D`` + ``UpSampling2D``, no switches at all (a lower bound).

Batch 32, 64 channels, 64×64 and 256×256 by default. Times are medians over repeats taken
round-robin (one step of each variant in turn), so a change of load on the shared machine hits all
variants alike; wall time and process CPU time (all threads) are both reported, and the ratios to
``dlcourse`` are the numbers to compare (a ratio > 1 means dlcourse is faster or smaller). Peak
memory is what TensorFlow's CPU allocator holds at most during one step beyond the input and the
upstream gradient (its own statistics: the process's resident size cannot show it, because the
default oneDNN allocator pools freed memory).

Run ``python -m benchmarks.bench_layers`` (prints JSON; ``--sizes 64 --repeats 5`` for a quick
run) or call ``run()`` (returns a dict).
"""

from __future__ import annotations

import argparse
import json
import os
import platform

VARIANTS = ("dlcourse", "tf_native", "pool_upsample")


def _step(variant: str):
    """A tf.function ``(x, w) -> (loss, d loss / d x)`` for one variant."""
    import keras
    import tensorflow as tf

    from dlcourse import layers

    if variant == "dlcourse":
        pool, unpool = layers.MaxPoolingWithArgmax2D(2), layers.MaxUnpooling2D(2)

        def forward(x):
            pooled, switches = pool(x)
            return unpool([pooled, switches])

    elif variant == "tf_native":

        def forward(x):
            pooled, argmax = tf.nn.max_pool_with_argmax(
                x, 2, 2, "VALID", include_batch_in_index=True
            )
            flat = tf.scatter_nd(
                tf.reshape(argmax, [-1, 1]),
                tf.reshape(pooled, [-1]),
                tf.cast([tf.size(x)], tf.int64),
            )
            return tf.reshape(flat, tf.shape(x))

    elif variant == "pool_upsample":
        pool, upsample = keras.layers.MaxPooling2D(2), keras.layers.UpSampling2D(2)

        def forward(x):
            return upsample(pool(x))

    else:
        raise ValueError(f"Expected a variant in {VARIANTS}. Received: {variant!r}")

    @tf.function(jit_compile=False)
    def step(x, w):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(forward(x) * w)
        return loss, tape.gradient(loss, x)

    return step


def _inputs(batch: int, size: int, channels: int):
    import tensorflow as tf

    gen = tf.random.Generator.from_seed(0)
    shape = (batch, size, size, channels)
    return gen.normal(shape), gen.normal(shape)


def _run_once(step, x, w) -> tuple[float, float]:
    from dlcourse.metrics import time_call

    _, wall, cpu = time_call(lambda: step(x, w)[1].numpy())
    return wall, cpu


def _check_same_gradients(steps, x, w) -> bool:
    """The two switch-based variants must compute the same gradient (x is random: no ties)."""
    import numpy as np

    a = steps["dlcourse"](x, w)[1].numpy()
    b = steps["tf_native"](x, w)[1].numpy()
    return bool(np.array_equal(a, b))


def _allocator_stats():
    """TensorFlow's CPU allocator statistics, or None where it keeps none.

    The default oneDNN CPU allocator keeps them (and pools freed memory, so the process's resident
    size would not show a step's peak); with ``TF_ENABLE_ONEDNN_OPTS=0`` they are unavailable.
    """
    import tensorflow as tf

    try:
        return tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:
        return None


def _measured_step(step, x, w) -> tuple[float, float, float | None]:
    """Wall seconds, CPU seconds and peak extra MiB (allocator) of one step."""
    import tensorflow as tf

    before = _allocator_stats()
    if before is not None:
        tf.config.experimental.reset_memory_stats("CPU:0")
    wall, cpu = _run_once(step, x, w)
    if before is None:
        return wall, cpu, None
    peak = _allocator_stats()["peak"]
    return wall, cpu, (peak - before["current"]) / 2**20


def time_variants(size: int, batch: int = 32, channels: int = 64, repeats: int = 5) -> dict:
    """Median wall seconds, CPU seconds and peak memory of a forward+backward step, per variant."""
    import numpy as np

    from dlcourse.quiet import import_keras

    import_keras()

    x, w = _inputs(batch, size, channels)
    steps = {v: _step(v) for v in VARIANTS}
    for step in steps.values():
        _run_once(step, x, w)  # trace and warm up
    same = _check_same_gradients(steps, x, w)
    samples = {v: [] for v in VARIANTS}
    for _ in range(repeats):
        for variant, step in steps.items():  # round-robin: load changes hit every variant
            samples[variant].append(_measured_step(step, x, w))
    result = {"size": size, "repeats": repeats, "same_gradient_as_tf_native": same}
    for variant in VARIANTS:
        walls, cpus, peaks = zip(*samples[variant], strict=True)
        result[variant] = {
            "wall_s": round(float(np.median(walls)), 4),
            "cpu_s": round(float(np.median(cpus)), 4),
            # The peak depends on the order the executor runs independent ops in: median.
            "peak_extra_mb": None if peaks[0] is None else round(float(np.median(peaks)), 1),
        }
    result["input_mb"] = round(batch * size * size * channels * 4 / 2**20, 1)
    return result


def run(
    sizes=(64, 256),
    batch: int = 32,
    channels: int = 64,
    repeats: int | None = None,
    memory: bool = True,
) -> dict:
    """Time and measure the memory of every variant at every size; ratios are to dlcourse.

    Returns:
        ``{"config": ..., "environment": ..., "results": [{"size", "<variant>": {"wall_s",
        "cpu_s", "peak_extra_mb"}, "ratios": {"tf_native / dlcourse": {...}, ...}}]}``.
    """
    from dlcourse.quiet import import_keras

    import_keras()  # TensorFlow without its log lines
    import tensorflow as tf

    load_before = os.getloadavg()
    results = []
    for size in sizes:
        reps = repeats if repeats is not None else (9 if size <= 64 else 3)
        entry = time_variants(size, batch, channels, reps)
        entry["ratios"] = {
            f"{variant} / dlcourse": {
                key: round(entry[variant][key] / entry["dlcourse"][key], 2)
                for key in entry["dlcourse"]
                if entry["dlcourse"][key] and entry[variant][key] is not None
            }
            for variant in VARIANTS[1:]
        }
        results.append(entry)
    return {
        "config": {"batch": batch, "channels": channels, "pool": 2, "sizes": list(sizes)},
        "environment": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "cpu_count": os.cpu_count(),
            "load_average_before": [round(v, 1) for v in load_before],
            "load_average_after": [round(v, 1) for v in os.getloadavg()],
        },
        "results": results,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.sizes, args.batch, args.channels, args.repeats), indent=2))


if __name__ == "__main__":
    main()
