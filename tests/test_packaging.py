"""The package's metadata, its environment file and its import-time behaviour."""

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

import dlcourse


def _pyproject(repo_root):
    return tomllib.loads((repo_root / "pyproject.toml").read_text())


def test_version_is_exposed_and_pep440():
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc)?\d*", dlcourse.__version__)


def test_pyproject_declares_the_console_script_and_extras(repo_root):
    project = _pyproject(repo_root)["project"]
    assert project["name"] == "dlcourse"
    assert project["scripts"] == {"dlcourse": "dlcourse.course.cli:main"}
    extras = project["optional-dependencies"]
    assert {"dev", "instructor", "pets"} <= set(extras)
    names = {re.split(r"[<>=!~\[ ;]", dep)[0].lower() for dep in project["dependencies"]}
    assert {"tensorflow", "keras", "numpy", "matplotlib", "nbclient", "nbformat"} <= names
    # only lesson 09's real photographs need tfds: an extra, which the dev extra pulls in
    assert "tensorflow-datasets" not in names and "importlib_resources" not in names
    pets = {re.split(r"[<>=!~\[ ;]", dep)[0].lower() for dep in extras["pets"]}
    assert pets == {"tensorflow-datasets", "importlib_resources", "scikit-image"}
    assert "dlcourse[pets]" in extras["dev"]
    # lower bounds only: an exact pin would fight Colab's preinstalled TensorFlow
    assert not any("==" in dep for dep in project["dependencies"])


def test_environment_yml_is_in_step_with_pyproject(repo_root):
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    project = _pyproject(repo_root)["project"]
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "").strip() == project["requires-python"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert len(pip) == 1
    match = re.fullmatch(r"-e \.\[([a-z,]+)\]", pip[0])
    assert match, f"environment.yml should install the project itself: {pip[0]!r}"
    assert set(match.group(1).split(",")) == set(project["optional-dependencies"])


LIGHT_IMPORTS = (
    "dlcourse",
    "dlcourse.config",
    "dlcourse.checks",
    "dlcourse.course",
    "dlcourse.course.cli",
    "dlcourse.course.notebooks",
    "dlcourse.course.results",
    "dlcourse.course.runner",
    "dlcourse.grading",
    "dlcourse.grading.nbformat_grading",
    "dlcourse.grading.release",
)
"""What the ``dlcourse`` command, the notebook hook and the grader's notebook handling import."""


def test_command_hook_and_grader_import_no_tensorflow():
    """``import dlcourse`` and the course/grading front doors leave TensorFlow and Keras out."""
    code = (
        "import importlib, sys\n"
        f"for name in {LIGHT_IMPORTS!r}: importlib.import_module(name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'tensorflow', 'keras', 'tensorflow_datasets', 'matplotlib'}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


NOTEBOOK = Path(__file__).resolve().parents[1] / "lessons" / "01_image_classification.ipynb"


def test_grader_reads_notebooks_without_jsonschemas_iri_grammar():
    """The grader's nbformat skips ``rfc3987_syntax`` (parsers built at import: most of its start-up
    time), validates notebooks all the same, and leaves the package importable afterwards."""
    code = (
        "import sys\n"
        "import dlcourse.grading.nbformat_grading as fmt\n"
        "print('rfc3987_syntax' in sys.modules)\n"
        f"nb = fmt.read_notebook({str(NOTEBOOK)!r})\n"
        "import nbformat; nbformat.validate(nb)\n"
        "nb.cells[0]['cell_type'] = 'not-a-cell-type'\n"
        "try:\n"
        "    nbformat.validate(nb); print('accepted')\n"
        "except nbformat.ValidationError:\n"
        "    print('refused')\n"
        "import importlib.util; print(importlib.util.find_spec('rfc3987_syntax') is not None)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded, invalid, findable = proc.stdout.split()
    assert loaded == "False"
    assert invalid == "refused"  # validation still works
    installed = importlib.util.find_spec("rfc3987_syntax") is not None
    assert findable == str(installed)  # not hidden for good


def test_keras_subpackage_import_is_quiet_and_registers_layers():
    code = (
        "import sys, dlcourse.layers, keras\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'tensorflow_datasets', 'nbclient', 'nbgrader', 'nbformat'})\n"
        "print(heavy)\n"
        "print(sorted(k for k in keras.saving.get_custom_objects() if k.startswith('dlcourse>'))[:1])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    # TensorFlow's C++ import lines (oneDNN, cudart, cpu_feature_guard) go to fd 2 otherwise
    assert proc.stderr == "", proc.stderr
    heavy, registered = proc.stdout.splitlines()
    assert heavy == "[]"
    assert registered != "[]", "no layer registered under 'dlcourse>'"


def test_plain_tensorflow_import_is_noisy_here():
    """The control for the test above: without the fd trick TensorFlow does print to stderr here."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(
        [sys.executable, "-c", "import tensorflow"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0
    assert proc.stderr.strip(), "TensorFlow printed nothing: the quiet-import test proves nothing"


def test_every_keras_object_of_the_package_is_registered_by_register_keras_objects():
    """A .keras file using any course object loads after ``dlcourse.register_keras_objects()``
    (what ``dlcourse.load_model`` calls): every registered class of every module is covered."""
    import inspect
    import pkgutil

    import keras

    dlcourse.register_keras_objects()
    registered = {
        k.split(">", 1)[1] for k in keras.saving.get_custom_objects() if k.startswith("dlcourse>")
    }
    code = (
        "import dlcourse, keras\ndlcourse.register_keras_objects()\n"
        "print(sorted(k for k in keras.saving.get_custom_objects() if k.startswith('dlcourse>')))"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert fresh.returncode == 0, fresh.stderr
    for info in pkgutil.walk_packages(dlcourse.__path__, "dlcourse."):
        if ".grading" in info.name:
            continue
        module = __import__(info.name, fromlist=["_"])
        for name, obj in vars(module).items():
            is_keras = inspect.isclass(obj) and issubclass(
                obj,
                keras.layers.Layer
                | keras.metrics.Metric
                | keras.losses.Loss
                | keras.initializers.Initializer,
            )
            if is_keras and obj.__module__ == info.name and not name.startswith("_"):
                assert name in registered, f"{info.name}.{name} is not registered"
                assert f"dlcourse>{name}" in fresh.stdout, (
                    f"{name} not registered by `dlcourse.register_keras_objects()`"
                )


def test_one_ruff_version_for_pre_commit_pyproject_and_this_test(repo_root):
    hooks = yaml.safe_load((repo_root / ".pre-commit-config.yaml").read_text())["repos"]
    rev = next(r["rev"] for r in hooks if r["repo"].endswith("/ruff-pre-commit"))
    dev = _pyproject(repo_root)["project"]["optional-dependencies"]["dev"]
    pin = next(d for d in dev if re.match(r"ruff\b", d))
    assert pin == f"ruff=={rev.removeprefix('v')}", (pin, rev)
    installed = subprocess.run(
        [sys.executable, "-m", "ruff", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    assert f"ruff=={installed}" == pin, f"installed ruff {installed}, pinned {pin}: reinstall dev"


def test_ruff_lint_and_format_are_clean(repo_root):
    """ruff (lint + format, notebooks and docs included) passes on the whole repository."""
    ruff = [sys.executable, "-m", "ruff"]
    lint = subprocess.run([*ruff, "check", "."], cwd=repo_root, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-3000:]
    fmt = subprocess.run(
        [*ruff, "format", "--check", "."], cwd=repo_root, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout[-3000:]
