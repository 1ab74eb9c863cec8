"""Fixtures shared by the package tests."""

import importlib.util
import sys
from pathlib import Path

import pytest

# Notebooks under tests/fixtures are inputs of tests (some are deliberately broken or hostile),
# not lessons: nbval must not execute them.
collect_ignore_glob = ["fixtures/*"]

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str, folder: str = "grading"):
    """The fixture module ``tests/fixtures/<folder>/<name>.py``, loaded once by its path.

    The fixtures are not a package (nbval and pytest must not collect them), so test modules and
    other fixture modules import them with ``from conftest import load_fixture``.
    """
    key = f"fixture_{folder}_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, FIXTURES / folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[key]
            raise
    return sys.modules[key]


@pytest.fixture
def repo_root() -> Path:
    return ROOT
