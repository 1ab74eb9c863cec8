"""A Jupyter kernel manager that starts the kernel through the sandbox and the launcher.

jupyter_client builds the kernel command in ``format_kernel_cmd``; this manager returns
``bwrap ... python -I _launch.py SPEC`` there instead of ``python -m ipykernel_launcher -f ...``,
and uses ZMQ's ``ipc`` transport with its sockets in a per-kernel runtime folder that is bound
into the sandbox (TCP on loopback cannot cross into an unshared network namespace).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

from dlcourse.grading.sandbox import LAUNCHER, SandboxConfig, launch_spec, write_json


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
