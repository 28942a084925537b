"""`python -m fer_helpers predict`: photos, videos, --json, and one-line errors.

Photos are scikit-image's sample photos (the astronaut, public domain); videos are
made here (test_video.clip_frames: the astronaut's head moving across the frame).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from test_video import FRAMES, STEP, clip_frames, read_back, write_clip

from fer_helpers.cli import build_parser, main
from fer_helpers.errors import DataError
from fer_helpers.faces import predict_photo, sample_photo_path
from fer_helpers.labels import COURSE_CLASSES, EMOTIONS
from fer_helpers.pretrained import load_pretrained


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def astronaut() -> Path:
    try:
        return sample_photo_path("astronaut")
    except DataError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, astronaut: Path) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "moving.mp4", clip_frames())


def expected_line(path: Path, weights: str, top: int) -> str:
    """The line for the astronaut's face, computed from faces.predict_photo."""
    model, info = load_pretrained(weights)
    channels = info["normalization"]["channels"]
    (face,) = predict_photo(path, model, info["class_names"], channels=channels)
    ranked = sorted(face["probabilities"].items(), key=lambda item: -item[1])[:top]
    x, y, w, h = face["box"]
    emotions = ", ".join(f"{name} {100 * p:.1f}%" for name, p in ranked)
    return f"{path}: face 1 at x={x} y={y} w={w} h={h}: {emotions}"


def test_the_default_model_is_the_7_class_one():
    args = build_parser().parse_args(["predict", "photo.jpg"])
    assert args.weights == "best-7class" and args.top == 3 and args.smooth == 5


def test_a_photo_prints_its_top_3_emotions_sorted(capsys, astronaut):
    status, out, err = run_cli(capsys, "predict", astronaut)
    assert status == 0 and err == ""
    (line,) = out.splitlines()
    assert line == expected_line(astronaut, "best-7class", 3)
    names = [part.split()[0] for part in line.split(": ")[-1].split(", ")]
    percents = [float(part.split()[1][:-1]) for part in line.split(": ")[-1].split(", ")]
    assert len(names) == 3 and set(names) <= set(EMOTIONS) and names[0] == "happy"
    assert percents == sorted(percents, reverse=True)


def test_the_course_model_and_top_1(capsys, astronaut):
    status, out, _ = run_cli(
        capsys, "predict", astronaut, "--weights", "si100-3class", "--top", "1"
    )
    assert status == 0
    assert out.splitlines() == [expected_line(astronaut, "si100-3class", 1)]
    assert out.split(": ")[-1].split()[0] in COURSE_CLASSES


def test_json_holds_every_face_box_and_class_probability_of_each_input(capsys, astronaut, clip):
    status, out, _ = run_cli(capsys, "predict", astronaut, clip, "--json", "--every", "4")
    assert status == 0
    result = json.loads(out)  # one object for the whole call
    assert result["weights"] == "best-7class" and result["classes"] == list(EMOTIONS)
    photo, movie = result["inputs"]
    assert photo["path"] == str(astronaut) and photo["kind"] == "photo"
    (face,) = photo["faces"]
    assert face["box"] == [177, 66, 95, 95]  # where tests/test_faces.py finds it
    assert list(face["probabilities"]) == list(EMOTIONS)
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert face["emotion"] == max(face["probabilities"], key=face["probabilities"].get)
    assert movie["kind"] == "video" and movie["frames"] == FRAMES
    assert movie["processed_frames"] == 3 and movie["every"] == 4  # frames 0, 4, 8
    (followed,) = movie["faces"]
    assert followed["face_id"] == 1 and followed["frames_seen"] == 3
    moved = followed["last_box"][0] - followed["first_box"][0]
    assert abs(moved - 8 * STEP) <= 4  # from frame 0 to frame 8
    assert sum(followed["mean_probabilities"].values()) == pytest.approx(1, abs=1e-4)


def test_a_video_writes_its_outputs_and_prints_one_line_per_face(capsys, tmp_path, clip):
    out, csv, plot = tmp_path / "a.mp4", tmp_path / "t.csv", tmp_path / "p.png"
    status, stdout, err = run_cli(
        capsys, "predict", clip, "--out", out, "--csv", csv, "--plot", plot, "--smooth", "3"
    )
    assert status == 0, err
    lines = stdout.splitlines()
    assert lines[0].startswith(f"{clip}: {FRAMES} frames (1.2 s at 10 frames/s), {FRAMES} searched")
    assert "1 face(s) followed" in lines[0]
    assert lines[1].startswith(f"  face 1: {FRAMES} frames, 0.00-1.10 s: happy ")
    assert lines[2:] == [f"  wrote {csv}", f"  wrote {plot}", f"  wrote {out}"]
    table = pd.read_csv(csv)
    assert len(table) == FRAMES and list(table.columns[-7:]) == list(EMOTIONS)
    assert len(read_back(out)) == FRAMES
    assert cv2.imread(str(plot)) is not None


def write_bad(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    if name == "notes.txt":
        path.write_text("not a picture")
    elif name == "empty.mp4":
        path.write_bytes(b"")
    elif name == "cut.avi":
        noise = np.random.default_rng(0).integers(0, 256, (24, 48, 64, 3), dtype=np.uint8)
        whole = write_clip(tmp_path / "whole.avi", list(noise))
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        whole.unlink()
    elif name == "blank.mp4":
        write_clip(path, [np.full((96, 128, 3), 40 * i, np.uint8) for i in range(6)])
    return path


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("notes.txt", "is not an image nor a video OpenCV can read: expected JPEG"),
        ("empty.mp4", "cannot be read as a video: empty, cut short"),
        ("cut.avi", "ends after"),
        ("blank.mp4", "processed 6 of 6 frames, no face found"),
        ("missing.mp4", "does not exist or is not a file"),
    ],
)
def test_bad_inputs_are_one_line_exit_2_and_write_nothing(capsys, tmp_path, name, message):
    path = write_bad(tmp_path, name)
    before = sorted(tmp_path.iterdir())
    status, out, err = run_cli(
        capsys, "predict", path, "--out", tmp_path / "o.mp4", "--csv", tmp_path / "o.csv"
    )
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {path}") and message in err
    assert sorted(tmp_path.iterdir()) == before


def test_with_several_inputs_a_bad_one_does_not_stop_the_others(capsys, tmp_path, astronaut, clip):
    bad = write_bad(tmp_path, "empty.mp4")
    status, out, err = run_cli(capsys, "predict", bad, astronaut, clip, "--json")
    assert status == 2
    inputs = json.loads(out)["inputs"]
    assert inputs[0]["path"] == str(bad) and "cannot be read as a video" in inputs[0]["error"]
    assert inputs[1]["kind"] == "photo" and inputs[2]["kind"] == "video"
    assert err.splitlines()[0].startswith(f"error: {bad} cannot be read")
    assert err.splitlines()[-1] == "error: 1 of 3 inputs failed"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give photos or videos to read, or --webcam N"),
        (["--webcam", "0", "x.mp4"], "not both"),
        (["{clip}", "--smooth", "0"], "--smooth must be at least 1"),
        (["{clip}", "--every", "0"], "--every must be at least 1"),
        (["{clip}", "{clip}", "--csv", "t.csv"], "give a single video"),
        (["{photo}", "--out", "o.mp4"], "give a single video"),
        (["{clip}", "--out", "{clip}"], "is an input being read"),
        (["{clip}", "--csv", "{clip}"], "--csv {clip} is an input being read"),
        (["{clip}", "--plot", "p.txt"], "cannot write the plot p.txt: expected a file name"),
        (["{clip}", "--out", "o.webm"], "expected a file name ending in .mp4"),
    ],
)
def test_option_mistakes_are_refused_before_any_work(capsys, clip, astronaut, argv, message):
    argv = [a.format(clip=clip, photo=astronaut) for a in argv]
    message = message.format(clip=clip)
    status, out, err = run_cli(capsys, "predict", *argv)
    assert status == 2 and out == "" and err.count("\n") == 1 and message in err


def test_webcam_without_a_camera_says_so_in_one_line(capsys, monkeypatch, tmp_path):
    class NoCamera:  # what cv2.VideoCapture(0) is on a machine without a camera
        def __init__(self, index: int) -> None:
            pass

        def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
            return False

        def release(self) -> None:
            pass

    monkeypatch.setattr(cv2, "VideoCapture", NoCamera)
    status, out, err = run_cli(capsys, "predict", "--webcam", "0", "--out", tmp_path / "w.mp4")
    assert status == 2 and out == ""
    assert err.startswith("error: no webcam at index 0") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_the_detector_choices_are_the_registered_detectors():
    from fer_helpers.detectors import DETECTORS

    parser = build_parser()
    predict = next(
        a
        for a in parser._subparsers._group_actions[0].choices["predict"]._actions
        if a.dest == "detector"
    )
    assert sorted(predict.choices) == sorted(DETECTORS) and predict.default == "haar"


def test_mtcnn_finds_the_turned_face_the_haar_cascade_misses(capsys, astronaut, tmp_path):
    image = cv2.imread(str(astronaut))
    rows, columns = image.shape[:2]
    turn = cv2.getRotationMatrix2D((columns / 2, rows / 2), 30, 1.0)
    turned = tmp_path / "turned.png"
    cv2.imwrite(str(turned), cv2.warpAffine(image, turn, (columns, rows), borderMode=1))
    status, out, _ = run_cli(capsys, "predict", turned, "--json")
    assert status == 0 and json.loads(out)["inputs"][0]["faces"] == []
    status, out, _ = run_cli(capsys, "predict", turned, "--json", "--detector", "mtcnn")
    (face,) = json.loads(out)["inputs"][0]["faces"]
    x, y, w, h = face["box"]
    # The face's centre, turned with the photo (the upright face was at x=177 y=66 w=95 h=95).
    cx, cy = turn @ np.array([177 + 95 / 2, 66 + 95 / 2, 1.0])
    assert abs(x + w / 2 - cx) < 20 and abs(y + h / 2 - cy) < 20
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-4)
