"""Training recipes, defined once: the course's, the fast one, and the model notebooks share.

    model, history = train_with_recipe("fast", data, "weights/mine.pth")
    model, info = course_model(data)   # the 3-class model of notebooks 05, 07, 09 and 10

A TrainRecipe names everything that decides how a model trains. COURSE is the
handout's: SI100FaceNet on happy / neutral / sad, batch 32, Adam with learning
rate 1e-3, cross-entropy, 10 epochs. FAST reaches the course's best validation
accuracy in a fraction of its time on a laptop CPU (README has the figures):
batch norm, a one-cycle learning rate, label smoothing, one gray input channel,
mirrored faces, bfloat16 where the CPU computes in it, channels_last memory, and
mirror test-time augmentation. With FER_TINY=1 (24 training images) every
recipe trains 1 epoch. Notebook 04's weights go to weights/face_expression.pth,
tagged by the data (see paths.weights_path), so a run on synthetic or tiny data
never overwrites the one trained on FER2013.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .augment import Augment, CropFlip
from .checkpoints import load_checkpoint, load_model, make_meta
from .data import FaceData, FaceLoader
from .distributed import world
from .errors import FerError
from .labels import COURSE_CLASSES
from .models import build_model
from .paths import weights_path
from .train import choose_device, fit, seed_everything

COURSE_ARCH = "si100"
TINY_EPOCHS = 1
COURSE_BATCH = 32
COURSE_LR = 1e-3
COURSE_SEED = 0
COURSE_WEIGHTS = "face_expression.pth"
PRETRAINED_3CLASS = "si100-3class"
LOG_LINES_PER_EPOCH = 5


# --- Training recipes: the course's and the fast one, as data -------------------------------


@dataclass(frozen=True)
class TrainRecipe:
    """Everything that decides how a model is trained, by name.

    `python -m fer_helpers train --recipe NAME` and train_with_recipe use these;
    any field can be overridden (dataclasses.replace, or the command's options).
    """

    name: str
    arch: str = COURSE_ARCH  # the defaults are the handout's recipe, COURSE
    batch_norm: bool = False  # SI100FaceNet only: BatchNorm2d after every convolution
    dropout: float = 0.0  # SI100FaceNet: before fc1 and fc2; SmallVGG: before its last layer
    channels: int = 3  # 3: gray copied to RGB as the course does; 1: gray as it is
    epochs: int = 10
    batch_size: int = COURSE_BATCH
    optimizer: str = "adam"  # "adam", "adamw" or "sgd" (Nesterov momentum 0.9)
    lr: float = COURSE_LR  # the peak learning rate for schedule="onecycle"
    weight_decay: float = 0.0
    schedule: str = "constant"  # or "onecycle": warm up for 30% of the steps, then anneal
    label_smoothing: float = 0.0
    augment: str = "none"  # "flip", "cropflip" (augment.CropFlip), "affine" (augment.Augment)
    channels_last: bool = False
    precision: str = "fp32"  # "auto" takes bfloat16 where the hardware has it
    tta: bool = False  # validate on each face and its mirror image

    def __post_init__(self) -> None:
        if self.arch == "ensemble":  # models.Ensemble holds trained models; nothing to train
            raise FerError(
                "an ensemble is not trained as one model; train each member, then combine "
                "them: python -m fer_helpers ensemble A.pth B.pth --out FILE.pth"
            )

    def model_kwargs(self) -> dict:
        """Keyword arguments for models.build_model (and the checkpoint's arch_kwargs)."""
        kwargs: dict = {"in_channels": self.channels}
        if self.arch == "si100" and (self.batch_norm or self.dropout):
            kwargs.update(batch_norm=self.batch_norm, dropout=self.dropout)
        if self.arch == "smallvgg":
            kwargs["dropout"] = self.dropout
        return kwargs


COURSE = TrainRecipe(name="course", epochs=10)
"""The handout's recipe: SI100FaceNet, batch 32, Adam 1e-3, 10 epochs, float32."""

FAST = TrainRecipe(
    name="fast",
    batch_norm=True,
    dropout=0.2,
    epochs=3,
    batch_size=64,
    optimizer="adamw",
    lr=2e-3,
    weight_decay=5e-4,
    schedule="onecycle",
    label_smoothing=0.1,
    channels=1,  # the gray face as it is: 1 input channel, not 3 equal copies
    augment="flip",  # mirror half the faces; long runs shift them too, "cropflip" (model cards)
    channels_last=True,
    precision="auto",
    tta=True,
)
"""What converges in the fewest seconds on a laptop CPU (numbers: README, `bench`)."""

RECIPES = {recipe.name: recipe for recipe in (COURSE, FAST)}
OPTIMIZERS = ("adam", "adamw", "sgd")
AUGMENTATIONS = {
    "none": lambda: None,
    "flip": lambda: CropFlip(pad=0),
    "cropflip": CropFlip,
    "affine": Augment,
}
SCHEDULES = ("constant", "onecycle")


def get_recipe(name: str | TrainRecipe) -> TrainRecipe:
    """A recipe by name ("course", "fast"); a TrainRecipe passes through."""
    if isinstance(name, TrainRecipe):
        return name
    if name not in RECIPES:
        raise FerError(f"unknown recipe {name!r}: expected one of {', '.join(RECIPES)}")
    return RECIPES[name]


def build_training(
    recipe: TrainRecipe, num_classes: int, steps_per_epoch: int
) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """(model, loss, optimizer, scheduler) as the recipe says; the scheduler steps every batch."""
    if recipe.optimizer not in OPTIMIZERS:
        raise FerError(f"unknown optimizer {recipe.optimizer!r}: expected {', '.join(OPTIMIZERS)}")
    if recipe.augment not in AUGMENTATIONS:
        raise FerError(f"unknown augment {recipe.augment!r}: expected {', '.join(AUGMENTATIONS)}")
    if recipe.schedule not in SCHEDULES:
        raise FerError(f"unknown schedule {recipe.schedule!r}: expected {', '.join(SCHEDULES)}")
    model = build_model(recipe.arch, num_classes=num_classes, **recipe.model_kwargs())
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    params, decay = model.parameters(), recipe.weight_decay
    if recipe.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            params, lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=decay
        )
    elif recipe.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=decay)
    else:
        optimizer = torch.optim.Adam(params, lr=recipe.lr, weight_decay=decay)
    if recipe.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch
        )
    else:
        scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    return model, loss_fn, optimizer, scheduler


def recipe_loaders(
    recipe: TrainRecipe,
    data: FaceData,
    classes: Sequence[str] = COURSE_CLASSES,
    seed: int = COURSE_SEED,
    clean: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[FaceLoader, FaceLoader | None]:
    """(train loader, validation loader or None) for a recipe: its channels, batch and augmentation.

    rank and world_size give each torchrun process its share of every epoch.
    """
    train_set = data.dataset("train", classes, channels=recipe.channels, clean=clean)
    train_loader = FaceLoader(
        train_set,
        recipe.batch_size,
        shuffle=True,
        seed=seed,
        augment=AUGMENTATIONS[recipe.augment](),
        rank=rank,
        world_size=world_size,
    )
    val_loader = None
    if "validation" in data.splits:
        val_set = data.dataset("validation", train_set.class_names, channels=recipe.channels)
        val_loader = FaceLoader(val_set, 256)
    return train_loader, val_loader


def train_with_recipe(
    recipe: str | TrainRecipe,
    data: FaceData,
    out: str | Path,
    classes: Sequence[str] = COURSE_CLASSES,
    seed: int = COURSE_SEED,
    device: str | torch.device | None = None,
    resume: bool = False,
    clean: bool = False,
    validate_every: int = 1,
    **fit_kwargs: object,
) -> tuple[nn.Module, dict[str, list[float]]]:
    """Train a model with a recipe on `data`, checkpointing to `out` after every epoch.

    validate_every=N validates after every Nth epoch and the last one only (see fit).

    Returns (the model, fit's history: validation accuracy and balanced accuracy per epoch).
    The checkpoint's `extra` records the recipe and the data, for its model card.
    Inside torchrun each process trains its share (see distributed.py).
    """
    recipe = get_recipe(recipe)
    device = choose_device() if device is None else torch.device(device)
    rank, world_size = world()
    seed_everything(seed)
    train_loader, val_loader = recipe_loaders(recipe, data, classes, seed, clean, rank, world_size)
    names = train_loader.dataset.class_names
    model, loss_fn, optimizer, scheduler = build_training(recipe, len(names), len(train_loader))
    meta = make_meta(recipe.arch, names, **recipe.model_kwargs())
    meta["extra"] = {
        "recipe": asdict(recipe),
        "data": data.source,
        "tiny": data.tiny,
        "clean": clean,
        "seed": seed,
        "processes": world_size,
        "threads": torch.get_num_threads(),  # per process, for the model card
        "validate_every": validate_every,
    }
    fit_kwargs.setdefault("log_every", log_every(train_loader))
    history = fit(
        model,
        train_loader,
        loss_fn,
        optimizer,
        recipe.epochs,
        device=device,
        val_loader=val_loader,
        checkpoint_path=out,
        checkpoint_meta=meta,
        resume=resume,
        channels_last=recipe.channels_last,
        scheduler=scheduler,
        precision=recipe.precision,
        tta=recipe.tta,
        validate_every=validate_every,
        **fit_kwargs,
    )
    return model, history


def course_epochs(data: FaceData, recipe: str | TrainRecipe = "fast") -> int:
    """Epochs notebook 04 trains for: the recipe's, or 1 on tiny data (a quick check, as in CI)."""
    return TINY_EPOCHS if data.tiny else get_recipe(recipe).epochs


def course_weights(data: FaceData, recipe: str | TrainRecipe = "fast") -> Path:
    """Where notebook 04 saves its 3-class model for these data and recipe.

    face_expression[.tag].pth for the fast recipe, face_expression_course[.tag].pth
    for the handout's, so that trying one never overwrites the other.
    """
    name = get_recipe(recipe).name
    file = COURSE_WEIGHTS if name == FAST.name else COURSE_WEIGHTS.replace(".pth", f"_{name}.pth")
    return weights_path(file, data.tag)


def course_loaders(
    data: FaceData,
    classes: Sequence[str] = COURSE_CLASSES,
    batch_size: int = COURSE_BATCH,
    seed: int = COURSE_SEED,
) -> tuple[FaceLoader, FaceLoader]:
    """(train loader, validation loader) of the course's classes, in batches of batch_size.

    The training batches are shuffled with their own seeded generator, so every
    run sees the same batches in the same order; validation is not shuffled.
    """
    train_loader = FaceLoader(data.dataset("train", classes), batch_size, shuffle=True, seed=seed)
    val_loader = FaceLoader(data.dataset("validation", classes), batch_size)
    return train_loader, val_loader


def log_every(train_loader: FaceLoader, lines: int = LOG_LINES_PER_EPOCH) -> int:
    """How many batches between two log lines for about `lines` lines per epoch (at least 1)."""
    return max(1, len(train_loader) // lines)


def train_course_model(
    data: FaceData,
    recipe: str | TrainRecipe = "fast",
    retrain: bool = False,
    device: str | torch.device | None = None,
) -> tuple[nn.Module, dict]:
    """Notebook 04's 3-class model: loaded if a finished run is saved, else trained (or resumed).

    Saved at course_weights(data, recipe) after every epoch; an interrupted run
    resumes; retrain=True starts again. A saved run of another recipe or with
    other epochs is trained again. Returns (model in eval mode, checkpoint info
    with class_names, epoch and history).
    """
    recipe = _course_recipe(data, recipe)
    path = course_weights(data, recipe)
    device = choose_device() if device is None else torch.device(device)
    if path.exists() and not retrain:
        saved = load_checkpoint(path)
        if _finished(saved, recipe):
            return load_model(path, class_names=COURSE_CLASSES, device=device)
        if _recipe_of(saved) != asdict(recipe):
            print(f"{path} holds a run of another recipe: training again")
            retrain = True
    if retrain:
        path.unlink(missing_ok=True)
    train_with_recipe(recipe, data, path, COURSE_CLASSES, COURSE_SEED, device, resume=True)
    return load_model(path, class_names=COURSE_CLASSES, device=device)


def course_model(
    data: FaceData,
    device: str | torch.device | None = None,
    pretrained: bool = True,
) -> tuple[nn.Module, dict]:
    """The 3-class model the notebooks after 04 use, without training when it can.

    1. notebook 04's finished run (fast recipe) at course_weights(data), if there is one;
    2. else, on FER2013, the shipped pretrained `si100-3class` (pretrained=False: train);
    3. else (synthetic faces, or no shipped weights) train it now as notebook 04 does.
    Returns (model in eval mode, checkpoint info); info["source"] says which it was.
    """
    from .pretrained import load_pretrained, resolve_weights

    device = choose_device() if device is None else torch.device(device)
    path = course_weights(data)
    if path.exists() and _finished(load_checkpoint(path), _course_recipe(data)):
        model, info = load_model(path, class_names=COURSE_CLASSES, device=device)
        return model, {**info, "source": str(path)}
    if pretrained and not data.synthetic:
        try:
            resolve_weights(PRETRAINED_3CLASS)
        except FerError:
            pass  # not shipped in this copy: train instead
        else:
            model, info = load_pretrained(PRETRAINED_3CLASS, COURSE_CLASSES, device)
            return model, {**info, "source": f"pretrained {PRETRAINED_3CLASS}"}
    model, info = train_course_model(data, device=device)
    return model, {**info, "source": str(path)}


def _course_recipe(data: FaceData, recipe: str | TrainRecipe = "fast") -> TrainRecipe:
    """The recipe as notebook 04 runs it on these data: 1 epoch on tiny data."""
    return replace(get_recipe(recipe), epochs=course_epochs(data, recipe))


def _recipe_of(checkpoint: dict) -> dict | None:
    return (checkpoint.get("extra") or {}).get("recipe")


def _finished(checkpoint: dict, recipe: TrainRecipe) -> bool:
    """True for a complete run of exactly this recipe on the course's classes.

    Notebook 04 plots every epoch's validation scores, so a run that skipped some does not count.
    """
    return (
        _recipe_of(checkpoint) == asdict(recipe)
        and (checkpoint.get("extra") or {}).get("validate_every", 1) == 1
        and checkpoint.get("epoch", 0) >= recipe.epochs
        and checkpoint.get("class_names") == list(COURSE_CLASSES)
    )
