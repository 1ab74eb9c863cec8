"""Running the course: the figures lessons publish, the headless runner, clean notebooks, the CLI.

- :mod:`~dlcourse.course.results`: ``record`` — the figures a lesson reaches, for the runner;
- :mod:`~dlcourse.course.runner`: ``dlcourse run`` and ``dlcourse lessons``: discover, execute
  and tabulate the lessons, and write the README's table;
- :mod:`~dlcourse.course.notebooks`: strip / check / refresh lesson notebooks (the pre-commit hook,
  ``python -m dlcourse.course.notebooks strip``);
- :mod:`~dlcourse.course.cli`: the ``dlcourse`` command.

Nothing here imports TensorFlow: the command, the hook and the runner start in a fraction of a
second. The package imports no submodule; import the one you need.
"""
