"""Synthetic 48x48 expression faces, for when no FER2013 copy is found.

Every notebook runs without a download: the data loader falls back to these
cartoon faces and prints SYNTHETIC_NOTICE. They are NOT FER2013, so accuracies
on them say nothing about real faces; they only let the code run end to end.

How a face is drawn: each image gets a coordinate grid, and every part of the
face (oval, eyes, brows, nose, mouth) is an implicit shape, a formula that
says how far each pixel is from the shape's edge. Painting all pixels at once
with numpy is fast (no Python loop over pixels).

How a class is defined: an emotion is a *direction* away from a neutral face,
e.g. happy = mouth corners up, wider mouth, slightly narrowed eyes. Each image
takes a random fraction of that direction (a weak or a strong expression) plus
random jitter, so classes overlap the way real expressions do (angry ~ disgust,
fear ~ surprise, sad ~ neutral). On top of that come nuisances a model must
learn to ignore: face position, size, tilt, mirror image, hair, background,
skin tone, lighting gradient, contrast and noise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .errors import DataError
from .labels import EMOTIONS

SYNTHETIC_NOTICE: str = (
    "SYNTHETIC DATA: no FER2013 copy was found; these are generated cartoon faces, not real "
    "photos; accuracies mean nothing about FER2013. Put FER2013 in data/fer2013/ or set "
    "FER2013_DIR."
)

# FER2013's real class sizes (angry ... neutral): Training, PublicTest, PrivateTest.
_FER2013_COUNTS = {
    "train": ((3995, 436, 4097, 7215, 4830, 3171, 4965), 10),
    "validation": ((467, 56, 496, 895, 653, 415, 607), 4),
    "test": ((491, 55, 528, 879, 594, 416, 626), 4),
}

SPLIT_COUNTS: dict[str, tuple[int, ...]] = {
    split: tuple(max(5, round(n / divisor)) for n in real)
    for split, (real, divisor) in _FER2013_COUNTS.items()
}
"""Images per class (FER2013 label order) for each split: FER2013's sizes scaled down,
so the imbalance (few disgust, many happy) is the same as on the real data."""

TINY_COUNTS: dict[str, int] = {"train": 8, "validation": 4, "test": 4}
"""Images per class in tiny mode (FER_TINY=1, for CI)."""

# One seed per split, so no image appears in two splits.
_SPLIT_SEEDS = {"train": 48_000, "validation": 48_001, "test": 48_002}

SIZE = 48  # image side in pixels
_CHUNK = 32  # images rendered at once: small arrays stay in the CPU cache, which is faster

# ---- expression parameters ---------------------------------------------------------------
# Columns: eye openness, brow raise, brow slant (+ = inner ends up), brow arch, mouth
# half-width, mouth bend (+ = corners up), mouth opening, teeth, nose wrinkle, sneer.
_PARAMS = (
    "eye_open",
    "brow_raise",
    "brow_slant",
    "brow_arch",
    "mouth_width",
    "mouth_bend",
    "mouth_open",
    "teeth",
    "wrinkle",
    "sneer",
)
_NEUTRAL = np.array([0.55, 0.0, 0.0, 0.07, 0.21, 0.0, 0.0, 0.0, 0.0, 0.0])
# How each emotion moves the face away from neutral, at full strength.
_EXPRESSION = np.array(
    [
        [-0.25, -0.05, -0.11, -0.05, -0.04, -0.05, 0.00, 0.0, 0.2, 0.00],  # angry
        [-0.28, -0.04, -0.05, -0.03, -0.02, -0.08, 0.04, 0.0, 1.0, 0.08],  # disgust
        [0.35, 0.07, 0.09, 0.02, 0.10, -0.05, 0.20, 0.7, 0.0, 0.00],  # fear
        [-0.12, 0.02, 0.00, 0.01, 0.08, 0.14, 0.06, 1.0, 0.0, 0.00],  # happy
        [-0.15, 0.00, 0.11, -0.04, -0.02, -0.10, 0.00, 0.0, 0.0, 0.00],  # sad
        [0.45, 0.13, 0.02, 0.09, -0.08, 0.00, 0.30, 0.0, 0.0, 0.00],  # surprise
        [0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 0.0, 0.0, 0.00],  # neutral
    ]
)
# Per-image random jitter (standard deviation) of each parameter.
_JITTER = np.array([0.08, 0.025, 0.03, 0.025, 0.025, 0.03, 0.03, 0.2, 0.15, 0.02])

# ---- drawn uniformly from these ranges: the expression's strength and the nuisances -----
_UNIFORM = {
    "strength": (0.35, 1.15),  # how strongly an image shows its emotion
    "cx": (-0.12, 0.12),  # face centre, in image units (the image spans -1..1)
    "cy": (-0.10, 0.12),
    "scale": (0.82, 1.08),
    "face_w": (0.56, 0.66),  # half-width and half-height of the face oval
    "face_h": (0.74, 0.86),
    "flip": (-1.0, 1.0),  # its sign mirrors the face
    "background": (0.05, 0.95),
    "skin": (0.35, 0.85),
    "hair": (0.02, 0.6),
    "hairline": (-0.66, -0.42),
    "has_hair": (0.0, 1.0),  # above 0.2: 80% of the faces have hair
    "light": (0.0, 0.5),
    "light_angle": (0.0, 2 * np.pi),
    "contrast": (0.6, 1.15),
    "noise": (0.01, 0.05),
}
_TILT_SD = 0.12  # in-plane rotation, radians (about 7 degrees)
_DARK = 0.25  # brows, lids and lips are this fraction of the skin's brightness

Array = np.ndarray
Params = dict[str, np.ndarray]  # per-image parameters, each of shape (n, 1, 1)
Curve = Callable[[np.ndarray], np.ndarray]


def generate_faces(
    counts: Mapping[int, int] | Sequence[int], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw synthetic faces: images uint8 (N, 48, 48) and FER2013 labels int64 (N,).

    counts gives the number of images per label, as 7 numbers or {label: count}.
    Images come ordered by label, then index. The same seed gives the same images,
    and each class has its own random stream, so the images of one class do not
    depend on how many images the other classes get.
    """
    per_label = _counts_per_label(counts)
    images = [_render_class(label, n, seed) for label, n in enumerate(per_label)]
    labels = np.repeat(np.arange(len(EMOTIONS), dtype=np.int64), per_label)
    return np.concatenate(images), labels


def generate_split(split: str, tiny: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic 'train', 'validation' or 'test' split (tiny: a few images per class)."""
    if split not in SPLIT_COUNTS:
        raise DataError(f"unknown split {split!r}: expected one of {', '.join(SPLIT_COUNTS)}")
    counts = [TINY_COUNTS[split]] * len(EMOTIONS) if tiny else SPLIT_COUNTS[split]
    return generate_faces(counts, seed=_SPLIT_SEEDS[split])


def _counts_per_label(counts: Mapping[int, int] | Sequence[int]) -> list[int]:
    """Turn 7 counts or {label: count} into a list of 7 counts, checking the values."""
    if isinstance(counts, Mapping):
        unknown = [k for k in counts if k not in range(len(EMOTIONS))]
        if unknown:
            raise DataError(f"unknown labels {unknown} in counts: expected labels 0..6")
        counts = [counts.get(label, 0) for label in range(len(EMOTIONS))]
    counts = list(counts)
    if len(counts) != len(EMOTIONS) or any(int(n) != n or n < 0 for n in counts):
        raise DataError(f"counts {counts} invalid: expected 7 whole numbers >= 0, one per label")
    return [int(n) for n in counts]


def _render_class(label: int, n: int, seed: int) -> np.ndarray:
    """Render n faces of one class; three seeded streams keep image i the same for any n."""
    streams = [np.random.default_rng([seed, label, stream]) for stream in range(3)]
    # One draw of shape (n, k) per stream: row i depends only on i, not on n.
    uniform = streams[0].random((n, len(_UNIFORM)))
    normal = streams[1].standard_normal((n, len(_PARAMS) + 1))
    noise = streams[2].standard_normal((n, SIZE, SIZE), dtype=np.float32)
    p = _face_parameters(label, uniform, normal)
    images = np.empty((n, SIZE, SIZE), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        part = slice(start, start + _CHUNK)
        chunk = {k: v[part] for k, v in p.items()}
        images[part] = _render(chunk, noise[part])
    return images


def _face_parameters(label: int, uniform: np.ndarray, normal: np.ndarray) -> Params:
    """Every per-image parameter as an array of shape (n, 1, 1), ready to broadcast."""
    p = {
        name: lo + (hi - lo) * uniform[:, k] for k, (name, (lo, hi)) in enumerate(_UNIFORM.items())
    }
    expression = _NEUTRAL + p["strength"][:, None] * _EXPRESSION[label] + _JITTER * normal[:, :-1]
    p.update(zip(_PARAMS, expression.T, strict=True))
    p["tilt"] = np.clip(_TILT_SD * normal[:, -1], -0.3, 0.3)
    p["flip"] = np.sign(p["flip"]) + (p["flip"] == 0)
    for name in ("mouth_open", "teeth", "wrinkle"):
        p[name] = np.clip(p[name], 0.0, 1.0)
    p["eye_open"] = np.clip(p["eye_open"], 0.12, 1.2)
    return {k: v.astype(np.float32)[:, None, None] for k, v in p.items()}


# ---- drawing -----------------------------------------------------------------------------


def _coverage(distance: Array, pixel: Array) -> Array:
    """How much of each pixel lies inside a shape (distance < 0 inside): soft edges."""
    return np.clip(0.5 - distance / pixel, 0.0, 1.0)


def _paint(image: Array, amount: Array, value: Array | float) -> Array:
    """Paint value over image where amount (0..1) says how opaque the paint is."""
    return image + amount * (value - image)


def _ellipse(u: Array, v: Array, cu: float, cv: float, a: Array, b: Array) -> Array:
    """Approximate signed distance to an ellipse centred at (cu, cv) with half-axes a, b."""
    return (np.sqrt(((u - cu) / a) ** 2 + ((v - cv) / b) ** 2) - 1.0) * np.minimum(a, b)


def _stroke(u: Array, v: Array, u0: float, u1: float, curve: Curve, slope: Curve) -> Array:
    """Approximate distance to the curve v = curve(u) drawn for u between u0 and u1."""
    uc = np.clip(u, u0, u1)
    across = (v - curve(uc)) / np.sqrt(1.0 + slope(uc) ** 2)
    return np.sqrt((u - uc) ** 2 + across**2)


def _segment(u: Array, v: Array, a: tuple[float, float], b: tuple[float, float]) -> Array:
    """Distance to the straight line from point a to point b."""
    du, dv = b[0] - a[0], b[1] - a[1]
    pu, pv = u - a[0], v - a[1]
    t = np.clip((pu * du + pv * dv) * (1.0 / (du * du + dv * dv)), 0.0, 1.0)
    pu, pv = pu - t * du, pv - t * dv
    return np.sqrt(pu * pu + pv * pv)


def _face_frame(p: Params) -> tuple[Array, Array, Array, Array, Array]:
    """Image grid (x, y in -1..1, y down), the same grid in each face's own frame (u, v)
    and the size of one pixel in face units (for soft edges)."""
    centres = (np.arange(SIZE, dtype=np.float32) + 0.5) / (SIZE / 2) - 1.0
    x, y = centres[None, None, :], centres[None, :, None]
    dx, dy = x - p["cx"], y - p["cy"]
    cos, sin = np.cos(p["tilt"]), np.sin(p["tilt"])
    u = p["flip"] * (dx * cos + dy * sin) / p["scale"]
    v = (-dx * sin + dy * cos) / p["scale"]
    return x, y, u, v, (2.0 / SIZE) / p["scale"]


def _render(p: Params, noise: Array) -> Array:
    """Draw one chunk of faces; p holds (n, 1, 1) parameter arrays; returns uint8 images."""
    x, y, u, v, pixel = _face_frame(p)
    image = np.broadcast_to(p["background"], u.shape).astype(np.float32)
    face = _ellipse(u, v, 0.0, 0.0, p["face_w"], p["face_h"])
    image = _paint(image, _coverage(face, pixel), p["skin"])
    for draw in (_draw_hair, _draw_eyes, _draw_brows, _draw_nose, _draw_mouth):
        image = draw(image, u, v, pixel, p)

    # Lighting from one side, then contrast, then sensor noise.
    ca, sa = np.cos(p["light_angle"]), np.sin(p["light_angle"])
    image = image * (1.0 + p["light"] * (x * ca + y * sa))
    image = 0.5 + p["contrast"] * (image - 0.5) + p["noise"] * noise
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def _draw_hair(image: Array, u: Array, v: Array, pixel: Array, p: Params) -> Array:
    """Hair: a cap over the top of the oval, down to a curved hairline (some faces have none)."""
    cap = _ellipse(u, v, 0.0, -0.04, p["face_w"] + 0.07, p["face_h"] + 0.06)
    above = v - (p["hairline"] + 0.35 * u**2)
    amount = _coverage(np.maximum(cap, above), pixel) * (p["has_hair"] > 0.2)
    return _paint(image, amount, p["hair"])


def _draw_eyes(image: Array, u: Array, v: Array, pixel: Array, p: Params) -> Array:
    """Eyes: a white, an iris and a dark lid outline; eye_open sets how tall they are."""
    t, dark = np.abs(u), _DARK * p["skin"]  # |u| draws the left and the right eye at once
    half_w = 0.13
    half_h = half_w * p["eye_open"]
    eye = _ellipse(t, v, 0.24, -0.13, half_w, half_h)
    image = _paint(image, _coverage(eye, pixel), np.minimum(1.0, p["skin"] + 0.35))
    iris = _ellipse(t, v, 0.24, -0.13, 0.055, 0.055)
    image = _paint(image, _coverage(np.maximum(iris, eye), pixel), 0.6 * dark)
    return _paint(image, _coverage(np.abs(eye) - 0.022, pixel), dark)


def _draw_brows(image: Array, u: Array, v: Array, pixel: Array, p: Params) -> Array:
    """Brows: slanted, arched curves above the eyes (s = -1 at the inner end, +1 outer)."""
    inner, outer, height = 0.08, 0.42, -0.36
    mid, half = (inner + outer) / 2, (outer - inner) / 2

    def curve(tc: Array) -> Array:
        s = (tc - mid) / half
        return height - p["brow_raise"] + p["brow_slant"] * s - p["brow_arch"] * (1 - s * s)

    def slope(tc: Array) -> Array:
        s = (tc - mid) / half
        return (p["brow_slant"] + 2 * p["brow_arch"] * s) / half

    brow = _stroke(np.abs(u), v, inner, outer, curve, slope) - 0.035
    return _paint(image, _coverage(brow, pixel), _DARK * p["skin"])


def _draw_nose(image: Array, u: Array, v: Array, pixel: Array, p: Params) -> Array:
    """A faint nose, plus wrinkles across its bridge when wrinkle > 0 (disgust)."""
    t, shade = np.abs(u), 0.7 * p["skin"]
    nose = np.minimum(
        _segment(t, v, (0.06, 0.17), (0.0, 0.2)), _segment(u, v, (0, -0.02), (0, 0.15))
    )
    image = _paint(image, 0.7 * _coverage(nose - 0.018, pixel), shade)
    wrinkle = np.minimum(
        _segment(t, v, (0.03, -0.06), (0.13, -0.01)), _segment(t, v, (0.03, 0.02), (0.12, 0.06))
    )
    return _paint(image, p["wrinkle"] * _coverage(wrinkle - 0.02, pixel), 0.5 * p["skin"])


def _draw_mouth(image: Array, u: Array, v: Array, pixel: Array, p: Params) -> Array:
    """Mouth: the region between an upper and a lower lip curve, with a dark outline.

    mouth_bend lifts (+) or drops (-) the corners, mouth_open separates the lips into an
    oval, sneer raises one corner; teeth fill the upper half of an open mouth.
    """
    w, dark = p["mouth_width"], _DARK * p["skin"]
    s = np.clip(u / w, -1.0, 1.0)
    centre = 0.42 + 0.3 * p["mouth_open"] - p["mouth_bend"] * (s * s - 0.3) - p["sneer"] * s
    gap = 0.5 * p["mouth_open"] * np.sqrt(1.0 - s * s)
    mouth = np.maximum(np.maximum(centre - gap - v, v - centre - gap), np.abs(u) - w)
    inside = _coverage(mouth, pixel)
    image = _paint(image, inside, 0.4 * dark)
    teeth = inside * _coverage(v - centre + 0.15 * gap, pixel) * p["teeth"]
    image = _paint(image, teeth, np.minimum(1.0, p["skin"] + 0.3))
    return _paint(image, _coverage(np.abs(mouth) - 0.025, pixel), dark)
