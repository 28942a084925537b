"""`evaluate --folder` and `info --folder`: any folder of class folders, and bad input in it.

The folders are written here with Pillow from the project's synthetic faces (and
scikit-image's astronaut photo for a real face); the scores are checked against
scikit-learn on predictions computed here, not by the command.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, recall_score

from fer_helpers.cli import main
from fer_helpers.decode import MAX_PIXELS, read_gray
from fer_helpers.errors import DataError
from fer_helpers.folders import load_labelled_folder
from fer_helpers.labels import _ALIASES, EMOTIONS
from fer_helpers.pretrained import load_pretrained
from fer_helpers.sources import find_labelled_folder
from fer_helpers.synthetic import generate_faces

MODEL = "si100-3class"  # shipped: happy, neutral, sad


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def faces(emotion: str, n: int, seed: int = 0) -> np.ndarray:
    """n synthetic 48x48 faces of one FER2013 emotion."""
    counts = {EMOTIONS.index(emotion): n}
    return generate_faces(counts, seed)[0]


def write_folder(root: Path, content: dict[str, tuple[str, int]], seed: int = 0) -> Path:
    """root/FOLDER/NNN.png for {folder name: (emotion drawn, count)}."""
    for folder, (emotion, n) in content.items():
        (root / folder).mkdir(parents=True)
        for i, image in enumerate(faces(emotion, n, seed)):
            Image.fromarray(image).save(root / folder / f"{i:03}.png")
    return root


def predict_by_hand(images: np.ndarray) -> np.ndarray:
    """The shipped model's classes for 48x48 uint8 faces, without the command's code path."""
    model, info = load_pretrained(MODEL)
    x = torch.from_numpy(images).float().unsqueeze(1) / 127.5 - 1
    x = x.expand(-1, info["normalization"]["channels"], -1, -1)
    with torch.no_grad():
        return model.eval()(x).argmax(dim=1).numpy()


def truth_and_images(root: Path, folder_to_target: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Targets (from the folder names given) and pixels (read back from the PNGs)."""
    y, images = [], []
    for folder, target in folder_to_target.items():
        for path in sorted((root / folder).iterdir()):
            y.append(target)
            images.append(np.asarray(Image.open(path)))
    return np.array(y), np.stack(images)


def no_cache_written() -> bool:
    cache = Path(os.environ["FER_CACHE_DIR"])  # conftest points it at a fresh folder
    return not any(cache.iterdir())


# --- scores ---------------------------------------------------------------------------------


def test_evaluate_folder_scores_match_sklearn_and_skip_unknown_classes(tmp_path, capsys):
    root = write_folder(
        tmp_path / "photos",
        {
            "Happiness": ("happy", 7),
            "NEUTRAL": ("neutral", 5),
            "sadness": ("sad", 6),
            "Anger": ("angry", 3),  # FER2013 knows it, the 3-class model does not
            "disgusted": ("disgust", 1),
            "Fearful": ("fear", 2),
            "surprised": ("surprise", 1),
            "contempt": ("neutral", 2),  # not a FER2013 emotion at all
        },
    )
    y_true, images = truth_and_images(root, {"Happiness": 0, "NEUTRAL": 1, "sadness": 2})
    y_pred = predict_by_hand(images)

    status, out, _ = run_cli(
        capsys, "evaluate", "--weights", MODEL, "--folder", str(root), "--no-tta", "--json"
    )
    assert status == 0
    summary = json.loads(out)
    assert summary["classes"] == ["happy", "neutral", "sad"]
    assert (
        summary["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=[0, 1, 2]).tolist()
    )
    assert summary["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert summary["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert [summary["per_class"][c]["support"] for c in summary["classes"]] == [7, 5, 6]
    assert summary["folder"]["skipped_classes"] == {
        "contempt": 2,
        "angry": 3,
        "disgust": 1,
        "fear": 2,
        "surprise": 1,
    }
    notes = "\n".join(summary["notes"])
    assert "skipped 2 image(s) in contempt/" in notes
    unknown = "angry 3, disgust 1, fear 2, surprise 1"
    assert f"skipped 7 image(s) of classes {MODEL} does not know: {unknown}" in notes
    assert no_cache_written()

    # The text report says the same: accuracy, and the confusion matrix row by row.
    status, out, _ = run_cli(
        capsys, "evaluate", "--weights", MODEL, "--folder", str(root), "--no-tta"
    )
    assert status == 0
    assert f"accuracy: {accuracy_score(y_true, y_pred):.2%} of 18 faces" in out
    assert f"balanced accuracy: {100 * balanced_accuracy_score(y_true, y_pred):.2f}%" in out
    rows = out.split("confusion matrix (rows: true class, columns: predicted):\n")[1].splitlines()
    cm = confusion_matrix(y_true, y_pred, labels=[0, 1, 2])
    for name, counts in zip(("happy", "neutral", "sad"), cm):
        line = next(r for r in rows if r.split()[0] == name)
        assert [int(v) for v in line.split()[1:]] == counts.tolist()


def test_balanced_accuracy_is_over_the_classes_present(tmp_path, capsys):
    root = write_folder(tmp_path / "two", {"happy": ("happy", 6), "SAD": ("sad", 4)}, seed=3)
    y_true, images = truth_and_images(root, {"happy": 0, "SAD": 2})
    y_pred = predict_by_hand(images)
    status, out, _ = run_cli(
        capsys, "evaluate", "--weights", MODEL, "--folder", str(root), "--no-tta", "--json"
    )
    assert status == 0
    summary = json.loads(out)
    # Mean recall of happy and sad only: neutral has no images.
    present = recall_score(y_true, y_pred, labels=[0, 2], average="macro", zero_division=0)
    assert summary["balanced_accuracy"] == pytest.approx(present)
    assert summary["per_class"]["neutral"]["support"] == 0
    assert any("no images of neutral" in note for note in summary["notes"])


def test_only_the_classes_the_model_knows_are_read(tmp_path, capsys):
    root = write_folder(tmp_path / "photos", {"happy": ("happy", 2), "angry": ("angry", 1)})
    not_an_image(root / "angry")  # never decoded: a 3-class model has no angry
    status, out, _ = run_cli(
        capsys, "evaluate", "--weights", MODEL, "--folder", str(root), "--json"
    )
    assert status == 0
    summary = json.loads(out)
    assert summary["folder"]["skipped_classes"] == {"angry": 2}
    assert summary["folder"]["files"] == 2 and summary["folder"]["skipped_files"] == []


def test_a_folder_without_classes_the_model_knows_is_an_error(tmp_path, capsys):
    root = write_folder(tmp_path / "other", {"angry": ("angry", 2), "contempt": ("sad", 1)})
    status, out, err = run_cli(capsys, "evaluate", "--weights", MODEL, "--folder", str(root))
    assert status == 2 and out == ""
    assert err.startswith("error: no images in") and "nothing to evaluate" in err
    assert err.count("\n") == 1


# --- class names ----------------------------------------------------------------------------

SPELLINGS = {
    "angry": "angry",
    "ANGRY": "angry",
    "anger": "angry",
    "Anger": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "Disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "FEARFUL": "fear",
    "scared": "fear",
    "happy": "happy",
    "Happy": "happy",
    "happiness": "happy",
    "HappiNess": "happy",
    "sad": "sad",
    "sadness": "sad",
    "Sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "SURPRISED": "surprise",
    "neutral": "neutral",
    "Neutral": "neutral",
}


def test_the_spellings_cover_every_alias_and_every_emotion():
    assert set(_ALIASES) <= {s.lower() for s in SPELLINGS}
    assert set(SPELLINGS.values()) == set(EMOTIONS)


@pytest.mark.parametrize(("spelling", "emotion"), sorted(SPELLINGS.items()))
def test_every_spelling_of_a_class_folder_gets_its_fer2013_label(tmp_path, spelling, emotion):
    (tmp_path / spelling).mkdir()
    Image.fromarray(faces(emotion, 1)[0]).save(tmp_path / spelling / "a.png")
    found = find_labelled_folder(tmp_path)
    assert found.splits["folder"].labels.tolist() == [EMOTIONS.index(emotion)]
    assert found.skipped == {}


def test_info_counts_a_folder_of_mixed_spellings_and_names_the_rest(tmp_path, capsys):
    root = write_folder(
        tmp_path / "mixed",
        {"Anger": ("angry", 1), "happiness": ("happy", 2), "HAPPY": ("happy", 3)},
    )
    write_folder(root, {"contempt": ("neutral", 4), "train": ("sad", 1)})
    (root / "happiness" / "notes.txt").write_text("not an image")
    (root / "happiness" / "session 2").mkdir()  # images may sit deeper in a class folder
    Image.fromarray(faces("happy", 1)[0]).save(root / "happiness" / "session 2" / "x.jpg")
    (root / ".hidden").mkdir()
    Image.fromarray(faces("sad", 1)[0]).save(root / ".hidden" / "x.png")
    status, out, _ = run_cli(capsys, "info", "--folder", str(root), "--json")
    assert status == 0
    info = json.loads(out)
    expected = dict.fromkeys(EMOTIONS, 0) | {"angry": 1, "happy": 6}
    assert info["splits"] == {"folder": {"total": 7, "per_class": expected}}
    assert info["folder"]["skipped_classes"] == {"contempt": 4, "train": 1}
    notes = "\n".join(info["notes"])
    assert "skipped 4 image(s) in contempt/" in notes and "skipped 1 image(s) in train/" in notes
    assert "left out 1 file(s) that are not images" in notes and "notes.txt" in notes
    assert info["folder"]["framing"] == {"as-is": 7}
    assert no_cache_written()


# --- sizes, colours and formats ---------------------------------------------------------------


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height 8-bit gray pixels but holds none (no IDAT)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def test_images_of_any_size_colour_and_depth_become_48x48_gray(tmp_path, capsys):
    from fer_helpers.faces import sample_photo_path

    root = tmp_path / "any"
    happy = root / "happy"
    happy.mkdir(parents=True)
    face = faces("happy", 1)[0]
    Image.fromarray(face).save(happy / "a_plain.png")
    # A colour image 96 wide, 64 high: the face scaled to 64x64 in the middle, noise beside it.
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (64, 96), dtype=np.uint8)
    wide[:, 16:80] = np.asarray(Image.fromarray(face).resize((64, 64), Image.BILINEAR))
    Image.fromarray(np.repeat(wide[..., None], 3, axis=2)).save(happy / "b_wide.png")
    Image.open(sample_photo_path()).save(happy / "c_astronaut.png")  # a real face, in colour
    # 16-bit gray: value v * 257 is v in 8 bits (Pillow's convert("L") would clip it to 255).
    ramp = np.tile(np.arange(48, dtype=np.uint16) * 5, (48, 1))  # 0, 5, ..., 235
    Image.fromarray(ramp * 257).save(happy / "d_16bit.png")
    # Transparency: the left half fully transparent (black beneath), the right half opaque black.
    rgba = np.zeros((48, 48, 4), dtype=np.uint8)
    rgba[:, 24:, 3] = 255
    Image.fromarray(rgba).save(happy / "e_alpha.png")
    Image.new("CMYK", (48, 48), (0, 0, 0, 64)).save(happy / "f_cmyk.jpg")  # 25% black ink
    # A phone photo stored 64 wide and 48 high, to be turned 90 degrees clockwise for viewing.
    sideways = np.zeros((48, 64), dtype=np.uint8)
    sideways[:8, :8] = 255  # top-left as stored: top-right once upright
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW
    Image.fromarray(sideways).save(happy / "g_sideways.jpg", exif=exif, quality=95)

    status, out, _ = run_cli(capsys, "info", "--folder", str(root), "--json")
    assert status == 0
    report = json.loads(out)["folder"]
    assert report["framing"] == {"as-is": 4, "centre": 2, "face": 1}
    assert report["conversions"] == {
        "colour": 3,
        "cmyk": 1,
        "16-bit": 1,
        "transparency": 1,
        "exif-rotated": 1,
    }
    status, out, _ = run_cli(capsys, "info", "--folder", str(root))
    assert (
        "framing: 4 were 48x48 already, 1 cropped to the face found (OpenCV's Haar cascade) "
        "and scaled to 48x48, 2 centre-cropped and scaled to 48x48 (no face found)"
    ) in out
    assert "16-bit scaled to 8 bits" in out and "CMYK converted to grayscale" in out

    data, _ = load_labelled_folder(root)
    split = data["folder"]
    image = dict(zip(split.ids, split.images))
    assert all(im.shape == (48, 48) and im.dtype == np.uint8 for im in split.images)
    assert np.array_equal(image["happy/a_plain.png"], face)
    # The centre crop gives the face back (scaled up and down again); the noise is cut off.
    assert np.abs(image["happy/b_wide.png"].astype(int) - face).mean() < 8
    assert np.array_equal(image["happy/d_16bit.png"], ramp.astype(np.uint8))
    assert (image["happy/e_alpha.png"][:, :24] == 255).all()  # transparent: white
    assert (image["happy/e_alpha.png"][:, 24:] == 0).all()
    assert abs(int(image["happy/f_cmyk.jpg"].mean()) - (255 - 64)) <= 3
    upright, done = read_gray(happy / "g_sideways.jpg")
    assert upright.shape == (64, 48) and done == ["exif-rotated"]
    assert upright[:6, -6:].mean() > 200 and upright[:6, :6].mean() < 50
    # The astronaut was cropped to her face: not what a centre crop of the photo gives.
    gray = np.asarray(Image.open(happy / "c_astronaut.png").convert("L"))
    centre = np.asarray(Image.fromarray(gray).resize((48, 48), Image.BILINEAR))
    assert np.abs(image["happy/c_astronaut.png"].astype(int) - centre).mean() > 20


# --- bad input ------------------------------------------------------------------------------


def not_an_image(folder: Path) -> Path:
    (folder / "notes.png").write_text("these are notes, not a picture")
    return folder / "notes.png"


def one_pixel(folder: Path) -> Path:
    Image.new("L", (1, 1)).save(folder / "dot.png")
    return folder / "dot.png"


def too_many_pixels(folder: Path) -> Path:  # over MAX_PIXELS, under Pillow's own limit
    return png_header_only(folder / "huge.png", 10_000, 6_000)


def far_too_many_pixels(folder: Path) -> Path:  # over Pillow's decompression-bomb limit
    return png_header_only(folder / "bomb.png", 40_000, 40_000)


def truncated(folder: Path) -> Path:
    Image.fromarray(faces("sad", 1)[0]).save(folder / "whole.png")
    (folder / "cut.png").write_bytes((folder / "whole.png").read_bytes()[:120])
    (folder / "whole.png").unlink()
    return folder / "cut.png"


def float_pixels(folder: Path) -> Path:
    Image.fromarray(np.zeros((48, 48), dtype=np.float32)).save(folder / "float.tif")
    return folder / "float.tif"


BAD = {
    "not an image": (not_an_image, "the file is not an image; expected a PNG or JPEG image"),
    "1x1": (one_pixel, "is 1x1 pixels: too small to hold a face, expected at least 16x16"),
    "too large": (too_many_pixels, "is 10000x6000 pixels (60 megapixels): refused before decoding"),
    "decompression bomb": (far_too_many_pixels, "too large, refused from its header"),
    "truncated": (truncated, "cannot decode image"),
    "float": (float_pixels, "floating-point pixels: expected an 8- or 16-bit image"),
}


def good_folder(root: Path) -> Path:
    return write_folder(root, {"happy": ("happy", 3), "sad": ("sad", 2)})


@pytest.mark.parametrize("command", ["evaluate", "info"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_stops_with_one_line_naming_it(tmp_path, capsys, case, command):
    make, message = BAD[case]
    root = good_folder(tmp_path / "photos")
    bad = make(root / "sad")
    argv = [command, "--folder", str(root), "--json"]
    argv += ["--weights", MODEL] if command == "evaluate" else []
    status, out, err = run_cli(capsys, *argv)
    assert status == 2 and out == ""  # nothing printed that could pass for a report
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert str(bad) in err and message in err
    assert "--skip-bad" in err
    assert no_cache_written()


@pytest.mark.parametrize("case", sorted(BAD))
def test_skip_bad_leaves_out_each_bad_file_and_names_it(tmp_path, capsys, case):
    make, message = BAD[case]
    root = good_folder(tmp_path / "photos")
    bad = make(root / "sad")
    also_bad = not_an_image(root / "happy")
    status, out, _ = run_cli(
        capsys, "evaluate", "--weights", MODEL, "--folder", str(root), "--skip-bad", "--json"
    )
    assert status == 0
    summary = json.loads(out)
    skipped = summary["folder"]["skipped_files"]
    assert len(skipped) == 2
    assert str(also_bad) in skipped[0] and str(bad) in skipped[1] and message in skipped[1]
    assert sum(map(sum, summary["confusion_matrix"])) == 5  # the good ones, all of them
    assert sum(f"left out: {m}" in summary["notes"] for m in skipped) == 2


def test_skip_bad_with_nothing_readable_is_an_error(tmp_path, capsys):
    (tmp_path / "happy").mkdir()
    not_an_image(tmp_path / "happy")
    one_pixel(tmp_path / "happy")
    status, out, err = run_cli(capsys, "info", "--folder", str(tmp_path), "--skip-bad")
    assert status == 2 and out == ""
    assert err.startswith(f"error: none of the 2 image files in {tmp_path} could be read")
    assert err.count("\n") == 1


def test_a_large_image_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    from PIL import ImageFile

    def no_decoding(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    side = int(MAX_PIXELS**0.5) + 1
    with pytest.raises(DataError, match=rf"{side}x{side} pixels .* refused before decoding"):
        read_gray(png_header_only(tmp_path / "big.png", side, side))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "--folder", "{tmp}/nowhere"], "folder {tmp}/nowhere does not exist: expected"),
        (["info", "--folder", "{tmp}/file.txt"], "folder {tmp}/file.txt is a file: expected"),
        (["info", "--folder", "{tmp}/empty"], "no images of a known emotion in {tmp}/empty"),
        (["info", "--folder", "{tmp}/fer"], "it holds split folders"),
        (
            ["evaluate", "--weights", MODEL, "--folder", "{tmp}/fer", "--split", "test"],
            "--split chooses a FER2013 split",
        ),
        (["info", "--data", "synthetic", "--skip-bad"], "--skip-bad applies to --folder"),
    ],
)
def test_folder_errors_are_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    write_folder(tmp_path / "fer" / "train", {"happy": ("happy", 1)})
    write_folder(tmp_path / "fer" / "validation", {"happy": ("happy", 1)})
    argv = [a.format(tmp=tmp_path) for a in argv]
    status, out, err = run_cli(capsys, *argv)
    assert status == 2 and out == ""
    assert err.startswith("error: ") and message.format(tmp=tmp_path) in err
    assert err.count("\n") == 1


def test_folder_and_data_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["info", "--folder", str(tmp_path), "--data", "synthetic"])
    assert stop.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
