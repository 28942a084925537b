"""fer_helpers.data: the counts table, tiny selections and the decoded-image cache, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import LAYOUTS, make_faces

from fer_helpers import data as data_module
from fer_helpers.data import FaceData, FaceSplit, load_fer2013
from fer_helpers.labels import EMOTIONS
from fer_helpers.sources import FoundData, find_fer2013


def split(name: str, labels: list[int]) -> FaceSplit:
    images = np.arange(len(labels) * 48 * 48, dtype=np.int64).reshape(-1, 48, 48) % 256
    ids = np.array([f"{name}-{i}" for i in range(len(labels))])
    return FaceSplit(name, images.astype(np.uint8), np.array(labels), ids)


def test_counts_give_every_class_in_fer2013_order_per_split_and_a_total():
    # angry is never seen; neutral (the last label) only in validation: bincount's minlength.
    data = FaceData(
        {"train": split("train", [3, 3, 4, 1, 3]), "validation": split("validation", [6, 2])},
        "test",
        "in memory",
    )
    table = data.counts()
    assert list(table.index) == [*EMOTIONS, "total"]
    assert list(table.columns) == ["train", "validation"]
    for name, faces in data.splits.items():
        by_hand = pd.Series(faces.labels).value_counts().reindex(range(7), fill_value=0)
        assert table[name].iloc[:7].tolist() == by_hand.tolist(), name
    assert table.loc["total"].tolist() == [5, 2]
    assert table.loc["happy", "train"] == 3 and table.loc["neutral", "validation"] == 1
    assert len(split("x", [0, 2]).class_counts()) == len(EMOTIONS)


@pytest.fixture
def copy(tmp_path):
    """A FER2013 copy as class folders, 10 faces of each class in every split."""
    faces = {
        s: (np.concatenate([i] * 4), np.concatenate([lab] * 4))
        for s, (i, lab) in make_faces().items()
    }
    root = LAYOUTS["train+validation+test"](tmp_path / "copy", faces)
    return find_fer2013(root)


def test_tiny_takes_the_first_few_of_each_class_and_keeps_where_they_came_from(copy):
    tiny = data_module._tiny_selection(copy)
    for name, source in tiny.splits.items():
        counts = np.bincount(source.labels, minlength=7)
        assert (counts == data_module.TINY_PER_CLASS[name]).all(), name
        for label in range(7):  # the first ones of each class, in the copy's order
            first = [
                f
                for f, lab in zip(copy.splits[name].files, copy.splits[name].labels)
                if lab == label
            ][: data_module.TINY_PER_CLASS[name]]
            assert [f for f, lab in zip(source.files, source.labels) if lab == label] == first
    assert (tiny.root, tiny.layout, tiny.notes) == (copy.root, copy.layout, copy.notes)
    assert tiny.fingerprint_files == copy.fingerprint_files


def test_a_split_tiny_mode_has_no_count_for_gets_8_per_class(copy):
    extra = FoundData(copy.root, copy.layout, {"extra": copy.splits["train"]}, [], [])
    counts = np.bincount(data_module._tiny_selection(extra).splits["extra"].labels, minlength=7)
    assert (counts == 8).all()


def test_tiny_and_full_loads_keep_their_own_caches(copy, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    tiny = load_fer2013(copy, tiny=True)
    full = load_fer2013(copy)
    assert len(full["train"]) == len(copy.splits["train"]) > len(tiny["train"])
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    again = load_fer2013(copy, tiny=True)  # from its own cache, not the full one
    assert len(again["train"]) == len(tiny["train"])
    for loaded in (tiny, full):
        assert (loaded.source, loaded.layout, loaded.root) == ("FER2013", copy.layout, copy.root)
        assert loaded.notes == copy.notes and loaded.splits["train"].name == "train"
    assert tiny.tiny and not full.tiny


def test_use_cache_false_decodes_and_writes_no_cache(copy, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    load_fer2013(copy)  # a valid cache now exists
    cached = {f: f.stat().st_mtime_ns for f in (tmp_path / "cache").glob("*.npz")}
    decoded = []
    real = data_module.decode_split

    def counting(source):
        decoded.append(source.name)
        return real(source)

    monkeypatch.setattr(data_module, "decode_split", counting)
    load_fer2013(copy, use_cache=False)
    assert sorted(decoded) == sorted(copy.splits)  # decoded, although the cache was valid
    after = {f: f.stat().st_mtime_ns for f in (tmp_path / "cache").glob("*.npz")}
    assert after == cached  # and nothing written


def test_describe_says_what_was_loaded_line_by_line(tmp_path):
    from fer_helpers import synthetic

    data = FaceData(
        {"train": split("train", [3, 4]), "validation": split("validation", [6])},
        "FER2013",
        "train/ + validation/ class folders",
        tmp_path,
        ["a note"],
        tiny=True,
    )
    assert data.describe().split("\n") == [
        f"Data: FER2013 at {tmp_path}, layout: train/ + validation/ class folders"
        " [FER_TINY: a few images per class]",
        "  train: 2 images",
        "  validation: 1 images",
        "  note: a note",
    ]
    generated = FaceData({"train": split("train", [0])}, "synthetic", "generated in memory")
    assert generated.describe().split("\n") == [
        synthetic.SYNTHETIC_NOTICE,
        "Data: synthetic, layout: generated in memory",
        "  train: 1 images",
    ]
