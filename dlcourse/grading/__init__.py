"""Instructor grading: nbgrader-format exercises, ``release``, ``grade`` in a sandbox, ``check``.

Modules, in the order a submission meets them (docs/grading.md tells the whole workflow):

* ``course``            the nbgrader course folder, lesson names, downloaded submissions;
* ``release``           student versions through nbgrader, ``leaks`` checks nothing secret got out;
* ``nbformat_grading``  reading (hostile) notebooks, cell roles, hidden-test regions, stubs;
* ``merge``             the notebook that is graded: the source's tests, the student's answers;
* ``sandbox``, ``kernel``, ``_launch``  a bubblewrap-sandboxed, resource-limited kernel;
* ``execute``           running it cell by cell through timeouts, crashes and limits;
* ``autograde``         scores, status and reason of one notebook; ``feedback`` for the student;
* ``grade``             the batch: workers, progress, ``grades.csv``, ``gradebook``;
* ``check``             the student's own run of the visible checks; ``cli`` the commands.

Needs the ``instructor`` extra (nbgrader); nothing here imports TensorFlow.
"""

from __future__ import annotations

__all__ = ["check", "grade", "release"]


def release(course_dir, lessons=None):
    """Student versions of ``lessons`` in ``course_dir`` (see ``dlcourse.grading.release``)."""
    from dlcourse.grading.course import Course
    from dlcourse.grading.release import release as _release

    return _release(Course(course_dir), lessons)


def grade(course_dir, lessons=None, **options):
    """Grade every submission of ``lessons`` (see ``dlcourse.grading.grade.grade``)."""
    from dlcourse.grading.course import Course
    from dlcourse.grading.grade import grade as _grade

    return _grade(Course(course_dir), lessons, **options)


def check(notebook, **options):
    """Run a notebook's visible checks (see ``dlcourse.grading.check.check``)."""
    from dlcourse.grading.check import check as _check

    return _check(notebook, **options)
