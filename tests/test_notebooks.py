"""The notebook-cleaning tool: strip everything but kept outputs, and say what is not clean."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from dlcourse import notebooks


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
