"""Faces in videos: the tracker, the smoothing, the timeline, the outputs, bad videos.

The test clip is made here with cv2.VideoWriter: scikit-image's astronaut photo
(shipped with the package, public domain), its head pasted onto a gray frame and
moved STEP pixels right per frame, so where the face is in every frame is known.
The tracker and the smoothing are checked on hand-made boxes and probabilities.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fer_helpers import video
from fer_helpers.errors import DataError, FerError
from fer_helpers.faces import BOX_COLOR, load_photo, sample_photo_path
from fer_helpers.labels import COURSE_CLASSES
from fer_helpers.models import SI100FaceNet
from fer_helpers.video import (
    AnnotatedVideo,
    FaceTracker,
    Frame,
    follow_faces,
    follow_video,
    follow_webcam,
    input_kind,
    iou,
    moving_average,
    smooth_last,
    top_emotions,
)

FRAMES, STEP, FPS, SIZE = 12, 5, 10, (320, 240)  # frames, pixels per frame, frames/s, (w, h)
HEAD = (60, 40)  # where the head's 160x160 square sits in frame 0: (x, y)
CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


def clip_frames(frames: int = FRAMES, step: int = STEP) -> list[np.ndarray]:
    """RGB frames of the astronaut's head moving `step` pixels right per frame."""
    photo = load_photo(sample_photo_path("astronaut"))
    head = cv2.resize(photo[20:260, 110:350], (160, 160), interpolation=cv2.INTER_AREA)
    width, height = SIZE
    out = []
    for i in range(frames):
        frame = np.full((height, width, 3), 90, np.uint8)
        x, y = HEAD[0] + step * i, HEAD[1]
        frame[y : y + 160, x : x + 160] = head
        out.append(frame)
    return out


def write_clip(path: Path, frames: list[np.ndarray], fps: float = FPS) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*CODECS[path.suffix]), fps, (width, height)
    )
    assert writer.isOpened(), f"OpenCV cannot write {path.suffix} here"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def read_back(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        frames = clip_frames()
    except DataError as err:  # a scikit-image build without its sample photos
        pytest.skip(str(err))
    return write_clip(tmp_path_factory.mktemp("clip") / "moving.mp4", frames)


@pytest.fixture(scope="module")
def model() -> SI100FaceNet:
    torch.manual_seed(0)
    return SI100FaceNet(num_classes=3).eval()


def leftovers(folder: Path) -> list[str]:
    """Files in a folder, temporary ones (.NAME.xxx) included."""
    return sorted(p.name for p in folder.iterdir())


# --- smoothing ---------------------------------------------------------------------------------


def test_smoothing_is_the_mean_of_the_last_k_rows_computed_by_hand():
    series = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(
        moving_average(series, 2), [[1, 0], [0.5, 0.5], [0.5, 0.5], [1, 0], [0.5, 0.5]]
    )
    third = 1 / 3
    np.testing.assert_allclose(
        moving_average(series, 3),
        [[1, 0], [0.5, 0.5], [2 * third, third], [2 * third, third], [2 * third, third]],
    )
    np.testing.assert_array_equal(moving_average(series, 1), series)  # 1: no smoothing
    np.testing.assert_allclose(moving_average(series, 99)[-1], [0.6, 0.4])  # all 5 so far
    np.testing.assert_allclose(smooth_last(list(series[:2]), 5), [0.5, 0.5])
    with pytest.raises(FerError, match="at least 1"):
        smooth_last(series, 0)


def test_top_emotions_are_sorted_most_likely_first():
    probs = {"happy": 0.1, "angry": 0.612, "sad": 0.2, "fear": 0.088}
    assert top_emotions(probs, 3) == "angry 61.2%, sad 20.0%, happy 10.0%"
    assert top_emotions(probs, 1) == "angry 61.2%"


# --- the tracker -------------------------------------------------------------------------------


def test_iou_by_hand():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0  # touching edges share no pixel


def test_a_moving_face_keeps_its_id():
    tracker = FaceTracker()
    ids = [tracker.update([(10 * t, 20, 60, 60)]) for t in range(10)]
    assert ids == [[1]] * 10


def test_crossing_faces_keep_their_ids():
    """A moves right, B left, a little lower; they pass each other (boxes come left to right)."""
    tracker = FaceTracker()
    for t in range(11):
        a, b = (10 * t, 0, 60, 60), (100 - 10 * t, 30, 60, 60)
        boxes = sorted([a, b])
        ids = dict(zip(boxes, tracker.update(boxes), strict=True))
        assert (ids[a], ids[b]) == (1, 2), f"frame {t}"


def test_appearing_and_disappearing_faces():
    tracker = FaceTracker(max_missed=2)
    face, other = (100, 100, 50, 50), (0, 0, 40, 40)
    assert tracker.update([face]) == [1]
    assert tracker.update([other, face]) == [2, 1]  # a new face, left of the first
    assert tracker.update([face]) == [1]  # face 2 unseen once
    assert tracker.update([face]) == [1]  # twice: still followed
    assert tracker.update([other, face]) == [2, 1]  # back within max_missed: same id
    for _ in range(3):  # gone for 3 > max_missed frames: dropped
        tracker.update([face])
    assert 2 not in tracker.tracks
    assert tracker.update([other, face]) == [3, 1]  # back too late: a new id, never 2 again
    assert tracker.update([]) == []
    assert tracker.tracks[1].missed == 1


def test_a_face_far_from_every_followed_one_is_a_new_face():
    tracker = FaceTracker()
    assert tracker.update([(0, 0, 50, 50)]) == [1]
    assert tracker.update([(200, 0, 50, 50)]) == [2]  # not face 1 jumping across the frame
    assert tracker.update([(10, 0, 50, 50)]) == [1]  # IoU 2000/3000 with face 1's box
    tracker = FaceTracker()
    tracker.update([(0, 0, 50, 50)])
    assert tracker.update([(30, 0, 50, 50)]) == [2]  # IoU 1000/4000 = 0.25 < 0.3: new
    assert tracker.update([(40, 0, 50, 50)]) == [2]  # IoU 2000/3000: the same face


def test_two_boxes_never_share_an_id():
    tracker = FaceTracker()
    tracker.update([(0, 0, 100, 100)])
    # Both overlap face 1; the closer one (larger IoU) keeps it, the other is new.
    assert tracker.update([(5, 0, 100, 100), (40, 0, 100, 100)]) == [1, 2]


# --- what a file is ----------------------------------------------------------------------------


def test_input_kind_by_extension_then_by_content(tmp_path, clip):
    assert input_kind(clip) == "video"
    assert input_kind(sample_photo_path("astronaut")) == "photo"
    unnamed_video = tmp_path / "clip.bin"
    unnamed_video.write_bytes(clip.read_bytes())
    assert input_kind(unnamed_video) == "video"
    unnamed_photo = tmp_path / "photo.bin"
    unnamed_photo.write_bytes(sample_photo_path("astronaut").read_bytes())
    assert input_kind(unnamed_photo) == "photo"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt is not an image nor a video"):
        input_kind(text)
    with pytest.raises(DataError, match=r"gone\.mp4 does not exist"):
        input_kind(tmp_path / "gone.mp4")


# --- a whole video -----------------------------------------------------------------------------


def test_the_csv_follows_one_face_moving_as_the_clip_moves_it(tmp_path, clip, model):
    timeline = follow_video(clip, model, COURSE_CLASSES, smooth=3, csv=tmp_path / "t.csv")
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table.columns) == [
        "frame", "time_s", "face_id", "x", "y", "w", "h", "emotion", *COURSE_CLASSES
    ]  # fmt: skip
    assert len(table) == FRAMES  # one face in every frame
    assert table["frame"].tolist() == list(range(FRAMES))
    np.testing.assert_allclose(table["time_s"], np.arange(FRAMES) / FPS)
    assert set(table["face_id"]) == {1}
    # The box moves as the head was moved: STEP pixels right per frame, not down.
    steps = np.diff(table["x"])
    assert (abs(steps - STEP) <= 3).all(), steps
    assert abs(table["x"].iloc[-1] - table["x"].iloc[0] - STEP * (FRAMES - 1)) <= 4
    assert table["y"].max() - table["y"].min() <= 4
    assert table["w"].max() - table["w"].min() <= 6
    # The face (the astronaut's at 160/240 of its size) sits inside the head's square.
    x0, y0, w0 = table.loc[0, ["x", "y", "w"]]
    assert HEAD[0] < x0 < x0 + w0 < HEAD[0] + 160 and HEAD[1] < y0 < HEAD[1] + 160
    # Written probabilities: the mean of the face's last 3 frames' own probabilities.
    raw = np.array([row["raw"] for row in timeline.rows])
    smoothed = moving_average(raw, 3)
    np.testing.assert_allclose(table[list(COURSE_CLASSES)], smoothed, atol=1e-5)
    assert table["emotion"].tolist() == [COURSE_CLASSES[i] for i in smoothed.argmax(axis=1)]
    assert np.abs(raw[1:] - raw[:-1]).max() > 0  # the frames differ, so smoothing shows
    (face,) = timeline.faces()
    assert face["face_id"] == 1 and face["frames_seen"] == FRAMES
    np.testing.assert_allclose(list(face["mean_probabilities"].values()), raw.mean(0), atol=1e-5)


def test_the_annotated_video_has_every_frame_at_the_clips_size_with_boxes(tmp_path, clip, model):
    out = tmp_path / "annotated.mp4"
    timeline = follow_video(clip, model, COURSE_CLASSES, every=3, out=out)
    assert timeline.frames == FRAMES and timeline.processed == 4  # frames 0, 3, 6, 9
    assert {row["frame"] for row in timeline.rows} == {0, 3, 6, 9}
    frames = read_back(out)
    assert len(frames) == FRAMES
    assert frames[0].shape == (SIZE[1], SIZE[0], 3)
    source = read_back(clip)
    for i in (0, 4, FRAMES - 1):  # frame 4 is not searched: it shows frame 3's box
        x, y, w, _ = timeline.rows[min(i // 3, 3)]["box"]
        edge = frames[i][y, x + 5 : x + w - 5].astype(int)  # the box's top line
        assert np.abs(edge - BOX_COLOR).mean() < 40, (i, edge.mean(0))
        assert np.abs(source[i][y, x + 5 : x + w - 5].astype(int) - BOX_COLOR).mean() > 80
    assert leftovers(tmp_path) == ["annotated.mp4"]  # no temporary file left


def test_a_face_that_leaves_is_no_longer_drawn_or_written(tmp_path, model):
    frames = clip_frames(frames=5) + [np.full_like(clip_frames(1)[0], 90)] * 3
    path = write_clip(tmp_path / "leaves.avi", frames)
    timeline = follow_video(path, model, COURSE_CLASSES, out=tmp_path / "o.avi")
    assert [row["frame"] for row in timeline.rows] == [0, 1, 2, 3, 4]
    annotated = read_back(tmp_path / "o.avi")
    assert len(annotated) == 8
    amber = np.all(np.abs(annotated[6].astype(int) - BOX_COLOR) < 40, axis=-1)
    assert amber.sum() == 0  # frame 6 shows no box: the face is gone
    assert np.all(np.abs(annotated[4].astype(int) - BOX_COLOR) < 40, axis=-1).sum() > 200


def test_an_output_that_fails_takes_the_others_with_it(tmp_path, clip, model, monkeypatch):
    def full_disk(self, path):
        raise OSError(f"no space left for {path}")

    monkeypatch.setattr(video.Timeline, "save_plot", full_disk)
    outputs = {"out": tmp_path / "o.mp4", "csv": tmp_path / "o.csv", "plot": tmp_path / "o.png"}
    with pytest.raises(OSError, match="no space left"):
        follow_video(clip, model, COURSE_CLASSES, max_frames=3, **outputs)
    assert leftovers(tmp_path) == []  # the CSV, written first, is removed again


def test_the_plot_draws_each_class_of_each_face(tmp_path, clip, model):
    timeline = follow_video(clip, model, COURSE_CLASSES, plot=tmp_path / "p.png", max_frames=6)
    assert timeline.frames == 6
    assert cv2.imread(str(tmp_path / "p.png")) is not None
    (ax,) = timeline.plot().axes
    assert [line.get_label() for line in ax.lines] == list(COURSE_CLASSES)
    for c, line in enumerate(ax.lines):
        np.testing.assert_allclose(line.get_ydata(), [r["probabilities"][c] for r in timeline.rows])


def test_a_webcam_is_followed_like_a_video(monkeypatch, tmp_path, model):
    frames = clip_frames(frames=4)

    class FakeCamera:  # stands in for cv2.VideoCapture(0): the clip's frames
        def __init__(self, index: int) -> None:
            self.left = list(frames)

        def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
            return True

        def read(self) -> tuple[bool, np.ndarray | None]:
            if not self.left:
                return False, None
            return True, cv2.cvtColor(self.left.pop(0), cv2.COLOR_RGB2BGR)

        def release(self) -> None:
            pass

    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    timeline = follow_webcam(0, model, COURSE_CLASSES, max_frames=3, csv=tmp_path / "w.csv")
    table = pd.read_csv(tmp_path / "w.csv")
    assert timeline.source == "webcam 0" and len(table) == 3 and set(table["face_id"]) == {1}
    assert table["time_s"].is_monotonic_increasing and table["time_s"].iloc[0] == 0


def test_no_camera_is_one_line_before_any_work(monkeypatch, tmp_path, model):
    class NoCamera:
        def __init__(self, index: int) -> None:
            pass

        def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
            return False

        def release(self) -> None:
            pass

    monkeypatch.setattr(cv2, "VideoCapture", NoCamera)
    with pytest.raises(DataError, match="no webcam at index 0") as caught:
        follow_webcam(0, model, COURSE_CLASSES, out=tmp_path / "w.mp4")
    assert "\n" not in str(caught.value) and "needs a camera" in str(caught.value)
    assert leftovers(tmp_path) == []


# --- bad videos --------------------------------------------------------------------------------


def test_a_video_without_a_face_says_how_many_frames_and_writes_nothing(tmp_path, model):
    blank = [np.full((120, 160, 3), 20 * i, np.uint8) for i in range(8)]
    path = write_clip(tmp_path / "blank.mp4", blank)
    outputs = {"out": tmp_path / "o.mp4", "csv": tmp_path / "o.csv", "plot": tmp_path / "o.png"}
    with pytest.raises(DataError, match=r"blank\.mp4: processed 8 of 8 frames, no face found"):
        follow_video(path, model, COURSE_CLASSES, **outputs)
    assert leftovers(tmp_path) == ["blank.mp4"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.mp4", b"", "cannot be read as a video"),
        ("notes.mp4", b"frame,face\n1,2\n", "cannot be read as a video"),
        ("cut.mp4", "half", "cannot be read as a video"),  # MP4's index is at its end
        ("cut.avi", "half", r"ends after \d+ of the 24 frames its header announces"),
    ],
)
def test_bad_videos_are_named_and_nothing_is_written(tmp_path, model, name, content, message):
    path = tmp_path / name
    if content == "half":
        noise = np.random.default_rng(0).integers(0, 256, (24, 48, 64, 3), dtype=np.uint8)
        whole = write_clip(tmp_path / f"whole{path.suffix}", list(noise)).read_bytes()
        (tmp_path / f"whole{path.suffix}").unlink()
        content = whole[: len(whole) // 2]
    path.write_bytes(content)
    out, csv = tmp_path / "o.mp4", tmp_path / "o.csv"
    with pytest.raises(DataError, match=message) as caught:
        follow_video(path, model, COURSE_CLASSES, out=out, csv=csv)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert leftovers(tmp_path) == [name]


def test_ctrl_c_midway_leaves_no_output(tmp_path, clip, model, monkeypatch):
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return []

    monkeypatch.setattr(video, "predict_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        follow_video(clip, model, COURSE_CLASSES, out=tmp_path / "o.mp4", csv=tmp_path / "o.csv")
    assert leftovers(tmp_path) == []


def test_the_annotated_video_appears_only_on_commit(tmp_path):
    frame = np.zeros((48, 64, 3), np.uint8)
    with AnnotatedVideo(tmp_path / "a.avi", fps=5) as out:
        out.write(frame)
        assert not (tmp_path / "a.avi").exists()
    assert leftovers(tmp_path) == []  # closed without commit: nothing
    with AnnotatedVideo(tmp_path / "a.avi", fps=5) as out:
        for _ in range(3):
            out.write(frame)
        out.commit()
    assert leftovers(tmp_path) == ["a.avi"] and len(read_back(tmp_path / "a.avi")) == 3
    with pytest.raises(DataError, match=r"a\.webm: expected a file name ending in \.mp4"):
        AnnotatedVideo(tmp_path / "a.webm", fps=5)


def test_real_time_repeats_and_drops_frames_to_keep_the_clock(tmp_path):
    frame = np.zeros((48, 64, 3), np.uint8)
    with AnnotatedVideo(tmp_path / "live.avi", fps=10, real_time=True) as out:
        # 0.05 s comes before the second frame's turn (0.1 s): left out; after a slow
        # step to 0.31 s, that frame fills 0.1, 0.2 and 0.3 s; 0.32 s is again early.
        for time_s in (0.0, 0.05, 0.31, 0.32):
            out.write(frame, time_s)
        assert out.written == 4  # 0.0 .. 0.3 s at 10 frames/s
        out.write(frame, 1.0)
        assert out.written == 11
        out.commit()
    assert len(read_back(tmp_path / "live.avi")) == 11


def test_every_and_smooth_must_be_positive(model):
    with pytest.raises(FerError, match="at least 1"):
        follow_faces([Frame(0, 0.0, np.zeros((8, 8, 3), np.uint8))], model, COURSE_CLASSES, every=0)
