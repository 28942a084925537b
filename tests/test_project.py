"""The project's promises: pinned environments agree, notebooks are committed clean."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def requirement_pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip().lstrip("- ").strip()
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)", line)
        if match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def test_environment_yml_pins_exactly_what_requirements_txt_pins():
    requirements = requirement_pins((ROOT / "requirements.txt").read_text().splitlines())
    text = (ROOT / "environment.yml").read_text()
    pip_section = text.split("- pip:", 1)[1].splitlines()
    environment = requirement_pins(pip_section)
    assert requirements, "requirements.txt pins nothing"
    assert environment == requirements
    assert requirements["torch"] == "2.14.1" and requirements["torchvision"] == "0.29.1"
    assert int(requirements["opencv-python-headless"].split(".")[0]) < 5


def test_notebooks_are_committed_without_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    dirty = [
        path.name
        for path in notebooks
        for cell in json.loads(path.read_text())["cells"]
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, f"notebooks with outputs (run `python3 tasks.py strip`): {sorted(set(dirty))}"


def test_each_notebook_has_a_unique_number_and_a_title_that_says_it():
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    numbers = [p.name[:2] for p in paths]
    assert all(n.isdigit() for n in numbers) and len(set(numbers)) == len(numbers), numbers
    for path in paths:
        first = "".join(json.loads(path.read_text())["cells"][0]["source"])
        assert first.startswith(f"# {path.name[:2]} "), f"{path.name} starts with {first[:30]!r}"


def test_no_fer2013_data_is_tracked():
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        return  # not a git checkout (an unpacked copy): nothing to check
    pattern = re.compile(r"(Training|PublicTest|PrivateTest)_\d+\.(jpg|png)$|fer2013\.csv$")
    assert not [f for f in tracked.stdout.splitlines() if pattern.search(f)]


def load_tasks():
    """tasks.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_tasks", ROOT / "tasks.py")
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    return tasks


def test_tasks_make_a_relative_fer2013_dir_absolute_for_the_kernels(tmp_path, monkeypatch):
    # Kernels run in notebooks/, so FER2013_DIR=../shared/fer2013 given at the repository
    # root must reach them as an absolute path.
    tasks = load_tasks()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FER2013_DIR", "../shared/fer2013")
    tasks.absolute_data_dir()
    assert os.environ["FER2013_DIR"] == str((tmp_path / "../shared/fer2013").resolve())
    monkeypatch.setenv("FER2013_DIR", "synthetic")
    tasks.absolute_data_dir()
    assert os.environ["FER2013_DIR"] == "synthetic"


def test_ship_takes_its_tta_option_anywhere_and_leaves_the_rest_in_order():
    split = load_tasks().split_tta_option
    args = ["best-7class", "run.pth", "python -m fer_helpers train --tta", "a note"]
    assert split(args) == (args, None)  # "--tta" inside the quoted command is not the option
    assert split([*args, "--tta", "shifts"]) == (args, "shifts")
    assert split(["--tta=none", *args]) == (args, "none")
    assert split([*args[:2], "--tta", "flip", *args[2:]]) == (args, "flip")
    for bad in (["--tta"], ["--tta", "mirror"], ["--tta=flip", "--tta", "shifts"]):
        with pytest.raises(ValueError, match="--tta|mode"):
            split([*args, *bad])


# --- the package's structure -------------------------------------------------------------------

PACKAGE = ROOT / "fer_helpers"


def _modules() -> list[str]:
    """Every module and subpackage of fer_helpers, as dotted names below it."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and parts[-1] != "__main__":
            names.append(".".join(parts))
    return names


def _imports_of(path: Path, name: str) -> set[str]:
    """The fer_helpers modules a module imports at run time (not under TYPE_CHECKING)."""
    import ast

    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(node)
        for guard in ast.walk(tree)
        if isinstance(guard, ast.If) and "TYPE_CHECKING" in ast.unparse(guard.test)
        for child in guard.body
        for node in ast.walk(child)
    }
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package[: len(package) - node.level + 1] if node.level > 1 else package
        target = [*base, *(node.module.split(".") if node.module else [])]
        for alias in node.names:
            candidate = ".".join([*target, alias.name])
            found.add(candidate if candidate in set(_modules()) else ".".join(target))
    return {f for f in found if f}


def test_the_package_map_lists_every_module():
    import fer_helpers

    listed = set(re.findall(r"^- (\w+)\s", fer_helpers.__doc__, flags=re.MULTILINE))
    top = {name.split(".")[0] for name in _modules()}
    assert top - listed == set(), "add these to the map in fer_helpers/__init__.py"
    assert listed - top == set(), "the map in fer_helpers/__init__.py names modules that are gone"


def test_no_module_imports_itself_round_a_circle():
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = _imports_of(path, name)
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            cycle = trail[trail.index(node) :] + [node]
            raise AssertionError("import circle: " + " -> ".join(cycle))
        if node in done:
            return
        for child in sorted(graph.get(node, ())):
            visit(child, [*trail, node])
        done.add(node)

    for name in graph:
        visit(name, [])
    assert "train" in graph["recipes"] and "recipes" not in graph["train"]
    assert "inference" in graph["train"] and "train" not in graph["inference"]


def test_importing_the_package_changes_no_global_state():
    import subprocess
    import sys

    code = (
        "import matplotlib as mpl; before = dict(mpl.rcParams); "
        "import importlib, pkgutil, fer_helpers; "
        "[importlib.import_module('fer_helpers.' + m.name) "
        " for m in pkgutil.walk_packages(fer_helpers.__path__) if m.name != '__main__']; "
        "changed = [k for k, v in mpl.rcParams.items() if before.get(k) != v]; "
        "print(changed); assert not changed"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
