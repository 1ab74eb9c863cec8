"""One trusted interpreter serves a whole batch, and shares nothing between submissions.

The trusted interpreter runs the source's setup cells once per notebook, for every worker; each
submission's checks then run in a process forked from that post-setup state (trusted.py), several
at once with several workers. A check that keeps the student's answer in a global, in a module's
attribute or in a file must not carry one submission's answer into another one's verdict, and a
submission whose check hangs in the trusted interpreter must not cost a neighbour anything.
"""

from __future__ import annotations

import nbformat
import pytest
from test_grading_sandbox import require_sandbox

from dlcourse.grading.course import Course

pytestmark = pytest.mark.sandbox

SETUP = (
    "import json\nimport os\nimport time\n\nSEEN = []\nSETUP_PID = os.getpid()\n"
    "SETUP_TOKEN = os.urandom(8).hex()"
)
SOLUTION = 'def answer():\n    """The answer."""\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION'
CHECK = (
    "SEEN.append(answer())\n"
    "json.first_seen = getattr(json, 'first_seen', SEEN[0])\n"
    "assert len(SEEN) == 1 and SEEN[0] in (42, 13), f'answer() should be 42; the checks saw {SEEN}'\n"
    "assert json.first_seen == SEEN[0], f'a module kept {json.first_seen}'\n"
    "### BEGIN HIDDEN TESTS\n"
    "path = os.path.join(os.environ['TMPDIR'], 'seen.txt')\n"
    "assert not os.path.exists(path), 'a file another submission left'\n"
    "with open(path, 'w') as f:\n"
    "    f.write(str(SEEN))\n"
    "assert os.getppid() == SETUP_PID, 'not forked from the interpreter that ran setup'\n"
    "print('setup', SETUP_TOKEN)\n"
    "if SEEN == [13]:\n"
    "    time.sleep(600)\n"
    "### END HIDDEN TESTS"
)


def _meta(grade_id: str, **kw) -> dict:
    return {
        "nbgrader": {
            "grade": False,
            "grade_id": grade_id,
            "locked": False,
            "schema_version": 3,
            "solution": False,
            "task": False,
            **kw,
        }
    }


def _source() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 00 · Pool\n\nOne exercise.", metadata={"tags": ["title"]}),
        nbformat.v4.new_code_cell(SETUP, metadata={"tags": ["setup"]}),
        nbformat.v4.new_code_cell(SOLUTION, metadata=_meta("ex-answer", solution=True)),
        nbformat.v4.new_code_cell(
            CHECK, metadata=_meta("ex-answer-check", grade=True, locked=True, points=2)
        ),
    ]
    for cell in nb.cells:
        cell.pop("id", None)
    return nb


def _course(tmp_path, answers: dict[str, int]) -> Course:
    from dlcourse.grading.release import release

    path = tmp_path / "00_pool.ipynb"
    nbformat.write(_source(), path)
    course = Course(tmp_path / "course")
    (released,) = release(course, [str(path)])
    assert released.ok, released.problems
    student_nb = nbformat.read(course.release_dir / "00_pool" / "00_pool.ipynb", as_version=4)
    for student, value in answers.items():
        nb = nbformat.from_dict(student_nb)
        for cell in nb.cells:
            if "def answer" in cell.source:
                cell.source = f"def answer():\n    return {value}"
        folder = course.submitted / student / "00_pool"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "00_pool.ipynb")
    return course


def test_workers_share_one_trusted_setup_and_nothing_else(tmp_path):
    """Two workers, six submissions: every check runs in a process forked from one post-setup
    interpreter (the same setup token in every autograded notebook), answers never leak between
    submissions graded at the same time, and a submission whose hidden check hangs in the trusted
    interpreter (answer 13: it sleeps) times out alone: the others keep full marks."""
    require_sandbox()
    from dlcourse.grading.grade import grade

    answers = {"a_hangs": 13, "b": 42, "c": 7, "d": 42, "e": 42, "f": 42}
    course = _course(tmp_path, answers)
    rows = {r.student: r for r in grade(course, ["00_pool"], timeout=20, workers=2, progress=False)}
    hung = rows["a_hangs"]
    assert (hung.score, hung.status) == (0, "error"), hung.reason
    assert "timed out" in hung.reason, hung.reason
    assert (rows["c"].score, rows["c"].status) == (0, "graded"), rows["c"].reason
    for student in ("b", "d", "e", "f"):
        row = rows[student]
        assert (row.score, row.status, row.reason) == (2, "graded", ""), (student, row.reason)
    tokens = set()
    for student in ("b", "c", "d", "e", "f"):
        graded = course.autograded / student / "00_pool" / "00_pool.ipynb"
        text = "".join(
            o.get("text", "")
            for cell in nbformat.read(graded, as_version=4).cells
            for o in cell.get("outputs", [])
            if o.get("output_type") == "stream"
        )
        tokens.update(line.split()[1] for line in text.splitlines() if line.startswith("setup "))
    assert len(tokens) == 1, f"the checks ran in {len(tokens)} trusted interpreters: {tokens}"


def test_a_submissions_answer_never_reaches_the_next_ones_verdict(tmp_path):
    """Graded in sequence by one worker: the first answers 7 (the checks keep it in a global, a
    module and a file), the second 42. The second still gets full marks, from a process forked
    from the same post-setup interpreter (the hidden check asserts it)."""
    require_sandbox()
    from dlcourse.grading.grade import grade
    from dlcourse.grading.release import release

    path = tmp_path / "00_pool.ipynb"
    nbformat.write(_source(), path)
    course = Course(tmp_path / "course")
    (released,) = release(course, [str(path)])
    assert released.ok, released.problems
    student_nb = nbformat.read(course.release_dir / "00_pool" / "00_pool.ipynb", as_version=4)
    for student, value in (("a_first", 7), ("b_second", 42), ("c_third", 42)):
        nb = nbformat.from_dict(student_nb)
        for cell in nb.cells:
            if "def answer" in cell.source:
                cell.source = f"def answer():\n    return {value}"
        folder = course.submitted / student / "00_pool"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "00_pool.ipynb")
    rows = {r.student: r for r in grade(course, ["00_pool"], timeout=60, progress=False)}
    assert (rows["a_first"].score, rows["a_first"].status) == (0, "graded"), rows["a_first"].reason
    for student in ("b_second", "c_third"):
        row = rows[student]
        assert (row.score, row.status, row.reason) == (2, "graded", ""), row.reason
