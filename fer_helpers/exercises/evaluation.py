"""Checkers for notebooks 06 (one training step, batch accuracy) and 07 (the metrics by hand).

Each checker calls the learner's function on a few cases, compares with a
reference, and on a wrong answer raises ExerciseError with one sentence naming
the usual cause: a forgotten zero_grad(), rows and columns of the confusion
matrix swapped, dividing by the wrong sum, nan for a class that is never
predicted, ... A NotDoneYet from an unfinished exercise passes through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
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


# --- notebook 06: one training step ---------------------------------------------------------


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


# --- notebook 06: accuracy of a batch -------------------------------------------------------


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


# --- notebook 07: the confusion matrix ------------------------------------------------------


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


# --- notebook 07: precision and recall per class, weighted recall ---------------------------

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


# --- notebook 07: Lecture B's bonus, a change measured again on validation ------------------


class _Spy(nn.Module):
    """A stand-in model that notes what it is shown: every batch, its mode, and gradients.

    Its scores are a fixed random linear function of the pixels, so that different faces get
    different predictions and the checker can tell which faces were measured.
    """

    def __init__(self, channels: int, num_classes: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        weight = torch.randn(num_classes, channels * 48 * 48, generator=generator)
        self.weight = nn.Parameter(weight)
        self.seen: list[torch.Tensor] = []
        self.training_mode: list[bool] = []
        self.gradients: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().cpu().clone())
        self.training_mode.append(self.training)
        self.gradients.append(torch.is_grad_enabled())
        channels = self.weight.shape[1] // (48 * 48)
        if x.dim() != 4 or x.shape[1:] != (channels, 48, 48):
            raise ExerciseError(
                f"remeasure gave a {channels}-channel model batches of shape {tuple(x.shape)}: "
                f"build the faces with channels=channels, as the model was trained"
            )
        return x.flatten(1) @ self.weight.T


def _checker_faces(seed: int) -> Any:
    """A small FaceData with train, validation and test splits of all seven emotions.

    The splits have different sizes and different faces, so the count and the identity of
    the faces a function measured say which split it was.
    """
    from ..data import FaceData, FaceSplit

    rng = np.random.default_rng(seed)
    splits = {}
    for name, per_class in (("train", 5), ("validation", 3), ("test", 2)):
        labels = rng.permutation(np.repeat(np.arange(7), per_class))
        images = rng.integers(0, 256, (len(labels), 48, 48), dtype=np.uint8)
        ids = np.array([f"{name}-{i}" for i in range(len(labels))])
        splits[name] = FaceSplit(name, images, labels, ids)
    return FaceData(splits, source="synthetic", layout="the checker's faces")


def _keys(x: torch.Tensor) -> np.ndarray:
    """One number per face (a fixed random projection of its pixels), sorted: equal for the
    same faces in any order."""
    flat = x.flatten(1).double()
    probe = torch.randn(flat.shape[1], generator=torch.Generator().manual_seed(9), dtype=flat.dtype)
    return np.sort((flat @ probe).numpy())


def _labels_pair(result: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) from the learner's result, with a sentence if it is something else."""
    if isinstance(result, dict) or not isinstance(result, tuple | list) or len(result) != 2:
        raise ExerciseError(
            f"{what} returned {type(result).__name__}: return two arrays, "
            "(true labels, predicted labels), one entry per validation face"
        )
    y_true, y_pred = (np.asarray(_as_array(v)) for v in result)
    if y_pred.ndim == 2:
        raise ExerciseError(
            f"{what} returned scores of shape {y_pred.shape} as its predictions: return the "
            "predicted class of each face, scores.argmax(dim=1)"
        )
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ExerciseError(
            f"{what} returned labels of shapes {y_true.shape} and {y_pred.shape}: expected two "
            "1-D arrays of the same length, one entry per face"
        )
    return y_true.astype(np.int64), y_pred.astype(np.int64)


def _which_split(count: int, data: Any, class_names: Any, channels: int) -> str:
    """'training', 'test' or '' for a number of faces, in the words of a message."""
    for split, words in (("train", "training"), ("test", "test")):
        if split in data.splits and count == len(data.dataset(split, class_names, channels)):
            return words
    return ""


def _wrong_faces(count: int, data: Any, class_names: Any, channels: int, what: str) -> str:
    expected = len(data.dataset("validation", class_names, channels))
    split = _which_split(count, data, class_names, channels)
    if split == "training":
        return (
            f"{what} measured {count} faces, the training split's: a model is measured on faces "
            f"it never learned from, the {expected} of data.dataset('validation', ...)"
        )
    if split == "test":
        return (
            f"{what} measured {count} faces, the test split's: keep test for the very end and "
            f"choose between changes on validation, its {expected} faces"
        )
    return (
        f"{what} measured {count} faces, but the validation split has {expected} of these "
        "classes: measure every one of them, each once"
    )


@checker
def check_remeasure(remeasure: Callable[..., Any]) -> None:
    """Check remeasure(model, data, class_names, channels) -> (y_true, y_pred) on validation.

    On a small set of made-up faces with a stand-in model that notes what it is shown: the
    model must see every validation face once (not the training or test faces), in evaluation
    mode and without gradients, and the labels returned must be the true classes of those
    faces and the model's predictions for them.
    """
    name = "remeasure"
    cases = [(("happy", "neutral", "sad"), 3, 11), (("angry", "fear", "happy", "surprise"), 1, 12)]
    for names, channels, seed in cases:
        faces = _checker_faces(seed)
        spy = _Spy(channels, len(names), seed)
        spy.train()  # as a model comes out of training: measuring must switch it to eval
        what = f"{name}(model, data, {list(names)}, channels={channels})"
        result = call(remeasure, spy, faces, list(names), channels, name=name)
        validation = faces.dataset("validation", names, channels)
        y_true, y_pred = _labels_pair(result, what)
        if not spy.seen:
            raise ExerciseError(f"{what} never ran the model: call model(x) on every batch")
        seen = torch.cat(spy.seen)
        if seen.shape[1:] != (channels, 48, 48):
            raise ExerciseError(
                f"{what} gave the model batches of shape {tuple(seen.shape)}: build the faces "
                f"with channels=channels ({channels}), as the model was trained"
            )
        if len(seen) != len(validation):
            raise ExerciseError(_wrong_faces(len(seen), faces, names, channels, what))
        expected_x = torch.stack([validation[i][0] for i in range(len(validation))])
        if not np.allclose(_keys(seen), _keys(expected_x), rtol=1e-6, atol=1e-6):
            raise ExerciseError(
                f"{what} showed the model {len(seen)} faces, but not the validation split's: "
                "use data.dataset('validation', class_names, channels=channels)"
            )
        if any(spy.training_mode):
            raise ExerciseError(
                f"{what} ran the model in training mode: call model.eval() first (dropout and "
                "batch norm then behave as they should when measuring)"
            )
        if any(spy.gradients):
            raise ExerciseError(
                f"{what} recorded gradients: predict under torch.no_grad() (faster, less memory)"
            )
        with torch.no_grad():
            scores = spy.weight.detach()
            expected_pred = (expected_x.flatten(1) @ scores.T).argmax(dim=1).numpy()
        k = len(names)
        expected_cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(expected_cm, (validation.targets.numpy(), expected_pred), 1)
        if len(y_true) != len(validation):
            raise ExerciseError(
                f"{what} returned {len(y_true)} labels: expected one per validation face, "
                f"{len(validation)}"
            )
        if min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= k:
            raise ExerciseError(f"{what} returned a label outside the class numbers 0..{k - 1}")
        got_cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(got_cm, (y_true, y_pred), 1)
        if np.array_equal(got_cm, expected_cm):
            continue
        if np.array_equal(got_cm, expected_cm.T):
            raise ExerciseError(
                f"{what}: return (true labels, predicted labels) in that order, not the reverse"
            )
        raise ExerciseError(
            f"{what}: the labels do not pair each validation face's true class with the "
            "model's prediction for it (scores.argmax(dim=1)), batch by batch in the same order"
        )
    passed(name, len(cases))


def check_measured_on_validation(
    results: dict[str, Any],
    data: Any,
    class_names: Any,
    recipes: Sequence[Any] = (),
) -> None:
    """The notebook's own measurements of the bonus: each on the validation split's faces.

    results maps a name ("before", "after") to (y_true, y_pred). Each must hold one label per
    validation face of these classes, with the validation split's number of faces per class:
    not the training faces the models learned from, nor the test faces. recipes, if given,
    must differ in at least one setting (a change was made). Raises ExerciseError with a
    sentence; else prints one line saying what was measured.
    """
    if recipes:
        settings = [{k: v for k, v in asdict(r).items() if k != "name"} for r in recipes]
        if all(s == settings[0] for s in settings[1:]):
            raise ExerciseError(
                "the recipes before and after are the same: change one setting of the 'after' "
                "recipe (dataclasses.replace(before, dropout=0.5), say) and run again"
            )
    validation = data.dataset("validation", class_names)
    for label, result in results.items():
        what = f"the {label!r} result"
        y_true, _ = _labels_pair(result, what)
        if len(y_true) != len(validation):
            raise ExerciseError(_wrong_faces(len(y_true), data, class_names, 3, what))
        counts = np.bincount(y_true, minlength=len(class_names))
        if not np.array_equal(counts, validation.class_counts()):
            raise ExerciseError(
                f"{what} has {counts.tolist()} faces per class, the validation split "
                f"{validation.class_counts().tolist()}: measure on the validation split"
            )
    print(
        f"measured on validation: {', '.join(results)}, each on all {len(validation):,} "
        f"faces of {', '.join(class_names)}"
    )
