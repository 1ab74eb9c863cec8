"""The ``dlcourse`` command: list and run the lessons; release, grade and check exercises."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_lessons(args) -> int:
    from dlcourse.course.runner import discover

    lessons = discover(args.lessons_dir)
    if not lessons:
        print(f"No lessons found in {args.lessons_dir or 'the lessons folder'}.")
        return 1
    width = max(len(lesson.name) for lesson in lessons)
    for lesson in lessons:
        print(f"{lesson.name:<{width}}  {lesson.title}")
        if lesson.idea:
            print(f"{'':<{width}}  lecture idea: {lesson.idea}")
    return 0


def _selected(command: str, args):
    """The lessons ``args`` name (all when none), or 2 after saying on stderr what was wrong."""
    from dlcourse.course.runner import select

    try:
        lessons = select(args.lessons, args.lessons_dir)
    except ValueError as exc:
        print(f"dlcourse {command}: {exc}", file=sys.stderr)
        return 2
    if not lessons:
        print(f"dlcourse {command}: no lessons found.", file=sys.stderr)
        return 2
    return lessons


def _expected_figures(args, lessons):
    """The figures table ``dlcourse run`` holds the lessons to: None (not checked) or the table."""
    from dlcourse.course import figures

    if args.no_figures:
        return None
    path = Path(args.figures) if args.figures else figures.figures_path(lessons[0].path.parent)
    if not path.is_file():
        if args.figures:
            raise figures.FiguresError(f"Expected a figures file. Received: {path} (not a file)")
        return None
    return figures.load(path)


def _cmd_run(args) -> int:
    from dlcourse.course.figures import FiguresError
    from dlcourse.course.runner import format_table, run

    lessons = _selected("run", args)
    if not isinstance(lessons, list):
        return lessons
    if args.threads is not None and args.threads < 1:
        print(f"dlcourse run: expected --threads ≥ 1. Received: {args.threads}", file=sys.stderr)
        return 2
    try:
        expected = _expected_figures(args, lessons)
    except FiguresError as exc:
        print(f"dlcourse run: {exc}", file=sys.stderr)
        return 2
    mode = "FAST" if args.fast else ("full" if args.fast is False else "environment's")
    print(
        f"Running {len(lessons)} lesson(s) in {mode} mode; executed copies go to {args.out}/",
        file=sys.stderr,
    )
    report = run(
        lessons,
        args.out,
        fast=args.fast,
        cell_timeout=args.cell_timeout,
        progress=not args.quiet,
        threads=args.threads,
        expected=expected,
    )
    print(format_table(report))
    print(f"\nResults: {Path(args.out) / 'results.json'}")
    regressed = [n for n, r in report["lessons"].items() if r["status"] == "regressed"]
    if regressed:
        print(
            f"Figures off their expected values (figures.toml) in: {', '.join(regressed)}. "
            "After an intended change: dlcourse figures update RUN_DIR (docs/figures.md)."
        )
    if args.readme:
        from dlcourse.course.runner import lesson_table, update_readme

        update_readme(args.readme, lesson_table(lessons, report))
        print(f"Lesson table written to {args.readme}")
    return 0 if all(r["status"] == "passed" for r in report["lessons"].values()) else 1


def _cmd_site(args) -> int:
    from dlcourse.course import site

    lessons = _selected("site", args)
    if not isinstance(lessons, list):
        return lessons
    try:
        result = site.build(
            lessons,
            args.out,
            fast=args.fast,
            run_dir=args.from_run,
            cell_timeout=args.cell_timeout,
            progress=not args.quiet,
        )
    except (site.SiteLeak, RuntimeError, FileNotFoundError, ModuleNotFoundError) as exc:
        print(f"dlcourse site: {exc}", file=sys.stderr)
        return 1
    print(
        f"Site of {result.lessons} lesson(s) built in {result.seconds:.0f} s "
        f"({result.bytes / 2**20:.1f} MB): {result.html_dir / 'index.html'}"
    )
    if result.failed:
        print(f"Lessons that failed (their pages show it): {', '.join(result.failed)}")
        return 1
    return 0


def _cmd_figures(args) -> int:
    from dlcourse.course import figures
    from dlcourse.course.runner import default_lessons_dir

    path = Path(args.file) if args.file else figures.figures_path(default_lessons_dir())
    floor = figures.FLOOR if args.floor is None else args.floor
    factor = figures.SPREAD_FACTOR if args.spread_factor is None else args.spread_factor
    try:
        runs = figures.read_runs(args.runs, args.lesson if args.action == "update" else None)
        table = figures.load(path) if path.is_file() else {}
        if args.action == "check":
            bad = 0
            for run in runs:
                for lesson, figs in run.lessons.items():
                    problems = figures.check(lesson, figs, table)
                    bad += bool(problems)
                    print(f"{run.source}: {lesson}: " + ("; ".join(problems) or "ok"))
            return 1 if bad else 0
        new = figures.update(
            table,
            runs,
            lessons=args.lesson,
            floor=floor,
            spread_factor=factor,
            widen=args.widen,
        )
    except figures.FiguresError as exc:
        print(f"dlcourse figures: {exc}", file=sys.stderr)
        return 2
    sources = [
        f"{run.source}: {run.environment.get('cpu', '?')}, "
        f"{run.environment.get('threads') or 'default'} threads, "
        f"tensorflow {run.environment.get('tensorflow', '?')}"
        for run in runs
    ]
    header = (
        figures.HEADER
        + f"Last update (--floor {floor:g} --spread-factor {factor:g}"
        + (" --widen" if args.widen else "")
        + ") from the runs:\n"
        + "\n".join(f"  {s}" for s in sources)
    )
    if args.widen and path.is_file():  # the machines the file already accepted stay on record
        earlier = figures.header_sources(path.read_text())
        header += "".join(f"\n  (earlier) {s}" for s in earlier if s not in sources)
    path.write_text(figures.dumps(new, header))
    changed = sorted(k for k in new if new[k] != table.get(k))
    print(f"{path}: {len(new)} lesson(s); updated: {', '.join(changed) or 'none'}")
    return 0


def _cmd_workspace(args) -> int:
    from dlcourse.course.workspace import write_workspace

    try:
        said = write_workspace(args.dir, args.lessons, force=args.force)
    except ValueError as exc:
        print(f"dlcourse workspace: {exc}", file=sys.stderr)
        return 2
    print("\n".join(said))
    print(f"Open them with: jupyter lab {args.dir}")
    return 0


def _cmd_cache(args) -> int:
    from dlcourse.training.experiments import cache_summary, clear_cache

    summary = cache_summary()
    print(
        f"{summary['folder']}: {summary['rows']} trained rows, {summary['models']} models, "
        f"{summary['bytes'] / 2**20:.1f} MB (lessons 05-06's comparison; $DLCOURSE_CACHE moves it)"
    )
    if args.clear:
        freed = clear_cache()
        print(f"cleared: {freed / 2**20:.1f} MB freed; lessons 05-06 train their rows again")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from dlcourse import __version__

    parser = argparse.ArgumentParser(
        prog="dlcourse",
        description="The dlcourse course: list and run the lessons; release, grade and check exercises.",
    )
    parser.add_argument("--version", action="version", version=f"dlcourse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("lessons", help="list the lessons and the lecture idea of each")
    p.add_argument(
        "--lessons-dir", default=None, help="folder of lesson notebooks (default: the course's)"
    )
    p.set_defaults(func=_cmd_lessons)

    p = sub.add_parser("run", help="execute lessons headless and print what each reached")
    p.add_argument(
        "lessons", nargs="*", metavar="LESSON", help="lesson number or name (default: all)"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--fast",
        dest="fast",
        action="store_true",
        default=None,
        help="FAST mode: small data and few epochs (CI, grading)",
    )
    mode.add_argument(
        "--full", dest="fast", action="store_false", help="full mode: full data and epochs"
    )
    p.add_argument(
        "--out", default="course-run", help="folder for executed notebooks and results.json"
    )
    p.add_argument(
        "--lessons-dir", default=None, help="folder of lesson notebooks (default: the course's)"
    )
    p.add_argument(
        "--cell-timeout", type=int, default=900, help="seconds one cell may run (default 900)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument(
        "--readme",
        default=None,
        metavar="README.md",
        help="also rewrite the lesson table between the markers of this README",
    )

    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="TensorFlow threads in each kernel (TF_NUM_INTRAOP/INTEROP_THREADS; default: one per core)",
    )
    figs = p.add_mutually_exclusive_group()
    figs.add_argument(
        "--figures",
        default=None,
        metavar="FILE",
        help="hold the figures to this file (default: figures.toml beside the lessons, if any)",
    )
    figs.add_argument(
        "--no-figures", action="store_true", help="do not check the figures against a file"
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "figures", help="check runs' figures against figures.toml, or update it from runs"
    )
    p.add_argument("action", choices=("check", "update"), help="check or update the file")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="`dlcourse run --out` folders")
    p.add_argument(
        "--file", default=None, help="the figures file (default: the lessons' figures.toml)"
    )
    p.add_argument(
        "--lesson",
        action="append",
        default=None,
        metavar="NAME",
        help="update only this lesson (full name, e.g. 04_naive_fcn; repeatable)",
    )
    p.add_argument(
        "--floor",
        type=float,
        default=None,
        help="smallest tolerance, absolute below 1 and relative above (default 0.02)",
    )
    p.add_argument(
        "--spread-factor",
        type=float,
        default=None,
        help="tolerance = this × (max - min over the runs), at least the floor (default 2)",
    )
    p.add_argument(
        "--widen",
        action="store_true",
        help="runs from another machine: keep what the file accepts and add what these runs need",
    )
    p.set_defaults(func=_cmd_figures)

    p = sub.add_parser("site", help="build the course website from the executed lessons")
    p.add_argument(
        "lessons", nargs="*", metavar="LESSON", help="lesson number or name (default: all)"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--fast", dest="fast", action="store_true", default=True, help="FAST mode (default)"
    )
    mode.add_argument("--full", dest="fast", action="store_false", help="full mode")
    p.add_argument(
        "--out", default="course-site", help="folder for the site (html/), default course-site"
    )
    p.add_argument(
        "--from-run",
        default=None,
        metavar="DIR",
        help="take the executed lessons from this `dlcourse run --out` folder instead of running them",
    )
    p.add_argument(
        "--lessons-dir", default=None, help="folder of lesson notebooks (default: the course's)"
    )
    p.add_argument(
        "--cell-timeout", type=int, default=900, help="seconds one cell may run (default 900)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=_cmd_site)

    p = sub.add_parser(
        "workspace", help="write student versions of the lessons (no solutions) into DIR"
    )
    p.add_argument("dir", metavar="DIR", help="the folder to write them into (created)")
    p.add_argument("lessons", nargs="*", help="lesson numbers or names (default: all)")
    p.add_argument("--force", action="store_true", help="replace notebooks that differ (your work)")
    p.set_defaults(func=_cmd_workspace)

    p = sub.add_parser("cache", help="show (or --clear) the trained rows lessons 05-06 share")
    p.add_argument("--clear", action="store_true", help="delete them (they are trained again)")
    p.set_defaults(func=_cmd_cache)

    try:
        from dlcourse.grading.cli import register
    except ModuleNotFoundError as exc:  # grading needs the 'instructor' extra (nbgrader)
        if exc.name not in {"nbgrader", "dlcourse.grading", "dlcourse.grading.cli"}:
            raise
        register = None
    if register is not None:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
