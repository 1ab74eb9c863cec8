"""pytest plugin: after nbval runs a lesson, hold its figures to the figures file beside it.

For every notebook nbval collects whose folder has a ``figures.toml`` (``dlcourse.course.figures``),
the plugin gives the notebook's kernel its own ``DLCOURSE_RESULTS_FILE`` and adds one test after the
notebook's last cell, ``<notebook>.ipynb::figures``, which fails when a figure breaks the file: a
quality below its expected value minus the tolerance, a count that changed, a figure no longer
published, or a lesson the file does not know. It is skipped when a cell of the notebook failed
(that cell's failure is the report) or when only some of its cells were selected.

The repository's ``conftest.py`` loads it (``pytest_plugins``); elsewhere: ``-p dlcourse.course.nbval_figures``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from dlcourse.course import figures
from dlcourse.course.results import RESULTS_FILE_ENV

_RESULTS = pytest.StashKey[Path]()  # on an nbval notebook collector: its kernel's results file
_FAILED = pytest.StashKey[bool]()  # on an nbval notebook collector: one of its cells failed


class FigureRegression(Exception):
    """A lesson's figures broke the figures file."""


def _is_notebook(collector) -> bool:
    from nbval.plugin import IPyNbFile

    return isinstance(collector, IPyNbFile)


class FiguresItem(pytest.Item):
    """The check of one lesson's figures, run after the notebook's last cell."""

    def runtest(self) -> None:
        notebook = self.parent
        if notebook.stash.get(_FAILED, False):
            pytest.skip("a cell of the lesson failed: its figures are not checked")
        code_cells = sum(cell.cell_type == "code" for cell in notebook.nb.cells)
        ran = sum(1 for item in self.session.items if item.parent is notebook and item is not self)
        if ran != code_cells:
            pytest.skip(f"only {ran} of the lesson's {code_cells} cells were selected")
        results = notebook.stash[_RESULTS]
        published = json.loads(results.read_text()) if results.exists() else {}
        path = figures.figures_path(self.path.parent)
        problems = figures.check(self.path.stem, published, figures.load(path))
        if problems:
            raise FigureRegression(
                f"{self.path.name}: {len(problems)} figure(s) off {path} "
                "(after an intended change: dlcourse figures update RUN_DIR, docs/figures.md)\n"
                + "\n".join(f"  {p}" for p in problems)
            )
        new = figures.unheld(self.path.stem, published, figures.load(path))
        if new:
            self.add_report_section("call", "figures", f"not held by {path}: {', '.join(new)}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, FigureRegression | figures.FiguresError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::figures"


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if (
        report.passed
        and _is_notebook(collector)
        and figures.figures_path(collector.path.parent).is_file()
    ):
        folder = Path(tempfile.mkdtemp(prefix="dlcourse-nbval-figures-"))
        collector.stash[_RESULTS] = folder / f"{collector.path.stem}.json"
        report.result.append(FiguresItem.from_parent(collector, name="figures"))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before the notebook's kernel starts (in its first cell's setup): its own results file."""
    results = item.parent.stash.get(_RESULTS, None) if item.parent is not None else None
    if results is not None and os.environ.get(RESULTS_FILE_ENV) != str(results):
        results.unlink(missing_ok=True)
        os.environ[RESULTS_FILE_ENV] = str(results)


def pytest_runtest_teardown(item, nextitem):
    results = item.parent.stash.get(_RESULTS, None) if item.parent is not None else None
    if results is not None and (nextitem is None or nextitem.parent is not item.parent):
        if os.environ.get(RESULTS_FILE_ENV) == str(results):
            del os.environ[RESULTS_FILE_ENV]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and not isinstance(item, FiguresItem) and item.parent is not None:
        if _RESULTS in item.parent.stash:
            item.parent.stash[_FAILED] = True
    return report
