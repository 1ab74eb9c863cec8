"""Fixtures shared by the package tests."""

from pathlib import Path

import pytest

# Notebooks under tests/fixtures are inputs of tests (some are deliberately broken or hostile),
# not lessons: nbval must not execute them.
collect_ignore_glob = ["fixtures/*"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_root() -> Path:
    return ROOT
