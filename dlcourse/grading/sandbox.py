"""The sandbox a submission's kernel runs in: bubblewrap namespaces plus resource limits.

What the student's code sees (tested in ``tests/test_grading_sandbox.py``; docs/grading.md, "Isolation"):

* the system's ``/usr`` (and ``/bin``, ``/lib*``), the interpreter, the virtual environment and the
  ``dlcourse`` package, all **read-only**; a minimal ``/etc`` (loader cache, a two-line passwd);
* a private, size-capped ``/tmp`` holding its working folder (a copy of its own notebook and the
  lesson's released data files), its ``HOME`` and its ZMQ ``ipc`` sockets (TCP cannot cross into a
  network namespace; the grader connects through ``/proc/<sandbox>/root``), and a small
  ``/dev/shm``: the only places it can write, each a size-capped tmpfs (the root and ``/dev`` are
  remounted read-only, the kernel's launch files are bound read-only, its log is a pipe);
* nothing else: not the course folder (``source/`` with solutions and hidden tests, ``gradebook.db``,
  other students' submissions), not the repository's ``lessons/``, no network (``--unshare-net``),
  no other processes (``--unshare-pid``), none of the grader's environment variables (bubblewrap
  itself starts with an empty environment: its pid 1 is readable to the sandbox's user).

As root the kernel drops to ``nobody`` (so ``RLIMIT_NPROC`` applies and files the grader owns
stay out of reach even if bound by mistake). Limits: address space (memory), CPU seconds, file size,
processes. Without bubblewrap the same launcher and limits apply, but the file system and the
network are the grader's: ``dlcourse grade`` refuses that unless told to accept the risk.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

LAUNCHER = Path(__file__).with_name("_launch.py")
KERNEL = Path(__file__).with_name("_kernel.py")
RUN = "/run/dlcourse"
"""Where the sandbox sees the kernel's runtime folder (launch spec, connection file), read-only."""
IPC = "/tmp/.ipc"
"""The kernel's ZMQ sockets inside the sandbox (in its size-capped /tmp)."""
BWRAP_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
"""The whole environment bubblewrap starts with: its pid 1 in the sandbox keeps it, readable by
the sandbox's user when the grader is not root, so nothing of the grader's (secrets) is in it."""
NOBODY = 65534
UID_BASE = 2_000_000_000


def slot_uid(slot: int) -> int:
    """A user id for parallel sandbox ``slot`` of this grader process, used by no one else."""
    return UID_BASE + (os.getpid() * 256 + slot) % 100_000_000


GIB = 2**30
MIB = 2**20


SYSTEM = tuple(
    Path(p)
    for p in (
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/etc",
        "/proc",
        "/dev",
    )
)


def _parents(path: Path, made: set[Path]) -> list[str]:
    """``--dir`` options for the missing parents of a mount point: bwrap would create them with
    mode 0700, which the sandbox user (nobody) cannot traverse."""
    out: list[str] = []
    for parent in reversed(path.parents):
        if (
            parent not in (Path("/"), Path("/tmp"))
            and parent not in made
            and not _within(parent, SYSTEM)
        ):
            out += ["--perms", "0755", "--dir", str(parent)]
            made.add(parent)
    return out


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces on this machine."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource caps of one kernel process (``setrlimit`` in the launcher, ``tmpfs`` sizes)."""

    memory: int = 4 * GIB
    """Address space in bytes (``RLIMIT_AS``); TensorFlow alone maps ~1.5 GB after import."""
    cpu: int = 900
    """CPU seconds of the kernel process (``RLIMIT_CPU``), all its threads together."""
    nproc: int = 512
    """Processes and threads of the sandbox user (``RLIMIT_NPROC``, only when dropped to nobody)."""
    fsize: int = 512 * MIB
    """Largest file the kernel may write (``RLIMIT_FSIZE``)."""
    tmp: int = 1 * GIB
    """Size of the private ``/tmp`` (working folder, HOME, ZMQ sockets)."""
    shm: int = 64 * MIB
    """Size of ``/dev/shm`` (POSIX shared memory, semaphores)."""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def find_bwrap() -> str | None:
    """Path of the ``bwrap`` program, or None."""
    return shutil.which("bwrap") or (
        "/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None
    )


def package_dir() -> Path:
    spec = importlib.util.find_spec("dlcourse")  # finds without importing (no TensorFlow)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _within(path: Path, parents) -> bool:
    return any(path == p or p in path.parents for p in parents)


def python_paths() -> list[Path]:
    """Folders the kernel needs read-only: interpreter, venv, site-packages, the package."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    candidates += [os.path.realpath(p) for p in candidates]
    candidates += [os.path.dirname(os.path.realpath(sys.executable))]
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        candidates.append(sysconfig.get_paths().get(key, ""))
    candidates.append(str(package_dir()))
    out: list[Path] = []
    for c in sorted({Path(c) for c in candidates if c}, key=lambda p: len(p.parts)):
        if c.exists() and not _within(c, out) and c != Path("/"):
            out.append(c)
    return out


@dataclasses.dataclass
class SandboxConfig:
    """How to wrap a kernel: which paths to bind, which to mask, which user to become."""

    bwrap: str | None
    """bubblewrap, or None to run without a sandbox (the instructor accepted the risk)."""
    hide: tuple[Path, ...] = ()
    """Folders (or files) that must stay invisible even inside a bound folder: the course, the
    lessons, notebooks shipped inside the package."""
    extra_ro: tuple[Path, ...] = ()
    """More folders to bind read-only (e.g. a data folder a custom assignment needs)."""
    limits: Limits = dataclasses.field(default_factory=Limits)
    plain: bool = False
    """No launcher, no limits: an ordinary kernel in ``workdir`` with the caller's environment
    plus FAST mode. For ``dlcourse check`` (the student's own notebook, on any OS)."""
    workdir: Path | None = None
    """Without a sandbox only: run in this folder instead of a copy of the staged files
    (``dlcourse check`` runs the student's notebook where it is, like Jupyter does)."""
    uid: int = NOBODY
    """The unprivileged user the kernel becomes when the grader is root (``RLIMIT_NPROC`` counts
    per user: parallel sandboxes get different users so one fork bomb cannot starve another)."""

    @property
    def drop_to_nobody(self) -> bool:
        return self.bwrap is not None and os.geteuid() == 0

    def prefix(self, runtime: Path, stage: Path) -> list[str]:
        """The bwrap command line that precedes ``python _launch.py SPEC``."""
        if self.bwrap is None:
            return []
        cmd = [self.bwrap, "--die-with-parent", "--new-session", "--clearenv"]
        cmd += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        cmd += ["--unshare-cgroup-try", "--hostname", "sandbox"]
        if self.drop_to_nobody:  # the launcher needs these two to become nobody, then has none
            cmd += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        cmd += ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                cmd += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                cmd += ["--ro-bind", top, top]
        cmd += ["--perms", "0755", "--dir", "/etc"]  # bwrap would make it 0700: unreadable
        for etc in (
            "ld.so.cache",
            "ld.so.conf",
            "ld.so.conf.d",
            "localtime",
            "alternatives",
            "fonts",
        ):
            cmd += ["--ro-bind-try", f"/etc/{etc}", f"/etc/{etc}"]
        cmd += ["--ro-bind", str(runtime / "passwd"), "/etc/passwd"]
        cmd += ["--ro-bind", str(runtime / "group"), "/etc/group"]
        cmd += ["--proc", "/proc", "--dev", "/dev"]
        cmd += ["--perms", "1777", "--size", str(self.limits.shm), "--tmpfs", "/dev/shm"]
        # /tmp before anything bound under /tmp (later mounts win).
        cmd += ["--perms", "1777", "--size", str(self.limits.tmp), "--tmpfs", "/tmp"]
        bound = python_paths() + [Path(p).resolve() for p in self.extra_ro]
        made: set[Path] = set()
        for path in bound:
            cmd += _parents(path, made) + ["--ro-bind", str(path), str(path)]
        hidden = [Path(h).resolve() for h in self.hide]
        for h in hidden:
            if h.is_file() and _within(h, bound):
                cmd += ["--ro-bind", "/dev/null", str(h)]
            elif _within(h, bound):
                cmd += ["--tmpfs", str(h)]
                for path in bound:  # re-expose what is needed inside the masked folder
                    if h in path.parents:
                        cmd += ["--ro-bind", str(path), str(path)]
        # launch spec, connection file, passwd: read-only, so nothing of the host is writable
        cmd += ["--perms", "0755", "--dir", RUN, "--ro-bind", str(runtime), RUN]
        cmd += ["--ro-bind", str(stage), "/submission"]
        # bwrap's root and /dev are tmpfs without a size cap (and writable by the sandbox's user
        # when the grader is not root): read-only once everything is mounted.
        cmd += ["--remount-ro", "/dev", "--remount-ro", "/"]
        cmd += ["--chdir", "/tmp"]
        return cmd

    @staticmethod
    def plain_env() -> dict[str, str]:
        return {"DLCOURSE_FAST": "1", "DLCOURSE_GRADING": "1", "NBGRADER_EXECUTION": "autograde"}

    def write_runtime_files(self, runtime: Path) -> None:
        """Files the sandbox binds from the runtime folder (user database of two lines)."""
        (runtime / "passwd").write_text(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"student:x:{self.uid}:{self.uid}:student:/tmp/home:/usr/sbin/nologin\n"
        )
        (runtime / "group").write_text(f"root:x:0:\nstudent:x:{self.uid}:\n")

    def places(self, runtime: Path, stage: Path) -> dict:
        """Where the launcher finds the staged files and puts the working folder and HOME."""
        if self.bwrap is not None:
            return {
                "stage": "/submission",
                "workdir": "/tmp/work",
                "home": "/tmp/home",
                "tmpdir": "/tmp",
                "ipc": IPC,
                "run": RUN,
            }
        places = {
            "stage": str(stage),
            "workdir": str(runtime / "work"),
            "home": str(runtime / "home"),
            "tmpdir": str(runtime / "tmp"),
            "ipc": None,
            "run": str(runtime),
        }
        if self.workdir is not None:
            places.update(stage=None, workdir=str(self.workdir))
        return places


@functools.lru_cache(maxsize=4)
def probe(bwrap: str) -> str | None:
    """Start an empty sandbox once; return None if it works, else bwrap's error message."""
    config = SandboxConfig(bwrap=bwrap)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dlcourse-probe-") as tmp:
        runtime, stage = Path(tmp, "rt"), Path(tmp, "stage")
        runtime.mkdir()
        stage.mkdir()
        config.write_runtime_files(runtime)
        cmd = config.prefix(runtime, stage) + [sys.executable, "-I", "-c", "print('ok')"]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=BWRAP_ENV)
        except (OSError, subprocess.TimeoutExpired) as e:
            return str(e)
    if res.returncode != 0 or res.stdout.strip() != "ok":
        return (res.stderr.strip() or f"exit code {res.returncode}")[-500:]
    return None


def require_sandbox(allow_unsandboxed: bool = False) -> str | None:
    """The bwrap path to grade with, or None when the instructor allowed grading without one.

    Raises:
        SandboxUnavailable: no working bubblewrap and ``allow_unsandboxed`` is False.
    """
    bwrap = find_bwrap()
    problem = "bubblewrap (bwrap) is not installed" if bwrap is None else probe(bwrap)
    if problem is None:
        return bwrap
    if allow_unsandboxed:
        return None
    raise SandboxUnavailable(
        f"Cannot grade safely: {problem}. Student code would run with your rights and could read "
        "the solutions and the gradebook. Install bubblewrap (Debian/Ubuntu: apt-get install "
        "bubblewrap; where unprivileged user namespaces are restricted, e.g. Ubuntu 24.04, also "
        "sysctl kernel.apparmor_restrict_unprivileged_userns=0), or pass "
        "--no-sandbox-i-accept-the-risk."
    )
