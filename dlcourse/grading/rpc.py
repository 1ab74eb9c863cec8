"""The student's side of a call from the trusted interpreter: the code the kernel runs.

The trusted interpreter (``_trusted.py``) never runs student code; when a test calls a student's
function, the grader sends one request to the student's kernel. The kernel holds the same codec
as the trusted side (installed once per kernel as a module, ``install_code``), calls the function
with the decoded arguments and prints the result, encoded, on a marked line (``read_reply``).
Everything here runs in the process the student controls: what it sends back is treated as the
student's answer, decoded strictly on the trusted side, never as a verdict.
"""

from __future__ import annotations

import inspect
import json

from dlcourse.grading import _trusted
from dlcourse.grading.guard import encoded, marked_line

MARK = "\x1edlcourse-rpc "

_SERVE = '''
LIBRARIES = ("numpy", "tensorflow", "keras", "jax", "torch")
converted = []


def _normal(value, depth=0):
    """The student's answer as plain data: exact NumPy arrays, tensors converted. An array-like
    of the student's own making (an ndarray subclass, an object with ``__array__``) is converted
    too, and named in ``converted``: its own comparisons are never used."""
    np = sys.modules.get("numpy")
    t = type(value)
    if depth > MAX_DEPTH:
        return value
    if t in (list, tuple):
        return t(_normal(v, depth + 1) for v in value)
    if t is dict:
        return {_normal(k, depth + 1): _normal(v, depth + 1) for k, v in value.items()}
    if np is None or t is np.ndarray or t in (bool, int, float, complex, str, bytes):
        return value
    root = t.__module__.split(".")[0]
    if root not in LIBRARIES and (isinstance(value, np.ndarray) or hasattr(value, "__array__")):
        converted.append(f"{t.__module__}.{t.__qualname__}")
    elif root not in LIBRARIES or isinstance(value, np.generic):
        return value
    try:
        return np.array(value, subok=False)
    except Exception:
        return value


def serve(ns, request):
    converted.clear()
    req = json.loads(request)
    name = req["name"]
    if name not in ns:
        return json.dumps({"kind": "absent"})
    obj = ns[name]
    if req["op"] == "lookup":
        if callable(obj):
            return json.dumps({"kind": "callable"})
        try:
            reply = {"kind": "value", "value": encode(_normal(obj))}
        except NotData as e:
            reply = {"kind": "other", "detail": str(e)}
        return json.dumps({**reply, "converted": converted})
    args, kwargs = decode(req["args"]), decode(req["kwargs"])
    try:
        result = obj(*args, **kwargs)
    except Exception as e:
        return json.dumps({"kind": "raised", "ename": type(e).__name__, "evalue": str(e)[:2000]})
    try:
        reply = {"kind": "value", "value": encode(_normal(result))}
    except NotData as e:
        reply = {"kind": "notdata", "detail": str(e)}
    return json.dumps({**reply, "converted": converted})
'''

# The student's side: the same codec, sent with every request (nothing to find in the kernel).
STUDENT_CODEC = "\n".join(
    [
        "import base64, io, json, sys",
        f"MAX_DEPTH = {_trusted.MAX_DEPTH}",
        inspect.getsource(_trusted.NotData),
        inspect.getsource(_trusted._np),
        inspect.getsource(_trusted.encode),
        inspect.getsource(_trusted.decode),
        _SERVE,
    ]
)


def install_code() -> str:
    """Code for a fresh kernel: the student's side of the codec, as a module (compiled once)."""
    code = (
        "import sys, types\n"
        "module = types.ModuleType('__dlcourse_rpc__')\n"
        f"exec({STUDENT_CODEC!r}, module.__dict__)\n"
        "sys.modules['__dlcourse_rpc__'] = module\n"
    )
    return f"exec(__import__('base64').b64decode({encoded(code)!r}).decode(), {{}})\n"


def student_request(msg: dict) -> str:
    """Code for the student's kernel that answers one ``call``/``lookup`` on its stdout."""
    request = json.dumps({k: msg[k] for k in ("op", "name", "args", "kwargs") if k in msg})
    code = (
        f"print({chr(10) + MARK!r} + __import__('sys').modules['__dlcourse_rpc__']"
        f".serve(globals(), {request!r}))\n"
    )
    # base64, so that an input transformer matching words in the arguments does not see them
    return f"exec(__import__('base64').b64decode({encoded(code)!r}).decode())\n"


def read_reply(outputs) -> dict:
    """The student's side's answer in a call's outputs (the last marked line)."""
    line = marked_line(outputs, MARK)
    if line is None:
        return {"kind": "failed", "detail": "the student's kernel sent no answer"}
    try:
        reply = json.loads(line)
    except (ValueError, RecursionError):
        return {"kind": "failed", "detail": "the student's kernel sent an unreadable answer"}
    return reply if isinstance(reply, dict) else {"kind": "failed", "detail": "not an answer"}
