"""Loading the faces: FER2013 when you have it, synthetic faces when you don't.

    data = load_data()                       # finds FER2013, or makes synthetic faces
    print(data.describe())
    train = data.dataset("train")            # happy / neutral / sad, as the course uses
    loader = FaceLoader(train, batch_size=32, shuffle=True)
    x, y = next(iter(loader))                # x: (32, 3, 48, 48) in [-1, 1], y: (32,)

Where the data come from, in this order: the `data` argument (a folder, a CSV
file, or "synthetic"), the FER2013_DIR environment variable, the repository's
data/fer2013/ folder. When none is given and data/fer2013/ does not exist,
the faces are synthetic, and every entry point says so loudly.

Set FER_TINY=1 for a few images per class (what CI runs): the same code path
on less data.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import synthetic
from .audit import audit_data
from .augment import Augment, mixup
from .decode import cache_key, decode_split, load_cache, save_cache
from .errors import DataError
from .labels import COURSE_CLASSES, EMOTIONS, fer_labels, parse_classes
from .paths import DATA_DIR, cache_dir
from .sources import SPLITS, FoundData, find_fer2013

TINY_PER_CLASS = synthetic.TINY_COUNTS  # images per class with FER_TINY=1, in both data modes


def tiny_mode() -> bool:
    """True when FER_TINY is set to 1/true/yes: a few images per class, for CI."""
    return os.environ.get("FER_TINY", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class FaceSplit:
    """One split's faces in memory: uint8 images (N, 48, 48) and FER2013 labels (N,)."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray  # file name or CSV row of each image, for messages and the audit

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> np.ndarray:
        """Images per FER2013 class, in label order (angry ... neutral)."""
        return np.bincount(self.labels, minlength=len(EMOTIONS))

    def take(self, index: np.ndarray) -> FaceSplit:
        """The faces at these positions (a boolean mask or integer indices)."""
        return FaceSplit(self.name, self.images[index], self.labels[index], self.ids[index])

    def capped(self, per_class: int, seed: int = 0) -> FaceSplit:
        """At most per_class faces of each label: a seeded random choice, in the split's order."""
        rng = np.random.default_rng(seed)
        chosen = [
            rng.permutation(np.flatnonzero(self.labels == label))[:per_class]
            for label in range(len(EMOTIONS))
        ]
        return self.take(np.sort(np.concatenate(chosen)))


@dataclass
class FaceData:
    """Every split that was found, with where it came from."""

    splits: dict[str, FaceSplit]
    source: str  # "FER2013" or "synthetic"
    layout: str
    root: Path | None = None
    notes: list[str] = field(default_factory=list)
    tiny: bool = False

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

    @property
    def tag(self) -> str:
        """ "" for full FER2013, else "synthetic", "tiny" or "synthetic-tiny" (for file names)."""
        return "-".join(t for t, on in (("synthetic", self.synthetic), ("tiny", self.tiny)) if on)

    def __getitem__(self, split: str) -> FaceSplit:
        if split not in self.splits:
            raise DataError(
                f"no {split!r} split in {self.root or self.source} ({self.layout}): "
                f"it has {', '.join(self.splits) or 'no splits'}"
            )
        return self.splits[split]

    def counts(self) -> pd.DataFrame:
        """Images per class (rows, FER2013 order) and split (columns), with a total row."""
        table = pd.DataFrame(
            {name: split.class_counts() for name, split in self.splits.items()}, index=EMOTIONS
        )
        table.loc["total"] = table.sum()
        return table

    def describe(self) -> str:
        """A few lines saying what was loaded; synthetic data say so first."""
        lines = [synthetic.SYNTHETIC_NOTICE] if self.synthetic else []
        where = f" at {self.root}" if self.root else ""
        lines.append(
            f"Data: {self.source}{where}, layout: {self.layout}"
            + (" [FER_TINY: a few images per class]" if self.tiny else "")
        )
        lines += [f"  {name}: {len(split):,} images" for name, split in self.splits.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def dataset(
        self,
        split: str,
        classes: str | Sequence[str] | None = COURSE_CLASSES,
        channels: int = 3,
        clean: bool = False,
        per_class: int | None = None,
        seed: int = 0,
    ) -> FaceDataset:
        """A torch Dataset of one split restricted to `classes` (names, in output order).

        clean=True drops from the train split what the audit flags: blank images,
        repeated copies, and images that also appear in validation or test.
        per_class keeps at most that many faces of each class (FaceSplit.capped, seeded).
        """
        faces = self[split]
        if clean:
            if split != "train":
                raise DataError(
                    "clean=True only applies to the train split; "
                    "evaluation splits are kept whole so results stay comparable"
                )
            faces = faces.take(audit_data(self).training_keep_mask())
        if per_class is not None:
            faces = faces.capped(per_class, seed)
        return FaceDataset(faces, classes, channels)


def to_model_input(images: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """uint8 (B, 1, H, W) -> float32 (B, channels, H, W) in [-1, 1], as the course normalises.

    x = u8 / 127.5 - 1 is the same as ToTensor() then Normalize(mean=0.5, std=0.5).
    """
    x = images.float().div_(127.5).sub_(1.0)
    return x.expand(-1, channels, -1, -1).contiguous() if channels != 1 else x


class FaceDataset(torch.utils.data.Dataset):
    """One split's faces of some classes, served as normalised tensors from memory.

    Works with torch's DataLoader (item by item) and with FaceLoader (whole
    batches at once, much faster). Targets are 0..k-1 in the order of `class_names`.
    """

    def __init__(
        self,
        faces: FaceSplit,
        classes: str | Sequence[str] | None = COURSE_CLASSES,
        channels: int = 3,
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {channels}")
        self.class_names = parse_classes(classes)
        wanted = np.asarray(fer_labels(self.class_names))
        keep = np.isin(faces.labels, wanted)
        # Position of each FER2013 label in the class list: the model's target.
        to_target = np.full(len(EMOTIONS), -1, dtype=np.int64)
        to_target[wanted] = np.arange(len(wanted))
        self.split = faces.name
        self.channels = channels
        self.ids = faces.ids[keep]
        self.images = torch.from_numpy(np.ascontiguousarray(faces.images[keep])).unsqueeze(1)
        self.targets = torch.from_numpy(to_target[faces.labels[keep]])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return to_model_input(self.images[i : i + 1], self.channels)[0], int(self.targets[i])

    def batch(
        self,
        index: torch.Tensor,
        augment: Augment | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The faces at `index` as one normalised batch, augmented if asked."""
        x = to_model_input(self.images[index], channels=1)
        if augment is not None:
            x = augment(x, generator)
        return x.expand(-1, self.channels, -1, -1).contiguous(), self.targets[index]

    def class_counts(self) -> np.ndarray:
        """Images per class, in the order of class_names."""
        return np.bincount(self.targets.numpy(), minlength=len(self.class_names))

    def fingerprint(self) -> str:
        """A short hash of the faces and their targets: equal only for the same faces."""
        digest = hashlib.blake2b(digest_size=12)
        digest.update(self.images.numpy().tobytes())
        digest.update(self.targets.numpy().tobytes())
        return digest.hexdigest()


class FaceLoader:
    """Batches from a FaceDataset, built by tensor indexing (no worker processes needed).

    Like DataLoader(dataset, batch_size, shuffle), but one indexing operation per
    batch instead of one Python call per image. The shuffling generator is part
    of the state a checkpoint saves, so a resumed run sees the same batches.

    balanced=True draws each epoch's images with replacement, every class equally
    often on average (like WeightedRandomSampler with weights 1 / class count):
    rare classes are seen many times, common ones not all.

    rank and world_size split every epoch between data-parallel processes
    (torchrun): all of them draw the same order from the same seed and process
    `rank` takes every world_size-th image of it, cut so that every process has
    the same number of batches (a process waiting for one more batch would hang).

    mixup=alpha > 0 mixes the faces of every batch in pairs (augment.mixup) and yields
    soft targets, shape (batch, classes), instead of labels.
    """

    def __init__(
        self,
        dataset: FaceDataset,
        batch_size: int = 32,
        shuffle: bool = False,
        augment: Augment | None = None,
        drop_last: bool = False,
        seed: int = 0,
        balanced: bool = False,
        rank: int = 0,
        world_size: int = 1,
        mixup: float = 0.0,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        if world_size > 1 and not (shuffle or balanced):
            raise ValueError("only a shuffled training loader is split between processes")
        self.rank, self.world_size = rank, world_size
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.balanced = balanced
        self.augment = augment
        self.drop_last = drop_last
        self.mixup = mixup
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.dataset) // self.world_size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.dataset)
        if self.balanced:
            counts = torch.bincount(self.dataset.targets, minlength=len(self.dataset.class_names))
            weights = 1.0 / counts.clamp(min=1).double()[self.dataset.targets]
            order = torch.multinomial(weights, n, replacement=True, generator=self.generator)
        elif self.shuffle:
            order = torch.randperm(n, generator=self.generator)
        else:
            order = torch.arange(n)
        if self.world_size > 1:
            share = n // self.world_size
            order = order[self.rank :: self.world_size][:share]
        for b in range(len(self)):
            index = order[b * self.batch_size : (b + 1) * self.batch_size]
            x, y = self.dataset.batch(index, self.augment, self.generator)
            if self.mixup:
                x, y = mixup(x, y, len(self.dataset.class_names), self.mixup, self.generator)
            yield x, y

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])


def resolve_source(data: str | os.PathLike | None = None) -> Path | None:
    """The FER2013 location to use, or None for synthetic faces.

    An explicit `data` or FER2013_DIR that does not exist is an error (a typo
    should not silently train on synthetic faces); a missing data/fer2013/ is not.
    """
    for given, what in ((data, "--data"), (os.environ.get("FER2013_DIR") or None, "FER2013_DIR")):
        if given is None:
            continue
        if str(given).strip().lower() == "synthetic":
            return None
        path = Path(given).expanduser()
        if not path.exists():
            raise DataError(
                f"{what} points to {path}, which does not exist "
                f"(use {what}=synthetic for synthetic faces)"
            )
        return path
    default = DATA_DIR / "fer2013"
    return default if default.exists() else None


def load_data(
    data: str | os.PathLike | None = None,
    tiny: bool | None = None,
    use_cache: bool = True,
    verbose: bool = True,
) -> FaceData:
    """Load every split into memory: FER2013 if found (see resolve_source), else synthetic.

    The first FER2013 load decodes the images (tens of seconds) and caches
    them under data/cache/; later loads take well under a second.
    """
    tiny = tiny_mode() if tiny is None else tiny
    root = resolve_source(data)
    if root is None:
        loaded = load_synthetic(tiny)
    else:
        loaded = load_fer2013(find_fer2013(root), tiny, use_cache)
    if verbose:
        print(loaded.describe())
    return loaded


def load_synthetic(tiny: bool = False) -> FaceData:
    """Deterministic synthetic faces for every split (see fer_helpers.synthetic)."""
    splits = {}
    for name in SPLITS:
        images, labels = synthetic.generate_split(name, tiny=tiny)
        ids = np.array([f"synthetic-{name}-{i}" for i in range(len(labels))])
        splits[name] = FaceSplit(name, images, labels, ids)
    return FaceData(splits, "synthetic", "generated in memory", tiny=tiny)


def _tiny_selection(found: FoundData) -> FoundData:
    """The first few images of every class in every split, before anything is decoded."""
    splits = {}
    for name, source in found.splits.items():
        per_class = TINY_PER_CLASS.get(name, 8)
        pick = np.concatenate(
            [np.flatnonzero(source.labels == c)[:per_class] for c in range(len(EMOTIONS))]
        )
        splits[name] = source.take(np.sort(pick))
    return FoundData(found.root, found.layout, splits, found.notes, found.fingerprint_files)


def load_fer2013(found: FoundData, tiny: bool = False, use_cache: bool = True) -> FaceData:
    """Decode (or load from the cache) every split of a FER2013 copy that was found."""
    if tiny:
        found = _tiny_selection(found)
    names = list(found.splits)
    cache_file = cache_dir() / f"fer2013-{cache_key(found, 'tiny' if tiny else 'all')}.npz"
    images = load_cache(cache_file, names) if use_cache else None
    if images is None:
        images = {name: decode_split(found.splits[name]) for name in names}
        if use_cache:
            save_cache(cache_file, images)
    splits = {
        name: FaceSplit(
            name, images[name], found.splits[name].labels, np.asarray(found.splits[name].ids)
        )
        for name in names
    }
    return FaceData(splits, "FER2013", found.layout, found.root, found.notes, tiny)
