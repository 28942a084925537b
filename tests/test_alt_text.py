"""Every figure of the course says what it shows: `# alt:` comments in the cells that draw.

The site (fer_helpers/course/site.py) gives each figure the alt text its cell declares;
these tests read the course's notebooks without running them: a cell that draws must
describe its figure, and the description must read as one. tests/test_site.py checks
that the text reaches the pages and decks.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib as mpl
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from fer_helpers import plots
from fer_helpers.course import site

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PNG = "iVBORw0KGgo="  # what the image is does not matter here


def cells(*sources: str) -> dict:
    return {"cells": [{"cell_type": "code", "source": source} for source in sources]}


def test_alt_texts_are_read_from_the_comments_in_order():
    source = """# alt: Loss per epoch, training and validation;
#      validation turns up after a few epochs.
fig = plots.training_curves(history)
# a plain comment, not part of it
for layer in layers:
    # alt: One grid per layer: the deeper,
    #      the coarser.
    #      Three lines in all.
    fig = feature_grid(maps[layer])
#alt:   Tight spacing works too.
# alt:
print("done")"""
    assert site.alt_texts(source) == [
        "Loss per epoch, training and validation; validation turns up after a few epochs.",
        "One grid per layer: the deeper, the coarser. Three lines in all.",
        "Tight spacing works too.",
    ]
    assert site.alt_texts("x = 1  # alt: not at a line's start\n# alternative: no") == []


def test_cells_that_draw_are_told_from_those_that_do_not():
    notebook = cells(
        "from fer_helpers import plots\nplots.use_course_style()",  # 0: style only
        "fig = plots.sample_grid(data['train'])",  # 1
        "ax = recall.plot.bar(rot=0)",  # 2: pandas
        "def show(x):\n    plt.figure()\n    plt.plot(x)",  # 3: only defines a drawer
        "show([1, 2])",  # 4: calls it
        "display(widgets.VBox([upload, results]))",  # 5: a widget, no figure
        "view.update(Image(data=jpeg))",  # 6: IPython's Image
        "%matplotlib inline\nplt.plot([1, 2])",  # 7: a magic does not hide it
        "fig = trace_grid(faces, maps, EMOTIONS)",  # 8: a helper named like one
        "timeline.plot()",  # 9
        "with plots.course_style():\n    fig, ax = plt.subplots()",  # 10
        "print(plt)",  # 11: mentions plt without calling it
        "def on_click(change):\n    show(change)",  # 12: draws only when called
    )
    assert site.drawing_cells(notebook) == [1, 2, 4, 6, 7, 8, 9, 10]


def test_each_figure_gets_its_cells_text_and_one_without_says_where_it_is_from():
    images = [new_output("display_data", data={"image/png": PNG}) for _ in range(3)]
    loop = new_code_cell(
        "for layer in layers:\n    # alt: A grid of one layer's maps.\n    feature_grid(layer)",
        outputs=[*images, new_output("stream", name="stdout", text="done\n")],
    )
    pair = new_code_cell(
        "# alt: Counts.\nheatmap(cm)\n# alt: Row shares.\nheatmap(cm, normalize=True)",
        outputs=[new_output("display_data", data={"image/png": PNG}) for _ in range(2)],
    )
    bare = new_code_cell(
        "plt.plot(x)",
        execution_count=5,
        outputs=[new_output("display_data", data={"image/jpeg": PNG})],
    )
    notebook = new_notebook(cells=[loop, pair, bare])
    site.give_alt_text(notebook, "06_train_3class")
    alts = [
        output.metadata[site.ALT_KEY]
        for cell in notebook.cells
        for output in cell.outputs
        if site.is_image(output)
    ]
    assert alts == [
        "A grid of one layer's maps. (figure 1 of 3 from this cell)",
        "A grid of one layer's maps. (figure 2 of 3 from this cell)",
        "A grid of one layer's maps. (figure 3 of 3 from this cell)",
        "Counts.",
        "Row shares.",
        "A figure from notebook 06_train_3class, code cell In [5] (no description was written)",
    ]
    assert site.ALT_KEY not in loop.outputs[3].get("metadata", {})  # text is no figure


def test_alt_text_goes_on_the_img_escaped():
    output = {"metadata": {site.ALT_KEY: 'The "loss" curve & its <minimum>'}}
    rendered = '<div class="jp-RenderedImage">\n<img src="data:image/png;base64,AAA"\nclass="">'
    assert site.with_alt(rendered, output) == (
        '<div class="jp-RenderedImage">\n<img alt="The &quot;loss&quot; curve &amp; its '
        '&lt;minimum&gt;" src="data:image/png;base64,AAA"\nclass="">'
    )
    assert site.with_alt(rendered, {"metadata": {}}) == rendered
    assert site.with_alt("<svg></svg>", output) == "<svg></svg>"  # inline SVG: nothing to do


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_figure_of_the_course_says_what_it_shows(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    drawing = site.drawing_cells(notebook)
    problems = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        texts = site.alt_texts(source)
        first = source.strip().splitlines()[0] if source.strip() else ""
        if index in drawing and not texts:
            problems.append(
                f"cell {index} ({first[:60]!r}) draws a figure: say what it shows in an "
                "'# alt: ...' comment above the call that draws it"
            )
        elif texts and index not in drawing:
            problems.append(f"cell {index} ({first[:60]!r}) describes a figure it does not draw")
        for text in texts:
            if len(text.split()) < 8:
                problems.append(f"cell {index}: {text!r} is too short to say what it shows")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_the_course_style_keeps_the_interactive_mode_jupyter_turned_on():
    """Jupyter turns interactive mode on at a notebook's first figure; made inside
    course_style (as plots' helpers draw), undoing it would hide every later figure."""
    before = mpl.is_interactive()
    try:
        mpl.interactive(False)
        with plots.course_style():
            mpl.interactive(True)  # what Jupyter does when the first figure is made
        assert mpl.is_interactive()
        with plots.course_style():
            pass
        assert mpl.is_interactive()
    finally:
        mpl.interactive(before)
