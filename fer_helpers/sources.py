"""Finding FER2013 on disk, in whichever layout it was downloaded.

FER2013 circulates in several shapes. This module recognises them and lists,
for every split, which images belong to it and with which FER2013 label,
without decoding anything yet (decoding is `decode.py`'s job):

- the original CSV, `fer2013.csv` or `icml_face_data.csv`: columns emotion,
  pixels and Usage (Training / PublicTest / PrivateTest);
- Kaggle's challenge files, `train.csv` (emotion, pixels) and an unlabelled
  `test.csv`, which cannot be used for evaluation;
- class folders `train/` + `test/`, where file prefixes (Training_,
  PublicTest_, PrivateTest_) tell the splits apart;
- class folders `images/train` + `images/validation`;
- class folders `train/` + `validation/` [+ `test/`].

Any other labelled folder (one sub-folder per emotion, of any data set) is
read by find_labelled_folder, as one split called "folder".

Splits are called train, validation (FER2013's PublicTest) and test
(PrivateTest). A file's prefix, when it has one, decides its split; otherwise
the folder it sits in does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ClassNameError, DataError
from .labels import EMOTIONS, canonical_name

SPLITS: tuple[str, ...] = ("train", "validation", "test")
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
FOLDER_TO_SPLIT = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "test": "test",
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".gif", ".tif", ".tiff", ".webp"}
LAYOUTS_TRIED = (
    "fer2013.csv or icml_face_data.csv (emotion, pixels, Usage)",
    "train.csv (emotion, pixels) [+ test.csv]",
    "train/ + test/ class folders (Training_/PublicTest_/PrivateTest_ file prefixes)",
    "images/train + images/validation class folders",
    "train/ + validation/ [+ test/] class folders",
)
FOLDER_SPLIT = "folder"  # the one split of a labelled folder (find_labelled_folder)
_NOT_DATA = {"__MACOSX"}  # what unpacking a zip made on a Mac leaves beside the data


@dataclass
class SplitSource:
    """One split's images before decoding: files, or CSV pixel strings."""

    name: str
    labels: np.ndarray  # int64 FER2013 labels (0..6)
    ids: list[str]  # what to call each image in messages: a relative path or "file.csv row N"
    files: list[Path] | None = None
    pixels: list[str] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> SplitSource:
        """The images at these positions, in this order."""
        pick = [int(i) for i in index]
        return SplitSource(
            self.name,
            self.labels[index],
            [self.ids[i] for i in pick],
            None if self.files is None else [self.files[i] for i in pick],
            None if self.pixels is None else [self.pixels[i] for i in pick],
        )


@dataclass
class FoundData:
    """Where FER2013 was found, in which layout, and what each split holds."""

    root: Path
    layout: str
    splits: dict[str, SplitSource]
    notes: list[str] = field(default_factory=list)
    fingerprint_files: list[Path] = field(default_factory=list)  # what the cache key hashes
    skipped: dict[str, int] = field(default_factory=dict)  # folder of an unknown class: images


def find_fer2013(root: Path) -> FoundData:
    """Recognise the layout of a FER2013 copy at `root` (a folder or a CSV file).

    Raises DataError naming the folder and every layout tried when none fits.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"FER2013 folder {root} does not exist")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DataError(f"{root} is a file but not a CSV: expected a folder or fer2013.csv")
        return _from_csv(root)
    for finder in (_find_csv, _find_train_csv, _find_folders):
        found = finder(root)
        if found is not None:
            return found
    tried = "; ".join(LAYOUTS_TRIED)
    raise DataError(f"no FER2013 layout found in {root}: tried {tried}")


def _find_csv(root: Path) -> FoundData | None:
    for name in ("fer2013.csv", "icml_face_data.csv"):
        for path in (root / name, root / "fer2013" / name):
            if path.is_file():
                return _from_csv(path)
    return None


def _read_csv(path: Path, needed: tuple[str, ...]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read CSV {path}: {err}") from err
    # icml_face_data.csv writes its headers as "emotion, Usage, pixels".
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in needed if c not in table.columns]
    if "emotion" in missing:
        raise DataError(
            f"{path} has no labels: it lacks the 'emotion' column "
            f"(found columns: {', '.join(table.columns)}); a file without labels cannot be "
            "used for training or evaluation"
        )
    if missing:
        raise DataError(
            f"{path} lacks column(s) {', '.join(missing)}: expected {', '.join(needed)} "
            f"(found: {', '.join(table.columns)})"
        )
    return table


def _csv_labels(table: pd.DataFrame, path: Path) -> np.ndarray:
    labels = pd.to_numeric(table["emotion"].str.strip(), errors="coerce")
    bad = labels.isna() | ~labels.isin(range(len(EMOTIONS)))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path} row {row + 2}: emotion {table['emotion'].iloc[row]!r} is not a FER2013 "
            "label 0..6 (missing labels cannot be used)"
        )
    return labels.to_numpy(dtype=np.int64)


def _from_csv(path: Path) -> FoundData:
    table = _read_csv(path, ("emotion", "pixels", "Usage"))
    labels = _csv_labels(table, path)
    usage = table["Usage"].fillna("").str.strip()  # an empty cell reads as NaN
    unknown = sorted(set(usage) - set(USAGE_TO_SPLIT))
    if unknown:
        empty = f"{(usage == '').sum()} empty cell(s)" if "" in unknown else ""
        named = ", ".join([repr(u) for u in unknown if u] + ([empty] if empty else []))
        raise DataError(
            f"{path}: unknown Usage value(s) {named}: expected Training, PublicTest, PrivateTest"
        )
    splits = {}
    for usage_name, split in USAGE_TO_SPLIT.items():
        rows = np.flatnonzero((usage == usage_name).to_numpy())
        if len(rows):
            splits[split] = SplitSource(
                split,
                labels[rows],
                [f"{path.name} row {r + 2}" for r in rows],  # row 1 is the header
                pixels=table["pixels"].iloc[rows].tolist(),
            )
    return FoundData(path.parent, f"CSV {path.name}", splits, fingerprint_files=[path])


def _find_train_csv(root: Path) -> FoundData | None:
    path = root / "train.csv"
    if not path.is_file():
        return None
    table = _read_csv(path, ("emotion", "pixels"))
    labels = _csv_labels(table, path)
    split = SplitSource(
        "train",
        labels,
        [f"train.csv row {r + 2}" for r in range(len(table))],
        pixels=table["pixels"].tolist(),
    )
    notes = ["train.csv has only the Training split: there is no validation split to evaluate on"]
    if (root / "test.csv").is_file():
        notes.append("test.csv has no labels (Kaggle's challenge file): it is not used")
    return FoundData(root, "CSV train.csv", {"train": split}, notes, [path])


def _prefix_split(path: Path) -> str | None:
    """The split a FER2013 file name's prefix names (Training_, PublicTest_, ...), if any."""
    for prefix, split in USAGE_TO_SPLIT.items():
        if path.name.startswith(prefix + "_"):
            return split
    return None


def _find_folders(root: Path) -> FoundData | None:
    base = root / "images" if (root / "images" / "train").is_dir() else root
    folders = {}
    for child in sorted(base.iterdir()):
        split = FOLDER_TO_SPLIT.get(child.name.lower())
        if child.is_dir() and split is not None:
            folders[child] = split
    if not any(split == "train" for split in folders.values()) or len(folders) < 2:
        return None
    files: dict[str, list[Path]] = {s: [] for s in SPLITS}
    labels: dict[str, list[int]] = {s: [] for s in SPLITS}
    notes = []
    for folder, folder_split in folders.items():
        class_dirs = [
            d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
        ]
        if not class_dirs:
            raise DataError(
                f"{folder} has no class folders: expected one folder per emotion "
                f"({', '.join(EMOTIONS)})"
            )
        unprefixed = 0
        for class_dir in class_dirs:
            try:
                label = EMOTIONS.index(canonical_name(class_dir.name))
            except ValueError as err:
                raise DataError(f"class folder {class_dir}: {err}") from err
            for path in sorted(class_dir.iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
                    continue
                prefix_split = _prefix_split(path)
                unprefixed += prefix_split is None
                split = prefix_split or folder_split
                files[split].append(path)
                labels[split].append(label)
        if folder_split == "test" and unprefixed:
            notes.append(
                f"{unprefixed} files in {folder} have no PublicTest_/PrivateTest_ "
                "prefix: they count as the test split"
            )
    splits = {
        s: SplitSource(
            s,
            np.asarray(labels[s], dtype=np.int64),
            [str(p.relative_to(base)) for p in files[s]],
            files=files[s],
        )
        for s in SPLITS
        if files[s]
    }
    layout = " + ".join(f"{f.relative_to(root)}/" for f in folders) + " class folders"
    every_file = [p for s in SPLITS for p in files[s]]
    return FoundData(root, layout, splits, notes, every_file)


def find_labelled_folder(root: Path) -> FoundData:
    """Every image in a folder of class folders, as one split called "folder".

    Class folders may use any case and the spellings other data sets use
    (Anger, happiness, Surprised, ...: labels.canonical_name); images may sit in
    sub-folders of a class folder. A folder of another class (contempt, say) is
    skipped: `skipped` and a note give its number of images. Files that are not
    images by their suffix are left out with a note; hidden files are ignored.
    Raises DataError when the folder is missing or holds no images of a known class.
    """
    root = Path(root).expanduser()
    expected = f"expected a folder with one sub-folder per emotion ({', '.join(EMOTIONS)})"
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        raise DataError(f"folder {root} {what}: {expected}")
    class_dirs = [
        d
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".") and d.name not in _NOT_DATA
    ]
    files: list[Path] = []
    labels: list[int] = []
    skipped: dict[str, int] = {}
    other_files: list[Path] = []
    for class_dir in class_dirs:
        images, others = _folder_images(class_dir)
        other_files += others
        try:
            label = EMOTIONS.index(canonical_name(class_dir.name))
        except ClassNameError:
            skipped[class_dir.name] = len(images)
            continue
        files += images
        labels += [label] * len(images)
    notes = [
        f"skipped {count} image(s) in {name}/: not one of FER2013's emotions"
        for name, count in skipped.items()
    ]
    other_files += [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
    if other_files:
        names = ", ".join(str(p.relative_to(root)) for p in sorted(other_files)[:3])
        more = f" and {len(other_files) - 3} more" if len(other_files) > 3 else ""
        notes.append(
            f"left out {len(other_files)} file(s) that are not images by their suffix, or "
            f"not in a class folder: {names}{more}"
        )
    if not files:
        found = ", ".join(f"{d.name}/" for d in class_dirs) or "no sub-folders"
        hint = ""
        if class_dirs and all(d.name.lower() in FOLDER_TO_SPLIT for d in class_dirs):
            hint = " (it holds split folders: give one of them, or read it as FER2013 with --data)"
        raise DataError(f"no images of a known emotion in {root} (found {found}){hint}: {expected}")
    split = SplitSource(
        FOLDER_SPLIT,
        np.asarray(labels, dtype=np.int64),
        [str(p.relative_to(root)) for p in files],
        files=files,
    )
    return FoundData(root, "class folders", {FOLDER_SPLIT: split}, notes, files, skipped)


def _folder_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) anywhere below a class folder, hidden ones ignored."""
    images, others = [], []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).parts
        if any(part.startswith(".") or part in _NOT_DATA for part in relative) or path.is_dir():
            continue
        (images if path.suffix.lower() in IMAGE_SUFFIXES else others).append(path)
    return images, others
