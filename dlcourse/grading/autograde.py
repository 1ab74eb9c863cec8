"""Grade one submitted notebook: read, merge, run in the sandbox, score, write the results.

Scores follow nbgrader's rules for test cells (all points unless the cell fails; a numeric last
value gives partial credit) with two deliberate differences: a cell fails when the kernel's reply
says it failed (not when an error *output* appears, which student code can suppress), and text on
stderr does not fail a cell (TensorFlow and Keras warnings would zero correct answers).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import nbformat

from dlcourse.grading import feedback, leaks, merge
from dlcourse.grading import nbformat_grading as fmt
from dlcourse.grading.course import linked
from dlcourse.grading.execute import Runner, RunResult
from dlcourse.grading.sandbox import SandboxConfig
from dlcourse.grading.trusted import TrustedPool

STATUSES = {
    "graded": "graded normally",
    "flagged": "graded, but something needs a look (see reason)",
    "error": "the run broke (crash, timeout, memory or CPU limit): the score counts what passed",
    "needs_review": "the student's code tampered with the checks: 0 for that test, look at it",
    "invalid": "the file is not a readable notebook: score 0",
    "missing": "no notebook in the submission: score 0",
}
SEVERITY = ["graded", "flagged", "error", "needs_review", "invalid", "missing"]
# the status an event of the run gives (any other event: the run broke, ``error``)
EVENT_STATUS = {
    "processes": "flagged",
    "output": "flagged",
    "log": "flagged",
    "full /tmp": "flagged",
    "full /dev/shm": "flagged",
    "trusted": "flagged",
    "kernel-verdict": "graded",
    "tamper": "needs_review",
}
NBGRADER_FILES = {".ipynb_checkpoints", "timestamp.txt"}
"""What Jupyter and nbgrader themselves put in a submission folder: not the student's files."""


@dataclasses.dataclass
class Options:
    """How to grade (the CLI's flags)."""

    sandbox: SandboxConfig
    timeout: float = 300.0
    budget: float | None = None
    mode: str = "auto"
    feedback: bool = True
    trusted: TrustedPool | None = None  # the worker's trusted interpreters (grade.py)
    kernel_env: dict | None = None  # more environment for the kernels (grade.py: threads)


@dataclasses.dataclass
class NotebookGrade:
    notebook: str
    score: float
    max_score: float
    status: str
    reasons: list[str]
    tests: dict[str, float] = dataclasses.field(default_factory=dict)  # grade_id -> score
    manual: dict[str, float] = dataclasses.field(default_factory=dict)  # grade_id -> points
    seconds: float = 0.0


def worst(statuses) -> str:
    return max(statuses, key=SEVERITY.index, default="graded")


class Assignment:
    """What grading needs from an assignment's source, read once per batch."""

    def __init__(self, name: str, source_paths: list[Path], release_dir: Path | None):
        self.name = name
        self.sources = {p.name: fmt.read_notebook(p) for p in source_paths}
        self.hidden = {  # lines and literal inputs of hidden tests: never in feedback
            n: leaks.secret_lines(nb, hidden_only=True) | leaks.hidden_inputs(nb)
            for n, nb in self.sources.items()
        }
        self.release_dir = release_dir

    def max_score(self, name: str) -> float:
        return sum(
            fmt.points(c) for c in self.sources[name].cells if fmt.role(c) in ("test", "manual")
        )

    def data_files(self) -> list[Path]:
        """Files released with the notebooks (data a custom assignment reads)."""
        if self.release_dir is None or not self.release_dir.is_dir():
            return []
        return [
            p
            for p in sorted(self.release_dir.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.suffix != ".ipynb"
        ]


def _stage(folder: Path, submission: Path | None, assignment: Assignment, name: str = "") -> Path:
    """The files the kernel may see: the lesson's released data files and the submitted notebook
    (under the assignment's name for it), nothing else of the student's: a file beside the
    notebook (``numpy.py``, ``dlcourse.py``, a ``.pth``) is never staged, so it can shadow
    nothing (``extra_files`` reports it)."""
    stage = folder / "stage"
    stage.mkdir(mode=0o755)
    for path in assignment.data_files():
        dest = stage / path.relative_to(assignment.release_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    if submission is not None:
        shutil.copyfile(submission, stage / (name or submission.name), follow_symlinks=False)
    for path in stage.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return stage


def extra_files(submission: Path, assignment: Assignment) -> list[str]:
    """Files in the submission's folder that the assignment does not name (its notebooks, its
    released data files, the submitted notebook itself, nbgrader's own files): not graded."""
    folder = submission.parent
    named = set(assignment.sources) | {submission.name}
    if assignment.release_dir is not None:
        named |= {str(p.relative_to(assignment.release_dir)) for p in assignment.data_files()}
    extra = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in NBGRADER_FILES)
        for file in sorted(files):
            rel = str((Path(root) / file).relative_to(folder))
            if rel not in named and file not in NBGRADER_FILES:
                extra.append(rel)
        if len(extra) > 1000:
            break
    return extra


def _describe_extra(name: str, extra: list[str]) -> str:
    shown = ", ".join(extra[:12]) + (f" and {len(extra) - 12} more" if len(extra) > 12 else "")
    return f"{name}: files beside the notebook not used for grading: {shown}"


def _label(plan, index: int | None) -> str:
    if index is None:
        return "start"
    step = plan.steps[index]
    if step.grade_id:
        return step.grade_id
    before = next(
        (plan.steps[j].grade_id for j in range(index - 1, -1, -1) if plan.steps[j].grade_id), None
    )
    return f"cell {index + 1}" + (f" (after {before})" if before else "")


def _partial(outputs, points: float) -> float:
    """nbgrader's partial credit: a test cell whose value is a number scores that number."""
    for o in outputs:
        if o.get("output_type") == "execute_result":
            text = o.get("data", {}).get("text/plain", "")
            try:
                value = float(text if isinstance(text, str) else "".join(text))
            except ValueError:
                return points
            return min(max(value, 0.0), points) if value >= 0 else points
    return points


def score_tests(plan, run: RunResult | None) -> dict[int, dict]:
    """Step index -> {"score", "points", "detail"} for every test cell."""
    out = {}
    for i, step in enumerate(plan.steps):
        if step.role != "test":
            continue
        segs = run.results.get(i, []) if run is not None else []
        bad = next((s for s in segs if s.status != "ok"), None)
        if not segs and step.segments:
            out[i] = {"score": 0.0, "points": step.points, "detail": "not run"}
        elif bad is None:
            last = segs[-1].outputs if segs else []
            out[i] = {"score": _partial(last, step.points), "points": step.points, "detail": ""}
        else:
            seg = step.segments[segs.index(bad)]
            if bad.status == "error":
                detail = (
                    "hidden tests failed"
                    if seg.hidden
                    else (
                        (f"{bad.ename}: {bad.evalue}" if bad.evalue else bad.ename)[:300]
                        if bad.ename
                        else "failed"
                    )
                )
            else:
                detail = {
                    "timeout": "timed out",
                    "died": "the kernel died",
                    "not-run": "not run",
                }.get(bad.status, bad.status)
            out[i] = {"score": 0.0, "points": step.points, "detail": detail}
    return out


def autograded_notebook(plan, run: RunResult | None, metadata):
    """The executed graded notebook (instructor's; hidden tests in it), nbgrader-readable."""
    nb = plan.notebook(metadata)
    results = run.results if run is not None else {}
    events = {e.step: e for e in (run.events if run is not None else [])}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        outputs = []
        for res in results.get(i, []):
            outputs += res.outputs
            if res.status in ("timeout", "died", "not-run"):
                detail = events[i].detail if i in events else "not run"
                outputs.append(
                    nbformat.v4.new_output(
                        "error",
                        ename="GradingError",
                        evalue=detail,
                        traceback=[f"GradingError: {detail}"],
                    )
                )
                break
        cell.outputs = outputs
        cell.execution_count = None
    return nb


async def grade_notebook(
    assignment: Assignment,
    name: str,
    path: Path | None,
    student: str,
    options: Options,
    scratch: Path,
    outputs: dict,
    renamed: str | None = None,
) -> NotebookGrade:
    """Grade one notebook of a submission; write the autograded notebook and the feedback."""
    source = assignment.sources[name]
    max_score = assignment.max_score(name)

    def zero(status: str, reason: str) -> NotebookGrade:
        """Nothing to run: score 0, and feedback that says why."""
        if outputs.get("feedback") and options.feedback:
            header = {
                "student": student,
                "assignment": assignment.name,
                "score": 0.0,
                "max_score": max_score,
                "status": status,
                "reasons": [reason],
            }
            dest = outputs["feedback"] / f"{Path(name).stem}.html"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(feedback.to_html(feedback.summary_only(header)), encoding="utf-8")
        tests = {
            fmt.nbgrader_meta(c)["grade_id"]: 0.0 for c in source.cells if fmt.role(c) == "test"
        }
        return NotebookGrade(name, 0.0, max_score, status, [reason], tests)

    if path is None:
        return zero("missing", f"{name}: no notebook submitted")
    link = linked(path)
    if link:
        return zero("invalid", f"{name}: {link}")
    try:
        submission = fmt.read_notebook(path)
    except fmt.InvalidNotebook as e:
        return zero("invalid", f"{name}: {e}")

    plan = merge.build(source, submission, options.mode)
    notes = [f"{name}: submitted as {renamed}"] if renamed else []
    notes += plan.notes
    extra = extra_files(path, assignment) if name == next(iter(assignment.sources)) else []
    if extra:
        notes.append(_describe_extra(name, extra))
    folder = Path(tempfile.mkdtemp(prefix="s", dir=scratch))
    try:
        stage = _stage(folder, path, assignment, name)
        runner = Runner(
            plan,
            options.sandbox,
            stage,
            folder,
            timeout=options.timeout,
            budget=options.budget,
            env_extra=options.kernel_env,
            trusted_pool=options.trusted,
            trusted_key=(assignment.name, name),
            trusted_stage=lambda where: _stage(where, None, assignment),
        )
        run = await runner.run()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    tests = score_tests(plan, run)
    status = "flagged" if (plan.flagged or renamed or extra) else "graded"
    reasons = list(notes)
    for e in run.events:
        reasons.append(f"{_label(plan, e.step)}: {e.detail}")
        # a run that broke is an error; processes left behind or truncated output need a look
        status = worst([status, EVENT_STATUS.get(e.kind, "error")])
    if plan.mode == "exercises" and plan.skipped:
        names = [
            plan.steps[i].grade_id for i, t in tests.items() if t["detail"].startswith("NameError")
        ]
        if names:
            reasons.append(
                f"{', '.join(names)}: NameError, and {plan.skipped} code cell(s) of the student's "
                "own were not run (--cells exercises runs setup and exercise cells only)"
            )
            status = worst([status, "flagged"])
    manual = {s.grade_id: s.points for s in plan.steps if s.role == "manual"}
    if manual:
        reasons.append(f"{name}: {sum(manual.values()):g} points to grade by hand")
        status = worst([status, "flagged"])
    score = sum(t["score"] for t in tests.values())

    header = {
        "student": student,
        "assignment": assignment.name,
        "score": score,
        "max_score": max_score,
        "status": status,
        "reasons": reasons,
    }
    # the leak search decodes every output (~0.3 s a 40 KB plot): off the loop other kernels use
    fb, withheld = await asyncio.to_thread(
        feedback.build, plan, run, tests, header=header, hidden_secrets=assignment.hidden[name]
    )
    if withheld:
        reasons.append(
            f"{name}: an output contained hidden-test text and was withheld from feedback"
        )
        header["status"] = status = worst([status, "flagged"])
    stem = Path(name).stem
    graded_nb = autograded_notebook(plan, run, source.metadata)

    def write_files() -> None:
        if outputs.get("feedback") and options.feedback:  # first: the student waits for it
            dest = outputs["feedback"] / f"{stem}.html"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(feedback.render(fb, header), encoding="utf-8")
        if outputs.get("autograded"):
            dest = outputs["autograded"] / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(graded_nb, dest)

    # Rendering HTML takes ~0.5 s: the batch does it on a thread while the next kernel runs.
    defer = outputs.get("defer")
    if defer is not None:
        defer(write_files)
    else:
        write_files()
    return NotebookGrade(
        name,
        score,
        max_score,
        status,
        reasons,
        {plan.steps[i].grade_id: t["score"] for i, t in tests.items()},
        manual,
        run.seconds,
    )
