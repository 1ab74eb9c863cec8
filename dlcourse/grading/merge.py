"""Build the notebook that is graded from the instructor's source and a student's submission.

The instructor's source is the only trusted input: every test and locked cell is taken from it
(hidden tests included), whatever the student did to their copy, and the points come from it.
From the submission come the answers (solution cells, matched by ``grade_id``) and, in ``all``
mode, every other cell the student wrote, in the student's order, like ``nbgrader autograde``.

Repairs, each reported as a note (they end up in the grade sheet's ``reason``):

* a test or locked cell the student edited is restored; one they deleted is put back after the
  cell that precedes it in the source; one they duplicated (same ``grade_id`` twice) runs once;
* a solution cell the student deleted becomes the released stub (it fails its tests);
* ``grade_id``s the source does not know lose their nbgrader metadata (a student cannot mint points);
* student code that reaches into the kernel's machinery (IPython hooks, builtins, the check
  functions) is flagged for a look: every in-kernel test, nbgrader's included, trusts the process
  the student's code runs in.

``exercises`` mode runs only the source's setup cells and the exercises (CONVENTIONS.md: exercise
cells are self-contained), in the source's order: seconds per submission instead of a whole lesson.
``auto`` (the default) uses it for the course's lessons and ``all`` for anything else.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import re

import nbformat

from dlcourse.grading import nbformat_grading as fmt

SUSPICIOUS = {
    "get_ipython": r"\bget_ipython\b",
    "IPython internals": r"\b(set_custom_exc|input_transformers|ast_transformers|run_cell|showtraceback)\b",
    "builtins": r"\b__builtins__\b|\bbuiltins\b",
    "sys.modules": r"\bsys\s*\.\s*modules\b",
    "tracing hooks": r"\bsys\s*\.\s*(settrace|setprofile|excepthook|displayhook)\b",
    "the check functions": r"\bdlcourse\s*\.\s*checks\b|\bCheckFailed\b",
    "the reference solutions": r"\bdlcourse\s*\.\s*reference\b|\bfrom\s+dlcourse\s+import\s+.*\breference\b",
    "ctypes": r"\bctypes\b",
    "frame inspection": r"\b(_getframe|currentframe|f_back|f_globals|linecache|gc\s*\.\s*get_objects)\b",
    "dynamic imports": r"\b__import__\b|\bimportlib\b",
    "the input history": r"\b_ih\b|\bIn\s*\[",
}


@dataclasses.dataclass
class Step:
    """One cell of the graded notebook, with what grading needs to know about it."""

    cell: nbformat.NotebookNode
    role: str | None  # solution / test / manual / task / locked / None
    origin: str  # "source", "student" or "stub"
    grade_id: str | None = None
    points: float = 0.0
    segments: list[fmt.Segment] = dataclasses.field(default_factory=list)
    run: bool = True  # executed (code cells only)

    @property
    def is_code(self) -> bool:
        return self.cell.cell_type == "code"


@dataclasses.dataclass
class Plan:
    """The graded notebook as a list of steps, plus what the merge repaired or noticed."""

    steps: list[Step]
    setup: list[str]  # code re-run after a kernel restart (from the source)
    notes: list[str]  # repairs and flags, one phrase each
    flagged: bool = False
    mode: str = "all"
    skipped: int = 0  # code cells of the student's own that ``exercises`` mode does not run
    student_names: frozenset[str] = frozenset()  # what the source's solution cells define

    def notebook(self, metadata) -> nbformat.NotebookNode:
        nb = fmt.new_notebook([s.cell for s in self.steps])
        nb.metadata = copy.deepcopy(metadata)
        return nb


def _source_step(cell, origin="source", run=True) -> Step:
    cell = copy.deepcopy(cell)
    cell.pop("id", None)
    r = fmt.role(cell)
    meta = fmt.nbgrader_meta(cell)
    step = Step(cell, r, origin, meta["grade_id"] if meta else None, fmt.points(cell), run=run)
    if cell.cell_type == "code":
        if r == "test":
            step.segments = fmt.split_hidden(cell.source)
        elif cell.source.strip():
            step.segments = [fmt.Segment(cell.source, False)]
    return step


def _answer(src_cell, student_cell) -> nbformat.NotebookNode:
    """The source cell's type and metadata with the student's text."""
    cell = copy.deepcopy(src_cell)
    cell.pop("id", None)
    cell.source = student_cell.source
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def _stub(src_cell) -> nbformat.NotebookNode:
    cell = copy.deepcopy(src_cell)
    cell.pop("id", None)
    cell.source = fmt.stub_solution(src_cell.source, src_cell.cell_type)
    return cell


def _plain(student_cell) -> nbformat.NotebookNode:
    cell = copy.deepcopy(student_cell)
    cell.metadata.pop("nbgrader", None)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def scan(source: str) -> list[str]:
    """Names of the kernel machinery a piece of student code touches (empty: nothing unusual)."""
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
    return [name for name, pattern in SUSPICIOUS.items() if re.search(pattern, code)]


def resolve_mode(source, mode: str) -> str:
    """``auto``: ``exercises`` for a course lesson (its notebook metadata has ``dlcourse``; the
    conventions make its exercises self-contained and the tests check it), ``all`` otherwise."""
    if mode not in ("auto", "all", "exercises"):
        raise ValueError(f"Expected mode 'auto', 'all' or 'exercises'. Received: mode={mode!r}")
    if mode == "auto":
        return "exercises" if "dlcourse" in source.get("metadata", {}) else "all"
    return mode


def build(source, submission, mode: str = "auto") -> Plan:
    """Merge ``submission`` into ``source`` (both notebooks); ``mode`` as in ``resolve_mode``."""
    mode = resolve_mode(source, mode)
    src_by_id: dict[str, nbformat.NotebookNode] = {}
    for cell in source.cells:
        meta = fmt.nbgrader_meta(cell)
        if meta and fmt.role(cell):
            src_by_id.setdefault(meta["grade_id"], cell)
    src_texts = {fmt.normalise(c.source) for c in source.cells}
    released = {gid: fmt.normalise(fmt.strip_hidden(c.source)) for gid, c in src_by_id.items()}

    notes: list[str] = []
    flagged = False
    answers: dict[str, list] = {}  # grade_id -> student's cells with that id, in order
    for cell in submission.cells:
        meta = fmt.nbgrader_meta(cell)
        if meta and meta["grade_id"] in src_by_id:
            answers.setdefault(meta["grade_id"], []).append(cell)
        elif meta and fmt.role(cell):
            notes.append(
                f"cell with unknown grade_id {meta['grade_id']!r} graded as an ordinary cell"
            )
            flagged = True

    # What the student did to the cells that are restored from the source.
    for gid, src in src_by_id.items():
        r = fmt.role(src)
        found = answers.get(gid, [])
        if r in ("test", "locked", "task"):
            what = {"test": "test cell", "locked": "read-only cell", "task": "task cell"}[r]
            if not found:
                notes.append(f"{what} {gid} deleted: restored")
                flagged = True
            else:
                if len(found) > 1:
                    notes.append(f"{what} {gid} duplicated ({len(found)}x): run once")
                    flagged = True
                if any(fmt.normalise(c.source) != released[gid] for c in found):
                    notes.append(f"{what} {gid} edited: restored from the source")
                    flagged = True
        elif r in ("solution", "manual"):
            if not found:
                notes.append(f"solution cell {gid} missing: graded as the empty stub")
                flagged = True
            elif len(found) > 1:
                notes.append(f"solution cell {gid} duplicated ({len(found)}x): all copies run")
                flagged = True

    if mode == "all":
        steps, moved = _build_all(source, submission, src_by_id, answers)
        notes += moved
        flagged = flagged or bool(moved)
    else:
        steps = _build_exercises(source, src_by_id, answers)

    touched = set()
    for step in steps:
        if step.origin == "student" and step.is_code and step.run:
            if fmt.normalise(step.cell.source) in src_texts:
                continue  # the instructor's own cell, unchanged
            touched.update(scan(step.cell.source))
    if touched:
        notes.append("solution code uses " + ", ".join(sorted(touched)) + ": check by hand")
        flagged = True

    setup = [c.source for c in fmt.setup_cells(source)]
    skipped = 0
    if mode == "exercises":
        known = {fmt.normalise(c.source) for c in source.cells}
        skipped = sum(
            1
            for c in submission.cells
            if c.cell_type == "code"
            and fmt.nbgrader_meta(c) is None
            and c.source.strip()
            and fmt.normalise(c.source) not in known
        )
    names = frozenset().union(
        *(defined_names(c.source) for c in src_by_id.values() if fmt.role(c) == "solution")
    )
    return Plan(steps, setup, notes, flagged, mode, skipped, names)


def defined_names(code: str) -> set[str]:
    """Top-level names a cell binds (functions, classes, assignments; not imports): the names a
    test must take from the student's kernel, never from the trusted interpreter's setup."""
    from dlcourse.grading._trusted import python_source

    try:
        tree = ast.parse(python_source(code))
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def _source_order(source, src_by_id) -> list[str]:
    """The source's grade_ids in order."""
    out = []
    for cell in source.cells:
        meta = fmt.nbgrader_meta(cell)
        gid = meta["grade_id"] if meta and fmt.role(cell) else None
        if gid is not None and src_by_id.get(gid) is cell:
            out.append(gid)
    return out


def _choose_copies(source, submission, src_by_id) -> tuple[dict[str, int | None], list[str]]:
    """Which of the student's copies of each restored cell runs: the first one after the cell
    that precedes it in the source (a check moved above its exercise would fail for nothing)."""
    where: dict[str, list[int]] = {}
    for i, cell in enumerate(submission.cells):
        meta = fmt.nbgrader_meta(cell)
        if meta and meta["grade_id"] in src_by_id:
            where.setdefault(meta["grade_id"], []).append(i)
    chosen: dict[str, int | None] = {}
    notes = []
    last = -1
    for gid in _source_order(source, src_by_id):
        found = where.get(gid, [])
        if fmt.role(src_by_id[gid]) in ("solution", "manual"):
            pick = found[0] if found else None
        else:
            pick = next((i for i in found if i > last), None)
            if found and pick is None:
                notes.append(f"cell {gid} moved above the cell before it: run after that cell")
        chosen[gid] = pick
        if pick is not None:
            last = pick
    return chosen, notes


def _build_all(source, submission, src_by_id, answers) -> tuple[list[Step], list[str]]:
    chosen, notes = _choose_copies(source, submission, src_by_id)
    steps: list[Step] = []
    placed: dict[str, int] = {}
    for i, cell in enumerate(submission.cells):
        meta = fmt.nbgrader_meta(cell)
        gid = meta["grade_id"] if meta else None
        if gid in src_by_id:
            src = src_by_id[gid]
            if fmt.role(src) in ("solution", "manual"):
                if chosen[gid] != i:  # a copy: runs as the student's code, scores nothing
                    steps.append(Step(_plain(_answer(src, cell)), None, "student"))
                    steps[-1].segments = _code_segments(steps[-1].cell)
                    continue
                step = _source_step(_answer(src, cell), origin="student")
            elif chosen[gid] == i:
                step = _source_step(src)
            else:
                continue  # a duplicate, or a copy in the wrong place
            placed[gid] = len(steps)
            steps.append(step)
        else:
            step = Step(_plain(cell), None, "student")
            step.segments = _code_segments(step.cell)
            steps.append(step)

    # Put back what is missing, after the cell that precedes it in the source.
    previous: str | None = None
    for cell in source.cells:
        meta = fmt.nbgrader_meta(cell)
        gid = meta["grade_id"] if meta and fmt.role(cell) else None
        if gid is None or src_by_id.get(gid) is not cell:
            continue
        if gid not in placed:
            r = fmt.role(cell)
            step = (
                _source_step(_stub(cell), origin="stub")
                if r in ("solution", "manual")
                else _source_step(cell)
            )
            at = placed[previous] + 1 if previous in placed else _first_anchor(placed, source, gid)
            steps.insert(at, step)
            for k, v in placed.items():
                if v >= at:
                    placed[k] = v + 1
            placed[gid] = at
        previous = gid
    return steps, notes


def _first_anchor(placed, source, gid) -> int:
    """Where a missing cell goes when no cell before it in the source is present: before the
    first present cell that follows it, else at the end."""
    after = False
    for cell in source.cells:
        meta = fmt.nbgrader_meta(cell)
        g = meta["grade_id"] if meta else None
        if g == gid:
            after = True
        elif after and g in placed:
            return placed[g]
    return max(placed.values(), default=-1) + 1


def _code_segments(cell) -> list[fmt.Segment]:
    if cell.cell_type == "code" and cell.source.strip():
        return [fmt.Segment(cell.source, False)]
    return []


def _build_exercises(source, src_by_id, answers) -> list[Step]:
    setup_ids = {id(c) for c in fmt.setup_cells(source)}
    steps: list[Step] = []
    for cell in source.cells:
        meta = fmt.nbgrader_meta(cell)
        gid = meta["grade_id"] if meta and fmt.role(cell) else None
        if gid is not None and src_by_id.get(gid) is cell:
            r = fmt.role(cell)
            if r in ("solution", "manual"):
                found = answers.get(gid)
                if not found:
                    steps.append(_source_step(_stub(cell), origin="stub"))
                    continue
                steps.append(_source_step(_answer(cell, found[0]), origin="student"))
                for extra in found[1:]:
                    step = Step(_plain(_answer(cell, extra)), None, "student")
                    step.segments = _code_segments(step.cell)
                    steps.append(step)
            else:
                steps.append(_source_step(cell))
        elif id(cell) in setup_ids:
            steps.append(_source_step(cell))
        elif cell.cell_type != "code":
            steps.append(_source_step(cell, run=False))
    return steps
