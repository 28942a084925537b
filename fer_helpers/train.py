"""Training: pick a device, seed, build (model, loss, optimizer), fit, predict.

fit is the course's training loop with two additions a long run needs: a
checkpoint after every epoch, and resume=True to carry on after an interruption
exactly where the uninterrupted run would have been (same weights, bit for bit
on the CPU), because the checkpoint also holds the optimizer's state and the
random number generators that shuffle the data.

A loader is anything that yields (images, labels) batches and has len(): a
torch DataLoader or fer_helpers' own. If it has state_dict() / load_state_dict()
(or a `generator` attribute, as DataLoader(generator=...) has), its shuffling
state goes into the checkpoint too.

What makes it fast (recipes.FAST uses all of it): channels_last memory
layout, bfloat16 autocast where the hardware computes in it (precision="auto"),
a learning-rate scheduler stepped after every batch, flip test-time
augmentation (tta=True) when validating. For every recipe, fit keeps freed
activations in the process instead of handing them back to the kernel after
each step (allocator.py). Started by torchrun, fit trains
data-parallel (DistributedDataParallel): see distributed.py.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .allocator import keep_freed_memory
from .checkpoints import (
    FORMAT,
    check_fits,
    load_checkpoint,
    load_model,
    load_weights,
    make_meta,
    save_checkpoint,
)
from .distributed import is_main, sync_buffers, world
from .errors import CheckpointError, FerError
from .metrics import balanced_accuracy, confusion_matrix
from .models import build_model

HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_bal_acc", "epoch_seconds")
"""What fit records once per epoch; val_* are NaN when there is no val_loader."""

PRECISIONS = ("auto", "fp32", "bf16")
TTA_WORDS = {  # test-time augmentation modes (see tta_views), in words for reports
    "none": "none, one look at each face",
    "flip": "each face and its mirror image",
    "shifts": "10 views: each face, shifted 2 pixels four ways, and the mirror of each",
}
TTA_MODES = tuple(TTA_WORDS)
TTA_SHIFT = 2  # pixels, for tta="shifts"


def choose_device(prefer: str | None = None) -> torch.device:
    """CUDA if there is a usable NVIDIA GPU, else Apple's MPS, else the CPU.

    prefer ("cpu", "cuda", "cuda:1", "mps") forces one and raises FerError when
    this machine cannot use it.
    """
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),  # not torch.cuda: the handout's slip
        "cpu": True,
    }
    if prefer is None:
        return torch.device(next(kind for kind, ok in available.items() if ok))
    kind = prefer.split(":")[0].strip().lower()
    if kind not in available:
        raise FerError(f"unknown device {prefer!r}: expected 'cuda', 'mps', 'cpu' or None")
    if not available[kind]:
        usable = ", ".join(k for k, ok in available.items() if ok)
        raise FerError(f"device {prefer!r} is not available on this machine (usable: {usable})")
    return torch.device(prefer.strip().lower())


def describe_device(device: str | torch.device) -> str:
    """One line naming the device, with a hint when an NVIDIA GPU sits unused."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    if device.type == "cpu" and shutil.which("nvidia-smi") and not torch.cuda.is_available():
        return (
            "cpu (an NVIDIA GPU seems present but PyTorch cannot use it:"
            " this torch build lacks CUDA, or the driver is too old)"
        )
    return device.type


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """ "fp32" or "bf16": what precision="auto" means on this device.

    bfloat16 halves the bytes moved and, on hardware that computes in it, about
    doubles the speed (2.0x for SI100FaceNet on this course's 2-core test machine).
    "auto" takes it on CUDA GPUs that support it and on CPUs with native
    bfloat16 instructions (AVX512-BF16 or AMX); elsewhere, where bfloat16 is
    emulated and slower, and on Apple's MPS, it stays with float32.
    """
    if precision not in PRECISIONS:
        raise FerError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if kind == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"


def cpu_has_bf16() -> bool:
    """True if this CPU has bfloat16 instructions (Linux /proc/cpuinfo flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # macOS, Windows: no /proc; stay with float32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: str | torch.device, precision: str) -> torch.autocast:
    """The context that runs a forward pass in `precision` ("fp32" or "bf16")."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=precision == "bf16")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's random numbers; return a generator for shuffling.

    Pass the generator to the data loader. On the CPU two runs with one seed
    then give identical weights; GPUs may differ in the last digits.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def make_training(
    arch: str = "si100",
    num_classes: int = 3,
    lr: float = 1e-3,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    **model_kwargs: object,
) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer]:
    """The course's factory: (model, cross-entropy loss, Adam optimizer).

    class_weights (one per class) make mistakes on rare classes cost more.
    """
    model = build_model(arch, num_classes=num_classes, **model_kwargs)
    weight = None
    if class_weights is not None:
        weight = torch.as_tensor(class_weights, dtype=torch.float32)
        if weight.shape != (num_classes,):
            raise FerError(f"class_weights has {weight.numel()} values; expected {num_classes}")
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return model, loss_fn, optimizer


def fit(
    model: nn.Module,
    train_loader: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    device: str | torch.device | None = None,
    val_loader: Iterable | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_meta: dict | None = None,
    resume: bool = False,
    log_every: int = 50,
    log: Callable[[str], object] = print,
    progress: bool = True,
    channels_last: bool = False,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    precision: str = "fp32",
    tta: bool | str = False,
    validate_every: int = 1,
) -> dict[str, list[float]]:
    """Train for `epochs` epochs in total and return the history (see HISTORY_KEYS).

    Logs the device, the first batch's shape and value range, the mean loss of
    the last `log_every` batches, and one summary line per epoch.
    With checkpoint_path, saves a checkpoint after every epoch; checkpoint_meta
    (from checkpoints.make_meta) says how to rebuild the model. With resume=True
    and an existing checkpoint, continues after its last epoch.
    scheduler is stepped after every batch (OneCycleLR counts batches);
    precision is "fp32", "bf16" or "auto" (see resolve_precision); tta=True
    validates on each face and its mirror image, averaging the two.
    validate_every=N validates after every Nth epoch and after the last one only (the
    other epochs' validation entries are NaN): long runs save the time; training is the same.
    In a torchrun process group, every process trains its share of the batches
    and only the first one logs and writes the checkpoint.
    """
    if checkpoint_path is not None and checkpoint_meta is None:
        raise FerError("fit(checkpoint_path=...) needs checkpoint_meta=make_meta(arch, classes)")
    if validate_every < 1:
        raise FerError(f"validate_every must be at least 1, not {validate_every}")
    device = choose_device() if device is None else torch.device(device)
    precision = resolve_precision(precision, device)
    keep_freed_memory()  # large activations come back from malloc's heap: no page faults
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)  # its class weights must sit beside the scores
    say = tqdm.write if progress and log is print else log  # keeps progress bars intact
    main = is_main()
    if not main:
        say, progress = (lambda _: None), False

    history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
    start = 0
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        start, history = _resume(
            checkpoint_path, checkpoint_meta, model, optimizer, train_loader, scheduler
        )
        say(f"Resuming from {checkpoint_path} after epoch {start}")
        if start >= epochs:
            say(f"{checkpoint_path} already has {start} epochs ({epochs} asked for): nothing to do")
            return history
    elif resume:
        say(f"No checkpoint at {checkpoint_path} yet: starting from scratch")

    trained = _data_parallel(model, device)
    ranks = world()[1]
    say(
        f"Training device: {describe_device(device)}, precision {precision}"
        + (", channels_last" if channels_last else "")
        + (f", {ranks} data-parallel processes" if ranks > 1 else "")
    )
    for epoch in range(start, epochs):
        began = time.perf_counter()
        train_loss, train_acc = _train_epoch(
            trained,
            train_loader,
            loss_fn,
            optimizer,
            device,
            (epoch, epochs),
            show_batch=epoch == start,
            log_every=log_every,
            say=say,
            progress=progress,
            channels_last=channels_last,
            scheduler=scheduler,
            precision=precision,
        )
        sync_buffers(model)  # batch-norm statistics: every process keeps the first one's
        val = {"loss": math.nan, "accuracy": math.nan, "balanced_accuracy": math.nan}
        if val_loader is not None and ((epoch + 1) % validate_every == 0 or epoch + 1 == epochs):
            val = validate(model, val_loader, loss_fn, device, precision=precision, tta=tta)
        seconds = time.perf_counter() - began
        values = (
            train_loss,
            train_acc,
            val["loss"],
            val["accuracy"],
            val["balanced_accuracy"],
            seconds,
        )
        for key, value in zip(HISTORY_KEYS, values, strict=True):
            history[key].append(value)
        say(_summary(epoch, epochs, history))
        if checkpoint_path is not None and main:
            save_checkpoint(
                checkpoint_path,
                **checkpoint_meta,
                model_state=model.state_dict(),
                optimizer_state=optimizer.state_dict(),
                scheduler_state=scheduler.state_dict() if scheduler is not None else None,
                epoch=epoch + 1,
                history=history,
                rng=_rng_state(train_loader),
            )
    return history


def train_or_load(
    path: str | Path,
    train_loader: Iterable,
    class_names: Sequence[str],
    epochs: int,
    val_loader: Iterable | None = None,
    arch: str = "si100",
    lr: float = 1e-3,
    device: str | torch.device | None = None,
    retrain: bool = False,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    **fit_kwargs: object,
) -> tuple[nn.Module, dict]:
    """The model saved at `path` if it is a finished run for these classes; else train it.

    A notebook that needs trained weights calls this: it reuses what an earlier
    notebook trained, finishes a run that was interrupted (resume), or trains
    from scratch. class_weights weight the loss per class (see make_training).
    Returns (model in eval mode, checkpoint info with its history).
    """
    path = Path(path)
    names = list(class_names)
    if path.exists() and not retrain:
        info = load_checkpoint(path)
        if info.get("epoch", 0) >= epochs and info.get("class_names") == names:
            return load_model(path, class_names=names, device=device or choose_device())
    elif path.exists():
        path.unlink()  # retrain: start again rather than resume
    model, loss_fn, optimizer = make_training(arch, len(names), lr=lr, class_weights=class_weights)
    fit(
        model,
        train_loader,
        loss_fn,
        optimizer,
        epochs,
        device=device,
        val_loader=val_loader,
        checkpoint_path=path,
        checkpoint_meta=make_meta(arch, names),
        resume=True,
        **fit_kwargs,
    )
    return load_model(path, class_names=names, device=device or choose_device())


def evaluate_loss_acc(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: str | torch.device,
) -> tuple[float, float]:
    """Mean loss per image and accuracy (0..1) over a loader, in eval mode."""
    scores = validate(model, loader, loss_fn, device)
    return scores["loss"], scores["accuracy"]


def validate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: str | torch.device,
    precision: str = "fp32",
    tta: bool | str = False,
) -> dict[str, float]:
    """Mean loss per image, accuracy and balanced accuracy (0..1) over a loader, in eval mode.

    tta=True scores each face and its mirror image and averages the two
    probability vectors (flip test-time augmentation); "shifts" averages 10 views (tta_views).
    """
    keep_freed_memory()
    model.eval()
    channels_last = _is_channels_last(model)
    loss_sum, seen = 0.0, 0
    truth, guesses, num_classes = [], [], 1
    with torch.inference_mode(), autocast(device, precision):
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            probabilities = class_probabilities(model, x, tta)
            loss_sum += loss_fn(probabilities.clamp_min(1e-12).log(), y).item() * len(y)
            truth.append(y.cpu())
            guesses.append(probabilities.argmax(dim=1).cpu())
            num_classes = probabilities.shape[1]
            seen += len(y)
    if seen == 0:
        raise FerError("the loader gave no images to evaluate")
    y_true, y_pred = torch.cat(truth).numpy(), torch.cat(guesses).numpy()
    cm = confusion_matrix(y_true, y_pred, num_classes)
    return {
        "loss": loss_sum / seen,
        "accuracy": float((y_true == y_pred).mean()),
        "balanced_accuracy": balanced_accuracy(cm),
    }


def tta_mode(tta: bool | str | None) -> str:
    """ "none", "flip" or "shifts" for a tta setting; True means "flip", as recipes store it."""
    if not isinstance(tta, str):
        return "flip" if tta else "none"
    if tta not in TTA_MODES:
        raise FerError(f"unknown test-time augmentation {tta!r}: expected one of {TTA_MODES}")
    return tta


def tta_views(x: torch.Tensor, tta: bool | str = False) -> list[torch.Tensor]:
    """The views of a batch (B, C, H, W) that test-time augmentation scores and averages.

    "none": the batch itself. "flip" (or True): it and its mirror image. "shifts": those
    two and, of each, the four copies shifted by TTA_SHIFT pixels up, down, left and right
    (the border mirrored into the gap): 10 views, like the "ten-crop" of FER papers (which
    cut smaller crops) for a net that sees the whole 48x48 face. Each view costs one more
    forward pass.
    """
    mode = tta_mode(tta)
    views = [x]
    if mode == "none":
        return views
    views.append(x.flip(dims=[3]))
    if mode == "shifts":
        s, (h, w) = TTA_SHIFT, x.shape[-2:]
        padded = torch.nn.functional.pad(x, (s, s, s, s), mode="reflect")
        for dy, dx in ((-s, 0), (s, 0), (0, -s), (0, s)):
            shifted = padded[..., s + dy : s + dy + h, s + dx : s + dx + w]
            views += [shifted, shifted.flip(dims=[3])]
    return views


def class_probabilities(model: nn.Module, x: torch.Tensor, tta: bool | str = False) -> torch.Tensor:
    """Softmax probabilities (float32) of a batch, averaged over its tta_views."""
    views = tta_views(x, tta)
    probabilities = torch.softmax(scores_of(model, views[0]).float(), dim=1)
    for view in views[1:]:
        probabilities = probabilities + torch.softmax(scores_of(model, view).float(), dim=1)
    return probabilities / len(views)


def scores_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The class scores of a batch; a model may return (scores, ...), as DACLNet does."""
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


def predict(
    model: nn.Module,
    loader: Iterable,
    device: str | torch.device | None = None,
    tta: bool | str = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true labels, predicted labels, softmax probabilities) over a loader.

    Leaves the model in eval mode; runs on the model's own device unless told.
    tta=True averages each face's probabilities with its mirror image's; "shifts" over
    10 views (tta_views).
    """
    keep_freed_memory()
    device = next(model.parameters()).device if device is None else torch.device(device)
    model.to(device).eval()
    labels, probabilities = [], []
    with torch.inference_mode():
        for x, y in loader:
            probabilities.append(class_probabilities(model, x.to(device, non_blocking=True), tta))
            labels.append(torch.as_tensor(y).cpu())
    if not labels:
        raise FerError("the loader gave no images to predict")
    probs = torch.cat(probabilities).cpu().numpy()
    return torch.cat(labels).numpy().astype(np.int64), probs.argmax(axis=1), probs


def _train_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    epoch_of: tuple[int, int],
    *,
    show_batch: bool,
    log_every: int,
    say: Callable[[str], object],
    progress: bool,
    channels_last: bool,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    precision: str = "fp32",
) -> tuple[float, float]:
    """One pass over the training data; returns (mean loss, accuracy)."""
    epoch, epochs = epoch_of
    total = len(loader)
    model.train()
    # Sums stay on the device: calling .item() every batch would make the GPU wait.
    loss_sum = torch.zeros((), device=device)
    recent = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    bar = tqdm(loader, total=total, desc=f"Epoch {epoch + 1}/{epochs}", disable=not progress)
    for k, (x, y) in enumerate(bar, start=1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if show_batch and k == 1:
            say(f"Batch shape: {list(x.shape)}, value range: ({x.min():.2f}, {x.max():.2f})")
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            scores = model(x)
            loss = loss_fn(scores.float(), y)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()

        loss_sum += loss.detach() * len(y)
        recent += loss.detach()
        correct += (scores.argmax(dim=1) == y).sum()
        seen += len(y)
        if k % log_every == 0:
            mean = recent.item() / log_every
            step = epoch * total + k  # batches since the start of training
            say(f"Epoch: {epoch + 1}/{epochs}, Batch: {step}, {k}/{total}, loss: {mean:.4f}")
            bar.set_postfix(loss=f"{mean:.3f}")
            recent.zero_()
    bar.close()
    if seen == 0:
        raise FerError("the training loader gave no batches")
    return loss_sum.item() / seen, correct.item() / seen


def _summary(epoch: int, epochs: int, history: dict[str, list[float]]) -> str:
    line = (
        f"Epoch {epoch + 1}/{epochs} done: train loss {history['train_loss'][-1]:.4f},"
        f" train acc {history['train_acc'][-1]:.2%}"
    )
    if not math.isnan(history["val_loss"][-1]):
        line += (
            f", val loss {history['val_loss'][-1]:.4f}, val acc {history['val_acc'][-1]:.2%}"
            f" (balanced {history['val_bal_acc'][-1]:.2%})"
        )
    return line + f" ({history['epoch_seconds'][-1]:.1f} s)"


def _resume(
    path: str | Path,
    meta: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> tuple[int, dict[str, list[float]]]:
    """Restore model, optimizer, scheduler and random states; return (epochs done, history)."""
    checkpoint = load_checkpoint(path)
    if checkpoint["format"] != FORMAT or "epoch" not in checkpoint:
        raise CheckpointError(f"{path} holds weights only, not a training run to resume")
    if checkpoint["arch"] != meta["arch"]:
        raise CheckpointError(f"{path} holds a {checkpoint['arch']!r} model, not {meta['arch']!r}")
    names = meta["class_names"]
    check_fits(checkpoint, path, num_classes=len(names), class_names=names)
    _check_same_schedule(checkpoint, path, scheduler)
    load_weights(model, checkpoint["model_state"], path)
    if checkpoint.get("optimizer_state") is not None:
        optimizer.load_state_dict(checkpoint["optimizer_state"])
    if scheduler is not None and checkpoint.get("scheduler_state") is not None:
        scheduler.load_state_dict(checkpoint["scheduler_state"])
    if checkpoint.get("rng") is not None:
        _restore_rng(checkpoint["rng"], loader)
    saved = checkpoint.get("history") or {}
    done = checkpoint["epoch"]
    # A run saved before a key existed gets NaN for it, so every list has one value per epoch.
    history = {key: list(saved.get(key, [math.nan] * done)) for key in HISTORY_KEYS}
    return checkpoint["epoch"], history


def _check_same_schedule(
    checkpoint: dict, path: str | Path, scheduler: torch.optim.lr_scheduler.LRScheduler | None
) -> None:
    """A one-cycle schedule is planned for its total steps: resume only the same plan."""
    saved = (checkpoint.get("scheduler_state") or {}).get("total_steps")
    wanted = getattr(scheduler, "total_steps", None)
    if saved is not None and wanted is not None and saved != wanted:
        raise CheckpointError(
            f"{path} was trained on a one-cycle schedule of {saved} steps, not {wanted}: "
            "resume with the same recipe (epochs, batch size), or train again without --resume"
        )


def _is_channels_last(model: nn.Module) -> bool:
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    return (
        weight is not None
        and weight.is_contiguous(memory_format=torch.channels_last)
        and (not weight.is_contiguous())
    )


def _data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """The model wrapped in DistributedDataParallel inside a torchrun process group."""
    if world()[1] == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _rng_state(loader: Iterable) -> dict:
    """The random states that decide what happens next: global ones and the loader's."""
    state: dict = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    if hasattr(loader, "state_dict"):
        state["loader"] = loader.state_dict()
    elif isinstance(getattr(loader, "generator", None), torch.Generator):
        state["loader"] = {"generator": loader.generator.get_state()}
    return state


def _restore_rng(state: dict, loader: Iterable) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])
    if "loader" not in state:
        return
    if hasattr(loader, "load_state_dict"):
        loader.load_state_dict(state["loader"])
    elif isinstance(getattr(loader, "generator", None), torch.Generator):
        loader.generator.set_state(state["loader"]["generator"])
