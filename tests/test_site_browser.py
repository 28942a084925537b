"""The course's website in a real browser: headless Chromium opens every page and deck.

The site is built once per test session by the real command, `python3 tasks.py
site`, from the notebooks executed in tiny mode (FER_TINY=1) in a temporary
folder, served by http.server on 127.0.0.1 and opened with Playwright driving
Debian's Chromium (`python3 tasks.py setup` installs it; never `playwright
install`). A page passes when it loads with no JavaScript error, no console
error, no failed request and no request to any host but the local server, and
its images are loaded. A deck must also advance, and a slide's screenshot must
show something.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
STEMS = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]
BUILD_LIMIT_S = 1800  # a hung kernel fails the test instead of using up CI's 90 minutes
ENVIRONMENT = dict(os.environ)  # as the session started, before any test changes it
# Without these, Chromium calls Google's hosts at start (the network here is closed).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str | None:
    """Debian's Chromium (or $FER_CHROMIUM, say a Chrome elsewhere), if installed."""
    given = ENVIRONMENT.get("FER_CHROMIUM")
    if given:
        return given
    found = [shutil.which(name) for name in ("chromium", "chromium-browser")]
    return next((path for path in found if path), None)


def require_browser() -> tuple[object, str]:
    """playwright's sync API and the browser; skip (fail in CI) when either is missing."""
    browser = chromium()
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    if sync_api and browser:
        return sync_api, browser
    why = (
        "no Chromium: run `python3 tasks.py setup` as root on Debian/Ubuntu, or "
        "`apt-get install chromium`, or set FER_CHROMIUM to a Chrome/Chromium binary"
        if not browser
        else "playwright is not installed: run `python3 tasks.py setup`"
    )
    if ENVIRONMENT.get("CI"):
        pytest.fail(f"the browser test must run in CI: {why}")
    pytest.skip(why)


@dataclass
class Visit:
    """What happened while a page loaded: everything that would make a reader wait or fail."""

    url: str
    problems: list[str] = field(default_factory=list)


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


class Browser:
    """One headless Chromium; open() loads a page and records what went wrong."""

    def __init__(self, sync_api: object, executable: str) -> None:
        self._playwright = sync_api.sync_playwright().start()
        self.browser = self._playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 720})

    def open(self, url: str, base: str) -> tuple[object, Visit]:
        visit = Visit(url)
        page = self.context.new_page()

        def route(route: object) -> None:
            # Every request is seen here; one to another host is refused and counted.
            target = route.request.url
            if target.startswith((base, "data:", "blob:", "about:")):
                route.continue_()
            else:
                visit.problems.append(f"request to another host: {target}")
                route.abort()

        page.route("**/*", route)
        page.on("pageerror", lambda error: visit.problems.append(f"JavaScript error: {error}"))
        page.on(
            "console",
            lambda message: (
                message.type == "error" and visit.problems.append(f"console error: {message.text}")
            ),
        )
        page.on(
            "requestfailed",
            lambda request: (
                request.url.startswith(base)
                and visit.problems.append(f"failed: {request.url} ({request.failure})")
            ),
        )
        page.on(
            "response",
            lambda response: (
                response.status >= 400
                and visit.problems.append(f"HTTP {response.status}: {response.url}")
            ),
        )
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")  # MathJax loads its parts after the page
        return page, visit

    def close(self) -> None:
        self.context.close()
        self.browser.close()
        self._playwright.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    sync_api, executable = require_browser()
    opened = Browser(sync_api, executable)
    yield opened
    opened.close()


@dataclass
class Site:
    folder: Path
    base: str
    executed: Path
    synthetic: bool
    seconds: float


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The site from tiny-mode runs of every notebook, by README's command, once a session."""
    require_browser()  # no point executing the series for nothing
    folder = tmp_path_factory.mktemp("course-site")
    executed, out = folder / "executed", folder / "site"
    env = dict(ENVIRONMENT, FER_TINY="1")  # FER2013_DIR as CI gives it: both data modes run
    start = time.perf_counter()
    command = [sys.executable, str(ROOT / "tasks.py"), "site", "--executed", str(executed)]
    try:
        result = subprocess.run(
            [*command, "--out", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_LIMIT_S,
        )
    except subprocess.TimeoutExpired as stopped:
        pytest.fail(f"the site build took over {BUILD_LIMIT_S} s: {stopped.stdout!r}"[-3000:])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    seconds = time.perf_counter() - start
    print(f"site built with FER_TINY=1 in {seconds:.0f} s:", result.stdout.splitlines()[-1])
    from fer_helpers.data import resolve_source

    # A session fixture is set up before conftest's per-test environment, so this sees
    # the FER2013_DIR that the command above saw.
    synthetic = resolve_source() is None
    server, base = serve(out)
    yield Site(out, base, executed, synthetic, seconds)
    server.shutdown()


def assert_clean(visit: Visit) -> None:
    assert not visit.problems, f"{visit.url}:\n" + "\n".join(visit.problems)


def assert_images_loaded(page: object, at_least: int) -> None:
    sizes = page.eval_on_selector_all(
        "img", "images => images.map(i => [i.complete, i.naturalWidth, i.src.slice(0, 40)])"
    )
    assert len(sizes) >= at_least, f"{len(sizes)} images, expected at least {at_least}"
    broken = [src for complete, width, src in sizes if not (complete and width > 0)]
    assert not broken, f"images that did not load: {broken}"


def figures_in(site: Site, stem: str) -> int:
    from fer_helpers.course.site import describe

    return describe(site.executed / f"{stem}.ipynb")[1].images


def has_math(site: Site, stem: str) -> bool:
    import nbformat

    notebook = nbformat.read(site.executed / f"{stem}.ipynb", as_version=4)
    return any(c.cell_type == "markdown" and "$" in c.source for c in notebook.cells)


MATHJAX_DONE = "!window.MathJax || (MathJax.isReady && MathJax.Hub.queue.pending === 0)"


# --- the checks themselves fail on a bad page ------------------------------------------------


def test_the_checks_catch_a_cdn_a_script_error_and_a_broken_image(browser, tmp_path):
    (tmp_path / "bad.html").write_text(
        "<!DOCTYPE html><html><head><link rel='icon' href='data:,'>"
        "<script src='https://cdn.jsdelivr.net/npm/reveal.js@5/dist/reveal.js'></script>"
        "</head><body><img src='missing.png'><script>undefinedFunction();</script></body></html>"
    )
    server, base = serve(tmp_path)
    try:
        page, visit = browser.open(base + "bad.html", base)
        report = "\n".join(visit.problems)
        assert "request to another host: https://cdn.jsdelivr.net" in report
        assert "JavaScript error" in report and "undefinedFunction" in report
        assert "HTTP 404" in report and "missing.png" in report
        with pytest.raises(AssertionError, match="did not load"):
            assert_images_loaded(page, at_least=1)
        page.close()
    finally:
        server.shutdown()


# --- the built site ---------------------------------------------------------------------------


def test_the_index_links_every_page_and_deck(browser, built_site):
    page, visit = browser.open(built_site.base + "index.html", built_site.base)
    assert_clean(visit)
    links = set(page.eval_on_selector_all("a", "links => links.map(a => a.getAttribute('href'))"))
    for stem in STEMS:
        assert f"{stem}.html" in links and f"slides/{stem}.slides.html" in links, stem
    banner = page.inner_text("body")
    assert "FER_TINY: the notebooks ran on a few images per class" in banner
    assert ("SYNTHETIC DATA" in banner) == built_site.synthetic
    page.close()


@pytest.mark.parametrize("stem", STEMS)
def test_each_page_loads_cleanly_with_its_figures(browser, built_site, stem):
    page, visit = browser.open(f"{built_site.base}{stem}.html", built_site.base)
    assert_clean(visit)
    assert_images_loaded(page, at_least=min(1, figures_in(built_site, stem)))
    assert page.inner_text("h1").startswith(stem[:2])
    if has_math(built_site, stem):
        page.wait_for_function(MATHJAX_DONE)
        assert page.eval_on_selector_all(".MathJax, .MathJax_Display", "m => m.length") > 0
    page.close()


@pytest.mark.parametrize("stem", STEMS)
def test_each_deck_loads_cleanly_and_advances(browser, built_site, stem):
    page, visit = browser.open(f"{built_site.base}slides/{stem}.slides.html", built_site.base)
    page.wait_for_function("window.Reveal && Reveal.isReady()")
    assert page.evaluate("Reveal.getTotalSlides()") > 1
    before = page.evaluate("JSON.stringify(Reveal.getIndices())")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "before => JSON.stringify(Reveal.getIndices()) !== before", arg=before, timeout=5000
    )
    page.keyboard.press("ArrowRight")
    assert_clean(visit)
    assert_images_loaded(page, at_least=0)
    page.close()


def test_a_slide_with_a_figure_is_not_blank(browser, built_site, tmp_path_factory):
    """The first slide with a figure, every fragment shown: a screenshot with real contrast."""
    stem = next(s for s in STEMS if figures_in(built_site, s))
    page, visit = browser.open(f"{built_site.base}slides/{stem}.slides.html", built_site.base)
    page.wait_for_function("window.Reveal && Reveal.isReady()")
    shown = page.evaluate(
        """() => {
        const slide = [...document.querySelectorAll('.slides section')]
            .find(s => !s.querySelector('section') && s.querySelector('img'));
        const at = Reveal.getIndices(slide);
        Reveal.slide(at.h, at.v);
        while (Reveal.nextFragment()) {}
        return Reveal.getCurrentSlide() === slide;
    }"""
    )
    assert shown
    page.wait_for_timeout(300)  # let the last fragment fade in
    path = tmp_path_factory.mktemp("screenshots") / f"{stem}.png"
    page.screenshot(path=str(path))
    assert_clean(visit)
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    inked = (pixels < 200).mean()  # dark pixels: text, axes, faces
    print(f"screenshot {path}: std {pixels.std():.1f}, {inked:.1%} dark pixels")
    assert pixels.shape == (720, 1280)
    assert pixels.std() > 20 and inked > 0.02, f"a blank-looking slide: {path}"
    # a slide taller than the deck scrolls (the figure's lower part is not lost)
    tall = page.evaluate("Reveal.getCurrentSlide().scrollHeight > Reveal.getConfig().height")
    if tall:
        page.mouse.move(640, 400)
        page.mouse.wheel(0, 300)
        page.wait_for_function("Reveal.getCurrentSlide().scrollTop > 0", timeout=5000)
    page.close()
