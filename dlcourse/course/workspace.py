"""Student versions of the lessons: solutions stubbed, hidden tests removed, outputs cleared.

``dlcourse workspace DIR [LESSONS]`` writes them for a student to open in Jupyter; the
repository's ``student/`` folder holds the same for the Colab badges (``dlcourse workspace
student --force``; ``tests/test_workspace.py`` checks it is up to date with ``lessons/``).
Instructors keep ``lessons/``. The transformation is nbgrader's (``ClearSolutions``,
``ClearHiddenTests``, ``ClearOutput``), done with the grading package's own functions, so it
needs no nbgrader; what it writes passes the leak check of ``dlcourse release``.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

STUDENT_FOLDER = "student"
"""The repository folder of student versions (what the Colab badges open)."""


def student_notebook(nb):
    """The student version of a lesson notebook (a new ``NotebookNode``; ``nb`` is unchanged)."""
    from dlcourse.grading import nbformat_grading as fmt

    out = copy.deepcopy(nb)
    for cell in out.cells:
        source = cell.source
        if fmt.role(cell) in {"solution", "manual"}:
            source = fmt.stub_solution(source, cell.cell_type)
        if fmt.HIDDEN_BEGIN in source:
            source = fmt.strip_hidden(source).rstrip("\n")
        cell.source = source
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return out


def _text(nb) -> str:
    import nbformat

    return nbformat.writes(nb) + "\n"


def write_workspace(dest, lessons=None, *, force: bool = False, lessons_dir=None) -> list[str]:
    """Write student versions of ``lessons`` (default: all) into ``dest``; lines saying what happened.

    A notebook already in ``dest`` that differs (a student's work) is kept unless ``force``.

    Raises:
        ValueError: a lesson name matches no lesson; a student version would leak a solution
            or a hidden test (the check ``dlcourse release`` makes).
    """
    import nbformat

    from dlcourse.course.runner import select
    from dlcourse.grading import leaks

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    said = []
    for lesson in select(list(lessons or []), lessons_dir):
        source = nbformat.read(lesson.path, as_version=4)
        text = _text(student_notebook(source))
        target = dest / lesson.path.name
        if target.exists() and target.read_text(encoding="utf-8") != text and not force:
            said.append(f"kept {target} (it differs: your work; --force replaces it)")
            continue
        with tempfile.TemporaryDirectory(prefix="dlcourse-workspace-") as check:
            (Path(check) / target.name).write_text(text, encoding="utf-8")
            problems = leaks.check_release(source, Path(check))
        if problems:
            raise ValueError(f"{target.name}: the student version leaks: {problems[0]}")
        unchanged = target.exists() and target.read_text(encoding="utf-8") == text
        target.write_text(text, encoding="utf-8")
        said.append(f"{'unchanged' if unchanged else 'wrote'} {target}")
    return said
