"""Measuring a classifier: the confusion matrix and the scores read from it.

Everything starts from the confusion matrix `cm`: rows are the true class,
columns the predicted class, so `cm[i, j]` counts images of class i that the
model called class j. The diagonal holds the correct predictions.

    precision_i = cm[i, i] / (column i sum)   of all predicted i, how many were i
    recall_i    = cm[i, i] / (row i sum)      of all true i, how many were found
    accuracy    = trace / N                   all correct over all images

wilson_interval says how uncertain such a share is when it was measured on few images;
bootstrap_interval does the same for any score (balanced accuracy) by drawing faces again.

The course handout calls precision the per-class "accuracy". A score whose
denominator is zero (a class never predicted, or absent from the labels) is
0.0, as in scikit-learn with `zero_division=0`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Count (true, predicted) pairs into a (num_classes, num_classes) int64 matrix.

    Rows are the true class, columns the predicted class. Labels are integers
    0..num_classes-1 (lists, numpy arrays or CPU tensors). Raises ValueError when
    the two have different lengths or a label is out of range.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    y_true = _as_labels(y_true, "y_true", num_classes)
    y_pred = _as_labels(y_pred, "y_pred", num_classes)
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}: "
            "expected one prediction per label"
        )
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    # np.add.at adds 1 once per pair, even when a pair repeats.
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def precision_per_class(cm: np.ndarray) -> np.ndarray:
    """TP_i / (column i sum): of the images predicted as class i, the share that were i.

    This is what the course handout calls the per-class "accuracy":
    acc_A = TP_A / (TP_A + BA + CA), read down column A of the confusion matrix.
    A class that is never predicted (empty column) gets 0.0.
    """
    cm = _check_cm(cm)
    return _safe_divide(np.diag(cm), cm.sum(axis=0))


def recall_per_class(cm: np.ndarray) -> np.ndarray:
    """TP_i / (row i sum): of the images of class i, the share predicted as i.

    A class absent from the true labels (empty row) gets 0.0.
    """
    cm = _check_cm(cm)
    return _safe_divide(np.diag(cm), cm.sum(axis=1))


def f1_per_class(cm: np.ndarray) -> np.ndarray:
    """Harmonic mean of precision and recall per class; 0.0 where both are 0."""
    precision = precision_per_class(cm)
    recall = recall_per_class(cm)
    return _safe_divide(2 * precision * recall, precision + recall)


def accuracy(cm: np.ndarray) -> float:
    """Correct predictions over all predictions: trace / N."""
    cm = _check_cm(cm, nonempty=True)
    return float(np.trace(cm) / cm.sum())


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """(low, high): Wilson's score interval for a share of `successes` out of `n` trials.

    How uncertain an accuracy or a recall measured on n images is: if each image is
    right with some unknown probability p, the interval covers p in about `confidence`
    of all samples of n images. Unlike p +- z * sqrt(p (1 - p) / n), it stays within
    0..1 and is not empty for 0 or n successes (Wilson 1927; Brown, Cai & DasGupta 2001
    recommend it for small n). With z the normal quantile of (1 + confidence) / 2:

        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)
    """
    if n < 1:
        raise ValueError(f"n must be at least 1 image, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n = {n}, got {successes}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    p = successes / n
    shrink = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / shrink
    half = z / shrink * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    cm: np.ndarray,
    metric: Callable[[np.ndarray], float] | None = None,
    confidence: float = 0.95,
    draws: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """(low, high): a percentile bootstrap interval for `metric` (default: balanced_accuracy)
    of the predictions counted in the confusion matrix `cm`.

    How much the score would move on another set of as many faces: draw that many faces
    with replacement from the ones counted (`draws` times), score each draw, and keep the
    middle `confidence` of the scores. It measures the noise of the validation faces, not
    of training: another seed moves a score too. Drawing faces with replacement is drawing
    the cells of `cm` from a multinomial with the cells' shares, which is what this does.
    For accuracy alone, wilson_interval says the same without drawing.
    """
    cm = _check_cm(cm, nonempty=True)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    metric = balanced_accuracy if metric is None else metric
    n = int(cm.sum())
    rng = np.random.default_rng(seed)
    samples = rng.multinomial(n, cm.ravel() / n, size=draws).reshape(draws, *cm.shape)
    scores = np.array([metric(sample) for sample in samples])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(scores, [tail, 100 - tail])
    return float(low), float(high)


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes present in the true labels.

    Classes with no true images are left out of the mean, as
    sklearn.metrics.balanced_accuracy_score does. Unlike accuracy, a rare class
    counts as much as a common one, so it shows how a model does on imbalanced data.
    """
    cm = _check_cm(cm, nonempty=True)
    present = cm.sum(axis=1) > 0
    return float(recall_per_class(cm)[present].mean())


def weighted_recall(cm: np.ndarray, weights: Sequence[float] | None = None) -> float:
    """sum_i w_i * recall_i / sum_i w_i, the course's weighted recall.

    With the default weights, the class supports (images per true class), this
    equals plain accuracy: w_i * recall_i is then the count of correct class-i
    predictions. Pass equal weights to weigh every class alike.
    """
    cm = _check_cm(cm, nonempty=True)
    w = cm.sum(axis=1) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(cm),):
        raise ValueError(f"expected {len(cm)} weights, one per class, got shape {w.shape}")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {w.tolist()}")
    return float((w * recall_per_class(cm)).sum() / w.sum())


def overall_metrics(cm: np.ndarray) -> dict[str, float]:
    """The whole-data-set scores: accuracy, balanced_accuracy and weighted_recall.

    The totals that go with classification_table; `pd.Series(overall_metrics(cm))`
    shows them as a small table.
    """
    return {
        "accuracy": accuracy(cm),
        "balanced_accuracy": balanced_accuracy(cm),
        "weighted_recall": weighted_recall(cm),
    }


def classification_table(cm: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """One row per class: precision, recall, f1 and support (true images of the class).

    For the totals over all classes see overall_metrics.
    """
    cm = _check_cm(cm)
    _check_names(class_names, len(cm))
    return pd.DataFrame(
        {
            "precision": precision_per_class(cm),
            "recall": recall_per_class(cm),
            "f1": f1_per_class(cm),
            "support": cm.sum(axis=1),
        },
        index=pd.Index(list(class_names), name="class"),
    )


def most_confused(
    cm: np.ndarray, class_names: Sequence[str], k: int = 5
) -> list[tuple[str, str, int]]:
    """The k largest mistakes as (true class, predicted class, count), largest first.

    Only off-diagonal cells with a count above zero are listed; ties keep row-major order.
    """
    cm = _check_cm(cm)
    _check_names(class_names, len(cm))
    pairs = [
        (class_names[i], class_names[j], int(cm[i, j]))
        for i in range(len(cm))
        for j in range(len(cm))
        if i != j and cm[i, j] > 0
    ]
    # sorted() is stable, so equal counts stay in row-major order.
    return sorted(pairs, key=lambda pair: -pair[2])[:k]


def course_line(values: Sequence[float], class_names: Sequence[str], total: float) -> str:
    """The course's print format: 'happy:xx.xx%, neutral:xx.xx%, sad:xx.xx%, total:xx.xx%'.

    `values` (one per class) and `total` are fractions 0..1, printed as percentages.
    """
    if len(values) != len(class_names):
        raise ValueError(f"got {len(values)} values but {len(class_names)} class names")
    parts = [f"{name}:{100 * v:.2f}%" for name, v in zip(class_names, values)]
    parts.append(f"total:{100 * total:.2f}%")
    return ", ".join(parts)


def summarize(y_true, y_pred, class_names: Sequence[str]) -> dict:
    """Every score in a JSON-ready dict (plain ints, floats and lists).

    Keys: classes, confusion_matrix (list of rows), accuracy, balanced_accuracy,
    weighted_recall, and per_class = {name: {precision, recall, f1, support}}.
    This is what `evaluate --json` prints.
    """
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    table = classification_table(cm, class_names)
    per_class = {
        name: {
            "precision": float(row.precision),
            "recall": float(row.recall),
            "f1": float(row.f1),
            "support": int(row.support),
        }
        for name, row in table.iterrows()
    }
    return {
        "classes": list(class_names),
        "confusion_matrix": cm.tolist(),
        **overall_metrics(cm),
        "per_class": per_class,
    }


def format_report(summary: dict) -> str:
    """A summary as text for people: the course's two lines, then the per-class table.

    The first line is the handout's per-class "accuracy" (precision) with the
    overall accuracy as total; the second is recall with the weighted recall as total.
    """
    names = summary["classes"]
    per_class = summary["per_class"]
    precision = [per_class[n]["precision"] for n in names]
    recall = [per_class[n]["recall"] for n in names]
    table = classification_table(np.array(summary["confusion_matrix"]), names)
    return "\n".join(
        [
            "accuracy per class (precision), total = accuracy:",
            course_line(precision, names, summary["accuracy"]),
            "recall per class, total = weighted recall:",
            course_line(recall, names, summary["weighted_recall"]),
            f"balanced accuracy: {100 * summary['balanced_accuracy']:.2f}%",
            "",
            table.to_string(float_format=lambda x: f"{x:.3f}"),
        ]
    )


def _as_labels(labels, what: str, num_classes: int) -> np.ndarray:
    """Labels as a 1-D int64 array, checked to lie in 0..num_classes-1."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D (one label per image), got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must hold integer class labels, got dtype {arr.dtype}")
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        raise ValueError(
            f"{what} has label {arr[bad][0]} at position {int(np.argmax(bad))}: "
            f"expected labels 0..{num_classes - 1}"
        )
    return arr.astype(np.int64)


def _check_cm(cm: np.ndarray, nonempty: bool = False) -> np.ndarray:
    """Check that cm is a square matrix of counts (and holds some, if asked)."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {cm.shape}")
    if nonempty and cm.sum() == 0:
        raise ValueError("the confusion matrix is empty (no predictions): nothing to score")
    return cm


def _check_names(class_names: Sequence[str], num_classes: int) -> None:
    if len(class_names) != num_classes:
        raise ValueError(f"expected {num_classes} class names, got {len(class_names)}")


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, with 0.0 where den is 0 (sklearn's zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den != 0)
    return out


def format_confusion(summary: dict) -> str:
    """The confusion matrix of a summary as a table: rows true class, columns predicted."""
    names = summary["classes"]
    table = pd.DataFrame(
        summary["confusion_matrix"],
        index=pd.Index(names, name="true"),
        columns=pd.Index(names, name="predicted"),
    )
    return f"\nconfusion matrix (rows: true class, columns: predicted):\n{table.to_string()}"
