"""``dlcourse check NOTEBOOK``: a student's own run of the visible checks before submitting.

Runs the notebook top to bottom in a fresh kernel in FAST mode (as grading does), reports every
check cell, and exits non-zero when one fails (``nbgrader validate`` exits 0 either way). It also
warns about what grading will undo: a check cell whose text changed (grading uses the original)
and a solution cell that still holds the stub.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path

from dlcourse.grading import merge
from dlcourse.grading import nbformat_grading as fmt
from dlcourse.grading.autograde import score_tests
from dlcourse.grading.execute import Runner
from dlcourse.grading.sandbox import SandboxConfig


@dataclasses.dataclass
class CheckReport:
    passed: list[str]
    failed: list[tuple[str, str]]  # grade_id, why
    warnings: list[str]
    points: float
    max_points: float

    @property
    def ok(self) -> bool:
        return not self.failed


def _warnings(nb) -> list[str]:
    try:  # nbgrader is the instructor's extra; students may not have it
        from nbgrader.utils import compute_checksum
    except ImportError:
        compute_checksum = None

    out = []
    for cell in nb.cells:
        meta = fmt.nbgrader_meta(cell)
        r = fmt.role(cell)
        if meta is None or r is None:
            continue
        if r == "test" and meta.get("checksum") and compute_checksum is not None:
            try:
                changed = compute_checksum(cell) != meta["checksum"]
            except Exception:
                changed = False
            if changed:
                out.append(
                    f"{meta['grade_id']}: this check cell was changed; grading uses the original"
                )
        if r in ("solution", "manual") and "raise NotImplementedError()" in cell.source:
            out.append(f"{meta['grade_id']}: still the stub (raise NotImplementedError())")
    return out


def check(path: Path | str, *, timeout: float = 300.0, mode: str = "auto") -> CheckReport:
    """Run ``path``'s visible checks (the student's own notebook, with the student's rights).

    Raises:
        InvalidNotebook: the file is not a readable notebook.
    """
    path = Path(path).resolve()
    nb = fmt.read_notebook(path)
    plan = merge.build(nb, nb, mode)
    with tempfile.TemporaryDirectory(prefix="dlcourse-check-") as tmp:
        config = SandboxConfig(bwrap=None, plain=True, workdir=path.parent)
        runner = Runner(plan, config, Path(tmp), Path(tmp), timeout=timeout)
        run = asyncio.run(runner.run())
    tests = score_tests(plan, run)
    passed, failed = [], []
    for i, t in tests.items():
        gid = plan.steps[i].grade_id
        if t["score"] >= t["points"] and not t["detail"]:
            passed.append(gid)
        else:
            failed.append((gid, t["detail"] or "failed"))
    warnings = _warnings(nb) + [f"{e.detail} (cell {(e.step or 0) + 1})" for e in run.events]
    return CheckReport(
        passed,
        failed,
        warnings,
        sum(t["score"] for t in tests.values()),
        sum(t["points"] for t in tests.values()),
    )
