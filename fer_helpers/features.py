"""Feature maps: what the convolution layers of a trained network respond to.

A *forward hook* is a function PyTorch calls right after a module's forward,
as hook(module, inputs, output). Registered on `model.conv1`, it can keep
conv1's output while the model runs as usual:

    with record_activations(model, ["conv1", "act1"]) as maps:
        model(x)
    maps["conv1"]                    # (batch, conv1's channels, 48, 48): 64 in the course's

The hooks are removed when the block ends, even after an error, so later
forward passes run as before. capture_activations does all of it in one call.

SI100FaceNet's blocks are conv -> max-pool -> LeakyReLU. A convolution keeps
the size and the pooling halves it, so for a 48x48 face the conv outputs are
48, 24 and 12 pixels wide, and the block outputs (after pool and LeakyReLU)
24, 12 and 6.

Then: the mean activation of every channel per emotion
(class_mean_activations), how specific a channel is to one emotion
(specificity, top_channels), and figures of feature maps. A feature map of a
face is derived from the face: show such figures, never save them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from .errors import DataError, FerError
from .labels import EMOTIONS
from .models import check_input
from .plots import styled

BLOCKS: tuple[tuple[str, str, str], ...] = (
    ("conv1", "pool1", "act1"),
    ("conv2", "pool2", "act2"),
    ("conv3", "pool3", "act3"),
)
"""SI100FaceNet's three blocks by layer name: convolution, max-pool, LeakyReLU."""

CONV_LAYERS: tuple[str, ...] = tuple(conv for conv, _, _ in BLOCKS)
BLOCK_OUTPUTS: tuple[str, ...] = tuple(act for _, _, act in BLOCKS)
"""The layers whose outputs the next block sees: 24, 12 and 6 pixels for a 48x48 face."""


# --- capturing activations ---------------------------------------------------------------------


def conv_layer_names(model: nn.Module) -> list[str]:
    """Names of the model's convolution layers, in the order they were defined."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


@contextmanager
def record_activations(
    model: nn.Module, layers: Sequence[str]
) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the `with` block, every forward pass stores the outputs of the named layers.

    Yields a dict, filled by forward hooks: layer name -> output (detached, on the
    CPU). The hooks are removed when the block ends, even after an error.
    """
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name not in modules]
    if unknown:
        known = ", ".join(name for name, m in modules.items() if name and not _does_nothing(m))
        raise FerError(
            f"no layer named {', '.join(map(repr, unknown))} in the model: it has {known}"
        )
    activations: dict[str, torch.Tensor] = {}
    handles = [
        modules[name].register_forward_hook(_keep_output(activations, name)) for name in layers
    ]
    try:
        yield activations
    finally:
        for handle in handles:
            handle.remove()


def _keep_output(store: dict[str, torch.Tensor], name: str) -> Callable:
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        # A detached copy: a later in-place layer (ReLU(inplace=True)) cannot change it,
        # and it holds no autograd graph.
        store[name] = output.detach().to("cpu", copy=True)

    return hook


def capture_activations(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """The outputs of the named layers for a batch x: one forward pass, no gradients.

    x goes to the model's device; the activations come back on the CPU, in the
    order of `layers`. Put the model in eval mode first (trained models load so).
    A batch of other channels or another size than the model takes is a FerError.
    """
    check_input(model, x)
    device = next(model.parameters()).device
    with record_activations(model, layers) as activations, torch.no_grad():
        model(x.to(device))
    missing = [name for name in layers if name not in activations]
    if missing:
        raise FerError(f"layers {missing} exist but the model's forward never ran them")
    return {name: activations[name] for name in layers}


# --- which channels respond to which emotion ---------------------------------------------------


def channel_means(maps: torch.Tensor) -> torch.Tensor:
    """Mean activation of every channel: (..., C, H, W) -> (..., C), averaged over the pixels."""
    return maps.mean(dim=(-2, -1))


def class_mean_activations(
    model: nn.Module, loader: Iterable, layers: Sequence[str], num_classes: int
) -> dict[str, np.ndarray]:
    """Mean activation of every channel per class, over all images a loader gives.

    For each image a channel's map is averaged over its pixels; these means are
    then averaged over the images of each class. Returns, per layer, an array
    (num_classes, channels); a class without images gets a row of nan.
    """
    sums: dict[str, torch.Tensor] = {}
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for x, y in loader:
        one_hot = F.one_hot(torch.as_tensor(y).long().cpu(), num_classes).double()  # (B, K)
        counts += one_hot.sum(dim=0)
        for name, maps in capture_activations(model, x, layers).items():
            per_class = one_hot.T @ channel_means(maps).double()  # (K, C): sums per class
            sums[name] = per_class + sums[name] if name in sums else per_class
    if not sums:
        raise FerError("the loader gave no images")
    return {name: (total / counts[:, None]).numpy() for name, total in sums.items()}


def specificity(response: np.ndarray) -> np.ndarray:
    """How much more each channel responds to each class than to the other classes.

    response: mean activations (classes, channels). Entry (k, c) of the result is
    response[k, c] minus the mean of response[j, c] over the other classes j != k.
    Positive: channel c responds more to class k than to the others on average.
    """
    response = np.asarray(response, dtype=np.float64)
    k = response.shape[0]
    if response.ndim != 2 or k < 2:
        raise ValueError(f"expected (classes, channels) with 2+ classes, got {response.shape}")
    others = (response.sum(axis=0, keepdims=True) - response) / (k - 1)
    return response - others


def top_channels(
    response: np.ndarray, k: int = 3, by: str = "mean", class_names: Sequence[str] = EMOTIONS
) -> pd.DataFrame:
    """The k channels that respond most to each class, ranked by "mean" or "specificity".

    response: mean activations (classes, channels), as class_mean_activations
    gives. One row per class and rank, with the channel's mean activation for
    the class and its specificity (mean for the class minus mean over the others).
    """
    if by not in ("mean", "specificity"):
        raise ValueError(f"by must be 'mean' or 'specificity', not {by!r}")
    response = np.asarray(response, dtype=np.float64)
    if len(class_names) != len(response):
        raise ValueError(f"{len(class_names)} class names for {len(response)} rows of response")
    specific = specificity(response)
    scores = response if by == "mean" else specific
    rows = []
    for row, name in enumerate(class_names):
        for rank, channel in enumerate(np.argsort(-scores[row], kind="stable")[:k], start=1):
            rows.append((name, rank, int(channel), response[row, channel], specific[row, channel]))
    return pd.DataFrame(rows, columns=["class", "rank", "channel", "mean", "specificity"])


def confident_examples(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """For each class, the position of one image of it: the one the model is surest of.

    Among the images of class c that the model classifies as c, the one with the
    highest probability for c. If it gets none of them right: the image of class
    c with the highest probability for c. Raises DataError for a class without images.
    """
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    predicted = probs.argmax(axis=1)
    chosen = []
    for c in range(probs.shape[1]):
        of_class = np.flatnonzero(y_true == c)
        if len(of_class) == 0:
            raise DataError(f"class {c} has no images to choose an example from")
        right = of_class[predicted[of_class] == c]
        candidates = right if len(right) else of_class
        chosen.append(candidates[np.argmax(probs[candidates, c])])
    return np.array(chosen, dtype=np.int64)


# --- figures -----------------------------------------------------------------------------------


@styled
def feature_grid(
    maps: torch.Tensor | np.ndarray,
    channels: Sequence[int] | None = None,
    columns: int = 8,
    title: str | None = None,
) -> Figure:
    """The feature maps (C, H, W) of one image as a grid, one numbered panel per channel.

    All panels share one colour scale, so a bright panel is a channel that
    responds strongly to this image, a dark one a channel that stays quiet.
    """
    maps = np.asarray(maps)
    channels = list(range(len(maps))) if channels is None else list(channels)
    rows = -(-len(channels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.2), squeeze=False)
    low, high = maps[channels].min(), maps[channels].max()
    for ax in axes.flat:
        ax.axis("off")
    for ax, channel in zip(axes.flat, channels):
        ax.imshow(maps[channel], cmap="magma", vmin=low, vmax=high)
        ax.set_title(f"#{channel}", fontsize=8)
    height, width = maps.shape[1:]
    fig.suptitle(title or f"{len(channels)} channels, {height}x{width} pixels each")
    _place_grid(fig, left=0.1, top=0.6, bottom=0.05)
    return fig


@styled
def trace_grid(
    faces: np.ndarray, activations: Mapping[str, torch.Tensor], row_names: Sequence[str]
) -> Figure:
    """One row per face: the face, then each block's conv output and block output.

    faces: uint8 (N, 48, 48); activations: every name of BLOCKS' conv and act
    layers -> (N, C, H, W). Each block shows the channel whose block output is
    the most active for that face, the same channel before and after pooling.
    Every panel has its own colour scale; its size in pixels is in the header.
    """
    columns = ["input"] + [name for conv, _, act in BLOCKS for name in (conv, act)]
    fig, axes = plt.subplots(
        len(faces), len(columns), figsize=(1.45 * len(columns), 1.5 * len(faces)), squeeze=False
    )
    for row, face in enumerate(faces):
        axes[row, 0].imshow(face, cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_ylabel(row_names[row], rotation=0, ha="right", va="center")
        for block, (conv, _, act) in enumerate(BLOCKS):
            channel = int(channel_means(activations[act][row]).argmax())
            for col, name in ((1 + 2 * block, conv), (2 + 2 * block, act)):
                axes[row, col].imshow(np.asarray(activations[name][row, channel]), cmap="magma")
                axes[row, col].set_xlabel(f"#{channel}", fontsize=8, labelpad=1)
    for col, name in enumerate(columns):
        side = faces.shape[-1] if name == "input" else activations[name].shape[-1]
        axes[0, col].set_title(f"{name}\n{side}x{side}", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("One face per emotion through the network (channel: the block's most active)")
    _place_grid(fig, left=0.9, top=0.8, bottom=0.25)
    return fig


@styled
def emotion_grid(
    faces: np.ndarray,
    maps: torch.Tensor | np.ndarray,
    channels: Sequence[int],
    row_names: Sequence[str],
    title: str,
    mark_diagonal: bool = False,
) -> Figure:
    """Rows: one face per emotion; columns: the face, then the same channels for every face.

    maps: (N, C, H, W) of one layer. Each column shares one colour scale, so
    down a column you see which faces make that channel light up.
    mark_diagonal=True when channel k was chosen for row k: it frames those
    panels and names the row's emotion above each column.
    """
    maps = np.asarray(maps)
    fig, axes = plt.subplots(
        len(faces),
        len(channels) + 1,
        figsize=(1.15 * (len(channels) + 1), 1.2 * len(faces) + 0.2),
        squeeze=False,
    )
    for row, face in enumerate(faces):
        axes[row, 0].imshow(face, cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_ylabel(row_names[row], rotation=0, ha="right", va="center")
    for col, channel in enumerate(channels, start=1):
        column = maps[:, channel]
        for row in range(len(faces)):
            axes[row, col].imshow(column[row], cmap="magma", vmin=column.min(), vmax=column.max())
        header = f"#{channel}\n{row_names[col - 1]}" if mark_diagonal else f"#{channel}"
        axes[0, col].set_title(header, fontsize=9)
        if mark_diagonal:
            for side in axes[col - 1, col].spines.values():
                side.set(color="tab:orange", linewidth=3)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    _place_grid(fig, left=0.9, top=0.85 if mark_diagonal else 0.65, bottom=0.05)
    return fig


def _place_grid(fig: Figure, left: float, top: float, bottom: float) -> None:
    """Margins in inches; tight_layout would take about a second on a grid of many panels."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width,
        right=1 - 0.05 / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=0.15,
        hspace=0.4,
    )


@styled
def channel_response_map(
    responses: Mapping[str, np.ndarray], class_names: Sequence[str] = EMOTIONS, title: str = ""
) -> Figure:
    """Heatmaps of specificity, one per layer: rows classes, columns channels.

    responses: layer -> mean activations (classes, channels). Channels are sorted
    by the class they prefer (their largest specificity), so a class's own
    channels sit together: red where a channel responds more to that class than
    to the others, blue where less. Shows no face: safe to save.
    """
    fig, axes = plt.subplots(len(responses), 1, figsize=(10, 2.1 * len(responses)), squeeze=False)
    for ax, (layer, response) in zip(axes[:, 0], responses.items()):
        specific = specificity(response)
        order = np.lexsort((-specific.max(axis=0), specific.argmax(axis=0)))
        limit = np.abs(specific).max() or 1.0
        image = ax.imshow(specific[:, order], aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
        ax.set_xticks([])
        ax.set_title(f"{layer}: {specific.shape[1]} channels, sorted by the class they prefer")
        fig.colorbar(image, ax=ax, pad=0.01, label="specificity")
    fig.suptitle(title or "How much more each channel responds to a class than to the others")
    fig.tight_layout()
    return fig


@styled
def channel_panel(
    face: np.ndarray,
    maps: torch.Tensor | np.ndarray,
    channel: int,
    response: np.ndarray,
    label: int,
    layer: str,
    class_names: Sequence[str] = EMOTIONS,
) -> Figure:
    """One face, one channel's map of it, and that channel's mean response per class.

    maps: (C, H, W) of the face at `layer`; response: (classes, C) mean
    activations over many images; label: the face's class, drawn in colour.
    """
    maps = np.asarray(maps)
    fig, (face_ax, map_ax, bar_ax) = plt.subplots(
        1, 3, figsize=(10, 3), gridspec_kw={"width_ratios": [1, 1, 1.8]}
    )
    face_ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    face_ax.set_title(f"face ({class_names[label]})")
    shown = map_ax.imshow(maps[channel], cmap="magma")
    fig.colorbar(shown, ax=map_ax, fraction=0.046)
    side = maps.shape[-1]
    map_ax.set_title(f"{layer} #{channel}: {side}x{side}")
    for ax in (face_ax, map_ax):
        ax.set_xticks([])
        ax.set_yticks([])
    colors = ["tab:orange" if k == label else "tab:gray" for k in range(len(class_names))]
    bar_ax.bar(class_names, response[:, channel], color=colors)
    bar_ax.tick_params(axis="x", rotation=45)
    bar_ax.set_title(f"#{channel}: mean activation per class")
    fig.tight_layout()
    return fig


def _does_nothing(module: nn.Module) -> bool:
    """Placeholders of switched-off options (SI100FaceNet without batch norm or dropout)."""
    return isinstance(module, nn.Identity) or (isinstance(module, nn.Dropout) and module.p == 0)
