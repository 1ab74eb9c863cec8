"""The notebook-cleaning tool: strip everything but kept outputs, and say what is not clean."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from dlcourse.course import notebooks


def _notebook():
    kept = new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)", execution_count=7)
    kept.metadata = {"tags": ["keep_output"], "collapsed": True}
    kept.outputs = [new_output("stream", name="stdout", text="1\n")]
    plain = new_code_cell("print(2)", execution_count=8)
    plain.outputs = [new_output("stream", name="stdout", text="2\n")]
    nb = new_notebook(cells=[new_markdown_cell("# t"), kept, plain])
    nb.metadata = {"kernelspec": {"name": "python3"}, "widgets": {"x": 1}}
    return nb


def test_strip_keeps_kept_outputs_with_a_count_and_nothing_else():
    nb = notebooks.strip(_notebook())
    kept, plain = nb.cells[1], nb.cells[2]
    assert kept.outputs[0]["text"] == "1\n" and kept.execution_count == 1  # nbval compares it
    assert kept.metadata == {"tags": ["keep_output"]}
    assert plain.outputs == [] and plain.execution_count is None
    assert set(nb.metadata) == {"kernelspec"}
    assert notebooks.problems(nb) == []


def test_problems_names_unstripped_and_unmarked_cells():
    nb = _notebook()
    nb.cells[1].source = "print(1)"  # tag without the nbval marker
    found = notebooks.problems(nb)
    assert any("cell 1" in p and "go together" in p for p in found)
    assert any("cell 2" in p and "not stripped" in p for p in found)


def test_cli_strips_files_and_reports(tmp_path, capsys):
    path = tmp_path / "x.ipynb"
    nbformat.write(_notebook(), path)
    assert notebooks.main(["check", str(path)]) == 1
    assert notebooks.main(["strip", str(path)]) == 0
    assert notebooks.main(["check", str(path)]) == 0
    assert nbformat.read(path, as_version=4).cells[2].outputs == []


def _kernel_notebook(path, cells):
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def test_refresh_stores_kept_outputs_and_keeps_kernel_stderr_off_the_terminal(tmp_path, capfd):
    kept = new_code_cell(
        f"{notebooks.CHECK_MARK}\nprint(6 * 7)", metadata={"tags": ["keep_output"]}
    )
    noisy = new_code_cell("import os\nos.write(2, b'C-LEVEL LOG LINE\\n')\nprint('not kept')")
    path = _kernel_notebook(tmp_path / "lesson.ipynb", [kept, noisy])
    notebooks.refresh(path, timeout=60)
    nb = nbformat.read(path, as_version=4)
    assert [o.get("text") for o in nb.cells[0].outputs] == ["42\n"]
    assert nb.cells[0].execution_count == 1
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert "C-LEVEL LOG LINE" not in capfd.readouterr().err


def test_refresh_failure_shows_the_kernel_log_and_leaves_the_file(tmp_path, capfd):
    import nbclient

    cells = [new_code_cell("import os\nos.write(2, b'WHY IT BROKE\\n')\nraise ValueError('boom')")]
    path = _kernel_notebook(tmp_path / "broken.ipynb", cells)
    before = path.read_text()
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="boom"):
        notebooks.refresh(path, timeout=60)
    assert "WHY IT BROKE" in capfd.readouterr().err
    assert path.read_text() == before  # nothing written on failure


def _every_notebook():
    root = Path(__file__).resolve().parents[1]
    return sorted([*root.glob("lessons/*.ipynb"), *root.glob("tests/fixtures/**/*.ipynb")])


@pytest.mark.parametrize("path", _every_notebook(), ids=lambda p: p.name)
def test_json_reading_and_writing_gives_nbformat_s_bytes(path):
    """The hook reads and writes with json; the result is byte for byte nbformat's, stripped
    or not, on every notebook of the repository (lessons with kept outputs, fixtures)."""
    expected = nbformat.writes(nbformat.read(path, as_version=4)) + "\n"
    assert notebooks.writes(notebooks.read(path)) == expected
    stripped = nbformat.writes(notebooks.strip(nbformat.read(path, as_version=4))) + "\n"
    assert notebooks.writes(notebooks.strip(notebooks.read(path))) == stripped


def test_strings_and_line_lists_are_written_alike(tmp_path):
    nb = _notebook()  # nbformat nodes hold sources and stream text as strings
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert notebooks.writes(nb) == path.read_text()
    assert notebooks.writes(notebooks.read(path)) == path.read_text()


def test_the_hook_imports_neither_nbformat_nor_tensorflow(tmp_path):
    path = tmp_path / "x.ipynb"
    nbformat.write(_notebook(), path)
    code = (
        "import sys\n"
        "from dlcourse.course import notebooks\n"
        f"status = notebooks.main(['strip', {str(path)!r}])\n"
        "print(status, sorted({'nbformat', 'jsonschema', 'tensorflow', 'keras'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0 []"
    assert nbformat.read(path, as_version=4).cells[2].outputs == []


def test_read_refuses_other_formats(tmp_path):
    path = tmp_path / "old.ipynb"
    path.write_text('{"nbformat": 3, "metadata": {}, "worksheets": []}')
    with pytest.raises(ValueError, match="format 4"):
        notebooks.read(path)
