"""Keep lesson notebooks clean: strip outputs, keep (and refresh) the outputs nbval checks.

The course's rule (docs/CONVENTIONS.md): a lesson is committed without outputs, except code cells
tagged ``keep_output`` (marked ``# NBVAL_CHECK_OUTPUT``), whose deterministic output nbval compares.
nbval skips the comparison for a cell without an execution count and refuses a cell that has
outputs but no count, so kept cells carry execution count 1; every other cell carries none. That is
why the course uses this small tool instead of nbstripout (which drops the counts of kept cells
unless told to keep every count).

Command line (also the pre-commit hook)::

    python -m dlcourse.course.notebooks strip lessons/*.ipynb       # outputs and counts off, kept cells kept
    python -m dlcourse.course.notebooks refresh lessons/06_*.ipynb  # re-execute (FAST), store kept outputs
    python -m dlcourse.course.notebooks check lessons/*.ipynb       # exit 1 if a notebook is not clean
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

KEEP_TAG = "keep_output"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
_NOTEBOOK_METADATA = ("kernelspec", "language_info", "dlcourse")
_CELL_METADATA = ("tags", "nbgrader", "editable", "deletable")


_SPLIT_MIMES = ("application/javascript", "image/svg+xml")  # and every text/*, as nbformat


def read(path: str | Path) -> dict:
    """A notebook file as a plain dict (the JSON as stored: sources are lists of lines).

    The hook and ``check`` read and write notebooks with :mod:`json` rather than ``nbformat``:
    importing ``nbformat`` imports ``jsonschema``, which takes seconds where
    ``rfc3987-syntax`` is installed (the instructor's environment); the bytes written are
    ``nbformat.writes``'s (``tests/test_notebooks.py`` compares them on every lesson).
    """
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    if nb.get("nbformat") != 4:
        raise ValueError(
            f"Expected a notebook in format 4. Received: {path} in format {nb.get('nbformat')!r}"
        )
    return nb


def _lines(value):
    return value.splitlines(True) if isinstance(value, str) else value


def writes(nb: dict) -> str:
    """The notebook as ``nbformat.writes`` serialises it (multi-line text split into lines,
    transient metadata dropped, keys sorted, indent 1), with a final newline."""
    nb = json.loads(json.dumps(nb))  # a deep copy
    for key in ("orig_nbformat", "orig_nbformat_minor", "signature"):
        nb["metadata"].pop(key, None)
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("trusted", None)
        if "source" in cell:
            cell["source"] = _lines(cell["source"])
        bundles = list(cell.get("attachments", {}).values())
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = _lines(output["text"])
            bundles.append(output.get("data", {}))
        for data in bundles:
            for mime, value in data.items():
                if mime.startswith("text/") or mime in _SPLIT_MIMES:
                    data[mime] = _lines(value)
    text = json.dumps(nb, indent=1, sort_keys=True, separators=(",", ": "), ensure_ascii=False)
    return text + "\n"


def is_kept(cell) -> bool:
    """Whether a code cell's output is kept on purpose (tag ``keep_output``)."""
    return cell.get("cell_type") == "code" and KEEP_TAG in cell.get("metadata", {}).get("tags", [])


def strip(nb):
    """Strip a notebook (a dict or an nbformat node) in place (module docstring) and return it."""
    nb["metadata"] = {k: nb["metadata"][k] for k in _NOTEBOOK_METADATA if k in nb["metadata"]}
    for cell in nb["cells"]:
        cell.pop("id", None)
        meta = cell.get("metadata", {})
        cell["metadata"] = {k: meta[k] for k in _CELL_METADATA if k in meta}
        if cell["cell_type"] != "code":
            continue
        if is_kept(cell):
            for output in cell["outputs"]:
                if "execution_count" in output:
                    output["execution_count"] = 1
            cell["execution_count"] = 1 if cell["outputs"] else None
        else:
            cell["outputs"] = []
            cell["execution_count"] = None
    nb["nbformat_minor"] = min(nb["nbformat_minor"], 4)  # no random cell ids in the diffs
    return nb


def problems(nb) -> list[str]:
    """What is not clean about a notebook node (empty when it is)."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])  # a string, or a list of lines as stored
        marked = any(line.strip() == CHECK_MARK for line in source.splitlines())
        if is_kept(cell) != marked:
            found.append(f"cell {i}: the tag {KEEP_TAG!r} and the line {CHECK_MARK!r} go together")
        if is_kept(cell):
            if not cell["outputs"] or cell["execution_count"] is None:
                found.append(
                    f"cell {i}: a kept cell needs its output and execution count (refresh)"
                )
        elif cell["outputs"] or cell["execution_count"] is not None:
            found.append(f"cell {i}: outputs or execution count not stripped")
    return found


def refresh(path: str | Path, *, timeout: int = 600):
    """Execute a notebook in FAST mode and store the outputs of its kept cells only.

    The kernel's own stderr (TensorFlow's C-level log lines) goes to a temporary log, as with
    ``dlcourse run``; when the execution fails, the log's last lines are printed with the error.
    """
    import tempfile

    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    source = nbformat.read(path, as_version=4)
    executed = nbformat.read(path, as_version=4)
    env = dict(os.environ, DLCOURSE_FAST="1", MPLBACKEND="Agg")
    client = NotebookClient(
        executed,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    with tempfile.TemporaryFile() as log:
        try:
            # keyword arguments reach jupyter_client's launch_kernel (the kernel's Popen)
            client.execute(env=env, stderr=log)
        except Exception:
            log.seek(0)
            tail = log.read().decode(errors="replace").splitlines()[-20:]
            if tail:
                print(
                    f"{path.name}: the kernel's last log lines:", *tail, sep="\n", file=sys.stderr
                )
            raise
    for cell, ran in zip(source.cells, executed.cells, strict=True):
        if is_kept(cell):
            cell.outputs = ran.outputs
    nbformat.write(strip(source), path)
    return source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dlcourse.course.notebooks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("action", choices=["strip", "refresh", "check"])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    status = 0
    for path in args.notebooks:
        if args.action == "refresh":
            refresh(path)
            continue
        nb = read(path)
        if args.action == "strip":
            before = writes(nb)
            after = writes(strip(nb))
            if after != before:
                path.write_text(after, encoding="utf-8")
                print(f"stripped {path}")
        for problem in problems(nb):
            print(f"{path}: {problem}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
