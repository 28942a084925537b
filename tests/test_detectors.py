"""Face detectors by name: the Haar cascade and MTCNN, on real photos with hand-marked faces.

The photos ship inside installed packages (nothing is downloaded, and none is a FER2013
face): scikit-image's astronaut (NASA, public domain) and camera (a man in profile behind
a camera, CC0), and matplotlib's grace_hopper.jpg (US Navy portrait, public domain).

How the faces were marked (MARKED below): by eye, on each photo drawn with a 10-pixel grid
and enlarged 3-4 times. Left and right: the outline of the cheeks at the cheekbones (no
hair, no ears); top: where the forehead meets the hair or the cap; bottom: the chin. For
the camera man, in profile: from the front of the ear to the tip of the nose. The
transformed photos carry the same boxes, moved by the transform (face_set): mirrored;
scaled down; rotated (the face taken as the ellipse inside its box, and its box the
upright box around that ellipse turned); a skin-coloured rectangle drawn as a "hand"
over the mouth or over one eye does not move the face's box.

A detection finds a marked face when their intersection over union is at least 0.5.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from fer_helpers import detectors
from fer_helpers.detectors import DETECTORS, clip_boxes, get_detector, haar, mtcnn
from fer_helpers.errors import DataError, FerError
from fer_helpers.faces import Box, load_photo, sample_photo_path

MARKED: dict[str, list[Box]] = {  # (x, y, w, h), by eye: see the module's docstring
    "astronaut": [(182, 75, 91, 111)],  # 512x512: Eileen Collins, smiling
    "grace_hopper": [(172, 140, 178, 187)],  # 512 wide, 600 high: glasses, a cap
    "camera": [(192, 125, 63, 80)],  # 512x512: in profile, facing right
}
HAND = (224, 172, 140)  # RGB of a light skin tone
SMALL_FACE = 40  # pixels: the width of a face in the scaled-down photos


def photo(name: str) -> np.ndarray:
    """One of the three photos, RGB uint8; skips the test where the package lacks it."""
    try:
        if name == "grace_hopper":
            import matplotlib.cbook

            return load_photo(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
        return load_photo(sample_photo_path(name))
    except (DataError, OSError, ValueError) as err:  # a build without its sample photos
        pytest.skip(f"no {name} photo here: {err}")


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def score(found: list[Box], marked: list[Box]) -> tuple[int, int]:
    """(marked faces found, false detections): each detection matches at most one face."""
    left, hits = list(marked), 0
    for box in found:
        best = max(left, key=lambda m: iou(box, m), default=None)
        if best is not None and iou(box, best) >= 0.5:
            left.remove(best)
            hits += 1
    return hits, len(found) - hits


def mirrored(image: np.ndarray, boxes: list[Box]) -> tuple[np.ndarray, list[Box]]:
    columns = image.shape[1]
    return image[:, ::-1].copy(), [(columns - x - w, y, w, h) for x, y, w, h in boxes]


def scaled(image: np.ndarray, boxes: list[Box], factor: float) -> tuple[np.ndarray, list[Box]]:
    small = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return small, [tuple(round(v * factor) for v in box) for box in boxes]


def rotated(image: np.ndarray, boxes: list[Box], degrees: float) -> tuple[np.ndarray, list[Box]]:
    """Turned anticlockwise about the photo's centre (same size, edges repeated)."""
    rows, columns = image.shape[:2]
    turn = cv2.getRotationMatrix2D((columns / 2, rows / 2), degrees, 1.0)
    out = cv2.warpAffine(image, turn, (columns, rows), borderMode=cv2.BORDER_REPLICATE)
    c, s = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    moved = []
    for x, y, w, h in boxes:
        cx, cy = turn @ np.array([x + w / 2, y + h / 2, 1.0])
        half_w = math.hypot(w / 2 * c, h / 2 * s)  # the turned ellipse's upright box
        half_h = math.hypot(w / 2 * s, h / 2 * c)
        moved.append((round(cx - half_w), round(cy - half_h), round(2 * half_w), round(2 * half_h)))
    return out, moved


def covered(image: np.ndarray, box: Box, part: str) -> np.ndarray:
    """A flat skin-coloured "hand" over the face's mouth and chin, or over its left eye."""
    x, y, w, h = box
    out = image.copy()
    if part == "mouth":  # nose tip down past the chin, most of the face's width
        corners = (x + 0.05 * w, y + 0.6 * h, x + 0.95 * w, y + 1.1 * h)
    else:  # "eye": the left half of the face, from the brow to below the cheekbone
        corners = (x - 0.1 * w, y + 0.1 * h, x + 0.5 * w, y + 0.75 * h)
    x0, y0, x1, y1 = (round(v) for v in corners)
    cv2.rectangle(out, (x0, y0), (x1, y1), HAND, thickness=-1)
    return out


def face_set() -> list[tuple[str, np.ndarray, list[Box]]]:
    """(name, RGB photo, marked faces): the three photos and their transformed versions."""
    shots = []
    for name in ("astronaut", "grace_hopper", "camera"):
        image, boxes = photo(name), MARKED[name]
        shots.append((name, image, boxes))
        if name == "camera":
            continue  # already a turned face: its transforms add nothing to compare
        shots.append((f"{name} mirrored", *mirrored(image, boxes)))
        shots.append((f"{name} rotated 30", *rotated(image, boxes, 30)))
        shots.append((f"{name} rotated -30", *rotated(image, boxes, -30)))
        for part in ("mouth", "eye"):
            shots.append((f"{name} hand over {part}", covered(image, boxes[0], part), boxes))
        shots.append((f"{name} small", *scaled(image, boxes, SMALL_FACE / boxes[0][2])))
    return shots


def faceless_set() -> list[tuple[str, np.ndarray, list[Box]]]:
    """Photos without a human face (a cat among them), a blank image and noise."""
    import skimage.data

    names = ("chelsea", "coffee", "rocket", "hubble_deep_field")
    shots = [(name, getattr(skimage.data, name)(), []) for name in names]
    rng = np.random.default_rng(0)
    shots.append(("blank", np.full((480, 640, 3), 128, np.uint8), []))
    shots.append(("noise", rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), []))
    return shots


# --- the tests ----------------------------------------------------------------------------------

FRONTAL = ("astronaut", "grace_hopper")  # the Haar cascade looks for frontal faces only
CHANGED = ("astronaut rotated 30", "astronaut hand over eye", "grace_hopper hand over mouth")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: the nets are small, and the test machine's two cores are often shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shots() -> dict[str, tuple[np.ndarray, list[Box]]]:
    return {name: (image, boxes) for name, image, boxes in face_set() + faceless_set()}


@pytest.fixture(scope="module")
def found(shots):
    """found(detector, photo name): the boxes, each found once for the whole module."""
    memo = {}

    def find(name: str, photo_name: str) -> list[Box]:
        if (name, photo_name) not in memo:
            memo[name, photo_name] = get_detector(name)(shots[photo_name][0])
        return memo[name, photo_name]

    return find


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_each_detector_finds_the_marked_faces_of_the_photos_and_nothing_else(name, shots, found):
    photos = FRONTAL if name == "haar" else (*FRONTAL, "camera")
    for photo_name in photos:
        assert score(found(name, photo_name), shots[photo_name][1]) == (1, 0), (name, photo_name)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_no_detector_finds_a_face_in_a_blank_image_or_noise(name, found):
    assert found(name, "blank") == [] and found(name, "noise") == []
    assert get_detector(name)(np.zeros((8, 8), np.uint8)) == []  # smaller than any face


@pytest.mark.parametrize("photo_name", [*CHANGED, "camera"])
def test_mtcnn_finds_the_covered_and_turned_faces_that_haar_misses(photo_name, shots, found):
    marked = shots[photo_name][1]
    assert score(found("haar", photo_name), marked) == (0, 0)
    assert score(found("mtcnn", photo_name), marked) == (1, 0)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_gray_and_rgb_photos_both_work(name, shots, found):
    image, marked = shots["astronaut"]
    assert score(found(name, "astronaut"), marked) == (1, 0)  # RGB
    assert score(get_detector(name)(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)), marked) == (1, 0)
    view, marked = image[:, ::-1], mirrored(image, marked)[1]  # a view, not a copy: OpenCV
    assert score(get_detector(name)(view), marked) == (1, 0)  # wants its pixels in order


def test_boxes_are_clipped_to_the_image(shots):
    assert clip_boxes([(-5, -8, 20, 20), (90, 95, 20, 20), (200, 5, 9, 9)], (100, 120)) == [
        (0, 0, 15, 12),
        (90, 95, 20, 5),
    ]
    image, (face,) = shots["astronaut"]
    x, y, w, h = face
    cut = image[y + h // 5 :, x + w // 5 :]  # a fifth of the face cut away at the top and left
    boxes = {name: find(cut) for name, find in DETECTORS.items()}
    for bx, by, bw, bh in [box for found in boxes.values() for box in found]:
        assert bx >= 0 and by >= 0 and bx + bw <= cut.shape[1] and by + bh <= cut.shape[0]
    # MTCNN still finds the cut face; its box reached past the corner and was cut there
    assert [box[:2] for box in boxes["mtcnn"]] == [(0, 0)]


def test_min_size_and_large_photos(shots):
    image, (face,) = shots["astronaut"]
    assert mtcnn(image, min_size=2 * face[2]) == []  # faces narrower than min_size: not sought
    big = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)  # over MAX_SIDE
    assert score(mtcnn(big), [tuple(3 * v for v in face)]) == (1, 0)


def test_an_unknown_detector_is_one_line_naming_the_choices():
    with pytest.raises(FerError) as caught:
        get_detector("yolo")
    message = str(caught.value)
    assert "\n" not in message and "'yolo'" in message
    assert all(name in message for name in DETECTORS)
    assert get_detector("haar") is haar and get_detector("mtcnn") is mtcnn


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_bad_image_is_a_data_error(name):
    for bad in (np.zeros((50, 50), np.float32), np.zeros((50, 50, 4), np.uint8)):
        with pytest.raises(DataError, match="uint8"):
            get_detector(name)(bad)


def test_the_weights_ship_small_load_safely_and_name_their_licence():
    import torch

    path = detectors.MTCNN_FILE
    assert path.is_file() and path.stat().st_size < 5 * 2**20
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert sorted(state) == ["onet", "pnet", "rnet"]
    assert sum(v.numel() for net in state.values() for v in net.values()) == 495_850
    licence = (path.parent / "MTCNN-LICENCE.md").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Permission is hereby granted" in licence
    for holder in ("Kaipeng Zhang", "David Sandberg", "Timothy Esler"):
        assert holder in licence


def test_mtcnn_keeps_the_best_of_overlapping_boxes():
    boxes = np.array(
        [[0, 0, 10, 10, 0.9], [1, 1, 11, 11, 0.8], [2, 2, 6, 6, 0.95], [50, 50, 60, 60, 0.7]],
        dtype=np.float32,
    )
    union = detectors._nms(boxes, 0.5)
    assert union[:, 4].tolist() == pytest.approx([0.95, 0.9, 0.7])  # the small box: IoU 0.16
    smaller = detectors._nms(boxes, 0.5, by_smaller=True)
    assert smaller[:, 4].tolist() == pytest.approx([0.95, 0.7])  # inside the best one: gone
