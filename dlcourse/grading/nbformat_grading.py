"""The nbgrader exercise format: reading notebooks safely, classifying cells, hidden-test regions.

A cell's role comes from its ``metadata.nbgrader`` (see docs/CONVENTIONS.md "Exercises"):

========== ============================== =========================================
role       metadata                       what grading does with it
========== ============================== =========================================
solution   solution, not grade            the student's code is taken
test       grade, not solution (+points)  always the instructor's version, hidden tests included
manual     grade and solution             the student's answer, graded by hand
task       task                           graded by hand
locked     locked only                    always the instructor's version
========== ============================== =========================================
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import nbformat

SOLUTION_BEGIN, SOLUTION_END = "BEGIN SOLUTION", "END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
SETUP_TAGS = ("setup", "parameters")
MAX_NOTEBOOK_BYTES = 64 * 2**20


class InvalidNotebook(ValueError):
    """The file is not a readable Jupyter notebook; the message says why."""


def read_notebook(path: Path | str) -> nbformat.NotebookNode:
    """Read a notebook that may be hostile: too big, not JSON, not a notebook, an old format.

    Raises:
        InvalidNotebook: with a one-line reason fit for a grade sheet.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_NOTEBOOK_BYTES:
            raise InvalidNotebook(
                f"file is {size / 2**20:.0f} MB (limit {MAX_NOTEBOOK_BYTES // 2**20} MB)"
            )
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidNotebook(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise InvalidNotebook(f"cannot read the file ({e.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidNotebook(
            f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise InvalidNotebook("valid JSON but not a Jupyter notebook (no list of cells)")
    if data.get("nbformat") != 4:
        raise InvalidNotebook(f"notebook format {data.get('nbformat')!r} (expected 4)")
    cells = []
    for i, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise InvalidNotebook(f"cell {i} is not a code, markdown or raw cell")
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise InvalidNotebook(f"cell {i} has no text source")
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        if cell["cell_type"] == "code":
            new = nbformat.v4.new_code_cell(source, metadata=meta)
        elif cell["cell_type"] == "markdown":
            new = nbformat.v4.new_markdown_cell(source, metadata=meta)
            attachments = _attachments(cell.get("attachments"))
            if attachments:  # a pasted image: kept (feedback shows raster ones)
                new.attachments = attachments
        else:
            new = nbformat.v4.new_raw_cell(source, metadata=meta)
        new.pop("id", None)
        cells.append(new)
    # Rebuilt from the parts grading uses (lenient: Colab and old Jupyter versions add or omit
    # fields); the student's outputs are dropped, grading recomputes them.
    nb = new_notebook(cells)
    meta = data.get("metadata")
    nb.metadata = nbformat.from_dict(meta if isinstance(meta, dict) else {})
    return nb


def _attachments(value) -> dict:
    """A cell's attachments in nbformat's shape ({name: {mime: text}}); anything else dropped."""
    out = {}
    if isinstance(value, dict):
        for name, bundle in value.items():
            if not (isinstance(name, str) and isinstance(bundle, dict)):
                continue
            kept = {}
            for mime, data in bundle.items():
                if isinstance(data, list) and all(isinstance(x, str) for x in data):
                    data = "".join(data)
                if isinstance(mime, str) and isinstance(data, str):
                    kept[mime] = data
            if kept:
                out[name] = kept
    return nbformat.from_dict(out)


AUTOTEST = re.compile(r"^\s*#+\s*(HASHED\s+)?AUTOTEST\b", re.MULTILINE)


def autotest_cells(nb) -> list[str]:
    """The cells (grade_id, else "cell N") that use nbgrader's ``### AUTOTEST`` directives."""
    return [
        (nbgrader_meta(c) or {}).get("grade_id") or f"cell {i + 1}"
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and AUTOTEST.search(c.source)
    ]


def new_notebook(cells) -> nbformat.NotebookNode:
    """A format-4.4 notebook (cells without ids: grading builds cells from several notebooks,
    whose ids may collide)."""
    nb = nbformat.v4.new_notebook()
    nb.nbformat_minor = 4
    for cell in cells:
        cell.pop("id", None)
    nb.cells = list(cells)
    return nb


def nbgrader_meta(cell) -> dict | None:
    """The cell's nbgrader metadata if it is a well-formed dict with a string grade_id."""
    meta = cell.get("metadata", {}).get("nbgrader")
    if isinstance(meta, dict) and isinstance(meta.get("grade_id"), str):
        return meta
    return None


def role(cell) -> str | None:
    """``solution``, ``test``, ``manual``, ``task``, ``locked`` or None (an ordinary cell)."""
    meta = nbgrader_meta(cell)
    if meta is None:
        return None
    grade, solution = bool(meta.get("grade")), bool(meta.get("solution"))
    if meta.get("task"):
        return "task"
    if grade and solution:
        return "manual"
    if grade:
        return "test"
    if solution:
        return "solution"
    if meta.get("locked"):
        return "locked"
    return None


def points(cell) -> float:
    meta = nbgrader_meta(cell) or {}
    try:
        return float(meta.get("points", 0) or 0)
    except (TypeError, ValueError):
        return 0.0


@dataclasses.dataclass
class Segment:
    """A run of a test cell's lines: visible to students, or a hidden-test region."""

    code: str
    hidden: bool


def split_hidden(source: str) -> list[Segment]:
    """Split a test cell into visible and hidden segments (delimiter lines dropped).

    Raises:
        ValueError: nested or unterminated hidden-test regions (nbgrader refuses them too).
    """
    segments: list[Segment] = []
    lines: list[str] = []
    hidden = False
    for line in source.split("\n"):
        if HIDDEN_BEGIN in line:
            if hidden:
                raise ValueError("nested BEGIN HIDDEN TESTS")
            segments.append(Segment("\n".join(lines), False))
            lines, hidden = [], True
        elif HIDDEN_END in line:
            if not hidden:
                raise ValueError("END HIDDEN TESTS without BEGIN")
            segments.append(Segment("\n".join(lines), True))
            lines, hidden = [], False
        else:
            lines.append(line)
    if hidden:
        raise ValueError("BEGIN HIDDEN TESTS without END")
    segments.append(Segment("\n".join(lines), False))
    return [s for s in segments if s.code.strip()]


def strip_hidden(source: str) -> str:
    """The test cell as students receive it (what nbgrader's ClearHiddenTests leaves)."""
    out, hidden = [], False
    for line in source.split("\n"):
        if HIDDEN_BEGIN in line:
            hidden = True
        elif HIDDEN_END in line:
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out)


def stub_solution(source: str, cell_type: str = "code") -> str:
    """The solution cell as students receive it (what nbgrader's ClearSolutions leaves)."""
    if SOLUTION_BEGIN not in source:
        return CODE_STUB if cell_type == "code" else TEXT_STUB
    out, inside = [], False
    for line in source.split("\n"):
        if SOLUTION_BEGIN in line:
            inside = True
            indent = re.match(r"\s*", line).group(0)
            stub = CODE_STUB if cell_type == "code" else TEXT_STUB
            out.extend(indent + s for s in stub.split("\n"))
        elif SOLUTION_END in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def secret_regions(source: str) -> list[str]:
    """The text of every solution and hidden-test region of a cell (what must not be released)."""
    regions, current, depth_kind = [], [], None
    for line in source.split("\n"):
        if SOLUTION_BEGIN in line or HIDDEN_BEGIN in line:
            depth_kind, current = "in", []
        elif SOLUTION_END in line or HIDDEN_END in line:
            if depth_kind:
                regions.append("\n".join(current))
            depth_kind = None
        elif depth_kind:
            current.append(line)
    return regions


def normalise(source: str) -> str:
    """Source text compared loosely: trailing spaces and blank lines at the ends ignored."""
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def has_setup_tags(nb) -> bool:
    return any(t in SETUP_TAGS for c in nb.cells for t in c.get("metadata", {}).get("tags", []))


def setup_cells(nb) -> list:
    """The cells to re-run after a kernel restart: tagged ``setup``/``parameters``, else the
    code cells before the first exercise (an instructor's own notebook without tags)."""
    if has_setup_tags(nb):
        return [
            c
            for c in nb.cells
            if c.cell_type == "code" and set(c.metadata.get("tags", [])) & set(SETUP_TAGS)
        ]
    out = []
    for c in nb.cells:
        if role(c) is not None:
            break
        if c.cell_type == "code":
            out.append(c)
    return out
