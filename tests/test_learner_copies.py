"""Learner copies open and run up to the first exercise, then stop with NOT DONE YET."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from fer_helpers.exercises import BEGIN
from fer_helpers.handouts import has_solutions, write_learner_copies

ROOT = Path(__file__).resolve().parents[1]
WITH_EXERCISES = [
    p
    for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if has_solutions(json.loads(p.read_text()))
]


def test_no_solution_survives_in_a_learner_copy(tmp_path):
    for copy in write_learner_copies(ROOT / "notebooks", tmp_path):
        original = json.loads((ROOT / "notebooks" / copy.name).read_text())
        learner = json.loads(copy.read_text())
        assert not has_solutions(learner), copy.name
        solutions = [
            line.strip()
            for cell in original["cells"]
            if cell["cell_type"] == "code"
            for block in "".join(cell["source"]).split(BEGIN)[1:]
            for line in block.split("# END SOLUTION")[0].splitlines()[1:]
            if len(line.strip()) > 12  # skip lines like `return x` that also occur elsewhere
        ]
        learner_code = "\n".join(
            "".join(c["source"]) for c in learner["cells"] if c["cell_type"] == "code"
        )
        assert [s for s in solutions if s in learner_code] == [], copy.name


@pytest.mark.parametrize("notebook", WITH_EXERCISES, ids=lambda p: p.name)
def test_learner_copy_stops_at_the_first_exercise_with_a_clear_message(
    notebook, tmp_path, monkeypatch
):
    monkeypatch.setenv("FER_TINY", "1")
    write_learner_copies(ROOT / "notebooks", tmp_path)
    copy = nbformat.read(tmp_path / notebook.name, as_version=4)
    client = NotebookClient(
        copy,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    with pytest.raises(CellExecutionError) as stopped:
        client.execute()
    assert stopped.value.ename == "NotDoneYet", stopped.value
    cells = copy.cells
    failed = next(
        i
        for i, c in enumerate(cells)
        if c.cell_type == "code"
        and any(o.get("output_type") == "error" for o in c.get("outputs", []))
    )
    original = nbformat.read(notebook, as_version=4).cells
    first_exercise = next(
        i for i, c in enumerate(original) if c.cell_type == "code" and BEGIN in c.source
    )
    # It stops at the first exercise, or at the check right after it.
    assert failed in (first_exercise, first_exercise + 1)
