"""Test-suite settings shared by the package tests, the doctests and the notebooks (nbval).

Environment variables of the pytest process reach the notebooks' kernels, so FAST mode and a
headless matplotlib hold for every lesson run by nbval.
"""

import functools
import os
import tempfile
from pathlib import Path

import pytest

# each lesson run by nbval is held to lessons/figures.toml (docs/figures.md)
pytest_plugins = ["dlcourse.course.nbval_figures"]

os.environ.setdefault("DLCOURSE_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Lessons share trained rows through a cache (dlcourse.training.experiments); the suite starts from an empty
# one, as on a fresh machine, so it measures and asserts what a newcomer gets.
os.environ.setdefault("DLCOURSE_CACHE", tempfile.mkdtemp(prefix="dlcourse-test-cache-"))

# The fast developer loop, `pytest -m "not slow"`, leaves out what takes more than a few seconds:
# every lesson (nbval items), the grading sandbox, tests that start Jupyter kernels, and the
# package tests below, which took 2.5 s or more each under `--durations=80` on the 2-core machine
# (grading a released lesson and training runs the longest: 10-110 s). Node-id prefixes.
SLOW_TESTS = (
    "tests/test_grading_lessons.py",  # releases and grades the real lessons
    "tests/test_grading.py::test_our_stubs_and_hidden_stripping_match_nbgrader",
    "tests/test_grading.py::test_grade_without_sandbox_when_the_risk_is_accepted",  # kernels
    "tests/test_grading.py::test_check_command",  # kernels
    "tests/test_runner.py::test_run_",  # each runs fixture lessons in kernels
    "tests/test_benchmarks.py::test_full_mode_09_measures_both_models",  # builds two models
    "tests/test_runner.py::test_kernel_stderr_goes_to_a_log",
    "tests/test_notebooks.py::test_refresh_",  # kernels
    "tests/test_benchmarks.py::test_quick_run_writes_report_and_readme_block",
    "tests/test_benchmarks.py::test_quality_continues_a_lessons_training",
    "tests/test_benchmarks.py::test_efficiency_times_a_models_arithmetic_alone",
    "tests/test_experiments.py::test_compare_upsampling_",
    "tests/test_experiments.py::test_cached_training_continues_where_the_row_stopped",
    "tests/test_experiments.py::test_train_segmenter_",
    "tests/test_experiments.py::test_seeds_share_a_compiled_model_and_match_separate_runs",
    "tests/test_packaging.py::test_plain_tensorflow_import_is_noisy_here",  # fresh interpreters
    "tests/test_packaging.py::test_every_keras_object_of_the_package_is_registered_by_",
    "tests/test_packaging.py::test_keras_subpackage_import_is_quiet_and_registers_layers",
    "tests/test_packaging.py::test_command_hook_and_grader_import_no_tensorflow",
    "tests/test_layers_saving.py::test_load_model_registers_the_course_objects",  # fresh interpreters
    "tests/test_layers_saving.py::test_a_saved_encoder_decoder_loads_where",
    "tests/test_localization.py::test_saved_localizer_loads_in_a_new_process",
    "tests/test_localization.py::test_keras_file_round_trip_keeps_predictions",
    "tests/test_localization.py::test_fit_smoke_and_fit_metrics_equal_numpy_evaluation",
    "tests/test_localization.py::test_total_loss_is_cross_entropy_plus_weighted_box_loss",
    "tests/test_localization.py::test_box_weight_zero_leaves_the_box_head_untrained",
    "tests/test_grid_detector.py::test_keras_round_trip_and_a_short_fit_lowers_the_loss",
    "tests/test_grid_detector.py::test_shapes_unknown_size_and_bad_arguments",
    "tests/test_models.py::test_max_unpool_odd_and_unknown_sizes_and_keras_round_trip",
    "tests/test_models.py::test_every_combination_builds_and_trains_one_step",
    "tests/test_models.py::test_fully_convolutional_twin_equals_sliding_window",
    "tests/test_metrics.py::test_keras_mean_iou_in_fit",
    "tests/test_layers_max_unpooling.py::test_compiles_with_xla_and_trains",
    "tests/test_layers_max_unpooling.py::test_many_sizes_against_reference",
    "tests/test_fast_loop.py::test_not_slow_skips",  # collects in fresh interpreters
    "tests/test_site.py::test_run_keeps_figures_",  # kernels
    "tests/test_site.py::test_student_page_",  # a Sphinx build
)


# The suite runs in two pytest-xdist workers (pyproject.toml: `-n auto --maxprocesses 2 --dist
# loadfile`): each test file stays in one worker (nbval runs a notebook's cells in order in one
# kernel; module-scoped fixtures are built once), and the lessons that share trained rows through the
# cache (they use dlcourse.training.experiments) count as one file, so they run in one worker, in
# lesson order, and the later lesson finds the rows the earlier one trained.
CACHE_GROUP = "lessons-sharing-the-training-cache"


def _uses_training_cache(notebook) -> bool:
    return any("experiments." in cell.source for cell in notebook.cells if cell.cell_type == "code")


@functools.cache
def _shares_training_cache(path: Path) -> bool:
    if path.suffix != ".ipynb" or not path.is_file():
        return False
    import nbformat

    return _uses_training_cache(nbformat.read(path, as_version=4))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with the lessons that share the training cache as one file."""
    from xdist.scheduler import LoadFileScheduling

    class CourseScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return CACHE_GROUP if _shares_training_cache(config.rootpath / scope) else scope

    return CourseScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Mark as ``slow`` the lessons, the sandbox tests and ``SLOW_TESTS`` (see README); under
    pytest-xdist, the lessons first."""
    files = {prefix.split("::")[0] for prefix in SLOW_TESTS}
    missing = sorted(f for f in files if not (config.rootpath / f).is_file())
    if missing:  # a renamed test file would silently join the fast loop
        raise pytest.UsageError(f"conftest.SLOW_TESTS names missing test files: {missing}")
    for item in items:
        if (
            item.path.suffix == ".ipynb"  # a lesson cell under nbval
            or item.get_closest_marker("sandbox")
            or item.nodeid.startswith(SLOW_TESTS)
        ):
            item.add_marker(pytest.mark.slow)
    if config.getoption("dist", "no") != "no":
        # the longest work first (the lessons, those sharing the cache first: the longest chain),
        # so that the short test files fill the end; xdist keeps this order (--no-loadscope-reorder)
        items.sort(
            key=lambda item: (item.path.suffix != ".ipynb", not _shares_training_cache(item.path))
        )


SLOW_SECONDS = 5.0
_unmarked_slow: list[tuple[str, float]] = []


def pytest_runtest_logreport(report):
    """Note tests that took over ``SLOW_SECONDS`` without being slow: the list above is stale."""
    if report.when == "call" and report.duration > SLOW_SECONDS and "slow" not in report.keywords:
        _unmarked_slow.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter):
    if _unmarked_slow:
        terminalreporter.section(
            f"over {SLOW_SECONDS:g} s but not marked slow (conftest.SLOW_TESTS)"
        )
        for nodeid, seconds in _unmarked_slow:
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}")
