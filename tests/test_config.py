"""FAST mode, seeding and the setup call of ``dlcourse.config``; the results API."""

import json

import numpy as np
import pytest

from dlcourse import config
from dlcourse.course import results


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        *[({"DLCOURSE_FAST": v}, True) for v in ("1", "true", "True", "yes", "on", " ON ")],
        *[({"DLCOURSE_FAST": v}, False) for v in ("0", "false", "no", "off", "", "FALSE")],
        ({"NBGRADER_EXECUTION": "autograde"}, True),
        ({"DLCOURSE_GRADING": "1"}, True),
        ({"DLCOURSE_GRADING": "yes", "DLCOURSE_FAST": "0"}, True),
    ],
)
def test_fast_mode_follows_the_environment(monkeypatch, env, expected):
    for name in ("DLCOURSE_FAST", "NBGRADER_EXECUTION", "DLCOURSE_GRADING"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert config.fast_mode() is expected


@pytest.mark.parametrize("value", ["2", "maybe", "tru", "1.0"])
def test_an_invalid_flag_is_refused_with_what_is_expected(monkeypatch, value):
    monkeypatch.setenv("DLCOURSE_FAST", value)
    with pytest.raises(ValueError, match=r"DLCOURSE_FAST to be one of 1/true/yes/on") as error:
        config.fast_mode()
    assert f"DLCOURSE_FAST={value!r}" in str(error.value)


def test_setup_prints_one_line_report_and_seeds(monkeypatch, capsys):
    monkeypatch.setattr(config, "FAST", False)
    env = config.setup(seed=3, fast=True)
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    assert f"TensorFlow {env['tensorflow']}" in line and f"Keras {env['keras']}" in line
    assert "FAST mode" in line and "seed 3" in line
    # the device found: "CPU" here, "GPU x1" on the GPU CI job
    assert env["device"] == "CPU" or env["device"].startswith("GPU x")
    assert f"| {env['device']} |" in line
    assert config.FAST is True
    a = np.random.random(3)  # noqa: NPY002
    config.setup(seed=3, report=False)
    assert np.array_equal(a, np.random.random(3))  # noqa: NPY002


@pytest.mark.parametrize("seed", [-1, 1.5, "1", True])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="non-negative integer seed"):
        config.seed_everything(seed)


def test_record_publishes_to_the_results_file(tmp_path, monkeypatch):
    results.clear()
    path = tmp_path / "figures.json"
    monkeypatch.setenv(results.RESULTS_FILE_ENV, str(path))
    assert results.record("test_accuracy", np.float32(0.5)) == np.float32(0.5)
    results.record("epochs", np.int64(3))
    results.record("converged", np.bool_(True))
    assert json.loads(path.read_text()) == {"test_accuracy": 0.5, "epochs": 3, "converged": True}
    assert results.recorded()["epochs"] == 3
    results.clear()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("Test Accuracy", 1.0, "snake_case"),
        ("acc", float("nan"), "finite"),
        ("acc", [1, 2], "Expected a number"),
    ],
)
def test_record_rejects_bad_figures(name, value, message):
    with pytest.raises(ValueError, match=message):
        results.record(name, value)
