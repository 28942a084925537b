"""Notebook 11: the course's network and the reports' networks, one recipe, the same faces.

    recipe = Recipe(epochs=3, per_class=400)
    model, info = train_contender("resnet9", data, recipe)   # trained now, or loaded if saved
    cm = validation_confusion(model, data, recipe)
    table = comparison_table({"resnet9": comparison_row(model, info, cm)})

The contenders: SI100FaceNet (the course), ConvNet 5 (Report 1), ResNet-9 (Report 3)
and DACL's ResNet-18 with its attention net and sparse center loss (Report 2). All
of them see the same class-capped training faces in the same order, with the same
augmentation (mirroring), batch size, optimizer and learning-rate schedule: what
differs is the network (and, for DACL, its loss).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from .dacl import DACLLoss, DACLNet, training_loader
from .data import FaceData, FaceLoader
from .errors import CheckpointError, FerError
from .files import atomic_write
from .labels import EMOTIONS
from .metrics import accuracy, balanced_accuracy, confusion_matrix
from .models import build_model, count_parameters
from .paths import weights_path
from .plots import styled
from .train import choose_device, describe_device, predict, seed_everything

CONTENDERS: dict[str, str] = {
    "si100": "SI100FaceNet (the course)",
    "convnet5": "ConvNet 5 (Report 1)",
    "resnet9": "ResNet-9 (Report 3)",
    "dacl": "DACL ResNet-18 (Report 2)",
}
"""The networks compared, by name, with the report each comes from."""

HISTORY_KEYS = ("train_loss", "train_acc", "epoch_seconds", "cpu_seconds")
CENTRE_LR = 0.5  # DACL's class centres learn by their own plain SGD, as in notebook 08


@dataclass(frozen=True)
class Recipe:
    """One training recipe for every contender.

    Adam with a one-cycle learning rate (a warm-up to `lr`, then down to almost
    zero by the last batch), cross-entropy (DACL adds its sparse center loss),
    batches of `batch_size` mirrored faces, at most `per_class` training faces of
    each of the seven classes, `channels` input channels (the faces are gray: 1).
    """

    epochs: int = 3
    per_class: int | None = 400
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    channels: int = 1

    def settings(self) -> dict[str, int | float]:
        """The recipe as plain numbers (what a saved run is matched against)."""
        values = asdict(self)
        values["per_class"] = values["per_class"] or 0
        return values


def build_contender(name: str, num_classes: int = len(EMOTIONS), channels: int = 1) -> nn.Module:
    """A fresh, untrained contender: "si100", "convnet5", "resnet9" or "dacl"."""
    if name not in CONTENDERS:
        raise FerError(f"unknown contender {name!r}: expected one of {', '.join(CONTENDERS)}")
    if name == "dacl":
        return DACLNet(num_classes, channels=channels)
    return build_model(name, num_classes=num_classes, in_channels=channels)


def flops_per_image(model: nn.Module, channels: int = 1, size: int = 48) -> int:
    """Floating-point operations of one forward pass of one face (a multiply-add counts 2).

    Counts what dominates: convolutions and matrix products (torch's FlopCounterMode);
    batch norm, activations and pooling add a few percent more.
    """
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
    recipe: Recipe = Recipe(),
    retrain: bool = False,
    device: str | torch.device | None = None,
    log_every: int = 20,
    progress: bool = True,
) -> tuple[nn.Module, dict]:
    """Train one contender by the recipe, or load it when that run is saved.

    Saved after every epoch (atomically) as weights/compare_<name>.pth, with the
    data tag: run the notebook again and a finished run is loaded, an interrupted
    one continues after its last complete epoch. A file saved with another recipe
    is trained again. Returns (model in eval mode, info with "history" and "epoch").
    """
    device = choose_device() if device is None else torch.device(device)
    path = weights_path(f"compare_{name}.pth", data.tag)
    settings = {"name": name, **recipe.settings()}
    saved = _load_run(path, settings) if path.exists() and not retrain else None
    if saved is not None and saved["epoch"] >= recipe.epochs:
        model = build_contender(name, channels=recipe.channels)
        _load_state(model, saved["model_state"], path)
        return model.to(device).eval(), saved

    seed_everything(recipe.seed)  # every contender starts from its own seeded weights
    model = build_contender(name, channels=recipe.channels).to(device)
    loss_fn = DACLLoss(len(EMOTIONS)).to(device) if name == "dacl" else None
    loader = training_loader(
        data, recipe.batch_size, recipe.per_class, recipe.seed, channels=recipe.channels
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * len(loader)
    )
    centres = None
    if loss_fn is not None:
        centres = torch.optim.SGD(loss_fn.parameters(), lr=CENTRE_LR)
    history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
    start = 0
    if saved is not None:
        start, history = saved["epoch"], saved["history"]
        _load_state(model, saved["model_state"], path)
        optimizer.load_state_dict(saved["optimizer_state"])
        schedule.load_state_dict(saved["schedule_state"])
        loader.load_state_dict(saved["loader_state"])
        if loss_fn is not None:
            loss_fn.load_state_dict(saved["loss_state"])
            centres.load_state_dict(saved["centre_state"])
        if "torch_rng" in saved:  # dropout draws on as if never interrupted
            torch.set_rng_state(saved["torch_rng"])
    say = _say(progress)
    if saved is not None:
        say(f"{name}: resuming from {path} after epoch {start}")
    say(f"{CONTENDERS[name]}: training on {describe_device(device)}")
    for epoch in range(start, recipe.epochs):
        wall, cpu = time.perf_counter(), time.process_time()
        loss, acc = _train_epoch(
            model,
            (loader, optimizer, schedule, loss_fn, centres),
            device,
            desc=f"{name} {epoch + 1}/{recipe.epochs}",
            log_every=log_every,
            say=say,
            progress=progress,
        )
        values = (loss, acc, time.perf_counter() - wall, time.process_time() - cpu)
        for key, value in zip(HISTORY_KEYS, values, strict=True):
            history[key].append(value)
        say(
            f"{name}: epoch {epoch + 1}/{recipe.epochs} done: train loss {loss:.4f}, "
            f"train acc {acc:.2%} ({history['epoch_seconds'][-1]:.1f} s)"
        )
        finished = epoch + 1 == recipe.epochs
        run = {
            **settings,
            "epoch": epoch + 1,
            "history": history,
            "model_state": model.state_dict(),
            "loss_state": loss_fn.state_dict() if loss_fn is not None else {},
        }
        if not finished:  # what resuming needs; a finished run keeps only the model
            run |= {
                "optimizer_state": optimizer.state_dict(),
                "schedule_state": schedule.state_dict(),
                "loader_state": loader.state_dict(),
                "centre_state": centres.state_dict() if centres is not None else {},
                "torch_rng": torch.get_rng_state(),
            }
        with atomic_write(path) as file:
            torch.save(run, file)
    return model.eval(), {**settings, "epoch": recipe.epochs, "history": history}


def validation_confusion(
    model: nn.Module, data: FaceData, recipe: Recipe = Recipe(), batch_size: int = 256
) -> np.ndarray:
    """The 7x7 confusion matrix (rows true, columns predicted) on the validation split."""
    loader = FaceLoader(data.dataset("validation", EMOTIONS, channels=recipe.channels), batch_size)
    y_true, y_pred, _ = predict(model, loader)
    return confusion_matrix(y_true, y_pred, len(EMOTIONS))


def comparison_row(model: nn.Module, info: dict, cm: np.ndarray, channels: int = 1) -> dict:
    """One line of the table: what a model costs and what it reached."""
    history = info["history"]
    return {
        "model": CONTENDERS[info["name"]],
        "parameters": count_parameters(model),
        "GFLOPs per face": flops_per_image(model, channels) / 1e9,
        "seconds per epoch": float(np.mean(history["epoch_seconds"])),
        "CPU seconds per epoch": float(np.mean(history["cpu_seconds"])),
        "accuracy": accuracy(cm),
        "balanced accuracy": balanced_accuracy(cm),
    }


def comparison_table(rows: dict[str, dict]) -> pd.DataFrame:
    """The rows (by contender name) as one table, in the order given."""
    return pd.DataFrame.from_dict(rows, orient="index")


@styled
def comparison_plot(table: pd.DataFrame, title: str = "One recipe, four networks") -> Figure:
    """Accuracy and balanced accuracy against seconds per epoch (log scale), one point per model.

    A point's area grows with the model's parameters.
    """
    fig, ax = plt.subplots(figsize=(10, 5.6))
    area = 60 + 540 * table["parameters"] / table["parameters"].max()
    for column, marker in (("accuracy", "o"), ("balanced accuracy", "s")):
        x, y = table["seconds per epoch"], table[column]
        ax.scatter(x, y, s=area, marker=marker, alpha=0.6, label=column)
    for name, row in table.iterrows():
        ax.annotate(
            f"{name}\n{row['parameters'] / 1e6:.1f} M parameters",
            (row["seconds per epoch"], row["accuracy"]),
            textcoords="offset points",
            xytext=(10, 8),
            fontsize=13,
        )
    ax.set_xscale("log")
    seconds = table["seconds per epoch"]
    ax.set_xlim(seconds.min() / 1.6, seconds.max() * 2.5)  # room for the labels
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))  # 20, 50, 100 rather than 2x10^1
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("seconds per training epoch on this machine (log scale)")
    ax.set_ylabel("validation score")
    top = float(table[["accuracy", "balanced accuracy"]].to_numpy().max())
    ax.set_ylim(0, min(1.0, top + 0.15))
    ax.axhline(1 / len(EMOTIONS), color="gray", linestyle=":", label="chance (1/7)")
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return fig


# --- training, one loop for every contender ------------------------------------------------


def _train_epoch(
    model: nn.Module,
    training: tuple,
    device: torch.device,
    *,
    desc: str,
    log_every: int,
    say: Callable[[str], object],
    progress: bool,
) -> tuple[float, float]:
    """One pass over the data; returns (mean loss, accuracy).

    training: (loader, optimizer, schedule, DACL's loss or None for cross-entropy,
    the centres' optimizer or None).
    """
    loader, optimizer, schedule, loss_fn, centres = training
    model.train()
    loss_sum, correct, seen, recent = 0.0, 0, 0, 0.0
    bar = tqdm(loader, total=len(loader), desc=desc, disable=not progress)
    for k, (x, y) in enumerate(bar, start=1):
        x, y = x.to(device), y.to(device)
        out = model(x)
        if loss_fn is None:
            scores, loss = out, F.cross_entropy(out, y)
        else:
            scores, loss = out[0], loss_fn(*out, y)[0]
            centres.zero_grad()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()  # one-cycle: the learning rate changes every batch
        if loss_fn is not None:
            loss_fn.center_loss.centres.grad /= loss_fn.lam  # centres learn at their own pace
            centres.step()
        loss_sum += loss.item() * len(y)
        correct += (scores.argmax(dim=1) == y).sum().item()
        seen += len(y)
        recent += loss.item()
        if k % log_every == 0:
            say(f"  batch {k}/{len(loader)}, loss {recent / log_every:.4f}")
            bar.set_postfix(loss=f"{recent / log_every:.3f}")
            recent = 0.0
    bar.close()
    if seen == 0:
        raise FerError("the training loader gave no batches")
    return loss_sum / seen, correct / seen


def _say(progress: bool) -> Callable[[str], object]:
    return tqdm.write if progress else print


def _load_run(path: Path, settings: dict) -> dict | None:
    """The run saved at path if it was made with these settings, else None."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which, don't guess
        raise CheckpointError(f"{path} is not a readable comparison run: {error}") from error
    if not isinstance(saved, dict) or "model_state" not in saved:
        raise CheckpointError(f"{path} is not a comparison run (no model_state)")
    same = all(saved.get(key) == value for key, value in settings.items())
    if not same:
        print(f"{path} was trained with another recipe: training again")
        return None
    if saved["epoch"] < settings["epochs"] and "optimizer_state" not in saved:
        return None
    return saved


def _load_state(model: nn.Module, state: dict, path: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not fit this model: {error}") from error
