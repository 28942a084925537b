"""fer_helpers.audit: blank images and duplicates within and across splits."""

from __future__ import annotations

import numpy as np

from fer_helpers.audit import audit_data
from fer_helpers.data import FaceData, FaceSplit


def split(name: str, images: list[np.ndarray], labels: list[int]) -> FaceSplit:
    ids = np.array([f"{name}-{i}" for i in range(len(images))])
    return FaceSplit(name, np.stack(images), np.array(labels), ids)


def test_blank_duplicates_leaks_and_conflicts_are_found():
    rng = np.random.default_rng(0)
    a, b, c, d = (rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(4))
    black = np.zeros((48, 48), np.uint8)
    grey = np.full((48, 48), 128, np.uint8)
    data = FaceData(
        {
            # train: a twice (same label), b, a black and a grey image, c (also in validation)
            "train": split("train", [a, a, b, black, grey, c], [3, 3, 4, 0, 6, 2]),
            # validation: c with another label (a conflict), d, another black image
            "validation": split("validation", [c, d, black], [5, 6, 1]),
        },
        "test",
        "in memory",
    )
    report = audit_data(data)
    s = report.summary()
    assert s["blank"] == {"train": 2, "validation": 1}
    assert s["all_zero"] == {"train": 1, "validation": 1}
    assert s["duplicate_groups"] == 2  # {a, a} and {c, c}; blanks are counted as blank
    assert s["extra_copies_within_split"] == {"train": 1, "validation": 0}
    assert s["groups_shared_across_splits"] == {"train-validation": 1}
    assert s["groups_with_conflicting_labels"] == 1
    # clean=True keeps the first a and b; drops the copy of a, the blanks and the leaked c.
    assert report.training_keep_mask().tolist() == [True, False, True, False, False, False]
    assert s["dropped_from_training_by_clean"] == 4
    assert "train-validation" in report.describe()
    assert report.describe().splitlines()[-1] == "  clean=True drops 4 training images"
    # A labelled folder has no training split: nothing for clean=True to drop, no line.
    folder = audit_data(FaceData({"folder": split("folder", [a, a], [3, 3])}, "f", "x"))
    assert "clean=True" not in folder.describe()
    assert "folder: 0 blank images (0 all black), 1 extra copies" in folder.describe()


def test_clean_dataset_drops_what_the_audit_flags():
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(2))
    data = FaceData(
        {
            "train": split("train", [a, a, b], [3, 3, 3]),
            "validation": split("validation", [b], [3]),
        },
        "test",
        "in memory",
    )
    assert len(data.dataset("train", "happy")) == 3
    assert len(data.dataset("train", "happy", clean=True)) == 1
