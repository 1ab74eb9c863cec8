"""Benchmark: wall time of every lesson in FAST mode, and the total (what CI and a student wait for).

Runs the lessons exactly as ``dlcourse run --fast`` does (``dlcourse.course.runner.run``: one fresh
kernel per lesson, nbclient, the lesson's own assertions), so the seconds include the kernel start
and the TensorFlow import of each lesson. A lesson that fails is reported with its error and its
time until the failure; the others still run.

**Cold cache.** Lessons share trained results through ``dlcourse.training.experiments``' cache
(``$DLCOURSE_CACHE``, default ``~/.cache/dlcourse``): lesson 06 reuses what 05 trained, and a
second run of 05 on the same machine trains nothing. The run here points ``DLCOURSE_CACHE`` at an
emptied folder, ``<out>/cache``, so it measures what a student's first run and a fresh CI machine
see (later lessons still reuse what earlier lessons of the same run stored, as they do for the
student). The folder is kept: the quality section continues lessons 05–06's training from it.

Run ``python -m benchmarks.bench_course [--quick]`` (prints JSON; ``--quick`` runs the first
lesson only) or call ``run()``. ``DLCOURSE_LESSONS_DIR`` points it at another folder of lessons.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    from dlcourse.course.runner import run as run_lessons
    from dlcourse.course.runner import select

    chosen = select(lessons)
    if quick:
        chosen = chosen[:1]
    if not chosen:
        raise ValueError("Expected at least one lesson. Received: an empty lessons folder")
    saved = os.environ.get(CACHE_ENV)
    with tempfile.TemporaryDirectory(prefix="bench-course-") as tmp:
        cache = Path(out or tmp) / "cache"
        shutil.rmtree(cache, ignore_errors=True)  # cold: what a first run sees
        cache.mkdir(parents=True)
        os.environ[CACHE_ENV] = str(cache)  # the kernels inherit it
        try:
            report = run_lessons(chosen, Path(out or tmp), fast=True, progress=False)
        finally:
            if saved is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = saved
        rows = _rows(report, Path(out or tmp))
    return {**_summary(rows), "quick": quick}


def _rows(report: dict, run_dir: Path) -> dict:
    """Per lesson: status, seconds, error, time outside cells, the three slowest cells."""
    rows = {}
    for name, r in report["lessons"].items():
        executed = Path(r["executed"]) if r.get("executed") else None
        if executed is not None and not executed.exists():  # a run folder that was moved
            executed = run_dir / executed.name
        cells = cell_seconds(executed) if executed is not None and executed.exists() else []
        rows[name] = {
            "status": r["status"],
            "seconds": r["seconds"],
            "error": r["error"],
            # kernel start, TensorFlow import in the kernel, writing the notebook, ...
            "outside_cells_seconds": round(r["seconds"] - sum(c["seconds"] for c in cells), 1),
            "slowest_cells": sorted(cells, key=lambda c: -c["seconds"])[:3],
        }
    return rows


def _summary(rows: dict) -> dict:
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
    }


def from_run(run_dir) -> tuple[dict, dict, Path]:
    """``(result, environment, path)``: :func:`run`'s result, read from a ``dlcourse run --fast`` of every lesson instead of
    measured again (``python -m benchmarks --course-from RUN_DIR``): the README's first command
    already ran the whole course. Only a run that this benchmark would have made is accepted:
    FAST mode, every lesson of this checkout, an empty results cache at its start, the same
    lessons and ``dlcourse`` code (``source``), the default thread count and the same CPU model
    and core count; with the run's recorded environment and its ``results.json``.

    Raises:
        ValueError: the run is missing, unreadable or not such a run; the message says which
            condition failed and what was expected.
    """
    from dlcourse.course.runner import THREAD_VARIABLES, cpu_model, select, source_digest

    run_dir = Path(run_dir)
    path = run_dir / "results.json" if run_dir.is_dir() else run_dir
    try:
        report = json.loads(path.read_text())
        env, lessons = report["environment"], report["lessons"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"Expected the results.json of `dlcourse run --fast`. Received: {path} ({exc!r})"
        ) from None
    chosen = select(None)
    problems = []
    if env.get("fast") is not True:
        problems.append("it did not run in FAST mode (expected `dlcourse run --fast`)")
    missing = [lesson.name for lesson in chosen if lesson.name not in lessons]
    if missing:
        problems.append(f"it did not run {', '.join(missing)} (expected every lesson)")
    if env.get("cache") != "cold":
        problems.append(
            f"its results cache ({env.get('cache_dir', 'unknown')}) was "
            f"{env.get('cache', 'not recorded')} at the start (expected empty: a first run, "
            "e.g. DLCOURSE_CACHE=$(mktemp -d) dlcourse run --fast)"
        )
    if env.get("source") != source_digest(chosen):
        problems.append(
            "its lessons or dlcourse code differ from this checkout's (expected the same "
            "source digest)"
        )
    threads = os.environ.get(THREAD_VARIABLES[0])  # what a run started here would record
    if env.get("threads") != threads:
        problems.append(
            f"it ran with threads={env.get('threads')} (expected {threads}, as the benchmark "
            "would run it: drop --threads)"
        )
    machine = (cpu_model(), os.cpu_count())
    if (env.get("cpu"), env.get("cpu_count")) != machine:
        problems.append(
            f"it ran on {env.get('cpu')} with {env.get('cpu_count')} cores "
            f"(expected this machine: {machine[0]} with {machine[1]})"
        )
    if problems:
        raise ValueError(f"Cannot reuse {path} as the course section: " + "; ".join(problems))
    report = {**report, "lessons": {lesson.name: lessons[lesson.name] for lesson in chosen}}
    return {**_summary(_rows(report, path.parent)), "quick": False}, env, path


def _when(text: str):
    import datetime

    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


_TRAINING_CALLS = ("compare_upsampling(", "train_segmenter(", ".fit(", "fit(", ".predict(")


def _telling_line(source: str) -> str:
    """The line of a cell that says where its time goes: the first training/prediction call,
    else the first non-empty line."""
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    for call in _TRAINING_CALLS:
        for line in lines:
            if call in line and not line.startswith("#"):
                return line[:80]
    return lines[0][:80] if lines else ""


def cell_seconds(notebook) -> list[dict]:
    """``[{"cell", "seconds", "code"}]`` of each executed code cell, from nbclient's timing
    metadata (``execution``: ``iopub.execute_input`` to ``shell.execute_reply``); ``code`` is
    the line that says where its time goes (``_telling_line``)."""
    import nbformat

    cells = []
    for index, cell in enumerate(nbformat.read(notebook, as_version=4).cells):
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if cell.cell_type != "code" or not (start and end):
            continue
        seconds = (_when(end) - _when(start)).total_seconds()
        cells.append(
            {"cell": index, "seconds": round(seconds, 1), "code": _telling_line(cell.source)}
        )
    return cells


def _code(text: str) -> str:
    return "`" + text.replace("|", "/").replace("`", "'") + "`"


def markdown(result: dict, machine: str) -> str:
    """A table: lesson, status, seconds, share of the total, time outside cells, slowest cell."""
    total = result["total_seconds"] or 1.0
    lines = [
        "Each lesson in a fresh kernel as `dlcourse run --fast` runs it, with an empty results "
        "cache (a first run). Outside cells: kernel start and shutdown, writing the notebook.",
        "",
        f"| lesson | status | seconds ({machine}) | share of total | outside cells | "
        "slowest cell |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for name, row in result["lessons"].items():
        status = row["status"]
        if row.get("error"):
            err = row["error"]
            status += f" (cell {err.get('cell')}: {err.get('ename')})"
        cells = row.get("slowest_cells") or []
        top = f"{cells[0]['seconds']:.1f} s, cell {cells[0]['cell']}: {_code(cells[0]['code'])}"
        lines.append(
            f"| {name} | {status} | {row['seconds']:.1f} | {row['seconds'] / total:.0%} | "
            f"{row.get('outside_cells_seconds', float('nan')):.1f} | {top if cells else '—'} |"
        )
    lines.append(
        f"| **total** | {result['passed']}/{result['count']} passed | "
        f"**{result['total_seconds']:.1f}** | 100% | | |"
    )
    return "\n".join(lines)


def headline(result: dict) -> list[tuple[str, str]]:
    """``(figure, value)`` rows for the summary table."""
    slowest = result["slowest"]
    rows = [
        (
            f"all {result['count']} lessons, FAST mode ({result['passed']} passed)",
            f"{result['total_seconds']:.0f} s; slowest {slowest} "
            f"{result['lessons'][slowest]['seconds']:.0f} s",
        )
    ]
    cells = [
        (cell, name)
        for name, row in result["lessons"].items()
        for cell in row.get("slowest_cells", [])
    ]
    if cells:
        cell, name = max(cells, key=lambda c: c[0]["seconds"])
        rows.append(
            (
                "slowest cell of the course",
                f"{name} cell {cell['cell']}, {cell['seconds']:.0f} s: {_code(cell['code'])}",
            )
        )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the first lesson only")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("lessons", nargs="*")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick, args.out, args.lessons or None), indent=2))


if __name__ == "__main__":
    main()
