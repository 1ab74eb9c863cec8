"""Benchmark: wall time of every lesson in FAST mode, and the total (what CI and a student wait for).

Runs the lessons exactly as ``dlcourse run --fast`` does (``dlcourse.runner.run``: one fresh
kernel per lesson, nbclient, the lesson's own assertions), so the seconds include the kernel start
and the TensorFlow import of each lesson. A lesson that fails is reported with its error and its
time until the failure; the others still run.

**Cold cache.** Lessons share trained results through ``dlcourse.experiments``' cache
(``$DLCOURSE_CACHE``, default ``~/.cache/dlcourse``): lesson 06 reuses what 05 trained, and a
second run of 05 on the same machine trains nothing. The run here points ``DLCOURSE_CACHE`` at a
new empty folder, so it measures what a student's first run and a fresh CI machine see (later
lessons still reuse what earlier lessons of the same run stored, as they do for the student).

Run ``python -m benchmarks.bench_course [--quick]`` (prints JSON; ``--quick`` runs the first
lesson only) or call ``run()``. ``DLCOURSE_LESSONS_DIR`` points it at another folder of lessons.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

CACHE_ENV = "DLCOURSE_CACHE"


def run(quick: bool = False, out=None, lessons=None) -> dict:
    """Run the lessons in FAST mode; seconds per lesson, total, slowest.

    Args:
        quick: run only the first lesson.
        out: folder for the executed notebooks and ``results.json``; default a temporary one.
        lessons: names/numbers as ``dlcourse run`` takes them; default every lesson.

    Returns:
        ``{"lessons": {name: {"status", "seconds", "error"}}, "total_seconds", "passed",
        "count", "slowest", "environment"}``.
    """
    from dlcourse.runner import run as run_lessons
    from dlcourse.runner import select

    chosen = select(lessons)
    if quick:
        chosen = chosen[:1]
    if not chosen:
        raise ValueError("Expected at least one lesson. Received: an empty lessons folder")
    saved = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory(prefix="bench-course-") as tmp:
        os.environ[CACHE_ENV] = str(Path(tmp) / "cache")  # the kernels inherit it
        try:
            report = run_lessons(chosen, Path(out or tmp), fast=True, progress=False)
        finally:
            if saved is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = saved
    rows = {
        name: {"status": r["status"], "seconds": r["seconds"], "error": r["error"]}
        for name, r in report["lessons"].items()
    }
    total = round(sum(r["seconds"] for r in rows.values()), 1)
    slowest = max(rows, key=lambda name: rows[name]["seconds"])
    return {
        "fast": True,
        "cache": "cold",
        "lessons": rows,
        "count": len(rows),
        "passed": sum(r["status"] == "passed" for r in rows.values()),
        "total_seconds": total,
        "slowest": slowest,
        "quick": quick,
    }


def markdown(result: dict, machine: str) -> str:
    """A table: lesson, status, seconds, share of the total."""
    total = result["total_seconds"] or 1.0
    lines = [
        "Each lesson in a fresh kernel as `dlcourse run --fast` runs it (kernel start and "
        "TensorFlow import included), with an empty results cache (a first run).",
        "",
        f"| lesson | status | seconds ({machine}) | share of total |",
        "| --- | --- | ---: | ---: |",
    ]
    for name, row in result["lessons"].items():
        status = row["status"]
        if row.get("error"):
            err = row["error"]
            status += f" (cell {err.get('cell')}: {err.get('ename')})"
        lines.append(f"| {name} | {status} | {row['seconds']:.1f} | {row['seconds'] / total:.0%} |")
    lines.append(
        f"| **total** | {result['passed']}/{result['count']} passed | "
        f"**{result['total_seconds']:.1f}** | 100% |"
    )
    return "\n".join(lines)


def headline(result: dict) -> list[tuple[str, str]]:
    """``(figure, value)`` rows for the summary table."""
    slowest = result["slowest"]
    return [
        (
            f"all {result['count']} lessons, FAST mode ({result['passed']} passed)",
            f"{result['total_seconds']:.0f} s; slowest {slowest} "
            f"{result['lessons'][slowest]['seconds']:.0f} s",
        )
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the first lesson only")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("lessons", nargs="*")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, args.out, args.lessons or None), indent=2))


if __name__ == "__main__":
    main()
