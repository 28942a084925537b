"""The checkers of notebook 08 pass right answers and name the mistake in wrong ones.

The right answers here are written with scikit-learn or plain loops, independently
of the references inside the checkers; each wrong answer is a mistake learners make.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import assert_checker_contract
from sklearn.utils.class_weight import compute_class_weight

from fer_helpers.exercises import ExerciseError
from fer_helpers.exercises.imbalance import (
    check_balanced_accuracy,
    check_class_weights,
    check_f1,
)

# --- right answers ---------------------------------------------------------------------------


def weights_sklearn(counts):
    classes = np.arange(len(counts))
    return compute_class_weight("balanced", classes=classes, y=np.repeat(classes, counts))


def balanced_accuracy_loop(cm):
    recalls = [cm[i, i] / cm[i].sum() for i in range(len(cm)) if cm[i].sum() > 0]
    return sum(recalls) / len(recalls)


def f1_loop(cm):
    scores = []
    for i in range(len(cm)):
        tp, fp, fn = cm[i, i], cm[:, i].sum() - cm[i, i], cm[i].sum() - cm[i, i]
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return np.array(scores)


@pytest.mark.parametrize(
    ("checker", "right", "checks"),
    [
        (check_class_weights, weights_sklearn, 4),
        (check_balanced_accuracy, balanced_accuracy_loop, 4),
        (check_f1, f1_loop, 3),
    ],
)
def test_checker_passes_a_right_answer_and_lets_a_stub_through(checker, right, checks, capsys):
    assert_checker_contract(checker, right, checks, capsys)


# --- class weights ---------------------------------------------------------------------------


def weights_mistakes():
    return {
        "integer division": (lambda c: c.sum() // (len(c) * c), "use / not //"),
        "one over n": (lambda c: 1 / c, "multiply by N / k"),
        "forgot k": (lambda c: c.sum() / c, "divide by the number of classes k"),
        "share of the data": (lambda c: c / c.sum(), "rarest class must get the largest"),
        "upside down": (lambda c: len(c) * c / c.sum(), "upside down"),
        "normalised to sum 1": (
            lambda c: (1 / c) / (1 / c).sum(),
            r"proportions are right but the scale is not",
        ),
        "one weight": (lambda c: c.sum() / len(c), "one weight per class"),
        "wrong numbers": (lambda c: np.ones(len(c)), "class weights for counts"),
    }


@pytest.mark.parametrize("mistake", sorted(weights_mistakes()))
def test_class_weights_checker_names_the_mistake(mistake):
    wrong, message = weights_mistakes()[mistake]
    with pytest.raises(ExerciseError, match=message):
        check_class_weights(wrong)


# --- balanced accuracy -----------------------------------------------------------------------


def precision_mean(cm):
    return np.mean(np.diag(cm) / np.maximum(cm.sum(axis=0), 1))


def recall_mean_with_absent_as_zero(cm):
    return np.mean(np.diag(cm) / np.maximum(cm.sum(axis=1), 1))


def recall_mean_with_nan(cm):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.mean(np.diag(cm) / cm.sum(axis=1))


BALANCED_MISTAKES = {
    "plain accuracy": (lambda cm: np.trace(cm) / cm.sum(), "that is plain accuracy"),
    "mean precision": (precision_mean, "ROW sum"),
    "absent class as 0": (recall_mean_with_absent_as_zero, "instead of counting it as 0"),
    "nan": (recall_mean_with_nan, "gave nan"),
    "percentage": (lambda cm: 100 * balanced_accuracy_loop(cm), "not a percentage"),
    "per class": (lambda cm: np.diag(cm) / cm.sum(axis=1), "must be one number"),
}


@pytest.mark.parametrize("mistake", sorted(BALANCED_MISTAKES))
def test_balanced_accuracy_checker_names_the_mistake(mistake):
    wrong, message = BALANCED_MISTAKES[mistake]
    with pytest.raises(ExerciseError, match=message):
        check_balanced_accuracy(wrong)


# --- F1 --------------------------------------------------------------------------------------


def precision_recall(cm):
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.nan_to_num(np.diag(cm) / cm.sum(axis=0))
        r = np.nan_to_num(np.diag(cm) / cm.sum(axis=1))
    return p, r


def f1_with_nan(cm):
    p, r = precision_recall(cm)
    with np.errstate(invalid="ignore"):
        return 2 * p * r / (p + r)


F1_MISTAKES = {
    "arithmetic mean": (lambda cm: sum(precision_recall(cm)) / 2, "harmonic mean"),
    "nan for 0/0": (f1_with_nan, "contains nan"),
    "one number": (lambda cm: f1_loop(cm).mean(), "one F1 per class"),
    "geometric mean": (lambda cm: np.sqrt(np.prod(precision_recall(cm), axis=0)), "F1 per class"),
}


@pytest.mark.parametrize("mistake", sorted(F1_MISTAKES))
def test_f1_checker_names_the_mistake(mistake):
    wrong, message = F1_MISTAKES[mistake]
    with pytest.raises(ExerciseError, match=message):
        check_f1(wrong)


def f1_as_the_hint_says(cm, out=lambda a: np.zeros(len(a))):
    """F1 written as notebook 08's hint says, on the integer matrix the checker passes."""
    hits = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(hits, predicted, out=out(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=out(hits), where=actual > 0)
    both = precision + recall
    return np.divide(2 * precision * recall, both, out=out(hits), where=both > 0)


def test_the_notebooks_f1_hint_works_on_integer_matrices_and_zeros_like_is_explained(capsys):
    check_f1(f1_as_the_hint_says)
    assert "passed all 3 checks" in capsys.readouterr().out
    with pytest.raises(ExerciseError, match=r"cm = np.asarray\(cm, dtype=float\)"):
        check_f1(lambda cm: f1_as_the_hint_says(cm, out=np.zeros_like))
    hint = "out=np.zeros(len(a)), where=b > 0)"
    notebook = (
        Path(__file__).resolve().parents[1] / "notebooks/08_seven_classes_and_imbalance.ipynb"
    )
    assert hint in notebook.read_text(encoding="utf-8")  # the hint the learner reads
