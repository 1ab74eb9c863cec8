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
