"""Hold each lesson's published figures against committed expected values (``lessons/figures.toml``).

A lesson publishes figures with ``dlcourse.course.results.record``. The file beside the lessons says,
per lesson and figure, what the figure should be and how far it may move::

    [04_naive_fcn]
    mean_iou = { expected = 0.567, tolerance = 0.03, direction = "higher" }
    params_depth8 = { expected = 66532, direction = "exact" }
    step_seconds_128_depth4 = { expected = 0.12, factor = 10.0, direction = "timing" }

Directions:

- ``higher``: a quality; may rise freely, fails below ``expected - tolerance``;
- ``lower``: an error; may fall freely, fails above ``expected + tolerance``;
- ``both``: any other measured number; fails outside ``expected ± tolerance``;
- ``exact``: counts, sizes, names and flags; must equal ``expected``;
- ``timing``: seconds, milliseconds, speed-ups, which move with the machine's load; fails only
  outside ``[expected / factor, expected × factor]``.

``dlcourse run`` and the test suite (nbval) check every lesson that has a table in the file; a lesson
of the folder without one fails too, so a new lesson is held from its first run.
``dlcourse figures update RUN_DIR...`` writes the file from the ``results.json`` of one or more
``dlcourse run`` folders, with tolerances from the spread the runs show (docs/figures.md).
"""

from __future__ import annotations

import json
import math
import re
import statistics
import tomllib
from dataclasses import dataclass
from pathlib import Path

FIGURES_FILE = "figures.toml"
DIRECTIONS = ("higher", "lower", "both", "exact", "timing")
FLOOR = 0.02  # smallest tolerance: absolute below 1, relative (2 %) above
SPREAD_FACTOR = 2.0  # tolerance = SPREAD_FACTOR × (max - min over the runs), at least the floor
TIMING_FACTOR = 10.0

# By name (snake_case words): which figures are timings, qualities, errors.
_TIMING_WORDS = {"seconds", "second", "ms", "speedup", "time", "times", "throughput", "fps"}
_HIGHER_WORDS = {"iou", "miou", "accuracy", "f1", "ap50", "map50", "precision", "recall", "r2"}
_LOWER_WORDS = {"error", "loss", "difference"}
_KEYS = {"expected", "direction", "tolerance", "factor"}


class FiguresError(ValueError):
    """The figures file or a run's results cannot be used (the message says what was expected)."""


@dataclass(frozen=True)
class Expected:
    """What one figure should be: ``expected`` with a ``direction`` and its allowance."""

    expected: float | int | str | bool
    direction: str
    tolerance: float = 0.0
    factor: float = TIMING_FACTOR

    def problem(self, name: str, value) -> str | None:
        """Why ``value`` breaks this expectation, or None when it holds."""
        exp = self.expected
        if self.direction == "exact" or isinstance(exp, str | bool):
            if type(value) is not type(exp) and not (_number(value) and _number(exp)):
                return f"{name} = {value!r}, expected exactly {exp!r}"
            return None if value == exp else f"{name} = {value!r}, expected exactly {exp!r}"
        if not _number(value):
            return f"{name} = {value!r}, expected a number near {exp!r}"
        if self.direction == "timing":
            if exp <= 0 or value <= 0:
                return None if value >= 0 else f"{name} = {value!r}, expected a time ≥ 0"
            if exp / self.factor <= value <= exp * self.factor:
                return None
            return (
                f"{name} = {value:.4g}, expected within ×/÷{self.factor:g} of {exp:.4g} "
                f"(a timing: [{exp / self.factor:.4g}, {exp * self.factor:.4g}])"
            )
        low = exp - self.tolerance if self.direction in ("higher", "both") else -math.inf
        high = exp + self.tolerance if self.direction in ("lower", "both") else math.inf
        if low <= value <= high:
            return None
        what = {"higher": "at least", "lower": "at most", "both": "within"}[self.direction]
        bound = {
            "higher": f"{low:.4g}",
            "lower": f"{high:.4g}",
            "both": f"[{low:.4g}, {high:.4g}]",
        }[self.direction]
        return (
            f"{name} = {value:.4g}, expected {what} {bound} "
            f"({exp:.4g} {'−' if self.direction == 'higher' else '±'} {self.tolerance:.3g}; "
            f"direction {self.direction})"
        )

    def as_dict(self) -> dict:
        out = {"expected": self.expected, "direction": self.direction}
        if self.direction in ("higher", "lower", "both"):
            out["tolerance"] = self.tolerance
        if self.direction == "timing":
            out["factor"] = self.factor
        return out


Table = dict[str, dict[str, Expected]]  # lesson name -> figure name -> Expected


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def figures_path(lessons_dir: str | Path) -> Path:
    """Where the expected figures of the lessons in ``lessons_dir`` live."""
    return Path(lessons_dir) / FIGURES_FILE


def load(path: str | Path) -> Table:
    """Read and validate a figures file; raise ``FiguresError`` saying what is wrong where."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise FiguresError(f"{path}: not valid TOML ({exc})") from None
    table: Table = {}
    for lesson, figures in raw.items():
        if not isinstance(figures, dict):
            raise FiguresError(
                f"{path}: expected a table [{lesson}] of figures. Received: {figures!r}"
            )
        table[lesson] = {}
        for name, spec in figures.items():
            where = f"{path}: [{lesson}] {name}"
            if not isinstance(spec, dict) or "expected" not in spec or "direction" not in spec:
                raise FiguresError(
                    f"{where}: expected {{ expected = ..., direction = ... }}. Received: {spec!r}"
                )
            if set(spec) - _KEYS:
                raise FiguresError(
                    f"{where}: unknown keys {sorted(set(spec) - _KEYS)}; expected {sorted(_KEYS)}"
                )
            direction = spec["direction"]
            if direction not in DIRECTIONS:
                raise FiguresError(
                    f"{where}: direction must be one of {', '.join(DIRECTIONS)}. "
                    f"Received: {direction!r}"
                )
            if direction != "exact" and not _number(spec["expected"]):
                raise FiguresError(
                    f"{where}: direction {direction!r} needs a number; "
                    f'received expected = {spec["expected"]!r} (use direction = "exact")'
                )
            tolerance = spec.get("tolerance", 0.0)
            factor = spec.get("factor", TIMING_FACTOR)
            if not _number(tolerance) or tolerance < 0 or not _number(factor) or factor < 1:
                raise FiguresError(
                    f"{where}: expected tolerance ≥ 0 and factor ≥ 1. "
                    f"Received: tolerance={tolerance!r}, factor={factor!r}"
                )
            table[lesson][name] = Expected(spec["expected"], direction, tolerance, factor)
    return table


def check(lesson: str, figures: dict, table: Table) -> list[str]:
    """The problems of one lesson's ``figures`` against ``table`` ([] when every figure holds)."""
    if lesson not in table:
        return [
            f"{lesson} has no expected figures in {FIGURES_FILE}; add them with "
            f"`dlcourse figures update RUN_DIR` (docs/figures.md)"
        ]
    problems = []
    for name, expected in table[lesson].items():
        if name not in figures:
            problems.append(f"{name} was not published (expected {expected.expected!r})")
            continue
        problem = expected.problem(name, figures[name])
        if problem:
            problems.append(problem)
    return problems


def unheld(lesson: str, figures: dict, table: Table) -> list[str]:
    """Figures the lesson published that ``table`` does not hold (new figures)."""
    return sorted(set(figures) - set(table.get(lesson, {})))


def classify(name: str, value) -> str:
    """The default direction of a figure, from its value's type and the words of its name."""
    words = set(name.split("_"))
    if isinstance(value, str | bool):
        return "exact"
    if words & _TIMING_WORDS:
        return "timing"
    if isinstance(value, int):
        return "exact"
    if words & _LOWER_WORDS:
        return "lower"
    if words & _HIGHER_WORDS:
        return "higher"
    return "both"


def _round(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant digits (the file stays readable)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


@dataclass
class Run:
    """One ``dlcourse run`` folder's results: lesson -> figures, and the run's environment."""

    source: str
    lessons: dict[str, dict]
    environment: dict


def read_runs(run_dirs: list[str | Path], only: list[str] | None = None) -> list[Run]:
    """The runs in ``run_dirs`` (folders or results.json files); refuse lessons that failed to run.

    With ``only`` (lesson names), only those are read (and only their failures refused): a run in which
    another lesson failed can still update the lessons that passed."""
    runs = []
    for run_dir in run_dirs:
        path = Path(run_dir)
        path = path / "results.json" if path.is_dir() else path
        if not path.is_file():
            raise FiguresError(
                f"Expected a `dlcourse run` folder with results.json. Received: {run_dir}"
            )
        try:
            report = json.loads(path.read_text())
            lessons_report = report["lessons"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise FiguresError(
                f"{path}: expected the results.json of `dlcourse run` ({exc!r})"
            ) from None
        lessons = {}
        for lesson, res in lessons_report.items():
            if only is not None and lesson not in only:
                continue
            if res.get("status") not in ("passed", "regressed"):
                err = res.get("error") or {}
                raise FiguresError(
                    f"{path}: lesson {lesson} failed (cell {err.get('cell')}: {err.get('ename')}); "
                    "its figures are incomplete. Run it again until it passes."
                )
            lessons[lesson] = res.get("figures", {})
        runs.append(Run(str(run_dir), lessons, report.get("environment", {})))
    return runs


def _merge_one(lesson: str, name: str, values: list, old: Expected | None, floor: float,
               spread_factor: float, widen: bool = False) -> Expected:  # fmt: skip
    fresh = _from_runs(lesson, name, values, old, floor, spread_factor)
    return fresh if not widen or old is None else _widened(lesson, name, old, fresh)


def _widened(lesson: str, name: str, old: Expected, fresh: Expected) -> Expected:
    """The narrowest expectation that accepts everything ``old`` accepts and everything ``fresh``
    (another machine's runs) accepts; ``old``'s direction and timing factor are kept."""
    if old.direction == "timing" or fresh.direction == "timing":
        return old
    if old.direction == "exact" and fresh.direction == "exact":
        if old.expected == fresh.expected:
            return old
        if not (_number(old.expected) and _number(fresh.expected)):
            raise FiguresError(
                f"{lesson}: figure {name} is {fresh.expected!r} in these runs and "
                f"{old.expected!r} in the file; a string or flag cannot be widened: the lesson "
                "should publish something that does not depend on the machine"
            )
    direction = "both" if old.direction == "exact" else old.direction

    def bounds(e: Expected) -> tuple[float, float]:
        tolerance = 0.0 if e.direction == "exact" else e.tolerance
        return e.expected - tolerance, e.expected + tolerance

    (old_low, old_high), (new_low, new_high) = bounds(old), bounds(fresh)
    low, high = min(old_low, new_low), max(old_high, new_high)
    if direction == "higher":  # only the lower bound is held
        return Expected(old.expected, direction, tolerance=_round_up(old.expected - low))
    if direction == "lower":
        return Expected(old.expected, direction, tolerance=_round_up(high - old.expected))
    middle = _round((low + high) / 2)
    return Expected(middle, direction, tolerance=_round_up(max(high - middle, middle - low)))


def _round_up(value: float, digits: int = 2) -> float:
    """``value`` rounded *up* to ``digits`` significant digits: a widened bound keeps covering."""
    if value <= 0:
        return 0.0
    scale = 10 ** (digits - 1 - math.floor(math.log10(value)))
    return math.ceil(value * scale - 1e-9) / scale


def _from_runs(lesson: str, name: str, values: list, old: Expected | None, floor: float,
               spread_factor: float) -> Expected:  # fmt: skip
    where = f"{lesson}: figure {name}"
    kinds = {type(v) for v in values}
    if any(v is None or isinstance(v, list | dict) for v in values):
        raise FiguresError(f"{where}: expected a number, bool or string; received {values!r}")
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise FiguresError(f"{where}: expected a finite number; received {values!r}")
    if not all(_number(v) for v in values) and len(kinds) > 1:
        raise FiguresError(f"{where}: the runs disagree on its type: {values!r}")
    if not all(_number(v) for v in values):  # str or bool: the runs must agree
        if len(set(values)) > 1:
            raise FiguresError(
                f"{where}: a {kinds.pop().__name__} figure must be the same in every run; "
                f"received {values!r}"
            )
        return Expected(values[0], "exact")
    direction = old.direction if old is not None else classify(name, values[0])
    spread = max(values) - min(values)
    if direction == "exact" and spread == 0:
        return Expected(values[0], "exact")
    if direction == "exact":  # an integer the runs disagree on: a measured number after all
        direction = "both"
    if direction == "timing":
        factor = old.factor if old is not None else TIMING_FACTOR
        return Expected(_round(statistics.median(values)), "timing", factor=factor)
    mean = statistics.fmean(values)
    tolerance = max(spread_factor * spread, floor * max(1.0, abs(mean)))
    return Expected(_round(mean), direction, tolerance=_round(tolerance, 2))


def update(
    table: Table,
    runs: list[Run],
    *,
    lessons: list[str] | None = None,
    floor: float = FLOOR,
    spread_factor: float = SPREAD_FACTOR,
    widen: bool = False,
) -> Table:
    """A new table: ``lessons`` (default: every lesson in the runs) from the runs, the rest kept.

    A figure's expected value is the mean over the runs (a timing's, the median); its tolerance
    ``spread_factor × (max - min)``, at least ``floor`` (relative above 1). A direction already in
    ``table`` is kept (set it by hand there); a new figure gets ``classify``'s.

    With ``widen`` (runs from another machine: another CPU adds in another order), a figure the
    table already holds keeps everything it accepted and gains what the runs need: the narrowest
    interval covering both (see ``_widened``); timings keep their entry, and a string figure
    that differs between the machines is refused.
    """
    if not runs:
        raise FiguresError("Expected at least one run folder.")
    runs = [run.lessons for run in runs]
    names = set().union(*runs)
    chosen = sorted(names) if lessons is None else lessons
    new = dict(table)
    for lesson in chosen:
        present = [run[lesson] for run in runs if lesson in run]
        if len(present) != len(runs):
            raise FiguresError(
                f"{lesson}: in {len(present)} of {len(runs)} runs; every run must have run it"
            )
        figure_names = set().union(*present)
        for i, figs in enumerate(present):
            missing = sorted(figure_names - set(figs))
            if missing:
                raise FiguresError(
                    f"{lesson}: run {i + 1} did not publish {', '.join(missing)} (other runs did)"
                )
        if not figure_names:
            raise FiguresError(f"{lesson}: published no figures; nothing to hold it to")
        old = table.get(lesson, {})
        new[lesson] = {
            name: _merge_one(
                lesson,
                name,
                [figs[name] for figs in present],
                old.get(name),
                floor,
                spread_factor,
                widen,
            )
            for name in sorted(figure_names)
        }
    return dict(sorted(new.items()))


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # finite (checked on the way in); repr is valid TOML
    return json.dumps(value, ensure_ascii=False)  # a basic string; JSON's escapes are TOML's


def header_sources(text: str) -> list[str]:
    """The run lines of a figures file's header (``#   <folder>: <cpu>, <threads>, ...``), the
    earlier ones without their ``(earlier)`` mark."""
    sources = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("#   "):
            sources.append(line[4:].removeprefix("(earlier) ").strip())
    return sources


def dumps(table: Table, header: str = "") -> str:
    """``table`` as the TOML text of a figures file (``load`` reads it back to the same table)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for lesson, figures in table.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", lesson):
            raise FiguresError(f"Expected a lesson name like 04_naive_fcn. Received: {lesson!r}")
        lines += ["", f"[{lesson}]"]
        for name, expected in figures.items():
            body = ", ".join(f"{k} = {_toml_value(v)}" for k, v in expected.as_dict().items())
            lines.append(f"{name} = {{ {body} }}")
    return "\n".join(lines).lstrip("\n") + "\n"


HEADER = """\
Expected figures of each lesson (FAST mode), checked by `dlcourse run` and by the test suite (nbval).
direction: higher (a quality: may rise, fails below expected - tolerance), lower (an error),
both (expected ± tolerance), exact (must equal), timing (within ×/÷ factor: moves with load).
Written by `dlcourse figures update`; a direction set by hand is kept. See docs/figures.md.
"""
