"""Isolation and resources of the grading sandbox (issue 12, classes 1, 3, 5 and 6), end to end.

One batch (``--workers 2``) is graded by a **non-root user** (when the suite runs as root, as in
CI: a throw-away user id that no account has, so nothing is added to the system's user database)
in a subprocess that reports its own peak memory: an output flood
beside an honest submission, a submission with modules beside its notebook named like the
kernel's and the checks' (``numpy.py``, ``json.py``, ``dlcourse/``...), one that searches every
file it can read under ``/proc`` (and ``/tmp``, ``/run``, ``/etc``) and its environment for a
secret put in the grader's environment, and one that fills every folder it can write.
A second, one-submission batch gives the honest submission's time alone.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from dlcourse.grading.course import Course

sys.path.insert(0, str(Path(__file__).parent))
from test_grading_sandbox import FIXTURES, LESSON, require_sandbox  # noqa: E402

from conftest import load_fixture  # noqa: E402

sys.path.pop(0)

pytestmark = pytest.mark.sandbox

FIRST_UID = 1_800_000_000
"""Throw-away user ids are taken from here: below the grader's sandbox users (``slot_uid``) and
below 2**31 (bubblewrap writes the user namespace's id map with ``%d``)."""
SECRET = "s3cr3t-of-the-grader-7f1c9"
TMP_MB, SHM_MB = 64, 16
FILL_LIMIT = 3 * TMP_MB * 2**20  # a filler stops here: a missing cap fails the test, not the disk
TIMEOUT = 30
REPO = Path(__file__).resolve().parents[1]


isolation = load_fixture("isolation")


def grader_user() -> tuple[int, int] | None:
    """(uid, gid) of an unprivileged user to grade as; None if we already are one. A throw-away
    id that no account, group or process has: ``setpriv`` needs no account, and nothing of it
    stays on the system after the test (``test_no_user_is_left_behind``)."""
    if os.geteuid() != 0:
        return None
    from dlcourse.grading.kernel import user_tasks

    uid = FIRST_UID + os.getpid() % 1_000_000
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            try:
                grp.getgrgid(uid)
            except KeyError:
                if not user_tasks(uid):
                    return uid, uid
        uid += 1


def _hidden_ancestors(paths) -> list[tuple[Path, str]]:
    """(folder, child) pairs where another user cannot traverse ``folder`` on the way to a path
    the grader needs (e.g. an interpreter under /root/.pyenv)."""
    out = []
    for path in paths:
        path = Path(path).resolve()
        for parent in reversed(path.parents):
            child = path.relative_to(parent).parts[0]
            if not parent.stat().st_mode & stat.S_IXOTH and (parent, child) not in out:
                out.append((parent, child))
    return out


def as_user(cmd: list[str], ids: tuple[int, int] | None) -> list[str]:
    """``cmd`` run as the user ``ids``: in a private mount namespace where folders on the way to
    the interpreter that the user could not traverse are replaced by traversable ones holding
    only the needed child (nothing changes outside that namespace)."""
    if ids is None:
        return cmd
    needed = [sys.executable, os.path.realpath(sys.executable), sys.prefix, sys.base_prefix, REPO]
    script = ["set -e"]
    for parent, child in _hidden_ancestors(needed):
        script += [
            f'keep=$(mktemp -d); mount --bind "{parent / child}" "$keep"',
            f'mount -t tmpfs -o mode=755,size=1m tmpfs "{parent}"',
            f'mkdir -p "{parent / child}"; mount --move "$keep" "{parent / child}"',
        ]
    script.append(f'exec setpriv --reuid={ids[0]} --regid={ids[1]} --clear-groups "$@"')
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        "\n".join(script),
        "sh",
        *cmd,
    ]


def run_grader(root: Path, workers: int, ids) -> dict:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(root),
        "USER": "grader",  # the throw-away id has no account to take a name from
        "LOGNAME": "grader",
        "LANG": "C.UTF-8",
        "DLCOURSE_TEST_SECRET": SECRET,  # must reach no student code
        "CI": os.environ.get("CI", ""),
    }
    cmd = [sys.executable, str(FIXTURES / "run_grade.py"), str(root / "course"), LESSON]
    cmd += [str(workers), str(TIMEOUT), str(TMP_MB), str(SHM_MB)]
    res = subprocess.run(as_user(cmd, ids), env=env, capture_output=True, text=True, timeout=600)
    line = next((x for x in res.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert res.returncode == 0 and line, res.stderr[-3000:]
    return json.loads(line[len("RESULT ") :])


def _course(parent: Path, name: str, ids) -> Path:
    from dlcourse.grading.release import release

    root = Path(tempfile.mkdtemp(prefix=name, dir=parent))
    course = Course(root / "course")
    (released,) = release(course, [str(FIXTURES / f"{LESSON}.ipynb")])
    assert released.ok, released.problems
    return root


def _chown(root: Path, ids) -> None:
    if ids is None:
        return
    for path in [root, *root.rglob("*")]:
        os.chown(path, *ids, follow_symlinks=False)
    root.chmod(0o755)


ACCOUNTS = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")


def _accounts() -> dict[str, bytes]:
    out = {}
    for path in ACCOUNTS:
        try:
            out[path] = Path(path).read_bytes()
        except OSError:
            out[path] = b""
    return out


@pytest.fixture(scope="module")
def batch():
    require_sandbox()
    accounts = _accounts()
    ids = grader_user()
    parent = Path(tempfile.mkdtemp(prefix="dlcourse-isolation-"))
    parent.chmod(0o755)
    try:
        root = _course(parent, "batch", ids)
        course = Course(root / "course")
        released = nbformat.read(course.release_dir / LESSON / f"{LESSON}.ipynb", as_version=4)
        for student, (nb, files) in isolation.make(released, SECRET, FILL_LIMIT).items():
            folder = course.submitted / student / LESSON
            folder.mkdir(parents=True)
            nbformat.write(nb, folder / f"{LESSON}.ipynb")
            for rel, text in files.items():
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_text(text)
        _chown(root, ids)
        pair = run_grader(root, 2, ids)
        size_after = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())

        alone = _course(parent, "alone", ids)
        folder = Course(alone / "course").submitted / "b_normal" / LESSON
        folder.mkdir(parents=True)
        shutil.copy(course.submitted / "b_normal" / LESSON / f"{LESSON}.ipynb", folder)
        _chown(alone, ids)
        single = run_grader(alone, 1, ids)
        yield {
            "course": course,
            "pair": pair,
            "single": single,
            "ids": ids,
            "size": size_after,
            "accounts": accounts,
        }
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _printed(course: Course, student: str, tag: str) -> dict:
    nb = nbformat.read(course.autograded / student / LESSON / f"{LESSON}.ipynb", 4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith(tag + " "):
                    return json.loads(line[len(tag) + 1 :])
    raise AssertionError(f"{student} printed no {tag} line")


def test_grades_status_and_reason(batch):
    rows = batch["pair"]["rows"]
    for student, (score, status, reason) in isolation.EXPECTED.items():
        row = rows[student]
        assert (row["score"], row["status"]) == (score, status), (student, row)
        assert re.search(reason, row["reason"]), (student, row["reason"])


def test_grader_was_not_root(batch):
    found = _printed(batch["course"], "d_secret", "SECRET")
    assert found["uid"] != 0
    if batch["ids"] is not None:  # run by root: the grader ran as the throw-away user
        assert found["uid"] == batch["ids"][0]


def test_no_user_is_left_behind(batch):
    """The non-root grader leaves no account, group or process on the system."""
    assert _accounts() == batch["accounts"], "the user/group database changed"
    if batch["ids"] is not None:
        from dlcourse.grading.kernel import user_tasks

        uid, gid = batch["ids"]
        with pytest.raises(KeyError):
            pwd.getpwuid(uid)
        with pytest.raises(KeyError):
            grp.getgrgid(gid)
        assert user_tasks(uid) == 0, "processes of the grader's user are still running"


def test_student_files_shadow_nothing(batch):
    """Class 1: nothing of the student's but the notebook is staged, and neither the working
    folder nor '' is on the kernel's sys.path (the shadowing modules would have stopped it)."""
    seen = _printed(batch["course"], "c_shadow", "PATHS")
    assert seen["listing"] == [f"{LESSON}.ipynb"]
    assert "" not in seen["path"] and seen["cwd"] not in seen["path"]
    assert not seen["json"].startswith(seen["cwd"])
    reason = batch["pair"]["rows"]["c_shadow"]["reason"]
    for name in isolation.SHADOW_FILES:
        assert name in reason


def test_no_secret_reaches_student_code(batch):
    """Class 3: the grader's environment is in no environment variable and no file under /proc
    (pid 1 of the sandbox included), /tmp, /run or /etc of the sandbox, the grader not root."""
    found = _printed(batch["course"], "d_secret", "SECRET")
    assert found["read"] > 50  # it did read /proc/1/environ and the rest
    assert found["found"] == []


def test_flood_costs_its_neighbour_nothing(batch):
    """Class 5: output is capped before the grader parses it: beside a 1 GB print, a 20 MB
    message and 200,000-character lines of ``\\r``, the honest submission keeps its marks and
    about its time, and the grader's memory stays bounded."""
    pair, single = batch["pair"]["rows"]["b_normal"], batch["single"]["rows"]["b_normal"]
    assert (pair["score"], pair["status"], pair["reason"]) == (6, "graded", "")
    # generous: the flood's kernel takes a core of the two; the grader's loop must not stall
    assert pair["seconds"] < 3 * single["seconds"] + 10, (pair, single)
    # the grader's own peak memory (it imports TensorFlow through dlcourse: ~640 MB here) grows
    # by less than the 1 GB the flood printed (it reached 3.6 GB before the caps)
    assert batch["pair"]["maxrss_mb"] < batch["single"]["maxrss_mb"] + 300, batch


def test_every_writable_path_is_capped(batch):
    """Class 6: the sandbox can write only into its /tmp and /dev/shm (size-capped tmpfs), never
    more than their caps in all, nothing to the host (the course grew by its results only), and
    a full /tmp is a reason."""
    filled = _printed(batch["course"], "e_fill", "FILL")
    assert filled["writable"], filled
    for folder in filled["writable"]:
        assert folder == "/dev/shm" or folder == "/tmp" or folder.startswith("/tmp/"), filled
    assert sum(filled["accepted"].values()) <= (TMP_MB + SHM_MB) * 2**20, filled
    assert filled["accepted"]["/tmp"] > (TMP_MB - 8) * 2**20  # it did fill /tmp
    assert batch["size"] < 20 * 2**20
