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
