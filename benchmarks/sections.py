"""The benchmark sections, and the runner of one section in its own process.

``python -m benchmarks`` runs every section as ``python -m benchmarks.sections NAME --out DIR
--json FILE [--quick]``: a section that crashes, runs out of memory or hangs (it is killed at its
timeout) is reported as failed and the others still run, and each starts with a fresh TensorFlow
(no allocator pools or thread pools left over from the one before).

Every section is a function ``(quick, out) -> dict`` (JSON-serialisable). A section whose module
is not in this checkout yet raises :class:`SectionUnavailable` and is reported as such.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class SectionUnavailable(Exception):
    """The section's benchmark module is not there (yet): reported, not a failure."""


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    run: Callable[[bool, Path], dict]
    # seconds at full size (a quick run gets half): a guard against hangs, several times what a
    # section takes on a quiet machine, since a loaded one is slower
    timeout: float


def _call(module: str, quick: bool, **kwargs) -> dict:
    """``benchmarks.<module>.run(**kwargs)``, with ``quick=`` if its ``run`` takes it.

    The other arguments are passed as they are: if a module's ``run`` changes, the section fails
    with a TypeError that says so, rather than silently running at other sizes.
    """
    try:
        mod = importlib.import_module(f"benchmarks.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"benchmarks.{module}":
            raise SectionUnavailable(f"benchmarks/{module}.py is not in this checkout") from exc
        raise
    if "quick" in inspect.signature(mod.run).parameters:
        kwargs["quick"] = quick
    return mod.run(**kwargs)


def course_cache(out: Path) -> Path:
    """The course section's experiments cache: lessons 05–06's trained rows and models."""
    return out / "course-run" / "cache"


def _course(quick: bool, out: Path) -> dict:
    return _call("bench_course", quick, out=out / "course-run")


def _efficiency(quick: bool, out: Path) -> dict:
    return _call("bench_efficiency", quick)


def _quality(quick: bool, out: Path) -> dict:
    # Continue lessons 05-06's training where the course section of this run left it, if it ran
    # (``python -m benchmarks`` empties the folder first); otherwise train from scratch.
    from dlcourse.training.experiments import comparison_cache_dir

    cache = comparison_cache_dir(course_cache(out))  # where lessons 05-06 store their rows
    return _call("bench_quality", quick, continue_from=cache if cache.is_dir() else None)


def _peers(quick: bool, out: Path) -> dict:
    return _call("bench_peers", quick)


def _data(quick: bool, out: Path) -> dict:
    generation = _call("bench_data", quick, n=200 if quick else 2000, repeats=1 if quick else 3)
    return {"generation": generation, "input": _call("bench_input", quick)}


def _layers(quick: bool, out: Path) -> dict:
    if quick:
        return _call("bench_layers", quick, sizes=(32,), batch=8, repeats=3)
    return _call("bench_layers", quick)


def _grading(quick: bool, out: Path) -> dict:
    fixture = Path(__file__).resolve().parents[1] / "tests/fixtures/grading/00_fixture.ipynb"
    # A class of 2 x 8 submissions of a lesson as `dlcourse grade` grades it by default (setup and
    # exercise cells only), with 1 and with 2 workers: seconds and CPU seconds per submission, the
    # speed-up, and the speed-up predicted for an idle machine (bench_grading's docstring). The
    # batch's trusted interpreter runs the setup (a TensorFlow import) once, which a class of 8
    # per worker shares as a real class would (on an idle machine 2 x 4 gave x1.74, 2 x 8 x1.91).
    # nbgrader runs every cell of a lesson (minutes per submission), so the peer comparison uses the tests' tiny fixture lesson, every cell, where
    # both do the same work (best of 2: nbgrader's first run in a process pays its imports).
    lesson = _call(
        "bench_grading",
        quick,
        lesson=str(fixture) if quick else "01",
        submissions=16,
        repeats=1,
        cells="exercises",
        configs=("sandbox", "sandbox_w2"),
    )
    peer = _call(
        "bench_grading",
        quick,
        lesson=str(fixture),
        submissions=4,
        repeats=1 if quick else 2,
        cells="all",
        configs=("nbgrader", "sandbox"),
    )
    return {"lesson": lesson, "peer": peer}


SECTIONS = {
    s.name: s
    for s in (
        Section("course", "Course re-execution (every lesson, FAST mode)", _course, 1500),
        Section("efficiency", "Training efficiency against the machine's peak", _efficiency, 600),
        Section("quality", "Time to quality (validation mean IoU)", _quality, 900),
        # 6 x 120 CPU-s of training: 30 minutes were not enough at load average 10-18
        Section("peers", "Against the tutorials' segmentation models", _peers, 3600),
        Section("data", "Data: generation and input pipeline", _data, 300),
        Section("layers", "Layers: max pooling with switches + max unpooling", _layers, 400),
        Section("grading", "Grading", _grading, 900),
    )
}
"""Every section, in report order."""


def _error(exc: BaseException) -> dict:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": traceback.format_exc(limit=-8),
    }


def run_here(name: str, quick: bool, out: Path) -> dict:
    """Run one section in this process: ``{"status", "seconds", "result" | "error",
    "environment"}``; never raises for the section's own errors."""
    section = SECTIONS[name]
    start = time.perf_counter()
    try:
        result = {"status": "ok", "result": section.run(quick, Path(out))}
    except SectionUnavailable as exc:
        result = {
            "status": "unavailable",
            "error": {"type": "SectionUnavailable", "message": str(exc)},
        }
    except Exception as exc:  # a failed section is reported; the report goes on
        result = {"status": "failed", "error": _error(exc)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    try:
        from dlcourse.config import environment

        result["environment"] = environment()
    except Exception as exc:
        result["environment"] = {"error": _error(exc)}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Run one benchmark section (used by -m benchmarks)."
    )
    parser.add_argument("name", choices=list(SECTIONS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--json", type=Path, default=None, help="write the result here (default: stdout)"
    )
    args = parser.parse_args(argv)
    result = run_here(args.name, args.quick, args.out)
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
