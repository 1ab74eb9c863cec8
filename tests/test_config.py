"""FAST mode, seeding and the setup call of ``dlcourse.config``; the results API."""

import json

import numpy as np
import pytest

from dlcourse import config
from dlcourse.course import results


@pytest.mark.parametrize(
    ("env", "gpus", "expected"),
    [
        ({}, 0, True),  # a CPU runtime (Colab's default, a laptop): FAST unless asked
        ({}, 1, False),  # a GPU: full mode
        ({"DLCOURSE_FAST": "1"}, 0, True),
        ({"DLCOURSE_FAST": "1"}, 1, True),
        ({"DLCOURSE_FAST": "true"}, 1, True),
        ({"DLCOURSE_FAST": "0"}, 0, False),  # the student opts in to full mode on a CPU
        ({"DLCOURSE_FAST": "0"}, 1, False),
        ({"NBGRADER_EXECUTION": "autograde"}, 1, True),  # grading is FAST, whatever else
        ({"NBGRADER_EXECUTION": "autograde", "DLCOURSE_FAST": "0"}, 1, True),
        ({"DLCOURSE_GRADING": "1"}, 1, True),
        *[({"DLCOURSE_FAST": v}, 1, True) for v in ("yes", "on", " ON ", "True")],
        *[({"DLCOURSE_FAST": v}, 0, False) for v in ("false", "no", "off", "FALSE")],
        ({"DLCOURSE_FAST": ""}, 0, True),  # empty is unset: decided by the devices
        ({"DLCOURSE_GRADING": "yes", "DLCOURSE_FAST": "0"}, 0, True),
    ],
)
def test_fast_mode_decision_table(monkeypatch, env, gpus, expected):
    for name in ("DLCOURSE_FAST", "NBGRADER_EXECUTION", "DLCOURSE_GRADING"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(config, "gpu_count", lambda: gpus)  # the device list, faked
    assert config.fast_mode() is expected
    assert config.fast_mode(gpus=gpus) is expected


def test_setup_decides_from_the_devices_and_says_why(monkeypatch, capsys):
    monkeypatch.delenv("DLCOURSE_FAST", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("DLCOURSE_GRADING", raising=False)
    monkeypatch.setattr(config, "FAST", False)
    monkeypatch.setattr(config, "gpu_count", lambda: 0)
    config.setup(seed=1)
    line = capsys.readouterr().out
    assert config.FAST is True and "FAST mode (no GPU; DLCOURSE_FAST=0 or FAST = False" in line
    monkeypatch.setattr(config, "gpu_count", lambda: 2)
    config.setup(seed=1)
    assert config.FAST is False and "full mode (GPU x2" in capsys.readouterr().out
    monkeypatch.setenv("DLCOURSE_FAST", "0")
    monkeypatch.setattr(config, "gpu_count", lambda: 0)
    config.setup(seed=1)
    assert config.FAST is False and "full mode (DLCOURSE_FAST=0)" in capsys.readouterr().out


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
