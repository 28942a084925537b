"""Checkers for notebook 08: class weights, balanced accuracy and F1, worked by hand.

Each checker calls the learner's function on a few cases, recognises the usual
mistakes and says in one sentence what to change.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..losses import class_weights
from ..metrics import balanced_accuracy, f1_per_class, precision_per_class, recall_per_class
from . import ExerciseError, call, checker, expect_close, passed

FER2013_TRAIN = np.array([3995, 436, 4097, 7215, 4830, 3171, 4965])
"""Images per class in FER2013's training split (angry ... neutral)."""

# Confusion matrices (rows true, columns predicted) on which the usual mistakes give
# different numbers than the right answer.
UNBALANCED = np.array([[50, 5, 5], [2, 6, 2], [10, 10, 20]])
SEVEN = np.array(
    [
        [40, 1, 9, 8, 15, 3, 11],
        [6, 3, 1, 1, 2, 0, 1],
        [12, 0, 30, 6, 18, 12, 14],
        [4, 0, 3, 190, 6, 4, 13],
        [10, 0, 12, 9, 75, 2, 45],
        [2, 0, 9, 5, 1, 77, 6],
        [5, 0, 6, 12, 28, 2, 99],
    ]
)
ABSENT = np.array([[7, 3, 0], [0, 0, 0], [1, 2, 9]])  # class 1: no true image, never predicted


@checker
def check_class_weights(function: Callable) -> None:
    """class weights from counts: w_c = N / (k * n_c)."""
    cases = [FER2013_TRAIN, np.array([30, 10]), np.array([5, 5, 5]), np.array([1, 2, 3, 100])]
    for counts in cases:
        got = np.asarray(call(function, counts.copy()), dtype=float)
        expected = class_weights(counts)
        if got.shape != expected.shape:
            raise ExerciseError(
                f"counts {counts.tolist()}: expected one weight per class, shape "
                f"{expected.shape}, got shape {got.shape}"
            )
        _diagnose_weights(counts, got, expected)
        expect_close(got, expected, f"class weights for counts {counts.tolist()}")
    passed("class weights", len(cases))


def _diagnose_weights(counts: np.ndarray, got: np.ndarray, expected: np.ndarray) -> None:
    n, k = counts.sum(), len(counts)
    if np.allclose(got, expected):
        return
    hints = [
        (np.floor(expected), "use / not //: integer division rounds the weights down"),
        (
            1 / counts,
            "your weights are 1 / n_c: multiply by N / k, so that a class of "
            "average size N / k gets weight 1",
        ),
        (n / counts, "divide by the number of classes k as well: w_c = N / (k * n_c)"),
        (
            counts / n,
            "your weights grow with the class size; the rarest class must get the "
            "largest weight, so divide by n_c instead of multiplying",
        ),
        (k * counts / n, "your weights are upside down: w_c = N / (k * n_c), not k * n_c / N"),
    ]
    for wrong, hint in hints:
        if np.allclose(got, wrong):
            raise ExerciseError(f"counts {counts.tolist()}: {hint}")
    ratio = got / expected
    if np.all(np.isfinite(ratio)) and np.allclose(ratio, ratio[0]):
        raise ExerciseError(
            f"counts {counts.tolist()}: the proportions are right but the scale is not; "
            f"scale so that sum_c w_c * n_c equals N = {n} (yours gives {(got * counts).sum():g})"
        )


@checker
def check_balanced_accuracy(function: Callable) -> None:
    """balanced accuracy from a confusion matrix: mean recall over the classes present."""
    cases = [UNBALANCED, SEVEN, ABSENT, np.diag([3, 4, 5])]
    for cm in cases:
        got = call(function, cm.copy())
        expected = balanced_accuracy(cm)
        if np.ndim(got) != 0:
            raise ExerciseError(
                f"balanced accuracy must be one number, got an array of shape {np.shape(got)}"
            )
        got = float(got)
        what = f"balanced accuracy of {cm.tolist()}"
        if np.isnan(got):
            raise ExerciseError(
                f"{what} gave nan: a class with no true images has recall 0/0; "
                "leave such classes out of the mean"
            )
        if np.isclose(got, 100 * expected) and not np.isclose(expected, 0):
            raise ExerciseError(f"{what}: return a fraction between 0 and 1, not a percentage")
        if not np.isclose(got, expected):
            _diagnose_balanced(cm, got, what)
        expect_close(got, expected, what)
    passed("balanced accuracy", len(cases))


def _diagnose_balanced(cm: np.ndarray, got: float, what: str) -> None:
    if np.isclose(got, np.trace(cm) / cm.sum()):
        raise ExerciseError(
            f"{what}: that is plain accuracy (trace / N); balanced accuracy is the MEAN of "
            "the per-class recalls, so every class counts alike"
        )
    if np.isclose(got, precision_per_class(cm)[cm.sum(axis=0) > 0].mean()) or np.isclose(
        got, precision_per_class(cm).mean()
    ):
        raise ExerciseError(
            f"{what}: you averaged precisions (diagonal / column sum); recall divides by the "
            "ROW sum, the number of true images of the class"
        )
    if np.isclose(got, recall_per_class(cm).mean()):
        raise ExerciseError(
            f"{what}: a class with no true images has no recall; leave it out of the mean "
            "instead of counting it as 0"
        )


@checker
def check_f1(function: Callable) -> None:
    """per-class F1 from a confusion matrix: 2 P R / (P + R), 0 where P = R = 0."""
    cases = [UNBALANCED, SEVEN, ABSENT]
    for cm in cases:
        what = f"F1 per class of {cm.tolist()}"
        try:
            got = np.asarray(call(function, cm.copy()), dtype=float)
        except TypeError as error:  # numpy's UFuncTypeError: a fraction into an integer array
            if "Cannot cast ufunc" not in str(error):
                raise
            raise ExerciseError(
                f"{what} failed with {error}: the confusion matrix holds integers, so an out "
                "array made with np.zeros_like of it is an integer array too and cannot take "
                "fractions; give np.divide out=np.zeros(len(a)), or convert the matrix first, "
                "cm = np.asarray(cm, dtype=float)"
            ) from None
        expected = f1_per_class(cm)
        if got.shape != expected.shape:
            raise ExerciseError(
                f"{what}: expected one F1 per class, shape {expected.shape}, got {got.shape}"
            )
        if np.isnan(got).any():
            raise ExerciseError(
                f"{what} contains nan: where precision and recall are both 0, F1 is 0"
            )
        precision, recall = precision_per_class(cm), recall_per_class(cm)
        if not np.allclose(got, expected) and np.allclose(got, (precision + recall) / 2):
            raise ExerciseError(
                f"{what}: that is the arithmetic mean (P + R) / 2; F1 is the harmonic mean "
                "2 P R / (P + R), which stays low when either one is low"
            )
        expect_close(got, expected, what)
    passed("F1 per class", len(cases))
