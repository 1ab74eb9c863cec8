"""nbgrader's own autograde test notebooks, graded by ``dlcourse grade``.

The notebooks ship inside the installed nbgrader (``nbgrader/tests/apps/files/``); the expected
scores are the ones ``nbgrader/tests/apps/test_nbgrader_autograde.py`` asserts (``test_grade``,
``test_showtraceback_exploit``). Where dlcourse differs by design the test asserts the difference
(docs/grading.md, "Threat model: feedback, names and nbgrader compatibility"). Assignments that use
nbgrader's ``### AUTOTEST`` are refused at release and at grade (they graded as full marks).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_grading_sandbox import require_sandbox

from dlcourse.grading import leaks
from dlcourse.grading import nbformat_grading as fmt
from dlcourse.grading.course import Course

nbgrader = pytest.importorskip("nbgrader")
FILES = Path(nbgrader.__file__).parent / "tests" / "apps" / "files"

# student -> (nbgrader's test file, score nbgrader's tests expect out of 7)
PS1 = {
    "foo": ("submitted-unchanged.ipynb", 1),  # test_grade
    "bar": ("submitted-changed.ipynb", 2),  # test_grade
    "spam": ("submitted-cheat-attempt.ipynb", 1),  # test_showtraceback_exploit
    "eggs": ("submitted-cheat-attempt-alternative.ipynb", 1),  # test_showtraceback_exploit
    # not autograded in nbgrader's tests (only validated): its OverwriteCells restores them too
    "locked": ("submitted-locked-cell-changed.ipynb", 1),
    "gradecell": ("submitted-grade-cell-changed.ipynb", 1),
}
CHEATS = {"spam", "eggs"}  # nbgrader's showtraceback exploits


def _course(tmp: Path, sources: dict[str, str]) -> Course:
    course = Course(tmp / "course")
    course.init()
    for assignment, name in sources.items():
        (course.source / assignment).mkdir(parents=True)
        shutil.copy(FILES / name, course.source / assignment / "p1.ipynb")
    return course


def _submit(course: Course, assignment: str, student: str, path: Path) -> None:
    folder = course.submitted / student / assignment
    folder.mkdir(parents=True)
    shutil.copy(path, folder / "p1.ipynb")


@pytest.mark.parametrize(
    "name", ["autotest-simple.ipynb", "autotest-hashed.ipynb", "autotest-multi.ipynb"]
)
def test_autotest_assignments_are_refused(tmp_path, name, capsys):
    from dlcourse.grading.cli import main
    from dlcourse.grading.grade import grade
    from dlcourse.grading.release import UnsupportedAssignment, release

    course = _course(tmp_path, {"ps1": name})
    cells = fmt.autotest_cells(fmt.read_notebook(course.source / "ps1" / "p1.ipynb"))
    assert cells
    (result,) = release(course, ["ps1"])
    assert not result.ok and not (course.release_dir / "ps1").exists()
    (problem,) = result.problems
    assert "AUTOTEST" in problem and cells[0] in problem and "autotests.yml" in problem
    assert main(["release", "ps1", "--course", str(course.root)]) == 1
    captured = capsys.readouterr()
    assert cells[0] in captured.out + captured.err
    _submit(course, "ps1", "foo", FILES / name.replace(".ipynb", "-unchanged.ipynb"))
    with pytest.raises(UnsupportedAssignment, match=cells[0]):
        grade(course, ["ps1"], allow_unsandboxed=True, progress=False)
    assert not course.grades_csv.exists()


def test_ordinary_assignments_have_no_autotest_cells():
    for name in ("submitted-unchanged.ipynb", "test-hidden-tests.ipynb"):
        assert fmt.autotest_cells(fmt.read_notebook(FILES / name)) == []


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    require_sandbox()
    from dlcourse.grading.grade import grade
    from dlcourse.grading.release import release

    course = _course(
        tmp_path_factory.mktemp("nbgrader"),
        {
            "ps1": "submitted-unchanged.ipynb",
            "hidden": "test-hidden-tests.ipynb",
            "effects": "side-effects.ipynb",
        },
    )
    assert all(r.ok for r in release(course, ["ps1", "hidden", "effects"]))
    for student, (name, _) in PS1.items():
        _submit(course, "ps1", student, FILES / name)
    # nbgrader's test_hidden_tests_single_notebook: solutions that pass the visible tests only
    _submit(course, "hidden", "foo", FILES / "test-hidden-tests.ipynb")
    _submit(course, "effects", "foo", FILES / "side-effects.ipynb")
    rows = grade(course, None, timeout=30, workers=2, progress=False, mode="all")
    return course, {(r.lesson, r.student): r for r in rows}


@pytest.mark.sandbox
def test_scores_agree_with_nbgraders_tests(graded):
    from nbgrader.api import Gradebook

    course, rows = graded
    with Gradebook(course.db_url, "dlcourse") as gb:
        for student, (_, expected) in PS1.items():
            row = rows[("ps1", student)]
            nb = gb.find_submission_notebook("p1", "ps1", student)
            if student in CHEATS:
                # by design stricter than nbgrader: the check whose traceback the cheat replaced
                # scores 0 and the submission waits for review; never more than nbgrader gives
                assert row.score <= expected and row.max_score == 7, (student, row.reason)
                assert row.status == "needs_review", (student, row.status, row.reason)
            else:
                assert (row.score, row.max_score) == (expected, 7), (student, row.reason)
            assert (nb.score, nb.max_score) == (row.score, 7), student
            # by design: every submission with written answers waits for hand grading, also an
            # unchanged one (nbgrader scores an untouched answer 0, "No response", and leaves
            # needs_manual_grade False for it)
            assert nb.needs_manual_grade and "5 points to grade by hand" in row.reason
    # by design: edited read-only and test cells are restored *and* reported
    assert "read-only cell ro1 edited: restored" in rows[("ps1", "locked")].reason
    assert "test cell bar edited: restored" in rows[("ps1", "gradecell")].reason
    # the showtraceback exploit is flagged for a look (nbgrader's tests only check the score)
    assert "IPython internals" in rows[("ps1", "spam")].reason


@pytest.mark.sandbox
def test_hidden_tests_count_and_stay_out_of_feedback(graded):
    course, rows = graded
    row = rows[("hidden", "foo")]
    source = fmt.read_notebook(course.source / "hidden" / "p1.ipynb")
    assert (
        0
        <= row.score
        < row.max_score
        == sum(fmt.points(c) for c in source.cells if fmt.role(c) == "test")
    )
    autograded = (course.autograded / "foo" / "hidden" / "p1.ipynb").read_text()
    assert "BEGIN HIDDEN TESTS" in autograded  # as nbgrader's test asserts
    page = (course.feedback / "foo" / "hidden" / "p1.html").read_text()
    hidden = leaks.secret_lines(source, hidden_only=True) | leaks.hidden_inputs(source)
    found = leaks.leaked(page, hidden)  # the student's own notebook is the source: its
    assert hidden and set(found) <= {fmt.SOLUTION_BEGIN, fmt.SOLUTION_END}  # solution may show
    assert fmt.HIDDEN_BEGIN not in page
    assert "Hidden tests failed." in page


@pytest.mark.sandbox
def test_side_effects_stay_in_the_sandbox(graded):
    course, rows = graded
    assert rows[("effects", "foo")].status in ("graded", "flagged"), rows[("effects", "foo")].reason
    assert not (course.submitted / "foo" / "effects" / "side-effect.txt").exists()  # as nbgrader
    # by design: nbgrader leaves the file in autograded/; the sandbox's files are thrown away
    assert not (course.autograded / "foo" / "effects" / "side-effect.txt").exists()
