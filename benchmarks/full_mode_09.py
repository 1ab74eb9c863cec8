"""What lesson 09's full mode costs on this machine's CPU, without running it for hours.

Full mode trains lesson 09's two models (the encoder-decoder and the U-Net) on 3,680
photographs at 128x128 with filters 32/64/128/256, batch 32, for 30 epochs: a GPU job. This
times a few training steps of each, with the lesson's full-mode parameters on random data of the
same shape (a step's cost does not depend on the pixels), and extrapolates to the 30 epochs.
Not a section of ``python -m benchmarks``: run it on its own,

    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python -m benchmarks.full_mode_09

and it prints one JSON line per model. ``FULL`` is lesson 09's parameters cell with ``FAST``
off (``tests/test_benchmarks.py`` holds the two together).
"""

from __future__ import annotations

import argparse
import json
import math
import time

FULL = {"image_size": 128, "n_train": 3680, "filters": (32, 64, 128, 256), "batch_size": 32,
        "epochs": 30}  # fmt: skip


def measure(steps: int = 6, full: dict = FULL) -> list[dict]:
    import numpy as np

    import dlcourse

    dlcourse.register_keras_objects()  # and the quiet TensorFlow import
    import keras

    from dlcourse import models

    size, batch = full["image_size"], full["batch_size"]
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, size, size, 3), dtype=np.float32)
    y = rng.integers(0, 2, (batch * steps, size, size))
    steps_per_run = full["epochs"] * math.ceil(full["n_train"] / batch)
    rows = []
    for skips in (False, True):
        model = models.build_encoder_decoder(
            2, filters=full["filters"], upsampling="nearest", skips=skips,
            input_shape=(size, size, 3),
        )  # fmt: skip
        model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy())
        model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)  # traced here
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
        wall, cpu = (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps
        rows.append({
            "model": "U-Net" if skips else "encoder-decoder",
            "cpu_seconds_per_step": round(cpu, 3),
            "wall_seconds_per_step": round(wall, 3),
            "steps": steps_per_run,
            "cpu_hours": round(cpu * steps_per_run / 3600, 2),
            "wall_hours": round(wall * steps_per_run / 3600, 2),
        })  # fmt: skip
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.full_mode_09", description=__doc__)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model (default 6)")
    args = parser.parse_args(argv)
    for row in measure(args.steps):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
