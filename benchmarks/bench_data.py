"""Benchmark: how many scenes per second ``dlcourse.data.make_scenes`` generates.

Run ``python -m benchmarks.bench_data`` (prints JSON) or call ``run()`` (returns a dict). The
generator is single-threaded NumPy; the thread settings are reported because BLAS could use more
threads for the background's small matrix product. On a shared machine wall time depends on the
load, so both wall-clock and CPU-time rates are reported (the CPU-time rate is the one to compare).
"""

from __future__ import annotations

import json
import os
import platform
import time

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _rate(n: int, image_size: int, repeats: int) -> dict:
    from dlcourse.data import make_scenes

    make_scenes(min(n, 50), image_size=image_size)  # warm the template and matrix caches
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        make_scenes(n, image_size=image_size, seed=len(walls))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "image_size": image_size,
        "scenes": n,
        "repeats": repeats,
        "scenes_per_second_wall": round(n / min(walls), 1),
        "scenes_per_second_cpu": round(n / min(cpus), 1),
    }


def run(n: int = 2000, repeats: int = 3) -> dict:
    """Measure scenes/s at 64×64 (n scenes) and 128×128 (n / 4 scenes), best of `repeats`.

    Returns:
        A JSON-serialisable dict: ``{"name", "results": [...], "threads": {...}, ...}``.
    """
    import numpy as np

    from dlcourse.course.runner import load_average

    results = [_rate(n, 64, repeats), _rate(max(n // 4, 1), 128, repeats)]
    return {
        "name": "data.make_scenes",
        "settings": "defaults: objects (1, 3), 3 classes, texture, noise 0.08",
        "results": results,
        "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "cpu_count": os.cpu_count(),
        "load_average": load_average(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
