"""Where things live: paths resolve from the repository root, never absolute."""

from __future__ import annotations

import os
from pathlib import Path


def _find_root() -> Path:
    # An editable install (pip install -e .) keeps the package inside the repository.
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "fer_helpers").is_dir():
        return here
    return Path.cwd()


PROJECT_ROOT: Path = _find_root()
DATA_DIR: Path = PROJECT_ROOT / "data"
FIGURES_DIR: Path = PROJECT_ROOT / "figures"
WEIGHTS_DIR: Path = PROJECT_ROOT / "weights"


def cache_dir() -> Path:
    """Folder for decoded-image caches: $FER_CACHE_DIR, else data/cache/."""
    return Path(os.environ.get("FER_CACHE_DIR") or DATA_DIR / "cache")


def figure_path(name: str, data_tag: str = "") -> Path:
    """Path under figures/ for a plot a notebook writes; creates the folder.

    data_tag (FaceData.tag) goes into the file name as in weights_path, so a quick
    run on synthetic or tiny data (the tests) never overwrites the plots of a run on
    the full FER2013: 06_training_curves.png, 06_training_curves.synthetic-tiny.png.
    """
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    return FIGURES_DIR / tagged(name, data_tag)


def weights_path(name: str, data_tag: str = "") -> Path:
    """Path under weights/ for a trained model; creates the folder.

    data_tag (FaceData.tag: "", "synthetic", "tiny" or "synthetic-tiny") goes into
    the file name, so a quick run on synthetic or tiny data never overwrites the
    weights trained on the full FER2013: face_expression.pth, face_expression.tiny.pth.
    """
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    return WEIGHTS_DIR / tagged(name, data_tag)


def tagged(name: str, data_tag: str) -> str:
    """name with the data tag before its suffix: tagged("a.pth", "tiny") == "a.tiny.pth"."""
    if not data_tag:
        return name
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.{data_tag}.{suffix}" if dot else f"{name}.{data_tag}"
