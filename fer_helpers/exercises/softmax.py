"""Checkers for notebooks 02 and 03: one-hot labels, softmax, argmax prediction, cross-entropy,
and the gradient of cross-entropy with respect to the scores.

Each checker calls the learner's function on a few cases, compares with a
reference written here, and on a wrong answer raises ExerciseError with one
sentence naming the usual cause (a forgotten minus sign, log10 instead of the
natural log, softmax over the wrong axis, no max subtraction, y - p instead of
p - y, ...).
A NotDoneYet from an unfinished exercise passes through untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from . import ExerciseError, call, checker, expect_close, passed
from .references import _softmax


def _as_array(value: Any) -> np.ndarray:
    """A float NumPy array from a NumPy array, a list or a torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=float)


# --- one-hot labels ------------------------------------------------------------------------


def _diagnose_one_hot(got: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    what = f"one_hot({labels.tolist()}, num_classes={num_classes})"
    expected_shape = (len(labels), num_classes)
    if got.shape == expected_shape[::-1] and got.shape != expected_shape:
        raise ExerciseError(
            f"{what} has shape {got.shape}: expected one row per label, {expected_shape}"
        )
    if got.ndim == 2 and got.shape[0] == len(labels) and got.shape[1] != num_classes:
        raise ExerciseError(
            f"{what} has {got.shape[1]} columns: use num_classes for the number of columns, "
            "not the largest label + 1 (a batch may lack the last class)"
        )
    if got.shape == expected_shape:
        if not np.isin(got, (0.0, 1.0)).all() or not (got.sum(axis=1) == 1).all():
            raise ExerciseError(f"{what}: every row must hold a single 1 and zeros elsewhere")
        columns = got.argmax(axis=1)
        for shift, side in ((-1, "left"), (1, "right")):
            if (columns == (labels + shift) % num_classes).all():
                raise ExerciseError(
                    f"{what}: each 1 sits one column too far {side}: label 0 is column 0"
                )
    expect_close(got, np.eye(num_classes)[labels], what)


@checker
def check_one_hot(one_hot: Callable[[np.ndarray, int], Any]) -> None:
    """Check one_hot(labels, num_classes) -> array (len(labels), num_classes) of 0s and 1s."""
    cases = [([0, 1, 2], 3), ([2, 0, 2, 1], 3), ([1, 2, 2, 1, 2], 3), ([0, 1], 3), ([6], 7)]
    for label_list, num_classes in cases:
        labels = np.array(label_list)
        got = _as_array(call(one_hot, labels.copy(), num_classes, name="one_hot"))
        _diagnose_one_hot(got, labels, num_classes)
    passed("one_hot", len(cases))


# --- softmax -------------------------------------------------------------------------------


def _diagnose_softmax(got: np.ndarray, scores: np.ndarray) -> None:
    what = f"softmax({np.round(scores, 3).tolist()})"
    expected = _softmax(scores)
    if got.shape != scores.shape:
        raise ExerciseError(
            f"{what}: expected shape {scores.shape} (one probability per score), got {got.shape}"
        )
    if not np.isfinite(got).all():
        if scores.ndim == 2:
            raise ExerciseError(
                f"{what} gave nan or inf: subtract each row's own largest score "
                "(max over axis=-1 with keepdims=True) before exp"
            )
        raise ExerciseError(
            f"{what} gave nan or inf: exp overflows (or every exp underflows to 0); "
            "subtract the largest score before exp"
        )
    sums = got.sum(axis=-1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        if np.allclose(got, np.exp(scores - scores.max(axis=-1, keepdims=True))) or np.allclose(
            got, np.exp(scores)
        ):
            raise ExerciseError(f"{what} returned the exponentials: divide by their sum")
        if scores.ndim == 2 and np.allclose(got.sum(axis=0), 1.0, atol=1e-6):
            raise ExerciseError(
                f"{what}: the columns sum to 1, not the rows: softmax over the wrong axis; "
                "sum over axis=-1 (each row is one image)"
            )
        if scores.ndim == 2 and np.isclose(got.sum(), 1.0, atol=1e-6):
            raise ExerciseError(
                f"{what}: the whole batch sums to 1, not each row: "
                "sum over axis=-1 with keepdims=True"
            )
        raise ExerciseError(
            f"{what}: each row of probabilities must sum to 1; the sums are "
            f"{np.round(sums, 4).tolist()}"
        )
    expect_close(got, expected, what)


@checker
def check_softmax(softmax: Callable[[np.ndarray], Any]) -> None:
    """Check softmax(scores) on vectors, on (batch, classes) arrays row by row, on huge scores."""
    cases = [
        np.array([1.0, 2.0, 3.0]),
        np.array([2.0, -1.0, 0.5]),
        np.array([1000.0, 1001.0, 1002.0]),  # exp(1000) overflows to inf
        np.array([-1000.0, -1001.0, -1002.0]),  # every exp underflows to 0
        np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]),  # (batch, classes): row by row
        np.array([[3.0, 0.0, -1.0], [0.5, 2.5, 1.0], [-2.0, 1.0, 4.0]]),  # square batch
        np.array([[1000.0, 1001.0, 1002.0], [0.0, 1.0, 2.0]]),  # rows with different scales
    ]
    for scores in cases:
        given = scores.copy()
        # Huge scores warn about overflow in a wrong answer; the message below says it better.
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            try:
                result = call(softmax, given, name="softmax")
            except ValueError as error:  # e.g. (2, 3) / (2,) cannot broadcast
                raise ExerciseError(
                    f"softmax({scores.tolist()}) failed with {error!r}: for a batch, take max and "
                    "sum over axis=-1 with keepdims=True so that they broadcast against the rows"
                ) from None
            if not np.array_equal(given, scores):
                raise ExerciseError(
                    "softmax changed the array it was given (e.g. `scores -= scores.max()`): "
                    "write the shifted scores into a new variable"
                )
            _diagnose_softmax(_as_array(result), scores)
    passed("softmax", len(cases))


# --- argmax prediction ---------------------------------------------------------------------


@checker
def check_predict(predict: Callable[[np.ndarray], Any]) -> None:
    """Check predict(scores) -> the index of the largest score in each row of (batch, classes)."""
    cases = [
        np.array([[2.0, -1.0, 0.5], [0.1, 0.3, 0.2], [-3.0, -2.0, -1.0], [0.0, 5.0, 4.0]]),
        np.array([[0.2, 0.6, 0.2], [0.1, 0.1, 0.8], [0.7, 0.2, 0.1]]),  # square: axis matters
        np.array([[0.5, 3.0, 1.0]]),
    ]
    for scores in cases:
        what = f"predict({scores.tolist()})"
        got = _as_array(call(predict, scores.copy(), name="predict"))
        expected = scores.argmax(axis=-1)
        if got.ndim == 0:
            raise ExerciseError(
                f"{what} returned one number for the whole batch: take argmax over axis=-1 "
                "(one prediction per row)"
            )
        if got.shape == expected.shape and np.allclose(got, scores.max(axis=-1)):
            raise ExerciseError(
                f"{what} returned the largest scores, not their positions: use argmax, not max"
            )
        if got.shape == (scores.shape[1],) and np.array_equal(got, scores.argmax(axis=0)):
            raise ExerciseError(
                f"{what}: argmax over the wrong axis (down the columns); use axis=-1"
            )
        expect_close(got, expected, what)
    passed("predict", len(cases))


# --- cross-entropy -------------------------------------------------------------------------


def _cross_entropy(probs: np.ndarray, label: int) -> float:
    """-log probs[label]: inf when the true class has probability 0 (log 0 = -inf)."""
    with np.errstate(divide="ignore"):
        return float(-np.log(probs[label]))


def _diagnose_cross_entropy(got: np.ndarray, probs: np.ndarray, label: int) -> None:
    what = f"cross_entropy({probs.tolist()}, label={label})"
    expected = _cross_entropy(probs, label)
    if got.shape != ():
        if got.size == probs.size and np.isclose(got.sum(), expected):
            raise ExerciseError(f"{what} returned {got.size} terms: return their sum, one number")
        raise ExerciseError(f"{what}: expected one number, got an array of shape {got.shape}")
    value = float(got)
    if math.isnan(value):
        raise ExerciseError(
            f"{what} is nan: a class with probability 0 has log 0 = -inf, and y * log p "
            "multiplies it by y = 0, which is nan in floating point; take the log of the "
            "true class's probability only, -log(probs[label])"
        )
    if math.isinf(expected):
        if value == expected:
            return
        if value == -expected:
            raise ExerciseError(f"{what} = {value}: you forgot the minus sign in L = -sum y log p")
        raise ExerciseError(
            f"{what} = {value:.4f}: the true class has probability 0, so the loss is "
            "-log 0 = inf, and inf is the honest answer (the network ruled the right class "
            "out); do not add a small number to p or clip it"
        )
    if np.isclose(value, expected, rtol=1e-5, atol=1e-6):
        return
    if np.isclose(value, -expected):
        raise ExerciseError(
            f"{what} = {value:.4f} is negative: you forgot the minus sign in L = -sum y log p"
        )
    if np.isclose(value, expected / math.log(10)) or np.isclose(value, -expected / math.log(10)):
        raise ExerciseError(
            f"{what} = {value:.4f}: that is log10; cross-entropy uses the natural log, np.log"
        )
    if np.isclose(value, expected / math.log(2)) or np.isclose(value, -expected / math.log(2)):
        raise ExerciseError(
            f"{what} = {value:.4f}: that is log2; cross-entropy uses the natural log, np.log"
        )
    if np.isclose(abs(value), -np.log(probs).sum()):
        raise ExerciseError(
            f"{what} = {value:.4f} adds -log p of every class: only the true class counts, "
            "since y is 0 everywhere else"
        )
    if np.isclose(abs(value), -math.log(probs.max())):
        raise ExerciseError(
            f"{what} = {value:.4f} used the probability of the predicted class: "
            "use the probability of the true class, probs[label]"
        )
    expect_close(value, expected, what)


@checker
def check_cross_entropy(cross_entropy: Callable[[np.ndarray, int], Any]) -> None:
    """Check cross_entropy(probs, label) = -log probs[label] on the course's worked examples."""
    cases = [
        (np.array([0.7, 0.2, 0.1]), 0),  # the course's happy image
        (np.array([0.2, 0.6, 0.2]), 1),  # neutral
        (np.array([0.1, 0.1, 0.8]), 2),  # sad
        (np.array([0.98, 0.01, 0.01]), 2),  # confidently wrong: a large loss
        (np.array([0.05, 0.05, 0.1, 0.6, 0.1, 0.05, 0.05]), 4),  # seven classes
        (np.array([0.0, 0.3, 0.7]), 2),  # another class has probability 0: no nan
        (np.array([0.0, 0.25, 0.75]), 0),  # the true class has probability 0: inf
    ]
    for probs, label in cases:
        # log 0 warns; the checker's message says more than the warning.
        with np.errstate(divide="ignore", invalid="ignore"):
            try:
                result = call(cross_entropy, probs.copy(), label, name="cross_entropy")
            except ValueError as error:
                if "math domain error" not in str(error):
                    raise
                raise ExerciseError(
                    f"cross_entropy({probs.tolist()}, label={label}) failed with math.log(0) "
                    "('math domain error'): use np.log, which gives log 0 = -inf, "
                    "so that the loss is inf"
                ) from None
            _diagnose_cross_entropy(_as_array(result), probs, label)
    passed("cross_entropy", len(cases))


# --- the gradient of cross-entropy with respect to the scores ------------------------------


def _diagnose_grad_scores(got: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> None:
    what = f"grad_scores({probs.tolist()}, labels={labels.tolist()})"
    batch, classes = probs.shape
    y = np.eye(classes)[labels]
    expected = probs - y
    if got.shape != expected.shape:
        if got.shape == (batch,) and np.allclose(got, expected[np.arange(batch), labels]):
            raise ExerciseError(
                f"{what} returned one number per image, the true class's entry: every score "
                f"gets a gradient, so return an array of shape {expected.shape}, like probs"
            )
        raise ExerciseError(
            f"{what}: expected shape {expected.shape} (one gradient per score), got {got.shape}"
        )

    def same(candidate: np.ndarray) -> bool:
        return np.allclose(got, candidate, atol=1e-6, rtol=1e-5)

    if same(expected):
        return
    if same(-expected):
        raise ExerciseError(
            f"{what}: the sign is flipped, that is y - p; the gradient is p - y, "
            "which points uphill, and gradient descent subtracts it"
        )
    if same(probs):
        raise ExerciseError(f"{what} returned the probabilities: subtract the one-hot label y")
    if same(probs - 1):
        raise ExerciseError(
            f"{what} subtracted 1 from every class: y is 1 at the true class only, "
            "so subtract the one-hot label, probs - one_hot(labels, ...)"
        )
    if batch > 1 and same(expected / batch):
        raise ExerciseError(
            f"{what} divided by the batch size: that is the gradient of the mean loss; "
            "return each image's own gradient, p - y, without dividing"
        )
    if same(np.where(y == 1, expected, 0.0)):
        raise ExerciseError(
            f"{what} has a gradient for the true class only: every score is in the "
            "softmax's denominator, so raising a wrong class's score lowers p_true; "
            "a wrong class i gets p_i - 0 = p_i"
        )
    with np.errstate(divide="ignore"):
        if same(np.where(y == 1, -1 / probs, 0.0)):
            raise ExerciseError(
                f"{what} is -1/p, the derivative with respect to the probabilities; "
                "through the softmax, the derivative with respect to the scores is p - y"
            )
    for shift, side in ((-1, "left"), (1, "right")):
        if same(probs - np.eye(classes)[(labels + shift) % classes]):
            raise ExerciseError(
                f"{what}: the -1 sits one column too far {side}: label 0 is column 0"
            )
    expect_close(got, expected, what)


@checker
def check_grad_scores(grad_scores: Callable[[np.ndarray, np.ndarray], Any]) -> None:
    """Check grad_scores(probs, labels) = probs - one_hot(labels): one row per image."""
    cases = [
        # (probabilities, integer labels); every row sums to 1
        (np.array([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]]), np.array([0, 1, 2])),
        (np.array([[0.8, 0.05, 0.15], [0.1, 0.6, 0.3]]), np.array([2, 0])),  # both wrong
        (np.array([[0.05, 0.05, 0.1, 0.6, 0.1, 0.05, 0.05]]), np.array([4])),  # seven classes
        (
            np.array([[0.5, 0.3, 0.2], [0.25, 0.25, 0.5], [0.1, 0.7, 0.2], [0.6, 0.1, 0.3]]),
            np.array([1, 1, 2, 0]),
        ),
    ]
    for probs, labels in cases:
        given = probs.copy()
        got = call(grad_scores, given, labels.copy(), name="grad_scores")
        if not np.array_equal(given, probs):
            raise ExerciseError(
                "grad_scores changed the probabilities it was given (e.g. "
                "`probs[rows, labels] -= 1`): work on a copy, or return probs - y"
            )
        _diagnose_grad_scores(_as_array(got), probs, labels)
    passed("grad_scores", len(cases))
