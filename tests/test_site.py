"""The course's website without a browser: the catalogue, offline pages, static outputs.

A few small notebooks made here, with outputs written by hand, go through the
real build (nbconvert), so these tests need no kernel; tests/test_site_browser.py
opens the pages built from the executed series in Chromium.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from fer_helpers import faces
from fer_helpers.course import catalog, demo, offline, site
from fer_helpers.data import to_model_input
from fer_helpers.synthetic import SYNTHETIC_NOTICE

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FIGURE_ALT = "A red square, the 'figure' of a small test lesson: nothing to notice"


def png(size: int = 8) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def progress_widget(model: str, value: float, total: float) -> tuple[dict, dict]:
    """A tqdm bar's output and widget state as Jupyter stores them."""
    ids = {name: f"{model}-{name}" for name in ("left", "bar", "right")}
    state = {
        model: {
            "model_name": "HBoxModel",
            "state": {"children": [f"IPY_MODEL_{i}" for i in ids.values()]},
        },
        ids["left"]: {"model_name": "HTMLModel", "state": {"value": "Epoch\u20071/2:\u2007100%"}},
        ids["bar"]: {"model_name": "FloatProgressModel", "state": {"value": value, "max": total}},
        ids["right"]: {
            "model_name": "HTMLModel",
            "state": {"value": "\u200781/81\u2007[00:03&lt;00:00]"},
        },
    }
    output = new_output(
        "display_data",
        data={
            site.WIDGET_VIEW: {"model_id": model, "version_major": 2, "version_minor": 0},
            "text/plain": "Epoch 1/2:   0%|          | 0/81",
        },
    )
    return output, state


def executed_notebook(
    title: str = "# 01 · A lesson", printed: str = "", alt: str | None = FIGURE_ALT
) -> nbformat.NotebookNode:
    """A small notebook with the outputs an executed one has: text, a figure, math, a widget.

    The figure's cell describes it in an `# alt:` comment, unless alt is None."""
    bar, state = progress_widget("m1", 81, 81)
    explorer = new_output(
        "display_data",
        data={
            site.WIDGET_VIEW: {"model_id": "m2"},
            "text/plain": "HBox(children=(FloatSlider(...)))",
        },
    )
    notebook = new_notebook(
        cells=[
            new_markdown_cell(
                f"{title}\n\nSoftmax: $\\sigma(o)_i = e^{{o_i}} / \\sum_j e^{{o_j}}$."
            ),
            new_code_cell(
                "print('hello')",
                outputs=[new_output("stream", name="stdout", text=f"{printed}\nhello\n")],
            ),
            new_markdown_cell("## A figure"),
            new_code_cell(
                (f"# alt: {alt}\n" if alt else "") + "plot()",
                outputs=[new_output("display_data", data={"image/png": png()})],
            ),
            new_code_cell("fit()", outputs=[bar]),
            new_code_cell("explore()", outputs=[explorer]),
            new_code_cell(
                "netron.widget(address)",
                outputs=[
                    new_output(
                        "display_data",
                        data={"text/html": '<iframe src="http://localhost:8080"></iframe>'},
                    )
                ],
            ),
        ]
    )
    notebook.metadata["widgets"] = {site.WIDGET_STATE: {"state": state, "version_major": 2}}
    return notebook


def write_series(folder: Path, executed: Path, printed: str = "") -> list[Path]:
    """Two source notebooks (without outputs) and their executed copies; 99's figure has no
    alt text."""
    sources = []
    for stem, title, alt in (
        ("01_setup_and_data", "# 01 · Setup", FIGURE_ALT),
        ("99_extra", "# 99 · Extra", None),
    ):
        ran = executed_notebook(title, printed, alt)
        clean = json.loads(json.dumps(ran))
        for cell in clean["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"] = []
        folder.mkdir(parents=True, exist_ok=True)
        executed.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbformat.from_dict(clean), folder / f"{stem}.ipynb")
        nbformat.write(ran, executed / f"{stem}.ipynb")
        sources.append(folder / f"{stem}.ipynb")
    return sources


# --- the catalogue -------------------------------------------------------------------------


def test_every_notebook_is_in_the_catalogue():
    assert NOTEBOOKS, "no notebooks found"
    missing = [p.stem for p in NOTEBOOKS if catalog.lesson(p.stem) is None]
    assert not missing, f"add to fer_helpers/course/catalog.py (what they teach, time): {missing}"
    assert [entry.stem for entry in catalog.LESSONS] == sorted(e.stem for e in catalog.LESSONS)


def test_readme_table_says_what_the_catalogue_says():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\d\d_\w+)` \| (.+?) \|", readme, re.MULTILINE)
    assert rows, "README has no table of notebooks"
    for stem, teaches in rows:
        entry = catalog.lesson(stem)
        assert entry is not None, f"README lists {stem}, the catalogue does not"
        assert teaches == entry.teaches, f"README and course/catalog.py differ on {stem}"


def test_times_read_as_people_write_them():
    assert catalog.Lesson("x", "", 61).full_time() == "61 s"
    assert catalog.Lesson("x", "", 17.8 * 60).full_time() == "17.8 min"
    assert catalog.Lesson("x", "", 31, "01–03 together").full_time() == "31 s (01–03 together)"
    assert catalog.Lesson("x", "", None, "in 01's time").full_time() == "in 01's time"
    table = catalog.markdown_table(with_times=True).splitlines()
    assert len(table) == 2 + len(catalog.LESSONS) and table[0].count("|") == 4


# --- what a page would fetch from the internet ---------------------------------------------


@pytest.mark.parametrize(
    "html",
    [
        '<script src="https://cdn.jsdelivr.net/npm/reveal.js/dist/reveal.js"></script>',
        '<link rel="stylesheet" href="//unpkg.com/reveal.js/dist/reveal.css">',
        "<script type=\"module\">import mermaid from 'https://cdnjs.cloudflare.com/m.mjs';</script>",
        "<script>var src = 'https://unpkg.com/@jupyter-widgets/html-manager@*/dist/embed.js';</script>",
        "<style>@import url(https://fonts.googleapis.com/css?family=Lato);</style>",
        '<img src="http://example.com/face.png">',
        '<iframe src="https://netron.app"></iframe>',
    ],
)
def test_remote_references_are_found(html):
    assert offline.remote_references(f"<html><head>{html}</head></html>")


def test_local_references_and_links_are_not_remote():
    html = """<a href="https://netron.app">netron</a>
    <script src="assets/mathjax/MathJax.js?config=x"></script>
    <link rel="icon" href="data:,"><img src="data:image/png;base64,AAAA">
    <iframe src="http://localhost:8080"></iframe><script src="http://127.0.0.1:9/x.js"></script>
    <script>var important = 1; // see https://revealjs.com</script>"""
    assert offline.remote_references(html) == []


def test_stock_nbconvert_pages_would_load_from_cdns():
    """The reason for offline.py: nbconvert's own templates fetch reveal.js and more."""
    from nbconvert import SlidesExporter

    deck, _ = SlidesExporter().from_notebook_node(executed_notebook())
    assert any("reveal.js" in url for url in offline.remote_references(deck))


def test_a_page_that_would_load_from_the_internet_is_not_written(tmp_path):
    with pytest.raises(ValueError, match="cdn.example"):
        site.write_checked(
            tmp_path / "bad.html", '<script src="https://cdn.example/x.js"></script>'
        )
    assert not (tmp_path / "bad.html").exists()


# --- outputs on a static page ---------------------------------------------------------------


def test_widgets_show_their_last_state_and_live_views_a_note():
    notebook = site.static_outputs(executed_notebook())
    texts = [
        output.data.get("text/plain", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "display_data"
    ]
    assert "widgets" not in notebook.metadata
    assert "Epoch 1/2: 100% ██████████  81/81 [00:03<00:00]" in texts
    assert any("interactive widget" in text for text in texts)
    assert any("live view (http://localhost:8080)" in text for text in texts)
    assert not any(
        site.WIDGET_VIEW in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", [])
    )


def test_a_half_finished_bar_shows_how_far_it_got():
    output, state = progress_widget("m", 20, 80)
    text = site.widget_text(output["data"][site.WIDGET_VIEW], state)
    assert "██░░░░░░░░" in text  # 2 of 10 blocks for 25%


def test_untagged_notebooks_get_a_slide_per_section_and_tags_win():
    notebook = executed_notebook()
    tagged = site.with_slide_tags(notebook)
    types = [cell.metadata["slideshow"]["slide_type"] for cell in tagged.cells]
    assert types == ["slide", "-", "slide", "-", "-", "-", "-"]
    notebook.cells[1].metadata["slideshow"] = {"slide_type": "fragment"}
    assert site.with_slide_tags(notebook) is notebook


def test_stale_executed_copies_are_found(tmp_path):
    sources = write_series(tmp_path / "notebooks", tmp_path / "executed")
    assert site.stale_notebooks(sources, tmp_path / "executed") == []
    (tmp_path / "executed" / "99_extra.ipynb").unlink()
    assert site.stale_notebooks(sources, tmp_path / "executed") == [sources[1]]
    changed = nbformat.read(sources[0], as_version=4)
    changed.cells[1].source = "print('changed')"
    nbformat.write(changed, sources[0])
    assert site.stale_notebooks(sources, tmp_path / "executed") == sources
    failed = executed_notebook()
    failed.cells[1].outputs.append(new_output("error", ename="E", evalue="", traceback=[]))
    nbformat.write(failed, tmp_path / "executed" / "99_extra.ipynb")
    assert site.is_stale(sources[1], tmp_path / "executed" / "99_extra.ipynb")


# --- the build ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> site.Built:
    folder = tmp_path_factory.mktemp("course")
    printed = f"{SYNTHETIC_NOTICE}\nData: synthetic, layout: generated in memory"
    sources = write_series(folder / "notebooks", folder / "executed", printed=printed)
    source = nbformat.read(sources[0], as_version=4)
    source.cells[2].metadata["slideshow"] = {"slide_type": "subslide"}  # tagged after the run
    nbformat.write(source, sources[0])
    for leftover in ("50_old.html", "slides/50_old.slides.html", "assets/reveal.js/dist/x.css"):
        (folder / "site" / leftover).parent.mkdir(parents=True, exist_ok=True)
        (folder / "site" / leftover).write_text("from an earlier build")
    built = site.build_site(sources, folder / "executed", folder / "site")
    if built.demo is None:  # only without npm (and no cache in build/vendor/)
        if os.environ.get("CI"):
            pytest.fail(f"the live demo must be built in CI: {built.notes}")
        pytest.skip(f"no live demo: {built.notes}")
    return built


def test_the_build_writes_an_index_a_page_and_a_deck_per_notebook(built):
    names = sorted(p.relative_to(built.site).as_posix() for p in built.site.glob("**/*.html"))
    assert [n for n in names if not n.startswith("assets/")] == [
        "01_setup_and_data.html",
        "99_extra.html",
        "demo.html",
        "index.html",
        "slides/01_setup_and_data.slides.html",
        "slides/99_extra.slides.html",
    ]
    assert (built.site / "assets/reveal.js/dist/reveal.js").is_file()
    assert (built.site / "assets/mathjax/MathJax.js").is_file()
    assert not (built.site / "assets/reveal.js/dist/x.css").exists()  # earlier builds are gone
    assert set(built.seconds) >= {"assets", "total", "01_setup_and_data", "99_extra"}


def test_every_built_file_loads_only_local_files(built):
    for path in built.site.glob("**/*.html"):
        if "assets" not in path.parts:
            assert offline.remote_references(path.read_text()) == [], path.name
    for path in (built.site / "assets").glob("**/*.css"):
        assert offline.remote_references(f"<style>{path.read_text()}</style>") == [], path


def test_every_local_file_a_page_loads_is_there(built):
    for path in [
        built.site / "index.html",
        *built.site.glob("*.html"),
        *built.site.glob("slides/*.html"),
    ]:
        for url in offline.loaded_urls(path.read_text()):
            if url.startswith(("data:", "http://localhost")):
                continue
            target = (path.parent / url.split("?")[0]).resolve()
            assert target.is_file(), f"{path.name} loads {url}, which is not in the site"


def test_the_index_lists_every_notebook_with_its_catalogue_entry(built):
    index = (built.site / "index.html").read_text()
    entry = catalog.lesson("01_setup_and_data")
    assert '<a href="01_setup_and_data.html">01 · Setup</a>' in index
    assert '<a href="slides/99_extra.slides.html">slides</a>' in index
    assert entry.full_time() in index
    assert "where the data come from" in index
    assert "not in the catalogue" in index  # 99_extra
    assert "SYNTHETIC DATA: the notebooks ran on generated cartoon faces" in index
    assert "FER_TINY:" not in index


def test_the_banner_names_the_notebooks_when_the_data_modes_differ():
    def page(stem: str, loaded: bool, synthetic: bool, tiny: bool) -> site.Page:
        return site.Page(Path(f"{stem}.ipynb"), stem, loaded, synthetic, tiny, 0, None)

    pages = [page("01_a", True, True, True), page("02_b", False, False, False)]
    banner = site.data_banner(pages)
    assert "SYNTHETIC DATA: the notebooks" in banner and "FER_TINY: the notebooks" in banner
    pages += [page("03_c", True, False, True), page("06_d", True, True, True)]
    banner = site.data_banner(pages)
    assert "SYNTHETIC DATA: notebooks 01 and 06 ran" in banner
    assert "FER_TINY: the notebooks ran" in banner
    assert site.data_banner([page("07_e", True, False, False)]) == ""


def test_pages_have_navigation_and_decks_the_projector_settings(built):
    page = (built.site / "01_setup_and_data.html").read_text()
    assert '<a href="99_extra.html">99 →</a>' in page
    assert "SYNTHETIC DATA: this notebook ran on" in page
    assert "data:image/png;base64," in page
    deck = (built.site / "slides/01_setup_and_data.slides.html").read_text()
    assert "width: 1280, height: 720" in deck and 'slideNumber: "c/t"' in deck
    assert "../assets/reveal.js/dist/theme/white.css" in deck
    assert "--jp-content-font-size1: 26px" in deck
    # the subslide tag given after the run reached the deck: one <section> per slide
    assert deck.count("<section") == 3


def figure_alts(page: str) -> list[str]:
    """The alt text of every figure (an <img> of a data: PNG) on a page or deck."""
    images = re.findall(r"<img [^>]*src=\"data:image/png[^>]*>", page)
    return [html.unescape(re.search(r'alt="([^"]*)"', image)[1]) for image in images]


def test_figures_carry_the_alt_text_their_cells_give(built):
    for name in ("01_setup_and_data.html", "slides/01_setup_and_data.slides.html"):
        assert figure_alts((built.site / name).read_text()) == [FIGURE_ALT], name
    # a figure whose cell gives none says where it comes from, on the page and in the deck
    for name in ("99_extra.html", "slides/99_extra.slides.html"):
        page = (built.site / name).read_text()
        assert figure_alts(page) == [
            "A figure from notebook 99_extra, cell 3 (no description was written)"
        ], name
        assert "No description has been provided" not in page  # nbconvert's own


# --- the live demo (course/demo.py) -------------------------------------------------------


def test_the_demo_page_is_built_with_its_runtime_and_model(built):
    page = (built.site / "demo.html").read_text()
    assert offline.remote_references(page) == []
    runtime = built.site / demo.RUNTIME_ASSETS
    for name in (demo.ORT_SCRIPT, demo.ORT_EMBEDDED, "LICENSE.txt", "package.json"):
        assert (runtime / name).is_file(), name
    assert json.loads((runtime / "package.json").read_text())["version"] == demo.ORT_VERSION
    assert "MIT" in (runtime / "LICENSE.txt").read_text()
    embedded = (runtime / demo.ORT_EMBEDDED).read_text()
    assert embedded.startswith("// ") and "window.ferOrtEmbedded" in embedded
    loaded = offline.loaded_urls(page)
    assert f"{demo.RUNTIME_ASSETS}/{demo.ORT_SCRIPT}" in loaded
    assert f"{demo.DEMO_ASSETS}/model.js" in loaded and f"{demo.DEMO_ASSETS}/demo.js" in loaded
    for url in loaded:
        assert url.startswith("data:") or (built.site / url).is_file(), url
    # the model the page runs, its classes and its normalisation, from the checkpoint
    model = (built.site / demo.DEMO_ASSETS / "model.js").read_text()
    config = json.loads(model.split("window.ferModel = ", 1)[1].split(";\n", 1)[0])
    assert config["name"] == built.demo.model in demo.MODELS
    assert config["classNames"] == built.demo.class_names
    assert (config["scale"], config["mean"], config["std"]) == ("u8/127.5-1", 0.5, 0.5)
    for i, name in enumerate(config["classNames"]):  # a bar per class, labelled
        assert f'id="fer-class-{i}" aria-label="{name}: no picture yet"' in page
    assert '<a href="demo.html">Live demo</a>' in (built.site / "index.html").read_text()


def test_the_7_class_model_is_preferred_and_exports():
    """best-7class exports to ONNX (the page falls back to si100-3class only if not)."""
    from fer_helpers.pretrained import is_shipped

    if not is_shipped("best-7class"):
        pytest.skip("best-7class is not in this copy of the package")
    name, path, info, note = demo.choose_model()
    assert (name, note) == ("best-7class", "") and len(info["class_names"]) == 7
    assert path.stat().st_size > 1e6


def test_a_model_that_does_not_export_falls_back_to_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "MODELS", ("no-such-model", "si100-3class"))
    name, _, info, note = demo.choose_model(tmp_path)
    assert name == "si100-3class" and len(info["class_names"]) == 3
    assert "no-such-model did not export" in note


def test_a_tarball_with_another_checksum_is_refused(tmp_path, monkeypatch):
    if not shutil.which("npm"):
        pytest.skip("no npm")
    cached = demo.fetch_runtime()  # from the cache the build filled; or npm's own cache
    monkeypatch.setattr(demo, "ORT_INTEGRITY", "sha512-not-it")
    with pytest.raises(demo.RuntimeMissing, match="refusing"):
        demo.fetch_runtime(tmp_path)
    assert not demo.runtime_dir(tmp_path).exists() and cached.is_dir()


def test_the_page_preprocesses_as_fer_helpers_does():
    """The page's JavaScript (run by node) against faces.to_gray and crop_face's cv2.resize."""
    import subprocess

    import numpy as np

    if not shutil.which("node"):
        pytest.skip("no node to run the page's JavaScript")
    rng = np.random.default_rng(0)
    sides = [1, 23, 47, 48, 49, 64, 96, 100, 143, 288, 333]
    squares = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for side in sides]
    script = (
        demo.PREPROCESS_JS
        + """
    const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
    console.log(JSON.stringify(input.map(({ side, rgb }) => {
      const rgba = new Uint8Array(4 * side * side);
      for (let i = 0; i < side * side; i++) rgba.set([...rgb.slice(3 * i, 3 * i + 3), 255], 4 * i);
      const gray = ferGray(rgba, side * side);
      return [Array.from(ferResize(gray, side, 48)), Array.from(ferModelInput(gray, 1))];
    })));
    """
    )
    data = json.dumps([{"side": s.shape[0], "rgb": s.ravel().tolist()} for s in squares])
    done = subprocess.run(
        ["node", "-e", script], input=data, capture_output=True, text=True, check=True
    )
    for square, (small, normalised) in zip(squares, json.loads(done.stdout)):
        gray = faces.to_gray(square)
        side = gray.shape[0]
        expected = faces.crop_face(gray, (0, 0, side, side))
        assert np.array_equal(np.reshape(small, (48, 48)), expected), side
        x = to_model_input(torch.from_numpy(gray)[None, None], channels=1).numpy().ravel()
        assert np.array_equal(np.float32(normalised), x), side
