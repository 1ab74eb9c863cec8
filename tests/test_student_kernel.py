"""The student's path in a *plain* Jupyter kernel: not ``dlcourse run``'s, not nbval's.

A student's kernel has no ``TF_CPP_MIN_LOG_LEVEL``, no ``MPLBACKEND`` and no captured stderr:
ipykernel forwards whatever TensorFlow's C++ code writes to descriptor 2 into the notebook, in
red. These tests start such a kernel (a clean environment, only ``DLCOURSE_FAST`` and
``DLCOURSE_CACHE`` of the course's variables) and run the cells a student runs first.
"""

import asyncio
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
STATUS_PREFIX = "dlcourse "

pytestmark = pytest.mark.slow


def plain_environment() -> dict:
    """What a student's Jupyter gives a kernel: no variable that quiets TensorFlow or matplotlib."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TF_", "DLCOURSE_", "KERAS_", "MPL", "JPY_", "PYTEST"))
    }
    env["DLCOURSE_CACHE"] = os.environ.get("DLCOURSE_CACHE", "")  # the suite's empty cache
    if "DLCOURSE_FAST" in os.environ:
        env["DLCOURSE_FAST"] = os.environ["DLCOURSE_FAST"]
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


async def run_plain_async(sources: list[str], cwd: Path) -> tuple[list, Exception | None]:
    """Execute ``sources`` as cells of one notebook in a fresh plain kernel; (cells, error)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    error = None
    try:
        # no stderr= : the kernel's descriptor 2 goes to the notebook
        await client.async_execute(env=plain_environment())
    except CellExecutionError as exc:
        error = exc
    return nb.cells, error


def run_plain(sources: list[str], cwd: Path) -> tuple[list, Exception | None]:
    return asyncio.run(run_plain_async(sources, cwd))


def stream_lines(cells) -> list[str]:
    return [
        line
        for cell in cells
        for out in cell.get("outputs", [])
        if out.output_type == "stream"
        for line in out.text.splitlines()
        if line.strip()
    ]


def tagged(nb, tag: str) -> str:
    return "\n".join(c.source for c in nb.cells if tag in c.metadata.get("tags", []))


# A student's own cell after the setup: TensorFlow and Keras again, and the device list.
STUDENT_CELL = "import keras\nimport tensorflow as tf\ntf.config.list_physical_devices('GPU')\n"
SETTLE = "import time\ntime.sleep(1)"  # C++ lines written late still reach a cell


@pytest.fixture(scope="module")
def first_cells() -> dict:
    """Every lesson's setup and parameters cells, each lesson in its own plain kernel, two
    kernels at a time (a kernel mostly waits on its start and the TensorFlow import):
    {lesson: (cells, error)}."""

    async def run_all():
        slots = asyncio.Semaphore(2)

        async def one(lesson):
            nb = nbformat.read(lesson, as_version=4)
            async with slots:
                return await run_plain_async(
                    [tagged(nb, "setup"), tagged(nb, "parameters"), STUDENT_CELL, SETTLE],
                    lesson.parent,
                )

        return dict(zip(LESSONS, await asyncio.gather(*map(one, LESSONS)), strict=True))

    return asyncio.run(run_all())


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name[:2])
def test_setup_cells_are_silent_in_a_plain_kernel(first_cells, lesson):
    cells, error = first_cells[lesson]
    assert error is None, error
    assert not [o for c in cells for o in c.outputs if o.get("name") == "stderr"]
    setup, parameters, *rest = cells
    lines = stream_lines([setup, *rest])
    status = [line for line in lines if line.startswith(STATUS_PREFIX)]
    assert len(status) == 1 and lines == status, lines
    if "print(" not in parameters.source:  # 05, 06 print their budget on purpose
        assert stream_lines([parameters]) == []
    assert "FAST mode" in status[0] or "full mode" in status[0]


def test_first_tensorflow_import_after_dlcourse_is_silent_and_without_it_is_not(tmp_path):
    quiet, error = run_plain(
        ["import dlcourse", "import tensorflow as tf\ntf.config.list_physical_devices('GPU')",
         "import keras", SETTLE],
        tmp_path,
    )  # fmt: skip
    assert error is None, error
    assert stream_lines(quiet) == []
    # The control: the same imports without dlcourse first print TensorFlow's log lines.
    loud, error = run_plain(
        ["import tensorflow as tf\ntf.config.list_physical_devices('GPU')", SETTLE], tmp_path
    )
    assert error is None, error
    assert stream_lines(loud), "expected TensorFlow's log lines in a plain kernel"


def error_outputs(cell) -> list:
    return [out for out in cell.get("outputs", []) if out.output_type == "error"]


def test_failed_check_and_stub_are_one_line_and_stop_run_all(tmp_path):
    setup = "import dlcourse\nfrom dlcourse import checks\nenv = dlcourse.config.setup()"
    wrong = (
        "import numpy as np\nchecks.check_array(np.zeros(2), np.ones(2), name='the demo answer')"
    )
    stub = "def answer():\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nanswer()"
    for failing, expected in ((wrong, "CheckFailed"), (stub, "write your answer here")):
        cells, error = run_plain([setup, failing, "print('after')"], tmp_path)
        assert error is not None  # the cell fails, so Run All stops there
        (shown,) = error_outputs(cells[1])
        text = "\n".join(shown.traceback)
        assert len(shown.traceback) == 1 and text.count("\n") == 0, shown.traceback
        assert expected in text, text
        assert "site-packages" not in text and "dlcourse/checks.py" not in text
        assert not cells[2].get("outputs") and cells[2].get("execution_count") is None
    assert "expected" in text.lower() or "write your answer" in text


def test_other_errors_keep_their_traceback(tmp_path):
    setup = "import dlcourse\nenv = dlcourse.config.setup(report=False)"
    cells, error = run_plain(
        [setup, "def f():\n    raise NotImplementedError('a library said so')\n\nf()"], tmp_path
    )
    assert error is not None
    (shown,) = error_outputs(cells[1])
    assert len(shown.traceback) > 1 and "a library said so" in "\n".join(shown.traceback)
