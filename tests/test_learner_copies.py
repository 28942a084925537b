"""Learner copies and the hand-out: no solution survives; a copy stops at the first exercise."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from fer_helpers.course.handouts import (
    HANDOUT_FILES,
    has_solutions,
    write_handout,
    write_learner_copies,
)
from fer_helpers.exercises import BEGIN

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WITH_EXERCISES = [p for p in NOTEBOOKS if has_solutions(json.loads(p.read_text()))]


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
        assert "NotDoneYet(" in code and BEGIN not in all_text(learner)
        # The prose is the original's: exercise statements may spell out a step
        # (04 lists zero_grad ... step), but no solution code moves into them.
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
    for phrase in ("python3 tasks.py setup", "NOT DONE YET", "NOT YET RIGHT", "data/fer2013/"):
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
