"""fer_helpers.sources: what each download layout yields, exactly as a user sees it.

The layout strings, notes, split names, "row N" ids and error messages are the
product's output (the command line prints them), so they are asserted in full.
Images are tiny Pillow PNGs written into tmp_path; nothing is decoded here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_helpers.errors import DataError
from fer_helpers.labels import EMOTIONS
from fer_helpers.sources import LAYOUTS_TRIED, SplitSource, find_fer2013, find_labelled_folder

EXPECTED_EMOTIONS = "angry, disgust, fear, happy, sad, surprise, neutral"
PIXELS = " ".join(["0"] * 4)  # sources.py never decodes, so any string will do


def png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(path)
    return path


def write_class_folders(split_folder: Path, images: dict[str, list[str]]) -> Path:
    """split_folder/<emotion>/<name> for each name given per emotion."""
    for emotion, names in images.items():
        (split_folder / emotion).mkdir(parents=True, exist_ok=True)
        for name in names:
            png(split_folder / emotion / name)
    return split_folder


def csv_file(path: Path, **columns: list[str]) -> Path:
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


# --- SplitSource.take -----------------------------------------------------------------------


def test_take_keeps_the_name_and_the_files_in_the_order_asked():
    files = [Path("a.png"), Path("b.png"), Path("c.png")]
    source = SplitSource("validation", np.array([0, 3, 6]), ["a", "b", "c"], files=files)
    taken = source.take(np.array([2, 0]))
    assert taken.name == "validation"
    assert taken.labels.tolist() == [6, 0]
    assert taken.ids == ["c", "a"]
    assert taken.files == [Path("c.png"), Path("a.png")]
    assert taken.pixels is None
    assert len(taken) == 2


def test_take_keeps_the_pixels_of_a_csv_split():
    source = SplitSource("train", np.array([1, 2]), ["r2", "r3"], pixels=["p0", "p1"])
    taken = source.take(np.array([1]))
    assert taken.name == "train"
    assert taken.pixels == ["p1"]
    assert taken.files is None
    assert taken.ids == ["r3"]


# --- the original CSV (fer2013.csv / icml_face_data.csv) ------------------------------------


def test_fer2013_csv_names_its_splits_rows_and_layout(tmp_path):
    path = csv_file(
        tmp_path / "fer2013.csv",
        emotion=["3", "0", "6", "4"],
        pixels=["p2", "p3", "p4", "p5"],
        Usage=["Training", "PublicTest", "Training", "PrivateTest"],
    )
    found = find_fer2013(tmp_path)
    assert found.layout == "CSV fer2013.csv"
    assert found.root == tmp_path
    assert found.fingerprint_files == [path]
    assert found.notes == []
    assert list(found.splits) == ["train", "validation", "test"]
    assert {name: split.name for name, split in found.splits.items()} == {
        "train": "train",
        "validation": "validation",
        "test": "test",
    }
    train = found.splits["train"]
    assert train.ids == ["fer2013.csv row 2", "fer2013.csv row 4"]  # row 1 is the header
    assert train.pixels == ["p2", "p4"]
    assert train.labels.tolist() == [3, 6]
    assert train.labels.dtype == np.int64
    assert found.splits["test"].ids == ["fer2013.csv row 5"]


def test_labels_written_as_floats_are_int64(tmp_path):
    # A table that once held a missing label is saved by pandas as 3.0, 0.0, ...
    csv_file(
        tmp_path / "fer2013.csv",
        emotion=["3.0", "0.0"],
        pixels=[PIXELS] * 2,
        Usage=["Training"] * 2,
    )
    labels = find_fer2013(tmp_path).splits["train"].labels
    assert labels.dtype == np.int64
    assert labels.tolist() == [3, 0]


@pytest.mark.parametrize(("emotion", "shown"), [("7", "'7'"), ("-1", "'-1'"), ("happy", "'happy'")])
def test_a_label_outside_0_to_6_or_not_a_number_names_its_row(tmp_path, emotion, shown):
    path = csv_file(
        tmp_path / "fer2013.csv",
        emotion=["3", emotion],
        pixels=[PIXELS] * 2,
        Usage=["Training"] * 2,
    )
    with pytest.raises(DataError) as raised:
        find_fer2013(tmp_path)
    assert str(raised.value) == (
        f"{path} row 3: emotion {shown} is not a FER2013 label 0..6 (missing labels cannot be used)"
    )


def test_an_unknown_usage_value_is_named(tmp_path):
    path = csv_file(
        tmp_path / "fer2013.csv",
        emotion=["3", "4"],
        pixels=[PIXELS] * 2,
        Usage=["Training", "Validation"],
    )
    with pytest.raises(DataError) as raised:
        find_fer2013(tmp_path)
    assert str(raised.value) == (
        f"{path}: unknown Usage value(s) 'Validation': expected Training, PublicTest, PrivateTest"
    )


@pytest.mark.parametrize(
    "usages, empty",
    [
        (["", "Validation"], 1),
        (["", "Validation", "", "Training", "Training"], 2),  # the empty cells, not the others
    ],
)
def test_empty_usage_cells_beside_an_unknown_value_are_counted(tmp_path, usages, empty):
    # An empty cell reads as NaN, which sorted() cannot compare with a string.
    path = tmp_path / "fer2013.csv"
    rows = [f"{3 + i % 4},{PIXELS},{usage}" for i, usage in enumerate(usages)]
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as raised:
        find_fer2013(tmp_path)
    assert str(raised.value) == (
        f"{path}: unknown Usage value(s) 'Validation', {empty} empty cell(s): "
        "expected Training, PublicTest, PrivateTest"
    )


def test_a_csv_without_labels_names_the_columns_it_has(tmp_path):
    path = csv_file(tmp_path / "fer2013.csv", pixels=[PIXELS], Usage=["Training"])
    with pytest.raises(DataError) as raised:
        find_fer2013(tmp_path)
    assert str(raised.value) == (
        f"{path} has no labels: it lacks the 'emotion' column (found columns: pixels, Usage); "
        "a file without labels cannot be used for training or evaluation"
    )


def test_a_csv_lacking_columns_names_them_and_the_ones_expected(tmp_path):
    path = csv_file(tmp_path / "fer2013.csv", emotion=["3"], extra=["x"], other=["y"])
    with pytest.raises(DataError) as raised:
        find_fer2013(tmp_path)
    assert str(raised.value) == (
        f"{path} lacks column(s) pixels, Usage: expected emotion, pixels, Usage "
        "(found: emotion, extra, other)"
    )


def test_an_unreadable_csv_is_named(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("")
    with pytest.raises(DataError) as raised:
        find_fer2013(path)
    assert str(raised.value).startswith(f"cannot read CSV {path}: ")
    assert len(str(raised.value)) > len(f"cannot read CSV {path}: ")  # pandas' reason follows


# --- Kaggle's train.csv [+ test.csv] --------------------------------------------------------


def test_train_csv_alone_is_the_train_split_with_a_note(tmp_path):
    path = csv_file(tmp_path / "train.csv", emotion=["3", "5", "0"], pixels=["a", "b", "c"])
    found = find_fer2013(tmp_path)
    assert found.layout == "CSV train.csv"
    assert found.fingerprint_files == [path]
    assert found.notes == [
        "train.csv has only the Training split: there is no validation split to evaluate on"
    ]
    assert list(found.splits) == ["train"]
    train = found.splits["train"]
    assert train.name == "train"
    assert train.ids == ["train.csv row 2", "train.csv row 3", "train.csv row 4"]
    assert train.pixels == ["a", "b", "c"]
    assert train.labels.tolist() == [3, 5, 0]
    assert train.labels.dtype == np.int64


def test_train_csv_with_kaggles_test_csv_says_it_is_not_used(tmp_path):
    csv_file(tmp_path / "train.csv", emotion=["3"], pixels=[PIXELS])
    csv_file(tmp_path / "test.csv", pixels=[PIXELS])
    assert find_fer2013(tmp_path).notes == [
        "train.csv has only the Training split: there is no validation split to evaluate on",
        "test.csv has no labels (Kaggle's challenge file): it is not used",
    ]


def test_a_bad_label_in_train_csv_names_the_file_and_row(tmp_path):
    path = csv_file(tmp_path / "train.csv", emotion=["3", "4", "9"], pixels=[PIXELS] * 3)
    with pytest.raises(DataError) as raised:
        find_fer2013(tmp_path)
    assert str(raised.value) == (
        f"{path} row 4: emotion '9' is not a FER2013 label 0..6 (missing labels cannot be used)"
    )


# --- class folders ----------------------------------------------------------------------------


def test_train_validation_test_folders(tmp_path):
    write_class_folders(tmp_path / "train", {"happy": ["0.png", "1.png"], "sad": ["2.png"]})
    write_class_folders(tmp_path / "validation", {"angry": ["0.png"]})
    write_class_folders(tmp_path / "test", {"neutral": ["0.png"]})
    found = find_fer2013(tmp_path)
    assert found.layout == "test/ + train/ + validation/ class folders"
    assert found.root == tmp_path
    assert found.notes == [
        f"1 files in {tmp_path / 'test'} have no PublicTest_/PrivateTest_ prefix: "
        "they count as the test split"
    ]
    assert {name: split.name for name, split in found.splits.items()} == {
        "train": "train",
        "validation": "validation",
        "test": "test",
    }
    train = found.splits["train"]
    assert train.ids == ["train/happy/0.png", "train/happy/1.png", "train/sad/2.png"]
    assert train.files == [
        tmp_path / "train" / i for i in ("happy/0.png", "happy/1.png", "sad/2.png")
    ]
    assert train.pixels is None
    assert train.labels.tolist() == [3, 3, 4]
    assert train.labels.dtype == np.int64
    assert found.splits["validation"].labels.tolist() == [0]
    assert found.fingerprint_files == [
        *train.files,
        *found.splits["validation"].files,
        *found.splits["test"].files,
    ]


def test_train_and_validation_folders_have_no_notes(tmp_path):
    # Unprefixed files outside test/ are expected: no note about prefixes.
    write_class_folders(tmp_path / "train", {"happy": ["0.png", "1.png"]})
    write_class_folders(tmp_path / "validation", {"sad": ["0.png", "1.png"]})
    found = find_fer2013(tmp_path)
    assert found.layout == "train/ + validation/ class folders"
    assert found.notes == []
    assert list(found.splits) == ["train", "validation"]


def test_images_train_and_validation(tmp_path):
    write_class_folders(tmp_path / "images" / "train", {"fear": ["a.png"]})
    write_class_folders(tmp_path / "images" / "validation", {"surprise": ["b.png"]})
    found = find_fer2013(tmp_path)
    assert found.layout == "images/train/ + images/validation/ class folders"
    assert found.notes == []
    assert found.splits["train"].ids == ["train/fear/a.png"]
    assert found.splits["validation"].ids == ["validation/surprise/b.png"]
    assert found.splits["validation"].labels.tolist() == [EMOTIONS.index("surprise")]


def test_prefixes_decide_the_split_and_a_fully_prefixed_test_folder_has_no_note(tmp_path):
    write_class_folders(tmp_path / "train", {"happy": ["Training_1.png", "Training_2.png"]})
    write_class_folders(
        tmp_path / "test",
        {"sad": ["PrivateTest_1.png", "PublicTest_1.png", "PublicTest_2.png"]},
    )
    found = find_fer2013(tmp_path)
    assert found.layout == "test/ + train/ class folders"
    assert found.notes == []
    assert found.splits["validation"].ids == [
        "test/sad/PublicTest_1.png",
        "test/sad/PublicTest_2.png",
    ]
    assert found.splits["test"].ids == ["test/sad/PrivateTest_1.png"]
    assert found.splits["validation"].name == "validation"


def test_the_note_counts_only_the_unprefixed_files_of_the_test_folder(tmp_path):
    write_class_folders(tmp_path / "train", {"happy": ["0.png"]})
    # The last file is prefixed, so a count that is overwritten rather than summed would be 0.
    write_class_folders(
        tmp_path / "test",
        {
            "angry": ["a.png", "b.png"],
            "sad": ["PublicTest_1.png", "c.png", "zz_PublicTest.png"],
            "surprise": ["PublicTest_9.png"],
        },
    )
    found = find_fer2013(tmp_path)
    assert found.notes == [
        f"4 files in {tmp_path / 'test'} have no PublicTest_/PrivateTest_ prefix: "
        "they count as the test split"
    ]
    assert found.splits["test"].ids == [
        "test/angry/a.png",
        "test/angry/b.png",
        "test/sad/c.png",
        "test/sad/zz_PublicTest.png",
    ]
    assert found.splits["validation"].ids == [
        "test/sad/PublicTest_1.png",
        "test/surprise/PublicTest_9.png",
    ]


def test_hidden_files_and_non_images_are_skipped_without_stopping(tmp_path):
    happy = (
        write_class_folders(tmp_path / "train", {"happy": ["0.png", "5.PNG", "9.jpg"]}) / "happy"
    )
    # Sorted, these come before and between the images: a skip must not end the scan.
    (happy / ".DS_Store").write_bytes(b"mac")
    png(happy / ".hidden.png")
    (happy / "1_notes.txt").write_text("not an image")
    (happy / "Thumbs.db").write_bytes(b"windows")
    write_class_folders(tmp_path / "validation", {"sad": ["0.png"]})
    found = find_fer2013(tmp_path)
    assert found.splits["train"].ids == [
        "train/happy/0.png",
        "train/happy/5.PNG",
        "train/happy/9.jpg",
    ]
    assert found.splits["train"].labels.tolist() == [3, 3, 3]


def test_stray_files_and_hidden_folders_in_a_split_folder_are_not_classes(tmp_path):
    write_class_folders(tmp_path / "train", {"happy": ["0.png"]})
    (tmp_path / "train" / "labels.txt").write_text("happy")
    (tmp_path / "train" / "zz.png").write_bytes(b"")
    write_class_folders(tmp_path / "train" / ".ipynb_checkpoints", {"happy": ["x.png"]})
    write_class_folders(tmp_path / "validation", {"sad": ["0.png"]})
    found = find_fer2013(tmp_path)
    assert found.splits["train"].ids == ["train/happy/0.png"]


def test_other_folders_and_files_beside_the_splits_are_ignored(tmp_path):
    write_class_folders(tmp_path / "train", {"happy": ["0.png"]})
    write_class_folders(tmp_path / "validation", {"sad": ["0.png"]})
    write_class_folders(tmp_path / "extras", {"happy": ["0.png"]})
    (tmp_path / "test").write_text("a file called test, not a folder")
    found = find_fer2013(tmp_path)
    assert found.layout == "train/ + validation/ class folders"
    assert list(found.splits) == ["train", "validation"]
    assert found.notes == []


@pytest.mark.parametrize(
    "folders",
    [("train",), ("validation", "test"), ("val",), ("test", "extras")],
    ids=["train only", "no train", "validation only", "test only"],
)
def test_split_folders_without_train_or_with_a_single_split_are_no_layout(tmp_path, folders):
    for name in folders:
        write_class_folders(tmp_path / name, {"happy": ["0.png"]})
    with pytest.raises(DataError, match=f"no FER2013 layout found in {tmp_path}: tried "):
        find_fer2013(tmp_path)


def test_two_train_folders_and_a_validation_folder_are_read(tmp_path):
    write_class_folders(tmp_path / "train", {"happy": ["0.png"]})
    write_class_folders(tmp_path / "training", {"sad": ["0.png"]})
    found = find_fer2013(tmp_path)
    assert found.layout == "train/ + training/ class folders"
    assert found.splits["train"].ids == ["train/happy/0.png", "training/sad/0.png"]


def test_a_split_folder_without_class_folders_names_it_and_the_emotions(tmp_path):
    write_class_folders(tmp_path / "train", {"happy": ["0.png"]})
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "0.png").write_bytes(b"")
    with pytest.raises(DataError) as raised:
        find_fer2013(tmp_path)
    assert str(raised.value) == (
        f"{tmp_path / 'validation'} has no class folders: expected one folder per emotion "
        f"({EXPECTED_EMOTIONS})"
    )


# --- any labelled folder (find_labelled_folder) -----------------------------------------------

EXPECTED_FOLDER = f"expected a folder with one sub-folder per emotion ({EXPECTED_EMOTIONS})"


def test_a_labelled_folder_is_one_split_called_folder(tmp_path):
    write_class_folders(tmp_path, {"Happiness": ["b.png", "a.JPG"], "angry": ["z.png"]})
    png(tmp_path / "Happiness" / "session 2" / "c.png")  # images may sit deeper
    found = find_labelled_folder(tmp_path)
    assert found.layout == "class folders"
    assert found.root == tmp_path
    assert found.notes == []
    assert found.skipped == {}
    assert list(found.splits) == ["folder"]
    split = found.splits["folder"]
    assert split.name == "folder"
    assert split.ids == [
        "Happiness/a.JPG",
        "Happiness/b.png",
        "Happiness/session 2/c.png",
        "angry/z.png",
    ]
    assert split.files == [tmp_path / i for i in split.ids]
    assert split.pixels is None
    assert split.labels.tolist() == [3, 3, 3, 0]
    assert split.labels.dtype == np.int64
    assert found.fingerprint_files == split.files


def test_hidden_and_mac_leftovers_are_ignored_and_other_files_noted(tmp_path):
    sad = write_class_folders(tmp_path, {"sad": ["1.png", "3.png"]}) / "sad"
    png(sad / ".0.png")
    png(sad / ".thumbs" / "2.png")
    png(sad / "session" / ".2.png")  # hidden deeper down too
    png(sad / "__MACOSX" / "2.png")
    (sad / "2_notes.txt").write_text("not an image")
    write_class_folders(tmp_path / "__MACOSX", {"sad": ["x.png"]})
    write_class_folders(tmp_path / ".git", {"sad": ["x.png"]})
    (tmp_path / ".DS_Store").write_bytes(b"mac")
    found = find_labelled_folder(tmp_path)
    assert found.splits["folder"].ids == ["sad/1.png", "sad/3.png"]
    assert found.skipped == {}
    assert found.notes == [
        "left out 1 file(s) that are not images by their suffix, or not in a class folder: "
        "sad/2_notes.txt"
    ]


def test_other_classes_are_skipped_and_counted(tmp_path):
    write_class_folders(tmp_path, {"contempt": ["a.png", "b.png"], "happy": ["c.png"]})
    write_class_folders(tmp_path / "zz_other", {"x": []})  # no images of its own
    found = find_labelled_folder(tmp_path)
    assert found.skipped == {"contempt": 2, "zz_other": 0}
    assert found.notes == [
        "skipped 2 image(s) in contempt/: not one of FER2013's emotions",
        "skipped 0 image(s) in zz_other/: not one of FER2013's emotions",
    ]
    assert found.splits["folder"].ids == ["happy/c.png"]
    assert found.splits["folder"].labels.tolist() == [3]


@pytest.mark.parametrize(
    ("strays", "listed"),
    [
        (3, "a.txt, b.txt, c.txt"),
        (4, "a.txt, b.txt, c.txt and 1 more"),
        (5, "a.txt, b.txt, c.txt and 2 more"),
    ],
)
def test_the_left_out_note_names_three_files_and_counts_the_rest(tmp_path, strays, listed):
    write_class_folders(tmp_path, {"fear": ["0.png"]})
    for name in "edcba"[-strays:]:
        (tmp_path / f"{name}.txt").write_text("stray")
    assert find_labelled_folder(tmp_path).notes == [
        f"left out {strays} file(s) that are not images by their suffix, or not in a class "
        f"folder: {listed}"
    ]


def test_a_missing_folder_or_a_file_is_named(tmp_path):
    with pytest.raises(DataError) as raised:
        find_labelled_folder(tmp_path / "nowhere")
    assert str(raised.value) == f"folder {tmp_path / 'nowhere'} does not exist: {EXPECTED_FOLDER}"
    png(tmp_path / "face.png")
    with pytest.raises(DataError) as raised:
        find_labelled_folder(tmp_path / "face.png")
    assert str(raised.value) == f"folder {tmp_path / 'face.png'} is a file: {EXPECTED_FOLDER}"


def test_a_folder_without_known_images_says_what_it_found(tmp_path):
    with pytest.raises(DataError) as raised:
        find_labelled_folder(tmp_path)
    assert str(raised.value) == (
        f"no images of a known emotion in {tmp_path} (found no sub-folders): {EXPECTED_FOLDER}"
    )
    write_class_folders(tmp_path, {"contempt": ["a.png"], "happy": []})
    with pytest.raises(DataError) as raised:
        find_labelled_folder(tmp_path)
    assert str(raised.value) == (
        f"no images of a known emotion in {tmp_path} (found contempt/, happy/): {EXPECTED_FOLDER}"
    )


def test_a_folder_of_split_folders_gets_a_hint(tmp_path):
    write_class_folders(tmp_path / "Train", {"happy": ["a.png"]})
    write_class_folders(tmp_path / "val", {"happy": ["a.png"]})
    with pytest.raises(DataError) as raised:
        find_labelled_folder(tmp_path)
    assert str(raised.value) == (
        f"no images of a known emotion in {tmp_path} (found Train/, val/) (it holds split "
        f"folders: give one of them, or read it as FER2013 with --data): {EXPECTED_FOLDER}"
    )
    # One folder that is not a split name: no hint.
    (tmp_path / "misc").mkdir()
    with pytest.raises(DataError) as raised:
        find_labelled_folder(tmp_path)
    assert "(it holds split folders" not in str(raised.value)


# --- what find_fer2013 says when it finds nothing, and where it looks (mutation testing) -----


def test_find_fer2013_names_a_missing_folder_a_file_that_is_no_csv_and_every_layout_tried(
    tmp_path,
):
    with pytest.raises(DataError) as raised:
        find_fer2013(tmp_path / "nowhere")
    assert str(raised.value) == f"FER2013 folder {tmp_path / 'nowhere'} does not exist"
    image = png(tmp_path / "face.png")
    with pytest.raises(DataError) as raised:
        find_fer2013(image)
    assert str(raised.value) == (
        f"{image} is a file but not a CSV: expected a folder or fer2013.csv"
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as raised:
        find_fer2013(tmp_path / "empty")
    assert str(raised.value) == (
        f"no FER2013 layout found in {tmp_path / 'empty'}: tried " + "; ".join(LAYOUTS_TRIED)
    )


@pytest.mark.parametrize("name", ["fer2013.csv", "icml_face_data.csv"])
def test_the_csv_is_found_beside_the_root_or_in_its_fer2013_folder(tmp_path, name):
    (tmp_path / "fer2013").mkdir()
    path = csv_file(tmp_path / "fer2013" / name, emotion=["3"], pixels=[PIXELS], Usage=["Training"])
    found = find_fer2013(tmp_path)
    assert found.splits["train"].labels.tolist() == [3]
    assert found.root == path.parent and found.layout == f"CSV {name}"


def test_the_left_out_note_counts_the_other_files_of_every_class_folder(tmp_path):
    write_class_folders(tmp_path, {"sad": ["1.png"], "happy": ["2.png"]})
    (tmp_path / "sad" / "a.txt").write_text("not an image")
    (tmp_path / "happy" / "b.txt").write_text("not an image")
    assert find_labelled_folder(tmp_path).notes == [
        "left out 2 file(s) that are not images by their suffix, or not in a class folder: "
        "happy/b.txt, sad/a.txt"
    ]
