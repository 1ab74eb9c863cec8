"""Scores into nbgrader's gradebook, as ``nbgrader autograde`` would store them.

Each test cell's ``auto_score`` is set; cells graded by hand keep ``auto_score = None`` and are
marked ``needs_manual_grade``, so formgrader lists them and ``nbgrader export`` sums the rest.
A manual score an instructor already gave is kept (nbgrader's rule).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from dlcourse.grading import nbformat_grading as fmt
from dlcourse.grading.release import nbgrader_path


def record(course, rows, assignments) -> str | None:
    """Store ``rows`` (grade.Row) in ``course``'s gradebook; return a problem, or None."""
    from nbgrader.api import Gradebook, MissingEntry

    nbgrader_path()
    missing = set()
    with warnings.catch_warnings(), Gradebook(course.db_url, "dlcourse") as gb:
        # nbgrader's add_submission trips SQLAlchemy's autoflush warnings; they are harmless
        warnings.simplefilter("ignore")
        for row in rows:
            try:
                gb.find_assignment(row.lesson)
            except MissingEntry:
                missing.add(row.lesson)
                continue
            gb.update_or_create_student(row.student)
            try:
                gb.find_submission(row.lesson, row.student)
            except MissingEntry:
                gb.add_submission(row.lesson, row.student)
            source = assignments[row.lesson].sources
            for nbg in row.notebooks:
                notebook = Path(nbg.notebook).stem
                for cell in source[nbg.notebook].cells:
                    r = fmt.role(cell)
                    if r not in ("test", "manual"):
                        continue
                    gid = fmt.nbgrader_meta(cell)["grade_id"]
                    try:
                        grade = gb.find_grade(gid, notebook, row.lesson, row.student)
                    except MissingEntry:
                        missing.add(f"{row.lesson}/{notebook}/{gid}")
                        continue
                    grade.auto_score = None if r == "manual" else nbg.tests.get(gid, 0.0)
                    grade.needs_manual_grade = (
                        grade.auto_score is None or grade.manual_score is not None
                    )
            gb.db.commit()
    if missing:
        return "not in the gradebook (run dlcourse release again): " + ", ".join(sorted(missing))
    return None
