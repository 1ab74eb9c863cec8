"""The course website (``dlcourse site``): figures kept, no solution on a page, checked in Chromium.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them; Google
Chrome with its chromedriver on the PATH does too):
skipped without them, except in CI (``CI`` set), where it fails instead.
"""

import base64
import contextlib
import functools
import http.server
import io
import json
import os
import shutil
import threading
from pathlib import Path

import nbformat
import pytest

from dlcourse.course import cli, runner, site

SITE_FIXTURES = Path(__file__).parent / "fixtures" / "site"
# Debian's chromium + chromium-driver; GitHub's Ubuntu runners ship Google Chrome and its driver
CHROMIUM = shutil.which("chromium") or shutil.which("google-chrome") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SOLUTION_LINE = "secret_twice_value = x + x"
HIDDEN_LINE = "assert double(-21) == -42"


def _figure_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and "plt.show()" in c.source]


def _pngs(cell) -> list[bytes]:
    return [
        base64.b64decode(o["data"]["image/png"])
        for o in cell.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``dlcourse site`` run once on lesson 02 and the maths-and-figures fixture: (exit code,
    its output, the site folder). The tests below read it; the browser test opens it.

    Run with MPLBACKEND=Agg set, as the suite (root conftest.py) sets it for nbval: the runner's
    kernels must still draw every figure into the executed copies.
    """
    pytest.importorskip(
        "myst_nb", reason="the site extra is not installed: pip install -e '.[site]'"
    )
    lessons = tmp_path_factory.mktemp("lessons")
    shutil.copy(runner.select(["02"])[0].path, lessons)
    shutil.copy(SITE_FIXTURES / "01_maths_and_figures.ipynb", lessons)
    out = tmp_path_factory.mktemp("site")
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()) as said:
        patch.setenv("MPLBACKEND", "Agg")
        code = cli.main(["site", "--lessons-dir", str(lessons), "--out", str(out), "--quiet"])
    return code, said.getvalue(), out


@pytest.fixture
def fixture_run(built) -> Path:
    """The folder of the lessons' executed copies (``dlcourse run``'s layout)."""
    return built[2] / "run"


def test_run_keeps_figures_even_when_the_caller_set_agg(fixture_run):
    nb = nbformat.read(fixture_run / "01_maths_and_figures.ipynb", as_version=4)
    (figure_cell,) = _figure_cells(nb)
    (png,) = _pngs(figure_cell)
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_student_page_stubs_solutions_and_drops_their_outputs(fixture_run):
    executed = nbformat.read(fixture_run / "01_maths_and_figures.ipynb", as_version=4)
    page = site.student_page(executed)
    text = json.dumps(page)
    assert SOLUTION_LINE not in text and HIDDEN_LINE not in text
    assert "raise NotImplementedError()" in text
    roles = {i: (c.metadata.get("nbgrader") or {}) for i, c in enumerate(page.cells)}
    check = next(i for i, m in roles.items() if m.get("grade"))
    assert page.cells[check].outputs == []  # its print came from the instructor's hidden run
    assert "assert double(2) == 4" in page.cells[check].source  # the visible check stays
    assert _pngs(_figure_cells(page)[0])  # ordinary cells keep their outputs
    assert "colab-badge.svg" not in text  # no image from outside
    assert executed.cells[check].outputs  # the instructor's copy is untouched


def test_leak_scan_finds_a_line_split_by_highlighting(tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("<p>nothing here</p>")
    (html / "01_maths_and_figures.html").write_text(
        '<pre><span class="n">secret_twice_value</span> <span class="o">=</span> '
        '<span class="n">x</span> <span class="o">+</span> <span class="n">x</span></pre>'
    )
    secrets = {"01_maths_and_figures": {SOLUTION_LINE}}
    problems = site.find_leaks(html, secrets)
    assert problems == [f"01_maths_and_figures.html: {SOLUTION_LINE!r}"]
    (html / "01_maths_and_figures.html").write_text("<p>x + x</p>")
    assert site.find_leaks(html, secrets) == []
    (html / "searchindex.js").write_text('Search.setIndex({"t": "secret_twice_value = x + x"})')
    assert site.find_leaks(html, secrets) == [f"searchindex.js: {SOLUTION_LINE!r}"]


@pytest.mark.slow
def test_site_command_builds_pages_without_solutions(built):
    code, said, out = built
    assert code == 0, said
    html = out / "html"
    assert "Site of 2 lesson(s) built" in said
    index = (html / "index.html").read_text()
    assert "Maths and figures" in index and "answer=42" in index
    page = (html / "01_maths_and_figures.html").read_text()
    assert "double(21) = 42" in page and "<img" in page
    for path in html.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".js", ".ipynb"}:
            text = site._visible_text(path.read_text(errors="replace"))
            assert "secret_twice_value" not in text and "double(-21)" not in text, path
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()


@pytest.mark.slow
def test_site_build_refuses_pages_with_solutions(tmp_path, monkeypatch, fixture_run):
    # the guard: pages built from the instructor's notebook (solutions in) fail the build
    monkeypatch.setattr(site, "student_page", lambda nb: nb)
    lessons = runner.discover(SITE_FIXTURES)
    with pytest.raises(site.SiteLeak, match=r"01_maths_and_figures\.html: 'secret_twice_value"):
        site.build(lessons, tmp_path / "leaky", run_dir=fixture_run)


def _require_chromium():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    problem = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test, but: {problem}")
        pytest.skip(problem)
    pytest.importorskip(
        "selenium", reason="the site extra is not installed: pip install -e '.[site]'"
    )


@pytest.fixture
def served(tmp_path):
    """Serve a folder on 127.0.0.1; yields a function folder -> base URL."""
    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def chromium(tmp_path):
    _require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,1024",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


_WAIT_FOR_IMAGES = """
const done = arguments[arguments.length - 1];
Promise.all(Array.from(document.images).map(img => img.complete ? null :
    new Promise(r => { img.onload = r; img.onerror = r; })))
  .then(() => done(Array.from(document.images).map(i => [i.currentSrc || i.src, i.naturalWidth])));
"""
_WAIT_FOR_MATHS = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.startup) { done(-1); }
else { MathJax.startup.promise.then(() => done(document.querySelectorAll('mjx-container').length)); }
"""


@pytest.mark.slow
def test_site_in_headless_chromium(built, chromium, served):
    """The FAST site of lesson 02 and the maths fixture, every page opened in Chromium."""
    code, said, out = built
    assert code == 0, said
    executed = nbformat.read(out / "run" / "02_vision_tasks.ipynb", as_version=4)
    figure_cells = _figure_cells(executed)
    assert len(figure_cells) >= 3 and all(_pngs(c) for c in figure_cells)

    html = out / "html"
    base = served(html)
    pages = sorted(p.relative_to(html).as_posix() for p in html.glob("*.html"))
    assert {"index.html", "02_vision_tasks.html", "01_maths_and_figures.html"} <= set(pages)
    images, maths = {}, {}
    for page in pages:
        chromium.get(base + page)
        images[page] = chromium.execute_async_script(_WAIT_FOR_IMAGES)
        maths[page] = chromium.execute_async_script(_WAIT_FOR_MATHS)
        severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], f"{page}: console errors {severe}"
        broken = [src for src, width in images[page] if width == 0]
        assert broken == [], f"{page}: images that did not load: {broken}"
    # every figure of lesson 02 is on its page; the fixture's figure and its maths too
    assert len(images["02_vision_tasks.html"]) >= len(figure_cells)
    assert len(images["01_maths_and_figures.html"]) >= 1
    assert maths["01_maths_and_figures.html"] >= 2  # the display formula and the inline one
    chromium.get(base + "01_maths_and_figures.html")
    chromium.execute_async_script(_WAIT_FOR_MATHS)
    assert (
        chromium.execute_script(
            "return document.querySelectorAll('mjx-container[display=\"true\"] mjx-math').length"
        )
        >= 1
    )
    # Sphinx's search finds a lesson by a word of its text
    chromium.get(base + "search.html?q=sine")
    chromium.implicitly_wait(10)
    hits = chromium.find_elements("css selector", "#search-results ul.search li a")
    assert any("01_maths_and_figures" in a.get_attribute("href") for a in hits)
    # nothing was requested from outside
    urls = []
    for entry in chromium.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    assert any(u.startswith(base) for u in urls), "the performance log recorded no page request"
    # the browser's own pages (chrome://new-tab-page...) are not network requests
    internal = ("data:", "blob:", "about:", "chrome:", "chrome-untrusted:")
    outside = [u for u in urls if not u.startswith(("http://127.0.0.1:", *internal))]
    assert outside == []
