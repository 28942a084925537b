"""The checkers of notebooks 12 and 13 pass right answers and name the mistake in wrong ones.

The right answers are written here independently of fer_helpers (loops, plain
arithmetic, torch); each wrong answer is a mistake learners make.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_checker_contract

from fer_helpers.exercises import ExerciseError
from fer_helpers.exercises.faces import (
    check_box_iou,
    check_crop_box,
    check_crops_to_input,
    check_square_box,
)

# --- right answers ---------------------------------------------------------------------------


def crop_loop(gray, box):
    x, y, w, h = box
    return np.array([[gray[row, col] for col in range(x, x + w)] for row in range(y, y + h)])


def square_by_centre(box, margin):
    x, y, w, h = box
    side = round(max(w, h) * (1 + 2 * margin))
    centre_x, centre_y = x + w / 2, y + h / 2
    return (round(centre_x - side / 2), round(centre_y - side / 2), side, side)


def iou_by_pixels(a, b):
    """Paint both boxes on a canvas and count pixels: no formula shared with the package."""
    canvas = np.zeros((2, 200, 200), dtype=bool)
    for layer, (x, y, w, h) in zip(canvas, (a, b)):
        layer[y : y + h, x : x + w] = True
    return (canvas[0] & canvas[1]).sum() / (canvas[0] | canvas[1]).sum()


def input_torch(crops):
    x = torch.from_numpy(crops).float().unsqueeze(1).repeat(1, 3, 1, 1)
    return (x - 127.5) / 127.5


@pytest.mark.parametrize(
    ("checker", "right", "checks"),
    [
        (check_crop_box, crop_loop, 4),
        (check_square_box, square_by_centre, 4),
        (check_crops_to_input, input_torch, 3),
        (check_box_iou, iou_by_pixels, 8),
    ],
)
def test_checker_passes_a_right_answer_and_lets_a_stub_through(checker, right, checks, capsys):
    assert_checker_contract(checker, right, checks, capsys)


# --- crop_box --------------------------------------------------------------------------------

CROP_MISTAKES = {
    "x and y swapped": (
        lambda g, b: g[b[0] : b[0] + b[2], b[1] : b[1] + b[3]],
        "x and y are swapped",
    ),
    "columns first": (lambda g, b: g[b[0] : b[0] + b[3], b[1] : b[1] + b[2]], "rows come first"),
    "w and h swapped": (
        lambda g, b: g[b[1] : b[1] + b[2], b[0] : b[0] + b[3]],
        "w and h are swapped",
    ),
    "transposed": (lambda g, b: g[b[1] : b[1] + b[3], b[0] : b[0] + b[2]].T, "transposed"),
    "one too many": (
        lambda g, b: g[b[1] : b[1] + b[3] + 1, b[0] : b[0] + b[2] + 1],
        "one row and one column too many",
    ),
    "one too few": (
        lambda g, b: g[b[1] : b[1] + b[3] - 1, b[0] : b[0] + b[2] - 1],
        "one row and one column too few",
    ),
    "two corners": (lambda g, b: g[b[1] : b[3], b[0] : b[2]], "not two corners"),
    "shifted by one": (
        lambda g, b: g[b[1] + 1 : b[1] + b[3] + 1, b[0] : b[0] + b[2]],
        r"expected rows \d+ to \d+ .* starting at row",
    ),
}


# --- square_box ------------------------------------------------------------------------------


def square_with(side_of, corner):
    """A square box with side side_of(w, h, margin), placed by corner(x, y, w, h, side)."""

    def square(box, margin):
        x, y, w, h = box
        side = round(side_of(w, h, margin))
        cx, cy = corner(x, y, w, h, side)
        return (round(cx), round(cy), side, side)

    return square


def centred(x, y, w, h, side):
    return x + (w - side) / 2, y + (h - side) / 2


def as_floats(box, margin):
    return tuple(float(v) for v in square_by_centre(box, margin))


def two_corners(box, margin):
    x, y, side, _ = square_by_centre(box, margin)
    return (x, y, x + side, y + side)


SQUARE_MISTAKES = {
    "margin on one side": (
        square_with(lambda w, h, m: max(w, h) * (1 + m), centred),
        "the margin goes on every side",
    ),
    "shorter side": (
        square_with(lambda w, h, m: min(w, h) * (1 + 2 * m), centred),
        "use the longer side",
    ),
    "corner kept": (
        square_with(lambda w, h, m: max(w, h) * (1 + 2 * m), lambda x, y, w, h, s: (x, y)),
        "keep the box's centre",
    ),
    "corner moved the wrong way": (
        square_with(
            lambda w, h, m: max(w, h) * (1 + 2 * m),
            lambda x, y, w, h, s: (x - (w - s) / 2, y - (h - s) / 2),
        ),
        "the corner moves the wrong way",
    ),
    "two corners": (two_corners, "not two corners"),
    "floats": (as_floats, "whole pixels"),
    "three numbers": (lambda box, margin: square_by_centre(box, margin)[:3], "four numbers"),
    "margin ignored": (
        square_with(lambda w, h, m: max(w, h), centred),
        r"square_box\(\(100, 50, 80, 80\), margin=0.25\): expected",
    ),
}


def test_square_box_checker_accepts_other_rounding():
    def truncating(box, margin):
        x, y, w, h = box
        side = int(max(w, h) * (1 + 2 * margin))
        return (int(x + (w - side) / 2), int(y + (h - side) / 2), side, side)

    check_square_box(truncating)


# --- crops_to_input --------------------------------------------------------------------------


INPUT_MISTAKES = {
    "numpy": (lambda c: c / 127.5 - 1, "return a torch tensor"),
    "no channel": (lambda c: torch.from_numpy(c / 127.5 - 1).float(), "add a channel dimension"),
    "one channel": (lambda c: input_torch(c)[:, :1], "trained on 3 channels"),
    "channels last": (lambda c: input_torch(c).permute(0, 2, 3, 1), "channels first"),
    "0 to 1": (
        lambda c: torch.from_numpy(c).float().unsqueeze(1).repeat(1, 3, 1, 1) / 255,
        "/ 255",
    ),
    "not scaled": (
        lambda c: torch.from_numpy(c).float().unsqueeze(1).repeat(1, 3, 1, 1),
        "normalise the pixels",
    ),
    "sign flipped": (lambda c: -input_torch(c), "sign is flipped"),
    "by 128": (
        lambda c: (torch.from_numpy(c).float().unsqueeze(1).repeat(1, 3, 1, 1) - 128) / 128,
        "almost",
    ),
    "float64": (lambda c: input_torch(c).double(), "float32"),
}


# --- box_iou ---------------------------------------------------------------------------------


def iou_from(overlap, union):
    """A box_iou built from a rule for the overlap along one axis and a rule for the union."""

    def box_iou(a, b):
        across = overlap(a[0], a[2], b[0], b[2])
        down = overlap(a[1], a[3], b[1], b[3])
        shared = across * down
        return shared / union(a[2] * a[3], b[2] * b[3], shared)

    return box_iou


def clamped(x1, w1, x2, w2):
    return max(0, min(x1 + w1, x2 + w2) - max(x1, x2))


def unclamped(x1, w1, x2, w2):
    return min(x1 + w1, x2 + w2) - max(x1, x2)


def as_corners(a, b):
    """Reads (x, y, w, h) as (x1, y1, x2, y2), as some detectors write boxes."""
    shared = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - shared
    return shared / union


IOU_MISTAKES = {
    "not clamped": (iou_from(unclamped, lambda p, q, s: p + q - s), "clamp each at 0"),
    "shared counted twice": (
        iou_from(clamped, lambda p, q, s: p + q),
        "counts the shared area once",
    ),
    "over the smaller box": (iou_from(clamped, lambda p, q, s: min(p, q)), "not the smaller box"),
    "over the first box": (iou_from(clamped, lambda p, q, s: p), "not the first box's area"),
    "shared area": (iou_from(clamped, lambda p, q, s: 1), "not the shared area"),
    "two corners": (as_corners, "its right edge is x \\+ w"),
    "a pair": (lambda a, b: (iou_by_pixels(a, b), 0.0), "return one number"),
    "one pixel more": (
        lambda a, b: iou_by_pixels((a[0], a[1], a[2] + 1, a[3]), b),
        r"box_iou\(\(10, 20, 40, 30\), \(10, 20, 40, 30\)\): expected 1.0",
    ),
}


def test_box_iou_cases_cover_every_way_two_boxes_meet():
    from fer_helpers.exercises.faces import IOU_CASES

    scores = [iou_by_pixels(a, b) for a, b in IOU_CASES]
    assert 1.0 in scores and scores.count(0.0) >= 3  # the same box; apart, or only touching
    assert any(0 < s < 1 for s in scores)
    assert any(a[2] * a[3] != b[2] * b[3] for a, b in IOU_CASES)  # unequal boxes: order matters


# --- every checker names every mistake ---------------------------------------------------------

MISTAKES = {
    "crop_box": (check_crop_box, CROP_MISTAKES),
    "square_box": (check_square_box, SQUARE_MISTAKES),
    "crops_to_input": (check_crops_to_input, INPUT_MISTAKES),
    "box_iou": (check_box_iou, IOU_MISTAKES),
}


@pytest.mark.parametrize(
    ("exercise", "mistake"),
    [(exercise, mistake) for exercise, (_, wrong) in MISTAKES.items() for mistake in sorted(wrong)],
)
def test_each_checker_names_the_mistake(exercise, mistake):
    checker, mistakes = MISTAKES[exercise]
    wrong, message = mistakes[mistake]
    with pytest.raises(ExerciseError, match=message):
        checker(wrong)
