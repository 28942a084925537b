"""Training recipes, defined once, and the one way to train or load a saved run.

    model, history = train_with_recipe("fast", data, "weights/mine.pth")
    model, info = train_or_load("weights/mine.pth", "fast", data)  # trained once, then loaded
    model, info = three_class_model(data)   # the 3-class model of notebooks 07, 09, 11, 12 and 13

A TrainRecipe names everything that decides how a model trains: the network and its
options, the optimizer and schedule, the objective (cross-entropy, class-weighted, or
DACL's), the faces it sees (classes, faces per class, sampling, augmentation). COURSE is the
handout's: SI100FaceNet on happy / neutral / sad, batch 32, Adam with learning rate 1e-3,
cross-entropy, 10 epochs. FAST reaches the best validation accuracy the course's recipe
reaches in its 10 epochs more than ten times sooner on a 2-core CPU, both scored on one look
at each face (README has the figures, from `bench --full`): the same network half as wide
with batch norm after each pooling, a one-cycle learning rate with AdamW, label smoothing,
one gray input channel, mirrored faces, bfloat16 where the CPU computes in it, and
channels_last memory. With FER_TINY=1 (24 training images) every recipe trains 1 epoch.
Notebook 06's weights go to weights/face_expression.pth, tagged by the data (see
paths.weights_path), so a run on synthetic or tiny data
never overwrites the one trained on FER2013.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch import nn

from .augment import Augment, Chain, CropFlip, Erase
from .checkpoints import drop_resume_state, load_checkpoint, load_model, make_meta
from .data import FaceData, FaceLoader
from .devices import choose_device
from .distributed import is_main, world
from .errors import CheckpointError, FerError
from .labels import COURSE_CLASSES, parse_classes
from .losses import LAMBDA, SCHEMES, DACLLoss, class_weights
from .models import FEATURES, MODELS, build_model
from .paths import weights_path
from .pretrained import is_shipped, load_backbone, load_pretrained
from .train import Optimizers, fit, seed_everything

COURSE_ARCH = "si100"
TINY_EPOCHS = 1
COURSE_BATCH = 32
COURSE_LR = 1e-3
COURSE_SEED = 0
COURSE_WEIGHTS = "face_expression.pth"
PRETRAINED_3CLASS = "si100-3class"
LOG_LINES_PER_EPOCH = 5


OPTIMIZERS = ("adam", "adamw", "sgd")
AUGMENTATIONS = {
    "none": lambda: None,
    "flip": lambda: CropFlip(pad=0),
    "cropflip": CropFlip,
    "cropflip-erase": lambda: Chain((CropFlip(), Erase())),
    "affine": Augment,
}
SCHEDULES = ("constant", "onecycle", "step")
SAMPLINGS = ("shuffle", "balanced")
OBJECTIVES = {
    "cross_entropy": "cross-entropy",
    "center": "cross-entropy + center loss (every attention weight 1)",
    "dacl": "cross-entropy + sparse center loss weighted by the attention (DACL)",
}
CENTRE_LR = 0.5  # the class centres' plain SGD (center loss usually learns them this fast)
MODEL_OPTIONS = ("batch_norm", "dropout", "width", "pool_before_norm", "head")
"""The TrainRecipe fields that go to the model's constructor when the model takes them."""


# --- What each architecture takes from a recipe -------------------------------------------


def honours(arch: str, option: str, value: object) -> bool:
    """True if the architecture can be built with option=value: it takes the option, or
    it is built that way anyway (batch_norm=True for a ResNet, which always has it)."""
    if option in model_options(arch):
        return True
    return option == "batch_norm" and value == has_batch_norm(arch)


def recipe_options(arch: str) -> str:
    """The MODEL_OPTIONS a recipe can set for an architecture, in words: each one it takes,
    with its default, and batch_norm at the one value it is built with when it does not
    take it, e.g. "batch_norm (True only), dropout (default 0.5)"."""
    options = model_options(arch)
    words = [
        f"{option} (default {options[option]!r})"
        if option in options
        else f"{option} ({has_batch_norm(arch)!r} only)"
        for option in MODEL_OPTIONS
        if option in options or option == "batch_norm"
    ]
    return ", ".join(words)


@functools.cache
def model_options(arch: str) -> dict[str, object]:
    """The options an architecture's constructor takes, with their defaults (not the sizes
    every model has: num_classes, in_channels)."""
    if arch not in MODELS:
        raise FerError(f"unknown model {arch!r}: expected one of {', '.join(sorted(MODELS))}")
    parameters = inspect.signature(MODELS[arch]).parameters.values()
    return {
        p.name: p.default
        for p in parameters
        if p.name not in ("num_classes", "in_channels") and p.default is not p.empty
    }


@functools.cache
def has_batch_norm(arch: str) -> bool:
    """True if the architecture, built as it is, normalises with batch norm."""
    model = MODELS[arch](num_classes=2)
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


# --- Training recipes: the course's and the fast one, as data -------------------------------


@dataclass(frozen=True)
class TrainRecipe:
    """Everything that decides how a model is trained, by name.

    `python -m fer_helpers train --recipe NAME`, train_with_recipe and train_or_load use
    these; any field can be overridden (dataclasses.replace, or the command's options).
    The course's recipe, the fast one, notebook 08's strategies, notebook 10's DACL
    variants and notebook 14's contenders are all TrainRecipes.
    """

    name: str
    arch: str = COURSE_ARCH  # the defaults are the handout's recipe, COURSE
    batch_norm: bool | None = None  # batch norm after the convolutions; None: as the model is
    dropout: float | None = None  # the model's dropout; None: the model's own default
    width: int | None = None  # SI100FaceNet's conv1 channels (64); None: the model's own
    pool_before_norm: bool | None = None  # SI100FaceNet: conv -> pool -> norm; None: as built
    head: str | None = None  # SmallVGG: "average" (pooling) or "flatten"; None: the model's own
    channels: int = 3  # 3: gray copied to RGB as the course does; 1: gray as it is
    epochs: int = 10
    batch_size: int = COURSE_BATCH
    optimizer: str = "adam"  # "adam", "adamw" or "sgd" (Nesterov momentum 0.9)
    lr: float = COURSE_LR  # the peak learning rate for schedule="onecycle"
    weight_decay: float = 0.0
    schedule: str = "constant"  # "onecycle": warm up for 30% of the steps, then anneal;
    # "step": 10 times lower after each third of the run (DACL's)
    label_smoothing: float = 0.0
    augment: str = "none"  # "flip", "cropflip" (augment.CropFlip), "cropflip-erase" (then
    # augment.Erase), "affine" (augment.Augment)
    mixup: float = 0.0  # alpha > 0: mix training faces in pairs (augment.mixup)
    ema: float = 0.0  # decay > 0: validate and save an average of the weights (fit's ema)
    channels_last: bool = False
    precision: str = "fp32"  # "auto" takes bfloat16 where the hardware has it
    tta: bool = False  # validate on each face and its mirror image
    per_class: int | None = None  # at most this many training faces of each class
    sampling: str = "shuffle"  # or "balanced": every class equally often (notebook 08)
    class_weights: str = "none"  # or "inverse" / "sqrt": a class-weighted loss (notebook 08)
    objective: str = "cross_entropy"  # or "center" / "dacl": losses.DACLLoss (model "dacl")
    centre_lr: float = CENTRE_LR  # the class centres' own SGD, for "center" and "dacl"
    start_from: str | None = None  # a trained network (shipped name or checkpoint) whose
    # weights, all but the last layer's, the model starts from (pretrained.load_backbone)

    def __post_init__(self) -> None:
        if self.arch == "ensemble":  # models.Ensemble holds trained models; nothing to train
            raise FerError(
                "an ensemble is not trained as one model; train each member, then combine "
                "them: python -m fer_helpers ensemble A.pth B.pth --out FILE.pth"
            )
        choices = {
            "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES,
            "augment": tuple(AUGMENTATIONS),
            "sampling": SAMPLINGS,
            "class_weights": ("none", *SCHEMES),
            "objective": tuple(OBJECTIVES),
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise FerError(f"unknown {name} {value!r}: expected one of {', '.join(allowed)}")
        if self.objective != "cross_entropy" and self.arch != "dacl":
            raise FerError(
                f"objective {self.objective!r} needs a model that returns its features "
                f"(arch 'dacl'), not {self.arch!r}"
            )
        if self.mixup < 0:
            raise FerError(f"mixup must be 0 (off) or an alpha above 0, not {self.mixup}")
        if not 0.0 <= self.ema < 1.0:
            raise FerError(f"ema must be 0 (off) or a decay between 0 and 1, not {self.ema}")
        if self.mixup and self.objective != "cross_entropy":
            raise FerError(
                f"mixup's soft targets need the cross_entropy objective, not {self.objective!r}"
            )
        if self.per_class is not None and self.per_class < 1:
            raise FerError(f"per_class must be at least 1, not {self.per_class}")
        self.model_kwargs()  # refuses a model option now, not after the data have loaded

    def model_kwargs(self) -> dict:
        """Keyword arguments for models.build_model (and the checkpoint's arch_kwargs).

        batch_norm, dropout, width, pool_before_norm and head (MODEL_OPTIONS) go to the model when
        it takes them; a setting the model cannot honour is refused with the options a recipe
        can set for it (recipe_options), never dropped silently.
        """
        kwargs: dict = {"in_channels": self.channels}
        options = model_options(self.arch)
        for option in MODEL_OPTIONS:
            value = getattr(self, option)
            if value is None:
                continue
            if option in options:
                kwargs[option] = value
            elif not honours(self.arch, option, value):
                raise FerError(
                    f"model {self.arch!r} cannot take {option}={value!r}; "
                    f"a recipe can set for it: {recipe_options(self.arch)}"
                )
        return kwargs


COURSE = TrainRecipe(name="course", epochs=10)
"""The handout's recipe: SI100FaceNet, batch 32, Adam 1e-3, 10 epochs, float32."""

FAST = TrainRecipe(
    name="fast",
    batch_norm=True,
    dropout=0.2,
    width=32,  # half the course's channels: a quarter of the convolutions' computation
    pool_before_norm=True,  # the norm works on the pooled map, a quarter the size
    epochs=4,
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
)
"""What converges in the fewest seconds on a laptop CPU (numbers: README, `bench`)."""

RECIPES = {recipe.name: recipe for recipe in (COURSE, FAST)}


def get_recipe(name: str | TrainRecipe) -> TrainRecipe:
    """A recipe by name ("course", "fast"); a TrainRecipe passes through."""
    if isinstance(name, TrainRecipe):
        return name
    if name not in RECIPES:
        raise FerError(f"unknown recipe {name!r}: expected one of {', '.join(RECIPES)}")
    return RECIPES[name]


def with_arch(recipe: TrainRecipe, arch: str) -> TrainRecipe:
    """The recipe training another architecture: the options that shape one model alone
    (width, pool_before_norm, head) go back to the new model's own; batch_norm and dropout stay
    where the new model takes them, and go back to its own where it does not (the fast
    recipe's dropout is no reason to refuse a ResNet without one)."""
    if arch == recipe.arch:
        return recipe
    moved = replace(  # checks the arch; the options come back below where it honours them
        recipe,
        arch=arch,
        width=None,
        pool_before_norm=None,
        head=None,
        dropout=None,
        batch_norm=None,
    )
    kept = {
        option: value if value is None or honours(arch, option, value) else None
        for option, value in (("dropout", recipe.dropout), ("batch_norm", recipe.batch_norm))
    }
    return replace(moved, **kept)


def recipe_from_record(record: dict) -> TrainRecipe:
    """The TrainRecipe a checkpoint recorded (extra["recipe"]); a field it predates takes
    its default, which is what that run trained with."""
    known = {f.name for f in fields(TrainRecipe)}
    return TrainRecipe(**{key: value for key, value in record.items() if key in known})


def build_training(
    recipe: TrainRecipe,
    num_classes: int,
    steps_per_epoch: int,
    class_counts: Sequence[int] | None = None,
) -> tuple[nn.Module, nn.Module, Optimizers, torch.optim.lr_scheduler.LRScheduler]:
    """(model, objective, optimizer(s), scheduler) as the recipe says; the scheduler steps
    every batch. class_counts (training images per class) are needed for class_weights.

    The objectives "center" and "dacl" learn class centres: they get their own plain SGD
    (recipe.centre_lr), returned after the model's optimizer.
    """
    model = build_model(recipe.arch, num_classes=num_classes, **recipe.model_kwargs())
    if recipe.start_from is not None:
        load_backbone(model, recipe.start_from)
    if recipe.objective == "cross_entropy":
        weight = None
        if recipe.class_weights != "none":
            if class_counts is None:
                raise FerError("a class-weighted recipe needs the training images per class")
            counts = class_weights(class_counts, recipe.class_weights)
            weight = torch.as_tensor(counts, dtype=torch.float32)
        loss_fn: nn.Module = nn.CrossEntropyLoss(
            weight=weight, label_smoothing=recipe.label_smoothing
        )
    else:
        plain = recipe.objective == "center"
        loss_fn = DACLLoss(num_classes, FEATURES, lam=LAMBDA, plain=plain)
    optimizers = recipe_optimizers(recipe, model, loss_fn)
    optimizer = optimizers[0]
    total_steps = recipe.epochs * steps_per_epoch
    if recipe.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, total_steps=total_steps
        )
    elif recipe.schedule == "step":  # the step is counted in batches, as fit steps it
        every = max(1, math.ceil(recipe.epochs / 3)) * steps_per_epoch
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=0.1)
    else:
        scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    return model, loss_fn, optimizers if len(optimizers) > 1 else optimizer, scheduler


def recipe_optimizers(
    recipe: TrainRecipe, model: nn.Module, objective: nn.Module
) -> list[torch.optim.Optimizer]:
    """The recipe's optimizer of the model's weights, then, for an objective that learns
    class centres ("center", "dacl"), the centres' own plain SGD (recipe.centre_lr)."""
    params, decay = model.parameters(), recipe.weight_decay
    if recipe.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=decay
        )
    elif recipe.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=decay)
    else:
        optimizer = torch.optim.Adam(params, lr=recipe.lr, weight_decay=decay)
    centres = list(objective.parameters())
    if centres:
        return [optimizer, torch.optim.SGD(centres, lr=recipe.centre_lr)]
    return [optimizer]


def recipe_loaders(
    recipe: TrainRecipe,
    data: FaceData,
    classes: Sequence[str] = COURSE_CLASSES,
    seed: int = COURSE_SEED,
    clean: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[FaceLoader, FaceLoader | None]:
    """(train loader, validation loader or None) for a recipe: its channels, batch size,
    faces per class, sampling and augmentation. The one place loaders for training are made.

    The training batches are shuffled with their own seeded generator, so every run sees
    the same batches in the same order; validation is not shuffled. A last batch of a
    single face is dropped (batch norm cannot learn from one). rank and world_size give
    each torchrun process its share of every epoch.
    """
    train_set = data.dataset(
        "train",
        classes,
        channels=recipe.channels,
        clean=clean,
        per_class=recipe.per_class,
        seed=seed,
    )
    share = len(train_set) // world_size
    train_loader = FaceLoader(
        train_set,
        recipe.batch_size,
        shuffle=True,
        seed=seed,
        augment=AUGMENTATIONS[recipe.augment](),
        mixup=recipe.mixup,
        drop_last=share % recipe.batch_size == 1 and share > 1,
        balanced=recipe.sampling == "balanced",
        rank=rank,
        world_size=world_size,
    )
    val_loader = None
    if "validation" in data.splits:
        val_set = data.dataset("validation", train_set.class_names, channels=recipe.channels)
        val_loader = FaceLoader(val_set, 256)
    return train_loader, val_loader


def run_settings(
    recipe: TrainRecipe,
    data: FaceData,
    class_names: Sequence[str],
    seed: int,
    clean: bool = False,
    validate_every: int = 1,
    train_faces: str = "",
) -> dict:
    """Every setting that decides a training's result, as plain values.

    A saved run is reused only when its settings equal these (train_or_load).
    train_faces fingerprints the training faces themselves (images and labels), so that a
    run on other faces (mirrored copies added, another cap) is never taken for this one.
    """
    return {
        "recipe": asdict(recipe),
        "classes": list(class_names),
        "seed": seed,
        "data": data.source,
        "tag": data.tag,
        "clean": clean,
        "validate_every": validate_every,
        "train_faces": train_faces,
    }


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
    The checkpoint's `extra` records the recipe, the data and run_settings, for its model
    card and for train_or_load. Inside torchrun each process trains its share.
    """
    recipe = get_recipe(recipe)
    device = choose_device() if device is None else torch.device(device)
    rank, world_size = world()
    if world_size > 1 and recipe.objective != "cross_entropy":
        raise FerError(  # the class centres would learn apart in every process
            f"objective {recipe.objective!r} learns class centres, which data-parallel "
            "training does not average between processes: train it in one process"
        )
    seed_everything(seed)
    train_loader, val_loader = recipe_loaders(recipe, data, classes, seed, clean, rank, world_size)
    train_set = train_loader.dataset
    names = train_set.class_names
    model, loss_fn, optimizer, scheduler = build_training(
        recipe, len(names), len(train_loader), train_set.class_counts()
    )
    meta = make_meta(recipe.arch, names, **recipe.model_kwargs())
    settings = run_settings(
        recipe, data, names, seed, clean, validate_every, train_set.fingerprint()
    )
    if resume and Path(out).exists():
        _check_same_settings(Path(out), settings)
    meta["extra"] = {
        "recipe": asdict(recipe),
        "data": data.source,
        "tiny": data.tiny,
        "clean": clean,
        "seed": seed,
        "processes": world_size,
        "threads": torch.get_num_threads(),  # per process, for the model card
        "validate_every": validate_every,
        "settings": settings,
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
        ema=recipe.ema,
        **fit_kwargs,
    )
    return model, history


def settings_changed(saved: dict, wanted: dict) -> list[str]:
    """What differs between a saved run's settings and the wanted ones, in words."""
    before = (saved.get("extra") or {}).get("settings")
    if before is None:
        return ["the settings (the file does not record them)"]
    changes = []
    for key, value in wanted.items():
        if key == "recipe":
            old = _recorded_recipe(before.get("recipe") or {})
            changes += [
                f"{field} {old.get(field)!r} -> {new!r}"
                for field, new in value.items()
                if old.get(field) != new
            ]
        elif before.get(key) != value:
            changes.append(f"{key} {before.get(key)!r} -> {value!r}")
    return changes


def _recorded_recipe(record: dict) -> dict:
    """A saved run's recipe with every field it predates at its default (which is what
    that run trained with), so that a field added later does not make it another run.
    A run that recorded no recipe stays without one: every field then shows as changed."""
    if not record:
        return {}
    try:
        return asdict(recipe_from_record(record))
    except (FerError, TypeError):  # a record today's recipe refuses: compare it as it is
        return record


def _check_same_settings(path: Path, settings: dict) -> None:
    """Resume only the run these settings describe, taken further or validated less often.

    More epochs and another validate_every are allowed: neither changes the weights
    the epochs done so far trained (a one-cycle schedule's length fit checks itself).
    """
    saved = load_checkpoint(path)
    if (saved.get("extra") or {}).get("settings") is None:
        return  # a run saved before settings were recorded: fit checks what it can
    allowed = ("epochs ", "validate_every ")
    changed = [c for c in settings_changed(saved, settings) if not c.startswith(allowed)]
    if changed:
        raise CheckpointError(
            f"{path} was trained with other settings ({'; '.join(changed)}): resume with "
            "the same settings, or train again without --resume"
        )


def saved_run(
    path: str | Path,
    recipe: TrainRecipe,
    data: FaceData,
    classes: Sequence[str],
    seed: int,
    clean: bool = False,
    validate_every: int = 1,
) -> tuple[bool, list[str]]:
    """(finished, changed settings) of the run saved at `path`, against these settings.

    finished: every epoch of the recipe ran with exactly these settings (run_settings,
    the training faces' fingerprint included). changed: each setting that differs, in
    words (settings_changed); empty for the same settings, finished or interrupted.
    """
    train_set = data.dataset(
        "train", classes, recipe.channels, clean=clean, per_class=recipe.per_class, seed=seed
    )
    wanted = run_settings(
        recipe, data, classes, seed, clean, validate_every, train_set.fingerprint()
    )
    saved = load_checkpoint(path)
    changed = settings_changed(saved, wanted)
    return not changed and saved.get("epoch", 0) >= recipe.epochs, changed


def train_or_load(
    path: str | Path,
    recipe: str | TrainRecipe,
    data: FaceData,
    classes: Sequence[str] = COURSE_CLASSES,
    seed: int = COURSE_SEED,
    device: str | torch.device | None = None,
    retrain: bool = False,
    clean: bool = False,
    validate_every: int = 1,
    keep_resume_state: bool = False,
    **fit_kwargs: object,
) -> tuple[nn.Module, dict]:
    """The model saved at `path` if it is a finished run of exactly these settings; else train.

    The one way a notebook gets trained weights: a finished run with the same settings
    (run_settings: the recipe, the classes, the data and the faces, the seed) is loaded;
    an interrupted one resumes; a run with other settings is trained again, and the
    message says which setting changed. retrain=True always starts again. A finished
    run is kept without its resume state (checkpoints.drop_resume_state), a third to
    two thirds of the file, unless keep_resume_state=True (notebook 06 shows it, and
    `python -m fer_helpers train --resume` can take the run further).
    Returns (model in eval mode, checkpoint info with its history).
    """
    recipe = get_recipe(recipe)
    path = Path(path)
    device = choose_device() if device is None else torch.device(device)
    names = list(parse_classes(classes))
    if path.exists() and not retrain:
        finished, changed = saved_run(path, recipe, data, names, seed, clean, validate_every)
        if finished:
            return load_model(path, class_names=names, device=device)
        if changed:
            print(f"{path} was trained with other settings ({'; '.join(changed)}): training again")
            retrain = True
    if retrain:
        path.unlink(missing_ok=True)
    train_with_recipe(
        recipe, data, path, names, seed, device, True, clean, validate_every, **fit_kwargs
    )
    if is_main() and not keep_resume_state:
        drop_resume_state(path)  # finished: it is only ever loaded again, never resumed
    return load_model(path, class_names=names, device=device)


def three_class_epochs(data: FaceData, recipe: str | TrainRecipe = "fast") -> int:
    """Epochs notebook 06 trains for: the recipe's, or 1 on tiny data (a quick check, as in CI)."""
    return TINY_EPOCHS if data.tiny else get_recipe(recipe).epochs


def three_class_weights(data: FaceData, recipe: str | TrainRecipe = "fast") -> Path:
    """Where notebook 06 saves its 3-class model for these data and recipe.

    face_expression[.tag].pth for the fast recipe, face_expression_course[.tag].pth
    for the handout's, so that trying one never overwrites the other.
    """
    name = get_recipe(recipe).name
    file = COURSE_WEIGHTS if name == FAST.name else COURSE_WEIGHTS.replace(".pth", f"_{name}.pth")
    return weights_path(file, data.tag)


def course_loaders(
    data: FaceData, classes: Sequence[str] = COURSE_CLASSES, seed: int = COURSE_SEED
) -> tuple[FaceLoader, FaceLoader | None]:
    """(train loader, validation loader) of the handout's recipe: batches of 32 faces."""
    return recipe_loaders(COURSE, data, classes, seed)


def log_every(train_loader: FaceLoader, lines: int = LOG_LINES_PER_EPOCH) -> int:
    """How many batches between two log lines for about `lines` lines per epoch (at least 1)."""
    return max(1, len(train_loader) // lines)


def train_three_class_model(
    data: FaceData,
    recipe: str | TrainRecipe = "fast",
    retrain: bool = False,
    device: str | torch.device | None = None,
) -> tuple[nn.Module, dict]:
    """Notebook 06's 3-class model: loaded if a finished run is saved, else trained (or resumed).

    Saved at three_class_weights(data, recipe) after every epoch; an interrupted run
    resumes; retrain=True starts again; a saved run with other settings is trained
    again (train_or_load). Returns (model in eval mode, checkpoint info with
    class_names, epoch and history).
    """
    recipe = _three_class_recipe(data, recipe)
    path = three_class_weights(data, recipe)
    return train_or_load(
        path, recipe, data, COURSE_CLASSES, COURSE_SEED, device, retrain, keep_resume_state=True
    )


def three_class_model(
    data: FaceData,
    device: str | torch.device | None = None,
    pretrained: bool = True,
) -> tuple[nn.Module, dict]:
    """The 3-class model the notebooks after 06 use, without training when it can.

    1. notebook 06's finished run (fast recipe) at three_class_weights(data), if there is one;
    2. else, on FER2013, the shipped pretrained `si100-3class` (pretrained=False: train);
    3. else (synthetic faces, or no shipped weights) train it now as notebook 06 does.
    Returns (model in eval mode, checkpoint info); info["source"] says which it was.
    """
    device = choose_device() if device is None else torch.device(device)
    path = three_class_weights(data)
    recipe = _three_class_recipe(data)
    if path.exists() and saved_run(path, recipe, data, COURSE_CLASSES, COURSE_SEED)[0]:
        model, info = load_model(path, class_names=COURSE_CLASSES, device=device)
        return model, {**info, "source": str(path)}
    if pretrained and not data.synthetic and is_shipped(PRETRAINED_3CLASS):
        model, info = load_pretrained(PRETRAINED_3CLASS, COURSE_CLASSES, device)
        return model, {**info, "source": f"pretrained {PRETRAINED_3CLASS}"}
    model, info = train_three_class_model(data, device=device)
    return model, {**info, "source": str(path)}


def _three_class_recipe(data: FaceData, recipe: str | TrainRecipe = "fast") -> TrainRecipe:
    """The recipe as notebook 06 runs it on these data: 1 epoch on tiny data."""
    return replace(get_recipe(recipe), epochs=three_class_epochs(data, recipe))
