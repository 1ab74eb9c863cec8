"""Run a grading plan in a sandboxed kernel, cell by cell, surviving whatever the code does.

Driven with nbclient one cell at a time (not ``NotebookClient.execute``) so that grading decides:

* **pass or fail from the kernel's ``execute_reply`` status**, not from the outputs (a student's
  ``set_custom_exc`` or cleared outputs hide a traceback, not the failed status);
* a test cell's **hidden-test regions run as separate requests**, not stored in the kernel's input
  history, so their outputs and tracebacks can be kept apart from what the student sees;
* a **timeout or a dead kernel** (crash, ``exit()``, memory, CPU or file-size limit) fails the cell
  it happened in; a fresh kernel then re-runs the source's setup cells and grading goes on, so the
  other exercises still score (exercises are self-contained, CONVENTIONS.md);
* **output is capped before the grader parses it** (kernel.py, _kernel.py): stream text in the
  kernel, message size, queue length and each cell's bytes at the transport; what is kept is
  merged in linear time (nbclient's ``\r`` handling is quadratic on long lines), and a cap that
  was reached is always an event (a reason);
* the kernel's own log is a pipe read into a bounded buffer, never a file on the host;
* a **total time budget** per notebook bounds a submission whatever its number of cells.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from dlcourse.grading.kernel import (
    MAX_CELL_OUTPUT_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_OUTPUT_CHARS,
    SandboxedKernelManager,
    new_runtime,
)
from dlcourse.grading.merge import Plan
from dlcourse.grading.sandbox import SandboxConfig
from dlcourse.grading.trusted import TrustedPool, TrustedSession, enabled

MAX_RICH_CHARS = 16 * 2**20
"""Characters of rich output (images, HTML, tracebacks) the grader keeps per cell."""
MAX_RESTARTS = 8
LOG_KEEP = 64 * 1024
"""Bytes of the kernel's own stdout/stderr (its log) the grader keeps: the last ones."""
LOG_BUDGET = 8 * 2**20
"""Bytes the kernel may write to its log before that is a reason."""
TRUNCATED = "[dlcourse: output truncated at"


@dataclasses.dataclass
class SegmentResult:
    outputs: list
    status: str  # ok, error, timeout, died, skipped, not-run
    ename: str | None = None
    evalue: str | None = None
    seconds: float = 0.0


@dataclasses.dataclass
class Event:
    """Something that happened to the kernel: ``died``, ``timeout``, ``memory``, ``start``,
    ``budget`` or ``restarts``."""

    kind: str
    step: int | None
    detail: str


@dataclasses.dataclass
class RunResult:
    results: dict[int, list[SegmentResult]]  # step index -> one result per segment
    events: list[Event]
    seconds: float
    kernels: int


def describe_exit(code: int | None, limits) -> str:
    """A kernel's exit status in words (bwrap reports a signal as 128 + its number)."""
    if code is None:
        return "the kernel stopped responding"
    if code == 0:
        return "the kernel exited (exit(), quit() or os._exit in the code?)"
    if code > 128:
        sig = code - 128
        known = {
            signal.SIGKILL: f"the kernel was killed (SIGKILL: its CPU time limit ({limits.cpu} s) "
            "or the machine's memory ran out)",
            signal.SIGXCPU: f"CPU time limit ({limits.cpu} s) exceeded",
            signal.SIGXFSZ: f"file size limit ({limits.fsize // 2**20} MB) exceeded",
            signal.SIGSEGV: "the kernel crashed (segmentation fault)",
            signal.SIGABRT: "the kernel aborted (SIGABRT, often out of memory)",
            signal.SIGBUS: "the kernel crashed (bus error)",
        }
        try:
            return known.get(
                signal.Signals(sig), f"the kernel was killed by {signal.Signals(sig).name}"
            )
        except ValueError:
            return f"the kernel exited with status {code}"
    return f"the kernel exited with status {code}"


def collapse(text: str) -> str:
    """What a terminal shows of ``text``: ``\b`` erases the character before it, ``\r`` returns
    to the start of its line (as nbclient's stream coalescing, but in linear time)."""
    if "\b" in text:
        kept: list[str] = []
        for ch in text:
            if ch == "\b" and kept and kept[-1] != "\n":
                kept.pop()
            else:
                kept.append(ch)
        text = "".join(kept)
    if "\r" in text:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            last = line.rfind("\r", 0, len(line) - 1)  # a \r with more of its line after it
            if last >= 0:
                lines[i] = line[last + 1 :]
        text = "\n".join(lines)
    return text


def coalesce(outputs: list) -> list:
    """One output per stream (text joined and collapsed), stdout before stderr where adjacent."""
    merged: list = []
    parts: dict[str, list[str]] = {}
    for output in outputs:
        if output.get("output_type") != "stream":
            merged.append(output)
        elif output["name"] in parts:
            parts[output["name"]].append(output["text"])
        else:
            parts[output["name"]] = [output["text"]]
            merged.append(output)
    for output in merged:
        if output.get("output_type") == "stream":
            output["text"] = collapse("".join(parts[output["name"]]))
    for i in range(len(merged) - 1):
        a, b = merged[i], merged[i + 1]
        if (a.get("name"), b.get("name")) == ("stderr", "stdout") and a.get("output_type") == (
            b.get("output_type")
        ):
            merged[i], merged[i + 1] = b, a
    return merged


class _Client(NotebookClient):
    """nbclient with caps on the output one cell may keep in the grader's memory (stream text and
    rich output apart: figures must not push text out), noting in ``truncated`` which cells
    reached a cap here or in the kernel."""

    def __init__(self, *args, max_output_chars: int = MAX_OUTPUT_CHARS, **kwargs):
        super().__init__(*args, **kwargs)
        self._chars: dict[tuple[int, str], int] = {}
        self._caps = {"text": max_output_chars + 200, "rich": MAX_RICH_CHARS}
        self.truncated: set[int] = set()

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        if msg.get("msg_type") == "stream":
            kind, size = "text", len(str(content.get("text", "")))
            if TRUNCATED in str(content.get("text", "")):
                self.truncated.add(cell_index)
        else:
            kind = "rich"
            size = sum(len(str(v)) for v in (content.get("data") or {}).values()) + sum(
                len(str(t)) for t in content.get("traceback", []) or []
            )
        used = self._chars.get((cell_index, kind), 0)
        self._chars[(cell_index, kind)] = used + size
        cap = self._caps[kind]
        if used + size > cap:
            if used <= cap:
                self.truncated.add(cell_index)
                outs.append(
                    nbformat.v4.new_output(
                        "stream",
                        name="stderr",
                        text=f"\n[output truncated by the grader at {cap:,} characters]\n",
                    )
                )
            return None
        return super().output(outs, msg, display_id, cell_index)


class KernelLog:
    """The kernel's stdout/stderr (bwrap's and the launcher's errors, ipykernel's echo of what
    is written to file descriptors 1 and 2): a pipe drained by a thread that keeps the last
    ``LOG_KEEP`` bytes and counts the rest, so the sandbox cannot fill the host's disk or the
    grader's memory through it, and never blocks on a full pipe."""

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe()
        self.tail = bytearray()
        self.total = 0
        self._thread = threading.Thread(target=self._drain, daemon=True, name="kernel-log")
        self._thread.start()

    def _drain(self) -> None:
        try:
            while chunk := os.read(self.read_fd, 65536):
                self.total += len(chunk)
                self.tail += chunk
                if len(self.tail) > 2 * LOG_KEEP:
                    del self.tail[:-LOG_KEEP]
        finally:
            os.close(self.read_fd)

    def started(self) -> None:
        """The kernel has its copy of the write end: close ours, so EOF comes when it exits."""
        if self.write_fd is not None:
            os.close(self.write_fd)
            self.write_fd = None

    def text(self, wait: float = 0.0) -> str:
        self.started()
        self._thread.join(wait)
        return bytes(self.tail[-LOG_KEEP:]).decode(errors="replace")


class Runner:
    """Runs one plan; one instance per submission notebook."""

    def __init__(
        self,
        plan: Plan,
        sandbox: SandboxConfig,
        stage: Path,
        scratch: Path,
        *,
        timeout: float = 300,
        budget: float | None = None,
        env_extra: dict | None = None,
        startup_timeout: float = 120,
        trusted_pool: TrustedPool | None = None,
        trusted_key=None,
        trusted_stage=None,
    ):
        self.plan = plan
        self.sandbox = sandbox
        self.stage = stage
        self.scratch = scratch
        self.timeout = timeout
        self.budget = budget if budget is not None else max(600.0, 5 * timeout)
        self.env_extra = env_extra
        self.startup_timeout = startup_timeout
        self.client: _Client | None = None
        self.kernels = 0
        self.events: list[Event] = []
        # one placeholder cell per executed segment, so display ids map to distinct cells
        self._current: int | None = None
        self._exec_nb = nbformat.v4.new_notebook()
        self._slots = 0
        # the guard's snapshot is taken once the source's setup cells have run, before the first
        # other step (a restarted kernel takes it again after re-running them)
        self._snapshot_due = True
        # test cells are judged in a second interpreter that never runs student code (trusted.py);
        # with a pool, the worker's one for this notebook (setup run once), with the files of
        # ``trusted_stage(folder)`` (the assignment's, not the submission's)
        self.trusted = (
            TrustedSession(
                sandbox,
                stage,
                scratch,
                startup_timeout=startup_timeout,
                pool=trusted_pool,
                key=trusted_key,
                stage_for=trusted_stage,
            )
            if enabled(sandbox)
            else None
        )

    def _slot(self, code: str) -> tuple[nbformat.NotebookNode, int]:
        cell = nbformat.v4.new_code_cell(code)
        cell.pop("id", None)
        self._exec_nb.cells.append(cell)
        self._slots += 1
        return cell, self._slots - 1

    async def _start(self, step: int | None) -> bool:
        """Start a kernel (and after a restart, re-run the setup cells). False if it failed."""
        self.kernels += 1
        runtime = new_runtime(self.scratch)
        log = KernelLog()
        km = SandboxedKernelManager(self.sandbox, runtime, self.stage, self.env_extra)
        client = _Client(
            self._exec_nb,
            km=km,
            timeout=int(self.timeout),
            allow_errors=True,
            startup_timeout=int(self.startup_timeout),
            record_timing=False,
            store_widget_state=False,
            shutdown_kernel="immediate",
            coalesce_streams=False,  # coalesce() instead: linear in the text's length
            kernel_name="python3",
        )
        client.kernel_log = log
        out = log.write_fd
        try:
            if self.sandbox.plain:
                env = {**os.environ, **self.sandbox.plain_env(), **(self.env_extra or {})}
                where = self.sandbox.workdir or runtime
                await client.async_start_new_kernel(env=env, cwd=str(where), stdout=out, stderr=out)
            else:
                await client.async_start_new_kernel(stdout=out, stderr=out, cwd=str(runtime))
            log.started()
            await client.async_start_new_kernel_client()
        except Exception as e:
            await self._stop(client)
            tail = " | ".join(log.text(wait=2).strip().splitlines()[-3:])[-300:]
            self.events.append(
                Event("start", step, f"the kernel did not start ({e}) {tail}".strip())
            )
            return False
        finally:
            log.started()
        iopub = client.kc.iopub_channel
        if hasattr(iopub, "reset"):  # the sandbox's client (kernel.CappedKernelClient)
            iopub.on_over = lambda: self._kill(client)
        self.client = client
        if self.trusted is not None:
            await self.trusted.kernel_started(self, step)
        if self.kernels > 1:
            for code in self.plan.setup:
                cell, index = self._slot(code)
                try:
                    await client.async_execute_cell(cell, index, store_history=False)
                except (DeadKernelError, CellTimeoutError, asyncio.CancelledError):
                    self.events.append(
                        Event("start", step, "the setup cells failed after a restart")
                    )
                    await self._stop(client)
                    return False
        if self.trusted is not None and not self._snapshot_due:
            await self.trusted.setup_done(self, step)
        return True

    async def _stop(self, client: _Client | None = None) -> int | None:
        """Kill the kernel (the whole sandbox dies with it); return its exit status."""
        client = client or self.client
        self.client = None
        if client is None or client.km is None:
            return None
        km = client.km
        code = None
        process = getattr(km.provisioner, "process", None) if km.provisioner else None
        if process is not None:
            code = process.poll()
        self._count_tasks(client)
        try:
            await km.shutdown_kernel(now=True)
        except Exception:  # already dead, or half-started
            pass
        log = getattr(client, "kernel_log", None)
        if log is not None and log.total > LOG_BUDGET:
            mb = LOG_BUDGET // 2**20
            detail = f"its code wrote more than {mb} MB to the kernel's log (not kept)"
            self.events.append(Event("log", self._current, detail))
        if hasattr(client.kc, "close_monitors"):
            client.kc.close_monitors()
        try:
            if client.kc is not None:
                stopped = client.kc.stop_channels()
                if asyncio.iscoroutine(stopped):
                    await stopped
        except Exception:
            pass
        try:
            await km.cleanup_resources()
        except Exception:
            pass
        return code

    @staticmethod
    def _kill(client: _Client) -> None:
        """Kill a sandbox at once (from inside the event loop; nbclient then sees it dead)."""
        process = getattr(getattr(client.km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.kill()

    def _count_tasks(self, client: _Client) -> None:
        """Flag a sandbox that holds many processes/threads (a fork bomb stopped by the process
        limit, its children left sleeping): counted from the host, over the sandbox's process
        tree, where the student's code cannot hide them."""
        root = getattr(getattr(client.km, "provisioner", None), "pid", None)
        if root is None:
            return
        children: dict[int, list[int]] = {}
        threads: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                pid = int(stat.parent.name)
                children.setdefault(int(fields[1]), []).append(pid)
                threads[pid] = int(fields[17])
            except (OSError, IndexError, ValueError):
                continue
        tasks, todo = 0, [root]
        while todo:
            pid = todo.pop()
            tasks += threads.get(pid, 0)
            todo += children.get(pid, [])
        limit = self.sandbox.limits.nproc
        if tasks >= min(64, limit // 2) and not any(e.kind == "processes" for e in self.events):
            detail = f"its code started {tasks} processes/threads (limit {limit})"
            self.events.append(Event("processes", self._current, detail))

    async def _execute(self, code: str, hidden: bool, step: int, deadline: float) -> SegmentResult:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return SegmentResult([], "not-run")
        if self.client is None and not await self._start(step):
            return SegmentResult([], "not-run")
        client = self.client
        limit = min(self.timeout, remaining)
        client.timeout = max(1, int(limit + 0.999))
        replies: list[dict] = []
        client.on_cell_executed = lambda **kw: replies.append(kw["execute_reply"])
        cell, index = self._slot(code)
        iopub = client.kc.iopub_channel
        if hasattr(iopub, "reset"):
            iopub.reset(MAX_CELL_OUTPUT_BYTES)
        start = time.monotonic()
        try:
            await client.async_execute_cell(cell, index, store_history=not hidden)
        except CellTimeoutError:
            await self._stop()
            over_budget = limit < self.timeout
            what = "budget" if over_budget else "timeout"
            detail = (
                f"the notebook used up its time budget ({self.budget:.0f} s)"
                if over_budget
                else f"timed out after {self.timeout:g} s"
            )
            self.events.append(Event(what, step, detail))
            return SegmentResult(list(cell.outputs), "timeout", seconds=time.monotonic() - start)
        except (DeadKernelError, RuntimeError) as e:
            code = await self._stop()
            if isinstance(e, RuntimeError) and "Kernel" not in str(e):
                raise
            if getattr(iopub, "over", False):
                mb = MAX_CELL_OUTPUT_BYTES // 2**20
                detail = f"more than {mb} MB of output in one cell: the kernel was stopped"
                self.events.append(Event("transport", step, detail))
            else:
                self.events.append(Event("died", step, describe_exit(code, self.sandbox.limits)))
            return SegmentResult(list(cell.outputs), "died", seconds=time.monotonic() - start)
        seconds = time.monotonic() - start
        cell.outputs = coalesce(cell.outputs)
        if self._output_events(client, index, step):
            # libzmq dropped the connection to refuse it: later output would be lost, start afresh
            await self._stop()
        content = replies[-1]["content"] if replies else {}
        if content.get("status") == "ok":
            return SegmentResult(list(cell.outputs), "ok", seconds=seconds)
        ename, evalue = content.get("ename"), str(content.get("evalue", ""))
        if ename == "MemoryError":
            # what filled the memory is still referenced (globals, the traceback): start afresh
            await self._stop()
            gb = self.sandbox.limits.memory / 2**30
            self.events.append(
                Event("memory", step, f"out of memory (MemoryError; limit {gb:g} GB)")
            )
        elif ename == "BlockingIOError" or "can't start new thread" in evalue:
            # the processes the code started hold the limit; they die with the sandbox
            await self._stop()
            detail = f"process limit reached ({ename}: {evalue})"[:200]
            self.events.append(Event("nproc", step, detail))
        return SegmentResult(
            list(cell.outputs), "error", content.get("ename"), content.get("evalue"), seconds
        )

    def _output_events(self, client: _Client, index: int, step: int) -> bool:
        """A cap this cell reached is a reason (once per kind and notebook). True if a message
        was refused at the transport."""
        kinds = {e.kind for e in self.events}
        refused = client.kc.refused_messages() if hasattr(client.kc, "refused_messages") else 0
        if refused and "transport" not in kinds:
            mb = MAX_MESSAGE_BYTES // 2**20
            detail = f"an output message over {mb} MB was refused (not kept)"
            self.events.append(Event("transport", step, detail))
        if index in client.truncated and "output" not in kinds:
            detail = f"output truncated at {MAX_OUTPUT_CHARS:,} characters"
            self.events.append(Event("output", step, detail))
        root = getattr(client.km, "_root_fd", None)
        for where in ("/tmp", "/dev/shm") if root is not None else ():
            try:
                fs = os.statvfs(f"/proc/self/fd/{root}{where}")
            except OSError:
                continue
            if fs.f_bavail * fs.f_frsize < 2**20 and f"full {where}" not in kinds:
                mb = fs.f_blocks * fs.f_frsize // 2**20
                detail = f"the sandbox's {where} ({mb} MB) is full"
                self.events.append(Event(f"full {where}", step, detail))
        return bool(refused)

    async def run(self) -> RunResult:
        start = time.monotonic()
        deadline = start + self.budget
        results: dict[int, list[SegmentResult]] = {}
        if self.trusted is not None:
            self.trusted.begin(self.plan.setup)
        setup = set(self.plan.setup)
        try:
            for i, step in enumerate(self.plan.steps):
                if not (step.is_code and step.run and step.segments):
                    continue
                if self._snapshot_due and not (
                    step.origin == "source" and step.cell.source in setup
                ):
                    self._snapshot_due = False
                    if self.trusted is not None and self.client is not None:
                        await self.trusted.setup_done(self, i)
                if step.role == "test" and self.trusted is not None:
                    judged = await self.trusted.grade(self, i, step, deadline)
                    if judged is not None:
                        results[i] = judged
                        continue
                out: list[SegmentResult] = []
                for seg in step.segments:
                    if out and out[-1].status != "ok":
                        out.append(SegmentResult([], "skipped"))
                        continue
                    if self.kernels > MAX_RESTARTS and self.client is None:
                        if not any(e.kind == "restarts" for e in self.events):
                            self.events.append(Event("restarts", i, "too many kernel restarts"))
                        out.append(SegmentResult([], "not-run"))
                        continue
                    self._current = i
                    out.append(await self._execute(seg.code, seg.hidden, i, deadline))
                    if step.origin == "student" and self.client is not None:
                        self._count_tasks(self.client)
                if step.role == "test" and self.trusted is not None:
                    out = await self.trusted.finish(self, i, out, deadline)
                results[i] = out
        finally:
            await self._stop()
            if self.trusted is not None:
                await self.trusted.close()
        return RunResult(results, self.events, time.monotonic() - start, self.kernels)
