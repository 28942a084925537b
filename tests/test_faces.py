"""Faces in photos: reading photos, finding faces, cropping them like FER2013, classifying.

Face detection is checked on a real photo (scikit-image's astronaut, which ships
with the package) against a second, independent detector: scikit-image's own LBP
cascade. References elsewhere are numpy slicing and padding, block means, and
the model's softmax computed by hand.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from fer_helpers import faces
from fer_helpers.errors import DataError
from fer_helpers.faces import (
    BOX_COLOR,
    annotate,
    classify_faces,
    crop_face,
    detect_faces,
    face_cascade,
    format_predictions,
    load_photo,
    measure_framing,
    predict_image,
    predict_photo,
    sample_photo_path,
    square_box,
    to_gray,
    webcam_frames,
)
from fer_helpers.labels import COURSE_CLASSES
from fer_helpers.models import SI100FaceNet


@pytest.fixture(scope="module")
def astronaut_path() -> Path:
    try:
        return sample_photo_path("astronaut")
    except DataError as err:  # a scikit-image build without its bundled sample photos
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def astronaut_gray(astronaut_path: Path) -> np.ndarray:
    return to_gray(load_photo(astronaut_path))


@pytest.fixture(scope="module")
def model() -> SI100FaceNet:
    torch.manual_seed(0)
    return SI100FaceNet(num_classes=3).eval()


def iou(a, b) -> float:
    """Intersection over union of two boxes (x, y, w, h)."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


# --- reading photos ----------------------------------------------------------------------------


def test_load_photo_reads_colour_and_gray_files_as_rgb(tmp_path):
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "colour.png")  # PIL writes, OpenCV reads
    Image.fromarray(gray).save(tmp_path / "gray.png")

    np.testing.assert_array_equal(load_photo(tmp_path / "colour.png"), colour)
    np.testing.assert_array_equal(load_photo(tmp_path / "gray.png"), np.stack([gray] * 3, -1))


def test_load_photo_turns_a_phone_photo_upright(tmp_path):
    """A JPEG whose EXIF tag says "rotate 90 degrees" loads as PIL's exif_transpose shows it."""
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = 255  # left half white, as the camera stored it
    photo = Image.fromarray(stored)
    exif = photo.getexif()
    exif[0x0112] = 6  # Orientation: the camera was turned by 90 degrees
    photo.save(tmp_path / "phone.jpg", exif=exif.tobytes())

    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "phone.jpg")))
    loaded = load_photo(tmp_path / "phone.jpg")
    assert loaded.shape == upright.shape == (40, 20, 3)
    assert np.abs(loaded.astype(int) - upright.astype(int)).mean() < 2  # two JPEG decoders


@pytest.mark.parametrize("content", [b"", b"name,emotion\nme,happy\n", b"\x89PNG broken"])
def test_load_photo_names_a_file_that_is_not_an_image(tmp_path, content):
    path = tmp_path / "notes.jpg"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"notes\.jpg is not an image"):
        load_photo(path)


def test_load_photo_names_a_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"holiday\.jpg does not exist"):
        load_photo(tmp_path / "holiday.jpg")
    with pytest.raises(DataError, match="is not a file"):
        load_photo(tmp_path)  # a folder


def test_sample_photos_ship_with_scikit_image(astronaut_path):
    assert load_photo(astronaut_path).shape == (512, 512, 3)
    with pytest.raises(DataError, match="no bundled selfie.png"):
        sample_photo_path("selfie")


def test_to_gray_weights_the_channels_as_luma():
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    image[0, 0] = (255, 0, 0)
    image[0, 1] = (0, 255, 0)
    image[1, 0] = (0, 0, 255)
    image[1, 1] = (100, 100, 100)
    expected = np.array([[0.299 * 255, 0.587 * 255], [0.114 * 255, 100]])
    np.testing.assert_allclose(to_gray(image), expected, atol=1)
    np.testing.assert_array_equal(to_gray(image[..., 0]), image[..., 0])  # gray stays gray
    with pytest.raises(DataError, match="shape"):
        to_gray(np.zeros((2, 2, 4), dtype=np.uint8))


# --- finding faces -----------------------------------------------------------------------------


def test_detect_finds_the_astronauts_face_where_scikit_images_detector_does(astronaut_gray):
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    boxes = detect_faces(astronaut_gray)
    found = Cascade(lbp_frontal_face_cascade_filename()).detect_multi_scale(
        img=astronaut_gray, scale_factor=1.2, step_ratio=1, min_size=(60, 60), max_size=(200, 200)
    )
    reference = [(d["c"], d["r"], d["width"], d["height"]) for d in found]
    assert len(boxes) == len(reference) == 1
    assert iou(boxes[0], reference[0]) > 0.6
    x, y, w, h = boxes[0]
    assert all(isinstance(v, int) for v in boxes[0])
    assert 60 <= w <= 160 and w == h  # a head in a 512x512 portrait; the cascade's boxes are square
    assert y + h < 512 // 2  # the face is in the upper half of the portrait


def test_detect_finds_no_face_in_a_blank_or_noisy_image():
    assert detect_faces(np.full((240, 320), 128, dtype=np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8)
    assert detect_faces(noise) == []


def test_detect_on_a_large_photo_gives_boxes_in_the_photos_pixels(astronaut_gray):
    small_box = detect_faces(astronaut_gray)[0]
    large = cv2.resize(astronaut_gray, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    assert max(large.shape) > faces.MAX_SIDE  # so it is searched at a smaller size
    scaled = tuple(3 * v for v in small_box)
    # Enlarging adds detail at small scales, where the cascade also finds false faces.
    assert max(iou(box, scaled) for box in detect_faces(large)) > 0.7


def test_detect_wants_a_gray_uint8_image(astronaut_gray):
    with pytest.raises(DataError, match="gray uint8"):
        detect_faces(np.stack([astronaut_gray] * 3, axis=-1))
    with pytest.raises(DataError, match="gray uint8"):
        detect_faces(astronaut_gray.astype(np.float32))


def test_the_cascade_is_loaded_once_and_a_missing_one_is_named(tmp_path, monkeypatch):
    assert face_cascade() is face_cascade()
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path))
    face_cascade.cache_clear()
    try:
        with pytest.raises(DataError, match="haarcascade_frontalface_default.xml is missing"):
            face_cascade()
    finally:
        face_cascade.cache_clear()  # the next caller loads the real one again


# --- cropping like FER2013 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "margin", "expected"),
    [
        ((100, 50, 80, 80), 0.0, (100, 50, 80, 80)),
        ((100, 50, 80, 80), 0.25, (80, 30, 120, 120)),
        ((10, 20, 60, 100), 0.0, (-10, 20, 100, 100)),
        ((10, 20, 60, 100), 0.1, (-20, 10, 120, 120)),
    ],
)
def test_square_box_keeps_the_centre_and_grows_every_side(box, margin, expected):
    assert square_box(box, margin) == expected
    x, y, w, h = box
    sx, sy, side, _ = square_box(box, margin)
    assert abs((sx + side / 2) - (x + w / 2)) <= 0.5 and abs((sy + side / 2) - (y + h / 2)) <= 0.5


def test_crop_of_a_48_pixel_box_is_exactly_its_pixels():
    gray = np.random.default_rng(1).integers(0, 256, (100, 120), dtype=np.uint8)
    crop = crop_face(gray, (30, 20, 48, 48), margin=0)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, gray[20:68, 30:78])


def test_crop_of_a_96_pixel_box_averages_two_by_two_blocks():
    gray = np.random.default_rng(2).integers(0, 256, (200, 200), dtype=np.uint8)
    crop = crop_face(gray, (50, 40, 96, 96), margin=0)
    blocks = gray[40:136, 50:146].reshape(48, 2, 48, 2).astype(float).mean(axis=(1, 3))
    assert np.abs(crop.astype(float) - blocks).max() <= 1  # rounding only


def test_crop_past_the_edge_repeats_the_edge_pixels():
    gray = np.random.default_rng(3).integers(0, 256, (60, 70), dtype=np.uint8)
    crop = crop_face(gray, (-10, -5, 48, 48), margin=0)
    padded = np.pad(gray, 10, mode="edge")  # pixel (r, c) of gray sits at (r + 10, c + 10)
    np.testing.assert_array_equal(crop, padded[5:53, 0:48])


@pytest.mark.parametrize(
    "box",
    [
        (-10, 5, 48, 48),  # past the left edge
        (40, 5, 48, 48),  # past the right edge (70 columns)
        (10, -7, 48, 48),  # past the top
        (10, 30, 48, 48),  # past the bottom (60 rows)
        (35, 25, 48, 48),  # past the bottom-right corner
        (-3, 20, 48, 48),  # past the left edge by less than the right pad would be
        (-20, -20, 110, 100),  # larger than the image on every side (a 110-pixel square)
        (0, 0, 70, 60),  # the whole image: a 70-pixel square, past the bottom
    ],
)
def test_crop_past_any_edge_repeats_that_edges_pixels(box):
    # Reference: numpy's edge padding, wide enough for any of these boxes.
    gray = np.random.default_rng(4).integers(0, 256, (60, 70), dtype=np.uint8)
    x, y, w, h = box
    side = max(w, h)
    x, y = x + (w - side) // 2, y + (h - side) // 2  # the square around the box's centre
    padded = np.pad(gray, 64, mode="edge")
    square = padded[y + 64 : y + 64 + side, x + 64 : x + 64 + side]
    expected = cv2.resize(
        square, (48, 48), interpolation=cv2.INTER_AREA if side > 48 else cv2.INTER_LINEAR
    )
    np.testing.assert_array_equal(crop_face(gray, box, margin=0), expected)


def test_crop_with_a_margin_takes_a_larger_square(astronaut_gray):
    box = detect_faces(astronaut_gray)[0]
    wider = crop_face(astronaut_gray, box, margin=0.25)
    x, y, side, _ = square_box(box, 0.25)
    reference = cv2.resize(
        astronaut_gray[y : y + side, x : x + side], (48, 48), interpolation=cv2.INTER_AREA
    )
    np.testing.assert_array_equal(wider, reference)
    assert not np.array_equal(wider, crop_face(astronaut_gray, box))


def test_the_cascade_frames_its_own_crops_as_the_whole_image(astronaut_gray):
    """measure_framing on a face cropped with margin 0 finds a box about the crop's size."""
    crop = crop_face(astronaut_gray, detect_faces(astronaut_gray)[0])
    framing = measure_framing(crop[None])
    assert framing.shape == (1, 3)
    side, dx, dy = framing[0]
    assert 0.8 < side < 1.25 and abs(dx) < 0.1 and abs(dy) < 0.1
    assert measure_framing(np.full((2, 48, 48), 90, dtype=np.uint8)).shape == (0, 3)


@pytest.mark.parametrize(("shift_across", "shift_down"), [(0.25, 0.0), (-0.2, 0.1)])
def test_measure_framing_reads_a_faces_size_and_offset_in_image_sides(
    astronaut_gray, shift_across, shift_down
):
    """A window twice the face's size, moved off the face's centre, is measured as such:
    the face is half the image wide and sits off centre by the opposite of the move."""
    x, y, w, h = detect_faces(astronaut_gray)[0]
    window = 2 * w
    left = round(x + w / 2 + shift_across * window - window / 2)
    top = round(y + h / 2 + shift_down * window - window / 2)
    crop = cv2.resize(
        astronaut_gray[top : top + window, left : left + window], (48, 48), cv2.INTER_AREA
    )
    ((side, across, down),) = measure_framing(crop[None])
    assert side == pytest.approx(0.5, abs=0.03)
    assert across == pytest.approx(-shift_across, abs=0.02)
    assert down == pytest.approx(-shift_down, abs=0.02)
    assert measure_framing(np.stack([crop, crop], 0)).shape == (2, 3)  # one row per face


# --- classifying -------------------------------------------------------------------------------


def test_classify_gives_the_softmax_of_the_normalised_crops(model):
    crops = np.random.default_rng(4).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    probs = classify_faces(model, crops)

    x = torch.tensor(crops / 127.5 - 1, dtype=torch.float32)[:, None].repeat(1, 3, 1, 1)
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1).numpy()
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_classify_feeds_one_channel_to_a_one_channel_model():
    torch.manual_seed(0)
    gray_model = SI100FaceNet(num_classes=7, in_channels=1).eval()
    crops = np.random.default_rng(5).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    probs = classify_faces(gray_model, crops, channels=1)
    x = torch.tensor(crops / 127.5 - 1, dtype=torch.float32)[:, None]
    with torch.no_grad():
        np.testing.assert_allclose(probs, torch.softmax(gray_model(x), 1).numpy(), atol=1e-5)


def test_classify_wants_uint8_crops(model):
    with pytest.raises(DataError, match="uint8"):
        classify_faces(model, np.zeros((1, 48, 48), dtype=np.float32))


# --- the whole pipeline ------------------------------------------------------------------------


def test_predict_photo_on_the_astronaut(astronaut_path, astronaut_gray, model):
    (face,) = predict_photo(astronaut_path, model, COURSE_CLASSES)
    box = detect_faces(astronaut_gray)[0]
    expected = classify_faces(model, crop_face(astronaut_gray, box)[None])[0]

    assert face["box"] == box
    assert list(face["probabilities"]) == list(COURSE_CLASSES)
    np.testing.assert_allclose(list(face["probabilities"].values()), expected, atol=1e-6)
    assert face["emotion"] == COURSE_CLASSES[int(expected.argmax())]
    assert face["probability"] == pytest.approx(expected.max())
    (line,) = format_predictions("astronaut.png", [face])
    x, y, w, h = box
    assert line == (
        f"astronaut.png: face 1 at x={x} y={y} w={w} h={h}: "
        f"{face['emotion']} {100 * face['probability']:.1f}%"
    )


def test_predict_photo_without_a_face_returns_nothing(tmp_path, model):
    path = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 200, dtype=np.uint8)).save(path)
    assert predict_photo(path, model, COURSE_CLASSES) == []
    assert format_predictions(path, []) == [f"no face found in {path}"]


def test_predict_photo_names_a_missing_file_and_one_that_is_no_image(tmp_path, model):
    with pytest.raises(DataError, match="missing.png"):
        predict_photo(tmp_path / "missing.png", model, COURSE_CLASSES)
    (tmp_path / "readme.png").write_text("not a picture")
    with pytest.raises(DataError, match="readme.png"):
        predict_photo(tmp_path / "readme.png", model, COURSE_CLASSES)


def test_predict_refuses_class_names_that_do_not_fit_the_model(astronaut_gray, model):
    with pytest.raises(DataError, match="3 scores but has 7 class names"):
        predict_image(astronaut_gray, model, ["a", "b", "c", "d", "e", "f", "g"])


def test_annotate_draws_on_a_copy(astronaut_gray):
    box = (100, 120, 80, 80)
    picture = annotate(astronaut_gray, [box], ["happy"], [0.87])
    assert picture.shape == (*astronaut_gray.shape, 3) and picture.dtype == np.uint8
    x, y, w, h = box
    assert tuple(picture[y + h // 2, x]) == BOX_COLOR  # the box's left edge
    assert tuple(picture[y + h // 2, x + w // 2]) == (astronaut_gray[y + h // 2, x + w // 2],) * 3
    assert (picture[y - 5, x : x + w] == BOX_COLOR).all(axis=1).any()  # the label's strip
    rgb = np.stack([astronaut_gray] * 3, axis=-1)
    before = rgb.copy()
    annotate(rgb, [box], ["sad"], [0.5])
    np.testing.assert_array_equal(rgb, before)


# --- the webcam (never opened in tests) --------------------------------------------------------


class FakeCamera:
    """Stands in for cv2.VideoCapture: open or not, with one blue BGR frame."""

    def __init__(self, opened: bool) -> None:
        self.opened, self.released = opened, False

    def isOpened(self) -> bool:  # noqa: N802 (OpenCV's name)
        return self.opened

    def read(self) -> tuple[bool, np.ndarray]:
        frame = np.zeros((4, 6, 3), dtype=np.uint8)
        frame[..., 0] = 255  # blue, in OpenCV's BGR order
        return True, frame

    def release(self) -> None:
        self.released = True


@pytest.mark.parametrize("opened", [True, False])
def test_webcam_frames_are_rgb_and_the_camera_is_released(monkeypatch, opened):
    camera = FakeCamera(opened)
    monkeypatch.setattr(cv2, "VideoCapture", lambda index: camera)
    if opened:
        frames = list(webcam_frames(max_frames=2))
        assert len(frames) == 2
        for frame in frames:  # blue in OpenCV's BGR is the last channel in RGB
            assert frame.shape == (4, 6, 3) and (frame[..., 2] == 255).all()
            assert frame[..., 0].max() == 0
    else:
        with pytest.raises(DataError, match="no webcam at index 0"):
            list(webcam_frames())
    assert camera.released


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height pixels (its pixel data is not that big)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def test_a_huge_photo_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "panorama.png"
    path.write_bytes(png_claiming(9000, 6000))

    def no_decoding(*args):
        raise AssertionError("decoded a 54-megapixel image instead of refusing it")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    with pytest.raises(DataError) as raised:
        load_photo(path)
    message = str(raised.value)
    assert str(path) in message and "9000x6000 pixels (54 megapixels)" in message
    assert "expected at most 50 megapixels" in message and "\n" not in message


def test_a_1x1_photo_is_too_small_to_hold_a_face(tmp_path):
    from PIL import Image

    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(path)
    with pytest.raises(DataError, match=r"dot\.png is 1x1 pixels: too small to hold a face"):
        load_photo(path)


def test_predict_image_passes_min_size_to_the_detector_it_is_given(astronaut_path, model):
    photo = load_photo(astronaut_path)
    names = list(COURSE_CLASSES)
    assert len(predict_image(photo, model, names)) == 1  # her face is about 95 pixels wide
    assert predict_image(photo, model, names, min_size=200) == []  # the Haar cascade's minimum
    seen = []

    def detector(image, min_size):
        seen.append((image.shape, min_size))
        return [(177, 66, 95, 95)]

    (face,) = predict_image(photo, model, names, min_size=64, detector=detector)
    assert seen == [(photo.shape, 64)]  # the colour photo, and the size asked for
    assert face["box"] == (177, 66, 95, 95)


# --- how detect_faces searches a large photo: a recording stand-in for the cascade ---------


class RecordingCascade:
    """Stands in for OpenCV's cascade: records what it was asked, returns fixed boxes."""

    def __init__(self, boxes: object) -> None:
        self.boxes, self.calls = boxes, []

    def detectMultiScale(self, image, scaleFactor, minNeighbors, minSize):  # noqa: N802, N803
        self.calls.append((image, scaleFactor, minNeighbors, minSize))
        return self.boxes


def test_a_photo_larger_than_max_side_is_searched_shrunk_and_its_boxes_scaled_back(monkeypatch):
    import fer_helpers.faces as faces

    cascade = RecordingCascade(np.array([[10, 20, 30, 40]]))
    monkeypatch.setattr(faces, "face_cascade", lambda: cascade)
    gray = np.random.default_rng(5).integers(0, 256, (2 * 900, 2 * 1200), dtype=np.uint8)
    boxes = detect_faces(gray, min_size=40, scale_factor=1.2, min_neighbors=3)
    ((image, scale, neighbours, min_size),) = cascade.calls
    assert image.shape == (900, 1200) and max(image.shape) == faces.MAX_SIDE
    # at exactly half the size, INTER_AREA is the mean of each 2x2 block
    blocks = gray.reshape(900, 2, 1200, 2).astype(float).mean(axis=(1, 3))
    assert np.abs(image.astype(float) - blocks).max() <= 1
    assert (scale, neighbours, min_size) == (1.2, 3, (20, 20))
    assert boxes == [(20, 40, 60, 80)]  # the box in the photo's own pixels


def test_a_photo_within_max_side_is_searched_as_it_is_with_the_defaults(monkeypatch):
    import fer_helpers.faces as faces

    cascade = RecordingCascade(np.array([[50, 5, 30, 30], [10, 7, 31, 31]]))
    monkeypatch.setattr(faces, "face_cascade", lambda: cascade)
    gray = np.random.default_rng(6).integers(0, 256, (600, 1200), dtype=np.uint8)
    boxes = detect_faces(gray)
    ((image, scale, neighbours, min_size),) = cascade.calls
    np.testing.assert_array_equal(image, gray)
    assert (scale, neighbours, min_size) == (1.1, 5, (faces.MIN_FACE, faces.MIN_FACE))
    assert boxes == [(10, 7, 31, 31), (50, 5, 30, 30)]  # left to right
    cascade.boxes = ()  # what OpenCV returns when it finds nothing
    assert detect_faces(gray) == []


@pytest.mark.parametrize("shape", [(60, 100), (100, 60)])
def test_fit_face_crops_the_centred_square_when_no_face_is_found(shape):
    gray = np.zeros(shape, np.uint8)
    rows, columns = shape
    side = min(shape)
    top, left = (rows - side) // 2, (columns - side) // 2  # 0 and 20, or 20 and 0
    gray[top : top + side, left : left + side] = 200  # the centred square, bright
    face, how = faces.fit_face(gray)
    assert how == "centre" and face.shape == (48, 48)
    assert (face == 200).all()  # nothing of the dark sides


def test_fit_face_keeps_a_48x48_image_and_crops_the_largest_face(monkeypatch):
    small = np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)
    kept, how = faces.fit_face(small)
    assert how == "as-is" and kept is small
    gray = np.random.default_rng(1).integers(0, 256, (90, 120), dtype=np.uint8)
    # the wide box has the larger perimeter and comes last left to right, the tall one the
    # larger height; the square one has the largest area
    boxes = [(70, 0, 60, 10), (10, 10, 5, 40), (40, 20, 30, 30), (5, 5, 20, 20)]
    monkeypatch.setattr(faces, "detect_faces", lambda image: boxes)
    face, how = faces.fit_face(gray)
    assert how == "face"
    np.testing.assert_array_equal(face, crop_face(gray, (40, 20, 30, 30)))


def test_webcam_frames_open_the_camera_asked_for_and_say_when_it_stops(monkeypatch):
    class FailingCamera(FakeCamera):
        def read(self):
            return False, None

    opened_at = []

    def open_camera(index):
        opened_at.append(index)
        return FailingCamera(True)

    monkeypatch.setattr(cv2, "VideoCapture", open_camera)
    with pytest.raises(DataError) as raised:
        list(webcam_frames(camera=2))
    assert str(raised.value) == "the webcam at index 2 gave no picture"
    assert opened_at == [2]


def test_a_photo_three_times_max_side_is_searched_at_its_3x3_block_means(monkeypatch):
    import fer_helpers.faces as faces

    cascade = RecordingCascade(np.array([[10, 20, 30, 40]]))
    monkeypatch.setattr(faces, "face_cascade", lambda: cascade)
    big = np.random.default_rng(7).integers(0, 256, (3 * 900, 3 * 1200), dtype=np.uint8)
    boxes = detect_faces(big, min_size=1)
    ((image, _, _, min_size),) = cascade.calls
    assert image.shape == (900, 1200)
    blocks = big.reshape(900, 3, 1200, 3).astype(float).mean(axis=(1, 3))
    # INTER_AREA: the 3x3 block means (bilinear would read each block's centre pixel)
    assert np.abs(image.astype(float) - blocks).max() <= 1
    assert min_size == (1, 1)  # 1 pixel at a third of the size is still at least 1
    assert boxes == [(30, 60, 90, 120)]


def test_crop_face_enlarges_bilinearly_and_shrinks_by_area():
    rng = np.random.default_rng(8)
    gray = rng.integers(0, 256, (100, 100), dtype=np.uint8)
    small = crop_face(gray, (10, 20, 24, 24), margin=0.0)  # 24 -> 48: enlarged
    region = gray[20:44, 10:34]
    np.testing.assert_array_equal(
        small, cv2.resize(region, (48, 48), interpolation=cv2.INTER_LINEAR)
    )
    assert not np.array_equal(small, cv2.resize(region, (48, 48), interpolation=cv2.INTER_AREA))
    large = crop_face(gray, (0, 0, 96, 96), margin=0.0)  # 96 -> 48: the 2x2 means
    means = gray[:96, :96].reshape(48, 2, 48, 2).astype(float).mean(axis=(1, 3))
    assert np.abs(large.astype(float) - means).max() <= 1


def test_predict_image_crops_with_the_margin_and_channels_it_is_given(monkeypatch):
    import fer_helpers.faces as faces

    seen = []

    def recording(model, crops, channels=None):
        seen.append((crops, channels))
        return np.full((len(crops), 3), 1 / 3)

    monkeypatch.setattr(faces, "classify_faces", recording)
    gray = np.random.default_rng(9).integers(0, 256, (120, 160), dtype=np.uint8)
    box = (50, 30, 40, 40)
    found = predict_image(
        gray, None, COURSE_CLASSES, margin=0.25, channels=1, detector=lambda image, min_size: [box]
    )
    ((crops, channels),) = seen
    np.testing.assert_array_equal(crops[0], crop_face(gray, box, 0.25))
    assert not np.array_equal(crops[0], crop_face(gray, box))  # the margin made a difference
    assert channels == 1 and found[0]["box"] == box


def test_predict_photo_passes_every_setting_on(monkeypatch, tmp_path):
    import fer_helpers.faces as faces

    Image.fromarray(np.full((60, 80), 128, np.uint8)).save(tmp_path / "photo.png")
    calls = []
    monkeypatch.setattr(faces, "predict_image", lambda *args: calls.append(args) or [])
    detector = object()
    assert predict_photo(tmp_path / "photo.png", "model", ["a"], 40, 0.1, 1, detector) == []
    ((image, *settings),) = calls
    assert image.shape == (60, 80, 3)  # load_photo gives RGB
    assert settings == ["model", ["a"], 40, 0.1, 1, detector]
