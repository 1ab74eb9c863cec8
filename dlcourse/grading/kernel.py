"""A Jupyter kernel manager that starts the kernel through the sandbox and the launcher.

jupyter_client builds the kernel command in ``format_kernel_cmd``; this manager returns
``bwrap ... python -I _launch.py SPEC`` there instead of ``python -m ipykernel_launcher -f ...``,
and uses ZMQ's ``ipc`` transport (TCP on loopback cannot cross into an unshared network
namespace) with the sockets inside the sandbox's size-capped ``/tmp``: the grader connects to them
through ``/proc/<sandbox pid 1>/root``, so no folder of the host is writable from the sandbox.

Every socket the grader reads from a kernel is capped at the transport, before anything is
parsed: a message over ``MAX_MESSAGE_BYTES`` is refused by libzmq (the connection is dropped and
re-made; a monitor counts it), at most ``QUEUE_MESSAGES`` wait in the grader's queue, and the
IOPub channel counts the bytes of each cell's messages before deserializing them
(``BudgetChannel``): beyond the budget it stops parsing and reports, and the runner kills the
sandbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type

from dlcourse.grading.sandbox import BWRAP_ENV, KERNEL, LAUNCHER, SandboxConfig

MAX_OUTPUT_CHARS = 200_000
"""Stream text (stdout, stderr) one execution request may send; the kernel drops the rest."""
MAX_MESSAGE_BYTES = 8 * 2**20
"""Largest message the grader accepts from a kernel (libzmq refuses larger ones unread)."""
QUEUE_MESSAGES = 32
"""Messages libzmq may queue for the grader per socket (so at most 256 MB per socket)."""
MAX_CELL_OUTPUT_BYTES = 64 * 2**20
"""Bytes of IOPub messages one cell may send in all; beyond it the kernel is killed."""

_DROPPED = "dropped"


class BudgetChannel(AsyncZMQSocketChannel):
    """IOPub: counts each message's bytes before deserializing it; over ``budget`` (bytes since
    ``reset()``), messages are discarded unparsed and ``on_over`` is called once."""

    budget: int | None = None
    used = 0
    over = False
    on_over = None

    def reset(self, budget: int | None) -> None:
        self.budget, self.used, self.over = budget, 0, False

    async def _recv(self, **kwargs) -> dict:
        assert self.socket is not None
        frames = await self.socket.recv_multipart(**kwargs)
        self.used += sum(len(f) for f in frames)
        if self.budget is not None and self.used > self.budget:
            if not self.over:
                self.over = True
                if self.on_over is not None:
                    self.on_over()
            return {"header": {}, "parent_header": {}, "msg_type": _DROPPED, "content": {}}
        _, smsg = self.session.feed_identities(frames)
        return self.session.deserialize(smsg)


class _CappedSockets:
    """Socket options set before ``connect`` (they apply to the connection), and a monitor that
    counts connections libzmq dropped because a message was over ``MAX_MESSAGE_BYTES``."""

    def _create_connected_socket(self, channel: str, identity: bytes | None = None):
        sock = self.context.socket(zmq.SUB if channel == "iopub" else _SOCKET_TYPES[channel])
        sock.linger = 1000
        if channel != "hb":
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            sock.setsockopt(zmq.RCVHWM, QUEUE_MESSAGES)
        if identity:
            sock.identity = identity
        if channel in ("iopub", "shell"):
            address = f"inproc://dlcourse-monitor-{id(sock)}"
            sock.monitor(address, zmq.EVENT_DISCONNECTED)
            monitor = zmq.Context.shadow(self.context.underlying).socket(zmq.PAIR)
            monitor.linger = 0
            monitor.connect(address)
            self.__dict__.setdefault("_monitors", []).append((sock, monitor))
        sock.connect(self._make_url(channel))
        return sock

    def refused_messages(self) -> int:
        """Connections dropped since the last call (each: a message over the size cap)."""
        dropped = 0
        for _, monitor in self.__dict__.get("_monitors", []):
            while monitor.poll(0):
                monitor.recv_multipart()
                dropped += 1
        return dropped

    def close_monitors(self) -> None:
        for sock, monitor in self.__dict__.pop("_monitors", []):
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
            monitor.close(linger=0)


_SOCKET_TYPES = {"shell": zmq.DEALER, "stdin": zmq.DEALER, "control": zmq.DEALER, "hb": zmq.REQ}


class CappedKernelClient(_CappedSockets, AsyncKernelClient):
    """nbclient's kernel client with the transport caps above."""

    iopub_channel_class = Type(BudgetChannel)

    def stop_channels(self) -> None:
        self.close_monitors()  # before the context ends: it waits for every socket
        super().stop_channels()


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
        "PYTHONSAFEPATH": "1",  # the student's own `python x.py`: no cwd on sys.path either
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
        "connection_file": os.path.join(places["run"], os.path.basename(connection_file)),
        "python": sys.executable,
        "kernel": str(KERNEL),
        "max_output_chars": MAX_OUTPUT_CHARS,
        "ipc": places["ipc"],
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
            # without bwrap the kernel makes its sockets here; with it, in the sandbox's /tmp
            ipc = runtime / "ipc"
            ipc.mkdir(mode=0o700, exist_ok=True)
            os.chmod(runtime, 0o711)
            super().__init__(
                kernel_name="python3",
                transport="ipc",
                ip=str(ipc / "k"),
                client_class="dlcourse.grading.kernel.CappedKernelClient",
                **kwargs,
            )
        self.connection_file = str(runtime / "kernel.json")
        self._root_fd: int | None = None
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
        where = os.path.join(self._sandbox.places(self._runtime, self._stage)["run"], path.name)
        return self._sandbox.prefix(self._runtime, self._stage) + [
            sys.executable,
            "-I",
            str(LAUNCHER),
            where,
        ]

    @property
    def _in_bwrap(self) -> bool:
        return not self._sandbox.plain and self._sandbox.bwrap is not None

    async def _async_pre_start_kernel(self, **kw):
        if self._in_bwrap:
            kw["env"] = dict(BWRAP_ENV)  # not the grader's environment: see BWRAP_ENV
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        await super()._async_launch_kernel(kernel_cmd, **kw)
        if self._in_bwrap:
            ipc = self._sandbox.places(self._runtime, self._stage)["ipc"]
            root = await sandbox_root(self.provisioner.process, ipc)
            if root is not None:
                self._root_fd = root
                # the kernel's sockets in the sandbox's /tmp, reached through its root
                self.ip = f"/proc/self/fd/{root}{ipc}/k"

    def cleanup_ipc_files(self) -> None:
        if not self._in_bwrap:  # in bwrap they vanish with the sandbox's /tmp
            super().cleanup_ipc_files()

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    cleanup_resources = _async_cleanup_resources


async def sandbox_root(process, ipc: str, timeout: float = 60.0) -> int | None:
    """An ``O_PATH`` descriptor of the sandbox's root folder once the launcher has made the
    kernel's socket folder ``ipc`` in it (bwrap pivots its root more than once while setting up),
    or None if the sandbox exited first."""
    pid = process.pid
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and process.poll() is None:
        try:
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                if os.path.isdir(f"/proc/{child}/root{ipc}"):
                    fd = os.open(f"/proc/{child}/root", os.O_PATH | os.O_DIRECTORY)
                    if os.path.isdir(f"/proc/self/fd/{fd}{ipc}"):
                        return fd
                    os.close(fd)
        except OSError:
            pass
        await asyncio.sleep(0.002)
    return None


def new_runtime(parent: Path | None = None) -> Path:
    """A fresh, private folder for one kernel's connection file and sockets."""
    return Path(tempfile.mkdtemp(prefix="k", dir=parent))
