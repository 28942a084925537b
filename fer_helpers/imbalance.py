"""Seven classes on unbalanced data: class weights, balanced sampling, targeted mirroring.

FER2013's training split has 436 disgust faces and 7,215 happy ones. A model
trained plainly sees happy 16 times as often, and learns to say "happy" rather
than "disgust" when in doubt. Two standard remedies, compared by
compare_strategies on the validation split:

- "weighted": class-weighted cross-entropy, a mistake on a rare class costs more
  (losses.class_weights gives the weights);
- "balanced": balanced sampling, each batch draws every class equally often
  on average (FaceLoader(balanced=True));

against "plain" training. Each strategy's model is saved under weights/ as
seven_<strategy>.pth (with the data tag, e.g. seven_plain.tiny.pth), so running
a notebook again reuses the finished models.

Report 1's targeted augmentation is here too: add mirrored copies of the
training images of one confused pair (with_mirrored) and train again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
from torch import nn

from .data import FaceData, FaceLoader, FaceSplit
from .inference import predict
from .labels import EMOTIONS
from .metrics import accuracy, balanced_accuracy, classification_table, confusion_matrix
from .models import input_channels
from .paths import weights_path
from .recipes import FAST, TrainRecipe, train_or_load

STRATEGIES: tuple[str, ...] = ("plain", "weighted", "balanced")
"""The ways to train the 7-class model that compare_strategies knows."""


def mirror_images(images: np.ndarray) -> np.ndarray:
    """Left-right mirrored copies of images (N, H, W): column j becomes column W-1-j."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W), got {images.shape}")
    return np.ascontiguousarray(images[:, :, ::-1])


def with_mirrored(faces: FaceSplit, index: Sequence[int] | np.ndarray) -> FaceSplit:
    """The split plus a mirrored copy of the faces at `index`, with their labels.

    Report 1's targeted augmentation: more examples of exactly the faces the
    model confuses. The copies' ids end in "-mirrored".
    """
    extra = faces.take(np.asarray(index, dtype=np.int64))
    return FaceSplit(
        faces.name,
        np.concatenate([faces.images, mirror_images(extra.images)]),
        np.concatenate([faces.labels, extra.labels]),
        # ids as text: a CSV's row numbers and the copies' "-mirrored" names in one array
        np.concatenate([faces.ids.astype(str), np.char.add(extra.ids.astype(str), "-mirrored")]),
    )


def confused_indices(
    y_true: np.ndarray, probs: np.ndarray, true_label: int, predicted_label: int
) -> np.ndarray:
    """Positions of images of true_label that the model predicted as predicted_label.

    Most doubtful first: sorted by how little the predicted class's probability
    beats the true class's, probs[:, predicted] - probs[:, true].
    """
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    predicted = probs.argmax(axis=1)
    hits = np.flatnonzero((y_true == true_label) & (predicted == predicted_label))
    gap = probs[hits, predicted_label] - probs[hits, true_label]
    return hits[np.argsort(gap, kind="stable")]


SEVEN_EPOCHS = 9
"""Epochs of every 7-class strategy: with the fast recipe, plain training passes 60%
validation accuracy in 9 (README's measured section; `experiment imbalance`), and notebook
08's four trainings fit its class period."""


def strategy_recipe(strategy: str, epochs: int = SEVEN_EPOCHS, **changes: object) -> TrainRecipe:
    """The fast recipe (FAST) on seven classes for `epochs`, with the strategy's remedy:
    "weighted" a class-weighted loss (class_weights, "inverse"), "balanced" balanced
    sampling, "plain" neither. changes: other recipe settings (batch_size, lr, ...)."""
    _check_strategy(strategy)
    return replace(
        FAST,
        name=f"seven-{strategy}",
        epochs=epochs,
        class_weights="inverse" if strategy == "weighted" else "none",
        sampling="balanced" if strategy == "balanced" else "shuffle",
        **changes,
    )


def train_strategy(
    data: FaceData,
    strategy: str,
    epochs: int = SEVEN_EPOCHS,
    faces: FaceSplit | None = None,
    name: str | None = None,
    seed: int = 0,
    retrain: bool = False,
    log_every: int = 300,
    recipe_changes: Mapping[str, object] | None = None,
    **fit_kwargs: object,
) -> tuple[nn.Module, dict]:
    """Train the 7-class SI100FaceNet one way (strategy_recipe), or load it if that run is saved.

    faces: the training faces (default: data["train"]); name: the file's name
    part (default: the strategy), saved as weights/seven_<name>.pth plus the data
    tag. Seeded, so every strategy starts from the same initial weights. Validated
    after the last epoch only. recipe_changes: other recipe settings (batch_size, lr).
    Returns (model in eval mode, checkpoint info), as recipes.train_or_load does.
    """
    if faces is not None:
        data = replace(data, splits={**data.splits, "train": faces})
    recipe = strategy_recipe(strategy, epochs, **(recipe_changes or {}))
    path = weights_path(f"seven_{name or strategy}.pth", data.tag)
    options = dict(retrain=retrain, validate_every=epochs, log_every=log_every, **fit_kwargs)
    return train_or_load(path, recipe, data, EMOTIONS, seed, **options)


def strategy_table(
    matrices: Mapping[str, np.ndarray], class_names: Sequence[str] = EMOTIONS
) -> pd.DataFrame:
    """One table comparing strategies, one column each, from their confusion matrices.

    Rows: recall, precision and F1 of every class, then accuracy and balanced
    accuracy (index levels "metric" and "class"; the totals have class "all").
    """
    columns = {}
    for strategy, cm in matrices.items():
        per_class = classification_table(cm, class_names)
        values = {
            (metric, name): per_class.loc[name, metric]
            for metric in ("recall", "precision", "f1")
            for name in class_names
        }
        values[("accuracy", "all")] = accuracy(cm)
        values[("balanced accuracy", "all")] = balanced_accuracy(cm)
        columns[strategy] = pd.Series(values, dtype=float)
    table = pd.DataFrame(columns)
    table.index.names = ["metric", "class"]
    table.columns.name = "strategy"
    return table


def compare_strategies(
    data: FaceData,
    strategies: Sequence[str] = STRATEGIES,
    epochs: int = SEVEN_EPOCHS,
    **train_kwargs: object,
) -> pd.DataFrame:
    """Train (or load) the 7-class model once per strategy; compare them on validation.

    Returns strategy_table of their validation confusion matrices. Extra
    arguments go to train_strategy (seed, retrain, recipe_changes, progress, ...).
    """
    matrices = {}
    for strategy in strategies:
        model, _ = train_strategy(data, strategy, epochs, **train_kwargs)
        validation = data.dataset("validation", EMOTIONS, channels=input_channels(model))
        y_true, y_pred, _ = predict(model, FaceLoader(validation, batch_size=256))
        matrices[strategy] = confusion_matrix(y_true, y_pred, len(EMOTIONS))
    return strategy_table(matrices, EMOTIONS)


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
