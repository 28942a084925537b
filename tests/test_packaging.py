"""`pip install .` gives the whole package: every module, the shipped weights, their model cards.

The wheel is built offline from a copy of what a clean clone holds (the files git tracks or
would track), so a stale build/ folder or an ignored local file cannot make it pass. About 5 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import fer_helpers
from fer_helpers.pretrained import SHIPPED

ROOT = Path(__file__).resolve().parents[1]
NEEDED = ("pyproject.toml", "README.md", "fer_helpers")  # what the build reads


def _build_tooling_missing() -> str | None:
    """Why a wheel cannot be built here offline, or None when it can (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> tuple[int, ...] | None:
        try:
            return tuple(int(part) for part in version(name).split(".")[:2])
        except (PackageNotFoundError, ValueError):
            return None

    if installed("pip") is None:
        return "pip is not installed in this environment"
    setuptools = installed("setuptools")
    if setuptools is None:
        return "setuptools is not installed in this environment"
    # setuptools builds wheels itself from version 70.1; before, it needs the wheel package.
    if setuptools < (70, 1) and installed("wheel") is None:
        return f"setuptools {setuptools} without the wheel package cannot build wheels"
    return None


pytestmark = pytest.mark.skipif(
    _build_tooling_missing() is not None, reason=f"cannot build a wheel: {_build_tooling_missing()}"
)


def _clean_clone_files() -> list[Path]:
    """The files below NEEDED that a clean clone would have (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *NEEDED],
        cwd=ROOT,
        capture_output=True,
    )
    if listed.returncode != 0:  # not a git checkout (an unpacked copy): take the tree as it is
        return [
            p.relative_to(ROOT)
            for name in NEEDED
            for p in ([ROOT / name] if (ROOT / name).is_file() else (ROOT / name).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
        ]
    names = [n for n in listed.stdout.decode().split("\0") if n]
    return [Path(n) for n in names if (ROOT / n).is_file()]  # tracked but deleted: gone


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("clone")
    for name in _clean_clone_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation"]
        + ["--no-index", "-w", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("fer_helpers-*.whl")
    return path


def test_the_wheel_holds_every_module_and_every_shipped_model(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {
        p.as_posix()
        for p in _clean_clone_files()
        if p.parts[0] == "fer_helpers" and p.suffix == ".py"
    }
    assert {m for m in modules if m.startswith("fer_helpers/course/")}, "no course modules?"
    assert {m for m in modules if m.startswith("fer_helpers/exercises/")}, "no exercises?"
    assert modules - names == set(), "modules missing from the wheel"
    shipped = {f"fer_helpers/weights/{name}{ext}" for name in SHIPPED for ext in (".pth", ".md")}
    assert shipped - names == set(), "weights or model cards missing from the wheel"
    # Every file of the weights folder: also the face detector's weights and their licence.
    weights = {
        p.as_posix() for p in _clean_clone_files() if p.parts[:2] == ("fer_helpers", "weights")
    }
    assert "fer_helpers/weights/mtcnn.pt" in weights
    assert weights - names == set(), "files of fer_helpers/weights/ missing from the wheel"
    shipped |= weights
    for name in shipped:  # whole files, not empty placeholders or Git LFS pointers
        assert zipfile.ZipFile(wheel).getinfo(name).file_size == (ROOT / name).stat().st_size


def test_the_wheel_carries_the_one_version_and_the_fer_command(wheel):
    archive = zipfile.ZipFile(wheel)
    info = f"fer_helpers-{fer_helpers.__version__}.dist-info"
    metadata = archive.read(f"{info}/METADATA").decode()
    assert f"\nVersion: {fer_helpers.__version__}\n" in metadata
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "fer = fer_helpers.cli:main" in entry_points


def test_the_installed_wheel_finds_its_weights_and_prints_its_version(wheel, tmp_path):
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q"]
        + ["--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    code = (
        "import fer_helpers, fer_helpers.pretrained as p; print(fer_helpers.__file__); "
        "print(all(p.is_shipped(n) and p.model_card_path(n).is_file() for n in p.SHIPPED))"
    )
    # From outside the repository, with the installed copy first on the path.
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    where, every_model = result.stdout.split()
    assert Path(where).is_relative_to(target)  # not the checkout's copy
    assert every_model == "True"
    version = subprocess.run(
        [sys.executable, "-m", "fer_helpers", "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert version.returncode == 0
    assert version.stdout == f"fer-helpers {fer_helpers.__version__}\n"
