"""Feedback for the student: their notebook as graded, without hidden tests or their tracebacks.

Built from the grading run, not from the autograded notebook (which holds the hidden tests):
test cells show their visible part as released; the hidden part becomes one line, "hidden tests
passed" or "hidden tests failed", with none of its code, output or traceback. Any output that
contains a line of a hidden test (student code can read what the kernel runs) is withheld.
"""

from __future__ import annotations

import copy
import html
import threading

import nbformat

from dlcourse.grading import leaks
from dlcourse.grading import nbformat_grading as fmt

_local = threading.local()


def _exporter():
    if not hasattr(_local, "exporter"):
        from nbconvert import HTMLExporter

        # Safety comes from _safe_output / _safe_markdown instead of sanitize_html, which
        # escapes whole rendered markdown cells (headings showed up as literal tags).
        _local.exporter = HTMLExporter(template_name="classic")
        _local.exporter.exclude_input_prompt = True
        _local.exporter.exclude_output_prompt = True
    return _local.exporter


SAFE_MIME = ("text/plain", "image/png", "image/jpeg", "image/gif")


def _safe_output(output):
    """An output without active content: student code can emit HTML, JavaScript or SVG that
    would run when the feedback is opened; only text and raster images are kept."""
    if output.get("output_type") not in ("display_data", "execute_result"):
        return output
    output = copy.deepcopy(output)
    data = output.get("data", {})
    kept = {k: v for k, v in data.items() if k in SAFE_MIME}
    if not kept:
        kept = {"text/plain": "[rich output not shown in feedback]"}
    output["data"] = kept
    return output


def _safe_markdown(text: str) -> str:
    """Markdown the student wrote, with raw HTML shown as text rather than rendered."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _stream(text: str, name: str = "stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def _fmt(x: float) -> str:
    return f"{x:g}"


def build(plan, run, tests: dict[int, dict], *, header: dict, hidden_secrets: set[str]):
    """The student-facing notebook and whether an output had to be withheld.

    Args:
        plan: the merge plan (steps).
        run: the runner's result (segment results per step), or None if nothing ran.
        tests: step index -> {"score", "points", "detail"} for test cells.
        header: student, assignment, score, max_score, status, reasons.
        hidden_secrets: lines of hidden tests that must not appear.
    """
    withheld = False

    def clean(outputs):
        nonlocal withheld
        out = []
        for o in outputs:
            text = str(o)
            if leaks.found_in(text, hidden_secrets):
                withheld = True
                out.append(
                    _stream("[output withheld: it contains text of a hidden test]\n", "stderr")
                )
            else:
                out.append(_safe_output(o))
        return out

    cells = [nbformat.v4.new_markdown_cell(_summary(header, plan, tests))]
    results = run.results if run is not None else {}
    for i, step in enumerate(plan.steps):
        cell = nbformat.v4.new_code_cell() if step.is_code else nbformat.v4.new_markdown_cell()
        if not step.is_code:
            cell.cell_type = step.cell.cell_type
            cell.source = step.cell.source
            if step.origin != "source":
                cell.source = _safe_markdown(cell.source)
            cells.append(cell)
            continue
        if not step.run:
            continue
        segs = results.get(i, [])
        if step.role == "test":
            t = tests[i]
            mark = "✔" if t["score"] == t["points"] else "✘"
            cells.append(
                nbformat.v4.new_markdown_cell(
                    f"**{mark} {step.grade_id}: {_fmt(t['score'])} / {_fmt(t['points'])} points**"
                    + (f" — {html.escape(t['detail'])}" if t["detail"] else "")
                )
            )
            cell.source = fmt.strip_hidden(step.cell.source).rstrip()
            has_hidden = any(s.hidden for s in step.segments)
            if has_hidden:
                cell.source += "\n# (hidden tests run here by the grader)"
        else:
            cell.source = step.cell.source
        outputs = []
        for seg, res in zip(step.segments, segs, strict=False):
            if seg.hidden:
                if res.status == "ok":
                    outputs.append(_stream("Hidden tests passed.\n"))
                elif res.status in ("error",):
                    outputs.append(_stream("Hidden tests failed.\n", "stderr"))
                elif res.status in ("timeout", "died"):
                    outputs.append(
                        _stream(f"Hidden tests did not finish ({res.status}).\n", "stderr")
                    )
                continue
            outputs += clean(res.outputs)
            if res.status in ("timeout", "died"):
                event = next((e for e in run.events if e.step == i), None)
                outputs.append(
                    _stream(f"[grader] {event.detail if event else res.status}\n", "stderr")
                )
            elif res.status == "not-run":
                outputs.append(
                    _stream("[grader] not run (time budget used up or kernel lost)\n", "stderr")
                )
        cell.outputs = outputs
        cells.append(cell)
    nb = fmt.new_notebook(cells)
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    return nb, withheld


def summary_only(header: dict):
    """Feedback for a submission that could not be run (invalid or missing)."""
    return fmt.new_notebook([nbformat.v4.new_markdown_cell(_summary(header, None, {}))])


def _summary(header: dict, plan, tests: dict[int, dict]) -> str:
    lines = [
        f"# Feedback: {html.escape(header['assignment'])}",
        "",
        f"Student: **{html.escape(header['student'])}** · score **{_fmt(header['score'])} / "
        f"{_fmt(header['max_score'])}** · status: {header['status']}",
        "",
    ]
    if header.get("reasons"):
        lines += ["Notes from the grader:", ""]
        lines += [f"* {html.escape(r)}" for r in header["reasons"]]
        lines.append("")
    if tests:
        lines += ["| exercise check | points | result |", "| --- | --- | --- |"]
        for i, t in tests.items():
            result = "passed" if t["score"] == t["points"] else (t["detail"] or "failed")
            lines.append(
                f"| {plan.steps[i].grade_id} | {_fmt(t['score'])} / {_fmt(t['points'])} "
                f"| {html.escape(result)} |"
            )
    return "\n".join(lines)


def to_html(nb) -> str:
    body, _ = _exporter().from_notebook_node(nb)
    return body
