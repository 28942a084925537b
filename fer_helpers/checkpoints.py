"""Checkpoints: a model's weights together with what is needed to use them again.

A checkpoint is a dict saved with torch.save:

    format          "fer_helpers/1"
    arch            model name in models.MODELS, e.g. "si100"
    arch_kwargs     keyword arguments that rebuild it, e.g. {"num_classes": 3}
    class_names     output i of the model is class_names[i]
    normalization   {"channels": 3, "scale": "u8/127.5-1"}: inputs are u8 / 127.5 - 1
    model_state     model.state_dict() (with a weight average, the average: what is used)
  optional:
    optimizer_state (one optimizer's state_dict, or a list of them), scheduler_state,
    objective_state (what the loss learns: DACL's class centres), epoch (epochs completed),
    history (dict of lists of floats), rng (random number generator states, to resume
    exactly), average_state (a run that averaged its weights, train.fit(ema=...): decay,
    updates and the trained weights, to resume), extra (dict: the recipe, the data and the
    settings that decide the result)

It holds only tensors, dicts, lists, strings and numbers, so it loads with
torch.load(weights_only=True), which cannot run code hidden in a downloaded file.

A plain state_dict (what the course handout saved as face_expression.pth) still
loads as a "weights only" checkpoint: arch and class_names are None, and
load_model assumes it holds an SI100FaceNet.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError, FerError
from .files import atomic_write
from .inference import tta_mode
from .labels import parse_classes
from .models import build_model

FORMAT = "fer_helpers/1"
LEGACY_FORMAT = "state_dict"
SCALE = "u8/127.5-1"
REQUIRED = ("arch", "arch_kwargs", "class_names", "normalization", "model_state")
RESUME_STATE = ("optimizer_state", "scheduler_state", "rng", "average_state")
OPTIONAL = (
    "optimizer_state",
    "scheduler_state",
    "objective_state",
    "average_state",
    "epoch",
    "history",
    "rng",
    "extra",
)


def make_meta(arch: str, class_names: Iterable[str], **arch_kwargs: object) -> dict:
    """The fields that describe a model: arch, arch_kwargs, class_names, normalization.

    make_meta("si100", COURSE_CLASSES) gives what save_checkpoint and
    fit(checkpoint_meta=...) need; build_model(m["arch"], **m["arch_kwargs"])
    rebuilds the model. num_classes is taken from the class names.
    """
    names = list(class_names)
    arch_kwargs.setdefault("num_classes", len(names))
    if arch_kwargs["num_classes"] != len(names):
        raise FerError(f"num_classes={arch_kwargs['num_classes']} but {len(names)} class names")
    channels = arch_kwargs.get("in_channels", 3)
    return {
        "arch": arch,
        "arch_kwargs": arch_kwargs,
        "class_names": names,
        "normalization": {"channels": channels, "scale": SCALE},
    }


def save_checkpoint(path: str | Path, **fields: object) -> Path:
    """Save a checkpoint atomically: `path` holds either the old file or the whole new one.

    The fields are those listed at the top of this module. The file is written
    to a temporary name in the same folder and renamed over `path` only once it
    is complete, so a crash or a full disk never leaves a half-written checkpoint.
    """
    missing = [key for key in REQUIRED if key not in fields]
    unknown = [key for key in fields if key not in REQUIRED + OPTIONAL]
    if missing or unknown:
        raise TypeError(f"save_checkpoint: missing fields {missing}, unknown fields {unknown}")
    path = Path(path)
    with atomic_write(path) as file:
        torch.save({"format": FORMAT, **fields}, file)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with weights_only=True onto the CPU.

    A plain state_dict (a dict of tensors) comes back as a weights-only
    checkpoint: format "state_dict", arch, class_names and normalization None.
    Anything else raises CheckpointError naming the file.
    """
    expected = "a checkpoint from fer_helpers.save_checkpoint or a state_dict saved with torch.save"
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such file; expected {expected}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged or foreign file
        raise CheckpointError(f"{path} could not be read ({err}); expected {expected}") from err
    if isinstance(content, dict) and content.get("format") == FORMAT:
        missing = [key for key in REQUIRED if key not in content]
        if missing:
            raise CheckpointError(f"{path} lacks the checkpoint fields {', '.join(missing)}")
        return content
    if _is_state_dict(content):
        return {
            "format": LEGACY_FORMAT,
            "arch": None,
            "arch_kwargs": {},
            "class_names": None,
            "normalization": None,
            "model_state": content,
        }
    raise CheckpointError(f"{path} is not a checkpoint; expected {expected}")


def drop_resume_state(path: str | Path) -> Path:
    """Rewrite a finished run's checkpoint without what only resuming needs (the optimizers',
    the scheduler's and the random states, a weight average's trained weights): a third to
    two thirds of the file for Adam or SGD with momentum. What predicting, a model card or
    train_or_load reads stays."""
    checkpoint = load_checkpoint(path)
    if checkpoint["format"] != FORMAT:
        raise CheckpointError(f"{path} holds weights only; there is no resume state to drop")
    kept = {k: v for k, v in checkpoint.items() if k not in RESUME_STATE and k != "format"}
    return save_checkpoint(path, **kept)


def check_fits(
    checkpoint: Mapping,
    path: str | Path,
    num_classes: int | None = None,
    class_names: str | Iterable[str] | None = None,
) -> None:
    """Raise CheckpointError when the checkpoint's classes are not the ones asked for."""
    trained = checkpoint.get("class_names")
    trained_count = len(trained) if trained else checkpoint["arch_kwargs"].get("num_classes")
    asked = list(parse_classes(class_names)) if class_names is not None else None
    if asked is not None and num_classes is not None and len(asked) != num_classes:
        raise FerError(f"num_classes={num_classes} but {len(asked)} class names: {asked}")
    asked_count = len(asked) if asked is not None else num_classes
    if None not in (asked_count, trained_count) and asked_count != trained_count:
        raise CheckpointError(
            f"{path} was trained for {trained_count} classes{_listed(trained)}"
            f" but {asked_count} were asked for{_listed(asked)}"
        )
    if asked is not None and trained and asked != list(trained):
        raise CheckpointError(
            f"{path} was trained for the classes{_listed(trained)} but{_listed(asked)}"
            " were asked for; the names and their order must match"
        )


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """model.load_state_dict(state), with a CheckpointError naming the file if they differ."""
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        name = type(model).__name__
        raise CheckpointError(f"the weights in {path} do not fit {name}: {err}") from err


def load_model(
    path: str | Path,
    num_classes: int | None = None,
    class_names: str | Sequence[str] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict]:
    """Rebuild a trained model from its checkpoint, in eval mode, on `device`.

    Give num_classes or class_names to check that the checkpoint predicts the
    classes you expect. Returns (model, info): info is the checkpoint without
    its weights and what only resuming needs (arch, class_names, epoch, history, ...).
    """
    checkpoint = load_checkpoint(path)
    if checkpoint["arch"] is None:
        checkpoint = _as_si100(checkpoint, path)
    check_fits(checkpoint, path, num_classes, class_names)
    model = build_model(checkpoint["arch"], **checkpoint["arch_kwargs"])
    load_weights(model, checkpoint["model_state"], path)
    states = ("model_state", "objective_state", *RESUME_STATE)
    info = {k: v for k, v in checkpoint.items() if k not in states}
    if info["class_names"] is None and class_names is not None:
        info["class_names"] = list(parse_classes(class_names))
    return model.to(device).eval(), info


def combine_checkpoints(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Write one checkpoint that holds the models of `paths` as an ensemble (models.Ensemble).

    The members must predict the same classes in the same order from the same input
    (channels and scaling). The ensemble's epochs and epoch times are the sums over its
    members, so a model card states what training all of them took; extra["members"]
    keeps where each came from, its epochs, recipe and validation curve. Returns `out`.
    """
    if len(paths) < 2:
        raise FerError(f"an ensemble needs at least 2 checkpoints, got {len(paths)}")
    members = [load_checkpoint(path) for path in paths]
    first, first_path = members[0], paths[0]
    for path, member in zip(paths, members):
        if member["format"] != FORMAT:
            raise CheckpointError(
                f"{path} holds weights only; an ensemble needs checkpoints written by"
                " `python -m fer_helpers train`, which know their classes and input"
            )
        for field in ("class_names", "normalization"):
            if member[field] != first[field]:
                raise CheckpointError(
                    f"{path} has {field} {member[field]} but {first_path} has {first[field]};"
                    " the members of an ensemble must agree on them"
                )
    arch_kwargs = {
        "num_classes": len(first["class_names"]),
        "members": [{"arch": m["arch"], "arch_kwargs": m["arch_kwargs"]} for m in members],
    }
    state = {
        f"members.{i}.{key}": value
        for i, member in enumerate(members)
        for key, value in member["model_state"].items()
    }
    load_weights(build_model("ensemble", **arch_kwargs), state, out)  # fails here, not on load

    extras = [m.get("extra") or {} for m in members]
    extra = {"data": extras[0].get("data", "?"), "scoring_tta": scoring_tta(first)}
    if len({e.get("threads") for e in extras}) == 1 and "threads" in extras[0]:
        extra["threads"] = extras[0]["threads"]  # else each member's, below
    extra["members"] = [
        {
            "source": str(path),
            "arch": m["arch"],
            "epoch": m.get("epoch"),
            "recipe": e.get("recipe") or {},
            "threads": e.get("threads"),
            "val_acc": (m.get("history") or {}).get("val_acc", []),
        }
        for path, m, e in zip(paths, members, extras)
    ]
    seconds = [s for m in members for s in (m.get("history") or {}).get("epoch_seconds", [])]
    return save_checkpoint(
        out,
        arch="ensemble",
        arch_kwargs=arch_kwargs,
        class_names=first["class_names"],
        normalization=first["normalization"],
        model_state=state,
        epoch=sum(m.get("epoch") or 0 for m in members),
        history={"epoch_seconds": seconds},
        extra=extra,
    )


def scoring_tta(info: Mapping) -> str:
    """The test-time augmentation a model is scored with: what it was shipped with, else
    what its recipe validated with ("none", "flip" or "shifts"; see inference.tta_views)."""
    extra = info.get("extra") or {}
    return tta_mode(extra.get("scoring_tta", (extra.get("recipe") or {}).get("tta", False)))


def _is_state_dict(content: object) -> bool:
    return (
        isinstance(content, dict)
        and bool(content)
        and all(isinstance(v, torch.Tensor) for v in content.values())
    )


def _as_si100(checkpoint: dict, path: str | Path) -> dict:
    """Fill in arch and arch_kwargs of a plain state_dict, read off SI100FaceNet's weights."""
    state = checkpoint["model_state"]
    try:
        conv1, fc1, fc2 = state["conv1.weight"], state["fc1.weight"], state["fc2.weight"]
    except KeyError as err:
        raise CheckpointError(
            f"{path} holds weights only (a plain state_dict) and they are not SI100FaceNet's"
            f" (no {err.args[0]}); save models with fer_helpers.save_checkpoint"
        ) from err
    width = conv1.shape[0]  # conv3, and so fc1's input, has 4 * width channels
    side = max(math.isqrt(fc1.shape[1] // (4 * width)), 1)  # of side x side pixels
    arch_kwargs = {
        "num_classes": fc2.shape[0],
        "in_channels": conv1.shape[1],
        "hidden": fc1.shape[0],
        "input_size": side * 8,
    }
    if width != 64:  # the course's; the fast recipe's is narrower
        arch_kwargs["width"] = width
    if "bn1.weight" in state:  # trained with batch norm (recipes.FAST); dropout leaves no trace
        arch_kwargs["batch_norm"] = True
    if "pool_before_norm_marker" in state:  # normalised after the pooling (models.SI100FaceNet)
        arch_kwargs["pool_before_norm"] = True
    normalization = {"channels": conv1.shape[1], "scale": SCALE}  # assumed: the course's
    return {
        **checkpoint,
        "arch": "si100",
        "arch_kwargs": arch_kwargs,
        "normalization": normalization,
    }


def _listed(names: Sequence[str] | None) -> str:
    return f" ({', '.join(names)})" if names else ""
