"""The figures the notebooks draw, defined once.

Functions return the matplotlib Figure; a notebook shows it, and saves it
under figures/ only when it shows no FER2013 face (faces never leave the
user's copy of the data).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .data import FaceSplit
from .labels import EMOTIONS


def sample_grid(
    split: FaceSplit,
    per_class: int = 8,
    seed: int = 0,
    classes: Sequence[str] = EMOTIONS,
    title: str | None = None,
) -> Figure:
    """A grid of random faces: one row per class, `per_class` columns."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 1.0), squeeze=False
    )
    for row, name in enumerate(classes):
        index = np.flatnonzero(split.labels == EMOTIONS.index(name))
        chosen = rng.choice(index, size=min(per_class, len(index)), replace=False)
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(chosen):
                ax.imshow(split.images[chosen[col]], cmap="gray", vmin=0, vmax=255)
            else:
                ax.axis("off")
        axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center")
    fig.suptitle(title or f"{split.name}: {per_class} random faces per class")
    fig.tight_layout()
    return fig


def class_histograms(counts: pd.DataFrame, title: str = "Images per class") -> Figure:
    """One bar chart per split of images per class (counts: rows classes, columns splits).

    A 'total' row, as FaceData.counts() adds, is left out.
    """
    counts = counts.drop(index="total", errors="ignore")
    splits = list(counts.columns)
    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 3.6), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        values = counts[split]
        bars = ax.bar(counts.index, values, color="tab:blue")
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=8)
        ax.set_title(f"{split} ({values.sum():,} images)")
        ax.set_ylabel("images")
        ax.tick_params(axis="x", rotation=45)
        ax.margins(y=0.15)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_shares(counts: pd.DataFrame, title: str = "Share of each class per split") -> Figure:
    """Grouped bars of each class's share (%) per split: are the splits distributed alike?"""
    counts = counts.drop(index="total", errors="ignore")
    shares = 100 * counts / counts.sum()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    shares.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("% of the split")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def training_curves(history: dict[str, list[float]], title: str = "Training") -> Figure:
    """Loss and accuracy per epoch, training and validation side by side."""
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        loss_ax.plot(epochs, history[key], marker="o", label=label)
    for key, label in (("train_acc", "train"), ("val_acc", "validation")):
        acc_ax.plot(epochs, 100 * np.asarray(history[key]), marker="o", label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss (cross-entropy)", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_heatmap(
    cm: np.ndarray,
    class_names: Sequence[str],
    normalize: bool = False,
    title: str = "Confusion matrix",
) -> Figure:
    """Rows are the true class, columns the predicted one; normalize=True shows row %."""
    import seaborn as sns

    cm = np.asarray(cm)
    values = 100 * cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    size = 1.0 + 0.8 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(
        values,
        annot=True,
        fmt=".1f" if normalize else "d",
        cmap="Blues",
        xticklabels=class_names,
        yticklabels=class_names,
        ax=ax,
        cbar_kws={"label": "% of the true class" if normalize else "images"},
    )
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.tight_layout()
    return fig


def prediction_grid(
    images: np.ndarray,
    true: Sequence[int],
    predicted: Sequence[int],
    class_names: Sequence[str],
    probabilities: np.ndarray | None = None,
    columns: int = 8,
    title: str = "Predictions",
) -> Figure:
    """Faces with their predicted (and true) labels; wrong ones in red.

    images: uint8 (N, 48, 48), or model inputs (N, C, 48, 48) in [-1, 1].
    """
    images = np.asarray(images)
    if images.ndim == 4:  # model input: first channel, back to 0..255
        images = (images[:, 0] + 1) * 127.5
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.55), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        label = class_names[predicted[i]]
        if probabilities is not None:
            label += f" {100 * probabilities[i][predicted[i]]:.0f}%"
        right = predicted[i] == true[i]
        ax.set_title(
            label if right else f"{label}\n(true: {class_names[true[i]]})",
            fontsize=8,
            color="black" if right else "red",
        )
    fig.suptitle(title)
    fig.tight_layout()
    return fig
