"""The course's training recipe, defined once: notebooks 04, 05 and 07 share it.

    train_loader, val_loader = course_loaders(data)
    model, info = course_model(data)   # the trained 3-class model: loaded if saved, else trained

The recipe is the handout's: SI100FaceNet on happy / neutral / sad, batch 32,
Adam with learning rate 1e-3, cross-entropy, 10 epochs (1 with FER_TINY=1, which
also has only 24 training images). The weights go to
weights/face_expression.pth, tagged by the data (see paths.weights_path), so a
run on synthetic or tiny data never overwrites the one trained on FER2013.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .data import FaceData, FaceLoader
from .labels import COURSE_CLASSES
from .paths import weights_path
from .train import seed_everything, train_or_load

COURSE_ARCH = "si100"
COURSE_EPOCHS = 10
TINY_EPOCHS = 1
COURSE_BATCH = 32
COURSE_LR = 1e-3
COURSE_SEED = 0
COURSE_WEIGHTS = "face_expression.pth"
LOG_LINES_PER_EPOCH = 5


def course_epochs(data: FaceData) -> int:
    """Epochs the course trains for: 10, or 1 on tiny data (a quick check, as in CI)."""
    return TINY_EPOCHS if data.tiny else COURSE_EPOCHS


def course_weights(data: FaceData) -> Path:
    """Where the course's 3-class model is saved for these data (face_expression[.tag].pth)."""
    return weights_path(COURSE_WEIGHTS, data.tag)


def course_loaders(
    data: FaceData,
    classes: Sequence[str] = COURSE_CLASSES,
    batch_size: int = COURSE_BATCH,
    seed: int = COURSE_SEED,
) -> tuple[FaceLoader, FaceLoader]:
    """(train loader, validation loader) of the course's classes, in batches of batch_size.

    The training batches are shuffled with their own seeded generator, so every
    run sees the same batches in the same order; validation is not shuffled.
    """
    train_loader = FaceLoader(data.dataset("train", classes), batch_size, shuffle=True, seed=seed)
    val_loader = FaceLoader(data.dataset("validation", classes), batch_size)
    return train_loader, val_loader


def log_every(train_loader: FaceLoader, lines: int = LOG_LINES_PER_EPOCH) -> int:
    """How many batches between two log lines for about `lines` lines per epoch (at least 1)."""
    return max(1, len(train_loader) // lines)


def course_model(
    data: FaceData,
    epochs: int | None = None,
    retrain: bool = False,
    device: str | torch.device | None = None,
) -> tuple[nn.Module, dict]:
    """The course's trained 3-class model: loaded if it was saved, else trained now.

    Reuses what notebook 04 (or the `train` command with the same --out) saved
    at course_weights(data); finishes an interrupted run; trains from scratch
    when nothing is saved or retrain=True. Returns (model in eval mode, checkpoint
    info with class_names, epoch and history), as train.train_or_load does.
    device: where to train and put the model (default: CUDA, then MPS, then the CPU).
    """
    epochs = course_epochs(data) if epochs is None else epochs
    train_loader, val_loader = course_loaders(data)
    seed_everything(COURSE_SEED)  # the same initial weights as notebook 04's run
    return train_or_load(
        course_weights(data),
        train_loader,
        COURSE_CLASSES,
        epochs,
        val_loader=val_loader,
        arch=COURSE_ARCH,
        lr=COURSE_LR,
        device=device,
        retrain=retrain,
        log_every=log_every(train_loader),
    )
