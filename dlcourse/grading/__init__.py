"""Instructor grading: nbgrader-format exercises, ``release``, ``grade`` in a sandbox, ``check``.

Modules, in the order a submission meets them (docs/grading.md tells the whole workflow):

* ``course``            the nbgrader course folder, lesson names, downloaded submissions;
* ``release``           student versions through nbgrader, ``leaks`` checks nothing secret got out;
* ``nbformat_grading``  reading (hostile) notebooks, cell roles, hidden-test regions, stubs;
* ``merge``             the notebook that is graded: the source's tests, the student's answers;
* ``sandbox`` (bwrap command, limits), ``kernel`` (environment, launch spec, kernel manager),
  ``_launch`` (limits and user inside): a bubblewrap-sandboxed, resource-limited kernel;
* ``execute``           running it cell by cell through timeouts, crashes and limits;
* ``autograde``         scores, status and reason of one notebook; ``feedback`` for the student;
* ``grade``             the batch: workers, progress, ``grades.csv``, ``gradebook``;
* ``check``             the student's own run of the visible checks; ``cli`` the commands.

Needs the ``instructor`` extra (nbgrader). These modules import no TensorFlow (nor does ``import
dlcourse``). From Python:
``dlcourse.grading.release.release(Course(dir), ["01"])``,
``dlcourse.grading.grade.grade(Course(dir), ["01"], workers=2)``,
``dlcourse.grading.check.check("01_image_classification.ipynb")``.
"""

import sys as _sys


def _import_nbformat() -> None:
    """Import nbformat (every module below reads notebooks with it) without its slowest part.

    nbformat validates with jsonschema, and jsonschema's format checkers import the optional
    ``rfc3987_syntax`` when it is installed (Jupyter's ``jupyter-events`` brings it in with the
    instructor extra). That package builds its grammar's parsers at import: 1.7 s of the 2 s it
    took to import nbformat on a quiet 2-core machine, for an IRI format that no notebook schema
    uses (upstream: python-jsonschema/jsonschema#1428). It is hidden for this one import, so
    jsonschema registers no IRI format checker in this process; nothing else changes.
    """
    if "nbformat" in _sys.modules:
        return
    hide = "rfc3987_syntax" not in _sys.modules
    if hide:
        _sys.modules["rfc3987_syntax"] = None  # an import of it raises ImportError
    try:
        import nbformat  # noqa: F401
    finally:
        if hide:
            del _sys.modules["rfc3987_syntax"]


_import_nbformat()
