"""Checkers for notebook 10: the sparse center loss and the attention heads, by hand.

Each checker calls the learner's function on a few cases, recognises the usual
mistakes and says in one sentence what to change.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..losses import sparse_center_loss
from ..models import attention_from_heads
from . import ExerciseError, call, checker, expect_close, passed

# Worked by hand in the notebook: 3 images, 3 features, 3 classes.
# Image 0 (class 2): a * (x - c)^2 = 0.5*1 + 1*4 + 0*4 = 4.5
# Image 1 (class 1): 1*1 + 0.5*0 + 0.25*1 = 1.25
# Image 2 (class 1): 0*1 + 1*1 + 1*1 = 2      sum 7.75, L_SC = 7.75 / (2*3)
HAND_FEATURES = [[1.0, 2.0, 3.0], [0.0, 1.0, 0.0], [2.0, 2.0, 2.0]]
HAND_CENTRES = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 0.0, 1.0]]
HAND_LABELS = [2, 1, 1]
HAND_ATTENTION = [[0.5, 1.0, 0.0], [1.0, 0.5, 0.25], [0.0, 1.0, 1.0]]


def _loss_cases() -> list[tuple[torch.Tensor, ...]]:
    hand = tuple(
        torch.tensor(v) for v in (HAND_FEATURES, HAND_CENTRES, HAND_LABELS, HAND_ATTENTION)
    )
    generator = torch.Generator().manual_seed(0)
    m, d, k = 5, 8, 4
    random = (
        torch.randn(m, d, generator=generator),
        torch.randn(k, d, generator=generator),
        torch.tensor([3, 0, 3, 1, 1]),
        torch.rand(m, d, generator=generator),
    )
    return [hand, random]


@checker
def check_sparse_center_loss(function: Callable) -> None:
    """sparse_center_loss(features, centres, labels, attention) -> 1/(2m) sum a (x - c_y)^2."""
    cases = _loss_cases()
    for features, centres, labels, attention in cases:
        centres = centres.clone().requires_grad_(True)
        got = call(
            function,
            features.clone(),
            centres,
            labels.clone(),
            attention.clone(),
            name="sparse_center_loss",
        )
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(
                f"return a torch tensor, not a {type(got).__name__}: .item() or float() "
                "cut the gradient that must reach the centres"
            )
        if got.ndim != 0:
            raise ExerciseError(
                f"the loss must be one number for the whole batch, got shape {tuple(got.shape)}: "
                "sum over the images and the features"
            )
        expected = sparse_center_loss(features, centres.detach(), labels, attention)
        _diagnose_loss(float(got.detach()), features, centres.detach(), labels, attention)
        expect_close(got, expected, f"sparse center loss of {len(labels)} images", atol=1e-5)
        if not got.requires_grad:
            raise ExerciseError("the loss has no gradient: build it from the tensors with torch")
        got.backward()
        if centres.grad is None or not torch.any(centres.grad != 0):
            raise ExerciseError("no gradient reached the centres: use them through centres[labels]")
    passed("sparse center loss", len(cases))


def _diagnose_loss(
    got: float,
    x: torch.Tensor,
    centres: torch.Tensor,
    labels: torch.Tensor,
    a: torch.Tensor,
) -> None:
    m = len(labels)
    total = (a * (x - centres[labels]) ** 2).sum().item()
    if abs(got - total / (2 * m)) < 1e-5:
        return
    by_position = centres[torch.arange(m) % len(centres)]
    hints = [
        (
            total / m,
            "you divided by m; the loss has 1/(2m): the 1/2 cancels the 2 of the "
            "square's derivative, so the gradient is a_ij (x_ij - c_j)",
        ),
        (
            total / 2,
            "divide by 2m, not by 2: the batch size m too, so the loss is a mean "
            "over the images and does not grow with the batch",
        ),
        (total, "divide the sum by 2m (m images in the batch)"),
        (
            total / (2 * m * x.shape[1]),
            "sum over the features; divide by 2m only, not by the number of features too",
        ),
        (
            ((x - centres[labels]) ** 2).sum().item() / (2 * m),
            "you left out the attention: "
            "multiply each squared difference (x_ij - c_j)^2 by its weight a_ij",
        ),
        (
            ((a * (x - centres[labels])) ** 2).sum().item() / (2 * m),
            "weight the SQUARED difference: a_ij (x_ij - c_j)^2, not (a_ij (x_ij - c_j))^2",
        ),
        (
            (a * (x - by_position) ** 2).sum().item() / (2 * m),
            "image i needs the centre of ITS class, centres[labels], not the i-th centre",
        ),
    ]
    for wrong, hint in hints:
        if abs(got - wrong) < 1e-5:
            raise ExerciseError(f"{m} images: {hint}")


@checker
def check_attention_heads(function: Callable) -> None:
    """attention_weights(head_scores (B, 2d)) -> (B, d): softmax per pair, second value."""
    generator = torch.Generator().manual_seed(1)
    cases = [
        torch.tensor([[0.0, 0.0, 2.0, 0.0, 0.0, 3.0]]),  # 3 features: 1/2, 1/(1+e^2), 1/(1+e^-3)
        3 * torch.randn(4, 2 * 512, generator=generator),
    ]
    for scores in cases:
        b, d = scores.shape[0], scores.shape[1] // 2
        got = call(function, scores.clone(), name="attention_weights")
        got = torch.as_tensor(got)
        if tuple(got.shape) != (b, d):
            raise ExerciseError(
                f"scores of shape {tuple(scores.shape)} need {d} weights per image, shape "
                f"({b}, {d}); got {tuple(got.shape)}: reshape to (batch, {d}, 2) and keep one "
                "probability of each pair"
            )
        expected = attention_from_heads(scores, d)
        _diagnose_heads(got, scores, expected)
        expect_close(got, expected, f"attention weights of {b} image(s), {d} features")
    passed("attention heads", len(cases))


def _diagnose_heads(got: torch.Tensor, scores: torch.Tensor, expected: torch.Tensor) -> None:
    b, d = expected.shape
    if torch.allclose(got, expected, atol=1e-6):
        return
    pairs = scores.reshape(b, d, 2)
    hints = [
        (
            1 - expected,
            "that is the first probability of each pair; keep the second, index 1 "
            "(the DACL code's 'attend' output)",
        ),
        (
            scores.reshape(b, 2, d).softmax(dim=1)[:, 1],
            "scores 2j and 2j+1 belong to feature j: reshape to (batch, d, 2), not (batch, 2, d)",
        ),
        (
            pairs.softmax(dim=1)[..., 1],
            "take the softmax over each pair (the last axis, of size 2), not across the features",
        ),
        (
            torch.sigmoid(scores[:, 1::2]),
            "a softmax over the pair uses both scores: "
            "sigmoid(s_2j+1 - s_2j), not sigmoid(s_2j+1) alone",
        ),
    ]
    for wrong, hint in hints:
        if torch.allclose(got, wrong, atol=1e-6):
            raise ExerciseError(hint)
