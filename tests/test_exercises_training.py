"""The checkers of notebook 06's training loop pass right answers and name wrong ones.

The right answers are written here as a learner would, independently of the
references; each wrong answer is a mistake learners make.
"""

from __future__ import annotations

import pytest
import torch
from conftest import train_one_batch
from torch import nn

from fer_helpers.exercises import ExerciseError, NotDoneYet
from fer_helpers.exercises.references import REFERENCES
from fer_helpers.exercises.training import check_evaluate, check_train_one_epoch

# --- right answers -------------------------------------------------------------------------


def train_one_epoch(model, loader, loss_fn, optimizer, device, epoch, epochs, log_every):
    model.train()
    total = len(loader)
    loss_sum, seen = 0.0, 0
    for k, (x, y) in enumerate(loader, start=1):
        x, y = x.to(device), y.to(device)
        loss = train_one_batch(model, loss_fn, optimizer, x, y)
        loss_sum += loss * len(y)
        seen += len(y)
        if k % log_every == 0:
            print(f"Epoch: {epoch}/{epochs}, Batch: {(epoch - 1) * total + k}, {k}/{total}, "
                  f"loss: {loss:.4f}")  # fmt: skip
    return loss_sum / seen


def evaluate(model, loader, loss_fn, device):
    model.eval()
    loss_sum, right, seen = 0.0, 0, 0
    with torch.inference_mode():  # as good as no_grad here
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            scores = model(x)
            loss_sum += loss_fn(scores, y).item() * len(y)
            right += int((scores.argmax(1) == y).sum())
            seen += len(y)
    return loss_sum / seen, right / seen


def stub(*args):
    raise NotDoneYet("exercise")


@pytest.mark.parametrize(
    ("checker", "right"),
    [
        (check_train_one_epoch, train_one_epoch),
        (check_train_one_epoch, REFERENCES["train_one_epoch"]),
        (check_evaluate, evaluate),
        (check_evaluate, REFERENCES["evaluate"]),
    ],
)
def test_right_answers_pass_and_stubs_stay_not_done(checker, right, capsys):
    checker(right)
    assert "passed all 2 checks" in capsys.readouterr().out
    with pytest.raises(NotDoneYet):
        checker(stub)


def test_the_checkers_leave_the_global_random_state_alone():
    state = torch.get_rng_state()
    check_train_one_epoch(train_one_epoch)
    check_evaluate(evaluate)
    assert torch.equal(torch.get_rng_state(), state)


def test_the_reference_epoch_prints_the_course_log_line(capsys):
    model = nn.Linear(4, 3)
    loader = [(torch.randn(2, 4), torch.tensor([0, 1]))] * 4
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    REFERENCES["train_one_epoch"](model, loader, nn.CrossEntropyLoss(), optimizer, "cpu", 3, 10, 2)
    lines = [line[: line.index(", loss")] for line in capsys.readouterr().out.splitlines()]
    assert lines == ["Epoch: 3/10, Batch: 10, 2/4", "Epoch: 3/10, Batch: 12, 4/4"]


# --- one epoch: usual mistakes -------------------------------------------------------------


def epoch_with(
    *, train_mode=True, skip_last=False, mean_of_means=False, counter="right", every=True
):
    """train_one_epoch with one of the usual mistakes."""

    def wrong(model, loader, loss_fn, optimizer, device, epoch, epochs, log_every):
        if train_mode:
            model.train()
        total, losses, sizes = len(loader), [], []
        for k, (x, y) in enumerate(loader, start=0 if counter == "from 0" else 1):
            if skip_last and len(losses) == total - 1:
                break
            losses.append(train_one_batch(model, loss_fn, optimizer, x, y))
            sizes.append(len(y))
            b = k if counter == "restarts" else (epoch - 1) * total + k
            if not every or k % log_every == 0:
                print(f"Epoch: {epoch}/{epochs}, Batch: {b}, {k}/{total}, loss: {losses[-1]:.4f}")
        if mean_of_means:
            return sum(losses) / len(losses)
        return sum(v * n for v, n in zip(losses, sizes)) / sum(sizes)

    return wrong


def no_training(model, loader, loss_fn, optimizer, device, epoch, epochs, log_every):
    model.train()
    return 1.0


def returns_tensor(model, loader, loss_fn, optimizer, device, epoch, epochs, log_every):
    return torch.tensor(
        train_one_epoch(model, loader, loss_fn, optimizer, device, epoch, epochs, log_every)
    )


def silent(model, loader, loss_fn, optimizer, device, epoch, epochs, log_every):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return train_one_epoch(model, loader, loss_fn, optimizer, device, epoch, epochs, log_every)


def zero_based_epoch(model, loader, loss_fn, optimizer, device, epoch, epochs, log_every):
    return train_one_epoch(model, loader, loss_fn, optimizer, device, epoch - 1, epochs, log_every)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (no_training, "did not train"),
        (epoch_with(skip_last=True), "optimizer steps for a loader"),
        (epoch_with(train_mode=False), r"call model\.train\(\)"),
        (epoch_with(mean_of_means=True), "weigh each batch's loss by its"),
        (returns_tensor, "returned a tensor"),
        (silent, "printed no log line"),
        (epoch_with(every=False), "not every batch"),
        (epoch_with(counter="restarts"), "counts the batches since"),
        (epoch_with(counter="from 0"), "from 1"),
        (zero_based_epoch, "epochs count from 1"),
    ],
)
def test_epoch_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_train_one_epoch(wrong)


def test_an_epoch_whose_step_forgets_zero_grad_is_caught():
    def epoch_without_zero_grad(model, loader, loss_fn, optimizer, device, epoch, epochs, every):
        model.train()
        for x, y in loader:
            loss_fn(model(x), y).backward()
            optimizer.step()
        return 1.0

    with pytest.raises(ExerciseError, match="not those of one training step per batch"):
        check_train_one_epoch(epoch_without_zero_grad)


# --- validation: usual mistakes ------------------------------------------------------------


def evaluate_with(
    *, eval_mode=True, no_grad=True, mean_of_means=False, count=False, swap=False, acc_means=False
):
    """evaluate with one of the usual mistakes."""

    def wrong(model, loader, loss_fn, device):
        if eval_mode:
            model.eval()
        losses, accuracies, sizes = [], [], []
        with torch.no_grad() if no_grad else torch.enable_grad():
            for x, y in loader:
                scores = model(x)
                losses.append(loss_fn(scores, y).item())
                accuracies.append((scores.argmax(dim=1) == y).float().mean().item())
                sizes.append(len(y))
        n = sum(sizes)
        loss = sum(v * s for v, s in zip(losses, sizes)) / n
        accuracy = sum(a * s for a, s in zip(accuracies, sizes)) / n
        if mean_of_means:
            loss = sum(losses) / len(losses)
        if count:
            accuracy *= n
        if acc_means:
            accuracy = sum(accuracies) / len(accuracies)
        return (accuracy, loss) if swap else (loss, accuracy)

    return wrong


def scores_twice(model, loader, loss_fn, device):
    model.eval()
    with torch.no_grad():
        for x, _ in loader:
            model(x)
    return evaluate(model, loader, loss_fn, device)


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (evaluate_with(eval_mode=False), r"call model\.eval\(\)"),
        (evaluate_with(no_grad=False), r"torch\.no_grad\(\)"),
        (evaluate_with(mean_of_means=True), "mean of the batches' mean losses"),
        (evaluate_with(count=True), "number of right predictions"),
        (evaluate_with(swap=True), r"return \(loss, accuracy\)"),
        (lambda m, lo, f, d: evaluate(m, lo, f, d)[1], "return two numbers"),
        (evaluate_with(acc_means=True), "mean of the batches' accuracies"),
        (scores_twice, "score each batch once"),
    ],
)
def test_evaluation_mistakes_are_named(wrong, message):
    with pytest.raises(ExerciseError, match=message):
        check_evaluate(wrong)
