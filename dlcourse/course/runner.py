"""Run the course's lessons headless and collect what each one reached.

``dlcourse run`` executes each lesson notebook with nbclient in a fresh kernel (the current
Python's ``python3`` kernel, working directory = the lessons folder), writes the executed copy and
``results.json`` to the output folder, and returns a table: status, wall seconds and the figures the
lesson published with ``dlcourse.course.results.record``. A failing lesson is reported with the failing
cell; the remaining lessons still run. The kernels draw with matplotlib's inline backend, so the
executed copies keep every figure (``dlcourse site`` publishes them).

The kernel process's own standard error (TensorFlow's C-level log lines, the kernel's start-up
warnings, a crash message) goes to ``<out>/<lesson>.kernel.log``, not to the terminal, so the
runner's output is its table; a lesson whose kernel died points at that log.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlcourse.course.figures import Table
from dlcourse.course.figures import check as check_figures
from dlcourse.course.readme import replace_block
from dlcourse.course.results import RESULTS_FILE_ENV

LESSONS_DIR_ENV = "DLCOURSE_LESSONS_DIR"
# TensorFlow reads these when it creates its thread pools (figures differ slightly between thread counts)
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
_LESSON_FILE = re.compile(r"^(\d\d)_([a-z0-9_]+)\.ipynb$")


@dataclass(frozen=True)
class Lesson:
    """One lesson notebook: ``number`` "01", ``name`` "01_image_classification"."""

    number: str
    name: str
    title: str
    idea: str
    path: Path


@dataclass
class LessonResult:
    """What running one lesson gave."""

    status: str  # "passed" | "failed" (a cell failed) | "regressed" (a figure broke figures.toml)
    seconds: float
    figures: dict = field(default_factory=dict)
    error: dict | None = None  # {"cell": index, "ename": ..., "evalue": ...}
    executed: str | None = None  # path of the executed copy
    figure_problems: list[str] = field(default_factory=list)  # against the expected figures


def default_lessons_dir() -> Path:
    """``$DLCOURSE_LESSONS_DIR``, else the repository's ``lessons/`` (editable install), else ./lessons."""
    if os.environ.get(LESSONS_DIR_ENV):
        return Path(os.environ[LESSONS_DIR_ENV])
    repo_lessons = Path(__file__).resolve().parents[2] / "lessons"  # dlcourse/course/runner.py
    if repo_lessons.is_dir():
        return repo_lessons
    return Path.cwd() / "lessons"


def _read_lesson(path: Path) -> Lesson:
    from dlcourse.course.notebooks import read

    match = _LESSON_FILE.match(path.name)
    if not match:
        raise ValueError(
            f"Expected a lesson file named 'NN_slug.ipynb' (e.g. 01_image_classification.ipynb). "
            f"Received: {path.name}"
        )
    meta = read(path)["metadata"].get("dlcourse", {})  # json, not nbformat: no jsonschema import
    title = meta.get("title") or match.group(2).replace("_", " ").capitalize()
    return Lesson(match.group(1), path.stem, title, meta.get("idea", ""), path)


def discover(directory: str | Path | None = None) -> list[Lesson]:
    """Every ``NN_slug.ipynb`` lesson in ``directory``, in lesson order."""
    directory = Path(directory) if directory is not None else default_lessons_dir()
    if not directory.is_dir():
        raise ValueError(
            f"Expected a folder of lesson notebooks. Received: {directory} (not a folder)"
        )
    return [
        _read_lesson(p) for p in sorted(directory.glob("*.ipynb")) if _LESSON_FILE.match(p.name)
    ]


def select(names: list[str] | None, directory: str | Path | None = None) -> list[Lesson]:
    """The lessons named by number ("1", "01"), full name or slug; all of them when ``names`` is empty."""
    lessons = discover(directory)
    if not names:
        return lessons
    chosen = []
    for name in names:
        key = name.removesuffix(".ipynb")
        hits = [
            lesson
            for lesson in lessons
            if key in (lesson.name, lesson.number, lesson.name[3:])
            or (key.isdigit() and int(key) == int(lesson.number))
        ]
        if not hits:
            valid = ", ".join(lesson.name for lesson in lessons) or "(none found)"
            raise ValueError(f"Unknown lesson {name!r}. Expected one of: {valid}")
        chosen.extend(hit for hit in hits if hit not in chosen)
    return chosen


class _Progress:
    """One status line per lesson, rewritten in place on a terminal."""

    def __init__(self, lesson: Lesson, ncells: int, stream=None):
        self.lesson, self.ncells = lesson, ncells
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.perf_counter()

    def cell(self, index: int) -> None:
        if self.tty:
            elapsed = time.perf_counter() - self.start
            self.stream.write(
                f"\r  {self.lesson.name}: cell {index + 1}/{self.ncells}  {elapsed:6.1f} s\033[K"
            )
            self.stream.flush()

    def done(self, result: LessonResult) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(f"  {self.lesson.name}: {result.status} in {result.seconds:.1f} s\n")
        self.stream.flush()


def run_lesson(
    lesson: Lesson,
    out_dir: str | Path,
    *,
    fast: bool | None = None,
    cell_timeout: int = 900,
    progress: bool = True,
    threads: int | None = None,
) -> LessonResult:
    """Execute one lesson in a fresh kernel and return its result (never raises for a lesson error).

    Args:
        lesson: from ``discover``/``select``.
        out_dir: where the executed copy ``<name>.ipynb`` goes.
        fast: ``True``/``False`` set ``DLCOURSE_FAST`` for the kernel; ``None`` inherits it.
        cell_timeout: seconds one cell may take before it is interrupted and the lesson fails.
        progress: print a progress line to stderr.
        threads: TensorFlow's intra- and inter-op threads in the kernel (``THREAD_VARIABLES``);
            ``None`` leaves TensorFlow's default (one per core) or an inherited setting.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(lesson.path, as_version=4)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    meter = _Progress(lesson, len(nb.cells)) if progress else None
    current = {"cell": None}

    def on_cell_start(cell, cell_index):
        current["cell"] = cell_index
        if meter:
            meter.cell(cell_index)

    with tempfile.TemporaryDirectory(prefix="dlcourse-run-") as tmp:
        figures_path = Path(tmp) / "figures.json"
        env = dict(os.environ)
        env[RESULTS_FILE_ENV] = str(figures_path)
        # matplotlib's inline backend: every figure a cell draws is kept in the executed copy
        # (an inherited MPLBACKEND=Agg, as the test suite sets for nbval, would draw nothing)
        env["MPLBACKEND"] = INLINE_BACKEND
        if fast is not None:
            env["DLCOURSE_FAST"] = "1" if fast else "0"
        if threads is not None:
            env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
        client = NotebookClient(
            nb,
            timeout=cell_timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(lesson.path.parent)}},
            on_cell_start=on_cell_start,
        )
        error = None
        kernel_log = out_dir / f"{lesson.name}.kernel.log"
        start = time.perf_counter()
        with open(kernel_log, "wb") as log:
            try:
                # keyword arguments reach jupyter_client's launch_kernel (the kernel's Popen)
                client.execute(env=env, stderr=log)
            except CellExecutionError as exc:
                error = {"ename": exc.ename, "evalue": exc.evalue}
            except CellTimeoutError as exc:
                error = {"ename": "CellTimeoutError", "evalue": str(exc).splitlines()[0]}
            except DeadKernelError as exc:
                error = {"ename": "DeadKernelError", "evalue": f"{exc} (its log: {kernel_log})"}
        seconds = time.perf_counter() - start
        if error is not None:
            error["cell"] = current["cell"]
            if current["cell"] is not None and current["cell"] in code_cells:
                error["code_cell"] = code_cells.index(current["cell"]) + 1
        figures = json.loads(figures_path.read_text()) if figures_path.exists() else {}
    executed = out_dir / f"{lesson.name}.ipynb"
    nbformat.write(nb, executed)
    result = LessonResult(
        status="failed" if error else "passed",
        seconds=round(seconds, 1),
        figures=figures,
        error=error,
        executed=str(executed),
    )
    if meter:
        meter.done(result)
    return result


def run(
    lessons: list[Lesson],
    out_dir: str | Path,
    *,
    fast: bool | None = None,
    cell_timeout: int = 900,
    progress: bool = True,
    threads: int | None = None,
    expected: Table | None = None,
) -> dict:
    """Run ``lessons`` in order, write ``out_dir/results.json`` and return its content.

    With ``expected`` (``figures.load`` of a figures file), a lesson whose cells all ran but whose
    figures break it gets the status "regressed" and its ``figure_problems``.
    """
    from dlcourse.config import default_cache_dir, environment, fast_mode

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment()
    # the kernels inherit this environment: they decide FAST with the same parser
    env["fast"] = bool(fast) if fast is not None else fast_mode()
    env["threads"] = threads if threads is not None else os.environ.get(THREAD_VARIABLES[0])
    env["cpu"] = cpu_model()
    # what `python -m benchmarks --course-from` checks before it reuses this run's seconds
    cache = default_cache_dir()
    env["cache_dir"] = str(cache)
    env["cache"] = "warm" if cache.is_dir() and any(cache.iterdir()) else "cold"
    env["source"] = source_digest(lessons)
    env["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    env["load_average_start"] = load_average()
    report = {"lessons": {}, "environment": env}
    for lesson in lessons:
        result = run_lesson(
            lesson,
            out_dir,
            fast=fast,
            cell_timeout=cell_timeout,
            progress=progress,
            threads=threads,
        )
        if expected is not None and result.status == "passed":
            result.figure_problems = check_figures(lesson.name, result.figures, expected)
            if result.figure_problems:
                result.status = "regressed"
        report["lessons"][lesson.name] = asdict(result)
        (out_dir / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "results.md").write_text(format_table(report, markdown=True) + "\n")
    return report


def source_digest(lessons: list[Lesson]) -> str:
    """SHA-256 of the ``lessons``' notebooks and of the ``dlcourse`` package's Python files: two
    runs with the same digest ran the same lessons on the same helper code."""
    import hashlib

    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    files = [(f"lessons/{lesson.path.name}", lesson.path) for lesson in lessons]
    files += sorted((p.relative_to(package).as_posix(), p) for p in package.rglob("*.py"))
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages, rounded to 0.01 (None where the OS has none):
    above the number of cores means other work shared them and stretched the seconds."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def cpu_info(cpuinfo: str | None = None) -> dict:
    """The first processor of ``/proc/cpuinfo`` (or of the text ``cpuinfo``): its model name,
    family, model, and the widest x86 vector extension it has (``AVX-512``, ``AVX2``, ``AVX``) or
    None. Empty where there is no such file (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough: the others are the same chip
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    flags = set(fields.get("flags", "").split())
    vector = next(
        (name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"))
         if flag in flags),
        None,
    )  # fmt: skip
    info = {"model_name": fields.get("model name"), "vector": vector}
    for key in ("cpu family", "model"):
        if fields.get(key, "").isdigit():
            info[key.replace("cpu ", "")] = int(fields[key])
    return {k: v for k, v in info.items() if v is not None}


def cpu_model(cpuinfo: str | None = None) -> str:
    """The processor's model name with its widest vector extension, e.g. ``AMD EPYC (AVX-512)``:
    two virtual CPUs that report the same name can differ by a factor of two in the course's
    speed, and the extension tells the ones met so far apart. Off Linux, the platform's
    description of the processor."""
    import platform

    info = cpu_info(cpuinfo)
    if not info.get("model_name"):
        return platform.processor() or platform.machine()
    vector = info.get("vector")
    return f"{info['model_name']} ({vector})" if vector else info["model_name"]


def format_figures(figures: dict) -> str:
    parts = []
    for key, value in figures.items():
        if isinstance(value, float):
            value = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def format_table(report: dict, *, markdown: bool = False) -> str:
    """The results as a text (or markdown) table: lesson, status, seconds, figures."""
    rows = []
    for name, res in report["lessons"].items():
        figures = format_figures(res.get("figures", {}))
        if res.get("error"):
            err = res["error"]
            where = f"cell {err.get('cell')}" if err.get("cell") is not None else "kernel"
            figures = f"{where}: {err.get('ename')}: {str(err.get('evalue'))[:80]}" + (
                f"; {figures}" if figures else ""
            )
        elif res.get("figure_problems"):
            figures = "figures.toml: " + "; ".join(res["figure_problems"])
        rows.append((name, res["status"], f"{res['seconds']:.1f}", figures))
    total = sum(res["seconds"] for res in report["lessons"].values())
    failed = sum(res["status"] != "passed" for res in report["lessons"].values())
    header = ("lesson", "status", "seconds", "figures")
    footer = ("total", f"{len(rows) - failed}/{len(rows)} passed", f"{total:.1f}", "")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "| --- | --- | ---: | --- |"]
        lines += ["| " + " | ".join(row) + " |" for row in [*rows, footer]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows, footer]) for i in range(3)]
    fmt = f"{{:<{widths[0]}}}  {{:<{widths[1]}}}  {{:>{widths[2]}}}  {{}}"
    sep = "-" * (sum(widths) + 6 + max(len(r[3]) for r in [header, *rows, footer]))
    return "\n".join(
        [fmt.format(*header), sep, *(fmt.format(*r) for r in rows), sep, fmt.format(*footer)]
    )


README_START = "<!-- lesson-table:start -->"
README_END = "<!-- lesson-table:end -->"
COLAB_URL = "https://colab.research.google.com/github/dlcourse/dlcourse/blob/main/student/{}"


def lesson_table(lessons: list[Lesson], report: dict) -> str:
    """The README's lesson table: number, lesson, lecture idea, Colab badge, FAST runtime, figures."""
    lines = [
        "| # | lesson | lecture idea | Colab | seconds (FAST) | what it reaches (FAST) |",
        "| --- | --- | --- | --- | ---: | --- |",
    ]
    for lesson in lessons:
        res = report["lessons"].get(lesson.name)
        badge = (
            "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({COLAB_URL.format(lesson.path.name)})"
        )
        seconds = f"{res['seconds']:.0f}" if res else "—"
        figures = format_figures(res.get("figures", {})) if res else "not run"
        if res and res["status"] != "passed":
            figures = f"**{res['status']}**; {figures}"
        link = f"[{lesson.title}](lessons/{lesson.path.name})"
        lines.append(
            f"| {lesson.number} | {link} | {lesson.idea} | {badge} | {seconds} | {figures} |"
        )
    return "\n".join(lines)


def update_readme(readme: str | Path, table: str) -> None:
    """Replace the text between the lesson-table markers of ``readme`` with ``table``."""
    replace_block(readme, README_START, README_END, table)
