"""Issue 12, class 2: solution code that tampers with what the checks rely on earns nothing.

One grading batch (``--workers 2``, ``--cells all``, in the sandbox) of the submissions in
``fixtures/grading/tamper.py``: rebound builtins, a patched builtins module, obfuscated code,
IPython's execution result and hooks patched, AST and input transformers, a tracer installed
by an audit hook, lying output streams, the check module rebound, patched, replaced in
``sys.modules`` or served by an import hook, NumPy's comparisons patched, an ndarray subclass
and a duck array that lie, and a test judged in the kernel (a function argument) with NumPy
patched. Every hostile answer is wrong: each must score 0 for the attacked test, with status
``needs_review`` and a reason naming what was detected; the honest submissions keep full marks
with status ``graded``.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

import nbformat
import pytest
from test_grading_sandbox import require_sandbox

from conftest import load_fixture
from dlcourse.grading import merge
from dlcourse.grading import nbformat_grading as fmt
from dlcourse.grading.autograde import score_tests
from dlcourse.grading.course import Course
from dlcourse.grading.execute import Runner
from dlcourse.grading.sandbox import SandboxConfig

pytestmark = pytest.mark.sandbox

FIXTURES = Path(__file__).parent / "fixtures" / "grading"
LESSONS = ("00_fixture", "checks_fixture")


tamper = load_fixture("tamper")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    require_sandbox()
    from dlcourse.grading.grade import grade
    from dlcourse.grading.release import release

    course = Course(tmp_path_factory.mktemp("tamper") / "course")
    released = release(course, [str(FIXTURES / f"{name}.ipynb") for name in LESSONS])
    assert all(r.ok for r in released), [r.problems for r in released]
    makers = {"00_fixture": tamper.fixture_submissions, "checks_fixture": tamper.checks_submissions}
    lesson_of = {}
    for lesson, make in makers.items():
        student_nb = nbformat.read(course.release_dir / lesson / f"{lesson}.ipynb", as_version=4)
        for student, nb in make(student_nb).items():
            folder = course.submitted / student / lesson
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{lesson}.ipynb")
            lesson_of[student] = lesson
    rows = grade(course, list(LESSONS), timeout=60, workers=2, progress=False, mode="all")
    return {
        "course": course,
        "rows": {r.student: r for r in rows if lesson_of.get(r.student) == r.lesson},
    }


@pytest.mark.parametrize("student", sorted(tamper.EXPECTED))
def test_tampering_scores_nothing_and_is_named(graded, student):
    score, status, reasons = tamper.EXPECTED[student]
    row = graded["rows"][student]
    assert (row.score, row.status) == (score, status), row.reason
    for pattern in reasons:
        assert re.search(pattern, row.reason), (pattern, row.reason)
    if status == "graded":  # nothing but the note that a test was judged in the kernel
        assert "review by hand" not in row.reason, row.reason
        assert all("judged in the student's kernel" in r for r in row.reason.split("; ") if r)


def test_feedback_shows_the_trusted_verdict(graded):
    """The student sees what the trusted interpreter found, not the tampered kernel's output."""
    course = graded["course"]
    html = (course.feedback / "f_streams" / "00_fixture" / "00_fixture.html").read_text()
    assert "add(2, 3) should be 5. Received: -1" in html
    correct = (course.feedback / "n_correct" / "checks_fixture" / "checks_fixture.html").read_text()
    assert "✔ scale: correct" in correct


def _run(plan, bwrap: str | None, tmp: Path):
    stage = tmp / "stage"
    stage.mkdir(mode=0o755, exist_ok=True)
    config = SandboxConfig(bwrap=bwrap)
    return asyncio.run(Runner(plan, config, stage, tmp, timeout=120).run())


def test_hidden_tests_never_run_in_the_students_kernel(tmp_path):
    """A student function that records every caller's source sees no hidden test: the hidden
    segments run only in the trusted interpreter."""
    bwrap = require_sandbox()
    source = fmt.read_notebook(FIXTURES / "00_fixture.ipynb")
    spy = (
        "import inspect\nseen = []\n"
        "def add(a, b):\n"
        "    for f in inspect.stack():\n"
        "        seen.append(f.frame.f_code.co_filename)\n"
        "        seen.append(''.join(f.code_context or []))\n"
        "    return a + b\n"
    )
    leak = "print('SEEN', 'rng_add' in repr(seen) or 'a_hidden' in repr(seen))"
    submission = tamper.answer(source, {"ex-00-add": spy, "ex-00-words": leak})
    plan = merge.build(source, submission, "all")
    run = _run(plan, bwrap, tmp_path)
    tests = score_tests(plan, run)
    assert [t["score"] for t in tests.values()] == [1.0, 0.0, 3.0]  # word_count was replaced
    printed = [o.get("text", "") for res in run.results.values() for r in res for o in r.outputs]
    assert any("SEEN False" in text for text in printed), printed


def test_a_real_lessons_solutions_keep_full_marks(tmp_path):
    """Lesson 01's instructor version, graded in the sandbox like a submission (no false
    positive from the trusted interpreter or the guard: Keras, NumPy and the checks all load)."""
    bwrap = require_sandbox()
    lesson = Path(__file__).resolve().parents[1] / "lessons" / "01_image_classification.ipynb"
    source = fmt.read_notebook(lesson)
    plan = merge.build(source, source, "exercises")
    run = _run(plan, bwrap, tmp_path)
    # The modelling exercise (gap_head) takes the body's Keras tensor: by design it is judged in
    # the kernel, which is a note, never a tamper event.
    assert [e.kind for e in run.events] == ["kernel-verdict"], run.events
    assert "gap_head()" in run.events[0].detail, run.events
    tests = score_tests(plan, run)
    assert len(tests) == sum(step.role == "test" for step in plan.steps) >= 3
    assert all(t["score"] == t["points"] for t in tests.values()), tests


def test_replacing_the_setups_exception_display_is_named(tmp_path):
    """The guard's snapshot comes after the setup cells, so the course's one-line exception
    display (``dlcourse.config.setup``) is its baseline; a student's code that replaces it with
    a handler of its own is still named. It zeroes the next test and, while it lasts, every test
    judged in the kernel (lesson 01's gap_head); tests judged in the trusted interpreter after
    the first keep their marks."""
    import copy

    bwrap = require_sandbox()
    lesson = Path(__file__).resolve().parents[1] / "lessons" / "01_image_classification.ipynb"
    source = fmt.read_notebook(lesson)
    submission = copy.deepcopy(source)
    first = next(c for c in submission.cells if fmt.role(c) == "solution")
    first.source += "\nget_ipython().set_custom_exc((AssertionError,), lambda *a, **k: None)\n"
    plan = merge.build(source, submission, "exercises")
    run = _run(plan, bwrap, tmp_path)
    found = [e.detail for e in run.events if e.kind == "tamper"]
    assert any("custom exception handler" in d for d in found), run.events
    in_kernel = {e.step for e in run.events if e.kind == "kernel-verdict"}
    assert in_kernel, run.events  # gap_head
    tests = score_tests(plan, run)
    first, *rest = sorted(tests)
    assert tests[first]["score"] == 0, tests
    for i in rest:
        expected = 0 if i in in_kernel else tests[i]["points"]
        assert tests[i]["score"] == expected, (i, tests)
    assert any(tests[i]["score"] == tests[i]["points"] for i in rest), tests


def test_trusted_interpreter_shares_nothing_with_the_kernel(tmp_path):
    """The trusted interpreter runs in its own sandbox: its process is not the kernel's, and the
    kernel cannot see it (own pid namespace)."""
    bwrap = require_sandbox()
    source = fmt.read_notebook(FIXTURES / "00_fixture.ipynb")
    look = (
        "import os\n"
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "cmdlines = [open(f'/proc/{p}/cmdline', 'rb').read() for p in pids]\n"
        "print('TRUSTED VISIBLE', any(b'_trusted.py' in c for c in cmdlines))\n"
        "def add(a, b):\n    return a + b\n"
    )
    submission = tamper.answer(source, {"ex-00-add": look})
    plan = merge.build(source, submission, "all")
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        run = _run(plan, bwrap, Path(tmp))
    printed = [o.get("text", "") for r in run.results.values() for s in r for o in s.outputs]
    assert any("TRUSTED VISIBLE False" in t for t in printed), printed
    assert score_tests(plan, run)[plan.steps.index(_step(plan, "ex-00-add-check"))]["score"] == 1


def _step(plan, grade_id):
    return next(s for s in plan.steps if s.grade_id == grade_id)


def test_only_plain_data_crosses():
    """The codec both interpreters use: exact types round-trip; subclasses, objects and pickles
    are refused (an answer can never bring code or its own comparisons into the verdict)."""
    import base64
    import io
    import math

    import numpy as np

    from dlcourse.grading._trusted import NotData, decode, encode

    value = {
        "a": np.arange(6, dtype=np.int16).reshape(2, 3),
        1: (True, None, 2**70, 1.5, complex(1, -2), b"\x00\xff", "é"),
        "s": [np.float32(0.25), np.bool_(True), np.uint8(7)],
    }
    back = decode(encode(value))
    assert back.keys() == value.keys()
    assert type(back["a"]) is np.ndarray and back["a"].dtype == np.int16
    assert np.array_equal(back["a"], value["a"])
    assert back[1] == value[1] and type(back[1]) is tuple
    assert [type(v) for v in back["s"]] == [np.float32, np.bool_, np.uint8]
    assert math.isnan(decode(encode(float("nan"))))

    class Sub(np.ndarray):
        pass

    class Five(int):
        pass

    for bad in (np.zeros(2).view(Sub), np.array([object()]), Five(5), object(), {1, 2}):
        with pytest.raises(NotData):
            encode(bad)
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    pickled = ["a", base64.b64encode(buf.getvalue()).decode()]
    with pytest.raises(ValueError):
        decode(pickled)
    for malformed in (["i", "1"], ["b", 1], ["zz"], "n", ["l", [["i"]]]):
        with pytest.raises(ValueError):
            decode(malformed)
