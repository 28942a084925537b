"""Notebook 14: the course's network and the reports' networks, one recipe, the same faces.

    model, info = train_contender("si100", data, epochs=3)  # or loaded if saved
    cm = validation_confusion(model, data)
    table = comparison_table({"si100": comparison_row(model, info, cm)})

The contenders: SI100FaceNet (the course), ConvNet 5 (Report 1), ResNet-9 (Report 3)
and DACL's ResNet-18 with its attention net and sparse center loss (Report 2). All
of them see the same training faces in the same order, with the same augmentation
(mirroring), batch size, optimizer and learning-rate schedule: what differs is the
network (and, for DACL, its loss) and the number of epochs: contender_recipe. They train in
the one training loop (train.fit), so their seconds per epoch compare like with like.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .data import FaceData, FaceLoader
from .errors import FerError
from .inference import predict
from .labels import EMOTIONS
from .metrics import (
    accuracy,
    balanced_accuracy,
    bootstrap_interval,
    confusion_matrix,
    wilson_interval,
)
from .models import build_model, count_parameters, input_channels, input_size
from .paths import weights_path
from .plots import styled
from .recipes import TrainRecipe, train_or_load

CONTENDERS: dict[str, str] = {
    "si100": "SI100FaceNet (the course)",
    "convnet5": "ConvNet 5 (Report 1)",
    "resnet9": "ResNet-9 (Report 3)",
    "dacl": "DACL ResNet-18 (Report 2)",
}
"""The networks compared, by name, with the report each comes from."""


FULL_EPOCHS: dict[str, int] = {"si100": 12, "convnet5": 30, "resnet9": 4, "dacl": 5}
"""Each contender's budget for `experiment comparison`, in epochs over all the training faces.
The cheap networks get as many as their validation accuracy kept rising: ConvNet 5 (Dropout2d
0.4 after every block) still underfit after 15, SI100FaceNet overfits by 12. ResNet-9 (about 6
minutes an epoch on a 2-core CPU) and DACL's ResNet-18 (about 3) get what time allows, a few
epochs: their scores are what they reach in about 20 minutes each, not their best."""

LIVE_EPOCHS = 3
"""Notebook 14's live budget for the cheaper networks: the same recipe, fewer epochs."""


def contender_recipe(
    name: str,
    epochs: int | None = None,
    per_class: int | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    channels: int = 1,
) -> TrainRecipe:
    """One training recipe for every contender: only the network (and, for DACL, its loss)
    and the number of epochs differ.

    Adam with a one-cycle learning rate (a warm-up to `lr`, then down to almost zero by
    the last batch), cross-entropy (DACL adds its sparse center loss), batches of
    `batch_size` mirrored faces, `channels` input channels (the faces are gray: 1), the
    processor's fast number format (bfloat16 where it has instructions for it) and
    channels-last memory, as the fast recipe of notebook 06; each network keeps its own
    dropout and batch norm. epochs: None is the network's full budget (FULL_EPOCHS);
    per_class: at most that many training faces of each class (None: all of them).
    """
    if name not in CONTENDERS:
        raise FerError(f"unknown contender {name!r}: expected one of {', '.join(CONTENDERS)}")
    return TrainRecipe(
        name=f"compare-{name}",
        arch=name,
        channels=channels,
        epochs=FULL_EPOCHS[name] if epochs is None else epochs,
        batch_size=batch_size,
        lr=lr,
        schedule="onecycle",
        augment="flip",
        per_class=per_class,
        objective="dacl" if name == "dacl" else "cross_entropy",
        channels_last=True,
        precision="auto",
    )


def build_contender(name: str, num_classes: int = len(EMOTIONS), channels: int = 1) -> nn.Module:
    """A fresh, untrained contender: "si100", "convnet5", "resnet9" or "dacl"."""
    recipe = contender_recipe(name, channels=channels)
    return build_model(name, num_classes=num_classes, **recipe.model_kwargs())


def flops_per_image(model: nn.Module, size: int | None = None) -> int:
    """Floating-point operations of one forward pass of one face of size x size pixels
    (default: the size the model takes), with the channels it takes (a multiply-add counts 2).

    Counts what dominates: convolutions and matrix products (torch's FlopCounterMode);
    batch norm, activations and pooling add a few percent more.
    """
    channels = input_channels(model)
    size = input_size(model) if size is None else size
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()  # batch norm in training mode needs more than one image
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, channels, size, size, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


def train_contender(
    name: str,
    data: FaceData,
    epochs: int | None = LIVE_EPOCHS,
    per_class: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    retrain: bool = False,
    device: str | torch.device | None = None,
    log_every: int = 150,
    progress: bool = True,
) -> tuple[nn.Module, dict]:
    """Train one contender by its recipe (contender_recipe) for `epochs` on at most
    `per_class` faces of each class, or load it when that run is saved.

    Saved after every epoch (atomically) as weights/compare_<name>.pth, with the data tag,
    by the one training loop (train.fit): run the notebook again and a finished run is
    loaded, an interrupted one continues after its last complete epoch, and one saved with
    other settings is trained again. Validated after every epoch (the history's
    train_seconds count the training pass alone). epochs None: the full budget
    (FULL_EPOCHS). Returns (model in eval mode, info with "history" and "epoch").
    """
    recipe = contender_recipe(name, epochs, per_class, batch_size)
    path = weights_path(f"compare_{name}.pth", data.tag)
    options = dict(validate_every=1, log_every=log_every, progress=progress)
    model, info = train_or_load(path, recipe, data, EMOTIONS, seed, device, retrain, **options)
    return model, {**info, "name": name}


def validation_confusion(model: nn.Module, data: FaceData, batch_size: int = 256) -> np.ndarray:
    """The 7x7 confusion matrix (rows true, columns predicted) on the validation split,
    the faces given with the channels the model takes."""
    validation = data.dataset("validation", EMOTIONS, channels=input_channels(model))
    loader = FaceLoader(validation, batch_size)
    y_true, y_pred, _ = predict(model, loader)
    return confusion_matrix(y_true, y_pred, len(EMOTIONS))


def comparison_row(model: nn.Module, info: dict, cm: np.ndarray) -> dict:
    """One line of the table: what a model costs and what it reached."""
    history = info["history"]
    return {
        "model": CONTENDERS[info["name"]],
        "parameters": count_parameters(model),
        "GFLOPs per face": flops_per_image(model) / 1e9,
        "seconds per epoch": float(np.mean(history["train_seconds"])),
        "CPU seconds per epoch": float(np.mean(history["cpu_seconds"])),
        "accuracy": accuracy(cm),
        "balanced accuracy": balanced_accuracy(cm),
    }


def full_budget_table(results: dict) -> pd.DataFrame:
    """The full-budget comparison (`experiment comparison`'s results) as a table, one row per
    contender from its run with the first seed: what the network costs (parameters and
    GFLOPs per face, counted here; seconds per epoch of training alone, measured by the
    training loop and recorded in the run's history) and what it reached on the validation
    faces, with 95% intervals over those faces (accuracy: wilson_interval; balanced
    accuracy: bootstrap_interval).
    """
    rows = {}
    for name, variant in results["variants"].items():
        if not variant["runs"]:
            continue  # not trained yet (an interrupted experiment)
        run = variant["runs"][0]
        cm = np.asarray(run["validation"]["confusion_matrix"])
        model = build_contender(name, num_classes=len(cm))
        seconds = run["history"]["train_seconds"]
        rows[name] = {
            "model": CONTENDERS[name],
            "epochs": len(seconds),
            "parameters": count_parameters(model),
            "GFLOPs per face": flops_per_image(model) / 1e9,
            "seconds per epoch": float(np.mean(seconds)),
            "accuracy": accuracy(cm),
            "accuracy interval": wilson_interval(int(np.trace(cm)), int(cm.sum())),
            "balanced accuracy": balanced_accuracy(cm),
            "balanced interval": bootstrap_interval(cm),
        }
    if not rows:
        raise FerError("the comparison's results hold no finished run yet")
    return pd.DataFrame.from_dict(rows, orient="index")


def comparison_table(rows: dict[str, dict]) -> pd.DataFrame:
    """The rows (by contender name) as one table, in the order given."""
    return pd.DataFrame.from_dict(rows, orient="index")


@styled
def comparison_plot(table: pd.DataFrame, title: str = "One recipe, four networks") -> Figure:
    """Accuracy and balanced accuracy against seconds per epoch (log scale), one point per model.

    A point's area grows with the model's parameters. Where the table has "accuracy interval"
    and "balanced interval" columns (full_budget_table), each point gets a vertical bar from
    the interval's low end to its high end.
    """
    fig, ax = plt.subplots(figsize=(10, 5.6))
    area = 60 + 540 * table["parameters"] / table["parameters"].max()
    for column, marker, interval in (
        ("accuracy", "o", "accuracy interval"),
        ("balanced accuracy", "s", "balanced interval"),
    ):
        x, y = table["seconds per epoch"], table[column]
        points = ax.scatter(x, y, s=area, marker=marker, alpha=0.6, label=column)
        if interval in table:  # lines, not an errorbar collection: one collection per score
            for seconds, (low, high) in zip(x, table[interval]):
                ax.plot([seconds, seconds], [low, high], color=points.get_facecolor()[0], lw=2)
    # labels alternate above the accuracy and below the balanced accuracy, so that two
    # networks of about the same cost do not write over each other
    order = table["seconds per epoch"].sort_values().index
    for k, name in enumerate(order):
        row = table.loc[name]
        above = k % 2 == 0
        ax.annotate(
            f"{name}\n{row['parameters'] / 1e6:.1f} M parameters",
            (row["seconds per epoch"], row["accuracy" if above else "balanced accuracy"]),
            textcoords="offset points",
            xytext=(0, 16 if above else -16),
            ha="center",
            va="bottom" if above else "top",
            fontsize=12,
        )
    ax.set_xscale("log")
    seconds = table["seconds per epoch"]
    ax.set_xlim(seconds.min() / 2, seconds.max() * 2)  # room for the labels
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))  # 20, 50, 100 rather than 2x10^1
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("seconds per training epoch (log scale)")
    ax.set_ylabel("validation score")
    top = float(table[["accuracy", "balanced accuracy"]].to_numpy().max())
    ax.set_ylim(0, min(1.0, top + 0.2))
    ax.axhline(1 / len(EMOTIONS), color="gray", linestyle=":", label="chance (1/7)")
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return fig
