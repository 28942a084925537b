"""Training: seed, build (model, loss, optimizer), fit, validate.

fit is the course's one training loop: the handout's recipe, the fast one, the
imbalance strategies, DACL's variants and notebook 14's contenders all train in it
(recipes.py turns a recipe into what fit takes). Beside the handout's loop it has
two additions a long run needs: a checkpoint after every epoch, and resume=True to
carry on after an interruption
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
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .allocator import keep_freed_memory
from .averaging import WeightAverage
from .checkpoints import FORMAT, check_fits, load_checkpoint, load_weights, save_checkpoint
from .devices import autocast, choose_device, describe_device, resolve_precision
from .distributed import is_main, sync_buffers, world
from .errors import CheckpointError, FerError
from .inference import class_probabilities
from .metrics import balanced_accuracy, confusion_matrix
from .models import build_model

HISTORY_KEYS = (
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_bal_acc",
    "epoch_seconds",
    "train_seconds",
    "cpu_seconds",
)
"""What fit records once per epoch; val_* are NaN for an epoch without validation.
epoch_seconds is the whole epoch, validation included; train_seconds the training pass
alone, and cpu_seconds the processor time of all threads during it. An objective with
parts (DACL's cross-entropy and sparse center loss) adds train_<part> for each."""

Optimizers = torch.optim.Optimizer | Sequence[torch.optim.Optimizer]
"""fit steps one optimizer, or several (DACL's class centres learn by their own SGD)."""


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
    loss_fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
    optimizer: Optimizers,
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
    ema: float = 0.0,
) -> dict[str, list[float]]:
    """Train for `epochs` epochs in total and return the history (see HISTORY_KEYS).

    The one training loop of the course: every model in every notebook trains here.
    loss_fn is a loss of (scores, labels), such as nn.CrossEntropyLoss, or an objective
    with `part_names` (dacl.DACLLoss): it is called with all the model's outputs and the
    labels and returns (loss, *parts), and each part's mean goes into the history as
    train_<part>. optimizer is one optimizer or a sequence of them, all stepped after
    every batch; scheduler is stepped after every batch too (OneCycleLR counts batches).

    Logs the device, the first batch's shape and value range, the mean loss of
    the last `log_every` batches, and one summary line per epoch.
    With checkpoint_path, saves a checkpoint after every epoch; checkpoint_meta
    (from checkpoints.make_meta) says how to rebuild the model. With resume=True
    and an existing checkpoint, continues after its last epoch.
    precision is "fp32", "bf16" or "auto" (see devices.resolve_precision); tta=True
    validates on each face and its mirror image, averaging the two.
    validate_every=N validates after every Nth epoch and after the last one only (the
    other epochs' validation entries are NaN): long runs save the time; training is the same.
    ema=decay (0 < decay < 1) keeps an exponential moving average of the weights, updated
    after every step (averaging.WeightAverage): validation scores the average, the
    checkpoint's model_state holds it (its average_state keeps the trained weights, to
    resume), and when fit returns, `model` holds the average.
    In a torchrun process group, every process trains its share of the batches
    and only the first one logs and writes the checkpoint.
    """
    if checkpoint_path is not None and checkpoint_meta is None:
        raise FerError("fit(checkpoint_path=...) needs checkpoint_meta=make_meta(arch, classes)")
    if validate_every < 1:
        raise FerError(f"validate_every must be at least 1, not {validate_every}")
    optimizers = _as_list(optimizer)
    device = choose_device() if device is None else torch.device(device)
    precision = resolve_precision(precision, device)
    keep_freed_memory()  # large activations come back from malloc's heap: no page faults
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(device)  # its class weights or centres must sit beside the scores
    say = tqdm.write if progress and log is print else log  # keeps progress bars intact
    main = is_main()
    if not main:
        say, progress = (lambda _: None), False

    keys = history_keys(loss_fn)
    history: dict[str, list[float]] = {key: [] for key in keys}
    average = WeightAverage(model, ema) if ema else None
    start = 0
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        start, history = _resume(
            checkpoint_path,
            checkpoint_meta,
            model,
            (loss_fn, optimizers, scheduler),
            train_loader,
            average,
        )
        say(f"Resuming from {checkpoint_path} after epoch {start}")
        if start >= epochs:
            say(f"{checkpoint_path} already has {start} epochs ({epochs} asked for): nothing to do")
            _keep_average(model, average)
            return history
    elif resume:
        say(f"No checkpoint at {checkpoint_path} yet: training from the first epoch")

    trained = _data_parallel(model, device)
    ranks = world()[1]
    say(
        f"Training device: {describe_device(device)}, precision {precision}"
        + (", channels_last" if channels_last else "")
        + (f", {ranks} data-parallel processes" if ranks > 1 else "")
    )
    # An objective with parts is not a loss of scores: validation scores cross-entropy.
    val_loss_fn = nn.CrossEntropyLoss() if objective_parts(loss_fn) else loss_fn
    for epoch in range(start, epochs):
        began, cpu_began = time.perf_counter(), time.process_time()
        means = _train_epoch(
            trained,
            train_loader,
            (loss_fn, optimizers, scheduler),
            device,
            (epoch, epochs),
            show_batch=epoch == start,
            log_every=log_every,
            say=say,
            progress=progress,
            channels_last=channels_last,
            precision=precision,
            after_step=(lambda: average.update(model)) if average is not None else None,
        )
        trained_for = time.perf_counter() - began, time.process_time() - cpu_began
        sync_buffers(model)  # batch-norm statistics: every process keeps the first one's
        scored = model if average is None else average.model
        val = {"loss": math.nan, "accuracy": math.nan, "balanced_accuracy": math.nan}
        if val_loader is not None and ((epoch + 1) % validate_every == 0 or epoch + 1 == epochs):
            val = validate(scored, val_loader, val_loss_fn, device, precision=precision, tta=tta)
        means |= {
            "val_loss": val["loss"],
            "val_acc": val["accuracy"],
            "val_bal_acc": val["balanced_accuracy"],
            "epoch_seconds": time.perf_counter() - began,
            "train_seconds": trained_for[0],
            "cpu_seconds": trained_for[1],
        }
        for key in keys:
            history[key].append(means[key])
        say(_summary(epoch, epochs, history))
        if checkpoint_path is not None and main:
            states = [opt.state_dict() for opt in optimizers]
            save_checkpoint(
                checkpoint_path,
                **checkpoint_meta,
                model_state=scored.state_dict(),
                optimizer_state=states[0] if len(states) == 1 else states,
                scheduler_state=scheduler.state_dict() if scheduler is not None else None,
                objective_state=_objective_state(loss_fn),
                average_state=_average_state(model, average),
                epoch=epoch + 1,
                history=history,
                rng=_rng_state(train_loader),
            )
    _keep_average(model, average)
    return history


def _average_state(model: nn.Module, average: WeightAverage | None) -> dict | None:
    """What resuming a weight-averaged run needs beside the average (model_state): the
    decay, the update count and the trained weights themselves. None without an average."""
    if average is None:
        return None
    return {"decay": average.decay, "updates": average.updates, "trained": model.state_dict()}


def _keep_average(model: nn.Module, average: WeightAverage | None) -> None:
    """The trained model becomes its weight average: what fit's caller evaluates and saves."""
    if average is not None:
        model.load_state_dict(average.model.state_dict())


def objective_parts(loss_fn: object) -> tuple[str, ...]:
    """The names of an objective's parts (DACLLoss: ("ce", "sc")); () for a plain loss."""
    return tuple(getattr(loss_fn, "part_names", ()))


def history_keys(loss_fn: object = None) -> tuple[str, ...]:
    """The keys of fit's history for this loss: HISTORY_KEYS, then train_<part> for each part."""
    return HISTORY_KEYS + tuple(f"train_{part}" for part in objective_parts(loss_fn))


def batch_loss(
    loss_fn: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
    outputs: torch.Tensor | tuple[torch.Tensor, ...],
    y: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """(loss, scores, parts) of one batch: the loss to minimise, the class scores, the parts.

    A plain loss sees the scores (the first output of a model that returns several); an
    objective with part_names sees every output. Both compute in float32.
    """
    outputs = (
        tuple(o.float() for o in outputs) if isinstance(outputs, tuple) else (outputs.float(),)
    )
    if not objective_parts(loss_fn):
        return loss_fn(outputs[0], y), outputs[0], []
    loss, *parts = loss_fn(*outputs, y)
    return loss, outputs[0], parts


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
    probability vectors (flip test-time augmentation); "shifts" averages 10 views
    (inference.tta_views).
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


def _train_epoch(
    model: nn.Module,
    loader: Iterable,
    training: tuple,
    device: torch.device,
    epoch_of: tuple[int, int],
    *,
    show_batch: bool,
    log_every: int,
    say: Callable[[str], object],
    progress: bool,
    channels_last: bool,
    precision: str = "fp32",
    after_step: Callable[[], object] | None = None,
) -> dict[str, float]:
    """One pass over the training data; returns the means: train_loss, train_acc, train_<part>.

    training: (loss_fn, optimizers, scheduler or None); after_step is called after every
    optimizer step (fit's weight average).
    """
    loss_fn, optimizers, scheduler = training
    epoch, epochs = epoch_of
    total = len(loader)
    parts = objective_parts(loss_fn)
    model.train()
    # Sums stay on the device: calling .item() every batch would make the GPU wait.
    loss_sum = torch.zeros((), device=device)
    part_sums = torch.zeros(len(parts), device=device)
    recent = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    # One iterator per epoch: given the loader itself, tqdm.auto's bar would open a second
    # one (a DataLoader with workers would start them twice).
    batches = iter(loader)
    bar = tqdm(batches, total=total, desc=f"Epoch {epoch + 1}/{epochs}", disable=not progress)
    for k, (x, y) in enumerate(bar, start=1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if show_batch and k == 1:
            say(f"Batch shape: {list(x.shape)}, value range: ({x.min():.2f}, {x.max():.2f})")
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss, scores, values = batch_loss(loss_fn, model(x), y)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if after_step is not None:
            after_step()

        loss_sum += loss.detach() * len(y)
        if parts:
            part_sums += torch.stack([value.detach() for value in values]) * len(y)
        recent += loss.detach()
        labels = y if y.ndim == 1 else y.argmax(dim=1)  # soft targets (mixup): the larger share
        correct += (scores.argmax(dim=1) == labels).sum()
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
    means = {"train_loss": loss_sum.item() / seen, "train_acc": correct.item() / seen}
    for part, value in zip(parts, part_sums.tolist(), strict=True):
        means[f"train_{part}"] = value / seen
    return means


def _summary(epoch: int, epochs: int, history: dict[str, list[float]]) -> str:
    line = (
        f"Epoch {epoch + 1}/{epochs} done: train loss {history['train_loss'][-1]:.4f},"
        f" train acc {history['train_acc'][-1]:.2%}"
    )
    parts = [key for key in history if key not in HISTORY_KEYS]  # an objective's train_<part>
    if parts:
        line += " (" + ", ".join(f"{key[6:]} {history[key][-1]:.4f}" for key in parts) + ")"
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
    training: tuple,
    loader: Iterable,
    average: WeightAverage | None = None,
) -> tuple[int, dict[str, list[float]]]:
    """Restore model, objective, optimizers, scheduler, weight average and random states.

    training: (loss_fn, optimizers, scheduler or None). Returns (epochs done, history).
    """
    loss_fn, optimizers, scheduler = training
    checkpoint = load_checkpoint(path)
    if checkpoint["format"] != FORMAT or "epoch" not in checkpoint:
        raise CheckpointError(f"{path} holds weights only, not a training run to resume")
    if checkpoint["arch"] != meta["arch"]:
        raise CheckpointError(f"{path} holds a {checkpoint['arch']!r} model, not {meta['arch']!r}")
    names = meta["class_names"]
    check_fits(checkpoint, path, num_classes=len(names), class_names=names)
    _check_same_schedule(checkpoint, path, scheduler)
    _restore_average(checkpoint, path, model, average)
    states = checkpoint.get("optimizer_state")
    if states is not None:
        states = states if isinstance(states, list) else [states]
        if len(states) != len(optimizers):
            raise CheckpointError(
                f"{path} holds {len(states)} optimizer states; this training has {len(optimizers)}"
            )
        for optimizer, state in zip(optimizers, states, strict=True):
            optimizer.load_state_dict(state)
    if checkpoint.get("objective_state") is not None and isinstance(loss_fn, nn.Module):
        load_weights(loss_fn, checkpoint["objective_state"], path)
    if scheduler is not None and checkpoint.get("scheduler_state") is not None:
        scheduler.load_state_dict(checkpoint["scheduler_state"])
    if checkpoint.get("rng") is not None:
        _restore_rng(checkpoint["rng"], loader)
    saved = checkpoint.get("history") or {}
    done = checkpoint["epoch"]
    # A run saved before a key existed gets NaN for it, so every list has one value per epoch.
    history = {key: list(saved.get(key, [math.nan] * done)) for key in history_keys(loss_fn)}
    return done, history


def _restore_average(
    checkpoint: dict, path: str | Path, model: nn.Module, average: WeightAverage | None
) -> None:
    """The trained weights into `model`; with a weight average, the average and its count."""
    saved = checkpoint.get("average_state")
    if (saved is None) != (average is None):
        had = f"a weight average (decay {saved['decay']})" if saved else "no weight average"
        raise CheckpointError(
            f"{path} was trained with {had}; resume it the same way, or train again "
            "without --resume"
        )
    if average is None:
        load_weights(model, checkpoint["model_state"], path)
        return
    if saved["decay"] != average.decay:
        raise CheckpointError(
            f"{path} averaged its weights with decay {saved['decay']}, not {average.decay}: "
            "resume with the same decay, or train again without --resume"
        )
    load_weights(model, saved["trained"], path)
    load_weights(average.model, checkpoint["model_state"], path)
    average.updates = int(saved["updates"])


def _as_list(optimizer: Optimizers) -> list:
    return list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]


def _objective_state(loss_fn: object) -> dict | None:
    """What an objective learns (DACL's class centres), for the checkpoint; None if nothing."""
    if isinstance(loss_fn, nn.Module) and any(True for _ in loss_fn.parameters()):
        return loss_fn.state_dict()
    return None


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
