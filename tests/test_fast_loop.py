"""The fast developer loop: `pytest -m "not slow"` leaves out the lessons, sandbox and kernels."""

import subprocess
import sys


def _collected(repo_root, *args):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *args],
        cwd=repo_root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_not_slow_skips_lessons_sandbox_and_kernels_and_the_default_run_keeps_them(repo_root):
    paths = ["lessons/01_image_classification.ipynb", "tests/test_grading_sandbox.py",
             "tests/test_runner.py", "tests/test_mask_head.py"]  # fmt: skip
    everything = _collected(repo_root, *paths)
    fast = _collected(repo_root, "-m", "not slow", *paths)
    assert any(i.startswith("lessons/") for i in everything)  # the default run keeps them all
    assert any(i.startswith("tests/test_grading_sandbox.py") for i in everything)
    assert any("test_runner.py::test_run_" in i for i in everything)
    assert fast and set(fast) < set(everything)
    assert not any(i.startswith("lessons/") for i in fast)  # no lesson cell (nbval)
    assert not any(i.startswith("tests/test_grading_sandbox.py") for i in fast)  # no sandbox
    assert not any("test_runner.py::test_run_" in i for i in fast)  # no kernels
    assert any(i.startswith("tests/test_mask_head.py") for i in fast)  # package tests stay
    assert any("test_runner.py::test_discover" in i for i in fast)  # the quick runner tests too


def test_readme_documents_the_fast_loop(repo_root):
    readme = (repo_root / "README.md").read_text()
    assert 'pytest -m "not slow"' in readme


def test_lessons_sharing_the_training_cache_are_one_xdist_scope(
    repo_root, pytestconfig, monkeypatch
):
    """pytest-xdist runs them in one worker, in lesson order; every other file is its own scope
    (conftest.py's scheduler: --dist loadfile with the cache group)."""
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location("root_conftest", repo_root / "conftest.py")
    root = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root)
    monkeypatch.setattr(pytestconfig.option, "tx", ["popen"] * 2)  # as under -n 2, also in -n 0
    scheduler = root.pytest_xdist_make_scheduler(pytestconfig, None)
    lessons = sorted((repo_root / "lessons").glob("[0-9][0-9]_*.ipynb"))
    sharing = {
        path.name
        for path in lessons
        if any(
            "experiments." in cell.source
            for cell in nbformat.read(path, as_version=4).cells
            if cell.cell_type == "code"
        )
    }
    scopes = {p.name: scheduler._split_scope(f"lessons/{p.name}::Cell 3") for p in lessons}
    assert {name for name, scope in scopes.items() if scope == root.CACHE_GROUP} == sharing
    assert all(scopes[name] == f"lessons/{name}" for name in scopes if name not in sharing)
    assert scheduler._split_scope("tests/test_data.py::test_x[a::b]") == "tests/test_data.py"
