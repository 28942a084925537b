"""Faces in videos and from a webcam: followed from frame to frame, their emotions smoothed.

    model, info = load_pretrained("best-7class")
    timeline = follow_video("clip.mp4", model, info["class_names"], smooth=5,
                            out="annotated.mp4", csv="timeline.csv", plot="emotions.png")
    timeline.table()          # one row per face per processed frame (pandas)
    timeline.plot()           # each face's emotions over time (a matplotlib Figure)
    print("\\n".join(timeline.describe()))

`python -m fer_helpers predict clip.mp4 --out annotated.mp4 --csv timeline.csv` runs
the same. Each processed frame goes through faces.predict_image (OpenCV's Haar
cascade, crops framed like FER2013, the model's softmax), so a video frame is
read exactly as a photo is.

Following faces (FaceTracker): a face found in a frame gets the id of the face
seen in the previous processed frames whose box overlaps it most, measured by
intersection over union (IoU: shared area / combined area), if that overlap is
at least `min_iou`; pairs are matched greedily, largest overlap first, each face
and each id used once. A face that matches nothing gets a new id (1, 2, ...; never
reused). A face that is not found for more than `max_missed` processed frames in
a row is dropped: if it comes back, it is a new id. This is enough for faces that
move less than about half their width between processed frames; two faces that
pass right in front of each other can swap ids (nothing here recognises a face).

Smoothing (smooth_last, moving_average): the emotion probabilities shown, written
and plotted for a face are the mean of its last `smooth` observations (the frames
in which that face was found), so one odd frame does not flip its label;
smooth=1 shows each frame's own probabilities.

Outputs are written only when the whole video was read and at least one face was
found: the annotated video to a temporary file beside the target that is renamed
at the end, the CSV and the plot through files.atomic_write. An error or Ctrl-C
midway leaves no output file, neither whole nor half-written. Codecs: MP4, MOV and
MKV are written with "mp4v" (MPEG-4 Part 2: what opencv-python-headless can encode;
its FFmpeg has no H.264 encoder), AVI with "MJPG".
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm

from .errors import DataError, FerError
from .faces import (
    IMAGE_TYPES,
    MIN_FACE,
    Box,
    annotate,
    predict_image,
    top_emotions,
    webcam_frames,
)
from .files import atomic_write

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv")
VIDEO_TYPES = "MP4, AVI, MOV, MKV, WebM"
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
OUT_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
SMOOTH = 5  # observations of a face averaged: about 1/6 s at 30 frames/s
MIN_IOU = 0.3  # a face's boxes in consecutive processed frames overlap at least this much
MAX_MISSED = 5  # processed frames a face may go unseen (a blink, a turned head) and keep its id
DEFAULT_FPS = 30.0  # when a file does not say its frame rate
WEBCAM_FPS = 15.0  # the annotated webcam video's frame rate (frames repeat to keep real time)
WEBCAM_FRAMES = 300  # a webcam run stops after this many frames (or Ctrl-C)


# --- what a file is ----------------------------------------------------------------------------


def input_kind(path: str | Path) -> str:
    """ "photo" or "video": by the file's extension, else by what OpenCV can read in it.

    Raises DataError, naming the file, when it is missing or is neither.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path} does not exist or is not a file: expected a photo ({IMAGE_TYPES}) "
            f"or a video ({VIDEO_TYPES})"
        )
    suffix = path.suffix.lower()
    if suffix in PHOTO_SUFFIXES:
        return "photo"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    # Unknown extension: an image decoder recognises its file by its first bytes; FFmpeg
    # would also open a single image as a one-frame video, so images are asked first.
    if cv2.haveImageReader(str(path)):
        return "photo"
    with _quiet_opencv():
        capture = cv2.VideoCapture(str(path))
        try:
            if capture.isOpened() and capture.read()[0]:
                return "video"
        finally:
            capture.release()
    raise DataError(
        f"{path} is not an image nor a video OpenCV can read: "
        f"expected {IMAGE_TYPES} or {VIDEO_TYPES}"
    )


@contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Keep OpenCV's and FFmpeg's own warnings off stderr: our errors say it in one line.

    FFmpeg reads OPENCV_FFMPEG_LOGLEVEL when OpenCV first starts it (-8: quiet); both
    settings are put back afterwards, so the rest of the process is unchanged.
    """
    level = cv2.utils.logging.getLogLevel()
    had = os.environ.get("OPENCV_FFMPEG_LOGLEVEL")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)
        if had is None:
            os.environ.pop("OPENCV_FFMPEG_LOGLEVEL", None)


# --- following faces ---------------------------------------------------------------------------


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (x, y, w, h): 1 the same box, 0 apart."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One face followed across frames: its id, last box, and probabilities seen so far."""

    face_id: int
    box: Box
    history: list[np.ndarray] = field(default_factory=list)
    missed: int = 0  # processed frames since it was last found


class FaceTracker:
    """Stable ids for the faces of consecutive frames, by the overlap of their boxes.

        tracker = FaceTracker()
        ids = tracker.update(boxes)    # one id per box, in the order of the boxes

    See the module's docstring for the rule; min_iou and max_missed tune it.
    """

    def __init__(self, min_iou: float = MIN_IOU, max_missed: int = MAX_MISSED) -> None:
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks: dict[int, Track] = {}  # the faces still followed, by id
        self.next_id = 1

    def update(self, boxes: Sequence[Box]) -> list[int]:
        """The id of each box of the next processed frame (new faces get new ids)."""
        pairs = sorted(
            (
                (overlap, face_id, i)
                for face_id, track in self.tracks.items()
                for i, box in enumerate(boxes)
                if (overlap := iou(track.box, box)) >= self.min_iou
            ),
            key=lambda pair: (-pair[0], pair[1], pair[2]),  # ties: older face, leftmost box
        )
        ids: list[int | None] = [None] * len(boxes)
        for _, face_id, i in pairs:  # greedy: the largest overlaps claim each other first
            if ids[i] is None and face_id not in ids:
                ids[i] = face_id
        for i, box in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self.next_id
                self.tracks[self.next_id] = Track(self.next_id, tuple(box))
                self.next_id += 1
            track = self.tracks[ids[i]]
            track.box, track.missed = tuple(box), 0
        for face_id in [f for f in self.tracks if f not in ids]:
            self.tracks[face_id].missed += 1
            if self.tracks[face_id].missed > self.max_missed:
                del self.tracks[face_id]
        return [int(face_id) for face_id in ids]


def smooth_last(history: Sequence[np.ndarray], k: int = SMOOTH) -> np.ndarray:
    """The mean of the last k rows of a face's probabilities (fewer when fewer were seen)."""
    if k < 1:
        raise FerError(f"smoothing window must be at least 1 frame, got {k}")
    if not len(history):
        raise FerError("no probabilities to smooth")
    return np.mean(np.asarray(history[-k:], dtype=np.float64), axis=0)


def moving_average(series: np.ndarray, k: int = SMOOTH) -> np.ndarray:
    """Row t: the mean of rows t-k+1 .. t of a (T, classes) series (smooth_last at every t)."""
    series = np.asarray(series, dtype=np.float64)
    return np.stack([smooth_last(series[: t + 1], k) for t in range(len(series))])


# --- reading frames ----------------------------------------------------------------------------


@dataclass
class Frame:
    """A frame read: its index in the source, its time in seconds, and its pixels (RGB)."""

    index: int
    time_s: float
    image: np.ndarray


class VideoFrames:
    """The frames of a video file, RGB, in order; DataError when it cannot be read whole.

    Opening refuses a file that is not a video, or an empty one, or one whose
    first frame cannot be decoded. Reading to the end refuses a file that stops
    well before the frame count its header announces (cut short by a download).
    """

    def __init__(self, path: str | Path, max_frames: int | None = None) -> None:
        self.path = Path(path)
        self.max_frames = max_frames
        if not self.path.is_file():
            raise DataError(f"{self.path} does not exist or is not a file: expected a video")
        with _quiet_opencv():
            capture = cv2.VideoCapture(str(self.path))
            opened = capture.isOpened()
            announced = capture.get(cv2.CAP_PROP_FRAME_COUNT) if opened else 0
            fps = capture.get(cv2.CAP_PROP_FPS) if opened else 0
            capture.release()
        if not opened:
            raise DataError(
                f"{self.path} cannot be read as a video: empty, cut short, damaged or not a "
                f"video at all; expected {VIDEO_TYPES}"
            )
        # Some containers announce no count, or a nonsense one: then nothing is checked.
        self.announced = int(announced) if 0 < announced < 1e9 else None
        self.fps_known = bool(math.isfinite(fps) and 0 < fps < 1000)
        self.fps = float(fps) if self.fps_known else DEFAULT_FPS

    def __len__(self) -> int:
        """Frames that will be read, as far as the header says (0 when it does not)."""
        count = self.announced or 0
        return min(count, self.max_frames) if self.max_frames else count

    def __iter__(self) -> Iterator[Frame]:
        with _quiet_opencv():
            capture = cv2.VideoCapture(str(self.path))
        index = 0
        try:
            while self.max_frames is None or index < self.max_frames:
                with _quiet_opencv():
                    ok, bgr = capture.read()
                if not ok:
                    break
                yield Frame(index, index / self.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise DataError(
                f"{self.path} holds no frame that can be decoded: an empty or damaged video; "
                f"expected {VIDEO_TYPES}"
            )
        expected = len(self)
        if expected and index < expected - max(
            2, round(0.02 * expected)
        ):  # counts may be off by a frame or two
            raise DataError(
                f"{self.path} ends after {index} of the {expected} frames its header announces: "
                f"a truncated or damaged video; expected a complete {VIDEO_TYPES} file"
            )


def webcam_stream(camera: int = 0, max_frames: int = WEBCAM_FRAMES) -> Iterator[Frame]:
    """Frames from a webcam (faces.webcam_frames), timed by the clock; stops at max_frames.

    On a machine without a camera (a server, a container, CI) it raises DataError
    in one line before yielding anything.
    """
    frames = webcam_frames(camera, max_frames)
    try:
        with _quiet_opencv():
            first = next(frames, None)
    except DataError as err:
        raise DataError(
            f"{err} (--webcam needs a camera on this machine; a server or container has "
            "none: give a video file instead)"
        ) from err
    if first is None:
        return
    start = time.perf_counter()
    yield Frame(0, 0.0, first)
    for index, image in enumerate(frames, start=1):
        yield Frame(index, time.perf_counter() - start, image)


# --- the timeline ------------------------------------------------------------------------------


@dataclass
class Timeline:
    """What follow_faces found: one row per face per processed frame, and how it was read.

    rows: dicts with frame, time_s, face_id, box (x, y, w, h), probabilities (the
    smoothed ones, an array in class_names order) and raw (that frame's own).
    """

    source: str
    class_names: tuple[str, ...]
    fps: float
    every: int
    smooth: int
    frames: int = 0  # frames read
    processed: int = 0  # frames searched for faces (every `every`th)
    duration_s: float = 0.0  # of the frames read: the last one's time plus one frame
    seconds: float = 0.0  # wall-clock time spent
    rows: list[dict] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """The CSV's table: frame, time_s, face_id, x, y, w, h, emotion, one column per class.

        emotion and the class columns are the smoothed probabilities (smooth_last).
        """
        columns = ["frame", "time_s", "face_id", "x", "y", "w", "h", "emotion", *self.class_names]
        records = [
            [
                row["frame"],
                round(row["time_s"], 4),
                row["face_id"],
                *row["box"],
                self.class_names[int(np.argmax(row["probabilities"]))],
                *np.round(row["probabilities"], 5).tolist(),
            ]
            for row in self.rows
        ]
        return pd.DataFrame(records, columns=columns)

    def face_ids(self) -> list[int]:
        return sorted({row["face_id"] for row in self.rows})

    def faces(self) -> list[dict]:
        """One summary per face id: frames seen, first and last time and box, mean probabilities."""
        summaries = []
        for face_id in self.face_ids():
            rows = [row for row in self.rows if row["face_id"] == face_id]
            mean = np.mean([row["raw"] for row in rows], axis=0)
            summaries.append(
                {
                    "face_id": face_id,
                    "frames_seen": len(rows),
                    "first_s": round(rows[0]["time_s"], 3),
                    "last_s": round(rows[-1]["time_s"], 3),
                    "first_box": list(rows[0]["box"]),
                    "last_box": list(rows[-1]["box"]),
                    "emotion": self.class_names[int(mean.argmax())],
                    "mean_probabilities": dict(
                        zip(self.class_names, np.round(mean, 5).tolist(), strict=True)
                    ),
                }
            )
        return summaries

    def summary(self) -> dict:
        """The JSON `predict --json` prints for a video."""
        return {
            "frames": self.frames,
            "processed_frames": self.processed,
            "every": self.every,
            "smooth": self.smooth,
            "fps": round(self.fps, 3),
            "duration_s": round(self.duration_s, 3),
            "seconds": round(self.seconds, 2),
            "faces": self.faces(),
            "outputs": self.outputs,
        }

    def describe(self, top: int = 3) -> list[str]:
        """The lines `predict` prints for a video: what was read, then one line per face."""
        lines = [
            f"{self.source}: {self.frames} frames ({self.duration_s:.1f} s at "
            f"{self.fps:g} frames/s), {self.processed} searched, {len(self.face_ids())} "
            f"face(s) followed, in {self.seconds:.1f} s"
        ]
        for face in self.faces():
            ranked = top_emotions(face["mean_probabilities"], top)
            lines.append(
                f"  face {face['face_id']}: {face['frames_seen']} frames, "
                f"{face['first_s']:.2f}-{face['last_s']:.2f} s: {ranked} (mean)"
            )
        lines += [f"  wrote {path}" for path in self.outputs.values()]
        return lines

    def plot(self, max_faces: int = 6) -> Figure:
        """Each face's smoothed emotion probabilities over time, one panel per face.

        The faces seen longest come first; at most max_faces panels.
        """
        from .plots import course_style

        faces = sorted(self.faces(), key=lambda face: -face["frames_seen"])[:max_faces]
        with course_style():
            figure = Figure(figsize=(10, 1.2 + 2.6 * max(1, len(faces))), layout="constrained")
            axes = figure.subplots(max(1, len(faces)), 1, sharex=True, squeeze=False)[:, 0]
            colours = [f"C{i}" for i in range(len(self.class_names))]  # one colour per class
            for ax, face in zip(axes, faces):
                rows = [row for row in self.rows if row["face_id"] == face["face_id"]]
                times = [row["time_s"] for row in rows]
                probs = np.array([row["probabilities"] for row in rows])
                for c, name in enumerate(self.class_names):
                    ax.plot(times, probs[:, c], label=name, color=colours[c], marker=".")
                ax.set_ylim(0, 1)
                ax.set_ylabel("probability")
                ax.set_title(f"face {face['face_id']}", loc="left")
            axes[-1].set_xlabel("time (s)")
            axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
            figure.suptitle(f"{Path(self.source).name}: emotions (mean of the last {self.smooth})")
        return figure

    def write_csv(self, path: str | Path) -> Path:
        """The table, written atomically."""
        with atomic_write(path) as file:
            self.table().to_csv(file, index=False)
        return Path(path)

    def save_plot(self, path: str | Path) -> Path:
        """The plot as an image (PNG, or what the extension names), written atomically."""
        suffix = Path(path).suffix.lstrip(".").lower() or "png"
        with atomic_write(path) as file:
            self.plot().savefig(file, format=suffix)
        return Path(path)


# --- writing the annotated video ---------------------------------------------------------------


class AnnotatedVideo:
    """A video written to a temporary file beside `path`, renamed to it by commit().

        with AnnotatedVideo("out.mp4", fps=30) as video:
            video.write(rgb_frame)
            ...
            video.commit()          # without it (an error, Ctrl-C) nothing is left behind

    real_time: each frame is repeated until the video's clock reaches the frame's
    time, or left out when it comes before its turn (for a webcam, whose frames come
    as fast as they are processed), so the video plays as fast as life.
    """

    def __init__(self, path: str | Path, fps: float, real_time: bool = False) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in OUT_CODECS:
            raise DataError(
                f"cannot write the annotated video {self.path}: expected a file name ending in "
                f"{', '.join(OUT_CODECS)}"
            )
        self.codec, self.fps, self.real_time = OUT_CODECS[suffix], fps, real_time
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Keep the extension: FFmpeg picks the container by it.
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=suffix
        )
        os.close(fd)
        self.tmp = Path(tmp)
        self.writer: cv2.VideoWriter | None = None
        self.written = 0

    def write(self, image: np.ndarray, time_s: float | None = None) -> None:
        if self.writer is None:  # the size is known with the first frame
            height, width = image.shape[:2]
            with _quiet_opencv():
                self.writer = cv2.VideoWriter(
                    str(self.tmp), cv2.VideoWriter_fourcc(*self.codec), self.fps, (width, height)
                )
            if not self.writer.isOpened():
                raise DataError(
                    f"OpenCV cannot write {self.path} with codec {self.codec}: try a .mp4 or "
                    ".avi name"
                )
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        copies = 1
        if self.real_time and time_s is not None:
            # As many copies as bring the video's clock to the frame's time: a slow step is
            # held on screen, a frame that comes before its turn is left out (0 copies).
            copies = round(time_s * self.fps) + 1 - self.written
        for _ in range(copies):
            self.writer.write(bgr)
        self.written += copies

    def commit(self) -> Path:
        """Finish the file and give it its name."""
        if self.writer is not None:
            self.writer.release()
        os.chmod(self.tmp, 0o644)  # mkstemp makes the file private; a normal write would not
        os.replace(self.tmp, self.path)
        return self.path

    def close(self) -> None:
        """Release the writer and remove the temporary file unless commit() renamed it."""
        if self.writer is not None:
            self.writer.release()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AnnotatedVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the loop ----------------------------------------------------------------------------------


def follow_faces(
    frames: Iterable[Frame],
    model: nn.Module,
    class_names: Sequence[str],
    *,
    source: str = "video",
    fps: float = DEFAULT_FPS,
    every: int = 1,
    smooth: int = SMOOTH,
    min_size: int = MIN_FACE,
    channels: int | None = None,
    detector: Callable[..., list[Box]] | None = None,
    video: AnnotatedVideo | None = None,
    total: int | None = None,
    progress: bool = True,
    stop_on_interrupt: bool = False,
) -> Timeline:
    """Find, follow and classify the faces of every `every`th frame; a Timeline of them.

    Each searched frame goes through faces.predict_image; the tracker gives each
    face its id, and its probabilities are smoothed over its last `smooth`
    observations. `video`, if given, receives every frame (searched or not),
    annotated with the latest faces and their smoothed emotions ("1: happy 87%").
    A progress bar runs on stderr when it is a terminal. stop_on_interrupt: Ctrl-C
    ends the loop and keeps what was found (how a webcam run is stopped). detector:
    as faces.predict_image takes it (None: the Haar cascade).
    """
    if every < 1 or smooth < 1:
        raise FerError(f"--every and --smooth must be at least 1, got {every} and {smooth}")
    class_names = tuple(class_names)
    timeline = Timeline(source, class_names, fps, every, smooth)
    tracker = FaceTracker()
    drawn: tuple[list[Box], list[str], list[float]] = ([], [], [])
    started = time.perf_counter()
    threads = torch.get_num_threads()
    # A frame's few 48x48 faces are too little work to share between threads: on a busy
    # CPU the threads wait for each other (measured on 2 cores under load: 20 ms a frame
    # with one thread, over 400 ms with two). Put back afterwards.
    torch.set_num_threads(1)
    bar = tqdm(
        total=total or None,
        unit="frame",
        desc=Path(source).name,
        disable=None if progress else True,  # None: only on a terminal
        leave=False,
    )
    try:
        for frame in frames:
            timeline.frames += 1
            timeline.duration_s = frame.time_s + 1 / fps
            bar.update(1)
            if frame.index % every == 0:
                timeline.processed += 1
                found = predict_image(
                    frame.image,
                    model,
                    class_names,
                    min_size=min_size,
                    channels=channels,
                    detector=detector,
                )
                boxes = [face["box"] for face in found]
                drawn = ([], [], [])
                for face, face_id in zip(found, tracker.update(boxes), strict=True):
                    raw = np.array([face["probabilities"][name] for name in class_names])
                    track = tracker.tracks[face_id]
                    track.history.append(raw)
                    smoothed = smooth_last(track.history, smooth)
                    timeline.rows.append(
                        {
                            "frame": frame.index,
                            "time_s": frame.time_s,
                            "face_id": face_id,
                            "box": tuple(int(v) for v in face["box"]),
                            "probabilities": smoothed,
                            "raw": raw,
                        }
                    )
                    best = int(smoothed.argmax())
                    drawn[0].append(face["box"])
                    drawn[1].append(f"{face_id}: {class_names[best]}")
                    drawn[2].append(float(smoothed[best]))
            if video is not None:
                video.write(annotate(frame.image, *drawn), frame.time_s)
    except KeyboardInterrupt:
        if not stop_on_interrupt:
            raise
    finally:
        bar.close()
        torch.set_num_threads(threads)
        timeline.seconds = time.perf_counter() - started
    return timeline


def _follow_and_write(
    frames: Iterable[Frame],
    model: nn.Module,
    class_names: Sequence[str],
    *,
    source: str,
    fps: float,
    out: str | Path | None,
    csv: str | Path | None,
    plot: str | Path | None,
    real_time: bool = False,
    **options: object,
) -> Timeline:
    """follow_faces, then the outputs, each written whole or not at all."""
    video = AnnotatedVideo(out, WEBCAM_FPS if real_time else fps, real_time) if out else None
    written: list[Path] = []
    try:
        timeline = follow_faces(
            frames, model, class_names, source=source, fps=fps, video=video, **options
        )
        if not timeline.rows:
            raise DataError(
                f"{source}: processed {timeline.processed} of {timeline.frames} frames, no face "
                f"found (faces are searched at least {options.get('min_size', MIN_FACE)} pixels "
                "wide, frontal, by OpenCV's Haar cascade); nothing written"
            )
        if csv:
            written.append(timeline.write_csv(csv))
            timeline.outputs["csv"] = str(written[-1])
        if plot:
            written.append(timeline.save_plot(plot))
            timeline.outputs["plot"] = str(written[-1])
        if video is not None:
            timeline.outputs["out"] = str(video.commit())
    except BaseException:
        for path in written:  # a later output failed: all or nothing
            path.unlink(missing_ok=True)
        raise
    finally:
        if video is not None:
            video.close()
    return timeline


def check_outputs(
    out: str | Path | None = None,
    csv: str | Path | None = None,
    plot: str | Path | None = None,
    sources: Sequence[str | Path] = (),
) -> None:
    """Refuse, before any work, output names that cannot be written or that name an input."""
    if out is not None and Path(out).suffix.lower() not in OUT_CODECS:
        raise DataError(
            f"cannot write the annotated video {out}: expected a file name ending in "
            f"{', '.join(OUT_CODECS)}"
        )
    if plot is not None and Path(plot).suffix.lower() not in PLOT_SUFFIXES:
        raise DataError(
            f"cannot write the plot {plot}: expected a file name ending in "
            f"{', '.join(PLOT_SUFFIXES)}"
        )
    for option, target in (("--out", out), ("--csv", csv), ("--plot", plot)):
        if target is not None and any(Path(target).resolve() == Path(s).resolve() for s in sources):
            raise DataError(f"{option} {target} is an input being read: give another file name")


def follow_video(
    path: str | Path,
    model: nn.Module,
    class_names: Sequence[str],
    *,
    every: int = 1,
    smooth: int = SMOOTH,
    min_size: int = MIN_FACE,
    channels: int | None = None,
    detector: Callable[..., list[Box]] | None = None,
    out: str | Path | None = None,
    csv: str | Path | None = None,
    plot: str | Path | None = None,
    max_frames: int | None = None,
    progress: bool = True,
) -> Timeline:
    """Follow the faces of a video file; write the annotated video, CSV and plot if asked.

    Raises DataError (one line, naming the file) for a file that is not a video,
    an empty or truncated one, or one in which no face was found; then no output
    file is written.
    """
    check_outputs(out, csv, plot, [path])
    frames = VideoFrames(path, max_frames)
    return _follow_and_write(
        frames,
        model,
        class_names,
        source=str(path),
        fps=frames.fps,
        out=out,
        csv=csv,
        plot=plot,
        every=every,
        smooth=smooth,
        min_size=min_size,
        channels=channels,
        detector=detector,
        total=len(frames),
        progress=progress,
    )


def follow_webcam(
    camera: int,
    model: nn.Module,
    class_names: Sequence[str],
    *,
    every: int = 1,
    smooth: int = SMOOTH,
    min_size: int = MIN_FACE,
    channels: int | None = None,
    detector: Callable[..., list[Box]] | None = None,
    out: str | Path | None = None,
    csv: str | Path | None = None,
    plot: str | Path | None = None,
    max_frames: int = WEBCAM_FRAMES,
    progress: bool = True,
) -> Timeline:
    """follow_video for a webcam: up to max_frames frames, or until Ctrl-C.

    Times are the clock's; the annotated video is written at WEBCAM_FPS with
    frames repeated to keep real time. Without a camera: DataError in one line.
    """
    check_outputs(out, csv, plot)
    return _follow_and_write(
        webcam_stream(camera, max_frames),
        model,
        class_names,
        source=f"webcam {camera}",
        fps=WEBCAM_FPS,
        out=out,
        csv=csv,
        plot=plot,
        real_time=True,
        every=every,
        smooth=smooth,
        min_size=min_size,
        channels=channels,
        detector=detector,
        total=max_frames,
        progress=progress,
        stop_on_interrupt=True,
    )
