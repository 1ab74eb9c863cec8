"""``dlcourse run`` / ``dlcourse lessons`` on two tiny plain-Python fixture lessons."""

import json
from pathlib import Path

import pytest

from dlcourse.course import cli, runner

FIXTURES = Path(__file__).parent / "fixtures" / "runner"


def test_discover_reads_number_title_and_idea():
    lessons = runner.discover(FIXTURES)
    assert [lesson.name for lesson in lessons] == ["01_good_lesson", "02_broken_lesson"]
    assert lessons[0].number == "01"
    assert lessons[0].title == "Good lesson"
    assert lessons[0].idea == "a fixture"


@pytest.mark.parametrize(
    "name", ["1", "01", "01_good_lesson", "good_lesson", "01_good_lesson.ipynb"]
)
def test_select_by_number_or_name(name):
    assert [lesson.name for lesson in runner.select([name], FIXTURES)] == ["01_good_lesson"]


def test_select_unknown_lesson_says_what_exists():
    with pytest.raises(ValueError, match=r"Unknown lesson '7'.*01_good_lesson, 02_broken_lesson"):
        runner.select(["7"], FIXTURES)


def test_discover_rejects_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="Expected a folder"):
        runner.discover(tmp_path / "nope")


def test_run_reports_figures_failures_and_goes_on(tmp_path, capsys):
    code = cli.main(
        ["run", "--lessons-dir", str(FIXTURES), "--out", str(tmp_path), "--fast", "--quiet"]
    )
    assert code == 1  # one lesson failed
    report = json.loads((tmp_path / "results.json").read_text())
    good = report["lessons"]["01_good_lesson"]
    bad = report["lessons"]["02_broken_lesson"]
    assert good["status"] == "passed" and good["error"] is None
    assert good["figures"] == {"answer": 42, "fast": True}
    assert bad["status"] == "failed"
    assert bad["error"]["ename"] == "ZeroDivisionError"
    assert bad["error"]["cell"] == 2 and bad["error"]["code_cell"] == 2
    assert bad["figures"] == {"before_failure": 0.5}  # figures recorded before the failure survive
    assert {"tensorflow", "keras", "device", "fast"} <= set(report["environment"])
    assert (tmp_path / "01_good_lesson.ipynb").exists() and (
        tmp_path / "02_broken_lesson.ipynb"
    ).exists()
    out = capsys.readouterr().out
    assert "01_good_lesson" in out and "answer=42" in out
    assert "cell 2: ZeroDivisionError" in out
    assert "1/2 passed" in out
    assert "| lesson | status |" in (tmp_path / "results.md").read_text()


def test_run_exit_code_zero_when_all_pass(tmp_path):
    code = cli.main(
        ["run", "1", "--lessons-dir", str(FIXTURES), "--out", str(tmp_path), "--full", "--quiet"]
    )
    assert code == 0
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["lessons"]["01_good_lesson"]["figures"]["fast"] is False
    assert report["environment"]["fast"] is False


def test_run_unknown_lesson_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["run", "99", "--lessons-dir", str(FIXTURES), "--out", str(tmp_path)]) == 2
    assert "Unknown lesson '99'" in capsys.readouterr().err


def test_lessons_lists_titles_and_ideas(capsys):
    assert cli.main(["lessons", "--lessons-dir", str(FIXTURES)]) == 0
    out = capsys.readouterr().out
    assert "01_good_lesson    Good lesson" in out
    assert "lecture idea: a fixture" in out


def test_run_rewrites_the_readme_lesson_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- lesson-table:start -->\nold\n<!-- lesson-table:end -->\nrest\n")
    code = cli.main(
        [
            "run",
            "1",
            "--lessons-dir",
            str(FIXTURES),
            "--out",
            str(tmp_path / "o"),
            "--fast",
            "--quiet",
            "--readme",
            str(readme),
        ]
    )
    assert code == 0
    text = readme.read_text()
    assert text.startswith("intro\n<!-- lesson-table:start -->\n| # | lesson |")
    assert text.endswith("<!-- lesson-table:end -->\nrest\n") and "old" not in text
    assert "| 01 | [Good lesson](lessons/01_good_lesson.ipynb) | a fixture |" in text
    assert (
        "colab.research.google.com/github/dlcourse/dlcourse/blob/main/student/01_good_lesson.ipynb"
        in text
    )
    assert "answer=42" in text


def test_update_readme_needs_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="lesson-table:start"):
        runner.update_readme(readme, "| table |")


def _lesson(folder: Path, name: str, *sources: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name[:2]} · {name[3:]}")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["dlcourse"] = {"lesson": name[:2], "title": name[3:], "idea": "a fixture"}
    nbformat.write(nb, folder / f"{name}.ipynb")


def test_kernel_stderr_goes_to_a_log_and_a_dead_kernel_points_at_it(tmp_path, capfd):
    lessons, out = tmp_path / "lessons", tmp_path / "out"
    lessons.mkdir()
    # what TensorFlow's C++ logging does: write to file descriptor 2 of the kernel process
    _lesson(lessons, "01_noisy", "import os\nos.write(2, b'C-level noise on fd 2\\n')")
    _lesson(lessons, "02_crash", "import os\nos.write(2, b'last words\\n')\nos._exit(3)")
    code = cli.main(["run", "--lessons-dir", str(lessons), "--out", str(out), "--fast", "--quiet"])
    assert code == 1
    captured = capfd.readouterr()
    assert "C-level noise" not in captured.err + captured.out  # the terminal shows the table only
    assert "C-level noise on fd 2" in (out / "01_noisy.kernel.log").read_text()
    assert "last words" in (out / "02_crash.kernel.log").read_text()
    report = json.loads((out / "results.json").read_text())["lessons"]
    assert report["01_noisy"]["status"] == "passed"
    assert report["02_crash"]["error"]["ename"] == "DeadKernelError"
    assert str(out / "02_crash.kernel.log") in report["02_crash"]["error"]["evalue"]


@pytest.mark.parametrize(
    "text",
    [
        "<!-- lesson-table:end -->\n<!-- lesson-table:start -->\n",  # out of order
        "<!-- lesson-table:start -->\n<!-- lesson-table:start -->\n<!-- lesson-table:end -->\n",
    ],
)
def test_update_readme_refuses_repeated_or_swapped_markers(tmp_path, text):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    with pytest.raises(ValueError, match="once each, in that order"):
        runner.update_readme(readme, "| table |")
    assert readme.read_text() == text


def test_default_lessons_dir_is_the_repository_s(monkeypatch, tmp_path):
    """Without ``$DLCOURSE_LESSONS_DIR`` an editable install finds the repository's lessons,
    from any working directory."""
    monkeypatch.delenv(runner.LESSONS_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    repo = Path(__file__).resolve().parents[1]
    assert runner.default_lessons_dir() == repo / "lessons"
    assert [lesson.number for lesson in runner.discover()][:2] == ["01", "02"]


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("off", False)])
def test_run_records_fast_as_the_lessons_read_it(tmp_path, monkeypatch, value, expected):
    # DLCOURSE_FAST=true ran the lessons FAST but was recorded as "fast": false (two parsers)
    monkeypatch.setenv("DLCOURSE_FAST", value)
    report = runner.run(runner.select(["1"], FIXTURES), tmp_path, progress=False)
    assert report["lessons"]["01_good_lesson"]["figures"]["fast"] is expected
    assert report["environment"]["fast"] is expected


CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
cpu family\t: {family}
model\t\t: {model}
model name\t: {name}
flags\t\t: fpu sse sse2 {flags}

processor\t: 1
model name\t: another name, never read
flags\t\t: fpu
"""


@pytest.mark.parametrize(
    ("name", "family", "model", "flags", "expected"),
    [
        ("AMD EPYC", 25, 17, "avx avx2 avx512f avx512dq", "AMD EPYC (AVX-512)"),
        ("AMD EPYC", 25, 1, "avx avx2 fma", "AMD EPYC (AVX2)"),
        ("Intel Xeon Processor (Cascadelake)", 6, 85, "avx avx2 avx512f", "Intel Xeon Processor (Cascadelake) (AVX-512)"),
        ("Some CPU", 6, 15, "", "Some CPU"),
    ],
)  # fmt: skip
def test_cpu_model_tells_apart_cpus_of_one_name(name, family, model, flags, expected):
    text = CPUINFO.format(vendor="x", family=family, model=model, name=name, flags=flags)
    assert runner.cpu_model(text) == expected
    info = runner.cpu_info(text)
    assert (info["model_name"], info["family"], info["model"]) == (name, family, model)
    assert info.get("vector") == (expected.rsplit("(", 1)[1].rstrip(")") if flags else None)


def test_cpu_model_off_linux_is_the_platforms_description(monkeypatch):
    import platform

    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert runner.cpu_info("") == {}
    assert runner.cpu_model("") == "arm"
