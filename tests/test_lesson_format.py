"""Every lesson notebook follows the course's conventions (docs/CONVENTIONS.md).

Required cells in order, clean metadata, stripped outputs (except cells kept on purpose, whose
output nbval checks), no forbidden patterns, a Colab badge pointing at the notebook itself, and
nbgrader-format exercises: each solution cell followed by its check cell with hidden tests.
"""

import json
import re
from pathlib import Path

import pytest

LESSONS = sorted((Path(__file__).resolve().parents[1] / "lessons").glob("[0-9][0-9]_*.ipynb"))
REQUIRED_TAGS = ["title", "colab", "colab-install", "setup", "parameters", "summary"]
COLAB = "https://colab.research.google.com/github/dlcourse/dlcourse/blob/main/student/{}"
FORBIDDEN = [
    (re.compile(r"\btensorflow\.keras\b|\btf\.keras\b"), "tf.keras (use Keras 3: import keras)"),
    (re.compile(r"\.h5\b"), "legacy .h5 files (save as .keras)"),
    (re.compile(r"^\s*from\s+\S+\s+import\s+\*", re.M), "a star import"),
    (re.compile(r"^\s*[!%]\s*pip\b", re.M), "an unguarded pip install"),
]


def _load(path):
    return json.loads(path.read_text())


def _src(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def test_there_are_lessons():
    assert LESSONS, "lessons/ holds no NN_slug.ipynb notebook"


@pytest.fixture(params=LESSONS, ids=[p.stem for p in LESSONS])
def lesson(request):
    return request.param, _load(request.param)


def test_required_cells_in_order(lesson):
    path, nb = lesson
    positions = {}
    for i, cell in enumerate(nb["cells"]):
        for tag in _tags(cell):
            if tag in REQUIRED_TAGS:
                assert tag not in positions, f"{path.name}: two cells tagged {tag!r}"
                positions[tag] = i
    missing = [t for t in REQUIRED_TAGS if t not in positions]
    assert not missing, f"{path.name}: no cell tagged {missing}"
    order = [positions[t] for t in REQUIRED_TAGS]
    assert order == sorted(order), f"{path.name}: required cells out of order {positions}"
    assert positions["summary"] == len(nb["cells"]) - 1, "the summary is the last cell"
    kinds = {t: nb["cells"][positions[t]]["cell_type"] for t in REQUIRED_TAGS}
    assert kinds == {
        "title": "markdown",
        "colab": "markdown",
        "colab-install": "code",
        "setup": "code",
        "parameters": "code",
        "summary": "markdown",
    }


def test_title_goals_metadata(lesson):
    path, nb = lesson
    number = path.name[:2]
    meta = nb["metadata"].get("dlcourse", {})
    assert meta.get("lesson") == number and meta.get("title") and meta.get("idea")
    title = next(c for c in nb["cells"] if "title" in _tags(c))
    text = _src(title)
    assert text.startswith(f"# {number} · {meta['title']}"), text.splitlines()[0]
    assert re.search(r"learning goals", text, re.I), "the title cell lists learning goals"
    summary = _src(next(c for c in nb["cells"] if "summary" in _tags(c)))
    assert re.search(r"summary", summary, re.I) and re.search(r"question", summary, re.I)


def test_colab_badge_opens_the_student_version_of_this_notebook(lesson):
    path, nb = lesson
    badge = _src(next(c for c in nb["cells"] if "colab" in _tags(c)))
    assert COLAB.format(path.name) in badge
    assert "colab-badge.svg" in badge


def test_colab_install_is_guarded(lesson):
    path, nb = lesson
    cell = _src(next(c for c in nb["cells"] if "colab-install" in _tags(c)))
    assert '"google.colab" in sys.modules' in cell or "'google.colab' in sys.modules" in cell
    for line in cell.splitlines():
        if "pip install" in line:
            assert line.startswith((" ", "\t")), f"pip outside the Colab guard: {line!r}"


def test_setup_and_parameters(lesson):
    path, nb = lesson
    setup = _src(next(c for c in nb["cells"] if "setup" in _tags(c)))
    assert "dlcourse.config.setup(" in setup or "config.setup(" in setup
    params = _src(next(c for c in nb["cells"] if "parameters" in _tags(c)))
    assert "FAST" in params


def test_no_forbidden_patterns(lesson):
    path, nb = lesson
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = _src(cell)
        for pattern, what in FORBIDDEN:
            if what.startswith("an unguarded pip") and "colab-install" in _tags(cell):
                continue
            assert not pattern.search(src), f"{path.name} cell {i}: {what}"


def test_outputs_stripped_and_metadata_clean(lesson):
    import nbformat

    from dlcourse.course import notebooks

    path, nb = lesson
    assert set(nb["metadata"]) <= {"kernelspec", "language_info", "dlcourse"}, nb["metadata"].keys()
    assert nb["metadata"].get("kernelspec", {}).get("name", "python3") == "python3"
    problems = notebooks.problems(nbformat.read(path, as_version=4))
    assert not problems, (
        f"{path.name}: {problems} (python -m dlcourse.course.notebooks strip/refresh)"
    )
    for i, cell in enumerate(nb["cells"]):
        extra = set(cell.get("metadata", {})) - {"tags", "nbgrader", "editable", "deletable"}
        assert not extra, f"{path.name} cell {i}: stray cell metadata {extra}"


def test_exercises_are_in_nbgrader_format(lesson):
    path, nb = lesson
    cells = nb["cells"]
    solutions = [
        i for i, c in enumerate(cells) if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    ]
    assert len(solutions) >= 2, f"{path.name}: at least two exercises"
    ids = set()
    for i in solutions:
        meta = cells[i]["metadata"]["nbgrader"]
        src = _src(cells[i])
        assert "### BEGIN SOLUTION" in src and "### END SOLUTION" in src, f"{path.name} cell {i}"
        check = cells[i + 1]
        cmeta = check.get("metadata", {}).get("nbgrader", {})
        assert cmeta.get("grade") is True and cmeta.get("locked") is True, (
            f"{path.name} cell {i + 1}: the check cell follows its solution cell"
        )
        assert cmeta.get("points", 0) > 0
        csrc = _src(check)
        assert "### BEGIN HIDDEN TESTS" in csrc and "### END HIDDEN TESTS" in csrc
        visible = csrc.split("### BEGIN HIDDEN TESTS")[0]
        assert visible.strip(), (
            f"{path.name} cell {i + 1}: no visible check before the hidden tests"
        )
        for gid in (meta["grade_id"], cmeta["grade_id"]):
            assert gid not in ids, f"{path.name}: duplicate grade_id {gid}"
            ids.add(gid)


def test_setup_cell_imports_dlcourse_before_anything_else(lesson):
    # dlcourse's import hook keeps TensorFlow's log lines out of a plain kernel only for imports
    # after it; `# isort: split` stops ruff from moving keras above it (tests/test_student_kernel.py)
    _, nb = lesson
    setup = _src(next(c for c in nb["cells"] if "setup" in _tags(c))).splitlines()
    assert setup[0].startswith("import dlcourse  #"), setup[0]
    assert "# isort: split" in setup[:3]
