"""The objectives a model trains with, beside plain cross-entropy.

- class_weights: one weight per class for a class-weighted cross-entropy (notebook 08);
- sparse_center_loss, SparseCenterLoss: the (sparse) center loss with learned class
  centres, L_SC = 1/(2m) sum_i sum_j a_ij (x_ij - c_{y_i, j})^2 over a batch of m;
- DACLLoss: DACL's total loss, L = cross-entropy + lambda * L_SC (notebook 10).

DACLLoss is an objective with parts: fit (train.py) calls it with all of DACLNet's
outputs and the labels, and records its parts, the cross-entropy and L_SC, per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import DataError, FerError
from .models import FEATURES

LAMBDA = 0.01
"""Weight of the sparse center loss in DACL's total loss (the paper's and Report 2's value)."""

SCHEMES: tuple[str, ...] = ("inverse", "sqrt")
"""Class-weight schemes of class_weights."""


def class_weights(counts: Sequence[int] | np.ndarray, scheme: str = "inverse") -> np.ndarray:
    """One loss weight per class from the images per class, n_c.

    "inverse" (the usual "balanced" weights, as in scikit-learn's
    compute_class_weight("balanced")): w_c = N / (k * n_c), with N images in all
    and k classes. A class with the average size N / k gets weight 1, a class
    ten times rarer weight 10; the weighted number of images, sum_c w_c * n_c,
    is N again, so the loss keeps its usual scale. "sqrt": the square root of
    those weights, a milder correction.

    Raises DataError when a class has no images (it cannot be weighted up).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or len(counts) == 0:
        raise ValueError(f"counts must be one number per class, got shape {counts.shape}")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")
    if (counts <= 0).any():
        empty = int(np.flatnonzero(counts <= 0)[0])
        raise DataError(
            f"class {empty} has {counts[empty]:g} images: every class needs at least one "
            "image to get a weight"
        )
    weights = counts.sum() / (len(counts) * counts)
    return np.sqrt(weights) if scheme == "sqrt" else weights


def sparse_center_loss(
    features: torch.Tensor,
    centres: torch.Tensor,
    labels: torch.Tensor,
    attention: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_SC = 1/(2m) sum_i sum_j a_ij (x_ij - c_{y_i, j})^2 for a batch of m.

    features (m, d), centres (classes, d), labels (m,), attention (m, d) or None for
    plain center loss (every a_ij = 1): 1/(2m) sum_i ||x_i - c_{y_i}||^2.
    """
    squared = (features - centres[labels]) ** 2  # each image against its own class's centre
    if attention is not None:
        squared = attention * squared
    return squared.sum() / (2 * features.shape[0])


class SparseCenterLoss(nn.Module):
    """Sparse center loss with learned class centres (an nn.Parameter, classes x features).

    The centres start random (Kaiming-normal, as in the DACL code) and move towards
    the features of their class as training goes.
    """

    def __init__(self, num_classes: int, feat_dim: int = FEATURES) -> None:
        super().__init__()
        self.centres = nn.Parameter(torch.empty(num_classes, feat_dim))
        nn.init.kaiming_normal_(self.centres.data.t())

    def forward(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        attention: torch.Tensor | None = None,
        centre_grad_scale: float = 1.0,
    ) -> torch.Tensor:
        """L_SC of a batch. centre_grad_scale multiplies the gradient the centres get
        (not the value, nor any other gradient)."""
        if features.shape[1:] != self.centres.shape[1:]:
            raise FerError(
                f"features have shape {tuple(features.shape)}; the centres expect "
                f"(batch, {self.centres.shape[1]})"
            )
        centres = self.centres
        if centre_grad_scale != 1.0:
            # the same values (c + 0), but d/dc is centre_grad_scale
            centres = centres.detach() + (centres - centres.detach()) * centre_grad_scale
        return sparse_center_loss(features, centres, labels, attention)


class DACLLoss(nn.Module):
    """Total loss L = cross-entropy + lam * sparse center loss; returns (L, CE, L_SC).

    plain=True ignores the attention (every weight 1): the classic center loss.
    lam=0 gives cross-entropy alone (L_SC is still returned, to watch it).
    The class centres learn at their own pace: their gradient is that of L_SC, not of
    lam * L_SC (as the DACL code divides it by lambda), so a centre optimizer's learning
    rate means the same whatever lam is. The network's gradients are those of L.
    """

    part_names = ("ce", "sc")  # fit records train_ce and train_sc per epoch

    def __init__(
        self,
        num_classes: int = 7,
        feat_dim: int = FEATURES,
        lam: float = LAMBDA,
        plain: bool = False,
    ) -> None:
        super().__init__()
        if lam < 0:
            raise ValueError(f"lam must be 0 or more, not {lam}")
        self.center_loss = SparseCenterLoss(num_classes, feat_dim)
        self.lam = lam
        self.plain = plain

    def forward(
        self,
        logits: torch.Tensor,
        features: torch.Tensor,
        attention: torch.Tensor,
        labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ce = F.cross_entropy(logits, labels)
        attention = None if self.plain else attention
        scale = 1.0 / self.lam if self.lam > 0 else 1.0
        sc = self.center_loss(features, labels, attention, centre_grad_scale=scale)
        if self.lam == 0:
            return ce, ce, sc.detach()  # no gradient from L_SC at all
        return ce + self.lam * sc, ce, sc
