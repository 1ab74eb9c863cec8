"""The ``release``, ``grade`` and ``check`` subcommands of ``dlcourse``.

``dlcourse.course.cli`` calls :func:`register` with its subparsers; ``python -m dlcourse.grading.cli``
runs them on their own. Each command's function returns the exit code:

* ``release``: 0 clean, 1 something leaked or nbgrader failed, 2 bad arguments;
* ``grade``: 0 every submission graded normally, 1 some submission needs a look (status other
  than ``graded`` in grades.csv), 2 nothing could be graded (no sandbox, unknown lesson);
* ``check``: 0 every visible check passes, 1 one fails, 2 the file is not a notebook.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _course(args):
    from dlcourse.grading.course import Course

    return Course(Path(args.course))


def _no_nbgrader(e: ModuleNotFoundError) -> int:
    if e.name and e.name.split(".")[0] in ("nbgrader", "alembic", "sqlalchemy"):
        print(
            "error: this command needs nbgrader: pip install 'dlcourse[instructor]'",
            file=sys.stderr,
        )
        return 2
    raise e


def cmd_release(args) -> int:
    from dlcourse.grading.release import release

    try:
        results = release(_course(args), args.lessons or None)
    except ModuleNotFoundError as e:
        return _no_nbgrader(e)
    except LookupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in results:
        state = "ok" if r.ok else "PROBLEM"
        print(f"{r.assignment}: {state} -> {r.folder} ({', '.join(r.notebooks) or 'no notebooks'})")
        for problem in r.problems:
            print(f"  {problem}")
    if not results:
        print("nothing to release: no lessons found and no assignments in source/", file=sys.stderr)
        return 2
    return 0 if all(r.ok for r in results) else 1


def cmd_grade(args) -> int:
    from dlcourse.grading.grade import grade
    from dlcourse.grading.sandbox import GIB, Limits, SandboxUnavailable

    limits = Limits(memory=int(args.memory * GIB), cpu=int(args.cpu))
    course = _course(args)
    try:
        rows = grade(
            course,
            args.lessons or None,
            timeout=args.timeout,
            workers=args.workers,
            mode=args.cells,
            allow_unsandboxed=args.no_sandbox_i_accept_the_risk,
            budget=args.budget,
            limits=limits,
            downloads=args.from_folder,
            progress=not args.quiet,
        )
    except (SandboxUnavailable, LookupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        return _no_nbgrader(e)
    if not rows:
        print("no submissions found", file=sys.stderr)
        return 2
    look = [r for r in rows if r.status != "graded"]
    print(f"{len(rows)} submissions graded -> {course.grades_csv}; feedback in {course.feedback}")
    for r in look:
        print(
            f"  needs a look: {r.lesson} {r.student} {r.score:g}/{r.max_score:g} {r.status}: "
            f"{r.reason}"
        )
    return 1 if look else 0


def cmd_check(args) -> int:
    from dlcourse.grading.check import check
    from dlcourse.grading.nbformat_grading import InvalidNotebook

    try:
        report = check(args.notebook, timeout=args.timeout, mode=args.cells)
    except InvalidNotebook as e:
        print(f"error: {args.notebook}: {e}", file=sys.stderr)
        return 2
    for gid in report.passed:
        print(f"✔ {gid}")
    for gid, why in report.failed:
        print(f"✘ {gid}: {why}")
    for w in report.warnings:
        print(f"warning: {w}")
    total = len(report.passed) + len(report.failed)
    if total == 0:
        print("no checks found in this notebook")
    else:
        print(
            f"{len(report.passed)} of {total} checks pass ({report.points:g} of "
            f"{report.max_points:g} points); hidden tests run only when the notebook is graded"
        )
    return 0 if report.ok else 1


def register(subparsers) -> None:
    """Add ``release``, ``grade`` and ``check`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "release",
        help="make student versions of lessons (nbgrader) and check nothing leaked",
        description="Copy lessons into COURSE/source/, generate the student versions in "
        "COURSE/release/ with nbgrader, and check that no solution or hidden-test "
        "text reached them. LESSON: a course lesson (01, 01_image_classification, a "
        "path to a notebook) or an assignment folder of COURSE/source/. Default: all.",
    )
    p.add_argument("lessons", nargs="*", metavar="LESSON")
    p.add_argument("--course", required=True, metavar="DIR", help="the nbgrader course folder")
    p.set_defaults(func=cmd_release)

    p = subparsers.add_parser(
        "grade",
        help="autograde submissions in a sandbox; write grades.csv and feedback",
        description="Grade COURSE/submitted/<student>/<lesson>/ (or a folder of downloaded "
        "notebooks, --from) in FAST mode, each kernel in a bubblewrap sandbox. "
        "Writes COURSE/grades.csv, COURSE/autograded/ and COURSE/feedback/. "
        "Exit code 1 when a submission needs a look.",
    )
    p.add_argument(
        "lessons",
        nargs="*",
        metavar="LESSON",
        help="lessons to grade (default: every assignment with submissions)",
    )
    p.add_argument("--course", required=True, metavar="DIR")
    p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds one cell may run (default 300: a FAST lesson's longest training cell, on a busy machine)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="S",
        help="seconds one notebook may run in all (default max(600, 5 x timeout): 25 min)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="submissions graded in parallel (default 1)",
    )
    p.add_argument(
        "--cells",
        choices=["auto", "all", "exercises"],
        default="auto",
        help="exercises: only the setup and exercise cells (seconds per submission); all: the "
        "whole notebook, like nbgrader; auto (default): exercises for the course's lessons, "
        "all for other assignments",
    )
    p.add_argument(
        "--memory",
        type=float,
        default=4.0,
        metavar="GB",
        help="address-space limit of a kernel (default 4)",
    )
    p.add_argument(
        "--cpu",
        type=float,
        default=900,
        metavar="S",
        help="CPU-seconds limit of a kernel (default 900)",
    )
    p.add_argument(
        "--from",
        dest="from_folder",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="import downloaded notebooks (LMS, Colab) from FOLDER into submitted/",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--no-sandbox-i-accept-the-risk",
        action="store_true",
        help="grade without bubblewrap: student code can then read the solutions and "
        "the gradebook and use the network",
    )
    p.set_defaults(func=cmd_grade)

    p = subparsers.add_parser(
        "check",
        help="run a notebook's visible checks; exit 1 if one fails",
        description="Run NOTEBOOK top to bottom in FAST mode and report its checks, as a last "
        "look before submitting. Exit code 1 when a check fails.",
    )
    p.add_argument("notebook", type=Path, metavar="NOTEBOOK")
    p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds one cell may run (default 300)",
    )
    p.add_argument(
        "--cells",
        choices=["auto", "all", "exercises"],
        default="auto",
        help="what to run, as `dlcourse grade` does (auto: setup and exercise cells of a "
        "course lesson, every cell of other notebooks)",
    )
    p.set_defaults(func=cmd_check)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlcourse.grading.cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
