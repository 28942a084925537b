"""Data augmentation on whole batches of tensors.

Every image of a batch gets its own random mirror, rotation, scale and shift,
but all of them are applied in one `grid_sample` call: one affine warp per
batch instead of one PIL operation per image. `Erase` paints over a random rectangle
of each face; `Chain` applies several in turn. `mixup` mixes the faces of a batch
in pairs, with soft targets to match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Augment:
    """Random horizontal flip, rotation, zoom and shift for a batch (B, C, H, W).

    flip: probability of mirroring an image left-right (faces are symmetric enough).
    rotation: largest rotation in degrees, either way.
    scale: largest zoom in or out, as a fraction (0.1 means 0.9x to 1.1x).
    shift: largest shift as a fraction of the image size (0.1 of 48 px is about 5 px).
    """

    flip: float = 0.5
    rotation: float = 10.0
    scale: float = 0.1
    shift: float = 0.1

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        theta = self.random_affine(x.shape[0], generator).to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # "border" repeats the edge pixels rather than adding black corners.
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def random_affine(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n random 2x3 matrices that map output coordinates to input coordinates."""
        angle = _uniform(n, -self.rotation, self.rotation, generator) * (math.pi / 180)
        zoom = _uniform(n, 1 - self.scale, 1 + self.scale, generator)
        mirror = torch.where(torch.rand(n, generator=generator) < self.flip, -1.0, 1.0)
        # affine_grid coordinates run from -1 to 1, so a shift of s is s/2 of the width.
        tx, ty = (
            _uniform(n, -2 * self.shift, 2 * self.shift, generator),
            _uniform(n, -2 * self.shift, 2 * self.shift, generator),
        )
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        return torch.stack(
            [
                torch.stack([cos * mirror, -sin, tx], dim=1),
                torch.stack([sin * mirror, cos, ty], dim=1),
            ],
            dim=1,
        )


@dataclass
class CropFlip:
    """Random shift (pad, then crop back to size) and horizontal mirror for a batch (B, C, H, W).

    The cheap augmentation of fast small-image training: a few indexing
    operations per batch, no interpolation. pad: largest shift in pixels, either
    way (the border pixels are mirrored into the gap); flip: probability of mirroring.
    """

    pad: int = 4
    flip: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        padded = F.pad(x, (self.pad,) * 4, mode="reflect") if self.pad else x
        dy = torch.randint(0, 2 * self.pad + 1, (b, 1), generator=generator)
        dx = torch.randint(0, 2 * self.pad + 1, (b, 1), generator=generator)
        rows = (dy + torch.arange(h)).to(x.device)  # (b, h): the rows each crop keeps
        cols = (dx + torch.arange(w)).to(x.device)
        mirror = (torch.rand(b, generator=generator) < self.flip).to(x.device)
        cols = torch.where(mirror[:, None], cols.flip(1), cols)  # mirrored: read right to left
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        channel = torch.arange(c, device=x.device)[None, :, None, None]
        return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


@dataclass
class Erase:
    """Random erasing (Zhong et al., 2017) for a batch (B, C, H, W): with probability p,
    one rectangle of each face is painted over with `value`.

    The rectangle covers a fraction of the face drawn uniformly from `area`, its
    height / width ratio log-uniformly from `aspect`, and it lies wholly inside the face
    at a uniformly random place. A net that may lose a mouth or an eye cannot lean on one
    part alone. value 0 is mid-gray in the course's pixels (pixels / 127.5 - 1).
    With the default bounds every rectangle fits (the largest is 0.91 of a side),
    so nothing is clipped.
    """

    p: float = 0.5
    area: tuple[float, float] = (0.02, 0.25)
    aspect: tuple[float, float] = (0.3, 3.3)
    value: float = 0.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        area = _uniform(b, *self.area, generator) * (h * w)
        ratio = torch.exp(
            _uniform(b, math.log(self.aspect[0]), math.log(self.aspect[1]), generator)
        )
        heights = (area * ratio).sqrt().round().clamp(1, h).long()
        widths = (area / ratio).sqrt().round().clamp(1, w).long()
        tops = (torch.rand(b, generator=generator) * (h - heights + 1)).long()
        lefts = (torch.rand(b, generator=generator) * (w - widths + 1)).long()
        chosen = torch.rand(b, generator=generator) < self.p
        rows, cols = torch.arange(h)[None, :], torch.arange(w)[None, :]
        in_rows = (rows >= tops[:, None]) & (rows < (tops + heights)[:, None]) & chosen[:, None]
        in_cols = (cols >= lefts[:, None]) & (cols < (lefts + widths)[:, None])
        mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None].to(x.device)  # (B,1,H,W)
        return x.masked_fill(mask, self.value)


@dataclass
class Chain:
    """Augmentations applied one after the other, each drawing from the same generator."""

    steps: tuple

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for step in self.steps:
            x = step(x, generator)
        return x


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    """n draws, uniform on [low, high), from `generator` (one per face of a batch)."""
    return low + (high - low) * torch.rand(n, generator=generator)


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    alpha: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each face with another face of the batch: (mixed faces, soft targets).

    One weight lam ~ Beta(alpha, alpha) for the batch (kept at or above 0.5, so each
    mixed face is mostly its own); face i becomes lam * x[i] + (1 - lam) * x[j] and
    its target lam * one_hot(y[i]) + (1 - lam) * one_hot(y[j]), j a random pairing.
    Cross-entropy takes such probability targets (nn.CrossEntropyLoss does). A
    regulariser for long runs: a net cannot memorise faces it never sees unmixed.
    """
    if alpha <= 0:
        raise ValueError(f"mixup needs alpha > 0, not {alpha}")
    # Beta(alpha, alpha) from two Gamma(alpha) draws, so that it comes from `generator`
    # (torch.distributions.Beta takes none) and a resumed run draws the same weights.
    a, b = torch._standard_gamma(torch.full((2,), float(alpha)), generator=generator).tolist()
    lam = max(a, b) / (a + b) if a + b > 0 else 1.0  # both can underflow for a tiny alpha
    pairing = torch.randperm(len(y), generator=generator).to(x.device)
    targets = F.one_hot(y, num_classes).to(x.dtype)
    mixed = lam * x + (1 - lam) * x[pairing]
    return mixed, lam * targets + (1 - lam) * targets[pairing]
