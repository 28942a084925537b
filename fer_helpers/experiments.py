"""Named experiments: variants of a recipe trained over seeds, and their results files.

    python -m fer_helpers experiment --list                 # every experiment, its variants
    python -m fer_helpers experiment imbalance --seeds 3    # train (or load) every run; write
                                                            # fer_helpers/results/imbalance.json
    results = load_results("imbalance")                     # the results file that ships
    results_table(results)                                  # mean ± std over seeds, per variant
    plot_results(results, live={"plain": 0.42})             # beside a short live run

An Experiment is data: a name, a one-line description, the classes, named variants (each a
recipes.TrainRecipe, derived from a base recipe by the notebooks' own functions or by
dataclasses.replace, so a change to the base flows through) and a default number of seeds.
Every (variant, seed) is one saved run of recipes.train_or_load, checkpointed after every
epoch: run the command again and finished runs are loaded, an interrupted one resumes after
its last epoch. The results file (one small JSON per experiment, written atomically after
every run) records the command, the commit, the machine, the date, the seeds, every run's
recipe, per-epoch history and per-class validation metrics (metrics.summarize), and per
variant the mean and sample standard deviation (ddof=1) over seeds. The files ship with the
package in fer_helpers/results/, beside the model cards in fer_helpers/weights/.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from . import __version__
from .checkpoints import scoring_tta
from .comparison import CONTENDERS, contender_recipe
from .dacl import DACL_BACKBONE, DACL_EPOCHS, DACL_PER_CLASS, VARIANTS, variant_recipe
from .data import FaceData, FaceLoader
from .devices import choose_device, cpu_has_bf16, describe_device, processor_name
from .errors import DataError, FerError
from .files import atomic_write
from .imbalance import SEVEN_EPOCHS, STRATEGIES, strategy_recipe
from .inference import predict
from .labels import COURSE_CLASSES, EMOTIONS
from .metrics import summarize
from .paths import WEIGHTS_DIR, tagged
from .plots import styled
from .recipes import FAST, TrainRecipe, train_or_load

RESULTS_DIR = Path(__file__).with_name("results")
"""Where the results files live (and ship): fer_helpers/results/NAME.json."""

SOURCE = "source"
"""A variant's start_from=SOURCE: start from the experiment's own source run (its weights,
all but the last layer), trained once before the variants with seed SOURCE_SEED."""
SOURCE_SEED = 0

COMMAND = "python -m fer_helpers experiment"


@dataclass(frozen=True)
class Experiment:
    """A comparison of named variants over seeds, as data (see the module's docstring)."""

    name: str
    description: str  # one line
    classes: tuple[str, ...]
    variants: Mapping[str, TrainRecipe]
    seeds: int = 3  # the default number of seeds: 0, 1, ..., seeds - 1
    source: TrainRecipe | None = None  # trained first, on source_classes, for start_from=SOURCE
    source_classes: tuple[str, ...] = EMOTIONS

    def with_budget(self, epochs: int | None = None, per_class: int | None = None) -> Experiment:
        """The experiment with every recipe (the source's too) trained for `epochs` on at most
        `per_class` faces of each class; None keeps the recipe's own."""
        changes = {k: v for k, v in (("epochs", epochs), ("per_class", per_class)) if v}
        if not changes:
            return self
        source = None if self.source is None else replace(self.source, **changes)
        variants = {name: replace(r, **changes) for name, r in self.variants.items()}
        return replace(self, variants=variants, source=source)


def _transfer() -> Experiment:
    base = replace(FAST, name="transfer-scratch")
    return Experiment(
        name="transfer",
        description="the 3-class model (happy, neutral, sad; fast recipe) from scratch vs "
        "started from a 7-class network (every layer but the last) that this experiment "
        "trains first, by the same recipe on all seven classes with seed 0",
        classes=COURSE_CLASSES,
        variants={
            "scratch": base,
            "from-7class": replace(base, name="transfer-from-7class", start_from=SOURCE),
        },
        source=replace(base, name="transfer-source-7class"),
        source_classes=EMOTIONS,
    )


def _fast_recipe() -> Experiment:
    """What each piece of the fast recipe buys: the recipe, then one piece put back as the
    course or the earlier fast recipe had it (notebook 06; README's measured section)."""

    def without(name: str, **changes: object) -> TrainRecipe:
        return replace(FAST, name=f"fast-{name}", **changes)

    return Experiment(
        name="fast-recipe",
        description="the fast recipe on happy, neutral, sad, and each of its pieces put "
        "back: the course's full width, the norm before the pooling, float32, no label "
        "smoothing, no mirrored training faces (seconds per epoch and accuracy per epoch)",
        classes=COURSE_CLASSES,
        variants={
            "fast": FAST,
            "full-width": without("full-width", width=64, pool_before_norm=False),
            "norm-then-pool": without("norm-then-pool", pool_before_norm=False),
            "float32": without("float32", precision="fp32"),
            "no-smoothing": without("no-smoothing", label_smoothing=0.0),
            "no-flip": without("no-flip", augment="none"),
        },
    )


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            name="imbalance",
            description="notebook 08: plain training, a class-weighted loss and balanced "
            f"sampling on all seven classes (the fast recipe, {SEVEN_EPOCHS} epochs)",
            classes=EMOTIONS,
            variants={s: strategy_recipe(s) for s in STRATEGIES},
        ),
        Experiment(
            name="dacl",
            description="notebook 10: DACL's ResNet-18, started from the shipped "
            f"{DACL_BACKBONE}, with softmax only, plain center loss and DACL's sparse center "
            f"loss on all seven classes ({DACL_EPOCHS} epochs, {DACL_PER_CLASS} faces per class)",
            classes=EMOTIONS,
            variants={v: variant_recipe(v) for v in VARIANTS},
        ),
        Experiment(
            name="comparison",
            description="notebook 14: SI100FaceNet, ConvNet 5, ResNet-9 and DACL's ResNet-18 "
            "by one recipe (comparison.contender_recipe) on all the training faces of the "
            "seven classes, each for its full budget (comparison.FULL_EPOCHS); one seed, "
            "with bootstrap intervals over the validation faces (ResNet-9 alone takes over "
            "20 minutes a run on a 2-core CPU)",
            classes=EMOTIONS,
            variants={name: contender_recipe(name) for name in CONTENDERS},
            seeds=1,
        ),
        _transfer(),
        _fast_recipe(),
    )
}
"""The experiments by name: `python -m fer_helpers experiment NAME`."""


def get_experiment(name: str | Experiment) -> Experiment:
    """An experiment by name; an Experiment passes through."""
    if isinstance(name, Experiment):
        return name
    if name not in EXPERIMENTS:
        raise FerError(f"unknown experiment {name!r}: expected one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def describe_experiments() -> str:
    """Every experiment with its seeds, description and variants (what --list prints)."""
    lines = []
    for e in EXPERIMENTS.values():
        lines.append(f"{e.name} ({e.seeds} seeds): {e.description}")
        lines += [f"    {name:<12} {_budget(r)}" for name, r in e.variants.items()]
    return "\n".join(lines)


def _budget(recipe: TrainRecipe) -> str:
    faces = "all faces" if recipe.per_class is None else f"{recipe.per_class} faces per class"
    start = "" if recipe.start_from is None else f", starting from {recipe.start_from}"
    return f"recipe {recipe.name}: {recipe.arch}, {recipe.epochs} epochs, {faces}{start}"


# --- running an experiment -------------------------------------------------------------------


def run_tag(data: FaceData, epochs: int | None = None, per_class: int | None = None) -> str:
    """The tag in the names of an experiment's files: the data's (FaceData.tag) and a budget
    that differs from the recipes' (e1-k8), so a quick run never overwrites a full one."""
    budget = "-".join(f"{p}{v}" for p, v in (("e", epochs), ("k", per_class)) if v)
    return "-".join(t for t in (data.tag, budget) if t)


def results_path(name: str, tag: str = "", out: str | Path | None = None) -> Path:
    """Where the results file of experiment `name` goes: out/NAME[.tag].json."""
    return Path(RESULTS_DIR if out is None else out) / tagged(f"{name}.json", tag)


def experiment_command(
    name: str,
    seeds: int | None = None,
    data: str | None = None,
    out: str | None = None,
    runs: str | None = None,
    epochs: int | None = None,
    per_class: int | None = None,
) -> str:
    """The command line that runs an experiment with these options."""
    options = (
        ("--seeds", seeds),
        ("--epochs", epochs),
        ("--per-class", per_class),
        ("--data", data),
        ("--out", out),
        ("--runs", runs),
    )
    given = [f"{o} {shlex.quote(str(v))}" for o, v in options if v is not None]
    return " ".join([COMMAND, name, *given])


def run_experiment(
    experiment: str | Experiment,
    data: FaceData,
    seeds: int | None = None,
    out: str | Path | None = None,
    runs: str | Path | None = None,
    epochs: int | None = None,
    per_class: int | None = None,
    command: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    log: Callable[[str], object] = print,
) -> dict:
    """Train (or load) every run of an experiment and write its results file; return it.

    seeds: how many (default: the experiment's); epochs, per_class: a budget for every recipe
    instead of its own (recorded in the file and in its name, see run_tag); out: the results
    folder (default fer_helpers/results/); runs: where the runs are saved (default
    weights/experiments/NAME/). Runs are trained seed by seed (every variant with seed 0 first),
    and the results file is rewritten after each, with "complete": false until the last.
    """
    experiment = get_experiment(experiment)
    seeds = experiment.seeds if seeds is None else seeds
    for option, value in (("seeds", seeds), ("epochs", epochs), ("per_class", per_class)):
        if value is not None and value < 1:
            raise FerError(f"{option} must be at least 1, not {value}")
    if "validation" not in data.splits:
        raise DataError(
            f"the data ({data.root or data.source}, {data.layout}) have no validation split: "
            f"experiment {experiment.name!r} scores every run on it (FER2013's PublicTest)"
        )
    device = choose_device() if device is None else torch.device(device)
    tag = run_tag(data, epochs, per_class)
    path = results_path(experiment.name, tag, out)
    folder = Path(runs) if runs is not None else WEIGHTS_DIR / "experiments" / experiment.name
    planned = experiment.with_budget(epochs, per_class)
    if command is None:
        command = experiment_command(experiment.name, seeds, epochs=epochs, per_class=per_class)
    results = _header(planned, data, list(range(seeds)), command, device, epochs, per_class)
    options = dict(device=device, validate_every=1, progress=progress)

    start_from = None
    if planned.source is not None:
        source_path = folder / tagged(f"source-{_digest(planned, data)}.pth", tag)
        log(f"{experiment.name}: the source run, {source_path}")
        model, info = train_or_load(
            source_path, planned.source, data, planned.source_classes, SOURCE_SEED, **options
        )
        results["source"] = {
            "recipe": asdict(planned.source),
            "classes": list(planned.source_classes),
            "seed": SOURCE_SEED,
            "file": source_path.name,
            **_run_record(model, info, data, planned.source_classes, planned.source.channels),
        }
        start_from = str(source_path)

    variants = results["variants"]
    for seed in range(seeds):
        for name, recipe in planned.variants.items():
            trained = recipe
            if recipe.start_from == SOURCE:
                trained = replace(recipe, start_from=start_from)
            run_path = folder / tagged(f"{name}-seed{seed}.pth", tag)
            log(f"{experiment.name}: {name}, seed {seed} ({run_path})")
            model, info = train_or_load(run_path, trained, data, planned.classes, seed, **options)
            record = _run_record(model, info, data, planned.classes, recipe.channels)
            variants[name]["runs"].append({"seed": seed, "file": run_path.name, **record})
            variants[name]["summary"] = summarize_seeds(variants[name]["runs"], planned.classes)
            results["complete"] = seed == seeds - 1 and name == list(planned.variants)[-1]
            write_results(results, path)
    log(f"wrote {path}")
    return results


def _header(
    experiment: Experiment,
    data: FaceData,
    seeds: list[int],
    command: str,
    device: torch.device,
    epochs: int | None,
    per_class: int | None,
) -> dict:
    """Everything a results file says before its runs."""
    return {
        "experiment": experiment.name,
        "description": experiment.description,
        "command": command,
        **_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "processor": processor_name(),
            "cpu_bf16": cpu_has_bf16(),
            "threads": torch.get_num_threads(),
            "device": describe_device(device),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "data": {
            "source": data.source,
            "layout": data.layout,
            "synthetic": data.synthetic,
            "tiny": data.tiny,
        },
        "budget": {"epochs": epochs, "per_class": per_class},  # None: the recipes' own
        "classes": list(experiment.classes),
        "seeds": seeds,
        "complete": False,
        "variants": {
            name: {"recipe": asdict(recipe), "runs": []}
            for name, recipe in experiment.variants.items()
        },
    }


def _commit() -> dict:
    """The git commit of this package's checkout (and whether files differ from it); the
    version always."""
    found: dict = {"version": __version__, "commit": None}
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if head.returncode == 0:
            changed = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here,
                capture_output=True,
                text=True,
                timeout=30,
            )
            found["commit"] = head.stdout.strip()
            found["dirty"] = bool(changed.stdout.strip())
    except (OSError, subprocess.SubprocessError):  # no git here: the version says enough
        pass
    return found


def _digest(experiment: Experiment, data: FaceData) -> str:
    """8 hex digits naming the source run by its settings: another source, another file,
    and so another start_from for the runs that start from it."""
    settings = [asdict(experiment.source), list(experiment.source_classes), SOURCE_SEED]
    text = json.dumps([*settings, data.source, data.tag], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _run_record(
    model: torch.nn.Module, info: dict, data: FaceData, classes: Sequence[str], channels: int
) -> dict:
    """A run's history (as fit returned it) and its metrics on the validation split (scored
    with the test-time augmentation its recipe validated with)."""
    names = list(classes)
    validation = data.dataset("validation", names, channels=channels)
    y_true, y_pred, _ = predict(model, FaceLoader(validation, 256), tta=scoring_tta(info))
    return {
        "epochs": info.get("epoch"),
        "history": {key: [_plain(v) for v in values] for key, values in info["history"].items()},
        "validation": summarize(y_true, y_pred, names),
    }


def _plain(value: float) -> float | None:
    """A number JSON can hold: NaN (an epoch without validation) becomes null."""
    value = float(value)
    return None if math.isnan(value) else value


def spread(values: Sequence[float]) -> dict:
    """{"mean", "std"} of values over seeds; std is the sample one (ddof=1), None for one."""
    values = np.asarray(values, dtype=float)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "std": std}


def summarize_seeds(runs: Sequence[dict], classes: Sequence[str]) -> dict:
    """A variant's spread over its runs: accuracy, balanced accuracy, each class's recall, and
    the wall-clock seconds of the whole training (validation included) and of one epoch."""
    scores = [run["validation"] for run in runs]
    seconds = [run["history"]["epoch_seconds"] for run in runs]
    return {
        "seeds": [run["seed"] for run in runs],
        "accuracy": spread([s["accuracy"] for s in scores]),
        "balanced_accuracy": spread([s["balanced_accuracy"] for s in scores]),
        "recall": {c: spread([s["per_class"][c]["recall"] for s in scores]) for c in classes},
        "seconds": spread([sum(s) for s in seconds]),
        "seconds_per_epoch": spread([float(np.mean(s)) for s in seconds]),
    }


def write_results(results: dict, path: str | Path) -> Path:
    """Write a results file atomically (a temporary file renamed over it)."""
    text = json.dumps(results, indent=1, allow_nan=False) + "\n"
    with atomic_write(path) as file:
        file.write(text.encode())
    return Path(path)


# --- reading and showing results -------------------------------------------------------------


def load_results(name: str | Path, tag: str = "") -> dict:
    """A results file: a shipped experiment's by name (fer_helpers/results/NAME[.tag].json),
    or any results file by its path."""
    given = Path(name)
    path = given if given.suffix == ".json" else results_path(str(name), tag)
    if not path.is_file():
        raise FerError(
            f"no results file {path}: run `{COMMAND} {given.stem.split('.')[0]}` to make it"
        )
    return json.loads(path.read_text())


def shown_command(results: dict) -> str:
    """The command that made a results file, as a learner would type it: the folder its data
    came from (a path on the machine that ran it) is written as DIR, your FER2013 folder."""
    words = shlex.split(results["command"])
    shown = []
    for i, word in enumerate(words):
        if i > 0 and words[i - 1] == "--data":
            shown.append("DIR")
        else:
            shown.append("--data=DIR" if word.startswith("--data=") else shlex.quote(word))
    return " ".join(shown)


def results_table(results: dict, formatted: bool = True) -> pd.DataFrame:
    """One row per variant: accuracy, balanced accuracy and every class's recall over seeds.

    formatted=True: text "61.2% ± 0.8" (mean ± sample standard deviation, in points);
    False: numbers, with columns (metric, "mean" or "std").
    """
    rows = {}
    for name, variant in results["variants"].items():
        if not variant["runs"]:
            continue
        summary = variant["summary"]
        scores = {
            "accuracy": summary["accuracy"],
            "balanced accuracy": summary["balanced_accuracy"],
        }
        scores |= {f"recall {c}": s for c, s in summary["recall"].items()}
        row = {(metric, stat): s[stat] for metric, s in scores.items() for stat in ("mean", "std")}
        rows[name] = {("seeds", ""): len(summary["seeds"]), **row}
        if "seconds_per_epoch" in summary:  # files written before it was recorded lack it
            per_epoch = summary["seconds_per_epoch"]
            rows[name] |= {("seconds per epoch", k): per_epoch[k] for k in ("mean", "std")}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index.name = "variant"
    if not formatted:
        return table
    metrics = [m for m in dict.fromkeys(table.columns.get_level_values(0)) if m != "seeds"]
    text = pd.DataFrame(index=table.index)
    text["seeds"] = table[("seeds", "")]
    for metric in metrics:
        scale = 1.0 if metric.startswith("seconds") else 100.0
        text[metric] = [
            _mean_std(mean, std, scale)
            for mean, std in zip(table[(metric, "mean")], table[(metric, "std")])
        ]
    return text


def _mean_std(mean: float, std: float | None, scale: float = 100.0) -> str:
    """ "61.2% ± 0.8" for a fraction (scale 100: percent, points); "8.9 ± 0.2" for seconds."""
    unit = "%" if scale == 100.0 else ""
    if std is None or pd.isna(std):
        return f"{scale * mean:.1f}{unit}"
    return f"{scale * mean:.1f}{unit} ± {scale * std:.1f}"


def seed_values(variant: dict, metric: str) -> list[float]:
    """A variant's score in each of its runs (one per seed), from its results.

    metric: "accuracy", "balanced_accuracy" or "recall <class>"."""
    runs = variant["runs"]
    if metric.startswith("recall "):
        cls = metric.removeprefix("recall ")
        return [run["validation"]["per_class"][cls]["recall"] for run in runs]
    return [run["validation"][metric] for run in runs]


def one_run_verdict(difference: float, seed_spread: float) -> str:
    """The verdict on the difference between two single runs, when seeds of one recipe spread
    by the standard deviation `seed_spread`: "larger than" or "within" what a seed moves.

    Two independent runs differ by about sqrt(2) * seed_spread (their variances add); as in
    compare_to_baseline, a difference beyond twice that is called larger than chance.
    """
    return "larger than" if abs(difference) > 2 * math.sqrt(2) * seed_spread else "within"


def compare_to_baseline(
    results: dict,
    baseline: str,
    metrics: Sequence[str] = ("accuracy", "balanced_accuracy"),
) -> pd.DataFrame:
    """Every other variant against `baseline`, metric by metric: is the difference more
    than the seeds' spread?

    One row per (variant, metric): both means over seeds and their difference, in points;
    the standard error of that difference, sqrt(s1^2/n1 + s2^2/n2) from each variant's sample
    standard deviation s over its n seeds; and a verdict: "larger than chance" when the
    difference is more than twice its standard error (Welch's t beyond 2, a rough 95% rule),
    "within chance" otherwise, "cannot tell" with fewer than 2 seeds on either side.
    """
    base = results["variants"][baseline]
    rows = {}
    for name, variant in results["variants"].items():
        if name == baseline or not variant["runs"]:
            continue
        for metric in metrics:
            a = np.asarray(seed_values(base, metric), dtype=float)
            b = np.asarray(seed_values(variant, metric), dtype=float)
            difference = b.mean() - a.mean()
            if min(len(a), len(b)) < 2:
                error, verdict = float("nan"), "cannot tell"
            else:
                error = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
                verdict = "larger than chance" if abs(difference) > 2 * error else "within chance"
            rows[(name, metric.replace("_", " "))] = {
                baseline: 100 * a.mean(),
                "variant": 100 * b.mean(),
                "difference": 100 * difference,
                "standard error": 100 * error,
                "verdict": verdict,
            }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["variant", "metric"]
    return table


HISTORY_WORDS = {
    "val_acc": "validation accuracy",
    "val_bal_acc": "validation balanced accuracy",
    "train_loss": "training loss",
    "val_loss": "validation loss",
}
"""How plot_histories labels a history key."""


@styled
def plot_histories(
    results: dict,
    metric: str = "val_acc",
    live: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    title: str | None = None,
) -> Figure:
    """Each variant's `metric` after every epoch against the seconds its training had taken
    by then (validation included): a thin line per seed, a thick one for their mean, one
    colour per variant. Time to an accuracy reads off the x-axis; the last point is the
    final score.

    metric: a history key ("val_acc", "val_bal_acc", "train_loss", ...). live: a run's own
    history per variant (as fit returns it), drawn dashed beside the results.
    """
    fig, ax = plt.subplots(figsize=(12, 5.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, variant) in enumerate(v for v in results["variants"].items() if v[1]["runs"]):
        colour = colours[k % len(colours)]
        curves = [_curve(run["history"], metric) for run in variant["runs"]]
        if len(curves) > 1:  # one run: the thick line below is that run
            for seconds, values in curves:
                ax.plot(seconds, values, color=colour, alpha=0.35, linewidth=1.5)
        steps = min(len(values) for _, values in curves)
        mean_seconds = np.mean([seconds[:steps] for seconds, _ in curves], axis=0)
        mean_values = np.mean([values[:steps] for _, values in curves], axis=0)
        runs = variant["runs"]
        label = f"{name} (mean of {len(runs)} seeds)" if len(runs) > 1 else f"{name} (one run)"
        ax.plot(mean_seconds, mean_values, "o-", color=colour, linewidth=3, label=label)
        if live and name in live:
            ax.plot(*_curve(live[name], metric), "s--", color=colour, label=f"{name}, live run")
    ax.set_xlabel("seconds of training (validation included)")
    ax.set_ylabel(HISTORY_WORDS.get(metric, metric.replace("_", " ")))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: curves fill every corner
    words = HISTORY_WORDS.get(metric, metric.replace("_", " "))
    ax.set_title(title or f"{results['experiment']}: {words} per epoch")
    fig.text(0.01, 0.01, f"results: {shown_command(results)}", fontsize=10, color="gray")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def _curve(history: Mapping[str, Sequence[float]], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(seconds by the end of each validated epoch, metric then): epochs without validation
    (NaN, or null in a results file) are left out."""
    seconds = np.cumsum(np.asarray(history["epoch_seconds"], dtype=float))
    values = np.asarray([np.nan if v is None else v for v in history[metric]], dtype=float)
    keep = ~np.isnan(values)
    return seconds[keep], values[keep]


@styled
def plot_results(
    results: dict,
    metric: str = "balanced_accuracy",
    live: Mapping[str, float] | None = None,
    title: str | None = None,
    ylim: tuple[float, float] = (0.0, 1.0),
) -> Figure:
    """A variant's mean over seeds (bar), its spread (± one standard deviation) and every
    seed (dots); live: a short live run's score per variant, drawn beside them as a star.

    metric: "accuracy", "balanced_accuracy" or "recall <class>". ylim: the y-axis's range
    (a narrower one shows differences of a point; the axis then no longer starts at 0).
    The figure names the command that made the results.
    """
    names = [n for n, v in results["variants"].items() if v["runs"]]
    means, stds, dots = [], [], []
    for name in names:
        variant = results["variants"][name]
        summary = variant["summary"]
        if metric.startswith("recall "):
            stat = summary["recall"][metric.removeprefix("recall ")]
        else:
            stat = summary[metric]
        dots.append(seed_values(variant, metric))
        means.append(stat["mean"])
        stds.append(stat["std"] or 0.0)
    fig, ax = plt.subplots(figsize=(10, 5.6))
    x = np.arange(len(names))
    ax.bar(x, means, yerr=stds, capsize=8, alpha=0.6, label="mean ± std over seeds")
    for i, values in enumerate(dots):
        ax.plot([i] * len(values), values, "o", color="black", label="one seed" if i == 0 else "")
    if live:
        shown = [(i, live[n]) for i, n in enumerate(names) if n in live]
        ax.plot(*zip(*shown), "*", markersize=18, color="tab:red", label="live run")
    ax.set_xticks(x, names)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_ylim(*ylim)
    ax.legend(loc="upper right")
    ax.set_title(title or f"{results['experiment']}: {metric.replace('_', ' ')}")
    fig.text(0.01, 0.01, f"results: {shown_command(results)}", fontsize=10, color="gray")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
