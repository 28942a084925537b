"""Checkers for notebook 06's training loop: one epoch of training, then validation.

    check_train_one_epoch(train_one_epoch)   # model.train(), one step per batch, log lines
    check_evaluate(evaluate)                 # model.eval(), no_grad, mean loss and accuracy

Each checker runs the learner's function on a small classifier and a list of
batches whose last batch is smaller than the others, compares with the reference
(fer_helpers.exercises.references), and on a wrong answer raises ExerciseError with
one sentence naming the usual cause: the model left in evaluation mode while
training (or in training mode while evaluating), gradients computed while
evaluating, a batch skipped or trained twice, the mean of the batch means instead
of the mean per image, the batch counter of the log line restarting every epoch.
A NotDoneYet from an unfinished exercise passes through untouched.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from . import ExerciseError, call, checker, passed
from .evaluation import _as_float

Batches = list[tuple[torch.Tensor, torch.Tensor]]

LOG_LINE = re.compile(r"Epoch: (\d+)/(\d+), Batch: (\d+), (\d+)/(\d+)")
"""The course's log line: Epoch: e/E, Batch: b, k/K (b counts batches since training began)."""


class _Probe(nn.Module):
    """An identity layer that notes, at every forward pass, the mode and whether autograd was on."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        return x


class _CountingSGD(torch.optim.SGD):
    """Plain SGD that counts its steps."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, lr=lr)
        self.steps = 0

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        self.steps += 1
        return super().step(closure)


def _case(seed: int, sizes: tuple[int, ...]) -> tuple[nn.Sequential, _Probe, Batches]:
    """A small classifier (4 inputs, 3 classes) with a probe inside, and batches of `sizes`."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # building layers draws random numbers: keep the learner's
        probe = _Probe()
        model = nn.Sequential(nn.Linear(4, 6), probe, nn.LeakyReLU(0.01), nn.Linear(6, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    batches = [
        (torch.randn(n, 4, generator=generator), torch.randint(0, 3, (n,), generator=generator))
        for n in sizes
    ]
    return model, probe, batches


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _same(params: list[torch.Tensor], other: list[torch.Tensor]) -> bool:
    return all(torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(params, other))


def _captured(function: Callable[..., Any], *args: Any, name: str) -> tuple[Any, str]:
    """The learner's result and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = call(function, *args, name=name)
    return result, out.getvalue()


# --- one epoch of training ------------------------------------------------------------------


def _reference_epoch(seed: int, sizes: tuple[int, ...]) -> tuple[list[torch.Tensor], list[float]]:
    """The weights after one correct epoch, and each batch's loss (before its step)."""
    model, _, batches = _case(seed, sizes)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return _params(model), losses


def _diagnose_mean_loss(name: str, got: float, losses: list[float], sizes: tuple[int, ...]) -> None:
    """Name the mistake when `got` is not the mean loss per image over batches of `sizes`
    whose mean losses were `losses` (both train_one_epoch and evaluate return it)."""
    weights = np.asarray(sizes, dtype=float)
    expected = float(np.dot(losses, weights) / weights.sum())
    if np.isclose(got, expected, rtol=1e-5):
        return
    if np.isclose(got, np.mean(losses), rtol=1e-5):
        raise ExerciseError(
            f"{name} returned {got:.4f}, the mean of the batches' mean losses: the last "
            f"batch holds fewer images ({sizes[-1]} of {sizes[0]}), so weigh each batch's loss "
            f"by its number of images, len(y), and divide by the images seen ({expected:.4f})"
        )
    if np.isclose(got, np.dot(losses, weights), rtol=1e-5) or np.isclose(
        got, sum(losses), rtol=1e-5
    ):
        raise ExerciseError(
            f"{name} returned {got:.4f}, a sum: divide by the number of images seen to get the "
            f"mean loss per image ({expected:.4f})"
        )
    if np.isclose(got, losses[-1], rtol=1e-5):
        raise ExerciseError(
            f"{name} returned the last batch's loss ({got:.4f}): return the mean loss per image "
            f"over the whole epoch ({expected:.4f})"
        )
    raise ExerciseError(
        f"{name} returned {got:.4f}: expected the epoch's mean loss per image, {expected:.4f} "
        "(the sum of loss × len(y) over the batches, divided by the images seen)"
    )


def _expected_lines(epoch: int, epochs: int, total: int, log_every: int) -> list[str]:
    return [
        f"Epoch: {epoch}/{epochs}, Batch: {(epoch - 1) * total + k}, {k}/{total}"
        for k in range(1, total + 1)
        if k % log_every == 0
    ]


def _diagnose_log(printed: str, epoch: int, epochs: int, total: int, log_every: int) -> None:
    name = "train_one_epoch"
    lines = [line.strip() for line in printed.splitlines() if line.strip().startswith("Epoch:")]
    expected = _expected_lines(epoch, epochs, total, log_every)
    example = f"'{expected[0]}, loss: 1.0986'"
    if not lines:
        raise ExerciseError(
            f"{name} printed no log line: every log_every batches (k % log_every == 0) print "
            f"the course's line, e.g. {example}"
        )
    matches = [LOG_LINE.match(line) for line in lines]
    for line, match in zip(lines, matches, strict=True):
        if match is None:
            raise ExerciseError(
                f"{name} printed {line!r}: the course's log line starts 'Epoch: e/E, Batch: b, "
                f"k/K', e.g. {example}"
            )
    parsed = [tuple(int(v) for v in match.groups()) for match in matches if match is not None]
    if 0 in [k for _, _, _, k, _ in parsed]:
        raise ExerciseError(
            f"{name} printed a line for batch 0 of {total}: count an epoch's batches from 1, "
            "enumerate(loader, start=1), as the course's log does"
        )
    if len(lines) != len(expected):
        every = " (k % log_every == 0), not every batch" if len(lines) == total else ""
        raise ExerciseError(
            f"{name} printed {len(lines)} log lines for {total} batches with log_every="
            f"{log_every}: expected {len(expected)}, one every log_every batches{every}"
        )
    for line, (e, big_e, b, k, big_k), wanted in zip(lines, parsed, expected, strict=True):
        want = [int(v) for v in LOG_LINE.match(wanted).groups()]  # type: ignore[union-attr]
        if (e, big_e, b, k, big_k) == tuple(want):
            continue
        if e != want[0] or big_e != want[1]:
            raise ExerciseError(
                f"{name} printed {line!r} for epoch {epoch} of {epochs}: print the epoch and "
                f"epochs it was given, 'Epoch: {epoch}/{epochs}' (epochs count from 1)"
            )
        if big_k != total:
            raise ExerciseError(
                f"{name} printed {line!r}: K in k/K is the number of batches in an epoch, "
                f"len(loader) = {total}"
            )
        if k == want[3] - 1:
            raise ExerciseError(
                f"{name} printed {line!r}: count an epoch's batches from 1, "
                "enumerate(loader, start=1), as the course's log does"
            )
        if b == k and epoch > 1:
            raise ExerciseError(
                f"{name} printed {line!r} in epoch {epoch}: 'Batch: b' counts the batches since "
                f"training began, (epoch - 1) * len(loader) + k = {want[2]}; only k restarts "
                "every epoch"
            )
        raise ExerciseError(f"{name} printed {line!r}: expected {wanted!r} at the start")


@checker
def check_train_one_epoch(train_one_epoch: Callable[..., Any]) -> None:
    """Check train_one_epoch(model, loader, loss_fn, optimizer, device, epoch, epochs, log_every).

    One pass over the loader in training mode, one optimizer step per batch (the learner's
    train_one_batch), a log line every log_every batches, and the mean loss per image.
    """
    name = "train_one_epoch"
    cases = [  # (seed, batch sizes: the last one smaller, epoch, epochs, log_every)
        (11, (4, 4, 4, 4, 2), 2, 3, 2),
        (12, (3, 3, 1), 1, 1, 1),
    ]
    for seed, sizes, epoch, epochs, log_every in cases:
        model, probe, batches = _case(seed, sizes)
        model.eval()  # as evaluate() leaves it after the epoch before
        optimizer = _CountingSGD(model.parameters(), lr=0.1)
        args = (model, batches, nn.CrossEntropyLoss(), optimizer, "cpu", epoch, epochs, log_every)
        result, printed = _captured(train_one_epoch, *args, name=name)
        expected_params, losses = _reference_epoch(seed, sizes)
        if optimizer.steps == 0:
            raise ExerciseError(
                f"{name} did not train: call train_one_batch(model, loss_fn, optimizer, x, y) "
                "for every batch (x, y) of the loader"
            )
        if optimizer.steps != len(batches):
            raise ExerciseError(
                f"{name} made {optimizer.steps} optimizer steps for a loader of {len(batches)} "
                "batches: one train_one_batch per batch, every batch once"
            )
        if any(grad and not training for training, grad in probe.calls):
            raise ExerciseError(
                f"{name} trained the model in evaluation mode: call model.train() at the start "
                "of the epoch (evaluate switches it to model.eval(), and dropout and batch norm "
                "behave differently in the two modes)"
            )
        if not _same(_params(model), expected_params):
            raise ExerciseError(
                f"{name}: the weights after the epoch are not those of one training step per "
                "batch, in the loader's order: call train_one_batch(model, loss_fn, optimizer, "
                "x, y) once for each (x, y) (check train_one_batch first)"
            )
        _diagnose_mean_loss(name, _as_float(result, name), losses, sizes)
        _diagnose_log(printed, epoch, epochs, len(batches), log_every)
    passed(name, len(cases))


# --- validation -----------------------------------------------------------------------------


def _evaluation_case(seed: int, sizes: tuple[int, ...], right: tuple[int, ...]) -> tuple:
    """A model in training mode and batches labelled so that `right[i]` of batch i are right."""
    model, probe, batches = _case(seed, sizes)
    labelled = []
    with torch.no_grad():
        for (x, _), n_right in zip(batches, right, strict=True):
            predicted = model(x).argmax(dim=1)
            y = predicted.clone()
            y[n_right:] = (predicted[n_right:] + 1) % 3  # the rest wrong
            labelled.append((x, y))
    probe.calls.clear()
    model.train()  # as train_one_epoch leaves it
    return model, probe, labelled


def _reference_evaluation(model: nn.Module, batches: Batches) -> tuple[list[float], list[float]]:
    """Each batch's mean loss and accuracy, in evaluation mode."""
    loss_fn = nn.CrossEntropyLoss()
    losses, accuracies = [], []
    with torch.no_grad():
        for x, y in batches:
            scores = model(x)
            losses.append(loss_fn(scores, y).item())
            accuracies.append((scores.argmax(dim=1) == y).float().mean().item())
    return losses, accuracies


def _diagnose_evaluation(
    loss: float, accuracy: float, losses: list[float], accuracies: list[float], sizes: tuple
) -> None:
    name = "evaluate"
    weights = np.asarray(sizes, dtype=float)
    want_loss = float(np.dot(losses, weights) / weights.sum())
    want_accuracy = float(np.dot(accuracies, weights) / weights.sum())
    correct = float(np.dot(accuracies, weights))
    if np.isclose(loss, want_accuracy) and np.isclose(accuracy, want_loss, rtol=1e-5):
        raise ExerciseError(f"{name} returned (accuracy, loss): return (loss, accuracy)")
    _diagnose_mean_loss(name, loss, losses, sizes)
    if np.isclose(accuracy, want_accuracy):
        return
    if np.isclose(accuracy, correct):
        raise ExerciseError(
            f"{name}: the accuracy {accuracy:g} is the number of right predictions; divide by "
            "the number of images"
        )
    if np.isclose(accuracy, 100 * want_accuracy):
        raise ExerciseError(f"{name}: the accuracy {accuracy:g} is a %: return a share 0..1")
    if np.isclose(accuracy, np.mean(accuracies)):
        raise ExerciseError(
            f"{name}: the accuracy {accuracy:.4f} is the mean of the batches' accuracies; the "
            f"last batch holds fewer images, so count the right predictions over the whole "
            f"loader and divide by the number of images ({want_accuracy:.4f})"
        )
    raise ExerciseError(
        f"{name}: the accuracy {accuracy:.4f} should be the share of images whose highest score "
        f"is their label, {want_accuracy:.4f}"
    )


@checker
def check_evaluate(evaluate: Callable[..., Any]) -> None:
    """Check evaluate(model, loader, loss_fn, device) -> (mean loss per image, accuracy 0..1).

    In evaluation mode (model.eval()), without gradients (torch.no_grad()), weights untouched.
    """
    name = "evaluate"
    cases = [  # (seed, batch sizes: the last one smaller, right predictions per batch)
        (21, (4, 4, 2), (3, 1, 2)),
        (22, (5, 5, 5, 1), (5, 2, 0, 1)),
    ]
    for seed, sizes, right in cases:
        model, probe, batches = _evaluation_case(seed, sizes, right)
        before = _params(model)
        result, _ = _captured(evaluate, model, batches, nn.CrossEntropyLoss(), "cpu", name=name)
        if not isinstance(result, tuple | list) or len(result) != 2:
            raise ExerciseError(
                f"{name} returned {result!r}: return two numbers, (mean loss, accuracy)"
            )
        loss, accuracy = (_as_float(value, name) for value in result)
        if not probe.calls:
            raise ExerciseError(f"{name} never ran the model: score every batch, model(x)")
        if any(training for training, _ in probe.calls):
            raise ExerciseError(
                f"{name} ran the model in training mode: call model.eval() first (dropout would "
                "drop features at random and batch norm would use the batch's statistics)"
            )
        if any(grad for _, grad in probe.calls):
            raise ExerciseError(
                f"{name} computed with autograd on: score the batches inside `with "
                "torch.no_grad():`, since nothing is trained here and the graph costs memory"
            )
        if not _same(_params(model), before) or any(p.grad is not None for p in model.parameters()):
            raise ExerciseError(f"{name} changed the weights or their gradients: only score")
        if len(probe.calls) != len(batches):
            raise ExerciseError(
                f"{name} ran the model {len(probe.calls)} times for {len(batches)} batches: "
                "score each batch once"
            )
        losses, accuracies = _reference_evaluation(model.eval(), batches)
        _diagnose_evaluation(loss, accuracy, losses, accuracies, sizes)
    passed(name, len(cases))
