"""The benchmark report: the machine, ``report.json``, ``report.md`` and the README block.

Absolute times are labelled with the machine they came from (CPU model, cores, date, load);
comparisons are ratios taken in the same run. Each section's tables come from its module's
``markdown(result, machine)`` (this module renders the sections whose modules have none).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

from dlcourse.course.runner import cpu_info, cpu_model, load_average

README_START = "<!-- benchmarks:start -->"
README_END = "<!-- benchmarks:end -->"


# ------------------------------------------------------------------------------------- machine


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def machine() -> dict:
    """What the absolute times belong to."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),  # the name and its widest vector extension
        "cpu": cpu_info(),  # family, model: what tells two CPUs of one name apart
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average_start": load_average(),
    }


def machine_label(m: dict) -> str:
    """Short label for table headers: ``AMD EPYC, 2 cores``."""
    return f"{m['cpu_model']}, {m['usable_cores']} cores"


# ------------------------------------------------------------------------ renderers for others


def _data_markdown(result: dict, label: str) -> str:
    from benchmarks import bench_input

    gen = result["generation"]
    lines = [
        f"`make_scenes` (single-threaded NumPy; best of {gen['results'][0]['repeats']}):",
        "",
        f"| scenes | scenes/s, CPU time ({label}) | scenes/s, wall |",
        "| --- | ---: | ---: |",
    ]
    for r in gen["results"]:
        lines.append(
            f"| {r['image_size']}×{r['image_size']} ({r['scenes']}) | "
            f"{r['scenes_per_second_cpu']:,.0f} | {r['scenes_per_second_wall']:,.0f} |"
        )
    return "\n".join(lines) + "\n\n" + bench_input.markdown(result["input"], label)


def _data_headline(result: dict) -> list[tuple[str, str]]:
    first = result["generation"]["results"][0]
    share, cpu = result["input"]["input_wait_share"], result["input"].get("input_cpu_share", {})
    size = first["image_size"]
    return [
        (
            f"scenes generated per second ({size}×{size})",
            f"{first['scenes_per_second_cpu']:,.0f}/s CPU time, "
            f"{first['scenes_per_second_wall']:,.0f}/s wall",
        ),
        (
            "share of a training epoch waiting on input",
            f"{share['make_dataset']:.0%} with `make_dataset`, {share['arrays']:.0%} with NumPy "
            f"arrays (of CPU time: {cpu.get('make_dataset', float('nan')):.0%}, "
            f"{cpu.get('arrays', float('nan')):.0%}); "
            f"{result['input']['generation']['share_if_serial']:.0%} if generated on the fly",
        ),
    ]


def _layers_markdown(result: dict, label: str) -> str:
    cfg = result["config"]
    lines = [
        f"Pool 2×2 and unpool again, forward + backward, batch {cfg['batch']}, "
        f"{cfg['channels']} channels; ratio > 1: dlcourse is faster / smaller.",
        "",
        f"| size | variant | wall ms ({label}) | CPU ms | peak extra MB | "
        "wall ÷ dlcourse | memory ÷ dlcourse |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for entry in result["results"]:
        for variant in ("dlcourse", "tf_native", "pool_upsample"):
            row = entry[variant]
            ratio = entry["ratios"].get(f"{variant} / dlcourse", {})
            mem = row["peak_extra_mb"]
            lines.append(
                f"| {entry['size']}×{entry['size']} | {variant} | {row['wall_s'] * 1000:.1f} | "
                f"{row['cpu_s'] * 1000:.1f} | {'—' if mem is None else mem} | "
                f"{ratio.get('wall_s', 1.0 if variant == 'dlcourse' else '—')} | "
                f"{ratio.get('peak_extra_mb', 1.0 if variant == 'dlcourse' else '—')} |"
            )
    return "\n".join(lines)


def _layers_headline(result: dict) -> list[tuple[str, str]]:
    parts = [
        f"×{e['ratios']['tf_native / dlcourse'].get('wall_s', float('nan')):.2f} at "
        f"{e['size']}×{e['size']}"
        for e in result["results"]
    ]
    floor = [
        f"×{1 / e['ratios']['pool_upsample / dlcourse']['wall_s']:.2f} "
        f"(CPU ×{1 / e['ratios']['pool_upsample / dlcourse']['cpu_s']:.2f}) at {e['size']}×{e['size']}"
        for e in result["results"]
        if e["ratios"].get("pool_upsample / dlcourse", {}).get("wall_s")
        and e["ratios"]["pool_upsample / dlcourse"].get("cpu_s")
    ]
    rows = [
        (
            "max pool + unpool, `tf.nn.max_pool_with_argmax`+`scatter_nd` time ÷ dlcourse's",
            ", ".join(parts),
        )
    ]
    if floor:
        rows.append(
            (
                "max pool + unpool, dlcourse's time ÷ the floor (MaxPooling2D + UpSampling2D)",
                ", ".join(floor),
            )
        )
    return rows


_GRADING_RATIOS = {
    "speedup_workers_2": "parallel speed-up, 2 workers (1 worker ÷ 2 workers)",
    "predicted_speedup_workers_2": "the same predicted for an idle machine (CPU s, parallelism)",
    "amdahl_bound_workers_2": "Amdahl's law, the grader process's CPU s as the serial part",
    "sandbox_overhead": "sandbox overhead (sandboxed ÷ unsandboxed − 1)",
    "sandbox_overhead_cpu": "sandbox overhead in CPU seconds",
    "overhead_vs_nbgrader": "`dlcourse grade` (sandboxed) ÷ `nbgrader autograde` − 1",
    "overhead_vs_nbgrader_cpu": "the same in CPU seconds",
}


def _grading_table(result: dict, label: str, what: str) -> str:
    lines = [
        f"{what}: {result.get('lesson')}, {result.get('submissions')} submissions, cells: "
        f"{result.get('cells')}, best of {result.get('repeats')} (configurations interleaved).",
        "",
        f"| configuration | seconds per submission ({label}) | CPU seconds per submission |",
        "| --- | ---: | ---: |",
    ]
    cpu = result.get("cpu_seconds_per_submission") or {}
    for name, seconds in result.get("seconds_per_submission", {}).items():
        cpu_text = "—" if cpu.get(name) is None else f"{cpu[name]:.2f}"
        lines.append(f"| {name} | {seconds:.2f} | {cpu_text} |")
    found = [
        (text, result[key]) for key, text in _GRADING_RATIOS.items() if result.get(key) is not None
    ]
    if found:
        lines += ["", "| ratio (same run) | value |", "| --- | ---: |"]
        lines += [f"| {text} | {value:.2f} |" for text, value in found]
    return "\n".join(lines)


def _grading_markdown(result: dict, label: str) -> str:
    return "\n\n".join(
        [
            _grading_table(result["lesson"], label, "A lesson as `dlcourse grade` grades it"),
            _grading_table(result["peer"], label, "Against nbgrader, on the tiny fixture lesson"),
        ]
    )


def _grading_headline(result: dict) -> list[tuple[str, str]]:
    lesson, peer = result["lesson"], result["peer"]
    per = lesson.get("seconds_per_submission", {})
    parts = []
    if "sandbox" in per:
        parts.append(f"{per['sandbox']:.1f} s per submission of {lesson.get('lesson')} (sandboxed)")
    if lesson.get("speedup_workers_2") is not None:
        parts.append(f"×{lesson['speedup_workers_2']:.2f} with 2 workers")
    if lesson.get("sandbox_overhead") is not None:
        parts.append(f"sandbox overhead {lesson['sandbox_overhead']:+.0%}")
    if peer.get("overhead_vs_nbgrader") is not None:
        parts.append(f"vs nbgrader autograde {peer['overhead_vs_nbgrader']:+.0%}")
    return [("grading", "; ".join(parts) or json.dumps(per))]


def _renderers(name: str):
    """``(markdown, headline)`` functions of a section."""
    if name in ("course", "efficiency", "quality", "peers"):
        import importlib

        module = importlib.import_module(f"benchmarks.bench_{name}")
        return module.markdown, module.headline
    return {
        "data": (_data_markdown, _data_headline),
        "layers": (_layers_markdown, _layers_headline),
        "grading": (_grading_markdown, _grading_headline),
    }[name]


# ---------------------------------------------------------------------------------- documents


def _problem(entry: dict) -> str:
    err = entry.get("error") or {}
    text = f"{err.get('type', 'Error')}: {err.get('message', '')}".strip()
    return text.replace("\n", " ").replace("|", "/")[:200]


def _section_status(entry: dict) -> str:
    run = entry.get("run")
    where = (
        f"; run of {run['date'][:16].replace('T', ' ')} UTC, `{run['command']}`, "
        f"load average {run['load_average_start']}"
        if run
        else ""
    )
    if entry["status"] == "ok":
        return f"{entry['wall_seconds']:.0f} s{where}"
    return f"**{entry['status']}**: {_problem(entry)}{where}"


def merge(reports: list[dict]) -> dict:
    """One report from several runs (``python -m benchmarks --only ...`` each), in report order.

    A section measured in more than one run is taken from the last. Each section keeps its run
    (command, date, load average at its start), shown in its heading: ratios are taken within a
    section's run, never across runs.
    """
    from benchmarks.sections import SECTIONS

    if not reports:
        raise ValueError("Expected at least one report to merge. Received: none")
    sections = {}
    for rep in reports:
        run = {
            "command": rep["command"],
            "date": rep["machine"]["date"],
            "load_average_start": rep["machine"]["load_average_start"],
            "quick": rep["quick"],
        }
        for name, entry in rep["sections"].items():
            sections[name] = {**entry, "run": run}
    order = [n for n in SECTIONS if n in sections] + [n for n in sections if n not in SECTIONS]
    return {
        "command": " + ".join(rep["command"] for rep in reports),
        "quick": any(rep["quick"] for rep in reports),
        "machine": reports[-1]["machine"],
        "environment": next((r["environment"] for r in reports if r.get("environment")), None),
        "merged": len(reports),
        "sections": {n: sections[n] for n in order},
        "wall_seconds": round(sum(rep.get("wall_seconds", 0) for rep in reports), 1),
    }


def summary_rows(report: dict) -> list[tuple[str, str, str]]:
    """``(section, figure, value)`` for every section; failed sections say why."""
    from benchmarks.sections import SECTIONS

    rows = []
    for name, entry in report["sections"].items():
        title = SECTIONS[name].title if name in SECTIONS else name
        if entry["status"] != "ok":
            rows.append((title, entry["status"], _problem(entry)))
            continue
        try:
            for figure, value in _renderers(name)[1](entry["result"]):
                rows.append((title, figure, value))
        except Exception as exc:  # a result of an unexpected shape must not lose the report
            rows.append((title, "could not summarise", f"{type(exc).__name__}: {exc}"))
    if report["sections"]:
        slowest = max(report["sections"], key=lambda n: report["sections"][n]["wall_seconds"])
        reused = [n for n, e in report["sections"].items() if e.get("reused")]
        rows.append(
            (
                "This benchmark",
                "wall time",
                f"{report.get('wall_seconds', 0):.0f} s in all; slowest section {slowest} "
                f"({report['sections'][slowest]['wall_seconds']:.0f} s)"
                + "".join(
                    f"; {n} reused from an earlier run "
                    f"({report['sections'][n]['wall_seconds']:.0f} s there, not in the total)"
                    for n in reused
                ),
            )
        )
    return rows


def _header(report: dict) -> str:
    m = report["machine"]
    env = report.get("environment") or {}
    kind = (
        "**quick run (smoke-test sizes: figures are not meaningful)**"
        if report["quick"]
        else "full run"
    )
    software = (
        ", ".join(f"{k} {env[k]}" for k in ("tensorflow", "keras", "python") if env.get(k))
        or f"Python {m['python']}"
    )
    if report.get("merged", 1) > 1:
        return (
            f"Measured on **{m['cpu_model']}, {m['usable_cores']} cores, {m['memory_gib']} GiB** "
            f"({m['platform']}; {software}), {kind}, in {report['merged']} runs "
            f"({report.get('wall_seconds', 0):.0f} s in all): each section's heading names its "
            f"run, command and load average (above {m['usable_cores']} means other work shared "
            "the cores and inflated absolute times). Comparisons are ratios taken within one "
            "section's run; absolute times belong to this machine."
        )
    return (
        f"Measured on **{m['cpu_model']}, {m['usable_cores']} cores, {m['memory_gib']} GiB** "
        f"({m['platform']}; {software}) on {m['date'][:10]}, {kind}: `{report['command']}`, "
        f"{report.get('wall_seconds', 0):.0f} s in all. Load average at the start "
        f"{m['load_average_start']} (above {m['usable_cores']} means other work shared the "
        "cores and inflated absolute times). Comparisons are ratios taken within this run; "
        "absolute times belong to this machine."
    )


def summary_markdown(report: dict) -> str:
    lines = ["| section | figure | value |", "| --- | --- | --- |"]
    lines += [f"| {s} | {f} | {v} |" for s, f, v in summary_rows(report)]
    return "\n".join(lines)


def sections_markdown(report: dict, level: str = "##") -> str:
    from benchmarks.sections import SECTIONS

    label = machine_label(report["machine"])
    parts = []
    for name, entry in report["sections"].items():
        title = SECTIONS[name].title if name in SECTIONS else name
        parts.append(f"{level} {title} ({_section_status(entry)})")
        if entry["status"] == "ok":
            try:
                parts.append(_renderers(name)[0](entry["result"], label))
            except Exception as exc:
                parts.append(f"Could not render: {type(exc).__name__}: {exc}")
    return "\n\n".join(parts)


def markdown(report: dict) -> str:
    """``report.md``: header, summary table, then one part per section."""
    return "\n\n".join(
        [
            "# dlcourse benchmarks",
            _header(report),
            summary_markdown(report),
            sections_markdown(report),
        ]
    )


def readme_block(report: dict) -> str:
    """What goes between the README's benchmark markers: summary visible, tables folded."""
    return "\n\n".join(
        [
            _header(report),
            summary_markdown(report),
            "<details><summary>Every table</summary>",
            sections_markdown(report, level="####"),
            "</details>",
        ]
    )


def write(report: dict, out: Path) -> None:
    """``out/report.json`` and ``out/report.md``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.md").write_text(markdown(report) + "\n")


def update_readme(readme: Path, block: str) -> None:
    """Replace the text between the benchmark markers of ``readme`` with ``block``."""
    from dlcourse.course.readme import replace_block

    replace_block(readme, README_START, README_END, block)
