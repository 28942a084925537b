"""Slide tags: the rules on small hand-made notebooks, and every course notebook's deck."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from fer_helpers.course import slideshow
from fer_helpers.course.slideshow import SLIDE_LINES, check_tags, main, tag_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

IMPORTS = "import numpy as np\nfrom fer_helpers import plots\n\nnp.set_printoptions(precision=3)"
SOLUTION = "def f(x):\n    # BEGIN SOLUTION f\n    return 2 * x\n    # END SOLUTION"


def md(text: str, *tags: str) -> dict:
    return {
        "cell_type": "markdown",
        "metadata": {"tags": list(tags)} if tags else {},
        "source": text,
    }


def code(text: str, *tags: str) -> dict:
    metadata = {"tags": list(tags)} if tags else {}
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": metadata,
        "outputs": [],
        "source": text,
    }


def notebook(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def types(nb: dict) -> list[str]:
    return [cell["metadata"]["slideshow"]["slide_type"] for cell in tag_notebook(nb)["cells"]]


def test_title_and_sections_start_slides_and_subsections_subslides():
    nb = notebook(
        md("# 01 · Title"),
        md("## 1. A section"),
        code("x = 1"),
        md("### A subsection"),
        md("Some words, then a section:\n\n## 2. Next"),
        md("```python\n# a comment in a code block is no heading\n```"),
    )
    assert types(nb) == ["slide", "slide", "fragment", "subslide", "slide", "fragment"]
    assert check_tags(nb) == []


def test_set_up_cells_and_training_logs_are_skipped():
    nb = notebook(
        md("# Title"),
        code(IMPORTS),
        code("history = fit(model, loader, loss_fn, optimizer, 10)\nassert history"),
        code("model, _ = train_strategy(data, 'plain', 2)\nprint(f'accuracy {acc:.2%}')"),
        code("import os\nx = 1\ny = 2\nz = 3"),  # mostly not imports: a lesson's code
    )
    assert types(nb) == ["slide", "skip", "skip", "fragment", "fragment"]
    assert check_tags(nb) == []


def test_check_names_a_shown_set_up_cell_and_a_shown_training_log():
    nb = tag_notebook(
        notebook(md("# Title"), code(IMPORTS), code("comparison = compare_strategies(d)"))
    )
    for cell in nb["cells"][1:]:
        cell["metadata"]["slideshow"]["slide_type"] = "fragment"
    problems = check_tags(nb)
    assert any("cell 1 is a set-up cell" in p for p in problems), problems
    assert any("cell 2 shows a training log" in p for p in problems), problems


def test_a_solution_gets_its_own_subslide_and_the_check_follows_as_a_fragment():
    nb = notebook(md("# Title"), md("### Your turn: f"), code(SOLUTION), code("check_f(f)"))
    assert types(nb) == ["slide", "subslide", "subslide", "fragment"]
    nb["cells"][2]["metadata"]["slideshow"]["slide_type"] = "fragment"
    assert any("cell 2 is an exercise's solution" in p for p in check_tags(nb))


def test_a_slide_taller_than_a_projector_is_split():
    long_code = "\n".join(f"x{i} = {i}" for i in range(SLIDE_LINES - 2))
    nb = notebook(md("# Title"), md("## Section\n\nsome words"), code(long_code), code("y = 1"))
    assert types(nb) == ["slide", "slide", "subslide", "fragment"]
    assert check_tags(nb) == []
    nb["cells"][2]["metadata"]["slideshow"]["slide_type"] = "fragment"  # all on one slide
    problems = check_tags(nb)
    assert len(problems) == 1 and "cells 1..3" in problems[0] and "subslide" in problems[0]


def test_prose_goes_with_the_code_after_it_onto_a_new_subslide_when_they_do_not_fit():
    filler = "\n".join(f"line {i}" for i in range(SLIDE_LINES - 6))
    nb = notebook(md("# Title\n\n" + filler), md("Now this:"), code("a = 1\nb = 2\nc = 3\nd = 4"))
    assert types(nb) == ["slide", "subslide", "fragment"]


def test_one_cell_taller_than_a_slide_is_no_problem_on_its_own():
    nb = notebook(md("# Title\n\n" + "\n".join("words" for _ in range(2 * SLIDE_LINES))))
    assert types(nb) == ["slide"] and check_tags(nb) == []


def test_tags_override_the_rules_and_keep_a_manual_choice():
    kept = code("z = 3", "slideshow:keep")
    kept["metadata"]["slideshow"] = {"slide_type": "notes"}
    nb = notebook(
        md("# Title"),
        code(IMPORTS, "slideshow:fragment"),  # the teacher wants the imports shown
        code("x = 1", "slideshow:skip", "nbval-skip"),
        code("y = 2", "slideshow:continue"),
        kept,
    )
    assert types(nb) == ["slide", "fragment", "skip", "-", "notes"]
    assert nb["cells"][2]["metadata"]["tags"] == ["slideshow:skip", "nbval-skip"]  # kept
    assert check_tags(nb) == []
    nb["cells"][2]["metadata"]["slideshow"]["slide_type"] = "fragment"  # edited by hand
    assert check_tags(nb) == ["cell 2 is tagged 'skip' but has slide type 'fragment'"]


def test_unknown_tags_and_types_and_untagged_cells_are_named():
    nb = tag_notebook(notebook(md("# Title"), code("x = 1", "slideshow:hidden")))
    assert any("unknown tag 'slideshow:hidden'" in p for p in check_tags(nb))
    nb["cells"][1]["metadata"]["slideshow"]["slide_type"] = "hidden"
    assert any("slide type 'hidden'" in p for p in check_tags(nb))
    del nb["cells"][1]["metadata"]["slideshow"]
    assert any("cell 1 has no slide type" in p for p in check_tags(nb))


def test_a_deck_must_start_with_a_slide_and_sections_must_open_slides():
    nb = tag_notebook(notebook(md("# Title"), md("## Section")))
    nb["cells"][0]["metadata"]["slideshow"]["slide_type"] = "fragment"
    nb["cells"][1]["metadata"]["slideshow"]["slide_type"] = "subslide"
    problems = check_tags(nb)
    assert "the deck starts with a 'fragment' cell, not a slide" in problems
    assert any("cell 1 opens a section" in p for p in problems)


def test_a_skipped_first_cell_makes_the_next_one_the_first_slide():
    nb = notebook(code("x = 1", "slideshow:skip"), md("Words without a heading"), code("y = 2"))
    assert types(nb) == ["skip", "slide", "fragment"] and check_tags(nb) == []


def test_tagging_is_idempotent_and_keeps_everything_else():
    nb = notebook(md("# Title"), code(IMPORTS), code(SOLUTION, "nbval-skip"), code("check_f(f)"))
    nb["cells"][3]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "OK"}]
    once = json.dumps(tag_notebook(json.loads(json.dumps(nb))))
    twice = json.dumps(tag_notebook(json.loads(once)))
    assert once == twice
    tagged = json.loads(once)
    assert tagged["cells"][2]["metadata"]["tags"] == ["nbval-skip"]
    assert tagged["cells"][3]["outputs"] == nb["cells"][3]["outputs"]
    assert [c["source"] for c in tagged["cells"]] == [c["source"] for c in nb["cells"]]


def test_the_command_tags_in_place_and_check_changes_nothing(tmp_path, capsys):
    path = tmp_path / "01_x.ipynb"
    original = notebook(md("# 01 · Title"), code(IMPORTS), md("## 1. Go"), code("x = 1"))
    for cell in original["cells"]:
        cell["id"] = f"cell-{len(cell['source'])}"
    path.write_text(json.dumps(original, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    assert main(["--check", str(path)]) == 1  # untagged
    assert json.loads(path.read_text()) == original
    assert "has no slide type" in capsys.readouterr().out

    assert main([str(path)]) == 0
    text = path.read_text(encoding="utf-8")
    tagged = json.loads(text)
    assert text == json.dumps(tagged, indent=1, ensure_ascii=False) + "\n"  # as `strip` writes
    assert [c["metadata"]["slideshow"]["slide_type"] for c in tagged["cells"]] == [
        "slide",
        "skip",
        "slide",
        "fragment",
    ]
    nbformat.validate(nbformat.reads(text, as_version=4))
    assert main(["--check", str(path)]) == 0
    assert main([str(tmp_path / "missing.ipynb")]) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_course_notebook_is_tagged_for_presenting(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = check_tags(nb)
    assert problems == [], f"run `python -m fer_helpers.course.slideshow {path.relative_to(ROOT)}`"
    deck = slideshow.slides(nb)
    assert len(deck) >= 3  # a title, sections, a summary
