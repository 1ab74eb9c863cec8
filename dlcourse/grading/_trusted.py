"""The trusted interpreter: runs the instructor's setup and test cells, never the student's code.

Runs as a script, ``python -I _trusted.py SPEC.json``, inside its own sandbox (the same bubblewrap
prefix as a kernel, its own runtime folder, its own pid and network namespaces): it shares no
process, memory or writable file with the student's kernel. The grader talks to it over stdin and
stdout, one JSON message a line, each line tagged with a submission's number (``N {...}``; 0: the
process itself). After setup it is a fork server (``fork_server``): ``0 {"op": "submission",
"sub": N}`` forks submission N's own process, which answers the messages below:

* ``{"op": "setup", "cells": [...]}``: run the source's setup cells; answers ``{"op": "ready"}``;
* ``{"op": "run", "code": ..., "names": [...]}``: run one segment of a test cell. Every name the
  source's solution cells define, and every name the test reads that setup did not define, is
  the student's: a call to it is sent to the grader as ``{"op": "call", ...}`` (the grader runs
  it in the student's kernel and answers with the result as *data*), a data value is fetched with
  ``{"op": "lookup", ...}``. Answers ``{"op": "done", ...}`` with the verdict.

Only plain data crosses: None, bool, int, float, complex, str, bytes, list, tuple, dict and NumPy
arrays/scalars (``np.save``/``np.load`` with ``allow_pickle=False``, object dtypes refused). So
nothing the student's code did to its own interpreter (rebound builtins, a patched NumPy or check
module, lying ``__eq__``/``__array_function__``, IPython hooks, tracers, import hooks) exists here.
An argument that is not plain data (a Keras tensor or model) cannot cross: the segment answers
``"notdata"`` and the grader evaluates that test cell in the student's kernel instead.

Imports only the standard library at start (NumPy when a message needs it); the setup cells
import what the tests need.
"""

import ast
import base64
import builtins
import io
import json
import os
import resource
import sys
import traceback

MAX_DEPTH = 64


class NotData(TypeError):
    """A value that cannot cross between the interpreters as plain data."""


class StudentError(Exception):
    """The student's function raised an exception that is not a built-in one."""


def _np():
    import numpy

    return numpy


def encode(value, depth=0):
    """``value`` as JSON-ready tagged data; NotData for anything else (exact types only)."""
    if depth > MAX_DEPTH:
        raise NotData("nested too deeply")
    t = type(value)
    if value is None:
        return ["n"]
    if t is bool:
        return ["b", value]
    if t is int:
        return ["i", value]
    if t is float:
        return ["f", value]
    if t is complex:
        return ["c", value.real, value.imag]
    if t is str:
        return ["s", value]
    if t is bytes:
        return ["x", base64.b64encode(value).decode()]
    if t in (list, tuple):
        return ["l" if t is list else "t", [encode(v, depth + 1) for v in value]]
    if t is dict:
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]]
    if "numpy" in sys.modules:
        np = sys.modules["numpy"]
        if t is np.ndarray or isinstance(value, np.generic):
            arr = np.asarray(value)
            if arr.dtype.hasobject:
                raise NotData("an array of Python objects")
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            return ["a" if t is np.ndarray else "g", base64.b64encode(buf.getvalue()).decode()]
    raise NotData(f"a {t.__module__}.{t.__qualname__}")


def decode(data, depth=0):
    """The value of tagged data; ValueError for anything malformed."""
    if depth > MAX_DEPTH or type(data) is not list or not data or type(data[0]) is not str:
        raise ValueError("malformed data")
    tag, rest = data[0], data[1:]
    scalar = {"b": bool, "i": int, "f": float, "s": str}
    if tag == "n" and not rest:
        return None
    if tag in scalar and len(rest) == 1 and type(rest[0]) is scalar[tag]:
        return rest[0]
    if tag == "f" and len(rest) == 1 and type(rest[0]) is int:
        return float(rest[0])
    if tag == "c" and len(rest) == 2:
        return complex(float(rest[0]), float(rest[1]))
    if tag == "x" and len(rest) == 1 and type(rest[0]) is str:
        return base64.b64decode(rest[0], validate=True)
    if tag in ("l", "t") and len(rest) == 1 and type(rest[0]) is list:
        items = [decode(v, depth + 1) for v in rest[0]]
        return items if tag == "l" else tuple(items)
    if tag == "d" and len(rest) == 1 and type(rest[0]) is list:
        out = {}
        for pair in rest[0]:
            if type(pair) is not list or len(pair) != 2:
                raise ValueError("malformed dict")
            out[decode(pair[0], depth + 1)] = decode(pair[1], depth + 1)
        return out
    if tag in ("a", "g") and len(rest) == 1 and type(rest[0]) is str:
        np = _np()
        arr = np.load(io.BytesIO(base64.b64decode(rest[0], validate=True)), allow_pickle=False)
        if type(arr) is not np.ndarray or arr.dtype.hasobject:
            raise ValueError("not a plain array")
        return arr if tag == "a" else arr[()]
    raise ValueError(f"malformed data (tag {tag!r})")


class Lines:
    """Lines read from a file descriptor (``os.read``, no read-ahead hidden in a buffer: the
    fork server waits on several descriptors with ``select``)."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()
        self._scanned = 0  # bytes of ``buf`` known to hold no newline

    def pop(self):
        """The next complete line, or None."""
        at = self.buf.find(b"\n", self._scanned)
        if at < 0:
            self._scanned = len(self.buf)
            return None
        line = bytes(self.buf[: at + 1])
        del self.buf[: at + 1]
        self._scanned = 0
        return line

    def feed(self):
        """Read what is there (blocks until something is); False at end of file."""
        chunk = os.read(self.fd, 1 << 16)
        self.buf += chunk
        return bool(chunk)

    def readline(self):
        while (line := self.pop()) is None:
            if not self.feed():
                return b""
        return line


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Channel:
    """A JSON-lines link: to the grader (lines tagged with the submission's number, ``tag``)
    or, in a forked process, to the fork server (untagged)."""

    def __init__(self, reader, out_fd, tag=None):
        self.reader, self.out_fd = reader, out_fd
        self.prefix = b"" if tag is None else f"{tag} ".encode()

    def send(self, msg):
        write_all(self.out_fd, self.prefix + json.dumps(msg).encode() + b"\n")

    def receive(self):
        line = self.reader.readline()
        if not line:
            raise SystemExit(0)
        if self.prefix and line.startswith(self.prefix):
            line = line[len(self.prefix) :]
        return json.loads(line)


class StudentName:
    """A name of the student's, seen from the trusted side: calling it runs it over there."""

    def __init__(self, channel, name):
        self._channel, self._name = channel, name

    def __repr__(self):
        return f"<the student's {self._name}>"

    def __call__(self, *args, **kwargs):
        try:
            request = {"op": "call", "name": self._name, "args": encode(list(args))}
            request["kwargs"] = encode(dict(kwargs))
        except NotData as e:
            raise _Fallback(f"an argument of {self._name}() is {e}, not plain data") from None
        self._channel.send(request)
        reply = self._channel.receive()
        return answer(reply, f"{self._name}()")


class Opaque:
    """A student's name bound to something that is neither a function nor plain data."""

    def __init__(self, name, kind):
        self._what = f"{name} is {kind}, which cannot be read as plain data"

    def __getattr__(self, attr):
        raise TypeError(self._what)

    def __call__(self, *a, **k):
        raise TypeError(self._what)

    def __repr__(self):
        return f"<{self._what}>"


class _Fallback(BaseException):
    """This test cell passes objects that cannot cross: the grader evaluates it elsewhere.
    A BaseException so that the test's own ``except Exception`` cannot swallow it."""


def answer(reply, what):
    """The value (or the exception) the student's side sent back for ``what``."""
    kind = reply.get("kind")
    if kind == "value":
        try:
            return decode(reply.get("value"))
        except (ValueError, TypeError) as e:
            raise TypeError(f"{what} returned something that is not plain data ({e})") from None
    if kind == "raised":
        ename, evalue = str(reply.get("ename", "Exception"))[:100], str(reply.get("evalue", ""))
        cls = getattr(builtins, ename, None)
        if isinstance(cls, type) and issubclass(cls, Exception) and cls is not StopIteration:
            raise cls(evalue)
        raise StudentError(f"{ename}: {evalue}")
    if kind == "notdata":
        raise TypeError(
            f"{what} returned {str(reply.get('detail', 'an object'))[:200]}, not plain data "
            "(NumPy arrays, numbers, strings, lists, tuples, dicts)"
        )
    raise RuntimeError(str(reply.get("detail", "the student's kernel did not answer"))[:300])


class Namespace(dict):
    """The tests' globals: a name neither setup nor the test defined is looked up, as data or a
    function, in the student's kernel (only while a test runs; forgotten before the next one)."""

    channel = None
    fetched: set = set()

    def __missing__(self, name):
        if self.channel is None or name in builtins.__dict__ or name.startswith("__"):
            raise KeyError(name)
        self.channel.send({"op": "lookup", "name": name})
        reply = self.channel.receive()
        kind = reply.get("kind")
        if kind == "callable":
            value = StudentName(self.channel, name)
        elif kind == "value":
            value = answer(reply, name)
        elif kind == "other":
            value = Opaque(name, str(reply.get("detail", "an object"))[:200])
        else:
            raise KeyError(name)
        self[name] = value
        self.fetched.add(name)
        return value

    def forget(self):
        for name in self.fetched:
            self.pop(name, None)
        self.fetched = set()


def _shell():
    """An IPython shell for the magics a cell may use (``%matplotlib``); created on demand."""
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance()


def python_source(code):
    """A cell's code as Python: IPython's magics and shell escapes become calls."""
    if "%" in code or "!" in code:
        from IPython.core.inputtransformer2 import TransformerManager

        code = TransformerManager().transform_cell(code)
    return code


def _compile(code):
    """The cell as Python and the value of its last expression, compiled separately."""
    tree = ast.parse(python_source(code), "<test>")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    return (
        compile(tree, "<test>", "exec"),
        compile(last, "<test>", "eval") if last is not None else None,
    )


def run(code, ns, channel):
    """Run one segment; the verdict and what it printed."""
    out = io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = out
    ns.channel = channel
    value = None
    try:
        body, last = _compile(code)
        exec(body, ns)
        if last is not None:
            value = eval(last, ns)
        status, extra = "ok", {}
    except _Fallback as e:
        status, extra = "notdata", {"detail": str(e)}
    except BaseException as e:  # noqa: BLE001 - the verdict of the test, whatever it raised
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        tb = [line for line in tb if "_trusted.py" not in line]
        status = "error"
        extra = {"ename": type(e).__name__, "evalue": str(e)[:2000], "traceback": tb[-20:]}
    finally:
        ns.channel = None
        sys.stdout, sys.stderr = saved
    result = {"op": "done", "status": status, "stdout": out.getvalue()[-100_000:], **extra}
    if status == "ok" and value is not None:
        result["value"] = repr(value)[:10_000]
    return result


def _drop_privileges(spec):
    uid, gid = spec.get("uid"), spec.get("gid")
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)


def _tasks():
    """Threads of this process (a fork is safe only when there is one)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def _files(folders):
    """Every path under ``folders`` (what setup left there)."""
    found = set()
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            found.update(os.path.join(root, n) for n in dirs + files)
    return found


def _remove_new(folders, kept):
    """Remove what a submission's process created under ``folders`` (not what setup made)."""
    for path in sorted(_files(folders) - kept, reverse=True):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError:
            pass


def serve(ns, channel):
    """Answer ``run`` messages until ``end`` (or the grader goes away)."""
    while True:
        msg = channel.receive()
        if msg.get("op") == "run":
            ns.forget()
            for name in msg.get("names", []):
                ns[name] = StudentName(channel, name)
            channel.send(run(msg["code"], ns, channel))
        elif msg.get("op") == "end":
            return
        else:
            channel.send({"op": "done", "status": "error", "ename": "ProtocolError"})


class Child:
    """A submission's process, forked from the post-setup state, and its pipes."""

    def __init__(self, pid, to_fd, reader, tmp):
        self.pid, self.to_fd, self.reader, self.tmp = pid, to_fd, reader, tmp

    def close(self):
        for fd in (self.to_fd, self.reader.fd):
            try:
                os.close(fd)
            except OSError:
                pass


def _fork_child(sub, ns, grader, out_fd, children, tmpdir):
    """Fork the process of submission ``sub``: it talks over pipes of its own, through the
    server, and writes temporary files in a folder of its own (removed when it exits)."""
    import tempfile

    tmp = os.path.join(tmpdir, f".sub{sub}")
    os.makedirs(tmp, mode=0o700)
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            # nothing of the server's links: not the grader's pipes, not the other submissions'
            for fd in [to_w, from_r, grader.fd, out_fd] + [
                f for c in children.values() for f in (c.to_fd, c.reader.fd)
            ]:
                os.close(fd)
            os.environ["TMPDIR"] = tmp
            tempfile.tempdir = None
            serve(ns, Channel(Lines(to_r), from_w))
        except BaseException:  # noqa: BLE001 - the server reports the exit status
            code = 1
        finally:
            os._exit(code)
    os.close(to_r)
    os.close(from_w)
    children[sub] = Child(pid, to_w, Lines(from_r), tmp)


def _reap(sub, children, out_fd):
    """Submission ``sub``'s process ended (its pipe closed): wait for it, remove its folder."""
    import shutil

    child = children.pop(sub)
    child.close()
    _, status = os.waitpid(child.pid, 0)
    shutil.rmtree(child.tmp, ignore_errors=True)
    msg = {"op": "exited", "status": os.waitstatus_to_exitcode(status)}
    write_all(out_fd, f"{sub} ".encode() + json.dumps(msg).encode() + b"\n")


def fork_server(ns, grader, out_fd, tmpdir, writable, kept):
    """Serve every submission of the batch, several at once, each in its own process forked
    from this post-setup state (``{"op": "submission", "sub": N}`` on line tag 0): lines tagged
    N go to process N and its lines come back tagged N. The server stays single-threaded (so it
    can fork), runs no test code itself, and relays lines without parsing them. What a
    submission's process leaves in memory dies with it; its temporary folder is removed when it
    exits, and anything else new in the writable folders when no submission is running."""
    import select
    import signal

    children = {}
    while True:
        line = grader.pop()
        if line is None:
            fds = [grader.fd] + [c.reader.fd for c in children.values()]
            ready = select.select(fds, [], [])[0]
            if grader.fd in ready and not grader.feed():
                for child in children.values():  # the grader went away: so do they
                    os.kill(child.pid, signal.SIGKILL)
                return
            for sub, child in list(children.items()):
                if child.reader.fd not in ready:
                    continue
                alive = child.reader.feed()
                while (out := child.reader.pop()) is not None:
                    write_all(out_fd, f"{sub} ".encode() + out)
                if not alive:
                    _reap(sub, children, out_fd)
                    if not children:
                        _remove_new(writable, kept)
            continue
        tag, _, payload = line.partition(b" ")
        try:
            sub = int(tag)
        except ValueError:
            continue
        if sub != 0:  # for a submission's process (which is waiting for it)
            child = children.get(sub)
            if child is not None:
                try:
                    write_all(child.to_fd, payload)
                except OSError:
                    os.kill(child.pid, signal.SIGKILL)
            continue
        try:
            msg = json.loads(payload)
            op, sub = msg.get("op"), int(msg.get("sub"))
        except (ValueError, TypeError, AttributeError):
            continue
        if op == "submission" and sub > 0 and sub not in children:
            try:
                _fork_child(sub, ns, grader, out_fd, children, tmpdir)
                reply = {"op": "forked"}
            except OSError as e:
                reply = {"op": "exited", "status": None, "error": str(e)[:200]}
            write_all(out_fd, f"{sub} ".encode() + json.dumps(reply).encode() + b"\n")
        elif op == "kill" and sub in children:
            os.kill(children[sub].pid, signal.SIGKILL)  # its exit is reported when its pipe closes


def main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    _drop_privileges(spec)
    os.environ.clear()
    os.environ.update(spec["env"])
    for folder in (spec["home"], spec["tmpdir"]):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    memory = spec.get("memory")
    if memory:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        except (ValueError, OSError):
            pass
    os.chdir(spec["workdir"])
    # the grader's link: a private copy of fd 1 (C libraries that write to fd 1 write to
    # /dev/null, the tests' own output is captured), and fd 0 read without a hidden buffer
    out_fd = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    grader = Lines(0)
    channel = Channel(grader, out_fd, tag=0)
    ns = Namespace(__name__="__main__", __builtins__=builtins)
    ns["get_ipython"] = _shell
    msg = channel.receive()
    if msg.get("op") != "setup":
        channel.send({"op": "ready", "failed": {"ename": "ProtocolError"}})
        return
    failed = None
    for code in msg.get("cells", []):
        result = run(code, ns, None)
        if result["status"] != "ok":
            failed = result
            break
    writable = [f for f in (spec["tmpdir"], spec["home"], spec.get("shm")) if f]
    kept = _files(writable)
    # One process per submission, forked from this post-setup state: what a submission's checks
    # leave in memory (globals, caches, module state) dies with its process. Forking is safe only
    # while this process has one thread; otherwise this process serves one submission (line tag
    # 1) and exits.
    fork = failed is None and _tasks() == 1 and hasattr(os, "fork")
    channel.send({"op": "ready", "failed": failed, "fork": fork})
    if fork:
        fork_server(ns, grader, out_fd, spec["tmpdir"], writable, kept)
    else:
        serve(ns, Channel(grader, out_fd, tag=1))


if __name__ == "__main__":
    main(sys.argv[1])
