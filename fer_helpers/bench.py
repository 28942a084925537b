"""Benchmarks that print figures: loading time, and training throughput per pipeline.

    python -m fer_helpers bench --data ../shared/fer2013

compares, in one run and on the same model (SI100FaceNet, 3 classes, batch 32,
Adam), the course's original input pipeline — torchvision ImageFolder +
DataLoader decoding JPEGs with PIL transforms every epoch — with fer_helpers'
FaceLoader, which serves batches from the decoded uint8 array in memory.
Nothing here asserts on time: it measures and reports.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torchvision import datasets, transforms

from .data import FaceData, load_fer2013
from .labels import COURSE_CLASSES, EMOTIONS
from .sources import find_fer2013
from .train import seed_everything


def time_loading(root: Path) -> dict[str, float]:
    """Seconds to get every split into memory: decoding the images, then from the cache."""
    start = time.perf_counter()
    load_fer2013(find_fer2013(root), use_cache=False)
    decoded = time.perf_counter() - start
    load_fer2013(find_fer2013(root))  # writes the cache if it is not there yet
    start = time.perf_counter()
    load_fer2013(find_fer2013(root))
    cached = time.perf_counter() - start
    return {"decode_seconds": decoded, "cache_seconds": cached}


class _Relabel:
    """Maps ImageFolder's alphabetical class index to our class order (picklable for workers)."""

    def __init__(self, folder_classes: Sequence[str], classes: Sequence[str]) -> None:
        self.table = [classes.index(c) if c in classes else -1 for c in folder_classes]

    def __call__(self, target: int) -> int:
        return self.table[target]


def imagefolder_loader(
    folder: Path,
    classes: Sequence[str] = COURSE_CLASSES,
    batch_size: int = 32,
    workers: int = 0,
    shuffle: bool = True,
) -> torch.utils.data.DataLoader:
    """The course's pipeline: ImageFolder + PIL transforms + DataLoader, decoding every epoch."""
    transform = transforms.Compose(
        [
            transforms.Grayscale(num_output_channels=3),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # [0, 1] -> [-1, 1]
        ]
    )
    dataset = datasets.ImageFolder(folder, transform=transform)
    dataset.target_transform = _Relabel(dataset.classes, list(classes))
    keep = [i for i, (_, t) in enumerate(dataset.samples) if dataset.classes[t] in classes]
    return torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, keep), batch_size, shuffle=shuffle, num_workers=workers
    )


def export_image_folder(data: FaceData, split: str, folder: Path) -> Path:
    """Write a split as PNG class folders (for data that did not come as folders)."""
    faces = data[split]
    for i, (image, label) in enumerate(zip(faces.images, faces.labels)):
        target = folder / EMOTIONS[label]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target / f"{i}.png")
    return folder


def _forever(loader: Iterable) -> Iterable:
    while True:
        yield from loader


def split_folder(data: FaceData, split: str, tmp: Path) -> Path:
    """A split as class folders: the user's own when FER2013 came as folders, else exported.

    Tiny data are always exported, so that the course's pipeline reads the same few faces.
    """
    if data.root is not None and not data.synthetic and not data.tiny:
        found = find_fer2013(data.root)
        files = found.splits[split].files
        if files is not None:
            return Path(files[0]).parents[1]
    return export_image_folder(data, split, tmp / split)


# --- The course's recipe and pipeline against the fast one, side by side --------------------

COURSE_TARGET = 0.71
"""The best validation accuracy the course's recipe reached in 10 epochs (issue 5's run)."""

PIPELINES = {
    "course": "course recipe: ImageFolder + DataLoader (PIL, 0 workers), batch 32, Adam, fp32",
    "fast": "fast recipe: uint8 faces in memory (FaceLoader), see recipes.FAST",
}


class _Take:
    """The first n batches of a loader, as a loader (fit needs len()); counts the images served."""

    def __init__(self, loader: Iterable, n: int) -> None:
        self.loader, self.n, self.images = loader, n, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        for _, batch in zip(range(self.n), _forever(self.loader)):
            self.images += len(batch[1])
            yield batch


def _silent(_: str) -> None:
    pass


def measure_pipeline(
    name: str,
    data_source: str,
    tiny: bool,
    steps: int,
    full: bool,
    target: float = COURSE_TARGET,
    max_epochs: int = 10,
) -> dict:
    """Train with one pipeline and measure it; run in a process of its own (see run_bench).

    Measures training images/s over `steps` steps (after a few warm-up steps),
    inference images/s (batches of 256) and milliseconds per single face, and
    with full=True the wall time from start (loading included) to the first
    epoch whose validation accuracy reaches `target`: the course trains until
    then (at most max_epochs), the fast recipe for all its epochs.
    """
    import resource

    from .data import load_data
    from .devices import resolve_precision
    from .recipes import COURSE, FAST, build_training, recipe_loaders
    from .train import fit

    recipe = COURSE if name == "course" else FAST
    precision = resolve_precision(recipe.precision, "cpu")
    seed_everything(0)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()  # the clock to the target starts with loading the data
        data = load_data(data_source, tiny=tiny, verbose=False)
        if name == "course":
            train_loader = imagefolder_loader(split_folder(data, "train", Path(tmp)))
            val_loader = imagefolder_loader(
                split_folder(data, "validation", Path(tmp)), batch_size=256, shuffle=False
            )
        else:
            train_loader, val_loader = recipe_loaders(recipe, data)
        loading = time.perf_counter() - began
        epochs = max_epochs if name == "course" else recipe.epochs
        model, loss_fn, optimizer, scheduler = build_training(recipe, 3, len(train_loader) or 1)
        settings = dict(
            device="cpu",
            log=_silent,
            progress=False,
            channels_last=recipe.channels_last,
            precision=precision,
        )
        result: dict = {
            "pipeline": PIPELINES[name],
            "precision": precision,
            "loading_seconds": loading,
        }
        if full:
            history: dict[str, list[float]] = {"val_acc": [], "val_bal_acc": [], "seconds": []}
            result["time_to_target_seconds"] = None
            began = time.perf_counter() - loading
            for _ in range(epochs):
                h = fit(
                    model,
                    train_loader,
                    loss_fn,
                    optimizer,
                    1,
                    val_loader=val_loader,
                    scheduler=scheduler,
                    tta=recipe.tta,
                    **settings,
                )
                history["val_acc"].append(h["val_acc"][0])
                history["val_bal_acc"].append(h["val_bal_acc"][0])
                history["seconds"].append(time.perf_counter() - began)
                if h["val_acc"][0] >= target and result["time_to_target_seconds"] is None:
                    result["time_to_target_seconds"] = history["seconds"][-1]
                    result["epochs_to_target"] = len(history["seconds"])
                    if name == "course":
                        break
            result["epochs"] = history
        # Speed on a fresh model of its own, so that it does not disturb the run above.
        result["train_images_per_second"] = _throughput(
            build_training(recipe, 3, 10**6)[:3], train_loader, steps, settings
        )
        result.update(_inference(model, val_loader, recipe.channels_last, precision))
    result["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _throughput(training: tuple, loader: Iterable, steps: int, settings: dict) -> float:
    """Training images/s of a fresh model over `steps` batches, after 5 warm-up batches."""
    from .train import fit

    model, loss_fn, optimizer = training
    fit(model, _Take(loader, 5), loss_fn, optimizer, 1, **settings)
    timed = _Take(loader, steps)
    history = fit(model, timed, loss_fn, optimizer, 1, **settings)
    return timed.images / history["epoch_seconds"][0]


def _inference(model: nn.Module, loader: Iterable, channels_last: bool, precision: str) -> dict:
    """Inference images/s in batches (the recipe's layout and precision) and ms per single face.

    A single face goes through in float32 and the plain memory layout, as `predict`
    and the photo demo run it: for a batch of one, channels_last and bfloat16 cost
    more in conversions than they save (measured: 7 ms vs 13-145 ms per face here).
    """
    from statistics import median

    from .devices import autocast

    model.eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    faces = torch.cat([x for x, _ in loader])
    with torch.inference_mode():
        with autocast("cpu", precision):
            for x, _ in _Take(loader, 1):  # warm-up
                model(x.contiguous(memory_format=fmt))
            start = time.perf_counter()
            for x, _ in loader:
                model(x.contiguous(memory_format=fmt))
            batch_seconds = time.perf_counter() - start
        model.to(memory_format=torch.contiguous_format)
        singles = []
        for i in range(min(len(faces), 220)):
            one = faces[i : i + 1].contiguous()
            start = time.perf_counter()
            model(one)
            singles.append(time.perf_counter() - start)
    return {
        "inference_images_per_second": len(faces) / batch_seconds,
        "ms_per_face": 1000 * median(singles[20:] or singles),
    }


def run_bench(data: FaceData, full: bool = False, steps: int = 200) -> dict:
    """The course's pipeline and the fast one, each in a fresh process, side by side.

    Short mode (full=False): training and inference speed and peak memory, a
    minute or two. full=True also trains both to the course's best accuracy
    (COURSE_TARGET, 3-class validation) and times it: 20-35 minutes on 2 cores.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    source = "synthetic" if data.synthetic else str(data.root)
    context = multiprocessing.get_context("spawn")  # a clean process: its own peak memory
    results: dict = {
        "data": data.source,
        "tiny": data.tiny,
        "mode": "full" if full else "short",
        "steps": steps,
        "target_accuracy": COURSE_TARGET,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if data.root is not None and not data.synthetic and not data.tiny:
        results["loading"] = time_loading(data.root)
    for name in PIPELINES:
        with ProcessPoolExecutor(1, mp_context=context) as worker:
            job = worker.submit(measure_pipeline, name, source, data.tiny, steps, full)
            results[name] = job.result()
    if full:
        add_reference(results)
    results["ratios"] = bench_ratios(results["course"], results["fast"])
    return results


def add_reference(results: dict) -> dict:
    """Time each pipeline to the course's accuracy of this run: min(target, its best).

    The course stops as soon as it reaches the target; when it never does in its
    epochs, its own best validation accuracy is what the fast recipe must match.
    Adds reference_accuracy and, per pipeline, time_to_reference_seconds (None: not reached).
    """
    reference = min(results["target_accuracy"], max(results["course"]["epochs"]["val_acc"]))
    results["reference_accuracy"] = reference
    for name in PIPELINES:
        epochs = results[name]["epochs"]
        reached = [t for a, t in zip(epochs["val_acc"], epochs["seconds"]) if a >= reference]
        results[name]["time_to_reference_seconds"] = reached[0] if reached else None
    return results


def bench_ratios(course: dict, fast: dict) -> dict:
    """fast over course for speeds, course over fast for times and memory (>1: fast is better).

    When the course never reached the target and the fast recipe did, the time ratio
    is a lower bound, `time_to_target_at_least`: the course's whole run over the fast time.
    """
    ratios = {
        "train_images_per_second": fast["train_images_per_second"]
        / course["train_images_per_second"],
        "inference_images_per_second": fast["inference_images_per_second"]
        / course["inference_images_per_second"],
        "ms_per_face": course["ms_per_face"] / fast["ms_per_face"],
        "peak_memory": course["peak_memory_mb"] / fast["peak_memory_mb"],
    }
    for key in ("target", "reference"):
        times = course.get(f"time_to_{key}_seconds"), fast.get(f"time_to_{key}_seconds")
        if None not in times:
            ratios[f"time_to_{key}"] = times[0] / times[1]
    fast_time = fast.get("time_to_target_seconds")
    if "epochs" in course and course.get("time_to_target_seconds") is None and fast_time:
        # The course ran all its epochs without reaching the target: it would need longer
        # than that whole run, if it ever got there, so the ratio is at least this.
        ratios["time_to_target_at_least"] = course["epochs"]["seconds"][-1] / fast_time
    return ratios


def format_bench(results: dict) -> str:
    """The figures side by side, with the ratios (x > 1: the fast recipe is better)."""
    course, fast, ratios = results["course"], results["fast"], results["ratios"]
    lines = [
        f"data: {results['data']}{' (tiny)' if results['tiny'] else ''}, "
        f"{results['mode']} mode, {results['threads']} torch threads, torch {results['torch']}",
        f"  course = {course['pipeline']}",
        f"  fast   = {fast['pipeline']} ({fast['precision']})",
    ]
    if "loading" in results:
        loading = results["loading"]
        lines.append(
            f"load every split: decoding the images {loading['decode_seconds']:.1f} s, "
            f"from the cache {loading['cache_seconds']:.2f} s"
        )
    rows = [  # label, key in each run, key in ratios, format
        ("training images/s", "train_images_per_second", None, "{:.0f}"),
        ("inference images/s (batch 256)", "inference_images_per_second", None, "{:.0f}"),
        ("ms per face (batch 1, float32)", "ms_per_face", None, "{:.2f}"),
        ("peak memory MB", "peak_memory_mb", "peak_memory", "{:.0f}"),
    ]
    lines.append(f"{'':<34}{'course':>12}{'fast':>12}{'ratio':>10}")
    for label, key, ratio, fmt in rows:
        lines.append(
            f"{label:<34}{fmt.format(course[key]):>12}{fmt.format(fast[key]):>12}"
            f"{ratios[ratio or key]:>9.2f}x"
        )
    if results["mode"] == "full":
        targets = [("target", f"{results['target_accuracy']:.0%}")]
        if "reference_accuracy" in results:
            # Rounded down: 1,530 of 2,155 faces (70.998%) must not print as 71.00%.
            best = math.floor(results["reference_accuracy"] * 10_000) / 100
            targets.append(("reference", f"{best:.2f}% (course best)"))
        for key, accuracy in targets:
            cells = [_time_cell(course, key), _time_cell(fast, key)]
            ratio = f"{ratios[f'time_to_{key}']:.2f}x" if f"time_to_{key}" in ratios else "-"
            if key == "target" and "time_to_target_at_least" in ratios:
                cells[0] = f"> {course['epochs']['seconds'][-1]:.0f} s"
                ratio = f"> {ratios['time_to_target_at_least']:.2f}x"
            label = f"time to {accuracy}"
            lines.append(f"{label:<34}{cells[0]:>12}{cells[1]:>12}{ratio:>10}")
        for name, run in (("course", course), ("fast", fast)):
            accs = ", ".join(
                f"{a:.1%}/{b:.1%}"
                for a, b in zip(run["epochs"]["val_acc"], run["epochs"]["val_bal_acc"])
            )
            lines.append(f"{name} val accuracy/balanced per epoch: {accs}")
        if "time_to_target_at_least" in ratios:
            lines.append(
                f"the course did not reach {results['target_accuracy']:.0%} in its "
                f"{len(course['epochs']['seconds'])} epochs: it needs more than their "
                f"{course['epochs']['seconds'][-1]:.0f} s, so the fast recipe is at least "
                f"{ratios['time_to_target_at_least']:.2f}x sooner"
            )
    return "\n".join(lines)


def _time_cell(run: dict, key: str = "target") -> str:
    seconds = run.get(f"time_to_{key}_seconds")
    return "not reached" if seconds is None else f"{seconds:.0f} s"
