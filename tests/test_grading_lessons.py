"""Every lesson of ``lessons/``: ``release`` leaks nothing, the released stubs fail their checks,
and the instructor's solutions pass them when only the setup and exercise cells run.

The last point is what makes the exercise cells self-contained (CONVENTIONS.md), which grading
relies on: ``--cells exercises`` and the fresh kernel after a crash run nothing else. Lessons are
picked up as they land; each run takes a kernel and the setup cell's imports, not the lesson's
training cells. Runs without a sandbox: this is the instructor's own code.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from dlcourse.grading import merge
from dlcourse.grading import nbformat_grading as fmt
from dlcourse.grading.autograde import score_tests
from dlcourse.grading.course import Course
from dlcourse.grading.execute import Runner
from dlcourse.grading.sandbox import SandboxConfig

LESSONS = sorted((Path(__file__).resolve().parents[1] / "lessons").glob("[0-9][0-9]_*.ipynb"))
PARALLEL = 2


async def _run_all(jobs: dict) -> dict:
    semaphore = asyncio.Semaphore(PARALLEL)

    async def one(key, plan):
        async with semaphore:
            with tempfile.TemporaryDirectory(prefix="dlcourse-lesson-") as tmp:
                stage = Path(tmp, "stage")
                stage.mkdir()
                run = await Runner(
                    plan, SandboxConfig(bwrap=None), stage, Path(tmp), timeout=300
                ).run()
        return key, plan, run

    return {k: (p, r) for k, p, r in await asyncio.gather(*(one(k, p) for k, p in jobs.items()))}


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    from dlcourse.grading.release import release

    course = Course(tmp_path_factory.mktemp("lessons") / "course")
    results = {r.assignment: r for r in release(course, [str(p) for p in LESSONS])}
    jobs = {}
    for path in LESSONS:
        # One kernel per lesson: setup, every exercise with its stub, then with its solution.
        source = fmt.read_notebook(path)
        student = fmt.read_notebook(course.release_dir / path.stem / path.name)
        plan = merge.build(source, student, "exercises")
        solved = merge.build(source, source, "exercises")
        plan.steps += [s for s in solved.steps if s.role in ("solution", "test")]
        jobs[path.stem] = plan
    runs = asyncio.run(_run_all(jobs))
    return results, runs


def _halves(plan, run):
    """Test results of the stub pass and of the solution pass."""
    tests = list(score_tests(plan, run).items())
    half = len(tests) // 2
    return tests[:half], tests[half:]


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_release_leaks_nothing(released, lesson):
    results, _ = released
    r = results[lesson.stem]
    assert r.ok, r.problems
    assert r.notebooks == [lesson.name]
    source = fmt.read_notebook(lesson)
    assert any(fmt.role(c) == "test" for c in source.cells), "a lesson without exercises"


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_released_stubs_fail_their_checks(released, lesson):
    plan, run = released[1][lesson.stem]
    assert [e for e in run.events if e.kind != "kernel-verdict"] == []  # Keras-tensor tests
    stubs, _ = _halves(plan, run)
    assert stubs
    for i, t in stubs:
        assert t["score"] == 0, (plan.steps[i].grade_id, "a stub passes its check")
        assert "NotImplementedError" in t["detail"], (plan.steps[i].grade_id, t["detail"])


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_solutions_pass_with_only_setup_and_exercise_cells(released, lesson):
    plan, run = released[1][lesson.stem]
    assert [e for e in run.events if e.kind != "kernel-verdict"] == []  # Keras-tensor tests
    _, solutions = _halves(plan, run)
    assert solutions
    for i, t in solutions:
        assert t["score"] == t["points"], (plan.steps[i].grade_id, t["detail"])
