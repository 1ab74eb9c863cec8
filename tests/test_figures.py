"""The figure regression check (``dlcourse.course.figures``): the file, the update, the checks in
``dlcourse run`` and under nbval, on a fixture lesson whose quality a variable lowers."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dlcourse.course import cli, figures, runner
from dlcourse.course.figures import Expected, FiguresError

FIXTURE = Path(__file__).parent / "fixtures" / "figures" / "01_quality.ipynb"


def _run(tmp_path: Path, lessons: dict[str, dict]) -> figures.Run:
    """A results.json as `dlcourse run` writes it, read back as a Run."""
    report = {
        "lessons": {
            name: {"status": "passed", "seconds": 1.0, "figures": figs}
            for name, figs in lessons.items()
        },
        "environment": {"cpu": "test", "threads": 1},
    }
    path = tmp_path / f"run{len(list(tmp_path.glob('run*')))}.json"
    path.write_text(json.dumps(report))
    return figures.read_runs([path])[0]


@pytest.mark.parametrize(
    ("expected", "ok", "bad"),
    [
        (Expected(0.8, "higher", 0.03), [0.77, 0.8, 0.99], [0.769, 0.4]),
        (Expected(0.1, "lower", 0.02), [0.0, 0.12], [0.121, 0.5]),
        (Expected(2.5, "both", 0.05), [2.45, 2.55], [2.44, 2.56]),
        (Expected(1234, "exact"), [1234, 1234.0], [1233, "1234"]),
        (Expected("nearest", "exact"), ["nearest"], ["bed_of_nails", 1]),
        (Expected(True, "exact"), [True], [False]),
        (Expected(2.0, "timing", factor=10.0), [0.2, 2.0, 20.0], [0.19, 21.0, "2"]),
    ],
)
def test_each_direction_holds_what_it_says(expected, ok, bad):
    for value in ok:
        assert expected.problem("x", value) is None, value
    for value in bad:
        assert expected.problem("x", value), value


def test_a_quality_drop_says_value_bound_and_direction():
    problem = Expected(0.83, "higher", 0.03).problem("mean_iou", 0.41)
    assert problem == "mean_iou = 0.41, expected at least 0.8 (0.83 − 0.03; direction higher)"


def test_check_names_missing_figures_and_unknown_lessons():
    table = {"04_naive_fcn": {"mean_iou": Expected(0.8, "higher", 0.02)}}
    assert figures.check("04_naive_fcn", {"mean_iou": 0.81, "new": 1}, table) == []
    assert figures.check("04_naive_fcn", {}, table) == ["mean_iou was not published (expected 0.8)"]
    (problem,) = figures.check("10_new_lesson", {"a": 1}, table)
    assert "10_new_lesson has no expected figures" in problem
    assert figures.unheld("04_naive_fcn", {"mean_iou": 0.81, "new": 1}, table) == ["new"]


@pytest.mark.parametrize(
    ("name", "value", "direction"),
    [
        ("mean_iou", 0.567, "higher"),
        ("ap50_circle", 0.9, "higher"),
        ("position_r2_feature_map", 0.77, "higher"),
        ("matrix_transpose_max_abs_error", 1e-6, "lower"),
        ("max_prob_difference", 2.03e-06, "lower"),
        ("params_depth8", 66532, "exact"),
        ("best_method", "bed_of_nails", "exact"),
        ("fast", True, "exact"),
        ("train_seconds", 36.8, "timing"),
        ("step_ms_nearest", 22.5, "timing"),
        ("speedup_one_by_one", 1830.0, "timing"),
        ("mean_objects_per_scene", 2.48, "both"),
        ("naive_over_encoder_decoder_multiply_adds", 6.35, "both"),
    ],
)
def test_classify_by_type_and_name(name, value, direction):
    assert figures.classify(name, value) == direction


def test_update_sets_tolerance_from_the_spread_with_a_floor_and_keeps_directions(tmp_path):
    one = _run(tmp_path, {"05_x": {"miou": 0.80, "share": 2.0, "p": 7, "s": "a", "t_seconds": 3.0}})
    two = _run(tmp_path, {"05_x": {"miou": 0.76, "share": 2.0, "p": 7, "s": "a", "t_seconds": 9.0}})
    old = {"05_x": {"share": Expected(1.0, "lower", 0.5)}, "09_kept": {"k": Expected(1, "exact")}}
    new = figures.update(old, [one, two], floor=0.02, spread_factor=2.0)
    got = new["05_x"]
    assert got["miou"] == Expected(0.78, "higher", tolerance=0.08)  # 2 × (0.80 - 0.76)
    assert got["share"] == Expected(2.0, "lower", tolerance=0.04)  # kept direction; floor 2 %
    assert got["p"] == Expected(7, "exact") and got["s"] == Expected("a", "exact")
    assert got["t_seconds"] == Expected(6.0, "timing", factor=10.0)  # the median
    assert new["09_kept"] == old["09_kept"]  # lessons not in the runs stay
    # one run: the floor alone
    assert figures.update({}, [one])["05_x"]["miou"] == Expected(0.8, "higher", tolerance=0.02)


def test_widen_keeps_what_the_file_accepted_and_adds_another_machines_runs(tmp_path):
    old = {
        "05_x": {
            "miou": Expected(0.80, "higher", 0.03),  # accepts >= 0.77
            "err": Expected(0.10, "lower", 0.02),  # accepts <= 0.12
            "share": Expected(2.0, "both", 0.1),  # accepts [1.9, 2.1]
            "p": Expected(7, "exact"),
            "n": Expected(3, "exact"),
            "t_seconds": Expected(3.0, "timing", factor=10.0),
        }
    }
    figs = {"miou": 0.70, "err": 0.05, "share": 2.3, "p": 7, "n": 4, "t_seconds": 90.0}
    other = _run(tmp_path, {"05_x": figs})
    got = figures.update(old, [other], floor=0.02, spread_factor=2.0, widen=True)["05_x"]
    assert got["miou"] == Expected(0.80, "higher", tolerance=0.12)  # down to 0.70 - 0.02
    assert got["err"] == old["05_x"]["err"]  # the other machine is better: nothing to add
    assert got["share"] == Expected(2.123, "both", tolerance=0.23)  # [1.9, 2.3 + 2 % of 2.3]
    assert got["p"] == Expected(7, "exact") and got["n"] == Expected(3.5, "both", tolerance=0.5)
    assert got["t_seconds"] == old["05_x"]["t_seconds"]  # a timing keeps its entry
    for value in (0.77, 0.68):  # what the file accepted, and what the new machine needs
        assert got["miou"].problem("miou", value) is None
    for value in (1.9, 2.34):
        assert got["share"].problem("share", value) is None
    assert got["share"].problem("share", 2.36) is not None  # still a bound
    # without widen the runs alone decide: the first machine's 1.9 would fail
    alone = figures.update(old, [other], floor=0.02, spread_factor=2.0)["05_x"]
    assert alone["share"] == Expected(2.3, "both", tolerance=0.046)
    assert alone["share"].problem("share", 1.9) is not None
    # a string that depends on the machine cannot be widened
    old["05_x"]["ranking"] = Expected("a > b", "exact")
    bad = _run(tmp_path, {"05_x": {**figs, "ranking": "a = b"}})
    with pytest.raises(FiguresError, match="ranking is 'a = b' in these runs and 'a > b'"):
        figures.update(old, [bad], widen=True)


def test_widen_on_the_command_line_keeps_the_earlier_machines_in_the_header(tmp_path):
    file = tmp_path / "figures.toml"
    first = _run(tmp_path, {"05_x": {"miou": 0.8}})
    assert cli.main(["figures", "update", first.source, "--file", str(file)]) == 0
    second = _run(tmp_path, {"05_x": {"miou": 0.7}})
    assert cli.main(["figures", "update", second.source, "--file", str(file), "--widen"]) == 0
    text = file.read_text()
    assert "--spread-factor 2 --widen) from the runs:" in text
    assert f"#   {second.source}: test, 1 threads" in text
    assert f"#   (earlier) {first.source}: test, 1 threads" in text
    assert figures.header_sources(text) == [
        f"{second.source}: test, 1 threads, tensorflow ?",
        f"{first.source}: test, 1 threads, tensorflow ?",
    ]
    assert figures.load(file)["05_x"]["miou"] == Expected(0.8, "higher", tolerance=0.12)


def test_update_of_one_lesson_reads_a_run_in_which_another_failed(tmp_path):
    report = {
        "lessons": {
            "04_x": {"status": "failed", "error": {"cell": 15, "ename": "AssertionError"}},
            "05_y": {"status": "passed", "figures": {"miou": 0.5}},
        },
        "environment": {"cpu": "test", "threads": 2},
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(report))
    with pytest.raises(FiguresError, match="lesson 04_x failed .cell 15: AssertionError"):
        figures.read_runs([path])
    [run] = figures.read_runs([path], ["05_y"])
    assert run.lessons == {"05_y": {"miou": 0.5}}
    file = tmp_path / "figures.toml"
    assert cli.main(["figures", "update", str(path), "--file", str(file), "--lesson", "05_y"]) == 0
    assert list(figures.load(file)) == ["05_y"]
    assert cli.main(["figures", "update", str(path), "--file", str(file)]) == 2  # all: refused


def test_update_refuses_missing_disagreeing_and_failed_figures(tmp_path):
    one = _run(tmp_path, {"05_x": {"miou": 0.8, "s": "a"}})
    with pytest.raises(FiguresError, match=r"05_x: run 2 did not publish miou"):
        figures.update({}, [one, _run(tmp_path, {"05_x": {"s": "a"}})])
    with pytest.raises(FiguresError, match=r"figure s: a str figure must be the same in every run"):
        figures.update({}, [one, _run(tmp_path, {"05_x": {"miou": 0.8, "s": "b"}})])
    with pytest.raises(FiguresError, match=r"figure miou: the runs disagree on its type"):
        figures.update({}, [one, _run(tmp_path, {"05_x": {"miou": "0.8", "s": "a"}})])
    with pytest.raises(FiguresError, match=r"figure miou: expected a number, bool or string"):
        figures.update({}, [_run(tmp_path, {"05_x": {"miou": None}})])
    with pytest.raises(FiguresError, match=r"05_x: in 1 of 2 runs"):
        figures.update({}, [one, _run(tmp_path, {"06_y": {"a": 1}})], lessons=["05_x"])
    failed = tmp_path / "failed.json"
    failed.write_text(
        json.dumps({"lessons": {"05_x": {"status": "failed", "error": {"cell": 3, "ename": "E"}}}})
    )
    with pytest.raises(FiguresError, match=r"lesson 05_x failed \(cell 3: E\).*incomplete"):
        figures.read_runs([failed])
    with pytest.raises(FiguresError, match="Expected a `dlcourse run` folder"):
        figures.read_runs([tmp_path / "nowhere"])


def test_file_round_trip_and_bad_files(tmp_path):
    table = {
        "04_naive_fcn": {
            "mean_iou": Expected(0.567, "higher", 0.02),
            "madds": Expected(268304384, "exact"),
            "tiny_error": Expected(9.54e-07, "lower", 0.02),
            "source": Expected('mock "pets"', "exact"),
            "fast": Expected(True, "exact"),
            "train_seconds": Expected(36.8, "timing", factor=10.0),
        }
    }
    path = tmp_path / "figures.toml"
    path.write_text(figures.dumps(table, figures.HEADER))
    assert figures.load(path) == table
    assert path.read_text().startswith("# Expected figures of each lesson")
    for text, message in [
        ('[a]\nx = { expected = 1, direction = "up" }', "direction must be one of higher"),
        ('[a]\nx = { expected = "1", direction = "higher" }', 'use direction = "exact"'),
        ("[a]\nx = 0.5", r"expected \{ expected = ..., direction = ... \}"),
        ('[a]\nx = { expected = 1, direction = "both", tol = 1 }', r"unknown keys \['tol'\]"),
        ('[a]\nx = { expected = 1, direction = "both", tolerance = -1 }', "tolerance ≥ 0"),
        ("[a\n", "not valid TOML"),
    ]:
        path.write_text(text)
        with pytest.raises(FiguresError, match=message):
            figures.load(path)
    assert tomllib.loads(figures.dumps({})) == {}


@pytest.mark.slow
def test_run_update_and_a_quality_drop_fail_dlcourse_run(tmp_path, monkeypatch, capsys):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    shutil.copy(FIXTURE, lessons)
    args = ["run", "--lessons-dir", str(lessons), "--fast", "--quiet", "--threads", "1"]
    monkeypatch.delenv("DLCOURSE_FIXTURE_QUALITY", raising=False)
    assert cli.main([*args, "--out", str(tmp_path / "run1")]) == 0  # no figures.toml: no check
    report = json.loads((tmp_path / "run1" / "results.json").read_text())
    assert report["environment"]["threads"] == 1
    file = lessons / "figures.toml"
    assert cli.main(["figures", "update", str(tmp_path / "run1"), "--file", str(file)]) == 0
    table = figures.load(file)["01_quality"]
    assert table["mean_iou"] == Expected(0.9, "higher", 0.02)
    assert table["params"].direction == "exact" and table["train_seconds"].direction == "timing"
    assert "run1: " in file.read_text() and "1 threads" in file.read_text()
    assert "--floor 0.02 --spread-factor 2)" in file.read_text()  # what the tolerances came from

    monkeypatch.setenv("DLCOURSE_FIXTURE_QUALITY", "0.85")  # a quality falls
    capsys.readouterr()
    assert cli.main([*args, "--out", str(tmp_path / "run3")]) == 1
    out = capsys.readouterr().out
    assert "regressed" in out and "mean_iou = 0.85, expected at least 0.88" in out
    result = json.loads((tmp_path / "run3" / "results.json").read_text())["lessons"]["01_quality"]
    assert result["status"] == "regressed"
    assert result["figure_problems"] == [
        "mean_iou = 0.85, expected at least 0.88 (0.9 − 0.02; direction higher)"
    ]
    # the same verdict from the saved results, and none without the check
    assert cli.main(["figures", "check", str(tmp_path / "run3"), "--file", str(file)]) == 1
    assert cli.main(["figures", "check", str(tmp_path / "run1"), "--file", str(file)]) == 0
    parsed = cli.build_parser().parse_args([*args, "--no-figures"])
    assert cli._expected_figures(parsed, runner.select(None, lessons)) is None
    parsed = cli.build_parser().parse_args([*args, "--figures", str(tmp_path / "none.toml")])
    with pytest.raises(FiguresError, match="Expected a figures file"):
        cli._expected_figures(parsed, runner.select(None, lessons))


@pytest.mark.slow
def test_nbval_fails_the_lesson_whose_quality_dropped(tmp_path):
    for name in ("01_quality", "02_quality"):
        shutil.copy(FIXTURE, tmp_path / f"{name}.ipynb")
    (tmp_path / "03_quality.ipynb").write_text(
        FIXTURE.read_text().replace('"import os\\n"', '"1 / 0\\n"')  # a failing cell
    )
    table = {
        "01_quality": {"mean_iou": Expected(0.9, "higher", 0.02)},
        "02_quality": {  # 0.9 is below 0.95 - 0.02; params changed; a figure disappeared
            "mean_iou": Expected(0.95, "higher", 0.02),
            "params": Expected(1000, "exact"),
            "gone": Expected(1.0, "both", 0.1),
        },
        "03_quality": {"mean_iou": Expected(0.9, "higher", 0.02)},
    }
    (tmp_path / "figures.toml").write_text(figures.dumps(table))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DLCOURSE_FIX"))}
    env.pop("DLCOURSE_RESULTS_FILE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "dlcourse.course.nbval_figures", "-p",
         "no:cacheprovider", "--nbval-lax", "--nbval-current-env", "-rA", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "PASSED 01_quality.ipynb::figures" in out, out
    assert "FAILED 02_quality.ipynb::figures" in out, out
    assert "02_quality.ipynb: 3 figure(s) off" in out
    assert "mean_iou = 0.9, expected at least 0.93 (0.95 − 0.02; direction higher)" in out
    assert "params = 1234, expected exactly 1000" in out
    assert "gone was not published (expected 1.0)" in out
    assert "SKIPPED" in out and "a cell of the lesson failed" in out
