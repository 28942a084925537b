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

The ablation of Report 2 trains three VARIANTS: "softmax" (lambda = 0), "center"
(plain center loss: every a_ij = 1) and "dacl".
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from torchvision.models import resnet18
from tqdm.auto import tqdm

from .augment import Augment
from .data import FaceData, FaceDataset, FaceLoader
from .errors import CheckpointError, FerError
from .files import atomic_write
from .labels import EMOTIONS
from .metrics import accuracy, balanced_accuracy
from .paths import weights_path
from .plots import styled
from .train import choose_device, describe_device, seed_everything

LAMBDA = 0.01
"""Weight of the sparse center loss in the total loss (the paper's and Report 2's value)."""

FEATURES = 512
"""Features per image: ResNet-18's last block has 512 channels."""

ENCODER_WIDTHS: tuple[int, ...] = (3584, 512, 64)
"""Outputs of the context encoder's three fully connected layers (as in the DACL code)."""

VARIANTS: dict[str, tuple[float, bool]] = {
    "softmax": (0.0, False),  # cross-entropy alone: lambda = 0
    "center": (LAMBDA, True),  # plain center loss: every attention weight is 1
    "dacl": (LAMBDA, False),  # sparse center loss weighted by the attention
}
"""The ablation's variants: name -> (lambda, plain)."""

HISTORY_KEYS = ("train_loss", "train_ce", "train_sc", "train_acc", "epoch_seconds")


# --- the model -------------------------------------------------------------------------------


def resnet18_48(num_classes: int = 7, channels: int = 3, maxpool: bool = True) -> nn.Module:
    """torchvision's ResNet-18 (random weights) with a stem for 48x48 faces.

    The original stem (7x7 convolution with stride 2, then a 3x3 max-pool with stride 2)
    shrinks 224x224 images 4 times before the first residual block, to 56x56. A 48x48
    face would be 12x12 there and 2x2 at the end. Here conv1 is a 3x3 convolution with
    stride 1 and the max-pool stays: the blocks see 24x24, 24, 12, 6 and 3 pixels, and
    the last feature map is 512x3x3 instead of the paper's 512x7x7. maxpool=False drops
    the max-pool too (48x48 into the blocks, 512x6x6 at the end, about 3x slower to train).
    """
    model = resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    if not maxpool:
        model.maxpool = nn.Identity()
    return model


class AttentionNet(nn.Module):
    """Feature map (B, C, H, W) -> one attention weight per feature, (B, features) in (0, 1).

    Context encoder: fully connected layers with ENCODER_WIDTHS outputs, each followed
    by batch norm, ReLU after the first two and tanh after the last. Then one linear
    layer gives 2 scores per feature; a softmax over each pair (a two-way classifier,
    "attend to this feature or not") and its second probability is the weight.
    """

    def __init__(self, in_features: int, features: int = FEATURES) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for i, out in enumerate(ENCODER_WIDTHS):
            last = i == len(ENCODER_WIDTHS) - 1
            layers += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.Tanh() if last else nn.ReLU()]
            width = out
        self.encoder = nn.Sequential(*layers)
        self.heads = nn.Linear(width, 2 * features)
        self.features = features

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        context = self.encoder(torch.flatten(feature_map, start_dim=1))
        return attention_from_heads(self.heads(context), self.features)


def attention_from_heads(head_scores: torch.Tensor, features: int = FEATURES) -> torch.Tensor:
    """(B, 2 * features) scores -> (B, features) weights: a softmax per pair, its 2nd value.

    Scores 2j and 2j+1 belong to feature j (reshape to (B, features, 2)).
    """
    pairs = head_scores.reshape(head_scores.shape[0], features, 2)
    return pairs.softmax(dim=-1)[..., 1]


class DACLNet(nn.Module):
    """ResNet-18 for 48x48 faces plus DACL's attention net.

    forward(x) returns (logits (B, classes), features (B, 512), attention (B, 512)):
    the features are the global-average-pooled last feature map, the classifier's input;
    the attention weights only enter the sparse center loss.
    """

    def __init__(
        self, num_classes: int = 7, channels: int = 3, size: int = 48, maxpool: bool = True
    ) -> None:
        super().__init__()
        resnet = resnet18_48(num_classes, channels, maxpool)
        # Everything up to the last residual block: the feature extractor.
        self.backbone = nn.Sequential(*list(resnet.children())[:-2])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = resnet.fc
        with torch.no_grad():
            self.map_shape = tuple(self.backbone.eval()(torch.zeros(1, channels, size, size)).shape)
        self.backbone.train()
        self.attention = AttentionNet(math.prod(self.map_shape[1:]), FEATURES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feature_map = self.backbone(x)
        features = torch.flatten(self.pool(feature_map), start_dim=1)
        return self.fc(features), features, self.attention(feature_map)


# --- the loss --------------------------------------------------------------------------------


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
        self, features: torch.Tensor, labels: torch.Tensor, attention: torch.Tensor | None = None
    ) -> torch.Tensor:
        if features.shape[1:] != self.centres.shape[1:]:
            raise FerError(
                f"features have shape {tuple(features.shape)}; the centres expect "
                f"(batch, {self.centres.shape[1]})"
            )
        return sparse_center_loss(features, self.centres, labels, attention)


class DACLLoss(nn.Module):
    """Total loss L = cross-entropy + lam * sparse center loss; returns (L, CE, L_SC).

    plain=True ignores the attention (every weight 1): the classic center loss.
    lam=0 gives cross-entropy alone (L_SC is still returned, to watch it).
    """

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
        sc = self.center_loss(features, labels, None if self.plain else attention)
        if self.lam == 0:
            return ce, ce, sc.detach()  # no gradient from L_SC at all
        return ce + self.lam * sc, ce, sc


# --- training --------------------------------------------------------------------------------


def make_dacl_training(
    variant: str = "dacl",
    num_classes: int = 7,
    lr: float = 0.01,
    centre_lr: float = 0.5,
    seed: int = 0,
) -> tuple[DACLNet, DACLLoss, torch.optim.Optimizer, torch.optim.Optimizer]:
    """(model, loss, optimizer, centre optimizer) for one variant, from one seed.

    The paper's optimizer: SGD with momentum 0.9, weight decay 5e-4, lr 0.01. The
    centres get their own plain SGD (lr 0.5, as center loss usually does): train_dacl
    divides their gradient by lambda, so they follow L_SC at the same pace whatever
    lambda is.
    """
    lam, plain = _variant(variant)
    seed_everything(seed)  # same seed, same initial weights in every variant
    model = DACLNet(num_classes)
    loss_fn = DACLLoss(num_classes, FEATURES, lam=lam, plain=plain)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    centre_optimizer = torch.optim.SGD(loss_fn.parameters(), lr=centre_lr)
    return model, loss_fn, optimizer, centre_optimizer


def train_dacl(
    model: DACLNet,
    loss_fn: DACLLoss,
    optimizer: torch.optim.Optimizer,
    centre_optimizer: torch.optim.Optimizer,
    loader: Iterable,
    epochs: int,
    device: str | torch.device | None = None,
    decay_every: int | None = None,
    log_every: int = 100,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train for `epochs` epochs; return the history (HISTORY_KEYS, one value per epoch).

    The learning rate drops 10x every `decay_every` epochs (default: a third of the
    run, as the paper's every 20 of 60 epochs).
    """
    device = choose_device() if device is None else torch.device(device)
    model.to(device)
    loss_fn.to(device)
    decay_every = decay_every or max(1, math.ceil(epochs / 3))
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=decay_every, gamma=0.1)
    say = tqdm.write if progress else print
    say(f"Training device: {describe_device(device)}")
    history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
    for epoch in range(epochs):
        began = time.perf_counter()
        sums = _train_epoch(
            model,
            loss_fn,
            optimizer,
            centre_optimizer,
            loader,
            device,
            (epoch, epochs),
            log_every,
            say,
            progress,
        )
        schedule.step()
        seen = sums.pop("seen")
        for key, value in sums.items():
            history[f"train_{key}"].append(value / seen)
        history["epoch_seconds"].append(time.perf_counter() - began)
        say(
            f"Epoch {epoch + 1}/{epochs} done: loss {history['train_loss'][-1]:.4f} "
            f"(CE {history['train_ce'][-1]:.4f}, L_SC {history['train_sc'][-1]:.4f}), "
            f"train acc {history['train_acc'][-1]:.2%} ({history['epoch_seconds'][-1]:.1f} s)"
        )
    return history


def _train_epoch(
    model: DACLNet,
    loss_fn: DACLLoss,
    optimizer: torch.optim.Optimizer,
    centre_optimizer: torch.optim.Optimizer,
    loader: Iterable,
    device: torch.device,
    epoch_of: tuple[int, int],
    log_every: int,
    say: Callable[[str], object],
    progress: bool,
) -> dict[str, float]:
    """One pass over the data; returns sums of loss, ce, sc and correct, and images seen."""
    epoch, epochs = epoch_of
    model.train()
    sums = {"loss": 0.0, "ce": 0.0, "sc": 0.0, "acc": 0.0, "seen": 0}
    recent = 0.0
    total = len(loader)
    bar = tqdm(loader, total=total, desc=f"Epoch {epoch + 1}/{epochs}", disable=not progress)
    for k, (x, y) in enumerate(bar, start=1):
        x, y = x.to(device), y.to(device)
        logits, features, attention = model(x)
        loss, ce, sc = loss_fn(logits, features, attention, y)
        optimizer.zero_grad()
        centre_optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if loss_fn.lam > 0:
            loss_fn.center_loss.centres.grad /= loss_fn.lam  # centres learn at their own pace
            centre_optimizer.step()
        for key, value in (("loss", loss), ("ce", ce), ("sc", sc)):
            sums[key] += value.item() * len(y)
        sums["acc"] += (logits.argmax(dim=1) == y).sum().item()
        sums["seen"] += len(y)
        recent += loss.item()
        if k % log_every == 0:
            step = epoch * total + k
            say(
                f"Epoch: {epoch + 1}/{epochs}, Batch: {step}, {k}/{total}, "
                f"loss: {recent / log_every:.4f}"
            )
            bar.set_postfix(loss=f"{recent / log_every:.3f}")
            recent = 0.0
    bar.close()
    if sums["seen"] == 0:
        raise FerError("the training loader gave no batches")
    return sums


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


def training_loader(
    data: FaceData,
    batch_size: int = 64,
    per_class: int | None = None,
    seed: int = 0,
    channels: int = 3,
) -> FaceLoader:
    """Shuffled 7-class training batches, each face mirrored with probability 1/2.

    per_class keeps at most that many images of each class (a seeded random choice),
    to fit a time budget. drop_last: batch norm cannot learn from a batch of one.
    channels: 3 for torchvision's ResNet-18, 1 for a network made for grayscale.
    """
    faces = data["train"]
    if per_class is not None:
        rng = np.random.default_rng(seed)
        chosen = [
            rng.permutation(np.flatnonzero(faces.labels == label))[:per_class]
            for label in range(len(EMOTIONS))
        ]
        faces = faces.take(np.sort(np.concatenate(chosen)))
    dataset = FaceDataset(faces, EMOTIONS, channels=channels)
    flip_only = Augment(flip=0.5, rotation=0.0, scale=0.0, shift=0.0)
    return FaceLoader(
        dataset,
        batch_size=min(batch_size, len(dataset)),
        shuffle=True,
        augment=flip_only,
        drop_last=True,
        seed=seed,
    )


def train_variant(
    data: FaceData,
    variant: str,
    epochs: int,
    per_class: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    decay_every: int | None = None,
    retrain: bool = False,
    **train_kwargs: object,
) -> tuple[DACLNet, dict]:
    """Train one variant of the ablation, or load it if that run is saved.

    per_class: see training_loader; decay_every: see train_dacl; other keyword
    arguments (log_every, progress, device) go to train_dacl. Saved as
    weights/dacl_<variant>.pth (plus the data tag): a dict of the model's and the
    centres' tensors, the settings and the history, read back with weights_only=True.
    Returns (model in eval mode, info with "history", "centres").
    """
    _variant(variant)
    path = weights_path(f"dacl_{variant}.pth", data.tag)
    settings = {
        "variant": variant,
        "epochs": epochs,
        "per_class": per_class or 0,
        "batch_size": batch_size,
        "seed": seed,
        "decay_every": decay_every or 0,
    }
    if path.exists() and not retrain:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if {key: saved.get(key) for key in settings} == settings:
            return _restore(saved, path), saved
    model, loss_fn, optimizer, centre_optimizer = make_dacl_training(variant, seed=seed)
    loader = training_loader(data, batch_size, per_class, seed)
    history = train_dacl(
        model,
        loss_fn,
        optimizer,
        centre_optimizer,
        loader,
        epochs,
        decay_every=decay_every,
        **train_kwargs,
    )
    saved = {
        **settings,
        "model_state": model.state_dict(),
        "centres": loss_fn.center_loss.centres.detach().cpu(),
        "history": history,
    }
    with atomic_write(path) as file:  # an interrupted save leaves the old file, not half a new one
        torch.save(saved, file)
    return model.eval(), saved


def _restore(saved: dict, path: Path) -> DACLNet:
    model = DACLNet(num_classes=saved["centres"].shape[0])
    try:
        model.load_state_dict(saved["model_state"])
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not fit DACLNet: {error}") from error
    return model.to(choose_device()).eval()


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
    model: DACLNet, loss_fn: DACLLoss, batch_size: int = 64, batches: int = 3, size: int = 48
) -> float:
    """Images per second of training steps (forward, backward, update) on random batches.

    The first step is a warm-up and is not timed. The model's weights change.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    x = torch.rand(batch_size, 3, size, size) * 2 - 1
    y = torch.arange(batch_size) % loss_fn.center_loss.centres.shape[0]
    began = 0.0
    for step in range(batches + 1):
        if step == 1:
            began = time.perf_counter()
        loss, _, _ = loss_fn(*model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return batches * batch_size / (time.perf_counter() - began)


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
