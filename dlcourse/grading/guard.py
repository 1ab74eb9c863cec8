"""Defence in depth in the student's kernel: notice code that alters what checks rely on.

The score of a test cell comes from the trusted interpreter (``trusted.py``), which student code
cannot reach. This module adds a second, weaker line for what the trusted run cannot see: test
cells that are judged in the kernel (their arguments are not plain data), and tampering that did
not change a verdict. It is *evidence*, not a guarantee: everything here runs in the process the
student's code controls, and code written to fool this probe can.

* **After the source's setup cells**, before any student code, a snapshot records the identity
  (``id``) of every builtin, of NumPy's comparison functions, of IPython's execution methods and
  of the custom exception handler the setup installed (the course's one-line check display); the
  grader keeps it (the kernel keeps no copy to edit). An audit hook is installed that counts later
  ``sys.addaudithook`` calls. The runner takes it before the first step that is not a setup cell
  of the source (``execute.Runner``), and again after a restarted kernel re-ran the setup cells;
  if a cell of the student's comes before a setup cell (``--cells all``, cells reordered), the
  snapshot comes before that cell, so what later setup cells install counts as a change.
* **Before and after each test cell**, a probe reports what differs: a replaced builtin, NumPy
  function or IPython method; a hook that student code defined (``sys.excepthook``,
  ``displayhook``, a tracer or profiler, an import hook, an output stream, AST and input
  transformers, a custom exception handler, IPython event callbacks); a check module or a name
  the setup imported that is no longer the installed one; a builtin name rebound to a function
  of the student's. "Defined by student code" means: the function's code was compiled from a
  notebook cell or a string (``exec``), not from a file of the installed packages.
"""

from __future__ import annotations

import ast
import base64
import json

MARK = "\x1edlcourse-guard "
PROBE_FAILED = "the integrity probe failed in the student's kernel"

NUMPY_NAMES = (
    "allclose",
    "array_equal",
    "array_equiv",
    "isclose",
    "asarray",
    "array",
    "all",
    "any",
    "abs",
    "max",
    "shape",
    "testing.assert_allclose",
    "testing.assert_array_equal",
    "testing.assert_array_almost_equal",
    "testing.assert_almost_equal",
    "testing.assert_equal",
)
SHELL_METHODS = (
    "run_cell",
    "run_cell_async",
    "run_ast_nodes",
    "run_code",
    "transform_cell",
    "transform_ast",
    "showtraceback",
    "_showtraceback",
    "showsyntaxerror",
    "get_exception_only",
)

CUSTOM_EXC = r"""
def custom_exc(shell):
    # what set_custom_exc installed: the exception classes, IPython's wrapper and what it wraps
    custom = getattr(shell, "CustomTB", None)
    cells = getattr(getattr(custom, "__func__", None), "__closure__", None) or ()
    held = []
    for c in cells:
        try:
            held.append(id(c.cell_contents))
        except ValueError:
            held.append(0)
    return [[id(c) for c in shell.custom_exceptions], id(custom), held]
"""

SNAPSHOT = r"""
def __dlcourse_guard__():
    import builtins, json, sys
    state = {"builtins": {k: id(v) for k, v in vars(builtins).items()}, "numpy": {}, "shell": {}}
    try:
        if not WITH_NUMPY:
            raise ImportError("the setup does not import numpy")
        import numpy
        for name in NUMPY_NAMES:
            obj = numpy
            for part in name.split("."):
                obj = getattr(obj, part)
            state["numpy"][name] = id(obj)
    except Exception:
        pass
    shell = get_ipython()
    for name in SHELL_METHODS:  # every class of the MRO: an override may call super()
        state["shell"][name] = [id(vars(c).get(name)) for c in type(shell).__mro__]
    state["kernel"] = id(getattr(type(shell.kernel), "do_execute", None))
    state["custom"] = custom_exc(shell)
    added = []
    def hook(event, args):
        if event == "sys.addaudithook":
            added.append(1)
    sys.addaudithook(hook)
    sys.modules["__dlcourse_guard_hooks__"] = added
    return json.dumps(state)
print(MARK_TEXT + __dlcourse_guard__())
"""

PROBE = r"""
def __dlcourse_guard__(ns, snapshot, setup_names, checks_file):
    import builtins, json, os, sys, types
    snapshot = json.loads(snapshot)
    found = []

    def origin(obj):
        plain = (types.FunctionType, types.MethodType, types.BuiltinFunctionType)
        cands = [obj, getattr(obj, "__func__", None)]
        if not isinstance(obj, plain):
            cands += list(vars(obj if isinstance(obj, type) else type(obj)).values())
        for c in cands:
            code = getattr(getattr(c, "__func__", c), "__code__", None)
            if code is not None:
                return code.co_filename
        return ""

    def student_made(obj):
        f = origin(obj)
        made = f.startswith("<") and not f.startswith("<frozen ")
        return bool(f) and (made or f.startswith("/tmp") or "ipykernel_" in f)

    for k, v in vars(builtins).items():
        if k in ("input", "raw_input", "getpass"):  # ipykernel rebinds them for every request
            changed = student_made(v)
        else:
            changed = k in snapshot["builtins"] and id(v) != snapshot["builtins"][k]
        if changed:
            found.append(f"builtins.{k} replaced")
    for k in snapshot["builtins"]:
        if k not in vars(builtins):
            found.append(f"builtins.{k} deleted")
    for k, v in list(ns.items()):
        if k in snapshot["builtins"] and callable(v) and student_made(v):
            found.append(f"the builtin name {k!r} rebound to a function of the student's")
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        for name, ident in snapshot["numpy"].items():
            obj = numpy
            try:
                for part in name.split("."):
                    obj = getattr(obj, part)
            except AttributeError:
                obj = None
            if id(obj) != ident:
                found.append(f"numpy.{name} replaced")
        for name in () if snapshot["numpy"] else NUMPY_NAMES:  # no snapshot: origin only
            obj = numpy
            for part in name.split("."):
                obj = getattr(obj, part, None)
            if obj is not None and student_made(obj):
                found.append(f"numpy.{name} replaced")
    shell = get_ipython()
    for name, ident in snapshot["shell"].items():
        mine = vars(shell).get(name)  # ipykernel sets _showtraceback on the instance
        ids = [id(vars(c).get(name)) for c in type(shell).__mro__]
        if ids != ident or (mine and student_made(mine)):
            found.append(f"IPython's {name} replaced")
    if id(getattr(type(shell.kernel), "do_execute", None)) != snapshot["kernel"] or (
        "do_execute" in vars(shell.kernel)
    ):
        found.append("the kernel's do_execute replaced")
    for what, items in (
        ("an AST transformer", shell.ast_transformers),
        ("an input transformer", list(shell.input_transformers_post) + list(shell.input_transformers_cleanup)),
        ("an import hook", list(sys.meta_path) + list(sys.path_hooks)),
        ("an IPython event callback", [c for cbs in shell.events.callbacks.values() for c in cbs]),
    ):
        if any(student_made(x) for x in items):
            found.append(f"{what} of the student's installed")
    if custom_exc(shell) != snapshot.get("custom", [[], 0, []]) and shell.custom_exceptions:
        found.append("a custom exception handler (set_custom_exc)")
    for what, obj in (
        ("sys.excepthook", sys.excepthook),
        ("sys.displayhook", sys.displayhook),
        ("IPython's displayhook", shell.displayhook),
        ("a tracer (sys.settrace)", sys.gettrace()),
        ("a profiler (sys.setprofile)", sys.getprofile()),
        ("sys.stdout", sys.stdout),
        ("sys.stderr", sys.stderr),
    ):
        if obj is not None and student_made(obj):
            found.append(f"{what} set to code of the student's")
    if sys.modules.get("__dlcourse_guard_hooks__"):
        found.append("an audit hook added (sys.addaudithook)")
    checks = sys.modules.get("dlcourse.checks")
    if checks is not None:
        if os.path.realpath(getattr(checks, "__file__", "") or "") != checks_file:
            found.append("sys.modules['dlcourse.checks'] is not the installed check module")
        else:
            for k, v in vars(checks).items():
                if callable(v) and student_made(v):
                    found.append(f"dlcourse.checks.{k} replaced")
    for name, module, attr in setup_names:
        real = sys.modules.get(module)
        if attr is not None and real is not None:
            real = getattr(real, attr, sys.modules.get(module + "." + attr))
        if real is not None and name in ns and ns[name] is not real:
            found.append(f"{name!r} (imported by the setup) is no longer what its import gives")
    return json.dumps(sorted(set(found)))
print(MARK_TEXT + __dlcourse_guard__(user_ns, SNAPSHOT_JSON, SETUP_NAMES, CHECKS_FILE))
"""


def setup_imports(setup: list[str]) -> list[tuple[str, str, str | None]]:
    """(name, module, attribute) of every top-level import of the setup cells."""
    from dlcourse.grading._trusted import python_source

    out = []
    for code in setup:
        try:
            tree = ast.parse(python_source(code))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        out.append((a.asname, a.name, None))
                    else:
                        top = a.name.split(".")[0]
                        out.append((top, top, None))
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    if a.name != "*":
                        out.append((a.asname or a.name, node.module, a.name))
    return out


def _cell(source: str) -> str:
    """A cell that runs ``source`` in fresh globals (a name the student rebound in the notebook's
    namespace does not reach the guard's code; the builtins module itself still could). The code
    travels base64-encoded, so an input transformer that matches words does not see them."""
    scope = "{'__name__': 'dlcourse_guard', 'get_ipython': get_ipython, 'user_ns': globals()}"
    return (
        f"exec(compile(__import__('base64').b64decode({encoded(source)!r}).decode(), "
        f"'<dlcourse-guard>', 'exec'), {scope})\n"
    )


def encoded(source: str) -> str:
    return base64.b64encode(source.encode()).decode()


def snapshot_code(numpy: bool = True) -> str:
    return _cell(
        (CUSTOM_EXC + SNAPSHOT)
        .replace("WITH_NUMPY", repr(numpy))
        .replace("NUMPY_NAMES", repr(NUMPY_NAMES))
        .replace("SHELL_METHODS", repr(SHELL_METHODS))
        .replace("MARK_TEXT", repr("\n" + MARK))
    )


def probe_code(snapshot: dict, setup: list[str]) -> str:
    from dlcourse.grading.sandbox import package_dir

    return _cell(
        (CUSTOM_EXC + PROBE)
        .replace("SNAPSHOT_JSON", repr(json.dumps(snapshot)))
        .replace("SETUP_NAMES", repr(setup_imports(setup)))
        .replace("CHECKS_FILE", repr(str(package_dir() / "checks.py")))
        .replace("MARK_TEXT", repr("\n" + MARK))
    )


def marked_line(outputs, mark: str = MARK) -> str | None:
    """The rest of the last stdout line that starts with ``mark`` (what the grader's code in the
    kernel printed last; the student's own prints come before it)."""
    text = "".join(
        o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
        for o in outputs
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )
    at = text.rfind("\n" + mark)
    if at < 0:
        return None
    return text[at + 1 + len(mark) :].split("\n", 1)[0]


class Guard:
    """The snapshot of one kernel (taken again after every restart) and the probes."""

    def __init__(self):
        self.snapshot: dict | None = None

    async def kernel_started(self, runner, step, numpy: bool = True) -> None:
        """Take the snapshot: the kernel has run the source's setup cells and nothing of the
        student's yet (the runner's job to call it then). NumPy's functions
        are recorded when the setup imports NumPy (importing it costs ~0.1 s otherwise); without
        a record, a NumPy function counts as replaced when student code defined it."""
        import time

        self.snapshot = None
        got = await runner._execute(snapshot_code(numpy), True, step, time.monotonic() + 60)
        line = marked_line(got.outputs) if got.status == "ok" else None
        try:
            self.snapshot = json.loads(line) if line else None
        except (ValueError, RecursionError):
            self.snapshot = None

    async def probe(self, runner, step, deadline: float) -> list[str]:
        """What differs from the snapshot, in words (empty: nothing noticed)."""
        if self.snapshot is None or runner.client is None:
            return []
        got = await runner._execute(
            probe_code(self.snapshot, runner.plan.setup), True, step, deadline
        )
        if got.status in ("timeout", "died", "not-run"):
            return []  # reported as such by the runner
        line = marked_line(got.outputs) if got.status == "ok" else None
        try:
            found = json.loads(line) if line else None
        except (ValueError, RecursionError):
            found = None
        if not isinstance(found, list):
            detail = f"{got.ename}: {got.evalue}"[:120] if got.ename else "no answer"
            return [f"{PROBE_FAILED} ({detail})"]
        return [str(f)[:200] for f in found[:20]]
