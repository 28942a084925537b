"""Benchmarks that print figures: loading time, and training throughput per pipeline.

    python -m fer_helpers bench --data ../shared/fer2013

compares, in one run and on the same model (SI100FaceNet, 3 classes, batch 32,
Adam), the course's original input pipeline — torchvision ImageFolder +
DataLoader decoding JPEGs with PIL transforms every epoch — with fer_helpers'
FaceLoader, which serves batches from the decoded uint8 array in memory.
Nothing here asserts on time: it measures and reports.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torchvision import datasets, transforms

from .data import FaceData, FaceLoader, load_fer2013
from .labels import COURSE_CLASSES, EMOTIONS
from .sources import find_fer2013
from .train import make_training, seed_everything


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
    folder: Path, classes: Sequence[str] = COURSE_CLASSES, batch_size: int = 32, workers: int = 0
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
        torch.utils.data.Subset(dataset, keep), batch_size, shuffle=True, num_workers=workers
    )


def export_image_folder(data: FaceData, split: str, folder: Path) -> Path:
    """Write a split as PNG class folders (for data that did not come as folders)."""
    faces = data[split]
    for i, (image, label) in enumerate(zip(faces.images, faces.labels)):
        target = folder / EMOTIONS[label]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target / f"{i}.png")
    return folder


def training_throughput(loader: Iterable, steps: int, warmup: int = 5, seed: int = 0) -> float:
    """Images per second over `steps` training steps of a fresh SI100FaceNet (after warmup)."""
    seed_everything(seed)
    model, loss_fn, optimizer = make_training("si100", len(COURSE_CLASSES))
    model.train()
    seen, start, batches = 0, 0.0, iter(_forever(loader))
    for step in range(warmup + steps):
        if step == warmup:
            start, seen = time.perf_counter(), 0
        x, y = next(batches)
        _step(model, loss_fn, optimizer, x, y)
        seen += len(y)
    return seen / (time.perf_counter() - start)


def loader_throughput(loader: Iterable, batches: int = 100) -> float:
    """Images per second the input pipeline alone delivers (no model)."""
    seen, start, stream = 0, time.perf_counter(), iter(_forever(loader))
    for _ in range(batches):
        seen += len(next(stream)[1])
    return seen / (time.perf_counter() - start)


def _step(
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
) -> None:
    optimizer.zero_grad()
    loss_fn(model(x), y).backward()
    optimizer.step()


def _forever(loader: Iterable) -> Iterable:
    while True:
        yield from loader


def run_bench(
    data: FaceData, steps: int = 150, batch_size: int = 32, loader_batches: int = 100
) -> dict:
    """Loading times (FER2013 only) and training images/s of each pipeline, in one run."""
    results: dict = {
        "data": data.source,
        "steps": steps,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
    }
    if data.root is not None and not data.synthetic:
        results["loading"] = time_loading(data.root)
    train = data.dataset("train", COURSE_CLASSES)
    with tempfile.TemporaryDirectory() as tmp:
        folder = _train_folder(data, Path(tmp))
        pipelines = {
            "ImageFolder + DataLoader (course, 0 workers)": imagefolder_loader(folder),
            "ImageFolder + DataLoader (2 workers)": imagefolder_loader(folder, workers=2),
            "FaceLoader (fer_helpers, memory)": FaceLoader(train, batch_size, shuffle=True),
        }
        results["loader_images_per_second"] = {
            name: loader_throughput(loader, loader_batches) for name, loader in pipelines.items()
        }
        results["train_images_per_second"] = {
            name: training_throughput(loader, steps) for name, loader in pipelines.items()
        }
    return results


def _train_folder(data: FaceData, tmp: Path) -> Path:
    """The train split as class folders: the user's own when FER2013 came as folders."""
    if data.root is not None and not data.synthetic:
        found = find_fer2013(data.root)
        if found.splits["train"].files is not None:
            return Path(found.splits["train"].files[0]).parents[1]
    return export_image_folder(data, "train", tmp / "train")


def format_bench(results: dict) -> str:
    """The figures as a few readable lines."""
    lines = [
        f"data: {results['data']}, {results['steps']} steps of batch "
        f"{results['batch_size']}, {results['threads']} torch threads"
    ]
    if "loading" in results:
        loading = results["loading"]
        lines.append(
            f"load every split: decoding the images {loading['decode_seconds']:.1f} s, "
            f"from the cache {loading['cache_seconds']:.2f} s"
        )
    for key, what in (
        ("loader_images_per_second", "input pipeline alone"),
        ("train_images_per_second", "training SI100FaceNet"),
    ):
        lines.append(f"{what}:")
        speeds = results[key]
        base = next(iter(speeds.values()))
        for name, speed in speeds.items():
            lines.append(f"  {name:<46} {speed:8.0f} images/s  ({speed / base:.2f}x)")
    return "\n".join(lines)
