"""A Jupyter kernel manager that starts the kernel through the sandbox and the launcher.

jupyter_client builds the kernel command in ``format_kernel_cmd``; this manager returns
``bwrap ... python -I _launch.py SPEC`` there instead of ``python -m ipykernel_launcher -f ...``,
and uses ZMQ's ``ipc`` transport with its sockets in a per-kernel runtime folder that is bound
into the sandbox (TCP on loopback cannot cross into an unshared network namespace).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

from dlcourse.grading.sandbox import LAUNCHER, SandboxConfig


def kernel_env(extra: dict | None = None, *, home: str, tmpdir: str) -> dict[str, str]:
    """The kernel's whole environment: FAST and grading mode on, nothing of the grader's secrets."""
    venv_bin = os.path.dirname(sys.executable)
    env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "USER": "student",
        "LOGNAME": "student",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": os.path.join(home, ".matplotlib"),
        "IPYTHONDIR": os.path.join(home, ".ipython"),
        "JUPYTER_RUNTIME_DIR": os.path.join(home, ".jupyter-runtime"),
        "KERAS_HOME": os.path.join(home, ".keras"),
        "TMPDIR": tmpdir,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "DLCOURSE_FAST": "1",
        "DLCOURSE_GRADING": "1",
        "NBGRADER_EXECUTION": "autograde",
    }
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    for name in (
        "KERAS_BACKEND",
        "OMP_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
        "CUDA_VISIBLE_DEVICES",
        "TZ",
    ):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env


def user_tasks(uid: int) -> int:
    """Processes and threads the user ``uid`` runs now (what ``RLIMIT_NPROC`` counts)."""
    tasks = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
            if int(fields["Uid"].split()[1]) == uid:
                tasks += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return tasks


def launch_spec(
    config: SandboxConfig,
    runtime: Path,
    stage: Path,
    connection_file: str,
    env_extra: dict | None = None,
) -> dict:
    """The JSON the launcher reads."""
    places = config.places(runtime, stage)
    spec = {
        "connection_file": connection_file,
        "python": sys.executable,
        "limits": {
            **config.limits.as_dict(),
            "nproc_base": 0 if config.drop_to_nobody else user_tasks(os.getuid()),
        },
        "env": kernel_env(env_extra, home=places["home"], tmpdir=places["tmpdir"]),
        **places,
    }
    if config.drop_to_nobody:
        spec["uid"] = spec["gid"] = config.uid
    if config.bwrap is None:
        # no bwrap --die-with-parent: the kernel watches its parent and exits with it
        spec["env"]["JPY_PARENT_PID"] = str(os.getpid())
    return spec


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data))


class SandboxedKernelManager(AsyncKernelManager):
    """Starts one kernel in ``runtime`` (a fresh folder) with ``stage``'s files in its cwd."""

    def __init__(
        self,
        config: SandboxConfig,
        runtime: Path,
        stage: Path,
        env_extra: dict | None = None,
        **kwargs,
    ):
        if config.plain:  # dlcourse check: an ordinary local kernel (TCP works on Windows too)
            super().__init__(kernel_name="python3", **kwargs)
        else:
            ipc = runtime / "ipc"
            ipc.mkdir(mode=0o777, exist_ok=True)
            os.chmod(ipc, 0o777)  # the kernel runs as nobody and creates its sockets here
            os.chmod(runtime, 0o711)
            super().__init__(kernel_name="python3", transport="ipc", ip=str(ipc / "k"), **kwargs)
        self.connection_file = str(runtime / "kernel.json")
        self._sandbox = config
        self._runtime = runtime
        self._stage = stage
        self._env_extra = env_extra or {}
        config.write_runtime_files(runtime)

    def format_kernel_cmd(self, extra_arguments=None) -> list[str]:
        if self._sandbox.plain:
            return super().format_kernel_cmd(extra_arguments)
        spec = launch_spec(
            self._sandbox, self._runtime, self._stage, self.connection_file, self._env_extra
        )
        # nbclient's arguments: --HistoryManager.hist_file=:memory: (no SQLite history on disk)
        spec["kernel_args"] = [str(a) for a in extra_arguments or []]
        path = self._runtime / "launch.json"
        write_json(path, spec)
        return self._sandbox.prefix(self._runtime, self._stage) + [
            sys.executable,
            "-I",
            str(LAUNCHER),
            str(path),
        ]


def new_runtime(parent: Path | None = None) -> Path:
    """A fresh, private folder for one kernel's connection file and sockets."""
    return Path(tempfile.mkdtemp(prefix="k", dir=parent))
