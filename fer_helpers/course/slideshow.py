"""Slide tags: every notebook can be presented as a deck (nbconvert slides, RISE).

    python -m fer_helpers.course.slideshow notebooks/06_train_3class.ipynb ...   # tag in place
    python -m fer_helpers.course.slideshow --check notebooks/*.ipynb             # only report

Jupyter keeps a cell's place in a deck in `metadata.slideshow.slide_type`:

    slide      a new slide (left/right in reveal.js: the notebook's sections)
    subslide   a new slide below the current one (up/down: the steps of a section)
    fragment   appears on the current slide at the next click
    -          shown together with the cell before it
    skip       not in the deck
    notes      speaker notes

`tag_notebook` derives every cell's type from the notebook itself, so that a
teacher never tags by hand and a changed notebook is re-tagged with one command:

- the title cell and every `#`/`##` section start a slide; `###` starts a subslide;
- the set-up cell (imports) and cells whose output is a training log are skipped:
  the cells after them show the results;
- an exercise's solution gets a subslide of its own, so the answer is not on the
  slide that asks the question, and the check after it appears as a fragment;
- the rest appear one click at a time, a prose cell together with the code that
  follows it, and a new subslide starts where a slide would grow taller than a
  projector shows (SLIDE_LINES). A single cell taller than that gets a slide of
  its own: reveal.js can scroll it.

A teacher who wants another type for one cell gives it a tag instead of
editing the metadata (the next run would undo that): `slideshow:skip`,
`slideshow:slide`, ... (`slideshow:continue` for "-"), or `slideshow:keep` to keep
whatever type the cell has. `check_tags` names what is wrong with a notebook's tags.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from ..exercises import BEGIN

SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")
HIDDEN = ("skip", "notes")  # not on the projected slides
TAG_PREFIX = "slideshow:"
KEEP = "keep"
TAG_NAMES = {**{t: t for t in SLIDE_TYPES if t != "-"}, "continue": "-"}

# How much fits on one slide, in lines: nbconvert's slides set code in 19px type, about
# 28 lines on a 1280x720 (16:9) slide. Outputs are not in the committed notebooks, so
# they are estimated (see height()).
SLIDE_LINES = 28
FIGURE_LINES = 12  # a figure takes about this much of a slide's height
TABLE_LINES = 8  # a DataFrame shown as the cell's last expression

# Functions whose output is a long training log (epochs, batches, progress bars).
TRAINING_CALLS = frozenset(
    {"fit", "train_or_load", "train_strategy", "compare_strategies", "train_variant"}
)

# Calls that draw a figure, from matplotlib, pandas or the course's helpers.
_FIGURE = re.compile(
    r"\bplt\.|\bplots\.|\.plot\b|_grid\(|_map\(|_panel\(|plot_\w+\(|show_\w+\(|display\("
)
_HEADING = re.compile(r"^(#{1,6})\s")
_FENCE = re.compile(r"^\s*(```|~~~)")


def source_of(cell: dict) -> str:
    """A cell's source as one string (nbformat stores a string or a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def heading_levels(markdown: str) -> list[int]:
    """The levels (1 for `#`, 2 for `##`, ...) of the headings in a markdown text."""
    levels, fenced = [], False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (match := _HEADING.match(line)):
            levels.append(len(match[1]))
    return levels


def _statements(code: str) -> list[ast.stmt]:
    try:
        return ast.parse(code).body
    except SyntaxError:  # IPython magics and the like: no rule applies
        return []


def is_setup(cell: dict) -> bool:
    """A set-up cell: code that starts with imports and is mostly imports."""
    if cell["cell_type"] != "code":
        return False
    body = _statements(source_of(cell))
    imports = [s for s in body if isinstance(s, ast.Import | ast.ImportFrom)]
    return bool(body) and body[0] in imports and 2 * len(imports) >= len(body)


def _called_names(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.Module(body=_statements(code), type_ignores=[])):
        if isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Name):
                names.add(function.id)
            elif isinstance(function, ast.Attribute):
                names.add(function.attr)
    return names


def _shows_a_result_last(body: list[ast.stmt]) -> bool:
    """Whether the last statement prints or displays something (a bare expression)."""
    return bool(body) and isinstance(body[-1], ast.Expr)


def is_training_log(cell: dict) -> bool:
    """A cell that trains a model and shows nothing after the training log."""
    if cell["cell_type"] != "code":
        return False
    code = source_of(cell)
    return bool(_called_names(code) & TRAINING_CALLS) and not _shows_a_result_last(
        _statements(code)
    )


def is_solution(cell: dict) -> bool:
    """An exercise's code cell: it holds a solution between the markers."""
    return cell["cell_type"] == "code" and BEGIN in source_of(cell)


def height(cell: dict) -> int:
    """About how many lines a cell takes on a slide, its output included.

    A markdown heading counts twice (larger type). A code cell's output is not in
    the committed notebook, so it is estimated from the code: a line per print
    call, FIGURE_LINES for a figure, TABLE_LINES for a table shown last.
    """
    text = source_of(cell).strip("\n")
    lines = len(text.splitlines())
    if cell["cell_type"] == "markdown":
        return lines + len(heading_levels(text))
    if cell["cell_type"] != "code":
        return lines
    body = _statements(text)
    output = text.count("print(")
    figure = bool(_FIGURE.search(text))
    if figure:
        output += FIGURE_LINES
    if _shows_a_result_last(body):
        called = _called_names(ast.unparse(body[-1]))
        if any(name.startswith("check_") for name in called):
            output += 1  # "OK: ... passed all N checks"
        elif not figure and "print" not in called:
            output += TABLE_LINES  # Jupyter shows the value: a DataFrame, mostly
    return lines + output


def _slideshow_tags(cell: dict) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return [tag[len(TAG_PREFIX) :] for tag in tags if tag.startswith(TAG_PREFIX)]


def override(cell: dict) -> str | None:
    """The slide type a cell's `slideshow:...` tag asks for, or None without such a tag."""
    for name in _slideshow_tags(cell):
        if name == KEEP:
            return current_type(cell) if current_type(cell) in SLIDE_TYPES else "-"
        if name in TAG_NAMES:
            return TAG_NAMES[name]
    return None  # an unknown name is left to check_tags to report


def current_type(cell: dict) -> str | None:
    """The slide type the cell has now, or None."""
    return cell.get("metadata", {}).get("slideshow", {}).get("slide_type")


def default_types(cells: list[dict]) -> list[str]:
    """The slide type of every cell by the rules in this module's docstring."""
    types: list[str] = []
    used = 0  # lines on the current slide so far
    for index, cell in enumerate(cells):
        forced = override(cell)
        levels = heading_levels(source_of(cell)) if cell["cell_type"] == "markdown" else []
        shown_before = any(t not in HIDDEN for t in types)
        if forced is not None:
            kind = forced
        elif not shown_before and not is_setup(cell) and not is_training_log(cell):
            kind = "slide"  # the title, or whatever opens the deck
        elif levels and min(levels) <= 2:
            kind = "slide"
        elif levels:
            kind = "subslide"
        elif is_setup(cell) or is_training_log(cell):
            kind = "skip"
        elif is_solution(cell):
            kind = "subslide"
        elif cell["cell_type"] == "markdown":
            # Prose and the code after it stay together if they fit on this slide.
            unit = [cell, *_code_after(cells, index)]
            kind = "fragment" if used + sum(map(height, unit)) <= SLIDE_LINES else "subslide"
        else:
            kind = "fragment" if used + height(cell) <= SLIDE_LINES else "subslide"
        types.append(kind)
        if kind in ("slide", "subslide"):
            used = height(cell)
        elif kind not in HIDDEN:
            used += height(cell)
    return types


def _code_after(cells: list[dict], index: int) -> Iterator[dict]:
    """The code cells right after cells[index] that will be shown with it."""
    for cell in cells[index + 1 :]:
        if cell["cell_type"] != "code" or is_solution(cell):
            return
        if not (is_setup(cell) or is_training_log(cell) or override(cell) in HIDDEN):
            yield cell


def tag_notebook(notebook: dict) -> dict:
    """Set `metadata.slideshow.slide_type` on every cell, in place; returns the notebook.

    Idempotent: the types follow from the cells' sources and `slideshow:` tags only.
    Other metadata (tags, nbval markers, ...) is kept; metadata keys stay sorted,
    as Jupyter writes them.
    """
    for cell, kind in zip(notebook["cells"], default_types(notebook["cells"]), strict=True):
        metadata = dict(cell.get("metadata", {}))
        metadata["slideshow"] = {**metadata.get("slideshow", {}), "slide_type": kind}
        cell["metadata"] = dict(sorted(metadata.items()))
    return notebook


def slides(notebook: dict) -> list[list[int]]:
    """The cells (by index) on each slide or subslide of the deck, hidden cells left out."""
    deck: list[list[int]] = []
    for index, cell in enumerate(notebook["cells"]):
        kind = current_type(cell)
        if kind in HIDDEN or kind is None:
            continue
        if kind in ("slide", "subslide") or not deck:
            deck.append([])
        deck[-1].append(index)
    return deck


def check_tags(notebook: dict) -> list[str]:
    """What is wrong with a notebook's slide tags, one sentence each ([] when nothing)."""
    cells = notebook["cells"]
    problems = []
    for index, cell in enumerate(cells):
        kind, forced = current_type(cell), override(cell)
        where = f"cell {index}"
        if kind is None:
            problems.append(f"{where} has no slide type (metadata.slideshow.slide_type)")
        elif kind not in SLIDE_TYPES:
            problems.append(f"{where} has slide type {kind!r}, not one of {SLIDE_TYPES}")
        for name in _slideshow_tags(cell):
            if name not in TAG_NAMES and name != KEEP:
                names = ", ".join(TAG_PREFIX + n for n in [*TAG_NAMES, KEEP])
                problems.append(f"{where}: unknown tag {TAG_PREFIX + name!r}; use one of {names}")
        if forced is not None and kind != forced:
            problems.append(f"{where} is tagged {forced!r} but has slide type {kind!r}")
        if forced is None and is_setup(cell) and kind != "skip":
            problems.append(f"{where} is a set-up cell (imports) but is not skipped")
        if forced is None and is_training_log(cell) and kind != "skip":
            problems.append(f"{where} shows a training log but is not skipped")
        levels = heading_levels(source_of(cell)) if cell["cell_type"] == "markdown" else []
        if forced is None and levels and min(levels) <= 2 and kind != "slide":
            problems.append(f"{where} opens a section (# or ##) but does not start a slide")
        if forced is None and is_solution(cell) and kind in ("fragment", "-"):
            problems.append(
                f"{where} is an exercise's solution on the slide that asks the question: "
                "give it a subslide"
            )
    first_shown = next((current_type(c) for c in cells if current_type(c) not in HIDDEN), None)
    if cells and first_shown != "slide":
        problems.append(f"the deck starts with a {first_shown!r} cell, not a slide")
    for members in slides(notebook):
        lines = sum(height(cells[i]) for i in members)
        if len(members) > 1 and lines > SLIDE_LINES:
            problems.append(
                f"the slide of cells {members[0]}..{members[-1]} is about {lines} lines tall, "
                f"more than a projector shows ({SLIDE_LINES}): start a subslide inside it"
            )
    return problems


def summary(notebook: dict) -> str:
    """One line: how many slides, subslides, fragments and skipped cells a deck has."""
    kinds = [current_type(c) for c in notebook["cells"]]
    counts = ", ".join(f"{kinds.count(t)} {t if t != '-' else 'continued'}" for t in SLIDE_TYPES)
    return f"{len(slides(notebook))} slides in all ({counts})"


def tag_file(path: Path, write: bool = True) -> list[str]:
    """Tag one notebook file in place (outputs untouched); returns check_tags' problems."""
    text = Path(path).read_text(encoding="utf-8")
    notebook = json.loads(text)
    if write:
        tag_notebook(notebook)
        new_text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
        if new_text != text:
            Path(path).write_text(new_text, encoding="utf-8")
    return check_tags(notebook)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fer_helpers.course.slideshow",
        description="Tag notebooks for presenting as slides (metadata.slideshow.slide_type).",
    )
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebook files to tag in place")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; report problems (exit status 1)"
    )
    args = parser.parse_args(argv)
    failed = False
    for path in args.notebooks:
        if not path.is_file():
            print(f"{path}: no such notebook", file=sys.stderr)
            failed = True
            continue
        problems = tag_file(path, write=not args.check)
        notebook = json.loads(path.read_text(encoding="utf-8"))
        print(f"{path}: {summary(notebook)}")
        for problem in problems:
            print(f"  {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
