"""Inference: class probabilities of a batch, test-time augmentation, predictions over a loader.

    y_true, y_pred, probs = predict(model, loader, tta="flip")

Training (train.py) validates with these functions; nothing here imports training code,
so that a model can be used without it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from .allocator import keep_freed_memory
from .errors import FerError
from .models import check_input

TTA_WORDS = {  # test-time augmentation modes (see tta_views), in words for reports
    "none": "none, one look at each face",
    "flip": "each face and its mirror image",
    "shifts": "10 views: each face, shifted 2 pixels four ways, and the mirror of each",
}
TTA_MODES = tuple(TTA_WORDS)
TTA_SHIFT = 2  # pixels, for tta="shifts"


def tta_mode(tta: bool | str | None) -> str:
    """ "none", "flip" or "shifts" for a tta setting; True means "flip", as recipes store it."""
    if not isinstance(tta, str):
        return "flip" if tta else "none"
    if tta not in TTA_MODES:
        raise FerError(f"unknown test-time augmentation {tta!r}: expected one of {TTA_MODES}")
    return tta


def tta_views(x: torch.Tensor, tta: bool | str = False) -> list[torch.Tensor]:
    """The views of a batch (B, C, H, W) that test-time augmentation scores and averages.

    "none": the batch itself. "flip" (or True): it and its mirror image. "shifts": those
    two and, of each, the four copies shifted by TTA_SHIFT pixels up, down, left and right
    (the border mirrored into the gap): 10 views, like the "ten-crop" of FER papers (which
    cut smaller crops) for a net that sees the whole 48x48 face. Each view costs one more
    forward pass.
    """
    mode = tta_mode(tta)
    views = [x]
    if mode == "none":
        return views
    views.append(x.flip(dims=[3]))
    if mode == "shifts":
        s, (h, w) = TTA_SHIFT, x.shape[-2:]
        padded = torch.nn.functional.pad(x, (s, s, s, s), mode="reflect")
        for dy, dx in ((-s, 0), (s, 0), (0, -s), (0, s)):
            shifted = padded[..., s + dy : s + dy + h, s + dx : s + dx + w]
            views += [shifted, shifted.flip(dims=[3])]
    return views


def class_probabilities(model: nn.Module, x: torch.Tensor, tta: bool | str = False) -> torch.Tensor:
    """Softmax probabilities (float32) of a batch, averaged over its tta_views."""
    views = tta_views(x, tta)
    probabilities = torch.softmax(scores_of(model, views[0]).float(), dim=1)
    for view in views[1:]:
        probabilities = probabilities + torch.softmax(scores_of(model, view).float(), dim=1)
    return probabilities / len(views)


def scores_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The class scores of a batch; a model may return (scores, ...), as DACLNet does."""
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


def predict(
    model: nn.Module,
    loader: Iterable,
    device: str | torch.device | None = None,
    tta: bool | str = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true labels, predicted labels, softmax probabilities) over a loader.

    Leaves the model in eval mode; runs on the model's own device unless told.
    tta=True averages each face's probabilities with its mirror image's; "shifts" over
    10 views (tta_views).
    """
    keep_freed_memory()
    device = next(model.parameters()).device if device is None else torch.device(device)
    model.to(device).eval()
    labels, probabilities = [], []
    with torch.inference_mode():
        for x, y in loader:
            if not labels:
                check_input(model, x)  # a clear message, not a convolution's shape error
            probabilities.append(class_probabilities(model, x.to(device, non_blocking=True), tta))
            labels.append(torch.as_tensor(y).cpu())
    if not labels:
        raise FerError("the loader gave no images to predict")
    probs = torch.cat(probabilities).cpu().numpy()
    return torch.cat(labels).numpy().astype(np.int64), probs.argmax(axis=1), probs
