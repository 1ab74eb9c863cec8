"""Feedback for the student: their notebook as graded, without hidden tests or their tracebacks.

Built from the grading run, not from the autograded notebook (which holds the hidden tests):
test cells show their visible part as released; the hidden part becomes one line, "hidden tests
passed" or "hidden tests failed", with none of its code, output or traceback. Any output that
contains a line or an input of a hidden test (student code can read what the kernel runs), in
any of the encodings ``leaks.decodings`` undoes, is withheld; so is every output when the leak
only shows once the outputs are put together.

The HTML is rendered by nbconvert's ``basic`` template (the cells, no page, no scripts) and then
passed through nh3 (the Ammonia sanitizer) with an allowlist (``sanitize``): no script, style,
iframe, form, base or meta element, no event handler or ``style`` attribute, links only to
``http(s)``/``mailto``/in-page anchors, images only as inline ``data:image/png|jpeg|gif;base64``
(what the feedback embeds from outputs and pasted attachments; never a remote ``src`` or a
``srcset``). The page around it (title, CSS) is the grader's own, with no URL in it.
"""

from __future__ import annotations

import copy
import html
import re
import threading

import nbformat

from dlcourse.grading import leaks
from dlcourse.grading import nbformat_grading as fmt

_local = threading.local()


def _exporter():
    if not hasattr(_local, "exporter"):
        from nbconvert import HTMLExporter

        # The cells only: the page around them is PAGE, and nh3 cleans the cells (sanitize).
        _local.exporter = HTMLExporter(template_name="basic")
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


IMAGE_MIME = ("image/png", "image/jpeg", "image/gif")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]+$")


def _safe_attachments(cell, attachments) -> None:
    """Keep a markdown cell's pasted raster images; point other ``attachment:`` links nowhere.

    nbconvert looks every ``attachment:NAME`` up in the cell's attachments, and one that is
    missing (or not an image) made the whole feedback fail to render.
    """
    kept = {}
    if isinstance(attachments, dict):
        for name, bundle in attachments.items():
            if not isinstance(bundle, dict):
                continue
            for mime in IMAGE_MIME:
                data = bundle.get(mime)
                if isinstance(data, list):
                    data = "".join(x for x in data if isinstance(x, str))
                if isinstance(data, str) and _BASE64.match(data):
                    kept[name] = {mime: data}
                    break
    if kept:
        cell.attachments = nbformat.from_dict(kept)

    def inert(m):
        name = m.group(1)
        return m.group(0) if name in kept else "#attachment-not-shown"

    cell.source = re.sub(r"attachment:([^\s)\]\"'>]*)", inert, cell.source)


WITHHELD = "[output withheld: it contains text of a hidden test]\n"
WITHHELD_ALL = "[outputs withheld: together they contain text of a hidden test]\n"


def _output_text(output, *, metadata: bool = True) -> str:
    """What an output would show, as one string: its text, traceback, every data field and
    (``metadata``) its metadata."""
    parts = []
    for key in ("text", "ename", "evalue"):
        value = output.get(key)
        parts.append("".join(value) if isinstance(value, list) else str(value or ""))
    parts += [str(x) for x in output.get("traceback", []) or []]
    for value in (output.get("data") or {}).values():
        parts.append("".join(value) if isinstance(value, list) else str(value))
    if metadata:
        parts.append(str(output.get("metadata", "")))
    return "\n".join(parts)


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

    shown: list[str] = []  # the text of every output kept, in order (a leak split across them)

    def clean(outputs):
        nonlocal withheld
        out = []
        for o in outputs:
            text = _output_text(o)
            if leaks.leaked(text, hidden_secrets):
                withheld = True
                out.append(_stream(WITHHELD, "stderr"))
            else:
                out.append(_safe_output(o))
                shown.append(_output_text(o, metadata=False))
        return out

    def quiet(text: str) -> str:
        """A message shown in the summary (an error's text) unless it leaks a hidden test."""
        nonlocal withheld
        if text and leaks.leaked(text, hidden_secrets):
            withheld = True
            return "[message withheld: it contains text of a hidden test]"
        return text

    tests = {i: {**t, "detail": quiet(t["detail"])} for i, t in tests.items()}
    header = {**header, "reasons": [quiet(r) for r in header.get("reasons", [])]}

    cells = [nbformat.v4.new_markdown_cell(_summary(header, plan, tests))]
    results = run.results if run is not None else {}
    for i, step in enumerate(plan.steps):
        cell = nbformat.v4.new_code_cell() if step.is_code else nbformat.v4.new_markdown_cell()
        if not step.is_code:
            cell.cell_type = step.cell.cell_type
            cell.source = step.cell.source
            if step.origin != "source":
                cell.source = _safe_markdown(cell.source)
            if cell.cell_type == "markdown":
                _safe_attachments(cell, step.cell.get("attachments"))
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
    if shown and leaks.leaked("".join(shown), hidden_secrets):
        # each output alone was clean, together they spell a hidden test: show none of them
        withheld = True
        for cell in cells:
            if cell.cell_type == "code" and cell.outputs:
                cell.outputs = [_stream(WITHHELD_ALL, "stderr")]
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


ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "q",
    "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "tr", "u", "ul", "var",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "*": {"class", "id", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
    "ol": {"start"},
}
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]+$")
_LINK = re.compile(r"^(https?://|mailto:|#)", re.IGNORECASE)


def _attribute(element: str, attribute: str, value: str) -> str | None:
    """nh3's attribute filter: which URL each attribute may hold, digits-only sizes."""
    if element == "img" and attribute == "src":
        return value if _DATA_IMAGE.match(value) else None
    if attribute == "href":
        return value if _LINK.match(value.strip()) else None
    if attribute in ("width", "height", "colspan", "rowspan", "start"):
        return value if value.isdigit() and len(value) <= 5 else None
    if attribute in ("class", "id"):
        return value if re.fullmatch(r"[\w\- ]{0,200}", value) else None
    return value


def sanitize(fragment: str) -> str:
    """``fragment`` with only allowlisted elements, attributes and URLs (see the module doc)."""
    import nh3

    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style", "iframe", "object", "embed", "template", "svg"},
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute,
        url_schemes={"http", "https", "mailto", "data"},  # data: only for img, see _attribute
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def _css() -> str:
    if not hasattr(_local, "css"):
        from pygments.formatters import HtmlFormatter

        _local.css = PAGE_CSS + HtmlFormatter(style="default").get_style_defs(".highlight")
    return _local.css


PAGE_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }
pre, code { font-family: ui-monospace, monospace; font-size: 0.9em; }
.jp-InputArea pre, .input_area pre { background: #f5f5f5; padding: 0.5em; overflow-x: auto; }
.jp-OutputArea pre, .output_area pre { padding: 0.25em 0.5em; overflow-x: auto; }
.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"], .output_stderr { background: #fdd; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; }
img { max-width: 100%; height: auto; }
"""
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
</body>
</html>
"""


def render(nb, header: dict) -> str:
    """``to_html``, or the score summary alone with a note if the notebook cannot be rendered
    (the student always gets a feedback file)."""
    title = f"Feedback: {header['assignment']} ({header['student']})"
    try:
        return to_html(nb, title)
    except Exception as e:  # a cell nbconvert cannot render must not cost the whole file
        note = nbformat.v4.new_markdown_cell(
            f"*The graded notebook could not be shown here ({html.escape(type(e).__name__)});"
            " the scores above are complete.*"
        )
        return to_html(fmt.new_notebook([copy.deepcopy(nb.cells[0]), note]), title)


def to_html(nb, title: str = "Feedback") -> str:
    """The feedback page: sanitized cells in the grader's own page (CSS, a strict CSP)."""
    body, _ = _exporter().from_notebook_node(nb)
    return PAGE.format(title=html.escape(title), css=_css(), body=sanitize(body))
