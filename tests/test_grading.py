"""Grading without a sandbox: format, merge, leak check, release, collect, CLI, ``check``.

The sandboxed end-to-end battery is in test_grading_sandbox.py; the real lessons are checked in
test_grading_lessons.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import nbformat
import pytest

from conftest import load_fixture
from dlcourse.grading import leaks, merge
from dlcourse.grading import nbformat_grading as fmt
from dlcourse.grading.course import Course, collect, safe_name
from dlcourse.grading.execute import describe_exit
from dlcourse.grading.sandbox import Limits

FIXTURES = Path(__file__).parent / "fixtures" / "grading"
LESSON = "00_fixture"


hostile = load_fixture("hostile")


@pytest.fixture(scope="module")
def released_course(tmp_path_factory):
    from dlcourse.grading.release import release

    course = Course(tmp_path_factory.mktemp("unit") / "course")
    result = release(course, [str(FIXTURES / f"{LESSON}.ipynb")])
    assert [r.assignment for r in result] == [LESSON]
    assert result[0].ok, result[0].problems
    return course


@pytest.fixture
def source():
    return fmt.read_notebook(FIXTURES / f"{LESSON}.ipynb")


@pytest.fixture
def student(released_course):
    return fmt.read_notebook(released_course.release_dir / LESSON / f"{LESSON}.ipynb")


# -- reading hostile files -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"cells": [', "not valid JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b'{"hello": 1}', "not a Jupyter notebook"),
        (b"[1, 2]", "not a Jupyter notebook"),
        (json.dumps({"cells": [], "nbformat": 3}).encode(), "notebook format 3"),
        (json.dumps({"cells": [{"cell_type": "x"}], "nbformat": 4}).encode(), "cell 0 is not"),
        (
            json.dumps({"cells": [{"cell_type": "code", "source": 3}], "nbformat": 4}).encode(),
            "no text source",
        ),
    ],
)
def test_read_notebook_rejects_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "x.ipynb"
    path.write_bytes(content)
    with pytest.raises(fmt.InvalidNotebook, match=reason):
        fmt.read_notebook(path)


def test_read_notebook_is_lenient_about_what_grading_does_not_use(tmp_path):
    path = tmp_path / "colab.ipynb"
    path.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 0,
                "metadata": {"colab": {}},
                "cells": [
                    {
                        "cell_type": "code",
                        "source": ["a = 1\n", "b = 2"],
                        "metadata": {"id": "xyz"},
                        "outputs": "garbage",
                    }
                ],
            }
        )
    )
    nb = fmt.read_notebook(path)
    assert nb.cells[0].source == "a = 1\nb = 2"
    assert nb.cells[0].outputs == []


# -- the nbgrader format -----------------------------------------------------------------------


def test_our_stubs_and_hidden_stripping_match_nbgrader(source, student):
    by_id = {fmt.nbgrader_meta(c)["grade_id"]: c for c in student.cells if fmt.nbgrader_meta(c)}
    for cell in source.cells:
        r = fmt.role(cell)
        if r == "solution":
            expected = by_id[fmt.nbgrader_meta(cell)["grade_id"]].source
            assert fmt.normalise(fmt.stub_solution(cell.source)) == fmt.normalise(expected)
        elif r == "test":
            expected = by_id[fmt.nbgrader_meta(cell)["grade_id"]].source
            assert fmt.normalise(fmt.strip_hidden(cell.source)) == fmt.normalise(expected)


def test_split_hidden_keeps_order_and_rejects_broken_regions():
    src = "a = 1\n### BEGIN HIDDEN TESTS\nb = 2\n### END HIDDEN TESTS\nc = 3"
    assert [(s.code, s.hidden) for s in fmt.split_hidden(src)] == [
        ("a = 1", False),
        ("b = 2", True),
        ("c = 3", False),
    ]
    with pytest.raises(ValueError, match="without END"):
        fmt.split_hidden("### BEGIN HIDDEN TESTS\nb = 2")
    with pytest.raises(ValueError, match="nested"):
        fmt.split_hidden("### BEGIN HIDDEN TESTS\n### BEGIN HIDDEN TESTS\n")


# -- merging a submission into the source ------------------------------------------------------


def _ids(plan):
    return [s.grade_id or f"<{s.origin}>" for s in plan.steps if s.is_code]


def test_merge_restores_deleted_edited_and_duplicated_cells(source, student):
    nb = hostile.correct(student)
    i = next(
        k
        for k, c in enumerate(nb.cells)
        if fmt.nbgrader_meta(c) and fmt.nbgrader_meta(c)["grade_id"] == "ex-00-words-check"
    )
    del nb.cells[i]  # deleted test
    nb.cells[i + 2].source = "pass"  # edited mean test
    nb.cells.append(copy.deepcopy(nb.cells[i + 2]))  # duplicated mean test
    nb.cells.insert(1, nbformat.v4.new_code_cell("helper = 1"))  # a cell of the student's
    plan = merge.build(source, nb, "all")
    assert _ids(plan) == [
        "<student>",
        "<student>",
        "ex-00-add",
        "ex-00-add-check",
        "ex-00-words",
        "ex-00-words-check",
        "ex-00-mean",
        "ex-00-mean-check",
    ]
    notes = "; ".join(plan.notes)
    assert "ex-00-words-check deleted: restored" in notes
    assert "ex-00-mean-check edited: restored" in notes
    assert "ex-00-mean-check duplicated (2x): run once" in notes
    tests = {s.grade_id: s for s in plan.steps if s.role == "test"}
    assert any(seg.hidden for seg in tests["ex-00-mean-check"].segments)  # the source's version
    assert plan.flagged


def test_merge_runs_a_check_moved_above_its_exercise_after_it(source, student):
    nb = hostile.correct(student)
    gids = [(fmt.nbgrader_meta(c) or {}).get("grade_id") for c in nb.cells]
    check = nb.cells.pop(gids.index("ex-00-add-check"))
    nb.cells.insert(gids.index("ex-00-add"), check)  # the check now precedes the solution
    plan = merge.build(source, nb, "all")
    order = [s.grade_id for s in plan.steps if s.grade_id]
    assert order.index("ex-00-add-check") == order.index("ex-00-add") + 1
    assert any("ex-00-add-check moved above" in n for n in plan.notes)


def test_merge_exercises_mode_runs_setup_and_exercises_only(source, student):
    nb = hostile.correct(student)
    nb.cells.insert(2, nbformat.v4.new_code_cell("import time\ntime.sleep(1000)"))
    plan = merge.build(source, nb, "exercises")
    code = [s for s in plan.steps if s.is_code and s.run]
    assert [s.grade_id for s in code] == [
        None,
        "ex-00-add",
        "ex-00-add-check",
        "ex-00-words",
        "ex-00-words-check",
        "ex-00-mean",
        "ex-00-mean-check",
    ]
    assert "FAST" in code[0].cell.source and code[0].origin == "source"
    assert plan.setup == [code[0].cell.source]


def test_merge_uses_the_stub_for_a_missing_solution_and_ignores_forged_metadata(source, student):
    nb = copy.deepcopy(student)
    nb.cells = [c for c in nb.cells if (fmt.nbgrader_meta(c) or {}).get("grade_id") != "ex-00-add"]
    for c in nb.cells:
        if (fmt.nbgrader_meta(c) or {}).get("grade_id") == "ex-00-add-check":
            c.metadata["nbgrader"]["points"] = 99
    plan = merge.build(source, nb, "all")
    add = next(s for s in plan.steps if s.grade_id == "ex-00-add")
    assert add.origin == "stub" and "NotImplementedError" in add.cell.source
    assert next(s for s in plan.steps if s.grade_id == "ex-00-add-check").points == 1


@pytest.mark.parametrize(
    ("code", "flag"),
    [
        ("get_ipython().set_custom_exc((Exception,), f)", "IPython internals"),
        ("import builtins\nbuiltins.isinstance = lambda *a: True", "builtins"),
        ("import dlcourse.checks as c\nc.check_array = print", "the check functions"),
        ("from dlcourse import reference", "the reference solutions"),
        ("sys.modules['numpy'] = None", "sys.modules"),
        ("x = __import__('os')", "dynamic imports"),
    ],
)
def test_scan_flags_code_that_reaches_into_the_kernel(code, flag):
    assert flag in merge.scan(code)


def test_scan_ignores_ordinary_code_and_comments():
    assert merge.scan("import numpy as np\n# get_ipython() in a comment\nx = np.ones(3)") == []


# -- leaks -------------------------------------------------------------------------------------


def test_release_check_finds_leaks(released_course, source):
    folder = released_course.release_dir / LESSON
    assert leaks.check_release(source, folder) == []
    secrets = leaks.secret_lines(source)
    assert "counts[word] = counts.get(word, 0) + 1" in secrets  # a solution line
    assert "got_hidden = add(a_hidden, b_hidden)" in secrets  # a hidden-test line
    leaky = copy.deepcopy(nbformat.read(folder / f"{LESSON}.ipynb", 4))
    leaky.cells[3].outputs = [
        nbformat.v4.new_output("stream", text="counts[word] = counts.get(word, 0) + 1")
    ]
    other = folder.parent / "leaky"
    other.mkdir()
    nbformat.write(leaky, other / "x.ipynb")
    (other / "notes.txt").write_text("### BEGIN HIDDEN TESTS")
    problems = leaks.check_release(source, other)
    assert any("outputs were not cleared" in p for p in problems)
    assert any("counts.get(word, 0)" in p for p in problems)
    assert any("notes.txt" in p and "BEGIN HIDDEN TESTS" in p for p in problems)


# -- course folder, lesson names, downloads ----------------------------------------------------


def test_resolve_lesson_names(tmp_path, monkeypatch):
    monkeypatch.setenv("DLCOURSE_LESSONS", str(FIXTURES))
    course = Course(tmp_path / "c")
    course.init()
    assert course.resolve("00") == LESSON
    assert course.resolve(LESSON) == LESSON
    assert (course.source / LESSON / f"{LESSON}.ipynb").is_file()
    (course.source / "my_quiz").mkdir()
    (course.source / "my_quiz" / "my_quiz.ipynb").write_text("{}")
    assert course.resolve("my_quiz") == "my_quiz"
    with pytest.raises(LookupError, match="Known: 00_fixture, my_quiz"):
        course.resolve("nope")


def test_collect_downloads_names_students(tmp_path, released_course):
    downloads = tmp_path / "downloads"
    (downloads / "Carol Smith_123_assignsubmission_file_").mkdir(parents=True)
    (downloads / "alice_00_fixture.ipynb").write_text("{}")
    (downloads / "Copy of 00_fixture - bob.ipynb").write_text("{}")
    (downloads / "Carol Smith_123_assignsubmission_file_" / "00_fixture (1).ipynb").write_text("{}")
    (downloads / "..%2F..%2Fetc_00_fixture.ipynb").write_text("{}")
    moved = collect(released_course, downloads, [LESSON])
    students = sorted(dest.parent.parent.name for _, dest in moved)
    assert students == ["2F.._2Fetc", "Carol_Smith", "alice", "bob"]
    for _, dest in moved:
        assert dest.name == f"{LESSON}.ipynb"
        assert dest.resolve().is_relative_to(released_course.submitted)


def test_safe_name():
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("Jane Doe") == "Jane_Doe"
    assert safe_name("...") == "unnamed"


def test_describe_exit():
    limits = Limits(cpu=7)
    assert describe_exit(128 + 24, limits) == "CPU time limit (7 s) exceeded"
    assert describe_exit(128 + 11, limits) == "the kernel crashed (segmentation fault)"
    assert describe_exit(3, limits) == "the kernel exited with status 3"
    assert "exited" in describe_exit(0, limits)


# -- commands ----------------------------------------------------------------------------------


def test_register_adds_the_three_commands():
    import argparse

    from dlcourse.grading.cli import cmd_check, cmd_grade, cmd_release, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["release", "--course", "c"]).func is cmd_release
    args = parser.parse_args(["grade", "01", "--course", "c", "--workers", "2", "--timeout", "5"])
    assert (args.func, args.workers, args.timeout, args.lessons) == (cmd_grade, 2, 5.0, ["01"])
    assert parser.parse_args(["check", "x.ipynb"]).func is cmd_check


def test_grade_refuses_without_a_sandbox(released_course, monkeypatch, capsys):
    from dlcourse.grading import sandbox
    from dlcourse.grading.cli import main

    monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
    assert main(["grade", LESSON, "--course", str(released_course.root)]) == 2
    assert "--no-sandbox-i-accept-the-risk" in capsys.readouterr().err


def test_grade_without_sandbox_when_the_risk_is_accepted(tmp_path, student, monkeypatch):
    from dlcourse.grading import sandbox
    from dlcourse.grading.grade import grade
    from dlcourse.grading.release import release

    monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
    course = Course(tmp_path / "course")
    release(course, [str(FIXTURES / f"{LESSON}.ipynb")])
    folder = course.submitted / "ann" / LESSON
    folder.mkdir(parents=True)
    nbformat.write(hostile.answer(student, ex_00_add=hostile.ADD), folder / f"{LESSON}.ipynb")
    # A helper in a cell of the student's own: `auto` grades a lesson's exercise cells only.
    helper = hostile.answer(student, ex_00_add="def add(a, b):\n    return plus(a, b)")
    helper.cells.insert(2, nbformat.v4.new_code_cell("def plus(a, b):\n    return a + b"))
    (course.submitted / "bea" / LESSON).mkdir(parents=True)
    nbformat.write(helper, course.submitted / "bea" / LESSON / f"{LESSON}.ipynb")
    rows = grade(course, [LESSON], allow_unsandboxed=True, progress=False)
    assert [(r.student, r.score, r.status) for r in rows] == [
        ("ann", 1.0, "graded"),
        ("bea", 0.0, "flagged"),
    ]
    assert "ex-00-add-check: NameError, and 1 code cell(s) of the student's own" in rows[1].reason
    rows = grade(course, [LESSON], allow_unsandboxed=True, progress=False, mode="all")
    assert [(r.student, r.score, r.status) for r in rows] == [
        ("ann", 1.0, "graded"),
        ("bea", 1.0, "graded"),
    ]


def test_check_command(tmp_path, student, capsys):
    from dlcourse.grading.cli import main

    good, bad, broken = tmp_path / "good.ipynb", tmp_path / "bad.ipynb", tmp_path / "broken.ipynb"
    nbformat.write(hostile.correct(student), good)
    nbformat.write(hostile.answer(student, ex_00_add="def add(a, b):\n    return 5"), bad)
    broken.write_text("{")
    assert main(["check", str(good)]) == 0
    assert "3 of 3 checks pass (6 of 6 points)" in capsys.readouterr().out
    assert main(["check", str(bad), "--cells", "exercises"]) == 1
    out = capsys.readouterr().out
    assert "✔ ex-00-add-check" in out  # the visible check cannot see the hard-coded answer
    assert "✘ ex-00-words-check" in out and "still the stub" in out
    assert main(["check", str(broken)]) == 2


def test_feedback_keeps_no_active_content():
    from dlcourse.grading.feedback import _safe_markdown, _safe_output

    out = nbformat.v4.new_output(
        "display_data",
        data={
            "text/html": "<script>alert(1)</script>",
            "application/javascript": "alert(2)",
            "image/svg+xml": "<svg onload='alert(3)'/>",
            "text/plain": "<IPython.display>",
        },
    )
    assert _safe_output(out)["data"] == {"text/plain": "<IPython.display>"}
    assert "<script" not in _safe_markdown("hi <script>alert(1)</script>")
