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
from .devices import cpu_has_bf16, processor_name
from .errors import FerError
from .inference import TTA_WORDS
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

COURSE_EPOCHS = 10
"""The course's recipe trains 10 epochs; its best validation accuracy in them is the reference."""

PIPELINES = {
    "course": "course recipe: ImageFolder + DataLoader (PIL, 0 workers), batch 32, Adam, fp32",
    "fast": "fast recipe: uint8 faces in memory (FaceLoader), see recipes.FAST",
}

VALIDATION = {"headline": "none", "second_row": "flip"}
"""How both pipelines are scored (inference.TTA_WORDS): the same way, so the times compare.

The headline looks at each face once; the second row averages each face and its mirror.
Both are scored after every epoch; the mirror pass runs off the clock.
"""


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
    epochs: int | None = None,
    seed: int = 0,
) -> dict:
    """Train with one pipeline and measure it; run in a process of its own (see run_bench).

    Measures training images/s over `steps` steps (after a few warm-up steps),
    inference images/s (batches of 256) and milliseconds per single face. With
    full=True it also trains all `epochs` (default: the course's 10, the fast
    recipe's own) and records after each the wall time since the start (loading
    the data included) and the validation scores, one look and mirror (VALIDATION);
    the mirror pass is not on the clock.
    """
    import resource

    from .data import load_data
    from .devices import resolve_precision
    from .recipes import COURSE, FAST, build_training, recipe_loaders
    from .train import fit, validate

    recipe = COURSE if name == "course" else FAST
    precision = resolve_precision(recipe.precision, "cpu")
    seed_everything(seed)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()  # the clock starts with loading the data
        data = load_data(data_source, tiny=tiny, verbose=False)
        if name == "course":
            train_loader = imagefolder_loader(split_folder(data, "train", Path(tmp)))
            val_loader = imagefolder_loader(
                split_folder(data, "validation", Path(tmp)), batch_size=256, shuffle=False
            )
        else:
            train_loader, val_loader = recipe_loaders(recipe, data, seed=seed)
        loading = time.perf_counter() - began
        if epochs is None:
            epochs = COURSE_EPOCHS if name == "course" else recipe.epochs
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
            "seed": seed,
            "loading_seconds": loading,
            "validation": {row: TTA_WORDS[mode] for row, mode in VALIDATION.items()},
        }
        if full:
            keys = ("val_acc", "val_bal_acc", "val_acc_mirror", "val_bal_acc_mirror", "seconds")
            history: dict[str, list[float]] = {key: [] for key in keys}
            off_clock = 0.0
            for _ in range(epochs):
                h = fit(
                    model,
                    train_loader,
                    loss_fn,
                    optimizer,
                    1,
                    val_loader=val_loader,
                    scheduler=scheduler,
                    tta=VALIDATION["headline"],
                    **settings,
                )
                history["seconds"].append(time.perf_counter() - began - off_clock)
                history["val_acc"].append(h["val_acc"][0])
                history["val_bal_acc"].append(h["val_bal_acc"][0])
                paused = time.perf_counter()
                mirror = validate(
                    model, val_loader, nn.NLLLoss(), "cpu", precision, VALIDATION["second_row"]
                )
                off_clock += time.perf_counter() - paused
                history["val_acc_mirror"].append(mirror["accuracy"])
                history["val_bal_acc_mirror"].append(mirror["balanced_accuracy"])
            result["epochs"] = history
        # Speed on a fresh model of its own, so that it does not disturb the run above.
        result["train_images_per_second"] = training_throughput(
            build_training(recipe, 3, 10**6)[:3], train_loader, steps, settings
        )
        result.update(_inference(model, val_loader, recipe.channels_last, precision))
    result["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def training_throughput(
    training: tuple, loader: Iterable, steps: int, settings: dict, warmup: int = 5
) -> float:
    """Training images/s over `steps` batches of `loader` (cycled), after `warmup` untimed
    ones, by the one training loop: training is (model, objective, optimizer(s)), settings
    are fit's other keyword arguments (device, precision, channels_last; quiet unless they
    say otherwise). The model's weights change."""
    from .train import fit

    model, loss_fn, optimizer = training
    settings = {"log": _silent, "progress": False, **settings}
    if warmup > 0:
        fit(model, _Take(loader, warmup), loss_fn, optimizer, 1, **settings)
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


def model_speed(weights: str | Path, data: FaceData, threads: int = 2) -> dict:
    """Inference speed of a trained model on the CPU: ms per face and faces/s in batches.

    weights: a shipped name (`best-7class`) or a checkpoint; shipped_mb is the size of the
    file `ship` makes of it (float16 weights, no optimizer state). One face at a time, one look,
    float32, as `predict` runs it (median of 200 after 20 warm-up faces); batches of 256 in
    channels_last with bfloat16 where the CPU computes in it, as training validates.
    Faces: the validation split (else train) of `data`; their accuracy is not measured here.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # put back below: the caller's setting is not ours to keep
    try:
        return _model_speed(weights, data)
    finally:
        torch.set_num_threads(previous)


def _model_speed(weights: str | Path, data: FaceData) -> dict:
    from .data import FaceLoader
    from .devices import resolve_precision
    from .pretrained import load_pretrained, resolve_weights, ship

    path = resolve_weights(weights)
    model, info = load_pretrained(path)
    with tempfile.TemporaryDirectory() as folder:  # what `tasks.py ship` would write
        shipped_mb = ship(path, "probe", Path(folder)).stat().st_size / 1e6
    split = "validation" if "validation" in data.splits else "train"
    faces = data.dataset(split, info["class_names"], channels=info["normalization"]["channels"])
    precision = resolve_precision("auto", "cpu")
    model.to(memory_format=torch.channels_last)
    return {
        "weights": str(weights),
        "arch": info["arch"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "file_mb": path.stat().st_size / 1e6,
        "shipped_mb": shipped_mb,  # float16 weights, no optimizer state: the package's file
        "threads": torch.get_num_threads(),
        "processor": processor_name(),
        "batch_precision": precision,
        "faces": len(faces),
        **_inference(model, FaceLoader(faces, 256), True, precision),
    }


def format_model_speed(result: dict) -> str:
    """model_speed's figures as lines of text."""
    return "\n".join(
        [
            f"{result['weights']}: {result['arch']}, {result['parameters']:,} parameters, "
            f"file {result['file_mb']:.1f} MB (shipped: {result['shipped_mb']:.1f} MB)",
            f"CPU: {result['processor']}, {result['threads']} threads",
            f"one face, one look (float32, median of 200): {result['ms_per_face']:.2f} ms",
            f"batches of 256 ({result['batch_precision']}, channels_last, {result['faces']} "
            f"faces): {result['inference_images_per_second']:,.0f} faces/s",
        ]
    )


def run_bench(data: FaceData, full: bool = False, steps: int = 200, seeds: int = 1) -> dict:
    """The course's pipeline and the fast one, each in a fresh process, side by side.

    Short mode (full=False): training and inference speed and peak memory, a
    minute or two. full=True also trains the course's recipe for its 10 epochs and
    the fast recipe with each of `seeds` seeds, all scored the same way (VALIDATION),
    and times each to the course's best validation accuracy (add_reference):
    14 minutes on 2 cores with bfloat16 for 3 seeds (README). The speed rows are seed 0's.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if seeds < 1:
        raise FerError(f"--seeds must be at least 1, not {seeds}")
    source = "synthetic" if data.synthetic else str(data.root)
    context = multiprocessing.get_context("spawn")  # a clean process: its own peak memory
    results: dict = {
        "data": data.source,
        "tiny": data.tiny,
        "mode": "full" if full else "short",
        "steps": steps,
        "validation": {row: TTA_WORDS[mode] for row, mode in VALIDATION.items()},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "processor": processor_name(),
        "cpu_bf16": cpu_has_bf16(),
    }
    if data.root is not None and not data.synthetic and not data.tiny:
        results["loading"] = time_loading(data.root)
    runs = [("course", 0)] + [("fast", seed) for seed in range(seeds if full else 1)]
    for name, seed in runs:
        with ProcessPoolExecutor(1, mp_context=context) as worker:
            job = worker.submit(measure_pipeline, name, source, data.tiny, steps, full, None, seed)
            run = job.result()
        if name == "course" or seed == 0:
            results[name] = run
        if name == "fast" and full:
            results.setdefault("fast_seeds", []).append(run)
    if full:
        add_reference(results)
    results["ratios"] = bench_ratios(results)
    return results


def add_reference(results: dict) -> dict:
    """Time each run to the course's best validation accuracy, one look and mirror.

    The reference is the best accuracy the course's recipe reached in its epochs,
    scored one way (reference_accuracy) and the other (reference_accuracy_mirror).
    Per run it adds time_to_reference_seconds and epochs_to_reference (None: not
    reached), with the suffix _mirror for the mirror's; for the fast seeds, their
    mean and sample standard deviation in results["fast_to_reference"].
    """
    from statistics import mean, stdev

    runs = [results["course"], *results.get("fast_seeds", [results["fast"]])]
    for suffix in ("", "_mirror"):
        reference = max(results["course"]["epochs"][f"val_acc{suffix}"])
        results[f"reference_accuracy{suffix}"] = reference
        for run in runs:
            epochs = run["epochs"]
            reached = [
                (i + 1, t)
                for i, (a, t) in enumerate(zip(epochs[f"val_acc{suffix}"], epochs["seconds"]))
                if a >= reference
            ]
            first = reached[0] if reached else (None, None)
            run[f"epochs_to_reference{suffix}"], run[f"time_to_reference{suffix}_seconds"] = first
        times = [run[f"time_to_reference{suffix}_seconds"] for run in runs[1:]]
        epochs_to = [run[f"epochs_to_reference{suffix}"] for run in runs[1:]]
        summary: dict = {
            "seconds": times,
            "epochs": epochs_to,
            "reached": sum(t is not None for t in times),
        }
        if None not in times:
            summary["mean_seconds"] = mean(times)
            summary["std_seconds"] = stdev(times) if len(times) > 1 else 0.0
            summary["mean_epochs"] = mean(epochs_to)
        results[f"fast_to_reference{suffix}"] = summary
    return results


def bench_ratios(results: dict) -> dict:
    """fast over course for speeds, course over fast for times and memory (>1: fast is better).

    time_to_reference[_mirror]: the course's time to its best over the fast seeds' mean
    time to it; only when every fast seed reached it.
    """
    course, fast = results["course"], results["fast"]
    ratios = {
        "train_images_per_second": fast["train_images_per_second"]
        / course["train_images_per_second"],
        "inference_images_per_second": fast["inference_images_per_second"]
        / course["inference_images_per_second"],
        "ms_per_face": course["ms_per_face"] / fast["ms_per_face"],
        "peak_memory": course["peak_memory_mb"] / fast["peak_memory_mb"],
    }
    for suffix in ("", "_mirror"):
        summary = results.get(f"fast_to_reference{suffix}") or {}
        course_time = course.get(f"time_to_reference{suffix}_seconds")
        if course_time and summary.get("mean_seconds"):
            ratios[f"time_to_reference{suffix}"] = course_time / summary["mean_seconds"]
    return ratios


def format_bench(results: dict) -> str:
    """The figures side by side, with the ratios (x > 1: the fast recipe is better)."""
    course, fast, ratios = results["course"], results["fast"], results["ratios"]
    lines = [
        f"data: {results['data']}{' (tiny)' if results['tiny'] else ''}, "
        f"{results['mode']} mode, {results['threads']} torch threads, torch {results['torch']}, "
        f"{results.get('processor', 'cpu')} (bfloat16 instructions: "
        f"{'yes' if results.get('cpu_bf16') else 'no'})",
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
    table = [  # label, course, fast, ratio: the cells of one row
        (label, fmt.format(course[key]), fmt.format(fast[key]), f"{ratios[ratio or key]:.2f}x")
        for label, key, ratio, fmt in rows
    ]
    seeds = len(results.get("fast_seeds", [fast]))
    if results["mode"] == "full":
        for suffix, words in (("", "one look"), ("_mirror", "face + mirror")):
            # Rounded down: 1,530 of 2,155 faces (70.998%) must not print as 71.00%.
            best = math.floor(results[f"reference_accuracy{suffix}"] * 10_000) / 100
            summary = results[f"fast_to_reference{suffix}"]
            if "mean_seconds" in summary:
                cell = f"{summary['mean_seconds']:.0f} ± {summary['std_seconds']:.0f} s"
            else:
                cell = f"{summary['reached']}/{seeds} reached"
            ratio = ratios.get(f"time_to_reference{suffix}")
            table.append(
                (
                    f"time to the course best, {best:.2f}% ({words})",
                    _time_cell(course, suffix),
                    cell,
                    "-" if ratio is None else f"{ratio:.2f}x",
                )
            )
    width = max(len(row[0]) for row in table) + 2  # the longest label sets the column
    lines.append(f"{'':<{width}}{'course':>12}{'fast':>16}{'ratio':>10}")
    lines += [f"{label:<{width}}{a:>12}{b:>16}{r:>10}" for label, a, b, r in table]
    if results["mode"] != "full":
        return "\n".join(lines)
    lines.append(
        f"fast: mean ± standard deviation over {seeds} seed{'s' if seeds > 1 else ''}; "
        "the mirror pass is not on the clock"
    )
    for name, run in (
        ("course", course),
        *((f"fast seed {r['seed']}", r) for r in results.get("fast_seeds", [fast])),
    ):
        for suffix, words in (("", "one look"), ("_mirror", "mirror")):
            epochs = run["epochs"]
            accs = ", ".join(
                f"{a:.1%}/{b:.1%}"
                for a, b in zip(epochs[f"val_acc{suffix}"], epochs[f"val_bal_acc{suffix}"])
            )
            lines.append(f"{name} val accuracy/balanced per epoch ({words}): {accs}")
    return "\n".join(lines)


def _time_cell(run: dict, suffix: str = "") -> str:
    seconds = run.get(f"time_to_reference{suffix}_seconds")
    return "not reached" if seconds is None else f"{seconds:.0f} s"
