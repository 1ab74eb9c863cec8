"""End to end, in the sandbox: release the fixture lesson, grade a battery of hostile submissions.

One batch (``--workers 2``) grades every submission of ``fixtures/grading/hostile.py``; the tests
then check each grade, status and reason, that the snooping submission reached nothing, that
nothing outside the sandbox changed, that no sandboxed process survived, and that the feedback
shows no hidden test. Needs bubblewrap: skipped without it, except in CI (``CI`` set), where a
missing sandbox is a failure.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import nbformat
import pytest

from conftest import load_fixture
from dlcourse.grading import leaks, merge
from dlcourse.grading import nbformat_grading as fmt
from dlcourse.grading.course import Course
from dlcourse.grading.execute import Runner
from dlcourse.grading.sandbox import GIB, Limits, SandboxConfig, find_bwrap, probe, slot_uid

pytestmark = pytest.mark.sandbox

FIXTURES = Path(__file__).parent / "fixtures" / "grading"
LESSON = "00_fixture"
TIMEOUT = 10


hostile = load_fixture("hostile")


def require_sandbox() -> str:
    bwrap = find_bwrap()
    problem = "bubblewrap (bwrap) is not installed" if bwrap is None else probe(bwrap)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the sandbox tests, but: {problem}")
        pytest.skip(f"no sandbox: {problem}")
    return bwrap


def snapshot(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []
        for p in paths:
            if p.is_symlink():
                out[str(p)] = "link:" + os.readlink(p)
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def sandbox_processes() -> list[int]:
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
            uid = int(next(x for x in lines if x.startswith("Uid:")).split()[1])
        except (OSError, StopIteration, ValueError):
            continue
        if uid in (slot_uid(0), slot_uid(1)):  # this process's sandboxes, not other graders'
            pids.append(int(status.parent.name))
    return pids


class Listener:
    """A TCP server on the host's loopback that counts who connects."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def write_submission(course: Course, student: str, content) -> None:
    folder = course.submitted / student / LESSON
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{LESSON}.ipynb"
    if content is None:
        return
    if content == "symlink":
        os.symlink(course.source / LESSON / f"{LESSON}.ipynb", target)
    elif isinstance(content, tuple):
        nbformat.write(content[1], folder / content[0])
    elif isinstance(content, bytes):
        target.write_bytes(content)
    else:
        nbformat.write(content, target)


@pytest.fixture(scope="module")
def battery(tmp_path_factory):
    require_sandbox()
    from dlcourse.grading.grade import grade
    from dlcourse.grading.release import release

    tmp = tmp_path_factory.mktemp("battery")
    course = Course(tmp / "course")
    released = release(course, [str(FIXTURES / f"{LESSON}.ipynb")])
    assert released[0].ok, released[0].problems
    student_nb = nbformat.read(course.release_dir / LESSON / f"{LESSON}.ipynb", as_version=4)

    outside = tmp / "outside"
    outside.mkdir()
    (outside / "marker.txt").write_text("a file of the grader's, outside the course")
    listener = Listener()
    paths = {
        "reads": [
            str(course.source / LESSON / f"{LESSON}.ipynb"),
            str(course.gradebook),
            str(course.submitted / "correct" / LESSON),
            str(course.root),
            str(outside / "marker.txt"),
            str(Path(__file__).parents[1] / "lessons"),
            "/etc/shadow",
        ],
        "writes": [
            str(course.grades_csv),
            str(course.gradebook),
            str(outside / "written.txt"),
            str(course.source / LESSON / "evil.txt"),
        ],
        "port": listener.port,
    }
    for student, content in hostile.make(student_nb, paths).items():
        write_submission(course, student, content)

    watched = (course.source, course.release_dir, course.submitted, outside)
    before = snapshot(*watched)
    os.environ["DLCOURSE_TEST_SECRET"] = "must not reach the sandbox"
    start = time.monotonic()
    try:
        rows = grade(
            course,
            [LESSON],
            timeout=TIMEOUT,
            workers=2,
            progress=False,
            mode="all",  # the nbgrader-like path: every cell of the student's runs
            limits=Limits(memory=int(1.5 * GIB), cpu=3, nproc=64),
        )
    finally:
        os.environ.pop("DLCOURSE_TEST_SECRET", None)
        listener.close()
    seconds = time.monotonic() - start
    deadline = time.monotonic() + 10
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    return {
        "course": course,
        "rows": {r.student: r for r in rows},
        "paths": paths,
        "before": before,
        "after": snapshot(*watched),
        "outside": outside,
        "connections": listener.connections,
        "leftover": sandbox_processes(),
        "seconds": seconds,
    }


@pytest.mark.parametrize("student", sorted(hostile.EXPECTED))
def test_grade_status_and_reason(battery, student):
    score, status, reason = hostile.EXPECTED[student]
    row = battery["rows"][student]
    assert (row.score, row.max_score, row.status) == (score, 6, status), row.reason
    assert re.search(reason, row.reason), row.reason


def test_grades_csv(battery):
    course = battery["course"]
    with course.grades_csv.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["student", "lesson", "score", "max_score", "status", "reason"]
    assert sorted(r["student"] for r in rows) == sorted(hostile.EXPECTED)
    assert all(r["lesson"] == LESSON and r["max_score"] == "6" for r in rows)
    assert "hacked" not in course.grades_csv.read_text()


def _snoop(battery) -> dict:
    nb = nbformat.read(battery["course"].autograded / "snoop" / LESSON / f"{LESSON}.ipynb", 4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("text", "").startswith("SNOOP "):
                return json.loads(output["text"][len("SNOOP ") :])
    raise AssertionError("the snooping submission printed nothing")


def test_sandbox_reaches_nothing(battery):
    found = _snoop(battery)
    for path in battery["paths"]["reads"]:
        assert found[path] in ("FileNotFoundError", "PermissionError"), (path, found[path])
    for path in battery["paths"]["writes"]:
        assert found["write " + path] in ("FileNotFoundError", "PermissionError", "OSError"), path
    assert found["network"] in ("ConnectionRefusedError", "OSError", "TimeoutError")
    assert battery["connections"] == 0
    assert found["env"] == []  # the grader's environment (a secret in it) stays outside
    assert len(found["pids"]) <= 3  # its own pid namespace: no grader, no other kernel
    assert found["uid"] != 0 or os.geteuid() != 0
    assert found["fast"] == "1"


def test_nothing_outside_changed(battery):
    assert battery["before"] == battery["after"]
    assert not (battery["outside"] / "written.txt").exists()


def test_no_sandboxed_process_survives(battery):
    assert battery["leftover"] == []


def test_feedback_hides_hidden_tests(battery):
    course = battery["course"]
    source = fmt.read_notebook(course.source / LESSON / f"{LESSON}.ipynb")
    hidden = leaks.secret_lines(source, hidden_only=True)
    assert hidden
    files = sorted(course.feedback.rglob("*.html"))
    assert len(files) >= 20
    for path in files:
        text = path.read_text()
        assert not leaks.found_in(text, hidden), path
    hardcoded = (course.feedback / "hardcoded" / LESSON / f"{LESSON}.html").read_text()
    assert "Hidden tests failed." in hardcoded
    assert "AssertionError" not in hardcoded  # the hidden failure's traceback stays out
    assert "0 / 6" in hardcoded
    invalid = (course.feedback / "invalid_json" / LESSON / f"{LESSON}.html").read_text()
    assert "not valid JSON" in invalid  # a student whose file was broken learns why


def test_autograded_notebook_and_gradebook(battery):
    from nbgrader.api import Gradebook

    course = battery["course"]
    nb = nbformat.read(course.autograded / "correct" / LESSON / f"{LESSON}.ipynb", 4)
    assert any(fmt.HIDDEN_BEGIN in c.source for c in nb.cells)  # the instructor's copy
    with Gradebook(course.db_url, "dlcourse") as gb:
        assert gb.find_submission(LESSON, "correct").score == 6
        assert gb.find_submission(LESSON, "wrong").score == 2
        assert gb.find_submission(LESSON, "invalid_json").score == 0


def test_workers_overlap(battery):
    rows = battery["rows"].values()
    assert battery["seconds"] < 0.9 * sum(r.seconds for r in rows)


def test_cpu_limit_kills_a_busy_kernel(tmp_path):
    bwrap = require_sandbox()
    source = fmt.read_notebook(FIXTURES / f"{LESSON}.ipynb")
    submission = hostile.answer(source, ex_00_add="while True:\n    pass")
    plan = merge.build(source, submission, "exercises")
    stage = tmp_path / "stage"
    stage.mkdir(mode=0o755)
    # 3 s, not 1: the limit counts the kernel's start-up too, and on a slow 2-core CPU (an AMD
    # EPYC with a third of the Intel Xeon's peak) the fresh kernel's start-up and setup came
    # close to 1 CPU-second and was once killed as well
    config = SandboxConfig(bwrap=bwrap, limits=Limits(cpu=3))
    run = asyncio.run(Runner(plan, config, stage, tmp_path, timeout=120).run())
    assert [e.detail for e in run.events] == ["CPU time limit (3 s) exceeded"]
    assert run.kernels == 2  # a fresh kernel graded the other exercises
    statuses = {plan.steps[i].grade_id: r[-1].status for i, r in run.results.items()}
    assert statuses["ex-00-words-check"] == statuses["ex-00-mean-check"] == "ok"


def test_cli_grade_exit_code(tmp_path, capsys):
    require_sandbox()
    from dlcourse.grading.cli import main

    course = Course(tmp_path / "course")
    assert main(["release", str(FIXTURES / f"{LESSON}.ipynb"), "--course", str(course.root)]) == 0
    student_nb = nbformat.read(course.release_dir / LESSON / f"{LESSON}.ipynb", as_version=4)
    write_submission(course, "ann", hostile.correct(student_nb))
    args = ["grade", LESSON, "--course", str(course.root), "--timeout", "30", "--quiet"]
    assert main(args) == 0
    write_submission(course, "bob", b"not a notebook")
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "needs a look: 00_fixture bob 0/6 invalid" in out
