"""``dlcourse release``: student versions through nbgrader, then a check that nothing leaked."""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

from dlcourse.grading import leaks
from dlcourse.grading import nbformat_grading as fmt
from dlcourse.grading.course import Course


@dataclasses.dataclass
class Released:
    assignment: str
    folder: Path
    notebooks: list[str]
    problems: list[str]  # leaks or nbgrader errors; empty when the release is clean

    @property
    def ok(self) -> bool:
        return not self.problems


def nbgrader_path() -> None:
    """Let nbgrader create a gradebook without a subprocess.

    A new gradebook is stamped with the head revision of nbgrader's migrations, which nbgrader
    finds by running the ``alembic`` program (needs the venv's ``bin/`` on PATH; ~1 s idle, far
    more on a busy machine). Asking alembic's API in-process gives the same string.
    """
    venv_bin = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if venv_bin not in path.split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + path
    import nbgrader.api

    if getattr(nbgrader.api.get_alembic_version, "_dlcourse", False):
        return
    try:
        from alembic.script import ScriptDirectory
        from nbgrader.dbutil import ALEMBIC_DIR

        head = ScriptDirectory(ALEMBIC_DIR).get_current_head()
    except Exception:  # an nbgrader without these internals: keep its subprocess
        return
    if head:

        def get_alembic_version() -> str:
            return head

        get_alembic_version._dlcourse = True
        nbgrader.api.get_alembic_version = get_alembic_version


def nbgrader_api(course: Course):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    nbgrader_path()
    config = Config()
    config.CourseDirectory.root = str(course.root)
    config.CourseDirectory.course_id = "dlcourse"
    config.CourseDirectory.db_url = course.db_url
    config.Exchange.root = tempfile.gettempdir()  # unused; nbgrader only checks it is writable
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


class UnsupportedAssignment(LookupError):
    """An assignment this grader would score wrongly; the message says why and what to do."""


def autotest_problem(course: Course, name: str) -> str | None:
    """Why ``name`` cannot be graded here because it uses nbgrader's AUTOTEST, or None."""
    for path in course.notebooks(name):
        cells = fmt.autotest_cells(fmt.read_notebook(path))
        if cells:
            return (
                f"{path.name}: {', '.join(cells)} use nbgrader's ### AUTOTEST / ### HASHED "
                "AUTOTEST, which dlcourse does not expand (every submission would pass them). "
                "Write those tests out as asserts in the source cell (BEGIN/END HIDDEN TESTS "
                "for hidden ones), or run `nbgrader generate_assignment` with its autotests.yml "
                "and put the generated test code into source/ instead of the AUTOTEST lines"
            )
    return None


def refuse_autotests(course: Course, name: str) -> None:
    """Raises:
    UnsupportedAssignment: ``name`` uses AUTOTEST (see ``autotest_problem``).
    """
    problem = autotest_problem(course, name)
    if problem:
        raise UnsupportedAssignment(f"{name}: {problem}")


def release(course: Course, names: list[str] | None = None) -> list[Released]:
    """Generate the student versions of ``names`` (default: every lesson and assignment).

    Raises:
        LookupError: a name matches no lesson or assignment.
    """
    course.init()
    assignments = (
        [course.resolve(n) for n in names]
        if names
        else [course.resolve(n) for n in course.all_names()]
    )
    api = nbgrader_api(course)
    out = []
    for name in assignments:
        folder = course.release_dir / name
        autotest = autotest_problem(course, name)
        if autotest:  # not released: a student version would promise tests nobody runs
            out.append(Released(name, folder, [], [autotest]))
            continue
        result = api.generate_assignment(name, force=True, create=True)
        problems = []
        if not result.get("success"):
            error = (result.get("error") or result.get("log") or "").strip().splitlines()
            problems.append("nbgrader generate_assignment failed: " + (error[-1] if error else "?"))
        else:
            for source_path in course.notebooks(name):
                source_nb = fmt.read_notebook(source_path)
                problems += leaks.check_release(source_nb, folder)
        notebooks = sorted(p.name for p in folder.glob("*.ipynb")) if folder.is_dir() else []
        out.append(Released(name, folder, notebooks, sorted(set(problems))))
    return out
