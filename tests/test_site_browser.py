"""The course's website in a real browser: headless Chromium opens every page and deck.

The site is built once per test session by the real command, `python3 tasks.py
site`, from the notebooks executed in tiny mode (FER_TINY=1) in a temporary
folder, served by http.server on 127.0.0.1 and opened with Playwright driving
Debian's Chromium (`python3 tasks.py setup` installs it; never `playwright
install`). A page passes when it loads with no JavaScript error, no console
error, no failed request and no request to any host but the local server, and
its images are loaded. A deck must also advance, and a slide's screenshot must
show something.

The live demo (demo.html, fer_helpers/course/demo.py) is driven with Chromium's fake
camera playing a synthetic face (a .y4m video made here) and with an uploaded photo of
a synthetic face (a PNG made here, never FER2013): the 48x48 input the page computes
must be fer_helpers' own, and its probabilities those of fer_helpers.faces.classify_faces
on that input.
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

    def __init__(
        self, sync_api: object, executable: str, args: tuple[str, ...] = (), shared: object = None
    ) -> None:
        # One Playwright per process: a second Chromium (other flags) shares the first's.
        self._owned = shared is None
        self._playwright = sync_api.sync_playwright().start() if self._owned else shared
        self.browser = self._playwright.chromium.launch(
            executable_path=executable, args=[*CHROMIUM_ARGS, *args], headless=True
        )
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 720})

    def open(self, url: str, base: str) -> tuple[object, Visit]:
        visit = Visit(url)
        page = self.context.new_page()

        def route(route: object) -> None:
            # Every request is seen here; one to another host is refused and counted.
            target = route.request.url
            if target.startswith((base, "data:", "blob:", "about:", "file:")):
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
        if self._owned:
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


# --- the live demo -----------------------------------------------------------------------------

DEMO_TOLERANCE = 1e-3  # the page's probabilities against fer_helpers', same 48x48 input
VIDEO_SIZE = (640, 480)


def synthetic_face(label: int = 3) -> np.ndarray:
    """One generated 48x48 face (happy by default) from fer_helpers.synthetic."""
    from fer_helpers.synthetic import generate_faces

    counts = [0] * 7
    counts[label] = 1
    return generate_faces(counts, seed=2024)[0][0]


def guide_square(width: int, height: int) -> tuple[int, int, int]:
    from fer_helpers.course.demo import GUIDE_FRACTION

    side = round(GUIDE_FRACTION * min(width, height))
    return (width - side) // 2, (height - side) // 2, side


def camera_frame() -> np.ndarray:
    """A gray 640x480 frame with the synthetic face filling the demo's guide box."""
    import cv2

    width, height = VIDEO_SIZE
    x, y, side = guide_square(width, height)
    frame = np.full((height, width), 90, dtype=np.uint8)
    frame[y : y + side, x : x + side] = cv2.resize(
        synthetic_face(), (side, side), interpolation=cv2.INTER_LINEAR
    )
    return frame


def write_y4m(path: Path, gray: np.ndarray, frames: int = 10) -> Path:
    """A video for Chromium's fake camera: gray as BT.601 limited-range Y, neutral chroma."""
    height, width = gray.shape
    luma = np.rint(16 + gray.astype(float) * 219 / 255).astype(np.uint8).tobytes()
    chroma = bytes([128]) * (width // 2 * height // 2)
    with open(path, "wb") as file:
        file.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            file.write(b"FRAME\n" + luma + chroma + chroma)
    return path


def write_photo(path: Path) -> Path:
    """A colour 320x240 PNG: a tinted synthetic face in its centre square, colour around it."""
    import cv2

    face = cv2.resize(synthetic_face(), (240, 240), interpolation=cv2.INTER_LINEAR)
    rgb = np.zeros((240, 320, 3), dtype=np.uint8)
    rgb[:] = (30, 160, 220)
    tint = np.array([1.0, 0.85, 0.7])  # unequal channels: the gray weights matter
    rgb[:, 40:280] = np.clip(face[..., None] * tint, 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


@dataclass
class DemoSite:
    folder: Path
    base: str
    video: Path
    photo: Path


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    """demo.html alone, written by demo.write_demo as the site build writes it, served."""
    require_browser()
    from fer_helpers.course import demo, site

    folder = tmp_path_factory.mktemp("demo")
    try:
        demo.write_demo(folder / "site", site.PAGE_CSS, write=site.write_checked)
    except demo.RuntimeMissing as missing:
        if ENVIRONMENT.get("CI"):
            pytest.fail(f"the live demo must be built in CI: {missing}")
        pytest.skip(f"no live demo: {missing}")
    video = write_y4m(folder / "face.y4m", camera_frame())
    photo = write_photo(folder / "face.png")
    server, base = serve(folder / "site")
    yield DemoSite(folder / "site", base, video, photo)
    server.shutdown()


@pytest.fixture(scope="module")
def camera_browser(browser: Browser, demo_site: DemoSite) -> Iterator[Browser]:
    """A Chromium whose camera (allowed without asking) plays the synthetic face video."""
    sync_api, executable = require_browser()
    fake = (
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={demo_site.video}",
    )
    opened = Browser(sync_api, executable, fake, shared=browser._playwright)
    yield opened
    opened.close()


def open_demo(browser: Browser, url: str, base: str) -> tuple[object, Visit]:
    page, visit = browser.open(url, base)
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)  # runtime and model
    return page, visit


def page_result(page: object) -> dict:
    """The page's last input (48x48 bytes), scores and probabilities, read at one moment."""
    import base64
    import json

    raw = page.evaluate("() => ({...document.getElementById('fer-result').dataset})")
    pixels = np.frombuffer(base64.b64decode(raw["input"]), dtype=np.uint8).reshape(48, 48).copy()
    return {
        "input": pixels,
        "probabilities": np.array(json.loads(raw["probabilities"])),
        "source": raw["source"],
        "model": page.evaluate("window.ferModel.name"),
    }


def fer_helpers_probabilities(model_name: str, pixels: np.ndarray) -> np.ndarray:
    from fer_helpers.faces import classify_faces
    from fer_helpers.pretrained import load_pretrained

    model, _ = load_pretrained(model_name)
    return classify_faces(model, pixels[None])[0]


def shown_percentages(page: object) -> list[str]:
    return page.eval_on_selector_all("#fer-bars .fer-value", "v => v.map(e => e.textContent)")


def test_the_demo_reads_an_uploaded_photo_as_fer_helpers_does(camera_browser, demo_site):
    from fer_helpers import faces

    page, visit = open_demo(camera_browser, demo_site.base + "demo.html", demo_site.base)
    page.set_input_files("#fer-photo", str(demo_site.photo))
    page.wait_for_function("document.getElementById('fer-result').dataset.source === 'photo'")
    result = page_result(page)
    # fer_helpers on the same file: its centred square, as faces.fit_face crops without a face
    gray = faces.to_gray(faces.load_photo(demo_site.photo))
    rows, columns = gray.shape
    side = min(rows, columns)
    expected = faces.crop_face(gray, ((columns - side) // 2, (rows - side) // 2, side, side))
    assert np.array_equal(result["input"], expected), "the page's 48x48 differs"
    ours = fer_helpers_probabilities(result["model"], expected)
    difference = np.abs(result["probabilities"] - ours).max()
    print(f"photo: {result['model']}, page vs fer_helpers: max difference {difference:.2e}")
    assert difference < DEMO_TOLERANCE
    # the bars say it, readably: a percentage per class, the most likely one marked
    assert shown_percentages(page) == [f"{round(100 * p)}%" for p in result["probabilities"]]
    top = page.get_attribute("#fer-bars .fer-top", "id")
    assert top == f"fer-class-{int(result['probabilities'].argmax())}"
    assert page.inner_text("#fer-summary").startswith("Most likely: ")
    assert "the chosen photo" in page.get_attribute("#fer-picture", "alt")
    assert_clean(visit)
    page.close()


def test_the_demo_reads_the_camera_in_the_guide_box(camera_browser, demo_site):
    import cv2

    from fer_helpers import faces

    page, visit = open_demo(camera_browser, demo_site.base + "demo.html", demo_site.base)
    page.keyboard.press("c")  # the keyboard starts the camera
    page.wait_for_function(
        "(() => { const r = document.getElementById('fer-result').dataset;"
        " return r.source === 'camera' && Number(r.count) >= 3; })()",
        timeout=60_000,
    )
    assert page.get_attribute("#fer-camera", "aria-pressed") == "true"
    result = page_result(page)
    # same input, same probabilities
    ours = fer_helpers_probabilities(result["model"], result["input"])
    difference = np.abs(result["probabilities"] - ours).max()
    # and the input is the guide box of the frame the camera played, as fer_helpers crops it
    # (the video's YUV to RGB conversion moves a pixel by a level or two)
    x, y, side = guide_square(*VIDEO_SIZE)
    expected = faces.crop_face(camera_frame(), (x, y, side, side))
    levels = np.abs(result["input"].astype(int) - expected.astype(int))
    from_frame = fer_helpers_probabilities(result["model"], expected)
    from_frame = np.abs(result["probabilities"] - from_frame)
    print(
        f"camera: page vs fer_helpers on the page's input {difference:.2e}; input vs the "
        f"frame's crop: mean {levels.mean():.2f}, max {levels.max()} levels; probabilities "
        f"from the frame's crop differ by {from_frame.max():.2e}"
    )
    assert difference < DEMO_TOLERANCE
    assert levels.mean() < 3, "the page did not read the guide box"
    assert (
        cv2.matchTemplate(
            result["input"].astype(np.float32), expected.astype(np.float32), cv2.TM_CCOEFF_NORMED
        )[0, 0]
        > 0.98
    )
    assert page.is_visible("#fer-guide")
    page.keyboard.press("c")  # and stops it
    page.wait_for_function("document.getElementById('fer-camera').ariaPressed === 'false'")
    assert_clean(visit)
    page.close()


def test_the_demo_works_opened_from_disk(camera_browser, demo_site):
    """file://, as README says to open the site (a USB stick): no fetch, all from <script>s."""
    url = (demo_site.folder / "demo.html").as_uri()
    page, visit = open_demo(camera_browser, url, "file://")
    page.set_input_files("#fer-photo", str(demo_site.photo))
    page.wait_for_function("document.getElementById('fer-result').dataset.source === 'photo'")
    result = page_result(page)
    ours = fer_helpers_probabilities(result["model"], result["input"])
    assert np.abs(result["probabilities"] - ours).max() < DEMO_TOLERANCE
    assert_clean(visit)
    page.close()


def test_the_demo_is_usable_from_the_keyboard(camera_browser, demo_site):
    page, visit = open_demo(camera_browser, demo_site.base + "demo.html", demo_site.base)
    focused = []
    for _ in range(4):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id"))
    assert "fer-camera" in focused and "fer-photo" in focused
    labels = page.eval_on_selector_all("#fer-bars li", "rows => rows.map(r => r.ariaLabel)")
    names = page.evaluate("window.ferModel.classNames")
    assert len(labels) == len(names) and all(label.startswith(n) for label, n in zip(labels, names))
    assert page.get_attribute("#fer-input", "aria-label")
    assert_clean(visit)
    page.close()


def test_the_built_site_has_the_demo_and_links_it(browser, built_site):
    """The real build (`tasks.py site`) writes demo.html; it loads cleanly, runtime and all."""
    page, visit = browser.open(built_site.base + "index.html", built_site.base)
    assert page.locator("a[href='demo.html']").count() == 1
    page.close()
    page, visit = open_demo(browser, built_site.base + "demo.html", built_site.base)
    assert page.inner_text("#fer-status").startswith("Ready")
    assert_clean(visit)
    page.close()
