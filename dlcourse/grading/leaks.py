"""Find solution or hidden-test text where students will see it.

A *secret line* is a line of a solution region or a hidden-test region of the instructor's source
(at least ``MIN_CHARS`` characters once stripped) that does not also occur anywhere in the public
part of the notebook (markdown, visible code, the stubs), not even inside a longer line. ``release`` checks that no secret line, and no
region delimiter, reaches the student version; ``grade`` withholds any feedback output that
contains a hidden-test line (student code can read what the kernel runs and print it later).
"""

from __future__ import annotations

import json
from pathlib import Path

from dlcourse.grading import nbformat_grading as fmt

MIN_CHARS = 12
DELIMITERS = (fmt.SOLUTION_BEGIN, fmt.SOLUTION_END, fmt.HIDDEN_BEGIN, fmt.HIDDEN_END)


def _public_text(nb) -> str:
    out = []
    for cell in nb.cells:
        src = cell.source
        if fmt.role(cell) == "test":
            src = fmt.strip_hidden(src)
        elif fmt.role(cell) in ("solution", "manual"):
            src = fmt.stub_solution(src, cell.cell_type)
        out.append(src)
    return "\n".join(out)


def secret_lines(nb, *, hidden_only: bool = False) -> set[str]:
    """The lines of ``nb``'s solution/hidden-test regions that must not reach students."""
    public = _public_text(nb)
    secrets = set()
    for cell in nb.cells:
        if hidden_only:
            hidden = fmt.role(cell) == "test"
            regions = [s.code for s in fmt.split_hidden(cell.source) if s.hidden] if hidden else []
        else:
            regions = fmt.secret_regions(cell.source)
        for region in regions:
            for line in region.splitlines():
                line = line.strip()
                if len(line) >= MIN_CHARS and line not in public:
                    secrets.add(line)
    return secrets


def found_in(text: str, secrets: set[str]) -> list[str]:
    """The secrets (and region delimiters) that occur in ``text``."""
    hits = [d for d in DELIMITERS if d in text]
    hits += sorted(s for s in secrets if s in text)
    return hits


def notebook_texts(nb) -> list[tuple[str, str]]:
    """(where, text) for every place a notebook stores text: sources, outputs, attachments, metadata."""
    out = [("notebook metadata", json.dumps(nb.get("metadata", {}), ensure_ascii=False))]
    for i, cell in enumerate(nb.cells):
        out.append((f"cell {i}", cell.get("source", "")))
        out.append((f"cell {i} metadata", json.dumps(cell.get("metadata", {}), ensure_ascii=False)))
        if cell.get("attachments"):
            out.append((f"cell {i} attachments", json.dumps(cell["attachments"])))
        for output in cell.get("outputs", []) or []:
            out.append((f"cell {i} output", json.dumps(output, ensure_ascii=False)))
    return out


def check_release(source_nb, release_dir: Path) -> list[str]:
    """Problems with what students get in ``release_dir`` (empty list: nothing leaked)."""
    import nbformat

    secrets = secret_lines(source_nb)
    problems = []
    for path in sorted(release_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(release_dir)
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            places = notebook_texts(nb)
            if any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
                problems.append(f"{rel}: outputs were not cleared")
        else:
            places = [("file", path.read_bytes().decode("utf-8", errors="replace"))]
        for where, text in places:
            for hit in found_in(text, secrets):
                problems.append(f"{rel} ({where}): contains {hit[:60]!r}")
    return problems
