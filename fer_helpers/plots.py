"""The figures the notebooks draw, defined once, in a style made for a projector.

Functions return the matplotlib Figure; a notebook shows it, and saves it
under figures/ only when it shows no FER2013 face (faces never leave the
user's copy of the data).

The course's style (COURSE_STYLE) has type large enough to read from the back of
a classroom, thick lines, figures sized for a 16:9 slide and a resolution that
stays sharp when a browser scales the picture to the slide. Importing this
module applies it to every figure the notebook draws afterwards (its own
`plt.subplots` too); each helper here also draws inside `course_style()`, so its
figures keep the style whatever the notebook changed since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .data import FaceSplit
from .labels import EMOTIONS

# A 16:9 slide, in inches: at the style's type sizes the text then reads like the
# slide's own text. Helpers keep their figures within it where the content allows.
SLIDE_SIZE = (10.0, 5.6)

COURSE_STYLE: dict[str, Any] = {
    "figure.figsize": SLIDE_SIZE,
    # 144 dpi: a slide-wide figure is 1440 pixels, so browsers scale it down to the
    # slide (sharp) rather than up (blurred), on a projector as on a laptop screen.
    "figure.dpi": 144,
    "savefig.dpi": 144,
    "font.size": 15,
    "axes.titlesize": 18,
    "figure.titlesize": 18,
    "axes.labelsize": 16,
    "xtick.labelsize": 14,
    "ytick.labelsize": 14,
    "legend.fontsize": 14,
    "legend.title_fontsize": 15,
    "lines.linewidth": 2.5,
    "lines.markersize": 8,
    "axes.linewidth": 1.2,
    "xtick.major.width": 1.2,
    "ytick.major.width": 1.2,
    "grid.linewidth": 1.0,
    "patch.linewidth": 1.2,
}

F = TypeVar("F", bound=Callable[..., Figure])


def use_course_style() -> None:
    """Apply COURSE_STYLE to every figure drawn from now on (each notebook calls it once).

    Importing this module changes nothing: the helpers below draw in the style anyway
    (styled), and a notebook's own figures take it after this call.
    """
    mpl.rcParams.update(COURSE_STYLE)


@contextmanager
def course_style() -> Iterator[None]:
    """Draw the figures made inside this `with` block in the course's style.

    Only the style is undone afterwards. Jupyter turns matplotlib's interactive mode on
    when a notebook makes its first figure; were that inside this block and undone with
    the style, no later figure of the notebook would show (nor reach the site).
    """
    interactive = mpl.is_interactive()
    try:
        with mpl.rc_context(COURSE_STYLE):
            try:
                yield
            finally:
                interactive = mpl.is_interactive()
    finally:
        mpl.interactive(interactive)


def styled(draw: F) -> F:
    """Decorator: the helper draws its figure in the course's style."""

    @wraps(draw)
    def in_style(*args: Any, **kwargs: Any) -> Figure:
        with course_style():
            return draw(*args, **kwargs)

    return in_style  # type: ignore[return-value]


@styled
def sample_grid(
    split: FaceSplit,
    per_class: int = 8,
    seed: int = 0,
    classes: Sequence[str] = EMOTIONS,
    title: str | None = None,
) -> Figure:
    """A grid of random faces: one row per class, `per_class` columns."""
    rng = np.random.default_rng(seed)
    side = min(0.85, (SLIDE_SIZE[1] + 1.0) / len(classes))  # inches per face
    fig, axes = plt.subplots(
        len(classes),
        per_class,
        figsize=(side * per_class + 1.4, side * len(classes) + 0.7),
        squeeze=False,
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


@styled
def class_histograms(counts: pd.DataFrame, title: str = "Images per class") -> Figure:
    """One bar chart per split of images per class (counts: rows classes, columns splits).

    A 'total' row, as FaceData.counts() adds, is left out.
    """
    counts = counts.drop(index="total", errors="ignore")
    splits = list(counts.columns)
    width = min(SLIDE_SIZE[0] + 2, 5.0 * len(splits))
    fig, axes = plt.subplots(1, len(splits), figsize=(width, SLIDE_SIZE[1]), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        values = counts[split]
        bars = ax.bar(counts.index, values, color="tab:blue")
        # Upright numbers over narrow bars would run into each other: turn them.
        ax.bar_label(
            bars, labels=[f"{v:,}" for v in values], fontsize="small", rotation=90, padding=4
        )
        ax.set_title(f"{split} ({values.sum():,} images)")
        ax.set_ylabel("images")
        ax.tick_params(axis="x", rotation=60)
        ax.margins(y=0.3)  # room for the turned numbers
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@styled
def class_shares(counts: pd.DataFrame, title: str = "Share of each class per split") -> Figure:
    """Grouped bars of each class's share (%) per split: are the splits distributed alike?"""
    counts = counts.drop(index="total", errors="ignore")
    shares = 100 * counts / counts.sum()
    fig, ax = plt.subplots(figsize=SLIDE_SIZE)
    shares.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("% of the split")
    ax.set_title(title)
    fig.tight_layout()
    return fig


@styled
def training_curves(history: dict[str, list[float]], title: str = "Training") -> Figure:
    """Loss and accuracy per epoch, training and validation side by side."""
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=SLIDE_SIZE)
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        loss_ax.plot(epochs, history[key], marker="o", label=label)
    for key, label in (("train_acc", "train"), ("val_acc", "validation")):
        acc_ax.plot(epochs, 100 * np.asarray(history[key]), marker="o", label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss (cross-entropy)", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        if len(epochs) == 1:  # MaxNLocator would label a lone point 0.95 ... 1.05
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@styled
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
    size = min(3.0 + 0.5 * len(class_names), SLIDE_SIZE[1] + 1)
    fig, ax = plt.subplots(figsize=(size + 2.2, size))
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
    ax.tick_params(axis="y", rotation=0)  # class names read across, not up
    fig.tight_layout()
    return fig


@styled
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
    width = min(1.5, (SLIDE_SIZE[0] + 2) / columns)  # inches per face, two lines of title
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * width, rows * (width + 0.5) + 0.6), squeeze=False
    )
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
            fontsize="small",
            color="black" if right else "red",
        )
    fig.suptitle(title)
    fig.tight_layout()
    return fig
