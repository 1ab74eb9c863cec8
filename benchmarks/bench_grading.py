"""Grading speed: dlcourse grade (sandboxed, unsandboxed, --workers 2) against nbgrader autograde.

For a lesson, builds a course with N submissions (half the solved notebook, half the untouched
student version), then grades the same submissions with

* ``nbgrader``    -- plain ``nbgrader autograde``, in-process through nbgrader's API, one student
  after the other (what formgrader does); its per-cell timeout raised to ours;
* ``sandbox``     -- ``dlcourse grade``, each kernel in bubblewrap (the default);
* ``no_sandbox``  -- ``dlcourse grade`` with the same launcher and limits but no bubblewrap;
* ``sandbox_w2``  -- ``dlcourse grade --workers 2``;

all in FAST mode, each in a fresh copy of the course, repeated and interleaved (the machine is
shared: load changes from minute to minute), timing the whole call in wall seconds and, where a
cgroup can be made, in CPU seconds of everything involved (grader, kernels, sandboxes), which
other people's jobs barely change. ``dlcourse grade`` includes its feedback HTML and gradebook
writes; ``nbgrader autograde`` writes no feedback.

The speed-up of ``--workers 2`` is measured in wall seconds, which only mean something on a quiet
machine, and also *predicted* from what a loaded machine cannot distort much:

* the CPU seconds per submission of each configuration, and the part of them spent in the
  grader's own process (one process: its work cannot be spread over workers, the serial part of
  Amdahl's law; ``serial_fraction``);
* the parallelism each configuration asks for: every 50 ms, the number of its threads that are
  runnable (running or waiting for a core); on an idle 2-core machine a phase with ``r``
  runnable threads runs at ``min(r, 2)`` cores. A fair scheduler gives each runnable thread the
  same share of a loaded machine, so the quiet-machine wall time is
  ``CPU seconds / mean(min(r, 2))`` over the samples with ``r >= 1``, plus the samples where
  nothing was runnable (waiting, e.g. for a socket). ``predicted_speedup_workers_2`` is the ratio
  of the two configurations' predicted times.

    python -m benchmarks.bench_grading [--lesson 01] [--submissions 4] [--repeats 2]
                                       [--cells all|exercises] [--out results.json]
    # the --workers 2 speed-up, 2 x 8 submissions of lesson 01 (what the benchmark section runs):
    python -m benchmarks.bench_grading --lesson 01 --submissions 16 --repeats 1 \\
        --cells exercises --configs sandbox,sandbox_w2
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import nbformat

from dlcourse.grading import nbformat_grading as fmt
from dlcourse.grading.course import Course
from dlcourse.grading.grade import grade
from dlcourse.grading.release import nbgrader_api, release

FIXTURE = (
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "grading" / "00_fixture.ipynb"
)
CONFIGS = ("nbgrader", "sandbox", "no_sandbox", "sandbox_w2")


def build_course(root: Path, lesson: str, submissions: int) -> tuple[Course, str]:
    course = Course(root)
    (released,) = release(course, [lesson])
    if not released.ok:
        raise RuntimeError(f"release of {lesson} failed: {released.problems}")
    name = released.assignment
    source = nbformat.read(course.source / name / f"{name}.ipynb", as_version=4)
    student = nbformat.read(course.release_dir / name / f"{name}.ipynb", as_version=4)
    answers = {
        fmt.nbgrader_meta(c)["grade_id"]: c.source
        for c in source.cells
        if fmt.role(c) == "solution"
    }
    solved = copy.deepcopy(student)
    for cell in solved.cells:
        if fmt.role(cell) == "solution":
            cell.source = answers[fmt.nbgrader_meta(cell)["grade_id"]]
    for i in range(submissions):
        folder = course.submitted / f"student{i:02d}" / name
        folder.mkdir(parents=True)
        nbformat.write(solved if i % 2 == 0 else student, folder / f"{name}.ipynb")
    return course, name


def time_nbgrader(course: Course, name: str, timeout: float) -> tuple[float, dict]:
    api = nbgrader_api(course)
    api.config.Execute.timeout = int(timeout)
    api.config.ExecutePreprocessor.timeout = int(timeout)
    students = sorted(p.name for p in course.submitted.iterdir())
    start = time.perf_counter()
    ok = {}
    for student in students:
        ok[student] = bool(api.autograde(name, student, force=True, create=True).get("success"))
    seconds = time.perf_counter() - start
    scores = {}
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, "dlcourse") as gb:
        for student in students:
            try:
                scores[student] = gb.find_submission(name, student).score if ok[student] else None
            except Exception:
                scores[student] = None
    return seconds, scores


def time_dlcourse(
    course: Course, name: str, timeout: float, cells: str, *, sandbox: bool, workers: int
) -> tuple[float, dict]:
    os.environ.pop("NBGRADER_EXECUTION", None)
    start = time.perf_counter()
    rows = grade(
        course,
        [name],
        timeout=timeout,
        workers=workers,
        mode=cells,
        progress=False,
        use_sandbox=sandbox,
        allow_unsandboxed=not sandbox,
    )
    return time.perf_counter() - start, {r.student: r.score for r in rows}


class CpuMeter:
    """CPU seconds used by this process and everything it starts (kernels, sandboxes, even those
    killed before being waited for), read from a cgroup of its own. Other people's jobs on a
    shared machine change this far less than wall time. ``seconds()`` is None where no cgroup can
    be made (not root, read-only cgroup file system)."""

    def __init__(self):
        self.usage = None
        name = f"bench-grading-{os.getpid()}"
        for root, usage, scale in (
            ("/sys/fs/cgroup/cpuacct", "cpuacct.usage", 1e-9),
            ("/sys/fs/cgroup", "cpu.stat", 1e-6),
        ):
            own = Path(root, name)
            try:
                own.mkdir(exist_ok=True)
                (own / "cgroup.procs").write_text(str(os.getpid()))
            except OSError:
                continue
            self.usage, self.scale, self.own = own / usage, scale, own
            self.home = Path(root, "cgroup.procs")
            break

    def seconds(self) -> float | None:
        if self.usage is None:
            return None
        text = self.usage.read_text()
        if self.usage.name == "cpu.stat":
            text = next(x for x in text.splitlines() if x.startswith("usage_usec")).split()[1]
        return int(text) * self.scale

    def close(self) -> None:
        if self.usage is not None:
            try:
                self.home.write_text(str(os.getpid()))
                self.own.rmdir()
            except OSError:
                pass


def load() -> float:
    return os.getloadavg()[0]


class Demand:
    """Samples, every ``interval`` seconds while a configuration runs, how many threads of the
    benchmark's cgroup are runnable (state R: running, or waiting for a core), and the machine's
    1-minute load average. Runs on a thread of its own, whose CPU time is kept apart
    (``cpu_seconds``) so that it can be taken off the grader's."""

    def __init__(self, meter: CpuMeter, interval: float = 0.05):
        self.tasks = None
        if meter.usage is not None:  # cgroup v1 lists threads in "tasks", v2 in "cgroup.threads"
            found = [meter.own / n for n in ("tasks", "cgroup.threads")]
            self.tasks = next((f for f in found if f.exists()), None)
        self.interval = interval
        self.samples: list[int] = []
        self.loads: list[float] = []
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="demand")

    def __enter__(self) -> Demand:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_native_id()
        next_load = 0.0
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            if now >= next_load:
                self.loads.append(load())
                next_load = now + 5
            if self.tasks is None:
                continue
            runnable = 0
            try:
                tids = self.tasks.read_text().split()
            except OSError:
                continue
            for tid in tids:
                if int(tid) == me:
                    continue
                try:
                    with open(f"/proc/{tid}/stat", "rb") as f:
                        state = f.read().rsplit(b")", 1)[1].split(None, 1)[0]
                except (OSError, IndexError):
                    continue
                runnable += state == b"R"
            self.samples.append(runnable)
        self.cpu_seconds = time.thread_time()

    def quiet_seconds(self, cpu_seconds: float, cores: int) -> float | None:
        """Predicted wall seconds on an idle machine with ``cores`` cores (see the module's
        docstring): CPU seconds over the mean busy parallelism, plus the idle samples."""
        busy = [min(r, cores) for r in self.samples if r > 0]
        if not busy or cpu_seconds is None:
            return None
        idle = (len(self.samples) - len(busy)) * self.interval
        return cpu_seconds / (sum(busy) / len(busy)) + idle

    def summary(self, cores: int) -> dict:
        busy = [min(r, cores) for r in self.samples if r > 0]
        return {
            "samples": len(self.samples),
            "busy_parallelism": round(sum(busy) / len(busy), 3) if busy else None,
            "idle_share": round(1 - len(busy) / len(self.samples), 3) if self.samples else None,
            "load_average": [round(x, 2) for x in self.loads],
        }


def _grader_cpu() -> float:
    """CPU seconds of the grader's own process (all its threads; not the kernels)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _ratio(per: dict, a: str, b: str) -> float | None:
    return per[a] / per[b] - 1 if a in per and b in per else None


def run(
    lesson: str = "01",
    submissions: int = 4,
    repeats: int = 2,
    cells: str = "all",
    timeout: float = 600.0,
    configs=CONFIGS,
) -> dict:
    """Time every configuration ``repeats`` times, interleaved; the best per submission.

    The best, not the median: the first run of a configuration pays cold caches (nbgrader's first
    run took 2.8 s per submission against 1.0 s for its second, measured) and a shared machine's
    slow spells only ever add time.
    """
    meter = CpuMeter()
    cores = os.cpu_count() or 1
    times: dict[str, list[float]] = {c: [] for c in configs}
    cpu: dict[str, list[float]] = {c: [] for c in configs}
    grader_cpu: dict[str, list[float]] = {c: [] for c in configs}
    quiet: dict[str, list[float]] = {c: [] for c in configs}
    demand: dict[str, list[dict]] = {c: [] for c in configs}
    scores: dict[str, dict] = {}
    loads = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
            template, name = build_course(Path(tmp, "template"), lesson, submissions)
            for rep in range(repeats):
                order = list(configs) if rep % 2 == 0 else list(reversed(configs))
                for config in order:
                    root = Path(tmp, f"{config}-{rep}")
                    shutil.copytree(template.root, root)
                    course = Course(root)
                    loads.append(load())
                    cpu_start, own_start = meter.seconds(), _grader_cpu()
                    with Demand(meter) as sampled:
                        if config == "nbgrader":
                            seconds, got = time_nbgrader(course, name, timeout)
                        else:
                            seconds, got = time_dlcourse(
                                course,
                                name,
                                timeout,
                                cells,
                                sandbox=config != "no_sandbox",
                                workers=2 if config.endswith("_w2") else 1,
                            )
                    own = _grader_cpu() - own_start - sampled.cpu_seconds
                    times[config].append(seconds / submissions)
                    grader_cpu[config].append(own / submissions)
                    if cpu_start is not None:
                        used_cpu = meter.seconds() - cpu_start - sampled.cpu_seconds
                        cpu[config].append(used_cpu / submissions)
                        predicted = sampled.quiet_seconds(used_cpu, cores)
                        if predicted is not None:
                            quiet[config].append(predicted / submissions)
                    demand[config].append(sampled.summary(cores))
                    scores[config] = got
                    used = f"{cpu[config][-1]:6.2f}" if cpu[config] else "   n/a"
                    print(
                        f"{config:>11} rep {rep}: {seconds / submissions:6.2f} s, {used} CPU s "
                        f"({own / submissions:.2f} in the grader's process) per submission; "
                        f"load {loads[-1]:.1f}, parallelism "
                        f"{demand[config][-1]['busy_parallelism']}",
                        flush=True,
                    )
    finally:
        meter.close()
    per = {c: min(v) for c, v in times.items()}
    per_cpu = {c: min(v) for c, v in cpu.items() if v}
    per_grader = {c: min(v) for c, v in grader_cpu.items() if v}
    per_quiet = {c: min(v) for c, v in quiet.items() if v}
    serial = {c: per_grader[c] / per_cpu[c] for c in per_cpu if c in per_grader and per_cpu[c]}
    return {
        "lesson": name,
        "submissions": submissions,
        "repeats": repeats,
        "cells": cells,
        "seconds_per_submission": per,
        "cpu_seconds_per_submission": per_cpu,
        "sandbox_overhead": _ratio(per, "sandbox", "no_sandbox"),
        "sandbox_overhead_cpu": _ratio(per_cpu, "sandbox", "no_sandbox"),
        "overhead_vs_nbgrader": _ratio(per, "sandbox", "nbgrader"),
        "overhead_vs_nbgrader_cpu": _ratio(per_cpu, "sandbox", "nbgrader"),
        "speedup_workers_2": per["sandbox"] / per["sandbox_w2"]
        if "sandbox" in per and "sandbox_w2" in per
        else None,
        # 2 x the ratio of CPU seconds per submission: the speed-up if one worker kept one core
        # busy and two kept two
        # CPU seconds per submission of the grader's own process (the serial part) and their
        # share of all CPU seconds; Amdahl's law for 2 workers with that share as the serial
        # part (pessimistic: the grader's work overlaps the kernels')
        "grader_cpu_seconds_per_submission": per_grader,
        "serial_fraction": serial,
        "amdahl_bound_workers_2": 1 / (serial["sandbox_w2"] + (1 - serial["sandbox_w2"]) / 2)
        if "sandbox_w2" in serial
        else None,
        # predicted seconds per submission on an idle machine of this many cores (Demand)
        "predicted_quiet_seconds_per_submission": per_quiet,
        "predicted_speedup_workers_2": per_quiet["sandbox"] / per_quiet["sandbox_w2"]
        if "sandbox" in per_quiet and "sandbox_w2" in per_quiet
        else None,
        "speedup_workers_2_cpu_ceiling": per_cpu["sandbox"] / per_cpu["sandbox_w2"] * 2
        if "sandbox" in per_cpu and "sandbox_w2" in per_cpu
        else None,
        "demand": demand,
        "all_runs": times,
        "all_runs_cpu": cpu,
        "scores": scores,
        "load_average": [round(x, 2) for x in loads],
        "cpu_count": os.cpu_count(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lesson",
        default="01",
        help="lesson name/number, a notebook path, or 'fixture' (the tests' one)",
    )
    parser.add_argument("--submissions", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cells", choices=["all", "exercises"], default="all")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    lesson = str(FIXTURE) if args.lesson == "fixture" else args.lesson
    result = run(
        lesson,
        args.submissions,
        args.repeats,
        args.cells,
        args.timeout,
        tuple(args.configs.split(",")),
    )
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
