"""What grading writes for people: feedback HTML, grades.csv, student ids, refused links.

Fast unit tests of the pure parts (sanitizer, leak search, CSV escaping, ids, links), then one
sandboxed batch (``fixtures/grading/output_payloads.py`` plus hostile names and linked files) that
walks the real path: ``release`` -> ``grade`` -> feedback files, grades.csv, gradebook.
"""

from __future__ import annotations

import base64
import copy
import csv
import html
import os
import re
import struct
import unicodedata
import urllib.parse
import zlib
from html.parser import HTMLParser

import nbformat
import pytest
from test_grading_sandbox import FIXTURES, LESSON, require_sandbox

from conftest import load_fixture
from dlcourse.grading import feedback, leaks
from dlcourse.grading import nbformat_grading as fmt
from dlcourse.grading.course import Course, collect, linked, look_alikes, student_id
from dlcourse.grading.grade import Row, csv_cell, write_csv

payloads = load_fixture("output_payloads")


@pytest.fixture(scope="module")
def source():
    return fmt.read_notebook(FIXTURES / f"{LESSON}.ipynb")


@pytest.fixture(scope="module")
def secrets(source):
    return leaks.secret_lines(source, hidden_only=True) | leaks.hidden_inputs(source)


def _hidden_cell(source) -> str:
    return next(c.source for c in source.cells if "rng_add" in c.source)


# -- the sanitizer -------------------------------------------------------------------------------


def _body(page: str) -> str:
    return page.split("<body>", 1)[1]


class _Elements(HTMLParser):
    """Every element and attribute of a page as a browser would parse it (not escaped text)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    handle_startendtag = handle_starttag


ACTIVE = {"script", "style", "iframe", "object", "embed", "base", "meta", "link", "svg", "form"}


def _assert_inert(page: str) -> None:
    parser = _Elements()
    parser.feed(_body(page))
    for tag, attrs in parser.found:
        assert tag not in ACTIVE, tag
        for name, value in attrs.items():
            assert not name.startswith("on") and name not in ("style", "srcset"), (tag, name)
            assert "evil.invalid" not in value and "url(" not in value, (tag, name, value)
            if name == "src":
                assert re.match(r"data:image/(png|jpeg|gif);base64,", value), value
            if name == "href":
                assert re.match(r"(https?:|mailto:|#)", value), value
            if name in ("width", "height"):
                assert value.isdigit(), value


PAYLOADS = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    '<img src="http://evil.invalid/t.png"><img srcset="http://evil.invalid/a 2x">',
    '<a href="javascript:alert(1)">j</a><a href=" JaVaScRiPt:alert(1)">j2</a>',
    '<a href="vbscript:msgbox(1)">v</a><a href="data:text/html,<script>1</script>">d</a>',
    '<svg onload="alert(1)"><script>1</script></svg>',
    '<iframe src="http://evil.invalid"></iframe><object data="x"></object><embed src="x">',
    '<base href="http://evil.invalid/"><meta http-equiv="refresh" content="0;url=http://e">',
    "<style>@import url(http://evil.invalid/a.css);</style>",
    '<p style="background:url(http://evil.invalid/b)">p</p>',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    '<form action="http://evil.invalid"><input name=x></form>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<a href="&#106;avascript:alert(1)">e</a>',
    "<!--<script>alert(1)</script>-->",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sanitizer_leaves_nothing_active(payload):
    _assert_inert(f"<body>{feedback.sanitize(payload)}")


def test_sanitizer_keeps_what_feedback_needs():
    png = f"data:image/png;base64,{payloads.PNG_1PX}"
    kept = feedback.sanitize(
        f'<h1 id="t">T</h1><table><tr><td>1</td></tr></table><pre class="x">a &lt; b</pre>'
        f'<img src="{png}" width="10" height="5"><a href="https://example.org">l</a>'
    )
    assert f'src="{png}"' in kept and 'width="10"' in kept
    assert "<table>" in kept and "<h1" in kept and "a &lt; b" in kept
    assert 'href="https://example.org"' in kept and "noopener" in kept


def test_feedback_page_of_a_hostile_notebook_is_inert():
    """Outputs and markdown of every kind, through build's helpers and the real exporter."""
    nb = nbformat.v4.new_notebook()
    md = nbformat.v4.new_markdown_cell(feedback._safe_markdown(payloads.XSS_MARKDOWN))
    feedback._safe_attachments(md, {"image.png": {"image/png": payloads.PNG_1PX}})
    code = nbformat.v4.new_code_cell("x")
    code.outputs = [
        feedback._safe_output(
            nbformat.v4.new_output(
                "display_data",
                data={
                    "text/html": PAYLOADS[0],
                    "image/svg+xml": PAYLOADS[5],
                    "image/png": payloads.PNG_1PX,
                    "text/plain": "x",
                },
                metadata={"image/png": {"width": '1" onerror="alert(1)'}},
            )
        ),
        nbformat.v4.new_output("stream", name="stdout", text=PAYLOADS[1]),
    ]
    nb.cells = [md, code]
    page = feedback.to_html(nb, "Feedback: <script>")
    _assert_inert(page)
    assert page.count("data:image/png;base64,") == 2  # the output and the pasted image
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<title>Feedback: &lt;script&gt;</title>" in page


# -- hidden tests in any encoding ------------------------------------------------------------------


def test_hidden_inputs_are_the_literals_of_hidden_tests(source):
    inputs = leaks.hidden_inputs(source)
    assert "['alpha', 'Beta', 'gamma', 'DELTA', 'eps']" in inputs
    assert "alpha Beta gamma DELTA eps" in inputs
    assert "hidden add check failed" in inputs
    assert not any("the cat" in i for i in inputs)  # the visible check's input is public


def test_hidden_inputs_leave_out_names_shapes_and_messages():
    """What any honest output shows (a layer type, a shape, a check's message) is no secret."""
    hidden = (
        "### BEGIN HIDDEN TESTS\n"
        "assert type(layer).__name__ == 'BatchNormalization', f'expected a norm layer, got {layer}'\n"
        "assert out.shape == (None, 8, 10, 4)\n"
        "assert names == ('dense', 'dense_as_conv')\n"
        "assert f([40.0, 40.0, 8.0, 8.0], 'a centre on the far edge')\n"
        "### END HIDDEN TESTS"
    )
    cell = nbformat.v4.new_code_cell(
        hidden, metadata={"nbgrader": {"grade": True, "grade_id": "t", "points": 1}}
    )
    nb = fmt.new_notebook([cell])
    assert leaks.hidden_inputs(nb) == {
        "('dense', 'dense_as_conv')",  # the tuple as written, not the names alone or joined
        "[40.0, 40.0, 8.0, 8.0]",
        "a centre on the far edge",
    }


def _png_with(text: bytes, kind: bytes) -> str:
    def chunk(k, data):
        return struct.pack(">I", len(data)) + k + data + struct.pack(">I", zlib.crc32(k + data))

    body = b"c\x00\x00" + zlib.compress(text) if kind == b"zTXt" else b"c\x00" + text
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", b"\x00" * 13) + chunk(kind, body)
    data += chunk(b"IDAT", zlib.compress(b"\x00" + text)) + chunk(b"IEND", b"")
    return base64.b64encode(data).decode()


ENCODINGS = {
    "plain": lambda t: t,
    "html": html.escape,
    "html_numeric": lambda t: "".join(f"&#{ord(c)};" for c in t),
    "base64": lambda t: base64.b64encode(t.encode()).decode(),
    "base64_wrapped": lambda t: "\n".join(
        re.findall(".{1,76}", base64.b64encode(t.encode()).decode())
    ),
    "base64_shifted": lambda t: base64.b64encode(b"ab" + t.encode()).decode()[3:],
    "base64_urlsafe": lambda t: base64.urlsafe_b64encode(t.encode()).decode(),
    "base64_twice": lambda t: base64.b64encode(base64.b64encode(t.encode())).decode(),
    "url": urllib.parse.quote,
    "url_plus": urllib.parse.quote_plus,
    "hex": lambda t: t.encode().hex(),
    "python_escapes": lambda t: "".join(f"\\x{ord(c):02x}" if ord(c) < 256 else c for c in t),
    "utf16": lambda t: t.encode("utf-16-be").decode("latin-1"),
    "wrapped_lines": lambda t: "\n".join(t[i : i + 5] for i in range(0, len(t), 5)),
    "png_ztxt": lambda t: _png_with(t.encode(), b"zTXt"),
    "png_text": lambda t: _png_with(t.encode(), b"tEXt"),
    "png_pixels": lambda t: _png_with(t.encode(), b"tIME"),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_leaks_are_found_in_every_encoding(source, secrets, encoding):
    text = "before " + ENCODINGS[encoding](_hidden_cell(source)) + " after"
    assert "rng_add = random.Random(7)" in leaks.leaked(text, secrets)


def test_ordinary_outputs_are_not_leaks(secrets):
    outputs = [
        "FAST mode",
        "✔ add: correct",
        base64.b64encode(payloads.png_bytes()).decode(),
        "{'the': 2, 'cat': 1, 'and': 1, 'hat': 1}",
        "[1.0, 1.5, 2.0]",
        "0123456789abcdef" * 4,
    ]
    for out in outputs:
        assert leaks.leaked(out, secrets) == [], out


def test_csv_formula_escaping():
    for text in ("=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    for text in ("alice", "zoë", "'=x", "1-2"):
        assert csv_cell(text) == text


def test_write_csv_escapes_and_keeps_one_row_per_student(tmp_path):
    course = Course(tmp_path)
    rows = [
        Row('=HYPERLINK("http://x")', LESSON, 1, 6, "graded", "-oops"),
        Row("bob", LESSON, 2, 6, "graded", ""),
    ]
    write_csv(course, rows)
    write_csv(course, rows)  # a second run replaces the rows, it does not add escaped copies
    with course.grades_csv.open(newline="", encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert [(r["student"], r["reason"]) for r in got] == [
        ('\'=HYPERLINK("http://x")', "'-oops"),
        ("bob", ""),
    ]


def test_student_ids_stay_distinct():
    nfc, nfd = "zo\u00eb", unicodedata.normalize("NFD", "zo\u00eb")
    ids = {text: student_id(text) for text in ("zoe", nfc, nfd, "zo\u00e8", "Zoe")}
    assert len(set(ids.values())) == len(ids), ids
    assert ids["zoe"] == "zoe" and ids["Zoe"] == "Zoe"
    assert all(re.fullmatch(r"[A-Za-z0-9._@+-]+", v) for v in ids.values())
    alike = look_alikes(["zoe", "Zoe", nfc, nfd, "bob"])
    assert alike["zoe"] == ["Zoe"] and alike[nfc] == [nfd] and "bob" not in alike


def test_collect_keeps_look_alike_students_apart(tmp_path):
    from dlcourse.grading.release import release

    course = Course(tmp_path / "course")
    release(course, [str(FIXTURES / f"{LESSON}.ipynb")])
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    nfd = unicodedata.normalize("NFD", "zo\u00eb")
    for name in ("zoe", "zo\u00eb", nfd):
        (downloads / f"{name}_{LESSON}.ipynb").write_text(name)
    os.link(downloads / f"zoe_{LESSON}.ipynb", downloads / f"linked_{LESSON}.ipynb")
    (downloads / f"sym_{LESSON}.ipynb").symlink_to(course.source / LESSON / f"{LESSON}.ipynb")
    moved = collect(course, downloads, [LESSON])
    contents = sorted(dest.read_text() for _, dest in moved)
    assert contents == sorted(["zo\u00eb", nfd])  # the linked zoe file and the symlink: refused
    assert len({dest for _, dest in moved}) == 2


def test_linked_names_each_kind_of_link(tmp_path):
    folder = tmp_path / "submitted" / "s" / "a"
    folder.mkdir(parents=True)
    plain = folder / "plain.ipynb"
    plain.write_text("{}")
    assert linked(plain) is None
    (folder / "sym.ipynb").symlink_to(plain)
    assert "symbolic link" in linked(folder / "sym.ipynb")
    os.link(plain, folder / "hard.ipynb")
    assert "hard link (2 names" in linked(folder / "hard.ipynb")
    (tmp_path / "submitted" / "t").symlink_to(tmp_path / "submitted" / "s")
    assert "student's folder is a symbolic link" in linked(
        tmp_path / "submitted" / "t" / "a" / "x.ipynb"
    )


# -- the real path, in the sandbox -----------------------------------------------------------------

NFC, NFD = "zo\u00eb", unicodedata.normalize("NFD", "zo\u00eb")
NAMES = ["zoe", "Zoe", NFC, NFD, '=HYPERLINK("evil.invalid")', "+1", "-2", "@SUM(A1)", "\tx"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    require_sandbox()
    from dlcourse.grading.grade import grade
    from dlcourse.grading.release import release

    tmp = tmp_path_factory.mktemp("output")
    course = Course(tmp / "course")
    released = release(course, [str(FIXTURES / f"{LESSON}.ipynb")])
    assert released[0].ok, released[0].problems
    student = nbformat.read(course.release_dir / LESSON / f"{LESSON}.ipynb", as_version=4)
    subs = payloads.make(student)
    for i, name in enumerate(NAMES):  # each a working answer; add() returns i to tell them apart
        subs[name] = payloads.solved(student, f"def add(a, b):\n    return a + b + {i} * 0")
    for name, nb in subs.items():
        (course.submitted / name / LESSON).mkdir(parents=True)
        nbformat.write(nb, course.submitted / name / LESSON / f"{LESSON}.ipynb")
    source_nb = course.source / LESSON / f"{LESSON}.ipynb"
    (course.submitted / "hardlink" / LESSON).mkdir(parents=True)
    os.link(source_nb, course.submitted / "hardlink" / LESSON / f"{LESSON}.ipynb")
    (course.submitted / "etc_passwd" / LESSON).mkdir(parents=True)
    (course.submitted / "etc_passwd" / LESSON / f"{LESSON}.ipynb").symlink_to("/etc/passwd")
    (course.submitted / "folder_link").mkdir()
    (course.submitted / "folder_link" / LESSON).symlink_to(course.source / LESSON)
    (course.submitted / "student_link").symlink_to(course.source)
    # The feedback's leak filter guards the checks judged in the student's kernel (arguments that
    # are not plain data). With the trusted interpreter on, the fixture's hidden tests never reach
    # the kernel (tests/test_grading_tamper.py proves it) and STEAL finds nothing to show; so this
    # batch grades the kernel path, where the payloads do steal the hidden test.
    saved = os.environ.get("DLCOURSE_TRUSTED")
    os.environ["DLCOURSE_TRUSTED"] = "0"
    try:
        rows = grade(course, [LESSON], timeout=20, workers=2, progress=False, mode="all")
    finally:
        if saved is None:
            os.environ.pop("DLCOURSE_TRUSTED")
        else:
            os.environ["DLCOURSE_TRUSTED"] = saved
    return {"course": course, "rows": {r.student: r for r in rows}}


def _feedback(course, student) -> str:
    return (course.feedback / student / LESSON / f"{LESSON}.html").read_text(encoding="utf-8")


@pytest.mark.sandbox
@pytest.mark.parametrize("student", sorted(payloads.SHOW))
def test_no_hidden_test_reaches_feedback(batch, source, secrets, student):
    course, row = batch["course"], batch["rows"][student]
    assert (row.score, row.status) == (6, "flagged"), row.reason
    assert "withheld from feedback" in row.reason
    page = _feedback(course, student)
    assert leaks.leaked(page, secrets) == []
    assert "output withheld" in page or "outputs withheld" in page
    # the stealing worked: the instructor's copy has the hidden test in the student's output
    graded = nbformat.read(course.autograded / student / LESSON / f"{LESSON}.ipynb", 4)
    last = "".join(feedback._output_text(o, metadata=False) for o in graded.cells[-1].outputs)
    assert leaks.leaked(last, secrets)


@pytest.mark.sandbox
def test_feedback_of_active_content_is_inert(batch):
    course = batch["course"]
    for student in ("xss", "pasted_image"):
        row = batch["rows"][student]
        assert row.score == 6, row.reason
        _assert_inert(_feedback(course, student))
    pasted = _feedback(course, "pasted_image")
    assert f"data:image/png;base64,{payloads.PNG_1PX}" in pasted  # the pasted image is shown
    assert "My answer" in pasted


@pytest.mark.sandbox
def test_every_graded_submission_has_a_feedback_file(batch):
    course = batch["course"]
    for student in batch["rows"]:
        assert (course.feedback / student / LESSON / f"{LESSON}.html").is_file(), student


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("student", "reason"),
    [
        ("hardlink", r"hard link \(2 names for one file\)"),
        ("etc_passwd", r"the file is a symbolic link"),
        ("folder_link", r"its folder is a symbolic link"),
        ("student_link", r"the student's folder is a symbolic link"),
    ],
)
def test_linked_submissions_are_refused(batch, student, reason):
    row = batch["rows"][student]
    assert (row.score, row.status) == (0, "invalid"), row.reason
    assert re.search(reason, row.reason), row.reason
    page = _feedback(batch["course"], student)
    assert "def add(a, b):\n    return a + b" not in page and "root:" not in page


@pytest.mark.sandbox
def test_look_alike_and_formula_ids_stay_distinct_and_escaped(batch):
    from nbgrader.api import Gradebook

    course, rows = batch["course"], batch["rows"]
    for name in NAMES:
        assert rows[name].score == 6, (name, rows[name].reason)
    for name in ("zoe", "Zoe", NFC, NFD):
        assert (
            rows[name].status == "flagged" and "only in case or Unicode form" in rows[name].reason
        )
    with course.grades_csv.open(newline="", encoding="utf-8") as f:
        students = [r["student"] for r in csv.DictReader(f)]
    for name in NAMES:
        shown = csv_cell(name)
        assert students.count(shown) == 1, name
    assert all(not s.startswith(("=", "+", "-", "@", "\t", "\r")) for s in students)
    with Gradebook(course.db_url, "dlcourse") as gb:
        for name in NAMES:
            assert gb.find_submission(LESSON, name).score == 6
    files = {p.parent.parent.name for p in course.feedback.rglob("*.html")}
    assert set(NAMES) <= files


def test_a_check_message_that_echoes_a_hidden_test_is_withheld(source, secrets):
    """The score table shows a failing check's message; one that quotes the hidden test (student
    code raised it with stolen text) is replaced, and so is a reason that quotes it."""
    from dlcourse.grading import merge
    from dlcourse.grading.autograde import score_tests
    from dlcourse.grading.execute import RunResult, SegmentResult

    submission = copy.deepcopy(source)
    for cell in submission.cells:
        if fmt.role(cell) == "solution":
            cell.source = fmt.stub_solution(cell.source)
    plan = merge.build(source, submission, "all")
    stolen = _hidden_cell(source)
    results = {}
    for i, step in enumerate(plan.steps):
        if step.is_code and step.run:
            results[i] = [SegmentResult([], "ok") for _ in step.segments or [None]]
    words = next(i for i, s in enumerate(plan.steps) if s.grade_id == "ex-00-words-check")
    error = nbformat.v4.new_output("error", ename="ValueError", evalue=stolen, traceback=[stolen])
    results[words][0] = SegmentResult([error], "error", "ValueError", stolen)
    run = RunResult(results, [], 1.0, 1)
    tests = score_tests(plan, run)
    assert stolen.splitlines()[0] in tests[words]["detail"]  # what would have been shown
    header = {
        "student": "s",
        "assignment": LESSON,
        "score": 4,
        "max_score": 6,
        "status": "graded",
        "reasons": [f"cell 3: {stolen}"],
    }
    nb, withheld = feedback.build(plan, run, tests, header=header, hidden_secrets=secrets)
    page = feedback.render(nb, header)
    assert withheld
    assert leaks.leaked(page, secrets) == []
    assert page.count("message withheld") == 3  # the reason, the table row, the check's line
    assert "output withheld" in page  # the traceback
