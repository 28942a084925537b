"""The course as a website: one HTML page and one slide deck per executed notebook.

    python3 tasks.py site        # build/site/index.html, NN_*.html, slides/NN_*.slides.html
                                 # and demo.html, the live demo (demo.py)

The pages come from the executed notebooks (build/notebooks/, what `python3
tasks.py course` writes) through nbconvert: the lab template for reading, the
reveal.js template for the projector. Both are adjusted here so that a page
loads nothing from the internet (see offline.py) and a deck reads from the back
of a room: 16:9 at 1280x720, large fonts, slide numbers, tall slides scroll.

Interactive widgets need a running kernel, so a page shows what they showed
last instead: a progress bar's final line, or a note to open the notebook.

Every figure carries alt text, written in the cell that draws it as a comment the
learner reads like any other (see alt_texts):

    # alt: Training and validation loss per epoch, falling together at first; the
    #      validation loss then flattens and turns up while the training loss falls.
    fig = plots.training_curves(history)

A cell with several figures has an `# alt:` line per figure, in order (the last one
serves the rest: a loop's figures); a figure whose cell has none says which cell it
comes from. tests/test_alt_text.py fails on a cell that draws without one (drawing_cells).
"""

from __future__ import annotations

import ast
import copy
import html
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..synthetic import SYNTHETIC_NOTICE
from . import catalog, demo, offline

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
TINY_MARK = "[FER_TINY"  # what FaceData.describe() prints in tiny mode
SYNTHETIC_MARK = SYNTHETIC_NOTICE.split(":")[0]  # "SYNTHETIC DATA"

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")  # what nbconvert shows as <img>
ALT_KEY = "fer_alt"  # the alt text, in an image output's metadata on its way to the template
_ALT = re.compile(r"^\s*#\s*alt:\s*(.*?)\s*$")
_ALT_MORE = re.compile(r"^\s*#\s{2,}(\S.*?)\s*$")  # a continuation: indented after the #
NOT_DRAWING = frozenset({"use_course_style", "course_style"})  # plots.* that draw nothing
_DRAWER_NAME = re.compile(r"^(plot_\w+|\w+_(grid|map|panel|plot|heatmap|curves|histograms))$")

SLIDES = {  # the deck's settings (nbconvert's SlidesExporter options)
    "reveal_theme": "white",  # dark text on white: readable on a washed-out projector
    "reveal_transition": "none",  # projectors lag; a transition only blurs the slide
    "reveal_number": "c/t",
    "reveal_width": "1280",
    "reveal_height": "720",
    "reveal_scroll": True,
}

# Fonts and figures sized for a projector; prompts (In [3]:) only take width.
SLIDES_CSS = """
:root {
  --jp-content-font-size1: 26px;
  --jp-ui-font-size1: 26px;
  --jp-code-font-size: 19px;  /* 100-character lines fit; slideshow.SLIDE_LINES assumes it */
  --jp-cell-prompt-width: 0px;
}
.reveal .jp-InputPrompt, .reveal .jp-OutputPrompt { display: none; }
.reveal .jp-RenderedHTMLCommon :is(h1, h2, h3) { text-transform: none; }
.reveal .jp-RenderedHTMLCommon h1 { font-size: 1.9em; }
.reveal .jp-RenderedHTMLCommon h2 { font-size: 1.5em; }
.reveal .jp-RenderedHTMLCommon h3 { font-size: 1.25em; }
.reveal .jp-RenderedHTMLCommon p, .reveal .jp-RenderedHTMLCommon li { line-height: 1.35; }
.reveal .jp-OutputArea-output img { max-width: 100%; max-height: 640px; }
.reveal .jp-RenderedText pre { font-size: var(--jp-code-font-size); }
.reveal .jp-InputArea-editor, .reveal .jp-RenderedText { overflow-x: auto; }
.reveal .slide-number { font-size: 20px; top: 8px; bottom: auto; }  /* clear of the arrows */
.reveal .slides section.fer-scroll { height: 720px; overflow-y: auto; top: 0 !important; }
"""

# Slides start at the top (code does not jump as fragments appear); tall slides scroll
# (nbconvert's own version of that needs jQuery and require.js).
SLIDES_JS = """
<script src="{reveal}/dist/reveal.js"></script>
<script src="{reveal}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({{
  controls: true, progress: true, hash: true, center: false,
  transition: {transition}, slideNumber: {number}, width: {width}, height: {height},
  plugins: [RevealNotes],
}});
function ferFitSlide() {{
  var slide = Reveal.getCurrentSlide();
  if ({scroll} && slide && slide.scrollHeight > Reveal.getConfig().height) {{
    slide.classList.add("fer-scroll");
  }}
  if (window.MathJax && MathJax.Hub) {{ MathJax.Hub.Queue(["Rerender", MathJax.Hub, slide]); }}
}}
Reveal.on("ready", ferFitSlide);
Reveal.on("slidechanged", ferFitSlide);
</script>
"""

# Blocks that would load require.js, jQuery, mermaid or the widget renderer from a CDN.
# MathJax uses the one web font its package ships (else it asks for others), and its
# blank test font is a local() one: Chromium refuses the url('about:blank') it has.
# The hidden MathML it adds for screen readers gets a plain font: with MathJax's own
# (MathJax_AMS for \mathbb, ...) Chromium would fetch font files the package lacks.
NO_CDN_BLOCKS = """
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web",
  imageFont: null,
  styles: {"@font-face": {"font-family": "MathJax_Blank", src: "local('MathJax_Blank')"}}}});
</script>
<style>.MJX_Assistive_MathML, .MJX_Assistive_MathML * { font-family: serif !important; }</style>
{{ super() }}
{%- endblock html_head_js_mathjax -%}
"""

# A figure's <img> as nbconvert writes it, with the alt text its cell gives (with_alt).
ALT_BLOCKS = """
{%- block data_png scoped -%}{{ super() | fer_alt(output) }}{%- endblock data_png -%}
{%- block data_jpg scoped -%}{{ super() | fer_alt(output) }}{%- endblock data_jpg -%}
{%- block data_svg scoped -%}{{ super() | fer_alt(output) }}{%- endblock data_svg -%}
"""

PAGE_TEMPLATE = (
    "{%- extends 'index.html.j2' -%}"
    + NO_CDN_BLOCKS
    + """
{%- block html_head_css -%}
<link rel="icon" href="data:,"><style>{{ resources.fer_css }}</style>
{%- endblock html_head_css -%}
{%- block body_header -%}{{ super() }}{{ resources.fer_nav }}{%- endblock body_header -%}
"""
    + ALT_BLOCKS
)

SLIDES_TEMPLATE = (
    "{%- extends 'index.html.j2' -%}"
    + NO_CDN_BLOCKS
    + """
{%- block html_head_css -%}
<link rel="icon" href="data:,"><style>{{ resources.fer_css }}</style>
{%- endblock html_head_css -%}
{%- block footer_js -%}{{ resources.fer_js }}{%- endblock footer_js -%}
"""
    + ALT_BLOCKS
)

PAGE_CSS = """
.fer-nav { font: 16px/1.5 system-ui, sans-serif; padding: 8px 16px; margin-bottom: 12px;
  border-bottom: 1px solid #ccc; display: flex; gap: 18px; flex-wrap: wrap; }
.fer-banner { background: #fff3cd; border: 2px solid #c99a00; color: #4d3b00; padding: 8px 16px;
  font: bold 16px/1.4 system-ui, sans-serif; margin: 0 16px 12px; }
"""


@dataclass
class Page:
    """One executed notebook and what the site says about it."""

    source: Path  # the executed notebook
    title: str
    loaded_data: bool  # it printed what load_data loaded ("Data: ...")
    synthetic: bool
    tiny: bool
    images: int  # figures in its outputs
    lesson: catalog.Lesson | None

    @property
    def stem(self) -> str:
        return self.source.stem

    @property
    def html_name(self) -> str:
        return f"{self.stem}.html"

    @property
    def slides_name(self) -> str:
        return f"slides/{self.stem}.slides.html"


@dataclass
class Built:
    """What build_site wrote, with its timings in seconds."""

    site: Path
    pages: list[Page]
    seconds: dict[str, float] = field(default_factory=dict)
    demo: demo.Demo | None = None  # the live demo page (demo.py), None when not built
    notes: list[str] = field(default_factory=list)  # what the build could not do, and why


def title_of(notebook: nbformat.NotebookNode, fallback: str) -> str:
    """The notebook's first heading without its '#' ('06 · Training the 3-class model')."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
            if match:
                return match.group(1).strip()
    return fallback


def stream_text(notebook: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "stream"
    )


def is_stale(source: Path, executed: Path) -> bool:
    """True when there is no executed copy of source, it has other code, or a cell failed."""
    if not executed.is_file():
        return True
    ran = nbformat.read(executed, as_version=4)
    now = nbformat.read(source, as_version=4)
    if [c.source for c in ran.cells] != [c.source for c in now.cells]:
        return True
    return any(
        output.output_type == "error"
        for cell in ran.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def stale_notebooks(sources: list[Path], executed_dir: Path) -> list[Path]:
    """The notebooks that need executing before the site can be built."""
    return [path for path in sources if is_stale(path, executed_dir / path.name)]


def widget_text(view: dict, state: dict) -> str:
    """What a widget showed, as text: a tqdm bar's last line, or a note for the rest."""
    model = state.get(view.get("model_id", ""), {})
    children = [
        state.get(child.replace("IPY_MODEL_", ""), {})
        for child in model.get("state", {}).get("children", [])
    ]
    names = [child.get("model_name") for child in children]
    if model.get("model_name") == "HBoxModel" and "FloatProgressModel" in names:
        bar = children[names.index("FloatProgressModel")]["state"]
        filled = round(10 * bar.get("value", 0) / (bar.get("max") or 1))
        texts = [
            html.unescape(c["state"].get("value", ""))
            for c in children
            if c.get("model_name") == "HTMLModel"
        ]
        left, right = (texts + ["", ""])[:2]
        return f"{left} {'█' * filled}{'░' * (10 - filled)} {right}".replace("\u2007", " ")
    return "[an interactive widget: it works in Jupyter, with the notebook running]"


def static_outputs(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy for a static page: widgets as text, live iframes (netron) as a note."""
    notebook = copy.deepcopy(notebook)
    widgets = notebook.metadata.pop("widgets", {})
    state = widgets.get(WIDGET_STATE, {}).get("state", {})
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                output["data"] = {"text/plain": widget_text(data[WIDGET_VIEW], state)}
            elif "<iframe" in "".join(data.get("text/html", "")):
                found = re.search(r'src="([^"]+)"', "".join(data["text/html"]))
                where = f" ({found.group(1)})" if found else ""
                output["data"] = {
                    "text/plain": f"[a live view{where}: it works while the notebook runs]"
                }
    return notebook


def alt_texts(source: str) -> list[str]:
    """The descriptions a code cell gives its figures: one per `# alt:` comment, in order.

    A description goes on over the comment lines right after it that are indented
    after the `#` (`#      and so on`), so a long one stays within the line length.
    """
    texts: list[str] = []
    going_on = False
    for line in source.splitlines():
        if found := _ALT.match(line):
            texts.append(found[1])
            going_on = True
        elif going_on and (found := _ALT_MORE.match(line)):
            texts[-1] = f"{texts[-1]} {found[1]}"
        else:
            going_on = False
    return [text for text in texts if text]


def _draws(nodes: list[ast.AST], drawers: set[str]) -> bool:
    """Whether code that runs (function bodies left out) calls something that draws."""
    for statement in nodes:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for node in ast.walk(statement):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            if isinstance(function, ast.Name):
                name = function.id
                if name == "Image" or name in drawers or _DRAWER_NAME.match(name):
                    return True
            elif isinstance(function, ast.Attribute):
                owner, name = function.value, function.attr
                if isinstance(owner, ast.Name) and owner.id == "plt":
                    return True
                if isinstance(owner, ast.Name) and owner.id == "plots":
                    if name not in NOT_DRAWING:
                        return True
                elif name in ("plot", "imshow") or _DRAWER_NAME.match(name):
                    return True  # df.plot(), timeline.plot(), ax.imshow(), ...
                elif isinstance(owner, ast.Attribute) and owner.attr == "plot":
                    return True  # df.plot.bar()
    return False


def drawing_cells(notebook: nbformat.NotebookNode | dict) -> list[int]:
    """The indices of the code cells that draw a figure when run, judged from their code.

    A cell draws when it calls matplotlib (`plt.`), the course's plots helpers, a
    `.plot` method, a helper named like one (`*_grid`, `*_map`, `plot_*`, ...), IPython's
    `Image`, or a function defined earlier in the notebook that does. Code inside a
    function definition draws only when the function is called.
    """
    drawers: set[str] = set()
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        code = "\n".join(
            "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
        )
        try:
            body = ast.parse(code).body
        except SyntaxError:
            continue
        for statement in body:
            is_function = isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and _draws(statement.body, drawers):
                drawers.add(statement.name)
        if _draws(body, drawers):
            found.append(index)
    return found


def is_image(output: dict) -> bool:
    return output.get("output_type") in ("display_data", "execute_result") and any(
        kind in output.get("data", {}) for kind in IMAGE_TYPES
    )


def give_alt_text(notebook: nbformat.NotebookNode, stem: str) -> None:
    """Put each figure's alt text in its output's metadata (ALT_KEY), in place.

    The text is the cell's `# alt:` description (alt_texts), the k-th for its k-th
    figure; a cell with more figures than descriptions (a loop) gives its last one to
    the rest, each numbered. A figure without one says where it comes from.
    """
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        images = [output for output in cell.get("outputs", []) if is_image(output)]
        texts = alt_texts(cell.source)
        for k, output in enumerate(images):
            if not texts:
                count = cell.get("execution_count")
                where = f"code cell In [{count}]" if count else f"cell {index}"
                text = f"A figure from notebook {stem}, {where} (no description was written)"
            elif len(images) > len(texts) and k >= len(texts) - 1:
                text = f"{texts[-1]} (figure {k + 1} of {len(images)} from this cell)"
            else:
                text = texts[k]
            output.setdefault("metadata", {})[ALT_KEY] = text


def with_alt(rendered: str, output: dict) -> str:
    """A figure's HTML with its alt text (ALT_KEY) on the <img>; a jinja filter."""
    text = output.get("metadata", {}).get(ALT_KEY)
    if not text or "<img " not in rendered:
        return rendered
    return rendered.replace("<img ", f'<img alt="{html.escape(text, quote=True)}" ', 1)


def take_slide_tags(executed: nbformat.NotebookNode, source: nbformat.NotebookNode) -> None:
    """Give the executed copy the source's current slide tags: retagging needs no re-run."""
    if [c.source for c in executed.cells] != [c.source for c in source.cells]:
        return
    for ran, now in zip(executed.cells, source.cells):
        for key in ("slideshow", "tags"):
            ran.metadata.pop(key, None)
            if key in now.metadata:
                ran.metadata[key] = copy.deepcopy(now.metadata[key])


def with_slide_tags(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A notebook without slide tags gets a slide per # or ## heading (tags win when present)."""
    if any("slide_type" in cell.metadata.get("slideshow", {}) for cell in notebook.cells):
        return notebook
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        heading = cell.cell_type == "markdown" and re.match(r"\s*#{1,2}\s", cell.source)
        cell.metadata["slideshow"] = {"slide_type": "slide" if heading else "-"}
    return notebook


def describe(source: Path) -> tuple[nbformat.NotebookNode, Page]:
    notebook = nbformat.read(source, as_version=4)
    printed = stream_text(notebook)
    images = sum(
        "image/png" in output.get("data", {}) or "image/jpeg" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    page = Page(
        source=source,
        title=title_of(notebook, source.stem),
        loaded_data=re.search(r"^Data: ", printed, re.MULTILINE) is not None,
        synthetic=SYNTHETIC_MARK in printed,
        tiny=TINY_MARK in printed,
        images=images,
        lesson=catalog.lesson(source.stem),
    )
    return notebook, page


def numbers(pages: list[Page], of: list[Page]) -> str:
    """Which pages: 'notebook 12', 'notebooks 01, 06 and 07', 'the notebooks' (all that
    loaded data), or '' for none."""
    names = [p.stem[:2] for p in pages]
    if names and len(names) == len([p for p in of if p.loaded_data]):
        return "the notebooks"
    if len(names) < 2:
        return "".join(f"notebook {n}" for n in names)
    return f"notebooks {', '.join(names[:-1])} and {names[-1]}"


def data_banner(pages: list[Page], one_page: bool = False) -> str:
    """A warning when the outputs came from synthetic faces or FER_TINY; '' on full FER2013."""
    notes = []
    synthetic, tiny = (
        "this notebook" if one_page and chosen else numbers(chosen, pages)
        for chosen in ([p for p in pages if p.synthetic], [p for p in pages if p.tiny])
    )
    if synthetic:
        notes.append(
            f"SYNTHETIC DATA: {synthetic} ran on generated cartoon faces, not FER2013; "
            "the numbers say nothing about real faces."
        )
    if tiny:
        notes.append(
            f"FER_TINY: {tiny} ran on a few images per class; the numbers are not results."
        )
    return "".join(f'<p class="fer-banner">{html.escape(note)}</p>' for note in notes)


def nav(pages: list[Page], index: int) -> str:
    page = pages[index]
    links = ['<a href="index.html">course index</a>']
    if index > 0:
        links.append(f'<a href="{pages[index - 1].html_name}">← {pages[index - 1].stem[:2]}</a>')
    if index + 1 < len(pages):
        links.append(f'<a href="{pages[index + 1].html_name}">{pages[index + 1].stem[:2]} →</a>')
    links.append(f'<a href="{page.slides_name}">slides</a>')
    return f'<nav class="fer-nav">{"".join(links)}</nav>{data_banner([page], one_page=True)}'


def exporters() -> tuple[object, object]:
    from nbconvert import HTMLExporter, SlidesExporter

    filters = {"fer_alt": with_alt}
    pages = HTMLExporter(template_name="lab", mathjax_url=offline.mathjax_url(""), filters=filters)
    pages.raw_template = PAGE_TEMPLATE
    slides = SlidesExporter(
        template_name="reveal",
        mathjax_url=offline.mathjax_url("../"),
        reveal_url_prefix=offline.reveal_url("../"),
        filters=filters,
        **SLIDES,
    )
    slides.raw_template = SLIDES_TEMPLATE
    return pages, slides


def slides_js() -> str:
    return SLIDES_JS.format(
        reveal=offline.reveal_url("../"),
        transition=json.dumps(SLIDES["reveal_transition"]),
        number=json.dumps(SLIDES["reveal_number"]),
        width=SLIDES["reveal_width"],
        height=SLIDES["reveal_height"],
        scroll=json.dumps(SLIDES["reveal_scroll"]),
    )


def write_checked(path: Path, text: str) -> None:
    """Write a page, refusing one that would load something from the internet."""
    remote = offline.remote_references(text)
    if remote:
        raise ValueError(f"{path.name} would load from the internet: {', '.join(remote)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def clear(site: Path) -> None:
    """Remove what an earlier build wrote (a renamed notebook leaves no page behind)."""
    site.mkdir(parents=True, exist_ok=True)
    for folder in (site / offline.ASSETS, site / "slides"):
        if folder.is_dir():
            shutil.rmtree(folder)
    for page in [site / "index.html", site / demo.PAGE, *site.glob("[0-9][0-9]_*.html")]:
        page.unlink(missing_ok=True)


def build_site(sources: list[Path], executed_dir: Path, site: Path) -> Built:
    """Write site/index.html, a page and a deck per notebook, and the assets they load.

    sources are the notebooks in notebooks/ (their order and names); their executed
    copies must be in executed_dir (see stale_notebooks).
    """
    start = time.perf_counter()
    clear(site)
    offline.copy_assets(site, SLIDES["reveal_theme"])
    built = Built(site, [], {"assets": time.perf_counter() - start})
    notebooks = []
    for source in sources:
        if not (executed_dir / source.name).is_file():
            raise FileNotFoundError(
                f"{executed_dir / source.name} is missing: execute the notebook first "
                "(`python3 tasks.py site` does)"
            )
        notebook, page = describe(executed_dir / source.name)
        take_slide_tags(notebook, nbformat.read(source, as_version=4))
        notebooks.append(notebook)
        built.pages.append(page)
    page_exporter, slides_exporter = exporters()
    for index, (notebook, page) in enumerate(zip(notebooks, built.pages)):
        begin = time.perf_counter()
        shown = static_outputs(notebook)
        give_alt_text(shown, page.stem)
        shown.metadata["title"] = page.title
        resources = {"metadata": {"name": page.stem}}
        body, _ = page_exporter.from_notebook_node(
            shown, resources={**resources, "fer_css": PAGE_CSS, "fer_nav": nav(built.pages, index)}
        )
        write_checked(site / page.html_name, body)
        deck, _ = slides_exporter.from_notebook_node(
            with_slide_tags(shown),
            resources={**resources, "fer_css": SLIDES_CSS, "fer_js": slides_js()},
        )
        write_checked(site / page.slides_name, deck)
        built.seconds[page.stem] = time.perf_counter() - begin
    begin = time.perf_counter()
    try:
        built.demo = demo.write_demo(site, PAGE_CSS, write=write_checked)
        if built.demo.note:
            built.notes.append(f"live demo: {built.demo.note}")
    except demo.RuntimeMissing as missing:  # no npm, or no network the first time
        built.notes.append(f"no live demo page: {missing}")
    built.seconds["demo"] = time.perf_counter() - begin
    write_checked(site / "index.html", index_html(built.pages, built.demo))
    built.seconds["total"] = time.perf_counter() - start
    return built


def inline_markdown(text: str) -> str:
    """The catalogue's blurbs are one line of markdown: only `code` needs converting."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


INDEX_CSS = (
    """
body { font: 18px/1.5 system-ui, sans-serif; max-width: 1200px; margin: 24px auto; padding: 0 16px;
  color: #1a1a1a; }
h1 { font-size: 2em; margin-bottom: 0.2em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 8px 10px; border-bottom: 1px solid #ddd; }
td.time { white-space: nowrap; }
code { font-size: 0.9em; background: #f3f3f3; padding: 0 3px; }
"""
    + PAGE_CSS
)


def demo_paragraph(live: demo.Demo | None) -> str:
    """The index's link to the live demo ('' when it was not built)."""
    if live is None:
        return ""
    return (
        f'<p class="fer-demo"><a href="{demo.PAGE}">Live demo</a>: the model of notebook 11'
        f" (<code>{html.escape(live.model)}</code>, {len(live.class_names)} classes) reading"
        " faces from the webcam or a photo, in the browser itself and offline, with its"
        " probabilities as bars. For the projector after notebooks 12 and 13.</p>"
    )


def index_html(pages: list[Page], live: demo.Demo | None = None) -> str:
    """The course's front page: every notebook, what it teaches, its time, its slides."""
    rows = []
    for page in pages:
        entry = page.lesson
        teaches = inline_markdown(entry.teaches) if entry else "<em>(not in the catalogue)</em>"
        rows.append(
            "<tr>"
            f'<td><a href="{page.html_name}">{html.escape(page.title)}</a></td>'
            f"<td>{teaches}</td>"
            f'<td class="time">{html.escape(entry.full_time()) if entry else "–"}</td>'
            f'<td><a href="{page.slides_name}">slides</a></td>'
            "</tr>"
        )
    total = catalog.total_full_seconds() / 60
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Face detection and emotion classification: the course</title>
<link rel="icon" href="data:,">
<style>{INDEX_CSS}</style>
</head>
<body>
<h1>Face detection and emotion classification</h1>
<p>A course in facial-expression recognition with PyTorch: the notebooks as pages to read and
as slides to present, with the outputs of a run. To run them yourself:
<code>python3 tasks.py course</code>.</p>
{data_banner(pages)}
{demo_paragraph(live)}
<table>
<thead><tr><th>notebook</th><th>what it teaches</th>
<th>full FER2013, 2-core CPU</th><th>slides</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
<p>Times: one run of each notebook on the full FER2013 on a laptop-class CPU with 2 cores and
no GPU (the whole series about {total:.0f} min; most of it is training in 06, 08 and 10).
A GPU or more cores take less. With <code>FER_TINY=1</code> the series takes a minute or two.</p>
<p>In a deck: arrow keys or space to move, <kbd>S</kbd> for the speaker view,
<kbd>F</kbd> for full screen, <kbd>Esc</kbd> for the overview.</p>
</body>
</html>
"""
