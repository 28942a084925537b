"""Checkers for notebooks 04 (one training step, batch accuracy) and 05 (the metrics by hand).

Each checker calls the learner's function on a few cases, compares with a
reference, and on a wrong answer raises ExerciseError with one sentence naming
the usual cause: a forgotten zero_grad(), rows and columns of the confusion
matrix swapped, dividing by the wrong sum, nan for a class that is never
predicted, ... A NotDoneYet from an unfinished exercise passes through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from . import ExerciseError, call, checker, expect_close, passed


def _as_array(value: Any) -> np.ndarray:
    """A float NumPy array from a NumPy array, a list or a torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=float)


def _as_float(value: Any, what: str) -> float:
    """The learner's scalar result as a float; a tensor or an array is refused with a hint."""
    if isinstance(value, torch.Tensor):
        raise ExerciseError(
            f"{what} returned a tensor ({value!r}): return a Python float, e.g. loss.item()"
        )
    if isinstance(value, np.ndarray) and value.ndim > 0:
        raise ExerciseError(f"{what} returned an array of shape {value.shape}: expected one number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ExerciseError(f"{what} returned {value!r}: expected one number") from None


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(len(num))
    np.divide(num, den, out=out, where=den != 0)
    return out


# --- notebook 04: one training step ---------------------------------------------------------


def _training_case(case: int) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, Any, Any]:
    """(model, loss_fn, optimizer, x, y) of a small classifier, the same every time."""
    generator = torch.Generator().manual_seed(case)
    with torch.random.fork_rng():  # building layers draws random numbers: keep the learner's
        if case == 0:
            model: nn.Module = nn.Linear(4, 3)
            loss_fn = nn.CrossEntropyLoss()
        else:
            model = nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.01), nn.Linear(6, 3))
            loss_fn = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
            p.grad = torch.randn(p.shape, generator=generator)  # left over from a last batch
    optimizer: torch.optim.Optimizer
    if case == 0:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    x = torch.randn(5, 4, generator=generator)
    y = torch.tensor([0, 2, 1, 2, 0])
    return model, loss_fn, optimizer, x, y


def _reference_step(
    case: int, zero_grad: bool = True, plain_loss: bool = False
) -> tuple[list[torch.Tensor], float]:
    """Parameters after one correct step and the loss before it; or after a usual mistake."""
    model, loss_fn, optimizer, x, y = _training_case(case)
    if plain_loss:
        loss_fn = nn.CrossEntropyLoss()
    if zero_grad:
        optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return [p.detach().clone() for p in model.parameters()], loss.item()


def _same(params: list[torch.Tensor], other: list[torch.Tensor]) -> bool:
    return all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(params, other))


@checker
def check_train_one_batch(train_one_batch: Callable[..., Any]) -> None:
    """Check train_one_batch(model, loss_fn, optimizer, x, y) -> the batch's loss as a float.

    One step: zero the old gradients, forward, loss, backward, optimizer step.
    """
    name = "train_one_batch"
    for case in (0, 1):
        model, loss_fn, optimizer, x, y = _training_case(case)
        before = [p.detach().clone() for p in model.parameters()]
        result = call(train_one_batch, model, loss_fn, optimizer, x, y, name=name)
        after = [p.detach().clone() for p in model.parameters()]
        expected_params, expected_loss = _reference_step(case)
        if _same(after, before):
            raise ExerciseError(
                f"{name} did not change the weights: after loss.backward() call optimizer.step()"
                " (the order is zero_grad, forward, loss, backward, step)"
            )
        if not _same(after, expected_params):
            if _same(after, _reference_step(case, zero_grad=False)[0]):
                raise ExerciseError(
                    f"{name}: call optimizer.zero_grad() before loss.backward(); otherwise this"
                    " batch's gradients are added to those left over from the previous batch"
                )
            if _same(after, _reference_step(case, plain_loss=True)[0]):
                raise ExerciseError(
                    f"{name}: use the loss_fn you were given (it may weigh the classes),"
                    " not a new nn.CrossEntropyLoss()"
                )
            raise ExerciseError(
                f"{name} changed the weights, but not by one optimizer step on this batch: "
                "zero_grad, forward, loss, backward, step, each once"
            )
        loss = _as_float(result, name)
        if np.isclose(loss, expected_loss, rtol=1e-5):
            continue
        with torch.no_grad():
            after_step = loss_fn(model(x), y).item()
        if np.isclose(loss, after_step, rtol=1e-5):
            raise ExerciseError(
                f"{name} returned the loss after the step ({loss:.4f}): return the loss that"
                f" was computed for the step ({expected_loss:.4f})"
            )
        raise ExerciseError(
            f"{name} returned {loss:.4f}: expected this batch's loss, {expected_loss:.4f}"
        )
    passed(name, 2)


# --- notebook 04: accuracy of a batch -------------------------------------------------------


@checker
def check_batch_accuracy(batch_accuracy: Callable[[torch.Tensor, torch.Tensor], Any]) -> None:
    """Check batch_accuracy(scores, labels) -> the share of images whose top score is right."""
    cases = [
        # square (3 images, 3 classes): the argmax over the wrong dim gives another answer
        (
            torch.tensor([[2.0, 0.1, 0.3], [0.2, 1.5, 0.1], [0.1, 3.0, 0.2]]),
            torch.tensor([0, 1, 2]),
        ),
        (
            torch.tensor([[0.1, 2.0, 0.3], [1.2, 0.5, 0.1], [0.0, 0.1, 0.9], [0.4, 0.3, 0.2]]),
            torch.tensor([1, 0, 2, 1]),
        ),
        (torch.tensor([[-1.0, 2.0, 0.0], [0.5, -3.0, 0.0]]), torch.tensor([0, 1])),  # all wrong
        (torch.randn(9, 7, generator=torch.Generator().manual_seed(4)), torch.arange(9) % 7),
    ]
    name = "batch_accuracy"
    for scores, labels in cases:
        what = f"{name} on {len(labels)} images"
        try:
            result = call(batch_accuracy, scores.clone(), labels.clone(), name=name)
        except RuntimeError as error:  # e.g. 3 predictions compared with 4 labels
            raise ExerciseError(
                f"{what} failed with {error!r}: scores.argmax(dim=1) gives one predicted class"
                " per image (dim=0 would go down the images)"
            ) from None
        got = _as_float(result, name)
        correct = (scores.argmax(dim=1) == labels).sum().item()
        expected = correct / len(labels)
        if np.isclose(got, expected):
            continue
        if correct and np.isclose(got, correct):
            raise ExerciseError(
                f"{what} returned {got:g}, the number of correct predictions: divide by the"
                " number of images in the batch"
            )
        if np.isclose(got, 100 * expected):
            raise ExerciseError(f"{what} returned {got:g}: return a fraction 0..1, not a %")
        wrong_dim = scores.argmax(dim=0)
        if len(wrong_dim) == len(labels) and np.isclose(
            got, (wrong_dim == labels).float().mean().item()
        ):
            raise ExerciseError(
                f"{what} returned {got:g}: take the argmax over the classes, dim=1 (one"
                " prediction per image), not over the images"
            )
        if got == correct // len(labels):
            raise ExerciseError(
                f"{what} returned {got:g}: divide with /, not // (integer division)"
            )
        expect_close(got, expected, what)
    passed(name, len(cases))


# --- notebook 05: the confusion matrix ------------------------------------------------------


@checker
def check_confusion_matrix(confusion_matrix: Callable[[np.ndarray, np.ndarray, int], Any]) -> None:
    """Check confusion_matrix(y_true, y_pred, num_classes): rows true, columns predicted."""
    rng = np.random.default_rng(5)
    cases = [
        (np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3),
        (np.array([0, 0, 0, 1, 2]), np.array([0, 0, 1, 1, 2]), 3),  # a pair that repeats
        (np.array([0, 1, 0, 1]), np.array([0, 1, 1, 1]), 3),  # class 2 appears nowhere
        (rng.integers(0, 7, 60), rng.integers(0, 7, 60), 7),
    ]
    name = "confusion_matrix"
    for y_true, y_pred, k in cases:
        what = f"{name}({y_true.tolist()}, {y_pred.tolist()}, num_classes={k})"
        got = _as_array(call(confusion_matrix, y_true.copy(), y_pred.copy(), k, name=name))
        expected = np.zeros((k, k))
        for t, p in zip(y_true, y_pred):
            expected[t, p] += 1
        _diagnose_confusion_matrix(got, expected, y_true, y_pred, what)
    passed(name, len(cases))


def _diagnose_confusion_matrix(
    got: np.ndarray, expected: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, what: str
) -> None:
    k = len(expected)
    if got.shape != expected.shape:
        if got.ndim == 2 and got.shape[0] == got.shape[1] < k:
            raise ExerciseError(
                f"{what} has shape {got.shape}: make it num_classes x num_classes ({k} x {k}),"
                " even when some class appears in neither list"
            )
        raise ExerciseError(f"{what}: expected shape {expected.shape}, got {got.shape}")
    if np.array_equal(got, expected):
        return
    if np.array_equal(got, expected.T):
        raise ExerciseError(
            f"{what} is the transpose of the right matrix: rows are the true class and"
            " columns the predicted class, cm[true, predicted]"
        )
    once = np.zeros_like(expected)
    once[y_true, y_pred] = 1
    if np.array_equal(got, once):
        raise ExerciseError(
            f"{what}: `cm[y_true, y_pred] += 1` with whole arrays adds 1 only once per distinct"
            " (true, predicted) pair; loop over the pairs (or use np.add.at)"
        )
    if got.sum() != len(y_true):
        raise ExerciseError(
            f"{what}: the counts add up to {got.sum():g}, but there are {len(y_true)} images"
            " (each image adds 1 to exactly one cell)"
        )
    expect_close(got, expected, what)


# --- notebook 05: precision and recall per class, weighted recall ---------------------------

_CMS = [
    np.array([[5, 1, 0], [2, 3, 1], [0, 2, 6]]),
    np.array([[4, 1, 0], [2, 3, 0], [1, 1, 0]]),  # class 2 never predicted: column of zeros
    np.array([[6, 2, 1], [0, 0, 0], [1, 3, 4]]),  # class 1 absent from the labels: row of zeros
    np.random.default_rng(6).integers(0, 9, (7, 7)),
]


def _call_on_matrix(function: Callable[[np.ndarray], Any], cm: np.ndarray, name: str) -> Any:
    given = cm.copy()
    # A wrong answer may divide 0 by 0; the message below says so more clearly than a warning.
    with np.errstate(divide="ignore", invalid="ignore"):
        result = _as_array(call(function, given, name=name))
    if not np.array_equal(given, cm):
        raise ExerciseError(f"{name} changed the confusion matrix it was given: leave it as it is")
    return result


def _diagnose_per_class(got: np.ndarray, cm: np.ndarray, divide_by_rows: bool, what: str) -> None:
    tp = np.diag(cm).astype(float)
    rows, columns = cm.sum(axis=1), cm.sum(axis=0)
    expected = _safe_divide(tp, rows if divide_by_rows else columns)
    if got.shape != expected.shape:
        raise ExerciseError(f"{what}: expected one value per class, shape {expected.shape}")
    if not np.isfinite(got).all():
        i = int(np.flatnonzero(~np.isfinite(got))[0])
        line, never = (
            ("row", "has no true images") if divide_by_rows else ("column", "is never predicted")
        )
        raise ExerciseError(
            f"{what} gave {got[i]} for class {i}: it {never} (its {line} sums to 0), so the"
            " division is 0/0; return 0.0 there, as scikit-learn does with zero_division=0"
        )
    if np.allclose(got, expected):
        return
    other, own_name, other_name = (
        (columns, "recall", "precision") if divide_by_rows else (rows, "precision", "recall")
    )
    own_line, other_line = ("row", "column") if divide_by_rows else ("column", "row")
    if np.allclose(got, _safe_divide(tp, other)):
        raise ExerciseError(
            f"{what}: you divided by the {other_line} sums, which gives {other_name}; {own_name}"
            f" divides TP_i by the sum of {own_line} i"
        )
    if np.allclose(got, 100 * expected):
        raise ExerciseError(f"{what}: return fractions 0..1, not percentages")
    if np.allclose(got, tp / cm.sum()):
        raise ExerciseError(
            f"{what}: you divided by the number of all images; divide by the sum of {own_line} i"
        )
    expect_close(got, expected, what)


@checker
def check_precision(precision_per_class: Callable[[np.ndarray], Any]) -> None:
    """Check precision_per_class(cm) = TP_i / (sum of column i), 0.0 for a never-predicted class.

    This is what the course handout calls the per-class "accuracy".
    """
    name = "precision_per_class"
    for cm in _CMS:
        got = _call_on_matrix(precision_per_class, cm, name)
        _diagnose_per_class(got, cm, divide_by_rows=False, what=f"{name}({cm.tolist()})")
    passed(name, len(_CMS))


@checker
def check_recall(recall_per_class: Callable[[np.ndarray], Any]) -> None:
    """Check recall_per_class(cm) = TP_i / (sum of row i), 0.0 for a class with no images."""
    name = "recall_per_class"
    for cm in _CMS:
        got = _call_on_matrix(recall_per_class, cm, name)
        _diagnose_per_class(got, cm, divide_by_rows=True, what=f"{name}({cm.tolist()})")
    passed(name, len(_CMS))


@checker
def check_weighted_recall(weighted_recall: Callable[[np.ndarray, np.ndarray], Any]) -> None:
    """Check weighted_recall(recall, weights) = sum_i w_i * recall_i / sum_i w_i."""
    recall = np.array([0.9, 0.5, 0.6])
    cases = [
        (recall, np.array([40.0, 30.0, 20.0])),  # the supports: images per true class
        (recall, np.array([1.0, 1.0, 1.0])),  # equal weights: the mean recall
        (recall, np.array([1.0, 2.0, 5.0])),
        (np.array([0.2, 0.7, 1.0, 0.4]), np.array([3.0, 0.0, 1.0, 4.0])),
    ]
    name = "weighted_recall"
    for r, w in cases:
        what = f"{name}({r.tolist()}, weights={w.tolist()})"
        got = _as_float(call(weighted_recall, r.copy(), w.copy(), name=name), name)
        expected = float((w * r).sum() / w.sum())
        if np.isclose(got, expected):
            continue
        if np.isclose(got, (w * r).sum()):
            raise ExerciseError(f"{what} = {got:g}: divide the weighted sum by the sum of weights")
        if np.isclose(got, (w * r).sum() / len(r)):
            raise ExerciseError(
                f"{what} = {got:g}: divide by the sum of the weights, not the number of classes"
            )
        if np.isclose(got, r.mean()):
            raise ExerciseError(
                f"{what} = {got:g} is the plain mean recall: multiply each recall by its weight"
            )
        if np.isclose(got, 100 * expected):
            raise ExerciseError(f"{what} = {got:g}: return a fraction 0..1, not a percentage")
        expect_close(got, expected, what)
    passed(name, len(cases))
