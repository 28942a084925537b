"""Checkers for notebooks 12 and 13: cut a box out of a photo, square it, feed it to the
model (12); how much two boxes overlap, which follows a face from frame to frame (13).

Each checker calls the learner's function on a few cases, recognises the usual
mistakes (x and y swapped, one pixel too many, a margin on one side only,
inputs scaled to [0, 1] instead of [-1, 1], an overlap not clamped at zero)
and says in one sentence what to change.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..data import to_model_input
from ..faces import square_box
from ..video import iou
from . import ExerciseError, call, checker, expect_close, passed

# A photo of 60 rows and 80 columns in which every pixel has its own value, so a
# crop shows exactly which rows and columns it took.
PHOTO = np.arange(60 * 80, dtype=np.int64).reshape(60, 80)
CROP_BOXES = [(10, 5, 30, 20), (50, 30, 25, 25), (0, 0, 80, 60), (7, 41, 12, 9)]


@checker
def check_crop_box(function: Callable) -> None:
    """crop_box(gray, box) -> the box's pixels, gray[y : y + h, x : x + w]."""
    for box in CROP_BOXES:
        got = np.asarray(call(function, PHOTO.copy(), box))
        x, y, w, h = box
        expected = PHOTO[y : y + h, x : x + w]
        if got.shape == expected.shape and np.array_equal(got, expected):
            continue
        _diagnose_crop(box, got)
        raise ExerciseError(
            f"box {box} (x, y, w, h): expected rows {y} to {y + h - 1} and columns {x} to "
            f"{x + w - 1}, shape {expected.shape}; got shape {got.shape}{_first_pixel(got)}"
        )
    passed("crop_box", len(CROP_BOXES))


def _first_pixel(got: np.ndarray) -> str:
    """Where the learner's crop starts in PHOTO (each pixel's value is row * 80 + column)."""
    if got.size == 0 or not np.issubdtype(got.dtype, np.integer):
        return ""
    row, column = divmod(int(got.flat[0]), PHOTO.shape[1])
    return f", starting at row {row}, column {column}"


def _diagnose_crop(box: tuple[int, int, int, int], got: np.ndarray) -> None:
    x, y, w, h = box
    what = f"box {box} (x, y, w, h)"
    mistakes = [
        (
            PHOTO[x : x + w, y : y + h],
            "x and y are swapped: numpy indexes [row, column], and rows go down (y), "
            "so write gray[y : y + h, x : x + w]",
        ),
        (
            PHOTO[x : x + h, y : y + w],
            "rows come first: gray[y : y + h, x : x + w] (y and h pick the rows, x and w the "
            "columns)",
        ),
        (
            PHOTO[y : y + w, x : x + h],
            "w and h are swapped: w is the width (columns, along x), h the height (rows, along y)",
        ),
        (PHOTO[y : y + h, x : x + w].T, "your crop is transposed: do not swap its axes"),
        (
            PHOTO[y : y + h + 1, x : x + w + 1],
            "one row and one column too many: a slice a:b stops before b, so y : y + h "
            "already holds h rows",
        ),
        (
            PHOTO[y : y + h - 1, x : x + w - 1],
            "one row and one column too few: the end of a slice is not included, so do "
            "not subtract 1 (y : y + h holds h rows)",
        ),
        (
            PHOTO[y:h, x:w],
            "the box is a corner plus a width and a height, not two corners: the slice "
            "ends at y + h and x + w",
        ),
        (
            PHOTO[max(0, y - h // 2) : y + h // 2, max(0, x - w // 2) : x + w // 2],
            "(x, y) is the box's top-left corner, not its centre",
        ),
    ]
    for wrong, hint in mistakes:
        if got.shape == wrong.shape and np.array_equal(got, wrong):
            raise ExerciseError(f"{what}: {hint}")


# (box, margin) cases; the boxes are not square and some squares leave the photo.
SQUARE_CASES = [
    ((100, 50, 80, 80), 0.0),
    ((100, 50, 80, 80), 0.25),
    ((10, 20, 60, 100), 0.1),
    ((200, 40, 90, 70), 0.5),
]


@checker
def check_square_box(function: Callable) -> None:
    """square_box(box, margin) -> (x, y, side, side): centred, side max(w, h) * (1 + 2 margin)."""
    for box, margin in SQUARE_CASES:
        got = call(function, box, margin)
        expected = square_box(box, margin)
        what = f"square_box({box}, margin={margin})"
        values = np.asarray(got, dtype=float).ravel()
        if values.shape != (4,):
            raise ExerciseError(f"{what}: return four numbers (x, y, side, side), got {got!r}")
        if not all(isinstance(v, int | np.integer) for v in got):
            raise ExerciseError(
                f"{what} gave {got!r}: return whole pixels (int), e.g. with round() or //"
            )
        if np.abs(values - expected).max() <= 1:  # rounding another way is fine
            continue
        _diagnose_square(box, margin, values, what)
        expect_close(values, expected, what)
    passed("square_box", len(SQUARE_CASES))


def _diagnose_square(
    box: tuple[int, int, int, int], margin: float, got: np.ndarray, what: str
) -> None:
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)

    def square(s: float, corner_x: float, corner_y: float) -> np.ndarray:
        return np.array([corner_x, corner_y, s, s])

    def near(wrong: np.ndarray) -> bool:
        return np.abs(got - wrong).max() <= 1

    one_side = max(w, h) * (1 + margin)
    short = min(w, h) * (1 + 2 * margin)
    hints = [
        (
            square(one_side, x + (w - one_side) / 2, y + (h - one_side) / 2),
            "the margin goes on every side: side = max(w, h) * (1 + 2 * margin)",
        ),
        (
            square(short, x + (w - short) / 2, y + (h - short) / 2),
            "use the longer side, max(w, h), so that the whole face fits in the square",
        ),
        (
            square(side, x, y),
            "keep the box's centre: move the corner by half the growth, "
            "x + (w - side) / 2 and y + (h - side) / 2",
        ),
        (
            square(side, x - (w - side) / 2, y - (h - side) / 2),
            "the corner moves the wrong way: a larger square starts further up and left, "
            "x + (w - side) / 2",
        ),
        (
            np.array(
                [x + (w - side) / 2, y + (h - side) / 2, x + (w + side) / 2, y + (h + side) / 2]
            ),
            "return (x, y, side, side), a corner and a size, not two corners",
        ),
    ]
    for wrong, hint in hints:
        if near(wrong):
            raise ExerciseError(f"{what}: {hint}")


@checker
def check_crops_to_input(function: Callable) -> None:
    """crops uint8 (N, 48, 48) -> float32 tensor (N, 3, 48, 48), x = u8 / 127.5 - 1."""
    rng = np.random.default_rng(0)
    cases = [rng.integers(0, 256, (n, 48, 48), dtype=np.uint8) for n in (2, 1, 5)]
    cases[0][0, 0, :2] = (0, 255)  # the ends of the range must map to -1 and 1
    for crops in cases:
        got = call(function, crops.copy())
        expected = to_model_input(torch.from_numpy(crops).unsqueeze(1), channels=3)
        what = f"{len(crops)} crops of shape {crops.shape}"
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(
                f"{what}: return a torch tensor (torch.from_numpy), not {type(got).__name__}"
            )
        _diagnose_input(got, crops, what)
        if got.dtype != torch.float32:
            raise ExerciseError(
                f"{what}: the model's weights are float32, so give it float32, not {got.dtype}"
            )
        expect_close(got, expected, what, atol=1e-5)
    passed("crops_to_input", len(cases))


def _diagnose_input(got: torch.Tensor, crops: np.ndarray, what: str) -> None:
    n = len(crops)
    shape = tuple(got.shape)
    shape_hints = {
        (n, 48, 48): "add a channel dimension: the model takes (N, 3, 48, 48)",
        (n, 1, 48, 48): "the course's model was trained on 3 channels: repeat the gray image "
        "3 times, e.g. x.expand(-1, 3, -1, -1)",
        (n, 48, 48, 3): "PyTorch puts channels first: (N, 3, 48, 48), not (N, 48, 48, 3)",
        (n, 48, 48, 1): "PyTorch puts channels first, and the model takes 3: (N, 3, 48, 48)",
    }
    if shape in shape_hints:
        raise ExerciseError(f"{what}: got shape {shape}; {shape_hints[shape]}")
    if shape != (n, 3, 48, 48):
        raise ExerciseError(f"{what}: expected shape ({n}, 3, 48, 48), got {shape}")
    values = got.detach().double().numpy()[:, 0]
    u8 = crops.astype(float)
    value_hints = [
        (u8 / 255, "you scaled to [0, 1] (u8 / 255); training used [-1, 1], x = u8 / 127.5 - 1"),
        (u8, "normalise the pixels as in training: x = u8 / 127.5 - 1, in [-1, 1]"),
        (1 - u8 / 127.5, "the sign is flipped: x = u8 / 127.5 - 1 (black 0 -> -1, white 255 -> 1)"),
    ]
    for wrong, hint in value_hints:
        if np.allclose(values, wrong, atol=1e-4):
            raise ExerciseError(f"{what}: {hint}")
    right = u8 / 127.5 - 1
    if not np.allclose(values, right, atol=1e-5) and np.abs(values - right).max() < 0.02:
        raise ExerciseError(
            f"{what}: almost; use exactly x = u8 / 127.5 - 1, so 0 -> -1 and 255 -> 1 "
            "as in training"
        )


# (a, b) pairs of boxes (x, y, w, h): the same box, one inside the other, partial overlaps of
# unequal boxes, boxes that only touch, and boxes apart along x only, along y only, and both.
IOU_CASES = [
    ((10, 20, 40, 30), (10, 20, 40, 30)),
    ((0, 0, 100, 80), (20, 10, 30, 40)),
    ((30, 20, 40, 30), (10, 10, 40, 20)),
    ((50, 40, 30, 60), (20, 70, 50, 20)),
    ((0, 0, 10, 10), (10, 0, 10, 10)),
    ((0, 0, 20, 20), (30, 5, 20, 20)),
    ((0, 0, 20, 20), (5, 30, 20, 20)),
    ((0, 0, 20, 20), (40, 50, 20, 20)),
]


@checker
def check_box_iou(function: Callable) -> None:
    """box_iou(a, b) -> the shared area over the area covered, for boxes (x, y, w, h)."""
    for a, b in IOU_CASES:
        got = call(function, a, b)
        what = f"box_iou({a}, {b})"
        value = np.asarray(got, dtype=float)
        if value.shape != ():
            raise ExerciseError(f"{what}: return one number, got {got!r}")
        expected = iou(a, b)
        if abs(float(value) - expected) <= 1e-6:
            continue
        _diagnose_iou(a, b, float(value), what)
        expect_close(value, expected, what)
    passed("box_iou", len(IOU_CASES))


def _diagnose_iou(
    a: tuple[int, int, int, int], b: tuple[int, int, int, int], got: float, what: str
) -> None:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    across = min(a[0] + a[2], b[0] + b[2]) - left
    down = min(a[1] + a[3], b[1] + b[3]) - top
    inter = max(0, across) * max(0, down)
    area_a, area_b = a[2] * a[3], b[2] * b[3]
    hints = [
        (
            across * down / (area_a + area_b - across * down),
            "the overlap along x or y is negative when the boxes are apart: clamp each at 0, "
            "max(0, right - left), before multiplying",
        ),
        (
            inter / (area_a + area_b),
            "the union counts the shared area once: area_a + area_b - shared",
        ),
        (inter / min(area_a, area_b), "divide by the union of the two boxes, not the smaller box"),
        (inter / area_a, "divide by the union of the two boxes, not the first box's area"),
        (float(inter), "return the shared area divided by the union, not the shared area"),
        (
            _iou_of_corners(a, b),
            "a box is a corner plus a width and a height: its right edge is x + w, its bottom "
            "y + h",
        ),
    ]
    for wrong, hint in hints:
        if abs(got - wrong) <= 1e-6 and abs(wrong - iou(a, b)) > 1e-6:
            raise ExerciseError(f"{what}: {hint}")


def _iou_of_corners(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """The IoU of a learner who read (x, y, w, h) as two corners (x1, y1, x2, y2)."""
    across = min(a[2], b[2]) - max(a[0], b[0])
    down = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0, across) * max(0, down)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else float("nan")
