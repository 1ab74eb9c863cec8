"""``dlcourse grade``: every submission of some lessons, in parallel, into ``grades.csv``.

The batch always finishes: a submission that breaks anything gets a row with a status and a
reason (``autograde.STATUSES``), and an exception inside the grader itself becomes an ``error``
row too. Grades also go into nbgrader's gradebook, so ``nbgrader export`` and formgrader see them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import dataclasses
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from dlcourse.grading import autograde
from dlcourse.grading.autograde import Assignment, NotebookGrade, Options, worst
from dlcourse.grading.course import (
    Course,
    Submission,
    collect,
    find_submissions,
    lessons_dir,
    look_alikes,
)
from dlcourse.grading.sandbox import (
    Limits,
    SandboxConfig,
    package_dir,
    require_sandbox,
    slot_uid,
)
from dlcourse.grading.trusted import TrustedPool

TRUSTED_SLOT = 255
"""The sandbox user slot of the trusted interpreters (``slot_uid``; kernels use 0 … workers-1)."""
COLUMNS = ["student", "lesson", "score", "max_score", "status", "reason"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """A text field a spreadsheet shows as text: one that starts like a formula (``=``, ``+``,
    ``-``, ``@``, tab, carriage return) gets a leading ``'`` (OWASP's rule for CSV injection)."""
    return "'" + text if text.startswith(FORMULA_START) else text


@dataclasses.dataclass
class Row:
    student: str
    lesson: str
    score: float
    max_score: float
    status: str
    reason: str
    seconds: float = 0.0
    notebooks: list[NotebookGrade] = dataclasses.field(default_factory=list)

    def csv(self) -> dict:
        return {
            "student": csv_cell(self.student),
            "lesson": csv_cell(self.lesson),
            "score": f"{self.score:g}",
            "max_score": f"{self.max_score:g}",
            "status": self.status,
            "reason": csv_cell(self.reason),
        }


def _notebook_path(folder: Path, name: str, only_one: bool) -> tuple[Path | None, str | None]:
    """The submitted file for source notebook ``name`` (and its other name if renamed)."""
    exact = folder / name
    if exact.exists() or exact.is_symlink():
        return exact, None
    if only_one:
        found = [p for p in folder.glob("*.ipynb") if not p.name.startswith(".")]
        if len(found) == 1:
            return found[0], found[0].name
    return None, None


async def grade_submission(
    course: Course,
    assignment: Assignment,
    sub: Submission,
    options: Options,
    scratch: Path,
    defer=None,
) -> Row:
    start = time.monotonic()
    grades: list[NotebookGrade] = []
    only_one = len(assignment.sources) == 1
    outputs = {
        "autograded": course.autograded / sub.student / sub.assignment,
        "feedback": course.feedback / sub.student / sub.assignment,
        "defer": defer,
    }
    for name in assignment.sources:
        path, renamed = _notebook_path(sub.folder, name, only_one)
        try:
            grades.append(
                await autograde.grade_notebook(
                    assignment, name, path, sub.student, options, scratch, outputs, renamed
                )
            )
        except Exception as e:  # the batch goes on; the instructor sees what broke
            traceback.print_exc(file=sys.stderr)
            grades.append(
                NotebookGrade(
                    name,
                    0.0,
                    assignment.max_score(name),
                    "error",
                    [f"{name}: the grader failed ({type(e).__name__}: {e})"],
                )
            )
    reasons = [r for g in grades for r in g.reasons]
    status = worst(g.status for g in grades)
    if sub.look_alikes:
        reasons.append(
            f"student id {sub.student!r} differs from {', '.join(map(repr, sub.look_alikes))} "
            "only in case or Unicode form: graded apart, check they are different students"
        )
        status = worst([status, "flagged"])
    return Row(
        sub.student,
        sub.assignment,
        sum(g.score for g in grades),
        sum(g.max_score for g in grades),
        status,
        "; ".join(reasons),
        time.monotonic() - start,
        grades,
    )


async def _run(jobs, course, assignments, options, workers, progress) -> list[Row]:
    rows: list[Row] = []
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="dlcourse-grade-"))
    writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedback")
    written: list[concurrent.futures.Future] = []

    def defer(fn) -> None:
        written.append(writer.submit(fn))

    # Workers share the cores: each kernel's thread pools sized to its share (TensorFlow sizes
    # them to every core, and its threads spin while they wait), unless the grader's own
    # environment says otherwise
    share = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    threads = {
        name: share
        for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
        if workers > 1 and name not in os.environ
    } or None
    slots: asyncio.Queue[int] = asyncio.Queue()
    for slot in range(max(1, workers)):
        slots.put_nowait(slot)
    # one trusted interpreter per notebook, shared by the workers and kept for the batch: its
    # setup runs once, each submission gets a process forked from it (trusted.TrustedPool); as a
    # user of its own, which no kernel has
    (scratch / "trusted").mkdir()
    pool = TrustedPool(scratch / "trusted", uid=slot_uid(TRUSTED_SLOT))

    async def one(sub: Submission) -> Row:
        slot = await slots.get()  # at most `workers` at a time, each with its own sandbox user
        mine = dataclasses.replace(
            options,
            sandbox=dataclasses.replace(options.sandbox, uid=slot_uid(slot)),
            trusted=pool,
            kernel_env=threads,
        )
        try:
            row = await grade_submission(
                course, assignments[sub.assignment], sub, mine, scratch, defer
            )
        finally:
            slots.put_nowait(slot)
        rows.append(row)
        if progress:
            done, total = len(rows), len(jobs)
            elapsed = time.monotonic() - started
            eta = elapsed / done * (total - done)
            print(
                f"[{done}/{total}] {row.lesson} {row.student}: {row.score:g}/{row.max_score:g} "
                f"{row.status} ({row.seconds:.1f} s{f'; ~{eta:.0f} s left' if total > done else ''})",
                file=sys.stderr,
                flush=True,
            )
        return row

    try:
        await asyncio.gather(*(one(s) for s in jobs))
    finally:
        await pool.close()
        writer.shutdown(wait=True)
        shutil.rmtree(scratch, ignore_errors=True)
    for future in written:
        if future.exception() is not None:  # a file the instructor expects is missing: say so
            print(f"could not write feedback: {future.exception()!r}", file=sys.stderr)
    return sorted(rows, key=lambda r: (r.lesson, r.student))


def write_csv(course: Course, rows: list[Row]) -> None:
    """Write ``grades.csv``, keeping earlier rows of (student, lesson) pairs not graded now."""
    keep = []
    if course.grades_csv.exists():
        with course.grades_csv.open(newline="", encoding="utf-8") as f:
            graded = {(csv_cell(r.student), csv_cell(r.lesson)) for r in rows}
            keep = [
                r for r in csv.DictReader(f) if (r.get("student"), r.get("lesson")) not in graded
            ]
    all_rows = keep + [r.csv() for r in rows]
    all_rows.sort(key=lambda r: (r["lesson"], r["student"]))
    tmp = course.grades_csv.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(all_rows)
    tmp.replace(course.grades_csv)


def grade(
    course: Course,
    names: list[str] | None = None,
    *,
    timeout: float = 300.0,
    workers: int = 1,
    mode: str = "auto",
    allow_unsandboxed: bool = False,
    budget: float | None = None,
    limits: Limits | None = None,
    downloads: Path | None = None,
    progress: bool = True,
    feedback: bool = True,
    gradebook: bool = True,
    use_sandbox: bool = True,
) -> list[Row]:
    """Grade every submission of ``names`` (default: every assignment with submissions).

    Raises:
        SandboxUnavailable: no working sandbox and ``allow_unsandboxed`` is False.
        LookupError: a name matches no lesson or assignment.
    """
    from dlcourse.grading.release import refuse_autotests, release

    course.init()
    # use_sandbox=False is for measuring the sandbox's cost, not for grading students
    bwrap = require_sandbox(allow_unsandboxed) if use_sandbox else None
    if names:
        wanted = [course.resolve(n) for n in names]
    else:
        wanted = [a for a in course.assignments() if find_submissions(course, a)]
        if downloads is not None:
            wanted = wanted or course.assignments()
    for name in wanted:
        refuse_autotests(course, name)
        if not (course.release_dir / name).is_dir():
            for r in release(course, [name]):
                for problem in r.problems:
                    print(f"release {name}: {problem}", file=sys.stderr)
    if downloads is not None:
        collect(course, Path(downloads), wanted)
    # Solutions must stay out even where they lie inside what the sandbox binds (a package
    # installed with its lessons, a course folder inside the venv).
    hide = tuple(p for p in (course.root, lessons_dir()) if p is not None)
    hide += tuple(sorted(package_dir().rglob("*.ipynb")))
    sandbox = SandboxConfig(bwrap=bwrap, hide=hide, limits=limits or Limits())
    options = Options(sandbox=sandbox, timeout=timeout, budget=budget, mode=mode, feedback=feedback)
    assignments = {a: Assignment(a, course.notebooks(a), course.release_dir / a) for a in wanted}
    jobs = [s for a in wanted for s in find_submissions(course, a)]
    alike = look_alikes({s.student for s in jobs})
    for s in jobs:
        s.look_alikes = sorted(alike.get(s.student, []))
    rows = asyncio.run(_run(jobs, course, assignments, options, workers, progress))
    write_csv(course, rows)
    if gradebook and rows:
        from dlcourse.grading.gradebook import record

        problem = record(course, rows, assignments)
        if problem:
            print(f"gradebook: {problem}", file=sys.stderr)
    return rows
