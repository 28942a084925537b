"""Faces in photos: find them, crop them like FER2013, read their expression.

    image = load_photo("photo.jpg")                    # RGB uint8 (H, W, 3)
    gray = to_gray(image)
    boxes = detect_faces(gray)                         # [(x, y, w, h), ...] in pixels
    crops = np.stack([crop_face(gray, box) for box in boxes])    # (N, 48, 48) uint8
    probs = classify_faces(model, crops)               # (N, classes), rows sum to 1
    labels = [class_names[i] for i in probs.argmax(axis=1)]
    picture = annotate(image, boxes, labels, probs.max(axis=1))  # boxes + "happy 87%"

or all at once: predict_photo("photo.jpg", model, class_names).

Faces are found by OpenCV's Haar cascade (haarcascade_frontalface_default.xml,
which ships in the opencv-python-headless wheel, so nothing is downloaded). A box
is (x, y, w, h): x counts columns from the left, y rows from the top, so the
face's pixels are gray[y : y + h, x : x + w].

Cropping like FER2013: FER2013's faces are grayscale, 48x48, square, centred,
and tightly framed from the forehead to the chin. Running this same cascade on
FER2013's own faces (measure_framing) finds boxes about as large as the whole
48x48 image and centred in it, so the cascade's box, made square and resized,
already frames a face as FER2013 does: the default margin is 0. A margin of
0.1 would add 10% of the box's side on every side (more hair and background
than the model saw in training). A check with the trained 3-class model:
FER2013's validation faces, found again by the cascade and cropped this way,
are classified best with a margin between 0 and 0.05; margins of -0.1 or +0.1
cost several points of accuracy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from .data import to_model_input
from .decode import check_image_size, header_size
from .errors import DataError
from .inference import scores_of
from .models import check_input, input_channels

Box = tuple[int, int, int, int]
"""A face's box in pixels: (x, y, w, h), x the left column, y the top row."""

CASCADE_FILE = "haarcascade_frontalface_default.xml"
FER_SIZE = 48  # FER2013's faces are 48x48 pixels
FER_MARGIN = 0.0  # the cascade's box already frames a face as FER2013 does (see above)
MIN_FACE = 30  # smaller faces are mostly false detections, and too blurred to read
MAX_SIDE = 1200  # larger photos are searched at this size: a phone photo takes seconds
IMAGE_TYPES = "JPEG, PNG, BMP, TIFF, WebP"
BOX_COLOR = (255, 200, 0)  # amber, in RGB
TEXT_COLOR = (0, 0, 0)


def decode_photo(content: bytes, name: str = "the photo") -> np.ndarray:
    """Decode the bytes of an image file into an RGB uint8 array (H, W, 3).

    Grayscale photos come back with three equal channels; a phone photo's EXIF
    orientation is applied, so it is the right way up. Raises DataError naming
    `name` when the bytes are not an image OpenCV can read, or when its header
    says it is over decode.MAX_PIXELS or under decode.MIN_SIDE pixels a side.
    """
    size = header_size(content)
    if size is not None:  # refused from the header: no memory spent on a bomb's pixels
        check_image_size(*size, name)
    buffer = np.frombuffer(content, dtype=np.uint8)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if bgr is None:
        raise DataError(f"{name} is not an image OpenCV can read: expected {IMAGE_TYPES}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # OpenCV's order is blue, green, red


def load_photo(path: str | Path) -> np.ndarray:
    """Read a photo file into an RGB uint8 array (H, W, 3); DataError names a bad file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file: expected a photo ({IMAGE_TYPES})")
    # Reading the bytes ourselves also works for non-ASCII paths, where cv2.imread fails.
    return decode_photo(path.read_bytes(), str(path))


def sample_photo_path(name: str = "astronaut") -> Path:
    """Path of a photo that ships inside scikit-image (no download): "astronaut" by default.

    skimage's astronaut.png is a NASA portrait of the astronaut Eileen Collins,
    in the public domain; "camera" (CC0) shows a man behind a camera in profile.
    """
    import skimage.data  # only needed here: the rest of the module works without it

    path = Path(skimage.data.__file__).parent / f"{name}.png"
    if not path.is_file():
        raise DataError(f"scikit-image has no bundled {path.name} in {path.parent}")
    return path


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grayscale uint8 (H, W) of an RGB (H, W, 3) or already gray (H, W) image."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)  # 0.299 R + 0.587 G + 0.114 B
    raise DataError(f"expected an RGB (H, W, 3) or gray (H, W) image, got shape {image.shape}")


@functools.cache
def face_cascade() -> cv2.CascadeClassifier:
    """OpenCV's frontal-face Haar cascade, loaded once and reused."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = Path(folder) / CASCADE_FILE
    cascade = cv2.CascadeClassifier(str(path)) if path.is_file() else None
    if cascade is None or cascade.empty():
        raise DataError(
            f"OpenCV's face detector {path} is missing or unreadable: "
            "reinstall opencv-python-headless (below version 5, which dropped the cascades)"
        )
    return cascade


def detect_faces(
    gray: np.ndarray,
    min_size: int = MIN_FACE,
    scale_factor: float = 1.1,
    min_neighbors: int = 5,
) -> list[Box]:
    """Boxes (x, y, w, h) of the frontal faces in a grayscale image, left to right.

    The cascade slides a window over the image at many sizes, each scale_factor
    times the last, and keeps windows that min_neighbors overlapping windows
    also call a face; faces narrower than min_size pixels are ignored. A photo
    larger than MAX_SIDE pixels is searched at a smaller size, and the boxes
    are scaled back to the photo's pixels.
    """
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise DataError(f"expected a gray uint8 image (H, W), got {gray.dtype} {gray.shape}")
    shrink = min(1.0, MAX_SIDE / max(gray.shape))
    small = (
        gray
        if shrink == 1
        else cv2.resize(gray, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    )
    side = max(1, round(min_size * shrink))
    found = face_cascade().detectMultiScale(
        small, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(side, side)
    )
    boxes = [tuple(round(v / shrink) for v in box) for box in np.reshape(found, (-1, 4))]
    return sorted(boxes)


def square_box(box: Box, margin: float = FER_MARGIN) -> Box:
    """The square around the box's centre, of side max(w, h) plus `margin` of it on each side.

    Integer pixels: the square's corner moves by half the growth, rounded down.
    """
    x, y, w, h = box
    side = round(max(w, h) * (1 + 2 * margin))
    return (x + (w - side) // 2, y + (h - side) // 2, side, side)


def crop_face(
    gray: np.ndarray, box: Box, margin: float = FER_MARGIN, size: int = FER_SIZE
) -> np.ndarray:
    """A face cut out as FER2013 frames faces: square, centred, gray, size x size uint8.

    Where the square reaches past the photo's edge, the edge pixels are
    repeated, so the face stays centred and keeps its size.
    """
    x, y, w, h = square_box(box, margin)
    rows, columns = gray.shape
    pad = max(0, -x, -y, x + w - columns, y + h - rows)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = gray[y + pad : y + pad + h, x + pad : x + pad + w]
    # INTER_AREA averages the pixels that merge when shrinking (no aliasing).
    shrinking = w > size
    return cv2.resize(
        crop, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )


def classify_faces(model: nn.Module, crops: np.ndarray, channels: int | None = None) -> np.ndarray:
    """Softmax probabilities (N, classes) for face crops uint8 (N, 48, 48).

    The crops are normalised exactly as in training (data.to_model_input:
    u8 / 127.5 - 1, as many copies of the gray image as the model takes channels;
    `channels` only to insist, and a mismatch is a FerError); the model predicts
    in eval mode, without gradients, on its own device.
    """
    crops = np.asarray(crops)
    if crops.ndim != 3 or crops.dtype != np.uint8:
        raise DataError(f"expected face crops uint8 (N, H, W), got {crops.dtype} {crops.shape}")
    device = next(model.parameters()).device
    channels = input_channels(model) if channels is None else channels
    x = to_model_input(torch.from_numpy(crops).unsqueeze(1), channels).to(device)
    check_input(model, x)
    model.eval()
    with torch.inference_mode():
        return torch.softmax(scores_of(model, x).float(), dim=1).cpu().numpy()


def annotate(
    image: np.ndarray,
    boxes: Sequence[Box],
    labels: Sequence[str],
    probabilities: Sequence[float],
) -> np.ndarray:
    """A copy of the photo, in RGB, with every box drawn and labelled, e.g. "happy 87%".

    The label sits on a filled strip above the box (below it, for a box at the
    top edge); lines and text grow with the photo so they stay readable.
    """
    picture = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    scale = max(picture.shape[:2]) / 800
    line = max(2, round(2 * scale))  # box lines
    stroke = max(1, round(1.5 * scale))  # letters
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.5, 0.8 * scale)
    for (x, y, w, h), label, p in zip(boxes, labels, probabilities):
        cv2.rectangle(picture, (x, y), (x + w, y + h), BOX_COLOR, line)
        text = f"{label} {p:.0%}"
        (text_w, text_h), below = cv2.getTextSize(text, font, font_scale, stroke)
        strip_h = text_h + below + 2 * line
        top = y - strip_h if y >= strip_h else y + h  # above the box, or below at the top edge
        cv2.rectangle(picture, (x, top), (x + text_w + 2 * line, top + strip_h), BOX_COLOR, -1)
        origin = (x + line, top + line + text_h)
        cv2.putText(picture, text, origin, font, font_scale, TEXT_COLOR, stroke, cv2.LINE_AA)
    return picture


def draw_predictions(image: np.ndarray, faces: Sequence[dict]) -> np.ndarray:
    """annotate() with what predict_image or predict_photo found: box, emotion, probability."""
    return annotate(
        image,
        [face["box"] for face in faces],
        [face["emotion"] for face in faces],
        [face["probability"] for face in faces],
    )


def predict_image(
    image: np.ndarray,
    model: nn.Module,
    class_names: Sequence[str],
    min_size: int = MIN_FACE,
    margin: float = FER_MARGIN,
    channels: int | None = None,
    detector: Callable[..., list[Box]] | None = None,
) -> list[dict]:
    """Every face in a photo (an array) with its expression; [] when no face is found.

    One dict per face, left to right: box (x, y, w, h), emotion (the most likely
    class), probability (its probability) and probabilities ({class: probability}).
    The crops get the channels the model takes (classify_faces). detector: a function
    (image, min_size=...) -> boxes, e.g. detectors.get_detector("mtcnn"), which sees the
    photo in colour; None: the course's Haar cascade (detect_faces).
    """
    gray = to_gray(image)
    if detector is None:
        boxes = detect_faces(gray, min_size=min_size)
    else:
        boxes = detector(image, min_size=min_size)
    if not boxes:
        return []
    crops = np.stack([crop_face(gray, box, margin) for box in boxes])
    probs = classify_faces(model, crops, channels)
    if probs.shape[1] != len(class_names):
        raise DataError(
            f"the model gives {probs.shape[1]} scores but has {len(class_names)} class names"
        )
    return [
        {
            "box": box,
            "emotion": class_names[int(p.argmax())],
            "probability": float(p.max()),
            "probabilities": dict(zip(class_names, p.tolist())),
        }
        for box, p in zip(boxes, probs)
    ]


def predict_photo(
    path: str | Path,
    model: nn.Module,
    class_names: Sequence[str],
    min_size: int = MIN_FACE,
    margin: float = FER_MARGIN,
    channels: int | None = None,
    detector: Callable[..., list[Box]] | None = None,
) -> list[dict]:
    """predict_image on a photo file; DataError names a missing file or one that is no image."""
    image = load_photo(path)
    return predict_image(image, model, class_names, min_size, margin, channels, detector)


def top_emotions(probabilities: dict[str, float], k: int = 3) -> str:
    """The k most likely emotions, most likely first: "angry 61.2%, sad 20.1%, fear 9.0%"."""
    ranked = sorted(probabilities.items(), key=lambda item: -item[1])[:k]
    return ", ".join(f"{name} {p:.1%}" for name, p in ranked)


def format_predictions(path: str | Path, faces: Sequence[dict], top: int = 1) -> list[str]:
    """The lines the `predict` command prints: one per face, or one saying there is none.

    astronaut.png: face 1 at x=177 y=66 w=95 h=95: happy 87.3%
    no face found in coffee.png

    top: how many emotions each line names, most likely first (`predict --top`).
    """
    if not faces:
        return [f"no face found in {path}"]
    lines = []
    for number, face in enumerate(faces, start=1):
        x, y, w, h = face["box"]
        emotions = top_emotions(face["probabilities"], top)
        lines.append(f"{path}: face {number} at x={x} y={y} w={w} h={h}: {emotions}")
    return lines


def webcam_frames(camera: int = 0, max_frames: int = 100) -> Iterator[np.ndarray]:
    """Frames (RGB) from a webcam, up to max_frames; the camera is released afterwards.

    For your own machine only: CI and servers have no camera. opencv-python-headless
    cannot open windows (no cv2.imshow), so show the frames in the notebook.
    """
    capture = cv2.VideoCapture(camera)
    try:
        if not capture.isOpened():
            raise DataError(f"no webcam at index {camera}: is one connected and free?")
        for _ in range(max_frames):
            ok, bgr = capture.read()
            if not ok:
                raise DataError(f"the webcam at index {camera} gave no picture")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def measure_framing(faces: np.ndarray, upscale: int = 4) -> np.ndarray:
    """How this cascade frames FER2013-style faces (N, 48, 48): one row per face found.

    Each face is enlarged (the cascade's smallest face is 24 pixels wide) and
    surrounded by a border of its own edge pixels, so that a box larger than
    the image can be found too. Columns: box side / image side, and the
    box centre's offset from the image centre across and down, in image sides.
    """
    rows = []
    for face in np.asarray(faces):
        side = face.shape[0] * upscale
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
        pad = side // 2
        framed = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        boxes = detect_faces(framed, min_size=side // 3)
        if boxes:
            x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
            centre = np.array([x + w / 2, y + h / 2]) - pad
            rows.append([w / side, *(centre / side - 0.5)])
    return np.array(rows, dtype=float).reshape(-1, 3)


FRAMING_WORDS = {  # how fit_face brought an image to 48x48, in words for reports
    "as-is": "were 48x48 already",
    "face": "cropped to the face found (OpenCV's Haar cascade) and scaled to 48x48",
    "centre": "centre-cropped and scaled to 48x48 (no face found)",
}


def fit_face(gray: np.ndarray) -> tuple[np.ndarray, str]:
    """A gray image (H, W) as a 48x48 face, framed as FER2013 frames faces; and how.

    48x48 images are kept as they are ("as-is"). Otherwise the largest face the
    Haar cascade finds is cropped as `predict` crops faces (faces.crop_face,
    "face"); when none is found, the centred square, as large as fits, is
    cropped and scaled the same way ("centre").
    """
    if gray.shape == (FER_SIZE, FER_SIZE):
        return gray, "as-is"
    boxes = detect_faces(gray)
    if boxes:
        return crop_face(gray, max(boxes, key=lambda box: box[2] * box[3])), "face"
    rows, columns = gray.shape
    side = min(rows, columns)
    return crop_face(gray, ((columns - side) // 2, (rows - side) // 2, side, side)), "centre"
