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


def test_lessons_sharing_the_training_cache_are_one_xdist_group(repo_root):
    """pytest-xdist (`--dist loadgroup`) runs them in one worker, in lesson order (conftest.py)."""
    import nbformat

    paths = ["lessons/02_vision_tasks.ipynb", "lessons/05_unpooling.ipynb",
             "lessons/06_transposed_convolution.ipynb"]  # fmt: skip
    sharing = {
        path
        for path in paths
        if any(
            "experiments." in cell.source
            for cell in nbformat.read(repo_root / path, as_version=4).cells
            if cell.cell_type == "code"
        )
    }
    grouped = _collected(repo_root, "-m", "xdist_group", *paths)
    assert {item.split("::")[0] for item in grouped} == sharing
    if sharing:  # every cell of those lessons, none of the others
        assert len(grouped) == len(_collected(repo_root, *sorted(sharing)))
