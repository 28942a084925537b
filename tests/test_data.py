"""fer_helpers.sources / decode / data: every layout, one label order, clear errors, the cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import LAYOUTS, make_faces, write_csv
from PIL import Image

from fer_helpers import data as data_module
from fer_helpers.augment import Augment
from fer_helpers.data import (
    FaceData,
    FaceDataset,
    FaceLoader,
    FaceSplit,
    load_data,
    resolve_source,
    to_model_input,
)
from fer_helpers.errors import ClassNameError, DataError
from fer_helpers.labels import EMOTIONS

# A real copy, if any: FER2013_DIR as CI sets it (read before the fixtures hide it),
# else ../shared/fer2013 beside the repository.
SHARED = Path(
    os.environ.get("FER2013_DIR") or Path(__file__).resolve().parents[2] / "shared/fer2013"
)


def test_every_layout_gives_each_image_its_label_and_split(layout_copy, faces):
    name, root = layout_copy
    data = load_data(root, verbose=False)
    expected_splits = ["train", "validation"] if name.startswith("images/") else list(faces)
    assert sorted(data.splits) == sorted(expected_splits)
    for split in expected_splits:
        images, labels = faces[split]
        got = data[split]
        assert len(got) == len(labels)
        truth = {img.tobytes(): int(lab) for img, lab in zip(images, labels)}
        assert {img.tobytes(): int(lab) for img, lab in zip(got.images, got.labels)} == truth


def test_train_csv_has_only_train_and_says_test_csv_has_no_labels(tmp_path, faces):
    write_csv(tmp_path / "train.csv", {"train": faces["train"]}, ("emotion", "pixels", "Usage"))
    pd.DataFrame({"pixels": ["0 " * 2304]}).to_csv(tmp_path / "test.csv", index=False)
    data = load_data(tmp_path, verbose=False)
    assert list(data.splits) == ["train"]
    assert any("test.csv has no labels" in note for note in data.notes)
    with pytest.raises(DataError, match="no 'validation' split"):
        data["validation"]


def test_prefix_decides_the_split_in_a_test_folder(tmp_path, faces):
    LAYOUTS["train+test prefixed"](tmp_path, faces)
    data = load_data(tmp_path, verbose=False)
    assert all(i.startswith("test/") for i in data["validation"].ids)
    assert all("PublicTest_" in i for i in data["validation"].ids)
    assert all("PrivateTest_" in i for i in data["test"].ids)


def test_missing_and_empty_folders_name_the_path_and_the_layouts_tried(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(tmp_path / "nowhere", verbose=False)
    with pytest.raises(DataError, match=r"no FER2013 layout found in .*tried.*fer2013\.csv"):
        load_data(tmp_path, verbose=False)


def test_unknown_class_folder_is_named(tmp_path, faces):
    LAYOUTS["train+validation+test"](tmp_path, faces)
    (tmp_path / "train" / "happy").rename(tmp_path / "train" / "joyful")
    with pytest.raises(DataError, match=r"joyful.*expected one of angry"):
        load_data(tmp_path, verbose=False)


def test_class_folder_aliases_are_accepted(tmp_path, faces):
    LAYOUTS["train+validation+test"](tmp_path, faces)
    (tmp_path / "train" / "surprise").rename(tmp_path / "train" / "Surprised")
    data = load_data(tmp_path, verbose=False)
    assert data["train"].class_counts()[EMOTIONS.index("surprise")] == 3


def test_corrupt_image_names_the_file(tmp_path, faces):
    LAYOUTS["train+validation+test"](tmp_path, faces)
    bad = tmp_path / "train" / "sad" / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match=r"cannot decode image .*broken\.jpg"):
        load_data(tmp_path, verbose=False)


def test_colour_and_wrong_size_images_are_converted_with_a_warning(tmp_path, faces):
    LAYOUTS["train+validation+test"](tmp_path, faces)
    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "train" / "fear" / "big_red.png")
    with pytest.warns(UserWarning, match=r"converted 1 colour image.*resized 1 image"):
        data = load_data(tmp_path, verbose=False)
    index = list(data["train"].ids).index("train/fear/big_red.png")
    # Pure red in grayscale is L = 0.299 * 255, about 76.
    assert data["train"].images[index].shape == (48, 48)
    assert abs(int(data["train"].images[index].mean()) - 76) <= 1


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (("emotion", "pixels"), r"lacks column\(s\) Usage"),
        (("pixels", "Usage"), r"has no labels.*'emotion'"),
    ],
)
def test_csv_missing_a_column_is_named(tmp_path, columns, message):
    table = pd.DataFrame({"emotion": [3], "pixels": ["0 " * 2304], "Usage": ["Training"]})
    table[list(columns)].to_csv(tmp_path / "fer2013.csv", index=False)
    with pytest.raises(DataError, match=message):
        load_data(tmp_path, verbose=False)


def test_csv_row_with_a_missing_label_or_wrong_pixel_count_is_named(tmp_path):
    table = pd.DataFrame(
        {"emotion": [3, None], "pixels": ["0 " * 2304] * 2, "Usage": ["Training"] * 2}
    )
    table.to_csv(tmp_path / "fer2013.csv", index=False)
    with pytest.raises(DataError, match=r"fer2013\.csv row 3: .*not a FER2013 label"):
        load_data(tmp_path, verbose=False)
    table = pd.DataFrame({"emotion": [3], "pixels": ["1 2 3"], "Usage": ["Training"]})
    table.to_csv(tmp_path / "fer2013.csv", index=False)
    with pytest.raises(DataError, match=r"row 2: 3 pixel values, expected 2304"):
        load_data(tmp_path, verbose=False)


def test_where_the_data_come_from(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "DATA_DIR", tmp_path / "data")
    assert resolve_source() is None  # nothing anywhere: synthetic
    (tmp_path / "data" / "fer2013").mkdir(parents=True)
    assert resolve_source() == tmp_path / "data" / "fer2013"
    monkeypatch.setenv("FER2013_DIR", str(tmp_path))
    assert resolve_source() == tmp_path
    assert resolve_source(tmp_path / "data") == tmp_path / "data"  # --data wins
    monkeypatch.setenv("FER2013_DIR", str(tmp_path / "typo"))
    with pytest.raises(DataError, match="FER2013_DIR points to .*typo"):
        resolve_source()
    monkeypatch.setenv("FER2013_DIR", "synthetic")
    assert resolve_source() is None


def test_synthetic_data_say_so(capsys):
    data = load_data("synthetic", tiny=True)
    assert data.synthetic and sorted(data.splits) == ["test", "train", "validation"]
    assert "SYNTHETIC" in capsys.readouterr().out


def test_cache_is_used_and_a_changed_source_is_decoded_again(tmp_path, faces, monkeypatch):
    decode_split = data_module.decode_split
    root = LAYOUTS["train+validation+test"](tmp_path / "copy", faces)
    first = load_data(root, verbose=False)

    def no_decoding(source):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(data_module, "decode_split", no_decoding)
    second = load_data(root, verbose=False)
    assert np.array_equal(first["train"].images, second["train"].images)

    monkeypatch.setattr(data_module, "decode_split", decode_split)
    changed = root / "train" / "angry" / "0.png"
    Image.fromarray(np.full((48, 48), 7, dtype=np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))  # a new modification time, whatever the clock
    third = load_data(root, verbose=False)
    index = list(third["train"].ids).index("train/angry/0.png")
    assert (third["train"].images[index] == 7).all()


def test_tiny_mode_takes_a_few_per_class_on_the_same_path(tmp_path, monkeypatch):
    faces = make_faces()
    big = {
        s: (np.concatenate([i] * 10), np.concatenate([lab] * 10)) for s, (i, lab) in faces.items()
    }
    write_csv(tmp_path / "fer2013.csv", big, ("emotion", "pixels", "Usage"))
    monkeypatch.setenv("FER_TINY", "1")
    data = load_data(tmp_path, verbose=False)
    assert data.tiny
    for name, split in data.splits.items():
        assert (split.class_counts() == data_module.TINY_PER_CLASS[name]).all()


def test_dataset_selects_classes_in_the_order_given_and_normalises(layout_copy):
    _, root = layout_copy
    data = load_data(root, verbose=False)
    dataset = data.dataset("train", "sad,happy")
    assert dataset.class_names == ("sad", "happy")
    assert len(dataset) == 6
    # Sad comes first in our list, so sad images are target 0, happy ones target 1.
    assert dataset.class_counts().tolist() == [3, 3]
    first_sad = int(torch.nonzero(dataset.targets == 0)[0])
    x, y = dataset[first_sad]
    assert x.shape == (3, 48, 48) and x.dtype == torch.float32
    assert torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])
    sad_images = data["train"].images[data["train"].labels == EMOTIONS.index("sad")]
    expected = torch.from_numpy(sad_images[0]).float() / 127.5 - 1
    assert y == 0 and torch.allclose(x[0], expected)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert data.dataset("train", "happy", channels=1)[0][0].shape == (1, 48, 48)


def test_unknown_class_name_is_refused(layout_copy):
    data = load_data(layout_copy[1], verbose=False)
    with pytest.raises(ClassNameError, match="unknown class name 'hapy'"):
        data.dataset("train", "hapy,sad")


def test_face_loader_matches_torch_dataloader_and_resumes_its_order():
    data = load_data("synthetic", tiny=True, verbose=False)
    dataset = data.dataset("train", "all")
    plain = next(iter(torch.utils.data.DataLoader(dataset, batch_size=10)))
    fast = next(iter(FaceLoader(dataset, batch_size=10)))
    assert torch.equal(plain[0], fast[0]) and torch.equal(plain[1], fast[1])

    loader = FaceLoader(dataset, batch_size=8, shuffle=True, seed=3)
    assert len(loader) == -(-len(dataset) // 8)
    seen = torch.cat([y for _, y in loader])
    assert sorted(seen.tolist()) == sorted(dataset.targets.tolist())  # each image once
    state = loader.state_dict()
    epoch2 = [y for _, y in loader]
    loader.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(epoch2, [y for _, y in loader]))


@pytest.mark.skipif(not (SHARED / "train").is_dir(), reason="no FER2013 class-folder copy")
def test_shared_fer2013_counts_match_the_data_card():
    data = load_data(SHARED, verbose=False, tiny=False)
    assert data.counts()["train"].tolist()[:7] == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert data.counts()["validation"].tolist()[:7] == [467, 56, 496, 895, 653, 415, 607]


def test_balanced_loader_shows_every_class_about_equally_often():
    data = load_data("synthetic", verbose=False)  # imbalanced like FER2013
    dataset = data.dataset("train", "all")
    counts = dataset.class_counts()
    assert counts.max() > 10 * counts.min()  # disgust is rare
    loader = FaceLoader(dataset, batch_size=256, balanced=True, seed=0)
    seen = np.bincount(torch.cat([y for _, y in loader]).numpy(), minlength=7)
    assert seen.sum() == len(dataset)
    share = seen / seen.sum()
    assert np.all(np.abs(share - 1 / 7) < 0.03), share


# --- the small print of FaceSplit, FaceData, FaceDataset and FaceLoader -------------------


def toy_split(labels: list[int], name: str = "train") -> FaceSplit:
    """One face per label, face i filled with the value i, ids "f0", "f1", ..."""
    n = len(labels)
    images = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 48, 48), np.uint8)
    return FaceSplit(name, images, np.array(labels), np.array([f"f{i}" for i in range(n)]))


@pytest.mark.parametrize(
    ("value", "tiny"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" Yes ", True),
        ("on", True),
        ("ON", True),
        ("0", False),
        ("no", False),
        ("off", False),
        ("", False),
        ("tiny", False),
        (None, False),
    ],
)
def test_tiny_mode_reads_fer_tiny_case_and_spaces_aside(monkeypatch, value, tiny):
    if value is not None:
        monkeypatch.setenv("FER_TINY", value)
    assert data_module.tiny_mode() is tiny


def test_take_and_capped_keep_the_split_and_choose_by_seed():
    split = toy_split([3, 3, 3, 3, 4, 1, 3, 4, 4], name="validation")
    taken = split.take(np.array([1, 5]))
    assert taken.name == "validation" and taken.ids.tolist() == ["f1", "f5"]
    capped = split.capped(2, seed=0)
    assert capped.name == "validation"
    assert capped.class_counts()[[1, 3, 4]].tolist() == [1, 2, 2]  # a class under the cap: all
    positions = [int(i[1:]) for i in capped.ids]
    assert positions == sorted(positions)  # in the split's order
    assert split.capped(2, seed=0).ids.tolist() == capped.ids.tolist()
    choices = {tuple(split.capped(2, seed=s).ids) for s in range(8)}
    assert len(choices) > 1  # another seed, another choice
    for seed in range(8):  # each seed's choice is numpy's permutation of each class
        rng = np.random.default_rng(seed)
        expected = sorted(
            int(i)
            for label in range(7)
            for i in rng.permutation(np.flatnonzero(split.labels == label))[:2]
        )
        assert [int(i[1:]) for i in split.capped(2, seed=seed).ids] == expected


def test_a_missing_split_is_named_with_the_splits_there_are(tmp_path):
    data = FaceData({"train": toy_split([3])}, "FER2013", "class folders", root=tmp_path)
    with pytest.raises(DataError) as error:
        data["test"]
    assert str(error.value) == f"no 'test' split in {tmp_path} (class folders): it has train"
    empty = FaceData({}, "synthetic", "generated in memory")
    with pytest.raises(DataError) as error:
        empty["train"]
    assert str(error.value) == (
        "no 'train' split in synthetic (generated in memory): it has no splits"
    )
    two = FaceData({"train": toy_split([3]), "validation": toy_split([3])}, "FER2013", "csv")
    with pytest.raises(DataError, match=r"\(csv\): it has train, validation$"):
        two["test"]


def test_dataset_caps_per_class_by_seed_and_cleans_only_the_train_split():
    data = FaceData({"train": toy_split([3, 3, 3, 4, 4, 6, 3, 4])}, "FER2013", "csv")
    whole = data.dataset("train")
    assert len(whole) == 8 and whole.split == "train"
    for seed in (0, 1, 2, 3):
        capped = data.dataset("train", per_class=2, seed=seed)
        assert capped.ids.tolist() == data["train"].capped(2, seed).ids.tolist()
    assert (
        data.dataset("train", per_class=2).ids.tolist() == data["train"].capped(2, 0).ids.tolist()
    )
    with pytest.raises(DataError) as error:
        FaceData({"validation": toy_split([3])}, "FER2013", "csv").dataset("validation", clean=True)
    assert str(error.value) == (
        "clean=True only applies to the train split; "
        "evaluation splits are kept whole so results stay comparable"
    )


def test_a_dataset_keeps_the_ids_and_targets_of_its_classes_in_order():
    dataset = FaceDataset(toy_split([6, 3, 1, 4, 3]), ("happy", "disgust", "neutral"))
    assert dataset.ids.tolist() == ["f0", "f1", "f2", "f4"]
    assert dataset.targets.tolist() == [2, 0, 1, 0] and dataset.targets.dtype == torch.int64
    assert dataset.split == "train"
    assert dataset[3][0].shape == (3, 48, 48)  # three channels unless asked
    assert dataset[3][0][0, 0, 0].item() == pytest.approx(4 / 127.5 - 1)
    assert dataset.class_counts().tolist() == [2, 1, 1]
    sparse = FaceDataset(toy_split([3, 3]), ("happy", "disgust"))
    assert sparse.class_counts().tolist() == [2, 0]  # a class without faces counts 0
    with pytest.raises(ValueError, match="^channels must be 1 or 3, not 2$"):
        FaceDataset(toy_split([3]), "happy", channels=2)


def test_to_model_input_normalises_and_repeats_the_gray_channel():
    u8 = torch.tensor([0, 255, 51], dtype=torch.uint8).reshape(1, 1, 1, 3).repeat(2, 1, 1, 1)
    one = to_model_input(u8, channels=1)
    assert one.shape == (2, 1, 1, 3)
    torch.testing.assert_close(one[0, 0, 0], torch.tensor([-1.0, 1.0, 51 / 127.5 - 1]))
    three = to_model_input(u8)
    assert three.shape == (2, 3, 1, 3) and three.is_contiguous()
    assert all(torch.equal(three[:, c], one[:, 0]) for c in range(3))


def test_a_batch_is_augmented_on_the_gray_faces_with_the_loaders_generator():
    seen = []

    def recording(x, generator):
        seen.append((x.shape, generator))
        return -x

    for channels in (1, 3):
        dataset = FaceDataset(toy_split([3, 4, 6]), "all", channels=channels)
        generator = torch.Generator()
        x, y = dataset.batch(torch.tensor([2, 0]), recording, generator)
        assert seen[-1] == ((2, 1, 48, 48), generator)  # augmented once, in one channel
        assert x.shape == (2, channels, 48, 48) and y.tolist() == [6, 3]
        assert x[0, -1, 0, 0].item() == pytest.approx(-(2 / 127.5 - 1))


def test_face_loader_defaults_and_drop_last():
    dataset = FaceDataset(toy_split([3] * 70), "happy")
    assert len(FaceLoader(dataset)) == 3  # batches of 32: 32, 32, 6
    assert [len(y) for _, y in FaceLoader(FaceDataset(toy_split([3] * 65), "happy"))] == [32, 32, 1]
    loader = FaceLoader(dataset, batch_size=32, drop_last=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [32, 32]
    default = torch.cat([x[:, 0, 0, 0] for x, _ in FaceLoader(dataset, shuffle=True)])
    seeded = torch.cat([x[:, 0, 0, 0] for x, _ in FaceLoader(dataset, shuffle=True, seed=0)])
    other = torch.cat([x[:, 0, 0, 0] for x, _ in FaceLoader(dataset, shuffle=True, seed=1)])
    unshuffled = torch.cat([x[:, 0, 0, 0] for x, _ in FaceLoader(dataset)])
    assert torch.equal(default, seeded) and not torch.equal(default, other)
    assert torch.equal(unshuffled, (torch.arange(70) / 127.5 - 1).float())
    assert not torch.equal(default, unshuffled)


def test_face_loader_splits_an_epoch_between_data_parallel_processes():
    dataset = FaceDataset(toy_split([3] * 10), "happy", channels=1)

    def faces(loader):
        return [round((x[i, 0, 0, 0].item() + 1) * 127.5) for x, _ in loader for i in range(len(x))]

    shares = [faces(FaceLoader(dataset, 3, shuffle=True, rank=r, world_size=2)) for r in (0, 1)]
    assert [len(s) for s in shares] == [5, 5] and sorted(shares[0] + shares[1]) == list(range(10))
    everything = faces(FaceLoader(dataset, 3, shuffle=True))
    assert shares[0] == everything[0::2] and shares[1] == everything[1::2]
    assert len(FaceLoader(dataset, 3, shuffle=True, rank=1, world_size=2)) == 2
    three = [faces(FaceLoader(dataset, 2, shuffle=True, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in three] == [3, 3, 3]  # 10 // 3 each: no process waits for more
    FaceLoader(dataset, balanced=True, world_size=2)  # a balanced loader is split too
    with pytest.raises(ValueError, match=r"^rank 2 is not in 0\.\.1$"):
        FaceLoader(dataset, shuffle=True, rank=2, world_size=2)
    with pytest.raises(ValueError, match="^only a shuffled training loader is split between"):
        FaceLoader(dataset, world_size=2)


def test_balanced_and_augmented_loaders_draw_only_from_their_own_generator():
    dataset = FaceDataset(toy_split([3] + [4] * 99), ("happy", "sad"), channels=1)
    draws = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)  # whatever else the program draws
        loader = FaceLoader(dataset, 50, balanced=True, augment=Augment(), seed=7)
        draws.append(torch.cat([x for x, _ in loader]))
    assert torch.equal(draws[0], draws[1])
    plain = torch.cat([x for x, _ in FaceLoader(dataset, 50, balanced=True, seed=7)])
    assert not torch.equal(draws[0], plain)  # the augmentation did change the faces
    # 1 happy face and 99 sad ones: balanced, each class is half of the draws
    loader = FaceLoader(dataset, 100, balanced=True, seed=0)
    happy = sum(int((y == 0).sum()) for _ in range(40) for _, y in loader)
    assert abs(happy / 4000 - 0.5) < 0.03


def test_where_the_data_come_from_is_named_in_the_error(tmp_path):
    with pytest.raises(DataError) as error:
        resolve_source(tmp_path / "nowhere")
    assert str(error.value) == (
        f"--data points to {tmp_path / 'nowhere'}, which does not exist "
        "(use --data=synthetic for synthetic faces)"
    )


def test_tiny_as_an_argument_overrides_fer_tiny(monkeypatch, tmp_path, faces):
    tiny = load_data("synthetic", tiny=True, verbose=False)
    assert tiny.tiny and tiny.layout == "generated in memory"
    assert tiny["train"].name == "train" and tiny["validation"].name == "validation"
    assert tiny["train"].class_counts().tolist() == [data_module.TINY_PER_CLASS["train"]] * 7
    monkeypatch.setenv("FER_TINY", "1")
    full = load_data("synthetic", tiny=False, verbose=False)
    assert not full.tiny and len(full["train"]) > len(tiny["train"])
    big = {s: (np.concatenate([i] * 4), np.concatenate([lab] * 4)) for s, (i, lab) in faces.items()}
    write_csv(tmp_path / "fer2013.csv", big, ("emotion", "pixels", "Usage"))
    assert not load_data(tmp_path, tiny=False, verbose=False).tiny  # FER_TINY is still 1
    monkeypatch.delenv("FER_TINY")
    real_tiny = load_data(tmp_path, tiny=True, verbose=False)
    assert real_tiny.tiny and len(real_tiny["train"]) == 7 * data_module.TINY_PER_CLASS["train"]
