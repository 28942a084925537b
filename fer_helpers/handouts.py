"""Learner copies: the notebooks with every exercise's solution replaced by a stub.

    python3 tasks.py learner      # writes build/learner/notebooks/

A solution is the lines between `# BEGIN SOLUTION [name]` and `# END SOLUTION`
in a code cell (see fer_helpers.exercises). The stub keeps the indentation, so
a function body stays a valid function:

    def softmax(scores):
        raise NotDoneYet("softmax")  # your code here
"""

from __future__ import annotations

import json
from pathlib import Path

from .exercises import BEGIN, END


def stub_solutions(source: str) -> str:
    """Replace every marked solution in a cell's source by a NotDoneYet stub."""
    out: list[str] = []
    inside = False
    for number, line in enumerate(source.splitlines(), start=1):
        text = line.strip()
        if text.startswith(BEGIN):
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution")
            indent = line[: len(line) - len(line.lstrip())]
            what = text[len(BEGIN) :].strip(" :") or "this exercise"
            out.append(f"{indent}raise NotDoneYet({what!r})  # your code here")
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
