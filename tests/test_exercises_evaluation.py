"""The checkers of notebooks 06 and 07 pass right answers and name the mistake in wrong ones.

The right answers are written independently of the checkers' references (with
scikit-learn where it has the function); each wrong answer is a mistake learners make.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import train_one_batch
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from torch import nn

from fer_helpers.exercises import ExerciseError, NotDoneYet
from fer_helpers.exercises.evaluation import (
    check_batch_accuracy,
    check_confusion_matrix,
    check_measured_on_validation,
    check_precision,
    check_recall,
    check_remeasure,
    check_train_one_batch,
    check_weighted_recall,
)

# --- right answers -------------------------------------------------------------------------


def batch_accuracy(scores, labels):
    return float(accuracy_score(labels.numpy(), scores.argmax(dim=1).numpy()))


def confusion_matrix(y_true, y_pred, num_classes):
    return sk_confusion_matrix(y_true, y_pred, labels=list(range(num_classes)))


def _pairs(cm):
    """Label lists that give the confusion matrix cm."""
    k = len(cm)
    y_true = np.repeat(np.repeat(np.arange(k), k), cm.ravel())
    y_pred = np.repeat(np.tile(np.arange(k), k), cm.ravel())
    return y_true, y_pred


def _sklearn_scores(cm):
    y_true, y_pred = _pairs(cm)
    return precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(len(cm))), zero_division=0
    )


def precision_per_class(cm):
    return _sklearn_scores(cm)[0]


def recall_per_class(cm):
    return _sklearn_scores(cm)[1]


def weighted_recall(recall, weights):
    return float(np.average(recall, weights=weights))


def remeasure(model, data, class_names, channels, split="validation", **options):
    """Every face of a split through the model, in eval mode and without gradients."""
    faces = data.dataset(split, class_names, channels=options.get("as_channels", channels))
    loader = torch.utils.data.DataLoader(
        faces, batch_size=options.get("batch_size", 4), shuffle=options.get("shuffle", False)
    )
    if options.get("eval", True):
        model.eval()
    y_true, y_pred = [], []
    with torch.set_grad_enabled(not options.get("no_grad", True)):
        for x, y in loader:
            scores = model(x)
            y_pred.append(scores if options.get("scores") else scores.argmax(dim=1))
            y_true.append(y)
            if options.get("one_batch"):
                break
    y_true, y_pred = torch.cat(y_true).numpy(), torch.cat(y_pred).detach().numpy()
    return (y_pred, y_true) if options.get("swapped") else (y_true, y_pred)


def stub(*args):
    raise NotDoneYet("exercise")


@pytest.mark.parametrize(
    ("checker", "right", "checks"),
    [
        (check_train_one_batch, train_one_batch, 2),
        (check_batch_accuracy, batch_accuracy, 4),
        (check_confusion_matrix, confusion_matrix, 4),
        (check_precision, precision_per_class, 4),
        (check_recall, recall_per_class, 4),
        (check_weighted_recall, weighted_recall, 4),
        (check_remeasure, remeasure, 2),
    ],
)
def test_right_answers_pass_and_stubs_stay_not_done(checker, right, checks, capsys):
    checker(right)
    assert f"passed all {checks} checks" in capsys.readouterr().out
    with pytest.raises(NotDoneYet):
        checker(stub)


def test_the_training_checker_leaves_the_global_random_state_alone():
    state = torch.get_rng_state()
    check_train_one_batch(train_one_batch)
    assert torch.equal(torch.get_rng_state(), state)


# --- one training step: usual mistakes -----------------------------------------------------


def no_zero_grad(model, loss_fn, optimizer, x, y):
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def no_step(model, loss_fn, optimizer, x, y):
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss.item()


def step_before_backward(model, loss_fn, optimizer, x, y):
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    optimizer.step()
    loss.backward()
    return loss.item()


def own_loss(model, loss_fn, optimizer, x, y):
    return train_one_batch(model, nn.CrossEntropyLoss(), optimizer, x, y)


def returns_tensor(model, loss_fn, optimizer, x, y):
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def returns_loss_after_step(model, loss_fn, optimizer, x, y):
    train_one_batch(model, loss_fn, optimizer, x, y)
    with torch.no_grad():
        return loss_fn(model(x), y).item()


def forgets_return(model, loss_fn, optimizer, x, y):
    train_one_batch(model, loss_fn, optimizer, x, y)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (no_zero_grad, "zero_grad"),
        (no_step, "did not change the weights"),
        (step_before_backward, "did not change the weights"),
        (own_loss, "use the loss_fn you were given"),
        (returns_tensor, "returned a tensor"),
        (returns_loss_after_step, "loss after the step"),
        (forgets_return, "forget `return`"),
    ],
)
def test_training_step_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_train_one_batch(wrong)


# --- batch accuracy: usual mistakes --------------------------------------------------------


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda s, y: (s.argmax(dim=1) == y).sum().item(), "number of correct predictions"),
        (lambda s, y: 100 * batch_accuracy(s, y), "not a %"),
        (lambda s, y: (s.argmax(dim=0) == y).float().mean().item(), "dim=1"),
        (lambda s, y: (s.argmax(dim=1) == y).float().mean(), "returned a tensor"),
        (lambda s, y: (s.argmax(dim=1) == y).sum().item() // len(y), "integer division"),
    ],
)
def test_batch_accuracy_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_batch_accuracy(wrong)


def test_argmax_over_images_that_cannot_broadcast_is_explained():
    def wrong_dim_only_when_not_square(s, y):
        dim = 1 if s.shape[0] == s.shape[1] else 0
        return (s.argmax(dim=dim) == y).float().mean().item()

    with pytest.raises(ExerciseError, match="one predicted class per image"):
        check_batch_accuracy(wrong_dim_only_when_not_square)


# --- confusion matrix: usual mistakes ------------------------------------------------------


def transposed(y_true, y_pred, k):
    return confusion_matrix(y_true, y_pred, k).T


def fancy_index_add(y_true, y_pred, k):
    cm = np.zeros((k, k), dtype=int)
    cm[y_true, y_pred] += 1  # repeated pairs count once
    return cm


def sized_by_labels(y_true, y_pred, k):
    return confusion_matrix(y_true, y_pred, max(y_true.max(), y_pred.max()) + 1)


def off_by_one(y_true, y_pred, k):
    return confusion_matrix(y_true, y_pred, k) + np.eye(k, dtype=int)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (transposed, "rows are the true class"),
        (fancy_index_add, "only once per distinct"),
        (sized_by_labels, "num_classes x num_classes"),
        (off_by_one, "add up to"),
    ],
)
def test_confusion_matrix_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_confusion_matrix(wrong)


# --- precision, recall, weighted recall: usual mistakes ------------------------------------


def by_rows(cm):
    return np.diag(cm) / cm.sum(axis=1)


def by_columns(cm):
    return np.diag(cm) / cm.sum(axis=0)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda cm: recall_per_class(cm), "which gives recall"),
        (by_columns, "never predicted"),
        (lambda cm: 100 * precision_per_class(cm), "not percentages"),
        (lambda cm: np.diag(cm) / cm.sum(), "number of all images"),
    ],
)
def test_precision_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_precision(wrong)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda cm: precision_per_class(cm), "which gives precision"),
        (by_rows, "has no true images"),
    ],
)
def test_recall_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_recall(wrong)


def test_a_checker_refuses_a_function_that_changes_the_matrix():
    def normalises_in_place(cm):
        cm[:] = 0
        return precision_per_class(np.eye(len(cm), dtype=int))

    with pytest.raises(ExerciseError, match="changed the confusion matrix"):
        check_precision(normalises_in_place)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda r, w: (w * r).sum(), "by the sum of weights"),
        (lambda r, w: (w * r).sum() / len(r), "not the number of classes"),
        (lambda r, w: r.mean(), "plain mean recall"),
        (lambda r, w: 100 * weighted_recall(r, w), "not a percentage"),
    ],
)
def test_weighted_recall_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_weighted_recall(wrong)


# --- notebook 07: the bonus, measured again on validation ----------------------------------


def test_remeasure_accepts_a_shuffled_loader_and_fer_helpers_predict(capsys):
    from fer_helpers.exercises.references import remeasure as reference

    check_remeasure(lambda m, d, c, ch: remeasure(m, d, c, ch, shuffle=True))
    check_remeasure(reference)
    assert capsys.readouterr().out.count("passed all 2 checks") == 2


def _first_faces_of_training(model, data, class_names, channels):
    """As many training faces as validation has: the right count, the wrong faces."""
    count = len(data.dataset("validation", class_names, channels=channels))
    faces = data.dataset("train", class_names, channels=channels)
    model.eval()
    with torch.no_grad():
        x = torch.stack([faces[i][0] for i in range(count)])
        return faces.targets[:count].numpy(), model(x).argmax(dim=1).numpy()


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda m, d, c, ch: remeasure(m, d, c, ch, split="train"), "the training split's"),
        (lambda m, d, c, ch: remeasure(m, d, c, ch, split="test"), "keep test for the very end"),
        (_first_faces_of_training, "but not the validation split's"),
        (lambda m, d, c, ch: remeasure(m, d, c, ch, one_batch=True), "measure every one"),
        (lambda m, d, c, ch: remeasure(m, d, c, ch, eval=False), r"call model.eval\(\)"),
        (lambda m, d, c, ch: remeasure(m, d, c, ch, no_grad=False), r"torch.no_grad\(\)"),
        (lambda m, d, c, ch: remeasure(m, d, c, ch, as_channels=3), "channels=channels"),
        (lambda m, d, c, ch: remeasure(m, d, c, ch, swapped=True), "in that order"),
        (lambda m, d, c, ch: remeasure(m, d, c, ch, scores=True), r"argmax\(dim=1\)"),
        (lambda m, d, c, ch: remeasure(m, d, c, ch)[0], "return two arrays"),
        (lambda m, d, c, ch: {"y_true": 0}, "return two arrays"),
        (lambda m, d, c, ch: (remeasure(m, d, c, ch)[0],) * 2, "do not pair"),
        (lambda m, d, c, ch: 7, "return two arrays"),
    ],
)
def test_remeasure_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_remeasure(wrong)


def test_remeasure_never_running_the_model_is_named():
    def no_model(model, data, class_names, channels):
        faces = data.dataset("validation", class_names, channels=channels)
        return faces.targets.numpy(), faces.targets.numpy()

    with pytest.raises(ExerciseError, match="never ran the model"):
        check_remeasure(no_model)


def test_the_bonus_results_must_cover_the_validation_faces_and_differ(capsys):
    from dataclasses import replace

    from fer_helpers.data import load_synthetic
    from fer_helpers.recipes import COURSE

    data = load_synthetic(tiny=True)
    names = ["happy", "neutral", "sad"]
    validation = data.dataset("validation", names).targets.numpy()
    training = data.dataset("train", names).targets.numpy()
    right = {"before": (validation, validation), "after": (validation, np.zeros_like(validation))}
    recipes = (COURSE, replace(COURSE, name="changed", dropout=0.5))
    check_measured_on_validation(right, data, names, recipes)
    assert "measured on validation: before, after, each on all 12" in capsys.readouterr().out
    on_training = {"before": right["before"], "after": (training, training)}
    with pytest.raises(ExerciseError, match="'after' result measured .* the training split's"):
        check_measured_on_validation(on_training, data, names)
    other_mix = {"before": (np.zeros_like(validation), validation)}
    with pytest.raises(ExerciseError, match="faces per class"):
        check_measured_on_validation(other_mix, data, names)
    renamed_only = (COURSE, replace(COURSE, name="after"))
    with pytest.raises(ExerciseError, match="recipes before and after are the same"):
        check_measured_on_validation(right, data, names, renamed_only)
