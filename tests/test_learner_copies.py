"""Learner copies and the hand-out: no solution survives; a copy runs to the end undone.

Every learner copy is executed top to bottom in tiny mode (FER_TINY=1, synthetic
faces without a FER2013 copy) with every exercise left undone: the stubs run
the references, each says so once, the checkers say "not done yet". That takes
as long as the nbval run of the teacher's notebooks (a few minutes on 2 cores).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from fer_helpers.course.handouts import (
    HANDOUT_FILES,
    has_solutions,
    learner_notebook,
    write_handout,
    write_learner_copies,
)
from fer_helpers.course.kernels import AskingClient as Client
from fer_helpers.exercises import ANNOUNCED, BEGIN, NotDoneYet
from fer_helpers.exercises.references import REFERENCES

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WITH_EXERCISES = [p for p in NOTEBOOKS if has_solutions(json.loads(p.read_text()))]


LOUD = "\u26a0 {}: not done yet \u2014 using the reference so the rest of the notebook runs"


def exercise_names(notebook: dict) -> list[str]:
    """The names after `# BEGIN SOLUTION`, in order."""
    return [
        line.strip()[len(BEGIN) :].strip(" :") or "this exercise"
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines()
        if line.strip().startswith(BEGIN)
    ]


def solution_lines(notebook: dict) -> list[str]:
    """Every line between the solution markers that is long enough to give a solution away.

    Short lines such as `return x` or `else:` also occur elsewhere and are skipped.
    """
    return [
        line.strip()
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        for block in "".join(cell["source"]).split(BEGIN)[1:]
        for line in block.split("# END SOLUTION")[0].splitlines()[1:]
        if len(line.strip()) > 12
    ]


def all_text(notebook: dict, kinds: tuple[str, ...] = ("code", "markdown")) -> str:
    return "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] in kinds)


@pytest.fixture(scope="module")
def handout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    dest = tmp_path_factory.mktemp("handout")
    return dest, write_handout(ROOT, dest)


def test_no_solution_survives_in_a_learner_copy(tmp_path):
    for copy in write_learner_copies(ROOT / "notebooks", tmp_path):
        original = json.loads((ROOT / "notebooks" / copy.name).read_text())
        learner = json.loads(copy.read_text())
        assert not has_solutions(learner), copy.name
        learner_code = all_text(learner, ("code",))
        assert [s for s in solution_lines(original) if s in learner_code] == [], copy.name


def test_the_handouts_notebooks_hold_no_line_of_any_solution(handout):
    dest, _ = handout
    copies = sorted((dest / "notebooks").glob("*.ipynb"))
    assert [p.name for p in copies] == [p.name for p in NOTEBOOKS]
    for path in WITH_EXERCISES:
        original = json.loads(path.read_text())
        solutions = solution_lines(original)
        assert solutions, path.name  # the search below has something to find
        learner = json.loads((dest / "notebooks" / path.name).read_text())
        code = all_text(learner, ("code",))
        assert [s for s in solutions if s in code] == [], path.name
        assert "NotDoneYet.use_reference(" in code and BEGIN not in all_text(learner)
        # The prose is the original's: exercise statements may spell out a step
        # (06 lists zero_grad ... step), but no solution code moves into them.
        assert all_text(learner, ("markdown",)) == all_text(original, ("markdown",))


def test_the_handout_has_what_setting_up_and_running_needs(handout):
    dest, written = handout
    for name in HANDOUT_FILES:
        assert (dest / name).read_bytes() == (ROOT / name).read_bytes(), name
    assert not [p for p in dest.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"]
    for folder in ("data", "figures", "weights"):  # no data, plots or models of the teacher's
        assert [p.name for p in (dest / folder).iterdir()] == ["README.md"], folder
    package = sorted(p.relative_to(ROOT) for p in (ROOT / "fer_helpers").rglob("*.py"))
    assert sorted(p.relative_to(dest) for p in (dest / "fer_helpers").rglob("*.py")) == package
    assert all(p.is_file() for p in written) and dest / "README.md" in written


def test_fer_helpers_imports_from_the_handout_and_finds_its_folders_there(handout):
    dest, _ = handout
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import fer_helpers, fer_helpers.exercises.softmax; from fer_helpers.paths import "
            "PROJECT_ROOT; print(fer_helpers.__file__); print(PROJECT_ROOT)",
        ],
        cwd=dest,
        capture_output=True,
        text=True,
        check=True,
    )
    package, project_root = found.stdout.split()
    assert Path(package).resolve() == (dest / "fer_helpers" / "__init__.py").resolve()
    assert Path(project_root).resolve() == dest.resolve()  # data/ and weights/ of the hand-out


def test_the_learner_readme_lists_every_notebook_and_says_where_the_answers_are(handout):
    dest, _ = handout
    readme = (dest / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert f"`{path.stem}`" in readme, path.stem
    phrases = ("python3 tasks.py setup", LOUD.format("softmax"), "NOT YET RIGHT", "data/fer2013/")
    for phrase in (*phrases, "NotDoneYet.use_reference('softmax', locals())  # your code here"):
        assert phrase in readme, phrase
    pointers = re.findall(r"`(fer_helpers/[\w/]+(?:\.py)?)`", readme)
    assert len(pointers) >= 5
    assert [p for p in pointers if not (dest / p).exists()] == []  # every pointer is right


def test_building_again_leaves_no_stale_file(handout, tmp_path):
    write_handout(ROOT, tmp_path)
    (tmp_path / "notebooks" / "99_removed.ipynb").write_text("{}")
    (tmp_path / "fer_helpers" / "removed.py").write_text("")
    write_handout(ROOT, tmp_path)
    assert not (tmp_path / "notebooks" / "99_removed.ipynb").exists()
    assert not (tmp_path / "fer_helpers" / "removed.py").exists()
    with pytest.raises(FileNotFoundError, match="not the course's repository"):
        write_handout(tmp_path / "nowhere", tmp_path / "out")


def test_every_exercise_has_a_reference_with_its_functions_parameters():
    for path in WITH_EXERCISES:
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] != "code" or BEGIN not in source:
                continue
            for node in ast.walk(ast.parse(source)):
                if not isinstance(node, ast.FunctionDef):
                    continue
                body = ast.get_source_segment(source, node) or ""
                for name in exercise_names({"cells": [{"cell_type": "code", "source": body}]}):
                    assert name in REFERENCES, f"{path.name}: no reference for {name!r}"
                    wanted = list(inspect.signature(REFERENCES[name]).parameters)
                    assert [a.arg for a in node.args.args] == wanted, (path.name, name)


def checkers() -> dict[str, object]:
    """Every check_* function of fer_helpers.exercises' modules, by name."""
    import fer_helpers.exercises as package

    found = {}
    for module in pkgutil.iter_modules(package.__path__):
        loaded = importlib.import_module(f"{package.__name__}.{module.name}")
        found.update({k: v for k, v in vars(loaded).items() if k.startswith("check_")})
    return found


@pytest.mark.parametrize("notebook", WITH_EXERCISES, ids=lambda p: p.name)
def test_each_stubbed_exercise_runs_its_reference_and_its_checker_says_not_done(notebook, capsys):
    """Quick, without a kernel: each exercise cell, then the checks in the cell after it.

    In the learner copy every checker says "not done yet" and nothing stops; in
    the teacher's notebook (solutions in place) every checker says OK, as before.
    """
    import onnx
    from torch import nn

    check = checkers()
    original = json.loads(notebook.read_text())["cells"]
    learner = learner_notebook(json.loads(notebook.read_text()))["cells"]
    modules = {"np": np, "torch": torch, "nn": nn, "onnx": onnx, "NotDoneYet": NotDoneYet}
    teachers, learners = dict(modules), dict(modules)  # one namespace each, as in a kernel
    for i, cell in enumerate(original):
        if cell["cell_type"] != "code" or BEGIN not in "".join(cell["source"]):
            continue
        calls = [
            node
            for node in ast.walk(ast.parse("".join(original[i + 1]["source"])))
            if isinstance(node, ast.Call) and getattr(node.func, "id", "").startswith("check_")
        ]
        assert calls, f"{notebook.name}: no checker after cell {i}"
        names = exercise_names({"cells": [cell]})

        exec("".join(cell["source"]), teachers)
        for call in calls:
            check[call.func.id](teachers[call.args[0].id])
        out, err = capsys.readouterr()
        assert out.count("OK: ") == len(calls) and err == "", (notebook.name, i, out, err)

        ANNOUNCED.clear()
        exec(learner[i]["source"], learners)
        for call in calls:
            check[call.func.id](learners[call.args[0].id])  # not done is no error
        out, err = capsys.readouterr()
        assert "OK" not in out, (notebook.name, i, out)
        assert err.splitlines() == [LOUD.format(n) + "; come back to it" for n in names]


def stream_text(cells: list, name: str) -> str:
    return "".join(
        o.get("text", "")
        for c in cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == name
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_a_learner_copy_with_every_exercise_undone_runs_to_the_end(notebook, tmp_path, monkeypatch):
    """Run All of the learner copy, in tiny mode and one kernel, as a learner's first Run All."""
    monkeypatch.setenv("FER_TINY", "1")
    write_learner_copies(ROOT / "notebooks", tmp_path)
    copy = nbformat.read(tmp_path / notebook.name, as_version=4)
    client = Client(
        copy,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()  # a CellExecutionError here names the cell that stopped it
    errors = [
        o for c in copy.cells if c.cell_type == "code" for o in c.outputs
        if o.output_type == "error"
    ]  # fmt: skip
    assert errors == []
    out, err = stream_text(copy.cells, "stdout"), stream_text(copy.cells, "stderr")
    original = json.loads(notebook.read_text())
    for name in exercise_names(original):  # each undone exercise, loudly, once
        assert err.count(LOUD.format(name)) == 1, (name, err)
    assert err.count("\u26a0") == len(exercise_names(original))
    assert "OK:" not in out and "NOT DONE YET" not in out + err and "NOT YET RIGHT" not in out
    # No solution text, in the code or in what it printed.
    text = all_text(copy.dict(), ("code",)) + out + err
    assert [line for line in solution_lines(original) if line in text] == []
