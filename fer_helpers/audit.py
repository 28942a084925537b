"""Data quality: blank images and exact duplicates, within and across splits.

FER2013 was collected by image search, and it shows: a dozen images are
entirely black, and some faces appear more than once, sometimes in training
and in validation (the model has then seen a validation image), sometimes
with two different labels. The audit finds both by comparing decoded pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from .labels import EMOTIONS

if TYPE_CHECKING:  # only a type: data.py imports this module (FaceData.dataset(clean=True))
    from .data import FaceData


@dataclass
class AuditReport:
    """What the audit found. Positions index the concatenation of splits in `split_names`."""

    split_names: list[str]
    split_of: np.ndarray  # index into split_names, per image
    position: np.ndarray  # position inside its split, per image
    labels: np.ndarray
    ids: np.ndarray
    blank: np.ndarray  # bool: every pixel the same value
    all_zero: np.ndarray  # bool: every pixel 0 (black)
    group: np.ndarray  # id of the group of identical images, per image

    @cached_property
    def duplicate_groups(self) -> list[np.ndarray]:
        """Groups (image numbers) of two or more byte-identical images, blanks excluded.

        Computed once: summary, examples and training_keep_mask all read it.
        """
        order = np.argsort(self.group, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(self.group[order]) != 0])
        groups = np.split(order, starts[1:])
        return [g for g in groups if len(g) > 1 and not self.blank[g[0]]]

    def summary(self) -> dict:
        """Counts as plain numbers (what `info --json` prints)."""
        names = self.split_names
        blank = {n: int(self.blank[self.split_of == i].sum()) for i, n in enumerate(names)}
        zero = {n: int(self.all_zero[self.split_of == i].sum()) for i, n in enumerate(names)}
        within = dict.fromkeys(self.split_names, 0)
        across: dict[str, int] = {}
        conflicting = 0
        for g in self.duplicate_groups:
            splits = self.split_of[g]
            for i, name in enumerate(self.split_names):
                within[name] += max(int((splits == i).sum()) - 1, 0)
            present = sorted(set(splits.tolist()))
            for a in present:
                for b in present:
                    if a < b:
                        key = f"{self.split_names[a]}-{self.split_names[b]}"
                        across[key] = across.get(key, 0) + 1
            conflicting += len(set(self.labels[g].tolist())) > 1
        return {
            "blank": blank,
            "all_zero": zero,
            "duplicate_groups": len(self.duplicate_groups),
            "extra_copies_within_split": within,
            "groups_shared_across_splits": across,
            "groups_with_conflicting_labels": conflicting,
            "dropped_from_training_by_clean": int((~self.training_keep_mask()).sum()),
        }

    def describe(self) -> str:
        """The summary in a few readable lines."""
        s = self.summary()
        lines = ["Audit:"]
        lines += [
            f"  {n}: {s['blank'][n]} blank images ({s['all_zero'][n]} all black), "
            f"{s['extra_copies_within_split'][n]} extra copies of another image"
            for n in self.split_names
        ]
        lines.append(
            f"  {s['duplicate_groups']} groups of identical images; shared across splits: "
            f"{s['groups_shared_across_splits'] or 'none'}; "
            f"{s['groups_with_conflicting_labels']} with conflicting labels"
        )
        if "train" in self.split_names:  # clean=True only ever drops training images
            lines.append(
                f"  clean=True drops {s['dropped_from_training_by_clean']} training images"
            )
        return "\n".join(lines)

    def examples(self, k: int = 5) -> list[list[str]]:
        """Up to k duplicate groups as 'split: id (label)' strings, to look at by hand."""
        return [
            [
                f"{self.split_names[self.split_of[i]]}: {self.ids[i]} ({EMOTIONS[self.labels[i]]})"
                for i in g
            ]
            for g in self.duplicate_groups[:k]
        ]

    def training_keep_mask(self) -> np.ndarray:
        """Which train images clean=True keeps: not blank, not a repeat, not in another split."""
        train = self.split_names.index("train") if "train" in self.split_names else -1
        keep = ~self.blank
        for g in self.duplicate_groups:
            in_train = g[self.split_of[g] == train]
            if len(in_train) < len(g):
                keep[in_train] = False  # also in validation or test: a leak
            else:
                keep[in_train[1:]] = False  # keep the first copy only
        return keep[self.split_of == train]


def audit_data(data: FaceData) -> AuditReport:
    """Find blank and byte-identical images in every split of `data`."""
    names = list(data.splits)
    images = np.concatenate([data.splits[n].images.reshape(len(data.splits[n]), -1) for n in names])
    split_of = np.concatenate([np.full(len(data.splits[n]), i) for i, n in enumerate(names)])
    position = np.concatenate([np.arange(len(data.splits[n])) for n in names])
    labels = np.concatenate([data.splits[n].labels for n in names])
    ids = np.concatenate([data.splits[n].ids for n in names])
    # Viewing each row as one opaque value lets np.unique compare whole images at once.
    rows = np.ascontiguousarray(images).view(np.dtype((np.void, images.shape[1])))[:, 0]
    _, group = np.unique(rows, return_inverse=True)
    blank = images.min(axis=1) == images.max(axis=1)
    all_zero = images.max(axis=1) == 0
    return AuditReport(names, split_of, position, labels, ids, blank, all_zero, group.ravel())
