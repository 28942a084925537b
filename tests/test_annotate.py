"""faces.annotate and draw_predictions: where the box, the strip and the label go, in pixels.

Each check reads the drawn picture back: the box's edges and thickness, the strip above the box
(or below it at the top edge), black letters inside the strip only, and lines that grow with
the photo.
"""

from __future__ import annotations

import numpy as np
import pytest

from fer_helpers.faces import BOX_COLOR, TEXT_COLOR, annotate, draw_predictions

AMBER = np.array(BOX_COLOR, dtype=np.uint8)
GREY = 90  # a background that is neither the box's colour nor the letters'


def canvas(height: int, width: int) -> np.ndarray:
    return np.full((height, width), GREY, dtype=np.uint8)


def is_amber(pixels: np.ndarray) -> np.ndarray:
    return (pixels == AMBER).all(axis=-1)


def is_background(pixels: np.ndarray) -> np.ndarray:
    return (pixels == GREY).all(axis=-1)


def is_dark(pixels: np.ndarray) -> np.ndarray:
    """Letter pixels: black, or nearly (the letters are anti-aliased), in red and green alike."""
    return (pixels[..., 0] < 60) & (pixels[..., 1] < 60)


def amber_rows(picture: np.ndarray, column: int) -> np.ndarray:
    return np.flatnonzero(is_amber(picture[:, column]))


def test_the_box_is_drawn_on_its_edges_with_lines_2_pixels_thick_on_a_small_photo():
    x, y, w, h = 100, 150, 80, 60
    picture = annotate(canvas(300, 400), [(x, y, w, h)], ["sad"], [0.5])
    # Lines 2 px thick (max(2, round(2 * 400 / 800))) centred on the box's edges.
    middle = y + h // 2
    row = is_amber(picture[middle])
    assert row[x - 1 : x + 1].all() and row[x + w - 1 : x + w + 1].all()
    assert not row[x - 3] and not row[x + 3] and not row[x + w + 3]
    assert is_background(picture[y + 5 : y + h - 5, x + 5 : x + w - 5]).all()  # inside: untouched
    assert is_background(picture[y + h + 5 :, :]).all()  # below the box: nothing


def strip_of(picture: np.ndarray, x: int) -> tuple[int, int]:
    """First and last row of the filled strip, read at the column just right of the box's edge."""
    rows = amber_rows(picture, x + 4)
    return int(rows.min()), int(rows.max())


def test_the_label_sits_on_a_strip_above_the_box_in_black_letters():
    x, y, w, h = 100, 150, 80, 60
    picture = annotate(canvas(300, 400), [(x, y, w, h)], ["surprise"], [0.91])
    top, bottom = strip_of(picture, x)
    assert top < y - 10 and bottom >= y - 1  # a strip of text height ending at the box
    strip = picture[top:y, x : x + w + 40]
    assert TEXT_COLOR == (0, 0, 0)  # is_dark looks for black letters
    assert is_dark(strip).sum() > 20  # the strokes of "surprise 91%"
    outside = np.ones(picture.shape[:2], bool)
    outside[top:y, x : x + w + 60] = False
    assert not is_dark(picture)[outside].any()
    # The strip is as wide as its text: a longer label gives a wider strip.
    short = annotate(canvas(300, 400), [(x, y, w, h)], ["sad"], [0.5])
    width_long = is_amber(picture[y - 4]).sum()
    width_short = is_amber(short[y - 4]).sum()
    assert width_long > width_short + 20


def test_a_box_at_the_top_edge_gets_its_strip_below_it():
    x, y, w, h = 100, 3, 80, 60
    picture = annotate(canvas(300, 400), [(x, y, w, h)], ["happy"], [0.87])
    top, bottom = strip_of(picture, x)
    assert top <= y + 1  # the box's own top line
    assert bottom > y + h + 10  # the strip hangs below the box
    assert is_amber(picture[y + h + 5, x + 4 : x + 30]).any()
    assert not is_amber(picture[y + h // 2, x + 4 : x + w - 4]).any()  # not over the face


def test_a_box_exactly_one_strip_below_the_top_keeps_its_strip_above():
    # The strip's height, read from a box lower down, is the threshold of "above".
    lower = annotate(canvas(300, 400), [(100, 150, 80, 60)], ["happy"], [0.87])
    top, _ = strip_of(lower, 100)
    strip_h = 150 - top
    picture = annotate(canvas(300, 400), [(100, strip_h, 80, 60)], ["happy"], [0.87])
    assert strip_of(picture, 100)[0] == 0  # fits exactly above: starts at the first row
    below = annotate(canvas(300, 400), [(100, strip_h - 1, 80, 60)], ["happy"], [0.87])
    assert strip_of(below, 100)[1] > strip_h - 1 + 60  # one pixel less: below the box


def test_lines_and_letters_grow_with_the_photo():
    small = annotate(canvas(300, 400), [(100, 150, 80, 60)], ["sad"], [0.5])
    big = annotate(canvas(1200, 1600), [(400, 600, 320, 240)], ["sad"], [0.5])
    # 1600 px: lines round(2 * 2) = 4 px thick; the strip about 2x as tall.
    assert is_amber(big[700, 398:402]).all() and not is_amber(big[700, 395]).any()
    small_top, _ = strip_of(small, 100)
    big_top, _ = strip_of(big, 400)
    assert (600 - big_top) > 1.6 * (150 - small_top)


def test_every_face_gets_its_own_box_and_label():
    boxes = [(20, 150, 60, 60), (250, 150, 60, 60)]
    picture = annotate(canvas(300, 400), boxes, ["sad", "happy"], [0.5, 0.6])
    for x, y, _, h in boxes:
        assert is_amber(picture[y + h // 2, x - 1 : x + 1]).all()
        assert strip_of(picture, x)[0] < y - 10


@pytest.mark.parametrize("channels", [None, 3])
def test_draw_predictions_draws_what_predict_found(channels):
    image = canvas(300, 400)
    if channels:
        image = np.stack([image] * channels, axis=-1)
    faces = [
        {"box": (20, 150, 60, 60), "emotion": "fear", "probability": 0.42},
        {"box": (250, 150, 60, 60), "emotion": "angry", "probability": 0.77},
    ]
    drawn = draw_predictions(image, faces)
    by_hand = annotate(image, [f["box"] for f in faces], ["fear", "angry"], [0.42, 0.77])
    np.testing.assert_array_equal(drawn, by_hand)
    other = annotate(image, [f["box"] for f in faces], ["fear", "angry"], [0.42, 0.78])
    assert not np.array_equal(drawn, other)  # the probability is in the label
    assert not np.array_equal(drawn, annotate(image, [], [], []))
