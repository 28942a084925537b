"""The checkers of notebooks 02 and 03 pass right answers and name the mistake in wrong ones.

The right answers here are written with torch, independently of the NumPy
references inside the checkers; each wrong answer is a mistake learners make.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_helpers.exercises import ExerciseError, NotDoneYet
from fer_helpers.exercises.softmax import (
    check_cross_entropy,
    check_grad_scores,
    check_one_hot,
    check_predict,
    check_softmax,
)

# --- right answers, written with torch -----------------------------------------------------


def one_hot_torch(labels, num_classes):
    return F.one_hot(torch.as_tensor(labels), num_classes).numpy()


def softmax_torch(scores):
    return torch.softmax(torch.as_tensor(scores), dim=-1)


def predict_torch(scores):
    return torch.as_tensor(scores).argmax(dim=-1)


def cross_entropy_torch(probs, label):
    log_probs = torch.log(torch.as_tensor(probs))[None]
    return F.nll_loss(log_probs, torch.tensor([label])).item()


def cross_entropy_one_hot(probs, label):  # with the one-hot y: y . p picks p_true, then -log
    y = np.zeros_like(probs)
    y[label] = 1
    return -np.log(y @ probs)


def grad_scores_autograd(probs, labels):  # torch's gradient of the summed loss, for each score
    scores = torch.log(torch.as_tensor(probs)).requires_grad_()  # softmax(log p) = p
    F.cross_entropy(scores, torch.as_tensor(labels), reduction="sum").backward()
    return scores.grad


def stub(*args):
    raise NotDoneYet("exercise")


@pytest.mark.parametrize(
    ("checker", "right", "checks"),
    [
        (check_one_hot, one_hot_torch, 5),
        (check_softmax, softmax_torch, 7),
        (check_predict, predict_torch, 3),
        (check_cross_entropy, cross_entropy_torch, 7),
        (check_cross_entropy, cross_entropy_one_hot, 7),
        (check_grad_scores, grad_scores_autograd, 4),
    ],
)
def test_a_right_answer_passes(checker, right, checks, capsys):
    checker(right)
    assert capsys.readouterr().out.strip().endswith(f"passed all {checks} checks")


CHECKERS = [check_one_hot, check_softmax, check_predict, check_cross_entropy, check_grad_scores]


@pytest.mark.parametrize("checker", CHECKERS)
def test_an_unfinished_exercise_is_not_swallowed(checker):
    with pytest.raises(NotDoneYet):
        checker(stub)


@pytest.mark.parametrize("checker", CHECKERS)
def test_a_missing_return_is_named(checker):
    with pytest.raises(ExerciseError, match="forget `return`"):
        checker(lambda *args: None)


# --- one_hot -------------------------------------------------------------------------------

ONE_HOT_MISTAKES = {
    "one row per label": lambda labels, n: np.eye(n)[labels].T,
    "use num_classes": lambda labels, n: np.eye(labels.max() + 1)[labels],
    "one column too far left": lambda labels, n: np.eye(n)[labels - 1],
    "single 1": lambda labels, n: np.ones((len(labels), n)),
}


@pytest.mark.parametrize(("message", "wrong"), ONE_HOT_MISTAKES.items())
def test_one_hot_mistakes_are_named(message, wrong):
    with pytest.raises(ExerciseError, match=message):
        check_one_hot(wrong)


# --- softmax -------------------------------------------------------------------------------


def softmax_naive(scores):
    exps = np.exp(scores)
    return exps / exps.sum(axis=-1, keepdims=True)


def softmax_whole_batch(scores):
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exps / exps.sum()


def softmax_columns(scores):
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exps / exps.sum(axis=0, keepdims=True)


def softmax_no_keepdims(scores):
    exps = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exps / exps.sum(axis=-1)


def softmax_global_max(scores):
    exps = np.exp(scores - scores.max())
    return exps / exps.sum(axis=-1, keepdims=True)


def softmax_in_place(scores):
    scores -= scores.max(axis=-1, keepdims=True)
    exps = np.exp(scores)
    return exps / exps.sum(axis=-1, keepdims=True)


def softmax_not_divided(scores):
    return np.exp(scores - scores.max(axis=-1, keepdims=True))


SOFTMAX_MISTAKES = {
    r"subtract the largest score before exp": softmax_naive,
    r"whole batch sums to 1": softmax_whole_batch,
    r"wrong axis": softmax_columns,
    r"keepdims=True": softmax_no_keepdims,
    r"each row's own largest score": softmax_global_max,
    r"changed the array it was given": softmax_in_place,
    r"divide by their sum": softmax_not_divided,
}


@pytest.mark.parametrize(("message", "wrong"), SOFTMAX_MISTAKES.items())
def test_softmax_mistakes_are_named(message, wrong):
    with pytest.raises(ExerciseError, match=message):
        check_softmax(wrong)


def test_softmax_with_a_wrong_value_says_expected_and_got():
    with pytest.raises(ExerciseError, match="expected .* got"):
        check_softmax(lambda s: softmax_torch(s).flip(-1))  # sums to 1, wrong order


# --- predict -------------------------------------------------------------------------------

PREDICT_MISTAKES = {
    "not their positions": lambda scores: scores.max(axis=-1),
    "one number for the whole batch": lambda scores: scores.argmax(),
    "wrong axis": lambda scores: scores.argmax(axis=0),
    "expected": lambda scores: scores.argmin(axis=-1),
}


@pytest.mark.parametrize(("message", "wrong"), PREDICT_MISTAKES.items())
def test_predict_mistakes_are_named(message, wrong):
    with pytest.raises(ExerciseError, match=message):
        check_predict(wrong)


# --- cross_entropy -------------------------------------------------------------------------

CROSS_ENTROPY_MISTAKES = {
    "forgot the minus sign": lambda p, label: np.log(p[label]),
    "log10": lambda p, label: -np.log10(p[label]),
    "log2": lambda p, label: -np.log2(p[label]),
    "only the true class counts": lambda p, label: -np.log(p).sum(),
    "probability of the true class": lambda p, label: -np.log(p.max()),
    "return their sum": lambda p, label: -np.eye(len(p))[label] * np.log(p),
    "expected": lambda p, label: -np.log(p[label - 1]),  # 1-based labels: no special message
    # The formula taken literally: a class with p = 0 gives 0 * log 0 = 0 * (-inf) = nan.
    "is nan": lambda p, label: -(np.eye(len(p))[label] * np.log(p)).sum(),
    # An epsilon hides that the true class got probability 0 (the loss is inf).
    "do not add a small number": lambda p, label: -np.log(p[label] + 1e-12),
    "or clip it": lambda p, label: -np.log(np.clip(p[label], 1e-7, 1)),
    "use np.log": lambda p, label: -math.log(p[label]),  # math.log(0) raises
}


@pytest.mark.parametrize(("message", "wrong"), CROSS_ENTROPY_MISTAKES.items())
def test_cross_entropy_mistakes_are_named(message, wrong):
    with pytest.raises(ExerciseError, match=message):
        check_cross_entropy(wrong)


def test_the_worked_examples_are_the_first_checks():
    seen = []

    def recording(probs, label):
        seen.append((probs.tolist(), label))
        return -np.log(probs[label])

    check_cross_entropy(recording)
    assert seen[:3] == [([0.7, 0.2, 0.1], 0), ([0.2, 0.6, 0.2], 1), ([0.1, 0.1, 0.8], 2)]


def test_a_probability_of_zero_gives_no_nan_and_an_honest_inf():
    seen = {}

    def recording(probs, label):
        value = -np.log(probs[label])  # only the true class's probability is logged
        seen[(tuple(probs.tolist()), label)] = value
        return value

    check_cross_entropy(recording)
    assert seen[((0.0, 0.3, 0.7), 2)] == pytest.approx(-math.log(0.7))
    assert seen[((0.0, 0.25, 0.75), 0)] == math.inf


# --- grad_scores ---------------------------------------------------------------------------


def grad_in_place(probs, labels):
    probs[np.arange(len(labels)), labels] -= 1  # CS231n's line, without the copy first
    return probs


GRAD_MISTAKES = {
    "sign is flipped": lambda p, labels: np.eye(p.shape[1])[labels] - p,
    "returned the probabilities": lambda p, labels: p,
    "subtracted 1 from every class": lambda p, labels: p - 1,
    "divided by the batch size": lambda p, labels: (p - np.eye(p.shape[1])[labels]) / len(p),
    # -1/p_true times the softmax's own-score derivative p(1 - p), cross terms forgotten
    "true class only": lambda p, labels: np.eye(p.shape[1])[labels] * (p - 1),
    "derivative with respect to the probabilities": (
        lambda p, labels: np.eye(p.shape[1])[labels] * -1 / p
    ),
    "one column too far left": lambda p, labels: p - np.eye(p.shape[1])[labels - 1],
    "one number per image": lambda p, labels: p[np.arange(len(p)), labels] - 1,
    "changed the probabilities it was given": grad_in_place,
    r"expected shape \(3, 3\)": lambda p, labels: (p - np.eye(p.shape[1])[labels]).ravel(),
    "expected": lambda p, labels: p - np.eye(p.shape[1])[::-1][labels],  # a wrong one-hot
}


@pytest.mark.parametrize(("message", "wrong"), GRAD_MISTAKES.items())
def test_grad_scores_mistakes_are_named(message, wrong):
    with pytest.raises(ExerciseError, match=message):
        check_grad_scores(wrong)


def test_grad_scores_accepts_a_torch_tensor_and_the_in_place_line_on_a_copy():
    def in_place_on_a_copy(probs, labels):
        grad = probs.copy()
        grad[np.arange(len(labels)), labels] -= 1
        return grad

    check_grad_scores(in_place_on_a_copy)
    check_grad_scores(
        lambda p, labels: torch.as_tensor(p) - F.one_hot(torch.as_tensor(labels), p.shape[1])
    )
