"""Decoding images once into uint8 arrays, and caching the result.

Training reads tensors from memory, never JPEG files per epoch: the first run
decodes every image into one (N, 48, 48) uint8 array per split and saves it
under data/cache/; later runs load that file in a fraction of a second. The
cache key hashes the source's file names, sizes and modification times, so a
changed copy of FER2013 is decoded again.

Any image file is read the same way (read_gray): its header is checked first
(too small to hold a face, or so large that decoding it could exhaust memory,
is refused before decoding), then it is turned upright by its EXIF
orientation and converted to 8-bit grayscale: colour and CMYK by luminance,
16-bit by scaling to 8 bits (not by clipping), transparency flattened onto
white. decode_images then brings each image to 48x48 with a `fit` function
(plain resizing by default; the command line crops to the face) and counts
what was done.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from .errors import DataError
from .files import atomic_write
from .sources import FoundData, SplitSource

SIZE = 48
CACHE_VERSION = 1
MIN_SIDE = 16  # pixels: a smaller image cannot hold a face worth reading
# A 50-megapixel photo (a phone's full resolution) decodes to 150 MB in RGB; larger
# images are refused from their header, before any memory is spent on their pixels.
MAX_PIXELS = 50_000_000
IMAGE_TYPES = "a PNG or JPEG image"

CONVERSION_WORDS = {  # what read_gray may do to an image, in words for reports
    "colour": "colour converted to grayscale",
    "cmyk": "CMYK converted to grayscale",
    "16-bit": "16-bit scaled to 8 bits",
    "transparency": "transparent pixels flattened onto white",
    "exif-rotated": "turned upright by their EXIF orientation",
}
_GRAY_MODES = {"1", "L", "LA", "La"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}

Fit = Callable[[np.ndarray], tuple[np.ndarray, str]]
"""Brings a grayscale image (H, W) to 48x48 uint8; returns it and a word for what it did."""


def read_gray(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read an image file as 8-bit grayscale (H, W) at its own size.

    Returns (pixels, conversions): the keys of CONVERSION_WORDS that applied.
    Raises DataError naming the file and what was expected when it is not an
    image, is smaller than MIN_SIDE pixels on a side, or has more than
    MAX_PIXELS pixels (refused from the header, before decoding).
    """
    path = Path(path)
    with warnings.catch_warnings():
        # Pillow warns above its own limit; the size check below refuses such images anyway.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as err:  # far above MAX_PIXELS: Pillow refuses
            raise DataError(
                f"image {path} is too large, refused from its header before decoding: "
                f"{str(err).rstrip('.')}; expected at most {MAX_PIXELS / 1e6:.0f} megapixels"
            ) from err
        except UnidentifiedImageError as err:
            raise DataError(
                f"cannot decode image {path}: the file is not an image; expected {IMAGE_TYPES}"
            ) from err
        except OSError as err:
            raise _damaged(path, err) from err
    with image:
        check_image_size(*image.size, path)
        try:
            image.load()
            return _to_gray(image, path)
        except (OSError, ValueError, SyntaxError) as err:  # SyntaxError: Pillow's "broken PNG"
            raise _damaged(path, err) from err


def check_image_size(width: int, height: int, name: str | Path) -> None:
    """Refuse, naming the image, one too large to decode safely or too small to hold a face."""
    if width * height > MAX_PIXELS:
        raise DataError(
            f"image {name} is {width}x{height} pixels ({width * height / 1e6:.0f} "
            f"megapixels): refused before decoding, expected at most "
            f"{MAX_PIXELS / 1e6:.0f} megapixels"
        )
    if min(width, height) < MIN_SIDE:
        raise DataError(
            f"image {name} is {width}x{height} pixels: too small to hold a face, "
            f"expected at least {MIN_SIDE}x{MIN_SIDE}"
        )


def header_size(content: bytes) -> tuple[int, int] | None:
    """(width, height) from an image file's header, without decoding it; None if unreadable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(content)) as image:
                return image.size
        except Image.DecompressionBombError:
            return (MAX_PIXELS + 1, 1)  # Pillow's own limit is far above ours: too large
        except (UnidentifiedImageError, OSError):
            return None


def _damaged(path: Path, err: Exception) -> DataError:
    return DataError(
        f"cannot decode image {path}: {err} (a damaged or incomplete file; expected {IMAGE_TYPES})"
    )


def _to_gray(image: Image.Image, path: Path) -> tuple[np.ndarray, list[str]]:
    conversions = []
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:  # a phone photo held sideways
        conversions.append("exif-rotated")
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode == "F":
        raise DataError(
            f"image {path} has 32-bit floating-point pixels: expected an 8- or 16-bit image"
        )
    if mode.startswith("I;16") or mode == "I":
        return _deep_gray(image, path), conversions + ["16-bit"] * _is_16_bit(image)
    if mode == "CMYK":
        conversions.append("cmyk")
    elif mode not in _GRAY_MODES:
        conversions.append("colour")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:  # an opaque alpha changes nothing
            conversions.append("transparency")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, rgba)
        else:
            image = rgba
    return np.asarray(image.convert("L"), dtype=np.uint8), conversions


def _is_16_bit(image: Image.Image) -> bool:
    return image.mode.startswith("I;16") or (
        image.mode == "I" and np.asarray(image).max(initial=0) > 255
    )


def _deep_gray(image: Image.Image, path: Path) -> np.ndarray:
    """8-bit gray of a 16-bit (or 32-bit integer) gray image: scaled by 255/65535, not clipped.

    Pillow's own convert("L") clips every value above 255 to white.
    """
    values = np.asarray(image)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DataError(
            f"image {path} has {image.mode} pixels outside 0..65535: expected an 8- or 16-bit image"
        )
    if not _is_16_bit(image):
        return values.astype(np.uint8)  # 8-bit values stored in a wider mode
    return np.rint(values.astype(np.float64) * (255 / 65535)).astype(np.uint8)


def resize_to_48(gray: np.ndarray) -> tuple[np.ndarray, str]:
    """The default Fit: squash any image to 48x48 (bilinear), as FER2013 copies need."""
    if gray.shape == (SIZE, SIZE):
        return gray, "as-is"
    return np.asarray(Image.fromarray(gray).resize((SIZE, SIZE), Image.BILINEAR)), "resized"


@dataclass
class DecodedImages:
    """The images of a split that could be read, and what was done to them."""

    images: np.ndarray  # (N, 48, 48) uint8, the readable files in the source's order
    kept: np.ndarray  # position in the source of each image
    bad: list[str] = field(default_factory=list)  # one message per file left out (skip_bad)
    conversions: Counter = field(default_factory=Counter)  # keys of CONVERSION_WORDS
    framing: Counter = field(default_factory=Counter)  # the Fit's words: "as-is", ...


def decode_images(
    source: SplitSource, fit: Fit = resize_to_48, skip_bad: bool = False
) -> DecodedImages:
    """Decode every file of a split with read_gray and bring it to 48x48 with `fit`.

    A file that cannot be read raises DataError naming it, unless skip_bad:
    then it is left out and its message kept in `bad`.
    """
    if source.files is None:
        raise DataError(f"the {source.name} split holds CSV pixels, not image files")
    images = np.empty((len(source), SIZE, SIZE), dtype=np.uint8)
    kept, bad = [], []
    conversions, framing = Counter(), Counter()
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
        try:
            gray, done = read_gray(path)
        except DataError as err:
            if not skip_bad:
                raise
            bad.append(str(err))
            continue
        pixels, how = fit(gray)
        images[len(kept)] = pixels
        kept.append(i)
        conversions.update(done)
        framing[how] += 1
    if bad:
        images = images[: len(kept)].copy()  # not a view that keeps the unused rows alive
    return DecodedImages(images, np.asarray(kept, dtype=np.int64), bad, conversions, framing)


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
    if source.pixels is not None:
        images = np.empty((len(source), SIZE, SIZE), dtype=np.uint8)
        for i, (text, where) in enumerate(zip(source.pixels, source.ids, strict=True)):
            images[i] = decode_pixels(text, where)
        return images
    decoded = decode_images(source)
    colour = decoded.conversions["colour"] + decoded.conversions["cmyk"]
    resized = decoded.framing["resized"]
    if colour or resized:
        warnings.warn(
            f"{source.name}: converted {colour} colour image(s) to grayscale and resized "
            f"{resized} image(s) that were not 48x48 to 48x48",
            stacklevel=2,
        )
    return decoded.images


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
