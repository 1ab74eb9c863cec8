"""``dlcourse workspace``: the student versions of the lessons, and the repository's ``student/``."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from dlcourse.course import workspace
from dlcourse.grading import leaks
from dlcourse.grading import nbformat_grading as fmt

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))


def test_student_folder_is_up_to_date_with_the_lessons(tmp_path):
    """The Colab badges open student/: regenerate with `dlcourse workspace student --force`."""
    workspace.write_workspace(tmp_path)
    fresh = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert fresh == sorted(p.name for p in (ROOT / "student").glob("*.ipynb"))
    stale = [
        name
        for name in fresh
        if (tmp_path / name).read_text(encoding="utf-8")
        != (ROOT / "student" / name).read_text(encoding="utf-8")
    ]
    assert stale == [], f"run `dlcourse workspace student --force`: {stale} are out of date"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name[:2])
def test_student_version_has_stubs_no_solutions_no_hidden_tests(lesson, tmp_path):
    source = nbformat.read(lesson, as_version=4)
    student = workspace.student_notebook(source)
    assert len(student.cells) == len(source.cells)
    solutions = [i for i, c in enumerate(source.cells) if fmt.role(c) == "solution"]
    assert solutions, "every lesson has exercises"
    text = nbformat.writes(student)
    for i in solutions:
        assert "raise NotImplementedError()" in student.cells[i].source
    (tmp_path / lesson.name).write_text(text, encoding="utf-8")
    assert leaks.check_release(source, tmp_path) == []  # the check `dlcourse release` makes
    assert fmt.HIDDEN_BEGIN not in text and fmt.SOLUTION_BEGIN not in text
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    assert source == nbformat.read(lesson, as_version=4)  # the instructor's copy is untouched


def test_a_students_work_is_kept_unless_forced(tmp_path):
    workspace.write_workspace(tmp_path, ["01"])
    target = tmp_path / LESSONS[0].name
    target.write_text(target.read_text().replace("YOUR CODE HERE", "my answer"))
    said = workspace.write_workspace(tmp_path, ["01"])
    assert said[0].startswith("kept") and "my answer" in target.read_text()
    workspace.write_workspace(tmp_path, ["01"], force=True)
    assert "my answer" not in target.read_text()
    with pytest.raises(ValueError, match="Unknown lesson '99'"):
        workspace.write_workspace(tmp_path, ["99"])


def test_workspace_command_needs_no_nbgrader(tmp_path):
    code = (
        "import sys; sys.modules['nbgrader'] = None\n"  # as if the instructor extra were missing
        "from dlcourse.course.cli import main\n"
        f"sys.exit(main(['workspace', {str(tmp_path)!r}, '09']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "09_real_photographs.ipynb").exists() and "jupyter lab" in done.stdout
