"""Grade test cells in a trusted interpreter that exchanges only data with the student's kernel.

A check that runs in the student's kernel trusts everything the student's code could have
replaced: builtins, NumPy, the check module, IPython's hooks. So the verdict of a test cell is
taken elsewhere: ``_trusted.py`` runs the source's setup cells and the test cell in a second
sandboxed interpreter that never runs student code. Each time the test calls one of the
student's functions, the call is sent to the student's kernel with its arguments as plain data,
and the result comes back as plain data (``_trusted`` says what crosses). What a test asserts is
therefore evaluated with the instructor's references only; the student's code can influence the
verdict only through the values its functions return, which is what is being graded.

Order, per test cell:

1. the trusted run (visible and hidden segments); its outputs are what feedback shows and its
   verdict is the score. Hidden tests never run in the student's kernel, so student code can
   neither see their code nor harvest their expected values;
2. the visible segments run in the student's kernel too, as before. A visible check that passes
   there but fails in the trusted run means the student's code changed what the check relies on:
   0 points for that test and an ``Event("tamper")`` (status ``needs_review``, with the reason).

A test cell whose arguments cannot cross as data (Keras tensors, models) is evaluated in the
student's kernel as before, and the report says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from dlcourse.grading import _trusted
from dlcourse.grading.guard import PROBE_FAILED, Guard
from dlcourse.grading.kernel import kernel_env, new_runtime
from dlcourse.grading.rpc import install_code, read_reply, student_request

SCRIPT = Path(_trusted.__file__)
MAX_LINE = 64 * 2**20
ONE_THREAD = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


def _outputs(done: dict) -> list:
    outs = []
    if done.get("stdout"):
        outs.append(nbformat.v4.new_output("stream", name="stdout", text=done["stdout"]))
    if done.get("status") == "error":
        outs.append(
            nbformat.v4.new_output(
                "error",
                ename=done.get("ename", "Error"),
                evalue=done.get("evalue", ""),
                traceback=done.get("traceback", []),
            )
        )
    elif done.get("value") is not None:
        outs.append(
            nbformat.v4.new_output(
                "execute_result", data={"text/plain": done["value"]}, execution_count=None
            )
        )
    return outs


class Interpreter:
    """One trusted interpreter process. It runs the source's setup cells once; then, when it can
    (one thread after setup), it is a fork server: each submission gets its own process forked
    from that post-setup state, several at once (one per worker), so a batch pays for the setup
    (a TensorFlow import) once, whatever its number of workers, and nothing a submission's checks
    leave behind (globals, caches, module state, files in its temporary folder) reaches another
    submission's. Lines to and from the process are tagged with the submission's number (0: the
    server itself). Otherwise it serves one submission (number 1) and is replaced."""

    def __init__(self, sandbox, scratch: Path, stage_for, *, startup_timeout: float = 120):
        self.sandbox = sandbox
        self.scratch = scratch
        self.stage_for = stage_for  # folder -> the staged files the setup cells may read
        self.startup_timeout = startup_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.problem: str | None = None  # why it is not available
        self.fork = False
        self.claimed = False  # a non-forking one serves one submission
        self.served = 0
        self._task: asyncio.Task | None = None
        self._reader: asyncio.Task | None = None
        self._queues: dict[int, asyncio.Queue] = {}
        self._closed = False
        self._next = 1

    def command(self, runtime: Path, stage: Path) -> list[str]:
        """The sandbox prefix of a kernel, then this module's script (not the IPython kernel)."""
        self.sandbox.write_runtime_files(runtime)
        places = self.sandbox.places(runtime, stage)
        env = kernel_env(None, home=places["home"], tmpdir=places["tmpdir"])
        # no BLAS thread pool at import (OpenBLAS starts one): the setup process stays
        # single-threaded, so it can fork; the checks' arrays are small, one thread each
        env.update({k: "1" for k in ONE_THREAD})
        spec = {
            "env": env,
            "home": places["home"],
            "tmpdir": places["tmpdir"],
            "shm": "/dev/shm" if self.sandbox.bwrap is not None else None,
            "workdir": places["stage"] or str(stage),
            "memory": self.sandbox.limits.memory,
        }
        if self.sandbox.drop_to_nobody:
            spec["uid"] = spec["gid"] = self.sandbox.uid
        (runtime / "trusted.json").write_text(json.dumps(spec))
        # the runtime folder as the sandbox sees it (bound at ``places["run"]``)
        return self.sandbox.prefix(runtime, stage) + [
            sys.executable,
            "-I",
            str(SCRIPT),
            os.path.join(places["run"], "trusted.json"),
        ]

    def alive(self) -> bool:
        return self.problem is None and (
            self._task is None
            or not self._task.done()
            or (self.proc is not None and self.proc.returncode is None)
        )

    def reusable(self) -> bool:
        """Can serve another submission: alive, and a fork server (or not known yet: starting,
        and a session that finds it cannot fork asks for another, ``TrustedSession``)."""
        started = self._task is not None and self._task.done()
        return self.alive() and (self.fork or not started or not self.claimed)

    async def start(self, setup: list[str]) -> bool:
        """Start it and run the setup cells (once; later calls wait for the first)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._start(setup))
        try:
            return await asyncio.shield(self._task)
        except Exception as e:  # noqa: BLE001
            self.problem = self.problem or f"the trusted interpreter failed ({e})"
            return False

    async def _start(self, setup: list[str]) -> bool:
        folder = Path(tempfile.mkdtemp(prefix="t", dir=self.scratch))
        stage = self.stage_for(folder)
        runtime = new_runtime(folder)
        log = open(folder / "trusted.log", "ab")  # noqa: SIM115
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command(runtime, stage),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                limit=MAX_LINE,
                # nothing of the grader's environment, not even in bwrap's own process (pid 1)
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            )
        except OSError as e:
            self.problem = f"the trusted interpreter did not start ({e})"
            return False
        finally:
            log.close()
        self._reader = asyncio.ensure_future(self._read(self.proc))
        try:
            await self.send({"op": "setup", "cells": list(setup)}, 0)
            reply = await asyncio.wait_for(self.receive(0), self.startup_timeout)
        except (TimeoutError, ConnectionError, ValueError) as e:
            await self.kill()
            try:
                tail = (folder / "trusted.log").read_text(errors="replace").strip()[-300:]
            except OSError:
                tail = ""
            self.problem = f"the trusted interpreter did not start ({type(e).__name__} {e}) {tail}"
            return False
        if reply.get("failed"):
            f = reply["failed"]
            self.problem = (
                f"the setup cells fail in the trusted interpreter ({f.get('ename')}: "
                f"{str(f.get('evalue', ''))[:200]})"
            )
            await self.kill()
            return False
        self.fork = bool(reply.get("fork"))
        return True

    async def _read(self, proc) -> None:
        """Hand each line of the process to the queue of the submission it is tagged with."""
        try:
            while line := await proc.stdout.readline():
                tag, _, payload = line.partition(b" ")
                try:
                    queue = self._queues.get(int(tag))
                except ValueError:
                    continue
                if queue is not None:
                    queue.put_nowait(payload)
        except (ValueError, OSError):  # a line over MAX_LINE: the link is broken
            pass
        finally:
            self._closed = True
            for queue in self._queues.values():
                queue.put_nowait(None)

    def _queue(self, sub: int) -> asyncio.Queue:
        return self._queues.setdefault(sub, asyncio.Queue())

    async def open(self, setup: list[str]) -> int | None:
        """Ready for one submission: the number of its own process, forked from the post-setup
        state (None: not available, or a one-submission interpreter already taken)."""
        if not await self.start(setup) or not self.alive():
            return None
        if not self.fork:
            if self.claimed:
                return None
            self.claimed = True
            self.served += 1
            return 1
        sub, self._next = self._next, self._next + 1
        forking = asyncio.ensure_future(self._fork(sub))
        try:
            return await asyncio.shield(forking)
        except asyncio.CancelledError:
            # the session ended while its process was being forked: stop that process then
            def stop(task: asyncio.Task) -> None:
                if not task.cancelled() and task.exception() is None and task.result():
                    asyncio.ensure_future(self.drop(sub))

            forking.add_done_callback(stop)
            raise

    async def _fork(self, sub: int) -> int | None:
        self._queue(sub)
        try:
            await self.send({"op": "submission", "sub": sub}, 0)
            reply = await asyncio.wait_for(self.receive(sub), self.startup_timeout)
        except (TimeoutError, ConnectionError, ValueError) as e:
            reply = {"error": f"{type(e).__name__} {e}"}
        if reply.get("op") != "forked":
            self._queues.pop(sub, None)
            self.problem = f"the trusted interpreter did not fork ({reply.get('error')})"
            await self.kill()
            return None
        self.served += 1
        return sub

    async def done(self, sub: int) -> None:
        """Submission ``sub`` is graded: its process exits (the server waits for the next); a
        trusted interpreter that cannot fork is stopped."""
        if self.fork and self.alive():
            try:
                await self.send({"op": "end"}, sub)
                reply = await asyncio.wait_for(self.receive(sub), 30)
                if reply.get("op") == "exited" and reply.get("status") == 0:
                    self._queues.pop(sub, None)
                    return
            except (TimeoutError, ConnectionError, ValueError, OSError):
                pass
            await self.drop(sub)
            return
        await self.kill()

    async def drop(self, sub: int) -> None:
        """Stop submission ``sub``'s process (it misbehaved, or its check timed out), not the
        server: the other workers' submissions go on. A server that does not confirm within
        10 s is stopped."""
        if self.fork and self.alive():
            try:
                await self.send({"op": "kill", "sub": sub}, 0)
                while True:
                    reply = await asyncio.wait_for(self.receive(sub), 10)
                    if reply.get("op") == "exited":
                        self._queues.pop(sub, None)
                        return
            except (TimeoutError, ConnectionError, ValueError, OSError):
                pass
        await self.kill()

    async def send(self, msg: dict, sub: int) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise ConnectionError("the trusted interpreter is not running")
        self.proc.stdin.write(f"{sub} ".encode() + json.dumps(msg).encode() + b"\n")
        await self.proc.stdin.drain()

    async def receive(self, sub: int) -> dict:
        queue = self._queue(sub)
        if self._closed and queue.empty():
            raise ConnectionError("the trusted interpreter exited")
        payload = await queue.get()
        if payload is None:
            raise ConnectionError("the trusted interpreter exited")
        msg = json.loads(payload)
        if not isinstance(msg, dict):
            raise ValueError("not a message")
        return msg

    async def kill(self) -> None:
        self.problem = self.problem or "the trusted interpreter was stopped"
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._reader, 5)


class TrustedPool:
    """The batch's trusted interpreters, one per notebook of an assignment (and setup), shared
    by every worker: the setup cells run once, each submission gets a fresh forked process.
    ``uid``: the user they run as (as root), one no kernel has (grade.py), so a fork bomb in a
    kernel, which holds its user's process limit, cannot stop the trusted side's forks."""

    def __init__(self, scratch: Path, uid: int | None = None):
        self.scratch = scratch
        self.uid = uid
        self._interpreters: dict = {}

    def interpreter(self, key, make) -> Interpreter:
        found = self._interpreters.get(key)
        if found is None or not found.reusable():
            found = self._interpreters[key] = make()
        return found

    async def close(self) -> None:
        for interpreter in self._interpreters.values():
            await interpreter.kill()
        self._interpreters.clear()


class TrustedSession:
    """The trusted side of one graded notebook: a process of the worker's pooled interpreter
    (``pool``), or an interpreter of its own; started beside the student's kernel."""

    def __init__(
        self,
        sandbox,
        stage: Path,
        scratch: Path,
        *,
        startup_timeout: float = 120,
        pool: TrustedPool | None = None,
        key=None,
        stage_for=None,
    ):
        self.sandbox = sandbox
        self.stage = stage
        self.scratch = scratch
        self.startup_timeout = startup_timeout
        self.pool, self.key, self.stage_for = pool, key, stage_for
        self.interp: Interpreter | None = None
        self.sub: int | None = None  # this notebook's process of the interpreter
        self._ready: asyncio.Task | None = None
        self.problem: str | None = None  # why the trusted interpreter is not available
        self._reported = False
        self.guard = Guard()
        self._pending: dict[int, list[str]] = {}  # step -> what the probe found before it
        self._seen: set[str] = set()  # what the probe reported already
        self._answers: list[str] = []  # the current test's answers that were not plain data

    def begin(self, setup: list[str]) -> None:
        """Start (or take from the pool) the interpreter and its setup, in the background."""
        if self._ready is not None:
            return
        self.interp = self._interpreter(setup)
        self._ready = asyncio.ensure_future(self._open(setup))

    def _interpreter(self, setup: list[str]) -> Interpreter:
        if self.pool is not None and self.stage_for is not None:
            sandbox = self.sandbox
            if self.pool.uid is not None:
                sandbox = dataclasses.replace(sandbox, uid=self.pool.uid)
            return self.pool.interpreter(
                (self.key, tuple(setup)),
                lambda: Interpreter(
                    sandbox,
                    self.pool.scratch,
                    self.stage_for,
                    startup_timeout=self.startup_timeout,
                ),
            )
        return Interpreter(
            self.sandbox,
            self.scratch,
            lambda folder: self.stage,
            startup_timeout=self.startup_timeout,
        )

    async def _open(self, setup: list[str]) -> bool:
        """This notebook's process of the interpreter; a pooled interpreter that turned out to
        serve one submission only, and is taken, is replaced by a fresh one."""
        for _ in range(2):
            assert self.interp is not None
            self.sub = await self.interp.open(setup)
            if self.sub is not None:
                return True
            if self.pool is None or self.interp.problem is not None:
                return False
            self.interp = self._interpreter(setup)
        return False

    async def _send(self, msg: dict) -> None:
        assert self.interp is not None and self.sub is not None
        await self.interp.send(msg, self.sub)

    async def _receive(self) -> dict:
        assert self.interp is not None and self.sub is not None
        return await self.interp.receive(self.sub)

    async def close(self) -> None:
        """This notebook is graded (or the trusted side failed): release the interpreter."""
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
            with contextlib.suppress(BaseException):
                await self._ready
        if self.interp is not None:
            if self.sub is not None:
                sub, self.sub = self.sub, None
                await self.interp.done(sub)
            if self.pool is None:
                await self.interp.kill()

    async def _stop(self, why: str) -> None:
        """This submission's trusted process misbehaved: stop it (not the other submissions')."""
        self.problem = why
        if self.interp is not None and self.sub is not None:
            sub, self.sub = self.sub, None
            await self.interp.drop(sub)

    async def available(self) -> bool:
        if self._ready is None or self.problem is not None:
            return False
        try:
            ok = await self._ready
        except Exception as e:  # noqa: BLE001
            self.problem = f"the trusted interpreter failed ({e})"
            return False
        if not ok and self.interp is not None:
            self.problem = self.interp.problem or "the trusted interpreter is not available"
        return ok and self.interp is not None and self.interp.proc is not None

    async def kernel_started(self, runner, step) -> None:
        """A fresh kernel, before any code: the student's side of the codec."""
        await runner._execute(install_code(), True, step, time.monotonic() + 60)

    async def setup_done(self, runner, step) -> None:
        """The source's setup cells ran, nothing of the student's yet: the guard's snapshot
        (what the setup installed, such as the course's exception display, is not a change)."""
        await self.guard.kernel_started(
            runner, step, numpy=any("numpy" in c for c in runner.plan.setup)
        )

    async def grade(self, runner, index: int, step, deadline: float):
        """The results of test step ``index`` (one per segment), or None: the runner runs it in
        the kernel as before, then calls ``finish``."""
        from dlcourse.grading.execute import Event

        results = None
        if await self.available():
            results = await self._judge(runner, index, step, deadline)
        elif self.problem and not self._reported:
            self._reported = True
            runner.events.append(
                Event("trusted", index, f"{self.problem}: tests judged in the student's kernel")
            )
        if results is None:  # judged in the kernel: probe before it runs there, and after
            self._pending[index] = await self.guard.probe(runner, index, deadline)
            return None
        return await self._apply(runner, index, results, [], deadline, trusted=True)

    async def finish(self, runner, index: int, results: list, deadline: float) -> list:
        """After a test step judged in the kernel: the guard's verdict."""
        return await self._apply(runner, index, results, self._pending.pop(index, []), deadline)

    async def _apply(self, runner, index, results, found, deadline, trusted=False) -> list:
        """Probe after the test; what it found zeroes the test (``needs_review``): the first test
        after the change appeared, and every test judged in the kernel while it lasts. A probe
        that failed to answer does not zero a trusted verdict (it cannot have changed it)."""
        from dlcourse.grading.execute import Event, SegmentResult

        found = list(dict.fromkeys(found + await self.guard.probe(runner, index, deadline)))
        if trusted:  # a trusted verdict: report (and zero) what is new since the last test
            found = [f for f in found if f not in self._seen]
        self._seen.update(found)
        if not found:
            return results
        what = ", ".join(found)
        zero = not (trusted and all(f.startswith(PROBE_FAILED) for f in found))
        runner.events.append(
            Event(
                "tamper",
                index,
                f"the student's kernel was altered ({what})"
                + (": 0 points for this test; review by hand" if zero else "; review by hand"),
            )
        )
        if zero and results and results[0].status == "ok":
            first = results[0]
            error = nbformat.v4.new_output(
                "error",
                ename="TamperingDetected",
                evalue=f"the student's kernel was altered: {what}",
                traceback=[f"TamperingDetected: the student's kernel was altered: {what}"],
            )
            results = [
                SegmentResult(
                    first.outputs + [error],
                    "error",
                    "TamperingDetected",
                    f"the student's kernel was altered: {what}",
                    first.seconds,
                )
            ] + [SegmentResult([], "skipped") for _ in results[1:]]
        return results

    async def _judge(self, runner, index: int, step, deadline: float):
        """The trusted run of every segment, then the visible checks in the kernel."""
        from dlcourse.grading.execute import Event, SegmentResult

        names = sorted(getattr(runner.plan, "student_names", ()) or ())
        self._answers = []
        results: list = []
        for seg in step.segments:
            if results and results[-1].status != "ok":
                results.append(SegmentResult([], "skipped"))
                continue
            res = await self._segment(runner, seg.code, names, index, deadline)
            if res is None:
                return None
            results.append(res)
        # The visible checks in the student's kernel: do they agree with the trusted verdict?
        kernel_ok = True
        for seg in step.segments:
            if seg.hidden:
                continue
            got = await runner._execute(seg.code, False, index, deadline)
            if got.status != "ok":
                kernel_ok = False
                break
        first_bad = next(
            (k for k, r in enumerate(results) if r.status not in ("ok", "skipped")), None
        )
        if kernel_ok and first_bad is not None and not step.segments[first_bad].hidden:
            bad = results[first_bad]
            why = f"{bad.ename}: {bad.evalue}" if bad.ename else bad.status
            runner.events.append(
                Event(
                    "tamper",
                    index,
                    "its visible checks pass in the student's kernel but fail when re-run in "
                    f"the trusted interpreter ({why[:200]}): the student's code changes what "
                    "the checks rely on (0 points; review by hand)",
                )
            )
            return results
        if self._answers:
            what = "; ".join(dict.fromkeys(self._answers))
            runner.events.append(Event("tamper", index, f"{what} (0 points; review by hand)"))
            if results and results[0].status == "ok":
                results = [
                    SegmentResult(
                        results[0].outputs, "error", "TamperingDetected", what, results[0].seconds
                    )
                ] + [SegmentResult([], "skipped") for _ in results[1:]]
        return results

    def _note(self, msg: dict, reply: dict) -> None:
        """Answers that try to bring their own behaviour into the check: an array-like of the
        student's own class (converted to its plain data), an object that is not data."""
        what = f"{str(msg.get('name'))[:60]}()" if msg.get("op") == "call" else msg.get("name")
        for kind in (
            reply.get("converted", [])[:3] if isinstance(reply.get("converted"), list) else []
        ):
            self._answers.append(f"{what} returned a {str(kind)[:80]}, graded as its plain data")
        if reply.get("kind") in ("notdata", "other"):
            detail = str(reply.get("detail", "an object"))[:80]
            self._answers.append(f"{what} returned {detail}, which is not plain data")

    async def _segment(self, runner, code: str, names, index: int, deadline: float):
        from dlcourse.grading.execute import Event, SegmentResult

        start = time.monotonic()
        limit = min(runner.timeout, deadline - start)
        if limit <= 0:
            return SegmentResult([], "not-run")
        seg_deadline = start + limit
        try:
            await self._send({"op": "run", "code": code, "names": list(names)})
            while True:
                msg = await asyncio.wait_for(self._receive(), seg_deadline - time.monotonic())
                if msg.get("op") in ("call", "lookup"):
                    got = await runner._execute(student_request(msg), True, index, seg_deadline)
                    if got.status == "ok":
                        reply = read_reply(got.outputs)
                        self._note(msg, reply)
                    else:
                        what = f"{got.ename}: {got.evalue}" if got.ename else got.status
                        reply = {"kind": "failed", "detail": f"the student's kernel: {what}"}
                    await self._send(reply)
                    continue
                break
        except TimeoutError:
            await self._stop("the trusted interpreter was stopped after a timeout")
            runner.events.append(Event("timeout", index, f"timed out after {limit:.0f} s"))
            return SegmentResult([], "timeout", seconds=time.monotonic() - start)
        except (ConnectionError, ValueError, OSError) as e:
            await self._stop(f"the trusted interpreter stopped ({e})")
            runner.events.append(Event("died", index, f"the trusted interpreter stopped ({e})"))
            return SegmentResult([], "died", seconds=time.monotonic() - start)
        seconds = time.monotonic() - start
        status = msg.get("status")
        if status == "notdata":
            detail = str(msg.get("detail", ""))[:200]
            runner.events.append(
                Event("kernel-verdict", index, f"judged in the student's kernel: {detail}")
            )
            return None
        if status == "ok":
            return SegmentResult(_outputs(msg), "ok", seconds=seconds)
        return SegmentResult(
            _outputs(msg), "error", msg.get("ename"), str(msg.get("evalue", "")), seconds
        )


def enabled(sandbox) -> bool:
    """Grading with a trusted interpreter: always, except for ``dlcourse check`` (the student's
    own run, ``plain``) and when ``DLCOURSE_TRUSTED=0`` (for measuring its cost)."""
    return not sandbox.plain and os.environ.get("DLCOURSE_TRUSTED", "1") != "0"
