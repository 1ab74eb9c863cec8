"""Run a grading plan in a sandboxed kernel, cell by cell, surviving whatever the code does.

Driven with nbclient one cell at a time (not ``NotebookClient.execute``) so that grading decides:

* **pass or fail from the kernel's ``execute_reply`` status**, not from the outputs (a student's
  ``set_custom_exc`` or cleared outputs hide a traceback, not the failed status);
* a test cell's **hidden-test regions run as separate requests**, not stored in the kernel's input
  history, so their outputs and tracebacks can be kept apart from what the student sees;
* a **timeout or a dead kernel** (crash, ``exit()``, memory, CPU or file-size limit) fails the cell
  it happened in; a fresh kernel then re-runs the source's setup cells and grading goes on, so the
  other exercises still score (exercises are self-contained, CONVENTIONS.md);
* **outputs are capped** per cell, so printing in a loop cannot exhaust the grader's memory;
* a **total time budget** per notebook bounds a submission whatever its number of cells.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from dlcourse.grading.kernel import SandboxedKernelManager, new_runtime
from dlcourse.grading.merge import Plan
from dlcourse.grading.sandbox import SandboxConfig
from dlcourse.grading.trusted import TrustedSession, enabled

MAX_OUTPUT_CHARS = 200_000
MAX_RESTARTS = 8


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


class _Client(NotebookClient):
    """nbclient with a cap on the output one cell may accumulate in the grader's memory."""

    def __init__(self, *args, max_output_chars: int = MAX_OUTPUT_CHARS, **kwargs):
        super().__init__(*args, **kwargs)
        self._chars: dict[int, int] = {}
        self._max_chars = max_output_chars

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = (
            len(str(content.get("text", "")))
            + sum(len(str(v)) for v in (content.get("data") or {}).values())
            + sum(len(str(t)) for t in content.get("traceback", []) or [])
        )
        used = self._chars.get(cell_index, 0)
        self._chars[cell_index] = used + size
        if used + size > self._max_chars:
            if used <= self._max_chars:
                outs.append(
                    nbformat.v4.new_output(
                        "stream",
                        name="stderr",
                        text=f"\n[output truncated by the grader at {self._max_chars:,} characters]\n",
                    )
                )
            return None
        return super().output(outs, msg, display_id, cell_index)


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
        # test cells are judged in a second interpreter that never runs student code (trusted.py)
        self.trusted = (
            TrustedSession(sandbox, stage, scratch, startup_timeout=startup_timeout)
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
        log = open(self.scratch / f"kernel-{self.kernels}.log", "wb")  # noqa: SIM115
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
            coalesce_streams=True,
            kernel_name="python3",
        )
        try:
            if self.sandbox.plain:
                env = {**os.environ, **self.sandbox.plain_env(), **(self.env_extra or {})}
                where = self.sandbox.workdir or runtime
                await client.async_start_new_kernel(env=env, cwd=str(where), stdout=log, stderr=log)
            else:
                await client.async_start_new_kernel(stdout=log, stderr=log, cwd=str(runtime))
            await client.async_start_new_kernel_client()
        except Exception as e:
            log.close()
            tail = (self.scratch / f"kernel-{self.kernels}.log").read_text(errors="replace")
            tail = " | ".join(tail.strip().splitlines()[-3:])[-300:]
            self.events.append(
                Event("start", step, f"the kernel did not start ({e}) {tail}".strip())
            )
            await self._stop(client)
            return False
        finally:
            if not log.closed:
                log.close()
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
            self.events.append(Event("died", step, describe_exit(code, self.sandbox.limits)))
            return SegmentResult(list(cell.outputs), "died", seconds=time.monotonic() - start)
        seconds = time.monotonic() - start
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

    async def run(self) -> RunResult:
        start = time.monotonic()
        deadline = start + self.budget
        results: dict[int, list[SegmentResult]] = {}
        if self.trusted is not None:
            self.trusted.begin(self.plan.setup)
        try:
            for i, step in enumerate(self.plan.steps):
                if not (step.is_code and step.run and step.segments):
                    continue
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
