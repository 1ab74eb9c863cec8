"""``python -m benchmarks``: how fast the course runs, against the machine's limit and its peers.

Sections (``--only`` picks some, in this order):

- ``course``: wall seconds of every lesson in FAST mode and the total (``dlcourse run --fast``);
- ``efficiency``: a training step's achieved FLOP/s ÷ the machine's peak (matmul, convolution);
- ``quality``: seconds of training for each upsampling method to reach validation mIoU 0.6 / 0.8;
- ``peers``: the course's U-Net against the segmentation models of the TensorFlow, keras.io and
  *Deep Learning with Python* tutorials (as published and with BatchNorm momentum 0.9): time to
  validation mIoU 0.8 and the best mIoU in 120 CPU-seconds, as multiples of the course's;
- ``data``: scenes generated per second; share of a training epoch waiting on input;
- ``layers``: max pooling with switches + max unpooling against TensorFlow's own ops;
- ``grading``: seconds per submission, speed-up with 2 workers, sandbox overhead.

Each section runs in its own process (``benchmarks.sections``) with a timeout; one that fails or
times out is reported with its error and the others still run. The report (``report.json``,
``report.md``, one log per section) is rewritten after every section, so an interrupted run keeps
what it measured. ``--readme README.md`` rewrites the README's block between
``<!-- benchmarks:start -->`` and ``<!-- benchmarks:end -->``.

Full run: 13.4 minutes on a 2-core Intel Xeon with 9 lessons (2026-12-01 14:51, peak matmul 302
GFLOP/s; course 566 s, layers 58 s, grading 53 s, quality 45 s, data 44 s, efficiency 36 s). At
14:30, in a slow phase of the host (237 GFLOP/s), 17.1 minutes: course 660 s, and quality 151 s,
trained from scratch because it looked for the lessons' models one folder too high (fixed since).
Before the quality section continued the lessons' training it took 136 s, and grading took 76 s
with 4 submissions (15.3 minutes at 12:45). The course section grows by each new lesson's FAST
time. ``--quick``: tiny sizes, a smoke run of the
machinery (its figures mean nothing; 2–3 minutes on a quiet machine, most of it the first lesson).
``--render`` rewrites ``report.md`` (and ``--readme``) from ``report.json`` without measuring;
``--render --merge DIR...`` makes one report of several ``--only`` runs' folders (each section
keeps its own run's command, date and load).

``--course-from RUN_DIR`` takes the course section from a ``dlcourse run --fast`` folder (the
README's first command) instead of running every lesson again; ``bench_course.from_run`` accepts
only a run this benchmark would have made (every lesson, this checkout's code, an empty results
cache at its start, default threads, this CPU), and the report says the section was reused.

The peers section trains 6 models for at least 120 CPU-seconds each, longer where the course's
model needs more than that to reach the threshold (``bench_peers``): 9 minutes of the 20.5 on the
2-core Intel Xeon (2026-12-06), 38 minutes on a 2-core AMD EPYC whose peak is 2.4x lower
(2026-12-07; the course section took 13 minutes there). So the whole run stays above 15 minutes
on 2 cores even with ``--course-from``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import report as reporting
from benchmarks.sections import SECTIONS, course_cache

ROOT = Path(__file__).resolve().parents[1]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_section(name: str, quick: bool, out: Path, timeout: float) -> dict:
    """Run one section in a child process; ``{"status", "wall_seconds", "result" | "error",
    "environment", "load_average_before/after", "log"}``."""
    out = out.resolve()
    (out / "sections").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    result_file, log = out / "sections" / f"{name}.json", out / "logs" / f"{name}.log"
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.sections", name, "--out", str(out)]
    cmd += ["--json", str(result_file)] + (["--quick"] if quick else [])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("MPLBACKEND", "Agg")
    load_before = reporting.load_average()
    start = time.perf_counter()
    with open(log, "w") as log_file:
        # Its own session, so that a timeout ends the section's kernels and workers too.
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    wall = round(time.perf_counter() - start, 1)
    if code is None:
        entry = {
            "status": "failed",
            "error": {"type": "Timeout", "message": f"killed after {timeout:.0f} s"},
        }
    elif result_file.exists():
        entry = json.loads(result_file.read_text())
    else:
        entry = {
            "status": "failed",
            "error": {"type": "ProcessError", "message": f"exit code {code}: {_tail(log, 5)}"},
        }
    entry.update(
        wall_seconds=wall,
        load_average_before=load_before,
        load_average_after=reporting.load_average(),
        log=str(log.relative_to(out)),
    )
    return entry


def _parse_only(text: str | None) -> list[str]:
    if not text:
        return list(SECTIONS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"Expected sections from {', '.join(SECTIONS)}. Received: --only {text}"
        )
    return [n for n in SECTIONS if n in names]  # report order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure how fast the course runs; write report.json and report.md.",
    )
    parser.add_argument(
        "--only", type=_parse_only, default=list(SECTIONS), metavar="SECTION[,SECTION]",
        help=f"sections to run, comma-separated: {', '.join(SECTIONS)} (default: all)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a 1–2 minute smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument(
        "--readme", type=Path, default=None,
        help="rewrite this README's block between <!-- benchmarks:start/end --> markers",
    )  # fmt: skip
    parser.add_argument(
        "--render", action="store_true",
        help="measure nothing: rewrite report.md (and --readme) from OUT/report.json",
    )  # fmt: skip
    parser.add_argument(
        "--merge", type=Path, nargs="+", default=None, metavar="DIR",
        help="with --render: one report from the report.json of several runs' --out folders "
        "(each section keeps its run's command, date and load)",
    )  # fmt: skip
    parser.add_argument(
        "--course-from", type=Path, default=None, metavar="RUN_DIR",
        help="take the course section from this `dlcourse run --fast` folder instead of running "
        "every lesson again (only a cold-cache run of this checkout on this machine is accepted)",
    )  # fmt: skip
    parser.add_argument(
        "--timeout-factor", type=float, default=1.0,
        help="scale every section's timeout (full run: course 1500 s, quality 900 s, ...)",
    )  # fmt: skip
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    out = args.out.resolve()
    if args.merge and not args.render:
        build_parser().error("--merge works with --render (it measures nothing)")
    if args.render:
        if args.merge:
            report = reporting.merge(
                [json.loads((d / "report.json").read_text()) for d in args.merge]
            )
        else:
            report = json.loads((out / "report.json").read_text())
        reporting.write(report, out)
        return _finish(report, out, args.readme)
    reused = None
    if args.course_from is not None:
        if "course" not in args.only:
            build_parser().error(
                "--course-from replaces the course section, which --only leaves out"
            )
        try:
            reused = reuse_course(args.course_from)
        except ValueError as exc:
            build_parser().error(str(exc))
    out.mkdir(parents=True, exist_ok=True)
    # Only this run's course section may leave lessons 05-06's trained models for the quality
    # section to continue (with --only quality, the quality section trains from scratch).
    shutil.rmtree(course_cache(out), ignore_errors=True)
    report = {
        "command": shlex.join(["python", "-m", "benchmarks", *argv]),
        "quick": args.quick,
        "machine": reporting.machine(),
        "environment": None,
        "sections": {},
    }
    start = time.perf_counter()
    for name in args.only:
        timeout = SECTIONS[name].timeout * (0.5 if args.quick else 1.0) * args.timeout_factor
        if name == "course" and reused is not None:
            print(f"[course] reused from {args.course_from}", file=sys.stderr, flush=True)
            entry = reused
            _copy_comparison_cache(reused, out)
        else:
            print(f"[{name}] running (timeout {timeout:.0f} s) ...", file=sys.stderr, flush=True)
            entry = run_section(name, args.quick, out, timeout)
        if report["environment"] is None and "error" not in entry.get("environment", {"error": 1}):
            report["environment"] = entry["environment"]
        report["sections"][name] = entry
        report["wall_seconds"] = round(time.perf_counter() - start, 1)
        reporting.write(report, out)
        print(f"[{name}] {entry['status']} in {entry['wall_seconds']:.0f} s", file=sys.stderr)
    report["machine"]["load_average_end"] = reporting.load_average()
    reporting.write(report, out)
    return _finish(report, out, args.readme)


def reuse_course(run_dir: Path) -> dict:
    """The course section's entry from a ``dlcourse run --fast`` folder
    (``bench_course.from_run`` checks that it is the run this benchmark would have made).
    Its wall seconds are the lessons' seconds in that run; its heading names that run.

    Raises:
        ValueError: the folder is not such a run (the message says why).
    """
    from benchmarks.bench_course import from_run

    result, env, path = from_run(run_dir)
    return {
        "status": "ok",
        "result": result,
        "seconds": result["total_seconds"],
        "environment": {k: v for k, v in env.items() if k not in ("source", "started")},
        "wall_seconds": result["total_seconds"],
        "reused": str(path.resolve()),
        "run": {
            "command": f"dlcourse run --fast (reused: --course-from {run_dir})",
            "date": env["started"],
            "load_average_start": env["load_average_start"],
            "quick": False,
        },
    }


def _copy_comparison_cache(entry: dict, out: Path) -> None:
    """Lessons 05–06's trained rows and models of the reused run, where the quality section
    continues them (it trains from scratch if they are gone)."""
    from dlcourse.config import comparison_cache_dir  # no TensorFlow in this process

    source = comparison_cache_dir(entry["environment"]["cache_dir"])
    if source.is_dir():
        shutil.copytree(source, comparison_cache_dir(course_cache(out)), dirs_exist_ok=True)


def _finish(report: dict, out: Path, readme: Path | None) -> int:
    print(reporting.summary_markdown(report))
    print(f"\nReport: {out / 'report.md'} and {out / 'report.json'}")
    if readme:
        reporting.update_readme(readme, reporting.readme_block(report))
        print(f"Benchmark block written to {readme}")
    return 1 if any(e["status"] == "failed" for e in report["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
