"""Smoke test of ``python -m benchmarks``: its report's shape and the README rewrite.

Speed targets live in the benchmarks, not here: this only checks that the machinery runs (the
course section, on the two fixture lessons of the runner's tests, with ``--quick``: the first one
only), that a failing or hanging section is reported while the others go on, and the README block.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import __main__ as cli
from benchmarks import report

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_LESSONS = ROOT / "tests" / "fixtures" / "runner"
README = "# Title\n\nbefore\n\n## Speed\n\n{start}\nold table\n{end}\n\n## Contributing\nafter\n"


def _readme(path: Path) -> Path:
    path.write_text(README.format(start=report.README_START, end=report.README_END))
    return path


def test_quick_run_writes_report_and_readme_block(tmp_path):
    readme = _readme(tmp_path / "README.md")
    out = tmp_path / "out"
    env = dict(os.environ, DLCOURSE_LESSONS_DIR=str(FIXTURE_LESSONS))
    command = [sys.executable, "-m", "benchmarks", "--quick", "--only", "course"]
    command += ["--out", str(out), "--readme", str(readme)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout

    data = json.loads((out / "report.json").read_text())
    assert data["quick"] is True and data["command"].startswith("python -m benchmarks --quick")
    assert {"platform", "cpu_model", "cores", "date", "load_average_start"} <= set(data["machine"])
    assert {"tensorflow", "keras", "device"} <= set(data["environment"])
    assert list(data["sections"]) == ["course"]
    course = data["sections"]["course"]
    assert course["status"] == "ok" and course["wall_seconds"] > 0
    assert list(course["result"]["lessons"]) == ["01_good_lesson"]  # --quick: the first lesson
    assert course["result"]["lessons"]["01_good_lesson"]["status"] == "passed"
    assert course["result"]["total_seconds"] > 0
    from benchmarks.sections import course_cache

    assert course_cache(out).is_dir()  # the lessons' cache, kept for the quality section
    lesson = course["result"]["lessons"]["01_good_lesson"]
    assert [c["cell"] for c in lesson["slowest_cells"]] == [1]  # the fixture's one code cell
    assert lesson["slowest_cells"][0]["code"] == "from dlcourse import config"
    assert (out / course["log"]).exists()

    md = (out / "report.md").read_text()
    assert md.startswith("# dlcourse benchmarks")
    assert "quick run" in md and data["machine"]["cpu_model"] in md
    assert "| section | figure | value |" in md
    assert "| lesson | status | seconds (" in md and "| 01_good_lesson | passed |" in md

    text = readme.read_text()
    head, rest = text.split(report.README_START)
    block, tail = rest.split(report.README_END)
    assert head == "# Title\n\nbefore\n\n## Speed\n\n"
    assert tail == "\n\n## Contributing\nafter\n"
    assert "old table" not in block and "| section | figure | value |" in block
    assert "<details>" in block and "01_good_lesson" in block


def test_hanging_section_is_reported_and_killed(tmp_path):
    entry = cli.run_section("course", True, tmp_path, timeout=0.2)
    assert entry["status"] == "failed"
    assert entry["error"]["type"] == "Timeout"
    rendered = report.markdown(
        {
            "command": "python -m benchmarks",
            "quick": True,
            "machine": report.machine(),
            "environment": None,
            "sections": {"course": entry},
        }
    )
    assert "**failed**: Timeout: killed after 0 s" in rendered


def test_only_rejects_unknown_sections(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["--only", "course,nope"])
    assert exc.value.code == 2
    assert "Expected sections from course, efficiency" in capsys.readouterr().err


def test_update_readme_needs_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="benchmarks:start"):
        report.update_readme(readme, "table")
    assert readme.read_text() == "# no markers\n"


def test_quality_full_recipe_is_the_lessons_comparison():
    from benchmarks import bench_quality
    from dlcourse.training import experiments

    recipe = bench_quality._recipe(quick=False)
    lesson = experiments.comparison_budget(True)
    for key in ("image_size", "n_train", "n_val", "batch_size", "learning_rate", "filters"):
        assert recipe[key] == lesson[key], key
    assert recipe["budget_cpu_seconds"] > 0 and recipe["wall_guard"] > 0
    assert "epochs" not in recipe  # the budget, not the lessons' epochs, ends a method's run


def test_quality_markdown_fills_in_the_recipe():
    from benchmarks import bench_quality

    recipe = {**bench_quality._recipe(quick=False), "filters": [16, 32, 64]}
    row = {
        "params": 10, "epochs": 2, "first_epoch_seconds": 1.0, "seconds_per_epoch": 0.5,
        "cores_busy": 1.5, "best_mean_iou": 0.7, "stopped_by": "budget",
        "reached": {"0.6": {"seconds": 1.0, "cpu_seconds": 2.0, "epoch": 1}, "0.8": None},
        "vs_fastest": {"0.6": 1.0, "0.8": None},
    }  # fmt: skip
    text = bench_quality.markdown(
        {"recipe": recipe, "thresholds": [0.6, 0.8], "methods": {"nearest": row}}, "here"
    )
    assert f"batch {recipe['batch_size']}, Adam 0.003" in text
    assert "{r[" not in text and "not reached" in text
    assert "lessons' own" not in text  # trained from scratch
    continued = {"nearest": {**row, "lesson_epochs": 4}}
    text = bench_quality.markdown(
        {"recipe": recipe, "thresholds": [0.6, 0.8], "methods": continued}, "here"
    )
    assert "epochs 1–4 are the lessons' own" in text


def test_quality_continues_a_lessons_training(tmp_path, monkeypatch):
    """The lesson's epochs count as they were measured; training goes on from its saved state."""
    from benchmarks import bench_quality
    from dlcourse.training import experiments

    train, val = experiments.comparison_data({"image_size": 16, "n_train": 16, "n_val": 8})
    kwargs = {"epochs": 2, "batch_size": 8, "filters": (4, 8), "learning_rate": 3e-3}
    (lesson,) = experiments.compare_upsampling(
        ["nearest"], train, val, cache_dir=tmp_path, **kwargs
    )
    data = ((train.images, train.masks), (val.images, val.masks))
    recipe = {**kwargs, "budget_cpu_seconds": 1e6, "wall_guard": 1e6}

    def start():
        return experiments.cached_training("nearest", *data, cache_dir=tmp_path, **kwargs)

    # A threshold the lesson's epochs never reached: two more epochs after the lesson's two.
    monkeypatch.setattr(bench_quality, "MAX_EPOCHS", 4)
    out = bench_quality._train_until("nearest", data, recipe, 42, (2.0,), start())
    h, measured = out["history"], lesson["history"]
    assert out["lesson_epochs"] == 2 and out["epochs"] == 4 == len(h["val_mean_iou"])
    assert h["val_mean_iou"][:2] == [round(v, 4) for v in measured["val_mean_iou"]]
    assert h["cpu_seconds"][1] == round(sum(measured["epoch_cpu_seconds"]), 2)
    assert h["cpu_seconds"][1] < h["cpu_seconds"][2] < h["cpu_seconds"][3]  # went on, cumulative
    assert out["reached"] == {"2.0": None}
    # A threshold reached within the lesson's epochs: no further training.
    out = bench_quality._train_until("nearest", data, recipe, 42, (0.0,), start())
    assert out["epochs"] == 1 and out["reached"]["0.0"]["epoch"] == 1
    assert out["stopped_by"] == "reached"


def test_quality_section_continues_from_where_the_lessons_store(tmp_path, monkeypatch):
    from benchmarks import sections
    from dlcourse.training import experiments

    calls = {}
    monkeypatch.setattr(sections, "_call", lambda module, quick, **kw: calls.update(kw) or {})
    sections._quality(False, tmp_path)
    assert calls["continue_from"] is None  # the course section did not run: from scratch
    # the folder lessons 05-06 use when the course section points DLCOURSE_CACHE at its cache
    monkeypatch.setenv("DLCOURSE_CACHE", str(sections.course_cache(tmp_path)))
    lessons = experiments.comparison_cache_dir()
    lessons.mkdir(parents=True)
    sections._quality(False, tmp_path)
    assert calls["continue_from"] == lessons


@pytest.mark.slow  # builds a 6.5 M-parameter MobileNetV2
def test_peers_are_the_tutorials_models_and_the_fix_reaches_nested_batchnorm():
    """Parameter counts of the published designs at 64×64 with 4 classes (MobileNetV2 nests its
    BatchNorm layers inside the encoder model: the fix must reach them)."""
    from benchmarks import bench_peers

    counts = {n: bench_peers.BUILDERS[n](4, 64) for n in bench_peers.BUILDERS}
    assert {n: m.count_params() for n, m in counts.items()} == {
        "course_unet": 223_156,
        "tf_mobilenet_pix2pix": 6_505_668,
        "keras_io_xception_unet": 2_059_268,
        "dlwp_convnet": 2_881_220,
    }
    mobilenet = counts["tf_mobilenet_pix2pix"]
    published = {layer.momentum for layer in bench_peers.batchnorm_layers(mobilenet)}
    assert published == {0.999, 0.99}  # Keras's MobileNetV2 uses 0.999, pix2pix blocks 0.99
    assert bench_peers.set_bn_momentum(mobilenet, 0.9) == 54
    assert {layer.momentum for layer in bench_peers.batchnorm_layers(mobilenet)} == {0.9}
    assert {bn.momentum for bn in bench_peers.batchnorm_layers(counts["course_unet"])} == {0.9}
    for name, (_, has_batchnorm) in bench_peers.PEERS.items():
        assert bool(bench_peers.batchnorm_layers(counts[name])) == has_batchnorm, name
    variants = [v for v, _, _ in bench_peers.variants()]
    assert variants == [
        "course_unet",
        "tf_mobilenet_pix2pix", "tf_mobilenet_pix2pix+bn0.9",
        "keras_io_xception_unet", "keras_io_xception_unet+bn0.9",
        "dlwp_convnet",
    ]  # fmt: skip


def test_peers_targets_and_markdown():
    from benchmarks import bench_peers

    def row(cpu, best, trained=120.0):
        hit = None if cpu is None else {"seconds": cpu / 2, "cpu_seconds": cpu, "epoch": 3}
        return {"model": "m", "params": 1, "bn_momentum": 0.9, "seconds_per_epoch": 1.0,
                "reached": hit, "best_mean_iou_within_budget": best,
                "train_cpu_seconds": trained}  # fmt: skip

    rows = {
        "course_unet": row(20.0, 0.9),
        "a": row(None, 0.3, trained=140.0),
        "a+bn0.9": row(40.0, 0.85),
        "b": row(70.0, 0.82),
    }
    targets = bench_peers._targets(rows)
    assert targets == {
        "published_best_peer_over_course": 3.5,
        "published_is_lower_bound": False,
        "published_target_met": True,
        "fixed_peers_not_faster": True,
    }
    rows["a+bn0.9"] = row(10.0, 0.85)
    assert bench_peers._targets(rows)["fixed_peers_not_faster"] is False
    # a published peer that never got there took more than it trained: a bound, not infinity
    rows["b"] = row(None, 0.5, trained=130.0)
    targets = bench_peers._targets(rows)
    assert targets["published_best_peer_over_course"] == 6.5
    assert targets["published_is_lower_bound"] and targets["published_target_met"]
    # one that stopped at its budget short of TARGET_RATIO x the course decides nothing
    rows["b"] = row(None, 0.5, trained=50.0)
    targets = bench_peers._targets(rows)
    assert targets["published_is_lower_bound"] and targets["published_target_met"] is None
    # an exact ratio below the target is "not met"
    rows["b"] = row(50.0, 0.82)
    assert bench_peers._targets(rows)["published_target_met"] is False
    # a fixed peer that stopped short of the course's time without reaching it decides nothing;
    # one that trained as long as the course did without reaching it is not faster
    rows["a+bn0.9"] = row(None, 0.7, trained=15.0)
    assert bench_peers._targets(rows)["fixed_peers_not_faster"] is None
    rows["a+bn0.9"] = row(None, 0.7, trained=25.0)
    assert bench_peers._targets(rows)["fixed_peers_not_faster"] is True
    rows["b"] = row(None, 0.5, trained=130.0)
    recipe = {**bench_peers.RECIPES["full"]}
    result = {"recipe": recipe, "threshold": 0.8, "course": "course_unet", "variants": rows,
              "targets": bench_peers._targets(rows)}  # fmt: skip
    text = bench_peers.markdown(result, "here")
    assert "| **course_unet** |" in text and "not reached" in text
    assert "≥ ×6.50 (no published peer reached it" in text and "(target ≥ 3: met)" in text
    assert "no faster than the course: yes." in text
    assert "∞" not in text and "{r[" not in text
    head = bench_peers.headline(result)
    assert head[0][0] == "course U-Net to validation mIoU 0.8"
    assert "a not reached in 140 CPU-s" in head[1][1]
    rows["course_unet"] = row(None, 0.7)
    assert set(bench_peers._targets(rows).values()) == {None}
    assert "undecided" in bench_peers.markdown(
        {**result, "targets": bench_peers._targets(rows)}, ""
    )


def test_peers_limits_decide_every_ratio_on_a_slower_cpu():
    from benchmarks import bench_peers

    budget = 120.0
    # the course trains on to the threshold; before its time is known nobody trains past budget
    assert bench_peers._limit("course_unet", None, None, budget) == 4 * budget
    assert bench_peers._limit("dlwp_convnet", None, None, budget) == budget
    # a slow CPU: the course needs 200 CPU-s, more than the budget
    assert bench_peers._limit("dlwp_convnet", None, 200.0, budget) == 600.0
    assert bench_peers._limit("dlwp_convnet+bn0.9", 0.9, 200.0, budget) == 200.0
    # a fast one: nobody trains less than the budget (the best mIoU within it is reported)
    assert bench_peers._limit("dlwp_convnet+bn0.9", 0.9, 30.0, budget) == budget
    assert bench_peers._limit("dlwp_convnet", None, 30.0, budget) == budget


@pytest.mark.parametrize(
    "reached, cpu, limit, why",
    [
        (30.0, 121.0, 120.0, "budget"),  # reached within the budget, trained to its end
        (None, 121.0, 120.0, "budget"),  # a fixed peer or the course: no decision limit
        (150.0, 151.0, 180.0, "reached the threshold"),  # a published peer trained on
        (None, 181.0, 180.0, "limit"),
        (None, 90.0, 180.0, "wall guard"),
    ],
)
def test_peers_stopped_by(reached, cpu, limit, why):
    from benchmarks import bench_peers

    hit = None if reached is None else {"cpu_seconds": reached}
    assert bench_peers._stopped_by(hit, cpu, 120.0, limit) == why


def test_merge_keeps_each_sections_run(tmp_path):
    def run(command, date, sections):
        machine = {**report.machine(), "date": date, "load_average_start": [date[-1:]]}
        entries = {
            n: {"status": "unavailable", "wall_seconds": 1.0,
                "error": {"type": "SectionUnavailable", "message": f"{n} here"}}
            for n in sections
        }  # fmt: skip
        return {"command": command, "quick": False, "machine": machine, "environment": None,
                "sections": entries, "wall_seconds": 10.0}  # fmt: skip

    a = run("python -m benchmarks --only peers", "2026-12-06T07:00:01", ["peers"])
    b = run(
        "python -m benchmarks --only data,efficiency", "2026-12-06T07:30:02", ["data", "efficiency"]
    )
    merged = report.merge([a, b])
    assert list(merged["sections"]) == ["efficiency", "peers", "data"]  # report order
    assert merged["merged"] == 2 and merged["wall_seconds"] == 20.0
    text = report.readme_block(merged)
    assert "in 2 runs" in text
    assert (
        "run of 2026-12-06 07:00 UTC, `python -m benchmarks --only peers`, load average ['1']"
        in text
    )
    assert "`python -m benchmarks --only data,efficiency`, load average ['2']" in text
    with pytest.raises(ValueError, match="at least one report"):
        report.merge([])
    for d, rep in (("a", a), ("b", b)):
        (tmp_path / d).mkdir()
        (tmp_path / d / "report.json").write_text(json.dumps(rep))
    readme = _readme(tmp_path / "README.md")
    code = cli.main(["--render", "--merge", str(tmp_path / "a"), str(tmp_path / "b"),
                     "--out", str(tmp_path / "out"), "--readme", str(readme)])  # fmt: skip
    assert code == 0 and "in 2 runs" in readme.read_text()
    assert json.loads((tmp_path / "out" / "report.json").read_text())["merged"] == 2


def test_full_mode_09_mirrors_the_lessons_parameters():
    import nbformat

    from benchmarks import full_mode_09

    cell = nbformat.read(ROOT / "lessons" / "09_real_photographs.ipynb", as_version=4).cells[4]
    full = full_mode_09.FULL
    for line in (
        f"IMAGE_SIZE = 32 if FAST else {full['image_size']}",
        f"FILTERS = (8, 16, 32, 64) if FAST else {full['filters']}",
        f"EPOCHS = 5 if FAST else {full['epochs']}",
        f"BATCH_SIZE = 16 if FAST else {full['batch_size']}",
        f"({full['n_train']:,} photographs)",
    ):
        assert line in cell.source, line


def test_full_mode_09_measures_both_models():
    from benchmarks import full_mode_09

    full = full_mode_09.FULL
    rows = full_mode_09.measure(
        steps=1, full={**full, "image_size": 16, "filters": (2, 4, 4, 4), "batch_size": 2}
    )
    assert [r["model"] for r in rows] == ["encoder-decoder", "U-Net"]
    assert all(r["steps"] == 30 * 1840 and r["cpu_seconds_per_step"] > 0 for r in rows)


def _course_run(folder: Path, **changes) -> Path:
    """A `dlcourse run --fast` folder of the fixture lessons, as the runner records it."""
    from dlcourse.course.runner import cpu_model, select, source_digest

    chosen = select(None)
    env = {"fast": True, "cpu": cpu_model(), "cpu_count": os.cpu_count(), "cache": "cold",
           "cache_dir": str(folder / "cache"), "source": source_digest(chosen),
           "started": "2026-12-07T01:00:00Z", "load_average_start": [0.5, 0.4, 0.3],
           "threads": os.environ.get("TF_NUM_INTRAOP_THREADS")}  # fmt: skip
    lessons = {
        lesson.name: {"status": "passed", "seconds": 10.0 + i, "error": None, "executed": None}
        for i, lesson in enumerate(chosen)
    }
    for key, value in changes.items():
        if key == "drop":
            lessons.pop(value)
        else:
            env[key] = value
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps({"lessons": lessons, "environment": env}))
    return folder


def test_course_section_reused_from_a_dlcourse_run(tmp_path, monkeypatch, capsys):
    from benchmarks import bench_course

    monkeypatch.setenv("DLCOURSE_LESSONS_DIR", str(FIXTURE_LESSONS))
    good = _course_run(tmp_path / "run")
    result, env, path = bench_course.from_run(good)
    assert env["cache"] == "cold" and path == good / "results.json"
    assert result["count"] == 2 and result["passed"] == 2 and result["total_seconds"] == 21.0
    # the whole benchmark with only the course section: nothing runs, the report names the run
    out = tmp_path / "out"
    assert cli.main(["--only", "course", "--course-from", str(good), "--out", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    entry = data["sections"]["course"]
    assert entry["status"] == "ok" and entry["reused"].endswith("results.json")
    assert entry["wall_seconds"] == 21.0 and "--course-from" in entry["run"]["command"]
    text = report.summary_markdown(data)
    assert "course reused from an earlier run (21 s there, not in the total)" in text
    assert "run of 2026-12-07 01:00 UTC" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"fast": False}, "did not run in FAST mode"),
        ({"drop": "02_broken_lesson"}, "did not run 02_broken_lesson (expected every lesson)"),
        ({"cache": "warm"}, "was warm at the start (expected empty: a first run"),
        ({"source": "0" * 64}, "lessons or dlcourse code differ from this checkout's"),
        ({"cpu": "Another CPU"}, "it ran on Another CPU"),
        ({"threads": 1}, "it ran with threads=1"),
    ],
)
def test_course_section_refuses_a_run_it_would_not_have_made(tmp_path, monkeypatch, changes, says):
    from benchmarks import bench_course

    monkeypatch.setenv("DLCOURSE_LESSONS_DIR", str(FIXTURE_LESSONS))
    run_dir = _course_run(tmp_path / "run", **changes)
    with pytest.raises(ValueError, match="Cannot reuse") as caught:
        bench_course.from_run(run_dir)
    assert says in str(caught.value)
    with pytest.raises(SystemExit):  # the CLI refuses before it measures anything
        cli.main(["--course-from", str(run_dir), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_course_section_refuses_a_folder_without_results(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--course-from", str(tmp_path), "--out", str(tmp_path / "out")])
    assert "Expected the results.json of `dlcourse run --fast`" in capsys.readouterr().err


def test_efficiency_times_a_models_arithmetic_alone():
    import numpy as np

    import dlcourse
    from benchmarks import bench_efficiency
    from dlcourse.data import make_scenes, task_arrays
    from dlcourse.metrics import model_cost
    from dlcourse.training.experiments import build_segmenter

    dlcourse.register_keras_objects()
    model = build_segmenter("max_unpool", 4)
    x, _ = task_arrays(make_scenes(2, image_size=16, seed=0), "segmentation")
    cost = model_cost(model, (16, 16, 3))
    step, macs = bench_efficiency.arithmetic_step(model, x, cost)
    assert macs == cost["multiply_adds"]  # every counted layer is timed
    outputs, grads = step()
    convs = [layer for layer in model.layers if layer.count_params() and "bn" not in layer.name]
    weights = sum(len(layer.trainable_weights) for layer in convs)
    assert len(grads) == len(convs) + weights and all(g is not None for g in grads)
    # the forward passes run too (a gradient alone lets TensorFlow prune them): each output is
    # the layer's on the input it gets in the model
    layers, inputs = bench_efficiency._counted_layers(model, x, cost)
    assert len(outputs) == len(convs)
    for layer, t, out in zip(layers, inputs, outputs, strict=True):
        np.testing.assert_allclose(out, layer(t), rtol=1e-5, atol=1e-5)
    # the localizer's backbone is a nested model: its layers are opened up
    from dlcourse.detection.localization import build_localizer

    localizer = build_localizer(3, (16, 16, 3))
    cost = model_cost(localizer, (16, 16, 3))
    step, macs = bench_efficiency.arithmetic_step(localizer, x, cost)
    assert macs == cost["multiply_adds"] and all(g is not None for g in step()[1])

    row = {"params": 1, "gflop_per_step": 1.0, "best_s": 0.1, "cpu_per_wall": 1.8,
           "gflops_best": 10.0, "share_of_peak": 0.2}  # fmt: skip
    peak = {"what": "w", "gflops_best": 50.0, "gflops_median": 45.0}
    result = {
        "convention": "c", "config": {"batch": 2, "image_size": 16, "repeats": 1},
        "peak": {"matmul": peak, "conv": peak, "gflops_best": 50.0},
        "models": {"a": {**row, "arithmetic_alone": {"best_s": 0.05, "share_of_peak": 0.4}},
                   "b": {**row, "arithmetic_alone": {"error": "ValueError: nested"}}},
    }  # fmt: skip
    text = bench_efficiency.markdown(result, "here")
    assert "| **20.0%** | 50.0 ms, 40.0% |" in text and "failed: ValueError: nested" in text
    assert bench_efficiency.headline(result)[-1][1] == "40% (a) to 40% (a)"
    # a share above the peak is flagged, not reported as a result (a pruned forward pass once
    # made the arithmetic alone read 94-120 %)
    result["models"]["a"]["arithmetic_alone"]["share_of_peak"] = 1.2
    assert "not a valid measurement" in bench_efficiency.headline(result)[-1][1]


def test_fused_batchnorm_option_computes_what_keras_does():
    import keras
    import numpy as np

    from benchmarks import bench_efficiency

    def model():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        return keras.Model(inputs, x)

    x = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    plain, fused = model(), model()
    assert bench_efficiency.fuse_batchnorm(fused) == 1
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), atol=1e-4)
    bn_plain, bn_fused = plain.layers[-1], fused.layers[-1]
    for attr in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(
            getattr(bn_fused, attr).numpy(), getattr(bn_plain, attr).numpy(), rtol=1e-4
        )
    np.testing.assert_allclose(fused(x), plain(x), atol=1e-4)  # inference: Keras's own path
