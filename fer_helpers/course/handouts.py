"""Hand-outs: the course as a folder a teacher gives to learners, solutions stubbed.

    python3 tasks.py learner      # writes the hand-out into build/learner/

`write_handout` writes the learner copies of the notebooks, the fer_helpers
package, what installing and running it needs (tasks.py, the pinned
requirements, the data/figures/weights folders with their READMEs) and a README
for learners. `write_learner_copies` writes only the notebooks.

A solution is the lines between `# BEGIN SOLUTION [name]` and `# END SOLUTION`
in a code cell (see fer_helpers.exercises), inside a function or a method. The
stub keeps the indentation, so the function stays valid, and it hands the call
to the exercise's reference in fer_helpers.exercises.references:

    def softmax(scores):
        return NotDoneYet.use_reference('softmax', locals())  # your code here

So a learner's Run All reaches the end with every exercise open: the first
time a stub runs it says so in one loud line ("⚠ softmax: not done yet — using
the reference so the rest of the notebook runs; come back to it"), its checker
reports "not done yet" instead of OK, and the later cells run on the reference.
No solution text goes into the copy: the reference lives in fer_helpers.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

from ..exercises import BEGIN, END

# What a learner needs beside the notebooks and the package, relative to the
# repository root: set-up (tasks.py and the pinned environment) and the folders
# the notebooks read from and write to, each with its README.
HANDOUT_FILES = (
    "pyproject.toml",
    "requirements.txt",
    "environment.yml",
    "tasks.py",
    ".gitignore",
    "data/README.md",
    "figures/README.md",
    "weights/README.md",
)


STUB = "{indent}return NotDoneYet.use_reference({what!r}, locals())  # your code here"
"""A solution's stand-in in a learner copy: the reference runs until the learner replaces it."""


def _function_lines(source: str) -> set[int]:
    """The line numbers (from 1) inside a function's or method's body in a cell's source.

    IPython lines (%magic, !command) are read as `pass`, so a cell with them parses.
    """
    plain = "\n".join(
        line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip()[:1] in ("%", "!") else line
        for line in source.splitlines()
    )
    try:
        tree = ast.parse(plain)
    except SyntaxError as error:
        raise ValueError(f"line {error.lineno}: the cell does not parse: {error.msg}") from None
    return {
        number
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for number in range(node.lineno + 1, (node.end_lineno or node.lineno) + 1)
    }


def stub_solutions(source: str) -> str:
    """Replace every marked solution in a cell's source by a stub that runs the reference.

    Raises ValueError for unbalanced markers, and for a solution outside a
    function (a stub there could not return the reference's result: put the
    exercise in a function).
    """
    out: list[str] = []
    inside = False
    in_function: set[int] | None = None  # parsed only for a cell with a solution
    for number, line in enumerate(source.splitlines(), start=1):
        text = line.strip()
        if text.startswith(BEGIN):
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution")
            indent = line[: len(line) - len(line.lstrip())]
            what = text[len(BEGIN) :].strip(" :") or "this exercise"
            in_function = _function_lines(source) if in_function is None else in_function
            if number not in in_function:
                raise ValueError(
                    f"line {number}: the solution {what!r} is not inside a function: a learner "
                    "copy replaces it by a stub that returns the reference's result, so write "
                    "the exercise as a function (or method) the later cells call"
                )
            out.append(STUB.format(indent=indent, what=what))
            inside = True
        elif text.startswith(END):
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out)


def learner_notebook(notebook: dict) -> dict:
    """A copy of a notebook (as JSON) with solutions stubbed and outputs cleared."""
    copy = json.loads(json.dumps(notebook))
    for cell in copy["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = stub_solutions(source)
        cell["outputs"], cell["execution_count"] = [], None
    return copy


def has_solutions(notebook: dict) -> bool:
    """True when some code cell holds a marked solution."""
    return any(BEGIN in "".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")


def write_learner_copies(source_dir: Path, dest_dir: Path) -> list[Path]:
    """Write a learner copy of every numbered notebook in source_dir into dest_dir."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(source_dir).glob("[0-9][0-9]_*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        target = dest_dir / path.name
        target.write_text(
            json.dumps(learner_notebook(notebook), indent=1, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        written.append(target)
    return written


def _title(notebook: dict) -> str:
    """'Setup and data' from a first cell '# 01 · Setup and data'."""
    first = "".join(notebook["cells"][0]["source"]).splitlines()[0] if notebook["cells"] else ""
    return re.sub(r"^#+\s*\d*\s*·?\s*", "", first).strip()


def _exercises(notebook: dict) -> int:
    """How many 'Your turn' exercises a notebook asks for (its headings say so)."""
    return sum(
        1
        for cell in notebook["cells"]
        if cell["cell_type"] == "markdown"
        for line in "".join(cell["source"]).splitlines()
        if line.startswith("#") and "Your turn" in line
    )


def learner_readme(notebooks: list[Path]) -> str:
    """The hand-out's README.md: set-up, the notebooks in order, how exercises work."""
    rows = []
    for path in notebooks:
        notebook = json.loads(Path(path).read_text(encoding="utf-8"))
        count = _exercises(notebook)
        rows.append(f"| `{path.stem}` | {_title(notebook)} | {count or '–'} |")
    table = "\n".join(["| notebook | topic | exercises |", "|---|---|---:|", *rows])
    return LEARNER_README.format(table=table)


LEARNER_README = """\
# Face detection and emotion classification — your copy

A course in facial-expression recognition with PyTorch: numbered Jupyter
notebooks you work through in order, and the package `fer_helpers` they share.
It starts from softmax and cross-entropy worked by hand and ends with a network
reading the expression on faces in your own photos. Everything runs on a laptop
CPU; an NVIDIA GPU (CUDA) or an Apple M-series GPU (MPS) is used when present.

## Set up, once

You need Python 3.10 or newer, nothing else. In this folder:

```bash
python3 tasks.py setup             # creates .venv/ and installs everything, once
.venv/bin/jupyter lab notebooks/   # then open 01 and work in order
```

On Windows write `py tasks.py setup` and `.venv\\Scripts\\jupyter lab notebooks`.
Set-up downloads PyTorch and the other pinned packages (`requirements.txt`;
conda users: `environment.yml`), so it takes a few minutes and several GB of
disk, once. After that everything runs offline.

From a terminal, `python3 tasks.py notebook 02` runs one notebook top to bottom
(as *Restart Kernel and Run All Cells* would) into `build/notebooks/`, and
`python3 tasks.py course` runs all of them in order. Both run to the end even
with exercises still open (see below).

## The notebooks, in order

{table}

Each notebook runs on its own, but later ones use what earlier ones trained:
06 trains the 3-class model that 07, 11, 12 and 13 use, 08 trains the 7-class
models that 09 uses. If one is missing, the notebook trains it first.

## Exercises: "Your turn"

Each exercise is a function (in 05, also the two methods of a network) with a
line

```python
return NotDoneYet.use_reference('softmax', locals())  # your code here
```

where your code goes: replace that line with your solution and run the cell.
The cell after it runs a **checker**, which calls your code on several cases
and prints `OK: softmax passed all 7 checks`, or one line starting with
`NOT YET RIGHT:` that says what is wrong, often naming the usual mistake (a
forgotten minus sign, the wrong axis, a slice one pixel too long). Change your
code and run both cells again.

Until you replace it, that line hands the work to the course's reference
version (in `fer_helpers/exercises/references.py`), so you can run and read the
whole notebook even while you are stuck on an exercise. It says so loudly, once:

```text
⚠ softmax: not done yet — using the reference so the rest of the notebook runs; come back to it
```

and the checker prints that line instead of `OK`. Nothing is broken: that is
where your work starts. Run All reaches the end of every notebook with every
exercise still open, and the cells after an exercise run on the reference.

Once you have written your function and run its cell, your version is the one
used: the checker checks yours, and the cells after it use yours (your softmax
draws the explorer in 03, your `crops_to_input` feeds the network in 12); run
them again to see it at work. Do the exercises in order, as later ones may call
earlier ones (your `cross_entropy` may use your `one_hot`).

The markdown above each exercise explains what to write and gives hints; the
notebooks' earlier cells show the pieces you need.

## About `fer_helpers`: the answers are in there

Later notebooks must run even when an earlier exercise is still open, so
`fer_helpers` holds working versions of most of what the exercises ask for:
the confusion matrix, precision, recall and F1 in `fer_helpers/metrics.py`,
class weights and the sparse center loss in `fer_helpers/losses.py`, forward
hooks and channel specificity in `fer_helpers/features.py`, the attention heads,
SI100FaceNet and the other networks in `fer_helpers/models.py`, the face crop in
`fer_helpers/faces.py`, and the checkers in
`fer_helpers/exercises/` compute reference answers to compare yours with;
`fer_helpers/exercises/references.py` holds the reference of every exercise,
the one that runs while yours is not done. Nothing stops you from reading
them. The honest advice: write your own first, get the checker to say OK, and
look afterwards to compare. You learn the thing by writing it, not by reading
it.

## The data

FER2013 (35,887 grayscale faces of 48×48 pixels, seven emotions) cannot be
redistributed, so bring your own copy: put it in `data/fer2013/`, or set the
environment variable `FER2013_DIR` to its folder. `data/README.md` lists the
layouts it may come in; all of them work. Without a copy, every notebook runs
on synthetic cartoon faces and says so loudly: the code is the same, the
accuracies mean nothing about real faces. `FER_TINY=1` takes a few images per
class for a quick run.

Models you train are saved in `weights/`, plots in `figures/`. Faces from
FER2013 are only shown, never saved.

Training on the full FER2013 takes a while on a CPU: on the course's 2-core
test machine notebook 06 took under 3 minutes (its loop trains 2 of the
handout's 10 epochs; with all 10 the loop alone takes about 9 minutes), and
08 and 10 about 6 to 7 minutes each. A finished model is loaded, not trained again,
and the models of 06 and 08 are saved after every epoch, so an interrupted
training carries on where it stopped.
"""


def _copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return target


def write_handout(root: Path, dest: Path) -> list[Path]:
    """Write the hand-out for learners into dest; returns the files written.

    dest gets notebooks/ (learner copies), fer_helpers/ (the package, without
    caches), set-up files, the data/, figures/ and weights/ folders with only
    their READMEs, and README.md for learners. Earlier notebooks/ and
    fer_helpers/ in dest are replaced, so no stale file survives.
    """
    root, dest = Path(root), Path(dest)
    missing = [name for name in HANDOUT_FILES if not (root / name).is_file()]
    if missing or not (root / "fer_helpers").is_dir():
        raise FileNotFoundError(f"{root} is not the course's repository: no {missing}")
    for folder in ("notebooks", "fer_helpers"):
        shutil.rmtree(dest / folder, ignore_errors=True)
    notebooks = write_learner_copies(root / "notebooks", dest / "notebooks")
    shutil.copytree(
        root / "fer_helpers",
        dest / "fer_helpers",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    package = sorted(p for p in (dest / "fer_helpers").rglob("*") if p.is_file())
    files = [_copy(root / name, dest / name) for name in HANDOUT_FILES]
    readme = dest / "README.md"
    readme.write_text(learner_readme(notebooks), encoding="utf-8")
    return [*notebooks, *package, *files, readme]
