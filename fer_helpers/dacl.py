"""Deep Attentive Center Loss (DACL, Farzaneh & Qi, WACV 2021), sized for 48x48 faces on a CPU.

    model = DACLNet(num_classes=7)                  # ResNet-18 + attention net
    logits, features, attention = model(x)          # (B, 7), (B, 512), (B, 512) in (0, 1)
    loss_fn = DACLLoss(num_classes=7, lam=0.01)     # cross-entropy + lambda * sparse center loss
    total, ce, sc = loss_fn(logits, features, attention, y)

The pieces:

- backbone: torchvision's ResNet-18, built with weights=None (nothing is downloaded),
  its stem adapted to 48x48 inputs (resnet18_48); global average pooling of its
  last feature map gives the 512 features x_i of an image, a linear layer the 7 scores;
- attention net (AttentionNet): a context encoder, three fully connected layers with
  3584, 512 and 64 outputs (batch norm and ReLU, a tanh at the end), on the flattened
  feature map, then one linear layer 64 -> 2 * 512: 512 two-way softmax heads, one
  per feature, whose second output is the attention weight a_ij in (0, 1);
- sparse center loss (sparse_center_loss, SparseCenterLoss): with learned class
  centres c_k, L_SC = 1/(2m) sum_i sum_j a_ij (x_ij - c_{y_i, j})^2 over a batch of m;
- total loss (DACLLoss): L = cross-entropy + lambda * L_SC, lambda = 0.01.

The network is in models.py (DACLNet, AttentionNet, resnet18_48), the losses in
losses.py (sparse_center_loss, SparseCenterLoss, DACLLoss); this module holds the
ablation of Report 2, which trains three VARIANTS: "softmax" (lambda = 0), "center"
(plain center loss: every a_ij = 1) and "dacl", each by the one training loop (train.fit)
through its recipe (variant_recipe).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from .bench import training_throughput
from .data import FaceData
from .errors import FerError
from .labels import EMOTIONS
from .losses import LAMBDA, DACLLoss
from .metrics import accuracy, balanced_accuracy
from .models import DACLNet, input_channels, input_size
from .paths import weights_path
from .plots import styled
from .recipes import TrainRecipe, recipe_optimizers, train_or_load

VARIANTS: dict[str, tuple[float, bool]] = {
    "softmax": (0.0, False),  # cross-entropy alone: lambda = 0
    "center": (LAMBDA, True),  # plain center loss: every attention weight is 1
    "dacl": (LAMBDA, False),  # sparse center loss weighted by the attention
}
"""The ablation's variants: name -> (lambda, plain)."""

VARIANT_OBJECTIVES = {"softmax": "cross_entropy", "center": "center", "dacl": "dacl"}
"""The recipe objective (recipes.OBJECTIVES) each variant trains with."""


# --- predictions -----------------------------------------------------------------------------


def predict_dacl(
    model: DACLNet, loader: Iterable, device: str | torch.device | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true labels, predicted labels, attention weights (N, 512)) over a loader, in eval mode."""
    device = next(model.parameters()).device if device is None else torch.device(device)
    model.to(device).eval()
    labels, predicted, weights = [], [], []
    with torch.inference_mode():
        for x, y in loader:
            logits, _, attention = model(x.to(device))
            labels.append(torch.as_tensor(y).cpu())
            predicted.append(logits.argmax(dim=1).cpu())
            weights.append(attention.cpu())
    if not labels:
        raise FerError("the loader gave no images to predict")
    as_numpy = [torch.cat(parts).numpy() for parts in (labels, predicted, weights)]
    return as_numpy[0].astype(np.int64), as_numpy[1].astype(np.int64), as_numpy[2]


# --- the ablation ----------------------------------------------------------------------------

REPORT_BALANCED_ACCURACY = {"softmax": 0.59, "center": 0.60, "dacl": 0.61}
"""Report 2's balanced accuracies (handout figures, 224x224 inputs, 60 + 30 epochs)."""


DACL_BACKBONE = "resnet18-7class"
"""The shipped network every variant starts from: ResNet18Faces trained on all seven classes
with cross-entropy alone (its model card has the command), as the paper's ResNet-18 had
learned faces before DACL trained it. The attention net and the classifier start fresh."""

DACL_EPOCHS = 3
"""Epochs of each variant, notebook 10's and `experiment dacl`'s alike."""

DACL_PER_CLASS = 1000
"""Training faces of each class for each variant (disgust has 436): the budget that lets
notebook 10 train the three variants in a class period."""


def variant_recipe(
    variant: str,
    epochs: int = DACL_EPOCHS,
    per_class: int | None = DACL_PER_CLASS,
    batch_size: int = 64,
    start_from: str | None = DACL_BACKBONE,
) -> TrainRecipe:
    """The recipe of one variant of the ablation: DACLNet on 7 classes, started from
    `start_from` (None: random weights), the paper's SGD (learning rate 0.01, momentum 0.9,
    weight decay 5e-4, 10 times lower after each third of the run), mirrored gray faces, the
    variant's objective, bfloat16 where the CPU has it; per_class caps the faces of each
    class to fit a time budget."""
    _variant(variant)
    return TrainRecipe(
        name=f"dacl-{variant}",
        arch="dacl",
        channels=1,
        epochs=epochs,
        batch_size=batch_size,
        optimizer="sgd",
        lr=0.01,
        weight_decay=5e-4,
        schedule="step",
        augment="flip",
        per_class=per_class,
        objective=VARIANT_OBJECTIVES[variant],
        channels_last=True,
        precision="auto",
        start_from=start_from,
    )


def train_variant(
    data: FaceData,
    variant: str,
    epochs: int = DACL_EPOCHS,
    per_class: int | None = DACL_PER_CLASS,
    batch_size: int = 64,
    seed: int = 0,
    retrain: bool = False,
    start_from: str | None = DACL_BACKBONE,
    **fit_kwargs: object,
) -> tuple[nn.Module, dict]:
    """Train one variant of the ablation (variant_recipe), or load it if that run is saved.

    Saved after every epoch as weights/dacl_<variant>.pth (plus the data tag), in the
    checkpoint format of every training: an interrupted run resumes, a run with other
    settings is trained again. Other keyword arguments (log_every, progress, device)
    go to fit. Returns (model in eval mode, checkpoint info with "history").
    """
    recipe = variant_recipe(variant, epochs, per_class, batch_size, start_from)
    path = weights_path(f"dacl_{variant}.pth", data.tag)
    return train_or_load(path, recipe, data, EMOTIONS, seed, retrain=retrain, **fit_kwargs)


def ablation_table(
    matrices: dict[str, np.ndarray], minutes: dict[str, float] | None = None
) -> pd.DataFrame:
    """One row per variant: lambda, attention, accuracy, balanced accuracy, Report 2's figure.

    matrices: validation confusion matrices by variant; minutes: training time by variant.
    """
    rows = {}
    for variant, cm in matrices.items():
        lam, plain = _variant(variant)
        rows[variant] = {
            "lambda": lam,
            "attention": "none" if lam == 0 else ("all 1" if plain else "learned"),
            "accuracy": accuracy(cm),
            "balanced accuracy": balanced_accuracy(cm),
            "Report 2 (bal. acc.)": REPORT_BALANCED_ACCURACY[variant],
        }
        if minutes is not None:
            rows[variant]["training minutes"] = minutes[variant]
    return pd.DataFrame.from_dict(rows, orient="index")


def training_speed(
    model: DACLNet, loss_fn: DACLLoss, batch_size: int = 64, batches: int = 3
) -> float:
    """Images per second of DACL training steps on random faces, through the one training
    loop (train.fit) with the "dacl" variant's optimizers (the model's SGD and the class
    centres' own), memory layout and number format.

    The faces have the channels and the size the model takes; one step first warms up,
    untimed. The model's weights and the loss's centres change.
    """
    recipe = variant_recipe("dacl", start_from=None)
    side, channels = input_size(model), input_channels(model)
    classes = loss_fn.center_loss.centres.shape[0]
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, channels, side, side, generator=generator) * 2 - 1
    faces = [(x, torch.arange(batch_size) % classes)]  # every class, as far as the batch goes
    settings = {
        "device": next(model.parameters()).device,
        "channels_last": recipe.channels_last,
        "precision": recipe.precision,
    }
    training = (model, loss_fn, recipe_optimizers(recipe, model, loss_fn))
    return training_throughput(training, faces, batches, settings, warmup=1)


def attention_similarity(
    attention: np.ndarray, labels: np.ndarray, permutations: int = 200, seed: int = 0
) -> dict[str, float]:
    """Are the attention weights of faces of one class more alike than those of different
    classes, by more than chance?

    Each face's weights minus the mean over all faces (so that features every face attends
    to do not make all pairs alike), then the correlation of every pair of faces. Returns
    "within" (the mean over pairs of one class), "between" (over pairs of two classes), their
    difference, and "p": the share of `permutations` random shufflings of the labels whose
    difference is at least as large (a permutation test: small p, a real pattern).
    """
    attention, labels = np.asarray(attention, dtype=np.float64), np.asarray(labels)
    if len(attention) != len(labels) or len(np.unique(labels)) < 2:
        raise FerError("attention_similarity needs one label per face and at least 2 classes")
    corr = np.corrcoef(attention - attention.mean(axis=0))
    off_diagonal = ~np.eye(len(labels), dtype=bool)

    def difference(y: np.ndarray) -> tuple[float, float]:
        same = y[:, None] == y[None, :]
        return corr[same & off_diagonal].mean(), corr[~same].mean()

    within, between = difference(labels)
    rng = np.random.default_rng(seed)
    shuffled = [np.subtract(*difference(rng.permutation(labels))) for _ in range(permutations)]
    at_least = sum(d >= within - between for d in shuffled)
    return {
        "within": float(within),
        "between": float(between),
        "difference": float(within - between),
        "p": (at_least + 1) / (permutations + 1),  # the observed labels count as one shuffle
    }


# --- the figure ------------------------------------------------------------------------------


@styled
def plot_attention_by_class(
    attention: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] = EMOTIONS,
    per_class: int = 6,
    title: str = "DACL attention weights",
) -> Figure:
    """One panel per class: the 512 attention weights of its first `per_class` images.

    Each row of a panel is one image, each column one feature; similar rows within a
    panel mean that images of one class attend to the same features.
    """
    classes = [k for k in range(len(class_names)) if (labels == k).any()]
    shown = np.concatenate([attention[np.flatnonzero(labels == k)[:per_class]] for k in classes])
    low, high = np.percentile(shown, [1, 99])  # the colours span the weights shown
    fig, axes = plt.subplots(
        len(classes), 1, figsize=(10, 1.1 * len(classes) + 0.8), squeeze=False, sharex=True
    )
    for ax, k in zip(axes[:, 0], classes, strict=True):
        rows = attention[np.flatnonzero(labels == k)[:per_class]]
        image = ax.imshow(
            rows, aspect="auto", cmap="viridis", vmin=low, vmax=high, interpolation="nearest"
        )
        ax.set_yticks([])
        ax.set_ylabel(f"{class_names[k]}\n({len(rows)})", rotation=0, ha="right", va="center")
    axes[-1, 0].set_xlabel("feature j (0..511)")
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="a_ij", fraction=0.02, pad=0.01)
    fig.suptitle(title)
    return fig


def _variant(variant: str) -> tuple[float, bool]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    return VARIANTS[variant]
