"""Shared fixtures: small fake copies of FER2013 in every download layout.

Every layout is written from the same images with the same labels, so a test
can check that an image gets the same label whichever layout it came from.
PNG keeps pixels exact (JPEG would not).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_helpers.labels import EMOTIONS

PER_CLASS = {"train": 3, "validation": 2, "test": 2}
USAGE = {"train": "Training", "validation": "PublicTest", "test": "PrivateTest"}


@pytest.fixture(autouse=True)
def isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test sees the user's FER2013_DIR, FER_TINY or cache unless it sets them."""
    monkeypatch.delenv("FER2013_DIR", raising=False)
    monkeypatch.delenv("FER_TINY", raising=False)
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def make_faces(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random 48x48 'faces' with known labels for each split; every image differs."""
    rng = np.random.default_rng(seed)
    faces = {}
    for split, k in PER_CLASS.items():
        labels = np.repeat(np.arange(len(EMOTIONS)), k)
        faces[split] = (rng.integers(0, 256, (len(labels), 48, 48), dtype=np.uint8), labels)
    return faces


def write_csv(path: Path, faces: dict, columns: tuple[str, str, str]) -> Path:
    emotion, pixels, usage = columns
    rows = [
        {emotion: int(label), pixels: " ".join(map(str, image.ravel())), usage: USAGE[split]}
        for split, (images, labels) in faces.items()
        for image, label in zip(images, labels, strict=True)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_folders(root: Path, faces: dict, folder_of: dict[str, str], prefixed: bool) -> Path:
    for split, (images, labels) in faces.items():
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            name = f"{USAGE[split]}_{i}.png" if prefixed else f"{i}.png"
            folder = root / folder_of[split] / EMOTIONS[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / name)
    return root


LAYOUTS = {
    "fer2013.csv": lambda root, faces: (
        write_csv(root / "fer2013.csv", faces, ("emotion", "pixels", "Usage")).parent
    ),
    # Kaggle's icml_face_data.csv has spaces in its header: "emotion, Usage, pixels".
    "icml_face_data.csv": lambda root, faces: (
        write_csv(root / "icml_face_data.csv", faces, ("emotion", " pixels", " Usage")).parent
    ),
    "train+test prefixed": lambda root, faces: write_folders(
        root, faces, {"train": "train", "validation": "test", "test": "test"}, prefixed=True
    ),
    "images/train+validation": lambda root, faces: write_folders(
        root,
        {s: faces[s] for s in ("train", "validation")},
        {"train": "images/train", "validation": "images/validation"},
        prefixed=False,
    ),
    "train+validation+test": lambda root, faces: write_folders(
        root, faces, {"train": "train", "validation": "validation", "test": "test"}, prefixed=False
    ),
}


@pytest.fixture
def faces() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return make_faces()


@pytest.fixture(params=sorted(LAYOUTS))
def layout_copy(request: pytest.FixtureRequest, tmp_path: Path, faces: dict) -> tuple[str, Path]:
    """(layout name, root folder) of a fake FER2013 copy, one per download layout."""
    return request.param, LAYOUTS[request.param](tmp_path, faces)


def assert_checker_contract(checker, right, checks: int, capsys: pytest.CaptureFixture) -> None:
    """What every exercise checker promises a learner.

    It passes a right answer (saying how many checks), lets an unfinished
    exercise's NotDoneYet through untouched, and names a forgotten `return`.
    """
    from fer_helpers.exercises import ExerciseError, NotDoneYet

    def stub(*args: object) -> None:
        raise NotDoneYet("exercise")

    checker(right)
    assert f"passed all {checks} checks" in capsys.readouterr().out
    with pytest.raises(NotDoneYet):
        checker(stub)
    with pytest.raises(ExerciseError, match="forget `return`"):
        checker(lambda *args: None)


def train_one_batch(model, loss_fn, optimizer, x, y):
    """A learner's right answer to notebook 06's one training step (the exercise tests use it)."""
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()
