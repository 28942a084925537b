"""Decoding images once into uint8 arrays, and caching the result.

Training reads tensors from memory, never JPEG files per epoch: the first run
decodes every image into one (N, 48, 48) uint8 array per split and saves it
under data/cache/; later runs load that file in a fraction of a second. The
cache key hashes the source's file names, sizes and modification times, so a
changed copy of FER2013 is decoded again.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from .errors import DataError
from .files import atomic_write
from .sources import FoundData, SplitSource

SIZE = 48
CACHE_VERSION = 1


def decode_file(path: Path) -> tuple[np.ndarray, bool, bool]:
    """Read one image as 48x48 grayscale uint8.

    Returns (pixels, was_colour, was_resized); raises DataError naming the file
    when it cannot be decoded.
    """
    try:
        with Image.open(path) as image:
            image.load()
            colour = image.mode not in ("L", "1", "I;16", "I", "F")
            gray = image.convert("L")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DataError(f"cannot decode image {path}: {err}") from err
    resized = gray.size != (SIZE, SIZE)
    if resized:
        gray = gray.resize((SIZE, SIZE), Image.BILINEAR)
    return np.asarray(gray, dtype=np.uint8), colour, resized


def decode_pixels(text: str, where: str) -> np.ndarray:
    """Parse a CSV 'pixels' string of 2,304 space-separated values into 48x48 uint8."""
    try:
        values = np.array(text.split(), dtype=np.int64)
    except (AttributeError, ValueError) as err:
        raise DataError(f"{where}: pixels are not space-separated integers") from err
    if values.size != SIZE * SIZE:
        raise DataError(f"{where}: {values.size} pixel values, expected {SIZE * SIZE} (48x48)")
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{where}: pixel values outside 0..255")
    return values.astype(np.uint8).reshape(SIZE, SIZE)


def decode_split(source: SplitSource) -> np.ndarray:
    """Decode every image of a split into an (N, 48, 48) uint8 array.

    Images that are in colour or not 48x48 are converted, with one warning
    saying how many.
    """
    images = np.empty((len(source), SIZE, SIZE), dtype=np.uint8)
    if source.pixels is not None:
        for i, (text, where) in enumerate(zip(source.pixels, source.ids, strict=True)):
            images[i] = decode_pixels(text, where)
        return images
    assert source.files is not None
    colour = resized = 0
    # One thread: for 48x48 JPEGs a thread pool was slower here (GIL-bound overhead).
    for i, path in enumerate(
        tqdm(
            source.files,
            desc=f"decoding {source.name}",
            unit="img",
            leave=False,
            disable=len(source.files) < 2000,
        )
    ):
        images[i], was_colour, was_resized = decode_file(path)
        colour += was_colour
        resized += was_resized
    if colour or resized:
        warnings.warn(
            f"{source.name}: converted {colour} colour image(s) to grayscale and resized "
            f"{resized} image(s) that were not 48x48 to 48x48",
            stacklevel=2,
        )
    return images


def cache_key(found: FoundData, selection: str) -> str:
    """A hash of what was found (names, sizes, times) and of which images were picked."""
    digest = hashlib.sha256()
    header = {
        "version": CACHE_VERSION,
        "root": str(found.root.resolve()),
        "layout": found.layout,
        "selection": selection,
        "counts": {name: len(s) for name, s in found.splits.items()},
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for path in found.fingerprint_files:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def load_cache(path: Path, splits: list[str]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in splits}
    except (OSError, KeyError, ValueError):
        return None  # a damaged cache is rebuilt, never trusted


def save_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the arrays atomically: a crash never leaves a half-written cache."""
    with atomic_write(path) as file:
        np.savez(file, **arrays)
