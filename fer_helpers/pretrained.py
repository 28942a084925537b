"""Pretrained weights shipped inside the package, addressable by name.

    model, info = load_pretrained("si100-3class")       # or: load_model(resolve_weights(...))
    python -m fer_helpers evaluate --weights si100-3class

Each name has a checkpoint, fer_helpers/weights/NAME.pth (float16: half the
bytes, the same predictions to within rounding), and a model card NAME.md
beside it that says what it was trained on, how (the exact command), how long
it took and how well it does on the validation split. Anything that is not a
name is taken as a path to a checkpoint of your own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .checkpoints import load_checkpoint, load_model, save_checkpoint, scoring_tta
from .errors import CheckpointError
from .inference import TTA_WORDS, scores_of, tta_mode
from .models import input_channels, input_size

SHIPPED_DIR = Path(__file__).with_name("weights")
SHIPPED = {
    "si100-3class": "SI100FaceNet (batch norm) on happy / neutral / sad, fast recipe",
    "best-7class": "the best 7-class model the project trained within 2 hours on a 2-core CPU",
    "resnet18-7class": "ResNet-18 for 48x48 faces on all seven classes, cross-entropy alone: "
    "the start of notebook 10's DACL variants",
}


def is_shipped(name: str) -> bool:
    """Whether this copy of the package holds the weights called `name`."""
    return name in SHIPPED and (SHIPPED_DIR / f"{name}.pth").is_file()


def resolve_weights(name_or_path: str | Path) -> Path:
    """The checkpoint file for a shipped name ("si100-3class", "best-7class") or a path."""
    if str(name_or_path) in SHIPPED:
        path = SHIPPED_DIR / f"{name_or_path}.pth"
        if not path.is_file():
            raise CheckpointError(
                f"the pretrained weights {name_or_path!r} are not in this copy of the package"
                f" ({path} is missing); train them with the command in"
                f" {path.with_suffix('.md').name} or give a checkpoint path"
            )
        return path
    return Path(name_or_path)


def load_pretrained(
    name_or_path: str | Path,
    class_names: str | Sequence[str] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict]:
    """(model in eval mode, checkpoint info) for a shipped name or a checkpoint path."""
    return load_model(resolve_weights(name_or_path), class_names=class_names, device=device)


def output_layer(model: nn.Module) -> str:
    """The name of the model's last layer: the linear layer whose output is the class scores."""
    outputs: dict[str, torch.Tensor] = {}
    linear = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, n=n: outputs.__setitem__(n, out))
        for n, m in linear
    ]
    was_training = model.training
    try:
        with torch.no_grad():
            side = input_size(model)
            scores = scores_of(model.eval(), torch.zeros(1, input_channels(model), side, side))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    found = [n for n, out in outputs.items() if out is scores]
    if len(found) != 1:
        raise CheckpointError(f"{type(model).__name__} has no linear layer that gives its scores")
    return found[0]


def load_backbone(model: nn.Module, name_or_path: str | Path) -> list[str]:
    """Start `model` from a trained network's weights: every layer but the last.

    Transfer learning: the network (a shipped name or a checkpoint of the same architecture
    and input, trained for other classes) gives everything it learned; the last layer, whose
    outputs are the model's own classes, keeps its fresh weights, as do the parts a model
    adds to the trained network (`added_parts`: DACLNet's attention net, started from a
    plain ResNet18Faces). Returns the names of the tensors left as they were. A network of
    another architecture, width or input channels is refused with a CheckpointError naming
    the first tensor that differs.
    """
    path = resolve_weights(name_or_path)
    trained = load_checkpoint(path)["model_state"]
    last = output_layer(model) + "."
    # Parts the model adds to the trained network's (DACLNet's attention net on a plain
    # ResNet18Faces) stay fresh too, when the trained network has none of them.
    fresh = [last] + [
        part
        for part in getattr(model, "added_parts", ())
        if not any(key.startswith(part) for key in trained)
    ]
    own = model.state_dict()
    kept = [key for key in own if key.startswith(tuple(fresh))]
    wanted = {key: value for key, value in own.items() if key not in kept}
    for key, value in wanted.items():
        if key not in trained or trained[key].shape != value.shape:
            found = tuple(trained[key].shape) if key in trained else "nothing"
            raise CheckpointError(
                f"the weights in {path} do not fit {type(model).__name__}: {key} should be "
                f"{tuple(value.shape)}, found {found} (same architecture and input needed)"
            )
    model.load_state_dict({**own, **{key: trained[key] for key in wanted}})
    return kept


def model_card_path(name: str) -> Path:
    """Where a shipped model's card (Markdown) lives."""
    return SHIPPED_DIR / f"{name}.md"


def ship(
    checkpoint_path: str | Path,
    name: str,
    out_dir: Path | None = None,
    tta: bool | str | None = None,
) -> Path:
    """Write a trained checkpoint as shipped weights: float16 tensors, no optimizer state.

    Keeps arch, class names, normalization, epochs, history and extra (the
    recipe), so the model card and `evaluate` can say how it was made. tta, if
    given, is the test-time augmentation the model is scored with from now on
    (scoring_tta); chosen on the validation split, like everything else.
    """
    checkpoint = load_checkpoint(checkpoint_path)
    if tta is not None:
        checkpoint["extra"] = {**(checkpoint.get("extra") or {}), "scoring_tta": tta_mode(tta)}
    if checkpoint["arch"] is None:
        raise CheckpointError(f"{checkpoint_path} holds weights only; ship a full checkpoint")
    state = {
        key: value.half() if value.is_floating_point() else value
        for key, value in checkpoint["model_state"].items()
    }
    keep = ("arch", "arch_kwargs", "class_names", "normalization", "epoch", "history", "extra")
    fields = {key: checkpoint[key] for key in keep if key in checkpoint}
    out_dir = SHIPPED_DIR if out_dir is None else out_dir
    return save_checkpoint(out_dir / f"{name}.pth", **fields, model_state=state)


def write_model_card(
    name: str,
    info: dict,
    summary: dict,
    command: str,
    train_seconds: float,
    machine: str,
    note: str = "",
    one_look: dict | None = None,
) -> Path:
    """A Markdown model card: data, recipe, command, time, and validation scores per class.

    summary is metrics.summarize() on the validation split, with the model's
    scoring_tta (the per-epoch curve is what training saw: the recipe's); one_look, the
    same without test-time augmentation, is stated beside it when given.
    """
    rows = "\n".join(
        f"| {name} | {row['support']} | {row['precision']:.1%} | {row['recall']:.1%}"
        f" | {row['f1']:.1%} |"
        for name, row in summary["per_class"].items()
    )
    faces = sum(row["support"] for row in summary["per_class"].values())
    size = resolve_weights(name).stat().st_size / 1e6
    tta = scoring_tta(info)
    look = ""
    if one_look is not None and tta != "none":
        look = (
            f"\nWith one look at each face (`--no-tta`): accuracy **{one_look['accuracy']:.2%}**,"
            f" balanced accuracy **{one_look['balanced_accuracy']:.2%}**.\n"
        )
    text = f"""# Model card: `{name}`

{SHIPPED.get(name, name)}.

- **Architecture**: `{info["arch"]}` with `{json.dumps(info["arch_kwargs"])}`
- **Classes** (output order): {", ".join(info["class_names"])}
- **Input**: 48x48 grayscale, {info["normalization"]["channels"]} channel(s), pixels / 127.5 - 1
- **Data**: FER2013 Training split ({(info.get("extra") or {}).get("data", "?")});
  chosen on the PublicTest (validation) split only, never on a test split
- **File**: `fer_helpers/weights/{name}.pth`, float16, {size:.1f} MB

## How it was trained

```
{command}
```

{_recipes_text(info)}

{_epochs(info.get("epoch", "?"))} in {train_seconds / 60:.1f} minutes on {machine}.
{note}

## Validation (FER2013 PublicTest, {faces} faces)

Accuracy **{summary["accuracy"]:.2%}**, balanced accuracy **{summary["balanced_accuracy"]:.2%}**
(test-time augmentation: {TTA_WORDS[tta]}).
{look}
| class | faces | precision | recall | F1 |
|---|---:|---:|---:|---:|
{rows}

{_curves_text(info)}

Reproduce the scores: `python -m fer_helpers evaluate --weights {name} --data DIR`.
"""
    path = model_card_path(name)
    path.write_text(text)
    return path


def _epochs(count: object) -> str:
    return "1 epoch" if count == 1 else f"{count} epochs"


def _runs(info: dict) -> list[dict]:
    """The training runs behind a model: its own, or one per member of an ensemble."""
    extra = info.get("extra") or {}
    if "members" in extra:
        return extra["members"]
    history = info.get("history") or {}
    return [{"recipe": extra.get("recipe", {}), "val_acc": history.get("val_acc", [])}]


def _recipes_text(info: dict) -> str:
    runs = _runs(info)
    if len(runs) == 1:
        return f"Recipe: `{json.dumps(runs[0]['recipe'])}`"
    lines = [f"An ensemble of {len(runs)} models (the mean of their probabilities):", ""]
    lines += [
        f"{i}. `{run['source']}`, `{run['arch']}`, {_epochs(run['epoch'])}, recipe "
        f"`{json.dumps(run['recipe'])}`"
        for i, run in enumerate(runs, 1)
    ]
    return "\n".join(lines)


def _curves_text(info: dict) -> str:
    runs, lines = _runs(info), []
    for i, run in enumerate(runs, 1):
        whose = f" of model {i}" if len(runs) > 1 else ""
        curve = ", ".join("–" if math.isnan(a) else f"{a:.1%}" for a in run.get("val_acc", []))
        lines.append(
            f"Validation accuracy{whose} after each epoch, as training measured it "
            f"(test-time augmentation: {TTA_WORDS[tta_mode((run['recipe'] or {}).get('tta'))]};"
            f" in bfloat16 if the recipe trained so): {curve}."
            + (" (–: not validated after that epoch.)" if "–" in curve else "")
        )
    return "\n\n".join(lines)


def publish(
    checkpoint_path: str | Path,
    name: str,
    data: object,
    command: str,
    note: str = "",
    tta: bool | str | None = None,
) -> dict:
    """Ship a trained checkpoint under `name` and write its model card; returns the scores.

    data: the FaceData it was trained on (its validation split is scored, with
    the recipe's test-time augmentation unless tta says another). The training time
    on the card is the sum of the run's epoch times (training and validation), from
    its history.
    """
    from .data import FaceLoader
    from .devices import processor_name
    from .inference import predict
    from .metrics import summarize

    ship(checkpoint_path, name, tta=tta)
    model, info = load_pretrained(name)
    channels = info["normalization"]["channels"]
    validation = data.dataset("validation", info["class_names"], channels=channels)
    loader = FaceLoader(validation, 256)
    tta = scoring_tta(info)
    y_true, y_pred, _ = predict(model, loader, "cpu", tta=tta)
    summary = summarize(y_true, y_pred, info["class_names"])
    one_look = None
    if tta != "none":  # the card states both: what TTA buys is part of the model
        y_true, y_look, _ = predict(model, loader, "cpu", tta="none")
        one_look = summarize(y_true, y_look, info["class_names"])
    seconds = sum((info.get("history") or {}).get("epoch_seconds", []))
    extra = info.get("extra") or {}
    cpu, threads = processor_name(), extra.get("threads")
    if "members" in extra and threads is None:  # an ensemble of runs with other thread counts
        counts = " and ".join(str(m.get("threads") or "?") for m in extra["members"])
        machine = f"{cpu}, {counts} threads (in model order)"
    else:
        threads = threads or torch.get_num_threads()  # training's, if it recorded them
        machine = f"{cpu}, {threads} thread{'s' * (threads > 1)}"
    write_model_card(name, info, summary, command, seconds, machine, note, one_look)
    return summary
