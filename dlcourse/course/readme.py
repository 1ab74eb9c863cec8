"""Generated blocks of the README: replace the text between two marker comments, nothing else.

``dlcourse run --readme`` writes the lesson table between ``<!-- lesson-table:start -->`` and
``<!-- lesson-table:end -->``; ``python -m benchmarks --readme`` writes its report between
``<!-- benchmarks:start -->`` and ``<!-- benchmarks:end -->``. Both go through
:func:`replace_block`, so the rest of the README is never touched.

Example:
>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "README.md"
>>> _ = path.write_text("# Title\\n<!-- t:start -->\\nold\\n<!-- t:end -->\\nafter\\n")
>>> replace_block(path, "<!-- t:start -->", "<!-- t:end -->", "new")
>>> print(path.read_text(), end="")
# Title
<!-- t:start -->
new
<!-- t:end -->
after
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["replace_block"]


def replace_block(readme: str | Path, start: str, end: str, block: str) -> None:
    """Replace the text between the markers ``start`` and ``end`` of ``readme`` with ``block``.

    Args:
        readme: the file to rewrite in place.
        start, end: the marker lines; each must occur exactly once, ``start`` before ``end``.
        block: the new text between them (a newline is added on each side).

    Raises:
        ValueError: a marker is missing, repeated or out of order; the file is left unchanged.
    """
    readme = Path(readme)
    text = readme.read_text()
    counts = (text.count(start), text.count(end))
    if counts != (1, 1) or text.index(start) > text.index(end):
        raise ValueError(
            f"Expected {readme} to contain the markers {start} and {end} once each, in that "
            f"order. Received: {counts[0]} and {counts[1]} of them"
        )
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{block}\n{end}{tail}")
